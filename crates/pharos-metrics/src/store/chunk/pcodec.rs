//! The pco encoding: a finished chunk's timestamps and values as two pcodec standalone
//! streams, for immutable blocks.
//!
//! ```text
//! ts_len <uvarint> | timestamps <ts_len bytes, pco of i64> | values <rest, pco of f64>
//! ```
//!
//! pco picks its own delta order (delta-of-delta for regular scrapes) and float mode per
//! stream, which is why it beats XOR on most series; its floats round-trip bit-exact. The
//! decoder checks the decoded samples against the envelope, so a damaged stream that pco
//! itself accepts is still caught when it breaks time order or the sample count.

use pco::ChunkConfig;
use pco::data_types::Number;
use pco::errors::PcoError;
use pco::standalone::{DecompressorItem, FileDecompressor, simple_compress};

use super::envelope::{self, put_uvarint};
use super::{Chunk, ChunkError, EncodeError, Encoding};

/// Encodes checked samples (non-empty, strictly increasing, at most the limit) as a chunk.
pub(crate) fn encode(samples: &[(i64, f64)]) -> Result<Vec<u8>, EncodeError> {
    let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
    let vs: Vec<f64> = samples.iter().map(|s| s.1).collect();
    let config = ChunkConfig::default().with_compression_level(4);
    let pco_err = |e: PcoError| EncodeError::Pco(e.to_string());
    let ts_bytes = simple_compress(&ts, &config).map_err(pco_err)?;
    let vs_bytes = simple_compress(&vs, &config).map_err(pco_err)?;
    let mut out = Vec::with_capacity(ts_bytes.len() + vs_bytes.len() + 24);
    envelope::write(
        &mut out,
        Encoding::Pco,
        samples.len(),
        ts[0],
        ts[ts.len() - 1],
    );
    put_uvarint(&mut out, ts_bytes.len() as u64);
    out.extend_from_slice(&ts_bytes);
    out.extend_from_slice(&vs_bytes);
    Ok(out)
}

/// Decodes a pco chunk's samples, checking them against its envelope.
pub(crate) fn decode(chunk: &Chunk<'_>) -> Result<Vec<(i64, f64)>, ChunkError> {
    let mut rest = chunk.payload();
    let ts_len = envelope::uvarint(&mut rest)?;
    if ts_len > rest.len() as u64 {
        return Err(ChunkError::Truncated);
    }
    let (ts_bytes, vs_bytes) = rest.split_at(ts_len as usize);
    let ts: Vec<i64> = column(ts_bytes, chunk.len())?;
    if ts[0] != chunk.min_time() || ts[ts.len() - 1] != chunk.max_time() {
        return Err(ChunkError::Corrupt("timestamps disagree with the envelope"));
    }
    if ts.windows(2).any(|w| w[1] <= w[0]) {
        return Err(ChunkError::Corrupt("timestamps do not increase"));
    }
    let vs: Vec<f64> = column(vs_bytes, chunk.len())?;
    Ok(ts.into_iter().zip(vs).collect())
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
