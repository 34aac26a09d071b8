//! The Prometheus HTTP API (`/api/v1/*`) over a [`Querier`], as an axum [`Router`].
//!
//! Every endpoint answers GET and form-encoded POST, with Prometheus' parameter formats,
//! JSON shapes and error wording. Handlers parse parameters ([`params`]), call the store or
//! the engine, and write JSON ([`json`]); engine errors become wire errors only in
//! [`ApiError::from_query`]. The query endpoints add Prometheus' `"stats"` for a non-empty
//! `stats` parameter (per-step sample counts too for `stats=all`, as Prometheus with its
//! `promql-per-step-stats` feature); `parse_query` returns the expression's tree
//! ([`ast`]).
//!
//! Expressions the engine does not evaluate yet (native-histogram functions, `info`) are
//! refused as `bad_data` (400), the type Prometheus uses for queries it cannot accept;
//! failures while executing are `execution` (422), as in Prometheus.
//!
//! Architecture invariant: this is the only module of the slice that knows HTTP and JSON.

pub mod ast;
pub mod exemplars;
pub mod json;
pub mod metadata;
pub mod params;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::MetricsStore;
use crate::promql::{self, QueryError, QueryOptions};
use crate::store::{Matcher, Querier};
use params::{Form, parse_duration_ns, parse_time, parse_time_or};

/// The most points a range query may return per series, as in Prometheus.
const MAX_POINTS_PER_SERIES: i128 = 11_000;

/// Prometheus' closed set of error types; each has one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// 400: the request is malformed.
    BadData,
    /// 422: the query failed while executing.
    Execution,
    /// 503: the query ran out of time.
    Timeout,
    /// 500: a bug or an unexpected condition.
    Internal,
}

impl ErrorType {
    /// Returns the `errorType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Internal => "internal",
        }
    }

    /// Returns the HTTP status Prometheus answers with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error on the wire: `{"status":"error","errorType":...,"error":...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The error type, which fixes the status code.
    pub kind: ErrorType,
    /// The message.
    pub message: String,
}

impl ApiError {
    fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError {
            kind: ErrorType::BadData,
            message: message.into(),
        }
    }

    /// Returns Prometheus' `invalid parameter "<name>": <err>` error.
    fn invalid_param(name: &str, err: impl std::fmt::Display) -> ApiError {
        ApiError::bad_data(format!("invalid parameter {name:?}: {err}"))
    }

    /// Maps an engine error to the wire: the one place that decides types and wording.
    pub fn from_query(err: QueryError) -> ApiError {
        match err {
            QueryError::Parse(_) => ApiError::invalid_param("query", err),
            QueryError::InvalidRangeType(_) | QueryError::Unsupported(_) => {
                ApiError::bad_data(err.to_string())
            }
            QueryError::Timeout(_) => ApiError {
                kind: ErrorType::Timeout,
                message: err.to_string(),
            },
            QueryError::Execution(_) => ApiError {
                kind: ErrorType::Execution,
                message: err.to_string(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = String::from("{\"status\":\"error\",\"errorType\":\"");
        body.push_str(self.kind.as_str());
        body.push_str("\",\"error\":");
        json::string(&mut body, &self.message);
        body.push('}');
        let mut response = (
            self.kind.status(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        // Left for a layer above (the binary's request metrics) to count errors by type
        // without reading bodies.
        response.extensions_mut().insert(self.kind);
        response
    }
}

/// A success body around already-written JSON `data`.
struct Success(String);

impl IntoResponse for Success {
    fn into_response(self) -> Response {
        Warned(self.0, vec![]).into_response()
    }
}

/// A success body with `warnings` beside the data, as Prometheus adds them.
struct Warned(String, Vec<&'static str>);

impl IntoResponse for Warned {
    fn into_response(self) -> Response {
        let mut body = format!("{{\"status\":\"success\",\"data\":{}", self.0);
        if !self.1.is_empty() {
            body.push_str(",\"warnings\":[");
            for (i, w) in self.1.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                json::string(&mut body, w);
            }
            body.push(']');
        }
        body.push('}');
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

type Shared = Arc<dyn Querier>;

/// Returns the Prometheus API router over a store.
pub fn router(store: Arc<MetricsStore>) -> Router {
    router_for(store)
}

/// Returns the Prometheus API router over a store, with `/api/v1/targets`
/// reading the scrape manager's state through `targets`.
pub fn router_with_targets(store: Arc<MetricsStore>, targets: status::TargetsFn) -> Router {
    router_parts(store, targets)
}

/// Returns the Prometheus API router over any [`Querier`].
pub fn router_for(querier: Arc<dyn Querier>) -> Router {
    router_parts(querier, Arc::new(Default::default))
}

fn router_parts(querier: Arc<dyn Querier>, targets: status::TargetsFn) -> Router {
    status::mark_start();
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route(
            "/api/v1/status/runtimeinfo",
            get(|| async { Success(status::runtime_info()) }),
        )
        .route("/api/v1/status/tsdb", get(tsdb))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/format_query", get(format_query).post(format_query))
        .route("/api/v1/parse_query", get(parse_query).post(parse_query))
        .route(
            "/api/v1/query_exemplars",
            get(query_exemplars).post(query_exemplars),
        )
        .route(
            "/api/v1/targets",
            get(move || {
                let snapshot = targets();
                async move { Success(status::targets(&snapshot)) }
            }),
        )
        .with_state(querier)
}

/// Returns the request's form: a form-encoded body first, then the URL query.
fn form(headers: &HeaderMap, query: Option<String>, body: &Bytes) -> Form {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    Form::parse(is_form.then_some(body.as_ref()), query.as_deref())
}

fn options(form: &Form) -> Result<QueryOptions, ApiError> {
    let mut opts = QueryOptions {
        per_step_stats: form.value("stats") == "all",
        ..QueryOptions::default()
    };
    let timeout = form.value("timeout");
    if !timeout.is_empty() {
        let ns = parse_duration_ns(timeout).map_err(|e| ApiError::invalid_param("timeout", e))?;
        opts.deadline = Some(Instant::now() + Duration::from_nanos(ns.max(0) as u64));
    }
    Ok(opts)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn query(
    State(q): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let form = form(&headers, raw, &body);
    respond(instant(&*q, &form))
}

fn instant(q: &dyn Querier, form: &Form) -> Result<String, ApiError> {
    let t = time_param(form, "time", now_ms())?;
    let opts = options(form)?;
    let (value, stats) = promql::instant_query_with_stats(q, form.value("query"), t, &opts)
        .map_err(ApiError::from_query)?;
    Ok(query_data(form, &value, &stats))
}

/// Writes a query result, with `"stats"` when the `stats` parameter is not empty (as
/// Prometheus' default stats renderer decides).
fn query_data(form: &Form, value: &promql::Value, stats: &promql::QueryStats) -> String {
    let mut out = String::new();
    let stats = (!form.value("stats").is_empty()).then_some(stats);
    json::query_data_with_stats(&mut out, value, stats);
    out
}

async fn query_range(
    State(q): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let form = form(&headers, raw, &body);
    respond(range(&*q, &form))
}

fn range(q: &dyn Querier, form: &Form) -> Result<String, ApiError> {
    let start = parse_time(form.value("start")).map_err(|e| ApiError::invalid_param("start", e))?;
    let end = parse_time(form.value("end")).map_err(|e| ApiError::invalid_param("end", e))?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step_ns =
        parse_duration_ns(form.value("step")).map_err(|e| ApiError::invalid_param("step", e))?;
    if step_ns <= 0 {
        return Err(ApiError::invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (i128::from(end) - i128::from(start)) * 1_000_000 / step_ns > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let opts = options(form)?;
    let step_ms = i64::try_from(step_ns / 1_000_000)
        .unwrap_or(i64::MAX)
        .max(1);
    let (value, stats) =
        promql::range_query_with_stats(q, form.value("query"), start, end, step_ms, &opts)
            .map_err(ApiError::from_query)?;
    Ok(query_data(form, &value, &stats))
}

/// Parses `match[]` values into matcher sets, as Prometheus' `parseMatchersParam`.
fn matcher_sets(form: &Form) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut sets = Vec::new();
    for s in form.values("match[]") {
        let expr =
            promql_parser::parser::parse(s).map_err(|e| ApiError::invalid_param("match[]", e))?;
        let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
            return Err(ApiError::invalid_param(
                "match[]",
                format!("expected a series selector, got {s:?}"),
            ));
        };
        let set =
            promql::selector_matchers(&vs).map_err(|e| ApiError::invalid_param("match[]", e))?;
        if set.iter().all(|m| m.matches("")) {
            return Err(ApiError::invalid_param(
                "match[]",
                "match[] must contain at least one non-empty matcher",
            ));
        }
        sets.push(set);
    }
    Ok(sets)
}

/// Parses an optional time parameter as Prometheus' `parseTimeParam`, wording included.
fn time_param(form: &Form, name: &str, default: i64) -> Result<i64, ApiError> {
    parse_time_or(form.value(name), default)
        .map_err(|e| ApiError::invalid_param(name, format!("Invalid time value for '{name}': {e}")))
}

fn time_range(form: &Form) -> Result<(i64, i64), ApiError> {
    Ok((
        time_param(form, "start", i64::MIN)?,
        time_param(form, "end", i64::MAX)?,
    ))
}

async fn series(
    State(q): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let form = form(&headers, raw, &body);
    respond_limited((|| {
        if form.values("match[]").is_empty() {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        let (start, end) = time_range(&form)?;
        let sets = matcher_sets(&form)?;
        let limit = status::limit_param(&form)?;
        let mut series = q.series(&sets, start, end);
        let cut = status::truncate(&mut series, limit);
        let mut out = String::from("[");
        for (i, l) in series.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::labels(&mut out, l);
        }
        out.push(']');
        Ok((out, cut))
    })())
}

async fn labels(
    State(q): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let form = form(&headers, raw, &body);
    respond_limited((|| {
        let (start, end) = time_range(&form)?;
        let sets = matcher_sets(&form)?;
        let limit = status::limit_param(&form)?;
        let mut names = q.label_names(&sets, start, end);
        let cut = status::truncate(&mut names, limit);
        let mut out = String::new();
        json::strings(&mut out, &names);
        Ok((out, cut))
    })())
}

async fn label_values(
    State(q): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let form = form(&headers, raw, &body);
    respond_limited((|| {
        if !is_label_name(&name) {
            return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
        }
        let (start, end) = time_range(&form)?;
        let sets = matcher_sets(&form)?;
        let limit = status::limit_param(&form)?;
        let mut values = q.label_values(&name, &sets, start, end);
        let cut = status::truncate(&mut values, limit);
        let mut out = String::new();
        json::strings(&mut out, &values);
        Ok((out, cut))
    })())
}

async fn buildinfo() -> Response {
    let mut out = String::from("{\"version\":\"3.0.0\",\"revision\":");
    json::string(&mut out, concat!("pharos-", env!("CARGO_PKG_VERSION")));
    out.push_str(",\"branch\":\"\",\"buildUser\":\"\",\"buildDate\":\"\",\"goVersion\":\"\"}");
    Success(out).into_response()
}

async fn metadata(State(q): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    let form = Form::parse(None, raw.as_deref());
    respond(metadata::metadata(&*q, &form))
}

/// Responds with a result that `limit` may have cut, warning when it did.
fn respond_limited(result: Result<(String, bool), ApiError>) -> Response {
    match result {
        Ok((data, cut)) => {
            Warned(data, if cut { vec![status::TRUNCATED] } else { vec![] }).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn tsdb(State(q): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    let form = Form::parse(None, raw.as_deref());
    respond(status::tsdb(&q, &form))
}

async fn format_query(headers: HeaderMap, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    respond(status::format_query(&form(&headers, raw, &body)))
}

async fn parse_query(headers: HeaderMap, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    respond(ast::parse_query(&form(&headers, raw, &body)))
}

async fn query_exemplars(
    State(q): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    match exemplars::query_exemplars(&*q, &form(&headers, raw, &body)) {
        Ok(Some(data)) => Success(data).into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

fn respond(result: Result<String, ApiError>) -> Response {
    match result {
        Ok(data) => Success(data).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Returns whether `s` matches Prometheus' `^[a-zA-Z_][a-zA-Z0-9_]*$`.
fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
