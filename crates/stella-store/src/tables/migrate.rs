//! The one-time import of the JSON files that held this state before the state database:
//! `holds.json` (a list of holds) and `incidents.json` (tenant -> mode). A file is imported only into an
//! empty table, in one transaction, then renamed to `*.json.migrated`; a crash between the two leaves a
//! full table and the file, which later opens ignore (and say so).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{ReadableTableMetadata, TableDefinition};

use super::db::StateDb;
use super::error::StateError;
use super::holds::{HOLDS, encode};
use super::incidents::INCIDENT_MODES;
use crate::chunks::Hold;

/// Where holds were kept before.
pub(super) const HOLDS_FILE: &str = "holds.json";

/// Where incident modes were kept before.
pub(super) const INCIDENTS_FILE: &str = "incidents.json";

/// What a file is renamed to once imported.
pub(super) const MIGRATED_SUFFIX: &str = ".migrated";

/// Imports `holds.json` and `incidents.json` under `data_dir` where they exist.
pub(super) fn import_json_files(db: &StateDb, data_dir: &Path) -> Result<(), StateError> {
    let holds_file = data_dir.join(HOLDS_FILE);
    if let Some(holds) = read_json::<Vec<Hold>>(&holds_file)? {
        // Holds were numbered by their place in the file (`hold-<n>`, n from 1): so are the entries.
        let entries = holds.iter().enumerate().map(|(n, hold)| (n as u64 + 1, encode(hold))).collect();
        import(db, &holds_file, HOLDS, entries)?;
    }
    let incidents_file = data_dir.join(INCIDENTS_FILE);
    if let Some(modes) = read_json::<BTreeMap<String, serde_json::Value>>(&incidents_file)? {
        // The collector owns the mode's meaning: its JSON is kept as it was.
        let entries = modes.iter().map(|(tenant, mode)| (tenant.as_str(), mode.to_string().into_bytes())).collect();
        import(db, &incidents_file, INCIDENT_MODES, entries)?;
    }
    Ok(())
}

/// The parsed file, `None` when there is none.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::MigrationIo { path: path.to_path_buf(), source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateError::MigrationDamaged { path: path.to_path_buf(), source })
}

/// Writes `entries` into `table` if it is empty, then renames `file` out of the way.
fn import<K: redb::Key + 'static>(
    db: &StateDb,
    file: &Path,
    table: TableDefinition<'_, K, &'static [u8]>,
    entries: Vec<(K::SelfType<'_>, Vec<u8>)>,
) -> Result<(), StateError> {
    let count = entries.len();
    let imported = db.write(|txn| {
        let mut table = txn.open_table(table).map_err(|source| db.storage(source))?;
        if !table.is_empty().map_err(|source| db.storage(source))? {
            return Ok(false);
        }
        for (key, value) in &entries {
            table.insert(key, value.as_slice()).map_err(|source| db.storage(source))?;
        }
        Ok::<_, StateError>(true)
    })?;
    if !imported {
        tracing::warn!(event = "state.migration_skipped", file = %file.display(), state = %db.path().display(), "the state database already holds this state; the file is ignored: remove it");
        return Ok(());
    }
    let renamed = migrated_name(file);
    std::fs::rename(file, &renamed).map_err(|source| StateError::MigrationIo { path: file.to_path_buf(), source })?;
    tracing::info!(event = "state.migrated", file = %file.display(), entries = count, state = %db.path().display(), renamed = %renamed.display(), "imported into the state database");
    Ok(())
}

/// `holds.json` -> `holds.json.migrated`.
fn migrated_name(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(MIGRATED_SUFFIX);
    PathBuf::from(name)
}
