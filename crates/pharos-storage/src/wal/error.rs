//! The WAL's error type.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Errors returned by [`Wal`](super::Wal).
///
/// The type is `Clone` because one failed group write fails every append that shared it; the
/// underlying [`io::Error`] is therefore kept behind an [`Arc`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    /// A file system operation failed.
    #[error("wal i/o error: {op} {path}: {source}")]
    Io {
        /// What was being done, e.g. `"write"` or `"fsync"`.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The record is larger than [`WalOptions::max_record_bytes`](super::WalOptions::max_record_bytes);
    /// nothing was written.
    #[error("wal record too large: {size} bytes, max {max}")]
    RecordTooLarge {
        /// Size of the rejected record in bytes.
        size: u64,
        /// The configured maximum.
        max: u64,
    },
    /// The WAL was closed; nothing was written.
    #[error("wal is closed")]
    Closed,
    /// A segment does not start with a Pharos WAL header (wrong magic or non-zero reserved
    /// bytes). The WAL refuses to open rather than delete a file it does not recognise.
    #[error("wal segment {path} has a bad header: {reason}")]
    BadHeader {
        /// The offending segment file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A segment was written by a newer (or unknown) format version.
    #[error("wal segment {path} has unsupported format version {version}")]
    UnsupportedVersion {
        /// The offending segment file.
        path: PathBuf,
        /// The version byte found.
        version: u8,
    },
    /// Segment sequence numbers are not contiguous, so records are missing from the middle of
    /// the log.
    #[error("wal segment {expected} is missing in {dir} (next present is {found})")]
    MissingSegment {
        /// The WAL directory.
        dir: PathBuf,
        /// The sequence number that should exist.
        expected: u64,
        /// The next sequence number that does exist.
        found: u64,
    },
    /// The options cannot work, e.g. a segment size smaller than a segment header.
    #[error("invalid wal options: {reason}")]
    InvalidOptions {
        /// Which option is wrong and why.
        reason: &'static str,
    },
    /// An earlier write or fsync failed, so the writer refuses to append after a possibly
    /// partial record. Reopening the WAL repairs the tail.
    #[error("wal stopped after an earlier error: {cause}")]
    Poisoned {
        /// The error that stopped the writer.
        cause: Arc<WalError>,
    },
}

impl WalError {
    /// Wraps an [`io::Error`] with the operation and path it concerns.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> WalError {
        WalError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}
