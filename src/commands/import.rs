//! `vigil import kong FILE...`: loads Kong NDJSON files into a data directory offline, with a
//! progress bar, then reports what was accepted and rejected. `vigil import openmetrics FILE`
//! loads samples with timestamps (a backfill, or a side-by-side with Prometheus).
//!
//! Several files (one per Kong node, say) are merged by event time as they are read, so that
//! each file's events meet the aggregator's windows in order, as a live stream would deliver
//! them.

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

/// Opens the configured store for an offline import.
fn open_store(dir: &std::path::Path, cfg: &crate::config::Config) -> Result<Arc<Db>> {
    match Db::open(dir, cfg.storage.options()) {
        Ok(db) => Ok(Arc::new(db)),
        Err(TsdbError::Locked(d)) => anyhow::bail!(
            "{} is in use by another vigil (is `vigil serve` running on it?); stop it or import into another directory",
            d.display()
        ),
        Err(e) => Err(e).with_context(|| format!("opening the store in {}", dir.display())),
    }
}

fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} importing [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

pub(crate) fn run_kong(args: &ImportKongArgs) -> Result<()> {
    let cfg = args.config.load()?;
    let dir = &cfg.storage.data_dir;
    let db = open_store(dir, &cfg)?;
    let collector = Collector::new(db.clone(), cfg.collector.aggregator());
    let total: u64 = args
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = progress_bar(total, args.quiet);
    let started = Instant::now();
    let mut sources = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        sources.push(Source::new(file, path.clone()));
    }
    let report = merge(&mut sources, &collector, &bar)?;
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
    let late = report.rejected.get(Reject::Late);
    println!("late {late}");
    if late > 0 {
        eprintln!(
            "note: {late} events arrived more than {} behind the newest one of their stream; is a file out of time order?",
            vigil_tsdb::time::format_duration_ms(cfg.collector.allowed_lateness)
        );
    }
    println!("series {}, windows written {}", stats.series, stats.windows_committed);
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct ImportOpenMetricsArgs {
    /// OpenMetrics text with a timestamp on every sample (what `promtool tsdb
    /// create-blocks-from openmetrics` reads).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    config: ConfigArgs,
    /// No progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Samples per commit.
const OPENMETRICS_BATCH: usize = 100_000;

/// `vigil import openmetrics FILE`: appends every sample (each series' samples in time order,
/// as the format has them; a counter's, histogram's or summary's `_created` gives its point's
/// samples their start time), then writes them all into blocks and compacts them. A malformed
/// line stops the import with its line and column; what was committed before it stays.
pub(crate) fn run_openmetrics(args: &ImportOpenMetricsArgs) -> Result<()> {
    let cfg = args.config.load()?;
    let dir = &cfg.storage.data_dir;
    let db = open_store(dir, &cfg)?;
    let file = File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress_bar(total, args.quiet);
    let started = Instant::now();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let (mut line, mut number) = (String::new(), 0usize);
    let mut refs: std::collections::HashMap<vigil_tsdb::Labels, vigil_tsdb::head::SeriesRef> =
        std::collections::HashMap::new();
    let mut app = db.appender();
    let mut points = vigil_tsdb::openmetrics::Points::default();
    // A sample with its start time (its point's `_created`), by series reference after the
    // first time.
    let append = |app: &mut vigil_tsdb::Appender<'_>,
                  refs: &mut std::collections::HashMap<vigil_tsdb::Labels, vigil_tsdb::head::SeriesRef>,
                  s: vigil_tsdb::openmetrics::Line|
     -> Result<()> {
        match refs.get(&s.labels) {
            Some(r) => app.append_ref_with_start(*r, s.t, s.v, s.st),
            None => {
                let r = app.append_with_start(&s.labels, s.t, s.v, s.st)?;
                refs.insert(s.labels, r);
            }
        }
        Ok(())
    };
    let mut totals = vigil_tsdb::CommitStats::default();
    let commit = |app: vigil_tsdb::Appender<'_>, totals: &mut vigil_tsdb::CommitStats| -> Result<()> {
        let s = app.commit().context("writing to the store")?;
        totals.appended += s.appended;
        totals.duplicate += s.duplicate;
        totals.out_of_order += s.out_of_order;
        totals.conflict += s.conflict;
        Ok(())
    };
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut reader, &mut line)
            .with_context(|| format!("reading {}", args.file.display()))?;
        if n == 0 {
            break;
        }
        number += 1;
        bar.inc(n as u64);
        let text = line.trim_end_matches(['\n', '\r']);
        let ready = points
            .push(text, number)
            .map_err(|e| anyhow::anyhow!("{}:{}:{}: {}", args.file.display(), e.line, e.column, e.reason))?;
        for s in ready {
            append(&mut app, &mut refs, s).with_context(|| format!("{}:{number}", args.file.display()))?;
        }
        if app.len() >= OPENMETRICS_BATCH {
            commit(std::mem::replace(&mut app, db.appender()), &mut totals)?;
        }
    }
    for s in points.finish() {
        append(&mut app, &mut refs, s).with_context(|| format!("{}:{number}", args.file.display()))?;
    }
    commit(app, &mut totals)?;
    bar.set_message("cutting blocks");
    let report = db.flush_to_blocks().context("cutting blocks")?;
    db.sync()?;
    bar.finish_and_clear();
    let blocks = db.blocks();
    let block_bytes: u64 = blocks.iter().map(|b| b.size()).sum();
    let block_samples: u64 = blocks.iter().map(|b| b.meta().samples).sum();
    println!(
        "imported {} in {:.1} s into {}",
        args.file.display(),
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    println!(
        "samples {} (series {}), duplicates {}, out of order {}, conflicting {}",
        totals.appended,
        refs.len(),
        totals.duplicate,
        totals.out_of_order,
        totals.conflict
    );
    println!(
        "blocks {} (cut {}, compacted {}): {} samples in {} bytes ({:.3} bytes per sample)",
        blocks.len(),
        report.cut,
        report.compacted,
        block_samples,
        block_bytes,
        block_bytes as f64 / block_samples.max(1) as f64,
    );
    Ok(())
}

/// One input file read in chunks of whole lines, each line keyed by its event time.
struct Source {
    file: File,
    path: PathBuf,
    /// Whole lines not yet handed out, and a partial last line.
    buf: Vec<u8>,
    /// (start, end, event time) of the whole lines in `buf`, from `next` on.
    lines: Vec<(usize, usize, i64)>,
    next: usize,
    eof: bool,
}

impl Source {
    fn new(file: File, path: PathBuf) -> Self {
        Source {
            file,
            path,
            buf: Vec::new(),
            lines: Vec::new(),
            next: 0,
            eof: false,
        }
    }

    /// Event time of the next line, reading more of the file if needed; `None` at the end.
    fn peek(&mut self, bar: &ProgressBar) -> Result<Option<i64>> {
        while self.next == self.lines.len() && !self.eof {
            self.refill(bar)
                .with_context(|| format!("reading {}", self.path.display()))?;
        }
        Ok(self.lines.get(self.next).map(|l| l.2))
    }

    fn refill(&mut self, bar: &ProgressBar) -> std::io::Result<()> {
        // Drop the lines handed out; keep the partial last line.
        let keep_from = self.lines.last().map_or(0, |l| l.1);
        self.buf.drain(..keep_from.min(self.buf.len()));
        self.lines.clear();
        self.next = 0;
        let start = self.buf.len();
        self.buf.resize(start + CHUNK, 0);
        let mut filled = start;
        while filled < self.buf.len() {
            let n = self.file.read(&mut self.buf[filled..])?;
            if n == 0 {
                self.eof = true;
                break;
            }
            filled += n;
        }
        self.buf.truncate(filled);
        bar.inc((filled - start) as u64);
        let end = if self.eof {
            self.buf.len()
        } else {
            self.buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        let mut pos = 0;
        for line in self.buf[..end].split_inclusive(|&b| b == b'\n') {
            let t = event_time(line).unwrap_or(i64::MIN);
            self.lines.push((pos, pos + line.len(), t));
            pos += line.len();
        }
        // A line longer than a chunk leaves `lines` empty: `peek` reads on until it is whole.
        Ok(())
    }
}

/// Hands lines to the collector in event-time order across the sources, in batches of
/// consecutive lines of one source.
fn merge(sources: &mut [Source], collector: &Collector, bar: &ProgressBar) -> Result<IngestReport> {
    const BATCH: usize = 4096;
    let mut report = IngestReport::default();
    loop {
        let mut heads = Vec::with_capacity(sources.len());
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some(t) = s.peek(bar)? {
                heads.push((t, i));
            }
        }
        heads.sort_unstable();
        let Some(&(_, i)) = heads.first() else { break };
        // Take lines of the earliest source up to the next source's time.
        let limit = heads.get(1).map_or(i64::MAX, |h| h.0);
        let src = &mut sources[i];
        let from = src.next;
        while src.next < src.lines.len()
            && src.next - from < BATCH
            && (src.next == from || src.lines[src.next].2 <= limit)
        {
            src.next += 1;
        }
        let buf = &src.buf;
        let lines = src.lines[from..src.next].iter().map(|&(a, b, _)| &buf[a..b]);
        report.merge(&collector.ingest_lines(lines, now_ms())?);
    }
    Ok(report)
}

/// The earliest `"started_at"` number in a line (a batch line has several), without decoding
/// the rest; lines without one sort first.
fn event_time(line: &[u8]) -> Option<i64> {
    memchr::memmem::find_iter(line, b"\"started_at\"")
        .filter_map(|at| {
            let rest = &line[at + 12..];
            let rest = rest
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b':'))
                .map(|p| &rest[p..])?;
            let digits = rest.iter().take_while(|b| b.is_ascii_digit() || **b == b'-').count();
            std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_of_lines() {
        assert_eq!(
            event_time(br#"{"a":1,"started_at": 1795305600538,"b":2}"#),
            Some(1_795_305_600_538)
        );
        assert_eq!(event_time(br#"[{"started_at":20},{"started_at":10}]"#), Some(10));
        assert_eq!(event_time(b"not json"), None);
    }
}
