//! LogQL through Loki's HTTP API against the real binary: metric queries (matrix and
//! vector), live tail over a WebSocket, `index/stats`, `detected_fields`, `/ready`, and
//! the logs of a trace found from logs the OpenTelemetry SDK emitted inside spans.

mod common;

use common::{Pharos, get_json, get_json_q, tempdir};
use futures_util::StreamExt;
use opentelemetry::logs::{AnyValue as LogValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use serde_json::{Value, json};

const S: i64 = 1_000_000_000;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

async fn push(p: &Pharos, body: &Value) {
    let resp = reqwest::Client::new()
        .post(p.h("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
}

/// 300 logfmt lines over 5 minutes from two apps, levels cycling.
fn lines(t0: i64) -> Vec<(String, i64, String)> {
    let levels = ["info", "warn", "error"];
    (0..300)
        .map(|i| {
            let app = if i % 2 == 0 { "api" } else { "web" };
            let level = levels[(i / 2 % 3) as usize];
            (
                app.to_string(),
                t0 + i * S,
                format!("level={level} took={}ms path=/p{}", (i * 13) % 500, i % 3),
            )
        })
        .collect()
}

#[tokio::test]
async fn metric_queries_answer_matrix_and_vector_as_loki() {
    let dir = tempdir();
    let p = Pharos::start(dir.path());
    let t0 = (now_ns() / S - 600) * S;
    let data = lines(t0);
    let streams: Vec<Value> = ["api", "web"]
        .iter()
        .map(|app| {
            let values: Vec<Value> = data
                .iter()
                .filter(|d| d.0 == *app)
                .map(|d| json!([d.1.to_string(), d.2]))
                .collect();
            json!({"stream": {"job": "shop", "app": app}, "values": values})
        })
        .collect();
    push(&p, &json!({ "streams": streams })).await;

    // A range query: sum by (level) of count_over_time, checked against a count here.
    let (start, end, step) = (t0 + 60 * S, t0 + 300 * S, 30 * S);
    let got = get_json_q(
        &p.q("/loki/api/v1/query_range"),
        &[
            (
                "query",
                r#"sum by (level) (count_over_time({job="shop"} | logfmt [1m]))"#,
            ),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("step", "30s"),
        ],
    )
    .await;
    assert_eq!(got["status"], "success");
    assert_eq!(got["data"]["resultType"], "matrix");
    let result = got["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 3, "{got}");
    for series in result {
        let level = series["metric"]["level"].as_str().unwrap();
        assert_eq!(series["metric"].as_object().unwrap().len(), 1);
        let values = series["values"].as_array().unwrap();
        let mut t = start;
        let mut i = 0;
        while t <= end {
            let want = data
                .iter()
                .filter(|d| {
                    d.1 > t - 60 * S && d.1 <= t && d.2.contains(&format!("level={level} "))
                })
                .count();
            if want > 0 {
                assert_eq!(values[i][0], json!(t / S), "{level} at {t}");
                assert_eq!(values[i][1], json!(want.to_string()), "{level} at {t}");
                i += 1;
            }
            t += step;
        }
        assert_eq!(i, values.len());
    }

    // An instant query answers a vector; unwrap with a duration conversion.
    let at = t0 + 299 * S;
    let got = get_json_q(
        &p.q("/loki/api/v1/query"),
        &[
            (
                "query",
                r#"max_over_time({job="shop"} | logfmt | unwrap duration(took) [5m]) by (app)"#,
            ),
            ("time", &at.to_string()),
        ],
    )
    .await;
    assert_eq!(got["data"]["resultType"], "vector", "{got}");
    let result = got["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    for r in result {
        let app = r["metric"]["app"].as_str().unwrap();
        let want = data
            .iter()
            .filter(|d| d.0 == app && d.1 > at - 300 * S && d.1 <= at)
            .map(|d| {
                d.2.split("took=")
                    .nth(1)
                    .unwrap()
                    .split("ms")
                    .next()
                    .unwrap()
                    .parse::<f64>()
                    .unwrap()
                    / 1000.0
            })
            .fold(f64::MIN, f64::max);
        assert_eq!(r["value"][0], json!(at / S));
        assert_eq!(r["value"][1], json!(want.to_string()));
    }

    // A scalar, a pipeline error and a parse error.
    let got = get_json_q(&p.q("/loki/api/v1/query"), &[("query", "1 + 2 * 3")]).await;
    assert_eq!(got["data"]["resultType"], "scalar");
    assert_eq!(got["data"]["result"][1], "7");
    for (query, needle) in [
        (
            r#"count_over_time({job="shop"} | json [1m])"#,
            "pipeline error: 'JSONParserErr'",
        ),
        (r#"sum(count_over_time({job="shop"}))"#, "parse error"),
    ] {
        let resp = reqwest::Client::new()
            .get(p.q("/loki/api/v1/query"))
            .query(&[("query", query), ("time", &at.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let text = resp.text().await.unwrap();
        assert!(text.contains(needle), "{query}: {text}");
    }

    // Log queries with parsers, label filters and formatting.
    let got = get_json_q(
        &p.q("/loki/api/v1/query_range"),
        &[
            (
                "query",
                r#"{job="shop", app="api"} | logfmt | level="error" and took > 400ms | line_format "{{.path}} {{.took}}""#,
            ),
            ("start", &t0.to_string()),
            ("end", &(t0 + 300 * S).to_string()),
            ("limit", "1000"),
            ("direction", "forward"),
        ],
    )
    .await;
    let mut got_lines: Vec<String> = got["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .map(|v| v[1].as_str().unwrap().to_string())
        .collect();
    got_lines.sort();
    let mut want: Vec<String> = data
        .iter()
        .filter(|d| d.0 == "api" && d.2.starts_with("level=error"))
        .filter_map(|d| {
            let took: i64 =
                d.2.split("took=")
                    .nth(1)?
                    .split("ms")
                    .next()?
                    .parse()
                    .ok()?;
            (took > 400).then(|| format!("{} {took}ms", d.2.split("path=").nth(1).unwrap()))
        })
        .collect();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(got_lines, want);

    // index/stats, detected_fields, ready.
    let stats = get_json_q(
        &p.q("/loki/api/v1/index/stats"),
        &[
            ("query", r#"{job="shop"}"#),
            ("start", &t0.to_string()),
            ("end", &(t0 + 300 * S).to_string()),
        ],
    )
    .await;
    let bytes: usize = data.iter().map(|d| d.2.len()).sum();
    assert_eq!(
        stats,
        json!({"streams": 2, "chunks": 2, "entries": 300, "bytes": bytes})
    );
    let fields = get_json_q(
        &p.q("/loki/api/v1/detected_fields"),
        &[
            ("query", r#"{job="shop"}"#),
            ("start", &t0.to_string()),
            ("end", &(t0 + 300 * S).to_string()),
        ],
    )
    .await;
    let by_name: std::collections::BTreeMap<&str, &Value> = fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["label"].as_str().unwrap(), f))
        .collect();
    assert_eq!(
        by_name.keys().copied().collect::<Vec<_>>(),
        ["detected_level", "level", "path", "took"]
    );
    assert_eq!(
        by_name["detected_level"]["parsers"],
        Value::Null,
        "structured metadata"
    );
    assert_eq!(by_name["detected_level"]["cardinality"], 3);
    assert_eq!(by_name["level"]["cardinality"], 3);
    assert_eq!(by_name["took"]["type"], "duration");
    assert_eq!(by_name["path"]["parsers"], json!(["logfmt"]));
    let ready = reqwest::get(p.q("/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_message(ws: &mut Socket) -> Value {
    let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
        .await
        .expect("a tail message within 10 s")
        .unwrap()
        .unwrap();
    serde_json::from_str::<Value>(msg.to_text().unwrap()).unwrap()
}

#[tokio::test]
async fn tail_streams_new_lines_over_a_websocket() {
    let dir = tempdir();
    let p = Pharos::start(dir.path());
    let t = now_ns();
    push(&p, &json!({"streams": [{"stream": {"job": "tail"}, "values": [[(t - S).to_string(), "before"]]}]})).await;
    let url = format!(
        "ws://{}/loki/api/v1/tail?query={}&start={}",
        p.query,
        "%7Bjob%3D%22tail%22%7D%20%7C%3D%20%22keep%22%20or%20%22before%22",
        t - 60 * S
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let first = next_message(&mut ws).await;
    assert_eq!(first["streams"][0]["stream"]["job"], "tail");
    assert_eq!(
        first["streams"][0]["values"][0][1], "before",
        "history first"
    );
    push(
        &p,
        &json!({"streams": [
            {"stream": {"job": "tail"}, "values": [[t.to_string(), "drop me"], [(t + 1).to_string(), "keep me"]]},
            {"stream": {"job": "other"}, "values": [[t.to_string(), "keep, but another stream"]]}
        ]}),
    )
    .await;
    let live = next_message(&mut ws).await;
    let values = live["streams"][0]["values"].as_array().unwrap();
    assert_eq!(live["streams"].as_array().unwrap().len(), 1, "{live}");
    assert_eq!(values.len(), 1, "{live}");
    assert_eq!(values[0], json!([(t + 1).to_string(), "keep me"]));
    // A metric query cannot be tailed.
    let bad = reqwest::get(
        p.q("/loki/api/v1/tail?query=count_over_time(%7Bjob%3D%22tail%22%7D%5B1m%5D)"),
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
}

/// Logs emitted inside spans by the OpenTelemetry SDK carry the span's ids; the lines of
/// one trace are one query, and the trace itself is the Tempo API's answer to the same id.
#[test]
fn logs_emitted_inside_spans_are_found_by_their_trace_id() {
    let dir = tempdir();
    let p = Pharos::start(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("checkout")
        .build();
    let tracer_provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(p.h("/v1/traces"))
                .build()
                .unwrap(),
        )
        .with_resource(resource.clone())
        .build();
    let logger_provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_simple_exporter(
            opentelemetry_otlp::LogExporter::builder()
                .with_http()
                .with_endpoint(p.h("/v1/logs"))
                .build()
                .unwrap(),
        )
        .with_resource(resource)
        .build();
    let tracer = tracer_provider.tracer("shop");
    let logger = logger_provider.logger("shop");
    let mut trace_ids = Vec::new();
    for order in 0..5 {
        tracer.in_span(format!("order {order}"), |cx| {
            trace_ids.push(cx.span().span_context().trace_id().to_string());
            for step in ["reserved", "charged", "shipped"] {
                let mut rec = logger.create_log_record();
                rec.set_body(LogValue::from(format!("order-{order} {step}")));
                rec.set_timestamp(std::time::SystemTime::now());
                logger.emit(rec);
            }
        });
    }
    tracer_provider.force_flush().unwrap();
    logger_provider.force_flush().unwrap();

    rt.block_on(async {
        let id = &trace_ids[3];
        let got = get_json_q(
            &p.q("/loki/api/v1/query_range"),
            &[
                (
                    "query",
                    format!(r#"{{service_name="checkout"}} | trace_id="{id}""#).as_str(),
                ),
                ("direction", "forward"),
            ],
        )
        .await;
        let lines: Vec<&str> = got["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["values"].as_array().unwrap())
            .map(|v| v[1].as_str().unwrap())
            .collect();
        assert_eq!(
            lines,
            ["order-3 reserved", "order-3 charged", "order-3 shipped"],
            "{got}"
        );
        // The same id reads the trace from the Tempo API.
        let trace = get_json(&p.q(&format!("/api/v2/traces/{id}"))).await;
        let name = &trace["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"];
        assert_eq!(name, "order 3");
        // And a metric query counts a trace's lines.
        let got = get_json_q(
            &p.q("/loki/api/v1/query"),
            &[(
                "query",
                format!(
                    r#"sum(count_over_time({{service_name="checkout"}} | trace_id="{id}" [1h]))"#
                )
                .as_str(),
            )],
        )
        .await;
        assert_eq!(got["data"]["result"][0]["value"][1], "3", "{got}");
    });
    tracer_provider.shutdown().unwrap();
    logger_provider.shutdown().unwrap();
}
