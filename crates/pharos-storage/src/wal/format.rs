//! The WAL's on-disk vocabulary: file names, magic number, version, segment header and record
//! frame.
//!
//! Everything byte-level lives here so the format has one home; `docs/format/wal.md` describes
//! the same bytes for people writing their own decoder. Change both together.
//!
//! A segment file is a [`SEGMENT_HEADER_LEN`]-byte header followed by zero or more record
//! frames; each frame is a [`RECORD_HEADER_LEN`]-byte header and the payload. All integers are
//! big-endian.

/// Number of decimal digits in a segment file name (`00000001`); longer names are accepted once
/// the sequence number outgrows it.
pub const SEGMENT_NAME_DIGITS: usize = 8;

/// Sequence number of the first segment of a new WAL.
pub const FIRST_SEGMENT: u64 = 1;

/// Magic number opening every segment file: the ASCII bytes `PHWL`.
pub const SEGMENT_MAGIC: u32 = 0x5048_574C;

/// Version of the segment format written by this code: 2, which adds
/// [`RECORD_TYPE_SNAPPY`]. Version 1 segments (only [`RECORD_TYPE_FULL`]) are still read.
pub const FORMAT_VERSION: u8 = 2;

/// The oldest segment version this code reads.
pub const OLDEST_READABLE_VERSION: u8 = 1;

/// Length of the segment header: magic (4), version (1), reserved (3).
pub const SEGMENT_HEADER_LEN: usize = 8;

/// Length of a record frame header: length (4), type (1), CRC32C (4).
pub const RECORD_HEADER_LEN: usize = 9;

/// Record type of a complete record stored as is (the only type version 1 has). Type 0 is
/// never valid, so zero-filled space after a crash is detected as the end of the log.
pub const RECORD_TYPE_FULL: u8 = 1;

/// Record type of a complete record stored as one raw snappy block (version 2 on); the
/// checksum covers the compressed bytes.
pub const RECORD_TYPE_SNAPPY: u8 = 2;

/// Records shorter than this are stored as is; compressing them rarely pays.
pub const COMPRESS_MIN_BYTES: usize = 64;

/// Largest payload the frame can describe (its length field is a `u32`).
pub const MAX_RECORD_LEN_LIMIT: u64 = u32::MAX as u64;

/// Returns the file name of segment `seq`, zero-padded to [`SEGMENT_NAME_DIGITS`] digits.
pub fn segment_file_name(seq: u64) -> String {
    format!("{seq:0width$}", width = SEGMENT_NAME_DIGITS)
}

/// Parses a segment file name back to its sequence number; `None` for any other file.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    if name.len() < SEGMENT_NAME_DIGITS || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Returns the header written at the start of every new segment.
pub fn encode_segment_header() -> [u8; SEGMENT_HEADER_LEN] {
    encode_segment_header_version(FORMAT_VERSION)
}

/// Returns a segment header of `version` (tests write old versions with it).
pub fn encode_segment_header_version(version: u8) -> [u8; SEGMENT_HEADER_LEN] {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    header[..4].copy_from_slice(&SEGMENT_MAGIC.to_be_bytes());
    header[4] = version;
    header
}

/// Why a segment header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The file holds fewer than [`SEGMENT_HEADER_LEN`] bytes.
    Short,
    /// The first four bytes are not [`SEGMENT_MAGIC`].
    BadMagic(u32),
    /// The version byte names a format this code cannot read.
    UnsupportedVersion(u8),
    /// The reserved bytes are not zero.
    NonZeroReserved,
}

/// Checks a segment header read from the start of a file and returns its version.
///
/// # Errors
///
/// Returns the first problem found, checking length, magic, version and reserved bytes in
/// that order.
pub fn decode_segment_header(bytes: &[u8]) -> Result<u8, HeaderError> {
    let Some(header) = bytes.get(..SEGMENT_HEADER_LEN) else {
        return Err(HeaderError::Short);
    };
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if magic != SEGMENT_MAGIC {
        return Err(HeaderError::BadMagic(magic));
    }
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&header[4]) {
        return Err(HeaderError::UnsupportedVersion(header[4]));
    }
    if header[5..].iter().any(|&b| b != 0) {
        return Err(HeaderError::NonZeroReserved);
    }
    Ok(header[4])
}

/// Returns whether a segment of `version` may hold records of type `kind`.
pub fn record_type_allowed(version: u8, kind: u8) -> bool {
    match kind {
        RECORD_TYPE_FULL => true,
        RECORD_TYPE_SNAPPY => version >= 2,
        _ => false,
    }
}

/// Returns the payload to store for `record` and its type: one snappy block when that is
/// smaller, else the record itself. Each thread keeps its encoder and a buffer of the
/// largest compressed size so far, so a record costs no fresh zeroed allocation.
pub fn compress_record(record: std::borrow::Cow<'_, [u8]>) -> (u8, Vec<u8>) {
    thread_local! {
        static SCRATCH: std::cell::RefCell<(snap::raw::Encoder, Vec<u8>)> =
            std::cell::RefCell::new((snap::raw::Encoder::new(), Vec::new()));
    }
    if record.len() < COMPRESS_MIN_BYTES {
        return (RECORD_TYPE_FULL, record.into_owned());
    }
    let packed = SCRATCH.with_borrow_mut(|(encoder, buf)| {
        let max = snap::raw::max_compress_len(record.len());
        if buf.len() < max {
            buf.resize(max, 0);
        }
        match encoder.compress(&record, buf) {
            Ok(n) if n < record.len() => Some(buf[..n].to_vec()),
            _ => None,
        }
    });
    match packed {
        Some(packed) => (RECORD_TYPE_SNAPPY, packed),
        None => (RECORD_TYPE_FULL, record.into_owned()),
    }
}

/// Returns the number of bytes a payload of `payload_len` bytes takes on disk, header included.
pub fn frame_len(payload_len: usize) -> u64 {
    RECORD_HEADER_LEN as u64 + payload_len as u64
}

/// Returns the CRC32C (Castagnoli) of a frame: over the 4 length bytes and the type byte as
/// they appear on disk, then the payload.
pub fn record_checksum(len_and_type: &[u8; 5], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len_and_type), payload)
}

/// Appends the frame of a [`RECORD_TYPE_FULL`] `payload` to `buf`.
///
/// # Panics
///
/// Panics if `payload` is longer than [`MAX_RECORD_LEN_LIMIT`]; callers check the size first,
/// so this is a bug.
pub fn encode_record(buf: &mut Vec<u8>, payload: &[u8]) {
    encode_record_of_type(buf, RECORD_TYPE_FULL, payload);
}

/// Appends the frame of `payload` stored as record type `kind` to `buf`.
///
/// # Panics
///
/// As [`encode_record`].
pub fn encode_record_of_type(buf: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("BUG: record length checked before encoding");
    let mut len_and_type = [0u8; 5];
    len_and_type[..4].copy_from_slice(&len.to_be_bytes());
    len_and_type[4] = kind;
    let crc = record_checksum(&len_and_type, payload);
    buf.reserve(RECORD_HEADER_LEN + payload.len());
    buf.extend_from_slice(&len_and_type);
    buf.extend_from_slice(&crc.to_be_bytes());
    buf.extend_from_slice(payload);
}

/// A decoded record frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Payload length in bytes.
    pub len: u32,
    /// Record type: [`RECORD_TYPE_FULL`], or [`RECORD_TYPE_SNAPPY`] in version 2 segments.
    pub kind: u8,
    /// CRC32C stored in the frame.
    pub crc: u32,
}

impl RecordHeader {
    /// Decodes the fixed part of a frame.
    pub fn decode(bytes: &[u8; RECORD_HEADER_LEN]) -> RecordHeader {
        RecordHeader {
            len: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            kind: bytes[4],
            crc: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]),
        }
    }

    /// Returns the length and type bytes as stored, the input of [`record_checksum`].
    pub fn len_and_type(&self) -> [u8; 5] {
        let mut out = [0u8; 5];
        out[..4].copy_from_slice(&self.len.to_be_bytes());
        out[4] = self.kind;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort() {
        assert_eq!(segment_file_name(1), "00000001");
        assert_eq!(segment_file_name(123_456_789), "123456789");
        assert_eq!(parse_segment_file_name("00000042"), Some(42));
        assert_eq!(parse_segment_file_name("123456789"), Some(123_456_789));
        for bad in ["0000001", "0000000a", "00000001.tmp", "", "checkpoint"] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn header_is_magic_version_and_zeros() {
        let header = encode_segment_header();
        assert_eq!(header, [b'P', b'H', b'W', b'L', 2, 0, 0, 0]);
        assert_eq!(
            decode_segment_header(&encode_segment_header_version(1)),
            Ok(1)
        );
        assert!(
            record_type_allowed(2, RECORD_TYPE_SNAPPY)
                && !record_type_allowed(1, RECORD_TYPE_SNAPPY)
        );
        assert_eq!(decode_segment_header(&header), Ok(FORMAT_VERSION));
        assert_eq!(decode_segment_header(&header[..7]), Err(HeaderError::Short));
        let mut bad = header;
        bad[0] = b'X';
        assert!(matches!(
            decode_segment_header(&bad),
            Err(HeaderError::BadMagic(_))
        ));
        for unknown in [0, 3] {
            let mut v = header;
            v[4] = unknown;
            assert_eq!(
                decode_segment_header(&v),
                Err(HeaderError::UnsupportedVersion(unknown))
            );
        }
        let mut reserved = header;
        reserved[7] = 1;
        assert_eq!(
            decode_segment_header(&reserved),
            Err(HeaderError::NonZeroReserved)
        );
    }

    /// Pins the exact bytes of one frame, the example given in docs/format/wal.md.
    #[test]
    fn record_frame_matches_documented_example() {
        let mut buf = Vec::new();
        encode_record(&mut buf, b"abc");
        let crc = crc32c::crc32c(&[0, 0, 0, 3, 1, b'a', b'b', b'c']);
        let mut expected = vec![0, 0, 0, 3, 1];
        expected.extend_from_slice(&crc.to_be_bytes());
        expected.extend_from_slice(b"abc");
        assert_eq!(buf, expected);
        assert_eq!(crc, 0x4F71_340B, "documented checksum of the example frame");
        assert_eq!(frame_len(3), buf.len() as u64);

        let header = RecordHeader::decode(buf[..RECORD_HEADER_LEN].try_into().unwrap());
        assert_eq!(
            header,
            RecordHeader {
                len: 3,
                kind: RECORD_TYPE_FULL,
                crc
            }
        );
        assert_eq!(record_checksum(&header.len_and_type(), b"abc"), crc);
    }

    #[test]
    fn crc32c_is_castagnoli() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }
}
