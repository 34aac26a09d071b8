//! Receivers, processors and exporters, keyed `type` or `type/name`.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use super::prometheus::PrometheusReceiverConfig;

/// A component or pipeline id: `type` or `type/name`, as in the Collector.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId(String);

impl ComponentId {
    /// Wraps an id.
    pub fn new(id: impl Into<String>) -> Self {
        ComponentId(id.into())
    }

    /// Returns the type part, before any `/`.
    pub fn kind(&self) -> &str {
        self.0.split('/').next().unwrap_or("")
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ComponentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let valid = !s.is_empty()
            && s.split('/').count() <= 2
            && s.split('/').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            });
        if valid {
            Ok(ComponentId(s))
        } else {
            Err(de::Error::custom(format!("invalid component id {s:?}")))
        }
    }
}

/// A receiver's settings, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum Receiver {
    /// `otlp`: OTLP over gRPC and HTTP.
    Otlp(OtlpReceiverConfig),
    /// `prometheus`: scrapes targets (metrics pipelines only).
    Prometheus(PrometheusReceiverConfig),
}

impl Receiver {
    /// Returns the OTLP settings when this is an OTLP receiver.
    pub fn as_otlp(&self) -> Option<&OtlpReceiverConfig> {
        match self {
            Receiver::Otlp(otlp) => Some(otlp),
            Receiver::Prometheus(_) => None,
        }
    }

    /// Returns the scrape settings when this is a prometheus receiver.
    pub fn as_prometheus(&self) -> Option<&PrometheusReceiverConfig> {
        match self {
            Receiver::Prometheus(p) => Some(p),
            Receiver::Otlp(_) => None,
        }
    }
}

/// `receivers.otlp`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// Which transports to serve; a key with no value enables it with defaults.
    pub protocols: OtlpProtocols,
}

impl Default for OtlpReceiverConfig {
    fn default() -> Self {
        OtlpReceiverConfig {
            protocols: OtlpProtocols {
                grpc: Some(GrpcConfig::default()),
                http: Some(HttpConfig::default()),
            },
        }
    }
}

impl OtlpReceiverConfig {
    /// The endpoints this receiver listens on.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        let grpc = self.protocols.grpc.as_ref().map(|g| g.endpoint.as_str());
        let http = self.protocols.http.as_ref().map(|h| h.endpoint.as_str());
        grpc.into_iter().chain(http)
    }
}

/// `receivers.otlp.protocols`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpProtocols {
    /// OTLP/gRPC.
    #[serde(default, deserialize_with = "enabled_with_defaults")]
    pub grpc: Option<GrpcConfig>,
    /// OTLP/HTTP.
    #[serde(default, deserialize_with = "enabled_with_defaults")]
    pub http: Option<HttpConfig>,
}

/// `receivers.otlp.protocols.grpc`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// The largest message accepted, in MiB (the Collector's name and default: 4).
    pub max_recv_msg_size_mib: u64,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            endpoint: "127.0.0.1:4317".into(),
            max_recv_msg_size_mib: 4,
        }
    }
}

/// `receivers.otlp.protocols.http`; this port also serves remote_write and Loki push as they arrive.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// The largest body accepted, in bytes, compressed or not (the Collector's name and default: 20 MiB).
    pub max_request_body_size: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: "127.0.0.1:4318".into(),
            max_request_body_size: 20 << 20,
        }
    }
}

/// A processor's settings, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum Processor {
    /// `batch`: the WAL's group commit already batches; the settings are accepted for compatibility.
    Batch(BatchConfig),
    /// `memory_limiter`: refuse data while the heads hold more than the limit.
    MemoryLimiter(MemoryLimiterConfig),
}

/// `processors.batch`, as in the Collector.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Accepted for compatibility.
    pub send_batch_size: Option<u64>,
    /// Accepted for compatibility.
    pub send_batch_max_size: Option<u64>,
    /// Accepted for compatibility (a duration such as `200ms`).
    pub timeout: Option<String>,
}

/// `processors.memory_limiter`, as in the Collector: a hard limit in MiB or
/// as a percentage of the machine's memory.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimiterConfig {
    /// How often the process' resident memory is sampled (a Go-style duration such as `1s`
    /// or `250ms`; default `1s`). Between samples, head growth is added to the last sample.
    pub check_interval: Option<String>,
    /// The hard limit in MiB; 0 means use `limit_percentage`.
    pub limit_mib: u64,
    /// Accepted for compatibility; refusals start at the hard limit.
    pub spike_limit_mib: u64,
    /// The hard limit as a percentage of total memory, used when `limit_mib` is 0.
    pub limit_percentage: u64,
    /// Accepted for compatibility.
    pub spike_limit_percentage: u64,
}

impl Default for MemoryLimiterConfig {
    fn default() -> Self {
        MemoryLimiterConfig {
            check_interval: None,
            limit_mib: 0,
            spike_limit_mib: 0,
            limit_percentage: 50,
            spike_limit_percentage: 0,
        }
    }
}

impl MemoryLimiterConfig {
    /// The sampling period.
    ///
    /// # Errors
    /// A message naming the bad duration.
    pub fn check_interval(&self) -> Result<std::time::Duration, String> {
        match &self.check_interval {
            None => Ok(std::time::Duration::from_secs(1)),
            Some(s) => parse_duration(s).filter(|d| !d.is_zero()).ok_or_else(|| {
                format!("check_interval: {s:?} is not a positive duration such as 1s or 250ms")
            }),
        }
    }

    /// The limit in bytes, given the machine's total memory.
    pub fn limit_bytes(&self, total_memory_bytes: u64) -> u64 {
        if self.limit_mib > 0 {
            self.limit_mib << 20
        } else {
            total_memory_bytes / 100 * self.limit_percentage.min(100)
        }
    }
}

/// An exporter, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum Exporter {
    /// `pharos`: the embedded store (metrics, traces and logs stores by pipeline signal).
    Pharos,
}

/// Settings chosen by the type part of their key.
pub(super) trait Component: Sized {
    /// What the section is called in messages.
    const SECTION: &'static str;
    /// Reads the value of a key whose type is `kind`.
    fn next_value<'de, A: MapAccess<'de>>(kind: &str, map: &mut A) -> Result<Self, A::Error>;
}

impl Component for Receiver {
    const SECTION: &'static str = "receiver";
    fn next_value<'de, A: MapAccess<'de>>(kind: &str, map: &mut A) -> Result<Self, A::Error> {
        match kind {
            "otlp" => Ok(Receiver::Otlp(
                map.next_value::<Option<_>>()?.unwrap_or_default(),
            )),
            "prometheus" => Ok(Receiver::Prometheus(
                map.next_value::<Option<_>>()?.unwrap_or_default(),
            )),
            other => Err(unknown(other, Self::SECTION, &["otlp", "prometheus"])),
        }
    }
}

impl Component for Processor {
    const SECTION: &'static str = "processor";
    fn next_value<'de, A: MapAccess<'de>>(kind: &str, map: &mut A) -> Result<Self, A::Error> {
        match kind {
            "batch" => Ok(Processor::Batch(
                map.next_value::<Option<_>>()?.unwrap_or_default(),
            )),
            "memory_limiter" => Ok(Processor::MemoryLimiter(
                map.next_value::<Option<_>>()?.unwrap_or_default(),
            )),
            other => Err(unknown(other, Self::SECTION, &["batch", "memory_limiter"])),
        }
    }
}

/// The `pharos` exporter takes no settings: an empty map or no value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoSettings {}

impl Component for Exporter {
    const SECTION: &'static str = "exporter";
    fn next_value<'de, A: MapAccess<'de>>(kind: &str, map: &mut A) -> Result<Self, A::Error> {
        match kind {
            "pharos" => {
                map.next_value::<Option<NoSettings>>()?;
                Ok(Exporter::Pharos)
            }
            other => Err(unknown(other, Self::SECTION, &["pharos"])),
        }
    }
}

fn unknown<E: de::Error>(kind: &str, section: &str, known: &[&str]) -> E {
    E::custom(format!(
        "unknown {section} type {kind:?}; this version supports: {}",
        known.join(", ")
    ))
}

struct ComponentMap<T>(PhantomData<T>);

impl<'de, T: Component> Visitor<'de> for ComponentMap<T> {
    type Value = BTreeMap<ComponentId, T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a map of {} ids to settings", T::SECTION)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(id) = map.next_key::<ComponentId>()? {
            let value = T::next_value(id.kind(), &mut map)?;
            if out.insert(id.clone(), value).is_some() {
                return Err(de::Error::custom(format!("duplicate {} {id}", T::SECTION)));
            }
        }
        Ok(out)
    }
}

/// Deserializes a component section (`receivers`, `processors`, `exporters`),
/// the settings type chosen by each key's type part.
pub(super) fn component_map<'de, D, T>(d: D) -> Result<BTreeMap<ComponentId, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Component,
{
    d.deserialize_any(ComponentMap::<T>(PhantomData))
}

fn enabled_with_defaults<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

/// Parses a Go-style duration (`1m30s`, `250ms`, `1.5s`).
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let nanos = pharos_model::duration::parse_nanos(s, pharos_model::duration::Units::Go)?;
    Some(std::time::Duration::from_nanos(u64::try_from(nanos).ok()?))
}
