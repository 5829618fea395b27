//! vigil: API-health observability and alerting for Kong, in one binary.
//!
//! `main` parses the command line and hands over to `commands/`; the HTTP server lives in
//! `server/`, the configuration file in `config.rs`, self-metrics in `telemetry.rs`. See
//! ARCHITECTURE.md for the whole picture.

mod commands;
mod config;
mod logs;
mod server;
mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// mimalloc: with a million series appended in step the system allocator keeps a page of
/// every size they grow through, and commits run faster (BENCHMARKS.md, memory per series).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// API-health observability and alerting for Kong: ingest, store, query, alert.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the demo: 8 days of simulated history, then live traffic with a scripted incident.
    Demo(commands::demo::DemoArgs),
    /// Run vigil: ingest, store and the query API.
    Serve(ServeArgs),
    /// Evaluate a PromQL expression against a running vigil (or Prometheus).
    Query(commands::query::QueryArgs),
    /// Load data offline into a data directory.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Validate files.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Run unit tests: rule files against promtool's test format.
    #[command(subcommand)]
    Test(TestCommand),
    /// SLO specs: compile them to Prometheus rules (multiwindow burn-rate alerts, budgets).
    #[command(subcommand)]
    Slo(SloCommand),
    /// Seasonal anomaly specs: compile them to Prometheus rules (now against the median of the
    /// same time on earlier days and weeks).
    #[command(subcommand)]
    Anomaly(AnomalyCommand),
    /// What a running vigil's collector and sources are doing (Kafka partitions, lag, rejects).
    Status(commands::status::StatusArgs),
    /// Search the sampled raw events of a running vigil (every 5xx, a sample of the rest).
    Events(commands::events::EventsArgs),
    /// Acknowledge firing alerts of a running vigil: "I'm on it" (no repeats; receivers are told).
    Ack(commands::alerts::AckArgs),
    /// List the silences of a running vigil (`amtool silence add|expire` changes them).
    Silences(commands::alerts::SilencesArgs),
    /// Open the terminal dashboard against a running vigil (or Prometheus).
    Tui(commands::tui::TuiArgs),
    /// Write simulated Kong log events as NDJSON to stdout.
    Simulate(commands::simulate::SimulateArgs),
    /// What rules would have done over the history in a data directory (no server running).
    Backtest(commands::backtest::BacktestArgs),
    /// Write weeks of simulated history with labelled incidents into a new data directory.
    Scenario(commands::scenario::ScenarioArgs),
}

/// Where the configuration comes from; flags override the file.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ConfigArgs {
    /// Configuration file (vigil.yaml).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (overrides storage.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    /// The configuration file (or defaults) with the flags applied.
    pub(crate) fn load(&self) -> anyhow::Result<config::Config> {
        let mut cfg = match &self.config {
            Some(path) => config::Config::load(path)?,
            None => config::Config::default(),
        };
        if let Some(dir) = &self.data_dir {
            cfg.storage.data_dir = dir.clone();
        }
        Ok(cfg)
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address of the HTTP API (overrides server.listen); port 0 takes a free one, which the
    /// "vigil is serving" log line names.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Import Kong log events from NDJSON files (one event or batch array per line).
    Kong(commands::import::ImportKongArgs),
    /// Import OpenMetrics text with timestamps (what `promtool tsdb create-blocks-from
    /// openmetrics` reads); what is old enough is cut into blocks.
    Openmetrics(commands::import::ImportOpenMetricsArgs),
}

#[derive(Debug, Subcommand)]
enum SloCommand {
    /// Print the Prometheus rule file that SLO spec files compile to.
    Generate(commands::slo::SloArgs),
    /// Check SLO spec files and say what they compile to.
    Check(commands::slo::SloArgs),
}

#[derive(Debug, Subcommand)]
enum AnomalyCommand {
    /// Print the Prometheus rule file that anomaly spec files compile to.
    Generate(commands::anomaly::AnomalyArgs),
    /// Check anomaly spec files and say what they compile to.
    Check(commands::anomaly::AnomalyArgs),
}

#[derive(Debug, Subcommand)]
enum CheckCommand {
    /// Validate a vigil.yaml.
    Config {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate rule files (Prometheus's format, or SLO specs); errors name file, line and
    /// column.
    Rules {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TestCommand {
    /// Unit-test rule files: promtool's test files (`promtool test rules`), unchanged.
    Rules {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The terminal dashboard owns the screen; log lines go elsewhere while it runs.
    let dashboard = match &cli.command {
        Command::Tui(_) => true,
        Command::Demo(args) => args.opens_dashboard(),
        _ => false,
    };
    logs::init(dashboard);
    // One TLS stack for outgoing HTTPS (webhooks, Slack): rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(&args),
        Command::Serve(args) => commands::serve::run(&args.config, args.listen),
        Command::Query(args) => commands::query::run(&args),
        Command::Import(ImportCommand::Kong(args)) => commands::import::run_kong(&args),
        Command::Import(ImportCommand::Openmetrics(args)) => commands::import::run_openmetrics(&args),
        Command::Check(CheckCommand::Config { files }) => commands::check::config(&files),
        Command::Check(CheckCommand::Rules { files }) => commands::check::rules(&files),
        Command::Test(TestCommand::Rules { files }) => commands::test_rules::rules(&files),
        Command::Slo(SloCommand::Generate(args)) => commands::slo::generate(&args),
        Command::Slo(SloCommand::Check(args)) => commands::slo::check(&args),
        Command::Anomaly(AnomalyCommand::Generate(args)) => commands::anomaly::generate(&args),
        Command::Anomaly(AnomalyCommand::Check(args)) => commands::anomaly::check(&args),
        Command::Simulate(args) => commands::simulate::run(&args),
        Command::Backtest(args) => commands::backtest::run(&args),
        Command::Scenario(args) => commands::scenario::run(&args),
        Command::Tui(args) => commands::tui::run(&args),
        Command::Status(args) => commands::status::run(&args),
        Command::Events(args) => commands::events::run(&args),
        Command::Ack(args) => commands::alerts::ack(&args),
        Command::Silences(args) => commands::alerts::silences(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
