//! TLS and mTLS for every listener (receivers and the API): rustls with the ring provider, TLS 1.2
//! minimum, client certificates required when `client_ca_file` is set, and certificates re-read when
//! their files change, without a restart (a broken new file is reported and the old certificate stays).
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_util::sync::CancellationToken;

/// `tls:` of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `cert_file`: the certificate chain (PEM).
    pub cert_file: PathBuf,
    /// `key_file`: its private key (PEM).
    pub key_file: PathBuf,
    /// `client_ca_file`: CAs whose client certificates are accepted; set means mTLS (a certificate is required).
    pub client_ca_file: Option<PathBuf>,
    /// `min_version`: `1.2` (default) or `1.3`.
    pub tls13_only: bool,
}

/// Why a TLS setting could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TlsError {
    /// The setting (`cert_file`, `key_file`, `client_ca_file`).
    pub key: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Certificate and key files larger than this are refused (a path such as /dev/zero must not hang us).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

fn read(path: &Path, key: &'static str) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let failed = |error: std::io::Error| TlsError { key, message: format!("cannot read {}: {error}", path.display()) };
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|file| file.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes)).map_err(failed)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError {
            key,
            message: format!("{} is larger than {MAX_PEM_BYTES} bytes; is it a PEM file?", path.display()),
        });
    }
    Ok(bytes)
}

impl TlsSettings {
    /// Reads the files and builds the rustls configuration (ALPN h2 and http/1.1).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let cert_pem = read(&self.cert_file, "cert_file")?;
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&cert_pem).collect::<Result<_, _>>().map_err(|error| TlsError {
                key: "cert_file",
                message: format!("{}: not PEM certificates: {error}", self.cert_file.display()),
            })?;
        if certs.is_empty() {
            return Err(TlsError {
                key: "cert_file",
                message: format!("{} holds no certificate", self.cert_file.display()),
            });
        }
        let key_pem = read(&self.key_file, "key_file")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| TlsError {
            key: "key_file",
            message: format!("{}: no PEM private key: {error}", self.key_file.display()),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS12, &rustls::version::TLS13]
        };
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .map_err(|error| TlsError { key: "min_version", message: error.to_string() })?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let pem = read(path, "client_ca_file")?;
                let mut roots = RootCertStore::empty();
                for certificate in CertificateDer::pem_slice_iter(&pem) {
                    let certificate = certificate.map_err(|error| TlsError {
                        key: "client_ca_file",
                        message: format!("{}: {error}", path.display()),
                    })?;
                    roots.add(certificate).map_err(|error| TlsError {
                        key: "client_ca_file",
                        message: format!("{}: {error}", path.display()),
                    })?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().map_err(
                    |error| TlsError { key: "client_ca_file", message: format!("{}: {error}", path.display()) },
                )?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|error| TlsError {
            key: "key_file",
            message: format!("the key does not fit the certificate: {error}"),
        })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn files(&self) -> Vec<&Path> {
        let mut files = vec![self.cert_file.as_path(), self.key_file.as_path()];
        files.extend(self.client_ca_file.as_deref());
        files
    }
}

/// The TLS configuration a listener uses now, swapped when the certificate files change.
pub struct ReloadingTls {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
}

fn stamps(files: &[&Path]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|path| {
            std::fs::metadata(path).ok().map(|meta| (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len()))
        })
        .collect()
}

impl ReloadingTls {
    /// Loads `settings` and watches its files every `interval` until `stop`.
    pub fn start(
        settings: TlsSettings,
        interval: Duration,
        stop: CancellationToken,
        listener: String,
    ) -> Result<Arc<Self>, TlsError> {
        let config = settings.server_config()?;
        let tls = Arc::new(ReloadingTls { settings, current: RwLock::new(config) });
        let watched = Arc::clone(&tls);
        tokio::spawn(async move {
            let mut last = stamps(&watched.settings.files());
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                let now = stamps(&watched.settings.files());
                if now == last {
                    continue;
                }
                last = now;
                match watched.settings.server_config() {
                    Ok(config) => {
                        *watched.current.write().unwrap_or_else(|poison| poison.into_inner()) = config;
                        tracing::info!(listener = %listener, "TLS certificate reloaded");
                    }
                    Err(error) => {
                        tracing::warn!(listener = %listener, %error, "new TLS files are unusable; keeping the previous certificate")
                    }
                }
            }
        });
        Ok(tls)
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.current.read().unwrap_or_else(|poison| poison.into_inner())))
    }
}
