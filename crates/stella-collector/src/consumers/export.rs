//! The exporter sink: batches records read from the log (up to the pipeline's `send_batch_size`, waiting
//! at most its `timeout`), runs the stages listed after `batch`, exports with retry and backoff, and
//! moves its position only past what the exporter took. A slow or down exporter only grows its own
//! backlog (up to `max_backlog`, past which its oldest data is dropped and counted).
use std::sync::Arc;
use std::time::Duration;

use stella_export::{Delivery, Encoded, ExportMetrics, Exporter};
use stella_metrics::CounterVec;
use stella_otlp::{Batch, OtlpRequest, Signal};
use stella_pipeline::Stage;
use stella_pipeline::batch::BatchConfig;
use stella_store::log::{LogReader, RealFs, Record};
use tokio::time::Instant;

use super::driver::{Sink, Step};
use crate::logs::Log;
use crate::throttle::{LOG_INTERVAL, Throttle};

/// The first wait after a failed export; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between export retries (unless the backend asks for longer with `Retry-After`).
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Everything one exporter consumer needs.
pub struct ExportSink {
    /// The pipeline id.
    pub pipeline_id: String,
    /// The log's name: the pipeline id, or `<pipeline>.sampled` behind tail sampling.
    pub log_name: String,
    /// The pipeline's signal.
    pub signal: Signal,
    /// The tenant of the log.
    pub tenant: Arc<str>,
    /// The exporter it feeds.
    pub exporter: Arc<dyn Exporter>,
    /// The log it reads.
    pub log: Arc<Log>,
    /// Batch sizes and timeout (from the pipeline's batch processor, if any).
    pub batch: Option<BatchConfig>,
    /// Stages listed after the batch processor.
    pub after_batch: Vec<Arc<dyn Stage>>,
    /// Drop the oldest data past this many backlog bytes.
    pub max_backlog: Option<u64>,
    /// Export counters.
    pub metrics: ExportMetrics,
    /// Items dropped by stages, by reason.
    pub stage_drops: CounterVec,
    /// Where it starts (everything before is delivered).
    pub delivered: u64,
    /// The batch being gathered or delivered.
    pending: Option<Pending>,
    failures: Arc<Throttle>,
}

/// A batch: what it holds, the log position after it, when it must go, and its retry state.
struct Pending {
    outgoing: Outgoing,
    end: u64,
    deadline: Instant,
    prepared: bool,
    retry: Option<(Instant, String)>,
    backoff: Duration,
}

impl ExportSink {
    /// A sink for `exporter` reading `log` from `delivered` (see the public fields).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pipeline_id: String,
        log_name: String,
        signal: Signal,
        tenant: Arc<str>,
        exporter: Arc<dyn Exporter>,
        log: Arc<Log>,
        (batch, after_batch): (Option<BatchConfig>, Vec<Arc<dyn Stage>>),
        max_backlog: Option<u64>,
        (metrics, stage_drops): (ExportMetrics, CounterVec),
        delivered: u64,
    ) -> Self {
        ExportSink {
            pipeline_id,
            log_name,
            signal,
            tenant,
            exporter,
            log,
            batch,
            after_batch,
            max_backlog,
            metrics,
            stage_drops,
            delivered,
            pending: None,
            failures: Arc::new(Throttle::new(LOG_INTERVAL)),
        }
    }

    /// The key the exporter records deliveries under (unique per pipeline and tenant).
    pub fn key(&self) -> String {
        format!("{}|{}", self.log_name, self.tenant)
    }

    fn target(&self) -> usize {
        self.batch.as_ref().map_or(0, |batch| batch.send_batch_size)
    }

    /// Whether this consumer hands stored bytes to its exporter as they are (no stage to run, and an
    /// exporter that sends bytes): then records are counted, not decoded.
    fn passes_encoded(&self) -> bool {
        self.after_batch.is_empty() && self.exporter.takes_encoded()
    }

    fn absorb(&self, merged: &mut Option<Outgoing>, record: Record) {
        if self.passes_encoded() {
            let items = match stella_otlp::wire::count_items(self.signal, &record.payload) {
                Ok(items) => items,
                Err(error) => {
                    tracing::error!(seq = record.seq, %error, "ingest log: skipping an undecodable record");
                    return;
                }
            };
            match merged {
                Some(Outgoing::Encoded(encoded)) => {
                    encoded.bytes.extend_from_slice(&record.payload);
                    encoded.items += items;
                }
                _ => *merged = Some(Outgoing::Encoded(Encoded { signal: self.signal, bytes: record.payload, items })),
            }
            return;
        }
        let request = match OtlpRequest::decode_protobuf(self.signal, &record.payload) {
            Ok(request) => request,
            Err(error) => {
                tracing::error!(seq = record.seq, %error, "ingest log: skipping an undecodable record");
                return;
            }
        };
        match merged {
            Some(Outgoing::Batch(batch)) => {
                let _ = batch.request.append(request);
            }
            _ => *merged = Some(Outgoing::Batch(Batch { tenant: Arc::clone(&self.tenant), request, acks: Vec::new() })),
        }
    }

    /// Whether the data from `next_seq` on is more than `max_backlog` bytes.
    fn over_backlog(&self, next_seq: u64) -> bool {
        self.max_backlog.is_some_and(|limit| self.log.seek_within(next_seq, limit).is_some())
    }

    /// One try at exporting the pending batch.
    async fn attempt(&mut self, draining: bool) -> Step {
        let key = self.key();
        let Some(mut pending) = self.pending.take() else { return Step::Done };
        if !pending.prepared {
            if let Outgoing::Batch(batch) = &mut pending.outgoing {
                for stage in &self.after_batch {
                    for dropped in stage.process(batch) {
                        self.stage_drops.with(&[&self.pipeline_id, stage.id(), dropped.reason]).add(dropped.count);
                    }
                }
            }
            pending.prepared = true;
        }
        let items = pending.outgoing.items();
        if items == 0 {
            self.delivered = pending.end;
            return Step::Done;
        }
        let delivery = Delivery { consumer: &key, next_seq: pending.end };
        let result = match &pending.outgoing {
            Outgoing::Batch(batch) => self.exporter.export(batch, delivery).await,
            Outgoing::Encoded(encoded) => self.exporter.export_encoded(encoded, delivery).await,
        };
        self.metrics.record(self.exporter.id(), self.signal, items, &result);
        let Err(error) = result else {
            self.delivered = pending.end;
            return Step::Done;
        };
        let exporter = self.exporter.id().to_string();
        if !error.is_retryable() {
            tracing::warn!(pipeline = %self.pipeline_id, exporter, code = error.code(), %error, items, "export refused for good; the batch is dropped");
            self.delivered = pending.end;
            return Step::Done;
        }
        if draining {
            tracing::warn!(pipeline = %self.pipeline_id, exporter, %error, "export failed while stopping; the data stays in the ingest log for the next start");
            return Step::Stop;
        }
        let wait = error.retry_after().map_or(pending.backoff, |asked| asked.max(pending.backoff));
        if let Some(suppressed) = self.failures.allow() {
            tracing::warn!(pipeline = %self.pipeline_id, exporter, tenant = %self.tenant, code = error.code(), %error, retry_in = ?wait, suppressed, "export failed; retrying");
        }
        let at = Instant::now() + wait;
        let message = format!("{}: {error}", error.code());
        pending.retry = Some((at, message.clone()));
        pending.backoff = (pending.backoff * 2).min(MAX_BACKOFF);
        self.pending = Some(pending);
        Step::RetryAt { at, error: message }
    }
}

impl Sink for ExportSink {
    async fn pending(&mut self, now: Instant, draining: bool) -> Step {
        let Some(pending) = &self.pending else { return Step::Done };
        if let Some((at, error)) = &pending.retry {
            if self.over_backlog(pending.end) {
                // So far behind that this (oldest) batch is past max_backlog: drop it instead of waiting.
                tracing::warn!(pipeline = %self.pipeline_id, exporter = self.exporter.id(), items = pending.outgoing.items(), "backlog over max_backlog while retrying: dropping the oldest batch");
                self.metrics.failed(self.exporter.id(), "backlog_overflow", 1);
                self.delivered = pending.end;
                self.pending = None;
                return Step::Done;
            }
            if draining {
                tracing::warn!(pipeline = %self.pipeline_id, exporter = self.exporter.id(), "stopping while the export fails; the data stays in the ingest log for the next start");
                return Step::Stop;
            }
            if now < *at {
                return Step::RetryAt { at: *at, error: error.clone() };
            }
            return self.attempt(draining).await;
        }
        if pending.outgoing.items() >= self.target().max(1) {
            return self.attempt(draining).await;
        }
        Step::Done
    }

    async fn take(&mut self, records: Vec<Record>, read_to: u64) -> Step {
        // Only called with no batch in retry: `pending` said Done first.
        let gathering = self.pending.take();
        let deadline = gathering.as_ref().map(|pending| pending.deadline);
        let mut outgoing = gathering.map(|pending| pending.outgoing);
        for record in records {
            self.absorb(&mut outgoing, record);
        }
        let Some(outgoing) = outgoing else {
            self.delivered = read_to;
            return Step::Done;
        };
        let timeout = self.batch.as_ref().map_or(Duration::ZERO, |batch| batch.timeout);
        let deadline = deadline.unwrap_or_else(|| Instant::now() + timeout);
        self.pending =
            Some(Pending { outgoing, end: read_to, deadline, prepared: false, retry: None, backoff: FIRST_BACKOFF });
        Step::Done
    }

    async fn idle(&mut self, now: Instant, read_to: u64, draining: bool) -> (Step, Option<Instant>) {
        let Some(pending) = &self.pending else {
            self.delivered = self.delivered.max(read_to);
            return (Step::Done, None);
        };
        if pending.retry.is_some() {
            return (self.pending(now, draining).await, None);
        }
        if self.target() == 0 || draining || now >= pending.deadline {
            return (self.attempt(draining).await, None);
        }
        (Step::Done, Some(pending.deadline))
    }

    fn before_read(&mut self, reader: &mut LogReader<RealFs>) {
        let Some(limit) = self.max_backlog else { return };
        let Some((target, backlog)) = self.log.seek_within(reader.next_seq(), limit) else { return };
        let dropped = target.saturating_sub(reader.next_seq());
        if dropped == 0 {
            return;
        }
        tracing::warn!(pipeline = %self.pipeline_id, exporter = self.exporter.id(), dropped_records = dropped, backlog, limit, "backlog over max_backlog: dropping the oldest data");
        self.metrics.failed(self.exporter.id(), "backlog_overflow", dropped);
        reader.seek(target);
        if self.pending.is_none() {
            self.delivered = target;
        }
    }

    fn delivered(&self) -> u64 {
        self.delivered
    }

    fn resume_seq(&self) -> u64 {
        self.delivered
    }

    fn urgent(&self) -> bool {
        self.over_backlog(self.delivered)
    }

    async fn persist(&mut self) -> Result<(), String> {
        self.exporter.flush().await.map_err(|error| format!("flush of exporter {} failed: {error}", self.exporter.id()))
    }
}

/// What a consumer has read: a decoded batch (for exporters that read items, or stages to run) or the
/// records as stored (for exporters that send bytes).
enum Outgoing {
    Batch(Batch),
    Encoded(Encoded),
}

impl Outgoing {
    fn items(&self) -> usize {
        match self {
            Outgoing::Batch(batch) => batch.item_count(),
            Outgoing::Encoded(encoded) => encoded.items,
        }
    }
}
