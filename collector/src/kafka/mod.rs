//! The Kafka source: Kong's log events from Kafka topics, consumed in a consumer group, counted
//! exactly once.
//!
//! ```text
//!  consumer thread ── poll ── Batch (payload copies) ──bounded queue──> aggregator thread
//!   │  rebalance callbacks (revoke: store positions and    │ commit the batch's offsets to Kafka
//!   │  open windows; assign: start at the stored position  │ (sync, tagged with this store's id)
//!   │  if the group's committed offset is ours, else at    │ while decoding it on every core
//!   │  the committed offset)                               │ drop stale and already-read messages
//!   │  pause all when the queue is full                    │ watermark (watermark.rs), hold back
//!   │                                                      ▼ partitions far ahead
//!   └────────────────────────────── Collector::ingest_from_source ──> store commit (as windows
//!                                   close): samples + positions + open windows, one WAL record
//! ```
//!
//! **Exactly once.** Each store commit carries, in the same WAL record as the samples, every
//! assigned partition's position (next offset, newest event time) and the open windows. After a
//! crash the open windows come back from the store and consumption resumes at the stored
//! positions, so every event is counted once.
//!
//! **Rebalances.** A batch's offsets are committed to Kafka (synchronously, tagged with this
//! store's instance id) before the batch is aggregated, under the lock that rebalance callbacks
//! take, and before partitions are revoked the open windows and positions are stored: so the
//! next owner starts exactly after what this process aggregated, without a commit during the
//! rebalance (which brokers may refuse). On assignment a partition starts at its stored position
//! when the group's committed offset is this instance's own (after a crash the store may be
//! behind it: the messages in between were lost with the process and are read again), else at
//! the committed offset (another member read on meanwhile). Messages polled before a rebalance
//! are stale afterwards and dropped (each carries the rebalance epoch it was polled in); a
//! message at an offset already aggregated is skipped.
//!
//! **Bounded.** A bounded queue of batches sits between consuming and aggregating; when it is
//! full, or the store refuses writes, consumption pauses (librdkafka `pause`) and memory stays
//! flat. A partition far ahead of the slowest one (a backlog elsewhere) pauses too, so that the
//! slow one's events are not late and open windows do not pile up.
//!
//! **Known limits.** If a process dies and its partitions move to another member before it
//! restarts, what it aggregated after its last store commit (about a window's worth) is lost:
//! the new owner starts after it. Members keep separate stores, so a partition handed from a
//! member far ahead in event time to one far behind (or back) may find its windows closed
//! there: those events count as late.

mod config;
mod context;
mod partitions;
mod position;
mod process;
mod status;
mod watermark;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{DefaultProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::TopicPartitionList;

pub use config::KafkaConfig;
pub use position::{Committed, Position, committed_key, mark_key};
pub use status::{KafkaStatus, PartitionStatus};

use crate::pipeline::Collector;
use context::Context;
use partitions::Partitions;

/// How long a batch may wait for more messages before it goes to the aggregator.
const LINGER: Duration = Duration::from_millis(20);

/// A batch is handed on once its payloads reach this many bytes, however few messages they
/// are; a recycled buffer grown past twice this is given back.
const MAX_BATCH_BYTES: usize = 32 << 20;

/// The consumer, as shared by the threads.
pub(crate) type KafkaConsumer = BaseConsumer<Context>;

/// State shared by the consumer thread (and its callbacks) and the aggregator thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) collector: Arc<Collector>,
    pub(crate) parts: Mutex<Partitions>,
    /// Partitions revoked from this process, as they were: if the group gives one back and
    /// nobody read on, it continues from here, which may be ahead of the store (when storing
    /// at the revocation failed, the aggregator still holds what was read). Locked after
    /// `parts`.
    pub(crate) revoked: Mutex<Partitions>,
    pub(crate) status: Arc<KafkaStatus>,
    pub(crate) cfg: KafkaConfig,
    /// Counts rebalances: a message carries the epoch it was polled in, and one polled before
    /// its partition's latest assignment is stale.
    pub(crate) epoch: AtomicU64,
    /// This store's identity, written with every offset committed to Kafka: an offset
    /// committed by this instance may be ahead of its store after a crash (the store resumes
    /// from its own position); one committed by another member is where to start.
    pub(crate) instance: String,
}

/// The store mark holding the instance id.
const INSTANCE_MARK: &str = "kafka/instance";

/// Messages copied out of librdkafka, one buffer per batch.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Topic names, indexed by [`Msg::topic`].
    pub(crate) topics: Vec<Arc<str>>,
    pub(crate) data: Vec<u8>,
    pub(crate) msgs: Vec<Msg>,
    pub(crate) started: Option<Instant>,
}

/// One message of a batch.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) topic: u16,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) epoch: u64,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Batch {
    /// The batch emptied, its buffers kept.
    fn cleared(mut self) -> Batch {
        self.data.clear();
        self.data.shrink_to(2 * MAX_BATCH_BYTES);
        self.msgs.clear();
        self.started = None;
        self
    }

    fn push(&mut self, topic: u16, partition: i32, offset: i64, epoch: u64, payload: &[u8]) {
        self.started.get_or_insert_with(Instant::now);
        let start = self.data.len();
        self.data.extend_from_slice(payload);
        self.msgs.push(Msg {
            topic,
            partition,
            offset,
            epoch,
            start,
            end: self.data.len(),
        });
    }

    pub(crate) fn payload(&self, m: &Msg) -> &[u8] {
        &self.data[m.start..m.end]
    }

    pub(crate) fn topic(&self, m: &Msg) -> &str {
        self.topics.get(usize::from(m.topic)).map_or("", |t| t)
    }
}

/// A running Kafka source.
#[derive(Debug)]
pub struct KafkaSource {
    stop: Arc<AtomicBool>,
    consumer_thread: Option<JoinHandle<()>>,
    aggregator_thread: Option<JoinHandle<()>>,
    status: Arc<KafkaStatus>,
}

/// Why the source could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is wrong.
    #[error("{0}")]
    Config(String),
    /// librdkafka refused the configuration or the subscription.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

impl KafkaSource {
    /// Joins the consumer group and starts consuming into `collector` (which from now on
    /// checkpoints). Returns at once; brokers that cannot be reached are retried by librdkafka
    /// and reported in [`KafkaStatus`].
    pub fn start(cfg: &KafkaConfig, collector: Arc<Collector>) -> Result<KafkaSource, StartError> {
        cfg.validate().map_err(StartError::Config)?;
        collector.enable_checkpoints();
        let instance = match collector
            .db()
            .mark(INSTANCE_MARK)
            .and_then(|b| String::from_utf8(b).ok())
        {
            Some(id) => id,
            None => {
                let id = format!("vigil-{:016x}", fastrand::u64(..));
                collector
                    .checkpoint([(INSTANCE_MARK.to_owned(), id.clone().into_bytes())])
                    .map_err(|e| StartError::Config(format!("storing the instance id: {e}")))?;
                id
            }
        };
        let status = Arc::new(KafkaStatus::default());
        let shared = Arc::new(Shared {
            collector,
            parts: Mutex::new(Partitions::default()),
            revoked: Mutex::new(Partitions::default()),
            status: status.clone(),
            cfg: cfg.clone(),
            epoch: AtomicU64::new(0),
            instance,
        });
        let consumer: Arc<KafkaConsumer> = Arc::new(
            client_config(cfg)
                .set("group.id", &cfg.group)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .create_with_context(Context::new(shared.clone()))?,
        );
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let dead_letters = match &cfg.dead_letter_topic {
            Some(_) => Some(client_config(cfg).create::<ThreadedProducer<DefaultProducerContext>>()?),
            None => None,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(cfg.queue_batches);
        // Batches go back to the consumer thread for reuse: their buffers keep their size, so
        // consuming allocates nothing in the steady state.
        let (recycle_tx, recycle_rx) = std::sync::mpsc::sync_channel(cfg.queue_batches + 2);
        let stop = Arc::new(AtomicBool::new(false));
        let consumer_thread = {
            let (consumer, shared, stop) = (consumer.clone(), shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("kafka-consumer".into())
                .spawn(move || consume(&consumer, &shared, &tx, &recycle_rx, &stop))
                .map_err(|e| StartError::Config(format!("starting the consumer thread: {e}")))?
        };
        let aggregator_thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("kafka-aggregate".into())
                .spawn(move || process::run(&shared, &consumer, &rx, &recycle_tx, dead_letters.as_ref(), &stop))
                .map_err(|e| StartError::Config(format!("starting the aggregator thread: {e}")))?
        };
        tracing::info!(brokers = %cfg.brokers, group = %cfg.group, topics = ?cfg.topics, "consuming from Kafka");
        Ok(KafkaSource {
            stop,
            consumer_thread: Some(consumer_thread),
            aggregator_thread: Some(aggregator_thread),
            status,
        })
    }

    /// What the source is doing.
    pub fn status(&self) -> &Arc<KafkaStatus> {
        &self.status
    }

    /// Stops consuming, aggregates what was read, stores the positions (with the open windows,
    /// or with them written when every partition was caught up), commits the positions to
    /// Kafka and leaves the group.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in [self.consumer_thread.take(), self.aggregator_thread.take()]
            .into_iter()
            .flatten()
        {
            if t.join().is_err() {
                tracing::error!("a Kafka source thread panicked");
            }
        }
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The client settings shared by the consumer and the dead-letter producer.
fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "1000")
        // What librdkafka prefetches bounds what arrives after a pause (memory stays flat)...
        .set("queued.max.messages.kbytes", "32768")
        // ... and once the prefetch is full, fetching resumes as soon as there is room again
        // (librdkafka's default waits a whole second, stalling every partition).
        .set("fetch.queue.backoff.ms", "20");
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c
}

/// Polls messages into batches and hands them to the aggregator thread; pauses consumption
/// while the queue is full. Rebalance callbacks run in here (inside `poll`).
///
/// This loop runs once per message, so it reads the clock only every 256 messages or when no
/// message was waiting, and does not wait in `poll` while messages flow.
fn consume(
    consumer: &KafkaConsumer,
    shared: &Shared,
    tx: &SyncSender<Batch>,
    recycled: &Receiver<Batch>,
    stop: &AtomicBool,
) {
    let mut batch = Batch::default();
    let mut paused = false;
    // Topic names by index; with one subscribed topic every message is from it.
    let mut topics: Vec<Arc<str>> = shared.cfg.topics.iter().map(|t| Arc::from(t.as_str())).collect();
    let single = topics.len() == 1;
    let max = shared.cfg.max_batch;
    let mut topics_checked: Option<Instant> = None;
    let (mut idle, mut polled) = (true, 0u32);
    while !stop.load(Ordering::Relaxed) {
        let look = idle || polled % 256 == 0;
        if look && topics_checked.is_none_or(|t| t.elapsed() >= TOPIC_CHECK) {
            check_topics(consumer, shared);
            topics_checked = Some(Instant::now());
        }
        let due = batch.started.is_some_and(|s| {
            batch.msgs.len() >= max || batch.data.len() >= MAX_BATCH_BYTES || (look && s.elapsed() >= LINGER)
        });
        if due {
            let mut next = recycled.try_recv().map(Batch::cleared).unwrap_or_default();
            next.topics.clone_from(&topics);
            match tx.try_send(std::mem::replace(&mut batch, next)) {
                Ok(()) => {
                    if paused {
                        set_paused(consumer, shared, false);
                        paused = false;
                    }
                }
                Err(TrySendError::Full(b)) => {
                    batch = b;
                    if !paused {
                        set_paused(consumer, shared, true);
                        paused = true;
                    }
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        let timeout = match batch.started {
            Some(_) if !idle && !paused => Duration::ZERO,
            Some(s) if !paused => LINGER.saturating_sub(s.elapsed()),
            _ => Duration::from_millis(100),
        };
        match consumer.poll(timeout) {
            Some(Ok(m)) => {
                (idle, polled) = (false, polled.wrapping_add(1));
                let topic = if single {
                    0
                } else {
                    match topics.iter().position(|t| &**t == m.topic()) {
                        Some(i) => i,
                        None => {
                            topics.push(m.topic().into());
                            batch.topics.clone_from(&topics);
                            topics.len() - 1
                        }
                    }
                };
                if batch.topics.is_empty() {
                    batch.topics.clone_from(&topics);
                }
                let epoch = shared.epoch.load(Ordering::Relaxed);
                batch.push(
                    topic as u16,
                    m.partition(),
                    m.offset(),
                    epoch,
                    m.payload().unwrap_or_default(),
                );
            }
            Some(Err(e)) => {
                idle = true;
                tracing::warn!(error = %e, "kafka consumer error");
                shared.status.error(vigil_tsdb::time::now_ms(), e.to_string());
            }
            None => idle = true,
        }
    }
    if !batch.msgs.is_empty() {
        let _ = tx.send(batch);
    }
}

/// How often the subscribed topics' existence is checked.
const TOPIC_CHECK: Duration = Duration::from_secs(5);

/// Asks the brokers whether the subscribed topics exist, and records (and logs) those that do
/// not: librdkafka waits for a missing topic silently.
fn check_topics(consumer: &KafkaConsumer, shared: &Shared) {
    let mut missing = Vec::new();
    for topic in &shared.cfg.topics {
        match consumer.fetch_metadata(Some(topic), Duration::from_millis(1500)) {
            Ok(md) => {
                let gone = md
                    .topics()
                    .iter()
                    .filter(|t| t.name() == topic)
                    .all(|t| t.error().is_some() || t.partitions().is_empty());
                if gone {
                    missing.push(topic.clone());
                }
            }
            // No broker answers: reported by librdkafka's errors.
            Err(_) => return,
        }
    }
    let mut known = shared.status.missing_topics.lock();
    if *known != missing {
        for t in missing.iter().filter(|t| !known.contains(t)) {
            tracing::warn!(topic = %t, "subscribed topic does not exist (waiting for it)");
        }
        for t in known.iter().filter(|t| !missing.contains(t)) {
            tracing::info!(topic = %t, "subscribed topic exists now");
        }
        *known = missing;
    }
}

/// Resumes `tpl` and seeks each partition to where this process will read next (`at`).
pub(crate) fn resume(consumer: &KafkaConsumer, tpl: &TopicPartitionList, at: TopicPartitionList) {
    if let Err(e) = consumer.resume(tpl) {
        tracing::warn!(error = %e, "resuming consumption failed");
    }
    if at.count() > 0
        && let Err(e) = consumer.seek_partitions(at, Duration::from_secs(10))
    {
        tracing::warn!(error = %e, "seeking after a resume failed");
    }
}

/// Pauses (or resumes) every assigned partition; partitions held back for running ahead stay
/// paused.
fn set_paused(consumer: &KafkaConsumer, shared: &Shared, pause: bool) {
    let Ok(assignment) = consumer.assignment() else { return };
    if pause {
        if let Err(e) = consumer.pause(&assignment) {
            tracing::warn!(error = %e, "pausing consumption failed");
        }
    } else {
        let (tpl, at) = {
            let mut parts = shared.parts.lock();
            let now = vigil_tsdb::time::now_ms();
            for (_, _, p) in parts.iter_mut() {
                p.last_progress = now;
            }
            let tpl = parts.without_held(&assignment);
            let at = parts.resume_points(&tpl);
            (tpl, at)
        };
        resume(consumer, &tpl, at);
    }
    let st = &shared.status;
    st.paused.store(pause, Ordering::Relaxed);
    if pause {
        st.pauses.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("the aggregator is behind: consumption paused");
    }
}
