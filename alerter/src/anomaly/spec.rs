//! Anomaly spec files: the YAML shapes (serde, unknown fields refused) and their validation
//! into [`Anomaly`]s, with errors that name the file, the line and the anomaly.
//!
//! ```yaml
//! anomalies:
//!   - name: api-traffic-drop
//!     alert: APITrafficDrop
//!     selector: '{service!="internal"}'
//!     by: [service, route]          # the default
//!     signal: traffic               # or error_ratio, or latency (with quantile: 0.99)
//!     direction: down               # traffic's default; error_ratio and latency: up
//!     window: 3m                    # the current value's window
//!     baseline:
//!       offsets: [1d, 7d, 14d]      # the same time on earlier days; the default 7d, 14d, 21d
//!       window: 10m                 # each earlier value's window
//!       trend: false                # traffic: scale by this week's against last week's
//!     sensitivity: 3                # spreads from the baseline to fire
//!     min_spread: 0.22              # the spread's floor, a share of the baseline
//!     resolve: 0.75                 # resolves at this share of the firing distance
//!     min_traffic: 0.2              # requests/s (expected, for a drop; now, for a rise)
//!     min_value: 0.05               # up: the value must also exceed this
//!     for: 1m
//!     keep_firing_for: 5m
//!     severity: page
//!     labels: { team: api-platform }
//!     annotations: { runbook_url: "https://runbooks.example.com/traffic-drop" }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use vigil_tsdb::Matcher;
use vigil_tsdb::promql::format_float;
use vigil_tsdb::time::{format_duration_ms, parse_duration_ms};

use crate::specfile::{
    Problems, SpecError, SpecErrorKind, SpecList, check_by, check_labels_and_annotations, check_selector, is_identifier,
};
use crate::yaml::Pos;

/// Labels the generated rules set themselves.
const GENERATED_LABELS: [&str; 4] = ["alertname", "anomaly", "severity", "baseline_offset"];

/// The longest baseline offset: the store keeps a few weeks at raw resolution.
const MAX_OFFSET_MS: i64 = 10 * 7 * 86_400_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    anomalies: Vec<AnomalySpec>,
}

/// One anomaly as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnomalySpec {
    name: String,
    alert: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    selector: String,
    #[serde(default = "default_by")]
    by: Vec<String>,
    signal: Signal,
    quantile: Option<f64>,
    direction: Option<Direction>,
    #[serde(default = "default_window")]
    window: String,
    #[serde(default)]
    baseline: BaselineSpec,
    #[serde(default = "default_sensitivity")]
    sensitivity: f64,
    #[serde(default = "default_min_spread")]
    min_spread: f64,
    #[serde(default = "default_resolve")]
    resolve: f64,
    #[serde(default = "default_min_traffic")]
    min_traffic: f64,
    min_value: Option<f64>,
    #[serde(default = "default_for", rename = "for")]
    for_: String,
    #[serde(default = "default_keep_firing_for")]
    keep_firing_for: String,
    #[serde(default = "default_severity")]
    severity: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineSpec {
    #[serde(default = "default_offsets")]
    offsets: Vec<String>,
    #[serde(default = "default_baseline_window")]
    window: String,
    #[serde(default)]
    trend: bool,
}

impl Default for BaselineSpec {
    fn default() -> Self {
        BaselineSpec {
            offsets: default_offsets(),
            window: default_baseline_window(),
            trend: false,
        }
    }
}

fn default_by() -> Vec<String> {
    vec!["service".into(), "route".into()]
}
fn default_window() -> String {
    "5m".into()
}
fn default_offsets() -> Vec<String> {
    vec!["7d".into(), "14d".into(), "21d".into()]
}
fn default_baseline_window() -> String {
    "30m".into()
}
fn default_sensitivity() -> f64 {
    3.0
}
fn default_min_spread() -> f64 {
    0.1
}
fn default_resolve() -> f64 {
    0.75
}
fn default_min_traffic() -> f64 {
    0.1
}
fn default_for() -> String {
    "2m".into()
}
fn default_keep_firing_for() -> String {
    "5m".into()
}
fn default_severity() -> String {
    "page".into()
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Requests per second.
    Traffic,
    /// The share of requests answered with a 5xx.
    ErrorRatio,
    /// A quantile of the request duration, from the histogram.
    Latency,
}

impl Signal {
    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traffic => "traffic",
            Signal::ErrorRatio => "error_ratio",
            Signal::Latency => "latency",
        }
    }
}

/// Which way is anomalous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Below the baseline.
    Down,
    /// Above the baseline.
    Up,
}

/// A checked anomaly, ready to generate rules from.
#[derive(Debug, Clone)]
pub struct Anomaly {
    /// Its name (`anomaly` label of its series and alerts).
    pub name: String,
    /// Where it starts in its file.
    pub pos: Pos,
    /// The alert's name.
    pub alert: String,
    /// What it watches for, in words.
    pub description: String,
    /// The selector's matchers.
    pub matchers: Vec<Matcher>,
    /// The labels it is evaluated per.
    pub by: Vec<String>,
    /// What is measured.
    pub signal: Signal,
    /// The latency quantile (latency only).
    pub quantile: f64,
    /// Which way is anomalous.
    pub direction: Direction,
    /// The current value's window, as written (`3m`).
    pub window: String,
    /// The baseline's offsets, as PromQL durations (`7d`), with their length in days.
    pub offsets: Vec<(String, f64)>,
    /// Each earlier value's window.
    pub baseline_window: String,
    /// Traffic only: scale the baseline by this week's traffic against last week's.
    pub trend: bool,
    /// Spreads from the baseline to fire.
    pub sensitivity: f64,
    /// The spread's floor, a share of the baseline.
    pub min_spread: f64,
    /// The share of the firing distance at which a firing alert resolves.
    pub resolve: f64,
    /// Requests per second below which it does not fire.
    pub min_traffic: f64,
    /// Up: the value must also exceed this.
    pub min_value: Option<f64>,
    /// `for`, as written.
    pub for_: String,
    /// `keep_firing_for`, as written.
    pub keep_firing_for: String,
    /// The `severity` label.
    pub severity: String,
    /// Labels added to the alert.
    pub labels: Vec<(String, String)>,
    /// Annotations that replace or add to the generated ones.
    pub annotations: Vec<(String, String)>,
}

/// Reads spec text; `file` names it in errors. Every anomaly is checked and every error
/// returned.
pub fn parse(text: &str, file: &str) -> Result<Vec<Anomaly>, Vec<SpecError>> {
    let list = SpecList {
        file,
        key: "anomalies",
        what: "anomaly",
    };
    list.parse(
        text,
        |f: SpecFile| f.anomalies,
        |s: &AnomalySpec| s.name.clone(),
        check,
        |a: &Anomaly| (a.name.as_str(), a.pos),
    )
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SpecErrorKind {
    SpecErrorKind::Invalid {
        field,
        reason: reason.into(),
    }
}

/// A duration of at least `min_ms`, written back the way Prometheus prints it.
fn duration(field: &'static str, text: &str, min_ms: i64, max_ms: i64) -> Result<(String, i64), SpecErrorKind> {
    let ms = parse_duration_ms(text).map_err(|e| invalid(field, e))?;
    if ms < min_ms || ms > max_ms {
        return Err(invalid(
            field,
            format!(
                "{text} must be between {} and {}",
                format_duration_ms(min_ms),
                format_duration_ms(max_ms)
            ),
        ));
    }
    Ok((format_duration_ms(ms), ms))
}

fn check(s: AnomalySpec, pos_of: &dyn Fn(&[&str]) -> Pos) -> Result<Anomaly, Problems> {
    let mut problems: Problems = Vec::new();
    let mut problem = |path: &[&str], kind| problems.push((pos_of(path), kind));
    if !is_identifier(&s.name) {
        problem(&["name"], SpecErrorKind::Name(s.name.clone()));
    }
    let alert_ok = s.alert.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.alert.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !alert_ok {
        problem(
            &["alert"],
            invalid(
                "alert",
                format!("{:?} must be a metric-style name: letters, digits and '_'", s.alert),
            ),
        );
    }
    let latency = s.signal == Signal::Latency;
    let quantile = match (s.signal, s.quantile) {
        (Signal::Latency, None) => 0.99,
        (Signal::Latency, Some(q)) if q > 0.0 && q < 1.0 => q,
        (Signal::Latency, Some(q)) => {
            problem(
                &["quantile"],
                invalid("quantile", format!("{q} must be above 0 and below 1")),
            );
            0.99
        }
        (_, None) => f64::NAN,
        (_, Some(_)) => {
            problem(
                &["quantile"],
                invalid("quantile", "only a latency signal has a quantile"),
            );
            f64::NAN
        }
    };
    let direction = s.direction.unwrap_or(match s.signal {
        Signal::Traffic => Direction::Down,
        _ => Direction::Up,
    });
    if direction == Direction::Down && s.signal != Signal::Traffic {
        problem(
            &["direction"],
            invalid(
                "direction",
                "only traffic is watched for a drop (fewer errors or faster answers are no anomaly)",
            ),
        );
    }
    let matchers = check_selector(&s.selector, latency).unwrap_or_else(|kind| {
        problem(&["selector"], kind);
        Vec::new()
    });
    let day = 86_400_000;
    let mut window = |field: &'static str, path: &[&str], text: &str, min, max| match duration(field, text, min, max) {
        Ok((w, _)) => w,
        Err(kind) => {
            problem(path, kind);
            text.to_owned()
        }
    };
    let current_window = window("window", &["window"], &s.window, 60_000, day);
    let baseline_window = window(
        "baseline.window",
        &["baseline", "window"],
        &s.baseline.window,
        60_000,
        day,
    );
    let for_ = window("for", &["for"], &s.for_, 0, day);
    let keep_firing_for = window("keep_firing_for", &["keep_firing_for"], &s.keep_firing_for, 0, day);
    let mut offsets: Vec<(String, f64)> = Vec::new();
    for text in &s.baseline.offsets {
        match duration("baseline.offsets", text, 3_600_000, MAX_OFFSET_MS) {
            Ok((w, _)) if offsets.iter().any(|(o, _)| *o == w) => problem(
                &["baseline", "offsets"],
                invalid("baseline.offsets", format!("{text} is listed twice")),
            ),
            Ok((w, ms)) => offsets.push((w, ms as f64 / day as f64)),
            Err(kind) => problem(&["baseline", "offsets"], kind),
        }
    }
    if s.baseline.offsets.is_empty() {
        problem(
            &["baseline", "offsets"],
            invalid("baseline.offsets", "needs at least one offset"),
        );
    }
    if s.baseline.trend && s.signal != Signal::Traffic {
        problem(
            &["baseline", "trend"],
            invalid("baseline.trend", "only a traffic signal has a weekly trend"),
        );
    }
    let positive = |v: f64| v > 0.0 && v.is_finite();
    if !positive(s.sensitivity) {
        problem(
            &["sensitivity"],
            invalid(
                "sensitivity",
                format!("{} must be a positive number", format_float(s.sensitivity)),
            ),
        );
    }
    if !(s.min_spread >= 0.0 && s.min_spread.is_finite()) {
        problem(
            &["min_spread"],
            invalid(
                "min_spread",
                format!("{} must be 0 or more", format_float(s.min_spread)),
            ),
        );
    }
    if direction == Direction::Down && s.sensitivity * s.min_spread >= 1.0 {
        problem(
            &["min_spread"],
            invalid(
                "min_spread",
                format!(
                    "sensitivity {} times min_spread {} reaches 100% of the baseline: a drop could never fire",
                    format_float(s.sensitivity),
                    format_float(s.min_spread)
                ),
            ),
        );
    }
    if !(s.resolve > 0.0 && s.resolve <= 1.0) {
        problem(
            &["resolve"],
            invalid(
                "resolve",
                format!("{} must be above 0 and at most 1", format_float(s.resolve)),
            ),
        );
    }
    if !(s.min_traffic >= 0.0 && s.min_traffic.is_finite()) {
        problem(&["min_traffic"], SpecErrorKind::MinTraffic(s.min_traffic));
    }
    match (direction, s.min_value) {
        (Direction::Down, Some(_)) => problem(
            &["min_value"],
            invalid("min_value", "only an upward anomaly has a floor for its value"),
        ),
        (Direction::Up, Some(v)) if !(v >= 0.0 && v.is_finite()) => problem(
            &["min_value"],
            invalid("min_value", format!("{} must be 0 or more", format_float(v))),
        ),
        _ => {}
    }
    if !is_identifier(&s.severity) {
        problem(
            &["severity"],
            invalid("severity", format!("{:?} must be a word", s.severity)),
        );
    }
    problems.extend(check_by(&s.by, latency, pos_of));
    problems.extend(check_labels_and_annotations(
        &s.labels,
        &s.annotations,
        &GENERATED_LABELS,
        &s.by,
        pos_of,
    ));
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Anomaly {
        name: s.name,
        pos: pos_of(&[]),
        alert: s.alert,
        description: s.description,
        matchers,
        by: s.by,
        signal: s.signal,
        quantile,
        direction,
        window: current_window,
        offsets,
        baseline_window,
        trend: s.baseline.trend,
        sensitivity: s.sensitivity,
        min_spread: s.min_spread,
        resolve: s.resolve,
        min_traffic: s.min_traffic,
        min_value: s.min_value,
        for_,
        keep_firing_for,
        severity: s.severity,
        labels: s.labels.into_iter().collect(),
        annotations: s.annotations.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
anomalies:
  - name: traffic-drop
    alert: APITrafficDrop
    signal: traffic
    window: 3m
    baseline: { offsets: [1d, 7d, 14d], window: 10m }
    sensitivity: 3
    min_spread: 0.22
    min_traffic: 0.2
    for: 1m
  - name: latency-rise
    alert: APILatencyRise
    selector: '{service="payments"}'
    by: [service]
    signal: latency
    quantile: 0.9
    min_value: 0.05
    labels: { team: payments }
"#;

    fn errors(text: &str) -> Vec<String> {
        match parse(text, "anomalies.yml") {
            Ok(_) => panic!("expected errors"),
            Err(es) => es.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn reads_a_good_file_with_defaults() {
        let a = parse(GOOD, "anomalies.yml").expect("valid");
        assert_eq!(a.len(), 2);
        let t = &a[0];
        assert_eq!((t.name.as_str(), t.pos), ("traffic-drop", Pos { line: 3, col: 5 }));
        assert_eq!((t.signal, t.direction), (Signal::Traffic, Direction::Down));
        assert_eq!(
            t.offsets,
            [("1d".to_owned(), 1.0), ("1w".to_owned(), 7.0), ("2w".to_owned(), 14.0)]
        );
        assert_eq!((t.window.as_str(), t.baseline_window.as_str()), ("3m", "10m"));
        assert_eq!((t.for_.as_str(), t.keep_firing_for.as_str()), ("1m", "5m"));
        let l = &a[1];
        assert_eq!(
            (l.signal, l.direction, l.quantile),
            (Signal::Latency, Direction::Up, 0.9)
        );
        assert_eq!(l.offsets.len(), 3);
        assert_eq!(l.offsets[2].0, "3w");
        assert_eq!((l.window.as_str(), l.baseline_window.as_str()), ("5m", "30m"));
        assert_eq!((l.sensitivity, l.min_spread, l.resolve), (3.0, 0.1, 0.75));
        assert_eq!(l.min_value, Some(0.05));
        assert_eq!(l.severity, "page");
        assert_eq!(l.matchers.len(), 1);
    }

    #[test]
    fn every_anomaly_is_checked_and_named() {
        let text = GOOD
            .replace("quantile: 0.9", "quantile: 1.5")
            .replace("window: 3m", "window: 5s")
            .replace("[1d, 7d, 14d]", "[1d, 7d, 1d, 90m]")
            .replace("alert: APILatencyRise", "alert: API-Latency")
            .replace("min_spread: 0.22", "min_spread: 0.4");
        let e = errors(&text);
        assert!(
            e.iter().any(|e| e.contains("window: 5s must be between 1m and 1d")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|e| e.contains("baseline.offsets: 1d is listed twice")),
            "{e:?}"
        );
        assert!(e.iter().any(|e| e.contains("a drop could never fire")), "{e:?}");
        assert!(
            e.iter()
                .any(|e| e.starts_with("anomalies.yml:13:12: anomaly \"latency-rise\": alert:")),
            "{e:?}"
        );
        assert!(e.iter().any(|e| e.contains("quantile: 1.5 must be above 0")), "{e:?}");
        assert_eq!(e.len(), 5, "{e:?}");
    }

    #[test]
    fn settings_that_do_not_apply_are_refused() {
        let q = GOOD.replace("signal: traffic", "signal: traffic\n    quantile: 0.5");
        assert!(errors(&q)[0].contains("only a latency signal has a quantile"));
        let trend = GOOD.replace("window: 10m }", "window: 10m }\n    min_value: 1");
        assert!(errors(&trend)[0].contains("only an upward anomaly has a floor"));
        let down = GOOD.replace("signal: latency", "signal: latency\n    direction: down");
        assert!(
            errors(&down)[0].contains("only traffic is watched for a drop"),
            "{:?}",
            errors(&down)
        );
        let trend = GOOD.replace("signal: latency", "signal: latency\n    baseline: { trend: true }");
        assert!(errors(&trend)[0].contains("only a traffic signal has a weekly trend"));
        let unknown = GOOD.replace("for: 1m", "for: 1m\n    threshold: 3");
        assert!(
            errors(&unknown)[0].contains("unknown field `threshold`"),
            "{:?}",
            errors(&unknown)
        );
        let dup = GOOD.replace("latency-rise", "traffic-drop");
        assert!(errors(&dup)[0].contains("is already used at anomalies.yml:3:5"));
        let label = GOOD.replace("team: payments", "baseline_offset: x");
        assert!(errors(&label)[0].contains("is set by the generated alerts"));
    }
}
