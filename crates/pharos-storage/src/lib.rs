//! Pharos' storage foundation: durable, signal-agnostic building blocks for the signal stores.
//!
//! Today this is the write-ahead log ([`wal`]): each signal store (traces, metrics, logs) opens
//! its own [`Wal`] in its own directory, appends every accepted request before acknowledging it,
//! and replays the log into its in-memory head on restart. Block files, object storage access,
//! retention and compaction will live here too.
//!
//! Architecture Invariant: storage knows nothing of signals, OTLP or HTTP. A WAL record is an
//! opaque byte string; what it means is the caller's business.
//!
//! Start reading at [`Wal::open`]; the on-disk layout is described in `docs/format/wal.md`.

#![warn(missing_docs)]

pub mod wal;

pub use wal::{
    FsyncPolicy, Pending, ReplayReport, Truncation, TruncationReason, Wal, WalError, WalOptions,
};
