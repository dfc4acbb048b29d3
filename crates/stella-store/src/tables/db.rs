//! The state database file and its one handle per process.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use redb::{ReadOnlyTable, ReadTransaction, ReadableDatabase, TableDefinition, WriteTransaction};

use super::counters::RedbCounters;
use super::error::StateError;
use super::holds::{HOLDS, RedbHolds};
use super::incidents::{INCIDENT_MODES, RedbIncidents};
use super::migrate;
use super::records::RedbRecords;

/// The file under the data directory.
pub const STATE_FILE: &str = "state.redb";

struct Inner {
    path: PathBuf,
    db: redb::Database,
}

/// The databases this process has open, by canonical data directory. redb locks its file for one handle
/// at a time, so a second open in the same process shares the first handle instead of failing; the entry
/// dies with the last clone, which closes the file.
static OPEN: Mutex<Vec<(PathBuf, Weak<Inner>)>> = Mutex::new(Vec::new());

/// `<data-dir>/state.redb`: the small tables of state that is not telemetry. Cheap to clone; every clone
/// is the same open database, and the file closes when the last one is dropped.
#[derive(Clone)]
pub struct StateDb {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

impl StateDb {
    /// Opens (or creates) `<data_dir>/state.redb`, or shares the handle this process already has on it.
    /// On first open it imports `holds.json` and `incidents.json` into empty tables and renames them to
    /// `*.json.migrated`. While another process holds the file, it fails at once with
    /// [`StateError::AlreadyOpen`]; it never waits.
    pub fn open(data_dir: &Path) -> Result<StateDb, StateError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StateError::Io { path: data_dir.to_path_buf(), source })?;
        let canonical = std::fs::canonicalize(data_dir)
            .map_err(|source| StateError::Io { path: data_dir.to_path_buf(), source })?;
        let mut open = OPEN.lock().unwrap_or_else(|poison| poison.into_inner());
        open.retain(|(_, handle)| handle.strong_count() > 0);
        if let Some(inner) = open.iter().find(|(dir, _)| *dir == canonical).and_then(|(_, handle)| handle.upgrade()) {
            return Ok(StateDb { inner });
        }
        let path = canonical.join(STATE_FILE);
        let db = redb::Database::create(&path).map_err(|source| match source {
            redb::DatabaseError::DatabaseAlreadyOpen => StateError::AlreadyOpen { path: path.clone() },
            source => StateError::Open { path: path.clone(), source },
        })?;
        let state = StateDb { inner: Arc::new(Inner { path, db }) };
        state.write(|txn| {
            txn.open_table(HOLDS).map_err(|source| state.storage(source))?;
            txn.open_table(INCIDENT_MODES).map_err(|source| state.storage(source))?;
            Ok::<_, StateError>(())
        })?;
        migrate::import_json_files(&state, &canonical)?;
        open.push((canonical, Arc::downgrade(&state.inner)));
        Ok(state)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The holds retention respects.
    pub fn holds(&self) -> RedbHolds {
        RedbHolds::new(self.clone())
    }

    /// Every tenant's incident mode.
    pub fn incidents(&self) -> RedbIncidents {
        RedbIncidents::new(self.clone())
    }

    /// The replace-by-id table of records of `kind` (`dora.events`, `federation.consents`, ...), one
    /// redb table per kind.
    pub fn records(&self, kind: &'static str) -> RedbRecords {
        RedbRecords::new(self.clone(), kind)
    }

    /// The counter table of `kind` (`federation.budgets`, ...), one redb table per kind.
    pub fn counters(&self, kind: &'static str) -> RedbCounters {
        RedbCounters::new(self.clone(), kind)
    }

    /// Runs `change` in a write transaction and commits it durably before returning; when `change` fails,
    /// the transaction is dropped and nothing of it is kept. redb runs one write transaction at a time.
    pub(super) fn write<T, E: From<StateError>>(
        &self,
        change: impl FnOnce(&WriteTransaction) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self.inner.db.begin_write().map_err(|source| self.storage(source))?;
        let value = change(&txn)?;
        txn.commit().map_err(|source| self.storage(source))?;
        Ok(value)
    }

    /// Runs `query` on a snapshot of the last commit.
    pub(super) fn read<T, E: From<StateError>>(
        &self,
        query: impl FnOnce(&ReadTransaction) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self.inner.db.begin_read().map_err(|source| self.storage(source))?;
        query(&txn)
    }

    /// `txn`'s table `definition`, `None` when nothing was ever written to it (tables of a kind are created
    /// by their first write).
    pub(super) fn existing_table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        txn: &ReadTransaction,
        definition: TableDefinition<K, V>,
    ) -> Result<Option<ReadOnlyTable<K, V>>, StateError> {
        match txn.open_table(definition) {
            Ok(table) => Ok(Some(table)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(source) => Err(self.storage(source)),
        }
    }

    /// A redb failure on this database.
    pub(super) fn storage(&self, source: impl Into<redb::Error>) -> StateError {
        StateError::Storage { path: self.inner.path.clone(), source: source.into() }
    }
}
