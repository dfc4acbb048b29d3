//! Incident mode of every tenant, kept in `<data-dir>/incidents.json` (written atomically on every change)
//! so it survives a restart, with its TTL enforced by a background task.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use stella_metrics::{GaugeVec, Registry, names};
use stella_pipeline::incident::{IncidentBoard, IncidentMode};
use stella_store::log::{LogFs, RealFs};

/// The file under the data directory.
pub const INCIDENTS_FILE: &str = "incidents.json";

/// Incident mode could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    /// The file could not be read or written.
    #[error("incident state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what we wrote.
    #[error("incident state {path} is damaged ({message}); fix or remove it (incident mode is then off)")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The parse error.
        message: String,
    },
}

impl IncidentError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            IncidentError::Io { .. } => "incident.io",
            IncidentError::Damaged { .. } => "incident.damaged_state",
        }
    }
}

/// The board and where it is saved.
pub struct Incidents {
    board: Arc<IncidentBoard>,
    path: PathBuf,
    gauge: GaugeVec,
}

impl Incidents {
    /// Reads `<data_dir>/incidents.json` (absent: every tenant off).
    pub fn open(data_dir: &Path, registry: &Registry) -> Result<Self, IncidentError> {
        let path = data_dir.join(INCIDENTS_FILE);
        let modes: BTreeMap<String, IncidentMode> = match RealFs.read_file(&path) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map_err(|error| IncidentError::Damaged { path: path.clone(), message: error.to_string() })?,
            Ok(None) => BTreeMap::new(),
            Err(source) => return Err(IncidentError::Io { path, source }),
        };
        let gauge = registry.gauge(
            names::INCIDENT_MODE,
            "Incident mode: state=on is 1 and state=off 0 while any tenant's incident mode is on.",
            &["state"],
        );
        let incidents = Incidents { board: Arc::new(IncidentBoard::new(modes)), path, gauge };
        incidents.update_gauge();
        Ok(incidents)
    }

    /// The shared board the samplers read.
    pub fn board(&self) -> &Arc<IncidentBoard> {
        &self.board
    }

    /// Sets `tenant`'s mode and saves every mode durably before answering.
    pub fn set(&self, tenant: &str, mode: IncidentMode) -> Result<(), IncidentError> {
        self.board.set(tenant, mode);
        self.update_gauge();
        self.save()
    }

    fn save(&self) -> Result<(), IncidentError> {
        let bytes = serde_json::to_vec_pretty(&self.board.all()).unwrap_or_default();
        if let Some(parent) = self.path.parent() {
            RealFs.create_dir_all(parent).map_err(|source| IncidentError::Io { path: parent.to_path_buf(), source })?;
        }
        RealFs.write_atomic(&self.path, &bytes).map_err(|source| IncidentError::Io { path: self.path.clone(), source })
    }

    fn update_gauge(&self) {
        let on = self.board.any_on();
        self.gauge.with(&["on"]).set(i64::from(on));
        self.gauge.with(&["off"]).set(i64::from(!on));
    }

    /// Turns off modes past their TTL (checked every second), logging each and calling `expired` (the
    /// audit trail) for it.
    pub fn enforce_ttl(self: &Arc<Self>, expired: impl Fn(&str, &IncidentMode) + Send + Sync + 'static) {
        let incidents = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let ended = incidents.board.expire(jiff::Timestamp::now());
                if ended.is_empty() {
                    continue;
                }
                incidents.update_gauge();
                if let Err(error) = incidents.save() {
                    tracing::error!(code = error.code(), %error, "cannot save incident mode after its TTL");
                }
                for (tenant, mode) in ended {
                    tracing::warn!(event = "incident.mode", state = "off", tenant = %tenant, services = ?mode.services, by = "ttl", "incident mode ended: its TTL passed");
                    expired(&tenant, &mode);
                }
            }
        });
    }
}
