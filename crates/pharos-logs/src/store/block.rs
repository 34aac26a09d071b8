//! One immutable block of log streams: `data` (chunk bodies), `bloom` (chunk filters),
//! `index` (streams and their chunks, one zstd frame) and `meta.json`, written last
//! (format: `docs/format/logs.md`).

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::chunk::{self, ChunkError, ChunkSummary, get_varint, put_varint};
use super::{Entry, Labels};

/// The data file.
pub const DATA_FILE: &str = "data";
/// The filter file.
pub const BLOOM_FILE: &str = "bloom";
/// The index file.
pub const INDEX_FILE: &str = "index";
/// The meta file, written last.
pub const META_FILE: &str = pharos_storage::blocks::META_FILE;
/// The format version this code writes.
pub const FORMAT_VERSION: u32 = 2;
/// A chunk is cut once its lines reach this many bytes.
pub const CHUNK_LINE_BYTES: u64 = 512 * 1024;

const INDEX_MAGIC: &[u8; 4] = b"PLGI";

/// Why a block does not load or read.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// A file is missing or the store failed.
    #[error(transparent)]
    Store(#[from] pharos_storage::BlockStoreError),
    /// `meta.json` does not parse or names another version.
    #[error("meta.json: {0}")]
    Meta(String),
    /// The index is malformed.
    #[error("index: {0}")]
    Index(String),
    /// A chunk is malformed.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

/// `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// 1 for a flushed head, one more than its highest parent for a compacted block.
    pub level: u32,
    /// The oldest entry's time, unix ns.
    pub min_ts: i64,
    /// The newest entry's time, unix ns.
    pub max_ts: i64,
    /// Entries.
    pub entries: u64,
    /// Streams.
    pub streams: u64,
    /// Chunks.
    pub chunks: u64,
    /// The lines' bytes, uncompressed.
    pub line_bytes: u64,
    /// The blocks a compaction merged into this one.
    #[serde(default)]
    pub parents: Vec<String>,
    /// Bytes of `data` holding lines and timestamps (the chunks' lines frames).
    #[serde(default)]
    pub lines_stored_bytes: u64,
    /// Bytes of `data` holding structured metadata (the chunks' metadata frames).
    #[serde(default)]
    pub metadata_stored_bytes: u64,
    /// Bytes of `bloom`.
    #[serde(default)]
    pub bloom_bytes: u64,
    /// The log segments before this one hold nothing that is not in this block or an
    /// older one: the log rotated to it when the head was frozen. A compacted block keeps
    /// its parents' highest. On open, such segments still on disk (a crash between the
    /// flush and their deletion) are deleted before the log is replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_segment: Option<u64>,
}

/// Where a chunk lives and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRef {
    /// Offset of the body in `data`.
    pub offset: u64,
    /// Length of the body.
    pub len: u64,
    /// Offset of the filter in `bloom`.
    pub bloom_offset: u64,
    /// Length of the filter.
    pub bloom_len: u64,
    /// Times and counts.
    pub summary: ChunkSummary,
}

/// A stream of a block.
#[derive(Debug, Clone)]
pub struct BlockStream {
    /// Its labels.
    pub labels: Arc<Labels>,
    /// Its canonical selector text.
    pub key: String,
    /// Its chunks, oldest first.
    pub chunks: Vec<ChunkRef>,
}

/// An encoded block, ready to be put.
pub struct EncodedBlock {
    /// `meta.json`.
    pub meta: BlockMeta,
    /// The files other than the meta file.
    pub files: Vec<(&'static str, Vec<u8>)>,
}

/// Builds a block stream by stream (streams in key order, each stream's entries sorted by
/// time).
pub struct BlockWriter {
    zstd_level: i32,
    data: Vec<u8>,
    bloom: Vec<u8>,
    index: Vec<u8>,
    streams: u64,
    meta: BlockMeta,
}

impl Default for BlockWriter {
    fn default() -> Self {
        Self::new(1, Vec::new())
    }
}

impl BlockWriter {
    /// A writer of a block of `level`, merged from `parents`: level 1 (a flush) compresses
    /// chunks with [`chunk::FLUSH_ZSTD_LEVEL`], higher levels with
    /// [`chunk::COMPACT_ZSTD_LEVEL`].
    pub fn new(level: u32, parents: Vec<String>) -> Self {
        Self {
            zstd_level: if level > 1 {
                chunk::COMPACT_ZSTD_LEVEL
            } else {
                chunk::FLUSH_ZSTD_LEVEL
            },
            data: Vec::new(),
            bloom: Vec::new(),
            index: Vec::new(),
            streams: 0,
            meta: BlockMeta {
                version: FORMAT_VERSION,
                level,
                min_ts: i64::MAX,
                max_ts: i64::MIN,
                entries: 0,
                streams: 0,
                chunks: 0,
                line_bytes: 0,
                parents,
                lines_stored_bytes: 0,
                metadata_stored_bytes: 0,
                bloom_bytes: 0,
                wal_segment: None,
            },
        }
    }

    /// Records the log segment the block covers the segments before ([`BlockMeta::wal_segment`]).
    pub fn set_wal_segment(&mut self, segment: Option<u64>) {
        self.meta.wal_segment = segment;
    }

    /// Adds one stream's entries, cut into chunks.
    pub fn add_stream(&mut self, key: &str, entries: &[Entry]) {
        if entries.is_empty() {
            return;
        }
        let mut cuts = vec![0usize];
        let mut bytes = 0u64;
        for (i, e) in entries.iter().enumerate() {
            if bytes >= CHUNK_LINE_BYTES {
                cuts.push(i);
                bytes = 0;
            }
            bytes += e.line.len() as u64 + 16;
        }
        cuts.push(entries.len());
        put_varint(&mut self.index, key.len() as u64);
        self.index.extend_from_slice(key.as_bytes());
        put_varint(&mut self.index, (cuts.len() - 1) as u64);
        for w in cuts.windows(2) {
            let (body, summary, bloom) = chunk::encode(&entries[w[0]..w[1]], self.zstd_level);
            put_varint(&mut self.index, self.data.len() as u64);
            put_varint(&mut self.index, body.len() as u64);
            put_varint(&mut self.index, self.bloom.len() as u64);
            put_varint(&mut self.index, bloom.bits.len() as u64);
            put_varint(&mut self.index, zigzag(summary.min_ts));
            put_varint(&mut self.index, zigzag(summary.max_ts));
            put_varint(&mut self.index, u64::from(summary.entries));
            put_varint(&mut self.index, summary.line_bytes);
            self.data.extend_from_slice(&body);
            self.bloom.extend_from_slice(&bloom.bits);
            let m = &mut self.meta;
            m.min_ts = m.min_ts.min(summary.min_ts);
            m.max_ts = m.max_ts.max(summary.max_ts);
            m.entries += u64::from(summary.entries);
            m.chunks += 1;
            m.line_bytes += summary.line_bytes;
            let lines = chunk::lines_frame_size(&body) as u64;
            m.lines_stored_bytes += lines;
            m.metadata_stored_bytes += body.len() as u64 - lines;
            m.bloom_bytes += bloom.bits.len() as u64;
        }
        self.streams += 1;
    }

    /// Whether no stream was added.
    pub fn is_empty(&self) -> bool {
        self.streams == 0
    }

    /// Finishes the block.
    pub fn finish(self) -> EncodedBlock {
        let mut index = Vec::with_capacity(self.index.len() + 16);
        index.extend_from_slice(INDEX_MAGIC);
        put_varint(&mut index, u64::from(FORMAT_VERSION));
        put_varint(&mut index, self.streams);
        index.extend_from_slice(&self.index);
        let index = zstd::bulk::compress(&index, 3).expect("BUG: zstd refused to compress");
        let mut meta = self.meta;
        meta.streams = self.streams;
        EncodedBlock {
            meta,
            files: vec![
                (DATA_FILE, self.data),
                (BLOOM_FILE, self.bloom),
                (INDEX_FILE, index),
            ],
        }
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A loaded block: its index in memory, its data and filters as (mapped) bytes.
pub struct LogBlock {
    /// The block's id.
    pub id: String,
    /// `meta.json`.
    pub meta: BlockMeta,
    /// Streams in key order.
    pub streams: Vec<BlockStream>,
    data: Bytes,
    bloom: Bytes,
    /// Bytes the block takes in the store.
    pub size: u64,
}

impl std::fmt::Debug for LogBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBlock")
            .field("id", &self.id)
            .field("meta", &self.meta)
            .finish()
    }
}

impl LogBlock {
    /// Loads a block from its files.
    ///
    /// # Errors
    ///
    /// When the meta file or the index is malformed, or names chunks outside the files.
    pub fn from_parts(
        id: String,
        meta_json: &[u8],
        index: &[u8],
        data: Bytes,
        bloom: Bytes,
    ) -> Result<Self, BlockError> {
        let meta: BlockMeta =
            serde_json::from_slice(meta_json).map_err(|e| BlockError::Meta(e.to_string()))?;
        if meta.version != FORMAT_VERSION {
            return Err(BlockError::Meta(format!(
                "version {} is not {FORMAT_VERSION}",
                meta.version
            )));
        }
        let raw = zstd::bulk::decompress(index, 1 << 30)
            .map_err(|e| BlockError::Index(format!("does not decompress: {e}")))?;
        let bad = |m: &str| BlockError::Index(m.to_string());
        if raw.len() < 4 || &raw[..4] != INDEX_MAGIC {
            return Err(bad("bad magic"));
        }
        let mut buf = &raw[4..];
        let v = |buf: &mut &[u8]| get_varint(buf).map_err(|e| BlockError::Index(e.to_string()));
        if v(&mut buf)? != u64::from(FORMAT_VERSION) {
            return Err(bad("version differs from meta.json"));
        }
        let n_streams = v(&mut buf)? as usize;
        let mut streams = Vec::with_capacity(n_streams.min(1 << 20));
        for _ in 0..n_streams {
            let len = v(&mut buf)? as usize;
            if buf.len() < len {
                return Err(bad("stream labels run past the end"));
            }
            let key = std::str::from_utf8(&buf[..len])
                .map_err(|_| bad("stream labels are not UTF-8"))?
                .to_string();
            buf = &buf[len..];
            let labels: Labels = crate::logql::parser::parse_labels(&key)
                .map_err(|e| BlockError::Index(format!("stream labels: {e}")))?
                .into_iter()
                .collect();
            let n_chunks = v(&mut buf)? as usize;
            let mut chunks = Vec::with_capacity(n_chunks.min(1 << 20));
            for _ in 0..n_chunks {
                let c = ChunkRef {
                    offset: v(&mut buf)?,
                    len: v(&mut buf)?,
                    bloom_offset: v(&mut buf)?,
                    bloom_len: v(&mut buf)?,
                    summary: ChunkSummary {
                        min_ts: unzigzag(v(&mut buf)?),
                        max_ts: unzigzag(v(&mut buf)?),
                        entries: u32::try_from(v(&mut buf)?).map_err(|_| bad("entry count"))?,
                        line_bytes: v(&mut buf)?,
                    },
                };
                if c.offset
                    .checked_add(c.len)
                    .is_none_or(|end| end > data.len() as u64)
                    || c.bloom_offset
                        .checked_add(c.bloom_len)
                        .is_none_or(|end| end > bloom.len() as u64)
                {
                    return Err(bad("a chunk lies outside the data or bloom file"));
                }
                chunks.push(c);
            }
            streams.push(BlockStream {
                labels: Arc::new(labels),
                key,
                chunks,
            });
        }
        let size = (data.len() + bloom.len() + index.len() + meta_json.len()) as u64;
        Ok(Self {
            id,
            meta,
            streams,
            data,
            bloom,
            size,
        })
    }

    /// Whether a chunk's filter may pass lines holding every needle.
    pub fn may_match(&self, c: &ChunkRef, needles: &chunk::NeedleGrams) -> bool {
        if needles.is_empty() {
            return true;
        }
        let bits = &self.bloom[c.bloom_offset as usize..(c.bloom_offset + c.bloom_len) as usize];
        needles.may_match(bits)
    }

    /// Decodes a chunk.
    ///
    /// # Errors
    ///
    /// When the chunk is malformed.
    pub fn read_chunk(&self, c: &ChunkRef) -> Result<Vec<Entry>, ChunkError> {
        self.read_chunk_with(c, true)
    }

    /// Decodes a chunk, without its entries' metadata unless `with_metadata`.
    ///
    /// # Errors
    ///
    /// When the chunk is malformed.
    pub fn read_chunk_with(
        &self,
        c: &ChunkRef,
        with_metadata: bool,
    ) -> Result<Vec<Entry>, ChunkError> {
        chunk::decode_with(
            &self.data[c.offset as usize..(c.offset + c.len) as usize],
            &c.summary,
            with_metadata,
        )
    }
}
