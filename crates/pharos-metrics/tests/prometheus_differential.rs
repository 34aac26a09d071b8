//! Differential test against the real Prometheus (Debian's `prometheus` package, which
//! ships `promtool`): the same samples are loaded into Prometheus (through
//! `promtool tsdb create-blocks-from openmetrics`) and into a [`MetricsStore`] (as OTLP
//! through `apply`), then the same API requests go to both and the JSON must be equal.
//!
//! Sample timestamps carry milliseconds and query times are whole seconds, so no sample
//! sits on a window boundary: Prometheus 2.x closes lookback and range windows on the
//! left, Prometheus 3 (and Pharos) opens them. Parse error messages differ between the
//! parsers, so for those only the status and `errorType` are compared.
//!
//! The PromQL corpus ([`promql_corpus`]) covers every operator, aggregation and function
//! Prometheus 2.42 shares with Prometheus 3, over counters with resets, classic
//! histograms, several label dimensions and gaps. Subqueries are evaluated at odd second
//! offsets so that no subquery step lands on a window's left edge (2.42 closes it, 3
//! opens it). Instant-vector results are compared as sets (sorted by labels) except for
//! `sort`/`sort_desc`, because Prometheus leaves the order of other vectors unspecified
//! (it follows hash-map iteration for several operators).
//!
//! Deliberate differences, each compared with [`Compare::Approx`] (relative tolerance
//! 1e-9 on sample values, everything else exact):
//! - `sum`, `avg`, `sum_over_time`, `avg_over_time`, `stddev*`, `stdvar*` and the rates
//!   of sums: Prometheus 3 sums with Kahan-Neumaier compensation and computes `avg` as a
//!   compensated sum divided by the count; 2.42 adds plainly and averages incrementally,
//!   so the last digit may differ.
//! - `^`, `exp`, `ln`, `log2`, `log10`, the trigonometric functions, `atan2`, `deriv`,
//!   `predict_linear`, `histogram_quantile`: Go's `math` package and Rust's (the
//!   platform libm) may round the last bit differently.
//! - `scalar(temp)`: 2.42 writes values under 1e-6 without an exponent
//!   (`0.0000000000000000555...`), Prometheus 3 (and Pharos) as `5.55...e-17`.
//!
//! `atan2` is queried on name-less operands only: Prometheus 3 drops the metric name for
//! `atan2` as for the other arithmetic operators, 2.42 kept it.
//!
//! Execution errors (many-to-many matching, duplicate label sets) are compared on status,
//! `errorType` and message ([`Compare::Message`]), ignoring the rest of the body.
//!
//! Query statistics (`stats=all`, Prometheus started with `promql-per-step-stats`) are
//! compared on `totalQueryableSamples` and `totalQueryableSamplesPerStep`, which both
//! count the same way; timings vary and `peakSamples` follows each engine's own
//! evaluation order, so those only have to be there. 2.42 has no `parse_query` (added
//! in 3.0); its tree is compared only against a Prometheus that answers it.
//!
//! Not compared here, because 2.42 lacks them or behaves as 2.x did: `limitk`,
//! `limit_ratio`, `sort_by_label*`, `first_over_time`, `mad_over_time`,
//! `double_exponential_smoothing` (2.x `holt_winters`), and `rate` over a window whose
//! first sample sits more than 1.1 average intervals after its start while the counter's
//! zero point is closer than that (3 applies the zero floor after the extrapolation
//! limit, 2.42 before). Those have unit tests against the Prometheus 3 documentation.

mod common;

use common::ChildGuard;
use std::process::Command;
use std::sync::Arc;

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
        // Counters with resets, two label dimensions, one with a gap of 25 minutes.
        SeriesDef {
            family: "jobs",
            counter: true,
            labels: vec![("job", "api"), ("instance", "i1")],
            samples: every(T * 1000 + 2_375, 15, 400, &|k| {
                ((k % 97) * 7 + 1000 * ((k % 97 > 0) as i64)) as f64
            }),
        },
        SeriesDef {
            family: "jobs",
            counter: true,
            labels: vec![("job", "api"), ("instance", "i2")],
            samples: every(T * 1000 + 9_125, 30, 200, &|k| {
                ((k % 61) * 11 + (k / 61) * 3) as f64
            }),
        },
        SeriesDef {
            family: "jobs",
            counter: true,
            labels: vec![("job", "db"), ("instance", "i1")],
            samples: {
                let mut v = every(T * 1000 + 4_500, 20, 90, &|k| (5000 + k * k) as f64);
                v.extend(every((T + 3300) * 1000 + 4_500, 20, 90, &|k| {
                    (k * 13) as f64
                }));
                v
            },
        },
    ]
    .into_iter()
    .chain(histogram())
    .chain([SeriesDef {
        family: "weird",
        counter: false,
        labels: vec![("path", "/a/b"), ("quote", "x\"y<z>")],
        samples: every(T * 1000 + 1_001, 100, 5, &|k| 1e-3 * k as f64),
    }])
    .collect()
}

/// Classic histograms `lat_bucket{svc, le}`: cumulative bucket counters every 30s for two
/// services; `db`'s 0.5 bucket dips below its 0.25 bucket now and then, which
/// `histogram_quantile` must repair.
fn histogram() -> Vec<SeriesDef> {
    let bounds: [(&'static str, i64); 5] =
        [("0.1", 2), ("0.25", 5), ("0.5", 9), ("1", 12), ("+Inf", 13)];
    let mut out = Vec::new();
    for (svc, skew, offset_ms) in [("api", 1, 6_250), ("db", 3, 8_750)] {
        for (i, &(le, weight)) in bounds.iter().enumerate() {
            let samples = (0..150)
                .map(|k: i64| {
                    let mut v = (k * weight * skew + k * k % (7 + i as i64)) as f64;
                    if svc == "db" && le == "0.5" && k % 9 == 4 {
                        v = (k * 5 * skew) as f64 - 2.0;
                    }
                    (T * 1000 + offset_ms + k * 30_000, v.max(0.0))
                })
                .collect();
            out.push(SeriesDef {
                family: "lat_bucket",
                counter: false,
                labels: vec![("svc", svc), ("le", le)],
                samples,
            });
        }
    }
    out
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

fn ensure_prometheus() {
    common::ensure_package("prometheus", &["prometheus", "promtool"]);
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
    common::start_prometheus(
        dir,
        &[
            "--storage.tsdb.retention.time=100y",
            "--enable-feature=promql-per-step-stats",
        ],
    )
    .await
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
    /// The whole body, sample values within a relative 1e-9 (see the module docs).
    Approx,
    /// The error message only (see the module docs on execution errors).
    Message,
}

/// Returns whether two response bodies agree, sample values within a relative `tol`.
fn approx_eq(a: &Value, b: &Value, tol: f64) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| approx_eq(v, w, tol)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| approx_eq(v, w, tol))
        }
        (Value::String(x), Value::String(y)) if x != y => {
            match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(p), Ok(q)) => (p - q).abs() <= tol * p.abs().max(q.abs()),
                _ => false,
            }
        }
        _ => a == b,
    }
}

/// Sorts an instant query's vector result by labels (see the module docs).
fn normalize(v: &mut Value, query: &str) {
    if query.trim_start().starts_with("sort") {
        return;
    }
    if v["data"]["resultType"] != "vector" {
        return;
    }
    if let Some(result) = v["data"]["result"].as_array_mut() {
        result.sort_by_key(|s| s["metric"].to_string());
    }
}

/// The PromQL corpus: `(query, compare)` pairs, each run as instant queries at
/// [`CORPUS_TIMES`] and as range queries over [`CORPUS_RANGES`].
fn promql_corpus() -> Vec<(&'static str, Compare)> {
    use Compare::{Approx, Body, Message};
    vec![
        // Arithmetic, comparison and set operators.
        ("jobs_total + 1", Body),
        ("2 * jobs_total - 3", Body),
        ("jobs_total / 7", Body),
        ("jobs_total % 13", Body),
        ("-jobs_total", Body),
        ("jobs_total ^ 0.5", Approx),
        ("2 ^ 3 ^ 2", Body),
        ("(jobs_total + 0) atan2 100", Approx),
        ("1 + 2 * 3 - 4 / 8", Body),
        ("(1 + 2) * 3 % 4", Body),
        ("time() - 1700000000", Body),
        ("jobs_total > 1000", Body),
        ("jobs_total < 300", Body),
        ("jobs_total >= bool 1000", Body),
        ("jobs_total != bool 0", Body),
        ("500 < jobs_total", Body),
        ("500 > bool jobs_total", Body),
        ("1 == bool 1", Body),
        ("jobs_total == jobs_total", Body),
        ("jobs_total > on(job, instance) jobs_total * 0.5", Body),
        (
            r#"jobs_total{job="api"} - ignoring(instance) jobs_total{instance="i2"}"#,
            Message,
        ),
        (
            r#"jobs_total{instance="i1"} / on(instance) group_left jobs_total{job="db"}"#,
            Body,
        ),
        (
            r#"jobs_total{job="db"} / on(instance) group_right jobs_total{instance="i1"}"#,
            Body,
        ),
        (
            r#"jobs_total * on(job) group_left(svc) lat_bucket{le="+Inf", svc="api"}"#,
            Message,
        ),
        (
            r#"sum by (job) (jobs_total) / on(job) group_left jobs_total"#,
            Message,
        ),
        (r#"jobs_total + on(job) sum by (job) (jobs_total)"#, Message),
        (
            r#"jobs_total{instance="i1"} * on(instance) group_left(job) sum by (instance, job) (jobs_total{job="api"})"#,
            Message,
        ),
        ("jobs_total - on() group_left sum(jobs_total)", Approx),
        ("jobs_total + on(instance) jobs_total", Message),
        ("jobs_total and jobs_total > 1000", Body),
        (r#"jobs_total and on(instance) jobs_total{job="db"}"#, Body),
        ("jobs_total or lat_bucket", Body),
        (
            r#"jobs_total{job="api"} or jobs_total{instance="i1"}"#,
            Body,
        ),
        ("jobs_total unless jobs_total < 500", Body),
        (
            r#"jobs_total unless on(job) jobs_total{instance="i2"}"#,
            Body,
        ),
        ("temp > bool 20 or temp", Body),
        (r#"{__name__=~"jobs_total|temp"} * 2"#, Message),
        ("vector(1) + vector(2)", Body),
        ("vector(time()) > bool 1700001000", Body),
        // Aggregations.
        ("sum(jobs_total)", Approx),
        ("sum by (job) (jobs_total)", Approx),
        ("sum without (instance) (jobs_total)", Approx),
        (
            r#"sum by (__name__) ({__name__=~"jobs_total|temp"})"#,
            Approx,
        ),
        ("avg by (instance) (jobs_total)", Approx),
        ("min by (job) (jobs_total)", Body),
        ("max without (job) (jobs_total)", Body),
        ("count(jobs_total)", Body),
        ("count by (le) (lat_bucket)", Body),
        ("group by (svc) (lat_bucket)", Body),
        ("stddev(jobs_total)", Approx),
        ("stdvar by (job) (jobs_total)", Approx),
        ("topk(2, jobs_total)", Body),
        ("bottomk(1, jobs_total)", Body),
        ("topk by (job) (1, jobs_total)", Body),
        ("bottomk without (instance) (1, jobs_total)", Body),
        ("topk(0, jobs_total)", Body),
        ("quantile(0.5, jobs_total)", Body),
        ("quantile by (svc) (0.9, lat_bucket)", Body),
        ("quantile(2, jobs_total)", Body),
        ("quantile(-1, jobs_total)", Body),
        (r#"count_values("value", floor(temp))"#, Body),
        (r#"count_values by (job) ("v", jobs_total % 3)"#, Body),
        (
            r#"count_values without (instance) ("v", jobs_total > bool 500)"#,
            Body,
        ),
        ("sum(sum by (job) (jobs_total))", Approx),
        ("max(rate(jobs_total[5m])) by (job)", Approx),
        // Range-vector functions.
        ("rate(jobs_total[5m])", Approx),
        ("rate(jobs_total[1m])", Approx),
        ("rate(reqs_total[10m])", Approx),
        ("increase(jobs_total[10m])", Approx),
        ("increase(jobs_total[2m] offset 5m)", Approx),
        ("sum by (job) (rate(jobs_total[5m]))", Approx),
        ("irate(jobs_total[2m])", Approx),
        ("idelta(temp[5m])", Approx),
        ("delta(temp[10m])", Approx),
        ("deriv(temp[10m])", Approx),
        ("predict_linear(temp[10m], 600)", Approx),
        ("predict_linear(jobs_total[5m], 60)", Approx),
        ("resets(jobs_total[30m])", Body),
        ("changes(temp[15m])", Body),
        ("avg_over_time(temp[10m])", Approx),
        ("min_over_time(temp[10m])", Body),
        ("max_over_time(jobs_total[10m])", Body),
        ("sum_over_time(temp[10m])", Approx),
        ("count_over_time(jobs_total[5m])", Body),
        ("quantile_over_time(0.25, temp[30m])", Approx),
        ("stddev_over_time(temp[10m])", Approx),
        ("stdvar_over_time(jobs_total[5m])", Approx),
        ("last_over_time(temp[10m])", Body),
        ("present_over_time(reqs_total[10m])", Body),
        ("absent_over_time(temp[1m])", Body),
        (r#"absent_over_time(nope{a="b"}[5m])"#, Body),
        ("rate(jobs_total[5m] @ 1700002000)", Approx),
        ("max_over_time(temp[5m] @ end())", Body),
        (
            r#"count_over_time({__name__=~"jobs_total|temp"}[5m])"#,
            Message,
        ),
        // Instant-vector functions.
        ("abs(temp - 20)", Body),
        ("ceil(temp)", Body),
        ("floor(temp)", Body),
        ("round(temp)", Body),
        ("round(temp, 0.3)", Body),
        ("exp(temp / 10)", Approx),
        ("ln(jobs_total)", Approx),
        ("log2(jobs_total)", Approx),
        ("log10(jobs_total)", Approx),
        ("sqrt(jobs_total)", Body),
        ("sgn(temp - 20)", Body),
        ("clamp(temp, 19, 21)", Body),
        ("clamp(temp, 21, 19)", Body),
        ("clamp_min(temp, 20)", Body),
        ("clamp_max(jobs_total, 1000)", Body),
        ("sin(temp)", Approx),
        ("cos(temp)", Approx),
        ("tan(temp)", Approx),
        ("asin(temp / 100)", Approx),
        ("acos(temp / 100)", Approx),
        ("atan(temp)", Approx),
        ("sinh(temp / 10)", Approx),
        ("cosh(temp / 10)", Approx),
        ("tanh(temp / 10)", Approx),
        ("asinh(temp)", Approx),
        ("acosh(temp)", Approx),
        ("atanh(temp / 100)", Approx),
        ("deg(temp)", Approx),
        ("rad(temp)", Approx),
        ("pi()", Body),
        (r#"scalar(temp{room="a"})"#, Body),
        ("scalar(temp)", Approx),
        ("vector(3)", Body),
        ("time()", Body),
        ("timestamp(temp)", Body),
        ("timestamp(temp offset 2m)", Body),
        ("timestamp(sum(temp))", Body),
        ("minute()", Body),
        ("hour(vector(1700000000))", Body),
        ("day_of_month()", Body),
        ("day_of_week(vector(time()))", Body),
        ("day_of_year()", Body),
        ("days_in_month(vector(1709214300))", Body),
        ("month()", Body),
        ("year(timestamp(temp))", Body),
        ("absent(temp)", Body),
        (r#"absent(nope{job="x", instance=~"y"})"#, Body),
        ("absent(sum(nope))", Body),
        ("sort(jobs_total)", Body),
        ("sort_desc(jobs_total)", Body),
        (
            r#"label_replace(jobs_total, "host", "$1-x", "instance", "i(.*)")"#,
            Body,
        ),
        (
            r#"label_replace(jobs_total, "job", "", "job", "a.*")"#,
            Body,
        ),
        (
            r#"label_replace(jobs_total, "instance", "all", "instance", ".*")"#,
            Message,
        ),
        (
            r#"label_join(jobs_total, "id", "/", "job", "instance")"#,
            Body,
        ),
        (r#"label_join(temp, "floor", ",", "room")"#, Body),
        ("histogram_quantile(0.5, lat_bucket)", Approx),
        ("histogram_quantile(0.9, rate(lat_bucket[5m]))", Approx),
        (
            "histogram_quantile(0.99, sum by (le) (rate(lat_bucket[10m])))",
            Approx,
        ),
        ("histogram_quantile(0, lat_bucket)", Approx),
        ("histogram_quantile(1, lat_bucket)", Approx),
        ("histogram_quantile(1.5, lat_bucket)", Body),
        ("histogram_quantile(0.5, temp)", Body),
        // Subqueries.
        ("max_over_time(temp[10m:1m])", Body),
        ("rate(jobs_total[5m:30s])", Approx),
        ("avg_over_time(rate(jobs_total[2m])[10m:1m])", Approx),
        ("min_over_time(sum by (job) (jobs_total)[15m:2m])", Approx),
        ("sum_over_time(temp[6m:2m] offset 3m)", Approx),
        ("count_over_time(temp[10m:1m] @ 1700001800)", Body),
        ("max_over_time(max_over_time(temp[3m])[9m:3m])", Body),
        ("last_over_time((temp > 19)[10m:])", Body),
        ("deriv(sum(jobs_total)[10m:1m])", Approx),
    ]
}

/// Instant query times for the corpus: odd second offsets (no subquery step on a window
/// edge), before data, in the middle, around the gaps and after everything.
const CORPUS_TIMES: [i64; 7] = [-101, 457, 1507, 2113, 3601, 4999, 9001];

/// Range queries for the corpus: `(start, end, step)` offsets, steps even so that starts
/// at odd offsets never meet a subquery step.
const CORPUS_RANGES: [(i64, i64, &str); 2] = [(7, 6007, "120"), (1501, 2401, "30")];

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
    let corpus = promql_corpus();
    for &(q, compare) in &corpus {
        for &at in &CORPUS_TIMES {
            cases.push((
                "/api/v1/query",
                vec![("query", s(q)), ("time", t(at))],
                compare,
            ));
        }
        for (start, end, step) in CORPUS_RANGES {
            cases.push((
                "/api/v1/query_range",
                vec![
                    ("query", s(q)),
                    ("start", t(start)),
                    ("end", t(end)),
                    ("step", s(step)),
                ],
                compare,
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
        let mut want = fetch(&client, &prom, path, params, post).await;
        let mut got = fetch(&client, &pharos, path, params, post).await;
        if let Some((_, q)) = params.iter().find(|(k, _)| *k == "query") {
            normalize(&mut want.1, q);
            normalize(&mut got.1, q);
        }
        let equal = match compare {
            Compare::Body => want == got,
            Compare::ErrorType => want.0 == got.0 && want.1["errorType"] == got.1["errorType"],
            Compare::Approx => want.0 == got.0 && approx_eq(&want.1, &got.1, 1e-9),
            Compare::Message => {
                if want.0 == 200 {
                    want == got
                } else {
                    want.0 == got.0
                        && want.1["errorType"] == got.1["errorType"]
                        && want.1["error"] == got.1["error"]
                }
            }
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
    eprintln!(
        "{} requests ({} PromQL corpus queries), {} differ",
        cases.len(),
        corpus.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// `stats`: Pharos must count the samples a query loads as Prometheus does, in total and
/// per step, for the whole corpus; timings and `peakSamples` must be there. Then
/// `parse_query`, where the Prometheus at hand has it.
#[tokio::test(flavor = "multi_thread")]
async fn stats_and_parse_query_like_prometheus() {
    ensure_prometheus();
    let dir = tempfile::tempdir().unwrap();
    let data = dataset();
    let (_prometheus, prom) = start_prometheus(dir.path(), &data).await;
    let pharos = start_pharos(&data).await;
    let client = reqwest::Client::new();
    let t = |offset: i64| (T + offset).to_string();

    let mut queries: Vec<&str> = promql_corpus().into_iter().map(|(q, _)| q).collect();
    queries.extend([
        "temp",
        "temp @ 1700000600",
        "temp[5m]",
        "weird[10m] @ 1700000450",
        "reqs_total[2m] offset 1m",
        "temp[10m:1m]",
        "(rate(jobs_total[2m]))[10m:1m]",
        // Outer steps are multiples of 2m, so an inner window's left edge sits 30s off
        // the inner subquery's points (2.42 closes that edge, 3 opens it).
        "max_over_time(temp[2m30s:1m])[10m:2m]",
        "42",
    ]);
    let mut cases: Vec<(&str, Vec<(&str, String)>)> = Vec::new();
    for &q in &queries {
        for &at in &CORPUS_TIMES {
            cases.push((
                "/api/v1/query",
                vec![
                    ("query", q.into()),
                    ("time", t(at)),
                    ("stats", "all".into()),
                ],
            ));
        }
        for (start, end, step) in CORPUS_RANGES {
            cases.push((
                "/api/v1/query_range",
                vec![
                    ("query", q.into()),
                    ("start", t(start)),
                    ("end", t(end)),
                    ("step", step.into()),
                    ("stats", "all".into()),
                ],
            ));
        }
    }
    let mut failures = Vec::new();
    let mut compared = 0;
    for (i, (path, params)) in cases.iter().enumerate() {
        let post = i % 2 == 1;
        let want = fetch(&client, &prom, path, params, post).await;
        let got = fetch(&client, &pharos, path, params, post).await;
        if want.0 != 200 || got.0 != 200 {
            if want.0 != got.0 {
                failures.push(format!(
                    "{path}?{}: status {} vs {}",
                    query_string(params),
                    want.0,
                    got.0
                ));
            }
            continue;
        }
        compared += 1;
        let (w, g) = (&want.1["data"]["stats"], &got.1["data"]["stats"]);
        let keys = |v: &Value| -> Vec<String> {
            v["timings"]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        let fine = w["samples"]["totalQueryableSamples"] == g["samples"]["totalQueryableSamples"]
            && w["samples"]["totalQueryableSamplesPerStep"]
                == g["samples"]["totalQueryableSamplesPerStep"]
            && g["samples"]["peakSamples"].is_u64()
            && keys(w).len() == 6
            && keys(w) == keys(g)
            && g["timings"]
                .as_object()
                .is_some_and(|o| o.values().all(|v| v.as_f64().is_some_and(|f| f >= 0.0)));
        if !fine {
            failures.push(format!(
                "{} {path}?{}\n  prometheus: {}\n  pharos:     {}",
                if post { "POST" } else { "GET" },
                query_string(params),
                w,
                g
            ));
        }
    }
    // Any other non-empty value: stats without the per-step counts; none without it.
    for (stats, per_step) in [("1", false), ("true", false), ("all", true)] {
        let params = vec![
            ("query", "sum(temp)".into()),
            ("time", t(457)),
            ("stats", stats.into()),
        ];
        for base in [&prom, &pharos] {
            let (_, v) = fetch(&client, base, "/api/v1/query", &params, false).await;
            let samples = &v["data"]["stats"]["samples"];
            assert_eq!(
                samples["totalQueryableSamples"], 2,
                "{base} stats={stats}: {v}"
            );
            assert_eq!(
                samples.get("totalQueryableSamplesPerStep").is_some(),
                per_step,
                "{base} stats={stats}: {v}"
            );
        }
    }
    for base in [&prom, &pharos] {
        let params = vec![("query", "sum(temp)".into()), ("time", t(457))];
        let (_, v) = fetch(&client, base, "/api/v1/query", &params, false).await;
        assert!(v["data"].get("stats").is_none(), "{base}: {v}");
    }
    eprintln!(
        "{} stats requests, {compared} compared, {} differ",
        cases.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} stats requests differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // parse_query: compared only where Prometheus has it (3.0 and later).
    let probe = fetch_raw(&client, &prom, "/api/v1/parse_query?query=up").await;
    if probe.0 == 404 {
        eprintln!("this Prometheus has no parse_query; its tree is covered by unit tests");
        return;
    }
    let mut differ = Vec::new();
    for &q in &queries {
        let uri = format!("/api/v1/parse_query?query={}", enc(q));
        let want = fetch_raw(&client, &prom, &uri).await;
        let got = fetch_raw(&client, &pharos, &uri).await;
        if want.0 == 200 && want != got {
            differ.push(format!(
                "{q}\n  prometheus: {}\n  pharos:     {}",
                want.1, got.1
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "parse_query differs:\n{}",
        differ.join("\n")
    );
}

/// One GET, the body as bytes came.
async fn fetch_raw(client: &reqwest::Client, base: &str, uri: &str) -> (u16, String) {
    let resp = client.get(format!("{base}{uri}")).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}
