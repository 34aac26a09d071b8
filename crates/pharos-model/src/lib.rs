//! The shared data model of Pharos: what every slice agrees on.
//!
//! Pharos keeps OTLP's own protobuf types (from `opentelemetry-proto`) as its
//! in-flight data model: receivers decode into them, the write-ahead log stores
//! them encoded, and each signal store applies them to its head. This crate
//! adds the few things every slice needs on top of those types:
//!
//! - [`Store`]: the seam between the ingest path and a signal's store.
//! - [`Rejected`]: what a store or validator refused, for OTLP `partial_success`.
//! - [`attrs`]: reading OTLP attribute values as strings.
//! - [`duration`]: Go-style duration strings.
//! - [`urlencoded`]: query strings and form bodies.
//! - [`telemetry`]: Pharos' own metrics, exposed on `/metrics`.
//!
//! Architecture invariant: this crate knows nothing of HTTP, gRPC or files.

pub mod attrs;
pub mod civil;
pub mod duration;
pub mod telemetry;
pub mod trace_batch;
pub mod urlencoded;
pub mod view;

pub use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};

/// The three OpenTelemetry signals Pharos stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    /// All signals, in a fixed order.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// Returns the lowercase name used in paths, metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// Returns the name OTLP uses for one item of this signal, as in
    /// `rejected_spans`, `rejected_data_points`, `rejected_log_records`.
    pub fn item_name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "data points",
            Signal::Logs => "log records",
        }
    }
}

/// Items refused out of a request, reported back as OTLP `partial_success`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejected {
    /// How many items (spans, data points, log records) were refused.
    pub count: u64,
    /// Why, in a human-readable line; empty when `count` is zero.
    pub message: String,
}

impl Rejected {
    /// Adds `n` refused items with a reason; the first reason of each kind is kept.
    pub fn add(&mut self, n: u64, reason: &str) {
        if n == 0 {
            return;
        }
        self.count += n;
        if !self.message.contains(reason) {
            if !self.message.is_empty() {
                self.message.push_str("; ");
            }
            self.message.push_str(reason);
        }
    }

    /// Folds another set of rejections into this one.
    pub fn merge(&mut self, other: Rejected) {
        if other.count > 0 {
            self.add(other.count, &other.message);
        }
    }
}

/// Why the ingest path refused a whole request, whatever the protocol; each
/// receiver maps it to its wire (HTTP status, gRPC code) in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The server is over its memory budget; the client should retry later.
    #[error("memory limit exceeded: {0}")]
    MemoryLimit(String),
    /// The server cannot take data now (WAL failure, shutting down).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// No pipeline takes this signal; retrying will not help.
    #[error("no pipeline: {0}")]
    NoPipeline(String),
}

impl IngestError {
    /// How long clients are told to wait before retrying; `None` when retrying cannot help.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            IngestError::MemoryLimit(_) => Some(std::time::Duration::from_secs(5)),
            IngestError::Unavailable(_) => Some(std::time::Duration::from_secs(10)),
            IngestError::NoPipeline(_) => None,
        }
    }

    /// The reason label used in self-metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::MemoryLimit(_) => "memory_limit",
            IngestError::Unavailable(_) => "unavailable",
            IngestError::NoPipeline(_) => "no_pipeline",
        }
    }
}

/// Counts the items of a request (spans, data points, log records).
pub trait ItemCount {
    /// Returns how many items the request carries.
    fn item_count(&self) -> u64;
}

impl ItemCount for ExportTraceServiceRequest {
    fn item_count(&self) -> u64 {
        self.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len() as u64)
            .sum()
    }
}

impl ItemCount for ExportLogsServiceRequest {
    fn item_count(&self) -> u64 {
        self.resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len() as u64)
            .sum()
    }
}

impl ItemCount for ExportMetricsServiceRequest {
    fn item_count(&self) -> u64 {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        self.resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| match &m.data {
                Some(Data::Gauge(g)) => g.data_points.len() as u64,
                Some(Data::Sum(s)) => s.data_points.len() as u64,
                Some(Data::Histogram(h)) => h.data_points.len() as u64,
                Some(Data::ExponentialHistogram(h)) => h.data_points.len() as u64,
                Some(Data::Summary(s)) => s.data_points.len() as u64,
                None => 0,
            })
            .sum()
    }
}

/// The seam between the ingest path and one signal's store.
///
/// The ingest path calls [`Store::sanitize`] on each request, appends what is
/// left to the signal's write-ahead log, and only then calls [`Store::apply`];
/// on start-up the log replays through [`Store::apply`] alone. `apply` must
/// therefore be deterministic: the same requests in the same order build the
/// same head.
pub trait Store<R>: Send + Sync + 'static {
    /// Removes from `req` the items this store cannot keep, and says why.
    fn sanitize(&self, req: &mut R) -> Rejected {
        let _ = req;
        Rejected::default()
    }

    /// Applies an accepted, already durable request to the in-memory head.
    fn apply(&self, req: &R);

    /// [`Store::apply`] for a request the caller is done with: a store that keeps parts
    /// of it may move them instead of copying. Must leave the head as `apply` would.
    fn apply_owned(&self, req: R) {
        self.apply(&req);
    }

    /// Returns an estimate of the head's memory use, in bytes, for the memory limiter.
    fn approx_bytes(&self) -> u64;
}

/// Loki 3's `default_resource_attributes_as_index_labels`: the OTLP resource attributes that
/// become log stream labels unless the configuration names others.
pub const LOKI_INDEX_LABELS: &[&str] = &[
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];
