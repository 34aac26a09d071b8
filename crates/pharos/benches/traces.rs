//! Traces benchmark: realistic multi-service traces into a real `pharos serve`, then
//! trace-by-id and search latency, at two sizes of the store.
//!
//! Run: `cargo bench -p pharos --bench traces` (options after `--`: `--spans N` for the
//! small point (1,000,000; the big point is 10x), `--clients N` (8 concurrent OTLP/gRPC
//! clients), `--small-only` (stop after the small point), `--chunk N` (spans generated,
//! encoded and sent at a time: 1,000,000), `--fsync always|never|interval` (the server's
//! WAL policy: `always`, its default), `--ids N` (100 trace ids looked up), `--runs N` (5
//! runs of each search after one warm-up), `--seed N` (1)).
//!
//! What it measures, each against its target from the issue:
//! - **Ingest CPU.** Spans accepted per CPU-second of the server process (utime+stime
//!   from `/proc`, everything it spent while the bench was not querying it: the sends,
//!   background work between them and the flush), against bare protobuf decoding of the
//!   same request bytes (`ExportTraceServiceRequest::decode`, one thread of this process,
//!   measured in that thread's CPU time from `/proc/thread-self/schedstat`). Target: at
//!   least half the decode-only rate. The send-only figure (server CPU spent between the
//!   first request of a chunk and its last acknowledgement) is shown beside it. Reference
//!   costs on the same bytes, in the same thread, show what any ingest path must at least
//!   spend: a zero-copy check of every protobuf field as prost checks it, with nothing
//!   kept or allocated (`pharos_otlp::view::validate`, the floor of any OTLP parser),
//!   snappy of each payload (what the WAL compresses) and zstd level 3 of each payload;
//!   and beside them Pharos' own zero-copy view of a request (`TraceView::parse`), for
//!   what a write path built on it would pay to parse.
//! - **Disk.** After `POST /internal/force_flush` and a few seconds' wait: bytes under
//!   `<data>/blocks/traces` and `<data>/wal/traces` (allocated, as `du` counts), per span,
//!   against zstd level 3 of the concatenated raw request payloads. Target: at most half.
//! - **Latency.** Tempo `GET /api/traces/<id>` and Jaeger `GET /jaeger/api/traces/<id>`
//!   for a sample of trace ids drawn uniformly from everything sent so far (median and
//!   p99, each id once; every answer is checked to hold all the trace's spans), and a few
//!   Tempo TraceQL and Jaeger searches over the whole time range (median of `--runs`
//!   after one warm-up; a search whose warm-up took over 2 s gets 2 timed runs, over
//!   10 s one, so the big point stays within minutes: the table says so when it happens).
//!   Done at the small point and again after sending nine times as many spans more from
//!   the same generator. Target: trace-by-id at 10x the spans within 2x of its latency
//!   at 1x.
//!
//! The data: an online shop of seven services (frontend, product-catalog, cart,
//! checkout, payment, email, db-proxy; 15 instances), five kinds of request (home page,
//! product page, cart view, add to cart, checkout) making traces of 5 to 40 spans with
//! client/server pairs across services, SQL through a proxy, Redis, an external payment
//! provider, attributes from the semantic conventions (HTTP, RPC, DB, network) plus
//! high-cardinality user, session, product and order ids; about 2% of traces carry an
//! error (a failed query, a declined card) propagated to their callers, with an
//! `exception` event on the failing span. Trace starts are spread over 55 minutes ending
//! five minutes before the bench started (the big point's spans; the small point holds
//! the first tenth of that). Each instance batches its spans as an SDK's
//! BatchSpanProcessor does (512 spans or 5 s of simulated time), so one request is one
//! `ResourceSpans` of up to 512 spans and a trace's spans arrive in several requests.
//! Everything is generated from a seed, chunk by chunk, and encoded before its chunk is
//! timed; requests go out as those pre-encoded bytes.

mod common;

use common::{
    Counter, best_of_two, cpu_seconds, du, fmt_int, get, http_client, label, median, peak_rss_mib,
    quantile, rss_mib, start_pharos,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use prost::bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
const INSTANCES: [usize; 7] = [3, 3, 2, 2, 2, 1, 2];
/// SDK language, SDK version and service version per service.
const SDK: [(&str, &str, &str); 7] = [
    ("nodejs", "1.30.1", "2.4.0"),
    ("go", "1.34.0", "1.12.3"),
    ("dotnet", "1.11.2", "3.0.1"),
    ("go", "1.34.0", "1.12.3"),
    ("java", "1.47.0", "4.2.0"),
    ("ruby", "1.5.0", "0.9.8"),
    ("rust", "0.28.0", "1.1.0"),
];

const SCOPE_HTTP: usize = 0;
const SCOPE_RPC: usize = 1;
const SCOPE_DB: usize = 2;
const SCOPE_APP: usize = 3;
const SCOPES: [(&str, &str); 4] = [
    ("io.opentelemetry.http", "2.11.0"),
    ("io.opentelemetry.grpc", "2.11.0"),
    ("io.opentelemetry.db", "2.11.0"),
    ("shop", "1.0.0"),
];

const INTERNAL: i32 = 1;
const SERVER: i32 = 2;
const CLIENT: i32 = 3;

/// An SDK's BatchSpanProcessor: `max_export_batch_size` and `schedule_delay`.
const BATCH_SPANS: usize = 512;
const BATCH_DELAY_NS: u64 = 5_000_000_000;
/// The probability that a query, a cache call or a mail fails.
const LEAF_ERROR: f64 = 0.003;
/// The probability that the payment provider declines a card.
const DECLINE: f64 = 0.03;
const USERS: u32 = 200_000;
const PRODUCTS: u32 = 2_000;
const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
];

type Failure = Option<&'static str>;

fn s(k: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn i(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

fn f(k: &str, v: f64) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::DoubleValue(v)),
        }),
        ..Default::default()
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// One SDK process: its resource and the spans its batch processor holds, per scope.
struct Instance {
    resource: Resource,
    pending: [Vec<Span>; 4],
    count: usize,
    /// Simulated time of the oldest pending span.
    since_ns: u64,
}

/// What the bench remembers of each trace: enough to look it up and check the answer.
struct TraceRec {
    id: [u8; 16],
    spans: u32,
}

/// The requests of one chunk, encoded.
#[derive(Default)]
struct Chunk {
    payloads: Vec<(Bytes, u32)>,
    spans: u64,
    bytes: u64,
}

/// Builds one trace.
struct Tb<'a> {
    rng: &'a mut SmallRng,
    trace_id: Vec<u8>,
    /// The instance of each service serving this trace.
    inst: [usize; 7],
    spans: Vec<(usize, usize, Span)>,
    /// Events for the next server span `rpc`/`http` closes (set by its body).
    events: Vec<Event>,
    payment_error: bool,
    slow: bool,
}

impl Tb<'_> {
    fn id(&mut self) -> u64 {
        loop {
            let v: u64 = self.rng.random();
            if v != 0 {
                return v;
            }
        }
    }

    /// A log-normal duration in ns with the given median in µs.
    fn lognormal(&mut self, median_us: f64, sigma: f64) -> u64 {
        let u1: f64 = self.rng.random::<f64>().max(1e-12);
        let u2: f64 = self.rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (median_us * (sigma * z).exp() * 1_000.0) as u64
    }

    /// A network hop.
    fn net(&mut self) -> u64 {
        self.lognormal(120.0, 0.5)
    }

    /// A gap between sequential calls in one span.
    fn gap(&mut self) -> u64 {
        self.lognormal(25.0, 0.6)
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        svc: usize,
        scope: usize,
        id: u64,
        parent: u64,
        name: String,
        kind: i32,
        (start, end): (u64, u64),
        attributes: Vec<KeyValue>,
        failure: Failure,
        mut events: Vec<Event>,
        exception: bool,
    ) {
        let status = failure.map(|m| Status {
            code: 2,
            message: m.into(),
        });
        if let (Some(m), true) = (failure, exception) {
            events.push(Event {
                time_unix_nano: end,
                name: "exception".into(),
                attributes: vec![
                    s("exception.type", exception_type(svc)),
                    s("exception.message", m),
                ],
                ..Default::default()
            });
        }
        if failure.is_some() && svc == PAYMENT {
            self.payment_error = true;
        }
        if end - start > 500_000_000 {
            self.slow = true;
        }
        self.spans.push((
            self.inst[svc],
            scope,
            Span {
                trace_id: self.trace_id.clone(),
                span_id: id.to_be_bytes().to_vec(),
                parent_span_id: if parent == 0 {
                    vec![]
                } else {
                    parent.to_be_bytes().to_vec()
                },
                flags: 0x101,
                name,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                events,
                status,
                ..Default::default()
            },
        ));
    }

    /// A SQL statement from `svc` through db-proxy to PostgreSQL: three spans.
    fn sql(
        &mut self,
        svc: usize,
        parent: u64,
        start: u64,
        op: &str,
        table: &str,
        stmt: &str,
    ) -> (u64, Failure) {
        let (client, server, pg) = (self.id(), self.id(), self.id());
        let s_start = start + self.net();
        let pg_start = s_start + self.lognormal(40.0, 0.4);
        let pg_dur = if self.rng.random_bool(0.004) {
            self.rng.random_range(200_000_000..2_500_000_000)
        } else {
            self.lognormal(900.0, 0.9)
        };
        let pg_end = pg_start + pg_dur;
        let s_end = pg_end + self.lognormal(30.0, 0.4);
        let c_end = s_end + self.net();
        let failure = self
            .rng
            .random_bool(LEAF_ERROR)
            .then_some("ERROR: canceling statement due to statement timeout (SQLSTATE 57014)");
        let name = format!("{op} {table}");
        let db = |peer: &str, port: i64| {
            vec![
                s("db.system", "postgresql"),
                s("db.name", "shop"),
                s("db.user", "shop_rw"),
                s("db.operation", op),
                s("db.sql.table", table),
                s("db.statement", stmt),
                s("net.peer.name", peer),
                i("net.peer.port", port),
            ]
        };
        let pg_attrs = db("pg-primary.db.svc.cluster.local", 5432);
        let mut client_attrs = db("db-proxy.shop.svc.cluster.local", 6432);
        client_attrs.push(s(
            "db.connection_string",
            "postgresql://db-proxy.shop.svc.cluster.local:6432/shop",
        ));
        let ip = format!(
            "10.42.{}.{}",
            self.rng.random_range(0..8),
            self.rng.random_range(2..250)
        );
        self.push(
            DBPROXY,
            SCOPE_DB,
            pg,
            server,
            name.clone(),
            CLIENT,
            (pg_start, pg_end),
            pg_attrs,
            failure,
            vec![],
            true,
        );
        self.push(
            DBPROXY,
            SCOPE_DB,
            server,
            client,
            name.clone(),
            SERVER,
            (s_start, s_end),
            vec![
                s("db.system", "postgresql"),
                s("db.operation", op),
                s("db.sql.table", table),
                s("network.peer.address", ip),
                s("proxy.pool", "shop_rw"),
            ],
            failure,
            vec![],
            false,
        );
        self.push(
            svc,
            SCOPE_DB,
            client,
            parent,
            name,
            CLIENT,
            (start, c_end),
            client_attrs,
            failure,
            vec![],
            false,
        );
        (c_end, failure)
    }

    /// A Redis command from `svc`: one client span.
    fn redis(
        &mut self,
        svc: usize,
        parent: u64,
        start: u64,
        cmd: &str,
        key: &str,
    ) -> (u64, Failure) {
        let id = self.id();
        let end = start + self.net() + self.lognormal(250.0, 0.5);
        let failure = self
            .rng
            .random_bool(LEAF_ERROR)
            .then_some("read tcp 10.42.3.17:51234->10.43.0.12:6379: connection reset by peer");
        self.push(
            svc,
            SCOPE_DB,
            id,
            parent,
            cmd.to_string(),
            CLIENT,
            (start, end),
            vec![
                s("db.system", "redis"),
                s("db.statement", format!("{cmd} {key}")),
                i("db.redis.database_index", 0),
                s("net.peer.name", "redis-cart.shop.svc.cluster.local"),
                i("net.peer.port", 6379),
            ],
            failure,
            vec![],
            true,
        );
        (end, failure)
    }

    /// A gRPC call: a client span in `from`, a server span in `to` around `body`.
    #[allow(clippy::too_many_arguments)]
    fn rpc(
        &mut self,
        from: usize,
        to: usize,
        parent: u64,
        start: u64,
        service: &str,
        method: &str,
        extra: Vec<KeyValue>,
        body: impl FnOnce(&mut Self, u64, u64) -> (u64, Failure),
    ) -> (u64, Failure) {
        let (client, server) = (self.id(), self.id());
        let s_start = start + self.net();
        let wait = self.lognormal(40.0, 0.5);
        let (body_end, failure) = body(self, server, s_start + wait);
        let events = std::mem::take(&mut self.events);
        let s_end = body_end + self.lognormal(40.0, 0.5);
        let c_end = s_end + self.net();
        let code = if failure.is_some() { 2 } else { 0 };
        let name = format!("{service}/{method}");
        let mut attrs = vec![
            s("rpc.system", "grpc"),
            s("rpc.service", service),
            s("rpc.method", method),
            i("rpc.grpc.status_code", code),
        ];
        attrs.extend(extra);
        let mut server_attrs = attrs.clone();
        server_attrs.push(s(
            "net.sock.peer.addr",
            format!(
                "10.42.{}.{}",
                self.rng.random_range(0..8),
                self.rng.random_range(2..250)
            ),
        ));
        attrs.push(s(
            "net.peer.name",
            format!("{}.shop.svc.cluster.local", SERVICES[to]),
        ));
        attrs.push(i("net.peer.port", 8080));
        self.push(
            to,
            SCOPE_RPC,
            server,
            client,
            name.clone(),
            SERVER,
            (s_start, s_end),
            server_attrs,
            failure,
            events,
            false,
        );
        self.push(
            from,
            SCOPE_RPC,
            client,
            parent,
            name,
            CLIENT,
            (start, c_end),
            attrs,
            failure,
            vec![],
            false,
        );
        (c_end, failure)
    }

    /// An HTTP call: a client span in `from`, a server span in `to` around `body`.
    #[allow(clippy::too_many_arguments)]
    fn http(
        &mut self,
        from: usize,
        to: usize,
        parent: u64,
        start: u64,
        method: &str,
        route: &str,
        path: &str,
        body: impl FnOnce(&mut Self, u64, u64) -> (u64, Failure),
    ) -> (u64, Failure) {
        let (client, server) = (self.id(), self.id());
        let s_start = start + self.net();
        let wait = self.lognormal(40.0, 0.5);
        let (body_end, failure) = body(self, server, s_start + wait);
        let events = std::mem::take(&mut self.events);
        let s_end = body_end + self.lognormal(40.0, 0.5);
        let c_end = s_end + self.net();
        let code = if failure.is_some() {
            500
        } else if method == "POST" {
            201
        } else {
            200
        };
        let host = format!("{}.shop.svc.cluster.local", SERVICES[to]);
        let server_attrs = vec![
            s("http.request.method", method),
            s("http.route", route),
            s("url.path", path),
            s("url.scheme", "http"),
            i("http.response.status_code", code),
            s("server.address", host.clone()),
            i("server.port", 8080),
            s("network.protocol.version", "1.1"),
            s(
                "client.address",
                format!(
                    "10.42.{}.{}",
                    self.rng.random_range(0..8),
                    self.rng.random_range(2..250)
                ),
            ),
        ];
        let client_attrs = vec![
            s("http.request.method", method),
            s("url.full", format!("http://{host}:8080{path}")),
            s("server.address", host),
            i("server.port", 8080),
            i("http.response.status_code", code),
        ];
        self.push(
            to,
            SCOPE_HTTP,
            server,
            client,
            format!("{method} {route}"),
            SERVER,
            (s_start, s_end),
            server_attrs,
            failure,
            events,
            false,
        );
        self.push(
            from,
            SCOPE_HTTP,
            client,
            parent,
            method.to_string(),
            CLIENT,
            (start, c_end),
            client_attrs,
            failure,
            vec![],
            false,
        );
        (c_end, failure)
    }

    /// product-catalog's GetProduct, called from `from`.
    fn get_product(&mut self, from: usize, parent: u64, start: u64) -> (u64, Failure) {
        let product = format!("P{:05}", self.rng.random_range(0..PRODUCTS));
        let key = product.clone();
        self.rpc(from, CATALOG, parent, start, "oteldemo.ProductCatalogService", "GetProduct", vec![s("app.product.id", product)], move |tb, id, t| {
            let r = tb.sql(
                CATALOG,
                id,
                t,
                "SELECT",
                "products",
                "SELECT id, name, description, picture, price_currency, price_units, price_nanos, categories FROM products WHERE id = $1",
            );
            if tb.rng.random_bool(0.2) {
                tb.events.push(Event {
                    time_unix_nano: t,
                    name: "cache miss".into(),
                    attributes: vec![s("cache.key", format!("product:{key}"))],
                    ..Default::default()
                });
            }
            r
        })
    }

    /// The cart service reading a user's cart, called from `from`.
    fn get_cart(&mut self, from: usize, parent: u64, start: u64, user: &str) -> (u64, Failure) {
        let key = format!("cart:{user}");
        self.http(
            from,
            CART,
            parent,
            start,
            "GET",
            "/cart/{userId}",
            &format!("/cart/{user}"),
            |tb, id, t| tb.redis(CART, id, t, "HGETALL", &key),
        )
    }

    /// payment's Charge, called from checkout.
    fn charge(&mut self, parent: u64, start: u64, amount: f64) -> (u64, Failure) {
        let extra = vec![
            f("app.payment.amount", amount),
            s("app.payment.currency", "USD"),
        ];
        self.rpc(CHECKOUT, PAYMENT, parent, start, "oteldemo.PaymentService", "Charge", extra, |tb, id, t| {
            let (t, e) = tb.sql(PAYMENT, id, t, "INSERT", "payments", "INSERT INTO payments (order_id, amount_units, amount_nanos, currency, status) VALUES ($1, $2, $3, $4, 'pending')");
            if e.is_some() {
                return (t, e);
            }
            let t = t + tb.gap();
            let pid = tb.id();
            let end = t + tb.lognormal(180_000.0, 0.55);
            let declined = tb.rng.random_bool(DECLINE);
            let failure = declined.then_some("card declined: insufficient funds");
            tb.push(
                PAYMENT,
                SCOPE_HTTP,
                pid,
                id,
                "POST".into(),
                CLIENT,
                (t, end),
                vec![
                    s("http.request.method", "POST"),
                    s("url.full", "https://api.payments.example.com/v1/charges"),
                    s("server.address", "api.payments.example.com"),
                    i("server.port", 443),
                    i("http.response.status_code", if declined { 402 } else { 200 }),
                ],
                failure,
                vec![],
                true,
            );
            if declined {
                return (end, failure);
            }
            let at = end + tb.gap();
            tb.sql(PAYMENT, id, at, "UPDATE", "payments", "UPDATE payments SET status = 'captured', provider_ref = $2 WHERE id = $1")
        })
    }

    /// The frontend's server span: the root of every trace.
    fn frontend(
        &mut self,
        start: u64,
        method: &str,
        route: &str,
        path: String,
        user: &str,
        body: impl FnOnce(&mut Self, u64, u64) -> (u64, Failure),
    ) {
        let id = self.id();
        let wait = self.lognormal(150.0, 0.5);
        let (end, failure) = body(self, id, start + wait);
        let end = end + self.lognormal(200.0, 0.5);
        let code = if failure.is_some() { 500 } else { 200 };
        let session = format!("{:016x}", self.rng.random::<u64>());
        let attrs = vec![
            s("http.request.method", method),
            s("http.route", route),
            s("url.path", path),
            s("url.scheme", "https"),
            i("http.response.status_code", code),
            s("server.address", "shop.example.com"),
            i("server.port", 443),
            s("network.protocol.version", "2"),
            s(
                "client.address",
                format!(
                    "{}.{}.{}.{}",
                    self.rng.random_range(1..224),
                    self.rng.random_range(0..256),
                    self.rng.random_range(0..256),
                    self.rng.random_range(1..255)
                ),
            ),
            s(
                "user_agent.original",
                USER_AGENTS[self.rng.random_range(0..USER_AGENTS.len())],
            ),
            s("app.user.id", user),
            s("app.session.id", session),
        ];
        self.push(
            FRONTEND,
            SCOPE_HTTP,
            id,
            0,
            format!("{method} {route}"),
            SERVER,
            (start, end),
            attrs,
            failure,
            vec![],
            false,
        );
    }

    /// One whole trace starting at `start`, for `user`.
    fn trace(&mut self, start: u64, user: &str) {
        let kind = self.rng.random_range(0..100);
        let product = format!("P{:05}", self.rng.random_range(0..PRODUCTS));
        match kind {
            // Home page.
            0..10 => self.frontend(start, "GET", "/", "/".into(), user, |tb, id, t| {
                let (t, e) = tb.rpc(FRONTEND, CATALOG, id, t, "oteldemo.ProductCatalogService", "ListProducts", vec![], |tb, id, t| {
                    tb.sql(CATALOG, id, t, "SELECT", "products", "SELECT id, name, picture, price_currency, price_units, price_nanos FROM products ORDER BY featured DESC LIMIT 24")
                });
                let t = t + tb.gap();
                let rid = tb.id();
                let end = t + tb.lognormal(800.0, 0.5);
                tb.push(FRONTEND, SCOPE_APP, rid, id, "render home".into(), INTERNAL, (t, end), vec![s("app.template", "home.hbs"), i("app.products.count", 24)], None, vec![], false);
                (end, e)
            }),
            // Product page.
            10..45 => self.frontend(start, "GET", "/api/products/{id}", format!("/api/products/{product}"), user, |tb, id, t| {
                let (t, e1) = tb.get_product(FRONTEND, id, t);
                let at = t + tb.gap();
                let (mut t, e2) = tb.rpc(FRONTEND, CATALOG, id, at, "oteldemo.ProductCatalogService", "ListRecommendations", vec![s("app.product.id", product)], |tb, id, t| {
                    tb.sql(CATALOG, id, t, "SELECT", "recommendations", "SELECT product_id FROM recommendations WHERE source_id = $1 ORDER BY score DESC LIMIT 5")
                });
                let mut e3 = None;
                if tb.rng.random_bool(0.5) {
                    let key = format!("cart:{user}");
                    let at = t + tb.gap();
                    (t, e3) = tb.http(FRONTEND, CART, id, at, "GET", "/cart/{userId}/count", &format!("/cart/{user}/count"), |tb, id, t| tb.redis(CART, id, t, "HLEN", &key));
                }
                (t, e1.or(e2).or(e3))
            }),
            // Cart view.
            45..70 => self.frontend(start, "GET", "/api/cart", "/api/cart".into(), user, |tb, id, t| {
                let (mut t, mut e) = tb.get_cart(FRONTEND, id, t, user);
                let items = tb.rng.random_range(0..=6);
                for _ in 0..items {
                    let at = t + tb.gap();
                    let (t2, e2) = tb.get_product(FRONTEND, id, at);
                    t = t2;
                    e = e.or(e2);
                }
                let t = t + tb.gap();
                let rid = tb.id();
                let end = t + tb.lognormal(500.0, 0.5);
                tb.push(FRONTEND, SCOPE_APP, rid, id, "render cart".into(), INTERNAL, (t, end), vec![s("app.template", "cart.hbs"), i("app.cart.items.count", items)], None, vec![], false);
                (end, e)
            }),
            // Add to cart.
            70..85 => self.frontend(start, "POST", "/api/cart", "/api/cart".into(), user, |tb, id, t| {
                let (t, e) = tb.get_product(FRONTEND, id, t);
                if e.is_some() {
                    return (t, e);
                }
                let key = format!("cart:{user}");
                let at = t + tb.gap();
                tb.http(FRONTEND, CART, id, at, "POST", "/cart/{userId}/items", &format!("/cart/{user}/items"), |tb, id, t| {
                    let (t, e) = tb.redis(CART, id, t, "HSET", &key);
                    if e.is_some() {
                        return (t, e);
                    }
                    let at = t + tb.gap();
                    tb.redis(CART, id, at, "EXPIRE", &key)
                })
            }),
            // Checkout.
            _ => self.frontend(start, "POST", "/api/checkout", "/api/checkout".into(), user, |tb, id, t| {
                let order = format!("{:08x}-{:04x}-{:04x}", tb.rng.random::<u32>(), tb.rng.random::<u16>(), tb.rng.random::<u16>());
                let extra = vec![s("app.user.id", user), s("app.order.id", order.clone())];
                tb.rpc(FRONTEND, CHECKOUT, id, t, "oteldemo.CheckoutService", "PlaceOrder", extra, |tb, id, t| {
                    let (mut t, e) = tb.get_cart(CHECKOUT, id, t, user);
                    if e.is_some() {
                        return (t, e);
                    }
                    let items = tb.rng.random_range(1..=3);
                    for _ in 0..items {
                        let at = t + tb.gap();
                        let (t2, e) = tb.get_product(CHECKOUT, id, at);
                        if e.is_some() {
                            return (t2, e);
                        }
                        t = t2;
                    }
                    let amount = (tb.rng.random_range(500..50_000) as f64) / 100.0;
                    let at = t + tb.gap();
                    let (t, e) = tb.charge(id, at, amount);
                    if e.is_some() {
                        return (t, e);
                    }
                    let at = t + tb.gap();
                    let (t, e) = tb.sql(CHECKOUT, id, at, "INSERT", "orders", "INSERT INTO orders (id, user_id, items, total_units, total_nanos, currency) VALUES ($1, $2, $3, $4, $5, $6)");
                    if e.is_some() {
                        return (t, e);
                    }
                    let mail = vec![s("app.order.id", order.clone())];
                    let at = t + tb.gap();
                    let (t, e) = tb.rpc(CHECKOUT, EMAIL, id, at, "oteldemo.EmailService", "SendOrderConfirmation", mail, |tb, id, t| {
                        let rid = tb.id();
                        let end = t + tb.lognormal(2_000.0, 0.5);
                        let rendered = Event {
                            time_unix_nano: end,
                            name: "template rendered".into(),
                            attributes: vec![i("app.email.bytes", tb.rng.random_range(8_000..40_000))],
                            ..Default::default()
                        };
                        tb.push(EMAIL, SCOPE_APP, rid, id, "render confirmation".into(), INTERNAL, (t, end), vec![s("app.template", "confirmation.erb")], None, vec![rendered], false);
                        let t = end + tb.gap();
                        let sid = tb.id();
                        let end = t + tb.lognormal(40_000.0, 0.6);
                        let failure = tb.rng.random_bool(LEAF_ERROR).then_some("Net::ReadTimeout with #<TCPSocket:(closed)>");
                        tb.push(
                            EMAIL,
                            SCOPE_APP,
                            sid,
                            id,
                            "SMTP send".into(),
                            CLIENT,
                            (t, end),
                            vec![s("server.address", "smtp.mail.example.com"), i("server.port", 587), s("messaging.system", "smtp")],
                            failure,
                            vec![],
                            true,
                        );
                        (end, failure)
                    });
                    if e.is_some() {
                        return (t, e);
                    }
                    let key = format!("cart:{user}");
                    let at = t + tb.gap();
                    let r = tb.http(CHECKOUT, CART, id, at, "DELETE", "/cart/{userId}", &format!("/cart/{user}"), |tb, id, t| tb.redis(CART, id, t, "DEL", &key));
                    tb.events.push(Event {
                        time_unix_nano: r.0,
                        name: "order placed".into(),
                        attributes: vec![s("app.order.id", order), i("app.order.items.count", items)],
                        ..Default::default()
                    });
                    r
                })
            }),
        }
    }
}

fn exception_type(svc: usize) -> &'static str {
    match SDK[svc].0 {
        "go" => "*errors.errorString",
        "java" => "java.io.IOException",
        "dotnet" => "System.IO.IOException",
        "ruby" => "Net::ReadTimeout",
        "nodejs" => "Error",
        _ => "std::io::Error",
    }
}

/// The generator: simulated time, instances with their batch processors, and every
/// trace sent so far.
struct Gen {
    rng: SmallRng,
    instances: Vec<Instance>,
    first: [usize; 7],
    t_ns: u64,
    ns_per_span: f64,
    traces: Vec<TraceRec>,
    /// A user of an early trace, for the rare-attribute search, and how many traces it has.
    probe_user: Option<String>,
    probe_traces: u64,
    payment_error_traces: u64,
    slow_traces: u64,
}

impl Gen {
    /// Spreads `total` spans over 55 minutes starting at `start_ns`.
    fn new(seed: u64, total: u64, start_ns: u64) -> Gen {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut instances = Vec::new();
        let mut first = [0; 7];
        for (svc, name) in SERVICES.iter().enumerate() {
            first[svc] = instances.len();
            let (lang, sdk, version) = SDK[svc];
            for _ in 0..INSTANCES[svc] {
                let pod = format!(
                    "{name}-{:08x}-{:05x}",
                    rng.random::<u32>(),
                    rng.random::<u32>() & 0xfffff
                );
                let uuid = format!(
                    "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                    rng.random::<u32>(),
                    rng.random::<u16>(),
                    rng.random::<u16>() & 0xfff,
                    rng.random::<u16>(),
                    rng.random::<u64>() & 0xffff_ffff_ffff
                );
                let resource = Resource {
                    attributes: vec![
                        s("service.name", *name),
                        s("service.namespace", "shop"),
                        s("service.version", version),
                        s("service.instance.id", uuid),
                        s("deployment.environment.name", "production"),
                        s("host.name", format!("node-{}", rng.random_range(1..7))),
                        s("k8s.namespace.name", "shop"),
                        s("k8s.deployment.name", *name),
                        s("k8s.pod.name", pod),
                        s("telemetry.sdk.name", "opentelemetry"),
                        s("telemetry.sdk.language", lang),
                        s("telemetry.sdk.version", sdk),
                    ],
                    ..Default::default()
                };
                instances.push(Instance {
                    resource,
                    pending: Default::default(),
                    count: 0,
                    since_ns: 0,
                });
            }
        }
        Gen {
            rng,
            instances,
            first,
            t_ns: start_ns,
            ns_per_span: 55.0 * 60.0 * 1e9 / total as f64,
            traces: Vec::new(),
            probe_user: None,
            probe_traces: 0,
            payment_error_traces: 0,
            slow_traces: 0,
        }
    }

    fn emit(&mut self, i: usize, out: &mut Chunk) {
        let inst = &mut self.instances[i];
        let scope_spans = inst
            .pending
            .iter_mut()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .map(|(k, p)| ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPES[k].0.into(),
                    version: SCOPES[k].1.into(),
                    ..Default::default()
                }),
                spans: std::mem::take(p),
                schema_url: String::new(),
            })
            .collect();
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(inst.resource.clone()),
                scope_spans,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
        };
        let bytes = req.encode_to_vec();
        out.spans += inst.count as u64;
        out.bytes += bytes.len() as u64;
        out.payloads.push((Bytes::from(bytes), inst.count as u32));
        inst.count = 0;
    }

    /// Generates traces until at least `target` spans were emitted, then lets every
    /// batch processor export what it holds (so every trace generated is complete).
    fn chunk(&mut self, target: u64) -> Chunk {
        let mut out = Chunk::default();
        while out.spans < target {
            for k in 0..self.instances.len() {
                if self.instances[k].count > 0
                    && self.t_ns - self.instances[k].since_ns >= BATCH_DELAY_NS
                {
                    self.emit(k, &mut out);
                }
            }
            let user = format!("u-{:06}", self.rng.random_range(0..USERS));
            let mut trace_id = [0u8; 16];
            self.rng.fill(&mut trace_id[..]);
            let mut inst = [0; 7];
            for (svc, slot) in inst.iter_mut().enumerate() {
                *slot = self.first[svc] + self.rng.random_range(0..INSTANCES[svc]);
            }
            let mut tb = Tb {
                rng: &mut self.rng,
                trace_id: trace_id.to_vec(),
                inst,
                spans: Vec::with_capacity(48),
                events: Vec::new(),
                payment_error: false,
                slow: false,
            };
            tb.trace(self.t_ns, &user);
            let (spans, payment_error, slow) =
                (std::mem::take(&mut tb.spans), tb.payment_error, tb.slow);
            self.payment_error_traces += payment_error as u64;
            self.slow_traces += slow as u64;
            if self.traces.len() == 1_000 {
                self.probe_user = Some(user.clone());
            }
            if self.probe_user.as_deref() == Some(user.as_str()) {
                self.probe_traces += 1;
            }
            let n = spans.len();
            self.traces.push(TraceRec {
                id: trace_id,
                spans: n as u32,
            });
            for (k, scope, span) in spans {
                let inst = &mut self.instances[k];
                if inst.count == 0 {
                    inst.since_ns = self.t_ns;
                }
                inst.pending[scope].push(span);
                inst.count += 1;
                if inst.count >= BATCH_SPANS {
                    self.emit(k, &mut out);
                }
            }
            let u: f64 = self.rng.random::<f64>().max(1e-12);
            self.t_ns += (self.ns_per_span * n as f64 * -u.ln()) as u64;
        }
        for k in 0..self.instances.len() {
            if self.instances[k].count > 0 {
                self.emit(k, &mut out);
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Sending pre-encoded requests over OTLP/gRPC
// ---------------------------------------------------------------------------------------

type RawCodec = common::RawCodec<ExportTraceServiceResponse>;

type Client = tonic::client::Grpc<tonic::transport::Channel>;

#[derive(Default)]
struct SendStats {
    acked_spans: AtomicU64,
    rejected_spans: AtomicU64,
    failed_spans: AtomicU64,
    retries: AtomicU64,
    first_error: parking_lot::Mutex<Option<String>>,
}

/// Sends every payload of `chunk` from `clients` concurrent clients; returns wall seconds.
async fn send(clients: &[Client], chunk: Arc<Chunk>, stats: Arc<SendStats>) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in clients {
        let (mut c, chunk, stats, next) = (c.clone(), chunk.clone(), stats.clone(), next.clone());
        tasks.spawn(async move {
            let path = http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            );
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some((bytes, spans)) = chunk.payloads.get(k) else {
                    break;
                };
                let spans = *spans as u64;
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
                                    if p.rejected_spans > 0 || !p.error_message.is_empty() {
                                        stats.first_error.lock().get_or_insert_with(|| {
                                            format!("partial_success: {}", p.error_message)
                                        });
                                    }
                                    p.rejected_spans as u64
                                })
                                .unwrap_or(0);
                            stats.rejected_spans.fetch_add(rejected, Ordering::Relaxed);
                            stats
                                .acked_spans
                                .fetch_add(spans - rejected.min(spans), Ordering::Relaxed);
                            break;
                        }
                        Err(status) => {
                            stats.first_error.lock().get_or_insert_with(|| {
                                format!("{:?}: {}", status.code(), status.message())
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
                            stats.failed_spans.fetch_add(spans, Ordering::Relaxed);
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

// ---------------------------------------------------------------------------------------
// Reference costs: the least any ingest path must do with the same bytes
// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------

/// Latencies in ms, sorted.
struct ById {
    tempo: Vec<f64>,
    jaeger: Vec<f64>,
    missing: usize,
    incomplete: usize,
}

struct Search {
    name: String,
    runs: usize,
    median_ms: f64,
    hits: usize,
    matching: Option<u64>,
}

/// This thread's CPU nanoseconds for the reference work on every payload sent so far.
#[derive(Clone, Default)]
struct Reference {
    validate_ns: u64,
    view_ns: u64,
    snappy_ns: u64,
    zstd_ns: u64,
}

/// Everything measured at one point.
struct Point {
    reference: Reference,
    spans_sent: u64,
    acked: u64,
    rejected: u64,
    failed: u64,
    retries: u64,
    requests: u64,
    raw_bytes: u64,
    zstd_bytes: u64,
    decode_rate: f64,
    ingest_rate: f64,
    send_rate: f64,
    send_wall_rate: f64,
    flush_s: f64,
    flush_answer: String,
    blocks: (u64, u64),
    wal: (u64, u64),
    rss_now: f64,
    rss_peak: f64,
    by_id: ById,
    searches: Vec<Search>,
}

fn count_tempo_spans(body: &str) -> usize {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["batches"]
        .as_array()
        .map(|b| {
            b.iter()
                .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
                .map(|ss| ss["spans"].as_array().map_or(0, |s| s.len()))
                .sum()
        })
        .unwrap_or(0)
}

fn count_jaeger_spans(body: &str) -> usize {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["data"][0]["spans"].as_array().map_or(0, |s| s.len())
}

async fn trace_by_id(query: &str, gen_traces: &[TraceRec], ids: usize, seed: u64) -> ById {
    let http = http_client();
    let mut rng = SmallRng::seed_from_u64(seed);
    let sample: Vec<&TraceRec> = (0..ids + 5)
        .map(|_| &gen_traces[rng.random_range(0..gen_traces.len())])
        .collect();
    let (warm, sample) = sample.split_at(5);
    for t in warm {
        get(&http, &format!("{query}/api/traces/{}", hex::encode(t.id))).await;
    }
    let mut out = ById {
        tempo: Vec::new(),
        jaeger: Vec::new(),
        missing: 0,
        incomplete: 0,
    };
    for t in sample {
        let (ms, status, body) =
            get(&http, &format!("{query}/api/traces/{}", hex::encode(t.id))).await;
        out.tempo.push(ms);
        if status != 200 {
            out.missing += 1;
        } else if count_tempo_spans(&body) != t.spans as usize {
            out.incomplete += 1;
        }
    }
    for t in sample {
        let (ms, status, body) = get(
            &http,
            &format!("{query}/jaeger/api/traces/{}", hex::encode(t.id)),
        )
        .await;
        out.jaeger.push(ms);
        if status == 200 && count_jaeger_spans(&body) != t.spans as usize {
            eprintln!(
                "  jaeger: trace {} has {} spans, expected {}",
                hex::encode(t.id),
                count_jaeger_spans(&body),
                t.spans
            );
        }
    }
    out.tempo.sort_by(f64::total_cmp);
    out.jaeger.sort_by(f64::total_cmp);
    out
}

/// Runs a search once to warm up, then `runs` times (fewer when it is slow: 2 past 2 s, 1
/// past 10 s, so the big point stays within minutes); returns the timed latencies in ms
/// and the number of traces in the last answer's `field` array.
async fn timed(http: &reqwest::Client, url: &str, runs: usize, field: &str) -> (Vec<f64>, usize) {
    let mut times = Vec::new();
    let mut hits = 0;
    let mut runs = runs;
    let mut run = 0;
    while run <= runs {
        let (ms, status, body) = get(http, url).await;
        if status != 200 {
            eprintln!("  {url}: HTTP {status}: {}", body.trim());
        }
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        hits = v[field].as_array().map_or(0, |t| t.len());
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
    (times, hits)
}

async fn searches(query: &str, start_ns: u64, sim: &Gen, runs: usize) -> Vec<Search> {
    let http = http_client();
    let (start_s, end_s) = (start_ns / 1_000_000_000 - 60, now_ns() / 1_000_000_000 + 60);
    let (start_us, end_us) = (start_s * 1_000_000, end_s * 1_000_000);
    let probe = sim.probe_user.clone().unwrap_or_default();
    let tempo = [
        (
            r#"{ resource.service.name = "payment" && status = error }"#.to_string(),
            Some(sim.payment_error_traces),
        ),
        ("{ duration > 500ms }".to_string(), Some(sim.slow_traces)),
        (
            format!(r#"{{ span.app.user.id = "{probe}" }}"#),
            Some(sim.probe_traces),
        ),
    ];
    let mut out = Vec::new();
    for (q, matching) in tempo {
        let url = reqwest::Url::parse_with_params(
            &format!("{query}/api/search"),
            &[
                ("q", q.as_str()),
                ("start", &start_s.to_string()),
                ("end", &end_s.to_string()),
                ("limit", "20"),
            ],
        )
        .unwrap();
        let (times, hits) = timed(&http, url.as_str(), runs, "traces").await;
        out.push(Search {
            name: format!("Tempo search `{q}`"),
            runs: times.len(),
            median_ms: median(times),
            hits,
            matching,
        });
    }
    let jaeger = [
        vec![("service", "payment")],
        vec![
            ("service", "frontend"),
            ("operation", "POST /api/checkout"),
            ("minDuration", "500ms"),
        ],
    ];
    for params in jaeger {
        let (su, eu) = (start_us.to_string(), end_us.to_string());
        let mut all: Vec<(&str, &str)> = params.clone();
        all.extend([
            ("start", su.as_str()),
            ("end", eu.as_str()),
            ("lookback", "custom"),
            ("limit", "20"),
        ]);
        let url =
            reqwest::Url::parse_with_params(&format!("{query}/jaeger/api/traces"), &all).unwrap();
        let (times, hits) = timed(&http, url.as_str(), runs, "data").await;
        let shown: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push(Search {
            name: format!("Jaeger search `{}`", shown.join("&")),
            runs: times.len(),
            median_ms: median(times),
            hits,
            matching: None,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

struct Opts {
    spans: u64,
    clients: usize,
    small_only: bool,
    chunk: u64,
    fsync: String,
    ids: usize,
    runs: usize,
    seed: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |name: &str, default: u64| {
        arg(name)
            .and_then(|v| v.replace('_', "").parse().ok())
            .unwrap_or(default)
    };
    let spans = num("--spans", 1_000_000);
    let o = Opts {
        spans,
        clients: num("--clients", 8) as usize,
        small_only: args.iter().any(|a| a == "--small-only"),
        chunk: num("--chunk", 1_000_000).min(spans).max(1),
        fsync: arg("--fsync").unwrap_or_else(|| "always".into()),
        ids: num("--ids", 100) as usize,
        runs: num("--runs", 5) as usize,
        seed: num("--seed", 1),
    };
    let run_started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let targets: Vec<u64> = if o.small_only {
        vec![o.spans]
    } else {
        vec![o.spans, o.spans * 10]
    };
    let start_ns = now_ns() - 3_600_000_000_000;
    let mut sim = Gen::new(o.seed, o.spans * 10, start_ns);

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
    let stats = Arc::new(SendStats::default());
    let mut zstd = zstd::stream::write::Encoder::new(Counter::default(), 3).unwrap();
    let (mut sent, mut raw_bytes, mut requests) = (0u64, 0u64, 0u64);
    let (mut decode_ns, mut send_cpu, mut send_wall) = (0u64, 0f64, 0f64);
    let mut query_cpu = 0f64;
    let mut reference = Reference::default();
    let cpu_base = cpu_seconds(pid);
    let mut points: Vec<Point> = Vec::new();
    eprintln!(
        "traces bench: points at {} spans, {} clients, chunks of {} spans, fsync {}, server pid {pid}",
        targets
            .iter()
            .map(|t| fmt_int(*t))
            .collect::<Vec<_>>()
            .join(" and "),
        o.clients,
        fmt_int(o.chunk),
        o.fsync
    );
    for &target in &targets {
        while sent < target {
            let t = Instant::now();
            let chunk = sim.chunk(o.chunk.min(target - sent));
            let gen_s = t.elapsed().as_secs_f64();
            // Decode-only: the same bytes, one thread, its own CPU time.
            // Two passes, the faster one counts (the first one also pays for page faults).
            let chunk_decode_ns = best_of_two(&chunk.payloads, |b| {
                std::hint::black_box(ExportTraceServiceRequest::decode(b).unwrap());
            });
            decode_ns += chunk_decode_ns;
            // The reference costs beside it, on the same bytes.
            reference.validate_ns += best_of_two(&chunk.payloads, |b| {
                std::hint::black_box(pharos_otlp::view::validate(b)).unwrap();
            });
            reference.view_ns += best_of_two(&chunk.payloads, |b| {
                let view = pharos_otlp::view::TraceView::parse(b).unwrap();
                std::hint::black_box(view.spans.len());
            });
            let mut snappy = snap::raw::Encoder::new();
            reference.snappy_ns += best_of_two(&chunk.payloads, |b| {
                std::hint::black_box(snappy.compress_vec(b).unwrap());
            });
            reference.zstd_ns += best_of_two(&chunk.payloads, |b| {
                std::hint::black_box(zstd::bulk::compress(b, 3).unwrap());
            });
            for (bytes, _) in &chunk.payloads {
                zstd.write_all(bytes).unwrap();
            }
            sent += chunk.spans;
            raw_bytes += chunk.bytes;
            requests += chunk.payloads.len() as u64;
            let (n, nbytes, nreq) = (chunk.spans, chunk.bytes, chunk.payloads.len());
            let chunk = Arc::new(chunk);
            let cpu0 = cpu_seconds(pid);
            let wall = rt.block_on(send(&clients, chunk, stats.clone()));
            let cpu = cpu_seconds(pid) - cpu0;
            send_cpu += cpu;
            send_wall += wall;
            eprintln!(
                "  sent {} spans ({} requests, {:.0} B/span): generated in {gen_s:.1} s, decode-only {:.0} spans/CPU-s, sent in {wall:.1} s ({:.0} spans/s, server {:.0} spans/CPU-s), server RSS {:.0} MiB",
                fmt_int(sent),
                fmt_int(nreq as u64),
                nbytes as f64 / n as f64,
                n as f64 / (chunk_decode_ns as f64 / 1e9),
                n as f64 / wall,
                n as f64 / cpu,
                rss_mib(pid),
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
        let zstd_bytes = zstd.get_ref().0;
        let blocks = du(&server.process.data.join("blocks").join("traces"));
        let wal = du(&server.process.data.join("wal").join("traces"));
        eprintln!(
            "  force_flush took {flush_s:.2} s ({flush_answer}); blocks/traces {} B in {} files, wal/traces {} B in {} files",
            fmt_int(blocks.0),
            blocks.1,
            fmt_int(wal.0),
            wal.1
        );
        let acked = stats.acked_spans.load(Ordering::Relaxed);
        let q0 = cpu_seconds(pid);
        let (by_id, searches) = rt.block_on(async {
            let by_id = trace_by_id(&query, &sim.traces, o.ids, o.seed ^ target).await;
            let searches = searches(&query, start_ns, &sim, o.runs).await;
            (by_id, searches)
        });
        query_cpu += cpu_seconds(pid) - q0;
        points.push(Point {
            spans_sent: sent,
            acked,
            rejected: stats.rejected_spans.load(Ordering::Relaxed),
            failed: stats.failed_spans.load(Ordering::Relaxed),
            retries: stats.retries.load(Ordering::Relaxed),
            requests,
            raw_bytes,
            zstd_bytes,
            decode_rate: sent as f64 / (decode_ns as f64 / 1e9),
            reference: reference.clone(),
            ingest_rate: acked as f64 / ingest_cpu,
            send_rate: acked as f64 / send_cpu,
            send_wall_rate: acked as f64 / send_wall,
            flush_s,
            flush_answer,
            blocks,
            wal,
            rss_now: rss_mib(pid),
            rss_peak: peak_rss_mib(pid),
            by_id,
            searches,
        });
        eprintln!(
            "  point at {} spans measured ({:.0} s into the run)",
            fmt_int(sent),
            run_started.elapsed().as_secs_f64()
        );
    }
    if let Some(e) = stats.first_error.lock().as_ref() {
        eprintln!("first refusal or error from the server: {e}");
    }
    report(
        &o,
        &points,
        &sim,
        stats.first_error.lock().clone(),
        run_started.elapsed().as_secs_f64(),
    );
}

fn report(o: &Opts, points: &[Point], sim: &Gen, first_error: Option<String>, elapsed: f64) {
    let small = &points[0];
    let big = points.get(1);
    let cmd = {
        let mut c = "cargo bench -p pharos --bench traces".to_string();
        let mut extra = Vec::new();
        if o.spans != 1_000_000 {
            extra.push(format!("--spans {}", o.spans));
        }
        if o.clients != 8 {
            extra.push(format!("--clients {}", o.clients));
        }
        if o.small_only {
            extra.push("--small-only".into());
        }
        if o.fsync != "always" {
            extra.push(format!("--fsync {}", o.fsync));
        }
        if !extra.is_empty() {
            c.push_str(" -- ");
            c.push_str(&extra.join(" "));
        }
        c
    };
    println!();
    println!(
        "Command: `{cmd}` ({} clients, WAL fsync {}, chunks of {} spans; run took {:.0} s)",
        o.clients,
        o.fsync,
        fmt_int(o.chunk),
        elapsed
    );
    println!(
        "Data: {} traces, {:.1} spans/trace, {} requests, {:.0} B/span of raw OTLP protobuf; {:.2}% of traces with a payment error, {:.2}% with a span over 500 ms",
        fmt_int(sim.traces.len() as u64),
        points.last().unwrap().spans_sent as f64 / sim.traces.len() as f64,
        fmt_int(points.last().unwrap().requests),
        points.last().unwrap().raw_bytes as f64 / points.last().unwrap().spans_sent as f64,
        sim.payment_error_traces as f64 * 100.0 / sim.traces.len() as f64,
        sim.slow_traces as f64 * 100.0 / sim.traces.len() as f64,
    );
    println!();
    let head_small = label(o.spans);
    let head_big = label(o.spans * 10);
    println!("| figure | {head_small} spans | {head_big} spans | target | result |");
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
    row(
        "spans sent / accepted",
        &|p| format!("{} / {}", fmt_int(p.spans_sent), fmt_int(p.acked)),
        "",
        String::new(),
    );
    row(
        "spans refused (partial_success) / failed after retries / retried requests",
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
    row(
        "ingest: spans/s acked (wall clock of the sends)",
        &|p| fmt_int(p.send_wall_rate as u64),
        "",
        String::new(),
    );
    row(
        "ingest: server spans per CPU-second, sends only",
        &|p| fmt_int(p.send_rate as u64),
        "",
        String::new(),
    );
    row(
        "ingest: server spans per CPU-second, incl. background and flush",
        &|p| fmt_int(p.ingest_rate as u64),
        "",
        String::new(),
    );
    row(
        "decode-only: spans per CPU-second (1 thread, its CPU time, best of 2 passes)",
        &|p| fmt_int(p.decode_rate as u64),
        "",
        String::new(),
    );
    let rate = |p: &Point, ns: u64| p.spans_sent as f64 / (ns as f64 / 1e9);
    row(
        "reference: zero-copy check of every field as prost checks it, nothing kept or allocated (`pharos_otlp::view::validate`, 1 thread): spans per CPU-second",
        &|p| fmt_int(rate(p, p.reference.validate_ns) as u64),
        "",
        String::new(),
    );
    row(
        "reference: `pharos_otlp::view::TraceView::parse` (the check, keeping each span's ids, name, kind, times and status): spans per CPU-second",
        &|p| fmt_int(rate(p, p.reference.view_ns) as u64),
        "",
        String::new(),
    );
    row(
        "reference: snappy of each payload, as the WAL compresses a record: spans per CPU-second",
        &|p| fmt_int(rate(p, p.reference.snappy_ns) as u64),
        "",
        String::new(),
    );
    row(
        "reference: zstd -3 of each payload: spans per CPU-second",
        &|p| fmt_int(rate(p, p.reference.zstd_ns) as u64),
        "",
        String::new(),
    );
    row(
        "**ingest / decode-only** (incl. background and flush)",
        &|p| format!("{:.3}", p.ingest_rate / p.decode_rate),
        "≥ 0.5",
        both(&|p| p.ingest_rate / p.decode_rate >= 0.5),
    );
    row(
        "server RSS now / peak, MiB",
        &|p| format!("{:.0} / {:.0}", p.rss_now, p.rss_peak),
        "",
        String::new(),
    );
    row(
        "force_flush time, s",
        &|p| format!("{:.2}", p.flush_s),
        "",
        String::new(),
    );
    row(
        "raw OTLP protobuf, bytes/span",
        &|p| format!("{:.1}", p.raw_bytes as f64 / p.spans_sent as f64),
        "",
        String::new(),
    );
    row(
        "zstd -3 of the raw payloads, bytes/span",
        &|p| format!("{:.1}", p.zstd_bytes as f64 / p.spans_sent as f64),
        "",
        String::new(),
    );
    row(
        "disk: blocks/traces, bytes/span (files)",
        &|p| {
            format!(
                "{:.1} ({})",
                p.blocks.0 as f64 / p.acked.max(1) as f64,
                p.blocks.1
            )
        },
        "",
        String::new(),
    );
    row(
        "disk: wal/traces, bytes/span (files)",
        &|p| {
            format!(
                "{:.1} ({})",
                p.wal.0 as f64 / p.acked.max(1) as f64,
                p.wal.1
            )
        },
        "",
        String::new(),
    );
    let disk = |p: &Point| (p.blocks.0 + p.wal.0) as f64 / p.acked.max(1) as f64;
    row(
        "disk: total, bytes/span",
        &|p| format!("{:.1}", disk(p)),
        "",
        String::new(),
    );
    row(
        "**disk / zstd**",
        &|p| {
            format!(
                "{:.2}",
                disk(p) / (p.zstd_bytes as f64 / p.spans_sent as f64)
            )
        },
        "≤ 0.5",
        both(&|p| disk(p) / (p.zstd_bytes as f64 / p.spans_sent as f64) <= 0.5),
    );
    row(
        &format!("Tempo trace-by-id, median / p99 ms ({} ids)", o.ids),
        &|p| {
            format!(
                "{:.2} / {:.2}",
                quantile(&p.by_id.tempo, 0.5),
                quantile(&p.by_id.tempo, 0.99)
            )
        },
        "",
        String::new(),
    );
    row(
        "Jaeger trace-by-id, median / p99 ms",
        &|p| {
            format!(
                "{:.2} / {:.2}",
                quantile(&p.by_id.jaeger, 0.5),
                quantile(&p.by_id.jaeger, 0.99)
            )
        },
        "",
        String::new(),
    );
    row(
        "trace-by-id answers: not found / incomplete",
        &|p| format!("{} / {}", p.by_id.missing, p.by_id.incomplete),
        "0 / 0",
        both(&|p| p.by_id.missing + p.by_id.incomplete == 0),
    );
    let ratio = |f: &dyn Fn(&Point) -> f64| big.map(|b| f(b) / f(small));
    let tempo_ratio = ratio(&|p| quantile(&p.by_id.tempo, 0.5));
    let jaeger_ratio = ratio(&|p| quantile(&p.by_id.jaeger, 0.5));
    println!(
        "| **trace-by-id median, {head_big} / {head_small}** (Tempo; Jaeger) | | {} | ≤ 2 | {} |",
        match (tempo_ratio, jaeger_ratio) {
            (Some(t), Some(j)) => format!("{t:.2}; {j:.2}"),
            _ => "–".into(),
        },
        tempo_ratio
            .map(|r| pass(r <= 2.0))
            .unwrap_or_else(|| "not measured (--small-only)".into())
    );
    for (k, s) in small.searches.iter().enumerate() {
        let cell = |p: &Point| {
            let s = &p.searches[k];
            let matching = s
                .matching
                .map(|m| format!(" of {}", fmt_int(m)))
                .unwrap_or_default();
            let runs = if s.runs < o.runs {
                format!(
                    ", {} timed run{}",
                    s.runs,
                    if s.runs == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            };
            format!("{:.1} ({} hits{matching}{runs})", s.median_ms, s.hits)
        };
        row(
            &format!("{}, median ms (hits of matching traces sent)", s.name),
            &cell,
            "",
            String::new(),
        );
    }
    let last = points.last().unwrap();
    println!();
    println!(
        "Notes: requests carry one ResourceSpans of up to {BATCH_SPANS} spans ({:.0} spans on average); the rare-attribute search looks for user `{}`. \
         force_flush answered at {} spans: {}",
        last.spans_sent as f64 / last.requests as f64,
        sim.probe_user.as_deref().unwrap_or("-"),
        fmt_int(last.spans_sent),
        last.flush_answer
    );
    if let Some(e) = first_error {
        println!("First refusal or error from the server: {e}");
    }
}
