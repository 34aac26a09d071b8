//! The ecosystem's own clients, unchanged, against Pharos' Prometheus API:
//! `promtool query instant|range|series|labels` (Debian's `prometheus`) and
//! `vmalert` evaluating an alerting rule (Debian's `victoria-metrics`).

mod common;

use common::{ChildGuard, ensure_package, free_port};
use pharos_metrics::MetricsStore;
use pharos_metrics::store::Labels;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Serves the Prometheus API over a store holding `up` and a counter, with samples up to now.
async fn serve() -> (String, i64) {
    let store = Arc::new(MetricsStore::new());
    let now = now_ms();
    for (job, up) in [("api", 1.0), ("db", 0.0)] {
        for k in 0..60i64 {
            let t = now - 600_000 + k * 10_000;
            store.append_sample(
                Labels::from_pairs([("__name__", "up"), ("job", job), ("instance", "h:9100")]),
                t,
                up,
            );
            store.append_sample(
                Labels::from_pairs([
                    ("__name__", "requests_total"),
                    ("job", job),
                    ("instance", "h:9100"),
                ]),
                t,
                (k * 10) as f64,
            );
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, pharos_metrics::api::router(store))
            .await
            .unwrap()
    });
    (url, now)
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("running promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_queries_pharos() {
    ensure_package("prometheus", &["promtool"]);
    let (url, now) = serve().await;
    let url2 = url.clone();
    let outputs = tokio::task::spawn_blocking(move || {
        let url = url2;
        let t = format!("{}", now / 1000);
        let start = format!("{}", now / 1000 - 300);
        [
            promtool(&[
                "query",
                "instant",
                "--time",
                &t,
                &url,
                "sum by (job) (rate(requests_total[5m]))",
            ]),
            promtool(&[
                "query", "range", "--start", &start, "--end", &t, "--step", "60s", &url, "up == 0",
            ]),
            promtool(&["query", "series", "--match", "up", &url]),
            promtool(&["query", "labels", &url, "job"]),
            promtool(&[
                "query",
                "instant",
                "-o",
                "json",
                "--time",
                &t,
                &url,
                "count(up)",
            ]),
        ]
    })
    .await
    .unwrap();
    let [instant, range, series, labels, json] = outputs;
    // rate of +10 per 10 s is 1/s for each job.
    for job in ["api", "db"] {
        let line = instant
            .lines()
            .find(|l| l.starts_with(&format!(r#"{{job="{job}"}} => "#)))
            .unwrap_or_else(|| panic!("no {job} line in {instant}"));
        let v: f64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!((v - 1.0).abs() < 1e-9, "{line}");
    }
    assert!(
        range.contains(r#"up{instance="h:9100", job="db"} =>"#),
        "{range}"
    );
    assert!(!range.contains(r#"job="api""#), "{range}");
    assert_eq!(
        series.lines().collect::<Vec<_>>(),
        [
            r#"{__name__="up", instance="h:9100", job="api"}"#,
            r#"{__name__="up", instance="h:9100", job="db"}"#
        ],
        "{series}"
    );
    assert_eq!(labels.lines().collect::<Vec<_>>(), ["api", "db"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["value"][1], "2", "{json}");
    drop(url);
}

/// An Alertmanager stand-in that records what vmalert posts to `/api/v2/alerts`.
async fn notifier() -> (String, Arc<parking_lot::Mutex<Vec<serde_json::Value>>>) {
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let store = seen.clone();
    let app = axum::Router::new().route(
        "/api/v2/alerts",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                if let Ok(serde_json::Value::Array(alerts)) = serde_json::from_slice(&body) {
                    store.lock().extend(alerts);
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vmalert_evaluates_rules_against_pharos() {
    ensure_package("victoria-metrics", &["vmalert"]);
    let (url, _) = serve().await;
    let (notifier_url, seen) = notifier().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: pharos\n    interval: 1s\n    rules:\n      - alert: TargetDown\n        expr: up == 0\n        labels:\n          severity: page\n        annotations:\n          summary: '{{ $labels.job }} is down'\n",
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("vmalert")
        .arg(format!("-rule={}", rules.display()))
        .arg(format!("-datasource.url={url}"))
        .arg(format!("-notifier.url={notifier_url}"))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg("-evaluationInterval=1s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting vmalert");
    let mut guard = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let alert = loop {
        if let Some(a) = seen.lock().first().cloned() {
            break a;
        }
        if Instant::now() > deadline || guard.0.try_wait().unwrap().is_some() {
            let _ = guard.0.kill();
            let mut log = String::new();
            if let Some(mut e) = guard.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut log);
            }
            panic!("vmalert sent no alert within 30 s; its log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(alert["labels"]["alertname"], "TargetDown", "{alert}");
    assert_eq!(alert["labels"]["job"], "db");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["annotations"]["summary"], "db is down");
    assert!(
        seen.lock().iter().all(|a| a["labels"]["job"] == "db"),
        "only db is down"
    );
}
