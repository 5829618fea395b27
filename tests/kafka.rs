//! vigil consuming Kong events from Kafka, end to end through the `vigil` binary: known events
//! in, exactly their counts out of the API, across SIGKILLs at arbitrary moments and across
//! rebalances between two vigil processes in one consumer group (each with its own store; the
//! sum over both is exact).
//!
//! Each test runs against two real Kafka-protocol brokers: librdkafka's mock cluster (in this
//! test process) and `tansu` (a separate process, started here on a free loopback port with
//! in-memory storage; installed by `.ci/run`). Without `tansu` on the PATH the tansu variants
//! say so and pass, unless `VIGIL_REQUIRE_EXTERNAL=1` makes them fail.

#[path = "kafka/broker.rs"]
mod broker;
mod common;
#[path = "kafka/kills.rs"]
mod kills;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use broker::Broker;
use common::{Server, get, vector, wait_until};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::Value;
use vigil_collector::sim::{Simulator, Topology};
use vigil_tsdb::time::now_ms;

/// Produces simulated traffic for `[from, to)`, one event per message keyed by request id (so
/// the partitions fill evenly: the mock cluster keeps at most 5 MB per partition and drops the
/// oldest messages beyond that), and adds the counts per status to `want`.
fn produce(broker: &Broker, topic: &str, from: i64, to: i64, seed: u64, want: &mut BTreeMap<String, u64>) -> u64 {
    let producer: ThreadedProducer<DefaultProducerContext> = broker.producer_config().create().expect("producer");
    let mut sim = Simulator::new(Topology::default(), Vec::new(), seed);
    sim.rate_scale = 0.3;
    let mut n = 0;
    let mut buf = Vec::new();
    sim.generate_in_order(from, to, |e| {
        *want.entry(e.status.to_string()).or_insert(0) += 1;
        n += 1;
        buf.clear();
        e.write_json(&mut buf);
        let key = e.request_id.to_le_bytes();
        let mut record = BaseRecord::to(topic).key(&key[..]).payload(&buf);
        while let Err((_, r)) = producer.send(record) {
            record = r;
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    producer.flush(Duration::from_secs(120)).expect("flush");
    n
}

fn config(bootstrap: &str, topic: &str) -> String {
    format!(
        "sources:\n  kafka:\n    brokers: \"{bootstrap}\"\n    group: vigil-e2e\n    topics: [{topic}]\n    \
         idle_partition: 3s\n    properties: {{\"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}}\n\
         collector:\n  window: 1s\n  watermark_delay: 500ms\n  allowed_lateness: 5s\n"
    )
}

/// Requests per status in one vigil's store.
fn counts(addr: SocketAddr) -> BTreeMap<String, u64> {
    vector(
        addr,
        "sum by (status) (last_over_time(vigil_http_requests_total[1h]))",
        now_ms(),
    )
    .into_iter()
    .map(|(labels, v)| (labels.trim_start_matches("status=").to_owned(), v as u64))
    .collect()
}

fn sum(maps: &[BTreeMap<String, u64>]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for m in maps {
        for (k, v) in m {
            *out.entry(k.clone()).or_insert(0) += v;
        }
    }
    out
}

/// Messages the source has consumed, from `/api/v1/status/collector`.
fn consumed(addr: SocketAddr) -> u64 {
    let (_, body) = get(addr, "/api/v1/status/collector");
    serde_json::from_str::<Value>(&body).map_or(0, |v| v["data"]["kafka"]["messages"].as_u64().unwrap_or(0))
}

fn start(dir: &Path, bootstrap: &str, topic: &str) -> Server {
    Server::start(dir, &config(bootstrap, topic))
}

/// Waits until the counts (summed over `addrs`) are `want`, and stay so for a few seconds.
fn converge(addrs: &[SocketAddr], want: &BTreeMap<String, u64>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = sum(&addrs.iter().map(|a| counts(*a)).collect::<Vec<_>>());
        if &got == want {
            break;
        }
        let (g, w): (u64, u64) = (got.values().sum(), want.values().sum());
        let status = || -> Vec<String> { addrs.iter().map(|a| get(*a, "/api/v1/status/collector").1).collect() };
        assert!(
            g <= w,
            "counted more than was produced: {got:?} vs {want:?}\n{:#?}",
            status()
        );
        assert!(
            Instant::now() < deadline,
            "counted {g} of {w}: {got:?} vs {want:?}\n{:#?}",
            status()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(3));
    let got = sum(&addrs.iter().map(|a| counts(*a)).collect::<Vec<_>>());
    assert_eq!(&got, want, "the counts moved after converging");
}

/// One test at a time: each runs several vigil processes and a broker, and two cores shared by
/// four such tests make timing, not correctness, the thing tested.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The kill test's seed: `VIGIL_KILL_SEED`, or the clock's (printed, to run a failure again).
fn kill_seed() -> u64 {
    std::env::var("VIGIL_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64)
}

#[test]
fn exactly_once_through_random_sigkills_and_rebalances() {
    let _one = serial();
    kills::exact_through_kills_on(&Broker::mock(), kill_seed());
}

#[test]
fn exactly_once_through_random_sigkills_and_rebalances_on_tansu() {
    let _one = serial();
    if let Some(b) = Broker::tansu() {
        kills::exact_through_kills_on(&b, kill_seed());
    }
}

#[test]
fn exact_counts_across_sigkills() {
    let _one = serial();
    exact_counts_across_sigkills_on(&Broker::mock());
}

#[test]
fn exact_counts_across_sigkills_on_tansu() {
    let _one = serial();
    if let Some(b) = Broker::tansu() {
        exact_counts_across_sigkills_on(&b);
    }
}

#[test]
fn exact_counts_across_rebalances() {
    let _one = serial();
    exact_counts_across_rebalances_on(&Broker::mock());
}

#[test]
fn exact_counts_across_rebalances_on_tansu() {
    let _one = serial();
    if let Some(b) = Broker::tansu() {
        exact_counts_across_rebalances_on(&b);
    }
}

fn exact_counts_across_sigkills_on(broker: &Broker) {
    broker.create_topic("kong", 6);
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let now = now_ms();
    let mut want = BTreeMap::new();
    let produced = produce(broker, "kong", now - 600_000, now - 420_000, 1, &mut want);

    // Killed as soon as it has consumed something: its open windows and the messages after its
    // last commit are lost with it, and must come back from the store and the replay.
    let vigil = start(&data, &bootstrap, "kong");
    wait_until(Duration::from_secs(60), || consumed(vigil.addr) > 0);
    vigil.kill();

    // More traffic, and a kill at an arbitrary moment of the catch-up.
    let produced2 = produce(broker, "kong", now - 420_000, now - 240_000, 2, &mut want);
    let vigil = start(&data, &bootstrap, "kong");
    wait_until(Duration::from_secs(60), || consumed(vigil.addr) > 0);
    std::thread::sleep(Duration::from_millis(fastrand::u64(0..800)));
    vigil.kill();

    let vigil = start(&data, &bootstrap, "kong");
    converge(&[vigil.addr], &want);
    assert_eq!(want.values().sum::<u64>(), produced + produced2);
    // A graceful stop and start changes nothing.
    vigil.stop();
    let vigil = start(&data, &bootstrap, "kong");
    converge(&[vigil.addr], &want);
    vigil.stop();
}

fn exact_counts_across_rebalances_on(broker: &Broker) {
    broker.create_topic("kong", 6);
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().expect("tempdir");
    let now = now_ms();
    let mut want = BTreeMap::new();
    produce(broker, "kong", now - 600_000, now - 480_000, 3, &mut want);

    let a = start(&dir.path().join("a"), &bootstrap, "kong");
    wait_until(Duration::from_secs(60), || consumed(a.addr) > 0);
    // B joins: A gives up half of the partitions in the middle of its windows.
    let b = start(&dir.path().join("b"), &bootstrap, "kong");
    produce(broker, "kong", now - 480_000, now - 360_000, 4, &mut want);
    wait_until(Duration::from_secs(60), || consumed(b.addr) > 0);
    converge(&[a.addr, b.addr], &want);

    // B leaves: A takes its partitions back, from where B stopped.
    b.stop();
    produce(broker, "kong", now - 360_000, now - 240_000, 5, &mut want);
    // B's store, read back by a vigil that consumes nothing: whatever windows B left open are
    // written when that one stops, and counted by the next.
    let b_final = {
        Server::start(&dir.path().join("b"), "collector:\n  window: 1s\n").stop();
        let reader = Server::start(&dir.path().join("b"), "collector:\n  window: 1s\n");
        let c = counts(reader.addr);
        reader.stop();
        c
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = sum(&[counts(a.addr), b_final.clone()]);
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{got:?} vs {want:?}\nB's store: {b_final:?}\nA: {}",
            get(a.addr, "/api/v1/status/collector").1
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    a.stop();
}
