//! The alert state machine of one alerting rule, as Prometheus defines it: a pure function of the
//! previous states, the rule's query result, and the evaluation time.
//!
//! ```text
//!             result has it             held for `for`
//!  inactive ───────────────> pending ─────────────────> firing
//!     ▲                         │ result lacks it         │ result lacks it (and
//!     │                         ▼                         │ `keep_firing_for` has passed)
//!     └────────── dropped ◄─────┘      resolved ◄─────────┘
//! ```
//!
//! A resolved alert is kept for 15 minutes (for the API) and then dropped; if the condition
//! comes back, a new alert starts pending.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_tsdb::{Labels, Timestamp};

/// How long a resolved alert is remembered.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60_000;

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Resolved (or never active).
    Inactive,
    /// The condition holds, for less than `for`.
    Pending,
    /// The condition has held for `for`.
    Firing,
}

impl AlertState {
    /// The Prometheus API's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert: an instance of an alerting rule for one label set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Identity: the result's labels without `__name__`, plus the rule's labels and `alertname`.
    #[serde(with = "labels_serde")]
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: Vec<(String, String)>,
    /// State.
    pub state: AlertState,
    /// When the condition started to hold (ms).
    pub active_at: Timestamp,
    /// When the alert fired.
    pub fired_at: Option<Timestamp>,
    /// When it resolved.
    pub resolved_at: Option<Timestamp>,
    /// Since when the condition has been gone while `keep_firing_for` keeps the alert firing.
    pub keep_firing_since: Option<Timestamp>,
    /// The expression's latest value.
    #[serde(with = "float_serde")]
    pub value: f64,
    /// The expression's value for this alert's series a day before it fired (D-1).
    #[serde(default)]
    pub d1: Option<f64>,
    /// ... and a week before (D-7).
    #[serde(default)]
    pub d7: Option<f64>,
}

impl Alert {
    /// A stable fingerprint of the alert's labels, as 16 hex digits.
    pub fn fingerprint(&self) -> String {
        format!("{:016x}", self.labels.stable_hash())
    }
}

/// A result element turned into an alert candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The alert's labels.
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// What an evaluation changed that is worth telling someone.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// A new alert started pending (for the history; the state machine does not return it).
    Pending(Alert),
    /// Pending became firing.
    Fired(Alert),
    /// Firing became resolved.
    Resolved(Alert),
}

impl Transition {
    /// The alert as it is after the transition.
    pub fn alert(&self) -> &Alert {
        match self {
            Transition::Pending(a) | Transition::Fired(a) | Transition::Resolved(a) => a,
        }
    }
}

/// Two results of one evaluation had the same labels after the rule's labels were applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateLabelset;

/// The alerts of one rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertSet {
    /// By fingerprint of the labels.
    alerts: BTreeMap<u64, Alert>,
}

impl AlertSet {
    /// All alerts, resolved ones included, in fingerprint order.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// Pending and firing alerts.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values().filter(|a| a.state != AlertState::Inactive)
    }

    /// The highest state of any alert.
    pub fn state(&self) -> AlertState {
        self.alerts
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }

    /// One evaluation at `ts` with the candidates from the rule's query.
    pub fn eval(
        &mut self,
        ts: Timestamp,
        candidates: Vec<Candidate>,
        for_ms: i64,
        keep_firing_for_ms: i64,
    ) -> Result<Vec<Transition>, DuplicateLabelset> {
        let mut current: BTreeMap<u64, Candidate> = BTreeMap::new();
        for c in candidates {
            if current.insert(c.labels.stable_hash(), c).is_some() {
                return Err(DuplicateLabelset);
            }
        }
        // New candidates start pending; known active alerts get the new value and annotations.
        for (fp, c) in &current {
            match self.alerts.get_mut(fp) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = c.value;
                    a.annotations.clone_from(&c.annotations);
                }
                _ => {
                    self.alerts.insert(
                        *fp,
                        Alert {
                            labels: c.labels.clone(),
                            annotations: c.annotations.clone(),
                            state: AlertState::Pending,
                            active_at: ts,
                            fired_at: None,
                            resolved_at: None,
                            keep_firing_since: None,
                            value: c.value,
                            d1: None,
                            d7: None,
                        },
                    );
                }
            }
        }
        let mut transitions = Vec::new();
        let mut dropped = Vec::new();
        for (fp, a) in &mut self.alerts {
            if !current.contains_key(fp) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since.get_or_insert(ts);
                    keep_firing = ts - since < keep_firing_for_ms;
                }
                let expired = a.resolved_at.is_some_and(|r| ts - r > RESOLVED_RETENTION_MS);
                if a.state == AlertState::Pending || expired {
                    dropped.push(*fp);
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    let was_firing = a.state == AlertState::Firing;
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(ts);
                    if was_firing {
                        transitions.push(Transition::Resolved(a.clone()));
                    }
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since = None;
            }
            if a.state == AlertState::Pending && ts - a.active_at >= for_ms {
                a.state = AlertState::Firing;
                a.fired_at = Some(ts);
                transitions.push(Transition::Fired(a.clone()));
            }
            // A rule whose `for` grew since the alert fired: back to pending.
            if a.state == AlertState::Firing && ts - a.active_at < for_ms {
                a.state = AlertState::Pending;
                a.fired_at = None;
                a.keep_firing_since = None;
            }
        }
        for fp in dropped {
            self.alerts.remove(&fp);
        }
        Ok(transitions)
    }

    /// Remembers the D-1 and D-7 values of an alert (set when it fires).
    pub fn set_history(&mut self, labels: &Labels, d1: Option<f64>, d7: Option<f64>) {
        if let Some(a) = self.alerts.get_mut(&labels.stable_hash()) {
            a.d1 = d1.filter(|v| v.is_finite());
            a.d7 = d7.filter(|v| v.is_finite());
        }
    }

    /// `ALERTS` and `ALERTS_FOR_STATE` samples for the pending and firing alerts.
    pub fn series(&self) -> Vec<(Labels, f64)> {
        let mut out = Vec::new();
        for a in self.active() {
            let mut b = a.labels.to_builder();
            b.set("__name__", "ALERTS");
            b.set("alertstate", a.state.as_str());
            out.push((b.build(), 1.0));
            let mut b = a.labels.to_builder();
            b.set("__name__", "ALERTS_FOR_STATE");
            out.push((b.build(), a.active_at as f64 / 1000.0));
        }
        out
    }
}

/// Floats as strings in JSON, so NaN and infinities survive.
pub(crate) mod float_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&vigil_tsdb::promql::format_float(*v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            _ => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Labels as a list of pairs in JSON.
pub(crate) mod labels_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use vigil_tsdb::Labels;

    pub(crate) fn serialize<S: Serializer>(l: &Labels, s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(&str, &str)> = l.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        pairs.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        let pairs: Vec<(String, String)> = Vec::deserialize(d)?;
        Ok(Labels::from_pairs(pairs))
    }
}

#[cfg(test)]
mod tests;
