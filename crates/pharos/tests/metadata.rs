//! Metric metadata in the real binary: remote_write metadata and OTLP metrics'
//! type/description/unit are served by `/api/v1/metadata`, and survive SIGKILL before any
//! flush, a flush (which deletes the log segments that held them) followed by a restart,
//! and a second flush that deletes the segment holding the first flush's checkpoint.

mod common;

use common::{Pharos, force_flush, get_json, otlp_metrics_ok, remote_write_ok, tempdir};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use pharos_metrics::remote_write::proto::{MetricMetadata, MetricType, WriteRequest};
use pharos_metrics::store::record::MetricsRecord;
use prost::Message;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;

fn md(name: &str, kind: MetricType, help: &str, unit: &str) -> MetricMetadata {
    MetricMetadata {
        r#type: kind as i32,
        metric_family_name: name.into(),
        help: help.into(),
        unit: unit.into(),
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn point(v: f64) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: now_ns(),
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn metric(name: &str, unit: &str, description: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        description: description.into(),
        data: Some(data),
        ..Default::default()
    }
}

async fn otlp(p: &Pharos) {
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric(
                        "http.server.request.duration",
                        "s",
                        "Duration of HTTP server requests.",
                        Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                time_unix_nano: now_ns(),
                                count: 2,
                                sum: Some(0.5),
                                bucket_counts: vec![1, 1],
                                explicit_bounds: vec![0.25],
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        }),
                    ),
                    metric(
                        "queue.messages",
                        "{message}",
                        "Messages sent.",
                        Data::Sum(Sum {
                            data_points: vec![point(7.0)],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "process.memory.usage",
                        "By",
                        "",
                        Data::Gauge(Gauge {
                            data_points: vec![point(1e6)],
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    otlp_metrics_ok(p, &req).await;
}

async fn metadata(p: &Pharos) -> Value {
    let v = get_json(&p.q("/api/v1/metadata")).await;
    assert_eq!(v["status"], "success", "{v}");
    v["data"].clone()
}

fn segments(data: &Path) -> BTreeSet<String> {
    std::fs::read_dir(data.join("wal").join("metrics"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn metadata_survives_sigkill_and_flushes() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut p = Pharos::start(dir.path());
    assert_eq!(metadata(&p).await, json!({}));

    // Metadata alone, as Prometheus sends it every minute: 204, stored.
    let from_prometheus = WriteRequest {
        timeseries: vec![],
        metadata: vec![
            md("up", MetricType::Gauge, "Whether the target is up.", ""),
            md(
                "prometheus_http_requests",
                MetricType::Counter,
                "Counter of HTTP requests.",
                "",
            ),
            md(
                "go_gc_duration_seconds",
                MetricType::Summary,
                "A summary of the pause duration of garbage collection cycles.",
                "seconds",
            ),
        ],
    };
    remote_write_ok(&p, &from_prometheus).await;
    // A second help text for `up`: both are listed, first seen first.
    remote_write_ok(
        &p,
        &WriteRequest {
            timeseries: vec![],
            metadata: vec![md("up", MetricType::Gauge, "1 if up.", "")],
        },
    )
    .await;
    otlp(&p).await;

    let expected = json!({
        "go_gc_duration_seconds": [{"type": "summary", "help": "A summary of the pause duration of garbage collection cycles.", "unit": "seconds"}],
        "http_server_request_duration_seconds": [{"type": "histogram", "help": "Duration of HTTP server requests.", "unit": "seconds"}],
        "process_memory_usage_bytes": [{"type": "gauge", "help": "", "unit": "bytes"}],
        "prometheus_http_requests": [{"type": "counter", "help": "Counter of HTTP requests.", "unit": ""}],
        "queue_messages_total": [{"type": "counter", "help": "Messages sent.", "unit": ""}],
        "up": [
            {"type": "gauge", "help": "Whether the target is up.", "unit": ""},
            {"type": "gauge", "help": "1 if up.", "unit": ""},
        ],
    });
    assert_eq!(metadata(&p).await, expected);

    // (a) SIGKILL before any flush: the log replays it.
    p.kill9();
    let mut p = Pharos::start(dir.path());
    assert_eq!(metadata(&p).await, expected, "after SIGKILL");

    // (b) A flush deletes the segments that held it; a restart still knows it.
    let before = segments(&data);
    let said = force_flush(&p).await;
    assert!(said.starts_with("flushed "), "{said}");
    let after = segments(&data);
    assert!(
        before.is_disjoint(&after),
        "the old segments are gone: {before:?} -> {after:?}"
    );
    assert_eq!(metadata(&p).await, expected, "after the flush");
    p.kill9();
    let mut p = Pharos::start(dir.path());
    assert_eq!(metadata(&p).await, expected, "after a flush and SIGKILL");

    // Again, so that the segment holding the first checkpoint goes too; then a graceful
    // restart, which flushes once more on the way down.
    remote_write_ok(
        &p,
        &WriteRequest {
            timeseries: vec![],
            metadata: vec![md("late", MetricType::Info, "Arrived late.", "")],
        },
    )
    .await;
    let before = segments(&data);
    force_flush(&p).await;
    assert!(before.is_disjoint(&segments(&data)));
    let mut expected = expected;
    expected["late"] = json!([{"type": "info", "help": "Arrived late.", "unit": ""}]);
    assert!(p.terminate().success());
    let p = Pharos::start(dir.path());
    assert_eq!(
        metadata(&p).await,
        expected,
        "after a second flush and restart"
    );
    assert_eq!(
        get_json(&p.q("/api/v1/metadata?metric=up&limit_per_metric=1")).await["data"],
        json!({"up": [{"type": "gauge", "help": "Whether the target is up.", "unit": ""}]})
    );
}

/// A target exposing metadata lines in the Prometheus text format.
async fn exposition_server() -> String {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            "# HELP app_jobs_done_total Jobs done.\n# TYPE app_jobs_done_total counter\n\
             app_jobs_done_total{queue=\"fast\"} 42\n# TYPE app_temperature gauge\n\
             app_temperature 21.5\n# TYPE app_misc untyped\napp_misc 1\nno_metadata 2\n"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_metadata_is_served_and_durable() {
    let target = exposition_server().await;
    let dir = tempdir();
    let config_path = dir.path().join("scrape.yaml");
    let config = format!(
        r#"receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
  prometheus:
    config:
      scrape_configs:
        - job_name: app
          scrape_interval: 100ms
          scrape_timeout: 100ms
          static_configs:
            - targets: ["{target}"]
exporters:
  pharos:
service:
  pipelines:
    metrics:
      receivers: [otlp, prometheus]
      exporters: [pharos]
query:
  endpoint: 127.0.0.1:0
storage:
  path: {data}
"#,
        data = dir.path().join("data").display()
    );
    std::fs::write(&config_path, config).unwrap();
    let mut p = Pharos::start_config(dir.path(), &config_path);
    let expected = json!({
        "app_jobs_done_total": [{"type": "counter", "help": "Jobs done.", "unit": ""}],
        "app_misc": [{"type": "unknown", "help": "", "unit": ""}],
        "app_temperature": [{"type": "gauge", "help": "", "unit": ""}],
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while metadata(&p).await != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "scraped metadata not served within 20 s: {}\n{}",
            metadata(&p).await,
            p.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Every scrape hands the same metadata over again; it is logged once.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    p.kill9();
    let mut logged = Vec::new();
    let (wal, _) = pharos_storage::Wal::open(
        data_dir(&p).join("wal").join("metrics"),
        pharos_storage::WalOptions::default(),
        |record| {
            let rec = MetricsRecord::decode(record).unwrap();
            logged.extend(rec.metadata.into_iter().map(|m| m.metric_family_name));
        },
    )
    .unwrap();
    wal.close().await.unwrap();
    logged.sort();
    assert_eq!(
        logged,
        ["app_jobs_done_total", "app_misc", "app_temperature"],
        "each family's metadata is in the log once"
    );
    std::fs::write(
        &config_path,
        std::fs::read_to_string(&config_path)
            .unwrap()
            .replace(&target, "127.0.0.1:1"),
    )
    .unwrap();
    let p = Pharos::start_config(dir.path(), &config_path);
    assert_eq!(metadata(&p).await, expected, "after SIGKILL");
}

fn data_dir(p: &Pharos) -> std::path::PathBuf {
    p.dir.join("data")
}
