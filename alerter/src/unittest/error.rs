//! Why a test file, or one of its test groups, could not be run at all.

use std::path::PathBuf;

use super::report::{go_quote, model_duration};
use super::series::SeriesError;
use crate::group::EvalError;
use crate::rules::RuleError;

/// A test file or test group that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum UnitTestError {
    /// The test file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The test file is not valid YAML of the test-file shape.
    #[error("{}: {source}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        source: serde_yaml_ng::Error,
    },
    /// A rule file does not load; printed as `vigil check rules` prints it.
    #[error("  {0}")]
    RuleFile(RuleError),
    /// `group_eval_order` names a group twice.
    #[error("group name repeated in evaluation order: {0}")]
    RepeatedGroup(String),
    /// An alert test without `alertname`.
    #[error(
        "an item under alert_rule_test misses required attribute alertname at eval_time {}{}",
        model_duration(*eval_time_ms),
        in_group(group)
    )]
    MissingAlertname {
        /// Its `eval_time`.
        eval_time_ms: i64,
        /// The test group's name, if it has one.
        group: String,
    },
    /// An input series that does not parse.
    #[error("input series {series:?}: {source}")]
    InputSeries {
        /// The descriptor as written.
        series: String,
        /// Why.
        source: SeriesError,
    },
    /// An input series' values that do not parse.
    #[error("input series {series:?}, values {values:?}: {source}")]
    InputValues {
        /// The descriptor as written.
        series: String,
        /// The values as written.
        values: String,
        /// Why.
        source: SeriesError,
    },
    /// The scratch store refused the input samples.
    #[error("loading the input series: {0}")]
    Store(#[from] vigil_tsdb::Error),
}

fn in_group(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" (in TestGroup {name})")
    }
}

/// Why a `promql_expr_test` could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum ExprTestError {
    /// The expression does not parse or evaluate, or its result is not a vector or a scalar.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// An expected sample's labels do not parse.
    #[error("labels {}: {source}", go_quote(text))]
    Labels {
        /// The labels as written.
        text: String,
        /// Why.
        source: SeriesError,
    },
}
