//! Start timestamps: per sample, when the counting that produced its value began (OpenMetrics'
//! `_created`, OpenTelemetry's start time). 0 means unknown. PromQL's `rate`, `increase`,
//! `irate` and `resets` read them to see resets that values alone hide, and `start_timestamp()`
//! returns them.
//!
//! Most series have none, and pay nothing but an empty pointer. A series that has them keeps
//! them as runs, because they repeat in one of two ways:
//! - a cumulative counter keeps one start time until it resets: one run of `At(st)`;
//! - a delta series starts each sample where the previous one ended: with a regular interval
//!   the distance `t - st` is the same for every sample, one run of `Before(k)`.
//!
//! A sample at the same time and value as a series' newest is a duplicate and changes nothing,
//! its start time included.
//!
//! A run holds from its first sample's timestamp up to the next run's. A delta series whose
//! interval jitters makes a run per sample (24 bytes each in memory): exact, not compact. The byte layout (in the
//! WAL's samples records and in block indexes) is specified in `tsdb/docs/format/wal.md` and
//! `block.md`.

use crate::encoding::{DecodeError, Decoder, put_uvarint, put_varint};
use crate::storage::{Sample, Timestamp};

/// How the samples of one run get their start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Every sample starts at this time (0: unknown).
    At(Timestamp),
    /// Every sample starts this long before its own timestamp.
    Before(i64),
}

impl Kind {
    fn start_of(self, t: Timestamp) -> Timestamp {
        match self {
            Kind::At(st) => st,
            Kind::Before(k) => t.wrapping_sub(k),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    /// Timestamp of the run's first sample.
    from: Timestamp,
    kind: Kind,
}

/// The start times of one series' samples, as runs in time order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartRuns {
    runs: Vec<Run>,
    /// The newest sample pushed and its start time, and whether it is the only sample of the
    /// last run (then a second sample may turn that run into a `Before` one).
    last: Option<(Timestamp, Timestamp, bool)>,
}

impl StartRuns {
    /// Runs for the samples at `ts` (ascending) with start times `starts` (same length).
    pub fn from_starts(ts: impl IntoIterator<Item = Timestamp>, starts: &[Timestamp]) -> StartRuns {
        let mut runs = StartRuns::default();
        for (t, &st) in ts.into_iter().zip(starts) {
            runs.push(t, st);
        }
        runs
    }

    /// Records the start time of a sample newer than every one pushed before.
    pub fn push(&mut self, t: Timestamp, st: Timestamp) {
        if let (Some(run), Some((lt, lst, single))) = (self.runs.last_mut(), self.last) {
            debug_assert!(t > lt, "start times are pushed in time order");
            if run.kind.start_of(t) == st {
                self.last = Some((t, st, false));
                return;
            }
            // The run's one sample and this one are the same distance from their starts: a
            // delta series (st = previous t) or a fixed offset.
            if single && lst != 0 && st != 0 && lt.wrapping_sub(lst) == t.wrapping_sub(st) {
                run.kind = Kind::Before(t.wrapping_sub(st));
                self.last = Some((t, st, false));
                return;
            }
        } else if self.runs.is_empty() && st == 0 {
            // Unknown start times before the first known one need no run.
            return;
        }
        self.runs.push(Run {
            from: t,
            kind: Kind::At(st),
        });
        self.last = Some((t, st, true));
    }

    /// The start time of the sample at `t` (0 when unknown).
    pub fn start_of(&self, t: Timestamp) -> Timestamp {
        let i = self.runs.partition_point(|r| r.from <= t);
        if i == 0 { 0 } else { self.runs[i - 1].kind.start_of(t) }
    }

    /// The start time of each of `samples` (ascending), in order.
    pub fn starts_of(&self, samples: &[Sample]) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(samples.len());
        let Some(first) = samples.first() else { return out };
        let mut i = self.runs.partition_point(|r| r.from <= first.t);
        for s in samples {
            while i < self.runs.len() && self.runs[i].from <= s.t {
                i += 1;
            }
            out.push(if i == 0 { 0 } else { self.runs[i - 1].kind.start_of(s.t) });
        }
        out
    }

    /// Whether no sample has a known start time.
    pub fn is_empty(&self) -> bool {
        self.runs.iter().all(|r| r.kind == Kind::At(0))
    }

    /// Number of runs.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Drops the runs that only cover samples before `t` (the one holding `t` stays).
    pub fn drop_until(&mut self, t: Timestamp) {
        let keep_from = self.runs.partition_point(|r| r.from <= t).saturating_sub(1);
        self.runs.drain(..keep_from);
    }

    /// Appends the runs: their count, then per run its first sample's timestamp (the first
    /// as is, the rest as the distance from the previous one) and its kind.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_uvarint(out, self.runs.len() as u64);
        let mut prev = 0i64;
        for r in &self.runs {
            put_varint(out, r.from.wrapping_sub(prev));
            prev = r.from;
            match r.kind {
                Kind::At(st) => {
                    out.push(0);
                    put_varint(out, r.from.wrapping_sub(st));
                }
                Kind::Before(k) => {
                    out.push(1);
                    put_varint(out, k);
                }
            }
        }
    }

    /// Reads what [`StartRuns::encode`] wrote.
    pub fn decode(d: &mut Decoder<'_>) -> Result<StartRuns, DecodeError> {
        let n = d.uvarint()?;
        let mut runs = Vec::with_capacity((n as usize).min(1 << 16));
        let mut prev = 0i64;
        for _ in 0..n {
            let from = prev.wrapping_add(d.varint()?);
            if !runs.is_empty() && from <= prev {
                return Err(DecodeError::BadTag);
            }
            prev = from;
            let kind = match d.bytes(1)?[0] {
                0 => Kind::At(from.wrapping_sub(d.varint()?)),
                1 => Kind::Before(d.varint()?),
                _ => return Err(DecodeError::BadTag),
            };
            runs.push(Run { from, kind });
        }
        // Read runs are only looked up: with no newest sample known, a push after them would
        // start a run of its own (correct, if not the fewest runs).
        Ok(StartRuns { runs, last: None })
    }
}

/// Whether a sample's start time shows a counter reset since the previous sample (Prometheus's
/// rule): its start is known, before its own time, and after the previous sample; or equal to
/// the previous sample's time when that one had a known start of its own (a delta series),
/// which an unknown previous start (OpenTelemetry's cumulative with unknown start) does not.
pub fn is_reset(prev_st: Timestamp, prev_t: Timestamp, st: Timestamp, t: Timestamp) -> bool {
    if st == 0 || st >= t || st < prev_t {
        return false;
    }
    if st > prev_t {
        return true;
    }
    // st == prev_t: a delta, unless the previous start is unknown or invalid.
    prev_st != 0 && prev_st != prev_t && prev_st <= prev_t
}

/// Whether a sample's start time reaches back before the previous sample without being the
/// previous one's start: the two counted the same time twice.
pub fn overlaps(prev_st: Timestamp, prev_t: Timestamp, st: Timestamp) -> bool {
    st != 0 && st < prev_t && st != prev_st
}

/// Encodes one start time relative to its sample's timestamp, as the WAL stores it: 0 for
/// unknown, else the zigzagged distance plus one.
pub(crate) fn put_start(out: &mut Vec<u8>, t: Timestamp, st: Timestamp) {
    if st == 0 {
        put_uvarint(out, 0);
    } else {
        put_uvarint(out, crate::encoding::zigzag(t.wrapping_sub(st)).wrapping_add(1));
    }
}

/// Reads what [`put_start`] wrote.
pub(crate) fn get_start(d: &mut Decoder<'_>, t: Timestamp) -> Result<Timestamp, DecodeError> {
    Ok(match d.uvarint()? {
        0 => 0,
        u => t.wrapping_sub(crate::encoding::unzigzag(u - 1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(ts: &[Timestamp]) -> Vec<Sample> {
        ts.iter().map(|&t| Sample { t, v: 0.0 }).collect()
    }

    fn round_trip(ts: &[Timestamp], starts: &[Timestamp]) -> StartRuns {
        let runs = StartRuns::from_starts(ts.iter().copied(), starts);
        assert_eq!(runs.starts_of(&samples(ts)), starts);
        for (&t, &st) in ts.iter().zip(starts) {
            assert_eq!(runs.start_of(t), st);
        }
        let mut buf = Vec::new();
        runs.encode(&mut buf);
        let mut d = Decoder::new(&buf);
        let back = StartRuns::decode(&mut d).expect("decode");
        assert!(d.is_empty());
        assert_eq!(back.starts_of(&samples(ts)), starts);
        runs
    }

    #[test]
    fn cumulative_counter_is_one_run() {
        let ts: Vec<_> = (1..=100).map(|i| i * 60_000).collect();
        let runs = round_trip(&ts, &[30_000; 100]);
        assert_eq!(runs.len(), 1);
    }

    #[test]
    fn delta_series_is_one_run() {
        let ts: Vec<_> = (1..=100).map(|i| i * 60_000).collect();
        let starts: Vec<_> = ts.iter().map(|t| t - 60_000).collect();
        let runs = round_trip(&ts, &starts);
        assert_eq!(runs.len(), 1);
    }

    #[test]
    fn resets_unknowns_and_invalid_starts() {
        let ts = [60_000, 120_000, 180_000, 240_000, 300_000, 360_000];
        // Unknown before the first known start needs no run; later unknowns do.
        let runs = round_trip(&ts, &[0, 0, 150_000, 150_000, 0, 400_000]);
        assert_eq!(runs.len(), 3);
        assert_eq!(runs.start_of(10), 0);
        round_trip(&ts, &[59_999, 60_000, 179_999, 180_000, 300_001, 1]);
        assert!(StartRuns::from_starts(ts, &[0; 6]).is_empty());
    }

    #[test]
    fn dropping_old_runs_keeps_the_newer_samples_starts() {
        let ts = [1_000, 2_000, 3_000, 4_000];
        let mut runs = StartRuns::from_starts(ts, &[500, 500, 2_500, 2_500]);
        runs.drop_until(3_500);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs.start_of(4_000), 2_500);
    }

    #[test]
    fn wal_start_encoding() {
        for (t, st) in [(1_000, 0), (1_000, 999), (1_000, 1_000), (1_000, 5_000), (i64::MAX, 1)] {
            let mut buf = Vec::new();
            put_start(&mut buf, t, st);
            assert_eq!(get_start(&mut Decoder::new(&buf), t), Ok(st));
        }
    }
}
