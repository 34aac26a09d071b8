//! Differential test against the real Prometheus (Debian's `prometheus` package, which
//! ships `promtool`): the same samples are loaded into Prometheus (through
//! `promtool tsdb create-blocks-from openmetrics`) and into a [`MetricsStore`] (as OTLP
//! through `apply`), then the same API requests go to both and the JSON must be equal.
//!
//! Sample timestamps carry milliseconds and query times are whole seconds, so no sample
//! sits on a window boundary: Prometheus 2.x closes lookback and range windows on the
//! left, Prometheus 3 (and Pharos) opens them. Parse error messages differ between the
//! parsers, so for those only the status and `errorType` are compared.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point,
};
use pharos_metrics::MetricsStore;
use pharos_model::{ExportMetricsServiceRequest, Store};
use serde_json::Value;

const T: i64 = 1_700_000_000; // seconds

/// One series: metric family, OTLP kind, labels, and `(t_ms, value)` samples.
struct SeriesDef {
    family: &'static str,
    counter: bool,
    labels: Vec<(&'static str, &'static str)>,
    samples: Vec<(i64, f64)>,
}

fn dataset() -> Vec<SeriesDef> {
    let every = |start_ms: i64, step_s: i64, n: i64, f: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> {
        (0..n)
            .map(|k| (start_ms + k * step_s * 1000, f(k)))
            .collect()
    };
    // temp{room="a"}: every 60s for 30m, a 20m gap, then 10 more minutes.
    let mut temp_a = every(T * 1000 + 7_250, 60, 31, &|k| 20.0 + (k % 7) as f64 * 0.25);
    temp_a.extend(every((T + 3000) * 1000 + 7_250, 60, 10, &|k| {
        18.5 - k as f64 * 0.5
    }));
    vec![
        SeriesDef {
            family: "temp",
            counter: false,
            labels: vec![("room", "a"), ("floor", "1")],
            samples: temp_a,
        },
        SeriesDef {
            family: "temp",
            counter: false,
            labels: vec![("room", "b"), ("floor", "2")],
            samples: every(T * 1000 + 13_500, 30, 120, &|k| 0.1 * (k % 11) as f64 - 0.3),
        },
        SeriesDef {
            family: "reqs",
            counter: true,
            labels: vec![("method", "get"), ("code", "200")],
            samples: every(T * 1000 + 3_125, 15, 240, &|k| (k * 3) as f64),
        },
        // Every 7 minutes: always a gap longer than the lookback between samples.
        SeriesDef {
            family: "reqs",
            counter: true,
            labels: vec![("method", "post"), ("code", "500")],
            samples: every(T * 1000 + 11_875, 420, 9, &|k| (k * k) as f64 + 1e6),
        },
        SeriesDef {
            family: "weird",
            counter: false,
            labels: vec![("path", "/a/b"), ("quote", "x\"y<z>")],
            samples: every(T * 1000 + 1_001, 100, 5, &|k| 1e-3 * k as f64),
        },
    ]
}

fn sample_name(s: &SeriesDef) -> String {
    if s.counter {
        format!("{}_total", s.family)
    } else {
        s.family.to_owned()
    }
}

fn openmetrics(data: &[SeriesDef]) -> String {
    let mut out = String::new();
    let mut last_family = "";
    for s in data {
        if s.family != last_family {
            out.push_str(&format!(
                "# TYPE {} {}\n",
                s.family,
                if s.counter { "counter" } else { "gauge" }
            ));
            last_family = s.family;
        }
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        for (t, v) in &s.samples {
            out.push_str(&format!(
                "{}{{{}}} {} {}.{:03}\n",
                sample_name(s),
                labels.join(","),
                v,
                t / 1000,
                t % 1000
            ));
        }
    }
    out.push_str("# EOF\n");
    out
}

fn otlp(data: &[SeriesDef]) -> ExportMetricsServiceRequest {
    let metrics = data
        .iter()
        .map(|s| {
            let points = s
                .samples
                .iter()
                .map(|(t, v)| NumberDataPoint {
                    attributes: s
                        .labels
                        .iter()
                        .map(|(k, v)| KeyValue {
                            key: (*k).into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue((*v).into())),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                    time_unix_nano: (*t as u64) * 1_000_000,
                    value: Some(number_data_point::Value::AsDouble(*v)),
                    ..Default::default()
                })
                .collect();
            let data = if s.counter {
                Data::Sum(Sum {
                    data_points: points,
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                })
            } else {
                Data::Gauge(Gauge {
                    data_points: points,
                })
            };
            Metric {
                name: s.family.into(),
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: None,
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Kills the Prometheus child when the test ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(bin: &str) -> bool {
    Command::new("which")
        .arg(bin)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs Debian's `prometheus` package when `prometheus` or `promtool` is missing.
fn ensure_prometheus() {
    if have("prometheus") && have("promtool") {
        return;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let installed = apt(&["update"]) && apt(&["install", "-y", "prometheus"]);
    assert!(
        installed && have("prometheus") && have("promtool"),
        "the differential test needs Prometheus: `apt-get install -y prometheus` failed; install the \
         Debian package `prometheus` (it provides `prometheus` and `promtool`) and rerun"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_prometheus(dir: &std::path::Path, data: &[SeriesDef]) -> (ChildGuard, String) {
    let om = dir.join("data.om.txt");
    std::fs::write(&om, openmetrics(data)).unwrap();
    let tsdb = dir.join("tsdb");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&tsdb)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let guard = ChildGuard(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.get(format!("{base}/-/ready")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not become ready within 60s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (guard, base)
}

async fn start_pharos(data: &[SeriesDef]) -> String {
    let store = MetricsStore::new();
    let mut req = otlp(data);
    let rejected = store.sanitize(&mut req);
    assert_eq!(rejected.count, 0, "{}", rejected.message);
    store.apply(&req);
    let app = pharos_metrics::api::router(Arc::new(store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query_string(params: &[(&str, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One request: path, parameters, and what must agree.
type Case = (&'static str, Vec<(&'static str, String)>, Compare);

/// What a request must agree on.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    /// The whole body.
    Body,
    /// Status and `errorType` only (parse errors are worded by different parsers).
    ErrorType,
}

async fn fetch(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    params: &[(&str, String)],
    post: bool,
) -> (u16, Value) {
    let qs = query_string(params);
    let resp = if post {
        client
            .post(format!("{base}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(qs)
            .send()
            .await
    } else {
        client.get(format!("{base}{path}?{qs}")).send().await
    }
    .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let mut v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    if let Some(o) = v.as_object_mut() {
        o.remove("warnings");
        o.remove("infos");
    }
    (status, v)
}

#[tokio::test(flavor = "multi_thread")]
async fn pharos_answers_like_prometheus() {
    ensure_prometheus();
    let dir = tempfile::tempdir().unwrap();
    let data = dataset();
    let (_prometheus, prom) = start_prometheus(dir.path(), &data).await;
    let pharos = start_pharos(&data).await;
    let client = reqwest::Client::new();

    let s = |v: &str| v.to_owned();
    let t = |offset: i64| (T + offset).to_string();
    let mut cases: Vec<Case> = Vec::new();

    let selectors = [
        "temp",
        "reqs_total",
        "weird",
        r#"{__name__=~"temp|reqs_total"}"#,
        r#"temp{room!="a"}"#,
        r#"temp{room=~"a|c"}"#,
        r#"reqs_total{method!~"g.*"}"#,
        r#"{__name__=~".+", code=""}"#,
        r#"temp{floor=~"1|2", room!~"b"}"#,
        r#"reqs_total{code=~"5.."} offset 10m"#,
        "temp @ 1700000600",
        "temp @ 1700003500 offset 2m",
        "temp[5m]",
        r#"reqs_total{method="post"}[20m]"#,
        "reqs_total[2m] offset 1m",
        "weird[10m] @ 1700000450",
        "42",
        "-1.5",
        r#""some string""#,
    ];
    // Before any sample, early, just inside and just past the lookback after the last
    // sample before the gap, inside the gap, after the gap, and long after everything.
    let times = [
        -100, 100, 450, 1500, 1810, 2100, 2110, 2500, 3300, 3600, 5000, 86_400,
    ];
    for q in selectors {
        for &at in &times {
            cases.push((
                "/api/v1/query",
                vec![("query", s(q)), ("time", t(at))],
                Compare::Body,
            ));
        }
    }
    for q in [
        "temp",
        r#"reqs_total{method="post"}"#,
        r#"{__name__=~"temp|weird"}"#,
        "temp offset 3m",
        "7",
    ] {
        for (start, end, step) in [
            (0, 3600, "60"),
            (-200, 3900, "97"),
            (1000, 4000, "1m30s"),
            (0, 7200, "300"),
            (1800, 2400, "15s"),
        ] {
            cases.push((
                "/api/v1/query_range",
                vec![
                    ("query", s(q)),
                    ("start", t(start)),
                    ("end", t(end)),
                    ("step", s(step)),
                ],
                Compare::Body,
            ));
        }
    }
    cases.push((
        "/api/v1/query",
        vec![("query", s("temp")), ("time", s("2023-11-14T22:20:00Z"))],
        Compare::Body,
    ));
    cases.push((
        "/api/v1/query",
        vec![
            ("query", s("temp")),
            ("time", s("2023-11-14T23:20:00.5+01:00")),
        ],
        Compare::Body,
    ));

    for m in [
        vec!["temp"],
        vec!["reqs_total", r#"{room="b"}"#],
        vec![r#"{__name__=~"w.*"}"#],
    ] {
        let p: Vec<(&str, String)> = m.iter().map(|x| ("match[]", s(x))).collect();
        cases.push(("/api/v1/series", p.clone(), Compare::Body));
        cases.push(("/api/v1/labels", p.clone(), Compare::Body));
        cases.push(("/api/v1/label/room/values", p.clone(), Compare::Body));
        let mut ranged = p.clone();
        ranged.extend([("start", t(-3600)), ("end", t(90_000))]);
        cases.push(("/api/v1/series", ranged, Compare::Body));
    }
    cases.push(("/api/v1/labels", vec![], Compare::Body));
    for name in ["__name__", "room", "method", "quote", "nope"] {
        cases.push((
            Box::leak(format!("/api/v1/label/{name}/values").into_boxed_str()),
            vec![],
            Compare::Body,
        ));
    }

    // Errors.
    cases.push((
        "/api/v1/query",
        vec![("query", s("temp")), ("time", s("x"))],
        Compare::Body,
    ));
    cases.push((
        "/api/v1/query",
        vec![("query", s("temp")), ("timeout", s("zz"))],
        Compare::Body,
    ));
    cases.push((
        "/api/v1/query",
        vec![("query", s("temp{"))],
        Compare::ErrorType,
    ));
    cases.push(("/api/v1/query", vec![("query", s(""))], Compare::Body));
    cases.push((
        "/api/v1/query_range",
        vec![("query", s("temp")), ("start", s("x"))],
        Compare::Body,
    ));
    cases.push((
        "/api/v1/query_range",
        vec![("query", s("temp")), ("start", t(0))],
        Compare::Body,
    ));
    cases.push((
        "/api/v1/query_range",
        vec![
            ("query", s("temp")),
            ("start", t(10)),
            ("end", t(0)),
            ("step", s("1")),
        ],
        Compare::Body,
    ));
    for step in ["0", "-5", "x"] {
        cases.push((
            "/api/v1/query_range",
            vec![
                ("query", s("temp")),
                ("start", t(0)),
                ("end", t(10)),
                ("step", s(step)),
            ],
            Compare::Body,
        ));
    }
    cases.push((
        "/api/v1/query_range",
        vec![
            ("query", s("temp")),
            ("start", t(0)),
            ("end", t(11_001)),
            ("step", s("1")),
        ],
        Compare::Body,
    ));
    cases.push((
        "/api/v1/query_range",
        vec![
            ("query", s("temp[5m]")),
            ("start", t(0)),
            ("end", t(10)),
            ("step", s("1")),
        ],
        Compare::Body,
    ));
    cases.push((
        "/api/v1/query_range",
        vec![
            ("query", s(r#""str""#)),
            ("start", t(0)),
            ("end", t(10)),
            ("step", s("1")),
        ],
        Compare::Body,
    ));
    cases.push(("/api/v1/series", vec![], Compare::Body));
    cases.push((
        "/api/v1/series",
        vec![("match[]", s("temp{"))],
        Compare::ErrorType,
    ));
    cases.push((
        "/api/v1/series",
        vec![("match[]", s("temp")), ("start", s("x"))],
        Compare::Body,
    ));
    cases.push(("/api/v1/label/1x/values", vec![], Compare::Body));

    let mut failures = Vec::new();
    for (i, (path, params, compare)) in cases.iter().enumerate() {
        let post = i % 2 == 1 && !path.contains("/label/");
        let want = fetch(&client, &prom, path, params, post).await;
        let got = fetch(&client, &pharos, path, params, post).await;
        let equal = match compare {
            Compare::Body => want == got,
            Compare::ErrorType => want.0 == got.0 && want.1["errorType"] == got.1["errorType"],
        };
        if !equal {
            failures.push(format!(
                "{} {path}?{}\n  prometheus: {} {}\n  pharos:     {} {}",
                if post { "POST" } else { "GET" },
                query_string(params),
                want.0,
                want.1,
                got.0,
                got.1
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
