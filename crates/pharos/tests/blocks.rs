//! Metrics blocks in the real binary: the head is written to blocks and the log freed,
//! answers do not change when samples move from the head to blocks, and blocks plus the
//! log survive SIGKILL and a graceful restart.

mod common;

use common::{Pharos, force_flush, get_json_q, remote_write_ok, tempdir};
use pharos_metrics::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use serde_json::Value;
use std::path::Path;

/// 2023-11-14T22:13:20Z, in milliseconds.
const T: i64 = 1_700_000_000_000;
const STEP: i64 = 30_000;

const SETTINGS: &str = "  metrics:\n    block_duration: 1h\n";

/// `hosts` node-like series per metric, samples every 30 s in `[from, to)`.
fn batch(from: i64, to: i64) -> WriteRequest {
    let mut timeseries = Vec::new();
    for host in 0..4 {
        for (name, kind) in [("node_cpu_seconds_total", 0), ("node_load1", 1)] {
            let samples = (from..to)
                .step_by(STEP as usize)
                .map(|t| {
                    let i = ((t - T) / STEP) as f64;
                    let value = if kind == 0 {
                        // A counter with a reset every 100 samples.
                        (i % 100.0) * (host + 1) as f64
                    } else {
                        (i * 0.1 + host as f64).sin()
                    };
                    Sample {
                        value,
                        timestamp: t,
                    }
                })
                .collect();
            timeseries.push(TimeSeries {
                labels: vec![
                    Label::new("__name__", name),
                    Label::new("instance", format!("host-{host}")),
                    Label::new("job", "node"),
                ],
                samples,
                ..Default::default()
            });
        }
    }
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

/// The answers that must not depend on where samples live.
async fn answers(p: &Pharos, end: i64) -> Vec<Value> {
    let (start, end) = ((T / 1000).to_string(), (end / 1000).to_string());
    let mut out = Vec::new();
    for q in [
        "node_load1",
        "rate(node_cpu_seconds_total[5m])",
        "sum by (instance) (increase(node_cpu_seconds_total[1h]))",
        "max_over_time(node_load1[7m])",
    ] {
        let v = get_json_q(
            &p.q("/api/v1/query_range"),
            &[
                ("query", q),
                ("start", &start),
                ("end", &end),
                ("step", "97"),
            ],
        )
        .await;
        assert_eq!(v["status"], "success", "{q}: {v}");
        assert!(!v["data"]["result"].as_array().unwrap().is_empty(), "{q}");
        out.push(v["data"].clone());
    }
    for path in [
        "/api/v1/series",
        "/api/v1/labels",
        "/api/v1/label/instance/values",
    ] {
        let v = get_json_q(
            &p.q(path),
            &[
                ("match[]", "{job=\"node\"}"),
                ("start", &start),
                ("end", &end),
            ],
        )
        .await;
        assert_eq!(v["status"], "success", "{path}: {v}");
        out.push(v["data"].clone());
    }
    out
}

fn complete_blocks(data: &Path) -> usize {
    let dir = data.join("blocks").join("metrics");
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| e.as_ref().unwrap().path().join("meta.json").exists())
                .count()
        })
        .unwrap_or(0)
}

fn wal_bytes(data: &Path) -> u64 {
    std::fs::read_dir(data.join("wal").join("metrics"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[tokio::test]
async fn head_moves_to_blocks_and_everything_survives_restarts() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut p = Pharos::start_with(dir.path(), SETTINGS);
    // Three hours in 30-minute requests.
    for k in 0..6 {
        remote_write_ok(&p, &batch(T + k * 1_800_000, T + (k + 1) * 1_800_000)).await;
    }
    let end = T + 3 * 3_600_000;
    let before = answers(&p, end).await;
    let wal_before = wal_bytes(&data);

    let said = force_flush(&p).await;
    // 8 series x 360 samples; 22:13:20 to 01:13:20 touches four one-hour windows.
    assert!(
        said.starts_with("flushed 2880 samples into 4 blocks"),
        "{said}"
    );
    assert!(complete_blocks(&data) >= 1, "{said}");
    let wal_after = wal_bytes(&data);
    assert!(
        wal_after < 1024 && wal_before > 10_000,
        "the log is freed: {wal_before} -> {wal_after} bytes"
    );
    assert_eq!(answers(&p, end).await, before, "answers from blocks");
    let metrics = reqwest::get(p.q("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pharos_block_writes_total{signal=\"metrics\",kind=\"flush\"} 4"),
        "{metrics}"
    );

    // More samples into the head, then SIGKILL: blocks and log together hold everything.
    remote_write_ok(&p, &batch(end, end + 600_000)).await;
    let end = end + 600_000;
    let before = answers(&p, end).await;
    p.kill9();
    let mut p = Pharos::start_with(dir.path(), SETTINGS);
    assert_eq!(answers(&p, end).await, before, "after SIGKILL");

    // A graceful stop writes the head out: the next start has an empty log to replay.
    assert!(p.terminate().success());
    assert!(wal_bytes(&data) < 1024, "{} bytes of log", wal_bytes(&data));
    let p = Pharos::start_with(dir.path(), SETTINGS);
    assert_eq!(answers(&p, end).await, before, "after a graceful restart");
}
