use serde::Deserialize;
use stella_otlp::Batch;

use crate::{BoxFuture, Delivery, ExportError, Exporter};

/// How much the debug exporter prints per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    /// One summary line: signal, tenant, resource groups, items, bytes.
    #[default]
    Basic,
    /// The summary plus the batch as OTLP/JSON.
    Detailed,
}

/// `exporters.debug`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugConfig {
    /// `basic` (default) or `detailed`.
    #[serde(default)]
    pub verbosity: Verbosity,
}

/// `exporters.debug`: logs a summary line per batch (at `info`), for trying a pipeline out.
#[derive(Debug)]
pub struct DebugExporter {
    id: String,
    verbosity: Verbosity,
}

impl DebugExporter {
    /// A debug exporter with this component id.
    pub fn new(id: String, config: &DebugConfig) -> Self {
        DebugExporter { id, verbosity: config.verbosity }
    }
}

impl Exporter for DebugExporter {
    fn id(&self) -> &str {
        &self.id
    }

    fn export<'a>(&'a self, batch: &'a Batch, _delivery: Delivery<'a>) -> BoxFuture<'a, Result<(), ExportError>> {
        let request = &batch.request;
        let resources = match request {
            stella_otlp::OtlpRequest::Traces(r) => r.resource_spans.len(),
            stella_otlp::OtlpRequest::Metrics(r) => r.resource_metrics.len(),
            stella_otlp::OtlpRequest::Logs(r) => r.resource_logs.len(),
        };
        tracing::info!(
            exporter = %self.id,
            signal = %batch.signal(),
            tenant = %batch.tenant,
            resources,
            items = batch.item_count(),
            bytes = request.encoded_len(),
            "debug exporter batch"
        );
        if self.verbosity == Verbosity::Detailed {
            let json = stella_otlp::json::encode(request);
            tracing::info!(exporter = %self.id, otlp_json = %String::from_utf8_lossy(&json), "debug exporter batch content");
        }
        Box::pin(async { Ok(()) })
    }
}
