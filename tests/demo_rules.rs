//! The demo's rule files against the demo's scripted incidents, on simulated traffic with
//! history a day and a week back, evaluated every 15 s as the demo does, with exact times:
//! each incident sets off its alerts in time, they resolve after it ends, and no other route
//! alerts (the D-1 / D-7 comparisons keep ordinary traffic quiet).

use std::collections::BTreeMap;
use std::sync::Arc;

use vigil_alerter::alert::Transition;
use vigil_alerter::{EvalSettings, RuleManager};
use vigil_collector::sim::{DEMO_RATE, DEMO_SCENARIO, IncidentSpec, Simulator, Topology};
use vigil_collector::{AggregatorConfig, Collector};
use vigil_tsdb::promql::Engine;
use vigil_tsdb::{Db, Timestamp};

/// Live traffic starts on Friday 2026-11-20 at 12:00 in Jakarta.
const T0: Timestamp = 1_795_150_800_000;
const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// Feeds simulated traffic for `[from, to)` through the collector, window by window.
fn traffic(collector: &Collector, sim: &mut Simulator, from: Timestamp, to: Timestamp) {
    collector
        .with_aggregator(|agg, out| {
            let mut t = from;
            while t < to {
                sim.generate(t, t + 10_000, |e| {
                    let _ = agg.apply(&e.as_kong(), t + 10_000, out);
                });
                t += 10_000;
            }
            agg.flush(out);
        })
        .expect("store");
}

#[derive(Debug, Default)]
struct Seen {
    fired: Option<Timestamp>,
    resolved: Option<Timestamp>,
    d1: Option<f64>,
}

#[test]
fn demo_incidents_fire_and_resolve_the_demo_alerts() {
    let db = Arc::new(Db::in_memory());
    let collector = Collector::new(db.clone(), AggregatorConfig::default());
    let incidents = DEMO_SCENARIO
        .iter()
        .map(|s| s.parse::<IncidentSpec>().expect("scenario").at(T0))
        .collect();
    // History around the same time a week and a day back, then the last six hours (the SLO's
    // longest window) and the live stretch with the incidents.
    for (i, back) in [7 * DAY, DAY].into_iter().enumerate() {
        let mut past = Simulator::new(Topology::default(), Vec::new(), 100 + i as u64);
        past.rate_scale = DEMO_RATE;
        traffic(&collector, &mut past, T0 - back - 15 * MIN, T0 - back + 25 * MIN);
    }
    let mut live = Simulator::new(Topology::default(), incidents, 7);
    live.rate_scale = DEMO_RATE;
    traffic(&collector, &mut live, T0 - 6 * 60 * MIN - 5 * MIN, T0 + 25 * MIN);

    let rules = RuleManager::new(db.clone(), Engine::default(), EvalSettings::default(), None);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/demo/*.yml");
    assert_eq!(rules.load_files(&[dir.to_owned()]).expect("demo rules load"), 4);

    let mut seen: BTreeMap<(String, String), Seen> = BTreeMap::new();
    let mut t = T0;
    while t <= T0 + 22 * MIN {
        for n in rules.evaluate_all_at(t) {
            let (alert, fired) = match &n.transition {
                Transition::Fired(a) => (a, true),
                Transition::Resolved(a) => (a, false),
                Transition::Pending(_) => continue,
            };
            let label = |k: &str| alert.labels.get(k).unwrap_or_default().to_owned();
            let s = seen.entry((label("alertname"), label("route"))).or_default();
            if fired {
                assert!(s.fired.is_none() || s.resolved.is_some(), "{alert:?} fired twice");
                s.fired = Some(t);
                s.d1 = n.d1;
            } else {
                s.resolved = Some(t);
            }
        }
        t += 15_000;
    }
    for ((name, route), s) in &seen {
        let rel = |t: Option<Timestamp>| t.map(|t| (t - T0) / 1000);
        eprintln!(
            "{name} on {route}: fired at {:?} s, resolved at {:?} s",
            rel(s.fired),
            rel(s.resolved)
        );
    }
    let at = |name: &str, route: &str| {
        seen.get(&(name.to_owned(), route.to_owned()))
            .unwrap_or_else(|| panic!("{name} on {route} never fired; seen: {seen:?}"))
    };
    let rel = |t: Option<Timestamp>| t.map(|t| (t - T0) / 1000);

    // The error burst (0 s to 80 s): the SLO page within two minutes, resolved once the
    // 5-minute window is clean, a few minutes after the burst.
    let slo = at("APIErrorBudgetBurn", "payments-route");
    assert!(rel(slo.fired) <= Some(120), "SLO alert fired at {:?} s", rel(slo.fired));
    let resolved = rel(slo.resolved).expect("the SLO alert resolves");
    assert!((80..=8 * 60).contains(&resolved), "SLO alert resolved at {resolved} s");
    // The page says what the error ratio was a day before: ordinary, far under the objective.
    let d1 = slo.d1.expect("D-1 context");
    assert!((0.0..0.001).contains(&d1), "D-1 error ratio {d1}");

    // The latency rise on search (3 m to 7 m): p99 over 2 s for a minute.
    let p99 = at("APIHighLatencyP99", "search-route");
    let fired = rel(p99.fired).expect("fired");
    assert!((180..=6 * 60).contains(&fired), "latency alert fired at {fired} s");
    assert!(rel(p99.resolved).expect("resolves") > 7 * 60);

    // The traffic drop on orders (8 m to 13 m), against both D-1 and D-7.
    let drop = at("APITrafficDrop", "orders-route");
    let fired = rel(drop.fired).expect("fired");
    assert!((8 * 60..=12 * 60).contains(&fired), "traffic drop fired at {fired} s");
    let resolved = rel(drop.resolved).expect("resolves");
    assert!(resolved > 13 * 60, "traffic drop resolved at {resolved} s");

    // Nothing else: every other route stayed quiet.
    let expected = [
        ("APIErrorBudgetBurn", "payments-route"),
        ("APIErrorRatioAnomaly", "payments-route"),
        ("APIHighLatencyP99", "payments-route"),
        ("APIHighLatencyP99", "search-route"),
        ("APITrafficDrop", "orders-route"),
    ];
    for (name, route) in seen.keys() {
        assert!(
            expected.contains(&(name.as_str(), route.as_str())),
            "unexpected alert {name} on {route}: {seen:?}"
        );
    }
}
