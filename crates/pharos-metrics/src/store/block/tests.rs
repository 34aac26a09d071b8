use super::*;

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// Three series: a regular counter of 5000 samples (three chunks), a gauge with NaN and
/// stale markers, and a one-sample series.
fn sample_series() -> Vec<(Labels, Vec<(i64, f64)>)> {
    let counter: Vec<(i64, f64)> = (0..5000).map(|i| (i * 15_000, i as f64 * 2.5)).collect();
    let gauge = vec![
        (1_000, 1.5),
        (16_000, f64::NAN),
        (31_000, f64::from_bits(super::super::STALE_NAN_BITS)),
        (46_000, -0.0),
    ];
    let mut s = vec![
        (
            l(&[("__name__", "http_requests_total"), ("job", "api")]),
            counter,
        ),
        (l(&[("__name__", "temp"), ("room", "a")]), gauge),
        (l(&[("__name__", "temp"), ("room", "b")]), vec![(7, 7.0)]),
    ];
    s.sort_by(|a, b| a.0.cmp(&b.0));
    s
}

fn round_trip(series: &[(Labels, Vec<(i64, f64)>)]) -> (EncodedBlock, Block) {
    let enc = encode("01TEST".into(), 1, vec![], series);
    let block = Block::decode(
        &enc.meta_json(),
        &enc.index,
        Bytes::from(enc.chunks.clone()),
    )
    .expect("a fresh block decodes");
    (enc, block)
}

fn bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
    samples.iter().map(|s| (s.0, s.1.to_bits())).collect()
}

#[test]
fn round_trip_keeps_every_sample_bit_exact() {
    let series = sample_series();
    let (enc, block) = round_trip(&series);
    assert_eq!(enc.meta.min_time, 0);
    assert_eq!(enc.meta.max_time, 4999 * 15_000 + 1);
    assert_eq!(
        enc.meta.stats,
        BlockStats {
            num_samples: 5005,
            num_series: 3,
            num_chunks: 5
        }
    );
    assert_eq!(block.series_count(), 3);
    for (ord, (labels, samples)) in series.iter().enumerate() {
        assert_eq!(&block.labels(ord as u32), labels);
        let got = block.samples(ord as u32, i64::MIN, i64::MAX);
        assert_eq!(bits(&got), bits(samples), "{labels}");
    }
    // A range cut inside a chunk returns exactly the samples inside it.
    let got = block.samples(0, 30_000, 60_000);
    assert_eq!(got, vec![(30_000, 5.0), (45_000, 7.5), (60_000, 10.0)]);
    assert!(block.samples(0, -10, -1).is_empty());
}

#[test]
fn postings_select_through_matchers_and_time() {
    let (_, block) = round_trip(&sample_series());
    let temp = [Matcher::equal("__name__", "temp")];
    assert_eq!(block.matching(&temp, i64::MIN, i64::MAX), vec![1, 2]);
    assert_eq!(
        block.matching(&temp, 8, 20_000),
        vec![1],
        "b's only sample is at 7"
    );
    let not_a = [
        Matcher::equal("__name__", "temp"),
        Matcher::regex("room", "a", true).unwrap(),
    ];
    assert_eq!(block.matching(&not_a, i64::MIN, i64::MAX), vec![2]);
    assert_eq!(
        block.matching(&[Matcher::equal("job", "")], i64::MIN, i64::MAX),
        vec![1, 2]
    );
    assert!(!block.overlaps(i64::MIN, -1));
    assert_eq!(block.label_value(0, "job"), Some("api"));
    assert_eq!(
        block.label_names(1).collect::<Vec<_>>(),
        ["__name__", "room"]
    );
}

#[test]
fn damage_is_an_error_never_a_panic() {
    let (enc, _) = round_trip(&sample_series());
    let meta = enc.meta_json();
    // Every truncation of the index and chunks files.
    for n in 0..enc.index.len() {
        assert!(
            Block::decode(&meta, &enc.index[..n], Bytes::from(enc.chunks.clone())).is_err(),
            "index cut at {n}"
        );
    }
    for n in (0..enc.chunks.len()).step_by(7) {
        assert!(
            Block::decode(&meta, &enc.index, Bytes::copy_from_slice(&enc.chunks[..n])).is_err(),
            "chunks cut at {n}"
        );
    }
    // Every single-bit flip in the index; a sample of them in the chunks.
    for i in 0..enc.index.len() * 8 {
        let mut bad = enc.index.clone();
        bad[i / 8] ^= 1 << (i % 8);
        assert!(
            Block::decode(&meta, &bad, Bytes::from(enc.chunks.clone())).is_err(),
            "index bit {i}"
        );
    }
    for i in (0..enc.chunks.len() * 8).step_by(13) {
        let mut bad = enc.chunks.clone();
        bad[i / 8] ^= 1 << (i % 8);
        assert!(
            Block::decode(&meta, &enc.index, Bytes::from(bad)).is_err(),
            "chunks bit {i}"
        );
    }
    let mut lying = enc.meta.clone();
    lying.stats.num_samples += 1;
    let lying = serde_json::to_vec(&lying).unwrap();
    assert!(matches!(
        Block::decode(&lying, &enc.index, Bytes::from(enc.chunks.clone())),
        Err(BlockError::Meta(_))
    ));
}

#[test]
fn empty_block_round_trips() {
    let (enc, block) = round_trip(&[]);
    assert_eq!(enc.meta.stats, BlockStats::default());
    assert_eq!(block.series_count(), 0);
    assert!(block.matching(&[], i64::MIN, i64::MAX).is_empty());
}
