//! Incident mode: per tenant, "keep every trace of these services (or all of them) until it ends".
//!
//! [`IncidentBoard`] holds the current mode of every tenant and a version number that changes on every
//! toggle, so tail samplers notice a change with one atomic read per tick. Persistence, the API and the
//! audit trail live with the collector; this is the state and its rules.
use std::collections::BTreeMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::tail_sampling::IncidentScope;

/// `on` or `off`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    /// Incident mode is on.
    On,
    /// Incident mode is off.
    #[default]
    Off,
}

/// One tenant's incident mode, as `GET /telemetry/incidents/mode` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentMode {
    /// `on` or `off`.
    pub state: IncidentState,
    /// The services kept at 100%; empty means every service of the tenant.
    #[serde(default)]
    pub services: Vec<String>,
    /// Why (free text from the operator).
    #[serde(default)]
    pub reason: String,
    /// When the state last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Who changed it (`token:<id>`, `unauthenticated`, or `ttl` when it expired).
    #[serde(default)]
    pub by: String,
    /// When an `on` state ends by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
}

impl IncidentMode {
    /// The services this mode keeps at `now` (an `on` past its `until` keeps none).
    pub fn scope(&self, now: Timestamp) -> IncidentScope {
        let active = self.state == IncidentState::On && self.until.is_none_or(|until| now < until);
        match (active, self.services.is_empty()) {
            (false, _) => IncidentScope::Off,
            (true, true) => IncidentScope::All,
            (true, false) => IncidentScope::Services(self.services.iter().cloned().collect()),
        }
    }
}

/// Every tenant's incident mode.
#[derive(Debug, Default)]
pub struct IncidentBoard {
    modes: RwLock<BTreeMap<String, IncidentMode>>,
    version: AtomicU64,
}

impl IncidentBoard {
    /// A board holding `modes` (read back from disk at start).
    pub fn new(modes: BTreeMap<String, IncidentMode>) -> Self {
        IncidentBoard { modes: RwLock::new(modes), version: AtomicU64::new(1) }
    }

    /// Changes on every toggle; samplers compare it with what they last applied.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// `tenant`'s mode (off when never set).
    pub fn get(&self, tenant: &str) -> IncidentMode {
        self.modes.read().unwrap_or_else(|poison| poison.into_inner()).get(tenant).cloned().unwrap_or_default()
    }

    /// Every tenant's mode, for persistence.
    pub fn all(&self) -> BTreeMap<String, IncidentMode> {
        self.modes.read().unwrap_or_else(|poison| poison.into_inner()).clone()
    }

    /// Sets `tenant`'s mode.
    pub fn set(&self, tenant: &str, mode: IncidentMode) {
        self.modes.write().unwrap_or_else(|poison| poison.into_inner()).insert(tenant.to_string(), mode);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The scope `tenant`'s sampler applies at `now`.
    pub fn scope(&self, tenant: &str, now: Timestamp) -> IncidentScope {
        self.get(tenant).scope(now)
    }

    /// Turns off every `on` mode past its `until` and returns the tenants it turned off, with the mode
    /// they had.
    pub fn expire(&self, now: Timestamp) -> Vec<(String, IncidentMode)> {
        let mut modes = self.modes.write().unwrap_or_else(|poison| poison.into_inner());
        let mut expired = Vec::new();
        for (tenant, mode) in modes.iter_mut() {
            if mode.state == IncidentState::On && mode.until.is_some_and(|until| until <= now) {
                expired.push((tenant.clone(), mode.clone()));
                *mode = IncidentMode {
                    state: IncidentState::Off,
                    services: Vec::new(),
                    reason: format!("ttl expired ({})", mode.reason),
                    since: Some(now),
                    by: "ttl".into(),
                    until: None,
                };
            }
        }
        if !expired.is_empty() {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
        expired
    }

    /// Whether any tenant's incident mode is on.
    pub fn any_on(&self) -> bool {
        self.modes
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .values()
            .any(|mode| mode.state == IncidentState::On)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn a_mode_keeps_its_services_until_it_expires() {
        let board = IncidentBoard::default();
        assert_eq!(board.scope("acme", at(0)), IncidentScope::Off);
        let version = board.version();
        let on = IncidentMode {
            state: IncidentState::On,
            services: vec!["checkout".into()],
            reason: "sev1".into(),
            since: Some(at(0)),
            by: "token:t1".into(),
            until: Some(at(100)),
        };
        board.set("acme", on);
        assert_ne!(board.version(), version);
        assert_eq!(board.scope("acme", at(50)), IncidentScope::Services(["checkout".to_string()].into()));
        assert_eq!(board.scope("other", at(50)), IncidentScope::Off);
        assert_eq!(board.scope("acme", at(100)), IncidentScope::Off, "past until it keeps nothing, expired or not");
        assert!(board.expire(at(99)).is_empty());
        let expired = board.expire(at(100));
        assert_eq!(expired.len(), 1);
        assert_eq!(board.get("acme").state, IncidentState::Off);
        assert_eq!(board.get("acme").by, "ttl");
        assert!(!board.any_on());
        board.set("acme", IncidentMode { state: IncidentState::On, ..IncidentMode::default() });
        assert_eq!(board.scope("acme", at(1_000_000)), IncidentScope::All, "no services: all; no until: no end");
    }
}
