//! Aggregation operators: `sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar`,
//! `quantile`, `count_values`, `topk`, `bottomk`, `limitk`, with `by` and `without`.

use std::cmp::Ordering;

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMIT_RATIO, T_LIMITK, T_MAX, T_MIN, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AggregateExpr, Call, Expr, LabelModifier, VectorSelector};
use rustc_hash::FxHashMap;

use super::binary::{self, BinOp};
use super::deep::{self, unwrap_parens};
use super::error::{QueryError, QueryResult};
use super::eval::{ESeries, Evaluator, Matrix, Pick, VSample, Vector, matcher_sets, offset_ms};
use super::functions;
use super::functions::format_float;
use super::value::Point;
use crate::labels::{DROPPED_NAME, Labels, METRIC_NAME};

/// Running Kahan-compensated sum: the sum and its compensation term.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KahanSum {
    sum: f64,
    c: f64,
}

impl KahanSum {
    pub(crate) fn add(&mut self, inc: f64) {
        let t = self.sum + inc;
        if t.is_infinite() {
            self.c = 0.0;
        } else if self.sum.abs() >= inc.abs() {
            self.c += (self.sum - t) + inc;
        } else {
            self.c += (inc - t) + self.sum;
        }
        self.sum = t;
    }

    pub(crate) fn value(&self) -> f64 {
        if self.sum.is_infinite() {
            self.sum
        } else {
            self.sum + self.c
        }
    }
}

/// Mean that sums directly while the sum stays finite and switches to an incremental mean when
/// it would overflow, as Prometheus does for `avg` and `avg_over_time`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Mean {
    sum: KahanSum,
    mean: f64,
    mean_c: f64,
    count: f64,
    incremental: bool,
}

impl Mean {
    pub(crate) fn add(&mut self, v: f64) {
        self.count += 1.0;
        if self.count == 1.0 {
            self.sum.add(v);
            self.mean = v;
            return;
        }
        if !self.incremental {
            let mut next = self.sum;
            next.add(v);
            if !next.sum.is_infinite() || v.is_infinite() || self.sum.sum.is_infinite() {
                self.sum = next;
                return;
            }
            self.incremental = true;
            self.mean = self.sum.sum / (self.count - 1.0);
            self.mean_c = self.sum.c / (self.count - 1.0);
        }
        let q = (self.count - 1.0) / self.count;
        let mut k = KahanSum {
            sum: q * self.mean,
            c: q * self.mean_c,
        };
        k.add(v / self.count);
        self.mean = k.sum;
        self.mean_c = k.c;
    }

    pub(crate) fn value(&self) -> f64 {
        if self.incremental {
            self.mean + self.mean_c
        } else if self.sum.sum.is_infinite() {
            self.sum.sum
        } else {
            self.sum.sum / self.count + self.sum.c / self.count
        }
    }
}

/// Quantile of `values` with linear interpolation between the closest ranks (`phi` in [0, 1]).
pub(crate) fn quantile(phi: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| {
        a.partial_cmp(b)
            .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()).reverse())
    });
    let n = values.len() as f64;
    let rank = phi * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Quantile,
    CountValues,
    TopK,
    BottomK,
    LimitK,
    LimitRatio,
}

/// Evaluates an aggregation for every step.
pub(crate) fn eval(ev: &mut Evaluator<'_>, agg: &AggregateExpr) -> QueryResult<Matrix> {
    let op = match agg.op.id() {
        T_SUM => Op::Sum,
        T_AVG => Op::Avg,
        T_COUNT => Op::Count,
        T_MIN => Op::Min,
        T_MAX => Op::Max,
        T_GROUP => Op::Group,
        T_STDDEV => Op::Stddev,
        T_STDVAR => Op::Stdvar,
        T_QUANTILE => Op::Quantile,
        T_COUNT_VALUES => Op::CountValues,
        T_TOPK => Op::TopK,
        T_BOTTOMK => Op::BottomK,
        T_LIMITK => Op::LimitK,
        T_LIMIT_RATIO => Op::LimitRatio,
        _ => {
            return Err(QueryError::exec(format!("unsupported aggregation {}", agg.op)));
        }
    };
    let (without, mut names) = match &agg.modifier {
        Some(LabelModifier::Include(l)) => (false, l.labels.clone()),
        Some(LabelModifier::Exclude(l)) => (true, l.labels.clone()),
        None => (false, Vec::new()),
    };
    names.sort();
    let param = agg.param.as_deref();
    let params = match op {
        Op::Quantile | Op::TopK | Op::BottomK | Op::LimitK | Op::LimitRatio => {
            let p = param.ok_or_else(|| QueryError::exec("aggregation needs a parameter"))?;
            Some(ev.eval_scalar_steps(p)?)
        }
        _ => None,
    };
    if let (Op::Quantile, Some(ps)) = (op, params.as_ref()) {
        // As Prometheus: NaN first, then the largest above 1, then the smallest below 0.
        let nan = ps.iter().any(|p| p.is_nan());
        let max = ps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = ps.iter().copied().fold(f64::INFINITY, f64::min);
        // (Go's max and min are NaN once a NaN is among them: then only the NaN is reported.)
        let reported = if nan {
            [Some(f64::NAN), None]
        } else {
            [(max > 1.0).then_some(max), (min < 0.0).then_some(min)]
        };
        for q in reported {
            if let Some(w) = q.and_then(super::eval::invalid_quantile) {
                ev.warn(w);
            }
        }
    }
    let value_label = match (op, param.map(unwrap_parens)) {
        (Op::CountValues, Some(Expr::StringLiteral(s))) => {
            if !crate::labels::is_valid_name(&s.val) {
                return Err(QueryError::exec(format!("invalid label name {:?}", s.val)));
            }
            Some(s.val.clone())
        }
        (Op::CountValues, _) => {
            return Err(QueryError::exec("count_values needs a string parameter"));
        }
        _ => None,
    };
    // Map every input series to its group once; the step loop then works on ordinals.
    // `by (__name__)` groups by a name marked for dropping too, and marks the group's.
    let by_name = !without && names.iter().any(|n| n == METRIC_NAME);
    let grouping = |l: &Labels| -> Labels {
        if without {
            let mut drop = names.clone();
            drop.push(METRIC_NAME.to_owned());
            drop.push(DROPPED_NAME.to_owned());
            l.drop_names(&drop)
        } else if by_name && l.has(DROPPED_NAME) {
            l.name_restored().keep(&names)
        } else {
            l.keep(&names)
        }
    };
    // `sum by (service) (rate(x[5m]))`, `count by (job) (up)` and their kind: the input's
    // series are folded into the groups as they are made, never held together.
    if let Some(foldable) = fusable(ev, op, by_name, &agg.expr) {
        return fused(ev, op, foldable, &grouping);
    }
    let input = ev.eval_matrix(&agg.expr)?;

    let mut ordinal_of: FxHashMap<Labels, usize> = FxHashMap::default();
    let mut group_labels: Vec<Labels> = Vec::new();
    let series_group: Vec<usize> = input
        .iter()
        .map(|s| {
            let key = grouping(&s.metric);
            let next = group_labels.len();
            *ordinal_of.entry(key.clone()).or_insert_with(|| {
                group_labels.push(key);
                next
            })
        })
        .collect();
    if by_name {
        for (s, &g) in input.iter().zip(&series_group) {
            if s.metric.has(DROPPED_NAME) {
                group_labels[g] = group_labels[g].name_dropped(true);
            }
        }
    }
    let start = ev.start;
    let interval = ev.interval;
    ev.range_eval(&[&input], |ts, v, origins| {
        let step = ((ts - start) / interval) as usize;
        let p = params.as_ref().map_or(f64::NAN, |p| p[step]);
        let groups: Vec<usize> = origins[0].iter().map(|&i| series_group[i]).collect();
        match op {
            Op::TopK | Op::BottomK | Op::LimitK => k_select(op, p, &v[0], &groups, group_labels.len()),
            Op::LimitRatio => limit_ratio(p, &v[0]),
            Op::CountValues => Ok(count_values(
                &v[0],
                &groups,
                &group_labels,
                value_label.as_deref().unwrap_or(""),
                without,
            )),
            _ => Ok(simple(op, p, &v[0], &groups, &group_labels)),
        }
    })
}

/// An aggregation's input whose series can be folded into the groups one by one.
#[derive(Clone, Copy)]
enum Source<'e> {
    /// A plain range function, with names marked rather than dropped (so no two of its series
    /// can collide before the fold).
    Range(&'e Call),
    /// A vector selector: distinct series, names kept.
    Selector(&'e VectorSelector),
}

/// A foldable input, its values maybe put through arithmetic with a number first
/// (`rate(x[5m]) * 60`, `3600 / x`): the operator, the number, and whether it is on the left.
#[derive(Clone, Copy)]
struct Foldable<'e> {
    source: Source<'e>,
    scale: Option<(BinOp, f64, bool)>,
}

/// What a one-value aggregation (`sum`, `avg`, `count`, `min`, `max`, `group`, `stddev`,
/// `stdvar`) can fold as it goes.
fn fusable<'e>(ev: &Evaluator<'_>, op: Op, by_name: bool, e: &'e Expr) -> Option<Foldable<'e>> {
    let one_value = matches!(
        op,
        Op::Sum | Op::Avg | Op::Count | Op::Min | Op::Max | Op::Group | Op::Stddev | Op::Stdvar
    );
    if !one_value {
        return None;
    }
    let source = |e: &'e Expr| match unwrap_parens(e) {
        Expr::Call(call) if ev.delayed_names() && !by_name && functions::is_plain_range_function(call.func.name) => {
            Some(Source::Range(call))
        }
        Expr::VectorSelector(vs) => Some(Source::Selector(vs)),
        _ => None,
    };
    match unwrap_parens(e) {
        // Arithmetic with a number marks names for dropping: fine for the groups unless they
        // are by name, and only marked (not dropped) names keep the series apart.
        Expr::Binary(b) if ev.delayed_names() && !by_name && !b.modifier.as_ref().is_some_and(|m| m.return_bool) => {
            let bin = BinOp::from_token(b.op).ok()?;
            let arithmetic = matches!(
                bin,
                BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow
            );
            let (input, n, left) = match (unwrap_parens(&b.lhs), unwrap_parens(&b.rhs)) {
                (x, Expr::NumberLiteral(n)) => (x, n.val, false),
                (Expr::NumberLiteral(n), x) => (x, n.val, true),
                _ => return None,
            };
            Some(Foldable {
                source: source(input).filter(|_| arithmetic)?,
                scale: Some((bin, n, left)),
            })
        }
        other => Some(Foldable {
            source: source(other)?,
            scale: None,
        }),
    }
}

/// Evaluates `op` over `foldable`, folding each of its series into its group as it is made.
/// Groups come out in the order the step-by-step path gives them (by the first step they have
/// a value at, then by first appearance). Only what is held counts against `max_samples`: the
/// groups' points (and the samples selected), not the input series' points, which the
/// step-by-step path (and Prometheus) would hold and count; so a folded aggregation over a
/// very wide input may answer where they refuse.
fn fused(
    ev: &mut Evaluator<'_>,
    op: Op,
    foldable: Foldable<'_>,
    grouping: &dyn Fn(&Labels) -> Labels,
) -> QueryResult<Matrix> {
    let (start, interval, steps) = (ev.start, ev.interval, ev.num_steps());
    let mut ordinal_of: FxHashMap<Labels, usize> = FxHashMap::default();
    let mut groups: Vec<(Labels, Vec<Acc>)> = Vec::new();
    let scaled = |v: f64| match foldable.scale {
        Some((bin, n, true)) => binary::apply(bin, n, v).0,
        Some((bin, n, false)) => binary::apply(bin, v, n).0,
        None => v,
    };
    let fold = |s: ESeries| {
        let key = grouping(&s.metric);
        let g = match ordinal_of.get(&key) {
            Some(&g) => g,
            None => {
                ordinal_of.insert(key.clone(), groups.len());
                groups.push((key, vec![Acc::default(); steps]));
                groups.len() - 1
            }
        };
        for p in &s.points {
            let step = ((p.t - start) / interval) as usize;
            if let Some(f) = groups[g].1.get_mut(step) {
                f.add(op, scaled(p.v));
            }
        }
        Ok(())
    };
    match foldable.source {
        Source::Range(call) => {
            let args: Vec<&Expr> = call.args.args.iter().map(AsRef::as_ref).collect();
            let Some(matrix_arg) = args.iter().position(|a| deep::value_type(a) == ValueType::Matrix) else {
                return Err(QueryError::exec(format!("{} needs a range vector", call.func.name)));
            };
            functions::range_call_each(ev, call.func.name, &args, matrix_arg, fold)?;
        }
        Source::Selector(vs) => {
            let (offset, at) = (offset_ms(vs.offset.as_ref()), ev.at_time(vs.at.as_ref()));
            ev.newest_per_step_each(&matcher_sets(vs)?, offset, at, Pick::Value, fold)?;
        }
    }
    let mut out: Vec<(usize, ESeries)> = groups
        .into_iter()
        .filter_map(|(metric, folded)| {
            let first = folded.iter().position(|f| f.seen)?;
            let points = folded
                .iter()
                .enumerate()
                .filter(|(_, f)| f.seen)
                .map(|(i, f)| Point {
                    t: start + i as i64 * interval,
                    v: f.finish(op),
                })
                .collect();
            Some((first, ESeries { metric, points }))
        })
        .collect();
    out.sort_by_key(|(first, _)| *first);
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

/// `limit_ratio(r, v)`: a stable sample of about `r` of the series (by a hash of their labels,
/// so the same series are kept at every step and in every query); a negative `r` keeps the
/// complement of `limit_ratio(1 + r, v)`. (Prometheus hashes labels differently, so the series
/// it picks differ; the share is the same.)
fn limit_ratio(r: f64, v: &Vector) -> QueryResult<Vector> {
    if r.is_nan() {
        return Err(QueryError::exec("Ratio value is NaN"));
    }
    let r = r.clamp(-1.0, 1.0);
    Ok(v.iter()
        .filter(|s| {
            let at = label_hash(&s.metric) as f64 / u64::MAX as f64;
            if r >= 0.0 { at < r } else { at >= 1.0 + r }
        })
        .cloned()
        .collect())
}

/// FNV-1a over the label pairs, then MurmurHash3's finalizer so that label sets differing in
/// their last byte spread over the whole range: stable across runs and versions.
fn label_hash(l: &Labels) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for label in l {
        for b in label
            .name
            .bytes()
            .chain([0xff])
            .chain(label.value.bytes())
            .chain([0xff])
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Per-group state of the one-value aggregations (`quantile` keeps its values beside it).
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    seen: bool,
    count: f64,
    value: f64,
    kahan: KahanSum,
    mean: Mean,
    welford_mean: f64,
}

fn simple(op: Op, param: f64, vec: &Vector, groups: &[usize], labels: &[Labels]) -> Vector {
    let mut acc: Vec<Acc> = vec![Acc::default(); labels.len()];
    let mut values: Vec<Vec<f64>> = if op == Op::Quantile {
        vec![Vec::new(); labels.len()]
    } else {
        Vec::new()
    };
    for (s, &g) in vec.iter().zip(groups) {
        acc[g].add(op, s.v);
        if op == Op::Quantile {
            values[g].push(s.v);
        }
    }
    let mut out = Vec::new();
    for (g, a) in acc.iter().enumerate() {
        if a.seen {
            let v = if op == Op::Quantile {
                quantile(param, &mut values[g])
            } else {
                a.finish(op)
            };
            out.push(VSample {
                metric: labels[g].clone(),
                v,
            });
        }
    }
    out
}

impl Acc {
    /// Takes one value of the group (in input order: sums depend on it).
    fn add(&mut self, op: Op, f: f64) {
        let a = self;
        if !a.seen {
            a.seen = true;
            a.count = 1.0;
            a.value = f;
            match op {
                Op::Sum => a.kahan.add(f),
                Op::Avg => a.mean.add(f),
                Op::Stddev | Op::Stdvar => {
                    a.welford_mean = f;
                    a.value = if f.is_nan() || f.is_infinite() { f64::NAN } else { 0.0 };
                }
                Op::Group => a.value = 1.0,
                _ => {}
            }
            return;
        }
        a.count += 1.0;
        match op {
            Op::Sum => a.kahan.add(f),
            Op::Avg => a.mean.add(f),
            Op::Max if a.value < f || a.value.is_nan() => a.value = f,
            Op::Min if a.value > f || a.value.is_nan() => a.value = f,
            Op::Stddev | Op::Stdvar => {
                if f.is_nan() || f.is_infinite() {
                    a.value = f64::NAN;
                } else {
                    let delta = f - a.welford_mean;
                    a.welford_mean += delta / a.count;
                    a.value += delta * (f - a.welford_mean);
                }
            }
            _ => {}
        }
    }

    /// The group's result (not for `quantile`, whose values are kept apart).
    fn finish(&self, op: Op) -> f64 {
        match op {
            Op::Sum => self.kahan.value(),
            Op::Avg => self.mean.value(),
            Op::Count => self.count,
            Op::Stdvar => self.value / self.count,
            Op::Stddev => (self.value / self.count).sqrt(),
            _ => self.value,
        }
    }
}

fn count_values(vec: &Vector, groups: &[usize], labels: &[Labels], value_label: &str, without: bool) -> Vector {
    let mut counts: Vec<(Labels, f64)> = Vec::new();
    let mut index: FxHashMap<Labels, usize> = FxHashMap::default();
    for (s, &g) in vec.iter().zip(groups) {
        let mut b = labels[g].to_builder();
        if without {
            b.del(value_label);
        }
        b.set(value_label, format_float(s.v));
        let l = b.build();
        match index.get(&l) {
            Some(&i) => counts[i].1 += 1.0,
            None => {
                index.insert(l.clone(), counts.len());
                counts.push((l, 1.0));
            }
        }
    }
    counts.into_iter().map(|(metric, v)| VSample { metric, v }).collect()
}

/// `topk`, `bottomk` and `limitk`: up to `k` original elements per group.
fn k_select(op: Op, k: f64, vec: &Vector, groups: &[usize], n_groups: usize) -> QueryResult<Vector> {
    if k.is_nan() {
        return Err(QueryError::exec("Parameter value is NaN"));
    }
    if k >= 9.223_372_036_854_776e18 {
        return Err(QueryError::exec(format!("Scalar value {k} overflows int64")));
    }
    if k <= -9.223_372_036_854_776e18 {
        return Err(QueryError::exec(format!("Scalar value {k} underflows int64")));
    }
    let k = k as i64;
    if k < 1 {
        return Ok(Vec::new());
    }
    let mut per_group: Vec<Vec<&VSample>> = vec![Vec::new(); n_groups];
    for (s, &g) in vec.iter().zip(groups) {
        per_group[g].push(s);
    }
    let mut out = Vec::new();
    for mut members in per_group {
        match op {
            Op::TopK => members.sort_by(|a, b| by_value_nan_last(a.v, b.v, true)),
            Op::BottomK => members.sort_by(|a, b| by_value_nan_last(a.v, b.v, false)),
            _ => {}
        }
        out.extend(members.into_iter().take(k as usize).cloned());
    }
    Ok(out)
}

/// Orders by value, ascending or descending, with NaN last either way.
fn by_value_nan_last(a: f64, b: f64, descending: bool) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if descending => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kahan_beats_naive() {
        let mut k = KahanSum::default();
        for v in [1e16, 1.0, -1e16] {
            k.add(v);
        }
        assert_eq!(k.value(), 1.0);
    }

    #[test]
    fn quantiles() {
        let mut v = vec![1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(0.5, &mut v), 2.5);
        assert_eq!(quantile(0.0, &mut v), 1.0);
        assert_eq!(quantile(1.0, &mut v), 4.0);
        assert!(quantile(2.0, &mut v).is_infinite());
    }

    #[test]
    fn mean_survives_overflow() {
        let mut m = Mean::default();
        m.add(f64::MAX);
        m.add(f64::MAX);
        assert_eq!(m.value(), f64::MAX);
    }
}
