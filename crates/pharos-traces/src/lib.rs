//! The traces slice of Pharos: a span store and the Tempo and Jaeger query APIs.
//!
//! Spans arrive as OTLP [`ExportTraceServiceRequest`](pharos_model::ExportTraceServiceRequest)s
//! through [`TraceStore`]'s [`Store`](pharos_model::Store) implementation and are kept in an
//! in-memory head grouped by trace id. [`api::router`] serves them back as Tempo
//! (`/api/traces/{id}`, `/api/v2/traces/{id}`) and Jaeger (`/jaeger/api/*`) responses.
//!
//! [`traceql`] parses TraceQL and evaluates it on one trace at a time; [`connectors`] derives
//! span metrics and a service graph from the spans that arrive.
//!
//! Start reading at [`store::TraceStore`], then [`api`].
//!
//! Architecture invariants:
//! - `store` knows nothing of HTTP or JSON; `api` is the only module that does.
//! - Every span keeps the resource and scope it arrived with, so a trace is always
//!   rebuilt as OTLP `ResourceSpans` with equal resources and scopes regrouped.
//! - [`Store::apply`](pharos_model::Store::apply) is deterministic: replaying the same
//!   requests in the same order builds the same head (the WAL relies on it).
//!
//! Deliberately absent for now: blocks on disk and retention; Tempo search
//! (`/api/search`) scans the in-memory head.

pub mod api;
pub mod connectors;
pub mod store;
pub mod traceql;

pub use store::{Operation, TraceId, TraceQuery, TraceStore};
