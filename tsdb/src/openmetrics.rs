//! A reader of OpenMetrics text with timestamps, as `promtool tsdb create-blocks-from
//! openmetrics` takes it: one sample per line, `name{label="value",...} value timestamp`, with
//! `# TYPE`, `# HELP`, `# UNIT` and `# EOF` lines in between. Timestamps are seconds (a
//! fraction allowed); values are floats, `NaN`, `+Inf` or `-Inf`. Exemplars (`# {...} ...` after
//! the timestamp) are ignored.

use crate::labels::{Label, Labels};
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
    }))
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
