//! A most-significant-bit-first bit stream: the writer the XOR appender grows and the reader
//! its iterator walks.
//!
//! Bits fill each byte from its high bit down, and bytes follow each other in order, so the
//! stream reads like a big-endian number written left to right (as in Prometheus'
//! `tsdb/chunkenc/bstream.go`). The last byte is padded with zero bits.
//!
//! The writer appends into the last byte in place, so the bytes written so far are always a
//! readable stream: the head can iterate an open chunk without flushing anything.

use super::ChunkError;

/// Appends bits, most significant first, to a growing byte vector.
#[derive(Debug, Clone, Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    /// Unused low bits of the last byte (0 when the stream ends on a byte boundary).
    free: u32,
}

/// Reads bits, most significant first, from a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position of the next bit, counted from the high bit of `bytes[0]`.
    pos: usize,
}

impl BitWriter {
    /// Returns the stream: whole bytes, the last one zero-padded.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Returns how many bits were written.
    #[cfg(test)]
    pub(crate) fn bit_len(&self) -> usize {
        self.bytes.len() * 8 - self.free as usize
    }

    /// Appends one bit.
    #[inline]
    pub(crate) fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        self.free -= 1;
        if bit {
            *self.bytes.last_mut().expect("BUG: byte pushed above") |= 1 << self.free;
        }
    }

    /// Appends the low `n` bits of `value`, the highest of them first. Bits of `value`
    /// above the low `n` are ignored.
    ///
    /// # Panics
    ///
    /// When `n > 64` (a bug in the caller).
    #[inline]
    pub(crate) fn write_bits(&mut self, value: u64, n: u32) {
        assert!(n <= 64, "BUG: write_bits of {n} bits");
        let mut left = n;
        while left > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
            }
            let take = left.min(self.free);
            let bits = (value >> (left - take)) & ((1u64 << take) - 1);
            self.free -= take;
            *self.bytes.last_mut().expect("BUG: byte pushed above") |= (bits as u8) << self.free;
            left -= take;
        }
    }

    /// Appends whole bytes (not necessarily aligned to the stream's bytes).
    pub(crate) fn write_bytes(&mut self, bytes: &[u8]) {
        if self.free == 0 {
            self.bytes.extend_from_slice(bytes);
        } else {
            for &b in bytes {
                self.write_bits(u64::from(b), 8);
            }
        }
    }
}

impl<'a> BitReader<'a> {
    /// Returns a reader at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> BitReader<'a> {
        BitReader { bytes, pos: 0 }
    }

    /// Returns how many bits are left.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() * 8 - self.pos
    }

    /// Reads one bit.
    ///
    /// # Errors
    ///
    /// [`ChunkError::Truncated`] at the end of the stream.
    #[inline]
    pub(crate) fn read_bit(&mut self) -> Result<bool, ChunkError> {
        let Some(&byte) = self.bytes.get(self.pos / 8) else {
            return Err(ChunkError::Truncated);
        };
        let bit = byte >> (7 - self.pos % 8) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n <= 64` bits as the low bits of a `u64`, the first bit read highest.
    ///
    /// # Errors
    ///
    /// [`ChunkError::Truncated`] when fewer than `n` bits are left; nothing is consumed then.
    ///
    /// # Panics
    ///
    /// When `n > 64` (a bug in the caller).
    #[inline]
    pub(crate) fn read_bits(&mut self, n: u32) -> Result<u64, ChunkError> {
        assert!(n <= 64, "BUG: read_bits of {n} bits");
        if n == 0 {
            return Ok(0);
        }
        if self.remaining() < n as usize {
            return Err(ChunkError::Truncated);
        }
        let start = self.pos / 8;
        let shift = (self.pos % 8) as u32;
        // n + shift <= 71 bits, so a 16-byte window always holds them.
        let window = match self.bytes.get(start..start + 16) {
            Some(w) => u128::from_be_bytes(w.try_into().expect("BUG: 16-byte slice")),
            None => {
                let mut buf = [0u8; 16];
                let tail = &self.bytes[start..];
                buf[..tail.len()].copy_from_slice(tail);
                u128::from_be_bytes(buf)
            }
        };
        self.pos += n as usize;
        Ok(((window << shift) >> (128 - n)) as u64)
    }

    /// Reads one byte (not necessarily aligned to the stream's bytes).
    pub(crate) fn read_byte(&mut self) -> Result<u8, ChunkError> {
        self.read_bits(8).map(|b| b as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_at_every_alignment() {
        let mut w = BitWriter::default();
        let mut expected = Vec::new();
        for n in 0..=64u32 {
            let v = 0xDEAD_BEEF_F00D_CAFEu64.rotate_left(n)
                & if n == 64 { u64::MAX } else { (1 << n) - 1 };
            w.write_bits(v, n);
            w.write_bit(n % 3 == 0);
            expected.push((v, n));
        }
        w.write_bytes(&[0xA5, 0x5A]);
        let total = w.bit_len();
        let mut r = BitReader::new(w.bytes());
        for (v, n) in expected {
            assert_eq!(r.read_bits(n).unwrap(), v, "{n} bits");
            assert_eq!(r.read_bit().unwrap(), n % 3 == 0);
        }
        assert_eq!(r.read_byte().unwrap(), 0xA5);
        assert_eq!(r.read_byte().unwrap(), 0x5A);
        assert_eq!(w.bytes().len() * 8 - r.remaining(), total);
        assert!(r.remaining() < 8);
    }

    #[test]
    fn bits_are_most_significant_first() {
        let mut w = BitWriter::default();
        w.write_bit(true);
        w.write_bits(0b01, 2);
        w.write_bits(0x1FF, 9);
        assert_eq!(w.bytes(), &[0b1011_1111, 0b1111_0000]);
        assert_eq!(w.bit_len(), 12);
    }

    #[test]
    fn reading_past_the_end_is_an_error_and_consumes_nothing() {
        let mut r = BitReader::new(&[0xFF]);
        assert_eq!(r.read_bits(9), Err(ChunkError::Truncated));
        assert_eq!(r.read_bits(8), Ok(0xFF));
        assert_eq!(r.read_bit(), Err(ChunkError::Truncated));
        assert_eq!(BitReader::new(&[]).read_bits(1), Err(ChunkError::Truncated));
    }
}
