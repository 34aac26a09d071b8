//! Pharos' own metrics, served in Prometheus text format on `/metrics`.
//!
//! Every component reports through one [`SelfMetrics`] handed to it at start,
//! never through a global, so tests can read the figures of one server. The
//! names follow one spec (see ARCHITECTURE.md, "Self-telemetry"):
//!
//! | metric | labels | meaning |
//! | --- | --- | --- |
//! | `pharos_receiver_accepted_items_total` | `receiver`, `signal` | spans, data points, log records stored |
//! | `pharos_receiver_refused_items_total` | `receiver`, `signal`, `reason` | items refused (`invalid`, `memory_limit`, `unavailable`, `no_pipeline`) |
//! | `pharos_wal_bytes_written_total` | `signal` | bytes appended to the write-ahead log |
//! | `pharos_wal_fsync_duration_seconds` | `signal` | histogram of fsync latency |
//! | `pharos_head_bytes` | `signal` | estimated memory held by each signal's head |
//! | `pharos_metrics_samples_appended_total` | | samples appended to the metrics head |
//! | `pharos_metrics_samples_refused_total` | `reason` | remote_write samples refused, and told to the client (`out_of_order`, `duplicate`, `out_of_bounds`, `series_limit`, `invalid_label_name`, ...) |
//! | `pharos_metrics_samples_dropped_total` | `reason` | samples dropped when applied to the head after the log (`out_of_order`, `duplicate`, `series_limit`): a race the client was not told of |
//! | `pharos_traces_spans_refused_total` | `reason` | spans refused and told to the client (`trace_too_large`: past `limits.max_spans_per_trace` or `max_bytes_per_trace`) |
//! | `pharos_traces_spans_dropped_total` | `reason` | spans dropped when applied to the head after the log (`trace_too_large`): a race the client was not told of |
//! | `pharos_query_errors_total` | `route`, `error_type` | Prometheus API errors by `errorType` (`bad_data`, `execution`, `timeout`, ...) |
//! | `pharos_blocks` | `signal` | blocks served |
//! | `pharos_block_bytes` | `signal` | bytes of the blocks served |
//! | `pharos_block_writes_total` | `signal`, `kind` | blocks written, by `flush` (from the head) or `compaction` |
//! | `pharos_blocks_dropped_total` | `signal` | blocks deleted by retention |
//! | `pharos_block_failures_total` | `signal` | flushes or compactions that failed (retried) |
//! | `pharos_http_request_duration_seconds` | `port`, `route`, `code` | histogram of HTTP request durations |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of `pharos_query_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryErrorLabels {
    pub route: String,
    pub error_type: String,
}

/// Labels carrying a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// Labels of `pharos_block_writes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BlockWriteLabels {
    pub signal: String,
    pub kind: String,
}

/// Labels of the receiver counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabels {
    pub receiver: String,
    pub signal: String,
}

/// Labels of the refused-items counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub receiver: String,
    pub signal: String,
    pub reason: String,
}

/// Labels carrying only the signal.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabels {
    pub signal: String,
}

/// Labels of the HTTP request histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub port: String,
    pub route: String,
    pub code: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ])
}

/// The registry of Pharos' own metrics and handles to each family.
pub struct SelfMetrics {
    registry: Registry,
    pub accepted: Family<ReceiverLabels, Counter>,
    pub refused: Family<RefusedLabels, Counter>,
    pub wal_bytes: Family<SignalLabels, Counter>,
    pub wal_fsync: Family<SignalLabels, Histogram, fn() -> Histogram>,
    pub head_bytes: Family<SignalLabels, Gauge>,
    pub metrics_appended: Counter,
    pub metrics_refused: Family<ReasonLabels, Counter>,
    pub metrics_dropped: Family<ReasonLabels, Counter>,
    pub traces_refused: Family<ReasonLabels, Counter>,
    pub traces_dropped: Family<ReasonLabels, Counter>,
    pub query_errors: Family<QueryErrorLabels, Counter>,
    pub blocks: Family<SignalLabels, Gauge>,
    pub block_bytes: Family<SignalLabels, Gauge>,
    pub block_writes: Family<BlockWriteLabels, Counter>,
    pub blocks_dropped: Family<SignalLabels, Counter>,
    pub block_failures: Family<SignalLabels, Counter>,
    pub http_duration: Family<HttpLabels, Histogram, fn() -> Histogram>,
}

impl Default for SelfMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SelfMetrics {
    /// Creates the registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let accepted = Family::<ReceiverLabels, Counter>::default();
        let refused = Family::<RefusedLabels, Counter>::default();
        let wal_bytes = Family::<SignalLabels, Counter>::default();
        let wal_fsync: Family<SignalLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let head_bytes = Family::<SignalLabels, Gauge>::default();
        let metrics_appended = Counter::default();
        let metrics_refused = Family::<ReasonLabels, Counter>::default();
        let metrics_dropped = Family::<ReasonLabels, Counter>::default();
        let traces_refused = Family::<ReasonLabels, Counter>::default();
        let traces_dropped = Family::<ReasonLabels, Counter>::default();
        let query_errors = Family::<QueryErrorLabels, Counter>::default();
        let blocks = Family::<SignalLabels, Gauge>::default();
        let block_bytes = Family::<SignalLabels, Gauge>::default();
        let block_writes = Family::<BlockWriteLabels, Counter>::default();
        let blocks_dropped = Family::<SignalLabels, Counter>::default();
        let block_failures = Family::<SignalLabels, Counter>::default();
        let http_duration: Family<HttpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "pharos_receiver_accepted_items",
            "Spans, data points and log records accepted and stored",
            accepted.clone(),
        );
        registry.register(
            "pharos_receiver_refused_items",
            "Spans, data points and log records refused, by reason",
            refused.clone(),
        );
        registry.register(
            "pharos_wal_bytes_written",
            "Bytes appended to the write-ahead log",
            wal_bytes.clone(),
        );
        registry.register(
            "pharos_wal_fsync_duration_seconds",
            "Latency of write-ahead log fsyncs",
            wal_fsync.clone(),
        );
        registry.register(
            "pharos_head_bytes",
            "Estimated memory held by each signal's in-memory head",
            head_bytes.clone(),
        );
        registry.register(
            "pharos_metrics_samples_appended",
            "Samples appended to the metrics head",
            metrics_appended.clone(),
        );
        registry.register(
            "pharos_metrics_samples_refused",
            "remote_write samples refused and reported to the client, by reason",
            metrics_refused.clone(),
        );
        registry.register(
            "pharos_metrics_samples_dropped",
            "Samples dropped when applied to the head after the log, by reason",
            metrics_dropped.clone(),
        );
        registry.register(
            "pharos_traces_spans_refused",
            "Spans refused and reported to the client, by reason",
            traces_refused.clone(),
        );
        registry.register(
            "pharos_traces_spans_dropped",
            "Spans dropped when applied to the head after the log, by reason",
            traces_dropped.clone(),
        );
        registry.register(
            "pharos_query_errors",
            "Query API errors by route and errorType",
            query_errors.clone(),
        );
        registry.register("pharos_blocks", "Blocks served", blocks.clone());
        registry.register(
            "pharos_block_bytes",
            "Bytes of the blocks served",
            block_bytes.clone(),
        );
        registry.register(
            "pharos_block_writes",
            "Blocks written, from the head (flush) or by merging (compaction)",
            block_writes.clone(),
        );
        registry.register(
            "pharos_blocks_dropped",
            "Blocks deleted by retention",
            blocks_dropped.clone(),
        );
        registry.register(
            "pharos_block_failures",
            "Flushes or compactions that failed and will be retried",
            block_failures.clone(),
        );
        registry.register(
            "pharos_http_request_duration_seconds",
            "Durations of HTTP requests served",
            http_duration.clone(),
        );
        SelfMetrics {
            registry,
            accepted,
            refused,
            wal_bytes,
            wal_fsync,
            head_bytes,
            metrics_appended,
            metrics_refused,
            metrics_dropped,
            traces_refused,
            traces_dropped,
            query_errors,
            blocks,
            block_bytes,
            block_writes,
            blocks_dropped,
            block_failures,
            http_duration,
        }
    }

    /// Counts items accepted by `receiver` for `signal`.
    pub fn record_accepted(&self, receiver: &str, signal: &str, n: u64) {
        self.accepted
            .get_or_create(&ReceiverLabels {
                receiver: receiver.into(),
                signal: signal.into(),
            })
            .inc_by(n);
    }

    /// Counts items refused by `receiver` for `signal` with a `reason`.
    pub fn record_refused(&self, receiver: &str, signal: &str, reason: &str, n: u64) {
        self.refused
            .get_or_create(&RefusedLabels {
                receiver: receiver.into(),
                signal: signal.into(),
                reason: reason.into(),
            })
            .inc_by(n);
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_up_in_exposition() {
        let m = SelfMetrics::new();
        m.record_accepted("otlp_grpc", "traces", 3);
        m.record_refused("otlp_http", "logs", "invalid", 2);
        let text = m.encode();
        assert!(
            text.contains(
                r#"pharos_receiver_accepted_items_total{receiver="otlp_grpc",signal="traces"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"reason="invalid"} 2"#), "{text}");
    }
}
