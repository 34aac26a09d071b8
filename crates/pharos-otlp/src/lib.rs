//! OTLP receivers: OTLP/gRPC (`TraceService`, `MetricsService`, `LogsService`)
//! and OTLP/HTTP (`/v1/traces`, `/v1/metrics`, `/v1/logs`), to the OTLP spec.
//!
//! A receiver decodes a request (protobuf or OTLP/JSON, plain or gzip),
//! checks what OTLP itself requires of every item ([`validate`]: trace and
//! span id lengths), and hands the rest to a [`Consumer`], the ingest path
//! the binary wires up (store sanitising, memory limit, WAL, head). What the
//! consumer answers becomes the OTLP response: success, `partial_success`
//! with the rejected count and message, or a retryable refusal
//! (HTTP 429/503 with `Retry-After`, gRPC `RESOURCE_EXHAUSTED`/`UNAVAILABLE`
//! with `RetryInfo`).
//!
//! Start reading at [`http::router`] and [`grpc::services`].
//!
//! Architecture invariant: receivers know nothing of storage; they see the
//! ingest path only through [`Consumer`].

pub mod consumer;
pub mod decode;
pub mod grpc;
pub mod http;
pub mod signal;
pub mod validate;

pub use consumer::{ConsumeError, Consumer, Limits};
/// The zero-copy view of trace requests, kept in `pharos_model` so stores read it too.
pub use pharos_model::view;

/// The names receivers report under in self-metrics.
pub const RECEIVER_GRPC: &str = "otlp_grpc";
/// See [`RECEIVER_GRPC`].
pub const RECEIVER_HTTP: &str = "otlp_http";

use pharos_model::Rejected;
use pharos_model::telemetry::SelfMetrics;
use signal::OtlpSignal;

/// The path every request takes once decoded, whatever its transport:
/// OTLP validation, the consumer, and the self-metrics that count both.
pub(crate) async fn receive<R, C>(
    consumer: &C,
    metrics: &SelfMetrics,
    receiver: &str,
    mut req: R,
) -> Result<Rejected, ConsumeError>
where
    R: OtlpSignal,
    C: Consumer<R>,
{
    let signal = R::SIGNAL.as_str();
    let total = req.item_count();
    let mut rejected = req.validate();
    match consumer.consume(req).await {
        Ok(more) => {
            rejected.merge(more);
            metrics.record_accepted(receiver, signal, total.saturating_sub(rejected.count));
            metrics.record_refused(receiver, signal, "invalid", rejected.count);
            Ok(rejected)
        }
        Err(e) => {
            metrics.record_refused(
                receiver,
                signal,
                e.reason(),
                total.saturating_sub(rejected.count),
            );
            metrics.record_refused(receiver, signal, "invalid", rejected.count);
            Err(e)
        }
    }
}
