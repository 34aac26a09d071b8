//! Prometheus remote_write 1.0 ingest: the wire types ([`proto`]), the body codec
//! ([`codec`]: snappy block format around a protobuf `WriteRequest`) and the HTTP handler
//! ([`handler`], `POST /api/v1/write`).
//!
//! The handler hands decoded requests to a [`WriteSink`], the ingest path the binary wires
//! up (memory limit, store sanitizing, the metrics write-ahead log, the head), just as OTLP
//! receivers hand theirs to `pharos_otlp::Consumer`. Series reach the store inside a
//! [`crate::store::record::MetricsRecord`], the envelope the metrics log shares with OTLP;
//! the store checks labels and sample order (see [`crate::store::record`]).
//!
//! Start reading at [`handler::router`].
//!
//! Architecture invariant: `proto` and `codec` know nothing of HTTP; `handler` is the only
//! place here that does, and knows the store only through [`WriteSink`]. The store knows
//! `proto` (its data types) and nothing else of this module.

pub mod codec;
pub mod handler;
pub mod proto;

use std::future::Future;

use pharos_model::Rejected;

pub use codec::{DecodeError, decode, encode};
pub use handler::router;
pub use proto::WriteRequest;

/// The receiver name remote_write reports under in self-metrics.
pub const RECEIVER: &str = "prometheus_remote_write";

/// The ingest path for remote_write requests.
///
/// Resolves once the accepted samples of `req` are durable and queryable; the returned
/// [`Rejected`] counts the samples refused (which the handler answers with 400, keeping
/// the rest).
pub trait WriteSink: Send + Sync + 'static {
    /// Takes one decoded request.
    fn write(&self, req: WriteRequest)
    -> impl Future<Output = Result<Rejected, WriteError>> + Send;
}

/// Why the ingest path refused a whole remote_write request; shared with the other receivers.
pub use pharos_model::IngestError as WriteError;
