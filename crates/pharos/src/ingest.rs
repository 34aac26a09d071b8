//! The ingest path behind every receiver: memory limit, store sanitising,
//! the write-ahead log, then the head.
//!
//! Invariants:
//! - a request is acknowledged only after its WAL append returned (durable
//!   under the default `fsync: always`), and it is applied to the head before
//!   the acknowledgement, so a client can read what it just wrote;
//! - requests are applied to the head in the order of the log, so the head
//!   after a replay is the head before the crash (delta-to-cumulative sums
//!   and out-of-order checks depend on it). Each request takes a ticket
//!   under the same lock as its WAL submit and waits for its turn to apply;
//! - once submitted, a request is applied even if its client goes away: the
//!   wait and the apply run in a task of their own.
//!
//! OTLP metrics and Prometheus remote_write share the metrics path: both are
//! wrapped in a [`MetricsRecord`] (a move, not a copy) and take the same
//! tickets, so the metrics log holds both in the order the head saw them.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use parking_lot::Mutex;
use pharos_logs::LogsRecord;
use pharos_logs::push::proto::PushRequest;
use pharos_logs::push::{PushError, PushSink};
use pharos_metrics::remote_write::{WriteError, WriteRequest, WriteSink};
use pharos_metrics::store::record::MetricsRecord;
use pharos_model::trace_batch::TraceBatch;
use pharos_model::{ItemCount, Rejected, Signal, Store};
use pharos_otlp::{ConsumeError, Consumer};
use pharos_storage::{Wal, WalError};
use std::sync::Arc;
use tokio::sync::watch;

/// How a request type is written to its log and read back on replay.
pub trait Logged: ItemCount + Send + Sync + Sized + 'static {
    /// The log record of the request.
    fn to_record(&self) -> std::borrow::Cow<'_, [u8]>;
    /// The request of a log record; `None` when it does not decode.
    fn from_record(record: &[u8]) -> Option<Self>;
    /// The record checked and compressed for `wal`.
    fn prepare(&self, wal: &Wal) -> Result<pharos_storage::wal::Prepared, WalError> {
        wal.prepare(self.to_record())
    }
}

macro_rules! logged_as_protobuf {
    ($($t:ty),*) => {$(
        impl Logged for $t {
            fn to_record(&self) -> std::borrow::Cow<'_, [u8]> {
                prost::Message::encode_to_vec(self).into()
            }
            fn from_record(record: &[u8]) -> Option<Self> {
                <$t as prost::Message>::decode(record).ok()
            }
        }
    )*};
}

logged_as_protobuf!(MetricsRecord);

impl Logged for LogsRecord {
    fn to_record(&self) -> std::borrow::Cow<'_, [u8]> {
        self.encode().into()
    }
    fn from_record(record: &[u8]) -> Option<Self> {
        LogsRecord::decode(record)
    }
    /// A push request kept whole is logged from the snappy bytes it arrived as.
    fn prepare(&self, wal: &Wal) -> Result<pharos_storage::wal::Prepared, WalError> {
        if let Some((prefix, snappy)) = self.snappy_record()
            && let Some(prepared) = wal.prepare_snappy_with_prefix(&prefix, snappy)
        {
            return prepared;
        }
        wal.prepare(self.to_record())
    }
}

/// A trace request is logged as the bytes it arrived as.
impl Logged for TraceBatch {
    /// The request's bytes, compressed for the log without a copy.
    fn to_record(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(self.bytes())
    }
    fn from_record(record: &[u8]) -> Option<Self> {
        TraceBatch::parse(prost::bytes::Bytes::copy_from_slice(record)).ok()
    }
}

/// One signal's store and log.
pub struct SignalPath<R> {
    pub signal: Signal,
    pub store: Arc<dyn Store<R>>,
    pub wal: Wal,
    /// Whether a pipeline of this signal is configured; if not, requests are refused.
    pub enabled: bool,
    /// The next ticket to hand out; held while submitting to the log.
    next_ticket: Mutex<u64>,
    /// The ticket whose turn it is to apply.
    turn: Arc<watch::Sender<u64>>,
}

/// Advances the turn when dropped, so a panicking apply cannot stall the queue.
struct TurnGuard(Arc<watch::Sender<u64>>);

impl Drop for TurnGuard {
    fn drop(&mut self) {
        self.0.send_modify(|t| *t += 1);
    }
}

/// The memory budget: the process' resident memory, sampled every
/// `check_interval`, plus what the heads grew since the sample.
pub struct MemoryLimiter {
    pub limit_bytes: u64,
    /// (resident bytes, head bytes) at the last sample; (0, 0) before the first.
    sample: Mutex<(u64, u64)>,
}

impl MemoryLimiter {
    /// A limiter with no sample yet: until one arrives, head bytes alone count.
    pub fn new(limit_bytes: u64) -> Self {
        MemoryLimiter {
            limit_bytes,
            sample: Mutex::new((0, 0)),
        }
    }

    /// Records a sample of resident memory and the heads' size at that moment.
    pub fn record_sample(&self, resident_bytes: u64, head_bytes: u64) {
        *self.sample.lock() = (resident_bytes, head_bytes);
    }

    /// Estimates memory in use now, given the heads' size now.
    pub fn estimate(&self, head_bytes_now: u64) -> u64 {
        let (resident, heads) = *self.sample.lock();
        if resident == 0 {
            head_bytes_now
        } else {
            resident + head_bytes_now.saturating_sub(heads)
        }
    }
}

/// Returns the process' resident set size, where the OS tells it.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The ingest path of all three signals.
pub struct Ingest {
    pub traces: SignalPath<TraceBatch>,
    /// OTLP metrics and remote_write, in one log of [`MetricsRecord`]s.
    pub metrics: SignalPath<MetricsRecord>,
    /// OTLP logs and Loki push, in one log of [`LogsRecord`]s.
    pub logs: SignalPath<LogsRecord>,
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

impl Consumer<TraceBatch> for Ingest {
    async fn consume(&self, req: TraceBatch) -> Result<Rejected, ConsumeError> {
        self.submit(&self.traces, req).await
    }
}

impl Consumer<ExportMetricsServiceRequest> for Ingest {
    async fn consume(&self, req: ExportMetricsServiceRequest) -> Result<Rejected, ConsumeError> {
        let record = MetricsRecord::from(req);
        self.submit(&self.metrics, record).await
    }
}

impl Consumer<ExportLogsServiceRequest> for Ingest {
    async fn consume(&self, req: ExportLogsServiceRequest) -> Result<Rejected, ConsumeError> {
        self.submit(&self.logs, LogsRecord::from(req)).await
    }
}

impl PushSink for Ingest {
    async fn push(
        &self,
        req: PushRequest,
        snappy: Option<prost::bytes::Bytes>,
    ) -> Result<Rejected, PushError> {
        self.submit(&self.logs, LogsRecord::from_push(req, snappy))
            .await
    }
}

impl WriteSink for Ingest {
    async fn write(&self, req: WriteRequest) -> Result<Rejected, WriteError> {
        // Series and metadata move into the record; a metadata-only request is logged too
        // (unless the store knows all of it already) and answered 204.
        let record = MetricsRecord::from_write_request(req);
        self.submit(&self.metrics, record).await
    }
}

impl Ingest {
    /// The ingest path of one request: pipeline and memory checks, `sanitize`,
    /// the log under a ticket, then `apply` in ticket order (see the module doc).
    async fn submit<R: Logged>(
        &self,
        path: &SignalPath<R>,
        mut req: R,
    ) -> Result<Rejected, ConsumeError> {
        if !path.enabled {
            return Err(ConsumeError::NoPipeline(format!(
                "no {} pipeline is configured",
                path.signal.as_str()
            )));
        }
        let used = self.limiter.estimate(self.head_bytes());
        if used >= self.limiter.limit_bytes {
            return Err(ConsumeError::MemoryLimit(format!(
                "using about {used} bytes, the limit is {} bytes",
                self.limiter.limit_bytes
            )));
        }
        let rejected = path.store.sanitize(&mut req);
        if req.item_count() == 0 {
            return Ok(rejected);
        }
        let unavailable = |e: pharos_storage::WalError| {
            ConsumeError::Unavailable(format!("write-ahead log: {e}"))
        };
        // Compressed before the lock, queued under it (the log's order is the apply order).
        let record = req.prepare(&path.wal).map_err(unavailable)?;
        let (ticket, pending) = {
            let mut next = path.next_ticket.lock();
            let pending = path.wal.submit_prepared(record).map_err(unavailable)?;
            *next += 1;
            (*next - 1, pending)
        };
        let store = path.store.clone();
        let turn = path.turn.clone();
        let applied = tokio::spawn(async move {
            let written = pending.await;
            let mut rx = turn.subscribe();
            // The sender lives as long as `turn`, which this task holds.
            let _ = rx.wait_for(|t| *t == ticket).await;
            let _advance = TurnGuard(turn);
            if written.is_ok() {
                store.apply_owned(req);
            }
            written
        });
        match applied.await {
            Ok(written) => written.map_err(unavailable)?,
            Err(e) => {
                return Err(ConsumeError::Unavailable(format!(
                    "applying to the head failed: {e}"
                )));
            }
        }
        Ok(rejected)
    }
}

/// Opens a signal's log, replaying it into `store`.
impl<R> SignalPath<R> {
    /// Runs `f` at a point of the log: after every request submitted before has been
    /// applied and before any submitted after is, with the log rotated at that same point.
    /// `f` is given, and this returns with `f`'s result, the new segment's number: the
    /// segments before it hold exactly the requests applied before `f` ran.
    pub async fn at_rotation<T: Send + 'static>(
        &self,
        f: impl FnOnce(u64) -> T + Send + 'static,
    ) -> anyhow::Result<(T, u64)> {
        let (ticket, rotated) = {
            let mut next = self.next_ticket.lock();
            let rotated = self.wal.submit_rotate()?;
            *next += 1;
            (*next - 1, rotated)
        };
        let turn = self.turn.clone();
        tokio::spawn(async move {
            let seq = rotated.await;
            let mut rx = turn.subscribe();
            // The sender lives as long as `turn`, which this task holds.
            let _ = rx.wait_for(|t| *t == ticket).await;
            let _advance = TurnGuard(turn);
            // No rotation, no freeze: the caller's contract is about that point of the log.
            let seq = seq?;
            Ok((f(seq), seq))
        })
        .await?
    }
}

pub fn open_path<R>(
    signal: Signal,
    store: Arc<dyn Store<R>>,
    dir: &std::path::Path,
    opts: pharos_storage::WalOptions,
    enabled: bool,
) -> anyhow::Result<SignalPath<R>>
where
    R: Logged,
{
    let started = std::time::Instant::now();
    let mut undecodable = 0u64;
    let (wal, report) = Wal::open(dir, opts, |record| match R::from_record(record) {
        Some(req) => store.apply_owned(req),
        None => undecodable += 1,
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
        next_ticket: Mutex::new(0),
        turn: Arc::new(watch::channel(0).0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    /// Records the order requests are applied in; each apply takes a while,
    /// so two applies running at once would finish out of order.
    #[derive(Default)]
    struct Recording(parking_lot::Mutex<Vec<u64>>);

    impl Store<LogsRecord> for Recording {
        fn apply(&self, req: &LogsRecord) {
            let id = req.wire.resource_logs[0].scope_logs[0].log_records[0].time_unix_nano;
            std::thread::sleep(std::time::Duration::from_micros(300 * (id % 3)));
            self.0.lock().push(id);
        }

        fn approx_bytes(&self) -> u64 {
            0
        }
    }

    fn request(id: u64) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        time_unix_nano: id,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn applies_follow_log_order() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let store = Arc::new(Recording::default());
        let opts = pharos_storage::WalOptions {
            fsync: pharos_storage::FsyncPolicy::Never,
            ..Default::default()
        };
        let path = open_path(Signal::Logs, store.clone(), dir.path(), opts.clone(), true).unwrap();
        let ingest = Arc::new(Ingest {
            traces: open_path(
                Signal::Traces,
                Arc::new(NoStore),
                &dir.path().join("t"),
                opts.clone(),
                true,
            )
            .unwrap(),
            metrics: open_path(
                Signal::Metrics,
                Arc::new(NoStore),
                &dir.path().join("m"),
                opts.clone(),
                true,
            )
            .unwrap(),
            logs: path,
            limiter: MemoryLimiter::new(u64::MAX),
        });
        rt.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for id in 0..300u64 {
                let ingest = ingest.clone();
                tasks.spawn(async move {
                    Consumer::<ExportLogsServiceRequest>::consume(&*ingest, request(id)).await
                });
            }
            while let Some(r) = tasks.join_next().await {
                r.unwrap().unwrap();
            }
            ingest.close().await;
        });
        let live = store.0.lock().clone();
        assert_eq!(live.len(), 300);
        let replayed = Arc::new(Recording::default());
        open_path(Signal::Logs, replayed.clone(), dir.path(), opts, true).unwrap();
        assert_eq!(
            *replayed.0.lock(),
            live,
            "the head must see requests in log order"
        );
    }

    #[test]
    fn limiter_adds_head_growth_to_the_last_sample() {
        let l = MemoryLimiter::new(100);
        assert_eq!(l.estimate(40), 40, "heads alone before the first sample");
        l.record_sample(70, 10);
        assert_eq!(l.estimate(10), 70);
        assert_eq!(l.estimate(45), 105);
        assert_eq!(
            l.estimate(5),
            70,
            "shrinking heads do not go below the sample"
        );
        assert!(
            resident_bytes().is_some_and(|b| b > 1 << 20),
            "Linux reports VmRSS"
        );
    }

    #[test]
    fn otlp_and_remote_write_share_the_metrics_log() {
        use opentelemetry_proto::tonic::metrics::v1::{
            Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
            number_data_point,
        };
        use pharos_metrics::MetricsStore;
        use pharos_metrics::remote_write::proto::{Label, Sample, TimeSeries};
        use pharos_metrics::store::{Matcher, Querier};
        use prost::Message;

        let t_ms: i64 = 1_700_000_000_000;
        let gauge = |name: &str, t_ms: i64| ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: name.into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: t_ms as u64 * 1_000_000,
                                value: Some(number_data_point::Value::AsDouble(2.5)),
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("metrics");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let opts = pharos_storage::WalOptions {
            fsync: pharos_storage::FsyncPolicy::Never,
            ..Default::default()
        };
        // A record from before the envelope: a plain ExportMetricsServiceRequest.
        rt.block_on(async {
            let (wal, _) = Wal::open(&wal_dir, opts.clone(), |_| {}).unwrap();
            wal.append(gauge("old", t_ms).encode_to_vec())
                .await
                .unwrap();
            wal.close().await.unwrap();
        });
        let live = Arc::new(MetricsStore::new());
        let no_store = || Arc::new(NoStore);
        let ingest = Ingest {
            traces: open_path(
                Signal::Traces,
                no_store(),
                &dir.path().join("t"),
                opts.clone(),
                true,
            )
            .unwrap(),
            metrics: open_path(Signal::Metrics, live.clone(), &wal_dir, opts.clone(), true)
                .unwrap(),
            logs: open_path(
                Signal::Logs,
                no_store(),
                &dir.path().join("l"),
                opts.clone(),
                true,
            )
            .unwrap(),
            limiter: MemoryLimiter::new(u64::MAX),
        };
        let remote = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("__name__", "rw"), Label::new("job", "j")],
                samples: vec![
                    Sample {
                        value: 1.0,
                        timestamp: t_ms,
                    },
                    Sample {
                        value: 2.0,
                        timestamp: t_ms - 1,
                    },
                ],
                ..Default::default()
            }],
            metadata: vec![],
        };
        rt.block_on(async {
            let r = Consumer::consume(&ingest, gauge("new", t_ms))
                .await
                .unwrap();
            assert_eq!(r, Rejected::default());
            let r = ingest.write(remote).await.unwrap();
            assert_eq!(r.count, 1, "the out-of-order sample is refused: {r:?}");
            ingest.close().await;
        });
        let everything = |s: &MetricsStore| {
            s.select(
                &[Matcher::regex("__name__", ".+", false).unwrap()],
                i64::MIN,
                i64::MAX,
            )
        };
        let before = everything(&live);
        assert_eq!(before.len(), 3, "{before:?}");
        let replayed = Arc::new(MetricsStore::new());
        open_path::<MetricsRecord>(Signal::Metrics, replayed.clone(), &wal_dir, opts, true)
            .unwrap();
        assert_eq!(everything(&replayed), before);
    }

    struct NoStore;

    impl<R> Store<R> for NoStore {
        fn apply(&self, _: &R) {}
        fn approx_bytes(&self) -> u64 {
            0
        }
    }
}
