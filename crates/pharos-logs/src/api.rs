//! Loki's query API (`/loki/api/v1/*`): the only module of this crate that knows
//! HTTP and JSON.
//!
//! Every endpoint answers GET and POST (form body). Successes use Loki's
//! envelope `{"status":"success","data":...}`; failures are HTTP 400 with a
//! plain-text body and a trailing newline, as Loki's `http.Error` writes them
//! ([`bad_request`] is the one place that shapes them).
//!
//! Structured metadata: by default it is merged into each result stream's
//! labels, splitting a stream by metadata values, as Loki 3 does. With the
//! request header `X-Loki-Response-Encoding-Flags: categorize-labels` streams
//! keep their index labels and each value carries
//! `{"structuredMetadata":{...}}` as a third element (when non-empty), and
//! `data.encodingFlags` says so.
//!
//! `stats` is a minimal `{"summary":{...}}` object: entry and byte counts and
//! the execution time; Loki's per-component breakdown is left out.
//!
//! `/loki/api/v1/query` (instant) answers a log query with the entries of the
//! `since` (default 1h) before `time`, as a range query ending at `time` would;
//! Loki 3 itself refuses instant log queries, so this is a Pharos extension.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::logql::eval::{QueryParams, select};
use crate::logql::parser::parse_selector;
use crate::logql::{LogSelector, parse};
use crate::store::{Direction, LogStore, SelectedStream, labels_string};

mod params;

use params::{Params, parse_duration, parse_form, parse_time};

/// The header through which clients ask for categorised labels.
pub const ENCODING_FLAGS_HEADER: &str = "X-Loki-Response-Encoding-Flags";
/// The flag asking for structured metadata apart from stream labels.
pub const CATEGORIZE_LABELS: &str = "categorize-labels";
/// Loki's default `max_entries_limit_per_query`.
pub const MAX_ENTRIES_LIMIT: usize = 5000;

const DEFAULT_LIMIT: usize = 100;
const DEFAULT_SINCE_NS: i64 = 3_600 * 1_000_000_000;

/// Returns the router serving Loki's query endpoints over `store`.
pub fn router(store: Arc<LogStore>) -> Router {
    Router::new()
        .route(
            "/loki/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/loki/api/v1/query", get(query).post(query))
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(label_values).post(label_values),
        )
        .route("/loki/api/v1/series", get(series).post(series))
        .with_state(store)
}

/// A request's failure, answered as HTTP 400 with `msg` as plain text.
struct BadRequest(String);

impl<E: ToString> From<E> for BadRequest {
    fn from(e: E) -> Self {
        BadRequest(e.to_string())
    }
}

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        bad_request(&self.0)
    }
}

/// Returns Loki's answer to a bad request: 400, the message as plain text.
pub fn bad_request(msg: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

fn params(raw: Option<String>, headers: &HeaderMap, body: &Bytes) -> Params {
    let mut pairs = raw.as_deref().map(parse_form).unwrap_or_default();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form || (!body.is_empty() && headers.get(header::CONTENT_TYPE).is_none()) {
        pairs.extend(parse_form(&String::from_utf8_lossy(body)));
    }
    Params(pairs)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Reads `start`/`end`/`since` with Loki's defaults: end = now, start = end - since (1h).
fn range(p: &Params) -> Result<(i64, i64), BadRequest> {
    let end = p
        .get("end")
        .map(parse_time)
        .transpose()?
        .unwrap_or_else(now_ns);
    let since = p
        .get("since")
        .map(parse_duration)
        .transpose()?
        .unwrap_or(DEFAULT_SINCE_NS);
    let start = p
        .get("start")
        .map(parse_time)
        .transpose()?
        .unwrap_or(end - since);
    if end < start {
        return Err(BadRequest(
            "end timestamp must not be before or equal to start time".into(),
        ));
    }
    Ok((start, end))
}

fn limit_and_direction(p: &Params) -> Result<(usize, Direction), BadRequest> {
    let limit = match p.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| format!("invalid limit: {v:?}"))?;
            if n <= 0 {
                return Err(BadRequest("limit must be a positive value".into()));
            }
            n as usize
        }
    };
    if limit > MAX_ENTRIES_LIMIT {
        return Err(BadRequest(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {MAX_ENTRIES_LIMIT})"
        )));
    }
    let direction = match p.get("direction").map(str::to_ascii_lowercase).as_deref() {
        None | Some("backward") => Direction::Backward,
        Some("forward") => Direction::Forward,
        Some(other) => return Err(BadRequest(format!("invalid direction '{other}'"))),
    };
    Ok((limit, direction))
}

fn categorize(headers: &HeaderMap) -> bool {
    headers
        .get_all(ENCODING_FLAGS_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|f| f.trim() == CATEGORIZE_LABELS)
}

async fn query_range(
    State(store): State<Arc<LogStore>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, BadRequest> {
    let p = params(raw, &headers, &body);
    let sel = parse(p.get("query").unwrap_or_default())?;
    let (start_ns, end_ns) = range(&p)?;
    let (limit, direction) = limit_and_direction(&p)?;
    Ok(run(
        &store,
        &sel,
        QueryParams {
            start_ns,
            end_ns,
            direction,
            limit,
        },
        categorize(&headers),
    ))
}

async fn query(
    State(store): State<Arc<LogStore>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, BadRequest> {
    let p = params(raw, &headers, &body);
    let sel = parse(p.get("query").unwrap_or_default())?;
    let time = p
        .get("time")
        .map(parse_time)
        .transpose()?
        .unwrap_or_else(now_ns);
    let since = p
        .get("since")
        .map(parse_duration)
        .transpose()?
        .unwrap_or(DEFAULT_SINCE_NS);
    let (limit, direction) = limit_and_direction(&p)?;
    let params = QueryParams {
        start_ns: time - since,
        end_ns: time.saturating_add(1),
        direction,
        limit,
    };
    Ok(run(&store, &sel, params, categorize(&headers)))
}

fn run(store: &LogStore, sel: &LogSelector, params: QueryParams, categorize: bool) -> Response {
    let started = Instant::now();
    let streams = select(store, sel, &params);
    let entries: usize = streams.iter().map(|s| s.entries.len()).sum();
    let bytes: usize = streams
        .iter()
        .flat_map(|s| &s.entries)
        .map(|e| e.line.len())
        .sum();
    let result = if categorize {
        categorized(streams)
    } else {
        merged(streams, params.direction)
    };
    let mut data = Map::new();
    data.insert("resultType".into(), json!("streams"));
    data.insert("result".into(), Value::Array(result));
    data.insert(
        "stats".into(),
        stats(entries, bytes, started.elapsed().as_secs_f64()),
    );
    if categorize {
        data.insert("encodingFlags".into(), json!([CATEGORIZE_LABELS]));
    }
    Json(json!({ "status": "success", "data": data })).into_response()
}

/// Streams with structured metadata merged into their labels: one result stream
/// per distinct label set, sorted by labels, values in the query's direction.
fn merged(streams: Vec<SelectedStream>, direction: Direction) -> Vec<Value> {
    /// A result stream's labels and its `(timestamp, [ts, line])` values.
    type Merged = (Map<String, Value>, Vec<(i64, Value)>);
    let mut out: BTreeMap<String, Merged> = BTreeMap::new();
    for s in streams {
        for e in s.entries {
            let mut labels = s.labels.clone();
            for (k, v) in &e.metadata {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let key = labels_string(&labels);
            let slot = out.entry(key).or_insert_with(|| {
                (
                    labels
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                    Vec::new(),
                )
            });
            slot.1.push((e.ts_ns, json!([e.ts_ns.to_string(), e.line])));
        }
    }
    out.into_values()
        .map(|(labels, mut values)| {
            // Entries of one store stream arrive ordered; merged ones may interleave.
            match direction {
                Direction::Forward => values.sort_by_key(|v| v.0),
                Direction::Backward => values.sort_by_key(|v| std::cmp::Reverse(v.0)),
            }
            let values: Vec<Value> = values.into_iter().map(|(_, v)| v).collect();
            json!({ "stream": labels, "values": values })
        })
        .collect()
}

/// Streams with their index labels only; metadata rides on each value.
fn categorized(streams: Vec<SelectedStream>) -> Vec<Value> {
    streams
        .into_iter()
        .map(|s| {
            let values: Vec<Value> = s
                .entries
                .into_iter()
                .map(|e| {
                    if e.metadata.is_empty() {
                        json!([e.ts_ns.to_string(), e.line])
                    } else {
                        let md: Map<String, Value> = e
                            .metadata
                            .into_iter()
                            .map(|(k, v)| (k, Value::String(v)))
                            .collect();
                        json!([e.ts_ns.to_string(), e.line, { "structuredMetadata": md }])
                    }
                })
                .collect();
            json!({ "stream": s.labels, "values": values })
        })
        .collect()
}

fn stats(entries: usize, bytes: usize, exec_seconds: f64) -> Value {
    json!({
        "summary": {
            "bytesProcessedPerSecond": 0,
            "linesProcessedPerSecond": 0,
            "totalBytesProcessed": bytes,
            "totalLinesProcessed": entries,
            "totalEntriesReturned": entries,
            "totalPostFilterLines": entries,
            "execTime": exec_seconds,
            "queueTime": 0,
            "subqueries": 0,
            "splits": 0,
            "shards": 0,
        }
    })
}

/// Reads the optional `query` stream selector that narrows label requests.
fn optional_selector(p: &Params) -> Result<Option<LogSelector>, BadRequest> {
    Ok(p.get("query").map(parse_selector).transpose()?)
}

async fn labels(
    State(store): State<Arc<LogStore>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, BadRequest> {
    let p = params(raw, &headers, &body);
    let (start, end) = range(&p)?;
    let names: Vec<String> = match optional_selector(&p)? {
        None => store.label_names(start, end.saturating_add(1)),
        Some(sel) => {
            let set: std::collections::BTreeSet<String> = store
                .series(|l| sel.matches_stream(l), start, end.saturating_add(1))
                .into_iter()
                .flat_map(|l| l.into_keys())
                .collect();
            set.into_iter().collect()
        }
    };
    Ok(Json(json!({ "status": "success", "data": names })).into_response())
}

async fn label_values(
    State(store): State<Arc<LogStore>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, BadRequest> {
    let p = params(raw, &headers, &body);
    let (start, end) = range(&p)?;
    let sel = optional_selector(&p)?;
    let values = store.label_values(
        &name,
        |l| sel.as_ref().is_none_or(|s| s.matches_stream(l)),
        start,
        end.saturating_add(1),
    );
    Ok(Json(json!({ "status": "success", "data": values })).into_response())
}

async fn series(
    State(store): State<Arc<LogStore>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, BadRequest> {
    let p = params(raw, &headers, &body);
    let (start, end) = range(&p)?;
    let mut matches = p.all("match[]");
    matches.extend(p.all("match"));
    let selectors = matches
        .into_iter()
        .map(parse_selector)
        .collect::<Result<Vec<_>, _>>()?;
    let series = store.series(
        |l| selectors.is_empty() || selectors.iter().any(|s| s.matches_stream(l)),
        start,
        end.saturating_add(1),
    );
    Ok(Json(json!({ "status": "success", "data": series })).into_response())
}

#[cfg(test)]
mod tests;
