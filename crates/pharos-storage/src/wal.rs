//! A segmented, checksummed write-ahead log with group commit.
//!
//! One [`Wal`] owns one directory of segment files (`00000001`, `00000002`, ...). A record is an
//! opaque byte string; the WAL frames it with its length and a CRC32C so that a torn write or a
//! flipped bit is found on replay. The byte layout is in `docs/format/wal.md` and in
//! [`format`](mod@format).
//!
//! # Life cycle
//!
//! [`Wal::open`] replays every good record through a callback, cuts a torn or corrupt tail at
//! the last good record (deleting any later segments), then starts the writer. [`Wal::append`]
//! resolves once the record is written and, with [`FsyncPolicy::Always`], fsynced.
//! [`Wal::close`] fsyncs and stops the writer.
//!
//! # Group commit
//!
//! Each WAL has a dedicated OS thread (see `writer.rs`). Appends send their record and a
//! oneshot sender over a channel; the thread blocks for the first request, drains whatever else
//! is queued (up to [`GROUP_COMMIT_MAX_BYTES`]), writes them with one `write`, fsyncs once and
//! answers every waiter. Many concurrent appends therefore cost one fsync. Records reach the
//! file in the order their requests reach the channel.
//!
//! # After an I/O error
//!
//! A failed write or fsync fails every append of that group and *poisons* the writer: later
//! appends fail with [`WalError::Poisoned`] instead of writing after a possibly partial record
//! (which replay would then never reach), and after a failed fsync the kernel may already have
//! dropped the dirty pages, so retrying proves nothing. Reopening the WAL repairs the tail.
//!
//! # Where to start reading
//!
//! [`Wal::open`], then `replay.rs` (reading and repair) and `writer.rs` (the commit thread).

pub mod format;

mod error;
mod replay;
mod writer;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use tokio::sync::oneshot;

pub use error::WalError;

use writer::Request;

/// Upper bound on the record bytes one group write gathers before writing; a single larger
/// record still goes alone.
pub const GROUP_COMMIT_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// When the writer calls fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Fsync every group write before acknowledging it: an acknowledged record survives a
    /// crash or power loss.
    #[default]
    Always,
    /// Acknowledge after the write and fsync at most once per interval (and when the interval
    /// has passed with unsynced data). Survives a process crash; a power loss may lose up to
    /// one interval.
    Interval(Duration),
    /// Acknowledge after the write and leave syncing to the operating system (except on segment
    /// creation and on [`Wal::close`]).
    Never,
}

/// Options for [`Wal::open`].
#[derive(Clone)]
pub struct WalOptions {
    /// When to fsync; default [`FsyncPolicy::Always`].
    pub fsync: FsyncPolicy,
    /// A new segment is started when the next record would push the current one past this many
    /// bytes; default 128 MiB. A single record larger than this gets a segment of its own.
    pub segment_max_bytes: u64,
    /// Largest record [`Wal::append`] accepts, in bytes; default 64 MiB, at most
    /// [`format::MAX_RECORD_LEN_LIMIT`]. Replay does not apply it, so lowering it never turns
    /// existing records into corruption.
    pub max_record_bytes: u64,
    /// Store each record as a snappy block when that is smaller; default `true`. Replay
    /// reads both kinds either way.
    pub compress: bool,
    /// Called after each fsync of a segment with its duration (for self-metrics).
    pub on_fsync: Option<Arc<dyn Fn(Duration) + Send + Sync>>,
    /// Called with the bytes written by each group write (for self-metrics).
    pub on_write: Option<Arc<dyn Fn(u64) + Send + Sync>>,
    /// Segments numbered below this hold nothing that is not kept elsewhere (the caller's
    /// blocks say so): [`Wal::open`] deletes them without replaying them, and never
    /// numbers a new segment below it, so the mark cannot come to cover later records.
    /// Default 0: every segment is replayed.
    pub covered_before: u64,
}

impl WalOptions {
    /// Default [`WalOptions::segment_max_bytes`]: 128 MiB.
    pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 128 * 1024 * 1024;
    /// Default [`WalOptions::max_record_bytes`]: 64 MiB.
    pub const DEFAULT_MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;

    fn validate(&self) -> Result<(), WalError> {
        if self.segment_max_bytes <= format::SEGMENT_HEADER_LEN as u64 {
            return Err(WalError::InvalidOptions {
                reason: "segment_max_bytes must be larger than the segment header",
            });
        }
        if self.max_record_bytes > format::MAX_RECORD_LEN_LIMIT {
            return Err(WalError::InvalidOptions {
                reason: "max_record_bytes must fit in 32 bits",
            });
        }
        Ok(())
    }
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            fsync: FsyncPolicy::Always,
            segment_max_bytes: WalOptions::DEFAULT_SEGMENT_MAX_BYTES,
            max_record_bytes: WalOptions::DEFAULT_MAX_RECORD_BYTES,
            compress: true,
            on_fsync: None,
            on_write: None,
            covered_before: 0,
        }
    }
}

impl fmt::Debug for WalOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalOptions")
            .field("fsync", &self.fsync)
            .field("segment_max_bytes", &self.segment_max_bytes)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("compress", &self.compress)
            .field("on_fsync", &self.on_fsync.is_some())
            .field("on_write", &self.on_write.is_some())
            .field("covered_before", &self.covered_before)
            .finish()
    }
}

/// Deletes the segment files of `dir` numbered below `seq` (syncing the directory if it
/// deleted any); returns the bytes freed.
fn remove_segment_files_before(dir: &Path, seq: u64) -> Result<u64, WalError> {
    let mut freed = 0;
    let mut removed = false;
    for (n, path) in replay::segment_paths(dir)? {
        if n >= seq {
            continue;
        }
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        std::fs::remove_file(&path).map_err(|e| WalError::io("remove", &path, e))?;
        freed += len;
        removed = true;
    }
    if removed {
        replay::sync_dir(dir)?;
    }
    Ok(freed)
}

/// What [`Wal::open`] found while replaying.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplayReport {
    /// Records handed to the visitor.
    pub records: u64,
    /// Payload bytes handed to the visitor (frame headers excluded).
    pub bytes: u64,
    /// Set when a torn or corrupt tail was cut off.
    pub truncated: Option<Truncation>,
}

/// Where and why replay cut the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// Sequence number of the segment that was cut.
    pub segment: u64,
    /// Byte offset in that segment where the first bad frame started; the file now ends here
    /// (0 when the segment was deleted because its header was incomplete).
    pub offset: u64,
    /// What was wrong at `offset`.
    pub reason: TruncationReason,
    /// Bytes removed: the rest of the cut segment plus every later segment.
    pub bytes_dropped: u64,
    /// Later segments deleted.
    pub segments_removed: u64,
}

/// Why replay stopped at a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncationReason {
    /// The segment is shorter than its header (crash while creating it).
    IncompleteSegmentHeader,
    /// The file ends inside a record frame header.
    IncompleteRecordHeader,
    /// The record's length runs past the end of the file.
    IncompleteRecord {
        /// The length the frame claims.
        length: u32,
    },
    /// The record type is not one this version writes (0 is typical of zero-filled space).
    UnknownRecordType(u8),
    /// The stored CRC32C does not match the frame's bytes.
    ChecksumMismatch {
        /// The checksum stored in the frame.
        stored: u32,
        /// The checksum computed over the frame.
        computed: u32,
    },
    /// A compressed record whose checksum matched but that does not decompress.
    UndecodableRecord,
}

impl fmt::Display for TruncationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TruncationReason::IncompleteSegmentHeader => f.write_str("incomplete segment header"),
            TruncationReason::IncompleteRecordHeader => f.write_str("incomplete record header"),
            TruncationReason::IncompleteRecord { length } => {
                write!(f, "record of {length} bytes runs past end of segment")
            }
            TruncationReason::UnknownRecordType(kind) => write!(f, "unknown record type {kind}"),
            TruncationReason::UndecodableRecord => {
                f.write_str("compressed record does not decompress")
            }
            TruncationReason::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
        }
    }
}

/// A handle to an open write-ahead log; cheap to clone, all clones share one writer thread.
///
/// Dropping every handle without [`Wal::close`] still stops the writer after a final fsync.
#[derive(Clone)]
pub struct Wal {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    requests: mpsc::Sender<Request>,
    closed: AtomicBool,
    size: Arc<AtomicU64>,
    max_record_bytes: u64,
    compress: bool,
}

impl Wal {
    /// Opens the WAL in `dir`, replaying every good record in order through `visit`.
    ///
    /// Creates the directory if missing. A torn or corrupt frame ends replay: its segment is
    /// truncated at the last good record, later segments are deleted, and a warning is logged
    /// with the segment, offset and reason (also returned in [`ReplayReport::truncated`]). The
    /// writer then appends to the last segment, or to a fresh one if there is none or it is
    /// full. Blocking: call it from `spawn_blocking` inside an async runtime.
    ///
    /// # Errors
    ///
    /// [`WalError::InvalidOptions`] for unusable options; [`WalError::BadHeader`] or
    /// [`WalError::UnsupportedVersion`] for a segment this code does not recognise (left
    /// untouched); [`WalError::MissingSegment`] for a gap in the sequence;
    /// [`WalError::Io`] when the file system fails.
    pub fn open(
        dir: impl AsRef<Path>,
        opts: WalOptions,
        mut visit: impl FnMut(&[u8]),
    ) -> Result<(Wal, ReplayReport), WalError> {
        opts.validate()?;
        let dir = dir.as_ref().to_path_buf();
        if opts.covered_before > 0 && dir.exists() {
            remove_segment_files_before(&dir, opts.covered_before)?;
        }
        let replayed = replay::replay(&dir, &mut visit)?;
        let size = Arc::new(AtomicU64::new(replayed.total_bytes));
        let writer = writer::Writer::start(&dir, replayed.last_segment, &opts, Arc::clone(&size))?;
        let (requests, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("pharos-wal".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(|e| WalError::io("spawn writer thread for", &dir, e))?;
        let wal = Wal {
            inner: Arc::new(Inner {
                dir,
                requests,
                closed: AtomicBool::new(false),
                size,
                max_record_bytes: opts.max_record_bytes,
                compress: opts.compress,
            }),
        };
        Ok((wal, replayed.report))
    }

    /// Appends one record; resolves once it is written and, with [`FsyncPolicy::Always`],
    /// fsynced. Concurrent appends share one write and one fsync (group commit).
    ///
    /// # Errors
    ///
    /// [`WalError::RecordTooLarge`] if the record exceeds [`WalOptions::max_record_bytes`];
    /// [`WalError::Closed`] after [`Wal::close`]; [`WalError::Io`] if this group's write or
    /// fsync failed, and [`WalError::Poisoned`] for every append after that.
    pub async fn append(&self, record: impl Into<Cow<'_, [u8]>>) -> Result<(), WalError> {
        self.submit(record)?.await
    }

    /// Queues one record without waiting, returning a future that resolves as
    /// [`Wal::append`] would. Records are written in the order of `submit`
    /// calls, so a caller that must apply records in log order can take a
    /// ticket under the same lock as its `submit`.
    ///
    /// # Errors
    ///
    /// [`WalError::RecordTooLarge`] or [`WalError::Closed`] at once; the
    /// future yields the errors of [`Wal::append`].
    pub fn submit<'a>(&self, record: impl Into<Cow<'a, [u8]>>) -> Result<Pending, WalError> {
        self.submit_prepared(self.prepare(record)?)
    }

    /// Checks and compresses a record for [`Wal::submit_prepared`]: the part of
    /// [`Wal::submit`] that can run outside a caller's ordering lock, so concurrent
    /// appends compress in parallel and the writer thread only writes.
    ///
    /// # Errors
    ///
    /// [`WalError::RecordTooLarge`] or [`WalError::Closed`].
    pub fn prepare<'a>(&self, record: impl Into<Cow<'a, [u8]>>) -> Result<Prepared, WalError> {
        let record = record.into();
        self.admit(record.len() as u64)?;
        let (kind, record) = if self.inner.compress {
            format::compress_record(record)
        } else {
            (format::RECORD_TYPE_FULL, record.into_owned())
        };
        Ok(Prepared { kind, record })
    }

    /// [`Wal::prepare`] for a record whose caller holds it compressed already: `prefix`
    /// followed by the record `snappy` (snappy's raw block format, as a Loki push body
    /// is) decompresses to. The prefix is spliced in front as a literal and the body's
    /// elements are kept as they are (their copies are relative, so they stay valid), so
    /// nothing is compressed again. `snappy` must be valid: decompressed once by the
    /// caller. Without compression the record is decompressed and stored whole.
    ///
    /// `None` when `snappy` is not snappy (the caller then prepares the record itself).
    ///
    /// # Errors
    ///
    /// [`WalError::RecordTooLarge`] or [`WalError::Closed`].
    pub fn prepare_snappy_with_prefix(
        &self,
        prefix: &[u8],
        snappy: &[u8],
    ) -> Option<Result<Prepared, WalError>> {
        let size = (prefix.len() + snap::raw::decompress_len(snappy).ok()?) as u64;
        if let Err(e) = self.admit(size) {
            return Some(Err(e));
        }
        // The body's elements follow its length preamble.
        let preamble = snappy.iter().position(|b| *b < 0x80)? + 1;
        let elements = &snappy[preamble..];
        let mut record = Vec::with_capacity(snappy.len() + prefix.len() + 12);
        let mut len = size;
        while len >= 0x80 {
            record.push((len as u8) | 0x80);
            len >>= 7;
        }
        record.push(len as u8);
        let spliced_len = (record.len() + 1 + prefix.len() + elements.len()) as u64;
        // A literal tag holds lengths 1 to 60; incompressible bytes grow under snappy and
        // may pass a frame's limit. Those, and a log without compression, store the record
        // whole.
        if !self.inner.compress
            || !(1..=60).contains(&prefix.len())
            || spliced_len > format::MAX_RECORD_LEN_LIMIT
        {
            let body = snap::raw::Decoder::new().decompress_vec(snappy).ok()?;
            return Some(self.prepare([prefix, &body].concat()));
        }
        // A literal: its length minus one in the tag's upper six bits.
        record.push(((prefix.len() - 1) as u8) << 2);
        record.extend_from_slice(prefix);
        record.extend_from_slice(elements);
        Some(Ok(Prepared {
            kind: format::RECORD_TYPE_SNAPPY,
            record,
        }))
    }

    /// Whether a record of `size` bytes may be appended: [`WalError::RecordTooLarge`] past
    /// the limit, [`WalError::Closed`] once closed.
    fn admit(&self, size: u64) -> Result<(), WalError> {
        if size > self.inner.max_record_bytes {
            return Err(WalError::RecordTooLarge {
                size,
                max: self.inner.max_record_bytes,
            });
        }
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(WalError::Closed);
        }
        Ok(())
    }

    /// Queues a record [`Wal::prepare`]d, as [`Wal::submit`] does.
    ///
    /// # Errors
    ///
    /// [`WalError::Closed`] at once; the future yields the errors of [`Wal::append`].
    pub fn submit_prepared(&self, prepared: Prepared) -> Result<Pending, WalError> {
        let Prepared { kind, record } = prepared;
        let (done, answer) = oneshot::channel();
        self.inner
            .requests
            .send(Request::Append { record, kind, done })
            .map_err(|_| WalError::Closed)?;
        Ok(Pending { answer })
    }

    /// Queues a switch to a new segment, in order with [`Wal::submit`]: every record submitted
    /// before lands in an earlier segment, every record after in the new one or later. The
    /// future yields the new segment's sequence number; once what the earlier segments hold is
    /// kept elsewhere, [`Wal::remove_segments_before`] with that number deletes them.
    ///
    /// # Errors
    ///
    /// [`WalError::Closed`] at once; the future yields [`WalError::Io`] if creating the
    /// segment failed and [`WalError::Poisoned`] after an earlier failure.
    pub fn submit_rotate(
        &self,
    ) -> Result<impl std::future::Future<Output = Result<u64, WalError>> + use<>, WalError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(WalError::Closed);
        }
        let (done, answer) = oneshot::channel();
        self.inner
            .requests
            .send(Request::Rotate { done })
            .map_err(|_| WalError::Closed)?;
        Ok(async move { answer.await.unwrap_or(Err(WalError::Closed)) })
    }

    /// Deletes the segments numbered below `seq` (never the one being written), returning how
    /// many bytes that freed. Replay then starts at the oldest segment left.
    ///
    /// # Errors
    ///
    /// [`WalError::Io`] when listing or deleting fails; segments already deleted stay deleted.
    pub fn remove_segments_before(&self, seq: u64) -> Result<u64, WalError> {
        let freed = remove_segment_files_before(&self.inner.dir, seq)?;
        self.inner.size.fetch_sub(freed, Ordering::Relaxed);
        Ok(freed)
    }

    /// Writes what is queued, fsyncs and stops the writer; later appends fail with
    /// [`WalError::Closed`]. Idempotent: closing a closed WAL returns `Ok(())`.
    ///
    /// # Errors
    ///
    /// [`WalError::Io`] if the final fsync fails, or [`WalError::Poisoned`] if the writer had
    /// already failed.
    pub async fn close(&self) -> Result<(), WalError> {
        self.inner.closed.store(true, Ordering::Release);
        let (done, answer) = oneshot::channel();
        if self.inner.requests.send(Request::Close { done }).is_err() {
            return Ok(());
        }
        answer.await.unwrap_or(Ok(()))
    }

    /// Returns the total size of the log's segment files now, in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.inner.size.load(Ordering::Relaxed)
    }

    /// Returns the directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.inner.dir)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .field("size_bytes", &self.size_bytes())
            .finish()
    }
}

/// A record checked and compressed by [`Wal::prepare`], to be queued by
/// [`Wal::submit_prepared`].
pub struct Prepared {
    kind: u8,
    record: Vec<u8>,
}

/// An append queued by [`Wal::submit`]; resolves once the record is written
/// (and fsynced under [`FsyncPolicy::Always`]).
#[must_use = "a queued record is only known durable once this resolves"]
pub struct Pending {
    answer: oneshot::Receiver<Result<(), WalError>>,
}

impl std::future::Future for Pending {
    type Output = Result<(), WalError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        // A dropped sender means the writer stopped before reaching this request.
        std::pin::Pin::new(&mut self.answer)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(WalError::Closed)))
    }
}
