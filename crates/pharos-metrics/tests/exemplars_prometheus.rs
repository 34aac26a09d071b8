//! Differential test of exemplars against the real Prometheus (Debian's `prometheus`,
//! 2.42, started with `--enable-feature=exemplar-storage` and
//! `--web.enable-remote-write-receiver`): the same remote_write requests with exemplars go
//! to Prometheus' receiver and to Pharos' (over a sink that sanitizes and applies, as the
//! binary's ingest path does), then the same `/api/v1/query_exemplars` requests go to both
//! and the answers must be equal: status and whole body, except that for a query that
//! does not parse only the status and `errorType` are compared (the parsers word their
//! errors differently).
//!
//! The requests cover what both keep and what both drop: exemplars beside samples and in
//! series of their own (as Prometheus' sender puts them), several per series, histogram
//! buckets, an exemplar with an empty label value, resends (duplicates), one older than its
//! series' newest (in the same request and in a later one), one with the newest timestamp
//! and labels but another value, and labels over 128 characters (both answer 204 and keep
//! nothing). Deliberate differences are left out and listed in the README: an exemplar of
//! a series Prometheus' head does not hold yet (dropped there, kept by Pharos), and a second
//! exemplar with the newest timestamp but other labels (2.42 refuses it as out of order,
//! Prometheus 3 and Pharos keep it).

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::ChildGuard;
use pharos_metrics::MetricsStore;
use pharos_metrics::remote_write::proto::{Exemplar, Label, Sample, TimeSeries, WriteRequest};
use pharos_metrics::remote_write::{WriteError, WriteSink, encode};
use pharos_metrics::store::record::MetricsRecord;
use pharos_model::telemetry::SelfMetrics;
use pharos_model::{ItemCount, Rejected, Store};
use serde_json::Value;

/// The binary's ingest path without the log: sanitize, then apply.
struct Sink(Arc<MetricsStore>);

impl WriteSink for Sink {
    async fn write(&self, req: WriteRequest) -> Result<Rejected, WriteError> {
        let mut rec = MetricsRecord::from_write_request(req);
        let rejected = self.0.sanitize(&mut rec);
        if rec.item_count() > 0 {
            self.0.apply(&rec);
        }
        Ok(rejected)
    }
}

async fn start_pharos() -> String {
    let store = Arc::new(MetricsStore::new());
    let app =
        pharos_metrics::api::router(store.clone()).merge(pharos_metrics::remote_write::router(
            Arc::new(Sink(store)),
            Arc::new(SelfMetrics::new()),
            1 << 20,
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn start_prometheus(dir: &std::path::Path) -> (ChildGuard, String) {
    common::start_prometheus(
        dir,
        &[
            "--enable-feature=exemplar-storage",
            "--web.enable-remote-write-receiver",
        ],
    )
    .await
}

fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs.iter().map(|(k, v)| Label::new(*k, *v)).collect()
}

fn ex(pairs: &[(&str, &str)], value: f64, timestamp: i64) -> Exemplar {
    Exemplar {
        labels: labels(pairs),
        value,
        timestamp,
    }
}

fn ts(series: &[(&str, &str)], samples: &[(i64, f64)], exemplars: Vec<Exemplar>) -> TimeSeries {
    TimeSeries {
        labels: labels(series),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        exemplars,
        ..Default::default()
    }
}

/// The requests, in order, each sent to both servers.
fn requests(t0: i64) -> Vec<WriteRequest> {
    let api = [("__name__", "reqs_total"), ("job", "api")];
    let db = [("__name__", "reqs_total"), ("job", "db")];
    let bucket = |le: &'static str| [("__name__", "lat_bucket"), ("le", le), ("job", "api")];
    let long = "x".repeat(121);
    let write = |timeseries| WriteRequest {
        timeseries,
        metadata: vec![],
    };
    vec![
        // Samples and exemplars together; two exemplars for one series; one out of order
        // within the request.
        write(vec![
            ts(
                &api,
                &[(t0, 1.0), (t0 + 15_000, 4.0)],
                vec![
                    ex(&[("trace_id", "a1"), ("span_id", "s1")], 1.0, t0 + 1),
                    ex(&[("trace_id", "a2")], 3.0, t0 + 14_999),
                    ex(&[("trace_id", "a0")], 0.5, t0 + 2),
                ],
            ),
            ts(
                &db,
                &[(t0 + 500, 7.0)],
                vec![ex(&[("trace_id", "d1"), ("empty", "")], 7.0, t0 + 400)],
            ),
            ts(
                &bucket("0.5"),
                &[(t0, 3.0)],
                vec![ex(&[("trace_id", "h1")], 0.25, t0)],
            ),
            ts(
                &bucket("+Inf"),
                &[(t0, 5.0)],
                vec![ex(&[("trace_id", "h2")], 2.5, t0 + 3)],
            ),
            ts(&[("__name__", "quiet")], &[(t0, 1.0)], vec![]),
        ]),
        // Exemplars in series of their own, as Prometheus' sender writes them; labels over
        // 128 characters; the same exemplar again (a duplicate).
        write(vec![
            ts(&api, &[], vec![ex(&[("trace_id", "a3")], 2.0, t0 + 20_000)]),
            ts(
                &db,
                &[],
                vec![ex(&[("trace_id", long.as_str())], 1.0, t0 + 20_000)],
            ),
            ts(&db, &[], vec![ex(&[("trace_id", "d1")], 7.0, t0 + 400)]),
            ts(
                &bucket("0.5"),
                &[(t0 + 30_000, 4.0)],
                vec![ex(&[("trace_id", "h3"), ("user", "é")], 0.125, t0 + 30_000)],
            ),
        ]),
        // Older than the newest: out of order; the newest again with another value.
        write(vec![
            ts(
                &api,
                &[],
                vec![ex(&[("trace_id", "late")], 9.0, t0 + 10_000)],
            ),
            ts(
                &api,
                &[],
                vec![ex(&[("trace_id", "a3")], 99.0, t0 + 20_000)],
            ),
        ]),
        // The first request's exemplars again, in a series of their own: the newest is a
        // duplicate, the older one out of order.
        write(vec![ts(
            &api,
            &[],
            vec![
                ex(&[("trace_id", "a1"), ("span_id", "s1")], 1.0, t0 + 1),
                ex(&[("trace_id", "a3")], 2.0, t0 + 20_000),
            ],
        )]),
    ]
}

async fn remote_write(client: &reqwest::Client, base: &str, req: &WriteRequest) -> (u16, String) {
    let resp = client
        .post(format!("{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(encode(req))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn query(client: &reqwest::Client, base: &str, params: &[(&str, String)]) -> (u16, Value) {
    let resp = client
        .get(format!("{base}/api/v1/query_exemplars"))
        .query(params)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    // No body at all for a 204.
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{params:?}: {e}: {text}"))
    };
    (status, v)
}

#[tokio::test(flavor = "multi_thread")]
async fn query_exemplars_answers_like_prometheus() {
    common::ensure_package("prometheus", &["prometheus"]);
    let dir = tempfile::tempdir().unwrap();
    let (_prometheus, prom) = start_prometheus(dir.path()).await;
    let pharos = start_pharos().await;
    let client = reqwest::Client::new();

    // Whole seconds minus 5 minutes, plus an odd millisecond offset.
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t0 = (now_s - 300) * 1000 + 123;
    for (i, req) in requests(t0).iter().enumerate() {
        let p = remote_write(&client, &prom, req).await;
        let q = remote_write(&client, &pharos, req).await;
        assert_eq!(p.0, 204, "prometheus refused request {i}: {}", p.1);
        assert_eq!(q.0, p.0, "request {i}: pharos answered {} {}", q.0, q.1);
    }

    let secs = |ms: i64| format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
    let s = |v: &str| v.to_owned();
    let mut cases: Vec<(Vec<(&str, String)>, bool)> = Vec::new();
    let mut add = |query: &str, start: Option<String>, end: Option<String>| {
        let mut params = vec![("query", s(query))];
        params.extend(start.map(|v| ("start", v)));
        params.extend(end.map(|v| ("end", v)));
        cases.push((params, true));
    };
    for q in [
        "reqs_total",
        r#"reqs_total{job="api"}"#,
        "lat_bucket",
        r#"{__name__=~"reqs_total|lat_bucket"}"#,
        r#"{__name__=~".+", job!="db"}"#,
        "quiet",
        "nothing_here",
        "histogram_quantile(0.9, rate(lat_bucket[5m]))",
        r#"sum(rate(reqs_total[1m])) / on() group_left max(lat_bucket{le="+Inf"})"#,
        "topk(scalar(quiet), reqs_total)",
        "max_over_time(reqs_total[10m:1m] offset 1m)",
        "1 + 1",
        r#""a string""#,
    ] {
        add(q, None, None);
        add(q, Some(secs(t0)), Some(secs(t0 + 15_000)));
    }
    // Inclusive bounds, RFC 3339 and float seconds, empty ranges.
    add("reqs_total", Some(secs(t0 + 1)), Some(secs(t0 + 1)));
    add("reqs_total", Some(secs(t0 + 2)), Some(secs(t0 + 14_998)));
    add("reqs_total", Some(secs(t0 + 20_000)), None);
    add("reqs_total", None, Some(secs(t0 + 400)));
    add("reqs_total", Some(secs(t0 + 60_000)), None);
    add(
        "reqs_total",
        Some("2001-02-03T04:05:06Z".into()),
        Some("2100-01-01T00:00:00.5+01:00".into()),
    );
    // Parameter errors.
    add("reqs_total", Some("x".into()), None);
    add("reqs_total", None, Some("tomorrow".into()));
    add("reqs_total", Some(secs(t0 + 1000)), Some(secs(t0)));
    // Queries that do not parse: status and errorType only.
    for q in ["reqs_total{", "sum(", ""] {
        cases.push((vec![("query", s(q))], false));
    }

    let mut differ = Vec::new();
    for (params, whole_body) in &cases {
        let p = query(&client, &prom, params).await;
        let q = query(&client, &pharos, params).await;
        let same = if *whole_body {
            p == q
        } else {
            p.0 == q.0 && p.1["errorType"] == q.1["errorType"] && p.1["status"] == q.1["status"]
        };
        if !same {
            differ.push(format!(
                "{params:?}\n  prometheus: {} {}\n  pharos:     {} {}",
                p.0, p.1, q.0, q.1
            ));
        }
    }
    assert!(differ.is_empty(), "answers differ:\n{}", differ.join("\n"));

    // The comparison is not empty-handed: what both hold.
    let (_, all) = query(&client, &pharos, &[("query", s(r#"{__name__=~".+"}"#))]).await;
    let counts: Vec<(String, usize)> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["seriesLabels"].to_string(),
                s["exemplars"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            (
                r#"{"__name__":"lat_bucket","job":"api","le":"+Inf"}"#.into(),
                1
            ),
            (
                r#"{"__name__":"lat_bucket","job":"api","le":"0.5"}"#.into(),
                2
            ),
            (r#"{"__name__":"reqs_total","job":"api"}"#.into(), 3),
            (r#"{"__name__":"reqs_total","job":"db"}"#.into(), 1),
        ]
    );
}
