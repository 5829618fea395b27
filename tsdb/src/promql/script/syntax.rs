//! The values of the script language: series descriptors (`name{label="value"}`), value
//! sequences (`0+10x5 _ stale`), the start-time offsets of `@st` lines, quoted strings, numbers
//! and times.

use crate::labels::{Labels, LabelsBuilder, METRIC_NAME};
use crate::storage::{STALE_NAN, Timestamp};
use crate::time::parse_duration_ms;

/// A series of a `load` block: labels, a value per step (`None`: omitted), and the start-time
/// offsets of an `@st` line (empty without one).
pub(super) type SeriesDef = (Labels, Vec<Option<f64>>, Vec<Option<i64>>);

/// Parses the start-time offsets of an `@st` line, relative to each sample's time: `_` (none),
/// `_xN` (N of none), `<dur>`, `<dur>xN` (N+1 of it), `<dur>+<dur>xN` and `<dur>-<dur>xN` (N+1,
/// stepping), where a duration may be signed (`-30s`, `+1m`, `0`).
pub(super) fn parse_start_offsets(items: &str) -> Result<Vec<Option<i64>>, String> {
    let mut out = Vec::new();
    for item in items.split_whitespace() {
        if item == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = item.strip_prefix("_x") {
            let n = n.parse::<u32>().ok().filter(|&n| n > 0);
            let n = n.ok_or_else(|| format!("bad repeat count in {item:?}"))?;
            out.extend(std::iter::repeat_n(None, n as usize));
            continue;
        }
        let (base, rest) = signed_duration_prefix(item)?;
        let count = |n: &str| n.parse::<u32>().map_err(|_| format!("bad repeat count in {item:?}"));
        let (delta, count) = if rest.is_empty() {
            (0, 0)
        } else if let Some(n) = rest.strip_prefix('x') {
            (0, count(n)?)
        } else {
            let (delta, rest) = signed_duration_prefix(rest)?;
            let n = rest
                .strip_prefix('x')
                .ok_or_else(|| format!("expected x<count> after the step in {item:?}"))?;
            (delta, count(n)?)
        };
        out.extend((0..=i64::from(count)).map(|i| Some(base + i * delta)));
    }
    Ok(out)
}

/// A duration with an optional sign at the start of `s` (ms), and what follows it.
fn signed_duration_prefix(s: &str) -> Result<(i64, &str), String> {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => (1, s),
    };
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    let unit = body[digits..]
        .bytes()
        .take_while(|b| b.is_ascii_alphabetic() && *b != b'x')
        .count();
    let (dur, rest) = body.split_at(digits + unit);
    let ms = if dur == "0" { Ok(0) } else { parse_duration_ms(dur) };
    Ok((sign * ms.map_err(|e| format!("{s:?}: {e}"))?, rest))
}

pub(super) fn parse_time(s: &str) -> Result<Timestamp, String> {
    if let Some(neg) = s.strip_prefix('-') {
        return parse_time(neg).map(|t| -t);
    }
    if s == "0" {
        return Ok(0);
    }
    parse_duration_ms(s).or_else(|_| s.parse::<f64>().map(|v| (v * 1000.0) as i64).map_err(|e| e.to_string()))
}

pub(super) fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok().filter(|_| !s.ends_with('.') || s.len() > 1),
    }
}

/// Parses `metric{a="b", ...}` (either part optional) and returns the labels and the rest.
pub(super) fn parse_series_desc(line: &str) -> Result<(Labels, &str), String> {
    let mut b = LabelsBuilder::default();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b':')) {
        i += 1;
    }
    if i > 0 {
        b.set(METRIC_NAME, &line[..i]);
    }
    if bytes.get(i) == Some(&b'{') {
        i += 1;
        loop {
            while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                i += 1;
            }
            match bytes.get(i) {
                None => return Err(format!("unterminated labels in {line:?}")),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            let (name, next) = if bytes[i] == b'"' {
                let (s, n) = read_quoted(line, i)?;
                (s, n)
            } else {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                (line[start..i].to_owned(), i)
            };
            i = next;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if bytes.get(i) == Some(&b'=') {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                let (value, next) = read_quoted(line, i)?;
                i = next;
                b.set(name, value);
            } else {
                // A bare quoted name inside braces is the metric name (UTF-8 names).
                b.set(METRIC_NAME, name);
            }
        }
    }
    if i == 0 {
        return Err(format!("no series in {line:?}"));
    }
    Ok((b.build(), line[i..].trim()))
}

/// Reads a double-, single- or back-quoted string starting at `start`; returns it unescaped and
/// the offset after the closing quote.
fn read_quoted(s: &str, start: usize) -> Result<(String, usize), String> {
    let quote = *s.as_bytes().get(start).ok_or("expected a quoted string")?;
    if !matches!(quote, b'"' | b'\'' | b'`') {
        return Err(format!("expected a quoted string at {:?}", &s[start..]));
    }
    let mut out = String::new();
    let mut chars = s[start + 1..].char_indices();
    while let Some((k, c)) = chars.next() {
        if c == quote as char {
            return Ok((out, start + 1 + k + 1));
        }
        if c == '\\' && quote != b'`' {
            let (_, e) = chars.next().ok_or("dangling escape")?;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                'x' => {
                    let hex: String = (0..2).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                    let b = u8::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                    out.push(char::from(b));
                }
                'u' => {
                    let hex: String = (0..4).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                    let cp = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                    out.push(char::from_u32(cp).ok_or("bad \\u escape")?);
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
            continue;
        }
        out.push(c);
    }
    Err(format!("unterminated string in {s:?}"))
}

pub(super) fn unquote(s: &str) -> Result<String, String> {
    read_quoted(s, 0).map(|(v, _)| v)
}

/// Expands a value sequence: `1 2 _ stale`, `0+10x5`, `1-1x3`, `3x2`, `_x4`.
pub(super) fn parse_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        if tok == "_" {
            out.push(None);
            continue;
        }
        if tok == "stale" {
            out.push(Some(f64::from_bits(STALE_NAN)));
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad repetition {tok:?}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if let Some(v) = parse_number(tok) {
            out.push(Some(v));
            continue;
        }
        let (body, times) = tok.rsplit_once('x').ok_or_else(|| format!("bad value {tok:?}"))?;
        let times: usize = times.parse().map_err(|_| format!("bad repetition {tok:?}"))?;
        // Find the operator of `a+b` / `a-b`, skipping a leading sign and exponent signs.
        let split = body
            .char_indices()
            .skip(1)
            .find(|&(k, c)| (c == '+' || c == '-') && !matches!(body.as_bytes()[k - 1], b'e' | b'E'));
        let (start, delta) = match split {
            Some((k, c)) => {
                let a = parse_number(&body[..k]).ok_or_else(|| format!("bad value {tok:?}"))?;
                let d = parse_number(&body[k + 1..]).ok_or_else(|| format!("bad value {tok:?}"))?;
                (a, if c == '-' { -d } else { d })
            }
            None => (parse_number(body).ok_or_else(|| format!("bad value {tok:?}"))?, 0.0),
        };
        let mut v = start;
        for _ in 0..=times {
            out.push(Some(v));
            v += delta;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_offsets() {
        let got = parse_start_offsets("_ _x2 -30s-1mx2 1ms +1m 0 -0msx1 10s+5sx1").expect("ok");
        let want = [
            None,
            None,
            None,
            Some(-30_000),
            Some(-90_000),
            Some(-150_000),
            Some(1),
            Some(60_000),
            Some(0),
            Some(0),
            Some(0),
            Some(10_000),
            Some(15_000),
        ];
        assert_eq!(got, want);
        for bad in ["_x0", "_x-1", "1mx-2", "1m+", "1m+1m", "x", "1q"] {
            assert!(parse_start_offsets(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn value_expansion() {
        assert_eq!(parse_values("0x2").expect("ok"), vec![Some(0.0), Some(0.0), Some(0.0)]);
        assert_eq!(
            parse_values("0+10x3").expect("ok"),
            vec![Some(0.0), Some(10.0), Some(20.0), Some(30.0)]
        );
        assert_eq!(
            parse_values("1-1x2 _x2 5").expect("ok"),
            vec![Some(1.0), Some(0.0), Some(-1.0), None, None, Some(5.0)]
        );
        assert_eq!(parse_values("-2x1").expect("ok"), vec![Some(-2.0), Some(-2.0)]);
        assert_eq!(parse_values("1e3+1e2x1").expect("ok"), vec![Some(1000.0), Some(1100.0)]);
    }

    #[test]
    fn series_descriptors() {
        let (l, rest) = parse_series_desc(r#"http_requests{job="api", instance="0"} 1 2"#).expect("ok");
        assert_eq!(l.to_string(), r#"http_requests{instance="0", job="api"}"#);
        assert_eq!(rest, "1 2");
        let (l, _) = parse_series_desc(r#"{"some.metric", a="b"} 1"#).expect("ok");
        assert_eq!(l.metric_name(), Some("some.metric"));
    }
}
