//! Evidence routes and jobs: the server's evidence service loaded from the config, forensic bundles on
//! demand (`GET /telemetry/exports/forensic/{window}`, scope `export`, audited), signed profiles
//! (`GET /telemetry/config/profile/{name}`), and `evidence.schedule` as a job of the collector.
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stella_collector::auth::Principal;
use stella_collector::config::{BundleCompression, EvidenceConfig};
use stella_collector::jobs::stopped_during;
use stella_evidence::forensic;
use stella_evidence::keys::KeyError;
use stella_evidence::service::{BundleFailure, EvidencePlaces, EvidenceService, window_name};
use stella_evidence::{Compression, SigningKey, TrustStore, Window};
use stella_metrics::Registry;
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

/// Loads (or, the first time, generates) the signing key and the trust store of `config`: the server's
/// evidence service over `data_dir`, recording `profile` in its bundles.
pub fn load(
    config: &EvidenceConfig,
    data_dir: &Path,
    profile: &str,
    registry: &Registry,
) -> Result<EvidenceService, KeyError> {
    let key = match &config.signing_key {
        Some(path) => SigningKey::load(path)?,
        None => SigningKey::load_or_generate(&data_dir.join("keys"))?,
    };
    let trust = TrustStore::from_files(&config.trusted_keys)?;
    let schedule = config.schedule.as_ref();
    let places = EvidencePlaces {
        profile: profile.to_string(),
        data_dir: data_dir.to_path_buf(),
        archive_dir: schedule
            .and_then(|schedule| schedule.archive_dir.clone())
            .unwrap_or_else(|| data_dir.join("archive")),
        compression: compression_of(schedule.map(|schedule| schedule.compression).unwrap_or_default()),
    };
    Ok(EvidenceService::new(key, trust, places, registry))
}

impl From<BundleFailure> for ApiError {
    fn from(failure: BundleFailure) -> Self {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: failure.code(), message: failure.to_string() }
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
    catch_up(&state, &tenant).await;
    let (evidence, stores, work_tenant) =
        (Arc::clone(&state.evidence), Arc::clone(state.collector.stores()), tenant.clone());
    let generated = tokio::task::spawn_blocking(move || {
        evidence.generate(stores.as_ref(), &work_tenant, window, compression, "on_demand")
    })
    .await;
    let (file, summary) = match generated {
        Ok(Ok(generated)) => generated,
        Ok(Err(error)) => return ApiError::from(error).into_response(),
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

/// How often the schedule job looks at the config again when no bundle is due (it follows reloads).
const SCHEDULE_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `evidence.schedule` as a job of the collector, following reloads: after each interval (aligned to
/// the Unix epoch, so hourly bundles cover whole hours), the bundle of that interval for every declared
/// tenant goes into the archive directory; then archived bundles older than `keep` (default: the store's
/// retention) are pruned.
pub fn spawn_schedule(state: &ApiState) {
    let api = state.clone();
    state.collector.spawn_job("evidence schedule", |stop| async move {
        let mut last_end = None;
        loop {
            let config = api.collector.config();
            let wait = match config.evidence.schedule.clone() {
                None => SCHEDULE_RECHECK,
                Some(schedule) => {
                    let interval = i64::try_from(schedule.interval.as_secs()).unwrap_or(3600).max(10);
                    let now = jiff::Timestamp::now().as_second();
                    let end = now - now.rem_euclid(interval);
                    if last_end != Some((end, interval)) {
                        let tenants: Vec<String> = config.tenants.iter().map(|tenant| tenant.id.clone()).collect();
                        archive_interval(&api, &tenants, end, interval).await;
                        let retention = config.exporters.values().find_map(|exporter| match exporter {
                            stella_collector::config::ExporterConfig::Store(settings) => {
                                Some(settings.retention.default)
                            }
                            _ => None,
                        });
                        let keep = schedule.keep.or(retention).unwrap_or(std::time::Duration::from_secs(30 * 86_400));
                        let evidence = Arc::clone(&api.evidence);
                        let _ = tokio::task::spawn_blocking(move || evidence.prune(keep)).await;
                        last_end = Some((end, interval));
                    }
                    let grace = SCHEDULE_GRACE.min(interval / 10);
                    let due = (end + interval + grace - jiff::Timestamp::now().as_second()).max(1);
                    std::time::Duration::from_secs(due.unsigned_abs()).min(SCHEDULE_RECHECK)
                }
            };
            if stopped_during(&stop, wait).await {
                return;
            }
        }
    });
}

/// Archives the bundle of the interval ending at `end` for each of `tenants` that has none yet. Failures
/// are logged and counted by the service; the next interval tries its own window.
async fn archive_interval(api: &ApiState, tenants: &[String], end: i64, interval: i64) {
    let window = jiff::Timestamp::from_second(end - interval)
        .and_then(|start| Ok(Window { start, end: jiff::Timestamp::from_second(end)? }));
    let Ok(window) = window else { return };
    for tenant in tenants {
        if api.evidence.archived_path(tenant, window, "scheduled").exists() {
            continue;
        }
        catch_up(api, tenant).await;
        let (evidence, stores, tenant) =
            (Arc::clone(&api.evidence), Arc::clone(api.collector.stores()), tenant.clone());
        let _ =
            tokio::task::spawn_blocking(move || evidence.archive(stores.as_ref(), &tenant, window, "scheduled")).await;
    }
}
