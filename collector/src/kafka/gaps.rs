//! What becomes of each message, and what to do when a broker skips records.
//!
//! A partition is read in offset order from `next`. A message below it was read already (it
//! comes again after a seek); one at it is new. One past it is a gap, and gaps are of two
//! kinds. Some are in the log: compaction removed records, or a transaction marker took an
//! offset. Others are the broker's: a fetch from an offset inside a batch of records that
//! returns the batch after it instead of the one holding the offset (tansu 0.6 does, on every
//! resume from a position inside a producer's batch), or a batch listed before the one ahead of
//! it is written. The first kind must be stepped over, the second must not: the skipped
//! records are counted nowhere else.
//!
//! The two are told apart by what the broker delivered just before: if, in the same fetch (the
//! same epoch), it delivered an offset below `next` and then one past it, the records between
//! are not in its log (a broker skips only where a fetch starts). Otherwise the fetch is sent back (a seek, made by the consumer thread,
//! which bumps the epoch so that messages polled before it are stale) to `next - 1`, then
//! [`BACK_FACTOR`] times as far back each time the broker still answers past `next`, until it
//! delivers an offset at or below `next`: the batch holding `next` then comes whole, and what
//! follows is the broker's log as it is. A search stops (and steps over the gap) at the start
//! of the log, or once it has gone back [`MAX_SEARCH`] offsets.
//!
//! The same broker answers a fetch from inside the *last* batch of a log with nothing at all:
//! a partition with records left to read that delivers nothing for [`STUCK_MS`] is sent back
//! the same way ([`unstick`]), unless the broker has shown it serves that position (it
//! delivered the record before it in the latest fetch): offsets it never delivers, a
//! transaction's marker say, leave the log's end past the last record.

use vigil_tsdb::Timestamp;

use super::partitions::{Part, Search};

/// How far back a search may send the fetch before it takes a gap as it comes: past any
/// producer's batch.
pub(crate) const MAX_SEARCH: i64 = 1 << 20;

/// How much further back each step of a search goes: few round trips to get past a batch of
/// thousands of records, at the cost of reading some again.
pub(crate) const BACK_FACTOR: i64 = 8;

/// How long a partition with records left to read may deliver nothing (its fetch not held
/// back) before its fetch is sent back.
pub(crate) const STUCK_MS: i64 = 1_000;

/// What becomes of one message of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// New: aggregate it.
    Fresh,
    /// New, after a gap in the log that was stepped over.
    FreshAfterGap,
    /// Polled before its partition was assigned again or its fetch sent elsewhere: it is read
    /// again from there (or by the partition's new owner).
    Stale,
    /// At an offset already read (delivered again after a seek).
    Duplicate,
    /// Past a gap the broker may have made: dropped, and the fetch is to be sent back to this
    /// offset (the partition's search records it).
    SeekBack(i64),
}

/// Judges the message at `offset`, polled in `epoch` and handled at `now`, for `part`, and
/// moves the partition's state on (`next`, the search, the latest delivery). `log_start` says
/// where the partition's log starts now, if the broker can tell (asked only when a search
/// would begin).
pub(crate) fn judge(
    part: &mut Part,
    offset: i64,
    epoch: u64,
    now: Timestamp,
    log_start: &mut dyn FnMut() -> Option<i64>,
) -> Verdict {
    if epoch < part.epoch {
        return Verdict::Stale;
    }
    if let Some(s) = part.search
        && s.epoch.is_none_or(|e| epoch < e)
    {
        return Verdict::Stale;
    }
    if part.next < 0 {
        // Where a partition new to the group starts was unknown: its first message says.
        part.next = offset;
    }
    let straight_after = part.prev.is_some_and(|(o, e)| e == epoch && o < part.next);
    part.prev = Some((offset, epoch));
    part.last_progress = now;
    if offset < part.next {
        part.search = None;
        part.served = Some(part.next);
        return Verdict::Duplicate;
    }
    if offset == part.next || straight_after {
        let gap = offset > part.next;
        part.search = None;
        part.next = offset + 1;
        return if gap { Verdict::FreshAfterGap } else { Verdict::Fresh };
    }
    // The log starts past `next`: the records before it are gone (retention).
    let gone = part.search.is_none() && log_start().is_some_and(|start| start >= part.next);
    match send_back(part, now).filter(|_| !gone) {
        Some(target) => Verdict::SeekBack(target),
        None => {
            part.search = None;
            part.next = offset + 1;
            Verdict::FreshAfterGap
        }
    }
}

/// A partition with records left to read (as of the latest fetch) that has delivered nothing
/// for [`STUCK_MS`] since its fetch was last set (not held back; `paused`: all consumption is)
/// has its fetch sent back: returns where to.
pub(crate) fn unstick(part: &mut Part, now: Timestamp, paused: bool) -> Option<i64> {
    let behind = part.next >= 0 && part.lag().is_some_and(|l| l > 0);
    let waiting = part.search.is_some_and(|s| s.epoch.is_none());
    if !behind || part.held || paused || waiting || part.served == Some(part.next) {
        return None;
    }
    let since = part
        .search
        .map_or(part.last_progress, |s| s.since.max(part.last_progress));
    if now - since < STUCK_MS {
        return None;
    }
    let target = send_back(part, now);
    if target.is_none() {
        // Searched back as far as it goes: wait for the broker, from `next`.
        part.last_progress = now;
    }
    target
}

/// Sends the fetch back before `next`: one offset the first time, [`BACK_FACTOR`] times
/// further each time after. Returns the offset, or `None` once the search has reached the
/// start of the log or [`MAX_SEARCH`] (the search is then over).
fn send_back(part: &mut Part, now: Timestamp) -> Option<i64> {
    let back = match part.search {
        None => 1,
        Some(s) if s.target <= 0 => {
            part.search = None;
            return None;
        }
        Some(s) => BACK_FACTOR * (part.next - s.target).max(1),
    };
    if back > MAX_SEARCH {
        part.search = None;
        return None;
    }
    let target = (part.next - back).max(0);
    part.search = Some(Search {
        target,
        epoch: None,
        since: now,
    });
    part.prev = None;
    Some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `offsets` (with their epochs) to a partition at `next`; returns the verdicts.
    fn feed(part: &mut Part, msgs: &[(i64, u64)], log_start: Option<i64>) -> Vec<Verdict> {
        msgs.iter()
            .map(|&(o, e)| judge(part, o, e, 0, &mut || log_start))
            .collect()
    }

    /// The consumer thread made the seek the search asked for, in `epoch`.
    fn sought(part: &mut Part, epoch: u64) {
        if let Some(s) = part.search.as_mut() {
            s.epoch = Some(epoch);
        }
    }

    use Verdict::*;

    #[test]
    fn in_order_messages_are_fresh_and_repeats_duplicates() {
        let mut p = Part::new(10, None, 0, 1);
        assert_eq!(
            feed(&mut p, &[(10, 1), (11, 1), (12, 1)], Some(0)),
            [Fresh, Fresh, Fresh]
        );
        assert_eq!(
            feed(&mut p, &[(11, 2), (12, 2), (13, 2)], Some(0)),
            [Duplicate, Duplicate, Fresh]
        );
        assert_eq!(p.next, 14);
        // Polled before the assignment: stale, whatever the offset.
        assert_eq!(feed(&mut p, &[(14, 0)], Some(0)), [Stale]);
    }

    #[test]
    fn a_broker_that_skips_the_rest_of_a_batch_is_sent_back_until_it_delivers_it() {
        // Resumed at 205, inside a batch of 200..=299: the broker answers from 300.
        let mut p = Part::new(205, None, 0, 1);
        assert_eq!(feed(&mut p, &[(300, 1), (301, 1)], Some(0)), [SeekBack(204), Stale]);
        sought(&mut p, 2);
        // Still inside that batch: eight times as far, and again.
        assert_eq!(
            feed(&mut p, &[(301, 1), (300, 2), (301, 2)], Some(0)),
            [Stale, SeekBack(197), Stale]
        );
        sought(&mut p, 3);
        // 197 lies in the batch before, 150..=199: the broker answers from 150, then 200..=299
        // whole.
        let mut msgs: Vec<(i64, u64)> = (150..310).map(|o| (o, 3)).collect();
        msgs.insert(0, (301, 2));
        let got = feed(&mut p, &msgs, Some(0));
        assert_eq!(got[0], Stale);
        assert!(got[1..56].iter().all(|v| *v == Duplicate), "{got:?}");
        assert!(got[56..].iter().all(|v| *v == Fresh), "{got:?}");
        assert_eq!((p.next, p.search), (310, None));
    }

    #[test]
    fn a_partition_behind_that_delivers_nothing_is_sent_back_too() {
        // At 5538 inside the last batch, 5500..=5999: the broker answers with nothing.
        let mut p = Part::new(5538, None, 0, 1);
        p.high = Some(6000);
        assert_eq!(unstick(&mut p, STUCK_MS - 1, false), None);
        assert_eq!(unstick(&mut p, STUCK_MS, true), None, "all consumption paused");
        p.held = true;
        assert_eq!(unstick(&mut p, STUCK_MS, false), None, "held back");
        p.held = false;
        assert_eq!(unstick(&mut p, STUCK_MS, false), Some(5537));
        assert_eq!(unstick(&mut p, 10 * STUCK_MS, false), None, "the seek is not made yet");
        sought(&mut p, 2);
        assert_eq!(unstick(&mut p, 2 * STUCK_MS - 1, false), None);
        assert_eq!(unstick(&mut p, 2 * STUCK_MS, false), Some(5530));
        sought(&mut p, 3);
        assert_eq!(unstick(&mut p, 3 * STUCK_MS, false), Some(5474));
        sought(&mut p, 4);
        // The batch comes whole.
        let msgs: Vec<(i64, u64)> = (5500..5600).map(|o| (o, 4)).collect();
        let got = feed(&mut p, &msgs, Some(0));
        assert!(got[..38].iter().all(|v| *v == Duplicate) && got[38..].iter().all(|v| *v == Fresh));
        // Caught up: nothing to do.
        p.high = Some(5600);
        assert_eq!(unstick(&mut p, 100 * STUCK_MS, false), None);
        // The log's end lies one past its last record (a transaction marker): once the broker
        // has delivered the record before `next`, nobody goes looking for more.
        p.high = Some(5601);
        assert_eq!(unstick(&mut p, 101 * STUCK_MS, false), Some(5599));
        sought(&mut p, 5);
        assert_eq!(feed(&mut p, &[(5599, 5)], Some(0)), [Duplicate]);
        assert_eq!(unstick(&mut p, 200 * STUCK_MS, false), None);
    }

    #[test]
    fn a_gap_after_records_older_than_next_is_the_logs() {
        // Compaction left 4 and 12 around `next` = 10: after the seek back the broker
        // delivers 4, then 12, in one fetch. The records between are not in its log.
        let mut p = Part::new(10, None, 0, 1);
        assert_eq!(feed(&mut p, &[(12, 1)], Some(0)), [SeekBack(9)]);
        sought(&mut p, 2);
        assert_eq!(feed(&mut p, &[(12, 2)], Some(0)), [SeekBack(2)]);
        sought(&mut p, 3);
        assert_eq!(
            feed(&mut p, &[(4, 3), (12, 3), (13, 3)], Some(0)),
            [Duplicate, FreshAfterGap, Fresh]
        );
        assert_eq!(p.next, 14);
    }

    #[test]
    fn a_gap_in_the_log_itself_is_stepped_over() {
        // Straight from 11 to 15 in one fetch: compacted away, or transaction markers.
        let mut p = Part::new(10, None, 0, 1);
        assert_eq!(
            feed(&mut p, &[(10, 1), (11, 1), (15, 1)], Some(0)),
            [Fresh, Fresh, FreshAfterGap]
        );
        assert_eq!(p.next, 16);
        // After a seek the first message past `next` is suspect; the broker then shows the
        // record before the gap, and the gap is the log's.
        let mut p = Part::new(12, None, 0, 1);
        assert_eq!(feed(&mut p, &[(15, 1)], Some(0)), [SeekBack(11)]);
        sought(&mut p, 2);
        assert_eq!(
            feed(&mut p, &[(11, 2), (15, 2), (16, 2)], Some(0)),
            [Duplicate, FreshAfterGap, Fresh]
        );
        assert_eq!(p.next, 17);
    }

    #[test]
    fn records_gone_before_the_log_start_are_not_searched_for() {
        // Stored at 50; retention has deleted the log up to 80.
        let mut p = Part::new(50, None, 0, 1);
        assert_eq!(feed(&mut p, &[(80, 1), (81, 1)], Some(80)), [FreshAfterGap, Fresh]);
        // Where the log starts is unknown: the search goes back to offset 0, then steps over.
        let mut p = Part::new(10, None, 0, 1);
        assert_eq!(feed(&mut p, &[(80, 1)], None), [SeekBack(9)]);
        sought(&mut p, 2);
        assert_eq!(feed(&mut p, &[(80, 2)], None), [SeekBack(2)]);
        sought(&mut p, 3);
        assert_eq!(feed(&mut p, &[(80, 3)], None), [SeekBack(0)]);
        sought(&mut p, 4);
        assert_eq!(feed(&mut p, &[(80, 4), (81, 4)], None), [FreshAfterGap, Fresh]);
    }

    #[test]
    fn an_unknown_start_is_the_first_message() {
        let mut p = Part::new(-1, None, 0, 1);
        assert_eq!(feed(&mut p, &[(42, 1), (43, 1)], Some(0)), [Fresh, Fresh]);
        assert_eq!(p.next, 44);
    }
}
