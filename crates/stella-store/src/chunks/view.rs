//! [`StoreView`]: the one read interface of the store, for everything that queries it (the query engines
//! of `stella-query`, forensic capture). A running server's view holds the records its sealing consumers
//! have not sealed yet; an offline view rebuilds them from the ingest log.
use super::{Cut, ScanFilter, Store, StoreError};

/// What a reader of one data directory's store sees.
pub trait StoreView: Send + Sync {
    /// The chunk store (to read the chunks of a [`Cut`]).
    fn store(&self) -> &Store;

    /// A consistent [`Cut`] of `tenant`'s `signal` over `range` (unix nanos): the sealed chunks a scan
    /// with `filter` reads and the unsealed records overlapping `range`, every record in exactly one part.
    fn cut(
        &self,
        tenant: &str,
        signal: stella_otlp::Signal,
        range: (u64, u64),
        filter: ScanFilter<'_>,
    ) -> Result<Cut, StoreError>;

    /// Every stored record (sealed or not) of `tenant` holding a span of `trace_id`, as logged; a record
    /// may come twice (callers dedupe spans).
    fn trace_records(&self, tenant: &str, trace_id: &[u8; 16]) -> Result<Vec<Vec<u8>>, StoreError>;
}
