//! The inverted index: for every label name and value, the sorted list of series that carry it
//! ("postings"), and the set algebra that turns matchers into a list of series.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::labels::{Labels, MatchOp, Matcher, Symbol};

/// A head series reference.
pub type SeriesRef = u64;

/// Label name -> label value -> sorted series references.
#[derive(Debug, Default)]
pub(crate) struct Postings {
    by_label: FxHashMap<Symbol, FxHashMap<Symbol, Vec<SeriesRef>>>,
    all: Vec<SeriesRef>,
}

impl Postings {
    /// Indexes a new series.
    pub(crate) fn add(&mut self, r: SeriesRef, labels: &Labels) {
        insert_sorted(&mut self.all, r);
        for l in labels {
            let values = self.by_label.entry(l.name.clone()).or_default();
            insert_sorted(values.entry(l.value.clone()).or_default(), r);
        }
    }

    /// Drops the series `refs` (whose label sets are `labels`) from every list, and lists and
    /// names left empty.
    pub(crate) fn remove<'a>(&mut self, refs: &FxHashSet<SeriesRef>, labels: impl Iterator<Item = &'a Labels>) {
        self.all.retain(|r| !refs.contains(r));
        let mut touched: FxHashSet<(&Symbol, &Symbol)> = FxHashSet::default();
        let pairs: Vec<(Symbol, Symbol)> = labels
            .flat_map(|ls| ls.iter())
            .filter(|l| touched.insert((&l.name, &l.value)))
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        for (name, value) in pairs {
            let Some(values) = self.by_label.get_mut(&name) else {
                continue;
            };
            if let Some(list) = values.get_mut(&value) {
                list.retain(|r| !refs.contains(r));
                if list.is_empty() {
                    values.remove(&value);
                } else {
                    list.shrink_to_fit();
                }
            }
            if values.is_empty() {
                self.by_label.remove(&name);
            }
        }
    }

    /// Per label name: its values with how many series carry each.
    pub(crate) fn label_pairs(&self) -> impl Iterator<Item = (&Symbol, impl Iterator<Item = (&Symbol, usize)>)> {
        self.by_label
            .iter()
            .map(|(n, values)| (n, values.iter().map(|(v, refs)| (v, refs.len()))))
    }

    /// Sorted label names.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_label.keys().map(ToString::to_string).collect();
        v.sort_unstable();
        v
    }

    /// Sorted values of one label name.
    pub(crate) fn values(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_label
            .get(name)
            .map(|m| m.keys().map(ToString::to_string).collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// Series that satisfy every matcher.
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Vec<SeriesRef> {
        select(self, matchers)
    }
}

impl PostingLists for Postings {
    fn list(&self, name: &str, value: &str) -> Vec<SeriesRef> {
        self.by_label
            .get(name)
            .and_then(|values| values.get(value))
            .cloned()
            .unwrap_or_default()
    }

    fn union_where(&self, name: &str, keep: impl Fn(&str) -> bool) -> Vec<SeriesRef> {
        let Some(values) = self.by_label.get(name) else {
            return Vec::new();
        };
        merge_lists(values.iter().filter(|(v, _)| keep(v)).map(|(_, p)| p.as_slice()))
    }

    fn all(&self) -> Vec<SeriesRef> {
        self.all.clone()
    }
}

/// Where postings lists come from: the head's, in memory; a block's, in its mapped index.
pub(crate) trait PostingLists {
    /// The series carrying `name="value"`, ascending.
    fn list(&self, name: &str, value: &str) -> Vec<SeriesRef>;
    /// The union of the lists of the values of `name` that `keep` accepts, ascending.
    fn union_where(&self, name: &str, keep: impl Fn(&str) -> bool) -> Vec<SeriesRef>;
    /// Every series, ascending.
    fn all(&self) -> Vec<SeriesRef>;
}

/// Series that satisfy every matcher.
///
/// A matcher that matches the empty string also selects series without the label, so it is
/// applied by subtracting the series whose value does *not* match; all other matchers
/// intersect with the union of the values they match. When every matcher matches the empty
/// string the result starts from all series.
pub(crate) fn select(lists: &impl PostingLists, matchers: &[Matcher]) -> Vec<SeriesRef> {
    let (subtract, intersect): (Vec<&Matcher>, Vec<&Matcher>) = matchers.iter().partition(|m| m.matches_empty());
    let mut acc: Option<Vec<SeriesRef>> = None;
    // Cheapest first: equality matchers usually select few series.
    let mut intersect = intersect;
    intersect.sort_by_key(|m| m.op() != MatchOp::Equal);
    for m in intersect {
        let p = if m.op() == MatchOp::Equal {
            lists.list(m.name.as_str(), m.value.as_str())
        } else {
            lists.union_where(m.name.as_str(), |v| m.matches(v))
        };
        acc = Some(match acc {
            None => p,
            Some(a) => intersect_sorted(&a, &p),
        });
        if acc.as_ref().is_some_and(Vec::is_empty) {
            return Vec::new();
        }
    }
    let mut acc = acc.unwrap_or_else(|| lists.all());
    for m in subtract {
        let not_matching = lists.union_where(m.name.as_str(), |v| !m.matches(v));
        acc = subtract_sorted(&acc, &not_matching);
    }
    acc
}

fn insert_sorted(v: &mut Vec<SeriesRef>, r: SeriesRef) {
    match v.last() {
        Some(&last) if last >= r => {
            if let Err(i) = v.binary_search(&r) {
                v.insert(i, r);
            }
        }
        _ => v.push(r),
    }
}

/// The union of sorted lists, sorted.
pub(crate) fn merge_lists<'a>(lists: impl Iterator<Item = &'a [SeriesRef]>) -> Vec<SeriesRef> {
    let mut out: Vec<SeriesRef> = Vec::new();
    let mut n = 0;
    for l in lists {
        out.extend_from_slice(l);
        n += 1;
    }
    if n > 1 {
        out.sort_unstable();
        out.dedup();
    }
    out
}

fn intersect_sorted(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn subtract_sorted(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let mut j = 0;
    let mut out = Vec::with_capacity(a.len());
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j < b.len() && b[j] == x {
            continue;
        }
        out.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Postings {
        let mut p = Postings::default();
        p.add(
            1,
            &Labels::from_pairs([("__name__", "req"), ("svc", "a"), ("code", "200")]),
        );
        p.add(
            2,
            &Labels::from_pairs([("__name__", "req"), ("svc", "b"), ("code", "500")]),
        );
        p.add(3, &Labels::from_pairs([("__name__", "req"), ("svc", "a")]));
        p.add(
            4,
            &Labels::from_pairs([("__name__", "lat"), ("svc", "a"), ("code", "200")]),
        );
        p
    }

    fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
        Matcher::new(op, n, v).expect("valid matcher")
    }

    #[test]
    fn equality_and_negation() {
        let p = index();
        assert_eq!(p.select(&[m(MatchOp::Equal, "__name__", "req")]), vec![1, 2, 3]);
        assert_eq!(
            p.select(&[m(MatchOp::Equal, "__name__", "req"), m(MatchOp::NotEqual, "svc", "a")]),
            vec![2]
        );
        assert_eq!(
            p.select(&[m(MatchOp::Equal, "__name__", "req"), m(MatchOp::Equal, "code", "")]),
            vec![3]
        );
        assert_eq!(p.select(&[m(MatchOp::NotEqual, "code", "")]), vec![1, 2, 4]);
    }

    #[test]
    fn regexes() {
        let p = index();
        assert_eq!(p.select(&[m(MatchOp::Regex, "code", "2..|5..")]), vec![1, 2, 4]);
        assert_eq!(
            p.select(&[
                m(MatchOp::Regex, "__name__", "req"),
                m(MatchOp::NotRegex, "code", "5..")
            ]),
            vec![1, 3]
        );
        assert_eq!(p.select(&[m(MatchOp::Regex, "code", ".*")]), vec![1, 2, 3, 4]);
        assert_eq!(p.select(&[m(MatchOp::Regex, "nope", ".+")]), Vec::<u64>::new());
    }
}
