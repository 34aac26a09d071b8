//! The per-metric series limit for OTLP requests, checked before the WAL so
//! the client hears of it in `partial_success`.
//!
//! An OTLP metric whose points would create a series past the limit is
//! refused whole (all its data points): its points are translated on their
//! own to learn which series they make. `target_info` is left to `apply`,
//! which enforces the limit on every series and counts what it drops.

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use pharos_model::{ExportMetricsServiceRequest, Rejected};

use super::head::Head;
use super::labels::{Labels, METRIC_NAME};
use super::translate::{point_count, translate};

/// Removes the metrics that would pass the limit, saying how many points and why.
pub(super) fn sanitize(head: &Head, req: &mut ExportMetricsServiceRequest) -> Rejected {
    let mut rejected = Rejected::default();
    // New series this request creates so far, by metric name, and their label sets.
    let mut pending: HashMap<String, usize> = HashMap::new();
    let mut seen: HashSet<Labels> = HashSet::new();
    for rm in &mut req.resource_metrics {
        let (resource, schema_url) = (rm.resource.clone(), rm.schema_url.clone());
        for sm in &mut rm.scope_metrics {
            let scope = sm.scope.clone();
            sm.metrics.retain(|m| {
                let single = ExportMetricsServiceRequest {
                    resource_metrics: vec![ResourceMetrics {
                        resource: resource.clone(),
                        scope_metrics: vec![ScopeMetrics {
                            scope: scope.clone(),
                            metrics: vec![m.clone()],
                            ..Default::default()
                        }],
                        schema_url: schema_url.clone(),
                    }],
                };
                let mut fresh: Vec<Labels> = translate(&single)
                    .into_iter()
                    .map(|p| p.labels)
                    .filter(|l| l.get(METRIC_NAME) != Some("target_info"))
                    .filter(|l| !seen.contains(l) && head.get(l).is_none())
                    .collect();
                fresh.sort();
                fresh.dedup();
                let mut mine: HashMap<&str, usize> = HashMap::new();
                for l in &fresh {
                    let name = l.get(METRIC_NAME).unwrap_or("");
                    let before = pending.get(name).copied().unwrap_or(0) + mine.get(name).copied().unwrap_or(0);
                    if !head.has_room_for(name, before) {
                        rejected.add(
                            point_count(m),
                            &format!("per-metric series limit reached for {name} (limits.max_series_per_metric)"),
                        );
                        return false;
                    }
                    *mine.entry(name).or_default() += 1;
                }
                for (name, n) in mine {
                    *pending.entry(name.to_string()).or_default() += n;
                }
                seen.extend(fresh);
                true
            });
        }
    }
    rejected
}

#[cfg(test)]
mod tests {
    use crate::MetricsStore;
    use crate::remote_write::proto::{Label, Sample, TimeSeries};
    use crate::store::record::MetricsRecord;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
        number_data_point,
    };
    use pharos_model::{ExportMetricsServiceRequest, Store};

    const T_NS: u64 = 1_700_000_000_000_000_000;

    fn gauge(name: &str, keys: &[&str]) -> Metric {
        Metric {
            name: name.into(),
            data: Some(Data::Gauge(Gauge {
                data_points: keys
                    .iter()
                    .map(|k| NumberDataPoint {
                        attributes: vec![KeyValue {
                            key: "k".into(),
                            value: Some(AnyValue {
                                value: Some(Value::StringValue((*k).into())),
                            }),
                            ..Default::default()
                        }],
                        time_unix_nano: T_NS,
                        value: Some(number_data_point::Value::AsDouble(1.0)),
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        }
    }

    fn otlp(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn otlp_metrics_past_the_limit_are_refused_whole() {
        let store = MetricsStore::with_max_series_per_metric(2);
        let mut first = otlp(vec![gauge("a", &["1", "2"]), gauge("b", &["1"])]);
        assert_eq!(
            Store::<ExportMetricsServiceRequest>::sanitize(&store, &mut first).count,
            0
        );
        Store::<ExportMetricsServiceRequest>::apply(&store, &first);
        // a is full; a new series of a is refused with its whole metric, b still has room.
        let mut second = otlp(vec![gauge("a", &["1", "3"]), gauge("b", &["2"])]);
        let r = Store::<ExportMetricsServiceRequest>::sanitize(&store, &mut second);
        assert_eq!(r.count, 2, "both points of the refused metric");
        assert!(
            r.message.contains("per-metric series limit reached for a"),
            "{}",
            r.message
        );
        let kept: Vec<&str> = second.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(kept, ["b"]);
        // Within one request, new series count against the limit too.
        let mut third = otlp(vec![gauge("c", &["1", "2", "3"])]);
        assert_eq!(
            Store::<ExportMetricsServiceRequest>::sanitize(&store, &mut third).count,
            3
        );
    }

    #[test]
    fn remote_write_series_past_the_limit_are_refused_and_apply_enforces_too() {
        let store = MetricsStore::with_max_series_per_metric(1);
        let series = |v: &str, t: i64| TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: "up".into(),
                },
                Label {
                    name: "i".into(),
                    value: v.into(),
                },
            ],
            samples: vec![Sample {
                value: 1.0,
                timestamp: t,
            }],
            ..Default::default()
        };
        let t = (T_NS / 1_000_000) as i64;
        let mut rec = MetricsRecord::from_remote_write(vec![series("a", t), series("b", t)]);
        let r = Store::<MetricsRecord>::sanitize(&store, &mut rec);
        assert_eq!(r.count, 1);
        assert!(
            r.message.contains("per-metric series limit reached"),
            "{}",
            r.message
        );
        Store::<MetricsRecord>::apply(&store, &rec);
        assert_eq!(store.series_count(), 1);
        // A record that skipped sanitize (a replay under a lower limit) is still bounded.
        Store::<MetricsRecord>::apply(
            &store,
            &MetricsRecord::from_remote_write(vec![series("c", t + 1)]),
        );
        assert_eq!(store.series_count(), 1);
        assert_eq!(store.stats().series_limit, 1);
    }
}
