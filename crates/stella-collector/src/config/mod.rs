//! The collector's config: YAML shaped like the OpenTelemetry Collector's (`receivers`, `processors`,
//! `exporters`, `service.pipelines`) plus `api` and `environment`.
//!
//! Loading is three steps: a built-in [`Profile`] (a complete config), overlaid by the user's file
//! ([`merge`]: maps merge, lists replace, `null` removes a key), then [`Config::from_value`], which checks
//! everything and reports every problem at once, each with its key path and the fix.
mod dora;
mod env_vars;
mod evidence;
mod exporters;
mod federation;
mod incident;
mod model;
mod overlay;
mod profile;
mod redaction;
mod rules;
mod storage;
mod store;
mod validate;

pub use dora::{DoraConfig, DoraPreset, DoraSlo};
pub use env_vars::{EnvVars, Secret};
pub use evidence::{BundleCompression, EvidenceConfig, ScheduleConfig};
pub use federation::FederationConfig;
pub use incident::IncidentConfig;
pub use model::{
    ApiConfig, Config, ExporterConfig, GrpcConfig, HttpConfig, OtlpReceiverConfig, PipelineConfig, ProcessorConfig,
    RedactionSettings, StorageConfig, TenantConfig,
};
pub use overlay::merge;
pub use profile::{Profile, UnknownProfile};
pub use rules::{AlertingConfig, RulesConfig, SelfMonitoringConfig};
pub use storage::{Credential, S3Backend};
pub use store::{Retention, StoreSettings};
pub use validate::{ConfigError, ConfigErrors};

use std::path::Path;

/// Reads `path` as YAML into a generic value (for overlaying).
pub fn read_yaml(path: &Path) -> Result<serde_json::Value, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigErrors::one(path.display().to_string(), format!("cannot read the config file: {error}"))
    })?;
    parse_yaml(&text, &path.display().to_string())
}

/// Parses YAML text; `origin` names it in errors (a file path or `profile default`).
pub fn parse_yaml(text: &str, origin: &str) -> Result<serde_json::Value, ConfigErrors> {
    let value: serde_json::Value = serde_saphyr::from_str(text)
        .map_err(|error| ConfigErrors::one(origin.to_string(), format!("invalid YAML: {error}")))?;
    Ok(if value.is_null() { serde_json::Value::Object(Default::default()) } else { value })
}

/// The effective config value: `profile` overlaid with the file at `overlay`, if any.
pub fn effective_value(profile: Profile, overlay: Option<&Path>) -> Result<serde_json::Value, ConfigErrors> {
    let mut value = parse_yaml(profile.yaml(), &format!("profile {}", profile.name()))?;
    if let Some(path) = overlay {
        merge(&mut value, read_yaml(path)?);
    }
    Ok(value)
}

/// Loads and validates the effective config of `profile` overlaid with `overlay`, its `*_env` keys read
/// from `env_vars`.
pub fn load(profile: Profile, overlay: Option<&Path>, env_vars: &EnvVars) -> Result<Config, ConfigErrors> {
    let base_dir = overlay.and_then(Path::parent).unwrap_or(Path::new("."));
    Config::from_value_at(&effective_value(profile, overlay)?, base_dir, env_vars)
}

#[cfg(test)]
mod tests;

/// Fuzz body (`fuzz/fuzz_targets/config.rs`, replayed by `cargo test`): arbitrary bytes as a config
/// overlay on the default profile. Never panics; every refusal carries at least one error with a path.
pub fn fuzz_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mut value) = parse_yaml(Profile::Default.yaml(), "profile default") else {
        panic!("the built-in default profile must parse")
    };
    match parse_yaml(text, "fuzz input") {
        Ok(overlay) => {
            merge(&mut value, overlay);
            if let Err(errors) = Config::from_value(&value) {
                assert!(!errors.0.is_empty() && errors.0.iter().all(|error| !error.path.is_empty()), "{errors}");
            }
        }
        Err(errors) => assert!(!errors.0.is_empty()),
    }
}
