//! vigil's Kafka source against a bare rdkafka consume loop, side by side on the same pre-filled
//! topic: is vigil ever the bottleneck?
//!
//! For each partition count: fill a topic with simulated Kong events (one per message), then
//! read all of it twice with fresh consumer groups: once with a loop that polls and drops the
//! messages, once with vigil's source (decode, template, aggregate, store with WAL, offsets
//! committed per batch). Each rate is timed from the first message to the last.
//!
//! ```sh
//! cargo run --release -p vigil-collector --example kafka_throughput -- \
//!     [--brokers HOST:PORT] [--partitions 8,16,32] [--messages 160000] [--compression lz4] [--rounds 5]
//! ```
//!
//! Without `--brokers`, librdkafka's mock cluster runs in this process (it keeps at most 5 MB of
//! message sets per partition, so the topic is compressed and spread over partitions to hold
//! the whole run; the fill is checked).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use vigil_collector::kafka::{KafkaConfig, KafkaSource};
use vigil_collector::sim::{Simulator, Topology};
use vigil_collector::{AggregatorConfig, Collector};
use vigil_tsdb::Db;

struct Args {
    brokers: Option<String>,
    partitions: Vec<i32>,
    messages: u64,
    compression: String,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args {
        brokers: None,
        partitions: vec![8, 16, 32],
        messages: 160_000,
        compression: "lz4".into(),
        rounds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--brokers" => a.brokers = Some(value),
            "--partitions" => a.partitions = value.split(',').map(|p| p.parse().expect("partition count")).collect(),
            "--messages" => a.messages = value.parse().expect("message count"),
            "--compression" => a.compression = value,
            "--rounds" => a.rounds = value.parse().expect("rounds"),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// Fills `topic` with `n` simulated events (in time order, keyed by request id); returns the
/// payload bytes.
fn fill(brokers: &str, topic: &str, n: u64, compression: &str) -> u64 {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", compression)
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .expect("producer");
    let mut sim = Simulator::new(Topology::default(), Vec::new(), 1);
    sim.rate_scale = 20.0;
    let (mut sent, mut bytes) = (0u64, 0u64);
    let mut buf = Vec::new();
    let mut t = vigil_tsdb::time::now_ms() - 3_600_000;
    while sent < n {
        sim.generate_in_order(t, t + 1_000, |e| {
            if sent >= n {
                return;
            }
            buf.clear();
            e.write_json(&mut buf);
            let key = e.request_id.to_le_bytes();
            let mut record = BaseRecord::to(topic).key(&key[..]).payload(&buf);
            while let Err((_, r)) = producer.send(record) {
                record = r;
                producer.poll(Duration::from_millis(5));
            }
            sent += 1;
            bytes += buf.len() as u64;
        });
        t += 1_000;
    }
    producer.flush(Duration::from_secs(300)).expect("flush");
    bytes
}

/// Messages the topic holds (high minus low watermarks).
fn held(brokers: &str, topic: &str, partitions: i32) -> u64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("client");
    (0..partitions)
        .map(|p| {
            let (lo, hi) = c
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            (hi - lo) as u64
        })
        .sum()
}

/// Reads `n` messages with a poll loop that drops them; returns (seconds, bytes).
fn bare(brokers: &str, topic: &str, group: &str, n: u64) -> (f64, u64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let (mut got, mut bytes, mut first) = (0u64, 0u64, None);
    let deadline = Instant::now() + Duration::from_secs(600);
    while got < n && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            got += 1;
            bytes += m.payload().map_or(0, <[u8]>::len) as u64;
        }
    }
    assert_eq!(got, n, "the bare consumer read {got} of {n}");
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    report_cpu("bare");
    (secs, bytes)
}

/// Reads `n` messages with vigil's source into a store on disk; returns (seconds, events
/// counted).
fn vigil(brokers: &str, topic: &str, group: &str, n: u64) -> (f64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(Db::open(dir.path(), Default::default()).expect("store"));
    let collector = Arc::new(Collector::new(db, AggregatorConfig::default()));
    let cfg = KafkaConfig::new(brokers, group, &[topic]);
    let source = KafkaSource::start(&cfg, collector.clone()).expect("source");
    let status = source.status().clone();
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let got = status.messages.load(Ordering::Relaxed);
        if got > 0 {
            first.get_or_insert_with(Instant::now);
        }
        if got >= n || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    report_cpu("vigil");
    if std::env::var_os("VERBOSE").is_some() {
        eprintln!(
            "pauses {} skipped {} rebalances {} commit errors {}",
            status.pauses.load(Ordering::Relaxed),
            status.duplicates_skipped.load(Ordering::Relaxed),
            status.rebalances.load(Ordering::Relaxed),
            status.commit_errors.load(Ordering::Relaxed)
        );
    }
    source.stop();
    let s = collector.stats();
    assert_eq!(
        status.messages.load(Ordering::Relaxed),
        n,
        "vigil read too few messages"
    );
    (secs, s.accepted)
}

/// CPU seconds used so far by each thread of this process, by name (from /proc).
fn thread_cpu() -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let name = std::fs::read_to_string(t.path().join("comm"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
        *out.entry(name).or_insert(0.0) += ticks / 100.0;
    }
    out
}

/// With `VERBOSE`, prints the CPU time each thread used since the previous report.
fn report_cpu(label: &str) {
    static LAST: std::sync::Mutex<Option<std::collections::BTreeMap<String, f64>>> = std::sync::Mutex::new(None);
    if std::env::var_os("VERBOSE").is_none() {
        return;
    }
    let now = thread_cpu();
    let mut last = LAST.lock().expect("lock");
    let before = last.take().unwrap_or_default();
    let used: Vec<String> = now
        .iter()
        .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.01)
        .map(|(k, v)| format!("{k} {v:.2}s"))
        .collect();
    eprintln!("{label} CPU: {}", used.join(", "));
    *last = Some(now);
}

fn main() {
    let a = args();
    let mut cluster = None;
    let brokers = match &a.brokers {
        Some(b) => b.clone(),
        None => {
            let c = MockCluster::new(1).expect("mock cluster");
            let b = c.bootstrap_servers();
            cluster = Some(c);
            b
        }
    };
    println!(
        "broker: {}; {} messages per run, {} compression, median of {} alternating runs",
        a.brokers.as_deref().unwrap_or("librdkafka mock cluster (in process)"),
        a.messages,
        a.compression,
        a.rounds
    );
    println!("| partitions | bare rdkafka msgs/s | vigil msgs/s | vigil / bare |");
    println!("|---|---|---|---|");
    let run = fastrand::u32(..);
    for &p in &a.partitions {
        let topic = format!("kong-{run}-{p}");
        match &cluster {
            Some(c) => c.create_topic(&topic, p, 1).expect("topic"),
            None => create_topic(&brokers, &topic, p),
        }
        let bytes = fill(&brokers, &topic, a.messages, &a.compression);
        report_cpu("fill");
        let n = held(&brokers, &topic, p);
        assert_eq!(
            n, a.messages,
            "the broker holds {n} of {} messages (too few partitions for it?)",
            a.messages
        );
        // Alternating runs (fresh groups each time); the medians are reported.
        let (mut bare_rates, mut vigil_rates) = (Vec::new(), Vec::new());
        for round in 0..a.rounds {
            let (bare_s, bare_bytes) = bare(&brokers, &topic, &format!("bare-{run}-{p}-{round}"), n);
            assert_eq!(bare_bytes, bytes);
            bare_rates.push(n as f64 / bare_s);
            let (vigil_s, events) = vigil(&brokers, &topic, &format!("vigil-{run}-{p}-{round}"), n);
            assert_eq!(events, n, "vigil counted {events} of {n} events");
            vigil_rates.push(n as f64 / vigil_s);
        }
        let (b, v) = (median(&mut bare_rates), median(&mut vigil_rates));
        println!("| {p} | {b:.0} | {v:.0} | {:.2} |", v / b);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Creates a topic on a real broker with the admin API.
fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let created = block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ));
    for r in created.expect("create topics") {
        r.expect("topic created");
    }
}

/// Runs a future to completion on this thread (the admin API is async; this example has no
/// runtime).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
