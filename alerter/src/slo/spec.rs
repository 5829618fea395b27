//! SLO spec files: the YAML shapes (serde, unknown fields refused) and their validation into
//! [`Slo`]s, with errors that name the file, the line and the SLO.
//!
//! ```yaml
//! slos:
//!   - name: payments-availability
//!     description: Payments answer without a 5xx.
//!     selector: '{service="payments", route=~"pay.*"}'
//!     by: [service, route]          # the default
//!     objective: 99.9               # percent
//!     period: 30d                   # or 28d
//!     sli:
//!       availability: {}            # or latency: { threshold: 0.5 }
//!     min_traffic: 0.1              # requests per second; the default
//!     labels: { team: payments }
//!     annotations: { runbook_url: "https://runbooks.example.com/payments" }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use vigil_tsdb::Matcher;
use vigil_tsdb::promql::format_float;

pub use crate::specfile::{DURATION_SERIES, REQUESTS_SERIES, SpecError, SpecErrorKind};
use crate::specfile::{Problems, SpecList, check_by, check_labels_and_annotations, check_selector, is_identifier};
use crate::yaml::Pos;

/// Labels the generated alerts set themselves.
const GENERATED_LABELS: [&str; 4] = ["alertname", "slo", "objective", "severity"];

/// Objectives may have this many decimals (99.9999 is four): the budget is written exactly.
const MAX_OBJECTIVE_DECIMALS: usize = 6;

/// The default `min_traffic`, requests per second over the long window of an alert.
///
/// 0.1 req/s is 360 requests an hour. At 99.9 % the page on the 1-hour window needs 1.44 % of
/// them to fail, six requests or more, so a single failed request cannot page; below it, a
/// route serving a handful of requests an hour would page on one timeout. Tighter objectives
/// want more traffic per failure (at 99.99 % one error in 360 already burns 28x): raise
/// `min_traffic` with them (`vigil slo check` says when one error can page). The short window
/// must fail at least as many requests as its threshold means at `min_traffic` (its factor
/// times the budget times `min_traffic` times its length): at night a route may serve a few
/// requests in it, and a few failed ones would put its ratio over a ticket's threshold while
/// the long window still holds an incident of the day before; an incident at night fails many
/// more, and still alerts at once. At 0.1 req/s and 99.9 % that is only 2.2 failures in a
/// ticket's 2 or 6 hours; at 1 req/s (rules/api-health), 22.
pub const DEFAULT_MIN_TRAFFIC: f64 = 0.1;

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    slos: Vec<SloSpec>,
}

/// One SLO as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// A label-safe identifier: the `slo` label of every series and alert.
    pub name: String,
    /// What the SLO promises, in words.
    #[serde(default)]
    pub description: String,
    /// PromQL label matchers on the request series, `{service="payments"}`; empty: every request.
    #[serde(default)]
    pub selector: String,
    /// The labels the SLO is evaluated per.
    #[serde(default = "default_by")]
    pub by: Vec<String>,
    /// Percent of good requests, e.g. 99.9.
    pub objective: f64,
    /// The error budget's period.
    #[serde(default)]
    pub period: Period,
    /// What a good request is.
    pub sli: SliSpec,
    /// Requests per second over an alert's long window below which it does not fire (and the
    /// failures its threshold means at that rate, in the short window).
    #[serde(default = "default_min_traffic")]
    pub min_traffic: f64,
    /// Labels added to the alerts.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to (or replacing those of) the alerts: `runbook_url`, `summary`, ...
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn default_by() -> Vec<String> {
    vec!["service".into(), "route".into()]
}

fn default_min_traffic() -> f64 {
    DEFAULT_MIN_TRAFFIC
}

/// The SLI as written: `availability: {}` or `latency: { threshold: 0.5 }`, exactly one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliSpec {
    /// Good: not a 5xx.
    pub availability: Option<AvailabilitySpec>,
    /// Good: answered within a bucket bound of the request-duration histogram.
    pub latency: Option<LatencySpec>,
}

/// `availability: {}` (nothing to set).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilitySpec {}

/// `latency: { threshold: 0.5 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySpec {
    /// Seconds; must be a bucket bound of the histogram.
    pub threshold: f64,
}

/// The error budget's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Period {
    /// Four weeks: every weekday the same number of times.
    #[serde(rename = "28d")]
    Days28,
    /// Thirty days, about a month.
    #[default]
    #[serde(rename = "30d")]
    Days30,
}

impl Period {
    /// As written: `28d`, `30d`.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Days28 => "28d",
            Period::Days30 => "30d",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The SLO as checked.

/// A checked SLO, ready to generate rules from.
#[derive(Debug, Clone)]
pub struct Slo {
    /// Its name (`slo` label).
    pub name: String,
    /// Where it starts in its file.
    pub pos: Pos,
    /// What it promises, in words.
    pub description: String,
    /// The selector's matchers, in the order written.
    pub matchers: Vec<Matcher>,
    /// The labels it is evaluated per.
    pub by: Vec<String>,
    /// The objective.
    pub objective: Objective,
    /// The budget's period.
    pub period: Period,
    /// What a good request is.
    pub sli: Sli,
    /// Requests per second over an alert's long window below which it does not fire (and the
    /// failures its threshold means at that rate, in the short window).
    pub min_traffic: f64,
    /// Labels added to the alerts, by name.
    pub labels: Vec<(String, String)>,
    /// Annotations that replace or add to the generated ones, by name.
    pub annotations: Vec<(String, String)>,
}

/// What a good request is, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Sli {
    /// Not a 5xx.
    Availability,
    /// Within `threshold` seconds: the `le` bucket `le` of the duration histogram.
    Latency {
        /// Seconds, one of the histogram's bounds.
        threshold: f64,
        /// The bucket's `le` label as the collector writes it.
        le: String,
    },
}

impl Sli {
    /// `availability` or `latency`.
    pub fn kind(&self) -> &'static str {
        match self {
            Sli::Availability => "availability",
            Sli::Latency { .. } => "latency",
        }
    }
}

/// An objective in percent, with its ratio and the error budget written exactly in decimal
/// (99.9 -> `0.999` and `0.001`, not `0.0010000000000000009`).
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// Percent, e.g. 99.9.
    pub percent: f64,
    /// Percent as written in labels, `99.9`.
    pub percent_text: String,
    /// The objective as a ratio, `0.999`.
    pub ratio_text: String,
    /// The error budget as a ratio, `0.001`.
    pub budget_text: String,
    /// The error budget in percent, `0.1`.
    pub budget_percent_text: String,
    /// The error budget as a number.
    pub budget: f64,
}

impl Objective {
    /// Checks a percentage: above 0, below 100, at most six decimals.
    fn new(percent: f64) -> Option<Objective> {
        if !(percent > 0.0 && percent < 100.0) {
            return None;
        }
        // Rust prints the shortest decimal that reads back as the same number, never with an
        // exponent: the percentage as the user wrote it.
        let text = format!("{percent}");
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        if frac.len() > MAX_OBJECTIVE_DECIMALS {
            return None;
        }
        let digits: u64 = format!("{int}{frac}").parse().ok()?;
        let scale = frac.len() as u32 + 2;
        let budget_digits = 100 * 10u64.pow(frac.len() as u32) - digits;
        let budget_text = decimal(budget_digits, scale);
        Some(Objective {
            percent,
            budget_percent_text: decimal(budget_digits, scale - 2),
            percent_text: text.clone(),
            ratio_text: decimal(digits, scale),
            budget: budget_text.parse().ok()?,
            budget_text,
        })
    }
}

/// `digits / 10^scale` in decimal, without trailing zeros.
fn decimal(digits: u64, scale: u32) -> String {
    let s = format!("{digits:0>width$}", width = scale as usize + 1);
    let (int, frac) = s.split_at(s.len() - scale as usize);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and checking.

/// Reads spec text; `file` names it in errors, `buckets` are the duration histogram's bounds
/// (seconds, ascending) that latency thresholds must be one of. Every SLO is checked and every
/// error returned.
pub fn parse(text: &str, file: &str, buckets: &[f64]) -> Result<Vec<Slo>, Vec<SpecError>> {
    let items = SpecList {
        file,
        key: "slos",
        what: "SLO",
    };
    items.parse(
        text,
        |f: SpecFile| f.slos,
        |s: &SloSpec| s.name.clone(),
        |s, pos_of| check(s, buckets, pos_of),
        |slo: &Slo| (slo.name.as_str(), slo.pos),
    )
}

fn check(s: SloSpec, buckets: &[f64], pos_of: &dyn Fn(&[&str]) -> Pos) -> Result<Slo, Problems> {
    let mut problems: Problems = Vec::new();
    if !is_identifier(&s.name) {
        problems.push((pos_of(&["name"]), SpecErrorKind::Name(s.name.clone())));
    }
    let objective = Objective::new(s.objective);
    if objective.is_none() {
        problems.push((pos_of(&["objective"]), SpecErrorKind::Objective(s.objective)));
    }
    let sli = match (&s.sli.availability, &s.sli.latency) {
        (Some(_), None) => Some(Sli::Availability),
        (None, Some(l)) => match check_threshold(l.threshold, buckets) {
            Ok(sli) => Some(sli),
            Err(kind) => {
                problems.push((pos_of(&["sli", "latency", "threshold"]), kind));
                None
            }
        },
        _ => {
            problems.push((pos_of(&["sli"]), SpecErrorKind::Sli));
            None
        }
    };
    let latency = s.sli.latency.is_some();
    let matchers = match check_selector(&s.selector, latency) {
        Ok(m) => m,
        Err(kind) => {
            problems.push((pos_of(&["selector"]), kind));
            Vec::new()
        }
    };
    problems.extend(check_by(&s.by, latency, pos_of));
    if !(s.min_traffic >= 0.0 && s.min_traffic.is_finite()) {
        problems.push((pos_of(&["min_traffic"]), SpecErrorKind::MinTraffic(s.min_traffic)));
    }
    problems.extend(check_labels_and_annotations(
        &s.labels,
        &s.annotations,
        &GENERATED_LABELS,
        &s.by,
        pos_of,
    ));
    match (objective, sli) {
        (Some(objective), Some(sli)) if problems.is_empty() => Ok(Slo {
            name: s.name,
            pos: pos_of(&[]),
            description: s.description,
            matchers,
            by: s.by,
            objective,
            period: s.period,
            sli,
            min_traffic: s.min_traffic,
            labels: s.labels.into_iter().collect(),
            annotations: s.annotations.into_iter().collect(),
        }),
        _ => Err(problems),
    }
}

fn check_threshold(threshold: f64, buckets: &[f64]) -> Result<Sli, SpecErrorKind> {
    let close = |b: f64| (b - threshold).abs() <= 1e-9 * b.abs();
    if threshold > 0.0
        && threshold.is_finite()
        && let Some(&bound) = buckets.iter().find(|b| close(**b))
    {
        return Ok(Sli::Latency {
            threshold: bound,
            le: format_float(bound),
        });
    }
    Err(SpecErrorKind::Threshold {
        threshold,
        below: buckets.iter().copied().filter(|b| *b < threshold).reduce(f64::max),
        above: buckets.iter().copied().filter(|b| *b > threshold).reduce(f64::min),
    })
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKETS: [f64; 11] = crate::slo::DEFAULT_BUCKETS;

    const GOOD: &str = r#"
slos:
  - name: payments-availability
    description: Payments answer without a 5xx.
    selector: '{service="payments", route=~"pay.*"}'
    objective: 99.9
    period: 28d
    sli:
      availability: {}
    labels: { team: payments }
    annotations:
      runbook_url: https://runbooks.example.com/payments
  - name: search-latency
    by: [service]
    objective: 99
    sli:
      latency: { threshold: 0.25 }
"#;

    fn errors(text: &str) -> Vec<String> {
        match parse(text, "slos.yml", &BUCKETS) {
            Ok(_) => panic!("expected errors"),
            Err(es) => es.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn reads_a_good_file() {
        let slos = parse(GOOD, "slos.yml", &BUCKETS).expect("valid");
        assert_eq!(slos.len(), 2);
        let p = &slos[0];
        assert_eq!(p.name, "payments-availability");
        assert_eq!(p.pos, Pos { line: 3, col: 5 });
        assert_eq!(p.by, ["service", "route"]);
        assert_eq!(p.period, Period::Days28);
        assert_eq!(
            (p.objective.ratio_text.as_str(), p.objective.budget_text.as_str()),
            ("0.999", "0.001")
        );
        assert_eq!(p.min_traffic, DEFAULT_MIN_TRAFFIC);
        let m: Vec<String> = p.matchers.iter().map(ToString::to_string).collect();
        assert_eq!(m, [r#"service="payments""#, r#"route=~"pay.*""#]);
        assert_eq!(p.labels, [("team".to_owned(), "payments".to_owned())]);
        let s = &slos[1];
        assert_eq!(s.period, Period::Days30);
        assert_eq!(
            s.sli,
            Sli::Latency {
                threshold: 0.25,
                le: "0.25".into()
            }
        );
        assert_eq!(s.objective.budget_text, "0.01");
    }

    #[test]
    fn objectives_are_exact_decimals() {
        let o = |p: f64| Objective::new(p).map(|o| (o.ratio_text, o.budget_text));
        assert_eq!(o(99.9), Some(("0.999".into(), "0.001".into())));
        assert_eq!(o(99.95), Some(("0.9995".into(), "0.0005".into())));
        assert_eq!(o(99.0), Some(("0.99".into(), "0.01".into())));
        assert_eq!(o(50.0), Some(("0.5".into(), "0.5".into())));
        assert_eq!(o(99.999999), Some(("0.99999999".into(), "0.00000001".into())));
        assert_eq!(o(99.9999999), None);
        assert_eq!(o(100.0), None);
        assert_eq!(o(0.0), None);
        assert_eq!(o(f64::NAN), None);
    }

    #[test]
    fn a_threshold_between_buckets_names_its_neighbours() {
        let text = GOOD.replace("threshold: 0.25", "threshold: 0.3");
        assert_eq!(
            errors(&text),
            [concat!(
                "slos.yml:17:29: SLO \"search-latency\": latency threshold 0.3s is not a bucket bound ",
                "of vigil_http_request_duration_seconds: the nearest bounds are 0.25s and 0.5s"
            )]
        );
        let above = GOOD.replace("threshold: 0.25", "threshold: 30");
        assert!(
            errors(&above)[0].ends_with("the largest bound is 10s"),
            "{:?}",
            errors(&above)
        );
        let below = GOOD.replace("threshold: 0.25", "threshold: 0.001");
        assert!(errors(&below)[0].ends_with("the smallest bound is 0.005s"));
        let zero = GOOD.replace("threshold: 0.25", "threshold: 0");
        assert!(errors(&zero)[0].contains("must be a positive number of seconds"));
    }

    #[test]
    fn unknown_fields_name_file_line_and_slo() {
        let text = GOOD.replace("    by: [service]", "    by: [service]\n    windows: [1h]");
        let e = errors(&text);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("slos.yml:15:5: SLO \"search-latency\": "), "{e:?}");
        assert!(e[0].contains("unknown field `windows`"), "{e:?}");
        let sli = GOOD.replace("availability: {}", "availability: { x: 1 }");
        assert!(errors(&sli)[0].starts_with("slos.yml:9:"), "{:?}", errors(&sli));
        assert!(errors(&sli)[0].contains("SLO \"payments-availability\""));
        let period = GOOD.replace("period: 28d", "period: 7d");
        assert!(errors(&period)[0].contains("unknown variant `7d`, expected `28d` or `30d`"));
        let top = format!("{GOOD}groups: []\n");
        assert!(errors(&top)[0].contains("unknown field `groups`"), "{:?}", errors(&top));
        assert!(errors("slos: [\n")[0].starts_with("slos.yml:2:"));
    }

    #[test]
    fn every_slo_is_checked_and_named() {
        let text = GOOD
            .replace("objective: 99.9", "objective: 100")
            .replace("by: [service]", "by: [service, status, service]")
            .replace(r#"route=~"pay.*""#, r#"rout=~"pay.*""#);
        let e = errors(&text);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("slos.yml:6:16: SLO \"payments-availability\": objective 100 must be"));
        assert!(e[1].contains(r#"selector: "rout" is not a label of vigil_http_requests_total (known: service, route, path, method, status)"#), "{e:?}");
        assert!(e[2].starts_with("slos.yml:14:9: SLO \"search-latency\": by: \"status\" is not a label"));
        assert!(e[3].contains("by: \"service\" is listed twice"));
    }

    #[test]
    fn selectors_are_label_matchers_on_known_labels() {
        let sel = |s: &str| check_selector(s, false).map(|m| m.len());
        assert_eq!(sel(""), Ok(0));
        assert_eq!(sel("{}"), Ok(0));
        assert_eq!(sel(r#"{route=~".*"}"#), Ok(1));
        assert_eq!(sel(r#"{status!~"4..", service="a"}"#), Ok(2));
        assert!(sel(r#"service="a""#).is_err());
        assert!(sel(r#"{service="a"} offset 5m"#).is_err());
        assert!(sel(r#"{service="a" or service="b"}"#).is_err());
        assert!(sel(r#"{__name__="x"}"#).is_err());
        assert!(sel(r#"{le="0.5"}"#).is_err());
        // The latency histogram has no status.
        assert!(check_selector(r#"{status="200"}"#, true).is_err());
    }

    #[test]
    fn names_labels_and_annotations_are_checked() {
        let dup = GOOD.replace("search-latency", "payments-availability");
        assert!(
            errors(&dup)[0].contains("name \"payments-availability\" is already used at slos.yml:3:5"),
            "{:?}",
            errors(&dup)
        );
        let bad_name = GOOD.replace("search-latency", "search latency");
        assert!(errors(&bad_name)[0].contains("must start with a letter"));
        let label = GOOD.replace("team: payments", "severity: low");
        assert!(errors(&label)[0].contains("labels: \"severity\" is set by the generated alerts"));
        let label = GOOD.replace("team: payments", "route: x");
        assert!(errors(&label)[0].contains("\"route\" is set by the generated alerts"));
        let template = GOOD.replace(
            "runbook_url: https://runbooks.example.com/payments",
            "summary: '{{ nosuch }}'",
        );
        let e = errors(&template);
        assert!(
            e[0].starts_with("slos.yml:12:16: SLO \"payments-availability\": annotations.summary: template:"),
            "{e:?}"
        );
        let traffic = GOOD.replace("    by: [service]", "    by: [service]\n    min_traffic: -1");
        assert!(errors(&traffic)[0].contains("min_traffic -1 must be"));
    }

    #[test]
    fn hostile_yaml_is_refused_before_serde() {
        let alias = "slos:\n  - &a\n    name: x\n  - *a\n";
        assert!(errors(alias)[0].contains("aliases"));
        let deep = format!("slos: {}1{}", "[".repeat(100), "]".repeat(100));
        assert!(errors(&deep)[0].contains("deeper than 64"));
    }
}
