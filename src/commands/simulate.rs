//! `vigil simulate`: writes simulated Kong log events as NDJSON, for feeding `vigil import`,
//! `POST /ingest/kong`, a Kafka topic or a benchmark with realistic traffic.

use std::io::{BufWriter, Write};

use anyhow::Result;
use clap::Args;
use vigil_collector::sim::{IncidentSpec, Simulator, Topology};
use vigil_tsdb::time::{now_ms, parse_duration_ms};

use super::query::time_arg;

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Start of the traffic: RFC 3339, Unix seconds, `now` or `now-1h`.
    #[arg(long, default_value = "now-1h")]
    from: String,
    /// How much traffic time to generate.
    #[arg(long, default_value = "1h")]
    duration: String,
    /// Multiplies every route's rate (1.0: about 190 requests/s at the daily peak).
    #[arg(long, default_value_t = 1.0)]
    rate_scale: f64,
    /// A scripted incident relative to `--from` (repeatable).
    #[arg(long = "incident", value_name = "SPEC")]
    incidents: Vec<IncidentSpec>,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub(crate) fn run(args: &SimulateArgs) -> Result<()> {
    let from_s = time_arg(&args.from, now_ms())?;
    let from = (from_s.parse::<f64>()? * 1000.0) as i64;
    let duration = parse_duration_ms(&args.duration).map_err(anyhow::Error::msg)?;
    let incidents = args.incidents.iter().map(|s| s.at(from)).collect();
    let mut sim = Simulator::new(Topology::default(), incidents, args.seed);
    sim.rate_scale = args.rate_scale;
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let mut line = Vec::with_capacity(2048);
    let mut result = Ok(());
    sim.generate_in_order(from, from + duration, |e| {
        if result.is_ok() {
            line.clear();
            e.write_json(&mut line);
            line.push(b'\n');
            result = out.write_all(&line);
        }
    });
    result?;
    out.flush()?;
    Ok(())
}
