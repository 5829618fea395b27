//! Alertmanager's own client, `amtool`, against a running vigil: it adds, lists and expires a
//! silence, and queries alerts; the silenced group is not paged while the silence lasts and is
//! paged once it is expired. vigil reads an `alertmanager.yml` that `amtool check-config` accepts.
//!
//! Needs `amtool` (Debian's `prometheus-alertmanager` package, which `.ci/run` installs).
//! Without it the test says so and passes, unless `VIGIL_REQUIRE_EXTERNAL=1` (set by `.ci/run`)
//! makes it fail.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Server, external_tool, post, wait_until, webhook_receiver};
use serde_json::Value;

fn run(args: &[&str]) -> String {
    let out = Command::new("amtool").args(args).output().expect("amtool runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "amtool {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

const RULES: &str = r#"
groups:
  - name: api
    interval: 1s
    rules:
      - alert: RouteErrors
        expr: label_replace(vector(1), "route", "r1", "", "") or label_replace(vector(1), "route", "r2", "", "")
        labels: { service: payments, severity: page }
        annotations: { summary: "payments fails" }
      - alert: RouteErrors
        expr: label_replace(vector(1), "route", "o1", "", "")
        labels: { service: orders, severity: page }
"#;

#[test]
fn amtool_silences_and_queries_vigil() {
    if !external_tool("amtool", "prometheus-alertmanager") {
        return;
    }
    let (hook, received) = webhook_receiver();
    let tmp = tempfile::tempdir().expect("tempdir");
    let rules_dir = tmp.path().join("rules");
    std::fs::create_dir_all(&rules_dir).expect("mkdir");
    let am = tmp.path().join("alertmanager.yml");
    std::fs::write(
        &am,
        format!(
            "route:\n  receiver: team\n  group_by: [alertname, service]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: 'http://{hook}/hook'\n"
        ),
    )
    .expect("write alertmanager.yml");
    run(&["check-config", am.to_str().expect("utf-8")]);
    let server = Server::start(
        &tmp.path().join("data"),
        &format!(
            "rule_files: ['{}/*.yml']\nalerting:\n  alertmanager_config: {}\n",
            rules_dir.display(),
            am.display()
        ),
    );
    let url = format!("--alertmanager.url=http://{}", server.addr);

    // A silence first, then the rules: the payments group must not be paged.
    let id = run(&[
        &url,
        "silence",
        "add",
        "service=payments",
        "--comment=deploying",
        "--author=alice",
        "--duration=1h",
    ]);
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id:?}");
    let listed = run(&[&url, "silence", "query", "-o", "json"]);
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["createdBy"], "alice");
    assert_eq!(listed[0]["status"]["state"], "active");
    let simple = run(&[&url, "silence", "query", "service=payments"]);
    assert!(simple.contains(&id) && simple.contains("deploying"), "{simple}");

    std::fs::write(rules_dir.join("api.yml"), RULES).expect("write rules");
    assert_eq!(post(server.addr, "/-/reload", b"").0, 200);
    wait_until(Duration::from_secs(30), || !received.lock().is_empty());
    std::thread::sleep(Duration::from_secs(5));
    {
        let pages = received.lock();
        assert_eq!(pages.len(), 1, "only the orders group: {pages:?}");
        assert_eq!(pages[0]["groupLabels"]["service"], "orders");
    }

    // amtool sees the alerts: the payments ones silenced by the silence, the orders one active.
    let silenced: Value =
        serde_json::from_str(&run(&[&url, "alert", "query", "--silenced", "-o", "json"])).expect("JSON");
    let silenced = silenced.as_array().expect("a list");
    assert_eq!(silenced.len(), 2, "{silenced:?}");
    for a in silenced {
        assert_eq!(a["status"]["state"], "suppressed");
        assert_eq!(a["status"]["silencedBy"][0], id.as_str());
        assert_eq!(a["labels"]["service"], "payments");
    }
    let active: Value = serde_json::from_str(&run(&[&url, "alert", "query", "-o", "json"])).expect("JSON");
    let active = active.as_array().expect("a list");
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["labels"]["service"], "orders");
    assert_eq!(active[0]["receivers"][0]["name"], "team");
    let table = run(&[&url, "alert", "query", "alertname=RouteErrors"]);
    assert!(table.contains("RouteErrors"), "{table}");

    // Expired, the silence stops muting: the payments group is paged with both routes.
    run(&[&url, "silence", "expire", &id]);
    wait_until(Duration::from_secs(30), || received.lock().len() == 2);
    {
        let pages = received.lock();
        assert_eq!(pages[1]["groupLabels"]["service"], "payments");
        assert_eq!(pages[1]["alerts"].as_array().map(Vec::len), Some(2));
    }
    let expired = run(&[&url, "silence", "query", "--expired", "-o", "json"]);
    let expired: Value = serde_json::from_str(&expired).expect("JSON");
    assert_eq!(expired[0]["status"]["state"], "expired");
    // Nothing more: the groups are unchanged, and the repeat interval is an hour.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(received.lock().len(), 2);

    // The status amtool shows, with the configuration as read.
    let config = run(&[&url, "config", "show"]);
    assert!(config.contains("group_interval"), "{config}");
    server.stop();
}
