//! The fuzzers' corpora (`fuzz/corpus/`), replayed on the stable toolchain in every test run:
//! each input the fuzzers kept, the regressions of what they found included, goes through the
//! same parser as its fuzz target and must give an answer or an error, never a panic. (The
//! fuzz targets themselves need nightly and libFuzzer; see `fuzz/README.md`.)

use std::path::{Path, PathBuf};

use vigil_alerter::rules::parse_str;
use vigil_alerter::template::Template;
use vigil_collector::kong::decode_body;
use vigil_collector::template::template_path;
use vigil_collector::{Aggregator, AggregatorConfig, RejectCounts};
use vigil_tsdb::openmetrics::Points;
use vigil_tsdb::promql::Engine;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "the {target} corpus is empty");
    out
}

#[test]
fn kong_bodies() {
    for (_, data) in corpus("kong_decode") {
        let mut events = Vec::new();
        let mut rejects = RejectCounts::default();
        decode_body(&data, &mut events, &mut rejects);
        assert!(events.len() <= data.len() / 2 + 1);
        let mut agg = Aggregator::new(AggregatorConfig::default());
        let (mut out, mut path) = (Vec::new(), String::new());
        for ev in &events {
            path.clear();
            template_path(&ev.uri, ["/v1"], &mut path);
            let _ = agg.apply(ev, ev.started_at, &mut out);
        }
        agg.tick(i64::MAX / 2, &mut out);
    }
}

#[test]
fn openmetrics_files() {
    for (_, data) in corpus("openmetrics") {
        let text = String::from_utf8_lossy(&data);
        let mut points = Points::default();
        for (i, line) in text.split('\n').enumerate() {
            let _ = points.push(line.strip_suffix('\r').unwrap_or(line), i + 1);
        }
        points.finish();
    }
}

#[test]
fn promql_queries_parse_or_are_refused() {
    let engine = Engine::default();
    for (path, data) in corpus("promql") {
        let Ok(q) = std::str::from_utf8(&data) else {
            continue;
        };
        // Parsed on a small stack, as the fuzz target evaluates.
        let (engine, q, shown) = (engine.clone(), q.to_owned(), path.display().to_string());
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let _ = engine.parse(&q);
            })
            .expect("thread")
            .join()
            .unwrap_or_else(|_| panic!("{shown}"));
    }
}

#[test]
fn rule_files_and_templates() {
    for (_, data) in corpus("rule_files") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        if let Err(errors) = parse_str(text, "corpus.yml") {
            assert!(!errors.is_empty());
        }
        let _ = Template::parse(text);
    }
}

#[test]
fn event_searches_answer_or_are_bad_queries() {
    use vigil_tsdb::events::{EventError, EventStore, EventStoreConfig, Kept, RawEvent};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EventStore::open(dir.path(), EventStoreConfig::default()).expect("open");
    for i in 0..200u16 {
        store.offer(RawEvent {
            time: 1_795_392_000_000 + i64::from(i) * 1_000,
            service: format!("svc-{}", i % 3),
            route: format!("route-{}", i % 7),
            path: format!("/v1/orders/{i}?x=1"),
            template: "/v1/orders/{id}".to_owned(),
            method: if i % 2 == 0 { "GET" } else { "POST" }.to_owned(),
            status: if i % 10 == 0 { 503 } else { 200 },
            latency_ms: f64::from(i),
            upstream_ms: Some(f64::from(i) / 2.0),
            kong_ms: None,
            consumer: Some("mobile".to_owned()),
            request_id: Some(format!("req-{i}")),
            client_ip: Some("10.0.0.1".to_owned()),
            kept: if i % 10 == 0 { Kept::Error } else { Kept::Sample },
            alert: None,
        });
    }
    store.flush().expect("flush");
    for (path, data) in corpus("event_search") {
        let Ok(q) = std::str::from_utf8(&data) else {
            continue;
        };
        match store.search(q, None, None, 20) {
            Ok(r) => assert!(r.events.len() <= r.total.min(20)),
            Err(EventError::Query(_)) => {}
            Err(e) => panic!("{}: not a query error: {e}", path.display()),
        }
    }
}
