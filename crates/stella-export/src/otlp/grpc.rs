use std::str::FromStr;

use stella_otlp::proto::collector::logs::v1::logs_service_client::LogsServiceClient;
use stella_otlp::proto::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use stella_otlp::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
use stella_otlp::{Batch, OtlpRequest};
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::Channel;

use super::{OtlpCompression, OtlpConfig, count_partial};
use crate::{BoxFuture, Delivery, ExportError, ExportMetrics, Exporter};

/// `exporters.otlp`: OTLP/gRPC to a backend.
pub struct OtlpGrpcExporter {
    id: String,
    config: OtlpConfig,
    channel: Channel,
    metrics: ExportMetrics,
}

impl OtlpGrpcExporter {
    /// An exporter for `config`; the channel connects lazily, on the first batch.
    pub fn new(id: String, config: OtlpConfig, metrics: ExportMetrics) -> Result<Self, ExportError> {
        let endpoint = tonic::transport::Endpoint::from_shared(config.endpoint.clone()).map_err(|error| {
            ExportError::Rejected {
                reason: "endpoint".into(),
                endpoint: config.endpoint.clone(),
                message: format!("not a gRPC endpoint URL: {error}"),
            }
        })?;
        let fail = |message: String| ExportError::Rejected {
            reason: "client".into(),
            endpoint: config.endpoint.clone(),
            message,
        };
        let super::config::TlsMaterial { ca, identity } = config.tls.load().map_err(&fail)?;
        let mut endpoint = endpoint.timeout(config.timeout);
        if config.endpoint.starts_with("https://") {
            crate::install_crypto_provider();
            let mut tls = tonic::transport::ClientTlsConfig::new().with_enabled_roots();
            if let Some(ca) = ca {
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = identity {
                tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(tls).map_err(|error| fail(format!("tls: {error}")))?;
        }
        let channel = endpoint.connect_lazy();
        Ok(OtlpGrpcExporter { id, config, channel, metrics })
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.config.timeout);
        for (name, value) in &self.config.headers {
            if let (Ok(key), Ok(value)) =
                (MetadataKey::from_str(&name.to_ascii_lowercase()), MetadataValue::from_str(value))
            {
                request.metadata_mut().insert(key, value);
            }
        }
        request
    }

    fn encoding(&self) -> Option<CompressionEncoding> {
        match self.config.compression {
            OtlpCompression::Gzip => Some(CompressionEncoding::Gzip),
            OtlpCompression::Zstd => Some(CompressionEncoding::Zstd),
            OtlpCompression::None => None,
        }
    }

    async fn send(&self, batch: &Batch) -> Result<(), ExportError> {
        let channel = self.channel.clone();
        let encoding = self.encoding();
        let outcome = match batch.request.clone() {
            OtlpRequest::Traces(request) => {
                let mut client = TraceServiceClient::new(channel);
                if let Some(encoding) = encoding {
                    client = client.send_compressed(encoding);
                }
                client.export(self.request(request)).await.map(|answer| {
                    answer.into_inner().partial_success.map(|p| (p.rejected_spans, p.error_message)).unwrap_or_default()
                })
            }
            OtlpRequest::Metrics(request) => {
                let mut client = MetricsServiceClient::new(channel);
                if let Some(encoding) = encoding {
                    client = client.send_compressed(encoding);
                }
                client.export(self.request(request)).await.map(|answer| {
                    answer
                        .into_inner()
                        .partial_success
                        .map(|p| (p.rejected_data_points, p.error_message))
                        .unwrap_or_default()
                })
            }
            OtlpRequest::Logs(request) => {
                let mut client = LogsServiceClient::new(channel);
                if let Some(encoding) = encoding {
                    client = client.send_compressed(encoding);
                }
                client.export(self.request(request)).await.map(|answer| {
                    answer
                        .into_inner()
                        .partial_success
                        .map(|p| (p.rejected_log_records, p.error_message))
                        .unwrap_or_default()
                })
            }
        };
        let endpoint = self.config.endpoint.clone();
        match outcome {
            Ok((rejected, message)) => {
                count_partial(&self.metrics, &self.id, &endpoint, rejected, &message);
                Ok(())
            }
            Err(status) => Err(classify(status, endpoint)),
        }
    }
}

/// UNAVAILABLE and RESOURCE_EXHAUSTED are retried; any other code drops the batch.
fn classify(status: tonic::Status, endpoint: String) -> ExportError {
    let message = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        tonic::Code::Unavailable => {
            ExportError::Retryable { reason: "unavailable", endpoint, message, retry_after: None }
        }
        tonic::Code::ResourceExhausted => {
            ExportError::Retryable { reason: "throttled", endpoint, message, retry_after: None }
        }
        tonic::Code::DeadlineExceeded => {
            ExportError::Retryable { reason: "timeout", endpoint, message, retry_after: None }
        }
        code => ExportError::Rejected {
            reason: format!("grpc_{}", format!("{code:?}").to_ascii_lowercase()),
            endpoint,
            message,
        },
    }
}

impl Exporter for OtlpGrpcExporter {
    fn id(&self) -> &str {
        &self.id
    }

    fn export<'a>(&'a self, batch: &'a Batch, _delivery: Delivery<'a>) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.send(batch))
    }
}
