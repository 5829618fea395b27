//! The event store end to end: Kong events in over HTTP, the sampled ones searchable through
//! `/api/v1/events/search` and `vigil events`.

mod common;

use common::{Server, get, post, run};
use serde_json::Value;
use vigil_tsdb::time::now_ms;

/// An event of `service` on `uri` with its own request id and consumer.
fn event(t: i64, service: &str, uri: &str, status: u16, id: usize, consumer: &str) -> String {
    format!(
        concat!(
            r#"{{"response":{{"size":512,"status":{status}}},"route":{{"name":"{service}-route","paths":["/v2/{service}"]}},"#,
            r#""request":{{"method":"POST","uri":"{uri}","id":"req-{id}"}},"started_at":{t},"#,
            r#""latencies":{{"kong":1,"proxy":20,"request":21}},"service":{{"name":"{service}"}},"#,
            r#""client_ip":"10.0.0.1","consumer":{{"username":"{consumer}"}}}}"#
        ),
        status = status,
        service = service,
        uri = uri,
        t = t,
        id = id,
        consumer = consumer,
    )
}

fn search(addr: std::net::SocketAddr, query: &str) -> (u16, Value) {
    let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
    let (code, body) = get(addr, &format!("/api/v1/events/search?q={q}&limit=1000"));
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[test]
fn failed_requests_are_found_by_path_status_and_consumer() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Every other event sampled, so the share of the rest is visible too.
    let vigil = Server::start(
        dir.path(),
        "events:\n  sample_rate: 0.5\n  errors_per_route_per_minute: 1000\n",
    );
    let now = now_ms();
    let mut body = String::new();
    let mut failed = 0;
    for i in 0..400 {
        let t = now - 120_000 + i as i64 * 100;
        let (service, status) = if i % 4 == 0 { ("payments", 503) } else { ("orders", 200) };
        failed += usize::from(status == 503);
        let consumer = if i % 8 == 0 { "partner-x" } else { "mobile-app" };
        body.push_str(&event(t, service, &format!("/v2/{service}/{i}"), status, i, consumer));
        body.push('\n');
    }
    let (code, resp) = post(vigil.addr, "/ingest/kong", body.as_bytes());
    assert_eq!(code, 200, "{resp}");

    // Committed within a second or so.
    let mut found = Value::Null;
    common::wait_until(std::time::Duration::from_secs(20), || {
        found = search(vigil.addr, r#"status:>=500 AND path:"/v2/payments""#).1;
        found["data"]["total"].as_u64() == Some(failed as u64)
    });
    let events = found["data"]["events"].as_array().expect("events");
    assert_eq!(events.len(), failed);
    assert!(
        events
            .iter()
            .all(|e| e["status"] == 503 && e["service"] == "payments" && e["kept"] == "error")
    );
    assert_eq!(events[0]["template"], "/v2/payments/{id}");
    let times: Vec<i64> = events.iter().map(|e| e["timestamp"].as_i64().unwrap_or(0)).collect();
    assert!(times.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(events.iter().filter(|e| e["consumer"] == "partner-x").count(), 50);

    // About half of the rest, as configured.
    let sampled = search(vigil.addr, "kept:sample").1["data"]["total"]
        .as_u64()
        .unwrap_or(0);
    assert!((100..=200).contains(&sampled), "{sampled} of 300 sampled at 0.5");

    // Bad input gets a clear 400.
    let (code, bad) = search(vigil.addr, "status:[500 TO");
    assert_eq!((code, bad["errorType"].as_str()), (400, Some("bad_data")), "{bad}");
    let (code, _) = get(vigil.addr, "/api/v1/events/search?limit=0");
    assert_eq!(code, 400);

    // The command line answers "which requests failed on /v2/payments, and for which consumers".
    let url = format!("http://{}", vigil.addr);
    let out = run(&[
        "events",
        r#"status:>=500 AND path:"/v2/payments""#,
        "--url",
        &url,
        "--since",
        "10m",
        "--by",
        "consumer",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows, [vec!["mobile-app", "50"], vec!["partner-x", "50"]], "{text}");
    let out = run(&["events", "status:503", "--url", &url, "--limit", "3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 5, "header, 3 events, the rest counted:\n{text}");
    vigil.stop();
}
