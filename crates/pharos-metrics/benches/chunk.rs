//! Chunk encodings side by side: size and speed of XOR and pco on node_exporter-like series.
//!
//! Run with `cargo bench -p pharos-metrics --bench chunk`; it prints a markdown table.
//! Every series is scraped every 15 s with a few ms of jitter and cut into chunks of 120
//! samples (the head's size: 30 minutes) and of 1,000 samples (what a block could hold).
//! Sizes include the chunk envelope. Times are the fastest of several rounds over 64 series,
//! per sample; encode for XOR means appending each sample to a `XorChunk` and encoding it,
//! decode means parsing the chunk and decoding every sample into a vector.

use std::hint::black_box;
use std::time::{Duration, Instant};

use pharos_metrics::store::chunk::{Chunk, Encoding, XorChunk, encode};

/// Series per shape and chunk length.
const SERIES: usize = 64;
/// Samples each timed measurement processes at least (spread over rounds).
const SAMPLES_PER_MEASUREMENT: usize = 2_000_000;
const SCRAPE_MS: i64 = 15_000;

/// A small deterministic PRNG (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns a uniform float in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Returns a roughly normal float (mean 0, deviation 1).
    fn normal(&mut self) -> f64 {
        (0..4).map(|_| self.unit()).sum::<f64>() * 3f64.sqrt() - 2.0 * 3f64.sqrt()
    }

    /// Returns an integer in `[-j, j]`.
    fn jitter(&mut self, j: i64) -> i64 {
        (self.next() % (2 * j as u64 + 1)) as i64 - j
    }
}

/// The shapes of series a node_exporter scrape yields.
#[derive(Clone, Copy)]
enum Shape {
    /// `node_cpu_seconds_total`: +~15 s per scrape in steps of 0.01 (USER_HZ).
    CpuCounter,
    /// `node_network_receive_bytes_total`: integer byte counts growing by bursts.
    BytesCounter,
    /// `http_requests_total`-like: a few increments per scrape, often none.
    SlowCounter,
    /// `node_memory_MemAvailable_bytes`: ~8 GiB moving by pages.
    MemoryGauge,
    /// `node_load1`: two-decimal float, mean-reverting noise.
    LoadGauge,
    /// `node_hwmon_temp_celsius`: whole degrees wandering around 45.
    TempGauge,
    /// `up`, `node_filesystem_size_bytes`: never changes.
    Constant,
    /// `up` again, with timestamps exactly 15 s apart (Prometheus snaps scrape times within
    /// `--scrape.timestamp-tolerance` to the interval).
    ConstantAligned,
}

const SHAPES: [(Shape, &str); 8] = [
    (Shape::CpuCounter, "counter: cpu seconds (0.01 steps)"),
    (Shape::BytesCounter, "counter: network bytes"),
    (Shape::SlowCounter, "counter: requests (small increments)"),
    (Shape::MemoryGauge, "gauge: memory bytes (random walk)"),
    (Shape::LoadGauge, "gauge: load1 (2-decimal noise)"),
    (Shape::TempGauge, "gauge: temperature (whole degrees)"),
    (Shape::Constant, "constant: up / fs size"),
    (Shape::ConstantAligned, "constant, no jitter: up"),
];

/// Returns one series of `n` samples.
fn series(shape: Shape, n: usize, rng: &mut Rng) -> Vec<(i64, f64)> {
    let start = 1_700_000_000_000 + (rng.next() % 3_600_000) as i64;
    let mut v: f64 = match shape {
        Shape::CpuCounter => (rng.next() % 10_000_000) as f64 / 100.0,
        Shape::BytesCounter => (rng.next() % (1 << 40)) as f64,
        Shape::SlowCounter => (rng.next() % 100_000) as f64,
        Shape::MemoryGauge => (8u64 << 30) as f64,
        Shape::LoadGauge => 0.5,
        Shape::TempGauge => 45.0,
        Shape::Constant | Shape::ConstantAligned => 1.0,
    };
    let jitter = match shape {
        Shape::ConstantAligned => 0,
        _ => 5,
    };
    let rate = 0.5 + rng.unit();
    (0..n as i64)
        .map(|i| {
            let t = start + i * SCRAPE_MS + rng.jitter(jitter);
            let s = (t, v);
            v = match shape {
                Shape::CpuCounter => {
                    let cs = (1450.0 * rate + 20.0 * rng.normal()).max(0.0).round();
                    ((v * 100.0).round() + cs) / 100.0
                }
                Shape::BytesCounter => v + (50_000.0 * rate * (1.0 + rng.normal()).exp()).round(),
                Shape::SlowCounter => v + (rng.unit() * 4.0 * rate).floor(),
                Shape::MemoryGauge => v + 4096.0 * (rng.normal() * 200.0).round(),
                Shape::LoadGauge => {
                    (((v + 0.1 * (0.6 * rate - v) + 0.05 * rng.normal()).max(0.0)) * 100.0).round()
                        / 100.0
                }
                Shape::TempGauge => {
                    if rng.unit() < 0.2 {
                        v + rng.jitter(1) as f64
                    } else {
                        v
                    }
                }
                Shape::Constant | Shape::ConstantAligned => v,
            };
            s
        })
        .collect()
}

/// What one encoding measured on one set of chunks.
#[derive(Clone, Copy, Default)]
struct Measured {
    bytes: usize,
    samples: usize,
    encode: Duration,
    decode: Duration,
}

/// Returns the fastest of `rounds` runs of `f`.
fn fastest(rounds: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .expect("BUG: at least one round")
}

fn encode_xor(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut c = XorChunk::new();
    for &(t, v) in samples {
        c.append(t, v).expect("BUG: generated series increase");
    }
    c.encode().expect("BUG: non-empty chunk")
}

fn measure(set: &[Vec<(i64, f64)>], encoding: Encoding) -> Measured {
    let samples: usize = set.iter().map(Vec::len).sum();
    let rounds = (SAMPLES_PER_MEASUREMENT / samples).max(3);
    let enc = |s: &[(i64, f64)]| match encoding {
        Encoding::Xor => encode_xor(s),
        Encoding::PcoSharedTimestamps => panic!("shared timestamps need a block"),
        pco => encode(s, pco).expect("BUG: generated series increase"),
    };
    let chunks: Vec<Vec<u8>> = set.iter().map(|s| enc(s)).collect();
    for (s, c) in set.iter().zip(&chunks) {
        let mut out = Vec::new();
        Chunk::parse(c).unwrap().decode_into(&mut out).unwrap();
        let bits = |v: &[(i64, f64)]| v.iter().map(|&(t, v)| (t, v.to_bits())).collect::<Vec<_>>();
        assert!(bits(&out) == bits(s), "round trip differs");
    }
    let encode_time = fastest(rounds, || {
        for s in set {
            black_box(enc(black_box(s)));
        }
    });
    let mut out = Vec::with_capacity(1_000);
    let decode_time = fastest(rounds, || {
        for c in &chunks {
            out.clear();
            Chunk::parse(black_box(c))
                .unwrap()
                .decode_into(&mut out)
                .unwrap();
            black_box(&out);
        }
    });
    Measured {
        bytes: chunks.iter().map(Vec::len).sum(),
        samples,
        encode: encode_time,
        decode: decode_time,
    }
}

fn add(a: Measured, b: Measured) -> Measured {
    Measured {
        bytes: a.bytes + b.bytes,
        samples: a.samples + b.samples,
        encode: a.encode + b.encode,
        decode: a.decode + b.decode,
    }
}

fn row(name: &str, len: usize, x: Measured, p: Measured) {
    let per = |m: Measured, d: Duration| d.as_nanos() as f64 / m.samples as f64;
    let bps = |m: Measured| m.bytes as f64 / m.samples as f64;
    println!(
        "| {name} | {len} | {:.2} | {:.2} | {:.2}x | {:.1} | {:.1} | {:.1} | {:.1} |",
        bps(x),
        bps(p),
        bps(x) / bps(p),
        per(x, x.encode),
        per(p, p.encode),
        per(x, x.decode),
        per(p, p.decode),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    println!("Chunk encodings on node_exporter-like series (15 s scrapes, ±5 ms jitter).");
    println!("Run: `cargo bench -p pharos-metrics --bench chunk`. Raw samples take 16 B.\n");
    println!(
        "| series | samples/chunk | XOR B/sample | pco B/sample | XOR/pco size | XOR encode ns/sample | pco encode ns/sample | XOR decode ns/sample | pco decode ns/sample |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for len in [120, 1_000] {
        let mut total_x = Measured::default();
        let mut total_p = Measured::default();
        for (i, &(shape, name)) in SHAPES.iter().enumerate() {
            let mut rng = Rng(0xC0FFEE + i as u64);
            let set: Vec<Vec<(i64, f64)>> =
                (0..SERIES).map(|_| series(shape, len, &mut rng)).collect();
            let x = measure(&set, Encoding::Xor);
            let p = measure(&set, Encoding::Pco);
            row(name, len, x, p);
            total_x = add(total_x, x);
            total_p = add(total_p, p);
        }
        row("**all shapes, equal mix**", len, total_x, total_p);
    }
}
