//! Every acknowledged commit survives SIGKILL at any moment: a child process commits numbered
//! batches and acknowledges each on stdout; it is killed at random moments, many times, and
//! after each kill the store must hold exactly the commits up to some point at or after the
//! last acknowledged one: none lost, none torn, samples and marks together. The child also cuts
//! blocks, checkpoints its WAL and compacts every few commits, so kills land in those too.
//! A second child deletes series as it goes: a delete is all or nothing across a kill, and one
//! it acknowledged stays done.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use vigil_tsdb::{Db, Labels, MatchOp, Matcher, Options, Queryable};

const CHILD_ENV: &str = "VIGIL_TSDB_KILL_CHILD";
const DELETE_CHILD_ENV: &str = "VIGIL_TSDB_KILL_DELETE_CHILD";
const SERIES: u64 = 20;
/// Kills per run.
const ROUNDS: usize = 25;

/// Small blocks (20 commits each) and segments, so that every round cuts, compacts and rotates.
fn options() -> Options {
    Options {
        wal_segment_size: 1 << 16,
        block_range_ms: 20_000,
        head_chunk_segment_size: 4096,
        ..Options::default()
    }
}

fn labels(s: u64) -> Labels {
    Labels::from_pairs([("__name__", "kill_test".to_owned()), ("series", s.to_string())])
}

/// The newest commit the store holds.
fn last_commit(db: &Db) -> Option<u64> {
    db.mark("commit")
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// In the child: commits batches numbered on from what the store holds until killed.
fn child(dir: &str) {
    let db = Db::open(dir.as_ref(), options()).expect("open");
    let mut i = last_commit(&db).map_or(0, |c| c + 1);
    loop {
        let mut app = db.appender();
        for s in 0..SERIES {
            app.append(&labels(s), (i * 1000) as i64, (i * s) as f64)
                .expect("append");
        }
        app.mark("commit", i.to_le_bytes().to_vec());
        app.commit().expect("commit");
        println!("ack {i}");
        if i.is_multiple_of(7) {
            db.maintain().expect("maintain");
        }
        i += 1;
    }
}

/// The store holds commits 0..=last, each whole, and nothing else.
fn check(db: &Db, last: u64) {
    let m = [Matcher::new(MatchOp::Equal, "__name__", "kill_test").expect("matcher")];
    let series = db.select(&m, i64::MIN, i64::MAX).expect("select");
    assert_eq!(series.len() as u64, SERIES);
    for sr in series {
        let s: u64 = sr.labels.get("series").expect("label").parse().expect("number");
        let want: Vec<(i64, f64)> = (0..=last).map(|i| ((i * 1000) as i64, (i * s) as f64)).collect();
        let got: Vec<(i64, f64)> = sr.samples.iter().map(|x| (x.t, x.v)).collect();
        assert_eq!(got, want, "series {s}");
    }
}

/// Runs this test binary's `test` as a child with `env` set to `dir`, waits for its first
/// line of the form `<prefix><number>`, kills it after a random pause, and returns every such
/// number it printed.
fn run_and_kill(
    test: &str,
    env: &str,
    dir: &std::path::Path,
    prefix: &'static str,
    rng: &mut fastrand::Rng,
) -> Vec<u64> {
    let exe = std::env::current_exe().expect("test binary");
    let mut proc = Command::new(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = proc.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix(prefix) {
                let _ = tx.send(n.parse::<u64>().expect("number"));
            }
        }
    });
    // Wait for a first acknowledgement (the child is up), then kill at a random moment.
    let mut acks = vec![
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the child acknowledges"),
    ];
    std::thread::sleep(Duration::from_millis(rng.u64(0..150)));
    proc.kill().expect("kill");
    proc.wait().expect("wait");
    reader.join().expect("reader");
    acks.extend(rx.try_iter());
    acks
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked: Option<u64> = None;
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..ROUNDS {
        let acks = run_and_kill(
            "acknowledged_commits_survive_sigkill",
            CHILD_ENV,
            dir.path(),
            "ack ",
            &mut rng,
        );
        let newest = acks.into_iter().chain(acked).max().expect("acknowledged");
        acked = Some(newest);
        let acked = newest;

        let db = Db::open(dir.path(), options()).expect("reopen");
        let last = last_commit(&db).expect("a commit");
        assert!(
            last >= acked,
            "round {round}: acknowledged {acked}, the store holds up to {last}"
        );
        check(&db, last);
    }
    let db = Db::open(dir.path(), options()).expect("reopen");
    assert!(!db.blocks().is_empty(), "the child cut blocks");
}

/// Series of a delete child's group `k` (one commit fills a group: it is whole or absent).
fn group_labels(k: u64, s: u64) -> Labels {
    Labels::from_pairs([
        ("__name__", "kill_delete".to_owned()),
        ("group", k.to_string()),
        ("series", s.to_string()),
    ])
}

const GROUP_SERIES: u64 = 5;
const GROUP_SAMPLES: i64 = 60;

/// In the child: fills group after group (one commit each, 60 s of samples, so that blocks are
/// cut from part of it), acknowledging each fill, then deletes the group and acknowledges the
/// delete, until killed.
fn delete_child(dir: &str) {
    let db = Db::open(dir.as_ref(), options()).expect("open");
    let mut k = db
        .mark("group")
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")) + 1);
    loop {
        let mut app = db.appender();
        for i in 0..GROUP_SAMPLES {
            for s in 0..GROUP_SERIES {
                let t = k as i64 * 60_000 + i * 1000;
                app.append(&group_labels(k, s), t, (i + 1) as f64).expect("append");
            }
        }
        app.mark("group", k.to_le_bytes().to_vec());
        app.commit().expect("commit");
        db.maintain().expect("maintain");
        println!("filled {k}");
        let gone = [Matcher::new(MatchOp::Equal, "group", k.to_string()).expect("matcher")];
        db.delete_series(&[gone.to_vec()]).expect("delete");
        println!("deleted {}", k);
        k += 1;
    }
}

#[test]
fn deletes_are_whole_across_sigkill() {
    if let Ok(dir) = std::env::var(DELETE_CHILD_ENV) {
        delete_child(&dir);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = fastrand::Rng::with_seed(11);
    let mut deleted: Vec<u64> = Vec::new();
    for round in 0..ROUNDS {
        deleted.extend(run_and_kill(
            "deletes_are_whole_across_sigkill",
            DELETE_CHILD_ENV,
            dir.path(),
            "deleted ",
            &mut rng,
        ));
        let db = Db::open(dir.path(), options()).expect("reopen");
        let all = [Matcher::new(MatchOp::Equal, "__name__", "kill_delete").expect("matcher")];
        let mut counts: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
        for sr in db.select(&all, i64::MIN, i64::MAX).expect("select") {
            let k: u64 = sr.labels.get("group").expect("label").parse().expect("number");
            *counts.entry(k).or_default() += sr.samples.len();
        }
        for (k, n) in &counts {
            assert!(
                *n == 0 || *n == (GROUP_SERIES as usize) * (GROUP_SAMPLES as usize),
                "round {round}: group {k} is neither whole nor deleted ({n} samples)"
            );
            assert!(
                *n == 0 || !deleted.contains(k),
                "round {round}: group {k}'s delete was acknowledged, yet it has {n} samples"
            );
        }
    }
    assert!(deleted.len() > ROUNDS, "the children deleted groups");
}
