//! Loki's push API, `POST /loki/api/v1/push`, so Promtail, Grafana Alloy, Fluent Bit's
//! Loki output and the Loki client libraries can send to Pharos.
//!
//! | request | answer |
//! | --- | --- |
//! | every entry kept | 204 No Content |
//! | some entries refused ([`crate::store::record`]'s checks) | 400, Loki's messages one per line; the other entries are kept, as Loki's distributor keeps them |
//! | a new stream over `limits.max_streams` | 429, Loki's message; the other streams are kept |
//! | `Content-Type: application/json` body not of Loki's JSON shape | 400 |
//! | other or no `Content-Type`: body not snappy block format or not a `logproto.PushRequest` | 400 |
//! | `Content-Encoding` other than none, `snappy`, `gzip`, `deflate` | 415 |
//! | body above the limit, compressed or decompressed | 413 |
//! | over the memory limit / log unavailable | 429 / 503 with `Retry-After` |
//! | no logs pipeline | 404 |
//!
//! As in Loki, a protobuf body is snappy-compressed whatever `Content-Encoding` says, and
//! a JSON body may be gzip- or deflate-compressed. Error bodies are plain text with a
//! trailing newline, as Go's `http.Error` writes them.

use std::future::Future;

use pharos_model::Rejected;

pub mod handler;
pub mod json;
pub mod proto;

pub use handler::{PATH, router};

/// Why the ingest path refused a whole push; shared with the other receivers.
pub use pharos_model::IngestError as PushError;

/// Where decoded push requests go: the server's ingest path.
pub trait PushSink: Send + Sync + 'static {
    /// Checks, logs and applies `req`; returns what was refused. `snappy` is the request
    /// as it arrived, in snappy's block format, when it did: the log can take those bytes.
    fn push(
        &self,
        req: proto::PushRequest,
        snappy: Option<bytes::Bytes>,
    ) -> impl Future<Output = Result<Rejected, PushError>> + Send;
}
