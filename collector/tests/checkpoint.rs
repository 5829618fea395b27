//! A collector that checkpoints, crashed at any point and restarted from the store, or made to
//! give back what it read since its last commit, ends with exactly the series of one that ran
//! through: the stored positions and open windows make the replay count every event once.

use std::collections::BTreeMap;
use std::sync::Arc;

use vigil_collector::sim::{SimEvent, Simulator, Topology};
use vigil_collector::{AggregatorConfig, Collector, RejectCounts};
use vigil_tsdb::{Db, MatchOp, Matcher, Timestamp};

/// Friday 2026-11-20, 12:00 in Jakarta.
const T0: Timestamp = 1_795_150_800_000;
const POSITION: &str = "test/next-batch";

/// Batches of simulated events, a second each, with a little disorder inside each batch.
fn batches() -> Vec<Vec<SimEvent>> {
    let mut sim = Simulator::new(Topology::default(), Vec::new(), 3);
    sim.rate_scale = 0.2;
    (0..150)
        .map(|i| {
            let mut b = Vec::new();
            sim.generate(T0 + i * 1000, T0 + (i + 1) * 1000, |e| b.push(e));
            b.reverse();
            b
        })
        .collect()
}

/// Adds a batch as the Kafka source does (tentatively), and commits with the position after it
/// when windows close.
fn feed(c: &Collector, batch: &[SimEvent], next: usize) -> bool {
    let events: Vec<_> = batch.iter().map(SimEvent::as_kong).collect();
    let newest = events.iter().map(|e| e.started_at).max();
    let wm = newest.map(|t| t - 5_000);
    let report = c
        .add_from_source(&events, RejectCounts::default(), T0 + 3_600_000)
        .expect("ingest");
    if wm.is_some_and(|wm| c.closes_at(wm)) {
        let pos = (POSITION.to_owned(), (next as u64).to_le_bytes().to_vec());
        c.commit_from_source([pos], wm).expect("commit");
    }
    report.rejected.total() == 0
}

/// The position the store holds.
fn stored(db: &Db) -> usize {
    db.mark(POSITION)
        .map_or(0, |v| u64::from_le_bytes(v.try_into().expect("8 bytes")) as usize)
}

/// Every `vigil_http_*` series' newest value.
fn finals(db: &Db) -> BTreeMap<String, f64> {
    let m = Matcher::new(MatchOp::Regex, "__name__", "vigil_http_.+").expect("matcher");
    db.last_samples(&[m])
        .into_iter()
        .filter_map(|(l, _, v)| Some((l.to_string(), v?.v)))
        .collect()
}

/// Series whose values differ (sums of latencies to a relative 1e-9: they add in another
/// order), the first few.
fn differences(got: &BTreeMap<String, f64>, want: &BTreeMap<String, f64>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    keys.into_iter()
        .filter(|k| match (got.get(*k), want.get(*k)) {
            (Some(a), Some(b)) if k.contains("_sum{") => (a - b).abs() > 1e-9 * b.abs().max(1.0),
            (a, b) => a != b,
        })
        .take(5)
        .map(|k| format!("{k}: got {:?}, want {:?}", got.get(k), want.get(k)))
        .collect()
}

fn run_through(batches: &[Vec<SimEvent>]) -> BTreeMap<String, f64> {
    let db = Arc::new(Db::in_memory());
    let c = Collector::new(db.clone(), AggregatorConfig::default());
    c.enable_checkpoints();
    for (i, b) in batches.iter().enumerate() {
        assert!(feed(&c, b, i + 1));
    }
    c.commit_from_source([], None).expect("commit");
    c.flush().expect("flush");
    finals(&db)
}

#[test]
fn crashes_at_any_point_lose_and_double_nothing() {
    let batches = batches();
    let events: usize = batches.iter().map(Vec::len).sum();
    assert!(events > 1000, "{events} events");
    let want = run_through(&batches);
    let total: f64 = want
        .iter()
        .filter(|(k, _)| k.starts_with("vigil_http_requests_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total as usize, events);

    // Crash after each of these batches (the collector is dropped without a flush: only what
    // its commits stored survives), restart from the store, replay from the stored position.
    for crashes in [vec![7], vec![12, 40, 41, 99], vec![0, 1, 2, 3, 149]] {
        let mut pending = crashes.clone();
        let db = Arc::new(Db::in_memory());
        let mut next = 0;
        let mut c = Collector::new(db.clone(), AggregatorConfig::default());
        c.enable_checkpoints();
        while next < batches.len() {
            feed(&c, &batches[next], next + 1);
            if let Some(i) = pending.iter().position(|&k| k == next) {
                pending.swap_remove(i);
                drop(c);
                c = Collector::new(db.clone(), AggregatorConfig::default());
                c.enable_checkpoints();
                next = stored(&db);
                continue;
            }
            next += 1;
        }
        c.commit_from_source([], None).expect("commit");
        c.flush().expect("flush");
        let diff = differences(&finals(&db), &want);
        assert!(diff.is_empty(), "crashes after batches {crashes:?}: {diff:#?}");
    }
}

#[test]
fn what_is_given_back_counts_once_when_read_again() {
    let batches = batches();
    let want = run_through(&batches);
    // After these batches the source gives back what it read since its last commit (its
    // partitions go while Kafka refuses the commit) and reads it again from the stored
    // position.
    for rollbacks in [vec![5], vec![20, 21, 60, 61, 62, 148], vec![0, 149]] {
        let mut pending = rollbacks.clone();
        let db = Arc::new(Db::in_memory());
        let c = Collector::new(db.clone(), AggregatorConfig::default());
        c.enable_checkpoints();
        let mut next = 0;
        while next < batches.len() {
            feed(&c, &batches[next], next + 1);
            if let Some(i) = pending.iter().position(|&k| k == next) {
                pending.swap_remove(i);
                c.discard_tentative();
                next = stored(&db);
                continue;
            }
            next += 1;
        }
        c.commit_from_source([], None).expect("commit");
        c.flush().expect("flush");
        let diff = differences(&finals(&db), &want);
        assert!(diff.is_empty(), "rollbacks after batches {rollbacks:?}: {diff:#?}");
    }
}
