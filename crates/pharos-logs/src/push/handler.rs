//! The `POST /loki/api/v1/push` route (see [`super`] for the answers).

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pharos_model::telemetry::SelfMetrics;
use prost::Message;

use super::proto::PushRequest;
use super::{PushError, PushSink};
use crate::store::record::STREAM_LIMIT_MESSAGE;

/// The route Loki clients push to.
pub const PATH: &str = "/loki/api/v1/push";

const RECEIVER: &str = "loki";
const SIGNAL: &str = "logs";

struct Shared<S> {
    sink: Arc<S>,
    metrics: Arc<SelfMetrics>,
    max_body_bytes: usize,
}

/// Returns the push route, to be merged into the router of the OTLP/HTTP port. Bodies
/// above `max_body_bytes`, compressed or decompressed, are refused with 413.
pub fn router<S: PushSink>(
    sink: Arc<S>,
    metrics: Arc<SelfMetrics>,
    max_body_bytes: usize,
) -> Router {
    Router::new()
        .route(PATH, post(push::<S>))
        .with_state(Arc::new(Shared {
            sink,
            metrics,
            max_body_bytes,
        }))
}

async fn push<S: PushSink>(
    State(shared): State<Arc<Shared<S>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = shared.max_body_bytes;
    let raw = match axum::body::to_bytes(body, limit).await {
        Ok(raw) => raw,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return if too_large {
                text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("request body too large: more than {limit} bytes"),
                )
            } else {
                text(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}"))
            };
        }
    };
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let media = header_str(header::CONTENT_TYPE)
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let encoding = header_str(header::CONTENT_ENCODING)
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (req, snappy) = match decode(&raw, &media, &encoding, limit) {
        Ok((req, snappy)) => (req, snappy.then_some(raw)),
        Err((status, msg)) => return text(status, &msg),
    };
    let total: u64 = req.streams.iter().map(|s| s.entries.len() as u64).sum();
    let m = &shared.metrics;
    match shared.sink.push(req, snappy).await {
        Ok(rejected) => {
            m.record_accepted(RECEIVER, SIGNAL, total.saturating_sub(rejected.count));
            if rejected.count == 0 {
                return StatusCode::NO_CONTENT.into_response();
            }
            let status = if rejected.message.starts_with(STREAM_LIMIT_MESSAGE) {
                m.record_refused(RECEIVER, SIGNAL, "stream_limit", rejected.count);
                StatusCode::TOO_MANY_REQUESTS
            } else {
                m.record_refused(RECEIVER, SIGNAL, "invalid", rejected.count);
                StatusCode::BAD_REQUEST
            };
            text(status, &rejected.message)
        }
        Err(e) => {
            m.record_refused(RECEIVER, SIGNAL, e.reason(), total);
            push_error(&e)
        }
    }
}

/// Decodes a body by its media type and encoding, as Loki's `ParseRequest` does; whether
/// `raw` is the request in snappy's block format.
fn decode(
    raw: &[u8],
    media: &str,
    encoding: &str,
    limit: usize,
) -> Result<(PushRequest, bool), (StatusCode, String)> {
    let too_large = |size: usize| {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body too large: {size} bytes, limit: {limit} bytes"),
        )
    };
    let bad = |msg: String| (StatusCode::BAD_REQUEST, msg);
    let inflated: Option<Vec<u8>> = match encoding {
        "" | "snappy" | "identity" => None,
        "gzip" | "x-gzip" => Some(inflate(flate2::read::GzDecoder::new(raw), limit)),
        "deflate" => Some(inflate(flate2::read::ZlibDecoder::new(raw), limit)),
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {other:?} not supported"),
            ));
        }
    }
    .transpose()
    .map_err(|e| match e {
        Inflate::TooLarge => too_large(limit + 1),
        Inflate::Io(e) => bad(format!("cannot decompress the body ({encoding}): {e}")),
    })?;
    let body = inflated.as_deref().unwrap_or(raw);
    if media == "application/json" {
        return super::json::decode(body).map(|r| (r, false)).map_err(bad);
    }
    let size = snap::raw::decompress_len(body).map_err(|e| bad(format!("snappy: {e}")))?;
    if size > limit {
        return Err(too_large(size));
    }
    let plain = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| bad(format!("snappy: {e}")))?;
    PushRequest::decode(plain.as_slice())
        .map(|r| (r, inflated.is_none()))
        .map_err(|e| bad(format!("protobuf: {e}")))
}

enum Inflate {
    TooLarge,
    Io(std::io::Error),
}

fn inflate(reader: impl Read, limit: usize) -> Result<Vec<u8>, Inflate> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(Inflate::Io)?;
    if out.len() > limit {
        return Err(Inflate::TooLarge);
    }
    Ok(out)
}

/// Encodes a push request as a protobuf body (snappy block format), for clients and tests.
pub fn encode(req: &PushRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("BUG: snappy refused a protobuf body (only inputs above 4 GiB fail)")
}

fn push_error(e: &PushError) -> Response {
    let status = match e {
        PushError::MemoryLimit(_) => StatusCode::TOO_MANY_REQUESTS,
        PushError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        PushError::NoPipeline(_) => StatusCode::NOT_FOUND,
    };
    let mut resp = text(status, &e.to_string());
    if let Some(after) = e.retry_after() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs()));
    }
    resp
}

/// A plain-text answer, as Go's `http.Error` writes it.
fn text(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}
