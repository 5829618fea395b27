//! When windows may close, decided from the partitions alone (pure functions of their state and
//! the time, so a replay after a crash decides the same).
//!
//! Each partition delivers its events roughly in time order, but partitions move at different
//! speeds (a backlog on one, a slow broker or producer for another). A window may close once
//! every partition still delivering has read past it: the watermark is the newest event time
//! of the slowest *pacing* partition, minus the watermark delay. A partition paces while it is
//! behind (the broker reported data not aggregated yet) or, caught up, while it had a message
//! within `idle_partition`. Partitions idle for longer do not hold the windows back.
//!
//! When nothing paces (every partition caught up and idle), the open windows are written: a
//! stream near real time then moves on with the wall clock (so quiet series get their
//! keep-alive samples and staleness markers); a replay of old events only closes the windows it
//! has, so that its event time does not run ahead of the next batch.
//!
//! Two things bound the wait. A partition running more than `max_partition_skew` ahead of the
//! slowest one is paused ([`hold_back`]) so that open windows cannot pile up behind a slow
//! one. A partition behind that delivers nothing for `idle_partition` (its leader is down, say)
//! is *stalled* and stops holding the windows: what it delivers later lands behind the closed
//! windows and counts in the first open one, as do the events of a partition taken over from
//! another member. Only an event out of order within its own partition by more than the
//! allowed lateness is rejected as late (`rejected_total{reason="late"}`).

use vigil_tsdb::Timestamp;

use super::partitions::{Part, Partitions};

/// The settings the decisions depend on, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// The aggregation window.
    pub(crate) window: i64,
    /// How far the watermark trails the slowest partition's newest event.
    pub(crate) delay: i64,
    /// How late an event may be and still count (in the next open window).
    pub(crate) lateness: i64,
    /// No progress for this long while behind: stalled.
    pub(crate) idle: i64,
    /// How far a partition may run ahead of the slowest one.
    pub(crate) skew: i64,
    /// How far in the future an event may start (clocks disagree); later ones are rejected.
    pub(crate) clock_skew: i64,
}

fn stalled(p: &Part, now: Timestamp, s: &Settings) -> bool {
    !p.caught_up() && !p.held && now - p.last_progress > s.idle
}

/// Whether a partition sets the pace: behind and neither held back nor stalled, or caught up
/// with a message within the idle time (and events in it).
fn paces(p: &Part, now: Timestamp, s: &Settings) -> bool {
    if p.held {
        return false;
    }
    if p.caught_up() {
        p.max_t.is_some() && p.last_msg.is_some_and(|m| now - m <= s.idle)
    } else {
        !stalled(p, now, s)
    }
}

/// The slowest pacing partition's newest event: `Ok(None)` if no partition paces, `Err(())` if
/// one has not delivered anything yet (its events could be older than anyone's).
fn slowest(parts: &Partitions, now: Timestamp, s: &Settings) -> Result<Option<Timestamp>, ()> {
    let mut slowest: Option<Timestamp> = None;
    for (_, _, p) in parts.iter().filter(|(_, _, p)| paces(p, now, s)) {
        match p.max_t {
            Some(t) => slowest = Some(slowest.map_or(t, |m| m.min(t))),
            // Messages, but not one valid event in them: nothing to wait for.
            None if p.messages > 0 => {}
            None => return Err(()),
        }
    }
    Ok(slowest)
}

/// The event time up to which windows may close now, or `None` to keep them open.
/// `last_message` is the wall-clock time of the newest message from any partition; `closed`
/// the end of the newest window written (events behind it went to the window after it).
pub(crate) fn watermark(
    parts: &Partitions,
    last_message: Option<Timestamp>,
    now: Timestamp,
    closed: Option<Timestamp>,
    s: &Settings,
) -> Option<Timestamp> {
    if parts.is_empty() {
        return None;
    }
    match slowest(parts, now, s) {
        Err(()) => return None,
        Ok(Some(t)) => return Some(t - s.delay),
        Ok(None) => {}
    }
    // Nothing paces. Held partitions are about to be released (the one they waited for is
    // done): wait for them.
    if parts.iter().any(|(_, _, p)| p.held) {
        return None;
    }
    let newest = parts.iter().filter_map(|(_, _, p)| p.max_t).max()?;
    let live = last_message.is_some_and(|m| newest >= m - (s.lateness + 2 * s.window));
    Some(if live {
        (now - s.delay).max(newest - s.delay)
    } else {
        newest.max(closed.unwrap_or(newest)) + s.window
    })
}

/// A partition of a topic.
pub(crate) type TopicPartition = (String, i32);

/// Which partitions to pause for running ahead of the slowest pacing one, and which to resume:
/// `(hold, release)`.
pub(crate) fn hold_back(
    parts: &Partitions,
    now: Timestamp,
    s: &Settings,
) -> (Vec<TopicPartition>, Vec<TopicPartition>) {
    let (mut hold, mut release) = (Vec::new(), Vec::new());
    let limit = match slowest(parts, now, s) {
        // The slowest is not known yet: change nothing.
        Err(()) => return (hold, release),
        Ok(slowest) => slowest.map(|t| t + s.skew),
    };
    for (t, p, part) in parts.iter() {
        let ahead = match (limit, part.max_t) {
            (Some(l), Some(m)) => !part.caught_up() && m > l,
            _ => false,
        };
        if ahead && !part.held {
            hold.push((t.to_owned(), p));
        } else if !ahead && part.held {
            release.push((t.to_owned(), p));
        }
    }
    (hold, release)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Settings = Settings {
        window: 10_000,
        delay: 5_000,
        lateness: 30_000,
        idle: 20_000,
        skew: 120_000,
        clock_skew: 300_000,
    };
    const NOW: Timestamp = 1_795_150_800_000;

    /// A partition at `next` of `high`, newest event `max_t`, last message (and progress) `ago`
    /// ms before NOW.
    fn part(next: i64, high: Option<i64>, max_t: Option<Timestamp>, ago: i64) -> Part {
        let mut p = Part::new(next, max_t, NOW - ago, 0);
        p.high = high;
        p.last_msg = max_t.map(|_| NOW - ago);
        p
    }

    fn parts(ps: Vec<Part>) -> Partitions {
        let mut out = Partitions::default();
        for (i, p) in ps.into_iter().enumerate() {
            out.insert("kong", i as i32, p);
        }
        out
    }

    #[test]
    fn the_slowest_partition_behind_sets_the_watermark() {
        let t = NOW - 600_000;
        let ps = parts(vec![
            part(10, Some(100), Some(t + 30_000), 0),
            part(50, Some(100), Some(t), 0),
            // Caught up and idle, far behind in time: it does not hold anyone back.
            part(7, Some(7), Some(t - 300_000), S.idle + 1),
        ]);
        assert_eq!(watermark(&ps, Some(NOW), NOW, None, &S), Some(t - S.delay));
    }

    #[test]
    fn a_partition_with_data_but_no_events_yet_holds_the_windows() {
        let ps = parts(vec![part(10, Some(100), Some(NOW), 0), part(-1, None, None, 0)]);
        assert_eq!(watermark(&ps, Some(NOW), NOW, None, &S), None);
        // ... until it stalls.
        let ps = parts(vec![
            part(10, Some(100), Some(NOW), 0),
            part(-1, None, None, S.idle + 1),
        ]);
        assert_eq!(watermark(&ps, Some(NOW), NOW, None, &S), Some(NOW - S.delay));
    }

    #[test]
    fn a_partition_whose_messages_held_no_valid_event_holds_nothing() {
        let mut bad = part(20, Some(100), None, 0);
        bad.messages = 20;
        let ps = parts(vec![part(10, Some(100), Some(NOW), 0), bad]);
        assert_eq!(watermark(&ps, Some(NOW), NOW, None, &S), Some(NOW - S.delay));
    }

    #[test]
    fn nothing_assigned_keeps_the_windows_open() {
        assert_eq!(watermark(&Partitions::default(), Some(NOW), NOW, None, &S), None);
    }

    #[test]
    fn caught_up_partitions_pace_while_they_deliver_and_idle_ones_let_the_windows_close() {
        let t = NOW - 600_000;
        // Both caught up, messages still arriving: the slower one's newest event.
        let ps = parts(vec![
            part(5, Some(5), Some(t), 1_000),
            part(9, Some(9), Some(t - 2_000), 1_000),
        ]);
        assert_eq!(
            watermark(&ps, Some(NOW - 1_000), NOW, None, &S),
            Some(t - 2_000 - S.delay)
        );
        // Both idle: an old stream closes every open window, and no further.
        let ps = parts(vec![
            part(5, Some(5), Some(t), S.idle + 1),
            part(9, Some(9), Some(t - 2_000), S.idle + 1),
        ]);
        assert_eq!(
            watermark(&ps, Some(NOW - S.idle - 1), NOW, None, &S),
            Some(t + S.window)
        );
        // ... including the one after the written windows, where events behind them went.
        let closed = Some(t + 60_000);
        assert_eq!(
            watermark(&ps, Some(NOW - S.idle - 1), NOW, closed, &S),
            Some(t + 60_000 + S.window)
        );
        // A live stream moves on with the clock.
        let live = parts(vec![part(5, Some(5), Some(NOW - 25_000), S.idle + 1)]);
        assert_eq!(
            watermark(&live, Some(NOW - S.idle - 1), NOW, None, &S),
            Some(NOW - S.delay)
        );
    }

    #[test]
    fn held_partitions_are_resumed_before_the_windows_move() {
        let mut ahead = part(10, Some(100), Some(NOW), 0);
        ahead.held = true;
        // The slow one is caught up but may still deliver: it paces, and the fast one waits.
        let ps = parts(vec![ahead.clone(), part(100, Some(100), Some(NOW - 300_000), 0)]);
        assert_eq!(watermark(&ps, Some(NOW), NOW, None, &S), Some(NOW - 300_000 - S.delay));
        assert_eq!(hold_back(&ps, NOW, &S), (vec![], vec![]));
        // Idle for long: the fast one is resumed before the windows move on.
        let ps = parts(vec![ahead, part(100, Some(100), Some(NOW - 300_000), S.idle + 1)]);
        assert_eq!(watermark(&ps, Some(NOW), NOW, None, &S), None);
        let (hold, release) = hold_back(&ps, NOW, &S);
        assert!(hold.is_empty());
        assert_eq!(release, [("kong".to_owned(), 0)]);
    }

    #[test]
    fn partitions_far_ahead_are_held_back_and_released_when_the_slowest_catches_up() {
        let t = NOW - 900_000;
        let ps = parts(vec![
            part(10, Some(100), Some(t), 0),
            part(10, Some(100), Some(t + S.skew + 1), 0),
            part(10, Some(100), Some(t + S.skew), 0),
            // Caught up: there is nothing to hold.
            part(100, Some(100), Some(t + 2 * S.skew), 0),
        ]);
        let (hold, release) = hold_back(&ps, NOW, &S);
        assert_eq!((hold, release), (vec![("kong".to_owned(), 1)], vec![]));

        let mut ps = ps;
        if let Some(p) = ps.get_mut("kong", 1) {
            p.held = true;
        }
        if let Some(p) = ps.get_mut("kong", 0) {
            p.max_t = Some(t + 10_000);
        }
        let (hold, release) = hold_back(&ps, NOW, &S);
        assert_eq!((hold, release), (vec![], vec![("kong".to_owned(), 1)]));
    }

    #[test]
    fn a_stalled_partition_stops_holding_the_windows() {
        let t = NOW - 600_000;
        let ps = parts(vec![
            part(10, Some(100), Some(t), S.idle + 1),
            part(10, Some(100), Some(t + 60_000), 0),
        ]);
        assert_eq!(watermark(&ps, Some(NOW), NOW, None, &S), Some(t + 60_000 - S.delay));
    }
}
