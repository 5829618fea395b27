//! Functions over a range vector: each is applied to the window of one series at one step.

use super::aggregate::{KahanSum, Mean, quantile};
use super::value::Point;
use std::cell::Cell;

use crate::starts::{is_reset, overlaps};
use crate::storage::Timestamp;

/// The samples of one series inside one step's window, with the window's bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window<'a> {
    /// Samples in the window, oldest first (never empty).
    pub(crate) points: &'a [Point],
    /// Their start times (0: unknown), when the series has them ([`crate::starts`]).
    pub(crate) starts: Option<&'a [Timestamp]>,
    /// Set when a counter's start times overlap (a start before the previous sample that is not
    /// the previous sample's start): the caller warns once per series.
    pub(crate) overlap: &'a Cell<bool>,
    /// The evaluation time of the step.
    pub(crate) eval_t: Timestamp,
    /// Left (exclusive) and right (inclusive) ends of the window.
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    /// The selector's range in milliseconds.
    pub(crate) range: i64,
    /// Prometheus 2.x extrapolation order (see `extrapolated_rate`).
    pub(crate) v2: bool,
    /// For `rate` and `increase`: how many resets (or overlapping start times) lie between
    /// the window's samples, when the caller knows; zero lets a long window skip the pairs.
    pub(crate) resets: Option<u32>,
}

/// For each sample of a counter, how many resets and overlapping start times lie between it
/// and the series' first sample: the difference of two entries says whether a window holds
/// any, so that `rate` over hours of samples does not walk them at every step.
pub(crate) fn reset_counts(points: &[Point], starts: Option<&[Timestamp]>) -> Vec<u32> {
    let mut out = Vec::with_capacity(points.len());
    let mut n = 0u32;
    out.push(0);
    for (i, pair) in points.windows(2).enumerate() {
        let reset = pair[1].v < pair[0].v
            || starts.is_some_and(|st| {
                is_reset(st[i], pair[0].t, st[i + 1], pair[1].t) || overlaps(st[i], pair[0].t, st[i + 1])
            });
        n += u32::from(reset);
        out.push(n);
    }
    out
}

/// A function over a window and its scalar parameters at this step.
pub(crate) type RangeFn = fn(&Window<'_>, &[f64]) -> Option<f64>;

/// The implementation of a range-vector function, by name.
pub(crate) fn lookup(name: &str) -> Option<RangeFn> {
    Some(match name {
        "rate" => |w, _| extrapolated_rate(w, true, true),
        "increase" => |w, _| extrapolated_rate(w, true, false),
        "delta" => |w, _| extrapolated_rate(w, false, false),
        "irate" => |w, _| instant_value(w, true),
        "idelta" => |w, _| instant_value(w, false),
        "avg_over_time" => |w, _| {
            let mut m = Mean::default();
            w.points.iter().for_each(|p| m.add(p.v));
            Some(m.value())
        },
        "sum_over_time" => |w, _| {
            let mut k = KahanSum::default();
            w.points.iter().for_each(|p| k.add(p.v));
            Some(k.value())
        },
        "count_over_time" => |w, _| Some(w.points.len() as f64),
        "min_over_time" => |w, _| Some(fold_nan_aware(w.points, |acc, v| v < acc)),
        "max_over_time" => |w, _| Some(fold_nan_aware(w.points, |acc, v| v > acc)),
        "last_over_time" => |w, _| w.points.last().map(|p| p.v),
        "first_over_time" => |w, _| w.points.first().map(|p| p.v),
        "present_over_time" => |_, _| Some(1.0),
        "stddev_over_time" => |w, _| Some(variance(w.points).sqrt()),
        "stdvar_over_time" => |w, _| Some(variance(w.points)),
        "mad_over_time" => |w, _| {
            // A NaN sample makes the deviation NaN rather than being sorted away.
            if w.points.iter().any(|p| p.v.is_nan()) {
                return Some(f64::NAN);
            }
            let mut vals: Vec<f64> = w.points.iter().map(|p| p.v).collect();
            let median = quantile(0.5, &mut vals);
            let mut dev: Vec<f64> = w.points.iter().map(|p| (p.v - median).abs()).collect();
            Some(quantile(0.5, &mut dev))
        },
        "quantile_over_time" => |w, p| {
            let mut vals: Vec<f64> = w.points.iter().map(|p| p.v).collect();
            Some(quantile(p.first().copied().unwrap_or(f64::NAN), &mut vals))
        },
        "changes" => |w, _| {
            Some(count_pairs(w.points, |prev, cur| {
                cur != prev && !(cur.is_nan() && prev.is_nan())
            }))
        },
        "resets" => resets,
        "deriv" => |w, _| (w.points.len() >= 2).then(|| linear_regression(w.points, w.points[0].t).0),
        "predict_linear" => |w, p| {
            if w.points.len() < 2 {
                return None;
            }
            let (slope, intercept) = linear_regression(w.points, w.eval_t);
            Some(slope * p.first().copied().unwrap_or(f64::NAN) + intercept)
        },
        "holt_winters" | "double_exponential_smoothing" => double_exponential_smoothing,
        "ts_of_min_over_time" => |w, _| Some(ts_of(w.points, |acc, v| v <= acc)),
        "ts_of_max_over_time" => |w, _| Some(ts_of(w.points, |acc, v| v >= acc)),
        "ts_of_first_over_time" => |w, _| w.points.first().map(|p| p.t as f64 / 1000.0),
        "ts_of_last_over_time" => |w, _| w.points.last().map(|p| p.t as f64 / 1000.0),
        _ => return None,
    })
}

/// `rate`, `increase` and `delta`: the change over the window, extrapolated towards the window's
/// edges when the samples stop short of them (by at most half a sample interval when the gap
/// is larger than 1.1 intervals), and for counters never below zero.
///
/// Counters with start times ([`crate::starts`]) also reset where a start time says so, and
/// when the first sample's start lies inside the window the count is taken to have begun there
/// from zero, instead of extrapolating to the left: then one sample is enough.
fn extrapolated_rate(w: &Window<'_>, is_counter: bool, is_rate: bool) -> Option<f64> {
    let pts = w.points;
    let starts = w.starts.filter(|_| is_counter);
    let (first, last) = (*pts.first()?, pts[pts.len() - 1]);
    let mut result = last.v - first.v;
    if is_counter && w.resets != Some(0) {
        for (i, pair) in pts.windows(2).enumerate() {
            if pair[1].v < pair[0].v || starts.is_some_and(|st| is_reset(st[i], pair[0].t, st[i + 1], pair[1].t)) {
                result += pair[0].v;
            }
            if starts.is_some_and(|st| overlaps(st[i], pair[0].t, st[i + 1])) {
                w.overlap.set(true);
            }
        }
    }
    let mut to_start = (first.t - w.start) as f64 / 1000.0;
    let mut to_end = (w.end - last.t) as f64 / 1000.0;
    let mut sampled = (last.t - first.t) as f64 / 1000.0;
    let intervals = pts.len() - 1;
    let avg_between = if intervals > 0 { sampled / intervals as f64 } else { 0.0 };
    let threshold = avg_between * 1.1;
    let first_start = starts.map_or(0, |st| st[0]);
    if first_start != 0 && first_start > w.start && first_start < first.t {
        // A zero at the start time, inside the window: no extrapolation to the left.
        to_start = 0.0;
        sampled = (last.t - first_start) as f64 / 1000.0;
        result += first.v;
    } else if intervals == 0 {
        return None;
    } else {
        // A counter cannot go below zero: do not extrapolate further back than the zero point.
        let zero_clamp = |to_start: f64| {
            if is_counter && result > 0.0 && first.v >= 0.0 {
                to_start.min(sampled * (first.v / result))
            } else {
                to_start
            }
        };
        if w.v2 {
            to_start = zero_clamp(to_start);
            if to_start >= threshold {
                to_start = avg_between / 2.0;
            }
        } else {
            if to_start >= threshold {
                to_start = avg_between / 2.0;
            }
            to_start = zero_clamp(to_start);
        }
    }
    if to_end >= threshold {
        to_end = avg_between / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if is_rate {
        factor /= w.range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the last two samples.
fn instant_value(w: &Window<'_>, is_rate: bool) -> Option<f64> {
    let pts = w.points;
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len();
    let (prev, last) = (pts[n - 2], pts[n - 1]);
    let reset = last.v < prev.v
        || w.starts
            .is_some_and(|st| is_reset(st[n - 2], prev.t, st[n - 1], last.t));
    let mut result = if is_rate && reset {
        // A counter reset: the last value is all increase since then.
        last.v
    } else {
        last.v - prev.v
    };
    let interval = last.t - prev.t;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// `resets`: drops in value, and resets the start times show.
fn resets(w: &Window<'_>, _: &[f64]) -> Option<f64> {
    let pts = w.points;
    let n = pts.windows(2).enumerate().filter(|&(i, pair)| {
        pair[1].v < pair[0].v
            || w.starts
                .is_some_and(|st| is_reset(st[i], pair[0].t, st[i + 1], pair[1].t))
    });
    Some(n.count() as f64)
}

/// Min or max where NaN only wins if every value is NaN.
fn fold_nan_aware(points: &[Point], better: impl Fn(f64, f64) -> bool) -> f64 {
    let mut acc = points[0].v;
    for p in &points[1..] {
        if better(acc, p.v) || acc.is_nan() {
            acc = p.v;
        }
    }
    acc
}

/// Timestamp (seconds) of the last point that is at least as good as all before it.
fn ts_of(points: &[Point], better_or_equal: impl Fn(f64, f64) -> bool) -> f64 {
    let mut best = points[0];
    for p in &points[1..] {
        if better_or_equal(best.v, p.v) || best.v.is_nan() {
            best = *p;
        }
    }
    best.t as f64 / 1000.0
}

/// Population variance with Welford's algorithm and Kahan-compensated running terms.
fn variance(points: &[Point]) -> f64 {
    let (mut count, mut mean, mut aux) = (0.0, KahanSum::default(), KahanSum::default());
    for p in points {
        count += 1.0;
        let delta = p.v - mean.value();
        mean.add(delta / count);
        aux.add(delta * (p.v - mean.value()));
    }
    aux.value() / count
}

fn count_pairs(points: &[Point], counts: impl Fn(f64, f64) -> bool) -> f64 {
    points.windows(2).filter(|w| counts(w[0].v, w[1].v)).count() as f64
}

/// Least-squares slope (per second) and intercept at `intercept_t`.
fn linear_regression(points: &[Point], intercept_t: Timestamp) -> (f64, f64) {
    let (mut n, mut sx, mut sy, mut sxy, mut sx2) = (
        0.0,
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
    );
    let init_y = points[0].v;
    let mut const_y = true;
    for (i, p) in points.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_t) as f64 / 1000.0;
        sx.add(x);
        sy.add(p.v);
        sxy.add(x * p.v);
        sx2.add(x * x);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx.value(), sy.value(), sxy.value(), sx2.value());
    let cov_xy = sxy - sx * sy / n;
    let var_x = sx2 - sx * sx / n;
    let slope = cov_xy / var_x;
    (slope, sy / n - slope * sx / n)
}

/// Holt's linear (double exponential) smoothing with smoothing factor `sf` and trend factor `tf`.
fn double_exponential_smoothing(w: &Window<'_>, params: &[f64]) -> Option<f64> {
    let (sf, tf) = (params.first().copied()?, params.get(1).copied()?);
    let pts = w.points;
    if pts.len() < 2 {
        return None;
    }
    let (mut s0, mut s1, mut b) = (0.0, pts[0].v, pts[1].v - pts[0].v);
    for (i, p) in pts.iter().enumerate().skip(1) {
        let x = sf * p.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

/// Checks the factors of `holt_winters` / `double_exponential_smoothing`.
pub(crate) fn check_smoothing_factors(sf: f64, tf: f64) -> Result<(), String> {
    if sf <= 0.0 || sf >= 1.0 {
        return Err(format!("invalid smoothing factor. Expected: 0 < sf < 1, got: {sf}"));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(format!("invalid trend factor. Expected: 0 < tf < 1, got: {tf}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window<'a>(points: &'a [Point], start: Timestamp, end: Timestamp, overlap: &'a Cell<bool>) -> Window<'a> {
        Window {
            points,
            starts: None,
            overlap,
            eval_t: end,
            start,
            end,
            range: end - start,
            resets: None,
            v2: false,
        }
    }

    #[test]
    fn reset_counts_skip_only_windows_without_resets() {
        let pts: Vec<Point> = [5.0, 7.0, 2.0, 3.0, 3.0, 1.0, 9.0]
            .iter()
            .enumerate()
            .map(|(i, v)| Point {
                t: i as i64 * 10_000,
                v: *v,
            })
            .collect();
        let counts = reset_counts(&pts, None);
        assert_eq!(counts, [0, 0, 1, 1, 1, 2, 2]);
        let overlap = Cell::new(false);
        for lo in 0..pts.len() {
            for hi in lo + 1..=pts.len() {
                let mut w = window(&pts[lo..hi], pts[lo].t - 5000, pts[hi - 1].t + 5000, &overlap);
                let walked = extrapolated_rate(&w, true, true).map(f64::to_bits);
                w.resets = Some(counts[hi - 1] - counts[lo]);
                assert_eq!(
                    extrapolated_rate(&w, true, true).map(f64::to_bits),
                    walked,
                    "{lo}..{hi}"
                );
            }
        }
    }

    #[test]
    fn rate_of_a_regular_counter() {
        // 10 per 10 s, samples every 10 s over a 60 s window ending on a sample.
        let pts: Vec<Point> = (1..=6)
            .map(|i| Point {
                t: i * 10_000,
                v: (i * 10) as f64,
            })
            .collect();
        let overlap = Cell::new(false);
        let w = window(&pts, 0, 60_000, &overlap);
        let rate = lookup("rate").expect("rate")(&w, &[]).expect("value");
        assert!((rate - 1.0).abs() < 1e-9, "{rate}");
        let inc = lookup("increase").expect("increase")(&w, &[]).expect("value");
        assert!((inc - 60.0).abs() < 1e-9, "{inc}");
    }

    #[test]
    fn counter_reset_is_handled() {
        let pts = vec![
            Point { t: 10_000, v: 5.0 },
            Point { t: 20_000, v: 8.0 },
            Point { t: 30_000, v: 2.0 },
        ];
        let overlap = Cell::new(false);
        let w = window(&pts, 0, 30_000, &overlap);
        // Raw increase: 3 before the reset, 2 after it.
        let inc = lookup("increase").expect("increase")(&w, &[]).expect("value");
        assert!(inc > 5.0 && inc < 7.6, "{inc}");
        assert_eq!(lookup("resets").expect("resets")(&w, &[]), Some(1.0));
        assert_eq!(lookup("irate").expect("irate")(&w, &[]), Some(0.2));
    }

    #[test]
    fn regression() {
        let pts: Vec<Point> = (0..5)
            .map(|i| Point {
                t: i * 1000,
                v: 2.0 * i as f64 + 1.0,
            })
            .collect();
        assert_eq!(linear_regression(&pts, 0), (2.0, 1.0));
    }
}
