use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::otlp::ClientTls;

/// `exporters.prometheusremotewrite`: metrics to a Prometheus remote-write 1.0 receiver (Prometheus with
/// `--web.enable-remote-write-receiver`, Mimir, Thanos receive, VictoriaMetrics).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The full write URL, e.g. `http://127.0.0.1:9090/api/v1/write`.
    pub endpoint: String,
    /// Headers sent with every request (an `authorization` token, `X-Scope-OrgID` for Mimir).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How long one request may take. Default 10s.
    #[serde(default = "crate::otlp::config::default_timeout", deserialize_with = "crate::otlp::config::duration")]
    pub timeout: Duration,
    /// TLS towards the receiver (for `https://` endpoints).
    #[serde(default)]
    pub tls: ClientTls,
    /// A prefix for every metric name (`<namespace>_<name>`); none by default.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Unit and `_total` suffixes on metric names (default true, as the compatibility spec says).
    #[serde(default = "crate::otlp::config::yes")]
    pub add_metric_suffixes: bool,
    /// Attempts after the first when the receiver answers 500 (or another non-transient 5xx) before the
    /// batch is dropped and counted. Default 3.
    #[serde(default = "crate::otlp::config::default_server_error_retries")]
    pub max_server_error_retries: u32,
}
