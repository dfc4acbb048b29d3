//! The PEM forms of key files; the label decides what a file holds.
use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::{self, LineEnding};
use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use zeroize::Zeroizing;

use super::error::{InvalidKey, KeyError, io};
use super::signing_key::{HmacSecret, Secret, SigningKey};

/// PKCS#8 private key (RFC 5208 / RFC 8410 for Ed25519).
const PRIVATE_LABEL: &str = "PRIVATE KEY";
/// SubjectPublicKeyInfo (RFC 5280 / RFC 8410 for Ed25519).
const PUBLIC_LABEL: &str = "PUBLIC KEY";
/// Ours: the raw HMAC secret (no hyphen: the strict RFC 7468 decoder refuses hyphens in labels).
const HMAC_LABEL: &str = "STELLA HMAC SHA256 KEY";

/// What a key file holds.
pub(crate) enum KeyFile {
    Ed25519Private(ed25519_dalek::SigningKey),
    Ed25519Public(ed25519_dalek::VerifyingKey),
    Hmac(HmacSecret),
}

/// Reads and decodes the key file at `path`.
pub(crate) fn read_key_file(path: &Path) -> Result<KeyFile, KeyError> {
    let text = Zeroizing::new(std::fs::read(path).map_err(io("read", path))?);
    parse_key_file(&text).map_err(|source| KeyError::Invalid { path: path.to_path_buf(), source })
}

/// Decodes a PEM key of any kind.
pub(crate) fn parse_key_file(text: &[u8]) -> Result<KeyFile, InvalidKey> {
    let (label, der) = pem::decode_vec(text).map_err(|source| InvalidKey::Pem { source })?;
    let der = Zeroizing::new(der);
    match label {
        PRIVATE_LABEL => ed25519_dalek::SigningKey::from_pkcs8_der(&der)
            .map(KeyFile::Ed25519Private)
            .map_err(|source| InvalidKey::PrivateKey { source }),
        PUBLIC_LABEL => ed25519_dalek::VerifyingKey::from_public_key_der(&der)
            .map(KeyFile::Ed25519Public)
            .map_err(|source| InvalidKey::PublicKey { source }),
        HMAC_LABEL => HmacSecret::new(&der).map(KeyFile::Hmac),
        other => Err(InvalidKey::Label { label: other.to_string() }),
    }
}

/// The private file of `key`: PKCS#8 PEM (Ed25519) or the HMAC secret PEM.
pub(crate) fn private_key_pem(key: &SigningKey) -> Zeroizing<String> {
    // Both encoders only fail on lengths far beyond a 32-byte key, so they cannot fail here.
    match key.secret() {
        // PKCS#8 v1, the seed alone (RFC 8410 section 7), as `openssl genpkey` writes it: OpenSSL 3.0 cannot
        // read the v2 form (with the public key) that ed25519-dalek writes by default.
        Secret::Ed25519(key) => KeypairBytes { secret_key: key.to_bytes(), public_key: None }
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an Ed25519 key always encodes as PKCS#8"),
        Secret::Hmac(secret) => Zeroizing::new(
            pem::encode_string(HMAC_LABEL, LineEnding::LF, secret.bytes()).expect("a short secret always encodes"),
        ),
    }
}

/// The public file of an Ed25519 key: SPKI PEM.
pub(crate) fn public_key_pem(public: &ed25519_dalek::VerifyingKey) -> String {
    public.to_public_key_pem(LineEnding::LF).expect("an Ed25519 public key always encodes as SPKI")
}

impl SigningKey {
    /// Reads a private key file of either kind (the PEM label decides); a public key file is refused.
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let secret = match read_key_file(path)? {
            KeyFile::Ed25519Private(key) => Secret::Ed25519(key),
            KeyFile::Hmac(secret) => Secret::Hmac(secret),
            KeyFile::Ed25519Public(_) => {
                return Err(KeyError::Invalid {
                    path: path.to_path_buf(),
                    source: InvalidKey::Label { label: PUBLIC_LABEL.to_string() },
                });
            }
        };
        Ok(SigningKey::from_secret(secret))
    }

    /// The SPKI PEM of an Ed25519 key's public key; `None` for HMAC keys, which have no public part.
    pub fn public_key_pem(&self) -> Option<String> {
        match self.secret() {
            Secret::Ed25519(key) => Some(public_key_pem(&key.verifying_key())),
            Secret::Hmac(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_pem() {
        let ed25519 = SigningKey::from_ed25519_seed(&[9; 32]);
        let Ok(KeyFile::Ed25519Private(decoded)) = parse_key_file(private_key_pem(&ed25519).as_bytes()) else {
            panic!("the private key does not decode")
        };
        assert_eq!(SigningKey::from_secret(Secret::Ed25519(decoded)).keyid(), ed25519.keyid());
        let public = ed25519.public_key_pem().unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(matches!(parse_key_file(public.as_bytes()), Ok(KeyFile::Ed25519Public(_))));

        let hmac = SigningKey::from_hmac_secret(&[3; 32]).unwrap();
        let text = private_key_pem(&hmac);
        assert!(text.starts_with("-----BEGIN STELLA HMAC SHA256 KEY-----\n"));
        let Ok(KeyFile::Hmac(secret)) = parse_key_file(text.as_bytes()) else { panic!("the secret does not decode") };
        assert_eq!(secret.bytes(), [3; 32]);
        assert_eq!(hmac.public_key_pem(), None);
    }

    #[test]
    fn ed25519_private_keys_are_written_as_pkcs8_v1_and_v2_is_read_too() {
        let key = SigningKey::from_ed25519_seed(&[9; 32]);
        let (_, der) = pem::decode_vec(private_key_pem(&key).as_bytes()).unwrap();
        assert_eq!(der.len(), 48, "v1: version 0, algorithm, seed; no public key");
        assert_eq!(der[..5], [0x30, 0x2e, 0x02, 0x01, 0x00]);
        let Secret::Ed25519(inner) = key.secret() else { unreachable!() };
        let version_2 = inner.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert!(matches!(parse_key_file(version_2.as_bytes()), Ok(KeyFile::Ed25519Private(_))));
    }

    #[test]
    fn unknown_labels_short_secrets_and_garbage_are_refused() {
        let certificate = pem::encode_string("CERTIFICATE", LineEnding::LF, b"x").unwrap();
        assert!(matches!(parse_key_file(certificate.as_bytes()), Err(InvalidKey::Label { .. })));
        let short = pem::encode_string(HMAC_LABEL, LineEnding::LF, &[1; 16]).unwrap();
        assert!(matches!(parse_key_file(short.as_bytes()), Err(InvalidKey::HmacTooShort { len: 16, .. })));
        assert!(matches!(parse_key_file(b"not pem"), Err(InvalidKey::Pem { .. })));
        let wrong_body = pem::encode_string(PRIVATE_LABEL, LineEnding::LF, b"junk").unwrap();
        assert!(matches!(parse_key_file(wrong_body.as_bytes()), Err(InvalidKey::PrivateKey { .. })));
    }
}
