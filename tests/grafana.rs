//! Grafana's Prometheus data source against vigil: the requests it sends, as it sends them
//! (Grafana 10 to 12: the backend's health check and queries, the query editor's metric and label
//! browsing, the alerting UI's probes), each answered the way Grafana reads the answer.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Server, kong_event, post, request, value, wait_until};
use serde_json::Value;
use vigil_tsdb::time::now_ms;

/// A request as Grafana sends it: form-encoded `params` in a POST body (its default) or in the
/// URL of a GET; returns the status and the parsed body.
fn grafana(addr: SocketAddr, method: &str, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let (status, body) = match method {
        "POST" => request(addr, "POST", path, "application/x-www-form-urlencoded", form.as_bytes()),
        _ => request(addr, "GET", &format!("{path}?{form}"), "text/plain", b""),
    };
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {status} {body:?}: {e}"));
    (status, v)
}

/// [`grafana`], which must succeed.
fn success(addr: SocketAddr, method: &str, path: &str, params: &[(&str, &str)]) -> Value {
    let (status, v) = grafana(addr, method, path, params);
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("success")),
        "{method} {path} {params:?}: {v}"
    );
    v
}

/// The strings of a list answer.
fn strings(v: &Value) -> Vec<&str> {
    v["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

#[test]
fn grafana_prometheus_data_source_requests_are_answered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&tmp.path().join("data"), "collector:\n  window: 1s\n");
    let addr = server.addr;
    let t = now_ms() - 120_000;
    let body: Vec<String> = (0..40)
        .map(|i| {
            kong_event(
                t + i * 1_000,
                "GET",
                &format!("/v1/orders/{i}"),
                [200, 200, 500][i as usize % 3],
                12,
            )
        })
        .collect();
    assert_eq!(post(addr, "/ingest/kong", body.join("\n").as_bytes()).0, 200);
    wait_until(Duration::from_secs(30), || {
        value(addr, r#"sum(vigil_http_requests_total{status="500"})"#, now_ms()) == Some(13.0)
    });
    let now = now_ms() / 1000;
    let (start, end) = ((now - 600).to_string(), now.to_string());

    // "Save & test": an instant query of 1+1 at t=4 s with the data source's timeout; then
    // buildinfo, where an empty `features` makes Grafana treat vigil as Prometheus (any valid
    // version, or none it knows, leaves `match[]` on the labels API enabled).
    for method in ["POST", "GET"] {
        let h = success(
            addr,
            method,
            "/api/v1/query",
            &[("query", "1+1"), ("time", "4"), ("timeout", "60s")],
        );
        assert_eq!(h["data"]["resultType"], "scalar");
        assert_eq!(h["data"]["result"][1], "2");
    }
    let b = success(addr, "GET", "/api/v1/status/buildinfo", &[]);
    assert!(
        b["data"]["version"].as_str().is_some_and(|v| v.split('.').count() == 3),
        "{b}"
    );
    assert!(b["data"].get("features").is_none(), "{b}");

    // The alerting UI's probes and the editor's rule list.
    success(addr, "GET", "/api/v1/status/flags", &[]);
    success(addr, "GET", "/api/v1/rules", &[]);

    // Metric browsing: label names, metric names, values of a label for one metric, series
    // (older versions, or "use series endpoint"), metadata, all with Grafana's limit.
    let limit = ("limit", "40000");
    let labels = success(
        addr,
        "GET",
        "/api/v1/labels",
        &[("start", &start), ("end", &end), limit],
    );
    assert!(strings(&labels).contains(&"route"), "{labels}");
    for method in ["POST", "GET"] {
        let matched = success(
            addr,
            method,
            "/api/v1/labels",
            &[
                ("start", &start),
                ("end", &end),
                ("match[]", "vigil_http_requests_total"),
                limit,
            ],
        );
        assert!(strings(&matched).contains(&"status"), "{matched}");
        assert!(
            !strings(&matched).contains(&"le"),
            "only the matched series' labels: {matched}"
        );
    }
    let names = success(
        addr,
        "GET",
        "/api/v1/label/__name__/values",
        &[("start", &start), ("end", &end), limit],
    );
    assert!(strings(&names).contains(&"vigil_http_requests_total"), "{names}");
    let statuses = success(
        addr,
        "GET",
        "/api/v1/label/status/values",
        &[
            ("start", &start),
            ("end", &end),
            ("match[]", "vigil_http_requests_total"),
            limit,
        ],
    );
    assert_eq!(strings(&statuses), ["200", "500"]);
    let series = success(
        addr,
        "POST",
        "/api/v1/series",
        &[
            ("start", &start),
            ("end", &end),
            ("match[]", r#"{__name__!=""}"#),
            limit,
        ],
    );
    assert!(series["data"].as_array().is_some_and(|s| s.len() > 2), "{series}");
    let meta = success(addr, "GET", "/api/v1/metadata", &[limit]);
    assert_eq!(meta["data"]["vigil_http_requests_total"][0]["type"], "counter");

    // A panel: a range query with start and end on the step (whole seconds), a float step too,
    // and an instant query at a time with milliseconds.
    let q = "sum by (status) (increase(vigil_http_requests_total[5m]))";
    let aligned_start = ((now - 300) / 15 * 15).to_string();
    let aligned_end = (now / 15 * 15).to_string();
    for (method, step) in [("POST", "15"), ("GET", "7.5")] {
        let r = success(
            addr,
            method,
            "/api/v1/query_range",
            &[
                ("query", q),
                ("start", &aligned_start),
                ("end", &aligned_end),
                ("step", step),
                ("timeout", "2m"),
            ],
        );
        assert_eq!(r["data"]["resultType"], "matrix");
        let result = r["data"]["result"].as_array().expect("series");
        assert_eq!(result.len(), 2, "{r}");
        let values = result[0]["values"].as_array().expect("values");
        assert!(
            values[0][0].is_number() && values[0][1].is_string(),
            "[time, \"value\"]: {r}"
        );
    }
    let instant_time = format!("{now}.123");
    let i = success(
        addr,
        "POST",
        "/api/v1/query",
        &[("query", q), ("time", &instant_time), ("timeout", "60s")],
    );
    assert_eq!(i["data"]["resultType"], "vector");
    assert_eq!(i["data"]["result"][0]["value"][0].as_f64(), Some(now as f64 + 0.123));

    // Exemplars: the backend's query (seconds), and the frontend's probe (milliseconds).
    let e = success(
        addr,
        "POST",
        "/api/v1/query_exemplars",
        &[("query", q), ("start", &aligned_start), ("end", &aligned_end)],
    );
    assert_eq!(e["data"], Value::Array(vec![]));
    let probe_start = ((now - 1800) * 1000).to_string();
    let probe_end = (now * 1000).to_string();
    success(
        addr,
        "GET",
        "/api/v1/query_exemplars",
        &[("query", "test"), ("start", &probe_start), ("end", &probe_end)],
    );

    // A query error is Prometheus's JSON with an errorType, which Grafana shows.
    let (status, bad) = grafana(addr, "POST", "/api/v1/query", &[("query", "sum("), ("time", "4")]);
    assert_eq!((status, bad["errorType"].as_str()), (400, Some("bad_data")), "{bad}");
    server.stop();
}
