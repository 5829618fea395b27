//! Event-time windowed aggregation: Kong events in, cumulative counter and histogram samples out.
//!
//! ```text
//! event ─ template path ─ group (service, route, method, path) ─ delta of its window
//!                                                                      │ watermark passes
//!        WindowOutput { end, samples } <─ cumulative values of every active series
//! ```
//!
//! Windows are tumbling, `window_ms` long and stamped with their end. A window closes when the
//! watermark (the newest event time minus `watermark_delay_ms`, the disorder the stream is
//! expected to have) passes its end, so results trail the stream by about one window. An event
//! whose window has closed but that is at most `allowed_lateness_ms` behind still counts: the
//! series are cumulative, so it goes into the next window to close and every total stays exact;
//! only its attribution moves by at most the allowed lateness. An event later than that is
//! rejected as late and counted. (A partitioned source judges lateness per partition instead,
//! see [`Aggregator::add`].) When no event arrives for two window lengths of wall-clock
//! time, event time is taken to advance with the wall clock, so a quiet stream still closes its
//! last windows.
//!
//! Every series that has been seen gets a sample in every window (its cumulative value, changed
//! or not) until it has had no increment for `idle_timeout_ms`; then it gets a staleness marker.
//! A series that appears (or comes back) also gets its previous value (zero when new) one window
//! earlier, so `increase` sees the requests of its first window.
//!
//! The aggregator is a pure state machine: time is an argument, and output goes to the caller.

mod checkpoint;
pub use checkpoint::Restored;
mod series;
mod state;

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use vigil_tsdb::{Labels, Timestamp, stale_nan};

use series::GroupLabels;
pub use series::{
    DEFAULT_BUCKETS, KONG_DURATION, REQUEST_DURATION, REQUESTS_TOTAL, RESPONSE_BYTES_TOTAL, SeriesId, SeriesTable,
    UPSTREAM_DURATION,
};
use state::{GroupId, HistKind, Keys, METHODS, method_index};

use crate::kong::{KongEvent, Reject};
use crate::template::template_path;

/// How events are aggregated.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatorConfig {
    /// Window length.
    pub window_ms: i64,
    /// How far the watermark trails the newest event: the out-of-orderness expected between
    /// Kong nodes and batches. Windows close once the watermark passes their end.
    pub watermark_delay_ms: i64,
    /// How far behind the closed windows an event may be and still count (in the next window).
    pub allowed_lateness_ms: i64,
    /// After this long without an increment a series gets a staleness marker.
    pub idle_timeout_ms: i64,
    /// Distinct path templates per route before the rest go to `{other}`.
    pub max_paths_per_route: usize,
    /// Distinct (service, route) pairs before the rest go to service and route `{other}`.
    pub max_routes: usize,
    /// How far in the future an event may start (clocks disagree); later ones are rejected.
    pub max_clock_skew_ms: i64,
    /// Latency bucket bounds in seconds (ascending; `+Inf` is implied).
    pub buckets: Vec<f64>,
    /// Also keep `vigil_http_upstream_duration_seconds` (`latencies.proxy`).
    pub upstream_histogram: bool,
    /// Also keep `vigil_http_kong_duration_seconds` (`latencies.kong`).
    pub kong_histogram: bool,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig {
            window_ms: 10_000,
            watermark_delay_ms: 5_000,
            allowed_lateness_ms: 30_000,
            idle_timeout_ms: 15 * 60_000,
            max_paths_per_route: 200,
            max_routes: 10_000,
            max_clock_skew_ms: 5 * 60_000,
            buckets: DEFAULT_BUCKETS.to_vec(),
            upstream_histogram: true,
            kong_histogram: true,
        }
    }
}

/// Samples of one closed window (or of one window's zero baseline), all stamped `t`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowOutput {
    /// Timestamp of every sample: the window's end.
    pub t: Timestamp,
    /// (series, value); a value may be a staleness marker.
    pub samples: Vec<(SeriesId, f64)>,
}

/// Running counts of what the aggregator did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AggregatorStats {
    /// Events added to a window.
    pub accepted: u64,
    /// Events later than the allowed lateness, rejected.
    pub late: u64,
    /// Events whose window had closed but within the allowed lateness, counted in a later window.
    pub late_accepted: u64,
    /// Windows closed.
    pub windows_closed: u64,
    /// Series that went stale.
    pub stale_markers: u64,
}

/// One window's increments for one group.
#[derive(Debug, Clone)]
struct Delta {
    group: GroupId,
    statuses: Vec<(u16, u32)>,
    /// Per histogram: non-cumulative bucket counts (+Inf last), sum (milliseconds), count.
    hists: Vec<(Vec<u32>, f64, u32)>,
    bytes: u64,
}

impl Delta {
    /// Adds another delta of the same group and window.
    fn absorb(&mut self, other: Delta) {
        for (status, n) in other.statuses {
            match self.statuses.iter_mut().find(|(s, _)| *s == status) {
                Some((_, m)) => *m += n,
                None => self.statuses.push((status, n)),
            }
        }
        for (mine, (buckets, sum, count)) in self.hists.iter_mut().zip(other.hists) {
            for (a, b) in mine.0.iter_mut().zip(buckets) {
                *a += b;
            }
            mine.1 += sum;
            mine.2 += count;
        }
        self.bytes += other.bytes;
    }
}

/// Where [`Aggregator::add_to`] puts an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Open,
    Tentative,
}

#[derive(Debug, Default)]
struct Window {
    deltas: Vec<Delta>,
    /// Per group id: 1 + the index of its delta, 0 for none yet.
    slots: Vec<u32>,
}

impl Window {
    /// The index of `group`'s delta, if it has one.
    fn slot(&self, group: GroupId) -> Option<usize> {
        match self.slots.get(group as usize) {
            Some(&s) if s > 0 => Some(s as usize - 1),
            _ => None,
        }
    }

    /// Records that `group`'s delta is at `idx`.
    fn set_slot(&mut self, group: GroupId, idx: usize) {
        let g = group as usize;
        if g >= self.slots.len() {
            self.slots.resize(g + 1, 0);
        }
        self.slots[g] = idx as u32 + 1;
    }
}

/// The windowed aggregator.
#[derive(Debug)]
pub struct Aggregator {
    cfg: AggregatorConfig,
    kinds: Vec<HistKind>,
    keys: Keys,
    table: SeriesTable,
    /// Open windows by start time.
    open: BTreeMap<Timestamp, Window>,
    /// Increments added with [`Aggregator::add_tentative`] and not yet made part of the open
    /// windows: a source's events past its last acknowledged position, which it may still take
    /// back ([`Aggregator::discard_tentative`]).
    tentative: BTreeMap<Timestamp, Window>,
    /// End of the newest closed window; events before it are late.
    closed_until: Option<Timestamp>,
    max_event_t: Option<Timestamp>,
    /// Wall-clock time of the last event (or of the last idle advance).
    last_event_wall: Option<Timestamp>,
    /// Groups with at least one live series.
    active: Vec<GroupId>,
    stats: AggregatorStats,
    template_buf: String,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new(cfg: AggregatorConfig) -> Self {
        let mut kinds = vec![HistKind::Request];
        if cfg.upstream_histogram {
            kinds.push(HistKind::Upstream);
        }
        if cfg.kong_histogram {
            kinds.push(HistKind::Kong);
        }
        Aggregator {
            cfg,
            kinds,
            keys: Keys::default(),
            table: SeriesTable::default(),
            open: BTreeMap::new(),
            tentative: BTreeMap::new(),
            closed_until: None,
            max_event_t: None,
            last_event_wall: None,
            active: Vec::new(),
            stats: AggregatorStats::default(),
            template_buf: String::new(),
        }
    }

    /// Counts `now` as the time of the last event, for [`Aggregator::tick`].
    pub fn note_activity(&mut self, now: Timestamp) {
        self.last_event_wall = Some(now);
    }

    /// The path template of the last event added.
    pub fn last_template(&self) -> &str {
        &self.template_buf
    }

    /// The configuration.
    pub fn config(&self) -> &AggregatorConfig {
        &self.cfg
    }

    /// Labels of the series behind an output id.
    pub fn series(&self) -> &SeriesTable {
        &self.table
    }

    /// What the aggregator has done so far.
    pub fn stats(&self) -> &AggregatorStats {
        &self.stats
    }

    /// Whether any window holds events not yet written.
    pub fn has_open_windows(&self) -> bool {
        !self.open.is_empty() || !self.tentative.is_empty()
    }

    /// End of the newest closed window.
    pub fn closed_until(&self) -> Option<Timestamp> {
        self.closed_until
    }

    /// Requests sent to `{other}` per (service, route) because the route hit its path cap.
    pub fn path_overflows(&self) -> impl Iterator<Item = (&str, &str, u64)> {
        self.keys
            .routes
            .iter()
            .filter(|r| r.overflowed > 0)
            .map(|r| (&*r.service, &*r.name, r.overflowed))
    }

    /// Events counted under service and route `{other}` because there were too many routes.
    pub fn route_overflows(&self) -> u64 {
        self.keys.routes_overflowed
    }

    /// Adds one event at wall-clock time `now`; windows that close as a result are appended to
    /// `out`. Returns `Err(Reject::Late)` if the event is more than the allowed lateness behind
    /// the closed windows.
    pub fn apply(&mut self, ev: &KongEvent<'_>, now: Timestamp, out: &mut Vec<WindowOutput>) -> Result<(), Reject> {
        if let Some(closed) = self.closed_until
            && ev.started_at < closed - self.cfg.allowed_lateness_ms
        {
            self.stats.late += 1;
            return Err(Reject::Late);
        }
        self.add(ev, now)?;
        if let Some(max_t) = self.max_event_t {
            self.close_through(max_t - self.cfg.watermark_delay_ms, out);
        }
        Ok(())
    }

    /// Adds one event without closing any window: for a source that keeps its own watermark
    /// (the slowest of its partitions), closes windows with [`Aggregator::advance_watermark`]
    /// and judges lateness itself, per partition. An event behind the closed windows counts in
    /// the first open one however far behind it is: its partition was behind the others (taken
    /// over in a rebalance, or back from a stall), and its events are no less real for that.
    pub fn add(&mut self, ev: &KongEvent<'_>, now: Timestamp) -> Result<(), Reject> {
        self.add_to(Layer::Open, ev, now)
    }

    /// [`Aggregator::add`], held apart from the open windows until
    /// [`Aggregator::commit_tentative`] (or dropped by [`Aggregator::discard_tentative`]): for a
    /// source that acknowledges what it read only at commits, and that must be able to give
    /// back what it read since.
    pub fn add_tentative(&mut self, ev: &KongEvent<'_>, now: Timestamp) -> Result<(), Reject> {
        self.add_to(Layer::Tentative, ev, now)
    }

    /// Makes the tentative increments part of the open windows.
    pub fn commit_tentative(&mut self) {
        for (start, window) in std::mem::take(&mut self.tentative) {
            let target = self.open.entry(start).or_default();
            for d in window.deltas {
                match target.slot(d.group) {
                    Some(i) => target.deltas[i].absorb(d),
                    None => {
                        target.set_slot(d.group, target.deltas.len());
                        target.deltas.push(d);
                    }
                }
            }
        }
    }

    /// Drops the tentative increments: their source reads those events again.
    pub fn discard_tentative(&mut self) {
        self.tentative.clear();
    }

    /// Whether a watermark at `watermark` would close a window (tentative increments
    /// included).
    pub fn closes_at(&self, watermark: Timestamp) -> bool {
        let w = self.cfg.window_ms;
        let oldest = [self.open.keys().next(), self.tentative.keys().next()]
            .into_iter()
            .flatten()
            .min()
            .copied();
        match (self.closed_until, oldest) {
            (Some(c), _) => c + w <= watermark,
            (None, Some(start)) => start + w <= watermark,
            (None, None) => false,
        }
    }

    fn add_to(&mut self, layer: Layer, ev: &KongEvent<'_>, now: Timestamp) -> Result<(), Reject> {
        let mut t = ev.started_at;
        // One clock far ahead would close every window and make all real traffic late.
        if t > now + self.cfg.max_clock_skew_ms {
            return Err(Reject::Future);
        }
        if let Some(closed) = self.closed_until.filter(|c| t < *c) {
            // Its window is written: count it in the first open one.
            self.stats.late_accepted += 1;
            t = closed;
        }
        let group = self.resolve(ev);
        let w = self.cfg.window_ms;
        let start = t.div_euclid(w) * w;
        let windows = match layer {
            Layer::Open => &mut self.open,
            Layer::Tentative => &mut self.tentative,
        };
        let window = windows.entry(start).or_default();
        let n_hists = self.kinds.len();
        let n_buckets = self.cfg.buckets.len() + 1;
        let idx = match window.slot(group) {
            Some(i) => i,
            None => {
                window.deltas.push(Delta {
                    group,
                    statuses: Vec::new(),
                    hists: vec![(vec![0; n_buckets], 0.0, 0); n_hists],
                    bytes: 0,
                });
                let i = window.deltas.len() - 1;
                window.set_slot(group, i);
                i
            }
        };
        let d = &mut window.deltas[idx];
        match d.statuses.iter_mut().find(|(s, _)| *s == ev.status) {
            Some((_, n)) => *n += 1,
            None => d.statuses.push((ev.status, 1)),
        }
        for (k, kind) in self.kinds.iter().enumerate() {
            let ms = match kind {
                HistKind::Request => Some(ev.latency_request_ms),
                HistKind::Upstream => ev.latency_proxy_ms,
                HistKind::Kong => ev.latency_kong_ms,
            };
            if let Some(ms) = ms {
                let secs = ms / 1000.0;
                let b = self.cfg.buckets.partition_point(|bound| *bound < secs);
                let h = &mut d.hists[k];
                h.0[b] += 1;
                h.1 += ms;
                h.2 += 1;
            }
        }
        d.bytes += ev.response_size;
        self.stats.accepted += 1;
        self.max_event_t = Some(self.max_event_t.map_or(t, |m| m.max(t)));
        self.last_event_wall = Some(now);
        Ok(())
    }

    /// Closes every window that ends at or before `watermark`: the event time up to which a
    /// source says it has delivered everything (up to the allowed lateness).
    pub fn advance_watermark(&mut self, watermark: Timestamp, out: &mut Vec<WindowOutput>) {
        self.close_through(watermark, out);
    }

    /// Advances with the wall clock: once no event has arrived for two windows, event time is
    /// taken to move with the wall clock, closing the open windows and then empty ones.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<WindowOutput>) {
        let (Some(last_wall), Some(max_t)) = (self.last_event_wall, self.max_event_t) else {
            return;
        };
        let w = self.cfg.window_ms;
        let idle = now - last_wall;
        if idle < 2 * w {
            return;
        }
        // A stream that was near real time when it went quiet moves on with the wall clock, so its
        // series get keep-alive samples and, later, staleness markers. A replay of old events only
        // gets its open windows written: its event time must not run ahead of the next batch.
        let was_live = last_wall - max_t <= self.cfg.allowed_lateness_ms + 2 * w;
        let limit = if was_live {
            max_t + idle - self.cfg.watermark_delay_ms
        } else {
            self.open.keys().next_back().map_or(i64::MIN, |s| s + w)
        };
        self.close_through(limit, out);
    }

    /// Closes every open window (the end of an offline import).
    pub fn flush(&mut self, out: &mut Vec<WindowOutput>) {
        if let Some((&last, _)) = self.open.iter().next_back() {
            self.close_through(last + self.cfg.window_ms, out);
        }
    }

    /// Closes every window whose end is at or before `limit`.
    fn close_through(&mut self, limit: Timestamp, out: &mut Vec<WindowOutput>) {
        let w = self.cfg.window_ms;
        loop {
            let next_end = match self.closed_until {
                Some(c) => c + w,
                None => match self.open.keys().next() {
                    Some(&s) => s + w,
                    None => return,
                },
            };
            if next_end > limit {
                return;
            }
            let window = self.open.remove(&(next_end - w)).unwrap_or_default();
            self.close_window(next_end, window, out);
            self.closed_until = Some(next_end);
            if self.active.is_empty() {
                // Nothing to keep alive: jump over the empty windows in between.
                let target = match self.open.keys().next() {
                    Some(&s) => s,
                    None => limit.div_euclid(w) * w,
                };
                if target > next_end {
                    self.closed_until = Some(target.min(limit.div_euclid(w) * w));
                }
            }
        }
    }

    fn close_window(&mut self, end: Timestamp, window: Window, out: &mut Vec<WindowOutput>) {
        let prev = end - self.cfg.window_ms;
        let mut baseline = Vec::new();
        for d in window.deltas {
            self.apply_delta(end, prev, d, &mut baseline);
        }
        if !baseline.is_empty() {
            out.push(WindowOutput {
                t: prev,
                samples: baseline,
            });
        }
        let mut samples = Vec::new();
        let idle = self.cfg.idle_timeout_ms;
        let mut i = 0;
        while i < self.active.len() {
            let g = &mut self.keys.groups[self.active[i] as usize];
            let group_stale = end - g.last_inc > idle;
            for (_, c) in g.statuses.iter_mut().filter(|(_, c)| c.active) {
                if group_stale || end - c.last_inc > idle {
                    samples.push((c.series, stale_nan()));
                    c.active = false;
                    self.stats.stale_markers += 1;
                } else {
                    samples.push((c.series, c.value));
                }
                c.last_emit = Some(end);
            }
            for h in &g.hists {
                for (k, v) in h.values().enumerate() {
                    samples.push((
                        h.first_series + k as SeriesId,
                        if group_stale { stale_nan() } else { v },
                    ));
                }
            }
            samples.push((g.bytes_series, if group_stale { stale_nan() } else { g.bytes }));
            g.last_emit = Some(end);
            if group_stale {
                g.active = false;
                self.stats.stale_markers += 1;
                self.active.swap_remove(i);
            } else {
                i += 1;
            }
        }
        self.stats.windows_closed += 1;
        if !samples.is_empty() {
            out.push(WindowOutput { t: end, samples });
        }
    }

    /// Adds a window's increments to its group; series that were not live get their previous
    /// value at `prev` (the baseline) first.
    fn apply_delta(&mut self, end: Timestamp, prev: Timestamp, d: Delta, baseline: &mut Vec<(SeriesId, f64)>) {
        for &(status, _) in &d.statuses {
            self.keys.status(d.group, status, &mut self.table);
        }
        let g = &mut self.keys.groups[d.group as usize];
        if !g.active {
            if g.last_emit.is_none_or(|t| t < prev) {
                for h in &g.hists {
                    baseline.extend(h.values().enumerate().map(|(k, v)| (h.first_series + k as SeriesId, v)));
                }
                baseline.push((g.bytes_series, g.bytes));
            }
            g.active = true;
            self.active.push(d.group);
        }
        g.last_inc = end;
        for (status, n) in d.statuses {
            let Some((_, c)) = g.statuses.iter_mut().find(|(s, _)| *s == status) else {
                continue;
            };
            if !c.active {
                if c.last_emit.is_none_or(|t| t < prev) {
                    baseline.push((c.series, c.value));
                }
                c.active = true;
            }
            c.value += f64::from(n);
            c.last_inc = end;
        }
        for (h, (buckets, sum_ms, count)) in g.hists.iter_mut().zip(d.hists) {
            let mut running = 0u64;
            for (le, n) in h.le.iter_mut().zip(buckets) {
                running += u64::from(n);
                *le += running as f64;
            }
            h.sum_ms += sum_ms;
            h.count += f64::from(count);
        }
        g.bytes += d.bytes as f64;
    }

    /// The group of an event, creating its route, path and series as needed.
    fn resolve(&mut self, ev: &KongEvent<'_>) -> GroupId {
        let service = label_value(ev.service.as_deref().unwrap_or("unknown"));
        let route_name = label_value(ev.route.as_deref().unwrap_or("unknown"));
        let route = self.keys.route(service, route_name, self.cfg.max_routes);
        let r = &mut self.keys.routes[route as usize];
        // Routes rarely change their paths: parse `route.paths` only when its bytes differ.
        if *r.prefixes_raw != *ev.route_paths {
            r.prefixes_raw = ev.route_paths.into();
            r.prefixes = ev.route_prefixes().map(std::borrow::Cow::into_owned).collect();
        }
        template_path(&ev.uri, r.prefixes.iter().map(String::as_str), &mut self.template_buf);
        let path = self.keys.path(route, &self.template_buf, self.cfg.max_paths_per_route);
        let method = method_index(&ev.method);
        self.keys
            .group(route, path, method, &self.kinds, &self.cfg.buckets, &mut self.table)
    }

    /// Seeds cumulative values from series already in the store, so counters continue across a
    /// restart instead of resetting. Each entry is a series' labels, its newest sample time, its
    /// newest real value, and whether the newest sample is a staleness marker; `now` is the wall
    /// clock. A histogram stored with other bucket bounds than configured starts again from zero
    /// (a counter reset, which PromQL handles) rather than mixing old and new buckets.
    pub fn restore<'a>(
        &mut self,
        series: impl IntoIterator<Item = (&'a Labels, Timestamp, f64, bool)>,
        now: Timestamp,
    ) {
        let bounds: Vec<String> = self
            .cfg
            .buckets
            .iter()
            .chain(std::iter::once(&f64::INFINITY))
            .map(|b| series::le_label(*b))
            .collect();
        let mut newest: Option<Timestamp> = None;
        // Per (group, histogram): whether a stored bucket had an unknown bound, and how many
        // configured bounds were found.
        let mut buckets_seen: FxHashMap<(GroupId, usize), (bool, usize)> = FxHashMap::default();
        for (labels, t, v, stale) in series {
            let Some(name) = labels.metric_name() else { continue };
            let (Some(service), Some(route), Some(method), Some(path)) = (
                labels.get("service"),
                labels.get("route"),
                labels.get("method"),
                labels.get("path"),
            ) else {
                continue;
            };
            let gl = GroupLabels {
                service,
                route,
                method,
                path,
            };
            let g = self
                .keys
                .find_or_create_by_labels(&gl, &self.kinds, &self.cfg.buckets, &mut self.table);
            let status = labels.get("status").and_then(|s| s.parse::<u16>().ok());
            let idx = match (name, status) {
                (REQUESTS_TOTAL, Some(status)) => Some(self.keys.status(g, status, &mut self.table)),
                _ => None,
            };
            let group = &mut self.keys.groups[g as usize];
            let live = !stale;
            if let Some(i) = idx {
                let c = &mut group.statuses[i].1;
                c.value = v;
                c.last_inc = t;
                c.active = live;
                c.last_emit = Some(t);
            } else if name == RESPONSE_BYTES_TOTAL {
                group.bytes = v;
            } else if let Some((hi, h)) = group
                .hists
                .iter_mut()
                .enumerate()
                .find(|(_, h)| name.starts_with(h.kind.metric()))
            {
                let suffix = &name[h.kind.metric().len()..];
                match suffix {
                    "_sum" => h.restore_sum(v),
                    "_count" => h.count = v,
                    "_bucket" => {
                        let seen = buckets_seen.entry((g, hi)).or_default();
                        match labels.get("le").and_then(|le| bounds.iter().position(|b| b == le)) {
                            Some(k) => {
                                h.le[k] = v;
                                seen.1 += 1;
                            }
                            None => seen.0 = true,
                        }
                    }
                    _ => continue,
                }
            } else {
                continue;
            }
            group.last_emit = Some(group.last_emit.map_or(t, |e| e.max(t)));
            if live {
                group.last_inc = group.last_inc.max(t);
                if !group.active {
                    group.active = true;
                    self.active.push(g);
                }
            }
            newest = Some(newest.map_or(t, |n| n.max(t)));
        }
        for ((g, hi), (foreign, found)) in buckets_seen {
            if foreign || found != bounds.len() {
                let h = &mut self.keys.groups[g as usize].hists[hi];
                tracing::warn!(
                    histogram = h.kind.metric(),
                    "bucket bounds changed: the histogram starts again from zero"
                );
                h.le.iter_mut().for_each(|v| *v = 0.0);
                h.sum_ms = 0.0;
                h.count = 0.0;
            }
        }
        if let Some(n) = newest {
            let w = self.cfg.window_ms;
            let aligned = n.div_euclid(w) * w;
            self.closed_until = Some(self.closed_until.map_or(aligned, |c| c.max(aligned)));
            // As if the newest sample had just been seen: `tick` carries a live stream's series
            // on (and ends them) even if no event ever arrives after the restart.
            self.max_event_t = Some(self.max_event_t.map_or(n, |m| m.max(n)));
            self.last_event_wall = Some(now);
        }
    }

    /// The label value used for a method index (for tests and tools).
    pub fn method_label(m: &str) -> &'static str {
        METHODS[method_index(m) as usize]
    }
}

/// Longest service or route name kept, in bytes; longer names are cut (at a character
/// boundary). Kong's names are short; a long one is garbage that must not make huge labels.
const MAX_NAME_LEN: usize = 128;

fn label_value(name: &str) -> &str {
    if name.len() <= MAX_NAME_LEN {
        return name;
    }
    let mut end = MAX_NAME_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod tests;
