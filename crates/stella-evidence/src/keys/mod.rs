//! Signing keys, their files and the trust store.
//!
//! Two kinds of key:
//!
//! | kind | signature | keyid | proves |
//! |---|---|---|---|
//! | Ed25519 (default) | 64 bytes, RFC 8032 | hex SHA-256 of the raw 32-byte public key | who signed, and that nothing changed |
//! | HMAC-SHA256 | 32 bytes, RFC 2104 | hex SHA-256 of `"stella-evidence hmac-sha256 keyid v1\n"` then the secret | only that nothing changed (integrity-only) |
//!
//! The HMAC keyid hashes the secret behind a fixed prefix, so it names the key without revealing it (the
//! secret is at least 32 random bytes) and can never equal the digest of the secret itself.
//!
//! Files, all PEM (RFC 7468) with LF line endings; the label tells what a file holds:
//!
//! ```text
//! <dir>/signing-key.pem       0600  -----BEGIN PRIVATE KEY-----             PKCS#8 v1, Ed25519 (RFC 8410)
//!                                   or -----BEGIN STELLA HMAC SHA256 KEY-----  the raw secret, base64
//! <dir>/signing-key.pub.pem   0644  -----BEGIN PUBLIC KEY-----              SPKI, Ed25519 (Ed25519 only)
//! ```
//!
//! Both Ed25519 files are what `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` read and
//! write. Key files are written to a temporary file, given their mode, synced and then renamed into place
//! without replacing an existing file, so a crash never leaves a half-written key and a key is never
//! overwritten.
//!
//! A [`TrustStore`] holds the keys verification accepts: Ed25519 public keys, and HMAC secrets (which are
//! both the signing and the verifying key). A private Ed25519 key is refused as a trusted key, so private
//! keys are not copied around to verify.
mod error;
mod files;
mod pem;
mod signing_key;
mod trust_store;

pub use error::{InvalidKey, KeyError};
pub use files::{KeyFiles, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE};
pub use signing_key::{KeyKind, MIN_HMAC_SECRET_BYTES, SigningKey, UnknownKeyKind};
pub use trust_store::{TrustStore, TrustedKey};
