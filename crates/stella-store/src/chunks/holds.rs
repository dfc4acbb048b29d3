//! Holds: time windows of a tenant's data that retention must keep. Legal holds are placed and released
//! by admins; incident holds open when incident mode turns on (from `lookback` before) and close when it
//! ends. Kept in `<data-dir>/holds.json`, written atomically on every change.
use std::path::PathBuf;
use std::sync::Mutex;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::log::{LogFs, RealFs};

/// `legal` or `incident`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldKind {
    /// Placed by an admin (`POST /telemetry/holds`).
    Legal,
    /// Placed by incident mode.
    Incident,
}

/// One hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// `hold-<n>`.
    pub id: String,
    /// The tenant whose data it keeps.
    pub tenant: String,
    /// `legal` or `incident`.
    pub kind: HoldKind,
    /// Start of the window.
    pub from: Timestamp,
    /// End of the window; open (until released) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
    /// Why.
    pub reason: String,
    /// Who placed it.
    pub by: String,
    /// When it was placed.
    pub created: Timestamp,
    /// When it was released (then it keeps nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<Timestamp>,
}

impl Hold {
    /// Whether the hold keeps data whose items span `[min, max]` (unix nanoseconds).
    pub fn covers(&self, min: u64, max: u64) -> bool {
        if self.released.is_some() {
            return false;
        }
        let nanos = |at: Timestamp| u64::try_from(at.as_nanosecond()).unwrap_or(0);
        let to = self.to.map_or(u64::MAX, nanos);
        min <= to && max >= nanos(self.from)
    }
}

/// Holds could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// The file could not be read or written.
    #[error("holds {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what we wrote.
    #[error("holds {path} is damaged ({message}); retention keeps everything until it is fixed")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The parse error.
        message: String,
    },
    /// No such hold (for this tenant).
    #[error("no hold {0}")]
    NotFound(String),
    /// The window is empty or reversed.
    #[error("the hold's `to` ({to}) is before its `from` ({from})")]
    Reversed {
        /// Start.
        from: Timestamp,
        /// End.
        to: Timestamp,
    },
}

impl HoldError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            HoldError::Io { .. } => "hold.io",
            HoldError::Damaged { .. } => "hold.damaged",
            HoldError::NotFound(_) => "hold.not_found",
            HoldError::Reversed { .. } => "hold.invalid_window",
        }
    }
}

/// Every hold, persisted.
#[derive(Debug)]
pub struct HoldBook {
    path: PathBuf,
    holds: Mutex<Vec<Hold>>,
}

impl HoldBook {
    /// Reads `<data_dir>/holds.json` (absent: no holds).
    pub fn open(data_dir: &std::path::Path) -> Result<Self, HoldError> {
        let path = data_dir.join("holds.json");
        let holds = match RealFs.read_file(&path) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map_err(|error| HoldError::Damaged { path: path.clone(), message: error.to_string() })?,
            Ok(None) => Vec::new(),
            Err(source) => return Err(HoldError::Io { path, source }),
        };
        Ok(HoldBook { path, holds: Mutex::new(holds) })
    }

    fn save(&self, holds: &[Hold]) -> Result<(), HoldError> {
        if let Some(parent) = self.path.parent() {
            RealFs.create_dir_all(parent).map_err(|source| HoldError::Io { path: parent.to_path_buf(), source })?;
        }
        let bytes = serde_json::to_vec_pretty(holds).unwrap_or_default();
        RealFs.write_atomic(&self.path, &bytes).map_err(|source| HoldError::Io { path: self.path.clone(), source })
    }

    /// Places a hold and saves it before returning it.
    pub fn add(
        &self,
        tenant: &str,
        kind: HoldKind,
        from: Timestamp,
        to: Option<Timestamp>,
        reason: &str,
        by: &str,
    ) -> Result<Hold, HoldError> {
        if let Some(to) = to.filter(|to| *to < from) {
            return Err(HoldError::Reversed { from, to });
        }
        let mut holds = self.holds.lock().unwrap_or_else(|poison| poison.into_inner());
        let hold = Hold {
            id: format!("hold-{}", holds.len() + 1),
            tenant: tenant.to_string(),
            kind,
            from,
            to,
            reason: reason.to_string(),
            by: by.to_string(),
            created: Timestamp::now(),
            released: None,
        };
        holds.push(hold.clone());
        self.save(&holds)?;
        Ok(hold)
    }

    /// Releases `tenant`'s hold `id`.
    pub fn release(&self, tenant: &str, id: &str) -> Result<Hold, HoldError> {
        let mut holds = self.holds.lock().unwrap_or_else(|poison| poison.into_inner());
        let hold = holds
            .iter_mut()
            .find(|hold| hold.id == id && hold.tenant == tenant && hold.released.is_none())
            .ok_or_else(|| HoldError::NotFound(id.to_string()))?;
        hold.released = Some(Timestamp::now());
        let released = hold.clone();
        self.save(&holds)?;
        Ok(released)
    }

    /// Closes `tenant`'s open incident holds at `at` (incident mode ended).
    pub fn close_incident(&self, tenant: &str, at: Timestamp) -> Result<(), HoldError> {
        let mut holds = self.holds.lock().unwrap_or_else(|poison| poison.into_inner());
        let mut changed = false;
        for hold in holds
            .iter_mut()
            .filter(|hold| hold.tenant == tenant && hold.kind == HoldKind::Incident && hold.to.is_none())
        {
            hold.to = Some(at);
            changed = true;
        }
        if changed {
            self.save(&holds)?;
        }
        Ok(())
    }

    /// `tenant`'s holds, oldest first.
    pub fn list(&self, tenant: &str) -> Vec<Hold> {
        self.holds
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .filter(|hold| hold.tenant == tenant)
            .cloned()
            .collect()
    }

    /// Whether any of `tenant`'s holds keeps data spanning `[min, max]`.
    pub fn holds(&self, tenant: &str, min: u64, max: u64) -> bool {
        self.holds
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .any(|hold| hold.tenant == tenant && hold.covers(min, max))
    }
}
