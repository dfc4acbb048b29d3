//! The `redaction` processor's settings: which policy, from where, and the HMAC key's variable.
//!
//! ```yaml
//! processors:
//!   redaction:
//!     profile: default              # built-in default | strict, or <profiles_dir>/<name>.yaml
//!     profiles_dir: redaction-profiles  # relative to the config file's directory (this is the default)
//!     hash_key_env: STELLA_REDACTION_KEY  # needed by hash_function: hmac-sha256
//!     policy: { ... }               # optional: an inline policy, recorded under `profile`
//! ```
//! A profile file wins over a built-in of the same name, so a site can tighten `default` in place.
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use stella_pipeline::redaction::{HashFunction, RedactionPolicy};

use super::model::RedactionSettings;
use super::validate::{Problems, typed, typed_besides};
use super::{EnvVars, Secret};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedactionRaw {
    #[serde(default = "default_profile")]
    profile: String,
    #[serde(default)]
    profiles_dir: Option<PathBuf>,
    #[serde(default)]
    hash_key_env: Option<String>,
}

fn default_profile() -> String {
    "default".to_string()
}

/// Where profile files live when `profiles_dir` is not set, relative to the config file's directory.
pub const DEFAULT_PROFILES_DIR: &str = "redaction-profiles";

/// Resolves and checks one `redaction` processor.
pub(super) fn settings(
    value: &Value,
    path: &str,
    base_dir: &Path,
    env_vars: &EnvVars,
    problems: &mut Problems,
) -> Option<RedactionSettings> {
    let raw: RedactionRaw = typed_besides(value, path, "policy", problems)?;
    let name = raw.profile;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        problems
            .add(format!("{path}.profile"), format!("{name:?} is not a profile name; use letters, digits, - and _"));
        return None;
    }
    let policy = match value.get("policy") {
        Some(inline) => typed::<RedactionPolicy>(inline, &format!("{path}.policy"), problems)?,
        None => {
            let dir = raw.profiles_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_PROFILES_DIR));
            let dir = if dir.is_absolute() { dir } else { base_dir.join(dir) };
            let file = dir.join(format!("{name}.yaml"));
            match std::fs::read_to_string(&file) {
                Ok(text) => match RedactionPolicy::from_yaml(&name, &text) {
                    Ok(policy) => policy,
                    Err(error) => {
                        problems.add(format!("{path}.profile"), format!("{}: {error}", file.display()));
                        return None;
                    }
                },
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => match RedactionPolicy::built_in(&name) {
                    Some(Ok(policy)) => policy,
                    Some(Err(error)) => {
                        problems.add(format!("{path}.profile"), error.to_string());
                        return None;
                    }
                    None => {
                        problems.add(
                            format!("{path}.profile"),
                            format!(
                                "no profile {name:?}: it is not built in (default, strict) and {} does not exist",
                                file.display()
                            ),
                        );
                        return None;
                    }
                },
                Err(error) => {
                    problems.add(format!("{path}.profile"), format!("cannot read {}: {error}", file.display()));
                    return None;
                }
            }
        }
    };
    if let Err(error) = stella_pipeline::redaction::Redactor::new(&name, &policy, Some(b"validation")) {
        problems.add(path, error.to_string());
        return None;
    }
    if policy.hash_function == HashFunction::HmacSha256 {
        match raw.hash_key_env.as_deref() {
            None => problems.add(
                format!("{path}.hash_key_env"),
                "hash_function: hmac-sha256 needs a key; name the environment variable holding it",
            ),
            Some(variable) if env_vars.get(variable).is_none() => problems.add(
                format!("{path}.hash_key_env"),
                format!("the environment variable {variable} is not set (or empty); set it to the HMAC key"),
            ),
            Some(_) => {}
        }
    }
    let hash_key =
        raw.hash_key_env.as_deref().and_then(|variable| env_vars.get(variable)).map(|key| Secret(key.into()));
    Some(RedactionSettings { profile: name, policy, hash_key })
}
