//! Checks shared by the fuzz targets in `fuzz_targets/`.
//!
//! Every decoded request goes through what a receiver does with it next:
//! the OTLP validator (traces and logs) and a protobuf round trip, since the
//! write-ahead log stores requests protobuf-encoded whatever they arrived as.

use pharos_model::{
    ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest, ItemCount,
};
use pharos_otlp::decode::{Encoding, decode};
use pharos_otlp::validate;
use std::fmt::Debug;

/// Validates a decoded trace request, checks what the validator promises,
/// then round-trips what is left through protobuf.
pub fn check_traces(mut req: ExportTraceServiceRequest) {
    let before = req.item_count();
    let rejected = validate::traces(&mut req);
    let after = req.item_count();
    assert!(after <= before, "the validator added spans");
    assert_eq!(
        before - after,
        rejected.count,
        "rejected count != spans removed"
    );
    assert_eq!(rejected.message.is_empty(), rejected.count == 0);
    for span in req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        assert_eq!(
            validate::span_problem(span),
            None,
            "invalid span kept: {span:?}"
        );
    }
    assert_eq!(
        validate::traces(&mut req).count,
        0,
        "validator not idempotent"
    );
    round_trip(&req, |b| {
        decode::<ExportTraceServiceRequest>(Encoding::Protobuf, b)
    });
}

/// Round-trips a decoded metrics request through protobuf (metrics have no
/// OTLP validator).
pub fn check_metrics(req: ExportMetricsServiceRequest) {
    round_trip(&req, |b| {
        decode::<ExportMetricsServiceRequest>(Encoding::Protobuf, b)
    });
}

/// Validates a decoded log request, checks what the validator promises,
/// then round-trips what is left through protobuf.
pub fn check_logs(mut req: ExportLogsServiceRequest) {
    let before = req.item_count();
    let rejected = validate::logs(&mut req);
    let after = req.item_count();
    assert!(after <= before, "the validator added log records");
    assert_eq!(
        before - after,
        rejected.count,
        "rejected count != records removed"
    );
    assert_eq!(rejected.message.is_empty(), rejected.count == 0);
    for rec in req
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
    {
        assert!(
            matches!(rec.trace_id.len(), 0 | 16) && matches!(rec.span_id.len(), 0 | 8),
            "invalid log record kept: {rec:?}"
        );
    }
    assert_eq!(
        validate::logs(&mut req).count,
        0,
        "validator not idempotent"
    );
    round_trip(&req, |b| {
        decode::<ExportLogsServiceRequest>(Encoding::Protobuf, b)
    });
}

/// Encodes `req`, decodes it again with `decode`, and asserts nothing changed.
///
/// The encoded bytes must be identical on the second pass. Structural
/// equality is asserted too, except for requests holding a NaN double
/// (metric values, `doubleValue` attributes): NaN is unequal to itself, so
/// such a request is not even equal to itself, and the byte comparison is
/// what covers it.
pub fn round_trip<R, E>(req: &R, decode: impl Fn(&[u8]) -> Result<R, E>)
where
    R: prost::Message + PartialEq + Debug,
    E: Debug,
{
    let first = req.encode_to_vec();
    assert_eq!(
        first.len(),
        req.encoded_len(),
        "encoded_len disagrees with encode"
    );
    let again = decode(&first).expect("a re-encoded request must decode");
    let second = again.encode_to_vec();
    assert_eq!(
        first, second,
        "protobuf encoding is not stable across a round trip"
    );
    #[allow(clippy::eq_op)]
    let comparable = req == req;
    if comparable {
        assert_eq!(req, &again, "request changed across a protobuf round trip");
    }
}
