use std::path::PathBuf;

/// A key file could not be read, written or understood. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading, writing or creating a key file or directory failed.
    #[error("cannot {action} key file {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a usable key.
    #[error("key file {path} is not usable: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        #[source]
        source: InvalidKey,
    },
    /// A private key was given as a trusted key.
    #[error("key file {path} is a private key; trust its public key (signing-key.pub.pem) instead")]
    PrivateKeyNotTrusted {
        /// The file.
        path: PathBuf,
    },
    /// Writing would replace an existing key file.
    #[error("key file {path} already exists; remove it or write the new key elsewhere")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The operating system's random number generator failed.
    #[error("cannot generate a key: the operating system's random source failed: {source}")]
    Random {
        /// The generator's error.
        #[source]
        source: getrandom::Error,
    },
}

impl KeyError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::Io { .. } => "keys.io",
            KeyError::Invalid { .. } => "keys.invalid",
            KeyError::PrivateKeyNotTrusted { .. } => "keys.private_key_not_trusted",
            KeyError::Exists { .. } => "keys.exists",
            KeyError::Random { .. } => "keys.random",
        }
    }
}

/// What is wrong with the content of a key (file or bytes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidKey {
    /// The text is not PEM.
    #[error("not a PEM file: {source}")]
    Pem {
        /// The decoder's error.
        #[source]
        source: ed25519_dalek::pkcs8::spki::der::pem::Error,
    },
    /// The PEM label is none of the key kinds.
    #[error("PEM label {label:?} is not PRIVATE KEY, PUBLIC KEY or STELLA HMAC SHA256 KEY")]
    Label {
        /// The label found.
        label: String,
    },
    /// A `PRIVATE KEY` that is not an Ed25519 PKCS#8 key.
    #[error("not an Ed25519 PKCS#8 private key: {source}")]
    PrivateKey {
        /// The decoder's error.
        #[source]
        source: ed25519_dalek::pkcs8::Error,
    },
    /// A `PUBLIC KEY` that is not an Ed25519 SPKI key.
    #[error("not an Ed25519 public key: {source}")]
    PublicKey {
        /// The decoder's error.
        #[source]
        source: ed25519_dalek::pkcs8::spki::Error,
    },
    /// An HMAC secret shorter than [`MIN_HMAC_SECRET_BYTES`](super::MIN_HMAC_SECRET_BYTES).
    #[error("HMAC secret is {len} bytes; use at least {min} random bytes (stella telemetry keys generate --kind hmac)")]
    HmacTooShort {
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
}

/// Wraps an I/O error of `action` on `path`.
pub(crate) fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> KeyError + use<> {
    let path = path.to_path_buf();
    move |source| KeyError::Io { action, path, source }
}
