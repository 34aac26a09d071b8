//! Tests of the WAL through its public API, plus some byte surgery on the files it leaves.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::format::{self, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use super::*;

/// Opens the WAL in `dir`, returning the replayed records too.
fn open(dir: &Path, opts: WalOptions) -> (Wal, Vec<Vec<u8>>, ReplayReport) {
    let mut seen = Vec::new();
    let (wal, report) =
        Wal::open(dir, opts, |r| seen.push(r.to_vec())).expect("open should succeed");
    (wal, seen, report)
}

/// Reopens the WAL in `dir`, closes it and returns what it replayed.
async fn replay_all(dir: &Path) -> (Vec<Vec<u8>>, ReplayReport) {
    let (wal, seen, report) = open(dir, WalOptions::default());
    wal.close().await.unwrap();
    (seen, report)
}

fn opts_with_segment_max(segment_max_bytes: u64) -> WalOptions {
    WalOptions {
        segment_max_bytes,
        ..WalOptions::default()
    }
}

/// A record of varying length whose bytes depend on `i`.
fn record(i: usize) -> Vec<u8> {
    let len = 1 + (i * 37) % 200;
    (0..len).map(|j| (i.wrapping_mul(31) + j) as u8).collect()
}

/// Segment files in `dir`, in sequence order.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let seq = format::parse_segment_file_name(e.file_name().to_str()?)?;
            Some((seq, e.path()))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

fn dir_size(dir: &Path) -> u64 {
    segment_files(dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

/// Writes `records` to a fresh WAL in `dir` and closes it.
async fn write_records(dir: &Path, opts: WalOptions, records: &[Vec<u8>]) {
    let (wal, seen, _) = open(dir, opts);
    assert!(seen.is_empty());
    for r in records {
        wal.append(r.clone()).await.unwrap();
    }
    wal.close().await.unwrap();
}

#[tokio::test]
async fn round_trip_many_records_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal").join("traces");
    let records: Vec<Vec<u8>> = (0..500).map(record).collect();

    let (wal, seen, report) = open(&dir, opts_with_segment_max(4096));
    assert!(seen.is_empty());
    assert_eq!(report, ReplayReport::default());
    for r in &records {
        wal.append(r.clone()).await.unwrap();
    }
    assert_eq!(wal.size_bytes(), dir_size(&dir));
    wal.close().await.unwrap();

    let files = segment_files(&dir);
    assert!(
        files.len() >= 5,
        "expected several segments, got {}",
        files.len()
    );
    assert!(files[0].ends_with("00000001"));
    for f in &files {
        let len = fs::metadata(f).unwrap().len();
        assert!(len <= 4096, "segment {} has {len} bytes", f.display());
        let head = fs::read(f).unwrap();
        assert_eq!(head[..SEGMENT_HEADER_LEN], format::encode_segment_header());
    }

    let (seen, report) = replay_all(&dir).await;
    assert_eq!(seen, records);
    assert_eq!(report.records, 500);
    assert_eq!(
        report.bytes,
        records.iter().map(|r| r.len() as u64).sum::<u64>()
    );
    assert_eq!(report.truncated, None);
}

#[tokio::test]
async fn reopen_appends_after_existing_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_records(dir, WalOptions::default(), &[b"first".to_vec()]).await;

    let (wal, seen, _) = open(dir, WalOptions::default());
    assert_eq!(seen, vec![b"first".to_vec()]);
    let size_before = wal.size_bytes();
    wal.append(b"second".to_vec()).await.unwrap();
    assert_eq!(wal.size_bytes(), size_before + format::frame_len(6));
    wal.close().await.unwrap();

    assert_eq!(
        segment_files(dir).len(),
        1,
        "appends continue the last segment"
    );
    let (seen, report) = replay_all(dir).await;
    assert_eq!(seen, vec![b"first".to_vec(), b"second".to_vec()]);
    assert_eq!(report.truncated, None);
}

#[tokio::test]
async fn full_last_segment_gets_a_fresh_one_on_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Bytes snappy cannot shrink, so the record stays bigger than a segment.
    let big: Vec<u8> = (0..200).map(|i| i as u8).collect();
    write_records(dir, opts_with_segment_max(100), std::slice::from_ref(&big)).await;
    assert_eq!(segment_files(dir).len(), 1);

    let (wal, seen, _) = open(dir, opts_with_segment_max(100));
    assert_eq!(seen, vec![big.clone()]);
    wal.append(b"x".to_vec()).await.unwrap();
    wal.close().await.unwrap();
    assert_eq!(segment_files(dir).len(), 2);
    assert_eq!(replay_all(dir).await.0, vec![big, b"x".to_vec()]);
}

#[tokio::test]
async fn torn_tail_is_cut_and_the_log_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let records: Vec<Vec<u8>> = (0..20).map(record).collect();
    write_records(dir, WalOptions::default(), &records).await;

    // Tear the last record: keep its header and all but 3 payload bytes.
    let last = segment_files(dir).pop().unwrap();
    let len = fs::metadata(&last).unwrap().len();
    let last_frame = format::frame_len(records[19].len());
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 3)
        .unwrap();

    let (wal, seen, report) = open(dir, WalOptions::default());
    assert_eq!(seen, records[..19]);
    let cut = report.truncated.expect("torn tail should be reported");
    assert_eq!(cut.segment, 1);
    assert_eq!(cut.offset, len - last_frame);
    assert_eq!(cut.bytes_dropped, last_frame - 3);
    assert_eq!(cut.segments_removed, 0);
    assert_eq!(
        cut.reason,
        TruncationReason::IncompleteRecord {
            length: records[19].len() as u32
        }
    );
    assert_eq!(fs::metadata(&last).unwrap().len(), len - last_frame);

    wal.append(b"after repair".to_vec()).await.unwrap();
    wal.close().await.unwrap();

    let (seen, report) = replay_all(dir).await;
    let mut expected = records[..19].to_vec();
    expected.push(b"after repair".to_vec());
    assert_eq!(seen, expected);
    assert_eq!(report.truncated, None);
}

#[tokio::test]
async fn torn_record_header_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_records(dir, WalOptions::default(), &[b"a".to_vec(), b"b".to_vec()]).await;
    let seg = segment_files(dir).pop().unwrap();
    let keep = SEGMENT_HEADER_LEN as u64 + format::frame_len(1) + 4;
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(keep)
        .unwrap();

    let (seen, report) = replay_all(dir).await;
    assert_eq!(seen, vec![b"a".to_vec()]);
    let cut = report.truncated.unwrap();
    assert_eq!(cut.reason, TruncationReason::IncompleteRecordHeader);
    assert_eq!(cut.offset, keep - 4);
    assert_eq!(cut.bytes_dropped, 4);
}

#[tokio::test]
async fn zero_filled_tail_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_records(dir, WalOptions::default(), &[b"a".to_vec()]).await;
    let seg = segment_files(dir).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    // As a file system may leave after a crash that extended the file but lost its data.
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len + 4096)
        .unwrap();

    let (seen, report) = replay_all(dir).await;
    assert_eq!(seen, vec![b"a".to_vec()]);
    let cut = report.truncated.unwrap();
    assert_eq!(cut.reason, TruncationReason::UnknownRecordType(0));
    assert_eq!(cut.offset, len);
    assert_eq!(cut.bytes_dropped, 4096);
}

#[tokio::test]
async fn bit_flip_in_last_segment_cuts_there() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let records: Vec<Vec<u8>> = (0..300).map(record).collect();
    write_records(dir, opts_with_segment_max(4096), &records).await;
    let files = segment_files(dir);
    assert!(files.len() >= 3);
    let last = files.last().unwrap();

    // Find the frame boundaries of the last segment, then flip a payload bit of a middle frame.
    let mut bytes = fs::read(last).unwrap();
    let mut starts = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    while pos < bytes.len() {
        starts.push(pos);
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += RECORD_HEADER_LEN + len;
    }
    assert_eq!(pos, bytes.len());
    assert!(starts.len() >= 3, "need a middle record to corrupt");
    let victim = starts.len() / 2;
    bytes[starts[victim] + RECORD_HEADER_LEN] ^= 0x10;
    fs::write(last, &bytes).unwrap();

    let (seen, report) = replay_all(dir).await;
    let kept = records.len() - (starts.len() - victim);
    assert_eq!(seen, records[..kept]);
    let cut = report.truncated.unwrap();
    assert_eq!(cut.segment, files.len() as u64);
    assert_eq!(cut.offset, starts[victim] as u64);
    assert!(matches!(
        cut.reason,
        TruncationReason::ChecksumMismatch { stored, computed } if stored != computed
    ));
    assert_eq!(cut.bytes_dropped, (bytes.len() - starts[victim]) as u64);
    assert_eq!(fs::metadata(last).unwrap().len(), starts[victim] as u64);
}

#[tokio::test]
async fn corruption_in_an_earlier_segment_drops_later_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let records: Vec<Vec<u8>> = (0..300).map(record).collect();
    write_records(dir, opts_with_segment_max(4096), &records).await;
    let files = segment_files(dir);
    let later_bytes: u64 = files[1..]
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();

    // Flip a bit in the length field of the first record: its checksum no longer matches.
    let mut bytes = fs::read(&files[0]).unwrap();
    let first_len = bytes.len() as u64;
    bytes[SEGMENT_HEADER_LEN + 3] ^= 0x01;
    fs::write(&files[0], &bytes).unwrap();

    let (wal, seen, report) = open(dir, opts_with_segment_max(4096));
    assert!(seen.is_empty());
    let cut = report.truncated.unwrap();
    assert_eq!(cut.segment, 1);
    assert_eq!(cut.offset, SEGMENT_HEADER_LEN as u64);
    assert_eq!(cut.segments_removed, files.len() as u64 - 1);
    assert_eq!(
        cut.bytes_dropped,
        first_len - SEGMENT_HEADER_LEN as u64 + later_bytes
    );
    assert_eq!(segment_files(dir).len(), 1);
    assert_eq!(wal.size_bytes(), SEGMENT_HEADER_LEN as u64);
    wal.close().await.unwrap();
}

#[tokio::test]
async fn garbage_segment_header_is_an_error_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let garbage = b"this is not a wal segment".to_vec();
    fs::write(dir.join("00000001"), &garbage).unwrap();

    let err = Wal::open(dir, WalOptions::default(), |_| {}).unwrap_err();
    assert!(
        matches!(&err, WalError::BadHeader { path, .. } if path.ends_with("00000001")),
        "{err}"
    );
    assert!(err.to_string().contains("bad header"), "{err}");
    assert_eq!(fs::read(dir.join("00000001")).unwrap(), garbage);
}

#[tokio::test]
async fn newer_format_version_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut header = format::encode_segment_header();
    header[4] = format::FORMAT_VERSION + 1;
    fs::write(dir.join("00000001"), header).unwrap();

    let err = Wal::open(dir, WalOptions::default(), |_| {}).unwrap_err();
    assert!(
        matches!(err, WalError::UnsupportedVersion { version, .. } if version == format::FORMAT_VERSION + 1),
        "{err}"
    );
}

#[tokio::test]
async fn empty_last_segment_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_records(dir, WalOptions::default(), &[b"kept".to_vec()]).await;
    // A crash right after creating the next segment, before its header was written.
    fs::write(dir.join("00000002"), b"PH").unwrap();

    let (wal, seen, report) = open(dir, WalOptions::default());
    assert_eq!(seen, vec![b"kept".to_vec()]);
    let cut = report.truncated.unwrap();
    assert_eq!(cut.segment, 2);
    assert_eq!(cut.reason, TruncationReason::IncompleteSegmentHeader);
    assert_eq!(cut.bytes_dropped, 2);
    wal.append(b"new".to_vec()).await.unwrap();
    wal.close().await.unwrap();
    assert_eq!(
        replay_all(dir).await.0,
        vec![b"kept".to_vec(), b"new".to_vec()]
    );
}

#[tokio::test]
async fn missing_middle_segment_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let records: Vec<Vec<u8>> = (0..100).map(record).collect();
    write_records(dir, opts_with_segment_max(1024), &records).await;
    let files = segment_files(dir);
    assert!(files.len() >= 3);
    fs::remove_file(&files[1]).unwrap();

    let err = Wal::open(dir, WalOptions::default(), |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::MissingSegment {
                expected: 2,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn unrelated_files_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("README"), b"hello").unwrap();
    fs::write(dir.join("00000001.tmp"), b"junk").unwrap();
    write_records(dir, WalOptions::default(), &[b"r".to_vec()]).await;
    assert_eq!(replay_all(dir).await.0, vec![b"r".to_vec()]);
    assert_eq!(fs::read(dir.join("README")).unwrap(), b"hello");
}

#[tokio::test]
async fn record_too_large_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let opts = WalOptions {
        max_record_bytes: 100,
        ..WalOptions::default()
    };
    let (wal, _, _) = open(dir, opts);
    let err = wal.append(vec![0; 101]).await.unwrap_err();
    assert!(
        matches!(
            err,
            WalError::RecordTooLarge {
                size: 101,
                max: 100
            }
        ),
        "{err}"
    );
    wal.append(vec![1; 100]).await.unwrap();
    wal.append(Vec::new()).await.unwrap();
    wal.close().await.unwrap();
    assert_eq!(replay_all(dir).await.0, vec![vec![1; 100], Vec::new()]);
}

#[test]
fn invalid_options_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let tiny = WalOptions {
        segment_max_bytes: SEGMENT_HEADER_LEN as u64,
        ..WalOptions::default()
    };
    assert!(matches!(
        Wal::open(tmp.path(), tiny, |_| {}),
        Err(WalError::InvalidOptions { .. })
    ));
    let huge = WalOptions {
        max_record_bytes: u64::from(u32::MAX) + 1,
        ..WalOptions::default()
    };
    assert!(matches!(
        Wal::open(tmp.path(), huge, |_| {}),
        Err(WalError::InvalidOptions { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_durable_grouped_and_ordered() {
    const TASKS: u32 = 32;
    const PER_TASK: u32 = 50;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fsyncs = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let opts = WalOptions {
        segment_max_bytes: 8192,
        on_fsync: Some({
            let fsyncs = Arc::clone(&fsyncs);
            Arc::new(move |_| {
                fsyncs.fetch_add(1, Ordering::Relaxed);
            })
        }),
        on_write: Some({
            let written = Arc::clone(&written);
            Arc::new(move |n| {
                written.fetch_add(n, Ordering::Relaxed);
            })
        }),
        ..WalOptions::default()
    };
    let (wal, _, _) = open(dir, opts);

    let mut handles = Vec::new();
    for task in 0..TASKS {
        let wal = wal.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let mut rec = task.to_be_bytes().to_vec();
                rec.extend_from_slice(&i.to_be_bytes());
                rec.resize(8 + (i as usize % 64), 0xAB);
                wal.append(rec).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let size = wal.size_bytes();
    wal.close().await.unwrap();

    let total = u64::from(TASKS * PER_TASK);
    let segments = segment_files(dir).len() as u64;
    assert!(segments > 1, "small segments should have rotated");
    assert_eq!(size, dir_size(dir));
    assert_eq!(
        written.load(Ordering::Relaxed),
        size - segments * SEGMENT_HEADER_LEN as u64,
        "on_write sees every record byte"
    );
    let fsyncs = fsyncs.load(Ordering::Relaxed);
    assert!(fsyncs >= 1);
    assert!(
        fsyncs < total,
        "group commit should share fsyncs: {fsyncs} fsyncs for {total} records"
    );

    let (seen, report) = replay_all(dir).await;
    assert_eq!(report.records, total);
    let mut next = vec![0u32; TASKS as usize];
    for rec in seen {
        let task = u32::from_be_bytes(rec[..4].try_into().unwrap()) as usize;
        let i = u32::from_be_bytes(rec[4..8].try_into().unwrap());
        assert_eq!(i, next[task], "task {task} records out of order");
        assert_eq!(rec.len(), 8 + (i as usize % 64));
        next[task] += 1;
    }
    assert!(next.iter().all(|&n| n == PER_TASK));
}

#[tokio::test]
async fn close_then_append_fails_with_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(tmp.path(), WalOptions::default());
    let other = wal.clone();
    wal.append(b"before".to_vec()).await.unwrap();
    wal.close().await.unwrap();
    assert!(matches!(
        wal.append(b"after".to_vec()).await,
        Err(WalError::Closed)
    ));
    assert!(matches!(
        other.append(b"after".to_vec()).await,
        Err(WalError::Closed)
    ));
    wal.close().await.unwrap();
    other.close().await.unwrap();
    assert_eq!(replay_all(tmp.path()).await.0, vec![b"before".to_vec()]);
}

#[tokio::test]
async fn dropping_every_handle_keeps_acknowledged_records() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(tmp.path(), WalOptions::default());
    wal.append(b"acked".to_vec()).await.unwrap();
    drop(wal);
    assert_eq!(replay_all(tmp.path()).await.0, vec![b"acked".to_vec()]);
}

#[tokio::test]
async fn never_policy_writes_without_fsync_until_close() {
    let tmp = tempfile::tempdir().unwrap();
    let fsyncs = Arc::new(AtomicU64::new(0));
    let opts = WalOptions {
        fsync: FsyncPolicy::Never,
        on_fsync: Some({
            let fsyncs = Arc::clone(&fsyncs);
            Arc::new(move |_| {
                fsyncs.fetch_add(1, Ordering::Relaxed);
            })
        }),
        ..WalOptions::default()
    };
    let (wal, _, _) = open(tmp.path(), opts);
    for i in 0..10 {
        wal.append(record(i)).await.unwrap();
    }
    assert_eq!(fsyncs.load(Ordering::Relaxed), 0);
    wal.close().await.unwrap();
    assert_eq!(fsyncs.load(Ordering::Relaxed), 1, "close fsyncs once");
    assert_eq!(
        replay_all(tmp.path()).await.0,
        (0..10).map(record).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn interval_policy_fsyncs_idle_data_after_the_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let fsyncs = Arc::new(AtomicU64::new(0));
    let opts = WalOptions {
        fsync: FsyncPolicy::Interval(Duration::from_millis(50)),
        on_fsync: Some({
            let fsyncs = Arc::clone(&fsyncs);
            Arc::new(move |_| {
                fsyncs.fetch_add(1, Ordering::Relaxed);
            })
        }),
        ..WalOptions::default()
    };
    let (wal, _, _) = open(tmp.path(), opts);
    // The first write comes well within the interval of open, so it is not synced yet.
    wal.append(b"x".to_vec()).await.unwrap();
    let mut waited = Duration::ZERO;
    while fsyncs.load(Ordering::Relaxed) == 0 {
        assert!(
            waited < Duration::from_secs(5),
            "interval fsync never happened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    assert_eq!(fsyncs.load(Ordering::Relaxed), 1);
    wal.close().await.unwrap();
    assert_eq!(replay_all(tmp.path()).await.0, vec![b"x".to_vec()]);
}

#[test]
fn errors_render_lowercase_with_fields() {
    let err = WalError::RecordTooLarge { size: 10, max: 5 };
    assert_eq!(err.to_string(), "wal record too large: 10 bytes, max 5");
    let io = WalError::io("fsync", "00000001", std::io::Error::other("disk on fire"));
    assert_eq!(
        io.to_string(),
        "wal i/o error: fsync 00000001: disk on fire"
    );
    let poisoned = WalError::Poisoned {
        cause: Arc::new(io),
    };
    assert!(poisoned.to_string().contains("disk on fire"));
}

/// A rotation splits the log where it was submitted: records before it stay in earlier
/// segments and are gone after `remove_segments_before`, records after it replay.
#[tokio::test]
async fn rotate_then_remove_keeps_only_later_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let (wal, _, _) = open(&dir, WalOptions::default());
    let before: Vec<_> = (0..3)
        .map(|i| wal.submit(record(i)).unwrap())
        .collect::<Vec<_>>();
    let rotated = wal.submit_rotate().unwrap();
    let after = wal.submit(record(100)).unwrap();
    for p in before {
        p.await.unwrap();
    }
    let seq = rotated.await.unwrap();
    after.await.unwrap();
    assert_eq!(seq, format::FIRST_SEGMENT + 1);
    assert_eq!(segment_files(&dir).len(), 2);

    let freed = wal.remove_segments_before(seq).unwrap();
    assert!(freed > SEGMENT_HEADER_LEN as u64, "freed {freed}");
    assert_eq!(segment_files(&dir).len(), 1);
    assert_eq!(wal.size_bytes(), dir_size(&dir));
    assert_eq!(
        wal.remove_segments_before(seq).unwrap(),
        0,
        "nothing left to remove"
    );
    wal.close().await.unwrap();

    let (seen, report) = replay_all(&dir).await;
    assert_eq!(seen, vec![record(100)]);
    assert!(report.truncated.is_none());
}

/// Repetitive records are stored as snappy blocks, much smaller, and replay as written;
/// a log written before compression (version 1 segments) still replays, and the writer
/// then starts a version 2 segment instead of appending to the old one.
#[tokio::test]
async fn records_are_compressed_and_old_segments_still_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A version 1 segment written by hand, as an older Pharos left it.
    let old = b"written by version 1".to_vec();
    let mut seg = format::encode_segment_header_version(1).to_vec();
    format::encode_record(&mut seg, &old);
    fs::write(dir.join(format::segment_file_name(1)), &seg).unwrap();

    let labels = "{__name__=\"node_cpu_seconds_total\",instance=\"host-1\",mode=\"idle\"} ";
    // Sizes go up and down (each thread reuses one compression buffer), and every
    // seventh record does not compress (stored as it is, after compressed ones).
    let mut x = 7u64;
    let records: Vec<Vec<u8>> = (0..50)
        .map(|i| {
            if i % 7 == 3 {
                (0..64)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        (x >> 56) as u8
                    })
                    .collect()
            } else {
                (labels.repeat(1 + (i * 7) % 20) + &i.to_string()).into_bytes()
            }
        })
        .collect();
    let (wal, seen, _) = open(dir, WalOptions::default());
    assert_eq!(seen, vec![old.clone()]);
    for (i, r) in records.iter().enumerate() {
        if i % 2 == 0 {
            wal.append(&r[..]).await.unwrap();
        } else {
            wal.append(r.clone()).await.unwrap();
        }
    }
    wal.close().await.unwrap();
    let files = segment_files(dir);
    assert_eq!(files.len(), 2, "a new segment for version 2 records");
    assert_eq!(
        fs::read(&files[0]).unwrap(),
        seg,
        "the old segment is untouched"
    );
    let raw: usize = records.iter().map(Vec::len).sum();
    let on_disk = fs::metadata(&files[1]).unwrap().len() as usize;
    assert!(
        on_disk * 5 < raw,
        "{on_disk} bytes on disk for {raw} bytes of records"
    );

    let (replayed, report) = replay_all(dir).await;
    let mut expected = vec![old];
    expected.extend(records);
    assert_eq!(replayed, expected);
    assert_eq!(
        report.bytes,
        expected.iter().map(|r| r.len() as u64).sum::<u64>()
    );
    assert!(report.truncated.is_none());
}

/// A snappy record in a version 1 segment is not a record type that version has.
#[tokio::test]
async fn snappy_record_in_a_version_1_segment_ends_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut seg = format::encode_segment_header_version(1).to_vec();
    format::encode_record(&mut seg, b"kept");
    let packed = snap::raw::Encoder::new()
        .compress_vec(&[b'a'; 100])
        .unwrap();
    format::encode_record_of_type(&mut seg, format::RECORD_TYPE_SNAPPY, &packed);
    fs::write(dir.join(format::segment_file_name(1)), &seg).unwrap();
    let (replayed, report) = replay_all(dir).await;
    assert_eq!(replayed, vec![b"kept".to_vec()]);
    assert_eq!(
        report.truncated.unwrap().reason,
        TruncationReason::UnknownRecordType(format::RECORD_TYPE_SNAPPY)
    );
}

/// A record spliced from a prefix and a snappy body replays as the prefix and the body's
/// bytes, compressed or not, long or short; a body that is not snappy is left to the caller.
#[tokio::test]
async fn snappy_bodies_are_logged_with_a_prefix_without_recompressing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut want = Vec::new();
    for compress in [true, false] {
        let dir = tmp.path().join(format!("c{compress}"));
        let opts = WalOptions {
            compress,
            ..WalOptions::default()
        };
        let (wal, _, _) = open(&dir, opts.clone());
        want.clear();
        // Repetitive text (copies reaching far back), random-ish bytes and tiny bodies.
        let bodies: Vec<Vec<u8>> = vec![
            b"level=info msg=\"paid\" order=1234 ".repeat(5000),
            (0..70_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            b"x".to_vec(),
            Vec::new(),
        ];
        for (i, body) in bodies.iter().enumerate() {
            let snappy = snap::raw::Encoder::new().compress_vec(body).unwrap();
            let prefix = [0x1a, i as u8 + 1, 0xff];
            let prepared = wal
                .prepare_snappy_with_prefix(&prefix, &snappy)
                .expect("snappy")
                .unwrap();
            wal.submit_prepared(prepared).unwrap().await.unwrap();
            let mut record = prefix.to_vec();
            record.extend_from_slice(body);
            want.push(record);
        }
        assert!(
            wal.prepare_snappy_with_prefix(b"p", b"\xff\xff\xff\xff\xff\xff")
                .is_none()
        );
        wal.close().await.unwrap();
        let (wal, seen, _) = open(&dir, opts);
        wal.close().await.unwrap();
        assert_eq!(seen, want, "compress {compress}");
    }
}

/// Segments below `covered_before` are deleted unreplayed, and a log that starts afresh
/// numbers its first segment at the mark, so the mark never covers later records.
#[tokio::test]
async fn covered_segments_are_dropped_and_numbering_never_goes_below_the_mark() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let (wal, _, _) = open(&dir, WalOptions::default());
    wal.submit(record(1)).unwrap().await.unwrap();
    let second = wal.submit_rotate().unwrap().await.unwrap();
    wal.submit(record(2)).unwrap().await.unwrap();
    wal.close().await.unwrap();
    let covered = |n: u64| WalOptions {
        covered_before: n,
        ..WalOptions::default()
    };
    // The first segment is covered: only the second's record replays.
    let (wal, seen, _) = open(&dir, covered(second));
    wal.close().await.unwrap();
    assert_eq!(seen, vec![record(2)]);
    assert_eq!(segment_files(&dir).len(), 1);
    // A wiped log starts at the mark, so a record written now survives the next open.
    fs::remove_dir_all(&dir).unwrap();
    let (wal, _, _) = open(&dir, covered(second + 5));
    wal.submit(record(3)).unwrap().await.unwrap();
    wal.close().await.unwrap();
    let (wal, seen, _) = open(&dir, covered(second + 5));
    wal.close().await.unwrap();
    assert_eq!(seen, vec![record(3)]);
}
