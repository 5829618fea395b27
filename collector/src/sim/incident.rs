//! Scripted incidents: what goes wrong, where, and when.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use vigil_tsdb::Timestamp;
use vigil_tsdb::time::{format_duration_ms, parse_duration_ms};

/// What an incident does to its route.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum IncidentKind {
    /// This share of requests fail with 5xx (mostly 503).
    ErrorBurst {
        /// Share of failing requests, 0 to 1.
        error_rate: f64,
    },
    /// Latencies are multiplied by `factor`.
    LatencyRise {
        /// Latency multiplier.
        factor: f64,
    },
    /// Traffic is multiplied by `factor` (0.1 keeps a tenth).
    TrafficDrop {
        /// Traffic multiplier.
        factor: f64,
    },
    /// Traffic is multiplied by `factor` (1.25: a busy day). Not a fault: rules must stay quiet.
    TrafficSurge {
        /// Traffic multiplier.
        factor: f64,
    },
}

/// An incident at absolute times.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// Service hit (any when `None`).
    pub service: Option<String>,
    /// Route hit (any of the service's when `None`).
    pub route: Option<String>,
    /// Start, epoch milliseconds.
    pub start: Timestamp,
    /// End (exclusive), epoch milliseconds.
    pub end: Timestamp,
    /// What happens.
    pub kind: IncidentKind,
}

impl Incident {
    /// Whether the incident affects (service, route) at time `t`.
    pub fn applies(&self, service: &str, route: &str, t: Timestamp) -> bool {
        (self.start..self.end).contains(&t)
            && self.service.as_deref().is_none_or(|s| s == service)
            && self.route.as_deref().is_none_or(|r| r == route)
    }
}

/// An incident relative to the start of live traffic, as written in a scenario file or on the
/// command line: `error_burst:payments/payments-route@30s+3m:0.4`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentSpec {
    /// Service hit.
    #[serde(default)]
    pub service: Option<String>,
    /// Route hit.
    #[serde(default)]
    pub route: Option<String>,
    /// Delay after the start of live traffic.
    #[serde(with = "duration_str")]
    pub start: i64,
    /// How long it lasts.
    #[serde(with = "duration_str")]
    pub duration: i64,
    /// What happens.
    #[serde(flatten)]
    pub kind: IncidentKind,
}

impl IncidentSpec {
    /// The incident with `origin` as time zero.
    pub fn at(&self, origin: Timestamp) -> Incident {
        Incident {
            service: self.service.clone(),
            route: self.route.clone(),
            start: origin + self.start,
            end: origin + self.start + self.duration,
            kind: self.kind,
        }
    }
}

impl FromStr for IncidentSpec {
    type Err = String;

    /// `KIND:[SERVICE]/[ROUTE]@START+DURATION[:VALUE]`, e.g. `latency_rise:orders/@1m+5m:4`.
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "invalid incident {s:?}: expected KIND:SERVICE/ROUTE@START+DURATION[:VALUE], e.g. error_burst:payments/payments-route@30s+3m:0.4"
            )
        };
        let (kind, rest) = s.split_once(':').ok_or_else(usage)?;
        let (target, rest) = rest.split_once('@').ok_or_else(usage)?;
        let (times, value) = match rest.split_once(':') {
            Some((t, v)) => (t, Some(v.parse::<f64>().map_err(|_| usage())?)),
            None => (rest, None),
        };
        let (start, duration) = times.split_once('+').ok_or_else(usage)?;
        let (service, route) = target.split_once('/').unwrap_or((target, ""));
        let opt = |x: &str| (!x.is_empty()).then(|| x.to_owned());
        let kind = match kind {
            "error_burst" => IncidentKind::ErrorBurst {
                error_rate: value.unwrap_or(0.3),
            },
            "latency_rise" => IncidentKind::LatencyRise {
                factor: value.unwrap_or(5.0),
            },
            "traffic_drop" => IncidentKind::TrafficDrop {
                factor: value.unwrap_or(0.1),
            },
            "traffic_surge" => IncidentKind::TrafficSurge {
                factor: value.unwrap_or(1.25),
            },
            _ => return Err(usage()),
        };
        Ok(IncidentSpec {
            service: opt(service),
            route: opt(route),
            start: parse_duration_ms(start)?,
            duration: parse_duration_ms(duration)?,
            kind,
        })
    }
}

impl fmt::Display for IncidentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, value) = match self.kind {
            IncidentKind::ErrorBurst { error_rate } => ("error_burst", error_rate),
            IncidentKind::LatencyRise { factor } => ("latency_rise", factor),
            IncidentKind::TrafficDrop { factor } => ("traffic_drop", factor),
            IncidentKind::TrafficSurge { factor } => ("traffic_surge", factor),
        };
        write!(
            f,
            "{kind}:{}/{}@{}+{}:{value}",
            self.service.as_deref().unwrap_or(""),
            self.route.as_deref().unwrap_or(""),
            format_duration_ms(self.start),
            format_duration_ms(self.duration)
        )
    }
}

mod duration_str {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        vigil_tsdb::time::parse_duration_ms(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_compact_form() {
        let s: IncidentSpec = "error_burst:payments/payments-route@30s+3m:0.4".parse().expect("valid");
        assert_eq!(s.service.as_deref(), Some("payments"));
        assert_eq!(s.route.as_deref(), Some("payments-route"));
        assert_eq!((s.start, s.duration), (30_000, 180_000));
        assert_eq!(s.kind, IncidentKind::ErrorBurst { error_rate: 0.4 });
        assert_eq!(s.to_string(), "error_burst:payments/payments-route@30s+3m:0.4");
        let i = s.at(1_000_000);
        assert!(i.applies("payments", "payments-route", 1_030_000));
        assert!(!i.applies("payments", "refunds-route", 1_030_000));
        assert!(!i.applies("payments", "payments-route", 1_210_000));
        assert!("boom".parse::<IncidentSpec>().is_err());
    }
}
