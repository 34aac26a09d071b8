//! Metrics computed from spans, like the OpenTelemetry Collector's `spanmetrics` and
//! `servicegraph` connectors and Tempo's metrics-generator: [`SpanMetrics`] counts calls
//! and durations per service, span name, kind and status; [`ServiceGraph`] pairs client
//! and server spans into edges between services.
//!
//! Both keep cumulative aggregates in memory and render them as OTLP metrics
//! (cumulative temporality, exemplars carrying the trace and span ids) on request; the
//! binary sends that request through the metrics ingest path, so the metrics are logged
//! and queried like any others. [`Connectors`] holds both behind locks for the binary.
//!
//! Invariant: the aggregates see only what they are given; nothing here knows the store,
//! the log or the clock except through `now` arguments (and [`Connectors`], which reads it).

pub mod servicegraph;
pub mod spanmetrics;

pub use servicegraph::{ServiceGraph, ServiceGraphConfig};
pub use spanmetrics::{SpanMetrics, SpanMetricsConfig};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar as OtlpExemplar, Histogram as OtlpHistogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, exemplar,
    metric::Data, number_data_point,
};
use parking_lot::Mutex;
use pharos_model::trace_batch::TraceBatch;
use pharos_model::view::{KeyValueView, ValueView};
use std::borrow::Cow;
use std::time::Instant;

/// Tempo's span-metrics latency buckets, in seconds: 2 ms doubling up to about 16 s
/// (`prometheus.ExponentialBuckets(0.002, 2, 14)`).
pub fn default_spanmetrics_buckets() -> Vec<f64> {
    exponential_buckets(0.002, 2.0, 14)
}

/// Tempo's service-graph latency buckets, in seconds: 0.1 s doubling up to 12.8 s
/// (`prometheus.ExponentialBuckets(0.1, 2, 8)`).
pub fn default_servicegraph_buckets() -> Vec<f64> {
    exponential_buckets(0.1, 2.0, 8)
}

fn exponential_buckets(start: f64, factor: f64, count: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(count);
    let mut b = start;
    for _ in 0..count {
        out.push(b);
        b *= factor;
    }
    out
}

/// One exemplar: a measured value and the span it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub value: f64,
    pub time_unix_nano: u64,
}

impl Exemplar {
    fn to_otlp(&self) -> OtlpExemplar {
        OtlpExemplar {
            filtered_attributes: Vec::new(),
            time_unix_nano: self.time_unix_nano,
            span_id: self.span_id.to_vec(),
            trace_id: self.trace_id.to_vec(),
            value: Some(exemplar::Value::AsDouble(self.value)),
        }
    }
}

/// Aggregates by label values (`None`: the label is left out), found by a hash of the
/// borrowed values: a label set seen before copies nothing.
#[derive(Debug)]
struct LabelSets<V> {
    sets: Vec<(Vec<Option<String>>, V)>,
    /// Each set's (hash, index into `sets`).
    index: hashbrown::HashTable<(u64, usize)>,
}

impl<V> Default for LabelSets<V> {
    fn default() -> Self {
        LabelSets {
            sets: Vec::new(),
            index: Default::default(),
        }
    }
}

impl<V> LabelSets<V> {
    /// The aggregate of `key`, made by `make` the first time.
    fn get_or_insert_with<S: AsRef<str>>(
        &mut self,
        key: &[Option<S>],
        make: impl FnOnce() -> V,
    ) -> &mut V {
        let i = self.index_of(key, make);
        &mut self.sets[i].1
    }

    /// The aggregate number `i` ([`LabelSets::index_of`]).
    fn at(&mut self, i: usize) -> &mut V {
        &mut self.sets[i].1
    }

    /// The number of `key`'s aggregate, made by `make` the first time; it stays the same.
    fn index_of<S: AsRef<str>>(&mut self, key: &[Option<S>], make: impl FnOnce() -> V) -> usize {
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = crate::store::fixed_hasher();
            for v in key {
                v.as_ref().map(AsRef::as_ref).hash(&mut h);
            }
            h.finish()
        };
        let sets = &self.sets;
        let found = self.index.find(hash, |&(h, i)| {
            let k = &sets[i].0;
            h == hash
                && k.len() == key.len()
                && k.iter()
                    .zip(key)
                    .all(|(a, b)| a.as_deref() == b.as_ref().map(AsRef::as_ref))
        });
        match found {
            Some(&(_, i)) => i,
            None => {
                let owned = key
                    .iter()
                    .map(|v| v.as_ref().map(|v| v.as_ref().to_string()))
                    .collect();
                self.sets.push((owned, make()));
                let i = self.sets.len() - 1;
                self.index.insert_unique(hash, (hash, i), |&(h, _)| h);
                i
            }
        }
    }

    fn len(&self) -> usize {
        self.sets.len()
    }

    fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Every label set and its aggregate, in label order (as a sorted map holds them).
    fn sorted_mut(&mut self) -> Vec<(&[Option<String>], &mut V)> {
        let mut all: Vec<(&[Option<String>], &mut V)> = self
            .sets
            .iter_mut()
            .map(|(k, v)| (k.as_slice(), v))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    }
}

/// An id of `N` bytes; the ingest path checked its length (zeros otherwise).
fn id<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes.try_into().unwrap_or([0; N])
}

/// The attributes of each resource of a request, read in place, and its service name.
struct Resources<'a> {
    attributes: Vec<Vec<KeyValueView<'a>>>,
    services: Vec<Cow<'a, str>>,
}

impl<'a> Resources<'a> {
    fn of(batch: &'a TraceBatch) -> Self {
        let attributes: Vec<Vec<KeyValueView<'a>>> = (0..batch.resource_count())
            .map(|i| batch.resource_attributes(i).collect())
            .collect();
        let services = attributes.iter().map(|a| service_name(a)).collect();
        Resources {
            attributes,
            services,
        }
    }
}

/// A cumulative counter with the latest exemplar not yet exported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counter {
    pub value: u64,
    pub exemplar: Option<Exemplar>,
}

impl Counter {
    fn add(&mut self, n: u64, exemplar: Option<Exemplar>) {
        self.value += n;
        if exemplar.is_some() {
            self.exemplar = exemplar;
        }
    }

    fn point(&mut self, attributes: Vec<KeyValue>, start: u64, now: u64) -> NumberDataPoint {
        NumberDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now,
            exemplars: self.exemplar.take().iter().map(Exemplar::to_otlp).collect(),
            flags: 0,
            value: Some(number_data_point::Value::AsInt(
                i64::try_from(self.value).unwrap_or(i64::MAX),
            )),
        }
    }
}

/// A cumulative explicit-bucket histogram; bucket `i` counts values `<= bounds[i]`
/// (and above the bound before), the last one the values above every bound. Keeps the
/// latest exemplar of each bucket not yet exported.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
    pub exemplars: Vec<Option<Exemplar>>,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Histogram {
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
            exemplars: vec![None; bounds.len() + 1],
        }
    }

    fn observe(&mut self, bounds: &[f64], value: f64, exemplar: Option<Exemplar>) {
        let i = bounds.partition_point(|b| *b < value);
        self.counts[i] += 1;
        self.sum += value;
        self.count += 1;
        if exemplar.is_some() {
            self.exemplars[i] = exemplar;
        }
    }

    fn point(
        &mut self,
        bounds: &[f64],
        attributes: Vec<KeyValue>,
        start: u64,
        now: u64,
    ) -> HistogramDataPoint {
        HistogramDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now,
            count: self.count,
            sum: Some(self.sum),
            bucket_counts: self.counts.clone(),
            explicit_bounds: bounds.to_vec(),
            exemplars: self
                .exemplars
                .iter_mut()
                .filter_map(|e| e.take())
                .map(|e| e.to_otlp())
                .collect(),
            flags: 0,
            min: None,
            max: None,
        }
    }
}

/// Attributes from label names and values; a `None` value leaves its label out.
fn attributes(names: &[&str], values: &[Option<String>]) -> Vec<KeyValue> {
    names
        .iter()
        .zip(values)
        .filter_map(|(n, v)| {
            v.as_ref().map(|v| KeyValue {
                key: (*n).to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(v.clone())),
                }),
                ..Default::default()
            })
        })
        .collect()
}

fn sum_metric(name: &str, description: &str, data_points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: String::new(),
        metadata: Vec::new(),
        data: Some(Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
    }
}

fn histogram_metric(name: &str, description: &str, data_points: Vec<HistogramDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: "s".into(),
        metadata: Vec::new(),
        data: Some(Data::Histogram(OtlpHistogram {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
    }
}

/// Returns the value of the first attribute named `key`: a string as it is, a boolean
/// or a number rendered; `None` for other kinds.
fn attr_value<'a>(attrs: &[KeyValueView<'a>], key: &str) -> Option<Cow<'a, str>> {
    value_text(attrs.iter().find(|kv| kv.key == key)?.value)
}

/// An attribute value as a label: a string as it is, a boolean or a number rendered;
/// `None` for other kinds.
fn value_text(value: ValueView<'_>) -> Option<Cow<'_, str>> {
    Some(match value {
        ValueView::Str(s) => Cow::Borrowed(s),
        ValueView::Bool(b) => Cow::Owned(b.to_string()),
        ValueView::Int(i) => Cow::Owned(i.to_string()),
        ValueView::Double(d) => Cow::Owned(d.to_string()),
        ValueView::None | ValueView::Other => return None,
    })
}

/// A resource's `service.name`, or the SDKs' `unknown_service` without one.
fn service_name<'a>(attrs: &[KeyValueView<'a>]) -> Cow<'a, str> {
    attr_value(attrs, "service.name").unwrap_or(Cow::Borrowed("unknown_service"))
}

/// Both connectors, each behind its own lock, as the binary runs them.
pub struct Connectors {
    spanmetrics: Option<Mutex<SpanMetrics>>,
    servicegraph: Option<Mutex<ServiceGraph>>,
    start_unix_nano: u64,
}

impl Connectors {
    /// Connectors with these settings (`None`: disabled) whose counters start at `start_unix_nano`.
    pub fn new(
        spanmetrics: Option<SpanMetricsConfig>,
        servicegraph: Option<ServiceGraphConfig>,
        start_unix_nano: u64,
    ) -> Self {
        Connectors {
            spanmetrics: spanmetrics.map(|c| Mutex::new(SpanMetrics::new(c))),
            servicegraph: servicegraph.map(|c| Mutex::new(ServiceGraph::new(c))),
            start_unix_nano,
        }
    }

    /// Returns whether either connector is enabled.
    pub fn enabled(&self) -> bool {
        self.spanmetrics.is_some() || self.servicegraph.is_some()
    }

    /// Updates the aggregates with the spans of an accepted request.
    pub fn observe(&self, req: &TraceBatch) {
        if let Some(s) = &self.spanmetrics {
            s.lock().observe(req);
        }
        if let Some(g) = &self.servicegraph {
            g.lock().observe(req, Instant::now());
        }
    }

    /// Expires waiting edges and renders every aggregate as one OTLP request stamped
    /// `now_unix_nano`; `None` while there is nothing to report.
    pub fn export(&self, now_unix_nano: u64) -> Option<ExportMetricsServiceRequest> {
        let mut metrics = Vec::new();
        let start = self.start_unix_nano;
        if let Some(s) = &self.spanmetrics {
            metrics.extend(s.lock().metrics(start, now_unix_nano));
        }
        if let Some(g) = &self.servicegraph {
            let mut g = g.lock();
            g.expire(Instant::now());
            metrics.extend(g.metrics(start, now_unix_nano));
        }
        if metrics.is_empty() {
            return None;
        }
        Some(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: None,
                scope_metrics: vec![ScopeMetrics {
                    scope: None,
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        })
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use pharos_model::trace_batch::TraceBatch;

    pub fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    /// A span of `trace` with id `id` (one byte repeated), parent `parent` (0: none),
    /// `kind` (OTLP number), duration in milliseconds and status code.
    pub fn span(
        trace: u8,
        id: u8,
        parent: u8,
        name: &str,
        kind: i32,
        ms: u64,
        status: i32,
    ) -> Span {
        let start = 1_700_000_000_000_000_000u64;
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
            name: name.into(),
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: start + ms * 1_000_000,
            status: Some(Status {
                message: String::new(),
                code: status,
            }),
            ..Default::default()
        }
    }

    /// A request with one resource per `(service, spans)`, kept as its bytes.
    pub fn request(services: Vec<(&str, Vec<Span>)>) -> TraceBatch {
        TraceBatch::from_request(&decoded(services))
    }

    /// The text of attribute `key` of an output data point.
    pub fn text(attrs: &[KeyValue], key: &str) -> Option<String> {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .map(pharos_model::attrs::value_to_string)
    }

    /// [`request`], decoded.
    pub fn decoded(services: Vec<(&str, Vec<Span>)>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: services
                .into_iter()
                .map(|(service, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", service)],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_buckets_are_tempos() {
        let s = default_spanmetrics_buckets();
        assert_eq!(s.len(), 14);
        assert_eq!(s[0], 0.002);
        assert_eq!(s[13], 16.384);
        assert_eq!(
            default_servicegraph_buckets(),
            vec![0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8]
        );
    }

    #[test]
    fn histogram_buckets_are_upper_inclusive() {
        let bounds = [0.1, 1.0];
        let mut h = Histogram::new(&bounds);
        for v in [0.05, 0.1, 0.5, 1.0, 2.0] {
            h.observe(&bounds, v, None);
        }
        assert_eq!(h.counts, vec![2, 2, 1]);
        assert_eq!(h.count, 5);
        assert!((h.sum - 3.65).abs() < 1e-9);
    }
}
