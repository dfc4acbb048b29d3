//! `prometheusremotewrite`: OTLP metrics to a Prometheus remote-write 1.0 receiver: a protobuf
//! `WriteRequest` compressed with snappy's **block** format, with the headers the protocol requires
//! (`Content-Encoding: snappy`, `Content-Type: application/x-protobuf`,
//! `X-Prometheus-Remote-Write-Version: 0.1.0`, `User-Agent`). Names and labels as [`translate`] says.
//! Retry policy: see `http_post` (429, 502-504 and connection failures until delivered; 500 a few
//! times, then dropped and counted; other 4xx dropped and counted).
mod config;

pub use config::RemoteWriteConfig;
pub use stella_otlp::prometheus::{Label, Sample, TimeSeries, WriteRequest, translate};

use prost::Message;
use stella_otlp::{Batch, OtlpRequest};

use crate::http_post::{Poster, client};
use crate::{BoxFuture, Delivery, ExportError, ExportMetrics, Exporter};
use stella_otlp::prometheus::{Dropped, Naming};

/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("stella/", env!("CARGO_PKG_VERSION"));

/// `exporters.prometheusremotewrite`.
pub struct RemoteWriteExporter {
    id: String,
    poster: Poster,
    naming: Naming,
    metrics: ExportMetrics,
}

impl RemoteWriteExporter {
    /// An exporter for `config`; no connection is made until the first batch.
    pub fn new(id: String, config: RemoteWriteConfig, metrics: ExportMetrics) -> Result<Self, ExportError> {
        let poster = Poster {
            client: client(&config.tls, &config.endpoint)?,
            url: config.endpoint.clone(),
            timeout: config.timeout,
            headers: config.headers.into_iter().collect(),
            server_error_retries: config.max_server_error_retries,
        };
        let naming = Naming { namespace: config.namespace, add_suffixes: config.add_metric_suffixes };
        Ok(RemoteWriteExporter { id, poster, naming, metrics })
    }

    async fn send(&self, batch: &Batch) -> Result<(), ExportError> {
        let OtlpRequest::Metrics(request) = &batch.request else {
            return Err(ExportError::Rejected {
                reason: "wrong_signal".into(),
                endpoint: self.poster.url.clone(),
                message: format!("prometheusremotewrite takes metrics, not {}", batch.signal()),
            });
        };
        let mut dropped = Dropped::default();
        let timeseries = translate::translate(request, &self.naming, &mut dropped);
        for (reason, points) in &dropped.0 {
            tracing::debug!(exporter = %self.id, reason, points, "points Prometheus cannot take were dropped");
            self.metrics.failed(&self.id, reason, *points);
        }
        if timeseries.is_empty() {
            return Ok(());
        }
        let body = WriteRequest { timeseries }.encode_to_vec();
        let compressed = snap::raw::Encoder::new().compress_vec(&body).map_err(|error| ExportError::Rejected {
            reason: "encode".into(),
            endpoint: self.poster.url.clone(),
            message: format!("cannot snappy-compress the write request: {error}"),
        })?;
        let headers = [
            ("content-encoding", "snappy"),
            ("content-type", "application/x-protobuf"),
            ("x-prometheus-remote-write-version", "0.1.0"),
            ("user-agent", USER_AGENT),
        ];
        self.poster.post(compressed.into(), &headers).await
    }
}

impl Exporter for RemoteWriteExporter {
    fn id(&self) -> &str {
        &self.id
    }

    fn export<'a>(&'a self, batch: &'a Batch, _delivery: Delivery<'a>) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.send(batch))
    }
}
