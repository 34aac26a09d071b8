//! Logs benchmark: realistic multi-service logs into a real `pharos serve` through both
//! Loki push and OTLP/gRPC, then needle and `count_over_time` query latency, at two sizes
//! of the store.
//!
//! Run: `cargo bench -p pharos --bench logs` (options after `--`: `--lines N` for the
//! small point (1,000,000; the big point is 10x), `--clients N` (8 concurrent clients per
//! protocol), `--small-only` (stop after the small point), `--chunk N` (lines generated,
//! encoded and sent at a time: 500,000), `--fsync always|never|interval` (the server's WAL
//! policy: `always`, its default; `--fsync` alone means `always`), `--needles N` (20
//! needles that exist, plus 4 that do not), `--runs N` (5 timed runs of each
//! `count_over_time` query after one warm-up), `--seed N` (1), `--only push|otlp` (send one protocol's lines only, to profile its path; the answers are then wrong).
//!
//! What it measures, each against its target from the issue:
//! - **Ingest CPU**, per protocol. Each chunk of generated lines is split by protocol and
//!   sent in two phases, Loki push first, then OTLP/gRPC, each by `--clients` concurrent
//!   clients; the server's CPU (utime+stime from `/proc`) is read around each phase, so
//!   each protocol gets its own lines accepted per CPU-second of the server. Against it:
//!   bare decoding of the same request bytes in one thread of this process, measured in
//!   that thread's CPU time (`/proc/thread-self/schedstat`, the faster of two passes):
//!   snappy decompression plus `logproto.PushRequest` decoding for push,
//!   `ExportLogsServiceRequest::decode` for OTLP. Target: at least half the decode-only
//!   rate, for both. Beside them, the whole run's figure: every line accepted per
//!   CPU-second the server spent while the bench was not querying it (the sends,
//!   background work between them and the flush), against decoding everything.
//! - **Disk.** After `POST /internal/force_flush` and a few seconds' wait: bytes under
//!   `<data>/blocks/logs` and `<data>/wal/logs` (allocated, as `du` counts), per line
//!   accepted, against zstd level 3 of the raw lines (their texts joined with `\n`, in
//!   send order), per line sent. Target: at most 1.0. For information, zstd level 3 of
//!   the lines each with its timestamp and the structured metadata the server keeps for
//!   it rendered as text (`ts line\tname=value ...`; for OTLP, the metadata Loki's OTLP
//!   mapping derives: resource attributes that are not labels, scope, severity, trace and
//!   span ids, `detected_level`).
//! - **Needle queries.** `{service_name="checkout"} |= "order-NNNNNNNN"` through
//!   `GET /loki/api/v1/query_range` (limit 100, start and end covering all the data), for
//!   `--needles` order ids the generator produced (each order's 1–5 lines sit in one
//!   checkout instance within a few seconds), drawn from everything sent so far, and four
//!   order ids it never produced. Each needle runs once after two warm-up queries; every
//!   answer is checked to hold exactly the order's lines (timestamp and text). Median and
//!   p99 latency. The share of chunks skipped, `1 - totalChunksDownloaded /
//!   totalChunksRef` summed over the needles from `data.stats.querier.store` of the
//!   answers (target: above 90% at the big point); `n/a` when the server does not report
//!   them.
//! - **`count_over_time`.** `sum by (detected_level) (count_over_time({service_name=
//!   "checkout"}[1m]))` at a 60 s step and `sum(count_over_time({service_name=~".+"} |=
//!   "error" [5m]))` at a 300 s step, each over the hour the data covers (the hour before
//!   the bench started, aligned to 5 minutes); steps equal to ranges, so the windows tile
//!   the hour and the values add up to the lines in it. Median of `--runs` after one
//!   warm-up (2 timed runs past 2 s, 1 past 10 s); each answer's total is checked against
//!   the bench's own count (per-second histograms kept while generating).
//!
//! Both measured at the small point and again after sending nine times as many lines more
//! from the same generator.
//!
//! The data: an online shop of seven services (frontend, product-catalog, cart, checkout,
//! payment, email, db-proxy; 17 instances on 6 nodes). Each instance ships its logs one
//! way: through an OTLP SDK log exporter (a BatchLogRecordProcessor: 512 records or 1 s
//! of simulated time per request; one `ResourceLogs` with the resource attributes a
//! Kubernetes deployment has, so its stream labels are `service_name`,
//! `service_namespace`, `service_instance_id`, `deployment_environment_name`,
//! `k8s_namespace_name`, `k8s_pod_name`), or through the Loki agent of its node (Alloy or
//! Promtail tailing the container: a batch per node every second; labels `cluster`, `env`,
//! `namespace`, `job`, `instance`, `service_name`, `stream` (stdout/stderr)); every
//! service has instances of both kinds, 25 streams in all. Lines are what such services
//! print, 80–300 bytes: nginx access lines (frontend), Go logfmt (`level=info ts=...
//! msg="..." order_id=... duration=12ms`: product-catalog, checkout), JSON (cart; Java
//! logstash JSON with stack traces for payment), Ruby logger lines (email), PgBouncer
//! lines (db-proxy); with high-cardinality fields (order, user, request, charge, cart
//! ids, IPs, durations); about 2% at error level. OTLP records carry the line as their
//! body, severity number and text, and (for lines of a request) the trace and span ids;
//! push entries of checkout, cart and payment lines of a request carry `trace_id`
//! structured metadata. Each checkout order has a unique id `order-NNNNNNNN` and 1–5
//! lines in one checkout instance over a few seconds. Timestamps run over 55 minutes
//! ending five minutes before the bench started (the big point's lines; the small point
//! holds the first tenth), in order within a stream but for 0.3% of lines stamped up to
//! 30 s earlier than their neighbours. Everything is generated from a seed, chunk by chunk,
//! and encoded before its chunk is timed; requests go out as those pre-encoded bytes.

mod common;

use common::{
    Counter, best_of_two, cpu_seconds, du, fmt_int, get, http_client, label, median, peak_rss_mib,
    quantile, rss_mib, start_pharos,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use pharos_logs::push::proto::{Entry, LabelPair, PushRequest, Stream, Timestamp};
use prost::Message;
use prost::bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------
// Time as the services print it
// ---------------------------------------------------------------------------------------

const SEC: i64 = 1_000_000_000;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A UTC time broken down: year, month (1–12), day, hour, minute, second, nanosecond.
struct Civil {
    y: i64,
    mo: usize,
    d: i64,
    h: i64,
    mi: i64,
    s: i64,
    ns: i64,
}

fn civil(ns: i64) -> Civil {
    let secs = ns.div_euclid(SEC);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = pharos_model::civil::civil_from_days(days);
    Civil {
        y,
        mo: mo as usize,
        d,
        h: sod / 3600,
        mi: sod % 3600 / 60,
        s: sod % 60,
        ns: ns.rem_euclid(SEC),
    }
}

/// `2025-03-12T10:15:32.123Z` (Go's and Java's JSON and logfmt loggers).
fn rfc3339_ms(ns: i64) -> String {
    let c = civil(ns);
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.y,
        c.mo,
        c.d,
        c.h,
        c.mi,
        c.s,
        c.ns / 1_000_000
    )
}

/// `12/Mar/2025:10:15:32 +0000` (nginx's `$time_local`).
fn nginx_time(ns: i64) -> String {
    let c = civil(ns);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        c.d,
        MONTHS[c.mo - 1],
        c.y,
        c.h,
        c.mi,
        c.s
    )
}

/// `2025-03-12T10:15:32.123456` (Ruby's Logger).
fn ruby_time(ns: i64) -> String {
    let c = civil(ns);
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        c.y,
        c.mo,
        c.d,
        c.h,
        c.mi,
        c.s,
        c.ns / 1_000
    )
}

/// `2025-03-12 10:15:32.123 UTC` (PgBouncer).
fn pg_time(ns: i64) -> String {
    let c = civil(ns);
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}.{:03} UTC",
        c.y,
        c.mo,
        c.d,
        c.h,
        c.mi,
        c.s,
        c.ns / 1_000_000
    )
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

// ---------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------

const FRONTEND: usize = 0;
const CATALOG: usize = 1;
const CART: usize = 2;
const CHECKOUT: usize = 3;
const PAYMENT: usize = 4;
const EMAIL: usize = 5;
const DBPROXY: usize = 6;
const SERVICES: [&str; 7] = [
    "frontend",
    "product-catalog",
    "cart",
    "checkout",
    "payment",
    "email",
    "db-proxy",
];
const INSTANCES: [usize; 7] = [3, 3, 2, 3, 2, 2, 2];
const NODES: usize = 6;
/// SDK language, SDK version, service version, and the logging bridge's scope name and
/// version, per service.
const SDK: [(&str, &str, &str, &str, &str); 7] = [
    (
        "nodejs",
        "1.30.1",
        "2.4.0",
        "@opentelemetry/instrumentation-pino",
        "0.46.0",
    ),
    (
        "go",
        "1.34.0",
        "1.12.3",
        "go.opentelemetry.io/contrib/bridges/otelslog",
        "0.9.0",
    ),
    ("dotnet", "1.11.2", "3.0.1", "Cart.Api", ""),
    (
        "go",
        "1.34.0",
        "1.12.3",
        "go.opentelemetry.io/contrib/bridges/otelslog",
        "0.9.0",
    ),
    (
        "java",
        "1.47.0",
        "4.2.0",
        "io.opentelemetry.logback-appender-1.0",
        "2.11.0-alpha",
    ),
    ("ruby", "1.5.0", "0.9.8", "opentelemetry-logs-sdk", "0.2.0"),
    ("cpp", "1.18.0", "1.23.1", "pgbouncer", "1.23.1"),
];

/// A BatchLogRecordProcessor's `max_export_batch_size` and `schedule_delay`; a Loki
/// agent's `batch_wait` (its 1 MiB `batch_size` is never reached here).
const BATCH_RECORDS: usize = 512;
const BATCH_DELAY_NS: i64 = SEC;
const USERS: u32 = 200_000;
const PRODUCTS: u32 = 2_000;
/// Order ids: `order-` and eight digits, `(seq * ORDER_MUL + ORDER_ADD) mod 10^8`, a
/// bijection, so ids are unique and look random; ids of `seq` at or past `ABSENT_SEQ` are
/// never produced (the generator makes far fewer orders).
const ORDER_MUL: u64 = 48_271;
const ORDER_ADD: u64 = 12_345_679;
const ABSENT_SEQ: u64 = 90_000_000;
/// Every `RECORD_EVERY`th order's lines are kept for checking needle answers.
const RECORD_EVERY: u64 = 53;
const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 Version/18.1 Safari/605.1.15",
];

fn order_id(seq: u64) -> String {
    format!("order-{:08}", (seq * ORDER_MUL + ORDER_ADD) % 100_000_000)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn severity(self) -> (i32, &'static str, &'static str) {
        match self {
            Level::Debug => (5, "DEBUG", "debug"),
            Level::Info => (9, "INFO", "info"),
            Level::Warn => (13, "WARN", "warn"),
            Level::Error => (17, "ERROR", "error"),
        }
    }
}

fn s(k: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// One line as its service printed it.
struct Line {
    inst: usize,
    /// When the line was logged (its timestamp); its arrival is the `due` it is queued at.
    ts: i64,
    level: Level,
    text: String,
    trace: Option<([u8; 16], [u8; 8])>,
    /// The order it belongs to, when that order's lines are kept for checking.
    order: Option<usize>,
}

/// A line waiting for its time to come, ordered by that time, then by creation.
struct Pending {
    due: i64,
    seq: u64,
    line: Line,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    // Reversed: `BinaryHeap` pops the earliest.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.due, o.seq).cmp(&(self.due, self.seq))
    }
}

/// One service instance (a pod) and, for OTLP ones, its batch processor.
struct Instance {
    svc: usize,
    node: usize,
    otlp: bool,
    resource: Resource,
    /// The structured metadata the server derives from the resource and scope, as text
    /// (OTLP instances), for the informational zstd figure.
    meta_text: String,
    /// Push stream labels, stdout and stderr (push instances).
    labels: [String; 2],
    pending: Vec<LogRecord>,
    since_ns: i64,
}

/// A node's Loki agent: one batch of streams, sent every second.
#[derive(Default)]
struct Agent {
    /// (instance, stderr, entries).
    streams: Vec<(usize, usize, Vec<Entry>)>,
    count: usize,
    since_ns: i64,
}

/// What the bench remembers of a sampled order: its lines, to check needle answers.
struct OrderRec {
    seq: u64,
    /// Lines not yet sent.
    remaining: u32,
    lines: Vec<(i64, String)>,
}

/// The requests of one protocol in one chunk, encoded, with their lines as text.
#[derive(Default)]
struct Phase {
    payloads: Vec<(Bytes, u32)>,
    lines: u64,
    bytes: u64,
    /// The lines, each followed by `\n`, in send order.
    text: Vec<u8>,
    /// The lines with timestamp and metadata, as text.
    meta_text: Vec<u8>,
}

#[derive(Default)]
struct Chunk {
    push: Phase,
    otlp: Phase,
}

/// Per-second line counts, for checking `count_over_time` answers: bucket `s` holds
/// lines with timestamps in `(s - 1 s, s]`, as Loki's left-open range windows count them.
struct Histogram {
    base_s: i64,
    counts: Vec<u32>,
}

impl Histogram {
    fn new(base_s: i64) -> Histogram {
        Histogram {
            base_s,
            counts: Vec::new(),
        }
    }

    fn add(&mut self, ts: i64) {
        let s = (ts + SEC - 1).div_euclid(SEC);
        let at = (s - self.base_s) as usize;
        if at >= self.counts.len() {
            self.counts.resize(at + 1, 0);
        }
        self.counts[at] += 1;
    }

    /// Lines in `(from_s, to_s]`.
    fn window(&self, from_s: i64, to_s: i64) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .filter(|(k, _)| {
                let s = self.base_s + *k as i64;
                s > from_s && s <= to_s
            })
            .map(|(_, n)| *n as u64)
            .sum()
    }
}

/// The generator: simulated time, instances and agents with their batches, lines waiting
/// for their time, and the bench's own counts of everything sent.
struct Gen {
    rng: SmallRng,
    instances: Vec<Instance>,
    agents: Vec<Agent>,
    first: [usize; 7],
    t_ns: i64,
    ns_per_line: f64,
    heap: BinaryHeap<Pending>,
    seq: u64,
    next_stats: i64,
    orders: u64,
    recorded: Vec<OrderRec>,
    /// Lines of checkout, and lines holding `error`, by second.
    checkout: Histogram,
    errors: Histogram,
    lines: u64,
    error_level: u64,
    line_bytes: u64,
    min_len: usize,
    max_len: usize,
    per_service: [u64; 7],
}

impl Gen {
    /// Spreads `total` lines over 55 minutes starting at `start_ns`.
    fn new(seed: u64, total: u64, start_ns: i64) -> Gen {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut instances = Vec::new();
        let mut first = [0; 7];
        for (svc, name) in SERVICES.iter().enumerate() {
            first[svc] = instances.len();
            let (lang, sdk, version, scope, scope_version) = SDK[svc];
            for k in 0..INSTANCES[svc] {
                // A Deployment's pod name: replica set hash and pod suffix.
                let mut pick = |n: usize| -> String {
                    (0..n)
                        .map(|_| b"bcdfghjklmnpqrstvwxz2456789"[rng.random_range(0..27)] as char)
                        .collect()
                };
                let pod = format!("{name}-{}-{}", pick(10), pick(5));
                let uuid = format!(
                    "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                    rng.random::<u32>(),
                    rng.random::<u16>(),
                    rng.random::<u16>() & 0xfff,
                    rng.random::<u16>(),
                    rng.random::<u64>() & 0xffff_ffff_ffff
                );
                let node = rng.random_range(0..NODES);
                let host = format!("node-{}", node + 1);
                // Alternate within a service, starting with push for even services.
                let otlp = (k + svc) % 2 == 1;
                let resource = Resource {
                    attributes: vec![
                        s("service.name", *name),
                        s("service.namespace", "shop"),
                        s("service.version", version),
                        s("service.instance.id", uuid),
                        s("deployment.environment.name", "production"),
                        s("host.name", host.clone()),
                        s("k8s.namespace.name", "shop"),
                        s("k8s.pod.name", pod.clone()),
                        s("telemetry.sdk.name", "opentelemetry"),
                        s("telemetry.sdk.language", lang),
                        s("telemetry.sdk.version", sdk),
                    ],
                    ..Default::default()
                };
                let scope_text = if scope_version.is_empty() {
                    format!("scope_name={scope}")
                } else {
                    format!("scope_name={scope} scope_version={scope_version}")
                };
                let meta_text = format!(
                    "host_name={host} {scope_text} service_version={version} telemetry_sdk_language={lang} telemetry_sdk_name=opentelemetry telemetry_sdk_version={sdk}"
                );
                let labels = ["stdout", "stderr"].map(|stream| {
                    format!(
                        r#"{{cluster="prod-eu1", env="production", namespace="shop", job="shop/{name}", instance="{pod}", service_name="{name}", stream="{stream}"}}"#
                    )
                });
                instances.push(Instance {
                    svc,
                    node,
                    otlp,
                    resource,
                    meta_text,
                    labels,
                    pending: Vec::new(),
                    since_ns: 0,
                });
            }
        }
        let base_s = start_ns / SEC - 3600;
        Gen {
            rng,
            instances,
            agents: (0..NODES).map(|_| Agent::default()).collect(),
            first,
            t_ns: start_ns,
            ns_per_line: 55.0 * 60.0 * 1e9 / total as f64,
            heap: BinaryHeap::new(),
            seq: 0,
            next_stats: start_ns,
            orders: 0,
            recorded: Vec::new(),
            checkout: Histogram::new(base_s),
            errors: Histogram::new(base_s),
            lines: 0,
            error_level: 0,
            line_bytes: 0,
            min_len: usize::MAX,
            max_len: 0,
            per_service: [0; 7],
        }
    }

    fn streams(&self) -> usize {
        let push = self.instances.iter().filter(|i| !i.otlp).count();
        self.instances.len() - push + 2 * push
    }

    // -- random pieces ------------------------------------------------------------------

    /// A log-normal value with the given median.
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        let u1: f64 = self.rng.random::<f64>().max(1e-12);
        let u2: f64 = self.rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        median * (sigma * z).exp()
    }

    /// A duration as Go prints it (`12ms`, `1.2s`, `850µs` as `850us`).
    fn go_duration(&mut self, median_ms: f64, sigma: f64) -> String {
        let ms = self.lognormal(median_ms, sigma);
        if ms < 1.0 {
            format!("{}us", (ms * 1000.0) as u64)
        } else if ms < 1000.0 {
            format!("{ms:.1}ms")
        } else {
            format!("{:.3}s", ms / 1000.0)
        }
    }

    fn hex(&mut self, digits: usize) -> String {
        let mut out = String::with_capacity(digits);
        while out.len() < digits {
            let _ = write!(out, "{:016x}", self.rng.random::<u64>());
        }
        out.truncate(digits);
        out
    }

    fn user(&mut self) -> String {
        format!("u-{:06}", self.rng.random_range(0..USERS))
    }

    fn product(&mut self) -> String {
        format!("P{:05}", self.rng.random_range(0..PRODUCTS))
    }

    fn pod_ip(&mut self) -> String {
        format!(
            "10.42.{}.{}",
            self.rng.random_range(0..8),
            self.rng.random_range(2..250)
        )
    }

    fn public_ip(&mut self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.rng.random_range(1..224),
            self.rng.random_range(0..256),
            self.rng.random_range(0..256),
            self.rng.random_range(1..255)
        )
    }

    fn instance_of(&mut self, svc: usize) -> usize {
        self.first[svc] + self.rng.random_range(0..INSTANCES[svc])
    }

    /// Queues a line logged at `ts` by `inst`; 0.3% of lines arrive late, stamped up to
    /// 30 s before their neighbours.
    #[allow(clippy::too_many_arguments)]
    fn queue(
        &mut self,
        inst: usize,
        due: i64,
        level: Level,
        trace: Option<([u8; 16], [u8; 8])>,
        order: Option<usize>,
        text: impl FnOnce(&mut Self, i64) -> String,
    ) {
        let ts = if self.rng.random_bool(0.003) {
            due - self.rng.random_range(100_000_000..30 * SEC)
        } else {
            due
        };
        let text = text(self, ts);
        self.seq += 1;
        let mut span = [0u8; 8];
        self.rng.fill(&mut span[..]);
        let trace = trace.map(|(t, _)| (t, span));
        self.heap.push(Pending {
            due,
            seq: self.seq,
            line: Line {
                inst,
                ts,
                level,
                text,
                trace,
                order,
            },
        });
    }

    fn new_trace(&mut self) -> Option<([u8; 16], [u8; 8])> {
        let mut t = [0u8; 16];
        self.rng.fill(&mut t[..]);
        Some((t, [0; 8]))
    }

    // -- the activities -----------------------------------------------------------------

    /// An nginx access line of the frontend.
    #[allow(clippy::too_many_arguments)]
    fn access(
        &mut self,
        t: i64,
        trace: Option<([u8; 16], [u8; 8])>,
        method: &'static str,
        path: String,
        status: u16,
        rt_ms: f64,
        ua: Option<&'static str>,
    ) {
        let inst = self.instance_of(FRONTEND);
        let level = if status >= 500 {
            Level::Error
        } else if status >= 400 {
            Level::Warn
        } else {
            Level::Info
        };
        let ip = self.public_ip();
        let ua = ua.unwrap_or(USER_AGENTS[self.rng.random_range(0..USER_AGENTS.len())]);
        let bytes = if status >= 400 {
            self.rng.random_range(150..600)
        } else {
            self.rng.random_range(800..60_000)
        };
        let req = self.hex(16);
        let due = t + (rt_ms * 1e6) as i64;
        self.queue(inst, due, level, trace, None, move |_, ts| {
            format!(
                r#"{ip} - - [{}] "{method} {path} HTTP/1.1" {status} {bytes} "-" "{ua}" rt={:.3} uct=0.000 urt={:.3} req_id={req}"#,
                nginx_time(ts),
                rt_ms / 1000.0,
                (rt_ms * 0.95) / 1000.0
            )
        });
    }

    /// product-catalog serving a product (logfmt).
    fn catalog_get(&mut self, t: i64, trace: Option<([u8; 16], [u8; 8])>) -> bool {
        let inst = self.instance_of(CATALOG);
        let product = self.product();
        let tid = hex::encode(trace.map(|t| t.0).unwrap_or_default());
        if self.rng.random_bool(0.015) {
            let d = self.go_duration(5000.0, 0.05);
            self.queue(inst, t, Level::Error, trace, None, move |_, ts| {
                format!(
                    r#"level=error ts={} caller=catalog/db.go:57 msg="query failed" product_id={product} err="pq: canceling statement due to statement timeout" duration={d} trace_id={tid}"#,
                    rfc3339_ms(ts)
                )
            });
            return false;
        }
        let cache = if self.rng.random_bool(0.8) {
            "hit"
        } else {
            "miss"
        };
        let d = self.go_duration(if cache == "hit" { 0.4 } else { 6.0 }, 0.6);
        let level = if cache == "hit" {
            Level::Debug
        } else {
            Level::Info
        };
        let lv = if cache == "hit" { "debug" } else { "info" };
        self.queue(inst, t, level, trace, None, move |_, ts| {
            format!(
                r#"level={lv} ts={} caller=catalog/server.go:88 msg="product served" product_id={product} cache={cache} duration={d} trace_id={tid}"#,
                rfc3339_ms(ts)
            )
        });
        true
    }

    /// The cart service (JSON, lowercase levels).
    fn cart_op(&mut self, t: i64, trace: Option<([u8; 16], [u8; 8])>, user: &str) -> bool {
        let inst = self.instance_of(CART);
        let user = user.to_string();
        if self.rng.random_bool(0.03) {
            let cmd = ["HGETALL", "HSET", "EXPIRE"][self.rng.random_range(0..3)];
            self.queue(inst, t, Level::Error, trace, None, move |_, ts| {
                format!(
                    r#"{{"level":"error","ts":"{}","logger":"Cart.Api.Store.RedisCartStore","msg":"redis command failed","cmd":"{cmd}","key":"cart:{user}","error":"No connection is active/available to service this operation"}}"#,
                    rfc3339_ms(ts)
                )
            });
            return false;
        }
        let product = self.product();
        let qty = self.rng.random_range(1..4);
        let ms = self.lognormal(3.0, 0.6);
        let (msg, logger) = match self.rng.random_range(0..3) {
            0 => ("item added to cart", "Cart.Api.CartController"),
            1 => ("cart loaded", "Cart.Api.CartController"),
            _ => ("cart quantity updated", "Cart.Api.CartController"),
        };
        let cart = self.hex(12);
        self.queue(inst, t, Level::Info, trace, None, move |_, ts| {
            format!(
                r#"{{"level":"info","ts":"{}","logger":"{logger}","msg":"{msg}","cart_id":"c-{cart}","user_id":"{user}","product_id":"{product}","qty":{qty},"elapsed_ms":{ms:.2}}}"#,
                rfc3339_ms(ts)
            )
        });
        true
    }

    /// A PgBouncer line for a client connection.
    fn dbproxy_conn(&mut self, t: i64) {
        let inst = self.instance_of(DBPROXY);
        let conn = self.hex(12);
        let ip = self.pod_ip();
        let port = self.rng.random_range(32768..61000);
        let r = self.rng.random_range(0..1000);
        if r < 30 {
            let what = [
                "pooler error: query_wait_timeout",
                "pooler error: client_login_timeout (server down)",
            ][r % 2];
            self.queue(inst, t, Level::Error, None, None, move |_, ts| {
                format!(
                    "{} [1] ERROR C-0x{conn}: shop/shop_rw@{ip}:{port} {what}",
                    pg_time(ts)
                )
            });
        } else if r < 500 {
            self.queue(inst, t, Level::Info, None, None, move |_, ts| {
                format!(
                    "{} [1] LOG C-0x{conn}: shop/shop_rw@{ip}:{port} login attempt: db=shop user=shop_rw tls=no",
                    pg_time(ts)
                )
            });
        } else {
            let age = self.rng.random_range(1..3600);
            self.queue(inst, t, Level::Info, None, None, move |_, ts| {
                format!(
                    "{} [1] LOG C-0x{conn}: shop/shop_rw@{ip}:{port} closing because: client close request (age={age}s)",
                    pg_time(ts)
                )
            });
        }
    }

    /// PgBouncer's periodic stats line.
    fn dbproxy_stats(&mut self, t: i64) {
        let inst = self.instance_of(DBPROXY);
        let x = self.rng.random_range(50..900);
        let q = x * self.rng.random_range(2..6);
        let (i, o) = (
            q * self.rng.random_range(80..200),
            q * self.rng.random_range(300..3000),
        );
        let (xu, qu, w) = (
            self.rng.random_range(400..9000),
            self.rng.random_range(100..3000),
            self.rng.random_range(0..400),
        );
        self.queue(inst, t, Level::Info, None, None, move |_, ts| {
            format!(
                "{} [1] LOG stats: {x} xacts/s, {q} queries/s, in {i} B/s, out {o} B/s, xact {xu} us, query {qu} us, wait {w} us",
                pg_time(ts)
            )
        });
    }

    /// A Go service's background line (logfmt).
    fn background(&mut self, t: i64) {
        match self.rng.random_range(0..4) {
            0 => {
                let inst = self.instance_of(CHECKOUT);
                self.queue(inst, t, Level::Debug, None, None, |g, ts| {
                    let d = g.go_duration(0.2, 0.5);
                    format!(
                        r#"level=debug ts={} caller=grpc/health.go:41 msg="health check" service=oteldemo.CheckoutService status=SERVING duration={d}"#,
                        rfc3339_ms(ts)
                    )
                });
            }
            1 => {
                let inst = self.instance_of(CATALOG);
                self.queue(inst, t, Level::Info, None, None, |g, ts| {
                    let d = g.go_duration(180.0, 0.4);
                    let n = g.rng.random_range(1990..2010);
                    format!(
                        r#"level=info ts={} caller=cache/refresh.go:33 msg="catalog cache refreshed" products={n} evicted={} duration={d}"#,
                        rfc3339_ms(ts),
                        g.rng.random_range(0..40)
                    )
                });
            }
            2 => {
                let ua = Some("kube-probe/1.31");
                let rt = self.lognormal(0.6, 0.3);
                self.access(t, None, "GET", "/healthz".into(), 200, rt, ua);
            }
            _ => {
                let inst = self.instance_of(PAYMENT);
                self.queue(inst, t, Level::Info, None, None, |g, ts| {
                    let (active, idle) = (g.rng.random_range(0..10), g.rng.random_range(0..10));
                    format!(
                        r#"{{"@timestamp":"{}","level":"INFO","logger_name":"com.zaxxer.hikari.pool.HikariPool","thread_name":"HikariPool-1 housekeeper","message":"HikariPool-1 - Pool stats (total=10, active={active}, idle={idle}, waiting=0)"}}"#,
                        rfc3339_ms(ts)
                    )
                });
            }
        }
    }

    /// A page view: the frontend's access line and the calls behind it.
    fn page_view(&mut self, t: i64) {
        let trace = self.new_trace();
        let user = self.user();
        let kind = self.rng.random_range(0..100);
        let mut ok = true;
        let mut t1 = t + self.rng.random_range(1_000_000..5_000_000);
        let (method, path) = match kind {
            0..15 => ("GET", "/".to_string()),
            15..60 => {
                ok &= self.catalog_get(t1, trace);
                let p = self.product();
                (
                    "GET",
                    format!("/api/products/{p}?currency=USD&session={}", self.hex(8)),
                )
            }
            60..85 => {
                ok &= self.cart_op(t1, trace, &user);
                for _ in 0..self.rng.random_range(0..3) {
                    t1 += self.rng.random_range(1_000_000..8_000_000);
                    ok &= self.catalog_get(t1, trace);
                }
                ("GET", "/api/cart".to_string())
            }
            _ => {
                ok &= self.cart_op(t1, trace, &user);
                ("POST", "/api/cart/items".to_string())
            }
        };
        let status = if !ok {
            if self.rng.random_bool(0.5) { 500 } else { 502 }
        } else if self.rng.random_bool(0.02) {
            404
        } else if self.rng.random_bool(0.005) {
            504
        } else if method == "POST" {
            201
        } else {
            200
        };
        let rt = self.lognormal(25.0, 0.7);
        self.access(t, trace, method, path, status, rt, None);
        if self.rng.random_bool(0.3) {
            self.dbproxy_conn(t1);
        }
    }

    /// A checkout: the order's 1–5 lines in one checkout instance, the payment service's,
    /// the email job's and the frontend's access line.
    fn checkout(&mut self, t: i64) {
        let trace = self.new_trace();
        let tid = hex::encode(trace.unwrap().0);
        let user = self.user();
        let seq = self.orders;
        self.orders += 1;
        let order = order_id(seq);
        let rec = if seq.is_multiple_of(RECORD_EVERY) {
            self.recorded.push(OrderRec {
                seq,
                remaining: 0,
                lines: Vec::new(),
            });
            Some(self.recorded.len() - 1)
        } else {
            None
        };
        let inst = self.instance_of(CHECKOUT);
        let items = self.rng.random_range(1..6);
        let req = self.hex(16);
        let mut n = 0u32;
        let mut at = t + self.rng.random_range(2_000_000..10_000_000);
        let mut step = |g: &mut Gen, median_ms: f64| {
            at += (g.lognormal(median_ms, 0.6) * 1e6) as i64;
            at
        };
        let r = self.rng.random_range(0..1000);
        let amount = self.rng.random_range(500..50_000) as f64 / 100.0;
        let mut status = 200;
        if r < 60 {
            // Refused before anything happens: one line.
            let (o, u) = (order.clone(), user.clone());
            let d = self.go_duration(1.5, 0.5);
            self.queue(inst, at, Level::Warn, trace, rec, move |_, ts| {
                format!(
                    r#"level=warn ts={} caller=checkout/validate.go:61 msg="order rejected" order_id={o} user_id={u} reason="address verification failed" duration={d}"#,
                    rfc3339_ms(ts)
                )
            });
            n += 1;
            status = 422;
        } else {
            let (o, u, rq) = (order.clone(), user.clone(), req.clone());
            let due = step(self, 3.0);
            self.queue(inst, due, Level::Info, trace, rec, move |_, ts| {
                format!(
                    r#"level=info ts={} caller=checkout/server.go:143 msg="placing order" order_id={o} user_id={u} items={items} currency=USD request_id={rq}"#,
                    rfc3339_ms(ts)
                )
            });
            n += 1;
            if self.rng.random_bool(0.5) {
                let o = order.clone();
                let d = self.go_duration(8.0, 0.5);
                let due = step(self, 10.0);
                self.queue(inst, due, Level::Debug, trace, rec, move |_, ts| {
                    format!(
                        r#"level=debug ts={} caller=checkout/inventory.go:88 msg="inventory reserved" order_id={o} items={items} warehouse=eu-west-{} duration={d}"#,
                        rfc3339_ms(ts),
                        items % 3 + 1
                    )
                });
                n += 1;
            }
            let pay_at = step(self, 200.0);
            let declined = r < 60 + 30;
            let failed = !declined && r < 60 + 30 + 20;
            let charge = format!("ch_{}", self.hex(24));
            // The payment service's side.
            let pinst = self.instance_of(PAYMENT);
            let thread = self.rng.random_range(1..48);
            if failed {
                let ch = charge.clone();
                self.queue(pinst, pay_at, Level::Error, trace, None, move |_, ts| {
                    format!(
                        r#"{{"@timestamp":"{}","level":"ERROR","logger_name":"c.s.p.ProviderClient","thread_name":"grpc-exec-{thread}","message":"Charge failed","charge_id":"{ch}","stack_trace":"java.net.SocketTimeoutException: Read timed out\n\tat sun.nio.ch.NioSocketImpl.timedRead"}}"#,
                        rfc3339_ms(ts)
                    )
                });
                let (o, e) = (
                    order.clone(),
                    "rpc error: code = Unavailable desc = payment provider timeout",
                );
                let d = self.go_duration(5000.0, 0.1);
                let due = step(self, 5000.0);
                self.queue(inst, due, Level::Error, trace, rec, move |_, ts| {
                    format!(
                        r#"level=error ts={} caller=checkout/server.go:201 msg="order failed" order_id={o} err="{e}" duration={d}"#,
                        rfc3339_ms(ts)
                    )
                });
                n += 1;
                status = 500;
            } else if declined {
                let (ch, tid2) = (charge.clone(), tid.clone());
                self.queue(pinst, pay_at, Level::Warn, trace, None, move |_, ts| {
                    format!(
                        r#"{{"@timestamp":"{}","level":"WARN","logger_name":"c.s.payment.ChargeService","thread_name":"grpc-exec-{thread}","message":"Charge declined","charge_id":"{ch}","decline_code":"insufficient_funds","trace_id":"{tid2}"}}"#,
                        rfc3339_ms(ts)
                    )
                });
                let o = order.clone();
                let due = step(self, 250.0);
                self.queue(inst, due, Level::Warn, trace, rec, move |_, ts| {
                    format!(
                        r#"level=warn ts={} caller=checkout/server.go:188 msg="payment declined" order_id={o} charge_id={charge} amount={amount:.2} reason="card declined: insufficient funds""#,
                        rfc3339_ms(ts)
                    )
                });
                n += 1;
                status = 402;
            } else {
                let (ch, tid2) = (charge.clone(), tid.clone());
                let cents = (amount * 100.0) as u64;
                self.queue(pinst, pay_at, Level::Info, trace, None, move |_, ts| {
                    format!(
                        r#"{{"@timestamp":"{}","level":"INFO","logger_name":"c.s.payment.ChargeService","thread_name":"grpc-exec-{thread}","message":"Charge captured","charge_id":"{ch}","amount_cents":{cents},"currency":"USD","trace_id":"{tid2}"}}"#,
                        rfc3339_ms(ts)
                    )
                });
                let o = order.clone();
                let d = self.go_duration(230.0, 0.5);
                let due = step(self, 250.0);
                self.queue(inst, due, Level::Info, trace, rec, move |_, ts| {
                    format!(
                        r#"level=info ts={} caller=checkout/payment.go:74 msg="payment authorized" order_id={o} charge_id={charge} amount={amount:.2} duration={d}"#,
                        rfc3339_ms(ts)
                    )
                });
                n += 1;
                let o = order.clone();
                let d = self.go_duration(420.0, 0.5);
                let due = step(self, 40.0);
                self.queue(inst, due, Level::Info, trace, rec, move |_, ts| {
                    format!(
                        r#"level=info ts={} caller=checkout/server.go:176 msg="order placed" order_id={o} total={amount:.2} currency=USD duration={d}"#,
                        rfc3339_ms(ts)
                    )
                });
                n += 1;
                if self.rng.random_bool(0.7) {
                    let (o, u) = (order.clone(), user.clone());
                    let due = step(self, 30.0);
                    self.queue(inst, due, Level::Info, trace, rec, move |_, ts| {
                        format!(
                            r#"level=info ts={} caller=checkout/email.go:29 msg="confirmation email queued" order_id={o} email={u}@example.com"#,
                            rfc3339_ms(ts)
                        )
                    });
                    n += 1;
                    // The email job, seconds later.
                    let einst = self.instance_of(EMAIL);
                    let mail_at = step(self, 1500.0);
                    let (u, rq) = (user.clone(), self.hex(8));
                    if self.rng.random_bool(0.04) {
                        self.queue(einst, mail_at, Level::Error, None, None, move |_, ts| {
                            format!(
                                "E, [{} #1] ERROR -- : [{rq}] Net::ReadTimeout: Net::ReadTimeout with #<TCPSocket:(closed)> (/usr/lib/ruby/3.3.0/net/protocol.rb:229:in 'rbuf_fill')",
                                ruby_time(ts)
                            )
                        });
                    } else {
                        let ms = self.lognormal(40.0, 0.6);
                        let mid = self.hex(20);
                        self.queue(einst, mail_at, Level::Info, None, None, move |_, ts| {
                            format!(
                                "I, [{} #1]  INFO -- : [{rq}] Sent mail to {u}@example.com ({ms:.1}ms) message_id=<{mid}@shop.example.com>",
                                ruby_time(ts)
                            )
                        });
                    }
                }
            }
            // The frontend's calls to checkout hit the database through the proxy.
            self.dbproxy_conn(pay_at);
        }
        if let Some(k) = rec {
            self.recorded[k].remaining = n;
        }
        let rt = (at - t) as f64 / 1e6 + self.lognormal(5.0, 0.5);
        self.access(t, trace, "POST", "/api/checkout".into(), status, rt, None);
    }

    // -- batching -----------------------------------------------------------------------

    /// Puts a line whose time has come into its instance's batch or its node agent's.
    fn take(&mut self, line: Line, out: &mut Chunk) {
        let (svc, otlp, node) = {
            let inst = &self.instances[line.inst];
            (inst.svc, inst.otlp, inst.node)
        };
        self.lines += 1;
        self.per_service[svc] += 1;
        self.line_bytes += line.text.len() as u64;
        self.min_len = self.min_len.min(line.text.len());
        self.max_len = self.max_len.max(line.text.len());
        if line.level == Level::Error {
            self.error_level += 1;
        }
        if svc == CHECKOUT {
            self.checkout.add(line.ts);
        }
        if line.text.contains("error") {
            self.errors.add(line.ts);
        }
        if let Some(k) = line.order {
            let rec = &mut self.recorded[k];
            rec.lines.push((line.ts, line.text.clone()));
            rec.remaining -= 1;
        }
        let (number, text, _) = line.level.severity();
        if otlp {
            let i = line.inst;
            let (trace_id, span_id) = match line.trace {
                Some((t, s)) => (t.to_vec(), s.to_vec()),
                None => (Vec::new(), Vec::new()),
            };
            let observed = self.t_ns + self.rng.random_range(50_000..2_000_000);
            let inst = &mut self.instances[i];
            if inst.pending.is_empty() {
                inst.since_ns = self.t_ns;
            }
            inst.pending.push(LogRecord {
                time_unix_nano: line.ts as u64,
                observed_time_unix_nano: observed as u64,
                severity_number: number,
                severity_text: text.into(),
                body: Some(AnyValue {
                    value: Some(Value::StringValue(line.text)),
                }),
                flags: u32::from(line.trace.is_some()),
                trace_id,
                span_id,
                ..Default::default()
            });
            if inst.pending.len() >= BATCH_RECORDS {
                self.emit_otlp(i, out);
            }
        } else {
            let stderr = usize::from(line.level >= Level::Warn);
            let with_trace = matches!(svc, CHECKOUT | CART | PAYMENT);
            let structured_metadata = match line.trace {
                Some((t, _)) if with_trace => vec![LabelPair::new("trace_id", hex::encode(t))],
                _ => Vec::new(),
            };
            let entry = Entry {
                timestamp: Some(Timestamp::from_nanos(line.ts)),
                line: line.text,
                structured_metadata,
            };
            let agent = &mut self.agents[node];
            if agent.count == 0 {
                agent.since_ns = self.t_ns;
            }
            agent.count += 1;
            match agent
                .streams
                .iter_mut()
                .find(|(i, e, _)| *i == line.inst && *e == stderr)
            {
                Some((_, _, entries)) => entries.push(entry),
                None => agent.streams.push((line.inst, stderr, vec![entry])),
            }
        }
    }

    fn emit_otlp(&mut self, i: usize, out: &mut Chunk) {
        let inst = &mut self.instances[i];
        let records = std::mem::take(&mut inst.pending);
        let phase = &mut out.otlp;
        for r in &records {
            let Some(Value::StringValue(line)) = r.body.as_ref().and_then(|b| b.value.as_ref())
            else {
                unreachable!()
            };
            phase.text.extend_from_slice(line.as_bytes());
            phase.text.push(b'\n');
            let (_, text, level) = match r.severity_number {
                5 => Level::Debug,
                9 => Level::Info,
                13 => Level::Warn,
                _ => Level::Error,
            }
            .severity();
            let _ = write!(
                phase.meta_text,
                "{} {line}\tdetected_level={level} {} severity_number={} severity_text={text}",
                r.time_unix_nano, inst.meta_text, r.severity_number
            );
            if !r.trace_id.is_empty() {
                let _ = write!(
                    phase.meta_text,
                    " span_id={} trace_id={}",
                    hex::encode(&r.span_id),
                    hex::encode(&r.trace_id)
                );
            }
            phase.meta_text.push(b'\n');
        }
        let (scope, version) = (SDK[inst.svc].3, SDK[inst.svc].4);
        let n = records.len();
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(inst.resource.clone()),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: scope.into(),
                        version: version.into(),
                        ..Default::default()
                    }),
                    log_records: records,
                    schema_url: String::new(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
        };
        let bytes = req.encode_to_vec();
        phase.lines += n as u64;
        phase.bytes += bytes.len() as u64;
        phase.payloads.push((Bytes::from(bytes), n as u32));
    }

    fn emit_push(&mut self, node: usize, out: &mut Chunk) {
        let agent = &mut self.agents[node];
        let streams = std::mem::take(&mut agent.streams);
        let n = agent.count;
        agent.count = 0;
        let phase = &mut out.push;
        let req = PushRequest {
            streams: streams
                .into_iter()
                .map(|(i, stderr, entries)| {
                    for e in &entries {
                        phase.text.extend_from_slice(e.line.as_bytes());
                        phase.text.push(b'\n');
                        let _ = write!(phase.meta_text, "{} {}", e.ts_ns(), e.line);
                        for p in &e.structured_metadata {
                            let _ = write!(phase.meta_text, "\t{}={}", p.name, p.value);
                        }
                        phase.meta_text.push(b'\n');
                    }
                    Stream {
                        labels: self.instances[i].labels[stderr].clone(),
                        entries,
                        hash: 0,
                    }
                })
                .collect(),
        };
        let body = pharos_logs::push::handler::encode(&req);
        phase.lines += n as u64;
        phase.bytes += body.len() as u64;
        phase.payloads.push((Bytes::from(body), n as u32));
    }

    /// Generates lines until at least `target` were batched, then lets every batch go
    /// (lines still in the future wait for the next chunk).
    fn chunk(&mut self, target: u64) -> Chunk {
        let mut out = Chunk::default();
        let goal = self.lines + target;
        while self.lines < goal {
            for k in 0..self.instances.len() {
                if !self.instances[k].pending.is_empty()
                    && self.t_ns - self.instances[k].since_ns >= BATCH_DELAY_NS
                {
                    self.emit_otlp(k, &mut out);
                }
            }
            for k in 0..NODES {
                if self.agents[k].count > 0 && self.t_ns - self.agents[k].since_ns >= BATCH_DELAY_NS
                {
                    self.emit_push(k, &mut out);
                }
            }
            let before = self.heap.len();
            let t = self.t_ns;
            if t >= self.next_stats {
                // Each of the two PgBouncers prints its stats about every 15 s.
                self.dbproxy_stats(t);
                self.next_stats = t + 7 * SEC;
            }
            match self.rng.random_range(0..100) {
                0..63 => self.page_view(t),
                63..75 => self.checkout(t),
                75..85 => self.dbproxy_conn(t),
                _ => self.background(t),
            }
            let queued = (self.heap.len() - before) as f64;
            let u: f64 = self.rng.random::<f64>().max(1e-12);
            self.t_ns += (self.ns_per_line * queued * -u.ln()) as i64;
            while self.heap.peek().is_some_and(|p| p.due <= self.t_ns) {
                let p = self.heap.pop().unwrap();
                self.take(p.line, &mut out);
            }
        }
        for k in 0..self.instances.len() {
            if !self.instances[k].pending.is_empty() {
                self.emit_otlp(k, &mut out);
            }
        }
        for k in 0..NODES {
            if self.agents[k].count > 0 {
                self.emit_push(k, &mut out);
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Sending pre-encoded requests
// ---------------------------------------------------------------------------------------

type RawCodec = common::RawCodec<ExportLogsServiceResponse>;

type Client = tonic::client::Grpc<tonic::transport::Channel>;

#[derive(Default)]
struct SendStats {
    acked: AtomicU64,
    /// Lines the server refused (OTLP partial_success; push: lines of a request answered
    /// 400, which Loki answers when it refused some of them).
    rejected: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    first_error: parking_lot::Mutex<Option<String>>,
}

impl SendStats {
    fn error(&self, e: impl FnOnce() -> String) {
        self.first_error.lock().get_or_insert_with(e);
    }
}

/// Sends every OTLP payload of `phase` from `clients` concurrent clients; returns wall
/// seconds.
async fn send_otlp(clients: &[Client], phase: Arc<Phase>, stats: Arc<SendStats>) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in clients {
        let (mut c, phase, stats, next) = (c.clone(), phase.clone(), stats.clone(), next.clone());
        tasks.spawn(async move {
            let path = http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            );
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some((bytes, lines)) = phase.payloads.get(k) else {
                    break;
                };
                let lines = *lines as u64;
                let mut attempt = 0;
                loop {
                    c.ready().await.unwrap();
                    match c
                        .unary(
                            tonic::Request::new(bytes.clone()),
                            path.clone(),
                            RawCodec::new(),
                        )
                        .await
                    {
                        Ok(resp) => {
                            let rejected = resp
                                .into_inner()
                                .partial_success
                                .map(|p| {
                                    if p.rejected_log_records > 0 || !p.error_message.is_empty() {
                                        stats.error(|| {
                                            format!("OTLP partial_success: {}", p.error_message)
                                        });
                                    }
                                    p.rejected_log_records as u64
                                })
                                .unwrap_or(0);
                            stats.rejected.fetch_add(rejected, Ordering::Relaxed);
                            stats
                                .acked
                                .fetch_add(lines - rejected.min(lines), Ordering::Relaxed);
                            break;
                        }
                        Err(status) => {
                            stats.error(|| {
                                format!("OTLP {:?}: {}", status.code(), status.message())
                            });
                            let retryable = matches!(
                                status.code(),
                                tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                            );
                            if retryable && attempt < 5 {
                                attempt += 1;
                                stats.retries.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                                continue;
                            }
                            stats.failed.fetch_add(lines, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    started.elapsed().as_secs_f64()
}

/// Sends every push payload of `phase` from `clients` concurrent tasks sharing one HTTP
/// client (one connection each); returns wall seconds.
async fn send_push(
    http: &reqwest::Client,
    url: &str,
    clients: usize,
    phase: Arc<Phase>,
    stats: Arc<SendStats>,
) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, url) = (http.clone(), url.to_string());
        let (phase, stats, next) = (phase.clone(), stats.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some((bytes, lines)) = phase.payloads.get(k) else {
                    break;
                };
                let lines = *lines as u64;
                let mut attempt = 0;
                loop {
                    let resp = http
                        .post(&url)
                        .header("Content-Type", "application/x-protobuf")
                        .body(bytes.clone())
                        .send()
                        .await;
                    let (status, body) = match resp {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            (status, r.text().await.unwrap_or_default())
                        }
                        Err(e) => (0, e.to_string()),
                    };
                    if status == 204 {
                        stats.acked.fetch_add(lines, Ordering::Relaxed);
                        break;
                    }
                    stats.error(|| format!("push HTTP {status}: {}", body.trim()));
                    if matches!(status, 0 | 429 | 503) && attempt < 5 {
                        attempt += 1;
                        stats.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                        continue;
                    }
                    if status == 400 {
                        stats.rejected.fetch_add(lines, Ordering::Relaxed);
                    } else {
                        stats.failed.fetch_add(lines, Ordering::Relaxed);
                    }
                    break;
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    started.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------

/// Sums `lines_stored_bytes`, `metadata_stored_bytes` and `bloom_bytes` over the blocks'
/// `meta.json` files under `dir`.
fn block_split(dir: &Path) -> (u64, u64, u64) {
    let mut out = (0, 0, 0);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read(e.path().join("meta.json")) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        out.0 += n("lines_stored_bytes");
        out.1 += n("metadata_stored_bytes");
        out.2 += n("bloom_bytes");
    }
    out
}

/// Per protocol: lines, server CPU and wall seconds of the sends, decode-only CPU ns.
#[derive(Clone, Default)]
struct Proto {
    lines: u64,
    acked: u64,
    bytes: u64,
    requests: u64,
    cpu: f64,
    wall: f64,
    decode_ns: u64,
}

impl Proto {
    fn ingest_rate(&self) -> f64 {
        self.acked as f64 / self.cpu
    }
    fn decode_rate(&self) -> f64 {
        self.lines as f64 / (self.decode_ns as f64 / 1e9)
    }
}

/// Needle query results.
#[derive(Default)]
struct Needles {
    /// Latencies in ms, sorted.
    ms: Vec<f64>,
    present: usize,
    absent: usize,
    /// Answers not holding exactly the expected lines, and the first one's description.
    wrong: usize,
    first_wrong: Option<String>,
    chunks_ref: Option<u64>,
    chunks_downloaded: Option<u64>,
}

struct Metric {
    name: String,
    runs: usize,
    median_ms: f64,
    got: f64,
    expected: u64,
    series: usize,
}

/// Everything measured at one point.
struct Point {
    lines_sent: u64,
    push: Proto,
    otlp: Proto,
    acked: u64,
    rejected: u64,
    failed: u64,
    retries: u64,
    ingest_rate: f64,
    raw_line_bytes: u64,
    zstd_bytes: u64,
    zstd_meta_bytes: u64,
    flush_s: f64,
    flush_answer: String,
    blocks: (u64, u64),
    wal: (u64, u64),
    /// From the blocks' `meta.json`: bytes of lines and timestamps, of structured
    /// metadata, of filters.
    split: (u64, u64, u64),
    rss_now: f64,
    rss_peak: f64,
    needles: Needles,
    metrics: Vec<Metric>,
}

/// The lines of a Loki streams answer, `(ts, line)`, sorted.
fn answer_lines(v: &serde_json::Value) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = v["data"]["result"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
                .map(|e| {
                    (
                        e[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(0),
                        e[1].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

async fn needles(query: &str, sim: &Gen, n: usize, seed: u64, start_ns: i64) -> Needles {
    let http = http_client();
    let mut rng = SmallRng::seed_from_u64(seed);
    let done: Vec<&OrderRec> = sim.recorded.iter().filter(|r| r.remaining == 0).collect();
    let mut picked: Vec<(String, Vec<(i64, String)>)> = Vec::new();
    for k in rand::seq::index::sample(&mut rng, done.len(), n.min(done.len())) {
        let mut lines = done[k].lines.clone();
        lines.sort();
        picked.push((order_id(done[k].seq), lines));
    }
    let mut out = Needles {
        present: picked.len(),
        ..Default::default()
    };
    for k in 0..4 {
        picked.push((order_id(ABSENT_SEQ + k * 1_000_003), Vec::new()));
        out.absent += 1;
    }
    let url = |id: &str| {
        reqwest::Url::parse_with_params(
            &format!("{query}/loki/api/v1/query_range"),
            &[
                (
                    "query",
                    format!(r#"{{service_name="checkout"}} |= "{id}""#).as_str(),
                ),
                ("start", &(start_ns - 60 * SEC).to_string()),
                ("end", &(now_ns() + 60 * SEC).to_string()),
                ("limit", "100"),
            ],
        )
        .unwrap()
    };
    for (id, _) in picked.iter().take(2) {
        get(&http, url(id).as_str()).await;
    }
    let (mut refs, mut downloaded) = (Some(0u64), Some(0u64));
    for (id, expected) in &picked {
        let (ms, status, body) = get(&http, url(id).as_str()).await;
        out.ms.push(ms);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let got = answer_lines(&v);
        if status != 200 || &got != expected {
            out.wrong += 1;
            out.first_wrong.get_or_insert_with(|| {
                format!(
                    "{id}: HTTP {status}, {} lines, expected {}{}",
                    got.len(),
                    expected.len(),
                    if status != 200 {
                        format!(": {}", body.trim())
                    } else {
                        String::new()
                    }
                )
            });
        }
        let store = &v["data"]["stats"]["querier"]["store"];
        refs = refs
            .zip(store["totalChunksRef"].as_u64())
            .map(|(a, b)| a + b);
        downloaded = downloaded
            .zip(store["totalChunksDownloaded"].as_u64())
            .map(|(a, b)| a + b);
    }
    out.ms.sort_by(f64::total_cmp);
    out.chunks_ref = refs;
    out.chunks_downloaded = downloaded;
    out
}

/// The `count_over_time` queries over the hour from `hour_start_s`: median latency of
/// `runs` after a warm-up, and each answer's total against the bench's count.
async fn metric_queries(query: &str, sim: &Gen, runs: usize, hour_start_s: i64) -> Vec<Metric> {
    let http = http_client();
    let end_s = hour_start_s + 3600;
    let queries: [(&str, i64, &Histogram); 2] = [
        (
            r#"sum by (detected_level) (count_over_time({service_name="checkout"}[1m]))"#,
            60,
            &sim.checkout,
        ),
        (
            r#"sum(count_over_time({service_name=~".+"} |= "error" [5m]))"#,
            300,
            &sim.errors,
        ),
    ];
    let mut out = Vec::new();
    for (q, step, hist) in queries {
        let expected = hist.window(hour_start_s - step, end_s);
        let url = reqwest::Url::parse_with_params(
            &format!("{query}/loki/api/v1/query_range"),
            &[
                ("query", q),
                ("start", &(hour_start_s * SEC).to_string()),
                ("end", &(end_s * SEC).to_string()),
                ("step", &step.to_string()),
            ],
        )
        .unwrap();
        let (mut times, mut got, mut series) = (Vec::new(), 0.0, 0);
        let mut runs = runs;
        let mut run = 0;
        while run <= runs {
            let (ms, status, body) = get(&http, url.as_str()).await;
            if status != 200 {
                eprintln!("  {q}: HTTP {status}: {}", body.trim());
            }
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
            series = result.len();
            got = result
                .iter()
                .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
                .filter_map(|p| p[1].as_str().and_then(|x| x.parse::<f64>().ok()))
                .sum();
            if run == 0 {
                if ms > 10_000.0 {
                    runs = runs.min(1);
                } else if ms > 2_000.0 {
                    runs = runs.min(2);
                }
            } else {
                times.push(ms);
            }
            run += 1;
        }
        out.push(Metric {
            name: q.to_string(),
            runs: times.len(),
            median_ms: median(times),
            got,
            expected,
            series,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

struct Opts {
    lines: u64,
    clients: usize,
    small_only: bool,
    chunk: u64,
    fsync: String,
    needles: usize,
    runs: usize,
    seed: u64,
    /// Send only this protocol's lines (`push` or `otlp`), for profiling one path; the
    /// answers are still checked against every line generated, so they come out wrong.
    only: Option<String>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .filter(|v| !v.starts_with("--"))
            .cloned()
    };
    let num = |name: &str, default: u64| {
        arg(name)
            .and_then(|v| v.replace(['_', ','], "").parse().ok())
            .unwrap_or(default)
    };
    let lines = num("--lines", 1_000_000).max(1);
    let o = Opts {
        lines,
        clients: num("--clients", 8).max(1) as usize,
        small_only: args.iter().any(|a| a == "--small-only"),
        chunk: num("--chunk", 500_000).min(lines).max(1),
        fsync: arg("--fsync").unwrap_or_else(|| "always".into()),
        needles: num("--needles", 20) as usize,
        runs: num("--runs", 5).max(1) as usize,
        seed: num("--seed", 1),
        only: arg("--only"),
    };
    let run_started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let targets: Vec<u64> = if o.small_only {
        vec![o.lines]
    } else {
        vec![o.lines, o.lines * 10]
    };
    let bench_start = now_ns();
    let start_ns = bench_start - 3600 * SEC;
    // The hour the data covers, aligned to the 5-minute step.
    let hour_start_s = (start_ns / SEC).div_euclid(300) * 300;
    let mut sim = Gen::new(o.seed, o.lines * 10, start_ns);

    let server = start_pharos(&o.fsync);
    let pid = server.process.pid();
    let clients: Vec<Client> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..o.clients {
            let ch = tonic::transport::Channel::from_shared(server.otlp_grpc.clone())
                .unwrap()
                .connect()
                .await
                .unwrap();
            v.push(tonic::client::Grpc::new(ch));
        }
        v
    });
    let push_http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .pool_max_idle_per_host(o.clients)
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let push_url = format!("{}/loki/api/v1/push", server.otlp_http);
    let stats = Arc::new(SendStats::default());
    let mut zstd = zstd::stream::write::Encoder::new(Counter::default(), 3).unwrap();
    let mut zstd_meta = zstd::stream::write::Encoder::new(Counter::default(), 3).unwrap();
    let (mut push, mut otlp) = (Proto::default(), Proto::default());
    let mut query_cpu = 0f64;
    let cpu_base = cpu_seconds(pid);
    let mut points: Vec<Point> = Vec::new();
    eprintln!(
        "logs bench: points at {} lines, {} clients per protocol, chunks of {} lines, fsync {}, {} streams, server pid {pid}",
        targets
            .iter()
            .map(|t| fmt_int(*t))
            .collect::<Vec<_>>()
            .join(" and "),
        o.clients,
        fmt_int(o.chunk),
        o.fsync,
        sim.streams()
    );
    for &target in &targets {
        while sim.lines < target {
            let t = Instant::now();
            let chunk = sim.chunk(o.chunk.min(target - sim.lines));
            let gen_s = t.elapsed().as_secs_f64();
            for phase in [&chunk.push, &chunk.otlp] {
                zstd.write_all(&phase.text).unwrap();
                zstd_meta.write_all(&phase.meta_text).unwrap();
            }
            let Chunk {
                push: mut push_phase,
                otlp: mut otlp_phase,
            } = chunk;
            for p in [&mut push_phase, &mut otlp_phase] {
                p.text = Vec::new();
                p.meta_text = Vec::new();
            }
            // Decode-only: the same bytes, one thread, its own CPU time.
            let mut snappy = snap::raw::Decoder::new();
            let push_decode = best_of_two(&push_phase.payloads, |b| {
                let plain = snappy.decompress_vec(b).unwrap();
                std::hint::black_box(PushRequest::decode(plain.as_slice()).unwrap());
            });
            let otlp_decode = best_of_two(&otlp_phase.payloads, |b| {
                std::hint::black_box(ExportLogsServiceRequest::decode(b).unwrap());
            });
            let mut report_phase = Vec::new();
            for (proto, phase, decode_ns, name) in [
                (&mut push, push_phase, push_decode, "push"),
                (&mut otlp, otlp_phase, otlp_decode, "OTLP"),
            ] {
                if o.only
                    .as_ref()
                    .is_some_and(|p| !p.eq_ignore_ascii_case(name))
                {
                    continue;
                }
                let (n, nbytes, nreq) = (phase.lines, phase.bytes, phase.payloads.len() as u64);
                let phase = Arc::new(phase);
                let acked0 = stats.acked.load(Ordering::Relaxed);
                let cpu0 = cpu_seconds(pid);
                let wall = if name == "push" {
                    rt.block_on(send_push(
                        &push_http,
                        &push_url,
                        o.clients,
                        phase,
                        stats.clone(),
                    ))
                } else {
                    rt.block_on(send_otlp(&clients, phase, stats.clone()))
                };
                let cpu = cpu_seconds(pid) - cpu0;
                let acked = stats.acked.load(Ordering::Relaxed) - acked0;
                proto.lines += n;
                proto.acked += acked;
                proto.bytes += nbytes;
                proto.requests += nreq;
                proto.cpu += cpu;
                proto.wall += wall;
                proto.decode_ns += decode_ns;
                report_phase.push(format!(
                    "{name} {} lines in {} requests ({:.0} B/line): decode-only {:.0}/CPU-s, sent in {wall:.1} s, server {:.0}/CPU-s",
                    fmt_int(n),
                    fmt_int(nreq),
                    nbytes as f64 / n.max(1) as f64,
                    n as f64 / (decode_ns as f64 / 1e9),
                    acked as f64 / cpu
                ));
            }
            eprintln!(
                "  sent {} lines (generated in {gen_s:.1} s): {}; server RSS {:.0} MiB",
                fmt_int(sim.lines),
                report_phase.join("; "),
                rss_mib(pid)
            );
        }
        let (http, query) = (http_client(), server.query.clone());
        let t = Instant::now();
        let flush_answer = rt.block_on(async {
            let resp = http
                .post(format!("{query}/internal/force_flush"))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            format!("{status}: {}", lines.join("; "))
        });
        let flush_s = t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(3));
        let ingest_cpu = cpu_seconds(pid) - cpu_base - query_cpu;
        zstd.flush().unwrap();
        zstd_meta.flush().unwrap();
        let blocks = du(&server.process.data.join("blocks").join("logs"));
        let wal = du(&server.process.data.join("wal").join("logs"));
        let split = block_split(&server.process.data.join("blocks").join("logs"));
        eprintln!(
            "  force_flush took {flush_s:.2} s ({flush_answer}); blocks/logs {} B in {} files, wal/logs {} B in {} files",
            fmt_int(blocks.0),
            blocks.1,
            fmt_int(wal.0),
            wal.1
        );
        let acked = stats.acked.load(Ordering::Relaxed);
        let q0 = cpu_seconds(pid);
        let (needles, metrics) = rt.block_on(async {
            let n = needles(&query, &sim, o.needles, o.seed ^ target, start_ns).await;
            let m = metric_queries(&query, &sim, o.runs, hour_start_s).await;
            (n, m)
        });
        query_cpu += cpu_seconds(pid) - q0;
        if let Some(w) = &needles.first_wrong {
            eprintln!("  needle answers wrong: {} (first: {w})", needles.wrong);
        }
        points.push(Point {
            lines_sent: sim.lines,
            push: push.clone(),
            otlp: otlp.clone(),
            acked,
            rejected: stats.rejected.load(Ordering::Relaxed),
            failed: stats.failed.load(Ordering::Relaxed),
            retries: stats.retries.load(Ordering::Relaxed),
            ingest_rate: acked as f64 / ingest_cpu,
            raw_line_bytes: sim.line_bytes,
            zstd_bytes: zstd.get_ref().0,
            zstd_meta_bytes: zstd_meta.get_ref().0,
            flush_s,
            flush_answer,
            blocks,
            wal,
            split,
            rss_now: rss_mib(pid),
            rss_peak: peak_rss_mib(pid),
            needles,
            metrics,
        });
        eprintln!(
            "  point at {} lines measured ({:.0} s into the run)",
            fmt_int(sim.lines),
            run_started.elapsed().as_secs_f64()
        );
    }
    let first_error = stats.first_error.lock().clone();
    if let Some(e) = &first_error {
        eprintln!("first refusal or error from the server: {e}");
    }
    report(
        &o,
        &points,
        &sim,
        hour_start_s,
        first_error,
        run_started.elapsed().as_secs_f64(),
    );
}

fn report(
    o: &Opts,
    points: &[Point],
    sim: &Gen,
    hour_start_s: i64,
    first_error: Option<String>,
    elapsed: f64,
) {
    let small = &points[0];
    let big = points.get(1);
    let last = points.last().unwrap();
    let cmd = {
        let mut c = "cargo bench -p pharos --bench logs".to_string();
        let mut extra = Vec::new();
        if o.lines != 1_000_000 {
            extra.push(format!("--lines {}", o.lines));
        }
        if o.clients != 8 {
            extra.push(format!("--clients {}", o.clients));
        }
        if o.small_only {
            extra.push("--small-only".into());
        }
        if o.chunk != 500_000.min(o.lines) {
            extra.push(format!("--chunk {}", o.chunk));
        }
        if o.fsync != "always" {
            extra.push(format!("--fsync {}", o.fsync));
        }
        if o.needles != 20 {
            extra.push(format!("--needles {}", o.needles));
        }
        if o.runs != 5 {
            extra.push(format!("--runs {}", o.runs));
        }
        if o.seed != 1 {
            extra.push(format!("--seed {}", o.seed));
        }
        if !extra.is_empty() {
            c.push_str(" -- ");
            c.push_str(&extra.join(" "));
        }
        c
    };
    println!();
    println!(
        "Command: `{cmd}` ({} clients per protocol, WAL fsync {}, chunks of {} lines; run took {:.0} s)",
        o.clients,
        o.fsync,
        fmt_int(o.chunk),
        elapsed
    );
    let share: Vec<String> = SERVICES
        .iter()
        .zip(sim.per_service)
        .map(|(name, n)| format!("{name} {:.0}%", n as f64 * 100.0 / sim.lines as f64))
        .collect();
    println!(
        "Data: {} lines in {} streams, {:.0} B/line of text ({}–{} B), {:.2}% at error level, {} checkout orders; by service: {}; push {} lines in {} requests, OTLP {} lines in {} requests",
        fmt_int(sim.lines),
        sim.streams(),
        sim.line_bytes as f64 / sim.lines as f64,
        sim.min_len,
        sim.max_len,
        sim.error_level as f64 * 100.0 / sim.lines as f64,
        fmt_int(sim.orders),
        share.join(", "),
        fmt_int(last.push.lines),
        fmt_int(last.push.requests),
        fmt_int(last.otlp.lines),
        fmt_int(last.otlp.requests),
    );
    println!();
    let head_small = label(o.lines);
    let head_big = label(o.lines * 10);
    println!("| figure | {head_small} lines | {head_big} lines | target | result |");
    println!("| --- | ---: | ---: | --- | --- |");
    let row = |name: &str, f: &dyn Fn(&Point) -> String, target: &str, result: String| {
        println!(
            "| {name} | {} | {} | {target} | {result} |",
            f(small),
            big.map(f).unwrap_or_else(|| "–".into())
        );
    };
    let pass = |ok: bool| {
        if ok {
            "pass".to_string()
        } else {
            "FAIL".to_string()
        }
    };
    let both = |f: &dyn Fn(&Point) -> bool| {
        let mut r: Vec<String> = vec![pass(f(small))];
        if let Some(b) = big {
            r.push(pass(f(b)));
        }
        r.join(" / ")
    };
    let info = String::new;
    row(
        "lines sent / accepted (push + OTLP)",
        &|p| {
            format!(
                "{} / {} ({} + {})",
                fmt_int(p.lines_sent),
                fmt_int(p.acked),
                fmt_int(p.push.acked),
                fmt_int(p.otlp.acked)
            )
        },
        "",
        info(),
    );
    row(
        "lines refused / failed after retries / retried requests",
        &|p| {
            format!(
                "{} / {} / {}",
                fmt_int(p.rejected),
                fmt_int(p.failed),
                fmt_int(p.retries)
            )
        },
        "0",
        both(&|p| p.rejected + p.failed == 0),
    );
    for (name, pick) in [
        ("Loki push", (|p: &Point| &p.push) as fn(&Point) -> &Proto),
        ("OTLP/gRPC", |p: &Point| &p.otlp),
    ] {
        row(
            &format!("{name}: request bytes/line (as sent)"),
            &|p| format!("{:.0}", pick(p).bytes as f64 / pick(p).lines.max(1) as f64),
            "",
            info(),
        );
        row(
            &format!("{name}: lines/s acked (wall clock of the sends)"),
            &|p| fmt_int((pick(p).acked as f64 / pick(p).wall) as u64),
            "",
            info(),
        );
        row(
            &format!("{name}: server lines per CPU-second (its sends)"),
            &|p| fmt_int(pick(p).ingest_rate() as u64),
            "",
            info(),
        );
        row(
            &format!(
                "{name}: decode-only lines per CPU-second ({}, 1 thread, best of 2 passes)",
                if name == "Loki push" {
                    "snappy + `PushRequest::decode`"
                } else {
                    "`ExportLogsServiceRequest::decode`"
                }
            ),
            &|p| fmt_int(pick(p).decode_rate() as u64),
            "",
            info(),
        );
        row(
            &format!("**{name}: ingest / decode-only**"),
            &|p| format!("{:.3}", pick(p).ingest_rate() / pick(p).decode_rate()),
            "≥ 0.5",
            both(&|p| pick(p).ingest_rate() / pick(p).decode_rate() >= 0.5),
        );
    }
    let decode_all =
        |p: &Point| p.lines_sent as f64 / ((p.push.decode_ns + p.otlp.decode_ns) as f64 / 1e9);
    row(
        "both: server lines per CPU-second incl. background and flush / decode-only of everything",
        &|p| {
            format!(
                "{} / {} = {:.3}",
                fmt_int(p.ingest_rate as u64),
                fmt_int(decode_all(p) as u64),
                p.ingest_rate / decode_all(p)
            )
        },
        "",
        info(),
    );
    row(
        "server RSS now / peak, MiB",
        &|p| format!("{:.0} / {:.0}", p.rss_now, p.rss_peak),
        "",
        info(),
    );
    row(
        "force_flush time, s",
        &|p| format!("{:.2}", p.flush_s),
        "",
        info(),
    );
    row(
        "raw line text, bytes/line",
        &|p| format!("{:.1}", p.raw_line_bytes as f64 / p.lines_sent as f64),
        "",
        info(),
    );
    let zstd_line = |p: &Point| p.zstd_bytes as f64 / p.lines_sent as f64;
    row(
        "zstd -3 of the lines joined with `\\n` (send order), bytes/line",
        &|p| format!("{:.1}", zstd_line(p)),
        "",
        info(),
    );
    row(
        "zstd -3 of the lines with timestamp and structured metadata as text, bytes/line (information)",
        &|p| format!("{:.1}", p.zstd_meta_bytes as f64 / p.lines_sent as f64),
        "",
        info(),
    );
    let per_line = |b: u64, p: &Point| b as f64 / p.acked.max(1) as f64;
    row(
        "disk: blocks/logs, bytes/line (files)",
        &|p| format!("{:.1} ({})", per_line(p.blocks.0, p), p.blocks.1),
        "",
        info(),
    );
    row(
        "disk: wal/logs, bytes/line (files)",
        &|p| format!("{:.1} ({})", per_line(p.wal.0, p), p.wal.1),
        "",
        info(),
    );
    let disk = |p: &Point| per_line(p.blocks.0 + p.wal.0, p);
    row(
        "disk: total, bytes/line",
        &|p| format!("{:.1}", disk(p)),
        "",
        info(),
    );
    row(
        "disk: of the blocks, lines and timestamps / structured metadata / filters, bytes/line",
        &|p| {
            format!(
                "{:.1} / {:.1} / {:.1}",
                per_line(p.split.0, p),
                per_line(p.split.1, p),
                per_line(p.split.2, p)
            )
        },
        "",
        info(),
    );
    row(
        "disk: lines and timestamps / zstd of the lines",
        &|p| format!("{:.2}", per_line(p.split.0, p) / zstd_line(p)),
        "",
        info(),
    );
    row(
        "**disk / zstd of the lines**",
        &|p| format!("{:.2}", disk(p) / zstd_line(p)),
        "≤ 1.0",
        both(&|p| disk(p) / zstd_line(p) <= 1.0),
    );
    row(
        "disk / zstd -3 of the lines with timestamp and structured metadata as text (what the blocks hold; information)",
        &|p| {
            format!(
                "{:.2}",
                disk(p) / (p.zstd_meta_bytes as f64 / p.lines_sent as f64)
            )
        },
        "",
        info(),
    );
    row(
        &format!(
            "needle `{{service_name=\"checkout\"}} |= \"order-…\"`, median / p99 ms ({} present + {} absent)",
            small.needles.present, small.needles.absent
        ),
        &|p| {
            format!(
                "{:.2} / {:.2}",
                quantile(&p.needles.ms, 0.5),
                quantile(&p.needles.ms, 0.99)
            )
        },
        "",
        info(),
    );
    row(
        "needle answers not holding exactly the order's lines",
        &|p| p.needles.wrong.to_string(),
        "0",
        both(&|p| p.needles.wrong == 0),
    );
    let skipped = |p: &Point| match (p.needles.chunks_ref, p.needles.chunks_downloaded) {
        (Some(r), Some(d)) if r > 0 => Some(1.0 - d as f64 / r as f64),
        _ => None,
    };
    println!(
        "| **needle: chunks skipped** (1 − totalChunksDownloaded / totalChunksRef) | {} | {} | > 90% at {head_big} | {} |",
        skipped(small).map_or("n/a".into(), |s| format!("{:.1}%", s * 100.0)),
        big.map(|b| skipped(b).map_or("n/a".into(), |s| format!("{:.1}%", s * 100.0)))
            .unwrap_or_else(|| "–".into()),
        match big {
            None => "not measured (--small-only)".to_string(),
            Some(b) => skipped(b).map_or("n/a (not reported)".into(), |s| pass(s > 0.9)),
        }
    );
    for (k, m) in small.metrics.iter().enumerate() {
        let cell = |p: &Point| {
            let m = &p.metrics[k];
            let runs = if m.runs < o.runs {
                format!(
                    ", {} timed run{}",
                    m.runs,
                    if m.runs == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            };
            format!(
                "{:.1} ({} of {} lines, {} series{runs})",
                m.median_ms,
                fmt_int(m.got as u64),
                fmt_int(m.expected),
                m.series
            )
        };
        row(
            &format!("`{}`, median ms (total counted of lines sent)", m.name),
            &cell,
            "total exact",
            both(&|p| p.metrics[k].got == p.metrics[k].expected as f64),
        );
    }
    println!();
    println!(
        "Notes: push requests are one node agent's second of lines ({:.0} lines on average), OTLP requests one instance's batch ({:.0} lines on average). \
         Queries cover the hour from {}. force_flush answered at {} lines: {}",
        last.push.lines as f64 / last.push.requests.max(1) as f64,
        last.otlp.lines as f64 / last.otlp.requests.max(1) as f64,
        rfc3339_ms(hour_start_s * SEC),
        fmt_int(last.lines_sent),
        last.flush_answer
    );
    for p in points {
        if let Some(w) = &p.needles.first_wrong {
            println!(
                "Needle answers wrong at {} lines: {} (first: {w})",
                fmt_int(p.lines_sent),
                p.needles.wrong
            );
        }
    }
    if let Some(e) = first_error {
        println!("First refusal or error from the server: {e}");
    }
}
