//! Policies compiled for evaluation: span-level conditions become bits set as spans arrive, so a
//! decision reads a small trace summary instead of the buffered spans.
use std::collections::BTreeMap;

use regex::RegexSet;
use sha2::{Digest, Sha256};
use stella_otlp::wire::view::{AnyValueView, RESOURCE_ATTRIBUTES, SpanView, attribute};

use super::cache::{mix, trace_hash};
use super::config::{PolicyConfig, StatusName, TailSamplingConfig};

/// Span conditions as bits of [`TraceSummary::matched`]; at most this many per config.
pub const MAX_SPAN_CONDITIONS: usize = 64;

/// A policy config cannot be compiled.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PolicyError {
    /// Where, e.g. `policies[2].string_attribute.values[0]`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// What the sampler knows about a trace when it decides.
#[derive(Debug, Clone, Default)]
pub struct TraceSummary {
    /// Bits of the span conditions some span met.
    pub matched: u64,
    /// Spans buffered.
    pub spans: u32,
    /// Earliest span start, unix nanoseconds.
    pub min_start: u64,
    /// Latest span end, unix nanoseconds.
    pub max_end: u64,
    /// The root span's service, else the first span's.
    pub service: Option<std::sync::Arc<str>>,
    /// Whether the root span (no parent) has arrived.
    pub has_root: bool,
}

/// A condition on one span (and its resource).
#[derive(Debug)]
enum SpanCondition {
    Status(Vec<i32>),
    StringEquals { key: String, values: Vec<String> },
    StringMatches { key: String, values: RegexSet },
    Numeric { key: String, min: i64, max: i64 },
}

impl SpanCondition {
    fn holds(&self, span: &SpanView<'_>, resource: Option<&[u8]>) -> bool {
        let value_of = |key: &str| {
            span.attribute(key).or_else(|| resource.and_then(|resource| attribute(resource, RESOURCE_ATTRIBUTES, key)))
        };
        match self {
            SpanCondition::Status(codes) => codes.contains(&span.status_code),
            SpanCondition::StringEquals { key, values } => {
                matches!(value_of(key), Some(AnyValueView::String(text)) if values.iter().any(|value| value == text))
            }
            SpanCondition::StringMatches { key, values } => {
                matches!(value_of(key), Some(AnyValueView::String(text)) if values.is_match(text))
            }
            SpanCondition::Numeric { key, min, max } => {
                matches!(value_of(key), Some(AnyValueView::Int(number)) if (*min..=*max).contains(&number))
            }
        }
    }
}

/// A compiled policy.
#[derive(Debug)]
enum Rule {
    Always,
    /// A span condition bit; `invert` samples when no span met it.
    Condition {
        bit: u32,
        invert: bool,
    },
    Latency {
        min_ns: u64,
        max_ns: u64,
    },
    Probabilistic {
        threshold: u64,
        salt: String,
    },
    RateLimiting {
        spans_per_second: u64,
    },
    SpanCount {
        min: u32,
        max: u32,
    },
    Drop(Vec<Rule>),
    And(Vec<Rule>),
    Composite {
        max_total: u64,
        subs: Vec<(Rule, f64)>,
    },
    ServiceRates(BTreeMap<String, u64>),
}

/// The result of one policy on one trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it.
    Sample,
    /// This policy does not keep it.
    NotSample,
    /// Drop it, whatever other policies say.
    Drop,
}

/// Rate-limiting state: spans sampled in the current second, per rate-limited policy.
#[derive(Debug, Default)]
pub struct RateState {
    second: u64,
    spent: BTreeMap<usize, u64>,
}

impl RateState {
    fn take(&mut self, key: usize, now_ms: u64, spans: u64, limit: u64) -> bool {
        let second = now_ms / 1000;
        if second != self.second {
            self.second = second;
            self.spent.clear();
        }
        let spent = self.spent.entry(key).or_insert(0);
        if *spent + spans <= limit {
            *spent += spans;
            true
        } else {
            false
        }
    }
}

/// The compiled policy set of one config.
#[derive(Debug)]
pub struct Policies {
    names: Vec<String>,
    rules: Vec<Rule>,
    conditions: Vec<SpanCondition>,
    version: String,
}

/// `threshold` for a percentage: hash values below it are sampled.
pub fn percent_threshold(percent: f64) -> u64 {
    if percent >= 100.0 {
        u64::MAX
    } else if percent <= 0.0 || percent.is_nan() {
        0
    } else {
        // Exact enough: the share differs from `percent` by less than 2^-53.
        (percent / 100.0 * u64::MAX as f64) as u64
    }
}

/// Whether a trace id falls in the sampled share under `threshold` (with `salt`): a pure function of the
/// id, so every instance with the same settings decides alike.
pub fn sampled_by_hash(trace_id: &[u8; 16], salt: &str, threshold: u64) -> bool {
    if threshold == u64::MAX {
        return true;
    }
    let hash = if salt.is_empty() {
        trace_hash(trace_id)
    } else {
        let salt_hash = salt
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3));
        mix(trace_hash(trace_id) ^ salt_hash)
    };
    hash < threshold
}

impl Policies {
    /// Compiles the policies of `config`.
    pub fn compile(config: &TailSamplingConfig) -> Result<Self, PolicyError> {
        let mut conditions = Vec::new();
        let mut rules = Vec::new();
        let mut names = Vec::new();
        for (index, policy) in config.policies.iter().enumerate() {
            let path = format!("policies[{index}]");
            if names.iter().any(|name| name == policy.name()) {
                return Err(PolicyError {
                    path: format!("{path}.name"),
                    message: format!("{:?} is used twice; policy names must be unique", policy.name()),
                });
            }
            if policy.name().is_empty() {
                return Err(PolicyError { path: format!("{path}.name"), message: "a policy needs a name".into() });
            }
            rules.push(compile(policy, &path, &mut conditions)?);
            names.push(policy.name().to_string());
        }
        if names.len() > 250 {
            return Err(PolicyError { path: "policies".into(), message: "more than 250 policies; merge some".into() });
        }
        // The version names the policy set: sha256 of its canonical JSON, first 12 hex digits.
        let canonical = serde_json_canonicalizer::to_vec(&config.policies).unwrap_or_default();
        let version = hex::encode(&Sha256::digest(&canonical)[..6]);
        Ok(Policies { names, rules, conditions, version })
    }

    /// The name of top-level policy `index`.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(String::as_str)
    }

    /// The index of the policy named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|known| known == name)
    }

    /// The policy set's version (`sampling.policy_version`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The condition bits `span` (with its encoded `resource`) meets.
    pub fn span_bits(&self, span: &SpanView<'_>, resource: Option<&[u8]>) -> u64 {
        self.conditions
            .iter()
            .enumerate()
            .filter(|(_, condition)| condition.holds(span, resource))
            .fold(0, |bits, (bit, _)| bits | (1 << bit))
    }

    /// Evaluates every policy (rate limits count only what they keep); returns the first sampling
    /// policy's index, or why not.
    pub fn decide(&self, trace_id: &[u8; 16], summary: &TraceSummary, now_ms: u64, rates: &mut RateState) -> Decision {
        let mut first_sample = None;
        let mut dropped = false;
        for (index, rule) in self.rules.iter().enumerate() {
            match evaluate(rule, trace_id, summary, now_ms, rates, index * 64) {
                Verdict::Drop => dropped = true,
                Verdict::Sample if first_sample.is_none() => first_sample = Some(index),
                _ => {}
            }
        }
        match (dropped, first_sample) {
            (true, _) => Decision::Drop,
            (false, Some(index)) => Decision::Keep(index),
            (false, None) => Decision::NotSampled,
        }
    }
}

/// A decision over all policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Kept by the policy at this index.
    Keep(usize),
    /// A `drop` policy matched.
    Drop,
    /// No policy kept it.
    NotSampled,
}

fn compile(policy: &PolicyConfig, path: &str, conditions: &mut Vec<SpanCondition>) -> Result<Rule, PolicyError> {
    let error = |key: &str, message: String| PolicyError { path: format!("{path}.{key}"), message };
    let mut condition = |condition: SpanCondition, key: &str| -> Result<u32, PolicyError> {
        if conditions.len() >= MAX_SPAN_CONDITIONS {
            return Err(error(
                key,
                format!("more than {MAX_SPAN_CONDITIONS} span conditions in all; merge some policies"),
            ));
        }
        conditions.push(condition);
        Ok((conditions.len() - 1) as u32)
    };
    let subs = |list: &[PolicyConfig],
                key: &str,
                conditions: &mut Vec<SpanCondition>|
     -> Result<Vec<Rule>, PolicyError> {
        if list.is_empty() {
            return Err(PolicyError { path: format!("{path}.{key}"), message: "needs at least one sub-policy".into() });
        }
        list.iter()
            .enumerate()
            .map(|(index, sub)| compile(sub, &format!("{path}.{key}[{index}]"), conditions))
            .collect()
    };
    Ok(match policy {
        PolicyConfig::AlwaysSample { .. } => Rule::Always,
        PolicyConfig::StatusCode { status_code, .. } => {
            if status_code.status_codes.is_empty() {
                return Err(error("status_code.status_codes", "list at least one of ERROR, OK, UNSET".into()));
            }
            let codes = status_code
                .status_codes
                .iter()
                .map(|code| match code {
                    StatusName::Unset => 0,
                    StatusName::Ok => 1,
                    StatusName::Error => 2,
                })
                .collect();
            Rule::Condition { bit: condition(SpanCondition::Status(codes), "status_code")?, invert: false }
        }
        PolicyConfig::Latency { latency, .. } => {
            if latency.upper_threshold_ms != 0 && latency.upper_threshold_ms < latency.threshold_ms {
                return Err(error(
                    "latency.upper_threshold_ms",
                    "is below threshold_ms; raise it or set 0 for no bound".into(),
                ));
            }
            let max_ns = if latency.upper_threshold_ms == 0 {
                u64::MAX
            } else {
                latency.upper_threshold_ms.saturating_mul(1_000_000)
            };
            Rule::Latency { min_ns: latency.threshold_ms.saturating_mul(1_000_000), max_ns }
        }
        PolicyConfig::Probabilistic { probabilistic, .. } => {
            let percent = probabilistic.sampling_percentage;
            if !(0.0..=100.0).contains(&percent) {
                return Err(error("probabilistic.sampling_percentage", format!("{percent} is not within 0..100")));
            }
            Rule::Probabilistic { threshold: percent_threshold(percent), salt: probabilistic.hash_salt.clone() }
        }
        PolicyConfig::RateLimiting { rate_limiting, .. } => {
            Rule::RateLimiting { spans_per_second: rate_limiting.spans_per_second }
        }
        PolicyConfig::StringAttribute { string_attribute, .. } => {
            let config = string_attribute;
            if config.values.is_empty() {
                return Err(error("string_attribute.values", "list at least one value".into()));
            }
            let span_condition = if config.enabled_regex_matching {
                let anchored: Vec<String> = config.values.iter().map(|value| format!("^(?:{value})$")).collect();
                let values = RegexSet::new(&anchored).map_err(|problem| {
                    error("string_attribute.values", format!("not a valid regular expression: {problem}"))
                })?;
                SpanCondition::StringMatches { key: config.key.clone(), values }
            } else {
                SpanCondition::StringEquals { key: config.key.clone(), values: config.values.clone() }
            };
            Rule::Condition { bit: condition(span_condition, "string_attribute")?, invert: config.invert_match }
        }
        PolicyConfig::NumericAttribute { numeric_attribute, .. } => {
            let config = numeric_attribute;
            let (min, max) = (config.min_value.unwrap_or(i64::MIN), config.max_value.unwrap_or(i64::MAX));
            if min > max {
                return Err(error("numeric_attribute.max_value", format!("{max} is below min_value {min}")));
            }
            let span_condition = SpanCondition::Numeric { key: config.key.clone(), min, max };
            Rule::Condition { bit: condition(span_condition, "numeric_attribute")?, invert: config.invert_match }
        }
        PolicyConfig::SpanCount { span_count, .. } => {
            let max = if span_count.max_spans == 0 { u32::MAX } else { span_count.max_spans };
            if max < span_count.min_spans {
                return Err(error("span_count.max_spans", "is below min_spans; raise it or set 0 for no bound".into()));
            }
            Rule::SpanCount { min: span_count.min_spans, max }
        }
        PolicyConfig::Drop { drop, .. } => Rule::Drop(subs(&drop.drop_sub_policy, "drop.drop_sub_policy", conditions)?),
        PolicyConfig::And { and, .. } => Rule::And(subs(&and.and_sub_policy, "and.and_sub_policy", conditions)?),
        PolicyConfig::Composite { composite, .. } => {
            let rules = subs(&composite.composite_sub_policy, "composite.composite_sub_policy", conditions)?;
            let named: Vec<(&str, Rule)> =
                composite.composite_sub_policy.iter().map(PolicyConfig::name).zip(rules).collect();
            let mut ordered = Vec::new();
            let mut named = named;
            for (index, wanted) in composite.policy_order.iter().enumerate() {
                let Some(position) = named.iter().position(|(name, _)| name == wanted) else {
                    return Err(error(
                        &format!("composite.policy_order[{index}]"),
                        format!("{wanted:?} is not a composite_sub_policy name"),
                    ));
                };
                let (name, rule) = named.remove(position);
                let share = match composite.rate_allocation.iter().find(|allocation| allocation.policy == name) {
                    Some(allocation) => allocation.percent,
                    None if composite.rate_allocation.is_empty() => 100.0 / composite.policy_order.len() as f64,
                    None => 0.0,
                };
                ordered.push((rule, share));
            }
            if let Some((name, _)) = named.first() {
                return Err(error(
                    "composite.policy_order",
                    format!("{name:?} is missing; list every sub-policy once"),
                ));
            }
            Rule::Composite { max_total: composite.max_total_spans_per_second, subs: ordered }
        }
        PolicyConfig::ServiceRates { service_rates, .. } => {
            let mut rates = BTreeMap::new();
            for (service, percent) in service_rates {
                if !(0.0..=100.0).contains(percent) {
                    return Err(error(&format!("service_rates.{service}"), format!("{percent} is not within 0..100")));
                }
                rates.insert(service.clone(), percent_threshold(*percent));
            }
            Rule::ServiceRates(rates)
        }
    })
}

fn evaluate(
    rule: &Rule,
    trace_id: &[u8; 16],
    summary: &TraceSummary,
    now_ms: u64,
    rates: &mut RateState,
    key: usize,
) -> Verdict {
    let sample = |yes: bool| if yes { Verdict::Sample } else { Verdict::NotSample };
    match rule {
        Rule::Always => Verdict::Sample,
        Rule::Condition { bit, invert } => sample((summary.matched >> bit & 1 == 1) != *invert),
        Rule::Latency { min_ns, max_ns } => {
            let duration = summary.max_end.saturating_sub(summary.min_start);
            sample(duration >= *min_ns && duration <= *max_ns)
        }
        Rule::Probabilistic { threshold, salt } => sample(sampled_by_hash(trace_id, salt, *threshold)),
        Rule::RateLimiting { spans_per_second } => {
            sample(rates.take(key, now_ms, u64::from(summary.spans), *spans_per_second))
        }
        Rule::SpanCount { min, max } => sample((*min..=*max).contains(&summary.spans)),
        Rule::Drop(subs) => {
            let all = subs.iter().enumerate().all(|(index, sub)| {
                evaluate(sub, trace_id, summary, now_ms, rates, key + index + 1) == Verdict::Sample
            });
            if all { Verdict::Drop } else { Verdict::NotSample }
        }
        Rule::And(subs) => {
            sample(subs.iter().enumerate().all(|(index, sub)| {
                evaluate(sub, trace_id, summary, now_ms, rates, key + index + 1) == Verdict::Sample
            }))
        }
        Rule::Composite { max_total, subs } => {
            for (index, (sub, share)) in subs.iter().enumerate() {
                if evaluate(sub, trace_id, summary, now_ms, rates, key + index + 1) != Verdict::Sample {
                    continue;
                }
                let budget = (*max_total as f64 * share / 100.0) as u64;
                if rates.take(key + 32 + index, now_ms, u64::from(summary.spans), budget) {
                    return Verdict::Sample;
                }
            }
            Verdict::NotSample
        }
        Rule::ServiceRates(rates_by_service) => {
            let threshold = summary.service.as_deref().and_then(|service| rates_by_service.get(service));
            sample(threshold.is_some_and(|threshold| sampled_by_hash(trace_id, "", *threshold)))
        }
    }
}
