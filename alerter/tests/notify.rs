//! Notifications to real HTTP receivers on 127.0.0.1: one firing and one resolved payload per
//! group in Alertmanager's v4 shape, a page storm as one notification, retries through 500s, no
//! blocking by a receiver that never answers, Slack's Block Kit, console lines, a circuit breaker
//! that sends to the fallback receiver, and notifications that survive a restart in the outbox.

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
use vigil_alerter::notify::config::AlertingConfig;
use vigil_alerter::notify::{Notifier, PipelineAlert};
use vigil_tsdb::Labels;

/// How a test receiver answers: a list of statuses to return in turn (the last repeats), or
/// never.
#[derive(Clone)]
enum Behaviour {
    Statuses(Vec<u16>),
    /// As `Statuses`, each answer after a pause (the body is recorded when the answer goes).
    Slow(Vec<u16>, Duration),
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
        Behaviour::Statuses(s) | Behaviour::Slow(s, _) => {
            if let Behaviour::Slow(_, pause) = &r.behaviour {
                tokio::time::sleep(*pause).await;
            }
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

/// A configuration from YAML, with `{name}` placeholders replaced by receiver URLs.
fn config(yaml: &str, urls: &[(&str, SocketAddr)]) -> AlertingConfig {
    let mut yaml = yaml.to_owned();
    for (name, addr) in urls {
        yaml = yaml.replace(&format!("{{{name}}}"), &format!("http://{addr}/hook"));
    }
    serde_yaml_ng::from_str(&yaml).expect("valid alerting configuration")
}

const FIRED_AT: i64 = 1_795_305_660_000;

fn alert(route: &str, resolved: bool) -> PipelineAlert {
    PipelineAlert {
        labels: Labels::from_pairs([
            ("alertname", "PaymentsErrorBudgetBurn"),
            ("service", "payments"),
            ("route", route),
            ("severity", "page"),
        ]),
        annotations: vec![
            ("summary".into(), "payments is burning its error budget".into()),
            ("runbook_url".into(), "https://runbooks.example.com/slo".into()),
        ],
        starts_at: 1_795_305_600_000,
        fired_at: FIRED_AT,
        ends_at: resolved.then_some(1_795_305_900_000),
        value: 0.35,
        d1: Some(0.001),
        d7: None,
        rule_group: "slo".into(),
        expr: "x > 1".into(),
        ack: None,
    }
}

/// Fires `alerts`, then resolves them once the firing notifications are out.
async fn fire_then_resolve(n: &Notifier, routes: &[&str], fired: impl Fn() -> bool) {
    let now = vigil_tsdb::time::now_ms();
    n.sync(routes.iter().map(|r| alert(r, false)).collect(), now);
    wait_for(fired).await;
    n.sync(routes.iter().map(|r| alert(r, true)).collect(), now + 1);
}

const RECEIVERS: &str = r#"
receivers:
  - name: hang
    webhook: { url: "{hang}", timeout: 200ms }
    retry: { initial_backoff: 20ms, max_backoff: 100ms, give_up_after: 1s }
  - name: ok
    webhook: { url: "{ok}" }
  - name: flaky
    webhook: { url: "{flaky}" }
    retry: { initial_backoff: 20ms, max_backoff: 100ms }
  - name: slack
    slack: { url: "{slack}" }
  - name: log
    console: {}
route:
  receiver: ok
  group_by: [alertname, service]
  group_wait: 0s
  group_interval: 1s
  routes:
    # Listed first: a receiver that never answers must not delay the others.
    - { receiver: hang, continue: true }
    - { receiver: ok, continue: true }
    - { receiver: flaky, continue: true }
    - { receiver: slack, continue: true }
    - { receiver: log, continue: true }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_firing_and_one_resolved_notification_per_group_through_failures() {
    let (ok_addr, ok) = receiver(Behaviour::Statuses(vec![200])).await;
    let (flaky_addr, flaky) = receiver(Behaviour::Statuses(vec![500, 500, 200])).await;
    let (hang_addr, hang) = receiver(Behaviour::Hang).await;
    let (slack_addr, slack) = receiver(Behaviour::Statuses(vec![200])).await;
    let (console, console_out) = console_sink();
    let cfg = config(
        RECEIVERS,
        &[
            ("hang", hang_addr),
            ("ok", ok_addr),
            ("flaky", flaky_addr),
            ("slack", slack_addr),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let n = Notifier::start(&cfg, Some(dir.path()), "http://vigil.example.com".into(), &console).expect("start");
    let routes = ["payments-route", "refunds-route"];
    fire_then_resolve(&n, &routes, || {
        ok.bodies.lock().len() == 1 && flaky.bodies.lock().len() == 1 && slack.bodies.lock().len() == 1
    })
    .await;
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
        "truncatedAlerts",
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
    assert_eq!(
        fired["groupKey"],
        r#"{}/{}:{alertname="PaymentsErrorBudgetBurn", service="payments"}"#
    );
    assert_eq!(fired["groupLabels"]["service"], "payments");
    assert_eq!(fired["commonLabels"]["severity"], "page");
    assert!(
        fired["commonLabels"].get("route").is_none(),
        "routes differ: not common"
    );
    assert_eq!(
        fired["alerts"].as_array().map(Vec::len),
        Some(2),
        "one notification for the group"
    );
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
        "two 500s, then the firing notification, then the resolved one"
    );

    let msg = slack.bodies.lock()[0].clone();
    let text = msg.to_string();
    assert!(
        msg["blocks"][0]["text"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("FIRING: PaymentsErrorBudgetBurn (2 firing, 0 resolved)")),
        "{text}"
    );
    assert!(
        text.contains("payments payments-route")
            && text.contains("yesterday 1m")
            && text.contains("runbooks.example.com/slo"),
        "{text}"
    );

    let lines = String::from_utf8(console_out.lock().clone()).expect("utf-8");
    let lines: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 4, "a line per alert per notification");
    assert_eq!(
        (lines[0]["status"].as_str(), lines[0]["alertname"].as_str()),
        (Some("firing"), Some("PaymentsErrorBudgetBurn"))
    );

    // Delivered notifications leave the outbox; the hanging receiver's are given up after a second.
    let outbox = dir.path().join("outbox");
    wait_for(|| std::fs::read_dir(&outbox).map(Iterator::count).unwrap_or(1) == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_sends_to_the_fallback_and_the_receiver_gets_it_on_recovery() {
    let (sick_addr, sick) = receiver(Behaviour::Statuses(vec![200])).await;
    let (backup_addr, backup) = receiver(Behaviour::Statuses(vec![200])).await;
    sick.down.store(true, AtomicOrdering::SeqCst);
    let cfg = config(
        r#"
receivers:
  - name: sick
    webhook: { url: "{sick}" }
    fallback: backup
    retry: { initial_backoff: 20ms, max_backoff: 50ms, fallback_after: 1h }
    breaker: { request_volume_threshold: 3, error_percent_threshold: 50, window: 10s, sleep_window: 500ms }
  - name: backup
    webhook: { url: "{backup}" }
route: { receiver: sick, group_by: [alertname], group_wait: 0s }
"#,
        &[("sick", sick_addr), ("backup", backup_addr)],
    );
    let (console, _) = console_sink();
    let n = Notifier::start(&cfg, None, "http://vigil".into(), &console).expect("start");
    n.sync(vec![alert("r1", false)], vigil_tsdb::time::now_ms());
    // Three 503s open the circuit: the fallback gets the page, marked as a fallback.
    wait_for(|| backup.bodies.lock().len() == 1).await;
    let copy = backup.bodies.lock()[0].clone();
    assert_eq!(copy["receiver"], "backup");
    let open = n.telemetry();
    let state = open
        .iter()
        .find(|(l, _)| l.get("__name__") == Some("vigil_notify_breaker_state") && l.get("receiver") == Some("sick"))
        .map(|(_, v)| *v);
    assert!(matches!(state, Some(v) if v > 0.0), "open or probing: {state:?}");
    // The receiver recovers: the half-open probe delivers the page to it too, once.
    sick.down.store(false, AtomicOrdering::SeqCst);
    wait_for(|| sick.bodies.lock().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sick.bodies.lock().len(), 1);
    assert_eq!(backup.bodies.lock().len(), 1);
}

/// A restart is the death of the process: the first notifier runs on a runtime of its own that is
/// shut down with its workers mid-retry. The receiver keeps its port throughout (a released port
/// could be handed to another test's server) and answers 503 until "the outage" ends.
#[test]
fn notifications_survive_a_restart_in_the_outbox() {
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
    let yaml = |retry: &str| {
        format!(
            "receivers:\n  - name: ops\n    webhook: {{ url: \"{{ops}}\" }}\n    retry: {retry}\n    breaker: {{ request_volume_threshold: 1000 }}\nroute: {{ receiver: ops, group_by: [alertname], group_wait: 0s, group_interval: 1s }}\n"
        )
    };

    let first = runtime();
    first.block_on(async {
        let cfg = config(&yaml("{ initial_backoff: 1m, max_backoff: 1m }"), &[("ops", addr)]);
        let n = Notifier::start(&cfg, Some(dir.path()), "http://vigil".into(), &console).expect("start");
        n.sync(vec![alert("r1", false)], vigil_tsdb::time::now_ms());
        // The firing notification was tried and refused; its worker now waits a minute to retry.
        wait_for(|| *r.calls.lock() >= 1).await;
        wait_for(|| std::fs::read_dir(&outbox).map(Iterator::count).unwrap_or(0) == 1).await;
    });
    first.shutdown_background();
    assert_eq!(std::fs::read_dir(&outbox).map(Iterator::count).ok(), Some(1));

    // "Restart" with the receiver up: the notification in the outbox goes out once; the rules'
    // alerts handed over again are not notified again; the resolution follows.
    r.down.store(false, AtomicOrdering::SeqCst);
    let second = runtime();
    second.block_on(async {
        let cfg = config(&yaml("{ initial_backoff: 20ms, max_backoff: 100ms }"), &[("ops", addr)]);
        let n = Notifier::start(&cfg, Some(dir.path()), "http://vigil".into(), &console).expect("restart");
        let now = vigil_tsdb::time::now_ms();
        n.sync(vec![alert("r1", false)], now);
        wait_for(|| r.bodies.lock().len() == 1).await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(r.bodies.lock().len(), 1, "the same state is not sent twice");
        n.sync(vec![alert("r1", true)], now + 1);
        wait_for(|| r.bodies.lock().len() == 2).await;
        wait_for(|| std::fs::read_dir(&outbox).map(Iterator::count).unwrap_or(1) == 0).await;
    });
    let statuses: Vec<Value> = r.bodies.lock().iter().map(|b| b["status"].clone()).collect();
    assert_eq!(statuses, vec!["firing", "resolved"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_triggers_and_resolves_one_incident_per_group() {
    let (addr, pd) = receiver(Behaviour::Statuses(vec![202])).await;
    let cfg = config(
        r#"
receivers:
  - name: pd
    pagerduty: { routing_key: "R0UT1NGKEY", url: "{pd}", client_url: "https://vigil.example.com" }
route: { receiver: pd, group_by: [alertname, service], group_wait: 0s, group_interval: 1s }
"#,
        &[("pd", addr)],
    );
    let (console, _) = console_sink();
    let n = Notifier::start(&cfg, None, "http://vigil".into(), &console).expect("start");
    fire_then_resolve(&n, &["r1", "r2"], || pd.bodies.lock().len() == 1).await;
    wait_for(|| pd.bodies.lock().len() == 2).await;
    let events = pd.bodies.lock().clone();
    let (trigger, resolve) = (&events[0], &events[1]);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], "R0UT1NGKEY");
    let key = trigger["dedup_key"].as_str().expect("dedup_key");
    assert_eq!(key.len(), 64, "SHA-256 of the group key in hex");
    assert_eq!(
        key,
        vigil_alerter::notify::dedup_key(r#"{}:{alertname="PaymentsErrorBudgetBurn", service="payments"}"#)
    );
    assert_eq!(trigger["client_url"], "https://vigil.example.com");
    let payload = &trigger["payload"];
    assert_eq!(payload["severity"], "critical", "severity=page");
    assert_eq!(payload["source"], "payments");
    assert!(
        payload["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("[FIRING:2] PaymentsErrorBudgetBurn payments"))
    );
    assert_eq!(payload["custom_details"]["num_firing"], 2);
    assert_eq!(trigger["links"][0]["href"], "https://runbooks.example.com/slo");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], key);
}

/// A newer state of a group arriving while the half-open probe carries the older one: the probe
/// is not cut off (the breaker would wait for its answer for ever), and the receiver gets both
/// states, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_state_waits_for_the_probe_and_the_circuit_closes() {
    let (addr, r) = receiver(Behaviour::Slow(vec![503, 503, 503, 200], Duration::from_millis(300))).await;
    let cfg = config(
        r#"
receivers:
  - name: sick
    webhook: { url: "{sick}" }
    retry: { initial_backoff: 20ms, max_backoff: 50ms }
    breaker: { request_volume_threshold: 3, error_percent_threshold: 50, window: 10s, sleep_window: 200ms }
route: { receiver: sick, group_by: [alertname], group_wait: 0s, group_interval: 100ms }
"#,
        &[("sick", addr)],
    );
    let (console, _) = console_sink();
    let n = Notifier::start(&cfg, None, "http://vigil".into(), &console).expect("start");
    let now = vigil_tsdb::time::now_ms();
    n.sync(vec![alert("r1", false)], now);
    // Three 503s open the circuit; the fourth call is the probe, answered after 300 ms.
    wait_for(|| *r.calls.lock() >= 4).await;
    n.sync(vec![alert("r1", true)], now + 1);
    wait_for(|| r.bodies.lock().len() == 2).await;
    let statuses: Vec<Value> = r.bodies.lock().iter().map(|b| b["status"].clone()).collect();
    assert_eq!(statuses, vec!["firing", "resolved"]);
    let state = n
        .telemetry()
        .iter()
        .find(|(l, _)| l.get("__name__") == Some("vigil_notify_breaker_state"))
        .map(|(_, v)| *v);
    assert_eq!(state, Some(0.0), "closed again");
}
