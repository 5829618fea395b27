//! `vigil backtest --rules PATH... --data-dir DIR --start T --end T [--incidents FILE]`: what
//! rules would have done over the history in a data directory, with no server running. Each
//! transition goes to standard output as a JSON line; a summary per rule (and, with incidents,
//! recall, time to detect and false pages) goes to standard error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use vigil_alerter::backtest::score::{self, Incident};
use vigil_alerter::backtest::{self, Event, RuleSummary};
use vigil_alerter::rules::Group;
use vigil_tsdb::promql::Engine;
use vigil_tsdb::time::{format_duration_ms, parse_timestamp};
use vigil_tsdb::{Db, Timestamp};

use crate::ConfigArgs;

#[derive(Debug, clap::Args)]
pub(crate) struct BacktestArgs {
    /// Rule files, or directories of them (unit-test files among them are skipped).
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// Start of the backtest: unix seconds or RFC 3339.
    #[arg(long, value_name = "T")]
    start: String,
    /// End of the backtest: unix seconds or RFC 3339.
    #[arg(long, value_name = "T")]
    end: String,
    /// A JSON list of labelled incidents (`{kind, service, route or path, start, end}`) to score
    /// the alerts against.
    #[arg(long, value_name = "FILE")]
    incidents: Option<PathBuf>,
    /// The configuration (evaluation interval, query offset, external labels) and the data
    /// directory.
    #[command(flatten)]
    config: ConfigArgs,
}

pub(crate) fn run(args: &BacktestArgs) -> Result<()> {
    let cfg = args.config.load()?;
    let start = parse_timestamp(&args.start).map_err(anyhow::Error::msg)?;
    let end = parse_timestamp(&args.end).map_err(anyhow::Error::msg)?;
    if end < start {
        bail!("--end is before --start");
    }
    let groups = load_rules(&args.rules, &cfg.collector.buckets)?;
    let incidents: Vec<Incident> = match &args.incidents {
        Some(path) => {
            let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_slice(&text).with_context(|| format!("{}: not a list of incidents", path.display()))?
        }
        None => Vec::new(),
    };
    let dir = &cfg.storage.data_dir;
    if !dir.exists() {
        bail!("the data directory {} does not exist", dir.display());
    }
    let db = Db::open(dir, cfg.storage.options()).with_context(|| format!("opening the store in {}", dir.display()))?;
    let engine = Engine::new(cfg.query.engine());
    let settings = cfg.eval_settings();
    let started = Instant::now();
    let mut events = Vec::new();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = None;
    let summaries = backtest::run(&groups, &db, &engine, &settings, start, end, |e| {
        if failed.is_none()
            && let Err(err) = writeln!(out, "{}", event_json(e))
        {
            failed = Some(err);
        }
        if e.state == "firing" {
            events.push(e.clone());
        }
    })?;
    if let Some(e) = failed {
        return Err(e).context("writing to standard output");
    }
    out.flush()?;
    drop(out);
    let rules = groups.iter().map(|g| g.rules.len()).sum::<usize>();
    eprintln!(
        "backtested {rules} rules in {} groups over {} in {:.1} s",
        groups.len(),
        format_duration_ms(end - start),
        started.elapsed().as_secs_f64()
    );
    print_summaries(&summaries, end - start);
    if args.incidents.is_some() {
        print_score(&score::score(&events, &incidents), end - start);
    }
    Ok(())
}

/// Rule groups from rule files, SLO spec files and directories of them (their `.yml` and
/// `.yaml` files, sorted); promtool unit-test files (a top-level `tests:`) are skipped.
fn load_rules(paths: &[PathBuf], latency_buckets: &[f64]) -> Result<Vec<Group>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut in_dir: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "yml" || x == "yaml"))
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(p.clone());
        }
    }
    let mut groups = Vec::new();
    let mut anomalies = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        if is_unit_test_file(&f)? {
            continue;
        }
        match vigil_alerter::slo::load_file(&f, latency_buckets) {
            Ok(file) => {
                groups.extend(file.rules.groups);
                anomalies.extend(file.anomalies);
            }
            Err(errs) => errors.extend(errs.iter().map(ToString::to_string)),
        }
    }
    let dup = vigil_alerter::slo::check_unique_anomalies(&anomalies);
    errors.extend(dup.iter().map(ToString::to_string));
    if !errors.is_empty() {
        bail!("the rules do not load:\n{}", errors.join("\n"));
    }
    if groups.is_empty() {
        bail!(
            "no rule groups in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(groups)
}

fn is_unit_test_file(path: &Path) -> Result<bool> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().any(|l| l.starts_with("tests:")) && !text.lines().any(|l| l.starts_with("groups:")))
}

fn event_json(e: &Event) -> Value {
    let labels: Map<String, Value> = e
        .labels
        .iter()
        .map(|l| (l.name.to_string(), Value::String(l.value.to_string())))
        .collect();
    json!({
        "at": e.at as f64 / 1000.0,
        "state": e.state,
        "labels": labels,
        "value": if e.value.is_finite() { json!(e.value) } else { json!(e.value.to_string()) },
    })
}

fn weeks(span_ms: i64) -> f64 {
    span_ms.max(1) as f64 / (7.0 * 86_400_000.0)
}

fn print_summaries(summaries: &[RuleSummary], span_ms: i64) {
    eprintln!(
        "{:<32} {:<24} {:>8} {:>12} {:>10}",
        "alert", "group", "firings", "time firing", "per week"
    );
    for s in summaries {
        eprintln!(
            "{:<32} {:<24} {:>8} {:>12} {:>10.1}",
            s.alertname,
            s.group,
            s.firings,
            format_duration_ms(s.firing_ms),
            s.firings as f64 / weeks(span_ms)
        );
    }
}

fn print_score(s: &score::Score, span_ms: i64) {
    let minutes = |ms: Option<Timestamp>| ms.map_or("-".to_owned(), |ms| format!("{:.1} min", ms as f64 / 60_000.0));
    eprintln!();
    eprintln!(
        "{:<14} {:>9} {:>7} {:>8} {:>13} {:>13}",
        "incident kind", "incidents", "caught", "recall", "median detect", "worst detect"
    );
    for (kind, k) in &s.kinds {
        eprintln!(
            "{kind:<14} {:>9} {:>7} {:>7.0}% {:>13} {:>13}",
            k.incidents,
            k.caught,
            k.recall() * 100.0,
            minutes(k.median_detect_ms()),
            minutes(k.worst_detect_ms())
        );
    }
    for (kind, service, at) in &s.missed {
        eprintln!(
            "missed: {kind} on {service} at {}",
            vigil_tsdb::time::format_rfc3339(*at)
        );
    }
    eprintln!(
        "false pages: {} ({:.2} per week); echoes: {}",
        s.false_pages.len(),
        s.false_pages_per_week(span_ms),
        s.echoes
    );
    for (alertname, service, at) in &s.false_pages {
        eprintln!(
            "false page: {alertname} on {service} at {}",
            vigil_tsdb::time::format_rfc3339(*at)
        );
    }
}
