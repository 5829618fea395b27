//! Throughput of the collector's kernels on realistic Kong NDJSON (the simulator's ~1.3 KB
//! events): decode alone, and decode + path templating + windowed aggregation on one core.
//!
//! `cargo bench -p vigil-collector --bench pipeline`

use std::hint::black_box;

use std::borrow::Cow;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde::Deserialize;
use vigil_collector::kong::{RejectCounts, decode_line};
use vigil_collector::sim::{Simulator, Topology};
use vigil_collector::{Aggregator, AggregatorConfig};

/// Friday 2026-11-20, noon in Jakarta: peak traffic.
const NOON: i64 = 1_795_150_800_000;
const EVENTS: usize = 50_000;

/// NDJSON of `EVENTS` simulated events in time order, and the byte ranges of the lines.
fn corpus() -> (Vec<u8>, Vec<(usize, usize)>) {
    corpus_from(NOON, EVENTS, 3)
}

/// NDJSON of `n` simulated events from `start` on.
fn corpus_from(start: i64, n: usize, seed: u64) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut sim = Simulator::new(Topology::default(), Vec::new(), seed);
    let mut events = Vec::new();
    let mut t = start;
    while events.len() < n {
        let mut batch = Vec::new();
        sim.generate(t, t + 1_000, |e| {
            let mut line = Vec::with_capacity(1400);
            e.write_json(&mut line);
            batch.push((e.t, line));
        });
        batch.sort_by_key(|(t, _)| *t);
        events.extend(batch);
        t += 1_000;
    }
    events.truncate(n);
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    for (_, line) in events {
        let start = buf.len();
        buf.extend_from_slice(&line);
        lines.push((start, buf.len()));
        buf.push(b'\n');
    }
    (buf, lines)
}

/// The baseline the issue names: serde_json into a borrowed struct of just the fields vigil
/// needs (everything else skipped by serde), for calibrating this machine.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Partial<'a> {
    started_at: i64,
    #[serde(borrow)]
    request: PartialRequest<'a>,
    response: PartialResponse,
    latencies: PartialLatencies,
    #[serde(borrow)]
    service: Option<Named<'a>>,
    #[serde(borrow)]
    route: Option<PartialRoute<'a>>,
    #[serde(borrow)]
    consumer: Option<PartialConsumer<'a>>,
    #[serde(borrow)]
    client_ip: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct PartialRequest<'a> {
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    uri: Cow<'a, str>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct PartialResponse {
    status: u16,
    size: Option<u64>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct PartialLatencies {
    request: f64,
    proxy: Option<f64>,
    kong: Option<f64>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Named<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct PartialRoute<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    paths: Option<Vec<Cow<'a, str>>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct PartialConsumer<'a> {
    #[serde(borrow)]
    username: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

fn bench(c: &mut Criterion) {
    let (buf, lines) = corpus();
    let mut g = c.benchmark_group("kong");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.sample_size(20);

    // The floor: finding the line ends alone (memchr), to calibrate the machine.
    g.bench_function("split_lines", |b| {
        b.iter(|| black_box(memchr::memchr_iter(b'\n', &buf).count()));
    });

    g.bench_function("serde_json_partial", |b| {
        b.iter(|| {
            let mut n = 0;
            for &(s, e) in &lines {
                n += usize::from(serde_json::from_slice::<Partial<'_>>(&buf[s..e]).is_ok());
            }
            black_box(n)
        });
    });

    g.bench_function("decode", |b| {
        let mut out = Vec::with_capacity(lines.len());
        let mut rej = RejectCounts::default();
        b.iter(|| {
            out.clear();
            for &(s, e) in &lines {
                decode_line(&buf[s..e], &mut out, &mut rej);
            }
            black_box(out.len())
        });
    });

    g.bench_function("decode_template_aggregate", |b| {
        let mut out = Vec::new();
        let mut rej = RejectCounts::default();
        b.iter(|| {
            // A fresh aggregator per pass: the same 50,000 events every time, windows closing
            // as event time advances, as in a live stream.
            let mut agg = Aggregator::new(AggregatorConfig::default());
            let mut events = Vec::with_capacity(1);
            let mut windows = Vec::new();
            for &(s, e) in &lines {
                events.clear();
                decode_line(&buf[s..e], &mut events, &mut rej);
                for ev in &events {
                    let _ = agg.apply(ev, NOON, &mut windows);
                }
                if windows.len() > 64 {
                    out.extend(windows.drain(..).map(|w| w.samples.len()));
                }
            }
            agg.flush(&mut windows);
            black_box((out.len(), windows.len()))
        });
    });

    // The same, in the steady state of a long-running collector: the aggregator has already
    // seen a minute of the same traffic, so its services, routes, paths and series exist (a
    // fresh one spends much of the pass above creating ~700 series).
    let (warm_buf, warm_lines) = corpus_from(NOON - 60_000, 100_000, 4);
    g.bench_function("decode_template_aggregate_steady", |b| {
        let mut rej = RejectCounts::default();
        b.iter_batched(
            || {
                let mut rej = RejectCounts::default();
                let mut agg = Aggregator::new(AggregatorConfig::default());
                let (mut events, mut windows) = (Vec::new(), Vec::new());
                for &(s, e) in &warm_lines {
                    events.clear();
                    decode_line(&warm_buf[s..e], &mut events, &mut rej);
                    for ev in &events {
                        let _ = agg.apply(ev, NOON, &mut windows);
                    }
                    windows.clear();
                }
                agg
            },
            |mut agg| {
                let mut events = Vec::with_capacity(1);
                let mut windows = Vec::new();
                let mut n = 0;
                for &(s, e) in &lines {
                    events.clear();
                    decode_line(&buf[s..e], &mut events, &mut rej);
                    for ev in &events {
                        let _ = agg.apply(ev, NOON, &mut windows);
                    }
                    if windows.len() > 64 {
                        n += windows.drain(..).map(|w| w.samples.len()).sum::<usize>();
                    }
                }
                agg.flush(&mut windows);
                black_box((n, windows.len(), agg))
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
