//! The logs write-ahead log record, [`LogsRecord`]: one envelope for OTLP and Loki push
//! requests, and the checks Loki's distributor and ingester make before a line is kept.
//!
//! The envelope is a protobuf message whose field 1 is OTLP's `ResourceLogs`, exactly as in
//! `ExportLogsServiceRequest`, so records written before Loki push existed (plain OTLP
//! requests) decode unchanged; field 2 holds Loki push streams (`logproto.StreamAdapter`).
//! [`Store::sanitize`](pharos_model::Store::sanitize) maps an OTLP request to streams
//! ([`super::otlp`]) and checks every stream. When it refuses nothing of an OTLP request,
//! the log holds the request as it is (field 1, its resource attributes once rather than
//! copied onto every line) and replay maps it again, the same way; otherwise it holds
//! what was kept as field 2. Field 2's labels are in canonical selector form, structured
//! metadata sorted by name. Format: `docs/format/wal.md`, "The logs record".
//!
//! The checks, each refusing what it names with Loki's own message (Loki's distributor
//! keeps the other lines of the request and answers 400 with the reasons; stream-limit
//! refusals are 429):
//!
//! - labels that do not parse as a selector of `=` matchers, or no labels at all;
//! - more label names than `limits.max_label_names_per_series` (15);
//! - a line longer than `limits.max_line_size` bytes (256 KiB);
//! - a new stream once the head holds `limits.max_streams` streams;
//! - an entry older than its stream's newest minus `limits.out_of_order_window` (1h, half
//!   of Loki's default `max_chunk_age`): Loki's "entry too far behind";
//! - an entry more than `limits.creation_grace_period` (10m) in the future;
//! - an entry older than `limits.reject_old_samples_max_age` (off by default, unlike
//!   Loki's one week: OTLP senders replay old data and retention removes it anyway).
//!
//! As Loki 3 does by default, a push stream without `service_name` gets one from the first
//! of `service_name, service, app, application, name, app_kubernetes_io_name, container,
//! container_name, component, workload, job` it has, else `unknown_service`.

use std::collections::HashMap;

use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use pharos_model::{ExportLogsServiceRequest, ItemCount, Rejected};
use prost::Message;

use super::level;
use super::otlp::UNKNOWN_SERVICE;
use super::{Labels, labels_string};
use crate::push::proto::{Entry as WireEntry, LabelPair, PushRequest, Stream as WireStream};

/// One record of the logs write-ahead log: what one accepted request added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogsRecord {
    /// What is logged.
    pub wire: RecordWire,
    /// The labels of each of `wire.streams`, as [`super::LogStore`]'s sanitize parsed them;
    /// empty for a record read back from the log. Not logged.
    pub(crate) parsed: Vec<Labels>,
    /// `wire.resource_logs` as sanitize mapped and checked them, every entry kept (else
    /// they are in `wire.streams`), applied before `wire.streams`; empty for a record read
    /// back from the log. Not logged.
    pub(crate) mapped: Vec<Mapped>,
    /// The push request as it arrived, in snappy's block format, while every entry of it
    /// is kept: the log holds it as field 3, spliced from these bytes.
    pub(crate) push_snappy: Option<bytes::Bytes>,
}

/// The logged part of a [`LogsRecord`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct RecordWire {
    /// Field 1: an OTLP request, flattened so its bytes are an `ExportLogsServiceRequest`'s.
    #[prost(message, repeated, tag = "1")]
    pub resource_logs: Vec<ResourceLogs>,
    /// Field 2: Loki push streams.
    #[prost(message, repeated, tag = "2")]
    pub streams: Vec<WireStream>,
    /// Field 3: a Loki push request as it arrived, every entry of it kept. Written only by
    /// splicing ([`LogsRecord::snappy_record`]); replay canonicalizes it as sanitize does.
    #[prost(message, optional, tag = "3")]
    pub push: Option<PushRequest>,
}

impl From<ExportLogsServiceRequest> for LogsRecord {
    fn from(req: ExportLogsServiceRequest) -> Self {
        Self {
            wire: RecordWire {
                resource_logs: req.resource_logs,
                streams: Vec::new(),
                push: None,
            },
            parsed: Vec::new(),
            mapped: Vec::new(),
            push_snappy: None,
        }
    }
}

impl From<PushRequest> for LogsRecord {
    fn from(req: PushRequest) -> Self {
        Self::from_push(req, None)
    }
}

impl LogsRecord {
    /// The record of a push request; `snappy` is the request as it arrived, in snappy's
    /// block format, if it did.
    pub fn from_push(req: PushRequest, snappy: Option<bytes::Bytes>) -> Self {
        Self {
            wire: RecordWire {
                resource_logs: Vec::new(),
                streams: req.streams,
                push: None,
            },
            parsed: Vec::new(),
            mapped: Vec::new(),
            push_snappy: snappy,
        }
    }

    /// When the log can take the push request's bytes as they arrived: the prefix that
    /// makes them field 3 of a record (its tag and length) and the snappy bytes.
    pub fn snappy_record(&self) -> Option<(Vec<u8>, &[u8])> {
        let snappy = self.push_snappy.as_deref()?;
        let len = snap::raw::decompress_len(snappy).ok()?;
        let mut prefix = vec![0x1a];
        prost::encoding::encode_varint(len as u64, &mut prefix);
        Some((prefix, snappy))
    }

    /// The record's log bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.wire.encode_to_vec()
    }

    /// The record of some log bytes; `None` when they do not decode.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            wire: RecordWire::decode(bytes).ok()?,
            parsed: Vec::new(),
            mapped: Vec::new(),
            push_snappy: None,
        })
    }
}

impl ItemCount for LogsRecord {
    fn item_count(&self) -> u64 {
        let otlp: u64 = self
            .wire
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len() as u64)
            .sum();
        let pushed = self.wire.push.iter().flat_map(|p| &p.streams);
        otlp + self
            .wire
            .streams
            .iter()
            .chain(pushed)
            .map(|s| s.entries.len() as u64)
            .sum::<u64>()
    }
}

/// The bounds [`super::LogStore`] checks entries against; `0` turns a bound off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLimits {
    /// The longest line, in bytes.
    pub max_line_size: usize,
    /// The most streams the head may hold.
    pub max_streams: usize,
    /// The most label names one stream may have.
    pub max_label_names: usize,
    /// How far behind its stream's newest entry an entry may be, in nanoseconds.
    pub out_of_order_window_ns: i64,
    /// How far ahead of the clock an entry may be, in nanoseconds.
    pub creation_grace_ns: i64,
    /// How far behind the clock an entry may be, in nanoseconds.
    pub max_age_ns: i64,
    /// The OTLP resource attributes that become stream labels.
    pub index_labels: Vec<String>,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_line_size: 256 * 1024,
            max_streams: 5000,
            max_label_names: 15,
            out_of_order_window_ns: 3_600 * 1_000_000_000,
            creation_grace_ns: 600 * 1_000_000_000,
            max_age_ns: 0,
            index_labels: super::otlp::INDEX_LABELS
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
        }
    }
}

/// The tenant Loki names in messages when it runs without authentication.
const TENANT: &str = "fake";

/// The start of Loki's message for a stream over the stream limit; the push handler
/// answers 429 when a refusal carries it.
pub const STREAM_LIMIT_MESSAGE: &str = "Maximum active stream limit exceeded";

/// Labels Loki 3 takes `service_name` from, in order.
const SERVICE_NAME_SOURCES: &[&str] = &[
    "service_name",
    "service",
    "app",
    "application",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "component",
    "workload",
    "job",
];

/// What the head knows about a stream for the checks: whether it exists and its newest
/// entry's time.
pub(crate) trait StreamInfo {
    /// `Some(newest entry's ns)` for a stream the head holds (`i64::MIN` when empty).
    fn newest(&self, key: &str) -> Option<i64>;
    /// How many streams the head holds.
    fn stream_count(&self) -> usize;
}

/// Maps the OTLP part of `record` to streams, checks every stream and entry, and returns
/// what was refused. Refused entries and streams are removed; labels become canonical.
pub(crate) fn sanitize(
    record: &mut LogsRecord,
    head: &dyn StreamInfo,
    limits: &LogLimits,
    now_ns: i64,
) -> Rejected {
    let otlp = ExportLogsServiceRequest {
        resource_logs: std::mem::take(&mut record.wire.resource_logs),
    };
    let mapped = map_otlp(&otlp, &limits.index_labels);
    let mut check = Checker {
        head,
        limits,
        now_ns,
        newest: HashMap::new(),
        new_streams: 0,
        errors: Vec::new(),
        refused: 0,
        too_many_streams: false,
    };
    let mut pushed = Vec::new();
    let streams_in = record.wire.streams.len();
    for mut s in std::mem::take(&mut record.wire.streams) {
        match canonicalize(&mut s) {
            Ok(labels) => pushed.push((labels, s)),
            Err(msg) => {
                check.refused += s.entries.len() as u64;
                check.errors.push(msg);
            }
        }
    }
    // Entries of one stream may come in several request streams: later ones are checked
    // against what the earlier ones added.
    let mut kept_mapped = Vec::with_capacity(mapped.len());
    for mut m in mapped {
        if check.stream(&m.labels, &m.key, &mut m.entries) {
            kept_mapped.push(m);
        }
    }
    let mut kept = Vec::with_capacity(pushed.len());
    for (labels, mut s) in pushed {
        if check.stream(&labels, &s.labels, &mut s.entries) {
            kept.push((labels, s));
        }
    }
    if check.refused == 0 && !otlp.resource_logs.is_empty() {
        // All of an OTLP request kept: it is what the log holds.
        record.wire.resource_logs = otlp.resource_logs;
        record.mapped = kept_mapped;
    } else {
        // The log holds what is kept, as streams.
        let as_wire = kept_mapped.into_iter().map(|m| {
            let entries = m.entries.into_iter().map(|e| WireEntry {
                timestamp: Some(crate::push::proto::Timestamp::from_nanos(e.ts_ns)),
                line: e.line,
                structured_metadata: e
                    .metadata
                    .iter()
                    .map(|(k, v)| LabelPair::new(&**k, &**v))
                    .collect(),
            });
            let stream = WireStream {
                labels: m.key,
                entries: entries.collect(),
                hash: 0,
            };
            (m.labels, stream)
        });
        kept.splice(0..0, as_wire);
    }
    let kept_streams = kept.len();
    let (parsed, streams) = kept.into_iter().unzip();
    record.parsed = parsed;
    record.wire.streams = streams;
    // The request as it arrived replays as what the head took only if all of it was
    // kept: no refusal, and no stream left out (one without entries, or whose labels do not
    // parse, leaves nothing to refuse but must not be created on replay).
    if check.refused > 0 || !record.wire.resource_logs.is_empty() || kept_streams != streams_in {
        record.push_snappy = None;
    }
    let mut rejected = Rejected::default();
    if check.refused > 0 {
        rejected.count = check.refused;
        let mut errors = check.errors;
        // A stream-limit refusal leads, so the handler sees it first.
        if check.too_many_streams {
            errors.sort_by_key(|e| !e.starts_with(STREAM_LIMIT_MESSAGE));
        }
        rejected.message = errors.join("\n");
    }
    rejected
}

/// Parses a push stream's labels into their canonical rendering, sorts each entry's
/// structured metadata and adds `detected_level`: what sanitize does to a push stream
/// before the checks, and replay to a logged push request (field 3).
pub(crate) fn canonicalize(s: &mut WireStream) -> Result<Labels, String> {
    let labels = parse_push_labels(&s.labels)?;
    s.labels = labels_string(&labels);
    for e in &mut s.entries {
        sort_metadata(&mut e.structured_metadata);
        add_detected_level(e, &labels);
    }
    Ok(labels)
}

/// An entry as the checks see it.
trait Checked {
    fn ts_ns(&self) -> i64;
    fn line_len(&self) -> usize;
}

impl Checked for WireEntry {
    fn ts_ns(&self) -> i64 {
        WireEntry::ts_ns(self)
    }
    fn line_len(&self) -> usize {
        self.line.len()
    }
}

impl Checked for super::Entry {
    fn ts_ns(&self) -> i64 {
        self.ts_ns
    }
    fn line_len(&self) -> usize {
        self.line.len()
    }
}

/// The checks of one request's streams, and what they refused.
struct Checker<'a> {
    head: &'a dyn StreamInfo,
    limits: &'a LogLimits,
    now_ns: i64,
    /// The newest entry of each stream the request added to, so far.
    newest: HashMap<String, i64>,
    /// Streams the request creates, so far.
    new_streams: usize,
    errors: Vec<String>,
    refused: u64,
    too_many_streams: bool,
}

impl Checker<'_> {
    /// Checks the entries of the stream `key`, removing those refused; whether any is left.
    fn stream<E: Checked>(&mut self, labels: &Labels, key: &str, entries: &mut Vec<E>) -> bool {
        let limits = self.limits;
        let total = entries.len();
        if limits.max_label_names > 0 && labels.len() > limits.max_label_names {
            self.refused += total as u64;
            self.errors.push(format!(
                "entry for stream '{key}' has {} label names; limit {}",
                labels.len(),
                limits.max_label_names
            ));
            return false;
        }
        let known = self
            .newest
            .get(key)
            .copied()
            .or_else(|| self.head.newest(key));
        if known.is_none() {
            if limits.max_streams > 0
                && self.head.stream_count() + self.new_streams >= limits.max_streams
            {
                self.refused += total as u64;
                self.too_many_streams = true;
                self.errors.push(format!(
                    "{STREAM_LIMIT_MESSAGE} when trying to create stream {key}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '{TENANT}'"
                ));
                return false;
            }
            self.new_streams += 1;
        }
        let now_ns = self.now_ns;
        let errors = &mut self.errors;
        let mut stream_newest = known.unwrap_or(i64::MIN);
        let mut behind: Vec<(i64, i64)> = Vec::new();
        entries.retain(|e| {
            let ts = e.ts_ns();
            if limits.max_line_size > 0 && e.line_len() > limits.max_line_size {
                errors.push(format!(
                    "Max entry size '{}' bytes exceeded for stream '{key}' while adding an entry with length '{}' bytes",
                    limits.max_line_size,
                    e.line_len()
                ));
                return false;
            }
            if limits.creation_grace_ns > 0 && ts > now_ns.saturating_add(limits.creation_grace_ns)
            {
                errors.push(format!(
                    "entry for stream '{key}' has timestamp too new: {}",
                    go_time(ts)
                ));
                return false;
            }
            if limits.max_age_ns > 0 && ts < now_ns.saturating_sub(limits.max_age_ns) {
                errors.push(format!(
                    "entry for stream '{key}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                    go_time(ts),
                    go_time(now_ns - limits.max_age_ns)
                ));
                return false;
            }
            if limits.out_of_order_window_ns > 0 && stream_newest != i64::MIN {
                let oldest = stream_newest.saturating_sub(limits.out_of_order_window_ns);
                if ts < oldest {
                    behind.push((ts, oldest));
                    return false;
                }
            }
            stream_newest = stream_newest.max(ts);
            true
        });
        self.refused += (total - entries.len()) as u64;
        if !behind.is_empty() {
            let mut msg = String::new();
            for (ts, oldest) in behind.iter().take(MAX_RETURNED_ERRORS) {
                msg.push_str(&format!(
                    "entry with timestamp {} ignored, reason: 'entry too far behind, entry timestamp is: {}, oldest acceptable timestamp is: {}',\n",
                    go_time(*ts),
                    go_rfc3339(*ts),
                    go_rfc3339(*oldest)
                ));
            }
            msg.push_str(&format!(
                "user '{TENANT}', total ignored: {} out of {total} for stream: {key}",
                behind.len(),
            ));
            self.errors.push(msg);
        }
        self.newest.insert(key.to_string(), stream_newest);
        !entries.is_empty()
    }
}

/// One stream of an OTLP request, mapped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mapped {
    pub labels: Labels,
    /// The labels' canonical rendering.
    pub key: String,
    pub entries: Vec<super::Entry>,
}

/// An OTLP request's entries as Loki streams ([`super::otlp::for_each_entry_with`]), each
/// with `detected_level`, consecutive entries of one stream in one stream. Sanitize and
/// the replay of a logged OTLP request both map through here, so they agree.
pub(crate) fn map_otlp<S: AsRef<str>>(
    req: &ExportLogsServiceRequest,
    index_labels: &[S],
) -> Vec<Mapped> {
    let mut streams: Vec<Mapped> = Vec::new();
    super::otlp::for_each_entry_with(req, index_labels, |labels, mut e| {
        add_entry_level(&mut e, labels);
        match streams.last_mut() {
            Some(m) if m.labels == *labels => m.entries.push(e),
            _ => streams.push(Mapped {
                labels: labels.clone(),
                key: labels_string(labels),
                entries: vec![e],
            }),
        }
    });
    streams
}

/// Loki's ingester lists at most this many refused entries of a stream (`max_returned_stream_errors`).
const MAX_RETURNED_ERRORS: usize = 10;

/// Parses a push stream's labels (`{a="b", ...}`, `=` matchers only), adding `service_name`.
///
/// # Errors
///
/// Loki's message for labels that do not parse or are empty.
pub fn parse_push_labels(text: &str) -> Result<Labels, String> {
    let pairs = crate::logql::parser::parse_labels(text)
        .map_err(|e| format!("Error parsing labels '{text}' with error: {e}"))?;
    if pairs.is_empty() {
        return Err("error at least one label pair is required per stream".into());
    }
    let mut labels = Labels::new();
    for (name, value) in pairs {
        if labels.contains_key(&name) {
            return Err(format!(
                "stream '{text}' has duplicate label name: '{name}'"
            ));
        }
        labels.insert(name, value);
    }
    if !labels.contains_key("service_name") {
        let service = SERVICE_NAME_SOURCES
            .iter()
            .find_map(|name| labels.get(*name).filter(|v| !v.is_empty()).cloned())
            .unwrap_or_else(|| UNKNOWN_SERVICE.to_string());
        labels.insert("service_name".into(), service);
    }
    Ok(labels)
}

/// Adds Loki's `detected_level` to an entry without one (see [`super::level`]), keeping
/// the metadata sorted.
fn add_detected_level(e: &mut WireEntry, labels: &Labels) {
    let pairs = e
        .structured_metadata
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()));
    if let Some((at, found)) = level_to_add(&e.line, labels, pairs) {
        e.structured_metadata
            .insert(at, LabelPair::new(level::DETECTED_LEVEL, found));
    }
}

/// [`add_detected_level`] for a mapped OTLP entry.
fn add_entry_level(e: &mut super::Entry, labels: &Labels) {
    let pairs = e.metadata.iter().map(|(k, v)| (&**k, &**v));
    if let Some((at, found)) = level_to_add(&e.line, labels, pairs) {
        e.metadata
            .insert(at, (level::DETECTED_LEVEL.into(), found.into()));
    }
}

/// Where `detected_level` goes among an entry's metadata `pairs` (sorted by name) and what
/// it is, when the entry needs one: neither its metadata nor its stream labels have it.
fn level_to_add<'a>(
    line: &str,
    labels: &Labels,
    pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> Option<(usize, &'static str)> {
    if labels.contains_key(level::DETECTED_LEVEL)
        || pairs.clone().any(|(k, _)| k == level::DETECTED_LEVEL)
    {
        return None;
    }
    let at = pairs
        .clone()
        .take_while(|(k, _)| *k < level::DETECTED_LEVEL)
        .count();
    Some((at, level::detect(line, labels, pairs)))
}

/// Sorts structured metadata by name, the last value of a repeated name winning, and
/// drops pairs with an empty name.
fn sort_metadata(meta: &mut Vec<LabelPair>) {
    if meta.is_empty() {
        return;
    }
    meta.retain(|p| !p.name.is_empty());
    // Stable: equal names keep their order, so the last one is the one kept.
    meta.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out: Vec<LabelPair> = Vec::with_capacity(meta.len());
    for p in meta.drain(..) {
        match out.last_mut() {
            Some(last) if last.name == p.name => *last = p,
            _ => out.push(p),
        }
    }
    *meta = out;
}

/// Renders Unix nanoseconds as Go's `time.Time.String()` does in UTC:
/// `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub fn go_time(ns: i64) -> String {
    let (date, frac) = civil(ns);
    let frac = if frac == 0 {
        String::new()
    } else {
        format!(".{frac:09}").trim_end_matches('0').to_string()
    };
    format!("{date}{frac} +0000 UTC")
}

/// Renders Unix nanoseconds as Go's `time.RFC3339Nano` in UTC: `2006-01-02T15:04:05.999999999Z`.
pub fn go_rfc3339(ns: i64) -> String {
    let (date, frac) = civil(ns);
    let frac = if frac == 0 {
        String::new()
    } else {
        format!(".{frac:09}").trim_end_matches('0').to_string()
    };
    format!("{}{frac}Z", date.replacen(' ', "T", 1))
}

/// `YYYY-MM-DD hh:mm:ss` and the nanoseconds of the second.
fn civil(ns: i64) -> (String, i64) {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = pharos_model::civil::civil_from_days(days);
    (
        format!(
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        ),
        frac,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_formats() {
        assert_eq!(go_time(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            go_time(1_700_000_000_120_000_000),
            "2023-11-14 22:13:20.12 +0000 UTC"
        );
        assert_eq!(
            go_rfc3339(1_700_000_000_000_000_001),
            "2023-11-14T22:13:20.000000001Z"
        );
        assert_eq!(go_time(-1_000_000_000), "1969-12-31 23:59:59 +0000 UTC");
    }

    #[test]
    fn metadata_is_sorted_and_the_last_repeat_wins() {
        let mut m = vec![
            LabelPair::new("b", "1"),
            LabelPair::new("a", "1"),
            LabelPair::new("b", "2"),
            LabelPair::new("", "x"),
        ];
        sort_metadata(&mut m);
        assert_eq!(m, vec![LabelPair::new("a", "1"), LabelPair::new("b", "2")]);
    }

    #[test]
    fn push_labels_get_a_service_name() {
        let l = parse_push_labels(r#"{job="varlogs", app="web"}"#).unwrap();
        assert_eq!(l["service_name"], "web");
        let l = parse_push_labels(r#"{job="varlogs"}"#).unwrap();
        assert_eq!(l["service_name"], "varlogs");
        let l = parse_push_labels(r#"{env="prod"}"#).unwrap();
        assert_eq!(l["service_name"], "unknown_service");
        let l = parse_push_labels(r#"{service_name="x", app="web"}"#).unwrap();
        assert_eq!(l["service_name"], "x");
        assert_eq!(
            parse_push_labels("{}").unwrap_err(),
            "error at least one label pair is required per stream"
        );
        assert!(
            parse_push_labels(r#"{a=~"b"}"#)
                .unwrap_err()
                .starts_with(r#"Error parsing labels '{a=~"b"}' with error: "#)
        );
    }
}
