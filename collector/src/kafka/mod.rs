//! The Kafka source: Kong's log events from Kafka topics, consumed in a consumer group, counted
//! exactly once.
//!
//! ```text
//!  consumer thread ── poll ── Batch (payload copies) ──bounded queue──> aggregator thread
//!   │  rebalance callbacks (revoke: commit, or give     │ judge each message (gaps.rs): stale,
//!   │  back what was read since the last commit;        │ already read, new, or past records the
//!   │  assign: start at the stored position if the      │ broker skipped (fetch sent back)
//!   │  group's committed offset is ours, else at it)    │ decode on every core, add tentatively
//!   │  seeks and resumes the aggregator asks for        │ watermark (watermark.rs), hold back
//!   │  pause all when the queue is full                 ▼ partitions far ahead
//!   │  a group that assigns nobody anything: rejoin     when windows close: commit (commit.rs)
//!   └──────────────────────────────────────────────── Kafka offsets, then the store: samples +
//!                                                     positions + open windows, one WAL record
//! ```
//!
//! **Exactly once.** Events read since the last commit are held apart (tentative). A commit
//! first tells Kafka every partition's next offset, then stores the samples of the windows that
//! close, the positions and the open windows in one WAL record. Kafka is never ahead of the
//! store but between those two steps, so a partition's next owner, or this process restarted,
//! starts exactly where this store stopped: after a crash the open windows come back from the
//! store and consumption resumes at the stored positions (an offset this instance committed
//! and did not store is recognised by its metadata and by the store's marks).
//!
//! **Rebalances.** Before partitions are revoked, what was read is committed. If Kafka refuses
//! the commit (librdkafka's mock cluster does while a rebalance is under way), what was read
//! since the last commit is given back instead: the tentative events are dropped and the next
//! owner reads them from the committed offset. Messages polled before a rebalance or a seek are
//! stale afterwards and dropped (each carries the epoch it was polled in); a message at an
//! offset already read is skipped.
//!
//! **Brokers that skip records.** A fetch from inside a batch of records may be answered from
//! the next batch (tansu 0.6), or not at all when it is the last: the fetch is sent back until
//! the broker delivers the records before the position (`gaps.rs`). Gaps that are in the log
//! (compaction, transaction markers, retention) are stepped over and counted.
//!
//! **Bounded.** A bounded queue of batches sits between consuming and aggregating; when it is
//! full, or the store refuses writes, consumption pauses (librdkafka `pause`) and memory stays
//! flat. A partition far ahead of the slowest one (a backlog elsewhere) pauses too, so that the
//! slow one's events are not late and open windows do not pile up.
//!
//! **Known limits.** A process killed between telling Kafka an offset and storing what it read
//! up to it (a few milliseconds per commit) whose partitions move to another member before it
//! restarts loses what it read since its previous commit. Members keep separate stores, so a
//! partition handed from a member far ahead in event time to one far behind (or back) may find
//! its windows closed there: those events count in the next open window.

mod commit;
mod config;
mod context;
mod deadletter;
mod decode;
mod gaps;
mod partitions;
mod position;
mod process;
mod rejoin;
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
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

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
    /// Fetches the consumer thread is to send elsewhere (seeks, resumes): only the thread that
    /// polls may, so that the epoch it stamps on messages changes with the fetch.
    pub(crate) refetch: Mutex<Vec<Refetch>>,
    /// Whether `refetch` has anything (checked once per message).
    pub(crate) refetch_pending: AtomicBool,
    /// Kafka's committed offsets may be ahead of the store's (a crash between the two): the
    /// next batch commits, whether windows close or not.
    pub(crate) commit_due: AtomicBool,
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

/// The consumer group session timeout unless configured: how long a killed member's partitions
/// wait before the group gives them to another (or to the member, restarted).
const SESSION_TIMEOUT_MS: &str = "12000";

/// The store mark holding the instance id.
const INSTANCE_MARK: &str = "kafka/instance";

/// A fetch to send elsewhere, by the consumer thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refetch {
    /// Read the partition again from `offset`.
    Seek { topic: String, partition: i32, offset: i64 },
    /// Resume the partition (held back for running ahead) where it is to be fetched from.
    Resume { topic: String, partition: i32 },
}

impl Shared {
    /// Asks the consumer thread to send these fetches elsewhere.
    pub(crate) fn request(&self, fetches: impl IntoIterator<Item = Refetch>) {
        let mut r = self.refetch.lock();
        r.extend(fetches);
        if !r.is_empty() {
            self.refetch_pending.store(true, Ordering::Release);
        }
    }
}

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
            refetch: Mutex::new(Vec::new()),
            refetch_pending: AtomicBool::new(false),
            commit_due: AtomicBool::new(false),
            status: status.clone(),
            cfg: cfg.clone(),
            epoch: AtomicU64::new(0),
            instance,
        });
        let mut consumer_config = client_config(cfg);
        consumer_config
            .set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        // A restarted vigil takes its partitions back after its old member's session times
        // out, or at once with static membership where the broker implements it.
        if !cfg.properties.contains_key("session.timeout.ms") {
            consumer_config.set("session.timeout.ms", SESSION_TIMEOUT_MS);
        }
        if cfg.static_membership && !cfg.properties.contains_key("group.instance.id") {
            consumer_config.set("group.instance.id", &shared.instance);
        }
        let consumer: Arc<KafkaConsumer> = Arc::new(consumer_config.create_with_context(Context::new(shared.clone()))?);
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

    /// Stops consuming and commits what was read (Kafka, then the store with the open windows,
    /// or with them written when every partition was caught up). A static member (the default)
    /// does not leave the group: its partitions wait for it for the session timeout.
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
    c.set_log_level(librdkafka_log_level());
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

/// The level librdkafka logs at: what the log filter lets through for the target
/// `librdkafka` (warnings by default; rust-rdkafka would ask the `log` crate, which vigil does
/// not use, and keep only errors).
fn librdkafka_log_level() -> rdkafka::config::RDKafkaLogLevel {
    use rdkafka::config::RDKafkaLogLevel as L;
    use tracing::Level;
    if tracing::enabled!(target: "librdkafka", Level::DEBUG) {
        L::Debug
    } else if tracing::enabled!(target: "librdkafka", Level::INFO) {
        L::Info
    } else if tracing::enabled!(target: "librdkafka", Level::WARN) {
        L::Warning
    } else {
        L::Error
    }
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
    let mut watchdog = rejoin::Watchdog::default();
    // A group that assigns nobody anything is joined again once the session of whoever left
    // has had time to expire.
    let patience = session_timeout(&shared.cfg) + Duration::from_secs(10);
    let (mut idle, mut polled) = (true, 0u32);
    let mut refetch_after: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if shared.refetch_pending.load(Ordering::Acquire) && refetch_after.is_none_or(|t| Instant::now() >= t) {
            // A seek that failed (a partition not fetching yet, say) is tried again shortly.
            refetch_after = refetch(consumer, shared).then(|| Instant::now() + REFETCH_RETRY);
        }
        let look = idle || polled % 256 == 0;
        if look && topics_checked.is_none_or(|t| t.elapsed() >= TOPIC_CHECK) {
            check_topics(consumer, shared);
            topics_checked = Some(Instant::now());
        }
        if look {
            watchdog.check(consumer, shared, patience);
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

/// The consumer group session timeout in force.
fn session_timeout(cfg: &KafkaConfig) -> Duration {
    let ms = cfg
        .properties
        .get("session.timeout.ms")
        .map_or(SESSION_TIMEOUT_MS, String::as_str)
        .parse()
        .unwrap_or(45_000);
    Duration::from_millis(ms)
}

/// How long to wait before retrying a seek that failed.
const REFETCH_RETRY: Duration = Duration::from_millis(200);

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

/// Makes the requested seeks and resumes. On the consumer thread only: the epoch moves on
/// with them, so every message polled afterwards is from the new fetch (librdkafka drops what
/// it fetched before a seek) and every message polled before is stale for a partition whose
/// search is waiting for this seek. A resume is skipped if the partition was held back again
/// since, or all consumption paused (it comes with the release). Returns whether some seek
/// failed: it is asked for again.
fn refetch(consumer: &KafkaConsumer, shared: &Shared) -> bool {
    let requests = {
        let mut r = shared.refetch.lock();
        shared.refetch_pending.store(false, Ordering::Release);
        std::mem::take(&mut *r)
    };
    let mut parts = shared.parts.lock();
    let paused = shared.status.paused.load(Ordering::Relaxed);
    let mut resume = TopicPartitionList::new();
    let mut seek = TopicPartitionList::new();
    for r in &requests {
        let (topic, partition) = match r {
            Refetch::Seek { topic, partition, .. } | Refetch::Resume { topic, partition } => (topic, *partition),
        };
        let Some(part) = parts.get(topic, partition) else {
            continue;
        };
        if matches!(r, Refetch::Resume { .. }) {
            if part.held || paused {
                continue;
            }
            resume.add_partition(topic, partition);
        }
        if part.next >= 0 {
            let _ = seek.add_partition_offset(topic, partition, Offset::Offset(part.fetch_from()));
        }
    }
    let failed = refetch_from(consumer, shared, &mut parts, &resume, seek);
    drop(parts);
    let retry = !failed.is_empty();
    shared.request(failed);
    retry
}

/// Resumes `resume` and seeks each partition of `at` to its offset, then moves the epoch on
/// and marks the searches waiting for these seeks as sought. Returns the seeks that failed.
fn refetch_from(
    consumer: &KafkaConsumer,
    shared: &Shared,
    parts: &mut Partitions,
    resume: &TopicPartitionList,
    at: TopicPartitionList,
) -> Vec<Refetch> {
    if resume.count() > 0
        && let Err(e) = consumer.resume(resume)
    {
        tracing::warn!(error = %e, "resuming consumption failed");
    }
    let wanted: Vec<(String, i32, i64)> = at
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(n) => Some((e.topic().to_owned(), e.partition(), n)),
            _ => None,
        })
        .collect();
    let (sought, failed): (Vec<_>, Vec<_>) = if wanted.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        match consumer.seek_partitions(at, Duration::from_secs(10)) {
            Ok(result) => wanted
                .into_iter()
                .partition(|(t, p, _)| result.find_partition(t, *p).is_none_or(|e| e.error().is_ok())),
            Err(e) => {
                tracing::warn!(error = %e, "seeking failed; retried");
                (Vec::new(), wanted)
            }
        }
    };
    let epoch = shared.epoch.fetch_add(1, Ordering::Relaxed) + 1;
    for (topic, partition, offset) in sought {
        let Some(part) = parts.get_mut(&topic, partition) else {
            continue;
        };
        // A new fetch: what the broker served before says nothing of it.
        part.served = None;
        if let Some(search) = part.search.as_mut()
            && search.target == offset
        {
            search.epoch = Some(epoch);
        }
    }
    failed
        .into_iter()
        .map(|(topic, partition, offset)| Refetch::Seek {
            topic,
            partition,
            offset,
        })
        .collect()
}

/// Pauses (or resumes) every assigned partition; partitions held back for running ahead stay
/// paused. The flag changes under the partitions' lock, which the aggregator holds when it
/// holds back or releases partitions, so the two cannot cross.
fn set_paused(consumer: &KafkaConsumer, shared: &Shared, pause: bool) {
    let Ok(assignment) = consumer.assignment() else { return };
    let mut parts = shared.parts.lock();
    let st = &shared.status;
    st.paused.store(pause, Ordering::Relaxed);
    if pause {
        if let Err(e) = consumer.pause(&assignment) {
            tracing::warn!(error = %e, "pausing consumption failed");
        }
        st.pauses.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("the aggregator is behind: consumption paused");
    } else {
        let now = vigil_tsdb::time::now_ms();
        for (_, _, p) in parts.iter_mut() {
            p.last_progress = now;
        }
        let tpl = parts.without_held(&assignment);
        let at = parts.resume_points(&tpl);
        let failed = refetch_from(consumer, shared, &mut parts, &tpl, at);
        drop(parts);
        shared.request(failed);
    }
}
