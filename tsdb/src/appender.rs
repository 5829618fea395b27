//! Appends: a batch of samples and source marks that one commit writes to the WAL and then to
//! the head, with the order checks, and the retaking of series the head collected meanwhile.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rustc_hash::FxHashMap;

use crate::db::{CommitStats, Db};
use crate::error::{Error, Result};
use crate::head::{AppendOutcome, MemSeries, SeriesRef};
use crate::labels::Labels;
use crate::storage::Timestamp;
use crate::wal::record::{self, Mark};

/// A batch of samples (and source marks) committed together.
#[derive(Debug)]
pub struct Appender<'a> {
    db: &'a Db,
    samples: Vec<(SeriesRef, Timestamp, f64)>,
    /// Each sample's start time (0: unknown), once one has had one; empty until then.
    starts: Vec<Timestamp>,
    marks: Vec<Mark>,
    /// References this batch took by labels, with the labels: if the head collects such a
    /// series before the commit, the commit takes it again.
    by_labels: Vec<(SeriesRef, Labels)>,
}

impl<'a> Appender<'a> {
    pub(crate) fn new(db: &'a Db) -> Self {
        Appender {
            db,
            samples: Vec::new(),
            starts: Vec::new(),
            marks: Vec::new(),
            by_labels: Vec::new(),
        }
    }

    /// Adds a sample for the series with `labels`, creating the series if needed; returns its
    /// reference for [`Appender::append_ref`] next time.
    pub fn append(&mut self, labels: &Labels, t: Timestamp, v: f64) -> Result<SeriesRef> {
        validate(labels)?;
        let (r, _) = self.db.head.get_or_create(labels);
        if self.by_labels.last().is_none_or(|(last, _)| *last != r) {
            self.by_labels.push((r, labels.clone()));
        }
        self.append_ref(r, t, v);
        Ok(r)
    }

    /// Adds a sample for a series reference obtained from [`Appender::append`].
    pub fn append_ref(&mut self, r: SeriesRef, t: Timestamp, v: f64) {
        self.samples.push((r, t, v));
        if !self.starts.is_empty() {
            self.starts.push(0);
        }
    }

    /// [`Appender::append`] with the sample's start time `st` (ms; 0: unknown): when the count
    /// that produced `v` began, e.g. OpenMetrics' `_created`. PromQL's `rate`, `increase`,
    /// `irate` and `resets` read it to see resets; `start_timestamp()` returns it.
    pub fn append_with_start(&mut self, labels: &Labels, t: Timestamp, v: f64, st: Timestamp) -> Result<SeriesRef> {
        let r = self.append(labels, t, v)?;
        self.set_last_start(st);
        Ok(r)
    }

    /// [`Appender::append_ref`] with the sample's start time (0: unknown).
    pub fn append_ref_with_start(&mut self, r: SeriesRef, t: Timestamp, v: f64, st: Timestamp) {
        self.append_ref(r, t, v);
        self.set_last_start(st);
    }

    fn set_last_start(&mut self, st: Timestamp) {
        if st == 0 && self.starts.is_empty() {
            return;
        }
        self.starts.resize(self.samples.len(), 0);
        if let Some(last) = self.starts.last_mut() {
            *last = st;
        }
    }

    /// Records a source position that becomes durable exactly when these samples do.
    pub fn mark(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.marks.push(Mark {
            key: key.into(),
            value: value.into(),
        });
    }

    /// After the head collected series this batch names: takes those it named by labels
    /// again (under the WAL lock, so no collection comes between) and resolves the batch anew;
    /// [`Error::SeriesCollected`] if a bare reference names one.
    fn retake_collected(&mut self) -> Result<Vec<Option<Arc<MemSeries>>>> {
        let head = &self.db.head;
        let known: FxHashMap<SeriesRef, &Labels> = self.by_labels.iter().map(|(r, l)| (*r, l)).collect();
        let mut retaken: FxHashMap<SeriesRef, SeriesRef> = FxHashMap::default();
        for sample in &mut self.samples {
            if let Some(&now) = retaken.get(&sample.0) {
                sample.0 = now;
            } else if head.series(sample.0).is_none()
                && let Some(labels) = known.get(&sample.0)
            {
                let (now, _) = head.get_or_create(labels);
                retaken.insert(sample.0, now);
                sample.0 = now;
            }
        }
        match head.resolve(self.samples.iter().map(|s| s.0)) {
            (_, true) => Err(Error::SeriesCollected),
            (series, false) => Ok(series),
        }
    }

    /// Samples added so far.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.marks.is_empty()
    }

    /// Writes the batch to the WAL as one write, then applies it to the head. Samples that are
    /// out of order are counted in the result, not errors. If the WAL write fails nothing has
    /// changed: the head, the marks and the series' logged state are as before, so the caller
    /// may retry the same batch. A series the head collected since this batch named it (it had
    /// stopped and its samples were all in blocks) is taken again if the batch named it by
    /// labels; a bare [`Appender::append_ref`] to one fails the commit with
    /// [`Error::SeriesCollected`], nothing written.
    pub fn commit(mut self) -> Result<CommitStats> {
        let db = self.db;
        let mut stats = CommitStats::default();
        if self.is_empty() {
            return Ok(stats);
        }
        // Holding the WAL lock serializes commits: nothing can append between the checks below
        // and the application that follows the write.
        let mut wal = db.wal.lock();
        let (mut series, collected) = db.head.resolve(self.samples.iter().map(|s| s.0));
        if collected {
            series = self.retake_collected()?;
        }
        // The batch's own newest sample, for the series it names more than once (a window of
        // the collector names each once: a map entry per sample would cost more memory than
        // the rest of the commit).
        let repeated = Repeated::find(&self.samples);
        let mut newest: FxHashMap<SeriesRef, (Timestamp, f64)> = FxHashMap::default();
        let mut accepted: Vec<(SeriesRef, Timestamp, f64)> = Vec::with_capacity(self.samples.len());
        let mut accepted_starts: Vec<Timestamp> = Vec::with_capacity(self.starts.len());
        let mut apply: Vec<(&MemSeries, Timestamp, f64, Timestamp)> = Vec::with_capacity(self.samples.len());
        let mut new_series: Vec<&MemSeries> = Vec::new();
        let mut new_refs: Vec<(SeriesRef, &Labels)> = Vec::new();
        for (i, (&(r, t, v), s)) in self.samples.iter().zip(&series).enumerate() {
            let st = self.starts.get(i).copied().unwrap_or(0);
            let Some(s) = s.as_deref() else {
                stats.count(None);
                continue;
            };
            let again = repeated.may_repeat(r);
            let batch_newest = if again { newest.get(&r).copied() } else { None };
            let outcome = MemSeries::decide(batch_newest.or_else(|| s.last()), t, v);
            stats.count(Some(outcome));
            if outcome != AppendOutcome::Appended {
                continue;
            }
            if !s.is_logged() && batch_newest.is_none() {
                new_series.push(s);
                new_refs.push((r, &s.labels));
            }
            if again {
                newest.insert(r, (t, v));
            }
            accepted.push((r, t, v));
            if !self.starts.is_empty() {
                accepted_starts.push(st);
            }
            apply.push((s, t, v, st));
        }
        if let Some(wal) = wal.as_mut() {
            let mut series_buf = Vec::new();
            record::encode_series(&new_refs, &mut series_buf);
            let mut samples_buf = Vec::new();
            let samples_type = if accepted_starts.iter().any(|&st| st != 0) {
                record::encode_samples_with_starts(&self.marks, &accepted, &accepted_starts, &mut samples_buf);
                record::TYPE_SAMPLES_STARTS
            } else {
                record::encode_samples(&self.marks, &accepted, &mut samples_buf);
                record::TYPE_SAMPLES
            };
            let mut records: Vec<(u8, &[u8])> = Vec::with_capacity(2);
            if !new_refs.is_empty() {
                records.push((record::TYPE_SERIES, &series_buf));
            }
            if !accepted.is_empty() || !self.marks.is_empty() {
                records.push((samples_type, &samples_buf));
            }
            wal.log(&records)?;
        }
        for s in new_series {
            s.set_logged();
        }
        db.head.apply_checked(&apply);
        {
            let mut marks = db.marks.write();
            for m in self.marks {
                marks.insert(m.key, m.value);
            }
        }
        drop(wal);
        let c = db.counters();
        c.appended.fetch_add(stats.appended, Ordering::Relaxed);
        c.out_of_order.fetch_add(stats.out_of_order, Ordering::Relaxed);
        c.conflict.fetch_add(stats.conflict, Ordering::Relaxed);
        c.commits.fetch_add(1, Ordering::Relaxed);
        Ok(stats)
    }
}

/// Which references a batch names more than once.
enum Repeated {
    /// A bit per reference (references are dense, handed out from 1): set for those named
    /// more than once.
    Bits(Vec<u64>),
    /// References too sparse for the bits to be smaller than the batch: any may repeat.
    Unknown,
}

impl Repeated {
    fn find(samples: &[(SeriesRef, Timestamp, f64)]) -> Repeated {
        let max = samples.iter().map(|s| s.0).max().unwrap_or(0);
        let words = usize::try_from(max / 64 + 1).unwrap_or(usize::MAX);
        if words > samples.len().max(1024) {
            return Repeated::Unknown;
        }
        let mut seen = vec![0u64; words];
        let mut twice = vec![0u64; words];
        for &(r, _, _) in samples {
            let (w, bit) = ((r / 64) as usize, 1u64 << (r % 64));
            twice[w] |= seen[w] & bit;
            seen[w] |= bit;
        }
        Repeated::Bits(twice)
    }

    fn may_repeat(&self, r: SeriesRef) -> bool {
        match self {
            Repeated::Bits(twice) => twice[(r / 64) as usize] & (1 << (r % 64)) != 0,
            Repeated::Unknown => true,
        }
    }
}

/// Rejects label sets the store cannot hold: empty, or with an empty or invalid name.
fn validate(labels: &Labels) -> Result<()> {
    if labels.is_empty() {
        return Err(Error::InvalidLabels("empty label set".into()));
    }
    for l in labels {
        if !crate::labels::is_valid_name(&l.name) {
            return Err(Error::InvalidLabels(format!(
                "invalid label name {:?} in {labels}",
                l.name
            )));
        }
        if l.value.is_empty() {
            return Err(Error::InvalidLabels(format!(
                "empty value for label {:?} in {labels}",
                l.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_references_are_found_and_sparse_ones_all_may_repeat() {
        let batch: Vec<(SeriesRef, Timestamp, f64)> =
            [3, 64, 3, 65, 2000, 64, 3].iter().map(|&r| (r, 0, 0.0)).collect();
        let found = Repeated::find(&batch);
        assert!(matches!(found, Repeated::Bits(_)));
        let again: Vec<SeriesRef> = [2, 3, 64, 65, 2000]
            .into_iter()
            .filter(|&r| found.may_repeat(r))
            .collect();
        assert_eq!(again, [3, 64]);
        // A reference far beyond the batch's size: bits would cost more than the batch.
        let sparse = [(1, 0, 0.0), (1 << 40, 0, 0.0)];
        let found = Repeated::find(&sparse);
        assert!(matches!(found, Repeated::Unknown) && found.may_repeat(1));
    }
}
