//! Tempo's trace-by-id, search, tag and status endpoints.
//!
//! - `GET /api/search`: TraceQL (`q`) or logfmt `tags`, `start`, `end`, `minDuration`,
//!   `maxDuration`, `limit` (20), `spss` (3); `{"traces":[{traceID, rootServiceName,
//!   rootTraceName, startTimeUnixNano, durationMs, spanSet, spanSets}], "metrics"}`.
//! - `GET /api/traces/{traceid}`: Tempo's v1 shape, `{"batches":[ResourceSpans...]}`.
//! - `GET /api/v2/traces/{traceid}`: Tempo 2.x's v2 shape, `{"trace":{"resourceSpans":[...]}}`.
//! - `GET /api/echo`: `echo`, Grafana's data source test.
//! - `GET /api/status/buildinfo`: `{version, revision, branch, buildUser, buildDate,
//!   goVersion}` with Pharos' version; being below Tempo 2.2, it keeps Grafana from
//!   asking for streaming search, which Pharos does not serve.
//! - `GET /api/search/tags` (`{"tagNames":[...]}`) and `/api/v2/search/tags`
//!   (`{"scopes":[{"name","tags"}]}`), with `scope`, `start`, `end`, `limit`.
//! - `GET /api/search/tag/{name}/values` (`{"tagValues":["..."]}`, string values of
//!   span or resource attribute `name`) and `/api/v2/search/tag/{name}/values`
//!   (`{"tagValues":[{"type","value"}]}` for a TraceQL identifier such as
//!   `resource.service.name`, `span.http.method`, `.x`, `name`, `status`), with
//!   `start`, `end`, `limit`. Each answer carries Tempo's `metrics.inspectedBytes`.
//!
//! Resource spans are rendered with the OTLP/JSON mapping (hex ids, 64-bit
//! integers as strings, enums as integers, camelCase). With
//! `Accept: application/protobuf` the v1 endpoint returns an OTLP `TracesData`
//! message, which is byte-for-byte a `tempopb.Trace` (both are `repeated
//! ResourceSpans` at field 1); the v2 endpoint wraps it at field 1, as
//! `tempopb.TraceByIDResponse` does. Optional `start`/`end` (unix seconds) keep
//! only a trace overlapping that window. Errors are plain text: 400 for a
//! malformed id or window, 404 `trace not found`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};
use prost::Message;
use serde_json::json;

use super::parse_trace_id;
use crate::store::{HitSpanset, SearchHit, TagRef, TagScope, TraceStore, TraceqlSearch};

/// The media type Tempo's clients send in `Accept` for a protobuf answer.
pub const PROTOBUF: &str = "application/protobuf";

/// Which of Tempo's response shapes to produce.
#[derive(Clone, Copy)]
enum Shape {
    V1,
    V2,
}

pub(super) fn router() -> Router<Arc<TraceStore>> {
    Router::new()
        .route("/api/traces/{traceid}", get(trace_v1))
        .route("/api/v2/traces/{traceid}", get(trace_v2))
        .route("/api/search", get(search))
        .route("/api/echo", get(echo))
        .route("/api/status/buildinfo", get(buildinfo))
        .route("/api/search/tags", get(tags_v1))
        .route("/api/v2/search/tags", get(tags_v2))
        .route("/api/search/tag/{name}/values", get(tag_values_v1))
        .route("/api/v2/search/tag/{name}/values", get(tag_values_v2))
}

async fn echo() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "echo",
    )
        .into_response()
}

async fn buildinfo() -> Response {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
    .into_response()
}

/// Reads `scope`: `None` when absent, empty or `all`.
fn scope(params: &HashMap<String, String>) -> Result<Option<TagScope>, String> {
    match params.get("scope").map(|s| s.trim()) {
        None | Some("") | Some("all") => Ok(None),
        Some(s) => TagScope::parse(s).map(Some).ok_or_else(|| {
            format!(
                "invalid scope: {s}, must be one of all, resource, span, intrinsic, event, link, instrumentation"
            )
        }),
    }
}

/// Reads `limit`; absent or 0 means no limit.
fn limit(params: &HashMap<String, String>) -> Result<usize, String> {
    count(params, "limit", usize::MAX)
}

/// A count parameter: `default` when absent, empty or 0.
fn count(params: &HashMap<String, String>, key: &str, default: usize) -> Result<usize, String> {
    match params.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(0) => Ok(default),
            Ok(n) => Ok(n),
            Err(_) => Err(format!("invalid {key}: {s}")),
        },
    }
}

/// The `start`/`end` window and `limit` every tag endpoint takes.
fn window_and_limit(
    params: &HashMap<String, String>,
) -> Result<(Option<(u64, u64)>, usize), String> {
    Ok((window(params)?, limit(params)?))
}

/// `GET /api/search`: traces matching a TraceQL query (`q`), or tags in logfmt (`tags`,
/// each an unscoped attribute equality), within `start`/`end` (unix seconds) and
/// `minDuration`/`maxDuration` (of the trace), newest first, at most `limit` (20) of them
/// with at most `spss` (3) spans listed per spanset, in Tempo's response shape.
async fn search(
    State(store): State<Arc<TraceStore>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match search_request(&params) {
        Ok(req) => {
            let (hits, inspected) = store.search_traceql(&req);
            let traces: Vec<serde_json::Value> = hits.iter().map(search_trace).collect();
            Json(json!({
                "traces": traces,
                "metrics": { "inspectedTraces": inspected, "inspectedBytes": "0" },
            }))
            .into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

fn search_request(params: &HashMap<String, String>) -> Result<TraceqlSearch, String> {
    let get = |k: &str| params.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let text = match (get("q"), get("tags")) {
        (Some(q), _) => q.to_string(),
        (None, Some(tags)) => tags_query(tags)?,
        (None, None) => "{}".to_string(),
    };
    let query = crate::traceql::parse(&text).map_err(|e| format!("invalid TraceQL query: {e}"))?;
    let duration = |k: &str| -> Result<Option<u64>, String> {
        get(k)
            .map(|v| super::jaeger::parse_go_duration(v).ok_or_else(|| format!("invalid {k}: {v}")))
            .transpose()
    };
    let window = window(params)?;
    Ok(TraceqlSearch {
        query,
        start_ns: window.map(|w| w.0),
        end_ns: window.map(|w| w.1),
        min_duration_ns: duration("minDuration")?,
        max_duration_ns: duration("maxDuration")?,
        limit: count(params, "limit", 20)?,
        spans_per_spanset: count(params, "spss", 3)?,
    })
}

/// Turns Tempo's logfmt `tags` (`service.name=api http.status_code=500`) into a TraceQL
/// filter of unscoped string equalities.
fn tags_query(tags: &str) -> Result<String, String> {
    let mut conds = Vec::new();
    for pair in tags.split_whitespace() {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("invalid tags: {pair} is not key=value"))?;
        let v = v
            .trim_matches('"')
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        let plain = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c));
        if plain {
            conds.push(format!(".{k} = \"{v}\""));
        } else {
            conds.push(format!(".\"{}\" = \"{v}\"", k.replace('"', "")));
        }
    }
    Ok(format!("{{ {} }}", conds.join(" && ")))
}

fn search_trace(hit: &SearchHit) -> serde_json::Value {
    let (root_service, root_name) = match &hit.root {
        Some((s, n)) => (s.as_str(), n.as_str()),
        None => ("<root span not yet received>", ""),
    };
    let spansets: Vec<serde_json::Value> = hit.spansets.iter().map(search_spanset).collect();
    let mut t = json!({
        "traceID": hex::encode(hit.trace_id),
        "rootServiceName": root_service,
        "startTimeUnixNano": hit.start_ns.to_string(),
        "durationMs": hit.end_ns.saturating_sub(hit.start_ns) / 1_000_000,
        "spanSets": spansets,
    });
    if !root_name.is_empty() {
        t["rootTraceName"] = json!(root_name);
    }
    if let Some(first) = spansets.first() {
        t["spanSet"] = first.clone();
    }
    t
}

fn search_spanset(set: &HitSpanset) -> serde_json::Value {
    let spans: Vec<serde_json::Value> = set
        .spans
        .iter()
        .map(|s| {
            json!({
                "spanID": hex::encode(s.span_id),
                "name": s.name,
                "startTimeUnixNano": s.start_ns.to_string(),
                "durationNanos": s.duration_ns.to_string(),
                "attributes": attributes(&s.attributes),
            })
        })
        .collect();
    let mut out = json!({ "spans": spans, "matched": set.matched });
    if !set.attributes.is_empty() {
        out["attributes"] = json!(attributes(&set.attributes));
    }
    out
}

/// Attributes as OTLP/JSON `KeyValue`s; durations as their nanoseconds, status and kind
/// in their TraceQL spelling.
fn attributes(kvs: &[(String, crate::traceql::Value)]) -> Vec<serde_json::Value> {
    use crate::traceql::Value as V;
    kvs.iter()
        .filter_map(|(k, v)| {
            let value = match v {
                V::Nil => return None,
                V::String(s) => json!({ "stringValue": s }),
                V::Int(i) => json!({ "intValue": i.to_string() }),
                V::Float(f) => json!({ "doubleValue": f }),
                V::Bool(b) => json!({ "boolValue": b }),
                V::Duration(ns) => json!({ "intValue": ns.to_string() }),
                V::Status(s) => json!({ "stringValue": s.as_str() }),
                V::Kind(k) => json!({ "stringValue": k.as_str() }),
            };
            Some(json!({ "key": k, "value": value }))
        })
        .collect()
}

/// The `scope`, `start`/`end` window and `limit` the tag endpoints take.
type TagParams = (Option<TagScope>, Option<(u64, u64)>, usize);

fn tag_params(params: &HashMap<String, String>) -> Result<TagParams, String> {
    let scope = scope(params)?;
    let (window, limit) = window_and_limit(params)?;
    Ok((scope, window, limit))
}

fn metrics(inspected_bytes: u64) -> serde_json::Value {
    json!({ "inspectedBytes": inspected_bytes.to_string() })
}

async fn tags_v1(
    State(store): State<Arc<TraceStore>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (scope, window, limit) = match tag_params(&params) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    // Without a scope Tempo's v1 lists the span and resource attribute names.
    let scopes = match scope {
        Some(s) => vec![s],
        None => vec![TagScope::Span, TagScope::Resource],
    };
    let (by_scope, inspected) = store.tag_names(&scopes, window);
    let names: std::collections::BTreeSet<String> = by_scope.into_values().flatten().collect();
    let names: Vec<String> = names.into_iter().take(limit).collect();
    Json(json!({ "tagNames": names, "metrics": metrics(inspected) })).into_response()
}

async fn tags_v2(
    State(store): State<Arc<TraceStore>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (scope, window, limit) = match tag_params(&params) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let scopes = match scope {
        Some(s) => vec![s],
        None => TagScope::ALL.to_vec(),
    };
    let (mut by_scope, inspected) = store.tag_names(&scopes, window);
    let scopes: Vec<_> = TagScope::ALL
        .iter()
        .filter_map(|s| {
            let tags: Vec<String> = by_scope.remove(s)?.into_iter().take(limit).collect();
            Some(json!({ "name": s.as_str(), "tags": tags }))
        })
        .collect();
    Json(json!({ "scopes": scopes, "metrics": metrics(inspected) })).into_response()
}

async fn tag_values_v1(
    State(store): State<Arc<TraceStore>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (window, limit) = match window_and_limit(&params) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    // v1 names a plain attribute, looked up on spans and resources; its values are
    // the string ones.
    let tag = TagRef::Attribute { scope: None, name };
    let (values, inspected) = store.tag_values(&tag, window);
    let values: Vec<String> = values
        .into_iter()
        .filter(|v| v.kind == "string")
        .map(|v| v.value)
        .take(limit)
        .collect();
    Json(json!({ "tagValues": values, "metrics": metrics(inspected) })).into_response()
}

async fn tag_values_v2(
    State(store): State<Arc<TraceStore>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (window, limit) = match window_and_limit(&params) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some(tag) = TagRef::parse(&name) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "failed to parse tag name {name:?}: expected a TraceQL identifier such as resource.service.name, span.http.method, .attr or name"
            ),
        );
    };
    let (values, inspected) = store.tag_values(&tag, window);
    let values: Vec<_> = values
        .into_iter()
        .take(limit)
        .map(|v| json!({ "type": v.kind, "value": v.value }))
        .collect();
    Json(json!({ "tagValues": values, "metrics": metrics(inspected) })).into_response()
}

async fn trace_v1(
    State(store): State<Arc<TraceStore>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    trace_by_id(&store, &id, &params, &headers, Shape::V1)
}

async fn trace_v2(
    State(store): State<Arc<TraceStore>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    trace_by_id(&store, &id, &params, &headers, Shape::V2)
}

fn trace_by_id(
    store: &TraceStore,
    id: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    shape: Shape,
) -> Response {
    let id = match parse_trace_id(id) {
        Ok(id) => id,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let window = match window(params) {
        Ok(w) => w,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let Some(batches) = store.get(&id, window) else {
        return error(StatusCode::NOT_FOUND, "trace not found".to_string());
    };
    if wants_protobuf(headers) {
        protobuf(batches, shape)
    } else {
        match shape {
            Shape::V1 => Json(json!({ "batches": batches })).into_response(),
            Shape::V2 => Json(json!({ "trace": { "resourceSpans": batches } })).into_response(),
        }
    }
}

/// Reads Tempo's optional `start`/`end` unix-second bounds into a nanosecond window.
fn window(params: &HashMap<String, String>) -> Result<Option<(u64, u64)>, String> {
    let parse = |name: &str| -> Result<Option<u64>, String> {
        match params.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => s
                .parse::<u64>()
                .map(|v| Some(v.saturating_mul(1_000_000_000)))
                .map_err(|_| format!("invalid {name}: {s}")),
        }
    };
    let (start, end) = (parse("start")?, parse("end")?);
    if start.is_none() && end.is_none() {
        return Ok(None);
    }
    let (start, end) = (
        start.unwrap_or(0),
        end.map_or(u64::MAX, |e| e.saturating_add(999_999_999)),
    );
    if start > end {
        return Err("invalid start: must be before end".to_string());
    }
    Ok(Some((start, end)))
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(PROTOBUF))
        })
}

fn protobuf(resource_spans: Vec<ResourceSpans>, shape: Shape) -> Response {
    let trace = TracesData { resource_spans };
    let body = match shape {
        Shape::V1 => trace.encode_to_vec(),
        Shape::V2 => {
            let mut buf = Vec::with_capacity(trace.encoded_len() + 8);
            prost::encoding::message::encode(1, &trace, &mut buf);
            buf
        }
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF))],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, msg: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}
