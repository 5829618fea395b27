//! Label matchers: `=`, `!=`, `=~`, `!~`, with Prometheus's semantics (regexes are fully anchored,
//! and a missing label matches as the empty string).

use std::fmt;

use regex::Regex;

/// The operator of a [`Matcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

/// Selects series by one label.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The operand as written (a regex source for `=~` and `!~`).
    pub value: String,
    op: MatchOp,
    /// Compiled, anchored regex for `=~` and `!~`.
    re: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher; regexes are anchored at both ends, as in Prometheus.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self, regex::Error> {
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(Regex::new(&format!("^(?s:{value})$"))?),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.into(),
            value,
            op,
            re,
        })
    }

    /// An `=` matcher (cannot fail).
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            value: value.into(),
            op: MatchOp::Equal,
            re: None,
        }
    }

    /// A `!=` matcher (cannot fail).
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            value: value.into(),
            op: MatchOp::NotEqual,
            re: None,
        }
    }

    /// Builds a regex matcher from an already compiled, already anchored regex.
    pub fn with_regex(op: MatchOp, name: impl Into<String>, value: impl Into<String>, re: Regex) -> Self {
        debug_assert!(matches!(op, MatchOp::Regex | MatchOp::NotRegex));
        Matcher {
            name: name.into(),
            value: value.into(),
            op,
            re: Some(re),
        }
    }

    /// The operator.
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// Whether a label value matches (pass `""` for a missing label).
    pub fn matches(&self, v: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Equal, _) => self.value == v,
            (MatchOp::NotEqual, _) => self.value != v,
            (MatchOp::Regex, Some(re)) => re.is_match(v),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(v),
            (MatchOp::Regex | MatchOp::NotRegex, None) => {
                unreachable!("regex matchers are built with a regex")
            }
        }
    }

    /// Whether the matcher selects series that lack the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored() {
        let m = Matcher::new(MatchOp::Regex, "path", "/v1/.*").expect("valid regex");
        assert!(m.matches("/v1/orders"));
        assert!(!m.matches("/x/v1/orders"));
        let m = Matcher::new(MatchOp::Regex, "a", "b|c").expect("valid regex");
        assert!(m.matches("b") && m.matches("c") && !m.matches("bc"));
    }

    #[test]
    fn empty_semantics() {
        assert!(Matcher::equal("a", "").matches_empty());
        assert!(!Matcher::equal("a", "x").matches_empty());
        assert!(Matcher::new(MatchOp::NotEqual, "a", "x").expect("ok").matches_empty());
        assert!(Matcher::new(MatchOp::Regex, "a", ".*").expect("ok").matches_empty());
        assert!(!Matcher::new(MatchOp::Regex, "a", ".+").expect("ok").matches_empty());
        assert!(Matcher::new(MatchOp::NotRegex, "a", ".+").expect("ok").matches_empty());
    }
}
