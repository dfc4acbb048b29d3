//! `incident`: how far back an incident's hold and bundle reach, and whom to tell when it toggles.
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use stella_export::egress::{EgressDenied, EgressPolicy};

use super::validate::{Problems, typed};

/// `incident`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentConfig {
    /// `lookback` (default 1h): turning incident mode on holds (and its end bundles) data from this long
    /// before the toggle.
    pub lookback: Duration,
    /// `notify.webhook`: a URL each toggle is POSTed to as JSON, through the egress policy.
    pub webhook: Option<String>,
    /// `notify.timeout` (default 5s): per attempt.
    pub webhook_timeout: Duration,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig { lookback: default_lookback(), webhook: None, webhook_timeout: default_timeout() }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct IncidentRaw {
    #[serde(default = "default_lookback", deserialize_with = "stella_pipeline::duration::deserialize")]
    lookback: Duration,
    #[serde(default)]
    notify: Option<NotifyRaw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyRaw {
    webhook: String,
    #[serde(default = "default_timeout", deserialize_with = "stella_pipeline::duration::deserialize")]
    timeout: Duration,
}

fn default_lookback() -> Duration {
    Duration::from_secs(3600)
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Reads `incident`; the webhook must be an http(s) URL the egress policy allows (sealed mode is not an
/// error: the webhook stays inert and start-up says so).
pub(super) fn incident(value: Option<&Value>, egress: &EgressPolicy, problems: &mut Problems) -> IncidentConfig {
    let Some(raw) = value.and_then(|value| typed::<IncidentRaw>(value, "incident", problems)) else {
        return IncidentConfig::default();
    };
    if raw.lookback > Duration::from_secs(30 * 86_400) {
        problems.add("incident.lookback", "must be at most 30d; e.g. 1h");
    }
    let notify = raw.notify.filter(|notify| {
        if !(notify.webhook.starts_with("http://") || notify.webhook.starts_with("https://")) {
            problems.add("incident.notify.webhook", format!("{:?} is not an http:// or https:// URL", notify.webhook));
            return false;
        }
        match egress.check(&notify.webhook) {
            Ok(_) | Err(EgressDenied::Sealed { .. }) => true,
            Err(denied) => {
                problems.add("incident.notify.webhook", denied.to_string());
                false
            }
        }
    });
    IncidentConfig {
        lookback: raw.lookback,
        webhook_timeout: notify.as_ref().map_or_else(default_timeout, |notify| notify.timeout),
        webhook: notify.map(|notify| notify.webhook),
    }
}
