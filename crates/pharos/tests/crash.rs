//! Crash safety for real: send, get acknowledged, SIGKILL mid-write, restart
//! on the same directory, and find every acknowledged item.

mod common;

use common::{Pharos, get_json_q, tempdir};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// An hour ago, in unix nanoseconds: recent, so the flush at shutdown writes blocks that
/// retention keeps.
static BASE_NS: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 3_600_000_000_000
});

fn trace_id(i: u32) -> Vec<u8> {
    let mut id = vec![0xc0; 16];
    id[12..].copy_from_slice(&i.to_be_bytes());
    id
}

fn traces(i: u32) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..5)
                    .map(|k| Span {
                        trace_id: trace_id(i),
                        span_id: vec![k + 1; 8],
                        name: format!("op-{i}-{k}"),
                        start_time_unix_nano: *BASE_NS + u64::from(i) * 1000,
                        end_time_unix_nano: *BASE_NS + u64::from(i) * 1000 + 500,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn logs(i: u32) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: *BASE_NS + u64::from(i) * 1_000_000,
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(format!("crash-line-{i}"))),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metrics(i: u32) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "crash.gauge".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            attributes: vec![KeyValue {
                                key: "req".into(),
                                value: Some(AnyValue {
                                    value: Some(Value::StringValue(i.to_string())),
                                }),
                                ..Default::default()
                            }],
                            time_unix_nano: *BASE_NS,
                            value: Some(number_data_point::Value::AsDouble(f64::from(i))),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[derive(Default)]
struct Acked {
    traces: BTreeSet<u32>,
    logs: BTreeSet<u32>,
    metrics: BTreeSet<u32>,
}

/// Sends requests from several tasks until the server dies, recording what was acknowledged.
async fn load_until_killed(p: &mut Pharos, kill_after: usize) -> Acked {
    let acked = Arc::new(Mutex::new(Acked::default()));
    let http = p.h("");
    let grpc = p.grpc_url();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..6u32 {
        let acked = acked.clone();
        let http = http.clone();
        let grpc = grpc.clone();
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            let mut grpc_client = TraceServiceClient::connect(grpc).await.ok();
            for n in 0..10_000u32 {
                let i = worker * 10_000 + n;
                let ok = match (worker % 3, worker < 3) {
                    (0, true) => match &mut grpc_client {
                        Some(c) => c.export(traces(i)).await.is_ok(),
                        None => false,
                    },
                    (0, false) | (1, _) | (2, _) => {
                        let (path, body) = match worker % 3 {
                            0 => ("/v1/traces", traces(i).encode_to_vec()),
                            1 => ("/v1/logs", logs(i).encode_to_vec()),
                            _ => ("/v1/metrics", metrics(i).encode_to_vec()),
                        };
                        match client
                            .post(format!("{http}{path}"))
                            .header("content-type", "application/x-protobuf")
                            .body(body)
                            .send()
                            .await
                        {
                            Ok(r) => r.status() == 200,
                            Err(_) => false,
                        }
                    }
                    _ => unreachable!(),
                };
                if !ok {
                    return;
                }
                let mut a = acked.lock().unwrap();
                match worker % 3 {
                    0 => a.traces.insert(i),
                    1 => a.logs.insert(i),
                    _ => a.metrics.insert(i),
                };
            }
        });
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let a = acked.lock().unwrap();
        if a.traces.len() + a.logs.len() + a.metrics.len() >= kill_after {
            break;
        }
    }
    // Kill while requests are in flight.
    p.kill9();
    while tasks.join_next().await.is_some() {}
    Arc::try_unwrap(acked).ok().unwrap().into_inner().unwrap()
}

async fn assert_all_present(p: &Pharos, acked: &Acked) {
    for i in &acked.traces {
        let hex: String = trace_id(*i).iter().map(|b| format!("{b:02x}")).collect();
        let resp = reqwest::get(p.q(&format!("/api/v2/traces/{hex}")))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "acknowledged trace {i} lost");
        let t: serde_json::Value = resp.json().await.unwrap();
        let spans = t["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(spans, 5, "trace {i}");
    }
    let base_s = *BASE_NS / 1_000_000_000;
    let (log_start, log_end) = ((base_s - 1).to_string(), (base_s + 1000).to_string());
    let (series_start, series_end) = ((base_s - 1000).to_string(), (base_s + 100).to_string());
    let found = get_json_q(
        &p.q("/loki/api/v1/query_range"),
        &[
            (
                "query",
                r#"{service_name="unknown_service"} |= "crash-line-""#,
            ),
            ("limit", "5000"),
            ("start", &log_start),
            ("end", &log_end),
        ],
    )
    .await;
    let lines: BTreeSet<String> = found["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap())
        .map(|v| v[1].as_str().unwrap().to_string())
        .collect();
    for i in &acked.logs {
        assert!(
            lines.contains(&format!("crash-line-{i}")),
            "acknowledged log {i} lost"
        );
    }
    let series = get_json_q(
        &p.q("/api/v1/series"),
        &[
            ("match[]", "crash_gauge"),
            ("start", &series_start),
            ("end", &series_end),
        ],
    )
    .await;
    let reqs: BTreeSet<u32> = series["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["req"].as_str().unwrap().parse().unwrap())
        .collect();
    for i in &acked.metrics {
        assert!(reqs.contains(i), "acknowledged data point {i} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_loses_nothing_acknowledged() {
    let dir = tempdir();
    let mut p = Pharos::start(dir.path());
    let acked = load_until_killed(&mut p, 600).await;
    assert!(
        acked.traces.len() > 50 && acked.logs.len() > 50 && acked.metrics.len() > 50,
        "load too light to mean anything"
    );

    let p = Pharos::start(dir.path());
    assert_all_present(&p, &acked).await;
    drop(p);

    // A torn write at the tail of the traces log: cut at the last good record, nothing earlier lost.
    let wal = dir.path().join("data/wal/traces");
    let last = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0, 0, 1, 0, 1, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]).unwrap();
    drop(f);
    let p = Pharos::start(dir.path());
    assert_all_present(&p, &acked).await;
    let log = p.stderr();
    assert!(
        log.contains("traces") && log.contains("truncated=true"),
        "no truncation reported:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_and_exits_cleanly() {
    let dir = tempdir();
    let mut p = Pharos::start_with(dir.path(), "  wal:\n    fsync: never\n");
    let mut client = TraceServiceClient::connect(p.grpc_url()).await.unwrap();
    for i in 0..20 {
        client.export(traces(i)).await.unwrap();
    }
    let status = p.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        p.stderr().contains("write-ahead logs flushed"),
        "{}",
        p.stderr()
    );
    let p = Pharos::start(dir.path());
    let acked = Acked {
        traces: (0..20).collect(),
        ..Acked::default()
    };
    assert_all_present(&p, &acked).await;
}

/// A second Pharos on the same data directory refuses to start, and the first goes on.
#[test]
fn a_second_process_on_the_same_data_directory_is_refused() {
    let dir = common::tempdir();
    let mut first = common::Pharos::start(dir.path());
    let config = dir.path().join("second.yaml");
    std::fs::write(&config, common::config_yaml(dir.path(), "")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pharos"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is in use by another Pharos"), "{stderr}");
    assert!(first.alive(), "the first one is unaffected");
}
