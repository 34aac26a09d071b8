//! The envelope every chunk starts with, and the LEB128 varints it is made of.
//!
//! ```text
//! encoding <uint8> | count <uvarint> | min_t <varint> | max_t - min_t <uvarint> | payload
//! ```
//!
//! Varints are Go's `encoding/binary` ones: 7 bits per byte, least significant group first,
//! high bit set on every byte but the last; signed values are zigzag-encoded first.

use super::{Chunk, ChunkError, Encoding, MAX_SAMPLES};

/// Appends the envelope of a chunk of `count` samples spanning `[min_t, max_t]`.
pub(crate) fn write(out: &mut Vec<u8>, encoding: Encoding, count: usize, min_t: i64, max_t: i64) {
    out.push(encoding.byte());
    put_uvarint(out, count as u64);
    put_varint(out, min_t);
    put_uvarint(out, max_t.wrapping_sub(min_t) as u64);
}

/// Parses an envelope; see [`Chunk::parse`].
pub(crate) fn parse(bytes: &[u8]) -> Result<Chunk<'_>, ChunkError> {
    let (&enc, mut rest) = bytes.split_first().ok_or(ChunkError::Truncated)?;
    let encoding = Encoding::from_byte(enc).ok_or(ChunkError::UnknownEncoding(enc))?;
    let count = uvarint(&mut rest)?;
    if count == 0 {
        return Err(ChunkError::Corrupt("chunk with no samples"));
    }
    if count > MAX_SAMPLES as u64 {
        return Err(ChunkError::Corrupt("sample count above the limit"));
    }
    let min_t = varint(&mut rest)?;
    let span = uvarint(&mut rest)?;
    let max_t = min_t
        .checked_add_unsigned(span)
        .ok_or(ChunkError::Corrupt("max time overflows"))?;
    // Strictly increasing integer timestamps span at least count - 1.
    if (count == 1) != (span == 0) || span < count - 1 {
        return Err(ChunkError::Corrupt(
            "time span does not fit the sample count",
        ));
    }
    Ok(Chunk {
        encoding,
        count: count as usize,
        min_t,
        max_t,
        payload: rest,
    })
}

/// Appends `v` as an unsigned LEB128 varint (1 to 10 bytes).
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded as an unsigned varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

/// Reads an unsigned varint from the front of `bytes`, advancing it.
pub(crate) fn uvarint(bytes: &mut &[u8]) -> Result<u64, ChunkError> {
    uvarint_from(|| {
        let (&b, rest) = bytes.split_first().ok_or(ChunkError::Truncated)?;
        *bytes = rest;
        Ok(b)
    })
}

/// Reads a zigzag-encoded varint from the front of `bytes`, advancing it.
pub(crate) fn varint(bytes: &mut &[u8]) -> Result<i64, ChunkError> {
    uvarint(bytes).map(unzigzag)
}

/// Reads an unsigned varint byte by byte from `next`.
///
/// # Errors
///
/// What `next` returns, or [`ChunkError::Corrupt`] when the value does not fit 64 bits.
pub(crate) fn uvarint_from(
    mut next: impl FnMut() -> Result<u8, ChunkError>,
) -> Result<u64, ChunkError> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = next()?;
        if i == 9 && b > 1 {
            return Err(ChunkError::Corrupt("varint overflows 64 bits"));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(ChunkError::Corrupt("varint overflows 64 bits"))
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_go_encoding_binary() {
        // Values and bytes from Go's binary.PutUvarint / PutVarint.
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0x00]),
            (1, &[0x01]),
            (300, &[0xac, 0x02]),
            (15_000, &[0x98, 0x75]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (v, bytes) in cases {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            assert_eq!(out, bytes, "{v}");
            let mut r = bytes;
            assert_eq!(uvarint(&mut r), Ok(v));
            assert!(r.is_empty());
        }
        for (v, z) in [
            (0i64, 0u64),
            (-1, 1),
            (1, 2),
            (-2, 3),
            (i64::MAX, u64::MAX - 1),
            (i64::MIN, u64::MAX),
        ] {
            assert_eq!(zigzag(v), z);
            assert_eq!(unzigzag(z), v);
        }
    }

    #[test]
    fn bad_varints_are_errors() {
        assert_eq!(uvarint(&mut &[0x80u8][..]), Err(ChunkError::Truncated));
        assert_eq!(uvarint(&mut &[][..]), Err(ChunkError::Truncated));
        let too_long = [0xffu8; 10];
        assert!(matches!(
            uvarint(&mut &too_long[..]),
            Err(ChunkError::Corrupt(_))
        ));
        let mut overflow = [0xffu8; 10];
        overflow[9] = 0x02;
        assert!(matches!(
            uvarint(&mut &overflow[..]),
            Err(ChunkError::Corrupt(_))
        ));
    }

    #[test]
    fn envelope_round_trips_and_checks_its_fields() {
        for (count, min_t, max_t) in [
            (1, 0, 0),
            (2, -5, 10),
            (120, 1_700_000_000_000, 1_700_001_785_000),
            (2, i64::MIN, i64::MAX),
        ] {
            let mut out = Vec::new();
            write(&mut out, Encoding::Pco, count, min_t, max_t);
            out.extend_from_slice(b"xyz");
            let c = parse(&out).unwrap();
            assert_eq!(
                (
                    c.encoding(),
                    c.len(),
                    c.min_time(),
                    c.max_time(),
                    c.payload()
                ),
                (Encoding::Pco, count, min_t, max_t, &b"xyz"[..])
            );
        }
        let bad = |count: usize, min_t: i64, max_t: i64| {
            let mut out = Vec::new();
            write(&mut out, Encoding::Xor, count, min_t, max_t);
            parse(&out).unwrap_err()
        };
        assert!(matches!(bad(0, 0, 0), ChunkError::Corrupt(_)));
        assert!(matches!(
            bad(MAX_SAMPLES + 1, 0, 1 << 20),
            ChunkError::Corrupt(_)
        ));
        assert!(matches!(bad(1, 0, 1), ChunkError::Corrupt(_)));
        assert!(matches!(bad(2, 0, 0), ChunkError::Corrupt(_)));
        assert!(matches!(bad(10, 0, 8), ChunkError::Corrupt(_)));
        assert!(matches!(bad(2, i64::MAX, i64::MIN), ChunkError::Corrupt(_)));
        assert_eq!(parse(&[]), Err(ChunkError::Truncated));
        assert_eq!(parse(&[7, 1, 0, 0]), Err(ChunkError::UnknownEncoding(7)));
        assert_eq!(parse(&[1, 1, 0]), Err(ChunkError::Truncated));
    }
}
