//! What the query side sees of the store: samples, series and the [`Queryable`] trait that both
//! the head and (later) on-disk blocks answer through.

use crate::error::Result;
use crate::labels::{Labels, Matcher};

/// Milliseconds since the Unix epoch, as Prometheus stores time.
pub type Timestamp = i64;

/// The bit pattern Prometheus uses for a staleness marker: a NaN that no arithmetic produces.
/// Writing it ends a series for lookback purposes; queries never return it as a value.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is a staleness marker (a specific NaN, not any NaN).
#[inline]
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN
}

/// The staleness marker as a float.
#[inline]
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN)
}

/// One sample: a timestamp and a float value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the epoch.
    pub t: Timestamp,
    /// The value (may be a staleness marker).
    pub v: f64,
}

/// A series with its samples in a time range, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series identity.
    pub labels: Labels,
    /// Samples in time order.
    pub samples: Vec<Sample>,
    /// The start time of each sample (0: unknown), for a series that has any
    /// ([`crate::starts`]); `None` for the many that have none. When present it has exactly
    /// one entry per sample.
    pub starts: Option<Vec<Timestamp>>,
}

impl Series {
    /// A series without start times.
    pub fn new(labels: Labels, samples: Vec<Sample>) -> Series {
        Series {
            labels,
            samples,
            starts: None,
        }
    }

    /// Appends the samples (and start times) of another part of the same series, as a read
    /// across the head and blocks gathers them; [`Series::sort_dedup`] puts them in order.
    pub fn absorb(&mut self, other: Series) {
        if self.starts.is_none() && other.starts.is_some() {
            self.starts = Some(vec![0; self.samples.len()]);
        }
        if let Some(starts) = self.starts.as_mut() {
            match other.starts {
                Some(more) => starts.extend(more),
                None => starts.resize(starts.len() + other.samples.len(), 0),
            }
        }
        self.samples.extend(other.samples);
    }

    /// Puts the samples in time order, keeping the first given of each timestamp (with a start
    /// time from another copy if the first has none).
    pub fn sort_dedup(&mut self) {
        if self.samples.windows(2).all(|w| w[0].t < w[1].t) {
            return;
        }
        match self.starts.take() {
            None => {
                self.samples.sort_by_key(|s| s.t);
                self.samples.dedup_by_key(|s| s.t);
            }
            Some(starts) => {
                let mut both: Vec<(Sample, Timestamp)> = self.samples.drain(..).zip(starts).collect();
                both.sort_by_key(|(s, _)| s.t);
                both.dedup_by(|later, kept| {
                    let same = later.0.t == kept.0.t;
                    if same && kept.1 == 0 {
                        kept.1 = later.1;
                    }
                    same
                });
                let (samples, starts) = both.into_iter().unzip();
                self.samples = samples;
                self.starts = Some(starts);
            }
        }
    }
}

/// Read access to stored series. Every method takes an inclusive time range in milliseconds.
pub trait Queryable: Send + Sync {
    /// Series matching all `matchers` with their samples in `[mint, maxt]`, sorted by labels.
    /// Series without samples in the range are left out.
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<Series>>;

    /// [`Queryable::select`] with what the engine knows of how the samples will be read, so that
    /// a store keeping rollups may read those where the hints allow ([`crate::rollup`]). A
    /// store without rollups answers with raw samples.
    fn select_hinted(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        hints: &crate::rollup::SelectHints,
    ) -> Result<Selected> {
        let _ = hints;
        Ok(Selected {
            series: self.select(matchers, mint, maxt)?,
            rollups: Vec::new(),
        })
    }

    /// Label sets of the series matching all `matchers` that have samples in `[mint, maxt]`,
    /// sorted.
    fn series(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<Labels>>;

    /// Sorted label names used by the matching series (all series when `matchers` is empty).
    fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<String>>;

    /// Sorted values of label `name` over the matching series.
    fn label_values(&self, name: &str, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<String>>;
}

/// What a hinted selection found, and where it read rollups instead of raw samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selected {
    /// The series, as [`Queryable::select`] returns them.
    pub series: Vec<Series>,
    /// The ranges read from rollups, in time order (none: raw samples throughout).
    pub rollups: Vec<RollupRead>,
}

/// A range of a selection that a rollup answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupRead {
    /// The rollup's resolution.
    pub resolution_ms: i64,
    /// The range, both ends included.
    pub from: Timestamp,
    /// See `from`.
    pub to: Timestamp,
}

/// What the head and every block answer, each for its own samples: the store asks all of them
/// the same way and merges the answers.
pub trait SeriesReader: Send + Sync {
    /// Series matching all `matchers` with their samples in `[mint, maxt]`, sorted by labels.
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Result<Vec<Series>>;

    /// Label sets of the matching series with samples around `[mint, maxt]`.
    fn series_labels(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<Labels>;

    /// Sorted label names of the matching series (of all when `matchers` is empty).
    fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String>;

    /// Sorted values of label `name` over the matching series.
    fn label_values(&self, name: &str, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String>;
}

/// The sorted, distinct label names of `series`.
pub(crate) fn names_of(series: &[Labels]) -> Vec<String> {
    let mut names: Vec<String> = series
        .iter()
        .flat_map(|l| l.iter().map(|l| l.name.to_string()))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The sorted, distinct values of label `name` in `series`.
pub(crate) fn values_of(name: &str, series: &[Labels]) -> Vec<String> {
    let mut values: Vec<String> = series.iter().filter_map(|l| l.get(name).map(str::to_owned)).collect();
    values.sort_unstable();
    values.dedup();
    values
}
