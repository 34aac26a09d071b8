//! The real OpenTelemetry Rust SDK (opentelemetry-otlp) sends traces, metrics
//! and logs over OTLP/gRPC, OTLP/HTTP protobuf and OTLP/HTTP JSON; we read
//! them back through the Tempo, Jaeger, Prometheus and Loki APIs and compare
//! field by field.

mod common;

use common::{Pharos, get_json, get_json_q, tempdir};
use opentelemetry::logs::{
    AnyValue as LogValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity,
};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Array, Context, KeyValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use serde_json::Value as Json;

#[derive(Clone, Copy, Debug)]
enum Transport {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

const TRANSPORTS: [Transport; 3] = [
    Transport::Grpc,
    Transport::HttpProtobuf,
    Transport::HttpJson,
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn resource(service: &str) -> Resource {
    Resource::builder()
        .with_service_name(service.to_string())
        .with_attribute(KeyValue::new("service.instance.id", format!("{service}-1")))
        .with_attribute(KeyValue::new("deployment.environment.name", "test"))
        .build()
}

fn tracer_provider(
    t: Transport,
    p: &Pharos,
    rt: &tokio::runtime::Runtime,
    service: &str,
) -> opentelemetry_sdk::trace::SdkTracerProvider {
    let exporter = match t {
        Transport::Grpc => {
            let _guard = rt.enter();
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(p.grpc_url())
                .build()
                .unwrap()
        }
        Transport::HttpProtobuf | Transport::HttpJson => {
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(if matches!(t, Transport::HttpJson) {
                    Protocol::HttpJson
                } else {
                    Protocol::HttpBinary
                })
                .with_endpoint(p.h("/v1/traces"))
                .build()
                .unwrap()
        }
    };
    opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(service))
        .build()
}

fn find_span<'a>(trace: &'a Json, name: &str) -> (&'a Json, &'a Json) {
    for rs in trace["resourceSpans"].as_array().expect("resourceSpans") {
        for ss in rs["scopeSpans"].as_array().unwrap() {
            for span in ss["spans"].as_array().unwrap() {
                if span["name"] == name {
                    return (rs, span);
                }
            }
        }
    }
    panic!("no span {name} in {trace}");
}

fn attr<'a>(attrs: &'a Json, key: &str) -> &'a Json {
    attrs
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map(|kv| &kv["value"])
        .unwrap_or_else(|| panic!("no attribute {key} in {attrs}"))
}

#[test]
fn traces_round_trip_over_every_transport() {
    let dir = tempdir();
    let pharos = Pharos::start(dir.path());
    let rt = runtime();
    for t in TRANSPORTS {
        let service = format!("trace-svc-{t:?}").to_lowercase();
        let provider = tracer_provider(t, &pharos, &rt, &service);
        let tracer = provider.tracer("sdk-test");
        let parent = tracer
            .span_builder("GET /orders/{id}")
            .with_kind(SpanKind::Server)
            .with_attributes(vec![
                KeyValue::new("http.route", "/orders/{id}"),
                KeyValue::new("http.response.status_code", 200i64),
                KeyValue::new("ratio", 0.25),
                KeyValue::new("cached", true),
                KeyValue::new(
                    "tags",
                    Value::Array(Array::String(vec!["a".into(), "b".into()])),
                ),
            ])
            .start(&tracer);
        let parent_cx = Context::current_with_span(parent);
        let mut child = tracer
            .span_builder("SELECT orders")
            .with_kind(SpanKind::Client)
            .start_with_context(&tracer, &parent_cx);
        child.add_event("retrying", vec![KeyValue::new("attempt", 2i64)]);
        child.set_status(Status::error("boom"));
        let child_id = child.span_context().span_id();
        child.end();
        let parent_span = parent_cx.span();
        let trace_id = parent_span.span_context().trace_id().to_string();
        let parent_id = parent_span.span_context().span_id().to_string();
        parent_span.end();
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();

        rt.block_on(async {
            let v2 = get_json(&pharos.q(&format!("/api/v2/traces/{trace_id}"))).await;
            let trace = &v2["trace"];
            let (rs, p) = find_span(trace, "GET /orders/{id}");
            assert_eq!(
                attr(&rs["resource"]["attributes"], "service.name")["stringValue"],
                service.as_str(),
                "{t:?}"
            );
            assert_eq!(p["traceId"], trace_id.as_str());
            assert_eq!(p["spanId"], parent_id.as_str());
            assert_eq!(p["kind"], 2, "server kind as an integer");
            assert_eq!(
                attr(&p["attributes"], "http.route")["stringValue"],
                "/orders/{id}"
            );
            assert_eq!(
                attr(&p["attributes"], "http.response.status_code")["intValue"],
                "200",
                "int64 as a string"
            );
            assert_eq!(attr(&p["attributes"], "ratio")["doubleValue"], 0.25);
            assert_eq!(attr(&p["attributes"], "cached")["boolValue"], true);
            assert_eq!(
                attr(&p["attributes"], "tags")["arrayValue"]["values"][1]["stringValue"],
                "b"
            );
            let start: u64 = p["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
            let end: u64 = p["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
            assert!(end >= start && start > 1_600_000_000_000_000_000);
            let (_, c) = find_span(trace, "SELECT orders");
            assert_eq!(c["parentSpanId"], parent_id.as_str());
            assert_eq!(c["spanId"], child_id.to_string().as_str());
            assert_eq!(c["kind"], 3);
            assert_eq!(c["status"]["code"], 2);
            assert_eq!(c["status"]["message"], "boom");
            assert_eq!(c["events"][0]["name"], "retrying");
            assert_eq!(
                attr(&c["events"][0]["attributes"], "attempt")["intValue"],
                "2"
            );

            // Tempo v1 shape carries the same resource spans as `batches`.
            let v1 = get_json(&pharos.q(&format!("/api/traces/{trace_id}"))).await;
            assert_eq!(v1["batches"], trace["resourceSpans"]);

            // Jaeger's model of the same trace.
            let j = get_json(&pharos.q(&format!("/jaeger/api/traces/{trace_id}"))).await;
            let jt = &j["data"][0];
            assert_eq!(jt["traceID"], trace_id.as_str());
            let spans = jt["spans"].as_array().unwrap();
            assert_eq!(spans.len(), 2);
            let jc = spans
                .iter()
                .find(|s| s["operationName"] == "SELECT orders")
                .unwrap();
            assert_eq!(jc["references"][0]["refType"], "CHILD_OF");
            assert_eq!(jc["references"][0]["spanID"], parent_id.as_str());
            let tags = jc["tags"].as_array().unwrap();
            assert!(
                tags.iter()
                    .any(|t| t["key"] == "error" && t["value"] == true),
                "{tags:?}"
            );
            assert!(
                tags.iter()
                    .any(|t| t["key"] == "span.kind" && t["value"] == "client"),
                "{tags:?}"
            );
            let pid = jc["processID"].as_str().unwrap();
            assert_eq!(jt["processes"][pid]["serviceName"], service.as_str());
        });
    }
    rt.block_on(async {
        let services = get_json(&pharos.q("/jaeger/api/services")).await;
        for t in TRANSPORTS {
            let name = format!("trace-svc-{t:?}").to_lowercase();
            assert!(
                services["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s == name.as_str()),
                "{services}"
            );
        }
        let missing = reqwest::get(pharos.q("/api/traces/0123456789abcdef0123456789abcdef"))
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
    });
}

fn meter_provider(
    t: Transport,
    p: &Pharos,
    rt: &tokio::runtime::Runtime,
    service: &str,
) -> opentelemetry_sdk::metrics::SdkMeterProvider {
    let exporter = match t {
        Transport::Grpc => {
            let _guard = rt.enter();
            opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(p.grpc_url())
                .build()
                .unwrap()
        }
        Transport::HttpProtobuf | Transport::HttpJson => {
            opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(if matches!(t, Transport::HttpJson) {
                    Protocol::HttpJson
                } else {
                    Protocol::HttpBinary
                })
                .with_endpoint(p.h("/v1/metrics"))
                .build()
                .unwrap()
        }
    };
    opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(resource(service))
        .build()
}

fn only_value(v: &Json) -> f64 {
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{v}");
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn metrics_round_trip_over_every_transport() {
    let dir = tempdir();
    let pharos = Pharos::start(dir.path());
    let rt = runtime();
    for t in TRANSPORTS {
        let service = format!("metric-svc-{t:?}").to_lowercase();
        let provider = meter_provider(t, &pharos, &rt, &service);
        let meter = provider.meter("sdk-test");
        let requests = meter
            .u64_counter("app.requests")
            .with_unit("{request}")
            .build();
        let sent = meter.u64_counter("app.sent").with_unit("By").build();
        let latency = meter
            .f64_histogram("app.latency")
            .with_unit("ms")
            .with_boundaries(vec![10.0, 100.0, 1000.0])
            .build();
        let queue = meter.i64_up_down_counter("app.queue.depth").build();
        for (route, n) in [("/a", 3u64), ("/b", 5)] {
            requests.add(n, &[KeyValue::new("http.route", route)]);
        }
        sent.add(2048, &[]);
        for ms in [5.0, 50.0, 50.0, 500.0, 5000.0] {
            latency.record(ms, &[KeyValue::new("http.route", "/a")]);
        }
        queue.add(7, &[]);
        queue.add(-2, &[]);
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();

        rt.block_on(async {
            let q = |query: String| {
                let url = pharos.q("/api/v1/query");
                async move { get_json_q(&url, &[("query", query.as_str())]).await }
            };
            let sel = format!(r#"job="{service}",instance="{service}-1""#);
            assert_eq!(only_value(&q(format!(r#"app_requests_total{{{sel},http_route="/a"}}"#)).await), 3.0, "{t:?}");
            assert_eq!(only_value(&q(format!(r#"app_requests_total{{{sel},http_route="/b"}}"#)).await), 5.0);
            assert_eq!(only_value(&q(format!(r#"app_sent_bytes_total{{{sel}}}"#)).await), 2048.0);
            assert_eq!(only_value(&q(format!(r#"app_queue_depth{{{sel}}}"#)).await), 5.0);
            assert_eq!(only_value(&q(format!(r#"app_latency_milliseconds_count{{{sel}}}"#)).await), 5.0);
            assert_eq!(only_value(&q(format!(r#"app_latency_milliseconds_sum{{{sel}}}"#)).await), 5605.0);
            for (le, want) in [("10", 1.0), ("100", 3.0), ("1000", 4.0), ("+Inf", 5.0)] {
                let v = q(format!(r#"app_latency_milliseconds_bucket{{{sel},le="{le}"}}"#)).await;
                assert_eq!(only_value(&v), want, "le={le}");
            }
            let info = q(format!(r#"target_info{{{sel}}}"#)).await;
            assert_eq!(info["data"]["result"][0]["metric"]["deployment_environment_name"], "test");
            let m = &q(format!(r#"app_requests_total{{{sel},http_route="/a"}}"#)).await["data"]["result"][0]["metric"];
            assert_eq!(m["otel_scope_name"], "sdk-test");
            assert_eq!(m["__name__"], "app_requests_total");
        });
    }
    rt.block_on(async {
        let jobs = get_json(&pharos.q("/api/v1/label/job/values")).await;
        assert_eq!(jobs["status"], "success");
        let jobs: Vec<&str> = jobs["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            jobs,
            [
                "metric-svc-grpc",
                "metric-svc-httpjson",
                "metric-svc-httpprotobuf"
            ]
        );
        let series = get_json_q(
            &pharos.q("/api/v1/series"),
            &[("match[]", "app_requests_total")],
        )
        .await;
        assert_eq!(series["data"].as_array().unwrap().len(), 6);
        let labels = get_json(&pharos.q("/api/v1/labels")).await;
        let labels: Vec<&str> = labels["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for want in [
            "__name__",
            "http_route",
            "instance",
            "job",
            "le",
            "otel_scope_name",
        ] {
            assert!(labels.contains(&want), "{labels:?}");
        }
    });
}

fn logger_provider(
    t: Transport,
    p: &Pharos,
    rt: &tokio::runtime::Runtime,
    service: &str,
) -> opentelemetry_sdk::logs::SdkLoggerProvider {
    let exporter = match t {
        Transport::Grpc => {
            let _guard = rt.enter();
            opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .with_endpoint(p.grpc_url())
                .build()
                .unwrap()
        }
        Transport::HttpProtobuf | Transport::HttpJson => opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(if matches!(t, Transport::HttpJson) {
                Protocol::HttpJson
            } else {
                Protocol::HttpBinary
            })
            .with_endpoint(p.h("/v1/logs"))
            .build()
            .unwrap(),
    };
    opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(service))
        .build()
}

#[test]
fn logs_round_trip_over_every_transport() {
    let dir = tempdir();
    let pharos = Pharos::start(dir.path());
    let rt = runtime();
    for t in TRANSPORTS {
        let service = format!("log-svc-{t:?}").to_lowercase();
        let provider = logger_provider(t, &pharos, &rt, &service);
        let logger = provider.logger("sdk-test");
        let trace_id =
            opentelemetry::trace::TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let span_id = opentelemetry::trace::SpanId::from_hex("00f067aa0ba902b7").unwrap();
        for (i, (sev, text)) in [
            (Severity::Info, "order 17 created"),
            (Severity::Error, "payment needle timeout"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut rec = logger.create_log_record();
            rec.set_body(LogValue::from(text.to_string()));
            rec.set_severity_number(sev);
            rec.set_severity_text(if i == 0 { "INFO" } else { "ERROR" });
            rec.set_timestamp(std::time::SystemTime::now());
            rec.add_attribute("attempt", i as i64);
            rec.set_trace_context(trace_id, span_id, None);
            logger.emit(rec);
        }
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();

        rt.block_on(async {
            let url = pharos.q("/loki/api/v1/query_range");
            let all = get_json_q(
                &url,
                &[
                    ("query", &format!(r#"{{service_name="{service}"}}"#)),
                    ("limit", "10"),
                ],
            )
            .await;
            assert_eq!(all["status"], "success");
            assert_eq!(all["data"]["resultType"], "streams");
            let lines: Vec<&str> = all["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["values"].as_array().unwrap())
                .map(|v| v[1].as_str().unwrap())
                .collect();
            assert_eq!(lines.len(), 2, "{t:?}: {all}");
            assert!(
                lines.contains(&"order 17 created") && lines.contains(&"payment needle timeout")
            );

            let needle = get_json_q(
                &url,
                &[(
                    "query",
                    &format!(r#"{{service_name="{service}"}} |= "needle""#),
                )],
            )
            .await;
            let streams = needle["data"]["result"].as_array().unwrap();
            assert_eq!(streams.len(), 1, "{needle}");
            let labels = &streams[0]["stream"];
            assert_eq!(labels["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(labels["span_id"], "00f067aa0ba902b7");
            assert_eq!(labels["severity_text"], "ERROR");
            assert_eq!(
                labels["service_instance_id"],
                format!("{service}-1").as_str()
            );
            assert_eq!(streams[0]["values"][0][1], "payment needle timeout");
        });
    }
    rt.block_on(async {
        let labels = get_json(&pharos.q("/loki/api/v1/labels")).await;
        assert!(
            labels["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l == "service_name"),
            "{labels}"
        );
    });
}
