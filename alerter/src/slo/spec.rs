//! SLO spec files: the YAML shapes (serde, unknown fields refused) and their validation into
//! [`Slo`]s, with errors that name the file, the line and the SLO.
//!
//! ```yaml
//! slos:
//!   - name: payments-availability
//!     description: Payments answer without a 5xx.
//!     selector: '{service="payments", route=~"pay.*"}'
//!     by: [service, route]          # the default
//!     objective: 99.9               # percent
//!     period: 30d                   # or 28d
//!     sli:
//!       availability: {}            # or latency: { threshold: 0.5 }
//!     min_traffic: 0.1              # requests per second; the default
//!     labels: { team: payments }
//!     annotations: { runbook_url: "https://runbooks.example.com/payments" }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use vigil_tsdb::labels::is_valid_name;
use vigil_tsdb::promql::format_float;
use vigil_tsdb::{MatchOp, Matcher};

use crate::template::Template;
use crate::yaml::{self, Kind, Node, Pos};

/// The counter availability SLIs count.
pub const REQUESTS_SERIES: &str = "vigil_http_requests_total";
/// The histogram latency SLIs count (`_bucket` and `_count`).
pub const DURATION_SERIES: &str = "vigil_http_request_duration_seconds";

/// Labels of the request counter a selector may match.
const REQUEST_LABELS: [&str; 5] = ["service", "route", "path", "method", "status"];
/// Labels an SLO may be evaluated per (the latency histogram has no `status`).
const BY_LABELS: [&str; 4] = ["service", "route", "path", "method"];
/// Labels the generated alerts set themselves.
const GENERATED_LABELS: [&str; 4] = ["alertname", "slo", "objective", "severity"];

/// Objectives may have this many decimals (99.9999 is four): the budget is written exactly.
const MAX_OBJECTIVE_DECIMALS: usize = 6;

/// The default `min_traffic`, requests per second over the alert's long window.
///
/// 0.1 req/s is 360 requests an hour. At 99.9 % the page on the 1-hour window needs 1.44 % of
/// them to fail, six requests or more, so a single failed request cannot page; below it, a
/// route serving a handful of requests an hour would page on one timeout. Tighter objectives
/// want more traffic per failure (at 99.99 % one error in 360 already burns 28x): raise
/// `min_traffic` with them (`vigil slo check` says when one error can page).
pub const DEFAULT_MIN_TRAFFIC: f64 = 0.1;

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    slos: Vec<SloSpec>,
}

/// One SLO as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// A label-safe identifier: the `slo` label of every series and alert.
    pub name: String,
    /// What the SLO promises, in words.
    #[serde(default)]
    pub description: String,
    /// PromQL label matchers on the request series, `{service="payments"}`; empty: every request.
    #[serde(default)]
    pub selector: String,
    /// The labels the SLO is evaluated per.
    #[serde(default = "default_by")]
    pub by: Vec<String>,
    /// Percent of good requests, e.g. 99.9.
    pub objective: f64,
    /// The error budget's period.
    #[serde(default)]
    pub period: Period,
    /// What a good request is.
    pub sli: SliSpec,
    /// Requests per second over an alert's long window below which it does not fire.
    #[serde(default = "default_min_traffic")]
    pub min_traffic: f64,
    /// Labels added to the alerts.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to (or replacing those of) the alerts: `runbook_url`, `summary`, ...
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn default_by() -> Vec<String> {
    vec!["service".into(), "route".into()]
}

fn default_min_traffic() -> f64 {
    DEFAULT_MIN_TRAFFIC
}

/// The SLI as written: `availability: {}` or `latency: { threshold: 0.5 }`, exactly one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliSpec {
    /// Good: not a 5xx.
    pub availability: Option<AvailabilitySpec>,
    /// Good: answered within a bucket bound of the request-duration histogram.
    pub latency: Option<LatencySpec>,
}

/// `availability: {}` (nothing to set).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilitySpec {}

/// `latency: { threshold: 0.5 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySpec {
    /// Seconds; must be a bucket bound of the histogram.
    pub threshold: f64,
}

/// The error budget's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Period {
    /// Four weeks: every weekday the same number of times.
    #[serde(rename = "28d")]
    Days28,
    /// Thirty days, about a month.
    #[default]
    #[serde(rename = "30d")]
    Days30,
}

impl Period {
    /// As written: `28d`, `30d`.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Days28 => "28d",
            Period::Days30 => "30d",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The SLO as checked.

/// A checked SLO, ready to generate rules from.
#[derive(Debug, Clone)]
pub struct Slo {
    /// Its name (`slo` label).
    pub name: String,
    /// Where it starts in its file.
    pub pos: Pos,
    /// What it promises, in words.
    pub description: String,
    /// The selector's matchers, in the order written.
    pub matchers: Vec<Matcher>,
    /// The labels it is evaluated per.
    pub by: Vec<String>,
    /// The objective.
    pub objective: Objective,
    /// The budget's period.
    pub period: Period,
    /// What a good request is.
    pub sli: Sli,
    /// Requests per second over an alert's long window below which it does not fire.
    pub min_traffic: f64,
    /// Labels added to the alerts, by name.
    pub labels: Vec<(String, String)>,
    /// Annotations that replace or add to the generated ones, by name.
    pub annotations: Vec<(String, String)>,
}

/// What a good request is, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Sli {
    /// Not a 5xx.
    Availability,
    /// Within `threshold` seconds: the `le` bucket `le` of the duration histogram.
    Latency {
        /// Seconds, one of the histogram's bounds.
        threshold: f64,
        /// The bucket's `le` label as the collector writes it.
        le: String,
    },
}

impl Sli {
    /// `availability` or `latency`.
    pub fn kind(&self) -> &'static str {
        match self {
            Sli::Availability => "availability",
            Sli::Latency { .. } => "latency",
        }
    }
}

/// An objective in percent, with its ratio and the error budget written exactly in decimal
/// (99.9 -> `0.999` and `0.001`, not `0.0010000000000000009`).
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// Percent, e.g. 99.9.
    pub percent: f64,
    /// Percent as written in labels, `99.9`.
    pub percent_text: String,
    /// The objective as a ratio, `0.999`.
    pub ratio_text: String,
    /// The error budget as a ratio, `0.001`.
    pub budget_text: String,
    /// The error budget in percent, `0.1`.
    pub budget_percent_text: String,
    /// The error budget as a number.
    pub budget: f64,
}

impl Objective {
    /// Checks a percentage: above 0, below 100, at most six decimals.
    fn new(percent: f64) -> Option<Objective> {
        if !(percent > 0.0 && percent < 100.0) {
            return None;
        }
        // Rust prints the shortest decimal that reads back as the same number, never with an
        // exponent: the percentage as the user wrote it.
        let text = format!("{percent}");
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        if frac.len() > MAX_OBJECTIVE_DECIMALS {
            return None;
        }
        let digits: u64 = format!("{int}{frac}").parse().ok()?;
        let scale = frac.len() as u32 + 2;
        let budget_digits = 100 * 10u64.pow(frac.len() as u32) - digits;
        let budget_text = decimal(budget_digits, scale);
        Some(Objective {
            percent,
            budget_percent_text: decimal(budget_digits, scale - 2),
            percent_text: text.clone(),
            ratio_text: decimal(digits, scale),
            budget: budget_text.parse().ok()?,
            budget_text,
        })
    }
}

/// `digits / 10^scale` in decimal, without trailing zeros.
fn decimal(digits: u64, scale: u32) -> String {
    let s = format!("{digits:0>width$}", width = scale as usize + 1);
    let (int, frac) = s.split_at(s.len() - scale as usize);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// An error in a spec file: where, which SLO, what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{pos}: {}{kind}", subject_prefix(self.what, self.slo.as_deref()))]
pub struct SpecError {
    /// The file.
    pub file: String,
    /// Where in it.
    pub pos: Pos,
    /// What kind of spec: `SLO` or `anomaly`.
    pub what: &'static str,
    /// The SLO (or anomaly) concerned, when known.
    pub slo: Option<String>,
    /// What is wrong.
    pub kind: SpecErrorKind,
}

fn subject_prefix(what: &str, name: Option<&str>) -> String {
    name.map(|s| format!("{what} {s:?}: ")).unwrap_or_default()
}

/// What is wrong in a spec file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecErrorKind {
    /// The file cannot be read.
    #[error("{0}")]
    Io(String),
    /// Not YAML, or not the spec's shape (unknown fields, wrong types).
    #[error("{0}")]
    Shape(String),
    /// A name that is not a label-safe identifier.
    #[error("name {0:?} must start with a letter and hold only letters, digits, '_' and '-' (at most 100)")]
    Name(String),
    /// The same name twice.
    #[error("name {name:?} is already used at {first}")]
    DuplicateName {
        /// The name.
        name: String,
        /// Where it was first used (`file:line:col`).
        first: String,
    },
    /// Neither or both SLI kinds.
    #[error("sli must be one of `availability: {{}}` and `latency: {{ threshold: SECONDS }}`")]
    Sli,
    /// An objective outside (0, 100) or too precise.
    #[error("objective {0} must be a percentage above 0 and below 100 with at most 6 decimals")]
    Objective(f64),
    /// A selector that is not label matchers in braces.
    #[error("selector {selector:?}: {reason}")]
    Selector {
        /// As written.
        selector: String,
        /// Why not.
        reason: String,
    },
    /// A label the series do not have.
    #[error("{field}: {label:?} is not a label of {series} (known: {})", .known.join(", "))]
    UnknownLabel {
        /// `selector` or `by`.
        field: &'static str,
        /// The label.
        label: String,
        /// The series it was looked for on.
        series: &'static str,
        /// The labels it has.
        known: Vec<&'static str>,
    },
    /// A label named twice in `by`.
    #[error("by: {0:?} is listed twice")]
    DuplicateBy(String),
    /// A latency threshold that is not a bucket bound.
    #[error("{}", threshold_message(*.threshold, *.below, *.above))]
    Threshold {
        /// As written.
        threshold: f64,
        /// The nearest bound below, if any.
        below: Option<f64>,
        /// The nearest bound above, if any.
        above: Option<f64>,
    },
    /// A negative or infinite `min_traffic`.
    #[error("min_traffic {0} must be a number of requests per second, 0 or more")]
    MinTraffic(f64),
    /// A label or annotation name that is invalid or set by the generated rules.
    #[error("{field}: {reason}")]
    BadKey {
        /// `labels` or `annotations`.
        field: &'static str,
        /// Why not.
        reason: String,
    },
    /// An annotation whose template does not parse.
    #[error("annotations.{name}: template: {reason}")]
    Template {
        /// The annotation.
        name: String,
        /// Why not.
        reason: String,
    },
    /// A value out of its range, or settings that contradict each other.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why not.
        reason: String,
    },
    /// The generated rules did not load (a bug in the generator).
    #[error("the generated rules are invalid (please report): {0}")]
    Generated(String),
}

fn threshold_message(threshold: f64, below: Option<f64>, above: Option<f64>) -> String {
    let t = format_float(threshold);
    let head = format!("latency threshold {t}s is not a bucket bound of {DURATION_SERIES}");
    match (below, above) {
        _ if !(threshold > 0.0 && threshold.is_finite()) => {
            format!("latency threshold {t} must be a positive number of seconds")
        }
        (Some(b), Some(a)) => format!(
            "{head}: the nearest bounds are {}s and {}s",
            format_float(b),
            format_float(a)
        ),
        (Some(b), None) => format!("{head}: the largest bound is {}s", format_float(b)),
        (None, Some(a)) => format!("{head}: the smallest bound is {}s", format_float(a)),
        (None, None) => format!("{head}: the histogram has no bounds"),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and checking.

/// Reads spec text; `file` names it in errors, `buckets` are the duration histogram's bounds
/// (seconds, ascending) that latency thresholds must be one of. Every SLO is checked and every
/// error returned.
pub fn parse(text: &str, file: &str, buckets: &[f64]) -> Result<Vec<Slo>, Vec<SpecError>> {
    let items = SpecList {
        file,
        key: "slos",
        what: "SLO",
    };
    items.parse(
        text,
        |f: SpecFile| f.slos,
        |s: &SloSpec| s.name.clone(),
        |s, pos_of| check(s, buckets, pos_of),
        |slo: &Slo| (slo.name.as_str(), slo.pos),
    )
}

/// A spec file's top-level list (`slos:`, `anomalies:`) as read by [`SpecList::parse`].
pub(crate) struct SpecList<'a> {
    /// The file, named in errors.
    pub(crate) file: &'a str,
    /// The top-level key of the list.
    pub(crate) key: &'static str,
    /// What an item is called in errors: `SLO`, `anomaly`.
    pub(crate) what: &'static str,
}

impl SpecList<'_> {
    /// Reads the file's shape `F` with serde after the position tree has refused hostile YAML,
    /// checks every item and refuses duplicate names; every error names the file, the line
    /// and the item.
    pub(crate) fn parse<F, S, T>(
        &self,
        text: &str,
        items: impl Fn(F) -> Vec<S>,
        name: impl Fn(&S) -> String,
        check: impl Fn(S, &dyn Fn(&[&str]) -> Pos) -> Result<T, Problems>,
        name_pos: impl Fn(&T) -> (&str, Pos),
    ) -> Result<Vec<T>, Vec<SpecError>>
    where
        F: serde::de::DeserializeOwned,
    {
        let file = self.file;
        let at = |pos: Pos, slo: Option<String>, kind: SpecErrorKind| SpecError {
            file: file.to_owned(),
            pos,
            what: self.what,
            slo,
            kind,
        };
        // The position tree first: it refuses aliases and deep nesting before serde sees them.
        let tree = yaml::parse(text).map_err(|e| vec![at(e.pos, None, SpecErrorKind::Shape(e.message))])?;
        let nodes = list_items(&tree, self.key);
        let spec: F = serde_yaml_ng::from_str(text).map_err(|e| {
            let pos = e.location().map_or(Pos { line: 1, col: 1 }, |l| Pos {
                line: l.line(),
                col: l.column(),
            });
            let item = nodes
                .iter()
                .rev()
                .find(|n| n.pos.line <= pos.line && pos.line > 1)
                .and_then(|n| name_of(n));
            vec![at(pos, item, SpecErrorKind::Shape(without_location(&e.to_string())))]
        })?;
        let mut checked: Vec<T> = Vec::new();
        let mut errors = Vec::new();
        for (i, s) in items(spec).into_iter().enumerate() {
            let node = nodes.get(i).copied();
            let pos_of = |path: &[&str]| node.map_or(Pos::default(), |n| field_pos(n, path));
            let item_name = name(&s);
            match check(s, &pos_of) {
                Ok(t) => {
                    let (n, _) = name_pos(&t);
                    if let Some(first) = checked.iter().find(|o| name_pos(o).0 == n) {
                        let kind = SpecErrorKind::DuplicateName {
                            name: n.to_owned(),
                            first: format!("{file}:{}", name_pos(first).1),
                        };
                        errors.push(at(pos_of(&["name"]), Some(item_name), kind));
                    } else {
                        checked.push(t);
                    }
                }
                Err(es) => errors.extend(es.into_iter().map(|(pos, kind)| at(pos, Some(item_name.clone()), kind))),
            }
        }
        if errors.is_empty() { Ok(checked) } else { Err(errors) }
    }
}

/// serde_yaml_ng appends " at line L column C"; the position is given apart.
pub(crate) fn without_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => msg[..i].to_owned(),
        _ => msg.to_owned(),
    }
}

/// The nodes of the items of the top-level list `key` (`slos`, `anomalies`), in order.
pub(crate) fn list_items<'n>(tree: &'n Node, key: &str) -> Vec<&'n Node> {
    let Kind::Map(top) = &tree.kind else { return Vec::new() };
    match yaml::get(top, key).map(|n| &n.kind) {
        Some(Kind::Seq(items)) => items.iter().collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn name_of(slo: &Node) -> Option<String> {
    let Kind::Map(m) = &slo.kind else { return None };
    yaml::get(m, "name").and_then(Node::as_str).map(str::to_owned)
}

/// Where the value at `path` (keys from the SLO down) starts, or as near as it exists; the
/// SLO itself starts at its first key.
pub(crate) fn field_pos(slo: &Node, path: &[&str]) -> Pos {
    if path.is_empty()
        && let Kind::Map(m) = &slo.kind
        && let Some((first, _)) = m.first()
    {
        return first.pos;
    }
    let mut node = slo;
    for key in path {
        let Kind::Map(m) = &node.kind else { break };
        match yaml::get(m, key) {
            Some(n) => node = n,
            None => break,
        }
    }
    node.pos
}

pub(crate) type Problems = Vec<(Pos, SpecErrorKind)>;

fn check(s: SloSpec, buckets: &[f64], pos_of: &dyn Fn(&[&str]) -> Pos) -> Result<Slo, Problems> {
    let mut problems: Problems = Vec::new();
    if !is_identifier(&s.name) {
        problems.push((pos_of(&["name"]), SpecErrorKind::Name(s.name.clone())));
    }
    let objective = Objective::new(s.objective);
    if objective.is_none() {
        problems.push((pos_of(&["objective"]), SpecErrorKind::Objective(s.objective)));
    }
    let sli = match (&s.sli.availability, &s.sli.latency) {
        (Some(_), None) => Some(Sli::Availability),
        (None, Some(l)) => match check_threshold(l.threshold, buckets) {
            Ok(sli) => Some(sli),
            Err(kind) => {
                problems.push((pos_of(&["sli", "latency", "threshold"]), kind));
                None
            }
        },
        _ => {
            problems.push((pos_of(&["sli"]), SpecErrorKind::Sli));
            None
        }
    };
    let latency = s.sli.latency.is_some();
    let matchers = match check_selector(&s.selector, latency) {
        Ok(m) => m,
        Err(kind) => {
            problems.push((pos_of(&["selector"]), kind));
            Vec::new()
        }
    };
    problems.extend(check_by(&s.by, latency, pos_of));
    if !(s.min_traffic >= 0.0 && s.min_traffic.is_finite()) {
        problems.push((pos_of(&["min_traffic"]), SpecErrorKind::MinTraffic(s.min_traffic)));
    }
    problems.extend(check_labels_and_annotations(
        &s.labels,
        &s.annotations,
        &GENERATED_LABELS,
        &s.by,
        pos_of,
    ));
    match (objective, sli) {
        (Some(objective), Some(sli)) if problems.is_empty() => Ok(Slo {
            name: s.name,
            pos: pos_of(&[]),
            description: s.description,
            matchers,
            by: s.by,
            objective,
            period: s.period,
            sli,
            min_traffic: s.min_traffic,
            labels: s.labels.into_iter().collect(),
            annotations: s.annotations.into_iter().collect(),
        }),
        _ => Err(problems),
    }
}

/// `by` labels must be labels of the series (`latency`: of the duration histogram), once each.
pub(crate) fn check_by(by: &[String], latency: bool, pos_of: &dyn Fn(&[&str]) -> Pos) -> Problems {
    let mut problems: Problems = Vec::new();
    for (i, label) in by.iter().enumerate() {
        if !BY_LABELS.contains(&label.as_str()) {
            problems.push((
                pos_of(&["by"]),
                SpecErrorKind::UnknownLabel {
                    field: "by",
                    label: label.clone(),
                    series: if latency { DURATION_SERIES } else { REQUESTS_SERIES },
                    known: BY_LABELS.to_vec(),
                },
            ));
        } else if by[..i].contains(label) {
            problems.push((pos_of(&["by"]), SpecErrorKind::DuplicateBy(label.clone())));
        }
    }
    problems
}

/// Label names must be valid and not set by the generated rules (`reserved`, the `by` labels);
/// annotation names valid and their templates parse.
pub(crate) fn check_labels_and_annotations(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    reserved: &[&str],
    by: &[String],
    pos_of: &dyn Fn(&[&str]) -> Pos,
) -> Problems {
    let mut problems: Problems = Vec::new();
    for name in labels.keys() {
        let reason = if !is_valid_name(name) || name.starts_with("__") {
            Some(format!("invalid label name {name:?}"))
        } else if reserved.contains(&name.as_str()) || by.contains(name) {
            Some(format!("{name:?} is set by the generated alerts"))
        } else {
            None
        };
        if let Some(reason) = reason {
            problems.push((
                pos_of(&["labels"]),
                SpecErrorKind::BadKey {
                    field: "labels",
                    reason,
                },
            ));
        }
    }
    for (name, text) in annotations {
        if !is_valid_name(name) {
            let reason = format!("invalid annotation name {name:?}");
            problems.push((
                pos_of(&["annotations"]),
                SpecErrorKind::BadKey {
                    field: "annotations",
                    reason,
                },
            ));
        } else if let Err(e) = Template::parse(text) {
            problems.push((
                pos_of(&["annotations", name]),
                SpecErrorKind::Template {
                    name: name.clone(),
                    reason: e.to_string(),
                },
            ));
        }
    }
    problems
}

/// A letter, then letters, digits, `_` and `-`: safe in label values, group names and PromQL
/// strings without quoting rules.
pub(crate) fn is_identifier(s: &str) -> bool {
    s.len() <= 100
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_threshold(threshold: f64, buckets: &[f64]) -> Result<Sli, SpecErrorKind> {
    let close = |b: f64| (b - threshold).abs() <= 1e-9 * b.abs();
    if threshold > 0.0
        && threshold.is_finite()
        && let Some(&bound) = buckets.iter().find(|b| close(**b))
    {
        return Ok(Sli::Latency {
            threshold: bound,
            le: format_float(bound),
        });
    }
    Err(SpecErrorKind::Threshold {
        threshold,
        below: buckets.iter().copied().filter(|b| *b < threshold).reduce(f64::max),
        above: buckets.iter().copied().filter(|b| *b > threshold).reduce(f64::min),
    })
}

/// Parses `{...}` into matchers on the request labels; empty text selects every request.
pub(crate) fn check_selector(selector: &str, latency: bool) -> Result<Vec<Matcher>, SpecErrorKind> {
    let text = selector.trim();
    let bad = |reason: String| SpecErrorKind::Selector {
        selector: selector.to_owned(),
        reason,
    };
    if text.is_empty() || text == "{}" {
        return Ok(Vec::new());
    }
    if !(text.starts_with('{') && text.ends_with('}')) {
        return Err(bad(
            r#"must be label matchers in braces, like {service="payments"}"#.into()
        ));
    }
    // Behind a metric name, so that `{route=~".*"}` alone is a valid selector.
    let sets =
        vigil_tsdb::promql::parse_selector(&format!("{REQUESTS_SERIES}{text}")).map_err(|e| bad(e.to_string()))?;
    let [set] = sets.as_slice() else {
        return Err(bad("must be one set of matchers, without `or`".into()));
    };
    let known: &[&'static str] = if latency { &REQUEST_LABELS[..4] } else { &REQUEST_LABELS };
    let mut out = Vec::new();
    let mut name_seen = false;
    for m in set {
        if m.name == "__name__" && !name_seen && m.op() == MatchOp::Equal && m.value == REQUESTS_SERIES {
            name_seen = true;
            continue;
        }
        if !known.contains(&m.name.as_str()) {
            return Err(SpecErrorKind::UnknownLabel {
                field: "selector",
                label: m.name.clone(),
                series: if latency { DURATION_SERIES } else { REQUESTS_SERIES },
                known: known.to_vec(),
            });
        }
        out.push(m.clone());
    }
    Ok(out)
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

    const GOOD: &str = r#"
slos:
  - name: payments-availability
    description: Payments answer without a 5xx.
    selector: '{service="payments", route=~"pay.*"}'
    objective: 99.9
    period: 28d
    sli:
      availability: {}
    labels: { team: payments }
    annotations:
      runbook_url: https://runbooks.example.com/payments
  - name: search-latency
    by: [service]
    objective: 99
    sli:
      latency: { threshold: 0.25 }
"#;

    fn errors(text: &str) -> Vec<String> {
        match parse(text, "slos.yml", &BUCKETS) {
            Ok(_) => panic!("expected errors"),
            Err(es) => es.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn reads_a_good_file() {
        let slos = parse(GOOD, "slos.yml", &BUCKETS).expect("valid");
        assert_eq!(slos.len(), 2);
        let p = &slos[0];
        assert_eq!(p.name, "payments-availability");
        assert_eq!(p.pos, Pos { line: 3, col: 5 });
        assert_eq!(p.by, ["service", "route"]);
        assert_eq!(p.period, Period::Days28);
        assert_eq!(
            (p.objective.ratio_text.as_str(), p.objective.budget_text.as_str()),
            ("0.999", "0.001")
        );
        assert_eq!(p.min_traffic, DEFAULT_MIN_TRAFFIC);
        let m: Vec<String> = p.matchers.iter().map(ToString::to_string).collect();
        assert_eq!(m, [r#"service="payments""#, r#"route=~"pay.*""#]);
        assert_eq!(p.labels, [("team".to_owned(), "payments".to_owned())]);
        let s = &slos[1];
        assert_eq!(s.period, Period::Days30);
        assert_eq!(
            s.sli,
            Sli::Latency {
                threshold: 0.25,
                le: "0.25".into()
            }
        );
        assert_eq!(s.objective.budget_text, "0.01");
    }

    #[test]
    fn objectives_are_exact_decimals() {
        let o = |p: f64| Objective::new(p).map(|o| (o.ratio_text, o.budget_text));
        assert_eq!(o(99.9), Some(("0.999".into(), "0.001".into())));
        assert_eq!(o(99.95), Some(("0.9995".into(), "0.0005".into())));
        assert_eq!(o(99.0), Some(("0.99".into(), "0.01".into())));
        assert_eq!(o(50.0), Some(("0.5".into(), "0.5".into())));
        assert_eq!(o(99.999999), Some(("0.99999999".into(), "0.00000001".into())));
        assert_eq!(o(99.9999999), None);
        assert_eq!(o(100.0), None);
        assert_eq!(o(0.0), None);
        assert_eq!(o(f64::NAN), None);
    }

    #[test]
    fn a_threshold_between_buckets_names_its_neighbours() {
        let text = GOOD.replace("threshold: 0.25", "threshold: 0.3");
        assert_eq!(
            errors(&text),
            [concat!(
                "slos.yml:17:29: SLO \"search-latency\": latency threshold 0.3s is not a bucket bound ",
                "of vigil_http_request_duration_seconds: the nearest bounds are 0.25s and 0.5s"
            )]
        );
        let above = GOOD.replace("threshold: 0.25", "threshold: 30");
        assert!(
            errors(&above)[0].ends_with("the largest bound is 10s"),
            "{:?}",
            errors(&above)
        );
        let below = GOOD.replace("threshold: 0.25", "threshold: 0.001");
        assert!(errors(&below)[0].ends_with("the smallest bound is 0.005s"));
        let zero = GOOD.replace("threshold: 0.25", "threshold: 0");
        assert!(errors(&zero)[0].contains("must be a positive number of seconds"));
    }

    #[test]
    fn unknown_fields_name_file_line_and_slo() {
        let text = GOOD.replace("    by: [service]", "    by: [service]\n    windows: [1h]");
        let e = errors(&text);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("slos.yml:15:5: SLO \"search-latency\": "), "{e:?}");
        assert!(e[0].contains("unknown field `windows`"), "{e:?}");
        let sli = GOOD.replace("availability: {}", "availability: { x: 1 }");
        assert!(errors(&sli)[0].starts_with("slos.yml:9:"), "{:?}", errors(&sli));
        assert!(errors(&sli)[0].contains("SLO \"payments-availability\""));
        let period = GOOD.replace("period: 28d", "period: 7d");
        assert!(errors(&period)[0].contains("unknown variant `7d`, expected `28d` or `30d`"));
        let top = format!("{GOOD}groups: []\n");
        assert!(errors(&top)[0].contains("unknown field `groups`"), "{:?}", errors(&top));
        assert!(errors("slos: [\n")[0].starts_with("slos.yml:2:"));
    }

    #[test]
    fn every_slo_is_checked_and_named() {
        let text = GOOD
            .replace("objective: 99.9", "objective: 100")
            .replace("by: [service]", "by: [service, status, service]")
            .replace(r#"route=~"pay.*""#, r#"rout=~"pay.*""#);
        let e = errors(&text);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("slos.yml:6:16: SLO \"payments-availability\": objective 100 must be"));
        assert!(e[1].contains(r#"selector: "rout" is not a label of vigil_http_requests_total (known: service, route, path, method, status)"#), "{e:?}");
        assert!(e[2].starts_with("slos.yml:14:9: SLO \"search-latency\": by: \"status\" is not a label"));
        assert!(e[3].contains("by: \"service\" is listed twice"));
    }

    #[test]
    fn selectors_are_label_matchers_on_known_labels() {
        let sel = |s: &str| check_selector(s, false).map(|m| m.len());
        assert_eq!(sel(""), Ok(0));
        assert_eq!(sel("{}"), Ok(0));
        assert_eq!(sel(r#"{route=~".*"}"#), Ok(1));
        assert_eq!(sel(r#"{status!~"4..", service="a"}"#), Ok(2));
        assert!(sel(r#"service="a""#).is_err());
        assert!(sel(r#"{service="a"} offset 5m"#).is_err());
        assert!(sel(r#"{service="a" or service="b"}"#).is_err());
        assert!(sel(r#"{__name__="x"}"#).is_err());
        assert!(sel(r#"{le="0.5"}"#).is_err());
        // The latency histogram has no status.
        assert!(check_selector(r#"{status="200"}"#, true).is_err());
    }

    #[test]
    fn names_labels_and_annotations_are_checked() {
        let dup = GOOD.replace("search-latency", "payments-availability");
        assert!(
            errors(&dup)[0].contains("name \"payments-availability\" is already used at slos.yml:3:5"),
            "{:?}",
            errors(&dup)
        );
        let bad_name = GOOD.replace("search-latency", "search latency");
        assert!(errors(&bad_name)[0].contains("must start with a letter"));
        let label = GOOD.replace("team: payments", "severity: low");
        assert!(errors(&label)[0].contains("labels: \"severity\" is set by the generated alerts"));
        let label = GOOD.replace("team: payments", "route: x");
        assert!(errors(&label)[0].contains("\"route\" is set by the generated alerts"));
        let template = GOOD.replace(
            "runbook_url: https://runbooks.example.com/payments",
            "summary: '{{ nosuch }}'",
        );
        let e = errors(&template);
        assert!(
            e[0].starts_with("slos.yml:12:16: SLO \"payments-availability\": annotations.summary: template:"),
            "{e:?}"
        );
        let traffic = GOOD.replace("    by: [service]", "    by: [service]\n    min_traffic: -1");
        assert!(errors(&traffic)[0].contains("min_traffic -1 must be"));
    }

    #[test]
    fn hostile_yaml_is_refused_before_serde() {
        let alias = "slos:\n  - &a\n    name: x\n  - *a\n";
        assert!(errors(alias)[0].contains("aliases"));
        let deep = format!("slos: {}1{}", "[".repeat(100), "]".repeat(100));
        assert!(errors(&deep)[0].contains("deeper than 64"));
    }
}
