//! Pharos' metrics slice: the store, the query language and the Prometheus HTTP API.
//!
//! - [`store`]: the in-memory head fed by OTLP ([`MetricsStore`], a
//!   [`pharos_model::Store`]), the OTLP → Prometheus translation, and the [`store::Querier`]
//!   seam everything above reads through.
//! - [`promql`]: parses with `promql-parser` and evaluates (for now) selectors and literals
//!   with Prometheus' semantics: lookback, staleness, `offset`, `@`.
//! - [`api`]: the Prometheus `/api/v1/*` handlers as an axum [`axum::Router`].
//!
//! Architecture invariants: dependencies point one way, api → promql → store. The store
//! knows nothing of HTTP, JSON or PromQL; promql knows nothing of HTTP or JSON; the api is
//! the only place that knows JSON and status codes, and maps engine errors to wire errors
//! in one function.
//!
//! Deliberately absent for now: durable blocks (the head is all there is), functions,
//! operators and aggregations, native and exponential histograms, remote_write, scrape.

pub mod api;
pub mod promql;
pub mod remote_write;
pub mod store;

pub use store::MetricsStore;
