//! Start times through every layer of the store: appended with samples, replayed from the WAL
//! and from a checkpoint, written into blocks, carried through compaction and rollups, and read
//! by PromQL the same way from all of them.

use vigil_tsdb::promql::{Engine, Value};
use vigil_tsdb::{Db, Labels, MatchOp, Matcher, Options, Queryable, Timestamp};

const HOUR: i64 = 3_600_000;
/// 2026-11-23 00:00 UTC, a block boundary.
const T0: i64 = 1_795_392_000_000;
const STEP: i64 = 10_000;
const HOURS: i64 = 13;

fn series(name: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("route", "/v2/payments")])
}

/// Sample `i` of each test series: (name, value, start time).
fn samples(i: i64) -> [(&'static str, f64, Timestamp); 4] {
    let t = T0 + i * STEP;
    // A cumulative counter restarted every 3 h, its value carried on (so only its start time
    // shows the reset), with one start time per life.
    let life = (t - T0) / (3 * HOUR);
    let cumulative_start = T0 + life * 3 * HOUR - 5_000;
    // A delta series: each sample counts since the previous one.
    let delta_start = t - STEP;
    // Start times known only from hour 5 on.
    let late_start = if t >= T0 + 5 * HOUR { T0 + 5 * HOUR - 1_000 } else { 0 };
    [
        ("cumulative_total", i as f64, cumulative_start),
        ("delta_total", 5.0, delta_start),
        ("late_total", i as f64, late_start),
        ("plain_total", i as f64, 0),
    ]
}

fn fill(db: &Db) {
    for i in 0..HOURS * HOUR / STEP {
        let mut app = db.appender();
        for (name, v, st) in samples(i) {
            app.append_with_start(&series(name), T0 + i * STEP, v, st)
                .expect("append");
        }
        app.commit().expect("commit");
    }
}

/// Checks that every series reads back with its start times (and `plain_total` with none).
fn check_starts(db: &Db, when: &str) {
    for (k, name) in ["cumulative_total", "delta_total", "late_total", "plain_total"]
        .iter()
        .enumerate()
    {
        let m = [Matcher::new(MatchOp::Equal, "__name__", *name).expect("matcher")];
        let got = db.select(&m, i64::MIN, i64::MAX).expect("select");
        assert_eq!(got.len(), 1, "{when}: {name}");
        let s = &got[0];
        assert_eq!(s.samples.len() as i64, HOURS * HOUR / STEP, "{when}: {name}");
        let want: Vec<Timestamp> = (0..HOURS * HOUR / STEP).map(|i| samples(i)[k].2).collect();
        match &s.starts {
            None => assert!(want.iter().all(|&st| st == 0), "{when}: {name} lost its start times"),
            Some(starts) => {
                let bad = starts.iter().zip(&want).position(|(a, b)| a != b);
                assert!(
                    bad.is_none() && starts.len() == want.len(),
                    "{when}: {name}: first wrong at {bad:?}"
                );
            }
        }
        if *name == "plain_total" {
            assert!(s.starts.is_none(), "{when}: a series without start times carries none");
        }
    }
}

/// The 5-minute rollups keep what counters need of their start times: every sample of the delta
/// series (each one is a reset), and the kept samples' start times of the cumulative one.
fn check_rollups(db: &Db) {
    let read = |name: &str| {
        let m = [Matcher::new(MatchOp::Equal, "__name__", name).expect("matcher")];
        let got = db
            .select_tiers(&m, T0, T0 + 10 * HOUR - 1, 300_000, 300_000)
            .expect("select");
        got.into_iter().next().expect("a series")
    };
    let delta = read("delta_total");
    assert_eq!(
        delta.samples.len() as i64,
        10 * HOUR / STEP,
        "a delta series is kept whole"
    );
    let cumulative = read("cumulative_total");
    assert!(
        (cumulative.samples.len() as i64) < HOUR / STEP,
        "{}",
        cumulative.samples.len()
    );
    let starts = cumulative.starts.expect("the rollup keeps start times");
    for (s, st) in cumulative.samples.iter().zip(starts) {
        assert_eq!(st, samples((s.t - T0) / STEP)[0].2, "at {}", s.t);
    }
}

const QUERIES: &[&str] = &[
    "resets(cumulative_total[13h])",
    "increase(cumulative_total[1h])",
    "rate(delta_total[5m])",
    "increase(delta_total[6h])",
    "irate(late_total[1m])",
    "start_timestamp(cumulative_total)",
    "start_timestamp(late_total)",
];

/// The answers to [`QUERIES`] at a few times, as text.
fn answers(db: &Db) -> Vec<String> {
    let engine = Engine::default();
    let mut out = Vec::new();
    for q in QUERIES {
        for h in [1, 3, 6, 12] {
            let t = T0 + h * HOUR + 30_000;
            let v = engine.instant_query(db, q, t).expect("query");
            let Value::Vector(v) = v else {
                panic!("{q}: not a vector")
            };
            out.push(format!("{q} @{h}h: {:?}", v.iter().map(|s| s.v).collect::<Vec<_>>()));
        }
    }
    out
}

#[test]
fn start_times_survive_the_wal_checkpoints_blocks_compaction_and_rollups() {
    let reference = Db::in_memory();
    fill(&reference);
    let want = answers(&reference);
    // The start times matter: the cumulative counter was reset twice by 6 h 30 s.
    assert!(
        want.iter().any(|a| a == "resets(cumulative_total[13h]) @6h: [2.0]"),
        "{want:#?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let opts = || Options {
        block_range_ms: 2 * HOUR,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts()).expect("open");
    fill(&db);
    check_starts(&db, "head");
    drop(db);

    let db = Db::open(dir.path(), opts()).expect("reopen");
    check_starts(&db, "WAL replay");
    let report = db.maintain().expect("maintain");
    assert!(report.cut > 0 && report.compacted > 0, "{report:?}");
    check_starts(&db, "blocks, compacted");
    check_rollups(&db);
    assert_eq!(answers(&db), want, "blocks and rollups answer as the head did");
    drop(db);

    let db = Db::open(dir.path(), opts()).expect("reopen");
    assert!(db.replay_stats().checkpoint.is_some());
    check_starts(&db, "checkpoint and blocks");
    assert_eq!(answers(&db), want);
}
