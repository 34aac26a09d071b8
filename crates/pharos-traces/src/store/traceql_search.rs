//! Tempo search over the head: each trace is adapted to TraceQL's plain model and the
//! query evaluated on it ([`crate::traceql`]); matching traces come back newest first
//! with their spansets, as Tempo's `/api/search` lists them.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use pharos_model::attrs;

use super::block::{PageSummary, is_dedicated_key};
use super::scan::Columns;
use super::scan::{Filtered, Newest};
use super::{Trace, TraceId, TraceStore};
use crate::traceql::prune::{Need, needs};
use crate::traceql::{self, Kind, Status, Value};

/// A TraceQL search: the query and Tempo's other `/api/search` parameters.
#[derive(Debug, Clone)]
pub struct TraceqlSearch {
    /// The parsed query.
    pub query: traceql::Query,
    /// Traces that end before this (unix nanoseconds) are skipped.
    pub start_ns: Option<u64>,
    /// Traces that start after this (unix nanoseconds) are skipped.
    pub end_ns: Option<u64>,
    /// Shortest trace duration, nanoseconds, inclusive.
    pub min_duration_ns: Option<u64>,
    /// Longest trace duration, nanoseconds, inclusive.
    pub max_duration_ns: Option<u64>,
    /// At most this many traces.
    pub limit: usize,
    /// At most this many spans listed per spanset (`spss`); `matched` counts them all.
    pub spans_per_spanset: usize,
}

/// One trace a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub trace_id: TraceId,
    /// The root span's service and name, when the root span has arrived.
    pub root: Option<(String, String)>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub spansets: Vec<HitSpanset>,
}

/// One spanset of a [`SearchHit`].
#[derive(Debug, Clone, PartialEq)]
pub struct HitSpanset {
    /// How many spans matched.
    pub matched: usize,
    /// The first [`TraceqlSearch::spans_per_spanset`] of them.
    pub spans: Vec<HitSpan>,
    /// The `by(...)` group and the aggregate, as Tempo lists them on the spanset.
    pub attributes: Vec<(String, Value)>,
}

/// One span of a [`HitSpanset`].
#[derive(Debug, Clone, PartialEq)]
pub struct HitSpan {
    pub span_id: [u8; 8],
    pub name: String,
    pub start_ns: u64,
    pub duration_ns: u64,
    /// `select(...)`ed values, and `service.name` as Tempo always adds it.
    pub attributes: Vec<(String, Value)>,
}

impl TraceStore {
    /// Runs a TraceQL search over the head; also returns how many traces were inspected.
    pub fn search_traceql(&self, search: &TraceqlSearch) -> (Vec<SearchHit>, usize) {
        let mut inspected = 0;
        let mut newest = Newest::new(search.limit);
        let window = (search.start_ns.is_some() || search.end_ns.is_some()).then(|| {
            (
                search.start_ns.unwrap_or(0),
                search.end_ns.unwrap_or(u64::MAX),
            )
        });
        let needs = needs(&search.query);
        self.scan(
            window,
            &mut Filtered {
                page_ok: |p: &PageSummary| {
                    needs.iter().all(|n| page_may_hold(n, p))
                        && !(search
                            .min_duration_ns
                            .is_some_and(|d| p.max_trace_duration_ns < d)
                            || search
                                .max_duration_ns
                                .is_some_and(|d| p.min_trace_duration_ns > d))
                },
                row_ok: |rows: &dyn Columns, t: usize| {
                    needs.iter().all(|n| row_may_hold(n, rows, t))
                },
                newest: &mut newest,
                visit: |id: &TraceId, trace: &Trace| {
                    let duration = trace.end_ns.saturating_sub(trace.start_ns);
                    if search.min_duration_ns.is_some_and(|d| duration < d)
                        || search.max_duration_ns.is_some_and(|d| duration > d)
                    {
                        return None;
                    }
                    inspected += 1;
                    let model = to_model(trace);
                    let spansets = traceql::evaluate(&search.query, &model);
                    if spansets.is_empty() {
                        return None;
                    }
                    Some(hit(*id, trace, &model, spansets, search.spans_per_spanset))
                },
            },
        );
        let hits = newest
            .into_sorted()
            .into_iter()
            .map(|(_, _, h)| h)
            .collect();
        (hits, inspected)
    }
}

/// Returns whether some span of the page may satisfy `need`, by the page's summary.
fn page_may_hold(need: &Need, p: &PageSummary) -> bool {
    match need {
        Need::Service(s) => p.services.contains(s.as_str()),
        Need::Name(n) => p.names.contains(n.as_str()),
        Need::SpanAttr(k, v) => {
            !is_dedicated_key(k)
                || p.pairs
                    .as_ref()
                    .is_none_or(|pairs| pairs.contains(&(k.clone(), v.clone())))
        }
        Need::MinDuration { ns } => p.max_span_duration_ns >= *ns,
        Need::MaxDuration { ns } => p.min_span_duration_ns <= *ns,
        Need::Status(st) => {
            // The model reads an unknown code as unset.
            let unset = p.statuses & !0b110 != 0;
            match st {
                Status::Unset => unset,
                Status::Ok => p.statuses & 0b010 != 0,
                Status::Error => p.statuses & 0b100 != 0,
            }
        }
        Need::Kind(k) => {
            // The model reads an unknown kind as unspecified.
            let bit = match k {
                Kind::Unspecified => return p.kinds & !0b11_1110 != 0,
                Kind::Internal => 1,
                Kind::Server => 2,
                Kind::Client => 3,
                Kind::Producer => 4,
                Kind::Consumer => 5,
            };
            p.kinds & (1 << bit) != 0
        }
        Need::Any(any) => any.iter().any(|n| page_may_hold(n, p)),
    }
}

/// Returns whether some span of trace `t` may satisfy `need`, by the page's columns
/// (every string span attribute is in them).
fn row_may_hold(need: &Need, rows: &dyn Columns, t: usize) -> bool {
    let any = |f: &dyn Fn(usize) -> bool| rows.spans(t).any(f);
    match need {
        Need::Service(s) => any(&|k| rows.service(k) == s),
        Need::Name(n) => any(&|k| rows.name(k) == n),
        Need::SpanAttr(key, v) => any(&|k| rows.attr(k, key) == Some(v.as_str())),
        Need::MinDuration { ns } => any(&|k| rows.duration(k) >= *ns),
        Need::MaxDuration { ns } => any(&|k| rows.duration(k) <= *ns),
        // Read as the model reads them, unknown values included.
        Need::Status(st) => any(&|k| status_of(rows.status(k)) == *st),
        Need::Kind(kind) => any(&|k| kind_of(rows.kind(k)) == *kind),
        Need::Any(needs) => needs.iter().any(|n| row_may_hold(n, rows, t)),
    }
}

/// An OTLP span kind as TraceQL's model reads it: an unknown value is unspecified.
fn kind_of(kind: i32) -> Kind {
    match kind {
        1 => Kind::Internal,
        2 => Kind::Server,
        3 => Kind::Client,
        4 => Kind::Producer,
        5 => Kind::Consumer,
        _ => Kind::Unspecified,
    }
}

/// An OTLP status code as TraceQL's model reads it: an unknown value is unset.
fn status_of(code: i32) -> Status {
    match code {
        1 => Status::Ok,
        2 => Status::Error,
        _ => Status::Unset,
    }
}

fn hit(
    trace_id: TraceId,
    trace: &Trace,
    model: &traceql::Trace,
    spansets: Vec<traceql::Spanset>,
    spss: usize,
) -> SearchHit {
    let root = trace
        .spans
        .iter()
        .find(|s| s.span.parent_span_id.is_empty())
        .map(|s| (s.resource.service.clone(), s.span.name.clone()));
    let spansets = spansets
        .into_iter()
        .map(|set| {
            let mut attributes = set.group.clone();
            if let Some(v) = &set.scalar {
                attributes.push(("scalar".to_string(), v.clone()));
            }
            HitSpanset {
                matched: set.spans.len(),
                spans: set
                    .spans
                    .iter()
                    .take(spss)
                    .map(|m| {
                        let span = &model.spans[m.index];
                        let mut attributes = vec![(
                            "service.name".to_string(),
                            Value::String(trace.spans[m.index].resource.service.clone()),
                        )];
                        attributes.extend(m.selected.iter().cloned());
                        HitSpan {
                            span_id: m.span_id,
                            name: span.name.clone(),
                            start_ns: span.start_ns,
                            duration_ns: span.end_ns.saturating_sub(span.start_ns),
                            attributes,
                        }
                    })
                    .collect(),
                attributes,
            }
        })
        .collect();
    SearchHit {
        trace_id,
        root,
        start_ns: trace.start_ns,
        end_ns: trace.end_ns,
        spansets,
    }
}

/// The trace in TraceQL's model, span for span in the head's order.
fn to_model(trace: &Trace) -> traceql::Trace {
    let spans = trace
        .spans
        .iter()
        .map(|s| {
            let span = &s.span;
            let resource_attrs = s
                .resource
                .resource
                .as_ref()
                .map(|r| values(&r.attributes))
                .unwrap_or_default();
            traceql::Span {
                span_id: span.span_id.as_slice().try_into().unwrap_or([0; 8]),
                parent_span_id: span.parent_span_id.as_slice().try_into().ok(),
                name: span.name.clone(),
                kind: kind_of(span.kind),
                status: status_of(span.status.as_ref().map_or(0, |st| st.code)),
                status_message: span
                    .status
                    .as_ref()
                    .map(|st| st.message.clone())
                    .unwrap_or_default(),
                start_ns: span.start_time_unix_nano,
                end_ns: span.end_time_unix_nano,
                attrs: values(&span.attributes),
                resource_attrs,
            }
        })
        .collect();
    traceql::Trace { spans }
}

fn values(kvs: &[KeyValue]) -> Vec<(String, Value)> {
    kvs.iter()
        .filter_map(|kv| Some((kv.key.clone(), value(kv.value.as_ref()?))))
        .collect()
}

fn value(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::IntValue(i)) => Value::Int(*i),
        Some(any_value::Value::DoubleValue(f)) => Value::Float(*f),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        None => Value::Nil,
        Some(_) => Value::String(attrs::value_to_string(v)),
    }
}
