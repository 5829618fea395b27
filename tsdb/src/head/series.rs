//! One series in memory: its labels and its samples as a list of compressed chunks.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rustc_hash::FxHashSet;

use super::chunks::{ChunkBytes, ChunkRef, ChunkStore};
use crate::chunkenc::{self, Encoding, OpenChunk, SAMPLES_PER_CHUNK};
use crate::labels::Labels;
use crate::starts::StartRuns;
use crate::storage::{Sample, Timestamp};

/// Why a sample was not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored.
    Appended,
    /// Same timestamp and bit-identical value as the newest sample: nothing to do.
    Duplicate,
    /// Older than the newest sample of the series.
    OutOfOrder,
    /// Same timestamp as the newest sample but a different value.
    Conflict,
}

/// A full chunk, immutable from here on: re-encoded the smallest way when it closed (as blocks
/// are: packed for counters), so that reads of everything but the open chunk decode at block
/// speed, and kept in the head's [`ChunkStore`]. The series holds 16 bytes of it: its first
/// timestamp and where it is. Its last timestamp is not kept: the next chunk's first bounds it.
#[derive(Debug, Clone, Copy)]
struct ClosedChunk {
    min_t: Timestamp,
    at: ChunkRef,
}

#[derive(Debug, Default)]
struct SeriesData {
    /// Oldest first; a series with closed chunks always has samples in its open one.
    closed: Vec<ClosedChunk>,
    open: OpenChunk,
    open_min_t: Timestamp,
    /// Newest sample, for order checks and for `last_sample`.
    last: Option<(Timestamp, f64)>,
    /// Newest sample that is not a staleness marker.
    last_value: Option<(Timestamp, f64)>,
    /// Samples up to here are in a block; chunks that end by then are dropped.
    written_until: Option<Timestamp>,
    /// The oldest sample not yet in a block, kept so that maintenance need not decode chunks
    /// of every series to find it.
    unwritten_from: Option<Timestamp>,
    /// No samples of its own since it was deleted, or collected and taken again: its newest
    /// stays only to keep appends in order, and a checkpoint does not write it.
    deleted: bool,
    /// Start times, once a sample has had one.
    starts: Option<Box<StartRuns>>,
}

/// A series held by the head.
#[derive(Debug)]
pub struct MemSeries {
    /// The series identity.
    pub labels: Labels,
    /// Whether a WAL series record for this series has been written (or replayed).
    logged: AtomicBool,
    data: Mutex<SeriesData>,
}

/// A copy of a series' chunk list that can be decoded without holding the series lock.
#[derive(Debug)]
pub(crate) struct ChunkSnapshot {
    closed: Vec<ChunkBytes>,
    open: Option<(Encoding, Vec<u8>)>,
    starts: Option<StartRuns>,
}

impl SeriesData {
    /// No sample of closed chunk `i` is newer than this: the next chunk starts after it.
    fn closed_max_t(&self, i: usize) -> Timestamp {
        let next = self.closed.get(i + 1).map_or(self.open_min_t, |c| c.min_t);
        next.saturating_sub(1)
    }

    /// The oldest sample after `after`, found by decoding.
    fn first_after(&self, chunks: &ChunkStore, after: Timestamp) -> Option<Timestamp> {
        if self.last.is_none_or(|(t, _)| t <= after) {
            return None;
        }
        // Chunks that may end past `after`, oldest first, until one holds a sample past it.
        let first = (0..self.closed.len()).find(|&i| self.closed_max_t(i) > after);
        for c in first.map_or(&[][..], |i| &self.closed[i..]) {
            let found = first_past(after, |f| chunks.get(c.at).for_each_sample(f));
            if found.is_some() {
                return found;
            }
        }
        first_past(after, |f| self.open.for_each_sample(f))
    }
}

/// The first timestamp past `after` that `for_each` (a chunk's decoder) yields.
fn first_past(
    after: Timestamp,
    for_each: impl FnOnce(&mut dyn FnMut(Timestamp, f64) -> bool) -> bool,
) -> Option<Timestamp> {
    let mut found = None;
    for_each(&mut |t, _| {
        if t > after {
            found = Some(t);
        }
        found.is_none()
    });
    found
}

impl MemSeries {
    pub(crate) fn new(labels: Labels, logged: bool) -> Self {
        MemSeries {
            labels,
            logged: AtomicBool::new(logged),
            data: Mutex::new(SeriesData::default()),
        }
    }

    /// Whether a WAL series record for this series has been written (or replayed).
    pub(crate) fn is_logged(&self) -> bool {
        self.logged.load(Ordering::Acquire)
    }

    /// Records that the series' WAL record is written.
    pub(crate) fn set_logged(&self) {
        self.logged.store(true, Ordering::Release);
    }

    /// The newest sample, if any.
    pub(crate) fn last(&self) -> Option<(Timestamp, f64)> {
        self.data.lock().last
    }

    /// What appending (t, v) after a newest sample `last` would do.
    pub(crate) fn decide(last: Option<(Timestamp, f64)>, t: Timestamp, v: f64) -> AppendOutcome {
        match last {
            Some((lt, _)) if t < lt => AppendOutcome::OutOfOrder,
            Some((lt, lv)) if t == lt && lv.to_bits() == v.to_bits() => AppendOutcome::Duplicate,
            Some((lt, _)) if t == lt => AppendOutcome::Conflict,
            _ => AppendOutcome::Appended,
        }
    }

    /// Appends one sample if it is newer than the newest one.
    #[cfg(test)]
    pub(crate) fn append(&self, chunks: &ChunkStore, t: Timestamp, v: f64) -> AppendOutcome {
        self.append_with_start(chunks, t, v, 0)
    }

    /// Appends one sample with its start time (0: unknown) if it is newer than the newest one;
    /// a chunk that fills goes to `chunks`.
    pub(crate) fn append_with_start(&self, chunks: &ChunkStore, t: Timestamp, v: f64, st: Timestamp) -> AppendOutcome {
        let mut d = self.data.lock();
        let outcome = Self::decide(d.last, t, v);
        if outcome != AppendOutcome::Appended {
            return outcome;
        }
        if d.open.len() >= SAMPLES_PER_CHUNK {
            let (encoding, bytes) = chunkenc::recode(d.open.encoding(), d.open.bytes());
            let at = chunks.put(encoding, &bytes, d.open.len());
            d.open.reset();
            // One allocation per 20 minutes a series: exact, where doubling would leave spare.
            d.closed.reserve_exact(1);
            let min_t = d.open_min_t;
            d.closed.push(ClosedChunk { min_t, at });
        }
        if d.open.is_empty() {
            d.open_min_t = t;
        }
        d.open.append(t, v);
        d.unwritten_from.get_or_insert(t);
        if st != 0 || d.starts.is_some() {
            d.starts.get_or_insert_default().push(t, st);
        }
        d.deleted = false;
        d.last = Some((t, v));
        if !crate::storage::is_stale_nan(v) {
            d.last_value = Some((t, v));
        }
        AppendOutcome::Appended
    }

    /// The oldest sample not yet written to a block.
    pub(crate) fn oldest_unwritten(&self) -> Option<Timestamp> {
        self.data.lock().unwritten_from
    }

    /// The samples not yet written to a block that are before `end`.
    pub(crate) fn unwritten_before(&self, chunks: &ChunkStore, end: Timestamp) -> Vec<Sample> {
        let from = self.data.lock().written_until.map_or(i64::MIN, |w| w + 1);
        let mut out = Vec::new();
        if from < end {
            self.snapshot(chunks, from, end - 1)
                .decode_into(from, end - 1, &mut out);
        }
        out
    }

    /// The samples in `[mint, maxt]` not yet written to a block, with their start times if the
    /// series has any (from the same copy, so that a block cut meanwhile cannot part them).
    pub(crate) fn unwritten_in(
        &self,
        chunks: &ChunkStore,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> (Vec<Sample>, Option<Vec<Timestamp>>) {
        let from = self.data.lock().written_until.map_or(i64::MIN, |w| w + 1).max(mint);
        let mut out = Vec::new();
        if from > maxt {
            return (out, None);
        }
        let snap = self.snapshot(chunks, from, maxt);
        snap.decode_into(from, maxt, &mut out);
        let starts = snap.starts_of(&out);
        (out, starts)
    }

    /// The start times of `samples` of this series (held by the head), if it has any.
    pub(crate) fn starts_of(&self, samples: &[Sample]) -> Option<Vec<Timestamp>> {
        self.data.lock().starts.as_ref().map(|r| r.starts_of(samples))
    }

    /// The samples not yet written to a block.
    pub(crate) fn unwritten(&self, chunks: &ChunkStore) -> Vec<Sample> {
        self.unwritten_before(chunks, i64::MAX)
    }

    /// Records that the samples up to `t` are in a block and drops the chunks that end by then.
    /// Returns how many samples went.
    pub(crate) fn mark_written(&self, chunks: &ChunkStore, t: Timestamp) -> u64 {
        let mut d = self.data.lock();
        d.written_until = Some(d.written_until.map_or(t, |w| w.max(t)));
        let next = d.first_after(chunks, t);
        if d.unwritten_from.is_some_and(|u| u <= t) {
            d.unwritten_from = next;
        }
        // A chunk is all written when the next one starts no later than the first sample that
        // is not.
        let limit = next.unwrap_or(i64::MAX);
        let keep = (0..d.closed.len()).take_while(|&i| d.closed_max_t(i) < limit).count();
        let gone = d.closed[..keep].iter().map(|c| c.at.samples()).sum();
        d.closed.drain(..keep);
        // Start times are kept for every sample still held (the open chunk may hold written
        // ones), not only for those not yet written.
        let oldest_held = d.closed.first().map_or(d.open_min_t, |c| c.min_t);
        if let Some(starts) = d.starts.as_mut() {
            starts.drop_until(oldest_held);
        }
        gone
    }

    /// Drops every sample (a delete by matcher); appends must still be newer than the newest
    /// one. Returns how many samples went.
    pub(crate) fn clear(&self) -> u64 {
        let mut d = self.data.lock();
        let gone = d.closed.iter().map(|c| c.at.samples()).sum::<u64>() + d.open.len() as u64;
        d.closed = Vec::new();
        d.open = OpenChunk::default();
        d.last_value = None;
        d.starts = None;
        d.unwritten_from = None;
        d.written_until = d.last.map(|(t, _)| t);
        d.deleted = true;
        gone
    }

    /// Gives a series the head collected and now creates again its newest sample back (in a
    /// block already, or deleted), so that it still refuses older samples.
    pub(crate) fn restore_newest(&self, newest: super::Newest) {
        let mut d = self.data.lock();
        let super::Newest { t, v, deleted } = newest;
        d.last = Some((t, v));
        if !deleted && !crate::storage::is_stale_nan(v) {
            d.last_value = Some((t, v));
        }
        d.written_until = Some(t);
        // Kept to order appends only, like a deleted series' newest: a checkpoint does not
        // write it (a delete since the collection may have removed it from the blocks).
        d.deleted = true;
    }

    /// Whether the series has had samples and holds none a block does not: garbage once
    /// nothing appends to it meanwhile.
    pub(crate) fn is_collectable(&self) -> bool {
        let d = self.data.lock();
        d.closed.is_empty() && d.last.is_some_and(|(t, _)| d.written_until.is_some_and(|w| t <= w))
    }

    /// Samples held in chunks.
    pub(crate) fn held_samples(&self) -> u64 {
        let d = self.data.lock();
        d.closed.iter().map(|c| c.at.samples()).sum::<u64>() + d.open.len() as u64
    }

    /// Adds the segments of the store this series' closed chunks are in.
    pub(crate) fn note_segments(&self, out: &mut FxHashSet<u32>) {
        out.extend(self.data.lock().closed.iter().map(|c| c.at.segment()));
    }

    /// Chunks held: the closed ones and the open one if it has samples.
    pub(crate) fn chunk_count(&self) -> usize {
        let d = self.data.lock();
        d.closed.len() + usize::from(!d.open.is_empty())
    }

    /// Whether the series was deleted and has had no sample since.
    pub(crate) fn is_deleted(&self) -> bool {
        self.data.lock().deleted
    }

    /// The newest sample (possibly a staleness marker) and the newest real value.
    pub fn last_sample(&self) -> (Option<Sample>, Option<Sample>) {
        let d = self.data.lock();
        let s = |o: Option<(Timestamp, f64)>| o.map(|(t, v)| Sample { t, v });
        (s(d.last), s(d.last_value))
    }

    /// Oldest and newest timestamps, if the series has samples.
    pub(crate) fn time_range(&self) -> Option<(Timestamp, Timestamp)> {
        let d = self.data.lock();
        if d.deleted {
            return None;
        }
        let last = d.last?.0;
        let first = d.closed.first().map_or(d.open_min_t, |c| c.min_t);
        Some((first, last))
    }

    /// Copies what overlaps `[mint, maxt]` so it can be decoded after the lock is released
    /// (closed chunks are shared, not copied, unless they are in the store's active segment).
    pub(crate) fn snapshot(&self, chunks: &ChunkStore, mint: Timestamp, maxt: Timestamp) -> ChunkSnapshot {
        let d = self.data.lock();
        let closed = (0..d.closed.len())
            .filter(|&i| d.closed_max_t(i) >= mint && d.closed[i].min_t <= maxt)
            .map(|i| chunks.get(d.closed[i].at))
            .collect();
        let open_overlaps = !d.open.is_empty() && d.open_min_t <= maxt && d.last.is_some_and(|(t, _)| t >= mint);
        ChunkSnapshot {
            closed,
            open: open_overlaps.then(|| (d.open.encoding(), d.open.bytes().to_vec())),
            starts: d.starts.as_deref().cloned(),
        }
    }
}

impl ChunkSnapshot {
    /// The start times of `samples` (decoded from this snapshot), if the series has any.
    pub(crate) fn starts_of(&self, samples: &[Sample]) -> Option<Vec<Timestamp>> {
        self.starts.as_ref().map(|r| r.starts_of(samples))
    }

    /// Decodes the samples in `[mint, maxt]`, appending them to `out`.
    pub(crate) fn decode_into(&self, mint: Timestamp, maxt: Timestamp, out: &mut Vec<Sample>) {
        let mut keep = |t: Timestamp, v: f64| {
            if t >= mint && t <= maxt {
                out.push(Sample { t, v });
            }
            t <= maxt
        };
        for c in &self.closed {
            c.for_each_sample(&mut keep);
        }
        if let Some((encoding, open)) = &self.open {
            chunkenc::for_each_sample(*encoding, open, keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_rules() {
        let c = ChunkStore::default();
        let s = MemSeries::new(Labels::empty(), false);
        assert_eq!(s.append(&c, 10, 1.0), AppendOutcome::Appended);
        assert_eq!(s.append(&c, 10, 1.0), AppendOutcome::Duplicate);
        assert_eq!(s.append(&c, 10, 2.0), AppendOutcome::Conflict);
        assert_eq!(s.append(&c, 9, 2.0), AppendOutcome::OutOfOrder);
        assert_eq!(s.append(&c, 11, 2.0), AppendOutcome::Appended);
    }

    #[test]
    fn cuts_chunks_and_reads_ranges() {
        let c = ChunkStore::default();
        let s = MemSeries::new(Labels::empty(), false);
        for i in 0..1000 {
            s.append(&c, i * 10, i as f64);
        }
        let snap = s.snapshot(&c, 2_000, 2_990);
        assert!(snap.closed.len() <= 2, "only overlapping chunks are copied");
        let mut out = Vec::new();
        snap.decode_into(2_000, 2_990, &mut out);
        assert_eq!(out.len(), 100);
        assert_eq!(out[0], Sample { t: 2_000, v: 200.0 });
        assert_eq!(s.time_range(), Some((0, 9_990)));
    }

    /// A counter (with one staleness marker: its chunk stays XOR) and a fractional gauge,
    /// 1000 samples each, appended to two series of one store.
    fn counter_and_gauge(c: &ChunkStore) -> [(MemSeries, Vec<(i64, u64)>); 2] {
        let counter = MemSeries::new(Labels::empty(), false);
        let gauge = MemSeries::new(Labels::empty(), false);
        let mut want_counter = Vec::new();
        let mut want_gauge = Vec::new();
        for i in 0..1000i64 {
            let t = 1_795_305_600_000 + i * 10_000;
            let v = if i == 500 {
                crate::storage::stale_nan()
            } else {
                (i * 7 + i % 5) as f64
            };
            let g = (i as f64).sin() * 100.0;
            counter.append(c, t, v);
            gauge.append(c, t, g);
            want_counter.push((t, v.to_bits()));
            want_gauge.push((t, g.to_bits()));
        }
        [(counter, want_counter), (gauge, want_gauge)]
    }

    fn read_all(c: &ChunkStore, s: &MemSeries) -> Vec<(i64, u64)> {
        let mut out = Vec::new();
        s.snapshot(c, i64::MIN, i64::MAX)
            .decode_into(i64::MIN, i64::MAX, &mut out);
        out.iter().map(|x| (x.t, x.v.to_bits())).collect()
    }

    #[test]
    fn closed_chunks_are_recoded_and_read_back() {
        let c = ChunkStore::default();
        let [(counter, want_counter), (gauge, want_gauge)] = counter_and_gauge(&c);
        let encodings = |s: &MemSeries| {
            let d = s.data.lock();
            d.closed
                .iter()
                .map(|x| match c.get(x.at) {
                    ChunkBytes::Owned { encoding, .. } | ChunkBytes::Shared { encoding, .. } => encoding,
                    ChunkBytes::Damaged => panic!("damaged"),
                })
                .collect::<Vec<_>>()
        };
        let closed = encodings(&counter);
        assert_eq!(closed.len(), 8);
        assert_eq!(closed.iter().filter(|&&e| e == Encoding::Xor).count(), 1, "{closed:?}");
        assert!(encodings(&gauge).iter().all(|&e| e == Encoding::Xor));
        assert_eq!(counter.data.lock().open.encoding(), Encoding::Int);
        for (s, want) in [(&counter, want_counter), (&gauge, want_gauge)] {
            assert_eq!(read_all(&c, s), want);
            assert_eq!(s.oldest_unwritten(), Some(want[0].0));
        }
        // Counting and dropping work on recoded chunks.
        assert_eq!(counter.mark_written(&c, 1_795_305_600_000 + 599 * 10_000), 600);
        assert_eq!(counter.clear(), 400);
    }

    #[test]
    fn chunks_in_sealed_segments_on_disk_read_back_and_go_when_unused() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Small segments: the two series' chunks fill several.
        let c = ChunkStore::open(dir.path(), 1024).expect("open");
        let [(counter, want_counter), (gauge, want_gauge)] = counter_and_gauge(&c);
        let files = || std::fs::read_dir(dir.path()).expect("list").count();
        assert!(files() >= 2, "{} segment files", files());
        assert_eq!(read_all(&c, &counter), want_counter);
        assert_eq!(read_all(&c, &gauge), want_gauge);
        // Everything but the open chunks written: the segments and their files go (a reader's
        // copy keeps its segment readable meanwhile).
        let reader = counter.snapshot(&c, i64::MIN, i64::MAX);
        let last = want_gauge.last().expect("samples").0;
        for s in [&counter, &gauge] {
            s.mark_written(&c, last);
        }
        let mut live = FxHashSet::default();
        counter.note_segments(&mut live);
        gauge.note_segments(&mut live);
        assert!(live.is_empty());
        assert!(c.sweep(&live, c.seals()) >= 1);
        assert_eq!(files(), 0, "sealed segments are deleted once unused");
        let mut out = Vec::new();
        reader.decode_into(i64::MIN, i64::MAX, &mut out);
        assert_eq!(out.len(), 1000);
        assert_eq!(c.damaged(), 0);
    }

    #[test]
    fn a_damaged_chunk_on_disk_is_reported_not_decoded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = ChunkStore::open(dir.path(), 1024).expect("open");
        let [(counter, want), _] = counter_and_gauge(&c);
        // Flip a byte of the first chunk's record in its file (the page cache the map reads).
        let first = counter.data.lock().closed[0].at;
        let path = dir.path().join(format!("{:08}", first.segment()));
        assert_ne!(first.segment(), c.active_seq(), "the first chunk's segment is sealed");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        let at = (first.offset() + INSIDE_FIRST_CHUNK) as u64;
        let mut byte = [0u8];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut byte, at).expect("read");
        std::os::unix::fs::FileExt::write_all_at(&file, &[byte[0] ^ 0x40], at).expect("write");
        let got = read_all(&c, &counter);
        assert_eq!(c.damaged(), 1);
        assert_eq!(read_all(&c, &counter), got, "read again, the same");
        assert_eq!(c.damaged(), 1, "a damaged record is counted once");
        assert_eq!(got.len(), want.len() - 120, "the damaged chunk reads as no samples");
        assert_eq!(got[..], want[120..]);
    }

    /// A byte inside the first chunk's bytes (past its 3-byte record head).
    const INSIDE_FIRST_CHUNK: usize = 5;

    #[test]
    fn a_store_opened_on_a_directory_clears_what_a_previous_process_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("00000007"), b"old").expect("write");
        let _c = ChunkStore::open(dir.path(), 1024).expect("open");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }
}
