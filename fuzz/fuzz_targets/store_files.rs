//! `cargo +nightly fuzz run store_files`: a data directory with blocks (index, chunks, meta,
//! tombstones), a WAL and head chunk files, one file of it damaged by the input (bytes changed,
//! the file cut short), is opened as `vigil serve` opens it after a crash. Opening may set a
//! damaged block aside or stop at a torn WAL record, or refuse with an error, but never panics;
//! what opens answers a select of every series and a query, and opens again to the same
//! answer. The same input is also decoded as one WAL record of each type.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_tsdb::promql::Engine;
use vigil_tsdb::{Db, Labels, MatchOp, Matcher, Options, Queryable};

/// 2026-11-23 00:00 UTC, a block boundary.
const T0: i64 = 1_795_392_000_000;
const HOUR: i64 = 3_600_000;

fn options() -> Options {
    Options {
        block_range_ms: 2 * HOUR,
        head_chunk_segment_size: 4096,
        wal_segment_size: 64 * 1024,
        rollups: true,
        ..Options::default()
    }
}

/// The files of a pristine data directory: path relative to it, bytes.
fn pristine() -> &'static [(PathBuf, Vec<u8>)] {
    static FILES: OnceLock<Vec<(PathBuf, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), options()).expect("open");
        let append = |from: i64, to: i64| {
            for i in (from..to).step_by(30_000) {
                let mut app = db.appender();
                for s in 0..6 {
                    let l = Labels::from_pairs([
                        ("__name__", "http_requests_total".to_owned()),
                        ("route", format!("r{s}")),
                        ("status", if s == 5 { "500" } else { "200" }.to_owned()),
                    ]);
                    app.append(&l, T0 + i, ((i / 30_000) * (s + 1)) as f64).expect("append");
                }
                app.commit().expect("commit");
            }
        };
        append(0, 5 * HOUR);
        db.flush_to_blocks().expect("flush");
        // Samples only the WAL and the head chunk files hold.
        append(5 * HOUR, 6 * HOUR);
        drop(db);
        let mut files = Vec::new();
        collect(dir.path(), dir.path(), &mut files);
        files.sort();
        files
    })
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            let bytes = std::fs::read(&path).expect("read");
            out.push((path.strip_prefix(root).expect("inside").to_owned(), bytes));
        }
    }
}

/// Damages `bytes` as `ops` say: each 4 bytes are an operation (xor a byte, set a byte, cut the
/// file there, or insert a byte) and a position scaled to the file's length.
fn damage(bytes: &mut Vec<u8>, ops: &[u8]) {
    for op in ops.chunks_exact(4) {
        if bytes.is_empty() {
            return;
        }
        let at = usize::from(u16::from_le_bytes([op[1], op[2]])) * bytes.len() / 65_536;
        match op[0] % 4 {
            0 => bytes[at] ^= op[3].max(1),
            1 => bytes[at] = op[3],
            2 => bytes.truncate(at),
            _ => bytes.insert(at, op[3]),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, ops)) = data.split_first() else {
        return;
    };
    for typ in 0..8u8 {
        let _ = vigil_tsdb::wal::record::decode(typ, ops);
    }
    let files = pristine();
    let victim = usize::from(which) % files.len();
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, (rel, bytes)) in files.iter().enumerate() {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let mut bytes = bytes.clone();
        if i == victim {
            damage(&mut bytes, ops);
        }
        std::fs::write(&path, bytes).expect("write");
    }
    let Ok(db) = Db::open(dir.path(), options()) else {
        return;
    };
    let all = [Matcher::new(MatchOp::Regex, "__name__", ".+").expect("matcher")];
    let first = db.select(&all, i64::MIN, i64::MAX).ok().map(|s| summary(&s));
    let _ = Engine::default().instant_query(
        &db as &dyn Queryable,
        "sum by (status) (rate(http_requests_total[5m]))",
        T0 + 3 * HOUR,
    );
    drop(db);
    // What a recovery kept, a second open keeps: the damage was dealt with once.
    let db = Db::open(dir.path(), options()).expect("a recovered directory opens again");
    let second = db.select(&all, i64::MIN, i64::MAX).ok().map(|s| summary(&s));
    assert_eq!(first, second, "a second open answers otherwise");
});

/// Each series' labels and sample count.
fn summary(series: &[vigil_tsdb::Series]) -> Vec<(String, usize)> {
    series
        .iter()
        .map(|s| (format!("{:?}", s.labels), s.samples.len()))
        .collect()
}
