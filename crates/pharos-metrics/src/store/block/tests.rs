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

/// Series scraped together: the same jittered timestamps, different values.
fn scraped_together() -> Vec<(Labels, Vec<(i64, f64)>)> {
    let ts: Vec<i64> = (0..3000)
        .map(|i: i64| 1_700_000_000_000 + i * 15_000 + (i * 7919) % 5)
        .collect();
    let mut s: Vec<(Labels, Vec<(i64, f64)>)> = (0..4)
        .map(|n| {
            (
                l(&[("__name__", "cpu"), ("core", &n.to_string())]),
                ts.iter()
                    .enumerate()
                    .map(|(i, &t)| (t, (i * (n + 1)) as f64 * 0.25))
                    .collect(),
            )
        })
        .collect();
    // Evenly spaced timestamps are not stored, so not shared either; this series also
    // puts the first shared frame past offset 127, so forged references keep their size.
    s.push((
        l(&[("__name__", "a_first")]),
        (0..300)
            .map(|i: i64| (i * 15_000, ((i * 7919) % 100_000) as f64 / 7.0))
            .collect(),
    ));
    s.push((
        l(&[("__name__", "up")]),
        (0..100).map(|i| (i * 15_000, 1.0)).collect(),
    ));
    s.sort_by(|a, b| a.0.cmp(&b.0));
    s
}

/// The frame offset of the chunk whose bytes start at `start`.
fn frame_of(block: &Block, start: usize) -> u64 {
    let frames = read_frames(&block.chunks).unwrap();
    *frames.iter().find(|(_, r)| r.0 == start).unwrap().0
}

/// Each chunk's encoding and shared frame, series by series.
fn encodings(block: &Block) -> Vec<Vec<(Encoding, Option<u64>)>> {
    block
        .series
        .iter()
        .map(|s| {
            s.chunks
                .iter()
                .map(|c| {
                    let chunk = Chunk::parse(&block.chunks[c.start..c.end]).unwrap();
                    (chunk.encoding(), chunk.shared_timestamps_frame().unwrap())
                })
                .collect()
        })
        .collect()
}

#[test]
fn series_scraped_together_share_their_timestamps() {
    let series = scraped_together();
    let (enc, block) = round_trip(&series);
    let first = &block.series[1].chunks;
    let own: Vec<(Encoding, Option<u64>)> = first.iter().map(|_| (Encoding::Pco, None)).collect();
    let shared: Vec<(Encoding, Option<u64>)> = [0, 2048]
        .iter()
        .enumerate()
        .map(|(i, _)| {
            (
                Encoding::PcoSharedTimestamps,
                Some(frame_of(&block, first[i].start)),
            )
        })
        .collect();
    let got = encodings(&block);
    assert_eq!(
        got[0],
        vec![(Encoding::Pco, None)],
        "a_first is evenly spaced"
    );
    assert_eq!(got[1], own);
    for g in &got[2..5] {
        assert_eq!(g, &shared);
    }
    assert_eq!(got[5], vec![(Encoding::Pco, None)], "up is evenly spaced");
    for (ord, (_, samples)) in series.iter().enumerate() {
        assert_eq!(
            bits(&block.samples(ord as u32, i64::MIN, i64::MAX)),
            bits(samples)
        );
        assert_eq!(bits(&block.all_samples(ord as u32).unwrap()), bits(samples));
    }
    // Sharing saves the timestamps of all but the first series.
    let alone: usize = series
        .iter()
        .map(|s| {
            encode("01X".into(), 1, vec![], std::slice::from_ref(s))
                .chunks
                .len()
        })
        .sum();
    assert!(
        enc.chunks.len() * 10 < alone * 7,
        "{} bytes shared, {alone} alone",
        enc.chunks.len()
    );
}

/// Rewrites the frame at `offset` of a chunks file to hold `chunk`, with its checksum.
fn reframe(chunks: &[u8], offset: usize, chunk: &[u8]) -> Vec<u8> {
    let mut rest = &chunks[offset..];
    let len = uvarint(&mut rest).unwrap() as usize;
    let header = chunks.len() - offset - rest.len();
    let mut out = chunks[..offset].to_vec();
    put_uvarint(&mut out, chunk.len() as u64);
    out.extend_from_slice(chunk);
    out.extend_from_slice(&crc32c::crc32c(chunk).to_be_bytes());
    out.extend_from_slice(&chunks[offset + header + len + 4..]);
    out
}

#[test]
fn a_shared_timestamps_reference_is_checked_on_load() {
    let series = scraped_together();
    let enc = encode("01TEST".into(), 1, vec![], &series);
    let block = Block::decode(
        &enc.meta_json(),
        &enc.index,
        Bytes::from(enc.chunks.clone()),
    )
    .unwrap();
    let own = block.series[1].chunks[0];
    let own_frame = frame_of(&block, own.start);
    let sharer = block.series[2].chunks[0];
    let sharer_frame = frame_of(&block, sharer.start) as usize;
    let samples = &series[2].1[..2048];
    // The reference may name neither itself, nor a later frame, nor a frame's middle, nor
    // a chunk of other timestamps (the second chunk of the first series).
    let second_frame = frame_of(&block, block.series[1].chunks[1].start);
    let mut tested = 0;
    for bad in [
        sharer_frame as u64,
        frame_of(&block, block.series[3].chunks[0].start),
        own_frame + 1,
        second_frame,
    ] {
        tested += 1;
        let chunk = chunk::encode_shared_timestamps(samples, bad).unwrap();
        let chunks = reframe(&enc.chunks, sharer_frame, &chunk);
        if chunks.len() != enc.chunks.len() {
            tested -= 1; // the frame moved the ones after it: not the case under test
            continue;
        }
        let err = Block::decode(&enc.meta_json(), &enc.index, Bytes::from(chunks)).unwrap_err();
        assert!(
            err.to_string().contains("shared timestamps"),
            "{bad}: {err}"
        );
    }
    assert!(
        tested >= 3,
        "only {tested} forged references were tried: own {own_frame} sharer {sharer_frame} second {second_frame}"
    );
    // The right one loads.
    let chunk = chunk::encode_shared_timestamps(samples, own_frame).unwrap();
    let chunks = reframe(&enc.chunks, sharer_frame, &chunk);
    assert_eq!(chunks, enc.chunks);
}

#[test]
fn version_1_blocks_with_an_uncompressed_index_are_still_read() {
    let series = sample_series();
    let enc = encode("01TEST".into(), 1, vec![], &series);
    assert_eq!(enc.index[4], 2);
    let body = index_body(&enc.index).unwrap().into_owned();
    assert!(
        enc.index.len() < body.len(),
        "stored {} bytes for a body of {}",
        enc.index.len(),
        body.len()
    );
    // The same sections, stored as version 1 wrote them.
    let mut index = INDEX_MAGIC.to_vec();
    index.push(1);
    index.extend_from_slice(&body);
    index.extend_from_slice(&crc32c::crc32c(&index).to_be_bytes());
    let mut chunks = enc.chunks.clone();
    chunks[4] = 1;
    let mut meta = enc.meta.clone();
    meta.version = 1;
    let old = Block::decode(
        &serde_json::to_vec(&meta).unwrap(),
        &index,
        Bytes::from(chunks),
    )
    .unwrap();
    for (ord, (labels, samples)) in series.iter().enumerate() {
        assert_eq!(&old.labels(ord as u32), labels);
        assert_eq!(
            bits(&old.samples(ord as u32, i64::MIN, i64::MAX)),
            bits(samples)
        );
    }
    // A length the body does not have, or one too large to trust, is refused.
    for len in [body.len() as u64 + 1, body.len() as u64 - 1, 1 << 40] {
        let mut forged = INDEX_MAGIC.to_vec();
        forged.push(2);
        put_uvarint(&mut forged, len);
        forged.extend_from_slice(&zstd::bulk::compress(&body, 3).unwrap());
        forged.extend_from_slice(&crc32c::crc32c(&forged).to_be_bytes());
        assert!(
            Block::decode(&enc.meta_json(), &forged, Bytes::from(enc.chunks.clone())).is_err(),
            "{len}"
        );
    }
    // An unknown version is refused.
    let mut future = enc.meta.clone();
    future.version = 3;
    assert!(
        Block::decode(
            &serde_json::to_vec(&future).unwrap(),
            &enc.index,
            Bytes::from(enc.chunks.clone())
        )
        .is_err()
    );
}

/// Loads what `w` writes after `tamper` changed what it holds.
fn load_tampered(tamper: impl FnOnce(&mut BlockWriter)) -> Result<Block, BlockError> {
    let mut w = BlockWriter::new();
    for (labels, samples) in sample_series() {
        w.add(labels, &samples);
    }
    tamper(&mut w);
    let enc = w.finish("01TEST".into(), 1, vec![]);
    Block::decode(&enc.meta_json(), &enc.index, Bytes::from(enc.chunks))
}

#[test]
fn the_orderings_a_writer_keeps_are_checked_on_load() {
    assert!(load_tampered(|_| {}).is_ok());
    let err = load_tampered(|w| w.series.swap(1, 2)).unwrap_err();
    assert!(err.to_string().contains("series not sorted"), "{err}");
    let err = load_tampered(|w| {
        let dup = w.series[1].clone();
        w.series.insert(2, dup);
        w.stats.num_series += 1;
        w.stats.num_chunks += 1;
        w.stats.num_samples += 4;
    })
    .unwrap_err();
    assert!(err.to_string().contains("series not sorted"), "{err}");
    let err = load_tampered(|w| w.series[0].1.swap(0, 2)).unwrap_err();
    assert!(err.to_string().contains("time order"), "{err}");
    let err = load_tampered(|w| {
        let first = w.series[0].1[0];
        w.series[0].1[1] = first;
    })
    .unwrap_err();
    assert!(err.to_string().contains("time order"), "{err}");
}
