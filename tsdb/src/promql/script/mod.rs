//! A runner for Prometheus's PromQL test-script language (`load`, `clear`, `eval instant at`,
//! `eval range from .. to .. step`, `eval_fail`, `eval_ordered`, `expect` lines), so that vigil's
//! engine is checked against Prometheus's own test data and vigil's PromQL tests read the same.
//!
//! ```text
//! load 5m
//!     http_requests{job="api"} 0+10x10
//!
//! eval instant at 50m sum(http_requests)
//!     {} 100
//! ```
//!
//! Times are durations from the Unix epoch. Float results compare with a relative tolerance of
//! 1e-6 (NaN equals NaN). Evals that need native histograms or syntax the parser lacks are
//! reported as skipped, with the reason, rather than failed.

use std::fmt;

use promql_parser::parser::Expr;

use super::{Engine, EngineOptions, Value};
use crate::db::Db;
use annotations::{AnnotationExpectations, check_annotations};
use syntax::{SeriesDef, parse_number, parse_series_desc, parse_start_offsets, parse_time, parse_values, unquote};

use crate::labels::{Labels, METRIC_NAME};
use crate::storage::{STALE_NAN, Timestamp};
use crate::time::parse_duration_ms;

mod annotations;
mod syntax;

/// Outcome of one script.
#[derive(Debug, Default, Clone)]
pub struct ScriptReport {
    /// Evals whose result matched.
    pub passed: usize,
    /// Evals whose result did not match, or that failed unexpectedly.
    pub failed: Vec<EvalIssue>,
    /// Evals not run, with why.
    pub skipped: Vec<EvalIssue>,
}

/// A failed or skipped eval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalIssue {
    /// 1-based line of the `eval` command.
    pub line: usize,
    /// The query.
    pub expr: String,
    /// What went wrong, or why it was skipped.
    pub reason: String,
}

impl fmt::Display for EvalIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.expr, self.reason)
    }
}

impl ScriptReport {
    /// Evals counted (passed + failed + skipped).
    pub fn total(&self) -> usize {
        self.passed + self.failed.len() + self.skipped.len()
    }
}

/// Expected outcome of an eval.
#[derive(Debug, Default)]
struct Expectation {
    fail: bool,
    fail_msg: Option<String>,
    fail_regex: Option<String>,
    ordered: bool,
    string: Option<String>,
    scalar: Option<f64>,
    /// Expected series: labels and values (None = no point at that step).
    series: Vec<(Labels, Vec<Option<f64>>)>,
    /// The expectation uses something the runner cannot express (native histograms).
    unsupported: Option<String>,
    /// `expect range vector from A to B step S`: an instant eval's range-vector result, with
    /// points at A, A + S, ... .
    range_vector: Option<(Timestamp, i64)>,
    /// `expect warn ...` and `expect info ...` lines, and `no_warn` / `no_info`.
    annotations: AnnotationExpectations,
}

#[derive(Debug)]
enum Mode {
    Instant(Timestamp),
    Range {
        start: Timestamp,
        end: Timestamp,
        step: i64,
    },
}

/// Runs a script on a fresh in-memory store.
pub fn run_script(text: &str, opts: EngineOptions) -> ScriptReport {
    let engine = Engine::new(opts);
    let mut db = Db::in_memory();
    let mut report = ScriptReport::default();
    // Series loaded with native histograms: evals touching them are skipped.
    let mut histogram_series: Vec<Labels> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = strip_comment(lines[i]);
        let lineno = i + 1;
        i += 1;
        if line.is_empty() {
            continue;
        }
        if line == "clear" {
            db = Db::in_memory();
            histogram_series.clear();
            continue;
        }
        let nhcb = line.strip_prefix("load_with_nhcb");
        if let Some(step) = nhcb.or_else(|| line.strip_prefix("load")) {
            let block = take_block(&lines, &mut i);
            if let Err(e) = load(&db, step.trim(), &block, nhcb.is_some(), &mut histogram_series) {
                report.failed.push(EvalIssue {
                    line: lineno,
                    expr: line.to_owned(),
                    reason: format!("bad load: {e}"),
                });
            }
            continue;
        }
        if line.starts_with("eval") {
            let block = take_block(&lines, &mut i);
            run_eval(&engine, &db, line, lineno, &block, &histogram_series, &mut report);
            continue;
        }
        report.failed.push(EvalIssue {
            line: lineno,
            expr: line.to_owned(),
            reason: "unknown command".into(),
        });
    }
    report
}

/// Whether the expected result holds series `l` (with or without its name).
fn expects(exp: &Expectation, l: &Labels) -> bool {
    let unnamed = l.without_metric_name();
    exp.series.iter().any(|(e, _)| *e == *l || *e == unnamed)
}

/// Whether a selector in `e` selects a series with labels `l`.
fn selects(e: &Expr, l: &Labels) -> bool {
    let vs = |vs: &promql_parser::parser::VectorSelector| {
        crate::promql::eval::matcher_sets(vs).is_ok_and(|sets| {
            sets.iter()
                .any(|set| set.iter().all(|m| m.matches(l.get(&m.name).unwrap_or(""))))
        })
    };
    match e {
        Expr::VectorSelector(v) => vs(v),
        Expr::MatrixSelector(m) => vs(&m.vs),
        Expr::Paren(p) => selects(&p.expr, l),
        Expr::Unary(u) => selects(&u.expr, l),
        Expr::Aggregate(a) => selects(&a.expr, l) || a.param.as_deref().is_some_and(|p| selects(p, l)),
        Expr::Binary(b) => selects(&b.lhs, l) || selects(&b.rhs, l),
        Expr::Call(c) => c.args.args.iter().any(|a| selects(a, l)),
        Expr::Subquery(s) => selects(&s.expr, l),
        _ => false,
    }
}

/// Syntax newer than promql-parser reads (Prometheus 3.x experimental modifiers), if `expr`
/// uses any.
fn new_syntax(expr: &str) -> Option<&'static str> {
    let words: Vec<&str> = expr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    [
        ("smoothed", "the smoothed range modifier"),
        ("anchored", "the anchored range modifier"),
        ("fill", "the fill binary modifier"),
        ("fill_left", "the fill_left binary modifier"),
        ("fill_right", "the fill_right binary modifier"),
    ]
    .into_iter()
    .find(|(w, _)| words.contains(w))
    .map(|(_, what)| what)
}

/// Whether `expr` names metric `name` (as a whole identifier, not inside a longer one).
fn mentions(expr: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    expr.match_indices(name).any(|(at, _)| {
        let before = expr[..at].chars().next_back();
        let after = expr[at + name.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

fn strip_comment(l: &str) -> &str {
    let t = l.trim();
    if t.starts_with('#') { "" } else { t }
}

/// The lines of a block, up to the next blank line; comments are dropped.
fn take_block<'a>(lines: &[&'a str], i: &mut usize) -> Vec<&'a str> {
    let mut out = Vec::new();
    while *i < lines.len() {
        let raw = lines[*i].trim();
        // A block ends at a blank line or at the next command.
        if raw.is_empty() || raw.starts_with("eval") || raw.starts_with("load") || raw == "clear" {
            break;
        }
        *i += 1;
        if !raw.starts_with('#') {
            out.push(raw);
        }
    }
    out
}

/// Loads a `load` block. With `nhcb` (`load_with_nhcb`), Prometheus also turns each classic
/// histogram `x_bucket` into a native histogram `x`: those names count as native histogram
/// series.
fn load(db: &Db, step: &str, block: &[&str], nhcb: bool, histogram_series: &mut Vec<Labels>) -> Result<(), String> {
    let step = parse_duration_ms(step)?;
    // A series defined twice in one block keeps its last definition, as in Prometheus's runner.
    // A `name{labels}@st` line gives the start times of the next line's samples.
    let mut defs: Vec<SeriesDef> = Vec::new();
    let mut pending: Option<(Labels, Vec<Option<i64>>)> = None;
    for line in block {
        let (labels, rest) = parse_series_desc(line)?;
        let name = labels.metric_name().unwrap_or_default();
        if name.ends_with("@st") || rest.starts_with("@st") {
            if pending.is_some() {
                return Err(format!("{line:?}: the @st line before it has no sample line"));
            }
            let labels = match name.strip_suffix("@st") {
                Some(base) => {
                    let mut b = labels.to_builder();
                    b.set(METRIC_NAME, base);
                    b.build()
                }
                None => labels,
            };
            let items = rest.strip_prefix("@st").unwrap_or(rest);
            pending = Some((
                labels,
                parse_start_offsets(items).map_err(|e| format!("{line:?}: {e}"))?,
            ));
            continue;
        }
        let offsets = match pending.take() {
            Some((st_labels, offsets)) if st_labels == labels => offsets,
            Some(_) => return Err(format!("{line:?}: not the series of the @st line before it")),
            None => Vec::new(),
        };
        if rest.contains("{{") {
            histogram_series.push(labels.clone());
            continue;
        }
        if nhcb && let Some(base) = labels.metric_name().and_then(|n| n.strip_suffix("_bucket")) {
            let mut b = labels.to_builder();
            b.set(METRIC_NAME, base);
            b.del("le");
            histogram_series.push(b.build());
        }
        let values = parse_values(rest)?;
        if !offsets.is_empty() && offsets.len() != values.len() {
            return Err(format!(
                "{line:?}: the @st line has {} values but the sample line {}",
                offsets.len(),
                values.len()
            ));
        }
        match defs.iter_mut().find(|(l, ..)| *l == labels) {
            Some(def) => (def.1, def.2) = (values, offsets),
            None => defs.push((labels, values, offsets)),
        }
    }
    if pending.is_some() {
        return Err("an @st line has no sample line after it".into());
    }
    let mut app = db.appender();
    for (labels, values, offsets) in defs {
        for (k, v) in values.into_iter().enumerate() {
            if let Some(v) = v {
                let t = k as i64 * step;
                let st = offsets.get(k).copied().flatten().map_or(0, |o| t + o);
                app.append_with_start(&labels, t, v, st).map_err(|e| e.to_string())?;
            }
        }
    }
    app.commit().map_err(|e| e.to_string())?;
    Ok(())
}

fn run_eval(
    engine: &Engine,
    db: &Db,
    cmd: &str,
    lineno: usize,
    block: &[&str],
    histogram_series: &[Labels],
    report: &mut ScriptReport,
) {
    let (mode, modifier, expr) = match parse_eval_command(cmd) {
        Ok(x) => x,
        Err(e) => {
            report.failed.push(EvalIssue {
                line: lineno,
                expr: cmd.to_owned(),
                reason: e,
            });
            return;
        }
    };
    let issue = |reason: String| EvalIssue {
        line: lineno,
        expr: expr.to_owned(),
        reason,
    };
    let mut exp = match parse_expectation(block, &mode) {
        Ok(e) => e,
        Err(e) => {
            report.failed.push(issue(format!("bad expectation: {e}")));
            return;
        }
    };
    match modifier {
        "fail" => exp.fail = true,
        "ordered" => exp.ordered = true,
        _ => {}
    }
    if let Some(reason) = exp.unsupported.take() {
        report.skipped.push(issue(reason));
        return;
    }
    if let Some(name) = histogram_series
        .iter()
        .filter_map(Labels::metric_name)
        .find(|n| mentions(expr, n))
    {
        report
            .skipped
            .push(issue(format!("uses native histogram series {name}")));
        return;
    }
    let parsed = match engine.parse(expr) {
        Ok(p) => p,
        Err(e) if exp.fail && check_fail_message(&exp, &e.to_string()).is_err() && new_syntax(expr).is_some() => {
            // The expected error is Prometheus's verdict on syntax the parser cannot read at all.
            let what = new_syntax(expr).unwrap_or_default();
            report.skipped.push(issue(format!("does not parse: {what}")));
            return;
        }
        Err(e) if exp.fail => {
            match check_fail_message(&exp, &e.to_string()) {
                Ok(()) => report.passed += 1,
                Err(m) => report.failed.push(issue(m)),
            }
            return;
        }
        Err(e) => {
            report.skipped.push(issue(format!("does not parse: {e}")));
            return;
        }
    };
    let warnings = super::eval::Warnings::default();
    let result = match mode {
        Mode::Instant(t) => engine.instant_with(db, &parsed, t, &warnings),
        Mode::Range { start, end, step } => engine.range_with(db, &parsed, start, end, step, &warnings),
    };
    let warnings: Vec<String> = warnings.into_inner().into_iter().collect();
    let outcome = match (result, exp.fail) {
        (Ok(v), false) => match compare(&exp, &v, &mode) {
            Ok(()) => match check_annotations(&exp.annotations, &warnings) {
                // Prometheus's annotation is about native histogram series the selectors pick
                // (which the runner cannot load: "ignored histogram"): that is why.
                Err(e)
                    if e.ends_with("annotations, got none")
                        && let Some(l) = histogram_series.iter().find(|l| selects(&parsed, l)) =>
                {
                    report.skipped.push(issue(format!(
                        "expects an annotation about native histogram series {l}"
                    )));
                    return;
                }
                other => other,
            },
            Err(e) => Err(e),
        },
        (Ok(v), true) => Err(format!("expected an error, got {}", short(&v))),
        (Err(e), true) => check_fail_message(&exp, &e.to_string()),
        (Err(e), false) => Err(format!("unexpected error: {e}")),
    };
    match outcome {
        Ok(()) => report.passed += 1,
        // Prometheus's answer includes native histogram series (which the runner cannot load)
        // that the selectors pick: that is why, not the engine.
        Err(_)
            if let Some(l) = histogram_series
                .iter()
                .find(|l| selects(&parsed, l) && expects(&exp, l)) =>
        {
            report
                .skipped
                .push(issue(format!("selects native histogram series {l}")));
        }
        Err(m) => report.failed.push(issue(m)),
    }
}

fn check_fail_message(exp: &Expectation, msg: &str) -> Result<(), String> {
    if let Some(want) = &exp.fail_msg
        && msg != want
    {
        return Err(format!("expected error {want:?}, got {msg:?}"));
    }
    if let Some(re) = &exp.fail_regex {
        let re = regex::Regex::new(re).map_err(|e| format!("bad regex in expectation: {e}"))?;
        if !re.is_match(msg) {
            return Err(format!("expected error matching {re}, got {msg:?}"));
        }
    }
    Ok(())
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 300 { format!("{}...", &s[..300]) } else { s }
}

/// Splits an eval command into its mode, modifier (`fail`, `ordered`, ...) and expression.
fn parse_eval_command(cmd: &str) -> Result<(Mode, &str, &str), String> {
    let (head, rest) = cmd.split_once(char::is_whitespace).ok_or("eval without expression")?;
    let modifier = head
        .strip_prefix("eval")
        .and_then(|m| m.strip_prefix('_'))
        .unwrap_or("");
    let rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix("instant") {
        let r = r.trim_start();
        let r = r.strip_prefix("at").ok_or("instant eval without 'at'")?.trim_start();
        let (t, expr) = r
            .split_once(char::is_whitespace)
            .ok_or("instant eval without expression")?;
        return Ok((Mode::Instant(parse_time(t)?), modifier, expr.trim()));
    }
    if let Some(r) = rest.strip_prefix("range") {
        let words: Vec<&str> = r.split_whitespace().collect();
        if words.len() < 7 || words[0] != "from" || words[2] != "to" || words[4] != "step" {
            return Err(format!("bad range eval {cmd:?}"));
        }
        let expr_start = nth_word_offset(r, 6).ok_or("range eval without expression")?;
        return Ok((
            Mode::Range {
                start: parse_time(words[1])?,
                end: parse_time(words[3])?,
                step: parse_time(words[5])?,
            },
            modifier,
            r[expr_start..].trim(),
        ));
    }
    Err(format!("bad eval command {cmd:?}"))
}

fn nth_word_offset(s: &str, n: usize) -> Option<usize> {
    let mut count = 0;
    let mut in_word = false;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() {
            in_word = false;
        } else if !in_word {
            if count == n {
                return Some(i);
            }
            count += 1;
            in_word = true;
        }
    }
    None
}

fn parse_expectation(block: &[&str], mode: &Mode) -> Result<Expectation, String> {
    let mut exp = Expectation::default();
    for line in block {
        if let Some(rest) = line.strip_prefix("expect ") {
            let rest = rest.trim();
            if let Some(s) = rest.strip_prefix("string") {
                exp.string = Some(unquote(s.trim())?);
            } else if let Some(f) = rest.strip_prefix("fail") {
                exp.fail = true;
                let f = f.trim();
                if let Some(m) = f.strip_prefix("msg:") {
                    exp.fail_msg = Some(m.trim().to_owned());
                } else if let Some(r) = f.strip_prefix("regex:") {
                    exp.fail_regex = Some(r.trim().to_owned());
                }
            } else if rest.starts_with("ordered") {
                exp.ordered = true;
            } else if let Some(r) = rest.strip_prefix("range vector") {
                let words: Vec<&str> = r.split_whitespace().collect();
                match words.as_slice() {
                    ["from", from, "to", _, "step", step] => {
                        exp.range_vector = Some((parse_time(from)?, parse_time(step)?));
                    }
                    _ => return Err(format!("bad range vector expectation {rest:?}")),
                }
            }
            exp.annotations.read(rest)?;
            continue;
        }
        if let Some(m) = line.strip_prefix("expected_fail_message") {
            exp.fail_msg = Some(m.trim().to_owned());
            continue;
        }
        if let Some(r) = line.strip_prefix("expected_fail_regexp") {
            exp.fail_regex = Some(r.trim().to_owned());
            continue;
        }
        if line.contains("{{") {
            exp.unsupported = Some("expects native histograms".into());
            continue;
        }
        if let Some(v) = parse_number(line) {
            exp.scalar = Some(v);
            continue;
        }
        let (labels, rest) = parse_series_desc(line)?;
        let vals = parse_values(rest)?;
        if matches!(mode, Mode::Instant(_)) && exp.range_vector.is_none() && vals.len() != 1 {
            return Err(format!("instant eval expects one value per series, got {}", vals.len()));
        }
        exp.series.push((labels, vals));
    }
    Ok(exp)
}

fn compare(exp: &Expectation, v: &Value, mode: &Mode) -> Result<(), String> {
    match v {
        Value::String { v, .. } => match &exp.string {
            Some(want) if want == v => Ok(()),
            Some(want) => Err(format!("expected string {want:?}, got {v:?}")),
            None => Err(format!("unexpected string result {v:?}")),
        },
        Value::Scalar { v, .. } => match exp.scalar {
            Some(want) if almost_equal(want, *v) => Ok(()),
            Some(want) => Err(format!("expected scalar {want}, got {v}")),
            None => Err(format!("expected a vector or matrix, got scalar {v}")),
        },
        Value::Vector(samples) => {
            if exp.scalar.is_some() {
                return Err(format!("expected a scalar, got vector {}", short(v)));
            }
            if samples.len() != exp.series.len() {
                return Err(format!(
                    "expected {} series, got {}: {}",
                    exp.series.len(),
                    samples.len(),
                    short(v)
                ));
            }
            for (pos, s) in samples.iter().enumerate() {
                let Some(idx) = exp.series.iter().position(|(l, _)| *l == s.metric) else {
                    return Err(format!("unexpected series {} = {} in result", s.metric, s.v));
                };
                if exp.ordered && idx != pos {
                    return Err(format!("series {} at position {pos}, expected at {idx}", s.metric));
                }
                let want = exp.series[idx].1[0];
                if !want.is_some_and(|w| almost_equal(w, s.v)) {
                    return Err(format!("expected {want:?} for {}, got {}", s.metric, s.v));
                }
            }
            Ok(())
        }
        Value::Matrix(series) => {
            let (start, step) = match (mode, exp.range_vector) {
                (Mode::Range { start, step, .. }, _) => (*start, *step),
                (Mode::Instant(_), Some(grid)) => grid,
                (Mode::Instant(_), None) => return Err(format!("unexpected range vector result {}", short(v))),
            };
            if exp.scalar.is_some() {
                if let [only] = series.as_slice()
                    && only.metric.is_empty()
                    && only
                        .points
                        .iter()
                        .all(|p| exp.scalar.is_some_and(|w| almost_equal(w, p.v)))
                {
                    return Ok(());
                }
                return Err(format!("expected scalar {:?}, got {}", exp.scalar, short(v)));
            }
            if series.len() != exp.series.len() {
                return Err(format!(
                    "expected {} series, got {}: {}",
                    exp.series.len(),
                    series.len(),
                    short(v)
                ));
            }
            for s in series {
                let Some((_, want)) = exp.series.iter().find(|(l, _)| *l == s.metric) else {
                    return Err(format!("unexpected series {} in result", s.metric));
                };
                let want: Vec<(Timestamp, f64)> = want
                    .iter()
                    .enumerate()
                    .filter_map(|(k, w)| w.map(|w| (start + k as i64 * step, w)))
                    .collect();
                let got: Vec<(Timestamp, f64)> = s.points.iter().map(|p| (p.t, p.v)).collect();
                let same =
                    want.len() == got.len() && want.iter().zip(&got).all(|(w, g)| w.0 == g.0 && almost_equal(w.1, g.1));
                if !same {
                    return Err(format!("series {}: expected {want:?}, got {got:?}", s.metric));
                }
            }
            Ok(())
        }
    }
}

/// Relative comparison as Prometheus's tests do it.
fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 1e-6;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    let stale = |x: f64| x.to_bits() == STALE_NAN;
    if stale(a) || stale(b) {
        return stale(a) && stale(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_script() {
        let script = r#"
load 5m
    http_requests{job="api", instance="0"} 0+10x10
    http_requests{job="api", instance="1"} 0+20x10

eval instant at 50m sum(http_requests)
    {} 300

eval instant at 50m rate(http_requests{instance="0"}[10m])
    {job="api", instance="0"} 0.03333333333

eval_fail instant at 50m http_requests + on(job) http_requests

eval range from 0 to 10m step 5m sum(http_requests)
    {} 0 30 60
"#;
        let r = run_script(script, EngineOptions::default());
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert_eq!(r.passed, 4);
    }
}
