//! Rule evaluation over series held in memory, step by step as the scheduler would run it.
use super::*;

const MINUTE: i64 = 60_000;

fn series(pairs: &[(&str, &str)], samples: Vec<(i64, f64)>) -> Series {
    let mut labels: LabelSet = pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
    labels.sort();
    Series { labels, samples }
}

fn source(data: Vec<Series>) -> impl Fn(&[Selector], (i64, i64)) -> Result<Vec<Series>, SelectError> {
    move |selectors: &[Selector], _range: (i64, i64)| {
        Ok(data
            .iter()
            .filter(|series| selectors.iter().any(|selector| selector.matches(&series.labels)))
            .cloned()
            .collect())
    }
}

const SCHEDULE: Schedule = Schedule { interval: Duration::from_secs(60), resend_delay: Duration::from_secs(60) };

fn group(text: &str) -> Group {
    file::parse("test.yml", text).unwrap().remove(0)
}

fn names(outcome: &Outcome) -> Vec<String> {
    let mut names: Vec<String> = outcome
        .series
        .iter()
        .map(|(labels, value)| {
            let pairs: Vec<String> = labels.iter().map(|(name, value)| format!("{name}={value}")).collect();
            format!("{} {value}", pairs.join(","))
        })
        .collect();
    names.sort();
    names
}

#[test]
fn recording_rules_name_their_series_and_later_rules_of_the_group_read_them() {
    let group = group(
        r#"
groups:
  - name: g
    rules:
      - record: job:requests:sum
        expr: sum by (job) (requests)
        labels: {team: core}
      - record: job:requests:double
        expr: job:requests:sum * 2
"#,
    );
    let data = vec![
        series(&[("__name__", "requests"), ("job", "api"), ("code", "200")], vec![(0, 3.0)]),
        series(&[("__name__", "requests"), ("job", "api"), ("code", "500")], vec![(0, 1.0)]),
    ];
    let mut state = GroupState::default();
    let outcome = evaluate(&group, &mut state, &source(data), MINUTE, SCHEDULE, Options::default());
    assert_eq!(
        names(&outcome),
        vec![
            "__name__=job:requests:double,job=api,team=core 8".to_string(),
            "__name__=job:requests:sum,job=api,team=core 4".to_string(),
        ]
    );
    assert!(state.rules.iter().all(|rule| rule.health == Health::Ok));
    // The data is gone: both series end, and say so with staleness markers.
    let outcome = evaluate(&group, &mut state, &source(Vec::new()), 2 * MINUTE, SCHEDULE, Options::default());
    assert!(outcome.series.is_empty());
    assert_eq!(outcome.ended.len(), 2);
}

#[test]
fn an_alert_is_pending_for_its_hold_then_fires_then_resolves_and_is_sent_as_prometheus_sends_it() {
    let group = group(
        r#"
groups:
  - name: g
    rules:
      - alert: QueueFull
        expr: queue_depth > 10
        for: 2m
        labels: {severity: page}
        annotations: {summary: "queue of {{ $labels.job }} at {{ $value }}"}
"#,
    );
    let high =
        |until: i64| vec![series(&[("__name__", "queue_depth"), ("job", "api")], vec![(0, 50.0), (until, 50.0)])];
    let mut state = GroupState::default();
    let run = |state: &mut GroupState, data: Vec<Series>, at: i64| {
        evaluate(&group, state, &source(data), at, SCHEDULE, Options::default())
    };

    let first = run(&mut state, high(MINUTE), MINUTE);
    assert_eq!(
        names(&first),
        vec![
            "__name__=ALERTS,alertname=QueueFull,alertstate=pending,job=api,severity=page 1".to_string(),
            "__name__=ALERTS_FOR_STATE,alertname=QueueFull,job=api,severity=page 60".to_string(),
        ]
    );
    assert!(first.notifications.is_empty(), "pending alerts are not sent");
    let alert = state.rules[0].alerts.values().next().unwrap();
    assert_eq!(alert.annotations["summary"], "queue of api at 50");

    assert!(run(&mut state, high(2 * MINUTE), 2 * MINUTE).notifications.is_empty(), "held for 2m: still pending");
    let firing = run(&mut state, high(3 * MINUTE), 3 * MINUTE);
    assert_eq!(firing.notifications.len(), 1);
    assert_eq!(firing.notifications[0].state, AlertState::Firing);
    assert_eq!(firing.notifications[0].fired_at, Some(3 * MINUTE));
    assert_eq!(firing.notifications[0].valid_until, 3 * MINUTE + 4 * MINUTE);
    assert!(names(&firing)[0].contains("alertstate=firing"));
    assert!(
        run(&mut state, high(4 * MINUTE), 4 * MINUTE - 1).notifications.is_empty(),
        "not re-sent within the resend delay"
    );
    assert_eq!(run(&mut state, high(5 * MINUTE), 5 * MINUTE).notifications.len(), 1, "re-sent after it");

    let resolved = run(&mut state, Vec::new(), 6 * MINUTE);
    assert!(resolved.series.is_empty());
    assert_eq!(resolved.ended.len(), 2, "ALERTS and ALERTS_FOR_STATE end");
    assert_eq!(resolved.notifications.len(), 1);
    assert_eq!(resolved.notifications[0].state, AlertState::Inactive);
    assert_eq!(resolved.notifications[0].resolved_at, Some(6 * MINUTE));
    // Kept 15 minutes for the resolution, then forgotten.
    run(&mut state, Vec::new(), 20 * MINUTE);
    assert_eq!(state.rules[0].alerts.len(), 1);
    run(&mut state, Vec::new(), 22 * MINUTE);
    assert!(state.rules[0].alerts.is_empty());
}

#[test]
fn keep_firing_for_holds_a_firing_alert_after_its_series_left() {
    let group = group(
        r#"
groups:
  - name: g
    rules:
      - alert: Flapping
        expr: up == 0
        keep_firing_for: 3m
"#,
    );
    let down = vec![series(&[("__name__", "up"), ("job", "a")], vec![(0, 0.0)])];
    let mut state = GroupState::default();
    let run = |state: &mut GroupState, data: Vec<Series>, at: i64| {
        evaluate(&group, state, &source(data), at, SCHEDULE, Options::default())
    };
    assert_eq!(run(&mut state, down, MINUTE).notifications[0].state, AlertState::Firing, "no for: fires at once");
    let kept = run(&mut state, Vec::new(), 2 * MINUTE);
    assert!(names(&kept)[0].contains("alertstate=firing"), "kept firing");
    run(&mut state, Vec::new(), 4 * MINUTE);
    let resolved = run(&mut state, Vec::new(), 5 * MINUTE);
    assert!(resolved.series.is_empty(), "3m after it left it resolves");
    assert_eq!(state.rules[0].alerts.values().next().unwrap().state, AlertState::Inactive);
}

#[test]
fn a_failing_rule_reports_its_error_and_the_others_still_run() {
    let group = group(
        r#"
groups:
  - name: g
    limit: 1
    rules:
      - record: broken
        expr: label_replace(x, "job", "", "", "")
      - alert: TooMany
        expr: x > 0
      - record: fine
        expr: count(x)
"#,
    );
    let data = vec![
        series(&[("__name__", "x"), ("job", "a")], vec![(0, 1.0)]),
        series(&[("__name__", "x"), ("job", "b")], vec![(0, 1.0)]),
    ];
    let mut state = GroupState::default();
    let outcome = evaluate(&group, &mut state, &source(data), MINUTE, SCHEDULE, Options::default());
    assert!(matches!(&state.rules[0].health, Health::Err(message) if message.contains("same labelset")));
    assert!(
        matches!(&state.rules[1].health, Health::Err(message) if message.contains("exceeded limit of 1 with 2 alerts"))
    );
    assert_eq!(state.rules[2].health, Health::Ok);
    assert_eq!(names(&outcome), vec!["__name__=fine 2".to_string()]);
}
