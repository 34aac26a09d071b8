//! The commit thread: one per WAL, the only code that writes segments after open.
//!
//! It blocks for a request, drains whatever else is queued (bounded by
//! [`GROUP_COMMIT_MAX_BYTES`]), encodes the records into one buffer, writes it, fsyncs once
//! according to the [`FsyncPolicy`], and answers every waiter with the same result. Using a
//! plain thread keeps blocking file I/O off the async runtime and makes batching natural: the
//! queue fills while the previous fsync runs.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::format::{self, SEGMENT_HEADER_LEN};
use super::replay::sync_dir;
use super::{FsyncPolicy, GROUP_COMMIT_MAX_BYTES, WalError, WalOptions};

/// A message to the commit thread.
pub(super) enum Request {
    /// Append a record and answer once it is committed.
    Append {
        /// The payload as stored (compressed or not, per `kind`).
        record: Vec<u8>,
        /// Its record type.
        kind: u8,
        done: oneshot::Sender<Result<(), WalError>>,
    },
    /// Commit what came before, start a new segment and answer with its sequence number.
    Rotate {
        done: oneshot::Sender<Result<u64, WalError>>,
    },
    /// Commit what came before, fsync, answer and stop.
    Close {
        done: oneshot::Sender<Result<(), WalError>>,
    },
}

/// State owned by the commit thread.
pub(super) struct Writer {
    dir: PathBuf,
    file: File,
    /// Path of the current segment.
    path: PathBuf,
    /// Sequence number of the current segment.
    seq: u64,
    /// Bytes in the current segment.
    segment_len: u64,
    fsync: FsyncPolicy,
    segment_max_bytes: u64,
    on_fsync: Option<Arc<dyn Fn(Duration) + Send + Sync>>,
    on_write: Option<Arc<dyn Fn(u64) + Send + Sync>>,
    /// Total bytes of all segments, shared with [`Wal::size_bytes`](super::Wal::size_bytes).
    size: Arc<AtomicU64>,
    /// Written but not yet fsynced.
    dirty: bool,
    last_sync: Instant,
    /// Set by the first failed write or fsync; every later append gets it back.
    poisoned: Option<Arc<WalError>>,
    buf: Vec<u8>,
}

impl Writer {
    /// Opens the segment to append to: the last one if it has room, else a new one.
    pub(super) fn start(
        dir: &Path,
        last_segment: Option<(u64, u64)>,
        opts: &WalOptions,
        size: Arc<AtomicU64>,
    ) -> Result<Writer, WalError> {
        let current_version = |seq: u64| {
            let mut header = [0u8; SEGMENT_HEADER_LEN];
            std::fs::File::open(dir.join(format::segment_file_name(seq)))
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
                .ok()
                .and_then(|()| format::decode_segment_header(&header).ok())
                == Some(format::FORMAT_VERSION)
        };
        let (file, path, seq, segment_len) = match last_segment {
            // Continue the last segment unless it is full or of an older version (whose
            // readers would not know this version's record types).
            Some((seq, len)) if len < opts.segment_max_bytes && current_version(seq) => {
                let path = dir.join(format::segment_file_name(seq));
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| WalError::io("open", &path, e))?;
                (file, path, seq, len)
            }
            Some((seq, _)) => {
                let (file, path) = create_segment(dir, seq + 1)?;
                size.fetch_add(SEGMENT_HEADER_LEN as u64, Ordering::Relaxed);
                (file, path, seq + 1, SEGMENT_HEADER_LEN as u64)
            }
            None => {
                let first = format::FIRST_SEGMENT.max(opts.covered_before);
                let (file, path) = create_segment(dir, first)?;
                size.fetch_add(SEGMENT_HEADER_LEN as u64, Ordering::Relaxed);
                (file, path, first, SEGMENT_HEADER_LEN as u64)
            }
        };
        Ok(Writer {
            dir: dir.to_path_buf(),
            file,
            path,
            seq,
            segment_len,
            fsync: opts.fsync,
            segment_max_bytes: opts.segment_max_bytes,
            on_fsync: opts.on_fsync.clone(),
            on_write: opts.on_write.clone(),
            size,
            dirty: false,
            last_sync: Instant::now(),
            poisoned: None,
            buf: Vec::new(),
        })
    }

    /// Serves requests until a [`Request::Close`] arrives or every sender is dropped.
    pub(super) fn run(mut self, requests: mpsc::Receiver<Request>) {
        loop {
            let Some(first) = self.next_request(&requests) else {
                // Every handle dropped without close: still leave the data durable.
                if let Err(error) = self.shutdown() {
                    tracing::error!(%error, "wal: final fsync failed");
                }
                return;
            };
            let mut records = Vec::new();
            let mut waiters = Vec::new();
            let mut close = None;
            let mut rotate = None;
            let mut bytes = 0u64;
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Append { record, kind, done } => {
                        bytes += record.len() as u64;
                        records.push((kind, record));
                        waiters.push(done);
                    }
                    Request::Close { done } => {
                        close = Some(done);
                        break;
                    }
                    Request::Rotate { done } => {
                        rotate = Some(done);
                        break;
                    }
                }
                if bytes < GROUP_COMMIT_MAX_BYTES {
                    next = requests.try_recv().ok();
                }
            }

            if !records.is_empty() {
                let result = self.commit(&records);
                for done in waiters {
                    // The appender may have given up waiting; nothing to do then.
                    let _ = done.send(result.clone());
                }
            }
            if let Some(done) = rotate {
                let result = match &self.poisoned {
                    Some(cause) => Err(WalError::Poisoned {
                        cause: Arc::clone(cause),
                    }),
                    None => self.rotate().map(|()| self.seq),
                };
                if let Err(error) = &result {
                    tracing::error!(%error, "wal: rotation failed; refusing further appends");
                    if self.poisoned.is_none() {
                        self.poisoned = Some(Arc::new(error.clone()));
                    }
                }
                let _ = done.send(result);
            }
            if let Some(done) = close {
                let _ = done.send(self.shutdown());
                return;
            }
        }
    }

    /// Waits for the next request; under [`FsyncPolicy::Interval`] with unsynced data, wakes up
    /// at the deadline to fsync. Returns `None` when every sender is gone.
    fn next_request(&mut self, requests: &mpsc::Receiver<Request>) -> Option<Request> {
        loop {
            let FsyncPolicy::Interval(interval) = self.fsync else {
                return requests.recv().ok();
            };
            if !self.dirty || self.poisoned.is_some() {
                return requests.recv().ok();
            }
            let wait = (self.last_sync + interval).saturating_duration_since(Instant::now());
            match requests.recv_timeout(wait) {
                Ok(request) => return Some(request),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(error) = self.sync() {
                        tracing::error!(%error, "wal: interval fsync failed; refusing further appends");
                        self.poisoned = Some(Arc::new(error));
                    }
                }
            }
        }
    }

    /// Writes `records` (rotating segments as needed) and fsyncs per policy.
    fn commit(&mut self, records: &[(u8, Vec<u8>)]) -> Result<(), WalError> {
        if let Some(cause) = &self.poisoned {
            return Err(WalError::Poisoned {
                cause: Arc::clone(cause),
            });
        }
        let result = self.write_and_sync(records);
        if let Err(error) = &result {
            tracing::error!(%error, segment = self.seq, "wal: write failed; refusing further appends");
            self.poisoned = Some(Arc::new(error.clone()));
        }
        result
    }

    fn write_and_sync(&mut self, records: &[(u8, Vec<u8>)]) -> Result<(), WalError> {
        self.buf.clear();
        let mut written = 0u64;
        for (kind, record) in records {
            let frame = format::frame_len(record.len());
            let pending = self.segment_len + self.buf.len() as u64;
            // Rotate before a record that would overflow a segment holding records already; a
            // record bigger than a whole segment still gets one of its own.
            if pending + frame > self.segment_max_bytes && pending > SEGMENT_HEADER_LEN as u64 {
                written += self.write_buf()?;
                self.rotate()?;
            }
            format::encode_record_of_type(&mut self.buf, *kind, record);
        }
        written += self.write_buf()?;
        if let Some(on_write) = &self.on_write {
            on_write(written);
        }
        match self.fsync {
            FsyncPolicy::Always => self.sync()?,
            FsyncPolicy::Interval(interval) if self.last_sync.elapsed() >= interval => {
                self.sync()?;
            }
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => {}
        }
        Ok(())
    }

    /// Writes the encoded buffer to the current segment; returns the bytes written.
    fn write_buf(&mut self) -> Result<u64, WalError> {
        if self.buf.is_empty() {
            return Ok(0);
        }
        self.file
            .write_all(&self.buf)
            .map_err(|e| WalError::io("write", &self.path, e))?;
        let n = self.buf.len() as u64;
        self.buf.clear();
        self.segment_len += n;
        self.size.fetch_add(n, Ordering::Relaxed);
        self.dirty = true;
        Ok(n)
    }

    /// Finishes the current segment (fsynced unless the policy is `Never`) and starts the next.
    fn rotate(&mut self) -> Result<(), WalError> {
        if self.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        let seq = self.seq + 1;
        let (file, path) = create_segment(&self.dir, seq)?;
        self.file = file;
        self.path = path;
        self.seq = seq;
        self.segment_len = SEGMENT_HEADER_LEN as u64;
        self.size
            .fetch_add(SEGMENT_HEADER_LEN as u64, Ordering::Relaxed);
        self.dirty = false;
        Ok(())
    }

    /// Fsyncs the current segment if it has unsynced data.
    fn sync(&mut self) -> Result<(), WalError> {
        if !self.dirty {
            return Ok(());
        }
        let start = Instant::now();
        self.file
            .sync_data()
            .map_err(|e| WalError::io("fsync", &self.path, e))?;
        let took = start.elapsed();
        self.dirty = false;
        self.last_sync = Instant::now();
        if let Some(on_fsync) = &self.on_fsync {
            on_fsync(took);
        }
        Ok(())
    }

    /// Final fsync before the thread stops.
    fn shutdown(&mut self) -> Result<(), WalError> {
        if let Some(cause) = &self.poisoned {
            return Err(WalError::Poisoned {
                cause: Arc::clone(cause),
            });
        }
        self.sync()
    }
}

/// Creates segment `seq` with its header, and fsyncs the file and the directory so the new
/// segment survives a crash.
fn create_segment(dir: &Path, seq: u64) -> Result<(File, PathBuf), WalError> {
    let path = dir.join(format::segment_file_name(seq));
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| WalError::io("create", &path, e))?;
    file.write_all(&format::encode_segment_header())
        .map_err(|e| WalError::io("write header of", &path, e))?;
    file.sync_all()
        .map_err(|e| WalError::io("fsync", &path, e))?;
    sync_dir(dir)?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a failed write the writer refuses every later append (and close) instead of
    /// writing after a possibly partial record.
    #[cfg(target_os = "linux")]
    #[test]
    fn failed_write_poisons_the_writer() {
        let tmp = tempfile::tempdir().unwrap();
        let size = Arc::new(AtomicU64::new(0));
        let mut writer = Writer::start(tmp.path(), None, &WalOptions::default(), size).unwrap();
        // Every write to /dev/full fails with ENOSPC.
        writer.file = OpenOptions::new().write(true).open("/dev/full").unwrap();

        let err = writer.commit(&[(1, b"lost".to_vec())]).unwrap_err();
        assert!(matches!(&err, WalError::Io { op: "write", .. }), "{err}");
        let err = writer.commit(&[(1, b"refused".to_vec())]).unwrap_err();
        assert!(
            matches!(&err, WalError::Poisoned { cause } if matches!(**cause, WalError::Io { .. })),
            "{err}"
        );
        assert!(matches!(writer.shutdown(), Err(WalError::Poisoned { .. })));
    }

    #[test]
    fn one_group_write_rotates_mid_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let size = Arc::new(AtomicU64::new(0));
        let opts = WalOptions {
            segment_max_bytes: 110,
            ..WalOptions::default()
        };
        let mut writer = Writer::start(tmp.path(), None, &opts, Arc::clone(&size)).unwrap();
        // Each frame is 9 + 40 bytes: two fit after the 8-byte header (106 <= 110), the third
        // rotates.
        let records = vec![(1, vec![1u8; 40]), (1, vec![2u8; 40]), (1, vec![3u8; 40])];
        writer.commit(&records).unwrap();
        assert_eq!(writer.seq, 2);
        assert_eq!(writer.segment_len, 8 + 49);
        assert_eq!(size.load(Ordering::Relaxed), 8 + 2 * 49 + 8 + 49);
        assert!(!writer.dirty, "Always policy leaves nothing unsynced");
    }
}
