//! Grouping: alerts routed to the same route with the same values of its `group_by` labels form
//! an aggregation group, flushed `group_wait` after it was created and every `group_interval`
//! after that, as Alertmanager's dispatcher does. Time is an argument; nothing here sleeps.

use std::collections::BTreeMap;

use vigil_tsdb::{Labels, Timestamp};

use super::alerts::PipelineAlert;
use super::plan::{Route, label_set_string};

/// One group's alerts at a flush.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupFlush {
    /// The route's id.
    pub route_id: String,
    /// Alertmanager's group key: `<route key>:<group labels>`.
    pub key: String,
    /// The group's labels.
    pub labels: Labels,
    /// Every alert of the group, firing and resolved, in fingerprint order.
    pub alerts: Vec<PipelineAlert>,
}

#[derive(Debug)]
struct AggrGroup {
    key: String,
    labels: Labels,
    alerts: BTreeMap<u64, PipelineAlert>,
    next_flush: Timestamp,
    flushed: bool,
    group_wait: i64,
    group_interval: i64,
}

/// The aggregation groups.
#[derive(Debug, Default)]
pub struct Dispatcher {
    groups: BTreeMap<(String, u64), AggrGroup>,
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Dispatcher {
    /// Puts an alert into its group on `route` (creating the group), replacing an earlier
    /// version of it.
    pub fn insert(&mut self, route: &Route, alert: PipelineAlert, now: Timestamp) {
        let labels = route.group_labels(&alert.labels);
        let id = (route.id.clone(), labels.stable_hash());
        let group = self.groups.entry(id).or_insert_with(|| AggrGroup {
            key: format!("{}:{}", route.key, label_set_string(&labels)),
            labels,
            alerts: BTreeMap::new(),
            next_flush: now.saturating_add(ms(route.opts.group_wait)),
            flushed: false,
            group_wait: ms(route.opts.group_wait),
            group_interval: ms(route.opts.group_interval).max(1),
        });
        // An alert that has been active longer than the group wait is not held back.
        if !group.flushed && alert.starts_at.saturating_add(group.group_wait) < now {
            group.next_flush = group.next_flush.min(now);
        }
        group.alerts.insert(alert.fingerprint(), alert);
    }

    /// The groups due at `now`, each flushed again `group_interval` later.
    pub fn due(&mut self, now: Timestamp) -> Vec<GroupFlush> {
        let mut out = Vec::new();
        for ((route_id, _), g) in &mut self.groups {
            if g.next_flush > now || g.alerts.is_empty() {
                continue;
            }
            g.flushed = true;
            g.next_flush = now.saturating_add(g.group_interval);
            out.push(GroupFlush {
                route_id: route_id.clone(),
                key: g.key.clone(),
                labels: g.labels.clone(),
                alerts: g.alerts.values().cloned().collect(),
            });
        }
        out
    }

    /// After a flush was handled: resolved alerts it carried (and that have not changed since)
    /// leave their group, and empty groups are dropped.
    pub fn flushed(&mut self, flush: &GroupFlush, now: Timestamp) {
        let id = (flush.route_id.clone(), flush.labels.stable_hash());
        let Some(g) = self.groups.get_mut(&id) else { return };
        for a in &flush.alerts {
            let fp = a.fingerprint();
            if a.resolved(now) && g.alerts.get(&fp) == Some(a) {
                g.alerts.remove(&fp);
            }
        }
        if g.alerts.is_empty() {
            self.groups.remove(&id);
        }
    }

    /// When the next group is due, if any.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.groups.values().map(|g| g.next_flush).min()
    }

    /// How many groups and alerts in them.
    pub fn size(&self) -> (usize, usize) {
        (self.groups.len(), self.groups.values().map(|g| g.alerts.len()).sum())
    }

    /// Each group's route id, key, labels and alerts, for the API.
    pub fn groups(&self) -> impl Iterator<Item = (&str, &str, &Labels, Vec<&PipelineAlert>)> {
        self.groups
            .iter()
            .map(|((route, _), g)| (route.as_str(), g.key.as_str(), &g.labels, g.alerts.values().collect()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::notify::plan::{GroupBy, RouteOpts};

    pub(crate) fn alert(name: &str, service: &str, route: &str, starts_at: Timestamp) -> PipelineAlert {
        PipelineAlert {
            labels: Labels::from_pairs([("alertname", name), ("service", service), ("route", route)]),
            annotations: Vec::new(),
            starts_at,
            fired_at: starts_at,
            ends_at: None,
            value: 1.0,
            d1: None,
            d7: None,
            rule_group: "g".into(),
            expr: "x".into(),
            ack: None,
        }
    }

    fn route() -> Route {
        let mut r = Route {
            id: String::new(),
            key: String::new(),
            matchers: Default::default(),
            continue_matching: false,
            opts: RouteOpts {
                receiver: "r".into(),
                group_by: GroupBy::Labels(vec!["alertname".into(), "service".into()]),
                group_wait: Duration::from_secs(30),
                group_interval: Duration::from_secs(300),
                ..Default::default()
            },
            children: Vec::new(),
        };
        r.assign_keys(None, 0);
        r
    }

    #[test]
    fn forty_routes_of_one_service_are_one_group() {
        let r = route();
        let mut d = Dispatcher::default();
        let t0 = 1_000_000;
        for i in 0..40 {
            d.insert(&r, alert("ApiDown", "payments", &format!("r{i}"), t0), t0 + i);
        }
        d.insert(&r, alert("ApiDown", "orders", "o1", t0), t0);
        assert_eq!(d.size(), (2, 41));
        assert!(d.due(t0 + 29_999).is_empty(), "group_wait holds the first flush");
        let flushes = d.due(t0 + 30_000);
        assert_eq!(flushes.len(), 2);
        let pay = flushes.iter().find(|f| f.alerts.len() == 40).expect("payments group");
        assert_eq!(pay.key, r#"{}:{alertname="ApiDown", service="payments"}"#);
        assert!(d.due(t0 + 60_000).is_empty());
        assert_eq!(d.due(t0 + 330_000).len(), 2, "group_interval later");
        assert_eq!(d.next_due(), Some(t0 + 630_000));
    }

    #[test]
    fn old_alerts_are_not_held_and_resolved_ones_leave_after_their_flush() {
        let r = route();
        let mut d = Dispatcher::default();
        let now = 10_000_000;
        d.insert(&r, alert("ApiDown", "payments", "a", now - 600_000), now);
        let f = d.due(now);
        assert_eq!(f.len(), 1, "active for longer than group_wait: flushed at once");
        let mut resolved = alert("ApiDown", "payments", "a", now - 600_000);
        resolved.ends_at = Some(now + 1_000);
        d.insert(&r, resolved, now + 1_000);
        let f = d.due(now + 300_000);
        assert_eq!(f[0].alerts[0].ends_at, Some(now + 1_000));
        d.flushed(&f[0], now + 300_000);
        assert_eq!(d.size(), (0, 0));
    }
}
