//! Holds: time windows of a tenant's data that retention must keep. Legal holds are placed and released
//! by admins; incident holds open when incident mode turns on (from `lookback` before) and close when it
//! ends. Kept in the state database (`<data-dir>/state.redb`, see [`crate::tables`]), durably on every
//! change.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::tables::{HoldRepository, StateDb, StateError};

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
    /// The state database could not be read or written.
    #[error("holds: {0}")]
    Io(#[from] StateError),
    /// A stored hold is not what we wrote.
    #[error("hold entry {entry} in {path} is damaged ({source}); retention keeps everything until it is fixed")]
    Damaged {
        /// The state database.
        path: PathBuf,
        /// The hold's entry number.
        entry: u64,
        /// The parse error.
        #[source]
        source: serde_json::Error,
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
            HoldError::Io(_) => "hold.io",
            HoldError::Damaged { .. } => "hold.damaged",
            HoldError::NotFound(_) => "hold.not_found",
            HoldError::Reversed { .. } => "hold.invalid_window",
        }
    }
}

/// The holds every component shares: the store's retention asks them, the API and incident mode change
/// them. Any [`HoldRepository`]; a process keeps them in its state database ([`crate::tables::RedbHolds`]).
pub type HoldBook = dyn HoldRepository;

impl HoldBook {
    /// The holds kept in `<data_dir>/state.redb`, opening it or sharing this process's handle on it.
    pub fn open(data_dir: &Path) -> Result<Arc<HoldBook>, HoldError> {
        Ok(Arc::new(StateDb::open(data_dir)?.holds()))
    }
}
