//! A hostile client against a running vigil: deep and long queries, deep searches, huge and
//! deep bodies, bad UTF-8, absurd ranges, connections that never finish their headers or
//! bodies. Each gets an answer (or its connection closed, for the slow ones), and afterwards
//! vigil still answers and ingests exactly.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Server, get, kong_event, post, request, value, wait_until};
use serde_json::Value;

/// Saturday 2026-11-21, 10:00 UTC.
const D: i64 = 1_795_255_200_000;

const CONFIG: &str =
    "collector:\n  window: 1s\nserver:\n  read_header_timeout: 2s\n  read_body_timeout: 2s\n  idle_timeout: 6s\n";

fn form(addr: SocketAddr, path: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let (status, text) = request(addr, "POST", path, "application/x-www-form-urlencoded", body.as_bytes());
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn instant(addr: SocketAddr, expr: &str) -> (u16, Value) {
    form(addr, "/api/v1/query", &[("query", expr), ("time", "1795255260")])
}

/// The scalar or single-sample answer of a query that must succeed.
fn answered(addr: SocketAddr, expr: &str, what: &str) -> f64 {
    let (status, v) = instant(addr, expr);
    assert_eq!(status, 200, "{what}: {v}");
    let point = match v["data"]["resultType"].as_str() {
        Some("scalar") => v["data"]["result"].clone(),
        _ => v["data"]["result"][0]["value"].clone(),
    };
    point[1].as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

fn refused(addr: SocketAddr, expr: &str, what: &str) -> String {
    let (status, v) = instant(addr, expr);
    assert_eq!(status, 400, "{what}: {v}");
    assert_eq!(v["errorType"], "bad_data", "{what}: {v}");
    v["error"].as_str().unwrap_or_default().to_owned()
}

/// Seconds until the server closes a connection that sent `sent` and then nothing.
fn closed_after(addr: SocketAddr, sent: &[u8]) -> Duration {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let start = Instant::now();
    s.write_all(sent).expect("send");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    start.elapsed()
}

#[test]
fn a_catalogue_of_bad_requests_leaves_vigil_answering_and_ingesting_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data"), CONFIG);
    let addr = server.addr;
    let events = |n: i64, t0: i64| -> String {
        (0..n)
            .map(|i| kong_event(t0 + i, "GET", "/v1/orders/1", 200, 10))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (status, _) = post(addr, "/ingest/kong", events(100, D).as_bytes());
    assert_eq!(status, 200);

    // Deep and long PromQL, as Prometheus answers it.
    let parens = |n: usize, inner: &str| format!("{}{inner}{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(answered(addr, &parens(100_000, "1"), "100,000 parentheses"), 1.0);
    assert_eq!(
        answered(addr, &vec!["1"; 20_000].join("+"), "a 20,000-term chain"),
        20_000.0
    );
    assert_eq!(
        answered(
            addr,
            &format!("{}+1", parens(5_000, "2")),
            "parentheses under an operator"
        ),
        3.0
    );
    let sums = format!("{}vector(7){}", "sum(".repeat(1_000), ")".repeat(1_000));
    assert_eq!(answered(addr, &sums, "1,000 nested sums"), 7.0);
    let calls = format!("{}vector(-2){}", "abs(".repeat(10_000), ")".repeat(10_000));
    assert_eq!(answered(addr, &calls, "10,000 nested calls"), 2.0);
    let mut sub = "vector(1)".to_owned();
    for _ in 0..30 {
        sub = format!("max_over_time(({sub})[2m:1m])");
    }
    assert_eq!(answered(addr, &sub, "30 nested subqueries"), 1.0);
    let e = refused(addr, &parens(300_000, "1"), "300,000 parentheses");
    assert!(e.contains("at most 200000"), "{e}");
    let e = refused(addr, &vec!["1"; 30_000].join("+"), "a 30,000-term chain");
    assert!(e.contains("at most 20000"), "{e}");
    // Depth hidden behind a comment the lexer ends at a carriage return is still seen.
    let e = refused(
        addr,
        &format!("#x\r1+{}", parens(300_000, "1")),
        "a comment and a carriage return",
    );
    assert!(e.contains("at most 200000"), "{e}");
    // format_query prints what is shallow enough, and refuses the rest.
    let (status, v) = form(addr, "/api/v1/format_query", &[("query", &parens(100_000, "1"))]);
    assert_eq!(status, 400, "{v}");
    let (status, v) = form(addr, "/api/v1/format_query", &[("query", "sum by (a) (rate(x[5m]))")]);
    assert_eq!(status, 200, "{v}");
    // match[] that are no selectors cost no parse.
    let chain = vec!["up"; 20_000].join("+");
    let matches: Vec<(&str, &str)> = (0..30).map(|_| ("match[]", chain.as_str())).collect();
    let (status, v) = form(addr, "/api/v1/series", &matches);
    assert_eq!(status, 400, "{v}");
    refused(addr, "sum(", "unbalanced");
    refused(addr, &format!("{}1", "(".repeat(100_000)), "unclosed parentheses");

    // Deep and long event searches.
    let (status, v) = form(addr, "/api/v1/events/search", &[("q", &parens(5_000, "status:500"))]);
    assert_eq!(status, 400, "{v}");
    let (status, v) = form(
        addr,
        "/api/v1/events/search",
        &[("q", &vec!["status:500"; 5_000].join(" OR "))],
    );
    assert_eq!(status, 400, "{v}");
    // Quotes the search syntax reads otherwise do not hide the nesting.
    for prefix in ["a\\\" ", "'\"' ", "\"\\\" "] {
        let (status, v) = form(
            addr,
            "/api/v1/events/search",
            &[("q", &format!("{prefix}{}", parens(5_000, "status:500")))],
        );
        assert_eq!(status, 400, "{prefix}: {v}");
    }

    // Absurd ranges and times.
    let (status, v) = form(
        addr,
        "/api/v1/query_range",
        &[("query", "1"), ("start", "-1e18"), ("end", "1e18"), ("step", "1")],
    );
    assert_eq!(status, 400, "{v}");
    let (status, v) = form(addr, "/api/v1/query", &[("query", "1"), ("time", "1e300")]);
    assert_eq!(status, 400, "{v}");
    let (status, v) = instant(addr, "rate(vigil_http_requests_total[100000000y])");
    assert!(status == 200 || status == 400, "{status} {v}");
    let (status, v) = instant(addr, "vigil_http_requests_total offset -100000000y");
    assert!(status == 200 || status == 400, "{status} {v}");
    for q in [
        "rate(vigil_http_requests_total[1e30])",
        "vigil_http_requests_total[Inf]",
        "up offset NaN",
    ] {
        let (status, v) = instant(addr, q);
        assert_eq!(status, 400, "{q}: {v}");
    }

    // Bad UTF-8 in a query and in a body.
    let (status, _) = request(
        addr,
        "POST",
        "/api/v1/query",
        "application/x-www-form-urlencoded",
        b"query=%ff%fe(",
    );
    assert_eq!(status, 400);
    let (status, _) = request(addr, "GET", "/api/v1/query?query=up%C0%AF", "text/plain", b"");
    assert_eq!(status, 400);
    let (status, _) = post(addr, "/ingest/kong", b"\xff\xfe{\"started_at\": 1}\n");
    assert_eq!(status, 200);

    // Huge and deep bodies.
    let huge = vec![b' '; 17 << 20];
    let (status, _) = post(addr, "/ingest/kong", &huge);
    assert!(status == 413 || status == 0, "a body over the limit: {status}");
    let deep = format!("{}1{}", "[".repeat(200_000), "]".repeat(200_000));
    let (status, _) = post(addr, "/ingest/kong", deep.as_bytes());
    assert_eq!(status, 200, "a deep body is a malformed event, counted");
    let deep_obj = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let (status, _) = post(addr, "/ingest/kong", deep_obj.as_bytes());
    assert_eq!(status, 200);
    let (status, _) = request(
        addr,
        "POST",
        "/api/v1/query",
        "application/x-www-form-urlencoded",
        &vec![b'a'; 5 << 20],
    );
    assert_eq!(status, 413, "a query body over max_query_body_bytes");

    // Connections that never finish are closed: headers, then idle, then a body.
    // (read_header_timeout 2 s, idle_timeout 6 s.)
    let header_timeout = Duration::from_millis(1500)..Duration::from_millis(5500);
    let t = closed_after(addr, b"GET /api/v1/query?query=1 HTTP/1.1\r\nHost: x\r\n");
    assert!(header_timeout.contains(&t), "half-open headers closed after {t:?}");
    let t = closed_after(addr, b"");
    assert!(header_timeout.contains(&t), "a silent connection closed after {t:?}");
    let t = closed_after(
        addr,
        b"POST /ingest/kong HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"a\":",
    );
    assert!(t < Duration::from_secs(20), "a body that never ends held for {t:?}");
    assert!(t >= Duration::from_millis(1500), "{t:?}");
    let mut keep = TcpStream::connect(addr).expect("connect");
    keep.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut buf = [0u8; 4096];
    let n = keep.read(&mut buf).expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
    keep.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let idle = Instant::now();
    assert_eq!(
        keep.read(&mut buf).unwrap_or(0),
        0,
        "an idle keep-alive connection is closed"
    );
    let t = idle.elapsed();
    assert!(
        (Duration::from_millis(5500)..Duration::from_secs(20)).contains(&t),
        "closed by the idle timeout, not the header timeout: {t:?}"
    );
    // After a request, a next head that stops half-way is closed by the header timeout.
    let mut next = TcpStream::connect(addr).expect("connect");
    next.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let n = next.read(&mut buf).expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
    std::thread::sleep(Duration::from_secs(3));
    next.write_all(b"GET /-/healthy HTTP/1.1\r\nHo").expect("send");
    next.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let started = Instant::now();
    assert_eq!(
        next.read(&mut buf).unwrap_or(0),
        0,
        "a second head that stops is closed"
    );
    let t = started.elapsed();
    assert!(
        header_timeout.contains(&t),
        "a second half-open head closed after {t:?}"
    );

    // Still answering, and ingesting exactly.
    assert_eq!(get(addr, "/-/healthy").0, 200);
    let (status, _) = post(addr, "/ingest/kong", events(50, D + 1_000).as_bytes());
    assert_eq!(status, 200);
    let at = D + 60_000;
    let q = r#"sum(vigil_http_requests_total{service="orders",status="200"})"#;
    wait_until(Duration::from_secs(60), || value(addr, q, at) == Some(150.0));
    server.stop();
}

/// hyper's own header timeout (30 s unless told otherwise) runs while a keep-alive connection
/// waits for its next request; vigil turns it off and keeps the idle timeout itself, so a
/// connection idle for longer than 30 s but less than `idle_timeout` still serves.
#[test]
fn an_idle_keep_alive_connection_lives_until_the_idle_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::spawn(
        &dir.path().join("data"),
        "collector:\n  window: 1s\nserver:\n  read_header_timeout: 40s\n  idle_timeout: 2m\n",
    );
    let mut conn = TcpStream::connect(server.addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut buf = [0u8; 4096];
    for round in 0..2 {
        conn.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let n = conn.read(&mut buf).expect("answer");
        assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"), "round {round}");
        if round == 0 {
            std::thread::sleep(Duration::from_secs(33));
        }
    }
    server.stop();
}
