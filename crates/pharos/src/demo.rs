//! `pharos demo`: six simulated services calling each other, exporting
//! traces, RED metrics and logs over real OTLP/gRPC to the server itself.
//!
//! The services: `api-gateway` (the front door), `auth`, `orders`,
//! `inventory`, `payment` and `postgres` (an instrumented database proxy).
//! Each simulated request is one trace with propagated context: a client
//! span in the caller and a server span in the callee for every hop. Every
//! server span adds to the `http.server.request.duration` histogram of its
//! service and writes a log line carrying the trace and span ids. Every
//! `incident_every`, `payment` turns slow and fails a third of its calls for
//! a minute, and the failure shows in all three signals.

use crate::server::Bound;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The workload's settings.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Requests per second at the front door.
    pub rate: f64,
    /// Time between the starts of payment incidents; each lasts a minute.
    pub incident_every: Duration,
}

const SERVICES: [&str; 6] = [
    "api-gateway",
    "auth",
    "orders",
    "inventory",
    "payment",
    "postgres",
];
const INCIDENT_LENGTH: Duration = Duration::from_secs(60);
const METRICS_EVERY: Duration = Duration::from_secs(10);
/// The OpenTelemetry semantic conventions' advice for `http.server.request.duration`.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Prints where to look and what to try.
pub fn print_banner(bound: &Bound) {
    let q = format!("http://{}", bound.query);
    println!(
        r#"
Pharos demo: six services (api-gateway, auth, orders, inventory, payment, postgres) are sending
traces, metrics and logs over OTLP/gRPC to {grpc}. Every few minutes payment turns slow and fails.

  Web UI / index       {q}/
  Prometheus API       {q}/api/v1/query?query=http_server_request_duration_seconds_count
  Tempo API            {q}/api/traces/<trace id>
  Jaeger API           {q}/jaeger/api/services
  Loki API             {q}/loki/api/v1/query_range?query={{service_name="payment"}}
  Pharos' own metrics  {q}/metrics

Try:
  curl -s '{q}/api/v1/query' --data-urlencode 'query=http_server_request_duration_seconds_count{{job="shop/payment"}}'
  curl -s '{q}/api/v1/query' --data-urlencode 'query=sum by (job) (rate(http_server_request_duration_seconds_count[1m]))'
  curl -s '{q}/api/v1/query' --data-urlencode 'query=histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{{job="shop/payment"}}[1m])))'
  curl -s '{q}/api/v1/series' --data-urlencode 'match[]=target_info'
  curl -s '{q}/jaeger/api/traces?service=api-gateway&limit=1'
  curl -s '{q}/loki/api/v1/query_range' --data-urlencode 'query={{service_name="payment"}} |= "timeout"'
  curl -s '{q}/loki/api/v1/query' --data-urlencode 'query=sum by (service_name, detected_level) (count_over_time({{service_name=~".+"}}[5m]))'
  curl -s '{q}/api/traces/'$(curl -s '{q}/jaeger/api/traces?service=payment&limit=1' | grep -o '"traceID":"[0-9a-f]*"' | head -1 | cut -d'"' -f4)

Grafana data sources: Prometheus {q}  Loki {q}  Tempo {q}  Jaeger {q}/jaeger
Ctrl-C stops it.
"#,
        grpc = bound
            .otlp_grpc
            .first()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
}

/// Runs the workload until `shutdown` turns true.
pub async fn run(
    w: Workload,
    grpc: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let endpoint = format!("http://{grpc}");
    let channel = tonic::transport::Endpoint::from_shared(endpoint)?.connect_lazy();
    let mut traces = TraceServiceClient::new(channel.clone());
    let mut metrics = MetricsServiceClient::new(channel.clone());
    let mut logs = LogsServiceClient::new(channel);
    let mut sim = Simulation::new(w.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_metrics = std::time::Instant::now();
    let mut exported_spans = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|v| *v) => return Ok(()),
        }
        let batch = sim.tick();
        exported_spans += batch.span_count as u64;
        if let Err(e) = traces.export(batch.traces).await {
            tracing::warn!(error = %e, "demo: exporting traces failed");
        }
        if let Err(e) = logs.export(batch.logs).await {
            tracing::warn!(error = %e, "demo: exporting logs failed");
        }
        if last_metrics.elapsed() >= METRICS_EVERY {
            last_metrics = std::time::Instant::now();
            if let Err(e) = metrics.export(sim.metrics_request()).await {
                tracing::warn!(error = %e, "demo: exporting metrics failed");
            }
            tracing::info!(
                spans = exported_spans,
                incident = sim.in_incident(),
                "demo workload running"
            );
        }
    }
}

/// One second's worth of telemetry.
pub struct Batch {
    pub traces: ExportTraceServiceRequest,
    pub logs: ExportLogsServiceRequest,
    pub span_count: usize,
}

/// A cumulative histogram series of one service.
#[derive(Default, Clone)]
struct HistState {
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// The simulated system and its cumulative metric state.
pub struct Simulation {
    w: Workload,
    rng: StdRng,
    started: SystemTime,
    start_ns: u64,
    spans: BTreeMap<&'static str, Vec<Span>>,
    logs: BTreeMap<&'static str, Vec<LogRecord>>,
    /// (service, method, route, status) → histogram.
    server_hist: BTreeMap<(&'static str, &'static str, &'static str, u16), HistState>,
    orders_created: u64,
    carry: f64,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn kv(key: &str, v: impl Into<Val>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(v.into().0),
        }),
        ..Default::default()
    }
}

struct Val(Value);
impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Val(Value::StringValue(s.into()))
    }
}
impl From<String> for Val {
    fn from(s: String) -> Self {
        Val(Value::StringValue(s))
    }
}
impl From<i64> for Val {
    fn from(i: i64) -> Self {
        Val(Value::IntValue(i))
    }
}

fn resource(service: &str) -> Resource {
    let index = SERVICES.iter().position(|s| *s == service).unwrap_or(0);
    Resource {
        attributes: vec![
            kv("service.name", service),
            kv("service.namespace", "shop"),
            kv("service.instance.id", format!("{service}-{index}")),
            kv("service.version", "1.4.2"),
            kv("deployment.environment.name", "demo"),
            kv("telemetry.sdk.name", "pharos-demo"),
            kv("telemetry.sdk.language", "rust"),
        ],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "pharos-demo".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// A hop in a simulated request: who serves it, what it is called, what it calls.
struct Hop {
    service: &'static str,
    method: &'static str,
    route: &'static str,
    calls: Vec<Hop>,
}

fn hop(service: &'static str, method: &'static str, route: &'static str, calls: Vec<Hop>) -> Hop {
    Hop {
        service,
        method,
        route,
        calls,
    }
}

fn db(statement: &'static str) -> Hop {
    hop("postgres", "QUERY", statement, vec![])
}

/// What a hop produced: when it ended and its HTTP status.
struct Outcome {
    end_ns: u64,
    status: u16,
}

impl Simulation {
    /// Creates the simulation; its clock starts now.
    pub fn new(w: Workload) -> Self {
        Simulation {
            w,
            rng: StdRng::seed_from_u64(now_ns()),
            started: SystemTime::now(),
            start_ns: now_ns(),
            spans: BTreeMap::new(),
            logs: BTreeMap::new(),
            server_hist: BTreeMap::new(),
            orders_created: 0,
            carry: 0.0,
        }
    }

    /// Returns whether payment is in its incident window now.
    pub fn in_incident(&self) -> bool {
        let every = self.w.incident_every.as_secs().max(1);
        let elapsed = self.started.elapsed().unwrap_or_default().as_secs();
        // The first incident starts one period after the demo does.
        elapsed >= every && elapsed % every < INCIDENT_LENGTH.as_secs()
    }

    fn request_tree(&mut self) -> Hop {
        match self.rng.random_range(0..10) {
            0..=4 => hop(
                "api-gateway",
                "GET",
                "/api/products",
                vec![hop(
                    "inventory",
                    "GET",
                    "/inventory/items",
                    vec![db("SELECT * FROM products")],
                )],
            ),
            5..=7 => hop(
                "api-gateway",
                "GET",
                "/api/orders/{id}",
                vec![
                    hop("auth", "POST", "/auth/verify", vec![]),
                    hop(
                        "orders",
                        "GET",
                        "/orders/{id}",
                        vec![db("SELECT * FROM orders WHERE id = $1")],
                    ),
                ],
            ),
            _ => hop(
                "api-gateway",
                "POST",
                "/api/checkout",
                vec![
                    hop("auth", "POST", "/auth/verify", vec![]),
                    hop(
                        "orders",
                        "POST",
                        "/orders",
                        vec![
                            hop(
                                "inventory",
                                "POST",
                                "/inventory/reserve",
                                vec![db("UPDATE stock SET reserved = reserved + $1")],
                            ),
                            hop(
                                "payment",
                                "POST",
                                "/payments/charge",
                                vec![db("INSERT INTO payments VALUES ($1, $2)")],
                            ),
                            db("INSERT INTO orders VALUES ($1, $2, $3)"),
                        ],
                    ),
                ],
            ),
        }
    }

    /// Simulates one second of traffic.
    pub fn tick(&mut self) -> Batch {
        self.carry += self.w.rate.max(0.0);
        let n = self.carry.floor() as usize;
        self.carry -= n as f64;
        let now = now_ns();
        for i in 0..n {
            let tree = self.request_tree();
            let mut trace_id = [0u8; 16];
            self.rng.fill(&mut trace_id);
            // Spread requests over the past second.
            let start =
                now.saturating_sub(3_000_000_000) + (i as u64 * 1_000_000_000 / n.max(1) as u64);
            self.serve(&tree, &trace_id, None, start);
        }
        let span_count = self.spans.values().map(Vec::len).sum();
        let traces = ExportTraceServiceRequest {
            resource_spans: std::mem::take(&mut self.spans)
                .into_iter()
                .map(|(service, spans)| ResourceSpans {
                    resource: Some(resource(service)),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(scope()),
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        };
        let logs = ExportLogsServiceRequest {
            resource_logs: std::mem::take(&mut self.logs)
                .into_iter()
                .map(|(service, log_records)| ResourceLogs {
                    resource: Some(resource(service)),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(scope()),
                        log_records,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        };
        Batch {
            traces,
            logs,
            span_count,
        }
    }

    fn span_id(&mut self) -> [u8; 8] {
        let mut id = [0u8; 8];
        self.rng.fill(&mut id);
        id[0] |= 1;
        id
    }

    /// Simulates `h` served from `start`, as a child of `parent` (a client span), recording spans, logs and metrics.
    fn serve(
        &mut self,
        h: &Hop,
        trace_id: &[u8; 16],
        parent: Option<[u8; 8]>,
        start: u64,
    ) -> Outcome {
        let server_id = self.span_id();
        let incident = h.service == "payment" && self.in_incident();
        let base_ms: f64 = match h.service {
            "postgres" => self.rng.random_range(0.5..4.0),
            "auth" => self.rng.random_range(1.0..6.0),
            "payment" => self.rng.random_range(40.0..120.0),
            _ => self.rng.random_range(2.0..12.0),
        };
        let self_ms = if incident {
            base_ms * self.rng.random_range(8.0..25.0)
        } else {
            base_ms
        };
        let mut cursor = start + (self_ms * 0.3 * 1e6) as u64;
        let mut status = if incident && self.rng.random_bool(0.35) {
            503
        } else {
            200
        };
        for call in &h.calls {
            let client_id = self.span_id();
            let client_start = cursor + 100_000;
            let out = self.serve(call, trace_id, Some(client_id), client_start + 150_000);
            let client_end = out.end_ns + 150_000;
            self.push_client_span(
                h.service,
                call,
                trace_id,
                server_id,
                client_id,
                client_start,
                client_end,
                out.status,
            );
            if out.status >= 500 {
                status = 502;
            }
            cursor = client_end;
            if status >= 500 {
                break;
            }
        }
        let end = cursor + (self_ms * 0.7 * 1e6) as u64;
        self.push_server_span(h, trace_id, server_id, parent, start, end, status, incident);
        if h.service == "orders" && h.method == "POST" && status < 400 {
            self.orders_created += 1;
        }
        Outcome {
            end_ns: end,
            status,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_client_span(
        &mut self,
        caller: &'static str,
        call: &Hop,
        trace_id: &[u8; 16],
        parent: [u8; 8],
        id: [u8; 8],
        start: u64,
        end: u64,
        status: u16,
    ) {
        let (name, attributes) = if call.service == "postgres" {
            let op = call.route.split_whitespace().next().unwrap_or("QUERY");
            (
                format!("{op} shop"),
                vec![
                    kv("db.system.name", "postgresql"),
                    kv("db.namespace", "shop"),
                    kv("db.operation.name", op),
                    kv("db.query.text", call.route),
                    kv("server.address", "postgres"),
                    kv("server.port", 5432),
                ],
            )
        } else {
            (
                call.method.to_string(),
                vec![
                    kv("http.request.method", call.method),
                    kv(
                        "url.full",
                        format!(
                            "http://{}:8080{}",
                            call.service,
                            call.route.replace("{id}", "1042")
                        ),
                    ),
                    kv("server.address", call.service),
                    kv("server.port", 8080),
                    kv("http.response.status_code", i64::from(status)),
                ],
            )
        };
        let span = Span {
            trace_id: trace_id.to_vec(),
            span_id: id.to_vec(),
            parent_span_id: parent.to_vec(),
            name,
            kind: SpanKind::Client as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            status: (status >= 500).then(|| Status {
                code: StatusCode::Error as i32,
                message: String::new(),
            }),
            ..Default::default()
        };
        self.spans.entry(caller).or_default().push(span);
    }

    #[allow(clippy::too_many_arguments)]
    fn push_server_span(
        &mut self,
        h: &Hop,
        trace_id: &[u8; 16],
        id: [u8; 8],
        parent: Option<[u8; 8]>,
        start: u64,
        end: u64,
        status: u16,
        incident: bool,
    ) {
        let failed = status >= 500;
        let (name, attributes) = if h.service == "postgres" {
            let op = h.route.split_whitespace().next().unwrap_or("QUERY");
            (
                format!("{op} shop"),
                vec![
                    kv("db.system.name", "postgresql"),
                    kv("db.query.text", h.route),
                ],
            )
        } else {
            (
                format!("{} {}", h.method, h.route),
                vec![
                    kv("http.request.method", h.method),
                    kv("http.route", h.route),
                    kv("url.path", h.route.replace("{id}", "1042")),
                    kv("http.response.status_code", i64::from(status)),
                ],
            )
        };
        let message = if failed && incident {
            "payment provider timeout"
        } else {
            ""
        };
        let span = Span {
            trace_id: trace_id.to_vec(),
            span_id: id.to_vec(),
            parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: name.clone(),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            status: failed.then(|| Status {
                code: StatusCode::Error as i32,
                message: message.into(),
            }),
            ..Default::default()
        };
        self.spans.entry(h.service).or_default().push(span);

        let seconds = (end - start) as f64 / 1e9;
        let key = (h.service, h.method, h.route, status);
        let hist = self.server_hist.entry(key).or_default();
        let bucket = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        hist.counts[bucket] += 1;
        hist.sum += seconds;
        hist.count += 1;

        let (severity, text, line) = if failed && incident {
            (
                17,
                "ERROR",
                format!(
                    "payment provider timeout after {:.0}ms; charge failed",
                    seconds * 1e3
                ),
            )
        } else if failed {
            (
                17,
                "ERROR",
                format!("{name} failed: upstream returned an error"),
            )
        } else {
            let detail = match h.service {
                "auth" => "token verified".to_string(),
                "payment" => format!(
                    "charged {}.{:02} EUR",
                    self.rng.random_range(5..200),
                    self.rng.random_range(0..100)
                ),
                "orders" if h.method == "POST" => {
                    format!("order o-{} created", self.rng.random_range(1000..99999))
                }
                "inventory" if h.method == "POST" => {
                    format!("reserved {} items", self.rng.random_range(1..5))
                }
                _ => "ok".to_string(),
            };
            (
                9,
                "INFO",
                format!("{name} {status} in {:.1}ms: {detail}", seconds * 1e3),
            )
        };
        let record = LogRecord {
            time_unix_nano: end,
            observed_time_unix_nano: end,
            severity_number: severity,
            severity_text: text.into(),
            body: Some(AnyValue {
                value: Some(Value::StringValue(line)),
            }),
            attributes: vec![kv("http.route", h.route)],
            trace_id: trace_id.to_vec(),
            span_id: id.to_vec(),
            flags: 1,
            ..Default::default()
        };
        self.logs.entry(h.service).or_default().push(record);
    }

    /// The cumulative metrics of every service, as of now.
    pub fn metrics_request(&self) -> ExportMetricsServiceRequest {
        let now = now_ns();
        let mut per_service: BTreeMap<&str, Vec<HistogramDataPoint>> = BTreeMap::new();
        for ((service, method, route, status), h) in &self.server_hist {
            let mut cumulative = 0;
            let bucket_counts = h.counts.iter().map(|c| {
                cumulative += c;
                *c
            });
            let bucket_counts: Vec<u64> = bucket_counts.collect();
            debug_assert_eq!(cumulative, h.count);
            per_service
                .entry(service)
                .or_default()
                .push(HistogramDataPoint {
                    attributes: vec![
                        kv("http.request.method", *method),
                        kv("http.route", *route),
                        kv("http.response.status_code", i64::from(*status)),
                    ],
                    start_time_unix_nano: self.start_ns,
                    time_unix_nano: now,
                    count: h.count,
                    sum: Some(h.sum),
                    bucket_counts,
                    explicit_bounds: BUCKETS.to_vec(),
                    ..Default::default()
                });
        }
        let resource_metrics = SERVICES
            .iter()
            .filter_map(|service| {
                let points = per_service.remove(service)?;
                let mut metrics = vec![Metric {
                    name: "http.server.request.duration".into(),
                    description: "Duration of HTTP server requests.".into(),
                    unit: "s".into(),
                    data: Some(Data::Histogram(Histogram {
                        data_points: points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    })),
                    ..Default::default()
                }];
                if *service == "orders" {
                    metrics.push(Metric {
                        name: "shop.orders.created".into(),
                        description: "Orders created.".into(),
                        unit: "{order}".into(),
                        data: Some(Data::Sum(Sum {
                            data_points: vec![NumberDataPoint {
                                start_time_unix_nano: self.start_ns,
                                time_unix_nano: now,
                                value: Some(number_data_point::Value::AsInt(
                                    self.orders_created as i64,
                                )),
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    });
                }
                Some(ResourceMetrics {
                    resource: Some(resource(service)),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(scope()),
                        metrics,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
            })
            .collect();
        ExportMetricsServiceRequest { resource_metrics }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(incident_every: u64) -> Simulation {
        Simulation::new(Workload {
            rate: 50.0,
            incident_every: Duration::from_secs(incident_every),
        })
    }

    #[test]
    fn traces_are_connected_across_services() {
        let mut s = sim(300);
        let batch = s.tick();
        assert!(batch.span_count >= 50 * 3, "{}", batch.span_count);
        let spans: Vec<&Span> = batch
            .traces
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        let ids: std::collections::HashSet<_> = spans
            .iter()
            .map(|s| (s.trace_id.clone(), s.span_id.clone()))
            .collect();
        for span in &spans {
            if !span.parent_span_id.is_empty() {
                assert!(
                    ids.contains(&(span.trace_id.clone(), span.parent_span_id.clone())),
                    "orphan span {}",
                    span.name
                );
            }
            assert!(span.end_time_unix_nano > span.start_time_unix_nano);
        }
        assert!(batch.traces.resource_spans.len() >= 4);
        // Every server span logged one line with its ids.
        let log_count: usize = batch
            .logs
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        let server_spans = spans
            .iter()
            .filter(|s| s.kind == SpanKind::Server as i32)
            .count();
        assert_eq!(log_count, server_spans);
    }

    #[test]
    fn histograms_are_cumulative_and_consistent() {
        let mut s = sim(300);
        s.tick();
        let first = s.metrics_request();
        s.tick();
        let second = s.metrics_request();
        let total = |r: &ExportMetricsServiceRequest| -> u64 {
            r.resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .filter_map(|m| match &m.data {
                    Some(Data::Histogram(h)) => Some(
                        h.data_points
                            .iter()
                            .map(|p| {
                                assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
                                assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
                                p.count
                            })
                            .sum::<u64>(),
                    ),
                    _ => None,
                })
                .sum()
        };
        assert!(total(&second) > total(&first));
    }

    #[test]
    fn incidents_make_payment_fail() {
        let mut s = sim(1);
        // Pretend the demo started two seconds ago so the incident window is open.
        s.started = SystemTime::now() - Duration::from_secs(2);
        assert!(s.in_incident());
        let mut errors = 0;
        for _ in 0..5 {
            let b = s.tick();
            errors += b
                .traces
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .filter(|s| {
                    s.name == "POST /payments/charge"
                        && s.status.as_ref().is_some_and(|st| st.code == 2)
                })
                .count();
        }
        assert!(errors > 0);
    }
}
