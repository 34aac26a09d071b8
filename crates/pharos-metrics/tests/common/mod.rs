//! What the tests that run real peers share: installing Debian's packages
//! when their programs are missing, free ports, and child-process guards.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

/// Kills a child process when the test ends, however it ends.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Returns whether `bin` is on the PATH.
pub fn have(bin: &str) -> bool {
    Command::new("which")
        .arg(bin)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs Debian's `package` when any of `bins` is missing: `apt-get update`
/// once, then `apt-get install -y`, waiting for the dpkg lock if another
/// test is installing at the same time.
///
/// # Panics
/// When the programs are still missing afterwards, naming the package.
pub fn ensure_package(package: &str, bins: &[&str]) {
    // Tests of one binary run in parallel: one apt-get at a time.
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = APT.lock().unwrap_or_else(|e| e.into_inner());
    if bins.iter().all(|b| have(b)) {
        return;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=300"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let installed = apt(&["update"]) && apt(&["install", "-y", package]);
    assert!(
        installed && bins.iter().all(|b| have(b)),
        "this test needs Debian's `{package}` package (for {bins:?}): `apt-get install -y {package}` \
         failed; install it and rerun"
    );
}

/// Returns a port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Debian's `prometheus` on a free port with its data in `dir/tsdb` (which may
/// already hold blocks) and `args` added, and waits until it is ready; returns its
/// guard and base URL.
pub async fn start_prometheus(dir: &std::path::Path, args: &[&str]) -> (ChildGuard, String) {
    use std::time::{Duration, Instant};
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .args(args)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let guard = ChildGuard(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.get(format!("{base}/-/ready")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not become ready within 60s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (guard, base)
}
