//! The registry's values at one moment, as plain data: what the server writes into its own store
//! (self-monitoring) without going through the text format.
use std::sync::atomic::Ordering;

use crate::family::{Family, Registry};

/// What kind of family a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counters.
    Counter,
    /// Gauges.
    Gauge,
    /// Histograms with fixed bounds.
    Histogram,
}

/// One family's series at the moment of the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilySnapshot {
    /// Its name, as `/metrics` shows it.
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// Its series.
    pub series: Vec<SeriesSnapshot>,
}

/// One series of a [`FamilySnapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSnapshot {
    /// Label names and values, in the family's order.
    pub labels: Vec<(&'static str, String)>,
    /// Its value.
    pub value: SnapshotValue,
}

/// The value of a series.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotValue {
    /// A counter or gauge.
    Number(f64),
    /// A histogram: per-bucket (not cumulative) counts for `bounds`, then the total count and sum.
    Histogram {
        /// Upper bounds of the buckets (the `+Inf` bucket is implied).
        bounds: &'static [f64],
        /// Observations in each bucket of `bounds`.
        buckets: Vec<u64>,
        /// Observations in all.
        count: u64,
        /// Their sum.
        sum: f64,
    },
}

impl Registry {
    /// Every family's series now.
    pub fn snapshot(&self) -> Vec<FamilySnapshot> {
        let families = self.families.lock().unwrap_or_else(|poison| poison.into_inner());
        families.values().map(snapshot_of).collect()
    }
}

fn snapshot_of(family: &Family) -> FamilySnapshot {
    let labelled = |names: &'static [&'static str], values: &[String]| -> Vec<(&'static str, String)> {
        names.iter().copied().zip(values.iter().cloned()).collect()
    };
    match family {
        Family::Counter(counters) => {
            numbers(&counters.meta, Kind::Counter, &counters.series, |cell| cell.load(Ordering::Relaxed) as f64)
        }
        Family::Gauge(gauges) => {
            numbers(&gauges.meta, Kind::Gauge, &gauges.series, |cell| cell.load(Ordering::Relaxed) as f64)
        }
        Family::FloatGauge(gauges) => {
            numbers(&gauges.meta, Kind::Gauge, &gauges.series, |cell| f64::from_bits(cell.load(Ordering::Relaxed)))
        }
        Family::Histogram(histograms) => FamilySnapshot {
            name: histograms.meta.name,
            help: histograms.meta.help,
            kind: Kind::Histogram,
            series: read(&histograms.series)
                .iter()
                .map(|(values, cells)| SeriesSnapshot {
                    labels: labelled(histograms.meta.labels, values),
                    value: SnapshotValue::Histogram {
                        bounds: cells.bounds,
                        buckets: cells.buckets.iter().map(|bucket| bucket.load(Ordering::Relaxed)).collect(),
                        count: cells.count.load(Ordering::Relaxed),
                        sum: f64::from_bits(cells.sum_bits.load(Ordering::Relaxed)),
                    },
                })
                .collect(),
        },
    }
}

/// A family of single numbers, each read from its cell by `value`.
fn numbers<T>(
    meta: &crate::family::Meta,
    kind: Kind,
    series: &crate::family::Series<T>,
    value: impl Fn(&T) -> f64,
) -> FamilySnapshot {
    FamilySnapshot {
        name: meta.name,
        help: meta.help,
        kind,
        series: read(series)
            .iter()
            .map(|(values, cell)| SeriesSnapshot {
                labels: meta.labels.iter().copied().zip(values.iter().cloned()).collect(),
                value: SnapshotValue::Number(value(cell)),
            })
            .collect(),
    }
}

fn read<T>(
    series: &crate::family::Series<T>,
) -> std::sync::RwLockReadGuard<'_, std::collections::BTreeMap<Vec<String>, std::sync::Arc<T>>> {
    series.read().unwrap_or_else(|poison| poison.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_holds_every_family_with_its_labels_and_values() {
        let registry = Registry::default();
        registry.counter("sent_total", "Sent.", &["exporter"]).with(&["file"]).add(3);
        registry.float_gauge("ratio", "A ratio.", &[]).with(&[]).set(0.5);
        let histogram = registry.histogram("latency_seconds", "Latency.", &["route"], &[0.1, 1.0]);
        histogram.with(&["/x"]).observe(0.05);
        histogram.with(&["/x"]).observe(5.0);
        let snapshot = registry.snapshot();
        let by_name = |name: &str| snapshot.iter().find(|family| family.name == name).unwrap();
        assert_eq!(by_name("sent_total").kind, Kind::Counter);
        assert_eq!(by_name("sent_total").series[0].labels, vec![("exporter", "file".to_string())]);
        assert_eq!(by_name("sent_total").series[0].value, SnapshotValue::Number(3.0));
        assert_eq!(by_name("ratio").series[0].value, SnapshotValue::Number(0.5));
        assert_eq!(
            by_name("latency_seconds").series[0].value,
            SnapshotValue::Histogram { bounds: &[0.1, 1.0], buckets: vec![1, 0], count: 2, sum: 5.05 }
        );
    }
}
