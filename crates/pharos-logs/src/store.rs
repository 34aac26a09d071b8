//! The in-memory log head: streams keyed by their label set, each a
//! time-ordered list of entries with structured metadata.

use std::collections::{BTreeMap, BTreeSet};

use parking_lot::RwLock;
use pharos_model::{ExportLogsServiceRequest, Rejected, Store};

pub mod otlp;

/// A stream's labels, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// One log entry of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unix nanoseconds.
    pub ts_ns: i64,
    /// The log line.
    pub line: String,
    /// Structured metadata, sorted by name, names unique.
    pub metadata: Vec<(String, String)>,
}

/// The order entries are returned in, as Loki's `direction` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    #[default]
    Backward,
}

/// A stream and its selected entries, in the requested direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedStream {
    /// The stream's labels.
    pub labels: Labels,
    /// The selected entries, ordered by [`Direction`].
    pub entries: Vec<Entry>,
}

/// The logs slice's in-memory store.
#[derive(Default)]
pub struct LogStore {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Keyed by the labels' canonical rendering, so iteration order is stable.
    streams: BTreeMap<String, Stream>,
    bytes: u64,
}

struct Stream {
    labels: Labels,
    entries: Vec<Entry>,
}

impl LogStore {
    /// Returns an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one entry to the stream `labels`, keeping the stream in time order
    /// (after any entries with the same timestamp).
    pub fn push(&self, labels: Labels, entry: Entry) {
        let mut inner = self.inner.write();
        inner.bytes += entry_bytes(&entry);
        push(&mut inner, labels, entry);
    }

    /// Returns the newest-or-oldest `limit` entries (by `direction`) among streams
    /// accepted by `stream_filter`, with timestamps in `[start_ns, end_ns)` and accepted
    /// by `entry_filter`. Streams come sorted by labels; each keeps only its selected
    /// entries, ordered by `direction`.
    pub fn select(
        &self,
        stream_filter: impl Fn(&Labels) -> bool,
        entry_filter: impl Fn(&Entry) -> bool,
        start_ns: i64,
        end_ns: i64,
        direction: Direction,
        limit: usize,
    ) -> Vec<SelectedStream> {
        let inner = self.inner.read();
        // (ts, stream index, entry index) of every candidate, at most `limit` per stream.
        let mut picked: Vec<(i64, usize, usize)> = Vec::new();
        let streams: Vec<&Stream> = inner
            .streams
            .values()
            .filter(|s| stream_filter(&s.labels))
            .collect();
        for (si, s) in streams.iter().enumerate() {
            let lo = s.entries.partition_point(|e| e.ts_ns < start_ns);
            let hi = s.entries.partition_point(|e| e.ts_ns < end_ns);
            let range = lo..hi.max(lo);
            let mut taken = 0;
            let mut take = |ei: usize| -> bool {
                if entry_filter(&s.entries[ei]) {
                    picked.push((s.entries[ei].ts_ns, si, ei));
                    taken += 1;
                }
                taken >= limit
            };
            match direction {
                Direction::Forward => {
                    for ei in range {
                        if take(ei) {
                            break;
                        }
                    }
                }
                Direction::Backward => {
                    for ei in range.rev() {
                        if take(ei) {
                            break;
                        }
                    }
                }
            }
        }
        match direction {
            Direction::Forward => picked.sort_by_key(|&(ts, si, ei)| (ts, si, ei)),
            Direction::Backward => {
                picked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(b.2.cmp(&a.2)))
            }
        }
        picked.truncate(limit);
        let mut out: BTreeMap<usize, Vec<Entry>> = BTreeMap::new();
        for (_, si, ei) in picked {
            out.entry(si)
                .or_default()
                .push(streams[si].entries[ei].clone());
        }
        out.into_iter()
            .map(|(si, entries)| SelectedStream {
                labels: streams[si].labels.clone(),
                entries,
            })
            .collect()
    }

    /// Returns the label names of streams with entries in `[start_ns, end_ns)`, sorted.
    pub fn label_names(&self, start_ns: i64, end_ns: i64) -> Vec<String> {
        let names: BTreeSet<String> = self
            .series(|_| true, start_ns, end_ns)
            .into_iter()
            .flat_map(|l| l.into_keys())
            .collect();
        names.into_iter().collect()
    }

    /// Returns the values of label `name` among streams accepted by `stream_filter`
    /// with entries in `[start_ns, end_ns)`, sorted.
    pub fn label_values(
        &self,
        name: &str,
        stream_filter: impl Fn(&Labels) -> bool,
        start_ns: i64,
        end_ns: i64,
    ) -> Vec<String> {
        let values: BTreeSet<String> = self
            .series(stream_filter, start_ns, end_ns)
            .into_iter()
            .filter_map(|mut l| l.remove(name))
            .collect();
        values.into_iter().collect()
    }

    /// Returns the label sets of streams accepted by `stream_filter` with entries in
    /// `[start_ns, end_ns)`, sorted.
    pub fn series(
        &self,
        stream_filter: impl Fn(&Labels) -> bool,
        start_ns: i64,
        end_ns: i64,
    ) -> Vec<Labels> {
        let inner = self.inner.read();
        inner
            .streams
            .values()
            .filter(|s| stream_filter(&s.labels))
            .filter(|s| {
                let lo = s.entries.partition_point(|e| e.ts_ns < start_ns);
                s.entries.get(lo).is_some_and(|e| e.ts_ns < end_ns)
            })
            .map(|s| s.labels.clone())
            .collect()
    }
}

/// Renders labels the way Loki prints a stream selector: `{a="b", c="d"}`.
pub fn labels_string(labels: &Labels) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push('=');
        out.push_str(&format!("{v:?}"));
    }
    out.push('}');
    out
}

fn entry_bytes(e: &Entry) -> u64 {
    (e.line.len()
        + e.metadata
            .iter()
            .map(|(k, v)| k.len() + v.len() + 48)
            .sum::<usize>()
        + 64) as u64
}

fn push(inner: &mut Inner, labels: Labels, entry: Entry) {
    let key = labels_string(&labels);
    let stream = inner.streams.entry(key).or_insert_with(|| Stream {
        labels,
        entries: Vec::new(),
    });
    let at = stream.entries.partition_point(|e| e.ts_ns <= entry.ts_ns);
    stream.entries.insert(at, entry);
}

impl Store<ExportLogsServiceRequest> for LogStore {
    /// Gives records with neither a timestamp nor an observed timestamp the current
    /// time as their observed timestamp, as Loki stamps such entries on arrival.
    /// Doing it here, before the WAL, keeps [`Store::apply`] deterministic. Nothing is rejected.
    fn sanitize(&self, req: &mut ExportLogsServiceRequest) -> Rejected {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        for rl in &mut req.resource_logs {
            for sl in &mut rl.scope_logs {
                for r in &mut sl.log_records {
                    if r.time_unix_nano == 0 && r.observed_time_unix_nano == 0 {
                        r.observed_time_unix_nano = now;
                    }
                }
            }
        }
        Rejected::default()
    }

    fn apply(&self, req: &ExportLogsServiceRequest) {
        let mut inner = self.inner.write();
        otlp::for_each_entry(req, |labels, entry| {
            inner.bytes += entry_bytes(&entry);
            push(&mut inner, labels.clone(), entry);
        });
    }

    fn approx_bytes(&self) -> u64 {
        self.inner.read().bytes
    }
}

#[cfg(test)]
pub(crate) mod tests;
