//! Writes closed windows to the store, and reads back where the store left off.

use std::collections::VecDeque;

use vigil_tsdb::head::SeriesRef;
use vigil_tsdb::{CommitStats, Db, MatchOp, Matcher};

use crate::aggregate::{Aggregator, SeriesTable, WindowOutput};

/// Maps the aggregator's series ids to store references and commits window outputs in order.
/// Outputs that fail to commit (a full disk, say) stay queued and are retried first next time,
/// so a transient store error loses nothing and reorders nothing.
#[derive(Debug, Default)]
pub struct StoreSink {
    refs: Vec<Option<SeriesRef>>,
    pending: VecDeque<WindowOutput>,
}

/// What writing did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SinkStats {
    /// Windows committed.
    pub commits: u64,
    /// Sample counts of those commits.
    pub store: CommitStats,
}

impl StoreSink {
    /// Queues outputs and commits everything queued, one store commit per window.
    pub fn write(
        &mut self,
        db: &Db,
        table: &SeriesTable,
        outputs: impl IntoIterator<Item = WindowOutput>,
    ) -> vigil_tsdb::Result<SinkStats> {
        self.pending.extend(outputs);
        let mut stats = SinkStats::default();
        while let Some(w) = self.pending.front() {
            let mut app = db.appender();
            for &(id, v) in &w.samples {
                let slot = id as usize;
                if self.refs.len() <= slot {
                    self.refs.resize(slot + 1, None);
                }
                match self.refs[slot] {
                    Some(r) => app.append_ref(r, w.t, v),
                    None => self.refs[slot] = Some(app.append(table.labels(id), w.t, v)?),
                }
            }
            let c = app.commit()?;
            self.pending.pop_front();
            stats.commits += 1;
            stats.store.appended += c.appended;
            stats.store.duplicate += c.duplicate;
            stats.store.out_of_order += c.out_of_order;
            stats.store.conflict += c.conflict;
            stats.store.unknown_series += c.unknown_series;
        }
        Ok(stats)
    }

    /// Windows waiting for a successful commit.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Seeds the aggregator with the newest stored value of every `vigil_http_*` series, so that
/// counters continue where the previous process stopped.
pub fn restore(db: &Db, agg: &mut Aggregator) -> usize {
    let Ok(m) = Matcher::new(MatchOp::Regex, "__name__", "vigil_http_.+") else {
        return 0;
    };
    let series = db.head().matching_series(&[m]);
    let mut seeds = Vec::with_capacity(series.len());
    for s in &series {
        let (last, last_value) = s.last_sample();
        if let (Some(last), Some(value)) = (last, last_value) {
            seeds.push((&s.labels, last.t, value.v, vigil_tsdb::is_stale_nan(last.v)));
        }
    }
    let n = seeds.len();
    agg.restore(seeds);
    n
}
