//! `vigil check config|rules FILE...`: validates files and says where they are wrong.

use std::path::PathBuf;

use anyhow::{Result, bail};
use vigil_alerter::rules::Rule;
use vigil_alerter::slo;

use crate::config::Config;

pub(crate) fn config(files: &[PathBuf]) -> Result<()> {
    let mut bad = 0;
    for f in files {
        match Config::load(f) {
            Ok(cfg) => {
                println!("{}: OK", f.display());
                // What an alertmanager.yml holds that vigil reads but does not use.
                for w in cfg.alerting.compile().map(|p| p.warnings).unwrap_or_default() {
                    println!("  warning: {w}");
                }
            }
            Err(e) => {
                bad += 1;
                println!("{}: FAILED: {e:#}", f.display());
            }
        }
    }
    summary(bad, files.len())
}

/// Rule files in Prometheus's format, or SLO spec files (as `vigil serve` loads them, against
/// the default latency buckets); every error is printed as `file:line:col: ...`.
pub(crate) fn rules(files: &[PathBuf]) -> Result<()> {
    let mut bad = 0;
    for f in files {
        match slo::load_file(f, &slo::DEFAULT_BUCKETS) {
            Ok(loaded) => {
                let file = loaded.rules;
                let all = file.groups.iter().flat_map(|g| g.rules.iter());
                let (alerts, records) = all.fold((0, 0), |(a, r), rule| match rule {
                    Rule::Alerting(_) => (a + 1, r),
                    Rule::Recording(_) => (a, r + 1),
                });
                let from = match loaded.slos.len() {
                    0 => String::new(),
                    n => format!(" (from {n} SLOs)"),
                };
                println!(
                    "{}: OK: {} groups, {alerts} alerting and {records} recording rules{from}",
                    f.display(),
                    file.groups.len()
                );
            }
            Err(errors) => {
                bad += 1;
                println!("{}: FAILED", f.display());
                for e in errors {
                    println!("  {e}");
                }
            }
        }
    }
    summary(bad, files.len())
}

fn summary(bad: usize, total: usize) -> Result<()> {
    if bad > 0 {
        bail!("{bad} of {total} files failed");
    }
    Ok(())
}
