//! A dashboard state with fixed data, as the API would have delivered it.

#![allow(dead_code, unreachable_pub)]

use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use vigil_tui::api::{Alert, AlertState, Labels};
use vigil_tui::dashboard::Dashboards;
use vigil_tui::state::{App, ChartData, Curve, DetailData, Event, OverviewData, Row};

/// 2026-11-22 06:50:00 UTC.
pub const NOW: f64 = 1_795_330_200.0;

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn row(key: [&str; 3], values: [f64; 5], trend: f64) -> Row {
    Row {
        key: key.iter().map(|s| (*s).to_owned()).collect(),
        values: values.iter().map(|v| (!v.is_nan()).then_some(*v)).collect(),
        spark: (0..24)
            .map(|i| values[0] * (1.0 + trend * f64::from(i) / 24.0))
            .collect(),
    }
}

/// Columns: req/s, error %, p99, vs D-1, vs D-7.
pub fn overview() -> OverviewData {
    OverviewData {
        rows: vec![
            row(
                ["catalog", "products-route", "/v1/products/{id}"],
                [16.8, 0.0004, 0.088, 1.02, 0.97],
                0.1,
            ),
            row(
                ["orders", "orders-route", "/v1/orders/{id}"],
                [0.41, 0.0, 0.131, 0.05, 0.06],
                -0.9,
            ),
            row(
                ["payments", "payments-route", "/v2/payments"],
                [6.4, 0.874, 10.0, 1.01, 0.99],
                0.0,
            ),
            row(
                ["payments", "payments-route", "/v2/payments/{id}"],
                [4.3, 0.912, 9.1, 0.98, 1.03],
                0.0,
            ),
            row(
                ["search", "search-route", "/v1/search"],
                [14.9, 0.0011, 0.71, 1.04, 1.1],
                0.2,
            ),
            row(
                ["users", "auth-route", "/oauth2/token"],
                [7.2, f64::NAN, 0.052, 1.0, 1.0],
                0.0,
            ),
            row(
                ["users", "users-route", "/v1/users/{id}"],
                [12.0, 0.0002, 0.061, 0.99, 1.01],
                -0.1,
            ),
        ],
        at: NOW,
        errors: Vec::new(),
    }
}

pub fn alerts() -> Vec<Alert> {
    vec![
        Alert {
            labels: labels(&[
                ("alertname", "APIErrorBudgetBurn"),
                ("service", "payments"),
                ("route", "payments-route"),
                ("severity", "page"),
            ]),
            annotations: labels(&[("summary", "payments/payments-route is burning its error budget")]),
            state: AlertState::Firing,
            active_at: "2026-11-22T06:46:15Z".into(),
            value: 0.89,
            ack: None,
            silenced: false,
        },
        Alert {
            labels: labels(&[
                ("alertname", "APITrafficDrop"),
                ("service", "orders"),
                ("route", "orders-route"),
                ("severity", "warning"),
            ]),
            annotations: labels(&[("summary", "orders/orders-route traffic fell to 1.2 requests/s")]),
            state: AlertState::Pending,
            active_at: "2026-11-22T06:49:30Z".into(),
            value: 1.2,
            ack: None,
            silenced: false,
        },
    ]
}

/// A dashboard of `w` x `h` cells that has received the fixed overview and alerts.
pub fn app(w: u16, h: u16) -> App {
    let mut app = App::new(
        Dashboards::builtin().expect("shipped dashboards"),
        "http://127.0.0.1:9464",
        Rect::new(0, 0, w, h),
    );
    app.handle(Event::Overview(Ok(overview())));
    app.handle(Event::Alerts(Ok(alerts())));
    app.handle(Event::Tick(NOW));
    app
}

pub fn key(code: KeyCode) -> Event {
    Event::Term(TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

pub fn keys(app: &mut App, codes: &[KeyCode]) {
    for c in codes {
        app.handle(key(*c));
    }
}

pub fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        app.handle(key(KeyCode::Char(c)));
    }
}

/// The shown rows' paths, top to bottom.
pub fn paths(app: &App) -> Vec<String> {
    app.visible.iter().map(|&i| app.rows[i].key[2].clone()).collect()
}

/// Detail charts for `key` over `range` seconds: a wave now, flat D-1 and D-7.
pub fn detail(key: &[String], range: u64) -> DetailData {
    let r = range as f64;
    let wave = |scale: f64| -> Vec<(f64, f64)> {
        (0..=60)
            .map(|i| {
                (
                    -r + r * f64::from(i) / 60.0,
                    scale * (1.0 + (f64::from(i) / 6.0).sin() / 2.0),
                )
            })
            .collect()
    };
    let flat = |v: f64| -> Vec<(f64, f64)> { (0..=60).map(|i| (-r + r * f64::from(i) / 60.0, v)).collect() };
    let curve = |name: &str, points: Vec<(f64, f64)>| Curve {
        name: name.into(),
        points,
    };
    let charts = Dashboards::builtin().expect("dashboards").detail.charts;
    DetailData {
        key: key.to_vec(),
        range,
        end: NOW,
        charts: vec![
            ChartData {
                name: charts[0].name.clone(),
                unit: charts[0].unit,
                curves: vec![curve("now", wave(6.0)), curve("d1", flat(6.2)), curve("d7", flat(5.8))],
            },
            ChartData {
                name: charts[1].name.clone(),
                unit: charts[1].unit,
                curves: vec![
                    curve("now", wave(0.4)),
                    curve("d1", flat(0.001)),
                    curve("d7", flat(0.001)),
                ],
            },
            ChartData {
                name: charts[2].name.clone(),
                unit: charts[2].unit,
                curves: vec![
                    curve("p50", flat(0.26)),
                    curve("p99", wave(4.0)),
                    curve("p99_d1", flat(0.9)),
                ],
            },
        ],
        errors: Vec::new(),
    }
}

/// Two silences (one active, one expired) and four history entries, as the APIs answer.
pub fn on_call() -> vigil_tui::state::OnCallData {
    use vigil_tui::api::{HistoryEntry, Silence};
    let silence = |id: &str, matchers: &str, state: &str, ends_in: f64| Silence {
        id: id.into(),
        matchers: matchers.into(),
        state: state.into(),
        created_by: "alice".into(),
        comment: "deploying v2.3".into(),
        starts_at: NOW - 600.0,
        ends_at: NOW + ends_in,
    };
    let entry = |ago: f64, state: &str, receiver: &str, by: &str, comment: &str| HistoryEntry {
        time: NOW - ago,
        alertname: "APIErrorBudgetBurn".into(),
        state: state.into(),
        receiver: receiver.into(),
        by: by.into(),
        comment: comment.into(),
        labels: r#"{route="payments-route", service="payments"}"#.into(),
    };
    vigil_tui::state::OnCallData {
        silences: Ok(vec![
            silence("5f0c2a9e-1111", r#"service="search""#, "active", 2520.0),
            silence("0b1d7c3a-2222", r#"service="orders""#, "expired", -60.0),
        ]),
        history: Ok(vec![
            entry(30.0, "acknowledged", "", "bob", "rolling back"),
            entry(95.0, "failed", "oncall", "", "HTTP 500 (will retry)"),
            entry(100.0, "sent", "oncall", "", ""),
            entry(130.0, "firing", "", "", ""),
        ]),
    }
}

/// Two SLOs as vigil's API answers them: one with a spent budget, one without figures yet.
pub fn slos() -> Vec<vigil_tui::api::Slo> {
    use vigil_tui::api::{Slo, SloSeries};
    let series = |labels: &str, left: Option<f64>, burn: Option<f64>| SloSeries {
        labels: labels.into(),
        budget_left: left,
        burn_rate_1h: burn,
    };
    vec![
        Slo {
            name: "api-availability".into(),
            objective: 99.9,
            period: "30d".into(),
            sli: "availability".into(),
            series: vec![
                series(r#"route="payments-route", service="payments""#, Some(-0.42), Some(31.5)),
                series(r#"route="search-route", service="search""#, Some(0.18), Some(2.4)),
                series(r#"route="orders-route", service="orders""#, Some(0.97), Some(0.2)),
            ],
        },
        Slo {
            name: "api-latency".into(),
            objective: 99.0,
            period: "28d".into(),
            sli: "latency under 2.5s".into(),
            series: Vec::new(),
        },
    ]
}
