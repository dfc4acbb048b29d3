//! The embedded store at run time: the [`StoreRegistry`] queries go through (sealed chunks on disk plus
//! the open chunks of the sealing consumers, `consumers::seal`).
//!
//! With `storage.backend`, one [`Uploader`] task per process moves sealed chunks to object storage:
//! sealing tasks wake it after each chunk they write (they never wait for it), and it runs upload rounds
//! on a blocking thread, retried with backoff while object storage fails. A chunk stays on local disk
//! until its upload is confirmed.
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stella_metrics::{CounterVec, Registry, names};
use stella_otlp::Signal;
use stella_store::chunks::{
    ChunkManifest, Cut, LocalCache, OpenRecord, RemoteChunks, ScanFilter, SealLimits, Sealer, Store, StoreError,
    StoreView, UnsealedRecord, UploadRound, directory_name, unsealed_records,
};
use stella_store::log::{CursorStore, RealFs, read_log_from};
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::S3Backend;
use crate::logs::Log;
/// The wait after a failed upload round; it doubles after each further failure, up to
/// [`MAX_UPLOAD_BACKOFF`].
const FIRST_UPLOAD_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between upload rounds while object storage fails.
const MAX_UPLOAD_BACKOFF: Duration = Duration::from_secs(60);
/// Upload rounds start at most this often: a busy sealer wakes the uploader per chunk, one round takes
/// the chunks waiting (up to `stella_store::chunks::ROUND_CHUNKS`).
const UPLOAD_ROUND_INTERVAL: Duration = Duration::from_millis(250);
/// An idle uploader looks for waiting chunks this often anyway.
const UPLOAD_RESCAN: Duration = Duration::from_secs(60);

/// The open chunk of a sealing task, shared with queries.
pub(crate) type OpenChunk = Arc<Mutex<Sealer>>;
/// A sealing task's log and the first record it has not read yet.
type ReadPosition = (Arc<Log>, tokio::sync::watch::Sender<u64>);

/// The store of a collector and the open chunks of its sealing tasks.
pub struct StoreRegistry {
    store: Store,
    open: Mutex<HashMap<(String, Signal), OpenChunk>>,
    /// Per sealing task (tenant, signal): its log and how far it has read (sealed or open chunk).
    consumed: Mutex<HashMap<(String, Signal), ReadPosition>>,
    /// The uploader, when object storage is attached.
    uploads: Option<UploadHandle>,
}

/// How sealing tasks reach the uploader; dropping it stops the uploader.
struct UploadHandle {
    wake: Arc<Notify>,
    _stop: DropGuard,
}

impl StoreRegistry {
    /// The store under `<data_dir>/store`; with `backend` (and unless egress keeps it inert), sealed
    /// chunks also go to object storage, moved there by an uploader task started here (so this must run
    /// inside the tokio runtime for the backend to be used). A backend that cannot be used is logged (and
    /// under sealed egress counted in `registry`), and chunks stay on local disk only.
    pub fn new(data_dir: &Path, backend: Option<&S3Backend>, registry: &Registry) -> Self {
        let root = data_dir.join("store");
        let (store, uploads) = match backend.and_then(|backend| attach(&root, backend, registry)) {
            Some((store, uploads)) => (store, Some(uploads)),
            None => (Store::new(root), None),
        };
        StoreRegistry { store, open: Mutex::new(HashMap::new()), consumed: Mutex::new(HashMap::new()), uploads }
    }

    /// Tells the uploader a chunk was sealed (nothing without object storage; never waits).
    pub(crate) fn chunks_sealed(&self) {
        if let Some(uploads) = &self.uploads {
            uploads.wake.notify_one();
        }
    }

    /// Waits (at most `timeout`) until every sealing task of `tenant` has read its log up to the head it
    /// had when this was called, so a query or bundle made next sees everything acknowledged before.
    /// Whether they all got there.
    pub async fn caught_up(&self, tenant: &str, timeout: Duration) -> bool {
        let waits: Vec<(u64, tokio::sync::watch::Receiver<u64>)> = self
            .consumed
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .filter(|((of, _), _)| of == tenant)
            .map(|(_, (log, done))| (log.head(), done.subscribe()))
            .collect();
        let all = async {
            for (target, mut done) in waits {
                if done.wait_for(|read| *read >= target).await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, all).await.is_ok()
    }

    pub(crate) fn set_consumed(
        &self,
        tenant: &str,
        signal: Signal,
        log: &Arc<Log>,
        read: u64,
    ) -> tokio::sync::watch::Sender<u64> {
        let done = tokio::sync::watch::Sender::new(read);
        self.consumed
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert((tenant.to_string(), signal), (Arc::clone(log), done.clone()));
        done
    }

    pub(crate) fn set_open(&self, tenant: &str, signal: Signal, sealer: OpenChunk) {
        self.open.lock().unwrap_or_else(|poison| poison.into_inner()).insert((tenant.to_string(), signal), sealer);
    }
}

impl StoreRegistry {
    /// The open chunk of `tenant`'s `signal`, if its sealing task runs.
    fn open_chunk(&self, tenant: &str, signal: Signal) -> Option<OpenChunk> {
        self.open.lock().unwrap_or_else(|poison| poison.into_inner()).get(&(tenant.to_string(), signal)).cloned()
    }
}

impl StoreView for StoreRegistry {
    fn store(&self) -> &Store {
        &self.store
    }

    /// The open chunk's records are taken with the sealed-chunk plan under the open chunk's lock. A seal
    /// holds that lock until its chunk and index are written, so every record is in exactly one part.
    fn cut(&self, tenant: &str, signal: Signal, range: (u64, u64), filter: ScanFilter<'_>) -> Result<Cut, StoreError> {
        let Some(open) = self.open_chunk(tenant, signal) else {
            return Cut::sealed(&self.store, tenant, signal.as_str(), range, filter);
        };
        let sealer = open.lock().unwrap_or_else(|poison| poison.into_inner());
        let unsealed = sealer
            .open_records()
            .iter()
            .filter(|record| record.facts.max_time >= range.0 && record.facts.min_time <= range.1)
            .filter(|record| filter.service.is_none_or(|service| record.facts.services.contains(service)))
            .map(|record| UnsealedRecord { payload: record.payload.clone(), max_time: record.facts.max_time })
            .collect();
        let sealed = Cut::sealed(&self.store, tenant, signal.as_str(), range, filter)?;
        drop(sealer);
        Ok(Cut { unsealed, ..sealed })
    }

    fn trace_records(&self, tenant: &str, trace_id: &[u8; 16]) -> Result<Vec<Vec<u8>>, StoreError> {
        // The open chunk first: a seal holds its lock until the chunk and its index are written, so a record
        // missing from the open chunk is already in the index. (Read the other way round, a seal in between
        // hid a record from both.) A record seen in both comes back twice; callers dedupe spans.
        let unsealed: Vec<Vec<u8>> = self.open_chunk(tenant, Signal::Traces).map_or_else(Vec::new, |open| {
            let sealer = open.lock().unwrap_or_else(|poison| poison.into_inner());
            sealer
                .open_records()
                .iter()
                .filter(|record| record.facts.trace_ids.contains(trace_id))
                .map(|record| record.payload.clone())
                .collect()
        });
        let mut records = self.store.records_with_trace(tenant, trace_id)?;
        records.extend(unsealed);
        Ok(records)
    }
}

/// The store under `<data_dir>/store` for a reader outside the server (`store check`, an offline
/// capture): with `backend`, chunks the server evicted are read back from object storage and checked
/// (nothing is uploaded or evicted). Must be called inside the tokio runtime; the store's reads then
/// run on blocking threads. An unusable backend is an error here, not a warning: the reader would
/// report evicted chunks it cannot see.
pub fn reader_store(data_dir: &Path, backend: Option<&S3Backend>) -> Result<Store, BackendUnusable> {
    let root = data_dir.join("store");
    match backend {
        None => Ok(Store::new(root)),
        Some(backend) => Ok(Store::with_remote(root, remote_chunks(backend)?)),
    }
}

/// The store of a data directory as its server sees it, for offline readers (an offline capture, `store
/// check`): the sealed chunks, and for each tenant and signal the records the server's sealing consumer
/// holds open, read from its ingest log from its cursor on and sealed again exactly as the server would
/// (chunks already in the store left out). So an offline capture of a stopped server equals the capture
/// the server made of the same window before it stopped.
pub struct OfflineStore {
    store: Store,
    data_dir: std::path::PathBuf,
    /// Per signal: the log (pipeline id, or `<pipeline>.sampled`), the sealing consumer's cursor name
    /// and its seal limits.
    sealing: Vec<(Signal, String, String, SealLimits)>,
    signing_key: Option<std::path::PathBuf>,
}

impl OfflineStore {
    /// The view of `store`, the store of `data_dir`, for the server of `config`.
    pub fn new(store: Store, data_dir: &Path, config: &crate::config::Config) -> Self {
        let mut sealing = Vec::new();
        for (pipeline_id, pipeline) in &config.pipelines {
            let sampled = pipeline
                .processors
                .iter()
                .any(|id| matches!(config.processors.get(id), Some(crate::config::ProcessorConfig::TailSampling(_))));
            let log = if sampled { format!("{pipeline_id}.sampled") } else { pipeline_id.clone() };
            for id in &pipeline.exporters {
                if let Some(crate::config::ExporterConfig::Store(settings)) = config.exporters.get(id) {
                    sealing.push((pipeline.signal, log.clone(), id.clone(), settings.limits()));
                }
            }
        }
        OfflineStore {
            store,
            data_dir: data_dir.to_path_buf(),
            sealing,
            signing_key: config.evidence.signing_key.clone(),
        }
    }

    /// The config's `evidence.signing_key`, the key the server signs with, if set.
    pub fn signing_key(&self) -> Option<&std::path::PathBuf> {
        self.signing_key.as_ref()
    }

    /// The records the server's sealing consumers of `tenant`'s `signal` hold open, in log order.
    fn open_records(&self, tenant: &str, signal: Signal) -> Result<Vec<OpenRecord>, StoreError> {
        let mut open = Vec::new();
        for (_, log, cursor, limits) in self.sealing.iter().filter(|(of, ..)| *of == signal) {
            let dir = self.data_dir.join("log").join(directory_name(log)).join(directory_name(tenant));
            if !dir.is_dir() {
                continue;
            }
            let cursors = CursorStore::new(Arc::new(RealFs), dir.clone());
            let from = match cursors.load(cursor) {
                Ok(Some(saved)) => saved.next_seq,
                // Like the server: no cursor (or an unreadable one) starts at the oldest retained record.
                _ => 0,
            };
            let mut records = Vec::new();
            read_log_from(&RealFs, &dir, from, &mut |record| records.push((record.seq, record.payload)))
                .map_err(|error| StoreError::Log(Box::new(error)))?;
            let stored = |manifest: &ChunkManifest| {
                self.store
                    .day(tenant, signal.as_str(), &manifest.day)
                    .ok()
                    .flatten()
                    .is_some_and(|day| day.chunks().any(|chunk| chunk.sha256 == manifest.sha256))
            };
            open.extend(unsealed_records(tenant, signal, *limits, records, &stored));
        }
        Ok(open)
    }
}

impl StoreView for OfflineStore {
    fn store(&self) -> &Store {
        &self.store
    }

    /// The [`Cut`] the server would take: the sealed chunks, and the open records overlapping `range`.
    fn cut(&self, tenant: &str, signal: Signal, range: (u64, u64), filter: ScanFilter<'_>) -> Result<Cut, StoreError> {
        let unsealed = self
            .open_records(tenant, signal)?
            .into_iter()
            .filter(|record| record.facts.max_time >= range.0 && record.facts.min_time <= range.1)
            .filter(|record| filter.service.is_none_or(|service| record.facts.services.contains(service)))
            .map(|record| UnsealedRecord { payload: record.payload, max_time: record.facts.max_time })
            .collect();
        let sealed = Cut::sealed(&self.store, tenant, signal.as_str(), range, filter)?;
        Ok(Cut { unsealed, ..sealed })
    }

    fn trace_records(&self, tenant: &str, trace_id: &[u8; 16]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut records = self.store.records_with_trace(tenant, trace_id)?;
        let open = self.open_records(tenant, Signal::Traces)?;
        records.extend(open.into_iter().filter(|record| record.facts.trace_ids.contains(trace_id)).map(|r| r.payload));
        Ok(records)
    }
}

/// Why `storage.backend` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BackendUnusable {
    /// `egress.sealed` keeps the endpoint inert.
    #[error("storage.backend {endpoint}: {reason}; {remediation}")]
    Sealed {
        /// The configured endpoint.
        endpoint: String,
        /// Why egress refuses it.
        reason: &'static str,
        /// What to change.
        remediation: String,
    },
    /// Not called inside the tokio runtime.
    #[error("object storage needs the async runtime")]
    Runtime,
    /// The client could not be built.
    #[error(transparent)]
    Client(#[from] stella_export::object_storage::ObjectStorageError),
}

impl BackendUnusable {
    /// A stable code for logs.
    pub fn code(&self) -> &'static str {
        match self {
            BackendUnusable::Sealed { .. } => "egress.sealed_blocked",
            BackendUnusable::Runtime => "store.backend_runtime",
            BackendUnusable::Client(error) => error.code(),
        }
    }
}

/// The object-storage client of `backend`, on the current runtime.
fn remote_chunks(backend: &S3Backend) -> Result<RemoteChunks, BackendUnusable> {
    if let Some(denied) = &backend.sealed {
        return Err(BackendUnusable::Sealed {
            endpoint: backend.endpoint.clone(),
            reason: denied.reason(),
            remediation: denied.remediation(),
        });
    }
    let options = backend.options();
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| BackendUnusable::Runtime)?;
    let objects = stella_export::object_storage::s3(&options)?;
    Ok(RemoteChunks::new(objects, &options.bucket, &options.prefix, runtime))
}

/// The store under `root` with `backend` attached and its uploader started, or `None` when the backend
/// cannot be used (sealed egress: warned and counted; credentials, runtime or client: logged). Then
/// sealed chunks stay on local disk only, as without a backend.
fn attach(root: &Path, backend: &S3Backend, registry: &Registry) -> Option<(Store, UploadHandle)> {
    let component = "storage.backend";
    let remote = match remote_chunks(backend) {
        Ok(remote) => remote,
        Err(BackendUnusable::Sealed { endpoint, reason, remediation }) => {
            tracing::warn!(
                event = "egress.sealed_blocked",
                component,
                endpoint = %endpoint,
                reason,
                remediation = %remediation,
                "egress policy: object storage disabled; sealed chunks stay on local disk"
            );
            let blocked = registry.counter(
                names::EGRESS_BLOCKED,
                "Endpoints disabled by the egress policy, by component.",
                &["component"],
            );
            blocked.with(&[component]).inc();
            return None;
        }
        Err(error) => {
            tracing::error!(code = error.code(), %error, "object storage not used; sealed chunks stay on local disk");
            return None;
        }
    };
    tracing::info!(
        event = "store.backend",
        location = %remote.location(),
        endpoint = %backend.endpoint,
        local_cache = ?backend.local_cache,
        "sealed chunks go to object storage"
    );
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return None };
    let store = Store::with_remote(root.to_path_buf(), remote);
    let (wake, stop) = (Arc::new(Notify::new()), CancellationToken::new());
    let uploader = Uploader {
        store: store.clone(),
        cache: backend.local_cache,
        wake: Arc::clone(&wake),
        stop: stop.clone(),
        metrics: UploadMetrics::new(registry),
    };
    runtime.spawn(uploader.run());
    Some((store, UploadHandle { wake, _stop: stop.drop_guard() }))
}

/// The uploader's meta-metrics.
struct UploadMetrics {
    chunks: CounterVec,
    bytes: CounterVec,
    failures: CounterVec,
    evicted: CounterVec,
}

impl UploadMetrics {
    fn new(registry: &Registry) -> Self {
        UploadMetrics {
            chunks: registry.counter(names::UPLOADED_CHUNKS, "Sealed chunks confirmed in object storage.", &[]),
            bytes: registry.counter(names::UPLOADED_BYTES, "Bytes of sealed chunks confirmed in object storage.", &[]),
            failures: registry.counter(
                names::UPLOAD_FAILURES,
                "Upload rounds to object storage that failed; their chunks stay on local disk and are retried.",
                &[],
            ),
            evicted: registry.counter(
                names::EVICTED_CHUNKS,
                "Local chunk files evicted once object storage had confirmed them.",
                &[],
            ),
        }
    }
}

/// Moves sealed chunks to object storage: a round whenever a sealing task wakes it, right after a round
/// that left chunks waiting, or every [`UPLOAD_RESCAN`] (rounds start at most every
/// [`UPLOAD_ROUND_INTERVAL`]); after a failure, the next round waits a backoff that doubles up to
/// [`MAX_UPLOAD_BACKOFF`], whatever wakes it. Stops when its registry goes.
struct Uploader {
    store: Store,
    cache: LocalCache,
    wake: Arc<Notify>,
    stop: CancellationToken,
    metrics: UploadMetrics,
}

impl Uploader {
    async fn run(self) {
        let mut backoff: Option<Duration> = None;
        loop {
            let started = tokio::time::Instant::now();
            let (store, cache) = (self.store.clone(), self.cache);
            let mut more = false;
            backoff = match tokio::task::spawn_blocking(move || store.upload_pending(cache)).await {
                Ok(round) => {
                    more = round.waiting > 0;
                    self.account(round, backoff)
                }
                Err(error) => {
                    tracing::error!(%error, "store: an upload round failed unexpectedly; retrying");
                    Some(next_backoff(backoff))
                }
            };
            let idle = if more { Duration::ZERO } else { UPLOAD_RESCAN };
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => break,
                _ = self.wake.notified(), if backoff.is_none() => {}
                _ = tokio::time::sleep(backoff.unwrap_or(idle)) => {}
            }
            // A burst of sealed chunks makes one round.
            tokio::time::sleep_until(started + UPLOAD_ROUND_INTERVAL).await;
        }
    }

    /// Counts and logs a round; the backoff before the next one (`None`: none, the round went well).
    fn account(&self, round: UploadRound, backoff: Option<Duration>) -> Option<Duration> {
        self.metrics.chunks.with(&[]).add(round.uploaded);
        self.metrics.bytes.with(&[]).add(round.uploaded_bytes);
        self.metrics.evicted.with(&[]).add(round.evicted);
        if round.uploaded > 0 || round.evicted > 0 {
            tracing::debug!(
                uploaded = round.uploaded,
                bytes = round.uploaded_bytes,
                evicted = round.evicted,
                "store: upload round"
            );
        }
        let Some(error) = round.error else {
            if backoff.is_some() {
                tracing::info!(
                    event = "store.upload_resumed",
                    uploaded = round.uploaded,
                    "store: uploads to object storage work again"
                );
            }
            return None;
        };
        self.metrics.failures.with(&[]).inc();
        let delay = next_backoff(backoff);
        tracing::warn!(
            code = error.code(),
            %error,
            waiting = round.waiting,
            retry_in = ?delay,
            "store: upload to object storage failed; the chunks stay on local disk and are retried"
        );
        Some(delay)
    }
}

/// The wait after one more failed round.
fn next_backoff(backoff: Option<Duration>) -> Duration {
    backoff.map_or(FIRST_UPLOAD_BACKOFF, |delay| (delay * 2).min(MAX_UPLOAD_BACKOFF))
}

#[cfg(test)]
mod tests {
    use stella_export::egress::EgressPolicy;
    use stella_store::chunks::LocalCache;

    use super::*;
    use crate::config::{Credential, S3Backend, Secret};

    fn backend(endpoint: &str, egress: &EgressPolicy) -> S3Backend {
        S3Backend {
            endpoint: endpoint.into(),
            bucket: "chunks".into(),
            prefix: String::new(),
            region: "us-east-1".into(),
            access_key_id: Credential::Inline(Secret("key".into())),
            secret_access_key: Credential::Inline(Secret("secret".into())),
            allow_http: true,
            local_cache: LocalCache::KeepAll,
            sealed: egress.check(endpoint).err(),
        }
    }

    #[tokio::test]
    async fn a_backend_sealed_egress_blocks_stays_inert_warned_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::default();
        let sealed = EgressPolicy::new(Vec::new(), true);
        let stores = StoreRegistry::new(dir.path(), Some(&backend("https://s3.example.com", &sealed)), &registry);
        assert!(stores.store().remote().is_none(), "chunks stay on local disk");
        assert!(stores.uploads.is_none(), "no uploader");
        let metrics = registry.encode();
        assert!(metrics.contains("telemetry_egress_blocked_total{component=\"storage.backend\"} 1"), "{metrics}");
    }

    #[test]
    fn upload_backoff_doubles_up_to_its_cap() {
        assert_eq!(next_backoff(None), FIRST_UPLOAD_BACKOFF);
        assert_eq!(next_backoff(Some(Duration::from_secs(8))), Duration::from_secs(16));
        assert_eq!(next_backoff(Some(MAX_UPLOAD_BACKOFF)), MAX_UPLOAD_BACKOFF);
    }
}
