//! Prometheus's own client, `promtool`, must be able to query vigil: instant, range, series and
//! label queries against events ingested a moment ago.
//!
//! Needs `promtool` (Debian's `prometheus` package, which `.ci/run` installs). Without it the test
//! says so and passes, unless `VIGIL_REQUIRE_EXTERNAL=1` (set by `.ci/run`) makes it fail.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Server, kong_event, post, value, wait_until};
use vigil_tsdb::time::now_ms;

fn promtool() -> Option<String> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool".into());
    }
    assert!(
        std::env::var_os("VIGIL_REQUIRE_EXTERNAL").is_none(),
        "promtool is required (VIGIL_REQUIRE_EXTERNAL is set): install Debian's prometheus package"
    );
    eprintln!("promtool not found: skipping (install Debian's prometheus package to run this test)");
    None
}

fn run(promtool: &str, args: &[&str]) -> String {
    let out = Command::new(promtool).args(args).output().expect("promtool runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "promtool {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn promtool_queries_vigil() {
    let Some(promtool) = promtool() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&tmp.path().join("data"), "collector:\n  window: 1s\n");
    let t = now_ms() - 60_000;
    let body: Vec<String> = (0..3)
        .map(|i| kong_event(t + i, "GET", &format!("/v1/orders/{i}"), 200, 12))
        .collect();
    let (status, _) = post(server.addr, "/ingest/kong", body.join("\n").as_bytes());
    assert_eq!(status, 200);
    wait_until(Duration::from_secs(30), || {
        value(server.addr, "sum(vigil_http_requests_total)", now_ms()) == Some(3.0)
    });

    let url = format!("http://{}", server.addr);
    let out = run(&promtool, &["query", "instant", &url, "sum(vigil_http_requests_total)"]);
    assert!(out.starts_with("{} => 3 @["), "{out}");
    let now = now_ms() / 1000;
    let (start, end) = ((now - 30).to_string(), now.to_string());
    let out = run(
        &promtool,
        &[
            "query",
            "range",
            "--start",
            &start,
            "--end",
            &end,
            "--step",
            "10s",
            &url,
            r#"sum by (path) (vigil_http_requests_total{service="orders"})"#,
        ],
    );
    assert!(out.starts_with("{path=\"/v1/orders/{id}\"} =>\n3 @["), "{out}");
    let out = run(
        &promtool,
        &["query", "series", "--match", "vigil_http_requests_total", &url],
    );
    assert!(out.contains(r#"status="200""#), "{out}");
    let out = run(&promtool, &["query", "labels", &url, "route"]);
    assert_eq!(out.trim(), "orders-route");
    server.stop();
}

/// The demo's rule files are valid Prometheus rules: `promtool check rules` and `vigil check
/// rules` agree on them.
#[test]
fn demo_rules_pass_promtool_and_vigil() {
    let Some(promtool) = promtool() else { return };
    let files: Vec<String> = ["slo.yml", "latency.yml", "anomaly.yml"]
        .iter()
        .map(|f| format!("{}/rules/demo/{f}", env!("CARGO_MANIFEST_DIR")))
        .collect();
    let mut args = vec!["check", "rules"];
    args.extend(files.iter().map(String::as_str));
    let out = run(&promtool, &args);
    assert_eq!(out.matches("SUCCESS").count(), 3, "{out}");
    let out = common::run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
