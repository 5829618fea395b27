//! The rest of Prometheus's read API, as Grafana and promtool call it: metadata, format_query,
//! query_exemplars, the status pages, `limit` on the listing endpoints, and the query limits
//! with Prometheus's error types.

mod common;

use std::time::Duration;

use common::{Server, get, kong_event, post, value, wait_until};
use serde_json::Value;
use vigil_tsdb::time::now_ms;

fn json(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = get(addr, path);
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {status} {body:?}: {e}"));
    (status, v)
}

fn ok(addr: std::net::SocketAddr, path: &str) -> Value {
    let (status, v) = json(addr, path);
    assert_eq!((status, v["status"].as_str()), (200, Some("success")), "{path}: {v}");
    v
}

#[test]
fn status_metadata_and_limits_answer_as_prometheus_does() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = "collector:\n  window: 1s\nquery:\n  max_series: 3\n  max_samples: 1000\n";
    let server = Server::start(&tmp.path().join("data"), config);
    let addr = server.addr;
    let t = now_ms() - 60_000;
    let body: Vec<String> = (0..4)
        .map(|i| kong_event(t + i, "GET", &format!("/v1/orders/{i}"), 200 + 100 * (i as u16 % 4), 12))
        .collect();
    assert_eq!(post(addr, "/ingest/kong", body.join("\n").as_bytes()).0, 200);
    // Four series (one per status): one more than a query may select.
    wait_until(Duration::from_secs(30), || {
        value(addr, r#"sum(vigil_http_requests_total{status="500"})"#, now_ms()) == Some(1.0)
    });

    // Metadata: vigil's families with their types, histograms under their family name.
    let m = ok(addr, "/api/v1/metadata");
    assert_eq!(m["data"]["vigil_http_requests_total"][0]["type"], "counter", "{m}");
    assert_eq!(m["data"]["vigil_http_request_duration_seconds"][0]["type"], "histogram");
    assert!(m["data"].get("vigil_http_request_duration_seconds_bucket").is_none());
    let one = ok(addr, "/api/v1/metadata?metric=vigil_http_requests_total");
    assert_eq!(one["data"].as_object().map(serde_json::Map::len), Some(1), "{one}");
    let limited = ok(addr, "/api/v1/metadata?limit=2");
    assert_eq!(
        limited["data"].as_object().map(serde_json::Map::len),
        Some(2),
        "{limited}"
    );

    // format_query pretty-prints; a bad query is bad_data.
    let f = ok(addr, "/api/v1/format_query?query=sum%28rate%28x%5B5m%5D%29%29by%28a%29");
    assert_eq!(f["data"], "sum by (a) (rate(x[5m]))");
    let (status, bad) = json(addr, "/api/v1/format_query?query=sum%28");
    assert_eq!((status, bad["errorType"].as_str()), (400, Some("bad_data")), "{bad}");

    // Exemplars: none kept, an empty list.
    let e = ok(
        addr,
        "/api/v1/query_exemplars?query=vigil_http_requests_total&start=0&end=1",
    );
    assert_eq!(e["data"], Value::Array(vec![]));

    // Status pages.
    let r = ok(addr, "/api/v1/status/runtimeinfo");
    // Printed as Prometheus prints durations.
    assert_eq!(r["data"]["storageRetention"], "2w1d");
    assert!(
        r["data"]["startTime"].as_str().is_some_and(|s| s.starts_with("20")),
        "{r}"
    );
    assert_eq!(r["data"]["reloadConfigSuccess"], true);
    let flags = ok(addr, "/api/v1/status/flags");
    assert_eq!(flags["data"]["storage.tsdb.retention.time"], "2w1d");
    assert_eq!(flags["data"]["query.max-samples"], "1000");
    let tsdb = ok(addr, "/api/v1/status/tsdb?limit=3");
    let head = &tsdb["data"]["headStats"];
    assert!(head["numSeries"].as_u64().is_some_and(|n| n > 4), "{tsdb}");
    assert!(head["chunkCount"].as_u64().is_some_and(|n| n > 0), "{tsdb}");
    let by_metric = tsdb["data"]["seriesCountByMetricName"].as_array().expect("list");
    assert_eq!(by_metric.len(), 3);
    assert!(by_metric[0]["value"].as_u64() >= by_metric[2]["value"].as_u64());
    assert!(
        tsdb["data"]["seriesCountByLabelValuePair"][0]["name"]
            .as_str()
            .is_some_and(|s| s.contains('='))
    );

    // `limit` on the listing endpoints truncates with Prometheus's warning.
    let s = ok(addr, "/api/v1/series?match[]=vigil_http_requests_total&limit=2");
    assert_eq!(s["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(s["warnings"][0], "results truncated due to limit");
    let l = ok(addr, "/api/v1/labels?limit=1");
    assert_eq!(l["data"].as_array().map(Vec::len), Some(1));
    let v = ok(addr, "/api/v1/label/route/values?limit=100");
    assert!(v.get("warnings").is_none(), "{v}");

    // Limits: too many series, too many samples (422 execution), a timeout (503 timeout).
    let (status, e) = json(addr, "/api/v1/query?query=vigil_http_requests_total");
    assert_eq!((status, e["errorType"].as_str()), (422, Some("execution")), "{e}");
    assert_eq!(e["error"], "query would select more than 3 series");
    let end = now_ms() / 1000;
    let wide = format!(
        "/api/v1/query_range?query=vector(1)%2Bvector(2)&start={}&end={end}&step=1",
        end - 3600
    );
    let (status, e) = json(addr, &wide);
    assert_eq!((status, e["errorType"].as_str()), (422, Some("execution")), "{e}");
    assert!(
        e["error"].as_str().is_some_and(|m| m.contains("too many samples")),
        "{e}"
    );
    let (status, e) = json(
        addr,
        "/api/v1/query?query=vigil_http_requests_total%7Bstatus%3D%22200%22%7D&timeout=0",
    );
    assert_eq!((status, e["errorType"].as_str()), (503, Some("timeout")), "{e}");
    server.stop();
}
