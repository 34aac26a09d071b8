//! OTLP metrics → Prometheus samples, following the OpenTelemetry "Prometheus and
//! OpenMetrics compatibility" spec and Prometheus' own OTLP receiver.
//!
//! [`translate`] is pure: the same request always yields the same points in the same
//! order, which keeps [`super::MetricsStore`]'s `apply` deterministic for WAL replay.
//! [`metadata`] is pure too: each metric's family name, type, help and unit, as
//! Prometheus' OTLP receiver sends them to its metadata store. So is [`exemplars`]: the
//! exemplars of monotonic sums and histograms with the series each belongs to.

use std::collections::{BTreeMap, BTreeSet};

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
    exemplar, metric::Data, number_data_point,
};
use pharos_model::{ExportMetricsServiceRequest, Rejected, attrs};

use super::exemplars::{Exemplar, MAX_LABEL_SET_RUNES};
use super::head::STALE_NAN_BITS;
use super::labels::{Labels, METRIC_NAME};
use super::names::{NameKind, label_name, metric_name};
use crate::remote_write::proto::{MetricMetadata, MetricType};

/// One sample to append, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The series' full label set, `__name__` included.
    pub labels: Labels,
    /// Milliseconds since the Unix epoch.
    pub t_ms: i64,
    /// The value; the stale marker for points flagged `NO_RECORDED_VALUE`.
    pub value: f64,
    /// Whether the value is a delta to add to the series' running total.
    pub delta: bool,
}

const TARGET_INFO: &str = "target_info";
const NO_RECORDED_VALUE: u32 = 1;

/// Removes what the store cannot keep from `req` and says why; see [`super::MetricsStore`].
pub fn sanitize(req: &mut ExportMetricsServiceRequest) -> Rejected {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    sanitize_at(req, now_ms)
}

/// [`sanitize`] with the wall clock at `now_ms`: data points more than
/// [`super::record::MAX_AHEAD_MS`] after it are refused as out of bounds, as remote_write
/// samples are.
pub(crate) fn sanitize_at(req: &mut ExportMetricsServiceRequest, now_ms: i64) -> Rejected {
    let mut rejected = Rejected::default();
    let limit_ns = u64::try_from(now_ms.saturating_add(super::record::MAX_AHEAD_MS))
        .unwrap_or(0)
        .saturating_mul(1_000_000);
    for rm in &mut req.resource_metrics {
        for sm in &mut rm.scope_metrics {
            sm.metrics
                .retain_mut(|m| sanitize_metric(m, limit_ns, &mut rejected));
        }
        rm.scope_metrics.retain(|sm| !sm.metrics.is_empty());
    }
    req.resource_metrics
        .retain(|rm| !rm.scope_metrics.is_empty());
    rejected
}

/// Returns whether to keep the metric, after dropping its unusable points.
fn sanitize_metric(m: &mut Metric, limit_ns: u64, rejected: &mut Rejected) -> bool {
    let points = point_count(m);
    if m.name.trim().is_empty() {
        rejected.add(points, "metric without a name");
        return false;
    }
    if metric_name(&m.name, "", NameKind::Gauge).is_empty() {
        rejected.add(points, "metric name has no valid character");
        return false;
    }
    const NO_TS: &str = "data point without a timestamp";
    const AHEAD: &str = "out of bounds: more than 10m in the future";
    match &mut m.data {
        None => return false,
        Some(Data::ExponentialHistogram(_)) => {
            rejected.add(points, "exponential histograms are not supported yet");
            return false;
        }
        Some(Data::Sum(s)) => {
            if s.aggregation_temporality == AggregationTemporality::Unspecified as i32 {
                rejected.add(points, "sum with unspecified aggregation temporality");
                return false;
            }
            retain_counted(
                &mut s.data_points,
                |p| p.time_unix_nano != 0,
                rejected,
                NO_TS,
            );
            retain_counted(
                &mut s.data_points,
                |p| p.time_unix_nano <= limit_ns,
                rejected,
                AHEAD,
            );
        }
        Some(Data::Histogram(h)) => {
            if h.aggregation_temporality == AggregationTemporality::Unspecified as i32 {
                rejected.add(points, "histogram with unspecified aggregation temporality");
                return false;
            }
            retain_counted(
                &mut h.data_points,
                |p| p.time_unix_nano != 0,
                rejected,
                NO_TS,
            );
            retain_counted(
                &mut h.data_points,
                |p| p.time_unix_nano <= limit_ns,
                rejected,
                AHEAD,
            );
            retain_counted(
                &mut h.data_points,
                |p| {
                    p.bucket_counts.is_empty()
                        || p.bucket_counts.len() == p.explicit_bounds.len() + 1
                },
                rejected,
                "histogram bucket counts do not match its bounds",
            );
        }
        Some(Data::Gauge(g)) => {
            retain_counted(
                &mut g.data_points,
                |p| p.time_unix_nano != 0,
                rejected,
                NO_TS,
            );
            retain_counted(
                &mut g.data_points,
                |p| p.time_unix_nano <= limit_ns,
                rejected,
                AHEAD,
            );
        }
        Some(Data::Summary(s)) => {
            retain_counted(
                &mut s.data_points,
                |p| p.time_unix_nano != 0,
                rejected,
                NO_TS,
            );
            retain_counted(
                &mut s.data_points,
                |p| p.time_unix_nano <= limit_ns,
                rejected,
                AHEAD,
            );
        }
    }
    point_count(m) > 0
}

fn retain_counted<T>(
    v: &mut Vec<T>,
    keep: impl Fn(&T) -> bool,
    rejected: &mut Rejected,
    why: &str,
) {
    let before = v.len();
    v.retain(|p| keep(p));
    rejected.add((before - v.len()) as u64, why);
}

pub(super) fn point_count(m: &Metric) -> u64 {
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len() as u64,
        Some(Data::Sum(s)) => s.data_points.len() as u64,
        Some(Data::Histogram(h)) => h.data_points.len() as u64,
        Some(Data::ExponentialHistogram(h)) => h.data_points.len() as u64,
        Some(Data::Summary(s)) => s.data_points.len() as u64,
        None => 0,
    }
}

/// Returns the metadata of a sanitized request's metrics, in request order, as Prometheus'
/// OTLP receiver builds it: the family name is the translated name (the base name of a
/// histogram's or summary's series, `_total` on counters); the type is `counter` for a
/// monotonic sum, `gauge` for a gauge or a non-monotonic sum, `histogram` and `summary`;
/// the help is the description; the unit is the Prometheus unit word (see [`unit_word`]).
///
/// A monotonic sum is a counter whatever its temporality, as Pharos stores delta sums
/// cumulated (Prometheus says `unknown` for delta sums it keeps as deltas).
pub fn metadata(req: &ExportMetricsServiceRequest) -> Vec<MetricMetadata> {
    let mut out = Vec::new();
    for m in req
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
    {
        let (kind, name_kind) = match &m.data {
            Some(Data::Gauge(_)) => (MetricType::Gauge, NameKind::Gauge),
            Some(Data::Sum(s)) if s.is_monotonic => {
                (MetricType::Counter, NameKind::MonotonicCounter)
            }
            Some(Data::Sum(_)) => (MetricType::Gauge, NameKind::NonMonotonicCounter),
            Some(Data::Histogram(_)) => (MetricType::Histogram, NameKind::Distribution),
            Some(Data::Summary(_)) => (MetricType::Summary, NameKind::Distribution),
            Some(Data::ExponentialHistogram(_)) | None => continue,
        };
        let name = metric_name(&m.name, &m.unit, name_kind);
        if name.is_empty() {
            continue;
        }
        out.push(MetricMetadata {
            r#type: kind as i32,
            metric_family_name: name,
            help: m.description.clone(),
            unit: unit_word(&m.unit),
        });
    }
    out
}

/// Returns the Prometheus unit word of a UCUM unit, as the name suffix spells it and
/// Prometheus' OTLP receiver records it (`otlptranslator`'s `UnitNamer`): `s` → `seconds`,
/// `By/s` → `bytes_per_second`, `{req}/s` → `per_second`; `1` and annotations alone
/// (`{requests}`) give the empty string. The `_ratio` and `_total` suffixes are not units.
pub fn unit_word(unit: &str) -> String {
    // A name without tokens of its own is exactly the unit suffix; `Distribution` adds
    // neither `_total` nor `_ratio`.
    metric_name("", unit, NameKind::Distribution)
        .trim_matches('_')
        .to_owned()
}

/// Translates a sanitized request into points, in a deterministic order: each resource's
/// metrics as they come, then its `target_info` samples in time order.
pub fn translate(req: &ExportMetricsServiceRequest) -> Vec<Point> {
    let mut out = Vec::new();
    for rm in &req.resource_metrics {
        let resource_attrs: &[KeyValue] = rm.resource.as_ref().map_or(&[], |r| &r.attributes);
        let resource = ResourceLabels::new(resource_attrs);
        let mut timestamps = BTreeSet::new();
        for sm in &rm.scope_metrics {
            let base = resource.with_scope(sm.scope.as_ref());
            for m in &sm.metrics {
                let start = out.len();
                translate_metric(m, &base, &mut out);
                timestamps.extend(out[start..].iter().map(|p| p.t_ms));
            }
        }
        if let Some(info) = resource.target_info() {
            for t in timestamps {
                out.push(Point {
                    labels: info.clone(),
                    t_ms: t,
                    value: 1.0,
                    delta: false,
                });
            }
        }
    }
    out
}

/// The labels a resource contributes: `job`/`instance`, and the rest for `target_info`.
struct ResourceLabels {
    job_instance: Vec<(String, String)>,
    info: Vec<(String, String)>,
}

impl ResourceLabels {
    fn new(attributes: &[KeyValue]) -> ResourceLabels {
        let mut job_instance = Vec::new();
        if let Some(name) = attrs::get_str(attributes, "service.name") {
            let job = match attrs::get_str(attributes, "service.namespace") {
                Some(ns) => format!("{ns}/{name}"),
                None => name,
            };
            job_instance.push(("job".to_owned(), job));
        }
        if let Some(instance) = attrs::get_str(attributes, "service.instance.id") {
            job_instance.push(("instance".to_owned(), instance));
        }
        let rest: Vec<&KeyValue> = attributes
            .iter()
            .filter(|kv| {
                !matches!(
                    kv.key.as_str(),
                    "service.name" | "service.namespace" | "service.instance.id"
                )
            })
            .collect();
        ResourceLabels {
            job_instance,
            info: attribute_labels(rest),
        }
    }

    /// Returns the labels every point of a scope starts from.
    fn with_scope(&self, scope: Option<&InstrumentationScope>) -> BaseLabels<'_> {
        let mut scope_labels = Vec::new();
        if let Some(s) = scope {
            if !s.name.is_empty() {
                scope_labels.push(("otel_scope_name".to_owned(), s.name.clone()));
            }
            if !s.version.is_empty() {
                scope_labels.push(("otel_scope_version".to_owned(), s.version.clone()));
            }
        }
        BaseLabels {
            scope: scope_labels,
            job_instance: &self.job_instance,
        }
    }

    /// Returns `target_info`'s labels, or `None` when no attribute is left for it.
    fn target_info(&self) -> Option<Labels> {
        if self.info.is_empty() {
            return None;
        }
        let pairs = self
            .info
            .iter()
            .cloned()
            .chain(self.job_instance.iter().cloned())
            .chain([(METRIC_NAME.to_owned(), TARGET_INFO.to_owned())]);
        Some(Labels::from_pairs(pairs))
    }
}

/// Scope and resource labels, merged with each point's attributes by [`BaseLabels::build`].
struct BaseLabels<'a> {
    scope: Vec<(String, String)>,
    job_instance: &'a [(String, String)],
}

impl BaseLabels<'_> {
    /// Returns a point's labels. Precedence, lowest first: point attributes, scope labels,
    /// job/instance, then `extra` (`__name__`, `le`, `quantile`), as in Prometheus.
    fn build(&self, attributes: &[KeyValue], extra: &[(&str, &str)]) -> Labels {
        let pairs = attribute_labels(attributes.iter().collect())
            .into_iter()
            .chain(self.scope.iter().cloned())
            .chain(self.job_instance.iter().cloned())
            .chain(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
        Labels::from_pairs(pairs)
    }
}

/// Sanitizes attribute keys into label names; values of keys that collide after
/// sanitizing are joined with `;` in key order, as Prometheus does.
fn attribute_labels(attributes: Vec<&KeyValue>) -> Vec<(String, String)> {
    let mut by_key: Vec<(&str, String)> = attributes
        .into_iter()
        .filter_map(|kv| {
            kv.value
                .as_ref()
                .map(|v| (kv.key.as_str(), attrs::value_to_string(v)))
        })
        .collect();
    by_key.sort_by(|a, b| a.0.cmp(b.0));
    let mut merged: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in by_key {
        let Some(name) = label_name(key) else {
            continue;
        };
        merged
            .entry(name)
            .and_modify(|v| {
                v.push(';');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    merged.into_iter().collect()
}

fn translate_metric(m: &Metric, base: &BaseLabels<'_>, out: &mut Vec<Point>) {
    match &m.data {
        Some(Data::Gauge(g)) => {
            let name = metric_name(&m.name, &m.unit, NameKind::Gauge);
            for p in &g.data_points {
                number_point(p, &name, base, false, out);
            }
        }
        Some(Data::Sum(s)) => {
            let kind = if s.is_monotonic {
                NameKind::MonotonicCounter
            } else {
                NameKind::NonMonotonicCounter
            };
            let name = metric_name(&m.name, &m.unit, kind);
            let delta = s.aggregation_temporality == AggregationTemporality::Delta as i32;
            for p in &s.data_points {
                number_point(p, &name, base, delta, out);
            }
        }
        Some(Data::Histogram(h)) => {
            let name = metric_name(&m.name, &m.unit, NameKind::Distribution);
            let delta = h.aggregation_temporality == AggregationTemporality::Delta as i32;
            for p in &h.data_points {
                histogram_point(p, &name, base, delta, out);
            }
        }
        Some(Data::Summary(s)) => {
            let name = metric_name(&m.name, &m.unit, NameKind::Distribution);
            for p in &s.data_points {
                summary_point(p, &name, base, out);
            }
        }
        Some(Data::ExponentialHistogram(_)) | None => {}
    }
}

fn stale_or(flags: u32, v: f64) -> f64 {
    if flags & NO_RECORDED_VALUE != 0 {
        f64::from_bits(STALE_NAN_BITS)
    } else {
        v
    }
}

fn ms(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

fn number_point(
    p: &NumberDataPoint,
    name: &str,
    base: &BaseLabels<'_>,
    delta: bool,
    out: &mut Vec<Point>,
) {
    let v = match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => 0.0,
    };
    out.push(Point {
        labels: base.build(&p.attributes, &[(METRIC_NAME, name)]),
        t_ms: ms(p.time_unix_nano),
        value: stale_or(p.flags, v),
        delta,
    });
}

fn histogram_point(
    p: &HistogramDataPoint,
    name: &str,
    base: &BaseLabels<'_>,
    delta: bool,
    out: &mut Vec<Point>,
) {
    let t_ms = ms(p.time_unix_nano);
    let mut push = |suffix: &str, extra: Option<(&str, &str)>, v: f64| {
        let full = format!("{name}{suffix}");
        let mut labels: Vec<(&str, &str)> = vec![(METRIC_NAME, &full)];
        labels.extend(extra);
        out.push(Point {
            labels: base.build(&p.attributes, &labels),
            t_ms,
            value: stale_or(p.flags, v),
            delta,
        });
    };
    if let Some(sum) = p.sum {
        push("_sum", None, sum);
    }
    push("_count", None, p.count as f64);
    let mut cumulative = 0u64;
    for (bound, count) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
        cumulative += count;
        push(
            "_bucket",
            Some(("le", &format_float(*bound))),
            cumulative as f64,
        );
    }
    push("_bucket", Some(("le", "+Inf")), p.count as f64);
}

fn summary_point(p: &SummaryDataPoint, name: &str, base: &BaseLabels<'_>, out: &mut Vec<Point>) {
    let t_ms = ms(p.time_unix_nano);
    let mut push = |metric: &str, extra: Option<(&str, &str)>, v: f64| {
        let mut labels: Vec<(&str, &str)> = vec![(METRIC_NAME, metric)];
        labels.extend(extra);
        out.push(Point {
            labels: base.build(&p.attributes, &labels),
            t_ms,
            value: stale_or(p.flags, v),
            delta: false,
        });
    };
    push(&format!("{name}_sum"), None, p.sum);
    push(&format!("{name}_count"), None, p.count as f64);
    for q in &p.quantile_values {
        push(name, Some(("quantile", &format_float(q.quantile))), q.value);
    }
}

/// Returns the exemplars of a sanitized request with their series' labels, in request order,
/// as Prometheus' OTLP receiver (`otlptranslator`) derives them:
///
/// - only monotonic sums and histograms carry exemplars into Prometheus (the compatibility
///   spec: "Exemplars on other OpenTelemetry data points MUST be dropped"); a sum's go on
///   its `_total` series, a histogram's on the `_bucket` series of the first bucket, by
///   bound, whose `le` is at least the exemplar's value (`+Inf` for the largest; none for
///   NaN);
/// - labels: `trace_id` and `span_id` as lowercase hex when not empty (all zero counts as
///   empty), then the filtered attributes with their keys as they are and their values
///   rendered as for series labels, unless those would take the label names and values
///   past 128 UTF-8 characters (then only the ids are kept); an attribute named `trace_id`
///   or `span_id` gives way to the exemplar's own id;
/// - value: the double or the integer; an exemplar without a value is skipped;
///   timestamp: `time_unix_nano` in milliseconds.
pub fn exemplars(req: &ExportMetricsServiceRequest) -> Vec<(Labels, Exemplar)> {
    let mut out = Vec::new();
    for rm in &req.resource_metrics {
        // Built only for a resource with exemplars: most requests have none.
        let mut resource: Option<ResourceLabels> = None;
        for sm in &rm.scope_metrics {
            for m in sm.metrics.iter().filter(|m| carries_exemplars(m)) {
                let resource = resource.get_or_insert_with(|| {
                    ResourceLabels::new(rm.resource.as_ref().map_or(&[], |r| &r.attributes))
                });
                let base = resource.with_scope(sm.scope.as_ref());
                metric_exemplars(m, &base, &mut out);
            }
        }
    }
    out
}

/// Returns whether a metric is of a kind whose exemplars are kept and has any.
fn carries_exemplars(m: &Metric) -> bool {
    match &m.data {
        Some(Data::Sum(s)) if s.is_monotonic => {
            s.data_points.iter().any(|p| !p.exemplars.is_empty())
        }
        Some(Data::Histogram(h)) => h.data_points.iter().any(|p| !p.exemplars.is_empty()),
        _ => false,
    }
}

fn metric_exemplars(m: &Metric, base: &BaseLabels<'_>, out: &mut Vec<(Labels, Exemplar)>) {
    match &m.data {
        Some(Data::Sum(s)) if s.is_monotonic => {
            let name = metric_name(&m.name, &m.unit, NameKind::MonotonicCounter);
            for p in s.data_points.iter().filter(|p| !p.exemplars.is_empty()) {
                let labels = base.build(&p.attributes, &[(METRIC_NAME, &name)]);
                for e in p.exemplars.iter().filter_map(exemplar) {
                    out.push((labels.clone(), e));
                }
            }
        }
        Some(Data::Histogram(h)) => {
            let name = metric_name(&m.name, &m.unit, NameKind::Distribution);
            let bucket = format!("{name}_bucket");
            for p in h.data_points.iter().filter(|p| !p.exemplars.is_empty()) {
                // The buckets `histogram_point` writes, sorted by bound as Prometheus sorts
                // them before placing exemplars.
                let mut bounds: Vec<f64> = p
                    .explicit_bounds
                    .iter()
                    .zip(&p.bucket_counts)
                    .map(|(b, _)| *b)
                    .chain([f64::INFINITY])
                    .collect();
                bounds.sort_by(|a, b| a.total_cmp(b));
                for e in p.exemplars.iter().filter_map(exemplar) {
                    let Some(bound) = bounds.iter().find(|b| e.value <= **b) else {
                        continue;
                    };
                    let le = format_float(*bound);
                    let labels = base.build(&p.attributes, &[(METRIC_NAME, &bucket), ("le", &le)]);
                    out.push((labels, e));
                }
            }
        }
        _ => {}
    }
}

/// The names Prometheus gives an exemplar's trace and span ids.
const TRACE_ID: &str = "trace_id";
const SPAN_ID: &str = "span_id";

/// Converts one OTLP exemplar; see [`exemplars`].
fn exemplar(e: &opentelemetry_proto::tonic::metrics::v1::Exemplar) -> Option<Exemplar> {
    let value = match e.value? {
        exemplar::Value::AsDouble(d) => d,
        exemplar::Value::AsInt(i) => i as f64,
    };
    let id = |bytes: &[u8]| (bytes.iter().any(|&b| b != 0)).then(|| hex::encode(bytes));
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(trace) = id(&e.trace_id) {
        pairs.push((TRACE_ID.to_owned(), trace));
    }
    if let Some(span) = id(&e.span_id) {
        pairs.push((SPAN_ID.to_owned(), span));
    }
    let ids = pairs.len();
    for kv in &e.filtered_attributes {
        let own_id = matches!(kv.key.as_str(), TRACE_ID | SPAN_ID)
            && pairs[..ids].iter().any(|(k, _)| *k == kv.key);
        if own_id {
            continue;
        }
        let value = kv
            .value
            .as_ref()
            .map(attrs::value_to_string)
            .unwrap_or_default();
        pairs.push((kv.key.clone(), value));
    }
    // Prometheus counts every name and value here, empty values included.
    let runes: usize = pairs
        .iter()
        .map(|(k, v)| k.chars().count() + v.chars().count())
        .sum();
    if runes > MAX_LABEL_SET_RUNES {
        pairs.truncate(ids);
    }
    Some(Exemplar {
        labels: Labels::from_pairs(pairs),
        value,
        t_ms: ms(e.time_unix_nano),
    })
}

/// Formats a float as Go's `strconv.FormatFloat(v, 'f', -1, 64)` does, which is how
/// Prometheus renders `le`/`quantile` labels and sample values.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        // Rust's Display is the shortest round-tripping form without an exponent, as 'f', -1.
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, Gauge, Histogram, ResourceMetrics, ScopeMetrics, Sum, Summary,
    };

    fn metric(name: &str, unit: &str, description: &str, data: Data) -> Metric {
        Metric {
            name: name.into(),
            unit: unit.into(),
            description: description.into(),
            data: Some(data),
            ..Default::default()
        }
    }

    fn sum(monotonic: bool, temporality: AggregationTemporality) -> Data {
        Data::Sum(Sum {
            is_monotonic: monotonic,
            aggregation_temporality: temporality as i32,
            ..Default::default()
        })
    }

    /// `(type, family, help, unit)` of each metric of one request.
    fn meta(metrics: Vec<Metric>) -> Vec<(&'static str, String, String, String)> {
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        metadata(&req)
            .into_iter()
            .map(|m| {
                let kind = super::super::metadata::metric_type(m.r#type);
                (
                    super::super::metadata::type_name(kind),
                    m.metric_family_name,
                    m.help,
                    m.unit,
                )
            })
            .collect()
    }

    fn row(
        kind: &'static str,
        name: &str,
        help: &str,
        unit: &str,
    ) -> (&'static str, String, String, String) {
        (kind, name.into(), help.into(), unit.into())
    }

    #[test]
    fn otlp_metadata_is_prometheus_receivers() {
        use AggregationTemporality::{Cumulative, Delta};
        let got = meta(vec![
            metric(
                "http.server.requests",
                "1",
                "Requests.",
                sum(true, Cumulative),
            ),
            metric(
                "queue.depth",
                "{messages}",
                "Depth.",
                sum(false, Cumulative),
            ),
            metric("net.sent", "By", "", sum(true, Delta)),
            metric(
                "cpu.utilization",
                "1",
                "CPU.",
                Data::Gauge(Gauge::default()),
            ),
            metric("mem.used", "By", "Memory.", Data::Gauge(Gauge::default())),
            metric(
                "http.server.duration",
                "ms",
                "Latency.",
                Data::Histogram(Histogram::default()),
            ),
            metric(
                "rpc.size",
                "By/s",
                "Sizes.",
                Data::Summary(Summary::default()),
            ),
            metric("rate", "{req}/s", "", Data::Gauge(Gauge::default())),
            metric(
                "exp",
                "s",
                "",
                Data::ExponentialHistogram(ExponentialHistogram::default()),
            ),
        ]);
        assert_eq!(
            got,
            vec![
                row("counter", "http_server_requests_total", "Requests.", ""),
                row("gauge", "queue_depth", "Depth.", ""),
                row("counter", "net_sent_bytes_total", "", "bytes"),
                row("gauge", "cpu_utilization_ratio", "CPU.", ""),
                row("gauge", "mem_used_bytes", "Memory.", "bytes"),
                row(
                    "histogram",
                    "http_server_duration_milliseconds",
                    "Latency.",
                    "milliseconds"
                ),
                row(
                    "summary",
                    "rpc_size_bytes_per_second",
                    "Sizes.",
                    "bytes_per_second"
                ),
                row("gauge", "rate_per_second", "", "per_second"),
            ]
        );
    }

    #[test]
    fn points_too_far_in_the_future_are_refused_as_out_of_bounds() {
        use opentelemetry_proto::tonic::metrics::v1::{
            HistogramDataPoint, NumberDataPoint, SummaryDataPoint,
        };
        let now_ms: i64 = 1_800_000_000_000;
        let ns = |ms: i64| (ms * 1_000_000) as u64;
        // Now, just inside the 10 minutes, just past them.
        let times = [
            now_ms,
            now_ms + super::super::record::MAX_AHEAD_MS,
            now_ms + super::super::record::MAX_AHEAD_MS + 1,
        ];
        let numbers: Vec<NumberDataPoint> = times
            .iter()
            .map(|&t| NumberDataPoint {
                time_unix_nano: ns(t),
                ..Default::default()
            })
            .collect();
        let mut counter = sum(true, AggregationTemporality::Cumulative);
        if let Data::Sum(s) = &mut counter {
            s.data_points = numbers.clone();
        }
        let gauge = Data::Gauge(Gauge {
            data_points: numbers,
        });
        let histogram = Data::Histogram(Histogram {
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            data_points: times
                .iter()
                .map(|&t| HistogramDataPoint {
                    time_unix_nano: ns(t),
                    ..Default::default()
                })
                .collect(),
        });
        let summary = Data::Summary(Summary {
            data_points: times
                .iter()
                .map(|&t| SummaryDataPoint {
                    time_unix_nano: ns(t),
                    ..Default::default()
                })
                .collect(),
        });
        let far = Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: u64::MAX,
                ..Default::default()
            }],
        });
        let mut req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        metric("c", "", "", counter),
                        metric("g", "", "", gauge),
                        metric("h", "", "", histogram),
                        metric("s", "", "", summary),
                        metric("far", "", "", far),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let rejected = sanitize_at(&mut req, now_ms);
        assert_eq!(rejected.count, 5, "{rejected:?}");
        assert!(
            rejected.message.contains("more than 10m in the future"),
            "{rejected:?}"
        );
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let kept: Vec<(&str, u64)> = metrics
            .iter()
            .map(|m| (m.name.as_str(), point_count(m)))
            .collect();
        assert_eq!(kept, [("c", 2), ("g", 2), ("h", 2), ("s", 2)]);
    }

    #[test]
    fn unit_words() {
        for (unit, word) in [
            ("", ""),
            ("1", ""),
            ("s", "seconds"),
            ("By", "bytes"),
            ("KiBy", "kibibytes"),
            ("Cel", "celsius"),
            ("%", "percent"),
            ("{requests}", ""),
            ("By/s", "bytes_per_second"),
            ("{req}/min", "per_min"),
            ("m/s", "meters_per_second"),
            ("foo.bar", "foo_bar"),
        ] {
            assert_eq!(unit_word(unit), word, "{unit:?}");
        }
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                        value.into(),
                    ),
                ),
            }),
            ..Default::default()
        }
    }

    fn otlp_exemplar(
        value: exemplar::Value,
        t_ms: u64,
        trace: &[u8],
        span: &[u8],
        attributes: Vec<KeyValue>,
    ) -> opentelemetry_proto::tonic::metrics::v1::Exemplar {
        opentelemetry_proto::tonic::metrics::v1::Exemplar {
            filtered_attributes: attributes,
            time_unix_nano: t_ms * 1_000_000 + 999,
            span_id: span.to_vec(),
            trace_id: trace.to_vec(),
            value: Some(value),
        }
    }

    const TRACE: [u8; 16] = [
        0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6,
        0x0c,
    ];
    const SPAN: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];

    /// `(series, exemplar labels, value, t_ms)` of each exemplar of one resource's metrics.
    fn exemplar_rows(metrics: Vec<Metric>) -> Vec<(String, String, f64, i64)> {
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![kv("service.name", "shop"), kv("host.name", "h1")],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        ..Default::default()
                    }),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        exemplars(&req)
            .into_iter()
            .map(|(series, e)| (series.to_string(), e.labels.to_string(), e.value, e.t_ms))
            .collect()
    }

    fn number_point(
        exemplars: Vec<opentelemetry_proto::tonic::metrics::v1::Exemplar>,
    ) -> NumberDataPoint {
        NumberDataPoint {
            attributes: vec![kv("http.route", "/pay")],
            time_unix_nano: 1_700_000_000_000_000_000,
            value: Some(number_data_point::Value::AsInt(3)),
            exemplars,
            ..Default::default()
        }
    }

    #[test]
    fn exemplars_of_monotonic_sums_only_with_trace_and_span_ids() {
        use exemplar::Value::{AsDouble, AsInt};
        let with_ids = || {
            vec![
                otlp_exemplar(
                    AsDouble(6.0),
                    1_700_000_000_123,
                    &TRACE,
                    &SPAN,
                    vec![kv("user.id", "u1"), kv("trace_id", "shadowed")],
                ),
                // No ids (all-zero counts as none), an integer value.
                otlp_exemplar(AsInt(2), 1_700_000_000_456, &[0; 16], &[], vec![]),
            ]
        };
        let sum = |monotonic: bool, points| {
            Data::Sum(Sum {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: monotonic,
            })
        };
        let got = exemplar_rows(vec![
            metric("orders", "", "", sum(true, vec![number_point(with_ids())])),
            // The spec: exemplars of gauges and non-monotonic sums are dropped.
            metric("queue", "", "", sum(false, vec![number_point(with_ids())])),
            metric(
                "temp",
                "",
                "",
                Data::Gauge(Gauge {
                    data_points: vec![number_point(with_ids())],
                }),
            ),
        ]);
        let series =
            r#"{__name__="orders_total", http_route="/pay", job="shop", otel_scope_name="lib"}"#;
        assert_eq!(
            got,
            vec![
                (
                    series.to_owned(),
                    r#"{span_id="eee19b7ec3c1b174", trace_id="5b8efff798038103d269b633813fc60c", user.id="u1"}"#
                        .to_owned(),
                    6.0,
                    1_700_000_000_123
                ),
                (series.to_owned(), "{}".to_owned(), 2.0, 1_700_000_000_456),
            ]
        );
    }

    #[test]
    fn long_exemplar_attributes_are_dropped_and_the_ids_kept() {
        // trace_id (8 + 32) and span_id (7 + 16) are 63 characters; attributes of 65 more
        // (`e` with an empty value counts for its name) fit exactly, 66 do not.
        let attrs = |n: usize| vec![kv("k", &"v".repeat(n - 1)), kv("e", "")];
        let row = |n: usize| {
            let e = otlp_exemplar(exemplar::Value::AsDouble(1.0), 1, &TRACE, &SPAN, attrs(n));
            exemplar_rows(vec![metric(
                "c",
                "",
                "",
                Data::Sum(Sum {
                    data_points: vec![number_point(vec![e])],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                    is_monotonic: true,
                }),
            )])
            .remove(0)
            .1
        };
        assert!(row(64).contains("k=\""), "{}", row(64));
        assert!(!row(65).contains("k=\""), "{}", row(65));
        assert!(row(65).contains("trace_id=") && row(65).contains("span_id="));
    }

    #[test]
    fn histogram_exemplars_go_to_the_bucket_holding_their_value() {
        let e = |v: f64| {
            otlp_exemplar(
                exemplar::Value::AsDouble(v),
                1_700_000_000_000,
                &TRACE,
                &[],
                vec![],
            )
        };
        let got = exemplar_rows(vec![metric(
            "http.server.duration",
            "s",
            "",
            Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: 1_700_000_000_000_000_000,
                    count: 6,
                    bucket_counts: vec![1, 2, 3, 0],
                    explicit_bounds: vec![0.1, 0.5, 1.0],
                    exemplars: vec![e(0.05), e(0.1), e(0.3), e(1.0), e(7.0), e(f64::NAN)],
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        )]);
        let le: Vec<(String, f64)> = got
            .iter()
            .map(|(series, _, v, _)| {
                let le = series.split("le=\"").nth(1).unwrap();
                (le[..le.find('"').unwrap()].to_owned(), *v)
            })
            .collect();
        assert_eq!(
            le,
            vec![
                ("0.1".into(), 0.05),
                ("0.1".into(), 0.1),
                ("0.5".into(), 0.3),
                ("1".into(), 1.0),
                ("+Inf".into(), 7.0),
            ],
            "a NaN value has no bucket"
        );
        assert_eq!(
            got[0].0,
            r#"{__name__="http_server_duration_seconds_bucket", job="shop", le="0.1", otel_scope_name="lib"}"#
        );
        // The bucket series is one translate writes.
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![kv("service.name", "shop"), kv("host.name", "h1")],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        ..Default::default()
                    }),
                    metrics: vec![metric(
                        "http.server.duration",
                        "s",
                        "",
                        Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                time_unix_nano: 1_700_000_000_000_000_000,
                                count: 6,
                                bucket_counts: vec![1, 2, 3, 0],
                                explicit_bounds: vec![0.1, 0.5, 1.0],
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        }),
                    )],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let written: Vec<String> = translate(&req)
            .iter()
            .map(|p| p.labels.to_string())
            .collect();
        for (series, ..) in &got {
            assert!(written.contains(series), "{series} not in {written:?}");
        }
    }
}
