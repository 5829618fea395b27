//! The pipeline on a simulated clock: a page storm, inhibition, time intervals, silences,
//! repeats, resolves, and restarts that do not repeat what was sent.

use super::*;
use crate::notify::ack::AckInfo;
use crate::notify::config::AlertingConfig;
use crate::notify::silence::{Silence, SilenceMatcher};

const T0: Timestamp = 1_796_601_600_000; // 2026-12-07T00:00:00Z, a Monday
const MIN: i64 = 60_000;

fn plan(yaml: &str) -> Plan {
    let cfg: AlertingConfig = serde_yaml_ng::from_str(yaml).expect("valid YAML");
    cfg.compile().expect("valid configuration")
}

const CONFIG: &str = r#"
receivers:
  - name: oncall
    webhook: { url: "http://127.0.0.1:1/oncall" }
  - name: tickets
    webhook: { url: "http://127.0.0.1:1/tickets", send_resolved: false }
route:
  receiver: tickets
  group_by: [alertname, service]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: [severity="page"]
      receiver: oncall
inhibit_rules:
  - source_matchers: [alertname="ServiceDown"]
    target_matchers: [alertname="RouteErrors"]
    equal: [service]
"#;

fn pipeline(yaml: &str) -> Pipeline {
    Pipeline::new(
        plan(yaml),
        Silences::default(),
        Acks::default(),
        NotificationLog::open(None, 0).expect("log"),
        0,
    )
}

fn alert(name: &str, service: &str, route: &str, severity: &str, fired: Timestamp) -> PipelineAlert {
    PipelineAlert {
        labels: Labels::from_pairs([
            ("alertname", name),
            ("service", service),
            ("route", route),
            ("severity", severity),
        ]),
        annotations: vec![("summary".into(), format!("{name} on {service}"))],
        starts_at: fired,
        fired_at: fired,
        ends_at: None,
        value: 0.5,
        d1: Some(0.01),
        d7: None,
        rule_group: "api".into(),
        expr: "x > 0".into(),
        ack: None,
    }
}

fn storm(service: &str, at: Timestamp) -> Vec<PipelineAlert> {
    (0..40)
        .map(|i| alert("RouteErrors", service, &format!("route-{i}"), "page", at))
        .collect()
}

/// Runs the pipeline every 10 s from `from` to `to`, recording what it sends.
fn run(p: &mut Pipeline, from: Timestamp, to: Timestamp) -> Vec<Notification> {
    let mut sent = Vec::new();
    let mut t = from;
    while t <= to {
        for n in p.flush_due(t).notifications {
            p.record(&n).expect("log");
            sent.push(n);
        }
        t += 10_000;
    }
    sent
}

#[test]
fn a_page_storm_is_one_notification_per_group() {
    let mut p = pipeline(CONFIG);
    let mut alerts = storm("payments", T0);
    alerts.extend(storm("orders", T0));
    p.sync(alerts, T0);
    let sent = run(&mut p, T0, T0 + 20 * MIN);
    assert_eq!(
        sent.len(),
        2,
        "one per service: {:?}",
        sent.iter().map(|n| &n.group_key).collect::<Vec<_>>()
    );
    for n in &sent {
        assert_eq!(n.receiver, "oncall");
        assert_eq!(n.alerts.len(), 40);
        assert_eq!(n.created_at, T0 + 30_000, "after group_wait");
    }
    let keys: BTreeSet<&str> = sent.iter().map(|n| n.group_key.as_str()).collect();
    assert!(
        keys.contains(r#"{}/{severity="page"}:{alertname="RouteErrors", service="orders"}"#),
        "{keys:?}"
    );
    // Unchanged: the next notification is the repeat, four hours later.
    let later = run(&mut p, T0 + 20 * MIN + 10_000, T0 + 4 * 3_600_000 + 10 * MIN);
    assert_eq!(later.len(), 2);
    assert!(later.iter().all(|n| n.created_at >= T0 + 4 * 3_600_000 + 30_000));
}

#[test]
fn changes_are_sent_at_the_group_interval_and_resolves_when_asked() {
    let mut p = pipeline(CONFIG);
    let mut alerts = storm("payments", T0);
    p.sync(alerts.clone(), T0);
    assert_eq!(run(&mut p, T0, T0 + MIN).len(), 1);
    // One more route fails a minute later: told at the next group interval, not before.
    alerts.push(alert("RouteErrors", "payments", "route-new", "page", T0 + MIN));
    p.sync(alerts.clone(), T0 + MIN);
    let sent = run(&mut p, T0 + MIN + 10_000, T0 + 6 * MIN);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].created_at, T0 + 30_000 + 5 * MIN);
    assert_eq!(sent[0].alerts.len(), 41);
    // Everything resolves: one resolved notification with every alert.
    for a in &mut alerts {
        a.ends_at = Some(T0 + 7 * MIN);
    }
    p.sync(alerts, T0 + 7 * MIN);
    let sent = run(&mut p, T0 + 7 * MIN, T0 + 20 * MIN);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status(), super::super::Status::Resolved);
    assert_eq!(sent[0].alerts.len(), 41);
    assert_eq!(p.sizes().0, 0, "the group is gone once its resolved alerts were sent");
}

#[test]
fn a_destination_without_resolves_gets_none_but_the_log_learns() {
    let mut p = pipeline(CONFIG);
    let mut a = alert("LatencyHigh", "search", "r1", "ticket", T0);
    p.sync(vec![a.clone()], T0);
    assert_eq!(run(&mut p, T0, T0 + MIN).len(), 1);
    a.ends_at = Some(T0 + 2 * MIN);
    p.sync(vec![a.clone()], T0 + 2 * MIN);
    assert!(
        run(&mut p, T0 + 2 * MIN, T0 + 30 * MIN).is_empty(),
        "tickets has send_resolved: false"
    );
    // Firing again later is a new notification.
    let again = alert("LatencyHigh", "search", "r1", "ticket", T0 + 40 * MIN);
    p.sync(vec![again], T0 + 40 * MIN);
    assert_eq!(run(&mut p, T0 + 40 * MIN, T0 + 45 * MIN).len(), 1);
}

#[test]
fn inhibition_mutes_the_routes_of_a_service_that_is_down() {
    let mut p = pipeline(CONFIG);
    let mut alerts = storm("payments", T0);
    alerts.push(alert("ServiceDown", "payments", "", "page", T0));
    p.sync(alerts, T0);
    let sent = run(&mut p, T0, T0 + 10 * MIN);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].alerts[0].alertname(), "ServiceDown");
    let some_route = alert("RouteErrors", "payments", "route-3", "page", T0);
    assert!(p.status_of(&some_route.labels, T0 + MIN).1.is_some());
}

fn silence(service: &str, from: Timestamp, to: Timestamp) -> Silence {
    Silence {
        id: String::new(),
        matchers: vec![SilenceMatcher {
            name: "service".into(),
            value: service.into(),
            is_regex: false,
            is_equal: true,
        }],
        starts_at: from,
        ends_at: to,
        updated_at: 0,
        created_by: "alice".into(),
        comment: "known issue".into(),
    }
}

#[test]
fn a_silenced_group_is_paged_once_the_silence_ends() {
    let mut p = pipeline(CONFIG);
    p.silences_mut()
        .set(silence("payments", T0, T0 + 30 * MIN), T0)
        .expect("silence");
    let mut alerts = storm("payments", T0);
    alerts.extend(storm("orders", T0));
    p.sync(alerts, T0);
    let sent = run(&mut p, T0, T0 + 29 * MIN);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].group_key.contains("orders"));
    let sent = run(&mut p, T0 + 29 * MIN + 10_000, T0 + 40 * MIN);
    assert_eq!(sent.len(), 1, "paged at the first group interval after the silence");
    assert!(sent[0].group_key.contains("payments"));
    assert!(sent[0].created_at >= T0 + 30 * MIN);
}

#[test]
fn time_intervals_mute_and_activate_routes() {
    let yaml = r#"
receivers:
  - name: oncall
    console: {}
  - name: office
    console: {}
route:
  receiver: oncall
  group_by: [alertname]
  group_wait: 0s
  routes:
    - matchers: [team="web"]
      receiver: office
      active_time_intervals: [business-hours]
    - matchers: [team="batch"]
      receiver: oncall
      mute_time_intervals: [business-hours]
time_intervals:
  - name: business-hours
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{ start_time: '09:00', end_time: '17:00' }]
"#;
    let web = |fired| {
        let mut a = alert("Slow", "web", "r", "ticket", fired);
        a.labels = Labels::from_pairs([("alertname", "Slow"), ("team", "web")]);
        a
    };
    let batch = |fired| {
        let mut a = alert("Late", "batch", "r", "ticket", fired);
        a.labels = Labels::from_pairs([("alertname", "Late"), ("team", "batch")]);
        a
    };
    // 03:00 on a Monday: the office route is inactive, the batch route is not muted.
    let night = T0 + 3 * 3_600_000;
    let mut p = pipeline(yaml);
    p.sync(vec![web(night), batch(night)], night);
    let sent = run(&mut p, night, night + MIN);
    assert_eq!(sent.iter().map(|n| n.receiver.as_str()).collect::<Vec<_>>(), ["oncall"]);
    assert!(sent[0].group_key.contains("Late"));
    // 10:00: the office route is active, the batch route is muted.
    let day = T0 + 10 * 3_600_000;
    let mut p = pipeline(yaml);
    p.sync(vec![web(day), batch(day)], day);
    let sent = run(&mut p, day, day + MIN);
    assert_eq!(sent.iter().map(|n| n.receiver.as_str()).collect::<Vec<_>>(), ["office"]);
}

#[test]
fn a_restart_does_not_send_the_same_state_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("nflog");
    let alerts = storm("payments", T0);
    let mut p = Pipeline::new(
        plan(CONFIG),
        Silences::default(),
        Acks::default(),
        NotificationLog::open(Some(&log_path), T0).expect("log"),
        0,
    );
    p.sync(alerts.clone(), T0);
    assert_eq!(run(&mut p, T0, T0 + MIN).len(), 1);
    drop(p);
    // A new process: the rules hand over the same alerts; the log knows they were sent.
    let mut p = Pipeline::new(
        plan(CONFIG),
        Silences::default(),
        Acks::default(),
        NotificationLog::open(Some(&log_path), T0 + 2 * MIN).expect("log"),
        0,
    );
    p.sync(alerts.clone(), T0 + 2 * MIN);
    assert!(run(&mut p, T0 + 2 * MIN, T0 + 30 * MIN).is_empty());
    // A reload with a new plan keeps that too.
    p.replace_plan(plan(CONFIG), T0 + 31 * MIN);
    assert!(run(&mut p, T0 + 31 * MIN, T0 + 60 * MIN).is_empty());
    // But a new alert in the group is news.
    let mut more = alerts;
    more.push(alert("RouteErrors", "payments", "route-x", "page", T0 + 61 * MIN));
    p.sync(more, T0 + 61 * MIN);
    assert_eq!(run(&mut p, T0 + 61 * MIN, T0 + 70 * MIN).len(), 1);
}

#[test]
fn alerts_whose_rule_disappears_resolve() {
    let mut p = pipeline(CONFIG);
    p.sync(vec![alert("LatencyHigh", "search", "r1", "page", T0)], T0);
    assert_eq!(run(&mut p, T0, T0 + MIN).len(), 1);
    p.sync(Vec::new(), T0 + 2 * MIN);
    let sent = run(&mut p, T0 + 2 * MIN, T0 + 10 * MIN);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].alerts[0].ends_at, Some(T0 + 2 * MIN));
}

#[test]
fn a_given_up_notification_is_forgotten_so_the_next_flush_tells_again() {
    let mut p = pipeline(CONFIG);
    p.sync(storm("payments", T0), T0);
    let sent = run(&mut p, T0, T0 + MIN);
    assert_eq!(sent.len(), 1);
    assert!(run(&mut p, T0 + MIN + 10_000, T0 + 10 * MIN).is_empty());
    p.forget(&sent[0]).expect("forget");
    let again = run(&mut p, T0 + 10 * MIN + 10_000, T0 + 16 * MIN);
    assert_eq!(again.len(), 1, "told again at the next group interval");
    // Forgetting an older notification after a newer one was logged changes nothing.
    p.forget(&sent[0]).expect("forget");
    assert!(run(&mut p, T0 + 16 * MIN + 10_000, T0 + 30 * MIN).is_empty());
}

#[test]
fn an_ack_stops_repeats_tells_who_was_told_and_ends_with_the_firing() {
    let mut p = pipeline(CONFIG);
    let alerts = storm("payments", T0);
    p.sync(alerts.clone(), T0);
    assert_eq!(run(&mut p, T0, T0 + MIN).len(), 1);
    let info = AckInfo {
        by: "bob".into(),
        comment: "rolling back".into(),
        at: T0 + 2 * MIN,
        expires_at: None,
    };
    let fps: Vec<u64> = alerts.iter().map(PipelineAlert::fingerprint).collect();
    let notices = p.acknowledge(&fps, &info, T0 + 2 * MIN).expect("ack");
    assert_eq!(notices.len(), 1, "one notice for the one destination told");
    assert_eq!(notices[0].receiver, "oncall");
    assert_eq!(notices[0].ack.as_ref().map(|a| a.by.as_str()), Some("bob"));
    assert_eq!(notices[0].alerts.len(), 40);
    // No repeat after four hours: someone is on it.
    assert!(run(&mut p, T0 + MIN + 10_000, T0 + 5 * 3_600_000).is_empty());
    // A new alert in the group is news, and its notification shows who is on the others.
    let mut more = alerts.clone();
    more.push(alert(
        "RouteErrors",
        "payments",
        "route-new",
        "page",
        T0 + 5 * 3_600_000,
    ));
    p.sync(more.clone(), T0 + 5 * 3_600_000);
    let sent = run(&mut p, T0 + 5 * 3_600_000, T0 + 5 * 3_600_000 + 6 * MIN);
    assert_eq!(sent.len(), 1);
    let acked = sent[0].alerts.iter().filter(|a| a.ack.is_some()).count();
    assert_eq!(acked, 40);
    // Resolved, the ack ends; a new firing pages again, unacknowledged.
    let t = T0 + 6 * 3_600_000;
    let resolved: Vec<PipelineAlert> = more
        .iter()
        .map(|a| PipelineAlert {
            ends_at: Some(t),
            ..a.clone()
        })
        .collect();
    p.sync(resolved, t);
    run(&mut p, t, t + 10 * MIN);
    let again = alert("RouteErrors", "payments", "route-01", "page", t + 20 * MIN);
    p.sync(vec![again.clone()], t + 20 * MIN);
    assert!(p.ack_of(&again, t + 20 * MIN).is_none());
    let sent = run(&mut p, t + 20 * MIN, t + 30 * MIN);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].alerts[0].ack.is_none());
}
