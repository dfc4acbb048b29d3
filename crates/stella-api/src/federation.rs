//! `/telemetry/federation/*`: observations in; consents granted, listed and revoked (signed with the
//! server key); bundles built for a window under a consent (k-anonymity, optional Laplace noise within
//! the consent's epsilon budget); and, as a hub, bundles and revocations taken in (verified, idempotent
//! by bundle id) and the federated aggregate with per-site provenance.
use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stella_collector::auth::Principal;
use stella_evidence::TrustStore;
use stella_evidence::dsse::Envelope;
use stella_federation::privacy::Budget;
use stella_federation::{
    BundleFile, BundleInput, Consent, FederationError, FederationSigner, Observation, Revocation, build_bundle,
    consent_digest, parse_observation, revoked_digest, sign_consent, sign_revocation, verify_bundle, verify_consent,
};
use stella_store::tables::{RecordRepository, RedbRecords};

use crate::{ApiError, ApiState, actor, audited, bad_request, blocking, internal, tenant_of};

/// Observations, by a digest of (CVE, artifact, time): re-sent ones count once.
const OBSERVATIONS: &str = "federation.observations";
/// Consent envelopes this site granted, by consent digest.
const CONSENTS: &str = "federation.consents";
/// Revocation envelopes (this site's, or taken in as a hub), by revoked consent digest.
const REVOCATIONS: &str = "federation.revocations";
/// Epsilon budgets, by consent digest.
const BUDGETS: &str = "federation.budgets";
/// Bundle files taken in as a hub, by bundle id.
const BUNDLES: &str = "federation.bundles";
/// Most observations in one request.
const MAX_OBSERVATIONS: usize = 10_000;

fn storage(error: impl std::fmt::Display) -> ApiError {
    internal("federation.storage", error)
}

/// A federation failure as an answer: verification failures are 422, a spent budget 409.
fn refused(error: FederationError) -> ApiError {
    let status = match error {
        FederationError::BudgetExhausted { .. } => StatusCode::CONFLICT,
        FederationError::SignerUnavailable | FederationError::SignFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        FederationError::Malformed(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError { status, code: error.code(), message: error.to_string() }
}

fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The keys whose statements this server accepts: `federation.trusted_keys` and its own key.
fn trust(state: &ApiState) -> Result<TrustStore, ApiError> {
    let config = state.collector.config().federation;
    let mut trust = TrustStore::from_files(&config.trusted_keys).map_err(|error| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: error.code(),
        message: format!("federation.trusted_keys: {error}"),
    })?;
    trust.insert(state.evidence.key.trusted_key());
    Ok(trust)
}

fn table(state: &ApiState, kind: &'static str) -> RedbRecords {
    state.collector.records(kind)
}

/// `POST /telemetry/federation/observations`: one observation or an array; per-item results.
pub(crate) async fn record_observations(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    body: Bytes,
) -> Response {
    respond(observations(&state, principal.as_deref(), &body).await)
}

async fn observations(state: &ApiState, principal: Option<&Principal>, body: &[u8]) -> Result<Response, ApiError> {
    let tenant = tenant_of(principal, None)?;
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        bad_request(
            "federation.invalid_json",
            format!("the body is not JSON ({error}); send an observation or an array of them"),
        )
    })?;
    let items = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    if items.len() > MAX_OBSERVATIONS {
        return Err(bad_request(
            "federation.too_many",
            format!("{} observations; send at most {MAX_OBSERVATIONS} per request", items.len()),
        ));
    }
    let observations = table(state, OBSERVATIONS);
    blocking("federation.failed", move || {
        let (status, answer) = store_observations(&observations, &tenant, &items)?;
        Ok((status, axum::Json(answer)).into_response())
    })
    .await
}

/// Records `tenant`'s observation events in one transaction: the batch answer (per-item results).
pub(crate) fn store_observations(
    observations: &RedbRecords,
    tenant: &str,
    items: &[Value],
) -> Result<(StatusCode, Value), ApiError> {
    let (mut rows, mut results) = (Vec::new(), Vec::new());
    for (index, item) in items.iter().enumerate() {
        match parse_observation(item) {
            Ok(observation) => {
                let key =
                    format!("{}\0{}\0{}", observation.cve_id, observation.artifact_digest, observation.observed_at);
                let id = hex::encode(Sha256::digest(key.as_bytes()));
                let bytes = serde_json::to_vec(&observation).unwrap_or_default();
                rows.push((index, id, observation.observed_at, bytes));
            }
            Err(error) => results
                .push(json!({"index": index, "status": "refused", "code": error.code(), "message": error.to_string()})),
        }
    }
    let batch: Vec<(&str, Timestamp, &[u8])> =
        rows.iter().map(|(_, id, at, bytes)| (id.as_str(), *at, bytes.as_slice())).collect();
    let replaced = observations.put_many(tenant, &batch).map_err(storage)?;
    for ((index, _, _, _), replaced) in rows.iter().zip(&replaced) {
        results.push(json!({"index": index, "status": if *replaced { "replaced" } else { "recorded" }}));
    }
    results.sort_by_key(|result| result["index"].as_u64());
    let refused = results.iter().filter(|result| result["status"] == "refused").count();
    let status = if rows.is_empty() && refused > 0 { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let answer = json!({"recorded": replaced.iter().filter(|r| !**r).count(), "replaced": replaced.iter().filter(|r| **r).count(), "refused": refused, "results": results});
    Ok((status, answer))
}

/// The observations table of `collector`.
pub(crate) fn observations_table(collector: &stella_collector::Collector) -> RedbRecords {
    collector.records(OBSERVATIONS)
}

/// The body of `POST /telemetry/federation/consents`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Grant {
    federation_id: String,
    scope: String,
    purpose: String,
    #[serde(default)]
    not_before: Option<Timestamp>,
    expires_at: Timestamp,
    #[serde(default)]
    site_alias: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// `POST /telemetry/federation/consents`: grants a consent, signed with the server key.
pub(crate) async fn grant(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    body: Result<axum::Json<Grant>, axum::extract::rejection::JsonRejection>,
) -> Response {
    respond(grant_consent(&state, principal.as_deref(), body))
}

fn grant_consent(
    state: &ApiState,
    principal: Option<&Principal>,
    body: Result<axum::Json<Grant>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let axum::Json(grant) = body.map_err(|rejection| {
        bad_request(
            "federation.invalid_consent",
            format!(
                "{}; expected {{federation_id, scope, purpose, expires_at, not_before?, site_alias?}}",
                rejection.body_text()
            ),
        )
    })?;
    let tenant = tenant_of(principal, grant.tenant.as_deref())?;
    let config = state.collector.config().federation;
    let site_alias = grant.site_alias.or_else(|| config.aliases.get(&tenant).cloned()).ok_or_else(|| {
        bad_request(
            "federation.no_alias",
            format!("tenant {tenant:?} has no federation alias; set federation.aliases.{tenant} or pass site_alias"),
        )
    })?;
    if site_alias == tenant {
        return Err(bad_request(
            "federation.no_alias",
            "the site alias must not be the tenant id: the hub never sees tenant ids",
        ));
    }
    let now = Timestamp::now();
    let consent = Consent {
        federation_id: grant.federation_id,
        site_alias,
        scope: grant.scope,
        purpose: grant.purpose,
        not_before: grant.not_before.unwrap_or(now),
        expires_at: grant.expires_at,
        granted_by: actor(principal),
    };
    let envelope = sign_consent(&consent, &signer(state)).map_err(refused)?;
    let digest = consent_digest(&envelope);
    table(state, CONSENTS).put(&tenant, &digest, consent.not_before, &envelope.to_json()).map_err(storage)?;
    if let Some(response) = audited(
        state,
        principal,
        &tenant,
        "federation.consent.grant",
        json!({"consentDigest": digest, "federationId": consent.federation_id}),
    ) {
        return Ok(response);
    }
    let envelope_json: Value = serde_json::from_slice(&envelope.to_json()).unwrap_or(Value::Null);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"consentDigest": digest, "consent": consent, "envelope": envelope_json})),
    )
        .into_response())
}

/// Who signs this server's federation statements: `federation.signing_key`, else the evidence key.
/// A configured key that cannot be loaded leaves no signer: the unsigned fallback when
/// `allow_unsigned_fallback` (warned, and counted per statement), else `signer_unavailable` errors.
fn signer(state: &ApiState) -> FederationSigner {
    let config = state.collector.config().federation;
    let Some(path) = &config.signing_key else { return FederationSigner::key(state.evidence.key.clone()) };
    match stella_evidence::SigningKey::load(path) {
        Ok(key) => FederationSigner::key(key),
        Err(error) if config.allow_unsigned_fallback => {
            tracing::warn!(event = "federation.unsigned_fallback", path = %path.display(), %error, "federation signing key unavailable; the statement goes out unsigned (offline-unsigned-fallback)");
            state
                .registry
                .counter(
                    stella_metrics::names::FEDERATION_UNSIGNED,
                    "Federation statements sent with the unsigned fallback.",
                    &[],
                )
                .with(&[])
                .inc();
            FederationSigner::UnsignedFallback
        }
        Err(error) => {
            tracing::error!(code = "federation.dsse.signer_unavailable", path = %path.display(), %error, "federation signing key unavailable");
            FederationSigner::Unavailable
        }
    }
}

/// `tenant`'s consents, each with its envelope and whether it was revoked.
fn consents(
    state: &ApiState,
    tenant: &str,
    trust: &TrustStore,
) -> Result<Vec<(String, Envelope, Consent, bool)>, ApiError> {
    let revoked = revoked(state, tenant, trust)?;
    let mut out = Vec::new();
    for record in table(state, CONSENTS).list(tenant).map_err(storage)? {
        let envelope =
            Envelope::from_json(&record.value).map_err(|error| storage(format!("consent {}: {error}", record.id)))?;
        let allow_unsigned = state.collector.config().federation.allow_unsigned_fallback;
        let consent = verify_consent(&envelope, trust, allow_unsigned).map_err(refused)?;
        out.push((record.id.clone(), envelope, consent, revoked.contains(&record.id)));
    }
    Ok(out)
}

/// The consent digests `tenant` knows to be revoked.
fn revoked(state: &ApiState, tenant: &str, trust: &TrustStore) -> Result<BTreeSet<String>, ApiError> {
    let config = state.collector.config().federation;
    let mut digests = BTreeSet::new();
    for record in table(state, REVOCATIONS).list(tenant).map_err(storage)? {
        let envelope = Envelope::from_json(&record.value)
            .map_err(|error| storage(format!("revocation {}: {error}", record.id)))?;
        digests.insert(revoked_digest(&envelope, trust, config.allow_unsigned_fallback).map_err(refused)?);
    }
    Ok(digests)
}

/// `?tenant=` for operators.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantQuery {
    #[serde(default)]
    tenant: Option<String>,
}

/// `GET /telemetry/federation/consents`.
pub(crate) async fn list_consents(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Query(query): Query<TenantQuery>,
) -> Response {
    respond((|| {
        let tenant = tenant_of(principal.as_deref(), query.tenant.as_deref())?;
        let trust = trust(&state)?;
        let now = Timestamp::now();
        let listed: Vec<Value> = consents(&state, &tenant, &trust)?
            .into_iter()
            .map(|(digest, _, consent, revoked)| {
                let status = if revoked {
                    "revoked"
                } else if now > consent.expires_at {
                    "expired"
                } else if now < consent.not_before {
                    "pending"
                } else {
                    "active"
                };
                json!({"consentDigest": digest, "status": status, "consent": consent})
            })
            .collect();
        Ok(axum::Json(json!({"consents": listed})).into_response())
    })())
}

/// The body of a revoke.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Revoke {
    reason: String,
    #[serde(default)]
    tenant: Option<String>,
}

/// `POST /telemetry/federation/consents/{digest}/revoke`: a signed revocation, kept and answered (push
/// it to the hubs).
pub(crate) async fn revoke(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Path(digest): Path<String>,
    body: Result<axum::Json<Revoke>, axum::extract::rejection::JsonRejection>,
) -> Response {
    respond((|| {
        let axum::Json(body) = body.map_err(|rejection| {
            bad_request("federation.invalid_revocation", format!("{}; expected {{reason}}", rejection.body_text()))
        })?;
        let tenant = tenant_of(principal.as_deref(), body.tenant.as_deref())?;
        let known = table(&state, CONSENTS).get(&tenant, &digest).map_err(storage)?;
        if known.is_none() {
            return Err(ApiError {
                status: StatusCode::NOT_FOUND,
                code: "federation.unknown_consent",
                message: format!(
                    "no consent {digest} of tenant {tenant:?}; list them with GET /telemetry/federation/consents"
                ),
            });
        }
        let revocation = Revocation {
            consent_digest: digest.clone(),
            revoked_at: Timestamp::now(),
            revoked_by: actor(principal.as_deref()),
            reason: body.reason,
        };
        let envelope = sign_revocation(&revocation, &signer(&state)).map_err(refused)?;
        table(&state, REVOCATIONS)
            .put(&tenant, &digest, revocation.revoked_at, &envelope.to_json())
            .map_err(storage)?;
        if let Some(response) = audited(
            &state,
            principal.as_deref(),
            &tenant,
            "federation.consent.revoke",
            json!({"consentDigest": digest}),
        ) {
            return Ok(response);
        }
        Ok(([(header::CONTENT_TYPE, "application/json")], envelope.to_json()).into_response())
    })())
}

/// `?window=&consent=&tenant=` of a bundle build.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BundleQuery {
    window: String,
    #[serde(default)]
    consent: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// `GET /telemetry/federation/bundle?window=7d|START..END&consent=`: the signed bundle file of the
/// tenant's observations in the window, under the consent (the only active one when not named).
pub(crate) async fn bundle(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    query: Result<Query<BundleQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    respond(build(&state, principal.as_deref(), query).await)
}

async fn build(
    state: &ApiState,
    principal: Option<&Principal>,
    query: Result<Query<BundleQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        bad_request("federation.invalid_query", format!("{}; valid: window, consent, tenant", rejection.body_text()))
    })?;
    let tenant = tenant_of(principal, query.tenant.as_deref())?;
    let window = stella_evidence::forensic::parse_window(&query.window, Timestamp::now())
        .map_err(|error| bad_request("federation.invalid_window", error.to_string()))?;
    let state = state.clone();
    blocking("federation.failed", move || {
        let config = state.collector.config().federation;
        let trust = trust(&state)?;
        let usable: Vec<(String, Envelope, Consent, bool)> = consents(&state, &tenant, &trust)?
            .into_iter()
            .filter(|(digest, _, _, revoked)| !revoked && query.consent.as_ref().is_none_or(|wanted| wanted == digest))
            .collect();
        let (digest, envelope, terms) = match usable.as_slice() {
            [(digest, envelope, terms, _)] => (digest.clone(), envelope.clone(), terms.clone()),
            [] => return Err(ApiError {
                status: StatusCode::NOT_FOUND,
                code: "federation.no_consent",
                message:
                    "no unrevoked consent (of that digest); grant one with stella telemetry federation consent grant"
                        .into(),
            }),
            _ => {
                return Err(bad_request(
                    "federation.ambiguous_consent",
                    "several consents are unrevoked; name one with consent=<digest>",
                ));
            }
        };
        let observations: Vec<Observation> = table(&state, OBSERVATIONS)
            .list(&tenant)
            .map_err(storage)?
            .into_iter()
            .filter_map(|record| serde_json::from_slice(&record.value).ok())
            .collect();
        let noise_key = config
            .noise_key_env
            .as_deref()
            .and_then(std::env::var_os)
            .map(|key| key.into_encoded_bytes())
            .unwrap_or_default();
        if config.epsilon.is_some() && noise_key.is_empty() {
            return Err(ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "federation.noise_key",
                message: format!(
                    "federation.epsilon needs the noise key in ${}",
                    config.noise_key_env.unwrap_or_default()
                ),
            });
        }
        let input = BundleInput {
            consent: &envelope,
            terms: &terms,
            observations: &observations,
            window: (window.start, window.end),
            k: config.k_anonymity,
            epsilon: config.epsilon,
            noise_key: &noise_key,
        };
        let (file, _) = build_bundle(&input, &signer(&state)).map_err(refused)?;
        if let Some(epsilon) = config.epsilon {
            let budgets = table(&state, BUDGETS);
            let mut budget: Budget = budgets
                .get(&tenant, &digest)
                .map_err(storage)?
                .and_then(|record| serde_json::from_slice::<BTreeMap<String, f64>>(&record.value).ok())
                .map(|spent| Budget { spent })
                .unwrap_or_default();
            budget.charge(&digest, &file.bundle_id, epsilon, config.epsilon_budget).map_err(refused)?;
            let bytes = serde_json::to_vec(&budget.spent).unwrap_or_default();
            budgets.put(&tenant, &digest, terms.not_before, &bytes).map_err(storage)?;
        }
        Ok(([(header::CONTENT_TYPE, "application/json")], file.to_json()).into_response())
    })
    .await
}

/// `POST /telemetry/federation/bundles` (hub): verifies a bundle file and keeps it (idempotent by
/// bundle id).
pub(crate) async fn import_bundle(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    body: Bytes,
) -> Response {
    respond((|| {
        let tenant = tenant_of(principal.as_deref(), None)?;
        let trust = trust(&state)?;
        let revoked = revoked(&state, &tenant, &trust)?;
        let config = state.collector.config().federation;
        let verified = verify_bundle(&body, &trust, &revoked, config.allow_unsigned_fallback).map_err(refused)?;
        let issued = verified.payload.issued_at.parse::<Timestamp>().unwrap_or_else(|_| Timestamp::now());
        let file = BundleFile::from_json(&body).map_err(refused)?;
        let replaced =
            table(&state, BUNDLES).put(&tenant, &verified.bundle_id, issued, &file.to_json()).map_err(storage)?;
        let answer = json!({
            "status": if replaced { "duplicate" } else { "imported" },
            "bundleId": verified.bundle_id,
            "bundleDigest": verified.bundle_digest,
            "consentDigest": verified.consent_digest,
            "siteAlias": verified.payload.site_alias,
            "unsigned": verified.unsigned,
        });
        Ok(axum::Json(answer).into_response())
    })())
}

/// `POST /telemetry/federation/revocations` (hub): verifies a revocation statement and keeps it; the
/// consent's bundles leave the aggregate.
pub(crate) async fn import_revocation(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    body: Bytes,
) -> Response {
    respond((|| {
        let tenant = tenant_of(principal.as_deref(), None)?;
        let envelope =
            Envelope::from_json(&body).map_err(|error| bad_request("federation.malformed", error.to_string()))?;
        let config = state.collector.config().federation;
        let digest = revoked_digest(&envelope, &trust(&state)?, config.allow_unsigned_fallback).map_err(refused)?;
        table(&state, REVOCATIONS).put(&tenant, &digest, Timestamp::now(), &envelope.to_json()).map_err(storage)?;
        Ok(axum::Json(json!({"status": "recorded", "consentDigest": digest})).into_response())
    })())
}

/// `?window=` of the aggregate.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AggregateQuery {
    window: String,
}

/// `GET /telemetry/federation/aggregate?window=7d|START..END` (hub): the sum per CVE of the buckets of
/// every bundle whose window ends in the window, with per-site provenance; bundles under a revoked
/// consent are left out.
pub(crate) async fn aggregate(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    query: Result<Query<AggregateQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    respond((|| {
        let Query(query) = query.map_err(|rejection| {
            bad_request("federation.invalid_query", format!("{}; valid: window", rejection.body_text()))
        })?;
        let tenant = tenant_of(principal.as_deref(), None)?;
        let window = stella_evidence::forensic::parse_window(&query.window, Timestamp::now())
            .map_err(|error| bad_request("federation.invalid_window", error.to_string()))?;
        let trust = trust(&state)?;
        let revoked = revoked(&state, &tenant, &trust)?;
        let config = state.collector.config().federation;
        let mut totals: BTreeMap<String, (u64, u64, u64, Vec<Value>)> = BTreeMap::new();
        let (mut contributions, mut dropped) = (Vec::new(), Vec::new());
        for record in table(&state, BUNDLES).list(&tenant).map_err(storage)? {
            let verified = match verify_bundle(&record.value, &trust, &revoked, config.allow_unsigned_fallback) {
                Ok(verified) => verified,
                Err(error) => {
                    dropped.push(json!({"bundleId": record.id, "code": error.code()}));
                    continue;
                }
            };
            let end = verified.payload.window.to.parse::<Timestamp>().unwrap_or(Timestamp::UNIX_EPOCH);
            if end < window.start || end > window.end {
                continue;
            }
            let provenance = json!({"siteAlias": verified.payload.site_alias, "bundleId": verified.bundle_id, "bundleDigest": verified.bundle_digest});
            for bucket in &verified.payload.buckets {
                let total = totals.entry(bucket.cve_id.clone()).or_default();
                total.0 += bucket.noisy_count;
                total.1 += bucket.artifact_count;
                total.2 += bucket.observation_count;
                total.3.push(provenance.clone());
            }
            contributions.push(provenance);
        }
        let buckets: Vec<Value> = totals
            .into_iter()
            .map(|(cve, (noisy, artifacts, observations, sources))| {
                json!({"cveId": cve, "noisyCount": noisy, "artifactCount": artifacts, "observationCount": observations, "sources": sources})
            })
            .collect();
        let answer = json!({
            "window": {"from": window.start.to_string(), "to": window.end.to_string()},
            "buckets": buckets,
            "contributions": contributions,
            "dropped": dropped,
        });
        let bytes = stella_evidence::canonical::to_vec(&answer).map_err(storage)?;
        Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
    })())
}
