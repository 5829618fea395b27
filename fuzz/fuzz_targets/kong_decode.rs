//! `cargo +nightly fuzz run kong_decode`: any HTTP body (one event, a batch, NDJSON, or
//! garbage) is decoded without a panic, every decoded event goes through path templating and
//! the aggregator, and the count of events plus rejects never exceeds what the body could hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_collector::kong::{BodyFormat, decode_body};
use vigil_collector::template::template_path;
use vigil_collector::{Aggregator, AggregatorConfig, RejectCounts};

fuzz_target!(|data: &[u8]| {
    let mut events = Vec::new();
    let mut rejects = RejectCounts::default();
    let format = decode_body(data, &mut events, &mut rejects);
    if format == BodyFormat::Empty {
        assert!(events.is_empty());
    }
    // An event takes at least `{}`; a body of n bytes cannot hold more than n / 2 of them.
    assert!(events.len() <= data.len() / 2 + 1);

    let mut agg = Aggregator::new(AggregatorConfig::default());
    let mut out = Vec::new();
    let mut path = String::new();
    for ev in &events {
        path.clear();
        template_path(&ev.uri, ["/v1"], &mut path);
        let _ = agg.apply(ev, ev.started_at, &mut out);
    }
    agg.tick(i64::MAX / 2, &mut out);
});
