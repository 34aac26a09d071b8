//! A zero-copy view of an OTLP `ExportTraceServiceRequest`: the fields the ingest path
//! reads of every span (ids, name, kind, times, status code), as slices of the received
//! bytes, with each span's, resource's and scope's own bytes beside them.
//!
//! [`TraceView::parse`] checks the whole message as `prost` decoding it would: every
//! tag, wire type and length, every string of every nested message is UTF-8, nesting at
//! most 100 deep. It accepts exactly what `ExportTraceServiceRequest::decode` accepts,
//! and the fields it gives are those `decode` would give (a scalar given twice keeps
//! the last; a message given twice merges). It allocates only its lists (resources,
//! scopes, spans, and the parts of each resource and scope), never a string or an id:
//! the first step of a write path that keeps the bytes it received.

use std::fmt;

/// Why bytes are not an `ExportTraceServiceRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewError(&'static str);

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid OTLP trace request: {}", self.0)
    }
}

impl std::error::Error for ViewError {}

impl ViewError {
    /// An error saying `what` is wrong with the request.
    pub fn new(what: &'static str) -> Self {
        ViewError(what)
    }
}

/// A resource of the request: `ResourceSpans.resource` and `schema_url`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceView<'a> {
    /// The encoded `Resource`, one part per time the field was given (merged in order).
    pub parts: Vec<&'a [u8]>,
    pub schema_url: &'a str,
}

/// A scope of the request: `ScopeSpans.scope` and `schema_url`, under `resource`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopeView<'a> {
    /// Index into [`TraceView::resources`].
    pub resource: usize,
    /// The encoded `InstrumentationScope`, one part per time the field was given.
    pub parts: Vec<&'a [u8]>,
    pub schema_url: &'a str,
}

/// A span of the request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanView<'a> {
    /// Index into [`TraceView::scopes`].
    pub scope: usize,
    /// The encoded `Span`.
    pub raw: &'a [u8],
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub name: &'a str,
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// `status.code`, 0 when unset.
    pub status_code: i32,
    pub flags: u32,
    /// Whether the span has links (so a reader that only checks links can skip the
    /// others).
    pub has_links: bool,
}

/// Every resource, scope and span of a request, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceView<'a> {
    pub resources: Vec<ResourceView<'a>>,
    pub scopes: Vec<ScopeView<'a>>,
    pub spans: Vec<SpanView<'a>>,
}

/// How deep messages may nest, as `prost` allows.
const RECURSION_LIMIT: u32 = 100;

/// The messages of the OTLP trace request.
#[derive(Clone, Copy, PartialEq)]
enum Msg {
    Request,
    ResourceSpans,
    Resource,
    EntityRef,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

/// What a known field must be.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Varint,
    Fixed64,
    Fixed32,
    Bytes,
    Str,
    Message(Msg),
}

/// The kind of field `n` of `m`, or `None` for a field `m` does not have: the schema of
/// an `ExportTraceServiceRequest`, in one place.
fn field(m: Msg, n: u32) -> Option<Kind> {
    use Kind::*;
    Some(match (m, n) {
        (Msg::Request, 1) => Message(Msg::ResourceSpans),
        (Msg::ResourceSpans, 1) => Message(Msg::Resource),
        (Msg::ResourceSpans, 2) => Message(Msg::ScopeSpans),
        (Msg::ScopeSpans, 1) => Message(Msg::Scope),
        (Msg::ScopeSpans, 2) => Message(Msg::Span),
        (Msg::ResourceSpans | Msg::ScopeSpans, 3) => Str,
        (Msg::Resource, 1) | (Msg::Scope, 3) | (Msg::Span, 9) => Message(Msg::KeyValue),
        (Msg::Event, 3) | (Msg::Link, 4) | (Msg::KeyValueList, 1) => Message(Msg::KeyValue),
        (Msg::Resource, 2) | (Msg::Scope, 4) | (Msg::Event, 4) | (Msg::Link, 5) => Varint,
        (Msg::Span, 6 | 10 | 12 | 14) | (Msg::Status, 3) => Varint,
        (Msg::Resource, 3) => Message(Msg::EntityRef),
        (Msg::EntityRef, 1..=4) => Str,
        (Msg::Scope, 1 | 2) | (Msg::Span, 3 | 5) | (Msg::Event, 2) | (Msg::Link, 3) => Str,
        (Msg::Status, 2) => Str,
        (Msg::Span, 1 | 2 | 4) | (Msg::Link, 1 | 2) => Bytes,
        (Msg::Span, 7 | 8) | (Msg::Event, 1) => Fixed64,
        (Msg::Span, 16) | (Msg::Link, 6) => Fixed32,
        (Msg::Span, 11) => Message(Msg::Event),
        (Msg::Span, 13) => Message(Msg::Link),
        (Msg::Span, 15) => Message(Msg::Status),
        (Msg::KeyValue, 1) => Str,
        (Msg::KeyValue, 2) | (Msg::ArrayValue, 1) => Message(Msg::AnyValue),
        (Msg::KeyValue, 3) => Varint,
        (Msg::AnyValue, 1) => Str,
        (Msg::AnyValue, 2 | 3 | 8) => Varint,
        (Msg::AnyValue, 4) => Fixed64,
        (Msg::AnyValue, 5) => Message(Msg::ArrayValue),
        (Msg::AnyValue, 6) => Message(Msg::KeyValueList),
        (Msg::AnyValue, 7) => Bytes,
        _ => return None,
    })
}

/// A field's value as read.
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'a [u8]),
    /// A group, skipped (only unknown fields may be groups).
    Group,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline]
    fn varint(&mut self) -> Result<u64, ViewError> {
        // Most keys and lengths take one byte.
        if let Some((&b, rest)) = self.buf.split_first()
            && b < 0x80
        {
            self.buf = rest;
            return Ok(u64::from(b));
        }
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or(ViewError("varint past the end"))?;
            self.buf = rest;
            if i == 9 && b > 1 {
                return Err(ViewError("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ViewError("varint longer than ten bytes"))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], ViewError> {
        if n > self.buf.len() {
            return Err(ViewError("field past the end"));
        }
        let (v, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(v)
    }

    /// Reads a field's key: its number and wire type.
    #[inline]
    fn key(&mut self) -> Result<(u32, u64), ViewError> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(ViewError("tag out of range"));
        }
        let n = (key >> 3) as u32;
        if n == 0 {
            return Err(ViewError("field number 0"));
        }
        Ok((n, key & 7))
    }

    /// Reads the value of field `n` of wire type `wire`; a group is skipped whole,
    /// `depth` deep at most.
    #[inline]
    fn value(&mut self, n: u32, wire: u64, depth: u32) -> Result<Value<'a>, ViewError> {
        Ok(match wire {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("eight bytes"),
            )),
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| ViewError("length out of range"))?;
                Value::Len(self.take(len)?)
            }
            3 => {
                self.skip_group(n, depth)?;
                Value::Group
            }
            4 => return Err(ViewError("end of a group that did not start")),
            5 => Value::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().expect("four bytes"),
            )),
            _ => return Err(ViewError("unknown wire type")),
        })
    }

    /// Reads the next field, or `None` at the end.
    #[inline]
    fn next(&mut self, depth: u32) -> Result<Option<(u32, Value<'a>)>, ViewError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let (n, wire) = self.key()?;
        Ok(Some((n, self.value(n, wire, depth)?)))
    }

    /// Skips the fields of group `n` up to its end.
    fn skip_group(&mut self, n: u32, depth: u32) -> Result<(), ViewError> {
        nested(depth)?;
        loop {
            if self.buf.is_empty() {
                return Err(ViewError("group without its end"));
            }
            let (inner, wire) = self.key()?;
            if wire == 4 {
                return if inner == n {
                    Ok(())
                } else {
                    Err(ViewError("end of a different group"))
                };
            }
            self.value(inner, wire, depth - 1)?;
        }
    }
}

/// Checks a field's value against the kind the schema gives it, recursing into messages.
fn check(kind: Kind, value: &Value<'_>, depth: u32) -> Result<(), ViewError> {
    match (kind, value) {
        (Kind::Varint, Value::Varint(_))
        | (Kind::Fixed64, Value::Fixed64(_))
        | (Kind::Fixed32, Value::Fixed32(_))
        | (Kind::Bytes, Value::Len(_)) => Ok(()),
        (Kind::Str, Value::Len(v)) => utf8(v).map(|_| ()),
        // A key-value and its value are two levels: deeper, the schema walk refuses it.
        (Kind::Message(Msg::KeyValue), Value::Len(v))
            if depth >= 2
                && let Some(ok) = plain_key_value(v) =>
        {
            ok
        }
        (Kind::Message(m), Value::Len(v)) => {
            nested(depth)?;
            check_message(v, m, depth - 1)
        }
        _ => Err(ViewError("wrong wire type for a known field")),
    }
}

/// Checks field `n` of message `m` where the view does not read it (nothing to check
/// for a field `m` does not have).
fn check_field(m: Msg, n: u32, value: &Value<'_>, depth: u32) -> Result<(), ViewError> {
    field(m, n).map_or(Ok(()), |kind| check(kind, value, depth))
}

fn nested(depth: u32) -> Result<(), ViewError> {
    if depth == 0 {
        Err(ViewError("nested too deep"))
    } else {
        Ok(())
    }
}

#[inline]
fn utf8(v: &[u8]) -> Result<&str, ViewError> {
    if v.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(v) });
    }
    std::str::from_utf8(v).map_err(|_| ViewError("a string is not UTF-8"))
}

/// A value of a [`plain`] `KeyValue`.
#[derive(Clone, Copy)]
enum Plain<'a> {
    None,
    Str(&'a [u8]),
    Bool(bool),
    Int(i64),
    Double(u64),
}

/// The key and value of the encoded `KeyValue` most attributes are, read without walking
/// it as a schema: a key, then a value holding one string, bool, int or double, each
/// field once with a one-byte length, nothing else. `None` for any other encoding (the
/// caller reads it field by field). Nothing is checked but the shape.
#[inline]
fn plain(v: &[u8]) -> Option<(&[u8], Plain<'_>)> {
    let [0x0a, key_len, rest @ ..] = v else {
        return None;
    };
    let key_len = usize::from(*key_len);
    if key_len >= 0x80 || rest.len() < key_len {
        return None;
    }
    let (key, rest) = rest.split_at(key_len);
    let value = match rest {
        [] => &[][..],
        [0x12, len, value @ ..] if usize::from(*len) == value.len() && *len < 0x80 => value,
        _ => return None,
    };
    let value = match value {
        [] => Plain::None,
        [0x0a, len, s @ ..] if usize::from(*len) == s.len() && *len < 0x80 => Plain::Str(s),
        // A bool or an int: a varint of at most nine bytes filling the value.
        [tag @ (0x10 | 0x18), varint @ ..]
            if (1..10).contains(&varint.len())
                && varint[..varint.len() - 1].iter().all(|b| b & 0x80 != 0)
                && varint[varint.len() - 1] & 0x80 == 0 =>
        {
            let x = varint
                .iter()
                .enumerate()
                .fold(0u64, |x, (i, b)| x | (u64::from(b & 0x7f) << (7 * i)));
            if *tag == 0x10 {
                Plain::Bool(x != 0)
            } else {
                Plain::Int(x as i64)
            }
        }
        [0x21, double @ ..] if double.len() == 8 => {
            Plain::Double(u64::from_le_bytes(double.try_into().expect("eight bytes")))
        }
        _ => return None,
    };
    Some((key, value))
}

/// Checks a [`plain`] `KeyValue`; `None` for any other.
#[inline]
fn plain_key_value(v: &[u8]) -> Option<Result<(), ViewError>> {
    let (key, value) = plain(v)?;
    let string = match value {
        Plain::Str(s) => s,
        _ => &[],
    };
    Some(utf8(key).and_then(|_| utf8(string)).map(|_| ()))
}

/// Checks every field of a message.
fn check_message(buf: &[u8], m: Msg, depth: u32) -> Result<(), ViewError> {
    let mut r = Reader { buf };
    while let Some((n, v)) = r.next(depth)? {
        check_field(m, n, &v, depth)?;
    }
    Ok(())
}

/// Checks a whole request as prost decoding it would, keeping nothing and allocating
/// nothing: the least any OTLP decoder must do with the bytes.
///
/// # Errors
///
/// Where `prost` would refuse the bytes as an `ExportTraceServiceRequest`.
pub fn validate(buf: &[u8]) -> Result<(), ViewError> {
    check_message(buf, Msg::Request, RECURSION_LIMIT)
}

impl<'a> TraceView<'a> {
    /// Parses and checks a whole request.
    ///
    /// # Errors
    ///
    /// Where `prost` would refuse the bytes as an `ExportTraceServiceRequest`.
    pub fn parse(buf: &'a [u8]) -> Result<TraceView<'a>, ViewError> {
        let mut view = TraceView::default();
        let depth = RECURSION_LIMIT;
        let mut r = Reader { buf };
        while let Some((n, v)) = r.next(depth)? {
            match (n, &v) {
                (1, Value::Len(b)) => {
                    nested(depth)?;
                    view.resource_spans(b, depth - 1)?;
                }
                _ => check_field(Msg::Request, n, &v, depth)?,
            }
        }
        Ok(view)
    }

    fn resource_spans(&mut self, buf: &'a [u8], depth: u32) -> Result<(), ViewError> {
        let resource = self.resources.len();
        self.resources.push(ResourceView::default());
        let mut r = Reader { buf };
        while let Some((n, v)) = r.next(depth)? {
            match (n, &v) {
                (1, Value::Len(b)) => {
                    check_field(Msg::ResourceSpans, n, &v, depth)?;
                    self.resources[resource].parts.push(b);
                }
                (2, Value::Len(b)) => {
                    nested(depth)?;
                    self.scope_spans(b, resource, depth - 1)?;
                }
                (3, Value::Len(b)) => self.resources[resource].schema_url = utf8(b)?,
                _ => check_field(Msg::ResourceSpans, n, &v, depth)?,
            }
        }
        Ok(())
    }

    fn scope_spans(&mut self, buf: &'a [u8], resource: usize, depth: u32) -> Result<(), ViewError> {
        let scope = self.scopes.len();
        self.scopes.push(ScopeView {
            resource,
            ..ScopeView::default()
        });
        let mut r = Reader { buf };
        while let Some((n, v)) = r.next(depth)? {
            match (n, &v) {
                (1, Value::Len(b)) => {
                    check_field(Msg::ScopeSpans, n, &v, depth)?;
                    self.scopes[scope].parts.push(b);
                }
                (2, Value::Len(b)) => {
                    nested(depth)?;
                    let span = span(b, scope, depth - 1)?;
                    self.spans.push(span);
                }
                (3, Value::Len(b)) => self.scopes[scope].schema_url = utf8(b)?,
                _ => check_field(Msg::ScopeSpans, n, &v, depth)?,
            }
        }
        Ok(())
    }
}

fn span(buf: &[u8], scope: usize, depth: u32) -> Result<SpanView<'_>, ViewError> {
    let mut s = SpanView {
        scope,
        raw: buf,
        ..SpanView::default()
    };
    let mut r = Reader { buf };
    while let Some((n, v)) = r.next(depth)? {
        match (n, &v) {
            (1, Value::Len(b)) => s.trace_id = b,
            (2, Value::Len(b)) => s.span_id = b,
            (4, Value::Len(b)) => s.parent_span_id = b,
            (5, Value::Len(b)) => s.name = utf8(b)?,
            // prost reads an int32 as the low 32 bits of the varint.
            (6, Value::Varint(k)) => s.kind = *k as i32,
            (7, Value::Fixed64(t)) => s.start_time_unix_nano = *t,
            (8, Value::Fixed64(t)) => s.end_time_unix_nano = *t,
            (16, Value::Fixed32(f)) => s.flags = *f,
            (13, _) => {
                s.has_links = true;
                check_field(Msg::Span, n, &v, depth)?;
            }
            (15, Value::Len(b)) => {
                nested(depth)?;
                // Status parts merge: a later code replaces an earlier one.
                let mut st = Reader { buf: b };
                while let Some((n, v)) = st.next(depth - 1)? {
                    match (n, &v) {
                        (3, Value::Varint(c)) => s.status_code = *c as i32,
                        _ => check_field(Msg::Status, n, &v, depth - 1)?,
                    }
                }
            }
            _ => check_field(Msg::Span, n, &v, depth)?,
        }
    }
    Ok(s)
}

/// A field of an encoded message, as [`fields`] gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldView<'a> {
    pub number: u32,
    /// The whole field: key and value, as it came.
    pub raw: &'a [u8],
    /// The value of a length-delimited field; empty for the other wire types.
    pub payload: &'a [u8],
    /// The value of a varint, fixed64 or fixed32 field; 0 for the others.
    pub scalar: u64,
}

/// Iterates over the fields of an encoded message, in order. Meant for bytes
/// [`TraceView::parse`] accepted: it stops at the first malformed field.
#[inline]
pub fn fields(buf: &[u8]) -> impl Iterator<Item = FieldView<'_>> {
    let mut r = Reader { buf };
    std::iter::from_fn(move || {
        let before = r.buf;
        let (number, v) = r.next(RECURSION_LIMIT).ok()??;
        let raw = &before[..before.len() - r.buf.len()];
        let (payload, scalar) = match v {
            Value::Varint(x) | Value::Fixed64(x) => (&[][..], x),
            Value::Fixed32(x) => (&[][..], u64::from(x)),
            Value::Len(b) => (b, 0),
            Value::Group => (&[][..], 0),
        };
        Some(FieldView {
            number,
            raw,
            payload,
            scalar,
        })
    })
}

/// An attribute's value as `prost` decodes it: the variant of its `oneof` given last.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueView<'a> {
    /// No value, or a value with no variant set.
    None,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    /// Bytes, an array, a key-value list, or a string by reference (not read further).
    Other,
}

/// An attribute (`KeyValue`) of a message [`TraceView::parse`] accepted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyValueView<'a> {
    /// The encoded `KeyValue`.
    pub raw: &'a [u8],
    pub key: &'a str,
    pub key_strindex: i32,
    pub value: ValueView<'a>,
}

/// Reads an encoded `KeyValue` as prost would (the last key, the value's parts merged),
/// without checking UTF-8 again: what [`crate::trace_batch::TraceBatch`]'s attribute
/// readers give.
///
/// # Safety
///
/// Every string in `raw` is UTF-8: `raw` is part of a request [`TraceView::parse`]
/// accepted (it checks every string of every message).
#[inline]
pub(crate) unsafe fn key_value_unchecked(raw: &[u8]) -> KeyValueView<'_> {
    // SAFETY: the caller vouches that every string field of `raw` is UTF-8.
    let text = |b| unsafe { std::str::from_utf8_unchecked(b) };
    if let Some((key, value)) = plain(raw) {
        return KeyValueView {
            raw,
            key: text(key),
            key_strindex: 0,
            value: match value {
                Plain::None => ValueView::None,
                Plain::Str(v) => ValueView::Str(text(v)),
                Plain::Bool(b) => ValueView::Bool(b),
                Plain::Int(i) => ValueView::Int(i),
                Plain::Double(d) => ValueView::Double(f64::from_bits(d)),
            },
        };
    }
    let mut kv = KeyValueView {
        raw,
        key: "",
        key_strindex: 0,
        value: ValueView::None,
    };
    for f in fields(raw) {
        match f.number {
            1 => kv.key = text(f.payload),
            3 => kv.key_strindex = f.scalar as i32,
            2 => {
                for v in fields(f.payload) {
                    kv.value = match v.number {
                        1 => ValueView::Str(text(v.payload)),
                        2 => ValueView::Bool(v.scalar != 0),
                        3 => ValueView::Int(v.scalar as i64),
                        4 => ValueView::Double(f64::from_bits(v.scalar)),
                        5..=8 => ValueView::Other,
                        _ => continue,
                    };
                }
            }
            _ => {}
        }
    }
    kv
}

/// The key of an encoded `KeyValue` (the last given, as prost reads it), its value not
/// read, without checking UTF-8 again.
///
/// # Safety
///
/// As [`key_value_unchecked`].
#[inline]
pub(crate) unsafe fn key_unchecked(raw: &[u8]) -> &str {
    let mut key: &[u8] = &[];
    for f in fields(raw) {
        if f.number == 1 {
            key = f.payload;
        }
    }
    // SAFETY: the caller vouches that every string field of `raw` is UTF-8.
    unsafe { std::str::from_utf8_unchecked(key) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace_batch::TraceBatch;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
        fn text(&mut self) -> String {
            ["", "a", "checkout", "GET /api/{id}", "é✓", "10.0.0.1"][self.below(6) as usize]
                .to_string()
        }
    }

    fn value(g: &mut Rng, depth: u32) -> AnyValue {
        use any_value::Value as V;
        let v = match g.below(if depth == 0 { 5 } else { 7 }) {
            0 => V::StringValue(g.text()),
            1 => V::BoolValue(g.below(2) == 0),
            2 => V::IntValue(g.next() as i64),
            3 => V::DoubleValue(g.next() as f64 / 3.0),
            4 => V::BytesValue(g.bytes(3)),
            5 => V::ArrayValue(ArrayValue {
                values: (0..g.below(3)).map(|_| value(g, depth - 1)).collect(),
            }),
            _ => V::KvlistValue(KeyValueList {
                values: attrs(g, depth - 1),
            }),
        };
        AnyValue { value: Some(v) }
    }

    fn attrs(g: &mut Rng, depth: u32) -> Vec<KeyValue> {
        (0..g.below(4))
            .map(|_| KeyValue {
                key: g.text(),
                value: (g.below(5) != 0).then(|| value(g, depth)),
                key_strindex: if g.below(9) == 0 { 3 } else { 0 },
            })
            .collect()
    }

    fn request(g: &mut Rng) -> ExportTraceServiceRequest {
        let resource_spans = (0..1 + g.below(3))
            .map(|_| ResourceSpans {
                resource: (g.below(4) != 0).then(|| Resource {
                    attributes: attrs(g, 2),
                    dropped_attributes_count: g.below(2) as u32,
                    ..Default::default()
                }),
                scope_spans: (0..g.below(3))
                    .map(|_| ScopeSpans {
                        scope: (g.below(3) != 0).then(|| InstrumentationScope {
                            name: g.text(),
                            version: g.text(),
                            attributes: attrs(g, 1),
                            dropped_attributes_count: 0,
                        }),
                        spans: (0..g.below(5)).map(|_| span(g)).collect(),
                        schema_url: g.text(),
                    })
                    .collect(),
                schema_url: g.text(),
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }

    fn span(g: &mut Rng) -> Span {
        let parent_len = if g.below(2) == 0 { 0 } else { 8 };
        Span {
            trace_id: g.bytes(16),
            span_id: g.bytes(8),
            trace_state: g.text(),
            parent_span_id: g.bytes(parent_len),
            flags: g.next() as u32,
            name: g.text(),
            kind: g.below(7) as i32 - 1,
            start_time_unix_nano: g.next(),
            end_time_unix_nano: g.next(),
            attributes: attrs(g, 3),
            dropped_attributes_count: g.below(2) as u32,
            events: (0..g.below(3))
                .map(|_| Event {
                    time_unix_nano: g.next(),
                    name: g.text(),
                    attributes: attrs(g, 1),
                    dropped_attributes_count: 0,
                })
                .collect(),
            dropped_events_count: 0,
            links: (0..g.below(2))
                .map(|_| Link {
                    trace_id: g.bytes(16),
                    span_id: g.bytes(8),
                    trace_state: g.text(),
                    attributes: attrs(g, 1),
                    dropped_attributes_count: 0,
                    flags: g.next() as u32,
                })
                .collect(),
            dropped_links_count: 0,
            status: (g.below(2) == 0).then(|| Status {
                message: g.text(),
                code: g.below(3) as i32,
            }),
        }
    }

    /// The view of `bytes`, and `validate`, say what prost's decode of them says.
    fn agrees(bytes: &[u8]) -> bool {
        let want = ExportTraceServiceRequest::decode(bytes);
        assert_eq!(validate(bytes).is_ok(), want.is_ok(), "validate: {want:?}");
        let got = TraceView::parse(bytes);
        let (Ok(want), Ok(got)) = (&want, &got) else {
            assert_eq!(got.is_ok(), want.is_ok(), "{got:?} / {want:?}");
            return false;
        };
        let mut resources = Vec::new();
        let mut spans = Vec::new();
        for rs in &want.resource_spans {
            resources.push((rs.resource.clone(), rs.schema_url.clone()));
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    spans.push(s.clone());
                }
            }
        }
        assert_eq!(got.resources.len(), resources.len());
        for (r, (want, url)) in got.resources.iter().zip(&resources) {
            assert_eq!(r.schema_url, url);
            let merged = (!r.parts.is_empty()).then(|| {
                let mut m = Resource::default();
                for p in &r.parts {
                    m.merge(*p).unwrap();
                }
                m
            });
            assert_eq!(&merged, want);
        }
        // Attributes are read from a batch of the same bytes, as the write path reads
        // them.
        let batch = TraceBatch::parse(bytes::Bytes::copy_from_slice(bytes)).unwrap();
        for (i, (want, _)) in resources.iter().enumerate() {
            let attrs: Vec<KeyValueView<'_>> = batch.resource_attributes(i).collect();
            same_attributes(&attrs, want.as_ref().map_or(&[][..], |r| &r.attributes));
        }
        assert_eq!(got.spans.len(), spans.len());
        for (i, (s, want)) in got.spans.iter().zip(&spans).enumerate() {
            assert_eq!(&Span::decode(s.raw).unwrap(), want);
            assert_eq!(s.trace_id, want.trace_id);
            assert_eq!(s.span_id, want.span_id);
            assert_eq!(s.parent_span_id, want.parent_span_id);
            assert_eq!(s.name, want.name);
            assert_eq!(s.kind, want.kind);
            assert_eq!(s.start_time_unix_nano, want.start_time_unix_nano);
            assert_eq!(s.end_time_unix_nano, want.end_time_unix_nano);
            assert_eq!(s.flags, want.flags);
            assert_eq!(s.has_links, !want.links.is_empty());
            assert_eq!(s.status_code, want.status.as_ref().map_or(0, |st| st.code));
            let attrs: Vec<KeyValueView<'_>> = batch.span_attributes(i).collect();
            same_attributes(&attrs, &want.attributes);
            // Filtered by key, reading keys alone first.
            let named: Vec<KeyValueView<'_>> = batch
                .span_attributes_where(i, |k| k.len() % 2 == 0)
                .collect();
            let want_named: Vec<KeyValue> = want
                .attributes
                .iter()
                .filter(|kv| kv.key.len() % 2 == 0)
                .cloned()
                .collect();
            same_attributes(&named, &want_named);
        }
        true
    }

    /// The views read the attributes prost decodes, each from its own bytes.
    fn same_attributes(got: &[KeyValueView<'_>], want: &[KeyValue]) {
        use any_value::Value as V;
        assert_eq!(got.len(), want.len());
        for (a, w) in got.iter().zip(want) {
            assert_eq!(&KeyValue::decode(a.raw).unwrap(), w);
            assert_eq!(a.key, w.key);
            assert_eq!(a.key_strindex, w.key_strindex);
            let value = match w.value.as_ref().and_then(|v| v.value.as_ref()) {
                None => ValueView::None,
                Some(V::StringValue(s)) => ValueView::Str(s),
                Some(V::BoolValue(b)) => ValueView::Bool(*b),
                Some(V::IntValue(i)) => ValueView::Int(*i),
                // Compared by bits: a mutated double may be a NaN.
                Some(V::DoubleValue(d)) => {
                    assert!(matches!(a.value, ValueView::Double(x) if x.to_bits() == d.to_bits()));
                    continue;
                }
                Some(_) => ValueView::Other,
            };
            assert_eq!(a.value, value);
        }
    }

    #[test]
    fn the_view_reads_what_prost_decodes() {
        let mut g = Rng(0x9e37_79b9_7f4a_7c15);
        let mut spans = 0;
        for _ in 0..300 {
            let req = request(&mut g);
            let bytes = req.encode_to_vec();
            assert!(agrees(&bytes));
            spans += TraceView::parse(&bytes).unwrap().spans.len();
        }
        assert!(spans > 500, "{spans}");
    }

    #[test]
    fn the_view_refuses_what_prost_refuses() {
        let mut g = Rng(77);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let mut bytes = request(&mut g).encode_to_vec();
            if bytes.is_empty() {
                continue;
            }
            // Flip, cut, insert or repeat bytes.
            for _ in 0..1 + g.below(3) {
                let at = g.below(bytes.len() as u64 + 1) as usize;
                match g.below(4) {
                    0 if at < bytes.len() => bytes[at] ^= 1 << g.below(8),
                    1 => bytes.truncate(at),
                    2 => bytes.insert(at, g.next() as u8),
                    _ => {
                        let end = (at + 1 + g.below(12) as usize).min(bytes.len());
                        let piece = bytes[at.min(end)..end].to_vec();
                        bytes.splice(at..at, piece);
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            if agrees(&bytes) {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            accepted > 1_000 && refused > 1_000,
            "{accepted} / {refused}"
        );
    }

    #[test]
    fn unknown_groups_are_skipped_as_prost_skips_them() {
        let mut g = Rng(11);
        let req = request(&mut g).encode_to_vec();
        // Field 9 as a group holding a varint and a nested group; then stray ends.
        let group = [9 << 3 | 3, 1 << 3, 5, 2 << 3 | 3, 2 << 3 | 4, 9 << 3 | 4];
        let mut outcomes = Vec::new();
        for tail in [
            &group[..],
            &[9 << 3 | 4][..],
            &[9 << 3 | 3, 8 << 3 | 4][..],
            &[9 << 3 | 3, 1 << 3, 5][..],
        ] {
            let mut bytes = req.clone();
            bytes.extend_from_slice(tail);
            outcomes.push(agrees(&bytes));
        }
        assert_eq!(outcomes, [true, false, false, false]);
    }

    /// A request of one span, encoded.
    fn one_span(s: Span) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![s],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn nesting_is_bounded_as_prost_bounds_it() {
        let mut outcomes = Vec::new();
        for depth in [10, 40, 44, 45, 46, 47, 48, 50, 60] {
            let mut v = AnyValue {
                value: Some(any_value::Value::IntValue(1)),
            };
            for _ in 0..depth {
                v = AnyValue {
                    value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![v] })),
                };
            }
            let mut s = span(&mut Rng(3));
            s.attributes = vec![KeyValue {
                key: "deep".into(),
                value: Some(v),
                key_strindex: 0,
            }];
            outcomes.push(agrees(&one_span(s)));
        }
        assert!(
            outcomes.contains(&true) && outcomes.contains(&false),
            "both sides of the limit: {outcomes:?}"
        );
    }

    #[test]
    fn a_plain_key_value_at_the_nesting_limit_is_judged_as_prost_judges_it() {
        // Key-value lists nested in attribute values, a plain string attribute (the
        // shape checked without the schema walk) innermost: every depth around the
        // limit, so the innermost pair falls on each side of it.
        let mut outcomes = Vec::new();
        for depth in 26..38 {
            let mut kv = KeyValue {
                key: "k".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("v".into())),
                }),
                key_strindex: 0,
            };
            for _ in 0..depth {
                kv = KeyValue {
                    key: "list".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::KvlistValue(KeyValueList {
                            values: vec![kv],
                        })),
                    }),
                    key_strindex: 0,
                };
            }
            let mut s = span(&mut Rng(4));
            s.attributes = vec![kv];
            outcomes.push(agrees(&one_span(s)));
        }
        assert!(
            outcomes.contains(&true) && outcomes.contains(&false),
            "both sides of the limit: {outcomes:?}"
        );
    }
}
