//! Rollups: 1-minute and 5-minute downsampled copies of the raw blocks, kept for longer, and
//! the rule that picks them for a query.
//!
//! ```text
//! raw block ──downsample(1m)──> rollups/1m/<id>   (sources: [raw id])
//!           ──downsample(5m)──> rollups/5m/<id>
//!
//! a bucket is (k·R, (k+1)·R]:       ·  ·  ·  ·  ·│·  ·  · ·  ·  ·│
//! kept:                                         ^ last          ^ last
//! ```
//!
//! Downsampling keeps, per series and bucket, the bucket's last sample. That is exactly the
//! sample a vector selector reads at a bucket boundary, so instant-vector answers at steps
//! aligned to the resolution are the raw answers. Counters (and classic histogram buckets,
//! counts and sums) also keep the sample before every drop, so `rate` and `increase` see each
//! reset and lose no increase; their extrapolation then starts from bucket ends, a small
//! difference from raw at the window's edge. A bucket ending in a staleness marker keeps the
//! last real value before it as well.
//!
//! A rollup block stands for the raw block it was made from (its `sources`); when compaction
//! or a delete replaces that raw block, the rollups are made again from the new one. Raw
//! blocks age out first; their rollups stay for their own retention.

use crate::labels::Labels;
use crate::storage::{Sample, Series, Timestamp, is_stale_nan};

/// The rollup resolutions, finest first, in milliseconds.
pub const RESOLUTIONS: [i64; 2] = [60_000, 300_000];

/// A range function's window must hold at least this many rollup samples for the rollup to
/// stand in for raw data (`rate` needs two; a handful keeps extrapolation close to raw).
const MIN_SAMPLES_PER_WINDOW: i64 = 5;

/// The directory name of a resolution under `rollups/`.
pub fn resolution_name(resolution_ms: i64) -> String {
    crate::time::format_duration_ms(resolution_ms)
}

/// How the function reading a selection uses its samples, which decides whether a rollup can
/// stand in for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reads {
    /// Every sample matters (`count_over_time`, `irate`, `min_over_time`, `@` ...): raw only.
    #[default]
    Raw,
    /// The newest sample at each step: vector selectors and `last_over_time`. Identical from a
    /// rollup when steps fall on bucket ends.
    Newest,
    /// Increases between samples, resets included: `rate` and `increase`. Nearly identical
    /// from a rollup whose buckets fill the window several times.
    Increase,
}

/// Which samples a query reads. Exact by default: rollups answer only where the caller asks
/// for them or where raw samples are gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SourceResolution {
    /// Raw samples wherever they exist; rollups only for ranges whose raw samples are gone.
    #[default]
    Exact,
    /// Raw samples only, also where they are gone (Thanos's `max_source_resolution=raw`).
    Raw,
    /// Rollups no coarser than this many milliseconds, wherever the query's step lets them
    /// stand in for raw samples (Thanos's `max_source_resolution=1m|5m`); `i64::MAX` is
    /// `auto`, the coarsest that fits.
    UpTo(i64),
}

impl SourceResolution {
    /// The coarsest resolution any range may be read at (0: raw only).
    pub fn coarsest(self) -> i64 {
        match self {
            SourceResolution::Exact => i64::MAX,
            SourceResolution::Raw => 0,
            SourceResolution::UpTo(r) => r,
        }
    }
}

/// What the engine tells the store about a selection, so that it may read a rollup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelectHints {
    /// Step of the query (0 for an instant query).
    pub step_ms: i64,
    /// The first evaluation time, shifted by the selector's offset.
    pub start: Timestamp,
    /// Window of the range function reading the selection (0 for a vector selector).
    pub range_ms: i64,
    /// The engine's lookback for vector selectors.
    pub lookback_ms: i64,
    /// How the samples are read.
    pub reads: Reads,
    /// Which samples the caller accepts.
    pub source: SourceResolution,
    /// The most series the caller takes: a store may refuse a larger selection before it
    /// decodes anything (0: no limit).
    pub max_series: usize,
}

impl SelectHints {
    /// The coarsest rollup resolution the caller asked for that answers this selection as raw
    /// data would, or 0 (raw samples, the default).
    ///
    /// The newest sample needs evaluation times on bucket ends (step and start multiples of
    /// the resolution) and a window (or the lookback) of whole buckets; increases need a step
    /// of at least the resolution and a window of whole buckets holding
    /// [`MIN_SAMPLES_PER_WINDOW`] of them.
    pub fn resolution(&self) -> i64 {
        let SourceResolution::UpTo(max) = self.source else {
            return 0;
        };
        if self.step_ms <= 0 {
            return 0;
        }
        let fits = |r: i64| match self.reads {
            Reads::Raw => false,
            Reads::Newest => {
                let window_ok = if self.range_ms == 0 {
                    r <= self.lookback_ms
                } else {
                    self.range_ms >= r && self.range_ms % r == 0
                };
                window_ok && self.step_ms % r == 0 && self.start.rem_euclid(r) == 0
            }
            Reads::Increase => {
                self.step_ms >= r && self.range_ms % r == 0 && self.range_ms >= MIN_SAMPLES_PER_WINDOW * r
            }
        };
        RESOLUTIONS
            .iter()
            .rev()
            .copied()
            .find(|&r| r <= max && fits(r))
            .unwrap_or(0)
    }
}

/// Whether a rollup at resolution `r` of a raw block holds markedly fewer samples than the
/// block: at most half, estimated from the block's meta alone as one sample per series and
/// bucket its range spans (an upper bound but for counter resets). One-minute data gets no 1 m
/// rollup (it would be a copy); its 5 m rollup holds a fifth.
pub fn reduces(meta: &crate::block::BlockMeta, r: i64) -> bool {
    let buckets = (bucket(meta.max_t, r) - bucket(meta.min_t, r) + 1).max(1) as u64;
    meta.series.saturating_mul(buckets).saturating_mul(2) <= meta.samples
}

/// Whether a series counts up and resets (so drops must survive downsampling): counters by
/// Prometheus's naming conventions, including classic histograms and summaries.
pub fn is_counter(labels: &Labels) -> bool {
    let name = labels.metric_name().unwrap_or_default();
    ["_total", "_count", "_sum", "_bucket"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// The bucket of `t` at resolution `r`: buckets are `(k·r, (k+1)·r]`, numbered by their end.
fn bucket(t: Timestamp, r: i64) -> i64 {
    // ceil(t / r), for negative times too.
    -((-(t as i128)).div_euclid(r as i128)) as i64
}

/// Downsamples one series (samples in time order) to resolution `r`; see the module docs for
/// what is kept. The result is in time order and a subset of the input.
pub fn downsample(samples: &[Sample], r: i64, counter: bool) -> Vec<Sample> {
    downsample_with(samples, None, r, counter)
}

/// [`downsample`] of a whole series: a counter's resets include those its start times show,
/// and the kept samples keep their start times. A series with start times is a counter whatever
/// its name (only counters have them).
pub fn downsample_series(series: &Series, r: i64, counter: bool) -> Series {
    let counter = counter || series.starts.as_ref().is_some_and(|st| st.iter().any(|&x| x != 0));
    let samples = downsample_with(&series.samples, series.starts.as_deref(), r, counter);
    let starts = series.starts.as_ref().map(|starts| {
        // The kept samples are a subset, in order: walk both.
        let mut i = 0;
        samples
            .iter()
            .map(|k| {
                while series.samples[i].t < k.t {
                    i += 1;
                }
                starts[i]
            })
            .collect()
    });
    Series {
        labels: series.labels.clone(),
        samples,
        starts,
    }
}

fn downsample_with(samples: &[Sample], starts: Option<&[Timestamp]>, r: i64, counter: bool) -> Vec<Sample> {
    let mut out: Vec<Sample> = Vec::with_capacity(samples.len() / 4 + 1);
    let keep = |s: Sample, out: &mut Vec<Sample>| {
        if out.last().is_none_or(|o| o.t < s.t) {
            out.push(s);
        }
    };
    // The last real (non-stale) value of the current bucket, for a bucket ending stale.
    let mut last_real: Option<Sample> = None;
    // The previous real value (and its index), to see drops.
    let mut prev_real: Option<(Sample, usize)> = None;
    let start_reset = |p: usize, p_t: Timestamp, i: usize, t: Timestamp| {
        starts.is_some_and(|st| crate::starts::is_reset(st[p], p_t, st[i], t))
    };
    for (i, s) in samples.iter().enumerate() {
        let b = bucket(s.t, r);
        let stale = is_stale_nan(s.v);
        if counter
            && !stale
            && let Some((p, pi)) = prev_real
            && (s.v < p.v || start_reset(pi, p.t, i, s.t))
        {
            // A reset: the values on both sides of the drop are kept, so that the increases
            // summed over the rollup are the raw ones.
            keep(p, &mut out);
            keep(*s, &mut out);
        }
        if !stale {
            prev_real = Some((*s, i));
            last_real = Some(*s);
        }
        if samples.get(i + 1).is_none_or(|n| bucket(n.t, r) != b) {
            if stale
                && let Some(real) = last_real
                && bucket(real.t, r) == b
            {
                keep(real, &mut out);
            }
            keep(*s, &mut out);
            last_real = None;
        }
    }
    out
}

/// Splits `[mint, maxt]` between tiers (0 raw, `i` the rollups of `RESOLUTIONS[i - 1]`),
/// given what each covers as `[from, to)` spans: the wanted tier takes what it covers, then
/// finer tiers (raw last but one), then coarser ones, each taking what is left. Returns
/// `(tier, from, to)` pieces (inclusive) in time order; a range no tier covers goes to raw.
pub(crate) fn plan(
    mint: Timestamp,
    maxt: Timestamp,
    want: usize,
    cover: &[Vec<(Timestamp, Timestamp)>],
) -> Vec<(usize, Timestamp, Timestamp)> {
    if mint > maxt {
        return vec![(0, mint, maxt)];
    }
    // The wanted tier, the finer ones from coarse to fine, then the coarser ones from fine.
    let order = (0..=want).rev().chain(want + 1..cover.len());
    let mut left = vec![(mint, maxt)];
    let mut out = Vec::new();
    for tier in order {
        for &(from, to) in cover.get(tier).map_or(&[][..], Vec::as_slice) {
            let to = to.saturating_sub(1);
            let mut rest = Vec::with_capacity(left.len() + 1);
            for (a, b) in left {
                let (lo, hi) = (a.max(from), b.min(to));
                if lo > hi {
                    rest.push((a, b));
                    continue;
                }
                out.push((tier, lo, hi));
                if a < lo {
                    rest.push((a, lo - 1));
                }
                if hi < b {
                    rest.push((hi + 1, b));
                }
            }
            left = rest;
        }
    }
    out.extend(left.into_iter().map(|(a, b)| (0, a, b)));
    out.sort_by_key(|p| p.1);
    out
}

/// What sorted, disjoint `[from, to)` spans leave of all time, as spans.
pub(crate) fn complement(spans: &[(Timestamp, Timestamp)]) -> Vec<(Timestamp, Timestamp)> {
    let mut out = Vec::with_capacity(spans.len() + 1);
    let mut from = i64::MIN;
    for &(a, b) in spans {
        if a > from {
            out.push((from, a));
        }
        from = from.max(b);
    }
    if from < i64::MAX {
        out.push((from, i64::MAX));
    }
    out
}

/// `[a, b]` (inclusive) cut at the edges of sorted, disjoint `[from, to)` spans: the pieces in
/// time order, each with whether it lies in a span.
pub(crate) fn split(a: Timestamp, b: Timestamp, spans: &[(Timestamp, Timestamp)]) -> Vec<(Timestamp, Timestamp, bool)> {
    let mut out = Vec::new();
    let mut at = a;
    for &(from, to) in spans {
        if at > b {
            break;
        }
        let to = to.saturating_sub(1);
        if to < at {
            continue;
        }
        if from > b {
            break;
        }
        if from > at {
            out.push((at, from - 1, false));
            at = from;
        }
        let end = to.min(b);
        out.push((at, end, true));
        at = end.saturating_add(1);
    }
    if at <= b {
        out.push((at, b, false));
    }
    out
}

/// `[from, to)` spans merged where they overlap or touch, in time order.
pub(crate) fn merge_spans(mut spans: Vec<(Timestamp, Timestamp)>) -> Vec<(Timestamp, Timestamp)> {
    spans.sort_unstable();
    let mut out: Vec<(Timestamp, Timestamp)> = Vec::with_capacity(spans.len());
    for (from, to) in spans {
        match out.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => out.push((from, to)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::stale_nan;

    fn s(t: i64, v: f64) -> Sample {
        Sample { t, v }
    }

    #[test]
    fn start_times_make_a_counter_and_show_its_resets() {
        // A delta series (each sample counts since the previous one), named like a gauge: every
        // sample is a reset, so the rollup keeps them all, with their start times.
        let samples: Vec<Sample> = (2..=13).map(|i| s(i * 10_000, 5.0)).collect();
        let starts: Vec<Timestamp> = samples.iter().map(|x| x.t - 10_000).collect();
        let series = Series {
            labels: Labels::from_pairs([("__name__", "bytes_sent")]),
            samples: samples.clone(),
            starts: Some(starts.clone()),
        };
        let got = downsample_series(&series, 60_000, false);
        assert_eq!(got.samples, samples);
        assert_eq!(got.starts, Some(starts));
        // Without start times the same values are a gauge: a sample per bucket.
        let plain = Series::new(series.labels.clone(), samples);
        assert_eq!(downsample_series(&plain, 60_000, false).samples.len(), 3);
    }

    fn ts(samples: &[Sample]) -> Vec<i64> {
        samples.iter().map(|s| s.t).collect()
    }

    #[test]
    fn buckets_end_on_multiples_of_the_resolution() {
        assert_eq!(bucket(60_000, 60_000), 1);
        assert_eq!(bucket(60_001, 60_000), 2);
        assert_eq!(bucket(1, 60_000), 1);
        assert_eq!(bucket(0, 60_000), 0);
        assert_eq!(bucket(-1, 60_000), 0);
        assert_eq!(bucket(-60_000, 60_000), -1);
        assert_eq!(bucket(i64::MIN, 60_000), i64::MIN / 60_000);
    }

    #[test]
    fn keeps_each_buckets_last_sample() {
        let raw: Vec<Sample> = (1..=12).map(|i| s(i * 15_000, i as f64)).collect();
        // Buckets (0, 60s], (60s, 120s], (120s, 180s]: the samples at 60, 120 and 180 s.
        assert_eq!(ts(&downsample(&raw, 60_000, false)), vec![60_000, 120_000, 180_000]);
    }

    /// The increase a reset-aware sum sees, as `increase` counts it.
    fn increase(xs: &[Sample]) -> f64 {
        xs.windows(2)
            .map(|w| if w[1].v < w[0].v { w[1].v } else { w[1].v - w[0].v })
            .sum()
    }

    #[test]
    fn counter_resets_keep_both_sides_of_the_drop() {
        let raw = [
            s(10_000, 10.0),
            s(20_000, 30.0),
            s(30_000, 2.0),
            s(40_000, 8.0),
            s(50_000, 1.0),
            s(60_000, 4.0),
        ];
        let got = downsample(&raw, 60_000, true);
        assert_eq!(
            got,
            vec![
                s(20_000, 30.0),
                s(30_000, 2.0),
                s(40_000, 8.0),
                s(50_000, 1.0),
                s(60_000, 4.0)
            ]
        );
        assert_eq!(increase(&raw[1..]), increase(&got));
        // A gauge keeps only the last.
        assert_eq!(downsample(&raw, 60_000, false), vec![s(60_000, 4.0)]);
    }

    #[test]
    fn a_reset_survives_a_counter_that_climbs_past_its_old_value() {
        // Across a bucket end and inside one: the drop is seen either way.
        for raw in [
            vec![s(50_000, 100.0), s(70_000, 2.0), s(110_000, 150.0)],
            vec![s(61_000, 100.0), s(70_000, 2.0), s(110_000, 150.0)],
        ] {
            let got = downsample(&raw, 60_000, true);
            assert_eq!(increase(&got), increase(&raw), "{got:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn increases_survive_downsampling(steps in proptest::collection::vec((1i64..40_000, 0u8..20), 1..300)) {
            // A counter that mostly counts up and sometimes restarts from a small value.
            let mut t = 0;
            let mut v = 0.0;
            let raw: Vec<Sample> = steps
                .iter()
                .map(|&(dt, x)| {
                    t += dt;
                    v = if x == 0 { (dt % 3) as f64 } else { v + f64::from(x) };
                    s(t, v)
                })
                .collect();
            for r in RESOLUTIONS {
                let got = downsample(&raw, r, true);
                // From the first sample kept (the first bucket's last) on, nothing is lost.
                let from: Vec<Sample> = raw.iter().copied().filter(|x| x.t >= got[0].t).collect();
                proptest::prop_assert_eq!(increase(&got), increase(&from));
                proptest::prop_assert_eq!(got.last(), raw.last());
            }
        }
    }

    #[test]
    fn a_bucket_ending_stale_keeps_its_last_value_too() {
        let raw = [s(10_000, 1.0), s(20_000, 2.0), s(30_000, stale_nan()), s(90_000, 3.0)];
        let got = downsample(&raw, 60_000, false);
        assert_eq!(ts(&got), vec![20_000, 30_000, 90_000]);
        assert!(is_stale_nan(got[1].v));
    }

    #[test]
    fn plans_split_the_range_between_tiers() {
        // Raw from 100 on, 1 m rollups over [0, 200), 5 m ones over [-100, 200).
        let cover = [vec![(100, i64::MAX)], vec![(0, 200)], vec![(-100, 200)]];
        assert_eq!(plan(150, 300, 0, &cover), vec![(0, 150, 300)]);
        assert_eq!(plan(-50, 300, 0, &cover), vec![(2, -50, -1), (1, 0, 99), (0, 100, 300)]);
        assert_eq!(
            plan(-50, 300, 1, &cover),
            vec![(2, -50, -1), (1, 0, 199), (0, 200, 300)]
        );
        assert_eq!(
            plan(-200, 300, 2, &cover),
            vec![(0, -200, -101), (2, -100, 199), (0, 200, 300)]
        );
        // Without rollups everything is raw.
        assert_eq!(
            plan(-50, 300, 2, &[vec![(i64::MIN, i64::MAX)], vec![], vec![]]),
            vec![(0, -50, 300)]
        );
        // A tier with a gap (a block whose 1 m rollup would not have reduced it): the gap is
        // read from raw samples, the rest from the tier asked for.
        let cover = [vec![(0, i64::MAX)], vec![(0, 100), (200, 300)], vec![(0, 300)]];
        assert_eq!(
            plan(50, 250, 1, &cover),
            vec![(1, 50, 99), (0, 100, 199), (1, 200, 250)]
        );
        assert_eq!(
            merge_spans(vec![(200, 300), (0, 100), (100, 150), (120, 130)]),
            vec![(0, 150), (200, 300)]
        );
        assert_eq!(
            complement(&[(0, 150), (200, 300)]),
            vec![(i64::MIN, 0), (150, 200), (300, i64::MAX)]
        );
        assert_eq!(complement(&[]), vec![(i64::MIN, i64::MAX)]);
        assert_eq!(
            split(-50, 250, &[(0, 150), (200, 300)]),
            vec![(-50, -1, false), (0, 149, true), (150, 199, false), (200, 250, true)]
        );
        assert_eq!(split(160, 170, &[(0, 150), (200, 300)]), vec![(160, 170, false)]);
    }

    #[test]
    fn resolution_needs_aligned_steps_and_wide_windows() {
        let hints = SelectHints {
            step_ms: 300_000,
            start: 1_800_000,
            range_ms: 0,
            lookback_ms: 300_000,
            reads: Reads::Newest,
            source: SourceResolution::UpTo(i64::MAX),
            max_series: 0,
        };
        assert_eq!(hints.resolution(), 300_000);
        // Exact (the default) and raw read raw samples, however well the step fits.
        for source in [SourceResolution::Exact, SourceResolution::Raw] {
            assert_eq!(SelectHints { source, ..hints }.resolution(), 0);
        }
        assert_eq!(
            SelectHints {
                start: 1_860_000,
                ..hints
            }
            .resolution(),
            60_000
        );
        assert_eq!(
            SelectHints {
                start: 1_860_001,
                ..hints
            }
            .resolution(),
            0
        );
        assert_eq!(
            SelectHints {
                step_ms: 60_000,
                ..hints
            }
            .resolution(),
            60_000
        );
        assert_eq!(
            SelectHints {
                step_ms: 15_000,
                ..hints
            }
            .resolution(),
            0
        );
        assert_eq!(
            SelectHints {
                reads: Reads::Raw,
                ..hints
            }
            .resolution(),
            0
        );
        assert_eq!(
            SelectHints {
                source: SourceResolution::UpTo(60_000),
                ..hints
            }
            .resolution(),
            60_000
        );
        assert_eq!(
            SelectHints {
                source: SourceResolution::UpTo(0),
                ..hints
            }
            .resolution(),
            0
        );
        // last_over_time: aligned like a selector, the window whole buckets.
        assert_eq!(
            SelectHints {
                range_ms: 600_000,
                ..hints
            }
            .resolution(),
            300_000
        );
        assert_eq!(
            SelectHints {
                range_ms: 600_000,
                start: 1_800_001,
                ..hints
            }
            .resolution(),
            0
        );
        // rate(x[5m]) at a 5 m step: 1 m rollups (five samples a window); [1h] takes 5 m ones;
        // the start does not matter.
        let rate = SelectHints {
            range_ms: 300_000,
            start: 1,
            reads: Reads::Increase,
            ..hints
        };
        assert_eq!(rate.resolution(), 60_000);
        assert_eq!(
            SelectHints {
                range_ms: 3_600_000,
                ..rate
            }
            .resolution(),
            300_000
        );
        assert_eq!(
            SelectHints {
                range_ms: 120_000,
                ..rate
            }
            .resolution(),
            0
        );
    }
}
