//! Pharos' storage foundation: durable, signal-agnostic building blocks for the signal stores.
//!
//! Today this is the write-ahead log ([`wal`]): each signal store (traces, metrics, logs) opens
//! its own [`Wal`] in its own directory, appends every accepted request before acknowledging it,
//! and replays the log into its in-memory head on restart. [`blocks`] keeps immutable
//! block files on object storage (a local directory by default) with a write-meta-last life
//! cycle; what a block holds, and when blocks are compacted or dropped, is the signal store's.
//!
//! Architecture Invariant: storage knows nothing of signals, OTLP or HTTP. A WAL record is an
//! opaque byte string; what it means is the caller's business.
//!
//! Start reading at [`Wal::open`]; the on-disk layout is described in `docs/format/wal.md`.

#![warn(missing_docs)]

pub mod blocks;
pub mod wal;

pub use blocks::{BlockStore, BlockStoreError, Listing, block_id_ms, new_block_id};
pub use wal::{
    FsyncPolicy, Pending, ReplayReport, Truncation, TruncationReason, Wal, WalError, WalOptions,
};
