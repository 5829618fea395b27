//! `info(v, [selector])`: adds the data labels of info metrics (`target_info` unless the
//! selector names others) to the series of `v` that share their identifying labels (`instance`,
//! `job`), as Prometheus 3's experimental `info` does.
//!
//! ```text
//! metric{instance="a", job="1"}  +  target_info{instance="a", job="1", region="eu"}
//!   ──> metric{instance="a", job="1", region="eu"}
//! ```
//!
//! Labels the series already has win; two info series of one metric offering different values
//! for a label are an error; a series no info series matches is kept only if every data-label
//! matcher of the selector accepts an empty value. Series that are themselves info metrics (their
//! name matches the selector's name matchers) pass through unchanged.

use promql_parser::parser::{Expr, VectorSelector};
use rustc_hash::{FxHashMap, FxHashSet};

use super::deep::{self, unwrap_parens};
use super::error::{QueryError, QueryResult};
use super::eval::{Evaluator, Matrix, Pick, VSample, matcher_sets, offset_ms};
use crate::labels::{Labels, METRIC_NAME, MatchOp, Matcher};
use crate::storage::Timestamp;

/// The info metric joined when the selector names none.
const TARGET_INFO: &str = "target_info";
/// The labels an info series shares with the series it describes.
const IDENTIFYING: [&str; 2] = ["instance", "job"];

pub(crate) fn eval(ev: &mut Evaluator<'_>, args: &[&Expr]) -> QueryResult<Matrix> {
    let base = ev.eval_matrix(args[0])?;
    // Info series are read at the base selector's offset and `@` time.
    let offset = found(args[0]).map_or(0, |(o, _)| o);
    let at = at_of(ev, args[0]);
    // Matchers of the selector, by label name; those on __name__ pick the info metrics.
    let mut data: FxHashMap<String, Vec<Matcher>> = FxHashMap::default();
    let mut names: Vec<Matcher> = Vec::new();
    match args.get(1).map(|a| unwrap_parens(a)) {
        Some(Expr::VectorSelector(vs)) => {
            for m in selector_matchers(vs)? {
                if m.name == METRIC_NAME {
                    names.push(m.clone());
                }
                data.entry(m.name.clone()).or_default().push(m);
            }
        }
        Some(_) => return Err(QueryError::exec("info: the second argument must be a series selector")),
        None => names.push(Matcher::equal(METRIC_NAME, TARGET_INFO)),
    }
    let effective = effective_names(&names);
    let is_info = |l: &Labels| {
        let name = l.metric_name().unwrap_or_default();
        effective.iter().all(|m| m.matches(name))
    };
    let ignored: Vec<bool> = base.iter().map(|s| is_info(&s.metric)).collect();

    // The info series: those with the identifying values of the series to enrich.
    let mut id_values: FxHashMap<&str, FxHashSet<&str>> = FxHashMap::default();
    for (s, _) in base.iter().zip(&ignored).filter(|(_, ig)| !**ig) {
        for id in IDENTIFYING {
            if let Some(v) = s.metric.get(id).filter(|v| !v.is_empty()) {
                id_values.entry(id).or_default().insert(v);
            }
        }
    }
    data.remove(METRIC_NAME);
    let info = if id_values.is_empty() {
        Vec::new()
    } else {
        // Selected by name and data labels, then kept by identifying values (a set, not one
        // alternation regex: a fleet may have tens of thousands of instances).
        let mut matchers: Vec<Matcher> = data.values().flatten().cloned().collect();
        matchers.extend(effective_names(&names));
        // Each step's value is the sample's timestamp, to prefer the newest of duplicates.
        let mut info = ev.newest_per_step(&[matchers], offset, at, Pick::Time)?;
        info.retain(|s| {
            id_values
                .iter()
                .all(|(id, vals)| s.metric.get(id).is_some_and(|v| vals.contains(v)))
        });
        info
    };
    combine(ev, &base, &ignored, &info, &data)
}

/// The name matchers info series must satisfy: as given when one of them is positive;
/// otherwise `=~".+_info"` and the negative ones; `="target_info"` when there are none.
fn effective_names(names: &[Matcher]) -> Vec<Matcher> {
    if names.iter().any(|m| matches!(m.op(), MatchOp::Equal | MatchOp::Regex)) {
        return names.to_vec();
    }
    if names.is_empty() {
        return vec![Matcher::equal(METRIC_NAME, TARGET_INFO)];
    }
    let mut out = vec![Matcher::new(MatchOp::Regex, METRIC_NAME, ".+_info").expect("a valid regex")];
    out.extend(names.iter().cloned());
    out
}

/// What identifies the info series of metric `name` for a series: the name and the
/// identifying labels it has.
fn signature(name: &str, l: &Labels) -> Vec<String> {
    let mut sig = vec![name.to_owned()];
    for id in IDENTIFYING {
        sig.push(l.get(id).unwrap_or_default().to_owned());
    }
    sig
}

fn combine(
    ev: &mut Evaluator<'_>,
    base: &Matrix,
    ignored: &[bool],
    info: &Matrix,
    data: &FxHashMap<String, Vec<Matcher>>,
) -> QueryResult<Matrix> {
    let info_names: FxHashSet<String> = info
        .iter()
        .map(|s| s.metric.metric_name().unwrap_or_default().to_owned())
        .collect();
    let info_sigs: Vec<Vec<String>> = info
        .iter()
        .map(|s| signature(s.metric.metric_name().unwrap_or_default(), &s.metric))
        .collect();
    let all_accept_empty = data.values().flatten().all(Matcher::matches_empty);
    ev.range_eval(&[base, info], |_, v, origins| {
        // The newest info sample per signature.
        let mut by_sig: FxHashMap<&[String], (&VSample, Timestamp)> = FxHashMap::default();
        for (s, &i) in v[1].iter().zip(&origins[1]) {
            let t = (s.v * 1000.0).round() as Timestamp;
            match by_sig.get(info_sigs[i].as_slice()) {
                Some((_, old)) if *old > t => {}
                Some((old, ot)) if *ot == t => {
                    return Err(QueryError::exec(format!(
                        "found duplicate series for info metric: existing {} @ {ot}, new {} @ {t}",
                        old.metric, s.metric
                    )));
                }
                _ => {
                    by_sig.insert(info_sigs[i].as_slice(), (s, t));
                }
            }
        }
        let mut out = Vec::with_capacity(v[0].len());
        for (s, &i) in v[0].iter().zip(&origins[0]) {
            if ignored[i] {
                out.push(s.clone());
                continue;
            }
            let mut added: Vec<(String, String)> = Vec::new();
            let mut seen = false;
            for name in &info_names {
                let Some((is, _)) = by_sig.get(signature(name, &s.metric).as_slice()) else {
                    continue;
                };
                seen = true;
                for l in is.metric.iter() {
                    if l.name == METRIC_NAME || (!data.is_empty() && !data.contains_key(l.name.as_str())) {
                        continue;
                    }
                    if let Some((_, v)) = added.iter().find(|(n, _)| *n == *l.name) {
                        if *v != *l.value {
                            return Err(QueryError::exec(format!("conflicting label: {}", l.name)));
                        }
                        continue;
                    }
                    if s.metric.get(&l.name).is_some() {
                        continue;
                    }
                    added.push((l.name.to_string(), l.value.to_string()));
                }
            }
            if !seen && !all_accept_empty {
                continue;
            }
            let mut b = s.metric.to_builder();
            for (n, v) in &added {
                b.set(n.as_str(), v.as_str());
            }
            out.push(VSample {
                metric: b.build(),
                v: s.v,
            });
        }
        Ok(out)
    })
}

fn selector_matchers(vs: &VectorSelector) -> QueryResult<Vec<Matcher>> {
    let mut sets = matcher_sets(vs)?;
    if sets.len() != 1 {
        return Err(QueryError::exec("info: `or` is not supported in the label selector"));
    }
    Ok(sets.remove(0))
}

/// The offset of the first vector selector in `e` (the base the info series are read
/// alongside), with those of enclosing subqueries, and whether it has an `@`.
fn found(e: &Expr) -> Option<(i64, bool)> {
    deep::guarded(|| found_in(e))
}

fn found_in(e: &Expr) -> Option<(i64, bool)> {
    match e {
        Expr::VectorSelector(vs) => Some((offset_ms(vs.offset.as_ref()), vs.at.is_some())),
        Expr::MatrixSelector(ms) => Some((offset_ms(ms.vs.offset.as_ref()), ms.vs.at.is_some())),
        Expr::Paren(p) => found(&p.expr),
        Expr::Unary(u) => found(&u.expr),
        Expr::Aggregate(a) => found(&a.expr),
        Expr::Binary(b) => found(&b.lhs).or_else(|| found(&b.rhs)),
        Expr::Call(c) => c.args.args.iter().find_map(|a| found(a)),
        Expr::Subquery(sq) => found(&sq.expr).map(|(o, at)| (o + offset_ms(sq.offset.as_ref()), at || sq.at.is_some())),
        _ => None,
    }
}

/// The `@` time of the first vector selector in `e` (or of its enclosing subquery).
fn at_of(ev: &Evaluator<'_>, e: &Expr) -> Option<Timestamp> {
    match e {
        Expr::Subquery(sq) => first_at(ev, &sq.expr).flatten().or_else(|| ev.at_time(sq.at.as_ref())),
        _ => first_at(ev, e).flatten(),
    }
}

/// The first vector selector's `@` time (or its enclosing subquery's): `None` when `e` has no
/// selector, `Some(None)` when the first one has no `@`. One walk, however deep `e` is.
fn first_at(ev: &Evaluator<'_>, e: &Expr) -> Option<Option<Timestamp>> {
    deep::guarded(|| first_at_in(ev, e))
}

fn first_at_in(ev: &Evaluator<'_>, e: &Expr) -> Option<Option<Timestamp>> {
    match e {
        Expr::VectorSelector(vs) => Some(ev.at_time(vs.at.as_ref())),
        Expr::MatrixSelector(ms) => Some(ev.at_time(ms.vs.at.as_ref())),
        Expr::Paren(p) => first_at(ev, &p.expr),
        Expr::Unary(u) => first_at(ev, &u.expr),
        Expr::Aggregate(a) => first_at(ev, &a.expr),
        Expr::Binary(b) => first_at(ev, &b.lhs).or_else(|| first_at(ev, &b.rhs)),
        Expr::Call(c) => c.args.args.iter().find_map(|a| first_at(ev, a)),
        Expr::Subquery(sq) => first_at(ev, &sq.expr).map(|at| at.or_else(|| ev.at_time(sq.at.as_ref()))),
        _ => None,
    }
}
