//! Rule files in Prometheus's format: groups of recording and alerting rules, read with the
//! line and column of every value so that each error says where it is.
//!
//! ```yaml
//! groups:
//!   - name: api
//!     interval: 30s
//!     rules:
//!       - record: service:errors:ratio_rate5m
//!         expr: sum by (service) (rate(vigil_http_requests_total{status=~"5.."}[5m])) / ...
//!       - alert: HighErrorRatio
//!         expr: service:errors:ratio_rate5m > 0.05
//!         for: 5m
//!         labels: { severity: page }
//!         annotations: { summary: "{{ $labels.service }} fails {{ $value | humanizePercentage }}" }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use promql_parser::parser::Expr;
use vigil_tsdb::labels::is_valid_name;
use vigil_tsdb::time::parse_duration_ms;

use crate::template::Template;
use crate::yaml::{self, Kind, Node, Pos, YamlError, check_keys, get};

/// The deepest expression a rule may hold (the API evaluates deeper ones, up to
/// `vigil_tsdb::promql::deep::MAX_DEPTH`): a rule's tree is kept, copied and printed by code
/// that recurses on an ordinary stack.
pub const MAX_EXPR_DEPTH: usize = 1_000;

/// A rule file, loaded and checked.
#[derive(Debug, Clone)]
pub struct RuleFile {
    /// Where it came from.
    pub path: PathBuf,
    /// Its groups, in file order.
    pub groups: Vec<Group>,
}

/// A group of rules evaluated together, in order, on one interval.
#[derive(Debug, Clone)]
pub struct Group {
    /// Unique within the file.
    pub name: String,
    /// The file the group is in.
    pub file: String,
    /// Evaluation interval (the global default when `None`).
    pub interval_ms: Option<i64>,
    /// How far back from the evaluation time queries look (the global default when `None`).
    pub query_offset_ms: Option<i64>,
    /// Most alerts or series a rule may produce (0: no limit).
    pub limit: usize,
    /// Labels added to every rule's output.
    pub labels: Vec<(String, String)>,
    /// The rules.
    pub rules: Vec<Rule>,
}

/// A recording or an alerting rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// Writes its expression's result as a new series.
    Recording(RecordingRule),
    /// Turns its expression's result into alerts.
    Alerting(AlertingRule),
}

impl Rule {
    /// The rule's name (the recorded metric or the alert name).
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.record,
            Rule::Alerting(a) => &a.alert,
        }
    }

    /// The expression as written.
    pub fn expr_text(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.expr_text,
            Rule::Alerting(a) => &a.expr_text,
        }
    }
}

/// `record:` rule.
#[derive(Debug, Clone)]
pub struct RecordingRule {
    /// Metric name of the result.
    pub record: String,
    /// The expression as written.
    pub expr_text: String,
    /// The parsed expression.
    pub expr: Expr,
    /// Labels set on the result.
    pub labels: Vec<(String, String)>,
}

/// `alert:` rule.
#[derive(Debug, Clone)]
pub struct AlertingRule {
    /// The alert name (`alertname` label).
    pub alert: String,
    /// The expression as written.
    pub expr_text: String,
    /// The parsed expression.
    pub expr: Expr,
    /// How long a condition must hold before the alert fires.
    pub for_ms: i64,
    /// How long an alert keeps firing after its condition stops.
    pub keep_firing_for_ms: i64,
    /// Labels (templates) added to the alerts.
    pub labels: Vec<(String, Template)>,
    /// Annotations (templates).
    pub annotations: Vec<(String, Template)>,
    /// Labels and annotations as written (for the API).
    pub labels_text: Vec<(String, String)>,
    /// Annotations as written.
    pub annotations_text: Vec<(String, String)>,
}

/// An error in a rule file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The file.
    pub file: String,
    /// Where in it.
    pub pos: Pos,
    /// The group and rule (1-based) it concerns, if any.
    pub context: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.pos)?;
        if let Some(c) = &self.context {
            write!(f, "{c}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for RuleError {}

/// Reads and checks a rule file; every problem found is returned, each with its position.
pub fn load_file(path: &Path) -> Result<RuleFile, Vec<RuleError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![RuleError {
            file: file.clone(),
            pos: Pos::default(),
            context: None,
            message: e.to_string(),
        }]
    })?;
    let groups = parse_str(&text, &file)?;
    Ok(RuleFile {
        path: path.to_owned(),
        groups,
    })
}

/// Parses and checks rule-file text; `file` names it in errors.
pub fn parse_str(text: &str, file: &str) -> Result<Vec<Group>, Vec<RuleError>> {
    let err = |e: YamlError, context: Option<String>| RuleError {
        file: file.to_owned(),
        pos: e.pos,
        context,
        message: e.message,
    };
    let root = yaml::parse(text).map_err(|e| vec![err(e, None)])?;
    let top = root.as_map("rule file").map_err(|e| vec![err(e, None)])?;
    check_keys(top, &["groups"], "rulefmt.RuleGroups").map_err(|e| vec![err(e, None)])?;
    let groups_node = match get(top, "groups") {
        Some(g) => g.as_seq("groups").map_err(|e| vec![err(e, None)])?,
        None => &[],
    };
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for g in groups_node {
        match parse_group(g, file, &groups) {
            Ok(group) => groups.push(group),
            Err(mut es) => errors.append(&mut es),
        }
    }
    if errors.is_empty() { Ok(groups) } else { Err(errors) }
}

fn parse_group(node: &Node, file: &str, earlier: &[Group]) -> Result<Group, Vec<RuleError>> {
    let plain = |e: YamlError| {
        vec![RuleError {
            file: file.to_owned(),
            pos: e.pos,
            context: None,
            message: e.message,
        }]
    };
    let m = node.as_map("group").map_err(plain)?;
    check_keys(
        m,
        &["name", "interval", "query_offset", "limit", "rules", "labels"],
        "rulefmt.RuleGroup",
    )
    .map_err(plain)?;
    let name = get(m, "name")
        .map(|n| n.string("name"))
        .transpose()
        .map_err(plain)?
        .unwrap_or_default();
    if name.is_empty() {
        return Err(plain(YamlError::at(node.pos, "Groupname must not be empty")));
    }
    if earlier.iter().any(|g| g.name == name) {
        return Err(plain(YamlError::at(
            node.pos,
            format!("groupname: \"{name}\" is repeated in the same file"),
        )));
    }
    let duration = |key: &str| -> Result<Option<i64>, Vec<RuleError>> {
        get(m, key).map(|n| parse_duration(n, key)).transpose().map_err(plain)
    };
    let interval_ms = duration("interval")?;
    let query_offset_ms = duration("query_offset")?;
    let limit = match get(m, "limit") {
        Some(n) => n
            .as_str()
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| plain(YamlError::at(n.pos, "limit must be a non-negative integer")))?,
        None => 0,
    };
    let labels = match get(m, "labels") {
        Some(n) => string_map(n, "labels", true).map_err(plain)?,
        None => Vec::new(),
    };
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let rule_nodes = get(m, "rules")
        .map(|n| n.as_seq("rules"))
        .transpose()
        .map_err(plain)?
        .unwrap_or(&[]);
    for (i, r) in rule_nodes.iter().enumerate() {
        match parse_rule(r) {
            Ok(rule) => rules.push(rule),
            Err((e, rule_name)) => errors.push(RuleError {
                file: file.to_owned(),
                pos: e.pos,
                context: Some(format!("group \"{name}\", rule {}, \"{rule_name}\"", i + 1)),
                message: e.message,
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Group {
        name,
        file: file.to_owned(),
        interval_ms,
        query_offset_ms,
        limit,
        labels,
        rules,
    })
}

fn parse_duration(n: &Node, key: &str) -> Result<i64, YamlError> {
    let s = n.string(key)?;
    parse_duration_ms(&s).map_err(|e| YamlError::at(n.pos, e))
}

/// A mapping of label-like names to strings; names are checked, values taken as written.
fn string_map(n: &Node, what: &str, label_names: bool) -> Result<Vec<(String, String)>, YamlError> {
    let mut out = Vec::new();
    for (k, v) in n.as_map(what)? {
        let key = k.string(what)?;
        if !is_valid_name(&key) || (label_names && key == "__name__") {
            let kind = if what == "annotations" { "annotation" } else { "label" };
            return Err(YamlError::at(k.pos, format!("invalid {kind} name: {key}")));
        }
        let value = match &v.kind {
            Kind::Scalar(s) => s.clone(),
            Kind::Null => String::new(),
            _ => return Err(YamlError::at(v.pos, format!("{what}.{key} must be a string"))),
        };
        out.push((key, value));
    }
    Ok(out)
}

fn parse_rule(node: &Node) -> Result<Rule, (YamlError, String)> {
    let m = node.as_map("rule").map_err(|e| (e, String::new()))?;
    let record = get(m, "record");
    let alert = get(m, "alert");
    let name = record.or(alert).and_then(Node::as_str).unwrap_or_default().to_owned();
    let fail = |e: YamlError| (e, name.clone());
    check_keys(
        m,
        &[
            "record",
            "alert",
            "expr",
            "for",
            "keep_firing_for",
            "labels",
            "annotations",
        ],
        "rulefmt.Rule",
    )
    .map_err(fail)?;
    let expr_node = get(m, "expr").ok_or_else(|| fail(YamlError::at(node.pos, "field 'expr' must be set in rule")))?;
    let expr_text = expr_node.string("expr").map_err(fail)?;
    let expr = vigil_tsdb::promql::Engine::default()
        .parse(&expr_text)
        .map_err(|e| fail(YamlError::at(expr_node.pos, format!("could not parse expression: {e}"))))?;
    let depth = vigil_tsdb::promql::deep::tree_depth(&expr);
    if depth > MAX_EXPR_DEPTH {
        return Err(fail(YamlError::at(
            expr_node.pos,
            format!("expression nests {depth} levels; rules may nest at most {MAX_EXPR_DEPTH}"),
        )));
    }
    let expr = expr.into_expr();
    let labels = match get(m, "labels") {
        Some(n) => string_map(n, "labels", true).map_err(fail)?,
        None => Vec::new(),
    };
    match (record, alert) {
        (Some(r), Some(_)) => Err(fail(YamlError::at(
            r.pos,
            "only one of 'record' and 'alert' must be set",
        ))),
        (None, None) => Err(fail(YamlError::at(node.pos, "one of 'record' or 'alert' must be set"))),
        (Some(r), None) => {
            let record = r.string("record").map_err(fail)?;
            for key in ["annotations", "for", "keep_firing_for"] {
                if let Some(n) = get(m, key) {
                    return Err(fail(YamlError::at(
                        n.pos,
                        format!("invalid field '{key}' in recording rule"),
                    )));
                }
            }
            if record.contains('{') || record.contains('}') {
                return Err(fail(YamlError::at(
                    r.pos,
                    format!("braces present in the recording rule name; should it be in expr?: {record}"),
                )));
            }
            if !is_valid_metric_name(&record) {
                return Err(fail(YamlError::at(
                    r.pos,
                    format!("invalid recording rule name: {record}"),
                )));
            }
            Ok(Rule::Recording(RecordingRule {
                record,
                expr_text,
                expr,
                labels,
            }))
        }
        (None, Some(a)) => {
            let alert = a.string("alert").map_err(fail)?;
            let dur = |key: &str| {
                get(m, key)
                    .map(|n| parse_duration(n, key))
                    .transpose()
                    .map(Option::unwrap_or_default)
            };
            let for_ms = dur("for").map_err(fail)?;
            let keep_firing_for_ms = dur("keep_firing_for").map_err(fail)?;
            let annotations_text = match get(m, "annotations") {
                Some(n) => string_map(n, "annotations", false).map_err(fail)?,
                None => Vec::new(),
            };
            let compile = |what: &str,
                           items: &[(String, String)],
                           n: Option<&Node>|
             -> Result<Vec<(String, Template)>, YamlError> {
                items
                    .iter()
                    .map(|(k, v)| {
                        Template::parse(v).map(|t| (k.clone(), t)).map_err(|e| {
                            let pos = n.map_or(node.pos, |n| n.pos);
                            YamlError::at(pos, format!("{what} {k:?}: template: {e}"))
                        })
                    })
                    .collect()
            };
            let label_templates = compile("label", &labels, get(m, "labels")).map_err(fail)?;
            let annotation_templates = compile("annotation", &annotations_text, get(m, "annotations")).map_err(fail)?;
            Ok(Rule::Alerting(AlertingRule {
                alert,
                expr_text,
                expr,
                for_ms,
                keep_firing_for_ms,
                labels: label_templates,
                annotations: annotation_templates,
                labels_text: labels,
                annotations_text,
            }))
        }
    }
}

fn is_valid_metric_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b == b':' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
groups:
  - name: api
    interval: 30s
    rules:
      - record: service:errors:ratio_rate5m
        expr: sum by (service) (rate(x_total{status=~"5.."}[5m])) / sum by (service) (rate(x_total[5m]))
      - alert: HighErrorRatio
        expr: service:errors:ratio_rate5m > 0.05
        for: 5m
        keep_firing_for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.service }} fails {{ $value | humanizePercentage }}"
"#;

    #[test]
    fn reads_a_good_file() {
        let groups = parse_str(GOOD, "good.yml").expect("valid");
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!((g.name.as_str(), g.interval_ms), ("api", Some(30_000)));
        assert_eq!(g.rules.len(), 2);
        let Rule::Alerting(a) = &g.rules[1] else {
            panic!("alerting rule expected")
        };
        assert_eq!((a.for_ms, a.keep_firing_for_ms), (300_000, 60_000));
        assert_eq!(a.labels_text, vec![("severity".to_owned(), "page".to_owned())]);
    }

    fn first_error(text: &str) -> String {
        match parse_str(text, "bad.yml") {
            Ok(_) => panic!("expected an error"),
            Err(errs) => errs[0].to_string(),
        }
    }

    #[test]
    fn deep_expressions_are_refused_with_the_limit() {
        let deep = format!("{}up{}", "(".repeat(5_000), ")".repeat(5_000));
        let text = format!("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: '{deep}'\n");
        let errs = parse_str(&text, "deep.yml").expect_err("too deep");
        assert!(errs[0].to_string().contains("at most 1000"), "{}", errs[0]);
        let ok = format!("{}up{}", "(".repeat(900), ")".repeat(900));
        let text = format!("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: '{ok}'\n");
        assert!(parse_str(&text, "ok.yml").is_ok());
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let bad_expr = GOOD.replace("> 0.05", "> > 0.05");
        assert_eq!(
            first_error(&bad_expr).split(": could not parse").next(),
            Some("bad.yml:9:15: group \"api\", rule 2, \"HighErrorRatio\"")
        );
        let unknown = GOOD.replace("for: 5m", "fro: 5m");
        assert!(
            first_error(&unknown).starts_with("bad.yml:10:9: "),
            "{}",
            first_error(&unknown)
        );
        assert!(first_error(&unknown).contains("field fro not found"));
        let bad_for = GOOD.replace("for: 5m", "for: soon");
        assert!(
            first_error(&bad_for).starts_with("bad.yml:10:14: "),
            "{}",
            first_error(&bad_for)
        );
        let bad_template = GOOD.replace("humanizePercentage", "nosuchfunc");
        assert!(first_error(&bad_template).contains("function \"nosuchfunc\" not defined"));
        let both = GOOD.replace("- alert: HighErrorRatio", "- alert: HighErrorRatio\n        record: x");
        assert!(first_error(&both).contains("only one of 'record' and 'alert'"));
        let annotations_on_record = GOOD.replace("expr: sum by", "annotations:\n          a: b\n        expr: sum by");
        assert!(first_error(&annotations_on_record).contains("invalid field 'annotations' in recording rule"));
        let dup = format!("{GOOD}  - name: api\n    rules: []\n");
        assert!(first_error(&dup).contains("is repeated in the same file"));
        assert!(first_error("groups:\n  - name: [\n").starts_with("bad.yml:3:"));
    }
}
