//! Targets: from a discovered group entry to the labels and URL a scrape loop uses,
//! as Prometheus' `PopulateLabels` does it.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Url;

use super::relabel;
use super::{ScrapeConfig, TargetGroup};
use crate::store::Labels;

/// The label holding a target's `host:port`.
pub const ADDRESS: &str = "__address__";
/// The label holding a target's scheme.
pub const SCHEME: &str = "__scheme__";
/// The label holding a target's metrics path.
pub const METRICS_PATH: &str = "__metrics_path__";
/// The prefix of labels that become URL parameters.
pub const PARAM_PREFIX: &str = "__param_";

/// A target after relabeling, ready to scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The labels before relabeling (Prometheus' `discoveredLabels`).
    pub discovered_labels: Labels,
    /// The labels after relabeling, `__`-prefixed ones removed; added to every sample.
    pub labels: Labels,
    /// The URL scraped.
    pub url: Url,
}

/// The outcome of relabeling one discovered target.
#[derive(Debug, Clone, PartialEq)]
pub enum Populated {
    /// Scrape it.
    Active(Target),
    /// Relabeling dropped it; the discovered labels are kept for the targets API.
    Dropped(Labels),
}

/// Expands every group of `groups` into targets for `cfg`.
///
/// # Errors
/// Per target, a message (a target without an address, or whose URL does not parse);
/// Prometheus logs and skips those.
pub fn populate(cfg: &ScrapeConfig, groups: &[TargetGroup]) -> Vec<Result<Populated, String>> {
    let mut out = Vec::new();
    for g in groups {
        for t in &g.targets {
            let mut pairs: BTreeMap<String, String> = g.labels.clone().into_iter().collect();
            pairs.insert(ADDRESS.into(), t.clone());
            out.push(populate_one(cfg, pairs));
        }
    }
    out
}

fn populate_one(cfg: &ScrapeConfig, mut lb: BTreeMap<String, String>) -> Result<Populated, String> {
    let defaults = [
        ("job", cfg.job_name.clone()),
        ("__scrape_interval__", format_duration(cfg.scrape_interval)),
        ("__scrape_timeout__", format_duration(cfg.scrape_timeout)),
        (METRICS_PATH, cfg.metrics_path.clone()),
        (SCHEME, cfg.scheme.clone()),
    ];
    for (k, v) in defaults {
        lb.entry(k.into()).or_insert(v);
    }
    for (k, vs) in &cfg.params {
        if let Some(v) = vs.first() {
            lb.entry(format!("{PARAM_PREFIX}{k}"))
                .or_insert_with(|| v.clone());
        }
    }
    let discovered = Labels::from_pairs(lb);
    let Some(relabeled) = relabel::process(&discovered, &cfg.relabel_configs) else {
        return Ok(Populated::Dropped(discovered));
    };
    let address = relabeled
        .get(ADDRESS)
        .ok_or_else(|| "no address".to_string())?
        .to_owned();
    let url = target_url(cfg, &relabeled, &address)?;
    let mut pairs: Vec<(String, String)> = relabeled
        .pairs()
        .iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .cloned()
        .collect();
    if relabeled.get("instance").is_none() {
        pairs.push(("instance".into(), address));
    }
    Ok(Populated::Active(Target {
        discovered_labels: discovered,
        labels: Labels::from_pairs(pairs),
        url,
    }))
}

fn target_url(cfg: &ScrapeConfig, lb: &Labels, address: &str) -> Result<Url, String> {
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    let scheme = lb.get(SCHEME).unwrap_or("http");
    let path = lb.get(METRICS_PATH).unwrap_or("/metrics");
    let mut url = Url::parse(&format!("{scheme}://{address}{path}"))
        .map_err(|e| format!("invalid URL for {address:?}: {e}"))?;
    // Configured params, with `__param_*` labels overriding their first value.
    let mut params: BTreeMap<String, Vec<String>> = cfg.params.clone();
    for (k, v) in lb.pairs() {
        if let Some(name) = k.strip_prefix(PARAM_PREFIX) {
            let vs = params.entry(name.to_owned()).or_default();
            if vs.is_empty() {
                vs.push(v.clone());
            } else {
                vs[0] = v.clone();
            }
        }
    }
    if !params.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, vs) in &params {
            for v in vs {
                q.append_pair(k, v);
            }
        }
    }
    Ok(url)
}

/// Formats a duration as Prometheus does (`15s`, `1m`, `1m30s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::relabel::{Action, RelabelConfig, RelabelSpec};

    fn cfg() -> ScrapeConfig {
        ScrapeConfig::new("node")
    }

    fn group(targets: &[&str], labels: &[(&str, &str)]) -> TargetGroup {
        TargetGroup {
            targets: targets.iter().map(|s| s.to_string()).collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn defaults_job_instance_and_url() {
        let mut c = cfg();
        c.params
            .insert("module".into(), vec!["a".into(), "b".into()]);
        let out = populate(&c, &[group(&["h:9100"], &[("env", "prod")])]);
        let Ok(Populated::Active(t)) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            t.labels,
            Labels::from_pairs([("env", "prod"), ("instance", "h:9100"), ("job", "node")])
        );
        assert_eq!(t.url.as_str(), "http://h:9100/metrics?module=a&module=b");
        assert_eq!(t.discovered_labels.get("__scrape_interval__"), Some("1m"));
        assert_eq!(t.discovered_labels.get("__param_module"), Some("a"));
    }

    #[test]
    fn relabeling_rewrites_address_path_and_params_or_drops() {
        let mut c = cfg();
        // The blackbox exporter pattern from the Prometheus docs.
        let specs = [
            RelabelSpec {
                source_labels: vec![ADDRESS.into()],
                target_label: Some("__param_target".into()),
                ..RelabelSpec::default()
            },
            RelabelSpec {
                source_labels: vec!["__param_target".into()],
                target_label: Some("instance".into()),
                ..RelabelSpec::default()
            },
            RelabelSpec {
                target_label: Some(ADDRESS.into()),
                replacement: Some("exporter:9115".into()),
                ..RelabelSpec::default()
            },
            RelabelSpec {
                target_label: Some(METRICS_PATH.into()),
                replacement: Some("/probe".into()),
                ..RelabelSpec::default()
            },
            RelabelSpec {
                source_labels: vec!["skip".into()],
                regex: Some("yes".into()),
                action: Action::Drop,
                ..RelabelSpec::default()
            },
        ];
        c.relabel_configs = specs
            .into_iter()
            .map(|s| RelabelConfig::new(s).unwrap())
            .collect();
        let out = populate(
            &c,
            &[
                group(&["example.com:80"], &[]),
                group(&["x:1"], &[("skip", "yes")]),
            ],
        );
        let Ok(Populated::Active(t)) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            t.labels,
            Labels::from_pairs([("instance", "example.com:80"), ("job", "node")])
        );
        assert_eq!(
            t.url.as_str(),
            "http://exporter:9115/probe?target=example.com%3A80"
        );
        assert!(matches!(&out[1], Ok(Populated::Dropped(l)) if l.get("skip") == Some("yes")));
    }

    #[test]
    fn bad_addresses_are_errors() {
        let out = populate(&cfg(), &[group(&["http://h:1/x"], &[])]);
        assert!(out[0].is_err(), "{out:?}");
    }

    #[test]
    fn durations_format_like_prometheus() {
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }
}
