//! Rule unit tests in promtool's format (Prometheus's "Unit testing for rules", `promtool test
//! rules`), run by vigil's own rule evaluator and PromQL engine.
//!
//! ```text
//!  test file ──file.rs──> rule_files ──rules::load_file──> groups (group_eval_order first)
//!  each test group:
//!    input_series ──series.rs──> samples, appended to a scratch Db up to each step
//!    step 0, E, 2E, ... up to the largest eval_time (E = evaluation_interval):
//!        every group ──GroupRuntime::evaluate──> recorded series, ALERTS, alert states
//!        alert_rule_test with step <= eval_time < step + E ──compare.rs──> firing alerts
//!    then promql_expr_test ──Engine::instant at eval_time──compare.rs──> samples
//!  failures ──report.rs──> printed as promtool prints them
//! ```
//!
//! As in promtool, every group is evaluated at every step whatever its own interval, with no
//! query offset (unless a group sets one), and the input series reach the store only up to
//! the step being evaluated. Only firing alerts are compared; the expected alerts of a name
//! are the union over all rules of that name.

pub mod compare;
pub mod error;
pub mod file;
pub mod report;
pub mod series;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use vigil_tsdb::promql::{Engine, EngineOptions, Value};
use vigil_tsdb::{Db, Labels, LabelsBuilder, Timestamp};

use crate::alert::AlertState;
use crate::group::{EvalError, EvalSettings, GroupRuntime, Health};
use crate::rules::{Group, Rule};
pub use compare::{AlertInfo, SampleInfo};
pub use error::{ExprTestError, UnitTestError};
use file::{AlertTestCase, InputSeries, PromqlTestCase, TestFile, TestGroup};
pub use report::Failure;
use series::LabelPairs;

/// The evaluation interval of a file that does not set one.
const DEFAULT_EVALUATION_INTERVAL_MS: i64 = 60_000;

/// What running one test file found.
#[derive(Debug, Default)]
pub struct FileReport {
    /// Rule-file patterns that matched no file (promtool warns and goes on).
    pub warnings: Vec<String>,
    /// Why the file failed; empty when it passed.
    pub failures: Vec<Failure>,
}

impl FileReport {
    /// Whether every test of the file passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs every test group of the test file at `path`.
pub fn run_file(path: &Path) -> FileReport {
    let mut report = FileReport::default();
    let file = match read(path) {
        Ok(f) => f,
        Err(e) => {
            report.failures.push(Failure::Setup(e));
            return report;
        }
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    let paths = rule_paths(dir, &file.rule_files, &mut report.warnings);
    let groups = match load_rules(&paths) {
        Ok(groups) => groups,
        Err(errors) => {
            report.failures.extend(errors.into_iter().map(Failure::Setup));
            return report;
        }
    };
    let groups = match ordered(groups, &file.group_eval_order) {
        Ok(groups) => groups,
        Err(e) => {
            report.failures.push(Failure::Setup(e));
            return report;
        }
    };
    let eval_ms = match file.evaluation_interval {
        0 => DEFAULT_EVALUATION_INTERVAL_MS,
        ms => ms,
    };
    for tg in &file.tests {
        match GroupRun::new(tg, &groups, eval_ms) {
            Ok(run) => report.failures.extend(run.run()),
            Err(e) => report.failures.push(Failure::Setup(e)),
        }
    }
    report
}

fn read(path: &Path) -> Result<TestFile, UnitTestError> {
    let text = std::fs::read_to_string(path).map_err(|source| UnitTestError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_yaml_ng::from_str(&text).map_err(|source| UnitTestError::Yaml {
        path: path.to_owned(),
        source,
    })
}

/// The rule files, relative to the test file's directory, globs expanded; a pattern that
/// matches nothing is a warning, as in promtool.
fn rule_paths(dir: &Path, patterns: &[file::Text], warnings: &mut Vec<String>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in patterns {
        let full = dir.join(p.as_str()).to_string_lossy().into_owned();
        match crate::manager::expand_globs(std::slice::from_ref(&full)) {
            Ok(found) if !found.is_empty() => out.extend(found),
            _ => warnings.push(format!("no file match pattern {full}")),
        }
    }
    out
}

fn load_rules(paths: &[PathBuf]) -> Result<Vec<Group>, Vec<UnitTestError>> {
    let mut groups = Vec::new();
    let mut anomalies = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        // SLO and anomaly specs too (promtool reads only their generated rule files).
        match crate::slo::load_file(path, &crate::slo::DEFAULT_BUCKETS) {
            Ok(f) => {
                groups.extend(f.rules.groups);
                anomalies.extend(f.anomalies);
            }
            Err(es) => errors.extend(es.into_iter().map(UnitTestError::RuleFile)),
        }
    }
    let dup = crate::slo::check_unique_anomalies(&anomalies);
    errors.extend(dup.into_iter().map(UnitTestError::RuleFile));
    if errors.is_empty() { Ok(groups) } else { Err(errors) }
}

/// The groups in evaluation order: those `order` names by their place in it, the others as
/// promtool ranks them (with the first named), in file order.
fn ordered(mut groups: Vec<Group>, order: &[file::Text]) -> Result<Vec<Group>, UnitTestError> {
    let mut rank: HashMap<&str, usize> = HashMap::new();
    for (i, name) in order.iter().enumerate() {
        if rank.insert(name.as_str(), i).is_some() {
            return Err(UnitTestError::RepeatedGroup(name.as_str().to_owned()));
        }
    }
    groups.sort_by_key(|g| rank.get(g.name.as_str()).copied().unwrap_or(0));
    Ok(groups)
}

/// One test group being run: its scratch store, its copy of the rules and its input.
struct GroupRun<'a> {
    tg: &'a TestGroup,
    eval_ms: i64,
    /// Time 0 of the test (`start_timestamp`).
    start: Timestamp,
    /// The largest `eval_time`.
    last: i64,
    db: Db,
    engine: Engine,
    settings: EvalSettings,
    groups: Vec<GroupRuntime>,
    input: Input,
}

impl<'a> GroupRun<'a> {
    fn new(tg: &'a TestGroup, groups: &[Group], eval_ms: i64) -> Result<Self, UnitTestError> {
        if let Some(t) = tg.alert_rule_test.iter().find(|t| t.alertname.as_str().is_empty()) {
            return Err(UnitTestError::MissingAlertname {
                eval_time_ms: t.eval_time,
                group: tg.name.as_str().to_owned(),
            });
        }
        let interval = if tg.interval > 0 { tg.interval } else { eval_ms };
        let last = tg
            .alert_rule_test
            .iter()
            .map(|t| t.eval_time)
            .chain(tg.promql_expr_test.iter().map(|t| t.eval_time))
            .max()
            .unwrap_or(0);
        let start = tg.start_timestamp;
        let input = Input::parse(&tg.input_series, start, interval, (last / interval) as u64)?;
        let settings = EvalSettings {
            default_interval_ms: interval,
            default_query_offset_ms: 0,
            external_labels: tg
                .external_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
                .collect(),
            external_url: tg.external_url.as_str().to_owned(),
        };
        let engine = Engine::new(EngineOptions {
            // A subquery without a step steps at the evaluation interval, as in promtool.
            default_subquery_step_ms: eval_ms,
            ..EngineOptions::default()
        });
        Ok(GroupRun {
            tg,
            eval_ms,
            start,
            last,
            db: Db::in_memory(),
            engine,
            settings,
            groups: groups.iter().cloned().map(GroupRuntime::new).collect(),
            input,
        })
    }

    /// Evaluates the rules step by step, checks the alert tests at their steps, then the
    /// expression tests.
    fn run(mut self) -> Vec<Failure> {
        let mut failures = Vec::new();
        let mut alert_tests: Vec<&AlertTestCase> = self.tg.alert_rule_test.iter().collect();
        alert_tests.sort_by_key(|t| t.eval_time);
        let mut alert_tests = alert_tests.into_iter().peekable();
        let mut step = 0;
        while step <= self.last {
            let ts = self.start + step;
            if let Err(e) = self.input.append_till(&self.db, ts) {
                failures.push(Failure::Setup(e.into()));
                return failures;
            }
            let errors = self.evaluate(ts);
            if !errors.is_empty() {
                failures.extend(errors);
                return failures;
            }
            // A test between two steps sees the earlier one, as in promtool.
            while let Some(t) = alert_tests.next_if(|t| t.eval_time < step + self.eval_ms) {
                failures.extend(self.check_alerts(t));
            }
            step += self.eval_ms;
        }
        for case in &self.tg.promql_expr_test {
            failures.extend(self.check_expr(case));
        }
        failures
    }

    /// Every group at `ts`; the rules that failed.
    fn evaluate(&mut self, ts: Timestamp) -> Vec<Failure> {
        let mut failures = Vec::new();
        for g in &mut self.groups {
            g.evaluate(&self.db, &self.engine, &self.settings, ts);
            for rr in &g.rules {
                if let Health::Err(message) = &rr.health {
                    failures.push(Failure::RuleEval {
                        rule: rr.rule.name().to_owned(),
                        time_ms: ts,
                        message: message.clone(),
                    });
                }
            }
        }
        failures
    }

    fn check_alerts(&self, case: &AlertTestCase) -> Option<Failure> {
        let name = case.alertname.as_str();
        let mut got = self.firing(name);
        let mut exp: Vec<AlertInfo> = case
            .exp_alerts
            .iter()
            .map(|a| {
                let mut labels: BTreeMap<&str, &str> =
                    a.exp_labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                labels.insert("alertname", name);
                AlertInfo {
                    labels: compare::pairs(labels),
                    annotations: compare::pairs(a.exp_annotations.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                }
            })
            .collect();
        if compare::same_alerts(&mut exp, &mut got) {
            return None;
        }
        Some(Failure::Alerts {
            group: self.tg.name.as_str().to_owned(),
            alertname: name.to_owned(),
            eval_time_ms: case.eval_time,
            exp,
            got,
        })
    }

    /// The firing alerts of every alerting rule named `name`.
    fn firing(&self, name: &str) -> Vec<AlertInfo> {
        let rules = self.groups.iter().flat_map(|g| &g.rules);
        rules
            .filter(|rr| matches!(&rr.rule, Rule::Alerting(a) if a.alert == name))
            .flat_map(|rr| rr.alerts.alerts())
            .filter(|a| a.state == AlertState::Firing)
            .map(|a| AlertInfo {
                labels: label_pairs(&a.labels),
                annotations: compare::pairs(a.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            })
            .collect()
    }

    fn check_expr(&self, case: &PromqlTestCase) -> Option<Failure> {
        let failed = |error: ExprTestError| Failure::ExprError {
            expr: case.expr.as_str().to_owned(),
            eval_time_ms: case.eval_time,
            error,
        };
        let mut got = match self.query(case.expr.as_str(), self.start + case.eval_time) {
            Ok(samples) => samples,
            Err(e) => return Some(failed(e.into())),
        };
        let mut exp = Vec::with_capacity(case.exp_samples.len());
        for s in &case.exp_samples {
            let labels = if s.histogram.as_str().is_empty() {
                series::parse_series(s.labels.as_str())
            } else {
                Err(series::SeriesError::NativeHistogram)
            };
            match labels {
                Ok(labels) => exp.push(SampleInfo { labels, value: s.value }),
                Err(source) => {
                    return Some(failed(ExprTestError::Labels {
                        text: s.labels.as_str().to_owned(),
                        source,
                    }));
                }
            }
        }
        if compare::same_samples(&mut exp, &mut got) {
            return None;
        }
        Some(Failure::Samples {
            expr: case.expr.as_str().to_owned(),
            eval_time_ms: case.eval_time,
            exp,
            got,
        })
    }

    /// An instant query, its result as samples (a scalar is one sample without labels).
    fn query(&self, expr: &str, t: Timestamp) -> Result<Vec<SampleInfo>, EvalError> {
        let query = self.engine.parse(expr)?;
        match self.engine.instant(&self.db, query.expr(), t)? {
            Value::Vector(v) => Ok(v
                .into_iter()
                .map(|s| SampleInfo {
                    labels: label_pairs(&s.metric),
                    value: s.v,
                })
                .collect()),
            Value::Scalar { v, .. } => Ok(vec![SampleInfo {
                labels: Vec::new(),
                value: v,
            }]),
            other => Err(EvalError::NotAVector(other.type_name())),
        }
    }
}

fn label_pairs(labels: &Labels) -> LabelPairs {
    compare::pairs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

/// The input series, appended to the store up to each step as promtool's lazy loader does (a
/// rule evaluated at a step never sees a later sample, even with a negative offset).
#[derive(Debug)]
struct Input {
    /// Each series with its samples in time order.
    series: Vec<(Labels, Vec<(Timestamp, f64)>)>,
    /// How many samples of each series are in the store.
    loaded: Vec<usize>,
}

impl Input {
    /// Reads the series; a series given twice keeps its last values, as in promtool. Samples
    /// after `last_step` are not kept: they are never loaded.
    fn parse(defs: &[InputSeries], start: Timestamp, interval: i64, last_step: u64) -> Result<Input, UnitTestError> {
        let mut series: Vec<(Labels, Vec<(Timestamp, f64)>)> = Vec::with_capacity(defs.len());
        let mut index: HashMap<Labels, usize> = HashMap::new();
        for d in defs {
            let (text, values) = (d.series.as_str(), d.values.as_str());
            let pairs = series::parse_series(text).map_err(|source| UnitTestError::InputSeries {
                series: text.to_owned(),
                source,
            })?;
            let points = series::parse_values(values, last_step).map_err(|source| UnitTestError::InputValues {
                series: text.to_owned(),
                values: values.to_owned(),
                source,
            })?;
            let mut b = LabelsBuilder::default();
            for (k, v) in pairs {
                b.set(k, v);
            }
            let labels = b.build();
            let samples = points
                .into_iter()
                .map(|(step, v)| (start + step as i64 * interval, v))
                .collect();
            match index.get(&labels) {
                Some(&i) => series[i].1 = samples,
                None => {
                    index.insert(labels.clone(), series.len());
                    series.push((labels, samples));
                }
            }
        }
        let loaded = vec![0; series.len()];
        Ok(Input { series, loaded })
    }

    /// Appends every sample up to `ts` not appended yet.
    fn append_till(&mut self, db: &Db, ts: Timestamp) -> Result<(), vigil_tsdb::Error> {
        let mut app = db.appender();
        for ((labels, samples), loaded) in self.series.iter().zip(self.loaded.iter_mut()) {
            while let Some(&(t, v)) = samples.get(*loaded)
                && t <= ts
            {
                app.append(labels, t, v)?;
                *loaded += 1;
            }
        }
        app.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
