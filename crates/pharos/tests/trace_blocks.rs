//! Trace blocks end to end: multi-service traces sent with the OpenTelemetry SDK (context
//! propagated from service to service) are written to blocks, the log behind them is
//! freed, and every query API answers from the blocks as from the head, across restarts,
//! a SIGKILL, and spans of one trace that arrive after its first part was flushed.

mod common;

use common::{Pharos, force_flush, get_json, get_json_q, tempdir};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value as Json;

fn provider(p: &Pharos, service: &str) -> SdkTracerProvider {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(p.h("/v1/traces"))
        .build()
        .unwrap();
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build()
}

/// Sends `n` traces frontend → checkout → payment (every third payment fails); returns
/// their ids in hex.
fn send_traces(p: &Pharos, n: usize, tag: &str) -> Vec<String> {
    let services = ["frontend", "checkout", "payment"].map(|s| provider(p, s));
    let tracers: Vec<_> = services.iter().map(|p| p.tracer("shop")).collect();
    let mut ids = Vec::new();
    for i in 0..n {
        let root = tracers[0]
            .span_builder("GET /checkout")
            .with_kind(SpanKind::Server)
            .with_attributes(vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/checkout"),
                KeyValue::new("batch", tag.to_string()),
            ])
            .start(&tracers[0]);
        let cx = Context::current_with_span(root);
        let call = tracers[0]
            .span_builder("POST /orders")
            .with_kind(SpanKind::Client)
            .start_with_context(&tracers[0], &cx);
        let call_cx = cx.with_span(call);
        // The checkout service continues the propagated context.
        let serve = tracers[1]
            .span_builder("place order")
            .with_kind(SpanKind::Server)
            .with_attributes(vec![KeyValue::new("order.id", format!("o-{i}"))])
            .start_with_context(&tracers[1], &call_cx);
        let serve_cx = call_cx.with_span(serve);
        let pay = tracers[1]
            .span_builder("charge")
            .with_kind(SpanKind::Client)
            .start_with_context(&tracers[1], &serve_cx);
        let pay_cx = serve_cx.with_span(pay);
        let charge = tracers[2]
            .span_builder("Charge")
            .with_kind(SpanKind::Server)
            .with_attributes(vec![KeyValue::new("rpc.method", "Charge")])
            .start_with_context(&tracers[2], &pay_cx);
        let charge_cx = pay_cx.with_span(charge);
        if i % 3 == 0 {
            charge_cx.span().set_status(Status::error("card declined"));
        }
        charge_cx.span().end();
        pay_cx.span().end();
        serve_cx.span().end();
        call_cx.span().end();
        ids.push(cx.span().span_context().trace_id().to_string());
        cx.span().end();
    }
    for s in services {
        s.force_flush().unwrap();
        s.shutdown().unwrap();
    }
    ids
}

async fn span_count(p: &Pharos, id: &str) -> usize {
    let v = get_json(&p.q(&format!("/api/traces/{id}"))).await;
    v["batches"]
        .as_array()
        .map(|b| {
            b.iter()
                .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
                .map(|ss| ss["spans"].as_array().unwrap().len())
                .sum()
        })
        .unwrap_or(0)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// Everything the query APIs say about the traces, to compare before and after.
async fn answers(p: &Pharos, ids: &[String]) -> Vec<Json> {
    let mut out = Vec::new();
    for id in ids {
        out.push(get_json(&p.q(&format!("/api/traces/{id}"))).await);
        out.push(get_json(&p.q(&format!("/jaeger/api/traces/{id}"))).await);
    }
    out.push(get_json(&p.q("/jaeger/api/services")).await);
    out.push(get_json(&p.q("/jaeger/api/services/checkout/operations")).await);
    out.push(
        get_json_q(
            &p.q("/jaeger/api/traces"),
            &[
                ("service", "payment"),
                ("tags", r#"{"error":"true"}"#),
                ("limit", "100"),
                ("lookback", "1h"),
            ],
        )
        .await["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].clone())
            .collect(),
    );
    let mut search = get_json_q(
        &p.q("/api/search"),
        &[("q", r#"{ resource.service.name = "payment" && status = error } << { span.http.route = "/checkout" }"#), ("limit", "100")],
    )
    .await;
    // How much was inspected differs between head and blocks; the hits must not.
    search["metrics"] = Json::Null;
    out.push(search);
    out.push(get_json_q(&p.q("/api/v2/search/tag/span.order.id/values"), &[]).await);
    out
}

/// Asserts two answer lists are equal, naming the first that differs.
#[track_caller]
fn assert_same(got: &[Json], want: &[Json]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g == w, "answer {i} differs:\n got {g}\nwant {w}");
    }
}

#[test]
fn traces_flushed_to_blocks_answer_as_from_the_head_across_restarts_and_kill9() {
    let dir = tempdir();
    let mut pharos = Pharos::start(dir.path());
    let ids = send_traces(&pharos, 30, "first");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = dir.path().join("data");
    rt.block_on(async {
        for id in &ids {
            assert_eq!(span_count(&pharos, id).await, 5, "{}", pharos.stderr());
        }
        let before = answers(&pharos, &ids).await;
        let errors = before[ids.len() * 2 + 2].as_array().unwrap().len();
        assert_eq!(errors, 10, "every third trace failed");
        assert_eq!(
            before[ids.len() * 2 + 3]["traces"]
                .as_array()
                .unwrap()
                .len(),
            10
        );

        let wal_before = dir_bytes(&data.join("wal").join("traces"));
        let said = force_flush(&pharos).await;
        assert!(said.contains("flushed 150 spans into 1 blocks"), "{said}");
        assert!(dir_bytes(&data.join("blocks").join("traces")) > 0);
        let wal_after = dir_bytes(&data.join("wal").join("traces"));
        assert!(
            wal_after < wal_before,
            "log freed: {wal_before} -> {wal_after}"
        );
        let from_blocks = answers(&pharos, &ids).await;
        assert_same(&from_blocks, &before);

        // Self-metrics count the block.
        let m = reqwest::get(pharos.q("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(m.contains(r#"pharos_blocks{signal="traces"} 1"#), "{m}");
    });

    // A restart serves the blocks.
    pharos.terminate();
    let mut pharos = Pharos::start(dir.path());
    rt.block_on(async {
        for id in &ids {
            assert_eq!(span_count(&pharos, id).await, 5);
        }
    });

    // More traces, acknowledged, then SIGKILL before any flush: the log replays them
    // beside the blocks.
    let more = send_traces(&pharos, 5, "second");
    pharos.kill9();
    let pharos = Pharos::start(dir.path());
    rt.block_on(async {
        for id in ids.iter().chain(&more) {
            assert_eq!(span_count(&pharos, id).await, 5, "{id}");
        }
        let v = get_json(&pharos.q("/jaeger/api/services")).await;
        assert_eq!(
            v["data"],
            serde_json::json!(["checkout", "frontend", "payment"])
        );
    });
}

#[test]
fn a_trace_whose_spans_arrive_after_a_flush_is_whole_and_compaction_joins_it() {
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message;
    let dir = tempdir();
    // Windows of one second, over two seconds after their end: the two blocks below are
    // merged by the next maintenance pass once that has passed.
    let pharos = Pharos::start_with(
        dir.path(),
        "  traces:\n    compaction_window: 1s\n    max_block_duration: 1s\n",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let span = |id: u8, parent: Option<u8>, name: &str| Span {
        trace_id: vec![7u8; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: now - 1_000_000_000 + u64::from(id) * 1000,
        end_time_unix_nano: now - 500_000_000,
        ..Default::default()
    };
    let send =
        |req: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest| {
            let url = pharos.h("/v1/traces");
            async move {
                let resp = reqwest::Client::new()
                    .post(url)
                    .header("content-type", "application/x-protobuf")
                    .body(req.encode_to_vec())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
            }
        };
    let blocks = || async {
        let m = reqwest::get(pharos.q("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        m.lines()
            .find_map(|l| l.strip_prefix(r#"pharos_blocks{signal="traces"} "#))
            .map_or(0, |v| v.parse::<u64>().unwrap())
    };
    rt.block_on(async {
        let id = "07".repeat(16);
        send(common::trace_request("edge", vec![span(1, None, "GET /")])).await;
        force_flush(&pharos).await;
        assert_eq!(blocks().await, 1);
        // The rest of the trace, from another service, after the first part is in a block.
        send(common::trace_request(
            "api",
            vec![span(2, Some(1), "handle"), span(3, Some(2), "query")],
        ))
        .await;
        assert_eq!(span_count(&pharos, &id).await, 3, "head and block joined");
        force_flush(&pharos).await;
        assert_eq!(span_count(&pharos, &id).await, 3, "blocks joined");
        // Compaction merges the two blocks (its window is over three seconds on).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let said = force_flush(&pharos).await;
            if blocks().await == 1 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{said}");
        }
        assert_eq!(span_count(&pharos, &id).await, 3, "one merged block");
        let deps = get_json_q(
            &pharos.q("/jaeger/api/dependencies"),
            &[
                ("endTs", &(now / 1_000_000 + 60_000).to_string()),
                ("lookback", "3600000"),
            ],
        )
        .await;
        assert_eq!(
            deps["data"],
            serde_json::json!([{"parent": "edge", "child": "api", "callCount": 1}]),
            "the parent is in the same trace once merged"
        );
    });
}
