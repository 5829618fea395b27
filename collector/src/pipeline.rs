//! The collector shell: decodes input, feeds the aggregator and commits closed windows to the
//! store. Decoding happens in the caller's thread (so concurrent requests decode in parallel);
//! aggregation and the store commit happen under one lock, which keeps windows in order.
//!
//! With a source that can replay (Kafka), the collector checkpoints: every commit also stores
//! the source's positions and the open windows (marks in the same WAL record as the samples),
//! and a restart brings the open windows back, so replaying from the stored positions counts
//! every event exactly once. The source's events are held apart (tentative) until it commits
//! their positions, so that it can give back what it read since its last commit (to another
//! consumer, after a rebalance) without a trace here. Windows then close at the source's
//! watermark, not at the newest event's.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use vigil_tsdb::{Db, Labels, Timestamp};

use crate::aggregate::{Aggregator, AggregatorConfig, WindowOutput};
use crate::error::{Error, Result};
use crate::kong::{KongEvent, Reject, RejectCounts, decode_body, decode_line};
use crate::sample::{SampleConfig, Sampler};
use crate::sink::{self, StoreSink};
use vigil_tsdb::events::{EventStore, RawEvent};

/// Windows that may wait for the store (five minutes of 10 s windows) before new input is
/// refused: enough to ride out a hiccup, bounded so memory stays flat if the disk stays full.
const MAX_PENDING_WINDOWS: usize = 30;

/// The store mark holding the open windows (see [`Aggregator::checkpoint`]); empty when the
/// collector does not checkpoint.
pub const CHECKPOINT_MARK: &str = "collector/open-windows";

/// What one ingest call did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestReport {
    /// Events added to a window.
    pub accepted: u64,
    /// Inputs rejected, by reason (late events included).
    pub rejected: RejectCounts,
}

impl IngestReport {
    /// Adds another report.
    pub fn merge(&mut self, other: &IngestReport) {
        self.accepted += other.accepted;
        self.rejected.merge(&other.rejected);
    }
}

/// Running totals for self-telemetry.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CollectorStats {
    /// Events accepted since start.
    pub accepted: u64,
    /// Rejections since start, by reason.
    pub rejected: RejectCounts,
    /// Events that arrived after their window closed but within the allowed lateness, counted in
    /// a later window.
    pub late_accepted: u64,
    /// Windows committed to the store.
    pub windows_committed: u64,
    /// Samples the store took.
    pub samples_written: u64,
    /// Samples the store refused (out of order or conflicting).
    pub samples_refused: u64,
    /// Windows waiting to be committed after a store error.
    pub pending_windows: u64,
    /// Series the collector writes.
    pub series: u64,
    /// Requests sent to `{other}` per (service, route).
    pub path_overflows: Vec<(String, String, u64)>,
    /// Requests sent to service and route `{other}` because there were too many routes.
    pub route_overflows: u64,
    /// Samples of series the store refused to create.
    pub invalid_series: u64,
    /// Failed store commits.
    pub store_errors: u64,
    /// 5xx events sent to the event store.
    pub sampled_errors: u64,
    /// Events sent to the event store as part of the uniform sample.
    pub sampled_uniform: u64,
    /// 5xx events not sent to the event store because their route was over its rate.
    pub sample_overflow: u64,
}

struct Inner {
    agg: Aggregator,
    sink: StoreSink,
    out: Vec<WindowOutput>,
    stats: CollectorStats,
    /// Path overflow counts stored by earlier processes, by (service, route).
    overflow_base: Vec<(String, String, u64)>,
    last_store_error: Option<String>,
    /// Whether commits carry the open windows and source positions.
    checkpointing: bool,
    /// Whether the store holds a non-empty checkpoint (cleared once checkpointing stops).
    checkpoint_stored: bool,
    /// Source positions, stored with every commit while checkpointing: those of the events in
    /// the open windows (not of tentative ones).
    positions: BTreeMap<String, Vec<u8>>,
    /// What the tentative events of a source would add to `stats` once committed.
    tentative: IngestReport,
    /// Where sampled raw events go.
    events: Option<EventSink>,
}

/// The event store and the sampler that feeds it.
struct EventSink {
    store: Arc<EventStore>,
    sampler: Sampler,
}

/// Kong events in, samples in the store out.
pub struct Collector {
    db: Arc<Db>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").finish_non_exhaustive()
    }
}

impl Collector {
    /// A collector writing to `db`, continuing the counters already stored there.
    pub fn new(db: Arc<Db>, cfg: AggregatorConfig) -> Self {
        let mut agg = Aggregator::new(cfg);
        let restored = sink::restore(&db, &mut agg, vigil_tsdb::time::now_ms());
        if restored > 0 {
            tracing::info!(series = restored, closed_until = ?agg.closed_until(), "collector state restored from the store");
        }
        let checkpoint = db.mark(CHECKPOINT_MARK).filter(|c| !c.is_empty());
        if let Some(cp) = &checkpoint {
            match agg.restore_checkpoint(cp) {
                Ok(r) => {
                    tracing::info!(windows = r.windows, events = r.events, "open windows restored");
                    // Without a source that replays (it would take them over), the restored
                    // windows close as quiet ones do: the clock runs from now.
                    agg.note_activity(vigil_tsdb::time::now_ms());
                }
                Err(e) => tracing::error!(error = %e, "the stored open windows are unreadable; their events are lost"),
            }
        }
        let (stats, overflow_base) = restore_stats(&db);
        Collector {
            db,
            inner: Mutex::new(Inner {
                agg,
                sink: StoreSink::default(),
                out: Vec::new(),
                stats,
                overflow_base,
                last_store_error: None,
                checkpointing: false,
                checkpoint_stored: checkpoint.is_some(),
                positions: BTreeMap::new(),
                tentative: IngestReport::default(),
                events: None,
            }),
        }
    }

    /// From now on, a sample of the raw events (see [`Sampler`]) goes to `store`.
    pub fn set_event_store(&self, store: Arc<EventStore>, cfg: SampleConfig) {
        self.inner.lock().events = Some(EventSink {
            store,
            sampler: Sampler::new(cfg),
        });
    }

    /// The store written to.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// The aggregator's configuration.
    pub fn config(&self) -> AggregatorConfig {
        self.inner.lock().agg.config().clone()
    }

    /// Whether events are waiting in windows not yet written.
    pub fn has_open_windows(&self) -> bool {
        self.inner.lock().agg.has_open_windows()
    }

    /// End of the newest closed window: the aggregated results are final before it.
    pub fn closed_until(&self) -> Option<Timestamp> {
        self.inner.lock().agg.closed_until()
    }

    /// Decodes an HTTP body (one event, a batch, or NDJSON) and aggregates it.
    pub fn ingest_body(&self, body: &[u8], now: Timestamp) -> Result<IngestReport> {
        let mut events = Vec::new();
        let mut rejected = RejectCounts::default();
        decode_body(body, &mut events, &mut rejected);
        self.ingest(&events, rejected, now)
    }

    /// Decodes NDJSON lines and aggregates them.
    pub fn ingest_lines<'a>(&self, lines: impl IntoIterator<Item = &'a [u8]>, now: Timestamp) -> Result<IngestReport> {
        let mut events = Vec::new();
        let mut rejected = RejectCounts::default();
        for line in lines {
            decode_line(line, &mut events, &mut rejected);
        }
        self.ingest(&events, rejected, now)
    }

    /// Aggregates decoded events; `rejected` carries the decoder's rejections into the totals.
    pub fn ingest(&self, events: &[KongEvent<'_>], rejected: RejectCounts, now: Timestamp) -> Result<IngestReport> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        // Refuse before counting anything: a sender that retries must not be counted twice.
        backpressure(inner)?;
        let report = aggregate(inner, events, rejected, now);
        // The events are counted: a store error now is retried with the next call (or surfaces
        // as backpressure), not reported to this sender, who would resend and double count.
        if let Err(e) = commit(&self.db, inner, false) {
            tracing::error!(error = %e, pending = inner.sink.pending(), "store commit failed; will retry");
        }
        Ok(report)
    }

    /// From now on, commits carry source positions and the open windows, and windows close at
    /// the source's watermark ([`Collector::ingest_from_source`]) or when input stops.
    pub fn enable_checkpoints(&self) {
        self.inner.lock().checkpointing = true;
    }

    /// `Err(Error::Backpressure)` while the store is not taking writes: a call to ingest now
    /// would be refused.
    pub fn ready_for_more(&self) -> Result<()> {
        backpressure(&self.inner.lock())
    }

    /// Adds events of a replayable source tentatively ([`Aggregator::add_tentative`]): they
    /// count once [`Collector::commit_from_source`] stores the positions they lead to, and are
    /// forgotten by [`Collector::discard_tentative`]. `rejected` carries the decoder's
    /// rejections.
    pub fn add_from_source(
        &self,
        events: &[KongEvent<'_>],
        rejected: RejectCounts,
        now: Timestamp,
    ) -> Result<IngestReport> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        backpressure(inner)?;
        let mut report = IngestReport { accepted: 0, rejected };
        for ev in events {
            match inner.agg.add_tentative(ev, now) {
                Ok(()) => {
                    report.accepted += 1;
                    sample_raw_event(inner, ev);
                }
                Err(r) => report.rejected.add(r),
            }
        }
        inner.tentative.merge(&report);
        Ok(report)
    }

    /// Whether windows would close at `watermark`: a source commits then.
    pub fn closes_at(&self, watermark: Timestamp) -> bool {
        self.inner.lock().agg.closes_at(watermark)
    }

    /// Makes a source's tentative events count, closes the windows `watermark` passes and
    /// stores it all in one commit with `positions` (mark key, value: how far the source has
    /// read, these events included). After an error the events count all the same (the
    /// closed windows wait for the next commit): what is not yet stored then is the source's
    /// concern.
    pub fn commit_from_source(
        &self,
        positions: impl IntoIterator<Item = (String, Vec<u8>)>,
        watermark: Option<Timestamp>,
    ) -> Result<()> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.agg.commit_tentative();
        let counted = std::mem::take(&mut inner.tentative);
        inner.stats.accepted += counted.accepted;
        inner.stats.rejected.merge(&counted.rejected);
        inner.positions.extend(positions);
        if let Some(wm) = watermark {
            inner.agg.advance_watermark(wm, &mut inner.out);
        }
        commit(&self.db, inner, true)
    }

    /// Forgets a source's tentative events: it reads them again (or another consumer does).
    pub fn discard_tentative(&self) {
        let mut inner = self.inner.lock();
        inner.agg.discard_tentative();
        inner.tentative = IngestReport::default();
    }

    /// Stores the source positions and open windows now, even if no window closed: before a
    /// source gives up partitions, so that what it read from them is durable.
    pub fn checkpoint(&self, positions: impl IntoIterator<Item = (String, Vec<u8>)>) -> Result<()> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.positions.extend(positions);
        commit(&self.db, inner, true)
    }

    /// Stores marks alone: no samples, no open windows (a source's bookkeeping between
    /// commits).
    pub fn store_marks(&self, marks: impl IntoIterator<Item = (String, Vec<u8>)>) -> Result<()> {
        // Under the collector's lock, so that marks and commits keep their order.
        let _inner = self.inner.lock();
        let mut app = self.db.appender();
        for (k, v) in marks {
            app.mark(k, v);
        }
        app.commit()?;
        Ok(())
    }

    /// At shutdown: while checkpointing, stores the open windows (they come back at the next
    /// start, and the source resumes where it stopped); otherwise closes and commits them.
    pub fn shutdown(&self) -> Result<()> {
        let checkpointing = self.inner.lock().checkpointing;
        if checkpointing {
            self.checkpoint([])
        } else {
            self.flush()
        }
    }

    /// Lets wall-clock time advance a quiet stream (call every second or so). A checkpointing
    /// source moves its own watermark, from what its partitions delivered: the clock must not
    /// close windows that a replay after a crash would find open.
    pub fn tick(&self, now: Timestamp) -> Result<()> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        if inner.checkpointing {
            return Ok(());
        }
        inner.agg.tick(now, &mut inner.out);
        commit(&self.db, inner, false)
    }

    /// Closes and commits every open window.
    pub fn flush(&self) -> Result<()> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.agg.flush(&mut inner.out);
        commit(&self.db, inner, false)
    }

    /// Running totals.
    pub fn stats(&self) -> CollectorStats {
        let inner = self.inner.lock();
        let mut s = inner.stats.clone();
        s.late_accepted += inner.agg.stats().late_accepted;
        s.route_overflows = inner.agg.route_overflows();
        s.series = inner.agg.series().len() as u64;
        s.pending_windows = inner.sink.pending() as u64;
        if let Some(e) = &inner.events {
            (s.sampled_errors, s.sampled_uniform, s.sample_overflow) =
                (e.sampler.kept_errors, e.sampler.kept_samples, e.sampler.overflow);
        }
        let mut overflows = inner.overflow_base.clone();
        for (svc, route, n) in inner.agg.path_overflows() {
            match overflows.iter_mut().find(|(s, r, _)| s == svc && r == route) {
                Some(o) => o.2 += n,
                None => overflows.push((svc.to_owned(), route.to_owned(), n)),
            }
        }
        s.path_overflows = overflows;
        s
    }

    /// Runs `f` with the aggregator, for tools that synthesize history through it.
    pub fn with_aggregator<R>(&self, f: impl FnOnce(&mut Aggregator, &mut Vec<WindowOutput>) -> R) -> Result<R> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let r = f(&mut inner.agg, &mut inner.out);
        commit(&self.db, inner, false)?;
        Ok(r)
    }
}

/// `Err(Error::Backpressure)` while too many closed windows wait for the store.
fn backpressure(inner: &Inner) -> Result<()> {
    if inner.sink.pending() >= MAX_PENDING_WINDOWS {
        return Err(Error::Backpressure {
            pending: inner.sink.pending(),
            last_error: inner.last_store_error.clone().unwrap_or_default(),
        });
    }
    Ok(())
}

/// Adds events to the aggregator (closing windows at the newest event unless a source's
/// watermark decides) and counts them.
fn aggregate(inner: &mut Inner, events: &[KongEvent<'_>], mut rejected: RejectCounts, now: Timestamp) -> IngestReport {
    let mut accepted = 0;
    for ev in events {
        let r = if inner.checkpointing {
            inner.agg.add(ev, now)
        } else {
            inner.agg.apply(ev, now, &mut inner.out)
        };
        match r {
            Ok(()) => {
                accepted += 1;
                sample_raw_event(inner, ev);
            }
            Err(r) => rejected.add(r),
        }
    }
    inner.stats.accepted += accepted;
    inner.stats.rejected.merge(&rejected);
    IngestReport { accepted, rejected }
}

/// Offers the event just aggregated to the event store, if the sampler keeps it. (A source's
/// event read again after a discard is offered again: the event store keeps one per request
/// id.)
fn sample_raw_event(inner: &mut Inner, ev: &KongEvent<'_>) {
    if let Some(sink) = &mut inner.events
        && let Some(kept) = sink.sampler.keep(ev)
    {
        sink.store.offer(raw_event(ev, inner.agg.last_template(), kept));
    }
}

/// The event store's record of an event.
fn raw_event(ev: &KongEvent<'_>, template: &str, kept: vigil_tsdb::events::Kept) -> RawEvent {
    let owned = |s: &Option<std::borrow::Cow<'_, str>>| s.as_deref().map(str::to_owned);
    RawEvent {
        time: ev.started_at,
        service: ev.service.as_deref().unwrap_or("unknown").to_owned(),
        route: ev.route.as_deref().unwrap_or("unknown").to_owned(),
        path: ev.uri.to_string(),
        template: template.to_owned(),
        method: ev.method.to_string(),
        status: ev.status,
        latency_ms: ev.latency_request_ms,
        upstream_ms: ev.latency_proxy_ms,
        kong_ms: ev.latency_kong_ms,
        consumer: owned(&ev.consumer),
        request_id: owned(&ev.request_id),
        client_ip: owned(&ev.client_ip),
        kept,
        alert: None,
    }
}

/// Commits closed windows (if any, or always when `force`), with the checkpoint marks.
fn commit(db: &Db, inner: &mut Inner, force: bool) -> Result<()> {
    if !force && inner.out.is_empty() && inner.sink.pending() == 0 {
        return Ok(());
    }
    let outputs = std::mem::take(&mut inner.out);
    let mut marks = Vec::new();
    if inner.checkpointing {
        marks.extend(inner.positions.iter().map(|(k, v)| (k.clone(), v.clone())));
        marks.push((CHECKPOINT_MARK.to_owned(), inner.agg.checkpoint()));
    } else if inner.checkpoint_stored {
        // Windows now close without a checkpoint: the stored one must not come back.
        marks.push((CHECKPOINT_MARK.to_owned(), Vec::new()));
    }
    let before = inner.sink.totals();
    let result = inner.sink.write(db, inner.agg.series(), outputs, marks);
    if result.is_ok() {
        inner.checkpoint_stored = inner.checkpointing;
    }
    let after = inner.sink.totals();
    let refused = after.store.rejected() - before.store.rejected();
    inner.stats.windows_committed += after.commits - before.commits;
    inner.stats.samples_written += after.store.appended - before.store.appended;
    inner.stats.samples_refused += refused;
    inner.stats.invalid_series += after.invalid_series - before.invalid_series;
    if refused > 0 {
        tracing::warn!(refused, "store refused collector samples");
    }
    match result {
        Ok(()) => {
            inner.last_store_error = None;
            Ok(())
        }
        Err(e) => {
            inner.stats.store_errors += 1;
            inner.last_store_error = Some(e.to_string());
            Err(e.into())
        }
    }
}

/// The collector's counters as last written to the store, so that they continue across restarts
/// and imports: they count for the data directory, not for one process.
fn restore_stats(db: &Db) -> (CollectorStats, Vec<(String, String, u64)>) {
    let mut stats = CollectorStats::default();
    let mut overflows = Vec::new();
    for (l, _, value) in sink::newest(db, "vigil_collector_.+_total") {
        let Some(v) = value.map(|s| s.v as u64) else { continue };
        match l.metric_name() {
            Some("vigil_collector_events_total") => stats.accepted = v,
            Some("vigil_collector_late_accepted_total") => stats.late_accepted = v,
            Some("vigil_collector_windows_committed_total") => stats.windows_committed = v,
            Some("vigil_collector_samples_written_total") => stats.samples_written = v,
            Some("vigil_collector_samples_refused_total") => stats.samples_refused = v,
            Some("vigil_collector_invalid_series_samples_total") => stats.invalid_series = v,
            Some("vigil_collector_store_errors_total") => stats.store_errors = v,
            Some("vigil_collector_rejected_total") => {
                if let Some(r) = Reject::ALL.iter().find(|r| Some(r.as_str()) == l.get("reason")) {
                    stats.rejected.add_n(*r, v);
                }
            }
            Some("vigil_collector_path_overflow_total") => {
                if let (Some(s), Some(r)) = (l.get("service"), l.get("route")) {
                    overflows.push((s.to_owned(), r.to_owned(), v));
                }
            }
            _ => {}
        }
    }
    (stats, overflows)
}

/// The collector's self-telemetry as (labels, value) pairs, named `vigil_collector_*`.
pub fn telemetry(stats: &CollectorStats) -> Vec<(Labels, f64)> {
    let metric = |name: &str, v: u64| (Labels::from_pairs([("__name__", name)]), v as f64);
    let mut out = vec![
        metric("vigil_collector_events_total", stats.accepted),
        metric("vigil_collector_late_accepted_total", stats.late_accepted),
        metric("vigil_collector_windows_committed_total", stats.windows_committed),
        metric("vigil_collector_samples_written_total", stats.samples_written),
        metric("vigil_collector_samples_refused_total", stats.samples_refused),
        metric("vigil_collector_invalid_series_samples_total", stats.invalid_series),
        metric("vigil_collector_store_errors_total", stats.store_errors),
        metric("vigil_collector_route_overflow_total", stats.route_overflows),
        metric("vigil_collector_pending_windows", stats.pending_windows),
        metric("vigil_collector_series", stats.series),
        metric("vigil_collector_event_samples_overflow_total", stats.sample_overflow),
    ];
    for (kept, n) in [("error", stats.sampled_errors), ("sample", stats.sampled_uniform)] {
        out.push((
            Labels::from_pairs([("__name__", "vigil_collector_event_samples_total"), ("kept", kept)]),
            n as f64,
        ));
    }
    for r in Reject::ALL {
        out.push((
            Labels::from_pairs([("__name__", "vigil_collector_rejected_total"), ("reason", r.as_str())]),
            stats.rejected.get(r) as f64,
        ));
    }
    for (svc, route, n) in &stats.path_overflows {
        out.push((
            Labels::from_pairs([
                ("__name__", "vigil_collector_path_overflow_total"),
                ("service", svc.as_str()),
                ("route", route.as_str()),
            ]),
            *n as f64,
        ));
    }
    out
}
