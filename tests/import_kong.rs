//! `vigil import kong` loads NDJSON offline and reports accepted and rejected counts; `vigil
//! serve` on the same directory then answers with exact counts, D-1 included, and `vigil query`
//! prints them.

mod common;

use common::{Server, kong_event, kong_fixture, run, value, vector};

/// Saturday 2026-11-21, 10:00 UTC.
const D: i64 = 1_795_255_200_000;
const DAY: i64 = 86_400_000;
const AT: i64 = D + 60_000;

fn minified(name: &str) -> String {
    let v: serde_json::Value = serde_json::from_slice(&kong_fixture(name)).expect("valid sample");
    v.to_string()
}

fn ndjson() -> String {
    let y = D - DAY + 500;
    let t = D + 500;
    let mut lines = vec![
        kong_event(y, "GET", "/v1/orders/101", 200, 20),
        kong_event(y + 1, "GET", "/v1/orders/102", 500, 300),
        kong_event(y + 2, "DELETE", "/v1/orders/103", 204, 50),
        // An http-log batch on one line.
        format!(
            "[{},{}]",
            kong_event(t, "GET", "/v1/orders/201", 200, 10),
            kong_event(t + 1, "GET", "/v1/orders/202", 200, 20)
        ),
        kong_event(t + 2, "get", "/v1/orders/203", 200, 30),
        kong_event(t + 3, "PROPFIND", "/v1/orders/204", 405, 1),
        minified("batch.json"),
    ];
    lines.extend(
        String::from_utf8(kong_fixture("malformed.ndjson"))
            .expect("utf-8")
            .lines()
            .map(str::to_owned),
    );
    lines.join("\n") + "\n"
}

#[test]
fn files_from_several_nodes_are_merged_by_event_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Two Kong nodes, each logging an hour in time order.
    let node = |offset: i64| -> String {
        (0..360)
            .map(|i| kong_event(D + offset + i * 10_000, "GET", "/v1/orders/1", 200, 5) + "\n")
            .collect()
    };
    let a = tmp.path().join("node-a.ndjson");
    let b = tmp.path().join("node-b.ndjson");
    std::fs::write(&a, node(0)).expect("write");
    std::fs::write(&b, node(5_000)).expect("write");
    let dir = tmp.path().join("data").to_string_lossy().into_owned();
    let out = run(&[
        "import",
        "kong",
        &b.to_string_lossy(),
        &a.to_string_lossy(),
        "--data-dir",
        &dir,
        "-q",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.lines().any(|l| l == "accepted 720") && stdout.lines().any(|l| l == "late 0"),
        "{stdout}"
    );
}

#[test]
fn import_then_serve_then_query() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let file = tmp.path().join("kong.ndjson");
    std::fs::write(&file, ndjson()).expect("write");
    let file = file.to_string_lossy().into_owned();
    let dir_s = dir.to_string_lossy().into_owned();

    let out = run(&["import", "kong", &file, "--data-dir", &dir_s, "--quiet"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().any(|l| l == "accepted 10"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l
            == "rejected 7 (invalid_json 2, empty_batch 1, missing_field 1, bad_status 1, bad_timestamp 1, uri_too_long 1)"),
        "{stdout}"
    );

    let server = Server::start(&dir, "");
    let addr = server.addr;
    // While a server holds the directory, an import is refused with a clear message.
    let busy = run(&["import", "kong", &file, "--data-dir", &dir_s, "--quiet"]);
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("in use by another vigil"),
        "{busy:?}"
    );

    let ok = r#"vigil_http_requests_total{method="GET",path="/v1/orders/{id}",status="200"}"#;
    assert_eq!(
        value(addr, ok, AT),
        Some(4.0),
        "yesterday's 1 plus today's 3 (lowercase get is GET)"
    );
    assert_eq!(value(addr, &format!("{ok} offset 1d"), AT), Some(1.0));
    assert_eq!(
        value(addr, r#"vigil_http_requests_total{status="500"} offset 1d"#, AT),
        Some(1.0)
    );
    // Unknown methods are counted under OTHER, not as new label values.
    assert_eq!(
        value(addr, r#"vigil_http_requests_total{method="OTHER",status="405"}"#, AT),
        Some(1.0)
    );
    assert_eq!(
        value(addr, r#"sum(vigil_http_requests_total{method="DELETE"} offset 1d)"#, AT),
        Some(1.0)
    );
    assert_eq!(
        vector(
            addr,
            r#"count by (path) (vigil_http_requests_total{status=~"404|503"})"#,
            1_795_305_610_000
        ),
        vec![
            ("path=/v1/orders/{id}".to_owned(), 1.0),
            ("path=/v1/orders/{id}/items".to_owned(), 1.0)
        ]
    );
    // Rejections were recorded as the collector's own series at the end of the import.
    assert_eq!(
        value(
            addr,
            r#"sum(vigil_collector_rejected_total)"#,
            vigil_tsdb::time::now_ms()
        ),
        Some(7.0)
    );

    // `vigil query` prints the same answer.
    let url = format!("http://{addr}");
    let t = format!("{}", AT / 1000);
    let out = run(&["query", &format!("sum({ok})"), "--url", &url, "--time", &t]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "{} => 4 @ 2026-11-21T10:01:00.000Z");
    let out = run(&["query", "sum(", "--url", &url]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad_data"), "{out:?}");
    server.stop();
}
