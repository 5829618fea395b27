//! A backtest finds exactly the transitions the live evaluator finds on the same history: the
//! same times, states and labels, through recording rules, `for`, `keep_firing_for`, label
//! templates, stale series, `offset`, two group intervals and a query offset; and it reads the
//! rules' own recorded series, never those a live vigil left in the history.

use std::sync::Arc;

use vigil_alerter::alert::Transition;
use vigil_alerter::backtest;
use vigil_alerter::rules::parse_str;
use vigil_alerter::{EvalSettings, RuleManager};
use vigil_tsdb::promql::Engine;
use vigil_tsdb::{Db, Labels, Timestamp};

const RULES: &str = r#"
groups:
  - name: ratios
    interval: 15s
    rules:
      - record: route:errors:ratio_rate1m
        expr: |
          sum by (service, route) (rate(requests_total{status=~"5.."}[1m]))
            / sum by (service, route) (rate(requests_total[1m]))
      - alert: ErrorBurst
        expr: route:errors:ratio_rate1m > 0.1
        for: 1m
        keep_firing_for: 45s
        labels:
          severity: "{{ if gt $value 0.5 }}page{{ else }}ticket{{ end }}"
  - name: traffic
    interval: 1m
    rules:
      - alert: TrafficDrop
        expr: |
          sum by (service, route) (rate(requests_total[2m]))
            < 0.5 * sum by (service, route) (rate(requests_total[2m] offset 10m))
      - alert: Flapping
        expr: route:errors:ratio_rate1m > 0.02
      # Hysteresis through its own ALERTS: fires above 5%, resolves below 1%.
      - alert: Sticky
        expr: |
          route:errors:ratio_rate1m > 0.05
            or
          (route:errors:ratio_rate1m > 0.01 and on (service, route) ALERTS{alertname="Sticky", severity="page", alertstate="firing"})
        labels:
          severity: page
      # Its namesake, told apart by severity (as the generated SLO alerts are): fires above 8%,
      # resolves below 2%.
      - alert: Sticky
        expr: |
          route:errors:ratio_rate1m > 0.08
            or
          (route:errors:ratio_rate1m > 0.02 and on (service, route) ALERTS{alertname="Sticky", severity="ticket", alertstate="firing"})
        labels:
          severity: ticket
"#;

/// Minutes of history.
const MINUTES: i64 = 120;
/// A minute boundary, so both evaluators start at the same evaluation.
const T0: Timestamp = 1_796_601_600_000;

/// Four routes, every 10 s: `pay` fails 40% then 80% (minutes 30-50), `ord` flickers around
/// 2-3% errors, `usr` loses most traffic (minutes 70-90) and stops altogether at minute 100,
/// `hys` fails 10% (minutes 60-62) and then 3% (to minute 80).
fn history(db: &Db) {
    let mut app = db.appender();
    let mut totals = std::collections::HashMap::new();
    for s in (0..MINUTES * 60).step_by(10) {
        let t = T0 + s * 1000;
        let minute = s / 60;
        for route in ["pay", "ord", "usr", "hys"] {
            if route == "usr" && minute >= 100 {
                continue;
            }
            let ok_rate: f64 = match route {
                "usr" if (70..90).contains(&minute) => 2.0,
                _ => 20.0,
            };
            let err_rate = match route {
                "pay" if (30..40).contains(&minute) => 8.0,
                "pay" if (40..50).contains(&minute) => 60.0,
                // Above 5% for two minutes, then 3% for eighteen: Sticky stays firing.
                "hys" if (60..62).contains(&minute) => 2.2,
                "hys" if (62..80).contains(&minute) => 0.62,
                "ord" => {
                    if (s / 30) % 3 == 0 {
                        0.8
                    } else {
                        0.3
                    }
                }
                _ => 0.0,
            };
            for (status, rate) in [("200", ok_rate), ("500", err_rate)] {
                let c = totals.entry((route, status)).or_insert(0.0);
                *c += rate;
                let labels = Labels::from_pairs([
                    ("__name__", "requests_total"),
                    ("service", route),
                    ("route", route),
                    ("status", status),
                ]);
                app.append(&labels, t, *c).expect("append");
            }
        }
    }
    app.commit().expect("commit");
}

fn settings() -> EvalSettings {
    EvalSettings {
        default_interval_ms: 30_000,
        default_query_offset_ms: 15_000,
        ..EvalSettings::default()
    }
}

fn key(at: Timestamp, state: &str, labels: &Labels) -> String {
    format!("{at} {state} {labels}")
}

#[test]
fn a_backtest_finds_what_the_live_evaluator_finds() {
    let groups = parse_str(RULES, "rules.yml").expect("rules parse");
    let start = T0 + 5 * 60_000;
    let end = T0 + MINUTES * 60_000 + 10 * 60_000;

    // Live: the scheduler's clock moves in 5 s steps; every group evaluates when due.
    let live_db = Arc::new(Db::in_memory());
    history(&live_db);
    let manager = RuleManager::new(live_db, Engine::default(), settings(), None);
    manager.set_groups(groups.clone());
    let mut live = Vec::new();
    for now in (start..=end).step_by(5_000) {
        for n in manager.evaluate_due(now) {
            let (state, a) = match &n.transition {
                Transition::Pending(a) => ("pending", a),
                Transition::Fired(a) => ("firing", a),
                Transition::Resolved(a) => ("resolved", a),
            };
            let at = match &n.transition {
                Transition::Pending(_) => a.active_at,
                Transition::Fired(_) => a.fired_at.expect("fired"),
                Transition::Resolved(_) => a.resolved_at.expect("resolved"),
            };
            live.push(key(at, state, &a.labels));
        }
    }

    // The same history, with series a live vigil recorded under the rules' names: the backtest
    // must not read them.
    let history_db = Db::in_memory();
    history(&history_db);
    let mut app = history_db.appender();
    let stray = Labels::from_pairs([
        ("__name__", "route:errors:ratio_rate1m"),
        ("service", "ord"),
        ("route", "ord"),
    ]);
    for s in (0..MINUTES * 60).step_by(15) {
        app.append(&stray, T0 + s * 1000, 1.0).expect("append");
    }
    app.commit().expect("commit");
    let mut found = Vec::new();
    // Chunks of 20 minutes: state and written series cross many chunk boundaries.
    let summaries = backtest::run_in_chunks(
        &groups,
        &history_db,
        &Engine::default(),
        &settings(),
        (start, end),
        20 * 60_000,
        |e| found.push(key(e.at, e.state, &e.labels)),
    )
    .expect("backtest");

    assert!(live.len() > 10, "the scenario makes transitions: {live:#?}");
    for state in ["pending", "firing", "resolved"] {
        assert!(live.iter().any(|k| k.contains(state)), "{state} in {live:#?}");
    }
    assert!(live.iter().any(|k| k.contains("severity=\"page\"")), "{live:#?}");
    assert!(live.iter().any(|k| k.contains("TrafficDrop")), "{live:#?}");
    // Sticky on `hys` fires at 10% and stays firing through the 3% that follows.
    let sticky: Vec<&String> = live
        .iter()
        .filter(|k| k.contains("Sticky") && k.contains("hys") && k.contains("severity=\"page\""))
        .collect();
    assert_eq!(sticky.len(), 2, "{sticky:#?}");
    // The namesake too, each seeing only its own ALERTS.
    let ticket = live
        .iter()
        .filter(|k| k.contains("Sticky") && k.contains("hys") && k.contains("severity=\"ticket\""))
        .count();
    assert_eq!(ticket, 2, "{live:#?}");
    let sticky_at = |i: usize| -> Timestamp { sticky[i].split(' ').next().and_then(|t| t.parse().ok()).expect("time") };
    assert!(sticky_at(1) - sticky_at(0) > 15 * 60_000, "{sticky:#?}");
    let mut sorted_live = live.clone();
    sorted_live.sort();
    let mut sorted_found = found.clone();
    sorted_found.sort();
    assert_eq!(sorted_found, sorted_live);
    // Events come in time order.
    let times: Vec<Timestamp> = found
        .iter()
        .map(|k| k.split(' ').next().and_then(|t| t.parse().ok()).expect("time"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let burst = summaries.iter().find(|s| s.alertname == "ErrorBurst").expect("summary");
    let fired = live
        .iter()
        .filter(|k| k.contains("firing") && k.contains("ErrorBurst"))
        .count();
    assert_eq!(burst.firings, fired);
    assert!(burst.firing_ms > 0);
}
