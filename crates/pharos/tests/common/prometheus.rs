//! A real Prometheus (Debian's `prometheus` package, installed when missing) scraping
//! itself every second and remote-writing to a Pharos, for differential tests.

use super::{Pharos, tempdir};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `prometheus`, killed when dropped.
pub struct Prometheus {
    child: Child,
    pub url: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping itself every second and remote-writing to `pharos`;
    /// `remote_write_extra` is YAML added to the remote_write entry (indented by six
    /// spaces, as `metadata_config:` would be).
    pub async fn start(pharos: &Pharos, remote_write_extra: &str) -> Prometheus {
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
  evaluation_interval: 1s
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
{remote_write_extra}"#,
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

    /// Returns what Prometheus logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}
