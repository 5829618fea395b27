//! Seasonal anomaly specs compiled to Prometheus rules.
//!
//! ```text
//!  anomalies.yml ──spec.rs (serde shapes, checks)──> [Anomaly]
//!      [Anomaly] ──generate.rs──> rule-file text ──rules.rs──> [Group]  (what vigil serve evaluates)
//! ```
//!
//! An anomaly compares a signal (traffic, error ratio or a latency quantile) now with the
//! median of the same time on earlier days and weeks, in units of a robust spread (the
//! median absolute deviation of those days, with a floor relative to the baseline), guarded
//! by a minimum traffic, with `for`, `keep_firing_for` and a lower threshold to resolve than
//! to fire. A file whose top level has `anomalies:` is such a spec; [`crate::slo::load_file`]
//! reads it beside rule files and SLO specs. The series and the alert are listed in
//! [`generate`]; `vigil anomaly generate` prints the rule text.

pub mod generate;
pub mod spec;

pub use spec::{Anomaly, Direction, Signal};

use crate::rules::Group;
use crate::slo::SpecError;

/// Checks spec text and compiles it to rule groups; `file` names it in errors and groups.
pub fn compile(text: &str, file: &str) -> Result<(Vec<Anomaly>, Vec<Group>), Vec<SpecError>> {
    let anomalies = spec::parse(text, file)?;
    let groups = generate::groups(&anomalies, file)?;
    Ok((anomalies, groups))
}
