//! Evidence on the server: its signing key and trust store, forensic bundles cut from the store
//! (`GET /telemetry/exports/forensic/{window}`, scope `export`, audited), and the bundle-generation
//! meta-metrics (`telemetry_bundle_generation_seconds`, failures by code).
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stella_collector::StoreRegistry;
use stella_collector::auth::Principal;
use stella_collector::config::{BundleCompression, EvidenceConfig};
use stella_evidence::forensic::{self, CaptureSource};
use stella_evidence::keys::KeyError;
use stella_evidence::{BundleHeader, BundleSummary, Compression, SigningKey, TrustStore, Window};
use stella_metrics::{CounterVec, HistogramVec, Registry, names};
use stella_store::chunks::directory_name;

use crate::{ApiError, ApiState, audited, tenant_of};

/// How long a bundle waits for the store to read what was acknowledged before it was asked for.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(10);

/// Lets the store read what `tenant` had acknowledged so far (at most [`CATCH_UP`]), so the bundle cut next
/// holds it; past that, the bundle is cut anyway and a warning says it may miss the newest records.
pub(crate) async fn catch_up(state: &ApiState, tenant: &str) {
    if !state.collector.stores().caught_up(tenant, CATCH_UP).await {
        tracing::warn!(
            tenant,
            "the store did not catch up with the ingest log in time; the bundle may miss the newest records"
        );
    }
}

/// Bucket bounds of `telemetry_bundle_generation_seconds`.
const GENERATION_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// What the server signs with and trusts, and the profile it records in bundles.
pub struct Evidence {
    /// The server's signing key (`evidence.signing_key`, or generated once under `<data-dir>/keys/`).
    pub key: SigningKey,
    /// Keys whose signatures the server accepts: `evidence.trusted_keys` and its own key.
    pub trust: TrustStore,
    /// The profile the server runs (`default`, `forensic`, `airgap`).
    pub profile: String,
    /// The data directory (spool files of bundles go to `<data-dir>/tmp`).
    pub data_dir: PathBuf,
    /// Where scheduled and incident bundles are kept (`evidence.schedule.archive_dir`, default
    /// `<data-dir>/archive`), one directory per tenant.
    pub archive_dir: PathBuf,
    /// How archived bundles are compressed.
    pub compression: Compression,
    generation: HistogramVec,
    failures: CounterVec,
}

impl Evidence {
    /// Loads (or, the first time, generates) the signing key and the trust store.
    pub fn load(
        config: &EvidenceConfig,
        data_dir: &Path,
        profile: &str,
        registry: &Registry,
    ) -> Result<Evidence, KeyError> {
        let key = match &config.signing_key {
            Some(path) => SigningKey::load(path)?,
            None => SigningKey::load_or_generate(&data_dir.join("keys"))?,
        };
        let mut trust = TrustStore::from_files(&config.trusted_keys)?;
        trust.insert(key.trusted_key());
        let schedule = config.schedule.as_ref();
        Ok(Evidence {
            key,
            trust,
            profile: profile.to_string(),
            data_dir: data_dir.to_path_buf(),
            archive_dir: schedule
                .and_then(|schedule| schedule.archive_dir.clone())
                .unwrap_or_else(|| data_dir.join("archive")),
            compression: compression_of(schedule.map(|schedule| schedule.compression).unwrap_or_default()),
            generation: registry.histogram(
                names::BUNDLE_GENERATION_SECONDS,
                "Time to generate a signed forensic bundle, by kind (on_demand, scheduled, incident).",
                &["kind"],
                GENERATION_BUCKETS,
            ),
            failures: registry.counter(
                names::BUNDLE_GENERATION_FAILURES,
                "Forensic bundles that could not be generated, by kind and error code.",
                &["kind", "code"],
            ),
        })
    }

    /// Writes the bundle of `tenant` and `window` into an unnamed temporary file (rewound), timing it as
    /// `kind`. Records the collector has not sealed yet are included.
    pub(crate) fn generate(
        &self,
        stores: &StoreRegistry,
        tenant: &str,
        window: Window,
        compression: Compression,
        kind: &str,
    ) -> Result<(std::fs::File, BundleSummary), ApiError> {
        let spool_dir = self.spool_dir()?;
        let mut file = tempfile::tempfile_in(&spool_dir).map_err(|error| io_error(&spool_dir, &error))?;
        let summary = self.timed(kind, tenant, || self.write(stores, tenant, window, compression, &mut file))?;
        file.seek(SeekFrom::Start(0)).map_err(|error| io_error(&spool_dir, &error))?;
        Ok((file, summary))
    }

    /// Writes the bundle of `tenant` and `window` into the archive directory as
    /// `<tenant>/<kind>-<start>-<end>.<ext>` (complete or not at all), timing it as `kind`.
    pub(crate) fn archive(
        &self,
        stores: &StoreRegistry,
        tenant: &str,
        window: Window,
        kind: &str,
    ) -> Result<Archived, ApiError> {
        let path = self.archived_path(tenant, window, kind);
        let dir = path.parent().map_or_else(|| self.archive_dir.clone(), Path::to_path_buf);
        std::fs::create_dir_all(&dir).map_err(|error| io_error(&dir, &error))?;
        let mut file =
            tempfile::Builder::new().prefix(".bundle").tempfile_in(&dir).map_err(|error| io_error(&dir, &error))?;
        let summary =
            self.timed(kind, tenant, || self.write(stores, tenant, window, self.compression, file.as_file_mut()))?;
        file.as_file().sync_all().map_err(|error| io_error(&path, &error))?;
        file.persist(&path).map_err(|error| io_error(&path, &error.error))?;
        tracing::info!(tenant, kind, path = %path.display(), sha256 = %summary.archive_sha256, records = summary.manifest.totals.records, "forensic bundle archived");
        Ok(Archived { path, sha256: summary.archive_sha256, records: summary.manifest.totals.records })
    }

    /// Where [`Evidence::archive`] puts the bundle of `tenant`, `window` and `kind`.
    pub fn archived_path(&self, tenant: &str, window: Window, kind: &str) -> PathBuf {
        let name = format!("{kind}-{}.{}", window_name(window), self.compression.extension());
        self.archive_dir.join(directory_name(tenant)).join(name)
    }

    fn timed(
        &self,
        kind: &str,
        tenant: &str,
        work: impl FnOnce() -> Result<BundleSummary, ApiError>,
    ) -> Result<BundleSummary, ApiError> {
        let started = Instant::now();
        let result = work();
        match &result {
            Ok(_) => self.generation.with(&[kind]).observe(started.elapsed().as_secs_f64()),
            Err(error) => {
                self.failures.with(&[kind, error.code]).inc();
                tracing::error!(tenant, kind, code = error.code, message = %error.message, "forensic bundle failed");
            }
        }
        result
    }

    fn spool_dir(&self) -> Result<PathBuf, ApiError> {
        let dir = self.data_dir.join("tmp");
        std::fs::create_dir_all(&dir).map_err(|error| io_error(&dir, &error))?;
        Ok(dir)
    }

    fn write(
        &self,
        stores: &StoreRegistry,
        tenant: &str,
        window: Window,
        compression: Compression,
        out: &mut std::fs::File,
    ) -> Result<BundleSummary, ApiError> {
        let spool_dir = self.spool_dir()?;
        let header = BundleHeader {
            tenant: tenant.to_string(),
            window,
            profile: self.profile.clone(),
            redaction_profiles: Vec::new(),
            generator: forensic::generator(),
        };
        let source = CaptureSource { view: stores, spool_dir: &spool_dir };
        forensic::capture(&source, header, &self.key, compression, out, &mut |_| {}).map_err(|error| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: error.code(),
            message: error.to_string(),
        })
    }
}

/// A bundle written into the archive directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// Its file.
    pub path: PathBuf,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Records in it.
    pub records: u64,
}

/// `<start>-<end>` of a window in file names (`20261129T100000Z-20261129T110000Z`).
fn window_name(window: Window) -> String {
    format!("{}-{}", window.start.strftime("%Y%m%dT%H%M%SZ"), window.end.strftime("%Y%m%dT%H%M%SZ"))
}

fn io_error(path: &Path, error: &std::io::Error) -> ApiError {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "bundle.io",
        message: format!("cannot write {}: {error}; check the data directory's space and permissions", path.display()),
    }
}

/// `?tenant=&compression=` of the export route.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    compression: BundleCompression,
}

/// The compression of bundles configured as `compression`.
pub fn compression_of(compression: BundleCompression) -> Compression {
    match compression {
        BundleCompression::Gzip => Compression::Gzip,
        BundleCompression::Zstd => Compression::Zstd,
    }
}

/// `GET /telemetry/config/profile/{name}`: the built-in profile's YAML as a DSSE envelope (payload type
/// `application/vnd.stellaops.telemetry.config+yaml`) signed by the server key, RFC 8785 JSON.
pub(crate) async fn config_profile(State(state): State<ApiState>, UrlPath(name): UrlPath<String>) -> Response {
    match name.parse::<stella_collector::config::Profile>() {
        Ok(profile) => {
            let envelope = stella_evidence::config_bundle::sign(profile.yaml().as_bytes(), &state.evidence.key);
            ([(header::CONTENT_TYPE, "application/json")], envelope).into_response()
        }
        Err(_) => {
            let known: Vec<&str> =
                stella_collector::config::Profile::ALL.iter().map(|profile| profile.name()).collect();
            let message = format!("no profile {name:?}; the profiles are {}", known.join(", "));
            let body = json!({"code": "config.unknown_profile", "message": message, "profiles": known});
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
    }
}

/// `GET /telemetry/exports/forensic/{window}`: streams the signed bundle (the same bytes `stella telemetry
/// capture` writes from the same store with the same key), with its digest and signer in headers.
pub(crate) async fn export_forensic(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    UrlPath(window): UrlPath<String>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            let message = format!("{}; accepted: ?tenant=&compression=gzip|zstd", rejection.body_text());
            return crate::error_response(StatusCode::BAD_REQUEST, "api.invalid_query", &message);
        }
    };
    let tenant = match tenant_of(principal.as_deref(), query.tenant.as_deref()) {
        Ok(tenant) => tenant,
        Err(error) => return error.into_response(),
    };
    let window = match forensic::parse_window(&window, jiff::Timestamp::now()) {
        Ok(window) => window,
        Err(error) => {
            return crate::error_response(StatusCode::BAD_REQUEST, error.code(), &error.to_string());
        }
    };
    let compression = compression_of(query.compression);
    // Records acknowledged before the request belong in the bundle: let the store read them first.
    if !state.collector.stores().caught_up(&tenant, CATCH_UP).await {
        tracing::warn!(
            tenant,
            "the store did not catch up with the ingest log in time; the bundle may miss the newest records"
        );
    }
    let (evidence, stores, work_tenant) =
        (Arc::clone(&state.evidence), Arc::clone(state.collector.stores()), tenant.clone());
    let generated =
        tokio::task::spawn_blocking(move || evidence.generate(&stores, &work_tenant, window, compression, "on_demand"))
            .await;
    let (file, summary) = match generated {
        Ok(Ok(generated)) => generated,
        Ok(Err(error)) => return error.into_response(),
        Err(_) => {
            let message = "the bundle generation stopped unexpectedly";
            return crate::error_response(StatusCode::INTERNAL_SERVER_ERROR, "bundle.failed", message);
        }
    };
    let parameters = json!({
        "window": {"start": window.start.to_string(), "end": window.end.to_string()},
        "compression": compression.as_str(),
        "sha256": summary.archive_sha256,
        "records": summary.manifest.totals.records,
    });
    if let Some(failure) = audited(&state, principal.as_deref(), &tenant, "export.forensic", parameters) {
        return failure;
    }
    let content_type = match compression {
        Compression::Gzip => "application/gzip",
        Compression::Zstd => "application/zstd",
    };
    let filename = format!("stella-{}-{}.{}", directory_name(&tenant), window_name(window), compression.extension());
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file)));
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_LENGTH, summary.archive_bytes.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
            (header::HeaderName::from_static("x-stella-bundle-sha256"), summary.archive_sha256.clone()),
            (header::HeaderName::from_static("x-stella-bundle-signer"), summary.signer.keyid.clone()),
        ],
        body,
    )
        .into_response()
}

/// How long after a scheduled window ends its bundle is cut (records in flight reach the log first), at
/// most a tenth of the interval.
const SCHEDULE_GRACE: i64 = 5;

/// Runs `evidence.schedule` (restart to change it): after each interval (aligned to the Unix epoch, so
/// hourly bundles cover whole hours), the bundle of that interval for every declared tenant goes into the
/// archive directory; then archived bundles older than `keep` (default: the store's retention) are pruned.
pub fn spawn_schedule(state: &ApiState) {
    let config = state.collector.config();
    let Some(schedule) = config.evidence.schedule.clone() else { return };
    let retention = config.exporters.values().find_map(|exporter| match exporter {
        stella_collector::config::ExporterConfig::Store(settings) => Some(settings.retention.default),
        _ => None,
    });
    let keep = schedule.keep.or(retention).unwrap_or(std::time::Duration::from_secs(30 * 86_400));
    let tenants: Vec<String> = config.tenants.iter().map(|tenant| tenant.id.clone()).collect();
    let api = state.clone();
    tokio::spawn(async move {
        let interval = i64::try_from(schedule.interval.as_secs()).unwrap_or(3600).max(10);
        let grace = SCHEDULE_GRACE.min(interval / 10);
        loop {
            let now = jiff::Timestamp::now().as_second();
            let end = now - now.rem_euclid(interval);
            let window = jiff::Timestamp::from_second(end - interval)
                .and_then(|start| Ok(Window { start, end: jiff::Timestamp::from_second(end)? }));
            if let Ok(window) = window {
                for tenant in &tenants {
                    if api.evidence.archived_path(tenant, window, "scheduled").exists() {
                        continue;
                    }
                    catch_up(&api, tenant).await;
                    let (evidence, stores, tenant) =
                        (Arc::clone(&api.evidence), Arc::clone(api.collector.stores()), tenant.clone());
                    // Failures are logged and counted by `archive`; the next interval tries its own window.
                    let _ =
                        tokio::task::spawn_blocking(move || evidence.archive(&stores, &tenant, window, "scheduled"))
                            .await;
                }
            }
            let (archive_dir, keep) = (api.evidence.archive_dir.clone(), keep);
            let _ = tokio::task::spawn_blocking(move || prune(&archive_dir, keep)).await;
            let wait = (end + interval + grace - jiff::Timestamp::now().as_second()).max(1);
            tokio::time::sleep(std::time::Duration::from_secs(wait.unsigned_abs())).await;
        }
    });
}

/// Deletes archived bundles (`<archive>/<tenant>/*.tar.*`) last written more than `keep` ago.
fn prune(archive_dir: &Path, keep: std::time::Duration) {
    let Some(cutoff) = std::time::SystemTime::now().checked_sub(keep) else { return };
    for tenant in std::fs::read_dir(archive_dir).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(tenant.path()).into_iter().flatten().flatten() {
            let path = file.path();
            let is_bundle = path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.contains(".tar."));
            let old = file.metadata().and_then(|metadata| metadata.modified()).is_ok_and(|modified| modified < cutoff);
            if is_bundle && old {
                match std::fs::remove_file(&path) {
                    Ok(()) => tracing::info!(path = %path.display(), "archived forensic bundle pruned (past keep)"),
                    Err(error) => tracing::error!(path = %path.display(), %error, "cannot prune an archived bundle"),
                }
            }
        }
    }
}

/// Signs each rotated file of a file exporter: `<file>.dsse.json`, a DSSE envelope (payload type
/// `application/vnd.stellaops.telemetry.rotation.manifest+json`) of the file-set manifest naming the file
/// (relative to its directory) with its SHA-256 and size. `stella telemetry verify <file>.dsse.json`
/// checks it.
pub struct RotationSigning {
    key: SigningKey,
}

impl RotationSigning {
    /// Signs with `key`.
    pub fn new(key: SigningKey) -> Self {
        RotationSigning { key }
    }
}

impl stella_export::file::RotationSigner for RotationSigning {
    fn sign_rotation(&self, rotated: &Path) -> Result<PathBuf, String> {
        let name = rotated.file_name().and_then(|name| name.to_str()).ok_or("the rotated file has no UTF-8 name")?;
        let file =
            std::fs::File::open(rotated).map_err(|error| format!("cannot read {}: {error}", rotated.display()))?;
        let mut files = stella_evidence::file_set::FileSetBuilder::default();
        files.add_reader(name, std::io::BufReader::new(file)).map_err(|error| error.to_string())?;
        let signed = files
            .sign(stella_evidence::payload_types::ROTATION_MANIFEST, &self.key)
            .map_err(|error| error.to_string())?;
        let manifest = stella_export::file::rotation_manifest_path(rotated);
        let temporary = manifest.with_extension("json.tmp");
        std::fs::write(&temporary, &signed.envelope_json)
            .and_then(|()| std::fs::rename(&temporary, &manifest))
            .map_err(|error| format!("cannot write {}: {error}", manifest.display()))?;
        Ok(manifest)
    }
}
