//! Bundles: the buckets of a window, signed, tied to the consent that allows them, with a bundle id
//! that depends only on the inputs (same inputs, same id and envelope digest).
use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use stella_evidence::TrustStore;
use stella_evidence::dsse::Envelope;

use crate::BUNDLE_PAYLOAD_TYPE;
use crate::aggregate::{Bucket, Observation, aggregate};
use crate::consent::{Consent, consent_digest, envelope_digest, verified_payload, verify_consent};
use crate::error::FederationError;
use crate::privacy::noisy;
use crate::signer::{FederationSigner, is_unsigned};

/// The schema every bundle payload names.
const SCHEMA: &str = "stella.federation.bundle/v1";
/// Largest bundle file accepted.
const MAX_BUNDLE_BYTES: usize = 32 * 1024 * 1024;

/// A window as a bundle states it (RFC 3339, half-open).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowText {
    /// First instant.
    pub from: String,
    /// First instant after.
    pub to: String,
}

/// The privacy parameters a bundle was made with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Privacy {
    /// Buckets of fewer distinct artifacts were suppressed.
    pub k_anonymity: u64,
    /// How many.
    pub suppressed_buckets: u64,
    /// Laplace noise parameter, when noise was added.
    pub epsilon: Option<f64>,
    /// `none` or `laplace`.
    pub mechanism: String,
}

/// What a bundle says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundlePayload {
    /// [`SCHEMA`].
    pub schema: String,
    /// The consent it is shared under.
    pub consent_digest: String,
    /// The federation.
    pub federation_id: String,
    /// The site's alias (never the internal tenant id).
    pub site_alias: String,
    /// The window.
    pub window: WindowText,
    /// The fixed clock input: the window's end.
    pub issued_at: String,
    /// Privacy parameters.
    pub privacy: Privacy,
    /// The buckets.
    pub buckets: Vec<Bucket>,
}

/// A bundle file: the consent envelope and the bundle envelope together.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleFile {
    /// Hex SHA-256 of the canonical payload.
    pub bundle_id: String,
    /// `sha256:` of the bundle envelope's RFC 8785 bytes.
    pub bundle_digest: String,
    /// The consent envelope.
    pub consent: Envelope,
    /// The bundle envelope.
    pub bundle: Envelope,
}

impl BundleFile {
    /// The file's RFC 8785 bytes: `{"bundle","bundleDigest","bundleId","consent"}`.
    pub fn to_json(&self) -> Vec<u8> {
        let envelope =
            |envelope: &Envelope| serde_json::from_slice::<Value>(&envelope.to_json()).unwrap_or(Value::Null);
        let file = serde_json::json!({
            "bundleId": self.bundle_id,
            "bundleDigest": self.bundle_digest,
            "consent": envelope(&self.consent),
            "bundle": envelope(&self.bundle),
        });
        stella_evidence::canonical::to_vec(&file).unwrap_or_default()
    }

    /// Parses a bundle file (not verified).
    pub fn from_json(bytes: &[u8]) -> Result<BundleFile, FederationError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(FederationError::Malformed(format!(
                "bundle file of {} bytes, more than {MAX_BUNDLE_BYTES}",
                bytes.len()
            )));
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|error| FederationError::Malformed(format!("bundle file is not JSON: {error}")))?;
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| FederationError::Malformed(format!("bundle file: {key} missing")))
        };
        let envelope = |key: &str| -> Result<Envelope, FederationError> {
            let raw =
                value.get(key).ok_or_else(|| FederationError::Malformed(format!("bundle file: {key} missing")))?;
            Envelope::from_json(&serde_json::to_vec(raw).unwrap_or_default())
                .map_err(|error| FederationError::Malformed(format!("{key}: {error}")))
        };
        Ok(BundleFile {
            bundle_id: text("bundleId")?,
            bundle_digest: text("bundleDigest")?,
            consent: envelope("consent")?,
            bundle: envelope("bundle")?,
        })
    }
}

/// What a bundle is built from.
pub struct BundleInput<'a> {
    /// The signed consent.
    pub consent: &'a Envelope,
    /// Its contents (from [`verify_consent`]).
    pub terms: &'a Consent,
    /// The tenant's observations.
    pub observations: &'a [Observation],
    /// The window `[from, to)`.
    pub window: (Timestamp, Timestamp),
    /// k-anonymity threshold.
    pub k: u64,
    /// Laplace noise parameter, if any.
    pub epsilon: Option<f64>,
    /// The key of the noise generator.
    pub noise_key: &'a [u8],
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The signed bundle of `input`, and its payload. Refused when the consent is not valid at the window end.
pub fn build_bundle(
    input: &BundleInput<'_>,
    signer: &FederationSigner,
) -> Result<(BundleFile, BundlePayload), FederationError> {
    let digest = consent_digest(input.consent);
    let (from, to) = input.window;
    valid_at(input.terms, &digest, to)?;
    let aggregated = aggregate(input.observations, input.window, input.k);
    let mut payload = BundlePayload {
        schema: SCHEMA.into(),
        consent_digest: digest,
        federation_id: input.terms.federation_id.clone(),
        site_alias: input.terms.site_alias.clone(),
        window: WindowText { from: from.to_string(), to: to.to_string() },
        issued_at: to.to_string(),
        privacy: Privacy {
            k_anonymity: input.k,
            suppressed_buckets: aggregated.suppressed,
            epsilon: input.epsilon,
            mechanism: "none".into(),
        },
        buckets: aggregated.buckets,
    };
    if let Some(epsilon) = input.epsilon {
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(FederationError::Malformed(format!("epsilon {epsilon} must be a positive number")));
        }
        let seed = canonical(&payload)?;
        payload.buckets = noisy(&payload.buckets, epsilon, input.noise_key, &seed);
        payload.privacy.mechanism = "laplace".into();
    }
    let bytes = canonical(&payload)?;
    let bundle = signer.sign(BUNDLE_PAYLOAD_TYPE, &bytes)?;
    let file = BundleFile {
        bundle_id: hex_sha256(&bytes),
        bundle_digest: envelope_digest(&bundle),
        consent: input.consent.clone(),
        bundle,
    };
    Ok((file, payload))
}

fn canonical<T: Serialize>(value: &T) -> Result<Vec<u8>, FederationError> {
    stella_evidence::canonical::to_vec(value).map_err(|error| FederationError::SignFailed(error.to_string()))
}

fn valid_at(terms: &Consent, digest: &str, at: Timestamp) -> Result<(), FederationError> {
    if at < terms.not_before || at > terms.expires_at {
        return Err(FederationError::ConsentExpired {
            digest: digest.into(),
            not_before: terms.not_before.to_string(),
            expires_at: terms.expires_at.to_string(),
            at: at.to_string(),
        });
    }
    Ok(())
}

/// A bundle that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedBundle {
    /// The bundle id.
    pub bundle_id: String,
    /// The bundle envelope's digest.
    pub bundle_digest: String,
    /// The consent's digest.
    pub consent_digest: String,
    /// The consent.
    pub consent: Consent,
    /// The payload.
    pub payload: BundlePayload,
    /// Whether it was accepted unsigned (the fallback, allowed by the verifier).
    pub unsigned: bool,
}

/// Verifies a bundle file: the recorded digest and id against the bytes, both envelopes' payload types
/// and signatures (trusted keys; the unsigned fallback only with `allow_unsigned`), the consent linkage,
/// the consent's validity at the window end, and that its digest is not in `revoked`.
pub fn verify_bundle(
    bytes: &[u8],
    trust: &TrustStore,
    revoked: &BTreeSet<String>,
    allow_unsigned: bool,
) -> Result<VerifiedBundle, FederationError> {
    let file = BundleFile::from_json(bytes)?;
    let computed = envelope_digest(&file.bundle);
    if computed != file.bundle_digest {
        return Err(FederationError::DigestMismatch { what: "bundleDigest", recorded: file.bundle_digest, computed });
    }
    let consent = verify_consent(&file.consent, trust, allow_unsigned)?;
    let payload_bytes = verified_payload(&file.bundle, trust, BUNDLE_PAYLOAD_TYPE, allow_unsigned)?;
    let computed_id = hex_sha256(&payload_bytes);
    if computed_id != file.bundle_id {
        return Err(FederationError::DigestMismatch {
            what: "bundleId",
            recorded: file.bundle_id,
            computed: computed_id,
        });
    }
    let payload: BundlePayload = serde_json::from_slice(&payload_bytes)
        .map_err(|error| FederationError::Malformed(format!("bundle payload: {error}")))?;
    let carried = consent_digest(&file.consent);
    if payload.consent_digest != carried {
        return Err(FederationError::ConsentDigestMismatch { named: payload.consent_digest, carried });
    }
    let end = payload
        .window
        .to
        .parse::<Timestamp>()
        .map_err(|error| FederationError::Malformed(format!("window.to: {error}")))?;
    valid_at(&consent, &carried, end)?;
    if revoked.contains(&carried) {
        return Err(FederationError::ConsentRevoked(carried));
    }
    let unsigned = is_unsigned(&file.bundle) || is_unsigned(&file.consent);
    Ok(VerifiedBundle {
        bundle_id: computed_id,
        bundle_digest: computed,
        consent_digest: carried,
        consent,
        payload,
        unsigned,
    })
}
