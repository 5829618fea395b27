//! Forwarding to a real Alertmanager (Debian's `prometheus-alertmanager`, which `.ci/run`
//! installs): vigil's firing alerts appear in Alertmanager as Prometheus would send them, and
//! resolve there when vigil resolves them. Without the binary the test says so and passes,
//! unless `VIGIL_REQUIRE_EXTERNAL=1` (set by `.ci/run`) makes it fail.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Server, external_tool, free_addr, get, post, wait_until};
use serde_json::Value;

const BINARY: &str = "prometheus-alertmanager";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const RULES: &str = r#"
groups:
  - name: api
    interval: 1s
    rules:
      - alert: RouteErrors
        expr: label_replace(vector(0.3), "route", "r1", "", "")
        labels: { service: payments, severity: page }
        annotations: { summary: "payments fails" }
"#;

#[test]
fn alerts_are_forwarded_to_an_alertmanager_and_resolve_there() {
    if !external_tool(BINARY, "prometheus-alertmanager") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let am_cfg = tmp.path().join("am.yml");
    std::fs::write(&am_cfg, "route: { receiver: nobody }\nreceivers: [{ name: nobody }]\n").expect("write");
    let am_addr = free_addr();
    let _am = Killed(
        Command::new(BINARY)
            .arg(format!("--config.file={}", am_cfg.display()))
            .arg(format!("--storage.path={}", tmp.path().join("am-data").display()))
            .arg(format!("--web.listen-address={am_addr}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager"),
    );
    wait_until(Duration::from_secs(30), || get(am_addr, "/-/ready").0 == 200);

    let rules = tmp.path().join("rules.yml");
    std::fs::write(&rules, RULES).expect("write rules");
    let server = Server::start(
        &tmp.path().join("data"),
        &format!(
            "rule_files: ['{}']\nalerting:\n  alertmanagers: ['http://{am_addr}']\n  receivers: [{{ name: log, console: {{}} }}]\n",
            rules.display()
        ),
    );
    let am_alerts = || -> Vec<Value> {
        let (status, body) = get(am_addr, "/api/v2/alerts");
        if status != 200 {
            return Vec::new();
        }
        serde_json::from_str::<Vec<Value>>(&body).unwrap_or_default()
    };
    wait_until(Duration::from_secs(30), || !am_alerts().is_empty());
    let a = am_alerts()[0].clone();
    assert_eq!(a["labels"]["alertname"], "RouteErrors");
    assert_eq!(a["labels"]["service"], "payments");
    assert_eq!(a["annotations"]["summary"], "payments fails");
    assert_eq!(a["status"]["state"], "active");
    assert!(
        a["generatorURL"]
            .as_str()
            .is_some_and(|u| u.contains("/graph?g0.expr=")),
        "{a}"
    );

    // The rule goes away: vigil resolves the alert, and Alertmanager hears it.
    std::fs::write(&rules, "groups: []\n").expect("write rules");
    assert_eq!(post(server.addr, "/-/reload", b"").0, 200);
    wait_until(Duration::from_secs(60), || am_alerts().is_empty());
    server.stop();
}
