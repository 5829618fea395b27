//! `vigil slo generate|check FILE...`: SLO spec files to Prometheus rules
//! (`vigil_alerter::slo`). `generate` prints one rule file for all the specs given; `check`
//! says what each spec compiles to and warns where one failed request could page.

use std::path::PathBuf;

use anyhow::{Result, bail};
use vigil_alerter::rules::Rule;
use vigil_alerter::slo::{self, LoadedSlo, Slo, generate};

use crate::config::Config;

/// Spec files and where the histogram's bucket bounds come from.
#[derive(Debug, clap::Args)]
pub(crate) struct SloArgs {
    /// SLO spec files (YAML with a top-level `slos:` list).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// A vigil.yaml whose `collector.buckets` latency thresholds must be one of (Prometheus's
    /// default buckets otherwise, as the collector's).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The request-duration histogram's bounds the collector writes.
fn buckets(args: &SloArgs) -> Result<Vec<f64>> {
    Ok(match &args.config {
        Some(path) => Config::load(path)?.collector.buckets,
        None => vigil_collector::AggregatorConfig::default().buckets,
    })
}

/// Reads every file; prints every error (`file:line:col: SLO "name": ...`) to stderr.
fn read_all(args: &SloArgs) -> Result<Vec<LoadedSlo>> {
    let buckets = buckets(args)?;
    let mut slos = Vec::new();
    let mut errors = Vec::new();
    for path in &args.files {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{file}: {e}"));
                continue;
            }
        };
        match slo::spec::parse(&text, &file, &buckets) {
            Ok(found) => slos.extend(found.into_iter().map(|slo| LoadedSlo {
                file: file.clone(),
                slo,
            })),
            Err(es) => errors.extend(es.iter().map(ToString::to_string)),
        }
    }
    errors.extend(slo::check_unique(&slos).iter().map(ToString::to_string));
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        let n = errors.len();
        bail!("{n} {} in the SLO specs", if n == 1 { "error" } else { "errors" });
    }
    Ok(slos)
}

/// Prints the rule file for every SLO of the files given.
pub(crate) fn generate(args: &SloArgs) -> Result<()> {
    let slos = read_all(args)?;
    let specs: Vec<Slo> = slos.into_iter().map(|s| s.slo).collect();
    let sources: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
    print!("{}", generate::rule_file(&specs, &sources));
    Ok(())
}

/// Checks the files and says what each compiles to.
pub(crate) fn check(args: &SloArgs) -> Result<()> {
    let slos = read_all(args)?;
    for path in &args.files {
        let file = path.display().to_string();
        let mine: Vec<Slo> = slos.iter().filter(|s| s.file == file).map(|s| s.slo.clone()).collect();
        let groups = generate::groups(&mine, &file).map_err(|es| {
            let lines: Vec<String> = es.iter().map(ToString::to_string).collect();
            anyhow::anyhow!(lines.join("\n"))
        })?;
        let all = groups.iter().flat_map(|g| g.rules.iter());
        let (alerts, records) = all.fold((0, 0), |(a, r), rule| match rule {
            Rule::Alerting(_) => (a + 1, r),
            Rule::Recording(_) => (a, r + 1),
        });
        println!(
            "{file}: OK: {} SLOs, {} groups, {alerts} alerting and {records} recording rules",
            mine.len(),
            groups.len()
        );
        for w in mine.iter().flat_map(slo::warnings) {
            println!("  warning: {w}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The alerter checks thresholds against its own copy of the default bounds (it does not
    /// depend on the collector): they must be the collector's.
    #[test]
    fn the_alerter_knows_the_collectors_default_buckets() {
        assert_eq!(
            vigil_alerter::slo::DEFAULT_BUCKETS.to_vec(),
            vigil_collector::AggregatorConfig::default().buckets
        );
    }
}
