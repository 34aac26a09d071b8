//! Pharos' metrics slice: the store, the query language and the Prometheus HTTP API.
//!
//! - [`store`]: the in-memory head fed by OTLP ([`MetricsStore`], a
//!   [`pharos_model::Store`]), the OTLP → Prometheus translation, and the [`store::Querier`]
//!   seam everything above reads through.
//! - [`promql`]: parses with `promql-parser` and evaluates the language with Prometheus 3
//!   semantics: selectors, lookback and staleness, `offset`/`@`, subqueries, binary
//!   operators with vector matching, aggregations, functions, classic-histogram quantiles.
//! - [`api`]: the Prometheus `/api/v1/*` handlers as an axum [`axum::Router`].
//!
//! Architecture invariants: dependencies point one way, api → promql → store. The store
//! knows nothing of HTTP, JSON or PromQL; promql knows nothing of HTTP or JSON; the api is
//! the only place that knows JSON and status codes, and maps engine errors to wire errors
//! in one function.
//!
//! Deliberately absent for now: durable blocks (the head is all there is), native and
//! exponential histograms (and their functions), scrape.

pub mod api;
pub mod promql;
pub mod remote_write;
pub mod scrape;
pub mod store;

pub use store::MetricsStore;
