//! `rules`, `alerting` and `self_monitoring`: the rule files the server evaluates against its store, the
//! Alertmanagers it sends alerts to, and its own metrics written into its store.
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use stella_export::egress::{EgressDenied, EgressPolicy};
use stella_query::rules::Group;

use super::validate::{Problems, typed};

/// `rules`.
#[derive(Debug, Clone, PartialEq)]
pub struct RulesConfig {
    /// `files`: Prometheus rule files, read and checked with the config (relative to its directory).
    pub files: Vec<PathBuf>,
    /// `builtin`: also evaluate the rules `stella telemetry rules render` ships (file name
    /// `builtin:stella-telemetry.rules.yml`).
    pub builtin: bool,
    /// The groups of those files, in file order.
    pub groups: Vec<Group>,
    /// `interval` (default 1m): how often a group without its own `interval` is evaluated.
    pub interval: Duration,
    /// `tenant` (default `default`): whose series the rules read, and where what they record goes.
    pub tenant: String,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            files: Vec::new(),
            builtin: false,
            groups: Vec::new(),
            interval: default_interval(),
            tenant: "default".into(),
        }
    }
}

/// `alerting`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertingConfig {
    /// `alertmanagers`: base URLs (`http://127.0.0.1:9093`) alerts are POSTed to (`/api/v2/alerts`).
    pub alertmanagers: Vec<String>,
    /// `timeout` (default 10s): per attempt.
    pub timeout: Duration,
    /// `resend_delay` (default 1m): how often a firing alert is sent again.
    pub resend_delay: Duration,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            alertmanagers: Vec::new(),
            timeout: Duration::from_secs(10),
            resend_delay: Duration::from_secs(60),
        }
    }
}

/// `self_monitoring`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfMonitoringConfig {
    /// `enabled` (default true): write the server's own metrics (`/metrics`) into the store.
    pub enabled: bool,
    /// `interval` (default 15s).
    pub interval: Duration,
    /// `tenant` (default `default`).
    pub tenant: String,
}

impl Default for SelfMonitoringConfig {
    fn default() -> Self {
        SelfMonitoringConfig { enabled: true, interval: Duration::from_secs(15), tenant: "default".into() }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesRaw {
    #[serde(default)]
    files: Vec<PathBuf>,
    #[serde(default)]
    builtin: bool,
    #[serde(default = "default_interval", deserialize_with = "stella_pipeline::duration::deserialize")]
    interval: Duration,
    #[serde(default = "default_tenant")]
    tenant: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertingRaw {
    #[serde(default)]
    alertmanagers: Vec<String>,
    #[serde(default = "default_timeout", deserialize_with = "stella_pipeline::duration::deserialize")]
    timeout: Duration,
    #[serde(default = "default_resend", deserialize_with = "stella_pipeline::duration::deserialize")]
    resend_delay: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelfMonitoringRaw {
    #[serde(default = "enabled")]
    enabled: bool,
    #[serde(default = "default_self_interval", deserialize_with = "stella_pipeline::duration::deserialize")]
    interval: Duration,
    #[serde(default = "default_tenant")]
    tenant: String,
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_self_interval() -> Duration {
    Duration::from_secs(15)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_resend() -> Duration {
    Duration::from_secs(60)
}

fn default_tenant() -> String {
    "default".into()
}

fn enabled() -> bool {
    true
}

/// Reads `rules`, loading and checking every file (a broken file is a config error naming the file,
/// group and rule).
pub(super) fn rules(value: Option<&Value>, base_dir: &Path, problems: &mut Problems) -> RulesConfig {
    let Some(raw) = value.and_then(|value| typed::<RulesRaw>(value, "rules", problems)) else {
        return RulesConfig::default();
    };
    if raw.interval < Duration::from_secs(1) {
        problems.add("rules.interval", "must be at least 1s; e.g. 1m");
    }
    let mut groups = Vec::new();
    if raw.builtin {
        for asset in stella_export::monitoring::RULES.iter().filter(|asset| !asset.path.starts_with("tests/")) {
            match stella_query::rules::file::parse(&format!("builtin:{}", asset.path), asset.content) {
                Ok(loaded) => groups.extend(loaded),
                Err(error) => problems.add("rules.builtin", error.to_string()),
            }
        }
    }
    let files: Vec<PathBuf> =
        raw.files.into_iter().map(|path| if path.is_absolute() { path } else { base_dir.join(path) }).collect();
    for (index, path) in files.iter().enumerate() {
        match stella_query::rules::file::load(path) {
            Ok(loaded) => groups.extend(loaded),
            Err(error) => problems.add(format!("rules.files[{index}]"), error.to_string()),
        }
    }
    RulesConfig { files, builtin: raw.builtin, groups, interval: raw.interval, tenant: raw.tenant }
}

/// Reads `alerting`; every Alertmanager must be an http(s) URL the egress policy allows (sealed mode is
/// not an error: alerts are then not sent, and start-up says so).
pub(super) fn alerting(value: Option<&Value>, egress: &EgressPolicy, problems: &mut Problems) -> AlertingConfig {
    let Some(raw) = value.and_then(|value| typed::<AlertingRaw>(value, "alerting", problems)) else {
        return AlertingConfig::default();
    };
    for (index, url) in raw.alertmanagers.iter().enumerate() {
        let path = format!("alerting.alertmanagers[{index}]");
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problems.add(path, format!("{url:?} is not an http:// or https:// URL such as http://127.0.0.1:9093"));
            continue;
        }
        match egress.check(url) {
            Ok(_) | Err(EgressDenied::Sealed { .. }) => {}
            Err(denied) => problems.add(path, denied.to_string()),
        }
    }
    AlertingConfig { alertmanagers: raw.alertmanagers, timeout: raw.timeout, resend_delay: raw.resend_delay }
}

/// Reads `self_monitoring`.
pub(super) fn self_monitoring(value: Option<&Value>, problems: &mut Problems) -> SelfMonitoringConfig {
    let Some(raw) = value.and_then(|value| typed::<SelfMonitoringRaw>(value, "self_monitoring", problems)) else {
        return SelfMonitoringConfig::default();
    };
    if raw.interval < Duration::from_secs(1) {
        problems.add("self_monitoring.interval", "must be at least 1s; e.g. 15s");
    }
    SelfMonitoringConfig { enabled: raw.enabled, interval: raw.interval, tenant: raw.tenant }
}
