//! Blocks: what a query answers does not change as the head is frozen, flushed, merged
//! and reopened; needle queries skip the chunks whose filters rule them out.

use std::time::Duration;

use pharos_storage::BlockStore;

use super::*;
use crate::logql::eval::{QueryParams, Steps, Value, eval_metric, select};
use crate::logql::{Expr, parse_expr};

const S: i64 = 1_000_000_000;

fn opts() -> BlockOptions {
    BlockOptions {
        max_head_age: Duration::from_secs(3600),
        head_max_bytes: 1 << 40,
        retention: Duration::ZERO,
        compaction_window: Duration::from_secs(3600),
    }
}

/// 3 streams, `n` entries each from `t0`, a second apart; every 100th line names a
/// rare order id; metadata on every line.
fn fill(store: &LogStore, t0: i64, n: i64, salt: i64) {
    for app in ["api", "db", "web"] {
        for i in 0..n {
            let mut labels = Labels::new();
            labels.insert("app".into(), app.into());
            let line = if i % 100 == 7 {
                format!(
                    "level=error msg=\"payment failed\" order=order-{}",
                    90_000_000 + i * 31 + salt
                )
            } else {
                format!(
                    "level=info msg=\"req\" path=/p{} took={}ms id=req-{}",
                    i % 5,
                    (i * 13) % 700,
                    10_000_000 + i * 7 + salt
                )
            };
            store.push(
                labels,
                Entry {
                    ts_ns: t0 + i * S + salt,
                    line,
                    metadata: vec![("trace_id".into(), format!("{:032x}", i * 3 + salt).into())],
                },
            );
        }
    }
}

/// An entry as a query answers it: time, line, sorted labels.
type Row = (i64, String, Vec<(String, String)>);

fn log_query(store: &LogStore, q: &str, direction: Direction, limit: usize) -> Vec<Row> {
    let Expr::Log(e) = parse_expr(q).unwrap() else {
        panic!()
    };
    select(
        store,
        &e,
        &QueryParams {
            start_ns: 0,
            end_ns: i64::MAX,
            direction,
            limit,
        },
    )
    .into_iter()
    .map(|r| {
        let mut labels: Vec<(String, String)> =
            r.labels.into_iter().map(|l| (l.name, l.value)).collect();
        labels.sort();
        (r.ts_ns, r.line, labels)
    })
    .collect()
}

fn metric(store: &LogStore, q: &str, t0: i64) -> Value {
    let Expr::Metric(m) = parse_expr(q).unwrap() else {
        panic!()
    };
    eval_metric(
        store,
        &m,
        &Steps {
            start_ns: t0,
            end_ns: t0 + 3600 * S,
            step_ns: 60 * S,
        },
    )
    .unwrap()
}

/// Asserts two answer lists are equal, printing only where they first differ.
#[track_caller]
fn same(got: &[String], want: &[String], what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            let at = g
                .bytes()
                .zip(w.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(g.len().min(w.len()));
            let lo = at.saturating_sub(200);
            panic!(
                "{what}: answer {i} differs at byte {at} (lengths {} and {}):\n got ...{}\nwant ...{}",
                g.len(),
                w.len(),
                &g[lo..(at + 200).min(g.len())],
                &w[lo..(at + 200).min(w.len())]
            );
        }
    }
}

/// Every answer the tests compare across the store's states.
fn answers(store: &LogStore, t0: i64) -> Vec<String> {
    vec![
        format!(
            "{:?}",
            log_query(store, r#"{app=~".+"}"#, Direction::Forward, 100_000)
        ),
        format!(
            "{:?}",
            log_query(store, r#"{app="db"} |= "order-9""#, Direction::Backward, 7)
        ),
        format!(
            "{:?}",
            log_query(
                store,
                r#"{app=~"api|web"} | logfmt | took > 600ms"#,
                Direction::Backward,
                50
            )
        ),
        format!(
            "{:?}",
            metric(
                store,
                r#"sum by (app) (count_over_time({app=~".+"} [5m]))"#,
                t0
            )
        ),
        format!(
            "{:?}",
            metric(
                store,
                r#"sum(bytes_over_time({app="web"} |= "error" [10m]))"#,
                t0
            )
        ),
        format!("{:?}", store.series(|_| true, 0, i64::MAX)),
        format!("{:?}", store.stats(|_| true, 0, i64::MAX).entries),
    ]
}

#[tokio::test]
async fn queries_answer_the_same_from_the_head_frozen_parts_blocks_and_a_reopened_store() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_000 * S;
    let store = LogStore::new();
    store
        .open_blocks(BlockStore::local(dir.path()).unwrap(), opts())
        .await
        .unwrap();
    fill(&store, t0, 1500, 0);
    let want = answers(&store, t0);
    assert_eq!(store.freeze(None), 4500);
    same(&answers(&store, t0), &want, "frozen");
    assert_eq!(store.flush_frozen().await.unwrap(), 1);
    assert_eq!(store.block_stats().0, 1);
    same(&answers(&store, t0), &want, "in a block");
    // A second flush of later entries, then both blocks and the head at once.
    fill(&store, t0 + 1500 * S, 600, 1);
    store.freeze(None);
    store.flush_frozen().await.unwrap();
    fill(&store, t0 + 2100 * S, 300, 2);
    let want = answers(&store, t0);
    let reopened = LogStore::new();
    let report = reopened
        .open_blocks(BlockStore::local(dir.path()).unwrap(), opts())
        .await
        .unwrap();
    assert_eq!(report.blocks, 2);
    assert_eq!(report.entries, 4500 + 1800);
    fill(&reopened, t0 + 2100 * S, 300, 2);
    same(&answers(&reopened, t0), &want, "reopened");
}

#[tokio::test]
async fn needle_queries_read_only_the_chunks_that_may_hold_the_needle() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_000 * S;
    let store = LogStore::new();
    store
        .open_blocks(BlockStore::local(dir.path()).unwrap(), opts())
        .await
        .unwrap();
    // Long lines so each stream cuts many chunks.
    for i in 0..40_000i64 {
        let mut labels = Labels::new();
        labels.insert("app".into(), "shop".into());
        store.push(
            labels,
            Entry {
                ts_ns: t0 + i * 1_000_000,
                line: format!(
                    "level=info order=order-{} user=user-{} took={}ms {}",
                    50_000_000 + i * 17,
                    1_000_000 + (i * 7919) % 99_991,
                    i % 900,
                    "x".repeat(60)
                ),
                metadata: vec![],
            },
        );
    }
    store.freeze(None);
    store.flush_frozen().await.unwrap();
    take_scan_stats();
    let needle = format!("order-{}", 50_000_000 + 31_337 * 17);
    let got = log_query(
        &store,
        &format!(r#"{{app="shop"}} |= "{needle}""#),
        Direction::Backward,
        100,
    );
    let scan = take_scan_stats();
    assert_eq!(got.len(), 1);
    assert!(got[0].1.contains(&needle));
    assert!(scan.chunks_ref > 10, "{scan:?}");
    assert!(
        scan.chunks_downloaded * 10 < scan.chunks_ref,
        "a needle reads under a tenth of the chunks: {scan:?}"
    );
    // A needle that is nowhere reads (almost) nothing; a short one reads everything.
    let none = log_query(
        &store,
        r#"{app="shop"} |= "order-12345678""#,
        Direction::Backward,
        100,
    );
    let scan = take_scan_stats();
    assert!(none.is_empty());
    assert!(scan.chunks_downloaded <= 2, "{scan:?}");
    let short = log_query(
        &store,
        r#"{app="shop"} |= "took=5ms""#,
        Direction::Forward,
        100,
    );
    let scan = take_scan_stats();
    assert_eq!(short.len(), 40_000 / 900 + 1);
    assert_eq!(scan.chunks_downloaded, scan.chunks_ref);
}

#[tokio::test]
async fn compaction_merges_a_finished_window_and_drops_duplicates_and_retention_drops_old_blocks() {
    let dir = tempfile::tempdir().unwrap();
    // An hour-aligned window well in the past.
    let t0 = (1_700_000_000 / 3600) * 3600 * S;
    let store = LogStore::new();
    let mut o = opts();
    o.max_head_age = Duration::ZERO;
    store
        .open_blocks(BlockStore::local(dir.path()).unwrap(), o)
        .await
        .unwrap();
    fill(&store, t0, 400, 0);
    store.freeze(None);
    store.flush_frozen().await.unwrap();
    fill(&store, t0 + 400 * S, 400, 1);
    // The same entries again, as a replay after a crash between flush and log deletion.
    fill(&store, t0 + 400 * S, 400, 1);
    let mut want = answers(&store, t0);
    store.freeze(None);
    store.flush_frozen().await.unwrap();
    assert_eq!(store.block_stats().0, 2);
    let m = store.maintain().await.unwrap();
    assert_eq!((m.compacted, m.created, m.dropped), (2, 1, 0), "{m:?}");
    assert_eq!(store.block_stats().0, 1);
    let got = answers(&store, t0);
    assert_eq!(
        store.stats(|_| true, 0, i64::MAX).entries,
        3 * 800,
        "duplicates dropped"
    );
    assert_ne!(got, want);
    // Without the duplicates, the answers equal a store that never held them.
    let clean = LogStore::new();
    fill(&clean, t0, 400, 0);
    fill(&clean, t0 + 400 * S, 400, 1);
    want = answers(&clean, t0);
    same(&got, &want, "merged");
    // The merged block replaced its parents on disk too.
    let reopened = LogStore::new();
    let report = reopened
        .open_blocks(BlockStore::local(dir.path()).unwrap(), opts())
        .await
        .unwrap();
    assert_eq!(report.blocks, 1);
    same(&answers(&reopened, t0), &want, "merged and reopened");
    // Retention: everything is years old.
    let mut o = opts();
    o.retention = Duration::from_secs(24 * 3600);
    let old = LogStore::new();
    old.open_blocks(BlockStore::local(dir.path()).unwrap(), o)
        .await
        .unwrap();
    assert_eq!(old.maintain().await.unwrap().dropped, 1);
    assert_eq!(old.block_stats().0, 0);
    assert!(log_query(&old, r#"{app=~".+"}"#, Direction::Forward, 10).is_empty());
}

#[tokio::test]
async fn a_damaged_block_is_not_served_and_the_others_are() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_000 * S;
    let store = LogStore::new();
    store
        .open_blocks(BlockStore::local(dir.path()).unwrap(), opts())
        .await
        .unwrap();
    fill(&store, t0, 200, 0);
    store.freeze(None);
    store.flush_frozen().await.unwrap();
    fill(&store, t0 + 200 * S, 200, 1);
    store.freeze(None);
    store.flush_frozen().await.unwrap();
    let ids: Vec<String> = store.blocks.read().iter().map(|b| b.id.clone()).collect();
    // Cut the second block's index short.
    let index = dir.path().join(&ids[1]).join(block::INDEX_FILE);
    let bytes = std::fs::read(&index).unwrap();
    std::fs::write(&index, &bytes[..bytes.len() / 2]).unwrap();
    let reopened = LogStore::new();
    let report = reopened
        .open_blocks(BlockStore::local(dir.path()).unwrap(), opts())
        .await
        .unwrap();
    assert_eq!(report.blocks, 1);
    assert_eq!(report.unreadable, vec![ids[1].clone()]);
    assert_eq!(reopened.stats(|_| true, 0, i64::MAX).entries, 600);
}
