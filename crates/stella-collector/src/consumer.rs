//! Ingest-log consumers: one task per (pipeline, tenant, exporter) reads the log from its persisted cursor,
//! batches, exports with retry and backoff, and moves its cursor only past what the exporter took.
//! A slow or down exporter only grows its own backlog (up to `max_backlog`, past which its oldest data is
//! dropped and counted); segments are deleted once every consumer of the log has passed them.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stella_export::{Delivery, Encoded, ExportMetrics, Exporter};
use stella_metrics::CounterVec;
use stella_otlp::{Batch, OtlpRequest, Signal};
use stella_pipeline::Stage;
use stella_pipeline::batch::BatchConfig;
use stella_store::log::{Cursor, CursorStore, LogReader, RealFs, Record};
use tokio_util::sync::CancellationToken;

use crate::logs::Log;

/// Bytes read from the log per step.
const READ_BYTES: usize = 1024 * 1024;
/// How often a consumer saves its cursor while it works.
const CURSOR_INTERVAL: Duration = Duration::from_millis(200);
/// Longest wait between export retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How a consumer is told to stop.
#[derive(Clone, Default)]
pub struct ConsumerControl {
    /// Stop once caught up with the head (shutdown: deliver everything first).
    pub drain: CancellationToken,
    /// Stop now, keeping the cursor at the last delivered batch (reload).
    pub abort: CancellationToken,
}

/// The consumers of one log and where each stands, so consumed segments can be removed.
#[derive(Default)]
pub struct LogProgress {
    positions: Mutex<HashMap<String, u64>>,
}

impl LogProgress {
    /// Records `consumer`'s position and returns the slowest position of all.
    pub(crate) fn update(&self, consumer: &str, next_seq: u64) -> u64 {
        let mut positions = self.positions.lock().unwrap_or_else(|poison| poison.into_inner());
        positions.insert(consumer.to_string(), next_seq);
        positions.values().copied().min().unwrap_or(next_seq)
    }
}

/// Everything one consumer needs.
pub struct Consumer {
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
    /// Shared positions of this log's consumers.
    pub progress: Arc<LogProgress>,
    /// Where this consumer starts.
    pub start: Cursor,
}

impl Consumer {
    /// The key the exporter records deliveries under (unique per pipeline and tenant).
    fn key(&self) -> String {
        format!("{}|{}", self.log_name, self.tenant)
    }

    /// Where a consumer of `exporter` on `log` starts: the exporter's own record, else the saved cursor,
    /// else the head (a new exporter gets new data). Registers the position with `progress`.
    pub fn starting_cursor(
        exporter: &dyn Exporter,
        log: &Log,
        signal: Signal,
        key: &str,
        progress: &LogProgress,
    ) -> Cursor {
        let cursors = CursorStore::new(Arc::clone(log.fs()), log.dir().to_path_buf());
        let saved = cursors.load(exporter.id()).unwrap_or_else(|error| {
            tracing::warn!(%error, "ingest log: starting the consumer at the head");
            None
        });
        let next_seq = match exporter.resume_point(signal, key).or(saved.map(|cursor| cursor.next_seq)) {
            Some(next_seq) => next_seq,
            None => {
                // A new consumer starts at the head; save that now, so that after a restart it resumes
                // here instead of at the head of that later moment (which would skip what came between).
                let head = log.head();
                if let Err(error) = cursors.save(exporter.id(), &Cursor { next_seq: head, checkpoint: None }) {
                    tracing::error!(%error, "cannot save the new consumer's cursor");
                }
                head
            }
        };
        progress.update(&progress_key(key, exporter), next_seq);
        Cursor { next_seq, checkpoint: None }
    }

    /// Runs until `control` says stop.
    pub async fn run(self, control: ConsumerControl) {
        let key = self.key();
        let cursors = CursorStore::new(Arc::clone(self.log.fs()), self.log.dir().to_path_buf());
        let mut reader = Some(self.log.reader(self.start.next_seq));
        let mut head = self.log.subscribe();
        let mut saved_at = Instant::now();
        let mut delivered = self.start.next_seq;
        let mut saved = delivered;
        loop {
            if control.abort.is_cancelled() {
                break;
            }
            let Some(mut current) = reader.take() else { break };
            self.enforce_backlog(&mut current);
            let (current, collected) = self.collect(current, &control).await;
            reader = Some(current);
            let Some((request, next_seq)) = collected else {
                if delivered != saved {
                    saved = self.save(&cursors, &key, delivered).await;
                }
                self.report_backlog(delivered);
                // Stop draining only once caught up with the head as it is now: records committed
                // between our last read and the drain signal were acknowledged and must go out first.
                let caught_up = reader.as_ref().is_none_or(|reader| reader.next_seq() >= self.log.head());
                if control.drain.is_cancelled() && caught_up {
                    break;
                }
                if control.drain.is_cancelled() {
                    continue;
                }
                tokio::select! {
                    _ = head.changed() => {}
                    _ = control.drain.cancelled() => {}
                    _ = control.abort.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            };
            if !self.deliver(request, &key, (delivered, next_seq), &control).await {
                break;
            }
            delivered = next_seq;
            self.report_backlog(delivered);
            // Save at least every CURSOR_INTERVAL, and at once while over max_backlog so segments are freed.
            if saved_at.elapsed() >= CURSOR_INTERVAL || self.over_backlog(delivered) {
                saved = self.save(&cursors, &key, delivered).await;
                saved_at = Instant::now();
            }
        }
        if delivered != saved {
            self.save(&cursors, &key, delivered).await;
        }
    }

    /// Reads and decodes records into one request: up to `send_batch_size` items, waiting up to the batch
    /// timeout for more. `None` when nothing is committed past the reader.
    async fn collect(
        &self,
        reader: LogReader<RealFs>,
        control: &ConsumerControl,
    ) -> (LogReader<RealFs>, Option<(Outgoing, u64)>) {
        let target = self.batch.as_ref().map_or(0, |batch| batch.send_batch_size);
        let deadline = Instant::now() + self.batch.as_ref().map_or(Duration::ZERO, |batch| batch.timeout);
        let mut merged: Option<Outgoing> = None;
        let mut reader = reader;
        let mut head = self.log.subscribe();
        loop {
            let (back, records) = read_blocking(reader, READ_BYTES).await;
            reader = back;
            let records = match records {
                Ok(records) => records,
                Err(error) => {
                    tracing::error!(pipeline = %self.pipeline_id, exporter = self.exporter.id(), %error, "cannot read the ingest log");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Vec::new()
                }
            };
            let got_records = !records.is_empty();
            for record in records {
                self.absorb(&mut merged, record);
            }
            let items = merged.as_ref().map_or(0, Outgoing::items);
            let waiting =
                merged.is_some() && items < target && !control.drain.is_cancelled() && Instant::now() < deadline;
            if got_records && items < target.max(1) {
                continue;
            }
            if !waiting {
                break;
            }
            tokio::select! {
                _ = head.changed() => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = control.drain.cancelled() => {}
                _ = control.abort.cancelled() => break,
            }
        }
        let next_seq = reader.next_seq();
        (reader, merged.map(|outgoing| (outgoing, next_seq)))
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

    /// Exports until the exporter takes the batch (true) or the consumer is aborted (false); the batch
    /// spans the log from `delivered` (the cursor now) to `next_seq`.
    async fn deliver(
        &self,
        mut outgoing: Outgoing,
        key: &str,
        (delivered, next_seq): (u64, u64),
        control: &ConsumerControl,
    ) -> bool {
        if let Outgoing::Batch(batch) = &mut outgoing {
            for stage in &self.after_batch {
                for dropped in stage.process(batch) {
                    self.stage_drops.with(&[&self.pipeline_id, stage.id(), dropped.reason]).add(dropped.count);
                }
            }
        }
        let items = outgoing.items();
        if items == 0 {
            return true;
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            let delivery = Delivery { consumer: key, next_seq };
            let result = match &outgoing {
                Outgoing::Batch(batch) => self.exporter.export(batch, delivery).await,
                Outgoing::Encoded(encoded) => self.exporter.export_encoded(encoded, delivery).await,
            };
            self.metrics.record(self.exporter.id(), self.signal, items, &result);
            let Err(error) = result else { return true };
            if !error.is_retryable() {
                tracing::warn!(pipeline = %self.pipeline_id, exporter = self.exporter.id(), code = error.code(), %error, items, "export refused for good; the batch is dropped");
                return true;
            }
            if control.drain.is_cancelled() {
                tracing::warn!(pipeline = %self.pipeline_id, exporter = self.exporter.id(), %error, "export failed while stopping; the data stays in the ingest log for the next start");
                return false;
            }
            let wait = error.retry_after().map_or(backoff, |asked| asked.max(backoff));
            tracing::warn!(pipeline = %self.pipeline_id, exporter = self.exporter.id(), code = error.code(), %error, retry_in = ?wait, "export failed; retrying");
            let retry_at = tokio::time::Instant::now() + wait;
            let mut head = self.log.subscribe();
            loop {
                self.report_backlog(delivered);
                if self.over_backlog(next_seq) {
                    // So far behind that this (oldest) batch is past max_backlog: drop it instead of waiting.
                    tracing::warn!(pipeline = %self.pipeline_id, exporter = self.exporter.id(), items, "backlog over max_backlog while retrying: dropping the oldest batch");
                    self.metrics.failed(self.exporter.id(), "backlog_overflow", 1);
                    return true;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(retry_at) => break,
                    _ = head.changed(), if self.max_backlog.is_some() => {}
                    _ = control.abort.cancelled() => return false,
                    _ = control.drain.cancelled() => return false,
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Makes the exporter's data durable, saves the cursor, and lets the log drop what all consumers passed.
    async fn save(&self, cursors: &CursorStore<RealFs>, key: &str, next_seq: u64) -> u64 {
        if let Err(error) = self.exporter.flush().await {
            tracing::warn!(exporter = self.exporter.id(), %error, "flush before saving the cursor failed");
        }
        let cursor = Cursor { next_seq, checkpoint: None };
        if let Err(error) = cursors.save(self.exporter.id(), &cursor) {
            tracing::error!(exporter = self.exporter.id(), %error, "cannot save the consumer cursor");
            return next_seq;
        }
        let slowest = self.progress.update(&progress_key(key, self.exporter.as_ref()), next_seq);
        self.log.remove_before(slowest);
        next_seq
    }

    /// Publishes how many records are committed past `delivered` (the backlog gauge).
    fn report_backlog(&self, delivered: u64) {
        self.metrics.backlog(self.exporter.id(), &self.tenant, self.log.head().saturating_sub(delivered));
    }

    /// Whether the data from `next_seq` on is more than `max_backlog` bytes.
    fn over_backlog(&self, next_seq: u64) -> bool {
        self.max_backlog.is_some_and(|limit| self.log.seek_within(next_seq, limit).is_some())
    }

    /// Past `max_backlog` bytes behind the head, skips the oldest records and counts them.
    fn enforce_backlog(&self, reader: &mut LogReader<RealFs>) {
        let Some(limit) = self.max_backlog else { return };
        let Some((target, backlog)) = self.log.seek_within(reader.next_seq(), limit) else { return };
        let dropped = target.saturating_sub(reader.next_seq());
        if dropped == 0 {
            return;
        }
        tracing::warn!(pipeline = %self.pipeline_id, exporter = self.exporter.id(), dropped_records = dropped, backlog, limit, "backlog over max_backlog: dropping the oldest data");
        self.metrics.failed(self.exporter.id(), "backlog_overflow", dropped);
        reader.seek(target);
    }
}

/// One position per exporter in a log's progress: the log keeps what the slowest of them still needs.
fn progress_key(key: &str, exporter: &dyn Exporter) -> String {
    format!("{key}|{}", exporter.id())
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

/// Reads up to `max_bytes` of records on the blocking pool.
pub(crate) async fn read_blocking(
    mut reader: LogReader<RealFs>,
    max_bytes: usize,
) -> (LogReader<RealFs>, Result<Vec<Record>, stella_store::log::LogError>) {
    let outcome = tokio::task::spawn_blocking(move || {
        let records = reader.read(max_bytes);
        (reader, records)
    })
    .await;
    match outcome {
        Ok(result) => result,
        // The read itself panicked (a bug): carry the panic on rather than lose the reader silently.
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}
