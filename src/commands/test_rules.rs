//! `vigil test rules FILE...`: rule unit tests in promtool's format, with promtool's output
//! (`Unit Testing:  FILE`, then `  SUCCESS`, or `  FAILED:` and each failure on stderr) and
//! its exit status (1 when any test fails).

use std::path::PathBuf;

use anyhow::{Result, bail};
use vigil_alerter::unittest;

pub(crate) fn rules(files: &[PathBuf]) -> Result<()> {
    // A rule that fails to evaluate is a test failure, reported below; the evaluator's own
    // log line about it would say it twice.
    if std::env::var_os("VIGIL_LOG").is_none() {
        crate::logs::silence();
    }
    let mut failed = 0;
    for f in files {
        println!("Unit Testing:  {}", f.display());
        let report = unittest::run_file(f);
        for w in &report.warnings {
            eprintln!("  WARNING: {w}");
        }
        if report.passed() {
            println!("  SUCCESS");
        } else {
            failed += 1;
            eprintln!("  FAILED:");
            for failure in &report.failures {
                eprintln!("{failure}\n");
            }
        }
        println!();
    }
    if failed > 0 {
        bail!("{failed} of {} test files failed", files.len());
    }
    Ok(())
}
