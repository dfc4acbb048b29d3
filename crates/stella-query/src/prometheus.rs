//! Stored metrics as Prometheus series: each stored OTLP metrics request goes through the same translation
//! the `prometheusremotewrite` exporter sends ([`stella_otlp::prometheus::translate`]), so a series read
//! here has exactly the name, labels, millisecond timestamps and staleness markers a Prometheus fed by
//! that exporter holds. Series are selected with Prometheus series selectors (`match[]`).
use std::collections::BTreeMap;

use promql_parser::label::{METRIC_NAME, Matchers};
use promql_parser::parser::{self, Expr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rustc_hash::FxHashMap;
use stella_otlp::prometheus::{Dropped, Family, Naming, by_timestamp, families, translate_selected};
use stella_otlp::{OtlpRequest, Signal};

use crate::{ScanFilter, StoreError, StoreView, scan};

/// A label set: names sorted, `__name__` among them.
pub type LabelSet = Vec<(String, String)>;

/// A Prometheus series selector, as `match[]` takes it (`up`, `{job="api"}`, `http_requests_total{code=~"5.."}`).
#[derive(Debug, Clone)]
pub struct Selector {
    name: Option<String>,
    matchers: Matchers,
}

impl Selector {
    /// Parses a series selector; the message says what is wrong, as Prometheus words it.
    pub fn parse(text: &str) -> Result<Selector, String> {
        match parser::parse(text) {
            Ok(Expr::VectorSelector(selector)) => {
                if selector.name.is_none() && selector.matchers.is_empty_matchers() {
                    return Err(format!(
                        "invalid parameter \"match[]\": {text}: vector selector must contain at least one non-empty matcher"
                    ));
                }
                Ok(Selector { name: selector.name, matchers: selector.matchers })
            }
            Ok(_) => Err(format!("invalid parameter \"match[]\": {text}: not a series selector")),
            Err(error) => Err(format!("invalid parameter \"match[]\": {error}")),
        }
    }

    /// The selector of a PromQL vector selector's name and matchers.
    pub(crate) fn from_parts(name: Option<String>, matchers: Matchers) -> Selector {
        Selector { name, matchers }
    }

    /// Whether a series named `name` may be selected (its other labels aside).
    pub fn accepts_name(&self, name: &str) -> bool {
        if self.name.as_deref().is_some_and(|wanted| wanted != name) {
            return false;
        }
        let group = |group: &[promql_parser::label::Matcher]| {
            group.iter().filter(|matcher| matcher.name == METRIC_NAME).all(|matcher| matcher.is_match(name))
        };
        if self.matchers.or_matchers.is_empty() {
            group(&self.matchers.matchers)
        } else {
            self.matchers.or_matchers.iter().any(|matchers| group(matchers))
        }
    }

    /// Whether a series with `labels` is selected (a label the series lacks has the empty value).
    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        let value = |name: &str| {
            labels
                .binary_search_by(|(label, _)| label.as_str().cmp(name))
                .ok()
                .and_then(|at| labels.get(at))
                .map_or("", |(_, value)| value.as_str())
        };
        if self.name.as_deref().is_some_and(|name| value(METRIC_NAME) != name) {
            return false;
        }
        let all = |group: &[promql_parser::label::Matcher]| {
            group.iter().all(|matcher| matcher.is_match(value(&matcher.name)))
        };
        if self.matchers.or_matchers.is_empty() {
            all(&self.matchers.matchers)
        } else {
            self.matchers.or_matchers.iter().any(|group| all(group))
        }
    }
}

/// Whether `name` is a Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One series: its labels and its samples (unix milliseconds, value; a stale marker is the StaleNaN
/// bit pattern), by time, one per time.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: LabelSet,
    /// Its samples in the range asked.
    pub samples: Vec<(i64, f64)>,
}

/// What [`select`] reads.
#[derive(Debug, Clone)]
pub struct SeriesQuery {
    /// Series any of which selects (every series when empty).
    pub selectors: Vec<Selector>,
    /// The time range, unix milliseconds, inclusive.
    pub range: (i64, i64),
    /// Samples gathered at most; more is [`TooManySamples`].
    pub max_samples: usize,
}

/// A query read more samples than it may.
#[derive(Debug, thiserror::Error)]
#[error("query processing would load too many samples into memory (more than {limit}, api.limits.max_samples)")]
pub struct TooManySamples {
    /// The limit.
    pub limit: usize,
}

/// Why [`select`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many samples.
    #[error(transparent)]
    TooManySamples(#[from] TooManySamples),
}

/// The series of `tenant` with a sample in `query.range` that `query.selectors` select, by label set,
/// named as the remote-write exporter with `naming` names them.
pub fn select(
    view: &dyn StoreView,
    tenant: &str,
    query: &SeriesQuery,
    naming: &Naming,
) -> Result<Vec<Series>, SelectError> {
    let (start, end) = query.range;
    let nanos = |millis: i64| u64::try_from(millis).unwrap_or(0).saturating_mul(1_000_000);
    let range = (nanos(start), nanos(end.saturating_add(1)).saturating_sub(1));
    let names = fixed_names(&query.selectors);
    let filter = ScanFilter { prometheus_names: names.as_deref().unwrap_or_default(), ..ScanFilter::default() };
    let reading = Reading { query, naming, samples: AtomicUsize::new(0), too_many: AtomicBool::new(false) };
    // Records are decoded and translated on every core, each thread with its own part of the records
    // (contiguous, in the store's order) and its own series; the parts are joined in that order, so a
    // timestamp sent twice keeps the value it keeps when read on one thread.
    let readers = std::thread::available_parallelism().map_or(1, |cores| cores.get()).min(MAX_READERS);
    let mut parts: Vec<FxHashMap<LabelSet, Vec<(i64, f64)>>> = (0..readers).map(|_| FxHashMap::default()).collect();
    let visitors: Vec<_> = parts
        .iter_mut()
        .map(|found| {
            let reading = &reading;
            move |record: &[u8]| reading.read(record, found)
        })
        .collect();
    view.cut(tenant, Signal::Metrics, range, filter)?.visit_parts(view.store(), visitors)?;
    if reading.too_many.load(Ordering::Relaxed) {
        return Err(TooManySamples { limit: query.max_samples }.into());
    }
    let mut parts = parts.into_iter();
    let mut found = parts.next().unwrap_or_default();
    for part in parts {
        for (labels, samples) in part {
            found.entry(labels).or_default().extend(samples);
        }
    }
    let mut series: Vec<Series> =
        found.into_iter().map(|(labels, samples)| Series { labels, samples: by_timestamp(samples) }).collect();
    series.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
    Ok(series)
}

/// Threads [`select`] reads records on, at most.
const MAX_READERS: usize = 4;

/// What the readers of one [`select`] share.
struct Reading<'q> {
    query: &'q SeriesQuery,
    naming: &'q Naming,
    /// Samples held by every reader.
    samples: AtomicUsize,
    /// Set once they are more than the query may hold.
    too_many: AtomicBool,
}

impl Reading<'_> {
    /// Whether a series of one of `names` may be selected.
    fn wanted(&self, names: &[&str]) -> bool {
        let selectors = &self.query.selectors;
        selectors.is_empty() || names.iter().any(|name| selectors.iter().any(|selector| selector.accepts_name(name)))
    }

    /// Adds the samples of one stored record the query selects to `found`; false (stop reading) once
    /// the readers hold more samples than the query may.
    fn read(&self, record: &[u8], found: &mut FxHashMap<LabelSet, Vec<(i64, f64)>>) -> bool {
        let (start, end) = self.query.range;
        let Ok(OtlpRequest::Metrics(request)) = OtlpRequest::decode_protobuf(Signal::Metrics, record) else {
            return true;
        };
        let selectors = &self.query.selectors;
        for series in translate_selected(&request, self.naming, &mut Dropped::default(), &|names| self.wanted(names)) {
            let labels: LabelSet = series.labels.into_iter().map(|label| (label.name, label.value)).collect();
            if !selectors.is_empty() && !selectors.iter().any(|selector| selector.matches(&labels)) {
                continue;
            }
            let in_range: Vec<(i64, f64)> = series
                .samples
                .iter()
                .filter(|sample| sample.timestamp >= start && sample.timestamp <= end)
                .map(|sample| (sample.timestamp, sample.value))
                .collect();
            if in_range.is_empty() {
                continue;
            }
            if self.samples.fetch_add(in_range.len(), Ordering::Relaxed) + in_range.len() > self.query.max_samples {
                self.too_many.store(true, Ordering::Relaxed);
                return false;
            }
            found.entry(labels).or_default().extend(in_range);
        }
        !self.too_many.load(Ordering::Relaxed)
    }
}

/// The names `selectors` select by, when every one names its metric exactly (by name or `__name__="x"`)
/// and none is `target_info` (which any resource may give): then only stored metrics that can give
/// one of them need reading.
fn fixed_names(selectors: &[Selector]) -> Option<Vec<String>> {
    if selectors.is_empty() {
        return None;
    }
    let mut names = Vec::new();
    for selector in selectors {
        let exact = selector.name.clone().or_else(|| {
            selector.matchers.or_matchers.is_empty().then_some(())?;
            selector
                .matchers
                .matchers
                .iter()
                .find(|matcher| {
                    matcher.name == METRIC_NAME && matches!(matcher.op, promql_parser::label::MatchOp::Equal)
                })
                .map(|matcher| matcher.value.clone())
        })?;
        if exact == "target_info" {
            return None;
        }
        names.push(exact);
    }
    Some(names)
}

/// The metric families of `tenant`'s metrics stored in `range` (unix milliseconds), by name, each with
/// the distinct type, help and unit it was sent with.
pub fn metadata(
    view: &dyn StoreView,
    tenant: &str,
    (start, end): (i64, i64),
    naming: &Naming,
) -> Result<BTreeMap<String, Vec<Family>>, StoreError> {
    let nanos = |millis: i64| u64::try_from(millis).unwrap_or(0).saturating_mul(1_000_000);
    let range = (nanos(start), nanos(end.saturating_add(1)).saturating_sub(1));
    let mut found: BTreeMap<String, std::collections::BTreeSet<Family>> = BTreeMap::new();
    scan(view, tenant, Signal::Metrics, range, ScanFilter::default(), &mut |record| {
        if let Ok(OtlpRequest::Metrics(request)) = OtlpRequest::decode_protobuf(Signal::Metrics, record) {
            for family in families(&request, naming) {
                found.entry(family.name.clone()).or_default().insert(family);
            }
        }
        true
    })?;
    Ok(found.into_iter().map(|(name, families)| (name, families.into_iter().collect())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        let mut set: LabelSet = pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        set.sort();
        set
    }

    #[test]
    fn selectors_match_as_prometheus_does() {
        let series = labels(&[("__name__", "http_requests_total"), ("code", "500"), ("job", "api")]);
        for (text, selected) in [
            ("http_requests_total", true),
            ("http_requests_total{code=~\"5..\"}", true),
            ("http_requests_total{code!~\"5..\"}", false),
            ("{job=\"api\"}", true),
            ("{__name__=~\"http_.*\", job!=\"api\"}", false),
            ("http_requests_total{instance=\"\"}", true),
            ("{job=\"web\" or code=\"500\"}", true),
            ("up", false),
        ] {
            let selector = Selector::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_eq!(selector.matches(&series), selected, "{text}");
            if selected {
                assert!(selector.accepts_name("http_requests_total"), "{text}");
            }
        }
    }

    #[test]
    fn a_selector_names_the_series_it_may_select() {
        let accepts = |text: &str, name: &str| Selector::parse(text).unwrap().accepts_name(name);
        assert!(accepts("up", "up") && !accepts("up", "down"));
        assert!(
            accepts("{__name__=~\"x_(bucket|sum)\"}", "x_sum") && !accepts("{__name__=~\"x_(bucket|sum)\"}", "x_count")
        );
        assert!(accepts("{job=\"a\"}", "anything") && !accepts("{__name__!=\"up\", job=\"a\"}", "up"));
        assert!(
            accepts("{__name__=\"a\" or __name__=\"b\"}", "b") && !accepts("{__name__=\"a\" or __name__=\"b\"}", "c")
        );
    }

    #[test]
    fn label_names_are_checked() {
        assert!(valid_label_name("__name__") && valid_label_name("job") && valid_label_name("le"));
        assert!(!valid_label_name("") && !valid_label_name("1a") && !valid_label_name("a-b"));
    }

    #[test]
    fn what_is_not_a_series_selector_is_refused_as_prometheus_words_it() {
        assert!(Selector::parse("{job=~\".*\"}").unwrap_err().contains("at least one non-empty matcher"));
        assert!(Selector::parse("rate(up[5m])").unwrap_err().contains("not a series selector"));
        assert!(Selector::parse("up{").unwrap_err().starts_with("invalid parameter \"match[]\""));
    }
}
