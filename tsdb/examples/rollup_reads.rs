//! What rollups save a D-7 overlay: a store with two weeks of 10 s counters, and a week of
//! "this week against last week" at 5 m steps, read from raw samples and from rollups. Reports
//! the samples each read and the median latency.
//!
//! `cargo run --release -p vigil-tsdb --example rollup_reads -- [SERIES] [DAYS]`
//! (SERIES defaults to 200, DAYS to 15.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use vigil_tsdb::promql::{Engine, SourceResolution};
use vigil_tsdb::rollup::SelectHints;
use vigil_tsdb::{Db, Labels, Matcher, Options, Queryable, Result, Selected, Series, Timestamp};

const STEP: i64 = 10_000;
const DAY: i64 = 86_400_000;
/// 2026-11-01 00:00 UTC.
const T0: i64 = 1_793_491_200_000;

/// A store that counts the samples its selections return.
struct Counting<'a> {
    db: &'a Db,
    samples: AtomicU64,
}

impl Queryable for Counting<'_> {
    fn select(&self, m: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<Series>> {
        self.select_hinted(m, mint, maxt, &SelectHints::default())
            .map(|s| s.series)
    }

    fn select_hinted(&self, m: &[Matcher], mint: Timestamp, maxt: Timestamp, h: &SelectHints) -> Result<Selected> {
        let out = self.db.select_hinted(m, mint, maxt, h)?;
        let n: usize = out.series.iter().map(|s| s.samples.len()).sum();
        self.samples.fetch_add(n as u64, Ordering::Relaxed);
        Ok(out)
    }

    fn series(&self, m: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<Labels>> {
        self.db.series(m, mint, maxt)
    }

    fn label_names(&self, m: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<String>> {
        self.db.label_names(m, mint, maxt)
    }

    fn label_values(&self, n: &str, m: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<String>> {
        self.db.label_values(n, m, mint, maxt)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let series: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Options::default()).expect("open");
    let started = Instant::now();
    let labels: Vec<Labels> = (0..series)
        .map(|s| {
            Labels::from_pairs([
                ("__name__", "vigil_http_requests_total".to_owned()),
                ("service", format!("svc-{}", s % 20)),
                ("route", format!("route-{s}")),
            ])
        })
        .collect();
    let steps = days * DAY / STEP;
    for i in 0..steps {
        let mut app = db.appender();
        for (s, l) in labels.iter().enumerate() {
            // Counting up by 1 to 135 a step, unevenly.
            let v = (17 * i * (s as i64 % 8 + 1) + (i * 31 % 17)) as f64;
            app.append(l, T0 + i * STEP, v).expect("append");
        }
        app.commit().expect("commit");
        if i % (DAY / STEP) == 0 {
            db.maintain().expect("maintain");
        }
    }
    db.flush_to_blocks().expect("flush");
    db.maintain().expect("maintain");
    let bytes = |l: Vec<std::sync::Arc<vigil_tsdb::block::Block>>| l.iter().map(|b| b.size()).sum::<u64>();
    println!(
        "{series} series x {days} days at 10 s: {} samples, loaded in {:.1} s; raw blocks {} MB, 1m rollups {} MB, 5m rollups {} MB",
        series as i64 * steps,
        started.elapsed().as_secs_f64(),
        bytes(db.blocks()) >> 20,
        bytes(db.rollups(0)) >> 20,
        bytes(db.rollups(1)) >> 20,
    );

    let end = T0 + days * DAY - DAY / 2;
    let start = end - 7 * DAY;
    let queries = [
        "sum by (service) (rate(vigil_http_requests_total[5m] offset 7d))",
        "sum by (service) (increase(vigil_http_requests_total[1h] offset 7d))",
        "vigil_http_requests_total offset 7d",
    ];
    println!("| query (a week at 5 m steps) | source | samples read | median ms |");
    println!("|---|---|---:|---:|");
    for q in queries {
        for (name, engine) in [
            ("raw", Engine::default()),
            (
                "rollups",
                Engine::default().with_source_resolution(SourceResolution::UpTo(i64::MAX)),
            ),
        ] {
            let counting = Counting {
                db: &db,
                samples: AtomicU64::new(0),
            };
            let mut times = Vec::new();
            for _ in 0..7 {
                counting.samples.store(0, Ordering::Relaxed);
                let t = Instant::now();
                engine.range_query(&counting, q, start, end, 300_000).expect("query");
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "| `{q}` | {name} | {} | {:.1} |",
                counting.samples.load(Ordering::Relaxed),
                times[times.len() / 2]
            );
        }
    }
}
