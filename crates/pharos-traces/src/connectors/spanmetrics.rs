//! Request, error and duration metrics per span, as the Collector's `spanmetrics`
//! connector and Tempo's span-metrics processor make them:
//!
//! - `traces_spanmetrics_calls` (a monotonic sum; `traces_spanmetrics_calls_total` in
//!   Prometheus) counts spans;
//! - `traces_spanmetrics_duration` (unit `s`; `traces_spanmetrics_duration_seconds_*`)
//!   is a histogram of their durations;
//!
//! both labelled `service_name` (the resource's `service.name`), `span_name`,
//! `span_kind` (`SPAN_KIND_SERVER`, ...), `status_code` (`STATUS_CODE_ERROR`, ...) and
//! each configured dimension: the span's attribute of that name, else the resource's,
//! left out when neither has it. Exemplars carry the span's trace and span ids.

use super::{Counter, Exemplar, Histogram, LabelSets, Resources, attr_value, attributes, id};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use pharos_model::trace_batch::TraceBatch;
use std::borrow::Cow;

/// The metric names, before Prometheus' suffixes.
pub const CALLS: &str = "traces_spanmetrics_calls";
pub const DURATION: &str = "traces_spanmetrics_duration";

const FIXED_LABELS: [&str; 4] = ["service_name", "span_name", "span_kind", "status_code"];

/// `connectors.spanmetrics`, as the binary hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanMetricsConfig {
    /// Attribute names added as labels (dots become underscores in Prometheus).
    pub dimensions: Vec<String>,
    /// Upper bounds of the duration buckets, in seconds, ascending.
    pub buckets: Vec<f64>,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        SpanMetricsConfig {
            dimensions: Vec::new(),
            buckets: super::default_spanmetrics_buckets(),
        }
    }
}

#[derive(Debug, Clone)]
struct Series {
    calls: Counter,
    duration: Histogram,
}

/// How many series of one request [`SpanMetrics::observe`] finds without hashing labels.
const RECENT_SERIES: usize = 32;

/// The cumulative span metrics, one series per distinct label set.
#[derive(Debug)]
pub struct SpanMetrics {
    config: SpanMetricsConfig,
    series: LabelSets<Series>,
}

/// The Collector's spelling of a span kind: `SPAN_KIND_SERVER`, ...
pub(crate) fn kind_name(kind: i32) -> &'static str {
    SpanKind::try_from(kind)
        .unwrap_or(SpanKind::Unspecified)
        .as_str_name()
}

impl SpanMetrics {
    pub fn new(config: SpanMetricsConfig) -> Self {
        SpanMetrics {
            config,
            series: LabelSets::default(),
        }
    }

    /// Counts every span of `req`, read in place: a span of a known series copies
    /// nothing.
    pub fn observe(&mut self, req: &TraceBatch) {
        let resources = Resources::of(req);
        let mut span_attrs = Vec::new();
        let mut key: Vec<Option<Cow<'_, str>>> =
            Vec::with_capacity(4 + self.config.dimensions.len());
        // Without dimensions a series is (resource, name, kind, status): the request's
        // spans repeat a few of them, found here before hashing the labels.
        let mut recent: Vec<(usize, &str, i32, i32, usize)> = Vec::new();
        for i in 0..req.span_count() {
            let span = req.span(i);
            let r = req.scope_resource(span.scope);
            let seconds = span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano) as f64
                / 1e9;
            let exemplar = Exemplar {
                trace_id: id(span.trace_id),
                span_id: id(span.span_id),
                value: seconds,
                time_unix_nano: span.end_time_unix_nano,
            };
            let cached = self.config.dimensions.is_empty().then(|| {
                recent
                    .iter()
                    .find(|c| {
                        c.0 == r && c.2 == span.kind && c.3 == span.status_code && c.1 == span.name
                    })
                    .map(|c| c.4)
            });
            if let Some(Some(n)) = cached {
                self.observe_at(n, seconds, exemplar);
                continue;
            }
            let status = StatusCode::try_from(span.status_code)
                .unwrap_or(StatusCode::Unset)
                .as_str_name();
            key.clear();
            key.push(Some(Cow::Borrowed(&resources.services[r])));
            key.push(Some(Cow::Borrowed(span.name)));
            key.push(Some(Cow::Borrowed(kind_name(span.kind))));
            key.push(Some(Cow::Borrowed(status)));
            if !self.config.dimensions.is_empty() {
                span_attrs.clear();
                span_attrs.extend(req.span_attributes(i));
                for d in &self.config.dimensions {
                    key.push(
                        attr_value(&span_attrs, d)
                            .or_else(|| attr_value(&resources.attributes[r], d)),
                    );
                }
            }
            let bounds = &self.config.buckets;
            let n = self.series.index_of(&key, || Series {
                calls: Counter::default(),
                duration: Histogram::new(bounds),
            });
            if self.config.dimensions.is_empty() && recent.len() < RECENT_SERIES {
                recent.push((r, span.name, span.kind, span.status_code, n));
            }
            self.observe_at(n, seconds, exemplar);
        }
    }

    /// Counts a span of series `n`.
    fn observe_at(&mut self, n: usize, seconds: f64, exemplar: Exemplar) {
        let series = self.series.at(n);
        series.calls.add(
            1,
            Some(Exemplar {
                value: 1.0,
                ..exemplar.clone()
            }),
        );
        series
            .duration
            .observe(&self.config.buckets, seconds, Some(exemplar));
    }

    /// Renders the calls sum and the duration histogram; exemplars are handed out once.
    pub fn metrics(&mut self, start: u64, now: u64) -> Vec<Metric> {
        if self.series.is_empty() {
            return Vec::new();
        }
        let names: Vec<&str> = FIXED_LABELS
            .iter()
            .copied()
            .chain(self.config.dimensions.iter().map(String::as_str))
            .collect();
        let mut calls = Vec::with_capacity(self.series.len());
        let mut durations = Vec::with_capacity(self.series.len());
        for (key, s) in self.series.sorted_mut() {
            let attrs = attributes(&names, key);
            calls.push(s.calls.point(attrs.clone(), start, now));
            durations.push(s.duration.point(&self.config.buckets, attrs, start, now));
        }
        vec![
            super::sum_metric(
                CALLS,
                "Spans counted, by service, name, kind and status",
                calls,
            ),
            super::histogram_metric(DURATION, "Span durations", durations),
        ]
    }

    /// The number of series, for tests and limits.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Returns whether no span was counted yet.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{decoded, kv, request, span, text};
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
    use opentelemetry_proto::tonic::trace::v1::Span;
    use std::collections::BTreeMap;

    fn labels(p: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Vec<(String, String)> {
        p.iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    text(std::slice::from_ref(kv), &kv.key).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn counts_calls_and_buckets_durations() {
        let mut m = SpanMetrics::new(SpanMetricsConfig {
            dimensions: vec!["http.method".into()],
            buckets: vec![0.01, 0.1, 1.0],
        });
        let mut get = span(1, 1, 0, "GET /", 2, 5, 0);
        get.attributes.push(kv("http.method", "GET"));
        let mut get2 = span(2, 1, 0, "GET /", 2, 50, 0);
        get2.attributes.push(kv("http.method", "GET"));
        m.observe(&request(vec![
            ("front", vec![get, get2]),
            ("db", vec![span(1, 2, 1, "query", 3, 2000, 2)]),
        ]));
        assert_eq!(m.len(), 2);
        let out = m.metrics(10, 20);
        assert_eq!(out[0].name, CALLS);
        let Some(Data::Sum(sum)) = &out[0].data else {
            panic!("{out:?}")
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.aggregation_temporality, 2, "cumulative");
        // BTreeMap order: "db" before "front".
        let db = &sum.data_points[0];
        assert_eq!(
            labels(&db.attributes),
            vec![
                ("service_name".into(), "db".into()),
                ("span_name".into(), "query".into()),
                ("span_kind".into(), "SPAN_KIND_CLIENT".into()),
                ("status_code".into(), "STATUS_CODE_ERROR".into()),
            ],
            "a missing dimension is left out"
        );
        assert_eq!(db.value, Some(number_data_point::Value::AsInt(1)));
        let front = &sum.data_points[1];
        assert_eq!(front.value, Some(number_data_point::Value::AsInt(2)));
        assert_eq!(
            labels(&front.attributes)[2..],
            [
                ("span_kind".into(), "SPAN_KIND_SERVER".into()),
                ("status_code".into(), "STATUS_CODE_UNSET".into()),
                ("http.method".into(), "GET".into()),
            ]
        );
        assert_eq!((front.start_time_unix_nano, front.time_unix_nano), (10, 20));
        assert_eq!(front.exemplars.len(), 1);
        assert_eq!(front.exemplars[0].trace_id, vec![2; 16], "the latest span");

        assert_eq!(out[1].name, DURATION);
        assert_eq!(out[1].unit, "s");
        let Some(Data::Histogram(h)) = &out[1].data else {
            panic!()
        };
        assert_eq!(h.data_points[0].bucket_counts, vec![0, 0, 0, 1]);
        assert_eq!(h.data_points[1].bucket_counts, vec![1, 1, 0, 0]);
        assert_eq!(h.data_points[1].explicit_bounds, vec![0.01, 0.1, 1.0]);
        assert_eq!(h.data_points[1].count, 2);
        assert!((h.data_points[1].sum.unwrap() - 0.055).abs() < 1e-9);
        assert_eq!(h.data_points[1].exemplars.len(), 2, "one per bucket");

        // Cumulative: a second export repeats the totals, without the exemplars.
        m.observe(&request(vec![(
            "db",
            vec![span(3, 2, 1, "query", 3, 1, 2)],
        )]));
        let out = m.metrics(10, 30);
        let Some(Data::Sum(sum)) = &out[0].data else {
            panic!()
        };
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsInt(2))
        );
        assert_eq!(sum.data_points[0].exemplars[0].trace_id, vec![3; 16]);
        assert!(sum.data_points[1].exemplars.is_empty());
    }

    #[test]
    fn a_request_of_many_series_counts_each_span_once_in_its_own() {
        // More series in one request than the request's cache holds, repeated and
        // interleaved, over two resources of one service and one of another.
        let mut m = SpanMetrics::new(SpanMetricsConfig::default());
        let mut want: BTreeMap<Vec<(String, String)>, u64> = BTreeMap::new();
        let mut resources: Vec<(&str, Vec<Span>)> =
            vec![("a", vec![]), ("a", vec![]), ("b", vec![])];
        for k in 0..600u32 {
            let r = (k % 3) as usize;
            let name = format!("op{}", (k * 7) % 45);
            // Status varies where resource, name and kind repeat.
            let (kind, status) = ((k % 4) as i32, (k / 180 % 3) as i32);
            resources[r].1.push(span(1, 1, 0, &name, kind, 1, status));
            let key = vec![
                ("service_name".to_string(), resources[r].0.to_string()),
                ("span_name".to_string(), name),
                ("span_kind".to_string(), kind_name(kind).to_string()),
                (
                    "status_code".to_string(),
                    StatusCode::try_from(status)
                        .unwrap()
                        .as_str_name()
                        .to_string(),
                ),
            ];
            *want.entry(key).or_default() += 1;
        }
        m.observe(&request(resources));
        let out = m.metrics(1, 2);
        let Some(Data::Sum(sum)) = &out[0].data else {
            panic!("{out:?}")
        };
        let got: BTreeMap<Vec<(String, String)>, u64> = sum
            .data_points
            .iter()
            .map(|p| {
                let Some(number_data_point::Value::AsInt(n)) = p.value else {
                    panic!()
                };
                (labels(&p.attributes), n as u64)
            })
            .collect();
        assert!(want.len() > RECENT_SERIES, "{}", want.len());
        assert_eq!(got, want);
    }

    #[test]
    fn dimensions_fall_back_to_the_resource() {
        let mut m = SpanMetrics::new(SpanMetricsConfig {
            dimensions: vec!["deployment.environment".into()],
            ..Default::default()
        });
        let mut req = decoded(vec![("a", vec![span(1, 1, 0, "x", 1, 1, 0)])]);
        req.resource_spans[0]
            .resource
            .as_mut()
            .unwrap()
            .attributes
            .push(kv("deployment.environment", "prod"));
        m.observe(&TraceBatch::from_request(&req));
        let out = m.metrics(0, 1);
        let Some(Data::Sum(sum)) = &out[0].data else {
            panic!()
        };
        let l = labels(&sum.data_points[0].attributes);
        assert_eq!(l[2].1, "SPAN_KIND_INTERNAL");
        assert_eq!(l[4], ("deployment.environment".into(), "prod".into()));
    }
}
