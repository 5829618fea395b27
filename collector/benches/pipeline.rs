//! Throughput of the collector's kernels on realistic Kong NDJSON (the simulator's ~1.3 KB
//! events): decode alone, and decode + path templating + windowed aggregation on one core.
//!
//! `cargo bench -p vigil-collector --bench pipeline`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_collector::kong::{RejectCounts, decode_line};
use vigil_collector::sim::{Simulator, Topology};
use vigil_collector::{Aggregator, AggregatorConfig};

/// Friday 2026-11-20, noon in Jakarta: peak traffic.
const NOON: i64 = 1_795_150_800_000;
const EVENTS: usize = 50_000;

/// NDJSON of `EVENTS` simulated events in time order, and the byte ranges of the lines.
fn corpus() -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut sim = Simulator::new(Topology::default(), Vec::new(), 3);
    let mut events = Vec::new();
    let mut t = NOON;
    while events.len() < EVENTS {
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
    events.truncate(EVENTS);
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

fn bench(c: &mut Criterion) {
    let (buf, lines) = corpus();
    let mut g = c.benchmark_group("kong");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.sample_size(20);

    // The floor: finding the line ends alone (memchr), to calibrate the machine.
    g.bench_function("split_lines", |b| {
        b.iter(|| black_box(memchr::memchr_iter(b'\n', &buf).count()));
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
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
