//! Decodes an OTLP/protobuf metrics body. Must never panic. When it decodes:
//! checks the request survives a protobuf round trip unchanged (compared as
//! encoded bytes, and structurally unless it holds a NaN).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pharos_model::ExportMetricsServiceRequest;
use pharos_otlp::decode::{Encoding, decode};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode::<ExportMetricsServiceRequest>(Encoding::Protobuf, data) {
        pharos_fuzz::check_metrics(req);
    }
});
