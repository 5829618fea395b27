//! `vigil backtest` from the command line: two hours of simulated Kong traffic with an outage,
//! imported offline; the backtest prints the outage alert's transitions as JSON lines in time
//! order, a summary per rule, and, scored against the incident, recall and no false pages.

mod common;

use std::process::{Command, Stdio};

use common::{run, vigil};
use serde_json::Value;

const RULES: &str = r#"
groups:
  - name: outage
    interval: 30s
    rules:
      - alert: Outage
        expr: |
          sum by (service, route) (rate(vigil_http_requests_total{status=~"5.."}[2m]))
            / sum by (service, route) (rate(vigil_http_requests_total[2m])) > 0.3
        for: 1m
        labels:
          severity: page
"#;

/// 2026-12-01 00:00 UTC: the simulated traffic starts here.
const FROM: i64 = 1_796_083_200;

#[test]
fn a_backtest_finds_the_outage_in_imported_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let events = dir.path().join("events.ndjson");
    let out = run(&[
        "simulate",
        "--from",
        &FROM.to_string(),
        "--duration",
        "2h",
        "--rate-scale",
        "0.1",
        "--seed",
        "5",
        "--incident",
        "error_burst:payments/payments-route@60m+15m:0.8",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&events, &out.stdout).expect("write events");
    let (data_arg, events_arg) = (data.to_str().expect("utf-8"), events.to_str().expect("utf-8"));
    let import = run(&["import", "kong", "--quiet", "--data-dir", data_arg, events_arg]);
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));

    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).expect("write rules");
    let incidents = dir.path().join("incidents.json");
    let start = FROM + 3600;
    std::fs::write(
        &incidents,
        format!(
            r#"[{{"kind": "outage", "service": "payments", "route": "payments-route", "start": {start}, "end": {}}}]"#,
            start + 900
        ),
    )
    .expect("write incidents");
    let child = vigil()
        .args(["backtest", "--rules"])
        .arg(&rules)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--start",
            &(FROM + 600).to_string(),
            "--end",
            &(FROM + 7200).to_string(),
        ])
        .arg("--incidents")
        .arg(&incidents)
        .env("VIGIL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vigil backtest runs");
    let out = child.wait_with_output().expect("backtest ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let states: Vec<&str> = lines.iter().filter_map(|l| l["state"].as_str()).collect();
    assert_eq!(states, ["pending", "firing", "resolved"], "{lines:#?}");
    for l in &lines {
        assert_eq!(l["labels"]["alertname"], "Outage");
        assert_eq!(l["labels"]["service"], "payments");
        assert_eq!(l["labels"]["severity"], "page");
        assert!(l["value"].as_f64().is_some_and(|v| v > 0.3), "{l}");
    }
    let at = |i: usize| lines[i]["at"].as_f64().expect("at");
    // Pending within a few minutes of the start, firing a minute later, resolved after the end.
    assert!(at(0) >= start as f64 && at(0) <= (start + 240) as f64, "{lines:#?}");
    assert_eq!(at(1) - at(0), 60.0);
    assert!(at(2) > (start + 900) as f64, "{lines:#?}");
    assert!(stderr.contains("Outage"), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with("outage") && l.contains("100%")),
        "{stderr}"
    );
    assert!(stderr.contains("false pages: 0"), "{stderr}");

    // Bad input is a clear error.
    let bad = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["backtest", "--rules"])
        .arg(&rules)
        .arg("--data-dir")
        .arg(&data)
        .args(["--start", "2026-12-01T02:00:00Z", "--end", "2026-12-01T01:00:00Z"])
        .output()
        .expect("vigil runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--end is before --start"));
}
