//! Label sets: the identity of a series.
//!
//! A [`Labels`] value is a list of name/value pairs kept sorted by name with unique names, exactly
//! as Prometheus defines a series identity. The metric name is the label `__name__`.

mod matcher;

use std::fmt;
use std::hash::Hasher;
use std::sync::Arc;

pub use matcher::{MatchOp, Matcher};

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Where the query engine keeps a metric name it will drop at the end of evaluation (Prometheus
/// 3's delayed name removal: `label_replace` and `by (__name__)` still see it meanwhile). Not a
/// valid label name, so no input can set it; never stored, never in a query's result.
pub const DROPPED_NAME: &str = "\u{1}__name__";

/// The labels that name the metric: `__name__`, and the `__type__` and `__unit__` labels of
/// Prometheus's type-and-unit labels, which operations drop (and matching ignores) with it, and
/// a name marked for dropping.
pub const METRIC_IDENTITY: [&str; 4] = [METRIC_NAME, "__type__", "__unit__", DROPPED_NAME];

fn is_metric_identity(name: &str) -> bool {
    METRIC_IDENTITY.contains(&name)
}

/// Whether `s` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()))
}

/// One label: a name and its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// Label name, e.g. `service`.
    pub name: Symbol,
    /// Label value, e.g. `orders`.
    pub value: Symbol,
}

/// An immutable, shared string: a label name or value. Cloning is a reference count increment,
/// and the head interns them, so a million series with the same `service` share one copy. A
/// thin pointer (its length lives with the bytes): a label costs 16 bytes, not 32.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Symbol(arcstr::ArcStr);

impl Symbol {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How many holders share this copy.
    pub(crate) fn ref_count(&self) -> usize {
        // `None` only for literals built at compile time, which this type never holds.
        arcstr::ArcStr::strong_count(&self.0).unwrap_or(usize::MAX)
    }
}

impl std::ops::Deref for Symbol {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Symbol {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<String> for Symbol {
    fn from(s: String) -> Self {
        Symbol(s.into())
    }
}

impl From<&str> for Symbol {
    fn from(s: &str) -> Self {
        Symbol(s.into())
    }
}

impl From<Symbol> for String {
    fn from(s: Symbol) -> Self {
        s.0.as_str().to_owned()
    }
}

impl PartialEq<str> for Symbol {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Symbol {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Symbol {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sorted set of labels with unique names: the identity of one series. Cloning is a reference
/// count increment, so series identities can be passed around the query engine freely.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<[Label]>);

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        Labels::default()
    }

    /// Builds a label set from pairs; sorts them, the last of duplicate names wins, and labels
    /// with an empty value are dropped (an empty value means "no such label" in Prometheus).
    pub fn from_pairs<N: Into<Symbol>, V: Into<Symbol>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut b = LabelsBuilder::default();
        for (n, v) in pairs {
            b.set(n, v);
        }
        b.build()
    }

    /// Builds from labels that the caller guarantees are sorted by name and unique.
    pub fn from_sorted(labels: Vec<Label>) -> Self {
        debug_assert!(
            labels.windows(2).all(|w| w[0].name < w[1].name),
            "labels not sorted: {labels:?}"
        );
        Labels(labels.into())
    }

    /// The value of `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Whether the set has a label called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// The labels as a slice, in name order.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// A copy without the metric name.
    pub fn without_metric_name(&self) -> Labels {
        if !self.iter().any(|l| is_metric_identity(&l.name)) {
            return self.clone();
        }
        self.filtered(|l| !is_metric_identity(&l.name))
    }

    /// A copy without the metric name, now or (`delayed`) at the end of evaluation: the name
    /// then moves to [`DROPPED_NAME`], and type and unit stay until then too.
    pub fn name_dropped(&self, delayed: bool) -> Labels {
        if !delayed {
            return self.without_metric_name();
        }
        if !self.has(METRIC_NAME) {
            // Nothing to mark, or marked already (a second name-dropping step).
            return self.clone();
        }
        let mut b = self.to_builder();
        if let Some(name) = self.get(METRIC_NAME) {
            b.set(DROPPED_NAME, name);
        }
        b.del(METRIC_NAME);
        b.build()
    }

    /// A copy where a name marked for dropping is the metric name again.
    pub fn name_restored(&self) -> Labels {
        let Some(name) = self.get(DROPPED_NAME) else {
            return self.clone();
        };
        let mut b = self.to_builder();
        b.set(METRIC_NAME, name);
        b.del(DROPPED_NAME);
        b.build()
    }

    /// A copy without a name marked for dropping, and then without its type and unit (what a
    /// query's result carries).
    pub fn without_dropped_name(&self) -> Labels {
        if self.has(DROPPED_NAME) {
            self.without_metric_name()
        } else {
            self.clone()
        }
    }

    /// The value of label `name`, where `__name__` also finds a name marked for dropping.
    pub fn get_or_dropped(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            None if name == METRIC_NAME => self.get(DROPPED_NAME),
            found => found,
        }
    }

    /// A copy that keeps only the named labels.
    pub fn keep(&self, names: &[String]) -> Labels {
        self.filtered(|l| names.iter().any(|n| l.name == *n))
    }

    /// A copy without the named labels.
    pub fn drop_names(&self, names: &[String]) -> Labels {
        self.filtered(|l| !names.iter().any(|n| l.name == *n))
    }

    fn filtered(&self, keep: impl Fn(&Label) -> bool) -> Labels {
        Labels(self.0.iter().filter(|l| keep(l)).cloned().collect())
    }

    /// A builder that starts from these labels.
    pub fn to_builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.0.to_vec(),
        }
    }

    /// A stable 64-bit hash of the label set (FNV-1a over names and values with separators); the
    /// same labels give the same hash in every process, so it may be stored.
    pub fn stable_hash(&self) -> u64 {
        let mut h = Fnv64::default();
        for l in self.0.iter() {
            h.write(l.name.as_bytes());
            h.write_u8(0xff);
            h.write(l.value.as_bytes());
            h.write_u8(0xff);
        }
        h.finish()
    }

    /// A hash of only the named labels (`on(...)`) or of all but the named labels
    /// (`ignoring(...)`, which also drops the metric name), used to group series in PromQL.
    pub fn signature(&self, names: &[String], include: bool) -> u64 {
        let mut h = Fnv64::default();
        for l in self.0.iter() {
            let named = names.iter().any(|n| l.name == *n);
            let keep = if include {
                named
            } else {
                !named && l.name != METRIC_NAME
            };
            if keep {
                h.write(l.name.as_bytes());
                h.write_u8(0xff);
                h.write(l.value.as_bytes());
                h.write_u8(0xff);
            }
        }
        h.finish()
    }

    /// The labels as an owned vector.
    pub fn to_vec(&self) -> Vec<Label> {
        self.0.to_vec()
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Formats as PromQL does: `name{a="b", c="d"}`.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(name) = name {
            f.write_str(name)?;
        }
        let rest: Vec<&Label> = self.0.iter().filter(|l| l.name != METRIC_NAME).collect();
        if rest.is_empty() && name.is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, l) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Builds a [`Labels`] by setting and deleting names.
#[derive(Debug, Default, Clone)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    /// Sets `name` to `value`; an empty value deletes the label.
    pub fn set(&mut self, name: impl Into<Symbol>, value: impl Into<Symbol>) -> &mut Self {
        let (name, value): (Symbol, Symbol) = (name.into(), value.into());
        match self.labels.binary_search_by(|l| l.name.as_str().cmp(name.as_str())) {
            Ok(i) if value.is_empty() => {
                self.labels.remove(i);
            }
            Ok(i) => self.labels[i].value = value,
            Err(_) if value.is_empty() => {}
            Err(i) => self.labels.insert(i, Label { name, value }),
        }
        self
    }

    /// Deletes `name`.
    pub fn del(&mut self, name: &str) -> &mut Self {
        if let Ok(i) = self.labels.binary_search_by(|l| l.name.as_str().cmp(name)) {
            self.labels.remove(i);
        }
        self
    }

    /// The current value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].value.as_str())
    }

    /// The finished label set.
    pub fn build(&mut self) -> Labels {
        Labels(std::mem::take(&mut self.labels).into())
    }
}

/// 64-bit FNV-1a: tiny, stable across processes and versions, good enough to bucket label sets
/// (collisions are resolved by comparing the labels themselves).
#[derive(Debug)]
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv64 {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Hashes a label set the same way [`Labels::stable_hash`] does, from borrowed pairs, so a caller
/// can look a series up without building a [`Labels`] first.
pub fn hash_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = Fnv64::default();
    for (n, v) in pairs {
        h.write(n.as_bytes());
        h.write_u8(0xff);
        h.write(v.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_sorts_dedups_and_drops_empty() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(l.to_string(), r#"{a="1", b="3"}"#);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn display_puts_name_first() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "x")]);
        assert_eq!(l.to_string(), r#"up{job="x"}"#);
        assert_eq!(Labels::from_pairs([("__name__", "up")]).to_string(), "up");
        assert_eq!(Labels::empty().to_string(), "{}");
    }

    #[test]
    fn hash_pairs_matches_stable_hash() {
        let l = Labels::from_pairs([("a", "1"), ("b", "2")]);
        assert_eq!(l.stable_hash(), hash_pairs([("a", "1"), ("b", "2")]));
    }

    #[test]
    fn signature_on_and_ignoring() {
        let a = Labels::from_pairs([("__name__", "x"), ("job", "j"), ("i", "1")]);
        let b = Labels::from_pairs([("__name__", "y"), ("job", "j"), ("i", "2")]);
        let on = vec!["job".to_string()];
        assert_eq!(a.signature(&on, true), b.signature(&on, true));
        let ign = vec!["i".to_string()];
        assert_eq!(a.signature(&ign, false), b.signature(&ign, false));
        assert_ne!(a.signature(&[], false), b.signature(&[], false));
    }
}
