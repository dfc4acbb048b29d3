use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use hmac::Mac;

use super::error::KeyError;
use super::pem::{KeyFile, read_key_file};
use super::signing_key::{HmacSecret, KeyKind, ed25519_keyid};

#[derive(Clone)]
enum Verifier {
    Ed25519(ed25519_dalek::VerifyingKey),
    Hmac(HmacSecret),
}

/// A key that verification accepts: an Ed25519 public key or an HMAC secret, with its keyid. `Debug` shows
/// the kind and keyid, never a secret.
#[derive(Clone)]
pub struct TrustedKey {
    verifier: Verifier,
    keyid: String,
}

impl TrustedKey {
    pub(crate) fn ed25519(public: ed25519_dalek::VerifyingKey) -> TrustedKey {
        TrustedKey { keyid: ed25519_keyid(&public), verifier: Verifier::Ed25519(public) }
    }

    pub(crate) fn hmac(secret: HmacSecret) -> TrustedKey {
        TrustedKey { keyid: secret.keyid(), verifier: Verifier::Hmac(secret) }
    }

    /// Reads a public key (`PUBLIC KEY`, Ed25519 SPKI) or an HMAC secret file; refuses a private key.
    pub fn load(path: &Path) -> Result<TrustedKey, KeyError> {
        match read_key_file(path)? {
            KeyFile::Ed25519Public(public) => Ok(TrustedKey::ed25519(public)),
            KeyFile::Hmac(secret) => Ok(TrustedKey::hmac(secret)),
            KeyFile::Ed25519Private(_) => Err(KeyError::PrivateKeyNotTrusted { path: path.to_path_buf() }),
        }
    }

    /// The keyid signatures name this key by.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// The kind of key.
    pub fn kind(&self) -> KeyKind {
        match self.verifier {
            Verifier::Ed25519(_) => KeyKind::Ed25519,
            Verifier::Hmac(_) => KeyKind::HmacSha256,
        }
    }

    /// True for HMAC keys, whose signatures prove integrity only.
    pub fn integrity_only(&self) -> bool {
        self.kind().integrity_only()
    }

    /// Whether `signature` is this key's signature of `message`: strict RFC 8032 verification for Ed25519
    /// (no malleable or small-order forms), a constant-time tag comparison for HMAC.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.verifier {
            Verifier::Ed25519(public) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| public.verify_strict(message, &signature).is_ok()),
            Verifier::Hmac(secret) => secret.mac().chain_update(message).verify_slice(signature).is_ok(),
        }
    }
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKey").field("kind", &self.kind()).field("keyid", &self.keyid).finish()
    }
}

/// The keys verification accepts, looked up by keyid.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: BTreeMap<String, TrustedKey>,
}

impl TrustStore {
    /// Reads every file of `paths` with [`TrustedKey::load`]; the first bad file stops it, named in the error.
    pub fn from_files<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<TrustStore, KeyError> {
        let mut store = TrustStore::default();
        for path in paths {
            store.insert(TrustedKey::load(path.as_ref())?);
        }
        Ok(store)
    }

    /// Adds a key (a key already present under the same keyid is the same key).
    pub fn insert(&mut self, key: TrustedKey) {
        self.keys.insert(key.keyid.clone(), key);
    }

    /// The key with `keyid`, if trusted.
    pub fn get(&self, keyid: &str) -> Option<&TrustedKey> {
        self.keys.get(keyid)
    }

    /// Every trusted key, by keyid.
    pub fn keys(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.values()
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is trusted (every verification then fails with an untrusted key).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl FromIterator<TrustedKey> for TrustStore {
    fn from_iter<I: IntoIterator<Item = TrustedKey>>(keys: I) -> Self {
        let mut store = TrustStore::default();
        for key in keys {
            store.insert(key);
        }
        store
    }
}
