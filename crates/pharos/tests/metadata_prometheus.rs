//! A differential check of `/api/v1/metadata`: a real Prometheus (Debian's `prometheus`
//! package) scrapes itself and remote-writes to Pharos, metadata included (sent every
//! second here, every minute by default), and both answer `/api/v1/metadata` alike.
//!
//! Prometheus lists a family's entries, and chooses the families a `limit` keeps, in map
//! order; entries are therefore compared as sets, and limited answers by size. Debian's
//! Prometheus (2.42) predates `limit_per_metric` and ignores it, so that parameter is
//! checked against Prometheus 3's documented behaviour in the unit tests instead.

mod common;

use common::{Pharos, tempdir};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `prometheus`, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping itself every second and remote-writing samples and
    /// metadata to `pharos`, installing Debian's `prometheus` package first if missing.
    async fn start(pharos: &Pharos) -> Prometheus {
        let bin = "prometheus";
        let have = || Command::new(bin).arg("--version").output().is_ok();
        if !have() {
            let apt = |args: &[&str]| {
                Command::new("apt-get")
                    .args(["-o", "DPkg::Lock::Timeout=300"])
                    .args(args)
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .status()
                    .is_ok_and(|s| s.success())
            };
            assert!(
                apt(&["update"]) && apt(&["install", "-y", "prometheus"]) && have(),
                "this test needs Debian's `prometheus` package: `apt-get install -y prometheus` \
                 failed; install it and rerun"
            );
        }
        let dir = tempdir();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: self
    static_configs:
      - targets: ["{addr}"]
remote_write:
  - url: {url}
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send: true
      send_interval: 1s
"#,
                url = pharos.h("/api/v1/write")
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        let prom = Prometheus {
            child,
            url: format!("http://{addr}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = reqwest::get(format!("{}/-/ready", prom.url)).await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return prom;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not get ready: {}",
                prom.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

/// GETs `url`, returning the status and the JSON body.
async fn get(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: {e}: {text}")),
    )
}

/// A metadata answer's families, each as the set of its entries' JSON.
fn families(v: &Value) -> BTreeMap<String, BTreeSet<String>> {
    v["data"]
        .as_object()
        .unwrap_or_else(|| panic!("no data object: {v}"))
        .iter()
        .map(|(name, entries)| {
            let set = entries
                .as_array()
                .unwrap()
                .iter()
                .map(Value::to_string)
                .collect();
            (name.clone(), set)
        })
        .collect()
}

#[tokio::test]
async fn prometheus_and_pharos_serve_the_same_metadata() {
    let dir = tempdir();
    let pharos = Pharos::start(dir.path());
    let prom = Prometheus::start(&pharos).await;
    let pharos_url = format!("http://{}", pharos.query);

    // Prometheus' own metadata grows while its first scrapes come in; wait until both
    // hold the same, non-trivial set.
    let deadline = Instant::now() + Duration::from_secs(90);
    let want = loop {
        let (_, want) = get(&format!("{}/api/v1/metadata", prom.url)).await;
        let (_, got) = get(&format!("{pharos_url}/api/v1/metadata")).await;
        let (w, g) = (families(&want), families(&got));
        if w.len() > 20 && w == g {
            break w;
        }
        assert!(
            Instant::now() < deadline,
            "metadata did not converge; only in Prometheus: {:?}; only in Pharos: {:?}\n\
             pharos stderr:\n{}\nprometheus log:\n{}",
            w.iter()
                .filter(|(k, v)| g.get(*k) != Some(v))
                .collect::<Vec<_>>(),
            g.iter()
                .filter(|(k, v)| w.get(*k) != Some(v))
                .collect::<Vec<_>>(),
            pharos.stderr(),
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        want.values().flatten().any(|e| e.contains("\"counter\"")),
        "{want:?}"
    );

    let family = want
        .keys()
        .find(|k| k.starts_with("prometheus_http_requests"))
        .expect("Prometheus describes its HTTP request counter")
        .clone();
    // Answers that do not depend on map order are compared whole.
    for query in [
        format!("?metric={family}"),
        "?metric=no_such_metric".into(),
        "?limit=0".into(),
        "?limit=x".into(),
        "?limit=1.5".into(),
    ] {
        let a = get(&format!("{}/api/v1/metadata{query}", prom.url)).await;
        let b = get(&format!("{pharos_url}/api/v1/metadata{query}")).await;
        assert_eq!(b, a, "GET /api/v1/metadata{query}");
    }
    // Limited answers: the same sizes.
    for query in ["?limit=3", "?limit=-1"] {
        let (_, a) = get(&format!("{}/api/v1/metadata{query}", prom.url)).await;
        let (_, b) = get(&format!("{pharos_url}/api/v1/metadata{query}")).await;
        let sizes = |v: &Value| -> Vec<usize> {
            families(v).values().map(BTreeSet::len).collect::<Vec<_>>()
        };
        let (mut sa, mut sb) = (sizes(&a), sizes(&b));
        sa.sort_unstable();
        sb.sort_unstable();
        assert_eq!(sb, sa, "entries per family of GET /api/v1/metadata{query}");
    }
}
