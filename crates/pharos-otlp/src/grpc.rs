//! OTLP/gRPC: `TraceService`, `MetricsService` and `LogsService` on one server.
//!
//! A refusal maps to `RESOURCE_EXHAUSTED` (memory limit) or `UNAVAILABLE`
//! (storage), each with a `google.rpc.RetryInfo` detail so OTLP exporters
//! retry. A message above the size limit is refused by tonic before it is
//! decoded, with `OUT_OF_RANGE` (grpc-go says `RESOURCE_EXHAUSTED`; both are
//! final for an OTLP exporter without `RetryInfo`). gzip is accepted and sent.
//!
//! `TraceService` is served by [`TraceServer`] rather than the generated server: its codec
//! does not decode the request but checks and indexes its bytes ([`TraceBatch`]), which
//! the ingest path logs and keeps as they came.

use crate::signal::OtlpSignal;
use crate::{ConsumeError, Consumer, Limits, RECEIVER_GRPC};
use bytes::Buf;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use pharos_model::telemetry::SelfMetrics;
use pharos_model::trace_batch::TraceBatch;
use pharos_model::{ExportLogsServiceRequest, ExportMetricsServiceRequest};
use prost::Message;
use std::sync::Arc;
use tonic::codec::CompressionEncoding;
use tonic::codec::{DecodeBuf, EncodeBuf};
use tonic::codegen::{BoxFuture, Context, Poll, StdError};
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
    TraceServer<C>,
    MetricsServiceServer<Otlp<C>>,
    LogsServiceServer<Otlp<C>>,
);

/// Builds the three services around one consumer.
pub fn services<C>(consumer: Arc<C>, metrics: Arc<SelfMetrics>, limits: Limits) -> Services<C>
where
    C: Consumer<TraceBatch>
        + Consumer<ExportMetricsServiceRequest>
        + Consumer<ExportLogsServiceRequest>,
{
    let otlp = Otlp { consumer, metrics };
    let max = limits.max_request_body_bytes;
    (
        TraceServer {
            otlp: otlp.clone(),
            max_decoding_message_size: max,
        },
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

/// `opentelemetry.proto.collector.trace.v1.TraceService`, with the same compression and
/// size settings as the other two services.
pub struct TraceServer<C> {
    otlp: Otlp<C>,
    max_decoding_message_size: usize,
}

impl<C> Clone for TraceServer<C> {
    fn clone(&self) -> Self {
        TraceServer {
            otlp: self.otlp.clone(),
            max_decoding_message_size: self.max_decoding_message_size,
        }
    }
}

impl<C> tonic::server::NamedService for TraceServer<C> {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<C, B> tonic::codegen::Service<http::Request<B>> for TraceServer<C>
where
    C: Consumer<TraceBatch>,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != "/opentelemetry.proto.collector.trace.v1.TraceService/Export" {
            // What the generated servers answer for a method they do not have.
            return Box::pin(async {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            });
        }
        let export = Export(self.otlp.clone());
        let max = self.max_decoding_message_size;
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(KeepBytes)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max);
            Ok(grpc.unary(export, req).await)
        })
    }
}

/// The `Export` method.
struct Export<C>(Otlp<C>);

impl<C> tonic::server::UnaryService<TraceBatch> for Export<C>
where
    C: Consumer<TraceBatch>,
{
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<TraceBatch>) -> Self::Future {
        let otlp = self.0.clone();
        Box::pin(async move { otlp.handle(request.into_inner()).await })
    }
}

/// Protobuf like `tonic_prost::ProstCodec`, but the decoder checks and indexes the
/// request's bytes instead of decoding them: it accepts exactly what prost accepts.
#[derive(Clone, Copy)]
struct KeepBytes;

impl tonic::codec::Codec for KeepBytes {
    type Encode = ExportTraceServiceResponse;
    type Decode = TraceBatch;
    type Encoder = KeepBytes;
    type Decoder = KeepBytes;

    fn encoder(&mut self) -> KeepBytes {
        KeepBytes
    }

    fn decoder(&mut self) -> KeepBytes {
        KeepBytes
    }
}

impl tonic::codec::Encoder for KeepBytes {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

impl tonic::codec::Decoder for KeepBytes {
    type Item = TraceBatch;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<TraceBatch>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        // As tonic_prost answers a message that does not decode.
        let batch = TraceBatch::parse(bytes).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Some(batch))
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
