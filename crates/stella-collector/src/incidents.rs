//! Incident mode of every tenant, kept in the state database (`<data-dir>/state.redb`, one entry per
//! tenant, durable before a toggle is answered) so it survives a restart, with its TTL enforced by a
//! background task.
use std::sync::{Arc, Mutex};

use stella_metrics::{GaugeVec, Registry, names};
use stella_pipeline::incident::{IncidentBoard, IncidentMode};
use stella_store::tables::{IncidentRepository, StateError};

/// Incident mode could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    /// The state database could not be read or written.
    #[error("incident state: {0}")]
    Io(#[from] StateError),
    /// A saved mode is not what we wrote.
    #[error(
        "the saved incident mode of tenant {tenant:?} is damaged ({source}); restore the state database from a backup"
    )]
    Damaged {
        /// The tenant.
        tenant: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

impl IncidentError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            IncidentError::Io(_) => "incident.io",
            IncidentError::Damaged { .. } => "incident.damaged_state",
        }
    }
}

/// The board and where it is saved.
pub struct Incidents {
    board: Arc<IncidentBoard>,
    repository: Arc<dyn IncidentRepository>,
    gauge: GaugeVec,
    /// One change at a time, so the saved modes and the board never disagree.
    saving: Mutex<()>,
}

impl Incidents {
    /// Reads every tenant's saved mode from `repository` (none saved: every tenant off).
    pub fn open(repository: Arc<dyn IncidentRepository>, registry: &Registry) -> Result<Self, IncidentError> {
        let mut modes = std::collections::BTreeMap::new();
        for (tenant, bytes) in repository.list()? {
            let mode: IncidentMode = serde_json::from_slice(&bytes)
                .map_err(|source| IncidentError::Damaged { tenant: tenant.clone(), source })?;
            modes.insert(tenant, mode);
        }
        let gauge = registry.gauge(
            names::INCIDENT_MODE,
            "Incident mode: state=on is 1 and state=off 0 while any tenant's incident mode is on.",
            &["state"],
        );
        let incidents =
            Incidents { board: Arc::new(IncidentBoard::new(modes)), repository, gauge, saving: Mutex::new(()) };
        incidents.update_gauge();
        Ok(incidents)
    }

    /// The shared board the samplers read.
    pub fn board(&self) -> &Arc<IncidentBoard> {
        &self.board
    }

    /// Saves `tenant`'s mode durably, then sets it on the board; when the save fails, nothing changes.
    pub fn set(&self, tenant: &str, mode: IncidentMode) -> Result<(), IncidentError> {
        let _one_at_a_time = self.saving.lock().unwrap_or_else(|poison| poison.into_inner());
        self.repository.set(tenant, &encode(&mode))?;
        self.board.set(tenant, mode);
        self.update_gauge();
        Ok(())
    }

    /// `tenant`'s mode as saved (what a restart reads back).
    pub fn saved(&self, tenant: &str) -> Result<IncidentMode, IncidentError> {
        let Some(bytes) = self.repository.get(tenant)? else { return Ok(IncidentMode::default()) };
        serde_json::from_slice(&bytes).map_err(|source| IncidentError::Damaged { tenant: tenant.to_string(), source })
    }

    /// Turns off the modes past their TTL at `now` and saves them; returns the tenants turned off, with
    /// the mode they had (each logged).
    pub fn expire(&self, now: jiff::Timestamp) -> Vec<(String, IncidentMode)> {
        let _one_at_a_time = self.saving.lock().unwrap_or_else(|poison| poison.into_inner());
        let ended = self.board.expire(now);
        if ended.is_empty() {
            return ended;
        }
        self.update_gauge();
        for (tenant, mode) in &ended {
            tracing::warn!(event = "incident.mode", state = "off", tenant = %tenant, services = ?mode.services, by = "ttl", "incident mode ended: its TTL passed");
            if let Err(error) = self.repository.set(tenant, &encode(&self.board.get(tenant))) {
                let error = IncidentError::from(error);
                tracing::error!(code = error.code(), %error, tenant = %tenant, "cannot save incident mode after its TTL");
            }
        }
        ended
    }

    fn update_gauge(&self) {
        let on = self.board.any_on();
        self.gauge.with(&["on"]).set(i64::from(on));
        self.gauge.with(&["off"]).set(i64::from(!on));
    }
}

/// A mode as saved: JSON.
fn encode(mode: &IncidentMode) -> Vec<u8> {
    // Cannot fail: a struct of strings, an enum and timestamps.
    serde_json::to_vec(mode).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use stella_pipeline::incident::IncidentState;
    use stella_store::tables::StateDb;

    use super::*;

    fn on_until(until: i64) -> IncidentMode {
        IncidentMode {
            state: IncidentState::On,
            services: vec!["checkout".into()],
            reason: "outage".into(),
            since: Some(jiff::Timestamp::from_second(100).unwrap()),
            by: "token:a".into(),
            until: Some(jiff::Timestamp::from_second(until).unwrap()),
        }
    }

    fn open(db: &StateDb) -> Result<Incidents, IncidentError> {
        Incidents::open(Arc::new(db.incidents()), &Registry::default())
    }

    #[test]
    fn a_mode_is_saved_when_set_and_read_back_by_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let incidents = open(&StateDb::open(dir.path()).unwrap()).unwrap();
            incidents.set("acme", on_until(200)).unwrap();
            assert_eq!(incidents.saved("acme").unwrap(), on_until(200));
            assert_eq!(incidents.saved("globex").unwrap(), IncidentMode::default(), "never set: off");
        }
        let incidents = open(&StateDb::open(dir.path()).unwrap()).unwrap();
        assert_eq!(incidents.board().get("acme"), on_until(200));
        assert!(incidents.board().any_on());
    }

    #[test]
    fn a_mode_past_its_ttl_is_turned_off_and_saved_off() {
        let dir = tempfile::tempdir().unwrap();
        let incidents = open(&StateDb::open(dir.path()).unwrap()).unwrap();
        incidents.set("acme", on_until(200)).unwrap();
        assert!(incidents.expire(jiff::Timestamp::from_second(150).unwrap()).is_empty());
        let ended = incidents.expire(jiff::Timestamp::from_second(200).unwrap());
        assert_eq!(ended, [("acme".to_string(), on_until(200))]);
        let saved = incidents.saved("acme").unwrap();
        assert_eq!((saved.state, saved.by.as_str()), (IncidentState::Off, "ttl"));
    }

    #[test]
    fn a_damaged_saved_mode_stops_the_open_naming_its_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        db.incidents().set("acme", b"{ not json").unwrap();
        let Err(error) = open(&db) else { panic!("a damaged mode was accepted") };
        assert_eq!(error.code(), "incident.damaged_state");
        assert!(error.to_string().contains("\"acme\""), "{error}");
    }
}
