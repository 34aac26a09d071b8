//! The PromQL evaluator on node_exporter-like data held in the store, in process: the
//! range queries of the side-by-side benchmark (`crates/pharos/benches/remote_write.rs`),
//! without HTTP or JSON, so a profile shows the engine alone.
//!
//! Run with `cargo bench -p pharos-metrics --bench promql` (`-- --blocks` to flush the
//! data into blocks first). 20 hosts: 8 CPU counters, 2 network counters per host (x4
//! devices), a memory gauge, and a 12-bucket histogram of 10 handlers (120 series), every
//! 15 s for 2 hours; each query runs over the 2 hours at step 60 s; the median of 10 runs
//! (after one warm-up) is printed. `--only TEXT` runs only the queries containing TEXT,
//! `--runs N` times each (10 by default), which is handy under a profiler.

use std::hint::black_box;
use std::time::{Duration, Instant};

use pharos_metrics::MetricsStore;
use pharos_metrics::promql::{QueryOptions, range_query};
use pharos_metrics::store::Labels;

const STEP_MS: i64 = 15_000;
const HOURS: i64 = 2;
const T0: i64 = 1_700_000_000_000;
const LE: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

fn unit(seed: u64) -> f64 {
    let mut x = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((x ^ (x >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

fn fill(store: &MetricsStore) -> usize {
    let mut series: Vec<(Labels, f64, bool)> = Vec::new();
    for h in 0..20 {
        let inst = format!("host-{h:02}:9100");
        let base = [("job", "node"), ("instance", inst.as_str())];
        for mode in [
            "idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice",
        ] {
            let mut l = base.to_vec();
            l.extend([
                ("__name__", "node_cpu_seconds_total"),
                ("cpu", "0"),
                ("mode", mode),
            ]);
            series.push((Labels::from_pairs(l), 0.9, true));
        }
        for dev in ["eth0", "eth1", "lo", "docker0"] {
            let mut l = base.to_vec();
            l.extend([
                ("__name__", "node_network_receive_bytes_total"),
                ("device", dev),
            ]);
            series.push((Labels::from_pairs(l), 1e5, true));
        }
        let mut l = base.to_vec();
        l.push(("__name__", "node_memory_MemAvailable_bytes"));
        series.push((Labels::from_pairs(l), 4e9, false));
        for handler in 0..10 {
            let hs = format!("/api/v{handler}");
            for (i, le) in LE.iter().enumerate() {
                let mut l = base.to_vec();
                l.extend([
                    ("__name__", "http_request_duration_seconds_bucket"),
                    ("handler", hs.as_str()),
                    ("le", le),
                ]);
                series.push((Labels::from_pairs(l), 1.0 + i as f64, true));
            }
        }
    }
    let n = (HOURS * 3600 * 1000 / STEP_MS) as usize;
    let mut samples = 0;
    for (k, (labels, scale, counter)) in series.iter().enumerate() {
        let mut v = 0.0;
        for i in 0..n {
            let t = T0 + i as i64 * STEP_MS;
            let r = unit((k * 1_000_003 + i) as u64);
            v = if *counter {
                v + (r * scale * 15.0).round()
            } else {
                scale * (0.9 + 0.2 * r)
            };
            assert!(store.append_sample(labels.clone(), t, v));
            samples += 1;
        }
    }
    samples
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let blocks = args.iter().any(|a| a == "--blocks");
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let only = arg("--only");
    let runs: usize = arg("--runs").map_or(10, |r| r.parse().expect("--runs N"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = MetricsStore::new();
    let tmp = tempfile::tempdir().unwrap();
    if blocks {
        rt.block_on(store.open_blocks(
            pharos_storage::BlockStore::local(tmp.path()).unwrap(),
            Default::default(),
        ))
        .unwrap();
    }
    let samples = fill(&store);
    if blocks {
        store.freeze();
        rt.block_on(store.flush_frozen()).unwrap();
    }
    let (start, end) = (T0, T0 + HOURS * 3600 * 1000 - STEP_MS);
    println!(
        "{} series, {samples} samples, data in {}",
        store.series_count(),
        if blocks { "blocks" } else { "the head" }
    );
    println!("| query | series out | median ms |\n| --- | ---: | ---: |");
    for q in [
        "sum by (mode) (rate(node_cpu_seconds_total[5m]))",
        "topk(5, rate(node_network_receive_bytes_total[5m]))",
        "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        "sum by (instance) (node_memory_MemAvailable_bytes)",
    ] {
        if only.as_deref().is_some_and(|o| !q.contains(o)) {
            continue;
        }
        let opts = QueryOptions::default();
        let run = || range_query(&store, q, start, end, 60_000, &opts).unwrap();
        let out = run();
        let n = match &out {
            pharos_metrics::promql::Value::Matrix(m) => m.len(),
            _ => 0,
        };
        let mut times: Vec<Duration> = (0..runs.max(1))
            .map(|_| {
                let t = Instant::now();
                black_box(run());
                t.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "| `{q}` | {n} | {:.1} |",
            times[times.len() / 2].as_secs_f64() * 1000.0
        );
    }
}
