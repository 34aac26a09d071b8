//! The in-memory head: series by fingerprint, their samples, and the inverted index.
//!
//! Series ids are dense and assigned in creation order, so every postings list in the
//! index is sorted by construction and set operations are linear merges.

use std::collections::{BTreeMap, HashMap};

use super::labels::Labels;
use super::matcher::Matcher;

/// A series' id inside the head.
pub type SeriesId = u32;

/// The bit pattern of Prometheus' stale marker, a NaN no computation produces.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Returns whether `v` is Prometheus' stale marker.
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// What happened to one appended sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored.
    Ok,
    /// Older than the series' newest sample: dropped.
    OutOfOrder,
    /// Same timestamp as the newest sample: dropped, the first value stays.
    Duplicate,
}

/// One series: its labels, samples in strictly increasing time order, and the running
/// total used to turn delta temporality into cumulative.
#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) labels: Labels,
    pub(crate) samples: Vec<(i64, f64)>,
    pub(crate) delta_total: f64,
}

/// The head's data, guarded by one lock in [`super::MetricsStore`].
#[derive(Debug, Default)]
pub(crate) struct Head {
    pub(crate) series: Vec<Series>,
    by_fingerprint: HashMap<u64, Vec<SeriesId>>,
    /// label name → label value → sorted series ids.
    index: BTreeMap<String, BTreeMap<String, Vec<SeriesId>>>,
    pub(crate) samples: u64,
    pub(crate) label_bytes: u64,
    /// The most series one metric name may have; 0 means no limit.
    pub(crate) max_series_per_metric: usize,
    /// How many series each metric name has.
    series_per_metric: HashMap<String, usize>,
}

impl Head {
    /// Returns how many series the metric `name` has.
    pub(crate) fn series_of_metric(&self, name: &str) -> usize {
        self.series_per_metric.get(name).copied().unwrap_or(0)
    }

    /// Returns whether a new series of metric `name` would pass the per-metric limit,
    /// `pending` more being on their way.
    pub(crate) fn has_room_for(&self, name: &str, pending: usize) -> bool {
        self.max_series_per_metric == 0
            || self.series_of_metric(name) + pending < self.max_series_per_metric
    }

    /// Returns the id of the series with `labels`, creating it if needed; `None` when
    /// creating it would pass the per-metric series limit.
    pub(crate) fn get_or_create(&mut self, labels: Labels) -> Option<SeriesId> {
        let fp = labels.fingerprint();
        if let Some(&id) = self.by_fingerprint.get(&fp).and_then(|ids| {
            ids.iter()
                .find(|&&id| self.series[id as usize].labels == labels)
        }) {
            return Some(id);
        }
        let name = labels.get(super::labels::METRIC_NAME).unwrap_or("");
        if !self.has_room_for(name, 0) {
            return None;
        }
        *self.series_per_metric.entry(name.to_string()).or_default() += 1;
        let id = SeriesId::try_from(self.series.len())
            .expect("BUG: more than u32::MAX series in one head");
        for (k, v) in labels.pairs() {
            self.index
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                .or_default()
                .push(id);
        }
        self.label_bytes += labels.approx_bytes();
        self.by_fingerprint.entry(fp).or_default().push(id);
        self.series.push(Series {
            labels,
            samples: Vec::new(),
            delta_total: 0.0,
        });
        Some(id)
    }

    /// Appends one sample to a series, refusing out-of-order and duplicate timestamps.
    pub(crate) fn append(&mut self, id: SeriesId, t: i64, v: f64) -> Appended {
        let s = &mut self.series[id as usize];
        match s.samples.last() {
            Some(&(last, _)) if t < last => Appended::OutOfOrder,
            Some(&(last, _)) if t == last => Appended::Duplicate,
            _ => {
                s.samples.push((t, v));
                self.samples += 1;
                Appended::Ok
            }
        }
    }

    /// Returns the newest timestamp of a series, if it has samples.
    pub(crate) fn last_timestamp(&self, id: SeriesId) -> Option<i64> {
        self.series[id as usize].samples.last().map(|s| s.0)
    }

    /// Returns the sorted ids of the series every matcher accepts.
    pub(crate) fn postings(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        let mut result: Option<Vec<SeriesId>> = None;
        // Matchers that reject the empty string narrow fastest; apply them first.
        let mut ordered: Vec<&Matcher> = matchers.iter().collect();
        ordered.sort_by_key(|m| m.matches(""));
        for m in ordered {
            let values = self.index.get(&m.name);
            let ids = if m.matches("") {
                // Everything except the series whose value for the label fails the matcher.
                let excluded = union(
                    values
                        .into_iter()
                        .flatten()
                        .filter(|(v, _)| !m.matches(v))
                        .map(|(_, ids)| ids.as_slice()),
                );
                match &result {
                    Some(r) => difference(r, &excluded),
                    None => difference(&self.all(), &excluded),
                }
            } else {
                let included = union(
                    values
                        .into_iter()
                        .flatten()
                        .filter(|(v, _)| m.matches(v))
                        .map(|(_, ids)| ids.as_slice()),
                );
                match &result {
                    Some(r) => intersect(r, &included),
                    None => included,
                }
            };
            if ids.is_empty() {
                return ids;
            }
            result = Some(ids);
        }
        result.unwrap_or_else(|| self.all())
    }

    /// Returns the label names of the head, sorted, with the ids holding each.
    pub(crate) fn index(&self) -> &BTreeMap<String, BTreeMap<String, Vec<SeriesId>>> {
        &self.index
    }

    fn all(&self) -> Vec<SeriesId> {
        (0..self.series.len() as SeriesId).collect()
    }
}

fn union<'a>(lists: impl Iterator<Item = &'a [SeriesId]>) -> Vec<SeriesId> {
    let mut out: Vec<SeriesId> = Vec::new();
    let mut count = 0;
    for l in lists {
        out.extend_from_slice(l);
        count += 1;
    }
    if count > 1 {
        out.sort_unstable();
        out.dedup();
    }
    out
}

fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
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

fn difference(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let mut j = 0;
    a.iter()
        .copied()
        .filter(|&x| {
            while j < b.len() && b[j] < x {
                j += 1;
            }
            !(j < b.len() && b[j] == x)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_limit_is_per_metric_name() {
        let mut h = Head {
            max_series_per_metric: 2,
            ..Head::default()
        };
        let l = |name: &str, v: &str| Labels::from_pairs([("__name__", name), ("k", v)]);
        assert!(h.get_or_create(l("a", "1")).is_some());
        assert!(h.get_or_create(l("a", "2")).is_some());
        assert_eq!(
            h.get_or_create(l("a", "3")),
            None,
            "a third series of a is refused"
        );
        assert!(
            h.get_or_create(l("a", "1")).is_some(),
            "existing series still take samples"
        );
        assert!(
            h.get_or_create(l("b", "1")).is_some(),
            "other metrics have room of their own"
        );
        assert_eq!((h.series_of_metric("a"), h.series_of_metric("b")), (2, 1));
        assert!(!h.has_room_for("a", 0) && h.has_room_for("b", 0) && !h.has_room_for("b", 1));
    }

    fn head() -> Head {
        let mut h = Head::default();
        for (name, job) in [("up", "a"), ("up", "b"), ("down", "a"), ("x", "")] {
            let id = h
                .get_or_create(Labels::from_pairs([("__name__", name), ("job", job)]))
                .unwrap();
            h.append(id, 1, 1.0);
        }
        h
    }

    fn ids(h: &Head, ms: &[Matcher]) -> Vec<SeriesId> {
        h.postings(ms)
    }

    #[test]
    fn matchers_select_like_prometheus() {
        let h = head();
        assert_eq!(ids(&h, &[Matcher::equal("__name__", "up")]), vec![0, 1]);
        assert_eq!(ids(&h, &[Matcher::equal("job", "")]), vec![3]);
        let ne = Matcher {
            name: "job".into(),
            kind: super::super::MatchKind::NotEqual("a".into()),
        };
        assert_eq!(ids(&h, &[ne]), vec![1, 3]);
        assert_eq!(
            ids(&h, &[Matcher::regex("job", "a|", false).unwrap()]),
            vec![0, 2, 3]
        );
        assert_eq!(
            ids(&h, &[Matcher::regex("job", ".+", true).unwrap()]),
            vec![3]
        );
        assert_eq!(
            ids(
                &h,
                &[
                    Matcher::regex("__name__", "u.*", false).unwrap(),
                    Matcher::equal("job", "b")
                ]
            ),
            vec![1]
        );
        assert!(ids(&h, &[Matcher::equal("nope", "x")]).is_empty());
    }

    #[test]
    fn out_of_order_and_duplicates_are_dropped() {
        let mut h = Head::default();
        let id = h.get_or_create(Labels::from_pairs([("a", "b")])).unwrap();
        assert_eq!(h.get_or_create(Labels::from_pairs([("a", "b")])), Some(id));
        assert_eq!(h.append(id, 10, 1.0), Appended::Ok);
        assert_eq!(h.append(id, 10, 2.0), Appended::Duplicate);
        assert_eq!(h.append(id, 9, 2.0), Appended::OutOfOrder);
        assert_eq!(h.series[0].samples, vec![(10, 1.0)]);
    }
}
