//! The `redaction` processor: keeps secrets and personal data out of everything Stella stores or sends.
//!
//! It runs before the ingest log, so no raw secret ever reaches disk. A [`RedactionPolicy`] (a named
//! profile: built-in `default` or `strict`, or a `redaction-profiles/<name>.yaml` file) decides:
//! - **keys**, fail-closed: an attribute key not in `allowed_keys` is removed; `ignored_keys` pass untouched;
//!   a key matching `blocked_key_patterns` keeps its key but its whole value is masked;
//! - **values**: every string the data carries (attributes at every level, names, status messages, log
//!   bodies with their nested maps and arrays, exemplars, trace states) is checked by the switched-on
//!   [`Detector`]s and the `blocked_values` patterns; matches are masked (`****`, or an HMAC-SHA256 that
//!   keeps equal values joinable) unless an `allowed_values` pattern covers them.
//!
//! Each resource records the policy as `stella.redaction.profile` = `<name>@sha256:<hex>` of the policy in
//! RFC 8785 form, and `telemetry_redactions_total{signal,field,rule}` counts every removal and mask.
mod detectors;
mod policy;
mod redactor;
mod walk;

pub use detectors::{Detector, iban_valid, luhn_valid};
pub use policy::{BUILT_IN_PROFILES, DEFAULT_IGNORED_KEYS, HashFunction, PolicyError, RedactionPolicy, Summary};
pub use redactor::{MASK, RecordSummary, Redactor};

use stella_metrics::CounterVec;
use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use stella_otlp::{Batch, OtlpRequest};

use crate::{Dropped, Stage};

/// The resource attribute naming the policy that cleaned the data.
pub const PROFILE_ATTRIBUTE: &str = stella_otlp::attributes::REDACTION_PROFILE;

/// Counts of one batch by (`field`, `rule`), added to the metric once per batch.
#[derive(Debug, Default)]
pub struct Tally {
    counts: Vec<((&'static str, &'static str), u64)>,
}

impl Tally {
    /// Counts one removal or mask of `rule` in `field`.
    pub fn add(&mut self, field: &'static str, rule: &'static str) {
        match self.counts.iter_mut().find(|(key, _)| *key == (field, rule)) {
            Some((_, count)) => *count += 1,
            None => self.counts.push(((field, rule), 1)),
        }
    }

    /// The counts, by (`field`, `rule`).
    pub fn counts(&self) -> &[((&'static str, &'static str), u64)] {
        &self.counts
    }
}

/// The built stage.
pub struct Redaction {
    id: String,
    profile: String,
    redactor: Redactor,
    redactions: CounterVec,
}

impl Redaction {
    /// A stage applying `policy` (profile `name`); `redactions` is `telemetry_redactions_total`.
    pub fn new(
        id: String,
        name: &str,
        policy: &RedactionPolicy,
        hash_key: Option<&[u8]>,
        redactions: CounterVec,
    ) -> Result<Self, PolicyError> {
        Ok(Redaction {
            id,
            profile: format!("{name}@{}", policy.digest()),
            redactor: Redactor::new(name, policy, hash_key)?,
            redactions,
        })
    }

    /// `<name>@sha256:<hex>`, the value of `stella.redaction.profile`.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// Redacts `request` in place and returns the counts.
    pub fn redact(&self, request: &mut OtlpRequest) -> Tally {
        let mut tally = Tally::default();
        match request {
            OtlpRequest::Traces(request) => self.redactor.redact_traces(&mut request.resource_spans, &mut tally),
            OtlpRequest::Metrics(request) => self.redactor.redact_metrics(&mut request.resource_metrics, &mut tally),
            OtlpRequest::Logs(request) => self.redactor.redact_logs(&mut request.resource_logs, &mut tally),
        }
        for resource in request.resources_mut() {
            let value = Some(AnyValue { value: Some(any_value::Value::StringValue(self.profile.clone())) });
            match resource.attributes.iter_mut().find(|attribute| attribute.key == PROFILE_ATTRIBUTE) {
                Some(existing) => existing.value = value,
                None => resource.attributes.push(KeyValue {
                    key: PROFILE_ATTRIBUTE.to_string(),
                    value,
                    ..Default::default()
                }),
            }
        }
        tally
    }
}

impl Stage for Redaction {
    fn id(&self) -> &str {
        &self.id
    }

    fn process(&self, batch: &mut Batch) -> Vec<Dropped> {
        let signal = batch.request.signal().as_str();
        let tally = self.redact(&mut batch.request);
        for ((field, rule), count) in tally.counts() {
            self.redactions.with(&[signal, field, rule]).add(*count);
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests;

/// Fuzz body (`fuzz/fuzz_targets/redaction.rs`, replayed by `cargo test`): the first byte picks the
/// signal, the rest is its protobuf export request. The built-in `default` and `strict` policies never
/// panic on it, and a second pass over their output finds nothing a detector would mask: no detected
/// secret survives anywhere, in any field.
pub fn fuzz_redaction(data: &[u8]) {
    use std::sync::OnceLock;
    static STAGES: OnceLock<Vec<Redaction>> = OnceLock::new();
    let Some((selector, body)) = data.split_first() else { return };
    let signal = stella_otlp::Signal::ALL[usize::from(*selector) % stella_otlp::Signal::ALL.len()];
    let Ok(request) = OtlpRequest::decode_protobuf(signal, body) else { return };
    let stages = STAGES.get_or_init(|| {
        let registry = stella_metrics::Registry::default();
        let counter = registry.counter(stella_metrics::names::REDACTIONS, "Redactions.", &["signal", "field", "rule"]);
        BUILT_IN_PROFILES
            .iter()
            .filter_map(|(name, _)| {
                let policy = RedactionPolicy::built_in(name)?.ok()?;
                Redaction::new((*name).into(), name, &policy, None, counter.clone()).ok()
            })
            .collect()
    });
    assert_eq!(stages.len(), BUILT_IN_PROFILES.len(), "every built-in profile builds");
    for stage in stages {
        let mut once = request.clone();
        stage.redact(&mut once);
        let _ = once.encode_protobuf();
        let second = stage.redact(&mut once);
        let detected: Vec<_> = second
            .counts()
            .iter()
            .filter(|((_, rule), _)| Detector::ALL.iter().any(|detector| detector.name() == *rule))
            .collect();
        assert!(detected.is_empty(), "{}: a second pass still found {detected:?}", stage.id);
    }
}
