//! `dora` settings: what counts as production, how incidents link to deployments, severities, SLO
//! targets and the classification preset.
use std::time::Duration;

use serde::Serialize;

/// The SLO targets (`dora.slo`), as the seed names them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloTargets {
    /// Median lead time below this many hours.
    pub lead_time_slo_hours: f64,
    /// At least this many successful production deployments per day.
    pub deployment_frequency_slo_per_day: f64,
    /// Change failure rate below this percentage.
    pub change_failure_rate_slo_percent: f64,
    /// MTTR below this many hours.
    pub mttr_slo_hours: f64,
}

impl Default for SloTargets {
    fn default() -> Self {
        SloTargets {
            lead_time_slo_hours: 24.0,
            deployment_frequency_slo_per_day: 1.0,
            change_failure_rate_slo_percent: 15.0,
            mttr_slo_hours: 1.0,
        }
    }
}

/// Classification thresholds, per tier from Elite down (a value meeting none is Low).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preset {
    /// Its name, recorded in every output.
    pub name: String,
    /// Deployments per day at least: Elite, High, Medium.
    pub deployment_frequency_per_day: [f64; 3],
    /// Median lead time in hours below: Elite, High, Medium.
    pub lead_time_hours: [f64; 3],
    /// Change failure rate in percent below: Elite, High, Medium.
    pub change_failure_rate_percent: [f64; 3],
    /// MTTR in hours below: Elite, High, Medium.
    pub mttr_hours: [f64; 3],
}

impl Preset {
    /// `seed-default`: the thresholds of the upstream specification.
    pub fn seed_default() -> Preset {
        Preset {
            name: "seed-default".into(),
            deployment_frequency_per_day: [1.0, 1.0 / 7.0, 1.0 / 30.0],
            lead_time_hours: [24.0, 168.0, 4380.0],
            change_failure_rate_percent: [15.0, 30.0, 45.0],
            mttr_hours: [1.0, 24.0, 168.0],
        }
    }
}

/// Everything a report depends on besides the events and the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoraSettings {
    /// Environments that are production (lower-case).
    pub production_environments: Vec<String>,
    /// How long after a deployment an incident of the same service is still blamed on it.
    #[serde(serialize_with = "seconds")]
    pub link_window: Duration,
    /// Incident severities, most severe first (lower-case); others are `unknown`.
    pub severities: Vec<String>,
    /// The SLO targets.
    pub slo: SloTargets,
    /// The classification preset.
    pub preset: Preset,
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_secs())
}

impl Default for DoraSettings {
    fn default() -> Self {
        DoraSettings {
            production_environments: vec!["production".into(), "prod".into()],
            link_window: Duration::from_secs(24 * 3600),
            severities: ["sev1", "sev2", "sev3", "sev4"].map(String::from).to_vec(),
            slo: SloTargets::default(),
            preset: Preset::seed_default(),
        }
    }
}

impl DoraSettings {
    /// Whether `environment` is production.
    pub fn is_production(&self, environment: &str) -> bool {
        self.production_environments.iter().any(|production| production == environment)
    }
}
