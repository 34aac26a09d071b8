//! Span metrics and the service graph: a two-service trace sent with the OpenTelemetry
//! SDK becomes `traces_spanmetrics_*` and `traces_service_graph_*` series, queryable
//! with PromQL, with exemplars that carry the trace id.

mod common;

use common::{Pharos, get_json_q, tempdir};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value as Json;
use std::time::{Duration, Instant};

fn provider(p: &Pharos, service: &str) -> SdkTracerProvider {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(p.h("/v1/traces"))
        .build()
        .unwrap();
    SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build()
}

/// Polls an instant query until it returns `want` series or 20 s pass.
async fn query(p: &Pharos, q: &str, want: usize) -> Vec<Json> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_json_q(&p.q("/api/v1/query"), &[("query", q)]).await;
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        if result.len() >= want || Instant::now() > deadline {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn value(series: &Json) -> f64 {
    series["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_two_service_trace_becomes_span_metrics_and_a_graph_edge() {
    let dir = tempdir();
    let pharos = Pharos::start_with(
        dir.path(),
        "connectors:\n  spanmetrics:\n    flush_interval: 200ms\n    dimensions: [http.route]\n  servicegraph:\n    wait: 1s\n",
    );
    let frontend = provider(&pharos, "frontend");
    let payments = provider(&pharos, "payments");
    let ft = frontend.tracer("test");
    let pt = payments.tracer("test");

    let root = ft
        .span_builder("GET /checkout")
        .with_kind(SpanKind::Server)
        .with_attributes(vec![KeyValue::new("http.route", "/checkout")])
        .start(&ft);
    let root_cx = Context::current_with_span(root);
    let call = ft
        .span_builder("POST /pay")
        .with_kind(SpanKind::Client)
        .start_with_context(&ft, &root_cx);
    let call_cx = root_cx.with_span(call);
    let mut serve = pt
        .span_builder("pay")
        .with_kind(SpanKind::Server)
        .start_with_context(&pt, &call_cx);
    serve.set_status(Status::error("declined"));
    serve.end();
    call_cx.span().end();
    let trace_id = root_cx.span().span_context().trace_id().to_string();
    root_cx.span().end();
    for p in [&frontend, &payments] {
        p.force_flush().unwrap();
        p.shutdown().unwrap();
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let calls = query(&pharos, "traces_spanmetrics_calls_total", 3).await;
        assert_eq!(calls.len(), 3, "{calls:?}\n{}", pharos.stderr());
        let pay = calls
            .iter()
            .find(|s| s["metric"]["service_name"] == "payments")
            .unwrap_or_else(|| panic!("{calls:?}"));
        assert_eq!(pay["metric"]["span_name"], "pay");
        assert_eq!(pay["metric"]["span_kind"], "SPAN_KIND_SERVER");
        assert_eq!(pay["metric"]["status_code"], "STATUS_CODE_ERROR");
        assert_eq!(value(pay), 1.0);
        let checkout = calls
            .iter()
            .find(|s| s["metric"]["span_name"] == "GET /checkout")
            .unwrap();
        assert_eq!(checkout["metric"]["http_route"], "/checkout");
        assert_eq!(checkout["metric"]["status_code"], "STATUS_CODE_UNSET");

        let count = query(
            &pharos,
            r#"sum(traces_spanmetrics_duration_seconds_bucket{service_name="frontend",le="+Inf"})"#,
            1,
        )
        .await;
        assert_eq!(value(&count[0]), 2.0, "{count:?}");
        let buckets = query(
            &pharos,
            r#"traces_spanmetrics_duration_seconds_bucket{span_name="pay"}"#,
            15,
        )
        .await;
        assert_eq!(buckets.len(), 15, "Tempo's 14 bounds and +Inf: {buckets:?}");
        assert!(buckets.iter().any(|b| b["metric"]["le"] == "16.384"));

        let edges = query(
            &pharos,
            r#"traces_service_graph_request_total{client="frontend"}"#,
            1,
        )
        .await;
        assert_eq!(edges.len(), 1, "{edges:?}");
        assert_eq!(edges[0]["metric"]["server"], "payments");
        assert_eq!(value(&edges[0]), 1.0);
        let failed = query(&pharos, "traces_service_graph_request_failed_total", 1).await;
        assert_eq!(failed[0]["metric"]["client"], "frontend");
        assert_eq!(value(&failed[0]), 1.0);
        for side in ["server", "client"] {
            let q = format!("traces_service_graph_request_{side}_seconds_count");
            let h = query(&pharos, &q, 1).await;
            assert_eq!(value(&h[0]), 1.0, "{q}: {h:?}");
        }
        // The root server span expires into an edge from the virtual client `user`.
        let user = query(
            &pharos,
            r#"traces_service_graph_request_total{client="user"}"#,
            1,
        )
        .await;
        assert_eq!(user.len(), 1, "{user:?}");
        assert_eq!(user[0]["metric"]["server"], "frontend");
        assert_eq!(user[0]["metric"]["connection_type"], "virtual_node");

        let ex = get_json_q(
            &pharos.q("/api/v1/query_exemplars"),
            &[
                ("query", "traces_spanmetrics_calls_total"),
                ("start", "0"),
                ("end", "9999999999"),
            ],
        )
        .await;
        let text = ex.to_string();
        assert!(text.contains(&trace_id), "{text}");
    });
}
