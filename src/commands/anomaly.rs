//! `vigil anomaly generate|check FILE...`: anomaly spec files to Prometheus rules
//! (`vigil_alerter::anomaly`). `generate` prints one rule file for all the specs given;
//! `check` says what each spec compiles to.

use std::path::PathBuf;

use anyhow::{Result, bail};
use vigil_alerter::anomaly::{Anomaly, generate, spec};

/// Spec files.
#[derive(Debug, clap::Args)]
pub(crate) struct AnomalyArgs {
    /// Anomaly spec files (YAML with a top-level `anomalies:` list).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Reads every file; prints every error (`file:line:col: anomaly "name": ...`) to stderr.
/// Names must be unique across the files: their series would mix.
fn read_all(args: &AnomalyArgs) -> Result<Vec<(String, Anomaly)>> {
    let mut found: Vec<(String, Anomaly)> = Vec::new();
    let mut errors = Vec::new();
    for path in &args.files {
        let file = path.display().to_string();
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| vec![format!("{file}: {e}")])
            .and_then(|text| spec::parse(&text, &file).map_err(|es| es.iter().map(ToString::to_string).collect()));
        match parsed {
            Ok(anomalies) => {
                for a in anomalies {
                    if let Some((other, _)) = found.iter().find(|(_, o)| o.name == a.name) {
                        errors.push(format!(
                            "{file}:{}: anomaly {:?}: name {:?} is already used in {other}",
                            a.pos, a.name, a.name
                        ));
                    }
                    found.push((file.clone(), a));
                }
            }
            Err(es) => errors.extend(es),
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        let n = errors.len();
        bail!("{n} {} in the anomaly specs", if n == 1 { "error" } else { "errors" });
    }
    Ok(found)
}

/// Prints the rule file for every anomaly of the files given.
pub(crate) fn generate(args: &AnomalyArgs) -> Result<()> {
    let anomalies: Vec<Anomaly> = read_all(args)?.into_iter().map(|(_, a)| a).collect();
    let sources: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
    print!("{}", generate::rule_file(&anomalies, &sources));
    Ok(())
}

/// Checks the files and says what each compiles to.
pub(crate) fn check(args: &AnomalyArgs) -> Result<()> {
    let all = read_all(args)?;
    for path in &args.files {
        let file = path.display().to_string();
        let mine: Vec<Anomaly> = all.iter().filter(|(f, _)| *f == file).map(|(_, a)| a.clone()).collect();
        let groups = generate::groups(&mine, &file).map_err(|es| {
            let lines: Vec<String> = es.iter().map(ToString::to_string).collect();
            anyhow::anyhow!(lines.join("\n"))
        })?;
        let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
        println!(
            "{file}: OK: {} anomalies, {} groups, {} alerting and {} recording rules",
            mine.len(),
            groups.len(),
            mine.len(),
            rules - mine.len()
        );
    }
    Ok(())
}
