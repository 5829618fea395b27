//! The notification plan: what `alerting:` in `vigil.yaml` or an `alertmanager.yml` compiles to.
//! A route tree with grouping options, receivers with their integrations and delivery settings,
//! inhibition rules and named time intervals. Both configuration forms end here, so the pipeline
//! knows only one shape.

use std::collections::BTreeMap;
use std::time::Duration;

use vigil_tsdb::Labels;

use super::config::{EmailConfig, PagerDutyConfig, SlackConfig, WebhookConfig};
use super::matcher::{Matchers, quote};
use super::timeinterval::TimeInterval;

/// Everything the pipeline needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The route tree; its root matches every alert.
    pub route: Route,
    /// The receivers, by name.
    pub receivers: BTreeMap<String, ReceiverPlan>,
    /// Alerts that mute others.
    pub inhibit_rules: Vec<InhibitRule>,
    /// Named time intervals for `mute_time_intervals` and `active_time_intervals`.
    pub time_intervals: BTreeMap<String, Vec<TimeInterval>>,
    /// What was read but is not used (logged at load).
    pub warnings: Vec<String>,
    /// The `alertmanager.yml` as written, with its secrets replaced by `<secret>` (empty for
    /// vigil's own form), for `/api/v2/status`.
    pub original: String,
}

/// One receiver: where its notifications go and how they are delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverPlan {
    /// Its name.
    pub name: String,
    /// Where each notification goes (each integration gets its own copy).
    pub integrations: Vec<Integration>,
    /// Another receiver that gets the notifications this one cannot take (open circuit or
    /// retries exhausted).
    pub fallback: Option<String>,
    /// Timeouts, concurrency, retries and the circuit breaker.
    pub delivery: Delivery,
}

/// How a receiver's notifications are delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Per request.
    pub timeout: Duration,
    /// Requests in flight at once per integration.
    pub max_concurrent: usize,
    /// Backoff between attempts.
    pub retry: super::config::RetryConfig,
    /// When to stop calling a failing receiver for a while.
    pub breaker: super::config::BreakerConfig,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            timeout: Duration::from_secs(10),
            max_concurrent: 4,
            retry: Default::default(),
            breaker: Default::default(),
        }
    }
}

/// One destination of a receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    /// Whether resolved alerts are sent.
    pub send_resolved: bool,
    /// Where and how.
    pub kind: IntegrationKind,
}

/// The kinds of destination.
#[derive(Debug, Clone, PartialEq)]
pub enum IntegrationKind {
    /// Alertmanager's webhook payload (version 4).
    Webhook(WebhookConfig),
    /// A Slack incoming webhook.
    Slack(SlackConfig),
    /// Mail over SMTP.
    Email(Box<EmailConfig>),
    /// PagerDuty's Events API v2.
    PagerDuty(PagerDutyConfig),
    /// A JSON line on standard output.
    Console,
}

impl IntegrationKind {
    /// `webhook`, `slack`, `email`, `pagerduty` or `console`.
    pub fn name(&self) -> &'static str {
        match self {
            IntegrationKind::Webhook(_) => "webhook",
            IntegrationKind::Slack(_) => "slack",
            IntegrationKind::Email(_) => "email",
            IntegrationKind::PagerDuty(_) => "pagerduty",
            IntegrationKind::Console => "console",
        }
    }
}

/// `group_by`: some labels, or all of them (`['...']`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// These labels (none: one group per route).
    #[default]
    None,
    /// These labels, sorted.
    Labels(Vec<String>),
    /// Every label: one group per alert.
    All,
}

/// A route's grouping and timing, inherited by its children unless they set their own.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteOpts {
    /// The receiver.
    pub receiver: String,
    /// Which labels make a group.
    pub group_by: GroupBy,
    /// Wait before the first notification of a new group.
    pub group_wait: Duration,
    /// Wait before notifying about changes of a group already notified.
    pub group_interval: Duration,
    /// Wait before repeating an unchanged notification.
    pub repeat_interval: Duration,
    /// Named intervals in which this route's notifications are muted (not inherited).
    pub mute_time_intervals: Vec<String>,
    /// Named intervals outside of which this route's notifications are muted (not inherited).
    pub active_time_intervals: Vec<String>,
}

impl Default for RouteOpts {
    fn default() -> Self {
        RouteOpts {
            receiver: String::new(),
            group_by: GroupBy::None,
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
        }
    }
}

/// A node of the route tree.
#[derive(Debug, Clone)]
pub struct Route {
    /// Unique among routes: the key and the position among siblings.
    pub id: String,
    /// Alertmanager's route key: the parent's key, `/` and the sorted matchers.
    pub key: String,
    /// What an alert must match (the root's are ignored).
    pub matchers: Matchers,
    /// Whether later siblings are tried after this one matched.
    pub continue_matching: bool,
    /// Options (already inherited).
    pub opts: RouteOpts,
    /// Child routes, tried in order.
    pub children: Vec<Route>,
}

impl Route {
    /// Builds keys and ids for a tree whose nodes have matchers, options and children set.
    pub fn assign_keys(&mut self, parent_key: Option<&str>, index: usize) {
        self.key = match parent_key {
            Some(p) => format!("{p}/{}", self.matchers),
            None => self.matchers.to_string(),
        };
        self.id = match parent_key {
            Some(_) => format!("{}/{index}", self.key),
            None => self.key.clone(),
        };
        let key = self.key.clone();
        for (i, c) in self.children.iter_mut().enumerate() {
            c.assign_keys(Some(&key), i);
        }
    }

    /// The routes an alert goes to, as Alertmanager picks them: depth first, the deepest match
    /// wins, and `continue` lets later siblings match too. The root always matches.
    pub fn routes_for(&self, labels: &Labels) -> Vec<&Route> {
        let mut out = Vec::new();
        self.walk(labels, true, &mut out);
        out
    }

    fn walk<'r>(&'r self, labels: &Labels, root: bool, out: &mut Vec<&'r Route>) -> bool {
        if !root && !self.matchers.matches(labels) {
            return false;
        }
        let before = out.len();
        for c in &self.children {
            if c.walk(labels, false, out) && !c.continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push(self);
        }
        true
    }

    /// Every route of the tree, depth first.
    pub fn all(&self) -> Vec<&Route> {
        let mut out = vec![self];
        for c in &self.children {
            out.extend(c.all());
        }
        out
    }

    /// The labels of `labels` that make its group on this route, and Alertmanager's text form
    /// of them (`{a="b", c="d"}`).
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.opts.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::None => Labels::empty(),
            GroupBy::Labels(names) => Labels::from_pairs(
                labels
                    .iter()
                    .filter(|l| names.iter().any(|n| n == l.name.as_str()))
                    .map(|l| (l.name.to_string(), l.value.to_string())),
            ),
        }
    }
}

/// Alertmanager's text form of a label set: `{a="b", c="d"}`, its `k="v"` pairs sorted as
/// strings (so `a0="x"` comes before `a="y"`, as in Go's `LabelSet.String`).
pub fn label_set_string(labels: &Labels) -> String {
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={}", l.name, quote(&l.value)))
        .collect();
    pairs.sort();
    format!("{{{}}}", pairs.join(", "))
}

/// An inhibition rule: while an alert matching `source` fires, alerts matching `target` with
/// the same values of the `equal` labels are muted.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    /// What the muting alert matches.
    pub source: Matchers,
    /// What the muted alerts match.
    pub target: Matchers,
    /// Labels that must be equal in both (missing in both counts as equal).
    pub equal: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::matcher::parse_matchers;

    fn route(m: &str, receiver: &str, cont: bool, children: Vec<Route>) -> Route {
        Route {
            id: String::new(),
            key: String::new(),
            matchers: Matchers(parse_matchers(m).expect("valid")).sorted(),
            continue_matching: cont,
            opts: RouteOpts {
                receiver: receiver.into(),
                ..Default::default()
            },
            children,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn deepest_match_wins_and_continue_fans_out() {
        let mut root = route(
            "",
            "default",
            false,
            vec![
                route(
                    "severity=page",
                    "oncall",
                    true,
                    vec![route(r#"service=~"payments|orders""#, "payments-oncall", false, vec![])],
                ),
                route("team=search", "search", false, vec![]),
                route("severity=~page|ticket", "tickets", false, vec![]),
            ],
        );
        root.assign_keys(None, 0);
        let receivers = |l: &[(&str, &str)]| -> Vec<String> {
            root.routes_for(&labels(l))
                .iter()
                .map(|r| r.opts.receiver.clone())
                .collect()
        };
        assert_eq!(receivers(&[("severity", "info")]), ["default"]);
        assert_eq!(
            receivers(&[("severity", "page"), ("service", "users")]),
            ["oncall", "tickets"]
        );
        assert_eq!(
            receivers(&[("severity", "page"), ("service", "payments")]),
            ["payments-oncall", "tickets"]
        );
        assert_eq!(receivers(&[("team", "search"), ("severity", "ticket")]), ["search"]);
        assert_eq!(
            root.children[0].children[0].key,
            r#"{}/{severity="page"}/{service=~"payments|orders"}"#
        );
        assert_eq!(
            root.children[0].children[0].id,
            r#"{}/{severity="page"}/{service=~"payments|orders"}/0"#
        );
    }

    #[test]
    fn group_labels_take_what_the_alert_has() {
        let mut r = route("", "x", false, vec![]);
        r.opts.group_by = GroupBy::Labels(vec!["alertname".into(), "service".into(), "cluster".into()]);
        let l = labels(&[("alertname", "Down"), ("service", "pay"), ("route", "r1")]);
        assert_eq!(
            label_set_string(&r.group_labels(&l)),
            r#"{alertname="Down", service="pay"}"#
        );
        r.opts.group_by = GroupBy::All;
        assert_eq!(r.group_labels(&l), l);
        r.opts.group_by = GroupBy::None;
        assert_eq!(label_set_string(&r.group_labels(&l)), "{}");
    }
}
