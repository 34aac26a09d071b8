//! `receivers.prometheus`: scraping, configured as the Collector's prometheus receiver
//! is, by embedding a Prometheus `scrape_configs` list under `config`.
//!
//! ```yaml
//! receivers:
//!   prometheus:
//!     config:
//!       global: { scrape_interval: 15s }
//!       scrape_configs:
//!         - job_name: node
//!           static_configs: [{ targets: ["127.0.0.1:9100"], labels: { env: prod } }]
//!           relabel_configs:
//!             - { source_labels: [__address__], regex: "(.*):.*", target_label: host, replacement: "$$1" }
//! ```
//!
//! As in the Collector, `$` must be written `$$` (a `${...}` is an environment
//! reference), so relabel replacements read `$$1` or `$${1}`.
//!
//! This module only types and checks the settings; `pharos_metrics::scrape` runs them.
//! Regexes are compiled (and so checked) there, since this crate has no regex engine.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// `receivers.prometheus`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusReceiverConfig {
    /// The embedded Prometheus configuration (scrape part only).
    pub config: PrometheusConfig,
}

/// `receivers.prometheus.config`: Prometheus' own file layout.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// Defaults for every scrape config.
    pub global: GlobalConfig,
    /// The jobs.
    pub scrape_configs: Vec<ScrapeConfig>,
}

/// `global`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    /// A Prometheus duration (`15s`, `1m`); default `1m`.
    pub scrape_interval: Option<String>,
    /// A Prometheus duration; default `10s`.
    pub scrape_timeout: Option<String>,
}

/// One job: `scrape_configs[]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label and the scrape pool's name; unique.
    pub job_name: String,
    /// Default: `global.scrape_interval`.
    #[serde(default)]
    pub scrape_interval: Option<String>,
    /// Default: `global.scrape_timeout`, capped at the interval; never above the interval.
    #[serde(default)]
    pub scrape_timeout: Option<String>,
    /// Default `/metrics`.
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` (default); `https` is not supported yet.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Keep the target's own labels on conflict instead of renaming them `exported_*`.
    #[serde(default)]
    pub honor_labels: bool,
    /// Keep the timestamps the target exposes (default true).
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    /// URL query parameters sent with every scrape.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// A bearer token (deprecated in Prometheus in favour of `authorization`).
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// A file holding the bearer token, read at every scrape.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// The `Authorization` header.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Fixed targets.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Targets read from JSON or YAML files.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Applied to each target's labels before scraping.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Applied to each scraped sample before it is stored.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

fn default_scheme() -> String {
    "http".into()
}

fn yes() -> bool {
    true
}

/// `basic_auth`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password; exclusive with `password_file`.
    #[serde(default)]
    pub password: Option<String>,
    /// A file holding the password, read at every scrape.
    #[serde(default)]
    pub password_file: Option<String>,
}

/// `authorization`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme; default `Bearer`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The credentials; exclusive with `credentials_file`.
    #[serde(default)]
    pub credentials: Option<String>,
    /// A file holding the credentials, read at every scrape.
    #[serde(default)]
    pub credentials_file: Option<String>,
}

/// `static_configs[]`, and one group in a file_sd target file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` addresses.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels added to every target of the group.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `file_sd_configs[]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Files (`*.json`, `*.yml`, `*.yaml`); the last path element may hold `*` and `?`.
    pub files: Vec<String>,
    /// How often the files are re-read; default `5m`.
    #[serde(default)]
    pub refresh_interval: Option<String>,
}

/// `relabel_configs[]` and `metric_relabel_configs[]`; `None` means Prometheus' default.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RelabelConfig {
    /// Labels whose values are joined into the source value.
    pub source_labels: Vec<String>,
    /// Default `;`.
    pub separator: Option<String>,
    /// Default `(.*)`, anchored.
    pub regex: Option<String>,
    /// Required by `hashmod`.
    pub modulus: Option<u64>,
    /// The label written.
    pub target_label: Option<String>,
    /// Default `$1`.
    pub replacement: Option<String>,
    /// `replace` (default), `keep`, `drop`, `keepequal`, `dropequal`, `hashmod`,
    /// `labelmap`, `labeldrop`, `labelkeep`, `lowercase`, `uppercase`.
    pub action: Option<String>,
}

/// The actions [`RelabelConfig::action`] accepts (case-insensitively, as Prometheus).
pub const RELABEL_ACTIONS: &[&str] = &[
    "replace",
    "keep",
    "drop",
    "keepequal",
    "dropequal",
    "hashmod",
    "labelmap",
    "labeldrop",
    "labelkeep",
    "lowercase",
    "uppercase",
];

/// Parses a Prometheus duration (`30s`, `1m`, `1h30m`, `2d`).
pub fn parse_prometheus_duration(s: &str) -> Option<Duration> {
    let nanos = pharos_model::duration::parse_nanos(s, pharos_model::duration::Units::WithDays)?;
    Some(Duration::from_nanos(u64::try_from(nanos).ok()?))
}

fn duration(what: &str, s: &Option<String>, default: Duration) -> Result<Duration, String> {
    match s {
        None => Ok(default),
        Some(s) => parse_prometheus_duration(s)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{what}: {s:?} is not a positive duration such as 15s or 1m")),
    }
}

impl GlobalConfig {
    /// The default interval.
    ///
    /// # Errors
    /// A message naming the bad duration.
    pub fn scrape_interval(&self) -> Result<Duration, String> {
        duration(
            "global.scrape_interval",
            &self.scrape_interval,
            Duration::from_secs(60),
        )
    }

    /// The default timeout.
    ///
    /// # Errors
    /// A message naming the bad duration.
    pub fn scrape_timeout(&self) -> Result<Duration, String> {
        duration(
            "global.scrape_timeout",
            &self.scrape_timeout,
            Duration::from_secs(10),
        )
    }
}

impl ScrapeConfig {
    /// The job's interval, after defaults.
    ///
    /// # Errors
    /// A message naming the bad duration.
    pub fn scrape_interval(&self, global: &GlobalConfig) -> Result<Duration, String> {
        duration(
            "scrape_interval",
            &self.scrape_interval,
            global.scrape_interval()?,
        )
    }

    /// The job's timeout, after defaults: the global timeout, capped at the interval.
    ///
    /// # Errors
    /// A message naming the bad duration.
    pub fn scrape_timeout(&self, global: &GlobalConfig) -> Result<Duration, String> {
        let interval = self.scrape_interval(global)?;
        let default = global.scrape_timeout()?.min(interval);
        duration("scrape_timeout", &self.scrape_timeout, default)
    }

    /// The file_sd refresh interval of `sd`, after its default (5m).
    ///
    /// # Errors
    /// A message naming the bad duration.
    pub fn refresh_interval(sd: &FileSdConfig) -> Result<Duration, String> {
        duration(
            "file_sd_configs.refresh_interval",
            &sd.refresh_interval,
            Duration::from_secs(300),
        )
    }

    fn validate(&self, global: &GlobalConfig) -> Result<(), String> {
        let interval = self.scrape_interval(global)?;
        let timeout = self.scrape_timeout(global)?;
        if timeout > interval {
            return Err("scrape_timeout: greater than scrape_interval".into());
        }
        match self.scheme.as_str() {
            "http" => {}
            "https" => return Err("scheme: https is not supported yet".into()),
            other => return Err(format!("scheme: {other:?} is not http")),
        }
        if !self.metrics_path.starts_with('/') {
            return Err(format!(
                "metrics_path: {:?} must start with /",
                self.metrics_path
            ));
        }
        let mut auths = 0;
        if let Some(b) = &self.basic_auth {
            auths += 1;
            if b.password.is_some() && b.password_file.is_some() {
                return Err("basic_auth: at most one of password and password_file".into());
            }
        }
        if self.bearer_token.is_some() || self.bearer_token_file.is_some() {
            auths += 1;
            if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
                return Err("at most one of bearer_token and bearer_token_file".into());
            }
        }
        if let Some(a) = &self.authorization {
            auths += 1;
            if a.credentials.is_some() == a.credentials_file.is_some() {
                return Err(
                    "authorization: exactly one of credentials and credentials_file".into(),
                );
            }
            if a.kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("basic"))
            {
                return Err("authorization: type Basic is not allowed; use basic_auth".into());
            }
        }
        if auths > 1 {
            return Err("at most one of basic_auth, bearer_token(_file) and authorization".into());
        }
        for (i, s) in self.static_configs.iter().enumerate() {
            for t in &s.targets {
                check_target(t).map_err(|e| format!("static_configs[{i}].targets: {e}"))?;
            }
        }
        for (i, sd) in self.file_sd_configs.iter().enumerate() {
            ScrapeConfig::refresh_interval(sd).map_err(|e| format!("file_sd_configs[{i}]: {e}"))?;
            for f in &sd.files {
                let ok = [".json", ".yml", ".yaml"].iter().any(|x| f.ends_with(x));
                if !ok {
                    return Err(format!(
                        "file_sd_configs[{i}].files: {f:?} must end in .json, .yml or .yaml"
                    ));
                }
            }
        }
        for (what, list) in [
            ("relabel_configs", &self.relabel_configs),
            ("metric_relabel_configs", &self.metric_relabel_configs),
        ] {
            for (i, r) in list.iter().enumerate() {
                if let Some(a) = &r.action
                    && !RELABEL_ACTIONS.contains(&a.to_ascii_lowercase().as_str())
                {
                    return Err(format!(
                        "{what}[{i}].action: unknown action {a:?}; expected one of {}",
                        RELABEL_ACTIONS.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A target is `host:port` (Prometheus adds no default port for static targets either).
fn check_target(t: &str) -> Result<(), String> {
    if t.is_empty() || t.contains('/') || t.contains("://") {
        return Err(format!("{t:?} is not host:port"));
    }
    Ok(())
}

impl PrometheusReceiverConfig {
    /// Checks what types alone cannot: durations, unique job names, timeout ≤ interval,
    /// the scheme, exclusive auth settings, action names.
    ///
    /// # Errors
    /// A message naming the job and setting, prefixed with `config.`.
    pub fn validate(&self) -> Result<(), String> {
        let global = &self.config.global;
        global
            .scrape_interval()
            .and_then(|_| global.scrape_timeout())
            .map_err(|e| format!("config.{e}"))?;
        if global.scrape_timeout()? > global.scrape_interval()? {
            return Err("config.global.scrape_timeout: greater than scrape_interval".into());
        }
        let mut seen = BTreeSet::new();
        for (i, job) in self.config.scrape_configs.iter().enumerate() {
            if job.job_name.is_empty() {
                return Err(format!("config.scrape_configs[{i}].job_name: empty"));
            }
            if !seen.insert(job.job_name.as_str()) {
                return Err(format!(
                    "config.scrape_configs[{i}].job_name: {:?} is used twice",
                    job.job_name
                ));
            }
            job.validate(global)
                .map_err(|e| format!("config.scrape_configs[{i}] ({}).{e}", job.job_name))?;
        }
        Ok(())
    }
}

/// Parses a file_sd target file: a list of `{targets, labels}` groups, in JSON or YAML
/// (YAML 1.2 reads JSON too).
///
/// # Errors
/// The parser's message, with line and column.
pub fn parse_target_file(text: &str) -> Result<Vec<StaticConfig>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_saphyr::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
