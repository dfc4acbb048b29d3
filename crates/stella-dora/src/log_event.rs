//! DORA events carried by OTLP log records: the event name says what happened, `stella.*` attributes
//! carry the fields (`stella.id`, `stella.environment`, `stella.commits`, ...; the names of the JSON
//! events), and the record's time fills in the time the event is about.
use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::event::EventError;

/// A deployment went to an environment.
pub const PROMOTION: &str = "stella.release.promotion";
/// A deployment rolled an environment back (a deployment of kind `rollback`).
pub const ROLLBACK: &str = "stella.release.rollback";
/// An incident started.
pub const INCIDENT_OPENED: &str = "stella.incident.opened";
/// Someone acknowledged an incident.
pub const INCIDENT_ACKNOWLEDGED: &str = "stella.incident.acknowledged";
/// An incident was resolved.
pub const INCIDENT_RESOLVED: &str = "stella.incident.resolved";

/// What a log record says.
#[derive(Debug, Clone, PartialEq)]
pub enum LogEvent {
    /// A whole deployment event (as `POST /telemetry/dora/deployments` takes it).
    Deployment(Value),
    /// A whole incident event (as `POST /telemetry/dora/incidents` takes it).
    Incident(Value),
    /// A change to an incident: `field` (`acknowledged` or `resolved`) set to `at`. `incident` is
    /// every field the record carried, enough to record the incident whole when it is not known yet.
    IncidentUpdate {
        /// The incident's fields from the record (with `id`).
        incident: Value,
        /// `acknowledged` or `resolved`.
        field: &'static str,
        /// When.
        at: Timestamp,
    },
}

/// The event of a log record named `name` with `fields` (its `stella.*` attributes, prefix removed,
/// as JSON), at `time`, from a resource whose `service.name` is `service`. `None` for other names.
pub fn from_log(
    name: &str,
    mut fields: Map<String, Value>,
    time: Timestamp,
    service: Option<&str>,
) -> Result<Option<LogEvent>, EventError> {
    if !name.starts_with("stella.release.") && !name.starts_with("stella.incident.") {
        return Ok(None);
    }
    let at = Value::String(time.to_string());
    if let (false, Some(service)) = (fields.contains_key("service"), service) {
        fields.insert("service".into(), service.into());
    }
    let event = match name {
        PROMOTION | ROLLBACK => {
            fields.entry("finished").or_insert_with(|| at.clone());
            let finished = fields.get("finished").cloned().unwrap_or(at);
            fields.entry("started").or_insert(finished);
            fields.entry("outcome").or_insert_with(|| "succeeded".into());
            if name == ROLLBACK {
                fields.insert("kind".into(), "rollback".into());
            }
            if let Some(commits) = fields.get_mut("commits") {
                *commits = commits_json(commits)?;
            }
            LogEvent::Deployment(Value::Object(fields))
        }
        INCIDENT_OPENED => {
            fields.entry("started").or_insert(at);
            LogEvent::Incident(Value::Object(fields))
        }
        INCIDENT_ACKNOWLEDGED | INCIDENT_RESOLVED => {
            let field = if name == INCIDENT_ACKNOWLEDGED { "acknowledged" } else { "resolved" };
            let when = match fields.get(field) {
                Some(Value::String(text)) => text.parse::<Timestamp>().map_err(|error| EventError {
                    field: field.into(),
                    message: format!("{text:?} is not an RFC 3339 time: {error}"),
                })?,
                _ => time,
            };
            fields.insert(field.into(), when.to_string().into());
            LogEvent::IncidentUpdate { incident: Value::Object(fields), field, at: when }
        }
        other => {
            return Err(EventError {
                field: "event_name".into(),
                message: format!(
                    "unknown DORA event {other:?}; use {PROMOTION}, {ROLLBACK}, {INCIDENT_OPENED}, {INCIDENT_ACKNOWLEDGED} or {INCIDENT_RESOLVED}"
                ),
            });
        }
    };
    Ok(Some(event))
}

/// `stella.commits` as the JSON events take them: an array of `{id, time}` objects, or of `sha@time`
/// strings.
fn commits_json(value: &Value) -> Result<Value, EventError> {
    let Value::Array(items) = value else {
        return Err(EventError {
            field: "commits".into(),
            message: "expected an array of sha@time strings or {id, time} maps".into(),
        });
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(text) => {
                text.split_once('@').map(|(id, time)| serde_json::json!({"id": id, "time": time})).ok_or_else(|| {
                    EventError { field: format!("commits[{index}]"), message: format!("{text:?}: write sha@time") }
                })
            }
            other => Ok(other.clone()),
        })
        .collect::<Result<Vec<Value>, _>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn promotions_fill_in_times_outcome_and_service_and_rollbacks_are_rollbacks() {
        let at: Timestamp = "2026-11-29T10:00:00Z".parse().unwrap_or_else(|error| panic!("{error}"));
        let event = from_log(
            ROLLBACK,
            fields(json!({"id": "d1", "environment": "prod", "commits": ["abc@2026-11-29T09:00:00Z"]})),
            at,
            Some("cart"),
        );
        let Ok(Some(LogEvent::Deployment(deployment))) = event else { panic!("{event:?}") };
        let parsed = crate::parse_deployment(&deployment).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            (&*parsed.service, parsed.kind, parsed.finished, parsed.started),
            ("cart", crate::DeploymentKind::Rollback, at, at)
        );
        assert_eq!(parsed.commits[0].id, "abc");
        assert!(matches!(from_log("http.request", Map::new(), at, None), Ok(None)));
        assert!(from_log("stella.release.promoted", Map::new(), at, None).is_err());
    }

    #[test]
    fn acknowledgements_and_resolutions_are_updates_at_the_record_time() {
        let at: Timestamp = "2026-11-29T10:00:00Z".parse().unwrap_or_else(|error| panic!("{error}"));
        let event = from_log(INCIDENT_RESOLVED, fields(json!({"id": "i1"})), at, Some("cart"));
        let Ok(Some(LogEvent::IncidentUpdate { field, at: when, incident })) = event else { panic!("{event:?}") };
        assert_eq!((field, when, incident["id"].as_str()), ("resolved", at, Some("i1")));
    }
}
