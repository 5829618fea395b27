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

use super::commit;
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

    /// Before partitions go: commit what was read (Kafka, then the store), so that their next
    /// owner starts exactly after it. If Kafka refuses (some brokers do while a rebalance is
    /// under way), what was read since the last commit is given back instead: the next owner
    /// starts where this store stopped, and reads it.
    fn revoke(&self, consumer: &KafkaConsumer, tpl: &TopicPartitionList) {
        let shared = &self.shared;
        shared.epoch.fetch_add(1, Ordering::Relaxed);
        let mut parts = shared.parts.lock();
        match commit::commit(shared, consumer, &mut parts, None) {
            Ok(()) => {}
            Err(e) if e.nothing_committed() => {
                tracing::warn!(error = %e, "committing before a rebalance failed: what was read since the last commit is read again by the partitions' next owners");
                commit::roll_back(shared, &mut parts);
            }
            Err(e) => tracing::error!(error = %e, "Kafka has the offsets; the store is retried with the next commit"),
        }
        // Their positions stay with the collector: stored already, or to be stored with its
        // next commit (after a store error), they are only read back if the group's offset is
        // this store's own.
        let mut status = shared.status.partitions.lock();
        for e in tpl.elements() {
            parts.remove(e.topic(), e.partition());
            status.remove(&(e.topic().to_owned(), e.partition()));
        }
        tracing::info!(partitions = tpl.count(), "partitions revoked");
    }

    /// New partitions: each starts where this store says it stopped when the group's committed
    /// offset is this instance's own (after a crash Kafka may be ahead of the store: the
    /// messages in between were read but lost with the process), else at the committed offset
    /// (another member read on), else where `auto.offset.reset` says. Where each starts is
    /// stored before any offset of this instance on it reaches Kafka.
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
        let mut parts = shared.parts.lock();
        let mut status = shared.status.partitions.lock();
        let elements: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let mut starts = Vec::with_capacity(elements.len());
        let mut new = Vec::with_capacity(elements.len());
        for (topic, p) in elements {
            let (start, max_t, ours) = match &committed {
                Some(c) => self.start_of(consumer, c, &topic, p),
                None => (None, None, Committed { last: -1, previous: -1 }),
            };
            if let Some(n) = start {
                let _ = tpl.set_partition_offset(&topic, p, Offset::Offset(n));
            }
            let mut part = Part::new(start.unwrap_or(-1), max_t, now, epoch);
            part.committed = ours;
            starts.push((mark_key(&topic, p), part.stored.encode()));
            new.push((topic.clone(), p));
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
        if committed.is_none() {
            tracing::error!("starting the assigned partitions at the group's committed offsets");
        }
        if let Err(e) = shared.collector.checkpoint(starts) {
            tracing::error!(error = %e, "storing where the assigned partitions start failed (retried before the first commit)");
            for (topic, p) in new {
                if let Some(part) = parts.get_mut(&topic, p) {
                    part.start_unstored = part.next >= 0;
                }
            }
        }
        shared.status.joined.store(true, Ordering::Relaxed);
    }

    /// Where an assigned partition starts (and its newest event time then), given the group's
    /// committed offsets, and the offsets this store last committed for it.
    fn start_of(
        &self,
        consumer: &KafkaConsumer,
        committed: &TopicPartitionList,
        topic: &str,
        p: i32,
    ) -> (Option<i64>, Option<vigil_tsdb::Timestamp>, Committed) {
        let shared = &self.shared;
        let db = shared.collector.db();
        let stored = db
            .mark(&mark_key(topic, p))
            .and_then(|b| Position::decode(&b))
            .filter(|s| s.next >= 0);
        let ours = db
            .mark(&committed_key(topic, p))
            .and_then(|b| Committed::decode(&b))
            .unwrap_or(Committed { last: -1, previous: -1 });
        // The group's offset is this store's own if it carries this store's id, or (for
        // brokers that drop commit metadata) if it is one this store committed.
        let group = committed.find_partition(topic, p).and_then(|e| match e.offset() {
            Offset::Offset(n) if n >= 0 => Some((n, e.metadata() == shared.instance || ours.contains(n))),
            _ => None,
        });
        let (start, max_t) = match (stored, group) {
            (Some(s), Some((_, true)) | None) => (Some(s.next), s.max_t),
            (_, Some((g, _))) => (Some(g), None),
            (None, None) => (self.reset_offset(consumer, topic, p), None),
        };
        if group.is_some_and(|(g, mine)| mine && Some(g) != start) {
            // Kafka is ahead of this store (a crash came between the two): it learns the
            // store's position with the next batch, before anyone else could start there.
            shared.commit_due.store(true, Ordering::Relaxed);
        }
        tracing::info!(%topic, partition = p, stored = ?stored.map(|s| s.next), group = ?group.map(|g| g.0),
            committed_by_us = ?group.map(|g| g.1), start = ?start, "partition assigned");
        (start, max_t, ours)
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
