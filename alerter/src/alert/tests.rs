//! The state machine step by step, as tables: at each evaluation time the rule's result holds the
//! alert (with a value) or not, and the state and transition that follow are spelled out.

use super::*;

/// One evaluation: time (s), the value if the condition holds, the expected state afterwards
/// (`None`: the alert is gone), and the transition expected at this step.
type Step = (i64, Option<f64>, Option<AlertState>, Option<&'static str>);

fn run(for_s: i64, keep_s: i64, steps: &[Step]) {
    let labels = Labels::from_pairs([("alertname", "HighErrorRatio"), ("service", "payments")]);
    let mut set = AlertSet::default();
    for (i, &(t, value, want_state, want_transition)) in steps.iter().enumerate() {
        let candidates: Vec<Candidate> = value
            .into_iter()
            .map(|v| Candidate {
                labels: labels.clone(),
                annotations: Vec::new(),
                value: v,
            })
            .collect();
        let ts = t * 1000;
        let transitions = set
            .eval(ts, candidates, for_s * 1000, keep_s * 1000)
            .expect("no duplicates");
        let state = set.alerts().next().map(|a| a.state);
        assert_eq!(state, want_state, "step {i} (t={t}s): state");
        let got: Vec<&str> = transitions
            .iter()
            .map(|t| match t {
                Transition::Pending(_) => "pending",
                Transition::Fired(_) => "fired",
                Transition::Resolved(_) => "resolved",
            })
            .collect();
        assert_eq!(
            got,
            want_transition.into_iter().collect::<Vec<_>>(),
            "step {i} (t={t}s): transitions"
        );
    }
}

use AlertState::{Firing, Inactive, Pending};

#[test]
fn pending_then_firing_then_resolved() {
    run(
        60,
        0,
        &[
            (0, None, None, None),
            (10, Some(0.3), Some(Pending), None),
            (40, Some(0.4), Some(Pending), None),
            // `for` is measured from the first active evaluation: 10 s + 60 s.
            (69, Some(0.4), Some(Pending), None),
            (70, Some(0.5), Some(Firing), Some("fired")),
            (100, Some(0.5), Some(Firing), None),
            (130, None, Some(Inactive), Some("resolved")),
            (160, None, Some(Inactive), None),
            // Kept for 15 minutes after resolving, then dropped.
            (130 + 15 * 60, None, Some(Inactive), None),
            (131 + 15 * 60, None, None, None),
        ],
    );
}

#[test]
fn a_pending_alert_that_goes_away_never_fires() {
    run(
        60,
        0,
        &[
            (0, Some(1.0), Some(Pending), None),
            (30, None, None, None),
            (60, Some(1.0), Some(Pending), None),
            (90, Some(1.0), Some(Pending), None),
            (120, Some(1.0), Some(Firing), Some("fired")),
        ],
    );
}

#[test]
fn no_for_fires_at_once() {
    run(
        0,
        0,
        &[
            (0, Some(1.0), Some(Firing), Some("fired")),
            (10, None, Some(Inactive), Some("resolved")),
        ],
    );
}

#[test]
fn keep_firing_for_holds_a_flapping_alert() {
    run(
        0,
        60,
        &[
            (0, Some(1.0), Some(Firing), Some("fired")),
            (10, None, Some(Firing), None),
            (40, None, Some(Firing), None),
            // Back before the 60 s ran out: still one firing, nothing sent.
            (50, Some(1.0), Some(Firing), None),
            (60, None, Some(Firing), None),
            (119, None, Some(Firing), None),
            (120, None, Some(Inactive), Some("resolved")),
        ],
    );
}

#[test]
fn a_resolved_alert_that_comes_back_starts_again() {
    run(
        20,
        0,
        &[
            (0, Some(1.0), Some(Pending), None),
            (20, Some(1.0), Some(Firing), Some("fired")),
            (30, None, Some(Inactive), Some("resolved")),
            (40, Some(1.0), Some(Pending), None),
            (60, Some(1.0), Some(Firing), Some("fired")),
        ],
    );
}

#[test]
fn alerts_series_and_duplicates() {
    let labels = Labels::from_pairs([("alertname", "A"), ("service", "orders")]);
    let c = Candidate {
        labels: labels.clone(),
        annotations: Vec::new(),
        value: 2.0,
    };
    let mut set = AlertSet::default();
    set.eval(5_000, vec![c.clone()], 60_000, 0).expect("ok");
    let series = set.series();
    assert_eq!(
        series[0].0.to_string(),
        r#"ALERTS{alertname="A", alertstate="pending", service="orders"}"#
    );
    assert_eq!(
        series[1],
        (
            Labels::from_pairs([
                ("__name__", "ALERTS_FOR_STATE"),
                ("alertname", "A"),
                ("service", "orders")
            ]),
            5.0
        )
    );
    assert_eq!(set.eval(6_000, vec![c.clone(), c], 60_000, 0), Err(DuplicateLabelset));
}

#[test]
fn state_round_trips_through_json() {
    let mut set = AlertSet::default();
    let labels = Labels::from_pairs([("alertname", "A")]);
    set.eval(
        0,
        vec![Candidate {
            labels,
            annotations: vec![("summary".into(), "x".into())],
            value: 1.0,
        }],
        0,
        0,
    )
    .expect("ok");
    let json = serde_json::to_string(&set).expect("serialize");
    let back: AlertSet = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, set);
}
