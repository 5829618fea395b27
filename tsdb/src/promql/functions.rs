//! Function calls: the dispatcher, the functions of instant vectors and scalars, and the
//! special ones that rewrite labels (`label_replace`, `label_join`) or look at the query itself
//! (`absent`, `absent_over_time`, `timestamp`).

use std::sync::Once;

use chrono::{DateTime, Datelike, Timelike};
use promql_parser::label::MatchOp as ParserOp;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Call, Expr, Function, register_extra_functions};
use regex::Regex;
use rustc_hash::FxHashMap;

use super::deep::{self, unwrap_parens};
use super::error::{QueryError, QueryResult};
use super::eval::{
    ESeries, EVal, Evaluator, Matrix, Pick, RangeInput, RangeSeries, VSample, Vector, for_each_series, is_wide,
};
use super::histogram::{histogram_fraction, histogram_quantile, histogram_quantiles};
use super::range_functions::{self, Window};
use super::value::Point;
use crate::labels::{Labels, METRIC_NAME};
use crate::rollup::Reads;
use crate::storage::Timestamp;

/// Registers functions that Prometheus 2.x had under older names (`holt_winters`), so old
/// queries and test scripts parse.
pub(crate) fn register_compat_functions() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let hw = Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        );
        if let Err(e) = register_extra_functions(vec![hw]) {
            tracing::debug!(error = %e, "holt_winters already known to the parser");
        }
    });
}

/// Evaluates a function call.
pub(crate) fn eval_call(ev: &mut Evaluator<'_>, call: &Call) -> QueryResult<EVal> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(AsRef::as_ref).collect();
    if matches!(name, "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc") && ev.start != ev.end {
        ev.warn(
            "PromQL warning: sort is ineffective for range queries since results are always ordered by labels".into(),
        );
    }
    match name {
        "timestamp" => {
            if let Some(Expr::VectorSelector(vs)) = args.first().map(|a| unwrap_parens(a)) {
                let m = ev.vector_selector(vs, Pick::Time)?;
                return Ok(EVal::Matrix(drop_names(m, ev.delayed_names())));
            }
        }
        "start_timestamp" => {
            // Start times are the store's: a selector has them (0 where unknown), any other
            // expression none, so its result is empty.
            let m = match args.first().map(|a| unwrap_parens(a)) {
                Some(Expr::VectorSelector(vs)) => ev.vector_selector(vs, Pick::Start)?,
                Some(other) => {
                    ev.eval_matrix(other)?;
                    Vec::new()
                }
                None => return Err(QueryError::exec("start_timestamp needs an argument")),
            };
            return Ok(EVal::Matrix(drop_names(m, ev.delayed_names())));
        }
        "step" | "range" | "start" | "end" => {
            let (start, end, step) = ev.query_bounds();
            let ms = match name {
                "step" => step,
                "range" => end - start,
                "start" => start,
                _ => end,
            };
            return Ok(EVal::Matrix(ev.constant(ms as f64 / 1000.0)));
        }
        "info" => return super::info::eval(ev, &args).map(EVal::Matrix),
        "label_replace" => return label_replace(ev, &args).map(EVal::Matrix),
        "label_join" => return label_join(ev, &args).map(EVal::Matrix),
        "absent_over_time" => return absent_over_time(ev, &args).map(EVal::Matrix),
        _ => {}
    }
    if let Some(i) = args.iter().position(|a| deep::value_type(a) == ValueType::Matrix) {
        return range_call(ev, name, &args, i).map(EVal::Matrix);
    }
    instant_call(ev, name, &args).map(EVal::Matrix)
}

fn drop_names(mut m: Matrix, delayed: bool) -> Matrix {
    for s in &mut m {
        s.metric = s.metric.name_dropped(delayed);
    }
    m
}

/// Evaluates a function with a range-vector argument: for each series, a window slides over the
/// steps.
fn range_call(ev: &mut Evaluator<'_>, name: &str, args: &[&Expr], matrix_arg: usize) -> QueryResult<Matrix> {
    let mut out = Vec::new();
    range_call_each(ev, name, args, matrix_arg, |s| {
        out.push(s);
        Ok(())
    })?;
    merge_labelsets(out)
}

/// [`range_call`], handing each result series to `sink` as it is made (in input order) instead
/// of collecting them: an aggregation over it then holds groups, not series.
pub(crate) fn range_call_each(
    ev: &mut Evaluator<'_>,
    name: &str,
    args: &[&Expr],
    matrix_arg: usize,
    sink: impl FnMut(ESeries) -> QueryResult<()>,
) -> QueryResult<()> {
    let f =
        range_functions::lookup(name).ok_or_else(|| QueryError::exec(format!("function {name:?} is not supported")))?;
    let mut params: Vec<Vec<f64>> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i != matrix_arg {
            params.push(ev.eval_scalar_steps(a)?);
        }
    }
    // Counters keep every reset in rollups, and a window's newest sample is a bucket's last.
    let reads = match name {
        "rate" | "increase" => Reads::Increase,
        "last_over_time" => Reads::Newest,
        _ => Reads::Raw,
    };
    let input = range_input(ev, args[matrix_arg], reads)?;
    let keep_name = matches!(name, "last_over_time" | "first_over_time");
    let steps: Vec<Timestamp> = ev.steps().collect();
    let ev: &Evaluator<'_> = ev;
    let delayed = ev.delayed_names();
    // One series: its window slid over the steps.
    let one = |RangeSeries { metric, points, starts }: &RangeSeries| -> QueryResult<Option<ESeries>> {
        ev.check_deadline("expression evaluation")?;
        let (mut lo, mut hi) = (0usize, 0usize);
        let mut result = Vec::new();
        let mut step_params = vec![0.0; params.len()];
        let overlap = std::cell::Cell::new(false);
        // Worth a pass over the series only when the window slides over several steps.
        let resets = (steps.len() > 1 && matches!(name, "rate" | "increase"))
            .then(|| range_functions::reset_counts(points, starts.as_deref()));
        for (step, &ts) in steps.iter().enumerate() {
            let end = input.at.unwrap_or(ts) - input.offset;
            let start = end - input.range;
            while hi < points.len() && points[hi].t <= end {
                hi += 1;
            }
            while lo < hi && !ev.after_left_edge(points[lo].t, start) {
                lo += 1;
            }
            if lo >= hi {
                continue;
            }
            for (slot, p) in step_params.iter_mut().zip(&params) {
                *slot = p[step];
            }
            if name == "quantile_over_time"
                && let Some(w) = super::eval::invalid_quantile(step_params[0])
            {
                ev.warn(w);
            }
            if matches!(name, "holt_winters" | "double_exponential_smoothing") {
                range_functions::check_smoothing_factors(step_params[0], step_params[1]).map_err(QueryError::exec)?;
            }
            let w = Window {
                points: &points[lo..hi],
                starts: starts.as_ref().map(|st| &st[lo..hi]),
                overlap: &overlap,
                eval_t: ts,
                start,
                end,
                range: input.range,
                v2: ev.opts.prometheus_v2,
                resets: resets.as_ref().map(|r| r[hi - 1] - r[lo]),
            };
            if let Some(v) = f(&w, &step_params) {
                result.push(Point { t: ts, v });
            }
        }
        // As Prometheus: `rate` or `increase` with a result for a series whose name is not a
        // counter's.
        if matches!(name, "rate" | "increase")
            && !result.is_empty()
            && let Some(m) = metric.get_or_dropped(crate::labels::METRIC_NAME)
            && !["_total", "_sum", "_count", "_bucket"].iter().any(|x| m.ends_with(x))
        {
            ev.warn(format!(
                "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {m:?}"
            ));
        }
        if overlap.get() {
            ev.warn(format!(
                "PromQL warning: sample has start time that overlaps with previous sample timestamp for metric {:?}",
                metric.metric_name().unwrap_or_default()
            ));
        }
        if result.is_empty() {
            return Ok(None);
        }
        let metric = if keep_name {
            metric.clone()
        } else {
            metric.name_dropped(delayed)
        };
        Ok(Some(ESeries { metric, points: result }))
    };
    // Wide inputs are spread over the cores, a series at a time.
    let samples: usize = input.series.iter().map(|s| s.points.len()).sum();
    for_each_series(&input.series, is_wide(input.series.len(), samples), one, sink)
}

/// Whether `name` is evaluated by [`range_call_each`] (a range function with no special form).
pub(crate) fn is_plain_range_function(name: &str) -> bool {
    range_functions::lookup(name).is_some() && !matches!(name, "absent_over_time" | "timestamp")
}

fn range_input(ev: &mut Evaluator<'_>, arg: &Expr, reads: Reads) -> QueryResult<RangeInput> {
    match unwrap_parens(arg) {
        Expr::MatrixSelector(ms) => ev.matrix_selector(ms, reads),
        Expr::Subquery(sq) => ev.subquery(sq),
        other => Err(QueryError::exec(format!(
            "expected a range vector, got {}",
            deep::value_type(other)
        ))),
    }
}

pub(crate) fn merge_labelsets(m: Matrix) -> QueryResult<Matrix> {
    // Series that end up with the same labels (a dropped name, a relabelling) are one series if
    // they never have a point at the same step, as in Prometheus 3; otherwise it is an error.
    let mut first: FxHashMap<Labels, usize> = FxHashMap::default();
    let mut out: Matrix = Vec::with_capacity(m.len());
    let mut merged = false;
    for s in m {
        match first.get(&s.metric) {
            Some(&i) => {
                out[i].points.extend(s.points);
                merged = true;
            }
            None => {
                first.insert(s.metric.clone(), out.len());
                out.push(s);
            }
        }
    }
    if merged {
        for s in &mut out {
            if !s.points.windows(2).all(|w| w[0].t < w[1].t) {
                s.points.sort_by_key(|p| p.t);
                if s.points.windows(2).any(|w| w[0].t == w[1].t) {
                    return Err(QueryError::exec("vector cannot contain metrics with the same labelset"));
                }
            }
        }
    }
    Ok(out)
}

/// `absent_over_time(v[range])`: 1 at steps where no selected series has a sample in its
/// window, labelled from the selector's equality matchers.
fn absent_over_time(ev: &mut Evaluator<'_>, args: &[&Expr]) -> QueryResult<Matrix> {
    let arg = args
        .first()
        .ok_or_else(|| QueryError::exec("absent_over_time needs an argument"))?;
    let input = range_input(ev, arg, Reads::Raw)?;
    let labels = absent_labels(arg);
    let mut out = Vec::new();
    for ts in ev.steps() {
        let end = input.at.unwrap_or(ts) - input.offset;
        let start = end - input.range;
        let present = input
            .series
            .iter()
            .any(|s| s.points.iter().any(|p| p.t <= end && ev.after_left_edge(p.t, start)));
        if !present {
            out.push(Point { t: ts, v: 1.0 });
        }
    }
    Ok(if out.is_empty() {
        Vec::new()
    } else {
        vec![ESeries {
            metric: labels,
            points: out,
        }]
    })
}

/// The labels `absent` gives its result: the selector's `=` matchers, unless a name repeats.
fn absent_labels(e: &Expr) -> Labels {
    let vs = match unwrap_parens(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut repeated: Vec<String> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, ParserOp::Equal) {
            if pairs.iter().any(|(n, _)| *n == m.name) {
                repeated.push(m.name.clone());
            } else {
                pairs.push((m.name.clone(), m.value.clone()));
            }
        } else if pairs.iter().any(|(n, _)| *n == m.name) {
            repeated.push(m.name.clone());
        }
    }
    pairs.retain(|(n, _)| !repeated.contains(n));
    Labels::from_pairs(pairs)
}

/// Evaluates a function whose arguments are instant vectors, scalars or strings, step by step.
fn instant_call(ev: &mut Evaluator<'_>, name: &str, args: &[&Expr]) -> QueryResult<Matrix> {
    let mut mats: Vec<Matrix> = Vec::new();
    for a in args {
        if deep::value_type(a) != ValueType::String {
            mats.push(ev.eval_matrix(a)?);
        }
    }
    let string_args: Vec<String> = args
        .iter()
        .filter_map(|a| match unwrap_parens(a) {
            Expr::StringLiteral(s) => Some(s.val.clone()),
            _ => None,
        })
        .collect();
    let absent_metric = args.first().map(|a| absent_labels(a)).unwrap_or_default();
    let refs: Vec<&Matrix> = mats.iter().collect();
    let delayed = ev.delayed_names();
    let warnings = ev.warnings;
    let warn = |m: String| {
        warnings.lock().insert(m);
    };
    ev.range_eval(&refs, |ts, v, _| {
        apply_instant(name, ts, v, &string_args, &absent_metric, delayed, &warn)
    })
}

fn apply_instant(
    name: &str,
    ts: Timestamp,
    v: &[Vector],
    strings: &[String],
    absent_metric: &Labels,
    delayed: bool,
    warn: super::histogram::Warn<'_>,
) -> QueryResult<Vector> {
    let scalar = |i: usize| v.get(i).and_then(|x| x.first()).map_or(f64::NAN, |s| s.v);
    let math = |f: fn(f64) -> f64| map_values(&v[0], f, delayed);
    Ok(match name {
        "abs" => math(f64::abs),
        "ceil" => math(f64::ceil),
        "floor" => math(f64::floor),
        "exp" => math(f64::exp),
        "sqrt" => math(f64::sqrt),
        "ln" => math(f64::ln),
        "log2" => math(f64::log2),
        "log10" => math(f64::log10),
        "sgn" => math(|x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        }),
        "sin" => math(f64::sin),
        "cos" => math(f64::cos),
        "tan" => math(f64::tan),
        "asin" => math(f64::asin),
        "acos" => math(f64::acos),
        "atan" => math(f64::atan),
        "sinh" => math(f64::sinh),
        "cosh" => math(f64::cosh),
        "tanh" => math(f64::tanh),
        "asinh" => math(f64::asinh),
        "acosh" => math(f64::acosh),
        "atanh" => math(f64::atanh),
        "deg" => math(f64::to_degrees),
        "rad" => math(f64::to_radians),
        "round" => {
            let to_nearest = if v.len() > 1 { scalar(1) } else { 1.0 };
            // Round half up, as Prometheus does: floor(x * inv + 0.5) / inv.
            let inv = 1.0 / to_nearest;
            map_values(&v[0], |x| (x * inv + 0.5).floor() / inv, delayed)
        }
        "clamp" => {
            let (lo, hi) = (scalar(1), scalar(2));
            if lo > hi {
                return Ok(Vec::new());
            }
            map_values(&v[0], |x| go_min(go_max(x, lo), hi), delayed)
        }
        "clamp_min" => {
            let lo = scalar(1);
            map_values(&v[0], |x| go_max(x, lo), delayed)
        }
        "clamp_max" => {
            let hi = scalar(1);
            map_values(&v[0], |x| go_min(x, hi), delayed)
        }
        "min_of" | "max_of" => {
            let (a, b) = (scalar(0), scalar(1));
            let v = if a.is_nan() || b.is_nan() {
                f64::NAN
            } else if name == "min_of" {
                a.min(b)
            } else {
                a.max(b)
            };
            vec![VSample {
                metric: Labels::empty(),
                v,
            }]
        }
        "pi" => vec![VSample {
            metric: Labels::empty(),
            v: std::f64::consts::PI,
        }],
        "time" => vec![VSample {
            metric: Labels::empty(),
            v: ts as f64 / 1000.0,
        }],
        "timestamp" => map_values(&v[0], |_| ts as f64 / 1000.0, delayed),
        "vector" => vec![VSample {
            metric: Labels::empty(),
            v: scalar(0),
        }],
        "scalar" => {
            let value = if v[0].len() == 1 { v[0][0].v } else { f64::NAN };
            vec![VSample {
                metric: Labels::empty(),
                v: value,
            }]
        }
        "absent" => {
            if v[0].is_empty() {
                vec![VSample {
                    metric: absent_metric.clone(),
                    v: 1.0,
                }]
            } else {
                Vec::new()
            }
        }
        "sort" => sorted(&v[0], false),
        "sort_desc" => sorted(&v[0], true),
        "sort_by_label" | "sort_by_label_desc" => {
            let mut out = v[0].clone();
            let desc = name.ends_with("_desc");
            out.sort_by(|a, b| {
                let ord = strings
                    .iter()
                    .map(|l| {
                        natural_cmp(
                            a.metric.get_or_dropped(l).unwrap_or(""),
                            b.metric.get_or_dropped(l).unwrap_or(""),
                        )
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or_else(|| a.metric.cmp(&b.metric));
                if desc { ord.reverse() } else { ord }
            });
            out
        }
        "histogram_quantile" => histogram_quantile(scalar(0), &v[1], delayed, warn),
        "histogram_quantiles" => {
            let label = strings.first().map_or("", String::as_str);
            if !crate::labels::is_valid_name(label) {
                return Err(QueryError::exec(format!("invalid quantile label name {label:?}")));
            }
            let qs: Vec<f64> = (1..v.len()).map(scalar).collect();
            histogram_quantiles(&v[0], label, &qs, delayed, warn)
        }
        "histogram_fraction" => histogram_fraction(scalar(0), scalar(1), &v[2], delayed, warn),
        "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year" | "days_in_month" | "month" | "year" => {
            date_function(name, v.first(), ts, delayed)
        }
        other => {
            return Err(QueryError::exec(format!("function {other:?} is not supported")));
        }
    })
}

/// `max` that propagates NaN, like Go's `math.Max` (Rust's `f64::max` ignores NaN).
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// `min` that propagates NaN, like Go's `math.Min`.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

/// `f` of every value, the metric names dropped (or marked, with `delayed`).
fn map_values(v: &Vector, f: impl Fn(f64) -> f64, delayed: bool) -> Vector {
    v.iter()
        .map(|s| VSample {
            metric: s.metric.name_dropped(delayed),
            v: f(s.v),
        })
        .collect()
}

fn sorted(v: &Vector, desc: bool) -> Vector {
    let mut out = v.clone();
    out.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ if desc => b.v.partial_cmp(&a.v).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.v.partial_cmp(&b.v).unwrap_or(std::cmp::Ordering::Equal),
    });
    out
}

/// Compares strings with runs of digits compared as numbers ("a2" < "a10").
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut ai, mut bi) = (a.char_indices().peekable(), b.char_indices().peekable());
    loop {
        match (ai.peek().copied(), bi.peek().copied()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some((ia, ca)), Some((ib, cb))) if ca.is_ascii_digit() && cb.is_ascii_digit() => {
                let ea = a[ia..].find(|c: char| !c.is_ascii_digit()).map_or(a.len(), |e| ia + e);
                let eb = b[ib..].find(|c: char| !c.is_ascii_digit()).map_or(b.len(), |e| ib + e);
                let (na, nb) = (a[ia..ea].trim_start_matches('0'), b[ib..eb].trim_start_matches('0'));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord.is_ne() {
                    return ord;
                }
                while ai.peek().is_some_and(|(i, _)| *i < ea) {
                    ai.next();
                }
                while bi.peek().is_some_and(|(i, _)| *i < eb) {
                    bi.next();
                }
            }
            (Some((_, ca)), Some((_, cb))) => {
                if ca != cb {
                    return ca.cmp(&cb);
                }
                ai.next();
                bi.next();
            }
        }
    }
}

fn date_function(name: &str, arg: Option<&Vector>, ts: Timestamp, delayed: bool) -> Vector {
    let now = [VSample {
        metric: Labels::empty(),
        v: ts as f64 / 1000.0,
    }];
    let input: &[VSample] = arg.map_or(&now, Vec::as_slice);
    input
        .iter()
        .filter_map(|s| {
            let secs = s.v;
            if secs.is_nan() || secs.is_infinite() {
                return Some(VSample {
                    metric: s.metric.name_dropped(delayed),
                    v: secs,
                });
            }
            let t = DateTime::from_timestamp(secs as i64, 0)?;
            let v = match name {
                "minute" => t.minute() as f64,
                "hour" => t.hour() as f64,
                "day_of_week" => t.weekday().num_days_from_sunday() as f64,
                "day_of_month" => t.day() as f64,
                "day_of_year" => t.ordinal() as f64,
                "days_in_month" => days_in_month(t.year(), t.month()) as f64,
                "month" => t.month() as f64,
                _ => t.year() as f64,
            };
            Some(VSample {
                metric: s.metric.name_dropped(delayed),
                v,
            })
        })
        .collect()
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    let first_next = chrono::NaiveDate::from_ymd_opt(ny, nm, 1);
    let first = chrono::NaiveDate::from_ymd_opt(year, month, 1);
    match (first, first_next) {
        (Some(a), Some(b)) => (b - a).num_days() as u32,
        _ => 30,
    }
}

/// `label_replace(v, dst, replacement, src, regex)`.
fn label_replace(ev: &mut Evaluator<'_>, args: &[&Expr]) -> QueryResult<Matrix> {
    let [vec, dst, repl, src, re] = args else {
        return Err(QueryError::exec("label_replace needs 5 arguments"));
    };
    let (dst, repl, src, re) = (string_arg(dst)?, string_arg(repl)?, string_arg(src)?, string_arg(re)?);
    let regex = Regex::new(&format!("^(?s:{re})$"))
        .map_err(|e| QueryError::exec(format!("invalid regular expression in label_replace(): {re}: {e}")))?;
    if !crate::labels::is_valid_name(&dst) {
        return Err(QueryError::exec(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let m = ev.eval_matrix(vec)?;
    let out: Matrix = m
        .into_iter()
        .map(|s| {
            let value = s.metric.get_or_dropped(&src).unwrap_or("");
            let metric = match regex.captures(value) {
                Some(caps) => {
                    let mut res = String::new();
                    // Go's `$1`/`${name}` expansion and Rust's agree (`$1x` names group `1x` in both).
                    caps.expand(&repl, &mut res);
                    set_label(&s.metric, &dst, &res)
                }
                None => s.metric,
            };
            ESeries {
                metric,
                points: s.points,
            }
        })
        .collect();
    merge_labelsets(out)
}

/// `label_join(v, dst, separator, src...)`.
fn label_join(ev: &mut Evaluator<'_>, args: &[&Expr]) -> QueryResult<Matrix> {
    if args.len() < 3 {
        return Err(QueryError::exec("label_join needs at least 3 arguments"));
    }
    let dst = string_arg(args[1])?;
    let sep = string_arg(args[2])?;
    let srcs: Vec<String> = args[3..].iter().map(|a| string_arg(a)).collect::<QueryResult<_>>()?;
    if !crate::labels::is_valid_name(&dst) {
        return Err(QueryError::exec(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    for s in &srcs {
        if !crate::labels::is_valid_name(s) {
            return Err(QueryError::exec(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
    }
    let m = ev.eval_matrix(args[0])?;
    let out: Matrix = m
        .into_iter()
        .map(|s| {
            let joined: Vec<&str> = srcs.iter().map(|n| s.metric.get_or_dropped(n).unwrap_or("")).collect();
            ESeries {
                metric: set_label(&s.metric, &dst, &joined.join(&sep)),
                points: s.points,
            }
        })
        .collect();
    merge_labelsets(out)
}

/// `metric` with label `name` set to `value` (removed when empty); setting `__name__` keeps
/// the name that was to be dropped.
fn set_label(metric: &Labels, name: &str, value: &str) -> Labels {
    let mut b = metric.to_builder();
    b.set(name, value);
    if name == METRIC_NAME {
        b.del(crate::labels::DROPPED_NAME);
    }
    b.build()
}

fn string_arg(e: &Expr) -> QueryResult<String> {
    match unwrap_parens(e) {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        other => Err(QueryError::exec(format!(
            "expected a string argument, got {}",
            deep::value_type(other)
        ))),
    }
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'f', -1, 64)` does, as Prometheus prints
/// values in labels and in the API.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        assert!(natural_cmp("a2", "a10").is_lt());
        assert!(natural_cmp("b", "a10").is_gt());
        assert!(natural_cmp("x01", "x1").is_eq());
    }

    #[test]
    fn floats_print_like_go() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.25), "0.25");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(1e21), "1000000000000000000000");
    }
}
