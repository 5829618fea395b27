//! Commits: where what was read becomes durable, in Kafka first and then in the store.
//!
//! ```text
//!  events read since the last commit: tentative (Aggregator::add_tentative)
//!  commit: 1. the offsets about to be committed go to the store's marks (ours, after a crash)
//!          2. Kafka: every partition's next offset, tagged with this store's id (sync)
//!          3. the store: tentative events made final, windows closed up to the watermark,
//!             samples + positions + open windows in one WAL record
//! ```
//!
//! Kafka never learns an offset this store has not counted up to, except between steps 2 and
//! 3: so a partition's next owner starts where this process's store stopped, whether it
//! stopped gracefully or was killed. When Kafka refuses a commit (a rebalance under way) the
//! store is left as it was; if the partitions then go, what was read since the last commit is
//! given back ([`roll_back`]) and read again by whoever owns them next.

use std::sync::atomic::Ordering;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use vigil_tsdb::Timestamp;

use super::partitions::{Partitions, Search};
use super::position::{Committed, Position, committed_key, mark_key};
use super::{KafkaConsumer, Refetch, Shared};

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommitError {
    /// The store could not take the marks (where partitions start, the offsets to commit):
    /// nothing reached Kafka.
    #[error("storing marks before a commit: {0}")]
    Marks(crate::error::Error),
    /// Kafka refused the offsets (a rebalance under way, say): nothing changed.
    #[error("committing offsets to Kafka: {0}")]
    Kafka(rdkafka::error::KafkaError),
    /// Kafka took the offsets but the store did not take the samples: they wait in the
    /// collector (counted, with the positions) for its next commit, which retries them.
    #[error("storing what was read: {0}")]
    Store(crate::error::Error),
}

impl CommitError {
    /// Whether nothing of the commit took effect: what was read since the last commit is
    /// still tentative and may be given back. After a store error it is counted already.
    pub(crate) fn nothing_committed(&self) -> bool {
        !matches!(self, CommitError::Store(_))
    }
}

/// How long reading the group's offsets back after a failed commit may take.
const READ_BACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Commits every assigned partition's position: Kafka, then the store (closing the windows up
/// to `watermark`). Once Kafka has the offsets every partition's `stored` position is its
/// `next`: the collector has the events and their positions, and stores them (now, or at its
/// next commit if the store fails now).
pub(crate) fn commit(
    shared: &Shared,
    consumer: &KafkaConsumer,
    parts: &mut Partitions,
    watermark: Option<Timestamp>,
) -> Result<(), CommitError> {
    store_starts(shared, parts)?;
    let offsets = offsets(parts, &shared.instance);
    if offsets.count() > 0 {
        // A broker that drops commit metadata still lets this store recognise its own offsets
        // after a crash.
        shared
            .collector
            .store_marks(committed_marks(parts, &offsets))
            .map_err(CommitError::Marks)?;
        if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
            shared.status.commit_errors.fetch_add(1, Ordering::Relaxed);
            // A commit that timed out may have reached the group all the same.
            if !landed(consumer, &offsets) {
                return Err(CommitError::Kafka(e));
            }
        }
    }
    let stored = shared.collector.commit_from_source(parts.positions(), watermark);
    for (_, _, part) in parts.iter_mut() {
        part.stored = Position {
            next: part.next,
            max_t: part.max_t,
        };
    }
    stored.map_err(CommitError::Store)
}

/// Whether the group's committed offsets are `offsets` (read back from the broker).
fn landed(consumer: &KafkaConsumer, offsets: &TopicPartitionList) -> bool {
    let Ok(group) = consumer.committed_offsets(offsets.clone(), READ_BACK_TIMEOUT) else {
        return false;
    };
    offsets.elements().iter().all(|e| {
        group
            .find_partition(e.topic(), e.partition())
            .is_some_and(|g| g.offset() == e.offset())
    })
}

/// Stores where partitions new to this process start (their stored position), before any
/// offset of this instance on them reaches Kafka: after a crash, an offset committed by this
/// instance sends the partition back to its stored position. Returns whether they are stored.
pub(crate) fn store_starts(shared: &Shared, parts: &mut Partitions) -> Result<(), CommitError> {
    let starts: Vec<(String, Vec<u8>)> = parts
        .iter()
        .filter(|(_, _, p)| p.start_unstored)
        .map(|(t, p, part)| (mark_key(t, p), part.stored.encode()))
        .collect();
    if starts.is_empty() {
        return Ok(());
    }
    shared.collector.checkpoint(starts).map_err(CommitError::Marks)?;
    for (_, _, part) in parts.iter_mut() {
        part.start_unstored = false;
    }
    Ok(())
}

/// Every partition's next offset, tagged with this store's id.
fn offsets(parts: &Partitions, instance: &str) -> TopicPartitionList {
    let mut offsets = TopicPartitionList::new();
    for (t, p, part) in parts.iter().filter(|(_, _, part)| part.next >= 0) {
        let mut e = offsets.add_partition(t, p);
        let _ = e.set_offset(Offset::Offset(part.next));
        e.set_metadata(instance);
    }
    offsets
}

/// The marks of the offsets about to be committed (each partition's latest two).
fn committed_marks(parts: &mut Partitions, offsets: &TopicPartitionList) -> Vec<(String, Vec<u8>)> {
    offsets
        .elements()
        .iter()
        .filter_map(|e| {
            let Offset::Offset(n) = e.offset() else { return None };
            let part = parts.get_mut(e.topic(), e.partition())?;
            if part.committed.last != n {
                part.committed = Committed {
                    last: n,
                    previous: part.committed.last,
                };
            }
            Some((committed_key(e.topic(), e.partition()), part.committed.encode()))
        })
        .collect()
}

/// Gives back what was read since the last commit: the collector forgets the tentative events
/// and every partition goes back to its stored position, its fetch sent there (the consumer
/// thread seeks; what was polled before is stale).
pub(crate) fn roll_back(shared: &Shared, parts: &mut Partitions) {
    let now = vigil_tsdb::time::now_ms();
    shared.collector.discard_tentative();
    shared.status.rollbacks.fetch_add(1, Ordering::Relaxed);
    let mut refetch = Vec::new();
    for (t, p, part) in parts.iter_mut() {
        let read_past = part.next != part.stored.next;
        part.roll_back();
        if read_past && part.next >= 0 {
            part.search = Some(Search {
                target: part.next,
                epoch: None,
                since: now,
            });
            refetch.push(Refetch::Seek {
                topic: t.to_owned(),
                partition: p,
                offset: part.next,
            });
        }
    }
    shared.request(refetch);
}
