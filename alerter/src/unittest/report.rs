//! Failures as promtool prints them, so that a diff reads the same from either tool:
//!
//! ```text
//!     alertname: InstanceDown, time: 10m,
//!         exp:[
//!             0:
//!               Labels:{alertname="InstanceDown", instance="a:9090", severity="page"}
//!               Annotations:{summary="Instance a:9090 down"}
//!             ],
//!         got:[]
//!     expr: "sum(up)", time: 4m,
//!         exp: {} 2E+00
//!         got: {} 1E+00
//! ```
//!
//! (promtool also ends the `alertname` line and the `exp` list with a space; so does vigil.)

use std::fmt;

use super::compare::{AlertInfo, SampleInfo};
use super::error::{ExprTestError, UnitTestError};
use super::series::LabelPairs;

/// One reason a test file failed.
#[derive(Debug)]
pub enum Failure {
    /// The file, its rule files or a test group could not be run.
    Setup(UnitTestError),
    /// A rule failed to evaluate; its test group stops there, as in promtool.
    RuleEval {
        /// The rule's name.
        rule: String,
        /// The evaluation time (ms since the Unix epoch).
        time_ms: i64,
        /// The error.
        message: String,
    },
    /// The firing alerts of a name differ from the expected ones.
    Alerts {
        /// The test group's name (may be empty).
        group: String,
        /// The alert name.
        alertname: String,
        /// The test's `eval_time` (ms).
        eval_time_ms: i64,
        /// Expected, sorted.
        exp: Vec<AlertInfo>,
        /// Firing, sorted.
        got: Vec<AlertInfo>,
    },
    /// An expression could not be evaluated, or its expected labels not read.
    ExprError {
        /// The expression.
        expr: String,
        /// The test's `eval_time` (ms).
        eval_time_ms: i64,
        /// The error.
        error: ExprTestError,
    },
    /// An expression's samples differ from the expected ones.
    Samples {
        /// The expression.
        expr: String,
        /// The test's `eval_time` (ms).
        eval_time_ms: i64,
        /// Expected, sorted by labels.
        exp: Vec<SampleInfo>,
        /// Computed, sorted by labels.
        got: Vec<SampleInfo>,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Setup(e) => write!(f, "{e}"),
            Failure::RuleEval { rule, time_ms, message } => {
                write!(f, "    rule: {rule}, time: {}, err: {message}", go_duration(*time_ms))
            }
            Failure::Alerts {
                group,
                alertname,
                eval_time_ms,
                exp,
                got,
            } => {
                if !group.is_empty() {
                    writeln!(f, "    name: {group},")?;
                }
                let indent = "            ";
                write!(
                    f,
                    "    alertname: {alertname}, time: {}, \n        exp:{}, \n        got:{}",
                    model_duration(*eval_time_ms),
                    indent_lines(&alerts_string(exp), indent),
                    indent_lines(&alerts_string(got), indent)
                )
            }
            Failure::ExprError {
                expr,
                eval_time_ms,
                error,
            } => write!(
                f,
                "    expr: {}, time: {}, err: {error}",
                go_quote(expr),
                model_duration(*eval_time_ms)
            ),
            Failure::Samples {
                expr,
                eval_time_ms,
                exp,
                got,
            } => write!(
                f,
                "    expr: {}, time: {},\n        exp: {}\n        got: {}",
                go_quote(expr),
                model_duration(*eval_time_ms),
                samples_string(exp),
                samples_string(got)
            ),
        }
    }
}

/// `{a="b", c="d"}`, values quoted as Go quotes them.
pub fn labels_string(labels: &LabelPairs) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let plain = !k.is_empty()
                && k.bytes()
                    .enumerate()
                    .all(|(i, c)| c == b'_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
            let name = if plain { k.clone() } else { go_quote(k) };
            format!("{name}={}", go_quote(v))
        })
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// promtool's list of alerts: `[]`, or numbered entries with their labels and annotations.
fn alerts_string(alerts: &[AlertInfo]) -> String {
    if alerts.is_empty() {
        return "[]".to_owned();
    }
    let mut s = String::from("[");
    for (i, a) in alerts.iter().enumerate() {
        let entry = format!(
            "\nLabels:{}\nAnnotations:{}",
            labels_string(&a.labels),
            labels_string(&a.annotations)
        );
        s.push_str(if i == 0 { "\n" } else { ",\n" });
        s.push_str(&format!("{i}:{}", indent_lines(&entry, "  ")));
    }
    s.push_str("\n]");
    s
}

/// promtool's list of samples: `nil`, or `{labels} value` joined by commas.
fn samples_string(samples: &[SampleInfo]) -> String {
    if samples.is_empty() {
        return "nil".to_owned();
    }
    let items: Vec<String> = samples
        .iter()
        .map(|s| format!("{} {}", labels_string(&s.labels), go_float(s.value)))
        .collect();
    items.join(", ")
}

/// Prefixes every line but the first with `indent`.
fn indent_lines(text: &str, indent: &str) -> String {
    text.split('\n').collect::<Vec<_>>().join(&format!("\n{indent}"))
}

/// Go's `strconv.Quote`: double quotes, Go's escapes, printable characters as they are.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`: the shortest exact digits, `5E+01`.
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let s = format!("{v:E}");
    let Some((mantissa, exp)) = s.split_once('E') else {
        return s;
    };
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mantissa}E{sign}{digits:0>2}")
}

/// A duration as Prometheus's `model.Duration` prints it: `1h30m`, `90d`, `0s` (years and
/// weeks only when whole).
pub fn model_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    const UNITS: [(&str, i64, bool); 7] = [
        ("y", 365 * 86_400_000, true),
        ("w", 7 * 86_400_000, true),
        ("d", 86_400_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1_000, false),
        ("ms", 1, false),
    ];
    let (mut rest, mut out) = (ms.unsigned_abs(), String::new());
    if ms < 0 {
        out.push('-');
    }
    for (unit, size, whole) in UNITS {
        let size = size as u64;
        if (whole && rest % size != 0) || rest < size {
            continue;
        }
        out.push_str(&format!("{}{unit}", rest / size));
        rest %= size;
    }
    out
}

/// A duration as Go's `time.Duration` prints it: `0s`, `500ms`, `1m30s`, `1h0m0s`.
pub fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1_000 {
        return format!("{sign}{ms}ms");
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1_000 % 60, ms % 1_000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => format!("{sign}{secs}"),
        (0, m) => format!("{sign}{m}m{secs}"),
        (h, m) => format!("{sign}{h}h{m}m{secs}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::compare::pairs;
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(go_float(50.0), "5E+01");
        assert_eq!(go_float(0.5), "5E-01");
        assert_eq!(go_float(1.0), "1E+00");
        assert_eq!(go_float(0.0), "0E+00");
        assert_eq!(go_float(123.456), "1.23456E+02");
        assert_eq!(go_float(1.0 / 60.0), "1.6666666666666666E-02");
        assert_eq!(go_float(1e100), "1E+100");
        assert_eq!(go_float(-2.5e-7), "-2.5E-07");
        assert_eq!(go_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(go_float(f64::NAN), "NaN");
    }

    #[test]
    fn durations_print_like_prometheus_and_go() {
        assert_eq!(model_duration(0), "0s");
        assert_eq!(model_duration(600_000), "10m");
        assert_eq!(model_duration(5_400_000), "1h30m");
        assert_eq!(model_duration(90 * 86_400_000), "90d");
        assert_eq!(model_duration(14 * 86_400_000), "2w");
        assert_eq!(model_duration(1_500), "1s500ms");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
        assert_eq!(go_duration(1_500), "1.5s");
        assert_eq!(go_duration(250), "250ms");
    }

    #[test]
    fn quoting_like_go() {
        assert_eq!(go_quote("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\x01é\"");
        assert_eq!(
            labels_string(&pairs([("b", "2"), ("a", "1"), ("a.b", "3")])),
            r#"{a="1", "a.b"="3", b="2"}"#
        );
        assert_eq!(labels_string(&Vec::new()), "{}");
    }

    #[test]
    fn failures_print_like_promtool() {
        let exp = vec![AlertInfo {
            labels: pairs([("alertname", "Down"), ("job", "api")]),
            annotations: pairs([("summary", "api is down")]),
        }];
        let alerts = Failure::Alerts {
            group: "outage".into(),
            alertname: "Down".into(),
            eval_time_ms: 600_000,
            exp,
            got: Vec::new(),
        };
        assert_eq!(
            alerts.to_string(),
            "    name: outage,\n    alertname: Down, time: 10m, \n        exp:[\n            0:\n              \
             Labels:{alertname=\"Down\", job=\"api\"}\n              Annotations:{summary=\"api is down\"}\n            \
             ], \n        got:[]"
        );
        let samples = Failure::Samples {
            expr: "sum(up)".into(),
            eval_time_ms: 240_000,
            exp: vec![SampleInfo {
                labels: Vec::new(),
                value: 2.0,
            }],
            got: Vec::new(),
        };
        assert_eq!(
            samples.to_string(),
            "    expr: \"sum(up)\", time: 4m,\n        exp: {} 2E+00\n        got: nil"
        );
    }
}
