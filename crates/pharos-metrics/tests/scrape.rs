//! The scrape manager against a real HTTP endpoint: a tiny axum server on port 0 whose
//! body and status the test changes, scraped every 200 ms into a `MetricsStore`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use parking_lot::Mutex;
use pharos_metrics::MetricsStore;
use pharos_metrics::scrape::{
    Action, Auth, Health, RelabelConfig, RelabelSpec, ScrapeConfig, ScrapeManager, ScrapePool,
    Secret, TargetGroup,
};
use pharos_metrics::store::{Labels, Matcher, Querier, SeriesSamples, is_stale};

/// What the endpoint answers: status and body; and the Authorization headers seen.
#[derive(Default)]
struct Endpoint {
    status: u16,
    body: String,
    auth_seen: Vec<String>,
}

async fn serve(state: Arc<Mutex<Endpoint>>) -> String {
    let app = Router::new().route(
        "/metrics",
        get(move |headers: axum::http::HeaderMap| {
            let state = state.clone();
            async move {
                let mut s = state.lock();
                if let Some(a) = headers.get(header::AUTHORIZATION) {
                    s.auth_seen.push(a.to_str().unwrap().to_owned());
                }
                assert!(
                    headers
                        .get(header::ACCEPT)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|a| a.contains("text/plain;version=0.0.4")),
                    "Accept header as Prometheus sends it"
                );
                (
                    StatusCode::from_u16(s.status).unwrap(),
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    s.body.clone(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

fn select(store: &MetricsStore, pairs: &[(&str, &str)]) -> Vec<SeriesSamples> {
    let ms: Vec<Matcher> = pairs.iter().map(|(k, v)| Matcher::equal(*k, *v)).collect();
    store.select(&ms, 0, i64::MAX)
}

/// The newest sample of the one series `pairs` selects.
fn last(store: &MetricsStore, pairs: &[(&str, &str)]) -> Option<f64> {
    let s = select(store, pairs);
    assert!(s.len() <= 1, "{pairs:?} selects {s:?}");
    s.first().and_then(|s| s.samples.last()).map(|x| x.1)
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    // Generous: on a loaded two-core machine 200 ms scrapes can fall seconds behind, and a
    // condition met early returns at once.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn job(name: &str) -> ScrapeConfig {
    let mut c = ScrapeConfig::new(name);
    c.scrape_interval = Duration::from_millis(200);
    c.scrape_timeout = Duration::from_millis(150);
    c
}

const BODY: &str = "\
# HELP requests_total Requests.
# TYPE requests_total counter
requests_total{path=\"/\",job=\"exporter\"} 5
temperature{room=\"a\"} 21.5
temperature{room=\"b\"} 19
go_gc_runs 3
old_sample 1 1000
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_relabels_and_marks_stale() {
    let state = Arc::new(Mutex::new(Endpoint {
        status: 200,
        body: BODY.into(),
        auth_seen: Vec::new(),
    }));
    let addr = serve(state.clone()).await;
    let store = Arc::new(MetricsStore::new());
    let manager = ScrapeManager::new(store.clone());

    let mut app = job("app");
    app.auth = Some(Auth::Authorization {
        scheme: "Bearer".into(),
        credentials: Secret::Inline("s3cret".into()),
    });
    app.metric_relabel_configs = vec![
        RelabelConfig::new(RelabelSpec {
            source_labels: vec!["__name__".into()],
            regex: Some("go_.*".into()),
            action: Action::Drop,
            ..RelabelSpec::default()
        })
        .unwrap(),
        RelabelConfig::new(RelabelSpec {
            source_labels: vec!["room".into()],
            regex: Some("(.)".into()),
            target_label: Some("room_upper".into()),
            replacement: Some("ROOM-$1".into()),
            ..RelabelSpec::default()
        })
        .unwrap(),
    ];
    let mut honor = job("honor");
    honor.honor_labels = true;
    honor.honor_timestamps = false;
    let group = TargetGroup {
        targets: vec![addr.clone()],
        labels: [("env".to_string(), "test".to_string())].into(),
    };
    manager.start(vec![
        ScrapePool {
            config: app,
            static_configs: vec![group.clone()],
            file_sd_configs: Vec::new(),
        },
        ScrapePool {
            config: honor,
            static_configs: vec![group],
            file_sd_configs: Vec::new(),
        },
    ]);

    let up = |job: &str| last(&store, &[("__name__", "up"), ("job", job)]);
    eventually("both jobs up", || {
        up("app") == Some(1.0) && up("honor") == Some(1.0)
    })
    .await;

    // Target labels: job, instance (from __address__), group labels.
    let t = select(
        &store,
        &[("__name__", "temperature"), ("room", "a"), ("job", "app")],
    );
    assert_eq!(
        t[0].labels,
        Labels::from_pairs([
            ("__name__", "temperature"),
            ("env", "test"),
            ("instance", addr.as_str()),
            ("job", "app"),
            ("room", "a"),
            ("room_upper", "ROOM-a"),
        ])
    );
    assert_eq!(t[0].samples.last().unwrap().1, 21.5);
    // honor_labels false: the exposed job is kept as exported_job.
    assert_eq!(
        last(
            &store,
            &[
                ("__name__", "requests_total"),
                ("job", "app"),
                ("exported_job", "exporter")
            ]
        ),
        Some(5.0)
    );
    // honor_labels true: the exposed job wins.
    assert_eq!(
        last(
            &store,
            &[("__name__", "requests_total"), ("job", "exporter")]
        ),
        Some(5.0)
    );
    // metric_relabel_configs dropped go_*.
    assert!(select(&store, &[("__name__", "go_gc_runs"), ("job", "app")]).is_empty());
    assert_eq!(
        last(&store, &[("__name__", "go_gc_runs"), ("job", "honor")]),
        Some(3.0)
    );
    // honor_timestamps: the own timestamp is kept for app, replaced for honor.
    let own = select(&store, &[("__name__", "old_sample"), ("job", "app")]);
    assert_eq!(own[0].samples, [(1000, 1.0)]);
    let replaced = select(&store, &[("__name__", "old_sample"), ("job", "honor")]);
    assert!(replaced[0].samples[0].0 > 1_000_000_000_000);
    // Report series.
    let report = |name: &str| last(&store, &[("__name__", name), ("job", "app")]);
    assert_eq!(report("scrape_samples_scraped"), Some(5.0));
    assert_eq!(report("scrape_samples_post_metric_relabeling"), Some(4.0));
    assert!(report("scrape_duration_seconds").unwrap() > 0.0);
    assert!(report("scrape_series_added").is_some());
    assert!(state.lock().auth_seen.iter().any(|a| a == "Bearer s3cret"));

    let snap = manager.targets();
    assert_eq!(snap.active.len(), 2);
    let app_target = snap.active.iter().find(|t| t.scrape_pool == "app").unwrap();
    assert_eq!(app_target.health, Health::Up);
    assert_eq!(app_target.scrape_url, format!("http://{addr}/metrics"));
    assert_eq!(app_target.scrape_interval, "200ms");
    assert_eq!(
        app_target.discovered_labels.get("__address__"),
        Some(addr.as_str())
    );
    assert!(app_target.last_scrape.is_some() && app_target.last_error.is_empty());

    // A series disappears: stale marker, the others keep going.
    state.lock().body = BODY.replace("temperature{room=\"b\"} 19\n", "");
    let room_b = [("__name__", "temperature"), ("room", "b"), ("job", "app")];
    eventually("stale marker for room b", || {
        last(&store, &room_b).is_some_and(is_stale)
    })
    .await;
    assert_eq!(
        last(
            &store,
            &[("__name__", "temperature"), ("room", "a"), ("job", "app")]
        ),
        Some(21.5)
    );

    // The endpoint fails: up = 0, every scraped series stale, the target down.
    state.lock().status = 500;
    eventually("up = 0", || up("app") == Some(0.0)).await;
    for pairs in [
        &[("__name__", "temperature"), ("room", "a"), ("job", "app")][..],
        &[("__name__", "requests_total"), ("job", "app")][..],
    ] {
        assert!(last(&store, pairs).is_some_and(is_stale), "{pairs:?}");
    }
    // Own-timestamp series are not tracked for staleness.
    assert_eq!(
        select(&store, &[("__name__", "old_sample"), ("job", "app")])[0].samples,
        [(1000, 1.0)]
    );
    let snap = manager.targets();
    let app_target = snap.active.iter().find(|t| t.scrape_pool == "app").unwrap();
    assert_eq!(app_target.health, Health::Down);
    assert!(
        app_target.last_error.contains("500"),
        "{}",
        app_target.last_error
    );

    // The target disappears from discovery: its report series go stale too.
    manager.set_targets("app", Vec::new());
    eventually("report series stale", || {
        last(&store, &[("__name__", "up"), ("job", "app")]).is_some_and(is_stale)
    })
    .await;
    assert_eq!(manager.targets().active.len(), 1);
    manager.stop().await;
    assert!(manager.targets().active.is_empty());
}

#[tokio::test]
async fn unreachable_targets_are_down_and_file_sd_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind, note, drop.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    std::fs::write(
        dir.path().join("targets.json"),
        format!(r#"[{{"targets": ["{addr}"], "labels": {{"team": "a"}}}}]"#),
    )
    .unwrap();
    let store = Arc::new(MetricsStore::new());
    let manager = ScrapeManager::new(store.clone());
    let mut cfg = job("files");
    cfg.relabel_configs = vec![
        RelabelConfig::new(RelabelSpec {
            source_labels: vec!["team".into()],
            regex: Some("b".into()),
            action: Action::Keep,
            ..RelabelSpec::default()
        })
        .unwrap(),
    ];
    let mut keep_all = job("files_all");
    keep_all.scrape_timeout = Duration::from_millis(100);
    let sd = pharos_metrics::scrape::FileSd {
        files: vec![dir.path().join("*.json")],
        refresh_interval: Duration::from_millis(50),
    };
    manager.start(vec![
        ScrapePool {
            config: cfg,
            static_configs: Vec::new(),
            file_sd_configs: vec![sd.clone()],
        },
        ScrapePool {
            config: keep_all,
            static_configs: Vec::new(),
            file_sd_configs: vec![sd],
        },
    ]);
    eventually("up = 0 for the unreachable target", || {
        last(
            &store,
            &[("__name__", "up"), ("job", "files_all"), ("team", "a")],
        ) == Some(0.0)
    })
    .await;
    let snap = manager.targets();
    assert_eq!(snap.active.len(), 1);
    assert_eq!(snap.active[0].health, Health::Down);
    assert!(!snap.active[0].last_error.is_empty());
    // The keep rule dropped the target of the first job.
    assert_eq!(snap.dropped.len(), 1);
    assert_eq!(snap.dropped[0].scrape_pool, "files");
    // Emptying the file removes the target.
    std::fs::write(dir.path().join("targets.json"), "[]").unwrap();
    eventually("target removed", || manager.targets().active.is_empty()).await;
    manager.stop().await;
}
