//! Parses arbitrary bytes as a metrics chunk and reads every sample. Must
//! never panic; what parses must iterate to exactly its declared count with
//! increasing timestamps inside its [min, max] time, and re-encoding the
//! samples in the same encoding must parse back to the same samples.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pharos_metrics::store::chunk::{Chunk, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(chunk) = Chunk::parse(data) else { return };
    let mut samples = Vec::new();
    if chunk.decode_into(&mut samples).is_err() {
        return;
    }
    assert_eq!(samples.len(), chunk.len());
    assert!(samples.windows(2).all(|w| w[0].0 < w[1].0), "timestamps must increase");
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        assert_eq!(first.0, chunk.min_time());
        assert_eq!(last.0, chunk.max_time());
    }
    let encoding = chunk.encoding();
    if samples.is_empty() {
        return;
    }
    let again = encode(&samples, encoding).expect("samples that decoded must encode");
    let mut back = Vec::new();
    Chunk::parse(&again).unwrap().decode_into(&mut back).unwrap();
    let bits = |v: &[(i64, f64)]| v.iter().map(|(t, x)| (*t, x.to_bits())).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&samples));
});
