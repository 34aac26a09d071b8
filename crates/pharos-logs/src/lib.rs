//! The logs slice of Pharos: a log store shaped like Loki's, a LogQL subset, and
//! the Loki query API.
//!
//! OTLP log records arrive through [`LogStore`]'s [`Store`](pharos_model::Store)
//! implementation and are mapped as Loki 3 maps OTLP ([`store::otlp`]): a few
//! resource attributes become stream labels, everything else structured metadata
//! beside the line. [`logql`] parses stream selectors with line filters and
//! evaluates them against the store; [`api::router`] serves Loki's
//! `/loki/api/v1/*` query endpoints.
//!
//! Architecture invariants:
//! - Dependencies point one way: `api` → `logql` → `store`. The store knows
//!   nothing of LogQL, HTTP or JSON; it selects through caller-given predicates.
//! - Entries of a stream are kept sorted by timestamp; equal timestamps keep
//!   arrival order, so [`Store::apply`](pharos_model::Store::apply) is
//!   deterministic and WAL replay rebuilds the same head.
//!
//! Deliberately absent for now: blocks on disk, retention, LogQL parsers
//! (`| json`, `| logfmt`), label filters, metric queries, the push API.

pub mod api;
pub mod logql;
pub mod push;
pub mod store;

pub use store::{Direction, Entry, Labels, LogLimits, LogStore, LogsRecord, SelectedStream};
