#![allow(clippy::unwrap_used)]
//! Key files: modes, round trips of both kinds, the server's generate-once key and errors naming the file.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use stella_evidence::dsse::{DsseError, Envelope};
use stella_evidence::keys::{KeyError, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE};
use stella_evidence::{KeyKind, SigningKey, TrustStore, TrustedKey};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn an_ed25519_pair_is_written_with_private_0600_and_public_0644_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(KeyKind::Ed25519).unwrap();
    let files = key.write_files(&dir.path().join("keys")).unwrap();
    assert_eq!(files.private_key, dir.path().join("keys").join(PRIVATE_KEY_FILE));
    assert_eq!(mode(&files.private_key), 0o600);
    let public_key = files.public_key.unwrap();
    assert_eq!(public_key, dir.path().join("keys").join(PUBLIC_KEY_FILE));
    assert_eq!(mode(&public_key), 0o644);
    assert!(std::fs::read_to_string(&files.private_key).unwrap().starts_with("-----BEGIN PRIVATE KEY-----\n"));

    let loaded = SigningKey::load(&files.private_key).unwrap();
    assert_eq!(loaded.keyid(), key.keyid());
    let trust = TrustStore::from_files([&public_key]).unwrap();
    let envelope = Envelope::from_json(&Envelope::sign("t", b"payload", &loaded).to_json()).unwrap();
    let verified = envelope.verify(&trust, "t").unwrap();
    assert_eq!((verified.payload.as_slice(), verified.signer.integrity_only), (&b"payload"[..], false));
}

#[test]
fn an_hmac_secret_is_one_0600_file_and_verifies_as_integrity_only() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(KeyKind::HmacSha256).unwrap();
    let files = key.write_files(dir.path()).unwrap();
    assert_eq!(files.public_key, None);
    assert_eq!(mode(&files.private_key), 0o600);
    let text = std::fs::read_to_string(&files.private_key).unwrap();
    assert!(text.starts_with("-----BEGIN STELLA HMAC SHA256 KEY-----\n"), "{text}");

    let loaded = SigningKey::load(&files.private_key).unwrap();
    assert_eq!((loaded.kind(), loaded.keyid()), (KeyKind::HmacSha256, key.keyid()));
    let trust = TrustStore::from_files([&files.private_key]).unwrap();
    let verified = Envelope::sign("t", b"payload", &loaded).verify(&trust, "t").unwrap();
    assert!(verified.signer.integrity_only);
    assert_eq!(trust.get(key.keyid()).unwrap().kind(), KeyKind::HmacSha256);
}

#[test]
fn the_hmac_keyid_is_not_the_digest_of_the_secret() {
    let secret = [0x42; 32];
    let key = SigningKey::from_hmac_secret(&secret).unwrap();
    assert_eq!(key.keyid().len(), 64);
    assert_ne!(key.keyid(), hex::encode(<sha2::Sha256 as sha2::Digest>::digest(secret)));
    assert!(!key.keyid().contains(&hex::encode(secret)));
    assert!(SigningKey::from_hmac_secret(&[1; 31]).is_err(), "short secrets are refused");
}

#[test]
fn debug_output_never_shows_a_secret() {
    let key = SigningKey::from_hmac_secret(&[0xab; 32]).unwrap();
    for text in [format!("{key:?}"), format!("{:?}", key.trusted_key())] {
        assert!(text.contains(key.keyid()) && !text.contains("171, 171") && !text.contains("abab"), "{text}");
    }
}

#[test]
fn the_server_key_is_generated_once_then_reused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("data/keys");
    let first = SigningKey::load_or_generate(&keys).unwrap();
    assert_eq!(first.kind(), KeyKind::Ed25519);
    assert_eq!(mode(&keys), 0o700);
    let second = SigningKey::load_or_generate(&keys).unwrap();
    assert_eq!(first.keyid(), second.keyid());
    assert!(matches!(first.write_files(&keys), Err(KeyError::Exists { .. })), "an existing key is never replaced");
}

#[test]
fn bad_trusted_key_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(KeyKind::Ed25519).unwrap();
    let files = key.write_files(dir.path()).unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let missing = dir.path().join("missing.pem");

    let error = TrustStore::from_files([&files.private_key]).unwrap_err();
    assert!(matches!(error, KeyError::PrivateKeyNotTrusted { .. }), "{error}");
    for (path, code) in
        [(&files.private_key, "keys.private_key_not_trusted"), (&garbage, "keys.invalid"), (&missing, "keys.io")]
    {
        let error = TrustedKey::load(path).unwrap_err();
        assert_eq!(error.code(), code);
        assert!(error.to_string().contains(&path.display().to_string()), "{error}");
    }
    let error = SigningKey::load(&files.public_key.unwrap()).unwrap_err();
    assert_eq!(error.code(), "keys.invalid", "a public key cannot sign: {error}");
}

#[test]
fn a_key_outside_the_trust_store_is_untrusted() {
    let signer = SigningKey::generate(KeyKind::Ed25519).unwrap();
    let other = SigningKey::generate(KeyKind::Ed25519).unwrap();
    let trust = TrustStore::from_iter([other.trusted_key()]);
    let error = Envelope::sign("t", b"x", &signer).verify(&trust, "t").unwrap_err();
    assert!(matches!(&error, DsseError::UntrustedKey { keyids } if keyids == &[signer.keyid().to_string()]));
    assert_eq!(error.code(), "dsse.untrusted_key");
}
