//! `vigil import openmetrics` loads samples with timestamps, cuts the old ones into blocks, and
//! `vigil serve` on the directory answers for all of them; a malformed line is reported with
//! its line and column.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Server, get, post, run, value};

/// 2026-11-23 00:00 UTC.
const T0: i64 = 1_795_392_000_000;
const HOUR: i64 = 3_600_000;

/// Ten hours of a counter per route from T0, every 15 s, as promtool's backfill takes them.
fn openmetrics() -> String {
    openmetrics_from(T0, 10)
}

/// `hours` of a counter per route from `t0`, every 15 s.
fn openmetrics_from(t0: i64, hours: i64) -> String {
    let mut out = String::from("# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n");
    for route in ["a", "b", "c"] {
        for i in 0..(hours * HOUR / 15_000) {
            let t = t0 + i * 15_000;
            out.push_str(&format!(
                "http_requests_total{{route=\"{route}\",code=\"200\"}} {} {}.{:03}\n",
                i * 3,
                t / 1000,
                t % 1000
            ));
        }
    }
    out.push_str("# EOF\n");
    out
}

fn import(file: &Path, dir: &Path) -> Output {
    run(&[
        "import",
        "openmetrics",
        file.to_str().expect("utf-8"),
        "--data-dir",
        dir.to_str().expect("utf-8"),
        "-q",
    ])
}

#[test]
fn imported_samples_are_queryable_from_blocks_and_head() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("backfill.om");
    std::fs::write(&file, openmetrics()).expect("write");
    let dir = tmp.path().join("data");
    let out = import(&file, &dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("samples 7200 (series 3)"), "{stdout}");
    // 10 h in 2 h blocks, all cut; 0-6 h compacted into one, 6-10 h waits for its window.
    assert!(stdout.contains("blocks 3 (cut 5, compacted 1)"), "{stdout}");

    let server = Server::start(&dir, "");
    let at = T0 + 10 * HOUR - 15_000;
    assert_eq!(
        value(server.addr, "sum(http_requests_total)", at),
        Some(3.0 * 2399.0 * 3.0)
    );
    // An increase across the block boundaries and into the head.
    let q = r#"increase(http_requests_total{route="a"}[8h])"#;
    let got = value(server.addr, q, at).expect("a value");
    assert!((got - 3.0 * (8 * HOUR / 15_000) as f64).abs() < 1.0, "{got}");
    let (_, metrics) = get(server.addr, "/metrics");
    // Three imported; the server's maintenance may since have compacted them (its own
    // telemetry moves the head's time to now, which settles every window).
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let blocks = gauge("vigil_tsdb_blocks").expect("vigil_tsdb_blocks");
    assert!(blocks >= 1.0, "{metrics}");
    // Every block has 1 m and 5 m rollups (a compaction under way briefly lists a rollup more:
    // the new one is written before the old go); a 5 m step reads them, and answers as raw does.
    for r in ["1m", "5m"] {
        let rollups = gauge(&format!("vigil_tsdb_rollup_blocks{{resolution=\"{r}\"}}"));
        assert!(rollups.is_some_and(|n| n >= blocks), "{metrics}");
    }
    let range = |source: &str| {
        let path = format!(
            "/api/v1/query_range?query=http_requests_total&start={}&end={}&step=300&max_source_resolution={source}",
            T0 / 1000 + 3600,
            T0 / 1000 + 9 * 3600
        );
        get(server.addr, &path)
    };
    let json = |(status, body): (u16, String)| -> serde_json::Value {
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("json")
    };
    let (raw, auto, exact) = (json(range("raw")), json(range("auto")), json(range("")));
    assert_eq!(raw["data"], auto["data"]);
    assert_eq!(raw, exact, "raw samples by default, and no info");
    let infos = auto["infos"].to_string();
    assert!(
        infos.contains("were read from 5m rollups (as max_source_resolution allows)"),
        "{infos}"
    );
    let (status, body) = range("fortnightly");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("max_source_resolution"), "{body}");
    // The admin API is off by default.
    let (status, _) = post(server.addr, "/api/v1/admin/tsdb/delete_series?match[]=up", b"");
    assert_eq!(status, 503);
    server.stop();

    // Deleting a route's series, with the admin API on: gone from blocks and head, for good.
    let config = "server:\n  enable_admin_api: true\n";
    let server = Server::start(&dir, config);
    let path = "/api/v1/admin/tsdb/delete_series?match[]=http_requests_total%7Broute%3D%22a%22%7D";
    let (status, body) = post(server.addr, path, b"");
    assert_eq!(status, 204, "{body}");
    let partial = format!("{path}&start=0&end=1");
    assert_eq!(post(server.addr, &partial, b"").0, 400);
    server.stop();
    let server = Server::start(&dir, config);
    assert_eq!(
        value(server.addr, "sum(http_requests_total)", at),
        Some(2.0 * 2399.0 * 3.0)
    );
    assert_eq!(value(server.addr, r#"count(http_requests_total{route="a"})"#, at), None);
    server.stop();
}

#[test]
fn a_malformed_line_is_reported_with_line_and_column() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("bad.om");
    std::fs::write(
        &file,
        "# TYPE up gauge\nup{job=\"a\"} 1 1795392000\nup{job=\"a} 1 1795392015\n",
    )
    .expect("write");
    let dir = tmp.path().join("data");
    let out = import(&file, &dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.om:3:"), "{stderr}");
    assert!(stderr.contains("unterminated label value"), "{stderr}");
}

/// A counter's `_created` lines become its samples' start times: a restart that the values
/// alone hide (the new process counted past the old total between two scrapes) is a reset, and
/// `start_timestamp()` answers the creation time.
#[test]
fn created_lines_are_start_times() {
    let mut text = String::from("# TYPE jobs counter\n# TYPE retries counter\n");
    for i in 0..120i64 {
        let t = T0 + i * 15_000;
        // Restarted at 15 min: counts from 0 again, but fast.
        let (v, created) = if i < 60 {
            (i * 2, T0 - 60_000)
        } else {
            (200 + i, T0 + 899_000)
        };
        text.push_str(&format!("jobs_total{{queue=\"q\"}} {v} {}\n", t / 1000));
        text.push_str(&format!(
            "jobs_created{{queue=\"q\"}} {}.{:03} {}\n",
            created / 1000,
            created % 1000,
            t / 1000
        ));
        // A counter whose every sample claims to count from two minutes before it: each start
        // reaches back over the previous sample, which the API warns about.
        text.push_str(&format!("retries_total {i} {}\n", t / 1000));
        text.push_str(&format!("retries_created {} {}\n", t / 1000 - 120, t / 1000));
    }
    text.push_str("# EOF\n");
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("created.om");
    std::fs::write(&file, text).expect("write");
    let dir = tmp.path().join("data");
    let out = import(&file, &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let server = Server::start(&dir, "");
    let at = T0 + 119 * 15_000;
    assert_eq!(value(server.addr, "resets(jobs_total[1h])", at), Some(1.0));
    assert_eq!(
        value(server.addr, "start_timestamp(jobs_total)", at),
        Some((T0 + 899_000) as f64 / 1000.0)
    );
    // The _created samples stay queryable as series, as Prometheus keeps them.
    assert_eq!(
        value(server.addr, "jobs_created", at),
        Some((T0 + 899_000) as f64 / 1000.0)
    );
    // The increase over the restart counts what both processes counted: 118 before it, then
    // 260..=319 from zero.
    let got = value(server.addr, "increase(jobs_total[30m])", at).expect("a value");
    assert!((got - (118.0 + 319.0)).abs() < 15.0, "{got}");
    let (status, body) = get(
        server.addr,
        &format!("/api/v1/query?query=rate(retries_total%5B5m%5D)&time={}", at / 1000),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""warnings":["PromQL warning: sample has start time that overlaps with previous sample timestamp for metric \"retries_total\""]"#),
        "{body}"
    );
    let (_, body) = get(
        server.addr,
        &format!("/api/v1/query?query=rate(jobs_total%5B5m%5D)&time={}", at / 1000),
    );
    assert!(!body.contains("warnings"), "{body}");
    // Infos apart from warnings, as Prometheus gives them.
    let (_, body) = get(
        server.addr,
        &format!("/api/v1/query?query=rate(jobs_created%5B5m%5D)&time={}", at / 1000),
    );
    assert!(
        body.contains(r#""infos":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"jobs_created\""]"#),
        "{body}"
    );
    assert!(!body.contains("warnings"), "{body}");
    server.stop();
}

/// The store's own telemetry: a gauge or counter by name.
fn metric(addr: std::net::SocketAddr, name: &str) -> Option<f64> {
    let (_, metrics) = get(addr, "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_month_old_history_keeps_its_raw_samples_across_restarts_and_maintenance() {
    // Six hours that ended a month ago, twice the default raw retention (15 days) behind the
    // wall clock; the server writes its own telemetry at the wall clock's time meanwhile.
    let day = 24 * HOUR;
    let t0 = (vigil_tsdb::time::now_ms() - 30 * day).div_euclid(day) * day;
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("history.om");
    std::fs::write(&file, openmetrics_from(t0, 6)).expect("write");
    let dir = tmp.path().join("data");
    let out = import(&file, &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let config = "server:\n  self_metrics_interval: 1s\n";
    for round in 0..2 {
        let server = Server::start(&dir, config);
        // A maintenance round runs at start: wait for it, and for the telemetry it sees.
        common::wait_until(std::time::Duration::from_secs(60), || {
            metric(server.addr, "vigil_tsdb_maintenance_rounds_total").is_some_and(|n| n >= 1.0)
        });
        assert_eq!(
            metric(server.addr, "vigil_tsdb_retention_deleted_blocks_total"),
            Some(0.0),
            "round {round}"
        );
        // Raw samples, the first ones included, read back exactly.
        let path = format!(
            "/api/v1/query_range?query=sum(http_requests_total)&start={}&end={}&step=15&max_source_resolution=raw",
            t0 / 1000,
            t0 / 1000 + 3600
        );
        let (status, body) = get(server.addr, &path);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        let points = v["data"]["result"][0]["values"].as_array().expect("a series");
        assert_eq!(points.len(), 241, "round {round}: every 15 s sample of the first hour");
        assert_eq!(points[0][1], "0", "round {round}");
        assert_eq!(points[240][1], (3 * 240 * 3).to_string(), "round {round}");
        server.stop();
    }
}
