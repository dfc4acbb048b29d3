//! OTLP metrics as Prometheus series: one translation (names, labels, samples, staleness) shared by the
//! remote-write exporter and the store's Prometheus API, so a query reads the same series from either.
pub mod labels;
mod series;
pub mod translate;

pub use series::{Label, Sample, TimeSeries, WriteRequest};
pub use translate::{
    Dropped, Family, Naming, STALE_NAN, by_timestamp, families, may_produce, translate, translate_selected,
};
