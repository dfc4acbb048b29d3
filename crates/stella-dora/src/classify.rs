//! Performance tiers: Elite, High, Medium, Low per metric by the preset's thresholds, and overall the
//! worst of the metrics that have data.
use serde::Serialize;

use crate::settings::Preset;

/// A performance tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Tier {
    /// The best.
    Elite,
    /// Second.
    High,
    /// Third.
    Medium,
    /// Meets none of the thresholds.
    Low,
    /// No data to classify (never Low).
    #[serde(rename = "insufficient data")]
    InsufficientData,
}

impl Tier {
    /// As reports print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Elite => "Elite",
            Tier::High => "High",
            Tier::Medium => "Medium",
            Tier::Low => "Low",
            Tier::InsufficientData => "insufficient data",
        }
    }
}

/// The four metrics' values (`None`: no data).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Values {
    /// Successful production deployments per day.
    pub deployment_frequency_per_day: Option<f64>,
    /// Median lead time, hours.
    pub lead_time_hours: Option<f64>,
    /// Change failure rate, percent.
    pub change_failure_rate_percent: Option<f64>,
    /// MTTR, hours.
    pub mttr_hours: Option<f64>,
}

/// The tier of each metric (frequency, lead time, failure rate, MTTR) and overall.
pub fn classify(values: &Values, preset: &Preset) -> ([Tier; 4], Tier) {
    let at_least = |value: Option<f64>, thresholds: &[f64; 3]| {
        value.map_or(Tier::InsufficientData, |value| tier(thresholds.iter().position(|threshold| value >= *threshold)))
    };
    let below = |value: Option<f64>, thresholds: &[f64; 3]| {
        value.map_or(Tier::InsufficientData, |value| tier(thresholds.iter().position(|threshold| value < *threshold)))
    };
    let tiers = [
        at_least(values.deployment_frequency_per_day, &preset.deployment_frequency_per_day),
        below(values.lead_time_hours, &preset.lead_time_hours),
        below(values.change_failure_rate_percent, &preset.change_failure_rate_percent),
        below(values.mttr_hours, &preset.mttr_hours),
    ];
    let overall =
        tiers.iter().copied().filter(|tier| *tier != Tier::InsufficientData).max().unwrap_or(Tier::InsufficientData);
    (tiers, overall)
}

fn tier(position: Option<usize>) -> Tier {
    match position {
        Some(0) => Tier::Elite,
        Some(1) => Tier::High,
        Some(2) => Tier::Medium,
        _ => Tier::Low,
    }
}
