//! Pages to real HTTP receivers on 127.0.0.1: exactly one firing and one resolved payload per
//! alert in Alertmanager's v4 shape, retries through 500s, no blocking by a receiver that never
//! answers, Slack's Block Kit, console lines, and pages that survive a restart in the outbox.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::Value;
use vigil_alerter::alert::{Alert, AlertState, Transition};
use vigil_alerter::notify::config::{
    AlertingConfig, ConsoleConfig, ReceiverConfig, RetryConfig, SlackConfig, WebhookConfig,
};
use vigil_alerter::{Notice, Notifier};
use vigil_tsdb::Labels;

/// How a test receiver answers: a list of statuses to return in turn (the last repeats), or
/// never.
#[derive(Clone)]
enum Behaviour {
    Statuses(Vec<u16>),
    Hang,
}

#[derive(Clone)]
struct Recorder {
    bodies: Arc<Mutex<Vec<Value>>>,
    behaviour: Behaviour,
    calls: Arc<Mutex<usize>>,
    /// While set, every call is answered 503 and nothing is recorded (an outage).
    down: Arc<AtomicBool>,
}

async fn receive(State(r): State<Recorder>, body: String) -> StatusCode {
    let n = {
        let mut c = r.calls.lock();
        *c += 1;
        *c
    };
    if r.down.load(AtomicOrdering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match &r.behaviour {
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK
        }
        Behaviour::Statuses(s) => {
            let code = s.get(n - 1).or(s.last()).copied().unwrap_or(200);
            if (200..300).contains(&code) {
                r.bodies.lock().push(serde_json::from_str(&body).expect("JSON body"));
            }
            StatusCode::from_u16(code).expect("valid status")
        }
    }
}

/// Starts an HTTP receiver on a free loopback port.
async fn receiver(behaviour: Behaviour) -> (SocketAddr, Recorder) {
    let r = Recorder {
        bodies: Arc::default(),
        behaviour,
        calls: Arc::default(),
        down: Arc::default(),
    };
    let app = Router::new().route("/hook", post(receive)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (addr, r)
}

fn fast_retry() -> RetryConfig {
    RetryConfig {
        initial_backoff: 20,
        max_backoff: 100,
        give_up_after: 10_000,
    }
}

fn webhook(name: &str, addr: SocketAddr, timeout: i64, retry: RetryConfig) -> ReceiverConfig {
    ReceiverConfig {
        name: name.into(),
        webhook: Some(WebhookConfig {
            url: format!("http://{addr}/hook"),
            timeout,
        }),
        slack: None,
        console: None,
        retry,
    }
}

fn alert(state: AlertState) -> Alert {
    Alert {
        labels: Labels::from_pairs([
            ("alertname", "PaymentsErrorBudgetBurn"),
            ("service", "payments"),
            ("route", "payments-route"),
            ("severity", "page"),
        ]),
        annotations: vec![
            ("summary".into(), "payments is burning its error budget".into()),
            ("runbook_url".into(), "https://runbooks.example.com/slo".into()),
        ],
        state,
        active_at: 1_795_305_600_000,
        fired_at: Some(1_795_305_660_000),
        resolved_at: (state == AlertState::Inactive).then_some(1_795_305_900_000),
        keep_firing_since: None,
        value: 0.35,
    }
}

fn notices() -> Vec<Notice> {
    let n = |t| Notice {
        transition: t,
        group: "slo".into(),
        file: "slo.yml".into(),
        expr: "x > 1".into(),
        d1: Some(0.001),
        d7: None,
    };
    vec![
        n(Transition::Fired(alert(AlertState::Firing))),
        n(Transition::Resolved(alert(AlertState::Inactive))),
    ]
}

/// Waits for `f` to hold, for up to a minute: generous, for a loaded CI machine; a passing
/// test waits only as long as it needs.
async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 60 s");
}

type ConsoleWriter = Arc<Mutex<Box<dyn std::io::Write + Send>>>;

fn console_sink() -> (ConsoleWriter, Arc<Mutex<Vec<u8>>>) {
    #[derive(Clone)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    (Arc::new(Mutex::new(Box::new(Shared(buf.clone())))), buf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_firing_and_one_resolved_page_per_alert_through_failures() {
    let (ok_addr, ok) = receiver(Behaviour::Statuses(vec![200])).await;
    let (flaky_addr, flaky) = receiver(Behaviour::Statuses(vec![500, 500, 200])).await;
    let (hang_addr, hang) = receiver(Behaviour::Hang).await;
    let (slack_addr, slack) = receiver(Behaviour::Statuses(vec![200])).await;
    let (console, console_out) = console_sink();
    let cfg = AlertingConfig {
        receivers: vec![
            // Listed first: a receiver that never answers must not delay the others.
            webhook(
                "hang",
                hang_addr,
                200,
                RetryConfig {
                    give_up_after: 1_000,
                    ..fast_retry()
                },
            ),
            webhook("ok", ok_addr, 5_000, fast_retry()),
            webhook("flaky", flaky_addr, 5_000, fast_retry()),
            ReceiverConfig {
                name: "slack".into(),
                webhook: None,
                slack: Some(SlackConfig {
                    url: vigil_alerter::Secret::new(format!("http://{slack_addr}/hook")),
                    channel: None,
                    timeout: 5_000,
                }),
                console: None,
                retry: fast_retry(),
            },
            ReceiverConfig {
                name: "log".into(),
                webhook: None,
                slack: None,
                console: Some(ConsoleConfig {}),
                retry: fast_retry(),
            },
        ],
        route: None,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = dir.path().join("outbox");
    let n = Notifier::start(&cfg, Some(&outbox), "http://vigil.example.com".into(), &console).expect("start");
    n.deliver(notices());

    wait_for(|| ok.bodies.lock().len() == 2 && flaky.bodies.lock().len() == 2 && slack.bodies.lock().len() == 2).await;
    // The never-answering receiver was tried but blocked nobody.
    assert!(*hang.calls.lock() >= 1);

    let pages = ok.bodies.lock().clone();
    let statuses: Vec<&str> = pages.iter().map(|p| p["status"].as_str().unwrap_or_default()).collect();
    assert_eq!(statuses, vec!["firing", "resolved"]);
    let fired = &pages[0];
    for key in [
        "version",
        "groupKey",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    ] {
        assert!(fired.get(key).is_some(), "v4 payload lacks {key}: {fired}");
    }
    assert_eq!(fired["version"], "4");
    assert_eq!(fired["receiver"], "ok");
    assert_eq!(fired["groupLabels"]["alertname"], "PaymentsErrorBudgetBurn");
    let a = &fired["alerts"][0];
    for key in [
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    ] {
        assert!(a.get(key).is_some(), "v4 alert lacks {key}: {a}");
    }
    assert_eq!(a["labels"]["service"], "payments");
    assert_eq!(a["startsAt"], "2026-11-22T00:00:00.000Z");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(a["fingerprint"].as_str().map(str::len), Some(16));
    assert!(
        a["generatorURL"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://vigil.example.com/graph?g0.expr=x+%3E+1"))
    );
    assert_eq!(pages[1]["alerts"][0]["endsAt"], "2026-11-22T00:05:00.000Z");
    assert_eq!(
        *flaky.calls.lock(),
        4,
        "two 500s, then the firing page, then the resolved one"
    );

    let msg = slack.bodies.lock()[0].clone();
    let text = msg.to_string();
    assert!(
        msg["blocks"][0]["text"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("FIRING: PaymentsErrorBudgetBurn")),
        "{text}"
    );
    assert!(
        text.contains("payments payments-route")
            && text.contains("Yesterday (D-1)")
            && text.contains("runbooks.example.com/slo"),
        "{text}"
    );

    let lines = String::from_utf8(console_out.lock().clone()).expect("utf-8");
    let lines: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["status"].as_str(), lines[0]["alertname"].as_str()),
        (Some("firing"), Some("PaymentsErrorBudgetBurn"))
    );

    // Delivered pages leave the outbox; the hanging receiver's are given up after a second.
    wait_for(|| std::fs::read_dir(&outbox).map(Iterator::count).unwrap_or(1) == 0).await;
}

/// A restart is the death of the process: the first notifier runs on a runtime of its own that is
/// shut down with its workers mid-retry. The receiver keeps its port throughout (a released port
/// could be handed to another test's server) and answers 503 until "the outage" ends.
#[test]
fn pages_survive_a_restart_in_the_outbox() {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = dir.path().join("outbox");
    let (console, _) = console_sink();
    let server = runtime();
    let (addr, r) = server.block_on(receiver(Behaviour::Statuses(vec![200])));
    r.down.store(true, AtomicOrdering::SeqCst);

    let first = runtime();
    first.block_on(async {
        let slow_retry = RetryConfig {
            initial_backoff: 60_000,
            max_backoff: 60_000,
            give_up_after: 3_600_000,
        };
        let cfg = AlertingConfig {
            receivers: vec![webhook("ops", addr, 1_000, slow_retry)],
            route: None,
        };
        let n = Notifier::start(&cfg, Some(&outbox), "http://vigil".into(), &console).expect("start");
        n.deliver(notices());
        wait_for(|| std::fs::read_dir(&outbox).map(Iterator::count).unwrap_or(0) == 2).await;
        // The firing page was tried and refused; its worker now waits a minute to retry.
        wait_for(|| *r.calls.lock() >= 1).await;
    });
    first.shutdown_background();
    assert_eq!(std::fs::read_dir(&outbox).map(Iterator::count).ok(), Some(2));

    // "Restart" with the receiver up: the pages in the outbox go out, in order, once each.
    r.down.store(false, AtomicOrdering::SeqCst);
    let second = runtime();
    second.block_on(async {
        let cfg = AlertingConfig {
            receivers: vec![webhook("ops", addr, 1_000, fast_retry())],
            route: None,
        };
        let _n = Notifier::start(&cfg, Some(&outbox), "http://vigil".into(), &console).expect("restart");
        wait_for(|| r.bodies.lock().len() == 2).await;
        wait_for(|| std::fs::read_dir(&outbox).map(Iterator::count).unwrap_or(1) == 0).await;
    });
    let statuses: Vec<Value> = r.bodies.lock().iter().map(|b| b["status"].clone()).collect();
    assert_eq!(statuses, vec!["firing", "resolved"]);
}
