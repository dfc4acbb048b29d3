//! Holds in the state database: table `holds`, key the hold's number (`hold-<n>`, numbered across
//! tenants in the order they were placed), value the hold as JSON.
use jiff::Timestamp;
use redb::{ReadableTable, TableDefinition};

use super::db::StateDb;
use crate::chunks::{Hold, HoldError, HoldKind};

/// The table.
pub(super) const HOLDS: TableDefinition<u64, &[u8]> = TableDefinition::new("holds");

/// Where holds are kept. The API and incident mode drive `add`, `release` and `close_incident`; the
/// store's retention sweep asks `holds` for every chunk it would delete. Every change is durable when
/// the call returns.
pub trait HoldRepository: Send + Sync {
    /// Places a hold (`to` absent: open until released or closed) and returns it with its new id.
    /// [`HoldError::Reversed`] when `to` is before `from`.
    fn add(
        &self,
        tenant: &str,
        kind: HoldKind,
        from: Timestamp,
        to: Option<Timestamp>,
        reason: &str,
        by: &str,
    ) -> Result<Hold, HoldError>;

    /// Releases `tenant`'s hold `id` (it then keeps nothing) and returns it. [`HoldError::NotFound`] when
    /// the tenant has no such hold still in force.
    fn release(&self, tenant: &str, id: &str) -> Result<Hold, HoldError>;

    /// Ends `tenant`'s open incident holds at `at` (incident mode ended).
    fn close_incident(&self, tenant: &str, at: Timestamp) -> Result<(), HoldError>;

    /// `tenant`'s holds, released ones included, oldest first.
    fn list(&self, tenant: &str) -> Result<Vec<Hold>, HoldError>;

    /// Whether any of `tenant`'s holds keeps data spanning `[min, max]` (unix nanoseconds). When the holds
    /// cannot be read, the answer is `true`: retention then deletes nothing until they can.
    fn holds(&self, tenant: &str, min: u64, max: u64) -> bool;
}

/// [`HoldRepository`] on the state database.
#[derive(Debug, Clone)]
pub struct RedbHolds {
    db: StateDb,
}

impl RedbHolds {
    pub(super) fn new(db: StateDb) -> Self {
        RedbHolds { db }
    }

    fn decode(&self, entry: u64, bytes: &[u8]) -> Result<Hold, HoldError> {
        serde_json::from_slice(bytes).map_err(|source| HoldError::Damaged {
            path: self.db.path().to_path_buf(),
            entry,
            source,
        })
    }

    /// Every hold with its entry number, oldest first.
    fn all(&self, table: &impl ReadableTable<u64, &'static [u8]>) -> Result<Vec<(u64, Hold)>, HoldError> {
        let mut holds = Vec::new();
        for entry in table.iter().map_err(|source| self.db.storage(source))? {
            let (key, value) = entry.map_err(|source| self.db.storage(source))?;
            holds.push((key.value(), self.decode(key.value(), value.value())?));
        }
        Ok(holds)
    }

    fn put(&self, table: &mut redb::Table<'_, u64, &'static [u8]>, entry: u64, hold: &Hold) -> Result<(), HoldError> {
        table.insert(entry, encode(hold).as_slice()).map_err(|source| self.db.storage(source))?;
        Ok(())
    }
}

/// A hold as stored.
pub(super) fn encode(hold: &Hold) -> Vec<u8> {
    // Cannot fail: a struct of strings, an enum and timestamps.
    serde_json::to_vec(hold).unwrap_or_default()
}

impl HoldRepository for RedbHolds {
    fn add(
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
        self.db.write(|txn| {
            let mut table = txn.open_table(HOLDS).map_err(|source| self.db.storage(source))?;
            let last = table.last().map_err(|source| self.db.storage(source))?.map(|(key, _)| key.value());
            let entry = last.map_or(1, |last| last + 1);
            let hold = Hold {
                id: format!("hold-{entry}"),
                tenant: tenant.to_string(),
                kind,
                from,
                to,
                reason: reason.to_string(),
                by: by.to_string(),
                created: Timestamp::now(),
                released: None,
            };
            self.put(&mut table, entry, &hold)?;
            Ok(hold)
        })
    }

    fn release(&self, tenant: &str, id: &str) -> Result<Hold, HoldError> {
        self.db.write(|txn| {
            let mut table = txn.open_table(HOLDS).map_err(|source| self.db.storage(source))?;
            let (entry, mut hold) = self
                .all(&table)?
                .into_iter()
                .find(|(_, hold)| hold.id == id && hold.tenant == tenant && hold.released.is_none())
                .ok_or_else(|| HoldError::NotFound(id.to_string()))?;
            hold.released = Some(Timestamp::now());
            self.put(&mut table, entry, &hold)?;
            Ok(hold)
        })
    }

    fn close_incident(&self, tenant: &str, at: Timestamp) -> Result<(), HoldError> {
        self.db.write(|txn| {
            let mut table = txn.open_table(HOLDS).map_err(|source| self.db.storage(source))?;
            let open = self
                .all(&table)?
                .into_iter()
                .filter(|(_, hold)| hold.tenant == tenant && hold.kind == HoldKind::Incident && hold.to.is_none());
            for (entry, mut hold) in open {
                hold.to = Some(at);
                self.put(&mut table, entry, &hold)?;
            }
            Ok(())
        })
    }

    fn list(&self, tenant: &str) -> Result<Vec<Hold>, HoldError> {
        self.db.read(|txn| {
            let table = txn.open_table(HOLDS).map_err(|source| self.db.storage(source))?;
            Ok(self.all(&table)?.into_iter().map(|(_, hold)| hold).filter(|hold| hold.tenant == tenant).collect())
        })
    }

    fn holds(&self, tenant: &str, min: u64, max: u64) -> bool {
        match self.list(tenant) {
            Ok(holds) => holds.iter().any(|hold| hold.covers(min, max)),
            Err(error) => {
                tracing::error!(code = error.code(), %error, tenant, "cannot read the holds; retention keeps everything");
                true
            }
        }
    }
}
