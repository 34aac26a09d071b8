//! Decodes an arbitrary Prometheus remote_write body (snappy block format,
//! then protobuf) with a 1 MiB limit. Must never panic; what decodes must
//! re-encode and decode to the same request (compared as bytes, since NaN
//! sample values are not equal to themselves).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pharos_metrics::remote_write::{decode, encode};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = decode(data, 1 << 20) else { return };
    let again = decode(&encode(&req), usize::MAX).expect("what decoded must decode again");
    assert_eq!(again.encode_to_vec(), req.encode_to_vec());
});
