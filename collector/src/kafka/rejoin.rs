//! A group that leaves every partition unassigned is joined again.
//!
//! A member may rightly hold no partition: the group has more members than partitions. But a
//! coordinator can also settle a group on an assignment that gives nobody anything (tansu 0.6
//! does when the departed leader's session expires during a SyncGroup: the group is "stable"
//! and nothing is consumed, for ever). So a member that has held nothing for a while asks the
//! coordinator who holds what (DescribeGroups); if no member holds a partition, it leaves and
//! joins again, which starts a new rebalance.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;

use super::{KafkaConsumer, Shared};

/// How often the watchdog looks.
const EVERY: Duration = Duration::from_secs(5);

/// How long a DescribeGroups request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The watchdog's state, kept by the consumer thread.
#[derive(Debug, Default)]
pub(crate) struct Watchdog {
    looked: Option<Instant>,
    unassigned_since: Option<Instant>,
}

impl Watchdog {
    /// Looks (every [`EVERY`]) whether this member has held no partition for `patience`; if no
    /// member of the group holds one either, subscribes again.
    pub(crate) fn check(&mut self, consumer: &KafkaConsumer, shared: &Shared, patience: Duration) {
        if self.looked.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.looked = Some(Instant::now());
        let joined = shared.status.joined.load(std::sync::atomic::Ordering::Relaxed);
        let missing = !shared.status.missing_topics.lock().is_empty();
        if !joined || missing || !shared.parts.lock().is_empty() {
            self.unassigned_since = None;
            return;
        }
        let since = *self.unassigned_since.get_or_insert_with(Instant::now);
        if since.elapsed() < patience {
            return;
        }
        let Ok(groups) = consumer.fetch_group_list(Some(&shared.cfg.group), TIMEOUT) else {
            return;
        };
        // In the middle of a rebalance assignments are empty for a while: only a group that
        // has settled counts.
        let settled = !groups.groups().is_empty() && groups.groups().iter().all(|g| g.state() == "Stable");
        let held: usize = groups
            .groups()
            .iter()
            .flat_map(rdkafka::groups::GroupInfo::members)
            .map(|m| m.assignment().map_or(0, assigned_partitions))
            .sum();
        self.unassigned_since = None;
        if held > 0 || !settled {
            return;
        }
        tracing::warn!(
            group = %shared.cfg.group,
            seconds = since.elapsed().as_secs(),
            "the consumer group has assigned no partition to any member: joining it again"
        );
        let topics: Vec<&str> = shared.cfg.topics.iter().map(String::as_str).collect();
        consumer.unsubscribe();
        if let Err(e) = consumer.subscribe(&topics) {
            tracing::error!(error = %e, "subscribing again failed");
        }
    }
}

/// The number of partitions a consumer protocol assignment (`ConsumerProtocolAssignment`:
/// version, then per topic its name and partitions) gives; 0 for bytes it cannot read.
pub(crate) fn assigned_partitions(bytes: &[u8]) -> usize {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    fn i16_at(b: &mut &[u8]) -> Option<i16> {
        take(b, 2).map(|x| i16::from_be_bytes([x[0], x[1]]))
    }
    fn i32_at(b: &mut &[u8]) -> Option<i32> {
        take(b, 4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    }
    let mut b = bytes;
    let mut count = || -> Option<usize> {
        i16_at(&mut b)?;
        let topics = i32_at(&mut b)?;
        let mut partitions = 0usize;
        for _ in 0..topics.max(0) {
            let name_len = i16_at(&mut b)?;
            take(&mut b, usize::try_from(name_len).ok()?)?;
            let n = i32_at(&mut b)?;
            take(&mut b, 4 * usize::try_from(n).ok()?)?;
            partitions += usize::try_from(n).ok()?;
        }
        Some(partitions)
    };
    count().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_an_assignment_are_counted() {
        // Version 1; topic "kx" with partitions 0 and 3; empty user data.
        let mut b = vec![0, 1, 0, 0, 0, 1, 0, 2, b'k', b'x', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3];
        b.extend([0xff, 0xff, 0xff, 0xff]);
        assert_eq!(assigned_partitions(&b), 2);
        // No topics.
        assert_eq!(assigned_partitions(&[0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), 0);
        // Cut short, or nothing at all.
        assert_eq!(assigned_partitions(&b[..9]), 0);
        assert_eq!(assigned_partitions(&[]), 0);
    }
}
