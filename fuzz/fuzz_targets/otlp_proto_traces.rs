//! Decodes an OTLP/protobuf traces body. Must never panic. When it decodes:
//! runs the OTLP validator (spans with bad ids are removed, counted, and none
//! is kept), then checks the request survives a protobuf round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pharos_model::ExportTraceServiceRequest;
use pharos_otlp::decode::{Encoding, decode};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode::<ExportTraceServiceRequest>(Encoding::Protobuf, data) {
        pharos_fuzz::check_traces(req);
    }
});
