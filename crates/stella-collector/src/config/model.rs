use std::collections::BTreeMap;
use std::net::SocketAddr;

use stella_export::egress::EgressPolicy;
use stella_otlp::Signal;
use stella_pipeline::batch::BatchConfig;
use stella_pipeline::resource_detection::ResourceDetectionConfig;
use stella_store::log::SyncPolicy;

use crate::tls::TlsSettings;

/// A validated config: every reference resolves, every value is in range.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `receivers`, by component id (`otlp`, `otlp/internal`).
    pub receivers: BTreeMap<String, OtlpReceiverConfig>,
    /// `processors`, by component id.
    pub processors: BTreeMap<String, ProcessorConfig>,
    /// `exporters`, by component id.
    pub exporters: BTreeMap<String, ExporterConfig>,
    /// `service.pipelines`, by pipeline id (`traces`, `logs/audit`).
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// `api`.
    pub api: ApiConfig,
    /// `environment`: becomes `deployment.environment.name` in resource detection.
    pub environment: Option<String>,
    /// `storage`: the ingest log.
    pub storage: StorageConfig,
    /// `exporters.<id>.max_backlog`: bytes of backlog past which the exporter's oldest data is dropped.
    pub max_backlog: BTreeMap<String, u64>,
    /// `egress`: which endpoints outbound connections may reach.
    pub egress: EgressPolicy,
    /// `auth.enabled`: bearer tokens required on the receivers (`ingest`) and the API (per route).
    pub auth_enabled: bool,
    /// `tenants`: the declared tenants (`default` always exists).
    pub tenants: Vec<TenantConfig>,
    /// `auth.client_certificates`: (certificate name, tenant): a verified client certificate whose DNS SAN
    /// or common name is `name` sends data as `tenant` (mTLS without a token).
    pub certificate_tenants: Vec<(String, String)>,
    /// `evidence`: signing key, trusted keys, periodic forensic bundles.
    pub evidence: super::EvidenceConfig,
    /// `incident`: lookback of incident holds and bundles, toggle webhook.
    pub incident: super::IncidentConfig,
    /// `dora`: DORA definitions, SLO targets, classification, metrics window, retention.
    pub dora: super::DoraConfig,
    /// `federation`: aliases, privacy, keys of the federation.
    pub federation: super::FederationConfig,
    /// `rules`: rule files evaluated against the store.
    pub rules: super::RulesConfig,
    /// `alerting`: where alerts are sent.
    pub alerting: super::AlertingConfig,
    /// `self_monitoring`: the server's own metrics written into its store.
    pub self_monitoring: super::SelfMonitoringConfig,
    /// The environment variables the config was read with: where the running components find the
    /// values its `*_env` keys name.
    pub env_vars: super::EnvVars,
}

/// One entry of `tenants`.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    /// `id`: letters, digits, `-` and `_`.
    pub id: String,
    /// `federation_alias`: the name it is shared under in federation bundles.
    pub federation_alias: Option<String>,
    /// `quotas`: ingest limits; absent means none.
    pub quotas: Option<crate::receivers::QuotaConfig>,
}

/// `storage`: where acknowledged data waits for its consumers, and where sealed chunks go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// `sync` (`always`, `batch` with `sync_window`, `interval` with `sync_interval`).
    pub sync: SyncPolicy,
    /// `log.max_bytes`: past this, receivers answer 503 + Retry-After (default 1 GiB).
    pub log_max_bytes: u64,
    /// `log.segment_bytes`: segment size (default 64 MiB).
    pub segment_bytes: u64,
    /// `backend`: S3-compatible object storage sealed chunks also go to; absent: local disk only.
    pub backend: Option<super::S3Backend>,
}

/// `receivers.otlp`: OTLP over gRPC and HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpReceiverConfig {
    /// `protocols.grpc`; absent = no gRPC listener.
    pub grpc: Option<GrpcConfig>,
    /// `protocols.http`; absent = no HTTP listener.
    pub http: Option<HttpConfig>,
    /// `max_decompressed_size_mib`: cap on a request body after decompression (default 64).
    pub max_decompressed_bytes: usize,
    /// `max_concurrent_requests`: requests in progress over both protocols (default 1024).
    pub max_concurrent_requests: usize,
    /// `max_inflight_mib`: memory budget for request bodies held at once (default 512).
    pub max_inflight_mib: usize,
    /// `read_timeout`: time for a client to send a request's headers and body (default 30s); slower
    /// clients (slowloris) are cut off.
    pub read_timeout: std::time::Duration,
}

/// `receivers.otlp.protocols.grpc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcConfig {
    /// `endpoint`, default `127.0.0.1:4317`.
    pub endpoint: SocketAddr,
    /// `max_recv_msg_size_mib`: cap on one gRPC message as sent (default 64).
    pub max_recv_msg_bytes: usize,
    /// `max_concurrent_requests`: gRPC calls in progress (default 512).
    pub max_concurrent_requests: usize,
    /// `tls`: serve over TLS (mTLS with `client_ca_file`).
    pub tls: Option<TlsSettings>,
}

/// `receivers.otlp.protocols.http`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `endpoint`, default `127.0.0.1:4318`.
    pub endpoint: SocketAddr,
    /// `max_request_body_size`: cap on the body as sent (before decompression), bytes (default 20 MiB).
    pub max_request_body_size: usize,
    /// `max_concurrent_requests`: HTTP requests in progress (default 512).
    pub max_concurrent_requests: usize,
    /// `tls`: serve over TLS (mTLS with `client_ca_file`).
    pub tls: Option<TlsSettings>,
}

/// One entry of `processors`.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessorConfig {
    /// `batch`.
    Batch(BatchConfig),
    /// `resourcedetection`.
    ResourceDetection(ResourceDetectionConfig),
    /// `redaction`.
    Redaction(RedactionSettings),
    /// `spanmetrics`: request rates and durations from spans, sent into metrics pipelines.
    SpanMetrics(Box<stella_pipeline::spanmetrics::SpanMetricsConfig>),
    /// `tail_sampling`: a consumer of the traces log feeding the pipeline's exporters.
    TailSampling(Box<stella_pipeline::tail_sampling::TailSamplingConfig>),
}

/// A `redaction` processor with its policy resolved (built-in profile, profile file or inline policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactionSettings {
    /// The profile name recorded in `stella.redaction.profile`.
    pub profile: String,
    /// The policy.
    pub policy: stella_pipeline::redaction::RedactionPolicy,
    /// The HMAC key, from the environment variable `hash_key_env` names (for `hash_function:
    /// hmac-sha256`).
    pub hash_key: Option<super::Secret>,
}

pub use super::exporters::ExporterConfig;

/// One entry of `service.pipelines`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// The signal, from the pipeline id (`traces`, `traces/x`).
    pub signal: Signal,
    /// Receiver ids feeding it.
    pub receivers: Vec<String>,
    /// Processor ids, in order.
    pub processors: Vec<String>,
    /// Exporter ids it sends to.
    pub exporters: Vec<String>,
}

/// `api`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// `endpoint`, default `127.0.0.1:4319`.
    pub endpoint: SocketAddr,
    /// `tls`: serve the API over TLS (mTLS with `client_ca_file`).
    pub tls: Option<TlsSettings>,
    /// `metrics_public`: serve `/metrics` without a token even when auth is on.
    pub metrics_public: bool,
    /// `limits`: what one query of the read APIs (Prometheus, Tempo, Loki) may load, hold or take.
    pub limits: stella_query::Limits,
}

impl Config {
    /// Settings that only take effect after a restart (listeners), as `(key path, value)` pairs, so a
    /// reload can say which of them changed.
    pub fn restart_settings(&self) -> BTreeMap<String, String> {
        let mut settings = BTreeMap::new();
        settings.insert("api.endpoint".to_string(), self.api.endpoint.to_string());
        settings.insert("storage".to_string(), format!("{:?}", self.storage));
        settings.insert("api.tls".to_string(), format!("{:?}", self.api.tls));
        settings.insert("auth.enabled".to_string(), self.auth_enabled.to_string());
        settings.insert("auth.client_certificates".to_string(), format!("{:?}", self.certificate_tenants));
        for (id, receiver) in &self.receivers {
            if let Some(grpc) = &receiver.grpc {
                settings.insert(format!("receivers.{id}.protocols.grpc"), format!("{grpc:?}"));
            }
            if let Some(http) = &receiver.http {
                settings.insert(format!("receivers.{id}.protocols.http"), format!("{http:?}"));
            }
            settings.insert(
                format!("receivers.{id}.max_decompressed_size_mib"),
                receiver.max_decompressed_bytes.to_string(),
            );
        }
        settings
    }
}
