//! The store's kernels: XOR chunk encode and decode, and appends through the WAL into the head.
//!
//! `cargo bench -p vigil-tsdb --bench chunks`; figures in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vigil_tsdb::chunkenc::{Encoding, SAMPLES_PER_CHUNK, XorAppender, XorIter, for_each_sample, int, packed};
use vigil_tsdb::{Db, Labels, Matcher, Options};

/// Samples per chunk, as the head cuts them.
const CHUNK: usize = 120;
/// Chunks per iteration.
const CHUNKS: usize = 1_000;

/// vigil's own series: a 10 s grid, counters that mostly stay or step by a little.
fn vigil_counter(seed: u64) -> Vec<(i64, f64)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = 0.0;
    (0..CHUNK as i64)
        .map(|i| {
            if rng.u8(..) < 90 {
                v += f64::from(rng.u8(..8));
            }
            (1_795_305_600_000 + i * 10_000, v)
        })
        .collect()
}

/// A scraped counter: 15 s with millisecond jitter, whole-number increments up to 200.
fn scraped_counter(seed: u64) -> Vec<(i64, f64)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut t = 1_795_305_600_000;
    let mut v = 0.0;
    (0..CHUNK)
        .map(|_| {
            t += 15_000 + rng.i64(-20..20);
            v += f64::from(rng.u8(..200));
            (t, v)
        })
        .collect()
}

/// A scraped gauge: 15 s with millisecond jitter, a noisy float.
fn gauge(seed: u64) -> Vec<(i64, f64)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut t = 1_795_305_600_000;
    let mut v = 0.25;
    (0..CHUNK)
        .map(|_| {
            t += 15_000 + rng.i64(-20..20);
            v += rng.f64() - 0.5;
            (t, v)
        })
        .collect()
}

fn encode(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut a = XorAppender::new();
    for &(t, v) in samples {
        a.append(t, v);
    }
    a.bytes().to_vec()
}

fn chunks(c: &mut Criterion) {
    let kinds = [
        ("vigil_counter", vigil_counter as fn(u64) -> _),
        ("scraped_counter", scraped_counter),
        ("gauge", gauge),
    ];
    for (name, make) in kinds {
        let inputs: Vec<Vec<(i64, f64)>> = (0..CHUNKS as u64).map(make).collect();
        let encoded: Vec<Vec<u8>> = inputs.iter().map(|s| encode(s)).collect();
        let bytes: usize = encoded.iter().map(Vec::len).sum();
        eprintln!("{name}: {:.3} bytes per sample", bytes as f64 / (CHUNK * CHUNKS) as f64);

        let mut g = c.benchmark_group(format!("xor_{name}"));
        g.throughput(Throughput::Elements((CHUNK * CHUNKS) as u64));
        g.bench_function("encode", |b| {
            b.iter(|| {
                for s in &inputs {
                    black_box(encode(s));
                }
            });
        });
        g.bench_function("decode", |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for chunk in &encoded {
                    for (t, v) in XorIter::new(chunk) {
                        sum += v + t as f64;
                    }
                }
                black_box(sum)
            });
        });
        // The block encodings for whole numbers, where every chunk of the kind qualifies.
        let ints: Option<Vec<Vec<u8>>> = inputs.iter().map(|s| int::encode(s.iter().copied())).collect();
        let packs: Option<Vec<Vec<u8>>> = inputs.iter().map(|s| packed::encode(s)).collect();
        for (label, encoding, chunks) in [("int", Encoding::Int, ints), ("packed", Encoding::Packed, packs)] {
            let Some(chunks) = chunks else { continue };
            let bytes: usize = chunks.iter().map(Vec::len).sum();
            eprintln!(
                "{name}: {:.3} bytes per sample as {label} chunks",
                bytes as f64 / (CHUNK * CHUNKS) as f64
            );
            g.bench_function(format!("decode_{label}"), |b| {
                b.iter(|| {
                    let mut sum = 0.0;
                    for chunk in &chunks {
                        for_each_sample(encoding, chunk, |t, v| {
                            sum += v + t as f64;
                            true
                        });
                    }
                    black_box(sum)
                });
            });
        }
        g.bench_function("decode_for_each", |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for chunk in &encoded {
                    XorIter::new(chunk).for_each_sample(|t, v| {
                        sum += v + t as f64;
                        true
                    });
                }
                black_box(sum)
            });
        });
        g.finish();
    }
}

/// Series per append benchmark and samples per commit (a window of them).
const SERIES: usize = 10_000;

fn append(c: &mut Criterion) {
    let labels: Vec<Labels> = (0..SERIES)
        .map(|i| {
            Labels::from_pairs([
                ("__name__", "vigil_http_requests_total".to_owned()),
                ("service", format!("svc-{}", i % 50)),
                ("route", format!("route-{}", i % 200)),
                ("path", format!("/v1/things/{}", i)),
                ("method", "GET".to_owned()),
                ("status", "200".to_owned()),
            ])
        })
        .collect();
    let mut g = c.benchmark_group("head");
    g.throughput(Throughput::Elements((SERIES * 10) as u64));
    g.sample_size(10);
    // Ten windows of every series through the WAL (on disk) into the head.
    g.bench_function("append_wal", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let db = Db::open(dir.path(), Options::default()).expect("open");
                let mut app = db.appender();
                let refs: Vec<_> = labels
                    .iter()
                    .map(|l| app.append(l, 1_795_305_600_000, 0.0).expect("append"))
                    .collect();
                app.commit().expect("commit");
                (dir, db, refs)
            },
            |(dir, db, refs)| {
                for w in 1..=10i64 {
                    let mut app = db.appender();
                    for (i, r) in refs.iter().enumerate() {
                        app.append_ref(*r, 1_795_305_600_000 + w * 10_000, (w * (i as i64 % 7)) as f64);
                    }
                    app.commit().expect("commit");
                }
                (dir, db)
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();

    // Long series: 1,000 of them, 360 windows each, so every series closes (and re-encodes)
    // three chunks; the cost of closing shows against `append_wal`. Then reading them all back
    // (closed chunks packed, the open one XOR).
    let long = &labels[..1_000];
    let windows = 3 * SAMPLES_PER_CHUNK as i64;
    let fill = |db: &Db| {
        let mut refs = Vec::new();
        for w in 0..windows {
            let mut app = db.appender();
            for (i, l) in long.iter().enumerate() {
                let (t, v) = (1_795_305_600_000 + w * 10_000, (w * (1 + i as i64 % 7)) as f64);
                match refs.get(i) {
                    Some(&r) => app.append_ref(r, t, v),
                    None => refs.push(app.append(l, t, v).expect("append")),
                }
            }
            app.commit().expect("commit");
        }
    };
    let mut g = c.benchmark_group("head");
    g.throughput(Throughput::Elements(long.len() as u64 * windows as u64));
    g.sample_size(10);
    g.bench_function("append_wal_closing_chunks", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let db = Db::open(dir.path(), Options::default()).expect("open");
                (dir, db)
            },
            |(dir, db)| {
                fill(&db);
                (dir, db)
            },
            BatchSize::PerIteration,
        );
    });
    let db = Db::in_memory();
    fill(&db);
    let all = [Matcher::equal("__name__", "vigil_http_requests_total")];
    g.bench_function("select_all", |b| {
        b.iter(|| black_box(db.head().select(&all, i64::MIN, i64::MAX).len()));
    });
    g.finish();
}

criterion_group!(benches, chunks, append);
criterion_main!(benches);
