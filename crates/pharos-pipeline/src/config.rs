//! The typed configuration tree.
//!
//! Every struct rejects unknown keys, so a typo is an error that names the
//! file, line and key rather than a setting silently ignored. Component maps
//! (`receivers`, `processors`, `exporters`) are keyed like the Collector's:
//! `type` or `type/name`, and the type picks the settings struct.

mod components;
pub mod connectors;
mod env;
pub mod prometheus;

pub use components::{
    BatchConfig, ComponentId, Exporter, GrpcConfig, HttpConfig, MemoryLimiterConfig, OtlpProtocols,
    OtlpReceiverConfig, Processor, Receiver,
};
pub use connectors::ConnectorsConfig;
pub use prometheus::PrometheusReceiverConfig;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The whole configuration; `Config::default()` is what runs with no file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Receivers by component id: `otlp` (gRPC and HTTP), `prometheus` (scraping).
    #[serde(deserialize_with = "components::component_map")]
    pub receivers: BTreeMap<ComponentId, Receiver>,
    /// Processors by component id: `batch`, `memory_limiter`.
    #[serde(deserialize_with = "components::component_map")]
    pub processors: BTreeMap<ComponentId, Processor>,
    /// Exporters by component id: `pharos`, the embedded store.
    #[serde(deserialize_with = "components::component_map")]
    pub exporters: BTreeMap<ComponentId, Exporter>,
    /// Which receivers feed which exporters through which processors.
    pub service: ServiceConfig,
    /// Where and how data is kept.
    pub storage: StorageConfig,
    /// How long each signal is kept.
    pub retention: RetentionConfig,
    /// The query APIs and UI.
    pub query: QueryConfig,
    /// Cardinality limits.
    pub limits: LimitsConfig,
    /// Metrics computed from traces: `spanmetrics`, `servicegraph`.
    pub connectors: ConnectorsConfig,
}

/// `limits`: bounds that turn runaway cardinality into a clear error rather than memory growth.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The most series one metric name may have; samples of further series are
    /// refused (OTLP `partial_success`, remote_write 400). 0 means no limit (the default).
    pub max_series_per_metric: u64,
    /// The most spans one trace may hold; further spans are refused (OTLP
    /// `partial_success`, `TRACE_TOO_LARGE`). Default 50 000; 0 means no limit.
    pub max_spans_per_trace: u64,
    /// The most bytes (the spans' OTLP encodings) one trace may hold; further spans
    /// are refused. Default 5 000 000, Tempo's `max_bytes_per_trace`; 0 means no limit.
    pub max_bytes_per_trace: u64,
    /// The longest log line, in bytes; longer ones are refused (Loki's `max_line_size`).
    /// Default 262 144 (256 KiB); 0 means no limit.
    pub max_line_size: u64,
    /// The most log streams the head holds; lines of further streams are refused (Loki's
    /// `max_global_streams_per_user`, push answers 429). Default 5000; 0 means no limit.
    pub max_streams: u64,
    /// The most label names of one log stream (Loki's `max_label_names_per_series`).
    /// Default 15; 0 means no limit.
    pub max_label_names_per_series: u64,
    /// How far behind its stream's newest line a log line may arrive (half of Loki's
    /// `max_chunk_age`). A Go duration; default `1h`; `0s` accepts any order.
    pub out_of_order_time_window: String,
    /// How far ahead of the clock a log line may be stamped (Loki's
    /// `creation_grace_period`). A Go duration; default `10m`; `0s` means no limit.
    pub creation_grace_period: String,
    /// How far behind the clock a log line may be stamped (Loki's
    /// `reject_old_samples_max_age`). A Go duration; default `0s`, no limit.
    pub reject_old_samples_max_age: String,
}

impl LimitsConfig {
    /// Returns `out_of_order_time_window`, `creation_grace_period` and
    /// `reject_old_samples_max_age`.
    ///
    /// # Errors
    ///
    /// When one is not a duration.
    pub fn log_durations(
        &self,
    ) -> Result<
        (
            std::time::Duration,
            std::time::Duration,
            std::time::Duration,
        ),
        String,
    > {
        let parse = |name: &str, v: &str| {
            components::parse_duration(v)
                .ok_or_else(|| format!("limits.{name}: {v:?} is not a duration such as 1h"))
        };
        Ok((
            parse("out_of_order_time_window", &self.out_of_order_time_window)?,
            parse("creation_grace_period", &self.creation_grace_period)?,
            parse(
                "reject_old_samples_max_age",
                &self.reject_old_samples_max_age,
            )?,
        ))
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_series_per_metric: 0,
            max_spans_per_trace: 50_000,
            max_bytes_per_trace: 5_000_000,
            max_line_size: 256 * 1024,
            max_streams: 5000,
            max_label_names_per_series: 15,
            out_of_order_time_window: "1h".into(),
            creation_grace_period: "10m".into(),
            reject_old_samples_max_age: "0s".into(),
        }
    }
}

/// `service`: the pipelines.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Pipelines by id: `traces`, `metrics`, `logs`, or `<signal>/<name>`.
    pub pipelines: BTreeMap<ComponentId, PipelineConfig>,
}

/// One pipeline: receivers → processors → exporters.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Receiver ids, each defined under `receivers`.
    pub receivers: Vec<ComponentId>,
    /// Processor ids in order, each defined under `processors`.
    pub processors: Vec<ComponentId>,
    /// Exporter ids, each defined under `exporters`.
    pub exporters: Vec<ComponentId>,
}

/// `storage`: the data directory and the write-ahead log.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The data directory; `--data-dir` overrides it.
    pub path: PathBuf,
    /// Write-ahead log settings.
    pub wal: WalConfig,
    /// Metrics blocks.
    pub metrics: MetricsStorageConfig,
    /// Trace blocks.
    pub traces: TracesStorageConfig,
    /// Log blocks and log streams.
    pub logs: LogsStorageConfig,
}

/// `storage.logs`: which OTLP resource attributes make log streams, and how the log head
/// becomes blocks (the same three settings as trace blocks; the head's bytes are its
/// entries' lines and metadata).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogsStorageConfig {
    /// OTLP resource attributes that become stream labels (dots and other characters
    /// turned into `_`); every other attribute is structured metadata. Default: Loki 3's
    /// `default_resource_attributes_as_index_labels` (`service.name`,
    /// `service.namespace`, `deployment.environment`, `k8s.*` names, ...). Keep it to
    /// low-cardinality attributes: each distinct set is a stream.
    pub index_labels: Vec<String>,
    /// The head is written out as a block once its oldest entry arrived this long ago.
    /// A Go duration; default `5m`.
    pub max_block_duration: String,
    /// ... or once its entries take this many bytes; default 128 MiB.
    pub max_block_bytes: u64,
    /// Blocks are merged within aligned windows of this length; default `1h`.
    pub compaction_window: String,
}

impl Default for LogsStorageConfig {
    fn default() -> Self {
        let t = TracesStorageConfig::default();
        LogsStorageConfig {
            index_labels: pharos_model::LOKI_INDEX_LABELS
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
            max_block_duration: t.max_block_duration,
            max_block_bytes: t.max_block_bytes,
            compaction_window: t.compaction_window,
        }
    }
}

impl LogsStorageConfig {
    /// Returns `max_block_duration` and `compaction_window`.
    ///
    /// # Errors
    ///
    /// When either is not a duration of at least one second.
    pub fn durations(&self) -> Result<(std::time::Duration, std::time::Duration), String> {
        TracesStorageConfig {
            max_block_duration: self.max_block_duration.clone(),
            max_block_bytes: self.max_block_bytes,
            compaction_window: self.compaction_window.clone(),
        }
        .durations()
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("./pharos-data"),
            wal: WalConfig::default(),
            metrics: MetricsStorageConfig::default(),
            traces: TracesStorageConfig::default(),
            logs: LogsStorageConfig::default(),
        }
    }
}

/// `storage.traces`: how the trace head becomes blocks.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TracesStorageConfig {
    /// The head is written out as a block once its first span arrived this long ago
    /// (Tempo's `max_block_duration`). A Go duration; default `5m`.
    pub max_block_duration: String,
    /// ... or once it holds this many bytes of spans (Tempo's `max_block_bytes`); default
    /// 128 MiB of OTLP bytes. The head keeps the requests as they arrived plus about 100
    /// bytes of index a span, so that is about its memory too.
    pub max_block_bytes: u64,
    /// Blocks are merged within aligned windows of this length (Tempo's
    /// `compaction_window`); default `1h`.
    pub compaction_window: String,
}

impl Default for TracesStorageConfig {
    fn default() -> Self {
        TracesStorageConfig {
            max_block_duration: "5m".into(),
            max_block_bytes: 128 << 20,
            compaction_window: "1h".into(),
        }
    }
}

impl TracesStorageConfig {
    /// Returns `max_block_duration` and `compaction_window`.
    ///
    /// # Errors
    ///
    /// When either is not a duration of at least one second.
    pub fn durations(&self) -> Result<(std::time::Duration, std::time::Duration), String> {
        let parse = |name: &str, v: &str| {
            components::parse_duration(v)
                .filter(|d| d.as_secs() >= 1)
                .ok_or_else(|| format!("{name}: {v:?} is not a duration of at least 1s such as 5m"))
        };
        Ok((
            parse("max_block_duration", &self.max_block_duration)?,
            parse("compaction_window", &self.compaction_window)?,
        ))
    }
}

/// `storage.metrics`: how the metrics head becomes blocks.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsStorageConfig {
    /// The span of a block written from the head (Prometheus'
    /// `storage.tsdb.min-block-duration`); blocks are aligned to it and compacted into 3x
    /// and 12x larger ones. A Go duration; default `2h`.
    pub block_duration: String,
    /// The head is written out once it holds this many samples (or half a block duration
    /// of data); default 8 000 000, about 128 MiB of head.
    pub head_max_samples: u64,
    /// How far behind the newest sample a sample may arrive out of order (Prometheus'
    /// `out_of_order_time_window`); default `0s`, none.
    pub out_of_order_window: String,
    /// Exemplars kept in memory across all series, oldest overwritten first (Prometheus'
    /// `storage.exemplars.max_exemplars`); default 100 000, 0 keeps none.
    pub max_exemplars: u64,
    /// Decoded block chunks kept in memory so repeated reads skip decoding, in bytes
    /// (16 per sample); default 64 MiB, 0 keeps none.
    pub decoded_cache_bytes: u64,
}

impl Default for MetricsStorageConfig {
    fn default() -> Self {
        MetricsStorageConfig {
            block_duration: "2h".into(),
            head_max_samples: 8_000_000,
            out_of_order_window: "0s".into(),
            max_exemplars: 100_000,
            decoded_cache_bytes: 64 << 20,
        }
    }
}

impl MetricsStorageConfig {
    /// Returns `block_duration` in milliseconds.
    ///
    /// # Errors
    ///
    /// When it is not a duration of at least one second.
    pub fn block_duration_ms(&self) -> Result<i64, String> {
        components::parse_duration(&self.block_duration)
            .map(|d| d.as_millis() as i64)
            .filter(|&ms| ms >= 1000)
            .ok_or_else(|| {
                format!(
                    "block_duration: {:?} is not a duration of at least 1s such as 2h",
                    self.block_duration
                )
            })
    }

    /// Returns `out_of_order_window` in milliseconds.
    ///
    /// # Errors
    ///
    /// When it is not a duration.
    pub fn out_of_order_window_ms(&self) -> Result<i64, String> {
        components::parse_duration(&self.out_of_order_window)
            .map(|d| d.as_millis() as i64)
            .ok_or_else(|| {
                format!(
                    "out_of_order_window: {:?} is not a duration such as 30m or 0s",
                    self.out_of_order_window
                )
            })
    }
}

/// When the write-ahead log calls fsync.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// Before every acknowledgement (group commit); nothing acknowledged is lost.
    #[default]
    Always,
    /// At most every `fsync_interval_ms`; a machine crash may lose that window.
    Interval,
    /// Never; the OS decides. For tests and throwaway data only.
    Never,
}

/// `storage.wal`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// `always` (default), `interval` or `never`.
    pub fsync: FsyncMode,
    /// The fsync period with `fsync: interval`, in milliseconds.
    pub fsync_interval_ms: u64,
    /// A new segment file starts past this size, in bytes.
    pub segment_max_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            fsync: FsyncMode::Always,
            fsync_interval_ms: 1000,
            segment_max_bytes: 128 << 20,
        }
    }
}

/// `retention`: how long each signal is kept, in hours.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Traces; Tempo's usual 14 days.
    pub traces_hours: u64,
    /// Metrics; Prometheus' default 15 days.
    pub metrics_hours: u64,
    /// Logs; 31 days.
    pub logs_hours: u64,
    /// The most bytes metrics blocks may take; the oldest blocks are deleted past it
    /// (Prometheus' `storage.tsdb.retention.size`). 0, the default, sets no limit.
    pub metrics_max_bytes: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            traces_hours: 14 * 24,
            metrics_hours: 15 * 24,
            logs_hours: 31 * 24,
            metrics_max_bytes: 0,
        }
    }
}

/// `query`: where the query APIs and UI listen.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// `host:port` of the Prometheus, Loki, Tempo and Jaeger APIs and the UI.
    pub endpoint: String,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            endpoint: "127.0.0.1:4319".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let otlp = ComponentId::new("otlp");
        let memory_limiter = ComponentId::new("memory_limiter");
        let batch = ComponentId::new("batch");
        let pharos = ComponentId::new("pharos");
        let pipeline = PipelineConfig {
            receivers: vec![otlp.clone()],
            processors: vec![memory_limiter.clone(), batch.clone()],
            exporters: vec![pharos.clone()],
        };
        Config {
            receivers: [(otlp, Receiver::Otlp(OtlpReceiverConfig::default()))].into(),
            processors: [
                (
                    memory_limiter,
                    Processor::MemoryLimiter(MemoryLimiterConfig::default()),
                ),
                (batch, Processor::Batch(BatchConfig::default())),
            ]
            .into(),
            exporters: [(pharos, Exporter::Pharos)].into(),
            service: ServiceConfig {
                pipelines: ["traces", "metrics", "logs"]
                    .into_iter()
                    .map(|s| (ComponentId::new(s), pipeline.clone()))
                    .collect(),
            },
            storage: StorageConfig::default(),
            retention: RetentionConfig::default(),
            query: QueryConfig::default(),
            limits: LimitsConfig::default(),
            connectors: ConnectorsConfig::default(),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file named.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key or a wrong type.
    #[error("{file}: {message}")]
    Parse {
        /// The file named.
        file: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parsed but does not make sense (a pipeline names a missing component, ...).
    #[error("{file}: {message}")]
    Invalid {
        /// The file named.
        file: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads, expands `${env:VAR}` in, parses and validates a YAML file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, and for parse errors the line, column and key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Config::from_yaml(&file, &text)
    }

    /// Parses and validates YAML text; `file` names it in errors.
    ///
    /// # Errors
    /// See [`Config::load`].
    pub fn from_yaml(file: &str, text: &str) -> Result<Config, ConfigError> {
        let expanded = env::expand(text, |name| std::env::var(name).ok()).map_err(|message| {
            ConfigError::Parse {
                file: file.into(),
                message,
            }
        })?;
        let config: Config = if expanded.trim().is_empty() {
            Config::default()
        } else {
            serde_saphyr::from_str(&expanded).map_err(|e| ConfigError::Parse {
                file: file.into(),
                message: e.to_string(),
            })?
        };
        config.validate().map_err(|message| ConfigError::Invalid {
            file: file.into(),
            message,
        })?;
        Ok(config)
    }

    /// Checks what types alone cannot: references between sections, endpoints, limits.
    fn validate(&self) -> Result<(), String> {
        self.limits.log_durations()?;
        for (id, pipeline) in &self.service.pipelines {
            if !matches!(id.kind(), "traces" | "metrics" | "logs") {
                return Err(format!(
                    "service.pipelines: unknown signal {:?} in pipeline {id}; expected traces, metrics or logs",
                    id.kind()
                ));
            }
            if pipeline.receivers.is_empty() || pipeline.exporters.is_empty() {
                return Err(format!(
                    "service.pipelines.{id}: needs at least one receiver and one exporter"
                ));
            }
            for r in &pipeline.receivers {
                let Some(receiver) = self.receivers.get(r) else {
                    return Err(format!(
                        "service.pipelines.{id}.receivers: {r} is not defined under receivers"
                    ));
                };
                if matches!(receiver, Receiver::Prometheus(_)) && id.kind() != "metrics" {
                    return Err(format!(
                        "service.pipelines.{id}.receivers: {r} receives metrics only"
                    ));
                }
            }
            for p in &pipeline.processors {
                if !self.processors.contains_key(p) {
                    return Err(format!(
                        "service.pipelines.{id}.processors: {p} is not defined under processors"
                    ));
                }
            }
            for e in &pipeline.exporters {
                if !self.exporters.contains_key(e) {
                    return Err(format!(
                        "service.pipelines.{id}.exporters: {e} is not defined under exporters"
                    ));
                }
            }
        }
        for (id, r) in &self.receivers {
            let otlp = match r {
                Receiver::Otlp(otlp) => otlp,
                Receiver::Prometheus(p) => {
                    p.validate().map_err(|e| format!("receivers.{id}.{e}"))?;
                    continue;
                }
            };
            if otlp.protocols.grpc.is_none() && otlp.protocols.http.is_none() {
                return Err(format!(
                    "receivers.{id}.protocols: enable grpc, http or both"
                ));
            }
            for endpoint in otlp.endpoints() {
                check_endpoint(&format!("receivers.{id}.protocols"), endpoint)?;
            }
        }
        for (id, p) in &self.processors {
            if let Processor::MemoryLimiter(m) = p {
                m.check_interval()
                    .map_err(|e| format!("processors.{id}.{e}"))?;
            }
        }
        check_endpoint("query.endpoint", &self.query.endpoint)?;
        self.connectors
            .validate()
            .map_err(|e| format!("connectors.{e}"))?;
        self.storage
            .metrics
            .block_duration_ms()
            .map_err(|e| format!("storage.metrics.{e}"))?;
        self.storage
            .metrics
            .out_of_order_window_ms()
            .map_err(|e| format!("storage.metrics.{e}"))?;
        self.storage
            .traces
            .durations()
            .map_err(|e| format!("storage.traces.{e}"))?;
        if self.storage.traces.max_block_bytes == 0 {
            return Err("storage.traces.max_block_bytes: must be above 0".into());
        }
        if self.storage.metrics.head_max_samples == 0 {
            return Err("storage.metrics.head_max_samples: must be above 0".into());
        }
        if self.storage.wal.fsync == FsyncMode::Interval && self.storage.wal.fsync_interval_ms == 0
        {
            return Err(
                "storage.wal.fsync_interval_ms: must be above 0 with fsync: interval".into(),
            );
        }
        if self.storage.wal.segment_max_bytes < 1 << 16 {
            return Err("storage.wal.segment_max_bytes: must be at least 65536".into());
        }
        Ok(())
    }

    /// Returns whether some pipeline of `signal` (`traces`, `metrics`, `logs`) exists.
    pub fn has_pipeline(&self, signal: &str) -> bool {
        self.service.pipelines.keys().any(|id| id.kind() == signal)
    }

    /// Returns the memory limiter of the pipelines, if any.
    pub fn memory_limiter(&self) -> Option<&MemoryLimiterConfig> {
        self.processors.values().find_map(|p| match p {
            Processor::MemoryLimiter(m) => Some(m),
            _ => None,
        })
    }
}

fn check_endpoint(what: &str, endpoint: &str) -> Result<(), String> {
    let ok = endpoint
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!("{what}: endpoint {endpoint:?} is not host:port"))
    }
}

#[cfg(test)]
mod tests;
