//! `vigil import kong FILE...`: loads Kong NDJSON files into a data directory offline, with a
//! progress bar, then reports what was accepted and rejected.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use vigil_collector::{Collector, IngestReport, Reject};
use vigil_tsdb::time::now_ms;
use vigil_tsdb::{Db, Error as TsdbError};

use crate::ConfigArgs;
use crate::telemetry;

#[derive(Debug, Args)]
pub(crate) struct ImportKongArgs {
    /// NDJSON files: one Kong event (or http-log batch array) per line.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    config: ConfigArgs,
    /// No progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Bytes read per batch; lines are never split across batches.
const CHUNK: usize = 4 << 20;

pub(crate) fn run_kong(args: &ImportKongArgs) -> Result<()> {
    let cfg = args.config.load()?;
    let dir = &cfg.storage.data_dir;
    let db = match Db::open(dir, vigil_tsdb::Options::default()) {
        Ok(db) => Arc::new(db),
        Err(TsdbError::Locked(d)) => anyhow::bail!(
            "{} is in use by another vigil (is `vigil serve` running on it?); stop it or import into another directory",
            d.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("opening the store in {}", dir.display())),
    };
    let collector = Collector::new(db.clone(), cfg.collector.aggregator());
    let total: u64 = args
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} importing [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut report = IngestReport::default();
    for path in &args.files {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        import_file(file, &collector, &mut report, &bar).with_context(|| format!("importing {}", path.display()))?;
    }
    collector.flush().context("writing the last windows")?;
    telemetry::store(&db, &telemetry::gather(&db, Some(&collector)), now_ms()).context("writing import metrics")?;
    db.sync()?;
    bar.finish_and_clear();

    let stats = collector.stats();
    let reasons: Vec<String> = report.rejected.iter().map(|(r, n)| format!("{r} {n}")).collect();
    println!(
        "imported {} file(s), {} bytes, in {:.1} s into {}",
        args.files.len(),
        total,
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    println!("accepted {}", report.accepted);
    if reasons.is_empty() {
        println!("rejected 0");
    } else {
        println!("rejected {} ({})", report.rejected.total(), reasons.join(", "));
    }
    println!("late {}", report.rejected.get(Reject::Late));
    println!("series {}, windows written {}", stats.series, stats.windows_committed);
    Ok(())
}

fn import_file(mut file: File, collector: &Collector, report: &mut IngestReport, bar: &ProgressBar) -> Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut eof = false;
    while !eof {
        // Fill up to CHUNK bytes past what is carried over.
        let start = buf.len();
        buf.resize(start + CHUNK, 0);
        let mut filled = start;
        while filled < buf.len() {
            let n = file.read(&mut buf[filled..])?;
            if n == 0 {
                eof = true;
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        bar.inc((filled - start) as u64);
        // Process whole lines; keep a trailing partial line for the next round.
        let cut = if eof {
            buf.len()
        } else {
            buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        if cut > 0 {
            let r = collector.ingest_lines(buf[..cut].split(|&b| b == b'\n'), now_ms())?;
            report.merge(&r);
            buf.drain(..cut);
        }
    }
    Ok(())
}
