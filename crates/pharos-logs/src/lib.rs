//! The logs slice of Pharos: a log store shaped like Loki's, LogQL, Loki's push and
//! query APIs.
//!
//! OTLP log records and Loki push requests arrive through [`LogStore`]'s
//! [`Store`](pharos_model::Store) implementation as one WAL record type,
//! [`LogsRecord`]; OTLP is mapped as Loki 3 maps it ([`store::otlp`]): a few resource
//! attributes become stream labels, everything else structured metadata beside the line.
//! [`push`] serves `/loki/api/v1/push`; [`logql`] parses and evaluates log and metric
//! queries; [`api::router`] serves Loki's `/loki/api/v1/*` query endpoints and live tail.
//!
//! Architecture invariants:
//! - Dependencies point one way: `api` → `logql` → `store`. The store knows
//!   nothing of LogQL, HTTP or JSON; it selects through caller-given predicates.
//! - Entries of a stream are kept sorted by timestamp; equal timestamps keep
//!   arrival order, so [`Store::apply`](pharos_model::Store::apply) is
//!   deterministic and WAL replay rebuilds the same head.
//!
//! The head becomes blocks (`store::engine`, format in `docs/format/logs.md`), merged per
//! compaction window and dropped by retention.

pub mod api;
pub mod logql;
pub mod push;
pub mod store;

pub use store::{BlockOptions, Direction, Entry, Labels, LogLimits, LogStore, LogsRecord};
