//! One immutable metrics block: the series of a time range, their chunks, a symbol table and
//! an inverted index, in three files (`meta.json`, `index`, `chunks`).
//!
//! [`encode`] turns sorted series into the files; [`Block::decode`] checks and loads them
//! (every checksum, every reference). A chunk that fails to decode later (the mapped file
//! re-read from a damaged disk) is logged and skipped by reads, and fails a compaction. The byte
//! layout is specified in `docs/format/blocks.md`; keep the two in step.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use super::chunk::envelope::{put_uvarint, put_varint, uvarint, varint};
use super::chunk::{self, Chunk, ChunkError, Encoding};
use super::labels::Labels;
use super::matcher::Matcher;
use super::postings::{self, Index};

/// Name of the index file.
pub const INDEX_FILE: &str = "index";
/// Name of the chunks file.
pub const CHUNKS_FILE: &str = "chunks";
/// Name of the meta file (written last: its presence makes the block complete).
pub const META_FILE: &str = pharos_storage::blocks::META_FILE;

const INDEX_MAGIC: &[u8; 4] = b"PHXI";
const CHUNKS_MAGIC: &[u8; 4] = b"PHXC";
/// Format version of the index and chunks files, and `version` in `meta.json`, as written.
/// Version 1 (an uncompressed index) is still read.
pub const FORMAT_VERSION: u8 = 2;
/// The versions a reader accepts.
const READ_VERSIONS: [u8; 2] = [1, 2];
/// How many times its stored size a decompressed index may be (a damaged or forged length
/// cannot make a reader allocate more; real indexes compress about 3x).
const MAX_INDEX_RATIO: u64 = 1024;
/// zstd level of the index body.
const INDEX_ZSTD_LEVEL: i32 = 3;
/// A series' samples are cut into chunks of at most this many samples.
pub const MAX_CHUNK_SAMPLES: usize = 2048;
/// Below this many samples a chunk is also tried as XOR and the smaller encoding kept.
const TRY_XOR_BELOW: usize = 64;

/// `meta.json`: what a block holds, readable without the other files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockMeta {
    /// The block's ULID, also its directory name.
    pub ulid: String,
    /// The oldest sample's timestamp, milliseconds.
    pub min_time: i64,
    /// One past the newest sample's timestamp (the range is `[minTime, maxTime)`).
    pub max_time: i64,
    /// Counts.
    pub stats: BlockStats,
    /// Where the block came from.
    pub compaction: Compaction,
    /// [`FORMAT_VERSION`].
    pub version: u8,
}

/// Counts in [`BlockMeta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockStats {
    /// Samples.
    pub num_samples: u64,
    /// Series.
    pub num_series: u64,
    /// Chunks.
    pub num_chunks: u64,
}

/// Lineage in [`BlockMeta`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Compaction {
    /// 1 for a block written from the head; one more than its highest parent's otherwise.
    pub level: u32,
    /// The blocks merged into this one, deleted once it is complete.
    pub parents: Vec<String>,
}

/// Why block files could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// `meta.json` is not valid.
    #[error("block meta: {0}")]
    Meta(String),
    /// The index or chunks file is damaged or inconsistent.
    #[error("block {file}: {reason}")]
    Corrupt {
        /// `index` or `chunks`.
        file: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn corrupt(file: &'static str, reason: impl Into<String>) -> BlockError {
    BlockError::Corrupt {
        file,
        reason: reason.into(),
    }
}

/// The three files of a block, ready to write.
#[derive(Debug, Clone)]
pub struct EncodedBlock {
    /// The meta file's content, as written.
    pub meta: BlockMeta,
    /// The index file.
    pub index: Vec<u8>,
    /// The chunks file.
    pub chunks: Vec<u8>,
}

impl EncodedBlock {
    /// Returns `meta.json`'s bytes.
    pub fn meta_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.meta).expect("BUG: block meta always serialises")
    }
}

/// Encodes `series` (sorted by labels, unique, each with at least one sample in strictly
/// increasing time order) as a block.
///
/// # Panics
///
/// When `series` breaks those rules: callers build it from the head or from blocks.
pub fn encode(
    ulid: String,
    level: u32,
    parents: Vec<String>,
    series: &[(Labels, Vec<(i64, f64)>)],
) -> EncodedBlock {
    let mut w = BlockWriter::new();
    for (labels, samples) in series {
        w.add(labels.clone(), samples);
    }
    w.finish(ulid, level, parents)
}

type WrittenChunk = (i64, i64, u64);

/// Builds a block one series at a time, in label order, holding only the encoded chunks
/// and the label sets until [`BlockWriter::finish`].
#[derive(Debug)]
pub struct BlockWriter {
    /// Each series' labels and its chunks as (min time, max time, frame offset).
    series: Vec<(Labels, Vec<WrittenChunk>)>,
    chunks: Vec<u8>,
    /// Frame offsets of written chunks that store their own (uneven) timestamps, by a hash
    /// of the timestamps: a later chunk with the same ones refers to the first.
    timestamps: HashMap<u64, u64>,
    stats: BlockStats,
    min_time: i64,
    max_time: i64,
}

impl Default for BlockWriter {
    fn default() -> Self {
        BlockWriter::new()
    }
}

impl BlockWriter {
    /// Returns a writer of an empty block.
    pub fn new() -> BlockWriter {
        let mut chunks = Vec::new();
        chunks.extend_from_slice(CHUNKS_MAGIC);
        chunks.push(FORMAT_VERSION);
        BlockWriter {
            series: Vec::new(),
            chunks,
            timestamps: HashMap::new(),
            stats: BlockStats::default(),
            min_time: i64::MAX,
            max_time: i64::MIN,
        }
    }

    /// Returns the samples added so far.
    pub fn samples(&self) -> u64 {
        self.stats.num_samples
    }

    /// Adds the next series: its labels sort after the previous series', its samples
    /// strictly increase in time. A series without samples is skipped.
    ///
    /// # Panics
    ///
    /// When the labels are out of order or the samples do not strictly increase.
    pub fn add(&mut self, labels: Labels, samples: &[(i64, f64)]) {
        if samples.is_empty() {
            return;
        }
        if let Some((prev, _)) = self.series.last() {
            assert!(*prev < labels, "BUG: block series not sorted");
        }
        let mut refs = Vec::new();
        for piece in samples.chunks(MAX_CHUNK_SAMPLES) {
            let (encoded, shared) = self.encode_chunk(piece);
            let (lo, hi) = (piece[0].0, piece[piece.len() - 1].0);
            let offset = self.chunks.len() as u64;
            if let Some(hash) = shared {
                self.timestamps.entry(hash).or_insert(offset);
            }
            refs.push((lo, hi, offset));
            put_uvarint(&mut self.chunks, encoded.len() as u64);
            self.chunks.extend_from_slice(&encoded);
            self.chunks
                .extend_from_slice(&crc32c::crc32c(&encoded).to_be_bytes());
            self.stats.num_chunks += 1;
            self.min_time = self.min_time.min(lo);
            self.max_time = self.max_time.max(hi);
        }
        self.stats.num_samples += samples.len() as u64;
        self.stats.num_series += 1;
        self.series.push((labels, refs));
    }

    /// Encodes one chunk in the smallest of the encodings that fit: pco with its own
    /// timestamps, pco sharing the timestamps of an earlier chunk with the same ones, or
    /// (when short) XOR. Also returns the timestamps' hash when the chunk stores uneven
    /// timestamps of its own, for later chunks to share.
    fn encode_chunk(&self, samples: &[(i64, f64)]) -> (Vec<u8>, Option<u64>) {
        let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
        let mut best = None;
        let mut hash = None;
        if !chunk::timestamps_are_regular(&ts) {
            let h = xxhash_rust::xxh3::xxh3_64(le_bytes(&ts).as_slice());
            match self.timestamps.get(&h) {
                Some(&frame) if self.frame_timestamps(frame).as_deref() == Some(&ts[..]) => {
                    best = Some(
                        chunk::encode_shared_timestamps(samples, frame)
                            .expect("BUG: block samples are checked"),
                    );
                }
                Some(_) => {}
                None => hash = Some(h),
            }
        }
        let best = match best {
            Some(shared) => {
                hash = None;
                shared
            }
            None => chunk::encode(samples, Encoding::Pco).expect("BUG: block samples are checked"),
        };
        if samples.len() >= TRY_XOR_BELOW {
            return (best, hash);
        }
        let xor = chunk::encode(samples, Encoding::Xor).expect("BUG: block samples are checked");
        if xor.len() < best.len() {
            (xor, None)
        } else {
            (best, hash)
        }
    }

    /// The timestamps of the chunk this writer put at frame offset `frame`.
    fn frame_timestamps(&self, frame: u64) -> Option<Vec<i64>> {
        frame_chunk(&self.chunks, frame)?.timestamps().ok()
    }

    /// Writes the index and returns the block's files.
    pub fn finish(self, ulid: String, level: u32, parents: Vec<String>) -> EncodedBlock {
        let BlockWriter {
            series,
            chunks,
            timestamps: _,
            stats,
            mut min_time,
            mut max_time,
        } = self;
        let mut symbols: BTreeSet<&str> = BTreeSet::new();
        let mut postings: Index = Index::new();
        for (ord, (labels, _)) in series.iter().enumerate() {
            for (k, v) in labels.pairs() {
                symbols.insert(k);
                symbols.insert(v);
                postings
                    .entry(k.clone())
                    .or_default()
                    .entry(v.clone())
                    .or_default()
                    .insert(ord as u32);
            }
        }
        let sym_id: HashMap<&str, u64> = symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as u64))
            .collect();

        // The sections are built uncompressed, then stored as one zstd frame.
        let mut index = Vec::new();
        put_uvarint(&mut index, symbols.len() as u64);
        for s in &symbols {
            put_uvarint(&mut index, s.len() as u64);
            index.extend_from_slice(s.as_bytes());
        }
        put_uvarint(&mut index, series.len() as u64);
        for (labels, refs) in &series {
            put_uvarint(&mut index, labels.len() as u64);
            for (k, v) in labels.pairs() {
                put_uvarint(&mut index, sym_id[k.as_str()]);
                put_uvarint(&mut index, sym_id[v.as_str()]);
            }
            put_uvarint(&mut index, refs.len() as u64);
            for &(lo, hi, offset) in refs {
                put_varint(&mut index, lo);
                put_uvarint(&mut index, hi.wrapping_sub(lo) as u64);
                put_uvarint(&mut index, offset);
            }
        }
        put_uvarint(&mut index, postings.len() as u64);
        let mut bitmap = Vec::new();
        for (name, values) in &postings {
            put_uvarint(&mut index, sym_id[name.as_str()]);
            put_uvarint(&mut index, values.len() as u64);
            for (value, ids) in values {
                put_uvarint(&mut index, sym_id[value.as_str()]);
                bitmap.clear();
                ids.serialize_into(&mut bitmap)
                    .expect("BUG: writing to a Vec cannot fail");
                put_uvarint(&mut index, bitmap.len() as u64);
                index.extend_from_slice(&bitmap);
            }
        }
        let body = index;
        let compressed = zstd::bulk::compress(&body, INDEX_ZSTD_LEVEL)
            .expect("BUG: compressing into memory cannot fail");
        let mut index = Vec::with_capacity(compressed.len() + 16);
        index.extend_from_slice(INDEX_MAGIC);
        if body.len() as u64 <= max_index_body(compressed.len()) {
            index.push(FORMAT_VERSION);
            put_uvarint(&mut index, body.len() as u64);
            index.extend_from_slice(&compressed);
        } else {
            // More compressible than a reader trusts (never seen): store it as version 1.
            index.push(1);
            index.extend_from_slice(&body);
        }
        let crc = crc32c::crc32c(&index);
        index.extend_from_slice(&crc.to_be_bytes());

        if series.is_empty() {
            (min_time, max_time) = (0, -1);
        }
        EncodedBlock {
            meta: BlockMeta {
                ulid,
                min_time,
                max_time: max_time.saturating_add(1),
                stats,
                compaction: Compaction { level, parents },
                version: FORMAT_VERSION,
            },
            index,
            chunks,
        }
    }
}

/// `ts` as little-endian bytes, for hashing.
fn le_bytes(ts: &[i64]) -> Vec<u8> {
    ts.iter().flat_map(|t| t.to_le_bytes()).collect()
}

/// Where one chunk's bytes are in the chunks file, and the time range it covers.
#[derive(Debug, Clone, Copy)]
struct ChunkRef {
    min_t: i64,
    max_t: i64,
    start: usize,
    end: usize,
}

#[derive(Debug)]
struct SeriesEntry {
    /// Symbol ids, name and value alternating.
    labels: Box<[u32]>,
    chunks: Box<[ChunkRef]>,
}

/// A loaded block: its index decoded into memory, its chunks file held as bytes.
#[derive(Debug)]
pub struct Block {
    meta: BlockMeta,
    symbols: Vec<Box<str>>,
    series: Vec<SeriesEntry>,
    index: Index,
    all: RoaringBitmap,
    chunks: Bytes,
    size_bytes: u64,
    /// Decoded chunks by their start in `chunks`, within the shared [`DecodedBudget`].
    decoded: parking_lot::Mutex<HashMap<usize, Decoded>>,
    budget: Arc<DecodedBudget>,
}

/// A decoded chunk's samples, shared by the readers that asked for it.
type Decoded = Arc<[(i64, f64)]>;

/// The bytes of decoded chunks all blocks may keep, and what they keep now. Reading a
/// chunk again (a dashboard refreshing) then costs a copy instead of a decode; past the
/// limit, chunks are decoded and not kept.
#[derive(Debug, Default)]
pub struct DecodedBudget {
    limit: AtomicU64,
    used: AtomicU64,
}

impl DecodedBudget {
    /// Returns a budget of `limit` bytes (0 keeps nothing).
    pub fn new(limit: u64) -> Arc<DecodedBudget> {
        Arc::new(DecodedBudget {
            limit: AtomicU64::new(limit),
            used: AtomicU64::new(0),
        })
    }

    /// Returns the bytes of decoded chunks kept now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, n: u64) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u + n <= limit).then_some(u + n)
            })
            .is_ok()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let kept: u64 = self
            .decoded
            .get_mut()
            .values()
            .map(|c| (c.len() * 16) as u64)
            .sum();
        self.budget.used.fetch_sub(kept, Ordering::Relaxed);
    }
}

impl Block {
    /// Checks and loads a block's three files.
    ///
    /// # Errors
    ///
    /// [`BlockError`] for any checksum mismatch, truncation, bad reference or inconsistency.
    pub fn decode(meta_json: &[u8], index: &[u8], chunks: Bytes) -> Result<Block, BlockError> {
        let meta: BlockMeta =
            serde_json::from_slice(meta_json).map_err(|e| BlockError::Meta(e.to_string()))?;
        if !READ_VERSIONS.contains(&meta.version) {
            return Err(BlockError::Meta(format!(
                "unsupported version {}",
                meta.version
            )));
        }
        let frames = read_frames(&chunks)?;
        let body = index_body(index)?;
        let mut r = IndexReader { rest: &body };
        let n_symbols = r.count()?;
        let mut symbols: Vec<Box<str>> = Vec::with_capacity(n_symbols);
        for _ in 0..n_symbols {
            let len = r.count()?;
            let bytes = r.take(len)?;
            let s = std::str::from_utf8(bytes).map_err(|_| corrupt("index", "symbol not UTF-8"))?;
            if symbols.last().is_some_and(|last| **last >= *s) {
                return Err(corrupt("index", "symbols not sorted"));
            }
            symbols.push(s.into());
        }
        let sym = |id: u64| -> Result<u32, BlockError> {
            u32::try_from(id)
                .ok()
                .filter(|&i| (i as usize) < symbols.len())
                .ok_or_else(|| corrupt("index", "symbol reference out of range"))
        };
        let n_series = r.count()?;
        let mut series = Vec::with_capacity(n_series);
        let mut stats = BlockStats::default();
        for _ in 0..n_series {
            let n_labels = r.count()?;
            let mut labels = Vec::with_capacity(n_labels * 2);
            for _ in 0..n_labels {
                let (name, value) = (sym(r.uvarint()?)?, sym(r.uvarint()?)?);
                // Symbol ids sort as their strings, so ids compare as the labels do.
                if labels.len() >= 2 && labels[labels.len() - 2] >= name {
                    return Err(corrupt("index", "label names not sorted and unique"));
                }
                if symbols[value as usize].is_empty() {
                    return Err(corrupt("index", "empty label value"));
                }
                labels.push(name);
                labels.push(value);
            }
            if series
                .last()
                .is_some_and(|prev: &SeriesEntry| prev.labels[..] >= labels[..])
            {
                return Err(corrupt("index", "series not sorted and unique"));
            }
            let n_chunks = r.count()?;
            if n_chunks == 0 {
                return Err(corrupt("index", "series without chunks"));
            }
            let mut refs: Vec<ChunkRef> = Vec::with_capacity(n_chunks);
            for _ in 0..n_chunks {
                let min_t = r.varint()?;
                let span = r.uvarint()?;
                let max_t = min_t
                    .checked_add_unsigned(span)
                    .ok_or_else(|| corrupt("index", "chunk time range overflows"))?;
                let offset = r.uvarint()?;
                let &(start, end) = frames
                    .get(&offset)
                    .ok_or_else(|| corrupt("index", "chunk reference is not a chunk"))?;
                let c = Chunk::parse(&chunks[start..end])
                    .map_err(|e| corrupt("chunks", e.to_string()))?;
                if c.min_time() != min_t || c.max_time() != max_t {
                    return Err(corrupt(
                        "index",
                        "chunk time range disagrees with the chunk",
                    ));
                }
                if refs.last().is_some_and(|prev| prev.max_t >= min_t) {
                    return Err(corrupt("index", "chunks overlap or are out of time order"));
                }
                if let Some(frame) = c
                    .shared_timestamps_frame()
                    .map_err(|e| corrupt("chunks", e.to_string()))?
                {
                    check_shared(&chunks, &frames, offset, frame, &c)?;
                }
                stats.num_samples += c.len() as u64;
                refs.push(ChunkRef {
                    min_t,
                    max_t,
                    start,
                    end,
                });
            }
            stats.num_chunks += n_chunks as u64;
            series.push(SeriesEntry {
                labels: labels.into(),
                chunks: refs.into(),
            });
        }
        stats.num_series = n_series as u64;
        let n_names = r.count()?;
        let mut index_map = Index::new();
        let mut prev_name = None;
        for _ in 0..n_names {
            let name_id = sym(r.uvarint()?)?;
            if prev_name.is_some_and(|p| p >= name_id) {
                return Err(corrupt("index", "postings names not sorted and unique"));
            }
            prev_name = Some(name_id);
            let name = symbols[name_id as usize].to_string();
            let n_values = r.count()?;
            let values = index_map.entry(name).or_default();
            let mut prev_value = None;
            for _ in 0..n_values {
                let value_id = sym(r.uvarint()?)?;
                if prev_value.is_some_and(|p| p >= value_id) {
                    return Err(corrupt("index", "postings values not sorted and unique"));
                }
                prev_value = Some(value_id);
                let value = symbols[value_id as usize].to_string();
                let len = r.count()?;
                let bytes = r.take(len)?;
                let ids = RoaringBitmap::deserialize_from(bytes)
                    .map_err(|e| corrupt("index", format!("postings: {e}")))?;
                if ids.max().is_some_and(|m| m as usize >= n_series) {
                    return Err(corrupt("index", "postings name a series that is not there"));
                }
                values.insert(value, ids);
            }
        }
        r.finish()?;
        if stats != meta.stats {
            return Err(BlockError::Meta(format!(
                "stats {:?} disagree with the files {:?}",
                meta.stats, stats
            )));
        }
        let mut all = RoaringBitmap::new();
        all.insert_range(0..n_series as u32);
        let size_bytes = (meta_json.len() + index.len() + chunks.len()) as u64;
        Ok(Block {
            meta,
            symbols,
            series,
            index: index_map,
            all,
            chunks,
            size_bytes,
            decoded: parking_lot::Mutex::new(HashMap::new()),
            budget: DecodedBudget::new(0),
        })
    }

    /// Shares `budget` for keeping decoded chunks (a fresh block keeps none).
    pub fn with_decoded_budget(mut self, budget: Arc<DecodedBudget>) -> Block {
        self.budget = budget;
        self
    }

    /// Returns chunk `c` decoded, from what is kept when it is there.
    fn decoded(&self, c: &ChunkRef) -> Option<Arc<[(i64, f64)]>> {
        if let Some(d) = self.decoded.lock().get(&c.start) {
            return Some(Arc::clone(d));
        }
        // Checked on load; the bytes are read again from the mapped file, which the page
        // cache may have re-read from disk since, so a failure is logged, not trusted away.
        let chunk = match Chunk::parse(&self.chunks[c.start..c.end]) {
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::error!(block = %self.meta.ulid, error = %e, "unparsable chunk");
                return None;
            }
        };
        let mut out = Vec::with_capacity(chunk.len());
        if let Err(e) = self.decode_chunk(&chunk, &mut out) {
            // The frame's checksum matched, so this is a bug, not damage; keep serving.
            tracing::error!(block = %self.meta.ulid, error = %e, "undecodable chunk");
            return None;
        }
        let d: Arc<[(i64, f64)]> = out.into();
        if self.budget.try_take((d.len() * 16) as u64) {
            let mut kept = self.decoded.lock();
            if kept.insert(c.start, Arc::clone(&d)).is_some() {
                // Another reader decoded it meanwhile; give back one share.
                self.budget
                    .used
                    .fetch_sub((d.len() * 16) as u64, Ordering::Relaxed);
            }
        }
        Some(d)
    }

    /// Returns the block's meta.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// Returns the bytes of the block's three files.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Returns whether the block may hold samples in `[mint, maxt]` (inclusive).
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.meta.min_time <= maxt && self.meta.max_time > mint
    }

    /// Returns how many series the block holds.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Returns the ordinals of the series every matcher accepts that have a chunk
    /// overlapping `[mint, maxt]`.
    pub(crate) fn matching(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<u32> {
        if !self.overlaps(mint, maxt) {
            return Vec::new();
        }
        postings::select(&self.index, &self.all, matchers)
            .into_iter()
            .filter(|&ord| self.has_chunk_in(ord, mint, maxt))
            .collect()
    }

    /// Returns whether series `ord` has a chunk overlapping `[mint, maxt]`.
    pub(crate) fn has_chunk_in(&self, ord: u32, mint: i64, maxt: i64) -> bool {
        self.series[ord as usize]
            .chunks
            .iter()
            .any(|c| c.min_t <= maxt && c.max_t >= mint)
    }

    /// Returns whether series `ord` has a sample in `[mint, maxt]`: a chunk inside the
    /// range has, one only overlapping it is decoded to see.
    pub(crate) fn has_sample_in(&self, ord: u32, mint: i64, maxt: i64) -> bool {
        self.series[ord as usize].chunks.iter().any(|c| {
            if c.max_t < mint || c.min_t > maxt {
                return false;
            }
            if c.min_t >= mint && c.max_t <= maxt {
                return true;
            }
            self.decoded(c).is_some_and(|d| {
                let i = d.partition_point(|s| s.0 < mint);
                i < d.len() && d[i].0 <= maxt
            })
        })
    }

    /// Returns the labels of series `ord`.
    pub fn labels(&self, ord: u32) -> Labels {
        let ids = &self.series[ord as usize].labels;
        Labels::from_sorted_pairs(
            ids.chunks_exact(2)
                .map(|p| {
                    (
                        self.symbols[p[0] as usize].to_string(),
                        self.symbols[p[1] as usize].to_string(),
                    )
                })
                .collect(),
        )
    }

    /// Returns the label pairs of series `ord` as borrowed strings, in order.
    pub(crate) fn label_pairs(&self, ord: u32) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.series[ord as usize]
            .labels
            .chunks_exact(2)
            .map(|p| (&*self.symbols[p[0] as usize], &*self.symbols[p[1] as usize]))
    }

    /// Returns the value of label `name` of series `ord`, if it has one.
    pub(crate) fn label_value(&self, ord: u32, name: &str) -> Option<&str> {
        self.series[ord as usize]
            .labels
            .chunks_exact(2)
            .find(|p| &*self.symbols[p[0] as usize] == name)
            .map(|p| &*self.symbols[p[1] as usize])
    }

    /// Returns the label names of series `ord`.
    pub(crate) fn label_names(&self, ord: u32) -> impl Iterator<Item = &str> {
        self.series[ord as usize]
            .labels
            .chunks_exact(2)
            .map(|p| &*self.symbols[p[0] as usize])
    }

    /// Returns every sample of series `ord`, or the error of a chunk that does not decode
    /// (compaction must not write a block without it).
    pub fn all_samples(&self, ord: u32) -> Result<Vec<(i64, f64)>, BlockError> {
        let mut out = Vec::new();
        for c in self.series[ord as usize].chunks.iter() {
            Chunk::parse(&self.chunks[c.start..c.end])
                .and_then(|chunk| self.decode_chunk(&chunk, &mut out))
                .map_err(|e| corrupt("chunks", e.to_string()))?;
        }
        Ok(out)
    }

    /// Decodes one of the block's chunks into `out`, taking the timestamps of a chunk that
    /// shares them from the chunk it names.
    fn decode_chunk(&self, chunk: &Chunk<'_>, out: &mut Vec<(i64, f64)>) -> Result<(), ChunkError> {
        let Some(frame) = chunk.shared_timestamps_frame()? else {
            return chunk.decode_into(out);
        };
        let ts = frame_chunk(&self.chunks, frame)
            .ok_or(ChunkError::Corrupt("shared timestamps frame is damaged"))?
            .timestamps()?;
        chunk.decode_with_timestamps(ts, out)
    }

    /// Returns the samples of series `ord` in `[mint, maxt]`, in time order.
    pub fn samples(&self, ord: u32, mint: i64, maxt: i64) -> Vec<(i64, f64)> {
        let mut out = Vec::new();
        self.samples_into(ord, mint, maxt, &mut out);
        out
    }

    /// Appends the samples of series `ord` in `[mint, maxt]` to `out`, in time order.
    pub fn samples_into(&self, ord: u32, mint: i64, maxt: i64, out: &mut Vec<(i64, f64)>) {
        for c in self.series[ord as usize].chunks.iter() {
            if c.max_t < mint || c.min_t > maxt {
                continue;
            }
            let Some(d) = self.decoded(c) else {
                continue;
            };
            let lo = d.partition_point(|s| s.0 < mint);
            let hi = d.partition_point(|s| s.0 <= maxt);
            out.extend_from_slice(&d[lo..hi.max(lo)]);
        }
    }
}

/// The chunk in the frame at offset `frame` of a chunks file, if it parses.
fn frame_chunk(chunks: &[u8], frame: u64) -> Option<Chunk<'_>> {
    let mut rest = chunks.get(usize::try_from(frame).ok()?..)?;
    let len = usize::try_from(uvarint(&mut rest).ok()?).ok()?;
    Chunk::parse(rest.get(..len)?).ok()
}

/// Checks that chunk `c`, in the frame at `offset`, may take its timestamps from the frame
/// at `frame`: an earlier frame holding a pco chunk of the same count and time range.
fn check_shared(
    chunks: &[u8],
    frames: &HashMap<u64, (usize, usize)>,
    offset: u64,
    frame: u64,
    c: &Chunk<'_>,
) -> Result<(), BlockError> {
    let bad = |why: &str| {
        corrupt(
            "chunks",
            format!("shared timestamps at frame {offset}: {why}"),
        )
    };
    if frame >= offset {
        return Err(bad("the frame named is not an earlier one"));
    }
    let &(start, end) = frames.get(&frame).ok_or_else(|| bad("not a frame"))?;
    let t = Chunk::parse(&chunks[start..end]).map_err(|e| bad(&e.to_string()))?;
    if !matches!(t.encoding(), Encoding::Pco | Encoding::PcoV1)
        || t.len() != c.len()
        || t.min_time() != c.min_time()
        || t.max_time() != c.max_time()
    {
        return Err(bad("the chunk named has other timestamps"));
    }
    Ok(())
}

/// Walks the chunks file's frames, checking each checksum; returns frame offset → the
/// chunk's byte range.
fn read_frames(chunks: &[u8]) -> Result<HashMap<u64, (usize, usize)>, BlockError> {
    if chunks.len() < 5 || &chunks[..4] != CHUNKS_MAGIC {
        return Err(corrupt("chunks", "bad magic"));
    }
    if !READ_VERSIONS.contains(&chunks[4]) {
        return Err(corrupt(
            "chunks",
            format!("unsupported version {}", chunks[4]),
        ));
    }
    let mut frames = HashMap::new();
    let mut pos = 5;
    while pos < chunks.len() {
        let mut rest = &chunks[pos..];
        let len = uvarint(&mut rest).map_err(|e| corrupt("chunks", e.to_string()))?;
        let start = chunks.len() - rest.len();
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e.checked_add(4).is_some_and(|end| end <= chunks.len()))
            .ok_or_else(|| corrupt("chunks", "frame runs past the end"))?;
        let stored = u32::from_be_bytes(chunks[end..end + 4].try_into().expect("4 bytes"));
        if stored != crc32c::crc32c(&chunks[start..end]) {
            return Err(corrupt(
                "chunks",
                format!("checksum mismatch in the frame at {pos}"),
            ));
        }
        frames.insert(pos as u64, (start, end));
        pos = end + 4;
    }
    Ok(frames)
}

/// A cursor over the index file, whose checksum is checked up front.
struct IndexReader<'a> {
    rest: &'a [u8],
}

/// The largest body a reader accepts from a zstd frame of `stored` bytes.
fn max_index_body(stored: usize) -> u64 {
    (stored as u64).saturating_mul(MAX_INDEX_RATIO).max(1 << 20)
}

/// Checks an index file's magic, version and checksum and returns its sections: as stored
/// (version 1) or decompressed (version 2: `body_len <uvarint>`, then a zstd frame of
/// exactly that many bytes).
fn index_body(index: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, BlockError> {
    if index.len() < 9 || &index[..4] != INDEX_MAGIC {
        return Err(corrupt("index", "bad magic"));
    }
    if !READ_VERSIONS.contains(&index[4]) {
        return Err(corrupt(
            "index",
            format!("unsupported version {}", index[4]),
        ));
    }
    let (stored, crc) = index.split_at(index.len() - 4);
    if crc32c::crc32c(stored).to_be_bytes() != crc {
        return Err(corrupt("index", "checksum mismatch"));
    }
    let mut rest = &stored[5..];
    if index[4] == 1 {
        return Ok(std::borrow::Cow::Borrowed(rest));
    }
    let len = uvarint(&mut rest)
        .ok()
        .filter(|&n| n <= max_index_body(rest.len()))
        .ok_or_else(|| corrupt("index", "bad body length"))? as usize;
    let body =
        zstd::bulk::decompress(rest, len).map_err(|e| corrupt("index", format!("zstd: {e}")))?;
    if body.len() != len {
        return Err(corrupt("index", "body shorter than its length"));
    }
    Ok(std::borrow::Cow::Owned(body))
}

impl<'a> IndexReader<'a> {
    fn uvarint(&mut self) -> Result<u64, BlockError> {
        uvarint(&mut self.rest).map_err(|_| corrupt("index", "truncated"))
    }

    fn varint(&mut self) -> Result<i64, BlockError> {
        varint(&mut self.rest).map_err(|_| corrupt("index", "truncated"))
    }

    /// Reads a count, refusing one larger than the bytes left could hold (every counted
    /// item takes at least one byte), so a damaged count cannot allocate wildly.
    fn count(&mut self) -> Result<usize, BlockError> {
        let n = self.uvarint()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.rest.len())
            .ok_or_else(|| corrupt("index", "count larger than the file"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BlockError> {
        if n > self.rest.len() {
            return Err(corrupt("index", "truncated"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn finish(self) -> Result<(), BlockError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(corrupt("index", "trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests;
