//! Prometheus rule files (`groups:` of recording and alerting rules, the format `rules render` writes
//! and Prometheus's `rule_files:` load), read and checked: every expression parses, every name is
//! valid, every template is one the evaluator can expand. Errors name the file, group and rule.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use promql_parser::parser::Expr;
use serde::Deserialize;

use super::template::Template;

/// One group of rules, evaluated in order at one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// `name`: unique within its file.
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// `interval`; `None`: the configured default.
    pub interval: Option<Duration>,
    /// `limit`: alerts or series a rule may produce (0: no limit).
    pub limit: usize,
    /// `rules`, in order.
    pub rules: Vec<Rule>,
}

/// A recording or alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `record` or `alert`: the recorded metric's or the alert's name.
    pub name: String,
    /// `expr`, as written.
    pub query: String,
    /// `expr`, parsed.
    pub expr: Expr,
    /// `labels`: added to (and replacing) the result's labels; templates for alerts.
    pub labels: BTreeMap<String, Template>,
    /// What kind of rule it is.
    pub kind: RuleKind,
}

/// What a rule does with its result.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// Records the result as series named after the rule.
    Recording,
    /// Raises an alert per result series.
    Alerting {
        /// `for`: how long a series must be in the result before the alert fires.
        hold: Duration,
        /// `keep_firing_for`: how long a firing alert keeps firing after its series left the result.
        keep_firing_for: Duration,
        /// `annotations`, templates.
        annotations: BTreeMap<String, Template>,
    },
}

impl Rule {
    /// `"alerting"` or `"recording"`, as Prometheus's API types them.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            RuleKind::Recording => "recording",
            RuleKind::Alerting { .. } => "alerting",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRaw {
    groups: Vec<GroupRaw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupRaw {
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    rules: Vec<RuleRaw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleRaw {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    expr: String,
    #[serde(default, rename = "for")]
    hold: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A rule file that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct RuleFileError {
    /// The file.
    pub file: String,
    /// What is wrong, where in the file, and how to fix it.
    pub message: String,
}

/// Reads and checks the rule file at `path`.
pub fn load(path: &Path) -> Result<Vec<Group>, RuleFileError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|error| RuleFileError { file: file.clone(), message: format!("cannot read it: {error}") })?;
    parse(&file, &text)
}

/// Checks the rule file `file` holding `text`.
pub fn parse(file: &str, text: &str) -> Result<Vec<Group>, RuleFileError> {
    let fail = |message: String| RuleFileError { file: file.to_string(), message };
    let raw: FileRaw = serde_saphyr::from_str(text).map_err(|error| fail(format!("not a rule file: {error}")))?;
    let mut groups: Vec<Group> = Vec::new();
    for group in raw.groups {
        if group.name.is_empty() {
            return Err(fail("a group has no name".into()));
        }
        if groups.iter().any(|known| known.name == group.name) {
            return Err(fail(format!("group {:?} is defined twice; group names must be unique in a file", group.name)));
        }
        let at = |index: usize| format!("group {:?}, rule {}", group.name, index + 1);
        let interval = group
            .interval
            .as_deref()
            .map(|text| duration(text).map_err(|message| fail(format!("group {:?}: interval: {message}", group.name))))
            .transpose()?;
        let mut rules = Vec::new();
        for (index, rule) in group.rules.into_iter().enumerate() {
            rules.push(rule_of(rule).map_err(|message| fail(format!("{}: {message}", at(index))))?);
        }
        groups.push(Group { name: group.name, file: file.to_string(), interval, limit: group.limit, rules });
    }
    Ok(groups)
}

fn rule_of(raw: RuleRaw) -> Result<Rule, String> {
    let expr = promql_parser::parser::parse(&raw.expr).map_err(|error| format!("expr: {error}"))?;
    let templates = |map: BTreeMap<String, String>, what: &str| -> Result<BTreeMap<String, Template>, String> {
        map.into_iter()
            .map(|(key, text)| {
                Template::parse(&text)
                    .map(|template| (key.clone(), template))
                    .map_err(|error| format!("{what}.{key}: {error}"))
            })
            .collect()
    };
    for name in raw.labels.keys() {
        if !crate::prometheus::valid_label_name(name) || name == "__name__" {
            return Err(format!("labels: {name:?} is not a valid label name"));
        }
    }
    match (raw.record, raw.alert) {
        (Some(record), None) => {
            if !valid_metric_name(&record) {
                return Err(format!("record: {record:?} is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"));
            }
            if raw.hold.is_some() || raw.keep_firing_for.is_some() || !raw.annotations.is_empty() {
                return Err(format!("{record}: for, keep_firing_for and annotations belong to alerting rules"));
            }
            let labels = templates(raw.labels, "labels")?;
            if labels.values().any(Template::is_dynamic) {
                return Err(format!("{record}: labels of a recording rule cannot be templates"));
            }
            Ok(Rule { name: record, query: raw.expr, expr, labels, kind: RuleKind::Recording })
        }
        (None, Some(alert)) => {
            if !crate::prometheus::valid_label_name(&alert) {
                return Err(format!("alert: {alert:?} is not a valid alert name ([a-zA-Z_][a-zA-Z0-9_]*)"));
            }
            let hold =
                raw.hold.as_deref().map(duration).transpose().map_err(|message| format!("{alert}: for: {message}"))?;
            let keep = raw
                .keep_firing_for
                .as_deref()
                .map(duration)
                .transpose()
                .map_err(|message| format!("{alert}: keep_firing_for: {message}"))?;
            Ok(Rule {
                name: alert,
                query: raw.expr,
                expr,
                labels: templates(raw.labels, "labels")?,
                kind: RuleKind::Alerting {
                    hold: hold.unwrap_or_default(),
                    keep_firing_for: keep.unwrap_or_default(),
                    annotations: templates(raw.annotations, "annotations")?,
                },
            })
        }
        _ => Err("a rule has exactly one of record: and alert:".into()),
    }
}

/// A Prometheus duration (`30s`, `5m`, `1h30m`).
pub fn duration(text: &str) -> Result<Duration, String> {
    promql_parser::util::parse_duration(text)
        .map_err(|error| format!("{text:?} is not a duration such as 30s or 5m ({error})"))
}

/// A Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_file_is_read_with_its_groups_and_rules() {
        let text = r#"
groups:
  - name: slo
    interval: 30s
    rules:
      - record: job:errors:rate5m
        expr: sum by (job) (rate(errors_total[5m]))
        labels: {team: core}
      - alert: ErrorsHigh
        expr: job:errors:rate5m > 1
        for: 5m
        keep_firing_for: 1m
        labels: {severity: page}
        annotations: {summary: "{{ $labels.job }} fails at {{ $value | humanize }}/s"}
"#;
        let groups = parse("slo.yml", text).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].interval, Some(Duration::from_secs(30)));
        assert_eq!(groups[0].rules[0].type_name(), "recording");
        let RuleKind::Alerting { hold, keep_firing_for, annotations } = &groups[0].rules[1].kind else { panic!() };
        assert_eq!((*hold, *keep_firing_for), (Duration::from_secs(300), Duration::from_secs(60)));
        assert!(annotations.contains_key("summary"));
    }

    #[test]
    fn mistakes_are_named_with_their_place() {
        for (text, expected) in [
            ("groups: [{name: a, rules: [{record: x, expr: 'sum('}]}]", "group \"a\", rule 1: expr:"),
            ("groups: [{name: a, rules: [{record: 'bad name', expr: up}]}]", "not a valid metric name"),
            ("groups: [{name: a, rules: [{alert: A, expr: up, for: soon}]}]", "A: for: \"soon\" is not a duration"),
            ("groups: [{name: a, rules: [{expr: up}]}]", "exactly one of record: and alert:"),
            ("groups: [{name: a}, {name: a}]", "defined twice"),
            (
                "groups: [{name: a, rules: [{alert: A, expr: up, annotations: {x: '{{ $labels.job'}}]}]",
                "annotations.x:",
            ),
            ("rules: []", "not a rule file"),
        ] {
            let error = parse("f.yml", text).unwrap_err().to_string();
            assert!(error.starts_with("f.yml: ") && error.contains(expected), "{text}: {error}");
        }
    }
}
