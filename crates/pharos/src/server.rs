//! Wiring: stores, write-ahead logs, receivers, query APIs, self-telemetry
//! and shutdown. Almost no logic of its own; each piece lives in its crate.

use crate::demo::Workload;
use crate::ingest::{Ingest, MemoryLimiter, open_path};
use anyhow::Context;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use pharos_model::Signal;
use pharos_model::telemetry::{
    HttpLabels, QueryErrorLabels, ReasonLabels, SelfMetrics, SignalLabels,
};
use pharos_otlp::Limits;
use pharos_pipeline::config::{Config, FsyncMode};
use pharos_storage::{FsyncPolicy, WalOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Where the server ended up listening (ports may come from the OS).
#[derive(Debug, Clone)]
pub struct Bound {
    pub otlp_grpc: Vec<SocketAddr>,
    pub otlp_http: Vec<SocketAddr>,
    pub query: SocketAddr,
}

/// Runs the server until SIGTERM or Ctrl-C, with an optional demo workload.
pub async fn run(config: Config, workload: Option<Workload>) -> anyhow::Result<()> {
    let self_metrics = Arc::new(SelfMetrics::new());
    let data = config.storage.path.clone();
    std::fs::create_dir_all(&data)
        .with_context(|| format!("creating the data directory {}", data.display()))?;
    // One process per data directory, as Prometheus does: a second one would delete the
    // first one's blocks in progress and write into its log. Held until `run` returns.
    let _lock = lock_data_dir(&data)?;

    let metrics_store = Arc::new(pharos_metrics::MetricsStore::with_max_series_per_metric(
        usize::try_from(config.limits.max_series_per_metric).unwrap_or(usize::MAX),
    ));
    metrics_store.set_out_of_order_window(
        config
            .storage
            .metrics
            .out_of_order_window_ms()
            .map_err(anyhow::Error::msg)?,
    );
    metrics_store.set_max_exemplars(
        usize::try_from(config.storage.metrics.max_exemplars).unwrap_or(usize::MAX),
    );
    let block_options = pharos_metrics::store::BlockOptions {
        block_duration_ms: config
            .storage
            .metrics
            .block_duration_ms()
            .map_err(anyhow::Error::msg)?,
        retention_ms: i64::try_from(config.retention.metrics_hours)
            .unwrap_or(i64::MAX / 3_600_000)
            .saturating_mul(3_600_000),
        retention_bytes: config.retention.metrics_max_bytes,
        head_max_samples: config.storage.metrics.head_max_samples,
        decoded_cache_bytes: config.storage.metrics.decoded_cache_bytes,
    };
    let block_dir = data.join("blocks").join("metrics");
    let opened = metrics_store
        .open_blocks(
            pharos_storage::BlockStore::local(&block_dir)?,
            block_options,
        )
        .await
        .with_context(|| format!("opening the metrics blocks in {}", block_dir.display()))?;
    tracing::info!(
        blocks = opened.blocks,
        samples = opened.samples,
        incomplete_removed = opened.incomplete_removed,
        parents_removed = opened.parents_removed,
        unreadable = opened.unreadable.len(),
        "metrics blocks loaded"
    );
    let trace_store = Arc::new(pharos_traces::TraceStore::with_limits(
        pharos_traces::store::TraceLimits {
            max_spans_per_trace: usize::try_from(config.limits.max_spans_per_trace)
                .unwrap_or(usize::MAX),
            max_bytes_per_trace: config.limits.max_bytes_per_trace,
        },
    ));
    let (max_head_age, compaction_window) = config
        .storage
        .traces
        .durations()
        .map_err(anyhow::Error::msg)?;
    let trace_block_dir = data.join("blocks").join("traces");
    let opened = trace_store
        .open_blocks(
            pharos_storage::BlockStore::local(&trace_block_dir)?,
            pharos_traces::store::BlockOptions {
                max_head_age,
                head_max_bytes: config.storage.traces.max_block_bytes,
                retention: Duration::from_secs(config.retention.traces_hours.saturating_mul(3600)),
                compaction_window,
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("opening the trace blocks in {}", trace_block_dir.display()))?;
    tracing::info!(
        blocks = opened.blocks,
        spans = opened.spans,
        incomplete_removed = opened.incomplete_removed,
        parents_removed = opened.parents_removed,
        unreadable = opened.unreadable.len(),
        "trace blocks loaded"
    );
    let (ooo_window, grace, max_age) = config
        .limits
        .log_durations()
        .map_err(|e| anyhow::anyhow!(e))?;
    let as_ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let log_store = Arc::new(pharos_logs::LogStore::with_limits(pharos_logs::LogLimits {
        max_line_size: usize::try_from(config.limits.max_line_size).unwrap_or(usize::MAX),
        max_streams: usize::try_from(config.limits.max_streams).unwrap_or(usize::MAX),
        max_label_names: usize::try_from(config.limits.max_label_names_per_series)
            .unwrap_or(usize::MAX),
        out_of_order_window_ns: as_ns(ooo_window),
        creation_grace_ns: as_ns(grace),
        max_age_ns: as_ns(max_age),
        index_labels: config.storage.logs.index_labels.clone(),
    }));
    let (log_head_age, log_window) = config
        .storage
        .logs
        .durations()
        .map_err(anyhow::Error::msg)?;
    let log_block_dir = data.join("blocks").join("logs");
    let opened = log_store
        .open_blocks(
            pharos_storage::BlockStore::local(&log_block_dir)?,
            pharos_logs::BlockOptions {
                max_head_age: log_head_age,
                head_max_bytes: config.storage.logs.max_block_bytes,
                retention: Duration::from_secs(config.retention.logs_hours.saturating_mul(3600)),
                compaction_window: log_window,
            },
        )
        .await
        .with_context(|| format!("opening the log blocks in {}", log_block_dir.display()))?;
    tracing::info!(
        blocks = opened.blocks,
        entries = opened.entries,
        incomplete_removed = opened.incomplete_removed,
        parents_removed = opened.parents_removed,
        unreadable = opened.unreadable.len(),
        "log blocks loaded"
    );

    let wal_options = |signal: Signal| {
        let fsync_hist = self_metrics
            .wal_fsync
            .get_or_create(&SignalLabels {
                signal: signal.as_str().into(),
            })
            .clone();
        let bytes = self_metrics
            .wal_bytes
            .get_or_create(&SignalLabels {
                signal: signal.as_str().into(),
            })
            .clone();
        WalOptions {
            fsync: match config.storage.wal.fsync {
                FsyncMode::Always => FsyncPolicy::Always,
                FsyncMode::Interval => FsyncPolicy::Interval(Duration::from_millis(
                    config.storage.wal.fsync_interval_ms,
                )),
                FsyncMode::Never => FsyncPolicy::Never,
            },
            segment_max_bytes: config.storage.wal.segment_max_bytes,
            on_fsync: Some(Arc::new(move |d: Duration| {
                fsync_hist.observe(d.as_secs_f64())
            })),
            on_write: Some(Arc::new(move |n: u64| {
                bytes.inc_by(n);
            })),
            ..WalOptions::default()
        }
    };
    let wal_dir = data.join("wal");
    // Span metrics and the service graph observe the traces path (`connectors.rs`).
    let (traces_path_store, mut connectors) =
        crate::connectors::traces_store(&config, trace_store.clone());
    let ingest = Arc::new(Ingest {
        traces: open_path(
            Signal::Traces,
            traces_path_store,
            &wal_dir.join("traces"),
            wal_options(Signal::Traces),
            config.has_pipeline("traces"),
        )?,
        metrics: open_path(
            Signal::Metrics,
            metrics_store.clone(),
            &wal_dir.join("metrics"),
            wal_options(Signal::Metrics),
            config.has_pipeline("metrics"),
        )?,
        logs: open_path(
            Signal::Logs,
            log_store.clone(),
            &wal_dir.join("logs"),
            // Segments the log blocks cover (left by a crash between a flush and their
            // deletion) are dropped, not replayed a second time.
            WalOptions {
                covered_before: log_store.wal_covered().unwrap_or(0),
                ..wal_options(Signal::Logs)
            },
            config.has_pipeline("logs"),
        )?,
        limiter: MemoryLimiter::new(
            config
                .memory_limiter()
                .map(|m| m.limit_bytes(total_memory_bytes()))
                .unwrap_or(u64::MAX),
        ),
    });
    if let Some(c) = &mut connectors {
        c.start(&ingest);
    }
    if let Some(m) = config.memory_limiter() {
        // Validated with the config; the default is one second.
        let every = m.check_interval().unwrap_or(Duration::from_secs(1));
        let ingest = ingest.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Some(rss) = crate::ingest::resident_bytes() {
                    ingest.limiter.record_sample(rss, ingest.head_bytes());
                }
            }
        });
    }

    let flusher = Arc::new(crate::blocks::Flusher::new(
        ingest.clone(),
        metrics_store.clone(),
        self_metrics.clone(),
    ));
    flusher.update_gauges();
    let flush_loop = tokio::spawn(flusher.clone().run());
    let trace_flusher = Arc::new(crate::blocks::Flusher::new(
        ingest.clone(),
        trace_store.clone(),
        self_metrics.clone(),
    ));
    trace_flusher.update_gauges();
    let trace_flush_loop = tokio::spawn(trace_flusher.clone().run());
    let log_flusher = Arc::new(crate::blocks::Flusher::new(
        ingest.clone(),
        log_store.clone(),
        self_metrics.clone(),
    ));
    log_flusher.update_gauges();
    let log_flush_loop = tokio::spawn(log_flusher.clone().run());

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shutting_down = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();

    // Receivers named by some pipeline.
    let used: std::collections::BTreeSet<_> = config
        .service
        .pipelines
        .values()
        .flat_map(|p| p.receivers.iter().cloned())
        .collect();
    let mut bound_grpc = Vec::new();
    let mut bound_http = Vec::new();
    for id in &used {
        let Some(otlp) = config.receivers[id].as_otlp() else {
            continue;
        };
        if let Some(grpc) = &otlp.protocols.grpc {
            let listener = bind(&grpc.endpoint).await?;
            bound_grpc.push(listener.local_addr()?);
            let limits = Limits {
                max_request_body_bytes: (grpc.max_recv_msg_size_mib << 20) as usize,
            };
            let (t, m, l) =
                pharos_otlp::grpc::services(ingest.clone(), self_metrics.clone(), limits);
            let mut rx = shutdown_rx.clone();
            tasks.spawn(async move {
                tonic::transport::Server::builder()
                    // OTLP requests run to hundreds of KiB: windows that hold several of
                    // them let clients send without waiting for window updates (three
                    // times the bench's rate). Frames stay at 16 KiB: tonic reserves a
                    // message's length once its header is read, and a first frame holding
                    // the whole message made it copy the message a second time.
                    .initial_stream_window_size(Some(4 << 20))
                    .initial_connection_window_size(Some(16 << 20))
                    .add_service(t)
                    .add_service(m)
                    .add_service(l)
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(listener),
                        async move {
                            let _ = rx.wait_for(|v| *v).await;
                        },
                    )
                    .await
                    .context("OTLP/gRPC server")
            });
        }
        if let Some(http) = &otlp.protocols.http {
            let listener = bind(&http.endpoint).await?;
            bound_http.push(listener.local_addr()?);
            let limits = Limits {
                max_request_body_bytes: http.max_request_body_size as usize,
            };
            // Prometheus remote_write (`/api/v1/write`) and Loki push (`/loki/api/v1/push`)
            // share the port and its body limit.
            let app = pharos_otlp::http::router(ingest.clone(), self_metrics.clone(), limits)
                .merge(pharos_metrics::remote_write::router(
                    ingest.clone(),
                    self_metrics.clone(),
                    limits.max_request_body_bytes,
                ))
                .merge(pharos_logs::push::router(
                    ingest.clone(),
                    self_metrics.clone(),
                    limits.max_request_body_bytes,
                ));
            tasks.spawn(serve_http(
                listener,
                with_http_metrics(app, "otlp_http", &self_metrics),
                shutdown_rx.clone(),
            ));
        }
    }

    // Prometheus receivers named by some pipeline scrape their targets.
    let mut scrapers = Vec::new();
    for id in &used {
        if let Some(p) = config.receivers[id].as_prometheus() {
            let pools =
                crate::scrape::pools(p).map_err(|e| anyhow::anyhow!("receivers.{id}: {e}"))?;
            scrapers.push(crate::scrape::start(ingest.clone(), pools));
        }
    }

    let query_listener = bind(&config.query.endpoint).await?;
    let bound = Bound {
        otlp_grpc: bound_grpc,
        otlp_http: bound_http,
        query: query_listener.local_addr()?,
    };
    let own = Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/internal/force_flush", get(force_flush).post(force_flush))
        .with_state(Own {
            metrics: self_metrics.clone(),
            ingest: ingest.clone(),
            shutting_down: shutting_down.clone(),
            flusher: flusher.clone(),
            trace_flusher: trace_flusher.clone(),
            log_flusher: log_flusher.clone(),
            metrics_store: metrics_store.clone(),
            trace_store: trace_store.clone(),
        });
    let query_app = own
        .merge(match scrapers.first() {
            None => pharos_metrics::api::router(metrics_store.clone()),
            Some(_) => {
                let managers = scrapers.clone();
                pharos_metrics::api::router_with_targets(
                    metrics_store.clone(),
                    Arc::new(move || {
                        let mut all = pharos_metrics::scrape::TargetsSnapshot::default();
                        for m in &managers {
                            let t = m.targets();
                            all.active.extend(t.active);
                            all.dropped.extend(t.dropped);
                        }
                        all
                    }),
                )
            }
        })
        .merge(pharos_traces::api::router(trace_store))
        .merge(pharos_logs::api::router(log_store));
    tasks.spawn(serve_http(
        query_listener,
        with_http_metrics(query_app, "query", &self_metrics),
        shutdown_rx.clone(),
    ));

    // One line on stdout that scripts and tests can read.
    println!(
        "pharos ready: otlp_grpc={} otlp_http={} query=http://{}",
        join(&bound.otlp_grpc),
        join(&bound.otlp_http),
        bound.query
    );
    tracing::info!(?bound, data_dir = %data.display(), "pharos is ready");

    if let Some(w) = workload {
        let Some(grpc) = bound.otlp_grpc.first().copied() else {
            anyhow::bail!("the demo needs an OTLP/gRPC receiver");
        };
        crate::demo::print_banner(&bound);
        let rx = shutdown_rx.clone();
        tasks.spawn(async move { crate::demo::run(w, grpc, rx).await });
    }

    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        Some(res) = tasks.join_next() => {
            // A server task ended on its own: report it and stop the rest.
            match res {
                Ok(Ok(())) => tracing::warn!("a server task ended; shutting down"),
                Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "a server task failed; shutting down"),
                Err(e) => tracing::error!(error = %e, "a server task panicked; shutting down"),
            }
        }
    }
    shutting_down.store(true, Ordering::SeqCst);
    for m in &scrapers {
        m.stop().await;
    }
    let _ = shutdown_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within 10s");
    }
    if let Some(c) = connectors {
        c.stop(&ingest).await;
    }
    // The head goes into blocks, so the next start replays (almost) nothing.
    flush_loop.abort();
    let _ = flush_loop.await;
    if let Err(e) = flusher.run_once(true).await {
        tracing::error!(error = %format!("{e:#}"), "writing the metrics head to blocks failed; the log keeps it");
    }
    trace_flush_loop.abort();
    let _ = trace_flush_loop.await;
    if let Err(e) = trace_flusher.run_once(true).await {
        tracing::error!(error = %format!("{e:#}"), "writing the trace head to blocks failed; the log keeps it");
    }
    log_flush_loop.abort();
    let _ = log_flush_loop.await;
    if let Err(e) = log_flusher.run_once(true).await {
        tracing::error!(error = %format!("{e:#}"), "writing the log head to blocks failed; the log keeps it");
    }
    ingest.close().await;
    tracing::info!("write-ahead logs flushed; bye");
    Ok(())
}

/// Takes an exclusive lock on `<data>/lock`, failing at once if another process holds it.
fn lock_data_dir(data: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = data.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "the data directory {} is in use by another Pharos (it holds {})",
            data.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

fn join(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

async fn bind(endpoint: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(endpoint)
        .await
        .with_context(|| format!("binding {endpoint}"))
}

async fn serve_http(
    listener: TcpListener,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|v| *v).await;
        })
        .await
        .context("HTTP server")
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn total_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(8 << 30)
}

#[derive(Clone)]
struct Own {
    metrics: Arc<SelfMetrics>,
    ingest: Arc<Ingest>,
    shutting_down: Arc<AtomicBool>,
    flusher: Arc<crate::blocks::Flusher<pharos_metrics::MetricsStore>>,
    trace_flusher: Arc<crate::blocks::Flusher<pharos_traces::TraceStore>>,
    log_flusher: Arc<crate::blocks::Flusher<pharos_logs::LogStore>>,
    metrics_store: Arc<pharos_metrics::MetricsStore>,
    trace_store: Arc<pharos_traces::TraceStore>,
}

/// Brings a counter up to `total`, a count the store keeps since start (only this
/// function increments these counters).
fn sync_counter(c: &prometheus_client::metrics::counter::Counter, total: u64) {
    let have = c.get();
    if total > have {
        c.inc_by(total - have);
    }
}

/// `/internal/force_flush` (VictoriaMetrics' name): writes the metrics head, the trace
/// head and the log head to blocks now, then compacts and applies retention; one line per signal.
async fn force_flush(State(own): State<Own>) -> Response {
    use crate::blocks::Flusher;
    let result = async {
        let metrics = own.flusher.run_once(true).await?;
        let traces = own.trace_flusher.run_once(true).await?;
        let logs = own.log_flusher.run_once(true).await?;
        anyhow::Ok(format!(
            "{}\n{}\n{}\n",
            Flusher::<pharos_metrics::MetricsStore>::describe(&metrics),
            Flusher::<pharos_traces::TraceStore>::describe(&traces),
            Flusher::<pharos_logs::LogStore>::describe(&logs)
        ))
    };
    match result.await {
        Ok(said) => said.into_response(),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("flush failed: {e:#}\n"),
        )
            .into_response(),
    }
}

async fn metrics_handler(State(own): State<Own>) -> Response {
    let store = &own.metrics_store;
    let stats = store.stats();
    sync_counter(&own.metrics.metrics_appended, stats.appended);
    for (reason, n) in store.refused_counts() {
        let c = own.metrics.metrics_refused.get_or_create(&ReasonLabels {
            reason: reason.into(),
        });
        sync_counter(&c, n);
    }
    for (reason, n) in [
        ("out_of_order", stats.out_of_order),
        ("duplicate", stats.duplicates),
        ("series_limit", stats.series_limit),
    ] {
        let c = own.metrics.metrics_dropped.get_or_create(&ReasonLabels {
            reason: reason.into(),
        });
        sync_counter(&c, n);
    }
    let traces = own.trace_store.limit_counts();
    for (family, n) in [
        (&own.metrics.traces_refused, traces.refused),
        (&own.metrics.traces_dropped, traces.dropped),
    ] {
        let c = family.get_or_create(&ReasonLabels {
            reason: "trace_too_large".into(),
        });
        sync_counter(&c, n);
    }
    for (signal, bytes) in [
        (Signal::Traces, own.ingest.traces.store.approx_bytes()),
        (Signal::Metrics, own.ingest.metrics.store.approx_bytes()),
        (Signal::Logs, own.ingest.logs.store.approx_bytes()),
    ] {
        own.metrics
            .head_bytes
            .get_or_create(&SignalLabels {
                signal: signal.as_str().into(),
            })
            .set(bytes as i64);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        own.metrics.encode(),
    )
        .into_response()
}

async fn readyz(State(own): State<Own>) -> Response {
    if own.shutting_down.load(Ordering::SeqCst) {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n",
        )
            .into_response()
    } else {
        "ready\n".into_response()
    }
}

async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}

fn with_http_metrics(app: Router, port: &'static str, metrics: &Arc<SelfMetrics>) -> Router {
    let metrics = metrics.clone();
    app.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let metrics = metrics.clone();
            async move {
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "unmatched".into());
                let start = Instant::now();
                let resp = next.run(req).await;
                if let Some(t) = resp.extensions().get::<pharos_metrics::api::ErrorType>() {
                    metrics
                        .query_errors
                        .get_or_create(&QueryErrorLabels {
                            route: route.clone(),
                            error_type: t.as_str().into(),
                        })
                        .inc();
                }
                metrics
                    .http_duration
                    .get_or_create(&HttpLabels {
                        port: port.into(),
                        route,
                        code: resp.status().as_u16().to_string(),
                    })
                    .observe(start.elapsed().as_secs_f64());
                resp
            }
        },
    ))
}
