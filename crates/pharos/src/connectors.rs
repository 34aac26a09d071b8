//! Runs the span-metrics and service-graph connectors (`pharos_traces::connectors`):
//! the traces path's store is wrapped so every applied request also updates the
//! connectors' aggregates, and a task writes them every `flush_interval` as one OTLP
//! metrics request through the metrics ingest path, so they are logged, kept and queried
//! like any other metrics.
//!
//! Only live requests count: the wrapper starts observing after the traces log has been
//! replayed, so a restart does not count old spans again (the cumulative series restart
//! from zero with a new start time, a counter reset to PromQL).

use crate::ingest::Ingest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use pharos_model::trace_batch::TraceBatch;
use pharos_model::{Rejected, Store};
use pharos_otlp::Consumer;
use pharos_pipeline::config::Config;
use pharos_traces::connectors::{Connectors, ServiceGraphConfig, SpanMetricsConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The traces store, observed by the connectors once live.
pub struct ObservedStore {
    inner: Arc<dyn Store<TraceBatch>>,
    connectors: Arc<Connectors>,
    live: AtomicBool,
}

impl ObservedStore {
    pub fn new(inner: Arc<dyn Store<TraceBatch>>, connectors: Arc<Connectors>) -> Arc<Self> {
        Arc::new(ObservedStore {
            inner,
            connectors,
            live: AtomicBool::new(false),
        })
    }

    /// Starts observing: call after the log's replay.
    pub fn go_live(&self) {
        self.live.store(true, Ordering::Release);
    }
}

impl Store<TraceBatch> for ObservedStore {
    fn sanitize(&self, req: &mut TraceBatch) -> Rejected {
        self.inner.sanitize(req)
    }

    fn apply(&self, req: &TraceBatch) {
        self.inner.apply(req);
        if self.live.load(Ordering::Acquire) {
            self.connectors.observe(req);
        }
    }

    fn apply_owned(&self, req: TraceBatch) {
        if self.live.load(Ordering::Acquire) {
            self.connectors.observe(&req);
        }
        self.inner.apply_owned(req);
    }

    fn approx_bytes(&self) -> u64 {
        self.inner.approx_bytes()
    }
}

fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The connectors the configuration enables, with the flush interval; `None` when both are
/// off or there is no traces or metrics pipeline to take them from and to.
pub fn from_config(config: &Config) -> Option<(Arc<Connectors>, Duration)> {
    let c = &config.connectors;
    if !config.has_pipeline("traces") || !config.has_pipeline("metrics") {
        return None;
    }
    let spanmetrics = c.spanmetrics.enabled.then(|| SpanMetricsConfig {
        dimensions: c.spanmetrics.dimensions.clone(),
        buckets: if c.spanmetrics.histogram_buckets.is_empty() {
            pharos_traces::connectors::default_spanmetrics_buckets()
        } else {
            c.spanmetrics.histogram_buckets.clone()
        },
    });
    let servicegraph = c.servicegraph.enabled.then(|| ServiceGraphConfig {
        max_items: usize::try_from(c.servicegraph.max_items).unwrap_or(usize::MAX),
        // Validated with the config.
        wait: c.servicegraph.wait().unwrap_or(Duration::from_secs(10)),
        buckets: if c.servicegraph.histogram_buckets.is_empty() {
            pharos_traces::connectors::default_servicegraph_buckets()
        } else {
            c.servicegraph.histogram_buckets.clone()
        },
    });
    let connectors = Connectors::new(spanmetrics, servicegraph, now_unix_nano());
    if !connectors.enabled() {
        return None;
    }
    let every = c
        .spanmetrics
        .flush_interval()
        .unwrap_or(Duration::from_secs(15));
    Some((Arc::new(connectors), every))
}

/// Writes the connectors' metrics once, if there are any.
pub async fn flush(connectors: &Connectors, ingest: &Ingest) {
    let Some(req) = connectors.export(now_unix_nano()) else {
        return;
    };
    let consumed: Result<Rejected, _> =
        Consumer::<ExportMetricsServiceRequest>::consume(ingest, req).await;
    match consumed {
        Ok(r) if r.count > 0 => {
            tracing::warn!(refused = r.count, message = %r.message, "the metrics store refused some connector points")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "writing the connectors' metrics failed"),
    }
}

/// Writes the connectors' metrics every `every`, forever.
pub async fn run(connectors: Arc<Connectors>, ingest: Arc<Ingest>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        flush(&connectors, &ingest).await;
    }
}

/// The running connectors: their aggregates and the task writing them.
pub struct Running {
    connectors: Arc<Connectors>,
    observed: Arc<ObservedStore>,
    every: Duration,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The store for the traces path: `trace_store`, wrapped when the configuration enables
/// a connector; the second value starts them once the log is replayed.
pub fn traces_store(
    config: &Config,
    trace_store: Arc<dyn Store<TraceBatch>>,
) -> (Arc<dyn Store<TraceBatch>>, Option<Running>) {
    match from_config(config) {
        None => (trace_store, None),
        Some((connectors, every)) => {
            let observed = ObservedStore::new(trace_store, connectors.clone());
            (
                observed.clone(),
                Some(Running {
                    connectors,
                    observed,
                    every,
                    task: None,
                }),
            )
        }
    }
}

impl Running {
    /// Starts observing applied requests and writing the metrics every flush interval.
    pub fn start(&mut self, ingest: &Arc<Ingest>) {
        self.observed.go_live();
        self.task = Some(tokio::spawn(run(
            self.connectors.clone(),
            ingest.clone(),
            self.every,
        )));
    }

    /// Stops the task and writes the metrics a last time.
    pub async fn stop(mut self, ingest: &Ingest) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        flush(&self.connectors, ingest).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use pharos_model::{ExportTraceServiceRequest, Signal};
    use prost::Message;

    fn request() -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: "s".into(),
                        start_time_unix_nano: 1,
                        end_time_unix_nano: 2,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn replayed_spans_are_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let opts = pharos_storage::WalOptions {
            fsync: pharos_storage::FsyncPolicy::Never,
            ..Default::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (wal, _) = pharos_storage::Wal::open(dir.path(), opts.clone(), |_| {}).unwrap();
            wal.append(request().encode_to_vec()).await.unwrap();
            wal.close().await.unwrap();
        });
        let config = Config::default();
        let trace_store = Arc::new(pharos_traces::TraceStore::new());
        let (store, running) = traces_store(&config, trace_store.clone());
        let running = running.expect("on by default");
        let path = crate::ingest::open_path(Signal::Traces, store, dir.path(), opts, true).unwrap();
        assert!(
            trace_store.approx_bytes() > 0,
            "the head has the replayed span"
        );
        assert!(running.connectors.export(10).is_none(), "not counted");
        running.observed.go_live();
        path.store.apply(&TraceBatch::from_request(&request()));
        let req = running.connectors.export(10).expect("counted once live");
        let names: Vec<&str> = req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["traces_spanmetrics_calls", "traces_spanmetrics_duration"],
            "an internal span makes no edge"
        );
    }
}
