//! The seam between receivers and the ingest path.

use bytes::Bytes;
use pharos_model::Rejected;
use std::future::Future;

/// Why the ingest path refused a whole request; shared with the other receivers.
pub use pharos_model::IngestError as ConsumeError;

/// The ingest path for one request type (`ExportTraceServiceRequest`, ...).
///
/// Resolves once the accepted part of `req` is durable and queryable; the
/// returned [`Rejected`] counts what was refused of it.
pub trait Consumer<R>: Send + Sync + 'static {
    /// Takes one decoded, OTLP-validated request.
    fn consume(&self, req: R) -> impl Future<Output = Result<Rejected, ConsumeError>> + Send;

    /// [`Consumer::consume`], given also the protobuf bytes `req` was decoded from when
    /// the receiver has them and removed nothing from `req` since: a consumer that logs
    /// requests may log these bytes rather than encode `req` again. They decode to `req`;
    /// they need not be its canonical encoding (field order, unknown fields).
    fn consume_encoded(
        &self,
        req: R,
        encoded: Option<Bytes>,
    ) -> impl Future<Output = Result<Rejected, ConsumeError>> + Send {
        let _ = encoded;
        self.consume(req)
    }
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
