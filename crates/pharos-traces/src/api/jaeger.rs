//! The Jaeger query API (the HTTP JSON API the Jaeger UI uses), under `/jaeger/api`.
//!
//! Every answer is Jaeger's envelope `{"data":...,"total":N,"limit":0,"offset":0,
//! "errors":null}`; failures put `data: null` and `errors: [{"code","msg"}]` with
//! the same HTTP status, as Jaeger's query service does. `total` is the item count
//! for services and operations and 0 for traces, again as Jaeger answers.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::parse_trace_id;
use crate::store::{TraceQuery, TraceStore, search::span_kind_name};

mod convert;

pub use convert::{jaeger_trace_id, trace as to_jaeger_trace};

pub(super) fn router() -> Router<Arc<TraceStore>> {
    Router::new()
        .route("/jaeger/api/services", get(services))
        .route(
            "/jaeger/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/jaeger/api/operations", get(operations))
        .route("/jaeger/api/traces", get(search))
        .route("/jaeger/api/traces/{traceid}", get(trace_by_id))
        .route("/jaeger/api/dependencies", get(dependencies))
}

/// `GET /jaeger/api/dependencies?endTs=<ms>&lookback=<ms>`: the service dependency links
/// of the traces in `[endTs - lookback, endTs]` (defaults: now and 24 hours), as
/// `{"parent","child","callCount"}` objects.
async fn dependencies(State(store): State<Arc<TraceStore>>, Query(params): Params) -> Response {
    let ms = |name: &str| -> Result<Option<u64>, String> {
        param(&params, name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    format!("unable to parse param '{name}': {v:?} is not milliseconds")
                })
            })
            .transpose()
    };
    let end_ms = match ms("endTs") {
        Ok(Some(v)) => v,
        Ok(None) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
    };
    let lookback_ms = match ms("lookback") {
        Ok(v) => v.unwrap_or(24 * 3_600_000),
        Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
    };
    let end_ns = end_ms.saturating_mul(1_000_000);
    let start_ns = end_ms.saturating_sub(lookback_ms).saturating_mul(1_000_000);
    let links: Vec<Value> = store
        .dependencies(start_ns, end_ns)
        .into_iter()
        .map(|(parent, child, n)| json!({ "parent": parent, "child": child, "callCount": n }))
        .collect();
    let n = links.len();
    ok(json!(links), n)
}

type Params = Query<Vec<(String, String)>>;

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn ok(data: Value, total: usize) -> Response {
    Json(json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": null }))
        .into_response()
}

fn error(status: StatusCode, msg: &str) -> Response {
    let body = json!({
        "data": null, "total": 0, "limit": 0, "offset": 0,
        "errors": [{ "code": status.as_u16(), "msg": msg }],
    });
    (status, Json(body)).into_response()
}

async fn services(State(store): State<Arc<TraceStore>>) -> Response {
    let services = store.services();
    let n = services.len();
    ok(json!(services), n)
}

async fn service_operations(
    State(store): State<Arc<TraceStore>>,
    Path(service): Path<String>,
) -> Response {
    let mut names: Vec<String> = store
        .operations(&service)
        .into_iter()
        .map(|o| o.name)
        .collect();
    names.dedup();
    let n = names.len();
    ok(json!(names), n)
}

async fn operations(State(store): State<Arc<TraceStore>>, Query(params): Params) -> Response {
    let Some(service) = param(&params, "service") else {
        return error(StatusCode::BAD_REQUEST, "parameter 'service' is required");
    };
    let kind = param(&params, "spanKind");
    let ops: Vec<Value> = store
        .operations(service)
        .into_iter()
        .map(|o| (o.name, span_kind_name(o.kind).unwrap_or("")))
        .filter(|(_, k)| kind.is_none_or(|want| want == *k))
        .map(|(name, k)| json!({ "name": name, "spanKind": k }))
        .collect();
    let n = ops.len();
    ok(Value::Array(ops), n)
}

async fn trace_by_id(State(store): State<Arc<TraceStore>>, Path(id): Path<String>) -> Response {
    let id = match parse_trace_id(&id) {
        Ok(id) => id,
        Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
    };
    match store.get(&id, None) {
        Some(batches) => ok(json!([convert::trace(&id, &batches)]), 0),
        None => error(StatusCode::NOT_FOUND, "trace not found"),
    }
}

async fn search(State(store): State<Arc<TraceStore>>, Query(params): Params) -> Response {
    // Jaeger's UI can ask for traces by id through search (`traceID=...`, repeated).
    let ids: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "traceID")
        .map(|(_, v)| v.as_str())
        .collect();
    if !ids.is_empty() {
        let mut traces = Vec::new();
        for id in ids {
            match parse_trace_id(id) {
                Ok(id) => {
                    if let Some(b) = store.get(&id, None) {
                        traces.push(convert::trace(&id, &b));
                    }
                }
                Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
            }
        }
        return ok(Value::Array(traces), 0);
    }
    let query = match search_query(&params) {
        Ok(q) => q,
        Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
    };
    let traces: Vec<Value> = store
        .search(&query)
        .iter()
        .map(|(id, batches)| convert::trace(id, batches))
        .collect();
    ok(Value::Array(traces), 0)
}

/// Builds a store query from Jaeger's search parameters.
fn search_query(params: &[(String, String)]) -> Result<TraceQuery, String> {
    let service = param(params, "service").ok_or("parameter 'service' is required")?;
    let micros = |name: &str| -> Result<Option<u64>, String> {
        param(params, name)
            .map(|v| {
                v.parse::<u64>()
                    .map(|us| us.saturating_mul(1_000))
                    .map_err(|_| format!("unable to parse param '{name}': invalid syntax: {v}"))
            })
            .transpose()
    };
    let duration = |name: &str| -> Result<Option<u64>, String> {
        param(params, name)
            .map(|v| {
                parse_go_duration(v).ok_or_else(|| {
                    format!("unable to parse param '{name}': time: invalid duration \"{v}\"")
                })
            })
            .transpose()
    };
    let limit = match param(params, "limit") {
        None => 20,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("unable to parse param 'limit': invalid syntax: {v}"))?,
    };
    let mut tags = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "tags" if !v.is_empty() => {
                let map: serde_json::Map<String, Value> = serde_json::from_str(v)
                    .map_err(|e| format!("malformed 'tags' parameter: {e}"))?;
                for (k, v) in map {
                    let v = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    tags.push((k, v));
                }
            }
            "tag" if !v.is_empty() => {
                let (k, v) = v.split_once(':').ok_or_else(|| {
                    format!("malformed 'tag' parameter, expecting key:value, received: {v}")
                })?;
                tags.push((k.to_string(), v.to_string()));
            }
            _ => {}
        }
    }
    tags.sort();
    let operation = param(params, "operation").map(str::to_string);
    Ok(TraceQuery {
        service: Some(service.to_string()),
        operation,
        tags,
        start_ns: micros("start")?,
        end_ns: micros("end")?,
        min_duration_ns: duration("minDuration")?,
        max_duration_ns: duration("maxDuration")?,
        limit: if limit == 0 { 20 } else { limit },
    })
}

/// Parses a Go duration (`1.5s`, `100ms`, `2h45m`, `300us`) into nanoseconds.
pub(crate) fn parse_go_duration(s: &str) -> Option<u64> {
    pharos_model::duration::parse_nanos(s, pharos_model::duration::Units::Go)
        .and_then(|n| u64::try_from(n).ok())
}
