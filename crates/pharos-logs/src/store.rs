//! The in-memory log head: streams keyed by their label set, each a
//! time-ordered list of entries with structured metadata.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::RwLock;
use pharos_model::{Rejected, Store};

use crate::push;

pub mod block;
pub mod chunk;
pub mod engine;
pub mod level;
pub mod otlp;
pub mod record;

pub use engine::{BlockOptions, EngineError, Maintained, OpenReport};
pub use record::{LogLimits, LogsRecord};

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
    pub metadata: Vec<MetaPair>,
}

/// A structured-metadata pair. Shared strings: the pairs an OTLP resource or scope gives
/// all of its records, and the values a chunk repeats from entry to entry, are one
/// allocation however many entries carry them.
pub type MetaPair = (Arc<str>, Arc<str>);

/// The order entries are returned in, as Loki's `direction` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    #[default]
    Backward,
}

/// What `index/stats` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Streams with entries in the range.
    pub streams: u64,
    /// Chunks holding them.
    pub chunks: u64,
    /// Entries in the range.
    pub entries: u64,
    /// Their lines' bytes.
    pub bytes: u64,
}

/// What a [`LogStore::visit`] callback asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// The next entry.
    Continue,
    /// The next stream.
    NextStream,
    /// Nothing more.
    Stop,
}

/// The logs slice's in-memory store.
pub struct LogStore {
    inner: RwLock<Inner>,
    limits: LogLimits,
    /// Applied entries for `/tail` clients; only filled while one listens.
    tail: tokio::sync::broadcast::Sender<Arc<TailBatch>>,
    /// Taken out of the head, not yet in blocks; oldest first.
    frozen: RwLock<Vec<Arc<engine::Frozen>>>,
    /// Served blocks.
    blocks: RwLock<Vec<Arc<block::LogBlock>>>,
    /// Where blocks go; unset for a store without blocks.
    engine: std::sync::OnceLock<engine::Engine>,
}

impl Default for LogStore {
    fn default() -> Self {
        Self {
            inner: RwLock::default(),
            limits: LogLimits::default(),
            tail: tokio::sync::broadcast::channel(TAIL_BACKLOG).0,
            frozen: RwLock::default(),
            blocks: RwLock::default(),
            engine: std::sync::OnceLock::new(),
        }
    }
}

/// How many applied batches a slow `/tail` client may fall behind before it loses some.
const TAIL_BACKLOG: usize = 1024;

/// The entries one request added, with their streams' labels, for `/tail`.
pub type TailBatch = Vec<(Arc<Labels>, Entry)>;

#[derive(Default)]
struct Inner {
    /// Keyed by the labels' canonical rendering, so iteration order is stable.
    streams: BTreeMap<String, Stream>,
    bytes: u64,
    /// When the head's oldest entry arrived (since the last freeze).
    since: Option<std::time::Instant>,
}

struct Stream {
    labels: Labels,
    /// In time order, each entry after those with the same time that arrived before it.
    entries: Vec<Entry>,
    /// Entries older than the last of `entries` when they arrived, in time order: an
    /// insert into the middle of a long `entries` moves its tail each time, so they wait
    /// here and join it [`LATE_MERGE`] at a time (or at a freeze). Readers merge the two.
    late: Vec<Entry>,
    /// The newest timestamp the stream took, for the out-of-order window.
    newest: i64,
}

/// How many late entries a stream collects before they join its entries.
const LATE_MERGE: usize = 256;

impl Stream {
    /// Moves the late entries into `entries`, touching only the tail they reach into.
    fn merge_late(&mut self) {
        let Some(first) = self.late.first() else {
            return;
        };
        let at = self.entries.partition_point(|e| e.ts_ns <= first.ts_ns);
        let mut tail = self.entries.split_off(at);
        tail.append(&mut self.late);
        // Two sorted runs, which the stable sort merges in one pass; of equal times, the
        // entry that was in `entries` stays first.
        tail.sort_by_key(|e| e.ts_ns);
        self.entries.append(&mut tail);
    }
}

impl LogStore {
    /// Returns an empty store with the default [`LogLimits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns a receiver of every batch of entries applied from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<TailBatch>> {
        self.tail.subscribe()
    }

    /// Returns an empty store that checks entries against `limits`.
    pub fn with_limits(limits: LogLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Adds one entry to the stream `labels`, keeping the stream in time order
    /// (after any entries with the same timestamp).
    pub fn push(&self, labels: Labels, entry: Entry) {
        let mut inner = self.inner.write();
        let key = labels_string(&labels);
        push(&mut inner, &key, &labels, entry);
    }

    /// Calls `f` with each entry in `[start_ns, end_ns)` of the streams `stream_filter`
    /// accepts: the head's streams in label order, then the frozen parts', then each
    /// block's, each stream's entries in `direction`, until `f` says stop (a stream may
    /// so come several times, once per part). `required` lists substrings every line of
    /// interest holds: block chunks whose filters rule one out are not read (the caller
    /// still filters lines). Chunk counts go to [`take_scan_stats`].
    pub fn visit(
        &self,
        stream_filter: impl Fn(&Labels) -> bool,
        required: &[&str],
        start_ns: i64,
        end_ns: i64,
        direction: Direction,
        f: impl FnMut(&Labels, &Entry) -> Visit,
    ) {
        self.visit_with(
            stream_filter,
            required,
            start_ns,
            end_ns,
            direction,
            true,
            f,
        );
    }

    /// [`LogStore::visit`]; unless `with_metadata`, entries read from blocks come without
    /// their structured metadata (its frame is not decompressed), for callers that use
    /// only lines and times. Entries of the head and frozen parts keep theirs.
    #[allow(clippy::too_many_arguments)]
    pub fn visit_with(
        &self,
        stream_filter: impl Fn(&Labels) -> bool,
        required: &[&str],
        start_ns: i64,
        end_ns: i64,
        direction: Direction,
        with_metadata: bool,
        mut f: impl FnMut(&Labels, &Entry) -> Visit,
    ) {
        let range = |entries: &[Entry]| {
            let lo = entries.partition_point(|e| e.ts_ns < start_ns);
            let hi = entries.partition_point(|e| e.ts_ns < end_ns).max(lo);
            lo..hi
        };
        let run_entries = |labels: &Labels,
                           entries: &[Entry],
                           f: &mut dyn FnMut(&Labels, &Entry) -> Visit| {
            let entries = &entries[range(entries)];
            let mut run = |e: &Entry| f(labels, e);
            match direction {
                Direction::Forward => entries.iter().map(&mut run).find(|v| *v != Visit::Continue),
                Direction::Backward => entries
                    .iter()
                    .rev()
                    .map(&mut run)
                    .find(|v| *v != Visit::Continue),
            }
        };
        // A head stream's entries and late entries, merged into one time-ordered run.
        let run_head = |s: &Stream, f: &mut dyn FnMut(&Labels, &Entry) -> Visit| {
            if s.late.is_empty() {
                return run_entries(&s.labels, &s.entries, f);
            }
            let (a, b) = (&s.entries[range(&s.entries)], &s.late[range(&s.late)]);
            let (mut i, mut j) = (0, 0);
            while i < a.len() || j < b.len() {
                let e = match direction {
                    // Equal times: the entry of `entries` first, as a merge would leave it.
                    Direction::Forward
                        if j == b.len() || i < a.len() && a[i].ts_ns <= b[j].ts_ns =>
                    {
                        i += 1;
                        &a[i - 1]
                    }
                    Direction::Forward => {
                        j += 1;
                        &b[j - 1]
                    }
                    Direction::Backward
                        if j == b.len()
                            || i < a.len()
                                && a[a.len() - 1 - i].ts_ns > b[b.len() - 1 - j].ts_ns =>
                    {
                        i += 1;
                        &a[a.len() - i]
                    }
                    Direction::Backward => {
                        j += 1;
                        &b[b.len() - j]
                    }
                };
                let v = f(&s.labels, e);
                if v != Visit::Continue {
                    return Some(v);
                }
            }
            None
        };
        {
            let inner = self.inner.read();
            for s in inner.streams.values().filter(|s| stream_filter(&s.labels)) {
                if run_head(s, &mut f) == Some(Visit::Stop) {
                    return;
                }
            }
        }
        let frozen: Vec<Arc<engine::Frozen>> = self.frozen.read().clone();
        for part in &frozen {
            for s in part.streams.iter().filter(|s| stream_filter(&s.labels)) {
                if run_entries(&s.labels, &s.entries, &mut f) == Some(Visit::Stop) {
                    return;
                }
            }
        }
        let blocks: Vec<Arc<block::LogBlock>> = self.blocks.read().clone();
        let needles = chunk::NeedleGrams::of(required);
        let mut scan = ScanStats::default();
        'blocks: for b in &blocks {
            if b.meta.max_ts < start_ns || b.meta.min_ts >= end_ns {
                continue;
            }
            for s in b.streams.iter().filter(|s| stream_filter(&s.labels)) {
                let chunks: Vec<&block::ChunkRef> = match direction {
                    Direction::Forward => s.chunks.iter().collect(),
                    Direction::Backward => s.chunks.iter().rev().collect(),
                };
                for c in chunks {
                    if c.summary.max_ts < start_ns || c.summary.min_ts >= end_ns {
                        continue;
                    }
                    scan.chunks_ref += 1;
                    if !b.may_match(c, &needles) {
                        continue;
                    }
                    scan.chunks_downloaded += 1;
                    let entries = match b.read_chunk_with(c, with_metadata) {
                        Ok(e) => e,
                        Err(e) => {
                            tracing::error!(block = %b.id, error = %e, "a log chunk does not read; skipped");
                            continue;
                        }
                    };
                    scan.lines_decoded += entries.len() as u64;
                    match run_entries(&s.labels, &entries, &mut f) {
                        Some(Visit::Stop) => break 'blocks,
                        Some(Visit::NextStream) => break,
                        _ => {}
                    }
                }
            }
        }
        SCAN.with(|c| {
            let mut total = c.get();
            total.chunks_ref += scan.chunks_ref;
            total.chunks_downloaded += scan.chunks_downloaded;
            total.lines_decoded += scan.lines_decoded;
            c.set(total);
        });
    }

    /// Counts what the streams `stream_filter` accepts hold in `[start_ns, end_ns)`: the
    /// head's exactly, blocks' by the chunks overlapping the range.
    pub fn stats(
        &self,
        stream_filter: impl Fn(&Labels) -> bool,
        start_ns: i64,
        end_ns: i64,
    ) -> Stats {
        let mut st = Stats::default();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        {
            let inner = self.inner.read();
            for (key, s) in &inner.streams {
                if stream_filter(&s.labels) {
                    let parts = [s.entries.as_slice(), &s.late];
                    count_entries(&mut st, &mut seen, key, &parts, start_ns, end_ns);
                }
            }
        }
        for part in self.frozen.read().iter() {
            for s in part.streams.iter().filter(|s| stream_filter(&s.labels)) {
                count_entries(&mut st, &mut seen, &s.key, &[&s.entries], start_ns, end_ns);
            }
        }
        for b in self.blocks.read().iter() {
            for s in b.streams.iter().filter(|s| stream_filter(&s.labels)) {
                for c in &s.chunks {
                    if c.summary.max_ts < start_ns || c.summary.min_ts >= end_ns {
                        continue;
                    }
                    seen.insert(s.key.clone());
                    st.chunks += 1;
                    st.entries += u64::from(c.summary.entries);
                    st.bytes += c.summary.line_bytes;
                }
            }
        }
        st.streams = seen.len() as u64;
        st
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
    /// `[start_ns, end_ns)` (for blocks: a chunk overlapping it), sorted.
    pub fn series(
        &self,
        stream_filter: impl Fn(&Labels) -> bool,
        start_ns: i64,
        end_ns: i64,
    ) -> Vec<Labels> {
        let mut out: BTreeMap<String, Labels> = BTreeMap::new();
        let in_range = |entries: &[Entry]| {
            let lo = entries.partition_point(|e| e.ts_ns < start_ns);
            entries.get(lo).is_some_and(|e| e.ts_ns < end_ns)
        };
        {
            let inner = self.inner.read();
            for (key, s) in &inner.streams {
                if stream_filter(&s.labels) && (in_range(&s.entries) || in_range(&s.late)) {
                    out.insert(key.clone(), s.labels.clone());
                }
            }
        }
        for part in self.frozen.read().iter() {
            for s in &part.streams {
                if !out.contains_key(&s.key) && stream_filter(&s.labels) && in_range(&s.entries) {
                    out.insert(s.key.clone(), (*s.labels).clone());
                }
            }
        }
        for b in self.blocks.read().iter() {
            if b.meta.max_ts < start_ns || b.meta.min_ts >= end_ns {
                continue;
            }
            for s in &b.streams {
                if !out.contains_key(&s.key)
                    && stream_filter(&s.labels)
                    && s.chunks
                        .iter()
                        .any(|c| c.summary.max_ts >= start_ns && c.summary.min_ts < end_ns)
                {
                    out.insert(s.key.clone(), (*s.labels).clone());
                }
            }
        }
        out.into_values().collect()
    }
}

/// Adds the entries of a stream of the head or a frozen part (in time-ordered parts) in
/// `[start_ns, end_ns)` to `st`, as one chunk.
fn count_entries(
    st: &mut Stats,
    seen: &mut BTreeSet<String>,
    key: &str,
    parts: &[&[Entry]],
    start_ns: i64,
    end_ns: i64,
) {
    let mut any = false;
    for entries in parts {
        let lo = entries.partition_point(|e| e.ts_ns < start_ns);
        let hi = entries.partition_point(|e| e.ts_ns < end_ns).max(lo);
        any |= hi > lo;
        st.entries += (hi - lo) as u64;
        st.bytes += entries[lo..hi]
            .iter()
            .map(|e| e.line.len() as u64)
            .sum::<u64>();
    }
    if any {
        seen.insert(key.to_string());
        st.chunks += 1;
    }
}

/// Chunk counts of the block reads of this thread since the last [`take_scan_stats`], as
/// Loki's query statistics report them (`totalChunksRef`, `totalChunksDownloaded`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Chunks of the selected streams overlapping the queried range.
    pub chunks_ref: u64,
    /// Of those, chunks read (not ruled out by their filters).
    pub chunks_downloaded: u64,
    /// Entries decoded from the chunks read.
    pub lines_decoded: u64,
}

thread_local! {
    static SCAN: std::cell::Cell<ScanStats> = const { std::cell::Cell::new(ScanStats {
        chunks_ref: 0,
        chunks_downloaded: 0,
        lines_decoded: 0,
    }) };
}

/// Returns and resets this thread's [`ScanStats`]. A query evaluates on one thread
/// without yielding, so a handler that takes the stats before and after it gets the
/// query's own.
pub fn take_scan_stats() -> ScanStats {
    SCAN.with(|c| c.replace(ScanStats::default()))
}

/// Renders labels the way Loki prints a stream selector: `{a="b", c="d"}`, values quoted
/// as Go's `strconv.Quote` quotes them.
pub fn labels_string<'a>(labels: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in labels.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push('=');
        go_quote_into(&mut out, v);
    }
    out.push('}');
    out
}

/// Appends `s` double-quoted with Go's escapes: `\a \b \f \n \r \t \v`, `\\`, `\"`,
/// `\xNN` for other ASCII controls and `\uNNNN` for other non-printable characters.
pub fn go_quote_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn entry_bytes(e: &Entry) -> u64 {
    (e.line.len()
        + e.metadata
            .iter()
            .map(|(k, v)| k.len() + v.len() + 48)
            .sum::<usize>()
        + 64) as u64
}

fn push(inner: &mut Inner, key: &str, labels: &Labels, entry: Entry) {
    push_all(inner, key, labels, std::iter::once(entry));
}

/// Adds entries to the stream `key`, looked up once, keeping it in time order (each
/// after any entries with the same timestamp).
fn push_all(inner: &mut Inner, key: &str, labels: &Labels, entries: impl Iterator<Item = Entry>) {
    if inner.since.is_none() {
        inner.since = Some(std::time::Instant::now());
    }
    let Inner { streams, bytes, .. } = inner;
    let stream = match streams.get_mut(key) {
        Some(s) => s,
        None => streams.entry(key.to_string()).or_insert_with(|| Stream {
            labels: labels.clone(),
            entries: Vec::new(),
            late: Vec::new(),
            newest: i64::MIN,
        }),
    };
    for entry in entries {
        *bytes += entry_bytes(&entry);
        stream.newest = stream.newest.max(entry.ts_ns);
        if stream.entries.last().is_none_or(|e| e.ts_ns <= entry.ts_ns) {
            stream.entries.push(entry);
        } else {
            let at = stream.late.partition_point(|e| e.ts_ns <= entry.ts_ns);
            stream.late.insert(at, entry);
            if stream.late.len() >= LATE_MERGE {
                stream.merge_late();
            }
        }
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl record::StreamInfo for Inner {
    fn newest(&self, key: &str) -> Option<i64> {
        self.streams.get(key).map(|s| s.newest)
    }
    fn stream_count(&self) -> usize {
        self.streams.len()
    }
}

/// Moves a logged stream's entries into the head.
fn apply_stream(inner: &mut Inner, labels: Option<&Labels>, stream: push::proto::Stream) {
    let parsed;
    let labels = match labels {
        Some(l) => l,
        None => match record::parse_push_labels(&stream.labels) {
            Ok(l) => {
                parsed = l;
                &parsed
            }
            // Sanitize checked them before the log; a record that fails now is corrupt.
            Err(e) => {
                tracing::warn!(error = %e, "a logged stream's labels do not parse; skipped");
                return;
            }
        },
    };
    let mut interner = Interner::default();
    let entries = stream.entries.into_iter().map(|e| Entry {
        ts_ns: e.ts_ns(),
        line: e.line,
        metadata: e
            .structured_metadata
            .iter()
            .map(|p| interner.pair(&p.name, &p.value))
            .collect(),
    });
    push_all(inner, &stream.labels, labels, entries);
}

/// Makes metadata pairs sharing the strings of earlier ones: each name is allocated once,
/// and a value equal to its name's previous one is that one.
#[derive(Default)]
pub(crate) struct Interner {
    /// Per name seen: the name and its latest value.
    pairs: Vec<MetaPair>,
}

impl Interner {
    /// Names past this many are not remembered (a linear search stays short).
    const MAX_NAMES: usize = 64;

    /// The pair `name`=`value`.
    pub(crate) fn pair(&mut self, name: &str, value: &str) -> MetaPair {
        match self.pairs.iter_mut().find(|(n, _)| &**n == name) {
            Some((n, v)) => {
                if &**v != value {
                    *v = value.into();
                }
                (n.clone(), v.clone())
            }
            None => {
                let p: MetaPair = (name.into(), value.into());
                if self.pairs.len() < Self::MAX_NAMES {
                    self.pairs.push(p.clone());
                }
                p
            }
        }
    }
}

impl Store<LogsRecord> for LogStore {
    /// Gives OTLP records with neither a timestamp nor an observed timestamp the current
    /// time as their observed timestamp, as Loki stamps such entries on arrival; maps OTLP
    /// to streams and checks every entry ([`record`]). Doing it here, before the WAL, keeps
    /// [`Store::apply`] deterministic.
    fn sanitize(&self, req: &mut LogsRecord) -> Rejected {
        let now = now_ns();
        for rl in &mut req.wire.resource_logs {
            for sl in &mut rl.scope_logs {
                for r in &mut sl.log_records {
                    if r.time_unix_nano == 0 && r.observed_time_unix_nano == 0 {
                        r.observed_time_unix_nano = now as u64;
                    }
                }
            }
        }
        let inner = self.inner.read();
        record::sanitize(req, &*inner, &self.limits, now)
    }

    fn apply(&self, req: &LogsRecord) {
        self.apply_owned(req.clone());
    }

    fn apply_owned(&self, req: LogsRecord) {
        let tailing = self.tail.receiver_count() > 0;
        let mut batch: TailBatch = Vec::new();
        if tailing {
            for m in &req.mapped {
                let labels = Arc::new(m.labels.clone());
                batch.extend(m.entries.iter().map(|e| (labels.clone(), e.clone())));
            }
            let mut parsed = req.parsed.iter();
            for s in &req.wire.streams {
                let labels = match parsed.next() {
                    Some(l) => l.clone(),
                    None => record::parse_push_labels(&s.labels).unwrap_or_default(),
                };
                let labels = Arc::new(labels);
                for e in &s.entries {
                    batch.push((
                        labels.clone(),
                        Entry {
                            ts_ns: e.ts_ns(),
                            line: e.line.clone(),
                            metadata: e
                                .structured_metadata
                                .iter()
                                .map(|p| (p.name.as_str().into(), p.value.as_str().into()))
                                .collect(),
                        },
                    ));
                }
            }
        }
        self.apply_to_head(req);
        if tailing && !batch.is_empty() {
            // No listener left is not an error.
            let _ = self.tail.send(Arc::new(batch));
        }
    }

    fn approx_bytes(&self) -> u64 {
        self.inner.read().bytes + self.frozen.read().iter().map(|f| f.bytes).sum::<u64>()
    }
}

impl LogStore {
    fn apply_to_head(&self, req: LogsRecord) {
        // A logged OTLP request (field 1) is mapped here as sanitize mapped it; at ingest
        // sanitize's mapping is in `mapped`.
        let mut mapped = req.mapped;
        if mapped.is_empty() && !req.wire.resource_logs.is_empty() {
            let otlp = pharos_model::ExportLogsServiceRequest {
                resource_logs: req.wire.resource_logs,
            };
            mapped = record::map_otlp(&otlp, &self.limits.index_labels);
        }
        let mut inner = self.inner.write();
        for m in mapped {
            push_all(&mut inner, &m.key, &m.labels, m.entries.into_iter());
        }
        let mut parsed = req.parsed.into_iter();
        for stream in req.wire.streams {
            let labels = parsed.next();
            apply_stream(&mut inner, labels.as_ref(), stream);
        }
        // A logged push request (field 3), canonicalized as sanitize did.
        for mut stream in req.wire.push.map(|p| p.streams).unwrap_or_default() {
            if stream.entries.is_empty() {
                continue;
            }
            match record::canonicalize(&mut stream) {
                Ok(labels) => apply_stream(&mut inner, Some(&labels), stream),
                // Sanitize parsed them before the log; a record that fails now is corrupt.
                Err(e) => {
                    tracing::warn!(error = %e, "a logged stream's labels do not parse; skipped")
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod engine_tests;
