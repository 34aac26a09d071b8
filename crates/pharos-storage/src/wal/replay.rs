//! Reading the log back at open, and repairing a torn or corrupt tail.
//!
//! Replay is strictly sequential: the first bad frame ends the log. Records after it cannot be
//! trusted to be in order with what came before (a gap would silently reorder or lose data), so
//! its segment is truncated there and every later segment is deleted, as Prometheus' WAL repair
//! does. Headers that are present but wrong are *not* repaired: such a file may not be ours, so
//! open fails instead.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::format::{self, HeaderError, RECORD_HEADER_LEN, RecordHeader, SEGMENT_HEADER_LEN};
use super::{ReplayReport, Truncation, TruncationReason, WalError};

/// Read buffer for scanning segments.
const READ_BUFFER_BYTES: usize = 1024 * 1024;

/// The outcome of replaying a directory.
pub(super) struct Replayed {
    /// What the caller gets back.
    pub report: ReplayReport,
    /// Total bytes of the segments left after repair.
    pub total_bytes: u64,
    /// Sequence number and length of the last segment left after repair.
    pub last_segment: Option<(u64, u64)>,
}

/// Replays the WAL in `dir` through `visit`, repairing the tail; creates `dir` if missing.
pub(super) fn replay(dir: &Path, visit: &mut dyn FnMut(&[u8])) -> Result<Replayed, WalError> {
    create_dir(dir)?;
    let segments = list_segments(dir)?;
    let mut report = ReplayReport::default();
    let mut total_bytes = 0;
    let mut last_segment = None;

    for (i, &seq) in segments.iter().enumerate() {
        let path = dir.join(format::segment_file_name(seq));
        let scan = scan_segment(&path, visit, &mut report)?;
        let Some((offset, reason)) = scan.corruption else {
            total_bytes += scan.file_len;
            last_segment = Some((seq, scan.file_len));
            continue;
        };

        // Cut here: shorten (or delete) this segment and delete all later ones.
        let mut bytes_dropped = scan.file_len - offset;
        if reason == TruncationReason::IncompleteSegmentHeader {
            fs::remove_file(&path).map_err(|e| WalError::io("remove", &path, e))?;
        } else {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| WalError::io("open", &path, e))?;
            file.set_len(offset)
                .map_err(|e| WalError::io("truncate", &path, e))?;
            file.sync_all()
                .map_err(|e| WalError::io("fsync", &path, e))?;
            total_bytes += offset;
            last_segment = Some((seq, offset));
        }
        let later = &segments[i + 1..];
        for &later_seq in later {
            let later_path = dir.join(format::segment_file_name(later_seq));
            let len = fs::metadata(&later_path)
                .map_err(|e| WalError::io("stat", &later_path, e))?
                .len();
            fs::remove_file(&later_path).map_err(|e| WalError::io("remove", &later_path, e))?;
            bytes_dropped += len;
        }
        sync_dir(dir)?;
        tracing::warn!(
            dir = %dir.display(),
            segment = seq,
            offset,
            reason = %reason,
            bytes_dropped,
            segments_removed = later.len(),
            "wal: cut torn or corrupt tail at last good record"
        );
        report.truncated = Some(Truncation {
            segment: seq,
            offset,
            reason,
            bytes_dropped,
            segments_removed: later.len() as u64,
        });
        break;
    }

    Ok(Replayed {
        report,
        total_bytes,
        last_segment,
    })
}

/// Creates the WAL directory (and parents) and makes the new entry durable.
fn create_dir(dir: &Path) -> Result<(), WalError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| WalError::io("create directory", dir, e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Fsyncs a directory so that entries created or removed in it survive a crash.
pub(super) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| WalError::io("fsync directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Returns the sequence numbers of the segments in `dir`, ascending and contiguous. Files with
/// other names are ignored.
/// Returns the segments in `dir` with their paths, oldest first.
pub(super) fn segment_paths(dir: &Path) -> Result<Vec<(u64, std::path::PathBuf)>, WalError> {
    Ok(list_segments(dir)?
        .into_iter()
        .map(|seq| (seq, dir.join(format::segment_file_name(seq))))
        .collect())
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let entries = fs::read_dir(dir).map_err(|e| WalError::io("list", dir, e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io("list", dir, e))?;
        let Some(seq) = entry
            .file_name()
            .to_str()
            .and_then(format::parse_segment_file_name)
        else {
            continue;
        };
        let is_file = entry
            .file_type()
            .map_err(|e| WalError::io("stat", entry.path(), e))?
            .is_file();
        if is_file {
            segments.push(seq);
        }
    }
    segments.sort_unstable();
    for pair in segments.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(WalError::MissingSegment {
                dir: dir.to_path_buf(),
                expected: pair[0] + 1,
                found: pair[1],
            });
        }
    }
    Ok(segments)
}

/// What scanning one segment found.
struct SegmentScan {
    file_len: u64,
    /// Offset and reason of the first bad frame, if any.
    corruption: Option<(u64, TruncationReason)>,
}

/// Reads one segment, handing each good record to `visit` until the end or the first bad frame.
fn scan_segment(
    path: &Path,
    visit: &mut dyn FnMut(&[u8]),
    report: &mut ReplayReport,
) -> Result<SegmentScan, WalError> {
    let read_err = |e: io::Error| WalError::io("read", PathBuf::from(path), e);
    let file = File::open(path).map_err(|e| WalError::io("open", path, e))?;
    let file_len = file.metadata().map_err(read_err)?.len();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);

    let mut header = [0u8; SEGMENT_HEADER_LEN];
    let n = read_full(&mut reader, &mut header).map_err(read_err)?;
    let version = match format::decode_segment_header(&header[..n]) {
        Ok(version) => version,
        Err(HeaderError::Short) => {
            return Ok(SegmentScan {
                file_len,
                corruption: Some((0, TruncationReason::IncompleteSegmentHeader)),
            });
        }
        Err(HeaderError::BadMagic(magic)) => {
            return Err(WalError::BadHeader {
                path: path.to_path_buf(),
                reason: format!(
                    "magic {magic:#010x}, expected {:#010x}",
                    format::SEGMENT_MAGIC
                ),
            });
        }
        Err(HeaderError::NonZeroReserved) => {
            return Err(WalError::BadHeader {
                path: path.to_path_buf(),
                reason: "reserved header bytes are not zero".to_owned(),
            });
        }
        Err(HeaderError::UnsupportedVersion(version)) => {
            return Err(WalError::UnsupportedVersion {
                path: path.to_path_buf(),
                version,
            });
        }
    };

    let mut offset = SEGMENT_HEADER_LEN as u64;
    let mut payload = Vec::new();
    loop {
        let mut frame = [0u8; RECORD_HEADER_LEN];
        let n = read_full(&mut reader, &mut frame).map_err(read_err)?;
        if n == 0 {
            return Ok(SegmentScan {
                file_len,
                corruption: None,
            });
        }
        let corrupt = |reason| {
            Ok(SegmentScan {
                file_len,
                corruption: Some((offset, reason)),
            })
        };
        if n < RECORD_HEADER_LEN {
            return corrupt(TruncationReason::IncompleteRecordHeader);
        }
        let header = RecordHeader::decode(&frame);
        if !format::record_type_allowed(version, header.kind) {
            return corrupt(TruncationReason::UnknownRecordType(header.kind));
        }
        // Checked against the file, not max_record_bytes, so a garbage length never allocates
        // more than the file holds.
        let remaining = file_len - offset - RECORD_HEADER_LEN as u64;
        if u64::from(header.len) > remaining {
            return corrupt(TruncationReason::IncompleteRecord { length: header.len });
        }
        payload.resize(header.len as usize, 0);
        reader.read_exact(&mut payload).map_err(read_err)?;
        let computed = format::record_checksum(&header.len_and_type(), &payload);
        if computed != header.crc {
            return corrupt(TruncationReason::ChecksumMismatch {
                stored: header.crc,
                computed,
            });
        }
        let stored = payload.len();
        if header.kind == format::RECORD_TYPE_SNAPPY {
            // The checksum matched, so these are the bytes written; a block that does not
            // decompress is still treated as damage rather than replayed half.
            match snap::raw::Decoder::new().decompress_vec(&payload) {
                Ok(record) => {
                    visit(&record);
                    report.bytes += record.len() as u64;
                }
                Err(_) => return corrupt(TruncationReason::UndecodableRecord),
            }
        } else {
            visit(&payload);
            report.bytes += stored as u64;
        }
        report.records += 1;
        offset += format::frame_len(stored);
    }
}

/// Reads until `buf` is full or the reader is exhausted; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
