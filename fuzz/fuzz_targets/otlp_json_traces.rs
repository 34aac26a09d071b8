//! Decodes an OTLP/JSON traces body, including the retry with base64 ids
//! rewritten as hex. Must never panic. When it decodes: runs the OTLP
//! validator and checks the request survives a protobuf round trip (the WAL
//! stores it protobuf-encoded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pharos_model::ExportTraceServiceRequest;
use pharos_otlp::decode::{Encoding, decode};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode::<ExportTraceServiceRequest>(Encoding::Json, data) {
        pharos_fuzz::check_traces(req);
    }
});
