//! Writes closed windows to the store, and reads back where the store left off.

use std::collections::VecDeque;

use vigil_tsdb::head::SeriesRef;
use vigil_tsdb::{CommitStats, Db, Labels, MatchOp, Matcher, Sample, Timestamp};

use crate::aggregate::{Aggregator, SeriesTable, WindowOutput};

/// Maps the aggregator's series ids to store references and commits window outputs in order,
/// all that is queued in one store commit, together with the marks describing the state they
/// leave (source positions, open windows): one WAL record, so the samples and the marks are
/// durable together or not at all. If the commit fails (a full disk, say) the windows stay
/// queued and go first next time, so a transient store error loses nothing and reorders
/// nothing; a series the store refuses outright (invalid labels) is skipped and counted, so it
/// cannot block the queue.
#[derive(Debug, Default)]
pub struct StoreSink {
    refs: Vec<Option<SeriesRef>>,
    /// The store's garbage-collection epoch when `refs` were taken.
    refs_epoch: u64,
    pending: VecDeque<WindowOutput>,
    totals: SinkStats,
}

/// What the sink has written so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SinkStats {
    /// Windows committed.
    pub commits: u64,
    /// Sample counts of those commits.
    pub store: CommitStats,
    /// Samples of series the store refused to create.
    pub invalid_series: u64,
}

impl StoreSink {
    /// Queues outputs and commits everything queued, with `marks`, in one store commit.
    pub fn write(
        &mut self,
        db: &Db,
        table: &SeriesTable,
        outputs: impl IntoIterator<Item = WindowOutput>,
        marks: Vec<(String, Vec<u8>)>,
    ) -> vigil_tsdb::Result<()> {
        self.pending.extend(outputs);
        if self.pending.is_empty() && marks.is_empty() {
            return Ok(());
        }
        // The store lets go of series that stopped once their samples are all in blocks:
        // references taken before that are retaken by labels (those series come back).
        let epoch = db.head().gc_epoch();
        if epoch != self.refs_epoch {
            self.refs.clear();
            self.refs_epoch = epoch;
        }
        let result = self.commit(db, table, marks);
        if let Err(vigil_tsdb::Error::SeriesCollected) = result {
            // A collection came between the check and the commit: nothing was written, the
            // windows stay queued, and the next write retakes the references.
            self.refs.clear();
        }
        result
    }

    fn commit(&mut self, db: &Db, table: &SeriesTable, marks: Vec<(String, Vec<u8>)>) -> vigil_tsdb::Result<()> {
        let mut app = db.appender();
        let mut invalid = 0;
        for w in &self.pending {
            for &(id, v) in &w.samples {
                let slot = id as usize;
                if self.refs.len() <= slot {
                    self.refs.resize(slot + 1, None);
                }
                match self.refs[slot] {
                    Some(r) => app.append_ref(r, w.t, v),
                    None => match app.append(table.labels(id), w.t, v) {
                        Ok(r) => self.refs[slot] = Some(r),
                        Err(vigil_tsdb::Error::InvalidLabels(why)) => {
                            tracing::warn!(%why, "series refused by the store");
                            invalid += 1;
                        }
                        Err(e) => return Err(e),
                    },
                }
            }
        }
        for (k, v) in marks {
            app.mark(k, v);
        }
        let c = app.commit()?;
        let t = &mut self.totals;
        t.commits += self.pending.len() as u64;
        self.pending.clear();
        t.invalid_series += invalid;
        t.store.appended += c.appended;
        t.store.duplicate += c.duplicate;
        t.store.out_of_order += c.out_of_order;
        t.store.conflict += c.conflict;
        t.store.unknown_series += c.unknown_series;
        Ok(())
    }

    /// Windows waiting for a successful commit.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Totals since the sink was created.
    pub fn totals(&self) -> SinkStats {
        self.totals
    }
}

/// The newest stored sample of every series whose name matches `name_re`.
pub(crate) fn newest(db: &Db, name_re: &str) -> Vec<(Labels, Sample, Option<Sample>)> {
    match Matcher::new(MatchOp::Regex, "__name__", name_re) {
        Ok(m) => db.last_samples(&[m]),
        Err(_) => Vec::new(),
    }
}

/// Seeds the aggregator with the newest stored value of every `vigil_http_*` series, so that
/// counters continue where the previous process stopped.
pub fn restore(db: &Db, agg: &mut Aggregator, now: Timestamp) -> usize {
    let series = newest(db, "vigil_http_.+");
    let seeds: Vec<(&Labels, Timestamp, f64, bool)> = series
        .iter()
        .filter_map(|(l, last, value)| value.map(|v| (l, last.t, v.v, vigil_tsdb::is_stale_nan(last.v))))
        .collect();
    let n = seeds.len();
    agg.restore(seeds, now);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_tsdb::{Options, Queryable};

    const T0: Timestamp = 1_795_392_000_000;

    #[test]
    fn series_the_store_collected_are_taken_again_by_labels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = Options {
            rollups: false,
            ..Options::default()
        };
        let db = Db::open(dir.path(), opts).expect("open");
        let mut table = SeriesTable::default();
        let route = |r: &str| Labels::from_pairs([("__name__", "vigil_http_requests_total"), ("route", r)]);
        let (a, b) = (table.add(route("a")), table.add(route("b")));
        let mut sink = StoreSink::default();
        let write = |sink: &mut StoreSink, t: Timestamp, samples: Vec<(u32, f64)>| {
            let w = WindowOutput { t, samples };
            sink.write(&db, &table, [w], Vec::new()).expect("write");
        };
        write(&mut sink, T0, vec![(a, 1.0), (b, 1.0)]);
        // `b` goes on for five hours, `a` has stopped: the cut puts `a` in a block and the
        // store lets it go.
        for i in 1..=1_800 {
            write(&mut sink, T0 + i * 10_000, vec![(b, i as f64 + 1.0)]);
        }
        assert!(db.maintain().expect("maintain").cut > 0);
        assert_eq!(db.stats().series, 1);
        // `a` comes back through the reference the sink holds: retaken by labels.
        write(&mut sink, T0 + 18_010_000, vec![(a, 2.0), (b, 1_802.0)]);
        assert_eq!(sink.totals().store.unknown_series, 0);
        assert_eq!(sink.totals().store.appended, 1_804);
        let m = [Matcher::new(MatchOp::Equal, "route", "a").expect("matcher")];
        let got: Vec<(Timestamp, f64)> = db
            .select(&m, i64::MIN, i64::MAX)
            .expect("select")
            .into_iter()
            .flat_map(|s| s.samples)
            .map(|x| (x.t, x.v))
            .collect();
        assert_eq!(got, vec![(T0, 1.0), (T0 + 18_010_000, 2.0)]);
    }
}
