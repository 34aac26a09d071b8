//! Loki's push API on the OTLP/HTTP port: JSON and snappy protobuf bodies built from the
//! protocol, structured metadata, Loki's refusals, and replay after a crash.

mod common;

use common::{Pharos, tempdir};
use pharos_logs::push::handler::encode;
use pharos_logs::push::proto::{Entry, LabelPair, PushRequest, Stream, Timestamp};
use serde_json::{Value, json};

const T0: i64 = 1_700_000_000_000_000_000;

async fn push_json(p: &Pharos, body: &Value) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(p.h("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn push_proto(p: &Pharos, req: &PushRequest) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(p.h("/loki/api/v1/push"))
        .header("Content-Type", "application/x-protobuf")
        .body(encode(req))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Every entry of `query` between T0 and T0 + 1h, oldest first, as (labels, ts, line,
/// structured metadata) with categorised labels.
async fn read(p: &Pharos, query: &str) -> Vec<(Value, String, String, Value)> {
    let resp = reqwest::Client::new()
        .get(p.q("/loki/api/v1/query_range"))
        .header("X-Loki-Response-Encoding-Flags", "categorize-labels")
        .query(&[
            ("query", query),
            ("start", &T0.to_string()),
            ("end", &(T0 + 3_600_000_000_000).to_string()),
            ("direction", "forward"),
            ("limit", "1000"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let mut out = Vec::new();
    for s in body["data"]["result"].as_array().unwrap() {
        for v in s["values"].as_array().unwrap() {
            out.push((
                s["stream"].clone(),
                v[0].as_str().unwrap().to_string(),
                v[1].as_str().unwrap().to_string(),
                v.get(2)
                    .map(|m| m["structuredMetadata"].clone())
                    .unwrap_or(Value::Null),
            ));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

fn entry(ns: i64, line: &str, meta: &[(&str, &str)]) -> Entry {
    Entry {
        timestamp: Some(Timestamp::from_nanos(ns)),
        line: line.into(),
        structured_metadata: meta.iter().map(|(k, v)| LabelPair::new(*k, *v)).collect(),
    }
}

#[tokio::test]
async fn json_and_protobuf_pushes_are_queryable_with_their_metadata() {
    let dir = tempdir();
    let p = Pharos::start(dir.path());
    let (status, body) = push_json(
        &p,
        &json!({"streams": [{
            "stream": {"job": "varlogs", "host": "a"},
            "values": [
                [(T0 + 2).to_string(), "second json line"],
                [(T0 + 1).to_string(), "first json line", {"trace_id": "0af7651916cd43dd8448eb211c80319c", "user": "alice"}]
            ]
        }]}),
    )
    .await;
    assert_eq!((status, body.as_str()), (204, ""));
    let (status, body) = push_proto(
        &p,
        &PushRequest {
            streams: vec![Stream {
                labels: r#"{job="varlogs", host="b"}"#.into(),
                entries: vec![
                    entry(T0 + 3, "proto line", &[("span_id", "b7ad6b7169203331")]),
                    entry(T0 + 4, "line with \"quotes\" and ünïcode", &[]),
                ],
                hash: 0,
            }],
        },
    )
    .await;
    assert_eq!((status, body.as_str()), (204, ""));

    let got = read(&p, r#"{job="varlogs"}"#).await;
    let lines: Vec<&str> = got.iter().map(|g| g.2.as_str()).collect();
    assert_eq!(
        lines,
        [
            "first json line",
            "second json line",
            "proto line",
            "line with \"quotes\" and ünïcode"
        ]
    );
    assert_eq!(got[0].1, (T0 + 1).to_string());
    assert_eq!(
        got[0].0,
        json!({"job": "varlogs", "host": "a", "service_name": "varlogs"}),
        "Loki 3 derives service_name from job"
    );
    assert_eq!(
        got[0].3,
        json!({"trace_id": "0af7651916cd43dd8448eb211c80319c", "user": "alice", "detected_level": "unknown"})
    );
    assert_eq!(
        got[2].3,
        json!({"span_id": "b7ad6b7169203331", "detected_level": "unknown"})
    );
    assert_eq!(got[2].0["host"], "b");
    let labels: Value = reqwest::get(p.q(&format!(
        "/loki/api/v1/labels?start={T0}&end={}",
        T0 + 1_000_000_000
    )))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(labels["data"], json!(["host", "job", "service_name"]));

    // Gzip-compressed JSON, as Promtail's JSON mode and the Python clients may send.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(
        &mut gz,
        json!({"streams": [{"stream": {"job": "gz"}, "values": [[(T0 + 5).to_string(), "zipped"]]}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let resp = reqwest::Client::new()
        .post(p.h("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(read(&p, r#"{job="gz"}"#).await[0].2, "zipped");
}

#[tokio::test]
async fn refusals_are_lokis_and_keep_the_other_lines() {
    let dir = tempdir();
    let mut p = Pharos::start_with(
        dir.path(),
        "limits:\n  max_line_size: 20\n  max_streams: 3\n  out_of_order_time_window: 1m\n",
    );
    // One line too long among good ones: 400 with Loki's text, the others kept.
    let (status, body) = push_json(
        &p,
        &json!({"streams": [{"stream": {"app": "a"}, "values": [
            [T0.to_string(), "short"],
            [(T0 + 1).to_string(), "this line is far longer than twenty bytes"],
            [(T0 + 2).to_string(), "also short"]
        ]}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "Max entry size '20' bytes exceeded for stream '{app=\"a\", service_name=\"a\"}' while adding an entry with length '41' bytes\n"
    );
    let kept: Vec<String> = read(&p, r#"{app="a"}"#)
        .await
        .into_iter()
        .map(|g| g.2)
        .collect();
    assert_eq!(kept, ["short", "also short"]);

    // Out of order within the window is accepted; behind it, Loki's ingester message.
    let newest = T0 + 120_000_000_000;
    assert_eq!(
        push_proto(
            &p,
            &PushRequest {
                streams: vec![Stream {
                    labels: r#"{app="a"}"#.into(),
                    entries: vec![
                        entry(newest, "newest", &[]),
                        entry(newest - 30_000_000_000, "30s late", &[]),
                        entry(newest - 61_000_000_000, "61s late", &[]),
                    ],
                    hash: 0,
                }],
            },
        )
        .await,
        (
            400,
            "entry with timestamp 2023-11-14 22:14:19 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2023-11-14T22:14:19Z, oldest acceptable timestamp is: 2023-11-14T22:14:20Z',\nuser 'fake', total ignored: 1 out of 3 for stream: {app=\"a\", service_name=\"a\"}\n"
                .to_string()
        )
    );
    let kept: Vec<String> = read(&p, r#"{app="a"}"#)
        .await
        .into_iter()
        .map(|g| g.2)
        .collect();
    assert_eq!(kept, ["short", "also short", "30s late", "newest"]);

    // Labels that do not parse; no labels.
    let (status, body) = push_proto(
        &p,
        &PushRequest {
            streams: vec![
                Stream {
                    labels: r#"{app="b""#.into(),
                    entries: vec![entry(T0, "x", &[])],
                    hash: 0,
                },
                Stream {
                    labels: "{}".into(),
                    entries: vec![entry(T0, "y", &[])],
                    hash: 0,
                },
            ],
        },
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "Error parsing labels '{app=\"b\"' with error: parse error at line 1, col 9: syntax error: unexpected $end, expecting , or }\nerror at least one label pair is required per stream\n"
    );

    // The stream limit: two more streams fit (3 in all), the fourth is refused with 429.
    let streams: Vec<Value> = ["b", "c", "d"]
        .iter()
        .map(|a| json!({"stream": {"app": a}, "values": [[T0.to_string(), "x"]]}))
        .collect();
    let (status, body) = push_json(&p, &json!({ "streams": streams })).await;
    assert_eq!(status, 429);
    assert!(
        body.starts_with("Maximum active stream limit exceeded when trying to create stream {app=\"d\", service_name=\"d\"}"),
        "{body}"
    );
    assert_eq!(read(&p, r#"{app="c"}"#).await.len(), 1);
    assert!(read(&p, r#"{app="d"}"#).await.is_empty());

    // Bodies that are not push requests.
    let post = |ct: &'static str, enc: Option<&'static str>, body: Vec<u8>| {
        let mut r = reqwest::Client::new()
            .post(p.h("/loki/api/v1/push"))
            .header("Content-Type", ct)
            .body(body);
        if let Some(enc) = enc {
            r = r.header("Content-Encoding", enc);
        }
        async move {
            let resp = r.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (s, b) = post("application/json", None, b"{\"streams\": [".to_vec()).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = post("application/x-protobuf", None, b"\xff\xfe garbage".to_vec()).await;
    assert_eq!(s, 400, "{b}");
    assert!(b.starts_with("snappy") || b.starts_with("protobuf"), "{b}");
    let (s, b) = post("application/json", Some("br"), b"{}".to_vec()).await;
    assert_eq!(
        (s, b.as_str()),
        (415, "Content-Encoding \"br\" not supported\n")
    );
    let (s, _) = post("application/json", None, vec![b' '; 2 << 20]).await;
    assert_eq!(s, 413);
    // Invalid UTF-8 inside a protobuf line.
    let mut raw = prost::Message::encode_to_vec(&PushRequest {
        streams: vec![Stream {
            labels: r#"{app="a"}"#.into(),
            entries: vec![entry(newest, "bad-utf8-here", &[])],
            hash: 0,
        }],
    });
    let at = raw.windows(4).position(|w| w == b"bad-").unwrap();
    raw[at] = 0xff;
    let (s, b) = post(
        "application/x-protobuf",
        None,
        snap::raw::Encoder::new().compress_vec(&raw).unwrap(),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(p.alive());
}

#[tokio::test]
async fn pushed_lines_survive_a_crash() {
    let dir = tempdir();
    // The lines are from 2023: no retention, or the flush would drop their block.
    let keep = "retention:\n  logs_hours: 0\n";
    let mut p = Pharos::start_with(dir.path(), keep);
    for i in 0..50 {
        if i == 25 {
            // Half of the lines go into a block, the rest stay in the log.
            let said = common::force_flush(&p).await;
            assert!(said.contains("flushed 25 entries into 1 blocks"), "{said}");
        }
        let (s, _) = push_proto(
            &p,
            &PushRequest {
                streams: vec![Stream {
                    // Labels out of order and metadata unsorted, with a level word: what
                    // the log replays (the request as it arrived) is canonicalized again.
                    labels: format!(r#"{{n="{}", app="crash"}}"#, i % 5),
                    entries: vec![entry(
                        T0 + i,
                        &format!("line {i} {}", ["ok", "error", "WARN"][i as usize % 3]),
                        &[("z", "last"), ("i", &i.to_string())],
                    )],
                    hash: 0,
                }],
            },
        )
        .await;
        assert_eq!(s, 204);
    }
    let before = read(&p, r#"{app="crash"}"#).await;
    assert_eq!(before.len(), 50);
    assert_eq!(
        before[1].3,
        serde_json::json!({"detected_level": "error", "i": "1", "z": "last"})
    );
    p.kill9();
    let p = Pharos::start_with(dir.path(), keep);
    assert_eq!(read(&p, r#"{app="crash"}"#).await, before, "each line once");
    let blocks = std::fs::read_dir(dir.path().join("data/blocks/logs"))
        .unwrap()
        .count();
    assert_eq!(blocks, 1);
    // And again after the rest is flushed too.
    common::force_flush(&p).await;
    assert_eq!(read(&p, r#"{app="crash"}"#).await, before);
}

/// A crash after a flush wrote its block but before the log segments it covers were
/// deleted: on restart those segments are dropped, not replayed into duplicates.
#[tokio::test]
async fn a_crash_between_a_flush_and_the_log_deletion_duplicates_nothing() {
    let dir = tempdir();
    let keep = "retention:\n  logs_hours: 0\n";
    let mut p = Pharos::start_with(dir.path(), keep);
    let push_line = |i: i64| PushRequest {
        streams: vec![Stream {
            labels: r#"{app="gap"}"#.into(),
            entries: vec![entry(T0 + i, &format!("line {i}"), &[])],
            hash: 0,
        }],
    };
    for i in 0..20 {
        assert_eq!(push_proto(&p, &push_line(i)).await.0, 204);
    }
    let wal = dir.path().join("data/wal/logs");
    let segments = |wal: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(wal)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let before_flush = segments(&wal);
    let said = common::force_flush(&p).await;
    assert!(said.contains("flushed 20 entries into 1 blocks"), "{said}");
    for i in 20..25 {
        assert_eq!(push_proto(&p, &push_line(i)).await.0, 204);
    }
    let want = read(&p, r#"{app="gap"}"#).await;
    assert_eq!(want.len(), 25);
    p.kill9();
    // Put back the segments the flush deleted, as a crash before their deletion leaves them.
    let after = segments(&wal);
    let mut restored = 0;
    for (name, bytes) in before_flush {
        if !after.iter().any(|(n, _)| *n == name) {
            std::fs::write(wal.join(&name), bytes).unwrap();
            restored += 1;
        }
    }
    assert!(restored > 0, "the flush deleted segments");
    let meta = std::fs::read_dir(dir.path().join("data/blocks/logs"))
        .unwrap()
        .map(|e| e.unwrap().path().join("meta.json"))
        .find(|m| m.exists())
        .unwrap();
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
    assert!(meta["wal_segment"].as_u64().is_some(), "{meta}");
    let p = Pharos::start_with(dir.path(), keep);
    assert_eq!(read(&p, r#"{app="gap"}"#).await, want, "each line once");
}
