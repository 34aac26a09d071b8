//! The in-memory trace head: spans grouped by trace id, plus the service and
//! operation index the Jaeger API lists.
//!
//! Each span is stored with shared (`Arc`) handles to the resource and scope it
//! arrived with, so reading a trace back rebuilds OTLP `ResourceSpans` without
//! copying a resource per span. Spans keep their arrival order; regrouping on
//! read merges equal resources and equal scopes, whatever request they came in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, status::StatusCode};
use parking_lot::RwLock;
use pharos_model::trace_batch::TraceBatch;
use pharos_model::{ExportTraceServiceRequest, Rejected, Store, attrs};
use prost::Message;

use head::HeadTrace;

pub(crate) mod block;
pub mod engine;
pub(crate) mod head;
mod scan;
pub(crate) mod search;
pub(crate) mod tags;
pub mod traceql_search;

pub use engine::{BlockOptions, EngineError, FlushReport, MaintenanceReport, OpenReport};
pub use search::TraceQuery;
pub use tags::{INTRINSIC_TAGS, Intrinsic, TagRef, TagScope, TagValue};
pub use traceql_search::{HitSpan, HitSpanset, SearchHit, TraceqlSearch};

/// A trace id: 16 bytes, as in OTLP.
pub type TraceId = [u8; 16];

/// The service name OpenTelemetry SDKs report when `service.name` is unset.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// An operation of a service as Jaeger lists it: a span name and its OTLP span kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    /// The span name.
    pub name: String,
    /// The OTLP `SpanKind` as its integer value (0 unspecified .. 5 consumer).
    pub kind: i32,
}

/// How large one trace may grow (`limits.max_spans_per_trace`, `limits.max_bytes_per_trace`).
///
/// A span that would take its trace past either bound is refused in
/// [`Store::sanitize`] (the client hears of it through OTLP `partial_success`, as
/// Tempo answers `TRACE_TOO_LARGE`) and, should two requests race past the check,
/// dropped again in [`Store::apply`]. The spans already stored are kept: a trace is
/// cut, never lost. Zero turns a bound off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceLimits {
    /// The most spans one trace may hold; default 50,000. Tempo bounds bytes only; a
    /// small span encodes to about 100 bytes, so 50,000 is where 5 MB of such spans
    /// ends: the count bites only on floods of tiny spans, and it bounds the work of
    /// rebuilding, rendering and showing one trace (the Jaeger UI struggles well before).
    pub max_spans_per_trace: usize,
    /// The most bytes one trace may hold, counted as the sum of its spans' OTLP
    /// protobuf encodings (resource and scope not included); default 5,000,000,
    /// Tempo's `max_bytes_per_trace`.
    pub max_bytes_per_trace: u64,
}

impl Default for TraceLimits {
    fn default() -> Self {
        TraceLimits {
            max_spans_per_trace: 50_000,
            max_bytes_per_trace: 5_000_000,
        }
    }
}

impl TraceLimits {
    /// No bounds at all.
    pub const UNLIMITED: TraceLimits = TraceLimits {
        max_spans_per_trace: 0,
        max_bytes_per_trace: 0,
    };

    /// Returns whether a trace of `spans` spans and `bytes` bytes may take one more
    /// span of `len` bytes.
    fn fits(&self, spans: usize, bytes: u64, len: u64) -> bool {
        (self.max_spans_per_trace == 0 || spans < self.max_spans_per_trace)
            && (self.max_bytes_per_trace == 0 || bytes + len <= self.max_bytes_per_trace)
    }

    fn is_unlimited(&self) -> bool {
        *self == Self::UNLIMITED
    }
}

/// Spans the per-trace limits kept out of the head since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitCounts {
    /// Refused in `sanitize`, and reported to the client.
    pub refused: u64,
    /// Dropped in `apply` (a race between requests the client was not told of, or a
    /// replayed log written under larger limits).
    pub dropped: u64,
}

/// The traces slice's store: an in-memory head, frozen parts on their way to blocks, and
/// blocks ([`engine`]).
///
/// Implements [`Store`] for OTLP trace requests; the query methods return
/// spans as OTLP [`ResourceSpans`], grouped back by resource and scope. Reads see the
/// head, the frozen parts and the blocks; a trace whose spans are in several of them is
/// joined on read by id.
#[derive(Default)]
pub struct TraceStore {
    inner: RwLock<Inner>,
    /// Taken out of the head, not yet in blocks; oldest first.
    frozen: RwLock<Vec<Arc<engine::Frozen>>>,
    /// Served blocks, newest (latest span end) first.
    blocks: RwLock<Vec<Arc<block::TraceBlock>>>,
    engine: OnceLock<engine::Engine>,
    limits: TraceLimits,
    too_large_refused: AtomicU64,
    too_large_dropped: AtomicU64,
    /// The traces the last flush wrote as unsettled: their later spans are written apart
    /// too (see [`engine::Frozen`]).
    unsettled: parking_lot::Mutex<FastSet<TraceId>>,
}

#[derive(Default)]
struct Inner {
    traces: FastMap<TraceId, HeadTrace>,
    /// Service name → its operations, of the head and of every block loaded since start.
    services: BTreeMap<String, BTreeSet<Operation>>,
    /// Approximate bytes of the head (span encodings plus overhead, and resources).
    bytes: u64,
    /// When the head's oldest span arrived (since the last freeze).
    since: Option<std::time::Instant>,
    /// Hashes ([`operation_key`]) of the operations already in `services`,
    /// so a span of a known operation copies no string.
    operations_seen: FastSet<u64>,
    /// Spans taken since the store was made (never reset: [`HeadTrace::touched`]).
    arrivals: u64,
}

#[derive(Clone)]
pub(crate) struct Trace {
    spans: Vec<StoredSpan>,
    /// The sum of the spans' encoded lengths, for `max_bytes_per_trace`.
    bytes: u64,
    /// Earliest span start, in unix nanoseconds.
    start_ns: u64,
    /// Latest span end, in unix nanoseconds.
    end_ns: u64,
}

#[derive(Clone)]
pub(crate) struct StoredSpan {
    resource: Arc<ResourceInfo>,
    scope: Arc<ScopeInfo>,
    span: Span,
}

#[derive(PartialEq)]
pub(crate) struct ResourceInfo {
    resource: Option<Resource>,
    schema_url: String,
    service: String,
}

#[derive(PartialEq)]
pub(crate) struct ScopeInfo {
    scope: Option<InstrumentationScope>,
    schema_url: String,
}

impl TraceStore {
    /// Returns an empty store with the default [`TraceLimits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns an empty store bounding each trace by `limits`.
    pub fn with_limits(limits: TraceLimits) -> Self {
        TraceStore {
            limits,
            ..Self::default()
        }
    }

    /// Returns the spans the per-trace limits kept out since start.
    pub fn limit_counts(&self) -> LimitCounts {
        LimitCounts {
            refused: self.too_large_refused.load(Ordering::Relaxed),
            dropped: self.too_large_dropped.load(Ordering::Relaxed),
        }
    }

    /// Returns the trace `id` as OTLP resource spans, or `None` when no span of it is
    /// stored. With `window = Some((start_ns, end_ns))` the trace is returned only if
    /// its time range overlaps the window (bounds inclusive), as Tempo's `start`/`end` do.
    pub fn get(&self, id: &TraceId, window: Option<(u64, u64)>) -> Option<Vec<ResourceSpans>> {
        let trace = self.trace(id)?;
        if let Some((start, end)) = window
            && (trace.end_ns < start || trace.start_ns > end)
        {
            return None;
        }
        Some(trace.to_resource_spans())
    }

    /// Returns every span of trace `id`: the blocks' fragments (oldest block first), then
    /// the frozen parts', then the head's, duplicates (same span id and kind) dropped.
    fn trace(&self, id: &TraceId) -> Option<Trace> {
        let mut found: Option<Trace> = None;
        let mut add = |t: Trace| match &mut found {
            None => found = Some(t),
            Some(acc) => acc.absorb(t),
        };
        let mut blocks = self.blocks.read().clone();
        blocks.sort_by(|a, b| a.meta().ulid.cmp(&b.meta().ulid));
        for b in &blocks {
            match b.find(id) {
                Ok(Some(t)) => add(t),
                Ok(None) => {}
                Err(error) => tracing::error!(%error, "reading a trace block failed"),
            }
        }
        for f in self.frozen.read().iter() {
            if let Some(t) = f.traces.get(id) {
                add(t.materialize());
            }
        }
        let head = self.inner.read().traces.get(id).cloned();
        if let Some(t) = head {
            add(t.materialize());
        }
        found
    }

    /// Returns the known service names, sorted.
    pub fn services(&self) -> Vec<String> {
        self.inner.read().services.keys().cloned().collect()
    }

    /// Returns the operations of `service`, sorted by name then kind; empty when unknown.
    pub fn operations(&self, service: &str) -> Vec<Operation> {
        self.inner
            .read()
            .services
            .get(service)
            .map(|ops| ops.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Returns the service dependencies of the traces overlapping `[start_ns, end_ns]`, as
    /// Jaeger derives them: a span whose parent span (in the same trace) belongs to another
    /// service is one call from the parent's service to the span's. Sorted by (parent,
    /// child), with their call counts.
    pub fn dependencies(&self, start_ns: u64, end_ns: u64) -> Vec<(String, String, u64)> {
        let mut calls: BTreeMap<(String, String), u64> = BTreeMap::new();
        self.scan(
            Some((start_ns, end_ns)),
            &mut scan::Each(|_: &TraceId, trace: &Trace| {
                let service_of: HashMap<&[u8], &str> = trace
                    .spans
                    .iter()
                    .map(|s| (s.span.span_id.as_slice(), s.resource.service.as_str()))
                    .collect();
                for s in &trace.spans {
                    if s.span.parent_span_id.is_empty() {
                        continue;
                    }
                    let Some(&parent) = service_of.get(s.span.parent_span_id.as_slice()) else {
                        continue;
                    };
                    let child = s.resource.service.as_str();
                    if parent != child {
                        *calls
                            .entry((parent.to_string(), child.to_string()))
                            .or_default() += 1;
                    }
                }
            }),
        );
        calls.into_iter().map(|((p, c), n)| (p, c, n)).collect()
    }

    /// Returns an estimate of the head's memory use, in bytes.
    pub fn approx_bytes(&self) -> u64 {
        self.inner.read().bytes
    }

    /// Returns how many traces the head holds.
    pub fn trace_count(&self) -> usize {
        self.inner.read().traces.len()
    }

    /// Returns the traces matching `query`, newest (latest start) first, at most
    /// `query.limit` of them; see [`TraceQuery`] for the matching rules.
    pub fn search(&self, query: &TraceQuery) -> Vec<(TraceId, Vec<ResourceSpans>)> {
        let mut hits = scan::Newest::new(query.limit);
        let window = query
            .start_ns
            .map(|s| (s, query.end_ns.unwrap_or(u64::MAX)))
            .or(query.end_ns.map(|e| (0, e)));
        self.scan(
            window,
            &mut scan::Filtered {
                page_ok: |p: &block::PageSummary| query.page_may_match(p),
                row_ok: |rows: &dyn scan::Columns, t: usize| query.row_may_match(rows, t),
                newest: &mut hits,
                visit: |_: &TraceId, t: &Trace| {
                    t.spans.iter().any(|s| query.matches(s)).then_some(())
                },
            },
        );
        hits.into_sorted()
            .into_iter()
            .filter_map(|(id, _, ())| Some((id, self.trace(&id)?.to_resource_spans())))
            .collect()
    }
}

impl Trace {
    /// Adds `other`'s spans, except those this trace already holds (same span id and
    /// kind, as Tempo's combiner dedupes).
    fn absorb(&mut self, other: Trace) {
        let seen: std::collections::HashSet<(Vec<u8>, i32)> = self
            .spans
            .iter()
            .map(|s| (s.span.span_id.clone(), s.span.kind))
            .collect();
        for s in other.spans {
            if seen.contains(&(s.span.span_id.clone(), s.span.kind)) {
                continue;
            }
            self.bytes += s.span.encoded_len() as u64;
            self.start_ns = self.start_ns.min(s.span.start_time_unix_nano);
            self.end_ns = self
                .end_ns
                .max(s.span.end_time_unix_nano.max(s.span.start_time_unix_nano));
            self.spans.push(s);
        }
    }
}

/// Returns the hash of an operation (service, span name, kind): what the head and the
/// block writer remember to copy an operation's strings only the first time.
fn operation_key(service: &str, name: &str, kind: i32) -> u64 {
    fixed_hash((service, name, kind))
}

/// A `HashMap` with foldhash, for maps on the write path. Each map is seeded at random,
/// as std's are; foldhash is faster than std's SipHash and only minimally resistant to
/// keys chosen to collide.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// A `HashSet` with foldhash; see [`FastMap`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// A 64-bit hash that is the same for the same value within one process: what "seen"
/// sets of hashes keep in place of copies of the strings.
pub(crate) fn fixed_hash(v: impl std::hash::Hash) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(FIXED_SEED).hash_one(v)
}

const FIXED_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// The hasher of [`fixed_hash`], to hash a value in pieces.
pub(crate) fn fixed_hasher() -> impl std::hash::Hasher {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(FIXED_SEED).build_hasher()
}

/// Returns a resource's `service.name`, or [`UNKNOWN_SERVICE`].
fn service_of(resource: Option<&Resource>) -> String {
    let attrs = resource.map(|r| r.attributes.as_slice()).unwrap_or(&[]);
    attrs::get_str(attrs, "service.name").unwrap_or_else(|| UNKNOWN_SERVICE.to_string())
}

impl Trace {
    fn to_resource_spans(&self) -> Vec<ResourceSpans> {
        type ScopeGroup<'a> = (&'a Arc<ScopeInfo>, Vec<Span>);
        let mut groups: Vec<(&Arc<ResourceInfo>, Vec<ScopeGroup<'_>>)> = Vec::new();
        for s in &self.spans {
            let gi = match groups
                .iter()
                .position(|(r, _)| Arc::ptr_eq(r, &s.resource) || ***r == *s.resource)
            {
                Some(i) => i,
                None => {
                    groups.push((&s.resource, Vec::new()));
                    groups.len() - 1
                }
            };
            let scopes = &mut groups[gi].1;
            match scopes
                .iter_mut()
                .find(|(sc, _)| Arc::ptr_eq(sc, &s.scope) || ***sc == *s.scope)
            {
                Some((_, spans)) => spans.push(s.span.clone()),
                None => scopes.push((&s.scope, vec![s.span.clone()])),
            }
        }
        groups
            .into_iter()
            .map(|(r, scopes)| ResourceSpans {
                resource: r.resource.clone(),
                schema_url: r.schema_url.clone(),
                scope_spans: scopes
                    .into_iter()
                    .map(|(sc, spans)| ScopeSpans {
                        scope: sc.scope.clone(),
                        schema_url: sc.schema_url.clone(),
                        spans,
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Returns a trace id as a [`TraceId`], if it has the OTLP length and is not all zeros.
fn trace_id_of(id: &[u8]) -> Option<TraceId> {
    let id: TraceId = id.try_into().ok()?;
    (id != [0; 16]).then_some(id)
}

fn span_id_ok(id: &[u8]) -> bool {
    id.len() == 8 && id.iter().any(|b| *b != 0)
}

/// Returns whether the span's status is `STATUS_CODE_ERROR`.
pub(crate) fn is_error(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32)
}

impl TraceStore {
    /// Decides which spans of `batch` the head takes, in request order: spans whose
    /// trace id is not 16 bytes or all zeros, or whose span id is not 8 bytes or all
    /// zeros, could never be looked up again; then the spans that would take their trace
    /// past the [`TraceLimits`] are refused (the first spans of a trace are kept).
    fn screen(&self, batch: &TraceBatch) -> (Vec<bool>, Rejected) {
        let mut rejected = Rejected::default();
        let limits = self.limits;
        let inner = self.inner.read();
        // Spans and bytes per trace: stored, plus those of this request kept so far.
        let mut sizes: FastMap<TraceId, (usize, u64)> = FastMap::default();
        let (mut invalid, mut too_many, mut too_big) = (0u64, 0u64, 0u64);
        let keep = (0..batch.span_count())
            .map(|i| {
                let s = batch.span(i);
                let Some(id) = trace_id_of(s.trace_id) else {
                    invalid += 1;
                    return false;
                };
                if !span_id_ok(s.span_id) {
                    invalid += 1;
                    return false;
                }
                if limits.is_unlimited() {
                    return true;
                }
                let len = s.raw.len() as u64;
                let size = sizes.entry(id).or_insert_with(|| {
                    inner
                        .traces
                        .get(&id)
                        .map_or((0, 0), |t| (t.spans.len(), t.bytes))
                });
                if limits.fits(size.0, size.1, len) {
                    size.0 += 1;
                    size.1 += len;
                    true
                } else {
                    if limits.max_spans_per_trace != 0 && size.0 >= limits.max_spans_per_trace {
                        too_many += 1;
                    } else {
                        too_big += 1;
                    }
                    false
                }
            })
            .collect();
        drop(inner);
        rejected.add(invalid, "invalid or all-zero trace or span id");
        rejected.add(
            too_many,
            &format!(
                "TRACE_TOO_LARGE: max spans per trace ({}) exceeded (limits.max_spans_per_trace)",
                limits.max_spans_per_trace
            ),
        );
        rejected.add(
            too_big,
            &format!(
                "TRACE_TOO_LARGE: max bytes per trace ({}) exceeded (limits.max_bytes_per_trace)",
                limits.max_bytes_per_trace
            ),
        );
        self.too_large_refused
            .fetch_add(too_many + too_big, Ordering::Relaxed);
        (keep, rejected)
    }

    /// Adds a request's spans to the head, keeping the request's bytes: each span is a
    /// reference into them.
    fn apply_batch(&self, batch: TraceBatch) {
        let batch = Arc::new(head::Batch::new(batch));
        let b = &batch.batch;
        let now_ms = head::clock_ms();
        let mut inner = self.inner.write();
        let inner = &mut *inner;
        for i in 0..b.resource_count() {
            inner.bytes += b
                .resource(i)
                .parts
                .iter()
                .map(|p| p.len() as u64)
                .sum::<u64>();
        }
        for i in 0..b.span_count() {
            let s = b.span(i);
            // Sanitize removed these before the WAL; a replayed old record may still hold
            // one, and skipping it keeps replay equal to ingest.
            let Some(id) = trace_id_of(s.trace_id) else {
                continue;
            };
            let len = s.raw.len() as u64;
            let trace = inner.traces.entry(id).or_insert_with(HeadTrace::new);
            if !self.limits.fits(trace.spans.len(), trace.bytes, len) {
                if trace.spans.is_empty() {
                    inner.traces.remove(&id);
                }
                self.too_large_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            inner.bytes += len + 64;
            inner.since.get_or_insert_with(std::time::Instant::now);
            let service = &batch.resources[b.scope_resource(s.scope)].service;
            if inner
                .operations_seen
                .insert(operation_key(service, s.name, s.kind))
            {
                inner
                    .services
                    .entry(service.clone())
                    .or_default()
                    .insert(Operation {
                        name: s.name.to_string(),
                        kind: s.kind,
                    });
            }
            inner.arrivals += 1;
            trace.touched = inner.arrivals;
            trace.touched_ms = now_ms;
            trace.bytes += len;
            trace.start_ns = trace.start_ns.min(s.start_time_unix_nano);
            trace.end_ns = trace
                .end_ns
                .max(s.end_time_unix_nano.max(s.start_time_unix_nano));
            trace.spans.push(head::HeadSpan {
                batch: Arc::clone(&batch),
                index: i as u32,
            });
        }
    }
}

impl Store<TraceBatch> for TraceStore {
    /// Removes the spans [`TraceStore::screen`] refuses. The request is rebuilt only when
    /// one is refused.
    fn sanitize(&self, batch: &mut TraceBatch) -> Rejected {
        let (keep, rejected) = self.screen(batch);
        if keep.iter().all(|k| *k) {
            return rejected;
        }
        batch.retain(&keep);
        rejected
    }

    fn apply(&self, batch: &TraceBatch) {
        self.apply_batch(batch.clone());
    }

    fn apply_owned(&self, batch: TraceBatch) {
        self.apply_batch(batch);
    }

    fn approx_bytes(&self) -> u64 {
        TraceStore::approx_bytes(self)
    }
}

/// Decoded requests take the same path: encoded and kept as bytes.
impl Store<ExportTraceServiceRequest> for TraceStore {
    fn sanitize(&self, req: &mut ExportTraceServiceRequest) -> Rejected {
        let mut batch = TraceBatch::from_request(req);
        let rejected = Store::<TraceBatch>::sanitize(self, &mut batch);
        if rejected.count > 0 {
            *req = batch.decode();
        }
        rejected
    }

    fn apply(&self, req: &ExportTraceServiceRequest) {
        self.apply_batch(TraceBatch::from_request(req));
    }

    fn approx_bytes(&self) -> u64 {
        TraceStore::approx_bytes(self)
    }
}

#[cfg(test)]
mod block_tests;
#[cfg(test)]
pub(crate) mod tests;
