//! The Kafka brokers the end-to-end tests run against: librdkafka's mock cluster (in the test
//! process) and `tansu` (a separate process on a free loopback port, in-memory storage;
//! installed by `.ci/run`).

use std::net::SocketAddr;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::common::{free_addr, wait_until};

/// A broker for a test.
pub(crate) enum Broker {
    Mock(MockCluster<'static, DefaultProducerContext>),
    Tansu {
        child: std::process::Child,
        addr: SocketAddr,
    },
}

impl Broker {
    pub(crate) fn mock() -> Broker {
        Broker::Mock(MockCluster::new(1).expect("mock cluster"))
    }

    /// tansu on a free port, or `None` (the test is skipped) if it is not installed.
    pub(crate) fn tansu() -> Option<Broker> {
        let found = std::process::Command::new("tansu")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            assert!(
                std::env::var_os("VIGIL_REQUIRE_EXTERNAL").is_none(),
                "tansu is required (VIGIL_REQUIRE_EXTERNAL is set): cargo install tansu --locked --features dynostore"
            );
            eprintln!("tansu is not installed: skipping");
            return None;
        }
        // tansu must be told its port: a free one, bound and released. Should a test alongside
        // take it meanwhile, tansu ends (it cannot listen) and another port is tried.
        for _ in 0..5 {
            let addr = free_addr();
            let url = format!("tcp://{addr}");
            let mut child = std::process::Command::new("tansu")
                .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
                .args(["--storage-engine", "memory://tansu/", "--cluster-id", "vigil-e2e"])
                .env_remove("LISTENER_URL")
                .env_remove("ADVERTISED_LISTENER_URL")
                .env_remove("STORAGE_ENGINE")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("starting tansu");
            let ended = |child: &mut std::process::Child| child.try_wait().ok().flatten().is_some();
            wait_until(Duration::from_secs(30), || {
                ended(&mut child) || std::net::TcpStream::connect(addr).is_ok()
            });
            // Listening, and not someone else's listener that tansu lost the port to.
            std::thread::sleep(Duration::from_millis(300));
            if !ended(&mut child) {
                return Some(Broker::Tansu { child, addr });
            }
            eprintln!("tansu could not listen on {addr}: trying another port");
        }
        panic!("tansu did not start on any of five ports");
    }

    pub(crate) fn bootstrap(&self) -> String {
        match self {
            Broker::Mock(c) => c.bootstrap_servers(),
            Broker::Tansu { addr, .. } => addr.to_string(),
        }
    }

    pub(crate) fn create_topic(&self, topic: &str, partitions: i32) {
        match self {
            Broker::Mock(c) => c.create_topic(topic, partitions, 1).expect("topic"),
            Broker::Tansu { addr, .. } => {
                let out = std::process::Command::new("tansu")
                    .args(["topic", "create", topic, "--broker", &format!("tcp://{addr}")])
                    .args(["--partitions", &partitions.to_string()])
                    .output()
                    .expect("tansu topic create");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }

    /// Producer settings with a producer's usual batching: many records per batch (vigil must
    /// resume inside them; tansu 0.6 answers such a fetch from the next batch).
    pub(crate) fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap())
            .set("linger.ms", "20")
            .set("batch.num.messages", "500");
        c
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Broker::Tansu { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
