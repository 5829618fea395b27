//! The head: the in-memory part of the store that takes every append.
//!
//! Series live in a map from [`SeriesRef`] to [`MemSeries`]; a label-hash map finds a series by
//! its labels, and [`postings`] answers matchers. The index sits behind one `RwLock` that is
//! written when a series is created or collected; samples are appended under each series' own
//! lock, so readers and writers of different series never wait on each other.

mod chunks;
mod postings;
mod series;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::RwLock;
use rustc_hash::{FxHashMap, FxHashSet};

pub(crate) use chunks::ChunkStore;
pub use chunks::{ChunkStats, DEFAULT_SEGMENT_SIZE as DEFAULT_CHUNK_SEGMENT_SIZE};
pub use postings::SeriesRef;
pub use series::{AppendOutcome, MemSeries};

use crate::labels::{Label, Labels, Matcher, Symbol};
use crate::storage::{Sample, Series, Timestamp};
pub(crate) use postings::{PostingLists, Postings, merge_lists, select as select_postings};

#[derive(Debug, Default)]
struct Index {
    series: FxHashMap<SeriesRef, Arc<MemSeries>>,
    /// Label-set hash -> the first series with that hash.
    by_hash: FxHashMap<u64, SeriesRef>,
    /// Label-set hash -> further series with it (hash collisions: almost never any). Apart
    /// from `by_hash` so that a series costs no list of its own.
    collisions: FxHashMap<u64, Vec<SeriesRef>>,
    /// Label-set hash -> newest sample of a series garbage-collected from the head: if it comes
    /// back it still refuses samples older than that (about 40 bytes where the series took
    /// hundreds). Forgotten past the retention time; rebuilt from the blocks at open.
    collected: FxHashMap<u64, Newest>,
    /// Second references replay found for a series it already had (see `create_with_ref`).
    aliases: FxHashMap<SeriesRef, SeriesRef>,
    postings: Postings,
    next_ref: SeriesRef,
    /// Every label name and value of the head's series, once: series share them.
    symbols: FxHashSet<Symbol>,
}

/// The newest sample of a series the head collected, and whether it had been deleted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Newest {
    pub(crate) t: Timestamp,
    pub(crate) v: f64,
    pub(crate) deleted: bool,
}

/// Counts of what the head holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeadStats {
    /// Series in memory.
    pub series: u64,
    /// Samples held (appended or replayed, less those moved to blocks).
    pub samples: u64,
    /// Oldest sample timestamp, `i64::MAX` when empty.
    pub min_t: Timestamp,
    /// Newest sample timestamp, `i64::MIN` when empty.
    pub max_t: Timestamp,
}

/// Where the head's series and label pairs go, the `n` largest of each kind: what
/// `/api/v1/status/tsdb` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cardinality {
    /// Series in the head.
    pub series: u64,
    /// Distinct label name and value pairs.
    pub label_pairs: u64,
    /// Chunks held (closed and open).
    pub chunks: u64,
    /// Series per metric name, most first.
    pub series_by_metric: Vec<(String, u64)>,
    /// Distinct values per label name, most first.
    pub values_by_label_name: Vec<(String, u64)>,
    /// Bytes of the values per label name, most first.
    pub bytes_by_label_name: Vec<(String, u64)>,
    /// Series per `name=value` pair, most first.
    pub series_by_label_pair: Vec<(String, u64)>,
}

/// Per label name, its values with how many series carry each.
type LabelPairCounts = Vec<(Symbol, Vec<(Symbol, usize)>)>;

/// The in-memory series store.
#[derive(Debug)]
pub struct Head {
    index: RwLock<Index>,
    /// Closed chunks, out of the series.
    chunks: ChunkStore,
    /// Bumped by every garbage collection that removed series: references handed out before
    /// may name series that are gone.
    gc_epoch: AtomicU64,
    samples: AtomicU64,
    min_t: AtomicI64,
    max_t: AtomicI64,
}

impl Default for Head {
    fn default() -> Self {
        Head::with_chunks(ChunkStore::default())
    }
}

impl Head {
    /// A head whose closed chunks go to `chunks`.
    pub(crate) fn with_chunks(chunks: ChunkStore) -> Self {
        Head {
            index: RwLock::new(Index {
                next_ref: 1,
                ..Index::default()
            }),
            chunks,
            gc_epoch: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            min_t: AtomicI64::new(i64::MAX),
            max_t: AtomicI64::new(i64::MIN),
        }
    }

    /// Where the closed chunks are.
    pub(crate) fn chunks(&self) -> &ChunkStore {
        &self.chunks
    }

    /// Drops the chunk segments no series refers to any more (after a cut dropped the chunks
    /// it wrote, or a delete its series). Returns how many went.
    pub(crate) fn sweep_chunks(&self) -> usize {
        let before = self.chunks.seals();
        let mut live = FxHashSet::default();
        for s in self.index.read().series.values() {
            s.note_segments(&mut live);
        }
        self.chunks.sweep(&live, before)
    }

    /// The series with these labels, created if new. Returns its reference and whether it was
    /// created by this call.
    pub fn get_or_create(&self, labels: &Labels) -> (SeriesRef, bool) {
        let hash = labels.stable_hash();
        if let Some(r) = self.lookup(hash, labels) {
            return (r, false);
        }
        let mut idx = self.index.write();
        // Another writer may have created it between the two locks.
        if let Some(r) = find(&idx, hash, labels) {
            return (r, false);
        }
        let r = idx.next_ref;
        insert(&mut idx, r, hash, labels, false);
        (r, true)
    }

    /// Creates a series with a reference chosen elsewhere (WAL replay). Returns false if the
    /// reference is taken by different labels, true if it now names `labels`.
    pub fn create_with_ref(&self, r: SeriesRef, labels: &Labels) -> bool {
        let mut idx = self.index.write();
        if let Some(existing) = idx.series.get(&r) {
            return existing.labels == *labels;
        }
        let hash = labels.stable_hash();
        // The same labels under a second reference: the head collected the series, a commit
        // took it again, and a crash came before the checkpoint that forgets the first. Both
        // references name the one series.
        if let Some(first) = find(&idx, hash, labels) {
            idx.aliases.insert(r, first);
            idx.next_ref = idx.next_ref.max(r.saturating_add(1));
            return true;
        }
        insert(&mut idx, r, hash, labels, true);
        true
    }

    fn lookup(&self, hash: u64, labels: &Labels) -> Option<SeriesRef> {
        find(&self.index.read(), hash, labels)
    }

    /// The series with these labels, if the head has it.
    pub(crate) fn find(&self, labels: &Labels) -> Option<Arc<MemSeries>> {
        let idx = self.index.read();
        let r = find(&idx, labels.stable_hash(), labels)?;
        idx.series.get(&r).cloned()
    }

    /// The series behind a reference.
    pub fn series(&self, r: SeriesRef) -> Option<Arc<MemSeries>> {
        self.index.read().series.get(&r).cloned()
    }

    /// Appends samples to existing series, calling `on_outcome` with each sample's series and
    /// fate. Unknown references are reported as `None`. `starts` holds each sample's start
    /// time (0: unknown), or is empty when none has one.
    pub fn append_batch(
        &self,
        samples: &[(SeriesRef, Timestamp, f64)],
        starts: &[Timestamp],
        mut on_outcome: impl FnMut(usize, Option<(&MemSeries, AppendOutcome)>),
    ) {
        let idx = self.index.read();
        let (mut n, mut lo, mut hi) = (0u64, i64::MAX, i64::MIN);
        for (i, &(r, t, v)) in samples.iter().enumerate() {
            let series = idx
                .series
                .get(&r)
                .or_else(|| idx.aliases.get(&r).and_then(|a| idx.series.get(a)));
            let Some(series) = series else {
                on_outcome(i, None);
                continue;
            };
            let outcome = series.append_with_start(&self.chunks, t, v, starts.get(i).copied().unwrap_or(0));
            if outcome == AppendOutcome::Appended {
                n += 1;
                lo = lo.min(t);
                hi = hi.max(t);
            }
            on_outcome(i, Some((series, outcome)));
        }
        drop(idx);
        if n > 0 {
            self.samples.fetch_add(n, Ordering::Relaxed);
            self.min_t.fetch_min(lo, Ordering::Relaxed);
            self.max_t.fetch_max(hi, Ordering::Relaxed);
        }
    }

    /// The series behind each reference (`None` for unknown ones), under one index lock, and
    /// whether a `None` is a series garbage-collected since (its reference was handed out:
    /// references are never reused) rather than one that never was.
    pub fn resolve(&self, refs: impl IntoIterator<Item = SeriesRef>) -> (Vec<Option<Arc<MemSeries>>>, bool) {
        let idx = self.index.read();
        let mut collected = false;
        let series = refs
            .into_iter()
            .map(|r| {
                let s = idx.series.get(&r).cloned();
                collected |= s.is_none() && r < idx.next_ref;
                s
            })
            .collect();
        (series, collected)
    }

    /// Appends samples already checked to be in order (by a commit holding the WAL lock).
    pub(crate) fn apply_checked(&self, samples: &[(&MemSeries, Timestamp, f64, Timestamp)]) {
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for &(series, t, v, st) in samples {
            let outcome = series.append_with_start(&self.chunks, t, v, st);
            debug_assert_eq!(outcome, AppendOutcome::Appended, "commit checked the order");
            lo = lo.min(t);
            hi = hi.max(t);
        }
        if !samples.is_empty() {
            self.samples.fetch_add(samples.len() as u64, Ordering::Relaxed);
            self.min_t.fetch_min(lo, Ordering::Relaxed);
            self.max_t.fetch_max(hi, Ordering::Relaxed);
        }
    }

    /// Every series with its reference, in no particular order.
    pub(crate) fn all_series(&self) -> Vec<(SeriesRef, Arc<MemSeries>)> {
        self.index.read().series.iter().map(|(r, s)| (*r, s.clone())).collect()
    }

    /// The oldest sample not yet written to a block, over all series.
    pub(crate) fn oldest_unwritten(&self) -> Option<Timestamp> {
        let series: Vec<Arc<MemSeries>> = self.index.read().series.values().cloned().collect();
        series.iter().filter_map(|s| s.oldest_unwritten()).min()
    }

    /// Records that `samples` chunk-holding samples were dropped after being written to a
    /// block, and that nothing older than `oldest` is left to write.
    pub(crate) fn note_written(&self, dropped: u64, oldest: Timestamp) {
        let held = self.samples.load(Ordering::Relaxed);
        self.samples.fetch_sub(dropped.min(held), Ordering::Relaxed);
        self.min_t.fetch_max(oldest, Ordering::Relaxed);
    }

    /// Drops every sample of the series matching all matchers of any of `sets` (the series stay,
    /// refusing samples older than their newest, as after a cut). Returns the labels of those
    /// that held samples.
    pub(crate) fn delete_matching(&self, sets: &[Vec<Matcher>]) -> Vec<Labels> {
        let mut deleted = Vec::new();
        let mut dropped = 0;
        for set in sets {
            for s in self.matching_series(set) {
                if s.time_range().is_some() || !s.unwritten(&self.chunks).is_empty() {
                    deleted.push(s.labels.clone());
                }
                dropped += s.clear();
            }
        }
        self.note_written(dropped, i64::MIN);
        deleted
    }

    /// Removes the series that hold nothing a block does not (every sample written, or the
    /// series deleted) and that had samples, with their postings and the symbols only they
    /// used: a series that stopped (a route removed, a pod gone) leaves memory once its last
    /// samples are in a block. Returns how many went. The caller holds the WAL lock, so no
    /// commit appends to them meanwhile; references to them held elsewhere are stale from here
    /// ([`Head::gc_epoch`] tells).
    pub(crate) fn collect_garbage(&self) -> usize {
        let mut idx = self.index.write();
        let gone: Vec<(SeriesRef, Arc<MemSeries>)> = idx
            .series
            .iter()
            .filter(|(_, s)| s.is_collectable())
            .map(|(r, s)| (*r, s.clone()))
            .collect();
        if gone.is_empty() {
            return 0;
        }
        let held: u64 = gone.iter().map(|(_, s)| s.held_samples()).sum();
        for (r, s) in &gone {
            idx.series.remove(r);
            let hash = s.labels.stable_hash();
            forget_hash(&mut idx, *r, hash);
            if let Some((t, v)) = s.last() {
                let newest = Newest {
                    t,
                    v,
                    deleted: s.is_deleted(),
                };
                let kept = idx.collected.entry(hash).or_insert(newest);
                if t > kept.t {
                    *kept = newest;
                }
            }
        }
        let refs: FxHashSet<SeriesRef> = gone.iter().map(|(r, _)| *r).collect();
        idx.postings.remove(&refs, gone.iter().map(|(_, s)| &s.labels));
        let n = gone.len();
        drop(gone);
        // A symbol only the table itself still holds is no series' any more.
        idx.symbols.retain(|s| s.ref_count() > 1);
        drop(idx);
        // Their open chunks still held samples already in blocks.
        self.note_written(held, i64::MIN);
        self.gc_epoch.fetch_add(1, Ordering::Relaxed);
        n
    }

    /// The newest sample's time of a series with these labels the head let go, if it keeps it.
    pub(crate) fn collected_newest(&self, labels: &Labels) -> Option<Timestamp> {
        self.index.read().collected.get(&labels.stable_hash()).map(|n| n.t)
    }

    /// Keeps the newest sample of a series the head does not hold (read from a block at open),
    /// so that if the series comes back it refuses older samples.
    pub(crate) fn remember_collected(&self, labels: &Labels, t: Timestamp, v: f64) {
        let newest = Newest { t, v, deleted: false };
        let mut idx = self.index.write();
        let kept = idx.collected.entry(labels.stable_hash()).or_insert(newest);
        if t > kept.t {
            *kept = newest;
        }
    }

    /// Forgets the newest samples of collected series older than `cutoff` (their blocks are
    /// past retention).
    pub(crate) fn forget_collected_before(&self, cutoff: Timestamp) {
        self.index.write().collected.retain(|_, n| n.t >= cutoff);
    }

    /// How many garbage collections have removed series: a reference obtained before the
    /// epoch last changed may name a series that is gone.
    pub fn gc_epoch(&self) -> u64 {
        self.gc_epoch.load(Ordering::Relaxed)
    }

    /// Series and label-pair counts, keeping the `n` largest of each list.
    pub fn cardinality(&self, n: usize) -> Cardinality {
        // Counted under the index lock (symbols are shared, so no string is copied there);
        // sorted, cut to `n` and formatted after it.
        let (series, pairs): (Vec<Arc<MemSeries>>, LabelPairCounts) = {
            let idx = self.index.read();
            let pairs = idx
                .postings
                .label_pairs()
                .map(|(name, values)| (name.clone(), values.map(|(v, c)| (v.clone(), c)).collect()))
                .collect();
            (idx.series.values().cloned().collect(), pairs)
        };
        let mut out = Cardinality {
            series: series.len() as u64,
            chunks: series.iter().map(|s| s.chunk_count() as u64).sum(),
            ..Cardinality::default()
        };
        let top = |mut v: Vec<(String, u64)>| {
            v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(n);
            v
        };
        let mut by_pair: Vec<(&Symbol, &Symbol, u64)> = Vec::new();
        let (mut values_by_name, mut bytes_by_name, mut by_metric) = (Vec::new(), Vec::new(), Vec::new());
        for (name, values) in &pairs {
            out.label_pairs += values.len() as u64;
            values_by_name.push((name.to_string(), values.len() as u64));
            bytes_by_name.push((name.to_string(), values.iter().map(|(v, _)| v.len() as u64).sum()));
            if &**name == crate::labels::METRIC_NAME {
                by_metric.extend(values.iter().map(|(v, c)| (v.to_string(), *c as u64)));
            }
            by_pair.extend(values.iter().map(|(v, c)| (name, v, *c as u64)));
        }
        // Only the top `n` pairs are formatted.
        if by_pair.len() > n && n > 0 {
            by_pair.select_nth_unstable_by(n - 1, |a, b| b.2.cmp(&a.2));
        }
        by_pair.truncate(n);
        out.series_by_label_pair = top(by_pair.into_iter().map(|(k, v, c)| (format!("{k}={v}"), c)).collect());
        out.series_by_metric = top(by_metric);
        out.values_by_label_name = top(values_by_name);
        out.bytes_by_label_name = top(bytes_by_name);
        out
    }

    /// What the head holds.
    pub fn stats(&self) -> HeadStats {
        HeadStats {
            series: self.index.read().series.len() as u64,
            samples: self.samples.load(Ordering::Relaxed),
            min_t: self.min_t.load(Ordering::Relaxed),
            max_t: self.max_t.load(Ordering::Relaxed),
        }
    }

    /// How many series match `matchers` (from the postings; nothing decoded or sorted).
    pub fn matching_count(&self, matchers: &[Matcher]) -> usize {
        self.index.read().postings.select(matchers).len()
    }

    /// The series matching `matchers`, sorted by labels.
    pub fn matching_series(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        let idx = self.index.read();
        let refs = idx.postings.select(matchers);
        let mut out: Vec<Arc<MemSeries>> = refs.iter().filter_map(|r| idx.series.get(r).cloned()).collect();
        drop(idx);
        out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Series matching `matchers` with their samples in `[mint, maxt]`.
    pub fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<Series> {
        let one = |s: &Arc<MemSeries>| {
            let snap = s.snapshot(&self.chunks, mint, maxt);
            let mut samples: Vec<Sample> = Vec::new();
            snap.decode_into(mint, maxt, &mut samples);
            (!samples.is_empty()).then(|| Series {
                labels: s.labels.clone(),
                starts: snap.starts_of(&samples),
                samples,
            })
        };
        crate::map_series(&self.matching_series(matchers), one)
            .into_iter()
            .flatten()
            .collect()
    }

    /// [`Head::select`], but only samples no block holds yet (late ones, for ranges that blocks
    /// and rollups already cover).
    pub fn select_unwritten(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<Series> {
        let mut out = Vec::new();
        for s in self.matching_series(matchers) {
            let (samples, starts) = s.unwritten_in(&self.chunks, mint, maxt);
            if !samples.is_empty() {
                out.push(Series {
                    labels: s.labels.clone(),
                    samples,
                    starts,
                });
            }
        }
        out
    }

    /// Label sets of matching series that have samples overlapping `[mint, maxt]`.
    pub fn series_labels(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<Labels> {
        self.matching_series(matchers)
            .into_iter()
            .filter(|s| s.time_range().is_some_and(|(lo, hi)| lo <= maxt && hi >= mint))
            .map(|s| s.labels.clone())
            .collect()
    }

    /// Sorted label names (of all series when `matchers` is empty).
    pub fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String> {
        if matchers.is_empty() && self.covers(mint, maxt) {
            return self.index.read().postings.names();
        }
        crate::storage::names_of(&self.series_labels(matchers, mint, maxt))
    }

    /// Sorted values of `name`.
    pub fn label_values(&self, name: &str, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String> {
        if matchers.is_empty() && self.covers(mint, maxt) {
            return self.index.read().postings.values(name);
        }
        crate::storage::values_of(name, &self.series_labels(matchers, mint, maxt))
    }

    /// Whether `[mint, maxt]` covers every sample of the head, so the whole index answers.
    fn covers(&self, mint: Timestamp, maxt: Timestamp) -> bool {
        let s = self.stats();
        mint <= s.min_t && maxt >= s.max_t
    }
}

fn find(idx: &Index, hash: u64, labels: &Labels) -> Option<SeriesRef> {
    let is = |r: &SeriesRef| idx.series.get(r).is_some_and(|s| s.labels == *labels);
    let first = *idx.by_hash.get(&hash)?;
    if is(&first) {
        return Some(first);
    }
    idx.collisions.get(&hash)?.iter().copied().find(is)
}

/// Drops `r` from the hash lookup (a collision moves up in its place).
fn forget_hash(idx: &mut Index, r: SeriesRef, hash: u64) {
    if idx.by_hash.get(&hash) == Some(&r) {
        let next = idx.collisions.get_mut(&hash).and_then(Vec::pop);
        match next {
            Some(other) => {
                idx.by_hash.insert(hash, other);
            }
            None => {
                idx.by_hash.remove(&hash);
            }
        }
    } else if let Some(list) = idx.collisions.get_mut(&hash) {
        list.retain(|&x| x != r);
    }
    if idx.collisions.get(&hash).is_some_and(Vec::is_empty) {
        idx.collisions.remove(&hash);
    }
}

/// `labels` with every name and value replaced by the head's shared copy.
fn intern(symbols: &mut FxHashSet<Symbol>, labels: &Labels) -> Labels {
    let mut one = |s: &Symbol| match symbols.get(s.as_str()) {
        Some(shared) => shared.clone(),
        None => {
            symbols.insert(s.clone());
            s.clone()
        }
    };
    let interned = labels
        .iter()
        .map(|l| Label {
            name: one(&l.name),
            value: one(&l.value),
        })
        .collect();
    Labels::from_sorted(interned)
}

fn insert(idx: &mut Index, r: SeriesRef, hash: u64, labels: &Labels, logged: bool) {
    let labels = intern(&mut idx.symbols, labels);
    idx.postings.add(r, &labels);
    match idx.by_hash.entry(hash) {
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(r);
        }
        std::collections::hash_map::Entry::Occupied(_) => idx.collisions.entry(hash).or_default().push(r),
    }
    let series = MemSeries::new(labels, logged);
    if let Some(newest) = idx.collected.remove(&hash) {
        series.restore_newest(newest);
    }
    idx.series.insert(r, Arc::new(series));
    idx.next_ref = idx.next_ref.max(r.saturating_add(1));
}

impl crate::storage::SeriesReader for Head {
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> crate::error::Result<Vec<Series>> {
        Ok(Head::select(self, matchers, mint, maxt))
    }

    fn series_labels(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<Labels> {
        Head::series_labels(self, matchers, mint, maxt)
    }

    fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String> {
        Head::label_names(self, matchers, mint, maxt)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String> {
        Head::label_values(self, name, matchers, mint, maxt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_maps_a_second_reference_of_the_same_labels_to_the_first() {
        // A collected series taken again under a new reference, and a crash before the
        // checkpoint: the WAL names it twice.
        let head = Head::default();
        let a = Labels::from_pairs([("__name__", "x"), ("route", "a")]);
        assert!(head.create_with_ref(3, &a));
        assert!(head.create_with_ref(9, &a));
        head.append_batch(&[(3, 10, 1.0), (9, 20, 2.0)], &[], |_, o| assert!(o.is_some()));
        assert_eq!(head.stats().series, 1);
        let got = head.select(&[Matcher::equal("route", "a")], i64::MIN, i64::MAX);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples.len(), 2);
        assert_eq!(head.get_or_create(&Labels::from_pairs([("__name__", "y")])).0, 10);
    }
    use crate::labels::MatchOp;

    #[test]
    fn create_append_select() {
        let h = Head::default();
        let a = Labels::from_pairs([("__name__", "x"), ("k", "a")]);
        let b = Labels::from_pairs([("__name__", "x"), ("k", "b")]);
        let (ra, created) = h.get_or_create(&a);
        assert!(created);
        assert_eq!(h.get_or_create(&a), (ra, false));
        let (rb, _) = h.get_or_create(&b);
        let mut outcomes = Vec::new();
        h.append_batch(
            &[(ra, 10, 1.0), (rb, 10, 2.0), (ra, 5, 0.0), (999, 1, 1.0)],
            &[],
            |_, o| {
                outcomes.push(o.map(|(_, o)| o));
            },
        );
        assert_eq!(
            outcomes,
            vec![
                Some(AppendOutcome::Appended),
                Some(AppendOutcome::Appended),
                Some(AppendOutcome::OutOfOrder),
                None
            ]
        );
        let m = Matcher::new(MatchOp::Regex, "k", "a|b").expect("valid");
        let got = h.select(&[m], 0, 100);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].labels, a);
        assert_eq!(got[1].samples, vec![Sample { t: 10, v: 2.0 }]);
        assert_eq!(h.label_values("k", &[], i64::MIN, i64::MAX), vec!["a", "b"]);
        let s = h.stats();
        assert_eq!((s.series, s.samples, s.min_t, s.max_t), (2, 2, 10, 10));
    }
}
