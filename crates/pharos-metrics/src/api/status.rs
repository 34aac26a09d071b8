//! The Prometheus API endpoints around querying: `format_query`,
//! `targets`, `status/runtimeinfo`, `status/tsdb`, and the `limit`
//! parameter of the metadata endpoints (`query_exemplars` is in
//! [`super::exemplars`]). Shapes follow
//! Prometheus 3's `web/api/v1/api.go`.

use super::json;
use super::params::Form;
use super::{ApiError, Shared};
use crate::scrape::TargetsSnapshot;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The warning Prometheus adds when `limit` cut a result.
pub const TRUNCATED: &str = "results truncated due to limit";

/// Parses `limit` as Prometheus' `parseLimitParam`: absent or 0 means none.
pub fn limit_param(form: &Form) -> Result<usize, ApiError> {
    let s = form.value("limit");
    if s.is_empty() {
        return Ok(0);
    }
    let n: i64 = s.parse().map_err(|_| {
        ApiError::invalid_param("limit", format!("cannot parse {s:?} to a valid limit"))
    })?;
    if n < 0 {
        return Err(ApiError::invalid_param(
            "limit",
            "limit must be non-negative",
        ));
    }
    Ok(n as usize)
}

/// Cuts `items` to `limit` (0: no limit), returning whether it cut anything.
pub fn truncate<T>(items: &mut Vec<T>, limit: usize) -> bool {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        true
    } else {
        false
    }
}

/// `format_query`: the expression, prettified as Prometheus' `Pretty`.
pub fn format_query(form: &Form) -> Result<String, ApiError> {
    let expr = promql_parser::parser::parse(form.value("query"))
        .map_err(|e| ApiError::invalid_param("query", e))?;
    let mut out = String::new();
    json::string(&mut out, &expr.prettify());
    Ok(out)
}

/// Where `/api/v1/targets` reads the scrape manager's state from.
pub type TargetsFn = std::sync::Arc<dyn Fn() -> TargetsSnapshot + Send + Sync>;

/// `targets`, as Prometheus' `targets` endpoint shapes it (`state` filtering not supported).
pub fn targets(snapshot: &TargetsSnapshot) -> String {
    let mut out = String::from("{\"activeTargets\":[");
    for (i, t) in snapshot.active.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"discoveredLabels\":");
        json::labels(&mut out, &t.discovered_labels);
        out.push_str(",\"labels\":");
        json::labels(&mut out, &t.labels);
        for (key, value) in [
            ("scrapePool", t.scrape_pool.as_str()),
            ("scrapeUrl", &t.scrape_url),
            ("globalUrl", &t.global_url),
            ("lastError", &t.last_error),
        ] {
            out.push_str(&format!(",\"{key}\":"));
            json::string(&mut out, value);
        }
        out.push_str(",\"lastScrape\":");
        let last = t
            .last_scrape
            .map_or_else(|| "0001-01-01T00:00:00Z".to_string(), rfc3339);
        json::string(&mut out, &last);
        out.push_str(&format!(
            ",\"lastScrapeDuration\":{},\"health\":\"{}\",\"scrapeInterval\":",
            json::float(t.last_scrape_duration.as_secs_f64()),
            t.health.as_str()
        ));
        json::string(&mut out, &t.scrape_interval);
        out.push_str(",\"scrapeTimeout\":");
        json::string(&mut out, &t.scrape_timeout);
        out.push('}');
    }
    out.push_str("],\"droppedTargets\":[");
    for (i, d) in snapshot.dropped.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"discoveredLabels\":");
        json::labels(&mut out, &d.discovered_labels);
        out.push('}');
    }
    out.push_str("]}");
    out
}

fn started_at() -> &'static str {
    static STARTED: OnceLock<String> = OnceLock::new();
    STARTED.get_or_init(|| rfc3339(std::time::SystemTime::now()))
}

/// Records the process start time; call once at start-up.
pub fn mark_start() {
    started_at();
}

/// Formats a time as Prometheus' JSON does: RFC 3339, UTC, milliseconds.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// `status/runtimeinfo`, with the Go-runtime fields filled with their nearest Pharos meaning.
pub fn runtime_info() -> String {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = String::from("{\"startTime\":");
    json::string(&mut out, started_at());
    out.push_str(",\"CWD\":");
    json::string(
        &mut out,
        &std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    out.push_str(&format!(
        ",\"reloadConfigSuccess\":true,\"lastConfigTime\":\"{}\",\"corruptionCount\":0,\"goroutineCount\":0,\
         \"GOMAXPROCS\":{threads},\"GOMEMLIMIT\":0,\"GOGC\":\"\",\"GODEBUG\":\"\",\"storageRetention\":\"\"}}",
        started_at()
    ));
    out
}

/// `status/tsdb`: cardinality statistics of the head, top 10 of each kind,
/// as Prometheus' `TSDBStatus`.
pub fn tsdb(q: &Shared, form: &Form) -> Result<String, ApiError> {
    let limit =
        match form.value("limit") {
            "" => 10,
            s => s.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::bad_data(format!("limit must be a positive number: {s:?}"))
            })?,
        };
    let (series, range) = q.head_stats();
    let mut by_metric: BTreeMap<&str, u64> = BTreeMap::new();
    let mut values_by_name: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    let mut bytes_by_name: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_pair: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for l in &series {
        *by_metric
            .entry(l.get(crate::store::METRIC_NAME).unwrap_or(""))
            .or_default() += 1;
        for (n, v) in l.pairs() {
            if values_by_name.entry(n).or_default().insert(v) {
                *bytes_by_name.entry(n).or_default() += v.len() as u64;
            }
            *by_pair.entry((n, v)).or_default() += 1;
        }
    }
    let pairs: u64 = values_by_name.values().map(|v| v.len() as u64).sum();
    let mut out = format!(
        "{{\"headStats\":{{\"numSeries\":{},\"numLabelPairs\":{pairs},",
        series.len()
    );
    // Prometheus' empty head reports the extremes of int64 swapped; so does Pharos'.
    let (min, max) = range.unwrap_or((i64::MAX, i64::MIN));
    out.push_str(&format!(
        "\"chunkCount\":0,\"minTime\":{min},\"maxTime\":{max}}}"
    ));
    let top = |out: &mut String, key: &str, items: Vec<(String, u64)>| {
        let mut items = items;
        items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        items.truncate(limit);
        out.push_str(&format!(",\"{key}\":["));
        for (i, (name, value)) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            json::string(out, name);
            out.push_str(&format!(",\"value\":{value}}}"));
        }
        out.push(']');
    };
    top(
        &mut out,
        "seriesCountByMetricName",
        by_metric.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    );
    top(
        &mut out,
        "labelValueCountByLabelName",
        values_by_name
            .iter()
            .map(|(k, v)| (k.to_string(), v.len() as u64))
            .collect(),
    );
    top(
        &mut out,
        "memoryInBytesByLabelName",
        bytes_by_name
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
    );
    top(
        &mut out,
        "seriesCountByLabelValuePair",
        by_pair
            .iter()
            .map(|((n, v), c)| (format!("{n}={v}"), *c))
            .collect(),
    );
    out.push('}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn targets_are_shaped_like_prometheus() {
        use crate::scrape::{DroppedTarget, Health, TargetStatus};
        let l = |pairs: &[(&str, &str)]| crate::store::Labels::from_pairs(pairs.iter().copied());
        let snapshot = TargetsSnapshot {
            active: vec![TargetStatus {
                discovered_labels: l(&[("__address__", "h:9100"), ("job", "node")]),
                labels: l(&[("instance", "h:9100"), ("job", "node")]),
                scrape_pool: "node".into(),
                scrape_url: "http://h:9100/metrics".into(),
                global_url: "http://h:9100/metrics".into(),
                last_error: String::new(),
                last_scrape: Some(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
                ),
                last_scrape_duration: std::time::Duration::from_millis(12),
                health: Health::Up,
                scrape_interval: "15s".into(),
                scrape_timeout: "10s".into(),
            }],
            dropped: vec![DroppedTarget {
                discovered_labels: l(&[("__address__", "x:1")]),
                scrape_pool: "node".into(),
            }],
        };
        assert_eq!(
            targets(&snapshot),
            r#"{"activeTargets":[{"discoveredLabels":{"__address__":"h:9100","job":"node"},"labels":{"instance":"h:9100","job":"node"},"scrapePool":"node","scrapeUrl":"http://h:9100/metrics","globalUrl":"http://h:9100/metrics","lastError":"","lastScrape":"2023-11-14T22:13:20.000Z","lastScrapeDuration":0.012,"health":"up","scrapeInterval":"15s","scrapeTimeout":"10s"}],"droppedTargets":[{"discoveredLabels":{"__address__":"x:1"}}]}"#
        );
        assert_eq!(
            targets(&TargetsSnapshot::default()),
            r#"{"activeTargets":[],"droppedTargets":[]}"#
        );
    }

    #[test]
    fn limits_parse_like_prometheus() {
        let f = |q: &str| Form::parse(None, Some(q));
        assert_eq!(limit_param(&f("")).unwrap(), 0);
        assert_eq!(limit_param(&f("limit=5")).unwrap(), 5);
        assert!(
            limit_param(&f("limit=x"))
                .unwrap_err()
                .message
                .contains("cannot parse \"x\" to a valid limit")
        );
        assert!(
            limit_param(&f("limit=-1"))
                .unwrap_err()
                .message
                .contains("non-negative")
        );
        let mut v = vec![1, 2, 3];
        assert!(!truncate(&mut v, 0));
        assert!(truncate(&mut v, 2));
        assert_eq!(v, [1, 2]);
    }
}
