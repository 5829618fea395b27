//! HTTP ingest load on a running vigil: `--connections` keep-alive clients each post Kong
//! batches of `--batch` events to `/ingest/kong` for `--seconds`, and the totals are printed
//! (requests and events per second). Credentials and a CA as `vigil query` takes them, so the
//! cost of authentication and TLS per request can be read off (BENCHMARKS.md):
//!
//!     cargo run --release --example ingest_load -- --url https://localhost:9464 \
//!         --ca-file ca.pem --token kong-token --batch 1 --connections 8 --seconds 20
//!
//! Event times are spread over the last few minutes so that windows close as they would live.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Base URL of vigil.
    #[arg(long, default_value = "http://127.0.0.1:9464")]
    url: String,
    /// A bearer token (`Authorization: Bearer`).
    #[arg(long)]
    token: Option<String>,
    /// A basic-auth user and password, `user:password`.
    #[arg(long)]
    basic: Option<String>,
    /// A CA (PEM) to trust for https.
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// Events per request (Kong's http-log sends 1 unless `queue.max_batch_size` says more).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// How long to send.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

fn event(i: u64, now_ms: i64) -> String {
    let t = now_ms - 120_000 + (i % 60_000) as i64;
    let route = i % 40;
    let status = if i.is_multiple_of(97) { 503 } else { 200 };
    format!(
        concat!(
            r#"{{"response":{{"size":512,"status":{status}}},"route":{{"name":"route-{route}","paths":["/v1/r{route}"]}},"#,
            r#""request":{{"method":"GET","uri":"/v1/r{route}/{i}","id":"req-{i}"}},"started_at":{t},"source":"upstream","#,
            r#""latencies":{{"kong":1,"proxy":{p},"request":{l}}},"service":{{"name":"svc-{svc}"}},"#,
            r#""client_ip":"10.0.0.1","consumer":{{"username":"load"}}}}"#
        ),
        status = status,
        route = route,
        i = i,
        t = t,
        p = i % 200,
        l = i % 200 + 2,
        svc = route % 8,
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().pool_max_idle_per_host(args.connections);
    if let Some(ca) = &args.ca_file {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca)?)?);
    }
    let client = builder.build()?;
    let url = format!("{}/ingest/kong", args.url.trim_end_matches('/'));
    let (requests, events, failures) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut tasks = Vec::new();
    for c in 0..args.connections as u64 {
        let (client, url) = (client.clone(), url.clone());
        let (requests, events, failures) = (requests.clone(), events.clone(), failures.clone());
        let (token, basic, batch) = (args.token.clone(), args.basic.clone(), args.batch);
        tasks.push(tokio::spawn(async move {
            let mut i = c << 40;
            while Instant::now() < deadline {
                let body = if batch == 1 {
                    event(i, now_ms)
                } else {
                    let items: Vec<String> = (0..batch as u64).map(|k| event(i + k, now_ms)).collect();
                    format!("[{}]", items.join(","))
                };
                i += batch as u64;
                let mut req = client.post(&url).header("Content-Type", "application/json").body(body);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                if let Some((u, p)) = basic.as_deref().and_then(|b| b.split_once(':')) {
                    req = req.basic_auth(u, Some(p));
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        requests.fetch_add(1, Ordering::Relaxed);
                        events.fetch_add(batch as u64, Ordering::Relaxed);
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let (r, e, f) = (
        requests.load(Ordering::Relaxed),
        events.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    );
    println!(
        "{:.0} requests/s, {:.0} events/s ({r} requests, {f} failed, {secs:.1} s)",
        r as f64 / secs,
        e as f64 / secs
    );
    if f > 0 {
        return Err(format!("{f} requests failed").into());
    }
    Ok(())
}
