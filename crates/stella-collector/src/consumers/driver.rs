//! The one cursor-consumer driver. Exporters, the store's sealer and the tail sampler all read their log
//! through [`drive`]: it reads (off the async workers), hands records to the [`Sink`], waits and retries
//! as the sink says, persists the position, lets the log drop what every consumer has passed, and keeps
//! the consumer's [`ConsumerHealth`] true. The rules are written once, here:
//!
//! - a consumer starts at its saved cursor; without one, at the log's first retained record (it never
//!   skips records it never saw); with an unreadable one, also at the first retained record, said at
//!   ERROR and counted (at least once: what it had delivered comes again, never silent loss);
//! - damage in the log never stalls a consumer (the reader skips and quarantines it);
//! - a cursor is written atomically (temporary file, fsync, rename, fsync of the directory), only after
//!   the sink made what it delivered durable;
//! - failures back off as the sink says and show in health and the backlog gauge while waiting.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use stella_metrics::CounterVec;
use stella_store::log::{Cursor, CursorStore, LogError, LogReader, RealFs, Record};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::health::ConsumerHealth;
use super::progress::LogProgress;
use crate::logs::Log;
use crate::throttle::{LOG_INTERVAL, Throttle};

/// Bytes read from the log per step.
const READ_BYTES: usize = 1024 * 1024;
/// The wait after a failed read of the log.
const READ_RETRY: Duration = Duration::from_secs(1);
/// An idle consumer looks at its log at least this often.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// How a consumer is told to stop.
#[derive(Clone, Default)]
pub struct ConsumerControl {
    /// Stop once caught up with the head (shutdown: deliver everything first).
    pub drain: CancellationToken,
    /// Stop now, keeping the cursor at the last delivered batch (reload).
    pub abort: CancellationToken,
}

/// What a sink did with its work.
pub(crate) enum Step {
    /// Done; go on.
    Done,
    /// Not done: call again at `at` (the sink keeps its work).
    RetryAt {
        /// When to try again.
        at: Instant,
        /// Why it failed.
        error: String,
    },
    /// Not done, and the sink dropped its work: read again from `seq` after `wait`.
    Rewind {
        /// Where to read from.
        seq: u64,
        /// How long to wait first.
        wait: Duration,
        /// Why it failed.
        error: String,
    },
    /// Stop now (a drain met a failure: the records stay in the log for the next start).
    Stop,
}

/// What a consumer does with the records the driver reads for it. The driver calls, in a loop:
/// [`Sink::pending`] (work held from before), then reads and calls [`Sink::take`] with what it read, or
/// [`Sink::idle`] when the reader is at the head.
pub(crate) trait Sink: Send {
    /// Work held from earlier records (a full batch to deliver, a failed one whose retry is due, kept
    /// spans to append). `Done` when there is nothing to do now.
    fn pending(&mut self, now: Instant, draining: bool) -> impl Future<Output = Step> + Send;

    /// Takes records read from the log, in order; `read_to` is the reader's position after them.
    fn take(&mut self, records: Vec<Record>, read_to: u64) -> impl Future<Output = Step> + Send;

    /// The reader is at the head (`read_to`): do what time brings (a batch timeout, due decisions,
    /// retention; when draining, everything held) and say when to be woken at the latest (`None`: when
    /// new records arrive).
    fn idle(
        &mut self,
        now: Instant,
        read_to: u64,
        draining: bool,
    ) -> impl Future<Output = (Step, Option<Instant>)> + Send;

    /// Called before each read (an exporter past its `max_backlog` skips the oldest records here).
    fn before_read(&mut self, _reader: &mut LogReader<RealFs>) {}

    /// Everything before this is delivered (for health and the backlog gauge).
    fn delivered(&self) -> u64;

    /// Where a restart must resume (the cursor): every record before it is delivered or kept elsewhere.
    fn resume_seq(&self) -> u64;

    /// Whether the position should be saved now rather than at the next interval (to free the log).
    fn urgent(&self) -> bool {
        false
    }

    /// Makes what was delivered durable before the cursor moves past it (an exporter's flush, the
    /// sampler's checkpoint).
    fn persist(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// A consumer's cursor file and its place among the log's consumers.
pub(crate) struct CursorFile {
    store: CursorStore<RealFs>,
    name: String,
    progress: Arc<LogProgress>,
    progress_key: String,
}

impl CursorFile {
    /// The cursor `name` of `log`, registered in `progress` under `progress_key`.
    pub(crate) fn new(log: &Log, name: &str, progress: Arc<LogProgress>, progress_key: String) -> Self {
        CursorFile {
            store: CursorStore::new(Arc::clone(log.fs()), log.dir().to_path_buf()),
            name: name.to_string(),
            progress,
            progress_key,
        }
    }

    /// Where this consumer starts: `known` (what the sink itself recorded) when there is one, else the
    /// saved cursor, else the log's first retained record. An unreadable cursor also starts at the first
    /// retained record: said at ERROR, and the records offered again counted in `replayed`.
    pub(crate) fn start(&self, log: &Log, known: Option<u64>, replayed: &CounterVec, labels: &[&str]) -> u64 {
        let start = match (known, self.store.load(&self.name)) {
            (Some(seq), _) => seq,
            (None, Ok(Some(cursor))) => cursor.next_seq,
            (None, Ok(None)) => log.first_seq(),
            (None, Err(error)) => {
                let first = log.first_seq();
                let again = log.head().saturating_sub(first);
                tracing::error!(code = error.code(), %error, consumer = %self.name, dir = %log.dir().display(), from = first, records = again, "ingest log: the cursor is unreadable; delivering again from the oldest retained record (duplicates, never loss)");
                replayed.with(labels).add(again);
                first
            }
        };
        self.progress.update(&self.progress_key, start);
        start
    }

    fn save(&self, log: &Log, next_seq: u64) -> Result<(), LogError> {
        self.store.save(&self.name, &Cursor { next_seq, checkpoint: None })?;
        let slowest = self.progress.update(&self.progress_key, next_seq);
        log.remove_before(slowest);
        Ok(())
    }
}

/// How one consumer runs: its log, where it starts, its cursor (none for a sink that persists its own
/// position), its health, and how often it persists while working.
pub(crate) struct DriverSpec {
    pub log: Arc<Log>,
    pub start: u64,
    pub cursor: Option<CursorFile>,
    pub health: Arc<ConsumerHealth>,
    pub persist_every: Duration,
}

/// Runs `sink` over its log until `control` says stop (see the module doc).
pub(crate) async fn drive<S: Sink>(mut sink: S, spec: DriverSpec, control: ConsumerControl) {
    let DriverSpec { log, start, cursor, health, persist_every } = spec;
    let mut reader = Some(log.reader(start));
    let mut head = log.subscribe();
    let mut saved = start;
    let mut saved_at = Instant::now();
    let read_failures = Throttle::new(LOG_INTERVAL);
    health.delivered_to(sink.delivered());
    loop {
        if control.abort.is_cancelled() {
            break;
        }
        let draining = control.drain.is_cancelled();
        match sink.pending(Instant::now(), draining).await {
            Step::Done => {}
            failed => {
                if follow(failed, &mut reader, &health, &control, &mut head).await {
                    continue;
                }
                break;
            }
        }
        let Some(mut current) = reader.take() else { break };
        sink.before_read(&mut current);
        let Some((back, read)) = read_blocking(current, READ_BYTES).await else { break };
        let read_to = back.next_seq();
        reader = Some(back);
        let records = match read {
            Ok(records) => records,
            Err(error) => {
                health.failed(&error.to_string());
                if let Some(suppressed) = read_failures.allow() {
                    tracing::error!(component = %health.component, tenant = %health.tenant, code = error.code(), os_error = error.os_error(), %error, suppressed, "cannot read the ingest log; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(READ_RETRY) => continue,
                    _ = control.abort.cancelled() => break,
                }
            }
        };
        if !records.is_empty() {
            let step = sink.take(records, read_to).await;
            let goes_on = match step {
                Step::Done => {
                    health.delivered_to(sink.delivered());
                    true
                }
                failed => follow(failed, &mut reader, &health, &control, &mut head).await,
            };
            if !goes_on {
                break;
            }
            if sink.resume_seq() != saved && (saved_at.elapsed() >= persist_every || sink.urgent()) {
                saved = persist(&mut sink, cursor.as_ref(), &log, saved, &health).await;
                saved_at = Instant::now();
            }
            continue;
        }
        let (step, wake_at) = sink.idle(Instant::now(), read_to, draining).await;
        if let failed @ (Step::RetryAt { .. } | Step::Rewind { .. } | Step::Stop) = step {
            if follow(failed, &mut reader, &health, &control, &mut head).await {
                continue;
            }
            break;
        }
        health.succeeded(sink.delivered());
        if sink.resume_seq() != saved && (saved_at.elapsed() >= persist_every || draining) {
            saved = persist(&mut sink, cursor.as_ref(), &log, saved, &health).await;
            saved_at = Instant::now();
        }
        // A drain stops once caught up with the head as it is now: records committed between the last
        // read and the drain signal were acknowledged and go out first.
        let caught_up = reader.as_ref().is_none_or(|reader| reader.next_seq() >= log.head());
        if draining {
            if caught_up {
                break;
            }
            continue;
        }
        let wake_at = wake_at.unwrap_or_else(|| Instant::now() + IDLE_WAKE).min(Instant::now() + IDLE_WAKE);
        tokio::select! {
            _ = head.changed() => {}
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = control.drain.cancelled() => {}
            _ = control.abort.cancelled() => break,
        }
    }
    if sink.resume_seq() != saved {
        persist(&mut sink, cursor.as_ref(), &log, saved, &health).await;
    }
}

/// Follows a step that did not finish: waits for its retry (waking on new records, so the health and
/// backlog stay current, and the sink may drop what `max_backlog` no longer allows), or rewinds. Returns
/// whether the consumer goes on.
async fn follow(
    step: Step,
    reader: &mut Option<LogReader<RealFs>>,
    health: &ConsumerHealth,
    control: &ConsumerControl,
    head: &mut tokio::sync::watch::Receiver<u64>,
) -> bool {
    match step {
        Step::Done => true,
        Step::Stop => false,
        Step::RetryAt { at, error } => {
            health.failed(&error);
            tokio::select! {
                _ = tokio::time::sleep_until(at) => true,
                _ = head.changed() => true,
                _ = control.drain.cancelled(), if !control.drain.is_cancelled() => true,
                _ = control.abort.cancelled() => false,
            }
        }
        Step::Rewind { seq, wait, error } => {
            health.failed(&error);
            if let Some(reader) = reader.as_mut() {
                reader.seek(seq);
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => true,
                _ = control.abort.cancelled() => false,
            }
        }
    }
}

/// Persists the sink, then its cursor; returns the position now saved (`saved` when it failed).
async fn persist<S: Sink>(
    sink: &mut S,
    cursor: Option<&CursorFile>,
    log: &Log,
    saved: u64,
    health: &ConsumerHealth,
) -> u64 {
    let resume = sink.resume_seq();
    if let Err(error) = sink.persist().await {
        tracing::warn!(component = %health.component, tenant = %health.tenant, %error, "cannot make delivered data durable; the cursor stays where it was");
        return saved;
    }
    let Some(cursor) = cursor else { return resume };
    match cursor.save(log, resume) {
        Ok(()) => resume,
        Err(error) => {
            tracing::error!(component = %health.component, tenant = %health.tenant, code = error.code(), %error, "cannot save the consumer cursor");
            saved
        }
    }
}

/// Reads up to `max_bytes` of records on the blocking pool. `None` when the runtime is shutting down
/// (the blocking task was cancelled before it ran).
pub(crate) async fn read_blocking(
    mut reader: LogReader<RealFs>,
    max_bytes: usize,
) -> Option<(LogReader<RealFs>, Result<Vec<Record>, LogError>)> {
    let outcome = tokio::task::spawn_blocking(move || {
        let records = reader.read(max_bytes);
        (reader, records)
    })
    .await;
    match outcome {
        Ok(result) => Some(result),
        Err(error) if error.is_cancelled() => None,
        // The read itself panicked (a bug): carry the panic on rather than lose the reader silently.
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}
