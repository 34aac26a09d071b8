//! `POST /api/v1/write`: the remote_write 1.0 receiver, answering as Prometheus' own
//! (`storage/remote/write_handler.go`) does.
//!
//! | request | answer |
//! | --- | --- |
//! | accepted | 204 No Content |
//! | some samples refused (bad labels, out of order, duplicate, native histogram) | 400, the reasons in plain text; the other samples are kept |
//! | body not snappy block format, or not a `WriteRequest` | 400 |
//! | `Content-Type` other than `application/x-protobuf` (with `proto=prometheus.WriteRequest` or no `proto`), e.g. remote_write 2.0's `proto=io.prometheus.write.v2.Request` | 415 |
//! | `Content-Encoding` other than `snappy` | 415 |
//! | body above the limit, compressed or decompressed | 413 |
//! | over the memory limit / log unavailable | 429 / 503 with `Retry-After` |
//! | no metrics pipeline | 404 |
//!
//! A missing `Content-Type` or `Content-Encoding` is taken as 1.0 and snappy, as
//! Prometheus does. `X-Prometheus-Remote-Write-Version` is not required. Error bodies are
//! plain text, one line. Senders retry 5xx (and, if configured, 429) and drop the batch
//! on other 4xx, so a partial refusal is never resent.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pharos_model::telemetry::SelfMetrics;

use super::codec::{self, DecodeError};
use super::{RECEIVER, WriteError, WriteSink};

/// The route remote_write senders are pointed at, as on Prometheus.
pub const PATH: &str = "/api/v1/write";

const PROTOBUF: &str = "application/x-protobuf";
const V1_MESSAGE: &str = "prometheus.WriteRequest";
const V2_MESSAGE: &str = "io.prometheus.write.v2.Request";
const SIGNAL: &str = "metrics";

struct Shared<S> {
    sink: Arc<S>,
    metrics: Arc<SelfMetrics>,
    max_body_bytes: usize,
}

/// Returns the remote_write route, to be merged into the router of the OTLP/HTTP port.
/// Bodies above `max_body_bytes`, compressed or decompressed, are refused with 413.
pub fn router<S: WriteSink>(
    sink: Arc<S>,
    metrics: Arc<SelfMetrics>,
    max_body_bytes: usize,
) -> Router {
    let shared = Arc::new(Shared {
        sink,
        metrics,
        max_body_bytes,
    });
    Router::new()
        .route(PATH, post(write::<S>))
        .with_state(shared)
}

async fn write<S: WriteSink>(
    State(shared): State<Arc<Shared<S>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Err(message) = check_content_type(header_str(header::CONTENT_TYPE)) {
        return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, &message);
    }
    if let Some(enc) = header_str(header::CONTENT_ENCODING)
        && !enc.trim().eq_ignore_ascii_case("snappy")
    {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "{enc} encoding (compression) is not accepted by this server; only snappy is acceptable"
            ),
        );
    }
    let limit = shared.max_body_bytes;
    if let Some(size) = header_str(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok())
        && size > DRAIN_MAX_BYTES as u64
    {
        return decode_error(DecodeError::TooLarge { size, limit });
    }
    let raw = match read_body(body, limit).await {
        Ok(raw) => raw,
        Err(resp) => return resp,
    };
    let req = match codec::decode(&raw, limit) {
        Ok(req) => req,
        Err(e) => return decode_error(e),
    };
    let total: u64 = req
        .timeseries
        .iter()
        .map(|ts| (ts.samples.len() + ts.histograms.len()) as u64)
        .sum();
    let m = &shared.metrics;
    match shared.sink.write(req).await {
        Ok(rejected) => {
            m.record_accepted(RECEIVER, SIGNAL, total.saturating_sub(rejected.count));
            m.record_refused(RECEIVER, SIGNAL, "invalid", rejected.count);
            if rejected.count == 0 {
                StatusCode::NO_CONTENT.into_response()
            } else {
                text(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "refused {} of {total} samples, kept the others: {}",
                        rejected.count, rejected.message
                    ),
                )
            }
        }
        Err(e) => {
            m.record_refused(RECEIVER, SIGNAL, e.reason(), total);
            write_error(&e)
        }
    }
}

/// How much of an oversized body is read and thrown away before answering 413,
/// so the client sees the answer rather than a connection reset mid-upload.
const DRAIN_MAX_BYTES: usize = 64 << 20;

/// Reads the whole body, refusing with 413 once it grows past `limit` bytes;
/// past the limit the rest is read and discarded, up to [`DRAIN_MAX_BYTES`].
async fn read_body(mut body: Body, limit: usize) -> Result<Vec<u8>, Response> {
    use axum::body::HttpBody;
    let mut raw = Vec::new();
    let mut total = 0usize;
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame =
            frame.map_err(|e| text(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total = total.saturating_add(data.len());
        if total <= limit {
            raw.extend_from_slice(&data);
        } else if total > DRAIN_MAX_BYTES {
            break;
        }
    }
    if total > limit {
        return Err(decode_error(DecodeError::TooLarge {
            size: total as u64,
            limit,
        }));
    }
    Ok(raw)
}

/// Accepts remote_write 1.0's content type; the message says why another is refused.
fn check_content_type(content_type: Option<&str>) -> Result<(), String> {
    // No content type: a 1.0 sender from before the 2.0 spec, as Prometheus assumes.
    let Some(content_type) = content_type else {
        return Ok(());
    };
    let mut parts = content_type.split(';').map(str::trim);
    let media = parts.next().unwrap_or("");
    if !media.eq_ignore_ascii_case(PROTOBUF) {
        return Err(format!(
            "expected {PROTOBUF} as the first (media) part, got {content_type} content-type"
        ));
    }
    for param in parts.filter(|p| !p.is_empty()) {
        let Some((key, value)) = param.split_once('=') else {
            return Err(format!(
                "expected parameters to be key-values, got {param} in {content_type} content-type"
            ));
        };
        if key.trim() != "proto" {
            continue;
        }
        return match value.trim().trim_matches('"') {
            V1_MESSAGE => Ok(()),
            V2_MESSAGE => Err(format!(
                "{V2_MESSAGE} protobuf message (remote_write 2.0) is not supported yet; accepted [{V1_MESSAGE}]"
            )),
            other => Err(format!(
                "unknown remote write protobuf message {other}; accepted [{V1_MESSAGE}]"
            )),
        };
    }
    Ok(())
}

fn decode_error(e: DecodeError) -> Response {
    let status = match e {
        DecodeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        DecodeError::Snappy(_) | DecodeError::Protobuf(_) => StatusCode::BAD_REQUEST,
    };
    text(status, &e.to_string())
}

/// The one mapping of ingest refusals to HTTP.
fn write_error(e: &WriteError) -> Response {
    let status = match e {
        WriteError::MemoryLimit(_) => StatusCode::TOO_MANY_REQUESTS,
        WriteError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        WriteError::NoPipeline(_) => StatusCode::NOT_FOUND,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
    use axum::http::Request;
    use parking_lot::Mutex;
    use pharos_model::Rejected;
    use tower::ServiceExt;

    /// A sink that records requests and answers with a canned result.
    struct Fake {
        got: Mutex<Vec<WriteRequest>>,
        answer: Result<Rejected, WriteError>,
    }

    impl WriteSink for Fake {
        async fn write(&self, req: WriteRequest) -> Result<Rejected, WriteError> {
            self.got.lock().push(req);
            self.answer.clone()
        }
    }

    fn request() -> WriteRequest {
        WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("__name__", "up")],
                samples: vec![
                    Sample {
                        value: 1.0,
                        timestamp: 1,
                    };
                    3
                ],
                ..Default::default()
            }],
            metadata: vec![],
        }
    }

    struct Answer {
        status: u16,
        retry_after: Option<String>,
        body: String,
        /// How many requests reached the sink.
        written: usize,
        metrics: String,
    }

    async fn send(
        answer: Result<Rejected, WriteError>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let sink = Arc::new(Fake {
            got: Mutex::new(Vec::new()),
            answer,
        });
        let metrics = Arc::new(SelfMetrics::new());
        let app = router(sink.clone(), metrics.clone(), 1000);
        let mut req = Request::post(PATH);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = app
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            retry_after,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
            written: sink.got.lock().len(),
            metrics: metrics.encode(),
        }
    }

    const V1: &[(&str, &str)] = &[
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "snappy"),
        ("x-prometheus-remote-write-version", "0.1.0"),
    ];

    fn ok() -> Result<Rejected, WriteError> {
        Ok(Rejected::default())
    }

    #[tokio::test]
    async fn accepted_is_204_and_counted() {
        let a = send(ok(), V1, codec::encode(&request())).await;
        assert_eq!((a.status, a.body.as_str(), a.written), (204, "", 1));
        assert!(
            a.metrics.contains(
                "pharos_receiver_accepted_items_total{receiver=\"prometheus_remote_write\",signal=\"metrics\"} 3"
            ),
            "{}",
            a.metrics
        );
        // Without any header, the request is taken as 1.0 with snappy.
        let a = send(ok(), &[], codec::encode(&request())).await;
        assert_eq!((a.status, a.written), (204, 1));
        let v1 = [(
            "content-type",
            "application/x-protobuf; proto=prometheus.WriteRequest",
        )];
        assert_eq!(send(ok(), &v1, codec::encode(&request())).await.status, 204);
    }

    #[tokio::test]
    async fn partial_refusal_is_400_with_the_reasons() {
        let mut rejected = Rejected::default();
        rejected.add(2, "out of order sample");
        let a = send(Ok(rejected), V1, codec::encode(&request())).await;
        assert_eq!(a.status, 400);
        assert_eq!(
            a.body,
            "refused 2 of 3 samples, kept the others: out of order sample\n"
        );
        assert!(a.metrics.contains("signal=\"metrics\"} 1"), "{}", a.metrics);
        assert!(
            a.metrics
                .contains("signal=\"metrics\",reason=\"invalid\"} 2"),
            "{}",
            a.metrics
        );
    }

    /// Headers, body, expected status, text in the answer.
    type BadCase<'a> = (&'a [(&'a str, &'a str)], Vec<u8>, u16, &'a str);

    #[tokio::test]
    async fn undecodable_unsupported_and_oversized_bodies() {
        let cases: &[BadCase] = &[
            (V1, vec![0xff, 0xff, 0xff], 400, "snappy: "),
            (V1, vec![], 400, "snappy: "),
            (
                V1,
                snap::raw::Encoder::new().compress_vec(&[0xff; 4]).unwrap(),
                400,
                "protobuf: ",
            ),
            (
                &[(
                    "content-type",
                    "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                )],
                codec::encode(&request()),
                415,
                "io.prometheus.write.v2.Request protobuf message (remote_write 2.0) is not supported yet; accepted [prometheus.WriteRequest]\n",
            ),
            (
                &[("content-type", "application/x-protobuf;proto=foo")],
                codec::encode(&request()),
                415,
                "unknown remote write protobuf message foo",
            ),
            (
                &[("content-type", "application/json")],
                codec::encode(&request()),
                415,
                "expected application/x-protobuf as the first (media) part, got application/json content-type\n",
            ),
            (
                &[("content-encoding", "gzip")],
                codec::encode(&request()),
                415,
                "gzip encoding (compression) is not accepted by this server; only snappy is acceptable\n",
            ),
            (
                V1,
                vec![0; 1001],
                413,
                "request body of 1001 bytes is larger than the limit of 1000 bytes\n",
            ),
            (
                V1,
                codec::encode(&WriteRequest {
                    timeseries: vec![request().timeseries[0].clone(); 50],
                    metadata: vec![],
                }),
                413,
                "is larger than the limit of 1000 bytes",
            ),
        ];
        for (headers, body, status, message) in cases {
            let a = send(ok(), headers, body.clone()).await;
            assert_eq!(a.status, *status, "{headers:?}: {}", a.body);
            assert!(a.body.contains(message), "{message:?} in {:?}", a.body);
            assert_eq!(a.written, 0, "nothing reaches the sink");
        }
    }

    #[tokio::test]
    async fn refusals_of_the_ingest_path() {
        let cases = [
            (WriteError::MemoryLimit("full".into()), 429, Some("5")),
            (WriteError::Unavailable("disk".into()), 503, Some("10")),
            (
                WriteError::NoPipeline("no metrics pipeline".into()),
                404,
                None,
            ),
        ];
        for (e, status, retry_after) in cases {
            let reason = e.reason();
            let a = send(Err(e.clone()), V1, codec::encode(&request())).await;
            assert_eq!(a.status, status, "{e}");
            assert_eq!(a.retry_after.as_deref(), retry_after, "{e}");
            assert_eq!(a.body, format!("{e}\n"));
            assert!(
                a.metrics.contains(&format!("reason=\"{reason}\"}} 3")),
                "{}",
                a.metrics
            );
        }
    }
}
