//! What the Kafka source is doing, for `/metrics`, `/-/ready` and `vigil status`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use vigil_tsdb::{Labels, Timestamp};

/// One partition as last seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionStatus {
    /// Next offset to read.
    pub next_offset: i64,
    /// Messages behind the partition's end, from librdkafka's statistics (`None` until known).
    pub lag: Option<i64>,
    /// Messages read since start.
    pub messages: u64,
    /// Newest event time read.
    pub max_event_t: Option<Timestamp>,
    /// Paused because it ran ahead of the slowest partition.
    pub held_back: bool,
    /// Where its fetch was sent back to (the broker skipped records, or delivered none while
    /// records were left), while that lasts: (offset, whether the seek is made).
    pub fetching_from: Option<(i64, bool)>,
}

/// Shared between the consumer, the aggregator thread and whoever reports.
#[derive(Debug, Default)]
pub struct KafkaStatus {
    /// Assigned partitions by (topic, partition).
    pub partitions: Mutex<BTreeMap<(String, i32), PartitionStatus>>,
    /// Messages consumed (all partitions).
    pub messages: AtomicU64,
    /// Payload bytes consumed.
    pub bytes: AtomicU64,
    /// Messages skipped as already read (delivered again after a rebalance or a seek).
    pub duplicates_skipped: AtomicU64,
    /// Messages produced to the dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Messages the dead-letter producer could not take.
    pub dead_letter_errors: AtomicU64,
    /// Rebalances (assignments and revocations).
    pub rebalances: AtomicU64,
    /// Offset commits to Kafka that failed.
    pub commit_errors: AtomicU64,
    /// Gaps in a partition's offsets stepped over (compaction, transaction markers, records
    /// gone before the log's start).
    pub offset_gaps: AtomicU64,
    /// Fetches sent back because the broker skipped records (delivered an offset past the next
    /// one without the one before it).
    pub gap_searches: AtomicU64,
    /// Times what was read since the last commit was given back (a commit Kafka refused before
    /// partitions went, or at a stop): it is read again.
    pub rollbacks: AtomicU64,
    /// Whether consumption is paused because the aggregator is behind.
    pub paused: AtomicBool,
    /// Times consumption paused for that reason.
    pub pauses: AtomicU64,
    /// Brokers librdkafka reports up (from its statistics).
    pub brokers_up: AtomicU64,
    /// The latest client error and when (ms), cleared once messages flow again.
    pub last_error: Mutex<Option<(Timestamp, String)>>,
    /// Whether the consumer has ever had an assignment.
    pub joined: AtomicBool,
    /// Subscribed topics the brokers say do not exist.
    pub missing_topics: Mutex<Vec<String>>,
}

impl KafkaStatus {
    /// Records a client error.
    pub fn error(&self, now: Timestamp, e: String) {
        *self.last_error.lock() = Some((now, e));
    }

    /// Whether the source is healthy enough to call vigil ready, and if not, why.
    pub fn readiness(&self) -> Result<(), String> {
        if let Some((_, e)) = self.last_error.lock().as_ref() {
            return Err(format!("kafka: {e}"));
        }
        let missing = self.missing_topics.lock();
        if !missing.is_empty() {
            return Err(format!("kafka: subscribed topics do not exist: {}", missing.join(", ")));
        }
        if !self.joined.load(Ordering::Relaxed) {
            return Err("kafka: not yet part of the consumer group".into());
        }
        Ok(())
    }

    /// `vigil_collector_kafka_*` self-metrics.
    pub fn telemetry(&self) -> Vec<(Labels, f64)> {
        let metric = |name: &str, v: f64| (Labels::from_pairs([("__name__", name)]), v);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let mut out = vec![
            metric("vigil_collector_kafka_messages_total", load(&self.messages)),
            metric("vigil_collector_kafka_bytes_total", load(&self.bytes)),
            metric(
                "vigil_collector_kafka_duplicates_skipped_total",
                load(&self.duplicates_skipped),
            ),
            metric("vigil_collector_kafka_dead_letters_total", load(&self.dead_letters)),
            metric(
                "vigil_collector_kafka_dead_letter_errors_total",
                load(&self.dead_letter_errors),
            ),
            metric("vigil_collector_kafka_rebalances_total", load(&self.rebalances)),
            metric("vigil_collector_kafka_commit_errors_total", load(&self.commit_errors)),
            metric("vigil_collector_kafka_offset_gaps_total", load(&self.offset_gaps)),
            metric("vigil_collector_kafka_gap_searches_total", load(&self.gap_searches)),
            metric("vigil_collector_kafka_rollbacks_total", load(&self.rollbacks)),
            metric("vigil_collector_kafka_pauses_total", load(&self.pauses)),
            metric(
                "vigil_collector_kafka_paused",
                f64::from(u8::from(self.paused.load(Ordering::Relaxed))),
            ),
            metric("vigil_collector_kafka_brokers_up", load(&self.brokers_up)),
        ];
        for ((topic, p), s) in self.partitions.lock().iter() {
            let part = p.to_string();
            let m = |name: &str, v: f64| {
                (
                    Labels::from_pairs([
                        ("__name__", name),
                        ("topic", topic.as_str()),
                        ("partition", part.as_str()),
                    ]),
                    v,
                )
            };
            out.push(m("vigil_collector_kafka_partition_messages_total", s.messages as f64));
            out.push(m("vigil_collector_kafka_partition_offset", s.next_offset as f64));
            if let Some(lag) = s.lag {
                out.push(m("vigil_collector_kafka_partition_lag", lag as f64));
            }
            if let Some(t) = s.max_event_t {
                out.push(m(
                    "vigil_collector_kafka_partition_event_time_seconds",
                    t as f64 / 1000.0,
                ));
            }
        }
        out
    }
}
