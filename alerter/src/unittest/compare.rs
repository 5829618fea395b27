//! What a test expects against what the rules gave: firing alerts and expression samples, each
//! compared as a sorted list, so the order in the file does not matter.

use super::series::LabelPairs;

/// Largest relative difference between an expected and a computed value that still passes.
///
/// promtool compares with `==` (Prometheus 3's `fuzzy_compare` allows the last bit). vigil's
/// evaluator may sum or extrapolate in another order than Prometheus's and land a few units in
/// the last place away, so a value copied from promtool's output must still pass: 1e-12 is
/// thousands of times that noise, and far below any difference written on purpose.
pub const RELATIVE_TOLERANCE: f64 = 1e-12;

/// An alert as promtool compares it: labels (with `alertname`) and annotations, sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AlertInfo {
    /// Labels, sorted by name.
    pub labels: LabelPairs,
    /// Annotations, sorted by name.
    pub annotations: LabelPairs,
}

/// A sample of an expression's result.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleInfo {
    /// Labels, sorted by name (`__name__` included).
    pub labels: LabelPairs,
    /// The value.
    pub value: f64,
}

/// Sorts both lists (promtool prints them sorted) and says whether they hold the same alerts.
pub fn same_alerts(exp: &mut [AlertInfo], got: &mut [AlertInfo]) -> bool {
    exp.sort();
    got.sort();
    exp == got
}

/// Sorts both lists by labels and says whether they hold the same samples, values within
/// [`RELATIVE_TOLERANCE`].
pub fn same_samples(exp: &mut [SampleInfo], got: &mut [SampleInfo]) -> bool {
    let by_labels = |a: &SampleInfo, b: &SampleInfo| a.labels.cmp(&b.labels);
    exp.sort_by(by_labels);
    got.sort_by(by_labels);
    exp.len() == got.len()
        && exp
            .iter()
            .zip(got.iter())
            .all(|(e, g)| e.labels == g.labels && values_match(e.value, g.value))
}

/// Whether a computed value passes for an expected one. NaN never does, as in promtool (which
/// compares with `==`).
pub fn values_match(exp: f64, got: f64) -> bool {
    if exp == got {
        return true;
    }
    if !exp.is_finite() || !got.is_finite() {
        return false;
    }
    (exp - got).abs() <= RELATIVE_TOLERANCE * exp.abs().max(got.abs())
}

/// Label pairs from `name: value` entries, sorted, empty values kept.
pub fn pairs<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> LabelPairs {
    let mut out: LabelPairs = entries.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> AlertInfo {
        AlertInfo {
            labels: pairs(labels.iter().copied()),
            annotations: pairs(annotations.iter().copied()),
        }
    }

    fn sample(labels: &[(&str, &str)], value: f64) -> SampleInfo {
        SampleInfo {
            labels: pairs(labels.iter().copied()),
            value,
        }
    }

    #[test]
    fn values_within_a_small_relative_tolerance() {
        assert!(values_match(0.3, 0.1 + 0.2));
        assert!(values_match(1e6, 1e6 * (1.0 + 1e-13)));
        assert!(values_match(0.0, 0.0));
        assert!(values_match(f64::INFINITY, f64::INFINITY));
        assert!(!values_match(1.0, 1.0 + 1e-9));
        assert!(!values_match(0.0166667, 1.0 / 60.0));
        assert!(!values_match(0.0, 1e-300));
        assert!(!values_match(f64::INFINITY, f64::NEG_INFINITY));
        assert!(!values_match(f64::NAN, f64::NAN));
        assert!(!values_match(1.0, f64::NAN));
    }

    #[test]
    fn alerts_compare_in_any_order() {
        let a = alert(&[("alertname", "A"), ("route", "a")], &[("summary", "a is down")]);
        let b = alert(&[("alertname", "A"), ("route", "b")], &[("summary", "b is down")]);
        assert!(same_alerts(&mut [a.clone(), b.clone()], &mut [b.clone(), a.clone()]));
        assert!(same_alerts(&mut [], &mut []));
        assert!(!same_alerts(&mut [a.clone()], &mut [a.clone(), b.clone()]));
        assert!(!same_alerts(&mut [a.clone()], &mut []));
        // Annotations count as much as labels.
        let a2 = alert(&[("alertname", "A"), ("route", "a")], &[("summary", "a is up")]);
        assert!(!same_alerts(&mut [a.clone()], &mut [a2]));
        // An expected empty label never matches (the rule's alerts drop empty labels).
        let empty = alert(
            &[("alertname", "A"), ("route", "a"), ("team", "")],
            &[("summary", "a is down")],
        );
        assert!(!same_alerts(&mut [empty], &mut [a]));
    }

    #[test]
    fn samples_compare_in_any_order_with_tolerance() {
        let mut exp = [
            sample(&[("__name__", "x"), ("a", "2")], 0.3),
            sample(&[("a", "1")], 5.0),
        ];
        let mut got = [
            sample(&[("a", "1")], 5.0),
            sample(&[("__name__", "x"), ("a", "2")], 0.1 + 0.2),
        ];
        assert!(same_samples(&mut exp, &mut got));
        // Sorted for printing.
        assert_eq!(exp[0].labels, pairs([("__name__", "x"), ("a", "2")]));
        let mut wrong_value = [
            sample(&[("a", "1")], 4.0),
            sample(&[("__name__", "x"), ("a", "2")], 0.3),
        ];
        assert!(!same_samples(&mut exp, &mut wrong_value));
        let mut wrong_name = [
            sample(&[("a", "1")], 5.0),
            sample(&[("__name__", "y"), ("a", "2")], 0.3),
        ];
        assert!(!same_samples(&mut exp, &mut wrong_name));
        assert!(!same_samples(&mut exp, &mut got[..1]));
        assert!(same_samples(&mut [], &mut []));
    }
}
