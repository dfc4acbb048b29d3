//! The engine on series held in memory; answers a Prometheus 2.x gives for the same data (the interop
//! test compares with a real one).
use super::*;
use crate::prometheus::Series;

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    let mut set: LabelSet = pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
    set.sort();
    set
}

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> Series {
    Series { labels: labels(pairs), samples: samples.to_vec() }
}

/// A source over `data`, recording the ranges it was asked for.
fn source(data: Vec<Series>) -> impl Fn(&[Selector], (i64, i64)) -> Result<Vec<Series>, SelectError> {
    move |selectors: &[Selector], (start, end): (i64, i64)| {
        Ok(data
            .iter()
            .filter(|series| selectors.iter().any(|selector| selector.matches(&series.labels)))
            .map(|series| Series {
                labels: series.labels.clone(),
                samples: series.samples.iter().copied().filter(|(time, _)| *time >= start && *time <= end).collect(),
            })
            .collect())
    }
}

fn at(data: &[Series], query: &str, time: i64) -> Result<Value, QueryError> {
    instant(&source(data.to_vec()), &parse(query)?, time, Options::default())
}

fn vector(data: &[Series], query: &str, time: i64) -> Vec<(LabelSet, f64)> {
    match at(data, query, time).unwrap_or_else(|error| panic!("{query}: {error}")) {
        Value::Vector(samples) => {
            let mut pairs: Vec<(LabelSet, f64)> = samples.into_iter().map(|s| (s.labels, s.value)).collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            pairs
        }
        other => panic!("{query}: not a vector: {other:?}"),
    }
}

fn stale() -> f64 {
    f64::from_bits(stella_otlp::prometheus::STALE_NAN)
}

const MINUTE: i64 = 60_000;

#[test]
fn a_selector_sees_the_latest_sample_within_five_minutes_until_a_staleness_marker() {
    let data =
        [series(&[("__name__", "up"), ("job", "api")], &[(0, 1.0), (10_000, 2.0), (20_000, 3.0), (30_000, stale())])];
    assert_eq!(vector(&data, "up", 25_000), vec![(labels(&[("__name__", "up"), ("job", "api")]), 3.0)]);
    assert!(vector(&data, "up", 31_000).is_empty(), "stale after the marker");
    let kept = [series(&[("__name__", "up")], &[(0, 1.0)])];
    assert_eq!(vector(&kept, "up", 5 * MINUTE).len(), 1, "the lookback window is closed");
    assert!(vector(&kept, "up", 5 * MINUTE + 1).is_empty());
    assert_eq!(vector(&kept, "up offset 1m", 6 * MINUTE).len(), 1);
    assert_eq!(vector(&kept, "up offset -1m", 4 * MINUTE + 1).len(), 0, "a negative offset reads later");
    assert_eq!(vector(&kept, "up @ 60", 100 * MINUTE).len(), 1, "@ pins the time");
}

#[test]
fn rate_and_increase_extrapolate_and_range_queries_step() {
    let points: Vec<(i64, f64)> = (0..=20).map(|i| (i * 15_000, i as f64 * 30.0)).collect();
    let data = [series(&[("__name__", "requests_total"), ("code", "200")], &points)];
    let rate = vector(&data, "rate(requests_total[1m])", 5 * MINUTE);
    assert_eq!(rate, vec![(labels(&[("code", "200")]), 2.0)]);
    let answer = range(
        &source(data.to_vec()),
        &parse("increase(requests_total[1m])").unwrap(),
        (MINUTE, 3 * MINUTE),
        MINUTE,
        Options::default(),
    )
    .unwrap();
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].points, vec![(MINUTE, 120.0), (2 * MINUTE, 120.0), (3 * MINUTE, 120.0)]);
}

#[test]
fn vectors_match_on_labels_one_to_one_and_group_left() {
    let data = [
        series(&[("__name__", "used"), ("host", "a"), ("mode", "user")], &[(0, 6.0)]),
        series(&[("__name__", "used"), ("host", "a"), ("mode", "system")], &[(0, 2.0)]),
        series(&[("__name__", "total"), ("host", "a"), ("owner", "ann")], &[(0, 8.0)]),
    ];
    let divided = vector(&data, "used / on(host) group_left(owner) total", 0);
    assert_eq!(
        divided,
        vec![
            (labels(&[("host", "a"), ("mode", "system"), ("owner", "ann")]), 0.25),
            (labels(&[("host", "a"), ("mode", "user"), ("owner", "ann")]), 0.75),
        ]
    );
    let error = at(&data, "used / on(host) total", 0).unwrap_err();
    assert!(error.to_string().contains("many-to-one matching must be explicit"), "{error}");
    assert_eq!(vector(&data, "used > bool 3", 0).len(), 2);
    assert_eq!(
        vector(&data, "used > 3", 0),
        vec![(labels(&[("__name__", "used"), ("host", "a"), ("mode", "user")]), 6.0)]
    );
    assert_eq!(vector(&data, "used and on(host) total", 0).len(), 2);
    assert_eq!(vector(&data, "used unless on(mode) total", 0).len(), 2);
    assert_eq!(vector(&data, "-1 ^ 2 + used * 0", 0).iter().map(|s| s.1).collect::<Vec<_>>(), vec![-1.0, -1.0]);
}

#[test]
fn aggregations_group_by_and_without() {
    let data = [
        series(&[("__name__", "mem"), ("host", "a"), ("type", "free")], &[(0, 1.0)]),
        series(&[("__name__", "mem"), ("host", "a"), ("type", "used")], &[(0, 3.0)]),
        series(&[("__name__", "mem"), ("host", "b"), ("type", "used")], &[(0, 8.0)]),
    ];
    assert_eq!(vector(&data, "sum(mem)", 0), vec![(vec![], 12.0)]);
    assert_eq!(
        vector(&data, "avg by(host) (mem)", 0),
        vec![(labels(&[("host", "a")]), 2.0), (labels(&[("host", "b")]), 8.0)]
    );
    assert_eq!(
        vector(&data, "count without(host) (mem)", 0),
        vec![(labels(&[("type", "free")]), 1.0), (labels(&[("type", "used")]), 2.0)]
    );
    assert_eq!(vector(&data, "stddev(mem)", 0)[0].1, (((1.0f64 - 4.0).powi(2) + 1.0 + 16.0) / 3.0).sqrt());
    assert_eq!(
        vector(&data, "topk(1, mem)", 0),
        vec![(labels(&[("__name__", "mem"), ("host", "b"), ("type", "used")]), 8.0)]
    );
    assert_eq!(vector(&data, "quantile(0.5, mem)", 0), vec![(vec![], 3.0)]);
    assert_eq!(vector(&data, "count_values(\"v\", mem)", 0)[0], (labels(&[("v", "1")]), 1.0));
    assert_eq!(vector(&data, "absent(nothing{job=\"x\"})", 0), vec![(labels(&[("job", "x")]), 1.0)]);
    assert!(vector(&data, "absent(mem)", 0).is_empty());
}

#[test]
fn subqueries_evaluate_on_a_grid_aligned_to_their_step() {
    let points: Vec<(i64, f64)> = (0..=40).map(|i| (i * 15_000, i as f64)).collect();
    let data = [series(&[("__name__", "g")], &points)];
    // At 10m the grid of [2m:30s] is 8m, 8m30s, ..., 10m: five points, values 32, 34, ..., 40.
    assert_eq!(vector(&data, "count_over_time(g[2m:30s])", 10 * MINUTE), vec![(vec![], 5.0)]);
    assert_eq!(vector(&data, "max_over_time(g[2m:30s])", 10 * MINUTE), vec![(vec![], 40.0)]);
    assert_eq!(vector(&data, "min_over_time(g[2m:30s] offset 1m)", 10 * MINUTE), vec![(vec![], 28.0)]);
}

#[test]
fn label_functions_and_their_errors() {
    let data = [
        series(&[("__name__", "cpus"), ("instance", "host:1")], &[(0, 4.0)]),
        series(&[("__name__", "cpus"), ("instance", "host:2")], &[(0, 4.0)]),
    ];
    let replaced = vector(&data, "label_replace(cpus, \"port\", \"p-$1\", \"instance\", \"host:(.*)\")", 0);
    assert_eq!(replaced[0].0, labels(&[("__name__", "cpus"), ("instance", "host:1"), ("port", "p-1")]));
    let joined = vector(&data, "label_join(cpus, \"both\", \"/\", \"__name__\", \"instance\")", 0);
    assert!(joined[0].0.contains(&("both".to_string(), "cpus/host:1".to_string())));
    for (query, message) in [
        (
            "label_replace(cpus, \"x\", \"$1\", \"instance\", \"(.*\")",
            "invalid regular expression in label_replace(): (.*",
        ),
        (
            "label_replace(cpus, \"~bad\", \"\", \"instance\", \"(.*)\")",
            "invalid destination label name in label_replace(): ~bad",
        ),
        ("label_replace(cpus, \"instance\", \"\", \"\", \"\")", "vector cannot contain metrics with the same labelset"),
        ("label_join(cpus, \"~bad\", \"-\", \"instance\")", "invalid destination label name in label_join(): ~bad"),
        ("rate(cpus[1m]) + on() group_left cpus", "found duplicate series for the match group"),
    ] {
        let error = at(&data, query, 0).unwrap_err();
        assert!(matches!(error, QueryError::Execution(_)), "{query}: {error:?}");
        assert!(error.to_string().contains(message), "{query}: {error}");
    }
}

#[test]
fn functions_of_time_and_dates() {
    assert_eq!(at(&[], "time()", 90_500).unwrap(), Value::Scalar(90.5));
    // 2024-02-29T13:45:00Z
    let time = 1_709_214_300_000;
    for (query, expected) in [
        ("year()", 2024.0),
        ("month()", 2.0),
        ("day_of_month()", 29.0),
        ("days_in_month()", 29.0),
        ("hour()", 13.0),
        ("minute()", 45.0),
        ("day_of_week()", 4.0),
        ("day_of_year()", 60.0),
    ] {
        assert_eq!(vector(&[], query, time), vec![(vec![], expected)], "{query}");
    }
    let data = [series(&[("__name__", "t")], &[(0, 1.5)])];
    assert_eq!(vector(&data, "timestamp(t)", 60_000), vec![(vec![], 0.0)], "a selector's own sample time");
    assert_eq!(vector(&data, "timestamp(t * 1)", 60_000), vec![(vec![], 60.0)], "anything else: the evaluation time");
    assert_eq!(vector(&data, "round(t)", 0), vec![(vec![], 2.0)]);
    assert_eq!(vector(&data, "clamp(t, 2, 1)", 0), vec![]);
}

#[test]
fn range_queries_refuse_what_prometheus_refuses() {
    let run = |query: &str, range_ms: (i64, i64), step: i64| {
        range(&source(Vec::new()), &parse(query).unwrap(), range_ms, step, Options::default()).unwrap_err()
    };
    assert!(run("up[5m]", (0, 1), 1).to_string().contains("invalid expression type \"range vector\""));
    assert!(run("\"text\"", (0, 1), 1).to_string().contains("invalid expression type \"string\""));
    assert!(run("up", (0, 1), 0).to_string().contains("zero or negative query resolution step"));
    assert!(run("up", (0, 11_000_000), 1_000).to_string().contains("exceeded maximum resolution of 11,000 points"));
    assert!(matches!(parse("sum(").unwrap_err(), QueryError::BadData(_)));
    let past = Options { deadline: Some(std::time::Instant::now()), ..Options::default() };
    std::thread::sleep(std::time::Duration::from_millis(2));
    let timed_out = range(&source(Vec::new()), &parse("1").unwrap(), (0, 10_000), 1_000, past).unwrap_err();
    assert!(matches!(timed_out, QueryError::Timeout));
}

#[test]
fn values_and_times_are_written_as_prometheus_writes_them() {
    assert_eq!(format_value(1.0), "1");
    assert_eq!(format_value(0.1 + 0.2), "0.30000000000000004");
    assert_eq!(format_value(1e21), "1000000000000000000000");
    assert_eq!(format_value(f64::NAN), "NaN");
    assert_eq!(format_value(f64::INFINITY), "+Inf");
    assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    assert_eq!(format_time(1_700_000_000_000), "1700000000");
    assert_eq!(format_time(1_700_000_000_500), "1700000000.500");
    assert_eq!(format_time(1_700_000_000_005), "1700000000.005");
    assert_eq!(format_time(-1_500), "-1.500");
}
