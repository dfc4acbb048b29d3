//! The store sink: one per pipeline with a `store` exporter and tenant. It reads the pipeline's log (its
//! `.sampled` log behind tail sampling) record by record into the [`Sealer`], writes the chunks it seals,
//! and runs retention. Its position stays at the first record of the open chunk, so after a stop or
//! `kill -9` the open chunk is rebuilt from the log exactly as it was; a chunk sealed again after a crash
//! has the same digest and is listed once.
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stella_store::chunks::StoreView;

use stella_metrics::{CounterVec, GaugeVec, Registry, names};
use stella_otlp::Signal;
use stella_store::chunks::{HoldBook, MAX_CLOCK_LEAD, Sealer, Store, StoreError, retention_cutoff};
use stella_store::log::Record;
use tokio::sync::watch;
use tokio::time::Instant;

use super::driver::{Sink, Step};
use crate::config::StoreSettings;
use crate::store::{OpenChunk, StoreRegistry};
use crate::throttle::Throttle;

/// The wait before records are read again after a chunk could not be written.
const SEAL_RETRY: Duration = Duration::from_secs(1);

/// The store's meta-metrics.
#[derive(Clone)]
pub struct StoreMetrics {
    bytes: GaugeVec,
    sealed: CounterVec,
    deleted: CounterVec,
    paused: CounterVec,
}

impl StoreMetrics {
    /// Registers (or finds) the families in `registry`.
    pub fn new(registry: &Registry) -> Self {
        StoreMetrics {
            bytes: registry.gauge(
                names::STORE_BYTES,
                "Bytes of the embedded store on disk, by tenant and signal.",
                &["tenant", "signal"],
            ),
            sealed: registry.counter(
                names::STORE_SEALED_CHUNKS,
                "Chunks sealed by the embedded store, by signal.",
                &["signal"],
            ),
            deleted: registry.counter(
                names::RETENTION_DELETED_CHUNKS,
                "Chunks deleted by retention, by tenant and signal.",
                &["tenant", "signal"],
            ),
            paused: registry.counter(
                names::RETENTION_PAUSED,
                "Retention sweeps held back because the wall clock ran more than a day past the newest record, by tenant and signal.",
                &["tenant", "signal"],
            ),
        }
    }

    fn set_bytes(&self, store: &Store, tenant: &str, signal: Signal) {
        let bytes = store.bytes(tenant, signal.as_str());
        self.bytes.with(&[tenant, signal.as_str()]).set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// One tenant's and signal's sealing.
pub struct SealSink {
    tenant: Arc<str>,
    signal: Signal,
    settings: StoreSettings,
    holds: Arc<HoldBook>,
    registry: Arc<StoreRegistry>,
    metrics: StoreMetrics,
    sealer: OpenChunk,
    /// Tells queries how far the store has read (sealed or open chunk).
    read: watch::Sender<u64>,
    read_to: u64,
    swept_at: Option<Instant>,
    paused_warnings: Throttle,
}

impl SealSink {
    /// The sink of `tenant`'s `signal` starting at `start`, registered with `registry` for queries.
    pub fn new(
        (tenant, signal): (Arc<str>, Signal),
        log: &Arc<crate::logs::Log>,
        start: u64,
        (settings, holds): (StoreSettings, Arc<HoldBook>),
        registry: Arc<StoreRegistry>,
        metrics: StoreMetrics,
    ) -> Self {
        let sealer: OpenChunk = Arc::new(Mutex::new(Sealer::new(&tenant, signal, settings.limits())));
        registry.set_open(&tenant, signal, Arc::clone(&sealer));
        let read = registry.set_consumed(&tenant, signal, log, start);
        if let Err(error) = registry.store().learn_newest(&tenant, signal.as_str()) {
            tracing::warn!(code = error.code(), %error, "store: cannot read the newest day; retention waits for new chunks");
        }
        SealSink {
            tenant,
            signal,
            settings,
            holds,
            registry,
            metrics,
            sealer,
            read,
            read_to: start,
            swept_at: None,
            paused_warnings: Throttle::new(Duration::from_secs(3600)),
        }
    }

    fn sealer(&self) -> std::sync::MutexGuard<'_, Sealer> {
        self.sealer.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Deletes chunks past the retention window, except held ones; logs and counts what it deletes. The
    /// wall clock counts only up to a day past the newest sealed record (see `retention_cutoff`).
    async fn sweep(&self) {
        let window = self.settings.retention.window(self.signal);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let store = self.registry.store().clone();
        let cutoff = retention_cutoff(now, store.newest_time(), window, MAX_CLOCK_LEAD);
        if let Some(ahead) = cutoff.paused_by {
            self.metrics.paused.with(&[&self.tenant, self.signal.as_str()]).inc();
            if let Some(suppressed) = self.paused_warnings.allow() {
                tracing::warn!(event = "retention.paused", tenant = %self.tenant, signal = %self.signal, clock_ahead_s = ahead / 1_000_000_000, suppressed, "retention: the wall clock is more than a day past the newest record; deleting only what is past the window of the data (check the clock)");
            }
        }
        let (holds, tenant, signal) = (Arc::clone(&self.holds), Arc::clone(&self.tenant), self.signal);
        let swept = tokio::task::spawn_blocking(move || {
            store.sweep(&tenant, signal.as_str(), cutoff.at, &|min, max| holds.holds(&tenant, min, max))
        })
        .await;
        match swept {
            Ok(Ok(deleted)) if !deleted.is_empty() => {
                tracing::info!(event = "retention.deleted", tenant = %self.tenant, signal = %self.signal, chunks = deleted.len(), window = ?window, "retention deleted chunks past their window");
                self.metrics.deleted.with(&[&self.tenant, self.signal.as_str()]).add(deleted.len() as u64);
                self.metrics.set_bytes(self.registry.store(), &self.tenant, self.signal);
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::error!(code = error.code(), %error, "retention sweep failed; it runs again later")
            }
            Err(error) => tracing::error!(%error, "retention sweep failed unexpectedly"),
        }
    }
}

impl Sink for SealSink {
    async fn pending(&mut self, _now: Instant, _draining: bool) -> Step {
        Step::Done
    }

    async fn take(&mut self, records: Vec<Record>, read_to: u64) -> Step {
        let resume = self.resume_seq();
        let sealing = Sealing {
            sealer: Arc::clone(&self.sealer),
            store: self.registry.store().clone(),
            tenant: Arc::clone(&self.tenant),
            signal: self.signal,
            metrics: self.metrics.clone(),
        };
        match tokio::task::spawn_blocking(move || sealing.seal(records)).await {
            Ok(Ok(sealed)) => {
                if sealed {
                    self.registry.chunks_sealed();
                }
                self.read_to = read_to;
                self.read.send_replace(read_to);
                Step::Done
            }
            Ok(Err(error)) => {
                // The open chunk is dropped and rebuilt from the log: its records are still there.
                tracing::error!(code = error.code(), %error, "store: cannot write a chunk; retrying");
                *self.sealer() = Sealer::new(&self.tenant, self.signal, self.settings.limits());
                self.read_to = resume;
                Step::Rewind { seq: resume, wait: SEAL_RETRY, error: format!("{}: {error}", error.code()) }
            }
            Err(error) if error.is_cancelled() => Step::Stop,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    async fn idle(&mut self, _now: Instant, read_to: u64, _draining: bool) -> (Step, Option<Instant>) {
        self.read_to = read_to;
        self.read.send_replace(read_to);
        if self.swept_at.is_none_or(|at| at.elapsed() >= self.settings.sweep_interval) {
            self.sweep().await;
            self.swept_at = Some(Instant::now());
        }
        (Step::Done, self.swept_at.map(|at| at + self.settings.sweep_interval))
    }

    fn delivered(&self) -> u64 {
        self.read_to
    }

    fn resume_seq(&self) -> u64 {
        self.sealer().open_first_seq().unwrap_or(self.read_to)
    }

    async fn persist(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// The blocking part: seal records and write the chunks they complete.
struct Sealing {
    sealer: OpenChunk,
    store: Store,
    tenant: Arc<str>,
    signal: Signal,
    metrics: StoreMetrics,
}

impl Sealing {
    /// Whether it wrote a chunk.
    fn seal(self, records: Vec<Record>) -> Result<bool, StoreError> {
        let mut sealer = self.sealer.lock().unwrap_or_else(|poison| poison.into_inner());
        let mut days = BTreeSet::new();
        for record in records {
            match sealer.add(record.seq, record.payload) {
                Ok(chunks) => {
                    for chunk in chunks {
                        self.store.write(&chunk)?;
                        days.insert(chunk.manifest.day.clone());
                        self.metrics.sealed.with(&[self.signal.as_str()]).inc();
                    }
                }
                Err(error) => tracing::error!(tenant = %self.tenant, %error, "store: skipping a record"),
            }
        }
        if !days.is_empty() {
            self.metrics.set_bytes(&self.store, &self.tenant, self.signal);
        }
        Ok(!days.is_empty())
    }
}
