//! Checks an OTLP/protobuf traces body the way the receivers do: indexed in place
//! (`TraceBatch::parse`, never decoded). Must never panic. The batch must accept exactly
//! what prost decodes and read back as prost reads it; its in-place validation must
//! remove what the validator of decoded requests removes. When it decodes, the request
//! also goes through the decoded-request checks (validator, protobuf round trip).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pharos_model::ExportTraceServiceRequest;
use pharos_model::trace_batch::TraceBatch;
use pharos_otlp::validate;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let decoded = ExportTraceServiceRequest::decode(data);
    let batch = TraceBatch::parse(Bytes::copy_from_slice(data));
    assert_eq!(batch.is_ok(), decoded.is_ok(), "{batch:?} / {decoded:?}");
    if let (Ok(mut batch), Ok(req)) = (batch, decoded) {
        assert_eq!(batch.decode(), req);
        let mut trimmed = req.clone();
        let want = validate::traces(&mut trimmed);
        assert_eq!(validate::trace_batch(&mut batch), want);
        assert_eq!(batch.decode(), trimmed);
        pharos_fuzz::check_traces(req);
    }
});
