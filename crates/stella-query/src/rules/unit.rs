//! Rule unit tests in `promtool test rules` format, run with this evaluator: input series in the
//! expanding notation (`0+10x5`, `1x3`, `_`, `_x2`, `stale`), every group evaluated at each
//! `evaluation_interval` up to the last `eval_time` (recorded series and `ALERTS` written back, as
//! promtool does), `alert_rule_test` compared with the alerts firing at that time (labels and expanded
//! annotations), and `promql_expr_test` with the samples of an instant query.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use promql_parser::label::{METRIC_NAME, MatchOp};
use promql_parser::parser::Expr;
use serde::Deserialize;
use stella_otlp::prometheus::STALE_NAN;

use super::file::{self, Group, RuleKind};
use super::{AlertState, GroupState, Schedule, evaluate};
use crate::prometheus::{LabelSet, SelectError, Selector, Series};
use crate::promql::{self, Options, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitFile {
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpectedSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedSample {
    labels: String,
    value: f64,
}

/// The outcome of one test file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileReport {
    /// The file.
    pub file: String,
    /// What failed, as promtool words it (empty: every test passed).
    pub failures: Vec<String>,
}

/// Runs the unit tests of the file at `path` (rule files relative to its directory). `Err` when the file
/// or a rule file cannot be used at all.
pub fn run(path: &Path) -> Result<FileReport, String> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| format!("{shown}: cannot read it: {error}"))?;
    let unit: UnitFile =
        serde_saphyr::from_str(&text).map_err(|error| format!("{shown}: not a rule test file: {error}"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut groups: Vec<Group> = Vec::new();
    for rule_file in &unit.rule_files {
        groups.extend(file::load(&base.join(rule_file)).map_err(|error| format!("{shown}: {error}"))?);
    }
    if !unit.group_eval_order.is_empty() {
        let position =
            |group: &Group| unit.group_eval_order.iter().position(|name| *name == group.name).unwrap_or(usize::MAX);
        groups.sort_by_key(position);
    }
    let every = duration(unit.evaluation_interval.as_deref().unwrap_or("1m"), &shown)?;
    let mut failures = Vec::new();
    for (index, case) in unit.tests.iter().enumerate() {
        let name = case.name.clone().unwrap_or_else(|| format!("test {}", index + 1));
        if !case.external_labels.is_empty() || case.external_url.is_some() {
            failures.push(format!("{name}: external_labels and external_url are not supported"));
            continue;
        }
        match run_case(case, &groups, every) {
            Ok(mut found) => failures.append(&mut found),
            Err(error) => failures.push(format!("{name}: {error}")),
        }
    }
    Ok(FileReport { file: shown, failures })
}

fn duration(text: &str, context: &str) -> Result<i64, String> {
    file::duration(text)
        .map(|duration: Duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
        .map_err(|error| format!("{context}: {error}"))
}

/// The labels of a series written as a selector of equality matchers (`up{job="a"}`).
fn series_labels(text: &str) -> Result<LabelSet, String> {
    let Ok(Expr::VectorSelector(selector)) = promql_parser::parser::parse(text) else {
        return Err(format!("{text:?} is not a series (name{{label=\"value\"}})"));
    };
    let mut labels: LabelSet = Vec::new();
    if let Some(name) = selector.name {
        labels.push((METRIC_NAME.to_string(), name));
    }
    for matcher in selector.matchers.matchers {
        if !matches!(matcher.op, MatchOp::Equal) {
            return Err(format!("{text:?}: a series has only label=\"value\" pairs"));
        }
        if matcher.name == METRIC_NAME && labels.iter().any(|(name, _)| name == METRIC_NAME) {
            continue;
        }
        labels.push((matcher.name, matcher.value));
    }
    labels.sort();
    Ok(labels)
}

/// The values of the expanding notation, `None` for a missing sample.
pub fn expand_values(text: &str) -> Result<Vec<Option<f64>>, String> {
    let number = |word: &str| -> Result<f64, String> {
        match word {
            "stale" => Ok(f64::from_bits(STALE_NAN)),
            "Inf" | "+Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
            "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
            "NaN" | "nan" => Ok(f64::NAN),
            _ => word.parse::<f64>().map_err(|_| format!("{word:?} is not a number in {text:?}")),
        }
    };
    let mut values = Vec::new();
    for item in text.split_whitespace() {
        let (head, times) = match item.rsplit_once('x') {
            Some((head, times))
                if !head.is_empty() && times.chars().all(|c| c.is_ascii_digit()) && !times.is_empty() =>
            {
                (head, Some(times.parse::<usize>().map_err(|_| format!("{item:?}: the repeat count is too large"))?))
            }
            _ => (item, None),
        };
        if head == "_" {
            values.extend(std::iter::repeat_n(None, times.unwrap_or(1)));
            continue;
        }
        // `a+b` or `a-b` (a itself may be negative or an exponent such as 1e-3).
        let split = head
            .char_indices()
            .skip(1)
            .find(|(at, c)| (*c == '+' || *c == '-') && !matches!(head.as_bytes().get(at - 1), Some(b'e' | b'E')))
            .map(|(at, _)| at);
        let (start, step) = match split {
            Some(at) => (number(&head[..at])?, number(&head[at..])?),
            None => (number(head)?, 0.0),
        };
        if split.is_some() && times.is_none() {
            return Err(format!("{item:?}: a step needs a count (a+bxn)"));
        }
        let mut value = start;
        for _ in 0..=times.unwrap_or(0) {
            values.push(Some(value));
            value += step;
        }
    }
    Ok(values)
}

/// The series of a test.
fn input(case: &TestCase, interval: i64) -> Result<Vec<Series>, String> {
    let mut series: Vec<Series> = Vec::new();
    for input in &case.input_series {
        let labels = series_labels(&input.series)?;
        let samples = expand_values(&input.values)?
            .into_iter()
            .enumerate()
            .filter_map(|(index, value)| value.map(|value| (index as i64 * interval, value)))
            .collect();
        series.push(Series { labels, samples });
    }
    Ok(series)
}

fn add_sample(storage: &mut Vec<Series>, labels: &LabelSet, time: i64, value: f64) {
    match storage.iter_mut().find(|series| series.labels == *labels) {
        Some(series) => {
            series.samples.retain(|(at, _)| *at != time);
            series.samples.push((time, value));
            series.samples.sort_by_key(|(at, _)| *at);
        }
        None => storage.push(Series { labels: labels.clone(), samples: vec![(time, value)] }),
    }
}

fn source(storage: &[Series]) -> impl Fn(&[Selector], (i64, i64)) -> Result<Vec<Series>, SelectError> + '_ {
    move |selectors: &[Selector], (start, end): (i64, i64)| {
        Ok(storage
            .iter()
            .filter(|series| selectors.iter().any(|selector| selector.matches(&series.labels)))
            .map(|series| {
                let first = series.samples.partition_point(|(at, _)| *at < start);
                let last = series.samples.partition_point(|(at, _)| *at <= end);
                Series {
                    labels: series.labels.clone(),
                    samples: series.samples.get(first..last).unwrap_or_default().to_vec(),
                }
            })
            .collect())
    }
}

/// One alert as compared: labels and annotations.
type Compared = (BTreeMap<String, String>, BTreeMap<String, String>);

fn run_case(case: &TestCase, groups: &[Group], every: i64) -> Result<Vec<String>, String> {
    let interval = match &case.interval {
        Some(text) => duration(text, "interval")?,
        None => every,
    };
    let mut storage = input(case, interval)?;
    let mut alert_tests: Vec<(i64, &AlertTest)> = case
        .alert_rule_test
        .iter()
        .map(|test| Ok((duration(&test.eval_time, "eval_time")?, test)))
        .collect::<Result<_, String>>()?;
    alert_tests.sort_by_key(|(at, _)| *at);
    for (_, test) in &alert_tests {
        let known = groups
            .iter()
            .flat_map(|group| &group.rules)
            .any(|rule| matches!(rule.kind, RuleKind::Alerting { .. }) && rule.name == test.alertname);
        if !known {
            return Err(format!("alertname {:?} is not an alerting rule of the rule files", test.alertname));
        }
    }
    let expr_tests: Vec<(i64, &ExprTest)> = case
        .promql_expr_test
        .iter()
        .map(|test| Ok((duration(&test.eval_time, "eval_time")?, test)))
        .collect::<Result<_, String>>()?;
    let last = alert_tests.iter().map(|(at, _)| *at).chain(expr_tests.iter().map(|(at, _)| *at)).max().unwrap_or(0);
    let schedule = Schedule {
        interval: Duration::from_millis(u64::try_from(every).unwrap_or(60_000)),
        resend_delay: Duration::from_secs(60),
    };
    let mut states: Vec<GroupState> = groups.iter().map(|_| GroupState::default()).collect();
    let mut failures = Vec::new();
    let mut next_test = 0;
    let mut time = 0;
    while time <= last {
        for (group, state) in groups.iter().zip(states.iter_mut()) {
            let outcome = evaluate(group, state, &source(&storage), time, schedule, Options::default());
            for (labels, value) in &outcome.series {
                add_sample(&mut storage, labels, time, *value);
            }
            for labels in &outcome.ended {
                add_sample(&mut storage, labels, time, f64::from_bits(STALE_NAN));
            }
        }
        while let Some((at, test)) = alert_tests.get(next_test).filter(|(at, _)| *at < time + every) {
            next_test += 1;
            let mut got: Vec<Compared> = groups
                .iter()
                .zip(&states)
                .flat_map(|(group, state)| group.rules.iter().zip(&state.rules))
                .filter(|(rule, _)| rule.name == test.alertname)
                .flat_map(|(_, state)| state.alerts.values())
                .filter(|alert| alert.state == AlertState::Firing)
                .map(|alert| (alert.labels.clone(), alert.annotations.clone()))
                .collect();
            let mut expected: Vec<Compared> = test
                .exp_alerts
                .iter()
                .map(|alert| {
                    let mut labels = alert.exp_labels.clone();
                    labels.insert("alertname".into(), test.alertname.clone());
                    (labels, alert.exp_annotations.clone())
                })
                .collect();
            got.sort();
            expected.sort();
            if got != expected {
                failures.push(format!(
                    "alertname: {}, time: {}, \n        exp:{},\n        got:{}",
                    test.alertname,
                    format_duration(*at),
                    show_alerts(&expected),
                    show_alerts(&got)
                ));
            }
        }
        time += every;
    }
    for (at, test) in expr_tests {
        let expr = promql::parse(&test.expr).map_err(|error| format!("expr {:?}: {error}", test.expr))?;
        let got: Vec<(LabelSet, f64)> = match promql::instant(&source(&storage), &expr, at, Options::default()) {
            Ok(Value::Vector(samples)) => samples.into_iter().map(|sample| (sample.labels, sample.value)).collect(),
            Ok(Value::Scalar(value)) => vec![(Vec::new(), value)],
            Ok(other) => return Err(format!("expr {:?} is not an instant vector or a scalar: {other:?}", test.expr)),
            Err(error) => {
                failures.push(format!("    expr: {:?}, time: {}, err: {error}", test.expr, format_duration(at)));
                continue;
            }
        };
        let mut expected: Vec<(LabelSet, f64)> = test
            .exp_samples
            .iter()
            .map(|sample| {
                Ok((
                    if sample.labels.trim().is_empty() { Vec::new() } else { series_labels(&sample.labels)? },
                    sample.value,
                ))
            })
            .collect::<Result<_, String>>()?;
        let mut got = got;
        got.sort_by(|a, b| a.0.cmp(&b.0));
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        let same = got.len() == expected.len()
            && got.iter().zip(&expected).all(|(a, b)| {
                a.0 == b.0
                    && (a.1 == b.1
                        || (a.1.is_nan() && b.1.is_nan())
                        || (a.1 - b.1).abs() <= 1e-9 * a.1.abs().max(b.1.abs()))
            });
        if !same {
            failures.push(format!(
                "    expr: {:?}, time: {},\n        exp: {:?}\n        got: {:?}",
                test.expr,
                format_duration(at),
                expected,
                got
            ));
        }
    }
    Ok(failures)
}

fn show_alerts(alerts: &[Compared]) -> String {
    let shown: Vec<String> = alerts
        .iter()
        .map(|(labels, annotations)| format!("{{Labels:{labels:?} Annotations:{annotations:?}}}"))
        .collect();
    format!("[{}]", shown.join(", "))
}

/// Milliseconds as a Prometheus duration (`1h30m`).
fn format_duration(millis: i64) -> String {
    let seconds = millis / 1000;
    if seconds == 0 {
        return "0s".into();
    }
    let (hours, minutes, rest) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    let mut out = String::new();
    for (value, unit) in [(hours, "h"), (minutes, "m"), (rest, "s")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expanding_notation_reads_as_promtool_reads_it() {
        assert_eq!(expand_values("0+10x3").unwrap(), vec![Some(0.0), Some(10.0), Some(20.0), Some(30.0)]);
        assert_eq!(
            expand_values("1x2 _ _x2 5-1x1").unwrap(),
            vec![Some(1.0), Some(1.0), Some(1.0), None, None, None, Some(5.0), Some(4.0)]
        );
        assert_eq!(expand_values("-2+1e-1x1").unwrap(), vec![Some(-2.0), Some(-1.9)]);
        let stale = expand_values("stale").unwrap();
        assert_eq!(stale[0].map(f64::to_bits), Some(STALE_NAN));
        assert!(expand_values("1+2").unwrap_err().contains("needs a count"));
        assert!(expand_values("abc").is_err());
    }

    #[test]
    fn a_unit_test_file_passes_and_a_wrong_expectation_fails_with_promtools_words() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.yml"),
            "groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: Down\n        expr: job:up:sum == 0\n        for: 2m\n        annotations: {summary: '{{ $labels.job }} down'}\n",
        )
        .unwrap();
        let test = |expected_job: &str| {
            format!(
                "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'up{{job=\"api\", instance=\"a\"}}'\n        values: '1x3 0x10'\n    alert_rule_test:\n      - {{eval_time: 4m, alertname: Down, exp_alerts: []}}\n      - eval_time: 7m\n        alertname: Down\n        exp_alerts:\n          - exp_labels: {{job: {expected_job}}}\n            exp_annotations: {{summary: '{expected_job} down'}}\n    promql_expr_test:\n      - expr: job:up:sum\n        eval_time: 2m\n        exp_samples:\n          - labels: 'job:up:sum{{job=\"api\"}}'\n            value: 1\n"
            )
        };
        std::fs::write(dir.path().join("good.test.yml"), test("api")).unwrap();
        let report = run(&dir.path().join("good.test.yml")).unwrap();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        std::fs::write(dir.path().join("bad.test.yml"), test("web")).unwrap();
        let report = run(&dir.path().join("bad.test.yml")).unwrap();
        assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
        assert!(report.failures[0].starts_with("alertname: Down, time: 7m"), "{}", report.failures[0]);
    }
}
