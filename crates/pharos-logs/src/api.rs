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

use crate::logql::eval::{LogRow, QueryParams, Steps, Value as EvalValue, eval_metric, select};
use crate::logql::parser::parse_selector;
use crate::logql::pipeline::Category;
use crate::logql::{Expr, LogExpr, parse, parse_expr};
use crate::store::{Direction, LogStore, ScanStats, labels_string, take_scan_stats};

mod params;
mod tail;

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
        .route(
            "/loki/api/v1/index/stats",
            get(index_stats).post(index_stats),
        )
        .route(
            "/loki/api/v1/detected_fields",
            get(detected_fields).post(detected_fields),
        )
        .route("/loki/api/v1/tail", get(tail::tail))
        .route("/ready", get(|| async { "ready\n" }))
        .with_state(store)
}

/// A request's failure, answered as HTTP 400 with `msg` as plain text.
pub(crate) struct BadRequest(pub(crate) String);

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

pub(crate) fn now_ns() -> i64 {
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
    let expr = parse_expr(p.get("query").unwrap_or_default())?;
    let (start_ns, end_ns) = range(&p)?;
    let (limit, direction) = limit_and_direction(&p)?;
    match expr {
        Expr::Log(sel) => Ok(run(
            &store,
            &sel,
            QueryParams {
                start_ns,
                end_ns,
                direction,
                limit,
            },
            categorize(&headers),
        )),
        Expr::Metric(m) => {
            let step_ns = match p.get("step") {
                Some(v) => parse_step(v)?,
                None => default_step(start_ns, end_ns),
            };
            if step_ns <= 0 {
                return Err(BadRequest(
                    "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
                ));
            }
            let steps = Steps {
                start_ns,
                end_ns,
                step_ns,
            };
            metric_response(&store, &m, &steps, false)
        }
    }
}

/// Loki's default step: a 250th of the range, at least a second.
fn default_step(start_ns: i64, end_ns: i64) -> i64 {
    ((end_ns - start_ns) / 1_000_000_000 / 250).max(1) * 1_000_000_000
}

/// A step as a duration (`30s`) or a number of seconds (`30`, `0.5`).
fn parse_step(v: &str) -> Result<i64, BadRequest> {
    if let Ok(secs) = v.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    parse_duration(v).map_err(BadRequest)
}

async fn query(
    State(store): State<Arc<LogStore>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, BadRequest> {
    let p = params(raw, &headers, &body);
    let expr = parse_expr(p.get("query").unwrap_or_default())?;
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
    match expr {
        Expr::Log(sel) => {
            let params = QueryParams {
                start_ns: time - since,
                end_ns: time.saturating_add(1),
                direction,
                limit,
            };
            Ok(run(&store, &sel, params, categorize(&headers)))
        }
        Expr::Metric(m) => metric_response(&store, &m, &Steps::instant(time), true),
    }
}

/// A sample value as Prometheus' JSON writes it.
fn value_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

/// A step's time as Loki writes it: seconds, with milliseconds when there are any.
fn ts_json(ns: i64) -> Value {
    let ms = ns.div_euclid(1_000_000);
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

fn metric_response(
    store: &LogStore,
    expr: &crate::logql::MetricExpr,
    steps: &Steps,
    instant: bool,
) -> Result<Response, BadRequest> {
    let started = Instant::now();
    take_scan_stats();
    let value = eval_metric(store, expr, steps).map_err(|e| BadRequest(e.0))?;
    let scan = take_scan_stats();
    let (result_type, result) = match value {
        EvalValue::Scalar(v) => {
            if instant {
                ("scalar", json!([ts_json(steps.start_ns), value_text(v)]))
            } else {
                let values: Vec<Value> = (0..steps.count())
                    .map(|i| json!([ts_json(steps.at(i)), value_text(v)]))
                    .collect();
                ("matrix", json!([{ "metric": {}, "values": values }]))
            }
        }
        EvalValue::Matrix(series) if instant => {
            let result: Vec<Value> = series
                .into_iter()
                .filter_map(|s| {
                    s.values[0].map(|v| {
                        json!({ "metric": s.labels, "value": [ts_json(steps.start_ns), value_text(v)] })
                    })
                })
                .collect();
            ("vector", Value::Array(result))
        }
        EvalValue::Matrix(series) => {
            let result: Vec<Value> = series
                .into_iter()
                .map(|s| {
                    let values: Vec<Value> = s
                        .values
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| {
                            v.map(|v| json!([ts_json(steps.at(i)), value_text(v)]))
                        })
                        .collect();
                    json!({ "metric": s.labels, "values": values })
                })
                .collect();
            ("matrix", Value::Array(result))
        }
    };
    Ok(Json(json!({
        "status": "success",
        "data": {
            "resultType": result_type,
            "result": result,
            "stats": stats(scan.lines_decoded as usize, 0, 0, started.elapsed().as_secs_f64(), scan),
        }
    }))
    .into_response())
}

fn run(store: &LogStore, sel: &LogExpr, params: QueryParams, categorize: bool) -> Response {
    let started = Instant::now();
    take_scan_stats();
    let rows = select(store, sel, &params);
    let scan = take_scan_stats();
    let entries = rows.len();
    let bytes: usize = rows.iter().map(|r| r.line.len()).sum();
    let result = if categorize {
        categorized(rows)
    } else {
        merged(rows)
    };
    let mut data = Map::new();
    data.insert("resultType".into(), json!("streams"));
    data.insert("result".into(), Value::Array(result));
    data.insert(
        "stats".into(),
        stats(
            (scan.lines_decoded as usize).max(entries),
            entries,
            bytes,
            started.elapsed().as_secs_f64(),
            scan,
        ),
    );
    if categorize {
        data.insert("encodingFlags".into(), json!([CATEGORIZE_LABELS]));
    }
    Json(json!({ "status": "success", "data": data })).into_response()
}

/// One result stream per distinct label set (all categories merged), sorted by labels;
/// rows arrive in the query's direction and keep that order within a stream.
pub(crate) fn merged(rows: Vec<LogRow>) -> Vec<Value> {
    let mut out: BTreeMap<String, (Map<String, Value>, Vec<Value>)> = BTreeMap::new();
    for r in rows {
        let labels: BTreeMap<String, String> =
            r.labels.into_iter().map(|l| (l.name, l.value)).collect();
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
        slot.1.push(json!([r.ts_ns.to_string(), r.line]));
    }
    out.into_values()
        .map(|(labels, values)| json!({ "stream": labels, "values": values }))
        .collect()
}

/// Streams by their stream labels only; structured metadata and parsed labels ride on
/// each value.
fn categorized(rows: Vec<LogRow>) -> Vec<Value> {
    let mut out: BTreeMap<String, (BTreeMap<String, String>, Vec<Value>)> = BTreeMap::new();
    for r in rows {
        let mut stream = BTreeMap::new();
        let mut meta = Map::new();
        let mut parsed = Map::new();
        for l in r.labels {
            match l.category {
                Category::Stream => {
                    stream.insert(l.name, l.value);
                }
                Category::Metadata => {
                    meta.insert(l.name, Value::String(l.value));
                }
                Category::Parsed => {
                    parsed.insert(l.name, Value::String(l.value));
                }
            }
        }
        let mut extra = Map::new();
        if !meta.is_empty() {
            extra.insert("structuredMetadata".into(), Value::Object(meta));
        }
        if !parsed.is_empty() {
            extra.insert("parsed".into(), Value::Object(parsed));
        }
        let value = if extra.is_empty() {
            json!([r.ts_ns.to_string(), r.line])
        } else {
            json!([r.ts_ns.to_string(), r.line, extra])
        };
        let key = labels_string(&stream);
        out.entry(key)
            .or_insert_with(|| (stream, Vec::new()))
            .1
            .push(value);
    }
    out.into_values()
        .map(|(stream, values)| json!({ "stream": stream, "values": values }))
        .collect()
}

/// Loki's `stats` object: the summary, and the store's chunk counts (`totalChunksRef`:
/// chunks of the selected streams in the range; `totalChunksDownloaded`: those read, the
/// rest ruled out by their filters). The rest of Loki's per-component breakdown is left
/// out.
fn stats(
    entries: usize,
    returned: usize,
    bytes: usize,
    exec_seconds: f64,
    scan: ScanStats,
) -> Value {
    json!({
        "summary": {
            "bytesProcessedPerSecond": if exec_seconds > 0.0 { (bytes as f64 / exec_seconds) as u64 } else { 0 },
            "linesProcessedPerSecond": if exec_seconds > 0.0 { (entries as f64 / exec_seconds) as u64 } else { 0 },
            "totalBytesProcessed": bytes,
            "totalLinesProcessed": entries,
            "totalEntriesReturned": returned,
            "totalPostFilterLines": returned,
            "execTime": exec_seconds,
            "queueTime": 0,
            "subqueries": 0,
            "splits": 0,
            "shards": 0,
            "totalChunksRef": scan.chunks_ref,
            "totalChunksDownloaded": scan.chunks_downloaded,
        },
        "querier": {
            "store": {
                "totalChunksRef": scan.chunks_ref,
                "totalChunksDownloaded": scan.chunks_downloaded,
                "chunk": { "decompressedLines": scan.lines_decoded },
            }
        },
    })
}

/// Reads the optional `query` stream selector that narrows label requests.
fn optional_selector(p: &Params) -> Result<Option<LogExpr>, BadRequest> {
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

/// `index/stats`: how many streams, chunks, entries and line bytes the selector's
/// streams hold between `start` and `end`, as Loki's index answers it.
async fn index_stats(
    State(store): State<Arc<LogStore>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, BadRequest> {
    let p = params(raw, &headers, &body);
    let (start, end) = range(&p)?;
    let sel = parse(p.get("query").unwrap_or_default())?;
    let st = store.stats(|l| sel.matches_stream(l), start, end.saturating_add(1));
    Ok(Json(json!({
        "streams": st.streams,
        "chunks": st.chunks,
        "bytes": st.bytes,
        "entries": st.entries,
    }))
    .into_response())
}

/// Loki's default `limit` of `detected_fields`: lines sampled.
const DETECTED_FIELDS_LINES: usize = 1000;

/// `detected_fields`: the fields of the newest lines the query selects (logfmt or JSON
/// in the line, and structured metadata), each with its type, distinct values and the
/// parsers that found it, as Grafana's Logs Drilldown asks.
async fn detected_fields(
    State(store): State<Arc<LogStore>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, BadRequest> {
    let p = params(raw, &headers, &body);
    let (start, end) = range(&p)?;
    let sel = parse(p.get("query").unwrap_or_default())?;
    let limit = match p.get("line_limit").or(p.get("limit")) {
        None => DETECTED_FIELDS_LINES,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid limit: {v:?}"))?,
    };
    let rows = select(
        &store,
        &sel,
        &QueryParams {
            start_ns: start,
            end_ns: end.saturating_add(1),
            direction: Direction::Backward,
            limit,
        },
    );
    let fields = crate::logql::detect::detect_fields(&rows);
    let fields: Vec<Value> = fields
        .into_iter()
        .map(|f| {
            json!({
                "label": f.label,
                "type": f.kind,
                "cardinality": f.cardinality,
                "parsers": if f.parsers.is_empty() { Value::Null } else { json!(f.parsers) },
                "jsonPath": f.json_path,
            })
        })
        .collect();
    Ok(Json(json!({ "fields": fields, "limit": limit })).into_response())
}

#[cfg(test)]
mod tests;
