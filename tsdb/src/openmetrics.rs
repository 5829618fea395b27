//! A reader of OpenMetrics text with timestamps, as `promtool tsdb create-blocks-from
//! openmetrics` takes it: one sample per line, `name{label="value",...} value timestamp`, with
//! `# TYPE`, `# HELP`, `# UNIT` and `# EOF` lines in between. Timestamps are seconds (a
//! fraction allowed); values are floats, `NaN`, `+Inf` or `-Inf`. Exemplars (`# {...} ...` after
//! the timestamp) are ignored.
//!
//! [`Points`] reads whole files: it also takes a counter's, histogram's or summary's `_created`
//! line as the start time ([`crate::starts`]) of the samples of its metric point (the same
//! labels at the same time), and keeps the `_created` line as a sample of its own too, as
//! Prometheus does.

use std::collections::HashMap;

use crate::labels::{Label, Labels, METRIC_NAME};
use crate::storage::Timestamp;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Metric name and labels.
    pub labels: Labels,
    /// Milliseconds.
    pub t: Timestamp,
    /// The value.
    pub v: f64,
    /// Start time in milliseconds (0: none), from the point's `_created` line ([`Points`]).
    pub st: Timestamp,
}

/// Why a line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based byte column.
    pub column: usize,
    /// What was wrong.
    pub reason: String,
}

/// Parses one line (without its newline); `Ok(None)` for comments and blank lines. `number` is
/// the line's 1-based number, for errors.
pub fn parse_line(text: &str, number: usize) -> Result<Option<Line>, ParseError> {
    let err = |at: usize, reason: &str| ParseError {
        line: number,
        column: at + 1,
        reason: reason.into(),
    };
    let b = text.as_bytes();
    if b.is_empty() || b[0] == b'#' {
        return Ok(None);
    }
    let name_end = b
        .iter()
        .position(|&c| c == b'{' || c == b' ')
        .ok_or_else(|| err(b.len(), "expected a value after the metric name"))?;
    let name = &text[..name_end];
    if !valid_metric_name(name) {
        return Err(err(0, "invalid metric name"));
    }
    let mut labels = vec![Label {
        name: "__name__".into(),
        value: name.into(),
    }];
    let mut pos = name_end;
    if b[pos] == b'{' {
        pos += 1;
        loop {
            while b.get(pos) == Some(&b',') || b.get(pos) == Some(&b' ') {
                pos += 1;
            }
            match b.get(pos) {
                Some(b'}') => {
                    pos += 1;
                    break;
                }
                None => return Err(err(pos, "unclosed label set")),
                _ => {}
            }
            let eq = text[pos..]
                .find('=')
                .map(|i| pos + i)
                .ok_or_else(|| err(pos, "expected '=' after a label name"))?;
            let lname = text[pos..eq].trim();
            if !crate::labels::is_valid_name(lname) {
                return Err(err(pos, "invalid label name"));
            }
            pos = eq + 1;
            if b.get(pos) != Some(&b'"') {
                return Err(err(pos, "expected '\"' to open a label value"));
            }
            pos += 1;
            let mut value = String::new();
            loop {
                match b.get(pos) {
                    None => return Err(err(pos, "unterminated label value")),
                    Some(b'"') => {
                        pos += 1;
                        break;
                    }
                    Some(b'\\') => {
                        match b.get(pos + 1) {
                            Some(b'n') => value.push('\n'),
                            Some(b'\\') => value.push('\\'),
                            Some(b'"') => value.push('"'),
                            _ => return Err(err(pos, "invalid escape in a label value")),
                        }
                        pos += 2;
                    }
                    Some(_) => {
                        let c = text[pos..].chars().next().unwrap_or('\u{fffd}');
                        value.push(c);
                        pos += c.len_utf8();
                    }
                }
            }
            if !value.is_empty() {
                labels.push(Label {
                    name: lname.into(),
                    value: value.into(),
                });
            }
        }
    }
    let rest = &text[pos..];
    let mut fields = rest.split(' ').filter(|f| !f.is_empty());
    let value_at = pos + rest.len() - rest.trim_start().len();
    let v = match fields.next() {
        Some(f) => parse_float(f).ok_or_else(|| err(value_at, "invalid value"))?,
        None => return Err(err(value_at, "missing value")),
    };
    let t = match fields.next() {
        Some(f) if f != "#" => {
            let secs: f64 = f.parse().map_err(|_| err(value_at, "invalid timestamp"))?;
            if !secs.is_finite() {
                return Err(err(value_at, "invalid timestamp"));
            }
            (secs * 1000.0).round() as Timestamp
        }
        _ => return Err(err(value_at, "a timestamp is required to import a sample")),
    };
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    if labels.windows(2).any(|w| w[0].name == w[1].name) {
        return Err(err(name_end, "duplicate label name"));
    }
    Ok(Some(Line {
        labels: Labels::from_sorted(labels),
        t,
        v,
        st: 0,
    }))
}

/// Reads the lines of an OpenMetrics file in order and hands out their samples, each with the
/// start time its metric point's `_created` line gives (which follows the point's other
/// samples, so they are held until the point ends). Only families declared (`# TYPE`) as a
/// counter, histogram or summary have `_created` lines; in others it is an ordinary sample.
#[derive(Debug, Default)]
pub struct Points {
    /// Families by name, from `# TYPE` lines.
    types: HashMap<String, String>,
    /// The samples of the current point, and the point: (family, labels without the name,
    /// `le` or `quantile`, time).
    pending: Vec<Line>,
    point: Option<(String, Labels, Timestamp)>,
}

/// The families whose points may have a `_created` sample.
const CREATED_TYPES: [&str; 3] = ["counter", "histogram", "summary"];

impl Points {
    /// Reads one line (without its newline), returning the samples that are complete.
    pub fn push(&mut self, text: &str, number: usize) -> Result<Vec<Line>, ParseError> {
        if let Some(rest) = text.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                self.types.insert(name.to_owned(), kind.to_owned());
            }
            return Ok(Vec::new());
        }
        let Some(line) = parse_line(text, number)? else {
            return Ok(Vec::new());
        };
        let name = line.labels.metric_name().unwrap_or_default();
        if let Some(family) = name.strip_suffix("_created")
            && self.has_created(family)
        {
            // The point's samples, whatever the `_created` line's own timestamp.
            let mut out = std::mem::take(&mut self.pending);
            let point = self.point.take();
            let same = point.is_some_and(|(f, l, _)| f == family && l == point_labels(&line.labels));
            if same && line.v.is_finite() {
                // Seconds to milliseconds, truncated as Prometheus does.
                let st = (line.v * 1000.0) as Timestamp;
                out.iter_mut().for_each(|s| s.st = st);
            }
            out.push(line);
            return Ok(out);
        }
        let family = ["_total", "_bucket", "_count", "_sum", ""]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|f| self.has_created(f)));
        let Some(family) = family else {
            let mut out = self.finish();
            out.push(line);
            return Ok(out);
        };
        let point = Some((family.to_owned(), point_labels(&line.labels), line.t));
        let out = if self.point != point { self.finish() } else { Vec::new() };
        self.point = point;
        self.pending.push(line);
        Ok(out)
    }

    /// The samples still held (at the end of the file).
    pub fn finish(&mut self) -> Vec<Line> {
        self.point = None;
        std::mem::take(&mut self.pending)
    }

    /// Whether family `name` may have `_created` samples: a declared counter, histogram or
    /// summary (a counter may be declared with its `_total` name too).
    fn has_created(&self, name: &str) -> bool {
        let declared = |n: &str| self.types.get(n).is_some_and(|t| CREATED_TYPES.contains(&t.as_str()));
        !name.is_empty() && (declared(name) || declared(&format!("{name}_total")))
    }
}

/// The labels that identify a metric point within its family: all but the name and a bucket's
/// `le` or a quantile's `quantile`.
fn point_labels(labels: &Labels) -> Labels {
    let mut b = labels.to_builder();
    b.del(METRIC_NAME);
    b.del("le");
    b.del("quantile");
    b.build()
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn valid_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn parse_float(f: &str) -> Option<f64> {
    match f {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => f.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_comments_and_escapes() {
        assert_eq!(parse_line("# TYPE http_requests counter", 1), Ok(None));
        assert_eq!(parse_line("# EOF", 9), Ok(None));
        let l = parse_line(
            r#"http_requests_total{code="200",path="/a\"b\\c"} 1027 1795392000.5"#,
            2,
        )
        .expect("valid")
        .expect("a sample");
        assert_eq!(l.t, 1_795_392_000_500);
        assert_eq!(l.v, 1027.0);
        assert_eq!(l.labels.get("__name__"), Some("http_requests_total"));
        assert_eq!(l.labels.get("path"), Some(r#"/a"b\c"#));
        let l = parse_line("up NaN 10 # {trace_id=\"x\"} 1 10", 3)
            .expect("valid")
            .expect("sample");
        assert!(l.v.is_nan());
        assert_eq!(l.t, 10_000);
    }

    #[test]
    fn created_lines_give_their_points_start_times() {
        let text = r#"# TYPE requests counter
requests_total{route="/a"} 10 100
requests_created{route="/a"} 40.5 100
requests_total{route="/b"} 3 100
requests_total{route="/a"} 12 110
requests_created{route="/a"} 105 110
# TYPE latency histogram
latency_bucket{le="0.1"} 1 100
latency_bucket{le="+Inf"} 2 100
latency_count 2 100
latency_sum 0.3 100
latency_created 90 100
# TYPE rpc summary
rpc{quantile="0.5"} 0.2 100
rpc_count 4 100
rpc_sum 1 100
rpc_created 99.9999 101
# TYPE temperature gauge
temperature 21 100
temperature_created 5 100
undeclared_total 3 100
undeclared_created 2 100
up 1 100
# EOF"#;
        let mut points = Points::default();
        let mut got = Vec::new();
        for (i, line) in text.lines().enumerate() {
            got.extend(points.push(line, i + 1).expect("valid"));
        }
        got.extend(points.finish());
        let seen: Vec<(String, Timestamp, Timestamp)> = got.iter().map(|l| (l.labels.to_string(), l.t, l.st)).collect();
        let want = [
            (r#"requests_total{route="/a"}"#, 100_000, 40_500),
            (r#"requests_created{route="/a"}"#, 100_000, 0),
            (r#"requests_total{route="/b"}"#, 100_000, 0),
            (r#"requests_total{route="/a"}"#, 110_000, 105_000),
            (r#"requests_created{route="/a"}"#, 110_000, 0),
            (r#"latency_bucket{le="0.1"}"#, 100_000, 90_000),
            (r#"latency_bucket{le="+Inf"}"#, 100_000, 90_000),
            ("latency_count", 100_000, 90_000),
            ("latency_sum", 100_000, 90_000),
            ("latency_created", 100_000, 0),
            (r#"rpc{quantile="0.5"}"#, 100_000, 99_999),
            ("rpc_count", 100_000, 99_999),
            ("rpc_sum", 100_000, 99_999),
            ("rpc_created", 101_000, 0),
            ("temperature", 100_000, 0),
            ("temperature_created", 100_000, 0),
            ("undeclared_total", 100_000, 0),
            ("undeclared_created", 100_000, 0),
            ("up", 100_000, 0),
        ];
        let want: Vec<(String, Timestamp, Timestamp)> =
            want.iter().map(|(l, t, st)| (l.to_string(), *t, *st)).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = parse_line("up 1", 7).expect_err("no timestamp");
        assert_eq!((e.line, e.column), (7, 4));
        let e = parse_line(r#"up{job="a} 1 2"#, 3).expect_err("unterminated");
        assert_eq!(e.line, 3);
        assert!(parse_line("up{1x=\"a\"} 1 2", 1).is_err());
        assert!(parse_line("up abc 2", 1).is_err());
        assert!(parse_line(r#"up{a="1",a="2"} 1 2"#, 1).is_err());
    }
}
