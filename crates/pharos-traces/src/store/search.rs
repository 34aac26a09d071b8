//! Trace search by span properties: the scan behind Jaeger's `GET /api/traces`.

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use pharos_model::attrs;

use super::block::PageSummary;
use super::scan::Columns;
use super::{StoredSpan, is_error};

/// What a trace search asks for. A trace matches when at least one of its spans
/// satisfies every condition that is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceQuery {
    /// The span's service (resource `service.name`).
    pub service: Option<String>,
    /// The span name.
    pub operation: Option<String>,
    /// Tags the span must carry, each compared as a string against the span's
    /// attributes, then its resource's; `error=true`, `span.kind` and
    /// `otel.status_code` are matched against the span's status and kind.
    pub tags: Vec<(String, String)>,
    /// Earliest span start, unix nanoseconds, inclusive.
    pub start_ns: Option<u64>,
    /// Latest span start, unix nanoseconds, inclusive.
    pub end_ns: Option<u64>,
    /// Shortest span duration, nanoseconds, inclusive.
    pub min_duration_ns: Option<u64>,
    /// Longest span duration, nanoseconds, inclusive.
    pub max_duration_ns: Option<u64>,
    /// At most this many traces are returned.
    pub limit: usize,
}

impl Default for TraceQuery {
    fn default() -> Self {
        Self {
            service: None,
            operation: None,
            tags: Vec::new(),
            start_ns: None,
            end_ns: None,
            min_duration_ns: None,
            max_duration_ns: None,
            limit: 20,
        }
    }
}

/// Returns the lowercase name Jaeger and the OTel Collector use for an OTLP span kind,
/// or `None` for `SPAN_KIND_UNSPECIFIED` and unknown values.
pub fn span_kind_name(kind: i32) -> Option<&'static str> {
    match SpanKind::try_from(kind).ok()? {
        SpanKind::Unspecified => None,
        SpanKind::Internal => Some("internal"),
        SpanKind::Server => Some("server"),
        SpanKind::Client => Some("client"),
        SpanKind::Producer => Some("producer"),
        SpanKind::Consumer => Some("consumer"),
    }
}

impl TraceQuery {
    /// Returns whether a block page may hold a span this query matches, by the page's
    /// summary: service, span name, span start and duration.
    pub(super) fn page_may_match(&self, p: &PageSummary) -> bool {
        if self
            .service
            .as_ref()
            .is_some_and(|s| !p.services.contains(s.as_str()))
        {
            return false;
        }
        if self
            .operation
            .as_ref()
            .is_some_and(|o| !p.names.contains(o.as_str()))
        {
            return false;
        }
        // A span's start lies between the page's earliest start and latest end.
        if self.start_ns.is_some_and(|t| p.max_end_ns < t)
            || self.end_ns.is_some_and(|t| p.min_start_ns > t)
        {
            return false;
        }
        !(self
            .min_duration_ns
            .is_some_and(|d| p.max_span_duration_ns < d)
            || self
                .max_duration_ns
                .is_some_and(|d| p.min_span_duration_ns > d))
    }

    /// Returns whether trace `t` of a block page has a span that may match, by the
    /// columns (service, name, start, duration; tags are checked once rebuilt).
    pub(super) fn row_may_match(&self, rows: &dyn Columns, t: usize) -> bool {
        rows.spans(t).any(|k| {
            let start = rows.start(t, k);
            let duration = rows.duration(k);
            self.service.as_ref().is_none_or(|s| s == rows.service(k))
                && self.operation.as_ref().is_none_or(|o| o == rows.name(k))
                && self.start_ns.is_none_or(|x| start >= x)
                && self.end_ns.is_none_or(|x| start <= x)
                && self.min_duration_ns.is_none_or(|d| duration >= d)
                && self.max_duration_ns.is_none_or(|d| duration <= d)
        })
    }

    pub(super) fn matches(&self, s: &StoredSpan) -> bool {
        let span = &s.span;
        if self
            .service
            .as_ref()
            .is_some_and(|svc| *svc != s.resource.service)
        {
            return false;
        }
        if self.operation.as_ref().is_some_and(|op| *op != span.name) {
            return false;
        }
        if self.start_ns.is_some_and(|t| span.start_time_unix_nano < t)
            || self.end_ns.is_some_and(|t| span.start_time_unix_nano > t)
        {
            return false;
        }
        let duration = span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano);
        if self.min_duration_ns.is_some_and(|d| duration < d)
            || self.max_duration_ns.is_some_and(|d| duration > d)
        {
            return false;
        }
        self.tags.iter().all(|(k, v)| tag_matches(s, k, v))
    }
}

fn tag_matches(s: &StoredSpan, key: &str, want: &str) -> bool {
    let span = &s.span;
    match key {
        "error" => return is_error(span) == (want == "true"),
        "span.kind" => return span_kind_name(span.kind) == Some(want),
        "otel.status_code" => {
            let code = span.status.as_ref().map_or(0, |st| st.code);
            return matches!((code, want), (1, "OK") | (2, "ERROR"));
        }
        _ => {}
    }
    let resource_attrs = s
        .resource
        .resource
        .as_ref()
        .map(|r| r.attributes.as_slice())
        .unwrap_or(&[]);
    [span.attributes.as_slice(), resource_attrs]
        .iter()
        .any(|a| attrs::get(a, key).is_some_and(|v| attrs::value_to_string(v) == want))
}
