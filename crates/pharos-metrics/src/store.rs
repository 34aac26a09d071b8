//! The metrics store: an in-memory head of series fed by OTLP, and the [`Querier`] seam
//! the query engine and the API read through.
//!
//! Start at [`MetricsStore`]. Ingest calls [`Store::sanitize`] (drops what cannot be
//! stored, with reasons), then [`Store::apply`], which runs [`translate::translate`] and
//! appends the points to the [`head`]. Durable blocks come later; the head is all there is.
//!
//! Architecture invariant: this module knows nothing of HTTP, JSON or PromQL.

pub mod chunk;
pub mod head;
pub mod labels;
pub mod matcher;
pub mod names;
pub mod record;
mod series_limit;
pub mod translate;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use pharos_model::{ExportMetricsServiceRequest, Rejected, Store};

pub use head::{STALE_NAN_BITS, is_stale};
pub use labels::{Labels, METRIC_NAME};
pub use matcher::{MatchKind, Matcher};

use head::{Appended, Head, SeriesId};

/// One selected series and its samples within the requested time range.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The series' labels.
    pub labels: Labels,
    /// `(t_ms, value)` pairs in increasing time order; stale markers included.
    pub samples: Vec<(i64, f64)>,
}

/// Read access to stored series: what the PromQL engine and the HTTP API are handed.
///
/// Time bounds are inclusive milliseconds. A series counts as present in a range when it
/// has at least one sample inside it.
pub trait Querier: Send + Sync {
    /// Returns the series every matcher accepts with their samples in `[mint, maxt]`,
    /// sorted by labels; series without samples in the range are left out.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesSamples>;

    /// Returns the label sets of the series any matcher set accepts, sorted and unique.
    fn series(&self, matcher_sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<Labels>;

    /// Returns the sorted label names of the series any matcher set accepts (all series
    /// when `matcher_sets` is empty).
    fn label_names(&self, matcher_sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<String>;

    /// Returns the sorted values of label `name` over the series any matcher set accepts
    /// (all series when `matcher_sets` is empty).
    fn label_values(
        &self,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Vec<String>;
}

/// Counters of what [`Store::apply`] dropped; those samples were already durable, so they
/// cannot be reported back to the client.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendStats {
    /// Samples appended.
    pub appended: u64,
    /// Samples older than their series' newest sample.
    pub out_of_order: u64,
    /// Samples with the same timestamp as their series' newest sample.
    pub duplicates: u64,
    /// Samples of new series refused by the per-metric series limit.
    pub series_limit: u64,
}

/// Pharos' metrics store: series keyed by their sorted label set, samples appended in time
/// order, an inverted index for matchers. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct MetricsStore {
    head: RwLock<Head>,
    appended: AtomicU64,
    out_of_order: AtomicU64,
    duplicates: AtomicU64,
    series_limit: AtomicU64,
}

impl MetricsStore {
    /// Returns an empty store.
    pub fn new() -> MetricsStore {
        MetricsStore::default()
    }

    /// Returns an empty store in which one metric name may have at most `max`
    /// series (0: no limit). Samples of further series are refused: by
    /// `sanitize`, reported to the client, and by `apply`, counted in
    /// [`AppendStats::series_limit`].
    pub fn with_max_series_per_metric(max: usize) -> MetricsStore {
        let store = MetricsStore::default();
        store.head.write().max_series_per_metric = max;
        store
    }

    /// Appends one sample directly, bypassing OTLP translation (for tests, remote_write
    /// and imports). Returns whether it was stored.
    pub fn append_sample(&self, labels: Labels, t_ms: i64, value: f64) -> bool {
        let mut head = self.head.write();
        let Some(id) = head.get_or_create(labels) else {
            self.series_limit.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        self.count(head.append(id, t_ms, value)) == Appended::Ok
    }

    /// Returns how many samples were appended or dropped since start.
    pub fn stats(&self) -> AppendStats {
        AppendStats {
            appended: self.appended.load(Ordering::Relaxed),
            out_of_order: self.out_of_order.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            series_limit: self.series_limit.load(Ordering::Relaxed),
        }
    }

    /// Returns how many series the head holds.
    pub fn series_count(&self) -> usize {
        self.head.read().series.len()
    }

    fn count(&self, a: Appended) -> Appended {
        let c = match a {
            Appended::Ok => &self.appended,
            Appended::OutOfOrder => &self.out_of_order,
            Appended::Duplicate => &self.duplicates,
        };
        c.fetch_add(1, Ordering::Relaxed);
        a
    }

    fn append_point(&self, head: &mut Head, p: translate::Point) {
        let Some(id) = head.get_or_create(p.labels) else {
            self.series_limit.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if !p.delta || is_stale(p.value) {
            self.count(head.append(id, p.t_ms, p.value));
            return;
        }
        // Delta → cumulative: add to the running total, but only once the sample is kept.
        if head.last_timestamp(id).is_some_and(|last| p.t_ms <= last) {
            let dropped = if head.last_timestamp(id) == Some(p.t_ms) {
                Appended::Duplicate
            } else {
                Appended::OutOfOrder
            };
            self.count(dropped);
            return;
        }
        let total = head.series[id as usize].delta_total + p.value;
        if self.count(head.append(id, p.t_ms, total)) == Appended::Ok {
            head.series[id as usize].delta_total = total;
        }
    }
}

impl Store<ExportMetricsServiceRequest> for MetricsStore {
    /// Removes points without a timestamp, metrics without a usable name or data,
    /// sums and histograms of unspecified temporality, malformed histograms, and (for
    /// now) exponential histograms.
    fn sanitize(&self, req: &mut ExportMetricsServiceRequest) -> Rejected {
        let mut rejected = translate::sanitize(req);
        let head = self.head.read();
        if head.max_series_per_metric > 0 {
            rejected.merge(series_limit::sanitize(&head, req));
        }
        rejected
    }

    fn apply(&self, req: &ExportMetricsServiceRequest) {
        let points = translate::translate(req);
        let mut head = self.head.write();
        for p in points {
            self.append_point(&mut head, p);
        }
    }

    fn approx_bytes(&self) -> u64 {
        let head = self.head.read();
        head.samples * 16 + head.label_bytes + head.series.len() as u64 * 64
    }
}

fn has_sample_in(samples: &[(i64, f64)], mint: i64, maxt: i64) -> bool {
    let i = samples.partition_point(|s| s.0 < mint);
    i < samples.len() && samples[i].0 <= maxt
}

impl MetricsStore {
    /// Returns the ids of series any matcher set accepts (all when there are no sets)
    /// that have a sample in range, sorted and unique.
    fn matching(&self, head: &Head, sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<SeriesId> {
        let mut ids: Vec<SeriesId> = if sets.is_empty() {
            (0..head.series.len() as SeriesId).collect()
        } else {
            let mut all: Vec<SeriesId> = sets.iter().flat_map(|ms| head.postings(ms)).collect();
            all.sort_unstable();
            all.dedup();
            all
        };
        ids.retain(|&id| has_sample_in(&head.series[id as usize].samples, mint, maxt));
        ids
    }
}

impl Querier for MetricsStore {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesSamples> {
        let head = self.head.read();
        let mut out: Vec<SeriesSamples> = head
            .postings(matchers)
            .into_iter()
            .filter_map(|id| {
                let s = &head.series[id as usize];
                let lo = s.samples.partition_point(|x| x.0 < mint);
                let hi = s.samples.partition_point(|x| x.0 <= maxt);
                (lo < hi).then(|| SeriesSamples {
                    labels: s.labels.clone(),
                    samples: s.samples[lo..hi].to_vec(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    fn series(&self, matcher_sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<Labels> {
        let head = self.head.read();
        let mut out: Vec<Labels> = self
            .matching(&head, matcher_sets, mint, maxt)
            .into_iter()
            .map(|id| head.series[id as usize].labels.clone())
            .collect();
        out.sort();
        out
    }

    fn label_names(&self, matcher_sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<String> {
        let head = self.head.read();
        let ids = self.matching(&head, matcher_sets, mint, maxt);
        let mut names = BTreeSet::new();
        for id in ids {
            for (k, _) in head.series[id as usize].labels.pairs() {
                names.insert(k.as_str());
            }
        }
        names.into_iter().map(str::to_owned).collect()
    }

    fn label_values(
        &self,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        let head = self.head.read();
        if matcher_sets.is_empty() {
            // The index already holds the values sorted; keep those with a live series.
            let Some(values) = head.index().get(name) else {
                return Vec::new();
            };
            return values
                .iter()
                .filter(|(_, ids)| {
                    ids.iter()
                        .any(|&id| has_sample_in(&head.series[id as usize].samples, mint, maxt))
                })
                .map(|(v, _)| v.clone())
                .collect();
        }
        let ids = self.matching(&head, matcher_sets, mint, maxt);
        let values: BTreeSet<&str> = ids
            .into_iter()
            .filter_map(|id| head.series[id as usize].labels.get(name))
            .collect();
        values.into_iter().map(str::to_owned).collect()
    }
}

#[cfg(test)]
mod tests;
