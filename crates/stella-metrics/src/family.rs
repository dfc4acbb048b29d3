use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::encode;

/// Every metric family of one process. Cheap to clone; clones share the families.
#[derive(Clone, Default)]
pub struct Registry {
    pub(crate) families: Arc<Mutex<BTreeMap<&'static str, Family>>>,
}

#[derive(Clone)]
pub(crate) enum Family {
    Counter(CounterVec),
    Gauge(GaugeVec),
    FloatGauge(FloatGaugeVec),
    Histogram(HistogramVec),
}

pub(crate) type Series<T> = Arc<RwLock<BTreeMap<Vec<String>, Arc<T>>>>;

/// Metadata shared by every kind of family.
#[derive(Clone)]
pub(crate) struct Meta {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) labels: &'static [&'static str],
}

/// A family of monotonic counters, one per combination of label values.
#[derive(Clone)]
pub struct CounterVec {
    pub(crate) meta: Meta,
    pub(crate) series: Series<AtomicU64>,
}

/// One counter of a [`CounterVec`].
#[derive(Clone, Debug)]
pub struct Counter(Arc<AtomicU64>);

/// A family of gauges, one per combination of label values.
#[derive(Clone)]
pub struct GaugeVec {
    pub(crate) meta: Meta,
    pub(crate) series: Series<AtomicI64>,
}

/// One gauge of a [`GaugeVec`].
#[derive(Clone, Debug)]
pub struct Gauge(Arc<AtomicI64>);

/// A family of gauges with fractional values (rates, percentages), one per combination of label values.
#[derive(Clone)]
pub struct FloatGaugeVec {
    pub(crate) meta: Meta,
    pub(crate) series: Series<AtomicU64>,
}

/// One gauge of a [`FloatGaugeVec`]: an `f64` stored as its bits.
#[derive(Clone, Debug)]
pub struct FloatGauge(Arc<AtomicU64>);

/// A family of histograms with fixed bucket bounds, one per combination of label values.
#[derive(Clone)]
pub struct HistogramVec {
    pub(crate) meta: Meta,
    pub(crate) bounds: &'static [f64],
    pub(crate) series: Series<HistogramCells>,
}

/// One histogram of a [`HistogramVec`].
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramCells>);

#[derive(Debug)]
pub(crate) struct HistogramCells {
    pub(crate) bounds: &'static [f64],
    pub(crate) buckets: Vec<AtomicU64>,
    pub(crate) count: AtomicU64,
    pub(crate) sum_bits: AtomicU64,
}

impl Registry {
    /// The counter family `name` (ending in `_total`), registered now or earlier.
    pub fn counter(&self, name: &'static str, help: &'static str, labels: &'static [&'static str]) -> CounterVec {
        let created = || Family::Counter(CounterVec { meta: Meta { name, help, labels }, series: Series::default() });
        match self.family(name, created) {
            Family::Counter(family) => family,
            _ => panic!("metric {name} registered twice with different types"),
        }
    }

    /// The gauge family `name`, registered now or earlier.
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &'static [&'static str]) -> GaugeVec {
        let created = || Family::Gauge(GaugeVec { meta: Meta { name, help, labels }, series: Series::default() });
        match self.family(name, created) {
            Family::Gauge(family) => family,
            _ => panic!("metric {name} registered twice with different types"),
        }
    }

    /// The fractional gauge family `name`, registered now or earlier.
    pub fn float_gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> FloatGaugeVec {
        let created =
            || Family::FloatGauge(FloatGaugeVec { meta: Meta { name, help, labels }, series: Series::default() });
        match self.family(name, created) {
            Family::FloatGauge(family) => family,
            _ => panic!("metric {name} registered twice with different types"),
        }
    }

    /// The histogram family `name` with bucket upper `bounds` (ascending), registered now or earlier.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> HistogramVec {
        let created =
            || Family::Histogram(HistogramVec { meta: Meta { name, help, labels }, bounds, series: Series::default() });
        match self.family(name, created) {
            Family::Histogram(family) => family,
            _ => panic!("metric {name} registered twice with different types"),
        }
    }

    fn family(&self, name: &'static str, created: impl FnOnce() -> Family) -> Family {
        let mut families = self.families.lock().unwrap_or_else(|poison| poison.into_inner());
        families.entry(name).or_insert_with(created).clone()
    }

    /// Every family as Prometheus text exposition format 0.0.4.
    pub fn encode(&self) -> String {
        self.encode_scoped(encode::Scope::All)
    }

    /// The series `scope` shows, as Prometheus text exposition format 0.0.4.
    pub fn encode_scoped(&self, scope: encode::Scope<'_>) -> String {
        let families = self.families.lock().unwrap_or_else(|poison| poison.into_inner());
        let mut out = String::new();
        for family in families.values() {
            encode::family(&mut out, family, scope);
        }
        out
    }
}

fn series_for<T>(series: &Series<T>, labels: &[&str], make: impl FnOnce() -> T) -> Arc<T> {
    let key: Vec<String> = labels.iter().map(|value| value.to_string()).collect();
    if let Some(found) = series.read().unwrap_or_else(|poison| poison.into_inner()).get(&key) {
        return Arc::clone(found);
    }
    let mut write = series.write().unwrap_or_else(|poison| poison.into_inner());
    Arc::clone(write.entry(key).or_insert_with(|| Arc::new(make())))
}

impl CounterVec {
    /// The counter for these label values (in the order the family declared its labels).
    pub fn with(&self, labels: &[&str]) -> Counter {
        debug_assert_eq!(labels.len(), self.meta.labels.len(), "{}", self.meta.name);
        Counter(series_for(&self.series, labels, || AtomicU64::new(0)))
    }
}

impl Counter {
    /// Adds `value`.
    pub fn add(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl GaugeVec {
    /// The gauge for these label values.
    pub fn with(&self, labels: &[&str]) -> Gauge {
        debug_assert_eq!(labels.len(), self.meta.labels.len(), "{}", self.meta.name);
        Gauge(series_for(&self.series, labels, || AtomicI64::new(0)))
    }
}

impl Gauge {
    /// Sets the value.
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// Adds `delta` (negative to subtract).
    pub fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl FloatGaugeVec {
    /// The gauge for these label values.
    pub fn with(&self, labels: &[&str]) -> FloatGauge {
        debug_assert_eq!(labels.len(), self.meta.labels.len(), "{}", self.meta.name);
        FloatGauge(series_for(&self.series, labels, || AtomicU64::new(0f64.to_bits())))
    }
}

impl FloatGauge {
    /// Sets the value.
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl HistogramVec {
    /// The histogram for these label values.
    pub fn with(&self, labels: &[&str]) -> Histogram {
        debug_assert_eq!(labels.len(), self.meta.labels.len(), "{}", self.meta.name);
        let bounds = self.bounds;
        Histogram(series_for(&self.series, labels, || HistogramCells {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }))
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let cells = &self.0;
        if let Some(bucket) = cells.bounds.iter().position(|bound| value <= *bound) {
            cells.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        cells.count.fetch_add(1, Ordering::Relaxed);
        let _ = cells
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some((f64::from_bits(bits) + value).to_bits()));
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}
