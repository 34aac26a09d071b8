//! The store across flushes, compactions, retention and reopening: what reads return must
//! not depend on where the samples live.

use super::*;
use crate::store::{Matcher, Querier, SeriesSamples};

const MIN: i64 = 60_000;
const D: i64 = 60 * MIN; // a one-hour block duration keeps the numbers small

fn opts() -> BlockOptions {
    BlockOptions {
        block_duration_ms: D,
        retention_ms: 0,
        retention_bytes: 0,
        head_max_samples: u64::MAX,
        decoded_cache_bytes: 1 << 20,
    }
}

fn l(job: &str, instance: &str) -> Labels {
    Labels::from_pairs([("__name__", "up"), ("job", job), ("instance", instance)])
}

async fn open(dir: &std::path::Path, opts: BlockOptions) -> (MetricsStore, OpenReport) {
    let store = MetricsStore::new();
    let report = store
        .open_blocks(BlockStore::local(dir).unwrap(), opts)
        .await
        .unwrap();
    (store, report)
}

/// Everything the Querier answers over the whole time range, for comparisons.
fn everything(s: &MetricsStore) -> (Vec<SeriesSamples>, Vec<Labels>, Vec<String>, Vec<String>) {
    let all = [Matcher::equal("__name__", "up")];
    (
        s.select(&all, i64::MIN, i64::MAX),
        s.series(&[all.to_vec()], i64::MIN, i64::MAX),
        s.label_names(&[], i64::MIN, i64::MAX),
        s.label_values("instance", &[], i64::MIN, i64::MAX),
    )
}

fn fill(s: &MetricsStore, from: i64, to: i64) {
    for t in (from..to).step_by(15_000) {
        for (job, inst) in [("a", "1"), ("a", "2"), ("b", "1")] {
            assert!(s.append_sample(l(job, inst), t, t as f64 / 1000.0));
        }
    }
}

#[tokio::test]
async fn reads_are_the_same_before_and_after_flush_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = open(tmp.path(), opts()).await;
    // 2.5 hours: the flush cuts three windows.
    fill(&s, 0, 150 * MIN);
    let before = everything(&s);
    assert_eq!(before.0.len(), 3);
    assert_eq!(s.freeze(), 3 * 600);
    assert_eq!(everything(&s), before, "frozen parts are read");
    let report = s.flush_frozen().await.unwrap();
    assert_eq!(
        report,
        FlushReport {
            samples: 1800,
            blocks: 3
        }
    );
    assert_eq!(s.block_stats().0, 3);
    assert_eq!(everything(&s), before, "blocks are read");
    // A range inside one block, and one across a block boundary.
    let sel = s.select(&[Matcher::equal("job", "b")], 59 * MIN, 61 * MIN);
    assert_eq!(sel[0].samples.len(), 9);
    drop(s);

    let (s, report) = open(tmp.path(), opts()).await;
    assert_eq!((report.blocks, report.samples), (3, 1800));
    assert_eq!(everything(&s), before, "reopened blocks are read");
    // The order check survives through the blocks' newest sample.
    assert_eq!(s.head.read().max_t, Some(150 * MIN - 15_000));
}

#[tokio::test]
async fn compaction_merges_finished_windows_and_keeps_the_oldest_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = open(tmp.path(), opts()).await;
    s.set_out_of_order_window(10 * D);
    fill(&s, 0, 30 * MIN);
    s.freeze();
    s.flush_frozen().await.unwrap();
    fill(&s, 30 * MIN, 50 * MIN);
    s.freeze();
    s.flush_frozen().await.unwrap();
    // Out of order into the first window: a new sample and a duplicate timestamp with
    // another value, which must lose to the first.
    assert!(s.append_sample(l("a", "1"), 7_500, -1.0));
    assert!(s.append_sample(l("a", "1"), 15_000, -2.0));
    s.freeze();
    s.flush_frozen().await.unwrap();
    assert_eq!(s.block_stats().0, 3);
    let before = everything(&s);
    let a1 = &before.0[0];
    assert_eq!(a1.labels, l("a", "1"));
    assert_eq!(&a1.samples[..3], &[(0, 0.0), (7_500, -1.0), (15_000, 15.0)]);

    // The window [0, D) is not over until the newest sample is D/2 past its end.
    assert_eq!(s.maintain().await.unwrap(), MaintenanceReport::default());
    fill(&s, 50 * MIN, 91 * MIN);
    let before = everything(&s);
    let report = s.maintain().await.unwrap();
    assert_eq!((report.compacted, report.created), (3, 1));
    assert_eq!(s.block_stats().0, 1);
    assert_eq!(everything(&s), before);
    let blocks = s.blocks.read().clone();
    assert_eq!(blocks[0].meta().compaction.level, 2);
    assert_eq!(blocks[0].meta().compaction.parents.len(), 3);
    // The parents are gone from the store.
    let listing = BlockStore::local(tmp.path()).unwrap().list().await.unwrap();
    assert_eq!(listing.complete, vec![blocks[0].meta().ulid.clone()]);
}

#[tokio::test]
async fn retention_drops_whole_blocks_by_time_then_size() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.retention_ms = 3 * D;
    let (s, _) = open(tmp.path(), o).await;
    // Windows 0..5, one block each (levels above D exceed a tenth of the retention).
    fill(&s, 0, 6 * D);
    s.freeze();
    s.flush_frozen().await.unwrap();
    assert_eq!(s.block_stats().0, 6);
    let report = s.maintain().await.unwrap();
    // The newest sample is 15 s before 6D: blocks whose newest sample is older than
    // 3D - 15 s go, which the block [2D, 3D) is not.
    assert_eq!(report.dropped, 2);
    let left = s.select(&[Matcher::equal("job", "b")], i64::MIN, i64::MAX);
    assert_eq!(left[0].samples[0].0, 2 * D);

    // A size limit of the newest two blocks' bytes keeps just those.
    let mut blocks = s.blocks.read().clone();
    blocks.sort_by_key(|b| b.meta().min_time);
    assert_eq!(blocks.len(), 4);
    let newest_two: u64 = blocks[2..].iter().map(|b| b.size_bytes()).sum();
    drop(s);
    let mut o = opts();
    o.retention_bytes = newest_two;
    let (s, _) = open(tmp.path(), o).await;
    assert_eq!(s.maintain().await.unwrap().dropped, 2);
    let left = s.select(&[Matcher::equal("job", "b")], i64::MIN, i64::MAX);
    assert_eq!(left[0].samples[0].0, 4 * D);
    assert_eq!(s.block_stats(), (2, newest_two));
}

#[tokio::test]
async fn open_deletes_incomplete_blocks_and_merged_parents() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = open(tmp.path(), opts()).await;
    fill(&s, 0, 10 * MIN);
    s.freeze();
    s.flush_frozen().await.unwrap();
    fill(&s, 10 * MIN, 20 * MIN);
    s.freeze();
    s.flush_frozen().await.unwrap();
    let parents: Vec<Arc<Block>> = s.blocks.read().clone();
    let before = everything(&s);
    drop(s);
    // A merge that wrote its block but died before deleting the parents, and a block
    // write that died before its meta file.
    let store = BlockStore::local(tmp.path()).unwrap();
    let enc = merge(
        &parents,
        2,
        parents.iter().map(|b| b.meta().ulid.clone()).collect(),
    )
    .unwrap();
    write_block(&store, enc).await.unwrap();
    store
        .put(
            "01HALFWRITTEN0000000000000",
            CHUNKS_FILE,
            Bytes::from_static(b"x"),
        )
        .await
        .unwrap();

    let (s, report) = open(tmp.path(), opts()).await;
    assert_eq!(
        (
            report.blocks,
            report.parents_removed,
            report.incomplete_removed
        ),
        (1, 2, 1)
    );
    assert_eq!(everything(&s), before);
    assert_eq!(store.list().await.unwrap().complete.len(), 1);
}

#[tokio::test]
async fn flush_is_due_at_half_a_block_or_the_sample_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.head_max_samples = 100;
    let (s, _) = open(tmp.path(), o).await;
    assert!(!s.should_flush());
    fill(&s, 0, 29 * MIN);
    assert!(s.should_flush(), "more than 100 samples");
    s.freeze();
    assert!(!s.should_flush());
    let (s2, _) = open(&tmp.path().join("other"), opts()).await;
    fill(&s2, 0, 29 * MIN);
    assert!(!s2.should_flush());
    fill(&s2, 29 * MIN, 31 * MIN);
    assert!(s2.should_flush(), "half an hour of data");
    s2.freeze();
    // A lagging series' sample, far behind the newest ever: the head's own span is 0.
    assert!(s2.append_sample(l("lag", "1"), 0, 1.0));
    assert!(!s2.should_flush(), "one late sample is no reason to flush");
    // Half an hour of span again, but within a minute of the last flush.
    assert!(s2.append_sample(l("lag", "2"), 31 * MIN, 1.0));
    assert!(!s2.should_flush(), "at most one flush by span a minute");
    assert!(!MetricsStore::new().should_flush(), "no block store: never");
}

#[tokio::test]
async fn decoded_chunks_are_kept_within_the_budget_and_given_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts();
    // Room for one series' 600 samples (9,600 bytes), not for two.
    o.decoded_cache_bytes = 12_000;
    let (s, _) = open(tmp.path(), o).await;
    fill(&s, 0, 150 * MIN);
    s.freeze();
    s.flush_frozen().await.unwrap();
    let a1 = [Matcher::equal("job", "a"), Matcher::equal("instance", "1")];
    let first = s.select(&a1, i64::MIN, i64::MAX);
    let kept = s.decoded_cache_bytes();
    assert_eq!(kept, 600 * 16, "a1's three chunks are kept");
    assert_eq!(
        s.select(&a1, i64::MIN, i64::MAX),
        first,
        "read again from memory"
    );
    let everything_before = everything(&s);
    let after = s.decoded_cache_bytes();
    assert!(
        after > kept && after <= 12_000,
        "others' chunks kept only within the budget: {after}"
    );
    assert_eq!(everything(&s), everything_before);
    // Merging drops the parents and gives their bytes back.
    fill(&s, 150 * MIN, 300 * MIN);
    s.freeze();
    s.flush_frozen().await.unwrap();
    s.maintain().await.unwrap();
    assert_eq!(s.decoded_cache_bytes(), 0);
}

#[tokio::test]
async fn a_sample_from_the_future_does_not_expire_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.retention_ms = 3 * D;
    let (s, _) = open(tmp.path(), o).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // The last two hours, then a sample stamped a century ahead.
    let from = (now - 2 * D).div_euclid(15_000) * 15_000;
    fill(&s, from, now - 60_000);
    assert!(s.append_sample(l("z", "1"), now + 100 * 365 * 24 * 3600 * 1000, 1.0));
    s.freeze();
    s.flush_frozen().await.unwrap();
    let blocks = s.block_stats().0;
    let report = s.maintain().await.unwrap();
    assert_eq!(
        report.dropped, 0,
        "recent blocks stay: retention counts from now"
    );
    assert_eq!(s.block_stats().0, blocks);
}

#[tokio::test]
async fn head_stats_describe_the_head_not_the_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = open(tmp.path(), opts()).await;
    fill(&s, 0, 10 * MIN);
    let (series, range) = s.head_stats();
    assert_eq!((series.len(), range), (3, Some((0, 10 * MIN - 15_000))));
    s.freeze();
    s.flush_frozen().await.unwrap();
    assert_eq!(
        s.head_stats(),
        (series.clone(), None),
        "series stay, samples left"
    );
    assert!(s.append_sample(l("new", "1"), 10 * MIN, 1.0));
    s.freeze();
    assert_eq!(
        s.head_stats().0.len(),
        4,
        "idle series stay for two block durations"
    );
    assert!(s.append_sample(l("new", "1"), 3 * D, 1.0));
    s.freeze();
    // Past that, only the series with recent samples are left.
    assert_eq!(s.head_stats().0, vec![l("new", "1")]);
    assert_eq!(
        s.series(&[], i64::MIN, i64::MAX).len(),
        4,
        "blocks keep the rest"
    );
}

#[tokio::test]
async fn series_apis_count_a_block_series_by_its_samples_not_its_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = open(tmp.path(), opts()).await;
    // Two samples ten minutes apart: one chunk spanning a range with nothing inside.
    assert!(s.append_sample(l("sparse", "1"), 0, 1.0));
    assert!(s.append_sample(l("sparse", "1"), 10 * MIN, 2.0));
    s.freeze();
    s.flush_frozen().await.unwrap();
    let gap = (MIN, 9 * MIN);
    assert!(s.series(&[], gap.0, gap.1).is_empty());
    assert!(s.label_names(&[], gap.0, gap.1).is_empty());
    assert!(s.label_values("job", &[], gap.0, gap.1).is_empty());
    assert_eq!(s.series(&[], gap.0, 10 * MIN).len(), 1);
}
