//! A differential check of `/api/v1/metadata`: a real Prometheus (Debian's `prometheus`
//! package) scrapes itself and remote-writes to Pharos, metadata included (sent every
//! second here, every minute by default), and both answer `/api/v1/metadata` alike.
//!
//! Prometheus lists a family's entries, and chooses the families a `limit` keeps, in map
//! order; entries are therefore compared as sets, and limited answers by size. Debian's
//! Prometheus (2.42) predates `limit_per_metric` and ignores it, so that parameter is
//! checked against Prometheus 3's documented behaviour in the unit tests instead.

mod common;

use common::prometheus::Prometheus;
use common::{Pharos, tempdir};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

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
    // Metadata every second (every minute by default).
    let prom = Prometheus::start(
        &pharos,
        "    metadata_config:\n      send: true\n      send_interval: 1s\n",
    )
    .await;
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
    // Limited answers: the same sizes. Prometheus may still register a family (a
    // handler's first request) between the two reads, so a difference is retried until
    // the deadline; Pharos catches up within a send interval.
    let sizes = |v: &Value| -> Vec<usize> {
        let mut s = families(v).values().map(BTreeSet::len).collect::<Vec<_>>();
        s.sort_unstable();
        s
    };
    for query in ["?limit=3", "?limit=-1"] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, a) = get(&format!("{}/api/v1/metadata{query}", prom.url)).await;
            let (_, b) = get(&format!("{pharos_url}/api/v1/metadata{query}")).await;
            let (sa, sb) = (sizes(&a), sizes(&b));
            if sa == sb {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "entries per family of GET /api/v1/metadata{query}: Prometheus {sa:?}, Pharos {sb:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
