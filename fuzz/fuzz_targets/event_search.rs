//! `cargo +nightly fuzz run event_search`: any text as an event-search query
//! (`/api/v1/events/search?q=`) against a small event store answers or is refused as a bad
//! query, never a panic or a stack overflow.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vigil_tsdb::events::{EventError, EventStore, EventStoreConfig, Kept, RawEvent};

fn store() -> &'static EventStore {
    static STORE: OnceLock<(tempfile::TempDir, EventStore)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let cfg = EventStoreConfig {
                commit_every: Duration::from_millis(10),
                ..EventStoreConfig::default()
            };
            let store = EventStore::open(dir.path(), cfg).expect("open");
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
                });
            }
            store.flush().expect("flush");
            (dir, store)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    match store().search(q, None, None, 20) {
        Ok(r) => assert!(r.events.len() <= r.total.min(20)),
        Err(EventError::Query(_)) => {}
        Err(e) => panic!("not a query error: {e}"),
    }
});
