//! The Kafka source against librdkafka's mock cluster (a real Kafka-protocol broker in this
//! process): known events in, exactly their counts out, with the partitions' positions stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use vigil_collector::Reject;
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

fn producer(bootstrap: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Waits for `cond`, stepping the collector's clock.
fn wait_for(what: &str, collector: &Collector, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            collector.stats()
        );
        collector.tick(now_ms()).expect("tick");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_messages_are_counted_by_reason_and_dead_lettered_as_they_are() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("kong", 2, 1).expect("topic");
    cluster.create_topic("kong-rejected", 1, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let malformed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/kong/malformed.ndjson"
    ))
    .expect("testdata/kong/malformed.ndjson");
    let bad: Vec<&[u8]> = malformed.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let good = br#"{"request":{"method":"GET","uri":"/v1/orders/1"},"response":{"status":200},"started_at":1795150800000,"latencies":{"request":5},"service":{"name":"orders"},"route":{"name":"orders-route"}}"#;
    let p = producer(&bootstrap);
    for (i, msg) in bad.iter().enumerate() {
        for payload in [&good[..], msg] {
            let key = i.to_string();
            let mut record = BaseRecord::to("kong").key(&key).payload(payload);
            while let Err((_, r)) = p.send(record) {
                record = r;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");

    let db = Arc::new(Db::in_memory());
    let collector = Arc::new(Collector::new(db.clone(), small_windows()));
    let mut cfg = KafkaConfig::new(&bootstrap, "vigil-test", &["kong"]);
    cfg.idle_partition = 2_000;
    cfg.dead_letter_topic = Some("kong-rejected".into());
    let source = KafkaSource::start(&cfg, collector.clone()).expect("source");
    let total = 2 * bad.len() as u64;
    let status = source.status().clone();
    wait_for("every message", &collector, || {
        status.messages.load(std::sync::atomic::Ordering::Relaxed) == total
            && counts(&db).values().sum::<u64>() == bad.len() as u64
    });
    // Nothing stopped: every good event is counted, every bad message counted by reason.
    let r = collector.stats().rejected;
    let got: Vec<(Reject, u64)> = r.iter().collect();
    assert_eq!(
        got,
        vec![
            (Reject::InvalidJson, 2),
            (Reject::EmptyBatch, 1),
            (Reject::MissingField, 1),
            (Reject::BadStatus, 1),
            (Reject::BadTimestamp, 1),
            (Reject::UriTooLong, 1),
        ]
    );
    wait_for("the dead letters", &collector, || {
        status.dead_letters.load(std::sync::atomic::Ordering::Relaxed) == bad.len() as u64
    });
    source.stop();

    // The dead-letter topic holds the bad messages byte for byte, with why and where from.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "dead-letter-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&["kong-rejected"]).expect("subscribe");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < bad.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m.headers().expect("headers");
            let reason = headers
                .iter()
                .find(|h| h.key == "vigil-reason")
                .and_then(|h| h.value)
                .map(<[u8]>::to_vec);
            let source = headers
                .iter()
                .find(|h| h.key == "vigil-source")
                .and_then(|h| h.value)
                .map(<[u8]>::to_vec);
            assert!(String::from_utf8_lossy(&source.expect("source header")).starts_with("kong/"));
            seen.push((
                m.payload().expect("payload").to_vec(),
                String::from_utf8(reason.expect("reason")).expect("utf-8"),
            ));
        }
    }
    seen.sort();
    let mut want: Vec<Vec<u8>> = bad.iter().map(|b| b.to_vec()).collect();
    want.sort();
    assert_eq!(seen.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(), want);
    assert!(seen.iter().any(|(_, r)| r == "bad_status"), "{seen:?}");
}

#[test]
fn a_broker_that_goes_away_is_reported_and_one_that_comes_back_is_read_again() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("kong", 1, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let db = Arc::new(Db::in_memory());
    let collector = Arc::new(Collector::new(db.clone(), small_windows()));
    let mut cfg = KafkaConfig::new(&bootstrap, "vigil-test", &["kong"]);
    cfg.idle_partition = 2_000;
    cfg.properties.insert("reconnect.backoff.max.ms".into(), "500".into());
    let source = KafkaSource::start(&cfg, collector.clone()).expect("source");
    let status = source.status().clone();
    // An empty topic: joined, and ready.
    wait_for("joining", &collector, || status.readiness().is_ok());

    cluster.broker_down(1).expect("broker down");
    wait_for("the outage to show", &collector, || status.readiness().is_err());
    let why = status.readiness().expect_err("not ready");
    assert!(why.contains("kafka"), "{why}");

    cluster.broker_up(1).expect("broker up");
    let event = br#"{"request":{"method":"GET","uri":"/a"},"response":{"status":503},"started_at":1795150800000,"latencies":{"request":5}}"#;
    let p = producer(&bootstrap);
    for _ in 0..10 {
        p.send(BaseRecord::<(), _>::to("kong").payload(&event[..]))
            .expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    wait_for("recovery", &collector, || {
        status.readiness().is_ok() && status.messages.load(std::sync::atomic::Ordering::Relaxed) == 10
    });
    source.stop();
    assert_eq!(counts(&db), BTreeMap::from([(503, 10)]));
}

#[test]
fn a_topic_that_does_not_exist_is_reported() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let db = Arc::new(Db::in_memory());
    let collector = Arc::new(Collector::new(db, small_windows()));
    let mut cfg = KafkaConfig::new(&cluster.bootstrap_servers(), "vigil-test", &["no-such-topic"]);
    cfg.properties.insert("allow.auto.create.topics".into(), "false".into());
    let source = KafkaSource::start(&cfg, collector.clone()).expect("source");
    let status = source.status().clone();
    wait_for("the error", &collector, || {
        status.readiness().is_err_and(|e| e.contains("no-such-topic"))
    });
    source.stop();
}

/// Produces simulated traffic from `from` to `to` to one partition; returns the events sent.
fn produce_to(producer: &ThreadedProducer<DefaultProducerContext>, partition: i32, from: i64, to: i64) -> u64 {
    let mut sim = Simulator::new(Topology::default(), Vec::new(), from as u64);
    sim.rate_scale = 0.05;
    let (mut n, mut buf) = (0, Vec::new());
    sim.generate_in_order(from, to, |e| {
        n += 1;
        buf.clear();
        e.write_json(&mut buf);
        let mut record = BaseRecord::<(), [u8]>::to("kong").partition(partition).payload(&buf);
        while let Err((_, r)) = producer.send(record) {
            record = r;
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    producer.flush(Duration::from_secs(30)).expect("flush");
    n
}

#[test]
fn a_partition_behind_the_others_counts_and_only_disorder_within_one_is_late() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("kong", 2, 1).expect("topic");
    let producer = producer(&cluster.bootstrap_servers());
    let db = Arc::new(Db::in_memory());
    let collector = Arc::new(Collector::new(db.clone(), small_windows()));
    let mut cfg = KafkaConfig::new(&cluster.bootstrap_servers(), "vigil-test", &["kong"]);
    cfg.idle_partition = 1_000;
    let source = KafkaSource::start(&cfg, collector.clone()).expect("source");
    let total = |db: &Db| counts(db).values().sum::<u64>();

    // Partition 0 alone moves event time on, two minutes of it; its windows are written.
    let first = produce_to(&producer, 0, T0, T0 + 120_000);
    wait_for("partition 0's events", &collector, || total(&db) == first);
    assert!(collector.closed_until().is_some_and(|c| c >= T0 + 115_000));

    // Partition 1 then delivers the first minute, far behind the written windows, but in order
    // within itself (a partition taken over from another member looks like this): it counts.
    let second = produce_to(&producer, 1, T0, T0 + 60_000);
    wait_for("partition 1's events", &collector, || total(&db) == first + second);
    assert_eq!(collector.stats().rejected.get(Reject::Late), 0);
    assert!(collector.stats().late_accepted >= second);

    // Events a minute behind their own partition's newest are out of order: late.
    let disordered = produce_to(&producer, 1, T0, T0 + 2_000);
    assert!(disordered > 0);
    wait_for("the late events", &collector, || {
        collector.stats().rejected.get(Reject::Late) == disordered
    });
    source.stop();
    assert_eq!(total(&db), first + second);
}
