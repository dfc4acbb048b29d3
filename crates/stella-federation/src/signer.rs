//! The signer role: a key (Ed25519, or HMAC-SHA256 integrity-only for offline federations with a shared
//! key map), or, when allowed, the unsigned fallback.
use stella_evidence::SigningKey;
use stella_evidence::dsse::{Envelope, Signature};

use crate::error::FederationError;

/// The keyid of the unsigned fallback's single placeholder signature.
pub const UNSIGNED_KEYID: &str = "offline-unsigned-fallback";

/// Who signs federation statements.
#[derive(Debug, Clone)]
pub enum FederationSigner {
    /// A key (see [`FederationSigner::key`]).
    Key(Box<SigningKey>),
    /// No key, and `federation.allow_unsigned_fallback: true`: envelopes carry the single signature
    /// `{"keyid":"offline-unsigned-fallback","sig":""}`, which verifiers refuse unless told to accept it.
    UnsignedFallback,
    /// No key and no fallback: signing fails with `federation.dsse.signer_unavailable`.
    Unavailable,
}

impl FederationSigner {
    /// Signs with `key`.
    pub fn key(key: SigningKey) -> FederationSigner {
        FederationSigner::Key(Box::new(key))
    }

    /// The envelope of `payload` as `payload_type`.
    pub fn sign(&self, payload_type: &str, payload: &[u8]) -> Result<Envelope, FederationError> {
        match self {
            FederationSigner::Key(key) => Ok(Envelope::sign(payload_type, payload, key)),
            FederationSigner::UnsignedFallback => Ok(Envelope::from_parts(
                payload_type,
                payload.to_vec(),
                vec![Signature { keyid: UNSIGNED_KEYID.into(), sig: Vec::new() }],
            )),
            FederationSigner::Unavailable => Err(FederationError::SignerUnavailable),
        }
    }

    /// Whether envelopes it makes are unsigned.
    pub fn is_unsigned(&self) -> bool {
        matches!(self, FederationSigner::UnsignedFallback)
    }
}

/// Whether `envelope` carries only the unsigned fallback's placeholder.
pub(crate) fn is_unsigned(envelope: &Envelope) -> bool {
    matches!(envelope.signatures(), [only] if only.keyid == UNSIGNED_KEYID && only.sig.is_empty())
}
