//! vigil's own metrics (`vigil_collector_*`, `vigil_tsdb_*`; the server adds `vigil_alerter_*` and
//! `vigil_notify_*`): gathered from the components, served at `/metrics` in Prometheus's text
//! format, and written to the store so they can be queried and alerted on like any other series.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;

use vigil_collector::Collector;
use vigil_tsdb::promql::format_float;
use vigil_tsdb::{Db, Labels, Timestamp};

/// Every self-metric now, as (labels, value).
pub(crate) fn gather(db: &Db, collector: Option<&Collector>) -> Vec<(Labels, f64)> {
    let mut out = Vec::new();
    if let Some(c) = collector {
        out.extend(vigil_collector::pipeline::telemetry(&c.stats()));
    }
    let head = db.stats();
    let counters = db.counters();
    let metric = |name: &str, v: f64| (Labels::from_pairs([("__name__", name)]), v);
    out.push(metric("vigil_tsdb_head_series", head.series as f64));
    out.push(metric(
        "vigil_tsdb_head_samples_appended_total",
        counters.appended.load(Ordering::Relaxed) as f64,
    ));
    out.push(metric(
        "vigil_tsdb_out_of_order_samples_total",
        counters.out_of_order.load(Ordering::Relaxed) as f64,
    ));
    out.push(metric(
        "vigil_tsdb_conflicting_samples_total",
        counters.conflict.load(Ordering::Relaxed) as f64,
    ));
    out.push(metric(
        "vigil_tsdb_commits_total",
        counters.commits.load(Ordering::Relaxed) as f64,
    ));
    out.push(metric(
        "vigil_tsdb_wal_replay_torn_bytes",
        db.replay_stats().torn_bytes as f64,
    ));
    let blocks = db.blocks();
    out.push(metric("vigil_tsdb_blocks", blocks.len() as f64));
    out.push(metric(
        "vigil_tsdb_blocks_bytes",
        blocks.iter().map(|b| b.size()).sum::<u64>() as f64,
    ));
    for (tier, r) in vigil_tsdb::rollup::RESOLUTIONS.iter().enumerate() {
        let rollups = db.rollups(tier);
        let resolution = vigil_tsdb::rollup::resolution_name(*r);
        let labelled = |name: &str, v: f64| {
            (
                Labels::from_pairs([("__name__", name), ("resolution", resolution.as_str())]),
                v,
            )
        };
        out.push(labelled("vigil_tsdb_rollup_blocks", rollups.len() as f64));
        out.push(labelled(
            "vigil_tsdb_rollup_blocks_bytes",
            rollups.iter().map(|b| b.size()).sum::<u64>() as f64,
        ));
    }
    let chunks = db.head_chunks();
    for (place, bytes) in [("memory", chunks.memory_bytes), ("files", chunks.file_bytes)] {
        out.push((
            Labels::from_pairs([("__name__", "vigil_tsdb_head_chunks_bytes"), ("where", place)]),
            bytes as f64,
        ));
    }
    out.push(metric("vigil_tsdb_head_chunks_damaged_total", chunks.damaged as f64));
    for (name, c) in [
        ("vigil_tsdb_rollups_written_total", &counters.rollups),
        ("vigil_tsdb_blocks_cut_total", &counters.blocks_cut),
        ("vigil_tsdb_compactions_total", &counters.compactions),
        ("vigil_tsdb_retention_deleted_blocks_total", &counters.blocks_retired),
        ("vigil_tsdb_wal_checkpoints_total", &counters.checkpoints),
        ("vigil_tsdb_head_series_removed_total", &counters.series_collected),
        ("vigil_tsdb_maintenance_rounds_total", &counters.maintenance_rounds),
    ] {
        out.push(metric(name, c.load(Ordering::Relaxed) as f64));
    }
    if head.max_t >= head.min_t {
        out.push(metric("vigil_tsdb_head_min_time_seconds", head.min_t as f64 / 1000.0));
        out.push(metric("vigil_tsdb_head_max_time_seconds", head.max_t as f64 / 1000.0));
    }
    out.push((
        Labels::from_pairs([("__name__", "vigil_build_info"), ("version", env!("CARGO_PKG_VERSION"))]),
        1.0,
    ));
    out
}

/// Prometheus text exposition (version 0.0.4) of `samples`, grouped by metric name.
pub(crate) fn exposition(samples: &[(Labels, f64)]) -> String {
    let mut by_name: BTreeMap<&str, Vec<&(Labels, f64)>> = BTreeMap::new();
    for s in samples {
        by_name.entry(s.0.metric_name().unwrap_or("")).or_default().push(s);
    }
    let mut out = String::new();
    for (name, series) in by_name {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in series {
            out.push_str(name);
            let rest: Vec<_> = labels.iter().filter(|l| l.name != "__name__").collect();
            if !rest.is_empty() {
                out.push('{');
                for (i, l) in rest.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let escaped = l.value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                    let _ = write!(out, "{}=\"{escaped}\"", l.name);
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", format_float(*v));
        }
    }
    out
}

/// Writes `samples` to the store at time `t`.
pub(crate) fn store(db: &Db, samples: &[(Labels, f64)], t: Timestamp) -> vigil_tsdb::Result<()> {
    let mut app = db.appender();
    for (labels, v) in samples {
        app.append(labels, t, *v)?;
    }
    app.commit().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let s = vec![
            (
                Labels::from_pairs([("__name__", "vigil_collector_rejected_total"), ("reason", "late")]),
                3.0,
            ),
            (Labels::from_pairs([("__name__", "vigil_tsdb_head_series")]), 10.0),
        ];
        assert_eq!(
            exposition(&s),
            "# TYPE vigil_collector_rejected_total counter\nvigil_collector_rejected_total{reason=\"late\"} 3\n\
             # TYPE vigil_tsdb_head_series gauge\nvigil_tsdb_head_series 10\n"
        );
    }
}
