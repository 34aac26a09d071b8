//! The pco encodings: a finished chunk's timestamps and values as pcodec standalone streams,
//! for immutable blocks.
//!
//! ```text
//! encoding 2 (v1), 3: ts_len <uvarint> | timestamps <ts_len bytes, pco of i64> | values <rest>
//! encoding 4:         ts_frame <uvarint>                                        | values <rest>
//! ```
//!
//! - Encoding 3: `ts_len` 0 means the timestamps are evenly spaced from `min_t` to `max_t`
//!   (a Prometheus scrape with its 2 ms timestamp alignment) and are not stored at all.
//! - Encoding 4 stores no timestamps: they equal those of the chunk in the frame at
//!   `ts_frame` of the same chunks file (the scrapes of one target share their timestamps).
//!   Only a block can resolve that, so a lone encoding-4 chunk decodes with
//!   [`decode_with_timestamps`].
//! - `values` is one pco stream of `f64`, or (encodings 3 and 4) of `i64` when every value is
//!   an integer that converts both ways bit-exactly (counters usually are); the stream's
//!   chunk header names the type.
//! - Encoding 2 is the first layout: `ts_len` is never 0 and values are always `f64`.
//!
//! pco picks its own delta order (delta-of-delta for jittered scrapes) and float mode per
//! stream, which is why it beats XOR on most series; its floats round-trip bit-exact. The
//! decoder checks the decoded samples against the envelope, so a damaged stream that pco
//! itself accepts is still caught when it breaks time order or the sample count.

use pco::ChunkConfig;
use pco::data_types::{Number, NumberType};
use pco::errors::PcoError;
use pco::standalone::{DecompressorItem, FileDecompressor, simple_compress};

use super::envelope::{self, put_uvarint};
use super::{Chunk, ChunkError, EncodeError, Encoding};

fn config() -> ChunkConfig {
    ChunkConfig::default().with_compression_level(4)
}

fn pco_err(e: PcoError) -> EncodeError {
    EncodeError::Pco(e.to_string())
}

/// Returns whether `ts` (at least one, strictly increasing) is evenly spaced, so that the
/// envelope's `min_t`, `max_t` and count determine it.
pub(crate) fn is_regular(ts: &[i64]) -> bool {
    match ts {
        [] => false,
        [_] => true,
        [first, second, ..] => {
            let step = second.wrapping_sub(*first);
            ts.windows(2).all(|w| w[1].wrapping_sub(w[0]) == step)
        }
    }
}

/// The `i`-th of `count` evenly spaced timestamps from `min_t` to `max_t`, or `None` when
/// the span does not divide evenly (only a damaged chunk says so).
fn regular(min_t: i64, max_t: i64, count: usize) -> Option<Vec<i64>> {
    if count == 1 {
        return (min_t == max_t).then(|| vec![min_t]);
    }
    let span = max_t.wrapping_sub(min_t) as u64;
    let gaps = (count - 1) as u64;
    if !span.is_multiple_of(gaps) {
        return None;
    }
    let step = span / gaps;
    Some(
        (0..count as u64)
            .map(|i| min_t.wrapping_add(i.wrapping_mul(step) as i64))
            .collect(),
    )
}

/// Encodes checked samples (non-empty, strictly increasing, at most the limit) as a chunk
/// in encoding 3, or in the first layout (encoding 2) when `v1`.
pub(crate) fn encode(samples: &[(i64, f64)], v1: bool) -> Result<Vec<u8>, EncodeError> {
    let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
    let ts_bytes = if !v1 && is_regular(&ts) {
        Vec::new()
    } else {
        simple_compress(&ts, &config()).map_err(pco_err)?
    };
    let vs_bytes = if v1 {
        let vs: Vec<f64> = samples.iter().map(|s| s.1).collect();
        simple_compress(&vs, &config()).map_err(pco_err)?
    } else {
        values(samples)?
    };
    let mut out = Vec::with_capacity(ts_bytes.len() + vs_bytes.len() + 24);
    envelope::write(
        &mut out,
        if v1 { Encoding::PcoV1 } else { Encoding::Pco },
        samples.len(),
        ts[0],
        ts[ts.len() - 1],
    );
    put_uvarint(&mut out, ts_bytes.len() as u64);
    out.extend_from_slice(&ts_bytes);
    out.extend_from_slice(&vs_bytes);
    Ok(out)
}

/// Encodes checked samples as a chunk in encoding 4, its timestamps being those of the
/// chunk at frame offset `ts_frame`.
pub(crate) fn encode_shared(samples: &[(i64, f64)], ts_frame: u64) -> Result<Vec<u8>, EncodeError> {
    let vs_bytes = values(samples)?;
    let mut out = Vec::with_capacity(vs_bytes.len() + 32);
    envelope::write(
        &mut out,
        Encoding::PcoSharedTimestamps,
        samples.len(),
        samples[0].0,
        samples[samples.len() - 1].0,
    );
    put_uvarint(&mut out, ts_frame);
    out.extend_from_slice(&vs_bytes);
    Ok(out)
}

/// The values stream: `i64` when every value is an integer that survives the round trip
/// bit-exactly (not `-0.0`, not NaN), `f64` otherwise.
fn values(samples: &[(i64, f64)]) -> Result<Vec<u8>, EncodeError> {
    let ints: Option<Vec<i64>> = samples
        .iter()
        .map(|&(_, v)| {
            // `as` saturates; the round trip catches it, and fractions, NaN and -0.0.
            let i = v as i64;
            ((i as f64).to_bits() == v.to_bits()).then_some(i)
        })
        .collect();
    match ints {
        Some(ints) => simple_compress(&ints, &config()).map_err(pco_err),
        None => {
            let vs: Vec<f64> = samples.iter().map(|s| s.1).collect();
            simple_compress(&vs, &config()).map_err(pco_err)
        }
    }
}

/// Decodes an encoding-2 or -3 chunk's timestamps, checking them against its envelope.
pub(crate) fn timestamps(chunk: &Chunk<'_>) -> Result<Vec<i64>, ChunkError> {
    let (ts_bytes, _) = split(chunk)?;
    let ts: Vec<i64> = if ts_bytes.is_empty() && chunk.encoding() == Encoding::Pco {
        regular(chunk.min_time(), chunk.max_time(), chunk.len()).ok_or(ChunkError::Corrupt(
            "regular timestamps do not divide the chunk's span",
        ))?
    } else {
        column(ts_bytes, chunk.len())?
    };
    check_timestamps(chunk, &ts)?;
    Ok(ts)
}

/// Decodes an encoding-2 or -3 chunk's samples, checking them against its envelope.
pub(crate) fn decode(chunk: &Chunk<'_>) -> Result<Vec<(i64, f64)>, ChunkError> {
    let ts = timestamps(chunk)?;
    let (_, vs_bytes) = split(chunk)?;
    if chunk.encoding() == Encoding::PcoV1 {
        return Ok(ts
            .into_iter()
            .zip(column::<f64>(vs_bytes, chunk.len())?)
            .collect());
    }
    zip(ts, vs_bytes, chunk.len())
}

/// Decodes an encoding-4 chunk's samples given the timestamps it shares, which must agree
/// with its envelope.
pub(crate) fn decode_with_timestamps(
    chunk: &Chunk<'_>,
    ts: Vec<i64>,
) -> Result<Vec<(i64, f64)>, ChunkError> {
    if ts.len() != chunk.len() {
        return Err(ChunkError::Corrupt(
            "shared timestamps hold another sample count",
        ));
    }
    check_timestamps(chunk, &ts)?;
    let mut rest = chunk.payload();
    envelope::uvarint(&mut rest)?;
    zip(ts, rest, chunk.len())
}

/// Returns the frame offset an encoding-4 chunk takes its timestamps from.
pub(crate) fn shared_frame(chunk: &Chunk<'_>) -> Result<u64, ChunkError> {
    let mut rest = chunk.payload();
    envelope::uvarint(&mut rest)
}

fn split<'a>(chunk: &Chunk<'a>) -> Result<(&'a [u8], &'a [u8]), ChunkError> {
    let mut rest = chunk.payload();
    let ts_len = envelope::uvarint(&mut rest)?;
    if ts_len > rest.len() as u64 {
        return Err(ChunkError::Truncated);
    }
    Ok(rest.split_at(ts_len as usize))
}

fn check_timestamps(chunk: &Chunk<'_>, ts: &[i64]) -> Result<(), ChunkError> {
    if ts[0] != chunk.min_time() || ts[ts.len() - 1] != chunk.max_time() {
        return Err(ChunkError::Corrupt("timestamps disagree with the envelope"));
    }
    if ts.windows(2).any(|w| w[1] <= w[0]) {
        return Err(ChunkError::Corrupt("timestamps do not increase"));
    }
    Ok(())
}

fn zip(ts: Vec<i64>, vs_bytes: &[u8], count: usize) -> Result<Vec<(i64, f64)>, ChunkError> {
    let vs: Vec<f64> = match number_type(vs_bytes)? {
        NumberType::I64 => column::<i64>(vs_bytes, count)?
            .into_iter()
            .map(|i| i as f64)
            .collect(),
        NumberType::F64 => column(vs_bytes, count)?,
        _ => return Err(ChunkError::Corrupt("values are neither f64 nor i64")),
    };
    Ok(ts.into_iter().zip(vs).collect())
}

/// The number type of a pco stream's first chunk (each chunk names its own).
pub(crate) fn number_type(bytes: &[u8]) -> Result<NumberType, ChunkError> {
    let pco_err = |e: PcoError| ChunkError::Pco(e.to_string());
    let (file, src) = FileDecompressor::new(bytes).map_err(pco_err)?;
    file.peek_number_type_or_termination(src)
        .map_err(pco_err)?
        .ok_or(ChunkError::Corrupt("pco stream without numbers"))
}

/// Decodes one pco stream that must hold exactly `count` numbers and nothing after them.
fn column<T: Number + Default>(bytes: &[u8], count: usize) -> Result<Vec<T>, ChunkError> {
    let pco_err = |e: PcoError| ChunkError::Pco(e.to_string());
    let (file, mut src) = FileDecompressor::new(bytes).map_err(pco_err)?;
    let mut out = vec![T::default(); count];
    let mut filled = 0;
    loop {
        match file.chunk_decompressor::<T, &[u8]>(src).map_err(pco_err)? {
            DecompressorItem::Chunk(mut chunk) => {
                let n = chunk.n();
                if n > count - filled {
                    return Err(ChunkError::Corrupt(
                        "pco stream holds more numbers than the count",
                    ));
                }
                let progress = chunk.read(&mut out[filled..filled + n]).map_err(pco_err)?;
                if !progress.finished || progress.n_processed != n {
                    return Err(ChunkError::Corrupt("pco chunk ends early"));
                }
                filled += n;
                src = chunk.into_src();
            }
            DecompressorItem::EndOfData(rest) => {
                src = rest;
                break;
            }
        }
    }
    if filled != count {
        return Err(ChunkError::Corrupt(
            "pco stream holds fewer numbers than the count",
        ));
    }
    if !src.is_empty() {
        return Err(ChunkError::Corrupt("bytes after the pco stream"));
    }
    Ok(out)
}
