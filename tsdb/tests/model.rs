//! Model-based test of the store: random appends (with and without start times), commits,
//! marks, queries and reboots against a `BTreeMap` model of what was acknowledged. Whatever the
//! sequence, a query answers exactly what the model holds, start times included, before and
//! after any reboot.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vigil_tsdb::{Db, Labels, MatchOp, Matcher, Options, Queryable, Timestamp};

#[derive(Debug, Clone)]
enum Op {
    /// Adds a sample to the open batch: series, time step from that series' newest (may be
    /// negative: out of order), value, and how long before its time it started (none, or
    /// possibly after it: an invalid start is kept as given).
    Append(usize, i64, f64, Option<i64>),
    /// Adds many samples to one series, a millisecond apart, whole numbers but for one
    /// fraction perhaps: enough to fill head chunks (120 samples), so that chunks close (the
    /// open one turning from integer to XOR at a fraction) and go to small chunk segments.
    Burst(usize, u16, Option<u16>),
    Mark(u8, u8),
    Commit,
    Query(usize, Timestamp, Timestamp),
    Reboot,
    /// Cut blocks, compact, checkpoint the WAL.
    Maintain,
    /// Delete a series by matcher.
    Delete(usize),
}

const SERIES: usize = 5;

fn op() -> impl Strategy<Value = Op> {
    let value = prop_oneof![(0u8..10).prop_map(f64::from), any::<f64>()];
    prop_oneof![
        8 => (0..SERIES, -3i64..40, value, prop_oneof![Just(None), (-2i64..25).prop_map(Some)])
            .prop_map(|(s, dt, v, st)| Op::Append(s, dt, v, st)),
        1 => (0..SERIES, 100u16..300, prop::option::of(0u16..300)).prop_map(|(s, n, f)| Op::Burst(s, n, f)),
        1 => (0u8..3, any::<u8>()).prop_map(|(k, v)| Op::Mark(k, v)),
        3 => Just(Op::Commit),
        2 => (0..SERIES, 0i64..3000, 0i64..3000).prop_map(|(s, a, b)| Op::Query(s, a.min(b), a.max(b))),
        1 => Just(Op::Reboot),
        1 => Just(Op::Maintain),
        1 => (0..SERIES).prop_map(Op::Delete),
    ]
}

fn labels(s: usize) -> Labels {
    Labels::from_pairs([("__name__", "m".to_owned()), ("series", s.to_string())])
}

#[derive(Default)]
struct Model {
    /// Committed samples per series, as value bits and start time (0: none).
    samples: BTreeMap<usize, BTreeMap<Timestamp, (u64, Timestamp)>>,
    marks: BTreeMap<String, Vec<u8>>,
    /// Newest sample per series ever committed (a delete keeps appends in order, until a
    /// restart: the store does not keep a deleted series' newest sample).
    last: BTreeMap<usize, Timestamp>,
    /// Deleted series without a sample since.
    deleted: std::collections::BTreeSet<usize>,
}

impl Model {
    fn newest(&self, s: usize) -> Option<Timestamp> {
        self.last.get(&s).copied()
    }

    /// Applies a committed batch with the store's rules: a sample must be newer than its
    /// series' newest; one at the same time with the same value is a no-op; the rest are
    /// rejected.
    fn commit(&mut self, batch: &[(usize, Timestamp, f64, Timestamp)], marks: &[(String, Vec<u8>)]) {
        for &(s, t, v, st) in batch {
            if self.newest(s).is_none_or(|last| t > last) {
                self.samples.entry(s).or_default().insert(t, (v.to_bits(), st));
                self.last.insert(s, t);
                self.deleted.remove(&s);
            }
        }
        for (k, v) in marks {
            self.marks.insert(k.clone(), v.clone());
        }
    }
}

/// The newest time of series `s` in the open batch, else committed, else 0.
fn newest_so_far(batch: &[(usize, Timestamp, f64, Timestamp)], model: &Model, s: usize) -> Timestamp {
    batch
        .iter()
        .rev()
        .find(|b| b.0 == s)
        .map(|b| b.1)
        .or_else(|| model.newest(s))
        .unwrap_or(0)
}

fn check(db: &Db, model: &Model, s: usize, mint: Timestamp, maxt: Timestamp) -> Result<(), TestCaseError> {
    let name = s.to_string();
    let m = [Matcher::new(MatchOp::Equal, "series", &name).expect("matcher")];
    let got: Vec<(Timestamp, u64, Timestamp)> = db
        .select(&m, mint, maxt)
        .expect("select")
        .into_iter()
        .flat_map(|series| {
            let starts = series.starts.unwrap_or_else(|| vec![0; series.samples.len()]);
            series.samples.into_iter().zip(starts)
        })
        .map(|(x, st)| (x.t, x.v.to_bits(), st))
        .collect();
    let want: Vec<(Timestamp, u64, Timestamp)> = model
        .samples
        .get(&s)
        .map(|m| m.range(mint..=maxt).map(|(t, (v, st))| (*t, *v, *st)).collect())
        .unwrap_or_default();
    prop_assert_eq!(got, want, "series {} in [{}, {}]", s, mint, maxt);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_store_answers_like_the_model(ops in prop::collection::vec(op(), 1..400)) {
        let dir = tempfile::tempdir().expect("tempdir");
        // Small segments, so rotation is part of the test (and every closed chunk is sealed).
        let opts = Options {
            wal_segment_size: 4096,
            block_range_ms: 60,
            head_chunk_segment_size: 64,
            ..Options::default()
        };
        let mut db = Db::open(dir.path(), opts).expect("open");
        let mut model = Model::default();
        let mut batch: Vec<(usize, Timestamp, f64, Timestamp)> = Vec::new();
        let mut marks: Vec<(String, Vec<u8>)> = Vec::new();
        for op in ops {
            match op {
                Op::Append(s, dt, v, before) => {
                    let t = newest_so_far(&batch, &model, s) + dt;
                    batch.push((s, t, v, before.map_or(0, |k| t - k)));
                }
                Op::Burst(s, n, fraction) => {
                    let base = newest_so_far(&batch, &model, s);
                    for i in 0..n {
                        let v = f64::from(i) * 3.0 + if Some(i) == fraction { 0.5 } else { 0.0 };
                        batch.push((s, base + 1 + i64::from(i), v, 0));
                    }
                }
                Op::Mark(k, v) => marks.push((format!("k{k}"), vec![v])),
                Op::Commit => {
                    let mut app = db.appender();
                    for &(s, t, v, st) in &batch {
                        app.append_with_start(&labels(s), t, v, st).expect("append");
                    }
                    for (k, v) in &marks {
                        app.mark(k.clone(), v.clone());
                    }
                    app.commit().expect("commit");
                    model.commit(&batch, &marks);
                    batch.clear();
                    marks.clear();
                }
                Op::Query(s, mint, maxt) => check(&db, &model, s, mint, maxt)?,
                Op::Maintain => {
                    db.maintain().expect("maintain");
                }
                Op::Delete(s) => {
                    let name = s.to_string();
                    let m = vec![Matcher::new(MatchOp::Equal, "series", &name).expect("matcher")];
                    db.delete_series(&[m]).expect("delete");
                    model.samples.remove(&s);
                    model.deleted.insert(s);
                }
                Op::Reboot => {
                    // What was not committed is gone, as with a crash.
                    batch.clear();
                    marks.clear();
                    drop(db);
                    db = Db::open(dir.path(), opts).expect("reopen");
                    for s in std::mem::take(&mut model.deleted) {
                        model.last.remove(&s);
                    }
                    for (k, v) in &model.marks {
                        prop_assert_eq!(db.mark(k), Some(v.clone()));
                    }
                }
            }
        }
        for s in 0..SERIES {
            check(&db, &model, s, i64::MIN, i64::MAX)?;
        }
    }
}
