//! Label sets: sorted `(name, value)` pairs, the identity of a series.

use std::fmt;
use std::sync::Arc;

/// The label holding a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// A series' label set, sorted by name, names unique, no empty values.
///
/// Ordering is Prometheus' `labels.Compare`: pairwise by name, then value, then length.
///
/// Shared: a clone is a reference count, as the query engine hands one series' labels
/// to every step of a range query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<[(String, String)]>);

impl Labels {
    /// Builds a label set from pairs in any order; empty values are dropped (Prometheus
    /// treats an empty value as an absent label) and for a repeated name the last pair wins.
    pub fn from_pairs<I, K, V>(pairs: I) -> Labels
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut v: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        // Stable sort keeps insertion order among equal names, so "last wins" below holds.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, String)> = Vec::with_capacity(v.len());
        for (k, val) in v {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = val,
                _ => out.push((k, val)),
            }
        }
        out.retain(|(_, v)| !v.is_empty());
        Labels(out.into())
    }

    /// Wraps pairs that are already sorted by unique name without empty values (as read
    /// back from a block), checked only in debug builds.
    pub(crate) fn from_sorted_pairs(pairs: Vec<(String, String)>) -> Labels {
        debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
        debug_assert!(pairs.iter().all(|p| !p.1.is_empty()));
        Labels(pairs.into())
    }

    /// Returns the address of the shared pairs: equal for clones of one set, so caches
    /// can key derived label sets by it (while holding a clone, so it is not reused).
    pub(crate) fn addr(&self) -> usize {
        Arc::as_ptr(&self.0).cast::<()>() as usize
    }

    /// Returns the value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Returns the pairs, sorted by name.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Returns how many labels the set has.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns whether the set has no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns the XXH3 fingerprint of the set, the key of the head's series map.
    pub fn fingerprint(&self) -> u64 {
        fingerprint_pairs(self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Returns an estimate of the heap bytes the set holds.
    pub fn approx_bytes(&self) -> u64 {
        self.0
            .iter()
            .map(|(k, v)| (k.len() + v.len() + 48) as u64)
            .sum()
    }
}

/// Returns the fingerprint [`Labels::fingerprint`] gives the set of these pairs, which
/// must already be sorted by unique name without empty values.
pub(crate) fn fingerprint_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    // One-shot XXH3 over the pairs laid out in a reused buffer: much cheaper than feeding
    // a streaming hasher four short pieces a label. Fingerprints live in memory only.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        for (k, v) in pairs {
            buf.extend_from_slice(k.as_bytes());
            buf.push(0xff);
            buf.extend_from_slice(v.as_bytes());
            buf.push(0xff);
        }
        xxhash_rust::xxh3::xxh3_64(buf)
    })
}

impl fmt::Display for Labels {
    /// Formats as `{a="b", c="d"}`, like Prometheus' `labels.String`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_deduplicated_and_without_empty_values() {
        let l = Labels::from_pairs([("b", "1"), ("a", "x"), ("b", "2"), ("c", "")]);
        assert_eq!(
            l.pairs(),
            &[("a".into(), "x".into()), ("b".into(), "2".into())]
        );
        assert_eq!(l.get("b"), Some("2"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn fingerprint_depends_on_boundaries() {
        let a = Labels::from_pairs([("ab", "c")]);
        let b = Labels::from_pairs([("a", "bc")]);
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn ordering_is_labels_compare() {
        let a = Labels::from_pairs([("a", "1")]);
        let b = Labels::from_pairs([("a", "1"), ("b", "1")]);
        let c = Labels::from_pairs([("a", "2")]);
        assert!(a < b && b < c);
    }
}
