//! How OTLP log records become Loki entries, following Loki 3's OTLP ingestion.
//!
//! - Stream labels: the resource attributes in [`INDEX_LABELS`], names normalised
//!   ([`normalize_name`]: `.` and other non-alphanumerics → `_`); `service_name` is
//!   `unknown_service` when the resource has no `service.name`.
//! - Structured metadata: the other resource attributes, `scope_name`,
//!   `scope_version`, scope attributes, log attributes, then `trace_id` and
//!   `span_id` (hex), `severity_text`, `severity_number` (when set) and
//!   `detected_level`; later sources win on a name clash.
//! - Line: the body rendered with [`attrs::value_to_string`].
//! - Timestamp: `time_unix_nano`, or `observed_time_unix_nano` when that is 0.
//! - `detected_level`: from the severity number (trace, debug, info, warn, error,
//!   fatal), else from a known severity text; when neither says, the store discovers it
//!   from the line as Loki does ([`super::level`]).

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use pharos_model::{ExportLogsServiceRequest, attrs};

use super::{Entry, Interner, Labels, MetaPair};

/// Resource attributes that become stream labels by default: Loki's
/// `default_resource_attributes_as_index_labels`.
pub const INDEX_LABELS: &[&str] = pharos_model::LOKI_INDEX_LABELS;

/// The `service_name` of streams whose resource has no `service.name`.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Normalises an attribute name into a Loki label name: every character other than
/// ASCII letters, digits and `_` becomes `_`, and a leading digit gets a `_` prefix.
pub fn normalize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Returns Loki's `detected_level` for an OTLP severity, or `None` when unknown.
pub fn detected_level(severity_number: i32, severity_text: &str) -> Option<&'static str> {
    match severity_number {
        1..=4 => return Some("trace"),
        5..=8 => return Some("debug"),
        9..=12 => return Some("info"),
        13..=16 => return Some("warn"),
        17..=20 => return Some("error"),
        21..=24 => return Some("fatal"),
        _ => {}
    }
    match severity_text.to_ascii_lowercase().as_str() {
        "trace" => Some("trace"),
        "debug" | "dbg" => Some("debug"),
        "info" | "information" | "notice" => Some("info"),
        "warn" | "warning" => Some("warn"),
        "error" | "err" => Some("error"),
        "fatal" | "critical" | "crit" | "panic" | "emergency" | "alert" => Some("fatal"),
        _ => None,
    }
}

/// Calls `f` with the stream labels and entry of every record of `req`, in order, the
/// resource attributes in `index_labels` ([`INDEX_LABELS`] by default) becoming stream
/// labels.
pub fn for_each_entry_with<S: AsRef<str>>(
    req: &ExportLogsServiceRequest,
    index_labels: &[S],
    mut f: impl FnMut(&Labels, Entry),
) {
    // Names and repeated values are shared across the request's entries; the pairs every
    // record may have get an interner each, so finding their name is one comparison.
    let mut interner = Interner::default();
    let [mut trace, mut span, mut text, mut number, mut level] =
        std::array::from_fn(|_| Interner::default());
    for rl in &req.resource_logs {
        let rattrs = rl
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let mut labels = Labels::new();
        let mut resource_meta = BTreeMap::new();
        for kv in rattrs {
            let value = kv
                .value
                .as_ref()
                .map(attrs::value_to_string)
                .unwrap_or_default();
            if index_labels.iter().any(|l| l.as_ref() == kv.key) {
                if !value.is_empty() {
                    labels.insert(normalize_name(&kv.key), value);
                }
            } else {
                resource_meta.insert(normalize_name(&kv.key), value);
            }
        }
        labels
            .entry("service_name".to_string())
            .or_insert_with(|| UNKNOWN_SERVICE.to_string());
        for sl in &rl.scope_logs {
            let mut scope_meta: BTreeMap<String, String> = resource_meta.clone();
            if let Some(scope) = &sl.scope {
                if !scope.name.is_empty() {
                    scope_meta.insert("scope_name".into(), scope.name.clone());
                }
                if !scope.version.is_empty() {
                    scope_meta.insert("scope_version".into(), scope.version.clone());
                }
                insert_attrs(&mut scope_meta, &scope.attributes);
            }
            // The scope's pairs, sorted by name, shared by its records; each record's own
            // pairs are merged in.
            let scope_pairs: Vec<MetaPair> = scope_meta
                .iter()
                .map(|(k, v)| interner.pair(k, v))
                .collect();
            let mut own: Vec<MetaPair> = Vec::new();
            for r in &sl.log_records {
                own.clear();
                for kv in &r.attributes {
                    let value = kv
                        .value
                        .as_ref()
                        .map(attrs::value_to_string)
                        .unwrap_or_default();
                    own.push(interner.pair(&normalize_name(&kv.key), &value));
                }
                if !r.trace_id.is_empty() {
                    own.push(trace.pair("trace_id", &hex::encode(&r.trace_id)));
                }
                if !r.span_id.is_empty() {
                    own.push(span.pair("span_id", &hex::encode(&r.span_id)));
                }
                if !r.severity_text.is_empty() {
                    own.push(text.pair("severity_text", &r.severity_text));
                }
                if r.severity_number != 0 {
                    own.push(number.pair("severity_number", &r.severity_number.to_string()));
                }
                if let Some(found) = detected_level(r.severity_number, &r.severity_text) {
                    own.push(level.pair("detected_level", found));
                }
                let meta = merge_pairs(&scope_pairs, &mut own);
                let ts = if r.time_unix_nano != 0 {
                    r.time_unix_nano
                } else {
                    r.observed_time_unix_nano
                };
                let entry = Entry {
                    ts_ns: i64::try_from(ts).unwrap_or(i64::MAX),
                    line: r
                        .body
                        .as_ref()
                        .map(attrs::value_to_string)
                        .unwrap_or_default(),
                    metadata: meta,
                };
                f(&labels, entry);
            }
        }
    }
}

fn insert_attrs(meta: &mut BTreeMap<String, String>, kvs: &[KeyValue]) {
    for kv in kvs {
        let value = kv
            .value
            .as_ref()
            .map(attrs::value_to_string)
            .unwrap_or_default();
        meta.insert(normalize_name(&kv.key), value);
    }
}

/// `base` (sorted by name, names unique) with `own` merged in: a name of `own` replaces
/// the same name of `base`, and among repeats in `own` the last wins, as inserting `own`
/// into a map of `base` in order would leave it. Sorted by name.
fn merge_pairs<P: Clone + Default + PairName>(base: &[P], own: &mut Vec<P>) -> Vec<P> {
    // Stable: equal names keep their order, so the last of a run is the one inserted last.
    own.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::with_capacity(base.len() + own.len());
    let mut own_iter = own.drain(..).peekable();
    let mut base_iter = base.iter().peekable();
    loop {
        match (base_iter.peek(), own_iter.peek()) {
            (None, None) => break,
            (Some(_), None) => out.push(base_iter.next().cloned().unwrap_or_default()),
            (Some(b), Some(o)) if b.name() < o.name() => {
                out.push(base_iter.next().cloned().unwrap_or_default());
            }
            (b, Some(_)) => {
                let mut pair = own_iter.next().unwrap_or_default();
                while own_iter.peek().is_some_and(|n| n.name() == pair.name()) {
                    pair = own_iter.next().unwrap_or_default();
                }
                if b.is_some_and(|b| b.name() == pair.name()) {
                    base_iter.next();
                }
                out.push(pair);
            }
        }
    }
    out
}

/// A name-value pair's name, for [`merge_pairs`].
trait PairName {
    fn name(&self) -> &str;
}

impl PairName for MetaPair {
    fn name(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
impl PairName for (String, String) {
    fn name(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    /// `merge_pairs` equals inserting `own` into a map of `base`, on many random inputs.
    #[test]
    fn merging_equals_map_insertion() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..2000 {
            let mut base: BTreeMap<String, String> = BTreeMap::new();
            for _ in 0..next(6) {
                base.insert(format!("k{}", next(8)), format!("b{}", next(100)));
            }
            let mut own: Vec<(String, String)> = (0..next(6))
                .map(|_| (format!("k{}", next(8)), format!("o{}", next(100))))
                .collect();
            let mut want = base.clone();
            for (k, v) in &own {
                want.insert(k.clone(), v.clone());
            }
            let base: Vec<(String, String)> = base.into_iter().collect();
            let got = merge_pairs(&base, &mut own);
            assert_eq!(got, want.into_iter().collect::<Vec<_>>());
        }
    }
}
