//! A trace request kept as the bytes it arrived as, beside the index
//! [`TraceView::parse`] built of them: what the traces write path hands around in place
//! of a decoded `ExportTraceServiceRequest`. It owns its bytes (a shared [`Bytes`]), so
//! it can be logged, kept in the head and read again without a copy or a decode.

use bytes::Bytes;
use prost::Message;

use crate::view::{
    self, FieldView, KeyValueView, ResourceView, ScopeView, SpanView, TraceView, ViewError,
};
use crate::{ExportTraceServiceRequest, ItemCount};

/// Where a slice of the batch's bytes is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Range32 {
    off: u32,
    len: u32,
}

#[derive(Debug, Clone, Default)]
struct ResourceAt {
    parts: Vec<Range32>,
    schema_url: Range32,
}

#[derive(Debug, Clone, Default)]
struct ScopeAt {
    resource: u32,
    parts: Vec<Range32>,
    schema_url: Range32,
}

#[derive(Debug, Clone, Copy, Default)]
struct SpanAt {
    scope: u32,
    raw: Range32,
    trace_id: Range32,
    span_id: Range32,
    parent_span_id: Range32,
    name: Range32,
    kind: i32,
    status_code: i32,
    flags: u32,
    has_links: bool,
    start_time_unix_nano: u64,
    end_time_unix_nano: u64,
}

/// A checked OTLP trace request: its bytes and where each resource, scope and span is.
#[derive(Debug, Clone, Default)]
pub struct TraceBatch {
    bytes: Bytes,
    resources: Vec<ResourceAt>,
    scopes: Vec<ScopeAt>,
    spans: Vec<SpanAt>,
}

impl TraceBatch {
    /// Checks `bytes` as an `ExportTraceServiceRequest` (exactly as prost decoding it
    /// would) and indexes them.
    ///
    /// # Errors
    ///
    /// Where prost would refuse the bytes, or when they are 4 GiB or more.
    pub fn parse(bytes: Bytes) -> Result<TraceBatch, ViewError> {
        if u32::try_from(bytes.len()).is_err() {
            return Err(ViewError::new("request of 4 GiB or more"));
        }
        let view = TraceView::parse(&bytes)?;
        let base = bytes.as_ptr() as usize;
        let at = |s: &[u8]| {
            if s.is_empty() {
                return Range32::default();
            }
            Range32 {
                off: (s.as_ptr() as usize - base) as u32,
                len: s.len() as u32,
            }
        };
        let resources = view
            .resources
            .iter()
            .map(|r| ResourceAt {
                parts: r.parts.iter().map(|p| at(p)).collect(),
                schema_url: at(r.schema_url.as_bytes()),
            })
            .collect();
        let scopes = view
            .scopes
            .iter()
            .map(|s| ScopeAt {
                resource: s.resource as u32,
                parts: s.parts.iter().map(|p| at(p)).collect(),
                schema_url: at(s.schema_url.as_bytes()),
            })
            .collect();
        let spans = view
            .spans
            .iter()
            .map(|s| SpanAt {
                scope: s.scope as u32,
                raw: at(s.raw),
                trace_id: at(s.trace_id),
                span_id: at(s.span_id),
                parent_span_id: at(s.parent_span_id),
                name: at(s.name.as_bytes()),
                kind: s.kind,
                status_code: s.status_code,
                flags: s.flags,
                has_links: s.has_links,
                start_time_unix_nano: s.start_time_unix_nano,
                end_time_unix_nano: s.end_time_unix_nano,
            })
            .collect();
        drop(view);
        Ok(TraceBatch {
            bytes,
            resources,
            scopes,
            spans,
        })
    }

    /// Encodes a decoded request and indexes it.
    pub fn from_request(req: &ExportTraceServiceRequest) -> TraceBatch {
        TraceBatch::parse(Bytes::from(req.encode_to_vec()))
            .expect("prost's own encoding of a request parses")
    }

    /// Keeps the spans whose entry of `keep` (in request order) is true: the request is
    /// decoded, trimmed and encoded again, so this is for the rare request that loses spans.
    pub fn retain(&mut self, keep: &[bool]) {
        let mut req = self.decode();
        let mut keep = keep.iter();
        for rs in &mut req.resource_spans {
            for ss in &mut rs.scope_spans {
                ss.spans.retain(|_| keep.next().copied().unwrap_or(false));
            }
        }
        *self = TraceBatch::from_request(&req);
    }

    /// Returns the request as prost decodes it.
    pub fn decode(&self) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(self.bytes.clone()).expect("checked bytes decode")
    }

    /// Returns the request's bytes, as received.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    #[inline]
    fn slice(&self, r: Range32) -> &[u8] {
        &self.bytes[r.off as usize..(r.off + r.len) as usize]
    }

    #[inline]
    fn str(&self, r: Range32) -> &str {
        // SAFETY: every range that `str` is given is a string field the parse checked
        // as UTF-8, and the bytes are immutable.
        unsafe { std::str::from_utf8_unchecked(self.slice(r)) }
    }

    /// Returns the attributes of span `i`, in order, as prost reads them, without
    /// checking their strings again.
    ///
    /// # Panics
    ///
    /// When `i` is not below [`TraceBatch::span_count`].
    pub fn span_attributes(&self, i: usize) -> impl Iterator<Item = KeyValueView<'_>> {
        Self::attributes_in(self.slice(self.spans[i].raw), 9)
    }

    /// Returns the attributes of span `i` whose key `wanted` takes, in order: the others'
    /// values are not read.
    ///
    /// # Panics
    ///
    /// When `i` is not below [`TraceBatch::span_count`].
    pub fn span_attributes_where<'a: 'f, 'f>(
        &'a self,
        i: usize,
        wanted: impl Fn(&str) -> bool + 'f,
    ) -> impl Iterator<Item = KeyValueView<'a>> + 'f {
        view::fields(self.slice(self.spans[i].raw))
            .filter(|f| f.number == 9)
            // SAFETY (both): fields of a span of the batch's bytes, all of whose strings
            // the parse checked as UTF-8.
            .filter(move |f| wanted(unsafe { view::key_unchecked(f.payload) }))
            .map(|f| unsafe { view::key_value_unchecked(f.payload) })
    }

    /// Returns the attributes of resource `i`, in order, over all its parts.
    ///
    /// # Panics
    ///
    /// When `i` is not below [`TraceBatch::resource_count`].
    pub fn resource_attributes(&self, i: usize) -> impl Iterator<Item = KeyValueView<'_>> {
        self.resources[i]
            .parts
            .iter()
            .flat_map(move |p| Self::attributes_in(self.slice(*p), 1))
    }

    /// The attributes in field `number` of a message of this batch (1 for a `Resource`,
    /// 9 for a `Span`).
    fn attributes_in(message: &[u8], number: u32) -> impl Iterator<Item = KeyValueView<'_>> {
        view::fields(message)
            .filter(move |f| f.number == number)
            // SAFETY: `message` is a message of the batch's bytes, which the parse checked
            // whole: every string in it is UTF-8.
            .map(|f| unsafe { view::key_value_unchecked(f.payload) })
    }

    /// Returns the fields of span `i` in order (as [`view::fields`] gives them), each
    /// attribute (field 9) also read as a [`KeyValueView`], without checking its strings
    /// again.
    ///
    /// # Panics
    ///
    /// When `i` is not below [`TraceBatch::span_count`].
    #[inline]
    pub fn span_fields(
        &self,
        i: usize,
    ) -> impl Iterator<Item = (FieldView<'_>, Option<KeyValueView<'_>>)> {
        view::fields(self.slice(self.spans[i].raw)).map(|f| {
            // SAFETY: a field of a span of the batch's bytes, all of whose strings the
            // parse checked as UTF-8.
            let kv = (f.number == 9).then(|| unsafe { view::key_value_unchecked(f.payload) });
            (f, kv)
        })
    }

    /// Returns how many spans the request holds.
    #[inline]
    pub fn span_count(&self) -> usize {
        self.spans.len()
    }

    /// Returns how many `ResourceSpans` the request holds.
    pub fn resource_count(&self) -> usize {
        self.resources.len()
    }

    /// Returns how many `ScopeSpans` the request holds.
    pub fn scope_count(&self) -> usize {
        self.scopes.len()
    }

    /// Asks the processor to fetch span `i`'s entry of the index, to be read soon: a
    /// writer walking spans of many requests in trace order (a hint; nothing is read).
    #[inline]
    pub fn prefetch_index(&self, i: usize) {
        if let Some(s) = self.spans.get(i) {
            let at = std::ptr::from_ref(s).cast::<u8>();
            prefetch(at);
            prefetch(at.wrapping_add(64));
        }
    }

    /// Asks the processor to fetch span `i`'s first bytes, to be read soon (reads its
    /// entry of the index, which [`TraceBatch::prefetch_index`] fetches).
    #[inline]
    pub fn prefetch_span(&self, i: usize) {
        if let Some(s) = self.spans.get(i) {
            let at = self.bytes.as_ptr().wrapping_add(s.raw.off as usize);
            for line in (0..s.raw.len as usize).step_by(64).take(6) {
                prefetch(at.wrapping_add(line));
            }
        }
    }

    /// Returns span `i` (in request order).
    ///
    /// # Panics
    ///
    /// When `i` is not below [`TraceBatch::span_count`].
    #[inline]
    pub fn span(&self, i: usize) -> SpanView<'_> {
        let s = &self.spans[i];
        SpanView {
            scope: s.scope as usize,
            raw: self.slice(s.raw),
            trace_id: self.slice(s.trace_id),
            span_id: self.slice(s.span_id),
            parent_span_id: self.slice(s.parent_span_id),
            name: self.str(s.name),
            kind: s.kind,
            start_time_unix_nano: s.start_time_unix_nano,
            end_time_unix_nano: s.end_time_unix_nano,
            status_code: s.status_code,
            flags: s.flags,
            has_links: s.has_links,
        }
    }

    /// Returns scope `i`.
    ///
    /// # Panics
    ///
    /// When `i` is not below [`TraceBatch::scope_count`].
    pub fn scope(&self, i: usize) -> ScopeView<'_> {
        let s = &self.scopes[i];
        ScopeView {
            resource: s.resource as usize,
            parts: s.parts.iter().map(|p| self.slice(*p)).collect(),
            schema_url: self.str(s.schema_url),
        }
    }

    /// Returns the index of the resource scope `i` is under.
    ///
    /// # Panics
    ///
    /// When `i` is not below [`TraceBatch::scope_count`].
    #[inline]
    pub fn scope_resource(&self, i: usize) -> usize {
        self.scopes[i].resource as usize
    }

    /// Returns resource `i`.
    ///
    /// # Panics
    ///
    /// When `i` is not below [`TraceBatch::resource_count`].
    pub fn resource(&self, i: usize) -> ResourceView<'_> {
        let r = &self.resources[i];
        ResourceView {
            parts: r.parts.iter().map(|p| self.slice(*p)).collect(),
            schema_url: self.str(r.schema_url),
        }
    }

    /// Returns the whole view.
    pub fn view(&self) -> TraceView<'_> {
        TraceView {
            resources: (0..self.resource_count())
                .map(|i| self.resource(i))
                .collect(),
            scopes: (0..self.scope_count()).map(|i| self.scope(i)).collect(),
            spans: (0..self.span_count()).map(|i| self.span(i)).collect(),
        }
    }
}

impl ItemCount for TraceBatch {
    fn item_count(&self) -> u64 {
        self.spans.len() as u64
    }
}

/// A hint to fetch the cache line at `at`.
#[inline]
fn prefetch(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and does not fault, whatever the
    // address; SSE, which it needs, is part of every x86-64 processor.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn request() -> ExportTraceServiceRequest {
        let kv = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(v.into()),
                ),
            }),
            key_strindex: 0,
        };
        let span = |n: u8, name: &str| Span {
            trace_id: vec![n; 16],
            span_id: vec![n; 8],
            parent_span_id: if n.is_multiple_of(2) {
                vec![]
            } else {
                vec![n - 1; 8]
            },
            name: name.into(),
            kind: i32::from(n % 6),
            start_time_unix_nano: 1000 * u64::from(n),
            end_time_unix_nano: 2000 * u64::from(n),
            attributes: vec![kv("http.route", "/a"), kv("n", name)],
            flags: u32::from(n),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", "cart")],
                        ..Default::default()
                    }),
                    scope_spans: vec![
                        ScopeSpans {
                            scope: Some(InstrumentationScope {
                                name: "lib".into(),
                                ..Default::default()
                            }),
                            spans: vec![span(1, "a"), span(2, "bé")],
                            schema_url: "s1".into(),
                        },
                        ScopeSpans {
                            scope: None,
                            spans: vec![span(3, "c")],
                            schema_url: String::new(),
                        },
                    ],
                    schema_url: "r1".into(),
                },
                ResourceSpans {
                    resource: None,
                    scope_spans: vec![ScopeSpans {
                        scope: None,
                        spans: vec![span(4, "")],
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                },
            ],
        }
    }

    #[test]
    fn a_batch_gives_back_what_its_view_gives() {
        let req = request();
        let bytes = req.encode_to_vec();
        let batch = TraceBatch::parse(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(batch.view(), TraceView::parse(&bytes).unwrap());
        assert_eq!(batch.decode(), req);
        assert_eq!(batch.item_count(), 4);
        assert_eq!(batch.span(1).name, "bé");
        assert_eq!(batch.span(3).scope, 2);
        assert_eq!(batch.scope(2).resource, 1);
        assert_eq!(batch.resource(0).schema_url, "r1");
        assert_eq!(TraceBatch::from_request(&req).bytes()[..], bytes[..]);
        // Attributes read in place, all or by key.
        let all: Vec<KeyValueView<'_>> = batch.span_attributes(1).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].value, crate::view::ValueView::Str("bé"));
        let named: Vec<KeyValueView<'_>> = batch.span_attributes_where(1, |k| k == "n").collect();
        assert_eq!(named, all[1..]);
        let service: Vec<KeyValueView<'_>> = batch.resource_attributes(0).collect();
        assert_eq!(service[0].key, "service.name");
        assert_eq!(batch.resource_attributes(1).count(), 0);
    }

    #[test]
    fn an_attribute_given_its_key_twice_is_found_by_the_last() {
        let field = |n: u32, body: &[u8]| {
            let mut out = Vec::new();
            prost::encoding::encode_key(n, prost::encoding::WireType::LengthDelimited, &mut out);
            prost::encoding::encode_varint(body.len() as u64, &mut out);
            out.extend_from_slice(body);
            out
        };
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        };
        let kv = [field(1, b"first"), field(1, b"second")].concat();
        let span = [span.encode_to_vec(), field(9, &kv)].concat();
        let request = field(1, &field(2, &field(2, &span)));
        let batch = TraceBatch::parse(Bytes::from(request)).unwrap();
        let want = &batch.decode().resource_spans[0].scope_spans[0].spans[0].attributes;
        assert_eq!(want[0].key, "second");
        let keys = |k: &'static str| {
            batch
                .span_attributes_where(0, move |key| key == k)
                .map(|kv| kv.key)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys("second"), ["second"]);
        assert!(keys("first").is_empty());
    }

    #[test]
    fn a_batch_refuses_what_the_view_refuses() {
        let mut bytes = request().encode_to_vec();
        bytes.truncate(bytes.len() - 3);
        let err = TraceBatch::parse(Bytes::from(bytes)).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid OTLP trace request"),
            "{err}"
        );
    }
}
