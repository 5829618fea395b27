//! vigil-tsdb: the embedded time-series store and its PromQL engine.
//!
//! # Layout
//!
//! ```text
//!  Appender::commit ──> wal/ (segments, checksummed records) ──> durable
//!          │
//!          └──────────> head/ (series, postings, chunkenc/ XOR chunks in memory)
//!                                   │
//!  promql/ Engine ──Queryable::select──┘
//! ```
//!
//! - [`labels`]: label sets and matchers.
//! - [`chunkenc`]: the bit stream and the Gorilla XOR chunk codec.
//! - [`wal`]: the write-ahead log: framing, records, replay and torn-tail repair.
//! - [`head`]: in-memory series, the postings index, appends and reads.
//! - [`db`]: the store as a whole: a data directory, appenders, source marks.
//! - [`promql`]: PromQL evaluation on the `promql-parser` AST.
//!
//! The byte formats are specified in `tsdb/docs/format/`.
//!
//! # Example
//!
//! ```
//! use vigil_tsdb::{Db, Labels, promql::{Engine, Value}};
//!
//! let db = Db::in_memory();
//! let mut app = db.appender();
//! let series = Labels::from_pairs([("__name__", "requests_total"), ("service", "orders")]);
//! app.append(&series, 10_000, 1.0).unwrap();
//! app.append(&series, 20_000, 3.0).unwrap();
//! app.commit().unwrap();
//!
//! let v = Engine::default().instant_query(&db, "sum(requests_total)", 20_000).unwrap();
//! let Value::Vector(samples) = v else { panic!() };
//! assert_eq!(samples[0].v, 3.0);
//! ```

mod appender;
pub mod block;
pub mod chunkenc;
mod compact;
pub mod db;
pub mod encoding;
pub mod error;
pub mod events;
pub mod head;
pub mod labels;
pub mod openmetrics;
pub mod promql;
pub mod rollup;
pub mod starts;
pub mod storage;
pub mod time;
pub mod wal;

/// Selections of at least this many series decode them on all cores (fewer are not worth
/// handing to other threads).
pub(crate) const PARALLEL_MIN_SERIES: usize = 64;

/// `f` of every item, in order: on all cores when there are [`PARALLEL_MIN_SERIES`] or more.
pub(crate) fn map_series<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    use rayon::prelude::*;
    if items.len() >= PARALLEL_MIN_SERIES {
        items.par_iter().with_min_len(16).map(f).collect()
    } else {
        items.iter().map(f).collect()
    }
}

pub use compact::MaintenanceReport;
pub use db::{Appender, CommitStats, Db, Options};
pub use error::{Error, Result};
pub use labels::{Label, Labels, LabelsBuilder, MatchOp, Matcher, Symbol};
pub use storage::{
    Queryable, RollupRead, STALE_NAN, Sample, Selected, Series, SeriesReader, Timestamp, is_stale_nan, stale_nan,
};
