//! Alertmanager's label matchers: `name="value"`, `name!="value"`, `name=~"regex"`,
//! `name!~"regex"`, in route `matchers:`, inhibition rules, silences and API filters.
//!
//! The text form is Alertmanager's: a list may be wrapped in `{}` and is split at commas outside
//! quotes; values may be quoted (with `\"`, `\\` and `\n` escapes) or bare; regexes are anchored.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};
use vigil_tsdb::Labels;

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MatchType {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchType {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        }
    }
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label's name.
    pub name: String,
    /// The comparison.
    pub kind: MatchType,
    /// The value or the (unanchored) regex as written.
    pub value: String,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.kind == other.kind && self.value == other.value
    }
}

impl Eq for Matcher {}

/// A matcher that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MatcherError(pub String);

impl Matcher {
    /// A matcher; regexes are checked and anchored here.
    pub fn new(name: impl Into<String>, kind: MatchType, value: impl Into<String>) -> Result<Matcher, MatcherError> {
        let (name, value) = (name.into(), value.into());
        let re = match kind {
            MatchType::Regex | MatchType::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| MatcherError(format!("bad regex in matcher {name}: {e}")))?,
            ),
            MatchType::Equal | MatchType::NotEqual => None,
        };
        Ok(Matcher { name, kind, value, re })
    }

    /// `name = value`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            kind: MatchType::Equal,
            value: value.into(),
            re: None,
        }
    }

    /// Whether `value` (empty for a missing label) matches.
    pub fn matches_value(&self, value: &str) -> bool {
        match (self.kind, &self.re) {
            (MatchType::Equal, _) => value == self.value,
            (MatchType::NotEqual, _) => value != self.value,
            (MatchType::Regex, Some(re)) => re.is_match(value),
            (MatchType::NotRegex, Some(re)) => !re.is_match(value),
            (_, None) => false,
        }
    }

    /// Whether the labels match.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name).unwrap_or(""))
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.name, self.kind.as_str(), quote(&self.value))
    }
}

/// A conjunction of matchers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// Whether every matcher matches.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|m| m.matches(labels))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorted by name, value and operator, as Alertmanager keys routes.
    pub fn sorted(mut self) -> Matchers {
        self.0
            .sort_by(|a, b| (&a.name, &a.value, a.kind).cmp(&(&b.name, &b.value, b.kind)));
        self
    }
}

impl fmt::Display for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

/// A quoted value as Alertmanager writes matchers and group keys (OpenMetrics escaping: only
/// `\\`, `"` and newlines are escaped).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parses a list of matchers: `{a="b", c=~"d|e"}` or `a=b,c!=d`.
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, MatcherError> {
    let s = s.trim();
    let s = s.strip_prefix('{').unwrap_or(s);
    let s = s.strip_suffix('}').unwrap_or(s);
    let mut tokens = Vec::new();
    let (mut inside_quotes, mut escaped) = (false, false);
    let mut token = String::new();
    for c in s.chars() {
        match c {
            ',' if !inside_quotes => {
                tokens.push(std::mem::take(&mut token));
                continue;
            }
            '"' if !escaped => inside_quotes = !inside_quotes,
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        token.push(c);
    }
    if !token.trim().is_empty() {
        tokens.push(token);
    }
    tokens.iter().map(|t| parse_matcher(t)).collect()
}

/// Parses one matcher: a label name, an operator and a value, quoted or not.
pub fn parse_matcher(s: &str) -> Result<Matcher, MatcherError> {
    let bad = || MatcherError(format!("bad matcher format: {s}"));
    let t = s.trim();
    let name_len = t
        .char_indices()
        .find(|&(i, c)| !(c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(t.len(), |(i, _)| i);
    if name_len == 0 {
        return Err(bad());
    }
    let (name, rest) = t.split_at(name_len);
    let rest = rest.trim_start();
    let (kind, raw) = [
        ("=~", MatchType::Regex),
        ("!~", MatchType::NotRegex),
        ("!=", MatchType::NotEqual),
        ("=", MatchType::Equal),
    ]
    .iter()
    .find_map(|(op, k)| rest.strip_prefix(op).map(|r| (*k, r.trim())))
    .ok_or_else(bad)?;
    Matcher::new(name, kind, unescape(raw)?)
}

fn unescape(raw: &str) -> Result<String, MatcherError> {
    let (body, mut expect_quote) = match raw.strip_prefix('"') {
        Some(b) => (b, true),
        None => (raw, false),
    };
    let mut out = String::with_capacity(body.len());
    let mut escaped = false;
    let n = body.chars().count();
    for (i, c) in body.chars().enumerate() {
        if escaped {
            escaped = false;
            match c {
                'n' => out.push('\n'),
                '"' | '\\' => out.push(c),
                _ => {
                    out.push('\\');
                    out.push(c);
                }
            }
            continue;
        }
        match c {
            '\\' if i + 1 < n => escaped = true,
            '"' => {
                if !expect_quote || i + 1 < n {
                    return Err(MatcherError(format!(
                        "matcher value contains unescaped double quote: {raw}"
                    )));
                }
                expect_quote = false;
            }
            _ => out.push(c),
        }
    }
    if expect_quote {
        return Err(MatcherError(format!(
            "matcher value contains unescaped double quote: {raw}"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn parses_alertmanager_forms() {
        let ms =
            parse_matchers(r#"{alertname="Api Down", severity=~"page|critical",team!=search, path!~"/internal/.*"}"#)
                .expect("valid");
        let shown: Vec<String> = ms.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                r#"alertname="Api Down""#,
                r#"severity=~"page|critical""#,
                r#"team!="search""#,
                r#"path!~"/internal/.*""#
            ]
        );
        let l = labels(&[("alertname", "Api Down"), ("severity", "page"), ("path", "/v1")]);
        assert!(ms.iter().all(|m| m.matches(&l)));
        assert!(
            !ms[1].matches(&labels(&[("severity", "pagex")])),
            "regexes are anchored"
        );
        assert_eq!(parse_matchers(r#"a="x,y",b=z"#).expect("valid").len(), 2);
        assert_eq!(parse_matchers(r#"a="q\"uote\\""#).expect("valid")[0].value, "q\"uote\\");
        assert_eq!(parse_matchers("").expect("empty list"), Vec::new());
    }

    #[test]
    fn refuses_bad_matchers() {
        for bad in ["=x", "a", r#"a="x"#, r#"a=x"y"#, "a=~(", "1a=b"] {
            assert!(parse_matchers(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_missing_label_is_the_empty_value() {
        let m = parse_matcher(r#"team="""#).expect("valid");
        assert!(m.matches(&labels(&[("x", "y")])));
        let m = parse_matcher("team!~.+").expect("valid");
        assert!(m.matches(&labels(&[])));
    }
}
