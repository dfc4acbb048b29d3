//! From a merged YAML value to a [`Config`], collecting every problem with its key path and the fix.
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use stella_export::egress::{EgressDenied, EgressPolicy, EgressRule};
use stella_otlp::Signal;
use stella_store::log::SyncPolicy;

use super::EnvVars;
use super::model::*;
use crate::tls::TlsSettings;

/// One problem in a config: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path, e.g. `service.pipelines.traces.exporters[1]`, or the file for syntax errors.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a config (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A single problem.
    pub fn one(path: String, message: String) -> Self {
        ConfigErrors(vec![ConfigError { path, message }])
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        "config.invalid"
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        write!(f, "the config has {count} problem{}:", if count == 1 { "" } else { "s" })?;
        for error in &self.0 {
            write!(f, "\n  - {error}")?;
        }
        Ok(())
    }
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "receivers",
    "processors",
    "exporters",
    "service",
    "api",
    "environment",
    "storage",
    "egress",
    "auth",
    "tenants",
    "evidence",
    "incident",
    "dora",
    "federation",
    "rules",
    "alerting",
    "self_monitoring",
];
const RECEIVER_TYPES: &[&str] = &["otlp"];
const PROCESSOR_TYPES: &[&str] = &["batch", "redaction", "resourcedetection", "spanmetrics", "tail_sampling"];

#[derive(Default)]
pub(super) struct Problems(Vec<ConfigError>);

impl Problems {
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError { path: path.into(), message: message.into() });
    }

    /// How many problems so far (a section compares before and after to know whether it is valid).
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Every problem as a `path: message` line.
    #[cfg(test)]
    pub(super) fn lines(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl Config {
    /// Validates a merged config value, reporting every problem at once; relative paths in it (redaction
    /// profile directories) resolve against the working directory, and no environment variable is set.
    pub fn from_value(root: &Value) -> Result<Config, ConfigErrors> {
        Config::from_value_at(root, Path::new("."), &EnvVars::default())
    }

    /// [`Config::from_value`] with relative paths resolved against `base_dir` (the config file's directory)
    /// and the variables its `*_env` keys name read from `env_vars`.
    pub fn from_value_at(root: &Value, base_dir: &Path, env_vars: &EnvVars) -> Result<Config, ConfigErrors> {
        let mut problems = Problems::default();
        refuse_control_characters(root, "", &mut problems);
        let empty = Map::new();
        let root = object(root, "(top level)", &mut problems).unwrap_or(&empty);
        for key in root.keys() {
            if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
                problems
                    .add(key.clone(), format!("unknown key; valid top-level keys are {}", TOP_LEVEL_KEYS.join(", ")));
            }
        }
        let receivers = components(root, "receivers", RECEIVER_TYPES, &mut problems, |_, value, path, problems| {
            otlp_receiver(value, path, problems)
        });
        let processors =
            components(root, "processors", PROCESSOR_TYPES, &mut problems, |kind, value, path, problems| match kind {
                "batch" => {
                    let config = typed::<stella_pipeline::batch::BatchConfig>(value, path, problems)?;
                    for (key, message) in config.problems() {
                        problems.add(format!("{path}.{key}"), message);
                    }
                    Some(ProcessorConfig::Batch(config))
                }
                "redaction" => super::redaction::settings(value, path, base_dir, env_vars, problems)
                    .map(ProcessorConfig::Redaction),
                "spanmetrics" => {
                    let config = typed::<stella_pipeline::spanmetrics::SpanMetricsConfig>(value, path, problems)?;
                    for (key, message) in config.problems() {
                        problems.add(format!("{path}.{key}"), message);
                    }
                    Some(ProcessorConfig::SpanMetrics(Box::new(config)))
                }
                "tail_sampling" => {
                    let config = typed::<stella_pipeline::tail_sampling::TailSamplingConfig>(value, path, problems)?;
                    if let Err(error) = stella_pipeline::tail_sampling::Policies::compile(&config) {
                        problems.add(format!("{path}.{}", error.path), error.message);
                        return None;
                    }
                    Some(ProcessorConfig::TailSampling(Box::new(config)))
                }
                _ => typed(value, path, problems).map(ProcessorConfig::ResourceDetection),
            });
        let egress = egress(root.get("egress"), &mut problems);
        let exporters =
            components(root, "exporters", super::exporters::TYPES, &mut problems, |kind, value, path, problems| {
                super::exporters::parse(kind, value, path, &egress, problems)
            });
        let pipelines = pipelines(root, &mut problems);
        check_span_metrics_targets(&processors, &pipelines, &mut problems);
        check_one_store_per_signal(&exporters, &pipelines, &mut problems);
        check_exporter_signals(&exporters, &pipelines, &mut problems);
        let api = api(root.get("api"), &mut problems);
        check_listeners(&receivers, api.as_ref(), &mut problems);
        let environment = match root.get("environment") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => {
                problems.add("environment", format!("expected a string such as production, found {}", kind_of(other)));
                None
            }
        };
        let storage = storage(root.get("storage"), &egress, env_vars, &mut problems);
        let auth = root.get("auth").and_then(|value| typed::<AuthRaw>(value, "auth", &mut problems));
        let auth_enabled = auth.as_ref().is_some_and(|auth| auth.enabled);
        let tenants = tenants(root.get("tenants"), &mut problems);
        let mut certificate_tenants = Vec::new();
        for (index, mapping) in auth.map(|auth| auth.client_certificates).unwrap_or_default().into_iter().enumerate() {
            if tenants.iter().any(|tenant| tenant.id == mapping.tenant) {
                certificate_tenants.push((mapping.name, mapping.tenant));
            } else {
                let message =
                    format!("{:?} is not declared under tenants:; declare it or fix the name", mapping.tenant);
                problems.add(format!("auth.client_certificates[{index}].tenant"), message);
            }
        }
        let max_backlog = max_backlogs(root, &mut problems);
        let evidence = super::evidence::evidence(root.get("evidence"), base_dir, &mut problems);
        let incident = super::incident::incident(root.get("incident"), &egress, &mut problems);
        let dora = super::dora::dora(root.get("dora"), &mut problems);
        let federation = super::federation::federation(root.get("federation"), base_dir, env_vars, &mut problems);
        let rules = super::rules::rules(root.get("rules"), base_dir, &mut problems);
        let alerting = super::rules::alerting(root.get("alerting"), &egress, &mut problems);
        let self_monitoring = super::rules::self_monitoring(root.get("self_monitoring"), &mut problems);
        for (path, tenant) in [("rules.tenant", &rules.tenant), ("self_monitoring.tenant", &self_monitoring.tenant)] {
            if tenant != "default" && !tenants.iter().any(|declared| declared.id == *tenant) {
                problems.add(path, format!("{tenant:?} is not declared under tenants:; declare it or use default"));
            }
        }
        if !problems.0.is_empty() {
            return Err(ConfigErrors(problems.0));
        }
        Ok(Config {
            receivers,
            processors,
            exporters,
            pipelines,
            api: api.unwrap_or_else(default_api),
            environment,
            storage: storage.unwrap_or_else(default_storage),
            max_backlog,
            egress,
            auth_enabled,
            tenants,
            certificate_tenants,
            evidence,
            incident,
            dora,
            federation,
            rules,
            alerting,
            self_monitoring,
            env_vars: env_vars.clone(),
        })
    }
}

/// Control characters (NUL, escape, ...) have no place in a config: a string holding one is refused,
/// wherever it is (tab and newline are allowed, for patterns and multi-line text).
fn refuse_control_characters(value: &Value, path: &str, problems: &mut Problems) {
    let bad = |text: &str| text.chars().find(|c| c.is_control() && *c != '\t' && *c != '\n');
    match value {
        Value::String(text) => {
            if let Some(found) = bad(text) {
                let shown = if path.is_empty() { "(top level)" } else { path };
                problems.add(shown, format!("holds the control character {found:?}; remove it"));
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                refuse_control_characters(item, &format!("{path}[{index}]"), problems);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                if let Some(found) = bad(key) {
                    problems.add(child.clone(), format!("the key holds the control character {found:?}; remove it"));
                }
                refuse_control_characters(item, &child, problems);
            }
        }
        _ => {}
    }
}

/// Two listeners on one address (the same port, on the same IP or where either takes every interface)
/// cannot both bind: each is reported with the other's key.
fn check_listeners(receivers: &BTreeMap<String, OtlpReceiverConfig>, api: Option<&ApiConfig>, problems: &mut Problems) {
    let mut listeners: Vec<(String, SocketAddr)> = Vec::new();
    for (id, receiver) in receivers {
        if let Some(grpc) = &receiver.grpc {
            listeners.push((format!("receivers.{id}.protocols.grpc.endpoint"), grpc.endpoint));
        }
        if let Some(http) = &receiver.http {
            listeners.push((format!("receivers.{id}.protocols.http.endpoint"), http.endpoint));
        }
    }
    listeners.push(("api.endpoint".to_string(), api.map_or_else(|| default_api().endpoint, |api| api.endpoint)));
    let clash = |a: &SocketAddr, b: &SocketAddr| {
        a.port() != 0
            && a.port() == b.port()
            && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
    };
    for (index, (key, address)) in listeners.iter().enumerate() {
        for (other_index, (other_key, other)) in listeners.iter().enumerate() {
            if index != other_index && clash(address, other) {
                problems.add(
                    key.clone(),
                    format!("{address} is also where {other_key} ({other}) listens; give each listener its own port"),
                );
                break;
            }
        }
    }
}

/// Settings of a component that takes none.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NopRaw {}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn object<'a>(value: &'a Value, path: &str, problems: &mut Problems) -> Option<&'a Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        other => {
            problems.add(path, format!("expected a map of keys, found {}", kind_of(other)));
            None
        }
    }
}

/// Deserializes one component's settings with serde, reporting the failing key path inside it.
pub(super) fn typed<T: DeserializeOwned>(value: &Value, path: &str, problems: &mut Problems) -> Option<T> {
    let empty = Value::Object(Map::new());
    let value = if value.is_null() { &empty } else { value };
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(config) => Some(config),
        Err(error) => {
            let inner = error.path().to_string();
            let at = if inner == "." { path.to_string() } else { format!("{path}.{inner}") };
            let mut message = error.inner().to_string();
            if message.starts_with("unknown field") {
                message.push_str("; remove it or correct its spelling");
            }
            problems.add(at, message);
            None
        }
    }
}

/// Walks a `receivers` / `processors` / `exporters` section: ids are `type` or `type/name`.
fn components<T>(
    root: &Map<String, Value>,
    section: &str,
    types: &[&str],
    problems: &mut Problems,
    build: impl Fn(&str, &Value, &str, &mut Problems) -> Option<T>,
) -> BTreeMap<String, T> {
    let mut built = BTreeMap::new();
    let Some(value) = root.get(section).filter(|value| !value.is_null()) else {
        return built;
    };
    let Some(entries) = object(value, section, problems) else {
        return built;
    };
    for (id, settings) in entries {
        let path = format!("{section}.{id}");
        let (kind, name) = id.split_once('/').unwrap_or((id.as_str(), ""));
        if id.contains('/') && name.is_empty() {
            problems.add(&path, "a component id is `type` or `type/name`; the name after `/` is empty");
            continue;
        }
        if !types.contains(&kind) {
            problems
                .add(&path, format!("unknown {} type `{kind}`; available: {}", singular(section), types.join(", ")));
            continue;
        }
        if let Some(config) = build(kind, settings, &path, problems) {
            built.insert(id.clone(), config);
        }
    }
    built
}

fn singular(section: &str) -> &str {
    section.strip_suffix('s').unwrap_or(section)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OtlpReceiverRaw {
    #[serde(default)]
    protocols: ProtocolsRaw,
    #[serde(default = "default_max_decompressed_size_mib")]
    max_decompressed_size_mib: usize,
    #[serde(default = "default_receiver_concurrency")]
    max_concurrent_requests: usize,
    #[serde(default = "default_max_inflight_mib")]
    max_inflight_mib: usize,
    #[serde(default = "default_read_timeout", deserialize_with = "stella_pipeline::duration::deserialize")]
    read_timeout: std::time::Duration,
}

fn default_read_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProtocolsRaw {
    grpc: Option<Option<GrpcRaw>>,
    http: Option<Option<HttpRaw>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GrpcRaw {
    #[serde(default = "default_grpc_endpoint")]
    endpoint: String,
    #[serde(default = "default_max_recv_msg_size_mib")]
    max_recv_msg_size_mib: usize,
    #[serde(default = "default_protocol_concurrency")]
    max_concurrent_requests: usize,
    #[serde(default)]
    tls: Option<TlsRaw>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HttpRaw {
    #[serde(default = "default_http_endpoint")]
    endpoint: String,
    #[serde(default = "default_max_request_body_size")]
    max_request_body_size: usize,
    #[serde(default = "default_protocol_concurrency")]
    max_concurrent_requests: usize,
    #[serde(default)]
    tls: Option<TlsRaw>,
}

fn default_receiver_concurrency() -> usize {
    1024
}
fn default_protocol_concurrency() -> usize {
    512
}
fn default_max_inflight_mib() -> usize {
    512
}
fn default_max_decompressed_size_mib() -> usize {
    64
}
fn default_grpc_endpoint() -> String {
    "127.0.0.1:4317".into()
}
fn default_http_endpoint() -> String {
    "127.0.0.1:4318".into()
}
fn default_max_recv_msg_size_mib() -> usize {
    64
}
fn default_max_request_body_size() -> usize {
    20 * 1024 * 1024
}

const MIB: usize = 1024 * 1024;

fn otlp_receiver(value: &Value, path: &str, problems: &mut Problems) -> Option<OtlpReceiverConfig> {
    let raw: OtlpReceiverRaw = typed(value, path, problems)?;
    let grpc = raw.protocols.grpc.map(Option::unwrap_or_default).and_then(|grpc| {
        let endpoint = endpoint(&grpc.endpoint, &format!("{path}.protocols.grpc.endpoint"), problems)?;
        positive(grpc.max_recv_msg_size_mib, &format!("{path}.protocols.grpc.max_recv_msg_size_mib"), problems)?;
        positive(grpc.max_concurrent_requests, &format!("{path}.protocols.grpc.max_concurrent_requests"), problems)?;
        Some(GrpcConfig {
            endpoint,
            max_recv_msg_bytes: grpc.max_recv_msg_size_mib.saturating_mul(MIB),
            max_concurrent_requests: grpc.max_concurrent_requests,
            tls: tls(grpc.tls, &format!("{path}.protocols.grpc.tls"), problems),
        })
    });
    let http = raw.protocols.http.map(Option::unwrap_or_default).and_then(|http| {
        let endpoint = endpoint(&http.endpoint, &format!("{path}.protocols.http.endpoint"), problems)?;
        positive(http.max_request_body_size, &format!("{path}.protocols.http.max_request_body_size"), problems)?;
        positive(http.max_concurrent_requests, &format!("{path}.protocols.http.max_concurrent_requests"), problems)?;
        Some(HttpConfig {
            endpoint,
            max_request_body_size: http.max_request_body_size,
            max_concurrent_requests: http.max_concurrent_requests,
            tls: tls(http.tls, &format!("{path}.protocols.http.tls"), problems),
        })
    });
    positive(raw.max_decompressed_size_mib, &format!("{path}.max_decompressed_size_mib"), problems)?;
    if grpc.is_none() && http.is_none() && problems.0.is_empty() {
        problems.add(format!("{path}.protocols"), "enables no protocol; add `grpc:` and/or `http:`");
    }
    positive(raw.max_concurrent_requests, &format!("{path}.max_concurrent_requests"), problems)?;
    positive(raw.max_inflight_mib, &format!("{path}.max_inflight_mib"), problems)?;
    if raw.read_timeout.is_zero() {
        problems.add(format!("{path}.read_timeout"), "must be more than 0, e.g. 30s");
        return None;
    }
    Some(OtlpReceiverConfig {
        grpc,
        http,
        max_decompressed_bytes: raw.max_decompressed_size_mib.saturating_mul(MIB),
        max_concurrent_requests: raw.max_concurrent_requests,
        max_inflight_mib: raw.max_inflight_mib,
        read_timeout: raw.read_timeout,
    })
}

fn positive(value: usize, path: &str, problems: &mut Problems) -> Option<()> {
    if value == 0 {
        problems.add(path, "must be greater than 0");
        return None;
    }
    Some(())
}

/// `host:port` with an IP literal or `localhost`.
fn endpoint(text: &str, path: &str, problems: &mut Problems) -> Option<SocketAddr> {
    let normalized = match text.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => text.to_string(),
    };
    match normalized.parse() {
        Ok(address) => Some(address),
        Err(_) if text.starts_with(':') => {
            problems.add(path, format!("{text:?} has no host; write 127.0.0.1{text} for this machine only or 0.0.0.0{text} for every interface"));
            None
        }
        Err(_) => {
            problems.add(
                path,
                format!("{text:?} is not an address; write IP:PORT such as 127.0.0.1:4317 (or localhost:PORT)"),
            );
            None
        }
    }
}

fn default_api() -> ApiConfig {
    ApiConfig {
        endpoint: SocketAddr::from(([127, 0, 0, 1], 4319)),
        tls: None,
        metrics_public: false,
        limits: stella_query::Limits::DEFAULT,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsRaw {
    cert_file: std::path::PathBuf,
    key_file: std::path::PathBuf,
    #[serde(default)]
    client_ca_file: Option<std::path::PathBuf>,
    #[serde(default = "default_min_version")]
    min_version: String,
}

fn default_min_version() -> String {
    "1.2".into()
}

/// A listener's `tls:`, checked by loading it (so a bad file is reported before the start).
fn tls(raw: Option<TlsRaw>, path: &str, problems: &mut Problems) -> Option<TlsSettings> {
    let raw = raw?;
    let tls13_only = match raw.min_version.as_str() {
        "1.2" => false,
        "1.3" => true,
        other => {
            problems.add(
                format!("{path}.min_version"),
                format!("{other:?} is not supported; use \"1.2\" (default) or \"1.3\""),
            );
            return None;
        }
    };
    let settings = TlsSettings {
        cert_file: raw.cert_file,
        key_file: raw.key_file,
        client_ca_file: raw.client_ca_file,
        tls13_only,
    };
    match settings.server_config() {
        Ok(_) => Some(settings),
        Err(error) => {
            problems.add(format!("{path}.{}", error.key), error.message);
            None
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiRaw {
    endpoint: Option<String>,
    #[serde(default)]
    tls: Option<TlsRaw>,
    #[serde(default)]
    metrics_public: bool,
    #[serde(default)]
    limits: Option<LimitsRaw>,
}

/// `api.limits`: each absent key keeps its default ([`stella_query::Limits::DEFAULT`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsRaw {
    max_samples: Option<usize>,
    max_spans: Option<usize>,
    max_lines: Option<usize>,
    #[serde(default, deserialize_with = "stella_pipeline::duration::optional_text::deserialize")]
    timeout: Option<std::time::Duration>,
}

fn limits(raw: Option<LimitsRaw>, problems: &mut Problems) -> stella_query::Limits {
    let defaults = stella_query::Limits::DEFAULT;
    let Some(raw) = raw else { return defaults };
    let mut at_least_one = |key: &str, value: Option<usize>, default: usize| match value {
        Some(0) => {
            problems.add(format!("api.limits.{key}"), format!("must be at least 1; the default is {default}"));
            default
        }
        Some(value) => value,
        None => default,
    };
    let limits = stella_query::Limits {
        max_samples: at_least_one("max_samples", raw.max_samples, defaults.max_samples),
        max_spans: at_least_one("max_spans", raw.max_spans, defaults.max_spans),
        max_lines: at_least_one("max_lines", raw.max_lines, defaults.max_lines),
        timeout: raw.timeout.unwrap_or(defaults.timeout),
    };
    if limits.timeout < std::time::Duration::from_millis(1) {
        problems.add("api.limits.timeout", "must be at least 1ms; e.g. 2m");
    }
    limits
}

fn api(value: Option<&Value>, problems: &mut Problems) -> Option<ApiConfig> {
    let raw: ApiRaw = typed(value?, "api", problems)?;
    let tls = tls(raw.tls, "api.tls", problems);
    let limits = limits(raw.limits, problems);
    let Some(text) = raw.endpoint else {
        return Some(ApiConfig { tls, metrics_public: raw.metrics_public, limits, ..default_api() });
    };
    endpoint(&text, "api.endpoint", problems).map(|endpoint| ApiConfig {
        endpoint,
        tls,
        metrics_public: raw.metrics_public,
        limits,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceRaw {
    #[serde(default)]
    pipelines: BTreeMap<String, PipelineRaw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineRaw {
    #[serde(default)]
    receivers: Vec<String>,
    #[serde(default)]
    processors: Vec<String>,
    #[serde(default)]
    exporters: Vec<String>,
}

fn pipelines(root: &Map<String, Value>, problems: &mut Problems) -> BTreeMap<String, PipelineConfig> {
    let mut built = BTreeMap::new();
    let Some(service) = root.get("service") else {
        problems.add("service.pipelines", "no pipelines; add e.g. traces: {receivers: [otlp], exporters: [file]}");
        return built;
    };
    let Some(raw) = typed::<ServiceRaw>(service, "service", problems) else {
        return built;
    };
    if raw.pipelines.is_empty() {
        problems.add("service.pipelines", "no pipelines; add e.g. traces: {receivers: [otlp], exporters: [file]}");
    }
    for (id, pipeline) in raw.pipelines {
        let path = format!("service.pipelines.{id}");
        let signal_name = id.split_once('/').map_or(id.as_str(), |(signal, _)| signal);
        let Ok(signal) = signal_name.parse::<Signal>() else {
            problems.add(
                &path,
                format!("unknown signal `{signal_name}`; a pipeline id is traces, metrics or logs, optionally /name"),
            );
            continue;
        };
        for (ids, section) in [
            (&pipeline.receivers, "receivers"),
            (&pipeline.processors, "processors"),
            (&pipeline.exporters, "exporters"),
        ] {
            check_references(ids, &declared_ids(root, section), &format!("{path}.{section}"), section, problems);
        }
        let kind = |id: &String| id.split('/').next().unwrap_or_default().to_string();
        let batches = pipeline.processors.iter().filter(|id| kind(id) == "batch").count();
        if batches > 1 {
            problems.add(format!("{path}.processors"), "lists more than one batch processor; keep one");
        }
        let samplers: Vec<usize> = (0..pipeline.processors.len())
            .filter(|index| kind(&pipeline.processors[*index]) == "tail_sampling")
            .collect();
        if let Some(&first) = samplers.first() {
            if signal != Signal::Traces {
                problems.add(
                    format!("{path}.processors[{first}]"),
                    "tail_sampling samples traces; use it in a traces pipeline only",
                );
            } else if samplers.len() > 1 {
                problems.add(format!("{path}.processors"), "lists more than one tail_sampling processor; keep one");
            }
            let batch = pipeline.processors.iter().position(|id| kind(id) == "batch");
            if batch.is_some_and(|batch| batch < first) {
                problems.add(format!("{path}.processors[{first}]"), "tail_sampling must come before batch; move it up");
            }
            let end = batch.filter(|batch| *batch > first).unwrap_or(pipeline.processors.len());
            if let Some(offset) = pipeline.processors[first + 1..end].iter().position(|id| kind(id) != "batch") {
                problems.add(
                    format!("{path}.processors[{}]", first + 1 + offset),
                    "stateless processors go before tail_sampling (they run before the ingest log); move it up",
                );
            }
        }
        built.insert(
            id,
            PipelineConfig {
                signal,
                receivers: pipeline.receivers,
                processors: pipeline.processors,
                exporters: pipeline.exporters,
            },
        );
    }
    built
}

/// A signal is sealed into the store by one pipeline only (two would write the same chunk sequence).
fn check_one_store_per_signal(
    exporters: &BTreeMap<String, ExporterConfig>,
    pipelines: &BTreeMap<String, PipelineConfig>,
    problems: &mut Problems,
) {
    let mut seen: BTreeMap<Signal, &str> = BTreeMap::new();
    for (pipeline_id, pipeline) in pipelines {
        for (index, id) in pipeline.exporters.iter().enumerate() {
            if !matches!(exporters.get(id), Some(ExporterConfig::Store(_))) {
                continue;
            }
            match seen.get(&pipeline.signal) {
                Some(first) => problems.add(
                    format!("service.pipelines.{pipeline_id}.exporters[{index}]"),
                    format!(
                        "pipeline {first} already stores {}; one pipeline per signal may use a store exporter",
                        pipeline.signal
                    ),
                ),
                None => {
                    seen.insert(pipeline.signal, pipeline_id);
                }
            }
        }
    }
}

/// Exporters of one signal (`prometheusremotewrite`: metrics; `loki`, `events`: logs) sit only in pipelines of that signal.
fn check_exporter_signals(
    exporters: &BTreeMap<String, ExporterConfig>,
    pipelines: &BTreeMap<String, PipelineConfig>,
    problems: &mut Problems,
) {
    for (pipeline_id, pipeline) in pipelines {
        for (index, id) in pipeline.exporters.iter().enumerate() {
            let takes = match exporters.get(id) {
                Some(ExporterConfig::PrometheusRemoteWrite(_)) => Signal::Metrics,
                Some(ExporterConfig::Loki(_) | ExporterConfig::Events) => Signal::Logs,
                Some(ExporterConfig::LoadBalancing(_)) if pipeline.signal != Signal::Metrics => continue,
                Some(ExporterConfig::LoadBalancing(_)) => {
                    problems.add(
                        format!("service.pipelines.{pipeline_id}.exporters[{index}]"),
                        format!("exporter {id} routes traces and logs by trace id; metrics need no routing, send them with otlp"),
                    );
                    continue;
                }
                _ => continue,
            };
            if pipeline.signal != takes {
                problems.add(
                    format!("service.pipelines.{pipeline_id}.exporters[{index}]"),
                    format!("exporter {id} takes {takes} only; move it to a {takes} pipeline"),
                );
            }
        }
    }
}

/// Every `spanmetrics` processor in use sends into metrics pipelines that exist, and sits in traces
/// pipelines only.
fn check_span_metrics_targets(
    processors: &BTreeMap<String, ProcessorConfig>,
    pipelines: &BTreeMap<String, PipelineConfig>,
    problems: &mut Problems,
) {
    for (id, processor) in processors {
        let ProcessorConfig::SpanMetrics(config) = processor else { continue };
        if !pipelines.values().any(|pipeline| pipeline.processors.contains(id)) {
            continue;
        }
        for (index, target) in config.metrics_pipelines.iter().enumerate() {
            if pipelines.get(target).is_none_or(|pipeline| pipeline.signal != Signal::Metrics) {
                let known: Vec<&str> = pipelines
                    .iter()
                    .filter(|(_, pipeline)| pipeline.signal == Signal::Metrics)
                    .map(|(name, _)| name.as_str())
                    .collect();
                problems.add(
                    format!("processors.{id}.metrics_pipelines[{index}]"),
                    format!(
                        "`{target}` is not a metrics pipeline (defined: {}); name one, or take {id} out of the traces pipelines' processors",
                        known.join(", ")
                    ),
                );
            }
        }
        for (pipeline_id, pipeline) in pipelines.iter().filter(|(_, pipeline)| pipeline.signal != Signal::Traces) {
            if let Some(position) = pipeline.processors.iter().position(|listed| listed == id) {
                problems.add(
                    format!("service.pipelines.{pipeline_id}.processors[{position}]"),
                    "spanmetrics derives metrics from spans; use it in a traces pipeline only",
                );
            }
        }
    }
}

/// Component ids declared in `section`, valid or not (an invalid one is reported where it is declared,
/// not again at every pipeline that names it).
fn declared_ids(root: &Map<String, Value>, section: &str) -> Vec<String> {
    root.get(section).and_then(Value::as_object).map(|entries| entries.keys().cloned().collect()).unwrap_or_default()
}

fn check_references(ids: &[String], defined: &[String], path: &str, section: &str, problems: &mut Problems) {
    if ids.is_empty() && section != "processors" {
        problems.add(path, format!("is empty; list at least one of the {section} defined under `{section}:`"));
    }
    for (index, id) in ids.iter().enumerate() {
        if !defined.contains(id) {
            let known: Vec<&str> = defined.iter().map(String::as_str).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            problems.add(
                format!("{path}[{index}]"),
                format!("`{id}` is not defined under `{section}:` (defined: {known}); define it or remove it here"),
            );
        }
        if ids[..index].contains(id) {
            problems.add(format!("{path}[{index}]"), format!("`{id}` is listed twice; remove one"));
        }
    }
}

/// [`typed`] for a component's settings without `key`, which the collector reads itself: an unknown-field
/// error still lists `key` among the accepted ones, so the message names every key the section takes.
pub(super) fn typed_besides<T: DeserializeOwned>(
    value: &Value,
    path: &str,
    key: &str,
    problems: &mut Problems,
) -> Option<T> {
    let stripped = match value {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(name, _)| name.as_str() != key).map(|(k, v)| (k.clone(), v.clone())).collect(),
        ),
        other => other.clone(),
    };
    let mut own = Problems::default();
    let typed = typed(&stripped, path, &mut own);
    for problem in own.0 {
        // An unknown field of the section itself is reported at `<path>.<field>`; deeper ones are not ours.
        let own_field = problem.path.strip_prefix(path).and_then(|rest| rest.strip_prefix('.'));
        let message = match own_field {
            Some(field) if !field.contains(['.', '[']) => with_accepted_key(&problem.message, key),
            _ => problem.message,
        };
        problems.add(problem.path, message);
    }
    typed
}

/// serde's "unknown field `x`, expected ..." with `key` among the expected keys.
fn with_accepted_key(message: &str, key: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else { return message.to_string() };
    let Some((field, rest)) = rest.split_once('`') else { return message.to_string() };
    let (expected, hint) = rest.split_once(';').unwrap_or((rest, ""));
    let mut keys: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    keys.push(key);
    let list = keys.iter().map(|key| format!("`{key}`")).collect::<Vec<_>>().join(", ");
    let expected = if keys.len() == 1 { format!("expected {list}") } else { format!("expected one of {list}") };
    format!("unknown field `{field}`, {expected};{hint}")
}

/// `exporters.<id>.max_backlog` for every exporter that sets it.
fn max_backlogs(root: &Map<String, Value>, problems: &mut Problems) -> BTreeMap<String, u64> {
    let mut limits = BTreeMap::new();
    let Some(Value::Object(exporters)) = root.get("exporters") else { return limits };
    for (id, settings) in exporters {
        let Some(value) = settings.get("max_backlog") else { continue };
        match value.as_u64() {
            Some(bytes) if bytes > 0 => {
                limits.insert(id.clone(), bytes);
            }
            _ => problems.add(
                format!("exporters.{id}.max_backlog"),
                "expected a number of bytes greater than 0, e.g. 536870912 for 512 MiB",
            ),
        }
    }
    limits
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum SyncRaw {
    Always,
    Batch,
    Interval,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageRaw {
    #[serde(default = "default_sync")]
    sync: SyncRaw,
    #[serde(default = "default_sync_window", deserialize_with = "stella_pipeline::duration::deserialize")]
    sync_window: std::time::Duration,
    #[serde(default = "default_sync_interval", deserialize_with = "stella_pipeline::duration::deserialize")]
    sync_interval: std::time::Duration,
    #[serde(default)]
    log: LogRaw,
    #[serde(default)]
    backend: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogRaw {
    #[serde(default = "default_log_max_bytes")]
    max_bytes: u64,
    #[serde(default = "default_segment_bytes")]
    segment_bytes: u64,
}

impl Default for LogRaw {
    fn default() -> Self {
        LogRaw { max_bytes: default_log_max_bytes(), segment_bytes: default_segment_bytes() }
    }
}

fn default_sync() -> SyncRaw {
    SyncRaw::Batch
}
fn default_sync_window() -> std::time::Duration {
    std::time::Duration::from_micros(500)
}
fn default_sync_interval() -> std::time::Duration {
    std::time::Duration::from_millis(200)
}
fn default_log_max_bytes() -> u64 {
    1024 * 1024 * 1024
}
fn default_segment_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_storage() -> StorageConfig {
    StorageConfig {
        sync: SyncPolicy::Batch { window: default_sync_window() },
        log_max_bytes: default_log_max_bytes(),
        segment_bytes: default_segment_bytes(),
        backend: None,
    }
}

fn storage(
    value: Option<&Value>,
    egress: &EgressPolicy,
    env_vars: &EnvVars,
    problems: &mut Problems,
) -> Option<StorageConfig> {
    let raw: StorageRaw = typed(value?, "storage", problems)?;
    // An invalid backend is reported (and fails the config) without hiding the other storage problems.
    let backend = raw
        .backend
        .filter(|backend| !backend.is_null())
        .and_then(|backend| super::storage::backend(&backend, egress, env_vars, problems));
    if raw.log.segment_bytes < 4096 {
        problems.add("storage.log.segment_bytes", "must be at least 4096");
    }
    if raw.log.max_bytes != 0 && raw.log.max_bytes < raw.log.segment_bytes.saturating_mul(2) {
        let fix = raw.log.segment_bytes.saturating_mul(2);
        problems.add(
            "storage.log.max_bytes",
            format!("must be 0 (no limit) or at least twice storage.log.segment_bytes ({fix}): the newest segment is never removed"),
        );
    }
    let sync = match raw.sync {
        SyncRaw::Always => SyncPolicy::Always,
        SyncRaw::Batch => SyncPolicy::Batch { window: raw.sync_window },
        SyncRaw::Interval if raw.sync_interval.is_zero() => {
            problems.add("storage.sync_interval", "must be greater than 0 with sync: interval; e.g. 200ms");
            return None;
        }
        SyncRaw::Interval => SyncPolicy::Interval { every: raw.sync_interval },
    };
    Some(StorageConfig { sync, log_max_bytes: raw.log.max_bytes, segment_bytes: raw.log.segment_bytes, backend })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EgressRaw {
    #[serde(default)]
    sealed: bool,
    #[serde(default)]
    allow: Vec<String>,
}

/// `egress`: `sealed` and the `allow` rules (absent: loopback only, not sealed).
fn egress(value: Option<&Value>, problems: &mut Problems) -> EgressPolicy {
    let Some(raw) = value.and_then(|value| typed::<EgressRaw>(value, "egress", problems)) else {
        return EgressPolicy::default();
    };
    let mut rules = Vec::new();
    for (index, text) in raw.allow.iter().enumerate() {
        match EgressRule::parse(text) {
            Ok(rule) => rules.push(rule),
            Err(reason) => problems.add(format!("egress.allow[{index}]"), format!("{text:?}: {reason}")),
        }
    }
    EgressPolicy::new(rules, raw.sealed)
}

/// An endpoint the allow-list does not cover is a config error; a sealed one is not (the exporter stays
/// inert and the start-up says so).
/// Refuses endpoints (`(key, url)`) the egress policy does not allow; sealed mode is not an error (the
/// exporter starts inert, warned and counted).
pub(super) fn check_egress(endpoints: &[(&str, &str)], policy: &EgressPolicy, path: &str, problems: &mut Problems) {
    for (key, endpoint) in endpoints {
        match policy.check(endpoint) {
            Ok(_) | Err(EgressDenied::Sealed { .. }) => {}
            Err(denied) => problems.add(format!("{path}.{key}"), denied.to_string()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthRaw {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    client_certificates: Vec<CertificateTenantRaw>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct CertificateTenantRaw {
    name: String,
    tenant: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantRaw {
    id: String,
    #[serde(default)]
    federation_alias: Option<String>,
    #[serde(default)]
    quotas: Option<QuotaRaw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaRaw {
    #[serde(default)]
    items_per_second: Option<f64>,
    #[serde(default)]
    bytes_per_second: Option<f64>,
    #[serde(default = "default_burst_seconds")]
    burst_seconds: f64,
}

fn default_burst_seconds() -> f64 {
    1.0
}

/// A tenant's `quotas`, with rates and burst checked to be positive.
fn quota(raw: Option<QuotaRaw>, path: &str, problems: &mut Problems) -> Option<crate::receivers::QuotaConfig> {
    let raw = raw?;
    let mut valid = true;
    for (key, value) in [
        ("items_per_second", raw.items_per_second),
        ("bytes_per_second", raw.bytes_per_second),
        ("burst_seconds", Some(raw.burst_seconds)),
    ] {
        if value.is_some_and(|value| !(value.is_finite() && value > 0.0)) {
            problems.add(format!("{path}.{key}"), "must be a number greater than 0");
            valid = false;
        }
    }
    valid.then_some(crate::receivers::QuotaConfig {
        items_per_second: raw.items_per_second,
        bytes_per_second: raw.bytes_per_second,
        burst_seconds: raw.burst_seconds,
    })
}

/// `tenants: [{id, federation_alias?}]`; `default` is always there.
fn tenants(value: Option<&Value>, problems: &mut Problems) -> Vec<TenantConfig> {
    let mut tenants = vec![TenantConfig { id: "default".into(), federation_alias: None, quotas: None }];
    let Some(raw) = value.and_then(|value| typed::<Vec<TenantRaw>>(value, "tenants", problems)) else { return tenants };
    for (index, tenant) in raw.into_iter().enumerate() {
        let quotas = quota(tenant.quotas, &format!("tenants[{index}].quotas"), problems);
        let valid =
            !tenant.id.is_empty() && tenant.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let existing = tenants.iter().position(|known| known.id == tenant.id);
        match (valid, existing) {
            (false, _) => problems
                .add(format!("tenants[{index}].id"), format!("{:?}: use letters, digits, - and _ only", tenant.id)),
            (true, Some(0)) => {
                tenants[0].federation_alias = tenant.federation_alias;
                tenants[0].quotas = quotas;
            }
            (true, Some(_)) => {
                problems.add(format!("tenants[{index}].id"), format!("{:?} is declared twice; remove one", tenant.id))
            }
            (true, None) => {
                tenants.push(TenantConfig { id: tenant.id, federation_alias: tenant.federation_alias, quotas })
            }
        }
    }
    tenants
}
