//! The store as a whole: a data directory with a write-ahead log and the in-memory head.
//!
//! Writers batch samples in an [`Appender`] and [`Appender::commit`] them: the head takes the
//! samples and one WAL write makes them durable, together with any source marks (for example
//! Kafka offsets) so that a restart knows exactly which input the stored samples cover.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

pub use crate::appender::Appender;
use crate::block::Block;
use crate::error::{Error, Result};

use crate::head::{AppendOutcome, ChunkStore, Head, HeadStats, MemSeries};
use crate::labels::{Labels, Matcher};
use crate::rollup::{self, RESOLUTIONS};
use crate::storage::{Queryable, RollupRead, Sample, Selected, Series, SeriesReader, Timestamp};
use crate::wal::record::{Deletion, Mark, Record};
use crate::wal::{DEFAULT_SEGMENT_SIZE, ReplayStats, Wal};

/// How a store is opened.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Size at which the WAL moves to a new segment file.
    pub wal_segment_size: u64,
    /// Time span of a block cut from the head; the head keeps about one and a half of them.
    pub block_range_ms: i64,
    /// Bytes of a segment of closed head chunks (written to `chunks_head/` when full).
    pub head_chunk_segment_size: usize,
    /// Blocks whose newest sample is older than this (behind the newest sample) are deleted.
    pub retention_ms: Option<i64>,
    /// Oldest blocks are deleted while blocks and WAL together take more bytes than this.
    pub max_bytes: Option<u64>,
    /// Whether blocks get 1 m and 5 m rollups ([`crate::rollup`]).
    pub rollups: bool,
    /// Retention of the rollups, per resolution of [`RESOLUTIONS`] (`None`: kept until the size
    /// limit needs the room).
    pub rollup_retention_ms: [Option<i64>; RESOLUTIONS.len()],
}

/// Two hours, as Prometheus: about 720 samples of a 10 s series, six full chunks.
pub const DEFAULT_BLOCK_RANGE_MS: i64 = 2 * 3_600_000;

impl Default for Options {
    fn default() -> Self {
        Options {
            wal_segment_size: DEFAULT_SEGMENT_SIZE,
            block_range_ms: DEFAULT_BLOCK_RANGE_MS,
            head_chunk_segment_size: crate::head::DEFAULT_CHUNK_SEGMENT_SIZE,
            retention_ms: None,
            max_bytes: None,
            rollups: true,
            rollup_retention_ms: [None; RESOLUTIONS.len()],
        }
    }
}

/// What a commit did with its samples.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Samples stored.
    pub appended: u64,
    /// Samples identical to the newest one of their series (no-ops).
    pub duplicate: u64,
    /// Samples older than the newest one of their series, rejected.
    pub out_of_order: u64,
    /// Samples with the newest timestamp of their series but another value, rejected.
    pub conflict: u64,
    /// Samples for a reference the head does not know, rejected.
    pub unknown_series: u64,
}

impl CommitStats {
    pub(crate) fn count(&mut self, outcome: Option<AppendOutcome>) {
        match outcome {
            Some(AppendOutcome::Appended) => self.appended += 1,
            Some(AppendOutcome::Duplicate) => self.duplicate += 1,
            Some(AppendOutcome::OutOfOrder) => self.out_of_order += 1,
            Some(AppendOutcome::Conflict) => self.conflict += 1,
            None => self.unknown_series += 1,
        }
    }

    /// Samples that were rejected (duplicates are not rejections).
    pub fn rejected(&self) -> u64 {
        self.out_of_order + self.conflict + self.unknown_series
    }
}

/// Running totals since the store was opened, for self-telemetry.
#[derive(Debug, Default)]
pub struct DbCounters {
    /// Samples appended by commits.
    pub appended: AtomicU64,
    /// Samples rejected because they were out of order.
    pub out_of_order: AtomicU64,
    /// Samples rejected for a conflicting value at an existing timestamp.
    pub conflict: AtomicU64,
    /// Commits written.
    pub commits: AtomicU64,
    /// Blocks cut from the head.
    pub blocks_cut: AtomicU64,
    /// Blocks written by compaction.
    pub compactions: AtomicU64,
    /// Blocks deleted by retention.
    pub blocks_retired: AtomicU64,
    /// WAL checkpoints written.
    pub checkpoints: AtomicU64,
    /// Rollup blocks written.
    pub rollups: AtomicU64,
    /// Series removed from the head once their samples were all in blocks.
    pub series_collected: AtomicU64,
    /// Maintenance rounds finished (with or without an error).
    pub maintenance_rounds: AtomicU64,
}

/// A list of blocks, oldest first; readers take a copy.
pub(crate) type BlockList = RwLock<Vec<Arc<Block>>>;

/// `[from, to)` time spans, in order and apart.
type Spans = Vec<(Timestamp, Timestamp)>;

/// An embedded time-series store.
#[derive(Debug)]
pub struct Db {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) opts: Options,
    pub(crate) head: Arc<Head>,
    pub(crate) wal: Mutex<Option<Wal>>,
    pub(crate) marks: RwLock<BTreeMap<String, Vec<u8>>>,
    /// Blocks on disk, oldest first; queries take a copy of the list.
    pub(crate) blocks: BlockList,
    /// Rollup blocks per resolution of [`RESOLUTIONS`], oldest first.
    pub(crate) rollups: [BlockList; RESOLUTIONS.len()],
    /// Serializes maintenance (cutting blocks, compaction, retention).
    pub(crate) maintenance: Mutex<()>,
    /// Deletes logged whose blocks are not all rewritten yet (a failure or a crash came
    /// between); finished before any other maintenance, and their records stay in the WAL
    /// until then.
    pub(crate) pending_deletes: Mutex<Vec<Deletion>>,
    /// Bumped under the write lock of a block list, before it changes: a query whose plan
    /// and reads straddle a change plans again ([`Db::select_planned`]).
    pub(crate) relisted: AtomicU64,
    counters: DbCounters,
    replay: ReplayStats,
    /// Held for the life of the store so that two processes never write one directory.
    _lock: Option<File>,
}

impl Db {
    /// Opens (or creates) the store in `dir`, replaying its WAL.
    pub fn open(dir: &Path, opts: Options) -> Result<Db> {
        fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(Error::Locked(dir.to_owned())),
            Err(fs::TryLockError::Error(e)) => return Err(Error::io("lock", &lock_path)(e)),
        }
        let blocks = crate::block::open_all(&dir.join("blocks"))?;
        // Rollups of raw blocks that compaction or a delete replaced (a crash came before their
        // own replacements were written) are deleted; the next maintenance writes new ones.
        let replaced: std::collections::HashSet<&str> = blocks
            .iter()
            .flat_map(|b| b.meta().sources.iter().map(String::as_str))
            .collect();
        let mut rollups = Vec::with_capacity(RESOLUTIONS.len());
        for r in RESOLUTIONS {
            let (stale, kept): (Vec<Block>, Vec<Block>) = crate::block::open_all(&rollups_dir(dir, r))?
                .into_iter()
                .partition(|b| b.meta().sources.first().is_some_and(|s| replaced.contains(s.as_str())));
            for b in &stale {
                tracing::info!(rollup = %b.meta().id, "removing a rollup whose raw block was replaced");
                crate::compact::remove_block(b)?;
            }
            rollups.push(RwLock::new(kept.into_iter().map(Arc::new).collect()));
        }
        let rollups: [BlockList; RESOLUTIONS.len()] = rollups
            .try_into()
            .unwrap_or_else(|_| unreachable!("one list per resolution"));
        let chunks = ChunkStore::open(&dir.join("chunks_head"), opts.head_chunk_segment_size)?;
        let head = Head::with_chunks(chunks);
        let mut marks = BTreeMap::new();
        let mut replayed = CommitStats::default();
        let mut deletes = Vec::new();
        let (wal, replay) = Wal::open(&dir.join("wal"), opts.wal_segment_size, |rec| {
            apply_record(&head, &mut marks, &mut replayed, &mut deletes, rec)
        })?;
        // What the blocks hold is written: the head's copies of it (a checkpoint keeps each
        // series' newest sample; segments replayed after a checkpoint may hold samples a block
        // took since) are dropped from the head and not cut again. Oldest blocks first, and
        // only those that reach the head's oldest sample (older ones cannot hold a copy).
        let head_min = head.stats().min_t;
        let mut dropped = 0;
        for b in blocks.iter().filter(|b| b.meta().max_t >= head_min) {
            for (i, labels, newest) in b.newest_per_series() {
                if let Some(s) = head.find(&labels) {
                    dropped += s.mark_written(head.chunks(), written_through(head.chunks(), b, i, &s, newest));
                }
            }
        }
        // Series the blocks hold that the head does not (a previous process collected them),
        // or names without a sample (its newest was kept only to order appends), keep their
        // newest sample's time and value, so that if they come back they still refuse older
        // samples: every raw block, newest first, one chunk decoded per such series.
        for b in blocks.iter().rev() {
            for (i, labels, newest) in b.newest_per_series() {
                match head.find(&labels) {
                    Some(s) if s.last().is_none() => {
                        if let Ok(Some(last)) = b.last_sample(i) {
                            s.restore_newest(crate::head::Newest {
                                t: last.t,
                                v: last.v,
                                deleted: false,
                            });
                        }
                    }
                    Some(_) => {}
                    None if head.collected_newest(&labels).is_none_or(|t| t < newest) => {
                        if let Ok(Some(last)) = b.last_sample(i) {
                            head.remember_collected(&labels, last.t, last.v);
                        }
                    }
                    None => {}
                }
            }
        }
        head.note_written(dropped, i64::MIN);
        // Replay closed chunks the blocks already hold, and deletes in the WAL dropped series:
        // the segments no series refers to go.
        head.sweep_chunks();
        if replayed.rejected() > 0 {
            tracing::warn!(?replayed, "WAL replay rejected some samples");
        }
        let stats = head.stats();
        tracing::info!(dir = %dir.display(), series = stats.series, samples = stats.samples,
            blocks = blocks.len(), checkpoint = ?replay.checkpoint, segments = replay.segments,
            records = replay.records, "store opened");
        let db = Db {
            dir: Some(dir.to_owned()),
            opts,
            head: Arc::new(head),
            wal: Mutex::new(Some(wal)),
            marks: RwLock::new(marks),
            blocks: RwLock::new(blocks.into_iter().map(Arc::new).collect()),
            rollups,
            maintenance: Mutex::new(()),
            relisted: AtomicU64::new(0),
            pending_deletes: Mutex::new(deletes),
            counters: DbCounters::default(),
            replay,
            _lock: Some(lock),
        };
        // A delete the WAL logged but did not see through (a crash came first) is finished
        // now; if that fails too, maintenance retries it before anything else.
        if !db.pending_deletes.lock().is_empty() {
            let _one = db.maintenance.lock();
            match db.finish_deletes() {
                Ok(n) => tracing::info!(series = n.len(), "finished a delete the WAL logged before a crash"),
                Err(e) => tracing::warn!(error = %e, "could not finish a logged delete; maintenance retries it"),
            }
        }
        Ok(db)
    }

    /// A store without a directory: nothing is persisted. For tests and scratch evaluation.
    pub fn in_memory() -> Db {
        Db {
            dir: None,
            opts: Options::default(),
            head: Arc::new(Head::default()),
            wal: Mutex::new(None),
            marks: RwLock::new(BTreeMap::new()),
            blocks: RwLock::new(Vec::new()),
            rollups: Default::default(),
            maintenance: Mutex::new(()),
            relisted: AtomicU64::new(0),
            pending_deletes: Mutex::new(Vec::new()),
            counters: DbCounters::default(),
            replay: ReplayStats::default(),
            _lock: None,
        }
    }

    /// The data directory, if the store has one.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// A new batch of appends.
    pub fn appender(&self) -> Appender<'_> {
        Appender::new(self)
    }

    /// The in-memory head.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// What the head holds.
    pub fn stats(&self) -> HeadStats {
        self.head.stats()
    }

    /// The head's closed chunks: bytes in memory and in files, records found damaged.
    pub fn head_chunks(&self) -> crate::head::ChunkStats {
        self.head.chunks().stats()
    }

    /// Running totals since open.
    pub fn counters(&self) -> &DbCounters {
        &self.counters
    }

    /// What the WAL replay at open found.
    pub fn replay_stats(&self) -> &ReplayStats {
        &self.replay
    }

    /// The newest committed value of a source mark.
    pub fn mark(&self, key: &str) -> Option<Vec<u8>> {
        self.marks.read().get(key).cloned()
    }

    /// All committed source marks whose key starts with `prefix`.
    pub fn marks_with_prefix(&self, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        self.marks
            .read()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The newest sample of every series matching `matchers`, as (labels, newest sample, newest
    /// sample that is not a staleness marker); series without samples are left out.
    pub fn last_samples(&self, matchers: &[Matcher]) -> Vec<(Labels, Sample, Option<Sample>)> {
        self.head
            .matching_series(matchers)
            .into_iter()
            .filter_map(|s| {
                let (last, last_value) = s.last_sample();
                last.map(|l| (s.labels.clone(), l, last_value))
            })
            .collect()
    }

    /// Forces everything written so far to stable storage.
    pub fn sync(&self) -> Result<()> {
        match self.wal.lock().as_mut() {
            Some(wal) => wal.sync(),
            None => Ok(()),
        }
    }
}

/// How far the head's samples of series `s` are in block `b` (its series `i`, newest sample
/// at `newest`): through `newest`, unless the head holds a sample older than that which the
/// block lacks (appended late, after a block for its range was cut, and replayed from the WAL
/// before a block took it): then only up to just before it, so that it is cut again (the
/// block's copies of the samples after it merge away).
/// A block whose chunks cannot be read there counts as holding none of them.
fn written_through(
    chunks: &ChunkStore,
    b: &crate::block::Block,
    i: usize,
    s: &MemSeries,
    newest: Timestamp,
) -> Timestamp {
    let Some(oldest) = s.oldest_unwritten().filter(|&t| t < newest) else {
        return newest;
    };
    let held: rustc_hash::FxHashSet<Timestamp> = match b.times_in(i, oldest, newest) {
        Ok(times) => times.into_iter().collect(),
        Err(e) => {
            tracing::warn!(block = %b.meta().id, error = %e, "cannot read a block's samples: the head keeps its own");
            return oldest.saturating_sub(1);
        }
    };
    let (mine, _) = s.unwritten_in(chunks, oldest, newest);
    mine.iter()
        .find(|x| !held.contains(&x.t))
        .map_or(newest, |x| x.t.saturating_sub(1))
}

/// Applies one replayed WAL record to the head.
fn apply_record(
    head: &Head,
    marks: &mut BTreeMap<String, Vec<u8>>,
    stats: &mut CommitStats,
    deletes: &mut Vec<Deletion>,
    rec: Record,
) -> std::result::Result<(), String> {
    match rec {
        Record::Series(series) => {
            for (r, labels) in series {
                if !head.create_with_ref(r, &labels) {
                    return Err(format!("series reference {r} reused for different labels"));
                }
            }
        }
        Record::Samples {
            marks: m,
            samples,
            starts,
        } => {
            head.append_batch(&samples, &starts, |_, o| stats.count(o.map(|(_, o)| o)));
            for Mark { key, value } in m {
                marks.insert(key, value);
            }
        }
        Record::Delete(d) => {
            // Exactly what the live store did: the samples logged before the record go.
            head.delete_matching(&d.sets);
            deletes.push(d);
        }
    }
    Ok(())
}

impl Db {
    /// Asks the head, then every block overlapping `[mint, maxt]` (oldest first), with `f`;
    /// with `rollups`, the rollup blocks overlapping it too.
    /// The head goes first and the block list is taken after it: a block cut meanwhile is
    /// published before the head drops its samples, so they are then read in both (and merged
    /// away), never in neither.
    fn ask<T>(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
        rollups: bool,
        f: impl Fn(&dyn SeriesReader) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = vec![f(&*self.head)?];
        let tiers = if rollups { &self.rollups[..] } else { &[] };
        let blocks: Vec<Arc<Block>> = std::iter::once(&self.blocks)
            .chain(tiers)
            .flat_map(|list| {
                list.read()
                    .iter()
                    .filter(|b| b.overlaps(mint, maxt))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        for b in &blocks {
            out.push(f(&**b)?);
        }
        Ok(out)
    }

    /// The rollup blocks of resolution `RESOLUTIONS[tier]` overlapping `[mint, maxt]`.
    fn rollup_blocks(&self, tier: usize, mint: Timestamp, maxt: Timestamp) -> Vec<Arc<Block>> {
        self.rollups[tier]
            .read()
            .iter()
            .filter(|b| b.overlaps(mint, maxt))
            .cloned()
            .collect()
    }

    /// Where raw samples are gone, as `[from, to)` spans (the ranges of rollups standing
    /// alone: their raw block deleted past its retention or for space), and what each tier
    /// (raw, then the rollups) covers, for [`rollup::plan`]: raw samples everything but where
    /// they are gone; a rollup tier its blocks' ranges (with gaps where a raw block got no
    /// rollup of it: it would not have been much smaller).
    ///
    /// Read from one state of all the lists, locked together in the order maintenance locks
    /// them to replace blocks ([`Db::publish`]): seen midway, a merged block's new rollup
    /// would look as if it stood alone.
    fn tier_spans(&self) -> (Spans, Vec<Spans>) {
        let raw = self.blocks.read();
        let rollups: Vec<_> = self.rollups.iter().map(|list| list.read()).collect();
        let ids: std::collections::HashSet<&str> = raw.iter().map(|b| b.meta().id.as_str()).collect();
        let span = |b: &Arc<Block>| (b.meta().min_t, b.meta().end);
        let alone = rollups
            .iter()
            .flat_map(|list| list.iter())
            .filter(|b| b.meta().sources.first().is_none_or(|s| !ids.contains(s.as_str())))
            .map(span)
            .collect();
        let gone = rollup::merge_spans(alone);
        let cover = std::iter::once(rollup::complement(&gone))
            .chain(
                rollups
                    .iter()
                    .map(|list| rollup::merge_spans(list.iter().map(span).collect())),
            )
            .collect();
        (gone, cover)
    }

    /// Series from the raw tier (head and raw blocks) in `[mint, maxt]`, merged per series.
    fn select_raw(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<Series>> {
        let mut parts = self.ask(mint, maxt, false, |p| p.select(matchers, mint, maxt))?;
        if parts.len() == 1 {
            return Ok(parts.pop().unwrap_or_default());
        }
        Ok(merge_series(parts))
    }
}

/// Series from several parts merged per label set: samples in time order, one per timestamp.
fn merge_series(parts: Vec<Vec<Series>>) -> Vec<Series> {
    let mut merged: BTreeMap<Labels, Series> = BTreeMap::new();
    for s in parts.into_iter().flatten() {
        match merged.get_mut(&s.labels) {
            Some(acc) => acc.absorb(s),
            None => {
                merged.insert(s.labels.clone(), s);
            }
        }
    }
    merged
        .into_values()
        .map(|mut s| {
            s.sort_dedup();
            s
        })
        .collect()
}

/// Where the rollups of resolution `r` live.
pub(crate) fn rollups_dir(dir: &Path, r: i64) -> PathBuf {
    dir.join("rollups").join(rollup::resolution_name(r))
}

/// Sorted union of string lists.
fn union(lists: impl IntoIterator<Item = Vec<String>>) -> Vec<String> {
    let mut lists = lists.into_iter();
    let mut out = lists.next().unwrap_or_default();
    let mut merged = false;
    for l in lists {
        out.extend(l);
        merged = true;
    }
    if merged {
        out.sort_unstable();
        out.dedup();
    }
    out
}

impl Db {
    /// Series matching `matchers` in `[mint, maxt]`, read at resolution `want` (0 for raw, else
    /// one of [`RESOLUTIONS`]) where rollups of it cover the range, and from finer, then
    /// coarser, tiers elsewhere, none coarser than `max` ([`rollup::plan`]).
    pub fn select_tiers(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        want: i64,
        max: i64,
    ) -> Result<Vec<Series>> {
        self.select_planned(matchers, mint, maxt, want, max).map(|s| s.series)
    }

    /// [`Db::select_tiers`], saying which ranges rollups answered.
    ///
    /// The plan and the reads see the block lists at different moments: a merge or a retention
    /// delete between them could take away blocks the plan counted on. Then it plans and
    /// reads again (maintenance rounds are minutes apart, so a second try is the most it
    /// takes; after a few the answer stands).
    fn select_planned(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        want: i64,
        max: i64,
    ) -> Result<Selected> {
        for _ in 0..3 {
            let epoch = self.relisted.load(Ordering::SeqCst);
            let selected = self.select_planned_once(matchers, mint, maxt, want, max)?;
            if self.relisted.load(Ordering::SeqCst) == epoch {
                return Ok(selected);
            }
        }
        self.select_planned_once(matchers, mint, maxt, want, max)
    }

    fn select_planned_once(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        want: i64,
        max: i64,
    ) -> Result<Selected> {
        let want = RESOLUTIONS.iter().position(|&r| r == want).map_or(0, |i| i + 1);
        let (gone, mut cover) = self.tier_spans();
        for (c, r) in cover.iter_mut().skip(1).zip(RESOLUTIONS) {
            if r > max {
                c.clear();
            }
        }
        let plan = rollup::plan(mint, maxt, want, &cover);
        if let [(0, a, b)] = plan[..] {
            return Ok(Selected {
                series: self.select_raw(matchers, a, b)?,
                rollups: Vec::new(),
            });
        }
        let mut parts = Vec::with_capacity(plan.len());
        let mut rollups = Vec::new();
        for (tier, a, b) in plan {
            if tier == 0 {
                parts.push(self.select_raw(matchers, a, b)?);
                continue;
            }
            // Beside the rollups: where raw samples are gone, whatever raw samples came since
            // (late ones, in the head or a block cut from it); elsewhere the rollups stand for
            // the raw blocks, and only late samples no block holds yet are added.
            for (x, y, is_gone) in rollup::split(a, b, &gone) {
                if is_gone {
                    parts.push(self.select_raw(matchers, x, y)?);
                } else {
                    parts.push(self.head.select_unwritten(matchers, x, y));
                }
            }
            let blocks = self.rollup_blocks(tier - 1, a, b);
            if !blocks.is_empty() {
                rollups.push(RollupRead {
                    resolution_ms: RESOLUTIONS[tier - 1],
                    from: a,
                    to: b,
                });
            }
            for block in blocks {
                parts.push(block.select(matchers, a, b)?);
            }
        }
        Ok(Selected {
            series: merge_series(parts),
            rollups,
        })
    }
}

impl Queryable for Db {
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<Series>> {
        self.select_tiers(matchers, mint, maxt, 0, i64::MAX)
    }

    fn select_hinted(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        hints: &rollup::SelectHints,
    ) -> Result<Selected> {
        // Refused before anything is decoded: the head alone, or any one block, already holds
        // more matching series than allowed.
        if hints.max_series > 0 {
            let over = |n: usize| n > hints.max_series;
            let blocks = self.blocks.read().clone();
            if over(self.head.matching_count(matchers))
                || blocks
                    .iter()
                    .any(|b| b.overlaps(mint, maxt) && over(b.matching_count(matchers)))
            {
                return Err(crate::Error::TooManySeries(hints.max_series));
            }
        }
        self.select_planned(matchers, mint, maxt, hints.resolution(), hints.source.coarsest())
    }

    fn series(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<Labels>> {
        let parts = self.ask(mint, maxt, true, |p| Ok(p.series_labels(matchers, mint, maxt)))?;
        let many = parts.len() > 1;
        let mut out: Vec<Labels> = parts.into_iter().flatten().collect();
        if many {
            out.sort_unstable();
            out.dedup();
        }
        Ok(out)
    }

    fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<String>> {
        let parts = self.ask(mint, maxt, true, |p| Ok(p.label_names(matchers, mint, maxt)))?;
        Ok(union(parts))
    }

    fn label_values(&self, name: &str, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<String>> {
        let parts = self.ask(mint, maxt, true, |p| Ok(p.label_values(name, matchers, mint, maxt)))?;
        Ok(union(parts))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(wal) = self.wal.get_mut().as_mut()
            && let Err(e) = wal.sync()
        {
            tracing::error!(error = %e, "syncing the WAL on close failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Sample;

    fn labels(v: &str) -> Labels {
        Labels::from_pairs([("__name__", "req"), ("svc", v)])
    }

    #[test]
    fn samples_and_marks_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = Db::open(dir.path(), Options::default()).expect("open");
            let mut app = db.appender();
            let r = app.append(&labels("a"), 1000, 1.0).expect("append");
            app.append(&labels("b"), 1000, 5.0).expect("append");
            app.mark("kafka/t/0", 7u64.to_le_bytes());
            app.commit().expect("commit");
            let mut app = db.appender();
            app.append_ref(r, 2000, 2.0);
            app.append_ref(r, 1500, 9.0);
            let stats = app.commit().expect("commit");
            assert_eq!((stats.appended, stats.out_of_order), (1, 1));
        }
        let db = Db::open(dir.path(), Options::default()).expect("reopen");
        let got = db
            .select(&[Matcher::equal("__name__", "req")], 0, 10_000)
            .expect("select");
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].samples,
            vec![Sample { t: 1000, v: 1.0 }, Sample { t: 2000, v: 2.0 }]
        );
        assert_eq!(got[1].samples, vec![Sample { t: 1000, v: 5.0 }]);
        assert_eq!(db.mark("kafka/t/0"), Some(7u64.to_le_bytes().to_vec()));
        // New series after reopen get fresh references.
        let mut app = db.appender();
        app.append(&labels("c"), 3000, 1.0).expect("append");
        app.commit().expect("commit");
        assert_eq!(db.stats().series, 3);
    }

    #[test]
    fn a_failed_wal_write_changes_nothing_and_can_be_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = Db::open(dir.path(), Options::default()).expect("open");
            let commit = |t: Timestamp| {
                let mut app = db.appender();
                app.append(&labels("a"), t, 1.0).expect("append");
                app.mark("src", vec![t as u8]);
                app.commit()
            };
            db.wal.lock().as_mut().expect("wal").fail_next_write = true;
            assert!(commit(1000).is_err());
            assert_eq!(db.stats().samples, 0, "the head did not take the samples");
            assert_eq!(db.mark("src"), None);
            assert_eq!(commit(1000).expect("retry").appended, 1);
        }
        // The series record and the samples were logged by the retry.
        let db = Db::open(dir.path(), Options::default()).expect("reopen");
        let got = db
            .select(&[Matcher::equal("__name__", "req")], 0, 10_000)
            .expect("select");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples, vec![Sample { t: 1000, v: 1.0 }]);
        assert_eq!(db.mark("src"), Some(vec![232]));
    }

    #[test]
    fn directory_is_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _db = Db::open(dir.path(), Options::default()).expect("open");
        assert!(matches!(
            Db::open(dir.path(), Options::default()),
            Err(Error::Locked(_))
        ));
    }

    #[test]
    fn invalid_labels_are_rejected() {
        let db = Db::in_memory();
        let mut app = db.appender();
        assert!(app.append(&Labels::empty(), 0, 1.0).is_err());
        assert!(app.append(&Labels::from_pairs([("1x", "a")]), 0, 1.0).is_err());
    }
}
