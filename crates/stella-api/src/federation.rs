//! `/telemetry/federation/*`: the HTTP face of [`stella_federation::service`]. Routes parse the request,
//! name the tenant, build the trust, signer and privacy policy from the current config, call the service
//! and map its errors (verification failures 422, a spent budget 409).
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Value, json};
use stella_collector::auth::Principal;
use stella_evidence::TrustStore;
use stella_federation::service::{
    BundlePolicy, FederationService, GrantRequest, MAX_OBSERVATIONS, ServiceError, Trust,
};
use stella_federation::{FederationError, FederationSigner};

use crate::{ApiError, ApiState, actor, audited, bad_request, blocking, internal, tenant_of};

/// The federation service on the collector's state database.
pub(crate) fn service(collector: &stella_collector::Collector) -> FederationService {
    FederationService::new(|table| std::sync::Arc::new(collector.records(table)))
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        let status = match &error {
            ServiceError::Storage(_) | ServiceError::Damaged { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceError::Refused(FederationError::BudgetExhausted { .. }) => StatusCode::CONFLICT,
            ServiceError::Refused(FederationError::SignerUnavailable | FederationError::SignFailed(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ServiceError::Refused(FederationError::Malformed(_)) => StatusCode::BAD_REQUEST,
            ServiceError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::UnknownConsent { .. } | ServiceError::NoConsent => StatusCode::NOT_FOUND,
            ServiceError::TooMany(_)
            | ServiceError::NoAlias(_)
            | ServiceError::AliasIsTenant
            | ServiceError::AmbiguousConsent => StatusCode::BAD_REQUEST,
        };
        ApiError { status, code: error.code(), message: error.to_string() }
    }
}

fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The keys whose statements this server accepts: `federation.trusted_keys` and its own key.
fn trust_store(state: &ApiState) -> Result<TrustStore, ApiError> {
    let config = state.collector.config().federation;
    let mut trust = TrustStore::from_files(&config.trusted_keys).map_err(|error| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: error.code(),
        message: format!("federation.trusted_keys: {error}"),
    })?;
    trust.insert(state.evidence.key.trusted_key());
    Ok(trust)
}

/// Runs `work` with the current trust (keys and the unsigned-fallback setting).
fn with_trust<T>(state: &ApiState, work: impl FnOnce(Trust<'_>) -> Result<T, ApiError>) -> Result<T, ApiError> {
    let keys = trust_store(state)?;
    let allow_unsigned = state.collector.config().federation.allow_unsigned_fallback;
    work(Trust { keys: &keys, allow_unsigned })
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
        return Err(ServiceError::TooMany(items.len()).into());
    }
    let service = service(&state.collector);
    blocking("federation.failed", move || {
        let answer = service.record_observations(&tenant, &items)?;
        let status = if answer.all_refused() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        Ok((status, axum::Json(answer)).into_response())
    })
    .await
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
    let request = GrantRequest {
        federation_id: grant.federation_id,
        scope: grant.scope,
        purpose: grant.purpose,
        not_before: grant.not_before,
        expires_at: grant.expires_at,
        site_alias: grant.site_alias,
    };
    let aliases = state.collector.config().federation.aliases;
    let granted = service(&state.collector).grant(
        &tenant,
        request,
        &aliases,
        (&actor(principal), &signer(state), Timestamp::now()),
    )?;
    if let Some(response) = audited(
        state,
        principal,
        &tenant,
        "federation.consent.grant",
        json!({"consentDigest": granted.digest, "federationId": granted.consent.federation_id}),
    ) {
        return Ok(response);
    }
    let envelope_json: Value = serde_json::from_slice(&granted.envelope.to_json()).unwrap_or(Value::Null);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"consentDigest": granted.digest, "consent": granted.consent, "envelope": envelope_json})),
    )
        .into_response())
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
        let now = Timestamp::now();
        let known = with_trust(&state, |trust| Ok(service(&state.collector).consents(&tenant, trust)?))?;
        let listed: Vec<Value> = known
            .iter()
            .map(|known| json!({"consentDigest": known.digest, "status": known.status(now), "consent": known.consent}))
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
        let by = (actor(principal.as_deref()), signer(&state), Timestamp::now());
        let envelope = service(&state.collector).revoke(&tenant, &digest, body.reason, (&by.0, &by.1, by.2))?;
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
    let window = window(&query.window)?;
    let state = state.clone();
    blocking("federation.failed", move || {
        let config = state.collector.config().federation;
        // Validation refuses `epsilon` without a key, so a config with noise always has one here.
        let noise_key = config.noise_key.as_ref().map(|key| key.expose().as_bytes()).unwrap_or_default();
        let policy = BundlePolicy {
            k: config.k_anonymity,
            epsilon: config.epsilon,
            epsilon_budget: config.epsilon_budget,
            noise_key,
        };
        let signer = signer(&state);
        let file = with_trust(&state, |trust| {
            Ok(service(&state.collector).bundle(&tenant, window, query.consent.as_deref(), (trust, policy, &signer))?)
        })?;
        Ok(([(header::CONTENT_TYPE, "application/json")], file.to_json()).into_response())
    })
    .await
}

/// A `window` query parameter: `7d` back from now or `START..END`.
fn window(text: &str) -> Result<(Timestamp, Timestamp), ApiError> {
    let window = stella_evidence::forensic::parse_window(text, Timestamp::now())
        .map_err(|error| bad_request("federation.invalid_window", error.to_string()))?;
    Ok((window.start, window.end))
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
        let imported = with_trust(&state, |trust| Ok(service(&state.collector).import_bundle(&tenant, &body, trust)?))?;
        let verified = imported.verified;
        let answer = json!({
            "status": if imported.duplicate { "duplicate" } else { "imported" },
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
        let digest =
            with_trust(&state, |trust| Ok(service(&state.collector).import_revocation(&tenant, &body, trust)?))?;
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
        let window = window(&query.window)?;
        let answer = with_trust(&state, |trust| Ok(service(&state.collector).aggregate(&tenant, window, trust)?))?;
        let bytes =
            stella_evidence::canonical::to_vec(&answer).map_err(|error| internal("federation.storage", error))?;
        Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
    })())
}
