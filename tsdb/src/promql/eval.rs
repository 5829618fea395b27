//! The evaluator: walks the AST and computes every node for all steps of the query.
//!
//! A vector- or scalar-typed node evaluates to a step matrix: series with a point at each step
//! timestamp where they have a value (a scalar is one series without labels). Operators and
//! functions then work step by step through [`Evaluator::range_eval`], which gathers each input's
//! vector at a step, calls the operation, and collects the outputs back into series.

use std::time::Instant;

use promql_parser::label::{MatchOp as ParserOp, Matcher as ParserMatcher};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector};
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::deep;
use super::error::{QueryError, QueryResult};
use super::value::{Point, Sample, Series};
use super::{EngineOptions, aggregate, binary, functions};
use crate::labels::{Labels, MatchOp, Matcher};
use crate::rollup::{Reads, SelectHints, SourceResolution};
use crate::storage::{Queryable, Timestamp, is_stale_nan};

/// A series of a step matrix: points at step timestamps.
#[derive(Debug, Clone)]
pub(crate) struct ESeries {
    pub(crate) metric: Labels,
    pub(crate) points: Vec<Point>,
}

/// Series with points at step timestamps.
pub(crate) type Matrix = Vec<ESeries>;

/// One element of the vector at one step.
#[derive(Debug, Clone)]
pub(crate) struct VSample {
    pub(crate) metric: Labels,
    pub(crate) v: f64,
}

/// The vector of one node at one step.
pub(crate) type Vector = Vec<VSample>;

/// What a node evaluates to.
#[derive(Debug)]
pub(crate) enum EVal {
    Matrix(Matrix),
    String(String),
}

/// Selected raw series for a range function: points at their stored timestamps, staleness
/// markers removed, plus how to window them at each step.
#[derive(Debug)]
pub(crate) struct RangeInput {
    pub(crate) series: Vec<RangeSeries>,
    pub(crate) range: i64,
    pub(crate) offset: i64,
    pub(crate) at: Option<Timestamp>,
}

/// What a vector selector's value at a step is, of the newest sample in the lookback window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// Its value.
    Value,
    /// Its timestamp in seconds (`timestamp()`).
    Time,
    /// Its start time in seconds, 0 when unknown (`start_timestamp()`).
    Start,
}

/// One series of a [`RangeInput`].
#[derive(Debug)]
pub(crate) struct RangeSeries {
    pub(crate) metric: Labels,
    pub(crate) points: Vec<Point>,
    /// Each point's start time (0: unknown), for a selected series that has them; a subquery's
    /// points have none.
    pub(crate) starts: Option<Vec<Timestamp>>,
}

/// A selected series as a range function reads it: staleness markers dropped (with their start
/// times).
fn range_series(s: crate::storage::Series) -> RangeSeries {
    debug_assert!(
        s.starts.as_ref().is_none_or(|st| st.len() == s.samples.len()),
        "a start time per sample"
    );
    let keep = |p: &crate::storage::Sample| !is_stale_nan(p.v);
    let starts = s.starts.map(|st| {
        s.samples
            .iter()
            .zip(st)
            .filter(|(p, _)| keep(p))
            .map(|(_, st)| st)
            .collect()
    });
    RangeSeries {
        metric: s.labels,
        points: s.samples.into_iter().filter(keep).collect(),
        starts,
    }
}

/// Evaluation state of one query (or of one subquery).
pub(crate) struct Evaluator<'a> {
    storage: &'a dyn Queryable,
    pub(crate) opts: &'a EngineOptions,
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    pub(crate) interval: i64,
    /// Start and end of the outermost query, for `@ start()` and `@ end()`.
    query_start: Timestamp,
    query_end: Timestamp,
    /// Step of the outermost query (0 for an instant query), for `step()`.
    query_step: i64,
    deadline: Instant,
    /// Warnings and infos for the answer (Prometheus's annotations), each once.
    pub(crate) warnings: &'a Warnings,
    /// The value types of the operator nodes met so far.
    types: FxHashMap<usize, ValueType>,
}

/// The warnings (and infos: messages starting `PromQL info:`) an evaluation collects, from any
/// thread.
pub(crate) type Warnings = parking_lot::Mutex<std::collections::BTreeSet<String>>;

/// `v` as Go's `%g` prints it: the shortest digits, in exponent form (`1e+06`, `1.5e-05`) when
/// the decimal exponent is below -4 or at least 6.
pub(crate) fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    // Rust's `{:e}` gives the shortest digits with the exponent: "1.5e7", "-2e-5".
    let e = format!("{v:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{v}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// Prometheus's warning for a quantile outside [0, 1], if `q` is one.
pub(crate) fn invalid_quantile(q: f64) -> Option<String> {
    (q.is_nan() || !(0.0..=1.0).contains(&q)).then(|| {
        format!(
            "PromQL warning: quantile value should be between 0 and 1, got {}",
            go_g(q)
        )
    })
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(
        storage: &'a dyn Queryable,
        opts: &'a EngineOptions,
        start: Timestamp,
        end: Timestamp,
        interval: i64,
        deadline: Instant,
        warnings: &'a Warnings,
    ) -> Self {
        Evaluator {
            storage,
            opts,
            warnings,
            start,
            end,
            interval: interval.max(1),
            query_start: start,
            query_end: end,
            query_step: if start == end { 0 } else { interval.max(1) },
            deadline,
            types: FxHashMap::default(),
        }
    }

    /// Adds a warning to the answer (once, however often it is given).
    pub(crate) fn warn(&self, message: String) {
        self.warnings.lock().insert(message);
    }

    /// The step timestamps.
    pub(crate) fn steps(&self) -> impl Iterator<Item = Timestamp> + use<> {
        let (start, end, interval) = (self.start, self.end, self.interval);
        (0..).map(move |i| start + i * interval).take_while(move |t| *t <= end)
    }

    /// Number of steps.
    pub(crate) fn num_steps(&self) -> usize {
        ((self.end - self.start) / self.interval + 1).max(0) as usize
    }

    pub(crate) fn check_deadline(&self, env: &'static str) -> QueryResult<()> {
        if Instant::now() >= self.deadline {
            Err(QueryError::Timeout(env))
        } else {
            Ok(())
        }
    }

    fn check_samples(&self, n: usize) -> QueryResult<()> {
        if n > self.opts.max_samples {
            Err(QueryError::TooManySamples("query execution"))
        } else {
            Ok(())
        }
    }

    /// Whether a window boundary at exactly `t` is inside the window (Prometheus 2 included it).
    #[inline]
    pub(crate) fn after_left_edge(&self, t: Timestamp, edge: Timestamp) -> bool {
        if self.opts.prometheus_v2 { t >= edge } else { t > edge }
    }

    /// Evaluates a node; its points count against the query's sample limit as Prometheus counts
    /// them (each node's result is held in memory).
    pub(crate) fn eval(&mut self, e: &Expr) -> QueryResult<EVal> {
        // Evaluation recurses as deep as the tree: the stack grows with it.
        let v = deep::guarded(|| self.eval_node(deep::unwrap_parens(e)))?;
        if let EVal::Matrix(m) = &v {
            self.check_samples(m.iter().map(|s| s.points.len()).sum())?;
        }
        Ok(v)
    }

    fn eval_node(&mut self, e: &Expr) -> QueryResult<EVal> {
        self.check_deadline("expression evaluation")?;
        match e {
            Expr::NumberLiteral(n) => Ok(EVal::Matrix(self.constant(n.val))),
            Expr::StringLiteral(s) => Ok(EVal::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => {
                let mut m = self.eval_matrix(&u.expr)?;
                let delayed = self.delayed_names();
                for s in &mut m {
                    s.metric = s.metric.name_dropped(delayed);
                    for p in &mut s.points {
                        p.v = -p.v;
                    }
                }
                Ok(EVal::Matrix(functions::merge_labelsets(m)?))
            }
            Expr::VectorSelector(vs) => Ok(EVal::Matrix(self.vector_selector(vs, Pick::Value)?)),
            Expr::MatrixSelector(ms) => {
                if self.start != self.end {
                    return Err(QueryError::exec("cannot do range evaluation of matrix selector"));
                }
                let input = self.matrix_selector(ms, Reads::Raw)?;
                Ok(EVal::Matrix(self.raw_window(input)))
            }
            Expr::Subquery(sq) => {
                if self.start != self.end {
                    return Err(QueryError::exec("cannot do range evaluation of subquery"));
                }
                let input = self.subquery(sq)?;
                Ok(EVal::Matrix(self.raw_window(input)))
            }
            Expr::Call(call) => functions::eval_call(self, call),
            Expr::Aggregate(agg) => aggregate::eval(self, agg).map(EVal::Matrix),
            Expr::Binary(b) => binary::eval(self, b).map(EVal::Matrix),
            Expr::Extension(_) => Err(QueryError::exec("extension expressions are not supported")),
        }
    }

    /// The type of `e`'s value ([`Expr::value_type`]), in time linear in the tree over a whole
    /// evaluation.
    pub(crate) fn value_type(&mut self, e: &Expr) -> ValueType {
        deep::value_type_memo(e, &mut self.types)
    }

    /// Evaluates a node that must not be a string.
    pub(crate) fn eval_matrix(&mut self, e: &Expr) -> QueryResult<Matrix> {
        match self.eval(e)? {
            EVal::Matrix(m) => Ok(m),
            EVal::String(_) => Err(QueryError::exec(
                "unexpected string where a vector or scalar was expected",
            )),
        }
    }

    /// A scalar: one unlabelled series with `v` at every step.
    pub(crate) fn constant(&self, v: f64) -> Matrix {
        vec![ESeries {
            metric: Labels::empty(),
            points: self.steps().map(|t| Point { t, v }).collect(),
        }]
    }

    /// Evaluates a scalar-typed expression to one value per step (NaN where it has none).
    pub(crate) fn eval_scalar_steps(&mut self, e: &Expr) -> QueryResult<Vec<f64>> {
        let m = self.eval_matrix(e)?;
        let mut out = vec![f64::NAN; self.num_steps()];
        if let Some(s) = m.first() {
            for p in &s.points {
                let i = ((p.t - self.start) / self.interval) as usize;
                if let Some(slot) = out.get_mut(i) {
                    *slot = p.v;
                }
            }
        }
        Ok(out)
    }

    /// Whether dropped metric names are only marked until the end of evaluation (Prometheus 3),
    /// or go at once (Prometheus 2).
    pub(crate) fn delayed_names(&self) -> bool {
        !self.opts.prometheus_v2
    }

    /// The outermost query's start, end and step (ms; the step is 0 for an instant query):
    /// what `start()`, `end()`, `range()` and `step()` return.
    pub(crate) fn query_bounds(&self) -> (Timestamp, Timestamp, i64) {
        (self.query_start, self.query_end, self.query_step)
    }

    /// Resolves an `@` modifier to a timestamp.
    pub(crate) fn at_time(&self, at: Option<&AtModifier>) -> Option<Timestamp> {
        match at? {
            AtModifier::Start => Some(self.query_start),
            AtModifier::End => Some(self.query_end),
            AtModifier::At(t) => Some(system_time_ms(*t)),
        }
    }

    fn select(
        &mut self,
        vs: &VectorSelector,
        mint: Timestamp,
        maxt: Timestamp,
        hints: SelectHints,
    ) -> QueryResult<Vec<crate::storage::Series>> {
        self.select_sets(&matcher_sets(vs)?, mint, maxt, hints)
    }

    fn select_sets(
        &mut self,
        sets: &[Vec<Matcher>],
        mint: Timestamp,
        maxt: Timestamp,
        hints: SelectHints,
    ) -> QueryResult<Vec<crate::storage::Series>> {
        let mut out = Vec::new();
        for set in sets {
            let found = self
                .storage
                .select_hinted(set, mint, maxt, &hints)
                .map_err(|e| match e {
                    crate::Error::TooManySeries(n) => QueryError::TooManySeries(n),
                    other => QueryError::Storage(other),
                })?;
            for r in &found.rollups {
                self.warn(rollup_info(r, hints.source));
            }
            out.extend(found.series);
            if out.len() > self.opts.max_series {
                return Err(QueryError::TooManySeries(self.opts.max_series));
            }
        }
        if sets.len() > 1 {
            // `{a="1" or b="2"}` can select a series twice.
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            out.dedup_by(|a, b| a.labels == b.labels);
        }
        let total: usize = out.iter().map(|s| s.samples.len()).sum();
        self.check_samples(total)?;
        Ok(out)
    }

    /// Evaluates a vector selector at every step: the newest sample in the lookback window,
    /// unless it is a staleness marker; `pick` says what of it becomes the value.
    pub(crate) fn vector_selector(&mut self, vs: &VectorSelector, pick: Pick) -> QueryResult<Matrix> {
        let offset = offset_ms(vs.offset.as_ref());
        let at = self.at_time(vs.at.as_ref());
        self.newest_per_step(&matcher_sets(vs)?, offset, at, pick)
    }

    /// [`Evaluator::vector_selector`] for matcher sets, an offset (ms) and an `@` time.
    pub(crate) fn newest_per_step(
        &mut self,
        sets: &[Vec<Matcher>],
        offset: i64,
        at: Option<Timestamp>,
        pick: Pick,
    ) -> QueryResult<Matrix> {
        let mut out = Vec::new();
        self.newest_per_step_each(sets, offset, at, pick, |s| {
            out.push(s);
            Ok(())
        })?;
        Ok(out)
    }

    /// [`Evaluator::newest_per_step`], handing each series with a point to `sink` in label
    /// order as it is made (wide selections on every core, a chunk at a time) instead of
    /// holding them all.
    pub(crate) fn newest_per_step_each(
        &mut self,
        sets: &[Vec<Matcher>],
        offset: i64,
        at: Option<Timestamp>,
        pick: Pick,
        sink: impl FnMut(ESeries) -> QueryResult<()>,
    ) -> QueryResult<()> {
        let lookback = self.opts.lookback_delta_ms;
        let (lo, hi) = match at {
            Some(a) => (a, a),
            None => (self.start, self.end),
        };
        // Values at step ends on bucket ends are the raw ones, so any rollup within the
        // lookback serves (and `timestamp()` sees the same sample times).
        let reads = if at.is_none() { Reads::Newest } else { Reads::Raw };
        let hints = self.hints(reads, self.start - offset, 0);
        let raw = self.select_sets(sets, lo - offset - lookback, hi - offset, hints)?;
        let ev: &Evaluator<'_> = self;
        let one = |s: &crate::storage::Series| -> QueryResult<Option<ESeries>> {
            let mut points = Vec::with_capacity(ev.num_steps().min(s.samples.len() * 2 + 1));
            let mut cursor = 0usize;
            for ts in ev.steps() {
                let ref_t = at.unwrap_or(ts) - offset;
                // Advance to the first sample after ref_t; the one before it is the candidate.
                while cursor < s.samples.len() && s.samples[cursor].t <= ref_t {
                    cursor += 1;
                }
                let Some(i) = cursor.checked_sub(1) else {
                    continue;
                };
                let sample = s.samples[i];
                if !ev.after_left_edge(sample.t, ref_t - lookback) || is_stale_nan(sample.v) {
                    continue;
                }
                let v = match pick {
                    Pick::Value => sample.v,
                    Pick::Time => sample.t as f64 / 1000.0,
                    Pick::Start => s.starts.as_ref().map_or(0, |st| st[i]) as f64 / 1000.0,
                };
                points.push(Point { t: ts, v });
            }
            Ok((!points.is_empty()).then(|| ESeries {
                metric: s.labels.clone(),
                points,
            }))
        };
        let samples: usize = raw.iter().map(|s| s.samples.len()).sum();
        let wide = is_wide(raw.len(), samples.max(raw.len() * self.num_steps()));
        for_each_series(&raw, wide, one, sink)
    }

    /// What the store may know of a selection to pick a rollup.
    /// (The answer says where rollups stood in: see [`rollup_info`].)
    fn hints(&self, reads: Reads, start: Timestamp, range_ms: i64) -> SelectHints {
        SelectHints {
            step_ms: if self.start == self.end { 0 } else { self.interval },
            start,
            range_ms,
            lookback_ms: self.opts.lookback_delta_ms,
            reads,
            source: self.opts.source_resolution,
            max_series: self.opts.max_series,
        }
    }

    /// Selects the samples a matrix selector covers over the whole query, for a function that
    /// `reads` them as said ([`crate::rollup`]).
    pub(crate) fn matrix_selector(&mut self, ms: &MatrixSelector, reads: Reads) -> QueryResult<RangeInput> {
        let vs = &ms.vs;
        let offset = offset_ms(vs.offset.as_ref());
        let at = self.at_time(vs.at.as_ref());
        let range = bounded_ms(ms.range);
        let (lo, hi) = match at {
            Some(a) => (a, a),
            None => (self.start, self.end),
        };
        let reads = if at.is_none() { reads } else { Reads::Raw };
        let hints = self.hints(reads, self.start - offset, range);
        let raw = self.select(vs, lo - offset - range, hi - offset, hints)?;
        let series = raw.into_iter().map(range_series).collect();
        Ok(RangeInput {
            series,
            range,
            offset,
            at,
        })
    }

    /// Evaluates a subquery over the steps its outer windows need.
    pub(crate) fn subquery(&mut self, sq: &SubqueryExpr) -> QueryResult<RangeInput> {
        let offset = offset_ms(sq.offset.as_ref());
        let at = self.at_time(sq.at.as_ref());
        let range = bounded_ms(sq.range);
        let step = match sq.step {
            Some(s) if !s.is_zero() => bounded_ms(s),
            _ => self.opts.default_subquery_step_ms,
        };
        let (outer_start, outer_end) = match at {
            Some(a) => (a, a),
            None => (
                self.start,
                self.start + (self.end - self.start) / self.interval * self.interval,
            ),
        };
        let end = outer_end - offset;
        // The first step-aligned time inside the first window (left-open in Prometheus 3).
        let first = outer_start - offset - range;
        let mut start = step * (first / step);
        if (self.opts.prometheus_v2 && start < first) || (!self.opts.prometheus_v2 && start <= first) {
            start += step;
        }
        let steps = (i128::from(end) - i128::from(start)) / i128::from(step) + 1;
        if steps > self.opts.max_samples as i128 {
            return Err(QueryError::TooManySamples("subquery evaluation"));
        }
        let mut child = Evaluator {
            warnings: self.warnings,
            storage: self.storage,
            opts: self.opts,
            start,
            end,
            interval: step,
            query_start: self.query_start,
            query_end: self.query_end,
            query_step: self.query_step,
            deadline: self.deadline,
            types: FxHashMap::default(),
        };
        let m = child.eval_matrix(&sq.expr)?;
        let series = m
            .into_iter()
            .map(|s| RangeSeries {
                metric: s.metric,
                points: s.points,
                starts: None,
            })
            .collect();
        Ok(RangeInput {
            series,
            range,
            offset,
            at,
        })
    }

    /// The range vector of a top-level matrix selector or subquery in an instant query: every
    /// point in the window, at its own timestamp.
    fn raw_window(&self, input: RangeInput) -> Matrix {
        let ref_t = input.at.unwrap_or(self.start) - input.offset;
        let left = ref_t - input.range;
        input
            .series
            .into_iter()
            .filter_map(|RangeSeries { metric, points, .. }| {
                let points: Vec<Point> = points
                    .into_iter()
                    .filter(|p| p.t <= ref_t && self.after_left_edge(p.t, left))
                    .collect();
                (!points.is_empty()).then_some(ESeries { metric, points })
            })
            .collect()
    }

    /// Runs `f` at every step on the vectors of `inputs` at that step and collects the results
    /// into series. `f` also gets, for each input, the index of the series each element came from.
    pub(crate) fn range_eval(
        &mut self,
        inputs: &[&Matrix],
        f: impl Fn(Timestamp, &[Vector], &[Vec<usize>]) -> QueryResult<Vector> + Sync,
    ) -> QueryResult<Matrix> {
        let mut cursors: Vec<Vec<usize>> = inputs.iter().map(|m| vec![0; m.len()]).collect();
        let mut collector = Collector::default();
        let steps: Vec<Timestamp> = self.steps().collect();
        let width: usize = inputs.iter().map(|m| m.len()).sum();
        let points: usize = inputs.iter().flat_map(|m| m.iter()).map(|s| s.points.len()).sum();
        // Wide inputs: a batch of steps is gathered in order, then its steps are evaluated on
        // every core (each step on its own); narrow ones a step at a time on this thread.
        let parallel = is_wide(width, points) && steps.len() > 1;
        let batch_len = if parallel { PARALLEL_STEP_BATCH } else { 1 };
        for batch in steps.chunks(batch_len) {
            let gathered: Vec<(Timestamp, Vec<Vector>, Vec<Vec<usize>>)> = batch
                .iter()
                .map(|&ts| {
                    let mut vectors: Vec<Vector> = vec![Vec::new(); inputs.len()];
                    let mut origins: Vec<Vec<usize>> = vec![Vec::new(); inputs.len()];
                    for (i, m) in inputs.iter().enumerate() {
                        gather(m, &mut cursors[i], ts, &mut vectors[i], &mut origins[i]);
                    }
                    (ts, vectors, origins)
                })
                .collect();
            let ev: &Evaluator<'_> = self;
            let one = |(ts, vectors, origins): &(Timestamp, Vec<Vector>, Vec<Vec<usize>>)| {
                ev.check_deadline("expression evaluation")?;
                f(*ts, vectors, origins)
            };
            let outs: Vec<QueryResult<Vector>> = if parallel {
                gathered.par_iter().map(one).collect()
            } else {
                gathered.iter().map(one).collect()
            };
            // In step order, so that the first step's error is the one reported.
            for (&ts, out) in batch.iter().zip(outs) {
                collector.add(ts, out?)?;
                self.check_samples(collector.points)?;
            }
        }
        Ok(collector.series)
    }

    /// Turns a step matrix into an instant vector at `t`.
    pub(crate) fn finish_vector(&self, m: Matrix, t: Timestamp) -> QueryResult<Vec<Sample>> {
        Ok(drop_marked_names(m)?
            .into_iter()
            .filter_map(|s| {
                s.points.first().map(|p| Sample {
                    metric: s.metric,
                    t,
                    v: p.v,
                })
            })
            .collect())
    }

    /// Turns a step matrix into a result matrix, optionally sorted by labels.
    pub(crate) fn finish_matrix(&self, m: Matrix, sort: bool) -> QueryResult<Vec<Series>> {
        let mut out: Vec<Series> = drop_marked_names(m)?
            .into_iter()
            .map(|s| Series {
                metric: s.metric,
                points: s.points,
            })
            .collect();
        if sort {
            out.sort_by(|a, b| a.metric.cmp(&b.metric));
        }
        Ok(out)
    }
}

/// Drops the names marked for dropping during evaluation (Prometheus 3's delayed name
/// removal); series that become alike merge, or are an error where they meet.
fn drop_marked_names(mut m: Matrix) -> QueryResult<Matrix> {
    if !m.iter().any(|s| s.metric.has(crate::labels::DROPPED_NAME)) {
        return Ok(m);
    }
    for s in &mut m {
        s.metric = s.metric.without_dropped_name();
    }
    functions::merge_labelsets(m)
}

/// Collects per-step vectors into series, rejecting a label set seen twice at one step.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pub(crate) series: Matrix,
    index: FxHashMap<Labels, (usize, Timestamp)>,
    pub(crate) points: usize,
}

impl Collector {
    pub(crate) fn add(&mut self, ts: Timestamp, out: Vector) -> QueryResult<()> {
        for s in out {
            match self.index.get_mut(&s.metric) {
                Some((_, last)) if *last == ts => {
                    return Err(QueryError::exec("vector cannot contain metrics with the same labelset"));
                }
                Some((i, last)) => {
                    *last = ts;
                    self.series[*i].points.push(Point { t: ts, v: s.v });
                }
                None => {
                    self.index.insert(s.metric.clone(), (self.series.len(), ts));
                    self.series.push(ESeries {
                        metric: s.metric,
                        points: vec![Point { t: ts, v: s.v }],
                    });
                }
            }
            self.points += 1;
        }
        Ok(())
    }
}

/// Series made from inputs with less work than this (samples read or points made) are made on
/// the calling thread: below it, spreading them over the cores costs more than it saves.
const PARALLEL_MIN_WORK: usize = 100_000;

/// Whether work over `series` inputs holding `work` samples or points is worth both cores.
pub(crate) fn is_wide(series: usize, work: usize) -> bool {
    series >= crate::PARALLEL_MIN_SERIES && work >= PARALLEL_MIN_WORK
}

/// Series evaluated together on the parallel path before their results are handed on.
const PARALLEL_CHUNK_SERIES: usize = 1024;

/// Steps of a wide step-by-step evaluation gathered and evaluated together on the parallel
/// path: enough to keep both cores busy, few enough that the gathered vectors stay small.
const PARALLEL_STEP_BATCH: usize = 32;

/// Makes a series from each of `inputs` with `one` and hands those it makes to `sink`, in
/// input order. With `parallel`, a chunk of inputs at a time is spread over the cores (only a
/// chunk's results are held at once).
pub(crate) fn for_each_series<T: Sync>(
    inputs: &[T],
    parallel: bool,
    one: impl Fn(&T) -> QueryResult<Option<ESeries>> + Sync,
    mut sink: impl FnMut(ESeries) -> QueryResult<()>,
) -> QueryResult<()> {
    if parallel {
        for chunk in inputs.chunks(PARALLEL_CHUNK_SERIES) {
            let done: Vec<Option<ESeries>> = chunk
                .par_iter()
                .with_min_len(16)
                .map(&one)
                .collect::<QueryResult<_>>()?;
            for s in done.into_iter().flatten() {
                sink(s)?;
            }
        }
    } else {
        for input in inputs {
            if let Some(s) = one(input)? {
                sink(s)?;
            }
        }
    }
    Ok(())
}

/// Fills `out` with the elements of `m` at step `ts`, advancing the per-series cursors.
fn gather(m: &Matrix, cursors: &mut [usize], ts: Timestamp, out: &mut Vector, origins: &mut Vec<usize>) {
    out.clear();
    origins.clear();
    for (i, s) in m.iter().enumerate() {
        let c = &mut cursors[i];
        while *c < s.points.len() && s.points[*c].t < ts {
            *c += 1;
        }
        if let Some(p) = s.points.get(*c).filter(|p| p.t == ts) {
            out.push(VSample {
                metric: s.metric.clone(),
                v: p.v,
            });
            origins.push(i);
            *c += 1;
        }
    }
}

/// Largest time or duration the engine works with, in milliseconds (about 142,000 years).
/// Bounding every input keeps the sums of times, offsets and ranges far from `i64` overflow.
pub(crate) const MAX_ABS_MS: i64 = 1 << 52;

/// A duration in milliseconds, capped at [`MAX_ABS_MS`].
fn bounded_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).min(MAX_ABS_MS)
}

/// A duration offset in milliseconds (negative for `offset -5m`).
pub(crate) fn offset_ms(o: Option<&Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => bounded_ms(*d),
        Some(Offset::Neg(d)) => -bounded_ms(*d),
        None => 0,
    }
}

fn system_time_ms(t: std::time::SystemTime) -> Timestamp {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => bounded_ms(d),
        Err(e) => -bounded_ms(e.duration()),
    }
}

/// The matcher sets of a selector: one set, or one per `or` alternative.
pub(crate) fn matcher_sets(vs: &VectorSelector) -> QueryResult<Vec<Vec<Matcher>>> {
    let mut base: Vec<Matcher> = Vec::new();
    if let Some(name) = &vs.name {
        base.push(Matcher::equal(crate::labels::METRIC_NAME, name.clone()));
    }
    let convert = |ms: &[ParserMatcher]| -> Vec<Matcher> { ms.iter().map(convert_matcher).collect() };
    if vs.matchers.or_matchers.is_empty() {
        base.extend(convert(&vs.matchers.matchers));
        return Ok(vec![base]);
    }
    Ok(vs
        .matchers
        .or_matchers
        .iter()
        .map(|alt| {
            let mut set = base.clone();
            set.extend(convert(alt));
            set
        })
        .collect())
}

fn convert_matcher(m: &ParserMatcher) -> Matcher {
    match &m.op {
        ParserOp::Equal => Matcher::equal(m.name.clone(), m.value.clone()),
        ParserOp::NotEqual => Matcher::not_equal(m.name.clone(), m.value.clone()),
        ParserOp::Re(re) => Matcher::with_regex(MatchOp::Regex, m.name.clone(), m.value.clone(), re.clone()),
        ParserOp::NotRe(re) => Matcher::with_regex(MatchOp::NotRegex, m.name.clone(), m.value.clone(), re.clone()),
    }
}

/// The info an answer carries for a range read from rollups instead of raw samples.
fn rollup_info(r: &crate::storage::RollupRead, source: SourceResolution) -> String {
    let why = match source {
        SourceResolution::UpTo(_) => "as max_source_resolution allows",
        SourceResolution::Exact | SourceResolution::Raw => "raw samples are gone there",
    };
    format!(
        "PromQL info: samples from {} to {} were read from {} rollups ({why})",
        crate::time::format_rfc3339(r.from),
        crate::time::format_rfc3339(r.to),
        crate::rollup::resolution_name(r.resolution_ms),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_g() {
        for (v, want) in [
            (1.5, "1.5"),
            (-1.0, "-1"),
            (2.0, "2"),
            (123_456.0, "123456"),
            (1e6, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.000_015, "1.5e-05"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(super::go_g(v), want);
        }
    }
}
