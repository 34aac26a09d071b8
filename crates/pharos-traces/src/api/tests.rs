//! Router tests: real requests through `oneshot` against a small in-memory store.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use http::{Request, StatusCode, header};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{Status, TracesData};
use pharos_model::Store;
use prost::Message;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::store::tests::{T0, kv, request, s, span, tid};

fn store() -> Arc<TraceStore> {
    let store = TraceStore::new();
    let mut root = span(1, 1, None, "GET /", 0, 100);
    root.attributes.push(kv(
        "http.status_code",
        opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(500),
    ));
    root.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    root.events.push(Event {
        time_unix_nano: (T0 * 1_000 + 5) * 1_000_000,
        name: "exception".into(),
        attributes: vec![kv("exception.message", s("bad"))],
        dropped_attributes_count: 0,
    });
    let mut child = span(1, 2, Some(1), "SELECT", 10, 20);
    child.kind = 3;
    child.links.push(Link {
        trace_id: tid(9).to_vec(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0, 9],
        ..Default::default()
    });
    store.apply(&request(Some("api"), "lib", vec![root]));
    store.apply(&request(Some("db"), "lib", vec![child]));
    store.apply(&request(
        Some("api"),
        "lib",
        vec![span(2, 1, None, "GET /health", 1_000, 1)],
    ));
    Arc::new(store)
}

async fn get(uri: &str, accept: Option<&str>) -> (StatusCode, Option<String>, Vec<u8>) {
    let mut req = Request::get(uri);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let resp = router(store())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string());
    (
        status,
        ct,
        to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
}

async fn get_json(uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = get(uri, None).await;
    (
        status,
        serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{uri}: not JSON: {body:?}")),
    )
}

const TRACE1: &str = "00000000000000000000000000000001";

#[tokio::test]
async fn tempo_v1_returns_otlp_json_batches() {
    let (status, body) = get_json(&format!("/api/traces/{TRACE1}")).await;
    assert_eq!(status, StatusCode::OK);
    let batches = body["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2);
    let res = &batches[0]["resource"]["attributes"];
    assert_eq!(
        res[0],
        json!({"key": "service.name", "value": {"stringValue": "api"}})
    );
    let sp = &batches[0]["scopeSpans"][0]["spans"][0];
    assert_eq!(batches[0]["scopeSpans"][0]["scope"]["name"], "lib");
    assert_eq!(sp["traceId"], TRACE1);
    assert_eq!(sp["spanId"], "0000000000000001");
    assert_eq!(sp["name"], "GET /");
    assert_eq!(sp["kind"], 2);
    assert_eq!(sp["startTimeUnixNano"], format!("{}", T0 * 1_000_000_000));
    assert_eq!(
        sp["endTimeUnixNano"],
        format!("{}", T0 * 1_000_000_000 + 100_000_000)
    );
    assert_eq!(
        sp["attributes"][0],
        json!({"key": "http.status_code", "value": {"intValue": "500"}})
    );
    assert_eq!(sp["status"]["code"], 2);
    let child = &batches[1]["scopeSpans"][0]["spans"][0];
    assert_eq!(child["parentSpanId"], "0000000000000001");
    assert_eq!(
        batches[1]["resource"]["attributes"][0]["value"]["stringValue"],
        "db"
    );
}

#[tokio::test]
async fn tempo_v2_wraps_resource_spans_and_pads_short_ids() {
    let (status, body) = get_json("/api/v2/traces/1").await;
    assert_eq!(status, StatusCode::OK);
    let rs = body["trace"]["resourceSpans"].as_array().unwrap();
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0]["scopeSpans"][0]["spans"][0]["traceId"], TRACE1);
}

#[tokio::test]
async fn tempo_not_found_and_bad_ids() {
    let (status, ct, body) = get("/api/traces/ff", None).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::NOT_FOUND, &b"trace not found"[..])
    );
    assert!(ct.unwrap().starts_with("text/plain"));
    let (status, _, body) = get("/api/traces/xyz", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("invalid character 'x' at position 1")
    );
    let (status, _, _) = get(&format!("/api/v2/traces/{TRACE1}00"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tempo_start_end_filter() {
    let inside = format!("/api/traces/1?start={}&end={}", T0 - 10, T0 + 10);
    assert_eq!(get(&inside, None).await.0, StatusCode::OK);
    let before = format!("/api/traces/1?start={}&end={}", T0 - 10, T0 - 5);
    assert_eq!(get(&before, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get("/api/traces/1?start=abc", None).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn tempo_protobuf_is_traces_data() {
    let (status, ct, body) = get("/api/traces/1", Some("application/protobuf")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("application/protobuf"));
    let td = TracesData::decode(body.as_slice()).unwrap();
    assert_eq!(td.resource_spans.len(), 2);
    assert_eq!(td.resource_spans[1].scope_spans[0].spans[0].name, "SELECT");
}

#[tokio::test]
async fn jaeger_services_and_operations() {
    let (_, body) = get_json("/jaeger/api/services").await;
    assert_eq!(
        body,
        json!({"data": ["api", "db"], "total": 2, "limit": 0, "offset": 0, "errors": null})
    );
    let (_, body) = get_json("/jaeger/api/services/api/operations").await;
    assert_eq!(body["data"], json!(["GET /", "GET /health"]));
    let (_, body) = get_json("/jaeger/api/operations?service=db").await;
    assert_eq!(
        body["data"],
        json!([{"name": "SELECT", "spanKind": "client"}])
    );
    let (_, body) = get_json("/jaeger/api/operations?service=db&spanKind=server").await;
    assert_eq!(body["data"], json!([]));
    let (status, body) = get_json("/jaeger/api/operations").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["code"], 400);
}

#[tokio::test]
async fn jaeger_trace_maps_otlp_like_the_collector() {
    let (status, body) = get_json(&format!("/jaeger/api/traces/{TRACE1}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 0);
    assert_eq!(body["errors"], Value::Null);
    let t = &body["data"][0];
    assert_eq!(t["traceID"], "0000000000000001");
    assert_eq!(t["processes"]["p1"]["serviceName"], "api");
    assert_eq!(
        t["processes"]["p1"]["tags"],
        json!([{"key": "host.name", "type": "string", "value": "h1"}])
    );
    assert_eq!(t["processes"]["p2"]["serviceName"], "db");
    let root = &t["spans"][0];
    assert_eq!(root["spanID"], "0000000000000001");
    assert_eq!(root["operationName"], "GET /");
    assert_eq!(root["references"], json!([]));
    assert_eq!(root["startTime"], T0 * 1_000_000);
    assert_eq!(root["duration"], 100_000);
    assert_eq!(root["processID"], "p1");
    assert_eq!(root["flags"], 1);
    let tags = root["tags"].as_array().unwrap();
    let tag = |k: &str| {
        tags.iter()
            .find(|t| t["key"] == k)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        tag("http.status_code"),
        json!({"key": "http.status_code", "type": "int64", "value": 500})
    );
    assert_eq!(tag("span.kind")["value"], "server");
    assert_eq!(
        tag("error"),
        json!({"key": "error", "type": "bool", "value": true})
    );
    assert_eq!(tag("otel.status_code")["value"], "ERROR");
    assert_eq!(tag("otel.status_description")["value"], "boom");
    assert_eq!(tag("otel.scope.name")["value"], "lib");
    assert_eq!(tag("otel.scope.version")["value"], "1.0");
    assert_eq!(
        root["logs"],
        json!([{"timestamp": T0 * 1_000_000 + 5_000, "fields": [
            {"key": "event", "type": "string", "value": "exception"},
            {"key": "exception.message", "type": "string", "value": "bad"},
        ]}])
    );
    let child = &t["spans"][1];
    assert_eq!(child["processID"], "p2");
    assert_eq!(
        child["references"],
        json!([
            {"refType": "CHILD_OF", "traceID": "0000000000000001", "spanID": "0000000000000001"},
            {"refType": "FOLLOWS_FROM", "traceID": "0000000000000009", "spanID": "0000000000000009"},
        ])
    );
}

#[tokio::test]
async fn jaeger_trace_not_found_and_bad_id() {
    let (status, body) = get_json("/jaeger/api/traces/abc").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"data": null, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": 404, "msg": "trace not found"}]})
    );
    let (status, body) = get_json("/jaeger/api/traces/zz").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["code"], 400);
}

#[tokio::test]
async fn jaeger_search() {
    let ids = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, body) = get_json("/jaeger/api/traces?service=api").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body), ["0000000000000002", "0000000000000001"]);
    let (_, body) = get_json("/jaeger/api/traces?service=api&limit=1").await;
    assert_eq!(ids(&body), ["0000000000000002"]);
    let (_, body) = get_json("/jaeger/api/traces?service=api&operation=GET%20%2F").await;
    assert_eq!(ids(&body), ["0000000000000001"]);
    let (_, body) = get_json("/jaeger/api/traces?service=api&minDuration=50ms").await;
    assert_eq!(ids(&body), ["0000000000000001"]);
    let (_, body) = get_json("/jaeger/api/traces?service=api&maxDuration=2ms").await;
    assert_eq!(ids(&body), ["0000000000000002"]);
    let tags = "%7B%22http.status_code%22%3A%22500%22%7D"; // {"http.status_code":"500"}
    let (_, body) = get_json(&format!("/jaeger/api/traces?service=api&tags={tags}")).await;
    assert_eq!(ids(&body), ["0000000000000001"]);
    let window = format!(
        "start={}&end={}",
        (T0 + 1) * 1_000_000,
        (T0 + 2) * 1_000_000
    );
    let (_, body) = get_json(&format!("/jaeger/api/traces?service=api&{window}")).await;
    assert_eq!(ids(&body), ["0000000000000002"]);
    let (status, _) = get_json("/jaeger/api/traces?service=api&minDuration=fast").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get_json("/jaeger/api/traces").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[test]
fn trace_ids_parse_like_tempo() {
    assert_eq!(parse_trace_id("1").unwrap(), tid(1));
    assert_eq!(
        parse_trace_id("0000000000000000000000000000000A").unwrap()[15],
        10
    );
    assert!(parse_trace_id("").is_err());
    assert!(parse_trace_id("g").unwrap_err().contains("position 1"));
    assert_eq!(
        parse_trace_id(&"1".repeat(33)).unwrap_err(),
        "trace IDs can't be larger than 128 bits"
    );
}

#[test]
fn go_durations() {
    use super::jaeger::parse_go_duration;
    assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
    assert_eq!(parse_go_duration("100ms"), Some(100_000_000));
    assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
    assert_eq!(parse_go_duration("10us"), Some(10_000));
    assert_eq!(parse_go_duration("10"), None);
    assert_eq!(parse_go_duration(""), None);
}

#[tokio::test]
async fn tempo_echo_and_buildinfo() {
    let (status, ct, body) = get("/api/echo", None).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"echo"[..]));
    assert!(ct.unwrap().starts_with("text/plain"));
    let (status, body) = get_json("/api/status/buildinfo").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    for key in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(body[key].is_string(), "{key} in {body}");
    }
}

#[tokio::test]
async fn tempo_search_tags_v1_and_v2() {
    let (status, body) = get_json("/api/search/tags").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["tagNames"],
        json!(["host.name", "http.status_code", "service.name"])
    );
    assert!(body["metrics"]["inspectedBytes"].is_string());
    let (_, body) = get_json("/api/search/tags?scope=resource&limit=1").await;
    assert_eq!(body["tagNames"], json!(["host.name"]));
    let (_, body) = get_json("/api/search/tags?scope=intrinsic").await;
    assert!(
        body["tagNames"]
            .as_array()
            .unwrap()
            .contains(&json!("status"))
    );

    let (status, body) = get_json("/api/v2/search/tags").await;
    assert_eq!(status, StatusCode::OK);
    let scopes = body["scopes"].as_array().unwrap();
    let names: Vec<&str> = scopes.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["resource", "span", "intrinsic", "event"]);
    assert_eq!(
        scopes[0],
        json!({"name": "resource", "tags": ["host.name", "service.name"]})
    );
    assert_eq!(
        scopes[1],
        json!({"name": "span", "tags": ["http.status_code"]})
    );
    assert_eq!(
        scopes[3],
        json!({"name": "event", "tags": ["exception.message"]})
    );
    let (_, body) = get_json("/api/v2/search/tags?scope=span").await;
    assert_eq!(
        body["scopes"],
        json!([{"name": "span", "tags": ["http.status_code"]}])
    );
    // Trace 2 alone is in this window; it has no span attributes.
    let w = format!("start={}&end={}", T0 + 1, T0 + 2);
    let (_, body) = get_json(&format!("/api/v2/search/tags?scope=span&{w}")).await;
    assert_eq!(body["scopes"], json!([]));

    let (status, _, body) = get("/api/v2/search/tags?scope=spans", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8(body).unwrap().contains("invalid scope"));
    let (status, _, _) = get("/api/search/tags?limit=x", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tempo_search_tag_values_v1_and_v2() {
    let (status, body) = get_json("/api/search/tag/service.name/values").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["tagValues"], json!(["api", "db"]));
    assert!(body["metrics"]["inspectedBytes"].is_string());
    // v1 lists string values only.
    let (_, body) = get_json("/api/search/tag/http.status_code/values").await;
    assert_eq!(body["tagValues"], json!([]));

    let (status, body) = get_json("/api/v2/search/tag/resource.service.name/values").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["tagValues"],
        json!([{"type": "string", "value": "api"}, {"type": "string", "value": "db"}])
    );
    let (_, body) = get_json("/api/v2/search/tag/span.http.status_code/values").await;
    assert_eq!(body["tagValues"], json!([{"type": "int", "value": "500"}]));
    let (_, body) = get_json("/api/v2/search/tag/status/values").await;
    assert_eq!(
        body["tagValues"],
        json!([{"type": "keyword", "value": "error"}, {"type": "keyword", "value": "unset"}])
    );
    let (_, body) = get_json("/api/v2/search/tag/name/values?limit=2").await;
    assert_eq!(
        body["tagValues"],
        json!([{"type": "string", "value": "GET /"}, {"type": "string", "value": "GET /health"}])
    );
    let w = format!("start={}&end={}", T0 + 1, T0 + 2);
    let (_, body) = get_json(&format!("/api/v2/search/tag/name/values?{w}")).await;
    assert_eq!(
        body["tagValues"],
        json!([{"type": "string", "value": "GET /health"}])
    );
    let (_, body) = get_json(&format!("/api/search/tag/service.name/values?{w}")).await;
    assert_eq!(body["tagValues"], json!(["api"]));

    let (status, _, body) = get("/api/v2/search/tag/service.name/values", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("TraceQL identifier")
    );
    let (status, _, _) = get("/api/v2/search/tag/name/values?start=9&end=1", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn jaeger_dependencies_count_calls_between_services() {
    // Trace 1: api's root calls db; trace 2 is api alone (no link).
    let end = T0 * 1_000 + 10_000;
    let (status, body) = get_json(&format!(
        "/jaeger/api/dependencies?endTs={end}&lookback=60000"
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"],
        json!([{ "parent": "api", "child": "db", "callCount": 1 }])
    );
    assert_eq!(body["total"], 1);
    // A window that ends before the traces holds none.
    let before = T0 * 1_000 - 1;
    let (_, body) = get_json(&format!(
        "/jaeger/api/dependencies?endTs={before}&lookback=1000"
    ))
    .await;
    assert_eq!(body["data"], json!([]));
    let (status, body) = get_json("/jaeger/api/dependencies?endTs=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["code"], 400);
}

#[tokio::test]
async fn tempo_search_runs_traceql_over_the_head() {
    let ids = |body: &Value| -> Vec<String> {
        body["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].as_str().unwrap().to_string())
            .collect()
    };
    const TRACE2: &str = "00000000000000000000000000000002";
    let q = |q: &str| format!("/api/search?q={}", urlencode(q));
    let (status, body) = get_json(&q("{ status = error }")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), [TRACE1]);
    let t = &body["traces"][0];
    assert_eq!(t["rootServiceName"], "api");
    assert_eq!(t["rootTraceName"], "GET /");
    assert_eq!(t["durationMs"], 100);
    assert_eq!(t["spanSet"]["matched"], 1);
    assert_eq!(t["spanSet"]["spans"][0]["spanID"], "0000000000000001");
    assert_eq!(t["spanSet"]["spans"][0]["durationNanos"], "100000000");
    assert_eq!(t["spanSets"].as_array().unwrap().len(), 1);
    // The other trace is ruled out by its spans' status before it is decoded, as a
    // block's trace is ruled out by its page's columns: it is not inspected.
    assert_eq!(body["metrics"]["inspectedTraces"], 1);
    // Newest first, and the limit.
    let (_, body) = get_json(&q("{ resource.service.name = \"api\" }")).await;
    assert_eq!(ids(&body), [TRACE2, TRACE1]);
    let (_, body) = get_json(&format!("{}&limit=1", q("{ }"))).await;
    assert_eq!(ids(&body), [TRACE2]);
    // Structural: the client span under the failing root.
    let (_, body) = get_json(&q("{ span.http.status_code = 500 } >> { kind = client }")).await;
    assert_eq!(ids(&body), [TRACE1]);
    assert_eq!(
        body["traces"][0]["spanSet"]["spans"][0]["spanID"],
        "0000000000000002"
    );
    // spss lists fewer spans than matched.
    let (_, body) = get_json(&format!("{}&spss=1&limit=5", q("{ duration > 5ms }"))).await;
    assert_eq!(ids(&body), [TRACE1]);
    assert_eq!(body["traces"][0]["spanSet"]["matched"], 2);
    assert_eq!(
        body["traces"][0]["spanSet"]["spans"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Trace duration bounds, and tags in logfmt.
    let (_, body) = get_json("/api/search?minDuration=50ms").await;
    assert_eq!(ids(&body), [TRACE1]);
    let (_, body) = get_json("/api/search?maxDuration=50ms").await;
    assert_eq!(ids(&body), [TRACE2]);
    let (_, body) = get_json("/api/search?tags=service.name%3Ddb").await;
    assert_eq!(ids(&body), [TRACE1]);
    // A window after both traces finds nothing.
    let (_, body) = get_json(&format!("/api/search?start={}&end={}", T0 + 10, T0 + 20)).await;
    assert_eq!(ids(&body), Vec::<String>::new());
    // Bad input is a 400 naming the problem.
    for bad in [
        q("{ status = }"),
        q("rate()"),
        "/api/search?minDuration=soon".into(),
    ] {
        let (status, _, body) = get(&bad, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(!body.is_empty(), "{bad}");
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
