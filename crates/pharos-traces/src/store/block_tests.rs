//! Trace blocks: what a block holds reads back exactly, through every query, after a
//! flush, a reopen and a compaction.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use pharos_model::{ExportTraceServiceRequest, Store};
use prost::Message;

use super::tests::{kv, s};
use super::*;
use crate::traceql;

/// A small deterministic generator (xorshift), so the fixtures need no crate.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        for x in &mut b {
            *x = self.next() as u8;
        }
        b
    }
}

const SERVICES: [&str; 5] = ["frontend", "checkout", "cart", "payment", "db-proxy"];
/// Nanoseconds of 2026-12-01: recent enough for retention to keep it.
const BASE_NS: u64 = 1_796_083_200_000_000_000;

/// Builds `traces` traces of 1..12 spans over the five services, one request per
/// (trace, service) fragment, with ids, times, kinds, statuses, events, links, typed and
/// dedicated attributes all varied.
fn requests(g: &mut Gen, traces: usize, base_ns: u64) -> Vec<ExportTraceServiceRequest> {
    let mut out = Vec::new();
    for t in 0..traces {
        let trace_id: [u8; 16] = g.bytes();
        let n = 1 + g.below(12) as usize;
        let start = base_ns + t as u64 * 7_000_000 + g.below(1_000_000);
        let mut ids: Vec<[u8; 8]> = Vec::new();
        let mut by_service: BTreeMap<usize, Vec<Span>> = BTreeMap::new();
        for i in 0..n {
            let id: [u8; 8] = g.bytes();
            let parent = if i == 0 {
                // Some roots point at a parent that is not in the trace.
                if g.below(10) == 0 {
                    g.bytes::<8>().to_vec()
                } else {
                    Vec::new()
                }
            } else {
                ids[g.below(i as u64) as usize].to_vec()
            };
            ids.push(id);
            let service = if i == 0 { 0 } else { g.below(5) as usize };
            let s_start = start + g.below(50_000_000);
            let mut attributes = vec![kv("http.request.method", s(["GET", "POST"][i % 2]))];
            match g.below(4) {
                0 => attributes.push(kv("http.response.status_code", Value::IntValue(200))),
                1 => attributes.push(kv("db.statement", s(&format!("SELECT {}", g.below(9))))),
                2 => attributes.push(kv("rpc.method", s("Charge"))),
                _ => attributes.push(kv("order.id", s(&format!("o-{}", g.below(1000))))),
            }
            attributes.push(kv("retry", Value::BoolValue(g.below(2) == 0)));
            attributes.push(kv("http.route", s("/api/{id}")));
            let status = match g.below(6) {
                0 => Some(Status {
                    message: "boom".into(),
                    code: 2,
                }),
                1 => Some(Status {
                    message: String::new(),
                    code: 1,
                }),
                2 => None,
                _ => Some(Status::default()),
            };
            let events = if g.below(3) == 0 {
                vec![Event {
                    time_unix_nano: s_start + 10,
                    name: "exception".into(),
                    attributes: vec![kv("exception.message", s("x"))],
                    dropped_attributes_count: 0,
                }]
            } else {
                Vec::new()
            };
            let links = if g.below(5) == 0 {
                vec![Link {
                    trace_id: g.bytes::<16>().to_vec(),
                    span_id: g.bytes::<8>().to_vec(),
                    trace_state: String::new(),
                    attributes: vec![kv("link.kind", s("follows"))],
                    dropped_attributes_count: 0,
                    flags: 0,
                }]
            } else {
                Vec::new()
            };
            by_service.entry(service).or_default().push(Span {
                trace_id: trace_id.to_vec(),
                span_id: id.to_vec(),
                parent_span_id: parent,
                name: format!("{} op{}", SERVICES[service], g.below(4)),
                kind: 1 + g.below(5) as i32,
                start_time_unix_nano: s_start,
                end_time_unix_nano: s_start + g.below(900_000_000),
                attributes,
                status,
                events,
                links,
                flags: 0x100,
                trace_state: if g.below(7) == 0 {
                    "k=v".into()
                } else {
                    String::new()
                },
                dropped_attributes_count: g.below(2) as u32,
                ..Default::default()
            });
        }
        for (service, spans) in by_service {
            out.push(ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            kv("service.name", s(SERVICES[service])),
                            kv("host.name", s(&format!("h{}", service % 2))),
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "lib".into(),
                            version: "1.0".into(),
                            ..Default::default()
                        }),
                        spans,
                        schema_url: String::new(),
                    }],
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                }],
            });
        }
    }
    out
}

fn ids_of(reqs: &[ExportTraceServiceRequest]) -> Vec<TraceId> {
    let mut ids: Vec<TraceId> = reqs
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.trace_id.as_slice().try_into().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn apply_all(store: &TraceStore, reqs: &[ExportTraceServiceRequest]) {
    for r in reqs {
        let mut r = r.clone();
        let rejected = store.sanitize(&mut r);
        assert_eq!(rejected.count, 0, "{:?}", rejected.message);
        store.apply(&r);
    }
}

/// A TraceQL search with Tempo's defaults: no window, 20 traces, 3 spans per spanset.
fn tql(q: &str) -> TraceqlSearch {
    TraceqlSearch {
        query: traceql::parse(q).unwrap(),
        start_ns: None,
        end_ns: None,
        min_duration_ns: None,
        max_duration_ns: None,
        limit: 20,
        spans_per_spanset: 3,
    }
}

/// Everything the query side answers, as comparable values.
#[derive(Debug, PartialEq)]
struct Answers {
    by_id: Vec<Option<Vec<u8>>>,
    services: Vec<String>,
    operations: Vec<Vec<Operation>>,
    jaeger: Vec<Vec<TraceId>>,
    traceql: Vec<Vec<SearchHit>>,
    dependencies: Vec<(String, String, u64)>,
    tag_names: String,
    tag_values: String,
}

const QUERIES: [&str; 6] = [
    r#"{ resource.service.name = "payment" && status = error }"#,
    r#"{ span.http.request.method = "POST" } >> { name =~ "cart.*" }"#,
    "{ duration > 500ms }",
    r#"{ span.db.statement = "SELECT 3" }"#,
    "{ } | count() > 4",
    r#"{ .order.id = "o-7" } | select(span.http.route)"#,
];

fn answers(store: &TraceStore, ids: &[TraceId]) -> Answers {
    let encode =
        |b: Vec<ResourceSpans>| -> Vec<u8> { b.iter().flat_map(|rs| rs.encode_to_vec()).collect() };
    let jaeger_queries = [
        TraceQuery {
            service: Some("payment".into()),
            ..TraceQuery::default()
        },
        TraceQuery {
            service: Some("cart".into()),
            operation: Some("cart op1".into()),
            limit: 5,
            ..TraceQuery::default()
        },
        TraceQuery {
            tags: vec![("error".into(), "true".into())],
            min_duration_ns: Some(300_000_000),
            limit: 1000,
            ..TraceQuery::default()
        },
        TraceQuery {
            tags: vec![("rpc.method".into(), "Charge".into())],
            start_ns: Some(BASE_NS + 100_000_000),
            end_ns: Some(BASE_NS + 900_000_000),
            ..TraceQuery::default()
        },
    ];
    let traceql = QUERIES
        .iter()
        .map(|q| {
            let search = tql(q);
            store.search_traceql(&search).0
        })
        .collect();
    let tag = TagRef::parse("span.http.request.method").unwrap();
    Answers {
        by_id: ids
            .iter()
            .map(|id| store.get(id, None).map(encode))
            .collect(),
        services: store.services(),
        operations: SERVICES.iter().map(|s| store.operations(s)).collect(),
        jaeger: jaeger_queries
            .iter()
            .map(|q| store.search(q).into_iter().map(|(id, _)| id).collect())
            .collect(),
        traceql,
        dependencies: store.dependencies(0, u64::MAX),
        tag_names: format!("{:?}", store.tag_names(&TagScope::ALL, None).0),
        tag_values: format!("{:?}", store.tag_values(&tag, None)),
    }
}

/// Asserts two answer sets are equal, naming the first field that differs (the values
/// are too long to print whole).
#[track_caller]
fn assert_same(got: &Answers, want: &Answers) {
    let differing: Vec<usize> = got
        .by_id
        .iter()
        .zip(&want.by_id)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i)
        .collect();
    assert!(
        differing.is_empty() && got.by_id.len() == want.by_id.len(),
        "{} traces differ by id, first at {:?}",
        differing.len(),
        differing.first()
    );
    assert_eq!(got.services, want.services);
    assert_eq!(got.operations, want.operations);
    assert_eq!(got.jaeger, want.jaeger, "jaeger searches");
    for (i, (a, b)) in got.traceql.iter().zip(&want.traceql).enumerate() {
        assert!(
            a == b,
            "TraceQL {} differs: {} vs {} hits",
            QUERIES[i],
            a.len(),
            b.len()
        );
    }
    assert_eq!(got.dependencies, want.dependencies);
    assert_eq!(got.tag_names, want.tag_names);
    assert_eq!(got.tag_values, want.tag_values);
}

/// Small pages, so a debug build's lookups by id stay quick and blocks have many pages.
fn opts() -> BlockOptions {
    BlockOptions {
        page_bytes: 64 << 10,
        ..BlockOptions::default()
    }
}

fn block_store(dir: &std::path::Path) -> pharos_storage::BlockStore {
    pharos_storage::BlockStore::local(dir).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn flushed_traces_answer_every_query_as_the_head_did() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    // Enough spans for several pages.
    let reqs = requests(&mut g, 1500, BASE_NS);
    let ids = ids_of(&reqs);
    let store = TraceStore::new();
    apply_all(&store, &reqs);
    let before = answers(&store, &ids);
    assert!(before.by_id.iter().all(Option::is_some));
    assert!(
        before.jaeger.iter().all(|h| !h.is_empty()),
        "{:?}",
        before.jaeger
    );
    assert!(before.traceql.iter().all(|h| !h.is_empty()));

    rt.block_on(store.open_blocks(block_store(dir.path()), opts()))
        .unwrap();
    let spans = store.freeze();
    assert!(spans > 8_000, "{spans}");
    assert_eq!(store.trace_count(), 0, "the head is empty after a freeze");
    // Frozen parts answer as the head did.
    assert_same(&answers(&store, &ids), &before);
    let flushed = rt.block_on(store.flush_frozen()).unwrap();
    assert_eq!(flushed.blocks, 1);
    assert_eq!(flushed.spans, spans);
    let pages = store.blocks.read()[0].pages().len();
    assert!(pages >= 10, "{pages} pages");
    assert_same(&answers(&store, &ids), &before);

    // A fresh store over the same directory serves the same answers.
    let reopened = TraceStore::new();
    let report = rt
        .block_on(reopened.open_blocks(block_store(dir.path()), opts()))
        .unwrap();
    assert_eq!(report.blocks, 1);
    assert_eq!(report.spans, spans);
    assert_same(&answers(&reopened, &ids), &before);
}

#[test]
fn fragments_of_a_trace_join_across_blocks_and_compaction_merges_them() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gen(42);
    let reqs = requests(&mut g, 300, BASE_NS);
    let ids = ids_of(&reqs);
    let reference = TraceStore::new();
    apply_all(&reference, &reqs);
    let want = answers(&reference, &ids);

    let opts = BlockOptions {
        max_window_blocks: 3,
        ..opts()
    };
    let store = TraceStore::new();
    rt.block_on(store.open_blocks(block_store(dir.path()), opts))
        .unwrap();
    // Three flushes: the fragments of most traces land in different blocks; the last
    // third also repeats the first request (a replay after a crash), whose spans must
    // not show twice.
    let third = reqs.len() / 3;
    for (i, chunk) in [&reqs[..third], &reqs[third..2 * third], &reqs[2 * third..]]
        .into_iter()
        .enumerate()
    {
        apply_all(&store, chunk);
        if i == 2 {
            store.apply(&reqs[0]);
        }
        store.freeze();
        rt.block_on(store.flush_frozen()).unwrap();
    }
    assert_eq!(store.block_stats().0, 3);
    let mut got = answers(&store, &ids);
    // Fragment-wise search sees a trace's spans per block; compare by-id answers, the
    // lists and the Jaeger searches (which return whole traces) here, the rest below.
    assert_eq!(got.by_id, want.by_id);
    assert_eq!(got.services, want.services);
    assert_eq!(got.operations, want.operations);

    let report = rt.block_on(store.maintain()).unwrap();
    assert_eq!(report.compacted, 3);
    assert_eq!(report.created, 1);
    let blocks = store.blocks.read().clone();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].meta().compaction.level, 2);
    assert_eq!(blocks[0].meta().compaction.parents.len(), 3);
    assert_eq!(blocks[0].meta().traces as usize, ids.len());
    got = answers(&store, &ids);
    assert_same(&got, &want);
    let on_disk = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(on_disk, 1, "parents deleted");
}

#[test]
fn retention_drops_blocks_whose_spans_ended_long_ago() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gen(7);
    let store = TraceStore::new();
    rt.block_on(store.open_blocks(block_store(dir.path()), opts()))
        .unwrap();
    // 2023: past the 14 days. Then a recent block.
    let old = requests(&mut g, 20, 1_700_000_000_000_000_000);
    apply_all(&store, &old);
    store.freeze();
    rt.block_on(store.flush_frozen()).unwrap();
    let recent = requests(&mut g, 20, BASE_NS);
    apply_all(&store, &recent);
    store.freeze();
    rt.block_on(store.flush_frozen()).unwrap();
    let report = rt.block_on(store.maintain()).unwrap();
    assert_eq!(report.dropped, 1);
    assert_eq!(store.block_stats().0, 1);
    assert!(store.get(&ids_of(&old)[0], None).is_none());
    assert!(store.get(&ids_of(&recent)[0], None).is_some());
}

#[test]
fn pages_are_pruned_by_their_summaries() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gen(99);
    let store = TraceStore::new();
    rt.block_on(store.open_blocks(block_store(dir.path()), opts()))
        .unwrap();
    apply_all(&store, &requests(&mut g, 3000, BASE_NS));
    store.freeze();
    rt.block_on(store.flush_frozen()).unwrap();
    let block = store.blocks.read()[0].clone();
    let read = || block.pages_read();
    let before = read();
    let none = store.search(&TraceQuery {
        service: Some("no-such-service".into()),
        ..TraceQuery::default()
    });
    assert!(none.is_empty());
    assert_eq!(read(), before, "no page names the service");
    let none = store.search(&TraceQuery {
        min_duration_ns: Some(10_000_000_000),
        ..TraceQuery::default()
    });
    assert!(none.is_empty());
    assert_eq!(read(), before, "no page has a span that long");
    for q in [
        r#"{ resource.service.name = "no-such-service" }"#,
        r#"{ span.http.request.method = "PATCH" } >> { }"#,
        "{ duration > 10s } || { kind = unspecified }",
        r#"{ name = "cart op1" } && { status = error && span.rpc.method = "Refund" }"#,
    ] {
        let search = tql(q);
        assert!(store.search_traceql(&search).0.is_empty(), "{q}");
        assert_eq!(read(), before, "{q}: pages read");
    }
    // A query the summaries cannot rule out reads pages.
    let search = tql(r#"{ span.rpc.method = "Charge" }"#);
    assert!(!store.search_traceql(&search).0.is_empty());
    assert!(read() > before);
    let before = read();
    // A lookup by id reads one page; one that is not there reads at most one.
    let id = ids_of(&requests(&mut Gen(99), 3000, BASE_NS))[1234];
    assert!(store.get(&id, None).is_some());
    assert_eq!(read(), before + 1);
    let absent = [0x55; 16];
    assert!(store.get(&absent, None).is_none());
    assert!(read() <= before + 2);
}

#[test]
fn corrupt_blocks_are_refused_not_served_wrong() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gen(5);
    let store = TraceStore::new();
    rt.block_on(store.open_blocks(block_store(dir.path()), opts()))
        .unwrap();
    let reqs = requests(&mut g, 50, BASE_NS);
    apply_all(&store, &reqs);
    store.freeze();
    rt.block_on(store.flush_frozen()).unwrap();
    let ulid = store.blocks.read()[0].meta().ulid.clone();
    let block_dir = dir.path().join(&ulid);

    // A flipped byte in a page: the block loads, the page does not read.
    let data_path = block_dir.join(block::DATA_FILE);
    let mut data = std::fs::read(&data_path).unwrap();
    data[20] ^= 0x40;
    std::fs::write(&data_path, &data).unwrap();
    let reopened = TraceStore::new();
    rt.block_on(reopened.open_blocks(block_store(dir.path()), opts()))
        .unwrap();
    let b = reopened.blocks.read()[0].clone();
    let err = b
        .read_page(0)
        .err()
        .expect("the page is corrupt")
        .to_string();
    assert!(err.contains("checksum"), "{err}");

    // A truncated index: the block is reported unreadable and not served.
    let index_path = block_dir.join(block::INDEX_FILE);
    let index = std::fs::read(&index_path).unwrap();
    std::fs::write(&index_path, &index[..index.len() / 2]).unwrap();
    let reopened = TraceStore::new();
    let report = rt
        .block_on(reopened.open_blocks(block_store(dir.path()), opts()))
        .unwrap();
    assert_eq!(report.unreadable, vec![ulid]);
    assert_eq!(reopened.block_stats().0, 0);

    // A block without meta.json (a crash mid-write) is deleted on open.
    std::fs::remove_file(block_dir.join(block::META_FILE)).unwrap();
    let reopened = TraceStore::new();
    let report = rt
        .block_on(reopened.open_blocks(block_store(dir.path()), opts()))
        .unwrap();
    assert_eq!(report.incomplete_removed, 1);
    assert!(!block_dir.exists());
}

#[test]
fn newest_first_search_stops_at_blocks_that_cannot_add_a_hit() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::new();
    rt.block_on(store.open_blocks(block_store(dir.path()), opts()))
        .unwrap();
    let mut g = Gen(11);
    // Four blocks, an hour apart, oldest first.
    let mut all = Vec::new();
    for hour in 0..4u64 {
        let reqs = requests(&mut g, 200, BASE_NS + hour * 3_600_000_000_000);
        apply_all(&store, &reqs);
        store.freeze();
        rt.block_on(store.flush_frozen()).unwrap();
        all.extend(reqs);
    }
    let reference = TraceStore::new();
    apply_all(&reference, &all);
    let q = TraceQuery {
        service: Some("frontend".into()),
        limit: 20,
        ..TraceQuery::default()
    };
    let ids = |hits: Vec<(TraceId, Vec<ResourceSpans>)>| -> Vec<TraceId> {
        hits.into_iter().map(|(id, _)| id).collect()
    };
    let oldest = store.blocks.read().last().unwrap().clone();
    let before = oldest.pages_read();
    assert_eq!(ids(store.search(&q)), ids(reference.search(&q)));
    assert_eq!(oldest.pages_read(), before, "the oldest block was not read");
}

/// Spans the version-2 page encoding has to take apart and put back exactly: parents that
/// loop or point at themselves, a child listed (and starting) before its parent, spans
/// ending before they start, and attributes of every kind: empty keys, no value, a key
/// by reference, non-string values between string ones.
fn awkward_request() -> ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    let trace_id = [7u8; 16];
    let span = |id: u8, parent: Option<u8>, start: u64, end: u64| Span {
        trace_id: trace_id.to_vec(),
        span_id: [id; 8].to_vec(),
        parent_span_id: parent.map_or(Vec::new(), |p| [p; 8].to_vec()),
        name: format!("op {}", id % 3),
        kind: i32::from(id % 6),
        start_time_unix_nano: BASE_NS + start,
        end_time_unix_nano: BASE_NS + end,
        ..Default::default()
    };
    let value = |v: Value| Some(AnyValue { value: Some(v) });
    let mut spans = vec![
        // A child before its parent, starting before it (clock skew).
        span(2, Some(1), 500, 9_000),
        span(1, None, 1_000, 10_000),
        // Parents that loop: 3 -> 4 -> 3; 5 is its own parent; 6 hangs off the loop.
        span(3, Some(4), 2_000, 3_000),
        span(4, Some(3), 2_500, 2_600),
        span(5, Some(5), 4_000, 4_100),
        span(6, Some(3), 2_100, 2_200),
        // Ends before it starts; a parent from another fragment.
        span(8, Some(9), 7_000, 6_000),
        // More children of 1, for version 4's times from siblings: one after 2, one that
        // starts before it ends (in parallel), one that ends after its parent, and a
        // grandchild whose parent has a later sibling.
        span(10, Some(1), 9_100, 9_300),
        span(11, Some(1), 9_200, 9_250),
        span(12, Some(1), 9_900, 12_000),
        span(13, Some(10), 9_150, 9_160),
    ];
    spans[1].attributes = vec![
        kv("http.request.method", s("GET")),
        KeyValue {
            key: "http.response.status_code".into(),
            value: value(Value::IntValue(200)),
            ..Default::default()
        },
        kv("", s("empty key")),
        KeyValue {
            key: String::new(),
            value: value(Value::BoolValue(true)),
            ..Default::default()
        },
        KeyValue {
            key: "no.value".into(),
            value: None,
            ..Default::default()
        },
        KeyValue {
            key: "by.reference".into(),
            value: value(Value::StringValue("x".into())),
            key_strindex: 3,
        },
        kv("app.user.id", s("u-1")),
    ];
    // The same keys again, with values seen before (by the same and by another name).
    spans[2].attributes = vec![
        kv("app.user.id", s("u-1")),
        kv("http.request.method", s("GET")),
    ];
    spans[3].attributes = vec![
        kv("app.user.id", s("u-2")),
        kv("http.request.method", s("GET")),
    ];
    spans[4].attributes = vec![kv("app.user.id", s("u-1")), kv("app.user.id", s("u-2"))];
    // Version 4 stores a stream of only IPv4 addresses, or only lowercase hex, as bytes;
    // one odd value keeps a stream as text.
    spans[7].attributes = vec![
        kv("client.address", s("10.0.0.1")),
        kv("net.peer.ip", s("1.2.3.4")),
        kv("app.session.id", s("00ff")),
        kv("app.request.id", s("abcd")),
    ];
    spans[8].attributes = vec![
        kv("client.address", s("0.0.0.0")),
        kv("net.peer.ip", s("01.2.3.4")),
        kv("app.session.id", s("0123456789abcdef")),
        kv("app.request.id", s("ABCD")),
    ];
    spans[9].attributes = vec![
        kv("client.address", s("255.255.255.255")),
        kv("net.peer.ip", s("1.2.3.256")),
        kv("app.session.id", s("00ff")),
        kv("app.request.id", s("abc")),
    ];
    // Events after, before and without a time, and one at the end of time: version 3
    // stores each time from the span's start, wrapping.
    spans[5].events = [BASE_NS + 2_150, 0, 1, u64::MAX, BASE_NS - 5]
        .into_iter()
        .map(|time_unix_nano| Event {
            time_unix_nano,
            name: "e".into(),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("frontend"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Traces as services make them: a server span per service called, each making its calls
/// one after another (client span, then the callee's server span inside it), with
/// nanosecond jitter everywhere, a client address and a hex session id per trace.
fn sequential_requests(g: &mut Gen, traces: usize) -> Vec<ExportTraceServiceRequest> {
    let mut spans = Vec::new();
    for t in 0..traces {
        let trace_id: [u8; 16] = g.bytes();
        let root_start = BASE_NS + t as u64 * 5_000_000 + g.below(1_000_000);
        let address = format!("10.{}.{}.{}", g.below(4), g.below(256), 1 + g.below(254));
        let session = format!("{:016x}", g.next());
        let mut new_span = |g: &mut Gen, name: String, parent: Vec<u8>, start: u64, end: u64| {
            let id: [u8; 8] = g.bytes();
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: id.to_vec(),
                parent_span_id: parent,
                name,
                kind: 2,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes: vec![
                    kv("client.address", s(&address)),
                    kv("app.session.id", s(&session)),
                ],
                ..Default::default()
            });
            id.to_vec()
        };
        // The root's calls, sequential: each starts a little after the previous ends.
        let calls = 2 + g.below(5);
        let mut at = root_start + 20_000 + g.below(5_000);
        let mut children = Vec::new();
        for c in 0..calls {
            let end = at + 100_000 + g.below(400_000);
            children.push((c, at, end));
            at = end + 10_000 + g.below(5_000);
        }
        let root_end = at + 15_000 + g.below(5_000);
        let root = new_span(g, "GET /".into(), Vec::new(), root_start, root_end);
        for (c, start, end) in children {
            let client = new_span(g, format!("call {c}"), root.clone(), start, end);
            let net = 30_000 + g.below(10_000);
            new_span(g, format!("serve {c}"), client, start + net, end - net);
        }
    }
    vec![common_request("frontend", spans)]
}

fn common_request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(service))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn version_4_is_smaller_on_traces_of_sequential_calls() {
    let reqs = sequential_requests(&mut Gen(5), 2_000);
    let head = TraceStore::new();
    apply_all(&head, &reqs);
    let ids = ids_of(&reqs);
    let size = |version: u8| {
        let mut w = block::BlockWriter::with_version(block::DEFAULT_PAGE_BYTES, version);
        for id in &ids {
            w.push(id, &head.trace(id).unwrap());
        }
        let enc = w.finish(
            pharos_storage::new_block_id(),
            block::Compaction {
                level: 1,
                parents: Vec::new(),
            },
        );
        // And it reads back the same, byte for byte.
        let b = block::TraceBlock::open(enc.meta, &enc.index, enc.data.clone()).unwrap();
        for p in 0..b.pages().len() {
            for (id, t) in b.read_page(p).unwrap() {
                let enc = |rs: Vec<ResourceSpans>| -> Vec<Vec<u8>> {
                    rs.iter().map(|r| r.encode_to_vec()).collect()
                };
                assert_eq!(
                    enc(t.to_resource_spans()),
                    enc(head.trace(&id).unwrap().to_resource_spans())
                );
            }
        }
        enc.data.len()
    };
    let (v3, v4) = (size(3), size(4));
    assert!(
        (v4 as f64) < 0.97 * v3 as f64,
        "version 4 takes at least 3% off version 3 here: {v3} -> {v4}"
    );
}

#[test]
fn older_versions_still_read_and_each_version_rebuilds_every_span_exactly() {
    let mut reqs = requests(&mut Gen(77), 400, BASE_NS);
    reqs.push(awkward_request());
    let head = TraceStore::new();
    apply_all(&head, &reqs);
    let ids = ids_of(&reqs);
    let mut sizes = Vec::new();
    let write = |page_bytes: u64, version: u8| {
        let mut w = block::BlockWriter::with_version(page_bytes, version);
        for id in &ids {
            w.push(id, &head.trace(id).unwrap());
        }
        w.finish(
            pharos_storage::new_block_id(),
            block::Compaction {
                level: 1,
                parents: Vec::new(),
            },
        )
    };
    for version in 1..=5 {
        // Sizes are compared at the default page size (one page here); small pages show
        // every reader path.
        sizes.push(write(block::DEFAULT_PAGE_BYTES, version).data.len());
        let enc = write(64 << 10, version);
        assert_eq!(enc.meta.version, version);
        let b = block::TraceBlock::open(enc.meta, &enc.index, enc.data).unwrap();
        assert!(b.pages().len() > 3, "several pages");
        let mut read = 0;
        for p in 0..b.pages().len() {
            // The ids a merge reads from the start of the frame alone.
            let low: Vec<u64> = b
                .read_page(p)
                .unwrap()
                .iter()
                .map(|(id, _)| u64::from_be_bytes(id[8..].try_into().unwrap()))
                .collect();
            assert_eq!(b.page_trace_ids_low(p).unwrap(), low, "version {version}");
            for (id, t) in b.read_page(p).unwrap() {
                let want = head.trace(&id).unwrap().to_resource_spans();
                // Byte for byte, as protobuf.
                let enc = |rs: Vec<ResourceSpans>| -> Vec<Vec<u8>> {
                    rs.iter().map(|r| r.encode_to_vec()).collect()
                };
                assert_eq!(enc(t.to_resource_spans()), enc(want), "version {version}");
                read += 1;
            }
        }
        assert_eq!(read, ids.len());
        // By id, too.
        let awkward = [7u8; 16];
        let t = b.find(&awkward).unwrap().unwrap();
        assert_eq!(t.spans.len(), 11);
    }
    assert!(
        sizes[2] < sizes[1] && sizes[1] < sizes[0],
        "each version is smaller than the one before: {sizes:?}"
    );
}

/// Writes the head's traces with `push_head` (in place) or `push` (decoded first).
fn write_head(head: &TraceStore, ids: &[TraceId], in_place: bool) -> block::EncodedBlock {
    let mut w = block::BlockWriter::new(64 << 10);
    let inner = head.inner.read();
    for id in ids {
        if in_place {
            w.push_head(id, &inner.traces[id]);
        } else {
            w.push(id, &inner.traces[id].materialize());
        }
    }
    w.finish(
        "block".into(),
        block::Compaction {
            level: 1,
            parents: Vec::new(),
        },
    )
}

#[test]
fn spans_written_in_place_make_the_pages_their_decoded_spans_make() {
    let mut reqs = requests(&mut Gen(78), 400, BASE_NS);
    reqs.push(awkward_request());
    reqs.extend(sequential_requests(&mut Gen(6), 200));
    let head = TraceStore::new();
    apply_all(&head, &reqs);
    let ids = ids_of(&reqs);
    let in_place = write_head(&head, &ids, true);
    let decoded = write_head(&head, &ids, false);
    assert!(in_place.meta.spans > 4_000, "{}", in_place.meta.spans);
    assert_eq!(in_place.data, decoded.data);
    assert_eq!(in_place.index, decoded.index);
}

#[test]
fn the_page_writer_writes_what_the_column_encoder_writes() {
    // The writer builds version-4 pages directly; `wire::encode` builds them from a
    // page's columns. Decoding a written page and encoding its columns again must give
    // the same bytes: every reference, value order, shape and op is the one the column
    // encoder chooses.
    let mut reqs = requests(&mut Gen(79), 400, BASE_NS);
    reqs.push(awkward_request());
    reqs.extend(sequential_requests(&mut Gen(7), 200));
    // Spans of one op giving a key twice, with values that repeat in every pattern the
    // references tell apart.
    let mut g = Gen(8);
    let dup = (0..300u64)
        .map(|i| {
            let (a, b) = (g.below(3), g.below(3));
            Span {
                trace_id: [0xd0 + (i % 5) as u8; 16].to_vec(),
                span_id: g.bytes::<8>().to_vec(),
                name: "twice".into(),
                start_time_unix_nano: BASE_NS + i,
                end_time_unix_nano: BASE_NS + i + 10,
                attributes: vec![
                    kv("dup", s(&format!("v{a}"))),
                    kv("other", s(&format!("w{}", g.below(2)))),
                    kv("dup", s(&format!("v{b}"))),
                ],
                ..Default::default()
            }
        })
        .collect();
    reqs.push(common_request("twice", dup));
    let head = TraceStore::new();
    apply_all(&head, &reqs);
    let ids = ids_of(&reqs);
    for in_place in [true, false] {
        let enc = write_head(&head, &ids, in_place);
        let b = block::TraceBlock::open(enc.meta, &enc.index, enc.data).unwrap();
        assert!(b.pages().len() > 3, "several pages");
        for p in 0..b.pages().len() {
            let raw = b.raw_page(p);
            assert!(
                block::page_as_version(raw.clone(), 4) == raw,
                "page {p} (in place: {in_place}) differs"
            );
        }
    }
}

/// Length-delimited field `n`.
fn field(n: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(n, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

#[test]
fn spans_encoded_unlike_prost_read_back_as_prost_reads_them() {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    let value = |v: &str| {
        Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        })
    };
    let span = Span {
        trace_id: vec![3; 16],
        span_id: vec![4; 8],
        name: "GET /".into(),
        trace_state: "a=1".into(),
        start_time_unix_nano: BASE_NS + 10,
        end_time_unix_nano: BASE_NS + 5,
        attributes: vec![kv("http.route", s("/")), kv("n", s("1"))],
        events: vec![Event {
            name: "e".into(),
            ..Default::default()
        }],
        flags: 1,
        status: Some(Status {
            message: "m".into(),
            code: 1,
        }),
        ..Default::default()
    };
    let mut raw = span.encode_to_vec();
    // Fields out of order and given twice: an attribute (a column's) after the events, a
    // trace state emptied, a status merged with a second one, flags and an end set again,
    // an unknown field.
    raw.extend(field(
        9,
        &KeyValue {
            key: "http.method".into(),
            value: value("GET"),
            key_strindex: 0,
        }
        .encode_to_vec(),
    ));
    raw.extend(field(3, b""));
    raw.extend(field(
        15,
        &Status {
            message: String::new(),
            code: 2,
        }
        .encode_to_vec(),
    ));
    prost::encoding::fixed32::encode(16, &0, &mut raw);
    prost::encoding::fixed64::encode(8, &(BASE_NS + 3), &mut raw);
    raw.extend(field(99, b"x"));
    raw.extend(field(9, &kv("late", s("z")).encode_to_vec()));
    // Attributes the page keeps whole (not strings): one whose key follows its value, one
    // whose key is given twice (the last counts).
    let int = kv("count", Value::IntValue(7));
    let mut key_last = int.value.clone().unwrap().encode_to_vec();
    key_last = [field(2, &key_last), field(1, b"count")].concat();
    raw.extend(field(9, &key_last));
    let mut twice = field(1, b"first");
    twice.extend(field(2, &int.value.clone().unwrap().encode_to_vec()));
    twice.extend(field(1, b"second"));
    raw.extend(field(9, &twice));
    let resource = Resource {
        attributes: vec![kv("service.name", s("odd"))],
        ..Default::default()
    };
    let request = field(
        1,
        &[
            field(1, &resource.encode_to_vec()),
            field(2, &field(2, &raw)),
        ]
        .concat(),
    );
    let batch = pharos_model::trace_batch::TraceBatch::parse(request.into()).unwrap();
    let want = batch.decode().resource_spans[0].scope_spans[0].spans[0].clone();
    assert_eq!(want.trace_state, "");
    assert_eq!(want.status.as_ref().unwrap().code, 2);
    assert_eq!(want.flags, 0);
    assert_eq!(want.attributes.len(), 6);
    assert_eq!(want.attributes[4].key, "count");
    assert_eq!(want.attributes[5].key, "second");

    let head = TraceStore::new();
    assert_eq!(head.sanitize(&mut batch.clone()).count, 0);
    head.apply(&batch);
    let block = write_head(&head, &[[3; 16]], true);
    let b = block::TraceBlock::open(block.meta, &block.index, block.data).unwrap();
    let t = b.find(&[3; 16]).unwrap().unwrap();
    assert_eq!(t.spans.len(), 1);
    assert_eq!(t.spans[0].span, want);
}

/// Re-encodes a message with its fields in another order (fields of one number keep
/// theirs, as repeated fields must), attributes' `KeyValue`s too: bytes prost reads as
/// the same message, but not as prost writes it.
fn scramble(message: &[u8], g: &mut Gen, attributes: u32) -> Vec<u8> {
    use pharos_model::view;
    let mut rank: BTreeMap<u32, u64> = BTreeMap::new();
    let mut fields: Vec<(u64, usize, Vec<u8>)> = Vec::new();
    for (i, f) in view::fields(message).enumerate() {
        let r = *rank.entry(f.number).or_insert_with(|| g.below(1000));
        let bytes = if f.number == attributes {
            field(attributes, &scramble(f.payload, g, 0))
        } else {
            f.raw.to_vec()
        };
        fields.push((r, i, bytes));
    }
    fields.sort();
    fields.into_iter().flat_map(|(_, _, b)| b).collect()
}

#[test]
fn spans_in_any_field_order_read_back_as_prost_reads_them() {
    let mut g = Gen(91);
    let mut reqs = requests(&mut g, 300, BASE_NS);
    reqs.push(awkward_request());
    let head = TraceStore::new();
    let mut scrambled = 0;
    for req in &reqs {
        let mut bytes = Vec::new();
        for rs in &req.resource_spans {
            let mut rs_bytes = ResourceSpans {
                scope_spans: Vec::new(),
                ..rs.clone()
            }
            .encode_to_vec();
            for ss in &rs.scope_spans {
                let mut ss_bytes = ScopeSpans {
                    spans: Vec::new(),
                    ..ss.clone()
                }
                .encode_to_vec();
                for span in &ss.spans {
                    let raw = span.encode_to_vec();
                    let odd = scramble(&raw, &mut g, 9);
                    scrambled += usize::from(odd != raw);
                    ss_bytes.extend(field(2, &odd));
                }
                rs_bytes.extend(field(2, &ss_bytes));
            }
            bytes.extend(field(1, &rs_bytes));
        }
        let batch = pharos_model::trace_batch::TraceBatch::parse(bytes.into()).unwrap();
        assert_eq!(
            Store::<pharos_model::trace_batch::TraceBatch>::sanitize(&head, &mut batch.clone())
                .count,
            0
        );
        head.apply(&batch);
    }
    assert!(scrambled > 1_000, "{scrambled}");
    let ids = ids_of(&reqs);
    let block = write_head(&head, &ids, true);
    let b = block::TraceBlock::open(block.meta, &block.index, block.data).unwrap();
    let enc =
        |rs: Vec<ResourceSpans>| -> Vec<Vec<u8>> { rs.iter().map(|r| r.encode_to_vec()).collect() };
    let mut read = 0;
    for p in 0..b.pages().len() {
        for (id, t) in b.read_page(p).unwrap() {
            let want = head.trace(&id).unwrap().to_resource_spans();
            assert_eq!(enc(t.to_resource_spans()), enc(want));
            read += 1;
        }
    }
    assert_eq!(read, ids.len());
}

#[test]
fn merging_copies_columns_into_the_pages_rebuilt_traces_make() {
    let mut reqs = requests(&mut Gen(33), 600, BASE_NS);
    reqs.push(awkward_request());
    reqs.extend(sequential_requests(&mut Gen(8), 100));
    // One request per trace fragment: spread over three blocks, many traces are split.
    // The merge's pages must be those of rebuilding every trace, whatever the parents'
    // versions.
    let heads: Vec<TraceStore> = (0..3).map(|_| TraceStore::new()).collect();
    for (i, r) in reqs.iter().enumerate() {
        apply_all(&heads[i % 3], std::slice::from_ref(r));
    }
    // Traces only the version-1 and the version-4 parent hold, with ids above the others',
    // so some of their pages hold no split trace.
    for (h, prefix) in [(0, 0xfe), (2, 0xff)] {
        let mut own = requests(&mut Gen(34 + h as u64), 600, BASE_NS);
        for s in own
            .iter_mut()
            .flat_map(|r| &mut r.resource_spans)
            .flat_map(|rs| &mut rs.scope_spans)
            .flat_map(|ss| &mut ss.spans)
        {
            s.trace_id[..2].copy_from_slice(&[prefix, 0xff]);
        }
        apply_all(&heads[h], &own);
    }
    let page_bytes = 64 << 10;
    let blocks: Vec<std::sync::Arc<block::TraceBlock>> = heads
        .iter()
        .enumerate()
        .map(|(i, head)| {
            let inner = head.inner.read();
            let mut ids: Vec<&TraceId> = inner.traces.keys().collect();
            ids.sort();
            // Parents of versions 1 (attributes kept in the rests), 2 and 4.
            let mut w = block::BlockWriter::with_version(page_bytes, [1, 2, 4][i]);
            for id in ids {
                w.push_head(id, &inner.traces[id]);
            }
            let enc = w.finish(
                format!("b{i}"),
                block::Compaction {
                    level: 1,
                    parents: Vec::new(),
                },
            );
            std::sync::Arc::new(block::TraceBlock::open(enc.meta, &enc.index, enc.data).unwrap())
        })
        .collect();
    let merged = engine::merge(&blocks, 2, Vec::new(), page_bytes, engine::Relink::Never)
        .unwrap()
        .0;

    // The same merge, every trace rebuilt and its fragments joined.
    let mut all: BTreeMap<TraceId, Trace> = BTreeMap::new();
    let mut fragments = 0;
    for b in &blocks {
        for p in 0..b.pages().len() {
            for (id, t) in b.read_page(p).unwrap() {
                match all.get_mut(&id) {
                    Some(acc) => {
                        fragments += 1;
                        acc.absorb(t);
                    }
                    None => {
                        all.insert(id, t);
                    }
                }
            }
        }
    }
    assert!(fragments > 100, "{fragments}");
    let mut w = block::BlockWriter::new(page_bytes);
    for (id, t) in &all {
        w.push(id, t);
    }
    let rebuilt = w.finish(
        "r".into(),
        block::Compaction {
            level: 2,
            parents: Vec::new(),
        },
    );
    assert!(merged.data.len() > 100_000 && merged.meta.spans > 4_000);
    assert_eq!(merged.meta.spans, rebuilt.meta.spans);
    assert_eq!(merged.data, rebuilt.data);
    assert_eq!(merged.index, rebuilt.index);

    // Copying what it can from the same parents: only the version-4 parent's pages may be
    // copied (the others' pages are of older page versions), and every trace reads back
    // joined.
    let relinked = open_encoded(
        engine::merge(&blocks, 2, Vec::new(), page_bytes, engine::Relink::Pages)
            .unwrap()
            .0,
    );
    let copied = check_merged(&relinked, &blocks);
    let v4_pages: std::collections::HashSet<Vec<u8>> = (0..blocks[2].pages().len())
        .map(|p| blocks[2].raw_page(p))
        .collect();
    let from_v4 = (0..relinked.pages().len())
        .filter(|&p| v4_pages.contains(&relinked.raw_page(p)))
        .count();
    assert_eq!(copied, from_v4, "only version-4 pages are copied");
    assert!(copied > 0);
}

#[test]
fn a_head_trace_shows_searches_the_columns_its_page_shows() {
    use super::scan::Columns;
    let mut reqs = requests(&mut Gen(52), 300, BASE_NS);
    reqs.push(awkward_request());
    let head = TraceStore::new();
    apply_all(&head, &reqs);
    let keys: std::collections::BTreeSet<String> = reqs
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .flat_map(|s| s.attributes.iter().map(|kv| kv.key.clone()))
        .chain(["absent".to_string()])
        .collect();
    assert!(keys.len() > 5, "{keys:?}");
    let ids = ids_of(&reqs);
    let block = write_head(&head, &ids, true);
    let b = block::TraceBlock::open(block.meta, &block.index, block.data).unwrap();
    let inner = head.inner.read();
    let (mut spans, mut attrs) = (0, 0);
    for p in 0..b.pages().len() {
        let rows = b.read_rows(p).unwrap();
        for t in 0..rows.traces() {
            let id: TraceId = rows.trace_id(t).try_into().unwrap();
            let trace = &inner.traces[&id];
            let h = super::head::HeadRows(trace);
            let page_spans = Columns::spans(&rows, t);
            assert_eq!(h.spans(0).len(), page_spans.len());
            for (k, pk) in h.spans(0).zip(page_spans) {
                assert_eq!(h.service(k), Columns::service(&rows, pk));
                assert_eq!(h.name(k), Columns::name(&rows, pk));
                assert_eq!(h.kind(k), Columns::kind(&rows, pk));
                assert_eq!(h.status(k), Columns::status(&rows, pk));
                assert_eq!(h.duration(k), Columns::duration(&rows, pk));
                assert_eq!(h.start(0, k), Columns::start(&rows, t, pk));
                for key in &keys {
                    let got = h.attr(k, key);
                    assert_eq!(got, Columns::attr(&rows, pk, key), "{key}");
                    attrs += usize::from(got.is_some());
                }
                spans += 1;
            }
        }
    }
    assert!(spans > 1_000 && attrs > 1_000, "{spans} {attrs}");
}

/// A trace as comparable data: times, bytes, and each span with its resource and scope.
type Canon = (
    u64,
    u64,
    u64,
    Vec<(
        Option<opentelemetry_proto::tonic::resource::v1::Resource>,
        Option<opentelemetry_proto::tonic::common::v1::InstrumentationScope>,
        Span,
    )>,
);

fn canon(t: &Trace) -> Canon {
    (
        t.start_ns,
        t.end_ns,
        t.bytes,
        t.spans
            .iter()
            .map(|s| {
                (
                    s.resource.resource.clone(),
                    s.scope.scope.clone(),
                    s.span.clone(),
                )
            })
            .collect(),
    )
}

/// Every trace of `blocks` (oldest first), its fragments joined as a merge joins them.
fn joined(blocks: &[std::sync::Arc<block::TraceBlock>]) -> BTreeMap<TraceId, Trace> {
    let mut all: BTreeMap<TraceId, Trace> = BTreeMap::new();
    let mut blocks = blocks.to_vec();
    blocks.sort_by(|a, b| a.meta().ulid.cmp(&b.meta().ulid));
    for b in &blocks {
        for p in 0..b.pages().len() {
            for (id, t) in b.read_page(p).unwrap() {
                match all.get_mut(&id) {
                    Some(acc) => acc.absorb(t),
                    None => {
                        all.insert(id, t);
                    }
                }
            }
        }
    }
    all
}

fn open_encoded(enc: block::EncodedBlock) -> std::sync::Arc<block::TraceBlock> {
    std::sync::Arc::new(block::TraceBlock::open(enc.meta, &enc.index, enc.data).unwrap())
}

/// Checks that `merged` holds each trace of `parents` once, joined, in one page, and
/// that a lookup by id finds each; returns how many of its pages are byte for byte a
/// page of a parent.
fn check_merged(
    merged: &block::TraceBlock,
    parents: &[std::sync::Arc<block::TraceBlock>],
) -> usize {
    let want = joined(parents);
    let mut seen = std::collections::BTreeSet::new();
    for p in 0..merged.pages().len() {
        for (id, t) in merged.read_page(p).unwrap() {
            assert!(seen.insert(id), "trace {id:02x?} in two pages");
            assert!(canon(&t) == canon(&want[&id]), "trace {id:02x?} as read");
        }
    }
    assert_eq!(seen.len(), want.len());
    assert_eq!(merged.meta().traces as usize, want.len());
    let spans: usize = want.values().map(|t| t.spans.len()).sum();
    assert_eq!(merged.meta().spans as usize, spans);
    for (id, t) in &want {
        let found = merged.find(id).unwrap().expect("found by id");
        assert!(canon(&found) == canon(t), "trace {id:02x?} by id");
    }
    let parent_pages: std::collections::HashSet<Vec<u8>> = parents
        .iter()
        .flat_map(|b| (0..b.pages().len()).map(|p| b.raw_page(p)))
        .collect();
    (0..merged.pages().len())
        .filter(|&p| parent_pages.contains(&merged.raw_page(p)))
        .count()
}

#[test]
fn a_merge_copies_the_pages_that_hold_no_split_trace_and_joins_the_rest() {
    let page_bytes = 16 << 10;
    let mut reqs = requests(&mut Gen(91), 900, BASE_NS);
    reqs.push(awkward_request());
    // Most traces go whole to one block; every 40th trace's fragments are spread over
    // the three, as spans straddling a flush are.
    let trace_of = |r: &ExportTraceServiceRequest| -> TraceId {
        r.resource_spans[0].scope_spans[0].spans[0]
            .trace_id
            .as_slice()
            .try_into()
            .unwrap()
    };
    let all_ids = ids_of(&reqs);
    let heads: Vec<TraceStore> = (0..3).map(|_| TraceStore::new()).collect();
    let mut split = 0;
    for (i, r) in reqs.iter().enumerate() {
        let t = all_ids.binary_search(&trace_of(r)).unwrap();
        let h = if t % 40 == 0 {
            split += 1;
            i % 3
        } else {
            t % 3
        };
        apply_all(&heads[h], std::slice::from_ref(r));
    }
    assert!(split > 30);
    // Three parents; the second is written in two runs (every other trace), as a flush
    // writes the traces still receiving spans apart.
    let write = |head: &TraceStore, name: String, runs: bool| {
        let inner = head.inner.read();
        let mut ids: Vec<&TraceId> = inner.traces.keys().collect();
        ids.sort();
        let mut w = block::BlockWriter::new(page_bytes);
        for pass in 0..2 {
            for (k, id) in ids.iter().enumerate() {
                if !runs && pass == 1 || runs && k % 2 != pass {
                    continue;
                }
                w.push_head(id, &inner.traces[*id]);
            }
            w.end_run();
        }
        open_encoded(w.finish(
            name,
            block::Compaction {
                level: 1,
                parents: Vec::new(),
            },
        ))
    };
    let parents: Vec<_> = heads
        .iter()
        .enumerate()
        .map(|(i, h)| write(h, format!("b{i}"), i == 1))
        .collect();
    assert_eq!(parents[1].runs().count(), 2);

    let merged = open_encoded(
        engine::merge(&parents, 2, Vec::new(), page_bytes, engine::Relink::Pages)
            .unwrap()
            .0,
    );
    let copied = check_merged(&merged, &parents);
    let pages = merged.pages().len();
    assert!(
        copied >= 3 && copied < pages,
        "{copied} of {pages} pages copied"
    );
    assert!(
        merged.runs().count() >= 4,
        "three parents' runs and the rewritten one"
    );
    // Rewriting everything holds the same traces in fewer runs, and copies no page.
    let rewritten = open_encoded(
        engine::merge(&parents, 2, Vec::new(), page_bytes, engine::Relink::Never)
            .unwrap()
            .0,
    );
    assert_eq!(check_merged(&rewritten, &parents), 0);
    assert_eq!(rewritten.runs().count(), 1);

    // A merged block merges again with a block that shares traces with it: the runs it
    // copied stay runs, split traces are joined once more.
    let more = TraceStore::new();
    let mut extra = requests(&mut Gen(5), 300, BASE_NS + 9_000_000_000);
    for r in reqs.iter().step_by(97) {
        extra.push(r.clone());
    }
    apply_all(&more, &extra);
    let late = write(&more, "c".into(), false);
    let both = vec![std::sync::Arc::clone(&merged), late];
    let again = open_encoded(
        engine::merge(&both, 3, Vec::new(), page_bytes, engine::Relink::Pages)
            .unwrap()
            .0,
    );
    let copied = check_merged(&again, &both);
    assert!(copied >= 3, "{copied}");
}

#[test]
fn a_block_whose_runs_do_not_cover_its_pages_is_refused() {
    let head = TraceStore::new();
    apply_all(&head, &requests(&mut Gen(12), 200, BASE_NS));
    let inner = head.inner.read();
    let mut ids: Vec<&TraceId> = inner.traces.keys().collect();
    ids.sort();
    let mut w = block::BlockWriter::new(8 << 10);
    // Two runs, every other trace: the second run's ids ascend again from the smallest.
    for pass in 0..2 {
        for id in ids.iter().skip(pass).step_by(2) {
            w.push_head(id, &inner.traces[*id]);
        }
        w.end_run();
    }
    let enc = w.finish(
        "r".into(),
        block::Compaction {
            level: 1,
            parents: Vec::new(),
        },
    );
    let ok = block::TraceBlock::open(enc.meta.clone(), &enc.index, enc.data.clone()).unwrap();
    let runs: Vec<_> = ok.runs().collect();
    assert_eq!(runs.len(), 2);
    let (a, b) = (runs[0].len() as u32, runs[1].len() as u32);
    assert!(a > 1 && b > 1, "{a} {b}");
    for id in &ids {
        let t = ok.find(id).unwrap().expect("found in its run");
        assert_eq!(t.spans.len(), inner.traces[*id].spans.len());
    }
    for (runs, what) in [
        (vec![a, b - 1], "runs do not cover"),
        (vec![a, b, 1], "runs do not cover"),
        (vec![a + b], "runs do not cover"),
        (vec![a - 1, 1, b], "runs do not cover"),
        // Two runs cut elsewhere: a run whose ids go down.
        (vec![a + 1, b - 1], "out of trace id order"),
        (vec![0, a, b], "runs do not cover"),
    ] {
        let index = block::TraceBlock::index_with_runs(&enc.index, runs.clone());
        let err = block::TraceBlock::open(enc.meta.clone(), &index, enc.data.clone())
            .err()
            .unwrap_or_else(|| panic!("{runs:?} accepted"))
            .to_string();
        assert!(err.contains(what), "{runs:?}: {err}");
    }
}

/// The ids of the traces in `block`'s run `r`.
fn run_ids(block: &block::TraceBlock, r: usize) -> std::collections::BTreeSet<TraceId> {
    let pages = block.runs().nth(r).expect("the run");
    pages
        .flat_map(|p| block.read_page(p).unwrap())
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn a_flush_writes_the_traces_still_taking_spans_apart_and_a_merge_copies_the_rest() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let opts = BlockOptions {
        max_window_blocks: 2,
        page_bytes: 16 << 10,
        ..opts()
    };
    let store = TraceStore::new();
    rt.block_on(store.open_blocks(block_store(dir.path()), opts))
        .unwrap();
    let first = requests(&mut Gen(61), 1200, BASE_NS);
    apply_all(&store, &first);
    // The traces that took a span among the last tenth of the spans.
    let spans_of = |r: &ExportTraceServiceRequest| r.resource_spans[0].scope_spans[0].spans.len();
    let total: usize = first.iter().map(spans_of).sum();
    let mut seen = 0;
    let mut late = std::collections::BTreeSet::new();
    for r in &first {
        seen += spans_of(r);
        if seen > total - total / 10 {
            let id: TraceId = r.resource_spans[0].scope_spans[0].spans[0]
                .trace_id
                .as_slice()
                .try_into()
                .unwrap();
            late.insert(id);
        }
    }
    store.freeze();
    rt.block_on(store.flush_frozen()).unwrap();
    let b1 = store.blocks.read()[0].clone();
    assert_eq!(b1.runs().count(), 2);
    assert_eq!(run_ids(&b1, 1), late, "the unsettled run");
    let settled = run_ids(&b1, 0);
    assert_eq!(settled.len() + late.len(), ids_of(&first).len());

    // The next part: one more span for five unsettled and five settled traces, then new
    // traces. The unsettled traces' spans go to the unsettled run again.
    let continued: Vec<TraceId> = late.iter().take(5).copied().collect();
    let moved: Vec<TraceId> = settled.iter().take(5).copied().collect();
    let more_span = |id: &TraceId, n: u8| Span {
        trace_id: id.to_vec(),
        span_id: vec![0xee, n, 1, 2, 3, 4, 5, 6],
        name: "late".into(),
        start_time_unix_nano: BASE_NS + 1_000,
        end_time_unix_nano: BASE_NS + 2_000,
        ..Default::default()
    };
    let mut second: Vec<ExportTraceServiceRequest> = continued
        .iter()
        .chain(&moved)
        .enumerate()
        .map(|(n, id)| common_request("cart", vec![more_span(id, n as u8)]))
        .collect();
    second.extend(requests(&mut Gen(62), 1200, BASE_NS + 20_000_000_000));
    apply_all(&store, &second);
    let reference = TraceStore::new();
    apply_all(&reference, &first);
    apply_all(&reference, &second);
    store.freeze();
    rt.block_on(store.flush_frozen()).unwrap();
    let blocks = store.blocks.read().clone();
    let b2 = blocks
        .iter()
        .find(|b| !std::sync::Arc::ptr_eq(b, &b1))
        .unwrap()
        .clone();
    let unsettled = run_ids(&b2, 1);
    assert!(continued.iter().all(|id| unsettled.contains(id)));
    assert!(moved.iter().all(|id| !unsettled.contains(id)));

    // The merge copies the settled pages that hold no split trace.
    let parents = [b1.clone(), b2.clone()];
    let parent_pages: std::collections::HashSet<Vec<u8>> = parents
        .iter()
        .flat_map(|b| (0..b.pages().len()).map(|p| b.raw_page(p)))
        .collect();
    let report = rt.block_on(store.maintain()).unwrap();
    assert_eq!(report.created, 1);
    let merged = store.blocks.read()[0].clone();
    let copied = (0..merged.pages().len())
        .filter(|&p| parent_pages.contains(&merged.raw_page(p)))
        .count();
    let pages = merged.pages().len();
    assert!(copied * 2 > pages, "{copied} of {pages} pages copied");
    let ids = ids_of(&[first, second].concat());
    let want = answers(&reference, &ids);
    let got = answers(&store, &ids);
    assert_eq!(got.by_id, want.by_id);
    assert_same(&got, &want);
}

#[test]
fn a_merge_that_would_keep_too_many_runs_rewrites_every_page() {
    // Forty parents of one small page each, no trace split: copying would keep forty runs.
    let page_bytes = 64 << 10;
    let parents: Vec<_> = (0..40u64)
        .map(|i| {
            let head = TraceStore::new();
            apply_all(&head, &requests(&mut Gen(100 + i), 3, BASE_NS));
            let inner = head.inner.read();
            let mut ids: Vec<&TraceId> = inner.traces.keys().collect();
            ids.sort();
            let mut w = block::BlockWriter::new(page_bytes);
            for id in ids {
                w.push_head(id, &inner.traces[id]);
            }
            open_encoded(w.finish(
                format!("p{i:02}"),
                block::Compaction {
                    level: 1,
                    parents: Vec::new(),
                },
            ))
        })
        .collect();
    let merged = open_encoded(
        engine::merge(&parents, 2, Vec::new(), page_bytes, engine::Relink::Pages)
            .unwrap()
            .0,
    );
    assert_eq!(check_merged(&merged, &parents), 0, "no page copied");
    assert_eq!(merged.runs().count(), 1);
    // Eight of the same parents are copied, run by run.
    let few = open_encoded(
        engine::merge(
            &parents[..8],
            2,
            Vec::new(),
            page_bytes,
            engine::Relink::Pages,
        )
        .unwrap()
        .0,
    );
    assert_eq!(check_merged(&few, &parents[..8]), few.pages().len());
    assert_eq!(few.runs().count(), 8);
}
