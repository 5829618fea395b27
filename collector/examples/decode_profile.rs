//! Decodes simulated Kong NDJSON in a loop, for profilers (`valgrind --tool=callgrind`).
use vigil_collector::kong::{RejectCounts, decode_line};
use vigil_collector::sim::{Simulator, Topology};
use vigil_collector::{Aggregator, AggregatorConfig};

fn main() {
    let mut sim = Simulator::new(Topology::default(), Vec::new(), 3);
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    let t0 = 1_795_150_800_000;
    sim.generate_in_order(t0, t0 + 60_000, |e| {
        let s = buf.len();
        e.write_json(&mut buf);
        lines.push((s, buf.len()));
        buf.push(b'\n');
    });
    let aggregate = std::env::args().any(|a| a == "--aggregate");
    if std::env::args().any(|a| a == "--walk") {
        let mut n = 0;
        for _ in 0..3 {
            for &(s, e) in &lines {
                n += walk_only(&buf[s..e]);
            }
        }
        eprintln!("{n} keys");
        return;
    }
    let mut rej = RejectCounts::default();
    let mut n = 0;
    let start = std::time::Instant::now();
    for _ in 0..3 {
        let mut agg = Aggregator::new(AggregatorConfig::default());
        let mut out = Vec::new();
        let mut events = Vec::new();
        for &(s, e) in &lines {
            events.clear();
            decode_line(&buf[s..e], &mut events, &mut rej);
            if aggregate {
                for ev in &events {
                    let _ = agg.apply(ev, t0, &mut out);
                }
                out.clear();
            }
            n += events.len();
        }
    }
    let el = start.elapsed();
    eprintln!(
        "{} lines, {} bytes; {n} events in {el:?}: {:.0}/s",
        lines.len(),
        buf.len(),
        n as f64 / el.as_secs_f64()
    );
}

#[allow(dead_code)]
fn walk_only(line: &[u8]) -> usize {
    let mut s = vigil_collector::kong::Scanner::new(line);
    let mut n = 0;
    if s.begin_object().is_err() {
        return 0;
    }
    let mut first = true;
    while let Ok(Some(_k)) = s.next_key(&mut first) {
        n += 1;
        if s.skip_value().is_err() {
            break;
        }
    }
    n
}
