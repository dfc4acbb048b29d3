//! Counters: one redb table per kind, `counters/<kind>`, key `(tenant, counter)`, value `(time of the
//! last change in unix nanoseconds, total)`.
use jiff::Timestamp;
use redb::{ReadableTable, TableDefinition};

use super::db::StateDb;
use super::error::StateError;
use super::records::{TenantKey, remove_older_than};

/// Running totals per tenant and key: a budget spent so far (federation's privacy budget per period,
/// #10), a count. Totals start at 0; each `add` is durable when it returns, and two adds never lose one
/// another (one write transaction at a time). Retention removes counters not changed since a cutoff, so
/// an owner that keys its counters by period (`epsilon/2026-05`) drops the old periods.
pub trait CounterRepository: Send + Sync {
    /// Adds `amount` (negative to give back) to `tenant`'s counter `key` at time `at` and returns the new
    /// total. [`StateError::NotFinite`] (nothing changed) when the total would be NaN or infinite.
    fn add(&self, tenant: &str, key: &str, amount: f64, at: Timestamp) -> Result<f64, StateError>;

    /// `tenant`'s total for `key`, 0 when nothing was ever added.
    fn get(&self, tenant: &str, key: &str) -> Result<f64, StateError>;

    /// Removes the counters of `tenant` (or, `None`, of every tenant) last changed before `cutoff`, and
    /// returns how many.
    fn remove_older_than(&self, tenant: Option<&str>, cutoff: Timestamp) -> Result<usize, StateError>;
}

/// [`CounterRepository`] on the state database.
#[derive(Debug, Clone)]
pub struct RedbCounters {
    db: StateDb,
    table: String,
}

impl RedbCounters {
    pub(super) fn new(db: StateDb, kind: &'static str) -> Self {
        debug_assert!(!kind.is_empty(), "a counter kind has a name");
        RedbCounters { db, table: format!("counters/{kind}") }
    }

    fn definition(&self) -> TableDefinition<'_, TenantKey, (i128, f64)> {
        TableDefinition::new(&self.table)
    }
}

impl CounterRepository for RedbCounters {
    fn add(&self, tenant: &str, key: &str, amount: f64, at: Timestamp) -> Result<f64, StateError> {
        self.db.write(|txn| {
            let mut table = txn.open_table(self.definition()).map_err(|source| self.db.storage(source))?;
            let total = table
                .get((tenant, key))
                .map_err(|source| self.db.storage(source))?
                .map_or(0.0, |before| before.value().1);
            let sum = total + amount;
            if !sum.is_finite() {
                return Err(StateError::NotFinite {
                    table: self.table.clone(),
                    tenant: tenant.to_string(),
                    key: key.to_string(),
                    total,
                    amount,
                });
            }
            table.insert((tenant, key), (at.as_nanosecond(), sum)).map_err(|source| self.db.storage(source))?;
            Ok(sum)
        })
    }

    fn get(&self, tenant: &str, key: &str) -> Result<f64, StateError> {
        self.db.read(|txn| {
            let Some(table) = self.db.existing_table(txn, self.definition())? else { return Ok(0.0) };
            let total = table.get((tenant, key)).map_err(|source| self.db.storage(source))?;
            Ok(total.map_or(0.0, |total| total.value().1))
        })
    }

    fn remove_older_than(&self, tenant: Option<&str>, cutoff: Timestamp) -> Result<usize, StateError> {
        remove_older_than(&self.db, self.definition(), tenant, cutoff)
    }
}
