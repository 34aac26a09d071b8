//! How the head keeps spans: each request as the bytes it arrived as ([`TraceBatch`]),
//! with its few resources and scopes decoded once, and each trace as a list of
//! (request, span) references into them. Nothing per span is decoded or copied on the
//! way in; the block writer reads the spans' bytes directly ([`RawSpan`]), and readers
//! that want OTLP spans decode a trace when they read it ([`HeadTrace::materialize`]).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use pharos_model::trace_batch::TraceBatch;
use pharos_model::view::{self, SpanView, ValueView};
use prost::Message;

use super::block::{self, AttrValue, WriteSpan};
use super::{ResourceInfo, ScopeInfo, StoredSpan, Trace, service_of};

/// A request the head keeps whole, shared by its spans.
pub(crate) struct Batch {
    pub(crate) batch: TraceBatch,
    /// Per `ResourceSpans` of the request.
    pub(crate) resources: Vec<Arc<ResourceInfo>>,
    /// Per `ScopeSpans` of the request.
    pub(crate) scopes: Vec<Arc<ScopeInfo>>,
    /// Per resource and per scope: where the page being written keeps it (see
    /// [`crate::store::block::WriteSpan::slots`]).
    pub(crate) resource_slots: Vec<AtomicU64>,
    pub(crate) scope_slots: Vec<AtomicU64>,
}

impl Batch {
    /// Decodes the request's resources and scopes (parts given twice merge, as prost
    /// merges them).
    pub(crate) fn new(batch: TraceBatch) -> Batch {
        let resources = (0..batch.resource_count())
            .map(|i| {
                let r = batch.resource(i);
                let resource: Option<Resource> = merged(&r.parts);
                Arc::new(ResourceInfo {
                    service: service_of(resource.as_ref()),
                    resource,
                    schema_url: r.schema_url.to_string(),
                })
            })
            .collect();
        let scopes = (0..batch.scope_count())
            .map(|i| {
                let s = batch.scope(i);
                let scope: Option<InstrumentationScope> = merged(&s.parts);
                Arc::new(ScopeInfo {
                    scope,
                    schema_url: s.schema_url.to_string(),
                })
            })
            .collect();
        Batch {
            resource_slots: (0..batch.resource_count())
                .map(|_| AtomicU64::new(0))
                .collect(),
            scope_slots: (0..batch.scope_count())
                .map(|_| AtomicU64::new(0))
                .collect(),
            batch,
            resources,
            scopes,
        }
    }

    /// Returns span `i` with its resource and scope.
    pub(crate) fn raw_span(&self, i: usize) -> RawSpan<'_> {
        let view = self.batch.span(i);
        let r = self.batch.scope_resource(view.scope);
        RawSpan {
            batch: &self.batch,
            index: i,
            resource: &self.resources[r],
            scope: &self.scopes[view.scope],
            slots: (&self.resource_slots[r], &self.scope_slots[view.scope]),
            view,
        }
    }
}

/// The message given in `parts` (a field given several times merges, as prost merges
/// it); `None` when it was not given.
fn merged<M: Message + Default>(parts: &[&[u8]]) -> Option<M> {
    (!parts.is_empty()).then(|| {
        let mut m = M::default();
        for p in parts {
            m.merge(*p).expect("checked bytes decode");
        }
        m
    })
}

/// A span of the head: span `index` of `batch`.
#[derive(Clone)]
pub(crate) struct HeadSpan {
    pub(crate) batch: Arc<Batch>,
    pub(crate) index: u32,
}

impl HeadSpan {
    pub(crate) fn raw(&self) -> RawSpan<'_> {
        self.batch.raw_span(self.index as usize)
    }
}

/// A trace of the head.
#[derive(Clone)]
pub(crate) struct HeadTrace {
    pub(crate) spans: Vec<HeadSpan>,
    /// The sum of the spans' encoded lengths, for `max_bytes_per_trace`.
    pub(crate) bytes: u64,
    /// Earliest span start, in unix nanoseconds.
    pub(crate) start_ns: u64,
    /// Latest span end, in unix nanoseconds.
    pub(crate) end_ns: u64,
    /// When the trace last took a span: the head's arrival count then, and
    /// [`clock_ms`]. A flush writes the traces that took one lately apart (they may be
    /// split by it).
    pub(crate) touched: u64,
    pub(crate) touched_ms: u64,
}

/// Milliseconds since the process first asked: a clock for "lately" only.
pub(crate) fn clock_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

impl HeadTrace {
    pub(crate) fn new() -> HeadTrace {
        HeadTrace {
            spans: Vec::new(),
            bytes: 0,
            start_ns: u64::MAX,
            end_ns: 0,
            touched: 0,
            touched_ms: 0,
        }
    }

    /// Asks the processor to fetch the index entries of the trace's spans (see
    /// [`TraceBatch::prefetch_index`]): a writer does it two traces ahead.
    pub(crate) fn prefetch_index(&self) {
        for s in &self.spans {
            s.batch.batch.prefetch_index(s.index as usize);
        }
    }

    /// Asks the processor to fetch the trace's spans' first bytes: a writer does it one
    /// trace ahead.
    pub(crate) fn prefetch_spans(&self) {
        for s in &self.spans {
            s.batch.batch.prefetch_span(s.index as usize);
        }
    }

    /// Returns the trace with its spans decoded, as the readers take it.
    pub(crate) fn materialize(&self) -> Trace {
        Trace {
            spans: self
                .spans
                .iter()
                .map(|s| {
                    let raw = s.raw();
                    StoredSpan {
                        resource: Arc::clone(raw.resource),
                        scope: Arc::clone(raw.scope),
                        span: Span::decode(raw.view.raw).expect("checked bytes decode"),
                    }
                })
                .collect(),
            bytes: self.bytes,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
        }
    }
}

/// A span of a kept request, read in place: what the block writer takes from the head.
pub(crate) struct RawSpan<'a> {
    pub(crate) batch: &'a TraceBatch,
    pub(crate) index: usize,
    pub(crate) view: SpanView<'a>,
    pub(crate) resource: &'a Arc<ResourceInfo>,
    pub(crate) scope: &'a Arc<ScopeInfo>,
    /// The request's slots of its resource and scope.
    pub(crate) slots: (&'a AtomicU64, &'a AtomicU64),
}

impl WriteSpan for RawSpan<'_> {
    fn resource(&self) -> &Arc<ResourceInfo> {
        self.resource
    }
    fn scope(&self) -> &Arc<ScopeInfo> {
        self.scope
    }
    fn span_id(&self) -> &[u8] {
        self.view.span_id
    }
    fn parent_span_id(&self) -> &[u8] {
        self.view.parent_span_id
    }
    fn name(&self) -> &str {
        self.view.name
    }
    fn kind(&self) -> i32 {
        self.view.kind
    }
    fn start(&self) -> u64 {
        self.view.start_time_unix_nano
    }
    fn end(&self) -> u64 {
        self.view.end_time_unix_nano
    }
    fn status_code(&self) -> i32 {
        self.view.status_code
    }
    fn slots(&self) -> Option<(&AtomicU64, &AtomicU64)> {
        Some(self.slots)
    }
    /// In one pass over the span's fields: calls `attribute(key, value)` for each
    /// attribute in order (a string value under a key given as a string as
    /// [`AttrValue::Str`], see `block::dedicated_value`; any other as its encoded
    /// `KeyValue` after the key), and appends to `buf` what a page's `rest` keeps of the
    /// span, as `block::encode_rest` does for a decoded span, by copying the other fields
    /// as they came. For a request encoded as prost encodes (fields in number order) the
    /// bytes are the same; for any other, they decode to the same span. `order` is
    /// scratch space.
    fn attributes_and_rest(
        &self,
        keep_end: bool,
        mut attribute: impl FnMut(&str, AttrValue<'_>),
        buf: &mut Vec<u8>,
        order: &mut Vec<(u32, u32, u32)>,
    ) {
        let raw = self.view.raw;
        let base = raw.as_ptr() as usize;
        order.clear();
        // Scalars keep their last value (prost's reading): their index in `order`.
        let mut last = [usize::MAX; 17];
        for (f, kv) in self.batch.span_fields(self.index) {
            let keep = match (f.number, kv) {
                (3, _) => !f.payload.is_empty(),
                (9, Some(kv)) => {
                    match kv.value {
                        ValueView::Str(v) if kv.key_strindex == 0 => {
                            attribute(kv.key, AttrValue::Str(v));
                        }
                        // The page keeps an attribute's key apart, read from the front of
                        // its `KeyValue`: one whose key comes later or twice is encoded
                        // as prost would.
                        _ if key_first(f.payload) => {
                            block::other_attribute(f.payload, &mut attribute);
                        }
                        _ => {
                            let kv = KeyValue::decode(f.payload).expect("checked bytes decode");
                            block::other_attribute(&kv.encode_to_vec(), &mut attribute);
                        }
                    }
                    continue;
                }
                (10 | 12 | 14 | 16, _) => f.scalar as u32 != 0,
                (11 | 13 | 15, _) => true,
                _ => continue,
            };
            let n = f.number as usize;
            let scalar = matches!(n, 3 | 10 | 12 | 14 | 16);
            if scalar && last[n] != usize::MAX {
                // A later value replaces the earlier one, kept or not.
                order[last[n]].0 = u32::MAX;
            }
            if !keep {
                continue;
            }
            let off = (f.raw.as_ptr() as usize - base) as u32;
            if scalar {
                last[n] = order.len();
            }
            order.push((f.number, off, f.raw.len() as u32));
        }
        if !order.is_sorted_by_key(|o| o.0) {
            order.sort_by_key(|o| o.0);
        }
        let end = self.view.end_time_unix_nano;
        let mut end_written = !(keep_end && end != 0);
        for &(n, off, len) in order.iter() {
            if n == u32::MAX {
                break;
            }
            if !end_written && n > 8 {
                prost::encoding::fixed64::encode(8, &end, buf);
                end_written = true;
            }
            buf.extend_from_slice(&raw[off as usize..(off + len) as usize]);
        }
        if !end_written {
            prost::encoding::fixed64::encode(8, &end, buf);
        }
    }
}

/// Whether the encoded `KeyValue` `kv` gives its key first and once, or not at all: as
/// prost writes it.
fn key_first(kv: &[u8]) -> bool {
    // A key past the first field is either late or given again.
    !view::fields(kv).skip(1).any(|f| f.number == 1)
}

/// A head trace's spans as a scan tests them before it decodes the trace (one trace: its
/// number is 0).
pub(crate) struct HeadRows<'a>(pub(crate) &'a HeadTrace);

impl super::scan::Columns for HeadRows<'_> {
    fn spans(&self, _t: usize) -> std::ops::Range<usize> {
        0..self.0.spans.len()
    }
    fn service(&self, k: usize) -> &str {
        &self.0.spans[k].raw().resource.service
    }
    fn name(&self, k: usize) -> &str {
        self.0.spans[k].raw().view.name
    }
    fn kind(&self, k: usize) -> i32 {
        self.0.spans[k].raw().view.kind
    }
    fn status(&self, k: usize) -> i32 {
        self.0.spans[k].raw().view.status_code
    }
    fn duration(&self, k: usize) -> u64 {
        let s = self.0.spans[k].raw().view;
        s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano)
    }
    fn start(&self, _t: usize, k: usize) -> u64 {
        self.0.spans[k].raw().view.start_time_unix_nano
    }
    fn attr(&self, k: usize, key: &str) -> Option<&str> {
        let s = &self.0.spans[k];
        s.batch
            .batch
            .span_attributes_where(s.index as usize, move |k| k == key)
            .find_map(|kv| match kv.value {
                ValueView::Str(v) if kv.key_strindex == 0 => Some(v),
                _ => None,
            })
    }
}
