//! What differs between the three OTLP signals, in one trait, so each
//! transport has one generic handler instead of three copies.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use pharos_model::{
    ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest, ItemCount,
    Rejected, Signal,
};
use serde::de::DeserializeOwned;

/// One OTLP export request type and its response.
pub trait OtlpSignal:
    prost::Message + Default + DeserializeOwned + ItemCount + Send + Sync + 'static
{
    /// Which signal this request carries.
    const SIGNAL: Signal;
    /// The OTLP/HTTP path of this signal.
    const PATH: &'static str;
    /// The camelCase name of the rejected-count field in OTLP/JSON.
    const REJECTED_FIELD: &'static str;
    /// The export response message.
    type Response: prost::Message + Default;

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

impl OtlpSignal for ExportTraceServiceRequest {
    const SIGNAL: Signal = Signal::Traces;
    const PATH: &'static str = "/v1/traces";
    const REJECTED_FIELD: &'static str = "rejectedSpans";
    type Response = ExportTraceServiceResponse;

    fn validate(&mut self) -> Rejected {
        crate::validate::traces(self)
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
