//! The assigned partitions as the source sees them: how far each has been read and how far
//! that is stored, how far the broker's log goes, the newest event time read from it, and
//! where its fetch is being sent back to when the broker skipped records.

use std::collections::BTreeMap;

use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use vigil_tsdb::Timestamp;

use super::position::{Committed, Position, mark_key};

/// One assigned partition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Part {
    /// The first offset not yet aggregated; -1 while unknown (the broker could not say where a
    /// partition new to the group starts), until its first message.
    pub(crate) next: i64,
    /// Where the store (and Kafka's committed offset) says this process has read to: `next`
    /// and `max_t` as of the latest commit. What was read past it is tentative.
    pub(crate) stored: Position,
    /// The offset and rebalance epoch of the latest message the broker delivered (fresh or
    /// not): an offset past `next` straight after `next - 1` in the same epoch is a gap in the
    /// log (compaction, transaction markers), not records the broker skipped.
    pub(crate) prev: Option<(i64, u64)>,
    /// The broker skipped records (delivered an offset past `next` without one below it
    /// before it): the fetch is being sent back to find them ([`super::gaps`]).
    pub(crate) search: Option<Search>,
    /// The `next` at which the broker last delivered a record below it after a seek: it serves
    /// that position, and has nothing past it to give yet.
    pub(crate) served: Option<i64>,
    /// The end of the partition's log (its high watermark) as of the latest fetch, if known.
    pub(crate) high: Option<i64>,
    /// Newest event time aggregated.
    pub(crate) max_t: Option<Timestamp>,
    /// Wall-clock time of the latest message, or of the assignment or resume, whichever is
    /// later: a partition with data that makes no progress for long is stalled.
    pub(crate) last_progress: Timestamp,
    /// Wall-clock time of the latest message.
    pub(crate) last_msg: Option<Timestamp>,
    /// Paused for running ahead of the slowest partition.
    pub(crate) held: bool,
    /// Messages aggregated since assignment.
    pub(crate) messages: u64,
    /// The rebalance that assigned it: messages polled before it are stale.
    pub(crate) epoch: u64,
    /// The offsets this store last committed to Kafka for it.
    pub(crate) committed: Committed,
    /// Where it starts is not in the store yet (storing it at assignment failed): no offset of
    /// this instance may reach Kafka before it is.
    pub(crate) start_unstored: bool,
}

/// A fetch sent back before `next` to find records the broker skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Search {
    /// The offset the fetch is sent back to.
    pub(crate) target: i64,
    /// The epoch of the seek, once the consumer thread made it: messages polled before are
    /// stale.
    pub(crate) epoch: Option<u64>,
    /// When the search was sent there.
    pub(crate) since: Timestamp,
}

impl Part {
    /// A partition just assigned, to be read from `next` (-1: unknown).
    pub(crate) fn new(next: i64, max_t: Option<Timestamp>, now: Timestamp, epoch: u64) -> Part {
        Part {
            next,
            stored: Position { next, max_t },
            prev: None,
            search: None,
            served: None,
            high: None,
            max_t,
            last_progress: now,
            last_msg: None,
            held: false,
            messages: 0,
            epoch,
            committed: Committed { last: -1, previous: -1 },
            start_unstored: false,
        }
    }

    /// Everything the broker had at the latest fetch has been aggregated.
    pub(crate) fn caught_up(&self) -> bool {
        self.high.is_some_and(|h| self.next >= 0 && self.next >= h)
    }

    /// Where fetching should go on from after a seek or resume: the search's target while one
    /// is under way, else `next`.
    pub(crate) fn fetch_from(&self) -> i64 {
        self.search.map_or(self.next, |s| s.target)
    }

    /// Forgets what was read past the stored position: it is read again from there.
    pub(crate) fn roll_back(&mut self) {
        self.next = self.stored.next;
        self.max_t = self.stored.max_t;
        self.prev = None;
        self.search = None;
        self.served = None;
    }

    /// Messages between what was aggregated and the end of the log, if known.
    pub(crate) fn lag(&self) -> Option<i64> {
        match self.high {
            Some(h) if self.next >= 0 => Some((h - self.next).max(0)),
            _ => None,
        }
    }
}

/// The assigned partitions by topic and partition.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Partitions(pub(crate) BTreeMap<String, BTreeMap<i32, Part>>);

impl Partitions {
    pub(crate) fn get(&self, topic: &str, partition: i32) -> Option<&Part> {
        self.0.get(topic)?.get(&partition)
    }

    pub(crate) fn get_mut(&mut self, topic: &str, partition: i32) -> Option<&mut Part> {
        self.0.get_mut(topic)?.get_mut(&partition)
    }

    pub(crate) fn insert(&mut self, topic: &str, partition: i32, part: Part) {
        self.0.entry(topic.to_owned()).or_default().insert(partition, part);
    }

    pub(crate) fn remove(&mut self, topic: &str, partition: i32) {
        if let Some(ps) = self.0.get_mut(topic) {
            ps.remove(&partition);
            if ps.is_empty() {
                self.0.remove(topic);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
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

    /// Every partition's position as read so far, in its stored form: (mark key, position).
    pub(crate) fn positions(&self) -> Vec<(String, Vec<u8>)> {
        self.iter()
            .map(|(t, p, part)| {
                let pos = Position {
                    next: part.next,
                    max_t: part.max_t,
                };
                (mark_key(t, p), pos.encode())
            })
            .collect()
    }

    /// The partitions of `of` whose next offset is known, at the offset to fetch from: where
    /// to seek after a resume, since librdkafka resumes a partition paused before its first
    /// message at the group's committed offset rather than at the one it was assigned.
    pub(crate) fn resume_points(&self, of: &TopicPartitionList) -> TopicPartitionList {
        let mut out = TopicPartitionList::new();
        for e in of.elements() {
            if let Some(part) = self.get(e.topic(), e.partition())
                && part.next >= 0
            {
                let _ = out.add_partition_offset(e.topic(), e.partition(), Offset::Offset(part.fetch_from()));
            }
        }
        out
    }

    /// `assignment` without the partitions held back.
    pub(crate) fn without_held(&self, assignment: &TopicPartitionList) -> TopicPartitionList {
        let mut out = TopicPartitionList::new();
        for e in assignment.elements() {
            if !self.get(e.topic(), e.partition()).is_some_and(|p| p.held) {
                out.add_partition(e.topic(), e.partition());
            }
        }
        out
    }
}
