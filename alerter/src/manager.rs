//! The rule manager: loads rule files, evaluates each group on its interval, keeps alert state
//! across reloads and restarts, and hands transitions to the notifier.
//!
//! Evaluation is a plain method taking the time ([`RuleManager::evaluate_due`],
//! [`RuleManager::evaluate_all_at`]); [`RuleManager::run`] is the thin async loop around it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use vigil_tsdb::promql::Engine;
use vigil_tsdb::{Db, Labels, Timestamp};

use crate::alert::{AlertSet, AlertState};
use crate::group::{EvalSettings, GroupRuntime, Health, Notice};
use crate::notify::{Notifier, PipelineAlert};
use crate::rules::{Group, Rule, RuleError};
use crate::slo::{self, LoadedSlo};
use crate::task::{Shutdown, every};

/// What identifies an alerting rule's state across reloads and restarts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct StateKey {
    file: String,
    group: String,
    alert: String,
    expr: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedRule {
    #[serde(flatten)]
    key: StateKey,
    alerts: AlertSet,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedState {
    version: u32,
    rules: Vec<SavedRule>,
}

#[derive(Debug, Default)]
struct Inner {
    groups: Vec<GroupRuntime>,
    /// When each group is due next (ms), parallel to `groups`.
    due: Vec<Timestamp>,
}

/// Loads, evaluates and remembers rules.
#[derive(Debug)]
pub struct RuleManager {
    db: Arc<Db>,
    engine: Engine,
    settings: EvalSettings,
    inner: Mutex<Inner>,
    /// Alert states read back from disk, waiting for their rules to be loaded.
    saved: Mutex<HashMap<StateKey, AlertSet>>,
    state_path: Option<PathBuf>,
    counters: Counters,
    /// The request-duration histogram's bounds, which latency SLO thresholds must be one of.
    latency_buckets: Vec<f64>,
    /// The SLOs of the spec files loaded, for `/api/v1/slos`.
    slos: Mutex<Vec<LoadedSlo>>,
}

/// Totals since start, for `vigil_alerter_*`.
#[derive(Debug, Default)]
struct Counters {
    group_evaluations: AtomicU64,
    rule_failures: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl RuleManager {
    /// A manager with no rules yet; alert state is kept in `state_path` (if given) and read back
    /// from it now.
    pub fn new(db: Arc<Db>, engine: Engine, settings: EvalSettings, state_path: Option<PathBuf>) -> Self {
        let saved = state_path.as_deref().map(read_state).unwrap_or_default();
        RuleManager {
            db,
            engine,
            settings,
            inner: Mutex::new(Inner::default()),
            saved: Mutex::new(saved),
            state_path,
            counters: Counters::default(),
            latency_buckets: slo::DEFAULT_BUCKETS.to_vec(),
            slos: Mutex::new(Vec::new()),
        }
    }

    /// Sets the request-duration histogram's bounds (`collector.buckets`) that latency SLO
    /// thresholds are checked against; Prometheus's defaults otherwise.
    pub fn with_latency_buckets(mut self, buckets: Vec<f64>) -> Self {
        self.latency_buckets = buckets;
        self
    }

    /// The SLOs of the spec files loaded now.
    pub fn slos(&self) -> Vec<LoadedSlo> {
        self.slos.lock().clone()
    }

    /// The evaluation settings.
    pub fn settings(&self) -> &EvalSettings {
        &self.settings
    }

    /// Loads rule files and SLO spec files (globs allowed; a file whose top level has `slos:`
    /// is compiled to groups) and replaces the current rules, all or nothing: if any file has
    /// an error, the current rules stay and every error is returned.
    pub fn load_files(&self, patterns: &[String]) -> Result<usize, Vec<RuleError>> {
        let mut groups = Vec::new();
        let mut slos = Vec::new();
        let mut anomalies = Vec::new();
        let mut errors = Vec::new();
        self.counters.reloads.fetch_add(1, Ordering::Relaxed);
        let paths = expand_globs(patterns).map_err(|e| {
            self.counters.reload_failures.fetch_add(1, Ordering::Relaxed);
            vec![e]
        })?;
        for path in paths {
            match slo::load_file(&path, &self.latency_buckets) {
                Ok(f) => {
                    groups.extend(f.rules.groups);
                    slos.extend(f.slos);
                    anomalies.extend(f.anomalies);
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        errors.extend(slo::check_unique(&slos));
        errors.extend(slo::check_unique_anomalies(&anomalies));
        if !errors.is_empty() {
            self.counters.reload_failures.fetch_add(1, Ordering::Relaxed);
            return Err(errors);
        }
        let n = groups.len();
        self.set_groups(groups);
        *self.slos.lock() = slos;
        Ok(n)
    }

    /// Replaces the rules with `groups`, keeping the alert state of rules that are still there
    /// (same file, group, name and expression) and the schedule of groups that are.
    pub fn set_groups(&self, groups: Vec<Group>) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let mut old: HashMap<StateKey, AlertSet> = HashMap::new();
        let mut old_due: HashMap<(String, String), Timestamp> = HashMap::new();
        for (g, due) in inner.groups.drain(..).zip(inner.due.drain(..)) {
            old_due.insert((g.group.file.clone(), g.group.name.clone()), due);
            for rr in g.rules {
                if let Rule::Alerting(a) = &rr.rule {
                    old.insert(key(&g.group, &a.alert, &a.expr_text), rr.alerts);
                }
            }
        }
        let recorded: HashMap<String, promql_parser::parser::Expr> = groups
            .iter()
            .flat_map(|g| g.rules.iter())
            .filter_map(|r| match r {
                Rule::Recording(r) => Some((r.record.clone(), r.expr.clone())),
                Rule::Alerting(_) => None,
            })
            .collect();
        let mut saved = self.saved.lock();
        for group in groups {
            let due = old_due
                .get(&(group.file.clone(), group.name.clone()))
                .copied()
                .unwrap_or(0);
            let mut rt = GroupRuntime::new(group);
            for rr in &mut rt.rules {
                if let Rule::Alerting(a) = &rr.rule {
                    rr.context = Some(crate::context::context_expr(&a.expr, &recorded));
                }
            }
            let g = rt.group.clone();
            rt.adopt_alerts(|alert, expr| {
                let k = key(&g, alert, expr);
                old.remove(&k).or_else(|| saved.remove(&k))
            });
            inner.groups.push(rt);
            inner.due.push(due);
        }
        tracing::info!(groups = inner.groups.len(), "rules loaded");
    }

    /// Evaluates every group whose time has come at wall-clock `now`; each at its interval's
    /// boundary at or before `now`. Returns the alert transitions.
    pub fn evaluate_due(&self, now: Timestamp) -> Vec<Notice> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let mut notices = Vec::new();
        let mut evaluated = false;
        for (g, due) in inner.groups.iter_mut().zip(inner.due.iter_mut()) {
            if now < *due {
                continue;
            }
            let interval = g.interval_ms(&self.settings);
            let ts = now - now.rem_euclid(interval);
            if g.last_eval == Some(ts) {
                *due = ts + interval;
                continue;
            }
            notices.extend(self.evaluate_group(g, ts));
            *due = ts + interval;
            evaluated = true;
        }
        if evaluated {
            self.persist(&inner.groups);
        }
        notices
    }

    /// Evaluates every group at exactly `ts` (for tests and tools).
    pub fn evaluate_all_at(&self, ts: Timestamp) -> Vec<Notice> {
        let mut inner = self.inner.lock();
        let mut notices = Vec::new();
        for g in &mut inner.groups {
            notices.extend(self.evaluate_group(g, ts));
        }
        self.persist(&inner.groups);
        notices
    }

    fn evaluate_group(&self, g: &mut GroupRuntime, ts: Timestamp) -> Vec<Notice> {
        let notices = g.evaluate(&self.db, &self.engine, &self.settings, ts);
        let failed = g.rules.iter().filter(|r| matches!(r.health, Health::Err(_))).count();
        self.counters.group_evaluations.fetch_add(1, Ordering::Relaxed);
        self.counters.rule_failures.fetch_add(failed as u64, Ordering::Relaxed);
        notices
    }

    /// `vigil_alerter_*` self-metrics: evaluations, failures, reloads, rules loaded, alerts by
    /// state and each group's last evaluation time.
    pub fn telemetry(&self) -> Vec<(Labels, f64)> {
        let metric = |name: &str, v: f64| (Labels::from_pairs([("__name__", name)]), v);
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let mut out = vec![
            metric("vigil_alerter_group_evaluations_total", load(&c.group_evaluations)),
            metric("vigil_alerter_rule_evaluation_failures_total", load(&c.rule_failures)),
            metric("vigil_alerter_reloads_total", load(&c.reloads)),
            metric("vigil_alerter_reload_failures_total", load(&c.reload_failures)),
        ];
        let inner = self.inner.lock();
        let (mut rules, mut pending, mut firing) = (0usize, 0usize, 0usize);
        for g in &inner.groups {
            rules += g.rules.len();
            for rr in &g.rules {
                for a in rr.alerts.active() {
                    match a.state {
                        AlertState::Pending => pending += 1,
                        AlertState::Firing => firing += 1,
                        AlertState::Inactive => {}
                    }
                }
            }
            out.push((
                Labels::from_pairs([
                    ("__name__", "vigil_alerter_group_last_duration_seconds"),
                    ("group", g.group.name.as_str()),
                ]),
                g.eval_duration.as_secs_f64(),
            ));
        }
        out.push(metric("vigil_alerter_rules", rules as f64));
        for (state, n) in [("pending", pending), ("firing", firing)] {
            out.push((
                Labels::from_pairs([("__name__", "vigil_alerter_alerts"), ("state", state)]),
                n as f64,
            ));
        }
        out
    }

    /// A copy of the groups and their state, for the API.
    pub fn groups(&self) -> Vec<GroupRuntime> {
        self.inner.lock().groups.clone()
    }

    /// The alerts to hand to the notification pipeline: every firing alert, and every alert
    /// resolved in the last minutes (what Prometheus sends to Alertmanager).
    pub fn pipeline_alerts(&self) -> Vec<PipelineAlert> {
        let inner = self.inner.lock();
        let mut out = Vec::new();
        for g in &inner.groups {
            for rr in &g.rules {
                let Rule::Alerting(rule) = &rr.rule else { continue };
                for a in rr.alerts.alerts() {
                    let ends_at = match (a.state, a.fired_at, a.resolved_at) {
                        (AlertState::Firing, Some(_), _) => None,
                        (AlertState::Inactive, Some(_), Some(r)) => Some(r),
                        _ => continue,
                    };
                    out.push(PipelineAlert {
                        labels: a.labels.clone(),
                        annotations: a.annotations.clone(),
                        // As Prometheus sends alerts: they start when they fire.
                        starts_at: a.fired_at.unwrap_or(a.active_at),
                        fired_at: a.fired_at.unwrap_or(a.active_at),
                        ends_at,
                        value: a.value,
                        d1: a.d1,
                        d7: a.d7,
                        rule_group: g.group.name.clone(),
                        expr: rule.expr_text.clone(),
                        ack: None,
                    });
                }
            }
        }
        out
    }

    /// Evaluates due groups every half second until `shutdown`, handing the alerts to
    /// `notifier` after each evaluation (and every 5 s anyway, so alerts of rules removed by a
    /// reload resolve). Alert state is saved first, so a restart never pages twice for one
    /// transition.
    pub async fn run(self: Arc<Self>, notifier: Option<Arc<Notifier>>, shutdown: Shutdown) {
        let mut last_sync = 0;
        every("rule evaluation", Duration::from_millis(500), shutdown, move || {
            let before = self.counters.group_evaluations.load(Ordering::Relaxed);
            let now = vigil_tsdb::time::now_ms();
            let notices = self.evaluate_due(now);
            let Some(n) = &notifier else { return };
            for notice in &notices {
                n.history().transition(&notice.transition);
            }
            if self.counters.group_evaluations.load(Ordering::Relaxed) != before || now - last_sync >= 5_000 {
                n.sync(self.pipeline_alerts(), now);
                last_sync = now;
            }
        })
        .await;
    }

    fn persist(&self, groups: &[GroupRuntime]) {
        let Some(path) = &self.state_path else { return };
        let mut state = SavedState {
            version: 1,
            rules: Vec::new(),
        };
        for g in groups {
            for rr in &g.rules {
                if let Rule::Alerting(a) = &rr.rule {
                    state.rules.push(SavedRule {
                        key: key(&g.group, &a.alert, &a.expr_text),
                        alerts: rr.alerts.clone(),
                    });
                }
            }
        }
        // Saved states of rules not loaded now are kept: a bad reload must not forget them.
        for (k, alerts) in self.saved.lock().iter() {
            state.rules.push(SavedRule {
                key: k.clone(),
                alerts: alerts.clone(),
            });
        }
        if let Err(e) = write_atomically(path, &state) {
            tracing::error!(file = %path.display(), error = %e, "saving alert state failed");
        }
    }
}

fn key(g: &Group, alert: &str, expr: &str) -> StateKey {
    StateKey {
        file: g.file.clone(),
        group: g.name.clone(),
        alert: alert.to_owned(),
        expr: expr.to_owned(),
    }
}

fn read_state(path: &Path) -> HashMap<StateKey, AlertSet> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HashMap::new(),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "cannot read alert state; starting without it");
            return HashMap::new();
        }
    };
    match serde_json::from_slice::<SavedState>(&bytes) {
        Ok(s) => s.rules.into_iter().map(|r| (r.key, r.alerts)).collect(),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "alert state unreadable; starting without it");
            HashMap::new()
        }
    }
}

fn write_atomically(path: &Path, state: &SavedState) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(state).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Expands `*` and `?` in the file-name part of each pattern; plain paths must exist.
pub fn expand_globs(patterns: &[String]) -> Result<Vec<PathBuf>, RuleError> {
    let err = |p: &str, m: String| RuleError {
        file: p.to_owned(),
        pos: Default::default(),
        context: None,
        message: m,
    };
    let mut out = Vec::new();
    for p in patterns {
        let path = Path::new(p);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !name.contains(['*', '?']) {
            if !path.exists() {
                return Err(err(p, "no such file".into()));
            }
            out.push(path.to_owned());
            continue;
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut matched: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| err(p, e.to_string()))?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_str().is_some_and(|n| wildcard(name, n)))
            .map(|e| e.path())
            .collect();
        matched.sort();
        out.extend(matched);
    }
    Ok(out)
}

/// `*` matches any run of characters, `?` one character.
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("*.yml", "slo.yml"));
        assert!(wildcard("rule?.yaml", "rule1.yaml"));
        assert!(!wildcard("*.yml", "slo.yaml"));
        assert!(wildcard("*", ""));
    }
}
