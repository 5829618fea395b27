//! The shapes of a rule unit-test file, read as promtool reads them: unknown fields are errors,
//! a key left empty (`exp_alerts:`) is the empty value, and scalars given where text is
//! expected (`code: 500`) are taken as text.
//!
//! The fields are Prometheus 3's: besides 2.x's, `fuzzy_compare`, `start_timestamp` and a
//! sample's `histogram` (refused when set: vigil has no native histograms).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use vigil_tsdb::Timestamp;

/// A test file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Rule files to test, relative to the test file's directory; globs allowed.
    #[serde(default, deserialize_with = "nullable")]
    pub rule_files: Vec<Text>,
    /// The step of rule evaluation (ms; 0: 1m).
    #[serde(default, deserialize_with = "duration")]
    pub evaluation_interval: i64,
    /// Groups evaluated first, in this order, at each step.
    #[serde(default, deserialize_with = "nullable")]
    pub group_eval_order: Vec<Text>,
    /// The test groups.
    #[serde(default, deserialize_with = "nullable")]
    pub tests: Vec<TestGroup>,
    /// Prometheus 3's last-bit tolerance; vigil always compares with a small tolerance.
    #[serde(default, deserialize_with = "nullable")]
    pub fuzzy_compare: bool,
}

/// Input series and what to expect of them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestGroup {
    /// The step of the input series (ms; 0: the evaluation interval).
    #[serde(default, deserialize_with = "duration")]
    pub interval: i64,
    /// The input series.
    #[serde(default, deserialize_with = "nullable")]
    pub input_series: Vec<InputSeries>,
    /// Alert expectations.
    #[serde(default, deserialize_with = "nullable")]
    pub alert_rule_test: Vec<AlertTestCase>,
    /// Expression expectations.
    #[serde(default, deserialize_with = "nullable")]
    pub promql_expr_test: Vec<PromqlTestCase>,
    /// `$externalLabels` in templates.
    #[serde(default, deserialize_with = "nullable")]
    pub external_labels: BTreeMap<String, Text>,
    /// `$externalURL` in templates.
    #[serde(default)]
    pub external_url: Text,
    /// The group's name in reports.
    #[serde(default)]
    pub name: Text,
    /// The time of the first sample and of evaluation time 0 (ms; default 0, the Unix epoch).
    #[serde(default, deserialize_with = "start_timestamp")]
    pub start_timestamp: Timestamp,
}

/// One input series.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    /// `metric{label="value", ...}`.
    #[serde(default)]
    pub series: Text,
    /// The values in the expanding notation.
    #[serde(default)]
    pub values: Text,
}

/// The alerts expected to fire under one name at one time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTestCase {
    /// When, from the start (ms).
    #[serde(default, deserialize_with = "duration")]
    pub eval_time: i64,
    /// The alert name.
    #[serde(default)]
    pub alertname: Text,
    /// The firing alerts expected; none if empty.
    #[serde(default, deserialize_with = "nullable")]
    pub exp_alerts: Vec<ExpAlert>,
}

/// One expected alert.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpAlert {
    /// Its labels, without `alertname` (which is added).
    #[serde(default, deserialize_with = "nullable")]
    pub exp_labels: BTreeMap<String, Text>,
    /// Its annotations, expanded.
    #[serde(default, deserialize_with = "nullable")]
    pub exp_annotations: BTreeMap<String, Text>,
}

/// An expression and the samples expected of it at one time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromqlTestCase {
    /// The expression.
    #[serde(default)]
    pub expr: Text,
    /// When, from the start (ms).
    #[serde(default, deserialize_with = "duration")]
    pub eval_time: i64,
    /// The samples expected, in any order.
    #[serde(default, deserialize_with = "nullable")]
    pub exp_samples: Vec<ExpSample>,
}

/// One expected sample.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpSample {
    /// A series descriptor: `'x{a="b"}'` or `'{__name__="x", a="b"}'`.
    #[serde(default)]
    pub labels: Text,
    /// The value.
    #[serde(default, deserialize_with = "nullable")]
    pub value: f64,
    /// A native histogram; refused when set.
    #[serde(default)]
    pub histogram: Text,
}

/// Text that may be written as any YAML scalar (`500`, `true`, `~`), as Go's YAML reader fills
/// a string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor).map(Text)
    }
}

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
}

/// A value whose key may be left empty (`exp_alerts:`): then the default.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A Prometheus duration (`1m`, `1h30m`, `0`) in milliseconds; empty is 0.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let Text(s) = Text::deserialize(d)?;
    match s.as_str() {
        "" | "0" => Ok(0),
        _ => vigil_tsdb::time::parse_duration_ms(&s).map_err(de::Error::custom),
    }
}

/// Unix seconds (`1609459200`) or RFC 3339 (`2021-01-01T00:00:00Z`), in milliseconds.
fn start_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    let Text(s) = Text::deserialize(d)?;
    if s.is_empty() {
        return Ok(0);
    }
    vigil_tsdb::time::parse_timestamp(&s).map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_promtools_example() {
        let text = r#"
rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 30s
    input_series:
      - series: 'up{job="prometheus"}'
        values: '0 0 0'
      - series: count
        values: 1
    alert_rule_test:
      - eval_time: 10m
        alertname: InstanceDown
        exp_alerts:
          - exp_labels: { severity: page, code: 500 }
            exp_annotations: { summary: "down" }
      - eval_time: 0
        alertname: Quiet
        exp_alerts:
    promql_expr_test:
      - expr: up
        eval_time: 1h30m
        exp_samples:
          - labels: 'up{job="prometheus"}'
            value: 1e3
    external_labels: { region: eu }
    start_timestamp: 60
"#;
        let f: TestFile = serde_yaml_ng::from_str(text).expect("valid");
        assert_eq!(f.evaluation_interval, 60_000);
        let t = &f.tests[0];
        assert_eq!((t.interval, t.start_timestamp), (30_000, 60_000));
        assert_eq!(t.input_series[1].values.as_str(), "1");
        let a = &t.alert_rule_test[0];
        assert_eq!(a.eval_time, 600_000);
        assert_eq!(a.exp_alerts[0].exp_labels["code"].as_str(), "500");
        assert!(t.alert_rule_test[1].exp_alerts.is_empty());
        assert_eq!(t.promql_expr_test[0].eval_time, 5_400_000);
        assert_eq!(t.promql_expr_test[0].exp_samples[0].value, 1000.0);
        assert_eq!(t.external_labels["region"].as_str(), "eu");
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err = serde_yaml_ng::from_str::<TestFile>("tests:\n  - intervall: 1m\n").expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `intervall`"), "{err}");
        assert!(serde_yaml_ng::from_str::<TestFile>("rule_file: [a.yml]\n").is_err());
        assert!(serde_yaml_ng::from_str::<TestFile>("evaluation_interval: soon\n").is_err());
    }
}
