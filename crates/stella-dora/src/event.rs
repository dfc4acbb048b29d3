//! Deployment and incident events, parsed from JSON with a precise error for each problem.
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest id accepted (deployment, incident, commit).
const MAX_ID: usize = 256;
/// Most commits in one deployment.
const MAX_COMMITS: usize = 10_000;

/// How a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It went out.
    Succeeded,
    /// It failed.
    Failed,
    /// It was rolled back.
    RolledBack,
}

/// What a deployment was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentKind {
    /// A change going out.
    #[default]
    Normal,
    /// Undoing the previous deployment (which it marks failed).
    Rollback,
    /// Fixing the previous deployment (which it marks failed).
    Hotfix,
}

/// A commit a deployment carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The commit id (a SHA).
    pub id: String,
    /// When it was committed.
    pub time: Timestamp,
}

/// A deployment event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Unique per tenant; a re-sent deployment replaces the one before.
    pub id: String,
    /// Where (trimmed, lower-case). Shared: see [`intern`].
    pub environment: Arc<str>,
    /// What.
    pub service: Arc<str>,
    /// The delivery pipeline, normalised ([`normalize_pipeline`]).
    pub pipeline: Arc<str>,
    /// The commits it carries.
    pub commits: Vec<Commit>,
    /// When it started.
    pub started: Timestamp,
    /// When it finished (at or after `started`).
    pub finished: Timestamp,
    /// How it ended.
    pub outcome: Outcome,
    /// What it was.
    pub kind: DeploymentKind,
    /// Incidents it caused, when the pipeline knows.
    pub incident_ids: Vec<String>,
}

/// An incident event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Unique per tenant; a re-sent incident replaces the one before.
    pub id: String,
    /// Where (trimmed, lower-case).
    pub environment: Arc<str>,
    /// What.
    pub service: Arc<str>,
    /// One of the configured severities (lower-case), or `unknown`.
    pub severity: Arc<str>,
    /// When it started.
    pub started: Timestamp,
    /// When someone acknowledged it (at or after `started`).
    pub acknowledged: Option<Timestamp>,
    /// When it was resolved (at or after `started`).
    pub resolved: Option<Timestamp>,
    /// The deployment that caused it, when known.
    pub deployment_id: Option<String>,
}

/// Why an event was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventError {
    /// The field (`id`, `finished`, `commits[2].time`), or `event` for the whole.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl EventError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        EventError { field: field.into(), message: message.into() }
    }

    /// A stable code: `dora.invalid_event`.
    pub fn code(&self) -> &'static str {
        "dora.invalid_event"
    }
}

/// A pipeline name as reports group by it: trimmed, lower-case, every run of characters other than
/// letters and digits replaced by one `-` (none at either end); empty becomes `unknown`.
pub fn normalize_pipeline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut gap = false;
    for c in text.trim().chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('-');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    if out.is_empty() { "unknown".to_string() } else { out }
}

/// Reads the fields of one event object.
struct Fields<'a> {
    object: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value) -> Result<Self, EventError> {
        value
            .as_object()
            .map(|object| Fields { object })
            .ok_or_else(|| EventError::new("event", "expected a JSON object"))
    }

    fn text(&self, key: &str) -> Result<Option<&'a str>, EventError> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(other) => Err(EventError::new(key, format!("expected a string, found {other}"))),
        }
    }

    fn id(&self, key: &str) -> Result<String, EventError> {
        let text = self.text(key)?.map(str::trim).unwrap_or_default();
        check_id(key, text)
    }

    fn name(&self, key: &str) -> Result<String, EventError> {
        let text = self.text(key)?.map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Err(EventError::new(key, "missing; give a non-empty string"));
        }
        Ok(text.to_string())
    }

    fn time(&self, key: &str) -> Result<Option<Timestamp>, EventError> {
        self.text(key)?.map(|text| parse_time(key, text)).transpose()
    }

    fn required_time(&self, key: &str) -> Result<Timestamp, EventError> {
        self.time(key)?
            .ok_or_else(|| EventError::new(key, "missing; give an RFC 3339 time such as 2026-11-29T12:00:00Z"))
    }

    fn unknown(&self, known: &[&str]) -> Result<(), EventError> {
        match self.object.keys().find(|key| !known.contains(&key.as_str())) {
            Some(key) => Err(EventError::new(key.as_str(), format!("unknown field; valid: {}", known.join(", ")))),
            None => Ok(()),
        }
    }
}

fn check_id(field: &str, text: &str) -> Result<String, EventError> {
    if text.is_empty() {
        return Err(EventError::new(
            field,
            "missing; every event needs a non-empty id (re-sending the same id replaces the event)",
        ));
    }
    if text.len() > MAX_ID {
        return Err(EventError::new(field, format!("longer than {MAX_ID} bytes")));
    }
    Ok(text.to_string())
}

fn parse_time(field: &str, text: &str) -> Result<Timestamp, EventError> {
    text.trim().parse::<Timestamp>().map_err(|error| {
        EventError::new(
            field,
            format!("{text:?} is not an RFC 3339 time with an offset (e.g. 2026-11-29T12:00:00Z): {error}"),
        )
    })
}

/// The fields an event may carry besides its own: the tenant (checked against the credential by the API).
const COMMON: &[&str] = &["tenant"];

/// A deployment from its JSON form:
/// `{"id","environment","service","pipeline","commits":[{"id","time"}],"started","finished","outcome","kind","incident_ids"}`.
pub fn parse_deployment(value: &Value) -> Result<Deployment, EventError> {
    let fields = Fields::of(value)?;
    let known = [
        "id",
        "environment",
        "service",
        "pipeline",
        "commits",
        "started",
        "finished",
        "outcome",
        "kind",
        "incident_ids",
    ];
    fields.unknown(&[&known[..], COMMON].concat())?;
    let id = fields.id("id")?;
    let environment: Arc<str> = fields.name("environment")?.to_lowercase().into();
    let service: Arc<str> = fields.name("service")?.into();
    let pipeline: Arc<str> = normalize_pipeline(fields.text("pipeline")?.unwrap_or_default()).into();
    let started = fields.required_time("started")?;
    let finished = fields.required_time("finished")?;
    if finished < started {
        return Err(EventError::new("finished", format!("{finished} is before started ({started})")));
    }
    let outcome = match fields.text("outcome")?.map(str::trim) {
        Some("succeeded") => Outcome::Succeeded,
        Some("failed") => Outcome::Failed,
        Some("rolled_back") => Outcome::RolledBack,
        Some(other) => {
            return Err(EventError::new("outcome", format!("{other:?}; use succeeded, failed or rolled_back")));
        }
        None => return Err(EventError::new("outcome", "missing; use succeeded, failed or rolled_back")),
    };
    let kind = match fields.text("kind")?.map(str::trim) {
        None | Some("normal") => DeploymentKind::Normal,
        Some("rollback") => DeploymentKind::Rollback,
        Some("hotfix") => DeploymentKind::Hotfix,
        Some(other) => return Err(EventError::new("kind", format!("{other:?}; use normal, rollback or hotfix"))),
    };
    let commits = match fields.object.get("commits") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() > MAX_COMMITS => {
            return Err(EventError::new("commits", format!("more than {MAX_COMMITS} commits")));
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let field = |key: &str| format!("commits[{index}].{key}");
                let commit = item
                    .as_object()
                    .ok_or_else(|| EventError::new(format!("commits[{index}]"), "expected {\"id\",\"time\"}"))?;
                let id = match commit.get("id") {
                    Some(Value::String(text)) => check_id(&field("id"), text.trim())?,
                    _ => return Err(EventError::new(field("id"), "missing; give the commit id")),
                };
                let time = match commit.get("time") {
                    Some(Value::String(text)) => parse_time(&field("time"), text)?,
                    _ => return Err(EventError::new(field("time"), "missing; give the commit time (RFC 3339)")),
                };
                Ok(Commit { id, time })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(EventError::new("commits", format!("expected an array of {{\"id\",\"time\"}}, found {other}")));
        }
    };
    let incident_ids = string_list(fields.object.get("incident_ids"), "incident_ids")?;
    Ok(Deployment { id, environment, service, pipeline, commits, started, finished, outcome, kind, incident_ids })
}

fn string_list(value: Option<&Value>, field: &str) -> Result<Vec<String>, EventError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::String(text) => check_id(&format!("{field}[{index}]"), text.trim()),
                other => Err(EventError::new(format!("{field}[{index}]"), format!("expected a string, found {other}"))),
            })
            .collect(),
        Some(other) => Err(EventError::new(field, format!("expected an array of ids, found {other}"))),
    }
}

/// An incident from its JSON form:
/// `{"id","environment","service","severity","started","acknowledged","resolved","deployment_id"}`;
/// `severities` is the configured order (a severity not in it becomes `unknown`).
pub fn parse_incident(value: &Value, severities: &[String]) -> Result<Incident, EventError> {
    let fields = Fields::of(value)?;
    let known = ["id", "environment", "service", "severity", "started", "acknowledged", "resolved", "deployment_id"];
    fields.unknown(&[&known[..], COMMON].concat())?;
    let id = fields.id("id")?;
    let environment: Arc<str> = fields.name("environment")?.to_lowercase().into();
    let service: Arc<str> = fields.name("service")?.into();
    let severity = fields.text("severity")?.map(|text| text.trim().to_lowercase()).unwrap_or_default();
    let severity: Arc<str> = if severities.contains(&severity) { severity.into() } else { "unknown".into() };
    let started = fields.required_time("started")?;
    let acknowledged = fields.time("acknowledged")?;
    let resolved = fields.time("resolved")?;
    if let Some(acknowledged) = acknowledged.filter(|at| *at < started) {
        return Err(EventError::new("acknowledged", format!("{acknowledged} is before started ({started})")));
    }
    if let Some(resolved) = resolved.filter(|at| *at < started) {
        return Err(EventError::new("resolved", format!("{resolved} is before started ({started})")));
    }
    let deployment_id = match fields.text("deployment_id")? {
        Some(text) if !text.trim().is_empty() => Some(check_id("deployment_id", text.trim())?),
        _ => None,
    };
    Ok(Incident { id, environment, service, severity, started, acknowledged, resolved, deployment_id })
}

/// Shares the repeated names of a tenant's events (environment, service, pipeline, severity): a report
/// over a million deployments holds each distinct name once instead of once per event.
#[derive(Debug, Default)]
pub struct Names(std::collections::HashSet<Arc<str>>);

impl Names {
    fn share(&mut self, name: &mut Arc<str>) {
        match self.0.get(&**name) {
            Some(known) => *name = Arc::clone(known),
            None => {
                self.0.insert(Arc::clone(name));
            }
        }
    }

    /// Points `deployment`'s names at the shared ones.
    pub fn deployment(&mut self, deployment: &mut Deployment) {
        self.share(&mut deployment.environment);
        self.share(&mut deployment.service);
        self.share(&mut deployment.pipeline);
    }

    /// Points `incident`'s names at the shared ones.
    pub fn incident(&mut self, incident: &mut Incident) {
        self.share(&mut incident.environment);
        self.share(&mut incident.service);
        self.share(&mut incident.severity);
    }
}
