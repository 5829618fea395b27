//! Rollups end to end: blocks get 1 m and 5 m downsampled copies, compaction and deletes keep
//! them in step with the raw blocks, they outlive raw retention, and the engine reads them for
//! coarse steps with the answers raw data gives.

use vigil_tsdb::promql::{Engine, SourceResolution, Value};
use vigil_tsdb::rollup::RESOLUTIONS;
use vigil_tsdb::{Db, Labels, Matcher, Options, Queryable, Sample, stale_nan};

const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;
/// 2026-11-23 00:00 UTC, a day boundary.
const T0: i64 = 1_795_392_000_000;
const STEP: i64 = 10_000;
const HOURS: i64 = 30;

fn counter(route: &str) -> Labels {
    Labels::from_pairs([("__name__", "vigil_http_requests_total"), ("route", route)])
}

fn gauge() -> Labels {
    Labels::from_pairs([("__name__", "vigil_inflight"), ("route", "/a")])
}

/// A counter growing 3 per 10 s that restarts from 0 every 7 hours and 13 minutes.
fn counter_value(i: i64) -> f64 {
    let restart = (7 * HOUR + 13 * MINUTE) / STEP;
    (3 * (i % restart)) as f64
}

/// A gauge wandering up and down.
fn gauge_value(i: i64) -> f64 {
    ((i * 7919) % 97) as f64
}

/// Every series every 10 s for `HOURS`; the gauge goes stale for an hour in the middle.
fn fill(db: &Db) {
    let gap = (10 * HOUR / STEP)..(11 * HOUR / STEP);
    for i in 0..HOURS * HOUR / STEP {
        let t = T0 + i * STEP;
        let mut app = db.appender();
        app.append(&counter("/a"), t, counter_value(i)).expect("append");
        app.append(&counter("/b"), t, 2.0 * counter_value(i)).expect("append");
        for (le, v) in [("0.5", counter_value(i) / 3.0), ("+Inf", counter_value(i))] {
            let bucket = Labels::from_pairs([("__name__", "vigil_latency_seconds_bucket"), ("le", le)]);
            app.append(&bucket, t, v).expect("append");
        }
        if i == gap.start {
            app.append(&gauge(), t, stale_nan()).expect("append");
        } else if !gap.contains(&i) {
            app.append(&gauge(), t, gauge_value(i)).expect("append");
        }
        app.commit().expect("commit");
    }
}

fn open(dir: &std::path::Path, opts: Options) -> Db {
    Db::open(dir, opts).expect("open")
}

fn select(db: &Db, name: &str, resolution: i64) -> Vec<(Labels, Vec<Sample>)> {
    db.select_tiers(
        &[Matcher::equal("__name__", name)],
        i64::MIN,
        i64::MAX,
        resolution,
        i64::MAX,
    )
    .expect("select")
    .into_iter()
    .map(|s| (s.labels, s.samples))
    .collect()
}

fn matrix(v: Value) -> Vec<(Labels, Vec<(i64, f64)>)> {
    match v {
        Value::Matrix(m) => m
            .into_iter()
            .map(|s| (s.metric, s.points.into_iter().map(|p| (p.t, p.v)).collect()))
            .collect(),
        other => panic!("expected a matrix, got {other:?}"),
    }
}

#[test]
fn every_block_gets_rollups_that_follow_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), Options::default());
    fill(&db);
    db.flush_to_blocks().expect("flush");
    db.maintain().expect("maintain");
    let raw_ids: Vec<String> = db.blocks().iter().map(|b| b.meta().id.clone()).collect();
    assert!(raw_ids.len() >= 2, "30 hours make several blocks: {raw_ids:?}");
    for (tier, r) in RESOLUTIONS.iter().enumerate() {
        let rollups = db.rollups(tier);
        let mut sources: Vec<String> = rollups.iter().map(|b| b.meta().sources[0].clone()).collect();
        sources.sort();
        let mut want = raw_ids.clone();
        want.sort();
        assert_eq!(sources, want, "one rollup per raw block at {r} ms, none left over");
        assert!(rollups.iter().all(|b| b.meta().resolution_ms == *r));
    }

    // Rollups are what the raw data downsampled: a subset of its samples, one per bucket for a
    // gauge, more for counters across resets.
    let raw = select(&db, "vigil_inflight", 0);
    for r in RESOLUTIONS {
        let rolled = select(&db, "vigil_inflight", r);
        assert_eq!(rolled.len(), 1);
        let (raw_samples, rolled_samples) = (&raw[0].1, &rolled[0].1);
        assert!(
            // A bucket on a block boundary may keep one sample per block.
            rolled_samples.len() <= raw_samples.len() / (r / STEP) as usize + 20,
            "{} rolled of {} raw at {r}: {:?}",
            rolled_samples.len(),
            raw_samples.len(),
            &rolled_samples[..10]
        );
        for s in rolled_samples {
            let same = raw_samples.iter().find(|x| x.t == s.t).expect("a raw sample");
            assert_eq!(same.v.to_bits(), s.v.to_bits());
        }
    }

    // A reopened store finds the same rollups and answers alike.
    let before: Vec<_> = RESOLUTIONS
        .iter()
        .map(|&r| select(&db, "vigil_http_requests_total", r))
        .collect();
    drop(db);
    let db = open(dir.path(), Options::default());
    let after: Vec<_> = RESOLUTIONS
        .iter()
        .map(|&r| select(&db, "vigil_http_requests_total", r))
        .collect();
    assert_eq!(before, after);
    assert_eq!(db.maintain().expect("maintain").rollups, 0, "nothing is made twice");
}

#[test]
fn coarse_steps_read_rollups_and_answer_as_raw_data_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), Options::default());
    fill(&db);
    db.flush_to_blocks().expect("flush");
    let auto = Engine::default().with_source_resolution(SourceResolution::UpTo(i64::MAX));
    let raw = Engine::default().with_source_resolution(SourceResolution::Raw);
    let (start, end) = (T0 + HOUR, T0 + (HOURS - 1) * HOUR);

    // Vector selectors at steps on bucket ends: exactly the raw answer, staleness included.
    for q in [
        "vigil_inflight",
        "vigil_http_requests_total",
        "timestamp(vigil_inflight)",
    ] {
        for step in [MINUTE, 5 * MINUTE, HOUR] {
            let a = matrix(auto.range_query(&db, q, start, end, step).expect("query"));
            let b = matrix(raw.range_query(&db, q, start, end, step).expect("query"));
            assert_eq!(a, b, "{q} at step {step}");
        }
    }

    // rate and increase see every reset; only the extrapolation at the window edges differs.
    for (q, step) in [
        ("rate(vigil_http_requests_total[5m])", 5 * MINUTE),
        ("sum(increase(vigil_http_requests_total[1h]))", HOUR),
        ("rate(vigil_http_requests_total[30m])", 10 * MINUTE),
        (
            "histogram_quantile(0.9, rate(vigil_latency_seconds_bucket[30m]))",
            10 * MINUTE,
        ),
    ] {
        let a = matrix(auto.range_query(&db, q, start, end, step).expect("query"));
        let b = matrix(raw.range_query(&db, q, start, end, step).expect("query"));
        assert_eq!(a.len(), b.len(), "{q}");
        for ((la, pa), (lb, pb)) in a.iter().zip(&b) {
            assert_eq!(la, lb);
            assert_eq!(pa.len(), pb.len(), "{q} {la}");
            for (x, y) in pa.iter().zip(pb) {
                assert_eq!(x.0, y.0);
                // A window holding a restart loses what the counter gained before the first
                // sample the window sees; elsewhere the steady counter makes them equal.
                let close = (x.1 - y.1).abs() <= 0.1 * y.1.abs().max(1.0);
                assert!(close, "{q} {la} at {}: rollups {} raw {}", x.0, x.1, y.1);
            }
        }
    }

    // Fine steps, unaligned steps and functions that count samples read raw samples.
    for (q, s, step) in [
        ("count_over_time(vigil_inflight[1h])", start, HOUR),
        ("vigil_inflight", start + 1_000, 5 * MINUTE),
        ("rate(vigil_http_requests_total[5m])", start, 30_000),
        ("irate(vigil_http_requests_total[30m])", start, 10 * MINUTE),
    ] {
        let a = matrix(auto.range_query(&db, q, s, end, step).expect("query"));
        let b = matrix(raw.range_query(&db, q, s, end, step).expect("query"));
        assert_eq!(a, b, "{q} at step {step} from {s}");
    }
}

#[test]
fn rollups_outlive_raw_retention_and_answer_for_old_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Raw samples and 1 m rollups for 4 hours (blocks of the last day and a bit), 5 m ones
    // without a limit.
    let opts = Options {
        retention_ms: Some(4 * HOUR),
        rollup_retention_ms: [Some(4 * HOUR), None],
        ..Options::default()
    };
    let db = open(dir.path(), opts);
    fill(&db);
    db.flush_to_blocks().expect("flush");
    db.maintain().expect("maintain");
    let oldest_raw = db.blocks().first().map(|b| b.meta().min_t).expect("raw blocks");
    assert_eq!(oldest_raw, T0 + 24 * HOUR, "the first day's raw block is gone");
    let oldest_1m = db.rollups(0).first().map(|b| b.meta().min_t).expect("1m rollups");
    assert_eq!(oldest_1m, oldest_raw, "1 m rollups went with it");
    let oldest_5m = db.rollups(1).first().map(|b| b.meta().min_t).expect("5m rollups");
    assert!(oldest_5m < T0 + 5 * MINUTE, "5 m rollups are kept");

    // Where raw samples are gone, even a raw-step query gets the rollups' samples; from there
    // on, raw ones.
    let got = select(&db, "vigil_inflight", 0);
    let samples = &got[0].1;
    let first_raw = samples.iter().position(|s| s.t >= oldest_raw).expect("raw part");
    assert!(first_raw > 200, "a day of 5 m rollups");
    let gaps: Vec<i64> = samples[..first_raw].windows(2).map(|w| w[1].t - w[0].t).collect();
    // 5 m apart, but for the bucket ending in a staleness marker (its last value is kept) and
    // the last bucket of the block (its end is the next block's first sample).
    assert!(gaps.iter().filter(|&&g| g < 5 * MINUTE).count() <= 3, "{gaps:?}");
    assert_eq!(
        samples[first_raw..].len(),
        (6 * HOUR / STEP) as usize,
        "six hours of raw samples"
    );
    let engine = Engine::default();
    let v = matrix(
        engine
            .range_query(&db, "vigil_inflight", T0 + HOUR, T0 + 2 * HOUR, MINUTE)
            .expect("query"),
    );
    assert_eq!(v[0].1.len(), 61, "an hour at 1 m steps from the rollups");
}

#[test]
fn deleted_series_leave_the_rollups_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        retention_ms: Some(4 * HOUR),
        ..Options::default()
    };
    let db = open(dir.path(), opts);
    fill(&db);
    db.flush_to_blocks().expect("flush");
    db.maintain().expect("maintain");
    assert!(
        db.rollups(0).len() > db.blocks().len(),
        "some rollups outlived their raw blocks"
    );
    let deleted = db
        .delete_series(&[vec![Matcher::equal("route", "/b")]])
        .expect("delete");
    assert_eq!(deleted, 1);
    for r in [0].into_iter().chain(RESOLUTIONS) {
        let left = select(&db, "vigil_http_requests_total", r);
        assert_eq!(left.len(), 1, "at resolution {r}");
        assert_eq!(left[0].0, counter("/a"));
    }
    // Rollups still stand for the current raw blocks.
    let raw_ids: Vec<String> = db.blocks().iter().map(|b| b.meta().id.clone()).collect();
    for id in &raw_ids {
        assert!(db.rollups(0).iter().any(|b| b.meta().sources.contains(id)));
    }
    drop(db);
    let db = open(dir.path(), Options::default());
    let series = db
        .series(
            &[Matcher::equal("__name__", "vigil_http_requests_total")],
            i64::MIN,
            i64::MAX,
        )
        .expect("series");
    assert_eq!(series, vec![counter("/a")]);
}

#[test]
fn the_size_limit_counts_rollups_and_deletes_the_oldest_of_any_kind() {
    let every = |db: &Db| -> Vec<(String, i64, u64)> {
        [db.blocks(), db.rollups(0), db.rollups(1)]
            .iter()
            .flatten()
            .map(|b| (b.meta().id.clone(), b.meta().max_t, b.size()))
            .collect()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), Options::default());
    fill(&db);
    db.flush_to_blocks().expect("flush");
    db.maintain().expect("maintain");
    let before = every(&db);
    let total: u64 = before.iter().map(|b| b.2).sum();
    drop(db);
    // Room for all but about a tenth: the blocks whose newest samples are oldest go, whatever
    // their tier.
    let limit = total * 9 / 10;
    let db = open(
        dir.path(),
        Options {
            max_bytes: Some(limit),
            ..Options::default()
        },
    );
    let report = db.maintain().expect("maintain");
    assert!(report.deleted >= 1, "{report:?}");
    let after = every(&db);
    assert!(after.iter().map(|b| b.2).sum::<u64>() <= limit);
    let gone: Vec<_> = before.iter().filter(|b| !after.contains(b)).collect();
    assert_eq!(gone.len(), report.deleted);
    let newest_gone = gone.iter().map(|b| b.1).max().expect("some gone");
    assert!(
        after.iter().all(|b| b.1 >= newest_gone),
        "the oldest went first: {gone:?}"
    );
}

/// Appends the counter "/a" every 10 s for steps `from..to`.
fn fill_range(db: &Db, from: i64, to: i64) {
    for i in from..to {
        let mut app = db.appender();
        app.append(&counter("/a"), T0 + i * STEP, counter_value(i))
            .expect("append");
        app.commit().expect("commit");
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

#[test]
fn rollups_of_replaced_blocks_left_by_a_crash_are_removed_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let aside = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), Options::default());
    fill_range(&db, 0, 5 * HOUR / STEP);
    db.flush_to_blocks().expect("flush");
    assert_eq!(db.blocks().len(), 3, "0-2, 2-4 and 4-5 h, not compacted yet");
    copy_dir(&dir.path().join("rollups"), aside.path());
    fill_range(&db, 5 * HOUR / STEP, 8 * HOUR / STEP);
    db.flush_to_blocks().expect("flush");
    assert!(db.blocks().len() < 4, "0-6 h compacted");
    // Bucket ends: what the rollups hold (the head's unwritten tail adds raw samples).
    let bucket_ends = |db: &Db| {
        let mut got = select(db, "vigil_http_requests_total", 60_000);
        got[0].1.retain(|s| s.t % MINUTE == 0);
        got
    };
    let want = bucket_ends(&db);
    drop(db);
    // As if a crash had come after compaction deleted the raw sources but before it replaced
    // their rollups: the old rollups are back on disk.
    copy_dir(aside.path(), &dir.path().join("rollups"));
    let db = open(dir.path(), Options::default());
    for tier in 0..RESOLUTIONS.len() {
        let raw: Vec<String> = db.blocks().iter().map(|b| b.meta().id.clone()).collect();
        for r in db.rollups(tier) {
            assert!(
                raw.contains(&r.meta().sources[0]),
                "a rollup of a replaced block stayed"
            );
        }
    }
    db.maintain().expect("maintain");
    assert_eq!(bucket_ends(&db), want);
}

#[test]
fn late_samples_in_the_head_unaligned_last_over_time_and_the_raw_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        retention_ms: Some(4 * HOUR),
        ..Options::default()
    };
    let db = open(dir.path(), opts);
    fill(&db);
    db.flush_to_blocks().expect("flush");
    db.maintain().expect("maintain");
    // A lagging series arrives for hours that rollups already cover; it sits in the head.
    let lagging = Labels::from_pairs([("__name__", "vigil_inflight"), ("route", "/late")]);
    for i in 0..(HOUR / STEP) {
        let mut app = db.appender();
        app.append(&lagging, T0 + 25 * HOUR + i * STEP, 1.0).expect("append");
        app.commit().expect("commit");
    }
    let auto = Engine::default().with_source_resolution(SourceResolution::UpTo(i64::MAX));
    let raw = Engine::default().with_source_resolution(SourceResolution::Raw);
    let (start, end) = (T0 + 24 * HOUR, T0 + 27 * HOUR);
    for (q, s, step) in [
        ("vigil_inflight", start, 5 * MINUTE),
        ("last_over_time(vigil_inflight[10m])", start, 5 * MINUTE),
        ("last_over_time(vigil_inflight[10m])", start + 150_000, 5 * MINUTE),
    ] {
        let a = matrix(auto.range_query(&db, q, s, end, step).expect("query"));
        let b = matrix(raw.range_query(&db, q, s, end, step).expect("query"));
        assert_eq!(a, b, "{q} from {s}");
        assert_eq!(a.len(), 2, "{q}: the late series too");
    }
    // Past raw retention, rollups answer unless the caller caps the resolution at raw.
    let old = |max| {
        db.select_tiers(&[Matcher::equal("__name__", "vigil_inflight")], T0, T0 + HOUR, 0, max)
            .expect("select")
    };
    assert!(!old(i64::MAX).is_empty());
    assert!(old(0).is_empty());
    // Rollups past their own retention are not written again every round.
    let again = db.maintain().expect("maintain");
    assert_eq!((again.rollups, again.deleted), (0, 0), "{again:?}");
}

#[test]
fn rollups_standing_alone_are_merged_into_long_windows() {
    const DAY: i64 = 24 * HOUR;
    // Four weeks before T0: the data ends in the past (retention counts back from the newest
    // sample, but never from the future), and on a day that starts 2 and 4 day windows.
    const BASE: i64 = T0 - 28 * DAY;
    let dir = tempfile::tempdir().expect("tempdir");
    let aside = tempfile::tempdir().expect("tempdir");
    // Rollups kept 20 and 40 days: merged into windows of 2 and 4 days (a tenth of that).
    let rollups_kept = [Some(20 * DAY), Some(40 * DAY)];
    let opts = |raw: Option<i64>| Options {
        retention_ms: raw,
        rollup_retention_ms: rollups_kept,
        ..Options::default()
    };
    // Eight days of a resetting counter and a gauge, every minute, everything kept; a second
    // counter on even days only and a third on day 3 only, so blocks hold different series.
    let db = open(dir.path(), opts(None));
    for i in 0..8 * DAY / MINUTE {
        let mut app = db.appender();
        let t = BASE + i * MINUTE;
        let day = i / (DAY / MINUTE);
        app.append(&counter("/a"), t, counter_value(i)).expect("append");
        app.append(&gauge(), t, gauge_value(i)).expect("append");
        if day % 2 == 0 {
            app.append(&counter("/b"), t, counter_value(i + 7)).expect("append");
        }
        if day == 3 {
            app.append(&counter("/c"), t, counter_value(i + 11)).expect("append");
        }
        app.commit().expect("commit");
        if i % (DAY / MINUTE) == 0 {
            db.maintain().expect("maintain");
        }
    }
    db.flush_to_blocks().expect("flush");
    db.maintain().expect("maintain");
    let answers = |db: &Db| -> Vec<_> {
        RESOLUTIONS
            .iter()
            .flat_map(|&r| {
                [
                    select(db, "vigil_http_requests_total", r),
                    select(db, "vigil_inflight", r),
                ]
            })
            .collect()
    };
    let want = answers(&db);
    assert_eq!(want[0].len(), 3, "three counters");
    let raw_blocks = db.blocks().len();
    // One-minute data gets no 1 m rollups while its raw blocks stand (they would be copies);
    // 5 m ones, one per raw block.
    assert!(db.rollups(0).is_empty());
    let rollups = db.rollups(1);
    assert_eq!(rollups.len(), raw_blocks, "one 5 m rollup per raw block");
    assert!(rollups.iter().all(|b| b.meta().max_t - b.meta().min_t < DAY));
    drop(db);
    copy_dir(&dir.path().join("rollups"), aside.path());

    // Raw samples kept a day: the raw blocks of the days before get the 1 m rollups they
    // lacked as they go; the rollups of those days stand alone and are merged, per window that
    // raw data no longer reaches into.
    let db = open(dir.path(), opts(Some(DAY)));
    let report = db.maintain().expect("maintain");
    let raw_from = db.blocks().first().expect("raw blocks").meta().min_t;
    assert_eq!(raw_from, BASE + 6 * DAY, "the last two days stay raw");
    for (tier, window) in [(0, 2 * DAY), (1, 4 * DAY)] {
        let rollups = db.rollups(tier);
        let merged: Vec<_> = rollups.iter().filter(|b| b.meta().level > 3).collect();
        for b in &merged {
            let w = b.meta().min_t.div_euclid(window);
            assert_eq!(b.meta().max_t.div_euclid(window), w, "within one window");
            assert!((w + 1) * window <= raw_from, "only windows raw data left");
            assert!(b.meta().sources.len() > 1);
            assert_eq!(b.meta().resolution_ms, RESOLUTIONS[tier]);
        }
        // 2 d windows: days 0-1, 2-3, 4-5 (BASE's day is a multiple of both windows since the
        // epoch); 4 d windows: days 0-3 only (days 4-7 reach into raw data).
        let (want_merged, unsettled_from) = if tier == 0 { (3, 6 * DAY) } else { (1, 4 * DAY) };
        assert_eq!(merged.len(), want_merged, "tier {tier}");
        let alone = rollups.iter().filter(|b| b.meta().level <= 3);
        assert!(alone.clone().all(|b| b.meta().min_t >= BASE + unsettled_from));
        // (The raw days left have no 1 m rollups.)
        let unsettled = (tier == 1).then_some(BASE + unsettled_from);
        assert_eq!(
            alone.map(|b| b.meta().min_t).min(),
            unsettled,
            "tier {tier}: the unsettled window's rollups stay as they were"
        );
    }
    assert_eq!(report.compacted, 4, "{report:?}");
    assert_eq!(answers(&db), want, "merged rollups answer as the daily ones did");
    let counts: Vec<usize> = (0..RESOLUTIONS.len()).map(|t| db.rollups(t).len()).collect();
    drop(db);

    // A crash after the merged blocks were written, before their sources were deleted: the
    // open finishes the deletion, and nothing is merged twice.
    copy_dir(aside.path(), &dir.path().join("rollups"));
    let db = open(dir.path(), opts(Some(DAY)));
    let reopened: Vec<usize> = (0..RESOLUTIONS.len()).map(|t| db.rollups(t).len()).collect();
    assert_eq!(reopened, counts);
    assert_eq!(answers(&db), want);
    let report = db.maintain().expect("maintain");
    assert_eq!((report.compacted, report.rollups), (0, 0), "{report:?}");
}

#[test]
fn answers_are_exact_by_default_and_say_where_rollups_stood_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), Options::default());
    fill(&db);
    db.flush_to_blocks().expect("flush");
    db.maintain().expect("maintain");
    let exact = Engine::default();
    let raw = Engine::default().with_source_resolution(SourceResolution::Raw);
    let auto = Engine::default().with_source_resolution(SourceResolution::UpTo(i64::MAX));
    let (start, end) = (T0 + HOUR, T0 + (HOURS - 1) * HOUR);
    // Steps that rollups would serve: the default reads raw samples all the same, so its
    // answers are the raw ones to the bit, with no info; asked for, rollups answer and say so.
    for (q, step) in [
        ("rate(vigil_http_requests_total[30m])", 10 * MINUTE),
        ("sum(increase(vigil_http_requests_total[1h]))", HOUR),
        ("vigil_inflight", 5 * MINUTE),
    ] {
        let (a, notes) = exact.range_query_warned(&db, q, start, end, step).expect("query");
        let b = raw.range_query(&db, q, start, end, step).expect("query");
        assert_eq!(matrix(a), matrix(b), "{q}");
        assert!(notes.is_empty(), "{q}: {notes:?}");
        let (_, notes) = auto.range_query_warned(&db, q, start, end, step).expect("query");
        assert!(
            notes.iter().any(|n| n.starts_with("PromQL info: samples from")
                && n.contains("rollups (as max_source_resolution allows)")),
            "{q}: {notes:?}"
        );
    }

    // Raw samples past their retention are gone: the default answers from rollups there, and
    // says for which range.
    drop(db);
    let db = open(
        dir.path(),
        Options {
            retention_ms: Some(4 * HOUR),
            ..Options::default()
        },
    );
    db.maintain().expect("maintain");
    let oldest_raw = db.blocks().iter().map(|b| b.meta().min_t).min().expect("raw blocks");
    assert_eq!(oldest_raw, T0 + 24 * HOUR, "the first day's raw block is gone");
    let q = "vigil_http_requests_total{route=\"/a\"}";
    let (v, notes) = exact
        .range_query_warned(&db, q, T0 + HOUR, end, 5 * MINUTE)
        .expect("query");
    let points = &matrix(v)[0].1;
    assert_eq!(
        points.first().map(|p| p.0),
        Some(T0 + HOUR),
        "the old range is answered"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("PromQL info: samples from") && n.contains("(raw samples are gone there)")),
        "{notes:?}"
    );
    // ... and not at all when the caller wants raw samples only.
    let v = raw.range_query(&db, q, T0 + HOUR, end, 5 * MINUTE).expect("query");
    assert!(matrix(v)[0].1.first().is_some_and(|p| p.0 >= oldest_raw));
}

#[test]
fn queries_during_compaction_never_see_raw_samples_as_gone() {
    // A merge writes the new block's rollups, then lists them with the new block in place of
    // the old ones; a query seeing one list changed and not the other took the new rollups
    // for ones standing alone, and answered from them with "raw samples are gone there".
    let exact = Engine::default();
    let q = "vigil_http_requests_total";
    let (start, end) = (T0 + HOUR, T0 + (HOURS - 1) * HOUR);
    for round in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path(), Options::default());
        fill(&db);
        let before = exact.range_query(&db, q, start, end, 5 * MINUTE).expect("query");
        let done = std::sync::atomic::AtomicBool::new(false);
        let queries = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                // Until the flush is over, and at least once.
                let mut n = 0;
                loop {
                    let (v, notes) = exact.range_query_warned(&db, q, start, end, 5 * MINUTE).expect("query");
                    assert!(notes.is_empty(), "round {round}, query {n}: {notes:?}");
                    assert_eq!(matrix(v), matrix(before.clone()), "round {round}, query {n}");
                    n += 1;
                    if done.load(std::sync::atomic::Ordering::Relaxed) {
                        break n;
                    }
                }
            });
            // Cut from the head into blocks, merged, their rollups made: the answers stay put.
            let report = db.flush_to_blocks().expect("flush");
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(report.compacted >= 2, "{report:?}");
            reader.join().expect("reader")
        });
        assert!(queries > 0);
    }
}

#[test]
fn rollup_reads_during_compaction_lose_nothing() {
    // A query reading rollups (max_source_resolution) plans on the rollups listed when it
    // starts; a merge meanwhile replaces them, and the plan is made again. (The window is
    // narrow: this guards the answers rather than reproducing a loss every run.)
    let auto = Engine::default().with_source_resolution(SourceResolution::UpTo(i64::MAX));
    let q = "vigil_http_requests_total";
    let (start, end) = (T0 + HOUR, T0 + (HOURS - 1) * HOUR);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), Options::default());
    fill(&db);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut n = 0;
            loop {
                let v = auto.range_query(&db, q, start, end, 5 * MINUTE).expect("query");
                for (labels, points) in matrix(v) {
                    // Every 5 m step has a sample in its lookback, whichever tier answered.
                    assert_eq!(
                        points.len() as i64,
                        (end - start) / (5 * MINUTE) + 1,
                        "query {n}: {labels:?}"
                    );
                }
                n += 1;
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
            }
        });
        db.flush_to_blocks().expect("flush");
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().expect("reader");
    });
}
