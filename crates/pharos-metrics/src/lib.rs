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
//! - [`remote_write`]: Prometheus remote_write 1.0 (wire types, codec, `POST /api/v1/write`).
//! - [`scrape`]: the `prometheus` receiver: exposition parsing, relabeling, scrape manager.
//!
//! Architecture invariants: dependencies point one way, api → promql → store. The store
//! knows nothing of HTTP, JSON or PromQL; promql knows nothing of HTTP or JSON; `api` and
//! `remote_write`'s handler are the only places that know HTTP status codes, and each maps
//! its errors to the wire in one function.
//!
//! Deliberately absent for now: native and exponential histograms (and their functions).

pub mod api;
pub mod promql;
pub mod remote_write;
pub mod scrape;
pub mod store;

pub use store::MetricsStore;
