//! Exemplars through the real binary: OTLP metrics with exemplars sent as hand-built
//! protobuf requests come back from `/api/v1/query_exemplars` on the series Prometheus'
//! OTLP translation puts them on (a monotonic sum's `_total`, the histogram `_bucket` whose
//! bucket holds the value; a gauge's are dropped), survive SIGKILL (the log replays them)
//! and a flush (they are not part of the head), and are gone after a restart once a flush
//! deleted the log segments that held them, as Prometheus' checkpoint drops exemplars.

mod common;

use common::{Pharos, force_flush, get_json, otlp_metrics_ok, tempdir};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, exemplar, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{Value, json};

const TRACE: &str = "5b8efff798038103d269b633813fc60c";
const SPAN: &str = "eee19b7ec3c1b174";

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn ex(value: f64, t_ns: u64, attributes: Vec<KeyValue>) -> Exemplar {
    Exemplar {
        filtered_attributes: attributes,
        time_unix_nano: t_ns,
        span_id: hex::decode(SPAN).unwrap(),
        trace_id: hex::decode(TRACE).unwrap(),
        value: Some(exemplar::Value::AsDouble(value)),
    }
}

/// One request: a histogram (bounds 0.1 and 0.5) with three exemplars, a monotonic sum
/// with one (an integer value, no ids), a gauge with one; all points and exemplars at `t`.
fn request(t: u64) -> ExportMetricsServiceRequest {
    let metric = |name: &str, unit: &str, data| Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "checkout")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric(
                        "http.server.duration",
                        "s",
                        Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                attributes: vec![kv("http.route", "/pay")],
                                time_unix_nano: t,
                                count: 3,
                                sum: Some(2.35),
                                bucket_counts: vec![1, 1, 1],
                                explicit_bounds: vec![0.1, 0.5],
                                exemplars: vec![
                                    ex(0.05, t, vec![kv("user", "u1")]),
                                    ex(0.3, t, vec![]),
                                    ex(2.0, t, vec![]),
                                ],
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        }),
                    ),
                    metric(
                        "orders",
                        "",
                        Data::Sum(Sum {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: t,
                                value: Some(number_data_point::Value::AsInt(5)),
                                exemplars: vec![Exemplar {
                                    time_unix_nano: t,
                                    value: Some(exemplar::Value::AsInt(1)),
                                    ..Default::default()
                                }],
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "temperature",
                        "",
                        Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: t,
                                value: Some(number_data_point::Value::AsDouble(21.5)),
                                exemplars: vec![ex(21.5, t, vec![])],
                                ..Default::default()
                            }],
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The `data` of `query_exemplars` for `query` over all time.
async fn exemplars(p: &Pharos, query: &str) -> Value {
    let url = reqwest::Url::parse_with_params(&p.q("/api/v1/query_exemplars"), &[("query", query)])
        .unwrap();
    let v = get_json(url.as_str()).await;
    assert_eq!(v["status"], "success", "{v}");
    v["data"].clone()
}

#[tokio::test]
async fn otlp_exemplars_are_served_and_replayed() {
    let dir = tempdir();
    let mut p = Pharos::start(dir.path());
    let t = now_ns() - 60_000_000_000;
    otlp_metrics_ok(&p, &request(t)).await;

    let ts = (t / 1_000_000) as f64 / 1000.0;
    let bucket = |le: &str| json!({"__name__": "http_server_duration_seconds_bucket", "http_route": "/pay", "job": "checkout", "le": le});
    let ids = json!({"trace_id": TRACE, "span_id": SPAN});
    let expected_buckets = json!([
        {"seriesLabels": bucket("+Inf"), "exemplars": [{"labels": ids, "value": "2", "timestamp": ts}]},
        {"seriesLabels": bucket("0.1"), "exemplars": [{"labels": {"trace_id": TRACE, "span_id": SPAN, "user": "u1"}, "value": "0.05", "timestamp": ts}]},
        {"seriesLabels": bucket("0.5"), "exemplars": [{"labels": ids, "value": "0.3", "timestamp": ts}]},
    ]);
    let query =
        "histogram_quantile(0.99, sum by (le) (rate(http_server_duration_seconds_bucket[5m])))";
    assert_eq!(exemplars(&p, query).await, expected_buckets);
    let expected_all = json!([
        expected_buckets[0], expected_buckets[1], expected_buckets[2],
        {"seriesLabels": {"__name__": "orders_total", "job": "checkout"}, "exemplars": [{"labels": {}, "value": "1", "timestamp": ts}]},
    ]);
    // The gauge's exemplar is dropped, as the compatibility spec says.
    let everything = r#"{__name__=~".+"}"#;
    assert_eq!(exemplars(&p, everything).await, expected_all);
    assert_eq!(exemplars(&p, "temperature").await, json!([]));

    // SIGKILL: the log replays the request, exemplars included.
    p.kill9();
    let mut p = Pharos::start(dir.path());
    assert_eq!(
        exemplars(&p, everything).await,
        expected_all,
        "after SIGKILL"
    );

    // A flush freezes the head and writes blocks; exemplars stay where they are.
    force_flush(&p).await;
    assert_eq!(
        exemplars(&p, everything).await,
        expected_all,
        "after a flush"
    );

    // The flush deleted the segments holding them: after a restart they are gone (as in
    // Prometheus, whose checkpoint drops exemplars), while the samples are in blocks.
    p.kill9();
    let p = Pharos::start(dir.path());
    assert_eq!(
        exemplars(&p, everything).await,
        json!([]),
        "after a flush and restart"
    );
    let count = get_json(
        reqwest::Url::parse_with_params(
            &p.q("/api/v1/query"),
            &[
                ("query", "http_server_duration_seconds_count"),
                ("time", &format!("{}", t / 1_000_000_000 + 1)),
            ],
        )
        .unwrap()
        .as_str(),
    )
    .await;
    assert_eq!(count["data"]["result"][0]["value"][1], "3", "{count}");
}
