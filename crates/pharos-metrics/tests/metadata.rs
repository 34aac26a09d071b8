//! Metric metadata from remote_write and from scrapes, read back through
//! `/api/v1/metadata`: the remote_write route over a sink that does what the binary's
//! ingest path does (sanitize, log, apply), and the scrape manager against a tiny axum
//! endpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::routing::get;
use http::Request;
use parking_lot::Mutex;
use pharos_metrics::MetricsStore;
use pharos_metrics::remote_write::proto::{
    Label, MetricMetadata, MetricType, Sample, TimeSeries, WriteRequest,
};
use pharos_metrics::remote_write::{WriteError, WriteSink, encode};
use pharos_metrics::scrape::{ScrapeConfig, ScrapeManager, ScrapePool, TargetGroup};
use pharos_metrics::store::record::MetricsRecord;
use pharos_model::telemetry::SelfMetrics;
use pharos_model::{ItemCount, Rejected, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The binary's ingest path without the log: sanitize, keep the record, apply.
struct Sink {
    store: Arc<MetricsStore>,
    logged: Mutex<Vec<MetricsRecord>>,
}

impl WriteSink for Sink {
    async fn write(&self, req: WriteRequest) -> Result<Rejected, WriteError> {
        let mut rec = MetricsRecord::from_write_request(req);
        let rejected = self.store.sanitize(&mut rec);
        if rec.item_count() > 0 {
            self.store.apply(&rec);
            self.logged.lock().push(rec);
        }
        Ok(rejected)
    }
}

fn md(name: &str, kind: MetricType, help: &str, unit: &str) -> MetricMetadata {
    MetricMetadata {
        r#type: kind as i32,
        metric_family_name: name.into(),
        help: help.into(),
        unit: unit.into(),
    }
}

async fn post(app: &Router, req: &WriteRequest) -> u16 {
    let resp = app
        .clone()
        .oneshot(
            Request::post("/api/v1/write")
                .header("content-type", "application/x-protobuf")
                .header("content-encoding", "snappy")
                .body(Body::from(encode(req)))
                .unwrap(),
        )
        .await
        .unwrap();
    resp.status().as_u16()
}

async fn metadata(store: &Arc<MetricsStore>, query: &str) -> Value {
    let resp = pharos_metrics::api::router(store.clone())
        .oneshot(
            Request::get(format!("/api/v1/metadata{query}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "success", "{v}");
    v["data"].clone()
}

#[tokio::test]
async fn remote_write_metadata_is_stored_and_served() {
    let store = Arc::new(MetricsStore::new());
    let sink = Arc::new(Sink {
        store: store.clone(),
        logged: Mutex::new(Vec::new()),
    });
    let app =
        pharos_metrics::remote_write::router(sink.clone(), Arc::new(SelfMetrics::new()), 1 << 20);
    // A metadata-only request, as Prometheus sends every minute: 204, and stored.
    let only_metadata = WriteRequest {
        timeseries: vec![],
        metadata: vec![
            md("up", MetricType::Gauge, "Whether the target is up.", ""),
            md("http_requests", MetricType::Counter, "Requests.", ""),
            md(
                "rpc_duration_seconds",
                MetricType::Histogram,
                "RPC latency.",
                "seconds",
            ),
            md("", MetricType::Gauge, "dropped: no family name", ""),
        ],
    };
    assert_eq!(post(&app, &only_metadata).await, 204);
    assert_eq!(sink.logged.lock().len(), 1);
    assert_eq!(sink.logged.lock()[0].metadata.len(), 3);
    let all = json!({
        "http_requests": [{"type": "counter", "help": "Requests.", "unit": ""}],
        "rpc_duration_seconds": [{"type": "histogram", "help": "RPC latency.", "unit": "seconds"}],
        "up": [{"type": "gauge", "help": "Whether the target is up.", "unit": ""}],
    });
    assert_eq!(metadata(&store, "").await, all);
    // The same metadata a minute later: accepted, nothing new to log.
    assert_eq!(post(&app, &only_metadata).await, 204);
    assert_eq!(sink.logged.lock().len(), 1, "a repeat is not logged again");
    // Series and a changed help text in one request: both kept.
    let both = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![Label::new("__name__", "up"), Label::new("job", "j")],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 1_700_000_000_000,
            }],
            ..Default::default()
        }],
        metadata: vec![md("up", MetricType::Gauge, "Up, reworded.", "")],
    };
    assert_eq!(post(&app, &both).await, 204);
    assert_eq!(
        metadata(&store, "?metric=up").await,
        json!({"up": [
            {"type": "gauge", "help": "Whether the target is up.", "unit": ""},
            {"type": "gauge", "help": "Up, reworded.", "unit": ""},
        ]})
    );
    assert_eq!(
        metadata(&store, "?metric=up&limit_per_metric=1").await,
        json!({"up": [{"type": "gauge", "help": "Whether the target is up.", "unit": ""}]})
    );
    assert_eq!(
        metadata(&store, "?limit=1")
            .await
            .as_object()
            .unwrap()
            .len(),
        1
    );
}

const OPENMETRICS: &str = "\
# TYPE http_requests counter
# HELP http_requests Requests \\\"served\\\".
# UNIT http_requests requests
http_requests_total{path=\"/\"} 5
# TYPE temperature_celsius gauge
# UNIT temperature_celsius celsius
temperature_celsius 21.5
# HELP only_help Help without a type.
only_help 1
no_metadata 3
# EOF
";

async fn serve(body: &'static str) -> String {
    let app = Router::new().route(
        "/metrics",
        get(move || async move {
            (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                body,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_type_help_and_unit_lines_are_stored() {
    let addr = serve(OPENMETRICS).await;
    let store = Arc::new(MetricsStore::new());
    let manager = ScrapeManager::new(store.clone()).with_metadata_sink(store.clone());
    let mut config = ScrapeConfig::new("app");
    config.scrape_interval = Duration::from_millis(100);
    config.scrape_timeout = Duration::from_millis(90);
    manager.start(vec![ScrapePool {
        config,
        static_configs: vec![TargetGroup {
            targets: vec![addr],
            labels: Default::default(),
        }],
        file_sd_configs: Vec::new(),
    }]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.metadata().is_empty() {
        assert!(Instant::now() < deadline, "no metadata after 5s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let a few more scrapes hand the same metadata over again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    manager.stop().await;
    assert_eq!(
        metadata(&store, "").await,
        json!({
            "http_requests": [{"type": "counter", "help": "Requests \"served\".", "unit": "requests"}],
            "only_help": [{"type": "unknown", "help": "Help without a type.", "unit": ""}],
            "temperature_celsius": [{"type": "gauge", "help": "", "unit": "celsius"}],
        })
    );
}
