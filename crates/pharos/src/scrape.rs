//! Wiring of the `prometheus` receiver: turns its configuration into
//! `pharos_metrics::scrape` settings and starts a scrape manager whose
//! samples and metric metadata go through the metrics write-ahead log like
//! every other ingest.

use crate::ingest::Ingest;
use pharos_metrics::remote_write::WriteSink;
use pharos_metrics::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use pharos_metrics::scrape::parse::Family;
use pharos_metrics::scrape::scraper::{MetadataSink, family_metadata};
use pharos_metrics::scrape::{
    Action, Auth, FileSd, RelabelConfig, RelabelSpec, ScrapeConfig, ScrapeManager, ScrapePool,
    ScrapeSink, Secret, TargetGroup,
};
use pharos_metrics::store::Labels;
use pharos_pipeline::config::prometheus as cfg;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Hands scraped samples and metadata, in scrape order, to one task that
/// writes them through the ingest path (memory limit, WAL, head) as
/// remote-write requests: series, or metadata (which the store logs only
/// when it is new to it).
struct IngestSink {
    tx: mpsc::UnboundedSender<WriteRequest>,
}

impl ScrapeSink for IngestSink {
    fn append(&self, samples: Vec<(Labels, i64, f64)>) {
        // The receiving task lives as long as the runtime; a send after it ended is moot.
        let _ = self.tx.send(write_request(samples));
    }
}

impl MetadataSink for IngestSink {
    fn metadata(&self, families: Vec<Family>) {
        let _ = self.tx.send(WriteRequest {
            metadata: families.iter().map(family_metadata).collect(),
            ..Default::default()
        });
    }
}

fn write_request(samples: Vec<(Labels, i64, f64)>) -> WriteRequest {
    WriteRequest {
        timeseries: samples
            .into_iter()
            .map(|(labels, timestamp, value)| TimeSeries {
                labels: labels
                    .pairs()
                    .iter()
                    .map(|(name, value)| Label::new(name, value))
                    .collect(),
                samples: vec![Sample { value, timestamp }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Starts scraping `pools`, writing through `ingest`; must run inside the runtime.
pub fn start(ingest: Arc<Ingest>, pools: Vec<ScrapePool>) -> ScrapeManager {
    let (tx, mut rx) = mpsc::unbounded_channel::<WriteRequest>();
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let n = req.timeseries.len();
            let metadata = req.metadata.len();
            match ingest.write(req).await {
                Ok(r) if r.count > 0 => {
                    tracing::debug!(refused = r.count, of = n, reason = %r.message, "scraped samples refused")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(samples = n, metadata, error = %e, "scraped samples dropped")
                }
            }
        }
    });
    let sink = Arc::new(IngestSink { tx });
    let manager = ScrapeManager::new(sink.clone())
        .with_metadata_sink(sink)
        .with_target_file_parser(Arc::new(parse_target_file));
    manager.start(pools);
    manager
}

/// Builds the scrape pools of one `prometheus` receiver.
///
/// # Errors
/// A message naming the job and setting (bad duration, bad relabel regex,
/// unsupported scheme), for `check-config` and start-up alike.
pub fn pools(receiver: &cfg::PrometheusReceiverConfig) -> Result<Vec<ScrapePool>, String> {
    let global = &receiver.config.global;
    receiver
        .config
        .scrape_configs
        .iter()
        .map(|sc| {
            let job = &sc.job_name;
            let at = |e: String| format!("scrape_configs[{job}]: {e}");
            let mut config = ScrapeConfig::new(job.clone());
            config.scrape_interval = sc.scrape_interval(global).map_err(at)?;
            config.scrape_timeout = sc.scrape_timeout(global).map_err(at)?;
            config.metrics_path = sc.metrics_path.clone();
            config.scheme = sc.scheme.clone();
            config.honor_labels = sc.honor_labels;
            config.honor_timestamps = sc.honor_timestamps;
            config.params = sc.params.clone();
            config.auth = auth(sc);
            config.relabel_configs = relabel(&sc.relabel_configs).map_err(at)?;
            config.metric_relabel_configs = relabel(&sc.metric_relabel_configs).map_err(at)?;
            let static_configs = sc
                .static_configs
                .iter()
                .map(|s| TargetGroup {
                    targets: s.targets.clone(),
                    labels: s.labels.clone(),
                })
                .collect();
            let file_sd_configs = sc
                .file_sd_configs
                .iter()
                .map(|sd| {
                    Ok(FileSd {
                        files: sd.files.iter().map(PathBuf::from).collect(),
                        refresh_interval: cfg::ScrapeConfig::refresh_interval(sd).map_err(at)?,
                    })
                })
                .collect::<Result<_, String>>()?;
            Ok(ScrapePool {
                config,
                static_configs,
                file_sd_configs,
            })
        })
        .collect()
}

fn secret(inline: &Option<String>, file: &Option<String>) -> Option<Secret> {
    match (inline, file) {
        (Some(s), _) => Some(Secret::Inline(s.clone())),
        (None, Some(f)) => Some(Secret::File(PathBuf::from(f))),
        (None, None) => None,
    }
}

fn auth(sc: &cfg::ScrapeConfig) -> Option<Auth> {
    if let Some(b) = &sc.basic_auth {
        return Some(Auth::Basic {
            username: b.username.clone(),
            password: secret(&b.password, &b.password_file),
        });
    }
    if let Some(a) = &sc.authorization {
        return secret(&a.credentials, &a.credentials_file).map(|credentials| {
            Auth::Authorization {
                scheme: a.kind.clone().unwrap_or_else(|| "Bearer".into()),
                credentials,
            }
        });
    }
    secret(&sc.bearer_token, &sc.bearer_token_file).map(|credentials| Auth::Authorization {
        scheme: "Bearer".into(),
        credentials,
    })
}

fn relabel(configs: &[cfg::RelabelConfig]) -> Result<Vec<RelabelConfig>, String> {
    configs
        .iter()
        .map(|r| {
            let action = match &r.action {
                None => Action::default(),
                Some(a) => {
                    Action::parse(a).ok_or_else(|| format!("unknown relabel action {a:?}"))?
                }
            };
            RelabelConfig::new(RelabelSpec {
                source_labels: r.source_labels.clone(),
                separator: r.separator.clone(),
                regex: r.regex.clone(),
                modulus: r.modulus,
                target_label: r.target_label.clone(),
                replacement: r.replacement.clone(),
                action,
            })
            .map_err(|e| e.to_string())
        })
        .collect()
}

/// Reads a `file_sd_configs` target file, JSON or YAML.
pub fn parse_target_file(text: &str) -> Result<Vec<TargetGroup>, String> {
    Ok(cfg::parse_target_file(text)?
        .into_iter()
        .map(|s| TargetGroup {
            targets: s.targets,
            labels: s.labels,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_pipeline::config::{Config, Receiver};

    fn receiver(yaml: &str) -> cfg::PrometheusReceiverConfig {
        let config = Config::from_yaml("t.yaml", yaml).unwrap();
        config
            .receivers
            .values()
            .find_map(|r| match r {
                Receiver::Prometheus(p) => Some(p.clone()),
                _ => None,
            })
            .unwrap()
    }

    const YAML: &str = r#"
receivers:
  otlp:
    protocols:
      http:
  prometheus:
    config:
      global:
        scrape_interval: 30s
      scrape_configs:
        - job_name: node
          scrape_timeout: 5s
          bearer_token: secret
          static_configs:
            - targets: [h1:9100, h2:9100]
              labels: {env: prod}
          relabel_configs:
            - source_labels: [__address__]
              regex: '(.*):9100'
              target_label: host
              replacement: $$1
        - job_name: app
          basic_auth: {username: u, password_file: /run/secret}
          file_sd_configs:
            - files: [targets/*.json]
exporters:
  pharos:
service:
  pipelines:
    metrics:
      receivers: [otlp, prometheus]
      exporters: [pharos]
"#;

    #[test]
    fn config_becomes_scrape_pools() {
        let pools = pools(&receiver(YAML)).unwrap();
        assert_eq!(pools.len(), 2);
        let node = &pools[0].config;
        assert_eq!(node.job_name, "node");
        assert_eq!(node.scrape_interval, std::time::Duration::from_secs(30));
        assert_eq!(node.scrape_timeout, std::time::Duration::from_secs(5));
        assert_eq!(
            node.auth,
            Some(Auth::Authorization {
                scheme: "Bearer".into(),
                credentials: Secret::Inline("secret".into())
            })
        );
        assert_eq!(pools[0].static_configs[0].targets, ["h1:9100", "h2:9100"]);
        let labels = pharos_metrics::store::Labels::from_pairs([("__address__", "h1:9100")]);
        let out = pharos_metrics::scrape::relabel::process(&labels, &node.relabel_configs).unwrap();
        assert_eq!(out.get("host"), Some("h1"));
        let app = &pools[1];
        assert_eq!(
            app.config.auth,
            Some(Auth::Basic {
                username: "u".into(),
                password: Some(Secret::File("/run/secret".into()))
            })
        );
        assert_eq!(
            app.file_sd_configs[0].files,
            [PathBuf::from("targets/*.json")]
        );
    }

    #[test]
    fn bad_regex_names_the_job() {
        let yaml = YAML.replace("'(.*):9100'", "'(unclosed'");
        let e = pools(&receiver(&yaml)).unwrap_err();
        assert!(
            e.starts_with("scrape_configs[node]:") && e.contains("regex"),
            "{e}"
        );
    }
}
