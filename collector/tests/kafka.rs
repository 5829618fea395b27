//! The Kafka source against librdkafka's mock cluster (a real Kafka-protocol broker in this
//! process): known events in, exactly their counts out, with the partitions' positions stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use vigil_collector::kafka::{KafkaConfig, KafkaSource, Position, mark_key};
use vigil_collector::sim::{Simulator, Topology};
use vigil_collector::{AggregatorConfig, Collector};
use vigil_tsdb::time::now_ms;
use vigil_tsdb::{Db, MatchOp, Matcher};

/// Friday 2026-11-20, 12:00 in Jakarta.
const T0: i64 = 1_795_150_800_000;

/// Produces two minutes of simulated traffic, one event per message, keyed by service; returns
/// the expected count per status.
fn produce(bootstrap: &str, topic: &str) -> BTreeMap<u16, u64> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut sim = Simulator::new(Topology::default(), Vec::new(), 11);
    sim.rate_scale = 0.2;
    let mut want = BTreeMap::new();
    let mut buf = Vec::new();
    sim.generate_in_order(T0, T0 + 120_000, |e| {
        *want.entry(e.status).or_insert(0) += 1;
        buf.clear();
        e.write_json(&mut buf);
        let mut record = BaseRecord::to(topic).key(e.service).payload(&buf);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    });
    producer.flush(Duration::from_secs(30)).expect("flush");
    want
}

fn counts(db: &Db) -> BTreeMap<u16, u64> {
    let m = Matcher::new(MatchOp::Equal, "__name__", "vigil_http_requests_total").expect("matcher");
    let mut out = BTreeMap::new();
    for (l, _, v) in db.last_samples(&[m]) {
        if let (Some(s), Some(v)) = (l.get("status").and_then(|s| s.parse().ok()), v) {
            *out.entry(s).or_insert(0) += v.v as u64;
        }
    }
    out
}

fn small_windows() -> AggregatorConfig {
    AggregatorConfig {
        window_ms: 1_000,
        watermark_delay_ms: 500,
        allowed_lateness_ms: 5_000,
        ..AggregatorConfig::default()
    }
}

#[test]
fn every_event_is_counted_once() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("kong", 4, 1).expect("topic");
    let want = produce(&cluster.bootstrap_servers(), "kong");
    let total: u64 = want.values().sum();
    assert!(total > 3_000, "{total}");

    let db = Arc::new(Db::in_memory());
    let collector = Arc::new(Collector::new(db.clone(), small_windows()));
    let mut cfg = KafkaConfig::new(&cluster.bootstrap_servers(), "vigil-test", &["kong"]);
    cfg.idle_partition = 2_000;
    let source = KafkaSource::start(&cfg, collector.clone()).expect("source");
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts(&db).values().sum::<u64>() < total {
        assert!(
            Instant::now() < deadline,
            "counted {:?} of {total}: {:?}",
            counts(&db),
            collector.stats()
        );
        collector.tick(now_ms()).expect("tick");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(counts(&db), want);
    let status = source.status().clone();
    source.stop();
    assert_eq!(collector.stats().rejected.total(), 0);
    assert_eq!(status.messages.load(std::sync::atomic::Ordering::Relaxed), total);

    // Every partition's position is stored (a partition without messages has none): the next
    // offsets add up to the messages.
    let next: i64 = (0..4)
        .map(|p| {
            db.mark(&mark_key("kong", p))
                .and_then(|b| Position::decode(&b))
                .map_or(0, |pos| pos.next.max(0))
        })
        .sum();
    assert_eq!(next as u64, total);
}
