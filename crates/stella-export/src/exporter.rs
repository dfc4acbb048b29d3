use std::future::Future;
use std::pin::Pin;

use stella_metrics::{CounterVec, Registry, names};
use stella_otlp::Batch;

use crate::ExportError;

/// A boxed, sendable future: what [`Exporter`] methods return so exporters can live behind `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where an exporter stands, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExporterHealth {
    /// The last export succeeded (or none was tried yet).
    Ready,
    /// The last export failed with this message.
    Failing(String),
}

/// A sink at the end of a pipeline.
///
/// The collector drives it: [`Exporter::export`] once per batch (possibly concurrently for different
/// batches), then [`Exporter::flush`] once at shutdown. `Ok` from `export` means the exporter has taken
/// the items (for `file`: written them to the file); only then are the clients acknowledged.
pub trait Exporter: Send + Sync {
    /// The component id from the config (`file`, `file/audit`, ...).
    fn id(&self) -> &str;

    /// Takes one batch.
    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), ExportError>>;

    /// Makes everything taken so far durable (for `file`: fsync). Called at shutdown.
    fn flush(&self) -> BoxFuture<'_, Result<(), ExportError>>;

    /// The exporter's state for readiness reports.
    fn health(&self) -> ExporterHealth {
        ExporterHealth::Ready
    }
}

/// The counters every exporter keeps: items sent and failures by reason.
#[derive(Clone)]
pub struct ExportMetrics {
    sent: CounterVec,
    failures: CounterVec,
}

impl ExportMetrics {
    /// Registers (or finds) the exporter families in `registry`.
    pub fn new(registry: &Registry) -> Self {
        ExportMetrics {
            sent: registry.counter(names::EXPORT_SENT_ITEMS, "Items an exporter has taken.", &["exporter", "signal"]),
            failures: registry.counter(
                names::EXPORT_FAILURES,
                "Export failures, by exporter and reason.",
                &["exporter", "reason"],
            ),
        }
    }

    /// Counts the outcome of one export of `batch` by `exporter`.
    pub fn record(&self, exporter: &str, batch: &Batch, result: &Result<(), ExportError>) {
        match result {
            Ok(()) => self.sent.with(&[exporter, batch.signal().as_str()]).add(batch.item_count() as u64),
            Err(error) => self.failures.with(&[exporter, error.code()]).inc(),
        }
    }
}
