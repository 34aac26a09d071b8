//! The seam between receivers and the ingest path.

use pharos_model::Rejected;
use std::future::Future;
use std::time::Duration;

/// Why the ingest path refused a whole request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsumeError {
    /// The server is over its memory budget; the client should retry later.
    #[error("memory limit exceeded: {0}")]
    MemoryLimit(String),
    /// The server cannot take data now (WAL failure, shutting down).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// No pipeline takes this signal; retrying will not help.
    #[error("no pipeline: {0}")]
    NoPipeline(String),
}

impl ConsumeError {
    /// How long clients are told to wait before retrying; `None` when retrying cannot help.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConsumeError::MemoryLimit(_) => Some(Duration::from_secs(5)),
            ConsumeError::Unavailable(_) => Some(Duration::from_secs(10)),
            ConsumeError::NoPipeline(_) => None,
        }
    }

    /// The reason label used in self-metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ConsumeError::MemoryLimit(_) => "memory_limit",
            ConsumeError::Unavailable(_) => "unavailable",
            ConsumeError::NoPipeline(_) => "no_pipeline",
        }
    }
}

/// The ingest path for one request type (`ExportTraceServiceRequest`, ...).
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
