//! The per-metric series limit in the real binary: refused series are
//! reported in the client's own format and counted, the rest is kept.

mod common;

use common::{Pharos, get_json_q, tempdir};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use prost::Message;

fn gauge(name: &str, values: &[&str]) -> ExportMetricsServiceRequest {
    let points = values
        .iter()
        .map(|v| NumberDataPoint {
            attributes: vec![KeyValue {
                key: "user".into(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue((*v).into())),
                }),
                ..Default::default()
            }],
            time_unix_nano: 1_700_000_000_000_000_000,
            value: Some(number_data_point::Value::AsDouble(1.0)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: points,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_past_the_per_metric_limit_are_refused() {
    let dir = tempdir();
    let p = Pharos::start_with(dir.path(), "limits:\n  max_series_per_metric: 3\n");
    let post = |req: ExportMetricsServiceRequest| {
        let url = p.h("/v1/metrics");
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-protobuf")
                .body(req.encode_to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            ExportMetricsServiceResponse::decode(r.bytes().await.unwrap()).unwrap()
        }
    };
    let ok = post(gauge("sessions", &["a", "b", "c"])).await;
    assert!(ok.partial_success.is_none());
    let refused = post(gauge("sessions", &["d"]))
        .await
        .partial_success
        .expect("partial_success");
    assert_eq!(refused.rejected_data_points, 1);
    assert!(
        refused
            .error_message
            .contains("per-metric series limit reached for sessions"),
        "{}",
        refused.error_message
    );
    let other = post(gauge("carts", &["d"])).await;
    assert!(
        other.partial_success.is_none(),
        "another metric has room of its own"
    );

    let series = get_json_q(
        &p.q("/api/v1/series"),
        &[
            ("match[]", "sessions"),
            ("start", "1699999999"),
            ("end", "1700000001"),
        ],
    )
    .await;
    assert_eq!(series["data"].as_array().unwrap().len(), 3);
    let metrics = reqwest::get(p.q("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"pharos_receiver_refused_items_total{receiver="otlp_http",signal="metrics",reason="invalid"} 1"#),
        "{metrics}"
    );
}
