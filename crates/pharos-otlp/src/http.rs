//! OTLP/HTTP: `POST /v1/traces`, `/v1/metrics`, `/v1/logs`.
//!
//! Status codes follow the OTLP/HTTP spec and the Collector: 200 with an
//! export response (with `partialSuccess` when items were rejected), 400 for
//! a body that does not decode, 413 above the size limit, 415 for a content
//! type other than protobuf or JSON, 429 (memory limit) or 503 (storage
//! unavailable) with `Retry-After`, 404 for a signal no pipeline takes. Error bodies are a `google.rpc.Status`
//! in the request's encoding.

use crate::decode::{self, DecodeError, Encoding};
use crate::signal::{OtlpSignal, response_json};
use crate::{ConsumeError, Consumer, Limits, RECEIVER_HTTP};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pharos_model::telemetry::SelfMetrics;
use pharos_model::trace_batch::TraceBatch;
use pharos_model::{ExportLogsServiceRequest, ExportMetricsServiceRequest};
use std::sync::Arc;

struct Shared<C> {
    consumer: Arc<C>,
    metrics: Arc<SelfMetrics>,
    limits: Limits,
}

/// Returns the OTLP/HTTP routes, to be merged into the router of port 4318.
pub fn router<C>(consumer: Arc<C>, metrics: Arc<SelfMetrics>, limits: Limits) -> Router
where
    C: Consumer<TraceBatch>
        + Consumer<ExportMetricsServiceRequest>
        + Consumer<ExportLogsServiceRequest>,
{
    let shared = Arc::new(Shared {
        consumer,
        metrics,
        limits,
    });
    Router::new()
        .route(TraceBatch::PATH, post(export::<TraceBatch, C>))
        .route(
            ExportMetricsServiceRequest::PATH,
            post(export::<ExportMetricsServiceRequest, C>),
        )
        .route(
            ExportLogsServiceRequest::PATH,
            post(export::<ExportLogsServiceRequest, C>),
        )
        .with_state(shared)
}

async fn export<R, C>(
    State(shared): State<Arc<Shared<C>>>,
    headers: HeaderMap,
    body: Body,
) -> Response
where
    R: OtlpSignal,
    C: Consumer<R>,
{
    let Some(encoding) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Encoding::from_content_type)
    else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "415 unsupported media type, supported: [application/json, application/x-protobuf]",
        )
            .into_response();
    };
    let limit = shared.limits.max_request_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_MAX_BYTES as u64) {
        return decode_error(encoding, DecodeError::TooLarge { limit });
    }
    let raw = match read_body(body, limit).await {
        Ok(b) => b,
        Err(None) => return decode_error(encoding, DecodeError::TooLarge { limit }),
        Err(Some(e)) => {
            return status_response(
                encoding,
                StatusCode::BAD_REQUEST,
                &format!("cannot read body: {e}"),
                None,
            );
        }
    };
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let body = match decode::decompress(content_encoding, raw, limit) {
        Ok(body) => body,
        Err(e) => return decode_error(encoding, e),
    };
    let req = match R::decode_body(encoding, body.clone()) {
        Ok(req) => req,
        Err(e) => return decode_error(encoding, e),
    };
    if encoding == Encoding::Json
        && let Err(message) = req.check_json(&body)
    {
        return status_response(encoding, StatusCode::BAD_REQUEST, &message, None);
    }
    match crate::receive(&*shared.consumer, &shared.metrics, RECEIVER_HTTP, req).await {
        Ok(rejected) => {
            let body = match encoding {
                Encoding::Protobuf => prost::Message::encode_to_vec(&R::response(&rejected)),
                Encoding::Json => response_json::<R>(&rejected).into_bytes(),
            };
            ([(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
        }
        Err(e) => consume_error(encoding, &e),
    }
}

/// How much of an oversized body is read and thrown away before answering 413,
/// so the client sees the answer rather than a connection reset mid-upload.
const DRAIN_MAX_BYTES: usize = 64 << 20;

/// Reads the body up to `limit` bytes. Past the limit it keeps reading and
/// discarding up to [`DRAIN_MAX_BYTES`], then answers `Err(None)` (too large);
/// `Err(Some(_))` is a transport error.
async fn read_body(mut body: Body, limit: usize) -> Result<bytes::Bytes, Option<axum::Error>> {
    use http_body_util::BodyExt;
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(Some)?.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total <= limit {
            buf.extend_from_slice(&data);
        } else if total > DRAIN_MAX_BYTES {
            return Err(None);
        }
    }
    if total > limit {
        Err(None)
    } else {
        Ok(buf.freeze())
    }
}

fn decode_error(encoding: Encoding, e: DecodeError) -> Response {
    let status = match e {
        DecodeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    status_response(encoding, status, &e.to_string(), None)
}

fn consume_error(encoding: Encoding, e: &ConsumeError) -> Response {
    let status = match e {
        ConsumeError::MemoryLimit(_) => StatusCode::TOO_MANY_REQUESTS,
        ConsumeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ConsumeError::NoPipeline(_) => StatusCode::NOT_FOUND,
    };
    status_response(
        encoding,
        status,
        &e.to_string(),
        e.retry_after().map(|d| d.as_secs()),
    )
}

/// An error response whose body is a `google.rpc.Status`, as OTLP/HTTP asks.
fn status_response(
    encoding: Encoding,
    status: StatusCode,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    let code = grpc_code(status);
    let body = match encoding {
        Encoding::Protobuf => prost::Message::encode_to_vec(&tonic_types::pb::Status {
            code,
            message: message.to_string(),
            details: vec![],
        }),
        Encoding::Json => serde_json::json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    };
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// The gRPC code that matches an HTTP status, for `google.rpc.Status.code`.
fn grpc_code(status: StatusCode) -> i32 {
    match status {
        StatusCode::BAD_REQUEST => tonic::Code::InvalidArgument as i32,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => {
            tonic::Code::ResourceExhausted as i32
        }
        StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable as i32,
        StatusCode::NOT_FOUND => tonic::Code::Unimplemented as i32,
        _ => tonic::Code::Unknown as i32,
    }
}
