//! A head's way into blocks, driven from the binary because it needs both the store and
//! the write-ahead log: freeze the head at a rotation of the log, write the frozen data
//! as blocks, then delete the log segments it came from; compact and apply retention
//! after each flush and once a minute. One [`Flusher`] per signal (metrics, traces,
//! logs); what differs between them is the [`Flushable`] store.
//!
//! Metric metadata is not in blocks: before the segments are deleted, the store's whole
//! metadata map is appended to the log as metadata-only records (a checkpoint, after the
//! rotation, so in a segment that stays), and replays from there.

use crate::ingest::{Ingest, Logged, SignalPath};
use pharos_metrics::MetricsStore;
use pharos_model::telemetry::{BlockWriteLabels, SelfMetrics, SignalLabels};
use pharos_model::trace_batch::TraceBatch;
use pharos_traces::TraceStore;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What a compaction and retention pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Maintained {
    pub compacted: usize,
    pub created: usize,
    pub dropped: usize,
}

/// A store whose head becomes blocks.
pub trait Flushable: Send + Sync + 'static {
    /// The store's log record.
    type Record: crate::ingest::Logged;
    /// The signal's name in self-metrics and logs.
    const SIGNAL: &'static str;
    /// What the head counts (`samples`, `spans`).
    const UNIT: &'static str;
    /// The store's path through ingest (its log).
    fn path(ingest: &Ingest) -> &SignalPath<Self::Record>;
    fn should_flush(&self) -> bool;
    /// Moves the head into a frozen part; returns how many items moved. `segment` is the
    /// log segment begun at the rotation the freeze runs at: the ones before it hold only
    /// what the freeze takes and what blocks already hold.
    fn freeze(&self, segment: u64) -> u64;
    /// Writes the frozen parts as blocks; returns how many blocks.
    fn flush_frozen(&self) -> impl Future<Output = anyhow::Result<usize>> + Send;
    /// Records to append to the log before the frozen segments go.
    fn checkpoint(&self) -> Vec<Self::Record> {
        Vec::new()
    }
    fn maintain(&self) -> impl Future<Output = anyhow::Result<Maintained>> + Send;
    /// Blocks served and their bytes.
    fn block_stats(&self) -> (usize, u64);
}

impl Flushable for MetricsStore {
    type Record = pharos_metrics::store::record::MetricsRecord;
    const SIGNAL: &'static str = "metrics";
    const UNIT: &'static str = "samples";

    fn path(ingest: &Ingest) -> &SignalPath<Self::Record> {
        &ingest.metrics
    }
    fn should_flush(&self) -> bool {
        MetricsStore::should_flush(self)
    }
    fn freeze(&self, _segment: u64) -> u64 {
        MetricsStore::freeze(self)
    }
    async fn flush_frozen(&self) -> anyhow::Result<usize> {
        Ok(MetricsStore::flush_frozen(self).await?.blocks)
    }
    fn checkpoint(&self) -> Vec<Self::Record> {
        // The segments about to go may hold metadata the store was fed; it lives on in
        // this checkpoint. It needs no ticket: applying it would change nothing.
        self.metadata_checkpoint()
    }
    async fn maintain(&self) -> anyhow::Result<Maintained> {
        let m = MetricsStore::maintain(self).await?;
        Ok(Maintained {
            compacted: m.compacted,
            created: m.created,
            dropped: m.dropped,
        })
    }
    fn block_stats(&self) -> (usize, u64) {
        MetricsStore::block_stats(self)
    }
}

impl Flushable for TraceStore {
    type Record = TraceBatch;
    const SIGNAL: &'static str = "traces";
    const UNIT: &'static str = "spans";

    fn path(ingest: &Ingest) -> &SignalPath<Self::Record> {
        &ingest.traces
    }
    fn should_flush(&self) -> bool {
        TraceStore::should_flush(self)
    }
    fn freeze(&self, _segment: u64) -> u64 {
        TraceStore::freeze(self)
    }
    async fn flush_frozen(&self) -> anyhow::Result<usize> {
        Ok(TraceStore::flush_frozen(self).await?.blocks)
    }
    async fn maintain(&self) -> anyhow::Result<Maintained> {
        let m = TraceStore::maintain(self).await?;
        Ok(Maintained {
            compacted: m.compacted,
            created: m.created,
            dropped: m.dropped,
        })
    }
    fn block_stats(&self) -> (usize, u64) {
        TraceStore::block_stats(self)
    }
}

impl Flushable for pharos_logs::LogStore {
    type Record = pharos_logs::LogsRecord;
    const SIGNAL: &'static str = "logs";
    const UNIT: &'static str = "entries";

    fn path(ingest: &Ingest) -> &SignalPath<Self::Record> {
        &ingest.logs
    }
    fn should_flush(&self) -> bool {
        pharos_logs::LogStore::should_flush(self)
    }
    fn freeze(&self, segment: u64) -> u64 {
        pharos_logs::LogStore::freeze(self, Some(segment))
    }
    async fn flush_frozen(&self) -> anyhow::Result<usize> {
        Ok(pharos_logs::LogStore::flush_frozen(self).await?)
    }
    async fn maintain(&self) -> anyhow::Result<Maintained> {
        let m = pharos_logs::LogStore::maintain(self).await?;
        Ok(Maintained {
            compacted: m.compacted,
            created: m.created,
            dropped: m.dropped,
        })
    }
    fn block_stats(&self) -> (usize, u64) {
        pharos_logs::LogStore::block_stats(self)
    }
}

/// One flush or maintenance pass at a time, for one store.
pub struct Flusher<S: Flushable> {
    ingest: Arc<Ingest>,
    store: Arc<S>,
    metrics: Arc<SelfMetrics>,
    /// The log segment from which on the log is still needed, once the frozen parts are
    /// written; held until then.
    pending_segment: tokio::sync::Mutex<Option<u64>>,
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Samples or spans frozen.
    pub frozen: u64,
    pub blocks_written: usize,
    pub wal_bytes_freed: u64,
    pub compacted: usize,
    pub dropped: usize,
}

impl<S: Flushable> Flusher<S> {
    pub fn new(ingest: Arc<Ingest>, store: Arc<S>, metrics: Arc<SelfMetrics>) -> Self {
        Flusher {
            ingest,
            store,
            metrics,
            pending_segment: tokio::sync::Mutex::new(None),
        }
    }

    fn signal() -> SignalLabels {
        SignalLabels {
            signal: S::SIGNAL.into(),
        }
    }

    fn count_writes(&self, kind: &str, n: usize) {
        if n > 0 {
            self.metrics
                .block_writes
                .get_or_create(&BlockWriteLabels {
                    signal: S::SIGNAL.into(),
                    kind: kind.into(),
                })
                .inc_by(n as u64);
        }
    }

    /// Flushes the head when it is due (always with `force`), writes what is frozen,
    /// frees the log, then compacts and applies retention.
    pub async fn run_once(&self, force: bool) -> anyhow::Result<Outcome> {
        let mut pending = self.pending_segment.lock().await;
        let mut out = Outcome::default();
        let path = S::path(&self.ingest);
        if force || self.store.should_flush() {
            let store = self.store.clone();
            let (frozen, segment) = path
                .at_rotation(move |segment| store.freeze(segment))
                .await?;
            out.frozen = frozen;
            *pending = Some(segment);
        }
        let flushed = self.store.flush_frozen().await;
        out.blocks_written = self.count_failure(flushed)?;
        self.count_writes("flush", out.blocks_written);
        if let Some(segment) = *pending {
            for record in self.store.checkpoint() {
                path.wal.append(record.to_record()).await?;
            }
            *pending = None;
            out.wal_bytes_freed = path.wal.remove_segments_before(segment)?;
        }
        let maintained = self.store.maintain().await;
        let maintained = self.count_failure(maintained)?;
        out.compacted = maintained.compacted;
        out.dropped = maintained.dropped;
        self.count_writes("compaction", maintained.created);
        self.metrics
            .blocks_dropped
            .get_or_create(&Self::signal())
            .inc_by(maintained.dropped as u64);
        self.update_gauges();
        if out.frozen > 0 || out.compacted > 0 || out.dropped > 0 {
            tracing::info!(signal = S::SIGNAL, ?out, "blocks written");
        }
        Ok(out)
    }

    /// Says what a pass did, as `/internal/force_flush` answers.
    pub fn describe(out: &Outcome) -> String {
        format!(
            "flushed {} {} into {} blocks; freed {} bytes of log; compacted {} blocks; dropped {}",
            out.frozen,
            S::UNIT,
            out.blocks_written,
            out.wal_bytes_freed,
            out.compacted,
            out.dropped
        )
    }

    fn count_failure<T>(&self, r: anyhow::Result<T>) -> anyhow::Result<T> {
        r.inspect_err(|_| {
            self.metrics
                .block_failures
                .get_or_create(&Self::signal())
                .inc();
        })
    }

    /// Sets the block gauges of the self-metrics.
    pub fn update_gauges(&self) {
        let (count, bytes) = self.store.block_stats();
        self.metrics
            .blocks
            .get_or_create(&Self::signal())
            .set(count as i64);
        self.metrics
            .block_bytes
            .get_or_create(&Self::signal())
            .set(bytes as i64);
    }

    /// Checks ten times a second whether the head is due (at hundreds of MiB/s of
    /// ingest, a second lets the head outgrow its bound many times over), and maintains
    /// blocks every minute.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        loop {
            tick.tick().await;
            ticks += 1;
            if !self.store.should_flush() && !ticks.is_multiple_of(600) {
                continue;
            }
            if let Err(e) = self.run_once(false).await {
                tracing::error!(signal = S::SIGNAL, error = %format!("{e:#}"), "writing blocks failed; will retry");
            }
        }
    }
}
