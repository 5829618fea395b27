//! What SLO and anomaly spec files share: their errors (file, line, the SLO or anomaly, what),
//! the reading of a top-level list with serde after the position tree has refused hostile
//! YAML, the checks of names, selectors, `by`, labels and annotations, and the reading back of
//! the rule text a spec compiles to, so that what `vigil serve` evaluates is what the
//! `generate` commands print.

use std::collections::BTreeMap;

use vigil_tsdb::labels::is_valid_name;
use vigil_tsdb::promql::format_float;
use vigil_tsdb::{MatchOp, Matcher};

use crate::rules::{self, Group};
use crate::template::Template;
use crate::yaml::{self, Kind, Node, Pos};

/// The counter availability SLIs count.
pub const REQUESTS_SERIES: &str = "vigil_http_requests_total";
/// The histogram latency SLIs count (`_bucket` and `_count`).
pub const DURATION_SERIES: &str = "vigil_http_request_duration_seconds";

/// Labels of the request counter a selector may match.
const REQUEST_LABELS: [&str; 5] = ["service", "route", "path", "method", "status"];
/// Labels an SLO or anomaly may be evaluated per (the latency histogram has no `status`).
const BY_LABELS: [&str; 4] = ["service", "route", "path", "method"];

// ---------------------------------------------------------------------------------------------
// Errors.

/// An error in a spec file: where, which SLO or anomaly, what.
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

/// The groups of the rule text a spec file compiled to, read back by [`crate::rules`]; `what`
/// (`SLO`, `anomaly`) names the spec kind in the error, which would be a generator's bug.
pub(crate) fn read_back(text: &str, file: &str, what: &'static str) -> Result<Vec<Group>, Vec<SpecError>> {
    rules::parse_str(text, file).map_err(|errors| {
        vec![SpecError {
            file: file.to_owned(),
            pos: errors.first().map_or(Pos::default(), |e| e.pos),
            what,
            slo: None,
            kind: SpecErrorKind::Generated(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")),
        }]
    })
}

/// Generated annotations with the spec's own replacing those of the same name, the rest added.
pub(crate) fn merge_annotations(
    mut generated: Vec<(String, String)>,
    own: &[(String, String)],
) -> Vec<(String, String)> {
    for (k, v) in own {
        match generated.iter_mut().find(|(name, _)| name == k) {
            Some(existing) => existing.1 = v.clone(),
            None => generated.push((k.clone(), v.clone())),
        }
    }
    generated
}
