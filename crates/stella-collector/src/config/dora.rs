//! `dora`: what the DORA metrics and reports count as production, how incidents link to deployments,
//! incident severities, SLO targets, the classification thresholds and the metrics window. The API
//! turns it into `stella_dora::DoraSettings`.
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::validate::{Problems, typed};

/// `dora.slo`, as the seed names the targets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoraSlo {
    /// Median lead time below this many hours (default 24).
    #[serde(default = "default_lead_time")]
    pub lead_time_slo_hours: f64,
    /// At least this many successful production deployments a day (default 1).
    #[serde(default = "default_frequency")]
    pub deployment_frequency_slo_per_day: f64,
    /// Change failure rate below this percentage (default 15).
    #[serde(default = "default_failure_rate")]
    pub change_failure_rate_slo_percent: f64,
    /// MTTR below this many hours (default 1).
    #[serde(default = "default_mttr")]
    pub mttr_slo_hours: f64,
}

impl Default for DoraSlo {
    fn default() -> Self {
        DoraSlo {
            lead_time_slo_hours: default_lead_time(),
            deployment_frequency_slo_per_day: default_frequency(),
            change_failure_rate_slo_percent: default_failure_rate(),
            mttr_slo_hours: default_mttr(),
        }
    }
}

/// `dora.classification`: a named preset of thresholds (Elite, High, Medium; a value meeting none is
/// Low). Default `seed-default`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoraPreset {
    /// Its name, recorded in every report.
    pub name: String,
    /// Deployments per day at least.
    pub deployment_frequency_per_day: [f64; 3],
    /// Median lead time hours below.
    pub lead_time_hours: [f64; 3],
    /// Change failure rate percent below.
    pub change_failure_rate_percent: [f64; 3],
    /// MTTR hours below.
    pub mttr_hours: [f64; 3],
}

/// `dora`.
#[derive(Debug, Clone, PartialEq)]
pub struct DoraConfig {
    /// `production_environments` (default `production`, `prod`; lower-cased).
    pub production_environments: Vec<String>,
    /// `link_window` (default 24h).
    pub link_window: Duration,
    /// `severities`, most severe first (default `sev1`..`sev4`; lower-cased).
    pub severities: Vec<String>,
    /// `slo`.
    pub slo: DoraSlo,
    /// `classification`, when not the seed's.
    pub classification: Option<DoraPreset>,
    /// `metrics_window` (default 30d): the trailing window of the frequency and failure-rate gauges.
    pub metrics_window: Duration,
    /// `retention` (default 400d): events older than this are deleted.
    pub retention: Duration,
}

impl Default for DoraConfig {
    fn default() -> Self {
        DoraConfig {
            production_environments: vec!["production".into(), "prod".into()],
            link_window: Duration::from_secs(86_400),
            severities: ["sev1", "sev2", "sev3", "sev4"].map(String::from).to_vec(),
            slo: DoraSlo::default(),
            classification: None,
            metrics_window: Duration::from_secs(30 * 86_400),
            retention: Duration::from_secs(400 * 86_400),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DoraRaw {
    #[serde(default)]
    production_environments: Option<Vec<String>>,
    #[serde(default, deserialize_with = "optional_duration")]
    link_window: Option<Duration>,
    #[serde(default)]
    severities: Option<Vec<String>>,
    #[serde(default)]
    slo: Option<DoraSlo>,
    #[serde(default)]
    classification: Option<DoraPreset>,
    #[serde(default, deserialize_with = "optional_duration")]
    metrics_window: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    retention: Option<Duration>,
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    stella_pipeline::duration::deserialize(deserializer).map(Some)
}

fn default_lead_time() -> f64 {
    24.0
}

fn default_frequency() -> f64 {
    1.0
}

fn default_failure_rate() -> f64 {
    15.0
}

fn default_mttr() -> f64 {
    1.0
}

/// Reads `dora`.
pub(super) fn dora(value: Option<&Value>, problems: &mut Problems) -> DoraConfig {
    let defaults = DoraConfig::default();
    let Some(raw) = value.and_then(|value| typed::<DoraRaw>(value, "dora", problems)) else { return defaults };
    let lower = |list: Vec<String>| list.into_iter().map(|item| item.trim().to_lowercase()).collect::<Vec<_>>();
    let production_environments = raw.production_environments.map(lower).unwrap_or(defaults.production_environments);
    if production_environments.is_empty() || production_environments.iter().any(String::is_empty) {
        problems.add("dora.production_environments", "list at least one non-empty environment name, e.g. [production]");
    }
    let severities = raw.severities.map(lower).unwrap_or(defaults.severities);
    if severities.iter().any(|severity| severity.is_empty() || severity == "unknown") {
        problems.add("dora.severities", "severity names must be non-empty and not `unknown` (reserved for the rest)");
    }
    let slo = raw.slo.unwrap_or_default();
    for (key, value) in [
        ("lead_time_slo_hours", slo.lead_time_slo_hours),
        ("deployment_frequency_slo_per_day", slo.deployment_frequency_slo_per_day),
        ("change_failure_rate_slo_percent", slo.change_failure_rate_slo_percent),
        ("mttr_slo_hours", slo.mttr_slo_hours),
    ] {
        if !value.is_finite() || value <= 0.0 {
            problems.add(format!("dora.slo.{key}"), format!("{value} must be a positive number"));
        }
    }
    if let Some(preset) = &raw.classification {
        let descending = |list: &[f64; 3]| list[0] >= list[1] && list[1] >= list[2];
        let ascending = |list: &[f64; 3]| list[0] <= list[1] && list[1] <= list[2];
        if !descending(&preset.deployment_frequency_per_day) {
            problems.add(
                "dora.classification.deployment_frequency_per_day",
                "give Elite, High, Medium thresholds from highest to lowest",
            );
        }
        for (key, list) in [
            ("lead_time_hours", &preset.lead_time_hours),
            ("change_failure_rate_percent", &preset.change_failure_rate_percent),
            ("mttr_hours", &preset.mttr_hours),
        ] {
            if !ascending(list) {
                problems.add(
                    format!("dora.classification.{key}"),
                    "give Elite, High, Medium thresholds from lowest to highest",
                );
            }
        }
    }
    DoraConfig {
        production_environments,
        link_window: raw.link_window.unwrap_or(defaults.link_window),
        severities,
        slo,
        classification: raw.classification,
        metrics_window: raw.metrics_window.unwrap_or(defaults.metrics_window),
        retention: raw.retention.unwrap_or(defaults.retention),
    }
}
