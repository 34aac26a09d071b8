//! The `prometheus` receiver in the real binary: scrapes an exposition
//! endpoint, writes through the WAL (the samples survive a SIGKILL), and
//! shows its targets on `/api/v1/targets`.

mod common;

use common::{Pharos, get_json, get_json_q, tempdir};
use std::time::{Duration, Instant};

async fn exposition_server() -> String {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            "# HELP app_jobs_done_total Jobs done.\n# TYPE app_jobs_done_total counter\napp_jobs_done_total{queue=\"fast\"} 42\n# TYPE app_temperature gauge\napp_temperature 21.5\n"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_samples_are_queryable_and_durable() {
    let target = exposition_server().await;
    let dir = tempdir();
    let config_path = dir.path().join("scrape.yaml");
    let config = format!(
        r#"receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
  prometheus:
    config:
      scrape_configs:
        - job_name: app
          scrape_interval: 200ms
          scrape_timeout: 200ms
          static_configs:
            - targets: ["{target}"]
              labels: {{env: test}}
          metric_relabel_configs:
            - source_labels: [__name__]
              regex: app_temperature
              action: drop
exporters:
  pharos:
service:
  pipelines:
    metrics:
      receivers: [otlp, prometheus]
      exporters: [pharos]
query:
  endpoint: 127.0.0.1:0
storage:
  path: {data}
"#,
        data = dir.path().join("data").display()
    );
    std::fs::write(&config_path, config).unwrap();
    let mut p = Pharos::start_config(dir.path(), &config_path);

    let query = p.q("/api/v1/query");
    let deadline = Instant::now() + Duration::from_secs(20);
    let v = loop {
        let v = get_json_q(&query, &[("query", "app_jobs_done_total")]).await;
        if v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "nothing scraped within 20 s: {}",
            p.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let m = &v["data"]["result"][0]["metric"];
    assert_eq!(m["job"], "app");
    assert_eq!(m["instance"], target.as_str());
    assert_eq!(m["env"], "test");
    assert_eq!(m["queue"], "fast");
    assert_eq!(v["data"]["result"][0]["value"][1], "42");
    let up = get_json_q(&query, &[("query", "up")]).await;
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let dropped = get_json_q(&query, &[("query", "app_temperature")]).await;
    assert_eq!(
        dropped["data"]["result"].as_array().unwrap().len(),
        0,
        "metric_relabel_configs dropped it"
    );

    let targets = get_json(&p.q("/api/v1/targets")).await;
    let t = &targets["data"]["activeTargets"][0];
    assert_eq!(t["health"], "up", "{targets}");
    assert_eq!(t["scrapePool"], "app");
    assert_eq!(t["scrapeUrl"], format!("http://{target}/metrics").as_str());

    // Through the WAL: what was scraped survives a SIGKILL.
    let series_before = get_json_q(
        &p.q("/api/v1/series"),
        &[("match[]", "app_jobs_done_total")],
    )
    .await;
    p.kill9();
    let p = Pharos::start_config(dir.path(), &config_path);
    let series_after = get_json_q(
        &p.q("/api/v1/series"),
        &[("match[]", "app_jobs_done_total")],
    )
    .await;
    assert_eq!(series_before["data"], series_after["data"]);
}
