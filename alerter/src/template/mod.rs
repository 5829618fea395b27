//! Alert templates: Go `text/template` as Prometheus uses it in rule labels and annotations, so
//! that rule files written for Prometheus expand the same way in vigil.
//!
//! ```text
//! summary: "{{ $labels.service }} error ratio is {{ $value | humanizePercentage }}"
//! ```
//!
//! Supported: `{{ pipeline }}`, variables (`$labels`, `$value`, `$externalLabels`,
//! `$externalURL`, `$x := ...`), field access (`.Labels.x`, `$labels.x`), `if` / `else if` /
//! `else`, `with`, `range`, trim markers and comments, Go's built-in functions and Prometheus's
//! template functions (`humanize*`, `printf`, `query`, `first`, `value`, `label`, `reReplaceAll`,
//! `match`, `title`, ...). `define` / `template` are not supported and are refused at load time.
//! A template that fails while running expands to `<error expanding template: ...>`, as in
//! Prometheus.

mod exec;
mod format;
mod parse;

use std::collections::BTreeMap;

pub use exec::{ExecError, QueryFn, QueryFnError, QueryRows, Value, labels_value};

/// A value as Prometheus's `humanize` prints it (`1.235k`, `12.3m`).
pub fn humanize_value(v: f64) -> String {
    format::humanize(v)
}
pub use parse::ParseError;

use parse::{Command, Node, Operand, Pipeline};

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
    /// Whether the source has any action: plain text is copied as is.
    plain: Option<String>,
}

/// What an alert template can see.
#[derive(Clone, Default)]
pub struct AlertData<'a> {
    /// The alert's labels (`$labels`, `.Labels`).
    pub labels: BTreeMap<String, String>,
    /// The alert expression's value (`$value`, `.Value`).
    pub value: f64,
    /// `$externalLabels`.
    pub external_labels: BTreeMap<String, String>,
    /// `$externalURL`.
    pub external_url: String,
    /// Evaluation time, seconds.
    pub now_secs: f64,
    /// Answers `query`.
    pub query: Option<QueryFn<'a>>,
}

impl std::fmt::Debug for AlertData<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertData")
            .field("labels", &self.labels)
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Parses `src`; unknown functions and unsupported actions are errors.
    pub fn parse(src: &str) -> Result<Template, ParseError> {
        if !src.contains("{{") {
            return Ok(Template {
                nodes: Vec::new(),
                plain: Some(src.to_owned()),
            });
        }
        let nodes = parse::parse(src)?;
        check_functions(&nodes)?;
        Ok(Template { nodes, plain: None })
    }

    /// The text of a template without actions (a constant label value), else `None`.
    pub fn plain(&self) -> Option<&str> {
        self.plain.as_deref()
    }

    /// Expands the template for an alert; errors while running become the expansion's text.
    pub fn expand(&self, data: &AlertData<'_>) -> String {
        if let Some(p) = &self.plain {
            return p.clone();
        }
        let labels = labels_value(data.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let external = labels_value(data.external_labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let root = Value::Map(BTreeMap::from([
            ("Labels".to_owned(), labels.clone()),
            ("ExternalLabels".to_owned(), external.clone()),
            ("ExternalURL".to_owned(), Value::Str(data.external_url.clone())),
            ("Value".to_owned(), Value::Num(data.value)),
        ]));
        let vars = vec![
            ("$".to_owned(), root.clone()),
            ("$labels".to_owned(), labels),
            ("$externalLabels".to_owned(), external),
            ("$externalURL".to_owned(), Value::Str(data.external_url.clone())),
            ("$value".to_owned(), Value::Num(data.value)),
        ];
        let exec = exec::Exec::new(vars, data.query, data.now_secs, data.external_url.clone());
        match exec.run(&self.nodes, &root) {
            Ok(s) => s,
            Err(e) => format!("<error expanding template: {e}>"),
        }
    }
}

fn check_functions(nodes: &[Node]) -> Result<(), ParseError> {
    let check_pipe = |p: &Pipeline| check_pipeline(p);
    for n in nodes {
        match n {
            Node::Text(_) => {}
            Node::Print(p) | Node::Set { pipe: p, .. } => check_pipe(p)?,
            Node::If { branches, otherwise } => {
                for (c, b) in branches {
                    check_pipe(c)?;
                    check_functions(b)?;
                }
                check_functions(otherwise)?;
            }
            Node::With { pipe, body, otherwise }
            | Node::Range {
                pipe, body, otherwise, ..
            } => {
                check_pipe(pipe)?;
                check_functions(body)?;
                check_functions(otherwise)?;
            }
        }
    }
    Ok(())
}

fn check_pipeline(p: &Pipeline) -> Result<(), ParseError> {
    for Command(ops) in &p.0 {
        for op in ops {
            match op {
                Operand::Func(f) if !exec::FUNCTIONS.contains(&f.as_str()) => {
                    return Err(ParseError {
                        offset: 0,
                        message: format!("function {f:?} not defined"),
                    });
                }
                Operand::Sub(inner, _) => check_pipeline(inner)?,
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(value: f64) -> AlertData<'static> {
        AlertData {
            labels: BTreeMap::from([
                ("service".into(), "payments".into()),
                ("route".into(), "payments-route".into()),
            ]),
            value,
            external_url: "http://vigil.example.com".into(),
            ..AlertData::default()
        }
    }

    fn expand(src: &str, value: f64) -> String {
        Template::parse(src)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .expand(&data(value))
    }

    #[test]
    fn deep_templates_are_refused_before_anything_recurses() {
        let blocks = format!("{}x{}", "{{ if true }}".repeat(100_000), "{{ end }}".repeat(100_000));
        let e = Template::parse(&blocks).expect_err("too deep");
        assert!(e.to_string().contains("deeper than 100"), "{e}");
        let parens = format!("{{{{ {}1{} }}}}", "(".repeat(50_000), ")".repeat(50_000));
        assert!(Template::parse(&parens).is_err());
        let quoted = format!("{{{{ \"{}\" }}}}", "(".repeat(500));
        assert_eq!(expand(&quoted, 0.0), "(".repeat(500));
        assert_eq!(
            expand(
                &format!("{}{}", "{{ if true }}".repeat(100), "{{ end }}".repeat(100)),
                0.0
            ),
            ""
        );
    }

    #[test]
    fn the_usual_annotations() {
        assert_eq!(
            expand(
                "{{ $labels.service }} errors at {{ $value | humanizePercentage }}",
                0.3512
            ),
            "payments errors at 35.12%"
        );
        assert_eq!(expand("{{ humanize $value }}req/s", 1234.5), "1.234kreq/s");
        assert_eq!(expand("{{ printf \"%.1f\" $value }}", 2.25), "2.2");
        assert_eq!(
            expand("value {{ $value }} on {{ .Labels.route }}", 0.5),
            "value 0.5 on payments-route"
        );
        assert_eq!(expand("{{ $labels.missing }}|", 1.0), "|");
        assert_eq!(expand("no actions", 1.0), "no actions");
    }

    #[test]
    fn control_flow_and_trim() {
        let src = "{{ if gt $value 0.5 -}} high {{- else if gt $value 0.1 }}medium{{ else }}low{{ end }}";
        assert_eq!(expand(src, 0.9), "high");
        assert_eq!(expand(src, 0.2), "medium");
        assert_eq!(expand(src, 0.0), "low");
        assert_eq!(
            expand("{{ with $labels.service }}svc={{ . }}{{ end }}", 0.0),
            "svc=payments"
        );
        assert_eq!(
            expand("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}", 0.0),
            "route=payments-route;service=payments;"
        );
        assert_eq!(expand("{{/* a comment */}}{{ $x := 3 }}{{ $x }}", 0.0), "3");
        assert_eq!(
            expand("{{ toUpper (reReplaceAll \"-route\" \"\" $labels.route) }}", 0.0),
            "PAYMENTS"
        );
    }

    #[test]
    fn errors_at_load_and_at_run() {
        assert!(Template::parse("{{ nosuchfunc $value }}").is_err());
        assert!(Template::parse("{{ if $value }}unclosed").is_err());
        assert!(Template::parse("{{ template \"x\" }}").is_err());
        assert!(Template::parse("{{ $value").is_err());
        assert_eq!(
            expand("{{ first (query \"up\") }}", 0.0),
            "<error expanding template: query() is not available here>"
        );
    }

    #[test]
    fn query_results() {
        let q = |_: &str| -> Result<QueryRows, QueryFnError> {
            Ok(vec![(
                BTreeMap::from([("instance".to_owned(), "a:9090".to_owned())]),
                3.0,
            )])
        };
        let mut d = data(0.0);
        d.query = Some(&q);
        let t = Template::parse("{{ with query \"up\" }}{{ . | first | value }} on {{ . | first | label \"instance\" | stripPort }}{{ end }}")
            .expect("valid");
        assert_eq!(t.expand(&d), "3 on a");
    }
}
