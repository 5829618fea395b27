//! Evaluating one rule group at one time against the store: recording rules write their series
//! back, alerting rules move their alerts through the state machine and write `ALERTS` and
//! `ALERTS_FOR_STATE`; a series a group wrote last time and not this time gets a staleness
//! marker, as in Prometheus.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use promql_parser::parser::Expr;
use rustc_hash::{FxHashMap, FxHashSet};
use vigil_tsdb::promql::{Engine, QueryError, Value};
use vigil_tsdb::{Db, Labels, Timestamp, stale_nan};

use crate::alert::{AlertSet, AlertState, Candidate, Transition};
use crate::rules::{AlertingRule, Group, RecordingRule, Rule};
use crate::template::{AlertData, QueryFnError, QueryRows};

/// Why one rule's evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The expression could not be evaluated.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The expression is a range vector or a string.
    #[error("rule result is a {0}, not a vector or scalar")]
    NotAVector(&'static str),
    /// A recording rule's labels made two series the same.
    #[error("vector contains metrics with the same labelset after applying rule labels")]
    DuplicateLabelset,
    /// An alerting rule's labels made two alerts the same.
    #[error("vector contains metrics with the same labelset after applying alert labels")]
    DuplicateAlertLabelset,
}

/// Settings shared by all groups.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    /// Interval of groups that do not set one.
    pub default_interval_ms: i64,
    /// How far behind the evaluation time queries look, for groups that do not set it. vigil's
    /// collector writes a window about 15 s after it ends, so rules look that far back to see
    /// complete data.
    pub default_query_offset_ms: i64,
    /// `$externalLabels` in templates.
    pub external_labels: BTreeMap<String, String>,
    /// `$externalURL` in templates, and the base of links in pages.
    pub external_url: String,
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            default_interval_ms: 30_000,
            default_query_offset_ms: 15_000,
            external_labels: BTreeMap::new(),
            external_url: "http://127.0.0.1:9464".into(),
        }
    }
}

/// A rule's health after its last evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Not evaluated yet.
    Unknown,
    /// Evaluated without error.
    Ok,
    /// The last evaluation failed.
    Err(String),
}

/// A rule and what its evaluations left behind.
#[derive(Debug, Clone)]
pub struct RuleRuntime {
    /// The rule.
    pub rule: Rule,
    /// Health of the last evaluation.
    pub health: Health,
    /// When it was last evaluated.
    pub last_eval: Option<Timestamp>,
    /// How long that took.
    pub eval_duration: Duration,
    /// The alerts (alerting rules only).
    pub alerts: AlertSet,
    /// What pages compare with D-1 and D-7 (alerting rules only; see [`crate::context`]).
    /// Without it, the alert's own expression.
    pub context: Option<Expr>,
    /// Series written by the last evaluation, to mark stale the ones that disappear.
    written: FxHashSet<Labels>,
}

/// A group and its rules' state.
#[derive(Debug, Clone)]
pub struct GroupRuntime {
    /// The group.
    pub group: Group,
    /// Its rules, in order.
    pub rules: Vec<RuleRuntime>,
    /// When the group was last evaluated.
    pub last_eval: Option<Timestamp>,
    /// How long that took.
    pub eval_duration: Duration,
}

/// An alert transition with what a page needs to say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// What happened.
    pub transition: Transition,
    /// The rule's group and file.
    pub group: String,
    /// The file of the group.
    pub file: String,
    /// The rule's expression.
    pub expr: String,
    /// The expression's value for this alert's series a day and a week before.
    pub d1: Option<f64>,
    /// See `d1`.
    pub d7: Option<f64>,
}

const DAY_MS: i64 = 86_400_000;

impl GroupRuntime {
    /// A group that has not been evaluated.
    pub fn new(group: Group) -> Self {
        let rules = group
            .rules
            .iter()
            .map(|r| RuleRuntime {
                rule: r.clone(),
                health: Health::Unknown,
                last_eval: None,
                eval_duration: Duration::ZERO,
                alerts: AlertSet::default(),
                context: None,
                written: FxHashSet::default(),
            })
            .collect();
        GroupRuntime {
            group,
            rules,
            last_eval: None,
            eval_duration: Duration::ZERO,
        }
    }

    /// The group's evaluation interval.
    pub fn interval_ms(&self, s: &EvalSettings) -> i64 {
        self.group.interval_ms.unwrap_or(s.default_interval_ms).max(1)
    }

    /// Evaluates the rules in order at `ts`, each writing its results before the next runs
    /// (so a rule may use the series of a recording rule above it), and returns the alert
    /// transitions.
    pub fn evaluate(&mut self, db: &Db, engine: &Engine, s: &EvalSettings, ts: Timestamp) -> Vec<Notice> {
        let started = Instant::now();
        let query_ts = ts - self.group.query_offset_ms.unwrap_or(s.default_query_offset_ms);
        let mut notices = Vec::new();
        let group_labels = self.group.labels.clone();
        for rr in &mut self.rules {
            let rule_started = Instant::now();
            let mut out: Vec<(Labels, f64)> = Vec::new();
            let result = match &rr.rule {
                Rule::Recording(r) => record(db, engine, r, &group_labels, query_ts).map(|series| {
                    out.extend(series);
                }),
                Rule::Alerting(a) => {
                    let context = rr.context.as_ref().unwrap_or(&a.expr);
                    alert(db, engine, a, context, &group_labels, s, ts, query_ts, &mut rr.alerts).map(
                        |(series, ts_notices)| {
                            out.extend(series);
                            notices.extend(ts_notices.into_iter().map(|(transition, d1, d7)| Notice {
                                transition,
                                group: self.group.name.clone(),
                                file: self.group.file.clone(),
                                expr: a.expr_text.clone(),
                                d1,
                                d7,
                            }));
                        },
                    )
                }
            };
            rr.health = match result {
                Ok(()) => Health::Ok,
                Err(e) => {
                    tracing::warn!(group = %self.group.name, rule = rr.rule.name(), error = %e, "rule evaluation failed");
                    Health::Err(e.to_string())
                }
            };
            rr.last_eval = Some(ts);
            rr.written = write(db, out, &rr.written, query_ts);
            rr.eval_duration = rule_started.elapsed();
        }
        self.last_eval = Some(ts);
        self.eval_duration = started.elapsed();
        notices
    }

    /// Takes over alert states from an earlier version of this group (a reload, or state read
    /// back after a restart), matching rules by name and expression.
    pub fn adopt_alerts(&mut self, mut previous: impl FnMut(&str, &str) -> Option<AlertSet>) {
        for rr in &mut self.rules {
            if let Rule::Alerting(a) = &rr.rule
                && let Some(set) = previous(&a.alert, &a.expr_text)
            {
                rr.alerts = set;
            }
        }
    }
}

/// Appends a rule's results, and staleness markers for what its last evaluation wrote and this
/// one did not; returns what was written.
fn write(db: &Db, out: Vec<(Labels, f64)>, before: &FxHashSet<Labels>, t: Timestamp) -> FxHashSet<Labels> {
    let mut app = db.appender();
    let mut written = FxHashSet::default();
    for (labels, v) in out {
        if let Err(e) = app.append(&labels, t, v) {
            tracing::warn!(error = %e, "rule result not stored");
            continue;
        }
        written.insert(labels);
    }
    for gone in before.difference(&written) {
        if let Err(e) = app.append(gone, t, stale_nan()) {
            tracing::warn!(error = %e, "staleness marker not stored");
        }
    }
    if let Err(e) = app.commit() {
        tracing::error!(error = %e, "writing rule results failed");
    }
    written
}

fn instant_vector(
    db: &Db,
    engine: &Engine,
    expr: &promql_parser::parser::Expr,
    t: Timestamp,
) -> Result<Vec<(Labels, f64)>, EvalError> {
    match engine.instant(db, expr, t)? {
        Value::Vector(v) => Ok(v.into_iter().map(|s| (s.metric, s.v)).collect()),
        Value::Scalar { v, .. } => Ok(vec![(Labels::empty(), v)]),
        other => Err(EvalError::NotAVector(other.type_name())),
    }
}

fn record(
    db: &Db,
    engine: &Engine,
    r: &RecordingRule,
    group_labels: &[(String, String)],
    t: Timestamp,
) -> Result<Vec<(Labels, f64)>, EvalError> {
    let mut seen = FxHashSet::default();
    let mut out = Vec::new();
    for (labels, v) in instant_vector(db, engine, &r.expr, t)? {
        let mut b = labels.to_builder();
        b.set("__name__", r.record.clone());
        for (k, val) in group_labels.iter().chain(&r.labels) {
            b.set(k.clone(), val.clone());
        }
        let l = b.build();
        if !seen.insert(l.clone()) {
            return Err(EvalError::DuplicateLabelset);
        }
        out.push((l, v));
    }
    Ok(out)
}

/// An alert's labels: the result series' (without its name), the group's, the rule's (their
/// templates expanded with `data`) and `alertname`, each overriding the one before.
pub(crate) fn alert_labels(
    a: &AlertingRule,
    series: &Labels,
    group_labels: &[(String, String)],
    data: &AlertData<'_>,
) -> Labels {
    let mut b = series.to_builder();
    for (k, v) in group_labels {
        b.set(k.clone(), v.clone());
    }
    for (k, t) in &a.labels {
        b.set(k.clone(), t.expand(data));
    }
    b.set("alertname", a.alert.clone());
    b.build()
}

/// Transitions of one alerting rule with their D-1 and D-7 values.
type RuleNotices = Vec<(Transition, Option<f64>, Option<f64>)>;

#[allow(clippy::too_many_arguments)]
fn alert(
    db: &Db,
    engine: &Engine,
    a: &AlertingRule,
    context: &Expr,
    group_labels: &[(String, String)],
    s: &EvalSettings,
    ts: Timestamp,
    query_ts: Timestamp,
    alerts: &mut AlertSet,
) -> Result<(Vec<(Labels, f64)>, RuleNotices), EvalError> {
    let result = instant_vector(db, engine, &a.expr, query_ts)?;
    let query = |q: &str| -> Result<QueryRows, QueryFnError> {
        let parsed = engine.parse(q)?;
        let rows = instant_vector(db, engine, parsed.expr(), query_ts)?;
        Ok(rows
            .into_iter()
            .map(|(l, v)| (l.iter().map(|l| (l.name.to_string(), l.value.to_string())).collect(), v))
            .collect())
    };
    // The result's labels (without the metric name) by alert fingerprint, to find the same
    // series a day and a week back.
    let mut source: FxHashMap<u64, Labels> = FxHashMap::default();
    let mut candidates = Vec::with_capacity(result.len());
    for (labels, value) in result {
        let data = AlertData {
            labels: labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect(),
            value,
            external_labels: s.external_labels.clone(),
            external_url: s.external_url.clone(),
            now_secs: ts as f64 / 1000.0,
            query: Some(&query),
        };
        let series = labels.without_metric_name();
        let alert_labels = alert_labels(a, &series, group_labels, &data);
        source.insert(alert_labels.stable_hash(), series);
        let annotations = a
            .annotations
            .iter()
            .map(|(k, t)| (k.clone(), t.expand(&data)))
            .collect();
        candidates.push(Candidate {
            labels: alert_labels,
            annotations,
            value,
        });
    }
    let transitions = alerts
        .eval(ts, candidates, a.for_ms, a.keep_firing_for_ms)
        .map_err(|_| EvalError::DuplicateAlertLabelset)?;
    let mut notices = Vec::with_capacity(transitions.len());
    // Alerts that started pending now (those with a `for`), for the history.
    for a in alerts
        .alerts()
        .filter(|a| a.state == AlertState::Pending && a.active_at == ts)
    {
        notices.push((Transition::Pending(a.clone()), None, None));
    }
    if !transitions.is_empty() {
        let back = |days: i64| -> FxHashMap<Labels, f64> {
            instant_vector(db, engine, context, query_ts - days * DAY_MS)
                .unwrap_or_default()
                .into_iter()
                .map(|(l, v)| (l.without_metric_name(), v))
                .collect()
        };
        let (d1, d7) = (back(1), back(7));
        for t in transitions {
            let src = source.get(&t.alert().labels.stable_hash()).cloned().unwrap_or_else(|| {
                // A resolved alert is no longer in the result: drop what the rule added.
                let mut names: Vec<String> = a.labels.iter().map(|(k, _)| k.clone()).collect();
                names.extend(group_labels.iter().map(|(k, _)| k.clone()));
                names.push("alertname".into());
                t.alert().labels.drop_names(&names)
            });
            let (v1, v7) = (d1.get(&src).copied(), d7.get(&src).copied());
            if let Transition::Fired(a) = &t {
                alerts.set_history(&a.labels, v1, v7);
            }
            notices.push((t, v1, v7));
        }
    }
    Ok((alerts.series(), notices))
}
