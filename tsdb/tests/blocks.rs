//! Blocks end to end: the head is cut into blocks, blocks are compacted, retention deletes the
//! oldest, and queries answer the same throughout and across reopening.

use vigil_tsdb::{Db, Labels, MatchOp, Matcher, Options, Queryable, Sample};

const HOUR: i64 = 3_600_000;
/// 2026-11-23 00:00 UTC, a block boundary.
const T0: i64 = 1_795_392_000_000;
const SERIES: u64 = 50;
const STEP: i64 = 10_000;

fn labels(s: u64) -> Labels {
    Labels::from_pairs([
        ("__name__", "vigil_http_requests_total".to_owned()),
        ("service", format!("svc-{}", s % 5)),
        ("route", format!("route-{s}")),
        ("status", if s.is_multiple_of(7) { "500" } else { "200" }.to_owned()),
    ])
}

/// A counter as vigil writes it: every 10 s, mostly small increments.
fn value(s: u64, i: i64) -> f64 {
    ((i * (s as i64 % 5 + 1)) / 3) as f64
}

/// Appends `hours` of samples from `from` (in whole steps) for every series.
fn fill(db: &Db, from: i64, hours: i64) {
    fill_where(db, from, hours, |_| true);
}

/// [`fill`] for the series `keep` names.
fn fill_where(db: &Db, from: i64, hours: i64, keep: impl Fn(u64) -> bool) {
    let steps = hours * HOUR / STEP;
    let first = (from - T0) / STEP;
    for i in first..first + steps {
        let mut app = db.appender();
        for s in (0..SERIES).filter(|&s| keep(s)) {
            app.append(&labels(s), T0 + i * STEP, value(s, i)).expect("append");
        }
        app.commit().expect("commit");
    }
}

fn all(db: &Db, mint: i64, maxt: i64) -> Vec<(Labels, Vec<Sample>)> {
    let m = [Matcher::new(MatchOp::Equal, "__name__", "vigil_http_requests_total").expect("matcher")];
    db.select(&m, mint, maxt)
        .expect("select")
        .into_iter()
        .map(|s| (s.labels, s.samples))
        .collect()
}

fn expected(mint: i64, maxt: i64, upto: i64) -> Vec<(Labels, Vec<Sample>)> {
    let mut out: Vec<(Labels, Vec<Sample>)> = (0..SERIES)
        .map(|s| {
            let samples = (0..(upto - T0) / STEP)
                .map(|i| (T0 + i * STEP, i))
                .filter(|(t, _)| (mint..=maxt).contains(t))
                .map(|(t, i)| Sample { t, v: value(s, i) })
                .collect();
            (labels(s), samples)
        })
        .filter(|(_, s): &(Labels, Vec<Sample>)| !s.is_empty())
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Raw blocks alone (tests/rollups.rs has the rollups).
fn options() -> Options {
    Options {
        block_range_ms: 2 * HOUR,
        rollups: false,
        // Small chunk segments: cuts delete some while others stay.
        head_chunk_segment_size: 4096,
        ..Options::default()
    }
}

#[test]
fn cut_compact_reopen_and_retain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), options()).expect("open");
    fill(&db, T0, 13);
    let upto = T0 + 13 * HOUR;
    let before = all(&db, i64::MIN, i64::MAX);
    assert_eq!(before, expected(i64::MIN, i64::MAX, upto));

    let report = db.maintain().expect("maintain");
    // 13 h of head: blocks for 0-2 h ... 10-12 h would leave under 3 h; cuts stop once the head
    // spans less than 1.5 ranges.
    assert_eq!(report.cut, 5, "{report:?}");
    // 0-6 h compacted into one block; 6-10 h waits for its window to complete.
    assert_eq!(report.compacted, 1, "{report:?}");
    let blocks = db.blocks();
    assert_eq!(blocks.len(), 3);
    let c = db.counters();
    let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((n(&c.blocks_cut), n(&c.compactions), n(&c.checkpoints)), (5, 1, 1));
    assert_eq!((blocks[0].meta().min_t, blocks[0].meta().end), (T0, T0 + 6 * HOUR));
    assert_eq!(blocks[0].meta().level, 2);
    // Same answers, for everything and for ranges across the block and head boundaries.
    assert_eq!(all(&db, i64::MIN, i64::MAX), before);
    for (a, b) in [
        (T0 + HOUR, T0 + 7 * HOUR),
        (T0 + 9 * HOUR, T0 + 11 * HOUR),
        (T0 + 5 * HOUR, T0 + 5 * HOUR),
    ] {
        assert_eq!(all(&db, a, b), expected(a, b, upto), "[{a}, {b}]");
    }
    let names = db.label_values("route", &[], i64::MIN, i64::MAX).expect("values");
    assert_eq!(names.len(), SERIES as usize);

    // A late series (a replay, a backfill) for a time that has a block is taken, and read
    // back merged with the blocks.
    let late = Labels::from_pairs([("__name__", "late_total"), ("route", "late")]);
    let mut app = db.appender();
    app.append(&late, T0 + HOUR, 5.0).expect("append");
    assert_eq!(app.commit().expect("commit").appended, 1);
    let m = [Matcher::new(MatchOp::Equal, "route", "late").expect("matcher")];
    let got = db.select(&m, T0, T0 + 2 * HOUR).expect("select");
    assert_eq!(got[0].samples, vec![Sample { t: T0 + HOUR, v: 5.0 }]);

    // Compact enough: at most a byte per sample for vigil's counters.
    let (bytes, samples) = blocks
        .iter()
        .fold((0, 0), |(b, s), x| (b + x.size(), s + x.meta().samples));
    let per_sample = bytes as f64 / samples as f64;
    eprintln!("{samples} samples in {bytes} bytes: {per_sample:.3} bytes per sample");
    assert!(per_sample < 1.0, "{per_sample} bytes per sample");
    drop(db);

    // Reopened: the blocks, the checkpointed WAL and the head agree with what was written.
    let db = Db::open(dir.path(), options()).expect("reopen");
    assert!(db.replay_stats().checkpoint.is_some());
    assert_eq!(all(&db, i64::MIN, i64::MAX), before);
    assert_eq!(db.select(&m, T0, T0 + 2 * HOUR).expect("select").len(), 1);
    fill(&db, upto, 1);
    assert_eq!(all(&db, i64::MIN, i64::MAX), expected(i64::MIN, i64::MAX, upto + HOUR));
    drop(db);

    // Retention, as Prometheus counts it: blocks whose newest sample is more than 5 h behind
    // the newest in a block (11:59:50, once this round has cut 10-12 h; the head's 13:59:50
    // does not count) go: 0-6 h does, 6-12 h (compacted from three now) stays.
    let retained = Options {
        retention_ms: Some(5 * HOUR),
        ..options()
    };
    let db = Db::open(dir.path(), retained).expect("reopen");
    let report = db.maintain().expect("maintain");
    assert_eq!(report.deleted, 1, "{report:?}");
    let left = all(&db, i64::MIN, i64::MAX);
    assert!(left.iter().all(|(_, s)| s[0].t >= T0 + 6 * HOUR));
    assert_eq!(
        all(&db, T0 + 6 * HOUR, i64::MAX),
        expected(T0 + 6 * HOUR, i64::MAX, upto + HOUR)
    );
}

#[test]
fn a_size_limit_deletes_the_oldest_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(
        dir.path(),
        Options {
            max_bytes: Some(1),
            ..options()
        },
    )
    .expect("open");
    fill(&db, T0, 7);
    let report = db.maintain().expect("maintain");
    assert_eq!(report.cut, 2);
    assert_eq!(report.deleted, 2, "{report:?}");
    assert!(db.blocks().is_empty());
    // The head still answers for its own part.
    assert_eq!(
        all(&db, T0 + 4 * HOUR, i64::MAX),
        expected(T0 + 4 * HOUR, i64::MAX, T0 + 7 * HOUR)
    );
}

#[test]
fn deleting_series_by_matcher_removes_them_from_head_and_blocks_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), options()).expect("open");
    fill(&db, T0, 7);
    db.maintain().expect("maintain");
    assert!(!db.blocks().is_empty());
    let gone = [Matcher::new(MatchOp::Regex, "route", "route-(3|4)").expect("matcher")];
    assert_eq!(db.delete_series(&[gone.to_vec()]).expect("delete"), 2);
    let left = |db: &Db| all(db, i64::MIN, i64::MAX);
    let want: Vec<_> = expected(i64::MIN, i64::MAX, T0 + 7 * HOUR)
        .into_iter()
        .filter(|(l, _)| !matches!(l.get("route"), Some("route-3" | "route-4")))
        .collect();
    assert_eq!(left(&db), want);
    assert!(db.series(&gone, i64::MIN, i64::MAX).expect("series").is_empty());
    // A new sample of a deleted series (newer than the deleted ones) is kept.
    let mut app = db.appender();
    app.append(&labels(3), T0 + 8 * HOUR, 1.0).expect("append");
    app.commit().expect("commit");
    drop(db);
    let db = Db::open(dir.path(), options()).expect("reopen");
    let got = db.select(&gone, i64::MIN, i64::MAX).expect("select");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].samples,
        vec![Sample {
            t: T0 + 8 * HOUR,
            v: 1.0
        }]
    );
    assert_eq!(left(&db).len(), SERIES as usize - 1);
}

#[test]
fn a_restart_does_not_cut_again_what_blocks_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), options()).expect("open");
    fill(&db, T0, 5);
    let first = db.flush_to_blocks().expect("flush");
    assert_eq!(first.cut, 3);
    let ids: Vec<String> = db.blocks().iter().map(|b| b.meta().id.clone()).collect();
    drop(db);
    // The checkpoint keeps every series' newest sample (to keep appends in order); the blocks
    // have it already, so nothing is left to cut.
    let db = Db::open(dir.path(), options()).expect("reopen");
    assert_eq!(db.flush_to_blocks().expect("flush").cut, 0);
    let again: Vec<String> = db.blocks().iter().map(|b| b.meta().id.clone()).collect();
    assert_eq!(again, ids);
    assert_eq!(
        all(&db, i64::MIN, i64::MAX),
        expected(i64::MIN, i64::MAX, T0 + 5 * HOUR)
    );
}

#[test]
fn a_damaged_block_is_set_aside_and_the_store_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), options()).expect("open");
    fill(&db, T0, 5);
    db.flush_to_blocks().expect("flush");
    let victim = db.blocks()[0].dir().to_owned();
    drop(db);
    let index = victim.join("index");
    let bytes = std::fs::read(&index).expect("read");
    std::fs::write(&index, &bytes[..bytes.len() / 2]).expect("cut");
    let db = Db::open(dir.path(), options()).expect("opens despite the damaged block");
    assert_eq!(db.blocks().len(), 2);
    assert!(victim.with_extension("corrupt").is_dir());
    // The other blocks answer.
    let got = all(&db, T0 + 2 * HOUR, i64::MAX);
    assert_eq!(got, expected(T0 + 2 * HOUR, i64::MAX, T0 + 5 * HOUR));
}

#[test]
fn series_that_stopped_leave_the_head_once_their_samples_are_in_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), options()).expect("open");
    let gone = labels(1_000);
    let mut app = db.appender();
    let stale_ref = app.append(&gone, T0 + STEP, 1.0).expect("append");
    app.commit().expect("commit");
    // Five hours of the others: the stopped series' only sample goes into the first block.
    fill(&db, T0, 5);
    assert_eq!(db.stats().series, SERIES + 1);
    let epoch = db.head().gc_epoch();
    // A batch that names the series by labels before it is collected and commits after.
    let mut early = db.appender();
    early.append(&gone, T0 + 5 * HOUR + STEP, 3.0).expect("append");
    let report = db.maintain().expect("maintain");
    assert!(report.cut > 0);
    assert_eq!(db.stats().series, SERIES, "the stopped series left the head");
    assert_eq!(
        db.counters()
            .series_collected
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_ne!(db.head().gc_epoch(), epoch);
    // Its samples are still read from the block, and its labels listed.
    let m = [Matcher::new(MatchOp::Equal, "route", "route-1000").expect("matcher")];
    let read = |db: &Db| -> Vec<(i64, f64)> {
        db.select(&m, i64::MIN, i64::MAX)
            .expect("select")
            .into_iter()
            .flat_map(|s| s.samples)
            .map(|x| (x.t, x.v))
            .collect()
    };
    assert_eq!(read(&db), vec![(T0 + STEP, 1.0)]);
    assert_eq!(
        db.label_values("route", &[], i64::MIN, i64::MAX).expect("values").len(),
        SERIES as usize + 1
    );
    // A reference taken before the collection is refused whole, nothing written ...
    let mut app = db.appender();
    app.append(&labels(0), T0 + 5 * HOUR, 1e6).expect("append");
    let mut stale = db.appender();
    stale.append_ref(stale_ref, T0 + 5 * HOUR, 2.0);
    stale.append(&labels(0), T0 + 5 * HOUR + 1, 7.0).expect("append");
    let before = db.counters().appended.load(std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(stale.commit(), Err(vigil_tsdb::Error::SeriesCollected)));
    assert_eq!(
        db.counters().appended.load(std::sync::atomic::Ordering::Relaxed),
        before
    );
    // ... and by labels the series comes back, its old samples and new ones together.
    app.append(&gone, T0 + 5 * HOUR, 2.0).expect("append");
    app.commit().expect("commit");
    assert_eq!(read(&db), vec![(T0 + STEP, 1.0), (T0 + 5 * HOUR, 2.0)]);
    early.commit().expect("the early batch takes the series again");
    let want_gone = vec![(T0 + STEP, 1.0), (T0 + 5 * HOUR, 2.0), (T0 + 5 * HOUR + STEP, 3.0)];
    assert_eq!(read(&db), want_gone);
    // A restart neither brings collected series back nor loses anything.
    drop(db);
    let db = Db::open(dir.path(), options()).expect("reopen");
    assert_eq!(db.stats().series, SERIES + 1);
    assert_eq!(read(&db), want_gone);
    let mut want = expected(i64::MIN, i64::MAX, T0 + 5 * HOUR);
    for (l, s) in &mut want {
        if *l == labels(0) {
            s.push(Sample {
                t: T0 + 5 * HOUR,
                v: 1e6,
            });
        }
    }
    let got: Vec<(Labels, Vec<Sample>)> = all(&db, i64::MIN, i64::MAX)
        .into_iter()
        .filter(|(l, _)| *l != gone)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn deleted_series_leave_the_head_at_the_next_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), options()).expect("open");
    fill(&db, T0, 2);
    let doomed = [Matcher::new(MatchOp::Equal, "status", "500").expect("matcher")];
    let n = db.delete_series(&[doomed.to_vec()]).expect("delete");
    assert_eq!(n, 8);
    assert_eq!(db.stats().series, SERIES, "deleted series stay until a cut");
    fill_where(&db, T0 + 2 * HOUR, 3, |s| !s.is_multiple_of(7));
    assert!(db.maintain().expect("maintain").cut > 0);
    assert_eq!(db.stats().series, SERIES - 8);
    assert_eq!(db.select(&doomed, i64::MIN, i64::MAX).expect("select").len(), 0);
}

#[test]
fn a_collected_series_refuses_older_samples_after_a_restart_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), options()).expect("open");
    fill(&db, T0, 3);
    db.flush_to_blocks().expect("flush");
    assert_eq!(db.stats().series, 0, "every series is in blocks, none left in the head");
    drop(db);
    let db = Db::open(dir.path(), options()).expect("reopen");
    let newest = T0 + 3 * HOUR - STEP;
    let mut app = db.appender();
    app.append(&labels(0), newest - STEP, 1e9).expect("append"); // older: refused
    app.append(&labels(1), newest, value(1, (newest - T0) / STEP))
        .expect("append"); // the same: a no-op
    app.append(&labels(2), newest + STEP, 5e9).expect("append"); // newer: taken
    let stats = app.commit().expect("commit");
    assert_eq!((stats.appended, stats.out_of_order, stats.duplicate), (1, 1, 1));
    let mut want = expected(i64::MIN, i64::MAX, T0 + 3 * HOUR);
    for (l, s) in &mut want {
        if *l == labels(2) {
            s.push(Sample {
                t: newest + STEP,
                v: 5e9,
            });
        }
    }
    assert_eq!(all(&db, i64::MIN, i64::MAX), want);
}

#[test]
fn closed_head_chunks_go_to_files_and_leave_with_the_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spill = dir.path().join("chunks_head");
    let files = || std::fs::read_dir(&spill).expect("list").count();
    let db = Db::open(dir.path(), options()).expect("open");
    // Four hours: eleven closed chunks a series, in sealed segment files.
    let end = T0 + 4 * HOUR;
    fill(&db, T0, 4);
    let before = db.head_chunks();
    assert!(before.file_bytes > 0 && files() > 1, "{before:?}, {} files", files());
    assert_eq!(all(&db, i64::MIN, i64::MAX), expected(i64::MIN, i64::MAX, end));
    // The cut takes the first two hours; the segments only their chunks were in go.
    assert_eq!(db.maintain().expect("maintain").cut, 1);
    let after = db.head_chunks();
    assert!(after.file_bytes < before.file_bytes, "{before:?} -> {after:?}");
    assert_eq!(all(&db, i64::MIN, i64::MAX), expected(i64::MIN, i64::MAX, end));
    assert_eq!(after.damaged, 0);
    // A reopen starts the spill area afresh and replays the WAL into it.
    drop(db);
    let db = Db::open(dir.path(), options()).expect("reopen");
    let recent = T0 + 3 * HOUR;
    assert_eq!(all(&db, recent, i64::MAX), expected(recent, i64::MAX, end));
    assert_eq!(all(&db, i64::MIN, i64::MAX), expected(i64::MIN, i64::MAX, end));
}

#[test]
fn deleted_series_take_their_head_chunk_segments_with_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spill = dir.path().join("chunks_head");
    let files = || std::fs::read_dir(&spill).expect("list").count();
    let db = Db::open(dir.path(), options()).expect("open");
    fill(&db, T0, 4);
    assert!(db.head_chunks().file_bytes > 0);
    let everything = [Matcher::new(MatchOp::Equal, "__name__", "vigil_http_requests_total").expect("matcher")];
    assert_eq!(db.delete_series(&[everything.to_vec()]).expect("delete"), SERIES);
    let after = db.head_chunks();
    assert_eq!((after.file_bytes, files()), (0, 0), "{after:?}");
    assert!(all(&db, i64::MIN, i64::MAX).is_empty());
    // Replay drops them again at the delete record: nothing is spilled for them.
    drop(db);
    let db = Db::open(dir.path(), options()).expect("reopen");
    assert_eq!((db.head_chunks().file_bytes, files()), (0, 0));
    assert!(all(&db, i64::MIN, i64::MAX).is_empty());
}

/// Found by fuzzing (`fuzz/fuzz_targets/store_files.rs`): a chunk whose length prefix is damaged
/// to the largest varint overflowed the length arithmetic; it is a corrupt chunk like any other.
#[test]
fn a_chunk_length_damaged_to_the_largest_varint_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), options()).expect("open");
    fill(&db, T0, 3);
    db.flush_to_blocks().expect("flush");
    let victim = db.blocks()[0].dir().join("chunks");
    drop(db);
    let mut bytes = std::fs::read(&victim).expect("read");
    // The first chunk follows the file's 8-byte header.
    let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    bytes[8..18].copy_from_slice(&max);
    std::fs::write(&victim, &bytes).expect("write");
    let db = Db::open(dir.path(), options()).expect("opens");
    let m = [Matcher::new(MatchOp::Equal, "__name__", "vigil_http_requests_total").expect("matcher")];
    match db.select(&m, T0, T0 + 2 * HOUR) {
        Ok(_) => {}
        Err(e) => assert!(e.to_string().contains("chunk"), "{e}"),
    }
}
