//! The plain trace model TraceQL evaluates over: one [`Trace`] of [`Span`]s, each with its
//! own attributes and its resource's. The store adapts its spans to this shape, so the
//! evaluator knows nothing of OTLP or of how spans are kept.

use super::value::{Kind, Status, Value};

/// An 8-byte span id, as OTLP carries it.
pub type SpanId = [u8; 8];

/// One span, with what TraceQL can ask of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub span_id: SpanId,
    /// `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: Kind,
    pub status: Status,
    pub status_message: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Span attributes (`span.x`).
    pub attrs: Vec<(String, Value)>,
    /// The span's resource attributes (`resource.x`).
    pub resource_attrs: Vec<(String, Value)>,
}

/// The spans of one trace, in any order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    pub spans: Vec<Span>,
}

impl Span {
    /// Returns the span duration in nanoseconds (0 if the end precedes the start).
    pub fn duration_ns(&self) -> i64 {
        i64::try_from(self.end_ns.saturating_sub(self.start_ns)).unwrap_or(i64::MAX)
    }

    /// Returns the span attribute `key`, if present.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        lookup(&self.attrs, key)
    }

    /// Returns the resource attribute `key`, if present.
    pub fn resource_attr(&self, key: &str) -> Option<&Value> {
        lookup(&self.resource_attrs, key)
    }
}

fn lookup<'a>(attrs: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}
