//! What the benchmarks share: a server process killed when dropped, Pharos
//! started on OS-chosen ports, and the `/proc` readings (CPU seconds, peak
//! RSS) that measure a server independently of its clients.

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
