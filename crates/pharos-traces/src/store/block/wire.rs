//! Page encoding of format versions 2 to 4: how a page's columns ([`PageProto`], the shape
//! the reader serves) are laid out on disk so that they compress well. The writer builds
//! version-4 pages directly (`builder.rs`); [`encode`] here makes a page of any version
//! from columns (tests write older versions with it, and hold the writer to it).
//!
//! Version 1 wrote `PageProto` itself. Version 2 transforms three parts of it, each
//! losslessly (`decode(encode(p)) == p`):
//! - **Attributes by key.** Instead of one page-wide string table with a reference per
//!   attribute, each span names its *shape* (the sequence of attribute keys and whether
//!   each value is a string), and each (key, string-or-not) *stream* holds its values in
//!   first-occurrence order plus one small reference per use: 0 for a value not seen
//!   before, r > 0 for the value r places back in the stream's list. Non-string values
//!   move out of the spans' `rest` into streams too (their encoded `KeyValue` minus the
//!   key; decoding leaves them out of `rest`, in their own columns, decoded only for the
//!   spans rebuilt). Low-cardinality keys then cost almost nothing, and high-cardinality values
//!   sit next to values of the same kind.
//! - **Start times from the parent.** A span's start is stored relative to its parent's
//!   start when the parent is in the same trace (and the chain of parents ends), else
//!   relative to its trace's start: the gap to the parent is much smaller.
//! - **pco for times.** Starts and durations are pco streams (`i64` and `u64`), which
//!   come close to the entropy of such distributions.
//!
//! Version 3 adds two, for what a child span and an event usually are:
//! - **Ends from the parent's end.** Where the start is stored from the parent, the
//!   span's end is stored as the parent's end minus its end (a call returns just before
//!   its caller does); elsewhere the duration, as before.
//! - **Event times from the span's start**, rewritten in place in `rest` (the same eight
//!   bytes, so the span's encoding keeps its shape).
//!
//! Everything else is stored as version 1 stores it. The whole [`PageWire`] message is
//! one zstd frame, as in version 1. Decoding gives back columns that rebuild the same
//! spans byte for byte (the string table's order may differ).

use crate::store::FastMap;
use bytes::Bytes;
use prost::Message;
use prost::encoding::{decode_key, decode_varint, skip_field};

use super::PageProto;

/// The `rest` field number of a span's attributes (`Span.attributes`).
pub(super) const ATTRIBUTES_FIELD: u32 = 9;
/// The `rest` field number of a span's events (`Span.events`).
const EVENTS_FIELD: u32 = 11;
/// The key byte of `Event.time_unix_nano` (field 1, fixed64).
const EVENT_TIME_KEY: u8 = 0x09;

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct PageWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub(super) trace_ids: Bytes,
    #[prost(uint32, repeated, tag = "2")]
    pub(super) trace_spans: Vec<u32>,
    #[prost(uint64, repeated, tag = "3")]
    pub(super) trace_start: Vec<u64>,
    #[prost(uint64, tag = "4")]
    pub(super) base_ns: u64,
    #[prost(bytes = "bytes", repeated, tag = "5")]
    pub(super) resources: Vec<Bytes>,
    #[prost(bytes = "bytes", repeated, tag = "6")]
    pub(super) scopes: Vec<Bytes>,
    /// Span names.
    #[prost(string, repeated, tag = "7")]
    pub(super) names: Vec<String>,
    /// Distinct (resource, scope, name, kind, attribute shape) of the page's spans.
    #[prost(message, repeated, tag = "8")]
    pub(super) ops: Vec<OpWire>,
    /// Each span's entry in `ops`.
    #[prost(uint32, repeated, tag = "9")]
    pub(super) op: Vec<u32>,
    #[prost(bytes = "bytes", tag = "10")]
    pub(super) span_ids: Bytes,
    #[prost(sint32, repeated, tag = "11")]
    pub(super) parent: Vec<i32>,
    #[prost(bytes = "bytes", repeated, tag = "12")]
    pub(super) foreign_parents: Vec<Bytes>,
    /// pco `i64`: start minus the parent's start, or minus the trace's start.
    #[prost(bytes = "bytes", tag = "13")]
    pub(super) start: Bytes,
    /// pco `u64`; empty when `ends` is given (version 3).
    #[prost(bytes = "bytes", tag = "14")]
    pub(super) duration: Bytes,
    /// Version 3: pco `i64`, in place of `duration`: the parent's end minus the span's
    /// end where the start is stored from the parent, else the duration.
    #[prost(bytes = "bytes", tag = "15")]
    pub(super) ends: Bytes,
    #[prost(int32, repeated, tag = "17")]
    pub(super) status: Vec<i32>,
    /// Attribute keys.
    #[prost(string, repeated, tag = "18")]
    pub(super) keys: Vec<String>,
    /// Distinct attribute shapes: stream numbers, `key * 2 + 1` for a string value,
    /// `key * 2` for any other.
    #[prost(message, repeated, tag = "19")]
    pub(super) shapes: Vec<ShapeWire>,
    /// Stream n is `streams[n]`; streams past the end are empty.
    #[prost(message, repeated, tag = "21")]
    pub(super) streams: Vec<StreamWire>,
    /// Each span's protobuf without the columns and without its attributes.
    #[prost(bytes = "bytes", repeated, tag = "22")]
    pub(super) rest: Vec<Bytes>,
    #[prost(uint32, repeated, tag = "23")]
    pub(super) odd_span_at: Vec<u32>,
    #[prost(bytes = "bytes", repeated, tag = "24")]
    pub(super) odd_span_ids: Vec<Bytes>,
    /// Version 3: each event's `time_unix_nano` in `rest` holds the time minus the
    /// span's start (wrapping), in the same eight bytes.
    #[prost(bool, tag = "25")]
    pub(super) event_times_from_start: bool,
    /// 4 from version 4 on (0 before): times from siblings, values predicted by op,
    /// packed value streams.
    #[prost(uint32, tag = "26")]
    pub(super) version: u32,
    /// Version 4: pco `u64` of each trace id's first eight bytes (big-endian, so in
    /// ascending order); `trace_ids` then holds only the last eight bytes of each.
    #[prost(bytes = "bytes", tag = "27")]
    pub(super) trace_ids_high: Bytes,
}

#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub(super) struct OpWire {
    #[prost(uint32, tag = "1")]
    pub(super) resource: u32,
    #[prost(uint32, tag = "2")]
    pub(super) scope: u32,
    /// Index into `names`.
    #[prost(uint32, tag = "3")]
    pub(super) name: u32,
    #[prost(int32, tag = "4")]
    pub(super) kind: i32,
    /// Index into `shapes`.
    #[prost(uint32, tag = "5")]
    pub(super) shape: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ShapeWire {
    #[prost(uint32, repeated, tag = "1")]
    pub(super) streams: Vec<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct StreamWire {
    /// Distinct values in first-occurrence order: a string's UTF-8, or a non-string
    /// attribute's encoded `KeyValue` after its key field.
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub(super) values: Vec<Bytes>,
    /// One per use: 0 takes the next new value; 1 the value of this stream's last use by
    /// a span of the same name; r > 1 the value r - 1 places back in `values`.
    #[prost(uint64, repeated, tag = "2")]
    pub(super) refs: Vec<u64>,
    /// Version 4, string streams: how `values` hold the strings ([`PACKED_IPV4`],
    /// [`PACKED_HEX`]; 0 as UTF-8).
    #[prost(uint32, tag = "3")]
    pub(super) packing: u32,
}

/// A string stream whose values are all canonical dotted-quad IPv4 addresses, stored as
/// their four bytes.
const PACKED_IPV4: u32 = 1;
/// A string stream whose values are all non-empty lowercase hex of even length, stored as
/// the bytes they spell.
const PACKED_HEX: u32 = 2;

/// Packs a string stream's values where they all are IPv4 addresses or all hex.
pub(super) fn pack_values(w: &mut StreamWire) {
    if w.values.is_empty() {
        return;
    }
    if let Some(addresses) = w.values.iter().map(|v| ipv4(v)).collect::<Option<Vec<_>>>() {
        w.packing = PACKED_IPV4;
        w.values = addresses
            .iter()
            .map(|a| Bytes::copy_from_slice(a))
            .collect();
    } else if w.values.iter().all(|v| is_lower_hex(v)) {
        w.packing = PACKED_HEX;
        for v in &mut w.values {
            *v = Bytes::from(hex::decode(&v[..]).expect("checked"));
        }
    }
}

/// Whether `v` is non-empty lowercase hex of even length: what `hex::encode` gives back.
fn is_lower_hex(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len().is_multiple_of(2)
        && v.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// A packed string value back as its text.
fn unpack_value(packing: u32, v: &[u8]) -> Result<String, String> {
    match packing {
        0 => std::str::from_utf8(v)
            .map(str::to_string)
            .map_err(|_| "attribute value is not UTF-8".to_string()),
        PACKED_IPV4 => match v {
            [a, b, c, d] => {
                let mut s = String::with_capacity(15);
                for (i, &part) in [a, b, c, d].into_iter().enumerate() {
                    if i > 0 {
                        s.push('.');
                    }
                    for (digit, from) in [(part / 100, 100), (part / 10 % 10, 10), (part % 10, 1)] {
                        if part >= from || from == 1 {
                            s.push(char::from(b'0' + digit));
                        }
                    }
                }
                Ok(s)
            }
            _ => Err("a packed IPv4 value is not four bytes".into()),
        },
        PACKED_HEX => Ok(hex::encode(v)),
        other => Err(format!("unknown value packing {other}")),
    }
}

/// pco level 6: on test pages, half the compression time of level 8 (pco's default) for
/// 0.15% more bytes in the page.
pub(super) fn pco_config() -> pco::ChunkConfig {
    pco::ChunkConfig::default().with_compression_level(6)
}

/// For each span of each trace, whether its start is stored relative to its parent's:
/// the parent is a span of the same trace and following parents from it ends at a span
/// without one (no cycle). Computed from the parent column alone, so the reader repeats
/// it exactly.
fn parent_relative(parent: &[i32], first_span: &[usize]) -> Vec<bool> {
    // Whether following parents from a span ends: 0 unknown, 1 on the current walk,
    // 2 it ends, 3 it loops.
    let mut state = vec![0u8; parent.len()];
    let mut relative = vec![false; parent.len()];
    let mut path = Vec::new();
    for t in 0..first_span.len() - 1 {
        let range = first_span[t]..first_span[t + 1];
        let in_trace = |p: i32| p > 0 && p as usize <= range.len();
        for k in range.clone() {
            let mut at = k;
            let outcome = loop {
                match state[at] {
                    0 => {}
                    2 => break 2,
                    _ => break 3,
                }
                if !in_trace(parent[at]) {
                    state[at] = 2;
                    break 2;
                }
                state[at] = 1;
                path.push(at);
                at = range.start + parent[at] as usize - 1;
            };
            for &n in &path {
                state[n] = outcome;
            }
            path.clear();
            relative[k] = in_trace(parent[k]) && state[k] == 2;
        }
    }
    relative
}

/// Computes a value per span from its parent's (`child`) where the span's start is stored
/// from its parent (`relative`), else from the span alone (`root`); parents first,
/// whatever order the spans are in.
fn resolve_from_parent(
    relative: &[bool],
    parent: &[i32],
    first_span: &[usize],
    root: &dyn Fn(usize) -> i64,
    child: &dyn Fn(usize, i64) -> i64,
) -> Vec<i64> {
    let spans = relative.len();
    let mut resolved = vec![false; spans];
    let mut out = vec![0i64; spans];
    let mut path = Vec::new();
    for t in 0..first_span.len() - 1 {
        let base = first_span[t];
        for k in first_span[t]..first_span[t + 1] {
            let mut at = k;
            while !resolved[at] && relative[at] {
                path.push(at);
                at = base + parent[at] as usize - 1;
            }
            let mut value = if resolved[at] {
                out[at]
            } else {
                resolved[at] = true;
                out[at] = root(at);
                out[at]
            };
            while let Some(n) = path.pop() {
                value = child(n, value);
                out[n] = value;
                resolved[n] = true;
            }
        }
    }
    out
}

/// For each span stored from its parent, the previous span (in page order) of the same
/// trace with the same parent, and whether a later one follows. Computed from the parent
/// column alone, so the reader repeats it exactly.
fn siblings(
    parent: &[i32],
    relative: &[bool],
    first_span: &[usize],
) -> (Vec<Option<usize>>, Vec<bool>) {
    let mut prev = vec![None; parent.len()];
    let mut has_next = vec![false; parent.len()];
    let mut last: FastMap<i32, usize> = FastMap::default();
    for t in 0..first_span.len() - 1 {
        last.clear();
        for k in first_span[t]..first_span[t + 1] {
            if !relative[k] {
                continue;
            }
            if let Some(s) = last.insert(parent[k], k) {
                prev[k] = Some(s);
                has_next[s] = true;
            }
        }
    }
    (prev, has_next)
}

/// The four bytes of a canonical dotted-quad IPv4 address ("10.0.0.1": no leading zeros,
/// each part at most 255), or `None`.
fn ipv4(v: &[u8]) -> Option<[u8; 4]> {
    let s = std::str::from_utf8(v).ok()?;
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut out {
        let p = parts.next()?;
        if p.is_empty()
            || p.len() > 3
            || (p.len() > 1 && p.starts_with('0'))
            || !p.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        *o = p.parse::<u16>().ok().filter(|&n| n <= 255)? as u8;
    }
    parts.next().is_none().then_some(out)
}

/// Version 4's starts and ends, each span after its parent and its previous sibling (the
/// order the writer's `siblings` defines; parents and earlier siblings never depend on a
/// span, so the walk ends).
fn resolve_v4(
    relative: &[bool],
    parent: &[i32],
    first_span: &[usize],
    start: &[i64],
    ends: &[i64],
) -> Result<(Vec<i64>, Vec<i64>), String> {
    let spans = relative.len();
    let (prev, has_next) = siblings(parent, relative, first_span);
    let mut st = vec![0i64; spans];
    let mut en = vec![0i64; spans];
    let mut done = vec![false; spans];
    let mut stack = Vec::new();
    for t in 0..first_span.len() - 1 {
        let base = first_span[t];
        for k in first_span[t]..first_span[t + 1] {
            stack.push(k);
            while let Some(&x) = stack.last() {
                if done[x] {
                    stack.pop();
                    continue;
                }
                if stack.len() > spans {
                    return Err("span times depend on each other in a loop".into());
                }
                let p = relative[x].then(|| base + parent[x] as usize - 1);
                if let Some(p) = p.filter(|&p| !done[p]) {
                    stack.push(p);
                    continue;
                }
                if let Some(b) = prev[x].filter(|&b| !done[b]) {
                    stack.push(b);
                    continue;
                }
                let (s, e) = match p {
                    None => (start[x], start[x].wrapping_add(ends[x])),
                    Some(p) => {
                        let s = match prev[x] {
                            Some(b) => en[b].wrapping_add(start[x]),
                            None => st[p].wrapping_add(start[x]),
                        };
                        let e = if has_next[x] {
                            s.wrapping_add(ends[x])
                        } else {
                            en[p].wrapping_sub(ends[x])
                        };
                        (s, e)
                    }
                };
                st[x] = s;
                en[x] = e;
                done[x] = true;
                stack.pop();
            }
        }
    }
    Ok((st, en))
}

pub(super) fn first_spans(trace_spans: &[u32]) -> Option<Vec<usize>> {
    let mut first = Vec::with_capacity(trace_spans.len() + 1);
    let mut at = 0usize;
    first.push(0);
    for &c in trace_spans {
        at = at.checked_add(c as usize)?;
        first.push(at);
    }
    Some(first)
}

/// Version 4's prediction slots of a shape: for each position, the first position of the
/// same stream (a key given twice shares its stream's last value per op).
pub(super) fn slots(streams: &[u32]) -> Vec<usize> {
    (0..streams.len())
        .map(|p| streams.iter().position(|&x| x == streams[p]).unwrap_or(p))
        .collect()
}

/// Splits an encoded `rest` into the bytes before its attributes, the attributes'
/// payloads (each an encoded `KeyValue`) and the bytes after them. A rest is written
/// in field order, so its attributes are one run.
fn split_rest(rest: &[u8]) -> Result<(usize, Vec<&[u8]>, usize), String> {
    let mut buf = rest;
    let (mut before, mut after) = (None, None);
    let mut attrs = Vec::new();
    while !buf.is_empty() {
        let at = rest.len() - buf.len();
        let (tag, wire_type) = decode_key(&mut buf).map_err(|e| format!("span: {e}"))?;
        if tag == ATTRIBUTES_FIELD {
            if after.is_some() {
                return Err("span attributes out of field order".into());
            }
            before.get_or_insert(at);
            let len = decode_varint(&mut buf).map_err(|e| format!("span: {e}"))? as usize;
            if len > buf.len() {
                return Err("span: attribute past the end".into());
            }
            attrs.push(&buf[..len]);
            buf = &buf[len..];
        } else {
            if tag > ATTRIBUTES_FIELD && after.is_none() {
                after = Some(at);
                before.get_or_insert(at);
            }
            skip_field(wire_type, tag, &mut buf, Default::default())
                .map_err(|e| format!("span: {e}"))?;
        }
    }
    let before = before.unwrap_or(rest.len());
    Ok((before, attrs, after.unwrap_or(rest.len())))
}

/// Splits an encoded `KeyValue` into its key and the rest (the fields after the key).
pub(super) fn split_key_value(kv: &[u8]) -> Result<(&[u8], &[u8]), String> {
    if kv.first() != Some(&0x0a) {
        return Ok((&[], kv));
    }
    let mut buf = &kv[1..];
    let len = decode_varint(&mut buf).map_err(|e| format!("attribute: {e}"))? as usize;
    if len > buf.len() {
        return Err("attribute key past the end".into());
    }
    Ok((&buf[..len], &buf[len..]))
}

#[derive(Default)]
struct StreamBuilder<'a> {
    seen: FastMap<&'a [u8], u64>,
    /// The value of the last use, by span name (version 3) or op (version 4).
    last: FastMap<u32, u64>,
    /// The value of the stream's latest use (version 4).
    recent: Option<u64>,
    wire: StreamWire,
}

impl<'a> StreamBuilder<'a> {
    /// Adds a use of `value` by a span whose predictor (name or op) is `by`.
    fn push(&mut self, by: u32, value: &'a [u8], v4: bool) {
        let n = self.wire.values.len() as u64;
        let i = match self.seen.get(value) {
            Some(&i) => {
                let r = if self.last.get(&by) == Some(&i) {
                    1
                } else if v4 && self.recent == Some(i) {
                    2
                } else if v4 {
                    n - i + 2
                } else {
                    n - i + 1
                };
                self.wire.refs.push(r);
                i
            }
            None => {
                self.seen.insert(value, n);
                self.wire.values.push(Bytes::copy_from_slice(value));
                self.wire.refs.push(0);
                n
            }
        };
        self.last.insert(by, i);
        self.recent = Some(i);
    }
}

/// Where an event of an encoded span keeps its time: the offsets in `rest` of the eight
/// bytes of each event's `time_unix_nano`, when the event's first field is that time
/// (as prost writes a set time).
/// A rest holding attributes is refused (their place is the streams).
pub(super) fn event_times(rest: &[u8], out: &mut Vec<usize>) -> Result<(), String> {
    let mut buf = rest;
    out.clear();
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(|e| format!("span: {e}"))?;
        if tag == ATTRIBUTES_FIELD {
            return Err("a span's rest holds attributes".into());
        }
        if tag == EVENTS_FIELD && wire_type == prost::encoding::WireType::LengthDelimited {
            let len = decode_varint(&mut buf).map_err(|e| format!("span: {e}"))? as usize;
            if len > buf.len() {
                return Err("span: event past the end".into());
            }
            if len >= 9 && buf[0] == EVENT_TIME_KEY {
                out.push(rest.len() - buf.len() + 1);
            }
            buf = &buf[len..];
        } else {
            skip_field(wire_type, tag, &mut buf, Default::default())
                .map_err(|e| format!("span: {e}"))?;
        }
    }
    Ok(())
}

/// Adds `delta` (wrapping) to each event time of `rest`, found by [`event_times`].
pub(super) fn shift_event_times(rest: &mut [u8], at: &[usize], delta: u64) {
    for &o in at {
        let b: [u8; 8] = rest[o..o + 8].try_into().expect("eight bytes");
        let t = u64::from_le_bytes(b).wrapping_add(delta);
        rest[o..o + 8].copy_from_slice(&t.to_le_bytes());
    }
}

/// The absolute start of span k of trace t, as the transforms compute it (wrapping).
fn absolute_start(p: &PageProto, t: usize, k: usize) -> u64 {
    p.base_ns
        .wrapping_add(p.trace_start[t])
        .wrapping_add(p.start[k])
}

/// A page's `start` and `ends` columns (versions 3 and 4; see the format) from its
/// parent column, its trace-relative starts and its durations.
pub(super) fn start_and_ends(
    parent: &[i32],
    start_rel: &[u64],
    duration: &[u64],
    first_span: &[usize],
    v4: bool,
) -> (Vec<i64>, Vec<i64>) {
    let relative = parent_relative(parent, first_span);
    let (prev_sibling, has_next) = siblings(parent, &relative, first_span);
    let mut start = Vec::with_capacity(parent.len());
    let mut ends = Vec::with_capacity(parent.len());
    let end_of = |k: usize| start_rel[k].wrapping_add(duration[k]) as i64;
    for t in 0..first_span.len() - 1 {
        for k in first_span[t]..first_span[t + 1] {
            if relative[k] {
                let up = first_span[t] + parent[k] as usize - 1;
                // Version 4 stores the start from the previous sibling's end where there
                // is one, and the duration where a later sibling follows: sequential calls
                // make small numbers. Otherwise both are from the parent (version 3).
                let (prev, next) = if v4 {
                    (prev_sibling[k], has_next[k])
                } else {
                    (None, false)
                };
                let from = prev.map_or(start_rel[up] as i64, end_of);
                start.push((start_rel[k] as i64).wrapping_sub(from));
                ends.push(if next {
                    duration[k] as i64
                } else {
                    end_of(up).wrapping_sub(end_of(k))
                });
            } else {
                start.push(start_rel[k] as i64);
                ends.push(duration[k] as i64);
            }
        }
    }
    (start, ends)
}

/// Encodes a page's columns as version 2, 3 or 4 (before compression).
///
/// # Panics
///
/// When the columns disagree with each other (the writer builds them consistent).
// Span k indexes a dozen columns in step; a range loop says so best.
#[allow(clippy::needless_range_loop)]
pub(super) fn encode<'a>(p: &'a PageProto, version: u8) -> Vec<u8> {
    let v3 = version >= 3;
    let v4 = version >= 4;
    let spans = p.name.len();
    let first_span = first_spans(&p.trace_spans).expect("span counts fit");
    let mut names = Vec::new();
    let mut name_of: FastMap<u32, u32> = FastMap::default();
    let name: Vec<u32> = p
        .name
        .iter()
        .map(|&i| {
            *name_of.entry(i).or_insert_with(|| {
                names.push(p.strings[i as usize].clone());
                names.len() as u32 - 1
            })
        })
        .collect();
    let mut keys: Vec<&str> = Vec::new();
    let mut key_of: FastMap<&str, u32> = FastMap::default();
    let mut key = |k: &'a str| -> u32 {
        if let Some(&i) = key_of.get(k) {
            return i;
        }
        let i = keys.len() as u32;
        keys.push(k);
        key_of.insert(k, i);
        i
    };
    let mut streams: Vec<StreamBuilder<'_>> = Vec::new();
    let mut shapes: Vec<ShapeWire> = Vec::new();
    let mut shape_of: FastMap<Vec<u32>, u32> = FastMap::default();
    let mut ops: Vec<OpWire> = Vec::new();
    let mut op_of: FastMap<OpWire, u32> = FastMap::default();
    let mut op = Vec::with_capacity(spans);
    let mut rest_buf: Vec<u8> = Vec::new();
    let mut rest_at = Vec::with_capacity(spans);
    let mut strings = Vec::new();
    let mut span_shape = Vec::new();
    let mut span_values: Vec<(u32, &[u8])> = Vec::new();
    let mut ded = 0usize;
    let mut ded_at = 0u64;
    let mut trace = 0;
    let mut times = Vec::new();
    for k in 0..spans {
        while first_span[trace + 1] <= k {
            trace += 1;
        }
        let (before, others, after) = split_rest(&p.rest[k]).expect("the writer's rest parses");
        // Every span's rest goes into one buffer, sliced once the page is done.
        let from = rest_buf.len();
        rest_buf.extend_from_slice(&p.rest[k][..before]);
        rest_buf.extend_from_slice(&p.rest[k][after..]);
        let stripped = &mut rest_buf[from..];
        event_times(stripped, &mut times).expect("the writer's rest parses");
        let start = absolute_start(p, trace, k);
        if v3 {
            shift_event_times(stripped, &times, start.wrapping_neg());
        }
        rest_at.push(from..rest_buf.len());
        // This span's string attributes: the `ded_*` entries whose span number is k.
        strings.clear();
        while ded < p.ded_span.len() && ded_at + u64::from(p.ded_span[ded]) == k as u64 {
            ded_at += u64::from(p.ded_span[ded]);
            strings.push(ded);
            ded += 1;
        }
        let total = strings.len() + others.len();
        span_shape.clear();
        let (mut si, mut oi) = (0, 0);
        for pos in 0..total {
            let (stream, value): (u32, &[u8]) =
                if si < strings.len() && p.ded_pos[strings[si]] as usize == pos {
                    let d = strings[si];
                    si += 1;
                    let kk = key(&p.strings[p.ded_key[d] as usize]);
                    (kk * 2 + 1, p.strings[p.ded_value[d] as usize].as_bytes())
                } else {
                    let (kbytes, value) = split_key_value(others[oi]).expect("the writer's rest");
                    oi += 1;
                    let kk = key(std::str::from_utf8(kbytes).expect("prost wrote a string"));
                    (kk * 2, value)
                };
            span_shape.push(stream);
            span_values.push((stream, value));
        }
        assert!(
            si == strings.len() && oi == others.len(),
            "attribute positions disagree"
        );
        let id = match shape_of.get(&span_shape) {
            Some(&id) => id,
            None => {
                let id = shapes.len() as u32;
                shape_of.insert(span_shape.clone(), id);
                shapes.push(ShapeWire {
                    streams: span_shape.clone(),
                });
                id
            }
        };
        let o = OpWire {
            resource: p.resource[k],
            scope: p.scope[k],
            name: name[k],
            kind: p.kind[k],
            shape: id,
        };
        let next = ops.len() as u32;
        let this_op = *op_of.entry(o.clone()).or_insert_with(|| {
            ops.push(o);
            next
        });
        op.push(this_op);
        // Version 4 predicts a value from the last use by the same op, version 3 by the
        // same span name.
        let predictor = if v4 { this_op } else { name[k] };
        for (stream, value) in span_values.drain(..) {
            let n = stream as usize;
            if streams.len() <= n {
                streams.resize_with(n + 1, StreamBuilder::default);
            }
            streams[n].push(predictor, value, v4);
        }
    }
    let (start, ends) = start_and_ends(&p.parent, &p.start, &p.duration, &first_span, v4);
    let wire = PageWire {
        trace_ids: if v4 {
            p.trace_ids
                .chunks_exact(16)
                .flat_map(|id| id[8..].iter().copied())
                .collect()
        } else {
            Bytes::copy_from_slice(&p.trace_ids)
        },
        trace_ids_high: if v4 {
            let high: Vec<u64> = p
                .trace_ids
                .chunks_exact(16)
                .map(|id| u64::from_be_bytes(id[..8].try_into().expect("eight bytes")))
                .collect();
            Bytes::from(pco::standalone::simple_compress(&high, &pco_config()).expect("pco"))
        } else {
            Bytes::new()
        },
        trace_spans: p.trace_spans.clone(),
        trace_start: p.trace_start.clone(),
        base_ns: p.base_ns,
        resources: p.resources.clone(),
        scopes: p.scopes.clone(),
        names,
        ops,
        op,
        span_ids: Bytes::copy_from_slice(&p.span_ids),
        parent: p.parent.clone(),
        foreign_parents: p.foreign_parents.clone(),
        start: Bytes::from(pco::standalone::simple_compress(&start, &pco_config()).expect("pco")),
        duration: if v3 {
            Bytes::new()
        } else {
            Bytes::from(pco::standalone::simple_compress(&p.duration, &pco_config()).expect("pco"))
        },
        ends: if v3 {
            Bytes::from(pco::standalone::simple_compress(&ends, &pco_config()).expect("pco"))
        } else {
            Bytes::new()
        },
        status: p.status.clone(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        shapes,
        streams: streams
            .into_iter()
            .enumerate()
            .map(|(n, s)| {
                let mut w = s.wire;
                // Version 4: a string stream of only IPv4 addresses or only hex is stored
                // as their bytes.
                if v4 && n % 2 == 1 {
                    pack_values(&mut w);
                }
                w
            })
            .collect(),
        rest: {
            let all = Bytes::from(rest_buf);
            rest_at.into_iter().map(|r| all.slice(r)).collect()
        },
        odd_span_at: p.odd_span_at.clone(),
        odd_span_ids: p.odd_span_ids.clone(),
        event_times_from_start: v3,
        version: if v4 { u32::from(version) } else { 0 },
    };
    wire.encode_to_vec()
}

fn decompress<T: pco::data_types::Number>(bytes: &[u8], what: &str) -> Result<Vec<T>, String> {
    pco::standalone::simple_decompress(bytes).map_err(|e| format!("{what}: {e}"))
}

/// Decodes a version-2 page (after decompression) into its columns, checking every
/// reference it resolves.
pub(super) fn decode(raw: Bytes) -> Result<PageProto, String> {
    let w = PageWire::decode(raw).map_err(|e| e.to_string())?;
    if w.version > u32::from(super::PAGE_VERSION) {
        return Err(format!(
            "page version {} is newer than this reader",
            w.version
        ));
    }
    let v4 = w.version >= 4;
    let first_span = first_spans(&w.trace_spans).ok_or("span counts overflow")?;
    let spans = *first_span.last().expect("pushed");
    for (what, len) in [
        ("parent", w.parent.len()),
        ("op", w.op.len()),
        ("rest", w.rest.len()),
    ] {
        if len != spans {
            return Err(format!("column {what} has {len} entries for {spans} spans"));
        }
    }
    let start: Vec<i64> = decompress(&w.start, "start")?;
    // Version 3 stores ends from the parent's end; version 2 durations.
    let (duration, ends): (Vec<u64>, Vec<i64>) = if w.ends.is_empty() {
        (decompress(&w.duration, "duration")?, Vec::new())
    } else if w.duration.is_empty() {
        (Vec::new(), decompress(&w.ends, "ends")?)
    } else {
        return Err("both durations and ends".into());
    };
    if start.len() != spans || duration.len().max(ends.len()) != spans {
        return Err("time columns disagree".into());
    }
    // Strings: span names, keys, then every string stream's values.
    let mut strings: Vec<String> = w.names.clone();
    let key_base = strings.len() as u32;
    strings.extend(w.keys.iter().cloned());
    let mut value_base = vec![0u32; w.streams.len()];
    for (n, s) in w.streams.iter().enumerate() {
        if n % 2 == 1 {
            value_base[n] = strings.len() as u32;
            for v in &s.values {
                strings.push(unpack_value(s.packing, v)?);
            }
        } else if s.packing != 0 {
            return Err("a packed stream of non-string values".into());
        }
    }
    let names = w.names.len() as u32;
    if w.ops.iter().any(|o| o.name >= names) {
        return Err("span name reference out of range".into());
    }
    // The value each stream last gave a span of the same predictor: by (name, stream)
    // before version 4; from version 4 by op, in a slot per distinct stream of the op's
    // shape (the first position that stream has in it).
    let mut last: FastMap<(u32, usize), u64> = FastMap::default();
    let shape_slots: Vec<Vec<usize>> = w.shapes.iter().map(|s| slots(&s.streams)).collect();
    let mut op_base = Vec::with_capacity(w.ops.len());
    let mut slots = 0usize;
    for o in &w.ops {
        op_base.push(slots);
        slots += w
            .shapes
            .get(o.shape as usize)
            .map_or(0, |s| s.streams.len());
    }
    let mut op_last = vec![u64::MAX; if v4 { slots } else { 0 }];
    let mut used = vec![0usize; w.streams.len()];
    let mut seen = vec![0u64; w.streams.len()];
    let mut recent: Vec<Option<u64>> = vec![None; w.streams.len()];
    let mut page = PageProto {
        strings,
        ..PageProto::default()
    };
    // Every column grows to a size known now (the references are decoded already).
    let uses = |string: bool| -> usize {
        w.streams
            .iter()
            .enumerate()
            .filter(|(n, _)| (n % 2 == 1) == string)
            .map(|(_, s)| s.refs.len())
            .sum()
    };
    let (strings_used, others_used) = (uses(true), uses(false));
    for column in [
        &mut page.ded_span,
        &mut page.ded_pos,
        &mut page.ded_key,
        &mut page.ded_value,
    ] {
        column.reserve(strings_used);
    }
    for column in [
        &mut page.other_span,
        &mut page.other_pos,
        &mut page.other_key,
    ] {
        column.reserve(others_used);
    }
    page.other_value.reserve(others_used);
    for column in [&mut page.resource, &mut page.scope, &mut page.name] {
        column.reserve(spans);
    }
    page.kind.reserve(spans);
    page.rest.reserve(spans);
    let (mut last_ded, mut last_other) = (0u32, 0u32);
    let mut times = Vec::new();
    // Spans whose events' times are stored from their start, with their trace.
    let mut with_events = Vec::new();
    let mut trace = 0;
    for k in 0..spans {
        while first_span[trace + 1] <= k {
            trace += 1;
        }
        let op = w
            .ops
            .get(w.op[k] as usize)
            .ok_or("op reference out of range")?;
        page.resource.push(op.resource);
        page.scope.push(op.scope);
        page.name.push(op.name);
        page.kind.push(op.kind);
        let shape = w
            .shapes
            .get(op.shape as usize)
            .ok_or("shape reference out of range")?;
        event_times(&w.rest[k], &mut times)?;
        if w.event_times_from_start && !times.is_empty() {
            with_events.push((k, trace));
        }
        // Shared with the decompressed buffer, not copied (but for event times, below).
        page.rest.push(w.rest[k].clone());
        let predictor = if v4 { w.op[k] } else { op.name };
        let base = op_base[w.op[k] as usize];
        let slot_of = &shape_slots[op.shape as usize];
        for (pos, &n) in shape.streams.iter().enumerate() {
            let slot = v4.then(|| base + slot_of[pos]);
            let n = n as usize;
            let stream = w.streams.get(n).ok_or("stream reference out of range")?;
            let r = *stream
                .refs
                .get(used[n])
                .ok_or("stream has too few references")?;
            used[n] += 1;
            let key = (n / 2) as u32;
            if key >= w.keys.len() as u32 {
                return Err("key reference out of range".into());
            }
            let index = match r {
                0 => {
                    seen[n] += 1;
                    seen[n] - 1
                }
                1 => match slot {
                    Some(s) => Some(op_last[s]).filter(|&v| v != u64::MAX),
                    None => last.get(&(predictor, n)).copied(),
                }
                .ok_or("value reference to no earlier use")?,
                2 if v4 => recent[n].ok_or("value reference to no earlier use")?,
                r => seen[n]
                    .checked_sub(r - if v4 { 2 } else { 1 })
                    .ok_or("value reference out of range")?,
            };
            match slot {
                Some(s) => op_last[s] = index,
                None => {
                    last.insert((predictor, n), index);
                }
            }
            recent[n] = Some(index);
            if index >= stream.values.len() as u64 {
                return Err("value reference out of range".into());
            }
            if n % 2 == 1 {
                let value = value_base[n] + index as u32;
                page.ded_span.push(k as u32 - last_ded);
                last_ded = k as u32;
                page.ded_pos.push(pos as u32);
                page.ded_key.push(key_base + key);
                page.ded_value.push(value);
            } else {
                page.other_span.push(k as u32 - last_other);
                last_other = k as u32;
                page.other_pos.push(pos as u32);
                page.other_key.push(key_base + key);
                page.other_value.push(stream.values[index as usize].clone());
            }
        }
    }
    if w.streams.iter().zip(&used).any(|(s, &u)| s.refs.len() != u) {
        return Err("stream has unused references".into());
    }
    // Starts back to trace-relative, then ends, resolving parents before children.
    let relative = parent_relative(&w.parent, &first_span);
    let from_parent = |root: &dyn Fn(usize) -> i64, child: &dyn Fn(usize, i64) -> i64| {
        resolve_from_parent(&relative, &w.parent, &first_span, root, child)
    };
    let (out, end) = if v4 {
        if ends.is_empty() {
            return Err("a version 4 page without ends".into());
        }
        resolve_v4(&relative, &w.parent, &first_span, &start, &ends)?
    } else {
        let out = from_parent(&|k| start[k], &|k, p| p.wrapping_add(start[k]));
        let end = if ends.is_empty() {
            out.iter()
                .zip(&duration)
                .map(|(&s, &d)| s.wrapping_add(d as i64))
                .collect()
        } else {
            from_parent(&|k| out[k].wrapping_add(ends[k]), &|k, p| {
                p.wrapping_sub(ends[k])
            })
        };
        (out, end)
    };
    let duration: Vec<u64> = end
        .iter()
        .zip(&out)
        .map(|(&e, &s)| e.wrapping_sub(s) as u64)
        .collect();
    let out: Vec<u64> = out.into_iter().map(|s| s as u64).collect();
    for (k, t) in with_events {
        let mut rest = page.rest[k].to_vec();
        event_times(&rest, &mut times)?;
        let trace_start = *w.trace_start.get(t).ok_or("trace starts disagree")?;
        let start = w.base_ns.wrapping_add(trace_start).wrapping_add(out[k]);
        shift_event_times(&mut rest, &times, start);
        page.rest[k] = Bytes::from(rest);
    }
    page.trace_ids = if v4 {
        let high: Vec<u64> = decompress(&w.trace_ids_high, "trace id")?;
        if high.len() * 8 != w.trace_ids.len() || high.len() != w.trace_spans.len() {
            return Err("trace id halves disagree".into());
        }
        high.iter()
            .zip(w.trace_ids.chunks_exact(8))
            .flat_map(|(h, low)| h.to_be_bytes().into_iter().chain(low.iter().copied()))
            .collect()
    } else {
        w.trace_ids.to_vec()
    };
    page.trace_spans = w.trace_spans;
    page.trace_start = w.trace_start;
    page.base_ns = w.base_ns;
    page.resources = w.resources;
    page.scopes = w.scopes;
    page.span_ids = w.span_ids.to_vec();
    page.parent = w.parent;
    page.foreign_parents = w.foreign_parents;
    page.start = out;
    page.duration = duration;
    page.status = w.status;
    page.odd_span_at = w.odd_span_at;
    page.odd_span_ids = w.odd_span_ids;
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pco_i64(v: &[i64]) -> Bytes {
        Bytes::from(pco::standalone::simple_compress(v, &pco_config()).unwrap())
    }

    /// One trace of one span with one string attribute, as a version-4 page.
    fn page() -> PageWire {
        PageWire {
            trace_ids: Bytes::from_static(&[9; 8]),
            trace_ids_high: Bytes::from(
                pco::standalone::simple_compress(&[7u64], &pco_config()).unwrap(),
            ),
            trace_spans: vec![1],
            trace_start: vec![0],
            base_ns: 1_000,
            names: vec!["op".into()],
            ops: vec![OpWire::default()],
            op: vec![0],
            span_ids: Bytes::from_static(&[1; 8]),
            parent: vec![0],
            start: pco_i64(&[0]),
            ends: pco_i64(&[5]),
            status: vec![0],
            keys: vec!["client.address".into()],
            shapes: vec![ShapeWire { streams: vec![1] }],
            streams: vec![
                StreamWire::default(),
                StreamWire {
                    values: vec![Bytes::from_static(&[10, 0, 0, 1])],
                    refs: vec![0],
                    packing: PACKED_IPV4,
                },
            ],
            rest: vec![Bytes::new()],
            event_times_from_start: true,
            version: 4,
            ..Default::default()
        }
    }

    #[test]
    fn version_4_pages_read_back_and_bad_ones_are_refused() {
        let ok = decode(Bytes::from(page().encode_to_vec())).unwrap();
        assert!(
            ok.strings.iter().any(|s| s == "10.0.0.1"),
            "{:?}",
            ok.strings
        );
        let mut id = vec![0, 0, 0, 0, 0, 0, 0, 7];
        id.extend_from_slice(&[9; 8]);
        assert_eq!(ok.trace_ids, id);
        assert_eq!(ok.duration, vec![5]);

        type Mutation = fn(&mut PageWire);
        let bad: [(&str, Mutation); 7] = [
            ("newer", |p| p.version = 5),
            ("four bytes", |p| {
                p.streams[1].values[0] = Bytes::from_static(&[10, 0, 1])
            }),
            ("unknown value packing", |p| p.streams[1].packing = 9),
            ("non-string", |p| {
                p.streams[0] = p.streams[1].clone();
                p.streams[0].values.clear();
                p.streams[0].refs.clear();
            }),
            ("trace id halves", |p| {
                p.trace_ids = Bytes::from_static(&[9; 7])
            }),
            ("trace id halves", |p| {
                p.trace_ids_high = Bytes::from(
                    pco::standalone::simple_compress(&[7u64, 8], &pco_config()).unwrap(),
                );
            }),
            ("without ends", |p| {
                p.ends = Bytes::new();
                p.duration =
                    Bytes::from(pco::standalone::simple_compress(&[5u64], &pco_config()).unwrap());
            }),
        ];
        for (want, mutate) in bad {
            let mut p = page();
            mutate(&mut p);
            let err = decode(Bytes::from(p.encode_to_vec()))
                .err()
                .unwrap_or_default();
            assert!(err.contains(want), "{want}: {err:?}");
        }

        // Hex packing gives back the same lowercase text.
        let mut p = page();
        p.streams[1].packing = PACKED_HEX;
        p.streams[1].values[0] = Bytes::from_static(&[0x00, 0xab]);
        let ok = decode(Bytes::from(p.encode_to_vec())).unwrap();
        assert!(ok.strings.iter().any(|s| s == "00ab"), "{:?}", ok.strings);
    }

    #[test]
    fn packed_ipv4_values_read_back_as_their_text() {
        for part in 0..=255u8 {
            for at in 0..4 {
                let mut v = [1u8, 22, 203, 4];
                v[at] = part;
                let want = format!("{}.{}.{}.{}", v[0], v[1], v[2], v[3]);
                assert_eq!(unpack_value(PACKED_IPV4, &v).unwrap(), want);
                assert_eq!(ipv4(want.as_bytes()), Some(v));
            }
        }
    }

    #[test]
    fn ipv4_and_hex_packing_take_only_what_they_give_back() {
        for (v, want) in [
            ("10.0.0.1", Some([10, 0, 0, 1])),
            ("0.0.0.0", Some([0; 4])),
            ("255.255.255.255", Some([255; 4])),
            ("01.2.3.4", None),
            ("1.2.3.256", None),
            ("1.2.3", None),
            ("1.2.3.4.5", None),
            ("1..3.4", None),
            ("+1.2.3.4", None),
            ("1.2.3.4 ", None),
        ] {
            assert_eq!(ipv4(v.as_bytes()), want, "{v}");
        }
        for (v, want) in [
            ("00ff", true),
            ("", false),
            ("abc", false),
            ("ABCD", false),
            ("0g", false),
        ] {
            assert_eq!(is_lower_hex(v.as_bytes()), want, "{v}");
        }
    }
}
