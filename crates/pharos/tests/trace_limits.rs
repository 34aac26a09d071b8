//! Per-trace limits and span validation in the real binary: an oversized trace is
//! cut with OTLP `partial_success` and a counter, its first spans are kept, and the
//! server stays healthy.

mod common;

use common::{Pharos, get_json, tempdir};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

const T0: u64 = 1_700_000_000_000_000_000;

fn span(trace: u8, id: u8, blob: usize) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
        name: format!("op-{id}"),
        kind: 1,
        start_time_unix_nano: T0 + u64::from(id) * 1_000_000,
        end_time_unix_nano: T0 + u64::from(id) * 1_000_000 + 500_000,
        attributes: vec![KeyValue {
            key: "blob".into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue("x".repeat(blob))),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    common::trace_request("big", spans)
}

async fn post(p: &Pharos, req: ExportTraceServiceRequest) -> ExportTraceServiceResponse {
    let r = reqwest::Client::new()
        .post(p.h("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap()
}

async fn span_names(p: &Pharos, trace: u8) -> Vec<String> {
    let body = get_json(&p.q(&format!("/api/traces/{}", hex(trace)))).await;
    body["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["scopeSpans"].as_array().unwrap())
        .flat_map(|s| s["spans"].as_array().unwrap())
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

fn hex(trace: u8) -> String {
    format!("{trace:02x}").repeat(16)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_traces_are_cut_and_malformed_spans_refused() {
    let dir = tempdir();
    let p = Pharos::start_with(
        dir.path(),
        "limits:\n  max_spans_per_trace: 5\n  max_bytes_per_trace: 20000\n",
    );

    // Eight spans of one trace: the first five are kept, three refused.
    let resp = post(&p, request((1..=8).map(|i| span(1, i, 10)).collect())).await;
    let ps = resp.partial_success.expect("partial_success");
    assert_eq!(ps.rejected_spans, 3);
    assert!(
        ps.error_message.contains("TRACE_TOO_LARGE")
            && ps.error_message.contains("max_spans_per_trace"),
        "{}",
        ps.error_message
    );
    assert_eq!(
        span_names(&p, 1).await,
        ["op-1", "op-2", "op-3", "op-4", "op-5"]
    );
    // The full trace takes no more spans in a later request.
    let ps = post(&p, request(vec![span(1, 9, 10)]))
        .await
        .partial_success
        .expect("partial_success");
    assert_eq!(ps.rejected_spans, 1);

    // Spans of about 6 kB: three fit in 20 000 bytes, the fourth does not.
    let ps = post(&p, request((1..=4).map(|i| span(2, i, 6000)).collect()))
        .await
        .partial_success
        .expect("partial_success");
    assert_eq!(ps.rejected_spans, 1);
    assert!(
        ps.error_message.contains("max_bytes_per_trace"),
        "{}",
        ps.error_message
    );
    assert_eq!(span_names(&p, 2).await, ["op-1", "op-2", "op-3"]);

    // Malformed spans: end before start, unknown kind; the good one is kept.
    let mut backwards = span(3, 1, 10);
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    let mut unknown_kind = span(3, 2, 10);
    unknown_kind.kind = 9;
    let ps = post(&p, request(vec![backwards, unknown_kind, span(3, 3, 10)]))
        .await
        .partial_success
        .expect("partial_success");
    assert_eq!(ps.rejected_spans, 2);
    assert!(
        ps.error_message.contains("end_time_unix_nano") && ps.error_message.contains("span kind"),
        "{}",
        ps.error_message
    );
    assert_eq!(span_names(&p, 3).await, ["op-3"]);

    // Healthy, and the refusals are counted.
    let r = reqwest::get(p.q("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let metrics = reqwest::get(p.q("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"pharos_traces_spans_refused_total{reason="trace_too_large"} 5"#),
        "{metrics}"
    );
    let tags = get_json(&p.q("/api/v2/search/tag/resource.service.name/values")).await;
    assert_eq!(
        tags["tagValues"],
        serde_json::json!([{"type": "string", "value": "big"}])
    );
}
