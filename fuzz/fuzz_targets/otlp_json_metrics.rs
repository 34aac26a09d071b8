//! Decodes an OTLP/JSON metrics body. Must never panic. When it decodes:
//! checks the request survives a protobuf round trip (the WAL stores it
//! protobuf-encoded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pharos_model::ExportMetricsServiceRequest;
use pharos_otlp::decode::{Encoding, decode};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode::<ExportMetricsServiceRequest>(Encoding::Json, data) {
        pharos_fuzz::check_metrics(req);
    }
});
