//! The collector shell: decodes input, feeds the aggregator and commits closed windows to the
//! store. Decoding happens in the caller's thread (so concurrent requests decode in parallel);
//! aggregation and the store commit happen under one lock, which keeps windows in order.

use std::sync::Arc;

use parking_lot::Mutex;
use vigil_tsdb::{Db, Labels, Timestamp};

use crate::aggregate::{Aggregator, AggregatorConfig, WindowOutput};
use crate::kong::{KongEvent, Reject, RejectCounts, decode_body, decode_line};
use crate::sink::{self, StoreSink};

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
}

struct Inner {
    agg: Aggregator,
    sink: StoreSink,
    out: Vec<WindowOutput>,
    stats: CollectorStats,
    /// Path overflow counts stored by earlier processes, by (service, route).
    overflow_base: Vec<(String, String, u64)>,
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
        let restored = sink::restore(&db, &mut agg);
        if restored > 0 {
            tracing::info!(series = restored, closed_until = ?agg.closed_until(), "collector state restored from the store");
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
            }),
        }
    }

    /// The store written to.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Decodes an HTTP body (one event, a batch, or NDJSON) and aggregates it.
    pub fn ingest_body(&self, body: &[u8], now: Timestamp) -> vigil_tsdb::Result<IngestReport> {
        let mut events = Vec::new();
        let mut rejected = RejectCounts::default();
        decode_body(body, &mut events, &mut rejected);
        self.ingest(&events, rejected, now)
    }

    /// Decodes NDJSON lines and aggregates them.
    pub fn ingest_lines<'a>(
        &self,
        lines: impl IntoIterator<Item = &'a [u8]>,
        now: Timestamp,
    ) -> vigil_tsdb::Result<IngestReport> {
        let mut events = Vec::new();
        let mut rejected = RejectCounts::default();
        for line in lines {
            decode_line(line, &mut events, &mut rejected);
        }
        self.ingest(&events, rejected, now)
    }

    /// Aggregates decoded events; `rejected` carries the decoder's rejections into the totals.
    pub fn ingest(
        &self,
        events: &[KongEvent<'_>],
        mut rejected: RejectCounts,
        now: Timestamp,
    ) -> vigil_tsdb::Result<IngestReport> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let mut accepted = 0;
        for ev in events {
            match inner.agg.apply(ev, now, &mut inner.out) {
                Ok(()) => accepted += 1,
                Err(r) => rejected.add(r),
            }
        }
        inner.stats.accepted += accepted;
        inner.stats.rejected.merge(&rejected);
        let report = IngestReport { accepted, rejected };
        commit(&self.db, inner)?;
        Ok(report)
    }

    /// Lets wall-clock time advance a quiet stream (call every second or so).
    pub fn tick(&self, now: Timestamp) -> vigil_tsdb::Result<()> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.agg.tick(now, &mut inner.out);
        commit(&self.db, inner)
    }

    /// Closes and commits every open window.
    pub fn flush(&self) -> vigil_tsdb::Result<()> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.agg.flush(&mut inner.out);
        commit(&self.db, inner)
    }

    /// Running totals.
    pub fn stats(&self) -> CollectorStats {
        let inner = self.inner.lock();
        let mut s = inner.stats.clone();
        s.late_accepted += inner.agg.stats().late_accepted;
        s.series = inner.agg.series().len() as u64;
        s.pending_windows = inner.sink.pending() as u64;
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
    pub fn with_aggregator<R>(
        &self,
        f: impl FnOnce(&mut Aggregator, &mut Vec<WindowOutput>) -> R,
    ) -> vigil_tsdb::Result<R> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let r = f(&mut inner.agg, &mut inner.out);
        commit(&self.db, inner)?;
        Ok(r)
    }
}

fn commit(db: &Db, inner: &mut Inner) -> vigil_tsdb::Result<()> {
    if inner.out.is_empty() && inner.sink.pending() == 0 {
        return Ok(());
    }
    let outputs = std::mem::take(&mut inner.out);
    let s = inner.sink.write(db, inner.agg.series(), outputs)?;
    inner.stats.windows_committed += s.commits;
    inner.stats.samples_written += s.store.appended;
    inner.stats.samples_refused += s.store.rejected();
    if s.store.rejected() > 0 {
        tracing::warn!(refused = s.store.rejected(), "store refused collector samples");
    }
    Ok(())
}

/// The collector's counters as last written to the store, so that they continue across restarts
/// and imports: they count for the data directory, not for one process.
fn restore_stats(db: &Db) -> (CollectorStats, Vec<(String, String, u64)>) {
    let mut stats = CollectorStats::default();
    let mut overflows = Vec::new();
    let Ok(m) = vigil_tsdb::Matcher::new(vigil_tsdb::MatchOp::Regex, "__name__", "vigil_collector_.+_total") else {
        return (stats, overflows);
    };
    for series in db.head().matching_series(&[m]) {
        let Some(v) = series.last_sample().1.map(|s| s.v as u64) else {
            continue;
        };
        let l = &series.labels;
        match l.metric_name() {
            Some("vigil_collector_events_total") => stats.accepted = v,
            Some("vigil_collector_late_accepted_total") => stats.late_accepted = v,
            Some("vigil_collector_windows_committed_total") => stats.windows_committed = v,
            Some("vigil_collector_samples_written_total") => stats.samples_written = v,
            Some("vigil_collector_samples_refused_total") => stats.samples_refused = v,
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
    let mut out = vec![
        (
            Labels::from_pairs([("__name__", "vigil_collector_events_total")]),
            stats.accepted as f64,
        ),
        (
            Labels::from_pairs([("__name__", "vigil_collector_windows_committed_total")]),
            stats.windows_committed as f64,
        ),
        (
            Labels::from_pairs([("__name__", "vigil_collector_samples_written_total")]),
            stats.samples_written as f64,
        ),
        (
            Labels::from_pairs([("__name__", "vigil_collector_samples_refused_total")]),
            stats.samples_refused as f64,
        ),
        (
            Labels::from_pairs([("__name__", "vigil_collector_pending_windows")]),
            stats.pending_windows as f64,
        ),
        (
            Labels::from_pairs([("__name__", "vigil_collector_series")]),
            stats.series as f64,
        ),
    ];
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
