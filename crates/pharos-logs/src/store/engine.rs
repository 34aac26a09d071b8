//! The log head's way into blocks, and the blocks' life, as the trace store's:
//!
//! - **Freeze** ([`LogStore::freeze`]): every stream's entries leave the head at once and
//!   become a frozen part that reads still see. The binary freezes at a rotation of the
//!   write-ahead log, so the segments before it hold exactly what the frozen parts hold.
//!   Streams keep their newest timestamp in the head, for the out-of-order window.
//! - **Flush** ([`LogStore::flush_frozen`]): each frozen part becomes one level-1 block;
//!   then the caller deletes those log segments.
//! - **Compaction** ([`LogStore::maintain`]): the blocks whose newest entry falls in one
//!   aligned `compaction_window` are merged into one once the window is over and no block
//!   joined it for two head ages, stream by stream, entries re-sorted and exact duplicates
//!   (same time, line and metadata, as a crash between a flush and the log's deletion
//!   leaves) dropped.
//! - **Retention**: blocks whose newest entry is older than the retention are deleted.
//!
//! A crash leaves either incomplete blocks (no `meta.json`: deleted on open), a merged
//! block beside its parents (parents deleted on open), or blocks whose log segments were
//! not yet deleted: each block records the segment the log rotated to when its head was
//! frozen ([`LogStore::freeze`]), and the server opens the log with the highest as the
//! mark below which segments are dropped unreplayed ([`LogStore::wal_covered`]). Nothing
//! acknowledged is lost.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pharos_storage::{BlockStore, BlockStoreError, new_block_id};

use super::block::{
    BLOOM_FILE, BlockError, BlockWriter, DATA_FILE, INDEX_FILE, LogBlock, META_FILE,
};
use super::{Entry, Labels, LogStore};

/// How the log store cuts, merges and drops blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockOptions {
    /// The head is flushed once its oldest entry arrived this long ago.
    pub max_head_age: Duration,
    /// The head is flushed once its entries take about this many bytes.
    pub head_max_bytes: u64,
    /// Blocks whose newest entry is older than this are dropped; zero keeps them.
    pub retention: Duration,
    /// Blocks are merged within aligned windows of this length.
    pub compaction_window: Duration,
}

impl Default for BlockOptions {
    fn default() -> Self {
        Self {
            max_head_age: Duration::from_secs(300),
            head_max_bytes: 128 << 20,
            retention: Duration::from_secs(744 * 3600),
            compaction_window: Duration::from_secs(3600),
        }
    }
}

/// Why a block operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] BlockStoreError),
    /// A block does not read.
    #[error(transparent)]
    Block(#[from] BlockError),
}

/// Where blocks go and how.
pub(crate) struct Engine {
    pub(crate) store: BlockStore,
    pub(crate) opts: BlockOptions,
    /// One flush or maintenance at a time.
    pub(crate) lock: tokio::sync::Mutex<()>,
}

/// Entries taken out of the head, not yet in a block: streams in key order.
pub(crate) struct Frozen {
    pub(crate) streams: Vec<FrozenStream>,
    pub(crate) bytes: u64,
    /// The log segment begun when this part was frozen (see [`LogStore::freeze`]).
    pub(crate) wal_segment: Option<u64>,
}

/// One stream of a frozen part.
pub(crate) struct FrozenStream {
    pub(crate) key: String,
    pub(crate) labels: Arc<Labels>,
    pub(crate) entries: Vec<Entry>,
}

/// What opening the blocks found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Blocks served.
    pub blocks: usize,
    /// Their entries.
    pub entries: u64,
    /// Incomplete blocks deleted.
    pub incomplete_removed: usize,
    /// Merged-away parents deleted.
    pub parents_removed: usize,
    /// Blocks that did not load (left in place).
    pub unreadable: Vec<String>,
}

/// What a maintenance pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Maintained {
    /// Blocks merged away.
    pub compacted: usize,
    /// Blocks written by merges.
    pub created: usize,
    /// Blocks dropped by retention.
    pub dropped: usize,
}

async fn load(store: &BlockStore, id: &str) -> Result<LogBlock, EngineError> {
    let meta = store.get(id, META_FILE).await?;
    let index = store.get(id, INDEX_FILE).await?;
    let data = store.get_mapped(id, DATA_FILE).await?;
    let bloom = store.get_mapped(id, BLOOM_FILE).await?;
    Ok(LogBlock::from_parts(
        id.to_string(),
        &meta,
        &index,
        data,
        bloom,
    )?)
}

async fn put(store: &BlockStore, writer: BlockWriter) -> Result<Arc<LogBlock>, EngineError> {
    let id = new_block_id();
    let encoded = writer.finish();
    let meta_json = serde_json::to_vec_pretty(&encoded.meta).expect("BUG: meta serializes");
    let mut files: Vec<(&str, Bytes)> = Vec::new();
    for (name, bytes) in encoded.files {
        let bytes = Bytes::from(bytes);
        store.put(&id, name, bytes.clone()).await?;
        files.push((name, bytes));
    }
    store
        .put(&id, META_FILE, Bytes::from(meta_json.clone()))
        .await?;
    let get = |n: &str| {
        files
            .iter()
            .find(|(name, _)| *name == n)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    Ok(Arc::new(LogBlock::from_parts(
        id,
        &meta_json,
        &get(INDEX_FILE),
        get(DATA_FILE),
        get(BLOOM_FILE),
    )?))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl LogStore {
    /// Loads the blocks of `store` and writes blocks there from now on.
    ///
    /// # Errors
    ///
    /// When the store cannot be listed or a leftover block deleted.
    pub async fn open_blocks(
        &self,
        store: BlockStore,
        opts: BlockOptions,
    ) -> Result<OpenReport, EngineError> {
        let opened = store
            .open_all(
                "logs",
                |id| {
                    let store = store.clone();
                    async move { load(&store, &id).await.map(Arc::new) }
                },
                |b: &Arc<LogBlock>| (b.id.as_str(), b.meta.parents.as_slice()),
            )
            .await?;
        let report = OpenReport {
            blocks: opened.blocks.len(),
            entries: opened.blocks.iter().map(|b| b.meta.entries).sum(),
            incomplete_removed: opened.incomplete_removed,
            parents_removed: opened.parents_removed,
            unreadable: opened.unreadable,
        };
        *self.blocks.write() = opened.blocks;
        let _ = self.engine.set(Engine {
            store,
            opts,
            lock: tokio::sync::Mutex::new(()),
        });
        Ok(report)
    }

    /// Whether the head is due for a flush: old or large enough.
    pub fn should_flush(&self) -> bool {
        let Some(engine) = self.engine.get() else {
            return false;
        };
        let inner = self.inner.read();
        inner.bytes >= engine.opts.head_max_bytes
            || inner
                .since
                .is_some_and(|t| t.elapsed() >= engine.opts.max_head_age)
    }

    /// Moves every entry of the head into a frozen part; returns how many. `wal_segment`
    /// is the log segment begun at the rotation the freeze runs at, if the head has a log:
    /// the segments before it hold only what the part and older blocks hold, and the
    /// part's block records it ([`block::BlockMeta::wal_segment`]).
    pub fn freeze(&self, wal_segment: Option<u64>) -> u64 {
        let mut inner = self.inner.write();
        let window = self.limits.out_of_order_window_ns;
        let mut streams = Vec::new();
        let mut count = 0u64;
        let mut idle = Vec::new();
        for (key, s) in inner.streams.iter_mut() {
            s.merge_late();
            if s.entries.is_empty() {
                // Forget streams idle for longer than the out-of-order window.
                if s.newest < now_ns().saturating_sub(window.max(3_600_000_000_000)) {
                    idle.push(key.clone());
                }
                continue;
            }
            count += s.entries.len() as u64;
            streams.push(FrozenStream {
                key: key.clone(),
                labels: Arc::new(s.labels.clone()),
                entries: std::mem::take(&mut s.entries),
            });
        }
        for key in idle {
            inner.streams.remove(&key);
        }
        let bytes = std::mem::take(&mut inner.bytes);
        inner.since = None;
        drop(inner);
        if count > 0 {
            self.frozen.write().push(Arc::new(Frozen {
                streams,
                bytes,
                wal_segment,
            }));
        }
        count
    }

    /// The highest log segment the served blocks cover the segments before: those may
    /// be deleted before the log is replayed.
    pub fn wal_covered(&self) -> Option<u64> {
        self.blocks
            .read()
            .iter()
            .filter_map(|b| b.meta.wal_segment)
            .max()
    }

    /// Writes every frozen part as a block; returns how many blocks.
    ///
    /// # Errors
    ///
    /// When the block store fails; the frozen parts stay and are retried.
    pub async fn flush_frozen(&self) -> Result<usize, EngineError> {
        let Some(engine) = self.engine.get() else {
            return Ok(0);
        };
        let _guard = engine.lock.lock().await;
        let mut written = 0;
        loop {
            let Some(part) = self.frozen.read().first().cloned() else {
                return Ok(written);
            };
            let mut writer = BlockWriter::default();
            writer.set_wal_segment(part.wal_segment);
            for s in &part.streams {
                writer.add_stream(&s.key, &s.entries);
            }
            let block = put(&engine.store, writer).await?;
            {
                let mut blocks = self.blocks.write();
                let mut frozen = self.frozen.write();
                blocks.push(block);
                frozen.retain(|f| !Arc::ptr_eq(f, &part));
            }
            written += 1;
        }
    }

    /// Compacts finished windows and applies retention.
    ///
    /// # Errors
    ///
    /// When the block store fails.
    pub async fn maintain(&self) -> Result<Maintained, EngineError> {
        let Some(engine) = self.engine.get() else {
            return Ok(Maintained::default());
        };
        let _guard = engine.lock.lock().await;
        let mut out = Maintained::default();
        let now = now_ns();
        let retention = i64::try_from(engine.opts.retention.as_nanos()).unwrap_or(i64::MAX);
        if retention > 0 {
            let old: Vec<Arc<LogBlock>> = self
                .blocks
                .read()
                .iter()
                .filter(|b| b.meta.max_ts < now.saturating_sub(retention))
                .cloned()
                .collect();
            for b in old {
                self.blocks.write().retain(|x| x.id != b.id);
                engine.store.delete(&b.id).await?;
                out.dropped += 1;
            }
        }
        let window = i64::try_from(engine.opts.compaction_window.as_nanos())
            .unwrap_or(i64::MAX)
            .max(1);
        let quiet = 2 * i64::try_from(engine.opts.max_head_age.as_nanos()).unwrap_or(i64::MAX);
        // Windows by the newest entry of each block; one merge per pass.
        let mut groups: std::collections::BTreeMap<i64, Vec<Arc<LogBlock>>> = Default::default();
        for b in self.blocks.read().iter() {
            groups
                .entry(b.meta.max_ts.div_euclid(window))
                .or_default()
                .push(b.clone());
        }
        for (w, group) in groups {
            let window_end = (w + 1).saturating_mul(window);
            let newest_block = group
                .iter()
                .filter_map(|b| pharos_storage::block_id_ms(&b.id))
                .max()
                .unwrap_or(0) as i64
                * 1_000_000;
            if group.len() < 2 || window_end > now || now - newest_block < quiet {
                continue;
            }
            let merged = self.merge(engine, &group).await?;
            {
                let mut blocks = self.blocks.write();
                blocks.retain(|b| !group.iter().any(|g| g.id == b.id));
                blocks.push(merged);
            }
            for b in &group {
                engine.store.delete(&b.id).await?;
            }
            out.compacted += group.len();
            out.created += 1;
            break;
        }
        Ok(out)
    }

    /// Merges `group` into one block, stream by stream.
    async fn merge(
        &self,
        engine: &Engine,
        group: &[Arc<LogBlock>],
    ) -> Result<Arc<LogBlock>, EngineError> {
        let level = group.iter().map(|b| b.meta.level).max().unwrap_or(0) + 1;
        let mut writer = BlockWriter::new(level, group.iter().map(|b| b.id.clone()).collect());
        writer.set_wal_segment(group.iter().filter_map(|b| b.meta.wal_segment).max());
        let mut keys: Vec<&str> = group
            .iter()
            .flat_map(|b| b.streams.iter().map(|s| s.key.as_str()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let mut entries: Vec<Entry> = Vec::new();
            for b in group {
                let Ok(i) = b.streams.binary_search_by(|s| s.key.as_str().cmp(key)) else {
                    continue;
                };
                for c in &b.streams[i].chunks {
                    entries.extend(b.read_chunk(c).map_err(BlockError::from)?);
                }
            }
            entries.sort_by_key(|e| e.ts_ns);
            dedup_same_time(&mut entries);
            writer.add_stream(key, &entries);
        }
        put(&engine.store, writer).await
    }

    /// Blocks served and the bytes they take.
    pub fn block_stats(&self) -> (usize, u64) {
        let blocks = self.blocks.read();
        (blocks.len(), blocks.iter().map(|b| b.size).sum())
    }
}

/// Drops entries equal to an earlier one of the same time (entries sorted by time), keeping
/// the first of each and the order of the rest.
fn dedup_same_time(entries: &mut Vec<Entry>) {
    let mut out: Vec<Entry> = Vec::with_capacity(entries.len());
    let mut run_start = 0;
    for e in entries.drain(..) {
        if out.last().is_none_or(|l| l.ts_ns != e.ts_ns) {
            run_start = out.len();
        }
        if !out[run_start..].contains(&e) {
            out.push(e);
        }
    }
    *entries = out;
}
