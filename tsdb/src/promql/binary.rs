//! Binary operators: arithmetic, comparison (filtering or `bool`) and set operators, between
//! scalars and vectors, with `on`/`ignoring` matching and `group_left`/`group_right`.

use promql_parser::label::Labels as NameList;
use promql_parser::parser::token::TokenType;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD, T_MUL, T_NEQ, T_POW,
    T_SUB,
};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};
use rustc_hash::{FxHashMap, FxHashSet};

use super::error::{QueryError, QueryResult};
use super::eval::{Evaluator, Matrix, VSample, Vector};
use crate::labels::{DROPPED_NAME, Labels, METRIC_NAME};

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub(crate) fn from_token(t: TokenType) -> QueryResult<BinOp> {
        Ok(match t.id() {
            T_ADD => BinOp::Add,
            T_SUB => BinOp::Sub,
            T_MUL => BinOp::Mul,
            T_DIV => BinOp::Div,
            T_MOD => BinOp::Mod,
            T_POW => BinOp::Pow,
            T_ATAN2 => BinOp::Atan2,
            T_EQLC => BinOp::Eq,
            T_NEQ => BinOp::Ne,
            T_GTR => BinOp::Gt,
            T_LSS => BinOp::Lt,
            T_GTE => BinOp::Ge,
            T_LTE => BinOp::Le,
            T_LAND => BinOp::And,
            T_LOR => BinOp::Or,
            T_LUNLESS => BinOp::Unless,
            _ => return Err(QueryError::exec(format!("unsupported binary operator {t}"))),
        })
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }

    /// Arithmetic changes what the value means, so the metric name goes (Prometheus 2 kept it
    /// for `atan2`).
    fn drops_metric_name(self, v2: bool) -> bool {
        match self {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow => true,
            BinOp::Atan2 => !v2,
            _ => false,
        }
    }
}

/// Applies `op` to two floats: the value, and whether a comparison holds (always true for
/// arithmetic). A comparison's value is the left operand.
pub(crate) fn apply(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Ne => (l, l != r),
        BinOp::Gt => (l, l > r),
        BinOp::Lt => (l, l < r),
        BinOp::Ge => (l, l >= r),
        BinOp::Le => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
    }
}

/// Evaluates a binary expression for every step.
pub(crate) fn eval(ev: &mut Evaluator<'_>, b: &BinaryExpr) -> QueryResult<Matrix> {
    let op = BinOp::from_token(b.op)?;
    let modifier = b.modifier.clone().unwrap_or_default();
    let return_bool = modifier.return_bool;
    let v2 = ev.opts.prometheus_v2;
    let (lt, rt) = (ev.value_type(&b.lhs), ev.value_type(&b.rhs));
    let lhs = ev.eval_matrix(&b.lhs)?;
    let rhs = ev.eval_matrix(&b.rhs)?;
    match (lt, rt) {
        (ValueType::Scalar, ValueType::Scalar) => ev.range_eval(&[&lhs, &rhs], |_, v, _| {
            let (Some(l), Some(r)) = (v[0].first(), v[1].first()) else {
                return Ok(Vec::new());
            };
            let (value, keep) = apply(op, l.v, r.v);
            let v = if op.is_comparison() {
                f64::from(u8::from(keep))
            } else {
                value
            };
            Ok(vec![VSample {
                metric: Labels::empty(),
                v,
            }])
        }),
        (ValueType::Vector, ValueType::Scalar) => ev.range_eval(&[&lhs, &rhs], |_, v, _| {
            Ok(vector_scalar(op, &v[0], v[1].first(), false, return_bool, v2))
        }),
        (ValueType::Scalar, ValueType::Vector) => ev.range_eval(&[&lhs, &rhs], |_, v, _| {
            Ok(vector_scalar(op, &v[1], v[0].first(), true, return_bool, v2))
        }),
        _ => vector_vector(ev, op, &modifier, &lhs, &rhs),
    }
}

fn vector_scalar(op: BinOp, vec: &Vector, scalar: Option<&VSample>, swap: bool, return_bool: bool, v2: bool) -> Vector {
    let Some(scalar) = scalar else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(vec.len());
    for s in vec {
        let (l, r) = if swap { (scalar.v, s.v) } else { (s.v, scalar.v) };
        let (mut value, mut keep) = apply(op, l, r);
        // A comparison keeps the vector element's value, whichever side it is on.
        if op.is_comparison() && swap {
            value = r;
        }
        if return_bool {
            value = f64::from(u8::from(keep));
            keep = true;
        }
        if keep {
            let metric = if op.drops_metric_name(v2) || return_bool {
                s.metric.name_dropped(!v2)
            } else {
                s.metric.clone()
            };
            out.push(VSample { metric, v: value });
        }
    }
    out
}

/// How series are matched across the two sides.
struct Matching {
    card: VectorMatchCardinality,
    on: bool,
    names: Vec<String>,
    include: Vec<String>,
    fill_lhs: Option<f64>,
    fill_rhs: Option<f64>,
    v2: bool,
}

impl Matching {
    fn new(m: &BinModifier, v2: bool) -> Self {
        let (on, names) = match &m.matching {
            Some(LabelModifier::Include(l)) => (true, names_of(l)),
            Some(LabelModifier::Exclude(l)) => (false, names_of(l)),
            None => (false, Vec::new()),
        };
        let include = m.card.labels().map(names_of).unwrap_or_default();
        Matching {
            card: m.card.clone(),
            on,
            names,
            include,
            fill_lhs: m.fill_values.lhs,
            fill_rhs: m.fill_values.rhs,
            v2,
        }
    }

    /// The labels that decide which series match.
    fn key(&self, l: &Labels) -> Labels {
        if self.on && self.names.iter().any(|n| n == METRIC_NAME) {
            // `on(__name__)` matches a name marked for dropping too.
            l.name_restored().keep(&self.names)
        } else if self.on {
            l.keep(&self.names)
        } else {
            let mut drop = self.names.clone();
            // The name (or one marked for dropping); type and unit labels still match.
            drop.extend([METRIC_NAME, DROPPED_NAME].map(str::to_owned));
            l.drop_names(&drop)
        }
    }
}

/// All labels in braces, `__name__` included, as Prometheus 3 prints series in errors.
fn braced(l: &Labels) -> String {
    let parts: Vec<String> = l.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect();
    format!("{{{}}}", parts.join(", "))
}

fn names_of(l: &NameList) -> Vec<String> {
    l.labels.clone()
}

/// Assigns every series of both sides the ordinal of its match key.
fn signatures(m: &Matching, lhs: &Matrix, rhs: &Matrix) -> (Vec<usize>, Vec<usize>, Vec<Labels>) {
    let mut ordinals: FxHashMap<Labels, usize> = FxHashMap::default();
    let mut keys = Vec::new();
    let mut sig = |l: &Labels| {
        let key = m.key(l);
        let next = ordinals.len();
        *ordinals.entry(key.clone()).or_insert_with(|| {
            keys.push(key);
            next
        })
    };
    let l: Vec<usize> = lhs.iter().map(|s| sig(&s.metric)).collect();
    let r: Vec<usize> = rhs.iter().map(|s| sig(&s.metric)).collect();
    (l, r, keys)
}

fn vector_vector(
    ev: &mut Evaluator<'_>,
    op: BinOp,
    modifier: &BinModifier,
    lhs: &Matrix,
    rhs: &Matrix,
) -> QueryResult<Matrix> {
    let m = Matching::new(modifier, ev.opts.prometheus_v2);
    let (lsig, rsig, keys) = signatures(&m, lhs, rhs);
    let n = keys.len();
    let return_bool = modifier.return_bool;
    ev.range_eval(&[lhs, rhs], |_, v, origins| {
        let lsigs: Vec<usize> = origins[0].iter().map(|&i| lsig[i]).collect();
        let rsigs: Vec<usize> = origins[1].iter().map(|&i| rsig[i]).collect();
        match op {
            BinOp::And | BinOp::Or | BinOp::Unless => Ok(set_op(op, &v[0], &v[1], &lsigs, &rsigs, n)),
            _ => binop(op, &m, return_bool, [&v[0], &v[1]], [&lsigs, &rsigs], &keys),
        }
    })
}

fn set_op(op: BinOp, lhs: &Vector, rhs: &Vector, lsigs: &[usize], rsigs: &[usize], n: usize) -> Vector {
    let mut present = vec![false; n];
    match op {
        BinOp::And => {
            rsigs.iter().for_each(|&s| present[s] = true);
            lhs.iter()
                .zip(lsigs)
                .filter(|(_, s)| present[**s])
                .map(|(e, _)| e.clone())
                .collect()
        }
        BinOp::Unless => {
            rsigs.iter().for_each(|&s| present[s] = true);
            lhs.iter()
                .zip(lsigs)
                .filter(|(_, s)| !present[**s])
                .map(|(e, _)| e.clone())
                .collect()
        }
        _ => {
            lsigs.iter().for_each(|&s| present[s] = true);
            let mut out = lhs.clone();
            out.extend(
                rhs.iter()
                    .zip(rsigs)
                    .filter(|(_, s)| !present[**s])
                    .map(|(e, _)| e.clone()),
            );
            out
        }
    }
}

/// Arithmetic and comparison between two vectors at one step.
fn binop(
    op: BinOp,
    m: &Matching,
    return_bool: bool,
    sides: [&Vector; 2],
    sigs: [&[usize]; 2],
    keys: &[Labels],
) -> QueryResult<Vector> {
    let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
    // Work as many-to-one: the right side is the "one" side.
    let (lhs, rhs, lsigs, rsigs) = if one_to_many {
        (sides[1], sides[0], sigs[1], sigs[0])
    } else {
        (sides[0], sides[1], sigs[0], sigs[1])
    };
    let n = keys.len();
    let mut right: Vec<Option<usize>> = vec![None; n];
    for (j, &sig) in rsigs.iter().enumerate() {
        if let Some(prev) = right[sig] {
            let side = if one_to_many { "left" } else { "right" };
            let (mut a, mut b) = (braced(&rhs[j].metric), braced(&rhs[prev].metric));
            if a > b {
                std::mem::swap(&mut a, &mut b);
            }
            return Err(QueryError::exec(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{a}, {b}];\
                 many-to-many matching not allowed: matching labels must be unique on one side",
                keys[sig]
            )));
        }
        right[sig] = Some(j);
    }
    let mut state = MatchState {
        op,
        m,
        return_bool,
        one_to_many,
        one_to_one: matches!(m.card, VectorMatchCardinality::OneToOne),
        matched_once: vec![false; n],
        matched_metrics: vec![FxHashSet::default(); n],
        out: Vec::new(),
    };
    // As in Prometheus, the fill values follow the sides after `group_right` swapped them:
    // `fill_left` stands in for a missing series of the "many" side.
    let (fill_for_right, fill_for_left) = (m.fill_rhs, m.fill_lhs);
    for (i, l) in lhs.iter().enumerate() {
        let sig = lsigs[i];
        match (right[sig], fill_for_right) {
            (Some(j), _) => state.emit(l, &rhs[j], sig)?,
            (None, Some(fill)) => state.emit(
                l,
                &VSample {
                    metric: keys[sig].clone(),
                    v: fill,
                },
                sig,
            )?,
            (None, None) => {}
        }
    }
    if let Some(fill) = fill_for_left {
        for (j, r) in rhs.iter().enumerate() {
            let sig = rsigs[j];
            if state.matched_once[sig] || !state.matched_metrics[sig].is_empty() {
                continue;
            }
            state.emit(
                &VSample {
                    metric: keys[sig].clone(),
                    v: fill,
                },
                r,
                sig,
            )?;
        }
    }
    Ok(state.out)
}

/// Matches seen so far at one step, to reject ambiguous matches as Prometheus does.
struct MatchState<'m> {
    op: BinOp,
    m: &'m Matching,
    return_bool: bool,
    one_to_many: bool,
    one_to_one: bool,
    matched_once: Vec<bool>,
    /// Result label sets per match group (a set: a group may hold thousands of series).
    matched_metrics: Vec<FxHashSet<Labels>>,
    out: Vector,
}

impl MatchState<'_> {
    /// Applies the operator to a matched pair (`l` from the "many" side) and records the match.
    fn emit(&mut self, l: &VSample, r: &VSample, sig: usize) -> QueryResult<()> {
        let (vl, vr) = if self.one_to_many { (r.v, l.v) } else { (l.v, r.v) };
        let (mut value, keep) = apply(self.op, vl, vr);
        if self.return_bool {
            value = f64::from(u8::from(keep));
        }
        let metric = result_metric(&l.metric, &r.metric, self.op, self.m, self.return_bool);
        if self.one_to_one {
            if self.matched_once[sig] {
                return Err(QueryError::exec(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
            self.matched_once[sig] = true;
        } else {
            if !self.matched_metrics[sig].insert(metric.clone()) {
                return Err(QueryError::exec(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
        }
        if keep || self.return_bool {
            self.out.push(VSample { metric, v: value });
        }
        Ok(())
    }
}

/// The labels of a result element: the "many" side's labels, reduced by the matching clause for
/// one-to-one matches, plus `group_x` labels taken from the "one" side.
fn result_metric(lhs: &Labels, rhs: &Labels, op: BinOp, m: &Matching, return_bool: bool) -> Labels {
    let dropped;
    let lhs = if return_bool || op.drops_metric_name(m.v2) {
        dropped = lhs.name_dropped(!m.v2);
        &dropped
    } else {
        lhs
    };
    let mut b = lhs.to_builder();
    if matches!(m.card, VectorMatchCardinality::OneToOne) {
        if m.on {
            let keep: Vec<String> = lhs
                .iter()
                .map(|l| l.name.to_string())
                .filter(|n| !m.names.contains(n))
                .collect();
            for n in keep {
                b.del(&n);
            }
        } else {
            for n in &m.names {
                b.del(n);
            }
        }
    }
    for name in &m.include {
        match rhs.get(name) {
            Some(v) => b.set(name.clone(), v.to_owned()),
            None => b.del(name),
        };
    }
    b.build()
}
