//! `vigil ack` against a running vigil: the acknowledged group's receiver gets one notice saying
//! who is on it, the group stops repeating while the other group keeps repeating, and the API
//! and `vigil silences` show what is going on.

mod common;

use std::time::Duration;

use common::{Server, get, run, wait_until, webhook_receiver};
use serde_json::Value;

const RULES: &str = r#"
groups:
  - name: api
    interval: 1s
    rules:
      - alert: RouteErrors
        expr: label_replace(vector(1), "route", "r1", "", "")
        labels: { service: payments, severity: page }
      - alert: RouteErrors
        expr: label_replace(vector(1), "route", "o1", "", "")
        labels: { service: orders, severity: page }
"#;

#[test]
fn an_ack_tells_the_receiver_once_and_stops_the_repeats() {
    let (hook, received) = webhook_receiver();
    let tmp = tempfile::tempdir().expect("tempdir");
    let rules = tmp.path().join("rules.yml");
    std::fs::write(&rules, RULES).expect("write rules");
    let server = Server::start(
        &tmp.path().join("data"),
        &format!(
            "rule_files: ['{}']\nalerting:\n  receivers:\n    - name: team\n      webhook: {{ url: 'http://{hook}/hook' }}\n  route: {{ receiver: team, group_by: [alertname, service], group_wait: 0s, group_interval: 1s, repeat_interval: 3s }}\n",
            rules.display()
        ),
    );
    let url = format!("http://{}", server.addr);
    let pages = |service: &str, ack: bool| {
        received
            .lock()
            .iter()
            .filter(|p| p["groupLabels"]["service"] == service && p.get("acknowledgement").is_some() == ack)
            .count()
    };
    wait_until(Duration::from_secs(30), || {
        pages("orders", false) >= 1 && pages("payments", false) >= 1
    });

    let out = run(&[
        "ack",
        "--url",
        &url,
        "service=orders",
        "--author",
        "bob",
        "--comment",
        "rolling back",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("acknowledged 1 alert as bob"), "{stdout}");
    wait_until(Duration::from_secs(10), || pages("orders", true) == 1);
    let notice = received
        .lock()
        .iter()
        .find(|p| p.get("acknowledgement").is_some())
        .cloned()
        .expect("the notice");
    assert_eq!(notice["acknowledgement"]["by"], "bob");
    assert_eq!(notice["acknowledgement"]["comment"], "rolling back");
    assert_eq!(notice["alerts"][0]["labels"]["route"], "o1");

    // Over the next seconds payments repeats (every 3 s); orders stays quiet.
    let (orders, payments) = (pages("orders", false), pages("payments", false));
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(pages("orders", false), orders, "no repeat for an acknowledged group");
    assert!(pages("payments", false) >= payments + 2, "the other group repeats");
    assert_eq!(pages("orders", true), 1, "one notice");

    // The API shows who is on it.
    let (status, body) = get(server.addr, "/api/v2/alerts?filter=service%3D%22orders%22");
    assert_eq!(status, 200, "{body}");
    let alerts: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(alerts[0]["acknowledgement"]["by"], "bob");
    // Acknowledging what is not firing is a clear error.
    let out = run(&["ack", "--url", &url, "service=nothing", "--author", "bob"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no firing alert matches"));
    // No silences yet.
    let out = run(&["silences", "--url", &url]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no silences\n");

    // `vigil status` shows each receiver's delivery.
    let out = run(&["status", "--url", &url]);
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("notifications:"), "{status}");
    assert!(
        status
            .lines()
            .any(|l| l.trim_start().starts_with("team") && l.contains("webhook") && l.contains("closed")),
        "{status}"
    );

    // The alert history: what fired, what was sent to whom, and who acknowledged it.
    let history = || {
        let out = run(&[
            "events",
            "--url",
            &url,
            "kept:history AND service:orders",
            "--limit",
            "100",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_until(Duration::from_secs(20), || {
        let h = history();
        h.contains("FIRING") && h.contains("SENT") && h.contains("ACKNOWLEDGED")
    });
    let h = history();
    assert!(h.contains("RouteErrors"), "{h}");
    assert!(h.contains("→ team"), "{h}");
    assert!(h.contains("by bob: rolling back"), "{h}");
    server.stop();
}
