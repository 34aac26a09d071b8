//! What the benchmarks share: a server process killed when dropped, Pharos
//! started on OS-chosen ports, the `/proc` readings (CPU seconds, peak
//! RSS) that measure a server independently of its clients, a raw-bytes gRPC codec, and
//! the small measuring and formatting helpers the benches share.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A server process with its own temporary directory; killed when dropped.
pub struct Process {
    pub child: Child,
    /// Where the server keeps its data, inside the temporary directory.
    pub data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Process {
    /// Spawns `cmd`, which keeps its data in `data` under `dir`.
    pub fn spawn(cmd: &mut Command, dir: tempfile::TempDir, data: PathBuf) -> Process {
        Process {
            child: cmd.spawn().unwrap(),
            data,
            _dir: dir,
        }
    }

    /// The process id, for [`cpu_seconds`] and [`peak_rss_mib`].
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `pharos serve` and its addresses, each as `http://host:port`.
pub struct Pharos {
    pub process: Process,
    pub otlp_grpc: String,
    pub otlp_http: String,
    pub query: String,
}

/// Starts the release `pharos serve` in a fresh directory with the given WAL fsync policy.
pub fn start_pharos(fsync: &str) -> Pharos {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("pharos.yaml");
    std::fs::write(
        &config,
        format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\n      http:\n        endpoint: 127.0.0.1:0\n\
             query:\n  endpoint: 127.0.0.1:0\nstorage:\n  path: {}\n  wal:\n    fsync: {fsync}\n    fsync_interval_ms: 100\n\
             processors:\n  memory_limiter:\n    limit_percentage: 90\n  batch:\n",
            data.display()
        ),
    )
    .unwrap();
    let mut process = Process::spawn(
        Command::new(env!("CARGO_BIN_EXE_pharos"))
            .args(["serve", "--config", config.to_str().unwrap()])
            // `PHAROS_BENCH_LOG=info` shows the server's flushes and merges.
            .env(
                "PHAROS_LOG",
                std::env::var("PHAROS_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
        dir,
        data,
    );
    let mut line = String::new();
    BufReader::new(process.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let field = |name: &str| {
        let addr = line
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap()
            .trim_start_matches("http://");
        format!("http://{addr}")
    };
    Pharos {
        otlp_grpc: field("otlp_grpc"),
        otlp_http: field("otlp_http"),
        query: field("query"),
        process,
    }
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The peak resident set size of a process (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kb / 1024.0
}

/// A tonic codec that sends already-encoded request bytes and decodes the response as `R`,
/// so a bench times sending, not encoding.
pub struct RawCodec<R>(std::marker::PhantomData<R>);
/// [`RawCodec`]'s encoder: the bytes as they are.
pub struct RawEncoder;
/// [`RawCodec`]'s decoder.
pub struct RawDecoder<R>(std::marker::PhantomData<R>);

impl<R> RawCodec<R> {
    /// The codec.
    pub fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<R> Clone for RawCodec<R> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<R: prost::Message + Default + Send + 'static> tonic::codec::Codec for RawCodec<R> {
    type Encode = prost::bytes::Bytes;
    type Decode = R;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder<R>;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder<R> {
        RawDecoder(std::marker::PhantomData)
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = prost::bytes::Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: prost::bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl<R: prost::Message + Default + Send + 'static> tonic::codec::Decoder for RawDecoder<R> {
    type Item = R;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<R>, tonic::Status> {
        use prost::bytes::Buf;
        let n = src.remaining();
        R::decode(src.copy_to_bytes(n))
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

/// This thread's CPU time in nanoseconds (the scheduler's own count).
pub fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}
/// CPU time per pass over `payloads` of `f`, in this thread's nanoseconds: the faster of
/// two passes (the first one also pays for page faults).
pub fn best_of_two(payloads: &[(prost::bytes::Bytes, u32)], mut f: impl FnMut(&[u8])) -> u64 {
    let mut best = u64::MAX;
    for _ in 0..2 {
        let c0 = thread_cpu_ns();
        for (bytes, _) in payloads {
            f(&bytes[..]);
        }
        best = best.min(thread_cpu_ns() - c0);
    }
    best
}
/// Bytes allocated under `path`, as `du` counts them (0 when it does not exist), and files.
pub fn du(path: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return (0, 0);
    };
    if !meta.is_dir() {
        return (meta.blocks() * 512, 1);
    }
    let mut total = (0, 0);
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let (b, n) = du(&e.path());
            total.0 += b;
            total.1 += n;
        }
    }
    total
}
/// Counts what a writer is given.
#[derive(Default)]
pub struct Counter(pub u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
/// The `q` quantile of sorted values (nearest rank); NaN for none.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
/// The median of values.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    quantile(&v, 0.5)
}
/// A process' resident memory now, MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}
/// An HTTP client for queries, with a generous timeout.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .unwrap()
}
/// GETs `url`: (milliseconds, status, body).
pub async fn get(http: &reqwest::Client, url: &str) -> (f64, u16, String) {
    let t = std::time::Instant::now();
    let resp = http.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    (t.elapsed().as_secs_f64() * 1e3, status, body)
}
/// An integer with thousands separators: `1,234,567`.
pub fn fmt_int(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (k, c) in s.chars().enumerate() {
        if k > 0 && (s.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
/// A point's size as a label: `1M`, `10k`, or the number.
pub fn label(n: u64) -> String {
    if n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        fmt_int(n)
    }
}
