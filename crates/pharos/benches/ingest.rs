//! Ingest benchmark: OTLP/gRPC spans and log records into a real `pharos serve`.
//!
//! Run: `cargo bench -p pharos --bench ingest` (options after `--`:
//! `--seconds N`, `--clients N`, `--batch N`).
//!
//! For each signal and fsync policy it reports acknowledged items per
//! second, server CPU-seconds per million items, peak RSS, WAL bytes per
//! item and fsync latency, next to the physical limit measured in the same
//! run: decoding the same protobuf payload in this process on one core.
//! No peer runs here for OTLP ingest (Prometheus and VictoriaMetrics take
//! no OTLP traces or logs in their Debian versions), hence that limit.

mod common;

use common::{cpu_seconds, peak_rss_mib, start_pharos};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn resource(i: u64) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", &format!("svc-{}", i % 6)),
            kv("service.instance.id", &format!("svc-{}-{}", i % 6, i % 3)),
            kv("deployment.environment.name", "bench"),
        ],
        ..Default::default()
    })
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn traces(seq: u64, batch: usize) -> ExportTraceServiceRequest {
    let t = now_ns();
    let spans = (0..batch as u64)
        .map(|k| {
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&seq.to_be_bytes());
            trace_id[8..].copy_from_slice(&(k / 8).to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: (seq * 10_000 + k + 1).to_be_bytes().to_vec(),
                parent_span_id: if k % 8 == 0 {
                    vec![]
                } else {
                    (seq * 10_000 + k).to_be_bytes().to_vec()
                },
                name: format!("GET /api/items/{}", k % 20),
                kind: 2,
                start_time_unix_nano: t - 5_000_000,
                end_time_unix_nano: t,
                attributes: vec![
                    kv("http.request.method", "GET"),
                    kv("http.route", "/api/items/{id}"),
                    kv("url.path", &format!("/api/items/{k}")),
                    kv("server.address", "api.internal"),
                    kv("user_agent.original", "bench/1.0"),
                    KeyValue {
                        key: "http.response.status_code".into(),
                        value: Some(AnyValue {
                            value: Some(Value::IntValue(200)),
                        }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(seq),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn logs(seq: u64, batch: usize) -> ExportLogsServiceRequest {
    let t = now_ns();
    let log_records = (0..batch as u64)
        .map(|k| LogRecord {
            time_unix_nano: t + k,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(Value::StringValue(format!(
                    "GET /api/items/{k} 200 in {}.{}ms user=u{} cache=hit",
                    k % 50,
                    k % 10,
                    seq % 1000
                ))),
            }),
            attributes: vec![kv("http.route", "/api/items/{id}")],
            trace_id: [7u8; 16].to_vec(),
            span_id: (k + 1).to_be_bytes().to_vec(),
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(seq),
            scope_logs: vec![ScopeLogs {
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Reads a metric family's samples from `/metrics` as (labels+suffix line, value).
async fn scrape(query: &str) -> Vec<(String, f64)> {
    let text = reqwest::get(format!("{query}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            l.rsplit_once(' ')
                .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(0.0)))
        })
        .collect()
}

fn sum(samples: &[(String, f64)], prefix: &str, signal: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix) && k.contains(&format!("signal=\"{signal}\"")))
        .map(|(_, v)| v)
        .sum()
}

/// The fsync latency quantile `q` estimated from histogram buckets (upper bound of the bucket).
fn quantile(samples: &[(String, f64)], signal: &str, q: f64) -> f64 {
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(k, _)| {
            k.starts_with("pharos_wal_fsync_duration_seconds_bucket")
                && k.contains(&format!("signal=\"{signal}\""))
        })
        .map(|(k, v)| {
            let le = k.split("le=\"").nth(1).unwrap().split('"').next().unwrap();
            (
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                },
                *v,
            )
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map(|b| b.1).unwrap_or(0.0);
    buckets
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map(|b| b.0)
        .unwrap_or(f64::NAN)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Traces,
    Logs,
}

struct Opts {
    seconds: u64,
    clients: usize,
    batch: usize,
}

fn decode_limit(kind: Kind, batch: usize) -> f64 {
    let bytes = match kind {
        Kind::Traces => traces(1, batch).encode_to_vec(),
        Kind::Logs => logs(1, batch).encode_to_vec(),
    };
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        match kind {
            Kind::Traces => drop(std::hint::black_box(
                ExportTraceServiceRequest::decode(&bytes[..]).unwrap(),
            )),
            Kind::Logs => drop(std::hint::black_box(
                ExportLogsServiceRequest::decode(&bytes[..]).unwrap(),
            )),
        }
        n += batch as u64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn run(kind: Kind, fsync: &str, o: &Opts) -> String {
    let server = start_pharos(fsync);
    let pid = server.process.pid();
    let sent = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds(pid);
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..o.clients {
        let grpc = server.otlp_grpc.clone();
        let sent = sent.clone();
        let batch = o.batch;
        tasks.spawn(async move {
            let mut seq = c as u64 * 1_000_000;
            let mut tc = TraceServiceClient::connect(grpc.clone())
                .await
                .unwrap()
                .max_decoding_message_size(64 << 20);
            let mut lc = LogsServiceClient::connect(grpc).await.unwrap();
            while Instant::now() < deadline {
                seq += 1;
                let ok = match kind {
                    Kind::Traces => tc.export(traces(seq, batch)).await.is_ok(),
                    Kind::Logs => lc.export(logs(seq, batch)).await.is_ok(),
                };
                if ok {
                    sent.fetch_add(batch as u64, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let items = sent.load(Ordering::Relaxed) as f64;
    let signal = if kind == Kind::Traces {
        "traces"
    } else {
        "logs"
    };
    let m = scrape(&server.query).await;
    let wal_bytes = sum(&m, "pharos_wal_bytes_written_total", signal);
    let fsyncs = sum(&m, "pharos_wal_fsync_duration_seconds_count", signal);
    let fsync_sum = sum(&m, "pharos_wal_fsync_duration_seconds_sum", signal);
    let accepted = sum(&m, "pharos_receiver_accepted_items_total", signal);
    assert_eq!(
        accepted, items,
        "the server must count what clients saw acknowledged"
    );
    let limit = decode_limit(kind, o.batch);
    format!(
        "| {signal} | {fsync} | {:.0} | {:.2} | {:.1} | {:.0} | {:.0} | {} / {} ms | {:.0} | {:.1}% |",
        items / elapsed,
        cpu / items * 1e6,
        peak_rss_mib(pid),
        wal_bytes / items.max(1.0),
        fsyncs,
        if fsyncs > 0.0 {
            format!("{:.2}", fsync_sum / fsyncs * 1e3)
        } else {
            "-".into()
        },
        if fsyncs > 0.0 {
            format!("≤{}", quantile(&m, signal, 0.99) * 1e3)
        } else {
            "-".into()
        },
        limit,
        items / elapsed / limit * 100.0,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let o = Opts {
        seconds: arg("--seconds", 10),
        clients: arg("--clients", 8) as usize,
        batch: arg("--batch", 200) as usize,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "OTLP/gRPC ingest, {} clients, {} items per request, {} s per row, one 2-core machine (client and server share it)\n",
        o.clients, o.batch, o.seconds
    );
    println!(
        "| signal | fsync | items/s acked | server CPU-s per 1M items | peak RSS MiB | WAL bytes/item | fsyncs | fsync mean / p99 | decode-only items/s (1 core) | acked/decode |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for kind in [Kind::Traces, Kind::Logs] {
        for fsync in ["always", "never"] {
            println!("{}", rt.block_on(run(kind, fsync, &o)));
        }
    }
}
