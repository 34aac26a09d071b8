//! Translation and head tests: OTLP in, stored series out.

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, metric::Data,
    number_data_point, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::*;

const SEC: u64 = 1_000_000_000;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn num(t_s: u64, v: f64, attrs: &[(&str, &str)]) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
        time_unix_nano: t_s * SEC,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

fn request(
    resource: &[(&str, &str)],
    scope: Option<(&str, &str)>,
    metrics: Vec<Metric>,
) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| kv(k, v)).collect(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: scope.map(|(n, v)| InstrumentationScope {
                    name: n.into(),
                    version: v.into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn sum(points: Vec<NumberDataPoint>, monotonic: bool, temporality: AggregationTemporality) -> Data {
    Data::Sum(Sum {
        data_points: points,
        aggregation_temporality: temporality as i32,
        is_monotonic: monotonic,
    })
}

/// Renders every series as `labels t=v t=v`, sorted, for compact comparisons.
fn dump(store: &MetricsStore) -> Vec<String> {
    store
        .select(
            &[Matcher::regex("__name__", ".+", false).unwrap()],
            i64::MIN,
            i64::MAX,
        )
        .into_iter()
        .map(|s| {
            let pts: Vec<String> = s
                .samples
                .iter()
                .map(|(t, v)| {
                    if is_stale(*v) {
                        format!("{t}=stale")
                    } else {
                        format!("{t}={v}")
                    }
                })
                .collect();
            format!("{} {}", s.labels, pts.join(" "))
        })
        .collect()
}

fn check(req: ExportMetricsServiceRequest, expected: &[&str]) {
    let store = MetricsStore::new();
    let mut req = req;
    let rejected = store.sanitize(&mut req);
    assert_eq!(rejected, Rejected::default());
    store.apply(&req);
    assert_eq!(dump(&store), expected);
}

#[test]
fn counter_with_unit_job_instance_scope_and_target_info() {
    let req = request(
        &[
            ("service.name", "api"),
            ("service.namespace", "shop"),
            ("service.instance.id", "i-1"),
            ("host.name", "h1"),
        ],
        Some(("io.lib", "1.2")),
        vec![metric(
            "http.server.request.duration",
            "ms",
            sum(
                vec![
                    num(10, 3.0, &[("http.method", "GET")]),
                    num(20, 5.0, &[("http.method", "GET")]),
                ],
                true,
                AggregationTemporality::Cumulative,
            ),
        )],
    );
    check(
        req,
        &[
            r#"{__name__="http_server_request_duration_milliseconds_total", http_method="GET", instance="i-1", job="shop/api", otel_scope_name="io.lib", otel_scope_version="1.2"} 10000=3 20000=5"#,
            r#"{__name__="target_info", host_name="h1", instance="i-1", job="shop/api"} 10000=1 20000=1"#,
        ],
    );
}

#[test]
fn gauge_ratio_and_non_monotonic_sum() {
    let req = request(
        &[("service.name", "svc")],
        None,
        vec![
            metric(
                "cpu.utilization",
                "1",
                Data::Gauge(Gauge {
                    data_points: vec![num(1, 0.5, &[])],
                }),
            ),
            metric(
                "queue.size",
                "{items}",
                sum(
                    vec![num(1, -2.0, &[])],
                    false,
                    AggregationTemporality::Cumulative,
                ),
            ),
        ],
    );
    check(
        req,
        &[
            r#"{__name__="cpu_utilization_ratio", job="svc"} 1000=0.5"#,
            r#"{__name__="queue_size", job="svc"} 1000=-2"#,
        ],
    );
}

#[test]
fn histogram_buckets_are_cumulative() {
    let p = HistogramDataPoint {
        time_unix_nano: 5 * SEC,
        count: 10,
        sum: Some(42.5),
        bucket_counts: vec![1, 2, 3, 4],
        explicit_bounds: vec![0.1, 1.0, 10.0],
        ..Default::default()
    };
    let h = Data::Histogram(Histogram {
        data_points: vec![p],
        aggregation_temporality: AggregationTemporality::Cumulative as i32,
    });
    check(
        request(&[], None, vec![metric("rpc.duration", "s", h)]),
        &[
            r#"{__name__="rpc_duration_seconds_bucket", le="+Inf"} 5000=10"#,
            r#"{__name__="rpc_duration_seconds_bucket", le="0.1"} 5000=1"#,
            r#"{__name__="rpc_duration_seconds_bucket", le="1"} 5000=3"#,
            r#"{__name__="rpc_duration_seconds_bucket", le="10"} 5000=6"#,
            r#"{__name__="rpc_duration_seconds_count"} 5000=10"#,
            r#"{__name__="rpc_duration_seconds_sum"} 5000=42.5"#,
        ],
    );
}

#[test]
fn summary_quantiles_sum_and_count() {
    let p = SummaryDataPoint {
        time_unix_nano: SEC,
        count: 4,
        sum: 8.0,
        quantile_values: vec![
            ValueAtQuantile {
                quantile: 0.5,
                value: 2.0,
            },
            ValueAtQuantile {
                quantile: 0.99,
                value: 3.5,
            },
        ],
        ..Default::default()
    };
    check(
        request(
            &[],
            None,
            vec![metric(
                "latency",
                "",
                Data::Summary(Summary {
                    data_points: vec![p],
                }),
            )],
        ),
        &[
            r#"{__name__="latency", quantile="0.5"} 1000=2"#,
            r#"{__name__="latency", quantile="0.99"} 1000=3.5"#,
            r#"{__name__="latency_count"} 1000=4"#,
            r#"{__name__="latency_sum"} 1000=8"#,
        ],
    );
}

#[test]
fn delta_sums_and_histograms_become_cumulative() {
    let store = MetricsStore::new();
    for (t, v) in [(1, 2.0), (2, 3.0), (3, 1.0)] {
        let req = request(
            &[],
            None,
            vec![metric(
                "reqs",
                "",
                sum(vec![num(t, v, &[])], true, AggregationTemporality::Delta),
            )],
        );
        store.apply(&req);
    }
    // A replayed (older) delta is dropped and does not change the running total.
    store.apply(&request(
        &[],
        None,
        vec![metric(
            "reqs",
            "",
            sum(
                vec![num(2, 100.0, &[])],
                true,
                AggregationTemporality::Delta,
            ),
        )],
    ));
    let hist = |t: u64, counts: Vec<u64>| {
        let p = HistogramDataPoint {
            time_unix_nano: t * SEC,
            count: counts.iter().sum(),
            bucket_counts: counts,
            explicit_bounds: vec![1.0],
            ..Default::default()
        };
        request(
            &[],
            None,
            vec![metric(
                "h",
                "",
                Data::Histogram(Histogram {
                    data_points: vec![p],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                }),
            )],
        )
    };
    store.apply(&hist(1, vec![1, 1]));
    store.apply(&hist(2, vec![2, 0]));
    assert_eq!(
        dump(&store),
        [
            r#"{__name__="h_bucket", le="+Inf"} 1000=2 2000=4"#,
            r#"{__name__="h_bucket", le="1"} 1000=1 2000=3"#,
            r#"{__name__="h_count"} 1000=2 2000=4"#,
            r#"{__name__="reqs_total"} 1000=2 2000=5 3000=6"#,
        ]
    );
    assert_eq!(store.stats().out_of_order, 1);
}

#[test]
fn no_recorded_value_becomes_a_stale_marker() {
    let mut p = num(2, 7.0, &[]);
    p.flags = 1;
    check(
        request(
            &[],
            None,
            vec![metric(
                "g",
                "",
                Data::Gauge(Gauge {
                    data_points: vec![num(1, 1.0, &[]), p],
                }),
            )],
        ),
        &[r#"{__name__="g"} 1000=1 2000=stale"#],
    );
}

#[test]
fn attribute_names_are_sanitized_and_collisions_joined() {
    check(
        request(
            &[],
            None,
            vec![metric(
                "m",
                "",
                Data::Gauge(Gauge {
                    data_points: vec![num(
                        1,
                        1.0,
                        &[
                            ("a.b", "1"),
                            ("a_b", "2"),
                            ("0x", "z"),
                            ("__name__", "evil"),
                        ],
                    )],
                }),
            )],
        ),
        &[r#"{__name__="m", a_b="1;2", key_0x="z", key__name__="evil"} 1000=1"#],
    );
}

#[test]
fn sanitize_counts_what_it_drops() {
    let store = MetricsStore::new();
    let mut req = request(
        &[],
        None,
        vec![
            metric(
                "ok",
                "",
                Data::Gauge(Gauge {
                    data_points: vec![num(1, 1.0, &[]), num(0, 1.0, &[])],
                }),
            ),
            metric(
                "",
                "",
                Data::Gauge(Gauge {
                    data_points: vec![num(1, 1.0, &[])],
                }),
            ),
            metric(
                "exp",
                "",
                Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![Default::default(); 2],
                    aggregation_temporality: 2,
                }),
            ),
        ],
    );
    let r = store.sanitize(&mut req);
    assert_eq!(r.count, 4);
    assert_eq!(
        r.message,
        "data point without a timestamp; metric without a name; exponential histograms are not supported yet"
    );
    store.apply(&req);
    assert_eq!(dump(&store), [r#"{__name__="ok"} 1000=1"#]);
}

#[test]
fn target_info_dedupes_timestamps_across_metrics() {
    let g = |name: &str, t: u64| {
        metric(
            name,
            "",
            Data::Gauge(Gauge {
                data_points: vec![num(t, 1.0, &[])],
            }),
        )
    };
    check(
        request(
            &[("service.name", "s"), ("k8s.pod.name", "p")],
            None,
            vec![g("b", 2), g("a", 1), g("c", 2)],
        ),
        &[
            r#"{__name__="a", job="s"} 1000=1"#,
            r#"{__name__="b", job="s"} 2000=1"#,
            r#"{__name__="c", job="s"} 2000=1"#,
            r#"{__name__="target_info", job="s", k8s_pod_name="p"} 1000=1 2000=1"#,
        ],
    );
}

#[test]
fn querier_filters_by_time_and_matchers() {
    let store = MetricsStore::new();
    store.append_sample(Labels::from_pairs([("__name__", "a"), ("x", "1")]), 10, 1.0);
    store.append_sample(Labels::from_pairs([("__name__", "b"), ("y", "2")]), 20, 1.0);
    let all: Vec<Vec<Matcher>> = vec![];
    assert_eq!(store.label_names(&all, 0, 15), ["__name__", "x"]);
    assert_eq!(store.label_values("__name__", &all, 0, 100), ["a", "b"]);
    assert_eq!(store.label_values("__name__", &all, 15, 100), ["b"]);
    let sets = vec![vec![Matcher::equal("y", "2")]];
    assert_eq!(
        store.series(&sets, 0, 100),
        [Labels::from_pairs([("__name__", "b"), ("y", "2")])]
    );
    assert!(store.series(&sets, 0, 19).is_empty());
}
