use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::otlp::ClientTls;

/// How the push body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LokiFormat {
    /// `PushRequest` protobuf, snappy block format (the default, as Promtail and the Collector).
    #[default]
    Protobuf,
    /// `{"streams":[...]}` JSON.
    Json,
}

/// `exporters.loki`: logs to Grafana Loki's push API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LokiConfig {
    /// The push URL, e.g. `http://127.0.0.1:3100/loki/api/v1/push`.
    pub endpoint: String,
    /// Headers sent with every request (`X-Scope-OrgID` for a multi-tenant Loki, authorization).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How long one request may take. Default 10s.
    #[serde(default = "crate::otlp::config::default_timeout", deserialize_with = "crate::otlp::config::duration")]
    pub timeout: Duration,
    /// TLS towards Loki (for `https://` endpoints).
    #[serde(default)]
    pub tls: ClientTls,
    /// `protobuf` (default) or `json`.
    #[serde(default)]
    pub format: LokiFormat,
    /// Resource attributes that become stream labels (as label names: `service.name` -> `service_name`);
    /// every other attribute goes into structured metadata. Default `service.name`,
    /// `deployment.environment`.
    #[serde(default = "default_stream_attributes")]
    pub stream_attributes: Vec<String>,
    /// Whether the record's severity is a `severity` stream label (default true).
    #[serde(default = "crate::otlp::config::yes")]
    pub severity_label: bool,
    /// Attempts after the first when Loki answers 500 (or another non-transient 5xx) before the batch
    /// is dropped and counted. Default 3.
    #[serde(default = "crate::otlp::config::default_server_error_retries")]
    pub max_server_error_retries: u32,
}

fn default_stream_attributes() -> Vec<String> {
    stella_otlp::loki::StreamLabels::default().stream_attributes
}
