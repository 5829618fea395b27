//! The warnings and infos (Prometheus's annotations) an eval expects, and the check of an
//! answer's against them.

/// What an eval expects of the annotations (warnings and infos) of its answer, checked as
/// Prometheus's runner does: `expect warn` asks for at least one warning; `expect warn msg:` /
/// `regex:` lines must each match one given warning, and every given warning one of them;
/// `expect no_warn` allows none. The same for infos. Without such lines, nothing is checked.
#[derive(Debug, Default)]
pub(super) struct AnnotationExpectations {
    no_warn: bool,
    no_info: bool,
    warn_match: Vec<TextMatch>,
    info_match: Vec<TextMatch>,
}

/// An expected message: exact (without Prometheus's position suffix, which promql-parser cannot
/// give), or a regular expression.
#[derive(Debug)]
enum TextMatch {
    Exact(String),
    Regex(regex::Regex),
    /// A bare `expect warn` / `expect info`: any message.
    Any,
}

impl TextMatch {
    fn matches(&self, m: &str) -> bool {
        match self {
            TextMatch::Exact(e) => e == m,
            TextMatch::Regex(r) => r.is_match(m),
            TextMatch::Any => true,
        }
    }
}

/// Checks the annotations an eval gave against its expectations.
pub(super) fn check_annotations(exp: &AnnotationExpectations, given: &[String]) -> Result<(), String> {
    let (infos, warnings): (Vec<&String>, Vec<&String>) = given.iter().partition(|m| m.starts_with("PromQL info:"));
    for (kind, none, matchers, got) in [
        ("warning", exp.no_warn, &exp.warn_match, &warnings),
        ("info", exp.no_info, &exp.info_match, &infos),
    ] {
        if !matchers.is_empty() && got.is_empty() {
            return Err(format!("expected {kind} annotations, got none"));
        }
        if none && !got.is_empty() {
            return Err(format!("expected no {kind} annotations, got {got:?}"));
        }
        if matchers.is_empty() {
            continue;
        }
        if let Some(m) = matchers.iter().find(|m| !got.iter().any(|g| m.matches(g))) {
            return Err(format!("expected {kind} matching {m:?}, got {got:?}"));
        }
        if let Some(g) = got.iter().find(|g| !matchers.iter().any(|m| m.matches(g))) {
            return Err(format!("unexpected {kind} {g:?}"));
        }
    }
    Ok(())
}

/// The position at the end of an expected annotation's regex: `\(1:25\)` or
/// `\([0-9]+:[0-9]+\)`, possibly anchored.
static POSITION_TAIL: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"\s*\\\((\d+|\[0-9\]\+):(\d+|\[0-9\]\+)\\\)\$?$").expect("valid regex")
});

/// A warning message without the position Prometheus appends (` (1:6)`), which promql-parser
/// does not give.
pub(super) fn without_position(m: &str) -> &str {
    let Some(open) = m.rfind(" (") else { return m };
    let inner = m[open + 2..].strip_suffix(')').unwrap_or("");
    let is_pos = inner
        .split_once(':')
        .is_some_and(|(l, c)| !l.is_empty() && !c.is_empty() && (l.to_owned() + c).bytes().all(|b| b.is_ascii_digit()));
    if is_pos { &m[..open] } else { m }
}

impl AnnotationExpectations {
    /// Takes an `expect` line's rest (`warn`, `warn msg: ...`, `info regex: ...`, `no_warn`,
    /// `no_info`); other expectations are left to the caller.
    pub(super) fn read(&mut self, rest: &str) -> Result<(), String> {
        let (info, what) = match (rest.strip_prefix("warn"), rest.strip_prefix("info")) {
            (Some(w), _) => (false, w.trim()),
            (_, Some(i)) => (true, i.trim()),
            _ => {
                match rest {
                    "no_warn" => self.no_warn = true,
                    "no_info" => self.no_info = true,
                    _ => {}
                }
                return Ok(());
            }
        };
        let matcher = if let Some(m) = what.strip_prefix("msg:") {
            TextMatch::Exact(without_position(m.trim()).to_owned())
        } else if let Some(r) = what.strip_prefix("regex:") {
            // The position Prometheus ends its messages with is not given here: a regex
            // ending in one (`\(1:25\)`, `\([0-9]+:[0-9]+\)`) is matched without it.
            let r = POSITION_TAIL.replace(r.trim(), "");
            TextMatch::Regex(regex::Regex::new(&r).map_err(|e| format!("bad regex in expectation: {e}"))?)
        } else {
            // A bare `expect warn` asks for at least one, and beside `msg:` lines allows any
            // other, as in Prometheus's runner.
            TextMatch::Any
        };
        if info {
            self.info_match.push(matcher);
        } else {
            self.warn_match.push(matcher);
        }
        Ok(())
    }
}
