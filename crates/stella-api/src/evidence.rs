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
use stella_collector::auth::Principal;
use stella_collector::config::{BundleCompression, EvidenceConfig};
use stella_evidence::forensic::{self, CaptureSource};
use stella_evidence::keys::KeyError;
use stella_evidence::{BundleHeader, BundleSummary, Compression, SigningKey, TrustStore, Window};
use stella_metrics::{CounterVec, HistogramVec, Registry, names};

use crate::{ApiError, ApiState, audited, tenant_of};

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
        Ok(Evidence {
            key,
            trust,
            profile: profile.to_string(),
            data_dir: data_dir.to_path_buf(),
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
        stores: &stella_collector::StoreRegistry,
        tenant: &str,
        window: Window,
        compression: Compression,
        kind: &str,
    ) -> Result<(std::fs::File, BundleSummary), ApiError> {
        let started = Instant::now();
        let result = self.write(stores, tenant, window, compression);
        match &result {
            Ok(_) => self.generation.with(&[kind]).observe(started.elapsed().as_secs_f64()),
            Err(error) => {
                self.failures.with(&[kind, error.code]).inc();
                tracing::error!(tenant, kind, code = error.code, message = %error.message, "forensic bundle failed");
            }
        }
        result
    }

    fn write(
        &self,
        stores: &stella_collector::StoreRegistry,
        tenant: &str,
        window: Window,
        compression: Compression,
    ) -> Result<(std::fs::File, BundleSummary), ApiError> {
        let failed =
            |code: &'static str, message: String| ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code, message };
        let spool_dir = self.data_dir.join("tmp");
        std::fs::create_dir_all(&spool_dir)
            .map_err(|error| failed("bundle.io", format!("cannot create {}: {error}", spool_dir.display())))?;
        let mut file = tempfile::tempfile_in(&spool_dir).map_err(|error| {
            failed("bundle.io", format!("cannot create a file in {}: {error}", spool_dir.display()))
        })?;
        let header = BundleHeader {
            tenant: tenant.to_string(),
            window,
            profile: self.profile.clone(),
            redaction_profiles: Vec::new(),
            generator: forensic::generator(),
        };
        let unsealed = |signal| stores.unsealed_records(tenant, signal);
        let source = CaptureSource { store: stores.store(), unsealed: &unsealed, spool_dir: &spool_dir };
        let summary = forensic::capture(&source, header, &self.key, compression, &mut file, &mut |_| {})
            .map_err(|error| failed(error.code(), error.to_string()))?;
        file.seek(SeekFrom::Start(0)).map_err(|error| failed("bundle.io", error.to_string()))?;
        Ok((file, summary))
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
    let filename = format!(
        "stella-{}-{}-{}.{}",
        stella_store::chunks::directory_name(&tenant),
        window.start.strftime("%Y%m%dT%H%M%SZ"),
        window.end.strftime("%Y%m%dT%H%M%SZ"),
        compression.extension()
    );
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
