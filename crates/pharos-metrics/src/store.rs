//! The metrics store: an in-memory head of recent samples, immutable blocks of older ones,
//! and the [`Querier`] seam the query engine and the API read through.
//!
//! Start at [`MetricsStore`]. Ingest calls [`Store::sanitize`] (drops what cannot be
//! stored, with reasons), then [`Store::apply`], which runs [`translate::translate`] and
//! appends the points to the [`head`]. `engine.rs` moves the head into [`block`]s
//! (freeze, flush, compaction, retention); reads merge head, frozen parts and blocks per
//! series.
//!
//! Architecture invariant: this module knows nothing of HTTP, JSON or PromQL.

pub mod block;
pub mod chunk;
mod engine;
pub mod exemplars;
pub mod head;
pub mod labels;
pub mod matcher;
pub mod metadata;
pub mod names;
mod postings;
pub mod record;
mod series_limit;
pub mod translate;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use pharos_model::{ExportMetricsServiceRequest, Rejected, Store};

pub use engine::{BlockOptions, EngineError, FlushReport, MaintenanceReport, OpenReport};
pub use head::{STALE_NAN_BITS, is_stale};

use block::Block;
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

    /// Returns the metric metadata of every family, or of the one named `metric`, sorted by
    /// family name ([`metadata`]); none by default.
    fn metric_metadata(&self, metric: Option<&str>) -> Vec<metadata::Family> {
        let _ = metric;
        Vec::new()
    }

    /// Returns the head's series, sorted, and the time range of the samples it holds (what
    /// `status/tsdb` reports, as Prometheus reports its head); by default every series.
    fn head_stats(&self) -> (Vec<Labels>, Option<(i64, i64)>) {
        (self.series(&[], i64::MIN, i64::MAX), None)
    }

    /// Returns the exemplars in `[mint, maxt]` of the series any matcher set accepts,
    /// sorted by series labels ([`exemplars`]); none for no matcher sets, and none by default.
    fn exemplars(
        &self,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Vec<exemplars::SeriesExemplars> {
        let _ = (matcher_sets, mint, maxt);
        Vec::new()
    }
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
    /// Samples taken out of the head and not yet in blocks, oldest first.
    frozen: RwLock<Vec<Arc<engine::Frozen>>>,
    /// Loaded blocks, sorted by ULID (oldest first).
    blocks: RwLock<Vec<Arc<Block>>>,
    engine: std::sync::OnceLock<engine::Engine>,
    /// remote_write samples refused by `sanitize`, by kind.
    refused: record::RefusalCounts,
    appended: AtomicU64,
    out_of_order: AtomicU64,
    duplicates: AtomicU64,
    series_limit: AtomicU64,
    /// Metric metadata by family name; not part of the head, see [`metadata`].
    metadata: metadata::Metadata,
    /// Exemplars in a bounded ring; not part of the head either, see [`exemplars`].
    exemplars: exemplars::Exemplars,
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

    /// Returns how many remote_write samples were refused since start (and told to the
    /// client), as `(reason, count)` for every reason.
    pub fn refused_counts(&self) -> Vec<(&'static str, u64)> {
        self.refused.snapshot()
    }

    /// Returns how many series the head holds.
    pub fn series_count(&self) -> usize {
        self.head.read().series.len()
    }

    /// Accepts samples up to `window_ms` older than the newest sample of the head even when
    /// their series already has newer ones (Prometheus' `out_of_order_time_window`); 0, the
    /// default, refuses them.
    pub fn set_out_of_order_window(&self, window_ms: i64) {
        self.head.write().out_of_order_window_ms = window_ms.max(0);
    }

    /// Sets how many exemplars the store keeps (Prometheus'
    /// `storage.exemplars.max-exemplars`; [`exemplars::DEFAULT_MAX_EXEMPLARS`] unless set, 0
    /// turns exemplar storage off), keeping the newest that fit.
    pub fn set_max_exemplars(&self, max: usize) {
        self.exemplars.set_max(max);
    }

    /// Returns the exemplar storage.
    pub fn exemplar_storage(&self) -> &exemplars::Exemplars {
        &self.exemplars
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
        self.add_exemplars(&head, translate::exemplars(req));
    }

    fn approx_bytes(&self) -> u64 {
        let head = self.head.read();
        let frozen = self.frozen_samples();
        (head.samples + frozen) * 16 + head.label_bytes + head.series.len() as u64 * 64
    }
}

fn has_sample_in(samples: &[(i64, f64)], mint: i64, maxt: i64) -> bool {
    let i = samples.partition_point(|s| s.0 < mint);
    i < samples.len() && samples[i].0 <= maxt
}

fn in_range(samples: &[(i64, f64)], mint: i64, maxt: i64) -> &[(i64, f64)] {
    let lo = samples.partition_point(|x| x.0 < mint);
    let hi = samples.partition_point(|x| x.0 <= maxt);
    &samples[lo..hi.max(lo)]
}

fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
}

fn matches_any(sets: &[Vec<Matcher>], labels: &Labels) -> bool {
    sets.is_empty() || sets.iter().any(|ms| matches_all(ms, labels))
}

/// One series' samples from several sources, appended oldest source first; merged into
/// time order by [`Merged::finish`], where for a timestamp present in more than one source
/// the oldest source's sample wins.
///
/// Sources usually follow each other in time (blocks, then the head), so each is appended
/// where the previous one ended and nothing is sorted; only overlapping sources are.
#[derive(Debug, Default)]
struct Merged {
    samples: Vec<(i64, f64)>,
    /// A source started at or before the end of the ones before it.
    overlaps: bool,
}

impl Merged {
    /// Appends one source's samples (in time order) through `fill`.
    fn append_with(&mut self, fill: impl FnOnce(&mut Vec<(i64, f64)>)) {
        let before = self.samples.len();
        let last = self.samples.last().map(|s| s.0);
        fill(&mut self.samples);
        if let (Some(last), Some(first)) = (last, self.samples.get(before)) {
            self.overlaps |= first.0 <= last;
        }
    }

    /// Appends one source's samples (in time order), taking the vector when it is the
    /// first source.
    fn append(&mut self, samples: Vec<(i64, f64)>) {
        if self.samples.is_empty() {
            self.samples = samples;
        } else {
            self.append_with(|out| out.extend_from_slice(&samples));
        }
    }

    fn finish(mut self) -> Vec<(i64, f64)> {
        if self.overlaps {
            // Stable: among equal timestamps the oldest source's sample stays first.
            self.samples.sort_by_key(|s| s.0);
            self.samples.dedup_by_key(|s| s.0);
        }
        self.samples
    }
}

/// What a read sees besides the head: the frozen parts and blocks overlapping its range,
/// taken in that order after the head so a concurrent flush can only duplicate a series'
/// samples (merged away), never hide them.
struct Older {
    frozen: Vec<Arc<engine::Frozen>>,
    blocks: Vec<Arc<Block>>,
}

impl Older {
    fn is_empty(&self) -> bool {
        self.frozen.is_empty() && self.blocks.is_empty()
    }
}

impl MetricsStore {
    fn older(&self, mint: i64, maxt: i64) -> Older {
        let frozen = self
            .frozen
            .read()
            .iter()
            .filter(|f| f.overlaps(mint, maxt))
            .cloned()
            .collect();
        let blocks = self
            .blocks
            .read()
            .iter()
            .filter(|b| b.overlaps(mint, maxt))
            .cloned()
            .collect();
        Older { frozen, blocks }
    }

    /// Returns the ids of head series any matcher set accepts (all when there are no sets)
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

    /// Calls `f` with the labels of every series of the frozen parts and blocks in `older`
    /// that any matcher set accepts and that has samples in range.
    fn older_series(
        older: &Older,
        sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
        mut f: impl FnMut(SeriesRef<'_>),
    ) {
        for frozen in &older.frozen {
            for (labels, samples) in &frozen.series {
                if matches_any(sets, labels) && has_sample_in(samples, mint, maxt) {
                    f(SeriesRef::Labels(labels));
                }
            }
        }
        let no_sets = [Vec::new()];
        let sets = if sets.is_empty() { &no_sets[..] } else { sets };
        for block in &older.blocks {
            let mut ords: Vec<u32> = sets
                .iter()
                .flat_map(|ms| block.matching(ms, mint, maxt))
                .collect();
            ords.sort_unstable();
            ords.dedup();
            // A series counts when a sample, not just a chunk, falls in the range.
            ords.retain(|&ord| block.has_sample_in(ord, mint, maxt));
            for ord in ords {
                f(SeriesRef::Block(block, ord));
            }
        }
    }
}

/// A series of a frozen part or a block, named cheaply.
enum SeriesRef<'a> {
    Labels(&'a Labels),
    Block(&'a Block, u32),
}

impl SeriesRef<'_> {
    fn labels(&self) -> Labels {
        match self {
            SeriesRef::Labels(l) => (*l).clone(),
            SeriesRef::Block(b, ord) => b.labels(*ord),
        }
    }
}

impl Querier for MetricsStore {
    fn head_stats(&self) -> (Vec<Labels>, Option<(i64, i64)>) {
        let head = self.head.read();
        let mut series: Vec<Labels> = head.series.iter().map(|s| s.labels.clone()).collect();
        series.sort();
        (series, head.min_t.zip(head.max_t))
    }

    fn metric_metadata(&self, metric: Option<&str>) -> Vec<metadata::Family> {
        self.metadata.families(metric)
    }

    fn exemplars(
        &self,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Vec<exemplars::SeriesExemplars> {
        self.exemplars.select(matcher_sets, mint, maxt)
    }

    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesSamples> {
        let mut from_head: Vec<SeriesSamples> = {
            let head = self.head.read();
            head.postings(matchers)
                .into_iter()
                .filter_map(|id| {
                    let s = &head.series[id as usize];
                    let samples = in_range(&s.samples, mint, maxt);
                    (!samples.is_empty()).then(|| SeriesSamples {
                        labels: s.labels.clone(),
                        samples: samples.to_vec(),
                    })
                })
                .collect()
        };
        let older = self.older(mint, maxt);
        if older.is_empty() {
            from_head.sort_by(|a, b| a.labels.cmp(&b.labels));
            return from_head;
        }
        // Oldest source first: blocks by ULID, frozen parts, then the head.
        let mut acc: BTreeMap<Labels, Merged> = BTreeMap::new();
        // A block series the head still has shares the head's label set instead of
        // building its own (most series a query reads are live). The head is only held
        // for the lookups, not while chunks are decoded.
        let matched: Vec<(&Block, u32)> = older
            .blocks
            .iter()
            .flat_map(|block| {
                block
                    .matching(matchers, mint, maxt)
                    .into_iter()
                    .map(move |ord| (&**block, ord))
            })
            .collect();
        let picked: Vec<(&Block, u32, Option<Labels>)> = {
            let head = self.head.read();
            matched
                .into_iter()
                .map(|(block, ord)| {
                    let shared = head
                        .get_by_pairs(block.label_pairs(ord))
                        .map(|id| head.series[id as usize].labels.clone());
                    (block, ord, shared)
                })
                .collect()
        };
        for (block, ord, shared) in picked {
            let labels = shared.unwrap_or_else(|| block.labels(ord));
            acc.entry(labels)
                .or_default()
                .append_with(|out| block.samples_into(ord, mint, maxt, out));
        }
        for frozen in &older.frozen {
            for (labels, samples) in &frozen.series {
                if matches_all(matchers, labels) {
                    let samples = in_range(samples, mint, maxt);
                    if !samples.is_empty() {
                        acc.entry(labels.clone())
                            .or_default()
                            .append_with(|out| out.extend_from_slice(samples));
                    }
                }
            }
        }
        for s in from_head {
            acc.entry(s.labels).or_default().append(s.samples);
        }
        acc.into_iter()
            .filter_map(|(labels, merged)| {
                let samples = merged.finish();
                (!samples.is_empty()).then_some(SeriesSamples { labels, samples })
            })
            .collect()
    }

    fn series(&self, matcher_sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<Labels> {
        let mut out: BTreeSet<Labels> = {
            let head = self.head.read();
            self.matching(&head, matcher_sets, mint, maxt)
                .into_iter()
                .map(|id| head.series[id as usize].labels.clone())
                .collect()
        };
        let older = self.older(mint, maxt);
        Self::older_series(&older, matcher_sets, mint, maxt, |s| {
            out.insert(s.labels());
        });
        out.into_iter().collect()
    }

    fn label_names(&self, matcher_sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<String> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        {
            let head = self.head.read();
            for id in self.matching(&head, matcher_sets, mint, maxt) {
                for (k, _) in head.series[id as usize].labels.pairs() {
                    if !names.contains(k) {
                        names.insert(k.clone());
                    }
                }
            }
        }
        let older = self.older(mint, maxt);
        Self::older_series(&older, matcher_sets, mint, maxt, |s| match s {
            SeriesRef::Labels(l) => names.extend(l.pairs().iter().map(|(k, _)| k.clone())),
            SeriesRef::Block(b, ord) => {
                for k in b.label_names(ord) {
                    if !names.contains(k) {
                        names.insert(k.to_owned());
                    }
                }
            }
        });
        names.into_iter().collect()
    }

    fn label_values(
        &self,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        let mut values: BTreeSet<String> = BTreeSet::new();
        {
            let head = self.head.read();
            if matcher_sets.is_empty() {
                // The index already holds the values; keep those with a live series.
                for (v, ids) in head.index().get(name).into_iter().flatten() {
                    if ids
                        .iter()
                        .any(|id| has_sample_in(&head.series[id as usize].samples, mint, maxt))
                    {
                        values.insert(v.clone());
                    }
                }
            } else {
                for id in self.matching(&head, matcher_sets, mint, maxt) {
                    if let Some(v) = head.series[id as usize].labels.get(name) {
                        values.insert(v.to_owned());
                    }
                }
            }
        }
        let older = self.older(mint, maxt);
        Self::older_series(&older, matcher_sets, mint, maxt, |s| {
            let v = match &s {
                SeriesRef::Labels(l) => l.get(name),
                SeriesRef::Block(b, ord) => b.label_value(*ord, name),
            };
            if let Some(v) = v
                && !values.contains(v)
            {
                values.insert(v.to_owned());
            }
        });
        values.into_iter().collect()
    }
}

#[cfg(test)]
mod tests;
