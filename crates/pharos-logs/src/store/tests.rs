//! Store tests, and request builders the API tests share.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use std::collections::BTreeMap;

use super::*;

/// Unix nanoseconds the fixture records are stamped after.
pub(crate) const T0: u64 = 1_700_000_000_000_000_000;

pub(crate) fn kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// A record `secs` seconds after [`T0`] with body `line` and severity number `sev`.
pub(crate) fn record(secs: u64, line: &str, sev: i32) -> LogRecord {
    LogRecord {
        time_unix_nano: T0 + secs * 1_000_000_000,
        severity_number: sev,
        body: Some(AnyValue {
            value: Some(Value::StringValue(line.into())),
        }),
        ..Default::default()
    }
}

pub(crate) fn request(resource: Vec<KeyValue>, records: Vec<LogRecord>) -> LogsRecord {
    LogsRecord::from(pharos_model::ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..Default::default()
                }),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    })
}

/// A stream and its selected entries, in the query's direction.
#[derive(Debug, PartialEq)]
struct SelectedStream {
    labels: Labels,
    entries: Vec<Entry>,
}

/// What the log query `query` selects in `[start_ns, end_ns)`, at most `limit` entries,
/// grouped by stream (streams in label order), as the store's entries.
fn select(
    store: &LogStore,
    query: &str,
    start_ns: i64,
    end_ns: i64,
    direction: Direction,
    limit: usize,
) -> Vec<SelectedStream> {
    use crate::logql::eval::{QueryParams, select};
    use crate::logql::pipeline::Category;
    let rows = select(
        store,
        &crate::logql::parse(query).unwrap(),
        &QueryParams {
            start_ns,
            end_ns,
            direction,
            limit,
        },
    );
    let mut out: BTreeMap<String, SelectedStream> = BTreeMap::new();
    for r in rows {
        let mut labels = Labels::new();
        let mut metadata = Vec::new();
        for l in r.labels {
            match l.category {
                Category::Stream => {
                    labels.insert(l.name, l.value);
                }
                _ => metadata.push((l.name.into(), l.value.into())),
            }
        }
        metadata.sort();
        out.entry(labels_string(&labels))
            .or_insert_with(|| SelectedStream {
                labels,
                entries: Vec::new(),
            })
            .entries
            .push(Entry {
                ts_ns: r.ts_ns,
                line: r.line,
                metadata,
            });
    }
    out.into_values().collect()
}

fn all(store: &LogStore, direction: Direction, limit: usize) -> Vec<SelectedStream> {
    select(
        store,
        r#"{service_name=~".+"}"#,
        0,
        i64::MAX,
        direction,
        limit,
    )
}

#[test]
fn otlp_maps_to_labels_and_structured_metadata() {
    let store = LogStore::new();
    let mut r = record(1, "hello", 17);
    r.trace_id = vec![0xab; 16];
    r.span_id = vec![0xcd; 8];
    r.severity_text = "ERROR".into();
    r.attributes.push(kv("http.method", "GET"));
    store.apply(&request(
        vec![
            kv("service.name", "api"),
            kv("k8s.pod.name", "p-1"),
            kv("host.name", "h1"),
        ],
        vec![r],
    ));
    let got = all(&store, Direction::Forward, 10);
    assert_eq!(got.len(), 1);
    let labels: Vec<_> = got[0]
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(labels, ["k8s_pod_name=p-1", "service_name=api"]);
    let e = &got[0].entries[0];
    assert_eq!(e.ts_ns, (T0 + 1_000_000_000) as i64);
    assert_eq!(e.line, "hello");
    let md: Vec<_> = e.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(
        md,
        [
            "detected_level=error",
            "host_name=h1",
            "http_method=GET",
            "scope_name=lib",
            "severity_number=17",
            "severity_text=ERROR",
            &format!("span_id={}", "cd".repeat(8)),
            &format!("trace_id={}", "ab".repeat(16)),
        ]
    );
}

#[test]
fn missing_service_and_timestamps() {
    let store = LogStore::new();
    let mut observed = record(0, "obs", 0);
    observed.time_unix_nano = 0;
    observed.observed_time_unix_nano = 42;
    let mut none = record(0, "none", 0);
    none.time_unix_nano = 0;
    let mut req = request(vec![], vec![observed, none]);
    assert_eq!(store.sanitize(&mut req).count, 0);
    assert!(!req.mapped.is_empty(), "mapped to streams, all kept");
    assert!(req.mapped[0].entries[1].ts_ns > T0 as i64);
    store.apply(&req);
    let got = all(&store, Direction::Forward, 10);
    // The log holds the OTLP request, stamped; replaying it maps it the same way.
    let logged = LogsRecord::decode(&req.encode()).unwrap();
    assert!(logged.wire.streams.is_empty() && !logged.wire.resource_logs.is_empty());
    let replayed = LogStore::new();
    replayed.apply(&logged);
    assert_eq!(all(&replayed, Direction::Forward, 10), got);
    assert_eq!(
        got[0].labels.get("service_name").map(String::as_str),
        Some("unknown_service")
    );
    assert_eq!(got[0].entries[0].ts_ns, 42);
    assert_eq!(
        got[0].entries[0].metadata,
        [
            ("detected_level".into(), "unknown".into()),
            ("scope_name".into(), "lib".into())
        ],
        "without a severity the level is discovered from the line, as Loki does"
    );
}

#[test]
fn entries_stay_time_ordered_and_limit_spans_streams() {
    let store = LogStore::new();
    store.apply(&request(
        vec![kv("service.name", "a")],
        vec![record(3, "a3", 9), record(1, "a1", 9)],
    ));
    store.apply(&request(
        vec![kv("service.name", "b")],
        vec![record(2, "b2", 9), record(4, "b4", 9)],
    ));
    store.apply(&request(
        vec![kv("service.name", "a")],
        vec![record(2, "a2", 9)],
    ));
    let lines = |streams: &[SelectedStream]| -> Vec<String> {
        streams
            .iter()
            .map(|s| {
                s.entries
                    .iter()
                    .map(|e| e.line.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    };
    assert_eq!(
        lines(&all(&store, Direction::Forward, 10)),
        ["a1,a2,a3", "b2,b4"]
    );
    assert_eq!(
        lines(&all(&store, Direction::Backward, 10)),
        ["a3,a2,a1", "b4,b2"]
    );
    assert_eq!(lines(&all(&store, Direction::Backward, 2)), ["a3", "b4"]);
    assert_eq!(lines(&all(&store, Direction::Forward, 2)), ["a1,a2"]);
    let window = select(
        &store,
        r#"{service_name=~".+"} != "a3""#,
        (T0 + 2_000_000_000) as i64,
        (T0 + 4_000_000_000) as i64,
        Direction::Forward,
        10,
    );
    assert_eq!(lines(&window), ["a2", "b2"]);
    assert_eq!(store.label_names(0, i64::MAX), ["service_name"]);
    assert_eq!(
        store.label_values("service_name", |_| true, 0, i64::MAX),
        ["a", "b"]
    );
    assert!(store.series(|_| true, 0, T0 as i64).is_empty());
    assert!(store.approx_bytes() > 0);
}

#[test]
fn detected_levels() {
    use otlp::detected_level;
    assert_eq!(detected_level(1, ""), Some("trace"));
    assert_eq!(detected_level(9, "whatever"), Some("info"));
    assert_eq!(detected_level(13, ""), Some("warn"));
    assert_eq!(detected_level(21, ""), Some("fatal"));
    assert_eq!(detected_level(0, "Warning"), Some("warn"));
    assert_eq!(detected_level(0, ""), None);
    assert_eq!(otlp::normalize_name("k8s.pod-name"), "k8s_pod_name");
    assert_eq!(otlp::normalize_name("1a"), "_1a");
}

#[test]
fn configured_index_labels_choose_the_stream_labels() {
    let store = LogStore::with_limits(LogLimits {
        index_labels: vec!["service.name".into(), "team".into()],
        ..LogLimits::default()
    });
    let mut req = request(
        vec![
            kv("service.name", "api"),
            kv("team", "payments"),
            kv("k8s.pod.name", "api-7f9"),
        ],
        vec![record(1, "hello", 9)],
    );
    assert_eq!(store.sanitize(&mut req).count, 0);
    store.apply(&req);
    let got = all(&store, Direction::Forward, 10);
    assert_eq!(got.len(), 1);
    let names: Vec<&str> = got[0].labels.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["service_name", "team"],
        "k8s.pod.name is not an index label here"
    );
    assert!(
        got[0].entries[0]
            .metadata
            .contains(&("k8s_pod_name".into(), "api-7f9".into()))
    );
}

#[test]
fn an_otlp_request_with_refusals_is_logged_as_what_was_kept() {
    let store = LogStore::with_limits(LogLimits {
        max_line_size: 10,
        ..LogLimits::default()
    });
    let mut req = request(
        vec![],
        vec![
            record(1, "short", 9),
            record(2, "far too long a line", 9),
            record(3, "ok", 9),
        ],
    );
    assert_eq!(store.sanitize(&mut req).count, 1);
    assert!(req.mapped.is_empty());
    assert_eq!(pharos_model::ItemCount::item_count(&req), 2);
    store.apply(&req);
    let logged = LogsRecord::decode(&req.encode()).unwrap();
    assert!(
        logged.wire.resource_logs.is_empty(),
        "the OTLP form is not logged"
    );
    let replayed = LogStore::new();
    replayed.apply(&logged);
    let got = all(&replayed, Direction::Forward, 10);
    assert_eq!(got, all(&store, Direction::Forward, 10));
    let lines: Vec<&str> = got[0].entries.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(lines, ["short", "ok"]);
}

#[test]
fn late_entries_read_in_time_order_before_and_after_they_merge() {
    let store = LogStore::new();
    let mut labels = Labels::new();
    labels.insert("service_name".into(), "late".into());
    // Mostly in order, every seventh entry up to 40 steps late: hundreds of late entries,
    // so some merge into the stream and some still wait.
    let mut want = Vec::new();
    for i in 0..3000i64 {
        let ts = 1_000 + if i % 7 == 3 { i * 10 - 397 } else { i * 10 };
        let line = format!("l{i}");
        want.push((ts, line.clone()));
        store.push(
            labels.clone(),
            Entry {
                ts_ns: ts,
                line,
                metadata: vec![],
            },
        );
    }
    want.sort();
    let read = |store: &LogStore, direction| -> Vec<(i64, String)> {
        all(store, direction, 10_000)
            .into_iter()
            .flat_map(|s| s.entries)
            .map(|e| (e.ts_ns, e.line))
            .collect()
    };
    let same = |got: Vec<(i64, String)>, want: &[(i64, String)]| {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        assert!(
            got.len() == want.len() && first.is_none(),
            "{} entries against {}; first difference at {first:?}: {:?}",
            got.len(),
            want.len(),
            first.map(|i| (&got[i], &want[i]))
        );
    };
    same(read(&store, Direction::Forward), &want);
    let mut back = want.clone();
    back.reverse();
    same(read(&store, Direction::Backward), &back);
    // A window inside the data.
    let window: Vec<String> = select(
        &store,
        r#"{service_name="late"}"#,
        10_000,
        10_500,
        Direction::Forward,
        1000,
    )
    .into_iter()
    .flat_map(|s| s.entries)
    .map(|e| e.line)
    .collect();
    let want_window: Vec<String> = want
        .iter()
        .filter(|(t, _)| (10_000..10_500).contains(t))
        .map(|(_, l)| l.clone())
        .collect();
    assert_eq!(window, want_window);
    assert_eq!(store.freeze(None), 3000);
    same(read(&store, Direction::Forward), &want);
}

#[test]
fn a_push_request_kept_whole_is_logged_as_it_arrived_and_replays_the_same() {
    use crate::push::proto::{
        Entry as WireEntry, LabelPair, PushRequest, Stream as WireStream, Timestamp,
    };
    use prost::Message;
    let push = |lines: &[(i64, &str)]| PushRequest {
        streams: vec![WireStream {
            // Out of order, no service_name: sanitize and replay both canonicalize.
            labels: r#"{job="shop", app="cart"}"#.into(),
            entries: lines
                .iter()
                .map(|(t, l)| WireEntry {
                    timestamp: Some(Timestamp::from_nanos(T0 as i64 + t)),
                    line: (*l).into(),
                    structured_metadata: vec![LabelPair::new("z", "1"), LabelPair::new("a", "2")],
                })
                .collect(),
            hash: 0,
        }],
    };
    let store = LogStore::new();
    let req = push(&[(1, "GET /cart 200"), (2, "checkout failed: error")]);
    let snappy = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let mut record = LogsRecord::from_push(req, Some(snappy.clone().into()));
    assert_eq!(store.sanitize(&mut record).count, 0);
    let (prefix, body) = record.snappy_record().expect("kept whole");
    assert_eq!(body, snappy.as_slice());
    store.apply(&record);
    // What the log holds: the prefix, then the request's bytes.
    let mut logged = prefix;
    logged.extend(snap::raw::Decoder::new().decompress_vec(body).unwrap());
    let replayed = LogStore::new();
    replayed.apply(&LogsRecord::decode(&logged).unwrap());
    let got = all(&store, Direction::Forward, 10);
    assert_eq!(all(&replayed, Direction::Forward, 10), got);
    assert_eq!(got[0].labels["service_name"], "cart");
    let meta: Vec<(&str, &str)> = got[0].entries[1]
        .metadata
        .iter()
        .map(|(k, v)| (&**k, &**v))
        .collect();
    assert_eq!(meta, [("a", "2"), ("detected_level", "error"), ("z", "1")]);
    // A refusal: the log holds what was kept instead.
    let mut late = LogsRecord::from_push(
        push(&[(5, "ok"), (-7_200_000_000_000, "far too late")]),
        Some(snappy.into()),
    );
    assert_eq!(store.sanitize(&mut late).count, 1);
    assert!(late.snappy_record().is_none());
}

#[test]
fn a_push_with_a_stream_left_out_is_logged_as_what_was_kept() {
    use crate::push::proto::{Entry as WireEntry, PushRequest, Stream as WireStream, Timestamp};
    use prost::Message;
    use record::StreamInfo;
    let stream = |labels: &str, lines: usize| WireStream {
        labels: labels.into(),
        entries: (0..lines)
            .map(|i| WireEntry {
                timestamp: Some(Timestamp::from_nanos(T0 as i64 + i as i64)),
                line: "x".into(),
                structured_metadata: vec![],
            })
            .collect(),
        hash: 0,
    };
    // A stream without entries, and one whose labels do not parse but has nothing to refuse.
    for other in [stream(r#"{job="empty"}"#, 0), stream("{job=", 0)] {
        let req = PushRequest {
            streams: vec![stream(r#"{job="a"}"#, 1), other],
        };
        let snappy = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        let store = LogStore::new();
        let mut record = LogsRecord::from_push(req, Some(snappy.into()));
        store.sanitize(&mut record);
        assert!(record.snappy_record().is_none());
        store.apply(&record);
        let replayed = LogStore::new();
        replayed.apply(&LogsRecord::decode(&record.encode()).unwrap());
        assert_eq!(replayed.inner.read().stream_count(), 1);
        assert_eq!(store.inner.read().stream_count(), 1);
    }
}
