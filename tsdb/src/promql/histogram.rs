//! Classic histograms (`_bucket` series with an `le` label): `histogram_quantile`,
//! `histogram_quantiles` and `histogram_fraction`, grouping buckets by their other labels.

use rustc_hash::FxHashMap;

use super::eval::{VSample, Vector};
use super::functions::format_float;
use crate::labels::Labels;

/// Where the histogram functions report what Prometheus annotates.
pub(crate) type Warn<'a> = &'a (dyn Fn(String) + Sync);

/// The metric name Prometheus names in an annotation: with delayed name removal the series'
/// name, else none.
fn annotated_name(metric: &Labels, delayed: bool) -> String {
    let name = if delayed {
        metric.get_or_dropped(crate::labels::METRIC_NAME)
    } else {
        None
    };
    name.map(|n| format!(" for metric name {n:?}")).unwrap_or_default()
}

/// One classic histogram: its labels, its buckets as (upper bound, cumulative count), and its
/// first bucket's series (for the name its annotations give).
type Classic = (Labels, Vec<(f64, f64)>, Labels);

/// Classic histograms in a vector: buckets grouped by their labels without `le` (and without the
/// metric name), as (upper bound, cumulative count), with their first series' name for
/// annotations. A bucket whose `le` does not parse is left out, with a warning.
fn classic_histograms(v: &Vector, delayed: bool, warn: Warn<'_>) -> Vec<Classic> {
    let mut groups: FxHashMap<Labels, usize> = FxHashMap::default();
    let mut out: Vec<Classic> = Vec::new();
    for s in v {
        let le = s.metric.get("le");
        let Some(le) = le.and_then(parse_bucket_bound) else {
            warn(format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of {:?}{}",
                le.unwrap_or(""),
                annotated_name(&s.metric, delayed)
            ));
            continue;
        };
        let key = s.metric.drop_names(&["le".to_owned()]);
        let idx = *groups.entry(key.clone()).or_insert_with(|| {
            out.push((key.name_dropped(delayed), Vec::new(), s.metric.clone()));
            out.len() - 1
        });
        out[idx].1.push((le, s.v));
    }
    out
}

/// The info Prometheus gives when bucket counts decreased and were evened out.
fn forced_monotonicity(name: &str) -> String {
    format!(
        "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile){name}"
    )
}

/// `histogram_quantile` over classic histograms: the quantile is interpolated linearly inside
/// its bucket.
pub(crate) fn histogram_quantile(q: f64, v: &Vector, delayed: bool, warn: Warn<'_>) -> Vector {
    histogram_quantiles_of(&classic_histograms(v, delayed, warn), None, &[q], delayed, warn)
}

/// `histogram_quantiles(v, "label", q...)`: one result per quantile, told apart by `label`.
pub(crate) fn histogram_quantiles(v: &Vector, label: &str, qs: &[f64], delayed: bool, warn: Warn<'_>) -> Vector {
    histogram_quantiles_of(&classic_histograms(v, delayed, warn), Some(label), qs, delayed, warn)
}

fn histogram_quantiles_of(
    groups: &[Classic],
    label: Option<&str>,
    qs: &[f64],
    delayed: bool,
    warn: Warn<'_>,
) -> Vector {
    let mut out = Vec::with_capacity(groups.len() * qs.len());
    for &q in qs {
        if let Some(w) = super::eval::invalid_quantile(q) {
            warn(w);
        }
        let name = openmetrics_float(q);
        for (metric, b, first) in groups {
            let mut b = b.clone();
            let metric = match label {
                Some(label) => {
                    let mut lb = metric.to_builder();
                    lb.set(label, name.as_str());
                    lb.build()
                }
                None => metric.clone(),
            };
            let (v, forced) = bucket_quantile(q, &mut b);
            if forced {
                warn(forced_monotonicity(&annotated_name(first, delayed)));
            }
            out.push(VSample { metric, v });
        }
    }
    out
}

/// A float as OpenMetrics writes it: Go's shortest form, with `.0` on whole numbers.
fn openmetrics_float(f: f64) -> String {
    let s = format_float(f);
    if s.contains(['.', 'e', 'I', 'N']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// `histogram_fraction(lower, upper, v)` over classic histograms.
pub(crate) fn histogram_fraction(lower: f64, upper: f64, v: &Vector, delayed: bool, warn: Warn<'_>) -> Vector {
    classic_histograms(v, delayed, warn)
        .into_iter()
        .map(|(metric, mut b, _)| VSample {
            metric,
            v: bucket_fraction(lower, upper, &mut b),
        })
        .collect()
}

/// Sorts classic buckets by upper bound and merges those with the same bound (`"1"` and
/// `"1.0"`); false when there is no `+Inf` bucket (no histogram to speak of).
fn sort_buckets(buckets: &mut Vec<(f64, f64)>) -> bool {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return false;
    }
    buckets.dedup_by(|cur, prev| {
        if cur.0 == prev.0 {
            prev.1 += cur.1;
            true
        } else {
            false
        }
    });
    true
}

/// The share of a classic histogram's observations between `lower` and `upper`, interpolating
/// linearly inside the buckets the bounds fall in (no share of an infinitely wide bucket).
pub(crate) fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if !sort_buckets(buckets) {
        return f64::NAN;
    }
    let count = buckets[buckets.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    // Where each bound falls, as a cumulative count; the first bucket starts at 0 for positive
    // bounds, at -Inf otherwise.
    let (mut lower_rank, mut upper_rank) = (None, None);
    let mut rank = 0.0;
    for (i, &(bound, cum)) in buckets.iter().enumerate() {
        let start = match i {
            0 if bound > 0.0 => 0.0,
            0 => f64::NEG_INFINITY,
            _ => buckets[i - 1].0,
        };
        let at = |x: f64| {
            if start == f64::NEG_INFINITY {
                cum
            } else {
                rank + (cum - rank) * (x - start) / (bound - start)
            }
        };
        if lower_rank.is_none() && start >= lower {
            lower_rank = Some(rank);
        }
        if upper_rank.is_none() && start >= upper {
            upper_rank = Some(rank);
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        if lower_rank.is_none() && start < lower && bound > lower {
            lower_rank = Some(at(lower));
        }
        if upper_rank.is_none() && start < upper && bound > upper {
            upper_rank = Some(at(upper));
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        rank = cum;
    }
    let lower_rank = lower_rank.filter(|r| *r <= count).unwrap_or(count);
    let upper_rank = upper_rank.filter(|r| *r <= count).unwrap_or(count);
    (upper_rank - lower_rank) / count
}

fn parse_bucket_bound(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Relative tolerance under which bucket count differences are treated as float noise.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// The quantile of classic histogram buckets given as (upper bound, cumulative count), and
/// whether counts that decreased had to be evened out.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    if !sort_buckets(buckets) {
        return (f64::NAN, false);
    }
    // Counts must not decrease; tiny float differences are smoothed, real decreases clamped.
    let mut forced = false;
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        if b.1 == prev {
            continue;
        }
        if (b.1 - prev).abs() <= SMALL_DELTA_TOLERANCE * b.1.abs().max(prev.abs()) {
            b.1 = prev;
            continue;
        }
        if b.1 < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = b.1;
    }
    (bucket_quantile_of(q, buckets), forced)
}

/// [`bucket_quantile`] of sorted, monotonic buckets.
fn bucket_quantile_of(q: f64, buckets: &[(f64, f64)]) -> f64 {
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n = buckets.len();
    let b = buckets[..n - 1].iter().position(|b| b.1 >= rank).unwrap_or(n - 1);
    if b == n - 1 {
        return buckets[n - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_quantiles() {
        let mut b = vec![(0.1, 10.0), (0.5, 60.0), (1.0, 100.0), (f64::INFINITY, 100.0)];
        assert!((bucket_quantile(0.5, &mut b).0 - (0.1 + 0.4 * (40.0 / 50.0))).abs() < 1e-12);
        assert_eq!(bucket_quantile(1.0, &mut b), (1.0, false));
        let mut no_inf = vec![(0.1, 10.0)];
        assert!(bucket_quantile(0.5, &mut no_inf).0.is_nan());
        let mut decreasing = vec![(0.1, 10.0), (1.0, 8.0), (f64::INFINITY, 12.0)];
        assert!(bucket_quantile(0.5, &mut decreasing).1);
    }
}
