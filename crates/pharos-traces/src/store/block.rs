//! One immutable trace block: traces sorted by id, cut into zstd-compressed columnar
//! pages, with an index of page summaries (for pruning), a bloom filter of trace ids (so a
//! lookup by id opens only the blocks that can hold it) and the block's dictionaries of
//! services and operations. The format is specified in `docs/format/traces.md`.
//!
//! A page rebuilds every span exactly as it arrived (OTLP protobuf in, the same protobuf
//! out): the columns hold the fields search reads (ids, parent, times, name, kind, status,
//! the `http.*`, `db.*` and `rpc.*` string attributes), and each span's remaining fields
//! (attributes, events, links, status, trace state, flags) stay one protobuf "rest" blob.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde::{Deserialize, Serialize};

mod builder;
mod wire;

use super::head::{HeadTrace, RawSpan};
use super::{FastMap, Operation, ResourceInfo, ScopeInfo, StoredSpan, Trace, TraceId, service_of};

/// A span as the block writer reads it: decoded ([`StoredSpan`]: compaction, tests) or
/// in place in the bytes it arrived as ([`RawSpan`]: the head). Both give the same page.
pub(crate) trait WriteSpan {
    fn resource(&self) -> &Arc<ResourceInfo>;
    fn scope(&self) -> &Arc<ScopeInfo>;
    fn span_id(&self) -> &[u8];
    fn parent_span_id(&self) -> &[u8];
    fn name(&self) -> &str;
    fn kind(&self) -> i32;
    fn start(&self) -> u64;
    fn end(&self) -> u64;
    fn status_code(&self) -> i32;
    /// Where the span's resource and scope may note their index in the page being written
    /// (with the page's number): a span of the same request then finds them without a
    /// lookup. `None` when the span has no such place.
    fn slots(&self) -> Option<(&AtomicU64, &AtomicU64)> {
        None
    }
    /// Calls `attribute(key, value)` for each of the span's attributes, in order, and
    /// appends the span's `rest` without its attributes to `buf` (see the format);
    /// `order` is scratch space.
    fn attributes_and_rest(
        &self,
        keep_end: bool,
        attribute: impl FnMut(&str, AttrValue<'_>),
        buf: &mut Vec<u8>,
        order: &mut Vec<(u32, u32, u32)>,
    );
}

/// A span attribute's value as a page stores it.
pub(crate) enum AttrValue<'a> {
    /// A string value under a key given as a string: the value of a string stream.
    Str(&'a str),
    /// Any other: the attribute's encoded `KeyValue` after its key field.
    Other(&'a [u8]),
}

/// Calls `attribute` with an attribute given as an encoded `KeyValue` that is not a
/// string stream's: its key (from the front of the encoding, as the page keeps it) and
/// the bytes after it.
pub(crate) fn other_attribute(kv: &[u8], attribute: &mut impl FnMut(&str, AttrValue<'_>)) {
    let (key, value) = wire::split_key_value(kv).expect("checked bytes");
    let key = std::str::from_utf8(key).expect("a checked key is UTF-8");
    attribute(key, AttrValue::Other(value));
}

impl WriteSpan for StoredSpan {
    fn resource(&self) -> &Arc<ResourceInfo> {
        &self.resource
    }
    fn scope(&self) -> &Arc<ScopeInfo> {
        &self.scope
    }
    fn span_id(&self) -> &[u8] {
        &self.span.span_id
    }
    fn parent_span_id(&self) -> &[u8] {
        &self.span.parent_span_id
    }
    fn name(&self) -> &str {
        &self.span.name
    }
    fn kind(&self) -> i32 {
        self.span.kind
    }
    fn start(&self) -> u64 {
        self.span.start_time_unix_nano
    }
    fn end(&self) -> u64 {
        self.span.end_time_unix_nano
    }
    fn status_code(&self) -> i32 {
        self.span.status.as_ref().map_or(0, |st| st.code)
    }
    fn attributes_and_rest(
        &self,
        keep_end: bool,
        mut attribute: impl FnMut(&str, AttrValue<'_>),
        buf: &mut Vec<u8>,
        _order: &mut Vec<(u32, u32, u32)>,
    ) {
        let mut scratch = Vec::new();
        for kv in &self.span.attributes {
            match dedicated_value(kv) {
                Some(value) => attribute(&kv.key, AttrValue::Str(value)),
                None => {
                    scratch.clear();
                    kv.encode(&mut scratch).expect("a Vec grows");
                    other_attribute(&scratch, &mut attribute);
                }
            }
        }
        encode_rest(&self.span, keep_end, buf);
    }
}

/// A span of a decoded page, read from its columns as it is written again: what a merge
/// copies without rebuilding the span ([`PageRows::trace`] would).
pub(crate) struct RowSpan<'a> {
    rows: &'a PageRows,
    k: usize,
    parent: &'a [u8],
    start: u64,
    end: u64,
}

impl WriteSpan for RowSpan<'_> {
    fn resource(&self) -> &Arc<ResourceInfo> {
        &self.rows.resources[self.rows.page.resource[self.k] as usize]
    }
    fn scope(&self) -> &Arc<ScopeInfo> {
        &self.rows.scopes[self.rows.page.scope[self.k] as usize]
    }
    fn span_id(&self) -> &[u8] {
        self.rows.span_id(self.k)
    }
    fn parent_span_id(&self) -> &[u8] {
        self.parent
    }
    fn name(&self) -> &str {
        self.rows.name(self.k)
    }
    fn kind(&self) -> i32 {
        self.rows.page.kind[self.k]
    }
    fn start(&self) -> u64 {
        self.start
    }
    fn end(&self) -> u64 {
        self.end
    }
    fn status_code(&self) -> i32 {
        self.rows.page.status[self.k]
    }
    /// The page's rest already holds what the span's rest holds (an end before the start
    /// included) but the attributes. Those the page keeps whole are in their own columns
    /// (version 2 on) or in the rest (version 1); the string ones fill their positions,
    /// the others the places between, in order.
    fn attributes_and_rest(
        &self,
        _keep_end: bool,
        mut attribute: impl FnMut(&str, AttrValue<'_>),
        buf: &mut Vec<u8>,
        _order: &mut Vec<(u32, u32, u32)>,
    ) {
        let page = &self.rows.page;
        let k = self.k;
        let rest = &page.rest[k];
        let in_rest = self.rows.attributes_in_rest;
        let mut in_rest = pharos_model::view::fields(if in_rest { rest } else { &[] })
            .filter(|f| f.number == wire::ATTRIBUTES_FIELD)
            .map(|f| f.payload);
        let mut strings = self.rows.first_attr[k]..self.rows.first_attr[k + 1];
        let mut others = self.rows.first_other[k]..self.rows.first_other[k + 1];
        let mut next_string = strings.next();
        for pos in 0u32.. {
            // A string attribute at its position, else the next other one; string ones
            // left past the others' end (a page the reader checked no further) follow.
            if next_string.is_none_or(|a| page.ded_pos[a] != pos) {
                if let Some(y) = others.next() {
                    attribute(
                        &page.strings[page.other_key[y] as usize],
                        AttrValue::Other(&page.other_value[y]),
                    );
                    continue;
                }
                if let Some(kv) = in_rest.next() {
                    other_attribute(kv, &mut attribute);
                    continue;
                }
            }
            let Some(a) = next_string else {
                break;
            };
            next_string = strings.next();
            attribute(
                &page.strings[page.ded_key[a] as usize],
                AttrValue::Str(&page.strings[page.ded_value[a] as usize]),
            );
        }
        if self.rows.attributes_in_rest
            && pharos_model::view::fields(rest).any(|f| f.number == wire::ATTRIBUTES_FIELD)
        {
            for f in pharos_model::view::fields(rest) {
                if f.number != wire::ATTRIBUTES_FIELD {
                    buf.extend_from_slice(f.raw);
                }
            }
        } else {
            buf.extend_from_slice(rest);
        }
    }
}

/// What the writer needs of a trace besides its spans.
#[derive(Clone, Copy)]
struct TraceHeader {
    start_ns: u64,
    end_ns: u64,
    bytes: u64,
}

/// The data file: the pages, one after another.
pub const DATA_FILE: &str = "data";
/// The index file: page summaries, dictionaries, bloom filter.
pub const INDEX_FILE: &str = "index";
/// The meta file; its presence makes a block complete.
pub const META_FILE: &str = pharos_storage::blocks::META_FILE;

const DATA_MAGIC: &[u8; 4] = b"PTRD";
const INDEX_MAGIC: &[u8; 4] = b"PTRI";
const FORMAT_VERSION: u8 = 5;
/// The page format of the current version: version 5 changed the index only (runs).
pub(crate) const PAGE_VERSION: u8 = 4;
/// The oldest format version still read: version 1 stored pages as [`PageProto`] itself.
const OLDEST_VERSION: u8 = 1;
/// A page is cut once its spans' encoded bytes reach this, by default (Tempo's
/// `row_group_size_bytes` plays this part).
pub const DEFAULT_PAGE_BYTES: u64 = 8 << 20;
/// A page lists at most this many distinct dedicated attribute pairs in its summary; past
/// it the summary says "anything" for them.
const MAX_SUMMARY_PAIRS: usize = 512;
/// zstd level of pages and index: level 9 took 2% off a version-2 page on the traces
/// bench (the columns leave it little to find) at several times the CPU.
const ZSTD_LEVEL: i32 = 3;
/// A decompressed page or index may be at most this many times its compressed size (and at
/// most [`MAX_DECOMPRESSED`]): the reader trusts no length it has not bounded.
const MAX_RATIO: usize = 64;
const MAX_DECOMPRESSED: usize = 1 << 30;
/// Bloom filter: bits per trace and hash functions (about 0.05% false positives; a
/// lookup by id tests one filter per run of each block, and a false positive decodes a
/// page). Versions before 5 wrote 10 bits and 7 hashes (about 1%).
const BLOOM_BITS_PER_TRACE: usize = 16;
const BLOOM_HASHES: u32 = 11;

/// Why a block cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The bytes do not follow the format.
    #[error("trace block {block}: {what}")]
    Corrupt {
        /// The block id.
        block: String,
        /// What is wrong.
        what: String,
    },
}

fn corrupt(block: &str, what: impl Into<String>) -> BlockError {
    BlockError::Corrupt {
        block: block.to_string(),
        what: what.into(),
    }
}

/// `meta.json` of a trace block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    /// The block id (a ULID).
    pub ulid: String,
    /// The format version, [`FORMAT_VERSION`].
    pub version: u8,
    /// The earliest span start, unix nanoseconds.
    pub min_time_ns: u64,
    /// The latest span end, unix nanoseconds.
    pub max_time_ns: u64,
    /// Traces (or trace fragments: a trace may continue in another block).
    pub traces: u64,
    /// Spans.
    pub spans: u64,
    /// Bytes of the data and index files.
    pub bytes: u64,
    /// How the block came to be.
    pub compaction: Compaction,
}

/// The `compaction` section of [`BlockMeta`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    /// 1 for a block flushed from the head; one more than the highest parent when merged.
    pub level: u32,
    /// The blocks merged into this one (deleted once it is complete).
    #[serde(default)]
    pub parents: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Wire messages (protobuf, hand-declared with prost so readers need no code generation).

#[derive(Clone, PartialEq, prost::Message)]
struct PageProto {
    /// 16 bytes per trace, ascending.
    #[prost(bytes = "vec", tag = "1")]
    trace_ids: Vec<u8>,
    /// Spans per trace.
    #[prost(uint32, repeated, tag = "2")]
    trace_spans: Vec<u32>,
    /// Each trace's earliest span start, as a delta from `base_ns`.
    #[prost(uint64, repeated, tag = "3")]
    trace_start: Vec<u64>,
    #[prost(uint64, tag = "4")]
    base_ns: u64,
    /// Distinct resources: `ResourceSpans` without scope spans.
    #[prost(bytes = "bytes", repeated, tag = "5")]
    resources: Vec<Bytes>,
    /// Distinct scopes: `ScopeSpans` without spans.
    #[prost(bytes = "bytes", repeated, tag = "6")]
    scopes: Vec<Bytes>,
    /// Span names and dedicated attribute keys and values.
    #[prost(string, repeated, tag = "7")]
    strings: Vec<String>,
    // One entry per span, trace by trace.
    #[prost(uint32, repeated, tag = "8")]
    resource: Vec<u32>,
    #[prost(uint32, repeated, tag = "9")]
    scope: Vec<u32>,
    /// 8 bytes per span: its id, or zeros when the id is not 8 bytes long (then in
    /// `odd_span_ids`).
    #[prost(bytes = "vec", tag = "10")]
    span_ids: Vec<u8>,
    /// 0: no parent; k > 0: the trace's span k-1; -1: the next of `foreign_parents`.
    #[prost(sint32, repeated, tag = "11")]
    parent: Vec<i32>,
    #[prost(bytes = "bytes", repeated, tag = "12")]
    foreign_parents: Vec<Bytes>,
    /// Span start minus its trace's start.
    #[prost(uint64, repeated, tag = "13")]
    start: Vec<u64>,
    /// End minus start (0 when the end is kept in `rest`).
    #[prost(uint64, repeated, tag = "14")]
    duration: Vec<u64>,
    /// Index into `strings`.
    #[prost(uint32, repeated, tag = "15")]
    name: Vec<u32>,
    #[prost(int32, repeated, tag = "16")]
    kind: Vec<i32>,
    /// Status code, for search (the status itself stays in `rest`).
    #[prost(int32, repeated, tag = "17")]
    status: Vec<i32>,
    /// Dedicated attributes: span index delta, position in the span's attributes, key and
    /// value (indexes into `strings`).
    #[prost(uint32, repeated, tag = "18")]
    ded_span: Vec<u32>,
    #[prost(uint32, repeated, tag = "19")]
    ded_pos: Vec<u32>,
    #[prost(uint32, repeated, tag = "20")]
    ded_key: Vec<u32>,
    #[prost(uint32, repeated, tag = "21")]
    ded_value: Vec<u32>,
    /// The span's protobuf without the fields above.
    #[prost(bytes = "bytes", repeated, tag = "22")]
    rest: Vec<Bytes>,
    /// Page span numbers (ascending) of spans whose id is not 8 bytes, and those ids.
    #[prost(uint32, repeated, tag = "23")]
    odd_span_at: Vec<u32>,
    #[prost(bytes = "bytes", repeated, tag = "24")]
    odd_span_ids: Vec<Bytes>,
    /// Version 2 only (a version-1 page keeps these attributes in `rest`): the spans'
    /// other attributes, as `ded_span` and `ded_pos`, with their key (index into
    /// `strings`) and their encoded `KeyValue` after the key.
    #[prost(uint32, repeated, tag = "25")]
    other_span: Vec<u32>,
    #[prost(uint32, repeated, tag = "26")]
    other_pos: Vec<u32>,
    #[prost(uint32, repeated, tag = "27")]
    other_key: Vec<u32>,
    #[prost(bytes = "bytes", repeated, tag = "28")]
    other_value: Vec<Bytes>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct IndexProto {
    /// Service names, sorted.
    #[prost(string, repeated, tag = "1")]
    services: Vec<String>,
    /// Span names, sorted.
    #[prost(string, repeated, tag = "2")]
    names: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    operations: Vec<OperationProto>,
    #[prost(message, repeated, tag = "4")]
    pages: Vec<PageInfoProto>,
    /// Versions 1 to 4: the one bloom filter of the block's trace ids.
    #[prost(bytes = "vec", tag = "5")]
    bloom: Vec<u8>,
    #[prost(uint32, tag = "6")]
    bloom_hashes: u32,
    /// Version 5: how many pages each run holds, in page order (`pages` is the runs one
    /// after another; within a run, pages ascend by trace id).
    #[prost(uint32, repeated, tag = "7")]
    runs: Vec<u32>,
    /// Version 5: one bloom filter per run.
    #[prost(message, repeated, tag = "8")]
    run_blooms: Vec<BloomProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BloomProto {
    #[prost(bytes = "vec", tag = "1")]
    bits: Vec<u8>,
    #[prost(uint32, tag = "2")]
    hashes: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OperationProto {
    #[prost(uint32, tag = "1")]
    service: u32,
    #[prost(uint32, tag = "2")]
    name: u32,
    #[prost(int32, tag = "3")]
    kind: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PageInfoProto {
    #[prost(uint64, tag = "1")]
    offset: u64,
    #[prost(uint64, tag = "2")]
    len: u64,
    #[prost(bytes = "vec", tag = "3")]
    first_trace: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    last_trace: Vec<u8>,
    #[prost(uint32, tag = "5")]
    traces: u32,
    #[prost(uint32, tag = "6")]
    spans: u32,
    #[prost(uint64, tag = "7")]
    min_start_ns: u64,
    #[prost(uint64, tag = "8")]
    max_end_ns: u64,
    #[prost(uint64, tag = "9")]
    min_span_duration_ns: u64,
    #[prost(uint64, tag = "10")]
    max_span_duration_ns: u64,
    #[prost(uint64, tag = "11")]
    min_trace_duration_ns: u64,
    #[prost(uint64, tag = "12")]
    max_trace_duration_ns: u64,
    /// Indexes into the block's services and names.
    #[prost(uint32, repeated, tag = "13")]
    services: Vec<u32>,
    #[prost(uint32, repeated, tag = "14")]
    names: Vec<u32>,
    /// Bit k set: some span has kind k / status code k.
    #[prost(uint32, tag = "15")]
    kinds: u32,
    #[prost(uint32, tag = "16")]
    statuses: u32,
    /// Distinct dedicated (key, value) pairs, unless `pairs_overflow`.
    #[prost(string, repeated, tag = "17")]
    pair_keys: Vec<String>,
    #[prost(string, repeated, tag = "18")]
    pair_values: Vec<String>,
    #[prost(bool, tag = "19")]
    pairs_overflow: bool,
}

// ---------------------------------------------------------------------------------------
// Page summaries, the pruning side.

/// What a page holds, for pruning: every field is a superset of what its spans carry.
#[derive(Debug, Clone, PartialEq)]
pub struct PageSummary {
    pub first_trace: TraceId,
    pub last_trace: TraceId,
    pub traces: u32,
    pub spans: u32,
    pub min_start_ns: u64,
    pub max_end_ns: u64,
    pub min_span_duration_ns: u64,
    pub max_span_duration_ns: u64,
    pub min_trace_duration_ns: u64,
    pub max_trace_duration_ns: u64,
    /// Service names present, sorted.
    pub services: BTreeSet<Arc<str>>,
    /// Span names present, sorted.
    pub names: BTreeSet<Arc<str>>,
    /// Bit k: a span of kind k; bit 31: a kind outside OTLP's enum.
    pub kinds: u32,
    /// Bit k: a span with status code k; bit 31: a code outside OTLP's enum.
    pub statuses: u32,
    /// The dedicated attribute pairs present, or `None` when there were too many to list.
    pub pairs: Option<BTreeSet<(String, String)>>,
    offset: u64,
    len: u64,
}

/// Returns whether a span attribute key gets a dedicated column.
pub fn is_dedicated_key(key: &str) -> bool {
    crate::traceql::prune::SUMMARIZED_SPAN_ATTR_PREFIXES
        .iter()
        .any(|p| key.starts_with(p))
}

// ---------------------------------------------------------------------------------------
// Writing.

/// Builds a block from traces given in ascending id order.
pub struct BlockWriter {
    data: Vec<u8>,
    pages: Vec<PageInfoProto>,
    services: BTreeSet<String>,
    names: BTreeSet<String>,
    operations: BTreeSet<(String, String, i32)>,
    page: builder::PageBuilder,
    /// One zstd context for every page of the block.
    compressor: zstd::bulk::Compressor<'static>,
    /// The encodings of the resources and scopes of the block's spans.
    encodings: builder::Encodings,
    page_bytes: u64,
    /// The trace ids of the run being written, for its bloom filter.
    ids: Vec<TraceId>,
    /// The runs written: pages and bloom filter of each.
    runs: Vec<(u32, Bloom)>,
    /// Traces (fragments) in the block.
    traces: u64,
    /// Each cut page's services and names, made indexes at `finish`.
    pending_names: Vec<(Vec<String>, Vec<String>)>,
    min_ns: u64,
    max_ns: u64,
    spans: u64,
    last: Option<TraceId>,
    /// The format version written: [`FORMAT_VERSION`], or 1 for tests of old blocks.
    version: u8,
}

/// Where each span id of a trace is: a scan for small traces, a map for large ones.
enum Positions<'a, S> {
    Scan(&'a [S]),
    Map(FastMap<&'a [u8], usize>),
}

impl<'a, S: WriteSpan> Positions<'a, S> {
    fn new(spans: &'a [S]) -> Self {
        if spans.len() <= 32 {
            Positions::Scan(spans)
        } else {
            Positions::Map(
                spans
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.span_id(), i))
                    .collect(),
            )
        }
    }

    fn get(&self, id: &[u8]) -> Option<usize> {
        match self {
            // Eight-byte ids compare as words, not through `memcmp`.
            Positions::Scan(spans) => match <[u8; 8]>::try_from(id) {
                Ok(id) => spans
                    .iter()
                    .position(|s| <[u8; 8]>::try_from(s.span_id()).ok() == Some(id)),
                Err(_) => spans.iter().position(|s| s.span_id() == id),
            },
            Positions::Map(m) => m.get(id).copied(),
        }
    }
}

/// Encodes what `rest` keeps of a span (see the format: everything but the columns and
/// the attributes), field by field as prost would, without building a trimmed copy of the
/// span.
fn encode_rest(span: &Span, keep_end: bool, buf: &mut Vec<u8>) {
    use prost::encoding::{fixed32, fixed64, message, string, uint32};
    if !span.trace_state.is_empty() {
        string::encode(3, &span.trace_state, buf);
    }
    if keep_end && span.end_time_unix_nano != 0 {
        fixed64::encode(8, &span.end_time_unix_nano, buf);
    }
    if span.dropped_attributes_count != 0 {
        uint32::encode(10, &span.dropped_attributes_count, buf);
    }
    for e in &span.events {
        message::encode(11, e, buf);
    }
    if span.dropped_events_count != 0 {
        uint32::encode(12, &span.dropped_events_count, buf);
    }
    for l in &span.links {
        message::encode(13, l, buf);
    }
    if span.dropped_links_count != 0 {
        uint32::encode(14, &span.dropped_links_count, buf);
    }
    if let Some(status) = &span.status {
        message::encode(15, status, buf);
    }
    if span.flags != 0 {
        fixed32::encode(16, &span.flags, buf);
    }
}

/// A span attribute that goes to the attribute columns: any with a string value and a
/// key given as a string. (Page
/// summaries list the pairs of the `http.*`, `db.*` and `rpc.*` ones.)
fn dedicated_value(kv: &KeyValue) -> Option<&str> {
    // A key given by reference (a profiling field) stays in the rest, where it is kept.
    if kv.key_strindex != 0 {
        return None;
    }
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

impl BlockWriter {
    /// Returns an empty writer cutting pages of about `page_bytes` bytes of spans.
    pub fn new(page_bytes: u64) -> Self {
        BlockWriter {
            data: DATA_MAGIC.iter().copied().chain([FORMAT_VERSION]).collect(),
            version: FORMAT_VERSION,
            pages: Vec::new(),
            services: BTreeSet::new(),
            names: BTreeSet::new(),
            operations: BTreeSet::new(),
            page: builder::PageBuilder::default(),
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("a zstd context"),
            encodings: builder::Encodings::default(),
            page_bytes: page_bytes.max(1),
            ids: Vec::new(),
            runs: Vec::new(),
            traces: 0,
            pending_names: Vec::new(),
            min_ns: u64::MAX,
            max_ns: 0,
            spans: 0,
            last: None,
        }
    }

    /// Returns an empty writer of an older format version, to test that old blocks still
    /// read.
    #[cfg(test)]
    pub(crate) fn with_version(page_bytes: u64, version: u8) -> Self {
        assert!((OLDEST_VERSION..=FORMAT_VERSION).contains(&version));
        let mut w = Self::new(page_bytes);
        w.version = version;
        w.data[4] = version;
        w
    }

    /// Adds a trace. Ids must ascend strictly.
    ///
    /// # Panics
    ///
    /// When `id` does not come after the previous one (a caller bug).
    pub fn push(&mut self, id: &TraceId, trace: &Trace) {
        let header = TraceHeader {
            start_ns: trace.start_ns,
            end_ns: trace.end_ns,
            bytes: trace.bytes,
        };
        self.push_spans(id, header, &trace.spans);
    }

    /// Adds a trace of the head, read in place; the page is the one [`BlockWriter::push`]
    /// writes of the same trace decoded (for requests encoded as prost encodes).
    ///
    /// # Panics
    ///
    /// As [`BlockWriter::push`].
    pub(crate) fn push_head(&mut self, id: &TraceId, trace: &HeadTrace) {
        let header = TraceHeader {
            start_ns: trace.start_ns,
            end_ns: trace.end_ns,
            bytes: trace.bytes,
        };
        let spans: Vec<RawSpan<'_>> = trace.spans.iter().map(|s| s.raw()).collect();
        self.push_spans(id, header, &spans);
    }

    /// Adds trace `t` of a decoded page, its spans copied from the columns; the page is
    /// the one [`BlockWriter::push`] writes of the same trace rebuilt (for spans written
    /// as prost writes them).
    ///
    /// # Panics
    ///
    /// As [`BlockWriter::push`].
    pub(crate) fn push_rows(&mut self, rows: &PageRows, t: usize) {
        let (header, spans) = rows.row_spans(t);
        let id: TraceId = rows.trace_id(t).try_into().expect("16 bytes");
        self.push_spans(&id, header, &spans);
    }

    fn push_spans<S: WriteSpan>(&mut self, id: &TraceId, trace: TraceHeader, spans: &[S]) {
        assert!(self.last.is_none_or(|l| l < *id), "trace ids out of order");
        if spans.is_empty() {
            return;
        }
        self.last = Some(*id);
        self.ids.push(*id);
        self.traces += 1;
        self.min_ns = self.min_ns.min(trace.start_ns);
        self.max_ns = self.max_ns.max(trace.end_ns);
        self.spans += spans.len() as u64;
        self.page.push(&mut self.encodings, id, trace, spans);
        if self.page.bytes >= self.page_bytes {
            self.cut_page();
        }
    }

    fn cut_page(&mut self) {
        let mut page = std::mem::take(&mut self.page);
        if page.is_empty() {
            return;
        }
        let raw = page.encode();
        let raw = if self.version >= PAGE_VERSION {
            raw
        } else {
            page_as_version(raw, self.version)
        };
        let compressed = self
            .compressor
            .compress(&raw)
            .expect("zstd compresses memory");
        let mut info = page.info;
        info.offset = self.data.len() as u64;
        info.len = compressed.len() as u64 + 4;
        self.data.extend_from_slice(&compressed);
        self.data
            .extend_from_slice(&crc32c::crc32c(&compressed).to_le_bytes());
        // Page services and names become indexes into the block's sorted lists at finish;
        // keep the strings until then.
        info.pair_keys.clear();
        info.pair_values.clear();
        if page.pairs.len() > MAX_SUMMARY_PAIRS {
            info.pairs_overflow = true;
        } else {
            for (k, v) in page.pairs {
                info.pair_keys.push(k);
                info.pair_values.push(v);
            }
        }
        self.services.extend(page.services.iter().cloned());
        self.operations.extend(page.operations);
        self.names.extend(page.span_names.iter().cloned());
        self.pending_names.push((
            page.services.into_iter().collect(),
            page.span_names.into_iter().collect(),
        ));
        self.pages.push(info);
    }

    /// Ends the run being written (the pages since the previous run): the next trace
    /// starts a new run, whose ids ascend again from any id. Nothing happens when the run
    /// is empty.
    ///
    /// # Panics
    ///
    /// In a writer of a version before 5, which has one run only (tests).
    pub fn end_run(&mut self) {
        self.cut_page();
        let written: u32 = self.runs.iter().map(|r| r.0).sum();
        let pages = self.pages.len() as u32 - written;
        if pages == 0 {
            return;
        }
        assert!(
            self.version >= 5,
            "a version-{} block has one run",
            self.version
        );
        self.runs.push((pages, Bloom::build(&self.ids)));
        self.ids.clear();
        self.last = None;
    }

    /// Adds pages of `block` as they are, as one run of this block: `pages` ascending,
    /// from one run of `block` (whose bloom filter the run takes). Their bytes are copied
    /// without being decompressed.
    ///
    /// # Panics
    ///
    /// When the block's pages are not of this writer's page version, or `pages` are not
    /// ascending within one run of `block` (caller bugs).
    pub(crate) fn copy_run(&mut self, block: &TraceBlock, pages: &[usize]) {
        self.end_run();
        if pages.is_empty() {
            return;
        }
        assert!(block.meta.version >= PAGE_VERSION && self.version >= 5);
        let run = block
            .runs
            .iter()
            .find(|r| r.pages.contains(&pages[0]))
            .expect("a page of the block");
        assert!(
            pages.windows(2).all(|w| w[0] < w[1]) && run.pages.contains(&pages[pages.len() - 1]),
            "pages of one run, ascending"
        );
        for &i in pages {
            let p = &block.pages[i];
            let offset = self.data.len() as u64;
            self.data.extend_from_slice(block.page_bytes(i));
            let (pair_keys, pair_values) = p.pairs.iter().flatten().cloned().unzip();
            self.pages.push(PageInfoProto {
                offset,
                len: p.len,
                first_trace: p.first_trace.to_vec(),
                last_trace: p.last_trace.to_vec(),
                traces: p.traces,
                spans: p.spans,
                min_start_ns: p.min_start_ns,
                max_end_ns: p.max_end_ns,
                min_span_duration_ns: p.min_span_duration_ns,
                max_span_duration_ns: p.max_span_duration_ns,
                min_trace_duration_ns: p.min_trace_duration_ns,
                max_trace_duration_ns: p.max_trace_duration_ns,
                services: Vec::new(),
                names: Vec::new(),
                kinds: p.kinds,
                statuses: p.statuses,
                pair_keys,
                pair_values,
                pairs_overflow: p.pairs.is_none(),
            });
            let services: Vec<String> = p.services.iter().map(|s| s.to_string()).collect();
            let names: Vec<String> = p.names.iter().map(|s| s.to_string()).collect();
            self.services.extend(services.iter().cloned());
            self.names.extend(names.iter().cloned());
            self.pending_names.push((services, names));
            self.traces += u64::from(p.traces);
            self.spans += u64::from(p.spans);
            self.min_ns = self.min_ns.min(p.min_start_ns);
            self.max_ns = self.max_ns.max(p.max_end_ns);
        }
        self.runs.push((pages.len() as u32, run.bloom.clone()));
    }

    /// Adds (service, operation) pairs to the block's list, as a block whose spans it
    /// copies lists them.
    pub(crate) fn add_operations(&mut self, operations: &[(String, Operation)]) {
        for (service, op) in operations {
            self.services.insert(service.clone());
            self.names.insert(op.name.clone());
            self.operations
                .insert((service.clone(), op.name.clone(), op.kind));
        }
    }

    /// Finishes the block: returns its data and index files and its meta (without `bytes`
    /// known to the caller's store: set here to the two files' sizes).
    pub fn finish(mut self, ulid: String, compaction: Compaction) -> EncodedBlock {
        let (runs, run_blooms, bloom) = if self.version >= 5 {
            self.end_run();
            let runs = self.runs.iter().map(|r| r.0).collect();
            let blooms = self
                .runs
                .drain(..)
                .map(|(_, b)| BloomProto {
                    bits: b.bits,
                    hashes: b.hashes,
                })
                .collect();
            (
                runs,
                blooms,
                Bloom {
                    bits: Vec::new(),
                    hashes: 0,
                },
            )
        } else {
            self.cut_page();
            (Vec::new(), Vec::new(), Bloom::build(&self.ids))
        };
        let services: Vec<String> = self.services.into_iter().collect();
        let names: Vec<String> = self.names.into_iter().collect();
        let service_idx = |s: &str| {
            services
                .binary_search_by(|x| x.as_str().cmp(s))
                .unwrap_or(0) as u32
        };
        let name_idx = |s: &str| names.binary_search_by(|x| x.as_str().cmp(s)).unwrap_or(0) as u32;
        for (info, (svcs, nms)) in self.pages.iter_mut().zip(&self.pending_names) {
            info.services = svcs.iter().map(|s: &String| service_idx(s)).collect();
            info.names = nms.iter().map(|s: &String| name_idx(s)).collect();
        }
        let operations = self
            .operations
            .iter()
            .map(|(s, n, k)| OperationProto {
                service: service_idx(s),
                name: name_idx(n),
                kind: *k,
            })
            .collect();
        let index = IndexProto {
            services,
            names,
            operations,
            pages: self.pages,
            bloom: bloom.bits,
            bloom_hashes: bloom.hashes,
            runs,
            run_blooms,
        };
        let index_file = index_file(self.version, &index);
        let empty = self.traces == 0;
        let meta = BlockMeta {
            ulid,
            version: self.version,
            min_time_ns: if empty { 0 } else { self.min_ns },
            max_time_ns: self.max_ns,
            traces: self.traces,
            spans: self.spans,
            bytes: (self.data.len() + index_file.len()) as u64,
            compaction,
        };
        EncodedBlock {
            data: Bytes::from(self.data),
            index: Bytes::from(index_file),
            meta,
        }
    }
}

/// A version-4 page (before compression) as `version`: its columns decoded, the
/// attributes the page keeps whole put back in each span's rest, and encoded again by
/// [`wire::encode`] (tests write blocks of every version a reader reads, and check the
/// page writer against that encoder).
pub(crate) fn page_as_version(v4: Vec<u8>, version: u8) -> Vec<u8> {
    let mut p = wire::decode(Bytes::from(v4)).expect("a page just written decodes");
    let rows = PageRows::new(p.clone()).expect("a page just written is consistent");
    for k in 0..p.rest.len() {
        let mut rest = Vec::new();
        RowSpan {
            rows: &rows,
            k,
            parent: &[],
            start: 0,
            end: 0,
        }
        .attributes_and_rest(
            false,
            |key, value| {
                if let AttrValue::Other(v) = value {
                    let mut kv = KeyValue::decode(v).expect("checked bytes");
                    kv.key = key.to_string();
                    rest.push(kv);
                }
            },
            &mut Vec::new(),
            &mut Vec::new(),
        );
        let old = &p.rest[k];
        let split = pharos_model::view::fields(old)
            .find(|f| f.number > wire::ATTRIBUTES_FIELD)
            .map_or(old.len(), |f| {
                f.raw.as_ptr() as usize - old.as_ptr() as usize
            });
        let mut buf = old[..split].to_vec();
        for kv in &rest {
            prost::encoding::message::encode(wire::ATTRIBUTES_FIELD, kv, &mut buf);
        }
        buf.extend_from_slice(&old[split..]);
        p.rest[k] = Bytes::from(buf);
    }
    p.other_span.clear();
    p.other_pos.clear();
    p.other_key.clear();
    p.other_value.clear();
    if version == 1 {
        p.encode_to_vec()
    } else {
        wire::encode(&p, version)
    }
}

/// The index file of `version` holding `index`: magic, version, zstd frame, checksum.
fn index_file(version: u8, index: &IndexProto) -> Vec<u8> {
    let body =
        zstd::bulk::compress(&index.encode_to_vec(), ZSTD_LEVEL).expect("zstd compresses memory");
    let mut file = Vec::with_capacity(body.len() + 9);
    file.extend_from_slice(INDEX_MAGIC);
    file.push(version);
    file.extend_from_slice(&body);
    let crc = crc32c::crc32c(&file);
    file.extend_from_slice(&crc.to_le_bytes());
    file
}

/// A block's files, ready to be put.
pub struct EncodedBlock {
    pub data: Bytes,
    pub index: Bytes,
    pub meta: BlockMeta,
}

// ---------------------------------------------------------------------------------------
// Bloom filter of trace ids.

#[derive(Clone)]
struct Bloom {
    bits: Vec<u8>,
    hashes: u32,
}

impl Bloom {
    fn build(ids: &[TraceId]) -> Bloom {
        let bytes = (ids.len() * BLOOM_BITS_PER_TRACE).div_ceil(8).max(8);
        let mut bloom = Bloom {
            bits: vec![0; bytes],
            hashes: BLOOM_HASHES,
        };
        for id in ids {
            for bit in bloom.positions(id) {
                bloom.bits[bit / 8] |= 1 << (bit % 8);
            }
        }
        bloom
    }

    fn positions(&self, id: &TraceId) -> impl Iterator<Item = usize> + use<> {
        // Ids from 64-bit tracers are half zeros: hash rather than slice them.
        let h = xxhash_rust::xxh3::xxh3_128(id);
        let (h1, h2) = (h as u64, ((h >> 64) as u64) | 1);
        let m = (self.bits.len() * 8) as u64;
        (0..u64::from(self.hashes)).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }

    fn may_contain(&self, id: &TraceId) -> bool {
        self.positions(id)
            .all(|bit| self.bits[bit / 8] & (1 << (bit % 8)) != 0)
    }
}

// ---------------------------------------------------------------------------------------
// Reading.

/// Pages that ascend by trace id, and the bloom filter of their ids (which may also hold
/// ids of pages a merge took out of the run: it only ever answers "maybe" too often).
struct Run {
    pages: std::ops::Range<usize>,
    bloom: Bloom,
}

/// A loaded block: its meta, its decoded index, and its data file's bytes (memory-mapped
/// when local).
pub struct TraceBlock {
    meta: BlockMeta,
    pages: Vec<PageSummary>,
    /// The runs of pages sorted by trace id (one before version 5), in page order.
    runs: Vec<Run>,
    operations: Vec<(String, Operation)>,
    data: Bytes,
    pages_read: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for TraceBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceBlock")
            .field("meta", &self.meta)
            .finish()
    }
}

fn decompress(block: &str, what: &str, compressed: &[u8]) -> Result<Vec<u8>, BlockError> {
    let cap = compressed
        .len()
        .saturating_mul(MAX_RATIO)
        .clamp(1 << 16, MAX_DECOMPRESSED);
    // A frame the writer made says its size: allocate that rather than the bound (a frame
    // that says too little fails to decompress, as a corrupt one does).
    let size = zstd::zstd_safe::get_frame_content_size(compressed)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= cap)
        .unwrap_or(cap);
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DECOMPRESSOR
        .with_borrow_mut(|d| {
            if d.is_none() {
                *d = Some(zstd::bulk::Decompressor::new()?);
            }
            d.as_mut().expect("made above").decompress(compressed, size)
        })
        .map_err(|e| corrupt(block, format!("{what}: {e}")))
}

/// Returns the first field of a compressed page when it is field 1 of `len` bytes (the
/// page's trace ids), decompressing no more of the frame than that takes; `None` for any
/// other start (the caller then decompresses the whole page).
fn ids_prefix(compressed: &[u8], len: usize) -> Option<Vec<u8>> {
    use prost::encoding::{WireType, encode_key, encode_varint};
    use std::io::Read;
    let mut header = Vec::with_capacity(11);
    encode_key(1, WireType::LengthDelimited, &mut header);
    encode_varint(len as u64, &mut header);
    let mut decoder = zstd::stream::read::Decoder::with_buffer(compressed).ok()?;
    let mut got = vec![0; header.len()];
    decoder.read_exact(&mut got).ok()?;
    if got != header {
        return None;
    }
    got.resize(header.len() + len, 0);
    decoder.read_exact(&mut got[header.len()..]).ok()?;
    Some(got)
}

fn trace_id(block: &str, bytes: &[u8]) -> Result<TraceId, BlockError> {
    bytes
        .try_into()
        .map_err(|_| corrupt(block, "a trace id is not 16 bytes"))
}

impl TraceBlock {
    /// Returns index file bytes with the runs replaced by `runs` (tests of the checks).
    #[cfg(test)]
    pub(crate) fn index_with_runs(index: &[u8], runs: Vec<u32>) -> Vec<u8> {
        let raw = decompress("test", "index", &index[5..index.len() - 4]).unwrap();
        let mut proto = IndexProto::decode(raw.as_slice()).unwrap();
        proto.runs = runs;
        index_file(index[4], &proto)
    }

    /// Returns page `i` decompressed, unchecked (tests).
    #[cfg(test)]
    pub(crate) fn raw_page(&self, i: usize) -> Vec<u8> {
        let bytes = self.page_bytes(i);
        decompress("test", "page", &bytes[..bytes.len() - 4]).unwrap()
    }

    /// Decodes a block from its three files, checking every checksum and bound.
    ///
    /// # Errors
    ///
    /// When a file does not follow the format.
    pub fn open(meta: BlockMeta, index: &[u8], data: Bytes) -> Result<TraceBlock, BlockError> {
        let id = meta.ulid.clone();
        let id = id.as_str();
        let version = meta.version;
        if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(corrupt(
                id,
                format!("unknown format version {}", meta.version),
            ));
        }
        if index.len() < 9 || &index[..4] != INDEX_MAGIC || index[4] != version {
            return Err(corrupt(id, "index: bad magic or version"));
        }
        let (body, crc) = index.split_at(index.len() - 4);
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return Err(corrupt(id, "index: checksum mismatch"));
        }
        let raw = decompress(id, "index", &body[5..])?;
        let proto =
            IndexProto::decode(raw.as_slice()).map_err(|e| corrupt(id, format!("index: {e}")))?;
        if data.len() < 5 || &data[..4] != DATA_MAGIC || data[4] != version {
            return Err(corrupt(id, "data: bad magic or version"));
        }
        let services: Vec<Arc<str>> = proto
            .services
            .iter()
            .map(|s| Arc::from(s.as_str()))
            .collect();
        let names: Vec<Arc<str>> = proto.names.iter().map(|s| Arc::from(s.as_str())).collect();
        let lookup = |list: &[Arc<str>], i: u32| {
            list.get(i as usize)
                .cloned()
                .ok_or_else(|| corrupt(id, "index: dictionary reference out of range"))
        };
        let bloom = |bits: Vec<u8>, hashes: u32| {
            if bits.is_empty() || hashes == 0 || hashes > 32 {
                return Err(corrupt(id, "index: bad bloom filter"));
            }
            Ok(Bloom { bits, hashes })
        };
        let mut runs = Vec::new();
        if version >= 5 {
            if proto.runs.len() != proto.run_blooms.len()
                || proto.runs.iter().map(|&n| u64::from(n)).sum::<u64>() != proto.pages.len() as u64
                || proto.runs.contains(&0)
            {
                return Err(corrupt(id, "index: runs do not cover the pages"));
            }
            let mut start = 0;
            for (&n, b) in proto.runs.iter().zip(proto.run_blooms) {
                let end = start + n as usize;
                runs.push(Run {
                    pages: start..end,
                    bloom: bloom(b.bits, b.hashes)?,
                });
                start = end;
            }
        } else {
            runs.push(Run {
                pages: 0..proto.pages.len(),
                bloom: bloom(proto.bloom, proto.bloom_hashes)?,
            });
        }
        let mut pages = Vec::with_capacity(proto.pages.len());
        let mut prev: Option<TraceId> = None;
        for (i, p) in proto.pages.iter().enumerate() {
            let first = trace_id(id, &p.first_trace)?;
            let last = trace_id(id, &p.last_trace)?;
            if runs.iter().any(|r| r.pages.start == i) {
                prev = None;
            }
            if first > last || prev.is_some_and(|x| x >= first) {
                return Err(corrupt(id, "index: pages out of trace id order"));
            }
            prev = Some(last);
            let end = p.offset.checked_add(p.len);
            if p.offset < 5 || p.len < 5 || end.is_none_or(|e| e > data.len() as u64) {
                return Err(corrupt(id, "index: page outside the data file"));
            }
            if p.pair_keys.len() != p.pair_values.len() {
                return Err(corrupt(id, "index: page pairs unbalanced"));
            }
            pages.push(PageSummary {
                first_trace: first,
                last_trace: last,
                traces: p.traces,
                spans: p.spans,
                min_start_ns: p.min_start_ns,
                max_end_ns: p.max_end_ns,
                min_span_duration_ns: p.min_span_duration_ns,
                max_span_duration_ns: p.max_span_duration_ns,
                min_trace_duration_ns: p.min_trace_duration_ns,
                max_trace_duration_ns: p.max_trace_duration_ns,
                services: p
                    .services
                    .iter()
                    .map(|&i| lookup(&services, i))
                    .collect::<Result<_, _>>()?,
                names: p
                    .names
                    .iter()
                    .map(|&i| lookup(&names, i))
                    .collect::<Result<_, _>>()?,
                kinds: p.kinds,
                statuses: p.statuses,
                pairs: (!p.pairs_overflow).then(|| {
                    p.pair_keys
                        .iter()
                        .cloned()
                        .zip(p.pair_values.iter().cloned())
                        .collect()
                }),
                offset: p.offset,
                len: p.len,
            });
        }
        let operations = proto
            .operations
            .iter()
            .map(|o| {
                Ok((
                    lookup(&services, o.service)?.to_string(),
                    Operation {
                        name: lookup(&names, o.name)?.to_string(),
                        kind: o.kind,
                    },
                ))
            })
            .collect::<Result<_, BlockError>>()?;
        Ok(TraceBlock {
            meta,
            pages,
            runs,
            operations,
            data,
            pages_read: Default::default(),
        })
    }

    /// Returns how many pages were decoded since the block was loaded.
    #[cfg(test)]
    pub fn pages_read(&self) -> u64 {
        self.pages_read.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Returns the block's meta.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// Returns the page summaries, in trace id order.
    pub fn pages(&self) -> &[PageSummary] {
        &self.pages
    }

    /// Returns every (service, operation) the block holds.
    pub fn operations(&self) -> &[(String, Operation)] {
        &self.operations
    }

    /// Returns whether the block's time range overlaps `[start_ns, end_ns]`.
    pub fn overlaps(&self, start_ns: u64, end_ns: u64) -> bool {
        self.meta.min_time_ns <= end_ns && self.meta.max_time_ns >= start_ns
    }

    /// Returns the trace `id`'s spans in this block, if any.
    ///
    /// # Errors
    ///
    /// When the page that would hold it is corrupt.
    pub fn find(&self, id: &TraceId) -> Result<Option<Trace>, BlockError> {
        // A block holds a trace in one page at most (a merge joins a trace's fragments):
        // the first run that has it is the only one.
        for run in &self.runs {
            if !run.bloom.may_contain(id) {
                continue;
            }
            let pages = &self.pages[run.pages.clone()];
            let i = pages.partition_point(|p| p.last_trace < *id);
            if pages.get(i).is_some_and(|p| p.first_trace <= *id) {
                // Only the one trace is rebuilt; the rest of the page stays columns.
                let found = self
                    .read_page_where(run.pages.start + i, &mut |rows, t| rows.trace_id(t) == id)?
                    .pop();
                if let Some((_, t)) = found {
                    return Ok(Some(t));
                }
            }
        }
        Ok(None)
    }

    /// Returns the runs of the block: ranges of page numbers, each ascending by trace id.
    pub(crate) fn runs(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.runs.iter().map(|r| r.pages.clone())
    }

    /// Returns page `i`'s bytes in the data file: its zstd frame and checksum.
    fn page_bytes(&self, i: usize) -> &[u8] {
        let p = &self.pages[i];
        &self.data[p.offset as usize..(p.offset + p.len) as usize]
    }

    /// Returns page `i`'s zstd frame once its checksum matches.
    fn checked_frame(&self, i: usize) -> Result<&[u8], BlockError> {
        let (frame, crc) = self.page_bytes(i).split_at(self.pages[i].len as usize - 4);
        if crc32c::crc32c(frame).to_le_bytes() != crc {
            return Err(corrupt(
                &self.meta.ulid,
                format!("page {i}: checksum mismatch"),
            ));
        }
        Ok(frame)
    }

    /// Returns the last eight bytes of each trace id of page `i`, in page order, read
    /// without decoding the page's other columns.
    ///
    /// # Errors
    ///
    /// When the page is corrupt.
    pub(crate) fn page_trace_ids_low(&self, i: usize) -> Result<Vec<u64>, BlockError> {
        let id = self.meta.ulid.as_str();
        let compressed = self.checked_frame(i)?;
        // Field 1 holds the ids (16 bytes each), or from version 4 their last eight bytes;
        // the writer puts it first, so only the frame's first bytes are decompressed.
        let width = if self.meta.version >= 4 { 8 } else { 16 };
        let traces = self.pages[i].traces as usize;
        let raw = match ids_prefix(compressed, traces * width) {
            Some(raw) => raw,
            None => decompress(id, "page", compressed)?,
        };
        let mut ids = Vec::with_capacity(traces);
        for f in pharos_model::view::fields(&raw) {
            if f.number == 1 {
                if f.payload.len() % width != 0 {
                    return Err(corrupt(id, format!("page {i}: trace ids")));
                }
                ids.extend(
                    f.payload.chunks_exact(width).map(|c| {
                        u64::from_be_bytes(c[width - 8..].try_into().expect("eight bytes"))
                    }),
                );
            }
        }
        if ids.len() != traces {
            return Err(corrupt(
                id,
                format!(
                    "page {i}: {} trace ids for {} traces",
                    ids.len(),
                    self.pages[i].traces
                ),
            ));
        }
        Ok(ids)
    }

    /// Decodes page `i` into its traces, in id order.
    ///
    /// # Errors
    ///
    /// When the page is corrupt.
    #[cfg(test)]
    pub fn read_page(&self, i: usize) -> Result<Vec<(TraceId, Trace)>, BlockError> {
        self.read_page_where(i, &mut |_, _| true)
    }

    /// Decodes page `i`, and rebuilds only the traces for which `keep` (given the page's
    /// columns and a trace's index) holds.
    ///
    /// # Errors
    ///
    /// When the page is corrupt.
    pub(crate) fn read_page_where(
        &self,
        i: usize,
        keep: &mut dyn FnMut(&PageRows, usize) -> bool,
    ) -> Result<Vec<(TraceId, Trace)>, BlockError> {
        let id = self.meta.ulid.as_str();
        let rows = self.read_rows(i)?;
        (0..rows.traces())
            .filter(|&t| keep(&rows, t))
            .map(|t| rows.trace(t))
            .collect::<Result<_, _>>()
            .map_err(|what| corrupt(id, format!("page {i}: {what}")))
    }

    /// Decodes page `i` into its checked columns.
    ///
    /// # Errors
    ///
    /// When the page is corrupt.
    pub(crate) fn read_rows(&self, i: usize) -> Result<PageRows, BlockError> {
        let id = self.meta.ulid.as_str();
        self.pages_read
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let compressed = self.checked_frame(i)?;
        let raw = decompress(id, "page", compressed)?;
        // Decoded from `Bytes`, the byte fields are slices of the buffer, not copies.
        let page = if self.meta.version == 1 {
            PageProto::decode(Bytes::from(raw)).map_err(|e| e.to_string())
        } else {
            wire::decode(Bytes::from(raw))
        }
        .map_err(|e| corrupt(id, format!("page {i}: {e}")))?;
        let mut rows =
            PageRows::new(page).map_err(|what| corrupt(id, format!("page {i}: {what}")))?;
        rows.attributes_in_rest = self.meta.version == 1;
        Ok(rows)
    }
}

/// A decoded page's columns, checked, with random access to traces and to the columns
/// of their spans: a search tests the columns first and rebuilds only the traces that
/// pass ([`TraceBlock::read_page_where`]).
pub(crate) struct PageRows {
    page: PageProto,
    resources: Vec<Arc<ResourceInfo>>,
    scopes: Vec<Arc<ScopeInfo>>,
    /// Trace t's spans are `first_span[t]..first_span[t + 1]`.
    first_span: Vec<usize>,
    /// Span k's column attributes are `first_attr[k]..first_attr[k + 1]`.
    first_attr: Vec<usize>,
    /// Span k's other attributes (version 2) are `first_other[k]..first_other[k + 1]`.
    first_other: Vec<usize>,
    /// How many spans before span k have a foreign parent.
    foreign_before: Vec<u32>,
    /// Whether the spans' rests may hold attributes (a version-1 page; a later one's
    /// decoding refuses such a rest).
    attributes_in_rest: bool,
}

/// Returns where each span's entries of an attribute column start, from the column's
/// span deltas (0 for a span's second and later entries): span k's are
/// `ranges[k]..ranges[k + 1]`.
fn attribute_ranges(span_deltas: &[u32], spans: usize) -> Result<Vec<usize>, String> {
    let mut ranges = vec![0usize; spans + 1];
    let mut at = 0u64;
    let mut counts = vec![0usize; spans];
    for &d in span_deltas {
        at += u64::from(d);
        let k = usize::try_from(at).ok().filter(|&k| k < spans);
        let k = k.ok_or("attribute span out of range")?;
        counts[k] += 1;
    }
    for k in 0..spans {
        ranges[k + 1] = ranges[k] + counts[k];
    }
    Ok(ranges)
}

impl PageRows {
    fn new(page: PageProto) -> Result<PageRows, String> {
        let n = page.trace_spans.len();
        if page.trace_ids.len() != n * 16 || page.trace_start.len() != n {
            return Err("trace columns disagree".into());
        }
        let mut first_span = Vec::with_capacity(n + 1);
        first_span.push(0usize);
        for &c in &page.trace_spans {
            first_span.push(first_span.last().expect("pushed") + c as usize);
        }
        let spans = *first_span.last().expect("pushed");
        for (what, len) in [
            ("resource", page.resource.len()),
            ("scope", page.scope.len()),
            ("parent", page.parent.len()),
            ("start", page.start.len()),
            ("duration", page.duration.len()),
            ("name", page.name.len()),
            ("kind", page.kind.len()),
            ("status", page.status.len()),
            ("rest", page.rest.len()),
        ] {
            if len != spans {
                return Err(format!("column {what} has {len} entries for {spans} spans"));
            }
        }
        let ded = page.ded_span.len();
        if page.ded_pos.len() != ded || page.ded_key.len() != ded || page.ded_value.len() != ded {
            return Err("attribute columns disagree".into());
        }
        if page.span_ids.len() != spans * 8
            || page.odd_span_at.len() != page.odd_span_ids.len()
            || page.odd_span_at.windows(2).any(|w| w[0] >= w[1])
            || page
                .odd_span_at
                .last()
                .is_some_and(|&k| k as usize >= spans)
        {
            return Err("span id columns disagree".into());
        }
        let strings = page.strings.len() as u32;
        if page
            .name
            .iter()
            .chain(&page.ded_key)
            .chain(&page.ded_value)
            .any(|&i| i >= strings)
        {
            return Err("string reference out of range".into());
        }
        if page
            .resource
            .iter()
            .any(|&r| r as usize >= page.resources.len())
            || page.scope.iter().any(|&r| r as usize >= page.scopes.len())
        {
            return Err("resource or scope reference out of range".into());
        }
        // `ded_span` holds the deltas between the page numbers of the spans that have
        // column attributes (0 for a span's second and later ones).
        let first_attr = attribute_ranges(&page.ded_span, spans)?;
        let other = page.other_span.len();
        if page.other_pos.len() != other
            || page.other_key.len() != other
            || page.other_value.len() != other
        {
            return Err("attribute columns disagree".into());
        }
        if page.other_key.iter().any(|&i| i >= strings) {
            return Err("string reference out of range".into());
        }
        let first_other = attribute_ranges(&page.other_span, spans)?;
        let mut foreign_before = Vec::with_capacity(spans);
        let mut foreign = 0u32;
        for (k, &p) in page.parent.iter().enumerate() {
            foreign_before.push(foreign);
            let t = first_span.partition_point(|&f| f <= k) - 1;
            let count = page.trace_spans[t] as i32;
            match p {
                -1 => foreign += 1,
                p if (0..=count).contains(&p) => {}
                _ => return Err("parent reference out of range".into()),
            }
        }
        if foreign as usize != page.foreign_parents.len() {
            return Err("foreign parents disagree".into());
        }
        let resources = page
            .resources
            .iter()
            .map(|b| {
                let rs = ResourceSpans::decode(b.as_ref()).map_err(|e| format!("resource: {e}"))?;
                let service = service_of(rs.resource.as_ref());
                Ok(Arc::new(ResourceInfo {
                    resource: rs.resource,
                    schema_url: rs.schema_url,
                    service,
                }))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let scopes = page
            .scopes
            .iter()
            .map(|b| {
                let ss = ScopeSpans::decode(b.as_ref()).map_err(|e| format!("scope: {e}"))?;
                Ok(Arc::new(ScopeInfo {
                    scope: ss.scope,
                    schema_url: ss.schema_url,
                }))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(PageRows {
            page,
            resources,
            scopes,
            first_span,
            first_attr,
            first_other,
            foreign_before,
            attributes_in_rest: false,
        })
    }

    /// Returns how many traces the page holds.
    pub(crate) fn traces(&self) -> usize {
        self.first_span.len() - 1
    }

    /// Returns trace t's id.
    pub(crate) fn trace_id(&self, t: usize) -> &[u8] {
        &self.page.trace_ids[t * 16..t * 16 + 16]
    }

    /// Returns trace t's span numbers.
    pub(crate) fn spans(&self, t: usize) -> std::ops::Range<usize> {
        self.first_span[t]..self.first_span[t + 1]
    }

    pub(crate) fn service(&self, k: usize) -> &str {
        &self.resources[self.page.resource[k] as usize].service
    }

    pub(crate) fn name(&self, k: usize) -> &str {
        &self.page.strings[self.page.name[k] as usize]
    }

    pub(crate) fn kind(&self, k: usize) -> i32 {
        self.page.kind[k]
    }

    pub(crate) fn status(&self, k: usize) -> i32 {
        self.page.status[k]
    }

    /// The span's duration as the columns hold it (0 for a span that ends before it
    /// starts).
    pub(crate) fn duration(&self, k: usize) -> u64 {
        self.page.duration[k]
    }

    pub(crate) fn start(&self, t: usize, k: usize) -> u64 {
        self.page
            .base_ns
            .saturating_add(self.page.trace_start[t])
            .saturating_add(self.page.start[k])
    }

    /// Returns the value of the string span attribute `key` of span k, if it is one the
    /// columns hold (a string value).
    pub(crate) fn attr(&self, k: usize, key: &str) -> Option<&str> {
        (self.first_attr[k]..self.first_attr[k + 1])
            .find(|&a| self.page.strings[self.page.ded_key[a] as usize] == key)
            .map(|a| self.page.strings[self.page.ded_value[a] as usize].as_str())
    }

    /// Returns span k's id.
    fn span_id(&self, k: usize) -> &[u8] {
        let page = &self.page;
        match page.odd_span_at.binary_search(&(k as u32)) {
            Ok(i) => &page.odd_span_ids[i],
            Err(_) => &page.span_ids[k * 8..k * 8 + 8],
        }
    }

    /// Returns trace t's spans as they are written again, with the trace's header: the
    /// times, parents and byte count [`PageRows::trace`] gives the rebuilt trace.
    fn row_spans(&self, t: usize) -> (TraceHeader, Vec<RowSpan<'_>>) {
        use prost::encoding::encoded_len_varint as varint;
        let page = &self.page;
        let trace_start = page.base_ns.saturating_add(page.trace_start[t]);
        let range = self.spans(t);
        let mut header = TraceHeader {
            start_ns: u64::MAX,
            end_ns: 0,
            bytes: 0,
        };
        let mut spans = Vec::with_capacity(range.len());
        let field = |len: usize| 1 + varint(len as u64) + len;
        for k in range.clone() {
            let rest = &page.rest[k];
            // The rest's end (prost keeps the last), present only before the start.
            let mut rest_end = 0;
            for f in pharos_model::view::fields(rest) {
                if f.number == 8 {
                    rest_end = f.scalar;
                }
            }
            let start = trace_start.saturating_add(page.start[k]);
            let end = if rest_end == 0 {
                start.saturating_add(page.duration[k])
            } else {
                rest_end
            };
            let parent: &[u8] = match page.parent[k] {
                0 => &[],
                -1 => &page.foreign_parents[self.foreign_before[k] as usize],
                p => self.span_id(range.start + p as usize - 1),
            };
            // The rebuilt span's encoded length, as prost counts it.
            let name = self.name(k);
            let mut bytes = field(16) + field(self.span_id(k).len()) + rest.len();
            if !parent.is_empty() {
                bytes += field(parent.len());
            }
            if !name.is_empty() {
                bytes += field(name.len());
            }
            if page.kind[k] != 0 {
                bytes += 1 + varint(i64::from(page.kind[k]) as u64);
            }
            if start != 0 {
                bytes += 9;
            }
            if end != 0 && rest_end == 0 {
                bytes += 9;
            }
            for a in self.first_attr[k]..self.first_attr[k + 1] {
                let key = page.strings[page.ded_key[a] as usize].len();
                let value = field(page.strings[page.ded_value[a] as usize].len());
                let key = if key == 0 { 0 } else { field(key) };
                bytes += field(key + field(value));
            }
            for y in self.first_other[k]..self.first_other[k + 1] {
                let key = page.strings[page.other_key[y] as usize].len();
                let key = if key == 0 { 0 } else { field(key) };
                bytes += field(key + page.other_value[y].len());
            }
            header.bytes += bytes as u64;
            header.start_ns = header.start_ns.min(start);
            header.end_ns = header.end_ns.max(end.max(start));
            spans.push(RowSpan {
                rows: self,
                k,
                parent,
                start,
                end,
            });
        }
        (header, spans)
    }

    /// Rebuilds trace t.
    pub(crate) fn trace(&self, t: usize) -> Result<(TraceId, Trace), String> {
        let page = &self.page;
        let id: TraceId = page.trace_ids[t * 16..t * 16 + 16]
            .try_into()
            .expect("16 bytes");
        let trace_start = page.base_ns.saturating_add(page.trace_start[t]);
        let range = self.spans(t);
        let mut trace = Trace {
            spans: Vec::with_capacity(range.len()),
            bytes: 0,
            start_ns: u64::MAX,
            end_ns: 0,
        };
        for k in range.clone() {
            let mut span = Span::decode(page.rest[k].as_ref()).map_err(|e| format!("span: {e}"))?;
            span.trace_id = id.to_vec();
            span.span_id = self.span_id(k).to_vec();
            span.name = page.strings[page.name[k] as usize].clone();
            span.kind = page.kind[k];
            span.start_time_unix_nano = trace_start.saturating_add(page.start[k]);
            if span.end_time_unix_nano == 0 {
                span.end_time_unix_nano =
                    span.start_time_unix_nano.saturating_add(page.duration[k]);
            }
            // Both kinds of column attributes go in by ascending position.
            let mut strings = self.first_attr[k]..self.first_attr[k + 1];
            let mut others = self.first_other[k]..self.first_other[k + 1];
            let (mut a, mut o) = (strings.next(), others.next());
            loop {
                let (pos, kv) = match (a, o) {
                    (None, None) => break,
                    (Some(x), y) if y.is_none_or(|y| page.ded_pos[x] < page.other_pos[y]) => {
                        a = strings.next();
                        let kv = KeyValue {
                            key: page.strings[page.ded_key[x] as usize].clone(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(
                                    page.strings[page.ded_value[x] as usize].clone(),
                                )),
                            }),
                            ..Default::default()
                        };
                        (page.ded_pos[x], kv)
                    }
                    (_, Some(y)) => {
                        o = others.next();
                        let mut kv = KeyValue::decode(page.other_value[y].as_ref())
                            .map_err(|e| format!("attribute: {e}"))?;
                        kv.key = page.strings[page.other_key[y] as usize].clone();
                        (page.other_pos[y], kv)
                    }
                    (Some(_), None) => unreachable!("matched above"),
                };
                let pos = pos as usize;
                if pos > span.attributes.len() {
                    return Err("attribute position out of range".into());
                }
                span.attributes.insert(pos, kv);
            }
            span.parent_span_id = match page.parent[k] {
                0 => Vec::new(),
                -1 => page.foreign_parents[self.foreign_before[k] as usize].to_vec(),
                p => self.span_id(range.start + p as usize - 1).to_vec(),
            };
            trace.start_ns = trace.start_ns.min(span.start_time_unix_nano);
            trace.end_ns = trace
                .end_ns
                .max(span.end_time_unix_nano.max(span.start_time_unix_nano));
            trace.bytes += span.encoded_len() as u64;
            trace.spans.push(StoredSpan {
                resource: Arc::clone(&self.resources[page.resource[k] as usize]),
                scope: Arc::clone(&self.scopes[page.scope[k] as usize]),
                span,
            });
        }
        Ok((id, trace))
    }
}
