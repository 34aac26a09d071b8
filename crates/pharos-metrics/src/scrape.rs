//! Scraping: Pharos' `prometheus` receiver, pulling targets as Prometheus does.
//!
//! - [`parse`]: the Prometheus text 0.0.4 and OpenMetrics 1.0 text parsers.
//! - [`relabel`]: `relabel_configs` / `metric_relabel_configs` semantics.
//! - [`target`]: from discovered `host:port` entries to target labels and URLs.
//! - [`scraper`]: the [`ScrapeManager`], one tokio task per target, writing samples,
//!   report series (`up`, `scrape_duration_seconds`, ...) and stale markers to a
//!   [`ScrapeSink`], and keeping the state `/api/v1/targets` shows.
//!
//! Start at [`ScrapeManager`]. The settings arrive as a [`ScrapeConfig`] per job (the
//! binary builds them from `pharos_pipeline`'s `receivers.prometheus` section), targets as
//! [`TargetGroup`]s, either fixed or read from files ([`FileSd`]).
//!
//! Architecture invariant: this module knows the store only through [`ScrapeSink`], and
//! knows no JSON wire types of the API; the targets API gets plain structs
//! ([`scraper::TargetStatus`]).

pub mod parse;
pub mod relabel;
pub mod scraper;
pub mod target;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use relabel::{Action, RelabelConfig, RelabelSpec};
pub use scraper::{DroppedTarget, Health, ScrapeManager, TargetStatus, TargetsSnapshot};

use crate::MetricsStore;
use crate::store::Labels;

/// Where scraped samples go: `(labels, t_ms, value)` triples, stale markers included
/// (value bits [`crate::store::STALE_NAN_BITS`]).
pub trait ScrapeSink: Send + Sync + 'static {
    /// Takes the samples of one scrape (or one batch of stale markers).
    fn append(&self, samples: Vec<(Labels, i64, f64)>);
}

impl ScrapeSink for MetricsStore {
    fn append(&self, samples: Vec<(Labels, i64, f64)>) {
        for (labels, t, v) in samples {
            self.append_sample(labels, t, v);
        }
    }
}

/// One job's settings, with defaults already applied and regexes compiled.
#[derive(Debug, Clone)]
pub struct ScrapeConfig {
    /// The `job` label and the scrape pool's name.
    pub job_name: String,
    /// How often each target is scraped.
    pub scrape_interval: Duration,
    /// How long one scrape may take.
    pub scrape_timeout: Duration,
    /// Default `/metrics`.
    pub metrics_path: String,
    /// `http`.
    pub scheme: String,
    /// Keep the target's labels on conflict instead of renaming them `exported_*`.
    pub honor_labels: bool,
    /// Keep the timestamps the target exposes.
    pub honor_timestamps: bool,
    /// URL query parameters.
    pub params: BTreeMap<String, Vec<String>>,
    /// The `Authorization` header to send.
    pub auth: Option<Auth>,
    /// Applied to targets.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Applied to samples.
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

impl ScrapeConfig {
    /// Returns a job with Prometheus' defaults: every minute, 10s timeout, `/metrics`,
    /// `http`, honor_timestamps.
    pub fn new(job_name: impl Into<String>) -> ScrapeConfig {
        ScrapeConfig {
            job_name: job_name.into(),
            scrape_interval: Duration::from_secs(60),
            scrape_timeout: Duration::from_secs(10),
            metrics_path: "/metrics".into(),
            scheme: "http".into(),
            honor_labels: false,
            honor_timestamps: true,
            params: BTreeMap::new(),
            auth: None,
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
        }
    }
}

/// A secret given inline or read from a file at every scrape.
#[derive(Clone, PartialEq)]
pub enum Secret {
    /// The value itself.
    Inline(String),
    /// A file whose contents (trailing whitespace trimmed) are the value.
    File(PathBuf),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Inline(<secret>)"),
            Secret::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

impl Secret {
    fn read(&self) -> Result<String, String> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(p) => std::fs::read_to_string(p)
                .map(|s| s.trim_end().to_owned())
                .map_err(|e| format!("reading {}: {e}", p.display())),
        }
    }
}

/// The credentials a scrape sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// `basic_auth`.
    Basic {
        /// The user name.
        username: String,
        /// The password, if any.
        password: Option<Secret>,
    },
    /// `authorization` (and `bearer_token`/`bearer_token_file`, scheme `Bearer`).
    Authorization {
        /// `Bearer` unless configured otherwise.
        scheme: String,
        /// The credentials.
        credentials: Secret,
    },
}

/// A set of targets sharing labels: `static_configs[]` or one entry of a file_sd file.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    /// `host:port` addresses.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels of every target in the group.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Parses the text of a target file; JSON by default, see [`ScrapeManager::with_target_file_parser`].
pub type TargetFileParser =
    std::sync::Arc<dyn Fn(&str) -> Result<Vec<TargetGroup>, String> + Send + Sync>;

/// `file_sd_configs[]`: target files re-read every `refresh_interval`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSd {
    /// Paths; the last element may hold `*` and `?` wildcards.
    pub files: Vec<PathBuf>,
    /// How often the files are re-read (Prometheus also watches them; Pharos polls).
    pub refresh_interval: Duration,
}

/// One job: its settings and where its targets come from.
#[derive(Debug, Clone)]
pub struct ScrapePool {
    /// The settings.
    pub config: ScrapeConfig,
    /// `static_configs`.
    pub static_configs: Vec<TargetGroup>,
    /// `file_sd_configs`.
    pub file_sd_configs: Vec<FileSd>,
}
