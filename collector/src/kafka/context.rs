//! The consumer's callbacks (rebalances, statistics, errors, logs) and the state of the
//! assigned partitions they share with the aggregator thread.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::CommitMode;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use vigil_tsdb::Timestamp;
use vigil_tsdb::time::now_ms;

use super::position::{Position, mark_key};
use super::status::PartitionStatus;
use super::{KafkaConsumer, Shared};

/// How long a commit or an offset lookup inside a rebalance may take.
const REBALANCE_TIMEOUT: Duration = Duration::from_secs(10);

/// One assigned partition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Part {
    /// The first offset not yet aggregated.
    pub(crate) next: i64,
    /// Newest event time aggregated.
    pub(crate) max_t: Option<Timestamp>,
    /// Wall-clock time of the last message (or of the assignment).
    pub(crate) last_msg: Timestamp,
    /// Lag from the latest statistics, and when they came.
    pub(crate) lag: Option<(i64, Timestamp)>,
    /// Paused for running ahead of the slowest partition.
    pub(crate) held: bool,
    /// Messages aggregated since assignment.
    pub(crate) messages: u64,
}

/// The assigned partitions by topic and partition.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Partitions(pub(crate) BTreeMap<String, BTreeMap<i32, Part>>);

impl Partitions {
    pub(crate) fn get_mut(&mut self, topic: &str, partition: i32) -> Option<&mut Part> {
        self.0.get_mut(topic)?.get_mut(&partition)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, i32, &Part)> {
        self.0
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |(p, part)| (t.as_str(), *p, part)))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&str, i32, &mut Part)> {
        self.0
            .iter_mut()
            .flat_map(|(t, ps)| ps.iter_mut().map(move |(p, part)| (t.as_str(), *p, part)))
    }

    /// Every partition's stored form: (mark key, position).
    pub(crate) fn positions(&self) -> Vec<(String, Vec<u8>)> {
        self.iter()
            .map(|(t, p, part)| {
                (
                    mark_key(t, p),
                    Position {
                        next: part.next,
                        max_t: part.max_t,
                    }
                    .encode(),
                )
            })
            .collect()
    }

    /// The partitions of `tpl` with the offsets read so far, for a commit to Kafka.
    pub(crate) fn offsets(&self, only: Option<&TopicPartitionList>) -> TopicPartitionList {
        let mut out = TopicPartitionList::new();
        for (t, p, part) in self.iter() {
            if only.is_some_and(|o| o.find_partition(t, p).is_none()) || part.next < 0 {
                continue;
            }
            let _ = out.add_partition_offset(t, p, Offset::Offset(part.next));
        }
        out
    }

    /// `assignment` without the partitions held back.
    pub(crate) fn without_held(&self, assignment: &TopicPartitionList) -> TopicPartitionList {
        let mut out = TopicPartitionList::new();
        for e in assignment.elements() {
            let held = self
                .0
                .get(e.topic())
                .and_then(|m| m.get(&e.partition()))
                .is_some_and(|p| p.held);
            if !held {
                out.add_partition(e.topic(), e.partition());
            }
        }
        out
    }
}

/// The consumer's callbacks.
#[derive(Debug)]
pub(crate) struct Context {
    shared: Arc<Shared>,
}

impl Context {
    pub(crate) fn new(shared: Arc<Shared>) -> Context {
        Context { shared }
    }

    /// Before partitions go: store the open windows and positions, then commit the positions
    /// to Kafka and wait for it, so the next owner starts where this process stopped.
    fn revoke(&self, consumer: &KafkaConsumer, tpl: &TopicPartitionList) {
        let shared = &self.shared;
        let mut parts = shared.parts.lock();
        if let Err(e) = shared.collector.checkpoint(parts.positions()) {
            tracing::error!(error = %e, "storing the positions before a rebalance failed; the next owner may count some messages again");
        } else {
            let offsets = parts.offsets(Some(tpl));
            if offsets.count() > 0
                && let Err(e) = consumer.commit(&offsets, CommitMode::Sync)
            {
                shared.status.commit_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "committing offsets before a rebalance failed; the next owner may count some messages again");
            }
        }
        let mut status = shared.status.partitions.lock();
        for e in tpl.elements() {
            if let Some(ps) = parts.0.get_mut(e.topic()) {
                ps.remove(&e.partition());
                if ps.is_empty() {
                    parts.0.remove(e.topic());
                }
            }
            shared.collector.forget_position(&mark_key(e.topic(), e.partition()));
            status.remove(&(e.topic().to_owned(), e.partition()));
        }
        tracing::info!(partitions = tpl.count(), "partitions revoked");
    }

    /// New partitions: start each at the later of its stored position and the group's
    /// committed offset.
    fn assign(&self, consumer: &KafkaConsumer, tpl: &mut TopicPartitionList) {
        let shared = &self.shared;
        let committed = match consumer.committed_offsets(tpl.clone(), REBALANCE_TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "reading the group's committed offsets failed; starting from the stored positions");
                TopicPartitionList::new()
            }
        };
        let now = now_ms();
        let db = shared.collector.db();
        let mut parts = shared.parts.lock();
        let mut status = shared.status.partitions.lock();
        let elements: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        for (topic, p) in elements {
            // A partition assigned but never read is stored with next = -1: no position.
            let stored = db
                .mark(&mark_key(&topic, p))
                .and_then(|b| Position::decode(&b))
                .filter(|s| s.next >= 0);
            let group = committed.find_partition(&topic, p).and_then(|e| match e.offset() {
                Offset::Offset(n) if n >= 0 => Some(n),
                _ => None,
            });
            let (start, max_t) = match (stored, group) {
                (Some(s), Some(g)) if g > s.next => (Some(g), None),
                (Some(s), _) => (Some(s.next), s.max_t),
                (None, g) => (g, None),
            };
            if let Some(n) = start {
                let _ = tpl.set_partition_offset(&topic, p, Offset::Offset(n));
            }
            tracing::info!(%topic, partition = p, stored = ?stored.map(|s| s.next), group = ?group, start = ?start, "partition assigned");
            parts.0.entry(topic.clone()).or_default().insert(
                p,
                Part {
                    next: start.unwrap_or(-1),
                    max_t,
                    last_msg: now,
                    lag: None,
                    held: false,
                    messages: 0,
                },
            );
            status.insert(
                (topic, p),
                PartitionStatus {
                    next_offset: start.unwrap_or(-1),
                    max_event_t: max_t,
                    ..PartitionStatus::default()
                },
            );
        }
        shared.status.joined.store(true, Ordering::Relaxed);
    }
}

impl ClientContext for Context {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => tracing::error!(target: "librdkafka", "{fac}: {message}"),
            L::Warning => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
            L::Notice | L::Info => tracing::info!(target: "librdkafka", "{fac}: {message}"),
            L::Debug => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        }
    }

    fn stats(&self, stats: Statistics) {
        let now = now_ms();
        let up = stats.brokers.values().filter(|b| b.state == "UP").count() as u64;
        self.shared.status.brokers_up.store(up, Ordering::Relaxed);
        if up > 0 {
            // Connected again: an earlier "all brokers down" is over.
            let mut last = self.shared.status.last_error.lock();
            if last.as_ref().is_some_and(|(t, _)| now - t > 2_000) {
                *last = None;
            }
        }
        let mut parts = self.shared.parts.lock();
        let mut status = self.shared.status.partitions.lock();
        for (topic, t) in &stats.topics {
            for (p, s) in &t.partitions {
                if s.consumer_lag < 0 {
                    continue;
                }
                if let Some(part) = parts.get_mut(topic, *p) {
                    part.lag = Some((s.consumer_lag, now));
                }
                if let Some(st) = status.get_mut(&(topic.clone(), *p)) {
                    st.lag = Some(s.consumer_lag);
                }
            }
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error");
        self.shared.status.error(now_ms(), format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Context {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        self.shared.status.rebalances.fetch_add(1, Ordering::Relaxed);
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assign(consumer, tpl);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(consumer, tpl);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "applying a rebalance failed");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            self.shared.status.commit_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "committing offsets to Kafka failed (the store has them; lag tools see older ones)");
        }
    }
}
