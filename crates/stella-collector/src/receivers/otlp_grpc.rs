//! OTLP/gRPC (<https://opentelemetry.io/docs/specs/otlp/#otlpgrpc>): the three `Export` services over the
//! shared [`OtlpService`]; gzip and zstd messages, answers compressed like the request.
use stella_otlp::OtlpRequest;
use stella_otlp::proto::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use stella_otlp::proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use stella_otlp::proto::collector::metrics::v1::metrics_service_server::{MetricsService, MetricsServiceServer};
use stella_otlp::proto::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use stella_otlp::proto::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use stella_otlp::proto::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use stella_otlp::validate::Rejection;
use tonic::codec::CompressionEncoding;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use super::{OtlpService, Protocol, Refusal, response};

/// The gRPC side of one OTLP receiver.
#[derive(Clone)]
pub struct GrpcReceiver {
    service: OtlpService,
}

/// The three OTLP services of one receiver, with `max_message_bytes` as the cap on each message both as
/// sent and after decompression (tonic enforces it while inflating).
pub fn routes(service: OtlpService, max_message_bytes: usize) -> Routes {
    let receiver = GrpcReceiver { service };
    let encodings = [CompressionEncoding::Gzip, CompressionEncoding::Zstd];
    let mut traces = TraceServiceServer::new(receiver.clone()).max_decoding_message_size(max_message_bytes);
    let mut metrics = MetricsServiceServer::new(receiver.clone()).max_decoding_message_size(max_message_bytes);
    let mut logs = LogsServiceServer::new(receiver).max_decoding_message_size(max_message_bytes);
    for encoding in encodings {
        traces = traces.accept_compressed(encoding).send_compressed(encoding);
        metrics = metrics.accept_compressed(encoding).send_compressed(encoding);
        logs = logs.accept_compressed(encoding).send_compressed(encoding);
    }
    Routes::new(traces).add_service(metrics).add_service(logs)
}

impl GrpcReceiver {
    async fn export(&self, request: OtlpRequest) -> Result<Rejection, Status> {
        let signal = request.signal();
        let service = &self.service;
        service.metrics().size(signal, Protocol::Grpc, request.encoded_len());
        let outcome = service.export(Protocol::Grpc, request).await;
        let (http_status, answer) = match outcome {
            Ok(rejection) => (200, Ok(rejection)),
            Err(refusal @ Refusal::NoPipeline { .. }) => (404, Err(Status::unimplemented(refusal.to_string()))),
            Err(refusal) => (503, Err(Status::unavailable(refusal.to_string()))),
        };
        service.metrics().answered(service.receiver_id(), signal, Protocol::Grpc, http_status);
        answer
    }
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let rejection = GrpcReceiver::export(self, OtlpRequest::Traces(request.into_inner())).await?;
        Ok(Response::new(response::traces(&rejection)))
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let rejection = GrpcReceiver::export(self, OtlpRequest::Metrics(request.into_inner())).await?;
        Ok(Response::new(response::metrics(&rejection)))
    }
}

#[tonic::async_trait]
impl LogsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let rejection = GrpcReceiver::export(self, OtlpRequest::Logs(request.into_inner())).await?;
        Ok(Response::new(response::logs(&rejection)))
    }
}
