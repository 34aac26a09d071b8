//! `connectors`: metrics computed from traces, like the Collector's `spanmetrics` and
//! `servicegraph` connectors (Tempo's metrics-generator). Both are on by default and
//! write into the metrics store, so they need a traces and a metrics pipeline.

use super::components::parse_duration;
use serde::Deserialize;
use std::time::Duration;

/// `connectors`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectorsConfig {
    /// `traces_spanmetrics_*`: calls and durations per service, span name, kind and status.
    pub spanmetrics: SpanMetricsConfig,
    /// `traces_service_graph_*`: requests between services from client/server span pairs.
    pub servicegraph: ServiceGraphConfig,
}

/// `connectors.spanmetrics`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SpanMetricsConfig {
    /// On by default.
    pub enabled: bool,
    /// Span (else resource) attributes added as labels.
    pub dimensions: Vec<String>,
    /// Duration bucket bounds in seconds; empty means Tempo's (2 ms doubling to 16.384 s).
    pub histogram_buckets: Vec<f64>,
    /// How often both connectors write their metrics; `15s` by default.
    pub flush_interval: Option<String>,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        SpanMetricsConfig {
            enabled: true,
            dimensions: Vec::new(),
            histogram_buckets: Vec::new(),
            flush_interval: None,
        }
    }
}

/// `connectors.servicegraph`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceGraphConfig {
    /// On by default.
    pub enabled: bool,
    /// The most unpaired edges waiting for their other half (10000, as Tempo).
    pub max_items: u64,
    /// How long an unpaired edge waits (`10s`, as Tempo).
    pub wait: Option<String>,
    /// Latency bucket bounds in seconds; empty means Tempo's (0.1 s doubling to 12.8 s).
    pub histogram_buckets: Vec<f64>,
}

impl Default for ServiceGraphConfig {
    fn default() -> Self {
        ServiceGraphConfig {
            enabled: true,
            max_items: 10_000,
            wait: None,
            histogram_buckets: Vec::new(),
        }
    }
}

fn positive(what: &str, s: &Option<String>, default: Duration) -> Result<Duration, String> {
    match s {
        None => Ok(default),
        Some(s) => parse_duration(s).filter(|d| !d.is_zero()).ok_or_else(|| {
            format!("{what}: {s:?} is not a positive duration such as 15s or 500ms")
        }),
    }
}

fn check_buckets(what: &str, b: &[f64]) -> Result<(), String> {
    if b.iter().any(|x| !x.is_finite()) || b.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "{what}.histogram_buckets: must be finite and strictly ascending"
        ));
    }
    Ok(())
}

impl SpanMetricsConfig {
    /// The flush interval; 15 s unless set.
    pub fn flush_interval(&self) -> Result<Duration, String> {
        positive(
            "flush_interval",
            &self.flush_interval,
            Duration::from_secs(15),
        )
    }
}

impl ServiceGraphConfig {
    /// How long an unpaired edge waits; 10 s unless set.
    pub fn wait(&self) -> Result<Duration, String> {
        positive("wait", &self.wait, Duration::from_secs(10))
    }
}

impl ConnectorsConfig {
    /// Checks durations and buckets; errors are relative to `connectors.`.
    pub fn validate(&self) -> Result<(), String> {
        self.spanmetrics
            .flush_interval()
            .map_err(|e| format!("spanmetrics.{e}"))?;
        check_buckets("spanmetrics", &self.spanmetrics.histogram_buckets)?;
        self.servicegraph
            .wait()
            .map_err(|e| format!("servicegraph.{e}"))?;
        check_buckets("servicegraph", &self.servicegraph.histogram_buckets)?;
        if self.servicegraph.max_items == 0 {
            return Err("servicegraph.max_items: must be above 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn parse(yaml: &str) -> Result<Config, String> {
        Config::from_yaml("pharos.yaml", yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn on_by_default() {
        let c = Config::default().connectors;
        assert!(c.spanmetrics.enabled && c.servicegraph.enabled);
        assert_eq!(
            c.spanmetrics.flush_interval().unwrap(),
            Duration::from_secs(15)
        );
        assert_eq!(c.servicegraph.wait().unwrap(), Duration::from_secs(10));
        assert_eq!(c.servicegraph.max_items, 10_000);
    }

    #[test]
    fn parses_and_checks() {
        let c = parse(
            "connectors:\n  spanmetrics:\n    dimensions: [http.method]\n    histogram_buckets: [0.1, 1]\n    flush_interval: 500ms\n  servicegraph:\n    enabled: false\n    max_items: 5\n    wait: 2s\n",
        )
        .unwrap()
        .connectors;
        assert_eq!(c.spanmetrics.dimensions, vec!["http.method".to_string()]);
        assert_eq!(c.spanmetrics.histogram_buckets, vec![0.1, 1.0]);
        assert_eq!(
            c.spanmetrics.flush_interval().unwrap(),
            Duration::from_millis(500)
        );
        assert!(!c.servicegraph.enabled);
        assert_eq!(c.servicegraph.wait().unwrap(), Duration::from_secs(2));
        let e = parse("connectors:\n  spanmetrics:\n    dimension: [a]\n").unwrap_err();
        assert!(e.contains("dimension"), "{e}");
        let e = parse("connectors:\n  servicegraph:\n    wait: soon\n").unwrap_err();
        assert!(e.contains("connectors.servicegraph.wait"), "{e}");
        let e =
            parse("connectors:\n  spanmetrics:\n    histogram_buckets: [1, 0.5]\n").unwrap_err();
        assert!(e.contains("ascending"), "{e}");
    }
}
