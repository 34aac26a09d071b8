//! Exemplar storage: a bounded ring buffer shared by all series, as Prometheus' in-memory
//! `CircularExemplarStorage` (`tsdb/exemplar.go`).
//!
//! Each exemplar is stored with its series' labels (the sample's series, `le` included for
//! a histogram bucket) and its own labels (`trace_id`, `span_id`, ...), value and
//! timestamp. The buffer holds at most `max` exemplars (Prometheus'
//! `storage.exemplars.max-exemplars`, 100,000 by default, [`DEFAULT_MAX_EXEMPLARS`]); when
//! it is full the oldest exemplar of all, whatever its series, makes room. Per series they
//! are kept in time order:
//!
//! - an exemplar older than its series' newest is out of order and dropped;
//! - one with the timestamp and labels of a stored exemplar of its series is a duplicate
//!   and dropped (a resend is not an error); another at the same timestamp with other
//!   labels is kept, as Prometheus 3 keeps several exemplars per timestamp;
//! - one whose label names and values add up to more than 128 UTF-8 characters is refused
//!   with Prometheus' error text ([`Added::LabelLength`]); empty label values are dropped
//!   first, as Prometheus' appender does.
//!
//! Exemplars are not part of the head: [`super::MetricsStore`] keeps them beside it, so a
//! flush (which freezes the head) leaves them alone, and they are never written to blocks.
//! They are derived in `apply` from the metrics log records (OTLP points and remote_write
//! series), so a restart rebuilds them by replaying the log; exemplars of records whose
//! segments a flush deleted are gone after a restart, as Prometheus' checkpoint drops
//! exemplars too.

use std::collections::{HashMap, VecDeque};

use parking_lot::RwLock;

use super::labels::Labels;
use super::matcher::Matcher;

/// How many exemplars the buffer holds unless told otherwise, as Prometheus' default.
pub const DEFAULT_MAX_EXEMPLARS: usize = 100_000;

/// The most UTF-8 characters an exemplar's label names and values may add up to
/// (Prometheus' `exemplar.ExemplarMaxLabelSetLength`, OpenMetrics' limit).
pub const MAX_LABEL_SET_RUNES: usize = 128;

/// One exemplar: its own labels, value and timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// The exemplar's labels (`trace_id`, `span_id`, ...), sorted, without empty values.
    pub labels: Labels,
    /// The observed value.
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub t_ms: i64,
}

/// The exemplars of one series, as a query returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesExemplars {
    /// The series' labels.
    pub series: Labels,
    /// Its exemplars in the queried range, oldest first.
    pub exemplars: Vec<Exemplar>,
}

/// What happened to one exemplar handed to [`Exemplars::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Stored.
    Stored,
    /// Its series already holds an exemplar with that timestamp and those labels; dropped.
    Duplicate,
    /// Older than its series' newest exemplar; dropped.
    OutOfOrder,
    /// Its labels are longer than [`MAX_LABEL_SET_RUNES`]; refused.
    LabelLength,
    /// The buffer's size is 0: exemplar storage is off.
    Disabled,
}

impl Added {
    /// Returns Prometheus' error text for a refusal (`storage.Err*Exemplar*`), `None` for a
    /// stored exemplar.
    pub fn error(self) -> Option<&'static str> {
        match self {
            Added::Stored => None,
            Added::Duplicate => Some("duplicate exemplar"),
            Added::OutOfOrder => Some("out of order exemplar"),
            Added::LabelLength => Some(LABEL_LENGTH_ERROR),
            Added::Disabled => {
                Some("exemplar storage is disabled or max exemplars is less than or equal to 0")
            }
        }
    }
}

/// Prometheus' `storage.ErrExemplarLabelLength`, worded as it words it.
pub const LABEL_LENGTH_ERROR: &str =
    "label length for exemplar exceeds maximum of 128 UTF-8 characters";

/// Returns whether label pairs fit the exemplar limit: their names and values (empty values
/// left out) add up to at most [`MAX_LABEL_SET_RUNES`] UTF-8 characters.
pub fn labels_fit<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    let mut runes = 0;
    for (name, value) in pairs {
        if value.is_empty() {
            continue;
        }
        runes += name.chars().count() + value.chars().count();
        if runes > MAX_LABEL_SET_RUNES {
            return false;
        }
    }
    true
}

/// Counters of what [`Exemplars::add`] did since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExemplarStats {
    /// Exemplars stored (some may have been pushed out since).
    pub stored: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Out-of-order exemplars dropped.
    pub out_of_order: u64,
    /// Exemplars refused for the length of their labels.
    pub label_length: u64,
}

/// The ring buffer; see the module documentation. Cheap to share by reference: one lock.
#[derive(Debug)]
pub struct Exemplars {
    ring: RwLock<Ring>,
}

impl Default for Exemplars {
    fn default() -> Exemplars {
        Exemplars::new(DEFAULT_MAX_EXEMPLARS)
    }
}

impl Exemplars {
    /// Returns an empty buffer for at most `max` exemplars (0: storage off).
    pub fn new(max: usize) -> Exemplars {
        Exemplars {
            ring: RwLock::new(Ring::new(max)),
        }
    }

    /// Returns how many exemplars the buffer may hold.
    pub fn max(&self) -> usize {
        self.ring.read().max
    }

    /// Changes the buffer's size, keeping the newest exemplars that fit, as Prometheus'
    /// `Resize` does.
    pub fn set_max(&self, max: usize) {
        let mut ring = self.ring.write();
        if ring.max == max {
            return;
        }
        let mut slots = std::mem::take(&mut ring.slots);
        if slots.len() == ring.max && ring.max > 0 {
            // Full: the oldest sits where the next one would go.
            slots.rotate_left(ring.next);
        }
        let stats = ring.stats;
        *ring = Ring::new(max);
        ring.stats = stats;
        let skip = slots.len().saturating_sub(max);
        for slot in slots.into_iter().skip(skip) {
            ring.insert(&slot.series, slot.exemplar);
        }
    }

    /// Adds one exemplar of the series `series`.
    pub fn add(&self, series: &Labels, exemplar: Exemplar) -> Added {
        self.ring.write().add(series, exemplar)
    }

    /// Adds exemplars in order under one lock; returns how many were stored.
    pub fn add_all(&self, items: impl IntoIterator<Item = (Labels, Exemplar)>) -> usize {
        let mut ring = self.ring.write();
        items
            .into_iter()
            .filter(|(series, e)| ring.add(series, e.clone()) == Added::Stored)
            .count()
    }

    /// Returns the exemplars in `[mint, maxt]` (inclusive milliseconds) of the series any
    /// matcher set accepts, sorted by series labels; none for no matcher sets, and series
    /// without exemplars in range are left out (Prometheus' `Select`).
    pub fn select(
        &self,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Vec<SeriesExemplars> {
        let ring = self.ring.read();
        let mut out = Vec::new();
        for (series, ids) in &ring.by_series {
            let (Some(&first), Some(&last)) = (ids.front(), ids.back()) else {
                continue;
            };
            if ring.slot(first).t_ms > maxt || ring.slot(last).t_ms < mint {
                continue;
            }
            if !matcher_sets.iter().any(|ms| super::matches_all(ms, series)) {
                continue;
            }
            let lo = ids.partition_point(|&i| ring.slot(i).t_ms < mint);
            let exemplars: Vec<Exemplar> = ids
                .range(lo..)
                .map(|&i| ring.slot(i))
                .take_while(|e| e.t_ms <= maxt)
                .cloned()
                .collect();
            if !exemplars.is_empty() {
                out.push(SeriesExemplars {
                    series: series.clone(),
                    exemplars,
                });
            }
        }
        out.sort_by(|a, b| a.series.cmp(&b.series));
        out
    }

    /// Returns how many exemplars are held.
    pub fn len(&self) -> usize {
        self.ring.read().slots.len()
    }

    /// Returns whether no exemplar is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns what [`Exemplars::add`] did since start.
    pub fn stats(&self) -> ExemplarStats {
        self.ring.read().stats
    }

    /// Returns an estimate of the heap bytes held.
    pub fn approx_bytes(&self) -> u64 {
        let ring = self.ring.read();
        ring.slots.len() as u64 * (std::mem::size_of::<Slot>() as u64 + 4)
            + ring.by_series.len() as u64 * 64
            + ring.label_bytes
    }
}

impl super::MetricsStore {
    /// Adds exemplars derived from a record being applied, in order. With a per-metric series
    /// limit, exemplars of series the head does not hold (refused by the limit) are dropped.
    pub(super) fn add_exemplars(&self, head: &super::head::Head, items: Vec<(Labels, Exemplar)>) {
        if items.is_empty() {
            return;
        }
        if head.max_series_per_metric == 0 {
            self.exemplars.add_all(items);
            return;
        }
        self.exemplars.add_all(
            items
                .into_iter()
                .filter(|(series, _)| head.get(series).is_some()),
        );
    }
}

/// One stored exemplar with its series (a clone of the index key: shared, not copied).
#[derive(Debug)]
struct Slot {
    series: Labels,
    exemplar: Exemplar,
}

#[derive(Debug)]
struct Ring {
    max: usize,
    /// Filled in insertion order up to `max`, then overwritten from `next` on.
    slots: Vec<Slot>,
    /// Where the next exemplar goes; once full, the oldest exemplar.
    next: usize,
    /// Per series, the slots holding its exemplars, oldest first.
    by_series: HashMap<Labels, VecDeque<u32>>,
    /// Heap bytes of the exemplar labels and series keys held.
    label_bytes: u64,
    stats: ExemplarStats,
}

impl Ring {
    fn new(max: usize) -> Ring {
        // Slots are indexed by u32.
        let max = max.min(u32::MAX as usize);
        Ring {
            max,
            slots: Vec::new(),
            next: 0,
            by_series: HashMap::new(),
            label_bytes: 0,
            stats: ExemplarStats::default(),
        }
    }

    fn slot(&self, i: u32) -> &Exemplar {
        &self.slots[i as usize].exemplar
    }

    fn add(&mut self, series: &Labels, exemplar: Exemplar) -> Added {
        if self.max == 0 {
            return Added::Disabled;
        }
        if !labels_fit(
            exemplar
                .labels
                .pairs()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        ) {
            self.stats.label_length += 1;
            return Added::LabelLength;
        }
        if let Some(ids) = self.by_series.get(series)
            && let Some(&newest) = ids.back()
        {
            let newest_t = self.slot(newest).t_ms;
            if exemplar.t_ms < newest_t {
                self.stats.out_of_order += 1;
                return Added::OutOfOrder;
            }
            if exemplar.t_ms == newest_t
                && ids
                    .iter()
                    .rev()
                    .map(|&i| self.slot(i))
                    .take_while(|e| e.t_ms == newest_t)
                    .any(|e| e.labels == exemplar.labels)
            {
                self.stats.duplicates += 1;
                return Added::Duplicate;
            }
        }
        self.insert(series, exemplar);
        self.stats.stored += 1;
        Added::Stored
    }

    /// Stores an exemplar already checked, pushing out the oldest when full.
    fn insert(&mut self, series: &Labels, exemplar: Exemplar) {
        let idx = if self.slots.len() < self.max {
            self.slots.len()
        } else {
            self.evict(self.next);
            self.next
        };
        let key = match self.by_series.get_key_value(series) {
            Some((key, _)) => key.clone(),
            None => {
                self.label_bytes += series.approx_bytes();
                series.clone()
            }
        };
        self.by_series
            .entry(key.clone())
            .or_default()
            .push_back(idx as u32);
        self.label_bytes += exemplar.labels.approx_bytes();
        let slot = Slot {
            series: key,
            exemplar,
        };
        if idx == self.slots.len() {
            self.slots.push(slot);
        } else {
            self.slots[idx] = slot;
        }
        self.next = (idx + 1) % self.max;
    }

    /// Takes the exemplar at `idx` (the oldest of all, hence of its series) out of the index.
    fn evict(&mut self, idx: usize) {
        let old = &self.slots[idx];
        self.label_bytes = self
            .label_bytes
            .saturating_sub(old.exemplar.labels.approx_bytes());
        if let Some(ids) = self.by_series.get_mut(&old.series) {
            let front = ids.pop_front();
            debug_assert_eq!(front, Some(idx as u32), "the oldest slot leads its series");
            if ids.is_empty() {
                self.label_bytes = self.label_bytes.saturating_sub(old.series.approx_bytes());
                self.by_series.remove(&old.series);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str) -> Labels {
        Labels::from_pairs([("__name__", name)])
    }

    fn ex(trace: &str, value: f64, t_ms: i64) -> Exemplar {
        Exemplar {
            labels: Labels::from_pairs([("trace_id", trace)]),
            value,
            t_ms,
        }
    }

    fn all(store: &Exemplars) -> Vec<(String, Vec<(String, i64)>)> {
        store
            .select(
                &[vec![Matcher::regex("__name__", ".+", false).unwrap()]],
                i64::MIN,
                i64::MAX,
            )
            .into_iter()
            .map(|s| {
                (
                    s.series.get("__name__").unwrap().to_owned(),
                    s.exemplars
                        .iter()
                        .map(|e| (e.labels.get("trace_id").unwrap_or("").to_owned(), e.t_ms))
                        .collect(),
                )
            })
            .collect()
    }

    fn row(name: &str, items: &[(&str, i64)]) -> (String, Vec<(String, i64)>) {
        (
            name.to_owned(),
            items.iter().map(|(t, ms)| ((*t).to_owned(), *ms)).collect(),
        )
    }

    #[test]
    fn the_oldest_exemplar_of_all_makes_room() {
        let store = Exemplars::new(3);
        let (a, b) = (series("a"), series("b"));
        assert_eq!(store.add(&a, ex("a1", 1.0, 10)), Added::Stored);
        assert_eq!(store.add(&b, ex("b1", 1.0, 5)), Added::Stored);
        assert_eq!(store.add(&a, ex("a2", 1.0, 20)), Added::Stored);
        assert_eq!(store.len(), 3);
        // Full: a1 (inserted first, though not the lowest timestamp) goes.
        assert_eq!(store.add(&b, ex("b2", 1.0, 30)), Added::Stored);
        assert_eq!(
            all(&store),
            vec![row("a", &[("a2", 20)]), row("b", &[("b1", 5), ("b2", 30)])]
        );
        // Then b1, then a2: series a leaves the index when its last exemplar goes.
        store.add(&b, ex("b3", 1.0, 40));
        store.add(&b, ex("b4", 1.0, 50));
        assert_eq!(
            all(&store),
            vec![row("b", &[("b2", 30), ("b3", 40), ("b4", 50)])]
        );
        assert_eq!(store.len(), 3);
        // Many more rounds keep the bound and the per-series order.
        for i in 0..100 {
            let s = if i % 3 == 0 { &a } else { &b };
            store.add(s, ex(&format!("x{i}"), i as f64, 100 + i));
        }
        assert_eq!(store.len(), 3);
        assert_eq!(
            all(&store),
            vec![
                row("a", &[("x99", 199)]),
                row("b", &[("x97", 197), ("x98", 198)])
            ]
        );
        assert_eq!(store.stats().stored, 106);
    }

    #[test]
    fn out_of_order_and_duplicates_per_series() {
        let store = Exemplars::new(10);
        let (a, b) = (series("a"), series("b"));
        assert_eq!(store.add(&a, ex("t1", 1.0, 100)), Added::Stored);
        assert_eq!(store.add(&a, ex("t0", 1.0, 99)), Added::OutOfOrder);
        // Same timestamp and labels: a duplicate, whatever the value.
        assert_eq!(store.add(&a, ex("t1", 1.0, 100)), Added::Duplicate);
        assert_eq!(store.add(&a, ex("t1", 2.0, 100)), Added::Duplicate);
        // Same timestamp, other labels: kept; then the first again is still a duplicate.
        assert_eq!(store.add(&a, ex("t2", 3.0, 100)), Added::Stored);
        assert_eq!(store.add(&a, ex("t1", 1.0, 100)), Added::Duplicate);
        // Order is per series: b may be older than a.
        assert_eq!(store.add(&b, ex("t1", 1.0, 50)), Added::Stored);
        assert_eq!(
            all(&store),
            vec![
                row("a", &[("t1", 100), ("t2", 100)]),
                row("b", &[("t1", 50)])
            ]
        );
        assert_eq!(
            store.stats(),
            ExemplarStats {
                stored: 3,
                duplicates: 3,
                out_of_order: 1,
                label_length: 0
            }
        );
        assert_eq!(Added::OutOfOrder.error(), Some("out of order exemplar"));
    }

    #[test]
    fn labels_longer_than_128_characters_are_refused() {
        let store = Exemplars::new(10);
        let a = series("a");
        // "trace_id" is 8 characters: 120 more fit exactly, 121 do not.
        let fits = "é".repeat(120);
        assert_eq!(store.add(&a, ex(&fits, 1.0, 1)), Added::Stored);
        let too_long = "é".repeat(121);
        assert_eq!(store.add(&a, ex(&too_long, 1.0, 2)), Added::LabelLength);
        assert_eq!(
            Added::LabelLength.error(),
            Some("label length for exemplar exceeds maximum of 128 UTF-8 characters")
        );
        assert!(labels_fit([("a", "b"), ("empty", "")]));
        assert!(!labels_fit([("k", "v".repeat(128).as_str())]));
        assert_eq!(store.stats().label_length, 1);
    }

    #[test]
    fn select_by_matcher_sets_and_time() {
        let store = Exemplars::new(100);
        let up = |job: &str| Labels::from_pairs([("__name__", "up"), ("job", job)]);
        for t in [10, 20, 30] {
            store.add(&up("a"), ex("a", 1.0, t));
            store.add(&up("b"), ex("b", 2.0, t + 5));
        }
        store.add(&series("other"), ex("o", 3.0, 20));
        let job_a = vec![Matcher::equal("job", "a")];
        let name_up = vec![Matcher::equal("__name__", "up")];
        let pick = |sets: &[Vec<Matcher>], mint, maxt| -> Vec<(String, Vec<i64>)> {
            store
                .select(sets, mint, maxt)
                .into_iter()
                .map(|s| {
                    (
                        s.series.to_string(),
                        s.exemplars.iter().map(|e| e.t_ms).collect(),
                    )
                })
                .collect()
        };
        assert_eq!(
            pick(std::slice::from_ref(&job_a), 15, 30),
            vec![(r#"{__name__="up", job="a"}"#.into(), vec![20, 30])]
        );
        // Two sets selecting the same series list it once; inclusive bounds.
        assert_eq!(
            pick(&[job_a, name_up.clone()], 20, 25),
            vec![
                (r#"{__name__="up", job="a"}"#.into(), vec![20]),
                (r#"{__name__="up", job="b"}"#.into(), vec![25]),
            ]
        );
        // A series without exemplars in range is left out; no sets select nothing.
        assert_eq!(pick(&[name_up], 31, 34), Vec::<(String, Vec<i64>)>::new());
        assert!(store.select(&[], i64::MIN, i64::MAX).is_empty());
    }

    #[test]
    fn resizing_keeps_the_newest_and_zero_turns_storage_off() {
        let store = Exemplars::new(4);
        let a = series("a");
        for t in 1..=6 {
            store.add(&a, ex(&format!("t{t}"), 1.0, t));
        }
        store.set_max(2);
        assert_eq!(all(&store), vec![row("a", &[("t5", 5), ("t6", 6)])]);
        store.set_max(3);
        store.add(&a, ex("t7", 1.0, 7));
        store.add(&a, ex("t8", 1.0, 8));
        assert_eq!(
            all(&store),
            vec![row("a", &[("t6", 6), ("t7", 7), ("t8", 8)])]
        );
        store.set_max(0);
        assert!(store.is_empty());
        assert_eq!(store.add(&a, ex("t9", 1.0, 9)), Added::Disabled);
        assert!(store.approx_bytes() == 0);
        assert_eq!(Exemplars::default().max(), DEFAULT_MAX_EXEMPLARS);
    }

    /// A monotonic sum point named `name` with one exemplar of value `v` at `t_ms`.
    fn otlp_sum(name: &str, t_ms: u64, v: f64) -> pharos_model::ExportMetricsServiceRequest {
        use opentelemetry_proto::tonic::metrics::v1::{
            AggregationTemporality, Exemplar as OtlpExemplar, Metric, NumberDataPoint,
            ResourceMetrics, ScopeMetrics, Sum, exemplar, metric::Data, number_data_point,
        };
        pharos_model::ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: name.into(),
                        data: Some(Data::Sum(Sum {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: t_ms * 1_000_000,
                                value: Some(number_data_point::Value::AsDouble(v)),
                                exemplars: vec![OtlpExemplar {
                                    time_unix_nano: t_ms * 1_000_000,
                                    trace_id: vec![1; 16],
                                    value: Some(exemplar::Value::AsDouble(v)),
                                    ..Default::default()
                                }],
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn otlp_exemplars_are_applied_and_outlive_a_head_freeze() {
        use crate::store::Querier;
        use crate::store::record::MetricsRecord;
        use pharos_model::Store;
        let store = crate::MetricsStore::with_max_series_per_metric(1);
        let mut rec = MetricsRecord::from(otlp_sum("a", 1_000, 1.0));
        assert_eq!(store.sanitize(&mut rec).count, 0);
        store.apply(&rec);
        // A second series of metric `a` is refused by the limit, and so is its exemplar.
        let mut other = otlp_sum("a", 2_000, 2.0);
        if let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(s)) =
            &mut other.resource_metrics[0].scope_metrics[0].metrics[0].data
        {
            s.data_points[0].attributes = vec![opentelemetry_proto::tonic::common::v1::KeyValue {
                key: "k".into(),
                value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                    value: Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                            "v".into(),
                        ),
                    ),
                }),
                ..Default::default()
            }];
        }
        store.apply(&MetricsRecord::from(other));
        let all = [vec![Matcher::regex("__name__", ".+", false).unwrap()]];
        let before = store.exemplars(&all, i64::MIN, i64::MAX);
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].series.to_string(), r#"{__name__="a_total"}"#);
        assert_eq!(
            before[0].exemplars,
            vec![Exemplar {
                labels: Labels::from_pairs([("trace_id", "01".repeat(16))]),
                value: 1.0,
                t_ms: 1_000,
            }]
        );
        // Freezing the head (the first step of a flush) leaves exemplars where they are.
        assert_eq!(store.freeze(), 1);
        assert_eq!(store.series_count(), 1);
        assert_eq!(store.exemplars(&all, i64::MIN, i64::MAX), before);
        assert!(store.exemplars(&all, 1_001, i64::MAX).is_empty());
        assert!(Store::<MetricsRecord>::approx_bytes(&store) > 0);
    }
}
