use std::fmt;
use std::str::FromStr;

use ed25519_dalek::Signer as _;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::error::{InvalidKey, KeyError};
use super::trust_store::TrustedKey;

/// HMAC secrets shorter than this (32 bytes, the SHA-256 output size RFC 2104 recommends) are refused.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// What the HMAC keyid hashes before the secret (see the module documentation).
const HMAC_KEYID_PREFIX: &[u8] = b"stella-evidence hmac-sha256 keyid v1\n";

/// The kind of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Ed25519: the default; proves who signed.
    Ed25519,
    /// HMAC-SHA256 over a shared secret: integrity-only.
    HmacSha256,
}

impl KeyKind {
    /// The name used on the command line and in reports: `ed25519` or `hmac`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ed25519",
            KeyKind::HmacSha256 => "hmac",
        }
    }

    /// True when a signature of this kind proves integrity only (HMAC), not origin.
    pub fn integrity_only(self) -> bool {
        self == KeyKind::HmacSha256
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not `ed25519` or `hmac`.
#[derive(Debug, thiserror::Error)]
#[error("unknown key kind {0:?}; expected ed25519 or hmac")]
pub struct UnknownKeyKind(pub String);

impl FromStr for KeyKind {
    type Err = UnknownKeyKind;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ed25519" => Ok(KeyKind::Ed25519),
            "hmac" | "hmac-sha256" => Ok(KeyKind::HmacSha256),
            other => Err(UnknownKeyKind(other.to_string())),
        }
    }
}

/// An HMAC-SHA256 secret, wiped from memory when dropped.
#[derive(Clone)]
pub(crate) struct HmacSecret(Zeroizing<Vec<u8>>);

impl HmacSecret {
    pub(crate) fn new(secret: &[u8]) -> Result<HmacSecret, InvalidKey> {
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            return Err(InvalidKey::HmacTooShort { len: secret.len(), min: MIN_HMAC_SECRET_BYTES });
        }
        Ok(HmacSecret(Zeroizing::new(secret.to_vec())))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn keyid(&self) -> String {
        hex::encode(Sha256::new().chain_update(HMAC_KEYID_PREFIX).chain_update(self.bytes()).finalize())
    }

    pub(crate) fn mac(&self) -> hmac::Hmac<Sha256> {
        // HMAC takes keys of any length (longer ones are hashed first), so this cannot fail.
        <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(self.bytes()).expect("HMAC accepts keys of any length")
    }
}

/// The hex SHA-256 of a raw Ed25519 public key: its keyid.
pub(crate) fn ed25519_keyid(public: &ed25519_dalek::VerifyingKey) -> String {
    hex::encode(Sha256::digest(public.as_bytes()))
}

#[derive(Clone)]
pub(crate) enum Secret {
    Ed25519(ed25519_dalek::SigningKey),
    Hmac(HmacSecret),
}

/// A key that signs envelopes: Ed25519 or HMAC-SHA256, with its keyid. `Debug` shows the kind and keyid,
/// never the secret.
#[derive(Clone)]
pub struct SigningKey {
    secret: Secret,
    keyid: String,
}

impl SigningKey {
    /// A new key of `kind` from the operating system's random source.
    pub fn generate(kind: KeyKind) -> Result<SigningKey, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|source| KeyError::Random { source })?;
        Ok(match kind {
            KeyKind::Ed25519 => SigningKey::from_ed25519_seed(&seed),
            KeyKind::HmacSha256 => SigningKey::from_secret(Secret::Hmac(HmacSecret(Zeroizing::new(seed.to_vec())))),
        })
    }

    /// The Ed25519 key of a 32-byte seed (the RFC 8032 private key).
    pub fn from_ed25519_seed(seed: &[u8; 32]) -> SigningKey {
        SigningKey::from_secret(Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed)))
    }

    /// The HMAC-SHA256 key of a shared secret of at least [`MIN_HMAC_SECRET_BYTES`].
    pub fn from_hmac_secret(secret: &[u8]) -> Result<SigningKey, InvalidKey> {
        Ok(SigningKey::from_secret(Secret::Hmac(HmacSecret::new(secret)?)))
    }

    pub(crate) fn from_secret(secret: Secret) -> SigningKey {
        let keyid = match &secret {
            Secret::Ed25519(key) => ed25519_keyid(&key.verifying_key()),
            Secret::Hmac(secret) => secret.keyid(),
        };
        SigningKey { secret, keyid }
    }

    pub(crate) fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The kind of key.
    pub fn kind(&self) -> KeyKind {
        match self.secret {
            Secret::Ed25519(_) => KeyKind::Ed25519,
            Secret::Hmac(_) => KeyKind::HmacSha256,
        }
    }

    /// The keyid written on every signature (see the module documentation for the rules).
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// True for HMAC keys, whose signatures prove integrity only.
    pub fn integrity_only(&self) -> bool {
        self.kind().integrity_only()
    }

    /// The key that verifies this key's signatures: the public key (Ed25519) or the secret itself (HMAC).
    pub fn trusted_key(&self) -> TrustedKey {
        match &self.secret {
            Secret::Ed25519(key) => TrustedKey::ed25519(key.verifying_key()),
            Secret::Hmac(secret) => TrustedKey::hmac(secret.clone()),
        }
    }

    /// The raw signature of `message` (deterministic for both kinds).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.secret {
            Secret::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            Secret::Hmac(secret) => secret.mac().chain_update(message).finalize().into_bytes().to_vec(),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kind", &self.kind()).field("keyid", &self.keyid).finish_non_exhaustive()
    }
}
