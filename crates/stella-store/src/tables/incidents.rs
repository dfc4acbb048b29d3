//! Incident mode in the state database: table `incident_modes`, key the tenant, value the collector's
//! serialized mode (JSON). The store keeps the bytes; the collector owns their meaning.
use redb::{ReadableTable, TableDefinition};

use super::db::StateDb;
use super::error::StateError;

/// The table.
pub(super) const INCIDENT_MODES: TableDefinition<&str, &[u8]> = TableDefinition::new("incident_modes");

/// Where each tenant's incident mode is kept. The collector reads every mode at start and writes a
/// tenant's mode on every toggle (and when its TTL ends it); the write is durable when `set` returns.
pub trait IncidentRepository: Send + Sync {
    /// `tenant`'s saved mode, `None` when it was never set.
    fn get(&self, tenant: &str) -> Result<Option<Vec<u8>>, StateError>;

    /// Saves `tenant`'s mode, replacing the one before.
    fn set(&self, tenant: &str, mode: &[u8]) -> Result<(), StateError>;

    /// Every saved mode, by tenant in byte order.
    fn list(&self) -> Result<Vec<(String, Vec<u8>)>, StateError>;
}

/// [`IncidentRepository`] on the state database.
#[derive(Debug, Clone)]
pub struct RedbIncidents {
    db: StateDb,
}

impl RedbIncidents {
    pub(super) fn new(db: StateDb) -> Self {
        RedbIncidents { db }
    }
}

impl IncidentRepository for RedbIncidents {
    fn get(&self, tenant: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.db.read(|txn| {
            let table = txn.open_table(INCIDENT_MODES).map_err(|source| self.db.storage(source))?;
            let mode = table.get(tenant).map_err(|source| self.db.storage(source))?;
            Ok(mode.map(|mode| mode.value().to_vec()))
        })
    }

    fn set(&self, tenant: &str, mode: &[u8]) -> Result<(), StateError> {
        self.db.write(|txn| {
            let mut table = txn.open_table(INCIDENT_MODES).map_err(|source| self.db.storage(source))?;
            table.insert(tenant, mode).map_err(|source| self.db.storage(source))?;
            Ok(())
        })
    }

    fn list(&self) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        self.db.read(|txn| {
            let table = txn.open_table(INCIDENT_MODES).map_err(|source| self.db.storage(source))?;
            let mut modes = Vec::new();
            for entry in table.iter().map_err(|source| self.db.storage(source))? {
                let (tenant, mode) = entry.map_err(|source| self.db.storage(source))?;
                modes.push((tenant.value().to_string(), mode.value().to_vec()));
            }
            Ok(modes)
        })
    }
}
