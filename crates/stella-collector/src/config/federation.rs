//! `federation`: how this server shares aggregated vulnerability-noise statistics (as a site) and takes
//! them in (as a hub). The API turns it into `stella_federation` calls.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::validate::{Problems, typed};
use super::{EnvVars, Secret};

/// `federation`.
#[derive(Debug, Clone, PartialEq)]
pub struct FederationConfig {
    /// `aliases`: the alias each tenant is known by in federations (never the tenant id itself).
    pub aliases: BTreeMap<String, String>,
    /// `k_anonymity` (default 5): buckets of fewer distinct artifacts are suppressed.
    pub k_anonymity: u64,
    /// `epsilon`: Laplace noise parameter; absent: no noise.
    pub epsilon: Option<f64>,
    /// `epsilon_budget` (default 10): what one consent's bundles may spend in total.
    pub epsilon_budget: f64,
    /// The noise generator's key, from the environment variable `noise_key_env` names (required with
    /// `epsilon`).
    pub noise_key: Option<Secret>,
    /// `trusted_keys`: public keys (or HMAC key files) of the sites whose statements are accepted.
    pub trusted_keys: Vec<PathBuf>,
    /// `signing_key`: the key federation statements are signed with (Ed25519, or an HMAC key for an
    /// offline federation with a shared key map); default: the server's evidence key.
    pub signing_key: Option<PathBuf>,
    /// `allow_unsigned_fallback` (default false): when `signing_key` cannot be loaded, emit envelopes with
    /// the single placeholder signature `offline-unsigned-fallback` (warned and counted in
    /// `telemetry_federation_unsigned_total`); as a hub, accept such envelopes.
    pub allow_unsigned_fallback: bool,
    /// `observation_retention` (default 400d).
    pub observation_retention: Duration,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            aliases: BTreeMap::new(),
            k_anonymity: 5,
            epsilon: None,
            epsilon_budget: 10.0,
            noise_key: None,
            trusted_keys: Vec::new(),
            signing_key: None,
            allow_unsigned_fallback: false,
            observation_retention: Duration::from_secs(400 * 86_400),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FederationRaw {
    #[serde(default)]
    aliases: BTreeMap<String, String>,
    #[serde(default)]
    k_anonymity: Option<u64>,
    #[serde(default)]
    epsilon: Option<f64>,
    #[serde(default)]
    epsilon_budget: Option<f64>,
    #[serde(default)]
    noise_key_env: Option<String>,
    #[serde(default)]
    trusted_keys: Vec<PathBuf>,
    #[serde(default)]
    signing_key: Option<PathBuf>,
    #[serde(default)]
    allow_unsigned_fallback: bool,
    #[serde(default, deserialize_with = "optional_duration")]
    observation_retention: Option<Duration>,
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    stella_pipeline::duration::deserialize(deserializer).map(Some)
}

fn resolve(base_dir: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() { path } else { base_dir.join(path) }
}

/// Reads `federation`; key paths are relative to `base_dir`, the noise key is read from `env_vars`.
pub(super) fn federation(
    value: Option<&Value>,
    base_dir: &Path,
    env_vars: &EnvVars,
    problems: &mut Problems,
) -> FederationConfig {
    let defaults = FederationConfig::default();
    let Some(raw) = value.and_then(|value| typed::<FederationRaw>(value, "federation", problems)) else {
        return defaults;
    };
    let k_anonymity = raw.k_anonymity.unwrap_or(defaults.k_anonymity);
    if k_anonymity == 0 {
        problems.add("federation.k_anonymity", "must be at least 1 (5 is the default)");
    }
    if let Some(epsilon) = raw.epsilon.filter(|epsilon| !(epsilon.is_finite() && *epsilon > 0.0)) {
        problems.add(
            "federation.epsilon",
            format!("{epsilon} must be a positive number (e.g. 1.0), or leave it out for no noise"),
        );
    }
    let noise_key =
        raw.noise_key_env.as_deref().and_then(|variable| env_vars.get(variable)).map(|key| Secret(key.into()));
    match raw.noise_key_env.as_deref() {
        None if raw.epsilon.is_some() => problems
            .add("federation.noise_key_env", "epsilon needs a noise key: name the environment variable that holds it"),
        Some(variable) if raw.epsilon.is_some() && noise_key.is_none() => problems.add(
            "federation.noise_key_env",
            format!("the environment variable {variable} is not set (or empty); set it to the noise key"),
        ),
        _ => {}
    }
    let epsilon_budget = raw.epsilon_budget.unwrap_or(defaults.epsilon_budget);
    if !(epsilon_budget.is_finite() && epsilon_budget > 0.0) {
        problems.add("federation.epsilon_budget", format!("{epsilon_budget} must be a positive number"));
    }
    for (tenant, alias) in &raw.aliases {
        if alias.trim().is_empty() || alias == tenant {
            problems.add(
                format!("federation.aliases.{tenant}"),
                "give an alias other than the tenant id (the hub never sees tenant ids)",
            );
        }
    }
    FederationConfig {
        aliases: raw.aliases,
        k_anonymity,
        epsilon: raw.epsilon,
        epsilon_budget,
        noise_key,
        trusted_keys: raw.trusted_keys.into_iter().map(|path| resolve(base_dir, path)).collect(),
        signing_key: raw.signing_key.map(|path| resolve(base_dir, path)),
        allow_unsigned_fallback: raw.allow_unsigned_fallback,
        observation_retention: raw.observation_retention.unwrap_or(defaults.observation_retention),
    }
}
