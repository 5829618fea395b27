//! Every acknowledged commit survives SIGKILL at any moment: a child process commits numbered
//! batches and acknowledges each on stdout; it is killed at random moments, many times, and
//! after each kill the store must hold exactly the commits up to some point at or after the
//! last acknowledged one: none lost, none torn, samples and marks together. The child also cuts
//! blocks, checkpoints its WAL and compacts every few commits, so kills land in those too.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use vigil_tsdb::{Db, Labels, MatchOp, Matcher, Options, Queryable};

const CHILD_ENV: &str = "VIGIL_TSDB_KILL_CHILD";
const SERIES: u64 = 20;
/// Kills per run.
const ROUNDS: usize = 25;

/// Small blocks (20 commits each) and segments, so that every round cuts, compacts and rotates.
fn options() -> Options {
    Options {
        wal_segment_size: 1 << 16,
        block_range_ms: 20_000,
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

#[test]
fn acknowledged_commits_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut acked: Option<u64> = None;
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..ROUNDS {
        let mut proc = Command::new(&exe)
            .args([
                "--exact",
                "acknowledged_commits_survive_sigkill",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = proc.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ack ") {
                    let _ = tx.send(n.parse::<u64>().expect("number"));
                }
            }
        });
        // Wait for a first acknowledgement (the child is up), then kill at a random moment.
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the child acknowledges");
        acked = Some(acked.map_or(first, |a| a.max(first)));
        std::thread::sleep(Duration::from_millis(rng.u64(0..150)));
        proc.kill().expect("kill");
        proc.wait().expect("wait");
        reader.join().expect("reader");
        while let Ok(n) = rx.try_recv() {
            acked = Some(acked.map_or(n, |a| a.max(n)));
        }
        let acked = acked.expect("acknowledged");

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
