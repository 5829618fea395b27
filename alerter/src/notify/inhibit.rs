//! Inhibition: an alert is muted while a firing alert matches a rule's source matchers, it
//! matches the rule's target matchers, and both have the same values of the rule's `equal`
//! labels. As in Alertmanager, an alert that matches both sides cannot be muted by another
//! alert that also matches both sides (so a rule never mutes its own sources).

use std::collections::HashMap;

use vigil_tsdb::{Labels, Timestamp};

use super::alerts::AlertStore;
use super::plan::InhibitRule;

/// A firing alert that matches a rule's source matchers.
#[derive(Debug, Clone, Copy)]
struct Source {
    fingerprint: u64,
    /// It matches the target matchers too.
    also_target: bool,
}

/// For each rule, the firing source alerts by their values of the rule's `equal` labels: a
/// lookup per alert instead of a scan of every alert (10,000 alerts would be 10⁸ comparisons
/// per flush). Built from the alert store, again after it changes.
#[derive(Debug, Default)]
pub struct InhibitIndex {
    rules: Vec<HashMap<Vec<String>, Vec<Source>>>,
}

fn equal_values(rule: &InhibitRule, labels: &Labels) -> Vec<String> {
    rule.equal
        .iter()
        .map(|l| labels.get(l).unwrap_or("").to_owned())
        .collect()
}

impl InhibitIndex {
    /// The index of the firing alerts in `alerts` at `now`.
    pub fn build(rules: &[InhibitRule], alerts: &AlertStore, now: Timestamp) -> InhibitIndex {
        let rules = rules
            .iter()
            .map(|rule| {
                let mut by_equal: HashMap<Vec<String>, Vec<Source>> = HashMap::new();
                for a in alerts.firing(now).filter(|a| rule.source.matches(&a.labels)) {
                    by_equal.entry(equal_values(rule, &a.labels)).or_default().push(Source {
                        fingerprint: a.fingerprint(),
                        also_target: rule.target.matches(&a.labels),
                    });
                }
                by_equal
            })
            .collect();
        InhibitIndex { rules }
    }

    /// The fingerprint of a firing alert that mutes `labels`, if any.
    pub fn inhibited_by(&self, rules: &[InhibitRule], labels: &Labels) -> Option<u64> {
        let fp = labels.stable_hash();
        for (rule, by_equal) in rules.iter().zip(&self.rules) {
            if !rule.target.matches(labels) {
                continue;
            }
            let two_sided = rule.source.matches(labels);
            let found = by_equal
                .get(&equal_values(rule, labels))
                .into_iter()
                .flatten()
                .find(|s| s.fingerprint != fp && !(two_sided && s.also_target));
            if let Some(s) = found {
                return Some(s.fingerprint);
            }
        }
        None
    }
}

/// The fingerprint of a firing alert that mutes `labels`, if any (one lookup: build an
/// [`InhibitIndex`] for many).
pub fn inhibited_by(rules: &[InhibitRule], alerts: &AlertStore, labels: &Labels, now: Timestamp) -> Option<u64> {
    InhibitIndex::build(rules, alerts, now).inhibited_by(rules, labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alerts::PipelineAlert;
    use crate::notify::matcher::{Matchers, parse_matchers};

    fn alert(pairs: &[(&str, &str)], ends_at: Option<Timestamp>) -> PipelineAlert {
        PipelineAlert {
            labels: Labels::from_pairs(pairs.iter().copied()),
            annotations: Vec::new(),
            starts_at: 0,
            fired_at: 0,
            ends_at,
            value: 1.0,
            d1: None,
            d7: None,
            rule_group: "g".into(),
            expr: "x".into(),
            ack: None,
        }
    }

    fn rule(source: &str, target: &str, equal: &[&str]) -> InhibitRule {
        InhibitRule {
            source: Matchers(parse_matchers(source).expect("valid")),
            target: Matchers(parse_matchers(target).expect("valid")),
            equal: equal.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn a_firing_source_mutes_targets_with_equal_labels() {
        let rules = [rule("alertname=ServiceDown", "alertname=~Route.*", &["service"])];
        let mut store = AlertStore::default();
        let down = alert(&[("alertname", "ServiceDown"), ("service", "pay")], None);
        store.sync(vec![down.clone()], 10);
        let route_pay = Labels::from_pairs([("alertname", "RouteErrors"), ("service", "pay")]);
        let route_ord = Labels::from_pairs([("alertname", "RouteErrors"), ("service", "orders")]);
        assert_eq!(inhibited_by(&rules, &store, &route_pay, 10), Some(down.fingerprint()));
        assert_eq!(inhibited_by(&rules, &store, &route_ord, 10), None, "another service");
        // A resolved source mutes nothing.
        store.sync(
            vec![alert(&[("alertname", "ServiceDown"), ("service", "pay")], Some(5))],
            10,
        );
        assert_eq!(inhibited_by(&rules, &store, &route_pay, 10), None);
    }

    #[test]
    fn alerts_matching_both_sides_do_not_mute_each_other() {
        let rules = [rule("severity=~page|ticket", "severity=~page|ticket", &["service"])];
        let mut store = AlertStore::default();
        let a = alert(&[("alertname", "A"), ("severity", "page"), ("service", "pay")], None);
        let b = alert(&[("alertname", "B"), ("severity", "ticket"), ("service", "pay")], None);
        store.sync(vec![a.clone(), b.clone()], 10);
        assert_eq!(inhibited_by(&rules, &store, &a.labels, 10), None);
        assert_eq!(inhibited_by(&rules, &store, &b.labels, 10), None);
    }
}
