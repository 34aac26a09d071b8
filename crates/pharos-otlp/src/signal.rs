//! What differs between the three OTLP signals, in one trait, so each
//! transport has one generic handler instead of three copies.

use crate::decode::{DecodeError, Encoding};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use pharos_model::trace_batch::TraceBatch;
use pharos_model::{
    ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest, ItemCount,
    Rejected, Signal,
};

/// One OTLP export request type and its response.
pub trait OtlpSignal: ItemCount + Send + Sync + 'static {
    /// Which signal this request carries.
    const SIGNAL: Signal;
    /// The OTLP/HTTP path of this signal.
    const PATH: &'static str;
    /// The camelCase name of the rejected-count field in OTLP/JSON.
    const REJECTED_FIELD: &'static str;
    /// The export response message.
    type Response: prost::Message + Default;

    /// Decodes an (already decompressed) request body.
    ///
    /// # Errors
    /// [`DecodeError::Malformed`] with the decoder's message.
    fn decode_body(encoding: Encoding, body: Bytes) -> Result<Self, DecodeError>
    where
        Self: Sized;

    /// Removes the items OTLP itself forbids; see [`crate::validate`].
    fn validate(&mut self) -> Rejected;

    /// Builds the response, with `partial_success` set when anything was rejected.
    fn response(rejected: &Rejected) -> Self::Response;

    /// Checks a request decoded from OTLP/JSON `body` for values the JSON
    /// decoder dropped instead of refusing; see [`crate::decode`].
    ///
    /// # Errors
    /// A message for a 400 response.
    fn check_json(&self, body: &[u8]) -> Result<(), String> {
        let _ = body;
        Ok(())
    }
}

/// Trace requests travel as their bytes ([`TraceBatch`]): a protobuf body is checked
/// and indexed, never decoded; an OTLP/JSON body is decoded and encoded once.
impl OtlpSignal for TraceBatch {
    const SIGNAL: Signal = Signal::Traces;
    const PATH: &'static str = "/v1/traces";
    const REJECTED_FIELD: &'static str = "rejectedSpans";
    type Response = ExportTraceServiceResponse;

    fn decode_body(encoding: Encoding, body: Bytes) -> Result<Self, DecodeError> {
        match encoding {
            Encoding::Protobuf => TraceBatch::parse(body).map_err(|e| DecodeError::Malformed {
                what: "protobuf",
                detail: e.to_string(),
            }),
            Encoding::Json => {
                let req: ExportTraceServiceRequest = crate::decode::decode(encoding, &body)?;
                Ok(TraceBatch::from_request(&req))
            }
        }
    }

    fn validate(&mut self) -> Rejected {
        crate::validate::trace_batch(self)
    }

    fn response(rejected: &Rejected) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: (rejected.count > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: rejected.count as i64,
                error_message: rejected.message.clone(),
            }),
        }
    }
}

impl OtlpSignal for ExportMetricsServiceRequest {
    const SIGNAL: Signal = Signal::Metrics;
    const PATH: &'static str = "/v1/metrics";
    const REJECTED_FIELD: &'static str = "rejectedDataPoints";
    type Response = ExportMetricsServiceResponse;

    fn decode_body(encoding: Encoding, body: Bytes) -> Result<Self, DecodeError> {
        crate::decode::decode(encoding, &body)
    }

    fn validate(&mut self) -> Rejected {
        Rejected::default()
    }

    fn check_json(&self, body: &[u8]) -> Result<(), String> {
        crate::decode::check_metrics_json(self, body)
    }

    fn response(rejected: &Rejected) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (rejected.count > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: rejected.count as i64,
                error_message: rejected.message.clone(),
            }),
        }
    }
}

impl OtlpSignal for ExportLogsServiceRequest {
    const SIGNAL: Signal = Signal::Logs;
    const PATH: &'static str = "/v1/logs";
    const REJECTED_FIELD: &'static str = "rejectedLogRecords";
    type Response = ExportLogsServiceResponse;

    fn decode_body(encoding: Encoding, body: Bytes) -> Result<Self, DecodeError> {
        crate::decode::decode(encoding, &body)
    }

    fn validate(&mut self) -> Rejected {
        crate::validate::logs(self)
    }

    fn response(rejected: &Rejected) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (rejected.count > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected.count as i64,
                error_message: rejected.message.clone(),
            }),
        }
    }
}

/// Renders the response as OTLP/JSON the way the Collector's protojson does:
/// `{}` on full success, 64-bit counts as strings.
pub fn response_json<R: OtlpSignal>(rejected: &Rejected) -> String {
    if rejected.count == 0 {
        return "{}".to_string();
    }
    serde_json::json!({
        "partialSuccess": {
            R::REJECTED_FIELD: rejected.count.to_string(),
            "errorMessage": rejected.message,
        }
    })
    .to_string()
}
