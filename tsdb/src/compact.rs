//! Maintenance of the store's files: cutting blocks from the head (and checkpointing the WAL
//! behind them), compacting blocks into larger ones, and retention by age and size.
//!
//! ```text
//! head ── older than 1.5 block ranges ──> block (level 1) ──> WAL checkpoint, old segments gone
//! blocks in one 6 h window ──> one block (level 2);  blocks in one 24 h window ──> level 3
//! every raw block ──> its 1 m and 5 m rollups; past the raw retention, rollups in one week
//!   (1 m) or four weeks (5 m) ──> one rollup block
//! oldest blocks deleted past the retention time or the size limit
//! ```
//!
//! Every step writes its new files completely before it removes anything, so a crash at any
//! point leaves either the old files or the new ones (and `Db::open` tidies up what is left).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::block::{Block, BlockMeta, BlockSeries, BlockSpec, write_block};
use crate::db::{BlockList, Db};
use crate::error::{Error, Result};
use crate::head::SeriesRef;
use crate::labels::{Labels, Matcher};
use crate::rollup::{self, RESOLUTIONS};
use crate::storage::{Series, SeriesReader, Timestamp};
use crate::wal::record::{self, Deletion, Mark};

/// Samples per WAL record in a checkpoint.
const CHECKPOINT_RECORD_SAMPLES: usize = 64 * 1024;

/// Samples gathered for one checkpoint record, with start times once one has had one.
#[derive(Default)]
struct CheckpointBatch {
    samples: Vec<(SeriesRef, Timestamp, f64)>,
    starts: Vec<Timestamp>,
}

impl CheckpointBatch {
    fn push(&mut self, r: SeriesRef, t: Timestamp, v: f64, st: Timestamp) {
        if st != 0 && self.starts.len() < self.samples.len() {
            self.starts.resize(self.samples.len(), 0);
        }
        self.samples.push((r, t, v));
        if st != 0 || !self.starts.is_empty() {
            self.starts.push(st);
        }
    }

    /// Writes the batch as one samples record and empties it.
    fn log(&mut self, cw: &mut crate::wal::CheckpointWriter<'_>) -> Result<()> {
        let mut buf = Vec::new();
        if self.starts.is_empty() {
            record::encode_samples(&[], &self.samples, &mut buf);
            cw.log(record::TYPE_SAMPLES, &buf)?;
        } else {
            record::encode_samples_with_starts(&[], &self.samples, &self.starts, &mut buf);
            cw.log(record::TYPE_SAMPLES_STARTS, &buf)?;
        }
        self.samples.clear();
        self.starts.clear();
        Ok(())
    }
}

/// Compaction windows, as multiples of the block range: the 2 h blocks of a 6 h window make
/// one, the 6 h blocks of a day another.
const COMPACTION_FACTORS: [i64; 2] = [3, 12];

/// Windows that rollups standing alone (their raw blocks gone past the raw retention) are
/// merged into, per resolution of [`RESOLUTIONS`]: a week of 1 m rollups, four weeks of 5 m
/// ones. A year of 5 m rollups is then 14 blocks to keep open, not one per day; their indexes
/// share one symbol table and one postings list per label pair.
const ROLLUP_WINDOWS_MS: [i64; RESOLUTIONS.len()] = [7 * DAY_MS, 28 * DAY_MS];

const DAY_MS: i64 = 24 * 3_600_000;

/// What one round of maintenance did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Blocks cut from the head.
    pub cut: usize,
    /// Blocks written by compaction.
    pub compacted: usize,
    /// Blocks deleted by retention.
    pub deleted: usize,
    /// Rollup blocks written.
    pub rollups: usize,
}

/// Which rollups [`Db::make_rollups`] writes for a raw block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rollups {
    /// Those that hold markedly fewer samples than the block ([`rollup::reduces`]): while the
    /// block stands, queries read it anyway unless asked for rollups.
    WhereTheyReduce,
    /// Every one whose retention keeps the block's range: the block is about to go.
    AllKept,
}

impl Db {
    /// Cuts blocks from the head while it spans more than one and a half block ranges,
    /// compacts blocks, and applies retention. Safe to call at any time from any thread (rounds
    /// are serialized); a store without a directory does nothing.
    pub fn maintain(&self) -> Result<MaintenanceReport> {
        self.maintain_with(false)
    }

    /// [`Db::maintain`], but every sample of the head goes into blocks, however recent: for an
    /// offline import of history. Samples added later for the same ranges make further blocks,
    /// which compaction merges.
    pub fn flush_to_blocks(&self) -> Result<MaintenanceReport> {
        self.maintain_with(true)
    }

    fn maintain_with(&self, everything: bool) -> Result<MaintenanceReport> {
        let Some(dir) = self.dir.clone() else {
            return Ok(MaintenanceReport::default());
        };
        let _one = self.maintenance.lock();
        let result = self.maintenance_round(&dir, everything);
        self.counters().maintenance_rounds.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// One round of [`Db::maintain`], under its lock.
    fn maintenance_round(&self, dir: &Path, everything: bool) -> Result<MaintenanceReport> {
        let mut report = MaintenanceReport::default();
        // While a logged delete cannot finish (a block it names cannot be read, say), nothing
        // is compacted or checkpointed: its record must outlive it, and the blocks it names
        // must stay as they are. Blocks are still cut, so the head's memory stays bounded.
        let unfinished = self.finish_deletes().err();
        if let Some(e) = &unfinished {
            tracing::error!(error = %e, "a logged delete cannot finish: no checkpoint or compaction until it does");
        }
        let blocks_dir = dir.join("blocks");
        report.cut = self.cut_head(&blocks_dir, everything)?;
        if report.cut > 0 && unfinished.is_none() {
            // Series whose samples are all in blocks now leave the head (under the WAL lock:
            // no commit appends to one meanwhile), and the checkpoint forgets them.
            let collected = {
                let _commits = self.wal.lock();
                self.head.collect_garbage()
            };
            self.counters()
                .series_collected
                .fetch_add(collected as u64, Ordering::Relaxed);
            self.checkpoint_wal()?;
        }
        if report.cut > 0 {
            // The chunks the cut wrote left their series: the segments only they were in go.
            self.head.sweep_chunks();
        }
        if unfinished.is_none() {
            report.compacted = self.compact_blocks(&blocks_dir)?;
        }
        report.rollups += self.make_missing_rollups()?;
        report.deleted = self.apply_retention(dir)?;
        if unfinished.is_none() {
            report.compacted += self.compact_rollups(dir)?;
        }
        let c = self.counters();
        c.blocks_cut.fetch_add(report.cut as u64, Ordering::Relaxed);
        c.compactions.fetch_add(report.compacted as u64, Ordering::Relaxed);
        c.blocks_retired.fetch_add(report.deleted as u64, Ordering::Relaxed);
        if report != MaintenanceReport::default() {
            tracing::info!(?report, blocks = self.blocks.read().len(), "store maintenance");
        }
        match unfinished {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Writes blocks for the oldest whole block ranges of the head: while the samples not yet
    /// in a block span one and a half ranges, the aligned range holding the oldest of them is
    /// written (every series' unwritten samples in it) and the chunks that end in it dropped.
    /// Late samples (a replay, a backfill) are taken as they come: their range may get a second
    /// block, and queries and compaction merge overlapping ones.
    fn cut_head(&self, blocks_dir: &Path, everything: bool) -> Result<usize> {
        let range = self.opts.block_range_ms;
        let mut cut = 0;
        loop {
            let newest = self.head.stats().max_t;
            let Some(oldest) = self.head.oldest_unwritten() else {
                return Ok(cut);
            };
            if !everything && newest.saturating_sub(oldest) < range / 2 * 3 {
                return Ok(cut);
            }
            let start = oldest.div_euclid(range) * range;
            let end = start.saturating_add(range);
            let mut series = self.head.all_series();
            series.sort_unstable_by(|a, b| a.1.labels.cmp(&b.1.labels));
            // Per series, the newest sample going into the block: everything up to it is in.
            let mut written: Vec<Option<Timestamp>> = Vec::with_capacity(series.len());
            // Each series' samples are decoded as the writer takes it, so a cut holds one
            // series' samples at a time, not the whole range's.
            let rows = series.iter().map(|(_, s)| {
                let samples = s.unwritten_before(self.head.chunks(), end);
                written.push(samples.last().map(|x| x.t));
                Ok(Series {
                    labels: s.labels.clone(),
                    starts: s.starts_of(&samples),
                    samples,
                })
            });
            let spec = BlockSpec {
                end,
                level: 1,
                ..BlockSpec::default()
            };
            if let Some(meta) = write_block(blocks_dir, rows, spec)? {
                let block = Arc::new(Block::open(&blocks_dir.join(&meta.id))?);
                self.relist(&self.blocks, &[], Some(block.clone()));
                // Its rollups too, before the head lets go: a late block's range may already
                // be read from rollups.
                self.make_rollups(&block, &[], Rollups::WhereTheyReduce)?;
            }
            // Listed first, dropped from the head second: a query meanwhile sees the samples
            // twice (and merges them), never not at all.
            let dropped = series
                .iter()
                .zip(&written)
                .filter_map(|((_, s), w)| w.map(|t| s.mark_written(self.head.chunks(), t)))
                .sum();
            self.head.note_written(dropped, end);
            cut += 1;
            if written.iter().all(Option::is_none) {
                // Nothing was left to write below `end` (the time scale's edge): stop.
                return Ok(cut);
            }
        }
    }

    /// Replaces the WAL with a checkpoint of what the head holds now: every series, their
    /// samples not yet in a block, and the newest value of every mark. Commits wait
    /// meanwhile.
    fn checkpoint_wal(&self) -> Result<()> {
        let mut wal = self.wal.lock();
        let Some(wal) = wal.as_mut() else { return Ok(()) };
        let mut series = self.head.all_series();
        series.sort_unstable_by_key(|s| s.0);
        let marks: Vec<Mark> = self
            .marks
            .read()
            .iter()
            .map(|(k, v)| Mark {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        let n = wal.checkpoint(|cw| {
            let refs: Vec<_> = series.iter().map(|(r, s)| (*r, &s.labels)).collect();
            let mut buf = Vec::new();
            record::encode_series(&refs, &mut buf);
            cw.log(record::TYPE_SERIES, &buf)?;
            buf.clear();
            record::encode_samples(&marks, &[], &mut buf);
            cw.log(record::TYPE_SAMPLES, &buf)?;
            let mut batch = CheckpointBatch::default();
            for (r, s) in &series {
                // A series whose samples are all in blocks keeps its newest one here too, so
                // that after a restart it still refuses older samples (the block and the head
                // then hold that sample twice, which reads merge away).
                let mut samples = s.unwritten(self.head.chunks());
                if samples.is_empty()
                    && !s.is_deleted()
                    && let Some((t, v)) = s.last()
                {
                    samples.push(crate::storage::Sample { t, v });
                }
                let starts = s.starts_of(&samples);
                for (i, x) in samples.iter().enumerate() {
                    let st = starts.as_ref().map_or(0, |st| st[i]);
                    batch.push(*r, x.t, x.v, st);
                    if batch.samples.len() == CHECKPOINT_RECORD_SAMPLES {
                        batch.log(cw)?;
                    }
                }
            }
            if !batch.samples.is_empty() {
                batch.log(cw)?;
            }
            Ok(())
        })?;
        self.counters().checkpoints.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(checkpoint = n, series = series.len(), "WAL checkpointed");
        Ok(())
    }

    /// Merges the blocks of each compaction window the head has moved past into one.
    fn compact_blocks(&self, blocks_dir: &Path) -> Result<usize> {
        let range = self.opts.block_range_ms;
        // Windows entirely older than what the head still has to write are complete (late
        // samples may still make another block there; a later round merges it in).
        let settled = self
            .head
            .oldest_unwritten()
            .unwrap_or_else(|| self.head.stats().max_t.saturating_add(1));
        let mut written = 0;
        for factor in COMPACTION_FACTORS {
            while let Some(group) = mergeable(&self.blocks, range * factor, settled, |_| true) {
                self.merge(blocks_dir, &group)?;
                written += 1;
            }
        }
        Ok(written)
    }

    /// Writes one block with the samples of `group` and deletes them.
    fn merge(&self, blocks_dir: &Path, group: &[Arc<Block>]) -> Result<()> {
        let meta = write_merged(blocks_dir, group)?;
        self.replace_blocks(blocks_dir, group, meta.as_ref())
    }

    /// Lists the raw block `meta` names (written under `blocks_dir`, if any) in place of `old`,
    /// then deletes `old`; the rollups follow. The new block's rollups are written first and name
    /// the rollups of `old` among their sources, so after a crash at any point the open finds
    /// either the old rollups or the new ones.
    fn replace_blocks(&self, blocks_dir: &Path, old: &[Arc<Block>], meta: Option<&BlockMeta>) -> Result<()> {
        let old_ids: Vec<&str> = old.iter().map(|b| b.meta().id.as_str()).collect();
        let stale: Vec<Vec<Arc<Block>>> = self
            .rollups
            .iter()
            .map(|list| {
                list.read()
                    .iter()
                    .filter(|b| b.meta().sources.iter().any(|s| old_ids.contains(&s.as_str())))
                    .cloned()
                    .collect()
            })
            .collect();
        let new = match meta {
            Some(meta) => Some(Arc::new(Block::open(&blocks_dir.join(&meta.id))?)),
            None => None,
        };
        let rollups = match &new {
            Some(new) => self.write_rollups(new, &stale, Rollups::WhereTheyReduce)?,
            None => Vec::new(),
        };
        self.publish(old, new, &stale, &rollups);
        for b in old.iter().chain(stale.iter().flatten()) {
            remove_block(b)?;
        }
        Ok(())
    }

    /// Lists `new` in `list` in place of `old`, then deletes `old`.
    fn swap_blocks(&self, list: &BlockList, old: &[Arc<Block>], new: Option<Arc<Block>>) -> Result<()> {
        self.relist(list, old, new);
        for b in old {
            remove_block(b)?;
        }
        Ok(())
    }

    /// Takes `old` out of `list` and puts `new` in, telling queries under way
    /// (`Db::relisted`).
    fn relist(&self, list: &BlockList, old: &[Arc<Block>], new: impl IntoIterator<Item = Arc<Block>>) {
        let mut list = list.write();
        self.relisted.fetch_add(1, Ordering::SeqCst);
        replace_listed(&mut list, old, new);
    }

    /// Lists `new` and `rollups` (with their tiers) in place of `old` and `stale` (per tier),
    /// in one step for readers: every list is locked together, raw first, as
    /// [`Db::tier_spans`] reads them.
    fn publish(
        &self,
        old: &[Arc<Block>],
        new: Option<Arc<Block>>,
        stale: &[Vec<Arc<Block>>],
        rollups: &[(usize, Arc<Block>)],
    ) {
        let mut raw = self.blocks.write();
        let mut tiers: Vec<_> = self.rollups.iter().map(|list| list.write()).collect();
        self.relisted.fetch_add(1, Ordering::SeqCst);
        replace_listed(&mut raw, old, new);
        for (tier, list) in tiers.iter_mut().enumerate() {
            let added = rollups.iter().filter(|(t, _)| *t == tier).map(|(_, b)| b.clone());
            replace_listed(list, stale.get(tier).map_or(&[][..], Vec::as_slice), added);
        }
    }

    /// Merges the rollups whose raw blocks are gone into one block per rollup window, for the
    /// windows no raw data reaches back into any more (rollups are one block per raw block
    /// until then, so that they are replaced with it). Returns how many blocks it wrote.
    fn compact_rollups(&self, dir: &Path) -> Result<usize> {
        if !self.opts.rollups {
            return Ok(0);
        }
        // Raw data, in blocks or still in the head (a late sample may be older than every
        // block), reaches back to `raw_from`; windows that end by then are settled.
        let (raw, raw_from) = {
            let blocks = self.blocks.read();
            let ids: BTreeSet<String> = blocks.iter().map(|b| b.meta().id.clone()).collect();
            let head = self.head.stats().min_t;
            (ids, blocks.first().map_or(head, |b| b.meta().min_t.min(head)))
        };
        let mut written = 0;
        for (tier, (list, r)) in self.rollups.iter().zip(RESOLUTIONS).enumerate() {
            let Some(window) = self.rollup_window(tier) else {
                continue;
            };
            let target = crate::db::rollups_dir(dir, r);
            // (Settled windows hold no rollup of a listed raw block: it starts after
            // `raw_from`. Checked apart all the same: such a rollup is replaced with its raw
            // block, never merged.)
            let alone = |b: &Block| b.meta().sources.first().is_none_or(|s| !raw.contains(s));
            while let Some(group) = mergeable(list, window, raw_from, alone) {
                let new = match write_merged(&target, &group)? {
                    Some(meta) => Some(Arc::new(Block::open(&target.join(&meta.id))?)),
                    None => None,
                };
                self.swap_blocks(list, &group, new)?;
                written += 1;
            }
        }
        Ok(written)
    }

    /// The window rollups of `RESOLUTIONS[tier]` are merged into: [`ROLLUP_WINDOWS_MS`], at
    /// most a tenth of their retention (a block is deleted whole, once its newest sample is
    /// past it), in whole largest raw windows; `None` when that is no larger than one.
    fn rollup_window(&self, tier: usize) -> Option<i64> {
        let raw = self.opts.block_range_ms * COMPACTION_FACTORS[COMPACTION_FACTORS.len() - 1];
        let mut window = ROLLUP_WINDOWS_MS[tier];
        if let Some(retention) = self.opts.rollup_retention_ms[tier] {
            window = window.min(retention / 10);
        }
        let window = window - window.rem_euclid(raw);
        (window > raw).then_some(window)
    }

    /// Makes the rollups that raw blocks lack (a crash came between the two).
    fn make_missing_rollups(&self) -> Result<usize> {
        let raw = self.blocks.read().clone();
        let mut made = 0;
        for b in &raw {
            made += self.make_rollups(b, &[], Rollups::WhereTheyReduce)?;
        }
        Ok(made)
    }

    /// Writes and lists the rollups raw block `b` lacks ([`Db::write_rollups`]). Returns how
    /// many it wrote.
    fn make_rollups(&self, b: &Block, replaced: &[Vec<Arc<Block>>], which: Rollups) -> Result<usize> {
        let made = self.write_rollups(b, replaced, which)?;
        let n = made.len();
        for (tier, block) in made {
            self.relist(&self.rollups[tier], &[], Some(block));
        }
        Ok(n)
    }

    /// Writes the rollups raw block `b` lacks, at every resolution whose retention still keeps
    /// its range (and, while `b` stands, that holds markedly fewer samples than `b`), naming
    /// `replaced[tier]` (the rollups they take over from) among their sources. Returns them
    /// with their tiers, not yet listed.
    fn write_rollups(
        &self,
        b: &Block,
        replaced: &[Vec<Arc<Block>>],
        which: Rollups,
    ) -> Result<Vec<(usize, Arc<Block>)>> {
        let Some(dir) = self.dir.as_deref().filter(|_| self.opts.rollups) else {
            return Ok(Vec::new());
        };
        let mut made = Vec::new();
        for (tier, r) in RESOLUTIONS.into_iter().enumerate() {
            let list = &self.rollups[tier];
            let has = list
                .read()
                .iter()
                .any(|x| x.meta().sources.first() == Some(&b.meta().id));
            let expired = self.opts.rollup_retention_ms[tier].is_some_and(|ret| b.meta().max_t < self.cutoff(ret));
            let wanted = which == Rollups::AllKept || rollup::reduces(b.meta(), r);
            if has || expired || !wanted {
                continue;
            }
            let rows = b
                .all_series()
                .map(|row| row.map(|s| rollup::downsample_series(&s, r, rollup::is_counter(&s.labels))));
            let mut sources = vec![b.meta().id.clone()];
            if let Some(old) = replaced.get(tier) {
                sources.extend(old.iter().map(|x| x.meta().id.clone()));
            }
            let spec = BlockSpec {
                end: b.meta().end,
                level: b.meta().level,
                sources,
                resolution_ms: r,
            };
            let target = crate::db::rollups_dir(dir, r);
            fs::create_dir_all(&target).map_err(Error::io("create", &target))?;
            if let Some(meta) = write_block(&target, rows, spec)? {
                made.push((tier, Arc::new(Block::open(&target.join(&meta.id))?)));
            }
        }
        self.counters().rollups.fetch_add(made.len() as u64, Ordering::Relaxed);
        Ok(made)
    }

    /// The time before which blocks are past `retention`. As Prometheus counts it: back from
    /// the newest sample in a block (of any tier), not from the wall clock, so that history
    /// replayed or imported into a store stays until newer data pushes it out; but never from
    /// the future (one sample from a clock far ahead must not age everything out). Samples
    /// still in the head do not count: they are not in a block yet.
    fn cutoff(&self, retention: i64) -> Timestamp {
        let newest = std::iter::once(&self.blocks)
            .chain(&self.rollups)
            .filter_map(|list| list.read().iter().map(|b| b.meta().max_t).max())
            .max()
            .unwrap_or(i64::MIN)
            .min(crate::time::now_ms());
        newest.saturating_sub(retention)
    }

    /// Deletes raw blocks past the retention time and rollups past theirs, then the oldest
    /// blocks of any kind while the store is over its size limit.
    fn apply_retention(&self, dir: &Path) -> Result<usize> {
        // Collected series' newest samples go with the last tier that can hold them (none
        // go while any tier keeps its blocks for ever).
        let rollups = if self.opts.rollups {
            &self.opts.rollup_retention_ms[..]
        } else {
            &[]
        };
        let kept: Option<Vec<i64>> = std::iter::once(&self.opts.retention_ms)
            .chain(rollups)
            .copied()
            .collect();
        if let Some(longest) = kept.and_then(|k| k.into_iter().max()) {
            self.head.forget_collected_before(self.cutoff(longest));
        }
        let mut deleted = 0;
        let tiers = std::iter::once((&self.blocks, self.opts.retention_ms))
            .chain(self.rollups.iter().zip(self.opts.rollup_retention_ms));
        for (tier, (list, retention)) in tiers.enumerate() {
            let Some(retention) = retention else { continue };
            let cutoff = self.cutoff(retention);
            let expired: Vec<Arc<Block>> = list
                .read()
                .iter()
                .filter(|b| b.meta().max_t < cutoff)
                .cloned()
                .collect();
            for b in &expired {
                if tier == 0 {
                    // The rollups it did not get while it stood (they would not have been
                    // much smaller) take over its range now.
                    self.make_rollups(b, &[], Rollups::AllKept)?;
                }
                self.drop_block(list, b)?;
                deleted += 1;
            }
        }
        if let Some(max) = self.opts.max_bytes {
            let wal_bytes = dir_size(&dir.join("wal"));
            loop {
                let lists = std::iter::once(&self.blocks).chain(&self.rollups);
                let mut total = wal_bytes;
                // The block of any tier whose newest sample is the oldest; raw before rollups,
                // finer before coarser, of the same age. (By newest, not oldest, sample: a
                // merged rollup of four weeks goes after the finer rollups of those weeks.)
                let mut oldest: Option<(&BlockList, Arc<Block>)> = None;
                for list in lists {
                    let blocks = list.read();
                    total += blocks.iter().map(|b| b.size()).sum::<u64>();
                    if let Some(b) = blocks.iter().min_by_key(|b| b.meta().max_t)
                        && oldest.as_ref().is_none_or(|(_, o)| b.meta().max_t < o.meta().max_t)
                    {
                        oldest = Some((list, b.clone()));
                    }
                }
                match oldest {
                    Some((list, b)) if total > max => {
                        self.drop_block(list, &b)?;
                        deleted += 1;
                    }
                    _ => break,
                }
            }
        }
        Ok(deleted)
    }

    fn drop_block(&self, list: &BlockList, b: &Arc<Block>) -> Result<()> {
        self.relist(list, std::slice::from_ref(b), None);
        tracing::info!(block = %b.meta().id, max_t = b.meta().max_t, resolution_ms = b.meta().resolution_ms,
            "retention: block deleted");
        remove_block(b)
    }

    /// Deletes every sample of the series matching any of `sets` (each a list of matchers that
    /// must all match), in the head and in the blocks, durably: blocks holding them are
    /// rewritten without them and the WAL is checkpointed. Returns how many series had samples
    /// deleted. Samples appended afterwards are kept (they must still be newer than the
    /// deleted ones).
    ///
    /// All or nothing across a crash: the delete is logged in the WAL (with the blocks standing
    /// then) before anything is removed, and the head drops the series in the same step, under
    /// the WAL's lock; a crash after that is finished by the next open, where replay drops the
    /// series at the record and the blocks it names are rewritten. An error after the record
    /// leaves the delete pending: the next delete or maintenance round finishes it first.
    pub fn delete_series(&self, sets: &[Vec<Matcher>]) -> Result<u64> {
        let _one = self.maintenance.lock();
        // An earlier delete that failed midway goes first.
        self.finish_deletes()?;
        let mut deleted: BTreeSet<Labels> = BTreeSet::new();
        let deletion = Deletion {
            sets: sets.to_vec(),
            blocks: std::iter::once(&self.blocks)
                .chain(&self.rollups)
                .flat_map(|list| list.read().iter().map(|b| b.meta().id.clone()).collect::<Vec<_>>())
                .collect(),
        };
        {
            let mut wal = self.wal.lock();
            if let Some(wal) = wal.as_mut() {
                let mut buf = Vec::new();
                record::encode_deletion(&deletion, &mut buf);
                wal.log(&[(record::TYPE_DELETE, &buf)])?;
            }
            deleted.extend(self.head.delete_matching(sets));
        }
        // The deleted series' closed chunks: the segments only they were in go.
        self.head.sweep_chunks();
        self.pending_deletes.lock().push(deletion);
        deleted.extend(self.finish_deletes()?);
        tracing::info!(series = deleted.len(), "series deleted");
        Ok(deleted.len() as u64)
    }

    /// Rewrites, for every pending delete in the order logged, the blocks it names that still
    /// stand, then checkpoints the WAL (which drops the delete records). Returns the series
    /// the blocks held. The caller holds the maintenance lock.
    pub(crate) fn finish_deletes(&self) -> Result<Vec<Labels>> {
        let pending = self.pending_deletes.lock().clone();
        let mut deleted = Vec::new();
        let Some(dir) = self.dir.clone() else {
            self.pending_deletes.lock().clear();
            return Ok(deleted);
        };
        if pending.is_empty() {
            return Ok(deleted);
        }
        for d in &pending {
            let named = |b: &Arc<Block>| d.blocks.contains(&b.meta().id);
            // Raw blocks first (their rollups follow), then the rollups whose raw blocks are
            // gone.
            let blocks_dir = dir.join("blocks");
            let raw: Vec<Arc<Block>> = self.blocks.read().iter().filter(|b| named(b)).cloned().collect();
            for b in raw {
                if let Some((doomed, meta)) = rewrite_without(&b, &d.sets, &blocks_dir, vec![b.meta().id.clone()])? {
                    self.replace_blocks(&blocks_dir, std::slice::from_ref(&b), meta.as_ref())?;
                    deleted.extend(doomed);
                }
            }
            for (list, r) in self.rollups.iter().zip(RESOLUTIONS) {
                let target = crate::db::rollups_dir(&dir, r);
                let blocks: Vec<Arc<Block>> = list.read().iter().filter(|b| named(b)).cloned().collect();
                for b in blocks {
                    // Still standing for its raw block, and named so that a crash after the
                    // rewrite lets the open finish deleting the old one.
                    let mut sources = b.meta().sources.clone();
                    sources.push(b.meta().id.clone());
                    if let Some((doomed, meta)) = rewrite_without(&b, &d.sets, &target, sources)? {
                        let new = match meta {
                            Some(meta) => Some(Arc::new(Block::open(&target.join(&meta.id))?)),
                            None => None,
                        };
                        self.swap_blocks(list, std::slice::from_ref(&b), new)?;
                        deleted.extend(doomed);
                    }
                }
            }
        }
        self.checkpoint_wal()?;
        self.pending_deletes.lock().drain(..pending.len());
        Ok(deleted)
    }

    /// Rollup blocks of resolution `RESOLUTIONS[tier]`, oldest first.
    pub fn rollups(&self, tier: usize) -> Vec<Arc<Block>> {
        self.rollups.get(tier).map(|l| l.read().clone()).unwrap_or_default()
    }

    /// Blocks on disk, oldest first.
    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks.read().clone()
    }
}

/// The oldest group of two or more blocks of `list` that `eligible` accepts and that lie within
/// one aligned `window` ending by `settled`: what compaction merges next.
fn mergeable(
    list: &BlockList,
    window: i64,
    settled: Timestamp,
    eligible: impl Fn(&Block) -> bool,
) -> Option<Vec<Arc<Block>>> {
    let mut groups: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
    for b in list.read().iter().filter(|b| eligible(b)) {
        let w = b.meta().min_t.div_euclid(window);
        if b.meta().max_t.div_euclid(window) == w && (w + 1).saturating_mul(window) <= settled {
            groups.entry(w).or_default().push(b.clone());
        }
    }
    groups.into_values().find(|g| g.len() > 1)
}

/// Writes one block under `dir` with the samples of `group` (blocks of one resolution),
/// naming them as its sources; `None` if they hold no samples.
fn write_merged(dir: &Path, group: &[Arc<Block>]) -> Result<Option<BlockMeta>> {
    let spec = BlockSpec {
        end: group.iter().map(|b| b.meta().end).max().unwrap_or(i64::MIN),
        level: group.iter().map(|b| b.meta().level).max().unwrap_or(1) + 1,
        sources: group.iter().map(|b| b.meta().id.clone()).collect(),
        resolution_ms: group.first().map_or(0, |b| b.meta().resolution_ms),
    };
    write_block(dir, merged_series(group), spec)
}

/// The series of `blocks` merged per label set, in label order (each block lists its series
/// in label order): a k-way merge that holds one series' samples per block at a time, so
/// compacting blocks takes memory for their largest series, not for the blocks. A block that
/// cannot be read ends the merge with its error.
fn merged_series(blocks: &[Arc<Block>]) -> impl Iterator<Item = Result<BlockSeries>> + '_ {
    Merged {
        heads: blocks.iter().map(|_| None).collect(),
        cursors: blocks.iter().map(|b| b.all_series()).collect(),
        failed: false,
    }
}

/// The state of [`merged_series`]: each block's series iterator and the series read ahead
/// from it.
struct Merged<I> {
    cursors: Vec<I>,
    heads: Vec<Option<BlockSeries>>,
    failed: bool,
}

impl<I: Iterator<Item = Result<BlockSeries>>> Iterator for Merged<I> {
    type Item = Result<BlockSeries>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        for (head, cursor) in self.heads.iter_mut().zip(&mut self.cursors) {
            if head.is_none() {
                match cursor.next() {
                    Some(Ok(s)) => *head = Some(s),
                    Some(Err(e)) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                    None => {}
                }
            }
        }
        let first = self.heads.iter().flatten().map(|s| &s.labels).min()?.clone();
        // Absorbed in block order: where blocks overlap, the older block's sample is kept.
        let mut merged: Option<BlockSeries> = None;
        for head in &mut self.heads {
            if let Some(s) = head.take_if(|s| s.labels == first) {
                match &mut merged {
                    Some(m) => m.absorb(s),
                    None => merged = Some(s),
                }
            }
        }
        let mut series = merged?;
        series.sort_dedup();
        Some(Ok(series))
    }
}

/// The series a rewrite dropped, and the rewritten block (`None` if nothing was left).
type Rewritten = (BTreeSet<Labels>, Option<BlockMeta>);

/// Writes block `b` again under `dir` without the series matching any of `sets`; `None` when
/// it holds none of them, else those series and the new block's meta (`None` if nothing is
/// left).
fn rewrite_without(b: &Block, sets: &[Vec<Matcher>], dir: &Path, sources: Vec<String>) -> Result<Option<Rewritten>> {
    let doomed: BTreeSet<Labels> = sets
        .iter()
        .flat_map(|set| b.series_labels(set, i64::MIN, i64::MAX))
        .collect();
    if doomed.is_empty() {
        return Ok(None);
    }
    let rows = b
        .all_series()
        .filter(|r| r.as_ref().map_or(true, |s| !doomed.contains(&s.labels)));
    let spec = BlockSpec {
        end: b.meta().end,
        level: b.meta().level,
        sources,
        resolution_ms: b.meta().resolution_ms,
    };
    let meta = write_block(dir, rows, spec)?;
    Ok(Some((doomed, meta)))
}

/// Takes `old` out of a list of blocks and puts `new` in, keeping it oldest first.
fn replace_listed(list: &mut Vec<Arc<Block>>, old: &[Arc<Block>], new: impl IntoIterator<Item = Arc<Block>>) {
    list.retain(|b| !old.iter().any(|g| Arc::ptr_eq(b, g)));
    list.extend(new);
    list.sort_by_key(|b| (b.meta().min_t, b.meta().max_t));
}

/// Deletes a block's directory (readers that still hold it keep their mapping). It is renamed
/// first, so a crash midway leaves a directory that opening the store finishes deleting, never
/// a block with files missing.
pub(crate) fn remove_block(b: &Block) -> Result<()> {
    let doomed = b.dir().with_extension("deleted");
    fs::rename(b.dir(), &doomed).map_err(Error::io("rename", b.dir()))?;
    fs::remove_dir_all(&doomed).map_err(Error::io("remove", &doomed))
}

/// Bytes of the files under `dir`.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(std::result::Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
