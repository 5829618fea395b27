//! Exactly once through real crashes: tens of thousands of Kong events with known counts, some
//! malformed, produced live into several partitions (event times out of order across them,
//! records batched as a producer batches them), consumed by vigil processes that are SIGKILLed
//! at random moments: before their partitions are assigned, after, while windows close, and in
//! the middle of a rebalance between two of them. What both stores hold at the end must be
//! what an offline import of the same events holds, series by series.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use vigil_tsdb::time::now_ms;

use crate::broker::Broker;
use crate::common::{Server, get, run, vector, wait_until};

const TOPIC: &str = "kong-kills";
const PARTITIONS: i32 = 4;
/// How far each partition's event time runs ahead of the one before it.
const PARTITION_SKEW_MS: i64 = 40_000;

/// The events of the test: NDJSON lines, each with the partition it goes to and its event
/// time (0 for a malformed line).
struct Traffic {
    lines: Vec<(i32, i64, String)>,
}

/// `n` events over `span_ms` of event time ending a few minutes before now, 1% of them
/// malformed; partition `p` carries every event with `i % PARTITIONS == p`, in time order within
/// it (to the second), `p · PARTITION_SKEW_MS` ahead of partition 0.
fn traffic(n: usize, span_ms: i64, seed: u64) -> Traffic {
    let mut rng = fastrand::Rng::with_seed(seed);
    let malformed = String::from_utf8(crate::common::kong_fixture("malformed.ndjson")).expect("utf-8");
    let malformed: Vec<&str> = malformed.lines().collect();
    let start = now_ms() - span_ms - 5 * 60_000 - i64::from(PARTITIONS) * PARTITION_SKEW_MS;
    let services = [
        ("orders", "orders-route", "/v1/orders"),
        ("orders", "orders-admin", "/admin/orders"),
        ("payments", "payments-route", "/v2/payments"),
        ("users", "users-route", "/v1/users"),
    ];
    let methods = ["GET", "GET", "GET", "POST", "DELETE"];
    let statuses = [200, 200, 200, 200, 201, 404, 500, 503];
    let mut lines = Vec::with_capacity(n);
    for i in 0..n {
        let p = (i % PARTITIONS as usize) as i32;
        if rng.u32(0..100) == 0 {
            lines.push((p, 0, malformed[rng.usize(0..malformed.len())].to_owned()));
            continue;
        }
        let t = start + (i as i64 * span_ms) / n as i64 + i64::from(p) * PARTITION_SKEW_MS + rng.i64(-1_000..1_000);
        let (service, route, prefix) = services[rng.usize(0..services.len())];
        let uri = match rng.u32(0..3) {
            0 => prefix.to_owned(),
            1 => format!("{prefix}/{}", rng.u32(1..100_000)),
            _ => format!("{prefix}/{}/items?page={}", rng.u32(1..100_000), rng.u8(1..5)),
        };
        let latency = rng.u32(1..2_000);
        lines.push((
            p,
            t,
            format!(
                concat!(
                    r#"{{"request":{{"method":"{m}","uri":"{uri}","id":"{i:x}"}},"response":{{"status":{s},"size":{size}}},"#,
                    r#""started_at":{t},"latencies":{{"request":{lat},"proxy":{proxy},"kong":1}},"#,
                    r#""service":{{"name":"{svc}"}},"route":{{"name":"{route}","paths":["{prefix}"]}},"client_ip":"10.1.2.3"}}"#
                ),
                uri = uri,
                i = i,
                t = t,
                svc = service,
                route = route,
                prefix = prefix,
                m = methods[rng.usize(0..methods.len())],
                s = statuses[rng.usize(0..statuses.len())],
                size = rng.u32(0..50_000),
                lat = latency,
                proxy = latency.saturating_sub(1),
            ),
        ));
    }
    Traffic { lines }
}

/// Produces the traffic in `chunks` parts, `pause` apart, with a producer's usual batching (so
/// a consumer resumes inside record batches).
fn produce(producer: &rdkafka::ClientConfig, traffic: &Traffic, chunks: usize, pause: Duration) {
    let producer: ThreadedProducer<DefaultProducerContext> = producer.create().expect("producer");
    let per_chunk = traffic.lines.len().div_ceil(chunks);
    for chunk in traffic.lines.chunks(per_chunk) {
        for (p, _, line) in chunk {
            let mut record = BaseRecord::<(), str>::to(TOPIC).partition(*p).payload(line.as_str());
            while let Err((_, r)) = producer.send(record) {
                record = r;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
        std::thread::sleep(pause);
    }
}

/// The truth: the same lines imported offline into a store of their own, served and read.
fn truth(traffic: &Traffic, dir: &Path) -> BTreeMap<String, f64> {
    let file = dir.join("truth.ndjson");
    let mut f = std::fs::File::create(&file).expect("create");
    // In event-time order: the import judges lateness over the whole file, the consumer per
    // partition.
    let mut lines: Vec<&(i32, i64, String)> = traffic.lines.iter().collect();
    lines.sort_by_key(|(_, t, _)| *t);
    for (_, _, line) in lines {
        writeln!(f, "{line}").expect("write");
    }
    drop(f);
    let data = dir.join("truth");
    let out = run(&[
        "import",
        "kong",
        file.to_str().expect("utf-8"),
        "--data-dir",
        data.to_str().expect("utf-8"),
        "-q",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = Server::start(&data, "");
    let want = totals(&[server.addr]);
    server.stop();
    want
}

/// The newest value of every request, latency-count and byte series, summed over the stores.
fn totals(addrs: &[SocketAddr]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for addr in addrs {
        for name in [
            "vigil_http_requests_total",
            "vigil_http_request_duration_seconds_count",
            "vigil_http_response_bytes_total",
        ] {
            let q = format!("last_over_time({name}[3h])");
            for (labels, v) in vector(*addr, &q, now_ms()) {
                *out.entry(format!("{name}{{{labels}}}")).or_insert(0.0) += v;
            }
        }
    }
    out
}

/// The sources' settings: batches of the aggregator end inside the producer's (500 records),
/// so that positions, and the restarts from them, fall inside record batches.
fn config(bootstrap: &str) -> String {
    format!(
        "sources:\n  kafka:\n    brokers: \"{bootstrap}\"\n    group: vigil-kills\n    topics: [{TOPIC}]\n    \
         idle_partition: 3s\n    max_batch: 173\n\
         collector:\n  window: 2s\n  watermark_delay: 1s\n  allowed_lateness: 10s\n"
    )
}

/// Messages the source has consumed, from `/api/v1/status/collector`.
fn consumed(addr: SocketAddr) -> u64 {
    let (_, body) = get(addr, "/api/v1/status/collector");
    serde_json::from_str::<serde_json::Value>(&body).map_or(0, |v| v["data"]["kafka"]["messages"].as_u64().unwrap_or(0))
}

/// Sleeps a random time below `max_ms`.
fn pause(rng: &mut fastrand::Rng, max_ms: u64) {
    std::thread::sleep(Duration::from_millis(rng.u64(0..max_ms)));
}

/// Waits until the stores together hold `want` (and hold it a few seconds on).
fn converge(addrs: &[SocketAddr], want: &BTreeMap<String, f64>, seed: u64) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let got = totals(addrs);
        if &got == want {
            break;
        }
        if Instant::now() > deadline {
            let wrong: Vec<String> = want
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(v))
                .map(|(k, v)| format!("{k}: want {v}, got {:?}", got.get(k)))
                .chain(
                    got.keys()
                        .filter(|k| !want.contains_key(*k))
                        .map(|k| format!("{k}: not in the truth")),
                )
                .take(20)
                .collect();
            let status: Vec<String> = addrs.iter().map(|a| get(*a, "/api/v1/status/collector").1).collect();
            panic!(
                "seed {seed}: {} of {} series wrong:\n{}\n{status:#?}",
                wrong.len(),
                want.len(),
                wrong.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(&totals(addrs), want, "seed {seed}: the counts moved after converging");
}

pub(crate) fn exact_through_kills_on(broker: &Broker, seed: u64) {
    eprintln!("kill test seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    broker.create_topic(TOPIC, PARTITIONS);
    let bootstrap = broker.bootstrap();
    let tmp = tempfile::tempdir().expect("tempdir");
    let traffic = traffic(24_000, 30 * 60_000, seed);
    let want = truth(&traffic, tmp.path());
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let cfg = config(&bootstrap);

    let producer = broker.producer_config();
    std::thread::scope(|s| {
        // The events arrive over about fifteen seconds, while the kills happen.
        let producing = s.spawn(|| produce(&producer, &traffic, 12, Duration::from_millis(1_200)));

        // Killed before (most likely) its partitions are assigned.
        let a = Server::spawn(&a_dir, &cfg);
        pause(&mut rng, 1_500);
        a.kill();
        // Killed after they are.
        let a = Server::spawn(&a_dir, &cfg);
        wait_until(Duration::from_secs(60), || a.logged("partition assigned") > 0);
        pause(&mut rng, 2_000);
        a.kill();
        // Killed while consuming, windows closing.
        let a = Server::spawn(&a_dir, &cfg);
        wait_until(Duration::from_secs(60), || consumed(a.addr) > 0);
        pause(&mut rng, 1_500);
        a.kill();
        // Killed in the middle of a rebalance: a second member joins.
        let a = Server::spawn(&a_dir, &cfg);
        wait_until(Duration::from_secs(60), || consumed(a.addr) > 0);
        let b = Server::spawn(&b_dir, &cfg);
        wait_until(Duration::from_secs(60), || {
            a.logged("partitions revoked") > 0 || b.logged("partition assigned") > 0
        });
        pause(&mut rng, 1_000);
        a.kill();
        // Back for good, beside the second member.
        let a = Server::spawn(&a_dir, &cfg);
        producing.join().expect("producer");
        converge(&[a.addr, b.addr], &want, seed);
        a.stop();
        b.stop();
    });
}
