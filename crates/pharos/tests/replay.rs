//! The head rebuilt from the write-ahead log equals the head before the
//! restart, even when many clients write the same series at once: requests
//! are applied in log order.

mod common;

use common::{Pharos, get_json_q, tempdir};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point,
};
use prost::Message;

const BASE_NS: u64 = 1_700_000_000_000_000_000;

fn request(i: u64) -> ExportMetricsServiceRequest {
    let point = |v: f64| NumberDataPoint {
        attributes: vec![KeyValue {
            key: "k".into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue("v".into())),
            }),
            ..Default::default()
        }],
        start_time_unix_nano: BASE_NS,
        // Timestamps interleave across clients, so arrival order matters.
        time_unix_nano: BASE_NS + (i % 97) * 1_000_000_000 + i,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "order.gauge".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![point(i as f64)],
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "order.delta".into(),
                        data: Some(Data::Sum(Sum {
                            data_points: vec![point((i % 7 + 1) as f64)],
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn snapshot(p: &Pharos) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for q in ["order_gauge[10m]", "order_delta_total[10m]"] {
        let v = get_json_q(
            &p.q("/api/v1/query"),
            &[("query", q), ("time", "1700000200")],
        )
        .await;
        out.insert(q.into(), v["data"].clone());
    }
    serde_json::Value::Object(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_head_equals_live_head_under_concurrency() {
    let dir = tempdir();
    let mut p = Pharos::start(dir.path());
    let url = p.h("/v1/metrics");
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8u64 {
        let url = url.clone();
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            for n in 0..40u64 {
                let body = request(worker * 1000 + n).encode_to_vec();
                let r = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let live = snapshot(&p).await;
    let samples = live["order_gauge[10m]"]["result"][0]["values"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert!(samples >= 5, "too few samples kept to compare: {live}");
    assert!(p.terminate().success());
    let p = Pharos::start(dir.path());
    let replayed = snapshot(&p).await;
    assert_eq!(live, replayed);
}
