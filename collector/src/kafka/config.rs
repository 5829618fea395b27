//! `sources.kafka` of `vigil.yaml`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Where and how to consume Kong's log events from Kafka.
///
/// ```yaml
/// sources:
///   kafka:
///     brokers: "127.0.0.1:9092"
///     group: vigil
///     topics: [kong-logs]
///     properties: {"security.protocol": "plaintext"}   # any librdkafka consumer property
///     dead_letter_topic: kong-logs-rejected             # optional
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The consumer group; vigil processes in one group share the partitions.
    pub group: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// librdkafka properties passed through as they are (`security.protocol`, `sasl.*`,
    /// `ssl.*`, fetch sizes, `partition.assignment.strategy`, ...). vigil sets
    /// `enable.auto.commit=false` and `enable.auto.offset.store=false` itself, and defaults
    /// `auto.offset.reset` to `earliest`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Messages with events that cannot be decoded are also produced, as they are, to this
    /// topic (with headers saying why and where from).
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// Most messages handed to the aggregator at once.
    #[serde(default = "default_batch")]
    pub max_batch: usize,
    /// Batches that may wait between the consumer and the aggregator before consumption
    /// pauses.
    #[serde(default = "default_queue")]
    pub queue_batches: usize,
    /// A partition without messages for this long (or with no lag left) stops holding back
    /// the watermark. Default `20s`.
    #[serde(default = "default_idle", deserialize_with = "crate::kafka::config::duration")]
    pub idle_partition: i64,
    /// A partition whose events run further ahead of the slowest one pauses until the others
    /// catch up (so a backlog on one partition cannot make the rest late). Default `2m`.
    #[serde(default = "default_skew", deserialize_with = "crate::kafka::config::duration")]
    pub max_partition_skew: i64,
    /// Static group membership (`group.instance.id`, Kafka's KIP-345): the store's own id,
    /// kept in the data directory, unless `properties` names one. A restarted vigil then takes
    /// its partitions back at once instead of after its old member's session times out; a
    /// stopped one keeps them until then. For brokers that implement it (Kafka 2.3 and later,
    /// Redpanda). Default off: tansu 0.6 livelocks the whole group once a static member's
    /// session has expired (its coordinator keeps the departed member as the group's
    /// leader), and librdkafka's mock cluster does not give a returning member its
    /// partitions. Without it a restarted vigil waits out the session timeout, which vigil
    /// sets to 12 s unless `properties` says otherwise (librdkafka's default is 45 s).
    #[serde(default)]
    pub static_membership: bool,
}

fn default_batch() -> usize {
    4096
}

fn default_queue() -> usize {
    4
}

fn default_idle() -> i64 {
    20_000
}

fn default_skew() -> i64 {
    120_000
}

pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let s = String::deserialize(d)?;
    vigil_tsdb::time::parse_duration_ms(&s).map_err(serde::de::Error::custom)
}

impl KafkaConfig {
    /// A configuration with the defaults for everything but the essentials.
    pub fn new(brokers: &str, group: &str, topics: &[&str]) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.to_owned(),
            group: group.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            properties: BTreeMap::new(),
            dead_letter_topic: None,
            max_batch: default_batch(),
            queue_batches: default_queue(),
            idle_partition: default_idle(),
            max_partition_skew: default_skew(),
            static_membership: false,
        }
    }

    /// Checks what librdkafka would only complain about later.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("sources.kafka.brokers is empty".into());
        }
        if self.group.trim().is_empty() {
            return Err("sources.kafka.group is empty".into());
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            return Err("sources.kafka.topics needs at least one topic name".into());
        }
        for key in [
            "enable.auto.commit",
            "enable.auto.offset.store",
            "group.id",
            "bootstrap.servers",
        ] {
            if self.properties.contains_key(key) {
                return Err(format!(
                    "sources.kafka.properties: {key:?} is set by vigil (use brokers and group for the others)"
                ));
            }
        }
        if self.max_batch == 0 || self.queue_batches == 0 {
            return Err("sources.kafka.max_batch and queue_batches must be at least 1".into());
        }
        Ok(())
    }
}
