//! Bad input gets the documented OTLP error, and the server stays up with
//! everything it acknowledged before.

mod common;

use common::{Pharos, get_json, tempdir};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::io::Write;

fn span(trace_id: Vec<u8>, name: &str) -> Span {
    Span {
        trace_id,
        span_id: vec![7; 8],
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_500_000_000,
        attributes: vec![KeyValue {
            key: "marker".into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue("XXXX".into())),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn traces(spans: Vec<Span>) -> ExportTraceServiceRequest {
    common::trace_request("bad-input", spans)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

struct Reply {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: Vec<u8>,
}

async fn post(
    url: &str,
    content_type: Option<&str>,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut req = reqwest::Client::new().post(url).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(enc) = encoding {
        req = req.header("content-encoding", enc);
    }
    let resp = req.send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after");
    let status = resp.status().as_u16();
    Reply {
        status,
        content_type,
        retry_after,
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

/// A protobuf error body must be a google.rpc.Status with this code.
fn assert_status_proto(r: &Reply, http: u16, grpc_code: i32, needle: &str) {
    assert_eq!(r.status, http, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.content_type, "application/x-protobuf");
    let st = tonic_types::pb::Status::decode(&r.body[..]).expect("a google.rpc.Status body");
    assert_eq!(st.code, grpc_code);
    assert!(
        st.message.contains(needle),
        "{:?} lacks {needle:?}",
        st.message
    );
}

async fn assert_healthy(p: &Pharos, trace_hex: &str) {
    let r = reqwest::get(p.q("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    // What was acknowledged before is still there.
    let t = get_json(&p.q(&format!("/api/v2/traces/{trace_hex}"))).await;
    assert_eq!(
        t["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"],
        "acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bad_input_gets_documented_errors() {
    let dir = tempdir();
    let p = Pharos::start(dir.path());
    let url = p.h("/v1/traces");
    let good = traces(vec![span(vec![0xab; 16], "acknowledged")]).encode_to_vec();
    let ok = post(&url, Some("application/x-protobuf"), None, good.clone()).await;
    assert_eq!(ok.status, 200);
    assert!(
        ok.body.is_empty(),
        "full success is an empty ExportTraceServiceResponse"
    );
    let hex = "ab".repeat(16);

    // Garbage and truncated protobuf.
    let r = post(
        &url,
        Some("application/x-protobuf"),
        None,
        vec![0xff, 0xff, 0xff, 0xff, 0x0f],
    )
    .await;
    assert_status_proto(&r, 400, 3, "cannot decode protobuf");
    let r = post(
        &url,
        Some("application/x-protobuf"),
        None,
        good[..good.len() / 2].to_vec(),
    )
    .await;
    assert_status_proto(&r, 400, 3, "cannot decode protobuf");
    assert_healthy(&p, &hex).await;

    // Wrong content type.
    let r = post(&url, Some("text/plain"), None, good.clone()).await;
    assert_eq!(r.status, 415);
    let r = post(&url, None, None, good.clone()).await;
    assert_eq!(r.status, 415);

    // Oversized: plain, and a gzip bomb that is small on the wire.
    let r = post(&url, Some("application/x-protobuf"), None, vec![0; 2 << 20]).await;
    assert_status_proto(&r, 413, 8, "larger than the limit");
    let bomb = gzip(&vec![0u8; 8 << 20]);
    assert!(bomb.len() < 1 << 20);
    let r = post(&url, Some("application/x-protobuf"), Some("gzip"), bomb).await;
    assert_status_proto(&r, 413, 8, "larger than the limit");
    let r = post(
        &url,
        Some("application/x-protobuf"),
        Some("gzip"),
        b"not gzip at all".to_vec(),
    )
    .await;
    assert_status_proto(&r, 400, 3, "cannot decompress");
    let r = post(
        &url,
        Some("application/x-protobuf"),
        Some("br"),
        good.clone(),
    )
    .await;
    assert_status_proto(&r, 400, 3, "unsupported content encoding");

    // gzip of a good body works.
    let r = post(
        &url,
        Some("application/x-protobuf"),
        Some("gzip"),
        gzip(&good),
    )
    .await;
    assert_eq!(r.status, 200);

    // Invalid UTF-8 in an attribute string: protobuf strings must be UTF-8.
    let mut bad_utf8 = traces(vec![span(vec![0xcd; 16], "bad-utf8")]).encode_to_vec();
    let at = bad_utf8.windows(4).position(|w| w == b"XXXX").unwrap();
    bad_utf8[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
    let r = post(&url, Some("application/x-protobuf"), None, bad_utf8).await;
    assert_status_proto(&r, 400, 3, "cannot decode protobuf");
    let r = post(
        &url,
        Some("application/json"),
        None,
        b"{\"resourceSpans\":[{\"x\":\"\xff\xfe\"}]}".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.content_type, "application/json");
    let st: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(st["code"], 3);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot decode JSON body"),
        "{st}"
    );

    // Malformed JSON and JSON of the wrong shape.
    for body in [
        &b"{"[..],
        b"[]",
        b"{\"resourceSpans\":{}}",
        b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"zz\"}]}]}]}",
    ] {
        let r = post(&url, Some("application/json"), None, body.to_vec()).await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
    }

    // Empty requests succeed and store nothing.
    let r = post(&url, Some("application/x-protobuf"), None, vec![]).await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    let r = post(&url, Some("application/json"), None, b"{}".to_vec()).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));

    // A trace id of the wrong length: that span alone is rejected, as partial success.
    let mixed = traces(vec![
        span(vec![1; 15], "short-id"),
        span(vec![0xef; 16], "fine"),
    ]);
    let r = post(
        &url,
        Some("application/x-protobuf"),
        None,
        mixed.encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200);
    let resp = ExportTraceServiceResponse::decode(&r.body[..]).unwrap();
    let ps = resp.partial_success.expect("partial_success");
    assert_eq!(ps.rejected_spans, 1);
    assert!(
        ps.error_message.contains("trace_id must be 16 bytes"),
        "{}",
        ps.error_message
    );
    get_json(&p.q(&format!("/api/v2/traces/{}", "ef".repeat(16)))).await;
    let json = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{}","spanId":"0707070707070707","name":"short"}},{{"traceId":"{}","spanId":"0707070707070707","name":"ok"}}]}}]}}]}}"#,
        "01".repeat(15),
        "02".repeat(16)
    );
    let r = post(&url, Some("application/json"), None, json.into_bytes()).await;
    assert_eq!(r.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "1");

    // Only POST.
    let r = reqwest::get(p.h("/v1/traces")).await.unwrap();
    assert_eq!(r.status(), 405);

    assert_healthy(&p, &hex).await;
    let metrics = reqwest::get(p.q("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"pharos_receiver_refused_items_total{receiver="otlp_http",signal="traces",reason="invalid"} 2"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bad_input_gets_documented_errors() {
    let dir = tempdir();
    let p = Pharos::start(dir.path());
    let mut client = TraceServiceClient::connect(p.grpc_url()).await.unwrap();
    client
        .export(traces(vec![span(vec![0xab; 16], "acknowledged")]))
        .await
        .unwrap();

    // Partial success for an id of the wrong length.
    let resp = client
        .export(traces(vec![
            span(vec![1; 17], "long-id"),
            span(vec![0; 16], "zero-id"),
            span(vec![3; 16], "ok"),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success.unwrap().rejected_spans, 2);

    // Empty request.
    let resp = client
        .export(ExportTraceServiceRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(resp.partial_success.is_none());

    // Above max_recv_msg_size_mib (4 MiB by default).
    let mut big = span(vec![4; 16], "big");
    big.name = "x".repeat(5 << 20);
    let err = client.export(traces(vec![big])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");

    // gzip works.
    let mut gz = TraceServiceClient::connect(p.grpc_url())
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    gz.export(traces(vec![span(vec![5; 16], "gzipped")]))
        .await
        .unwrap();
    get_json(&p.q(&format!("/api/v2/traces/{}", "05".repeat(16)))).await;

    assert_healthy(&p, &"ab".repeat(16)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_memory_limit_requests_are_refused_retryably() {
    let dir = tempdir();
    let p = Pharos::start_with(
        dir.path(),
        "processors:\n  memory_limiter:\n    limit_mib: 96\n    check_interval: 20ms\n  batch:\n",
    );
    // Just under the 256 KiB line limit.
    let line = "y".repeat(250 << 10);
    let logs = |i: usize| ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(format!("{i} {line}"))),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut accepted = 0;
    let mut refused = None;
    // 2000 requests of 250 KiB each are 488 MiB: far past 96 MiB of resident memory.
    for i in 0..2000 {
        let r = post(
            &p.h("/v1/logs"),
            Some("application/x-protobuf"),
            None,
            logs(i).encode_to_vec(),
        )
        .await;
        if r.status == 200 {
            accepted += 1;
        } else {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("a 96 MiB limit must refuse 500 MiB of logs");
    assert!(accepted >= 1, "the first requests fit");
    assert_status_proto(&r, 429, 8, "memory limit exceeded");
    assert_eq!(r.retry_after.as_deref(), Some("5"));

    // Memory is sampled every 20 ms and may dip under the limit as request buffers are
    // freed, so the gRPC path too is pushed until it refuses; what it accepts counts.
    let mut client = LogsServiceClient::connect(p.grpc_url()).await.unwrap();
    let mut grpc_refused = None;
    for i in 0..2000 {
        match client.export(logs(2000 + i)).await {
            Ok(_) => accepted += 1,
            Err(e) => {
                grpc_refused = Some(e);
                break;
            }
        }
    }
    let err = grpc_refused.expect("gRPC past the memory limit must be refused too");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    use tonic_types::StatusExt;
    let retry = err.get_details_retry_info().expect("RetryInfo detail");
    assert_eq!(retry.retry_delay, Some(std::time::Duration::from_secs(5)));

    // Everything acknowledged is still readable.
    let all = common::get_json_q(
        &p.q("/loki/api/v1/query_range"),
        &[
            ("query", r#"{service_name="unknown_service"}"#),
            ("limit", "5000"),
            ("start", "1699999999"),
            ("end", "1700000001"),
        ],
    )
    .await;
    let n: usize = all["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_without_a_pipeline_is_refused_for_good() {
    let dir = tempdir();
    let p = Pharos::start_with(
        dir.path(),
        "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [pharos]\n",
    );
    let body = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default()],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let r = post(
        &p.h("/v1/logs"),
        Some("application/x-protobuf"),
        None,
        body.encode_to_vec(),
    )
    .await;
    assert_status_proto(&r, 404, 12, "no logs pipeline");
    assert_eq!(r.retry_after, None, "retrying cannot help");
    let mut client = LogsServiceClient::connect(p.grpc_url()).await.unwrap();
    let err = client.export(body).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    // Traces still flow.
    let r = post(
        &p.h("/v1/traces"),
        Some("application/x-protobuf"),
        None,
        traces(vec![span(vec![0xab; 16], "acknowledged")]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_healthy(&p, &"ab".repeat(16)).await;
}
