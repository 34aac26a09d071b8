//! The metrics head's way into blocks, driven from the binary because it needs both the
//! store and the write-ahead log: freeze the head at a rotation of the log, write the
//! frozen samples as blocks, then delete the log segments they came from; compact and
//! apply retention after each flush and once a minute.
//!
//! Metric metadata is not in blocks: before the segments are deleted, the store's whole
//! metadata map is appended to the log as metadata-only records (a checkpoint, after the
//! rotation, so in a segment that stays), and replays from there.

use crate::ingest::Ingest;
use pharos_metrics::MetricsStore;
use pharos_model::telemetry::{BlockWriteLabels, SelfMetrics, SignalLabels};
use std::sync::Arc;
use std::time::Duration;

/// One flush or maintenance pass at a time, for the metrics store.
pub struct Flusher {
    ingest: Arc<Ingest>,
    store: Arc<MetricsStore>,
    metrics: Arc<SelfMetrics>,
    /// The log segment from which on the log is still needed, once the frozen parts are
    /// written; held until then.
    pending_segment: tokio::sync::Mutex<Option<u64>>,
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub frozen_samples: u64,
    pub blocks_written: usize,
    pub wal_bytes_freed: u64,
    pub compacted: usize,
    pub dropped: usize,
}

impl Flusher {
    pub fn new(ingest: Arc<Ingest>, store: Arc<MetricsStore>, metrics: Arc<SelfMetrics>) -> Self {
        Flusher {
            ingest,
            store,
            metrics,
            pending_segment: tokio::sync::Mutex::new(None),
        }
    }

    fn signal() -> SignalLabels {
        SignalLabels {
            signal: "metrics".into(),
        }
    }

    /// Flushes the head when it is due (always with `force`), writes what is frozen,
    /// frees the log, then compacts and applies retention.
    pub async fn run_once(&self, force: bool) -> anyhow::Result<Outcome> {
        let mut pending = self.pending_segment.lock().await;
        let mut out = Outcome::default();
        if force || self.store.should_flush() {
            let store = self.store.clone();
            let (samples, segment) = self
                .ingest
                .metrics
                .at_rotation(move || store.freeze())
                .await?;
            out.frozen_samples = samples;
            *pending = Some(segment);
        }
        let flushed = self.store.flush_frozen().await;
        let flushed = self.count_failure(flushed)?;
        out.blocks_written = flushed.blocks;
        if flushed.blocks > 0 {
            self.metrics
                .block_writes
                .get_or_create(&BlockWriteLabels {
                    signal: "metrics".into(),
                    kind: "flush".into(),
                })
                .inc_by(flushed.blocks as u64);
        }
        if let Some(segment) = *pending {
            // The segments about to go may hold metadata the store was fed; it lives on in
            // this checkpoint. It needs no ticket: applying it would change nothing.
            for record in self.store.metadata_checkpoint() {
                use prost::Message;
                self.ingest
                    .metrics
                    .wal
                    .append(record.encode_to_vec())
                    .await?;
            }
            *pending = None;
            out.wal_bytes_freed = self.ingest.metrics.wal.remove_segments_before(segment)?;
        }
        let maintained = self.store.maintain().await;
        let maintained = self.count_failure(maintained)?;
        out.compacted = maintained.compacted;
        out.dropped = maintained.dropped;
        if maintained.created > 0 {
            self.metrics
                .block_writes
                .get_or_create(&BlockWriteLabels {
                    signal: "metrics".into(),
                    kind: "compaction".into(),
                })
                .inc_by(maintained.created as u64);
        }
        self.metrics
            .blocks_dropped
            .get_or_create(&Self::signal())
            .inc_by(maintained.dropped as u64);
        self.update_gauges();
        if out.frozen_samples > 0 || out.compacted > 0 || out.dropped > 0 {
            tracing::info!(?out, "metrics blocks written");
        }
        Ok(out)
    }

    fn count_failure<T>(
        &self,
        r: Result<T, pharos_metrics::store::EngineError>,
    ) -> anyhow::Result<T> {
        r.inspect_err(|_| {
            self.metrics
                .block_failures
                .get_or_create(&Self::signal())
                .inc();
        })
        .map_err(Into::into)
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

    /// Checks every second whether the head is due, and maintains blocks every minute.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        loop {
            tick.tick().await;
            ticks += 1;
            if !self.store.should_flush() && !ticks.is_multiple_of(60) {
                continue;
            }
            if let Err(e) = self.run_once(false).await {
                tracing::error!(error = %format!("{e:#}"), "writing metrics blocks failed; will retry");
            }
        }
    }
}
