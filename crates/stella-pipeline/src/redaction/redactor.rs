//! [`Redactor`]: a policy compiled for the hot path, and what it does to one attribute map or string.
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::RwLock;

use hmac::{Hmac, KeyInit, Mac};
use regex::{Regex, RegexSet};
use sha2::Sha256;
use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value::Value};

use super::policy::{HashFunction, PolicyError, RedactionPolicy, Summary};
use super::{Detector, Tally};

/// The replacement of a masked value when no hash function is set.
pub const MASK: &str = "****";

/// Exact keys plus `prefix.*` patterns.
#[derive(Debug, Default)]
struct KeyMatcher {
    exact: HashSet<String>,
    prefixes: Vec<String>,
}

impl KeyMatcher {
    fn new(keys: &[String]) -> Self {
        let mut matcher = KeyMatcher::default();
        for key in keys {
            match key.strip_suffix('*') {
                Some(prefix) => matcher.prefixes.push(prefix.to_string()),
                None => {
                    matcher.exact.insert(key.clone());
                }
            }
        }
        matcher
    }

    fn matches(&self, key: &str) -> bool {
        self.exact.contains(key) || self.prefixes.iter().any(|prefix| key.starts_with(prefix.as_str()))
    }
}

/// What the key rules say about an attribute key of a record's attribute map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyRule {
    /// In `ignored_keys`: passed untouched.
    Ignored,
    /// Not in the allow-list: removed.
    NotAllowed,
    /// Matches `blocked_key_patterns`: its whole value is masked.
    Blocked,
    /// Kept; its value goes through the value rules.
    Check,
}

/// Distinct keys whose [`KeyRule`] is remembered: attribute keys repeat from record to record, so each is
/// decided once; past this many (hostile, unique keys) the rest are decided every time.
const KEY_CACHE_LIMIT: usize = 4096;

/// One value rule: a detector or a `blocked_values` pattern.
#[derive(Debug)]
struct ValueRule {
    /// The `rule` label: the detector's name or `blocked_value`.
    label: &'static str,
    regex: Regex,
    /// Mask capture group 1 instead of the whole match.
    masks_group: bool,
    detector: Option<Detector>,
}

/// A [`RedactionPolicy`] compiled: key sets, one regex set over every value rule (so a clean string costs
/// one DFA pass) and the individual rules to locate what the set found.
#[derive(Debug)]
pub struct Redactor {
    allow_all_keys: bool,
    allowed: KeyMatcher,
    ignored: KeyMatcher,
    blocked_keys: RegexSet,
    any_value_rule: RegexSet,
    value_rules: Vec<ValueRule>,
    allowed_values: RegexSet,
    redact_all_types: bool,
    hash_key: Option<Vec<u8>>,
    summary: Summary,
    key_rules: RwLock<HashMap<Box<str>, KeyRule>>,
}

/// What a redactor changed in one record (a span with its events and links, a log record, a data point, a
/// resource or a scope), reported on it per the policy's `summary`.
#[derive(Debug, Default)]
pub struct RecordSummary {
    redacted: Vec<String>,
    masked: Vec<String>,
}

impl RecordSummary {
    fn is_empty(&self) -> bool {
        self.redacted.is_empty() && self.masked.is_empty()
    }
}

impl Redactor {
    /// Compiles `policy` (named `name` in errors). `hash_key` is required when the policy hashes.
    pub fn new(name: &str, policy: &RedactionPolicy, hash_key: Option<&[u8]>) -> Result<Self, PolicyError> {
        let invalid = |field: &'static str, pattern: &str, error: regex::Error| PolicyError::Pattern {
            name: name.to_string(),
            field,
            pattern: pattern.to_string(),
            message: error.to_string(),
        };
        let set = |field: &'static str, patterns: &[String], anchored: bool| -> Result<RegexSet, PolicyError> {
            for pattern in patterns {
                Regex::new(pattern).map_err(|error| invalid(field, pattern, error))?;
            }
            let patterns: Vec<String> = if anchored {
                patterns.iter().map(|pattern| format!("^(?:{pattern})$")).collect()
            } else {
                patterns.to_vec()
            };
            RegexSet::new(&patterns).map_err(|error| invalid(field, &patterns.join(" | "), error))
        };
        let mut value_rules = Vec::new();
        let mut detectors = policy.detectors.clone();
        detectors.sort();
        detectors.dedup();
        for detector in detectors {
            let regex =
                Regex::new(detector.pattern()).map_err(|error| invalid("detectors", detector.pattern(), error))?;
            let masks_group = regex.captures_len() > 1;
            value_rules.push(ValueRule { label: detector.name(), regex, masks_group, detector: Some(detector) });
        }
        for pattern in &policy.blocked_values {
            let regex = Regex::new(pattern).map_err(|error| invalid("blocked_values", pattern, error))?;
            value_rules.push(ValueRule { label: "blocked_value", regex, masks_group: false, detector: None });
        }
        let any_value_rule = RegexSet::new(value_rules.iter().map(|rule| rule.regex.as_str()))
            .map_err(|error| invalid("blocked_values", "(all value rules)", error))?;
        let hash_key = match policy.hash_function {
            HashFunction::None => None,
            HashFunction::HmacSha256 => Some(
                hash_key
                    .filter(|key| !key.is_empty())
                    .ok_or_else(|| PolicyError::Invalid {
                        name: name.to_string(),
                        message: "hash_function: hmac-sha256 needs a key: set the redaction processor's hash_key_env \
                                  to the name of an environment variable holding it"
                            .to_string(),
                    })?
                    .to_vec(),
            ),
        };
        Ok(Redactor {
            allow_all_keys: policy.allow_all_keys,
            allowed: KeyMatcher::new(&policy.allowed_keys),
            ignored: KeyMatcher::new(&policy.ignored_keys),
            blocked_keys: set("blocked_key_patterns", &policy.blocked_key_patterns, false)?,
            any_value_rule,
            value_rules,
            allowed_values: set("allowed_values", &policy.allowed_values, true)?,
            redact_all_types: policy.redact_all_types,
            hash_key,
            summary: policy.summary,
            key_rules: RwLock::new(HashMap::new()),
        })
    }

    /// The rule for an attribute key of a record's attribute map, decided once per distinct key.
    fn key_rule(&self, key: &str) -> KeyRule {
        if let Some(rule) = self.key_rules.read().unwrap_or_else(|poison| poison.into_inner()).get(key) {
            return *rule;
        }
        let rule = if self.ignored.matches(key) {
            KeyRule::Ignored
        } else if !self.allow_all_keys && !self.allowed.matches(key) {
            KeyRule::NotAllowed
        } else if self.blocked_keys.is_match(key) {
            KeyRule::Blocked
        } else {
            KeyRule::Check
        };
        let mut rules = self.key_rules.write().unwrap_or_else(|poison| poison.into_inner());
        if rules.len() < KEY_CACHE_LIMIT {
            rules.insert(key.into(), rule);
        }
        rule
    }

    /// Applies the key rules and value rules to an attribute map; `field` labels the counts.
    pub fn scrub_attributes(
        &self,
        attributes: &mut Vec<KeyValue>,
        field: &'static str,
        tally: &mut Tally,
        record: &mut RecordSummary,
    ) {
        attributes.retain_mut(|attribute| {
            let masked = match self.key_rule(&attribute.key) {
                KeyRule::Ignored => return true,
                KeyRule::NotAllowed => {
                    tally.add(field, "key_not_allowed");
                    if self.summary == Summary::Debug {
                        record.redacted.push(std::mem::take(&mut attribute.key));
                    } else {
                        record.redacted.push(String::new());
                    }
                    return false;
                }
                KeyRule::Blocked => self.mask_whole(attribute, field, tally),
                KeyRule::Check => attribute.value.as_mut().is_some_and(|value| self.scrub_value(value, field, tally)),
            };
            if masked {
                record.masked.push(if self.summary == Summary::Debug { attribute.key.clone() } else { String::new() });
            }
            true
        });
    }

    /// Checks one key/value pair inside a checked value (a nested map): a blocked key masks the whole value,
    /// otherwise the value is checked. Returns whether anything was masked.
    fn scrub_entry(&self, attribute: &mut KeyValue, field: &'static str, tally: &mut Tally) -> bool {
        if self.blocked_keys.is_match(&attribute.key) {
            return self.mask_whole(attribute, field, tally);
        }
        attribute.value.as_mut().is_some_and(|value| self.scrub_value(value, field, tally))
    }

    /// Masks the whole value of an attribute with a blocked key. Returns whether there was one to mask.
    fn mask_whole(&self, attribute: &mut KeyValue, field: &'static str, tally: &mut Tally) -> bool {
        let Some(value) = attribute.value.as_mut().filter(|value| !is_empty(value)) else { return false };
        let replacement = value
            .value
            .as_ref()
            .and_then(stella_otlp::attributes::scalar_text)
            .map_or_else(|| MASK.to_string(), |text| self.replacement(&text));
        value.value = Some(Value::StringValue(replacement));
        tally.add(field, "blocked_key");
        true
    }

    /// Checks a value and everything nested in it. Returns whether anything was masked.
    pub fn scrub_value(&self, value: &mut AnyValue, field: &'static str, tally: &mut Tally) -> bool {
        match value.value.as_mut() {
            Some(Value::StringValue(text)) => self.scrub_string(text, field, tally),
            Some(Value::ArrayValue(array)) => {
                let mut masked = false;
                for item in &mut array.values {
                    masked |= self.scrub_value(item, field, tally);
                }
                masked
            }
            Some(Value::KvlistValue(list)) => {
                let mut masked = false;
                for entry in &mut list.values {
                    masked |= self.scrub_entry(entry, field, tally);
                }
                masked
            }
            Some(Value::IntValue(_) | Value::DoubleValue(_) | Value::BoolValue(_)) if self.redact_all_types => {
                let Some(mut text) = value.value.as_ref().and_then(stella_otlp::attributes::scalar_text) else {
                    return false;
                };
                let masked = self.scrub_string(&mut text, field, tally);
                if masked {
                    value.value = Some(Value::StringValue(text));
                }
                masked
            }
            _ => false,
        }
    }

    /// Masks every match of the value rules in `text`, in place. Returns whether anything was masked.
    pub fn scrub_string(&self, text: &mut String, field: &'static str, tally: &mut Tally) -> bool {
        // A clean string (most of them) costs one pass of the set that stops at the first match.
        if text.is_empty() || self.value_rules.is_empty() || !self.any_value_rule.is_match(text) {
            return false;
        }
        let hits = self.any_value_rule.matches(text);
        if !hits.matched_any() {
            return false;
        }
        let mut found: Vec<(Range<usize>, &'static str)> = Vec::new();
        for index in hits.iter() {
            let rule = &self.value_rules[index];
            self.locate(rule, text, &mut found);
        }
        if found.is_empty() {
            return false;
        }
        found.sort_by_key(|(range, _)| (range.start, std::cmp::Reverse(range.end)));
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for (range, label) in found {
            if range.start < copied {
                // Overlaps a range already masked: extend that mask over the rest.
                if range.end > copied {
                    copied = range.end;
                }
                tally.add(field, label);
                continue;
            }
            out.push_str(&text[copied..range.start]);
            out.push_str(&self.replacement(&text[range.clone()]));
            copied = range.end;
            tally.add(field, label);
        }
        out.push_str(&text[copied..]);
        *text = out;
        true
    }

    /// Appends the ranges `rule` confirms in `text`, except those an `allowed_values` pattern wholly covers.
    fn locate(&self, rule: &ValueRule, text: &str, found: &mut Vec<(Range<usize>, &'static str)>) {
        let mut at = 0;
        while at < text.len() {
            let (full, mask) = if rule.masks_group {
                let Some(captures) = rule.regex.captures_at(text, at) else { break };
                let Some(full) = captures.get(0) else { break };
                let mask = captures.get(1).map_or(full.range(), |group| group.range());
                (full.range(), mask)
            } else {
                let Some(full) = rule.regex.find_at(text, at) else { break };
                (full.range(), full.range())
            };
            let confirmed = match rule.detector {
                Some(detector) => detector.confirm(text, mask),
                None => Some(mask),
            };
            match confirmed {
                Some(range) if !range.is_empty() => {
                    // An earlier mask is not a secret: redaction is idempotent.
                    let matched = &text[range.clone()];
                    if matched != MASK && !self.allowed_values.is_match(matched) {
                        found.push((range.clone(), rule.label));
                    }
                    at = range.end.max(full.start + 1);
                }
                _ => at = full.start + 1,
            }
            while !text.is_char_boundary(at) {
                at += 1;
            }
        }
    }

    /// `****`, or `hmac-sha256:<hex>` of `text` under the key.
    fn replacement(&self, text: &str) -> String {
        match &self.hash_key {
            None => MASK.to_string(),
            Some(key) => match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(text.as_bytes());
                    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
                }
                Err(_) => MASK.to_string(),
            },
        }
    }

    /// Appends the summary attributes of `record` to `attributes`, per the policy's `summary`.
    pub fn summarize(&self, record: RecordSummary, attributes: &mut Vec<KeyValue>) {
        if record.is_empty() || self.summary == Summary::Silent {
            return;
        }
        let int = |key: &str, count: usize| KeyValue {
            key: key.to_string(),
            value: Some(AnyValue { value: Some(Value::IntValue(i64::try_from(count).unwrap_or(i64::MAX))) }),
            ..Default::default()
        };
        let keys = |key: &str, names: &[String]| {
            let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
            names.sort_unstable();
            names.dedup();
            KeyValue {
                key: key.to_string(),
                value: Some(AnyValue { value: Some(Value::StringValue(names.join(","))) }),
                ..Default::default()
            }
        };
        if !record.redacted.is_empty() {
            if self.summary == Summary::Debug {
                attributes.push(keys("redaction.redacted.keys", &record.redacted));
            }
            attributes.push(int("redaction.redacted.count", record.redacted.len()));
        }
        if !record.masked.is_empty() {
            if self.summary == Summary::Debug {
                attributes.push(keys("redaction.masked.keys", &record.masked));
            }
            attributes.push(int("redaction.masked.count", record.masked.len()));
        }
    }

    /// Records that a plain string field of a record (a name, a body, a status message) was masked.
    pub fn note_masked_field(&self, record: &mut RecordSummary, field: &str) {
        record.masked.push(if self.summary == Summary::Debug { field.to_string() } else { String::new() });
    }
}

fn is_empty(value: &AnyValue) -> bool {
    match &value.value {
        None => true,
        Some(Value::StringValue(text)) => text.is_empty(),
        _ => false,
    }
}
