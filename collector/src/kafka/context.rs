//! The consumer's callbacks: rebalances (where an assigned partition starts, what is stored
//! before one goes), statistics, errors and librdkafka's log.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use vigil_tsdb::time::now_ms;

use super::partitions::Part;
use super::position::{Committed, Position, committed_key, mark_key};
use super::status::PartitionStatus;
use super::{KafkaConsumer, Shared};

/// How long a commit or an offset lookup inside a rebalance may take.
const REBALANCE_TIMEOUT: Duration = Duration::from_secs(10);

/// The consumer's callbacks.
#[derive(Debug)]
pub(crate) struct Context {
    shared: Arc<Shared>,
}

impl Context {
    pub(crate) fn new(shared: Arc<Shared>) -> Context {
        Context { shared }
    }

    /// Before partitions go: store the open windows and every position, so that what was read
    /// from them is durable. Their offsets are in Kafka already (each batch is committed there
    /// before it is aggregated), so the next owner starts where this process stopped.
    fn revoke(&self, tpl: &TopicPartitionList) {
        let shared = &self.shared;
        shared.epoch.fetch_add(1, Ordering::Relaxed);
        let mut parts = shared.parts.lock();
        if let Err(e) = shared.collector.checkpoint(parts.positions()) {
            tracing::error!(error = %e, "storing the positions before a rebalance failed: what was read from the revoked partitions since the last store commit is lost with this process");
        }
        let mut status = shared.status.partitions.lock();
        let mut revoked = shared.revoked.lock();
        for e in tpl.elements() {
            if let Some(part) = parts.get(e.topic(), e.partition()) {
                revoked.insert(e.topic(), e.partition(), part.clone());
            }
            parts.remove(e.topic(), e.partition());
            shared.collector.forget_position(&mark_key(e.topic(), e.partition()));
            status.remove(&(e.topic().to_owned(), e.partition()));
        }
        tracing::info!(partitions = tpl.count(), "partitions revoked");
    }

    /// New partitions: each starts where this store says it stopped when the group's committed
    /// offset is this instance's own (after a crash the store may be behind it: the messages in
    /// between were read but lost with the process), else at the committed offset (another
    /// member read on meanwhile), else where `auto.offset.reset` says.
    fn assign(&self, consumer: &KafkaConsumer, tpl: &mut TopicPartitionList) {
        let shared = &self.shared;
        let epoch = shared.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        // Without the group's offsets this process cannot tell whether another member read on
        // from where its store stopped: librdkafka then starts at the group's offsets itself.
        let committed = (0..3).find_map(
            |attempt| match consumer.committed_offsets(tpl.clone(), REBALANCE_TIMEOUT) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "reading the group's committed offsets failed");
                    None
                }
            },
        );
        let now = now_ms();
        let db = shared.collector.db();
        let mut parts = shared.parts.lock();
        let mut revoked = shared.revoked.lock();
        let Some(committed) = committed else {
            tracing::error!("starting the assigned partitions at the group's committed offsets");
            let mut status = shared.status.partitions.lock();
            for e in tpl.elements() {
                revoked.remove(e.topic(), e.partition());
                parts.insert(e.topic(), e.partition(), Part::new(-1, None, now, epoch));
                status.insert((e.topic().to_owned(), e.partition()), PartitionStatus::default());
            }
            shared.status.joined.store(true, Ordering::Relaxed);
            return;
        };
        let mut status = shared.status.partitions.lock();
        let elements: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        for (topic, p) in elements {
            let stored = db
                .mark(&mark_key(&topic, p))
                .and_then(|b| Position::decode(&b))
                .filter(|s| s.next >= 0);
            let ours = db
                .mark(&committed_key(&topic, p))
                .and_then(|b| Committed::decode(&b))
                .unwrap_or(Committed { last: -1, previous: -1 });
            // The group's offset is this store's own if it carries this store's id, or (for
            // brokers that drop commit metadata) if it is one this store committed.
            let group = committed.find_partition(&topic, p).and_then(|e| match e.offset() {
                Offset::Offset(n) if n >= 0 => Some((n, e.metadata() == shared.instance || ours.contains(n))),
                _ => None,
            });
            // Given back before anyone read on: continue from this process's own position.
            let mine = revoked
                .get(&topic, p)
                .filter(|r| r.next >= 0 && group.is_some_and(|(g, _)| g == r.committed.last || g == r.next))
                .map(|r| Position {
                    next: r.next,
                    max_t: r.max_t,
                });
            revoked.remove(&topic, p);
            let (start, max_t) = match (mine.or(stored), group) {
                (Some(s), Some((_, true)) | None) => (Some(s.next), s.max_t),
                (_, Some((g, _))) => (Some(g), None),
                (None, None) => (self.reset_offset(consumer, &topic, p), None),
            };
            if let Some(n) = start {
                let _ = tpl.set_partition_offset(&topic, p, Offset::Offset(n));
            }
            tracing::info!(%topic, partition = p, stored = ?stored.map(|s| s.next), group = ?group.map(|g| g.0),
                committed_by_us = ?group.map(|g| g.1), start = ?start, "partition assigned");
            let mut part = Part::new(start.unwrap_or(-1), max_t, now, epoch);
            part.committed = ours;
            parts.insert(&topic, p, part);
            status.insert(
                (topic, p),
                PartitionStatus {
                    next_offset: start.unwrap_or(-1),
                    max_event_t: max_t,
                    ..PartitionStatus::default()
                },
            );
        }
        // Where each partition starts is stored before any offset of this instance reaches
        // Kafka (see `process::apply`).
        if let Err(e) = shared.collector.checkpoint(parts.positions()) {
            tracing::error!(error = %e, "storing where the assigned partitions start failed (retried before the first commit)");
            for (_, _, part) in parts.iter_mut() {
                part.start_unstored = true;
            }
        }
        shared.status.joined.store(true, Ordering::Relaxed);
    }
}

impl Context {
    /// The offset a partition without any committed or stored one starts at: its first (or,
    /// with `auto.offset.reset` set to the end, its next) offset. `None` if the broker cannot
    /// tell now (librdkafka then applies the reset itself).
    fn reset_offset(&self, consumer: &KafkaConsumer, topic: &str, partition: i32) -> Option<i64> {
        let from_end = self
            .shared
            .cfg
            .properties
            .get("auto.offset.reset")
            .is_some_and(|r| matches!(r.as_str(), "latest" | "largest" | "end"));
        match consumer.fetch_watermarks(topic, partition, REBALANCE_TIMEOUT) {
            Ok((low, high)) => Some(if from_end { high } else { low }),
            Err(e) => {
                tracing::warn!(%topic, partition, error = %e, "asking where a new partition starts failed");
                None
            }
        }
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
        let up = stats.brokers.values().filter(|b| b.state == "UP").count() as u64;
        self.shared.status.brokers_up.store(up, Ordering::Relaxed);
        if up > 0 {
            // Connected again: an earlier "all brokers down" is over.
            let mut last = self.shared.status.last_error.lock();
            if last.as_ref().is_some_and(|(t, _)| now_ms() - t > 2_000) {
                *last = None;
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
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                // librdkafka keeps a partition's pause across an assignment: a partition held
                // back before is read again, unless the whole source is paused right now.
                assigned.and_then(|()| {
                    if self.shared.status.paused.load(Ordering::Relaxed) {
                        consumer.pause(tpl)
                    } else {
                        consumer.resume(tpl)
                    }
                })
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(tpl);
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
