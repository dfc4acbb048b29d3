//! Consents and revocations: signed statements a bundle is tied to by digest.
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stella_evidence::TrustStore;
use stella_evidence::dsse::Envelope;

use crate::error::FederationError;
use crate::signer::{FederationSigner, is_unsigned};
use crate::{CONSENT_PAYLOAD_TYPE, REVOCATION_PAYLOAD_TYPE};

/// An admin's consent to share aggregated data with a federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Consent {
    /// The federation.
    pub federation_id: String,
    /// The site's alias in the federation (never the internal tenant id).
    pub site_alias: String,
    /// What may be shared (e.g. `vuln-noise-aggregates`).
    pub scope: String,
    /// Why.
    pub purpose: String,
    /// Valid from.
    pub not_before: Timestamp,
    /// Valid until.
    pub expires_at: Timestamp,
    /// Who granted it.
    pub granted_by: String,
}

/// A signed statement that a consent no longer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Revocation {
    /// The revoked consent's digest.
    pub consent_digest: String,
    /// When.
    pub revoked_at: Timestamp,
    /// Who.
    pub revoked_by: String,
    /// Why.
    pub reason: String,
}

/// `sha256:` + hex SHA-256 of an envelope's RFC 8785 bytes.
pub fn envelope_digest(envelope: &Envelope) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(envelope.to_json())))
}

/// The `ConsentDsseDigest` of a consent envelope.
pub fn consent_digest(envelope: &Envelope) -> String {
    envelope_digest(envelope)
}

fn canonical<T: Serialize>(value: &T) -> Result<Vec<u8>, FederationError> {
    stella_evidence::canonical::to_vec(value).map_err(|error| FederationError::SignFailed(error.to_string()))
}

/// Signs `consent` (its RFC 8785 bytes as the payload).
pub fn sign_consent(consent: &Consent, signer: &FederationSigner) -> Result<Envelope, FederationError> {
    if consent.expires_at <= consent.not_before {
        return Err(FederationError::Malformed(format!(
            "the consent expires ({}) before it starts ({})",
            consent.expires_at, consent.not_before
        )));
    }
    signer.sign(CONSENT_PAYLOAD_TYPE, &canonical(consent)?)
}

/// Signs `revocation`.
pub fn sign_revocation(revocation: &Revocation, signer: &FederationSigner) -> Result<Envelope, FederationError> {
    signer.sign(REVOCATION_PAYLOAD_TYPE, &canonical(revocation)?)
}

/// Verifies an envelope of `payload_type` and returns its payload: signed by a trusted key, or the
/// unsigned fallback when `allow_unsigned`.
pub(crate) fn verified_payload(
    envelope: &Envelope,
    trust: &TrustStore,
    payload_type: &str,
    allow_unsigned: bool,
) -> Result<Vec<u8>, FederationError> {
    if is_unsigned(envelope) {
        if !allow_unsigned {
            return Err(FederationError::VerifyFailed(
                "the envelope carries only the offline-unsigned-fallback placeholder; accept it explicitly (--allow-unsigned) or have the site sign".into(),
            ));
        }
        if envelope.payload_type() != payload_type {
            return Err(FederationError::PayloadTypeMismatch {
                expected: payload_type.into(),
                found: envelope.payload_type().into(),
            });
        }
        return Ok(envelope.unverified_payload().to_vec());
    }
    envelope.verify(trust, payload_type).map(|verified| verified.payload).map_err(FederationError::from_dsse)
}

/// A verified consent envelope's consent.
pub fn verify_consent(
    envelope: &Envelope,
    trust: &TrustStore,
    allow_unsigned: bool,
) -> Result<Consent, FederationError> {
    let payload = verified_payload(envelope, trust, CONSENT_PAYLOAD_TYPE, allow_unsigned)?;
    serde_json::from_slice(&payload).map_err(|error| FederationError::Malformed(format!("consent payload: {error}")))
}

/// The consent digest a verified revocation envelope revokes.
pub fn revoked_digest(
    envelope: &Envelope,
    trust: &TrustStore,
    allow_unsigned: bool,
) -> Result<String, FederationError> {
    let payload = verified_payload(envelope, trust, REVOCATION_PAYLOAD_TYPE, allow_unsigned)?;
    let revocation: Revocation = serde_json::from_slice(&payload)
        .map_err(|error| FederationError::Malformed(format!("revocation payload: {error}")))?;
    Ok(revocation.consent_digest)
}
