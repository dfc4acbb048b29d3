use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use stella_otlp::Signal;

/// Compression of request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpCompression {
    /// gzip (the default, as upstream).
    #[default]
    Gzip,
    /// zstd (gRPC only; `otlphttp` sends gzip instead).
    Zstd,
    /// No compression.
    None,
}

/// `exporters.otlp` and `exporters.otlphttp`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The backend: `http://host:4317` for gRPC; the base URL for HTTP (`/v1/<signal>` is appended).
    pub endpoint: String,
    /// HTTP only: a full URL for traces instead of `<endpoint>/v1/traces`.
    #[serde(default)]
    pub traces_endpoint: Option<String>,
    /// HTTP only: a full URL for metrics.
    #[serde(default)]
    pub metrics_endpoint: Option<String>,
    /// HTTP only: a full URL for logs.
    #[serde(default)]
    pub logs_endpoint: Option<String>,
    /// Headers (gRPC metadata) sent with every request, e.g. an `authorization` token.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `gzip` (default), `zstd` (gRPC) or `none`.
    #[serde(default)]
    pub compression: OtlpCompression,
    /// How long one request may take. Default 10s.
    #[serde(default = "default_timeout", deserialize_with = "crate::otlp::config::duration")]
    pub timeout: Duration,
    /// TLS towards the backend (for `https://` endpoints).
    #[serde(default)]
    pub tls: ClientTls,
}

/// `exporters.<otlp|otlphttp>.tls`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// CA certificates (PEM) that sign the backend's certificate; absent: the system's roots.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Our client certificate (PEM), for backends that require mTLS.
    #[serde(default)]
    pub cert_file: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub key_file: Option<std::path::PathBuf>,
}

/// The PEM contents a [`ClientTls`] names.
#[derive(Debug, Default)]
pub struct TlsMaterial {
    /// CA certificates.
    pub ca: Option<Vec<u8>>,
    /// The client certificate chain and its key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Reads the files.
    pub fn load(&self) -> Result<TlsMaterial, String> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))
        };
        let ca = self.ca_file.as_deref().map(read).transpose()?;
        let identity = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            (None, None) => None,
            _ => return Err("cert_file and key_file go together; set both or neither".into()),
        };
        Ok(TlsMaterial { ca, identity })
    }
}

/// 10s: how long one request to a backend may take unless configured.
pub(crate) fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    let signed: jiff::SignedDuration = text.trim().parse().map_err(|error| {
        serde::de::Error::custom(format!("invalid duration {text:?} ({error}); write it like 5s or 500ms"))
    })?;
    Duration::try_from(signed)
        .map_err(|_| serde::de::Error::custom(format!("invalid duration {text:?}: must not be negative")))
}

impl OtlpConfig {
    /// The URL an HTTP exporter posts `signal` to.
    pub fn http_url(&self, signal: Signal) -> String {
        let explicit = match signal {
            Signal::Traces => &self.traces_endpoint,
            Signal::Metrics => &self.metrics_endpoint,
            Signal::Logs => &self.logs_endpoint,
        };
        explicit.clone().unwrap_or_else(|| format!("{}/v1/{signal}", self.endpoint.trim_end_matches('/')))
    }

    /// Every endpoint this exporter may connect to (for the egress policy).
    pub fn endpoints(&self) -> Vec<&str> {
        let mut endpoints = vec![self.endpoint.as_str()];
        endpoints.extend(
            [&self.traces_endpoint, &self.metrics_endpoint, &self.logs_endpoint]
                .into_iter()
                .flatten()
                .map(String::as_str),
        );
        endpoints
    }
}

/// `true`, for serde defaults.
pub(crate) fn yes() -> bool {
    true
}

/// 3: attempts after the first when a push endpoint answers 500, unless configured.
pub(crate) fn default_server_error_retries() -> u32 {
    3
}
