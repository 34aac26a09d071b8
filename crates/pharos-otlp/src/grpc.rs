//! OTLP/gRPC: `TraceService`, `MetricsService` and `LogsService` on one server.
//!
//! A refusal maps to `RESOURCE_EXHAUSTED` (memory limit) or `UNAVAILABLE`
//! (storage), each with a `google.rpc.RetryInfo` detail so OTLP exporters
//! retry. A message above the size limit is refused by tonic before it is
//! decoded, with `OUT_OF_RANGE` (grpc-go says `RESOURCE_EXHAUSTED`; both are
//! final for an OTLP exporter without `RetryInfo`). gzip is accepted and sent.

use crate::signal::OtlpSignal;
use crate::{ConsumeError, Consumer, Limits, RECEIVER_GRPC};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use pharos_model::telemetry::SelfMetrics;
use pharos_model::{
    ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest,
};
use std::sync::Arc;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One handler for all three services.
pub struct Otlp<C> {
    consumer: Arc<C>,
    metrics: Arc<SelfMetrics>,
}

impl<C> Clone for Otlp<C> {
    fn clone(&self) -> Self {
        Otlp {
            consumer: self.consumer.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The three OTLP services, ready to add to a `tonic` server.
pub type Services<C> = (
    TraceServiceServer<Otlp<C>>,
    MetricsServiceServer<Otlp<C>>,
    LogsServiceServer<Otlp<C>>,
);

/// Builds the three services around one consumer.
pub fn services<C>(consumer: Arc<C>, metrics: Arc<SelfMetrics>, limits: Limits) -> Services<C>
where
    C: Consumer<ExportTraceServiceRequest>
        + Consumer<ExportMetricsServiceRequest>
        + Consumer<ExportLogsServiceRequest>,
{
    let otlp = Otlp { consumer, metrics };
    let max = limits.max_request_body_bytes;
    (
        TraceServiceServer::new(otlp.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max),
        MetricsServiceServer::new(otlp.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max),
        LogsServiceServer::new(otlp)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max),
    )
}

impl<C> Otlp<C> {
    async fn handle<R>(&self, req: R) -> Result<Response<R::Response>, Status>
    where
        R: OtlpSignal,
        C: Consumer<R>,
    {
        match crate::receive(&*self.consumer, &self.metrics, RECEIVER_GRPC, req).await {
            Ok(rejected) => Ok(Response::new(R::response(&rejected))),
            Err(e) => Err(refusal(&e)),
        }
    }
}

/// The gRPC status for a refused request, with `RetryInfo` when a retry can help.
fn refusal(e: &ConsumeError) -> Status {
    let code = match e {
        ConsumeError::MemoryLimit(_) => tonic::Code::ResourceExhausted,
        ConsumeError::Unavailable(_) => tonic::Code::Unavailable,
        // What the Collector answers for a signal it has no pipeline for.
        ConsumeError::NoPipeline(_) => tonic::Code::Unimplemented,
    };
    match e.retry_after() {
        Some(delay) => Status::with_error_details(
            code,
            e.to_string(),
            ErrorDetails::with_retry_info(Some(delay)),
        ),
        None => Status::new(code, e.to_string()),
    }
}

#[tonic::async_trait]
impl<C> TraceService for Otlp<C>
where
    C: Consumer<ExportTraceServiceRequest>,
{
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.handle(request.into_inner()).await
    }
}

#[tonic::async_trait]
impl<C> MetricsService for Otlp<C>
where
    C: Consumer<ExportMetricsServiceRequest>,
{
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.handle(request.into_inner()).await
    }
}

#[tonic::async_trait]
impl<C> LogsService for Otlp<C>
where
    C: Consumer<ExportLogsServiceRequest>,
{
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.handle(request.into_inner()).await
    }
}
