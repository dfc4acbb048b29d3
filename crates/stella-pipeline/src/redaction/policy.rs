//! The redaction policy: what a profile file (`redaction-profiles/<name>.yaml`) says, the built-in
//! profiles, and the digest that names a policy in the data (`stella.redaction.profile`).
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Detector;

/// Keys passed untouched by default: the service identity every backend needs.
pub const DEFAULT_IGNORED_KEYS: [&str; 4] =
    ["service.name", "service.namespace", "service.instance.id", "deployment.environment.name"];

/// How masked values are replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashFunction {
    /// By `****`.
    #[default]
    None,
    /// By `hmac-sha256:<hex>` of the masked text under the configured key, so equal values stay joinable
    /// without being readable.
    HmacSha256,
}

/// How much the stage says about what it did, as attributes on each record it changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Summary {
    /// Counts and the names of the removed and masked keys.
    Debug,
    /// Counts only.
    #[default]
    Info,
    /// Nothing.
    Silent,
}

/// A redaction policy. Keys in `allowed_keys` and `ignored_keys` are exact names or prefixes ending in
/// `.*` (`stella.*` allows `stella.a` and `stella.a.b`); patterns and values are regular expressions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionPolicy {
    /// Keep every key (the allow-list is then not applied; masking still is).
    #[serde(default)]
    pub allow_all_keys: bool,
    /// Attribute keys kept (their values still checked); every other key is removed (fail-closed).
    #[serde(default)]
    pub allowed_keys: Vec<String>,
    /// Attribute keys passed untouched: neither removed nor checked.
    #[serde(default = "default_ignored_keys")]
    pub ignored_keys: Vec<String>,
    /// Keys whose whole value is masked (regular expressions over the key).
    #[serde(default)]
    pub blocked_key_patterns: Vec<String>,
    /// Regular expressions whose matches are masked in every checked string.
    #[serde(default)]
    pub blocked_values: Vec<String>,
    /// Regular expressions that win over blocked ones: a match that is wholly one of these stays.
    #[serde(default)]
    pub allowed_values: Vec<String>,
    /// Built-in detectors switched on.
    #[serde(default)]
    pub detectors: Vec<Detector>,
    /// Also check integers, doubles and booleans, as their string forms; a masked one becomes a string.
    #[serde(default)]
    pub redact_all_types: bool,
    /// `none` (mask with `****`) or `hmac-sha256` (needs the processor's `hash_key_env`).
    #[serde(default)]
    pub hash_function: HashFunction,
    /// `debug`, `info` or `silent`.
    #[serde(default)]
    pub summary: Summary,
}

fn default_ignored_keys() -> Vec<String> {
    DEFAULT_IGNORED_KEYS.iter().map(|key| key.to_string()).collect()
}

/// A policy file or built-in profile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The YAML does not describe a policy.
    #[error("redaction profile {name}: {message}")]
    Invalid {
        /// The profile name.
        name: String,
        /// What is wrong, with its position.
        message: String,
    },
    /// A pattern is not a valid regular expression.
    #[error("redaction profile {name}: {field} pattern {pattern:?} is not a valid regular expression: {message}")]
    Pattern {
        /// The profile name.
        name: String,
        /// `blocked_key_patterns`, `blocked_values` or `allowed_values`.
        field: &'static str,
        /// The pattern.
        pattern: String,
        /// The regex crate's explanation.
        message: String,
    },
}

/// The profiles built into the binary, by name.
pub const BUILT_IN_PROFILES: [(&str, &str); 2] =
    [("default", include_str!("profiles/default.yaml")), ("strict", include_str!("profiles/strict.yaml"))];

impl RedactionPolicy {
    /// Parses a policy file's YAML; `name` is used in errors.
    pub fn from_yaml(name: &str, yaml: &str) -> Result<Self, PolicyError> {
        serde_saphyr::from_str(yaml)
            .map_err(|error| PolicyError::Invalid { name: name.to_string(), message: error.to_string() })
    }

    /// A built-in profile (`default`, `strict`), or `None` for another name.
    pub fn built_in(name: &str) -> Option<Result<Self, PolicyError>> {
        BUILT_IN_PROFILES.iter().find(|(built_in, _)| *built_in == name).map(|(_, yaml)| Self::from_yaml(name, yaml))
    }

    /// `sha256:<hex>` of the policy in RFC 8785 canonical JSON: what `stella.redaction.profile` records
    /// after the profile name, so a bundle says exactly which rules cleaned its data. The HMAC key is not
    /// part of the policy and never enters the digest.
    pub fn digest(&self) -> String {
        // A policy always serializes (plain strings, booleans and enums), so the fallback is unreachable
        // in practice and still yields a stable, distinct digest rather than a panic.
        let canonical = serde_json_canonicalizer::to_vec(self).unwrap_or_default();
        format!("sha256:{}", hex::encode(Sha256::digest(&canonical)))
    }
}
