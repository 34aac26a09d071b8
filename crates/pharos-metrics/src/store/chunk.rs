//! Per-series compressed chunks: the unit in which the head cuts samples and blocks store them.
//!
//! A chunk is a short envelope (encoding, sample count, min and max time) followed by a
//! payload in one of these encodings:
//!
//! - [`Encoding::Xor`]: Gorilla-style delta-of-delta timestamps and XORed values
//!   ([`XorChunk`]), appendable one sample at a time. Made for the head, where a chunk grows
//!   with every scrape and is read while open.
//! - [`Encoding::Pco`]: the finished samples as two pcodec columns (`i64` timestamps, and
//!   values as `f64`, or as `i64` when they are integers), the timestamps left out when
//!   evenly spaced. Not appendable; smaller and faster to decode, made for immutable blocks.
//!   [`Encoding::PcoV1`], its first layout (always both columns, values always `f64`), is
//!   still read and no longer written.
//! - [`Encoding::PcoSharedTimestamps`]: the values alone, the timestamps being another
//!   chunk's in the same block (scrapes of one target share them). Decoded by the block,
//!   which resolves the reference ([`Chunk::shared_timestamps_frame`],
//!   [`Chunk::decode_with_timestamps`]).
//!
//! Both keep every `f64` bit-exact (NaN payloads such as the stale marker, `-0.0`), and both
//! decoders treat their input as untrusted: truncated or corrupt bytes give a [`ChunkError`],
//! never a panic. The envelope carries no checksum; the file that stores chunks frames and
//! checksums each one (see `docs/format/chunks.md`).
//!
//! Start at [`XorChunk::append`] (writing in the head), [`encode`] (writing a finished
//! chunk) and [`Chunk::parse`] then [`Chunk::iter`] (reading either encoding).
//!
//! The byte layout is specified in `docs/format/chunks.md`; keep the two in step.

mod bits;
pub(crate) mod envelope;
mod pcodec;
mod xor;

pub use xor::XorChunk;

use xor::XorIter;

/// Encoding byte of a [`XorChunk`] payload.
pub const ENCODING_XOR: u8 = 1;
/// Encoding byte of a pco payload in its first layout (read, no longer written).
pub const ENCODING_PCO_V1: u8 = 2;
/// Encoding byte of a pco payload.
pub const ENCODING_PCO: u8 = 3;
/// Encoding byte of a pco payload whose timestamps are another chunk's.
pub const ENCODING_PCO_SHARED_TIMESTAMPS: u8 = 4;
/// The most samples one chunk may hold; readers reject larger counts.
pub const MAX_SAMPLES: usize = 65_535;

/// How a chunk's samples are encoded: the envelope's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Delta-of-delta timestamps and XORed values, appendable ([`XorChunk`]).
    Xor,
    /// Two pcodec standalone streams, timestamps (left out when evenly spaced) then values
    /// (`f64`, or `i64` when all are integers); written once.
    Pco,
    /// The first pco layout: both streams always, values always `f64`. Read, not written
    /// by blocks (encoding it is kept for tests of old data).
    PcoV1,
    /// One pcodec stream of values; the timestamps are those of an earlier `Pco` chunk in
    /// the same chunks file, named by its frame offset. Written once, by blocks.
    PcoSharedTimestamps,
}

/// Why a sample was not appended to a [`XorChunk`]; the chunk is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The timestamp is older than the chunk's newest sample.
    #[error("sample out of order: t_ms {t_ms} is before the newest sample at {last_t_ms}")]
    OutOfOrder {
        /// The rejected timestamp.
        t_ms: i64,
        /// The chunk's newest timestamp.
        last_t_ms: i64,
    },
    /// The timestamp equals the chunk's newest sample's.
    #[error("duplicate sample timestamp {t_ms}")]
    Duplicate {
        /// The rejected timestamp.
        t_ms: i64,
    },
    /// The chunk already holds [`MAX_SAMPLES`]: cut a new one.
    #[error("chunk is full ({MAX_SAMPLES} samples)")]
    Full,
}

/// Why samples could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A chunk holds at least one sample.
    #[error("no samples to encode")]
    Empty,
    /// More than [`MAX_SAMPLES`] samples.
    #[error("too many samples for one chunk: {0} (at most {MAX_SAMPLES})")]
    TooManySamples(usize),
    /// Timestamps must strictly increase; `index` is the first sample that does not.
    #[error("timestamps do not strictly increase at sample {index}")]
    NotIncreasing {
        /// Index of the offending sample.
        index: usize,
    },
    /// The pco compressor failed (a bug in pco or in how it is called).
    #[error("pco compression failed: {0}")]
    Pco(String),
}

/// Why chunk bytes could not be decoded. Any of these means the bytes are damaged (or
/// written by a newer Pharos, for [`ChunkError::UnknownEncoding`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The bytes end before the chunk does.
    #[error("chunk is truncated")]
    Truncated,
    /// The encoding byte is not one this version knows.
    #[error("unknown chunk encoding {0}")]
    UnknownEncoding(u8),
    /// The bytes are inconsistent with the format.
    #[error("corrupt chunk: {0}")]
    Corrupt(&'static str),
    /// The pco decoder rejected a stream.
    #[error("corrupt pco stream: {0}")]
    Pco(String),
}

/// A parsed chunk: its envelope, borrowing the payload. Cheap; decoding happens in
/// [`Chunk::iter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    encoding: Encoding,
    count: usize,
    min_t: i64,
    max_t: i64,
    payload: &'a [u8],
}

/// Iterates a chunk's samples in time order, yielding `Err` once and then nothing if the
/// chunk turns out to be corrupt.
#[derive(Debug, Clone)]
pub struct Samples<'a> {
    inner: SamplesInner<'a>,
}

#[derive(Debug, Clone)]
enum SamplesInner<'a> {
    Xor(XorIter<'a>),
    Decoded(std::vec::IntoIter<(i64, f64)>),
    Failed(Option<ChunkError>),
}

/// Encodes `samples` (strictly increasing timestamps) as one chunk in `encoding`,
/// envelope included.
///
/// # Errors
///
/// [`EncodeError`] when `samples` is empty, too long or not strictly increasing.
pub fn encode(samples: &[(i64, f64)], encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
    check_samples(samples)?;
    match encoding {
        Encoding::Xor => {
            let mut c = XorChunk::new();
            for &(t, v) in samples {
                c.append(t, v).expect("BUG: samples checked above");
            }
            c.encode()
        }
        Encoding::Pco => pcodec::encode(samples, false),
        Encoding::PcoV1 => pcodec::encode(samples, true),
        Encoding::PcoSharedTimestamps => panic!("BUG: use encode_shared_timestamps"),
    }
}

/// Encodes `samples` (strictly increasing timestamps) as a chunk in
/// [`Encoding::PcoSharedTimestamps`]: only the values are stored, the timestamps being
/// those of the chunk at frame offset `ts_frame`, which the caller has checked are equal.
///
/// # Errors
///
/// [`EncodeError`] when `samples` is empty, too long or not strictly increasing.
pub fn encode_shared_timestamps(
    samples: &[(i64, f64)],
    ts_frame: u64,
) -> Result<Vec<u8>, EncodeError> {
    check_samples(samples)?;
    pcodec::encode_shared(samples, ts_frame)
}

/// Returns whether `ts` (strictly increasing) is evenly spaced, so that a pco chunk stores
/// none of it and sharing it would not pay.
pub fn timestamps_are_regular(ts: &[i64]) -> bool {
    pcodec::is_regular(ts)
}

impl Encoding {
    /// Returns the envelope's encoding byte.
    pub fn byte(self) -> u8 {
        match self {
            Encoding::Xor => ENCODING_XOR,
            Encoding::Pco => ENCODING_PCO,
            Encoding::PcoV1 => ENCODING_PCO_V1,
            Encoding::PcoSharedTimestamps => ENCODING_PCO_SHARED_TIMESTAMPS,
        }
    }

    /// Returns the encoding of an envelope byte, if known.
    pub fn from_byte(b: u8) -> Option<Encoding> {
        match b {
            ENCODING_XOR => Some(Encoding::Xor),
            ENCODING_PCO => Some(Encoding::Pco),
            ENCODING_PCO_V1 => Some(Encoding::PcoV1),
            ENCODING_PCO_SHARED_TIMESTAMPS => Some(Encoding::PcoSharedTimestamps),
            _ => None,
        }
    }
}

impl<'a> Chunk<'a> {
    /// Parses the envelope at the start of `bytes`, which must hold exactly one chunk.
    ///
    /// # Errors
    ///
    /// [`ChunkError`] when the envelope is truncated or invalid. The payload is only checked
    /// while iterating.
    pub fn parse(bytes: &'a [u8]) -> Result<Chunk<'a>, ChunkError> {
        envelope::parse(bytes)
    }

    /// Returns the payload's encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Returns how many samples the chunk holds (at least 1).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Returns false: a chunk holds at least one sample.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Returns the first sample's timestamp.
    pub fn min_time(&self) -> i64 {
        self.min_t
    }

    /// Returns the last sample's timestamp.
    pub fn max_time(&self) -> i64 {
        self.max_t
    }

    /// Returns the encoded samples, after the envelope.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Returns an iterator over the samples. XOR chunks decode as they go; pco chunks are
    /// decoded whole on this call.
    pub fn iter(&self) -> Samples<'a> {
        let inner = match self.encoding {
            Encoding::Xor => SamplesInner::Xor(XorIter::new(
                self.payload,
                self.count,
                self.min_t,
                Some(self.max_t),
            )),
            Encoding::Pco | Encoding::PcoV1 => match pcodec::decode(self) {
                Ok(samples) => SamplesInner::Decoded(samples.into_iter()),
                Err(e) => SamplesInner::Failed(Some(e)),
            },
            Encoding::PcoSharedTimestamps => SamplesInner::Failed(Some(SHARED_ALONE)),
        };
        Samples { inner }
    }

    /// Decodes every sample, appending them to `out`.
    ///
    /// # Errors
    ///
    /// [`ChunkError`] when the payload is corrupt; `out` may then hold some of the samples.
    pub fn decode_into(&self, out: &mut Vec<(i64, f64)>) -> Result<(), ChunkError> {
        match self.encoding {
            Encoding::Xor => {
                out.reserve(self.count);
                for s in self.iter() {
                    out.push(s?);
                }
                Ok(())
            }
            Encoding::Pco | Encoding::PcoV1 => {
                out.extend(pcodec::decode(self)?);
                Ok(())
            }
            Encoding::PcoSharedTimestamps => Err(SHARED_ALONE),
        }
    }

    /// Decodes only the timestamps of a [`Encoding::Pco`] chunk (what a
    /// [`Encoding::PcoSharedTimestamps`] chunk referring to it shares).
    ///
    /// # Errors
    ///
    /// [`ChunkError`] when the timestamps are corrupt or the chunk has another encoding.
    pub fn timestamps(&self) -> Result<Vec<i64>, ChunkError> {
        match self.encoding {
            Encoding::Pco | Encoding::PcoV1 => pcodec::timestamps(self),
            _ => Err(ChunkError::Corrupt(
                "shared timestamps must come from a pco chunk",
            )),
        }
    }

    /// Returns the frame offset a [`Encoding::PcoSharedTimestamps`] chunk takes its
    /// timestamps from, `None` for other encodings.
    ///
    /// # Errors
    ///
    /// [`ChunkError::Truncated`] when the payload ends inside the offset.
    pub fn shared_timestamps_frame(&self) -> Result<Option<u64>, ChunkError> {
        match self.encoding {
            Encoding::PcoSharedTimestamps => pcodec::shared_frame(self).map(Some),
            _ => Ok(None),
        }
    }

    /// Decodes a [`Encoding::PcoSharedTimestamps`] chunk given the timestamps of the chunk it
    /// refers to, appending the samples to `out`.
    ///
    /// # Errors
    ///
    /// [`ChunkError`] when the values are corrupt, the timestamps disagree with the envelope
    /// or the chunk has another encoding.
    pub fn decode_with_timestamps(
        &self,
        ts: Vec<i64>,
        out: &mut Vec<(i64, f64)>,
    ) -> Result<(), ChunkError> {
        match self.encoding {
            Encoding::PcoSharedTimestamps => {
                out.extend(pcodec::decode_with_timestamps(self, ts)?);
                Ok(())
            }
            _ => Err(ChunkError::Corrupt("the chunk stores its own timestamps")),
        }
    }
}

/// What decoding a chunk that shares another's timestamps without them gives.
const SHARED_ALONE: ChunkError =
    ChunkError::Corrupt("timestamps are in another chunk of the block");

impl Iterator for Samples<'_> {
    type Item = Result<(i64, f64), ChunkError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            SamplesInner::Xor(it) => it.next(),
            SamplesInner::Decoded(it) => it.next().map(Ok),
            SamplesInner::Failed(e) => e.take().map(Err),
        }
    }
}

/// Checks what every encoder requires of its input.
fn check_samples(samples: &[(i64, f64)]) -> Result<(), EncodeError> {
    if samples.is_empty() {
        return Err(EncodeError::Empty);
    }
    if samples.len() > MAX_SAMPLES {
        return Err(EncodeError::TooManySamples(samples.len()));
    }
    if let Some(i) = samples.windows(2).position(|w| w[1].0 <= w[0].0) {
        return Err(EncodeError::NotIncreasing { index: i + 1 });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
