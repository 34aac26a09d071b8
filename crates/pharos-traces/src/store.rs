//! The in-memory trace head: spans grouped by trace id, plus the service and
//! operation index the Jaeger API lists.
//!
//! Each span is stored with shared (`Arc`) handles to the resource and scope it
//! arrived with, so reading a trace back rebuilds OTLP `ResourceSpans` without
//! copying a resource per span. Spans keep their arrival order; regrouping on
//! read merges equal resources and equal scopes, whatever request they came in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, status::StatusCode};
use parking_lot::RwLock;
use pharos_model::{ExportTraceServiceRequest, Rejected, Store, attrs};
use prost::Message;

pub(crate) mod search;

pub use search::TraceQuery;

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

/// The traces slice's in-memory store.
///
/// Implements [`Store`] for OTLP trace requests; the query methods return
/// spans as OTLP [`ResourceSpans`], grouped back by resource and scope.
#[derive(Default)]
pub struct TraceStore {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    traces: HashMap<TraceId, Trace>,
    /// Service name → its operations.
    services: BTreeMap<String, BTreeSet<Operation>>,
    bytes: u64,
}

struct Trace {
    spans: Vec<StoredSpan>,
    /// Earliest span start, in unix nanoseconds.
    start_ns: u64,
    /// Latest span end, in unix nanoseconds.
    end_ns: u64,
}

struct StoredSpan {
    resource: Arc<ResourceInfo>,
    scope: Arc<ScopeInfo>,
    span: Span,
}

#[derive(PartialEq)]
struct ResourceInfo {
    resource: Option<Resource>,
    schema_url: String,
    service: String,
}

#[derive(PartialEq)]
struct ScopeInfo {
    scope: Option<InstrumentationScope>,
    schema_url: String,
}

impl TraceStore {
    /// Returns an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the trace `id` as OTLP resource spans, or `None` when no span of it is
    /// stored. With `window = Some((start_ns, end_ns))` the trace is returned only if
    /// its time range overlaps the window (bounds inclusive), as Tempo's `start`/`end` do.
    pub fn get(&self, id: &TraceId, window: Option<(u64, u64)>) -> Option<Vec<ResourceSpans>> {
        let inner = self.inner.read();
        let trace = inner.traces.get(id)?;
        if let Some((start, end)) = window
            && (trace.end_ns < start || trace.start_ns > end)
        {
            return None;
        }
        Some(trace.to_resource_spans())
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

    /// Returns how many traces the head holds.
    pub fn trace_count(&self) -> usize {
        self.inner.read().traces.len()
    }

    /// Returns the traces matching `query`, newest (latest start) first, at most
    /// `query.limit` of them; see [`TraceQuery`] for the matching rules.
    pub fn search(&self, query: &TraceQuery) -> Vec<(TraceId, Vec<ResourceSpans>)> {
        let inner = self.inner.read();
        let mut hits: Vec<(&TraceId, &Trace)> = inner
            .traces
            .iter()
            .filter(|(_, t)| t.spans.iter().any(|s| query.matches(s)))
            .collect();
        hits.sort_by(|a, b| b.1.start_ns.cmp(&a.1.start_ns).then_with(|| a.0.cmp(b.0)));
        hits.truncate(query.limit);
        hits.into_iter()
            .map(|(id, t)| (*id, t.to_resource_spans()))
            .collect()
    }
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

/// Returns the span's trace id as a [`TraceId`], if it has the OTLP length and is not all zeros.
fn trace_id_of(span: &Span) -> Option<TraceId> {
    let id: TraceId = span.trace_id.as_slice().try_into().ok()?;
    (id != [0; 16]).then_some(id)
}

fn span_id_ok(span: &Span) -> bool {
    span.span_id.len() == 8 && span.span_id.iter().any(|b| *b != 0)
}

/// Returns whether the span's status is `STATUS_CODE_ERROR`.
pub(crate) fn is_error(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32)
}

impl Store<ExportTraceServiceRequest> for TraceStore {
    /// Drops spans whose trace id is not 16 bytes or all zeros, or whose span id is
    /// not 8 bytes or all zeros: such spans could never be looked up again.
    fn sanitize(&self, req: &mut ExportTraceServiceRequest) -> Rejected {
        let mut rejected = Rejected::default();
        for rs in &mut req.resource_spans {
            for ss in &mut rs.scope_spans {
                let before = ss.spans.len();
                ss.spans
                    .retain(|s| trace_id_of(s).is_some() && span_id_ok(s));
                rejected.add(
                    (before - ss.spans.len()) as u64,
                    "invalid or all-zero trace or span id",
                );
            }
        }
        rejected
    }

    fn apply(&self, req: &ExportTraceServiceRequest) {
        let mut inner = self.inner.write();
        for rs in &req.resource_spans {
            let attrs = rs
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[]);
            let service = attrs::get_str(attrs, "service.name")
                .unwrap_or_else(|| UNKNOWN_SERVICE.to_string());
            let resource = Arc::new(ResourceInfo {
                resource: rs.resource.clone(),
                schema_url: rs.schema_url.clone(),
                service: service.clone(),
            });
            inner.bytes += rs.resource.as_ref().map_or(0, |r| r.encoded_len() as u64);
            for ss in &rs.scope_spans {
                let scope = Arc::new(ScopeInfo {
                    scope: ss.scope.clone(),
                    schema_url: ss.schema_url.clone(),
                });
                for span in &ss.spans {
                    // Sanitize removed these before the WAL; a replayed old record may
                    // still hold one, and skipping it keeps replay equal to ingest.
                    let Some(id) = trace_id_of(span) else {
                        continue;
                    };
                    inner.bytes += span.encoded_len() as u64 + 64;
                    inner
                        .services
                        .entry(service.clone())
                        .or_default()
                        .insert(Operation {
                            name: span.name.clone(),
                            kind: span.kind,
                        });
                    let trace = inner.traces.entry(id).or_insert_with(|| Trace {
                        spans: Vec::new(),
                        start_ns: u64::MAX,
                        end_ns: 0,
                    });
                    trace.start_ns = trace.start_ns.min(span.start_time_unix_nano);
                    trace.end_ns = trace
                        .end_ns
                        .max(span.end_time_unix_nano.max(span.start_time_unix_nano));
                    trace.spans.push(StoredSpan {
                        resource: Arc::clone(&resource),
                        scope: Arc::clone(&scope),
                        span: span.clone(),
                    });
                }
            }
        }
    }

    fn approx_bytes(&self) -> u64 {
        self.inner.read().bytes
    }
}

#[cfg(test)]
pub(crate) mod tests;
