//! The trace head's way into blocks, and the blocks' life: freeze, flush, compaction,
//! retention. The same life cycle as the metrics store's:
//!
//! - **Freeze** ([`TraceStore::freeze`]): every trace leaves the head at once and becomes
//!   a frozen part that reads still see. The caller freezes at a point of the write-ahead
//!   log (the binary rotates the log in the same ticket), so the log segments before that
//!   point hold exactly what the frozen parts hold.
//! - **Flush** ([`TraceStore::flush_frozen`]): each frozen part becomes one level-1 block;
//!   once every frozen part is in blocks, the caller may delete those log segments. A trace
//!   whose spans straddle a freeze is in two blocks; reads by id merge the fragments.
//! - **Compaction** ([`TraceStore::maintain`]): blocks are grouped by the aligned
//!   `compaction_window` their earliest span falls in; a window's blocks are merged into one
//!   once the window is over and quiet (no block joined it for twice the head's age), or
//!   when it holds [`BlockOptions::max_window_blocks`] blocks of one level,
//!   joining the fragments of a trace and dropping duplicate spans (same span id and kind),
//!   as Tempo's compactor combines traces. A page that holds no fragment of a split trace
//!   is copied as it is; the others are merged in trace id order, one page of each parent
//!   run in memory at a time (see `merge`).
//! - **Retention**: blocks whose latest span ended longer than the retention time ago are
//!   deleted.
//!
//! A crash at any point leaves either incomplete blocks (no `meta.json`: deleted on open),
//! a merged block beside its parents (parents deleted on open), or blocks that the log also
//! still holds (replayed into the head; duplicate spans are dropped on read and on the next
//! compaction). Nothing acknowledged is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pharos_storage::{BlockStore, BlockStoreError, new_block_id};

use super::block::{
    BlockError, BlockMeta, BlockWriter, Compaction, DATA_FILE, EncodedBlock, INDEX_FILE, META_FILE,
    PageRows, TraceBlock,
};
use super::{Trace, TraceId, TraceStore};

/// How the trace store cuts, merges and drops blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockOptions {
    /// The head is flushed once its first span arrived this long ago (Tempo's
    /// `max_block_duration`).
    pub max_head_age: Duration,
    /// The head is flushed once its spans take this many bytes (Tempo's `max_block_bytes`).
    pub head_max_bytes: u64,
    /// Blocks whose latest span ended this long before now are dropped; zero keeps them.
    pub retention: Duration,
    /// Blocks are compacted within aligned windows of this length (Tempo's
    /// `compaction_window`).
    pub compaction_window: Duration,
    /// A window still in progress is compacted once it holds this many blocks.
    pub max_window_blocks: usize,
    /// A compacted block holds at most about this many spans; windows beyond it stay in
    /// several blocks. It bounds one merge's time (copied pages cost little; a rewritten
    /// span about 1.7 µs) and memory, during which the head is not flushed.
    pub max_block_spans: u64,
    /// Spans' bytes per page: what a lookup by id decodes, and zstd's context.
    pub page_bytes: u64,
}

impl Default for BlockOptions {
    fn default() -> Self {
        BlockOptions {
            max_head_age: Duration::from_secs(5 * 60),
            head_max_bytes: 128 << 20,
            retention: Duration::from_secs(14 * 24 * 3600),
            compaction_window: Duration::from_secs(3600),
            max_window_blocks: 8,
            max_block_spans: 2_000_000,
            page_bytes: super::block::DEFAULT_PAGE_BYTES,
        }
    }
}

/// Why blocks could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// [`TraceStore::open_blocks`] was not called.
    #[error("no trace block store is open")]
    NotOpen,
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] BlockStoreError),
    /// A block does not read back.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// `meta.json` is not valid.
    #[error("trace block {0}: meta.json: {1}")]
    Meta(String, String),
    /// An encoding task panicked.
    #[error("trace block encoding failed: {0}")]
    Task(String),
}

pub(crate) struct Engine {
    store: BlockStore,
    opts: BlockOptions,
    /// One flush or maintenance pass at a time.
    lock: tokio::sync::Mutex<()>,
}

/// Traces taken out of the head, readable until their block is loaded.
///
/// Its block has two runs: the settled traces, then the unsettled ones, which took a span
/// both within the part's last [`UNSETTLED_SHARE`]th of spans and within the last
/// [`UNSETTLED_MS`] before the freeze, or continue a trace the previous flush wrote as
/// unsettled. A trace split by flushes is then in the small unsettled runs of its blocks,
/// and a merge copies the settled runs' pages as they are (see [`merge`]).
pub(crate) struct Frozen {
    pub(crate) traces: super::FastMap<TraceId, super::head::HeadTrace>,
    pub(crate) spans: u64,
    /// A trace touched after both (`HeadTrace::touched`, `touched_ms`) is unsettled.
    settled_before: (u64, u64),
}

/// The share of a frozen part's latest spans whose traces count as unsettled: 1/10th.
const UNSETTLED_SHARE: u64 = 10;
/// How long a trace counts as unsettled after its latest span (Tempo's
/// `trace_idle_period`).
const UNSETTLED_MS: u64 = 10_000;

impl Frozen {
    fn unsettled(&self, t: &super::head::HeadTrace) -> bool {
        t.touched > self.settled_before.0 && t.touched_ms > self.settled_before.1
    }
}

/// What [`TraceStore::open_blocks`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Blocks loaded.
    pub blocks: usize,
    /// Spans in them.
    pub spans: u64,
    /// Incomplete blocks deleted.
    pub incomplete_removed: usize,
    /// Blocks deleted because a merged block replaces them.
    pub parents_removed: usize,
    /// Blocks that do not load (kept on disk, not served).
    pub unreadable: Vec<String>,
}

/// What [`TraceStore::flush_frozen`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub blocks: usize,
    pub spans: u64,
}

/// What [`TraceStore::maintain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Blocks merged away.
    pub compacted: usize,
    /// Blocks created by merging.
    pub created: usize,
    /// Blocks dropped by retention.
    pub dropped: usize,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn load(store: &BlockStore, id: &str) -> Result<TraceBlock, EngineError> {
    let meta = store.get(id, META_FILE).await?;
    let meta: BlockMeta =
        serde_json::from_slice(&meta).map_err(|e| EngineError::Meta(id.into(), e.to_string()))?;
    if meta.ulid != id {
        return Err(EngineError::Meta(
            id.into(),
            format!("names block {:?}", meta.ulid),
        ));
    }
    let index = store.get(id, INDEX_FILE).await?;
    let data = store.get_mapped(id, DATA_FILE).await?;
    Ok(
        tokio::task::spawn_blocking(move || TraceBlock::open(meta, &index, data))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??,
    )
}

async fn write_block(store: &BlockStore, enc: EncodedBlock) -> Result<TraceBlock, EngineError> {
    let id = enc.meta.ulid.clone();
    store.put(&id, DATA_FILE, enc.data.clone()).await?;
    store.put(&id, INDEX_FILE, enc.index.clone()).await?;
    let meta = serde_json::to_vec_pretty(&enc.meta).expect("meta serializes");
    store.put(&id, META_FILE, Bytes::from(meta)).await?;
    // Serve it from the store's bytes (mapped when local), checked as a reader would.
    load(store, &id).await
}

impl TraceStore {
    /// Opens the blocks of `store`: deletes incomplete blocks and blocks a merged block
    /// replaces, loads the rest (their services and operations join the head's lists),
    /// and enables [`TraceStore::flush_frozen`] and [`TraceStore::maintain`].
    ///
    /// # Errors
    ///
    /// When the store cannot be listed or a block deleted. A block that does not load is
    /// reported, logged and skipped.
    pub async fn open_blocks(
        &self,
        store: BlockStore,
        opts: BlockOptions,
    ) -> Result<OpenReport, EngineError> {
        let opened = store
            .open_all(
                "traces",
                |id| {
                    let store = store.clone();
                    async move { load(&store, &id).await.map(Arc::new) }
                },
                |b: &Arc<TraceBlock>| {
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
        let kept = opened.blocks;
        report.blocks = kept.len();
        report.spans = kept.iter().map(|b| b.meta().spans).sum();
        {
            let mut inner = self.inner.write();
            for b in &kept {
                for (service, op) in b.operations() {
                    inner
                        .services
                        .entry(service.clone())
                        .or_default()
                        .insert(op.clone());
                }
            }
        }
        self.set_blocks(kept);
        let _ = self.engine.set(Engine {
            store,
            opts,
            lock: tokio::sync::Mutex::new(()),
        });
        Ok(report)
    }

    /// Replaces the served blocks, kept sorted newest (latest span end) first, the order
    /// searches read them in.
    fn set_blocks(&self, mut blocks: Vec<Arc<TraceBlock>>) {
        sort_blocks(&mut blocks);
        *self.blocks.write() = blocks;
    }

    fn engine(&self) -> Result<&Engine, EngineError> {
        self.engine.get().ok_or(EngineError::NotOpen)
    }

    /// Returns whether the head should be flushed: its first span arrived
    /// [`BlockOptions::max_head_age`] ago, or it holds [`BlockOptions::head_max_bytes`].
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

    /// Moves every trace of the head into a frozen part (still read), and returns how many
    /// spans moved. Call it at a rotation of the log.
    pub fn freeze(&self) -> u64 {
        let mut inner = self.inner.write();
        if inner.traces.is_empty() {
            inner.since = None;
            return 0;
        }
        let traces = std::mem::take(&mut inner.traces);
        let spans: u64 = traces.values().map(|t| t.spans.len() as u64).sum();
        inner.bytes = 0;
        inner.since = None;
        let settled_before = (
            inner.arrivals.saturating_sub(spans / UNSETTLED_SHARE),
            super::head::clock_ms().saturating_sub(UNSETTLED_MS),
        );
        // Frozen parts are read under this lock's successor order: head, then frozen.
        self.frozen.write().push(Arc::new(Frozen {
            traces,
            spans,
            settled_before,
        }));
        spans
    }

    /// Writes every frozen part as a block, oldest first, and serves it from the block.
    ///
    /// # Errors
    ///
    /// When a block cannot be written; that part and later ones stay frozen (and readable)
    /// for the next call.
    pub async fn flush_frozen(&self) -> Result<FlushReport, EngineError> {
        let engine = self.engine()?;
        let _one = engine.lock.lock().await;
        let mut report = FlushReport::default();
        loop {
            let Some(part) = self.frozen.read().first().cloned() else {
                return Ok(report);
            };
            let page_bytes = engine.opts.page_bytes;
            let before = self.unsettled.lock().clone();
            let (enc, unsettled) = {
                let part = Arc::clone(&part);
                tokio::task::spawn_blocking(move || {
                    let mut traces: Vec<_> = part.traces.iter().collect();
                    traces.sort_unstable_by_key(|(id, _)| *id);
                    let (unsettled, settled): (Vec<_>, Vec<_>) = traces
                        .into_iter()
                        .partition(|(id, t)| part.unsettled(t) || before.contains(*id));
                    let mut w = BlockWriter::new(page_bytes);
                    for run in [&settled, &unsettled] {
                        // The spans of a trace are in many requests: fetching ahead
                        // hides some of the wait for memory.
                        for (k, (id, trace)) in run.iter().enumerate() {
                            if let Some((_, t)) = run.get(k + 2) {
                                t.prefetch_index();
                            }
                            if let Some((_, t)) = run.get(k + 1) {
                                t.prefetch_spans();
                            }
                            w.push_head(id, trace);
                        }
                        w.end_run();
                    }
                    let enc = w.finish(
                        new_block_id(),
                        Compaction {
                            level: 1,
                            parents: Vec::new(),
                        },
                    );
                    let ids: super::FastSet<TraceId> =
                        unsettled.iter().map(|(id, _)| **id).collect();
                    (enc, ids)
                })
                .await
                .map_err(|e| EngineError::Task(e.to_string()))?
            };
            let block = Arc::new(write_block(&engine.store, enc).await?);
            *self.unsettled.lock() = unsettled;
            report.blocks += 1;
            report.spans += part.spans;
            // Swap under both locks, in the order readers take them (frozen, then blocks).
            let mut frozen = self.frozen.write();
            let mut blocks = self.blocks.write();
            blocks.push(block);
            sort_blocks(&mut blocks);
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
        let now = now_ns();
        loop {
            let snapshot = self.blocks.read().clone();
            let Some(group) = plan(&snapshot, &engine.opts, now) else {
                break;
            };
            let parents: Vec<String> = group.iter().map(|b| b.meta().ulid.clone()).collect();
            let level = group
                .iter()
                .map(|b| b.meta().compaction.level)
                .max()
                .unwrap_or(1)
                + 1;
            let started = Instant::now();
            let page_bytes = engine.opts.page_bytes;
            let (enc, copied_pages) = {
                let group = group.clone();
                tokio::task::spawn_blocking(move || {
                    merge(&group, level, parents, page_bytes, Relink::Pages)
                })
                .await
                .map_err(|e| EngineError::Task(e.to_string()))??
            };
            let merged = Arc::new(write_block(&engine.store, enc).await?);
            tracing::info!(
                block = %merged.meta().ulid,
                parents = group.len(),
                spans = merged.meta().spans,
                traces = merged.meta().traces,
                fragments_joined = group
                    .iter()
                    .map(|b| b.meta().traces)
                    .sum::<u64>()
                    .saturating_sub(merged.meta().traces),
                copied_pages,
                pages = merged.pages().len(),
                took_ms = started.elapsed().as_millis() as u64,
                "trace blocks compacted"
            );
            {
                let mut blocks = self.blocks.write();
                blocks.retain(|b| !group.iter().any(|g| Arc::ptr_eq(g, b)));
                blocks.push(merged);
                sort_blocks(&mut blocks);
            }
            for b in &group {
                engine.store.delete(&b.meta().ulid).await?;
            }
            report.compacted += group.len();
            report.created += 1;
        }
        if !engine.opts.retention.is_zero() {
            let cutoff = now.saturating_sub(engine.opts.retention.as_nanos() as u64);
            let expired: Vec<Arc<TraceBlock>> = self
                .blocks
                .read()
                .iter()
                .filter(|b| b.meta().max_time_ns < cutoff)
                .cloned()
                .collect();
            for b in expired {
                self.blocks.write().retain(|x| !Arc::ptr_eq(x, &b));
                engine.store.delete(&b.meta().ulid).await?;
                tracing::info!(block = %b.meta().ulid, max_time_ns = b.meta().max_time_ns, "trace block dropped by retention");
                report.dropped += 1;
            }
        }
        Ok(report)
    }

    /// Returns how many blocks are served and their bytes.
    pub fn block_stats(&self) -> (usize, u64) {
        let blocks = self.blocks.read();
        (blocks.len(), blocks.iter().map(|b| b.meta().bytes).sum())
    }
}

fn sort_blocks(blocks: &mut [Arc<TraceBlock>]) {
    blocks.sort_by(|a, b| {
        b.meta()
            .max_time_ns
            .cmp(&a.meta().max_time_ns)
            .then_with(|| b.meta().ulid.cmp(&a.meta().ulid))
    });
}

/// Picks the next blocks to merge: the blocks of one level in one compaction window (by
/// their earliest span) once the window is over and no block has joined it for twice the
/// head's age, or once they are `max_window_blocks`;
/// oldest ids first, up to `max_block_spans`.
fn plan(blocks: &[Arc<TraceBlock>], opts: &BlockOptions, now: u64) -> Option<Vec<Arc<TraceBlock>>> {
    let window = (opts.compaction_window.as_nanos() as u64).max(1);
    // A window is over once spans stamped in it can no longer arrive in a head that is
    // not yet flushed: its end plus twice the head's age.
    let slack = 2 * opts.max_head_age.as_nanos() as u64;
    // Blocks merge with blocks of their own level, so a large block is not rewritten for
    // every small one that joins its window (merges form a tree, as in Tempo's and
    // Prometheus' compactors).
    let mut by_window: std::collections::BTreeMap<(u64, u32), Vec<Arc<TraceBlock>>> =
        std::collections::BTreeMap::new();
    for b in blocks {
        if b.meta().spans >= opts.max_block_spans {
            continue;
        }
        by_window
            .entry((b.meta().min_time_ns / window, b.meta().compaction.level))
            .or_default()
            .push(Arc::clone(b));
    }
    for ((w, _level), mut group) in by_window {
        if group.len() < 2 {
            continue;
        }
        let over = (w + 1).saturating_mul(window).saturating_add(slack) <= now;
        // Blocks still arriving in a window that is over (late spans, or a backlog being
        // sent) wait until they are `max_window_blocks` too, or until the window has been
        // quiet for the slack: merging each pair as it comes would rewrite every span
        // once per level.
        let newest_ms = group
            .iter()
            .filter_map(|b| pharos_storage::block_id_ms(&b.meta().ulid))
            .max()
            .unwrap_or(0);
        let quiet = newest_ms.saturating_mul(1_000_000).saturating_add(slack) <= now;
        if group.len() < opts.max_window_blocks && !(over && quiet) {
            continue;
        }
        group.sort_by(|a, b| a.meta().ulid.cmp(&b.meta().ulid));
        let mut spans = 0;
        let mut take = Vec::new();
        for b in group {
            if !take.is_empty() && spans + b.meta().spans > opts.max_block_spans {
                break;
            }
            spans += b.meta().spans;
            take.push(b);
        }
        if take.len() >= 2 {
            return Some(take);
        }
    }
    None
}

/// How a merge treats its parents' pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Relink {
    /// Copy the pages that hold no fragment of a trace another page also holds, as they
    /// are; rewrite the rest.
    Pages,
    /// Rewrite every trace (tests of the rewriting path).
    #[cfg(test)]
    Never,
}

/// A merged block holds at most this many runs of copied pages; a merge that would make
/// more rewrites everything (each run costs a lookup by id one bloom filter test).
const MAX_COPIED_RUNS: usize = 32;
/// A page with fewer spans than this fraction of the merge's largest page is rewritten
/// rather than copied, so merges do not keep the small last pages of their parents' runs.
const SMALL_PAGE_FRACTION: u64 = 4;

/// One run's position in a merge: the pages of it to rewrite, its current page's columns
/// and the next trace of it.
struct Cursor<'a> {
    block: &'a TraceBlock,
    pages: Vec<usize>,
    next_page: usize,
    rows: Option<PageRows>,
    next_trace: usize,
}

impl Cursor<'_> {
    /// Makes sure a trace is next, unless the run is exhausted.
    fn fill(&mut self) -> Result<(), BlockError> {
        while self
            .rows
            .as_ref()
            .is_none_or(|r| self.next_trace >= r.traces())
            && self.next_page < self.pages.len()
        {
            self.rows = Some(self.block.read_rows(self.pages[self.next_page])?);
            self.next_trace = 0;
            self.next_page += 1;
        }
        Ok(())
    }

    /// The id of the next trace, if any.
    fn next_id(&self) -> Option<TraceId> {
        let rows = self.rows.as_ref()?;
        (self.next_trace < rows.traces())
            .then(|| rows.trace_id(self.next_trace).try_into().expect("16 bytes"))
    }
}

/// Merges blocks into one block of `level`.
///
/// With [`Relink::Pages`], a page whose traces no other page of the parents holds (by
/// the last eight bytes of their ids, read without decoding the page) is copied as it
/// is: each run of a parent keeps its copied pages as a run of the merged block, with
/// the run's bloom filter. The other pages (fragments of a trace split between pages,
/// pages of a version before 4, small pages) are rewritten into one more run: traces in
/// id order, the fragments of one trace joined (older block first) with duplicate spans
/// dropped. A trace only one of them holds is copied from its page's columns; fragments
/// are rebuilt and joined.
pub(super) fn merge(
    group: &[Arc<TraceBlock>],
    level: u32,
    parents: Vec<String>,
    page_bytes: u64,
    relink: Relink,
) -> Result<(EncodedBlock, usize), EngineError> {
    // Oldest block first, so a trace's spans keep their arrival order.
    let mut blocks: Vec<&TraceBlock> = group.iter().map(|b| &**b).collect();
    blocks.sort_by(|a, b| a.meta().ulid.cmp(&b.meta().ulid));
    let runs: Vec<(usize, std::ops::Range<usize>)> = blocks
        .iter()
        .enumerate()
        .flat_map(|(k, b)| b.runs().map(move |r| (k, r)))
        .collect();
    let mut copy: Vec<Vec<bool>> = blocks
        .iter()
        .map(|b| vec![false; b.pages().len()])
        .collect();
    if relink == Relink::Pages {
        let mut ids: Vec<Vec<Vec<u64>>> = Vec::with_capacity(blocks.len());
        let mut pages_of: super::FastMap<u64, u32> = super::FastMap::default();
        for b in &blocks {
            let mut per_page = Vec::with_capacity(b.pages().len());
            for i in 0..b.pages().len() {
                let low = b.page_trace_ids_low(i)?;
                for &id in &low {
                    *pages_of.entry(id).or_insert(0) += 1;
                }
                per_page.push(low);
            }
            ids.push(per_page);
        }
        let largest = blocks
            .iter()
            .flat_map(|b| b.pages().iter().map(|p| u64::from(p.spans)))
            .max()
            .unwrap_or(0);
        for (k, b) in blocks.iter().enumerate() {
            for (i, p) in b.pages().iter().enumerate() {
                copy[k][i] = b.meta().version >= super::block::PAGE_VERSION
                    && u64::from(p.spans) * SMALL_PAGE_FRACTION >= largest
                    && ids[k][i].iter().all(|id| pages_of[id] == 1);
            }
        }
        let copied_runs = runs
            .iter()
            .filter(|(k, r)| r.clone().any(|i| copy[*k][i]))
            .count();
        if copied_runs > MAX_COPIED_RUNS {
            copy.iter_mut().for_each(|c| c.fill(false));
        }
    }
    let mut w = BlockWriter::new(page_bytes);
    for b in &blocks {
        w.add_operations(b.operations());
    }
    let copied_pages = copy.iter().flatten().filter(|&&c| c).count();
    let mut cursors = Vec::with_capacity(runs.len());
    for (k, r) in runs {
        let (copied, rewritten): (Vec<usize>, Vec<usize>) = r.partition(|&i| copy[k][i]);
        w.copy_run(blocks[k], &copied);
        cursors.push(Cursor {
            block: blocks[k],
            pages: rewritten,
            next_page: 0,
            rows: None,
            next_trace: 0,
        });
    }
    let corrupt = |c: &Cursor<'_>, what: String| {
        EngineError::Block(BlockError::Corrupt {
            block: c.block.meta().ulid.clone(),
            what: format!("page {}: {what}", c.pages[c.next_page - 1]),
        })
    };
    loop {
        for c in &mut cursors {
            c.fill()?;
        }
        let Some(id) = cursors.iter().filter_map(Cursor::next_id).min() else {
            break;
        };
        let holders: Vec<usize> = (0..cursors.len())
            .filter(|&i| cursors[i].next_id() == Some(id))
            .collect();
        if let [only] = holders[..] {
            let c = &mut cursors[only];
            w.push_rows(c.rows.as_ref().expect("filled"), c.next_trace);
            c.next_trace += 1;
            continue;
        }
        let mut trace: Option<Trace> = None;
        for i in holders {
            let c = &mut cursors[i];
            let (_, t) = c
                .rows
                .as_ref()
                .expect("filled")
                .trace(c.next_trace)
                .map_err(|what| corrupt(c, what))?;
            c.next_trace += 1;
            match &mut trace {
                None => trace = Some(t),
                Some(acc) => acc.absorb(t),
            }
        }
        if let Some(t) = trace {
            w.push(&id, &t);
        }
    }
    Ok((
        w.finish(new_block_id(), Compaction { level, parents }),
        copied_pages,
    ))
}
