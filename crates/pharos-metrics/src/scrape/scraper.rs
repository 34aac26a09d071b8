//! The scrape manager: one tokio task per target, as Prometheus' scrape loops.
//!
//! Each loop scrapes at its interval (offset by a hash of the target, so targets spread
//! over the interval), parses the body, merges target labels (`honor_labels`), applies
//! `metric_relabel_configs`, stamps samples with the scrape's start time (or their own
//! with `honor_timestamps`), and hands them to the [`ScrapeSink`] together with the
//! report series `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//! `scrape_samples_post_metric_relabeling` and `scrape_series_added`. With
//! [`ScrapeManager::with_metadata_sink`], each successful scrape's metadata (`# TYPE`,
//! `# HELP`, `# UNIT`) goes to a [`MetadataSink`] first, as Prometheus keeps it per target
//! for `/api/v1/metadata`.
//!
//! Staleness, as in Prometheus: a series written by the previous scrape and missing from
//! this one gets a stale marker at this scrape's time; a failed scrape marks every series
//! of the previous scrape stale; a target that disappears from discovery marks all its
//! series, report series included, stale. Series exposed with their own timestamp are not
//! tracked (Prometheus' default `track_timestamps_staleness: false`). Shutting the
//! manager down writes no markers, again like Prometheus.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use reqwest::Url;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::parse::{self, Format};
use super::target::{self, Populated, Target};
use super::{
    Auth, FileSd, ScrapeConfig, ScrapePool, ScrapeSink, TargetFileParser, TargetGroup, relabel,
};
use crate::remote_write::proto::{MetricMetadata, MetricType as WireType};
use crate::store::{Labels, METRIC_NAME, STALE_NAN_BITS};

/// Where scraped metric metadata goes: the families of one scrape that had a `# TYPE`,
/// `# HELP` or `# UNIT` line, in order of first mention. Every successful scrape hands
/// over its families again; the sink keeps what is new.
pub trait MetadataSink: Send + Sync + 'static {
    /// Takes one scrape's metadata, before the scrape's samples reach the [`ScrapeSink`].
    fn metadata(&self, families: Vec<parse::Family>);
}

/// Stores the metadata directly, as the [`ScrapeSink`] of a `MetricsStore` stores samples.
impl MetadataSink for crate::MetricsStore {
    fn metadata(&self, families: Vec<parse::Family>) {
        for f in &families {
            self.metadata().add(&family_metadata(f));
        }
    }
}

/// Returns a scraped family's metadata as remote_write carries it: a family without a
/// `# TYPE` line is `unknown`, one without `# HELP` or `# UNIT` has empty ones.
pub fn family_metadata(f: &parse::Family) -> MetricMetadata {
    use parse::MetricType as T;
    let kind = match f.kind {
        T::Counter => WireType::Counter,
        T::Gauge => WireType::Gauge,
        T::Histogram => WireType::Histogram,
        T::GaugeHistogram => WireType::Gaugehistogram,
        T::Summary => WireType::Summary,
        T::Info => WireType::Info,
        T::StateSet => WireType::Stateset,
        T::Unknown => WireType::Unknown,
    };
    MetricMetadata {
        r#type: kind as i32,
        metric_family_name: f.name.clone(),
        help: f.help.clone().unwrap_or_default(),
        unit: f.unit.clone().unwrap_or_default(),
    }
}

/// The `Accept` header Prometheus 2 sends: OpenMetrics preferred, text 0.0.4 accepted.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A target's health, as `/api/v1/targets` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The last scrape succeeded.
    Up,
    /// The last scrape failed.
    Down,
    /// Not scraped yet.
    Unknown,
}

impl Health {
    /// Returns `up`, `down` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }
}

/// One active target, as `/api/v1/targets` shows it (`activeTargets[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetStatus {
    /// The labels before relabeling.
    pub discovered_labels: Labels,
    /// The labels after relabeling.
    pub labels: Labels,
    /// The job name.
    pub scrape_pool: String,
    /// The URL scraped.
    pub scrape_url: String,
    /// The URL as seen from elsewhere; for now the same as `scrape_url`.
    pub global_url: String,
    /// The last scrape's error, empty after a success.
    pub last_error: String,
    /// When the last scrape started; `None` before the first.
    pub last_scrape: Option<SystemTime>,
    /// How long the last scrape took.
    pub last_scrape_duration: Duration,
    /// Up, down or unknown.
    pub health: Health,
    /// The interval as Prometheus formats it (`15s`).
    pub scrape_interval: String,
    /// The timeout as Prometheus formats it.
    pub scrape_timeout: String,
}

/// A target relabeling dropped (`droppedTargets[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedTarget {
    /// Its labels before relabeling.
    pub discovered_labels: Labels,
    /// The job name.
    pub scrape_pool: String,
}

/// What `/api/v1/targets` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetsSnapshot {
    /// Targets being scraped, by job then labels.
    pub active: Vec<TargetStatus>,
    /// Targets relabeling dropped.
    pub dropped: Vec<DroppedTarget>,
}

/// Runs the scrape pools; cheap to clone (a handle).
#[derive(Clone)]
pub struct ScrapeManager {
    inner: Arc<Inner>,
}

struct Inner {
    sink: Arc<dyn ScrapeSink>,
    metadata: Option<Arc<dyn MetadataSink>>,
    client: reqwest::Client,
    parser: TargetFileParser,
    pools: Mutex<BTreeMap<String, Pool>>,
    discovery: Mutex<Vec<JoinHandle<()>>>,
}

struct Pool {
    config: Arc<ScrapeConfig>,
    loops: BTreeMap<(Labels, String), Loop>,
    dropped: Vec<Labels>,
}

struct Loop {
    status: Arc<Mutex<TargetStatus>>,
    /// Sends whether the loop should write end-of-run stale markers.
    stop: oneshot::Sender<bool>,
    task: JoinHandle<()>,
}

impl ScrapeManager {
    /// Returns a manager writing to `sink`, with no pools yet.
    pub fn new(sink: Arc<dyn ScrapeSink>) -> ScrapeManager {
        let client = reqwest::Client::builder()
            .user_agent(concat!("Pharos/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("BUG: a plain HTTP client always builds");
        let parser: TargetFileParser = Arc::new(|text: &str| {
            serde_json::from_str::<Vec<TargetGroup>>(text).map_err(|e| e.to_string())
        });
        ScrapeManager {
            inner: Arc::new(Inner {
                sink,
                metadata: None,
                client,
                parser,
                pools: Mutex::new(BTreeMap::new()),
                discovery: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Replaces the target file parser (JSON only by default) with one that also reads
    /// YAML, such as `pharos_pipeline`'s `parse_target_file` with a conversion.
    ///
    /// # Panics
    /// If called after [`ScrapeManager::start`] (a bug).
    pub fn with_target_file_parser(self, parser: TargetFileParser) -> ScrapeManager {
        let inner = Arc::try_unwrap(self.inner)
            .unwrap_or_else(|_| panic!("BUG: with_target_file_parser after start"));
        ScrapeManager {
            inner: Arc::new(Inner { parser, ..inner }),
        }
    }

    /// Also hands each successful scrape's metric metadata to `sink` (none by default).
    ///
    /// # Panics
    /// If called after [`ScrapeManager::start`] (a bug).
    pub fn with_metadata_sink(self, sink: Arc<dyn MetadataSink>) -> ScrapeManager {
        let inner = Arc::try_unwrap(self.inner)
            .unwrap_or_else(|_| panic!("BUG: with_metadata_sink after start"));
        ScrapeManager {
            inner: Arc::new(Inner {
                metadata: Some(sink),
                ..inner
            }),
        }
    }

    /// Starts scraping `pools`: their static targets at once, their target files polled
    /// every refresh interval.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(&self, pools: Vec<ScrapePool>) {
        for pool in pools {
            let job = pool.config.job_name.clone();
            self.inner.pools.lock().insert(
                job.clone(),
                Pool {
                    config: Arc::new(pool.config),
                    loops: BTreeMap::new(),
                    dropped: Vec::new(),
                },
            );
            self.set_targets(&job, pool.static_configs.clone());
            if !pool.file_sd_configs.is_empty() {
                let me = self.clone();
                let task = tokio::spawn(async move {
                    me.file_sd_loop(job, pool.static_configs, pool.file_sd_configs)
                        .await;
                });
                self.inner.discovery.lock().push(task);
            }
        }
    }

    /// Sets the complete list of target groups of `job`: new targets start, vanished ones
    /// stop and have their series marked stale, unchanged ones keep running. Unknown jobs
    /// are ignored.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn set_targets(&self, job: &str, groups: Vec<TargetGroup>) {
        let mut pools = self.inner.pools.lock();
        let Some(pool) = pools.get_mut(job) else {
            return;
        };
        let mut wanted: BTreeMap<(Labels, String), Target> = BTreeMap::new();
        pool.dropped.clear();
        for p in target::populate(&pool.config, &groups) {
            match p {
                Ok(Populated::Active(t)) => {
                    wanted.insert((t.labels.clone(), t.url.to_string()), t);
                }
                Ok(Populated::Dropped(l)) => pool.dropped.push(l),
                Err(e) => tracing::warn!(job, error = %e, "skipping scrape target"),
            }
        }
        let gone: Vec<_> = pool
            .loops
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(l) = pool.loops.remove(&k) {
                let _ = l.stop.send(true);
            }
        }
        for (k, t) in wanted {
            if pool.loops.contains_key(&k) {
                continue;
            }
            let cfg = pool.config.clone();
            let status = Arc::new(Mutex::new(TargetStatus {
                discovered_labels: t.discovered_labels.clone(),
                labels: t.labels.clone(),
                scrape_pool: cfg.job_name.clone(),
                scrape_url: t.url.to_string(),
                global_url: t.url.to_string(),
                last_error: String::new(),
                last_scrape: None,
                last_scrape_duration: Duration::ZERO,
                health: Health::Unknown,
                scrape_interval: target::format_duration(cfg.scrape_interval),
                scrape_timeout: target::format_duration(cfg.scrape_timeout),
            }));
            let (stop, stop_rx) = oneshot::channel();
            let looper = ScrapeLoop {
                sink: self.inner.sink.clone(),
                metadata: self.inner.metadata.clone(),
                client: self.inner.client.clone(),
                cfg,
                target: t,
                status: status.clone(),
            };
            let task = tokio::spawn(looper.run(stop_rx));
            pool.loops.insert(k, Loop { status, stop, task });
        }
    }

    /// Returns the state of every target.
    pub fn targets(&self) -> TargetsSnapshot {
        let pools = self.inner.pools.lock();
        let mut snap = TargetsSnapshot::default();
        for (job, pool) in pools.iter() {
            snap.active
                .extend(pool.loops.values().map(|l| l.status.lock().clone()));
            snap.dropped
                .extend(pool.dropped.iter().map(|l| DroppedTarget {
                    discovered_labels: l.clone(),
                    scrape_pool: job.clone(),
                }));
        }
        snap
    }

    /// Stops discovery and every loop and waits for them; writes no stale markers.
    pub async fn stop(&self) {
        for t in self.inner.discovery.lock().drain(..) {
            t.abort();
        }
        let loops: Vec<Loop> = {
            let mut pools = self.inner.pools.lock();
            pools
                .values_mut()
                .flat_map(|p| std::mem::take(&mut p.loops).into_values())
                .collect()
        };
        for l in loops {
            let _ = l.stop.send(false);
            let _ = l.task.await;
        }
    }

    async fn file_sd_loop(&self, job: String, statics: Vec<TargetGroup>, sds: Vec<FileSd>) {
        let refresh = sds
            .iter()
            .map(|s| s.refresh_interval)
            .min()
            .unwrap_or(Duration::from_secs(300))
            .max(Duration::from_millis(10));
        // The last good contents per file: a file that fails to parse keeps its targets.
        let mut last_good: HashMap<PathBuf, Vec<TargetGroup>> = HashMap::new();
        loop {
            let mut seen = HashSet::new();
            for sd in &sds {
                for path in sd.files.iter().flat_map(|p| expand_glob(p)) {
                    seen.insert(path.clone());
                    match std::fs::read_to_string(&path)
                        .map_err(|e| e.to_string())
                        .and_then(|text| (self.inner.parser)(&text))
                    {
                        Ok(groups) => {
                            last_good.insert(path, groups);
                        }
                        Err(e) => {
                            tracing::warn!(job, file = %path.display(), error = %e, "reading target file")
                        }
                    }
                }
            }
            last_good.retain(|p, _| seen.contains(p));
            let mut groups = statics.clone();
            let mut files: Vec<_> = last_good.iter().collect();
            files.sort_by(|a, b| a.0.cmp(b.0));
            groups.extend(files.into_iter().flat_map(|(_, g)| g.iter().cloned()));
            self.set_targets(&job, groups);
            tokio::time::sleep(refresh).await;
        }
    }
}

/// Returns the files `pattern` names: itself, or the matches of `*`/`?` in its last element.
fn expand_glob(pattern: &Path) -> Vec<PathBuf> {
    let Some(name) = pattern.file_name().and_then(|n| n.to_str()) else {
        return vec![pattern.to_owned()];
    };
    if !name.contains(['*', '?']) {
        return vec![pattern.to_owned()];
    }
    let dir = match pattern.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| wildcard(name, n)))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Matches `name` against a pattern of literal characters, `*` and `?`.
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

struct ScrapeLoop {
    sink: Arc<dyn ScrapeSink>,
    metadata: Option<Arc<dyn MetadataSink>>,
    client: reqwest::Client,
    cfg: Arc<ScrapeConfig>,
    target: Target,
    status: Arc<Mutex<TargetStatus>>,
}

/// The report series' names.
const REPORT: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn stale() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

impl ScrapeLoop {
    async fn run(self, mut stop: oneshot::Receiver<bool>) {
        let interval = self.cfg.scrape_interval.max(Duration::from_millis(1));
        let offset_ms = self.target.labels.fingerprint() % interval.as_millis().max(1) as u64;
        let mut next = Instant::now() + Duration::from_millis(offset_ms);
        // Series written by the previous scrape (without their own timestamp).
        let mut previous: HashSet<Labels> = HashSet::new();
        let mut reported = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next.into()) => {}
                end = &mut stop => {
                    if end.unwrap_or(false) {
                        self.end_of_run(previous, reported);
                    }
                    return;
                }
            }
            next += interval;
            let now = Instant::now();
            while next <= now {
                next += interval;
            }
            let start = SystemTime::now();
            let t_ms = now_ms();
            let began = Instant::now();
            let result = tokio::select! {
                r = scrape(&self.client, &self.cfg, &self.target.url) => r,
                end = &mut stop => {
                    if end.unwrap_or(false) {
                        self.end_of_run(previous, reported);
                    }
                    return;
                }
            };
            let result = result.and_then(|(body, format)| {
                parse::parse(&body, format).map_err(|e| format!("parsing scrape body: {e}"))
            });
            let elapsed = began.elapsed();
            let (mut out, current, scraped, post, error) = match result {
                Ok(mut parsed) => {
                    if let Some(sink) = &self.metadata
                        && !parsed.families.is_empty()
                    {
                        sink.metadata(std::mem::take(&mut parsed.families));
                    }
                    let scraped = parsed.samples.len();
                    let (out, current) = self.samples(parsed, t_ms);
                    let post = out.len();
                    (out, current, scraped, post, None)
                }
                Err(e) => (Vec::new(), HashSet::new(), 0, 0, Some(e)),
            };
            let added = current.difference(&previous).count();
            out.extend(
                previous
                    .difference(&current)
                    .map(|l| (l.clone(), t_ms, stale())),
            );
            let up = if error.is_none() { 1.0 } else { 0.0 };
            let values = [
                up,
                elapsed.as_secs_f64(),
                scraped as f64,
                post as f64,
                added as f64,
            ];
            for (name, v) in REPORT.iter().zip(values) {
                out.push((self.report_labels(name), t_ms, v));
            }
            reported = true;
            previous = current;
            self.sink.append(out);
            let mut s = self.status.lock();
            s.last_scrape = Some(start);
            s.last_scrape_duration = elapsed;
            match error {
                None => {
                    s.health = Health::Up;
                    s.last_error.clear();
                }
                Some(e) => {
                    tracing::debug!(url = %self.target.url, error = %e, "scrape failed");
                    s.health = Health::Down;
                    s.last_error = e;
                }
            }
        }
    }

    fn report_labels(&self, name: &str) -> Labels {
        Labels::from_pairs(
            self.target
                .labels
                .pairs()
                .iter()
                .cloned()
                .chain([(METRIC_NAME.to_owned(), name.to_owned())]),
        )
    }

    /// Marks every series of the last scrape, and the report series, stale.
    fn end_of_run(&self, previous: HashSet<Labels>, reported: bool) {
        let t = now_ms();
        let mut out: Vec<_> = previous.into_iter().map(|l| (l, t, stale())).collect();
        if reported {
            out.extend(REPORT.iter().map(|n| (self.report_labels(n), t, stale())));
        }
        if !out.is_empty() {
            self.sink.append(out);
        }
    }

    /// Merges target labels, relabels and stamps the parsed samples; returns them and the
    /// series to track for staleness.
    fn samples(
        &self,
        parsed: parse::Parsed,
        t_ms: i64,
    ) -> (Vec<(Labels, i64, f64)>, HashSet<Labels>) {
        let mut out = Vec::with_capacity(parsed.samples.len());
        let mut tracked = HashSet::with_capacity(parsed.samples.len());
        for s in parsed.samples {
            let merged = merge_target_labels(&s.labels, &self.target.labels, self.cfg.honor_labels);
            let Some(labels) = relabel::process(&merged, &self.cfg.metric_relabel_configs) else {
                continue;
            };
            if labels.get(METRIC_NAME).is_none() {
                continue;
            }
            let t = match s.timestamp_ms {
                Some(own) if self.cfg.honor_timestamps => own,
                _ => {
                    tracked.insert(labels.clone());
                    t_ms
                }
            };
            out.push((labels, t, s.value));
        }
        (out, tracked)
    }
}

/// Adds the target's labels to a sample's, as Prometheus' `mutateSampleLabels`: with
/// `honor_labels` the sample's own win; otherwise the target's win and each clashing
/// sample label is kept as `exported_<name>` (`exported_exported_<name>` if that is taken).
pub fn merge_target_labels(sample: &Labels, target: &Labels, honor_labels: bool) -> Labels {
    let mut lb: BTreeMap<String, String> = sample.pairs().iter().cloned().collect();
    if honor_labels {
        for (k, v) in target.pairs() {
            lb.entry(k.clone()).or_insert_with(|| v.clone());
        }
    } else {
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for (k, v) in target.pairs() {
            if let Some(existing) = sample.get(k) {
                conflicts.push((k.clone(), existing.to_owned()));
            }
            lb.insert(k.clone(), v.clone());
        }
        conflicts.sort_by_key(|(k, _)| k.len());
        for (k, v) in conflicts {
            let mut name = k;
            loop {
                name = format!("exported_{name}");
                if let std::collections::btree_map::Entry::Vacant(e) = lb.entry(name.clone()) {
                    e.insert(v);
                    break;
                }
            }
        }
    }
    Labels::from_pairs(lb)
}

/// Fetches one body; returns it with its format.
async fn scrape(
    client: &reqwest::Client,
    cfg: &ScrapeConfig,
    url: &Url,
) -> Result<(String, Format), String> {
    let mut req = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, ACCEPT_HEADER)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", cfg.scrape_timeout.as_secs_f64()),
        )
        .timeout(cfg.scrape_timeout);
    match &cfg.auth {
        None => {}
        Some(Auth::Basic { username, password }) => {
            let password = password.as_ref().map(|p| p.read()).transpose()?;
            req = req.basic_auth(username, password);
        }
        Some(Auth::Authorization {
            scheme,
            credentials,
        }) => {
            let value = format!("{scheme} {}", credentials.read()?);
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
    }
    let http_error = |e: reqwest::Error| {
        if e.is_timeout() {
            "context deadline exceeded".to_string()
        } else {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg = format!("{msg}: {s}");
                source = s.source();
            }
            msg
        }
    };
    let resp = req.send().await.map_err(http_error)?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("server returned HTTP status {}", resp.status()));
    }
    let format = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map_or(Format::PrometheusText, Format::from_content_type);
    let body = resp.bytes().await.map_err(http_error)?;
    let body =
        String::from_utf8(body.to_vec()).map_err(|_| "scrape body is not UTF-8".to_string())?;
    Ok((body, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn honor_labels_false_renames_clashes() {
        let sample = l(&[("__name__", "m"), ("job", "theirs"), ("exported_job", "x")]);
        let target = l(&[("job", "ours"), ("instance", "h:1")]);
        assert_eq!(
            merge_target_labels(&sample, &target, false),
            l(&[
                ("__name__", "m"),
                ("job", "ours"),
                ("instance", "h:1"),
                ("exported_job", "x"),
                ("exported_exported_job", "theirs"),
            ])
        );
        assert_eq!(
            merge_target_labels(&sample, &target, true),
            l(&[
                ("__name__", "m"),
                ("job", "theirs"),
                ("instance", "h:1"),
                ("exported_job", "x"),
            ])
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*.json", "a.json"));
        assert!(wildcard("t?.y*ml", "t1.yaml"));
        assert!(!wildcard("*.json", "a.yml"));
        assert!(wildcard("*", ""));
    }
}
