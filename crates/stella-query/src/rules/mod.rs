//! Recording and alerting rules evaluated with the PromQL engine, as Prometheus 2.x's rule manager
//! evaluates them: a group's rules run in order (a rule sees what the rules before it recorded at the
//! same time), an alert is pending until its series has been in the result for `for`, then firing;
//! with `keep_firing_for` it keeps firing that long after its series left; a resolved alert is kept 15
//! minutes so its resolution is sent. Each evaluation gives the series to write back (recorded series,
//! `ALERTS`, `ALERTS_FOR_STATE`, and stale markers for series that ended) and the alerts to send.
//!
//! The caller schedules groups, writes the series and talks to Alertmanager; this module is pure.
pub mod file;
pub mod template;
pub mod unit;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use promql_parser::label::METRIC_NAME;

pub use file::{Group, Rule, RuleFileError, RuleKind};

use crate::prometheus::{LabelSet, SelectError, Selector, Series};
use crate::promql::{self, Options, QueryError, Value};

/// How long a resolved alert is kept (and re-sent as resolved).
const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// The state of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    /// In the result, not yet for `for`.
    Pending,
    /// Firing.
    Firing,
    /// Resolved (kept a while to send the resolution).
    Inactive,
}

impl AlertState {
    /// `pending`, `firing`, `inactive`.
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Inactive => "inactive",
        }
    }
}

/// One alert of an alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Its labels: the series' (without the name), the rule's, `alertname`.
    pub labels: BTreeMap<String, String>,
    /// Its annotations, expanded.
    pub annotations: BTreeMap<String, String>,
    /// Its state.
    pub state: AlertState,
    /// The value of its series at the last evaluation.
    pub value: f64,
    /// When it became pending (unix milliseconds).
    pub active_at: i64,
    /// When it started firing.
    pub fired_at: Option<i64>,
    /// When it resolved.
    pub resolved_at: Option<i64>,
    /// When it was last sent.
    pub last_sent_at: Option<i64>,
    /// Until when Alertmanager should hold it firing without hearing again.
    pub valid_until: i64,
    /// Since when it has kept firing without its series.
    pub keep_firing_since: Option<i64>,
}

/// Whether a rule's last evaluation worked.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// Not evaluated yet.
    Unknown,
    /// It worked.
    Ok,
    /// It failed with this error.
    Err(String),
}

/// What is known of one rule between evaluations.
#[derive(Debug, Clone)]
pub struct RuleState {
    /// Its last evaluation's health.
    pub health: Health,
    /// When it was last evaluated (unix milliseconds).
    pub last_evaluation: Option<i64>,
    /// How long that took, seconds.
    pub evaluation_seconds: f64,
    /// Its alerts by label set (alerting rules).
    pub alerts: BTreeMap<Vec<(String, String)>, Alert>,
    /// The series it wrote at its last evaluation (for stale markers when they end).
    written: HashSet<LabelSet>,
}

impl Default for RuleState {
    fn default() -> Self {
        RuleState {
            health: Health::Unknown,
            last_evaluation: None,
            evaluation_seconds: 0.0,
            alerts: BTreeMap::new(),
            written: HashSet::new(),
        }
    }
}

/// What is known of one group between evaluations.
#[derive(Debug, Clone, Default)]
pub struct GroupState {
    /// One per rule, in order.
    pub rules: Vec<RuleState>,
    /// When the group was last evaluated.
    pub last_evaluation: Option<i64>,
    /// How long that took, seconds.
    pub evaluation_seconds: f64,
}

/// What one evaluation of a group produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Series to write at the evaluation time: recorded series, `ALERTS`, `ALERTS_FOR_STATE` (labels
    /// with `__name__`, value).
    pub series: Vec<(LabelSet, f64)>,
    /// Series written last time and not now: each gets a staleness marker.
    pub ended: Vec<LabelSet>,
    /// Alerts to send to Alertmanager now.
    pub notifications: Vec<Alert>,
}

/// How the group is run.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// The group's interval.
    pub interval: Duration,
    /// How often a firing alert is re-sent.
    pub resend_delay: Duration,
}

/// Evaluates `group` at `time` (unix milliseconds) over `source`, updating `state`.
pub fn evaluate(
    group: &Group,
    state: &mut GroupState,
    source: &dyn promql::Source,
    time: i64,
    schedule: Schedule,
    options: Options,
) -> Outcome {
    let started = std::time::Instant::now();
    state.rules.resize_with(group.rules.len(), RuleState::default);
    let mut outcome = Outcome::default();
    let mut recorded: Vec<Series> = Vec::new();
    for (rule, rule_state) in group.rules.iter().zip(state.rules.iter_mut()) {
        let rule_started = std::time::Instant::now();
        let overlay = Overlay { inner: source, recorded: &recorded };
        let result = promql::instant(&overlay, &rule.expr, time, options).and_then(|value| match value {
            Value::Vector(samples) => Ok(samples.into_iter().map(|sample| (sample.labels, sample.value)).collect()),
            Value::Scalar(value) => Ok(vec![(Vec::new(), value)]),
            other => Err(QueryError::Execution(format!("rule result is not a vector or a scalar: {other:?}"))),
        });
        let written = match result.and_then(|samples: Vec<(LabelSet, f64)>| match &rule.kind {
            RuleKind::Recording => record(rule, samples, group.limit),
            RuleKind::Alerting { hold, keep_firing_for, annotations } => {
                let settings = AlertSettings { hold: *hold, keep_firing_for: *keep_firing_for, annotations };
                alert(rule, &settings, rule_state, samples, time, group.limit)
            }
        }) {
            Ok(series) => {
                rule_state.health = Health::Ok;
                series
            }
            Err(error) => {
                rule_state.health = Health::Err(error.to_string());
                Vec::new()
            }
        };
        if let RuleKind::Recording = rule.kind {
            recorded.extend(
                written.iter().map(|(labels, value)| Series { labels: labels.clone(), samples: vec![(time, *value)] }),
            );
        }
        let now: HashSet<LabelSet> = written.iter().map(|(labels, _)| labels.clone()).collect();
        outcome.ended.extend(rule_state.written.iter().filter(|labels| !now.contains(*labels)).cloned());
        rule_state.written = now;
        outcome.series.extend(written);
        if let RuleKind::Alerting { .. } = rule.kind {
            outcome.notifications.extend(due(rule_state, time, schedule));
        }
        rule_state.last_evaluation = Some(time);
        rule_state.evaluation_seconds = rule_started.elapsed().as_secs_f64();
    }
    state.last_evaluation = Some(time);
    state.evaluation_seconds = started.elapsed().as_secs_f64();
    outcome
}

/// The recorded series of a recording rule's result.
fn record(rule: &Rule, samples: Vec<(LabelSet, f64)>, limit: usize) -> Result<Vec<(LabelSet, f64)>, QueryError> {
    let fixed: BTreeMap<String, String> = rule
        .labels
        .iter()
        .map(|(name, template)| {
            let empty = BTreeMap::new();
            (name.clone(), template.expand(template::Data { labels: &empty, value: 0.0 }))
        })
        .collect();
    let mut out = Vec::with_capacity(samples.len());
    let mut seen = HashSet::new();
    for (labels, value) in samples {
        let mut labels: BTreeMap<String, String> = labels.into_iter().collect();
        labels.insert(METRIC_NAME.to_string(), rule.name.clone());
        for (name, value) in &fixed {
            if value.is_empty() {
                labels.remove(name);
            } else {
                labels.insert(name.clone(), value.clone());
            }
        }
        let labels: LabelSet = labels.into_iter().collect();
        if !seen.insert(labels.clone()) {
            return Err(QueryError::Execution(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            ));
        }
        out.push((labels, value));
    }
    if limit > 0 && out.len() > limit {
        return Err(QueryError::Execution(format!("exceeded limit of {limit} with {} series", out.len())));
    }
    Ok(out)
}

/// The alerting part of a rule.
struct AlertSettings<'a> {
    hold: Duration,
    keep_firing_for: Duration,
    annotations: &'a BTreeMap<String, template::Template>,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Updates an alerting rule's alerts with its result; its `ALERTS` and `ALERTS_FOR_STATE` series.
fn alert(
    rule: &Rule,
    settings: &AlertSettings<'_>,
    state: &mut RuleState,
    samples: Vec<(LabelSet, f64)>,
    time: i64,
    limit: usize,
) -> Result<Vec<(LabelSet, f64)>, QueryError> {
    let mut current: BTreeMap<Vec<(String, String)>, Alert> = BTreeMap::new();
    for (labels, value) in samples {
        let series: BTreeMap<String, String> = labels.into_iter().collect();
        let data = template::Data { labels: &series, value };
        let mut labels = series.clone();
        for (name, template) in &rule.labels {
            let expanded = template.expand(data);
            if expanded.is_empty() {
                labels.remove(name);
            } else {
                labels.insert(name.clone(), expanded);
            }
        }
        labels.remove(METRIC_NAME);
        labels.insert("alertname".into(), rule.name.clone());
        let annotations =
            settings.annotations.iter().map(|(name, template)| (name.clone(), template.expand(data))).collect();
        let key: Vec<(String, String)> = labels.clone().into_iter().collect();
        if current.contains_key(&key) {
            return Err(QueryError::Execution(
                "vector contains metrics with the same labelset after applying alert labels".into(),
            ));
        }
        let alert = Alert {
            labels,
            annotations,
            state: AlertState::Pending,
            value,
            active_at: time,
            fired_at: None,
            resolved_at: None,
            last_sent_at: None,
            valid_until: 0,
            keep_firing_since: None,
        };
        current.insert(key, alert);
    }
    let in_result: HashSet<Vec<(String, String)>> = current.keys().cloned().collect();
    for (key, fresh) in current {
        match state.alerts.get_mut(&key) {
            Some(known) if known.state != AlertState::Inactive => {
                known.value = fresh.value;
                known.annotations = fresh.annotations;
            }
            _ => {
                state.alerts.insert(key, fresh);
            }
        }
    }
    let mut series = Vec::new();
    let mut active = 0usize;
    let mut removed = Vec::new();
    for (key, alert) in state.alerts.iter_mut() {
        if !in_result.contains(key) {
            let mut keep_firing = false;
            if alert.state == AlertState::Firing && !settings.keep_firing_for.is_zero() {
                let since = *alert.keep_firing_since.get_or_insert(time);
                keep_firing = time - since < millis(settings.keep_firing_for);
            }
            if alert.state == AlertState::Pending
                || alert.resolved_at.is_some_and(|resolved| time - resolved > RESOLVED_RETENTION_MS)
            {
                removed.push(key.clone());
            }
            if alert.state != AlertState::Inactive && !keep_firing {
                alert.state = AlertState::Inactive;
                alert.resolved_at = Some(time);
            }
            if !keep_firing {
                continue;
            }
        } else {
            alert.keep_firing_since = None;
        }
        active += 1;
        if alert.state == AlertState::Pending && time - alert.active_at >= millis(settings.hold) {
            alert.state = AlertState::Firing;
            alert.fired_at = Some(time);
        }
        let mut labels: Vec<(String, String)> = alert.labels.clone().into_iter().collect();
        labels.push((METRIC_NAME.into(), "ALERTS".into()));
        labels.push(("alertstate".into(), alert.state.name().into()));
        labels.sort();
        series.push((labels, 1.0));
        let mut for_state: Vec<(String, String)> = alert.labels.clone().into_iter().collect();
        for_state.push((METRIC_NAME.into(), "ALERTS_FOR_STATE".into()));
        for_state.sort();
        series.push((for_state, (alert.active_at / 1000) as f64));
    }
    for key in removed {
        state.alerts.remove(&key);
    }
    if limit > 0 && active > limit {
        state.alerts.clear();
        return Err(QueryError::Execution(format!("exceeded limit of {limit} with {active} alerts")));
    }
    Ok(series)
}

/// The alerts of a rule to send now: firing ones not sent for `resend_delay`, and those resolved since
/// they were last sent.
fn due(state: &mut RuleState, time: i64, schedule: Schedule) -> Vec<Alert> {
    let delay = millis(schedule.resend_delay);
    let valid = 4 * delay.max(millis(schedule.interval));
    let mut out = Vec::new();
    for alert in state.alerts.values_mut() {
        if alert.state == AlertState::Pending {
            continue;
        }
        let resolved_since_sent = match (alert.resolved_at, alert.last_sent_at) {
            (Some(resolved), Some(sent)) => resolved > sent,
            (Some(_), None) => true,
            _ => false,
        };
        if resolved_since_sent || alert.last_sent_at.is_none_or(|sent| sent + delay < time) {
            alert.last_sent_at = Some(time);
            alert.valid_until = time + valid;
            out.push(alert.clone());
        }
    }
    out
}

/// A source that adds the series recorded earlier in the same evaluation.
struct Overlay<'a> {
    inner: &'a dyn promql::Source,
    recorded: &'a [Series],
}

impl promql::Source for Overlay<'_> {
    fn select(&self, selectors: &[Selector], range: (i64, i64)) -> Result<Vec<Series>, SelectError> {
        let mut found = self.inner.select(selectors, range)?;
        for extra in self.recorded {
            if !selectors.iter().any(|selector| selector.matches(&extra.labels)) {
                continue;
            }
            match found.iter_mut().find(|series| series.labels == extra.labels) {
                Some(series) => {
                    for sample in &extra.samples {
                        series.samples.retain(|(at, _)| *at != sample.0);
                        series.samples.push(*sample);
                    }
                    series.samples.sort_by_key(|(at, _)| *at);
                }
                None => found.push(extra.clone()),
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests;
