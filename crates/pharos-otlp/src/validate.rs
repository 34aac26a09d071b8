//! What OTLP requires of every item, checked before anything is stored.
//!
//! The OTLP spec fixes trace ids at 16 bytes and span ids at 8, neither all
//! zero; a span's kind is one of the six `SpanKind`s and its status code one of
//! the three `StatusCode`s, and it cannot end before it starts. An item that
//! breaks this is removed from the request and counted in a [`Rejected`]
//! (reported as `partial_success`); the rest of the request is kept. Log records may carry no trace context at all (empty
//! ids), but ids they do carry must have the right length.

use opentelemetry_proto::tonic::trace::v1::Span;
use pharos_model::trace_batch::TraceBatch;
use pharos_model::view::{self, SpanView};
use pharos_model::{ExportLogsServiceRequest, ExportTraceServiceRequest, Rejected};

fn valid_trace_id(id: &[u8]) -> bool {
    id.len() == 16 && id.iter().any(|b| *b != 0)
}

fn valid_span_id(id: &[u8]) -> bool {
    id.len() == 8 && id.iter().any(|b| *b != 0)
}

/// What the rules read of a span, decoded or in place.
struct Facts<'a, L> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    /// Each link's trace id and span id.
    links: L,
    start: u64,
    end: u64,
    kind: i32,
    status_code: i32,
}

fn problem<'a>(
    mut f: Facts<'a, impl Iterator<Item = (&'a [u8], &'a [u8])>>,
) -> Option<&'static str> {
    if !valid_trace_id(f.trace_id) {
        return Some("span trace_id must be 16 bytes and not all zero");
    }
    if !valid_span_id(f.span_id) {
        return Some("span span_id must be 8 bytes and not all zero");
    }
    if !f.parent_span_id.is_empty() && f.parent_span_id.len() != 8 {
        return Some("span parent_span_id must be empty or 8 bytes");
    }
    if f.links
        .any(|(trace, span)| !valid_trace_id(trace) || !valid_span_id(span))
    {
        return Some("span link ids must be 16-byte trace_id and 8-byte span_id");
    }
    if f.end < f.start {
        return Some("span end_time_unix_nano must not be before start_time_unix_nano");
    }
    if !(0..=5).contains(&f.kind) {
        return Some("span kind must be a SpanKind (0 to 5)");
    }
    if !(0..=2).contains(&f.status_code) {
        return Some("span status code must be a StatusCode (0 to 2)");
    }
    None
}

/// Returns why `span` cannot be stored, or `None` when it is valid.
pub fn span_problem(span: &Span) -> Option<&'static str> {
    problem(Facts {
        trace_id: &span.trace_id,
        span_id: &span.span_id,
        parent_span_id: &span.parent_span_id,
        links: span
            .links
            .iter()
            .map(|l| (l.trace_id.as_slice(), l.span_id.as_slice())),
        start: span.start_time_unix_nano,
        end: span.end_time_unix_nano,
        kind: span.kind,
        status_code: span.status.as_ref().map_or(0, |s| s.code),
    })
}

/// [`span_problem`] for a span read in place.
pub fn span_view_problem(span: &SpanView<'_>) -> Option<&'static str> {
    let links = view::fields(if span.has_links { span.raw } else { &[] })
        .filter(|f| f.number == 13)
        .map(|link| {
            let (mut trace, mut span) = (&[][..], &[][..]);
            for f in view::fields(link.payload) {
                match f.number {
                    1 => trace = f.payload,
                    2 => span = f.payload,
                    _ => {}
                }
            }
            (trace, span)
        });
    problem(Facts {
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent_span_id: span.parent_span_id,
        links,
        start: span.start_time_unix_nano,
        end: span.end_time_unix_nano,
        kind: span.kind,
        status_code: span.status_code,
    })
}

/// [`traces`] for a request kept as its bytes: rebuilt only when a span is removed.
pub fn trace_batch(batch: &mut TraceBatch) -> Rejected {
    let mut rejected = Rejected::default();
    let keep: Vec<bool> = (0..batch.span_count())
        .map(|i| match span_view_problem(&batch.span(i)) {
            None => true,
            Some(why) => {
                rejected.add(1, why);
                false
            }
        })
        .collect();
    if rejected.count > 0 {
        batch.retain(&keep);
    }
    rejected
}

/// Removes invalid spans from `req`, returning what was removed and why.
pub fn traces(req: &mut ExportTraceServiceRequest) -> Rejected {
    let mut rejected = Rejected::default();
    for rs in &mut req.resource_spans {
        for ss in &mut rs.scope_spans {
            ss.spans.retain(|span| match span_problem(span) {
                None => true,
                Some(why) => {
                    rejected.add(1, why);
                    false
                }
            });
        }
    }
    rejected
}

/// Removes log records whose trace context has the wrong length.
pub fn logs(req: &mut ExportLogsServiceRequest) -> Rejected {
    let mut rejected = Rejected::default();
    for rl in &mut req.resource_logs {
        for sl in &mut rl.scope_logs {
            sl.log_records.retain(|r| {
                if !r.trace_id.is_empty() && r.trace_id.len() != 16 {
                    rejected.add(1, "log record trace_id must be empty or 16 bytes");
                    false
                } else if !r.span_id.is_empty() && r.span_id.len() != 8 {
                    rejected.add(1, "log record span_id must be empty or 8 bytes");
                    false
                } else {
                    true
                }
            });
        }
    }
    rejected
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn span(trace: &[u8], id: &[u8]) -> Span {
        Span {
            trace_id: trace.to_vec(),
            span_id: id.to_vec(),
            name: "s".into(),
            ..Default::default()
        }
    }

    fn check_traces(spans: Vec<Span>, kept: usize, rejected: u64) {
        let mut req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        // The same request kept as bytes is checked alike, and loses the same spans.
        let mut batch = TraceBatch::from_request(&req);
        let r = traces(&mut req);
        assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), kept);
        assert_eq!(r.count, rejected);
        assert_eq!(r.message.is_empty(), rejected == 0);
        assert_eq!(trace_batch(&mut batch), r);
        assert_eq!(batch.decode(), req);
    }

    #[test]
    fn ids_of_wrong_length_are_rejected_alone() {
        check_traces(vec![span(&[1; 16], &[2; 8])], 1, 0);
        check_traces(vec![span(&[1; 15], &[2; 8]), span(&[1; 16], &[2; 8])], 1, 1);
        check_traces(vec![span(&[0; 16], &[2; 8])], 0, 1);
        check_traces(vec![span(&[1; 16], &[2; 7]), span(&[1; 16], &[0; 8])], 0, 2);
        let mut bad_parent = span(&[1; 16], &[2; 8]);
        bad_parent.parent_span_id = vec![3; 4];
        check_traces(vec![bad_parent], 0, 1);
    }

    #[test]
    fn malformed_spans_are_rejected_alone() {
        let good = || {
            let mut s = span(&[1; 16], &[2; 8]);
            s.start_time_unix_nano = 10;
            s.end_time_unix_nano = 20;
            s
        };
        let mut backwards = good();
        backwards.end_time_unix_nano = 9;
        let mut instant = good();
        instant.end_time_unix_nano = 10;
        check_traces(vec![backwards, instant, good()], 2, 1);
        let mut kind = good();
        kind.kind = 6;
        let mut negative = good();
        negative.kind = -1;
        let mut consumer = good();
        consumer.kind = 5;
        check_traces(vec![kind, negative, consumer], 1, 2);
        let mut status = good();
        status.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
            code: 3,
            message: String::new(),
        });
        let mut error = good();
        error.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
            code: 2,
            message: "boom".into(),
        });
        check_traces(vec![status, error], 1, 1);
        let link = |t: &[u8], s: &[u8]| opentelemetry_proto::tonic::trace::v1::span::Link {
            trace_id: t.to_vec(),
            span_id: s.to_vec(),
            ..Default::default()
        };
        let mut linked = good();
        linked.links = vec![link(&[3; 16], &[4; 8])];
        let mut bad_link = good();
        bad_link.links = vec![link(&[3; 16], &[4; 8]), link(&[3; 16], &[0; 8])];
        let mut short_link = good();
        short_link.links = vec![link(&[3; 15], &[4; 8])];
        let mut parent = good();
        parent.parent_span_id = vec![5; 7];
        check_traces(vec![linked, bad_link, short_link, parent], 1, 3);

        let mut req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![good(), {
                        let mut s = good();
                        s.end_time_unix_nano = 0;
                        s
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let r = traces(&mut req);
        assert_eq!(r.count, 1);
        assert!(
            r.message.contains("before start_time_unix_nano"),
            "{}",
            r.message
        );
    }

    #[test]
    fn logs_may_lack_trace_context() {
        let rec = |t: &[u8], s: &[u8]| LogRecord {
            trace_id: t.to_vec(),
            span_id: s.to_vec(),
            ..Default::default()
        };
        let mut req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![rec(&[], &[]), rec(&[1; 16], &[2; 8]), rec(&[1; 3], &[])],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let r = logs(&mut req);
        assert_eq!(r.count, 1);
        assert_eq!(req.resource_logs[0].scope_logs[0].log_records.len(), 2);
    }
}
