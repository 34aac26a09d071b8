//! The page writer: builds a version-4 page ([`PageWire`], `docs/format/traces.md`)
//! from spans as they come, in one pass per span.
//!
//! Each attribute goes straight to its stream (by key and string-or-not) with its
//! reference: a value equal to the one the stream last gave a span of the same op, or to
//! the stream's latest, is found by comparing bytes; only other values are looked up by
//! hash, in their stream's own table. A span's rest is written once, without its
//! attributes, into the page's rest buffer. Older versions (written by tests) are made by
//! decoding the version-4 page and encoding its columns again ([`super::wire::encode`]),
//! which a test also uses to check this writer against that encoder byte for byte.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;

use super::wire::{self, OpWire, PageWire, ShapeWire, StreamWire};
use super::{AttrValue, MAX_SUMMARY_PAIRS, PageInfoProto, Positions, TraceHeader, WriteSpan};
use crate::store::{FastMap, ResourceInfo, ScopeInfo, TraceId};

/// No value yet.
const NONE: u32 = u32::MAX;

/// A slot ([`WriteSpan::slots`]) holds the page's number above these bits and the
/// index in them; a larger index is not kept there.
const SLOT_INDEX_BITS: u32 = 20;
const SLOT_INDEX_MASK: u64 = (1 << SLOT_INDEX_BITS) - 1;

/// Whether two byte strings are equal; short ones (most keys and values) compared as
/// words in line, rather than through a call to `memcmp`.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    match n {
        0 => true,
        1..4 => a.iter().zip(b).all(|(x, y)| x == y),
        4..8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// The encodings of the resources and scopes a block's spans hold, by handle address:
/// each is encoded once per block rather than once per page. The handles are kept so no
/// address is freed and reused while the block is built.
#[derive(Default)]
pub(super) struct Encodings {
    resources: FastMap<usize, (Arc<ResourceInfo>, Bytes)>,
    scopes: FastMap<usize, (Arc<ScopeInfo>, Bytes)>,
}

impl Encodings {
    fn resource(&mut self, r: &Arc<ResourceInfo>) -> &Bytes {
        encoded(&mut self.resources, r, |r| {
            ResourceSpans {
                resource: r.resource.clone(),
                schema_url: r.schema_url.clone(),
                scope_spans: Vec::new(),
            }
            .encode_to_vec()
        })
    }

    fn scope(&mut self, s: &Arc<ScopeInfo>) -> &Bytes {
        encoded(&mut self.scopes, s, |s| {
            ScopeSpans {
                scope: s.scope.clone(),
                schema_url: s.schema_url.clone(),
                spans: Vec::new(),
            }
            .encode_to_vec()
        })
    }
}

/// `handle`'s encoding in `cache`, made by `encode` the first time.
fn encoded<'c, T>(
    cache: &'c mut FastMap<usize, (Arc<T>, Bytes)>,
    handle: &Arc<T>,
    encode: impl FnOnce(&T) -> Vec<u8>,
) -> &'c Bytes {
    &cache
        .entry(Arc::as_ptr(handle) as usize)
        .or_insert_with(|| (Arc::clone(handle), Bytes::from(encode(handle))))
        .1
}

/// A page's table of encoded resources (or scopes): each distinct encoding once, found
/// by the handle's address (the last one first), else by its bytes.
#[derive(Default)]
struct Table {
    entries: Vec<Bytes>,
    by_ptr: FastMap<usize, u32>,
    by_bytes: FastMap<Bytes, u32>,
    last: Option<(usize, u32)>,
}

impl Table {
    fn index(&mut self, ptr: usize, encoded: impl FnOnce() -> Bytes) -> u32 {
        if let Some((p, i)) = self.last
            && p == ptr
        {
            return i;
        }
        let i = match self.by_ptr.get(&ptr) {
            Some(&i) => i,
            None => {
                let bytes = encoded();
                let next = self.entries.len() as u32;
                let i = *self.by_bytes.entry(bytes.clone()).or_insert_with(|| {
                    self.entries.push(bytes);
                    next
                });
                self.by_ptr.insert(ptr, i);
                i
            }
        };
        self.last = Some((ptr, i));
        i
    }
}

/// One attribute stream of a page: its distinct values in order of first use (one
/// buffer), a reference per use, and the values by hash.
#[derive(Default)]
struct Stream {
    data: Vec<u8>,
    /// Value i is `data[ends[i - 1]..ends[i]]` (from 0 for the first).
    ends: Vec<u32>,
    /// The values by hash: (hash, index), the hash kept so growing the table hashes no
    /// value again.
    seen: hashbrown::HashTable<(u64, u32)>,
    refs: Vec<u64>,
    /// The value of the stream's latest use.
    recent: u32,
}

impl Stream {
    fn new() -> Stream {
        Stream {
            recent: NONE,
            ..Stream::default()
        }
    }

    fn value(&self, i: u32) -> &[u8] {
        let i = i as usize;
        let from = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.data[from..self.ends[i] as usize]
    }

    /// Adds a use of `value` by a span whose op last took value `last` of this stream;
    /// returns the value's index and whether it is new to the stream.
    fn push(
        &mut self,
        hasher: &foldhash::fast::RandomState,
        last: u32,
        value: &[u8],
    ) -> (u32, bool) {
        let n = self.ends.len() as u32;
        let (i, r, new) = if last != NONE && same(self.value(last), value) {
            (last, 1, false)
        } else if self.recent != NONE && same(self.value(self.recent), value) {
            (self.recent, 2, false)
        } else {
            let hash = hasher.hash_one(value);
            match self
                .seen
                .find(hash, |&(h, i)| h == hash && same(self.value(i), value))
            {
                Some(&(_, i)) => (i, u64::from(n - i) + 2, false),
                None => {
                    self.data.extend_from_slice(value);
                    self.ends.push(self.data.len() as u32);
                    self.seen.insert_unique(hash, (hash, n), |&(h, _)| h);
                    (n, 0, true)
                }
            }
        };
        self.refs.push(r);
        self.recent = i;
        (i, new)
    }

    fn into_wire(self) -> StreamWire {
        let data = Bytes::from(self.data);
        let mut from = 0;
        let values = self
            .ends
            .iter()
            .map(|&e| {
                let v = data.slice(from..e as usize);
                from = e as usize;
                v
            })
            .collect();
        StreamWire {
            values,
            refs: self.refs,
            packing: 0,
        }
    }
}

/// A page's attribute keys: each once, with whether it is a dedicated one (its pairs
/// summarized).
#[derive(Default)]
struct Keys {
    names: Vec<String>,
    of: FastMap<String, u32>,
    dedicated: Vec<bool>,
}

/// What the last span of a (resource, scope, name, kind) had: its keys by position,
/// shape and op. Such spans mostly repeat them, so most are found by comparing rather
/// than hashing.
struct LastSpan {
    keys: Vec<u32>,
    shape: u32,
    op: u32,
}

impl Keys {
    /// The index of `key`, given at `pos` of a span whose [`LastSpan`] gave `cached`.
    fn index_at(&mut self, key: &str, pos: usize, cached: &mut Vec<u32>) -> u32 {
        if let Some(&i) = cached.get(pos)
            && same(self.names[i as usize].as_bytes(), key.as_bytes())
        {
            return i;
        }
        let i = self.index(key);
        cached.truncate(pos);
        cached.push(i);
        i
    }

    fn index(&mut self, key: &str) -> u32 {
        if let Some(&i) = self.of.get(key) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(key.to_string());
        self.of.insert(key.to_string(), i);
        self.dedicated.push(super::is_dedicated_key(key));
        i
    }
}

/// The attributes of the span being added: stream numbers, and values in one buffer.
#[derive(Default)]
struct SpanAttrs {
    streams: Vec<u32>,
    values: Vec<u8>,
    ends: Vec<u32>,
}

/// A page being built.
#[derive(Default)]
pub(super) struct PageBuilder {
    trace_ids: Vec<u8>,
    trace_spans: Vec<u32>,
    trace_start: Vec<u64>,
    base_ns: u64,
    resources: Table,
    scopes: Table,
    names: Vec<String>,
    name_of: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    ops: Vec<OpWire>,
    op_of: FastMap<OpWire, u32>,
    op: Vec<u32>,
    /// Per op: the value each distinct stream of its shape last gave a span of the op,
    /// by slot (see `shape_slots`).
    op_last: Vec<Vec<u32>>,
    span_ids: Vec<u8>,
    parent: Vec<i32>,
    foreign_parents: Vec<Bytes>,
    /// Per span: start minus its trace's start, and end minus start (0 when the end is
    /// before the start and kept in `rest`).
    start: Vec<u64>,
    duration: Vec<u64>,
    status: Vec<i32>,
    odd_span_at: Vec<u32>,
    odd_span_ids: Vec<Bytes>,
    keys: Keys,
    shapes: Vec<ShapeWire>,
    shape_of: FastMap<Vec<u32>, u32>,
    /// Per shape, its prediction slots ([`wire::slots`]).
    shape_slots: Vec<Vec<usize>>,
    streams: Vec<Stream>,
    /// Per (resource, scope, name, kind): what its last span had.
    last_span: Vec<LastSpan>,
    last_span_of: FastMap<(u32, u32, u32, i32), u32>,
    /// Every span's rest, one after another; span k's ends at `rest_ends[k]`.
    rest: Vec<u8>,
    rest_ends: Vec<usize>,
    attrs: SpanAttrs,
    order: Vec<(u32, u32, u32)>,
    times: Vec<usize>,
    /// This page's number, for [`WriteSpan::slots`].
    number: u64,
    /// The spans' encoded bytes so far (when to cut the page).
    pub(super) bytes: u64,
    pub(super) info: PageInfoProto,
    pub(super) services: BTreeSet<String>,
    pub(super) span_names: BTreeSet<String>,
    pub(super) pairs: BTreeSet<(String, String)>,
    /// The page's operations (service, name, kind).
    pub(super) operations: BTreeSet<(String, String, i32)>,
    /// Whether `services` holds the service of resource `i`.
    service_listed: Vec<bool>,
}

impl PageBuilder {
    /// Whether the page holds no trace.
    pub(super) fn is_empty(&self) -> bool {
        self.trace_spans.is_empty()
    }

    fn name(&mut self, s: &str) -> (u32, bool) {
        let hash = self.hasher.hash_one(s);
        let names = &self.names;
        if let Some(&i) = self.name_of.find(hash, |&i| names[i as usize] == s) {
            return (i, false);
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_string());
        let (names, hasher) = (&self.names, &self.hasher);
        self.name_of
            .insert_unique(hash, i, |&j| hasher.hash_one(names[j as usize].as_str()));
        (i, true)
    }

    pub(super) fn push<S: WriteSpan>(
        &mut self,
        enc: &mut Encodings,
        id: &TraceId,
        trace: TraceHeader,
        spans: &[S],
    ) {
        let p = &mut self.info;
        if self.trace_spans.is_empty() {
            // A number no other page of this process has (not 0, which slots start at).
            static PAGES: AtomicU64 = AtomicU64::new(1);
            self.number = PAGES.fetch_add(1, Ordering::Relaxed);
            self.base_ns = trace.start_ns;
            p.first_trace = id.to_vec();
            p.min_start_ns = u64::MAX;
            p.min_span_duration_ns = u64::MAX;
            p.min_trace_duration_ns = u64::MAX;
        }
        p.last_trace = id.to_vec();
        p.traces += 1;
        p.spans += spans.len() as u32;
        p.min_start_ns = p.min_start_ns.min(trace.start_ns);
        p.max_end_ns = p.max_end_ns.max(trace.end_ns);
        let trace_duration = trace.end_ns.saturating_sub(trace.start_ns);
        p.min_trace_duration_ns = p.min_trace_duration_ns.min(trace_duration);
        p.max_trace_duration_ns = p.max_trace_duration_ns.max(trace_duration);
        self.trace_ids.extend_from_slice(id);
        self.trace_spans.push(spans.len() as u32);
        let base = self.base_ns.min(trace.start_ns);
        if base < self.base_ns {
            // Traces come in id order, not time order: rebase the earlier deltas.
            let shift = self.base_ns - base;
            for d in &mut self.trace_start {
                *d += shift;
            }
            self.base_ns = base;
        }
        self.trace_start.push(trace.start_ns - base);
        self.bytes += trace.bytes;
        let position = Positions::new(spans);
        for s in spans {
            self.push_span(enc, s, trace.start_ns, &position);
        }
    }

    fn push_span<S: WriteSpan>(
        &mut self,
        enc: &mut Encodings,
        s: &S,
        trace_start: u64,
        position: &Positions<'_, S>,
    ) {
        let resource = s.resource();
        let scope = s.scope();
        let page = self.number;
        let slot = |slot: Option<&AtomicU64>, find: &mut dyn FnMut() -> u32| match slot {
            Some(slot) => {
                let v = slot.load(Ordering::Relaxed);
                if v >> SLOT_INDEX_BITS == page {
                    (v & SLOT_INDEX_MASK) as u32
                } else {
                    let i = find();
                    if u64::from(i) <= SLOT_INDEX_MASK {
                        slot.store(page << SLOT_INDEX_BITS | u64::from(i), Ordering::Relaxed);
                    }
                    i
                }
            }
            None => find(),
        };
        let slots = s.slots();
        let r = slot(slots.map(|s| s.0), &mut || {
            self.resources.index(Arc::as_ptr(resource) as usize, || {
                enc.resource(resource).clone()
            })
        });
        let sc = slot(slots.map(|s| s.1), &mut || {
            self.scopes
                .index(Arc::as_ptr(scope) as usize, || enc.scope(scope).clone())
        });

        let span_id = s.span_id();
        let k = self.parent.len() as u32;
        if span_id.len() == 8 {
            self.span_ids.extend_from_slice(span_id);
        } else {
            // Ids are checked at ingest; an older log may still hold another length.
            self.span_ids.extend_from_slice(&[0; 8]);
            self.odd_span_at.push(k);
            self.odd_span_ids.push(Bytes::copy_from_slice(span_id));
        }
        let parent_id = s.parent_span_id();
        let parent = if parent_id.is_empty() {
            0
        } else if let Some(i) = position.get(parent_id) {
            i as i32 + 1
        } else {
            self.foreign_parents.push(Bytes::copy_from_slice(parent_id));
            -1
        };
        self.parent.push(parent);
        let (start, end) = (s.start(), s.end());
        let start_rel = start.saturating_sub(trace_start);
        self.start.push(start_rel);
        let keep_end = end < start;
        let duration = if keep_end { 0 } else { end - start };
        self.duration.push(duration);
        let (name, new_name) = self.name(s.name());
        let kind = s.kind();
        let next = self.last_span.len() as u32;
        let cache = *self.last_span_of.entry((r, sc, name, kind)).or_insert(next) as usize;
        if cache == self.last_span.len() {
            self.last_span.push(LastSpan {
                keys: Vec::new(),
                shape: NONE,
                op: NONE,
            });
        }
        let code = s.status_code();
        self.status.push(code);

        // The attributes to their streams' keys, the rest to the page's rest buffer.
        let (keys, attrs) = (&mut self.keys, &mut self.attrs);
        let last_span = &mut self.last_span[cache];
        attrs.streams.clear();
        attrs.values.clear();
        attrs.ends.clear();
        let from = self.rest.len();
        s.attributes_and_rest(
            keep_end,
            |key, value| {
                let pos = attrs.streams.len();
                let key = keys.index_at(key, pos, &mut last_span.keys);
                let (stream, bytes) = match value {
                    AttrValue::Str(v) => (key * 2 + 1, v.as_bytes()),
                    AttrValue::Other(v) => (key * 2, v),
                };
                attrs.streams.push(stream);
                attrs.values.extend_from_slice(bytes);
                attrs.ends.push(attrs.values.len() as u32);
            },
            &mut self.rest,
            &mut self.order,
        );
        // Event times are stored from the span's start (the base and trace start add up
        // to the trace's start, whatever rebasing happens later).
        let rest = &mut self.rest[from..];
        wire::event_times(rest, &mut self.times).expect("the writer's rest parses");
        let absolute = trace_start.wrapping_add(start_rel);
        wire::shift_event_times(rest, &self.times, absolute.wrapping_neg());
        self.rest_ends.push(self.rest.len());

        let cached = self.last_span[cache].shape;
        let shape = if cached != NONE && self.shapes[cached as usize].streams == self.attrs.streams
        {
            cached
        } else if let Some(&i) = self.shape_of.get(&self.attrs.streams) {
            i
        } else {
            let i = self.shapes.len() as u32;
            let streams = self.attrs.streams.clone();
            self.shape_slots.push(wire::slots(&streams));
            self.shape_of.insert(streams.clone(), i);
            self.shapes.push(ShapeWire { streams });
            i
        };
        let o = OpWire {
            resource: r,
            scope: sc,
            name,
            kind,
            shape,
        };
        let next = self.ops.len() as u32;
        let mut new_op = false;
        let cached = self.last_span[cache].op;
        let op = if cached != NONE && self.ops[cached as usize] == o {
            cached
        } else {
            *self.op_of.entry(o.clone()).or_insert_with(|| {
                new_op = true;
                next
            })
        };
        let last_span = &mut self.last_span[cache];
        last_span.shape = shape;
        last_span.op = op;
        if new_op {
            self.ops.push(o);
            self.op_last
                .push(vec![NONE; self.shapes[shape as usize].streams.len()]);
        }
        self.op.push(op);

        let slots = &self.shape_slots[shape as usize];
        let last = &mut self.op_last[op as usize];
        let mut from = 0usize;
        for (pos, &n) in self.attrs.streams.iter().enumerate() {
            let to = self.attrs.ends[pos] as usize;
            let value = &self.attrs.values[from..to];
            from = to;
            let n = n as usize;
            if self.streams.len() <= n {
                self.streams.resize_with(n + 1, Stream::new);
            }
            let slot = slots[pos];
            let (i, new) = self.streams[n].push(&self.hasher, last[slot], value);
            last[slot] = i;
            let key = n / 2;
            if new
                && n % 2 == 1
                && self.keys.dedicated[key]
                && self.pairs.len() <= MAX_SUMMARY_PAIRS
            {
                let value = std::str::from_utf8(value).expect("a string attribute");
                self.pairs
                    .insert((self.keys.names[key].clone(), value.to_string()));
            }
        }

        let info = &mut self.info;
        info.min_span_duration_ns = info.min_span_duration_ns.min(duration);
        info.max_span_duration_ns = info.max_span_duration_ns.max(duration);
        // Values outside OTLP's enums (refused at ingest) set bit 31.
        let bit = |v: i32, max: i32| {
            if (0..=max).contains(&v) {
                1u32 << v
            } else {
                1 << 31
            }
        };
        info.kinds |= bit(kind, 5);
        info.statuses |= bit(code, 2);
        let r = r as usize;
        if self.service_listed.len() <= r {
            self.service_listed.resize(r + 1, false);
        }
        if !self.service_listed[r] {
            self.service_listed[r] = true;
            self.services.insert(resource.service.clone());
        }
        if new_op {
            self.operations
                .insert((resource.service.clone(), s.name().to_string(), kind));
        }
        if new_name {
            self.span_names.insert(s.name().to_string());
        }
    }

    /// The page as version 4 (before compression).
    pub(super) fn encode(&mut self) -> Vec<u8> {
        let first_span = wire::first_spans(&self.trace_spans).expect("span counts fit");
        let (start, ends) =
            wire::start_and_ends(&self.parent, &self.start, &self.duration, &first_span, true);
        let pco = |v: &[i64]| {
            Bytes::from(pco::standalone::simple_compress(v, &wire::pco_config()).expect("pco"))
        };
        let high: Vec<u64> = self
            .trace_ids
            .chunks_exact(16)
            .map(|id| u64::from_be_bytes(id[..8].try_into().expect("eight bytes")))
            .collect();
        let rest = Bytes::from(std::mem::take(&mut self.rest));
        let mut from = 0;
        let page = PageWire {
            trace_ids: self
                .trace_ids
                .chunks_exact(16)
                .flat_map(|id| id[8..].iter().copied())
                .collect(),
            trace_ids_high: Bytes::from(
                pco::standalone::simple_compress(&high, &wire::pco_config()).expect("pco"),
            ),
            trace_spans: std::mem::take(&mut self.trace_spans),
            trace_start: std::mem::take(&mut self.trace_start),
            base_ns: self.base_ns,
            resources: std::mem::take(&mut self.resources.entries),
            scopes: std::mem::take(&mut self.scopes.entries),
            names: std::mem::take(&mut self.names),
            ops: std::mem::take(&mut self.ops),
            op: std::mem::take(&mut self.op),
            span_ids: Bytes::from(std::mem::take(&mut self.span_ids)),
            parent: std::mem::take(&mut self.parent),
            foreign_parents: std::mem::take(&mut self.foreign_parents),
            start: pco(&start),
            duration: Bytes::new(),
            ends: pco(&ends),
            status: std::mem::take(&mut self.status),
            keys: std::mem::take(&mut self.keys.names),
            shapes: std::mem::take(&mut self.shapes),
            streams: std::mem::take(&mut self.streams)
                .into_iter()
                .enumerate()
                .map(|(n, s)| {
                    let mut w = s.into_wire();
                    // A string stream of only IPv4 addresses or only hex is stored as
                    // their bytes.
                    if n % 2 == 1 {
                        wire::pack_values(&mut w);
                    }
                    w
                })
                .collect(),
            rest: self
                .rest_ends
                .iter()
                .map(|&e| {
                    let r = rest.slice(from..e);
                    from = e;
                    r
                })
                .collect(),
            odd_span_at: std::mem::take(&mut self.odd_span_at),
            odd_span_ids: std::mem::take(&mut self.odd_span_ids),
            event_times_from_start: true,
            version: u32::from(super::PAGE_VERSION),
        };
        page.encode_to_vec()
    }
}
