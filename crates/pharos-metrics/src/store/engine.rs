//! The head's way into blocks, and the blocks' life: flush, compaction, retention.
//!
//! - **Freeze** ([`MetricsStore::freeze`]): every sample leaves the head at once and becomes
//!   a [`Frozen`] part that reads still see. The caller freezes at a point of the
//!   write-ahead log (the binary rotates the log in the same ticket), so the log segments
//!   before that point hold exactly what the frozen parts hold.
//! - **Flush** ([`MetricsStore::flush_frozen`]): each frozen part is cut at
//!   `block_duration`-aligned boundaries and written as one level-1 block per window; once
//!   every frozen part is in blocks, the caller may delete those log segments.
//! - **Compaction** ([`MetricsStore::maintain`]): blocks that fit in one aligned window of
//!   1, 3 or 12 block durations are merged into one block once the window is over (the
//!   newest sample is half a block duration past its end). Merging is how overlapping
//!   blocks (out-of-order data, a flush split across windows, a replay after a crash)
//!   become one again; for a timestamp present twice, the older block's sample wins.
//! - **Retention**: blocks whose newest sample is older than the retention time before the
//!   newest sample of the store (or the wall clock, if that is earlier) are deleted, then the oldest blocks while all blocks take
//!   more bytes than the size limit.
//!
//! A crash at any point leaves either incomplete blocks (no `meta.json`: deleted on open),
//! or a merged block beside its parents (parents deleted on open), or blocks that the
//! log also still holds (replayed into the head, duplicates merged away on read and on the
//! next compaction). Nothing acknowledged is lost.

use std::sync::Arc;

use bytes::Bytes;
use pharos_storage::{BlockStore, BlockStoreError, new_block_id};

use super::MetricsStore;
use super::block::{
    Block, BlockError, BlockWriter, CHUNKS_FILE, EncodedBlock, INDEX_FILE, META_FILE,
};
use super::labels::Labels;

/// How the metrics store cuts, merges and drops blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockOptions {
    /// The span of a level-1 block, milliseconds; blocks are aligned to multiples of it.
    pub block_duration_ms: i64,
    /// Blocks whose newest sample is this much older than the store's newest are dropped;
    /// 0 keeps them.
    pub retention_ms: i64,
    /// The oldest blocks are dropped while all blocks take more bytes than this; 0: no
    /// limit.
    pub retention_bytes: u64,
    /// The head is flushed when it holds this many samples, or half a block duration.
    pub head_max_samples: u64,
    /// Decoded block chunks kept in memory for later reads, in bytes (16 per sample).
    pub decoded_cache_bytes: u64,
}

impl Default for BlockOptions {
    fn default() -> Self {
        BlockOptions {
            block_duration_ms: 2 * 3600 * 1000,
            retention_ms: 15 * 24 * 3600 * 1000,
            retention_bytes: 0,
            head_max_samples: 8_000_000,
            decoded_cache_bytes: 64 << 20,
        }
    }
}

impl BlockOptions {
    /// The window sizes blocks are compacted into, smallest first: 1, 3 and 12 block
    /// durations, the larger ones only while they stay within a tenth of the retention
    /// time (as Prometheus limits its block size).
    fn levels(&self) -> Vec<i64> {
        let d = self.block_duration_ms.max(1);
        let cap = if self.retention_ms > 0 {
            (self.retention_ms / 10).max(d)
        } else {
            i64::MAX
        };
        [d, 3 * d, 12 * d]
            .into_iter()
            .filter(|&r| r == d || r <= cap)
            .collect()
    }
}

/// Why blocks could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// [`MetricsStore::open_blocks`] was not called.
    #[error("no block store is open")]
    NotOpen,
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] BlockStoreError),
    /// A block just written does not read back.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// An encoding task panicked.
    #[error("block encoding failed: {0}")]
    Task(String),
}

/// The least time between two flushes caused by the head's span.
const MIN_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) struct Engine {
    /// When the head was last frozen.
    last_freeze: parking_lot::Mutex<Option<std::time::Instant>>,
    store: BlockStore,
    opts: BlockOptions,
    budget: Arc<super::block::DecodedBudget>,
    /// One flush or maintenance pass at a time.
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .field("opts", &self.opts)
            .finish()
    }
}

/// Samples taken out of the head, readable until their blocks are loaded.
#[derive(Debug)]
pub(crate) struct Frozen {
    /// Sorted by labels; every series has samples.
    pub(crate) series: Vec<(Labels, Vec<(i64, f64)>)>,
    min_t: i64,
    max_t: i64,
    samples: u64,
}

impl Frozen {
    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.min_t <= maxt && self.max_t >= mint
    }
}

/// What [`MetricsStore::open_blocks`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Blocks loaded.
    pub blocks: usize,
    /// Samples in them.
    pub samples: u64,
    /// Blocks without `meta.json` (a write cut short), deleted.
    pub incomplete_removed: usize,
    /// Blocks already merged into another one, deleted.
    pub parents_removed: usize,
    /// Blocks that failed to load, left on disk and not served.
    pub unreadable: Vec<String>,
}

/// What [`MetricsStore::flush_frozen`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Samples moved into blocks.
    pub samples: u64,
    /// Blocks written.
    pub blocks: usize,
}

/// What [`MetricsStore::maintain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Blocks merged into others.
    pub compacted: usize,
    /// Blocks written by merging.
    pub created: usize,
    /// Blocks deleted by retention.
    pub dropped: usize,
}

impl MetricsStore {
    /// Loads the blocks under `store` and keeps writing blocks there; deletes incomplete
    /// blocks and blocks already merged into another. Call once, before serving.
    ///
    /// # Errors
    ///
    /// When the store cannot be listed or a leftover cannot be deleted; a block that does
    /// not load is reported in [`OpenReport::unreadable`] instead.
    pub async fn open_blocks(
        &self,
        store: BlockStore,
        opts: BlockOptions,
    ) -> Result<OpenReport, EngineError> {
        let budget = super::block::DecodedBudget::new(opts.decoded_cache_bytes);
        let opened = store
            .open_all(
                "metrics",
                |id| {
                    let (store, budget) = (store.clone(), Arc::clone(&budget));
                    async move {
                        load(&store, &id)
                            .await
                            .map(|b| Arc::new(b.with_decoded_budget(budget)))
                    }
                },
                |b: &Arc<Block>| {
                    (
                        b.meta().ulid.as_str(),
                        b.meta().compaction.parents.as_slice(),
                    )
                },
            )
            .await?;
        let mut report = OpenReport {
            incomplete_removed: opened.incomplete_removed,
            parents_removed: opened.parents_removed,
            unreadable: opened.unreadable,
            ..OpenReport::default()
        };
        let mut kept = opened.blocks;
        kept.sort_by(|a, b| a.meta().ulid.cmp(&b.meta().ulid));
        report.blocks = kept.len();
        report.samples = kept.iter().map(|b| b.meta().stats.num_samples).sum();
        if let Some(max) = kept.iter().map(|b| b.meta().max_time - 1).max() {
            let mut head = self.head.write();
            head.max_t = Some(head.max_t.map_or(max, |m| m.max(max)));
        }
        *self.blocks.write() = kept;
        let _ = self.engine.set(Engine {
            last_freeze: parking_lot::Mutex::new(None),
            store,
            opts,
            budget,
            lock: tokio::sync::Mutex::new(()),
        });
        Ok(report)
    }

    fn engine(&self) -> Result<&Engine, EngineError> {
        self.engine.get().ok_or(EngineError::NotOpen)
    }

    /// Returns whether the head should be flushed: it holds half a block duration of
    /// samples, or [`BlockOptions::head_max_samples`].
    pub fn should_flush(&self) -> bool {
        let Some(engine) = self.engine.get() else {
            return false;
        };
        let head = self.head.read();
        let span = match (head.min_t, head.held_max_t) {
            (Some(lo), Some(hi)) => hi.saturating_sub(lo),
            _ => return false,
        };
        if head.samples >= engine.opts.head_max_samples {
            return true;
        }
        // A span made by a few late samples must not flush every second: at most one
        // flush by span per minute.
        let rested = engine
            .last_freeze
            .lock()
            .is_none_or(|at| at.elapsed() >= MIN_FLUSH_INTERVAL);
        span >= engine.opts.block_duration_ms / 2 && rested
    }

    /// Takes every sample out of the head into a frozen part (still read by queries) and
    /// returns how many; see the module docs.
    pub fn freeze(&self) -> u64 {
        // Idle series stay in the head for two block durations after their newest sample.
        let horizon = self.engine.get().map(|e| 2 * e.opts.block_duration_ms);
        if let Some(e) = self.engine.get() {
            *e.last_freeze.lock() = Some(std::time::Instant::now());
        }
        let mut head = self.head.write();
        let keep_idle_after = horizon.and_then(|h| head.max_t.map(|m| m.saturating_sub(h)));
        let series = head.freeze(keep_idle_after);
        let samples: u64 = series.iter().map(|s| s.1.len() as u64).sum();
        if samples == 0 {
            return 0;
        }
        let min_t = series.iter().map(|s| s.1[0].0).min().unwrap_or(0);
        let max_t = series
            .iter()
            .map(|s| s.1[s.1.len() - 1].0)
            .max()
            .unwrap_or(0);
        // Under the head's lock, so a reader sees the samples in the head or here.
        self.frozen.write().push(Arc::new(Frozen {
            series,
            min_t,
            max_t,
            samples,
        }));
        samples
    }

    /// Returns the samples held in frozen parts.
    pub(crate) fn frozen_samples(&self) -> u64 {
        self.frozen.read().iter().map(|f| f.samples).sum()
    }

    /// Writes every frozen part as blocks, oldest first, and serves them from the blocks.
    /// On success nothing is left frozen.
    ///
    /// # Errors
    ///
    /// When a block cannot be written; that part and later ones stay frozen (and
    /// readable) for the next call.
    pub async fn flush_frozen(&self) -> Result<FlushReport, EngineError> {
        let engine = self.engine()?;
        let _one = engine.lock.lock().await;
        let mut report = FlushReport::default();
        loop {
            let Some(part) = self.frozen.read().first().cloned() else {
                return Ok(report);
            };
            let d = engine.opts.block_duration_ms.max(1);
            let encoded = {
                let part = Arc::clone(&part);
                tokio::task::spawn_blocking(move || encode_windows(&part, d))
                    .await
                    .map_err(|e| EngineError::Task(e.to_string()))?
            };
            let mut written = Vec::new();
            for enc in encoded {
                let block = write_block(&engine.store, enc).await?;
                written.push(Arc::new(
                    block.with_decoded_budget(Arc::clone(&engine.budget)),
                ));
            }
            report.blocks += written.len();
            report.samples += part.samples;
            // Swap under both locks, in the order readers take them (frozen, then blocks).
            let mut frozen = self.frozen.write();
            let mut blocks = self.blocks.write();
            blocks.extend(written);
            blocks.sort_by(|a, b| a.meta().ulid.cmp(&b.meta().ulid));
            frozen.retain(|f| !Arc::ptr_eq(f, &part));
        }
    }

    /// Compacts what can be compacted, then applies retention.
    ///
    /// # Errors
    ///
    /// When a block cannot be read, written or deleted; blocks stay consistent.
    pub async fn maintain(&self) -> Result<MaintenanceReport, EngineError> {
        let engine = self.engine()?;
        let _one = engine.lock.lock().await;
        let mut report = MaintenanceReport::default();
        let newest = self.head.read().max_t;
        let Some(newest) = newest else {
            return Ok(report);
        };
        // Windows are over, and blocks expire, counting from the newest sample but never
        // from past the wall clock: one sample stamped years ahead must not make every
        // window look finished or every block expired.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(i64::MAX, |d| d.as_millis() as i64);
        let newest = newest.min(now_ms);
        loop {
            let snapshot = self.blocks.read().clone();
            let Some(group) = plan(&snapshot, &engine.opts, newest) else {
                break;
            };
            let parents: Vec<String> = group.iter().map(|b| b.meta().ulid.clone()).collect();
            let level = group
                .iter()
                .map(|b| b.meta().compaction.level)
                .max()
                .unwrap_or(1)
                + 1;
            let enc = {
                let group = group.clone();
                tokio::task::spawn_blocking(move || merge(&group, level, parents))
                    .await
                    .map_err(|e| EngineError::Task(e.to_string()))??
            };
            let merged = Arc::new(
                write_block(&engine.store, enc)
                    .await?
                    .with_decoded_budget(Arc::clone(&engine.budget)),
            );
            {
                let mut blocks = self.blocks.write();
                blocks.retain(|b| !group.iter().any(|g| Arc::ptr_eq(g, b)));
                blocks.push(merged);
                blocks.sort_by(|a, b| a.meta().ulid.cmp(&b.meta().ulid));
            }
            for b in &group {
                engine.store.delete(&b.meta().ulid).await?;
            }
            report.compacted += group.len();
            report.created += 1;
        }
        for b in self.expired(&engine.opts, newest) {
            self.blocks.write().retain(|x| !Arc::ptr_eq(x, &b));
            engine.store.delete(&b.meta().ulid).await?;
            tracing::info!(block = %b.meta().ulid, min_time = b.meta().min_time, max_time = b.meta().max_time, "metrics block dropped by retention");
            report.dropped += 1;
        }
        Ok(report)
    }

    /// Returns the blocks retention drops: past the retention time, then the oldest while
    /// over the size limit.
    fn expired(&self, opts: &BlockOptions, newest: i64) -> Vec<Arc<Block>> {
        let mut blocks: Vec<Arc<Block>> = self.blocks.read().clone();
        blocks.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
        let mut out = Vec::new();
        if opts.retention_ms > 0 {
            let cutoff = newest.saturating_sub(opts.retention_ms);
            blocks.retain(|b| {
                let old = b.meta().max_time <= cutoff;
                if old {
                    out.push(Arc::clone(b));
                }
                !old
            });
        }
        if opts.retention_bytes > 0 {
            let mut total: u64 = blocks.iter().map(|b| b.size_bytes()).sum();
            for b in blocks {
                if total <= opts.retention_bytes {
                    break;
                }
                total -= b.size_bytes();
                out.push(b);
            }
        }
        out
    }

    /// Returns the bytes of decoded chunks kept for reads.
    pub fn decoded_cache_bytes(&self) -> u64 {
        self.engine.get().map_or(0, |e| e.budget.used())
    }

    /// Returns how many blocks are served and their bytes.
    pub fn block_stats(&self) -> (usize, u64) {
        let blocks = self.blocks.read();
        (blocks.len(), blocks.iter().map(|b| b.size_bytes()).sum())
    }
}

async fn load(store: &BlockStore, id: &str) -> Result<Block, EngineError> {
    let meta = store.get(id, META_FILE).await?;
    let index = store.get(id, INDEX_FILE).await?;
    // The chunks file is the bulk of a block: mapped, it stays in the page cache.
    let chunks = store.get_mapped(id, CHUNKS_FILE).await?;
    let block = Block::decode(&meta, &index, chunks)?;
    if block.meta().ulid != id {
        return Err(BlockError::Meta(format!(
            "ulid {} is not the directory name",
            block.meta().ulid
        ))
        .into());
    }
    Ok(block)
}

/// Writes a block's files (meta last) and loads it back: from the bytes written, but with
/// the chunks file read back mapped where the store allows, so it leaves the heap.
async fn write_block(store: &BlockStore, enc: EncodedBlock) -> Result<Block, EngineError> {
    let meta = Bytes::from(enc.meta_json());
    let id = enc.meta.ulid.clone();
    let index = Bytes::from(enc.index);
    let chunks = Bytes::from(enc.chunks);
    store.put(&id, CHUNKS_FILE, chunks.clone()).await?;
    store.put(&id, INDEX_FILE, index.clone()).await?;
    store.put(&id, META_FILE, meta.clone()).await?;
    let mapped = store.get_mapped(&id, CHUNKS_FILE).await?;
    Ok(Block::decode(&meta, &index, mapped)?)
}

/// Cuts a frozen part at multiples of `d` and encodes one level-1 block per window.
fn encode_windows(part: &Frozen, d: i64) -> Vec<EncodedBlock> {
    let mut windows: std::collections::BTreeMap<i64, BlockWriter> = Default::default();
    for (labels, samples) in &part.series {
        let mut rest = &samples[..];
        while let Some(&(t, _)) = rest.first() {
            let w = t.div_euclid(d);
            let end = rest.partition_point(|s| s.0.div_euclid(d) == w);
            windows
                .entry(w)
                .or_default()
                .add(labels.clone(), &rest[..end]);
            rest = &rest[end..];
        }
    }
    windows
        .into_values()
        .map(|w| w.finish(new_block_id(), 1, Vec::new()))
        .collect()
}

/// Returns the next group of blocks to merge: two or more blocks inside one aligned window
/// that is over, smallest window size first, oldest window first.
fn plan(blocks: &[Arc<Block>], opts: &BlockOptions, newest: i64) -> Option<Vec<Arc<Block>>> {
    let half = opts.block_duration_ms / 2;
    for range in opts.levels() {
        let mut windows: std::collections::BTreeMap<i64, Vec<Arc<Block>>> = Default::default();
        for b in blocks {
            let (lo, hi) = (b.meta().min_time, b.meta().max_time - 1);
            let w = lo.div_euclid(range);
            if hi.div_euclid(range) == w {
                windows.entry(w).or_default().push(Arc::clone(b));
            }
        }
        for (w, group) in windows {
            let end = w.saturating_mul(range).saturating_add(range);
            if group.len() >= 2 && end.saturating_add(half) <= newest {
                return Some(group);
            }
        }
    }
    None
}

/// Merges blocks (given oldest first) into one, series by series; fails, writing nothing,
/// if a chunk does not decode, so no sample is dropped with its parents.
fn merge(
    group: &[Arc<Block>],
    level: u32,
    parents: Vec<String>,
) -> Result<EncodedBlock, BlockError> {
    let mut all: Vec<(Labels, usize, u32)> = Vec::new();
    for (i, b) in group.iter().enumerate() {
        for ord in 0..b.series_count() as u32 {
            all.push((b.labels(ord), i, ord));
        }
    }
    // Stable by block within equal labels: the oldest block's samples come first.
    all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut writer = BlockWriter::new();
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        let mut merged = super::Merged::default();
        while j < all.len() && all[j].0 == all[i].0 {
            let (_, b, ord) = &all[j];
            merged.append(group[*b].all_samples(*ord)?);
            j += 1;
        }
        let samples = merged.finish();
        writer.add(all[i].0.clone(), &samples);
        i = j;
    }
    Ok(writer.finish(new_block_id(), level, parents))
}

#[cfg(test)]
mod tests;
