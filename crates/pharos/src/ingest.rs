//! The ingest path behind every receiver: memory limit, store sanitising,
//! the write-ahead log, then the head.
//!
//! Invariant: a request is acknowledged only after its WAL append returned
//! (durable under the default `fsync: always`), and it is applied to the
//! head before the acknowledgement, so a client can read what it just wrote.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use pharos_model::{ItemCount, Rejected, Signal, Store};
use pharos_otlp::{ConsumeError, Consumer};
use pharos_storage::Wal;
use std::sync::Arc;

/// One signal's store and log.
pub struct SignalPath<R> {
    pub signal: Signal,
    pub store: Arc<dyn Store<R>>,
    pub wal: Wal,
    /// Whether a pipeline of this signal is configured; if not, requests are refused.
    pub enabled: bool,
}

/// The memory budget over all heads.
pub struct MemoryLimiter {
    pub limit_bytes: u64,
}

/// The ingest path of all three signals.
pub struct Ingest {
    pub traces: SignalPath<ExportTraceServiceRequest>,
    pub metrics: SignalPath<ExportMetricsServiceRequest>,
    pub logs: SignalPath<ExportLogsServiceRequest>,
    pub limiter: MemoryLimiter,
}

impl Ingest {
    /// Returns the estimated memory of all heads, in bytes.
    pub fn head_bytes(&self) -> u64 {
        self.traces.store.approx_bytes()
            + self.metrics.store.approx_bytes()
            + self.logs.store.approx_bytes()
    }

    /// Flushes and closes every log.
    pub async fn close(&self) {
        for (signal, wal) in [
            (Signal::Traces, &self.traces.wal),
            (Signal::Metrics, &self.metrics.wal),
            (Signal::Logs, &self.logs.wal),
        ] {
            if let Err(e) = wal.close().await {
                tracing::error!(signal = signal.as_str(), error = %e, "closing the write-ahead log failed");
            }
        }
    }
}

/// Picks the path of one request type.
pub trait PathOf<R> {
    fn path(&self) -> &SignalPath<R>;
}

impl PathOf<ExportTraceServiceRequest> for Ingest {
    fn path(&self) -> &SignalPath<ExportTraceServiceRequest> {
        &self.traces
    }
}

impl PathOf<ExportMetricsServiceRequest> for Ingest {
    fn path(&self) -> &SignalPath<ExportMetricsServiceRequest> {
        &self.metrics
    }
}

impl PathOf<ExportLogsServiceRequest> for Ingest {
    fn path(&self) -> &SignalPath<ExportLogsServiceRequest> {
        &self.logs
    }
}

impl<R> Consumer<R> for Ingest
where
    Ingest: PathOf<R>,
    R: prost::Message + ItemCount + Send + Sync + 'static,
{
    async fn consume(&self, mut req: R) -> Result<Rejected, ConsumeError> {
        let path = self.path();
        if !path.enabled {
            return Err(ConsumeError::Unavailable(format!(
                "no {} pipeline is configured",
                path.signal.as_str()
            )));
        }
        let used = self.head_bytes();
        if used >= self.limiter.limit_bytes {
            return Err(ConsumeError::MemoryLimit(format!(
                "heads hold {used} bytes, the limit is {} bytes",
                self.limiter.limit_bytes
            )));
        }
        let rejected = path.store.sanitize(&mut req);
        if req.item_count() == 0 {
            return Ok(rejected);
        }
        path.wal
            .append(req.encode_to_vec())
            .await
            .map_err(|e| ConsumeError::Unavailable(format!("write-ahead log: {e}")))?;
        path.store.apply(&req);
        Ok(rejected)
    }
}

/// Opens a signal's log, replaying it into `store`.
pub fn open_path<R>(
    signal: Signal,
    store: Arc<dyn Store<R>>,
    dir: &std::path::Path,
    opts: pharos_storage::WalOptions,
    enabled: bool,
) -> anyhow::Result<SignalPath<R>>
where
    R: prost::Message + Default + 'static,
{
    let started = std::time::Instant::now();
    let mut undecodable = 0u64;
    let (wal, report) = Wal::open(dir, opts, |record| match R::decode(record) {
        Ok(req) => store.apply(&req),
        Err(_) => undecodable += 1,
    })
    .map_err(|e| {
        anyhow::anyhow!(
            "opening the {} write-ahead log in {}: {e}",
            signal.as_str(),
            dir.display()
        )
    })?;
    if undecodable > 0 {
        tracing::warn!(
            signal = signal.as_str(),
            undecodable,
            "skipped WAL records that do not decode"
        );
    }
    tracing::info!(
        signal = signal.as_str(),
        records = report.records,
        bytes = report.bytes,
        truncated = report.truncated.is_some(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "write-ahead log replayed"
    );
    Ok(SignalPath {
        signal,
        store,
        wal,
        enabled,
    })
}
