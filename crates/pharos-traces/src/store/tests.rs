//! Store tests, and request builders the API tests share.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use pharos_model::{ExportTraceServiceRequest, Store};

use super::*;

/// Unix seconds every fixture span starts after.
pub(crate) const T0: u64 = 1_700_000_000;

pub(crate) fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

pub(crate) fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

/// Returns trace id `n` (16 bytes, high half zero, low byte `n`).
pub(crate) fn tid(n: u8) -> TraceId {
    let mut id = [0u8; 16];
    id[15] = n;
    id
}

/// Returns a span of trace `t` with span id `[0,..,id]`, starting `start_ms` after
/// [`T0`] and lasting `dur_ms`.
pub(crate) fn span(
    t: u8,
    id: u8,
    parent: Option<u8>,
    name: &str,
    start_ms: u64,
    dur_ms: u64,
) -> Span {
    let start = T0 * 1_000_000_000 + start_ms * 1_000_000;
    Span {
        trace_id: tid(t).to_vec(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
        parent_span_id: parent
            .map(|p| vec![0, 0, 0, 0, 0, 0, 0, p])
            .unwrap_or_default(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + dur_ms * 1_000_000,
        ..Default::default()
    }
}

pub(crate) fn request(
    service: Option<&str>,
    scope: &str,
    spans: Vec<Span>,
) -> ExportTraceServiceRequest {
    let mut attributes = vec![kv("host.name", s("h1"))];
    if let Some(svc) = service {
        attributes.insert(0, kv("service.name", s(svc)));
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: scope.into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn ingest(store: &TraceStore, mut req: ExportTraceServiceRequest) -> Rejected {
    let r = store.sanitize(&mut req);
    store.apply(&req);
    r
}

#[test]
fn spans_regroup_by_resource_and_scope_across_requests() {
    let store = TraceStore::new();
    ingest(
        &store,
        request(
            Some("api"),
            "lib-a",
            vec![span(1, 1, None, "GET /", 0, 100)],
        ),
    );
    ingest(
        &store,
        request(
            Some("db"),
            "lib-b",
            vec![span(1, 2, Some(1), "SELECT", 10, 20)],
        ),
    );
    ingest(
        &store,
        request(
            Some("api"),
            "lib-a",
            vec![span(1, 3, Some(1), "render", 40, 5)],
        ),
    );
    ingest(
        &store,
        request(
            Some("api"),
            "lib-c",
            vec![span(1, 4, Some(1), "log", 50, 1)],
        ),
    );

    let batches = store.get(&tid(1), None).expect("trace 1 is stored");
    assert_eq!(batches.len(), 2, "two distinct resources");
    let api = &batches[0];
    assert_eq!(api.scope_spans.len(), 2, "scopes lib-a and lib-c");
    let names: Vec<_> = api.scope_spans[0]
        .spans
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["GET /", "render"]);
    assert_eq!(api.scope_spans[1].scope.as_ref().unwrap().name, "lib-c");
    assert_eq!(batches[1].scope_spans[0].spans[0].name, "SELECT");
    assert!(store.get(&tid(2), None).is_none());
}

#[test]
fn window_keeps_only_overlapping_traces() {
    let store = TraceStore::new();
    ingest(
        &store,
        request(Some("api"), "x", vec![span(1, 1, None, "a", 0, 2_000)]),
    );
    let ns = |s: u64| s * 1_000_000_000;
    assert!(store.get(&tid(1), Some((ns(T0 + 1), ns(T0 + 5)))).is_some());
    assert!(store.get(&tid(1), Some((ns(T0 + 3), ns(T0 + 5)))).is_none());
    assert!(store.get(&tid(1), Some((0, ns(T0) - 1))).is_none());
}

#[test]
fn services_and_operations_are_indexed() {
    let store = TraceStore::new();
    let mut client = span(1, 2, Some(1), "call", 1, 1);
    client.kind = 3;
    ingest(
        &store,
        request(
            Some("web"),
            "x",
            vec![span(1, 1, None, "GET /", 0, 5), client],
        ),
    );
    ingest(
        &store,
        request(None, "x", vec![span(2, 1, None, "job", 0, 5)]),
    );
    assert_eq!(store.services(), ["unknown_service", "web"]);
    assert_eq!(
        store.operations("web"),
        [
            Operation {
                name: "GET /".into(),
                kind: 2
            },
            Operation {
                name: "call".into(),
                kind: 3
            }
        ]
    );
    assert!(store.operations("nope").is_empty());
}

#[test]
fn sanitize_rejects_unusable_ids() {
    let store = TraceStore::new();
    let mut zero_trace = span(1, 1, None, "a", 0, 1);
    zero_trace.trace_id = vec![0; 16];
    let mut short_span = span(1, 2, None, "b", 0, 1);
    short_span.span_id = vec![1, 2];
    let r = ingest(
        &store,
        request(
            Some("a"),
            "x",
            vec![zero_trace, short_span, span(1, 3, None, "c", 0, 1)],
        ),
    );
    assert_eq!(r.count, 2);
    assert_eq!(
        store.get(&tid(1), None).unwrap()[0].scope_spans[0]
            .spans
            .len(),
        1
    );
    assert!(store.approx_bytes() > 0);
}

#[test]
fn search_matches_service_operation_tags_and_duration_newest_first() {
    let store = TraceStore::new();
    let mut slow = span(1, 1, None, "GET /slow", 0, 900);
    slow.attributes
        .push(kv("http.status_code", Value::IntValue(500)));
    slow.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    ingest(&store, request(Some("web"), "x", vec![slow]));
    ingest(
        &store,
        request(
            Some("web"),
            "x",
            vec![span(2, 1, None, "GET /fast", 1_000, 5)],
        ),
    );
    ingest(
        &store,
        request(
            Some("web"),
            "x",
            vec![span(3, 1, None, "GET /fast", 2_000, 7)],
        ),
    );
    ingest(
        &store,
        request(
            Some("db"),
            "x",
            vec![span(4, 1, None, "GET /fast", 3_000, 7)],
        ),
    );

    let ids =
        |q: TraceQuery| -> Vec<u8> { store.search(&q).iter().map(|(id, _)| id[15]).collect() };
    let web = || TraceQuery {
        service: Some("web".into()),
        ..Default::default()
    };
    assert_eq!(ids(web()), [3, 2, 1]);
    assert_eq!(ids(TraceQuery { limit: 2, ..web() }), [3, 2]);
    assert_eq!(
        ids(TraceQuery {
            operation: Some("GET /fast".into()),
            ..web()
        }),
        [3, 2]
    );
    assert_eq!(
        ids(TraceQuery {
            min_duration_ns: Some(100_000_000),
            ..web()
        }),
        [1]
    );
    assert_eq!(
        ids(TraceQuery {
            max_duration_ns: Some(6_000_000),
            ..web()
        }),
        [2]
    );
    assert_eq!(
        ids(TraceQuery {
            tags: vec![("http.status_code".into(), "500".into())],
            ..web()
        }),
        [1]
    );
    assert_eq!(
        ids(TraceQuery {
            tags: vec![("error".into(), "true".into())],
            ..web()
        }),
        [1]
    );
    assert_eq!(
        ids(TraceQuery {
            tags: vec![("host.name".into(), "h1".into())],
            limit: 1,
            ..web()
        }),
        [3]
    );
    let start = (T0 + 1) * 1_000_000_000;
    assert_eq!(
        ids(TraceQuery {
            start_ns: Some(start),
            end_ns: Some(start + 1),
            ..web()
        }),
        [2]
    );
}

#[test]
fn apply_is_deterministic() {
    let reqs = [
        request(Some("a"), "x", vec![span(1, 1, None, "r", 0, 10)]),
        request(Some("b"), "y", vec![span(1, 2, Some(1), "c", 1, 2)]),
    ];
    let (one, two) = (TraceStore::new(), TraceStore::new());
    for r in &reqs {
        one.apply(r);
        two.apply(r);
    }
    assert_eq!(one.get(&tid(1), None), two.get(&tid(1), None));
    assert_eq!(one.approx_bytes(), two.approx_bytes());
}

fn span_count(store: &TraceStore, t: u8) -> usize {
    store.get(&tid(t), None).map_or(0, |b| {
        b.iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    })
}

#[test]
fn spans_past_the_span_limit_are_refused_first_ones_kept() {
    let store = TraceStore::with_limits(TraceLimits {
        max_spans_per_trace: 3,
        max_bytes_per_trace: 0,
    });
    let spans = (1..=5)
        .map(|i| span(1, i, None, "s", i as u64, 1))
        .collect();
    let mut other = vec![span(2, 1, None, "t", 0, 1)];
    let mut mixed: Vec<Span> = spans;
    mixed.append(&mut other);
    let r = ingest(&store, request(Some("api"), "lib", mixed));
    assert_eq!(r.count, 2);
    assert!(
        r.message.contains("TRACE_TOO_LARGE") && r.message.contains("max_spans_per_trace"),
        "{}",
        r.message
    );
    assert_eq!(span_count(&store, 1), 3);
    assert_eq!(span_count(&store, 2), 1);
    let kept: Vec<u8> = store.get(&tid(1), None).unwrap()[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| s.span_id[7])
        .collect();
    assert_eq!(kept, [1, 2, 3], "the first spans are kept");
    // A later request for the full trace is refused whole; other traces still grow.
    let r = ingest(
        &store,
        request(
            Some("api"),
            "lib",
            vec![span(1, 9, None, "late", 9, 1), span(2, 2, None, "t2", 1, 1)],
        ),
    );
    assert_eq!(r.count, 1);
    assert_eq!((span_count(&store, 1), span_count(&store, 2)), (3, 2));
    assert_eq!(
        store.limit_counts(),
        LimitCounts {
            refused: 3,
            dropped: 0
        }
    );
}

#[test]
fn spans_past_the_byte_limit_are_refused() {
    let one = span(1, 1, None, "sized", 0, 1).encoded_len() as u64;
    let store = TraceStore::with_limits(TraceLimits {
        max_spans_per_trace: 0,
        max_bytes_per_trace: 2 * one,
    });
    let spans = (1..=3).map(|i| span(1, i, None, "sized", 0, 1)).collect();
    let r = ingest(&store, request(Some("api"), "lib", spans));
    assert_eq!(r.count, 1);
    assert!(r.message.contains("max_bytes_per_trace"), "{}", r.message);
    assert_eq!(span_count(&store, 1), 2);
    // One span larger than the whole bound is refused on its own.
    let mut big = span(3, 1, None, "big", 0, 1);
    big.attributes
        .push(kv("blob", s(&"x".repeat(3 * one as usize))));
    let r = ingest(&store, request(Some("api"), "lib", vec![big]));
    assert_eq!(r.count, 1);
    assert_eq!(span_count(&store, 3), 0);
}

#[test]
fn apply_enforces_the_limit_when_requests_race_past_sanitize() {
    let store = TraceStore::with_limits(TraceLimits {
        max_spans_per_trace: 2,
        max_bytes_per_trace: 0,
    });
    let mut a = request(
        Some("api"),
        "lib",
        vec![span(1, 1, None, "a", 0, 1), span(1, 2, None, "b", 0, 1)],
    );
    let mut b = request(Some("api"), "lib", vec![span(1, 3, None, "c", 0, 1)]);
    assert_eq!(store.sanitize(&mut a).count, 0);
    assert_eq!(store.sanitize(&mut b).count, 0);
    store.apply(&a);
    store.apply(&b);
    assert_eq!(span_count(&store, 1), 2);
    assert_eq!(store.limit_counts().dropped, 1);
    assert_eq!(store.services(), ["api"]);
}

#[test]
fn default_limits_are_tempo_like_and_zero_means_none() {
    assert_eq!(
        TraceLimits::default(),
        TraceLimits {
            max_spans_per_trace: 50_000,
            max_bytes_per_trace: 5_000_000
        }
    );
    let store = TraceStore::with_limits(TraceLimits::UNLIMITED);
    let spans = (1..=200).map(|i| span(1, i, None, "s", 0, 1)).collect();
    assert_eq!(ingest(&store, request(Some("api"), "lib", spans)).count, 0);
    assert_eq!(span_count(&store, 1), 200);
}

#[test]
fn tag_names_and_values_by_scope_and_window() {
    let store = TraceStore::new();
    let mut root = span(1, 1, None, "GET /", 0, 100);
    root.attributes.push(kv("http.method", s("GET")));
    root.attributes
        .push(kv("http.status_code", Value::IntValue(200)));
    root.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    root.events
        .push(opentelemetry_proto::tonic::trace::v1::span::Event {
            name: "exception".into(),
            attributes: vec![kv("exception.type", s("E"))],
            ..Default::default()
        });
    let mut child = span(1, 2, Some(1), "SELECT", 10, 20);
    child.kind = 3;
    child.attributes.push(kv("http.method", s("POST")));
    child.attributes.push(kv("ratio", Value::DoubleValue(0.5)));
    ingest(&store, request(Some("api"), "lib", vec![root]));
    ingest(&store, request(Some("db"), "lib", vec![child]));
    // A trace a day later, outside the window below.
    let mut late = span(2, 1, None, "late", 86_400_000, 1);
    late.attributes.push(kv("late.only", s("x")));
    ingest(&store, request(Some("cron"), "lib", vec![late]));

    let (names, inspected) = store.tag_names(&TagScope::ALL, None);
    assert!(inspected > 0);
    let list = |s: TagScope| -> Vec<&str> { names[&s].iter().map(String::as_str).collect() };
    assert_eq!(list(TagScope::Resource), ["host.name", "service.name"]);
    assert_eq!(
        list(TagScope::Span),
        ["http.method", "http.status_code", "late.only", "ratio"]
    );
    assert_eq!(list(TagScope::Event), ["exception.type"]);
    assert!(list(TagScope::Intrinsic).contains(&"rootServiceName"));
    assert!(
        !names.contains_key(&TagScope::Link),
        "empty scopes are left out"
    );

    let window = Some((T0 * 1_000_000_000, (T0 + 60) * 1_000_000_000));
    let (names, _) = store.tag_names(&[TagScope::Span], window);
    assert!(!names[&TagScope::Span].contains("late.only"));
    assert_eq!(names.len(), 1);

    let values = |tag: &str, window| -> Vec<(String, String)> {
        store
            .tag_values(&TagRef::parse(tag).expect(tag), window)
            .0
            .into_iter()
            .map(|v| (v.kind.to_string(), v.value))
            .collect()
    };
    let pairs = |xs: &[(&str, &str)]| -> Vec<(String, String)> {
        xs.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        values("resource.service.name", None),
        pairs(&[("string", "api"), ("string", "cron"), ("string", "db")])
    );
    assert_eq!(
        values("resource.service.name", window),
        pairs(&[("string", "api"), ("string", "db")])
    );
    assert_eq!(
        values("span.http.method", None),
        pairs(&[("string", "GET"), ("string", "POST")])
    );
    assert_eq!(values("resource.http.method", None), pairs(&[]));
    assert_eq!(values(".http.status_code", None), pairs(&[("int", "200")]));
    assert_eq!(values("span.ratio", None), pairs(&[("float", "0.5")]));
    assert_eq!(
        values("name", window),
        pairs(&[("string", "GET /"), ("string", "SELECT")])
    );
    assert_eq!(
        values("status", None),
        pairs(&[("keyword", "error"), ("keyword", "unset")])
    );
    assert_eq!(
        values("span:kind", None),
        pairs(&[("keyword", "client"), ("keyword", "server")])
    );
    assert_eq!(
        values("rootServiceName", None),
        pairs(&[("string", "api"), ("string", "cron")])
    );
    assert_eq!(
        values("event:name", None),
        pairs(&[("string", "exception")])
    );
    assert_eq!(values("statusMessage", None), pairs(&[("string", "boom")]));
    assert!(values("duration", None).is_empty());
    assert!(TagRef::parse("http.method").is_none());
    assert!(TagRef::parse("span.").is_none());
}
