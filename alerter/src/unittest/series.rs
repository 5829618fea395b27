//! The two small notations of a test file: series descriptors (`metric{a="b"}`, as in
//! `input_series` and `exp_samples`) and the expanding notation of `values`.
//!
//! ```text
//! 1 2 3          three samples           1+2x3    1 3 5 7 (a start, then 3 steps)
//! 1x3            1 1 1 1                 5-1x4    5 4 3 2 1
//! _              no sample here          _x3      three steps without samples
//! stale          a staleness marker      1e3 -2 Inf NaN .5   numbers as PromQL reads them
//! ```
//!
//! Both follow Prometheus's grammar for test series (`promql/parser`): a step is added again and
//! again (`1+0.1x3` is `1, 1.1, 1.2000000000000002, ...`, exactly as promtool computes it),
//! and an integer with a leading zero is octal (`010` is 8), as Go's `ParseInt` reads it.
//! Native-histogram values (`{{schema:0 ...}}`) are refused.

use vigil_tsdb::stale_nan;

/// Why a descriptor or a value sequence could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    /// One item of a value sequence is not in the expanding notation.
    #[error("bad value {item:?}: {reason}")]
    BadValue {
        /// The item.
        item: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Native-histogram values are not supported.
    #[error("native histogram values ({{{{...}}}}) are not supported by vigil")]
    NativeHistogram,
    /// A series descriptor is malformed.
    #[error("bad series {text:?}: {reason}")]
    BadSeries {
        /// The descriptor.
        text: String,
        /// What is wrong, and where.
        reason: String,
    },
}

/// Label pairs sorted by name, empty values kept (promtool compares expected labels as written).
pub type LabelPairs = Vec<(String, String)>;

/// Expands a value sequence into `(step, value)` pairs: the step is the index of the sample
/// (its time is `start + step * interval`), missing samples have no pair. Steps above
/// `last_step` are checked but not kept, so a long sequence costs only what is evaluated.
pub fn parse_values(text: &str, last_step: u64) -> Result<Vec<(u64, f64)>, SeriesError> {
    if text.contains("{{") {
        return Err(SeriesError::NativeHistogram);
    }
    let mut out = Vec::new();
    let mut step: u64 = 0;
    for item in text.split_whitespace() {
        let bad = |reason| SeriesError::BadValue {
            item: item.to_owned(),
            reason,
        };
        let (first, rest) = if let Some(rest) = item.strip_prefix('_') {
            (None, rest)
        } else if let Some(rest) = item.strip_prefix("stale") {
            if !rest.is_empty() {
                return Err(bad("nothing may follow \"stale\""));
            }
            (Some(stale_nan()), rest)
        } else {
            let (v, rest) = signed_number(item).ok_or_else(|| bad("expected a number, \"_\" or \"stale\""))?;
            (Some(v), rest)
        };
        let (delta, count) = if rest.is_empty() {
            (None, 0)
        } else if let Some(n) = rest.strip_prefix('x') {
            (
                None,
                repeat_count(n).ok_or_else(|| bad("expected a whole number after \"x\""))?,
            )
        } else if first.is_some() && rest.starts_with(['+', '-']) {
            let (d, after) = signed_number(rest).ok_or_else(|| bad("expected a number after the sign"))?;
            let n = after
                .strip_prefix('x')
                .and_then(repeat_count)
                .ok_or_else(|| bad("expected x<count> after the increment"))?;
            (Some(d), n)
        } else {
            return Err(bad("expected x<count> or +<step>x<count>"));
        };
        match first {
            // `_` is one missing sample, `_xN` N of them.
            None => step = step.saturating_add(if rest.is_empty() { 1 } else { count }),
            // A value is `count + 1` samples.
            Some(mut v) => {
                let n = count.saturating_add(1);
                let keep = n.min(last_step.saturating_add(1).saturating_sub(step));
                for _ in 0..keep {
                    out.push((step, v));
                    step += 1;
                    if let Some(d) = delta {
                        v += d;
                    }
                }
                step = step.saturating_add(n - keep);
            }
        }
    }
    Ok(out)
}

fn repeat_count(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A number with an optional sign at the start of `s`, and what follows it (which must start
/// with `x`, `+`, `-` or be empty).
fn signed_number(s: &str) -> Option<(f64, &str)> {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    let (v, rest) = number(body)?;
    Some((sign * v, rest))
}

/// An unsigned number as the test-series lexer reads it: `Inf` and `NaN` (any case), or digits
/// with an optional fraction and exponent.
fn number(s: &str) -> Option<(f64, &str)> {
    let b = s.as_bytes();
    if b.first().is_some_and(u8::is_ascii_alphabetic) {
        // A word runs as far as an identifier does; only inf and nan are numbers.
        let end = b
            .iter()
            .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b':'))
            .unwrap_or(b.len());
        let v = match s[..end].to_ascii_lowercase().as_str() {
            "inf" => f64::INFINITY,
            "nan" => f64::NAN,
            _ => return None,
        };
        return Some((v, &s[end..]));
    }
    let digits = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut end = digits(0);
    if b.get(end) == Some(&b'.') {
        end = digits(end + 1);
    }
    if end == 0 || (end == 1 && b[0] == b'.') {
        return None;
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        end += 1;
        if matches!(b.get(end), Some(b'+' | b'-')) {
            end += 1;
        }
        end = digits(end);
    }
    // Only `x` (a repetition) or a non-word character may follow a number.
    if let Some(&c) = b.get(end)
        && c != b'x'
        && (c.is_ascii_alphanumeric() || c == b'_')
    {
        return None;
    }
    let text = &s[..end];
    Some((go_number(text)?, &s[end..]))
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseFloat`: what PromQL's parser does with a number.
fn go_number(text: &str) -> Option<f64> {
    let all_digits = text.bytes().all(|c| c.is_ascii_digit());
    if all_digits && text.len() > 1 && text.starts_with('0') {
        // Base 0: a leading zero means octal; `09` is no octal number and falls to ParseFloat.
        if let Ok(n) = i64::from_str_radix(&text[1..], 8) {
            return Some(n as f64);
        }
    } else if all_digits && let Ok(n) = text.parse::<i64>() {
        return Some(n as f64);
    }
    text.parse::<f64>().ok()
}

/// Reads a series descriptor: `name`, `name{a="b", ...}` or `{__name__="name", a="b"}`
/// (Prometheus 3's quoted names too: `{"name.with.dots", "a.b"="c"}`). Returns the labels
/// sorted by name, `__name__` included.
pub fn parse_series(text: &str) -> Result<LabelPairs, SeriesError> {
    let bad = |reason: String| SeriesError::BadSeries {
        text: text.to_owned(),
        reason,
    };
    let mut p = Cursor { s: text, i: 0 };
    p.skip_space();
    let mut out: LabelPairs = Vec::new();
    let name = p.identifier(true);
    if !name.is_empty() {
        out.push(("__name__".to_owned(), name.to_owned()));
    }
    p.skip_space();
    if p.peek() == Some(b'{') {
        p.i += 1;
        loop {
            p.skip_space();
            match p.peek() {
                Some(b'}') => {
                    p.i += 1;
                    break;
                }
                None => return Err(bad("missing \"}\"".into())),
                _ => {}
            }
            let label = if matches!(p.peek(), Some(b'"' | b'\'' | b'`')) {
                p.quoted().map_err(&bad)?
            } else {
                let n = p.identifier(false);
                if n.is_empty() {
                    return Err(bad(format!("expected a label name at offset {}", p.i)));
                }
                n.to_owned()
            };
            p.skip_space();
            if p.peek() == Some(b'=') {
                p.i += 1;
                p.skip_space();
                let value = p.quoted().map_err(&bad)?;
                if out.iter().any(|(n, _)| *n == label) {
                    return Err(bad(format!("label {label:?} given twice")));
                }
                out.push((label, value));
            } else if out.iter().any(|(n, _)| n == "__name__") {
                return Err(bad(format!("expected \"=\" after {label:?}")));
            } else {
                // A quoted name alone inside the braces is the metric name.
                out.push(("__name__".to_owned(), label));
            }
            p.skip_space();
            match p.peek() {
                Some(b',') => p.i += 1,
                Some(b'}') => {}
                _ => return Err(bad(format!("expected \",\" or \"}}\" at offset {}", p.i))),
            }
        }
    } else if name.is_empty() {
        return Err(bad("expected a metric name or \"{\"".into()));
    }
    p.skip_space();
    if p.i < text.len() {
        return Err(bad(format!("unexpected {:?} at offset {}", &text[p.i..], p.i)));
    }
    out.sort();
    Ok(out)
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    /// A metric name (colons allowed) or a label name; empty if there is none here.
    fn identifier(&mut self, colons: bool) -> &'a str {
        let start = self.i;
        while let Some(c) = self.peek() {
            let ok =
                c.is_ascii_alphabetic() || c == b'_' || (colons && c == b':') || (self.i > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    /// A double-, single- or back-quoted string with Go's escapes (none in back quotes).
    fn quoted(&mut self) -> Result<String, String> {
        let quote = self.peek().ok_or("expected a quoted string, found the end")?;
        if !matches!(quote, b'"' | b'\'' | b'`') {
            return Err(format!("expected a quoted string at offset {}", self.i));
        }
        let start = self.i;
        let mut chars = self.s[self.i + 1..].char_indices();
        let mut out = String::new();
        while let Some((k, c)) = chars.next() {
            if c == quote as char {
                self.i += 1 + k + 1;
                return Ok(out);
            }
            if c != '\\' || quote == b'`' {
                out.push(c);
                continue;
            }
            let (_, e) = chars.next().ok_or("unterminated escape")?;
            let mut hex = |n: usize| -> Result<u32, String> {
                let digits: String = (0..n).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                u32::from_str_radix(&digits, 16).map_err(|_| format!("bad escape \\{e}{digits}"))
            };
            let decoded = match e {
                'a' => '\u{7}',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'v' => '\u{b}',
                '\\' | '"' | '\'' | '`' if e as u32 == u32::from(quote) || e == '\\' => e,
                'x' => char::from_u32(hex(2)?).ok_or("bad \\x escape")?,
                'u' => char::from_u32(hex(4)?).ok_or("bad \\u escape")?,
                'U' => char::from_u32(hex(8)?).ok_or("bad \\U escape")?,
                '0'..='7' => {
                    let rest: String = (0..2).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                    let code = u32::from_str_radix(&format!("{e}{rest}"), 8).map_err(|_| "bad octal escape")?;
                    char::from_u32(code).filter(|_| code <= 255).ok_or("bad octal escape")?
                }
                other => return Err(format!("unknown escape sequence \\{other}")),
            };
            out.push(decoded);
        }
        Err(format!("unterminated string starting at offset {start}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequence with `None` where a step has no sample (up to the last sample).
    fn expand(text: &str) -> Vec<Option<f64>> {
        let points = parse_values(text, u64::MAX).expect("valid");
        let len = points.last().map_or(0, |(i, _)| *i as usize + 1);
        let mut out = vec![None; len];
        for (i, v) in points {
            out[i as usize] = Some(v);
        }
        out
    }

    fn s(v: &[f64]) -> Vec<Option<f64>> {
        v.iter().copied().map(Some).collect()
    }

    #[test]
    fn plain_values() {
        assert_eq!(expand("1 2 3"), s(&[1.0, 2.0, 3.0]));
        assert_eq!(
            expand("  -2 +4 1e3 1.5E-1 .5 5. "),
            s(&[-2.0, 4.0, 1000.0, 0.15, 0.5, 5.0])
        );
        assert_eq!(
            expand("Inf -inf +INF"),
            s(&[f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY])
        );
        let nan = expand("NaN nan");
        assert!(nan.iter().all(|v| v.is_some_and(f64::is_nan)));
        assert_eq!(expand(""), Vec::<Option<f64>>::new());
    }

    #[test]
    fn expanding_notation() {
        assert_eq!(expand("1+2x3"), s(&[1.0, 3.0, 5.0, 7.0]));
        assert_eq!(expand("5-1x4"), s(&[5.0, 4.0, 3.0, 2.0, 1.0]));
        assert_eq!(expand("-2+4x3"), s(&[-2.0, 2.0, 6.0, 10.0]));
        assert_eq!(expand("1x3"), s(&[1.0, 1.0, 1.0, 1.0]));
        assert_eq!(expand("1x0"), s(&[1.0]));
        assert_eq!(expand("0+1e1x2"), s(&[0.0, 10.0, 20.0]));
        assert_eq!(
            expand("10+10x2 30+20x5"),
            s(&[10., 20., 30., 30., 50., 70., 90., 110., 130.])
        );
        // The step is added again and again, as promtool does (not multiplied).
        let v = expand("0+0.1x3");
        assert_eq!(v[3], Some(0.1 + 0.1 + 0.1));
        assert_ne!(v[3], Some(0.3));
    }

    #[test]
    fn missing_and_stale() {
        assert_eq!(expand("1 _ 3"), vec![Some(1.0), None, Some(3.0)]);
        assert_eq!(expand("_x3 1"), vec![None, None, None, Some(1.0)]);
        assert_eq!(expand("1 _x0 2"), s(&[1.0, 2.0]));
        let v = expand("1 stale 2");
        assert!(v[1].is_some_and(vigil_tsdb::is_stale_nan));
        assert_eq!((v[0], v[2]), (Some(1.0), Some(2.0)));
        // Trailing missing samples leave no point but still count as steps.
        assert_eq!(parse_values("_ _ 1", u64::MAX), Ok(vec![(2, 1.0)]));
    }

    #[test]
    fn go_number_forms() {
        // Go's ParseInt with base 0: a leading zero is octal; 09 is decimal through ParseFloat.
        assert_eq!(expand("010 09 0 0.5"), s(&[8.0, 9.0, 0.0, 0.5]));
    }

    #[test]
    fn steps_past_the_last_are_not_kept() {
        assert_eq!(
            parse_values("1+1x1000000000000", 2),
            Ok(vec![(0, 1.0), (1, 2.0), (2, 3.0)])
        );
        assert_eq!(parse_values("_x1000000000000 5", 10), Ok(vec![]));
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            "1+2",
            "1x",
            "x3",
            "1xx3",
            "abc",
            "1+x3",
            "stale+1x2",
            "stalex3",
            "_+1x3",
            "1y",
            "1.5.2",
            "Infx3",
        ] {
            assert!(
                matches!(parse_values(bad, u64::MAX), Err(SeriesError::BadValue { .. })),
                "{bad} should be refused"
            );
        }
        assert_eq!(
            parse_values("{{schema:0 sum:5 count:4}}", u64::MAX),
            Err(SeriesError::NativeHistogram)
        );
    }

    fn pairs(p: &[(&str, &str)]) -> LabelPairs {
        p.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn series_descriptors() {
        assert_eq!(
            parse_series(r#"up{job="api", instance="a:9090"}"#),
            Ok(pairs(&[("__name__", "up"), ("instance", "a:9090"), ("job", "api")]))
        );
        assert_eq!(
            parse_series(r#"{__name__="x", a="b",}"#),
            Ok(pairs(&[("__name__", "x"), ("a", "b")]))
        );
        assert_eq!(parse_series("job:up:sum"), Ok(pairs(&[("__name__", "job:up:sum")])));
        assert_eq!(parse_series(" {} "), Ok(vec![]));
        assert_eq!(
            parse_series(r#"x{a='single', b=`back\n`, c="tab\there\"\u00e9\101"}"#),
            Ok(pairs(&[
                ("__name__", "x"),
                ("a", "single"),
                ("b", "back\\n"),
                ("c", "tab\there\"éA")
            ]))
        );
        // Empty values are kept: an expectation of one can never match, as in promtool.
        assert_eq!(parse_series(r#"{a=""}"#), Ok(pairs(&[("a", "")])));
        // Prometheus 3's quoted names.
        assert_eq!(
            parse_series(r#"{"my.metric", "a.b"="c"}"#),
            Ok(pairs(&[("__name__", "my.metric"), ("a.b", "c")]))
        );
    }

    #[test]
    fn bad_descriptors_are_refused() {
        for bad in [
            "",
            "x{",
            "x{a}",
            "x{a=b}",
            r#"x{a="b" c="d"}"#,
            r#"x{a="b"} 1"#,
            r#"x{a="b", a="c"}"#,
            r#"x{a="unterminated}"#,
            r#"x{a="\q"}"#,
            "1x",
        ] {
            assert!(
                matches!(parse_series(bad), Err(SeriesError::BadSeries { .. })),
                "{bad:?} should be refused"
            );
        }
    }
}
