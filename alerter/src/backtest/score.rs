//! Scoring a backtest against labelled incidents: which incidents an alert caught and how soon,
//! which firings were echoes of one, and which were false pages.
//!
//! An incident is caught when an alert on its service fires between its start and 30 minutes
//! after its end; the first such firing gives the time to detect. A firing on that service later
//! the same (UTC) day as the incident's end is an echo. Every other firing is a false page.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use vigil_tsdb::Timestamp;

use super::Event;

/// How long after an incident's end a firing still counts as catching it.
pub const GRACE_MS: i64 = 30 * 60_000;
const DAY_MS: i64 = 86_400_000;

/// One labelled incident, as in an incidents file: `{"kind": "outage", "service": "payments",
/// "route": "payments-route", "start": 1796601600, "end": "2026-12-07T10:20:00Z"}` (times in
/// unix seconds or RFC 3339).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    /// `outage`, `error_burst`, `slow_burn`, `latency_rise`, `traffic_drop`, or any other name.
    pub kind: String,
    /// The service hit.
    pub service: String,
    /// The route hit, if one.
    #[serde(default)]
    pub route: Option<String>,
    /// The path hit, if one.
    #[serde(default)]
    pub path: Option<String>,
    /// Start (ms).
    #[serde(deserialize_with = "time_ms")]
    pub start: Timestamp,
    /// End (ms).
    #[serde(deserialize_with = "time_ms")]
    pub end: Timestamp,
}

fn time_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum T {
        Secs(f64),
        Text(String),
    }
    match T::deserialize(d)? {
        T::Secs(s) => Ok((s * 1000.0).round() as Timestamp),
        T::Text(s) => vigil_tsdb::time::parse_timestamp(&s).map_err(serde::de::Error::custom),
    }
}

/// How the incidents of one kind fared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindScore {
    /// Incidents of the kind.
    pub incidents: usize,
    /// Those caught.
    pub caught: usize,
    /// Time to detect of each caught one (ms), in incident order.
    pub detect_ms: Vec<i64>,
}

impl KindScore {
    /// Caught share, 0 to 1 (1 with no incidents).
    pub fn recall(&self) -> f64 {
        if self.incidents == 0 {
            1.0
        } else {
            self.caught as f64 / self.incidents as f64
        }
    }

    /// The longest time to detect (ms).
    pub fn worst_detect_ms(&self) -> Option<i64> {
        self.detect_ms.iter().copied().max()
    }

    /// The median time to detect (ms).
    pub fn median_detect_ms(&self) -> Option<i64> {
        let mut d = self.detect_ms.clone();
        d.sort_unstable();
        d.get(d.len() / 2).copied()
    }
}

/// The whole score.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    /// Per incident kind.
    pub kinds: BTreeMap<String, KindScore>,
    /// Incidents missed: kind, service, start (ms).
    pub missed: Vec<(String, String, Timestamp)>,
    /// Firings after an incident on its service, the same day.
    pub echoes: usize,
    /// Every other firing: alertname, service, time (ms).
    pub false_pages: Vec<(String, String, Timestamp)>,
}

impl Score {
    /// False pages per week over `span_ms`.
    pub fn false_pages_per_week(&self, span_ms: i64) -> f64 {
        self.false_pages.len() as f64 / (span_ms.max(1) as f64 / (7.0 * DAY_MS as f64))
    }
}

/// Scores the firings among `events` against `incidents`.
pub fn score(events: &[Event], incidents: &[Incident]) -> Score {
    let mut s = Score::default();
    let firings: Vec<(&str, &str, Timestamp)> = events
        .iter()
        .filter(|e| e.state == "firing")
        .map(|e| {
            (
                e.labels.get("alertname").unwrap_or_default(),
                e.labels.get("service").unwrap_or_default(),
                e.at,
            )
        })
        .collect();
    let mut explained = vec![false; firings.len()];
    for inc in incidents {
        let k = s.kinds.entry(inc.kind.clone()).or_default();
        k.incidents += 1;
        let mut first: Option<Timestamp> = None;
        for (i, &(_, service, at)) in firings.iter().enumerate() {
            if service != inc.service {
                continue;
            }
            if at >= inc.start && at <= inc.end + GRACE_MS {
                explained[i] = true;
                first = Some(first.map_or(at, |f| f.min(at)));
            }
        }
        match first {
            Some(at) => {
                k.caught += 1;
                k.detect_ms.push(at - inc.start);
            }
            None => s.missed.push((inc.kind.clone(), inc.service.clone(), inc.start)),
        }
    }
    for (i, &(alertname, service, at)) in firings.iter().enumerate() {
        if explained[i] {
            continue;
        }
        let echo = incidents.iter().any(|inc| {
            inc.service == service && at > inc.end + GRACE_MS && at.div_euclid(DAY_MS) == inc.end.div_euclid(DAY_MS)
        });
        if echo {
            s.echoes += 1;
        } else {
            s.false_pages.push((alertname.to_owned(), service.to_owned(), at));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use vigil_tsdb::Labels;

    use super::*;

    fn firing(service: &str, at: Timestamp) -> Event {
        Event {
            at,
            state: "firing",
            labels: Labels::from_pairs([("alertname", "A"), ("service", service)]),
            value: 1.0,
        }
    }

    #[test]
    fn caught_echo_and_false_pages() {
        let min = 60_000;
        let incidents: Vec<Incident> = serde_json::from_str(
            r#"[{"kind": "outage", "service": "pay", "route": "r", "start": 600, "end": 1200},
                {"kind": "outage", "service": "ord", "start": "1970-01-01T00:20:00Z", "end": 1500},
                {"kind": "traffic_drop", "service": "usr", "path": "/x", "start": 3600, "end": 4000}]"#,
        )
        .expect("incidents");
        assert_eq!(incidents[1].start, 20 * min);
        let events = vec![
            firing("pay", 12 * min),  // caught, 2 minutes in
            firing("pay", 9 * min),   // before it: a false page
            firing("pay", 50 * min),  // within the 30-minute grace: caught too
            firing("pay", 300 * min), // later the same day: an echo
            firing("ord", 26 * min),  // caught
            Event {
                state: "pending",
                ..firing("usr", 61 * min)
            },
        ];
        let s = score(&events, &incidents);
        let outage = &s.kinds["outage"];
        assert_eq!((outage.incidents, outage.caught), (2, 2));
        assert_eq!(outage.detect_ms, [2 * min, 6 * min]);
        assert_eq!(s.kinds["traffic_drop"].recall(), 0.0);
        assert_eq!(s.missed, [("traffic_drop".to_owned(), "usr".to_owned(), 60 * min)]);
        assert_eq!(s.echoes, 1);
        assert_eq!(s.false_pages, [("A".to_owned(), "pay".to_owned(), 9 * min)]);
        assert!((s.false_pages_per_week(7 * DAY_MS) - 1.0).abs() < 1e-9);
    }
}
