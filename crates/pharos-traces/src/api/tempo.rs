//! Tempo's trace-by-id endpoints.
//!
//! - `GET /api/traces/{traceid}`: Tempo's v1 shape, `{"batches":[ResourceSpans...]}`.
//! - `GET /api/v2/traces/{traceid}`: Tempo 2.x's v2 shape, `{"trace":{"resourceSpans":[...]}}`.
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
use crate::store::TraceStore;

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
