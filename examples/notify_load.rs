//! The notification pipeline end to end, as `vigil serve` runs it: 10,000 firing alerts in 500
//! groups handed over at once, through grouping, the durable outbox (fsync per notification)
//! and the notification log, to a webhook receiver on loopback; then all of them resolved. It
//! prints notifications per second for each round and the memory the pipeline holds.
//!
//!     cargo run --release --example notify_load -- --services 500 --routes 20
//!
//! The outbox and log go to a temporary directory (`--dir` for another disk).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use parking_lot::Mutex;
use vigil_alerter::notify::config::AlertingConfig;
use vigil_alerter::notify::{Notifier, PipelineAlert};
use vigil_tsdb::Labels;

#[derive(Parser)]
struct Args {
    /// Groups (one per service).
    #[arg(long, default_value_t = 500)]
    services: usize,
    /// Alerts per group (one per route).
    #[arg(long, default_value_t = 20)]
    routes: usize,
    /// Requests in flight at once to the receiver.
    #[arg(long, default_value_t = 4)]
    max_concurrent: usize,
    /// Where the outbox and the log go (default: a temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

/// Resident memory of this process, from /proc (Linux), in bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn alerts(args: &Args, fired_at: i64, ends_at: Option<i64>) -> Vec<PipelineAlert> {
    let mut out = Vec::with_capacity(args.services * args.routes);
    for s in 0..args.services {
        for r in 0..args.routes {
            let (service, route) = (format!("svc-{s:03}"), format!("svc-{s:03}-route-{r:02}"));
            out.push(PipelineAlert {
                labels: Labels::from_pairs([
                    ("alertname", "RouteErrors"),
                    ("service", service.as_str()),
                    ("route", route.as_str()),
                    ("severity", "page"),
                ]),
                annotations: vec![("summary".into(), format!("{route} answers 5xx"))],
                starts_at: fired_at,
                fired_at,
                ends_at,
                value: 0.25,
                d1: Some(0.001),
                d7: Some(0.002),
                rule_group: "api".into(),
                expr: "route:errors:ratio5m > 0.05".into(),
                ack: None,
            });
        }
    }
    out
}

/// A webhook receiver on loopback that counts what it gets.
async fn receiver() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (addr, count)
}

async fn wait_for(count: &AtomicU64, n: u64) {
    while count.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    let (addr, count) = receiver().await;
    let cfg: AlertingConfig = serde_yaml_ng::from_str(&format!(
        "receivers: [{{ name: oncall, webhook: {{ url: 'http://{addr}/hook' }}, max_concurrent: {} }}]\n\
         route: {{ receiver: oncall, group_by: [alertname, service], group_wait: 0s, group_interval: 100ms }}\n",
        args.max_concurrent
    ))
    .expect("valid configuration");
    let console: vigil_alerter::notify::ConsoleOut = Arc::new(Mutex::new(Box::new(std::io::sink())));
    let before = rss();
    let n = Notifier::start(&cfg, Some(&dir), "http://vigil".into(), &console).expect("start");
    let groups = args.services as u64;
    let total = args.services * args.routes;
    let now = vigil_tsdb::time::now_ms();

    let started = Instant::now();
    n.sync(alerts(&args, now, None), now);
    let handed = started.elapsed();
    wait_for(&count, groups).await;
    let fired = started.elapsed();
    let held = rss().saturating_sub(before);

    let started = Instant::now();
    let later = vigil_tsdb::time::now_ms();
    n.sync(alerts(&args, now, Some(later)), later);
    wait_for(&count, 2 * groups).await;
    let resolved = started.elapsed();

    println!(
        "{total} alerts in {groups} groups, {} requests in flight at most",
        args.max_concurrent
    );
    println!("hand-over (store, route, group): {:.1} ms", handed.as_secs_f64() * 1e3);
    println!(
        "firing: {groups} notifications in {:.0} ms: {:.0} notifications/s ({:.0} alerts/s)",
        fired.as_secs_f64() * 1e3,
        groups as f64 / fired.as_secs_f64(),
        total as f64 / fired.as_secs_f64()
    );
    println!(
        "resolved: {groups} notifications in {:.0} ms: {:.0} notifications/s",
        resolved.as_secs_f64() * 1e3,
        groups as f64 / resolved.as_secs_f64()
    );
    println!(
        "memory held by the pipeline with the alerts firing: {:.1} MiB ({:.0} bytes per alert)",
        held as f64 / (1 << 20) as f64,
        held as f64 / total as f64
    );
}
