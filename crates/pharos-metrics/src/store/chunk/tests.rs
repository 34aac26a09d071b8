//! Round trips of both encodings on generated series, edge cases, and damaged input.

use super::*;
use crate::store::STALE_NAN_BITS;

/// A small deterministic PRNG (SplitMix64), so the tests need no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const ENCODINGS: [Encoding; 3] = [Encoding::Xor, Encoding::Pco, Encoding::PcoV1];

/// Encodes, parses and decodes `samples` in `encoding`, comparing values by their bits.
fn check(samples: &[(i64, f64)], encoding: Encoding) {
    let bytes = encode(samples, encoding).unwrap_or_else(|e| panic!("{encoding:?}: {e}"));
    let chunk = Chunk::parse(&bytes).unwrap();
    assert_eq!(chunk.encoding(), encoding);
    assert_eq!(chunk.len(), samples.len());
    assert_eq!(chunk.min_time(), samples[0].0);
    assert_eq!(chunk.max_time(), samples[samples.len() - 1].0);
    let got: Vec<(i64, f64)> = chunk.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(bits(&got), bits(samples), "{encoding:?}");
    let mut into = Vec::new();
    chunk.decode_into(&mut into).unwrap();
    assert_eq!(bits(&into), bits(samples), "{encoding:?}");
}

fn check_both(samples: &[(i64, f64)]) {
    for e in ENCODINGS {
        check(samples, e);
    }
}

fn bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
    samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

/// Returns a random series of one of several shapes, with timestamps strictly increasing.
fn random_series(rng: &mut Rng) -> Vec<(i64, f64)> {
    let n = match rng.below(4) {
        0 => 1 + rng.below(3) as usize,
        1 => 120,
        _ => 1 + rng.below(1500) as usize,
    };
    let mut t = match rng.below(3) {
        0 => 1_700_000_000_000 + rng.below(1 << 30) as i64,
        1 => -(rng.below(1 << 40) as i64),
        _ => rng.next() as i64 / 2,
    };
    let step_kind = rng.below(4);
    let value_kind = rng.below(6);
    let mut v = rng.unit() * 1000.0;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push((t, v));
        let step: i64 = match step_kind {
            0 => 15_000,
            1 => 15_000 + rng.below(41) as i64 - 20,
            2 => {
                let bits = rng.below(40);
                1 + rng.below(1 << bits) as i64
            }
            _ => 1 + rng.below(3) as i64 * 60_000,
        };
        t = match t.checked_add(step) {
            Some(t) => t,
            None => break,
        };
        v = match value_kind {
            0 => v,
            1 => v + (rng.below(100) as f64),
            2 => rng.unit() * 100.0 - 50.0,
            3 => f64::from_bits(rng.next()),
            4 if i % 10 == 9 => f64::from_bits(STALE_NAN_BITS),
            4 => (rng.below(8) as f64) * 0.25,
            _ => (v * 1.01).round(),
        };
    }
    out
}

#[test]
fn random_series_round_trip() {
    let mut rng = Rng(0x5EED);
    for _ in 0..300 {
        check_both(&random_series(&mut rng));
    }
}

#[test]
fn single_sample() {
    check_both(&[(0, 0.0)]);
    check_both(&[(-1, f64::from_bits(STALE_NAN_BITS))]);
    check_both(&[(i64::MIN, f64::NEG_INFINITY)]);
    check_both(&[(i64::MAX, 1e300)]);
}

#[test]
fn timestamps_must_strictly_increase() {
    for e in ENCODINGS {
        assert_eq!(encode(&[], e), Err(EncodeError::Empty));
        assert_eq!(
            encode(&[(1, 1.0), (1, 2.0)], e),
            Err(EncodeError::NotIncreasing { index: 1 })
        );
        assert_eq!(
            encode(&[(1, 1.0), (5, 2.0), (4, 2.0)], e),
            Err(EncodeError::NotIncreasing { index: 2 })
        );
        let too_many: Vec<(i64, f64)> = (0..=MAX_SAMPLES as i64).map(|t| (t, 0.0)).collect();
        assert_eq!(
            encode(&too_many, e),
            Err(EncodeError::TooManySamples(MAX_SAMPLES + 1))
        );
        check(&too_many[..MAX_SAMPLES], e);
    }
}

#[test]
fn huge_gaps_and_extreme_timestamps() {
    check_both(&[(i64::MIN, 1.0), (i64::MAX, 2.0)]);
    check_both(&[(i64::MIN, 1.0), (0, 2.0), (i64::MAX, 3.0)]);
    check_both(&[
        (i64::MIN, 1.0),
        (i64::MIN + 1, 2.0),
        (i64::MAX - 1, 3.0),
        (i64::MAX, 4.0),
    ]);
    // Every delta-of-delta bucket boundary, both signs.
    let mut samples = vec![(0, 0.0), (1 << 40, 0.0)];
    let mut delta: i64 = 1 << 40;
    for dod in [
        0,
        1,
        -1,
        8191,
        -8191,
        8192,
        -8192,
        8193,
        65_536,
        -65_535,
        65_537,
        -65_536,
        524_288,
        -524_287,
        524_289,
        -524_288,
        1 << 35,
        -(1 << 35),
    ] {
        delta += dod;
        let t = samples.last().unwrap().0 + delta;
        samples.push((t, dod as f64));
    }
    check_both(&samples);
}

#[test]
fn negative_timestamps() {
    check_both(&[(-30_000, 1.0), (-15_000, 2.0), (0, 3.0), (15_000, 4.0)]);
    let pre_epoch: Vec<(i64, f64)> = (0..500)
        .map(|i| (-1_000_000_000_000 + i * 15_000, i as f64))
        .collect();
    check_both(&pre_epoch);
}

#[test]
fn special_floats_are_bit_exact() {
    let specials = [
        f64::from_bits(STALE_NAN_BITS),
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff8_dead_beef_0001),
        f64::from_bits(0xfff0_0000_0000_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
    ];
    let mut samples = Vec::new();
    let mut t = 1_700_000_000_000;
    for (i, a) in specials.iter().enumerate() {
        for b in &specials[i..] {
            for v in [*a, *b, *a, 1.0, *b] {
                samples.push((t, v));
                t += 15_000;
            }
        }
    }
    check_both(&samples);
    // Only stale markers, and a counter interrupted by them.
    let stale = f64::from_bits(STALE_NAN_BITS);
    check_both(&(0..200).map(|i| (i * 15_000, stale)).collect::<Vec<_>>());
    check_both(
        &(0..200)
            .map(|i| (i * 15_000, if i % 17 == 0 { stale } else { i as f64 }))
            .collect::<Vec<_>>(),
    );
    // -0.0 and 0.0 differ in one bit and must stay apart.
    check_both(&[(0, 0.0), (1, -0.0), (2, 0.0), (3, -0.0)]);
}

#[test]
fn counters_and_constants() {
    let mut rng = Rng(7);
    let mut c = 0.0;
    let counter: Vec<(i64, f64)> = (0..1000)
        .map(|i| {
            c += 1024.0 * rng.below(20) as f64;
            (1_700_000_000_000 + i * 15_000 + rng.below(20) as i64, c)
        })
        .collect();
    check_both(&counter);
    let reset: Vec<(i64, f64)> = counter
        .iter()
        .enumerate()
        .map(|(i, &(t, v))| (t, if i >= 500 { v - counter[499].1 } else { v }))
        .collect();
    check_both(&reset);
    for v in [0.0, 1.0, 42.5, -7.0, f64::from_bits(STALE_NAN_BITS)] {
        check_both(&(0..120).map(|i| (i * 15_000, v)).collect::<Vec<_>>());
    }
}

#[test]
fn constant_series_compress_to_almost_nothing() {
    let samples: Vec<(i64, f64)> = (0..120)
        .map(|i| (1_700_000_000_000 + i * 15_000, 1.0))
        .collect();
    let xor = encode(&samples, Encoding::Xor).unwrap();
    // Envelope (~11 bytes), 64 bits of the first value, a 3-byte delta, then 2 bits a sample.
    assert!(xor.len() <= 11 + 8 + 3 + 30, "{}", xor.len());
    let pco = encode(&samples, Encoding::Pco).unwrap();
    // Two pco standalone streams carry ~20 bytes of headers each.
    assert!(pco.len() < 100, "{}", pco.len());
}

/// Decodes whatever `bytes` hold, which must never panic; returns whether it succeeded.
fn decode_any(bytes: &[u8]) -> bool {
    let Ok(chunk) = Chunk::parse(bytes) else {
        return false;
    };
    let mut n = 0;
    for s in chunk.iter() {
        if s.is_err() {
            return false;
        }
        n += 1;
    }
    assert_eq!(n, chunk.len(), "a chunk that decodes holds its count");
    let mut out = Vec::new();
    assert!(chunk.decode_into(&mut out).is_ok());
    true
}

fn sample_chunks() -> Vec<Vec<u8>> {
    let mut rng = Rng(99);
    let mut out = Vec::new();
    for _ in 0..6 {
        let mut s = random_series(&mut rng);
        s.truncate(150);
        for e in ENCODINGS {
            out.push(encode(&s, e).unwrap());
        }
    }
    out
}

#[test]
fn every_truncation_is_an_error() {
    for bytes in sample_chunks() {
        assert!(decode_any(&bytes));
        for len in 0..bytes.len() {
            assert!(!decode_any(&bytes[..len]), "prefix of {len} bytes decoded");
        }
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    for bytes in sample_chunks() {
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(!decode_any(&longer));
    }
}

#[test]
fn corrupt_chunks_never_panic() {
    let mut rng = Rng(1234);
    for bytes in sample_chunks() {
        // Every single bit flipped.
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            decode_any(&b);
        }
        // Random bytes overwritten, several at a time.
        for _ in 0..300 {
            let mut b = bytes.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len() as u64) as usize;
                b[i] = rng.next() as u8;
            }
            decode_any(&b);
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let len = rng.below(64) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if let Some(first) = b.first_mut() {
            *first = 1 + (*first % 4);
        }
        decode_any(&b);
    }
}

#[test]
fn envelope_fields_are_checked_against_the_samples() {
    for e in ENCODINGS {
        let samples = [(100, 1.0), (200, 2.0), (300, 3.0)];
        let bytes = encode(&samples, e).unwrap();
        let c = Chunk::parse(&bytes).unwrap();
        let payload = c.payload();
        for (count, min_t, max_t) in [(3, 100, 301), (3, 99, 300), (2, 100, 300), (4, 100, 300)] {
            let mut forged = Vec::new();
            envelope::write(&mut forged, e, count, min_t, max_t);
            forged.extend_from_slice(payload);
            assert!(!decode_any(&forged), "{e:?} {count} {min_t} {max_t}");
        }
    }
}

#[test]
fn unknown_encoding_is_reported() {
    let mut bytes = encode(&[(1, 1.0)], Encoding::Xor).unwrap();
    bytes[0] = 5;
    assert_eq!(Chunk::parse(&bytes), Err(ChunkError::UnknownEncoding(5)));
    bytes[0] = 0;
    assert_eq!(Chunk::parse(&bytes), Err(ChunkError::UnknownEncoding(0)));
}

/// The pco payload's parts: the timestamps stream (empty when regular) and the values
/// stream's number type.
fn pco_parts(bytes: &[u8]) -> (usize, pco::data_types::NumberType) {
    let c = Chunk::parse(bytes).unwrap();
    let mut rest = c.payload();
    let ts_len = envelope::uvarint(&mut rest).unwrap() as usize;
    (ts_len, pcodec::number_type(&rest[ts_len..]).unwrap())
}

#[test]
fn evenly_spaced_timestamps_are_not_stored() {
    use pco::data_types::NumberType;
    let regular: Vec<(i64, f64)> = (0..120)
        .map(|i| (1_700_000_000_000 + i * 15_000, i as f64 * 0.5))
        .collect();
    check(&regular, Encoding::Pco);
    let bytes = encode(&regular, Encoding::Pco).unwrap();
    assert_eq!(pco_parts(&bytes), (0, NumberType::F64));
    let c = Chunk::parse(&bytes).unwrap();
    assert_eq!(
        c.timestamps().unwrap(),
        regular.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    // One millisecond off and the timestamps are stored.
    let mut jittered = regular.clone();
    jittered[60].0 += 1;
    check(&jittered, Encoding::Pco);
    assert!(pco_parts(&encode(&jittered, Encoding::Pco).unwrap()).0 > 0);
    // Two samples are always evenly spaced; one is trivially.
    for s in [&regular[..1], &regular[..2], &jittered[59..61]] {
        check(s, Encoding::Pco);
        assert_eq!(pco_parts(&encode(s, Encoding::Pco).unwrap()).0, 0);
    }
    // A span that the count does not divide cannot come from regular timestamps.
    let c = Chunk::parse(&bytes).unwrap();
    let mut forged = Vec::new();
    envelope::write(
        &mut forged,
        Encoding::Pco,
        120,
        c.min_time(),
        c.max_time() + 1,
    );
    forged.extend_from_slice(c.payload());
    assert!(!decode_any(&forged));
}

#[test]
fn integer_values_are_stored_as_integers_bit_exact() {
    use pco::data_types::NumberType;
    let ints: Vec<(i64, f64)> = (0..300).map(|i| (i * 15_000, (i * i) as f64)).collect();
    check(&ints, Encoding::Pco);
    assert_eq!(
        pco_parts(&encode(&ints, Encoding::Pco).unwrap()).1,
        NumberType::I64
    );
    // The extremes of i64 and of exact f64 integers convert both ways.
    let edges: Vec<(i64, f64)> = [
        -9_223_372_036_854_775_808.0,
        9_223_372_036_854_775_807.0, // rounds to 2^63, which saturates to i64::MAX
        9_007_199_254_740_993.0,
        -1.0,
        0.0,
    ]
    .iter()
    .enumerate()
    .map(|(i, &v)| (i as i64, v))
    .collect();
    check(&edges, Encoding::Pco);
    // Anything that is not an integer keeps the whole stream in f64.
    for odd in [
        -0.0,
        0.5,
        1e19,
        -1e19,
        f64::NAN,
        f64::from_bits(STALE_NAN_BITS),
        f64::INFINITY,
    ] {
        let mut s = ints.clone();
        s[150].1 = odd;
        check(&s, Encoding::Pco);
        assert_eq!(
            pco_parts(&encode(&s, Encoding::Pco).unwrap()).1,
            NumberType::F64,
            "{odd}"
        );
    }
}

#[test]
fn shared_timestamps_decode_only_with_the_right_ones() {
    let mut rng = Rng(5);
    let ts: Vec<i64> = (0..200)
        .map(|i| 1_700_000_000_000 + i * 15_000 + rng.below(5) as i64)
        .collect();
    let samples: Vec<(i64, f64)> = ts.iter().map(|&t| (t, rng.unit())).collect();
    let bytes = encode_shared_timestamps(&samples, 1234).unwrap();
    let c = Chunk::parse(&bytes).unwrap();
    assert_eq!(c.encoding(), Encoding::PcoSharedTimestamps);
    assert_eq!(c.shared_timestamps_frame(), Ok(Some(1234)));
    // Alone it cannot be read.
    assert!(!decode_any(&bytes));
    let mut out = Vec::new();
    c.decode_with_timestamps(ts.clone(), &mut out).unwrap();
    assert_eq!(bits(&out), bits(&samples));
    // Timestamps that disagree with its envelope or count are refused.
    let mut shifted = ts.clone();
    shifted[0] -= 1;
    let mut unordered = ts.clone();
    unordered.swap(5, 6);
    for wrong in [ts[1..].to_vec(), shifted, unordered] {
        assert!(c.decode_with_timestamps(wrong, &mut Vec::new()).is_err());
    }
    // Every truncation is an error, never a panic.
    for len in 0..bytes.len() {
        if let Ok(c) = Chunk::parse(&bytes[..len]) {
            assert!(
                c.decode_with_timestamps(ts.clone(), &mut Vec::new())
                    .is_err()
            );
        }
    }
    // Other encodings have no shared frame.
    let own = encode(&samples, Encoding::Pco).unwrap();
    assert_eq!(
        Chunk::parse(&own).unwrap().shared_timestamps_frame(),
        Ok(None)
    );
}

#[test]
fn the_first_pco_layout_is_read_as_it_was_written() {
    use pco::data_types::NumberType;
    // Regular timestamps and integer values: the current layout leaves the timestamps out
    // and stores integers; the first layout stored both as they were.
    let samples: Vec<(i64, f64)> = (0..200).map(|i| (i * 15_000, (i * 3) as f64)).collect();
    let v1 = encode(&samples, Encoding::PcoV1).unwrap();
    assert_eq!(v1[0], ENCODING_PCO_V1);
    let (ts_len, kind) = pco_parts(&v1);
    assert!(ts_len > 0);
    assert_eq!(kind, NumberType::F64);
    check(&samples, Encoding::PcoV1);
    // The first layout's reader does not accept what only the current one writes.
    let v3 = encode(&samples, Encoding::Pco).unwrap();
    assert_eq!(v3[0], ENCODING_PCO);
    let mut relabelled = v3.clone();
    relabelled[0] = ENCODING_PCO_V1;
    assert!(!decode_any(&relabelled));
}
