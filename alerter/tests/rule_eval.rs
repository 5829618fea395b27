//! Rules evaluated against a real store at exact times: a recording rule writes its series, an
//! alerting rule goes pending, firing and resolved, `ALERTS` follows, and the state survives a
//! restart without a second "fired".

use std::sync::Arc;

use vigil_alerter::alert::{AlertState, Transition};
use vigil_alerter::rules::parse_str;
use vigil_alerter::{EvalSettings, RuleManager};
use vigil_tsdb::promql::{Engine, Value};
use vigil_tsdb::{Db, Labels};

const RULES: &str = r#"
groups:
  - name: api
    interval: 10s
    rules:
      - record: service:errors:ratio
        expr: sum by (service) (errors_total) / sum by (service) (requests_total)
      - alert: HighErrorRatio
        expr: service:errors:ratio > 0.1
        for: 30s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.service }} fails {{ $value | humanizePercentage }} of requests"
          runbook_url: https://runbooks.example.com/high-error-ratio
"#;

/// A store where `payments` fails 20% of requests between t = 100 s and t = 200 s.
fn store() -> Arc<Db> {
    let db = Db::in_memory();
    let mut app = db.appender();
    let req = Labels::from_pairs([("__name__", "requests_total"), ("service", "payments")]);
    let err = Labels::from_pairs([("__name__", "errors_total"), ("service", "payments")]);
    for s in (0..=400).step_by(10) {
        let t = s * 1000;
        app.append(&req, t, 100.0).expect("append");
        app.append(&err, t, if (100..200).contains(&s) { 20.0 } else { 1.0 })
            .expect("append");
    }
    app.commit().expect("commit");
    Arc::new(db)
}

fn settings() -> EvalSettings {
    EvalSettings {
        default_query_offset_ms: 0,
        ..EvalSettings::default()
    }
}

fn state(m: &RuleManager) -> Option<AlertState> {
    let groups = m.groups();
    let rule = &groups[0].rules[1];
    rule.alerts.alerts().next().map(|a| a.state)
}

fn query(db: &Db, q: &str, t: i64) -> Vec<(String, f64)> {
    match Engine::default().instant_query(db, q, t).expect("query") {
        Value::Vector(v) => v.into_iter().map(|s| (s.metric.to_string(), s.v)).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pending_firing_resolved_with_exact_times() {
    let db = store();
    let dir = tempfile::tempdir().expect("tempdir");
    let state_file = dir.path().join("alerts.json");
    let m = RuleManager::new(db.clone(), Engine::default(), settings(), Some(state_file.clone()));
    m.set_groups(parse_str(RULES, "api.yml").expect("valid rules"));

    let mut fired = Vec::new();
    let mut resolved = Vec::new();
    let mut states = Vec::new();
    for s in (90..=230).step_by(10) {
        for n in m.evaluate_all_at(s * 1000) {
            match n.transition {
                Transition::Fired(a) => fired.push((s, a)),
                Transition::Resolved(a) => resolved.push((s, a)),
                Transition::Pending(_) => {}
            }
        }
        states.push((s, state(&m)));
    }
    use AlertState::{Firing, Inactive, Pending};
    assert_eq!(
        states,
        vec![
            (90, None),
            (100, Some(Pending)),
            (110, Some(Pending)),
            (120, Some(Pending)),
            (130, Some(Firing)),
            (140, Some(Firing)),
            (150, Some(Firing)),
            (160, Some(Firing)),
            (170, Some(Firing)),
            (180, Some(Firing)),
            (190, Some(Firing)),
            (200, Some(Inactive)),
            (210, Some(Inactive)),
            (220, Some(Inactive)),
            (230, Some(Inactive)),
        ]
    );
    assert_eq!(fired.len(), 1);
    let (at, alert) = &fired[0];
    assert_eq!((*at, alert.active_at, alert.fired_at), (130, 100_000, Some(130_000)));
    assert_eq!(
        alert.labels.to_string(),
        r#"{alertname="HighErrorRatio", service="payments", severity="page"}"#
    );
    let summary = alert
        .annotations
        .iter()
        .find(|(k, _)| k == "summary")
        .map(|(_, v)| v.as_str());
    assert_eq!(summary, Some("payments fails 20% of requests"));
    assert_eq!(resolved.len(), 1);
    assert_eq!((resolved[0].0, resolved[0].1.resolved_at), (200, Some(200_000)));

    // The recording rule's series, and ALERTS as Prometheus writes it.
    assert_eq!(
        query(&db, "service:errors:ratio", 150_000),
        vec![(r#"service:errors:ratio{service="payments"}"#.to_owned(), 0.2)]
    );
    assert_eq!(
        query(&db, "ALERTS", 110_000),
        vec![(
            r#"ALERTS{alertname="HighErrorRatio", alertstate="pending", service="payments", severity="page"}"#
                .to_owned(),
            1.0
        )]
    );
    assert_eq!(query(&db, r#"ALERTS{alertstate="firing"}"#, 150_000).len(), 1);
    assert_eq!(query(&db, "ALERTS_FOR_STATE", 150_000)[0].1, 100.0);
    // Resolved: the series ends with a staleness marker, not a five-minute tail.
    assert!(query(&db, "ALERTS", 200_000).is_empty());
}

#[test]
fn a_firing_alert_is_not_fired_again_after_a_restart() {
    let db = store();
    let dir = tempfile::tempdir().expect("tempdir");
    let state_file = dir.path().join("alerts.json");
    {
        let m = RuleManager::new(db.clone(), Engine::default(), settings(), Some(state_file.clone()));
        m.set_groups(parse_str(RULES, "api.yml").expect("valid"));
        let fired: usize = (100..=140)
            .step_by(10)
            .flat_map(|s| m.evaluate_all_at(s * 1000))
            .filter(|n| matches!(n.transition, Transition::Fired(_)))
            .count();
        assert_eq!(fired, 1);
    }
    // A new process with the same state file.
    let m = RuleManager::new(db, Engine::default(), settings(), Some(state_file));
    m.set_groups(parse_str(RULES, "api.yml").expect("valid"));
    assert_eq!(
        state(&m),
        Some(AlertState::Firing),
        "state read back before any evaluation"
    );
    assert!(
        m.evaluate_all_at(150_000).is_empty(),
        "no second page for a firing alert"
    );
    let n = m.evaluate_all_at(200_000);
    assert!(matches!(n.as_slice(), [t] if matches!(t.transition, Transition::Resolved(_))));
}

#[test]
fn reload_keeps_state_and_a_bad_file_keeps_the_old_rules() {
    let db = store();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("api.yml");
    std::fs::write(&good, RULES).expect("write");
    let m = RuleManager::new(db, Engine::default(), settings(), None);
    let files = vec![good.display().to_string()];
    assert_eq!(m.load_files(&files), Ok(1));
    m.evaluate_all_at(100_000);
    assert_eq!(state(&m), Some(AlertState::Pending));
    // Same rules again (a reload): the pending alert keeps its start.
    m.load_files(&files).expect("reload");
    m.evaluate_all_at(130_000);
    assert_eq!(state(&m), Some(AlertState::Firing));
    // A broken file: rejected with its position, the loaded rules stay.
    std::fs::write(&good, RULES.replace("> 0.1", "> > 0.1")).expect("write");
    let errs = m.load_files(&files).expect_err("bad file");
    assert!(
        errs[0].to_string().contains("api.yml:9:15: group \"api\", rule 2"),
        "{}",
        errs[0]
    );
    assert_eq!(state(&m), Some(AlertState::Firing));
}
