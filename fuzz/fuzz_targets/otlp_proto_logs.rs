//! Decodes an OTLP/protobuf logs body. Must never panic. When it decodes:
//! runs the OTLP validator (log records with bad ids are removed, counted, and
//! none is kept), then checks the request survives a protobuf round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pharos_model::ExportLogsServiceRequest;
use pharos_otlp::decode::{Encoding, decode};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode::<ExportLogsServiceRequest>(Encoding::Protobuf, data) {
        pharos_fuzz::check_logs(req);
    }
});
