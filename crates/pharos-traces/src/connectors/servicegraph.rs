//! The service graph, as Tempo's metrics-generator and the Collector's `servicegraph`
//! connector build it: a client (or producer) span and the server (or consumer) span
//! whose parent it is form one request between two services, an edge.
//!
//! The two spans may arrive in either order and in different requests, so the first one
//! waits in a store of unpaired edges keyed by trace id and the client's span id (the
//! server's parent id). An edge is recorded when its other half arrives; one still
//! unpaired after `wait` expires: a client span with a peer attribute (`peer.service`,
//! `db.name`, `db.system`) becomes an edge to that virtual node (`connection_type`
//! `database` for the database attributes, `virtual_node` otherwise), a root server span
//! an edge from the virtual client `user`; anything else counts as unpaired. While the
//! store holds `max_items` edges, new ones are dropped and counted.
//!
//! Metrics (labels `client`, `server`, `connection_type`; the type is empty for a direct
//! request, `messaging_system` for producer/consumer pairs):
//! `traces_service_graph_request_total`, `traces_service_graph_request_failed_total`
//! (either side's status is an error), `traces_service_graph_request_server_seconds` and
//! `traces_service_graph_request_client_seconds` (histograms of each side's duration, for
//! the sides that were seen), `traces_service_graph_unpaired_spans_total`,
//! `traces_service_graph_dropped_spans_total`, and
//! `traces_service_graph_expired_edges_total` (unlabelled: every edge that expired).

use super::{Counter, Exemplar, Histogram, LabelSets, Resources, attributes, id, value_text};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use pharos_model::trace_batch::TraceBatch;
use pharos_model::view::KeyValueView;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LABELS: [&str; 3] = ["client", "server", "connection_type"];

/// `connectors.servicegraph`, as the binary hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceGraphConfig {
    /// The most unpaired edges kept waiting for their other half.
    pub max_items: usize,
    /// How long an unpaired edge waits.
    pub wait: Duration,
    /// Upper bounds of the latency buckets, in seconds, ascending.
    pub buckets: Vec<f64>,
}

impl Default for ServiceGraphConfig {
    fn default() -> Self {
        ServiceGraphConfig {
            max_items: 10_000,
            wait: Duration::from_secs(10),
            buckets: super::default_servicegraph_buckets(),
        }
    }
}

/// One side of an edge.
#[derive(Debug, Clone)]
struct Side {
    service: Arc<str>,
    seconds: f64,
    failed: bool,
    span_id: [u8; 8],
    end_unix_nano: u64,
}

/// An edge waiting for its other half.
#[derive(Debug)]
struct Edge {
    client: Option<Side>,
    server: Option<Side>,
    messaging: bool,
    /// The client's virtual peer and whether it is a database.
    peer: Option<(String, bool)>,
    /// The server span has no parent: the request came from outside.
    root: bool,
    expires: Instant,
    trace_id: [u8; 16],
}

#[derive(Debug, Clone)]
struct Series {
    total: Counter,
    failed: Counter,
    server: Histogram,
    client: Histogram,
}

/// Key: trace id (16 bytes) then the client's span id (8 bytes; zeros for a server span
/// without a parent, which no client span id can be).
type Key = [u8; 24];
/// Edges waiting to be paired and the cumulative graph metrics.
#[derive(Debug)]
pub struct ServiceGraph {
    config: ServiceGraphConfig,
    pending: crate::store::FastMap<Key, Edge>,
    /// Expiry order: (deadline, key); an entry whose edge is gone or newer is skipped.
    queue: VecDeque<(Instant, Key)>,
    /// Label values client, server, connection_type; `None` for an empty one.
    series: LabelSets<Series>,
    unpaired: LabelSets<Counter>,
    dropped: LabelSets<Counter>,
    expired: u64,
}

impl ServiceGraph {
    pub fn new(config: ServiceGraphConfig) -> Self {
        ServiceGraph {
            config,
            pending: Default::default(),
            queue: VecDeque::new(),
            series: LabelSets::default(),
            unpaired: LabelSets::default(),
            dropped: LabelSets::default(),
            expired: 0,
        }
    }

    /// Pairs the client, producer, server and consumer spans of `req`, after expiring
    /// the edges whose wait ended by `now`.
    pub fn observe(&mut self, req: &TraceBatch, now: Instant) {
        self.expire(now);
        let resources = Resources::of(req);
        let services: Vec<Arc<str>> = resources.services.iter().map(|s| Arc::from(&**s)).collect();
        for i in 0..req.span_count() {
            let span = req.span(i);
            let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
            let client = match kind {
                SpanKind::Client | SpanKind::Producer => true,
                SpanKind::Server | SpanKind::Consumer => false,
                _ => continue,
            };
            let side = Side {
                service: Arc::clone(&services[req.scope_resource(span.scope)]),
                seconds: span
                    .end_time_unix_nano
                    .saturating_sub(span.start_time_unix_nano) as f64
                    / 1e9,
                failed: span.status_code == StatusCode::Error as i32,
                span_id: id(span.span_id),
                end_unix_nano: span.end_time_unix_nano,
            };
            let mut key = [0; 24];
            key[..16].copy_from_slice(&id::<16>(span.trace_id));
            key[16..].copy_from_slice(&id::<8>(if client {
                span.span_id
            } else {
                span.parent_span_id
            }));
            let messaging = matches!(kind, SpanKind::Producer | SpanKind::Consumer);
            // Read only when the edge waits for its server (a paired or dropped edge
            // never uses it).
            let peer = || {
                if client {
                    peer(req.span_attributes_where(i, |k| PEER_KEYS.contains(&k)))
                } else {
                    None
                }
            };
            let root = !client && span.parent_span_id.is_empty();
            self.upsert(key, client, side, messaging, peer, root, now);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn upsert(
        &mut self,
        key: Key,
        client: bool,
        side: Side,
        messaging: bool,
        peer: impl FnOnce() -> Option<(String, bool)>,
        root: bool,
        now: Instant,
    ) {
        use std::collections::hash_map::Entry;
        // One lookup, whichever way the edge goes.
        let full = self.pending.len() >= self.config.max_items;
        let paired = match self.pending.entry(key) {
            Entry::Occupied(mut o) => {
                let edge = o.get_mut();
                if client {
                    edge.client = Some(side);
                    edge.peer = if edge.server.is_some() { None } else { peer() };
                } else {
                    edge.server = Some(side);
                }
                edge.messaging |= messaging;
                (edge.client.is_some() && edge.server.is_some()).then(|| o.remove())
            }
            Entry::Vacant(_) if full => {
                let (c, s) = if client {
                    (&*side.service, "")
                } else {
                    ("", &*side.service)
                };
                let t = connection_type(messaging);
                self.dropped
                    .get_or_insert_with(&[label(c), label(s), label(t)], Counter::default)
                    .add(1, None);
                None
            }
            Entry::Vacant(v) => {
                let expires = now + self.config.wait;
                let (client_side, server_side) = if client {
                    (Some(side), None)
                } else {
                    (None, Some(side))
                };
                v.insert(Edge {
                    client: client_side,
                    server: server_side,
                    messaging,
                    peer: peer(),
                    root,
                    expires,
                    trace_id: id(&key[..16]),
                });
                self.queue.push_back((expires, key));
                None
            }
        };
        if let Some(edge) = paired {
            self.complete(edge, None);
        }
    }

    /// Records a paired edge; `virtual_client` or the peer stands in for a missing side.
    fn complete(&mut self, edge: Edge, virtual_client: Option<&str>) {
        let client = edge
            .client
            .as_ref()
            .map(|s| &*s.service)
            .or(virtual_client)
            .unwrap_or_default();
        let server = edge
            .server
            .as_ref()
            .map(|s| &*s.service)
            .or_else(|| edge.peer.as_ref().map(|(p, _)| p.as_str()))
            .unwrap_or_default();
        let virtual_node = edge.client.is_none() || edge.server.is_none();
        let ctype = if virtual_node {
            match &edge.peer {
                Some((_, true)) if edge.server.is_none() => "database",
                _ => "virtual_node",
            }
        } else {
            connection_type(edge.messaging)
        };

        let failed = edge.client.as_ref().is_some_and(|s| s.failed)
            || edge.server.as_ref().is_some_and(|s| s.failed);
        let trace_id = edge.trace_id;
        let exemplar_side = edge.server.as_ref().or(edge.client.as_ref());
        let exemplar = |value: f64, side: &Side| Exemplar {
            trace_id,
            span_id: side.span_id,
            value,
            time_unix_nano: side.end_unix_nano,
        };
        let bounds = &self.config.buckets;
        let series =
            self.series
                .get_or_insert_with(&[label(client), label(server), label(ctype)], || Series {
                    total: Counter::default(),
                    failed: Counter::default(),
                    server: Histogram::new(bounds),
                    client: Histogram::new(bounds),
                });
        let ex = exemplar_side.map(|s| exemplar(1.0, s));
        series.total.add(1, ex.clone());
        if failed {
            series.failed.add(1, ex);
        }
        if let Some(s) = &edge.server {
            series
                .server
                .observe(bounds, s.seconds, Some(exemplar(s.seconds, s)));
        }
        if let Some(c) = &edge.client {
            series
                .client
                .observe(bounds, c.seconds, Some(exemplar(c.seconds, c)));
        }
    }

    /// Expires the edges whose wait ended by `now` (see the module doc).
    pub fn expire(&mut self, now: Instant) {
        while let Some((deadline, _)) = self.queue.front() {
            if *deadline > now {
                break;
            }
            let (deadline, key) = self.queue.pop_front().expect("front exists");
            if self.pending.get(&key).is_none_or(|e| e.expires != deadline) {
                continue;
            }
            let edge = self.pending.remove(&key).expect("just found");
            self.expired += 1;
            if edge.client.is_none() && edge.root {
                self.complete(edge, Some("user"));
            } else if edge.server.is_none() && edge.peer.is_some() {
                self.complete(edge, None);
            } else {
                let c = edge.client.as_ref().map_or("", |s| &*s.service);
                let s = edge.server.as_ref().map_or("", |s| &*s.service);
                let t = connection_type(edge.messaging);
                self.unpaired
                    .get_or_insert_with(&[label(c), label(s), label(t)], Counter::default)
                    .add(1, None);
            }
        }
    }

    /// The number of edges waiting for their other half.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Renders the graph's metrics; exemplars are handed out once.
    pub fn metrics(&mut self, start: u64, now: u64) -> Vec<Metric> {
        let mut out = Vec::new();
        if !self.series.is_empty() {
            let mut total = Vec::new();
            let mut failed = Vec::new();
            let mut server = Vec::new();
            let mut client = Vec::new();
            let bounds = &self.config.buckets;
            for (labels, s) in self.series.sorted_mut() {
                let attrs = attributes(&LABELS, labels);
                total.push(s.total.point(attrs.clone(), start, now));
                if s.failed.value > 0 {
                    failed.push(s.failed.point(attrs.clone(), start, now));
                }
                if s.server.count > 0 {
                    server.push(s.server.point(bounds, attrs.clone(), start, now));
                }
                if s.client.count > 0 {
                    client.push(s.client.point(bounds, attrs, start, now));
                }
            }
            out.push(super::sum_metric(
                "traces_service_graph_request",
                "Requests between two nodes",
                total,
            ));
            if !failed.is_empty() {
                out.push(super::sum_metric(
                    "traces_service_graph_request_failed",
                    "Failed requests between two nodes",
                    failed,
                ));
            }
            if !server.is_empty() {
                out.push(super::histogram_metric(
                    "traces_service_graph_request_server",
                    "Request durations as the server saw them",
                    server,
                ));
            }
            if !client.is_empty() {
                out.push(super::histogram_metric(
                    "traces_service_graph_request_client",
                    "Request durations as the client saw them",
                    client,
                ));
            }
        }
        for (name, description, map) in [
            (
                "traces_service_graph_unpaired_spans",
                "Spans whose other half did not arrive in time",
                &mut self.unpaired,
            ),
            (
                "traces_service_graph_dropped_spans",
                "Spans dropped because too many edges were waiting",
                &mut self.dropped,
            ),
        ] {
            if map.is_empty() {
                continue;
            }
            let points = map
                .sorted_mut()
                .into_iter()
                .map(|(labels, c)| c.point(attributes(&LABELS, labels), start, now))
                .collect();
            out.push(super::sum_metric(name, description, points));
        }
        if self.expired > 0 {
            let mut c = Counter {
                value: self.expired,
                exemplar: None,
            };
            out.push(super::sum_metric(
                "traces_service_graph_expired_edges",
                "Edges that expired waiting for their other half",
                vec![c.point(Vec::new(), start, now)],
            ));
        }
        out
    }
}

/// A label value, `None` when empty (the label is left out).
fn label(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

fn connection_type(messaging: bool) -> &'static str {
    if messaging { "messaging_system" } else { "" }
}

/// A client span's virtual peer: `peer.service`, else `db.name`, else `db.system`, and
/// whether it names a database.
/// The attributes [`peer`] reads.
const PEER_KEYS: [&str; 3] = ["peer.service", "db.name", "db.system"];

/// One pass over the attributes: the first attribute of each of the three names decides,
/// as a lookup of each name would.
fn peer<'a>(attrs: impl Iterator<Item = KeyValueView<'a>>) -> Option<(String, bool)> {
    let (mut service, mut name, mut system) = (None, None, None);
    for kv in attrs {
        let slot = match kv.key {
            "peer.service" => &mut service,
            "db.name" => &mut name,
            "db.system" => &mut system,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(kv);
        }
    }
    let text = |kv: Option<KeyValueView<'a>>| kv.and_then(|kv| value_text(kv.value));
    if let Some(p) = text(service) {
        let db = text(name).is_some() || text(system).is_some();
        return Some((p.into_owned(), db));
    }
    text(name)
        .or_else(|| text(system))
        .map(|p| (p.into_owned(), true))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{kv, request, span, text};
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data, number_data_point};

    const SERVER: i32 = 2;
    const CLIENT: i32 = 3;
    const PRODUCER: i32 = 4;
    const CONSUMER: i32 = 5;
    const ERROR: i32 = 2;

    fn graph(max_items: usize) -> ServiceGraph {
        ServiceGraph::new(ServiceGraphConfig {
            max_items,
            wait: Duration::from_secs(10),
            buckets: vec![0.1, 1.0],
        })
    }

    fn find<'a>(out: &'a [Metric], name: &str) -> &'a Metric {
        out.iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name} in {out:?}"))
    }

    /// `(client, server, connection_type, value)` of each point of a sum.
    fn sums(m: &Metric) -> Vec<(String, String, String, i64)> {
        let Some(Data::Sum(s)) = &m.data else {
            panic!("{m:?}")
        };
        s.data_points
            .iter()
            .map(|p| {
                let l = |k: &str| text(&p.attributes, k).unwrap_or_default();
                let Some(number_data_point::Value::AsInt(v)) = p.value else {
                    panic!()
                };
                (l("client"), l("server"), l("connection_type"), v)
            })
            .collect()
    }

    fn edge(c: &str, s: &str, t: &str, v: i64) -> (String, String, String, i64) {
        (c.into(), s.into(), t.into(), v)
    }

    #[test]
    fn pairs_client_and_server_in_either_order() {
        let mut g = graph(100);
        let t0 = Instant::now();
        // Trace 1: the client arrives first, in its own request.
        g.observe(
            &request(vec![("front", vec![span(1, 1, 0, "call", CLIENT, 300, 0)])]),
            t0,
        );
        assert_eq!(g.pending(), 1);
        g.observe(
            &request(vec![(
                "api",
                vec![span(1, 2, 1, "serve", SERVER, 50, ERROR)],
            )]),
            t0,
        );
        assert_eq!(g.pending(), 0);
        // Trace 2: the server first, both in one request; internal spans are ignored.
        g.observe(
            &request(vec![
                ("api", vec![span(2, 2, 1, "serve", SERVER, 20, 0)]),
                (
                    "front",
                    vec![
                        span(2, 1, 9, "call", CLIENT, 30, 0),
                        span(2, 9, 0, "work", 1, 40, 0),
                    ],
                ),
            ]),
            t0,
        );
        assert_eq!(g.pending(), 0);
        // A queue hop.
        g.observe(
            &request(vec![
                ("front", vec![span(3, 1, 0, "send", PRODUCER, 1, 0)]),
                ("worker", vec![span(3, 2, 1, "recv", CONSUMER, 1, 0)]),
            ]),
            t0,
        );
        let out = g.metrics(0, 1);
        assert_eq!(
            sums(find(&out, "traces_service_graph_request")),
            vec![
                edge("front", "api", "", 2),
                edge("front", "worker", "messaging_system", 1)
            ]
        );
        assert_eq!(
            sums(find(&out, "traces_service_graph_request_failed")),
            vec![edge("front", "api", "", 1)]
        );
        let Some(Data::Histogram(h)) = &find(&out, "traces_service_graph_request_server").data
        else {
            panic!()
        };
        assert_eq!(h.data_points[0].bucket_counts, vec![2, 0, 0]);
        let Some(Data::Histogram(h)) = &find(&out, "traces_service_graph_request_client").data
        else {
            panic!()
        };
        assert_eq!(h.data_points[0].bucket_counts, vec![1, 1, 0]);
        assert_eq!(h.data_points[0].exemplars[0].trace_id, vec![2; 16]);
        assert!(
            out.iter()
                .all(|m| m.name != "traces_service_graph_expired_edges")
        );
    }

    #[test]
    fn unpaired_edges_expire_and_are_counted() {
        let mut g = graph(100);
        let t0 = Instant::now();
        let mut db = span(2, 1, 0, "SELECT", CLIENT, 5, 0);
        db.attributes.push(kv("db.system", "postgresql"));
        g.observe(
            &request(vec![
                // A client whose server never reports.
                ("front", vec![span(1, 1, 0, "call", CLIENT, 5, 0), db]),
                // A root server span: a request from outside.
                ("api", vec![span(3, 1, 0, "GET", SERVER, 5, 0)]),
                // A server whose client never reports.
                ("api", vec![span(4, 2, 7, "GET", SERVER, 5, 0)]),
            ]),
            t0,
        );
        assert_eq!(g.pending(), 4);
        g.expire(t0 + Duration::from_secs(9));
        assert_eq!(g.pending(), 4, "still waiting");
        g.expire(t0 + Duration::from_secs(10));
        assert_eq!(g.pending(), 0);
        let out = g.metrics(0, 1);
        assert_eq!(
            sums(find(&out, "traces_service_graph_request")),
            vec![
                edge("front", "postgresql", "database", 1),
                edge("user", "api", "virtual_node", 1),
            ]
        );
        assert_eq!(
            sums(find(&out, "traces_service_graph_unpaired_spans")),
            vec![edge("", "api", "", 1), edge("front", "", "", 1)]
        );
        assert_eq!(
            sums(find(&out, "traces_service_graph_expired_edges")),
            vec![edge("", "", "", 4)]
        );
        // A late half after expiry waits again rather than pairing with nothing.
        g.observe(
            &request(vec![("api", vec![span(1, 2, 1, "serve", SERVER, 5, 0)])]),
            t0 + Duration::from_secs(11),
        );
        assert_eq!(g.pending(), 1);
    }

    #[test]
    fn a_full_store_drops_new_edges() {
        let mut g = graph(1);
        let t0 = Instant::now();
        g.observe(
            &request(vec![(
                "front",
                vec![
                    span(1, 1, 0, "a", CLIENT, 5, 0),
                    span(2, 1, 0, "b", CLIENT, 5, 0),
                ],
            )]),
            t0,
        );
        assert_eq!(g.pending(), 1);
        // The waiting edge still pairs.
        g.observe(
            &request(vec![("api", vec![span(1, 2, 1, "s", SERVER, 5, 0)])]),
            t0,
        );
        let out = g.metrics(0, 1);
        assert_eq!(
            sums(find(&out, "traces_service_graph_dropped_spans")),
            vec![edge("front", "", "", 1)]
        );
        assert_eq!(
            sums(find(&out, "traces_service_graph_request")),
            vec![edge("front", "api", "", 1)]
        );
    }

    #[test]
    fn the_peer_is_the_first_of_each_name_in_order_of_preference() {
        let peer_of = |attrs: Vec<(&str, &str)>| {
            let mut s = span(1, 1, 0, "call", 3, 1, 0);
            s.attributes = attrs.into_iter().map(|(k, v)| kv(k, v)).collect();
            let batch = request(vec![("a", vec![s])]);
            peer(batch.span_attributes(0))
        };
        let some = |p: &str, db: bool| Some((p.to_string(), db));
        assert_eq!(peer_of(vec![("peer.service", "mail")]), some("mail", false));
        assert_eq!(
            peer_of(vec![("db.system", "pg"), ("peer.service", "mail")]),
            some("mail", true)
        );
        assert_eq!(
            peer_of(vec![("db.system", "pg"), ("db.name", "shop")]),
            some("shop", true)
        );
        assert_eq!(peer_of(vec![("db.system", "pg")]), some("pg", true));
        assert_eq!(
            peer_of(vec![("db.system", "pg"), ("db.system", "mysql")]),
            some("pg", true)
        );
        assert_eq!(peer_of(vec![("http.method", "GET")]), None);
    }
}
