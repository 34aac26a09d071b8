//! Metric metadata: per metric family name, every distinct (type, help, unit) seen, in
//! the order first seen. This is what `/api/v1/metadata` serves.
//!
//! Three sources feed it, all through the metrics write-ahead log so that a replay
//! rebuilds it: remote_write `WriteRequest.metadata` and the `prometheus` receiver's
//! `# TYPE`/`# HELP`/`# UNIT` lines (both as [`MetricMetadata`] in field 3 of the
//! [`super::record::MetricsRecord`]), and OTLP metrics, whose metadata is derived from
//! field 1 when the record is applied ([`super::translate::metadata`]).
//!
//! The map is not part of the head: freezing and flushing the head into blocks leaves it
//! alone, and it is never written into blocks. It survives the deletion of log segments
//! after a flush because the binary appends it whole, as metadata-only records (a
//! *checkpoint*, [`MetricsStore::metadata_checkpoint`]), to the log after the rotation and
//! before deleting the older segments. Format: `docs/format/wal.md`, "Metric metadata and
//! its checkpoint".
//!
//! Adding is idempotent and the union does not depend on order, so a replay that sees an
//! entry twice (a record and a later checkpoint) ends with the same set.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use super::MetricsStore;
use crate::remote_write::proto::{MetricMetadata, MetricType};

/// One distinct piece of metadata of a metric family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The family's type.
    pub kind: MetricType,
    /// The help text; empty when none was given.
    pub help: String,
    /// The unit; empty when none was given.
    pub unit: String,
}

impl Entry {
    /// Returns the type's name as Prometheus' metadata API writes it.
    pub fn type_name(&self) -> &'static str {
        type_name(self.kind)
    }
}

/// Returns a type's name as Prometheus' metadata API writes it (`counter`, `gauge`,
/// `histogram`, `gaugehistogram`, `summary`, `info`, `stateset`, `unknown`).
pub fn type_name(kind: MetricType) -> &'static str {
    match kind {
        MetricType::Unknown => "unknown",
        MetricType::Counter => "counter",
        MetricType::Gauge => "gauge",
        MetricType::Histogram => "histogram",
        MetricType::Gaugehistogram => "gaugehistogram",
        MetricType::Summary => "summary",
        MetricType::Info => "info",
        MetricType::Stateset => "stateset",
    }
}

/// Returns the [`MetricType`] of a wire value; values this version does not know are
/// `Unknown`.
pub fn metric_type(value: i32) -> MetricType {
    MetricType::try_from(value).unwrap_or(MetricType::Unknown)
}

/// Where [`MetricsStore::metadata_checkpoint`] starts a new record, in encoded bytes: far
/// below the log's record size limit.
pub const CHECKPOINT_RECORD_BYTES: usize = 1 << 20;

/// A metric family's metadata entries, as [`Metadata::families`] returns them.
pub type Family = (String, Vec<Entry>);

/// The metadata map; cheap to read concurrently.
#[derive(Debug, Default)]
pub struct Metadata {
    /// Family name → distinct entries, first seen first.
    families: RwLock<BTreeMap<String, Vec<Entry>>>,
    /// Approximate bytes held, for the memory limiter.
    bytes: AtomicU64,
}

impl Metadata {
    /// Returns whether `m` (with its type normalized) is already known.
    pub fn contains(&self, m: &MetricMetadata) -> bool {
        let kind = metric_type(m.r#type);
        self.families
            .read()
            .get(&m.metric_family_name)
            .is_some_and(|entries| {
                entries
                    .iter()
                    .any(|e| e.kind == kind && e.help == m.help && e.unit == m.unit)
            })
    }

    /// Adds `m` unless it is known or has no family name; returns whether it was new.
    pub fn add(&self, m: &MetricMetadata) -> bool {
        if m.metric_family_name.is_empty() || self.contains(m) {
            return false;
        }
        let entry = Entry {
            kind: metric_type(m.r#type),
            help: m.help.clone(),
            unit: m.unit.clone(),
        };
        let mut families = self.families.write();
        let entries = match families.get_mut(&m.metric_family_name) {
            Some(entries) => entries,
            None => {
                self.bytes
                    .fetch_add(m.metric_family_name.len() as u64 + 48, Ordering::Relaxed);
                families.entry(m.metric_family_name.clone()).or_default()
            }
        };
        // Checked again under the write lock: another writer may have added it.
        if entries.contains(&entry) {
            return false;
        }
        self.bytes.fetch_add(
            (entry.help.len() + entry.unit.len() + 56) as u64,
            Ordering::Relaxed,
        );
        entries.push(entry);
        true
    }

    /// Returns the families sorted by name with their entries, all of them or only the one
    /// named `metric`.
    pub fn families(&self, metric: Option<&str>) -> Vec<Family> {
        let families = self.families.read();
        match metric {
            Some(name) => families
                .get_key_value(name)
                .map(|(k, v)| (k.clone(), v.clone()))
                .into_iter()
                .collect(),
            None => families
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Returns every entry as remote_write metadata, families sorted by name, each
    /// family's entries first seen first.
    pub fn to_records(&self) -> Vec<MetricMetadata> {
        let families = self.families.read();
        families
            .iter()
            .flat_map(|(name, entries)| {
                entries.iter().map(move |e| MetricMetadata {
                    r#type: e.kind as i32,
                    metric_family_name: name.clone(),
                    help: e.help.clone(),
                    unit: e.unit.clone(),
                })
            })
            .collect()
    }

    /// Returns how many families are known.
    pub fn len(&self) -> usize {
        self.families.read().len()
    }

    /// Returns whether no family is known.
    pub fn is_empty(&self) -> bool {
        self.families.read().is_empty()
    }

    /// Returns the approximate bytes the map holds.
    pub fn approx_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl MetricsStore {
    /// Returns the store's metric metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Returns metadata-only log records that together hold every known entry, each of
    /// about [`CHECKPOINT_RECORD_BYTES`] at most (none when nothing is known): the
    /// checkpoint the binary appends to the log after a rotation and before it deletes the
    /// older segments, so that metadata outlives them.
    pub fn metadata_checkpoint(&self) -> Vec<super::record::MetricsRecord> {
        use prost::Message;
        let mut out = Vec::new();
        let mut current = super::record::MetricsRecord::default();
        let mut bytes = 0;
        for m in self.metadata.to_records() {
            let len = m.encoded_len() + 8;
            if bytes + len > CHECKPOINT_RECORD_BYTES && !current.metadata.is_empty() {
                out.push(std::mem::take(&mut current));
                bytes = 0;
            }
            bytes += len;
            current.metadata.push(m);
        }
        if !current.metadata.is_empty() {
            out.push(current);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(name: &str, kind: MetricType, help: &str, unit: &str) -> MetricMetadata {
        MetricMetadata {
            r#type: kind as i32,
            metric_family_name: name.into(),
            help: help.into(),
            unit: unit.into(),
        }
    }

    #[test]
    fn keeps_distinct_entries_first_seen_first() {
        let m = Metadata::default();
        assert!(m.add(&md("b", MetricType::Counter, "B.", "")));
        assert!(!m.add(&md("b", MetricType::Counter, "B.", "")), "a repeat");
        assert!(m.add(&md("b", MetricType::Gauge, "B.", "")));
        assert!(m.add(&md("b", MetricType::Gauge, "B!", "seconds")));
        assert!(m.add(&md("a", MetricType::Summary, "", "")));
        assert!(!m.add(&md("", MetricType::Gauge, "no name", "")));
        // A type this version does not know is `unknown`.
        let mut odd = md("c", MetricType::Unknown, "", "");
        odd.r#type = 42;
        assert!(m.add(&odd));
        assert!(m.contains(&md("c", MetricType::Unknown, "", "")));
        assert_eq!(m.len(), 3);
        let families = m.families(None);
        let names: Vec<_> = families.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let b: Vec<_> = families[1]
            .1
            .iter()
            .map(|e| (e.type_name(), e.help.as_str(), e.unit.as_str()))
            .collect();
        assert_eq!(
            b,
            [
                ("counter", "B.", ""),
                ("gauge", "B.", ""),
                ("gauge", "B!", "seconds")
            ]
        );
        assert_eq!(m.families(Some("b")), vec![families[1].clone()]);
        assert!(m.families(Some("zz")).is_empty());
        assert!(m.approx_bytes() > 0);
    }

    #[test]
    fn records_round_trip_into_an_equal_map() {
        let m = Metadata::default();
        m.add(&md("x", MetricType::Histogram, "X.", "bytes"));
        m.add(&md("x", MetricType::Histogram, "X, again.", "bytes"));
        m.add(&md("w", MetricType::Stateset, "", ""));
        let records = m.to_records();
        assert_eq!(records.len(), 3);
        let back = Metadata::default();
        for r in records.iter().rev().chain(&records) {
            back.add(r);
        }
        assert_eq!(back.len(), 2);
        assert_eq!(back.families(Some("w")), m.families(Some("w")));
        let mut a = back.families(Some("x"))[0].1.clone();
        let mut b = m.families(Some("x"))[0].1.clone();
        a.sort_by(|x, y| x.help.cmp(&y.help));
        b.sort_by(|x, y| x.help.cmp(&y.help));
        assert_eq!(a, b, "the same set, whatever the order");
    }
}
