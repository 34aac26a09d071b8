//! Starts the real `pharos` binary on OS-chosen ports for integration tests.

#![allow(dead_code)]

pub mod prometheus;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `pharos serve` child process.
pub struct Pharos {
    child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub query: SocketAddr,
    pub dir: PathBuf,
    pub stderr_path: PathBuf,
}

/// The test configuration: every port from the OS, data under `dir/data`.
pub fn config_yaml(dir: &Path, extra: &str) -> String {
    format!(
        r#"receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
        max_request_body_size: 1048576
query:
  endpoint: 127.0.0.1:0
storage:
  path: {data}
{extra}"#,
        data = dir.join("data").display()
    )
}

impl Pharos {
    /// Starts `pharos serve` on `dir` with the test configuration.
    pub fn start(dir: &Path) -> Pharos {
        Pharos::start_with(dir, "")
    }

    /// Starts `pharos serve` with `extra` YAML appended to the test configuration.
    pub fn start_with(dir: &Path, extra: &str) -> Pharos {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("pharos.yaml");
        std::fs::write(&config, config_yaml(dir, extra)).unwrap();
        Pharos::start_config(dir, &config)
    }

    /// Starts `pharos serve --config config`; the configuration must ask for ports from the OS.
    pub fn start_config(dir: &Path, config: &Path) -> Pharos {
        let config = config.to_path_buf();
        let run = std::fs::read_dir(dir).unwrap().count();
        let stderr_path = dir.join(format!("stderr-{run}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_pharos"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("PHAROS_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("starting pharos");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("pharos ready:") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "pharos did not get ready; stderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
        };
        let field = |name: &str| -> SocketAddr {
            let v = line
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"));
            v.trim_start_matches("http://")
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        Pharos {
            grpc: field("otlp_grpc"),
            http: field("otlp_http"),
            query: field("query"),
            child,
            dir: dir.to_path_buf(),
            stderr_path,
        }
    }

    /// The URL of `path` on the query port.
    pub fn q(&self, path: &str) -> String {
        format!("http://{}{path}", self.query)
    }

    /// The URL of `path` on the OTLP/HTTP port.
    pub fn h(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// `http://host:port` of the OTLP/gRPC port.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Kills the process with SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("pharos did not exit within 15s of SIGTERM");
    }

    /// Returns whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// What the server logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Pharos {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `url` and parses the JSON body, asserting a 200.
pub async fn get_json(url: &str) -> serde_json::Value {
    let resp = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "GET {url}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: {e}: {text}"))
}

/// GETs `url` with query parameters and parses the JSON body, asserting a 200.
pub async fn get_json_q(url: &str, params: &[(&str, &str)]) -> serde_json::Value {
    let resp = reqwest::Client::new()
        .get(url)
        .query(params)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "GET {url} {params:?}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// A fresh temporary directory kept alive by the returned guard.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Sends a Prometheus remote_write 1.0 request and asserts it was accepted (204).
pub async fn remote_write_ok(p: &Pharos, req: &pharos_metrics::remote_write::proto::WriteRequest) {
    let resp = reqwest::Client::new()
        .post(p.h("/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(pharos_metrics::remote_write::encode(req))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
}

/// Sends an OTLP/HTTP protobuf metrics request and asserts it was accepted (200).
pub async fn otlp_metrics_ok(
    p: &Pharos,
    req: &opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
) {
    use prost::Message;
    let resp = reqwest::Client::new()
        .post(p.h("/v1/metrics"))
        .header("Content-Type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

/// Asks Pharos to write its metrics head to blocks now; returns what it answered.
pub async fn force_flush(p: &Pharos) -> String {
    let resp = reqwest::Client::new()
        .post(p.q("/internal/force_flush"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let said = resp.text().await.unwrap();
    assert!(said.starts_with("flushed "), "{said}");
    said
}

/// One OTLP trace request: `spans` under a resource whose `service.name` is `service`.
pub fn trace_request(
    service: &str,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
