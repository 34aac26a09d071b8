//! The in-memory head: series by fingerprint, their samples, and the inverted index.
//!
//! Series ids are dense and assigned in creation order, so every postings bitmap in the
//! index is appended to at its end. A flush ([`Head::freeze`]) takes the samples out and
//! renumbers the series that stay.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use roaring::RoaringBitmap;
use rustc_hash::FxBuildHasher;

use super::labels::Labels;
use super::matcher::Matcher;
use super::postings::{self, Index};

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
    /// Older than the series' newest sample (and outside the out-of-order window): dropped.
    OutOfOrder,
    /// Same timestamp as a stored sample: dropped, the first value stays.
    Duplicate,
}

/// One series: its labels, the samples since the last flush in strictly increasing time
/// order, its newest timestamp ever (kept across flushes for the order check), and the
/// running total used to turn delta temporality into cumulative.
#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) labels: Labels,
    pub(crate) samples: Vec<(i64, f64)>,
    /// The newest sample ever appended in order.
    pub(crate) last: Option<(i64, f64)>,
    pub(crate) delta_total: f64,
}

/// Which head a [`SeriesId`] belongs to: unique among every head of the process, and new
/// for the head a [`Head::freeze`] leaves. Within one generation series are only ever added,
/// so an id found once names the same series for as long as the generation lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generation(u64);

impl Default for Generation {
    /// Returns a generation no head had before.
    fn default() -> Generation {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Generation(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// The head's data, guarded by one lock in [`super::MetricsStore`].
#[derive(Debug, Default)]
pub(crate) struct Head {
    pub(crate) series: Vec<Series>,
    /// Series by fingerprint (an XXH3 already, so hashed again cheaply): the first series
    /// of each fingerprint, the others (a collision, practically never) in `collisions`.
    by_fingerprint: HashMap<u64, SeriesId, FxBuildHasher>,
    collisions: HashMap<u64, Vec<SeriesId>, FxBuildHasher>,
    /// Never changes: a freeze builds a new head.
    generation: Generation,
    index: Index,
    /// Every id, for matchers that start from the whole head.
    all: RoaringBitmap,
    /// Samples held (since the last flush).
    pub(crate) samples: u64,
    pub(crate) label_bytes: u64,
    /// The oldest sample held, if any.
    pub(crate) min_t: Option<i64>,
    /// The newest sample held, if any (`max_t` outlives flushes, this does not).
    pub(crate) held_max_t: Option<i64>,
    /// The newest sample ever appended (kept across flushes).
    pub(crate) max_t: Option<i64>,
    /// The most series one metric name may have; 0 means no limit.
    pub(crate) max_series_per_metric: usize,
    /// Samples this much older than `max_t` may still arrive out of order; 0: none.
    pub(crate) out_of_order_window_ms: i64,
    /// How many series each metric name has.
    series_per_metric: HashMap<String, usize>,
}

impl Head {
    /// Returns this head's generation: series ids found in it stay valid while it lasts.
    pub(crate) fn generation(&self) -> Generation {
        self.generation
    }

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

    /// Returns the id of the series with exactly `labels`, if the head has it.
    pub(crate) fn get(&self, labels: &Labels) -> Option<SeriesId> {
        self.get_by_fingerprint(labels, labels.fingerprint())
    }

    /// Returns the id of the series whose labels are exactly `pairs` (sorted by unique
    /// name, no empty values), without building a label set.
    pub(crate) fn get_by_pairs<'a>(
        &self,
        pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Option<SeriesId> {
        let fp = super::labels::fingerprint_pairs(pairs.clone());
        self.find(fp, |id| {
            let have = self.series[id as usize].labels.pairs();
            have.len() == pairs.clone().count()
                && have
                    .iter()
                    .zip(pairs.clone())
                    .all(|((k, v), (k2, v2))| k == k2 && v == v2)
        })
    }

    fn get_by_fingerprint(&self, labels: &Labels, fp: u64) -> Option<SeriesId> {
        self.find(fp, |id| self.series[id as usize].labels == *labels)
    }

    /// Returns the series of fingerprint `fp` that `is` accepts.
    fn find(&self, fp: u64, is: impl Fn(SeriesId) -> bool) -> Option<SeriesId> {
        let first = *self.by_fingerprint.get(&fp)?;
        if is(first) {
            return Some(first);
        }
        self.collisions.get(&fp)?.iter().copied().find(|&id| is(id))
    }

    /// Returns the id of the series with `labels`, creating it if needed; `None` when
    /// creating it would pass the per-metric series limit.
    pub(crate) fn get_or_create(&mut self, labels: Labels) -> Option<SeriesId> {
        let fp = labels.fingerprint();
        if let Some(id) = self.get_by_fingerprint(&labels, fp) {
            return Some(id);
        }
        let name = labels.get(super::labels::METRIC_NAME).unwrap_or("");
        if !self.has_room_for(name, 0) {
            return None;
        }
        Some(self.insert(labels, fp))
    }

    fn insert(&mut self, labels: Labels, fp: u64) -> SeriesId {
        let name = labels.get(super::labels::METRIC_NAME).unwrap_or("");
        *self.series_per_metric.entry(name.to_string()).or_default() += 1;
        let id = SeriesId::try_from(self.series.len())
            .expect("BUG: more than u32::MAX series in one head");
        for (k, v) in labels.pairs() {
            // Ids grow, so each bitmap is appended to at its end.
            let ids = self
                .index
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                .or_default();
            ids.insert(id);
        }
        self.all.insert(id);
        self.label_bytes += labels.approx_bytes();
        match self.by_fingerprint.entry(fp) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.entry(fp).or_default().push(id);
            }
        }
        self.series.push(Series {
            labels,
            samples: Vec::new(),
            last: None,
            delta_total: 0.0,
        });
        id
    }

    /// Appends one sample to a series. A sample older than the series' newest is refused
    /// unless it falls inside the out-of-order window; a repeated timestamp is refused.
    pub(crate) fn append(&mut self, id: SeriesId, t: i64, v: f64) -> Appended {
        let in_window = self.accepts_out_of_order(t);
        let s = &mut self.series[id as usize];
        match s.last {
            Some((last, _)) if t == last => return Appended::Duplicate,
            Some((last, _)) if t < last => {
                if !in_window {
                    return Appended::OutOfOrder;
                }
                // Out of order but accepted: insert in place (the flushed part, if any, is
                // merged with it when read).
                let i = s.samples.partition_point(|x| x.0 < t);
                if s.samples.get(i).is_some_and(|x| x.0 == t) {
                    return Appended::Duplicate;
                }
                s.samples.insert(i, (t, v));
            }
            _ => {
                s.samples.push((t, v));
                s.last = Some((t, v));
            }
        }
        self.samples += 1;
        self.min_t = Some(self.min_t.map_or(t, |m| m.min(t)));
        self.held_max_t = Some(self.held_max_t.map_or(t, |m| m.max(t)));
        self.max_t = Some(self.max_t.map_or(t, |m| m.max(t)));
        Appended::Ok
    }

    /// Returns the newest timestamp of a series, if it ever had samples.
    pub(crate) fn last_timestamp(&self, id: SeriesId) -> Option<i64> {
        self.series[id as usize].last.map(|l| l.0)
    }

    /// Returns whether a sample at `t` older than its series' newest is still accepted:
    /// it lies within the out-of-order window behind the newest sample of the head.
    pub(crate) fn accepts_out_of_order(&self, t: i64) -> bool {
        self.out_of_order_window_ms > 0
            && self
                .max_t
                .is_some_and(|m| t >= m.saturating_sub(self.out_of_order_window_ms))
    }

    /// Takes every sample out of the head, returning the series that had any, sorted by
    /// labels. Series without samples since the previous freeze leave the head (inactive
    /// series do not hold memory); the others stay, empty, with their newest timestamp and
    /// running delta total, so order checks carry on.
    ///
    /// With `keep_idle_after`, a series without samples stays anyway while its newest
    /// sample is at or after that time, keeping its order check and its running delta
    /// total across flushes.
    pub(crate) fn freeze(
        &mut self,
        keep_idle_after: Option<i64>,
    ) -> Vec<(Labels, Vec<(i64, f64)>)> {
        let old = std::mem::take(&mut self.series);
        let mut fresh = Head {
            max_t: self.max_t,
            max_series_per_metric: self.max_series_per_metric,
            out_of_order_window_ms: self.out_of_order_window_ms,
            ..Head::default()
        };
        let mut out = Vec::new();
        for s in old {
            let recent =
                keep_idle_after.is_some_and(|after| s.last.is_some_and(|(t, _)| t >= after));
            if s.samples.is_empty() && !recent {
                continue;
            }
            let fp = s.labels.fingerprint();
            let id = fresh.insert(s.labels.clone(), fp);
            let kept = &mut fresh.series[id as usize];
            kept.last = s.last;
            kept.delta_total = s.delta_total;
            if !s.samples.is_empty() {
                out.push((s.labels, s.samples));
            }
        }
        *self = fresh;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Returns the sorted ids of the series every matcher accepts.
    pub(crate) fn postings(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        postings::select(&self.index, &self.all, matchers)
            .into_iter()
            .collect()
    }

    /// Returns the label names of the head, sorted, with the ids holding each value.
    pub(crate) fn index(&self) -> &Index {
        &self.index
    }
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

    #[test]
    fn out_of_order_window_inserts_in_place() {
        let mut h = Head {
            out_of_order_window_ms: 100,
            ..Head::default()
        };
        let id = h.get_or_create(Labels::from_pairs([("a", "b")])).unwrap();
        for t in [1000, 950, 980, 1010] {
            assert_eq!(h.append(id, t, t as f64), Appended::Ok, "t={t}");
        }
        assert_eq!(h.append(id, 950, 0.0), Appended::Duplicate);
        assert_eq!(
            h.append(id, 899, 0.0),
            Appended::OutOfOrder,
            "outside the window"
        );
        let ts: Vec<i64> = h.series[0].samples.iter().map(|s| s.0).collect();
        assert_eq!(ts, vec![950, 980, 1000, 1010]);
        assert_eq!((h.min_t, h.max_t, h.samples), (Some(950), Some(1010), 4));
    }

    #[test]
    fn colliding_fingerprints_keep_their_series_apart() {
        let mut h = Head::default();
        let sets: Vec<Labels> = ["a", "b", "c"]
            .into_iter()
            .map(|v| Labels::from_pairs([("s", v)]))
            .collect();
        // Three label sets forced onto one fingerprint.
        let ids: Vec<SeriesId> = sets.iter().map(|l| h.insert(l.clone(), 7)).collect();
        for (l, id) in sets.iter().zip(&ids) {
            assert_eq!(h.get_by_fingerprint(l, 7), Some(*id));
            let pairs = l.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str()));
            assert_eq!(h.find(7, |i| h.series[i as usize].labels == *l), Some(*id));
            // Their real fingerprints differ from 7: not found that way.
            assert_eq!(h.get_by_pairs(pairs), None);
        }
        assert_eq!(
            h.get_by_fingerprint(&Labels::from_pairs([("s", "d")]), 7),
            None
        );
    }

    #[test]
    fn a_freeze_starts_a_new_generation() {
        let mut h = Head::default();
        let other = Head::default();
        assert_ne!(h.generation(), other.generation());
        let before = h.generation();
        h.get_or_create(Labels::from_pairs([("s", "a")])).unwrap();
        assert_eq!(h.generation(), before, "adding series keeps ids valid");
        h.freeze(None);
        assert_ne!(h.generation(), before);
    }

    #[test]
    fn freeze_takes_samples_and_drops_inactive_series() {
        let mut h = Head::default();
        let a = h.get_or_create(Labels::from_pairs([("s", "a")])).unwrap();
        let b = h.get_or_create(Labels::from_pairs([("s", "b")])).unwrap();
        h.append(a, 10, 1.0);
        h.append(b, 10, 2.0);
        let first = h.freeze(None);
        assert_eq!(first.len(), 2);
        assert_eq!((h.samples, h.min_t, h.max_t), (0, None, Some(10)));
        // Only b gets a sample in the next period; a old timestamp is still refused.
        let b = h.get_or_create(Labels::from_pairs([("s", "b")])).unwrap();
        assert_eq!(h.append(b, 5, 0.0), Appended::OutOfOrder);
        assert_eq!(h.append(b, 20, 3.0), Appended::Ok);
        let second = h.freeze(None);
        assert_eq!(
            second,
            vec![(Labels::from_pairs([("s", "b")]), vec![(20, 3.0)])]
        );
        assert_eq!(
            h.series.len(),
            1,
            "a had nothing since the last flush and left"
        );
        assert_eq!(
            h.postings(&[Matcher::equal("s", "a")]),
            Vec::<SeriesId>::new()
        );
        assert_eq!(h.postings(&[Matcher::equal("s", "b")]), vec![0]);
    }
}
