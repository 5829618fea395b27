//! Kong events with known content go in through `POST /ingest/kong`; the Prometheus API must
//! answer with exact counts per series, exact D-1 values with `offset 1d`, the malformed-line
//! counts, and the same answers after the server restarts on the same data directory.

mod common;

use std::time::Duration;

use common::{Server, get, kong_event, kong_fixture, post, value, vector, wait_until};
use vigil_tsdb::time::now_ms;

/// Saturday 2026-11-21, 10:00 UTC: "today" of the test.
const D: i64 = 1_795_255_200_000;
const DAY: i64 = 86_400_000;
/// Evaluation time: a minute after today's traffic.
const AT: i64 = D + 60_000;

const CONFIG: &str = "collector:\n  window: 1s\nserver:\n  self_metrics_interval: 1s\n";

const GET_OK: &str = r#"vigil_http_requests_total{service="orders",route="orders-route",method="GET",path="/v1/orders/{id}",status="200"}"#;
const GET_500: &str = r#"vigil_http_requests_total{method="GET",path="/v1/orders/{id}",status="500"}"#;
const GET_503: &str = r#"vigil_http_requests_total{method="GET",path="/v1/orders/{id}",status="503"}"#;
const POST_201: &str = r#"vigil_http_requests_total{method="POST",path="/v1/orders",status="201"}"#;
const GET_LAT: &str = r#"vigil_http_request_duration_seconds{method="GET",path="/v1/orders/{id}"}"#;

fn yesterday() -> String {
    let t = D - DAY + 500;
    [
        kong_event(t, "GET", "/v1/orders/101", 200, 20),
        kong_event(t + 1, "GET", "/v1/orders/102?expand=items", 200, 80),
        kong_event(t + 2, "GET", "/v1/orders/103", 500, 300),
        kong_event(t + 3, "POST", "/v1/orders", 201, 120),
    ]
    .join("\n")
}

fn today() -> String {
    let t = D + 500;
    let events = [
        kong_event(t, "GET", "/v1/orders/201", 200, 10),
        kong_event(t, "GET", "/v1/orders/202", 200, 20),
        kong_event(t + 1, "GET", "/v1/orders/203", 200, 30),
        kong_event(t + 2, "GET", "/v1/orders/204", 200, 40),
        kong_event(t + 3, "GET", "/v1/orders/205", 503, 60_000),
        kong_event(t + 4, "POST", "/v1/orders", 201, 100),
        kong_event(t + 5, "POST", "/v1/orders/", 201, 110),
    ];
    format!("[{}]", events.join(","))
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{body:?}: {e}"))
}

/// The answers that must hold once the events are in, before and after a restart.
fn check_answers(addr: std::net::SocketAddr) {
    // Cumulative counters: yesterday's 2 plus today's 4.
    assert_eq!(value(addr, GET_OK, AT), Some(6.0));
    assert_eq!(value(addr, &format!("{GET_OK} offset 1d"), AT), Some(2.0));
    // Yesterday's 500 went stale long ago; it is only visible a day back.
    assert_eq!(value(addr, GET_500, AT), None);
    assert_eq!(value(addr, &format!("{GET_500} offset 1d"), AT), Some(1.0));
    assert_eq!(value(addr, GET_503, AT), Some(1.0));
    // `/v1/orders/` and `/v1/orders` are one path.
    assert_eq!(value(addr, POST_201, AT), Some(3.0));
    assert_eq!(
        value(addr, r#"sum(vigil_http_requests_total{service="orders"})"#, AT),
        Some(10.0)
    );
    assert_eq!(
        value(
            addr,
            r#"sum(vigil_http_requests_total{service="orders"} offset 1d)"#,
            AT
        ),
        Some(4.0)
    );
    assert_eq!(
        value(addr, &GET_LAT.replace("seconds{", "seconds_count{"), AT),
        Some(8.0)
    );
    let sum = value(addr, &GET_LAT.replace("seconds{", "seconds_sum{"), AT).expect("sum");
    assert!((sum - 60.5).abs() < 1e-9, "{sum}");
    let buckets = vector(addr, &GET_LAT.replace("seconds{", "seconds_bucket{"), AT);
    let by_le: Vec<(String, f64)> = buckets
        .into_iter()
        .map(|(l, v)| {
            (
                l.split(',')
                    .find_map(|kv| kv.strip_prefix("le="))
                    .unwrap_or_default()
                    .to_owned(),
                v,
            )
        })
        .collect();
    let le = |b: &str| by_le.iter().find(|(l, _)| l == b).map(|(_, v)| *v);
    assert_eq!(
        (le("0.01"), le("0.025"), le("0.05"), le("0.1"), le("0.5"), le("+Inf")),
        (Some(1.0), Some(3.0), Some(5.0), Some(6.0), Some(7.0), Some(8.0))
    );
    // D-1 comparison the way a rule writes it.
    assert_eq!(
        value(addr, &format!("sum({GET_OK}) - sum({GET_OK} offset 1d)"), AT),
        Some(4.0),
        "today's increase since yesterday"
    );
    // The http-log sample batch: a 503 Kong produced itself has no upstream latency.
    let t = 1_795_305_660_000;
    let items = r#"{path="/v1/orders/{id}/items"}"#;
    assert_eq!(value(addr, &format!("vigil_http_requests_total{items}"), t), Some(1.0));
    assert_eq!(
        value(addr, &format!("vigil_http_request_duration_seconds_count{items}"), t),
        Some(1.0)
    );
    assert_eq!(
        value(addr, &format!("vigil_http_upstream_duration_seconds_count{items}"), t),
        Some(0.0)
    );
}

#[test]
fn ingest_then_query_exact_counts_and_d_minus_1_across_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let server = Server::start(&dir, CONFIG);
    let addr = server.addr;

    // NDJSON: yesterday's events and every malformed line of the fixtures.
    let mut body = yesterday().into_bytes();
    body.push(b'\n');
    body.extend(kong_fixture("malformed.ndjson"));
    let (status, reply) = post(addr, "/ingest/kong", &body);
    assert_eq!(status, 200, "{reply}");
    let r = json(&reply);
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"].as_u64()),
        (Some(4), Some(7)),
        "{reply}"
    );
    assert_eq!(
        r["rejected_by_reason"],
        serde_json::json!({"invalid_json": 2, "empty_batch": 1, "missing_field": 1, "bad_status": 1,
            "bad_timestamp": 1, "uri_too_long": 1})
    );
    // A batch array, then the fixture batch (which moves event time on past today).
    let (status, reply) = post(addr, "/ingest/kong", today().as_bytes());
    assert_eq!((status, json(&reply)["accepted"].as_u64()), (200, Some(7)), "{reply}");
    let (status, reply) = post(addr, "/ingest/kong", &kong_fixture("batch.json"));
    assert_eq!((status, json(&reply)["accepted"].as_u64()), (200, Some(3)), "{reply}");
    // A single event object.
    let (status, reply) = post(addr, "/ingest/kong", &kong_fixture("event.json"));
    assert_eq!((status, json(&reply)["accepted"].as_u64()), (200, Some(1)), "{reply}");

    // Windows close as the watermark passes them and, for the last ones, after two idle
    // windows of wall-clock time.
    wait_until(Duration::from_secs(30), || {
        value(
            addr,
            r#"vigil_http_requests_total{path="/v1/orders/{id}/items"}"#,
            1_795_305_660_000,
        )
        .is_some()
    });
    check_answers(addr);

    // Malformed lines are counted in the collector's own series, stored like any other.
    wait_until(Duration::from_secs(30), || {
        value(
            addr,
            r#"vigil_collector_rejected_total{reason="invalid_json"}"#,
            now_ms(),
        ) == Some(2.0)
    });
    assert_eq!(
        value(addr, r#"sum(vigil_collector_rejected_total)"#, now_ms()),
        Some(7.0)
    );
    let (status, metrics) = get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("vigil_collector_rejected_total{reason=\"uri_too_long\"} 1"),
        "{metrics}"
    );

    // Restart on the same directory: the same answers.
    server.stop();
    let server = Server::start(&dir, CONFIG);
    check_answers(server.addr);

    // Counters continue where they were instead of restarting at zero: today's 6, the sample
    // event's 1 (2026-11-22), and one more an hour after it.
    let later = 1_795_305_600_000 + 3_600_000;
    let (status, _) = post(
        server.addr,
        "/ingest/kong",
        kong_event(later, "GET", "/v1/orders/301", 200, 5).as_bytes(),
    );
    assert_eq!(status, 200);
    wait_until(Duration::from_secs(30), || {
        value(server.addr, GET_OK, later + 60_000) == Some(8.0)
    });
    server.stop();
}

#[test]
fn oversized_bodies_get_413_and_the_server_carries_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&tmp.path().join("data"), "server:\n  max_body_bytes: 4096\n");
    let big = vec![b' '; 8192];
    let (status, _) = post(server.addr, "/ingest/kong", &big);
    assert_eq!(status, 413);
    let (status, reply) = post(
        server.addr,
        "/ingest/kong",
        kong_event(D, "GET", "/v1/orders/1", 200, 5).as_bytes(),
    );
    assert_eq!((status, json(&reply)["accepted"].as_u64()), (200, Some(1)));
    server.stop();
}

#[test]
fn api_errors_have_prometheus_shapes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&tmp.path().join("data"), "");
    let (status, body) = get(server.addr, "/api/v1/query?query=sum(");
    assert_eq!(status, 400, "{body}");
    let v = json(&body);
    assert_eq!(
        (v["status"].as_str(), v["errorType"].as_str()),
        (Some("error"), Some("bad_data"))
    );
    let (status, body) = get(server.addr, "/api/v1/query_range?query=up&start=10&end=0&step=1");
    assert_eq!((status, json(&body)["errorType"].as_str()), (400, Some("bad_data")));
    let (status, body) = get(server.addr, "/api/v1/query_range?query=up&start=0&end=100000&step=1");
    assert_eq!(status, 400, "too many points: {body}");
    let (status, body) = get(
        server.addr,
        "/api/v1/query_range?query=up&start=-9.2e15&end=9.2e15&step=1",
    );
    assert_eq!(status, 400, "an overflowing range: {body}");
    let (status, body) = get(
        server.addr,
        "/api/v1/query?query=count_over_time(vector(1)%5B10y:1ms%5D)",
    );
    assert_eq!(
        (status, json(&body)["errorType"].as_str()),
        (422, Some("execution")),
        "{body}"
    );
    let (status, body) = get(server.addr, "/api/v1/series");
    assert_eq!((status, json(&body)["errorType"].as_str()), (400, Some("bad_data")));
    let (status, body) = get(
        server.addr,
        "/api/v1/query?query=label_replace(vector(1),%221x%22,%22%22,%22%22,%22%22)",
    );
    assert_eq!(
        (status, json(&body)["errorType"].as_str()),
        (422, Some("execution")),
        "{body}"
    );
    let (status, body) = get(server.addr, "/api/v1/status/buildinfo");
    assert_eq!((status, json(&body)["status"].as_str()), (200, Some("success")));
    let (status, _) = get(server.addr, "/no/such/page");
    assert_eq!(status, 404);
    server.stop();
}
