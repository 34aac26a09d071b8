//! Side-by-side benchmark: the same Prometheus remote_write 1.0 data into Pharos,
//! VictoriaMetrics and Prometheus, then the same range queries against each.
//!
//! Run: `cargo bench -p pharos --bench remote_write` (options after `--`:
//! `--hosts N` (20), `--hours H` (2), `--runs N` (10 query runs), `--senders N` (2),
//! `--only pharos|victoria|prometheus` to run one server, for profiling).
//!
//! The data is node_exporter-like: about 250 series per host (CPU, network, disk and
//! filesystem counters, memory and load gauges, one classic histogram) scraped every
//! 15 s, for the last `--hours` hours, encoded once as remote_write requests of 2,000
//! samples (one sample per `TimeSeries`, as Prometheus sends them). Every server gets
//! the same bytes in the same order, one server at a time, from `--senders` concurrent
//! senders that each own a disjoint set of hosts (so every series stays in time order).
//!
//! After the last acknowledgement, Pharos and VictoriaMetrics are asked to flush
//! (`/internal/force_flush`, on Pharos' query port and on VictoriaMetrics' HTTP port):
//! Pharos writes its head to blocks and deletes the write-ahead log behind them, and
//! VictoriaMetrics writes what it still buffers to parts. Prometheus has no such endpoint
//! (its head cuts a block only once it spans 3 h) and is measured as it stands. Then
//! every server gets a few seconds for background work (merges, compaction).
//!
//! Per server it reports the samples acknowledged per second of wall clock (first
//! request to last acknowledgement, flush not included), CPU-seconds per million samples
//! (utime+stime of the server process from the first request to the end of those few
//! seconds, so the flush counts as ingest cost), peak RSS (VmHWM), disk bytes per sample
//! after the flush (blocks allocated under its data directory, as `du` counts them) and
//! the median latency of a fixed set of range queries, run after the flush. The peers are
//! the Debian packages `victoria-metrics` and `prometheus`; a missing one is skipped with
//! a note. VictoriaMetrics runs with its result cache off, so every query run does the
//! work.

mod common;

use common::{Process, cpu_seconds, peak_rss_mib, start_pharos};
use pharos_metrics::remote_write::encode;
use pharos_metrics::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const STEP_MS: i64 = 15_000;
const SAMPLES_PER_REQUEST: usize = 2_000;
const HISTOGRAM: &str = "http_request_duration_seconds";
const LE: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A uniform number in [0, 1) from a seed.
fn unit(seed: u64) -> f64 {
    (splitmix(seed) >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Clone, Copy)]
enum Shape {
    /// A counter growing by about `rate` per second, rounded to `quantum`.
    Counter {
        rate: f64,
        quantum: f64,
    },
    /// A gauge wandering around `base` by ±`spread`, rounded to `quantum`.
    Gauge {
        base: f64,
        spread: f64,
        quantum: f64,
    },
    /// Bucket `le` (index into `LE`) of the host's histogram for `handler`.
    Bucket {
        handler: usize,
        le: usize,
    },
    HistSum {
        handler: usize,
    },
    HistCount {
        handler: usize,
    },
    Constant(f64),
}

struct Series {
    labels: Vec<Label>,
    shape: Shape,
}

fn host_series(host: usize) -> Vec<Series> {
    let instance = format!("host-{host:02}:9100");
    let mut out = Vec::new();
    let mut add = |name: &str, extra: &[(&str, String)], shape: Shape| {
        let mut labels = vec![Label::new("__name__", name)];
        for (k, v) in extra {
            labels.push(Label::new(*k, v.clone()));
        }
        labels.push(Label::new("instance", instance.clone()));
        labels.push(Label::new("job", "node"));
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        out.push(Series { labels, shape });
    };
    let modes = [
        ("idle", 0.7),
        ("user", 0.15),
        ("system", 0.08),
        ("iowait", 0.02),
        ("irq", 0.005),
        ("softirq", 0.01),
        ("nice", 0.001),
        ("steal", 0.002),
    ];
    for cpu in 0..4 {
        for (mode, share) in modes {
            add(
                "node_cpu_seconds_total",
                &[("cpu", cpu.to_string()), ("mode", mode.into())],
                Shape::Counter {
                    rate: share,
                    quantum: 0.01,
                },
            );
        }
    }
    for (d, device) in ["eth0", "eth1", "lo", "docker0", "veth0"]
        .iter()
        .enumerate()
    {
        let scale = [1e6, 2e5, 5e4, 1e4, 3e3][d] * (1.0 + host as f64 / 10.0);
        for (name, f) in [
            ("node_network_receive_bytes_total", 1.0),
            ("node_network_transmit_bytes_total", 0.6),
            ("node_network_receive_packets_total", 1e-3),
            ("node_network_transmit_packets_total", 8e-4),
        ] {
            add(
                name,
                &[("device", device.to_string())],
                Shape::Counter {
                    rate: scale * f,
                    quantum: 1.0,
                },
            );
        }
    }
    for device in ["sda", "sdb", "nvme0n1", "dm-0"] {
        for (name, rate) in [
            ("node_disk_read_bytes_total", 4e5),
            ("node_disk_written_bytes_total", 9e5),
            ("node_disk_reads_completed_total", 40.0),
            ("node_disk_writes_completed_total", 90.0),
        ] {
            add(
                name,
                &[("device", device.into())],
                Shape::Counter { rate, quantum: 1.0 },
            );
        }
    }
    for mount in ["/", "/boot", "/var", "/home", "/srv"] {
        for (name, base) in [
            ("node_filesystem_avail_bytes", 4e10),
            ("node_filesystem_free_bytes", 4.5e10),
            ("node_filesystem_size_bytes", 1e11),
        ] {
            add(
                name,
                &[("mountpoint", mount.into()), ("fstype", "ext4".into())],
                if name == "node_filesystem_size_bytes" {
                    Shape::Constant(base)
                } else {
                    Shape::Gauge {
                        base,
                        spread: 1e8,
                        quantum: 4096.0,
                    }
                },
            );
        }
    }
    for (i, name) in [
        "MemAvailable",
        "MemFree",
        "MemTotal",
        "Buffers",
        "Cached",
        "Active",
        "Inactive",
        "Dirty",
        "Writeback",
        "Slab",
        "SReclaimable",
        "SUnreclaim",
        "Shmem",
        "Mapped",
        "AnonPages",
        "PageTables",
        "SwapTotal",
        "SwapFree",
        "Committed_AS",
        "VmallocUsed",
    ]
    .iter()
    .enumerate()
    {
        let base = 1.6e10 / (i as f64 + 1.0);
        add(
            &format!("node_memory_{name}_bytes"),
            &[],
            if matches!(*name, "MemTotal" | "SwapTotal") {
                Shape::Constant(base)
            } else {
                Shape::Gauge {
                    base,
                    spread: base / 20.0,
                    quantum: 4096.0,
                }
            },
        );
    }
    for (name, base) in [
        ("node_load1", 1.2),
        ("node_load5", 1.0),
        ("node_load15", 0.9),
    ] {
        add(
            name,
            &[],
            Shape::Gauge {
                base,
                spread: 0.5,
                quantum: 0.01,
            },
        );
    }
    add("up", &[], Shape::Constant(1.0));
    for handler in 0..10 {
        let h = [("handler", format!("/api/v{handler}"))];
        for (le, bound) in LE.iter().enumerate() {
            let mut labels = h.to_vec();
            labels.push(("le", bound.to_string()));
            add(
                &format!("{HISTOGRAM}_bucket"),
                &labels,
                Shape::Bucket { handler, le },
            );
        }
        add(&format!("{HISTOGRAM}_sum"), &h, Shape::HistSum { handler });
        add(
            &format!("{HISTOGRAM}_count"),
            &h,
            Shape::HistCount { handler },
        );
    }
    out
}

/// The share of requests at or below bucket `le` for a handler (a log-normal-ish CDF).
fn cdf(handler: usize, le: usize) -> f64 {
    if le + 1 == LE.len() {
        return 1.0;
    }
    let bound: f64 = LE[le].parse().unwrap();
    let median = 0.02 * (1.0 + handler as f64);
    let x = (bound / median).ln();
    1.0 / (1.0 + (-1.7 * x).exp())
}

/// One sender's requests: the series of `hosts`, step by step in time order.
fn build_requests(hosts: &[usize], steps: i64, t0: i64) -> (Vec<Vec<u8>>, u64) {
    let series: Vec<(usize, Series)> = hosts
        .iter()
        .flat_map(|&h| host_series(h).into_iter().map(move |s| (h, s)))
        .collect();
    let mut counters = vec![0.0f64; series.len()];
    for (i, (_, s)) in series.iter().enumerate() {
        if let Shape::Counter { rate, .. } = s.shape {
            counters[i] = rate * 86_400.0 * (1.0 + unit(i as u64));
        }
    }
    // Per host and handler: requests counted so far and their total duration.
    let mut hist = vec![[(0.0f64, 0.0f64); 10]; 100];
    let mut requests = Vec::new();
    let mut current = Vec::with_capacity(SAMPLES_PER_REQUEST);
    let mut total = 0u64;
    for step in 0..steps {
        for &h in hosts {
            for (handler, slot) in hist[h].iter_mut().enumerate() {
                let n = (50.0
                    * (1.0 + unit(((h * 1000 + handler) as u64) ^ ((step as u64) << 20))))
                .floor();
                slot.0 += n;
                slot.1 += n * 0.03 * (1.0 + handler as f64);
            }
        }
        for (i, (h, s)) in series.iter().enumerate() {
            let seed = ((i as u64) << 24) ^ step as u64;
            let value = match s.shape {
                Shape::Counter { rate, quantum } => {
                    counters[i] += rate * 15.0 * (0.5 + unit(seed));
                    (counters[i] / quantum).floor() * quantum
                }
                Shape::Gauge {
                    base,
                    spread,
                    quantum,
                } => {
                    let wave = (step as f64 / 40.0 + i as f64).sin() * 0.7 + unit(seed) * 0.6 - 0.3;
                    ((base + spread * wave) / quantum).round() * quantum
                }
                Shape::Bucket { handler, le } => (hist[*h][handler].0 * cdf(handler, le)).floor(),
                Shape::HistSum { handler } => (hist[*h][handler].1 * 1000.0).round() / 1000.0,
                Shape::HistCount { handler } => hist[*h][handler].0,
                Shape::Constant(v) => v,
            };
            // Scrapes of a host share a timestamp, a few milliseconds late: every sample of
            // one scrape carries the scrape's time, as Prometheus and vmagent stamp them.
            let late = unit(((*h as u64) << 32) ^ step as u64 ^ 0xff) * 5.0;
            let timestamp = t0 + step * STEP_MS + (*h as i64 * 37) % 1000 + late as i64;
            current.push(TimeSeries {
                labels: s.labels.clone(),
                samples: vec![Sample { value, timestamp }],
                ..Default::default()
            });
            total += 1;
            if current.len() == SAMPLES_PER_REQUEST {
                requests.push(encode(&WriteRequest {
                    timeseries: std::mem::take(&mut current),
                    metadata: vec![],
                }));
            }
        }
    }
    if !current.is_empty() {
        requests.push(encode(&WriteRequest {
            timeseries: current,
            metadata: vec![],
        }));
    }
    (requests, total)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Pharos,
    Victoria,
    Prometheus,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Pharos => "Pharos",
            Kind::Victoria => "VictoriaMetrics",
            Kind::Prometheus => "Prometheus",
        }
    }
}

struct Server {
    process: Process,
    write: String,
    query: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(binary).is_file()))
}

fn start(kind: Kind) -> Option<Server> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    match kind {
        Kind::Pharos => {
            let pharos = start_pharos("always");
            Some(Server {
                write: format!("{}/api/v1/write", pharos.otlp_http),
                query: pharos.query,
                process: pharos.process,
            })
        }
        Kind::Victoria | Kind::Prometheus => {
            let binary = if kind == Kind::Victoria {
                "victoria-metrics"
            } else {
                "prometheus"
            };
            if !on_path(binary) {
                println!(
                    "note: `{binary}` is not installed (Debian package `{binary}`), skipping it"
                );
                return None;
            }
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            let mut cmd = Command::new(binary);
            if kind == Kind::Victoria {
                cmd.args([
                    format!("-storageDataPath={}", data.display()),
                    format!("-httpListenAddr={listen}"),
                    "-search.disableCache".into(),
                    "-search.latencyOffset=0s".into(),
                    "-loggerLevel=ERROR".into(),
                ]);
            } else {
                let config = dir.path().join("prometheus.yml");
                std::fs::write(&config, "global:\n  scrape_interval: 15s\n").unwrap();
                cmd.args([
                    format!("--config.file={}", config.display()),
                    format!("--storage.tsdb.path={}", data.display()),
                    format!("--web.listen-address={listen}"),
                    "--web.enable-remote-write-receiver".into(),
                    "--log.level=error".into(),
                ]);
            }
            let process = Process::spawn(
                cmd.stdout(Stdio::null()).stderr(Stdio::inherit()),
                dir,
                data,
            );
            Some(Server {
                write: format!("http://{listen}/api/v1/write"),
                query: format!("http://{listen}"),
                process,
            })
        }
    }
}

async fn wait_ready(client: &reqwest::Client, server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client
            .get(format!("{}/api/v1/query", server.query))
            .query(&[("query", "1")])
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Bytes allocated on disk under `path`, as `du` counts them.
fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// What [`disk_bytes`] counts under each entry of `path`, largest first, in KiB.
fn disk_by_entry(path: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(path) else {
        return String::new();
    };
    let mut sizes: Vec<(String, u64)> = entries
        .flatten()
        .map(|e| {
            let bytes = if e.path().is_dir() {
                disk_bytes(&e.path())
            } else {
                use std::os::unix::fs::MetadataExt;
                e.metadata().map_or(0, |m| m.blocks() * 512)
            };
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    sizes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sizes
        .iter()
        .map(|(name, bytes)| format!("{name}: {} KiB", number(*bytes as f64 / 1024.0, 0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `x` with `prec` decimals, thousands separated by commas when it has none.
fn number(x: f64, prec: usize) -> String {
    if prec > 0 {
        return format!("{x:.prec$}");
    }
    let digits = format!("{x:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A table row: its name, how to read the figure and its decimals.
type Row = (String, Box<dyn Fn(&Figures) -> f64>, usize);

struct Figures {
    samples_per_s: f64,
    cpu_per_million: f64,
    rss_mib: f64,
    disk_per_sample: f64,
    /// Median latency in ms and number of series returned, per query.
    queries: Vec<(f64, usize)>,
}

fn queries() -> Vec<String> {
    vec![
        "sum by (mode) (rate(node_cpu_seconds_total[5m]))".into(),
        "topk(5, rate(node_network_receive_bytes_total[5m]))".into(),
        format!("histogram_quantile(0.9, sum by (le) (rate({HISTOGRAM}_bucket[5m])))"),
        "sum by (instance) (node_memory_MemAvailable_bytes)".into(),
    ]
}

/// Asks `server` to write what it holds in memory to disk now, and says how long that took.
async fn force_flush(client: &reqwest::Client, server: &Server, kind: Kind) {
    let t = Instant::now();
    let r = client
        .post(format!("{}/internal/force_flush", server.query))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    let secs = t.elapsed().as_secs_f64();
    if status.is_success() {
        let said = text.trim();
        let said = if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        };
        println!(
            "{}: /internal/force_flush answered in {secs:.2} s{said}",
            kind.name()
        );
    } else {
        println!(
            "warning: {} answered {status} to /internal/force_flush: {}",
            kind.name(),
            text.trim()
        );
    }
}

async fn run(
    kind: Kind,
    requests: &Arc<Vec<Vec<Vec<u8>>>>,
    total: u64,
    range: (f64, f64),
    runs: usize,
) -> Option<Figures> {
    let server = start(kind)?;
    let pid = server.process.pid();
    let client = reqwest::Client::new();
    wait_ready(&client, &server).await;

    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds(pid);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for sender in 0..requests.len() {
        let (client, requests, write) = (client.clone(), requests.clone(), server.write.clone());
        let (acked, failed) = (acked.clone(), failed.clone());
        tasks.spawn(async move {
            for body in &requests[sender] {
                let r = client
                    .post(&write)
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                if r.status().is_success() {
                    acked.fetch_add(1, Ordering::Relaxed);
                } else if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    println!(
                        "warning: {} answered {status}: {}",
                        kind.name(),
                        text.trim()
                    );
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        println!(
            "warning: {} refused {failed} of {} requests",
            kind.name(),
            failed + acked.load(Ordering::Relaxed)
        );
    }
    // Disk is measured after a flush, on the servers that have an endpoint for it; its CPU
    // counts as ingest cost.
    if kind != Kind::Prometheus {
        force_flush(&client, &server, kind).await;
    }
    // Let background work (flushes, merges) happen before measuring CPU and disk.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu = cpu_seconds(pid) - cpu0;
    let rss_mib = peak_rss_mib(pid);
    let disk = disk_bytes(&server.process.data);
    println!(
        "{}: {:.1} MiB on disk after the flush ({})",
        kind.name(),
        disk as f64 / (1 << 20) as f64,
        disk_by_entry(&server.process.data)
    );
    if kind == Kind::Pharos {
        let text = client
            .get(format!("{}/metrics", server.query))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // The sum of the lines of family `prefix` that contain `has`.
        let sum = |prefix: &str, has: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(prefix) && l.contains(has))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .fold(0.0, |a, b| a + b)
        };
        println!(
            "Pharos: {:.0} WAL fsyncs for {} requests (fsync: always), {:.1} WAL bytes/sample written; \
             {:.0} metrics blocks of {:.2} bytes/sample ({:.0} written by flushes, {:.0} by compaction)",
            sum("pharos_wal_fsync_duration_seconds_count", ""),
            requests.iter().map(Vec::len).sum::<usize>(),
            sum("pharos_wal_bytes_written_total", "") / total as f64,
            sum("pharos_blocks{", "signal=\"metrics\""),
            sum("pharos_block_bytes{", "signal=\"metrics\"") / total as f64,
            sum("pharos_block_writes_total{", "kind=\"flush\""),
            sum("pharos_block_writes_total{", "kind=\"compaction\""),
        );
    }

    let mut figures = Vec::new();
    for q in queries() {
        let mut times = Vec::new();
        let mut series = 0;
        for i in 0..=runs {
            let t = Instant::now();
            let r = client
                .get(format!("{}/api/v1/query_range", server.query))
                .query(&[
                    ("query", q.as_str()),
                    ("start", &format!("{:.3}", range.0)),
                    ("end", &format!("{:.3}", range.1)),
                    ("step", "60"),
                ])
                .send()
                .await
                .unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            let elapsed = t.elapsed().as_secs_f64() * 1e3;
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if !status.is_success() || v["status"] != "success" {
                println!("warning: {} failed `{q}`: {status} {text}", kind.name());
            }
            series = v["data"]["result"].as_array().map_or(0, Vec::len);
            // The first run warms caches and is not counted.
            if i > 0 {
                times.push(elapsed);
            }
        }
        times.sort_by(f64::total_cmp);
        figures.push((times[times.len() / 2], series));
    }
    Some(Figures {
        samples_per_s: total as f64 / elapsed,
        cpu_per_million: cpu / total as f64 * 1e6,
        rss_mib,
        disk_per_sample: disk as f64 / total as f64,
        queries: figures,
    })
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
    let hosts = arg("--hosts", 20) as usize;
    let hours = arg("--hours", 2) as i64;
    let runs = arg("--runs", 10) as usize;
    let senders = arg("--senders", 2).max(1) as usize;
    assert!(hosts <= 100, "--hosts is at most 100");

    let steps = hours * 3600 * 1000 / STEP_MS;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t0 = now - steps * STEP_MS;
    let built = Instant::now();
    let mut requests = Vec::new();
    let mut total = 0;
    for sender in 0..senders {
        let own: Vec<usize> = (0..hosts).filter(|h| h % senders == sender).collect();
        let (r, n) = build_requests(&own, steps, t0);
        requests.push(r);
        total += n;
    }
    let bytes: usize = requests.iter().flatten().map(Vec::len).sum();
    let count: usize = requests.iter().map(Vec::len).sum();
    let series = total / steps as u64;
    println!(
        "remote_write 1.0: {hosts} hosts, {series} series, {steps} points each ({hours} h at 15 s), {total} samples in {count} requests \
         ({:.1} MiB snappy, {:.1} B/sample on the wire), built in {:.1} s; {senders} senders per server, one server at a time\n",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / total as f64,
        built.elapsed().as_secs_f64()
    );
    let requests = Arc::new(requests);
    let range = (t0 as f64 / 1e3, (t0 + (steps - 1) * STEP_MS) as f64 / 1e3);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut results = Vec::new();
    // `--only pharos` (or victoria-metrics, prometheus) runs one server, for profiling.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    for kind in [Kind::Pharos, Kind::Victoria, Kind::Prometheus] {
        if only.is_some_and(|o| !kind.name().to_lowercase().starts_with(&o.to_lowercase())) {
            results.push((kind, None));
            continue;
        }
        let f = rt.block_on(run(kind, &requests, total, range, runs));
        if let Some(f) = &f {
            println!(
                "{}: ingested in {:.1} s, {:.0} samples/s",
                kind.name(),
                total as f64 / f.samples_per_s,
                f.samples_per_s
            );
        }
        results.push((kind, f));
    }

    let qs = queries();
    for (i, q) in qs.iter().enumerate() {
        let counts: Vec<(&str, usize)> = results
            .iter()
            .filter_map(|(k, f)| f.as_ref().map(|f| (k.name(), f.queries[i].1)))
            .collect();
        if counts.windows(2).any(|w| w[0].1 != w[1].1) {
            println!("warning: `{q}` returned different numbers of series: {counts:?}");
        }
    }

    let get = |kind: Kind| {
        results
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, f)| f.as_ref())
    };
    let (p, v, m) = (
        get(Kind::Pharos),
        get(Kind::Victoria),
        get(Kind::Prometheus),
    );
    let mut rows: Vec<Row> = vec![
        (
            "samples/s acked (wall clock)".into(),
            Box::new(|f: &Figures| f.samples_per_s),
            0,
        ),
        (
            "server CPU-s per 1M samples".into(),
            Box::new(|f: &Figures| f.cpu_per_million),
            2,
        ),
        ("peak RSS MiB".into(), Box::new(|f: &Figures| f.rss_mib), 0),
        (
            "disk bytes/sample".into(),
            Box::new(|f: &Figures| f.disk_per_sample),
            2,
        ),
    ];
    for (i, q) in qs.iter().enumerate() {
        let series = p.or(v).or(m).map_or(0, |f| f.queries[i].1);
        rows.push((
            format!("median ms: `{q}` ({series} series)"),
            Box::new(move |f: &Figures| f.queries[i].0),
            1,
        ));
    }
    println!();
    println!(
        "| figure | Pharos | VictoriaMetrics | Prometheus | Pharos/VictoriaMetrics | Pharos/Prometheus |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let cell = |f: Option<&Figures>, get: &dyn Fn(&Figures) -> f64, prec: usize| {
        f.map_or("–".to_string(), |f| number(get(f), prec))
    };
    let ratio =
        |a: Option<&Figures>, b: Option<&Figures>, get: &dyn Fn(&Figures) -> f64| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}x", get(a) / get(b)),
            _ => "–".to_string(),
        };
    for (name, get, prec) in rows.drain(..) {
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            cell(p, &*get, prec),
            cell(v, &*get, prec),
            cell(m, &*get, prec),
            ratio(p, v, &*get),
            ratio(p, m, &*get),
        );
    }
    println!(
        "\nDisk is measured after `/internal/force_flush` on Pharos and VictoriaMetrics; \
         Prometheus has no flush endpoint and is measured as it stands."
    );
    println!("\nCommand: `cargo bench -p pharos --bench remote_write`");
}
