//! PromQL evaluation on the `promql-parser` AST, with Prometheus's semantics as the reference.
//!
//! ```text
//!  query text --promql-parser--> Expr --Evaluator--> step matrix --> Value (scalar/vector/matrix)
//!                                          |
//!                               Queryable::select (head, blocks)
//! ```
//!
//! Like Prometheus, every expression is evaluated for all steps of the query at once: a node
//! yields one series per output label set with a point at each step where it has a value
//! (`eval`), and an instant query is a range query with one step. Range functions slide a
//! window over each selected series (`range_functions`), aggregations and binary operators work
//! step by step on the vectors of their inputs (`aggregate`, `binary`).
//!
//! Semantics follow Prometheus 3: range windows and the lookback window are left-open
//! (`(t - range, t]`), `rate` extrapolates as `extrapolatedRate` does, a staleness marker ends a
//! series. [`EngineOptions::prometheus_v2`] switches to the closed windows of Prometheus 2.x for
//! comparing against old test data.

mod aggregate;
mod binary;
pub mod deep;
mod error;
mod eval;
mod functions;
mod histogram;
mod info;
mod range_functions;
pub mod script;
mod value;

use std::time::{Duration, Instant};

use promql_parser::parser::Expr;
use promql_parser::parser::value::ValueType;

pub use deep::Query;
pub use error::{QueryError, QueryResult};
pub use functions::format_float;
pub use value::{Point, Sample, Series, Value};

pub use crate::rollup::SourceResolution;
use crate::storage::{Queryable, Timestamp};
use eval::{EVal, Evaluator, Warnings};

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back a vector selector looks for the newest sample (Prometheus: 5 m).
    pub lookback_delta_ms: i64,
    /// Upper bound on samples a query may hold in memory at once.
    pub max_samples: usize,
    /// Upper bound on the series one selector of a query may select.
    pub max_series: usize,
    /// Wall-clock budget of one query.
    pub timeout: Duration,
    /// Step of a subquery written without one (`x[1h:]`).
    pub default_subquery_step_ms: i64,
    /// Prometheus 2.x window semantics: windows include their left boundary (`[t - range, t]`).
    pub prometheus_v2: bool,
    /// Which samples queries read ([`crate::rollup`]): raw samples wherever they exist by
    /// default, rollups where they are gone or where the caller asks.
    pub source_resolution: SourceResolution,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            max_series: 1_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step_ms: 60 * 1000,
            prometheus_v2: false,
            source_resolution: SourceResolution::Exact,
        }
    }
}

/// Maximum points per series of a range query, as Prometheus's API limits it.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Evaluates PromQL queries against a [`Queryable`].
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    /// An engine with the given options.
    pub fn new(opts: EngineOptions) -> Self {
        functions::register_compat_functions();
        Engine { opts }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// This engine reading the samples `source` says, as the API's `max_source_resolution`
    /// asks.
    pub fn with_source_resolution(&self, source: SourceResolution) -> Engine {
        let mut opts = self.opts.clone();
        opts.source_resolution = source;
        Engine { opts }
    }

    /// Parses a query, with Prometheus's error text on failure; deeper than
    /// [`deep::MAX_DEPTH`] it is refused as `bad_data`.
    pub fn parse(&self, query: &str) -> QueryResult<Query> {
        functions::register_compat_functions();
        Query::parse(query)
    }

    /// Evaluates `query` at time `t`.
    pub fn instant_query(&self, storage: &dyn Queryable, query: &str, t: Timestamp) -> QueryResult<Value> {
        self.instant_query_warned(storage, query, t).map(|(v, _)| v)
    }

    /// [`Engine::instant_query`], with the warnings for the answer (Prometheus's annotations:
    /// `PromQL warning: ...`).
    pub fn instant_query_warned(
        &self,
        storage: &dyn Queryable,
        query: &str,
        t: Timestamp,
    ) -> QueryResult<(Value, Vec<String>)> {
        let expr = self.parse(query)?;
        let warnings = Warnings::default();
        let v = self.instant_with(storage, &expr, t, &warnings)?;
        Ok((v, warnings.into_inner().into_iter().collect()))
    }

    /// Evaluates a parsed expression at time `t`.
    pub fn instant(&self, storage: &dyn Queryable, expr: &Expr, t: Timestamp) -> QueryResult<Value> {
        self.instant_with(storage, expr, t, &Warnings::default())
    }

    fn instant_with(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        t: Timestamp,
        warnings: &Warnings,
    ) -> QueryResult<Value> {
        check_time(t)?;
        let mut ev = self.evaluator(storage, t, t, 1, warnings);
        let val = ev.eval(expr)?;
        Ok(match (val, deep::value_type(expr)) {
            (EVal::String(s), _) => Value::String { t, v: s },
            (EVal::Matrix(m), ValueType::Scalar) => {
                let v = m.first().and_then(|s| s.points.first()).map_or(f64::NAN, |p| p.v);
                Value::Scalar { t, v }
            }
            (EVal::Matrix(m), ValueType::Matrix) => Value::Matrix(ev.finish_matrix(m, false)?),
            (EVal::Matrix(m), _) => Value::Vector(ev.finish_vector(m, t)?),
        })
    }

    /// Evaluates `query` at every `step` from `start` to `end` (milliseconds).
    pub fn range_query(
        &self,
        storage: &dyn Queryable,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: i64,
    ) -> QueryResult<Value> {
        self.range_query_warned(storage, query, start, end, step)
            .map(|(v, _)| v)
    }

    /// [`Engine::range_query`], with the warnings for the answer.
    pub fn range_query_warned(
        &self,
        storage: &dyn Queryable,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: i64,
    ) -> QueryResult<(Value, Vec<String>)> {
        let expr = self.parse(query)?;
        let warnings = Warnings::default();
        let v = self.range_with(storage, &expr, start, end, step, &warnings)?;
        Ok((v, warnings.into_inner().into_iter().collect()))
    }

    /// Evaluates a parsed expression over a range; the result is always a matrix.
    pub fn range(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        start: Timestamp,
        end: Timestamp,
        step: i64,
    ) -> QueryResult<Value> {
        self.range_with(storage, expr, start, end, step, &Warnings::default())
    }

    fn range_with(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        start: Timestamp,
        end: Timestamp,
        step: i64,
        warnings: &Warnings,
    ) -> QueryResult<Value> {
        if step <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end < start {
            return Err(QueryError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        check_time(start)?;
        check_time(end)?;
        match deep::value_type(expr) {
            ValueType::Scalar | ValueType::Vector => {}
            other => {
                return Err(QueryError::BadData(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    type_label(other)
                )));
            }
        }
        let mut ev = self.evaluator(storage, start, end, step, warnings);
        match ev.eval(expr)? {
            EVal::Matrix(m) => Ok(Value::Matrix(ev.finish_matrix(m, true)?)),
            EVal::String(_) => Err(QueryError::exec("string is not a valid range query result")),
        }
    }

    fn evaluator<'a>(
        &'a self,
        storage: &'a dyn Queryable,
        start: i64,
        end: i64,
        interval: i64,
        warnings: &'a Warnings,
    ) -> Evaluator<'a> {
        Evaluator::new(
            storage,
            &self.opts,
            start,
            end,
            interval,
            Instant::now() + self.opts.timeout,
            warnings,
        )
    }
}

/// Parses a series selector (`up{job="api"}`, as in the API's `match[]`) into its matcher sets:
/// one set, or one per `or` alternative.
pub fn parse_selector(s: &str) -> QueryResult<Vec<Vec<crate::labels::Matcher>>> {
    functions::register_compat_functions();
    let not_a_selector = || QueryError::BadData(format!("invalid series selector {s:?}: expected a vector selector"));
    if !deep::could_be_selector(s) {
        return Err(not_a_selector());
    }
    match Query::parse(s)?.expr() {
        Expr::VectorSelector(vs) => eval::matcher_sets(vs),
        _ => Err(not_a_selector()),
    }
}

/// Rejects evaluation times the engine cannot compute with.
fn check_time(t: Timestamp) -> QueryResult<()> {
    if t.abs() > eval::MAX_ABS_MS {
        return Err(QueryError::BadData(format!("evaluation time {t} ms is out of range")));
    }
    Ok(())
}

/// How Prometheus names value types in errors.
fn type_label(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "instant vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}
