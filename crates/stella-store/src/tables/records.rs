//! Replace-by-id records: one redb table per kind, `records/<kind>`, key `(tenant, id)`, value
//! `(time in unix nanoseconds, bytes)`. The time is the one retention counts from.
use jiff::Timestamp;
use redb::{ReadableTable, TableDefinition};

use super::db::StateDb;
use super::error::StateError;

/// The key of a keyed table: `(tenant, id)`, ordered by tenant, then id (byte order).
pub(super) type TenantKey = (&'static str, &'static str);

/// What [`RecordRepository::for_each`] hands each record to: its id, time and bytes.
pub type RecordVisitor<'a> = dyn FnMut(&str, Timestamp, &[u8]) -> Result<(), StateError> + 'a;

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its id, unique within its tenant and kind.
    pub id: String,
    /// Its time, the one [`RecordRepository::remove_older_than`] compares.
    pub at: Timestamp,
    /// Its bytes, as the owner of the kind encoded them.
    pub value: Vec<u8>,
}

/// A keyed table of records of one kind, per tenant: a record sent again with the same id replaces the
/// one before (DORA events re-sent by a CI pipeline count once). DORA events (#9) and federation consents
/// and observations (#10) live in tables of this shape; the owner of a kind decides what the bytes mean
/// and calls `remove_older_than` with its retention. Every change is durable when the call returns.
pub trait RecordRepository: Send + Sync {
    /// Saves `tenant`'s record `id` at time `at`, replacing any record with that id; `true` when it
    /// replaced one.
    fn put(&self, tenant: &str, id: &str, at: Timestamp, value: &[u8]) -> Result<bool, StateError>;

    /// Saves several of `tenant`'s records `(id, at, value)` in one durable transaction (a batch of
    /// events costs one sync); for each, `true` when it replaced one.
    fn put_many(&self, tenant: &str, records: &[(&str, Timestamp, &[u8])]) -> Result<Vec<bool>, StateError>;

    /// `tenant`'s record `id`.
    fn get(&self, tenant: &str, id: &str) -> Result<Option<Record>, StateError>;

    /// `tenant`'s records, ordered by id (byte order).
    fn list(&self, tenant: &str) -> Result<Vec<Record>, StateError>;

    /// Hands `tenant`'s records to `visit` one by one, ordered by id, without holding them all (a
    /// report over a million events decodes each as it comes). `visit` gets the id, time and bytes.
    fn for_each(&self, tenant: &str, visit: &mut RecordVisitor<'_>) -> Result<(), StateError>;

    /// Removes `tenant`'s record `id`; `true` when there was one.
    fn remove(&self, tenant: &str, id: &str) -> Result<bool, StateError>;

    /// The retention sweep: removes the records whose time is before `cutoff`, of `tenant` or (`None`)
    /// of every tenant, and returns how many. It reads the whole table (or the tenant's part): these
    /// tables are small.
    fn remove_older_than(&self, tenant: Option<&str>, cutoff: Timestamp) -> Result<usize, StateError>;
}

/// [`RecordRepository`] on the state database.
#[derive(Debug, Clone)]
pub struct RedbRecords {
    db: StateDb,
    table: String,
}

impl RedbRecords {
    pub(super) fn new(db: StateDb, kind: &'static str) -> Self {
        debug_assert!(!kind.is_empty(), "a record kind has a name");
        RedbRecords { db, table: format!("records/{kind}") }
    }

    fn definition(&self) -> TableDefinition<'_, TenantKey, (i128, &'static [u8])> {
        TableDefinition::new(&self.table)
    }

    fn record(&self, tenant: &str, id: &str, at: i128, value: &[u8]) -> Result<Record, StateError> {
        Ok(Record {
            id: id.to_string(),
            at: decode_time(&self.db, &self.table, tenant, id, at)?,
            value: value.to_vec(),
        })
    }
}

impl RecordRepository for RedbRecords {
    fn put(&self, tenant: &str, id: &str, at: Timestamp, value: &[u8]) -> Result<bool, StateError> {
        self.db.write(|txn| {
            let mut table = txn.open_table(self.definition()).map_err(|source| self.db.storage(source))?;
            let before =
                table.insert((tenant, id), (at.as_nanosecond(), value)).map_err(|source| self.db.storage(source))?;
            Ok(before.is_some())
        })
    }

    fn put_many(&self, tenant: &str, records: &[(&str, Timestamp, &[u8])]) -> Result<Vec<bool>, StateError> {
        self.db.write(|txn| {
            let mut table = txn.open_table(self.definition()).map_err(|source| self.db.storage(source))?;
            let mut replaced = Vec::with_capacity(records.len());
            for (id, at, value) in records {
                let before = table
                    .insert((tenant, *id), (at.as_nanosecond(), *value))
                    .map_err(|source| self.db.storage(source))?;
                replaced.push(before.is_some());
            }
            Ok(replaced)
        })
    }

    fn get(&self, tenant: &str, id: &str) -> Result<Option<Record>, StateError> {
        self.db.read(|txn| {
            let Some(table) = self.db.existing_table(txn, self.definition())? else { return Ok(None) };
            let Some(found) = table.get((tenant, id)).map_err(|source| self.db.storage(source))? else {
                return Ok(None);
            };
            let (at, value) = found.value();
            self.record(tenant, id, at, value).map(Some)
        })
    }

    fn list(&self, tenant: &str) -> Result<Vec<Record>, StateError> {
        let mut records = Vec::new();
        self.for_each(tenant, &mut |id, at, value| {
            records.push(Record { id: id.to_string(), at, value: value.to_vec() });
            Ok(())
        })?;
        Ok(records)
    }

    fn for_each(&self, tenant: &str, visit: &mut RecordVisitor<'_>) -> Result<(), StateError> {
        self.db.read(|txn| {
            let Some(table) = self.db.existing_table(txn, self.definition())? else { return Ok(()) };
            for entry in table.range((tenant, "")..).map_err(|source| self.db.storage(source))? {
                let (key, value) = entry.map_err(|source| self.db.storage(source))?;
                let ((owner, id), (at, value)) = (key.value(), value.value());
                if owner != tenant {
                    break;
                }
                visit(id, decode_time(&self.db, &self.table, tenant, id, at)?, value)?;
            }
            Ok(())
        })
    }

    fn remove(&self, tenant: &str, id: &str) -> Result<bool, StateError> {
        self.db.write(|txn| {
            let mut table = txn.open_table(self.definition()).map_err(|source| self.db.storage(source))?;
            let removed = table.remove((tenant, id)).map_err(|source| self.db.storage(source))?;
            Ok(removed.is_some())
        })
    }

    fn remove_older_than(&self, tenant: Option<&str>, cutoff: Timestamp) -> Result<usize, StateError> {
        remove_older_than(&self.db, self.definition(), tenant, cutoff)
    }
}

/// A stored time back as a timestamp; out of range only when the file was changed behind our back.
fn decode_time(db: &StateDb, table: &str, tenant: &str, id: &str, at: i128) -> Result<Timestamp, StateError> {
    Timestamp::from_nanosecond(at).map_err(|source| StateError::Damaged {
        path: db.path().to_path_buf(),
        table: table.to_string(),
        key: format!("{tenant}/{id}"),
        source,
    })
}

/// The retention sweep of a keyed table whose values start with their time: removes the entries of
/// `tenant` (or every tenant) older than `cutoff`, in one transaction, and returns how many.
pub(super) fn remove_older_than<T: redb::Value + 'static>(
    db: &StateDb,
    definition: TableDefinition<'_, TenantKey, (i128, T)>,
    tenant: Option<&str>,
    cutoff: Timestamp,
) -> Result<usize, StateError> {
    let cutoff = cutoff.as_nanosecond();
    db.write(|txn| {
        let mut table = txn.open_table(definition).map_err(|source| db.storage(source))?;
        let mut expired: Vec<(String, String)> = Vec::new();
        let entries = match tenant {
            Some(tenant) => table.range((tenant, "")..),
            None => table.iter(),
        };
        for entry in entries.map_err(|source| db.storage(source))? {
            let (key, value) = entry.map_err(|source| db.storage(source))?;
            let ((owner, id), (at, _)) = (key.value(), value.value());
            if tenant.is_some_and(|tenant| tenant != owner) {
                break;
            }
            if at < cutoff {
                expired.push((owner.to_string(), id.to_string()));
            }
        }
        for (owner, id) in &expired {
            table.remove((owner.as_str(), id.as_str())).map_err(|source| db.storage(source))?;
        }
        Ok(expired.len())
    })
}
