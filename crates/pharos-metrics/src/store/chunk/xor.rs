//! The XOR encoding (Gorilla, Pelkonen et al., VLDB 2015, as Prometheus writes it): a bit
//! stream of delta-of-delta timestamps and XORed values, appended one sample at a time.
//!
//! Per sample, after the first:
//!
//! - timestamp: the second sample stores its delta from the first as a uvarint; later ones
//!   store the delta of deltas in a prefix code: `0` (same delta), `10` + 14 bits,
//!   `110` + 17 bits, `1110` + 20 bits, `1111` + 64 bits.
//! - value: `0` when equal to the previous value; else `1`, then either `0` + the XOR's
//!   meaningful bits inside the previous window of leading/trailing zeros, or `1` + 5 bits of
//!   leading zeros + 6 bits of meaningful-bit count + the meaningful bits (a new window).
//!
//! The first timestamp is not in the stream: it is the envelope's `min_t`. Deltas are
//! computed in wrapping `u64`/`i64` arithmetic, so any strictly increasing `i64` timestamps
//! round-trip, `i64::MIN` to `i64::MAX` included.

use super::bits::{BitReader, BitWriter};
use super::envelope::{self, uvarint_from};
use super::{AppendError, ChunkError, EncodeError, Encoding, MAX_SAMPLES};

/// No leading/trailing-zero window has been written yet.
const NO_WINDOW: u8 = 0xff;

/// An appendable XOR-encoded chunk: what the head keeps per series and cuts when full.
///
/// # Examples
///
/// ```
/// use pharos_metrics::store::chunk::{Chunk, XorChunk};
///
/// let mut c = XorChunk::new();
/// c.append(1_000, 1.0).unwrap();
/// c.append(16_000, 2.0).unwrap();
/// assert!(c.append(16_000, 3.0).is_err());
/// let bytes = c.encode().unwrap();
/// let samples: Vec<_> = Chunk::parse(&bytes).unwrap().iter().collect::<Result<_, _>>().unwrap();
/// assert_eq!(samples, vec![(1_000, 1.0), (16_000, 2.0)]);
/// ```
#[derive(Debug, Clone)]
pub struct XorChunk {
    bits: BitWriter,
    count: usize,
    first_t: i64,
    last_t: i64,
    last_delta: u64,
    last_v: u64,
    leading: u8,
    trailing: u8,
}

/// Decodes a XOR payload sample by sample.
#[derive(Debug, Clone)]
pub(crate) struct XorIter<'a> {
    r: BitReader<'a>,
    count: usize,
    read: usize,
    /// The envelope's max time, checked with the end of the stream; `None` for an open chunk.
    max_t: Option<i64>,
    t: i64,
    delta: u64,
    v: u64,
    leading: u8,
    trailing: u8,
    failed: bool,
}

impl Default for XorChunk {
    fn default() -> Self {
        XorChunk::new()
    }
}

impl XorChunk {
    /// Returns an empty chunk.
    pub fn new() -> XorChunk {
        XorChunk {
            bits: BitWriter::default(),
            count: 0,
            first_t: 0,
            last_t: 0,
            last_delta: 0,
            last_v: 0,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }

    /// Appends one sample; `t_ms` must be after every sample already in the chunk. The value
    /// is stored bit-exact.
    ///
    /// # Errors
    ///
    /// [`AppendError`] for an old or repeated timestamp, or a full chunk; nothing is stored.
    pub fn append(&mut self, t_ms: i64, v: f64) -> Result<(), AppendError> {
        let v = v.to_bits();
        if self.count == 0 {
            self.bits.write_bits(v, 64);
            self.first_t = t_ms;
        } else {
            if t_ms < self.last_t {
                return Err(AppendError::OutOfOrder {
                    t_ms,
                    last_t_ms: self.last_t,
                });
            }
            if t_ms == self.last_t {
                return Err(AppendError::Duplicate { t_ms });
            }
            if self.count >= MAX_SAMPLES {
                return Err(AppendError::Full);
            }
            let delta = (t_ms as u64).wrapping_sub(self.last_t as u64);
            if self.count == 1 {
                let mut buf = Vec::with_capacity(10);
                envelope::put_uvarint(&mut buf, delta);
                self.bits.write_bytes(&buf);
            } else {
                self.write_dod(delta.wrapping_sub(self.last_delta) as i64);
            }
            self.write_value(v);
            self.last_delta = delta;
        }
        self.last_t = t_ms;
        self.last_v = v;
        self.count += 1;
        Ok(())
    }

    /// Returns how many samples the chunk holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Returns whether the chunk holds no sample.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Returns the first sample's timestamp, if any.
    pub fn min_time(&self) -> Option<i64> {
        (self.count > 0).then_some(self.first_t)
    }

    /// Returns the last sample's timestamp, if any.
    pub fn max_time(&self) -> Option<i64> {
        (self.count > 0).then_some(self.last_t)
    }

    /// Returns the size of the encoded samples in bytes (without the envelope).
    pub fn payload_len(&self) -> usize {
        self.bits.bytes().len()
    }

    /// Returns the samples in time order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        XorIter::new(self.bits.bytes(), self.count, self.first_t, None)
            .map(|s| s.expect("BUG: a chunk built by append failed to decode"))
    }

    /// Returns the chunk, envelope included, as [`super::Chunk::parse`] reads it.
    ///
    /// # Errors
    ///
    /// [`EncodeError::Empty`] when the chunk holds no sample.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        if self.count == 0 {
            return Err(EncodeError::Empty);
        }
        let payload = self.bits.bytes();
        let mut out = Vec::with_capacity(payload.len() + 16);
        envelope::write(
            &mut out,
            Encoding::Xor,
            self.count,
            self.first_t,
            self.last_t,
        );
        out.extend_from_slice(payload);
        Ok(out)
    }

    fn write_dod(&mut self, dod: i64) {
        let w = &mut self.bits;
        match dod {
            0 => w.write_bit(false),
            _ if fits(dod, 14) => {
                w.write_bits(0b10, 2);
                w.write_bits(dod as u64, 14);
            }
            _ if fits(dod, 17) => {
                w.write_bits(0b110, 3);
                w.write_bits(dod as u64, 17);
            }
            _ if fits(dod, 20) => {
                w.write_bits(0b1110, 4);
                w.write_bits(dod as u64, 20);
            }
            _ => {
                w.write_bits(0b1111, 4);
                w.write_bits(dod as u64, 64);
            }
        }
    }

    fn write_value(&mut self, v: u64) {
        let x = v ^ self.last_v;
        let w = &mut self.bits;
        if x == 0 {
            w.write_bit(false);
            return;
        }
        w.write_bit(true);
        // The count of leading zeros goes in 5 bits.
        let leading = (x.leading_zeros() as u8).min(31);
        let trailing = x.trailing_zeros() as u8;
        if self.leading != NO_WINDOW && leading >= self.leading && trailing >= self.trailing {
            w.write_bit(false);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            w.write_bits(x >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        let sig = 64 - u32::from(leading) - u32::from(trailing);
        w.write_bit(true);
        w.write_bits(u64::from(leading), 5);
        // 64 meaningful bits are written as 0; 0 meaningful bits never occur (x != 0).
        w.write_bits(u64::from(sig) & 0x3f, 6);
        w.write_bits(x >> trailing, sig);
    }
}

/// Returns whether `dod` is in the range Prometheus' `bitRange` gives `nbits`:
/// `-(2^(nbits-1) - 1) ..= 2^(nbits-1)`.
fn fits(dod: i64, nbits: u32) -> bool {
    let half = 1i64 << (nbits - 1);
    -(half - 1) <= dod && dod <= half
}

impl<'a> XorIter<'a> {
    /// Returns an iterator over `count` samples of `payload`, the first at `first_t`. With
    /// `max_t`, the last sample must be at `max_t` and the stream must end right after it
    /// (only zero padding left).
    pub(crate) fn new(
        payload: &'a [u8],
        count: usize,
        first_t: i64,
        max_t: Option<i64>,
    ) -> XorIter<'a> {
        XorIter {
            r: BitReader::new(payload),
            count,
            read: 0,
            max_t,
            t: first_t,
            delta: 0,
            v: 0,
            leading: NO_WINDOW,
            trailing: 0,
            failed: false,
        }
    }

    fn decode(&mut self) -> Result<(i64, f64), ChunkError> {
        if self.read == 0 {
            self.v = self.r.read_bits(64)?;
        } else {
            let delta = if self.read == 1 {
                uvarint_from(|| self.r.read_byte())?
            } else {
                self.delta.wrapping_add(self.read_dod()? as u64)
            };
            if delta == 0 {
                return Err(ChunkError::Corrupt("timestamps do not increase"));
            }
            self.t = self
                .t
                .checked_add_unsigned(delta)
                .ok_or(ChunkError::Corrupt("timestamp overflows"))?;
            self.delta = delta;
            self.read_value()?;
        }
        self.read += 1;
        if self.read == self.count {
            self.check_end()?;
        }
        Ok((self.t, f64::from_bits(self.v)))
    }

    fn read_dod(&mut self) -> Result<i64, ChunkError> {
        let mut ones = 0;
        while ones < 4 && self.r.read_bit()? {
            ones += 1;
        }
        let nbits = match ones {
            0 => return Ok(0),
            1 => 14,
            2 => 17,
            3 => 20,
            _ => return Ok(self.r.read_bits(64)? as i64),
        };
        let bits = self.r.read_bits(nbits)? as i64;
        // Two's complement in nbits, except that 2^(nbits-1) itself stands for itself.
        Ok(if bits > 1 << (nbits - 1) {
            bits - (1 << nbits)
        } else {
            bits
        })
    }

    fn read_value(&mut self) -> Result<(), ChunkError> {
        if !self.r.read_bit()? {
            return Ok(());
        }
        if self.r.read_bit()? {
            let leading = self.r.read_bits(5)? as u8;
            let sig = match self.r.read_bits(6)? as u8 {
                0 => 64,
                n => n,
            };
            if u32::from(leading) + u32::from(sig) > 64 {
                return Err(ChunkError::Corrupt("value window wider than 64 bits"));
            }
            self.leading = leading;
            self.trailing = 64 - leading - sig;
        } else if self.leading == NO_WINDOW {
            return Err(ChunkError::Corrupt("value reuses a window never set"));
        }
        let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
        let x = self.r.read_bits(sig)?;
        if x == 0 {
            // The writer emits `0` for an unchanged value; an empty XOR here is damage.
            return Err(ChunkError::Corrupt("value XOR of zero"));
        }
        self.v ^= x << self.trailing;
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), ChunkError> {
        let Some(max_t) = self.max_t else {
            return Ok(());
        };
        if self.t != max_t {
            return Err(ChunkError::Corrupt("last timestamp is not the max time"));
        }
        let left = self.r.remaining();
        if left >= 8 {
            return Err(ChunkError::Corrupt("bytes after the last sample"));
        }
        if self.r.read_bits(left as u32)? != 0 {
            return Err(ChunkError::Corrupt(
                "non-zero padding after the last sample",
            ));
        }
        Ok(())
    }
}

impl Iterator for XorIter<'_> {
    type Item = Result<(i64, f64), ChunkError>;

    /// Returns the next sample, or the error that ends the iteration.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.read >= self.count {
            return None;
        }
        let r = self.decode();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.failed {
            0
        } else {
            self.count - self.read
        };
        (0, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes samples and returns the payload bits as a string of 0s and 1s.
    fn bits(samples: &[(i64, f64)]) -> String {
        let mut c = XorChunk::new();
        for &(t, v) in samples {
            c.append(t, v).unwrap();
        }
        let mut s: String = c.bits.bytes().iter().map(|b| format!("{b:08b}")).collect();
        s.truncate(c.bits.bit_len());
        s
    }

    #[test]
    fn bit_layout_matches_the_format_doc() {
        let one = format!("{:064b}", 1.0f64.to_bits());
        assert_eq!(bits(&[(5, 1.0)]), one);
        // Delta 15000 as uvarint (0x98 0x75), then an unchanged value: `0`.
        assert_eq!(
            bits(&[(0, 1.0), (15_000, 1.0)]),
            format!("{one}{:08b}{:08b}0", 0x98, 0x75)
        );
        // Same delta: `0`; dod +1: `10` + 14 bits; dod -1 (two's complement): `10` + 14 bits.
        let head = format!("{one}{:08b}0", 10);
        assert_eq!(bits(&[(0, 1.0), (10, 1.0), (20, 1.0)]), format!("{head}00"));
        assert_eq!(
            bits(&[(0, 1.0), (10, 1.0), (21, 1.0)]),
            format!("{head}10{:014b}0", 1)
        );
        assert_eq!(
            bits(&[(0, 1.0), (10, 1.0), (19, 1.0)]),
            format!("{head}10{:014b}0", (1 << 14) - 1)
        );
        // 8192 still fits 14 bits, 8193 needs 17, -524287 fits 20, 524289 needs 64.
        assert_eq!(
            bits(&[(0, 1.0), (10, 1.0), (20 + 8192, 1.0)]),
            format!("{head}10{:014b}0", 8192)
        );
        assert_eq!(
            bits(&[(0, 1.0), (10, 1.0), (20 + 8193, 1.0)]),
            format!("{head}110{:017b}0", 8193)
        );
        let big = 1 << 30;
        assert_eq!(
            bits(&[(0, 1.0), (big, 1.0), (2 * big - 524_287, 1.0)]),
            format!(
                "{one}{:08b}{:08b}{:08b}{:08b}{:08b}01110{:020b}0",
                0x80,
                0x80,
                0x80,
                0x80,
                0x04,
                (1 << 20) - 524_287
            )
        );
        assert_eq!(
            bits(&[(0, 1.0), (10, 1.0), (20 + 524_289, 1.0)]),
            format!("{head}1111{:064b}0", 524_289)
        );
    }

    #[test]
    fn value_windows_are_reused_when_they_fit() {
        let one = format!("{:064b}", 1.0f64.to_bits());
        // 1.0 ^ 2.0 = 0x7ff0...: 1 leading zero, 52 trailing, 11 meaningful bits.
        let x12 = 1.0f64.to_bits() ^ 2.0f64.to_bits();
        assert_eq!((x12.leading_zeros(), x12.trailing_zeros()), (1, 52));
        let new_window = format!("11{:05b}{:06b}{:011b}", 1, 11, x12 >> 52);
        assert_eq!(
            bits(&[(0, 1.0), (1, 2.0)]),
            format!("{one}{:08b}{new_window}", 1)
        );
        // 2.0 ^ 1.0 is the same XOR: the window is reused with `10`.
        assert_eq!(
            bits(&[(0, 1.0), (1, 2.0), (2, 1.0)]),
            format!("{one}{:08b}{new_window}010{:011b}", 1, x12 >> 52)
        );
        // A XOR with all 64 bits meaningful stores 0 in the 6-bit count.
        let neg = -f64::from_bits(1);
        let x = 0f64.to_bits() ^ neg.to_bits();
        assert_eq!((x.leading_zeros(), x.trailing_zeros()), (0, 0));
        assert_eq!(
            bits(&[(0, 0.0), (1, neg)]),
            format!("{:064b}{:08b}11{:05b}{:06b}{:064b}", 0, 1, 0, 0, x)
        );
    }

    #[test]
    fn leading_zeros_are_capped_at_31() {
        let a = f64::from_bits(0);
        let b = f64::from_bits(1 << 20);
        let s = bits(&[(0, a), (1, b)]);
        let tail = &s[64 + 8..];
        assert_eq!(tail, format!("11{:05b}{:06b}{:013b}", 31, 13, 1));
        let mut c = XorChunk::new();
        c.append(0, a).unwrap();
        c.append(1, b).unwrap();
        assert_eq!(
            c.iter().map(|s| s.1.to_bits()).collect::<Vec<_>>(),
            vec![0, 1 << 20]
        );
    }

    #[test]
    fn open_chunk_reads_back_while_growing() {
        let mut c = XorChunk::new();
        assert!(c.is_empty());
        assert_eq!((c.min_time(), c.max_time()), (None, None));
        assert_eq!(c.encode(), Err(EncodeError::Empty));
        let mut expected = Vec::new();
        for i in 0..50 {
            let s = (i * 15_000 + i % 3, (i * i) as f64 / 7.0);
            c.append(s.0, s.1).unwrap();
            expected.push(s);
            assert_eq!(c.iter().collect::<Vec<_>>(), expected);
        }
        assert_eq!(
            (c.min_time(), c.max_time()),
            (Some(0), Some(49 * 15_000 + 1))
        );
        assert_eq!(c.len(), 50);
    }

    #[test]
    fn append_rejects_old_and_duplicate_timestamps_and_keeps_the_chunk() {
        let mut c = XorChunk::new();
        c.append(10, 1.0).unwrap();
        c.append(20, 2.0).unwrap();
        let before = c.bits.bytes().to_vec();
        assert_eq!(
            c.append(19, 3.0),
            Err(AppendError::OutOfOrder {
                t_ms: 19,
                last_t_ms: 20
            })
        );
        assert_eq!(c.append(20, 3.0), Err(AppendError::Duplicate { t_ms: 20 }));
        assert_eq!(c.bits.bytes(), before);
        assert_eq!(c.len(), 2);
        c.append(30, 3.0).unwrap();
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            vec![(10, 1.0), (20, 2.0), (30, 3.0)]
        );
    }

    #[test]
    fn a_full_chunk_refuses_more() {
        let mut c = XorChunk::new();
        for t in 0..MAX_SAMPLES as i64 {
            c.append(t, 0.0).unwrap();
        }
        assert_eq!(c.append(MAX_SAMPLES as i64, 0.0), Err(AppendError::Full));
        assert_eq!(c.iter().count(), MAX_SAMPLES);
    }
}
