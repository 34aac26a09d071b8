//! The metrics write-ahead log record, [`MetricsRecord`]: one envelope for both ingest
//! paths (OTLP and Prometheus remote_write), so they share one log and the head replays
//! them in the order they were accepted.
//!
//! The envelope is a protobuf message whose field 1 is OTLP's `ResourceMetrics`, exactly
//! as in `ExportMetricsServiceRequest`, so the records written before remote_write existed
//! (plain `ExportMetricsServiceRequest`s) decode as envelopes unchanged. Field 2 carries
//! remote_write series, field 3 metric metadata (remote_write's and the scrape receiver's;
//! a record with only field 3 is also the metadata checkpoint, see [`super::metadata`]).
//! Format: `docs/format/wal.md`, "The metrics record".
//!
//! Remote-write series are checked here, in [`Store::sanitize`], because the checks need
//! the head: Pharos keeps what Prometheus' TSDB would keep and refuses the rest with a
//! reason, before anything reaches the log:
//!
//! - a series needs a non-empty `__name__` and non-empty label names, each name once; as
//!   in Prometheus 3, any UTF-8 name is accepted (PromQL selects it quoted); labels with an
//!   empty value are dropped, as Prometheus treats them as absent;
//! - a sample older than its series' newest one is out of order; one at the newest
//!   timestamp with another value is a duplicate; one with the same value is a resend and
//!   is dropped silently (retries are idempotent); samples more than 10 minutes ahead of
//!   the wall clock are out of bounds, as in Prometheus' receiver;
//! - native histograms are refused (not supported yet);
//! - exemplars are kept for [`super::exemplars`] (applied after the series' samples, even
//!   when a series carries nothing else, as Prometheus sends them), without their empty
//!   label values; one whose labels add up to more than 128 UTF-8 characters is dropped
//!   with Prometheus' error text in a debug log line and the request is not failed for it,
//!   as Prometheus' receiver never fails a request for an exemplar. Exemplars of a series
//!   refused for its labels or the series limit go with its samples; out-of-order and
//!   duplicate exemplars are dropped when applied;
//! - metadata without a family name is dropped without a word, an unknown type becomes
//!   `unknown`, and entries the store already knows are dropped, so the metadata
//!   Prometheus resends every minute reaches the log only when it changed.
//!
//! Stale markers are kept. Checks run against the head before the log, so two concurrent
//! requests for the same series may both pass them; [`Store::apply`] then drops the loser's
//! samples and counts them in [`super::AppendStats`], as it does for OTLP.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;

use pharos_model::{ExportMetricsServiceRequest, ItemCount, Rejected, Store};
use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType};

use super::MetricsStore;
use super::exemplars::{Exemplar, LABEL_LENGTH_ERROR, labels_fit};
use super::head::{Generation, Head, SeriesId};
use super::labels::{Labels, METRIC_NAME};
use crate::remote_write::proto::{Label, MetricMetadata, TimeSeries};

/// One record of the metrics write-ahead log: what one accepted request added.
///
/// A request from either receiver fills one field (a remote_write request two: series and
/// metadata); [`Store::apply`] applies the OTLP part first, then the remote_write series
/// (each series' samples, then its exemplars), then the metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsRecord {
    /// Field 1 (`repeated ResourceMetrics`): an OTLP request, flattened so that its bytes are
    /// the bytes of an `ExportMetricsServiceRequest`.
    pub otlp: ExportMetricsServiceRequest,
    /// Field 2 (`repeated prometheus.TimeSeries`): remote_write series, labels sorted and
    /// without empty values once sanitized; exemplars kept, histograms not.
    pub remote_write: Vec<TimeSeries>,
    /// Field 3 (`repeated prometheus.MetricMetadata`): metric metadata, family name never
    /// empty and type a known value once sanitized.
    pub metadata: Vec<MetricMetadata>,
    /// What [`Store::sanitize`] found in the head for [`Store::apply`]; not logged.
    pub apply_hints: ApplyHints,
}

/// The head series [`Store::sanitize`] found for the remote_write series of a record, so
/// that [`Store::apply`] does not look each one up again.
///
/// A hint is only used while the head it came from lasts (the same [`Generation`]: a
/// freeze, as at a log rotation, renumbers series) and for as many series as `sanitize`
/// left; a record decoded from the log has none, and is applied by labels. Whoever changes
/// `remote_write` after `sanitize` must [`ApplyHints::clear`] them.
///
/// Hints are not part of the record: they never affect equality.
#[derive(Debug, Clone, Default)]
pub struct ApplyHints {
    generation: Option<Generation>,
    /// Per remote_write series, the id of its head series, if it had one.
    ids: Vec<Option<SeriesId>>,
}

impl ApplyHints {
    /// Forgets the hints.
    pub fn clear(&mut self) {
        *self = ApplyHints::default();
    }

    /// Returns the hints if they are valid for `head` and `series` series.
    fn for_head(&self, head: &Head, series: usize) -> Option<&[Option<SeriesId>]> {
        (self.generation == Some(head.generation()) && self.ids.len() == series)
            .then_some(self.ids.as_slice())
    }
}

impl PartialEq for ApplyHints {
    fn eq(&self, _: &ApplyHints) -> bool {
        true
    }
}

/// The envelope's field numbers.
const OTLP_TAG: u32 = 1;
const REMOTE_WRITE_TAG: u32 = 2;
const METADATA_TAG: u32 = 3;

impl MetricsRecord {
    /// Wraps remote_write series.
    pub fn from_remote_write(series: Vec<TimeSeries>) -> MetricsRecord {
        MetricsRecord {
            remote_write: series,
            ..Default::default()
        }
    }

    /// Wraps a remote_write request's series and metadata.
    pub fn from_write_request(req: crate::remote_write::WriteRequest) -> MetricsRecord {
        MetricsRecord {
            remote_write: req.timeseries,
            metadata: req.metadata,
            ..Default::default()
        }
    }
}

impl From<ExportMetricsServiceRequest> for MetricsRecord {
    /// Wraps an OTLP request (a move: nothing is copied).
    fn from(otlp: ExportMetricsServiceRequest) -> MetricsRecord {
        MetricsRecord {
            otlp,
            ..Default::default()
        }
    }
}

/// Written by hand rather than derived: field 1 must hold the OTLP request's
/// `ResourceMetrics` directly (not a nested message) for old records to decode.
impl prost::Message for MetricsRecord {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        prost::encoding::message::encode_repeated(OTLP_TAG, &self.otlp.resource_metrics, buf);
        prost::encoding::message::encode_repeated(REMOTE_WRITE_TAG, &self.remote_write, buf);
        prost::encoding::message::encode_repeated(METADATA_TAG, &self.metadata, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            OTLP_TAG => prost::encoding::message::merge_repeated(
                wire_type,
                &mut self.otlp.resource_metrics,
                buf,
                ctx,
            ),
            REMOTE_WRITE_TAG => prost::encoding::message::merge_repeated(
                wire_type,
                &mut self.remote_write,
                buf,
                ctx,
            ),
            METADATA_TAG => {
                prost::encoding::message::merge_repeated(wire_type, &mut self.metadata, buf, ctx)
            }
            _ => prost::encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        prost::encoding::message::encoded_len_repeated(OTLP_TAG, &self.otlp.resource_metrics)
            + prost::encoding::message::encoded_len_repeated(REMOTE_WRITE_TAG, &self.remote_write)
            + prost::encoding::message::encoded_len_repeated(METADATA_TAG, &self.metadata)
    }

    fn clear(&mut self) {
        self.otlp.resource_metrics.clear();
        self.remote_write.clear();
        self.metadata.clear();
        self.apply_hints.clear();
    }
}

impl ItemCount for MetricsRecord {
    /// OTLP data points plus remote_write samples, native histogram samples and exemplars,
    /// plus metadata entries, so that a record holding only metadata or only exemplars is
    /// still logged.
    fn item_count(&self) -> u64 {
        self.otlp.item_count()
            + self
                .remote_write
                .iter()
                .map(|ts| (ts.samples.len() + ts.histograms.len() + ts.exemplars.len()) as u64)
                .sum::<u64>()
            + self.metadata.len() as u64
    }
}

impl Store<MetricsRecord> for MetricsStore {
    /// Sanitizes the OTLP part as [`Store<ExportMetricsServiceRequest>`] does and checks the
    /// remote_write series as the module documentation says.
    fn sanitize(&self, rec: &mut MetricsRecord) -> Rejected {
        let mut rejected = Store::<ExportMetricsServiceRequest>::sanitize(self, &mut rec.otlp);
        rec.apply_hints.clear();
        if !rec.remote_write.is_empty() {
            let head = self.head.read();
            let mut ids = Vec::new();
            rejected.merge(sanitize_remote_write(
                &head,
                &mut rec.remote_write,
                &mut ids,
                now_ms(),
                &self.refused,
            ));
            rec.apply_hints = ApplyHints {
                generation: Some(head.generation()),
                ids,
            };
        }
        sanitize_metadata(&self.metadata, &mut rec.metadata);
        rejected
    }

    fn apply(&self, rec: &MetricsRecord) {
        if !rec.otlp.resource_metrics.is_empty() {
            Store::<ExportMetricsServiceRequest>::apply(self, &rec.otlp);
            for m in super::translate::metadata(&rec.otlp) {
                self.metadata.add(&m);
            }
        }
        for m in &rec.metadata {
            self.metadata.add(m);
        }
        if rec.remote_write.is_empty() {
            return;
        }
        let mut head = self.head.write();
        let hints = rec.apply_hints.for_head(&head, rec.remote_write.len());
        let mut exemplars = Vec::new();
        for (i, ts) in rec.remote_write.iter().enumerate() {
            // The series `sanitize` found, still in this head: no second lookup.
            if let Some(id) = hints.and_then(|ids| ids[i])
                && !ts.samples.is_empty()
            {
                debug_assert!(
                    head.series[id as usize]
                        .labels
                        .pairs()
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .eq(ts
                            .labels
                            .iter()
                            .map(|l| (l.name.as_str(), l.value.as_str()))),
                    "BUG: a hint for another series"
                );
                for s in &ts.samples {
                    self.count(head.append(id, s.timestamp, s.value));
                }
                if !ts.exemplars.is_empty() {
                    let labels = head.series[id as usize].labels.clone();
                    exemplars.extend(ts.exemplars.iter().map(|e| (labels.clone(), exemplar(e))));
                }
                continue;
            }
            let pairs = ts
                .labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()));
            // Sanitized labels are sorted, unique and non-empty: an existing series is
            // found without building its label set (the common case, once per sample batch).
            let canonical = ts.labels.windows(2).all(|w| w[0].name < w[1].name)
                && ts.labels.iter().all(|l| !l.value.is_empty());
            let existing = if canonical && ts.exemplars.is_empty() && !ts.samples.is_empty() {
                head.get_by_pairs(pairs.clone())
            } else {
                None
            };
            if let Some(id) = existing {
                for s in &ts.samples {
                    self.count(head.append(id, s.timestamp, s.value));
                }
                continue;
            }
            let labels = Labels::from_pairs(pairs);
            // Sanitized records always have a name; a hand-made one may not.
            if labels.get(METRIC_NAME).is_none() {
                continue;
            }
            // A series with exemplars alone (as Prometheus sends them) creates no series.
            if !ts.samples.is_empty() {
                let Some(id) = head.get_or_create(labels.clone()) else {
                    self.series_limit
                        .fetch_add(ts.samples.len() as u64, Ordering::Relaxed);
                    continue;
                };
                for s in &ts.samples {
                    self.count(head.append(id, s.timestamp, s.value));
                }
            }
            exemplars.extend(ts.exemplars.iter().map(|e| (labels.clone(), exemplar(e))));
        }
        drop(head);
        self.exemplars.add_all(exemplars);
    }

    fn approx_bytes(&self) -> u64 {
        Store::<ExportMetricsServiceRequest>::approx_bytes(self)
            + self.metadata.approx_bytes()
            + self.exemplars.approx_bytes()
    }
}

/// Returns a remote_write exemplar as the exemplar store keeps it.
fn exemplar(e: &crate::remote_write::proto::Exemplar) -> Exemplar {
    Exemplar {
        labels: Labels::from_pairs(e.labels.iter().map(|l| (l.name.as_str(), l.value.as_str()))),
        value: e.value,
        t_ms: e.timestamp,
    }
}

/// Drops metadata without a family name, repeats within the request and entries `known`
/// already holds; normalizes types this version does not know to `unknown`.
fn sanitize_metadata(known: &super::metadata::Metadata, metadata: &mut Vec<MetricMetadata>) {
    if metadata.is_empty() {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    metadata.retain_mut(|m| {
        m.r#type = super::metadata::metric_type(m.r#type) as i32;
        !m.metric_family_name.is_empty()
            && !known.contains(m)
            && seen.insert((
                m.r#type,
                m.metric_family_name.clone(),
                m.help.clone(),
                m.unit.clone(),
            ))
    });
}

/// How far ahead of the wall clock a sample may be, as in Prometheus' receiver.
pub(super) const MAX_AHEAD_MS: i64 = 10 * 60 * 1000;

/// Why remote_write samples were refused; the messages are Prometheus' where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NoMetricName,
    InvalidLabelName,
    DuplicateLabelName,
    OutOfOrder,
    Duplicate,
    OutOfBounds,
    NativeHistogram,
    SeriesLimit,
}

impl Refusal {
    /// Every kind, in the order of [`RefusalCounts`].
    const ALL: [Refusal; 8] = [
        Refusal::NoMetricName,
        Refusal::InvalidLabelName,
        Refusal::DuplicateLabelName,
        Refusal::OutOfOrder,
        Refusal::Duplicate,
        Refusal::OutOfBounds,
        Refusal::NativeHistogram,
        Refusal::SeriesLimit,
    ];

    /// The `reason` label of `pharos_metrics_samples_refused_total`.
    fn code(self) -> &'static str {
        match self {
            Refusal::NoMetricName => "no_metric_name",
            Refusal::InvalidLabelName => "invalid_label_name",
            Refusal::DuplicateLabelName => "duplicate_label_name",
            Refusal::OutOfOrder => "out_of_order",
            Refusal::Duplicate => "duplicate",
            Refusal::OutOfBounds => "out_of_bounds",
            Refusal::NativeHistogram => "native_histogram",
            Refusal::SeriesLimit => "series_limit",
        }
    }

    fn index(self) -> usize {
        Refusal::ALL
            .iter()
            .position(|r| *r == self)
            .expect("BUG: every kind is listed")
    }
}

/// How many remote_write samples were refused since start, by kind.
#[derive(Debug, Default)]
pub(crate) struct RefusalCounts([std::sync::atomic::AtomicU64; 8]);

impl RefusalCounts {
    /// Returns `(reason, count)` for every kind.
    pub(crate) fn snapshot(&self) -> Vec<(&'static str, u64)> {
        Refusal::ALL
            .iter()
            .map(|r| (r.code(), self.0[r.index()].load(Ordering::Relaxed)))
            .collect()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::NoMetricName => "series without a metric name",
            Refusal::InvalidLabelName => "invalid label name",
            Refusal::DuplicateLabelName => "duplicate label name",
            Refusal::OutOfOrder => "out of order sample",
            Refusal::Duplicate => "duplicate sample for timestamp",
            Refusal::OutOfBounds => "out of bounds: more than 10m in the future",
            Refusal::NativeHistogram => "native histograms are not supported yet",
            Refusal::SeriesLimit => {
                "per-metric series limit reached (limits.max_series_per_metric)"
            }
        })
    }
}

/// Refusals by kind, each with a count and the first example, in order of appearance.
#[derive(Default)]
struct Refusals(Vec<(Refusal, u64, String)>);

impl Refusals {
    fn add(&mut self, why: Refusal, n: u64, example: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        match self.0.iter_mut().find(|(r, _, _)| *r == why) {
            Some(entry) => entry.1 += n,
            None => self.0.push((why, n, example())),
        }
    }

    fn into_rejected(self, counts: &RefusalCounts) -> Rejected {
        let mut rejected = Rejected::default();
        for (why, n, example) in self.0 {
            counts.0[why.index()].fetch_add(n, Ordering::Relaxed);
            rejected.add(n, &format!("{why} ({n} samples, first: {example})"));
        }
        rejected
    }
}

/// A series of a remote_write request: one the head has, or a new one by its labels.
#[derive(Clone, PartialEq, Eq, Hash)]
enum SeriesKey {
    Head(SeriesId),
    New(Labels),
}

/// Checks remote_write series against the rules in the module documentation, in place:
/// refused samples and exemplars and emptied series are removed, labels are sorted and
/// freed of empty values, histograms dropped. `ids` is set to the head series of each
/// series left, where the head has it.
fn sanitize_remote_write(
    head: &Head,
    series: &mut Vec<TimeSeries>,
    ids: &mut Vec<Option<SeriesId>>,
    now_ms: i64,
    counts: &RefusalCounts,
) -> Rejected {
    let mut refusals = Refusals::default();
    // The newest (timestamp, value bits) of each series seen so far: in the head, then
    // as this request advances it.
    let mut newest: HashMap<SeriesKey, Option<(i64, u64)>, rustc_hash::FxBuildHasher> =
        HashMap::default();
    // New series this request creates, by metric name, for the per-metric limit.
    let mut new_series: HashMap<String, usize> = HashMap::new();
    ids.clear();
    ids.resize(series.len(), None);
    for (ts, hint) in series.iter_mut().zip(ids.iter_mut()) {
        sanitize_exemplars(ts);
        let histograms = std::mem::take(&mut ts.histograms);
        refusals.add(Refusal::NativeHistogram, histograms.len() as u64, || {
            labels_display(&ts.labels)
        });
        if let Err(why) = check_labels(ts) {
            refusals.add(why, ts.samples.len() as u64, || labels_display(&ts.labels));
            ts.samples.clear();
            ts.exemplars.clear();
            continue;
        }
        ts.labels.retain(|l| !l.value.is_empty());
        ts.labels.sort_by(|a, b| a.name.cmp(&b.name));
        if ts.samples.is_empty() {
            // Exemplars alone: no series to create, no sample to check.
            continue;
        }
        // An existing series is found without building its label set (the common case);
        // only a new one gets one, to be counted and remembered by labels.
        let existing = head.get_by_pairs(
            ts.labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
        );
        *hint = existing;
        let key = match existing {
            Some(id) => SeriesKey::Head(id),
            None => SeriesKey::New(Labels::from_pairs(
                ts.labels
                    .iter()
                    .map(|l| (l.name.as_str(), l.value.as_str())),
            )),
        };
        if !newest.contains_key(&key) {
            if let SeriesKey::New(labels) = &key {
                // A new series: within the per-metric limit, counting the request's own.
                let name = labels.get(METRIC_NAME).unwrap_or("").to_string();
                let pending = new_series.entry(name).or_insert(0);
                if !head.has_room_for(labels.get(METRIC_NAME).unwrap_or(""), *pending) {
                    refusals.add(Refusal::SeriesLimit, ts.samples.len() as u64, || {
                        labels_display(&ts.labels)
                    });
                    ts.samples.clear();
                    ts.exemplars.clear();
                    continue;
                }
                *pending += 1;
            }
            let last = existing
                .and_then(|id| head.series[id as usize].last)
                .map(|(t, v)| (t, v.to_bits()));
            newest.insert(key.clone(), last);
        }
        let last = newest.get_mut(&key).expect("BUG: inserted just above");
        let TimeSeries {
            labels, samples, ..
        } = ts;
        samples.retain(|s| {
            let bits = s.value.to_bits();
            let why = if s.timestamp > now_ms.saturating_add(MAX_AHEAD_MS) {
                Refusal::OutOfBounds
            } else {
                match *last {
                    // Accepted out of order; the head checks it against what it holds.
                    Some((t, _)) if s.timestamp < t && head.accepts_out_of_order(s.timestamp) => {
                        return true;
                    }
                    Some((t, _)) if s.timestamp < t => Refusal::OutOfOrder,
                    // The same sample again: already stored, so a retry is not an error.
                    Some((t, b)) if s.timestamp == t && b == bits => return false,
                    Some((t, _)) if s.timestamp == t => Refusal::Duplicate,
                    _ => {
                        *last = Some((s.timestamp, bits));
                        return true;
                    }
                }
            };
            refusals.add(why, 1, || {
                format!("{} at {}", labels_display(labels), s.timestamp)
            });
            false
        });
    }
    let kept = |ts: &TimeSeries| !ts.samples.is_empty() || !ts.exemplars.is_empty();
    let mut left = series.iter().map(kept);
    ids.retain(|_| left.next().expect("BUG: one id per series"));
    series.retain(kept);
    refusals.into_rejected(counts)
}

/// Drops the empty label values of a series' exemplars, then the exemplars whose labels are
/// too long, each with Prometheus' error text in a debug line (its receiver logs them at
/// debug level and does not fail the request).
fn sanitize_exemplars(ts: &mut TimeSeries) {
    if ts.exemplars.is_empty() {
        return;
    }
    let TimeSeries {
        labels, exemplars, ..
    } = ts;
    exemplars.retain_mut(|e| {
        e.labels.retain(|l| !l.value.is_empty());
        let fits = labels_fit(e.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())));
        if !fits {
            tracing::debug!(
                series = %labels_display(labels),
                exemplar = %labels_display(&e.labels),
                timestamp = e.timestamp,
                "error while adding exemplar: {LABEL_LENGTH_ERROR}"
            );
        }
        fits
    });
}

/// Returns why a series' labels are unusable, if they are.
fn check_labels(ts: &TimeSeries) -> Result<(), Refusal> {
    // Senders sort labels by name: then names in strictly increasing order are unique,
    // without sorting a copy of them.
    let sorted = ts.labels.windows(2).all(|w| w[0].name < w[1].name);
    if !sorted {
        let mut names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(Refusal::DuplicateLabelName);
        }
    }
    if !ts.labels.iter().all(|l| is_label_name(&l.name)) {
        return Err(Refusal::InvalidLabelName);
    }
    match ts.labels.iter().find(|l| l.name == METRIC_NAME) {
        Some(l) if l.value.is_empty() => Err(Refusal::NoMetricName),
        Some(_) => Ok(()),
        None => Err(Refusal::NoMetricName),
    }
}

/// Returns whether `name` can be a label name: as in Prometheus 3, any non-empty UTF-8
/// string (protobuf strings are UTF-8 already), so `{"service.name"="x"}` selects it.
fn is_label_name(name: &str) -> bool {
    !name.is_empty()
}

/// Formats labels as given (unsorted, duplicates kept) like Prometheus' `labels.String`.
fn labels_display(labels: &[Label]) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::proto::{Exemplar as RwExemplar, MetricType, Sample};
    use crate::store::{Matcher, Querier, STALE_NAN_BITS};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
        number_data_point,
    };
    use prost::Message;

    const T: i64 = 1_700_000_000_000;

    fn otlp(name: &str, t_ms: i64, v: f64) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: name.into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: t_ms as u64 * 1_000_000,
                                value: Some(number_data_point::Value::AsDouble(v)),
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: labels.iter().map(|(k, v)| Label::new(*k, *v)).collect(),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
            ..Default::default()
        }
    }

    fn select(store: &MetricsStore, name: &str) -> Vec<(Labels, Vec<(i64, u64)>)> {
        store
            .select(&[Matcher::equal(METRIC_NAME, name)], i64::MIN, i64::MAX)
            .into_iter()
            .map(|s| {
                let samples = s.samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
                (s.labels, samples)
            })
            .collect()
    }

    #[test]
    fn an_otlp_request_is_a_record_byte_for_byte() {
        let req = otlp("old.gauge", T, 1.5);
        let old_bytes = req.encode_to_vec();
        let rec = MetricsRecord::decode(old_bytes.as_slice()).unwrap();
        assert_eq!(rec, MetricsRecord::from(req.clone()));
        assert_eq!(rec.encode_to_vec(), old_bytes, "the envelope adds nothing");
        assert_eq!(rec.encoded_len(), old_bytes.len());
    }

    #[test]
    fn remote_write_series_round_trip_in_field_2() {
        let rec = MetricsRecord {
            otlp: otlp("both", T, 2.0),
            remote_write: vec![series(&[("__name__", "up")], &[(T, 1.0)])],
            ..Default::default()
        };
        let bytes = rec.encode_to_vec();
        assert_eq!(MetricsRecord::decode(bytes.as_slice()).unwrap(), rec);
        assert_eq!(rec.encoded_len(), bytes.len());
        // A reader that only knows OTLP skips field 2 and keeps the OTLP part.
        let as_otlp = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(as_otlp, rec.otlp);
        assert_eq!(rec.item_count(), 2);
    }

    /// Sanitizes `input` against a store holding `before` (applied as remote_write), and
    /// checks the refusal message and the series left, as `(labels, samples)` pairs.
    fn check(
        before: Vec<TimeSeries>,
        input: Vec<TimeSeries>,
        expected_message: &str,
        expected_left: Vec<TimeSeries>,
    ) {
        let store = MetricsStore::new();
        store.apply(&MetricsRecord::from_remote_write(before));
        let mut rec = MetricsRecord::from_remote_write(input);
        let rejected = store.sanitize(&mut rec);
        assert_eq!(rejected.message, expected_message);
        let left: Vec<_> = rec
            .remote_write
            .iter()
            .map(|ts| format!("{ts:?}"))
            .collect();
        let expected: Vec<_> = expected_left.iter().map(|ts| format!("{ts:?}")).collect();
        assert_eq!(left, expected);
    }

    #[test]
    fn labels_are_checked_and_normalized() {
        check(
            vec![],
            vec![
                series(
                    &[("job", "a"), ("__name__", "up"), ("empty", "")],
                    &[(T, 1.0)],
                ),
                series(&[("job", "a")], &[(T, 1.0), (T + 1, 1.0)]),
                series(&[("__name__", "")], &[(T, 1.0)]),
                // UTF-8 names are valid, as in Prometheus 3; an empty name is not.
                series(&[("__name__", "a.b"), ("service.name", "é")], &[(T, 1.0)]),
                series(&[("__name__", "x"), ("", "1")], &[(T, 1.0)]),
                series(&[("__name__", "x"), ("a", "1"), ("a", "2")], &[(T, 1.0)]),
                series(&[("__name__", "ns:x"), ("__meta", "kept")], &[(T, 1.0)]),
            ],
            "series without a metric name (3 samples, first: {job=\"a\"}); \
             invalid label name (1 samples, first: {__name__=\"x\", =\"1\"}); \
             duplicate label name (1 samples, first: {__name__=\"x\", a=\"1\", a=\"2\"})",
            vec![
                series(&[("__name__", "up"), ("job", "a")], &[(T, 1.0)]),
                series(&[("__name__", "a.b"), ("service.name", "é")], &[(T, 1.0)]),
                series(&[("__meta", "kept"), ("__name__", "ns:x")], &[(T, 1.0)]),
            ],
        );
    }

    #[test]
    fn samples_are_checked_against_the_head_and_the_request() {
        let up = [("__name__", "up")];
        let stale = f64::from_bits(STALE_NAN_BITS);
        check(
            vec![series(&up, &[(T, 1.0)])],
            vec![
                // Older than the head: out of order; the same sample: dropped silently.
                series(&up, &[(T - 1, 1.0), (T, 1.0)]),
                // The same timestamp, another value.
                series(&up, &[(T, 2.0), (T + 10, 1.0), (T + 20, stale)]),
                // Behind what this request already carries.
                series(&up, &[(T + 15, 1.0), (T + 30, 1.0)]),
                series(&[("__name__", "new")], &[(T - 5, 1.0), (T - 6, 1.0)]),
            ],
            "out of order sample (3 samples, first: {__name__=\"up\"} at 1699999999999); \
             duplicate sample for timestamp (1 samples, first: {__name__=\"up\"} at 1700000000000)",
            vec![
                series(&up, &[(T + 10, 1.0), (T + 20, stale)]),
                series(&up, &[(T + 30, 1.0)]),
                series(&[("__name__", "new")], &[(T - 5, 1.0)]),
            ],
        );
    }

    #[test]
    fn far_future_samples_and_native_histograms_are_refused() {
        let store = MetricsStore::new();
        let mut rec = MetricsRecord::from_remote_write(vec![TimeSeries {
            histograms: vec![Default::default(); 2],
            ..series(
                &[("__name__", "h")],
                &[(T, 1.0), (T + MAX_AHEAD_MS + 1, 2.0)],
            )
        }]);
        let head = store.head.read();
        let rejected = sanitize_remote_write(
            &head,
            &mut rec.remote_write,
            &mut Vec::new(),
            T,
            &store.refused,
        );
        assert_eq!(rejected.count, 3);
        let counts: std::collections::HashMap<_, _> = store.refused_counts().into_iter().collect();
        assert_eq!(
            (
                counts["native_histogram"],
                counts["out_of_bounds"],
                counts["out_of_order"]
            ),
            (2, 1, 0)
        );
        assert_eq!(
            rejected.message,
            "native histograms are not supported yet (2 samples, first: {__name__=\"h\"}); \
             out of bounds: more than 10m in the future (1 samples, first: {__name__=\"h\"} at 1700000600001)"
        );
        assert_eq!(
            rec.remote_write,
            vec![series(&[("__name__", "h")], &[(T, 1.0)])]
        );
    }

    #[test]
    fn apply_appends_both_parts_and_keeps_stale_markers() {
        let store = MetricsStore::new();
        let stale = f64::from_bits(STALE_NAN_BITS);
        let mut rec = MetricsRecord {
            otlp: otlp("g", T, 3.0),
            remote_write: vec![
                series(&[("job", "j"), ("__name__", "up")], &[(T, 1.0)]),
                series(&[("__name__", "up"), ("job", "j")], &[(T + 1000, stale)]),
            ],
            ..Default::default()
        };
        assert_eq!(store.sanitize(&mut rec), Rejected::default());
        store.apply(&rec);
        let up = Labels::from_pairs([("__name__", "up"), ("job", "j")]);
        assert_eq!(
            select(&store, "up"),
            vec![(up, vec![(T, 1f64.to_bits()), (T + 1000, STALE_NAN_BITS)])]
        );
        assert_eq!(select(&store, "g").len(), 1);
        assert_eq!(store.stats().appended, 3);
        // Applying the same record again appends nothing and counts the drops, as for OTLP.
        store.apply(&rec);
        let stats = store.stats();
        assert_eq!(
            (stats.appended, stats.duplicates, stats.out_of_order),
            (3, 2, 1)
        );
    }

    fn exemplar(labels: &[(&str, &str)], value: f64, timestamp: i64) -> RwExemplar {
        RwExemplar {
            labels: labels.iter().map(|(k, v)| Label::new(*k, *v)).collect(),
            value,
            timestamp,
        }
    }

    /// One series' exemplars as `(series, [(exemplar labels, value, t)])`.
    type ExemplarRow = (String, Vec<(String, f64, i64)>);

    /// Every exemplar the store holds, by series.
    fn stored_exemplars(store: &MetricsStore) -> Vec<ExemplarRow> {
        store
            .exemplars(
                &[vec![Matcher::regex(METRIC_NAME, ".+", false).unwrap()]],
                i64::MIN,
                i64::MAX,
            )
            .into_iter()
            .map(|s| {
                let items = s
                    .exemplars
                    .iter()
                    .map(|e| (e.labels.to_string(), e.value, e.t_ms))
                    .collect();
                (s.series.to_string(), items)
            })
            .collect()
    }

    #[test]
    fn remote_write_exemplars_are_kept_checked_and_applied() {
        let store = MetricsStore::with_max_series_per_metric(1);
        store.apply(&MetricsRecord::from_remote_write(vec![series(
            &[("__name__", "full")],
            &[(T, 1.0)],
        )]));
        let long = "x".repeat(121);
        let mut rec = MetricsRecord::from_remote_write(vec![
            TimeSeries {
                exemplars: vec![
                    // An empty value is dropped before the length is counted: 8 + 120.
                    exemplar(&[("trace_id", &"a".repeat(120)), ("empty", "")], 6.0, T),
                    // 8 + 121 characters: refused, the request is not.
                    exemplar(&[("trace_id", &long)], 7.0, T + 1),
                    exemplar(&[("trace_id", "b")], 8.0, T + 2),
                ],
                ..series(&[("job", "j"), ("__name__", "reqs")], &[(T, 1.0)])
            },
            // Exemplars alone, as Prometheus sends them: kept without creating a series.
            TimeSeries {
                exemplars: vec![exemplar(&[("trace_id", "c")], 9.0, T + 3)],
                ..series(&[("__name__", "other"), ("job", "j")], &[])
            },
            // A series refused for its labels or the series limit loses its exemplars too.
            TimeSeries {
                exemplars: vec![exemplar(&[("trace_id", "d")], 1.0, T)],
                ..series(&[("job", "no-name")], &[(T, 1.0)])
            },
            TimeSeries {
                exemplars: vec![exemplar(&[("trace_id", "e")], 1.0, T)],
                ..series(&[("__name__", "full"), ("k", "new")], &[(T, 1.0)])
            },
        ]);
        let rejected = store.sanitize(&mut rec);
        assert_eq!(rejected.count, 2, "{}", rejected.message);
        assert!(
            !rejected.message.contains("exemplar"),
            "{}",
            rejected.message
        );
        assert_eq!(rec.remote_write.len(), 2);
        assert_eq!(rec.remote_write[0].exemplars.len(), 2);
        assert_eq!(rec.remote_write[0].exemplars[0].labels.len(), 1);
        assert_eq!(rec.remote_write[1].samples.len(), 0);
        assert_eq!(rec.item_count(), 4, "one sample and three exemplars");
        // Exemplars survive the record's encoding, as the log replays them.
        let rec = MetricsRecord::decode(rec.encode_to_vec().as_slice()).unwrap();
        store.apply(&rec);
        assert_eq!(
            stored_exemplars(&store),
            vec![
                (
                    r#"{__name__="other", job="j"}"#.to_owned(),
                    vec![(r#"{trace_id="c"}"#.to_owned(), 9.0, T + 3)]
                ),
                (
                    r#"{__name__="reqs", job="j"}"#.to_owned(),
                    vec![
                        (format!(r#"{{trace_id="{}"}}"#, "a".repeat(120)), 6.0, T),
                        (r#"{trace_id="b"}"#.to_owned(), 8.0, T + 2),
                    ]
                ),
            ]
        );
        assert_eq!(store.series_count(), 2, "no series for `other`");
        // Applying the record again stores nothing twice: the newest exemplar of each series
        // is a duplicate, the older one out of order (as in Prometheus, only the newest
        // timestamp is compared); so is an exemplar older than the newest.
        store.apply(&rec);
        store.apply(&MetricsRecord::from_remote_write(vec![TimeSeries {
            exemplars: vec![exemplar(&[("trace_id", "z")], 1.0, T + 1)],
            ..series(&[("__name__", "reqs"), ("job", "j")], &[])
        }]));
        let stats = store.exemplar_storage().stats();
        assert_eq!(
            (stats.stored, stats.duplicates, stats.out_of_order),
            (3, 2, 2)
        );
        assert_eq!(stored_exemplars(&store)[1].1.len(), 2);
    }

    fn md(name: &str, kind: MetricType, help: &str, unit: &str) -> MetricMetadata {
        MetricMetadata {
            r#type: kind as i32,
            metric_family_name: name.into(),
            help: help.into(),
            unit: unit.into(),
        }
    }

    #[test]
    fn metadata_round_trips_in_field_3_and_old_readers_skip_it() {
        let rec = MetricsRecord {
            remote_write: vec![series(&[("__name__", "up")], &[(T, 1.0)])],
            metadata: vec![
                md("up", MetricType::Gauge, "Whether the target is up.", ""),
                md(
                    "http_requests",
                    MetricType::Counter,
                    "Requests.",
                    "requests",
                ),
            ],
            ..Default::default()
        };
        let bytes = rec.encode_to_vec();
        assert_eq!(MetricsRecord::decode(bytes.as_slice()).unwrap(), rec);
        assert_eq!(rec.encoded_len(), bytes.len());
        assert_eq!(rec.item_count(), 3, "one sample and two metadata entries");
        // Field 3's bytes: tag (3 << 3 | 2) = 0x1a, then a `prometheus.MetricMetadata`.
        let only = MetricsRecord {
            metadata: vec![md("a", MetricType::Counter, "", "")],
            ..Default::default()
        };
        assert_eq!(
            only.encode_to_vec(),
            [0x1a, 0x05, 0x08, 0x01, 0x12, 0x01, b'a']
        );
        // A reader from before field 3 (and an OTLP-only reader) skips it.
        assert_eq!(
            ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap(),
            ExportMetricsServiceRequest::default()
        );
        // A record from before field 3 decodes with no metadata.
        let old = MetricsRecord::from_remote_write(rec.remote_write.clone()).encode_to_vec();
        assert!(
            MetricsRecord::decode(old.as_slice())
                .unwrap()
                .metadata
                .is_empty()
        );
    }

    #[test]
    fn metadata_is_sanitized_against_the_store_and_applied() {
        let store = MetricsStore::new();
        store.apply(&MetricsRecord {
            metadata: vec![md("known", MetricType::Gauge, "Known.", "")],
            ..Default::default()
        });
        let mut odd = md("odd", MetricType::Counter, "", "");
        odd.r#type = 99;
        let mut rec = MetricsRecord::from_write_request(crate::remote_write::WriteRequest {
            timeseries: vec![],
            metadata: vec![
                md("known", MetricType::Gauge, "Known.", ""),
                md("known", MetricType::Gauge, "Known, reworded.", ""),
                md("", MetricType::Counter, "No name.", ""),
                md("new", MetricType::Counter, "New.", "seconds"),
                md("new", MetricType::Counter, "New.", "seconds"),
                odd,
            ],
        });
        assert_eq!(store.sanitize(&mut rec), Rejected::default());
        assert_eq!(
            rec.metadata,
            vec![
                md("known", MetricType::Gauge, "Known, reworded.", ""),
                md("new", MetricType::Counter, "New.", "seconds"),
                md("odd", MetricType::Unknown, "", ""),
            ]
        );
        assert_eq!(rec.item_count(), 3);
        store.apply(&rec);
        let families = store.metadata().families(None);
        let summary: Vec<_> = families
            .iter()
            .map(|(name, entries)| (name.as_str(), entries.len()))
            .collect();
        assert_eq!(summary, [("known", 2), ("new", 1), ("odd", 1)]);
        // Everything known now: the same request again is left with nothing to log.
        let mut again = rec.clone();
        store.sanitize(&mut again);
        assert_eq!(again.item_count(), 0);
        // The checkpoint holds it all, and a fresh store replaying it knows the same.
        let checkpoint = store.metadata_checkpoint();
        assert_eq!(checkpoint.len(), 1);
        assert_eq!(checkpoint[0].item_count(), 4);
        let replayed = MetricsStore::new();
        replayed.apply(&MetricsRecord::decode(checkpoint[0].encode_to_vec().as_slice()).unwrap());
        assert_eq!(replayed.metadata().families(None), families);
        assert!(MetricsStore::new().metadata_checkpoint().is_empty());
    }

    #[test]
    fn a_large_checkpoint_is_split_into_records_of_about_a_mebibyte() {
        let store = MetricsStore::new();
        let help = "h".repeat(1000);
        let n = 3000;
        for i in 0..n {
            store
                .metadata()
                .add(&md(&format!("m{i:05}"), MetricType::Gauge, &help, ""));
        }
        let checkpoint = store.metadata_checkpoint();
        assert_eq!(checkpoint.len(), 3, "about 3 MB of metadata");
        let replayed = MetricsStore::new();
        for rec in &checkpoint {
            assert!(rec.encoded_len() <= super::super::metadata::CHECKPOINT_RECORD_BYTES);
            assert!(rec.otlp.resource_metrics.is_empty() && rec.remote_write.is_empty());
            replayed.apply(rec);
        }
        assert_eq!(replayed.metadata().len(), n);
        assert_eq!(
            replayed.metadata().families(None),
            store.metadata().families(None)
        );
    }

    #[test]
    fn otlp_metadata_is_derived_when_applied() {
        let store = MetricsStore::new();
        let mut req = otlp("room.temp", T, 21.0);
        let m = &mut req.resource_metrics[0].scope_metrics[0].metrics[0];
        m.unit = "Cel".into();
        m.description = "Temperature.".into();
        store.apply(&MetricsRecord::from(req));
        let families = store.metadata().families(None);
        assert_eq!(families.len(), 1);
        let (name, entries) = &families[0];
        assert_eq!(name, "room_temp_celsius");
        assert_eq!(
            (
                entries[0].type_name(),
                entries[0].help.as_str(),
                entries[0].unit.as_str()
            ),
            ("gauge", "Temperature.", "celsius")
        );
    }

    #[test]
    fn apply_hints_are_used_only_in_the_head_they_came_from() {
        let store = MetricsStore::new();
        let (a, b) = ([("__name__", "a")], [("__name__", "b")]);
        store.apply(&MetricsRecord::from_remote_write(vec![
            series(&a, &[(T, 1.0)]),
            series(&b, &[(T, 1.0)]),
        ]));
        store.head.write().freeze(None);
        store.apply(&MetricsRecord::from_remote_write(vec![series(
            &b,
            &[(T + 1, 1.0)],
        )]));
        let mut rec = MetricsRecord::from_remote_write(vec![TimeSeries {
            exemplars: vec![exemplar(&[("trace_id", "x")], 1.0, T + 2)],
            ..series(&b, &[(T + 2, 2.0)])
        }]);
        assert_eq!(store.sanitize(&mut rec), Rejected::default());
        assert_eq!(rec.apply_hints.ids, [Some(1)], "b is the second series");
        // A freeze between sanitize and apply (a log rotation): `a` leaves, `b` becomes 0.
        store.head.write().freeze(None);
        store.apply(&rec);
        assert_eq!(store.series_count(), 1);
        assert_eq!(
            select(&store, "b"),
            vec![(Labels::from_pairs(b), vec![(T + 2, 2f64.to_bits())])]
        );
        // A hint still valid is used: samples and exemplars reach the series.
        let mut rec = MetricsRecord::from_remote_write(vec![TimeSeries {
            exemplars: vec![exemplar(&[("trace_id", "y")], 1.0, T + 3)],
            ..series(&b, &[(T + 3, 3.0)])
        }]);
        store.sanitize(&mut rec);
        assert_eq!(rec.apply_hints.ids, [Some(0)]);
        store.apply(&rec);
        assert_eq!(select(&store, "b")[0].1.len(), 2);
        assert_eq!(stored_exemplars(&store)[0].1.len(), 2);
        // Hints do not travel through the log, nor count for equality.
        let logged = MetricsRecord::decode(rec.encode_to_vec().as_slice()).unwrap();
        assert_eq!(logged, rec);
        assert!(logged.apply_hints.ids.is_empty());
    }

    #[test]
    fn head_lookup_wants_the_exact_label_set() {
        let store = MetricsStore::new();
        store.apply(&MetricsRecord::from_remote_write(vec![
            series(&[("__name__", "a"), ("x", "1"), ("y", "2")], &[(T, 1.0)]),
            series(&[("__name__", "a"), ("x", "1")], &[(T, 2.0)]),
        ]));
        let head = store.head.read();
        let find = |pairs: &[(&str, &str)]| head.get(&Labels::from_pairs(pairs.to_vec()));
        assert_eq!(find(&[("__name__", "a"), ("x", "1")]), Some(1));
        assert_eq!(find(&[("__name__", "a"), ("x", "1"), ("y", "2")]), Some(0));
        assert_eq!(find(&[("__name__", "a"), ("y", "2")]), None);
        assert_eq!(find(&[("__name__", "a"), ("x", "1"), ("z", "3")]), None);
    }
}
