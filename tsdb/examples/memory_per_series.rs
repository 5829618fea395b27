//! Memory per active series: creates N series with vigil's label shape in an in-memory store,
//! appends a window of samples to each, and reports the growth of the resident set per series.
//!
//! `cargo run --release -p vigil-tsdb --example memory_per_series -- [N] [SAMPLES]`
//! (N defaults to 1,000,000 series, SAMPLES to 30 per series: five minutes of 10 s windows).

use vigil_tsdb::{Db, Labels};

/// Resident set size in bytes, from `/proc/self/status`.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let per: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let before = rss();
    let db = Db::in_memory();
    let t0 = 1_795_392_000_000i64;
    let mut refs = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(50_000) {
        let mut app = db.appender();
        for &i in chunk {
            let labels = Labels::from_pairs([
                ("__name__", "vigil_http_requests_total".to_owned()),
                ("service", format!("svc-{}", i % 300)),
                ("route", format!("route-{}", i % 3_000)),
                ("method", ["GET", "POST", "PUT", "DELETE"][i % 4].to_owned()),
                ("path", format!("/v1/things/{}/items", i / 12)),
                ("status", ["200", "201", "404", "500"][(i / 4) % 3].to_owned()),
            ]);
            refs.push(app.append(&labels, t0, 0.0).expect("append"));
        }
        app.commit().expect("commit");
    }
    for w in 1..per {
        let mut app = db.appender();
        for (i, r) in refs.iter().enumerate() {
            app.append_ref(*r, t0 + w * 10_000, (w * (i as i64 % 7)) as f64);
        }
        app.commit().expect("commit");
    }
    let after = rss();
    let stats = db.stats();
    println!(
        "{} series, {} samples: {:.0} bytes of memory per series ({} MiB resident growth)",
        stats.series,
        stats.samples,
        (after - before) as f64 / stats.series as f64,
        (after - before) >> 20
    );
}
