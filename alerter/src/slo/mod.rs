//! SLO specs compiled to Prometheus rules.
//!
//! ```text
//!  slos.yml ──spec.rs (serde shapes, checks: names, objective, selector, by, bucket bound)──> [Slo]
//!     [Slo] ──generate.rs──> rule-file text ──rules.rs──> [Group]  (what vigil serve evaluates)
//! ```
//!
//! A file whose top level has `slos:` is a spec; [`load_file`] reads either kind, so
//! `rule_files` may mix them. The recorded series and the alerts are listed in
//! [`generate`]; `vigil slo generate` prints the text, `/api/v1/slos` reads the series back.

pub mod generate;
pub mod spec;

use std::path::Path;

pub use generate::ALERT_NAME;
pub use spec::{DEFAULT_MIN_TRAFFIC, Objective, Period, Sli, Slo, SpecError, SpecErrorKind};

use crate::rules::{self, Group, RuleError, RuleFile};
use crate::yaml::{self, Kind, Pos};

/// The duration histogram's bounds when `collector.buckets` is not set: Prometheus's client
/// defaults, as `vigil_collector::aggregate::DEFAULT_BUCKETS` (the binary's tests check that
/// the two agree; this crate does not depend on the collector).
pub const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A spec file, checked and compiled.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// Its SLOs, in file order.
    pub slos: Vec<Slo>,
    /// The rule groups, five per SLO.
    pub groups: Vec<Group>,
}

/// Checks spec text and compiles it to rule groups; `file` names it in errors and groups.
pub fn compile(text: &str, file: &str, buckets: &[f64]) -> Result<Compiled, Vec<SpecError>> {
    let slos = spec::parse(text, file, buckets)?;
    let groups = generate::groups(&slos, file)?;
    Ok(Compiled { slos, groups })
}

/// Whether YAML text is an SLO spec (its top level has `slos:`) rather than a rule file.
pub fn is_spec(text: &str) -> bool {
    has_top_level_key(text, "slos")
}

/// Whether YAML text is a mapping with `key` at its top level.
pub(crate) fn has_top_level_key(text: &str, key: &str) -> bool {
    match yaml::parse(text) {
        Ok(root) => match &root.kind {
            Kind::Map(entries) => entries.iter().any(|(k, _)| k.as_str() == Some(key)),
            _ => false,
        },
        Err(_) => false,
    }
}

/// An SLO loaded from a file.
#[derive(Debug, Clone)]
pub struct LoadedSlo {
    /// The spec file.
    pub file: String,
    /// The SLO.
    pub slo: Slo,
}

/// A rule file or a compiled spec.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    /// The groups to evaluate.
    pub rules: RuleFile,
    /// The SLOs they came from (none for a rule file).
    pub slos: Vec<LoadedSlo>,
    /// The anomalies they came from: file, name and where (none for a rule file).
    pub anomalies: Vec<(String, String, Pos)>,
}

/// Anomaly names (of [`LoadedFile::anomalies`]) must be unique across files too: their series
/// and groups would mix.
pub fn check_unique_anomalies(anomalies: &[(String, String, Pos)]) -> Vec<RuleError> {
    let mut errors = Vec::new();
    for (i, (file, name, pos)) in anomalies.iter().enumerate() {
        if let Some((first_file, _, first_pos)) = anomalies[..i].iter().find(|(_, n, _)| n == name) {
            errors.push(RuleError::from(SpecError {
                file: file.clone(),
                pos: *pos,
                what: "anomaly",
                slo: Some(name.clone()),
                kind: SpecErrorKind::DuplicateName {
                    name: name.clone(),
                    first: format!("{first_file}:{first_pos}"),
                },
            }));
        }
    }
    errors
}

/// Reads a rule file, an anomaly spec, or an SLO spec file compiled with the duration histogram's `buckets`; every
/// error names the file and the line (and the SLO).
pub fn load_file(path: &Path, buckets: &[f64]) -> Result<LoadedFile, Vec<RuleError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![RuleError {
            file: file.clone(),
            pos: Default::default(),
            context: None,
            message: e.to_string(),
        }]
    })?;
    let to_rule_errors = |es: Vec<SpecError>| es.into_iter().map(RuleError::from).collect::<Vec<_>>();
    if has_top_level_key(&text, "anomalies") {
        let (anomalies, groups) = crate::anomaly::compile(&text, &file).map_err(to_rule_errors)?;
        return Ok(LoadedFile {
            rules: RuleFile {
                path: path.to_owned(),
                groups,
            },
            slos: Vec::new(),
            anomalies: anomalies.into_iter().map(|a| (file.clone(), a.name, a.pos)).collect(),
        });
    }
    if !is_spec(&text) {
        let groups = rules::parse_str(&text, &file)?;
        return Ok(LoadedFile {
            rules: RuleFile {
                path: path.to_owned(),
                groups,
            },
            slos: Vec::new(),
            anomalies: Vec::new(),
        });
    }
    let c = compile(&text, &file, buckets).map_err(to_rule_errors)?;
    Ok(LoadedFile {
        rules: RuleFile {
            path: path.to_owned(),
            groups: c.groups,
        },
        slos: c
            .slos
            .into_iter()
            .map(|slo| LoadedSlo {
                file: file.clone(),
                slo,
            })
            .collect(),
        anomalies: Vec::new(),
    })
}

/// SLO names must be unique across files too: their series would mix.
pub fn check_unique(slos: &[LoadedSlo]) -> Vec<RuleError> {
    let mut errors = Vec::new();
    for (i, s) in slos.iter().enumerate() {
        if let Some(first) = slos[..i].iter().find(|o| o.slo.name == s.slo.name) {
            errors.push(RuleError::from(SpecError {
                file: s.file.clone(),
                pos: s.slo.pos,
                what: "SLO",
                slo: Some(s.slo.name.clone()),
                kind: SpecErrorKind::DuplicateName {
                    name: s.slo.name.clone(),
                    first: format!("{}:{}", first.file, first.slo.pos),
                },
            }));
        }
    }
    errors
}

/// What is legal but probably not meant: a `min_traffic` low enough that one failed request
/// pages (it alone fills the 1-hour window's 14.4x share at that rate).
pub fn warnings(slo: &Slo) -> Vec<String> {
    let one_error_ratio = 1.0 / (slo.min_traffic * 3600.0);
    let page_ratio = 14.4 * slo.objective.budget;
    if one_error_ratio > page_ratio {
        let needed = 1.0 / (3600.0 * page_ratio);
        vec![format!(
            "SLO {:?}: at {} req/s one failed request in an hour pages (a {}% objective needs \
             min_traffic above {:.3} req/s for that not to happen)",
            slo.name,
            vigil_tsdb::promql::format_float(slo.min_traffic),
            slo.objective.percent_text,
            needed
        )]
    } else {
        Vec::new()
    }
}

impl From<SpecError> for RuleError {
    fn from(e: SpecError) -> Self {
        RuleError {
            file: e.file,
            pos: e.pos,
            context: e.slo.map(|s| format!("{} {s:?}", e.what)),
            message: e.kind.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_told_from_rule_files() {
        assert!(is_spec("slos: []\n"));
        assert!(is_spec("slos:\n  - name: x\n"));
        assert!(!is_spec("groups: []\n"));
        assert!(!is_spec("groups: [\n"));
        assert!(!is_spec("- slos\n"));
    }

    #[test]
    fn loading_names_file_line_and_slo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("slos.yml");
        std::fs::write(
            &path,
            "slos:\n  - name: a\n    objective: 99.9\n    sli: { latency: { threshold: 0.3 } }\n",
        )
        .expect("write");
        let errors = load_file(&path, &DEFAULT_BUCKETS).expect_err("between buckets");
        let text = errors[0].to_string();
        assert!(text.starts_with(&format!("{}:4:", path.display())), "{text}");
        assert!(text.contains("SLO \"a\": latency threshold 0.3s"), "{text}");
        assert!(text.contains("0.25s and 0.5s"), "{text}");

        std::fs::write(
            &path,
            "slos:\n  - name: a\n    objective: 99.9\n    sli: { availability: {} }\n",
        )
        .expect("write");
        let loaded = load_file(&path, &DEFAULT_BUCKETS).expect("valid");
        assert_eq!((loaded.rules.groups.len(), loaded.slos.len()), (5, 1));
        let twice = [loaded.slos[0].clone(), loaded.slos[0].clone()];
        assert!(check_unique(&twice)[0].to_string().contains("is already used at"));
    }

    #[test]
    fn anomaly_names_are_unique_across_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "anomalies:\n  - { name: drop, alert: Drop, signal: traffic }\n";
        let mut found = Vec::new();
        for name in ["a.yml", "b.yml"] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            let loaded = load_file(&path, &DEFAULT_BUCKETS).expect("valid");
            assert_eq!(loaded.rules.groups.len(), 3);
            found.extend(loaded.anomalies);
        }
        let errors = check_unique_anomalies(&found);
        assert_eq!(errors.len(), 1);
        let text = errors[0].to_string();
        assert!(
            text.contains("b.yml:2:7: anomaly \"drop\": name \"drop\" is already used at"),
            "{text}"
        );
        assert!(check_unique_anomalies(&found[..1]).is_empty());
    }

    #[test]
    fn one_error_paging_is_warned_of() {
        let text = "slos:\n  - { name: a, objective: 99.99, sli: { availability: {} } }\n  - { name: b, objective: 99.9, sli: { availability: {} } }\n";
        let slos = spec::parse(text, "w.yml", &DEFAULT_BUCKETS).expect("valid");
        assert_eq!(warnings(&slos[0]).len(), 1, "{:?}", warnings(&slos[0]));
        assert!(
            warnings(&slos[0])[0].contains("above 0.193 req/s"),
            "{:?}",
            warnings(&slos[0])
        );
        assert!(warnings(&slos[1]).is_empty());
    }
}
