//! Prometheus remote_write 1.0 into the real binary: hand-built requests read back
//! exactly, bad requests get Prometheus' status codes, a real Prometheus (Debian's
//! `prometheus` package) writes to Pharos and both answer the same queries, and written
//! samples survive SIGKILL.

mod common;

use common::prometheus::Prometheus;
use common::{Pharos, get_json_q, tempdir};
use pharos_metrics::remote_write::encode;
use pharos_metrics::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// 2023-11-14T22:13:20Z, in milliseconds.
const T: i64 = 1_700_000_000_000;
/// Prometheus' stale marker.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels.iter().map(|(k, v)| Label::new(*k, *v)).collect(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

fn request(timeseries: Vec<TimeSeries>) -> WriteRequest {
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

/// The data every test writes first: two gauges of one family, one ending in a stale
/// marker, with millisecond timestamps.
fn first_write() -> WriteRequest {
    request(vec![
        series(
            &[("__name__", "rw_temp"), ("room", "a"), ("job", "sensors")],
            &[(T + 125, 20.5), (T + 15_125, 21.0), (T + 30_125, 21.25)],
        ),
        series(
            &[
                ("job", "sensors"),
                ("__name__", "rw_temp"),
                ("room", "b"),
                ("empty", ""),
            ],
            &[
                (T + 250, -3.0),
                (T + 15_250, 1e-3),
                (T + 30_250, f64::from_bits(STALE_NAN)),
            ],
        ),
    ])
}

/// POSTs a raw body to `/api/v1/write` with remote_write 1.0's headers, overridden or
/// removed (`None`) by `headers`; returns the status and the body.
async fn post_raw(p: &Pharos, body: Vec<u8>, headers: &[(&str, Option<&str>)]) -> (u16, String) {
    let mut h = vec![
        ("Content-Encoding", Some("snappy")),
        ("Content-Type", Some("application/x-protobuf")),
        ("X-Prometheus-Remote-Write-Version", Some("0.1.0")),
        ("User-Agent", Some("pharos-test/remote_write")),
    ];
    for (k, v) in headers {
        match h.iter_mut().find(|(name, _)| name.eq_ignore_ascii_case(k)) {
            Some(entry) => entry.1 = *v,
            None => h.push((k, *v)),
        }
    }
    let mut req = reqwest::Client::new().post(p.h("/api/v1/write")).body(body);
    for (k, v) in h {
        if let Some(v) = v {
            req = req.header(k, v);
        }
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

async fn write(p: &Pharos, req: &WriteRequest) -> (u16, String) {
    post_raw(p, encode(req), &[]).await
}

async fn query(p: &Pharos, q: &str, time_s: &str) -> Value {
    let v = get_json_q(&p.q("/api/v1/query"), &[("query", q), ("time", time_s)]).await;
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"].clone()
}

/// What `first_write` reads back as, checked after every test that wrote it.
async fn assert_first_write(p: &Pharos) {
    // Raw samples, milliseconds included; a range vector leaves out the stale marker.
    assert_eq!(
        query(p, "rw_temp[1m]", "1700000040").await,
        json!({"resultType": "matrix", "result": [
            {"metric": {"__name__": "rw_temp", "job": "sensors", "room": "a"},
             "values": [[1700000000.125, "20.5"], [1700000015.125, "21"], [1700000030.125, "21.25"]]},
            {"metric": {"__name__": "rw_temp", "job": "sensors", "room": "b"},
             "values": [[1700000000.25, "-3"], [1700000015.25, "0.001"]]},
        ]})
    );
    // An instant vector after the stale marker has only room "a".
    assert_eq!(
        query(p, "rw_temp", "1700000040").await,
        json!({"resultType": "vector", "result": [
            {"metric": {"__name__": "rw_temp", "job": "sensors", "room": "a"},
             "value": [1700000040, "21.25"]},
        ]})
    );
    let series = get_json_q(
        &p.q("/api/v1/series"),
        &[
            ("match[]", "{job=\"sensors\"}"),
            ("start", "1700000000"),
            ("end", "1700000060"),
        ],
    )
    .await;
    assert_eq!(
        series["data"],
        json!([
            {"__name__": "rw_temp", "job": "sensors", "room": "a"},
            {"__name__": "rw_temp", "job": "sensors", "room": "b"},
        ])
    );
}

/// Returns the value of one self-metric line, 0 if absent.
async fn self_metric(p: &Pharos, line_prefix: &str) -> f64 {
    let text = reqwest::get(p.q("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn written_samples_read_back_exactly() {
    let dir = tempdir();
    let p = Pharos::start(dir.path());
    assert_eq!(write(&p, &first_write()).await, (204, String::new()));
    assert_first_write(&p).await;

    // Partial refusal: 400 with the reasons, the good samples kept.
    let mixed = request(vec![
        series(
            &[("__name__", "rw_temp"), ("job", "sensors"), ("room", "a")],
            &[
                (T + 20_000, 99.0),  // older than the newest sample: out of order
                (T + 30_125, 21.25), // a resend of a stored sample: silently fine
                (T + 45_125, 22.0),
            ],
        ),
        series(
            &[("job", "sensors"), ("", "x"), ("__name__", "rw_temp")],
            &[(T, 1.0)],
        ),
        series(&[("job", "sensors")], &[(T, 1.0)]),
    ]);
    let (status, body) = write(&p, &mixed).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.starts_with("refused 3 of 5 samples, kept the others: "),
        "{body}"
    );
    for reason in [
        "out of order sample",
        "invalid label name",
        "series without a metric name",
    ] {
        assert!(body.contains(reason), "{reason} in {body}");
    }
    // Each refusal is counted by reason in Pharos' own metrics, and so is each query
    // error by type: a query that does not parse, and two that fail while evaluating.
    for (q, status) in [
        ("sum(", 400),
        (
            "label_replace(rw_temp, \"dst\", \"x\", \"room\", \"(.*\")",
            422,
        ),
    ] {
        let resp = reqwest::Client::new()
            .get(p.q("/api/v1/query"))
            .query(&[("query", q), ("time", "1700000050")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{q}");
    }
    let resp = reqwest::Client::new()
        .get(p.q("/api/v1/query"))
        .query(&[
            (
                "query",
                "label_replace(rw_temp, \"room\", \"x\", \"\", \"\")",
            ),
            // Both rooms are live here, and both become room="x".
            ("time", "1700000020"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "duplicate label sets");
    let own = reqwest::get(p.q("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "pharos_query_errors_total{route=\"/api/v1/query\",error_type=\"bad_data\"} 1",
        "pharos_query_errors_total{route=\"/api/v1/query\",error_type=\"execution\"} 2",
        "pharos_metrics_samples_refused_total{reason=\"out_of_order\"} 1",
        "pharos_metrics_samples_refused_total{reason=\"invalid_label_name\"} 1",
        "pharos_metrics_samples_refused_total{reason=\"no_metric_name\"} 1",
        "pharos_metrics_samples_refused_total{reason=\"duplicate\"} 0",
    ] {
        assert!(own.contains(line), "{line} in\n{own}");
    }
    assert_eq!(
        query(&p, "rw_temp{room=\"a\"}", "1700000050").await["result"][0]["value"],
        json!([1700000050, "22"])
    );

    // A metadata-only request, as Prometheus sends every minute, is fine.
    let metadata = WriteRequest {
        timeseries: vec![],
        metadata: vec![Default::default()],
    };
    assert_eq!(write(&p, &metadata).await.0, 204);

    let receiver = "{receiver=\"prometheus_remote_write\",signal=\"metrics\"";
    assert_eq!(
        self_metric(
            &p,
            &format!("pharos_receiver_accepted_items_total{receiver}}} ")
        )
        .await,
        8.0
    );
    assert_eq!(
        self_metric(
            &p,
            &format!("pharos_receiver_refused_items_total{receiver},reason=\"invalid\"}} ")
        )
        .await,
        3.0
    );
}

/// A bad request: name, body, header overrides, expected status, text in the answer.
type BadCase<'a> = (
    &'a str,
    Vec<u8>,
    Vec<(&'a str, Option<&'a str>)>,
    u16,
    &'a str,
);

#[tokio::test]
async fn bad_requests_get_prometheus_status_codes() {
    let dir = tempdir();
    let mut p = Pharos::start(dir.path());
    assert_eq!(write(&p, &first_write()).await.0, 204);
    let good = encode(&request(vec![series(&[("__name__", "late")], &[(T, 1.0)])]));
    let limit = 1 << 20; // max_request_body_size in the test configuration

    let cases: Vec<BadCase> = vec![
        (
            "not snappy",
            b"\xff\xff\xff\xff\xff\xff".to_vec(),
            vec![],
            400,
            "snappy",
        ),
        ("empty body", vec![], vec![], 400, "snappy"),
        (
            "framed snappy",
            snappy_framed(&request(vec![]).encode_to_vec()),
            vec![],
            400,
            "snappy",
        ),
        (
            "not protobuf",
            snappy_block(&[0xff; 16]),
            vec![],
            400,
            "protobuf",
        ),
        (
            "remote_write 2.0",
            good.clone(),
            vec![(
                "Content-Type",
                Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
            )],
            415,
            "io.prometheus.write.v2.Request protobuf message (remote_write 2.0) is not supported yet",
        ),
        (
            "JSON",
            good.clone(),
            vec![("Content-Type", Some("application/json"))],
            415,
            "application/x-protobuf",
        ),
        (
            "gzip",
            good.clone(),
            vec![("Content-Encoding", Some("gzip"))],
            415,
            "only snappy",
        ),
        (
            "compressed too large",
            vec![0; limit + 1],
            vec![],
            413,
            "larger than the limit",
        ),
        (
            "decompressed too large",
            encode(&request(vec![series(
                &[("__name__", "big"), ("v", &"x".repeat(limit))],
                &[(T, 1.0)],
            )])),
            vec![],
            413,
            "larger than the limit",
        ),
    ];
    for (name, body, headers, status, needle) in cases {
        let (got, text) = post_raw(&p, body, &headers).await;
        assert_eq!(got, status, "{name}: {text}");
        assert!(text.contains(needle), "{name}: {needle:?} in {text:?}");
    }
    // remote_write 1.0 spelled out, and no headers at all, are both 1.0 with snappy.
    let v1 = "application/x-protobuf;proto=prometheus.WriteRequest";
    assert_eq!(
        post_raw(&p, good.clone(), &[("Content-Type", Some(v1))])
            .await
            .0,
        204
    );
    let bare = [
        ("Content-Type", None),
        ("Content-Encoding", None),
        ("X-Prometheus-Remote-Write-Version", None),
    ];
    assert_eq!(post_raw(&p, good, &bare).await.0, 204);

    assert!(p.alive());
    assert_first_write(&p).await;
}

#[tokio::test]
async fn no_metrics_pipeline_is_404() {
    let dir = tempdir();
    let p = Pharos::start_with(
        dir.path(),
        "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [pharos]\n",
    );
    let (status, body) = write(&p, &first_write()).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no metrics pipeline"), "{body}");
}

#[tokio::test]
async fn acknowledged_samples_survive_sigkill() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
        number_data_point,
    };
    let dir = tempdir();
    let mut p = Pharos::start(dir.path());
    assert_eq!(write(&p, &first_write()).await.0, 204);
    // An OTLP request in the same log, after it.
    let otlp = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "otlp.gauge".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: T as u64 * 1_000_000,
                            value: Some(number_data_point::Value::AsDouble(7.0)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let resp = reqwest::Client::new()
        .post(p.h("/v1/metrics"))
        .header("Content-Type", "application/x-protobuf")
        .body(otlp.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    p.kill9();

    let p = Pharos::start(dir.path());
    assert_first_write(&p).await;
    assert_eq!(
        query(&p, "otlp_gauge", "1700000001").await["result"][0]["value"],
        json!([1700000001, "7"])
    );
    assert!(
        !p.stderr().contains("do not decode"),
        "every record replays: {}",
        p.stderr()
    );
}

/// Snappy block format by hand for short inputs: the length, then one literal, so that
/// any bytes reach the protobuf decoder.
fn snappy_block(bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() <= 60);
    let mut out = vec![bytes.len() as u8, ((bytes.len() - 1) as u8) << 2];
    out.extend_from_slice(bytes);
    out
}

/// Snappy's framed (stream) format, which remote_write does not use: the stream
/// identifier, then one uncompressed chunk.
fn snappy_framed(bytes: &[u8]) -> Vec<u8> {
    let mut out = b"\xff\x06\x00\x00sNaPpY".to_vec();
    let len = bytes.len() + 4;
    out.extend_from_slice(&[0x01, len as u8, (len >> 8) as u8, (len >> 16) as u8]);
    out.extend_from_slice(&[0; 4]); // masked CRC-32C, unchecked here
    out.extend_from_slice(bytes);
    out
}

/// Returns the timestamps (seconds) of the samples `selector` has in the last `window` at
/// `time_s` on a Prometheus-compatible API, per series, oldest first.
async fn sample_times(base: &str, selector: &str, window: &str, time_s: f64) -> Vec<Vec<f64>> {
    let data = get_json_q(
        &format!("{base}/api/v1/query"),
        &[
            ("query", &format!("{selector}[{window}]")),
            ("time", &format!("{time_s:.3}")),
        ],
    )
    .await;
    data["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v[0].as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn real_prometheus_writes_what_it_stores() {
    let dir = tempdir();
    let pharos = Pharos::start(dir.path());
    let prom = Prometheus::start(&pharos, "").await;
    let pharos_url = format!("http://{}", pharos.query);
    // Series that change every scrape, and ones that do not.
    let compared = [
        "up{job=\"self\"}",
        "prometheus_build_info",
        "scrape_samples_scraped{job=\"self\"}",
        "scrape_duration_seconds{job=\"self\"}",
        "prometheus_tsdb_head_series",
    ];
    // Wait until Pharos holds at least 15 scrapes of each, so that a 10s window ending
    // before the newest sample lies wholly inside what it received.
    let deadline = Instant::now() + Duration::from_secs(90);
    let t = loop {
        let mut newest = f64::INFINITY;
        let mut enough = true;
        for s in compared {
            let times = sample_times(&pharos_url, s, "1m", now_s()).await;
            match times.first() {
                Some(t) if times.len() == 1 && t.len() >= 15 => {
                    newest = newest.min(*t.last().unwrap());
                }
                _ => enough = false,
            }
        }
        if enough {
            break newest - 0.5;
        }
        assert!(
            Instant::now() < deadline,
            "Pharos did not receive 15 scrapes in time; pharos stderr:\n{}\nprometheus log:\n{}",
            pharos.stderr(),
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let time = format!("{t:.3}");
    let both = |q: String| {
        let (prom_url, pharos_url, time) = (prom.url.clone(), pharos_url.clone(), time.clone());
        async move {
            let params = [("query", q.as_str()), ("time", time.as_str())];
            let a = get_json_q(&format!("{prom_url}/api/v1/query"), &params).await;
            let b = get_json_q(&format!("{pharos_url}/api/v1/query"), &params).await;
            (a["data"].clone(), b["data"].clone())
        }
    };
    for s in compared {
        // Raw samples: timestamps and values exactly as Prometheus stored them.
        let (want, got) = both(format!("{s}[10s]")).await;
        assert_eq!(got, want, "{s}[10s] at {time}");
        let n = want["result"][0]["values"].as_array().map_or(0, Vec::len);
        assert!(n >= 9, "{s}[10s] has {n} samples: {want}");
        // Instant vectors: labels, value, evaluation time.
        let (want, got) = both(s.to_string()).await;
        assert_eq!(got, want, "{s} at {time}");
    }
    let (want, _) = both("prometheus_build_info".into()).await;
    assert!(
        want["result"][0]["metric"]["version"].is_string(),
        "build info has labels: {want}"
    );
    // The series API returns the same label sets.
    let start = format!("{:.3}", t - 30.0);
    let params = [
        ("match[]", "up"),
        ("match[]", "prometheus_build_info"),
        ("start", &start),
        ("end", &time),
    ];
    let want = get_json_q(&format!("{}/api/v1/series", prom.url), &params).await;
    let got = get_json_q(&pharos.q("/api/v1/series"), &params).await;
    assert_eq!(got["data"], want["data"]);
    assert_eq!(want["data"].as_array().unwrap().len(), 2, "{want}");
    // Nothing Prometheus sent was refused.
    assert_eq!(
        self_metric(
            &pharos,
            "pharos_receiver_refused_items_total{receiver=\"prometheus_remote_write\",signal=\"metrics\",reason=\"invalid\"} "
        )
        .await,
        0.0,
        "pharos stderr:\n{}\nprometheus log:\n{}",
        pharos.stderr(),
        prom.log()
    );
}

/// Prometheus 3 accepts any UTF-8 metric and label name, and PromQL selects them with
/// quoted names.
#[tokio::test]
async fn utf8_names_are_stored_and_selected_with_quotes() {
    let dir = tempdir();
    let p = Pharos::start(dir.path());
    let req = request(vec![series(
        &[
            ("__name__", "http.server.duration"),
            ("service.name", "checkout"),
            ("ünïcode", "ja"),
        ],
        &[(T, 0.25)],
    )]);
    assert_eq!(write(&p, &req).await.0, 204);
    let got = query(
        &p,
        r#"sum by ("service.name") ({"http.server.duration", "ünïcode"="ja"})"#,
        "1700000001",
    )
    .await;
    assert_eq!(
        got["result"],
        json!([{"metric": {"service.name": "checkout"}, "value": [1700000001, "0.25"]}])
    );
    let names = get_json_q(&p.q("/api/v1/labels"), &[]).await;
    assert_eq!(
        names["data"],
        json!(["__name__", "service.name", "ünïcode"])
    );
}
