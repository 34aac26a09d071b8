//! The seam between receivers and the ingest path.

use pharos_model::Rejected;
use std::future::Future;

/// Why the ingest path refused a whole request; shared with the other receivers.
pub use pharos_model::IngestError as ConsumeError;

/// The ingest path for one request type (`TraceBatch`, `ExportMetricsServiceRequest`, ...).
///
/// Resolves once the accepted part of `req` is durable and queryable; the
/// returned [`Rejected`] counts what was refused of it.
pub trait Consumer<R>: Send + Sync + 'static {
    /// Takes one decoded, OTLP-validated request.
    fn consume(&self, req: R) -> impl Future<Output = Result<Rejected, ConsumeError>> + Send;
}

/// Request size limits shared by both transports.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body accepted, in bytes, before and after
    /// decompression. Larger requests get HTTP 413 / gRPC `OUT_OF_RANGE`.
    pub max_request_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // The OpenTelemetry Collector's confighttp default.
        Limits {
            max_request_body_bytes: 20 * 1024 * 1024,
        }
    }
}
