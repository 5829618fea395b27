//! `vigil demo`: the whole chain on one machine with nothing to set up. It backfills simulated
//! history (so D-1 and D-7 comparisons answer at once), serves the API, and runs live simulated
//! traffic, with scripted incidents, through the same collector path as `POST /ingest/kong`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use vigil_alerter::AlertingConfig;
use vigil_collector::Collector;
use vigil_collector::sim::{DEMO_RATE, DEMO_SCENARIO, IncidentSpec, SimEvent, Simulator, Topology};
use vigil_tsdb::Timestamp;
use vigil_tsdb::time::{now_ms, parse_duration_ms};

use crate::config::Config;
use crate::server::{self, App};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Data directory; by default a temporary one, removed at exit. An existing demo directory
    /// is continued: only the time since its newest sample is backfilled.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the HTTP API.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    listen: SocketAddr,
    /// Stop after this long (`150s`, `10m`); by default run until Ctrl-C.
    #[arg(long, value_name = "D")]
    duration: Option<String>,
    /// Print status and events to the terminal instead of opening the dashboard.
    #[arg(long)]
    no_tui: bool,
    /// How much history to backfill.
    #[arg(long, value_name = "D", default_value = "8d")]
    history: String,
    /// A scripted incident, relative to the start of live traffic (repeatable), e.g.
    /// `error_burst:payments/payments-route@30s+3m:0.35`. Default: the built-in scenario.
    #[arg(long = "incident", value_name = "SPEC")]
    incidents: Vec<IncidentSpec>,
    /// Random seed of the simulator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also post every page to this webhook (Alertmanager's webhook payload, version 4).
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
}

/// The demo's rules: the shipped rule set of `rules/api-health/` (SLO and anomaly specs, which
/// vigil compiles itself, and the threshold signals).
const RULES: [(&str, &str); 3] = [
    ("slos.yml", include_str!("../../rules/api-health/slos.yml")),
    ("signals.yml", include_str!("../../rules/api-health/signals.yml")),
    ("anomalies.yml", include_str!("../../rules/api-health/anomalies.yml")),
];

/// How often live traffic is generated and ingested.
const LIVE_TICK: Duration = Duration::from_millis(250);

pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    let history = parse_duration_ms(&args.history).map_err(anyhow::Error::msg)?;
    let duration = args
        .duration
        .as_deref()
        .map(parse_duration_ms)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let incidents = if args.incidents.is_empty() {
        DEMO_SCENARIO
            .iter()
            .map(|s| s.parse::<IncidentSpec>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?
    } else {
        args.incidents.clone()
    };
    // A temporary directory lives until the end of `run`, after the store is closed.
    let (data_dir, _tmp) = match &args.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("vigil-demo-")
                .tempdir()
                .context("creating a data directory")?;
            (tmp.path().to_owned(), Some(tmp))
        }
    };
    let mut cfg = Config::default();
    cfg.storage.data_dir = data_dir;
    cfg.server.listen = args.listen;
    cfg.rule_files = vec![write_rules(&cfg.storage.data_dir)?];
    cfg.alerting = receivers(args)?;
    let console = console_output(args, &cfg)?;

    let rt = super::runtime()?;
    let listener = rt.block_on(server::bind(&cfg))?;
    cfg.server.listen = listener.local_addr().context("reading the listen address")?;
    let app = App::open(&cfg, None)?;
    let live_start = backfill(&app.collector, history, args.seed)?;

    let incidents: Vec<_> = incidents.iter().map(|s| s.at(live_start)).collect();
    let mut live = Simulator::new(Topology::default(), incidents, args.seed.wrapping_add(1));
    live.rate_scale = DEMO_RATE;
    print_banner(&cfg, args, live.incidents());
    let dashboard = args
        .opens_dashboard()
        .then(|| vigil_tui::Options::new(&format!("http://{}", cfg.server.listen)));
    if dashboard.is_some() {
        let log = cfg.storage.data_dir.join("vigil.log");
        let file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        crate::logs::divert(Box::new(file));
    }

    let (ui_result, ui_stopped) = rt.block_on(async move {
        let running = Arc::new(AtomicBool::new(true));
        let traffic = tokio::spawn(live_traffic(app.collector.clone(), live, live_start, running.clone()));
        let (stop_ui, ui_stop) = tokio::sync::oneshot::channel::<()>();
        let mut ui = dashboard.map(|opts| {
            tokio::spawn(vigil_tui::run_until(opts, async move {
                let _ = ui_stop.await;
            }))
        });
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        // Runs until the time is up, a signal, or `q` in the dashboard; then closes the
        // dashboard and stops the traffic (letting its last batch land) before the server
        // flushes and closes.
        let stop = async move {
            let wait = async {
                match duration {
                    Some(ms) => tokio::time::sleep(Duration::from_millis(ms as u64)).await,
                    None => std::future::pending().await,
                }
            };
            let ui_done = async {
                match ui.as_mut() {
                    Some(h) => Some(h.await),
                    None => std::future::pending().await,
                }
            };
            let mut result = tokio::select! {
                () = wait => None,
                () = server::shutdown_signal() => None,
                r = ui_done => r,
            };
            let _ = stop_ui.send(());
            if let (None, Some(h)) = (&result, ui) {
                result = Some(h.await);
            }
            running.store(false, Ordering::Relaxed);
            let _ = traffic.await;
            let _ = done_tx.send(result);
        };
        let served = server::serve(&cfg, app, listener, console, stop).await;
        (served, done_rx.await.ok().flatten())
    });
    ui_result?;
    match ui_stopped {
        Some(Ok(Err(e))) => Err(anyhow::Error::new(e).context("the terminal dashboard failed")),
        Some(Err(e)) => Err(anyhow::Error::new(e).context("the terminal dashboard panicked")),
        _ => Ok(()),
    }
}

/// Writes the demo rules into `<data_dir>/rules/` unless they are there already (so that edits
/// survive, and `POST /-/reload` picks them up), and returns the glob that loads them.
fn write_rules(data_dir: &Path) -> Result<String> {
    let dir = data_dir.join("rules");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in RULES {
        let path = dir.join(name);
        if !path.exists() {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(dir.join("*.yml").display().to_string())
}

/// Pages go to the console (one JSON line per alert) and to `--webhook` when given, grouped
/// per alert and service, soon after they fire.
fn receivers(args: &DemoArgs) -> Result<AlertingConfig> {
    let mut receivers = String::from("  - name: console\n    console: {}\n");
    let mut routes = String::new();
    if let Some(url) = &args.webhook {
        receivers.push_str(&format!(
            "  - name: webhook\n    webhook: {{ url: {} }}\n",
            serde_json::to_string(url)?
        ));
        routes.push_str("  routes:\n    - receiver: webhook\n      continue: true\n    - receiver: console\n");
    }
    let yaml = format!(
        "receivers:\n{receivers}route:\n  receiver: console\n  group_by: [alertname, service]\n  group_wait: 10s\n  group_interval: 1m\n{routes}"
    );
    serde_yaml_ng::from_str(&yaml).context("the demo's alerting configuration")
}

/// Standard output without the dashboard; with it (the screen is the dashboard's), the file
/// `pages.jsonl` in the data directory.
fn console_output(args: &DemoArgs, cfg: &Config) -> Result<server::ConsoleWriter> {
    let out: Box<dyn std::io::Write + Send> = if !args.opens_dashboard() {
        Box::new(std::io::stdout())
    } else {
        let path = cfg.storage.data_dir.join("pages.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Box::new(file)
    };
    Ok(Arc::new(parking_lot::Mutex::new(out)))
}

/// Synthesizes history through the collector's aggregator, window by window, as the live path
/// would have produced it (same simulator, same templating and windows; no JSON round trip).
/// One thread generates requests while another aggregates and stores them. Returns the time
/// history reaches, which is where live traffic starts.
fn backfill(collector: &Arc<Collector>, history: i64, seed: u64) -> Result<Timestamp> {
    let mut until = now_ms();
    let resume = collector.with_aggregator(|agg, _| agg.closed_until())?;
    let mut from = resume.unwrap_or(until - history).max(until - history);
    let mut sim = Simulator::new(Topology::default(), Vec::new(), seed);
    sim.rate_scale = DEMO_RATE;
    let started = Instant::now();
    let mut events = 0u64;
    let total_hours = ((until - from).max(0) as u64).div_ceil(3_600_000);
    let bar = ProgressBar::new(total_hours);
    bar.set_style(
        ProgressStyle::with_template("{spinner} backfilling history [{bar:40}] {pos}/{len} h ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    // Backfilling takes a while: go round again for the time that passed meanwhile, until
    // history reaches the present.
    while until - from > 1_000 {
        events += backfill_range(collector, &mut sim, from, until, &bar)?;
        from = until;
        until = now_ms();
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "backfilled {:.1} days of history: {events} requests in {secs:.1} s ({:.0} requests/s)",
        total_hours as f64 / 24.0,
        events as f64 / secs.max(1e-9)
    );
    Ok(from)
}

/// Requests in `[from, until)`, generated ten minutes at a time on a second thread.
pub(crate) fn backfill_range(
    collector: &Collector,
    sim: &mut Simulator,
    from: Timestamp,
    until: Timestamp,
    bar: &ProgressBar,
) -> Result<u64> {
    const WINDOW: i64 = 10_000;
    const CHUNK: i64 = 600_000;
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Timestamp, Vec<SimEvent>)>(2);
    std::thread::scope(|s| -> Result<u64> {
        s.spawn(move || {
            let mut t = from;
            while t < until {
                let chunk_end = (t + CHUNK).min(until);
                let mut batch = Vec::new();
                let mut w = t;
                while w < chunk_end {
                    // Window by window, so event time advances as in a live stream.
                    let end = ((w.div_euclid(WINDOW) + 1) * WINDOW).min(chunk_end);
                    sim.generate(w, end, |e| batch.push(e));
                    w = end;
                }
                if tx.send((chunk_end, batch)).is_err() {
                    return;
                }
                t = chunk_end;
            }
        });
        let mut n = 0u64;
        let mut next_hour = from + 3_600_000;
        for (chunk_end, batch) in rx {
            let wall = now_ms();
            n += collector.with_aggregator(|agg, out| {
                batch
                    .iter()
                    .filter(|e| agg.apply(&e.as_kong(), wall, out).is_ok())
                    .count() as u64
            })?;
            while chunk_end >= next_hour {
                bar.inc(1);
                next_hour += 3_600_000;
            }
        }
        Ok(n)
    })
}

/// Generates live traffic as Kong JSON and ingests it, every quarter second.
async fn live_traffic(collector: Arc<Collector>, mut sim: Simulator, start: Timestamp, running: Arc<AtomicBool>) {
    let mut last = start;
    let mut every = tokio::time::interval(LIVE_TICK);
    while running.load(Ordering::Relaxed) {
        every.tick().await;
        let now = now_ms();
        let mut body = Vec::with_capacity(64 << 10);
        sim.generate(last, now, |e| {
            e.write_json(&mut body);
            body.push(b'\n');
        });
        last = now;
        let c = collector.clone();
        match tokio::task::spawn_blocking(move || c.ingest_body(&body, now)).await {
            Ok(Ok(report)) if report.rejected.total() > 0 => {
                tracing::warn!(rejected = report.rejected.total(), "simulated events rejected");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "ingest failed"),
            Err(e) => tracing::error!(error = %e, "ingest task failed"),
        }
    }
}

fn print_banner(cfg: &Config, args: &DemoArgs, incidents: &[vigil_collector::sim::Incident]) {
    let url = format!("http://{}", cfg.server.listen);
    eprintln!(
        "vigil demo is serving {url} (data in {})",
        cfg.storage.data_dir.display()
    );
    eprintln!("  try: vigil query --url {url} 'sum by (service) (rate(vigil_http_requests_total[5m]))'");
    eprintln!("       vigil query --url {url} 'sum by (service) (rate(vigil_http_requests_total[5m] offset 1d))'");
    eprintln!("  scripted incidents (from now):");
    for (spec, inc) in args.incidents_or_default().iter().zip(incidents) {
        eprintln!("    {spec} (until {})", vigil_tsdb::time::format_rfc3339(inc.end));
    }
}

impl DemoArgs {
    /// Whether the demo shows the terminal dashboard (stdout must be a terminal for it).
    pub(crate) fn opens_dashboard(&self) -> bool {
        use std::io::IsTerminal;
        !self.no_tui && std::io::stdout().is_terminal()
    }

    fn incidents_or_default(&self) -> Vec<String> {
        if self.incidents.is_empty() {
            DEMO_SCENARIO.iter().map(|s| (*s).to_owned()).collect()
        } else {
            self.incidents.iter().map(ToString::to_string).collect()
        }
    }
}
