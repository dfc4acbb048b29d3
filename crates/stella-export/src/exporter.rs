use std::future::Future;
use std::pin::Pin;

use stella_metrics::{CounterVec, GaugeVec, Registry, names};
use stella_otlp::{Batch, Signal};

use crate::ExportError;

/// A boxed, sendable future: what [`Exporter`] methods return so exporters can live behind `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who delivers a batch: the ingest-log consumer (pipeline and tenant) and the sequence number its
/// cursor moves to once the batch is taken. Exporters that can make delivery exactly-once (the file
/// exporter) record it with the data and report it back through [`Exporter::resume_point`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// The consumer's key, unique per pipeline and tenant.
    pub consumer: &'a str,
    /// The log position after this batch.
    pub next_seq: u64,
}

/// A request as stored in the ingest log: concatenated `Export*ServiceRequest` encodings of one signal
/// (which protobuf reads as one merged request), handed to exporters that send bytes as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The signal of every record.
    pub signal: Signal,
    /// The protobuf bytes.
    pub bytes: Vec<u8>,
    /// Spans, data points or log records in them.
    pub items: usize,
}

/// Where an exporter stands, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExporterHealth {
    /// The last export succeeded (or none was tried yet).
    Ready,
    /// The last export failed with this message.
    Failing(String),
}

/// A sink at the end of a pipeline, fed by ingest-log consumers.
///
/// The collector drives it: [`Exporter::export`] once per batch (one at a time per consumer, possibly
/// concurrently across consumers), [`Exporter::flush`] before a consumer saves its cursor and at shutdown.
/// `Ok` from `export` means the exporter has taken the items (for `file`: written them); only then does
/// the consumer's cursor move past them. An `Err` makes the consumer retry the same batch.
pub trait Exporter: Send + Sync {
    /// The component id from the config (`file`, `file/audit`, ...).
    fn id(&self) -> &str;

    /// Takes one batch.
    fn export<'a>(&'a self, batch: &'a Batch, delivery: Delivery<'a>) -> BoxFuture<'a, Result<(), ExportError>>;

    /// Whether [`Exporter::export_encoded`] takes stored bytes as they are (the consumer then skips
    /// decoding). Exporters that read items (JSON files, stages) keep the default `false`.
    fn takes_encoded(&self) -> bool {
        false
    }

    /// Takes one batch in its stored encoding; only called when [`Exporter::takes_encoded`] is true.
    fn export_encoded<'a>(
        &'a self,
        encoded: &'a Encoded,
        _delivery: Delivery<'a>,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        let endpoint = format!("exporter {} ({} bytes)", self.id(), encoded.bytes.len());
        Box::pin(async move {
            Err(ExportError::Rejected {
                reason: "encoded_unsupported".into(),
                endpoint,
                message: "this exporter reads decoded batches".into(),
            })
        })
    }

    /// Where `consumer` should resume for `signal` when the exporter itself knows better than the cursor
    /// (the file exporter records the last delivered position with the data). `None`: use the cursor.
    fn resume_point(&self, _signal: Signal, _consumer: &str) -> Option<u64> {
        None
    }

    /// Makes everything taken so far durable (for `file`: fsync); called before a consumer saves its
    /// cursor and at shutdown. Exporters that hold nothing locally keep this default.
    fn flush(&self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }

    /// The exporter's state for readiness reports.
    fn health(&self) -> ExporterHealth {
        ExporterHealth::Ready
    }
}

/// The counters every exporter keeps: items sent and failures by reason; and its consumers' backlog.
#[derive(Clone)]
pub struct ExportMetrics {
    sent: CounterVec,
    failures: CounterVec,
    backlog: GaugeVec,
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
            backlog: registry.gauge(
                names::EXPORT_BACKLOG_RECORDS,
                "Ingest-log records an exporter has not delivered yet, by exporter and tenant.",
                &["exporter", "tenant"],
            ),
        }
    }

    /// Sets how many records `exporter` has still to deliver for `tenant`.
    pub fn backlog(&self, exporter: &str, tenant: &str, records: u64) {
        self.backlog.with(&[exporter, tenant]).set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    /// Counts `count` failures of `exporter` for `reason` (e.g. `backlog_overflow`).
    pub fn failed(&self, exporter: &str, reason: &str, count: u64) {
        self.failures.with(&[exporter, reason]).add(count);
    }

    /// Counts the outcome of one export of `items` items of `signal` by `exporter`.
    pub fn record(&self, exporter: &str, signal: Signal, items: usize, result: &Result<(), ExportError>) {
        match result {
            Ok(()) => self.sent.with(&[exporter, signal.as_str()]).add(items as u64),
            Err(error) => self.failures.with(&[exporter, error.code()]).inc(),
        }
    }
}
