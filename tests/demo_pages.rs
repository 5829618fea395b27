//! `vigil demo --no-tui --duration 150s --webhook URL` on a fresh data directory, end to end:
//! the scripted error burst pages for the SLO within the run, as a JSON line on stdout and as
//! an Alertmanager v4 webhook to a receiver this test runs on 127.0.0.1. While it runs, the
//! rules and alerts API answer in Prometheus's shapes, a broken rule file is refused by
//! `POST /-/reload` while the rules stay, and `vigil tui` in tmux shows the overview rows and the
//! alert panel, filters, opens a detail view and the on-call screen (silences and the alert
//! history of the page) and quits cleanly.
//!
//! The tmux part needs `tmux` (`.ci/run` installs it). Without it that part says so and is
//! skipped, unless `VIGIL_REQUIRE_EXTERNAL=1` makes it fail.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{get, post as http_post, serving_addr, wait_until, webhook_receiver};
use parking_lot::Mutex;
use serde_json::Value;

/// The demo process, killed if the test fails before it exits.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Rule groups of the demo's rules (`rules/api-health/`).
const DEMO_GROUPS: usize = 19;

/// The availability SLO's page (not its ticket) for the payments route.
fn is_slo_page(v: &Value, status: &str) -> bool {
    v["alertname"] == "SLOErrorBudgetBurn"
        && v["status"] == status
        && v["labels"]["route"] == "payments-route"
        && v["labels"]["slo"] == "api-availability"
        && v["labels"]["severity"] == "page"
}

#[test]
fn demo_pages_for_the_slo_and_the_dashboard_shows_it() {
    let (hook, received) = webhook_receiver();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut demo = Demo(
        common::vigil()
            .args(["demo", "--no-tui", "--duration", "150s", "--history", "2h"])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--webhook", &format!("http://{hook}/hook")])
            .env("VIGIL_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vigil demo"),
    );
    let addr = serving_addr(&mut demo.0, "vigil demo is serving");
    let stdout = demo.0.stdout.take().expect("stdout");
    let lines: Arc<Mutex<Vec<Value>>> = Arc::default();
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.expect("stdout line");
                let v: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                lines.lock().push(v);
            }
        })
    };
    wait_until(Duration::from_secs(120), || get(addr, "/-/ready").0 == 200);
    let started = Instant::now();

    rules_api(addr);
    reload_keeps_rules(addr, &data);
    let tui = Tmux::start(addr);
    if let Some(tui) = &tui {
        tui.wait_for("the overview rows", |s| {
            s.contains("payments-route") && s.contains("/v2/payments")
        });
    }

    // The SLO alert fires within the run (the burst starts with live traffic).
    wait_until(Duration::from_secs(150), || {
        lines.lock().iter().any(|v| is_slo_page(v, "firing"))
    });
    eprintln!(
        "SLO page on stdout {:.0} s after the API came up",
        started.elapsed().as_secs_f64()
    );
    let alerts = api(addr, "/api/v1/alerts");
    let firing: Vec<&Value> = alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| {
            a["labels"]["alertname"] == "SLOErrorBudgetBurn"
                && a["labels"]["severity"] == "page"
                && a["labels"]["route"] == "payments-route"
        })
        .collect();
    assert_eq!(firing.len(), 1, "{alerts}");
    assert_eq!(firing[0]["state"], "firing");
    assert_eq!(firing[0]["labels"]["severity"], "page");
    assert!(firing[0]["activeAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(
        firing[0]["value"]
            .as_str()
            .is_some_and(|v| v.parse::<f64>().is_ok_and(|v| v > 0.0144))
    );

    if let Some(tui) = tui {
        tui.drive();
    }

    let status = demo.0.wait().expect("demo exits");
    assert!(status.success(), "vigil demo exited with {status}");
    reader.join().expect("stdout reader");

    // One JSON line per transition on stdout: the SLO alert fired exactly once.
    let lines = lines.lock();
    let slo: Vec<&Value> = lines.iter().filter(|v| is_slo_page(v, "firing")).collect();
    assert_eq!(slo.len(), 1, "{lines:?}");
    assert_eq!(slo[0]["labels"]["severity"], "page");
    assert!(
        slo[0]["annotations"]["runbook_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://"))
    );

    // The webhook got the same page in Alertmanager's v4 shape.
    wait_until(Duration::from_secs(10), || {
        received.lock().iter().any(|p| {
            p["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["labels"]["alertname"] == "SLOErrorBudgetBurn"))
        })
    });
    let payloads = received.lock();
    let page = payloads
        .iter()
        .find(|p| p["commonLabels"]["alertname"] == "SLOErrorBudgetBurn")
        .expect("SLO webhook");
    assert_eq!(page["version"], "4");
    assert_eq!(page["status"], "firing");
    assert_eq!(page["receiver"], "webhook");
    assert_eq!(page["externalURL"], format!("http://{addr}"));
    for key in ["groupKey", "groupLabels", "commonAnnotations", "truncatedAlerts"] {
        assert!(!page[key].is_null(), "{key} missing: {page}");
    }
    let alert = &page["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["service"], "payments");
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert!(
        alert["generatorURL"]
            .as_str()
            .is_some_and(|u| u.contains("/graph?g0.expr="))
    );
    assert_eq!(alert["fingerprint"].as_str().map(str::len), Some(16));
}

/// GET `path` and return `data`, checking the envelope.
fn api(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = get(addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["status"], "success", "{body}");
    v["data"].clone()
}

/// `/api/v1/rules` lists the demo's groups in Prometheus's shape.
fn rules_api(addr: SocketAddr) {
    let rules = api(addr, "/api/v1/rules");
    let groups = rules["groups"].as_array().expect("groups");
    let names: Vec<&str> = groups.iter().filter_map(|g| g["name"].as_str()).collect();
    // rules/api-health: 3 groups of signals, 5 per SLO (2), 3 per anomaly (2).
    assert_eq!(names.len(), DEMO_GROUPS, "{names:?}");
    for want in [
        "api-health-alerts",
        "slo:api-availability:alerts",
        "slo:api-latency:budget",
        "anomaly:api-traffic-drop:baseline",
        "anomaly:api-latency-rise:alert",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    let slo = groups
        .iter()
        .find(|g| g["name"] == "slo:api-availability:alerts")
        .expect("slo group");
    assert_eq!(slo["interval"], 30.0);
    assert!(slo["file"].as_str().is_some_and(|f| f.ends_with("slos.yml")));
    let rule = &slo["rules"][0];
    assert_eq!(rule["type"], "alerting");
    assert_eq!(rule["name"], "SLOErrorBudgetBurn");
    assert_eq!(rule["labels"]["severity"], "page");
    assert!(rule["alerts"].is_array());
    let recording = api(addr, "/api/v1/rules?type=record");
    for g in recording["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            assert_eq!(r["type"], "recording", "{r}");
        }
    }
    // Evaluations run: within a few intervals every rule is healthy.
    wait_until(Duration::from_secs(60), || {
        let rules = api(addr, "/api/v1/rules");
        rules["groups"].as_array().is_some_and(|gs| {
            gs.iter()
                .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                .all(|r| r["health"] == "ok")
        })
    });
}

/// A broken rule file: `POST /-/reload` says where, and the rules stay; fixed, it loads.
fn reload_keeps_rules(addr: SocketAddr, data: &std::path::Path) {
    let bad = data.join("rules").join("zz-bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: broken\n    rules:\n      - alert: X\n        expr: sum(\n",
    )
    .expect("write");
    let (status, body) = http_post(addr, "/-/reload", b"");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("zz-bad.yml:5:"), "the error names file and line: {body}");
    let groups = api(addr, "/api/v1/rules")["groups"].as_array().map(Vec::len);
    assert_eq!(groups, Some(DEMO_GROUPS), "the old rules stay active");
    std::fs::write(
        &bad,
        "groups:\n  - name: extra\n    rules:\n      - record: x:vigil_http_requests:sum\n        expr: sum(vigil_http_requests_total)\n",
    )
    .expect("write");
    let (status, body) = http_post(addr, "/-/reload", b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        api(addr, "/api/v1/rules")["groups"].as_array().map(Vec::len),
        Some(DEMO_GROUPS + 1)
    );
    std::fs::remove_file(&bad).expect("remove");
    assert_eq!(http_post(addr, "/-/reload", b"").0, 200);
    // Self-metrics of the alerter and the notifier.
    let (_, metrics) = get(addr, "/metrics");
    for m in [
        "vigil_alerter_reload_failures_total 1",
        "vigil_alerter_rules ",
        "vigil_notify_sent_total{integration=\"webhook\",receiver=\"webhook\"}",
    ] {
        assert!(metrics.contains(m), "{m} not in /metrics:\n{metrics}");
    }
}

/// `vigil tui` in a tmux session of its own (a private tmux server).
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(addr: SocketAddr) -> Option<Tmux> {
        if !Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                std::env::var_os("VIGIL_REQUIRE_EXTERNAL").is_none(),
                "tmux is required (VIGIL_REQUIRE_EXTERNAL is set): install Debian's tmux package"
            );
            eprintln!("tmux not found: skipping the terminal dashboard part");
            return None;
        }
        let t = Tmux {
            socket: format!("vigil-test-{}", std::process::id()),
        };
        // After the dashboard, the shell prints its exit status on the restored screen.
        let cmd = format!(
            "{} tui --url http://{addr} --refresh 1s; echo \"vigil tui exited with $?\"; sleep 60",
            env!("CARGO_BIN_EXE_vigil")
        );
        t.run(&["new-session", "-d", "-s", "tui", "-x", "150", "-y", "40", &cmd]);
        Some(t)
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "tui"])
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.run(&["send-keys", "-t", "tui", k]);
        }
    }

    fn wait_for(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.screen();
            if f(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "the dashboard never showed {what}:\n{s}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// With the SLO alert firing: the alert panel, the alerting rows on top, the filter, the
    /// detail view, the on-call screen, and `q`.
    fn drive(&self) {
        let s = self.wait_for("the SLO alert in the alert panel", |s| {
            s.lines().any(|l| {
                l.contains("FIRING") && l.contains("SLOErrorBudgetBurn") && l.contains("payments/payments-route")
            })
        });
        let rows: Vec<&str> = s.lines().filter(|l| l.contains("-route") && l.contains('/')).collect();
        assert!(
            rows.first().is_some_and(|r| r.contains("● payments")),
            "alerting rows first:\n{s}"
        );

        self.keys(&["/", "search", "Enter"]);
        let s = self.wait_for("only search rows", |s| {
            s.contains("filter: search") && s.contains("search-route")
        });
        let table: Vec<&str> = s.lines().take_while(|l| !l.contains("Alerts")).collect();
        assert!(!table.iter().any(|l| l.contains("orders-route")), "filtered:\n{s}");

        self.keys(&["Enter"]);
        self.wait_for("the detail charts", |s| {
            s.contains("search / search-route / /v1/search")
                && s.contains("requests/s")
                && s.contains("D-1")
                && s.contains("D-7")
        });
        // The on-call screen: no silences, and the history of the page that went out.
        self.keys(&["Escape", "o"]);
        self.wait_for("the alert history", |s| {
            s.contains("No active or pending silences")
                && s.lines()
                    .any(|l| l.contains("FIRING") && l.contains("SLOErrorBudgetBurn") && l.contains(':'))
                && s.lines()
                    .any(|l| l.contains("SENT") && l.contains("SLOErrorBudgetBurn"))
        });
        // The SLO screen: the shipped SLOs from the server's /api/v1/slos.
        self.keys(&["Escape", "b"]);
        self.wait_for("the SLOs", |s| {
            s.contains("api-availability 99.9% over 30d, availability")
                && s.contains("api-latency 99% over 30d, latency under 2.5s")
                && (s.contains("% left") || s.contains("no figures yet"))
        });
        self.keys(&["Escape", "q"]);
        let s = self.wait_for("the exit status", |s| s.contains("vigil tui exited with"));
        assert!(s.contains("vigil tui exited with 0"), "{s}");
        // The terminal is back: the dashboard's alternate screen is gone.
        assert!(!s.contains("APIs "), "{s}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}
