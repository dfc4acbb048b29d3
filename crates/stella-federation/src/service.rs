//! Federation on a server, over the record repository: observations in (idempotent by CVE, artifact and
//! time); consents granted, listed and revoked; bundles built for a window under a consent (k-anonymity,
//! optional Laplace noise within the consent's epsilon budget); and, as a hub, bundles and revocations
//! taken in (verified, idempotent by bundle id) and the federated aggregate with per-site provenance.
//! The HTTP layer only parses requests, names the tenant and maps [`ServiceError`] to a status.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stella_evidence::TrustStore;
use stella_evidence::dsse::Envelope;
use stella_store::tables::{RecordRepository, StateError};

use crate::privacy::Budget;
use crate::{
    BundleFile, BundleInput, Consent, FederationError, FederationSigner, Observation, Revocation, VerifiedBundle,
    build_bundle, consent_digest, parse_observation, revoked_digest, sign_consent, sign_revocation, verify_bundle,
    verify_consent,
};

/// Observations, by a digest of (CVE, artifact, time): re-sent ones count once.
pub const OBSERVATIONS_TABLE: &str = "federation.observations";
/// Consent envelopes this site granted, by consent digest.
pub const CONSENTS_TABLE: &str = "federation.consents";
/// Revocation envelopes (this site's, or taken in as a hub), by revoked consent digest.
pub const REVOCATIONS_TABLE: &str = "federation.revocations";
/// Epsilon budgets, by consent digest.
pub const BUDGETS_TABLE: &str = "federation.budgets";
/// Bundle files taken in as a hub, by bundle id.
pub const BUNDLES_TABLE: &str = "federation.bundles";
/// Most observations in one request.
pub const MAX_OBSERVATIONS: usize = 10_000;

/// Why a federation request was not done.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The state database failed.
    #[error("the federation tables could not be read or written: {0}")]
    Storage(#[from] StateError),
    /// A stored statement no longer parses.
    #[error("stored {what} {id} is damaged: {message}")]
    Damaged {
        /// `consent` or `revocation`.
        what: &'static str,
        /// Its id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// Signing, verification, the budget or the input refused it.
    #[error(transparent)]
    Refused(#[from] FederationError),
    /// More observations than one request may carry (see [`FederationService::record_observations`]).
    #[error("{0} observations; send at most {MAX_OBSERVATIONS} per request")]
    TooMany(usize),
    /// The tenant has no alias to appear under.
    #[error("tenant {0:?} has no federation alias; set federation.aliases.{0} or pass site_alias")]
    NoAlias(String),
    /// The alias given is the tenant id.
    #[error("the site alias must not be the tenant id: the hub never sees tenant ids")]
    AliasIsTenant,
    /// No consent of that digest.
    #[error("no consent {digest} of tenant {tenant:?}; list them with GET /telemetry/federation/consents")]
    UnknownConsent {
        /// The digest asked for.
        digest: String,
        /// The tenant.
        tenant: String,
    },
    /// No unrevoked consent to build a bundle under.
    #[error("no unrevoked consent (of that digest); grant one with stella telemetry federation consent grant")]
    NoConsent,
    /// Several unrevoked consents and none named.
    #[error("several consents are unrevoked; name one with consent=<digest>")]
    AmbiguousConsent,
}

impl ServiceError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Storage(_) | ServiceError::Damaged { .. } => "federation.storage",
            ServiceError::Refused(error) => error.code(),
            ServiceError::TooMany(_) => "federation.too_many",
            ServiceError::NoAlias(_) | ServiceError::AliasIsTenant => "federation.no_alias",
            ServiceError::UnknownConsent { .. } => "federation.unknown_consent",
            ServiceError::NoConsent => "federation.no_consent",
            ServiceError::AmbiguousConsent => "federation.ambiguous_consent",
        }
    }
}

/// The keys a server accepts statements from, and whether the unsigned fallback passes.
#[derive(Clone, Copy)]
pub struct Trust<'a> {
    /// `federation.trusted_keys` and the server's own key.
    pub keys: &'a TrustStore,
    /// `federation.allow_unsigned_fallback`.
    pub allow_unsigned: bool,
}

/// The privacy settings a bundle is built under.
#[derive(Clone, Copy)]
pub struct BundlePolicy<'a> {
    /// k-anonymity threshold.
    pub k: u64,
    /// Laplace noise parameter, if any.
    pub epsilon: Option<f64>,
    /// What one consent's bundles may spend in total.
    pub epsilon_budget: f64,
    /// The noise generator's key.
    pub noise_key: &'a [u8],
}

/// A consent to grant.
#[derive(Debug, Clone)]
pub struct GrantRequest {
    /// The federation it is for.
    pub federation_id: String,
    /// What may be shared.
    pub scope: String,
    /// Why.
    pub purpose: String,
    /// From when (default: now).
    pub not_before: Option<Timestamp>,
    /// Until when.
    pub expires_at: Timestamp,
    /// The alias the site appears under (default: the tenant's configured alias).
    pub site_alias: Option<String>,
}

/// A granted consent.
#[derive(Debug, Clone)]
pub struct Granted {
    /// Its digest (its name from now on).
    pub digest: String,
    /// What was consented to.
    pub consent: Consent,
    /// The signed statement.
    pub envelope: Envelope,
}

/// One of a tenant's consents.
#[derive(Debug, Clone)]
pub struct KnownConsent {
    /// Its digest.
    pub digest: String,
    /// The signed statement.
    pub envelope: Envelope,
    /// Its terms.
    pub consent: Consent,
    /// Whether it was revoked.
    pub revoked: bool,
}

impl KnownConsent {
    /// `revoked`, `expired`, `pending` or `active` at `now`.
    pub fn status(&self, now: Timestamp) -> &'static str {
        if self.revoked {
            "revoked"
        } else if now > self.consent.expires_at {
            "expired"
        } else if now < self.consent.not_before {
            "pending"
        } else {
            "active"
        }
    }
}

/// The answer to a batch of observations: per-item results.
#[derive(Debug, Clone, Serialize)]
pub struct ObservationAnswer {
    /// Observations new to the table.
    pub recorded: usize,
    /// Observations that were already there (re-sent).
    pub replaced: usize,
    /// Observations refused.
    pub refused: usize,
    /// One result per item, in order: `{index, status[, code, message]}`.
    pub results: Vec<Value>,
}

impl ObservationAnswer {
    /// Whether every item was refused (the request as a whole is wrong).
    pub fn all_refused(&self) -> bool {
        self.refused > 0 && self.recorded + self.replaced == 0
    }
}

/// A bundle taken in by a hub.
#[derive(Debug, Clone)]
pub struct Imported {
    /// It was already there (same bundle id).
    pub duplicate: bool,
    /// What verification found.
    pub verified: VerifiedBundle,
}

/// The federation tables of a server.
pub struct FederationService {
    observations: Arc<dyn RecordRepository>,
    consents: Arc<dyn RecordRepository>,
    revocations: Arc<dyn RecordRepository>,
    budgets: Arc<dyn RecordRepository>,
    bundles: Arc<dyn RecordRepository>,
}

impl FederationService {
    /// The service over the tables `open` gives for each table name (`*_TABLE`).
    pub fn new(open: impl Fn(&'static str) -> Arc<dyn RecordRepository>) -> Self {
        FederationService {
            observations: open(OBSERVATIONS_TABLE),
            consents: open(CONSENTS_TABLE),
            revocations: open(REVOCATIONS_TABLE),
            budgets: open(BUDGETS_TABLE),
            bundles: open(BUNDLES_TABLE),
        }
    }

    /// Records `tenant`'s observation events (JSON objects) in one transaction. (A request may carry at
    /// most [`MAX_OBSERVATIONS`]; the caller checks, as events from logs come in any number.)
    pub fn record_observations(&self, tenant: &str, items: &[Value]) -> Result<ObservationAnswer, ServiceError> {
        let (mut rows, mut results) = (Vec::new(), Vec::new());
        for (index, item) in items.iter().enumerate() {
            match parse_observation(item) {
                Ok(observation) => {
                    let key =
                        format!("{}\0{}\0{}", observation.cve_id, observation.artifact_digest, observation.observed_at);
                    let id = hex::encode(Sha256::digest(key.as_bytes()));
                    let bytes = serde_json::to_vec(&observation)
                        .map_err(|error| FederationError::Malformed(error.to_string()))?;
                    rows.push((index, id, observation.observed_at, bytes));
                }
                Err(error) => results.push(
                    json!({"index": index, "status": "refused", "code": error.code(), "message": error.to_string()}),
                ),
            }
        }
        let batch: Vec<(&str, Timestamp, &[u8])> =
            rows.iter().map(|(_, id, at, bytes)| (id.as_str(), *at, bytes.as_slice())).collect();
        let replaced = self.observations.put_many(tenant, &batch)?;
        for ((index, _, _, _), replaced) in rows.iter().zip(&replaced) {
            results.push(json!({"index": index, "status": if *replaced { "replaced" } else { "recorded" }}));
        }
        results.sort_by_key(|result| result["index"].as_u64());
        Ok(ObservationAnswer {
            recorded: replaced.iter().filter(|replaced| !**replaced).count(),
            replaced: replaced.iter().filter(|replaced| **replaced).count(),
            refused: results.iter().filter(|result| result["status"] == "refused").count(),
            results,
        })
    }

    /// Grants `request` for `tenant` (known in federations as its alias in `aliases` unless the request
    /// names one), signed by `signer`, on behalf of `actor`.
    pub fn grant(
        &self,
        tenant: &str,
        request: GrantRequest,
        aliases: &BTreeMap<String, String>,
        (actor, signer, now): (&str, &FederationSigner, Timestamp),
    ) -> Result<Granted, ServiceError> {
        let site_alias = request
            .site_alias
            .or_else(|| aliases.get(tenant).cloned())
            .ok_or_else(|| ServiceError::NoAlias(tenant.to_string()))?;
        if site_alias == tenant {
            return Err(ServiceError::AliasIsTenant);
        }
        let consent = Consent {
            federation_id: request.federation_id,
            site_alias,
            scope: request.scope,
            purpose: request.purpose,
            not_before: request.not_before.unwrap_or(now),
            expires_at: request.expires_at,
            granted_by: actor.to_string(),
        };
        let envelope = sign_consent(&consent, signer)?;
        let digest = consent_digest(&envelope);
        self.consents.put(tenant, &digest, consent.not_before, &envelope.to_json())?;
        Ok(Granted { digest, consent, envelope })
    }

    /// `tenant`'s consents, verified against `trust`, each with whether it was revoked.
    pub fn consents(&self, tenant: &str, trust: Trust<'_>) -> Result<Vec<KnownConsent>, ServiceError> {
        let revoked = self.revoked(tenant, trust)?;
        let mut out = Vec::new();
        for record in self.consents.list(tenant)? {
            let envelope = Envelope::from_json(&record.value).map_err(|error| ServiceError::Damaged {
                what: "consent",
                id: record.id.clone(),
                message: error.to_string(),
            })?;
            let consent = verify_consent(&envelope, trust.keys, trust.allow_unsigned)?;
            out.push(KnownConsent { revoked: revoked.contains(&record.id), digest: record.id, envelope, consent });
        }
        Ok(out)
    }

    /// Revokes `tenant`'s consent `digest`: the signed revocation, kept (push it to the hubs).
    pub fn revoke(
        &self,
        tenant: &str,
        digest: &str,
        reason: String,
        (actor, signer, now): (&str, &FederationSigner, Timestamp),
    ) -> Result<Envelope, ServiceError> {
        if self.consents.get(tenant, digest)?.is_none() {
            return Err(ServiceError::UnknownConsent { digest: digest.to_string(), tenant: tenant.to_string() });
        }
        let revocation =
            Revocation { consent_digest: digest.to_string(), revoked_at: now, revoked_by: actor.to_string(), reason };
        let envelope = sign_revocation(&revocation, signer)?;
        self.revocations.put(tenant, digest, revocation.revoked_at, &envelope.to_json())?;
        Ok(envelope)
    }

    /// The signed bundle of `tenant`'s observations in `window` under the consent `consent` (or the only
    /// unrevoked one), charging its epsilon to the consent's budget.
    pub fn bundle(
        &self,
        tenant: &str,
        window: (Timestamp, Timestamp),
        consent: Option<&str>,
        (trust, policy, signer): (Trust<'_>, BundlePolicy<'_>, &FederationSigner),
    ) -> Result<BundleFile, ServiceError> {
        let mut usable: Vec<KnownConsent> = self
            .consents(tenant, trust)?
            .into_iter()
            .filter(|known| !known.revoked && consent.is_none_or(|wanted| wanted == known.digest))
            .collect();
        let chosen = match usable.len() {
            0 => return Err(ServiceError::NoConsent),
            1 => usable.remove(0),
            _ => return Err(ServiceError::AmbiguousConsent),
        };
        let observations: Vec<Observation> = self
            .observations
            .list(tenant)?
            .into_iter()
            .filter_map(|record| serde_json::from_slice(&record.value).ok())
            .collect();
        let input = BundleInput {
            consent: &chosen.envelope,
            terms: &chosen.consent,
            observations: &observations,
            window,
            k: policy.k,
            epsilon: policy.epsilon,
            noise_key: policy.noise_key,
        };
        let (file, _) = build_bundle(&input, signer)?;
        if let Some(epsilon) = policy.epsilon {
            let mut budget: Budget = self
                .budgets
                .get(tenant, &chosen.digest)?
                .and_then(|record| serde_json::from_slice::<BTreeMap<String, f64>>(&record.value).ok())
                .map(|spent| Budget { spent })
                .unwrap_or_default();
            budget.charge(&chosen.digest, &file.bundle_id, epsilon, policy.epsilon_budget)?;
            let bytes =
                serde_json::to_vec(&budget.spent).map_err(|error| FederationError::Malformed(error.to_string()))?;
            self.budgets.put(tenant, &chosen.digest, chosen.consent.not_before, &bytes)?;
        }
        Ok(file)
    }

    /// (Hub) Verifies the bundle file `body` and keeps it, idempotent by bundle id.
    pub fn import_bundle(&self, tenant: &str, body: &[u8], trust: Trust<'_>) -> Result<Imported, ServiceError> {
        let revoked = self.revoked(tenant, trust)?;
        let verified = verify_bundle(body, trust.keys, &revoked, trust.allow_unsigned)?;
        let issued = verified.payload.issued_at.parse::<Timestamp>().unwrap_or_else(|_| Timestamp::now());
        let file = BundleFile::from_json(body)?;
        let duplicate = self.bundles.put(tenant, &verified.bundle_id, issued, &file.to_json())?;
        Ok(Imported { duplicate, verified })
    }

    /// (Hub) Verifies the revocation statement `body` and keeps it: the revoked consent's digest. The
    /// consent's bundles leave the aggregate.
    pub fn import_revocation(&self, tenant: &str, body: &[u8], trust: Trust<'_>) -> Result<String, ServiceError> {
        let envelope = Envelope::from_json(body).map_err(|error| FederationError::Malformed(error.to_string()))?;
        let digest = revoked_digest(&envelope, trust.keys, trust.allow_unsigned)?;
        self.revocations.put(tenant, &digest, Timestamp::now(), &envelope.to_json())?;
        Ok(digest)
    }

    /// (Hub) The sum per CVE of the buckets of every kept bundle whose window ends in `window`, with
    /// per-site provenance; bundles under a revoked consent, or that no longer verify, are left out (the
    /// latter listed under `dropped`).
    pub fn aggregate(
        &self,
        tenant: &str,
        window: (Timestamp, Timestamp),
        trust: Trust<'_>,
    ) -> Result<Value, ServiceError> {
        let revoked = self.revoked(tenant, trust)?;
        let mut totals: BTreeMap<String, (u64, u64, u64, Vec<Value>)> = BTreeMap::new();
        let (mut contributions, mut dropped) = (Vec::new(), Vec::new());
        for record in self.bundles.list(tenant)? {
            let verified = match verify_bundle(&record.value, trust.keys, &revoked, trust.allow_unsigned) {
                Ok(verified) => verified,
                Err(error) => {
                    dropped.push(json!({"bundleId": record.id, "code": error.code()}));
                    continue;
                }
            };
            let end = verified.payload.window.to.parse::<Timestamp>().unwrap_or(Timestamp::UNIX_EPOCH);
            if end < window.0 || end > window.1 {
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
        Ok(json!({
            "window": {"from": window.0.to_string(), "to": window.1.to_string()},
            "buckets": buckets,
            "contributions": contributions,
            "dropped": dropped,
        }))
    }

    /// The consent digests `tenant` knows to be revoked.
    fn revoked(&self, tenant: &str, trust: Trust<'_>) -> Result<BTreeSet<String>, ServiceError> {
        let mut digests = BTreeSet::new();
        for record in self.revocations.list(tenant)? {
            let envelope = Envelope::from_json(&record.value).map_err(|error| ServiceError::Damaged {
                what: "revocation",
                id: record.id.clone(),
                message: error.to_string(),
            })?;
            digests.insert(revoked_digest(&envelope, trust.keys, trust.allow_unsigned)?);
        }
        Ok(digests)
    }
}
