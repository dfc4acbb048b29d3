//! Signed collector configs: a profile's YAML as the payload of a DSSE envelope (payload type
//! [`CONFIG_YAML`]), kept beside the file it signs as `<file>.dsse.json`.
//!
//! `stella telemetry deploy` writes `collector.yaml` and `collector.yaml.dsse.json`; `serve --config-dir`
//! runs `collector.yaml` only if the envelope verifies with a trusted key and its payload is that file's
//! exact bytes.
use std::path::{Path, PathBuf};

use crate::dsse::{DsseError, MAX_ENVELOPE_BYTES, Signer};
use crate::payload_types::CONFIG_YAML;
use crate::{Envelope, ErrorClass, SigningKey, TrustStore};

/// The config file a config directory holds.
pub const CONFIG_FILE: &str = "collector.yaml";
/// Its envelope.
pub const CONFIG_ENVELOPE_FILE: &str = "collector.yaml.dsse.json";

/// Why a signed config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigBundleError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The envelope did not verify (or is not a config envelope).
    #[error("{}: {source}", path.display())]
    Envelope {
        /// The envelope file.
        path: PathBuf,
        /// Why.
        #[source]
        source: DsseError,
    },
    /// The config file is not what was signed.
    #[error("{} differs from the payload its envelope {} signs; deploy the config again (stella telemetry deploy)", config.display(), envelope.display())]
    Mismatch {
        /// The config file.
        config: PathBuf,
        /// The envelope.
        envelope: PathBuf,
    },
}

impl ConfigBundleError {
    /// The failure class (and so the stable code and exit code).
    pub fn class(&self) -> ErrorClass {
        match self {
            ConfigBundleError::Read { .. } => ErrorClass::Io,
            ConfigBundleError::Envelope { source, .. } => source.class(),
            ConfigBundleError::Mismatch { .. } => ErrorClass::DigestMismatch,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.class().code()
    }
}

/// The envelope of `yaml`, signed with `key`, as RFC 8785 JSON.
pub fn sign(yaml: &[u8], key: &SigningKey) -> Vec<u8> {
    Envelope::sign(CONFIG_YAML, yaml, key).to_json()
}

/// Verifies `envelope_json` (read from `envelope`) and returns the signed YAML and its signer.
pub fn open(envelope_json: &[u8], envelope: &Path, trust: &TrustStore) -> Result<(Vec<u8>, Signer), ConfigBundleError> {
    let failed = |source| ConfigBundleError::Envelope { path: envelope.to_path_buf(), source };
    let verified =
        Envelope::from_json(envelope_json).and_then(|parsed| parsed.verify(trust, CONFIG_YAML)).map_err(failed)?;
    Ok((verified.payload, verified.signer))
}

/// Verifies `dir/collector.yaml` against `dir/collector.yaml.dsse.json`: the signer, when it is trusted
/// and the file is exactly what it signed.
pub fn verify_dir(dir: &Path, trust: &TrustStore) -> Result<Signer, ConfigBundleError> {
    let (config, envelope) = (dir.join(CONFIG_FILE), dir.join(CONFIG_ENVELOPE_FILE));
    let read = |path: &Path, limit: u64| -> Result<Vec<u8>, ConfigBundleError> {
        use std::io::Read;
        let error = |source| ConfigBundleError::Read { path: path.to_path_buf(), source };
        let mut bytes = Vec::new();
        std::fs::File::open(path).map_err(error)?.take(limit).read_to_end(&mut bytes).map_err(error)?;
        Ok(bytes)
    };
    let (payload, signer) = open(&read(&envelope, MAX_ENVELOPE_BYTES as u64)?, &envelope, trust)?;
    if read(&config, payload.len() as u64 + 1)? != payload {
        return Err(ConfigBundleError::Mismatch { config, envelope });
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyKind;

    #[test]
    fn a_config_dir_verifies_only_with_a_trusted_key_and_the_signed_bytes() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let key = SigningKey::from_ed25519_seed(&[7; 32]);
        let yaml = b"exporters:\n  store: {}\n";
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.path().join(name), bytes).unwrap_or_else(|error| panic!("{error}"))
        };
        write(CONFIG_FILE, yaml);
        write(CONFIG_ENVELOPE_FILE, &sign(yaml, &key));
        let trust = TrustStore::from_iter([key.trusted_key()]);
        assert_eq!(verify_dir(dir.path(), &trust).ok().map(|signer| signer.keyid), Some(key.keyid().to_string()));

        let stranger = SigningKey::generate(KeyKind::Ed25519).unwrap_or_else(|error| panic!("{error}"));
        let untrusted = verify_dir(dir.path(), &TrustStore::from_iter([stranger.trusted_key()]));
        assert_eq!(untrusted.err().map(|error| error.class()), Some(ErrorClass::UntrustedKey));

        write(CONFIG_FILE, b"exporters:\n  nop: {}\n");
        let changed = verify_dir(dir.path(), &trust);
        assert_eq!(changed.err().map(|error| error.code()), Some("bundle.digest_mismatch"));

        let manifest = Envelope::sign(crate::payload_types::BUNDLE_MANIFEST, yaml, &key).to_json();
        write(CONFIG_ENVELOPE_FILE, &manifest);
        write(CONFIG_FILE, yaml);
        let wrong_type = verify_dir(dir.path(), &trust);
        assert_eq!(wrong_type.err().map(|error| error.class()), Some(ErrorClass::PayloadType));
    }
}
