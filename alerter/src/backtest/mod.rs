//! Backtests: rule groups evaluated over stored history, at each group's interval, as the live
//! evaluator would have evaluated them (the same query offset, `for`, `keep_firing_for`,
//! staleness of recorded series, the same alert state machine), with no server running.
//!
//! The live evaluator asks one instant query per rule and evaluation. A backtest asks one range
//! query per rule and chunk of time instead (range queries answer exactly what instant queries
//! at each step would), writes recording rules' results chunk by chunk into a scratch store laid
//! over the history ([`Overlay`]), and runs each alerting rule's results step by step through
//! [`AlertSet`]. Rules run in file and group order within a chunk, so a rule reads what the
//! rules before it recorded.
//!
//! A rule that reads `ALERTS` (hysteresis through its own alerts) needs each evaluation to see
//! the one before. In the usual shape, `FIRE or (HOLD and on (...) ALERTS{alertname="<itself>",
//! alertstate="firing"})` with neither side reading `ALERTS`, FIRE and HOLD are still range
//! queries over the chunk, and the `and` is worked out at each step from the `ALERTS` series
//! the rule wrote the step before ([`Hysteresis`]), provided its `ALERTS` selector can see no
//! other rule's alerts ([`Hysteresis::sees_only_its_own`]); any other rule reading `ALERTS` is
//! evaluated step by step with instant queries.
//!
//! What differs from the live evaluator: annotations are not expanded (a backtest reports
//! labels and values); `query` in label templates has no engine to ask; a rule reading a series
//! that a rule later in the evaluation order records sees it only from earlier chunks (live, it
//! sees the previous evaluation's); where two results share a label set after relabelling, the
//! first one stands (live, that evaluation fails); and a query error stops the backtest.

mod overlay;
pub mod score;

use std::collections::{BTreeMap, HashSet};

use promql_parser::label::MatchOp;
use promql_parser::parser::token::{T_LAND, T_LOR};
use promql_parser::parser::{Expr, LabelModifier, VectorMatchCardinality};
use rustc_hash::{FxHashMap, FxHashSet};
use vigil_tsdb::promql::{Engine, QueryError, Value};
use vigil_tsdb::storage::Queryable;
use vigil_tsdb::{Db, Labels, Timestamp, stale_nan};

pub use overlay::Overlay;

use crate::alert::{AlertSet, AlertState, Candidate, Transition};
use crate::group::{EvalSettings, alert_labels};
use crate::rules::{AlertingRule, Group, RecordingRule, Rule};
use crate::template::AlertData;

/// Evaluation time covered by one range query per rule: bounded memory, few queries.
const CHUNK_MS: i64 = 6 * 3_600_000;

/// One alert transition found by a backtest.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Evaluation time (ms).
    pub at: Timestamp,
    /// `pending`, `firing` or `resolved`.
    pub state: &'static str,
    /// The alert's labels, `alertname` among them.
    pub labels: Labels,
    /// The expression's value at that evaluation (the last value for a resolution).
    pub value: f64,
}

/// What one alerting rule did over the backtest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSummary {
    /// The alert's name.
    pub alertname: String,
    /// Its group.
    pub group: String,
    /// How many times an alert of it started firing.
    pub firings: usize,
    /// Time its alerts spent firing, summed over alerts (ms).
    pub firing_ms: i64,
}

/// Why a backtest stopped.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// A rule's query failed.
    #[error("group {group:?}, rule {rule:?}: {source}")]
    Query {
        /// The group.
        group: String,
        /// The rule.
        rule: String,
        /// What the engine said.
        source: QueryError,
    },
    /// The scratch store refused the rules' results.
    #[error("storing rule results: {0}")]
    Store(#[from] vigil_tsdb::Error),
}

/// Rule state carried from one chunk to the next.
enum RuleState {
    /// The series the last evaluation wrote (a later one that lacks them writes stale markers).
    Recording(FxHashSet<Labels>),
    /// The alerts, and the `ALERTS` series last written, with their query time.
    Alerting {
        alerts: AlertSet,
        written: FxHashSet<Labels>,
        written_at: Timestamp,
        summary: RuleSummary,
    },
}

/// Evaluates `groups` over `[start, end]` (ms) against `history`, calling `emit` with each
/// transition in time order; returns what each alerting rule did, in rule order.
pub fn run(
    groups: &[Group],
    history: &dyn Queryable,
    engine: &Engine,
    settings: &EvalSettings,
    start: Timestamp,
    end: Timestamp,
    emit: impl FnMut(&Event),
) -> Result<Vec<RuleSummary>, BacktestError> {
    run_in_chunks(groups, history, engine, settings, (start, end), CHUNK_MS, emit)
}

/// [`run`] with range queries of `chunk_ms` of evaluations each (shorter: less memory, more
/// queries; the transitions are the same).
pub fn run_in_chunks(
    groups: &[Group],
    history: &dyn Queryable,
    engine: &Engine,
    settings: &EvalSettings,
    (start, end): (Timestamp, Timestamp),
    chunk_ms: i64,
    mut emit: impl FnMut(&Event),
) -> Result<Vec<RuleSummary>, BacktestError> {
    let chunk_ms = chunk_ms.max(1);
    let scratch = Db::in_memory();
    let mut shadowed: HashSet<String> = ["ALERTS", "ALERTS_FOR_STATE"].map(str::to_owned).into();
    for g in groups {
        for r in &g.rules {
            if let Rule::Recording(r) = r {
                shadowed.insert(r.record.clone());
            }
        }
    }
    let store = Overlay::new(history, &scratch, shadowed);
    let mut states: Vec<Vec<RuleState>> = groups
        .iter()
        .map(|g| {
            g.rules
                .iter()
                .map(|r| match r {
                    Rule::Recording(_) => RuleState::Recording(FxHashSet::default()),
                    Rule::Alerting(a) => RuleState::Alerting {
                        alerts: AlertSet::default(),
                        written: FxHashSet::default(),
                        written_at: Timestamp::MIN / 2,
                        summary: RuleSummary {
                            alertname: a.alert.clone(),
                            group: g.name.clone(),
                            ..Default::default()
                        },
                    },
                })
                .collect()
        })
        .collect();
    let alerting = alerting_rules(groups);
    let mut chunk_start = start;
    while chunk_start <= end {
        let chunk_end = (chunk_start + chunk_ms - 1).min(end);
        let mut events = Vec::new();
        for (g, group_states) in groups.iter().zip(&mut states) {
            let steps = Steps::of(g, settings, chunk_start, chunk_end);
            let Some(steps) = steps else { continue };
            for (rule, state) in g.rules.iter().zip(group_states.iter_mut()) {
                let hysteresis = match rule {
                    // The step before's ALERTS must still be within the lookback.
                    Rule::Alerting(a) if steps.interval < engine.options().lookback_delta_ms => {
                        Hysteresis::of(a).filter(|h| h.sees_only_its_own(a, &alerting))
                    }
                    _ => None,
                };
                let mut rows = if let Some(h) = hysteresis {
                    let fire = steps.evaluate(engine, &store, &h.fire, (g, rule.name()))?.into_iter();
                    let hold = steps.evaluate(engine, &store, &h.hold, (g, rule.name()))?.into_iter();
                    Rows::Hysteresis {
                        fire,
                        hold,
                        shape: Box::new(h),
                    }
                } else if reads_alerts(rule) {
                    Rows::Stepwise { engine, store: &store }
                } else {
                    let expr = match rule {
                        Rule::Recording(r) => &r.expr,
                        Rule::Alerting(a) => &a.expr,
                    };
                    Rows::Chunk(steps.evaluate(engine, &store, expr, (g, rule.name()))?.into_iter())
                };
                let rows = &mut rows;
                match (rule, state) {
                    (Rule::Recording(r), RuleState::Recording(prev)) => {
                        record(&scratch, r, g, &steps, rows, prev)?;
                    }
                    (
                        Rule::Alerting(a),
                        RuleState::Alerting {
                            alerts,
                            written,
                            written_at,
                            summary,
                        },
                    ) => {
                        let mut run = AlertRun {
                            rule: a,
                            group: g,
                            settings,
                            lookback_ms: engine.options().lookback_delta_ms,
                            alerts,
                            written,
                            written_at,
                            summary,
                        };
                        run.steps(&scratch, &steps, rows, &mut events)?;
                    }
                    _ => unreachable!("states are built from the rules"),
                }
            }
        }
        events.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.labels.cmp(&b.labels)));
        for e in &events {
            emit(e);
        }
        chunk_start = chunk_end + 1;
    }
    let mut out = Vec::new();
    for group_states in states {
        for state in group_states {
            if let RuleState::Alerting {
                alerts, mut summary, ..
            } = state
            {
                // Alerts still firing at the end count until the end.
                for a in alerts.alerts().filter(|a| a.state == AlertState::Firing) {
                    summary.firing_ms += end - a.fired_at.unwrap_or(a.active_at);
                }
                out.push(summary);
            }
        }
    }
    Ok(out)
}

/// The evaluation times of one group within a chunk.
struct Steps {
    /// First evaluation time (a multiple of the interval, as the live scheduler picks them).
    first: Timestamp,
    /// Number of evaluations.
    n: usize,
    interval: i64,
    /// How far behind the evaluation time queries look.
    offset: i64,
}

impl Steps {
    fn of(g: &Group, s: &EvalSettings, from: Timestamp, to: Timestamp) -> Option<Steps> {
        let interval = g.interval_ms.unwrap_or(s.default_interval_ms).max(1);
        let first = from.div_euclid(interval) * interval + if from.rem_euclid(interval) == 0 { 0 } else { interval };
        if first > to {
            return None;
        }
        Some(Steps {
            first,
            n: ((to - first) / interval + 1) as usize,
            interval,
            offset: g.query_offset_ms.unwrap_or(s.default_query_offset_ms),
        })
    }

    fn at(&self, k: usize) -> Timestamp {
        self.first + k as i64 * self.interval
    }

    /// An expression of the rule's at every step: one range query over the chunk.
    fn evaluate(
        &self,
        engine: &Engine,
        store: &dyn Queryable,
        expr: &Expr,
        (g, rule): (&Group, &str),
    ) -> Result<Vec<Vec<(Labels, f64)>>, BacktestError> {
        let q_first = self.first - self.offset;
        let q_last = self.at(self.n - 1) - self.offset;
        let value = engine
            .range(store, expr, q_first, q_last, self.interval)
            .map_err(|source| BacktestError::Query {
                group: g.name.clone(),
                rule: rule.to_owned(),
                source,
            })?;
        let mut rows: Vec<Vec<(Labels, f64)>> = vec![Vec::new(); self.n];
        if let Value::Matrix(series) = value {
            for s in series {
                for p in s.points {
                    let k = (p.t - q_first) / self.interval;
                    if let Some(row) = usize::try_from(k).ok().and_then(|k| rows.get_mut(k)) {
                        row.push((s.metric.clone(), p.v));
                    }
                }
            }
        }
        Ok(rows)
    }
}

/// Whether a rule reads `ALERTS` or `ALERTS_FOR_STATE` (hysteresis through its own alerts, say):
/// then each step must see what the step before wrote, so it is evaluated step by step.
fn reads_alerts(rule: &Rule) -> bool {
    mentions_alerts(rule.expr_text())
}

/// Whether PromQL text names `ALERTS` or `ALERTS_FOR_STATE` (not as part of another name).
fn mentions_alerts(text: &str) -> bool {
    text.match_indices("ALERTS").any(|(i, _)| {
        !text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    })
}

/// `FIRE or (HOLD and on (L) ALERTS{alertname="<the rule>", alertstate="firing", ...})`, with
/// only equality matchers on `ALERTS` and neither FIRE nor HOLD reading `ALERTS`.
struct Hysteresis {
    fire: Expr,
    hold: Expr,
    /// The `on` labels.
    on: Vec<String>,
    /// The matchers of the `ALERTS` selector: (label, equal, value).
    matchers: Vec<(String, bool, String)>,
}

impl Hysteresis {
    fn of(rule: &AlertingRule) -> Option<Hysteresis> {
        let Expr::Binary(or) = unparen(&rule.expr) else {
            return None;
        };
        if or.op.id() != T_LOR || or.modifier.as_ref().is_some_and(|m| m.matching.is_some()) {
            return None;
        }
        let Expr::Binary(and) = unparen(&or.rhs) else {
            return None;
        };
        let m = and.modifier.as_ref()?;
        let Some(LabelModifier::Include(on)) = &m.matching else {
            return None;
        };
        let plain = matches!(
            m.card,
            VectorMatchCardinality::ManyToMany | VectorMatchCardinality::OneToOne
        ) && m.fill_values.lhs.is_none()
            && m.fill_values.rhs.is_none();
        if and.op.id() != T_LAND || !plain {
            return None;
        }
        let Expr::VectorSelector(vs) = unparen(&and.rhs) else {
            return None;
        };
        if vs.offset.is_some() || vs.at.is_some() || !vs.matchers.or_matchers.is_empty() {
            return None;
        }
        let mut matchers = Vec::new();
        for mt in &vs.matchers.matchers {
            let equal = match mt.op {
                MatchOp::Equal => true,
                MatchOp::NotEqual => false,
                _ => return None,
            };
            matchers.push((mt.name.clone(), equal, mt.value.clone()));
        }
        if let Some(name) = &vs.name {
            matchers.push(("__name__".into(), true, name.clone()));
        }
        let wants = |name: &str, value: &str| matchers.iter().any(|(n, eq, v)| n == name && *eq && v == value);
        let own = wants("__name__", "ALERTS") && wants("alertname", &rule.alert) && wants("alertstate", "firing");
        let free = |e: &Expr| !mentions_alerts(&e.to_string());
        if !own || !free(&or.lhs) || !free(&and.lhs) {
            return None;
        }
        Some(Hysteresis {
            fire: (*or.lhs).clone(),
            hold: (*and.lhs).clone(),
            on: on.labels.clone(),
            matchers,
        })
    }

    /// Whether the `ALERTS` selector can only match alerts of `rule` itself: no other rule has
    /// its name, or each that does sets, as a rule label, a value other than `rule`'s for a
    /// label the selector asks to equal `rule`'s own (`severity`, `slo`). The fast path sees
    /// only what `rule` wrote; `ALERTS{alertname="X"}` alone reads every rule named X.
    fn sees_only_its_own(&self, rule: &AlertingRule, all: &[&AlertingRule]) -> bool {
        let constant = |r: &AlertingRule, name: &str| {
            r.labels
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, t)| t.plain().map(str::to_owned))
        };
        let pinned: Vec<(&str, &str)> = self
            .matchers
            .iter()
            .filter(|(n, eq, v)| *eq && constant(rule, n).as_deref() == Some(v.as_str()))
            .map(|(n, _, v)| (n.as_str(), v.as_str()))
            .collect();
        all.iter()
            .filter(|other| !std::ptr::eq(**other, rule) && other.alert == rule.alert)
            .all(|other| pinned.iter().any(|(n, v)| constant(other, n).is_some_and(|o| o != *v)))
    }

    /// The rule's result at one step: FIRE's series, and HOLD's whose `on` labels match an
    /// `ALERTS` series of `written` (what the rule wrote the step before) and whose labels no
    /// FIRE series has.
    fn combine(
        &self,
        fire: Vec<(Labels, f64)>,
        hold: Vec<(Labels, f64)>,
        written: &FxHashSet<Labels>,
    ) -> Vec<(Labels, f64)> {
        let signature = |l: &Labels| -> Vec<String> {
            self.on
                .iter()
                .map(|n| l.get(n).unwrap_or_default().to_owned())
                .collect()
        };
        let firing: FxHashSet<Vec<String>> = written
            .iter()
            .filter(|l| {
                self.matchers
                    .iter()
                    .all(|(n, eq, v)| (l.get(n).unwrap_or_default() == v.as_str()) == *eq)
            })
            .map(signature)
            .collect();
        let taken: FxHashSet<Labels> = fire.iter().map(|(l, _)| l.without_metric_name()).collect();
        let mut out = fire;
        for (l, v) in hold {
            if firing.contains(&signature(&l)) && !taken.contains(&l.without_metric_name()) {
                out.push((l, v));
            }
        }
        out
    }
}

/// The alerting rules of `groups`, in order.
fn alerting_rules(groups: &[Group]) -> Vec<&AlertingRule> {
    groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter_map(|r| match r {
            Rule::Alerting(a) => Some(a),
            Rule::Recording(_) => None,
        })
        .collect()
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

/// Where a rule's results at each step come from.
enum Rows<'a> {
    /// FIRE and HOLD of a [`Hysteresis`] rule from range queries over the chunk.
    Hysteresis {
        fire: std::vec::IntoIter<Vec<(Labels, f64)>>,
        hold: std::vec::IntoIter<Vec<(Labels, f64)>>,
        shape: Box<Hysteresis>,
    },
    /// One range query over the chunk, asked before the first step.
    Chunk(std::vec::IntoIter<Vec<(Labels, f64)>>),
    /// An instant query at each step, once the steps before are written.
    Stepwise {
        engine: &'a Engine,
        store: &'a dyn Queryable,
    },
}

impl Rows<'_> {
    /// The results at step `k`; `written`: the series the rule wrote the step before.
    fn at(
        &mut self,
        k: usize,
        steps: &Steps,
        expr: &Expr,
        (g, rule): (&Group, &str),
        written: &FxHashSet<Labels>,
    ) -> Result<Vec<(Labels, f64)>, BacktestError> {
        match self {
            Rows::Chunk(rows) => Ok(rows.next().unwrap_or_default()),
            Rows::Hysteresis { fire, hold, shape } => Ok(shape.combine(
                fire.next().unwrap_or_default(),
                hold.next().unwrap_or_default(),
                written,
            )),
            Rows::Stepwise { engine, store } => {
                let failed = |source| BacktestError::Query {
                    group: g.name.clone(),
                    rule: rule.to_owned(),
                    source,
                };
                Ok(
                    match engine
                        .instant(*store, expr, steps.at(k) - steps.offset)
                        .map_err(failed)?
                    {
                        Value::Vector(v) => v.into_iter().map(|s| (s.metric, s.v)).collect(),
                        Value::Scalar { v, .. } => vec![(Labels::empty(), v)],
                        _ => Vec::new(),
                    },
                )
            }
        }
    }

    /// Whether what a step writes must be committed before the next step is asked.
    fn stepwise(&self) -> bool {
        matches!(self, Rows::Stepwise { .. })
    }
}

/// Writes a recording rule's results at each step's query time, with stale markers for series
/// the step before wrote and this one did not, as the live evaluator writes them.
fn record(
    scratch: &Db,
    r: &RecordingRule,
    g: &Group,
    steps: &Steps,
    rows: &mut Rows<'_>,
    prev: &mut FxHashSet<Labels>,
) -> Result<(), BacktestError> {
    let mut app = scratch.appender();
    // Each result series' recorded labels and series, made once per chunk, not per step.
    let mut recorded: FxHashMap<Labels, (Labels, u64)> = FxHashMap::default();
    for k in 0..steps.n {
        let row = rows.at(k, steps, &r.expr, (g, &r.record), prev)?;
        let t = steps.at(k) - steps.offset;
        let mut now = FxHashSet::default();
        for (labels, v) in row {
            let known = recorded.get(&labels).map(|(l, s)| (l.clone(), *s));
            let (l, series) = match known {
                Some((l, s)) => (l, Some(s)),
                None => {
                    let mut b = labels.to_builder();
                    b.set("__name__", r.record.clone());
                    for (name, value) in g.labels.iter().chain(&r.labels) {
                        b.set(name.clone(), value.clone());
                    }
                    (b.build(), None)
                }
            };
            // Two results with one label set after relabelling: the live rule fails this
            // evaluation; the first one stands here.
            if now.contains(&l) {
                continue;
            }
            match series {
                Some(s) => app.append_ref(s, t, v),
                None => {
                    let s = app.append(&l, t, v)?;
                    recorded.insert(labels, (l.clone(), s));
                }
            }
            now.insert(l);
        }
        for gone in prev.difference(&now) {
            app.append(gone, t, stale_nan())?;
        }
        *prev = now;
        if rows.stepwise() {
            app.commit()?;
            app = scratch.appender();
        }
    }
    app.commit()?;
    Ok(())
}

/// One alerting rule going through a chunk.
struct AlertRun<'a> {
    rule: &'a AlertingRule,
    group: &'a Group,
    settings: &'a EvalSettings,
    lookback_ms: i64,
    alerts: &'a mut AlertSet,
    written: &'a mut FxHashSet<Labels>,
    written_at: &'a mut Timestamp,
    summary: &'a mut RuleSummary,
}

impl AlertRun<'_> {
    fn steps(
        &mut self,
        scratch: &Db,
        steps: &Steps,
        rows: &mut Rows<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), BacktestError> {
        let mut app = scratch.appender();
        let nothing = FxHashSet::default();
        for k in 0..steps.n {
            // What a query at this step sees of the ALERTS last written: nothing once they are
            // out of the lookback (evaluations that failed in between wrote none).
            let age = steps.at(k) - steps.offset - *self.written_at;
            let visible = if age < self.lookback_ms {
                &*self.written
            } else {
                &nothing
            };
            let row = rows.at(k, steps, &self.rule.expr, (self.group, &self.rule.alert), visible)?;
            let ts = steps.at(k);
            let candidates = self.candidates(row, ts);
            let Ok(transitions) = self
                .alerts
                .eval(ts, candidates, self.rule.for_ms, self.rule.keep_firing_for_ms)
            else {
                // Two alerts with one label set: the live rule fails this evaluation and keeps
                // its alerts as they were.
                continue;
            };
            for a in self
                .alerts
                .alerts()
                .filter(|a| a.state == AlertState::Pending && a.active_at == ts)
            {
                events.push(Event {
                    at: ts,
                    state: "pending",
                    labels: a.labels.clone(),
                    value: a.value,
                });
            }
            for t in transitions {
                let (state, a) = match &t {
                    Transition::Pending(a) => ("pending", a),
                    Transition::Fired(a) => {
                        self.summary.firings += 1;
                        ("firing", a)
                    }
                    Transition::Resolved(a) => {
                        self.summary.firing_ms += ts - a.fired_at.unwrap_or(a.active_at);
                        ("resolved", a)
                    }
                };
                events.push(Event {
                    at: ts,
                    state,
                    labels: a.labels.clone(),
                    value: a.value,
                });
            }
            let t = ts - steps.offset;
            let mut now = FxHashSet::default();
            for (labels, v) in self.alerts.series() {
                app.append(&labels, t, v)?;
                now.insert(labels);
            }
            for gone in self.written.difference(&now) {
                app.append(gone, t, stale_nan())?;
            }
            *self.written = now;
            *self.written_at = t;
            if rows.stepwise() {
                app.commit()?;
                app = scratch.appender();
            }
        }
        app.commit()?;
        Ok(())
    }

    fn candidates(&self, row: Vec<(Labels, f64)>, ts: Timestamp) -> Vec<Candidate> {
        // Label templates are expanded only where there are any: most rules' labels are plain.
        let templated = self.rule.labels_text.iter().any(|(_, t)| t.contains("{{"));
        let mut out = Vec::with_capacity(row.len());
        for (labels, value) in row {
            let series = labels.without_metric_name();
            let data = if templated {
                AlertData {
                    labels: series
                        .iter()
                        .map(|l| (l.name.to_string(), l.value.to_string()))
                        .collect::<BTreeMap<_, _>>(),
                    value,
                    external_labels: self.settings.external_labels.clone(),
                    external_url: self.settings.external_url.clone(),
                    now_secs: ts as f64 / 1000.0,
                    query: None,
                }
            } else {
                AlertData::default()
            };
            let labels = alert_labels(self.rule, &series, &self.group.labels, &data);
            out.push(Candidate {
                labels,
                annotations: Vec::new(),
                value,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerting(file: &str) -> Vec<AlertingRule> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../rules/api-health")
            .join(file);
        let loaded = crate::slo::load_file(&path, &crate::slo::DEFAULT_BUCKETS).expect("the shipped rules load");
        loaded
            .rules
            .groups
            .into_iter()
            .flat_map(|g| g.rules)
            .filter_map(|r| match r {
                Rule::Alerting(a) => Some(a),
                Rule::Recording(_) => None,
            })
            .collect()
    }

    /// The shipped rules' hysteresis is range-evaluated, not asked step by step.
    #[test]
    fn the_shipped_hysteresis_rules_take_the_range_path() {
        let rules: Vec<AlertingRule> = ["signals.yml", "anomalies.yml", "slos.yml"]
            .iter()
            .flat_map(|f| alerting(f))
            .collect();
        let all: Vec<&AlertingRule> = rules.iter().collect();
        let hysteresis: Vec<&AlertingRule> = rules
            .iter()
            .filter(|a| reads_alerts(&Rule::Alerting((*a).clone())))
            .collect();
        // Five signals and anomalies; the SLOs' page and ticket, of two SLOs, all one name.
        assert_eq!(
            hysteresis.len(),
            9,
            "{:?}",
            hysteresis.iter().map(|a| &a.alert).collect::<Vec<_>>()
        );
        for a in hysteresis {
            let h = Hysteresis::of(a);
            assert!(
                h.is_some_and(|h| h.sees_only_its_own(a, &all)),
                "{} is asked step by step",
                a.alert
            );
        }
        // One name twice, told apart by no rule label: ALERTS{alertname} reads both.
        let text = r#"groups:
  - name: g
    rules:
      - alert: A
        expr: 'x > 2 or (x > 1 and on (job) ALERTS{alertname="A", severity="page", alertstate="firing"})'
        labels: { severity: page }
      - alert: A
        expr: 'y > 2 or (y > 1 and on (job) ALERTS{alertname="A", severity="page", alertstate="firing"})'
        labels: { severity: page }
"#;
        let groups = crate::rules::parse_str(text, "t.yml").expect("valid");
        let twins = alerting_rules(&groups);
        let h = Hysteresis::of(twins[0]).expect("the shape");
        assert!(!h.sees_only_its_own(twins[0], &twins));
        assert!(h.sees_only_its_own(twins[0], &twins[..1]));
        // Told apart by severity, each pinned in its selector (tests/backtest.rs runs such a
        // pair against the live evaluator).
        let text = text.replacen("severity: page }", "severity: ticket }", 1).replacen(
            r#"severity="page", alertstate"#,
            r#"severity="ticket", alertstate"#,
            1,
        );
        let groups = crate::rules::parse_str(&text, "t.yml").expect("valid");
        let pair = alerting_rules(&groups);
        for a in &pair {
            let h = Hysteresis::of(a).expect("the shape");
            assert!(h.sees_only_its_own(a, &pair), "{:?}", a.labels_text);
        }
    }

    #[test]
    fn other_shapes_reading_alerts_are_asked_step_by_step() {
        let shape = |alert: &str, expr: &str| {
            let text = format!("groups:\n  - name: g\n    rules:\n      - alert: {alert}\n        expr: '{expr}'\n");
            let groups = crate::rules::parse_str(&text, "t.yml").expect("valid");
            match &groups[0].rules[0] {
                Rule::Alerting(a) => Hysteresis::of(a).is_some(),
                Rule::Recording(_) => unreachable!(),
            }
        };
        let own = r#"x > 2 or (x > 1 and on (job) ALERTS{alertname="A", alertstate="firing"})"#;
        assert!(shape("A", own));
        // Another rule's alerts, a pending state, a regex, `ignoring`, ALERTS on both sides.
        assert!(!shape("B", own));
        assert!(!shape("A", &own.replace("firing", "pending")));
        assert!(!shape("A", &own.replace(r#"alertname="A""#, r#"alertname=~"A""#)));
        assert!(!shape("A", &own.replace("on (job)", "ignoring (job)")));
        assert!(!shape("A", &own.replace("x > 2", "ALERTS > 2")));
        assert!(!shape(
            "A",
            r#"x > 1 and on (job) ALERTS{alertname="A", alertstate="firing"}"#
        ));
    }
}
