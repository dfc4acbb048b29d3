//! The server's evidence: its signing key and trust store, forensic bundles cut from the store on demand
//! (into a spool file) or into the archive directory (scheduled and incident bundles, complete or not at
//! all), the pruning of old archived bundles, and the bundle-generation meta-metrics
//! (`telemetry_bundle_generation_seconds`, failures by code).
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use stella_metrics::{CounterVec, HistogramVec, Registry, names};
use stella_store::chunks::{StoreView, directory_name};

use crate::forensic::{self, CaptureError, CaptureSource};
use crate::{BundleHeader, BundleSummary, Compression, SigningKey, TrustStore, Window};

/// Bucket bounds of `telemetry_bundle_generation_seconds`.
const GENERATION_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Why a bundle was not generated.
#[derive(Debug, thiserror::Error)]
pub enum BundleFailure {
    /// A file under the data or archive directory could not be written.
    #[error("cannot write {}: {source}; check the data directory's space and permissions", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be read, or the bundle not written.
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

impl BundleFailure {
    /// The stable code (`bundle.io`, or the capture's).
    pub fn code(&self) -> &'static str {
        match self {
            BundleFailure::Io { .. } => "bundle.io",
            BundleFailure::Capture(error) => error.code(),
        }
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

/// What the server signs with and trusts, where it archives bundles, and the profile it records in them.
pub struct EvidenceService {
    /// The server's signing key (`evidence.signing_key`, or generated once under `<data-dir>/keys/`).
    pub key: SigningKey,
    /// Keys whose signatures the server accepts: `evidence.trusted_keys` and its own key.
    pub trust: TrustStore,
    profile: String,
    data_dir: PathBuf,
    archive_dir: PathBuf,
    compression: Compression,
    generation: HistogramVec,
    failures: CounterVec,
}

/// Where [`EvidenceService`] keeps its files and how it writes archived bundles.
pub struct EvidencePlaces {
    /// The profile the server runs (`default`, `forensic`, `airgap`), recorded in every bundle.
    pub profile: String,
    /// The data directory (spool files of bundles go to `<data-dir>/tmp`).
    pub data_dir: PathBuf,
    /// Where scheduled and incident bundles are kept, one directory per tenant.
    pub archive_dir: PathBuf,
    /// How archived bundles are compressed.
    pub compression: Compression,
}

impl EvidenceService {
    /// The service signing with `key` and trusting `trust` (its own key is added), its metrics in
    /// `registry`.
    pub fn new(key: SigningKey, mut trust: TrustStore, places: EvidencePlaces, registry: &Registry) -> Self {
        trust.insert(key.trusted_key());
        EvidenceService {
            key,
            trust,
            profile: places.profile,
            data_dir: places.data_dir,
            archive_dir: places.archive_dir,
            compression: places.compression,
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
        }
    }

    /// Writes the bundle of `tenant` and `window` from `view` into an unnamed temporary file (rewound),
    /// timing it as `kind`. Records the collector has not sealed yet are included.
    pub fn generate(
        &self,
        view: &dyn StoreView,
        tenant: &str,
        window: Window,
        compression: Compression,
        kind: &str,
    ) -> Result<(std::fs::File, BundleSummary), BundleFailure> {
        let spool_dir = self.spool_dir()?;
        let mut file = tempfile::tempfile_in(&spool_dir).map_err(io_failure(&spool_dir))?;
        let summary = self.timed(kind, tenant, || self.write(view, tenant, window, compression, &mut file))?;
        file.seek(SeekFrom::Start(0)).map_err(io_failure(&spool_dir))?;
        Ok((file, summary))
    }

    /// Writes the bundle of `tenant` and `window` into the archive directory as
    /// `<tenant>/<kind>-<start>-<end>.<ext>` (complete or not at all), timing it as `kind`.
    pub fn archive(
        &self,
        view: &dyn StoreView,
        tenant: &str,
        window: Window,
        kind: &str,
    ) -> Result<Archived, BundleFailure> {
        let path = self.archived_path(tenant, window, kind);
        let dir = path.parent().map_or_else(|| self.archive_dir.clone(), Path::to_path_buf);
        std::fs::create_dir_all(&dir).map_err(io_failure(&dir))?;
        let mut file = tempfile::Builder::new().prefix(".bundle").tempfile_in(&dir).map_err(io_failure(&dir))?;
        let summary =
            self.timed(kind, tenant, || self.write(view, tenant, window, self.compression, file.as_file_mut()))?;
        file.as_file().sync_all().map_err(io_failure(&path))?;
        file.persist(&path).map_err(|error| BundleFailure::Io { path: path.clone(), source: error.error })?;
        tracing::info!(tenant, kind, path = %path.display(), sha256 = %summary.archive_sha256, records = summary.manifest.totals.records, "forensic bundle archived");
        Ok(Archived { path, sha256: summary.archive_sha256, records: summary.manifest.totals.records })
    }

    /// Where [`EvidenceService::archive`] puts the bundle of `tenant`, `window` and `kind`.
    pub fn archived_path(&self, tenant: &str, window: Window, kind: &str) -> PathBuf {
        let name = format!("{kind}-{}.{}", window_name(window), self.compression.extension());
        self.archive_dir.join(directory_name(tenant)).join(name)
    }

    /// Deletes archived bundles (`<archive>/<tenant>/*.tar.*`) last written more than `keep` ago.
    pub fn prune(&self, keep: std::time::Duration) {
        let Some(cutoff) = SystemTime::now().checked_sub(keep) else { return };
        for tenant in std::fs::read_dir(&self.archive_dir).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(tenant.path()).into_iter().flatten().flatten() {
                let path = file.path();
                let is_bundle =
                    path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.contains(".tar."));
                let old =
                    file.metadata().and_then(|metadata| metadata.modified()).is_ok_and(|modified| modified < cutoff);
                if is_bundle && old {
                    match std::fs::remove_file(&path) {
                        Ok(()) => tracing::info!(path = %path.display(), "archived forensic bundle pruned (past keep)"),
                        Err(error) => {
                            tracing::error!(path = %path.display(), %error, "cannot prune an archived bundle")
                        }
                    }
                }
            }
        }
    }

    fn timed(
        &self,
        kind: &str,
        tenant: &str,
        work: impl FnOnce() -> Result<BundleSummary, BundleFailure>,
    ) -> Result<BundleSummary, BundleFailure> {
        let started = Instant::now();
        let result = work();
        match &result {
            Ok(_) => self.generation.with(&[kind]).observe(started.elapsed().as_secs_f64()),
            Err(error) => {
                self.failures.with(&[kind, error.code()]).inc();
                tracing::error!(tenant, kind, code = error.code(), %error, "forensic bundle failed");
            }
        }
        result
    }

    fn spool_dir(&self) -> Result<PathBuf, BundleFailure> {
        let dir = self.data_dir.join("tmp");
        std::fs::create_dir_all(&dir).map_err(io_failure(&dir))?;
        Ok(dir)
    }

    fn write(
        &self,
        view: &dyn StoreView,
        tenant: &str,
        window: Window,
        compression: Compression,
        out: &mut std::fs::File,
    ) -> Result<BundleSummary, BundleFailure> {
        let spool_dir = self.spool_dir()?;
        let header = BundleHeader {
            tenant: tenant.to_string(),
            window,
            profile: self.profile.clone(),
            redaction_profiles: Vec::new(),
            generator: forensic::generator(),
        };
        let source = CaptureSource { view, spool_dir: &spool_dir };
        Ok(forensic::capture(&source, header, &self.key, compression, out, &mut |_| {})?)
    }
}

/// `<start>-<end>` of a window in file names (`20261129T100000Z-20261129T110000Z`).
pub fn window_name(window: Window) -> String {
    format!("{}-{}", window.start.strftime("%Y%m%dT%H%M%SZ"), window.end.strftime("%Y%m%dT%H%M%SZ"))
}

fn io_failure(path: &Path) -> impl Fn(std::io::Error) -> BundleFailure + '_ {
    move |source| BundleFailure::Io { path: path.to_path_buf(), source }
}
