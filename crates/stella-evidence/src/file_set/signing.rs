use serde::Serialize;
use serde::de::DeserializeOwned;

use super::digest::Hasher;
use super::manifest::{ENVELOPE_FILE, MANIFEST_FILE};
use crate::dsse::{Envelope, Signer};
use crate::keys::{SigningKey, TrustStore};
use crate::{BundleError, WriteError};

/// The largest integer an RFC 8785 number holds exactly (2^53 - 1).
const MAX_JSON_INTEGER: u64 = (1 << 53) - 1;

/// A manifest and its envelope, ready to be written as `manifest.json` and `manifest.dsse.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    /// The manifest, RFC 8785 JSON: the exact payload the envelope signs.
    pub manifest_json: Vec<u8>,
    /// The DSSE envelope, RFC 8785 JSON.
    pub envelope_json: Vec<u8>,
    /// Who signed it.
    pub signer: Signer,
}

/// Writes `manifest` as RFC 8785 JSON and signs those bytes as `payload_type`.
pub(crate) fn sign_manifest<T: Serialize>(
    manifest: &T,
    payload_type: &str,
    key: &SigningKey,
) -> Result<SignedManifest, WriteError> {
    let manifest_json = crate::canonical::to_vec(manifest)?;
    let envelope_json = Envelope::sign(payload_type, &manifest_json, key).to_json();
    let signer = Signer { keyid: key.keyid().to_string(), integrity_only: key.integrity_only() };
    Ok(SignedManifest { manifest_json, envelope_json, signer })
}

/// Refuses numbers a canonical manifest would round (RFC 8785 writes numbers as doubles).
pub(crate) fn json_safe(field: &'static str, value: u64) -> Result<u64, WriteError> {
    if value > MAX_JSON_INTEGER {
        return Err(WriteError::NumberTooLarge { field, value });
    }
    Ok(value)
}

/// Verifies `envelope_json` as `payload_type`, checks `manifest_json` (when the copy exists) is its exact
/// payload, and only then parses the manifest.
pub(crate) fn open_manifest<T: DeserializeOwned>(
    envelope_json: &[u8],
    manifest_json: Option<&[u8]>,
    trust: &TrustStore,
    payload_type: &str,
) -> Result<(T, Signer), BundleError> {
    let envelope = Envelope::from_json(envelope_json)?;
    let verified = envelope.verify(trust, payload_type)?;
    // Every envelope is written in one form; other bytes that still verify were changed where the
    // signature does not reach (a renamed `keyid` reads as absent, base64 has two alphabets).
    if envelope.to_json() != envelope_json {
        return Err(BundleError::EnvelopeNotCanonical { file: ENVELOPE_FILE.to_string() });
    }
    if let Some(copy) = manifest_json
        && copy != verified.payload.as_slice()
    {
        return Err(BundleError::DigestMismatch {
            file: MANIFEST_FILE.to_string(),
            expected: Hasher::digest(&verified.payload).sha256,
            actual: Hasher::digest(copy).sha256,
        });
    }
    let manifest = serde_json::from_slice(&verified.payload).map_err(|source| BundleError::Manifest { source })?;
    Ok((manifest, verified.signer))
}
