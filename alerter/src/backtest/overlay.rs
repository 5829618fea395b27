//! The store a backtest reads: the history in a data directory, with what the rules under test
//! write laid over it. Series the rules record (and `ALERTS`) are read from the rules' own
//! results only, never from the history, where a live vigil may have written them with other
//! rules.

use std::collections::HashSet;

use vigil_tsdb::storage::{Queryable, Series};
use vigil_tsdb::{Labels, Matcher, Timestamp};

/// The history (`base`) and the rules' results (`scratch`) as one store.
pub struct Overlay<'a> {
    base: &'a dyn Queryable,
    scratch: &'a dyn Queryable,
    /// Metric names the rules write: hidden in `base`.
    shadowed: HashSet<String>,
}

impl std::fmt::Debug for Overlay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay").field("shadowed", &self.shadowed).finish()
    }
}

impl<'a> Overlay<'a> {
    /// `base` with `scratch` over it; `shadowed` names are read from `scratch` only.
    pub fn new(base: &'a dyn Queryable, scratch: &'a dyn Queryable, shadowed: HashSet<String>) -> Self {
        Overlay {
            base,
            scratch,
            shadowed,
        }
    }

    fn visible_in_base(&self, labels: &Labels) -> bool {
        labels.get("__name__").is_none_or(|n| !self.shadowed.contains(n))
    }
}

fn merge_sorted<T>(mut a: Vec<T>, b: Vec<T>, key: impl Fn(&T) -> &Labels) -> Vec<T> {
    if b.is_empty() {
        return a;
    }
    a.extend(b);
    a.sort_by(|x, y| key(x).cmp(key(y)));
    a
}

fn sorted_union(mut a: Vec<String>, b: Vec<String>) -> Vec<String> {
    a.extend(b);
    a.sort_unstable();
    a.dedup();
    a
}

impl Queryable for Overlay<'_> {
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> vigil_tsdb::Result<Vec<Series>> {
        let mut base = self.base.select(matchers, mint, maxt)?;
        base.retain(|s| self.visible_in_base(&s.labels));
        let scratch = self.scratch.select(matchers, mint, maxt)?;
        Ok(merge_sorted(base, scratch, |s| &s.labels))
    }

    fn series(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> vigil_tsdb::Result<Vec<Labels>> {
        let mut base = self.base.series(matchers, mint, maxt)?;
        base.retain(|l| self.visible_in_base(l));
        let scratch = self.scratch.series(matchers, mint, maxt)?;
        Ok(merge_sorted(base, scratch, |l| l))
    }

    fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> vigil_tsdb::Result<Vec<String>> {
        Ok(sorted_union(
            self.base.label_names(matchers, mint, maxt)?,
            self.scratch.label_names(matchers, mint, maxt)?,
        ))
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> vigil_tsdb::Result<Vec<String>> {
        Ok(sorted_union(
            self.base.label_values(name, matchers, mint, maxt)?,
            self.scratch.label_values(name, matchers, mint, maxt)?,
        ))
    }
}
