//! LogQL over entries in memory: two services, lines a second apart.
use super::*;
use stella_store::chunks::Term;

const SECOND: u64 = 1_000_000_000;
/// The default line limit of a metric query.
const LINES: usize = crate::Limits::DEFAULT.max_lines;

struct Memory(Vec<StoredEntry>);

impl LogSource for Memory {
    fn read(
        &self,
        selector: &[Matcher],
        _terms: &[Vec<u128>],
        (start, end): (u64, u64),
        visit: &mut dyn FnMut(StoredEntry) -> bool,
    ) -> Result<(), StoreError> {
        for entry in &self.0 {
            let picked = selector.iter().all(|matcher| matcher.matches(stream_value(&entry.stream, &matcher.name)));
            if picked && entry.at >= start && entry.at < end && !visit(entry.clone()) {
                break;
            }
        }
        Ok(())
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

/// cart: 10 lines at 1..=10 s, every third an error with `status=500`; db: 5 JSON lines at 1..=5 s.
fn memory() -> Memory {
    let mut entries = Vec::new();
    for second in 1..=10u64 {
        let error = second % 3 == 0;
        let severity = if error { "error" } else { "info" };
        let status = if error { 500 } else { 200 };
        entries.push(StoredEntry {
            at: second * SECOND,
            stream: pairs(&[("service_name", "cart"), ("severity", severity)]),
            line: format!("status={status} took={second}00ms path=/checkout"),
            metadata: pairs(&[("trace_id", &format!("{second:032x}"))]),
        });
    }
    for second in 1..=5u64 {
        entries.push(StoredEntry {
            at: second * SECOND,
            stream: pairs(&[("service_name", "db"), ("severity", "info")]),
            line: format!(r#"{{"query":"select","rows":{second}}}"#),
            metadata: Vec::new(),
        });
    }
    Memory(entries)
}

fn found(query: &str, limit: usize, forward: bool) -> Vec<u64> {
    let query = log_query(query).unwrap();
    lines(&memory(), &query, (0, 100 * SECOND), limit, forward).unwrap().iter().map(|line| line.at / SECOND).collect()
}

#[test]
fn log_queries_select_filter_and_order_lines() {
    assert_eq!(found(r#"{service_name="cart"}"#, 3, false), [10, 9, 8]);
    assert_eq!(found(r#"{service_name="cart"}"#, 3, true), [1, 2, 3]);
    assert_eq!(found(r#"{service_name="cart", severity="error"}"#, 100, true), [3, 6, 9]);
    assert_eq!(found(r#"{service_name=~"cart|db"} |= "status=500""#, 100, true), [3, 6, 9]);
    assert_eq!(found(r#"{service_name="cart"} | logfmt | took >= 800ms"#, 100, true), [8, 9, 10]);
    assert_eq!(found(r#"{service_name="db"} | json | rows > 3"#, 100, true), [4, 5]);
    assert_eq!(found(r#"{service_name="db"} | json | rows > 1 |= "select" != ":5""#, 100, true), [2, 3, 4]);
    assert_eq!(found(r#"{service_name="cart"} | trace_id="0000000000000000000000000000000a""#, 100, true), [10]);
    let query = log_query(r#"{service_name="db"} | json"#).unwrap();
    let line = &lines(&memory(), &query, (0, 2 * SECOND), 10, true).unwrap()[0];
    assert_eq!((line.at, line.labelled.get("rows")), (SECOND, "1"), "end is exclusive");
    assert_eq!(line.labelled.labels["rows"].1, Category::Parsed);
    assert_eq!(line.labelled.labels["service_name"].1, Category::Stream);
}

fn matrix(query: &str, (start, end, step): (i64, i64, i64)) -> Vec<(LabelSet, Vec<(i64, f64)>)> {
    let query = metric_query(query).unwrap();
    match metric(&memory(), &query, (start * 1000, end * 1000, step * 1000), false, Options::default(), LINES).unwrap()
    {
        promql::Value::Matrix(series) => series
            .into_iter()
            .map(|series| (series.labels, series.points.into_iter().map(|(at, value)| (at / 1000, value)).collect()))
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn metric_queries_count_per_window_and_aggregate_with_promql() {
    let per_severity = matrix(r#"sum by (severity) (count_over_time({service_name="cart"}[5s]))"#, (5, 10, 5));
    assert_eq!(
        per_severity,
        vec![
            (pairs(&[("severity", "error")]), vec![(5, 1.0), (10, 2.0)]),
            (pairs(&[("severity", "info")]), vec![(5, 4.0), (10, 3.0)])
        ]
    );
    // Counted per severity only (pushed down) or per every label and then summed: the same.
    assert_eq!(
        per_severity,
        matrix(r#"sum by (severity) (count_over_time({service_name="cart"}[5s]) * 1)"#, (5, 10, 5))
    );
    assert!(
        summed_labels(
            &promql::parse("sum by (a) (__logql_0__)").unwrap(),
            &metric_query(r#"count_over_time({a="b"}[1m])"#).unwrap().aggregations[0],
            "__logql_0__"
        )
        .is_some()
    );
    assert!(
        summed_labels(
            &promql::parse("sum by (a) (__logql_0__) / __logql_0__").unwrap(),
            &metric_query(r#"count_over_time({a="b"}[1m])"#).unwrap().aggregations[0],
            "__logql_0__"
        )
        .is_none()
    );
    assert!(
        summed_labels(
            &promql::parse("sum by (a) (__logql_0__)").unwrap(),
            &metric_query(r#"absent_over_time({a="b"}[1m])"#).unwrap().aggregations[0],
            "__logql_0__"
        )
        .is_none()
    );
    // Windows are left-open: (5 s, 10 s] holds the lines at 6..=10 s.
    assert_eq!(matrix(r#"sum(rate({service_name="cart"}[5s]))"#, (10, 10, 1)), vec![(vec![], vec![(10, 1.0)])]);
    assert_eq!(
        matrix(r#"sum(bytes_over_time({service_name="db"}[10s]))"#, (5, 5, 1)),
        vec![(vec![], vec![(5, 5.0 * r#"{"query":"select","rows":1}"#.len() as f64)])]
    );
    let unwrapped =
        matrix(r#"max(max_over_time({service_name="cart"} | logfmt | unwrap duration(took) [10s]))"#, (10, 10, 1));
    assert_eq!(unwrapped, vec![(vec![], vec![(10, 1.0)])]);
    let quantile = matrix(r#"sum(quantile_over_time(0.5, {service_name="db"} | json | unwrap rows [10s]))"#, (5, 5, 1));
    assert_eq!(quantile, vec![(vec![], vec![(5, 3.0)])]);
    // Steps with no lines have no point.
    assert_eq!(
        matrix(r#"sum(count_over_time({service_name="db"}[1s]))"#, (4, 8, 1)),
        vec![(vec![], vec![(4, 1.0), (5, 1.0)])]
    );
    assert_eq!(
        matrix(r#"absent_over_time({service_name="db"}[1s])"#, (4, 7, 1)),
        vec![(pairs(&[("service_name", "db")]), vec![(6, 1.0), (7, 1.0)])]
    );
    // Without an aggregation a series keeps every label, metadata and parsed ones included.
    let labelled = matrix(r#"count_over_time({service_name="db"} | json | rows="2" [1s])"#, (2, 2, 1));
    assert_eq!(
        labelled[0].0,
        pairs(&[("query", "select"), ("rows", "2"), ("service_name", "db"), ("severity", "info")])
    );
}

#[test]
fn errors_reach_a_metric_only_when_unfiltered_and_instant_queries_answer_vectors() {
    let query = metric_query(r#"count_over_time({service_name="cart"} | json [5s])"#).unwrap();
    let error = metric(&memory(), &query, (5000, 5000, 1000), false, Options::default(), LINES).unwrap_err();
    assert!(error.to_string().contains("pipeline error: 'JSONParserErr'"), "{error}");
    let query = metric_query(r#"sum(count_over_time({service_name="cart"} | json | __error__!="JSONParserErr" [5s]))"#)
        .unwrap();
    assert_eq!(
        metric(&memory(), &query, (5000, 5000, 1000), true, Options::default(), LINES).unwrap(),
        promql::Value::Vector(vec![])
    );
    let health = metric_query("vector(1)+vector(1)").unwrap();
    let promql::Value::Vector(samples) =
        metric(&memory(), &health, (4000, 4000, 1000), true, Options::default(), LINES).unwrap()
    else {
        panic!()
    };
    assert_eq!((samples.len(), samples[0].value), (1, 2.0));
}

#[test]
fn label_discovery_lists_stream_labels_only() {
    let names = label_names(&memory(), &[], (0, 100 * SECOND)).unwrap();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["service_name", "severity"]);
    let selector = log_query(r#"{service_name="cart"}"#).unwrap().selector;
    let values = label_values(&memory(), "severity", &selector, (0, 100 * SECOND)).unwrap();
    assert_eq!(values.into_iter().collect::<Vec<_>>(), ["error", "info"]);
    let (streams, stats) = series(&memory(), &selector, (0, 100 * SECOND)).unwrap();
    assert_eq!((streams.len(), stats.streams, stats.entries), (2, 2, 10));
}

/// Entries handed out in sources of one second each, newest source first with its bound, counting what
/// was read.
struct Sources(Memory, std::cell::Cell<usize>);

impl LogSource for Sources {
    fn read(
        &self,
        selector: &[Matcher],
        terms: &[Vec<u128>],
        range: (u64, u64),
        visit: &mut dyn FnMut(StoredEntry) -> bool,
    ) -> Result<(), StoreError> {
        self.0.read(selector, terms, range, visit)
    }

    fn read_newest_first(
        &self,
        selector: &[Matcher],
        terms: &[Vec<u128>],
        range: (u64, u64),
        visit: &mut dyn FnMut(Newest) -> bool,
    ) -> Result<(), StoreError> {
        for second in (1..=10u64).rev() {
            if !visit(Newest::Bound(second * SECOND)) {
                return Ok(());
            }
            let mut stopped = false;
            self.0.read(selector, terms, (second * SECOND, (second + 1) * SECOND), &mut |entry| {
                self.1.set(self.1.get() + 1);
                stopped = !visit(Newest::Entry(entry));
                !stopped
            })?;
            if stopped {
                return Ok(());
            }
        }
        let _ = range;
        Ok(())
    }
}

#[test]
fn newest_lines_stop_reading_once_nothing_unread_can_be_newer() {
    let sources = Sources(memory(), std::cell::Cell::new(0));
    let query = log_query(r#"{service_name=~"cart|db"}"#).unwrap();
    let found = lines(&sources, &query, (0, 100 * SECOND), 3, false).unwrap();
    assert_eq!(found.iter().map(|line| line.at / SECOND).collect::<Vec<_>>(), [10, 9, 8]);
    assert_eq!(sources.1.get(), 3, "the sources of 7 s and older are not read");
    // Lines of the same second from two services: both read before the bound allows stopping.
    let found = lines(&sources, &query, (0, 100 * SECOND), 12, false).unwrap();
    assert_eq!(found.iter().map(|line| line.at / SECOND).collect::<Vec<_>>(), [10, 9, 8, 7, 6, 5, 5, 4, 4, 3, 3, 2]);
}

#[test]
fn a_metric_query_reading_more_lines_than_its_limit_is_refused_and_one_at_the_limit_answers() {
    // cart holds 10 lines in the window: a limit of 9 is passed by the 10th line read, 10 is not.
    let query = metric_query(r#"sum(count_over_time({service_name="cart"}[1m]))"#).unwrap();
    let error = metric(&memory(), &query, (20_000, 20_000, 1000), true, Options::default(), 9).unwrap_err();
    assert!(
        error.to_string().contains("reads more than 9 lines (api.limits.max_lines); narrow the selector"),
        "{error}"
    );
    let promql::Value::Vector(samples) =
        metric(&memory(), &query, (20_000, 20_000, 1000), true, Options::default(), 10).unwrap()
    else {
        panic!("an instant query gives a vector")
    };
    assert_eq!(samples[0].value, 10.0);
}

#[test]
fn line_filters_before_line_format_need_the_trigrams_of_their_text() {
    let terms = |query: &str| line_terms(&log_query(query).unwrap().stages);
    let trigram = |text: &[u8]| Term::Trigram([text[0], text[1], text[2]]).hash();
    let mut needle: Vec<Vec<u128>> = [b"nee", b"eed", b"edl", b"dle"].iter().map(|t| vec![trigram(*t)]).collect();
    needle.sort_unstable();
    assert_eq!(terms(r#"{service_name="a"} |= "needle""#), needle);
    assert_eq!(terms(r#"{service_name="a"} |= "needle" | json | level="error""#), needle);
    assert_eq!(terms(r#"{service_name="a"} |= "needle" |= "dle""#), needle, "a clause once");
    assert_eq!(terms(r#"{service_name="a"} |= "needle" or "pin""#), vec![vec![trigram(b"nee"), trigram(b"pin")]]);
    // Nothing to require: too short, a regular expression, a dropping filter, after line_format.
    for query in [
        r#"{service_name="a"} |= "ne""#,
        r#"{service_name="a"} |= "needle" or "x""#,
        r#"{service_name="a"} |~ "needle""#,
        r#"{service_name="a"} != "needle""#,
        r#"{service_name="a"} | line_format "{{.x}}" |= "needle""#,
    ] {
        assert!(terms(query).is_empty(), "{query}");
    }
}

/// Lines of three streams at times on, just after, just before and inside whole milliseconds, so
/// windows and ranges in milliseconds cut between them; the cart lines carry a `trace_id` and the db
/// lines a metadata `severity` (a stream label name).
fn boundary_memory() -> Memory {
    let mut entries = Vec::new();
    for step in 0..48u64 {
        let at = step * 250_000_000 + [0, 1, 999_999, 500_000][(step % 4) as usize];
        let severity = if step % 5 == 0 { "error" } else { "info" };
        entries.push(StoredEntry {
            at,
            stream: pairs(&[("service_name", "cart"), ("severity", severity)]),
            line: "x".repeat(1 + step as usize % 7),
            metadata: pairs(&[("trace_id", &format!("{step:032x}"))]),
        });
        if step % 3 == 0 {
            entries.push(StoredEntry {
                at: at + 7,
                stream: pairs(&[("service_name", "db"), ("severity", "info")]),
                line: format!("select {step}"),
                metadata: pairs(&[("severity", "low")]),
            });
        }
    }
    Memory(entries)
}

/// The log volume of entries, as the store keeps it.
fn volume_of(memory: &Memory) -> LogVolume {
    let mut volume = LogVolume::default();
    for entry in &memory.0 {
        volume.add_line(&entry.stream, entry.at, entry.line.len() as u64, &entry.metadata);
    }
    volume
}

/// Only the log volumes of the entries: its lines cannot be read, so what it answers was answered from
/// the volumes alone.
struct VolumesOnly(LogVolume);

impl LogSource for VolumesOnly {
    fn read(
        &self,
        _selector: &[Matcher],
        _terms: &[Vec<u128>],
        _range: (u64, u64),
        _visit: &mut dyn FnMut(StoredEntry) -> bool,
    ) -> Result<(), StoreError> {
        Err(StoreError::Damaged { path: "lines".into(), message: "the lines were read".into() })
    }

    fn volumes(
        &self,
        _selector: &[Matcher],
        _range: (u64, u64),
        visit: &mut dyn FnMut(&LogVolume) -> bool,
    ) -> Result<bool, StoreError> {
        visit(&self.0);
        Ok(true)
    }
}

/// The entries and their log volumes.
struct WithVolumes(Memory, LogVolume);

impl LogSource for WithVolumes {
    fn read(
        &self,
        selector: &[Matcher],
        terms: &[Vec<u128>],
        range: (u64, u64),
        visit: &mut dyn FnMut(StoredEntry) -> bool,
    ) -> Result<(), StoreError> {
        self.0.read(selector, terms, range, visit)
    }

    fn volumes(
        &self,
        selector: &[Matcher],
        range: (u64, u64),
        visit: &mut dyn FnMut(&LogVolume) -> bool,
    ) -> Result<bool, StoreError> {
        VolumesOnly(self.1.clone()).volumes(selector, range, visit)
    }
}

fn evaluate(source: &dyn LogSource, query: &str, steps: (i64, i64, i64)) -> Result<promql::Value, LogqlError> {
    metric(source, &metric_query(query).unwrap(), steps, false, Options::default(), LINES)
}

#[test]
fn counts_summed_by_stream_labels_come_from_log_volumes_and_equal_the_lines() {
    let memory = boundary_memory();
    let volumes = VolumesOnly(volume_of(&memory));
    let queries = [
        r#"sum by (severity) (count_over_time({service_name="cart"}[1s]))"#,
        r#"sum by (service_name) (rate({service_name=~".+"}[1500ms]))"#,
        r#"sum(bytes_over_time({service_name="cart"}[2s] offset 250ms))"#,
        r#"sum by (severity) (bytes_rate({service_name=~"cart|db"}[750ms]))"#,
        r#"sum by (level, detected_level) (count_over_time({service_name="cart"} | drop __error__[1s]))"#,
        r#"sum by (service_name) (count_over_time({severity="info"} | drop service_name[1s]))"#,
        r#"sum by (severity) (count_over_time({service_name="db"}[1s]))"#,
    ];
    let mut points = 0;
    for query in queries {
        for steps in [(0, 12_000, 250), (1, 12_001, 1000), (3_250, 3_250, 1), (500, 11_500, 333)] {
            let expected = evaluate(&memory, query, steps).unwrap();
            let answered =
                evaluate(&volumes, query, steps).unwrap_or_else(|error| panic!("{query} {steps:?}: {error}"));
            assert_eq!(answered, expected, "{query} at {steps:?}");
            if let promql::Value::Matrix(series) = &expected {
                points += series.iter().map(|series| series.points.len()).sum::<usize>();
            }
        }
    }
    assert!(points > 500, "the comparisons saw {points} points");
}

#[test]
fn counts_the_volumes_cannot_give_read_the_lines() {
    let memory = boundary_memory();
    let volume = volume_of(&memory);
    let queries = [
        // Summed by a label structured metadata gives, or by `severity`, which db's metadata turns into
        // `severity_extracted` (the volume knows, so it still answers that one; see the test above).
        r#"sum by (trace_id) (count_over_time({service_name="cart"}[1s]))"#,
        r#"sum by (severity_extracted) (count_over_time({service_name="db"}[1s]))"#,
        // Not summed: a series per metadata set.
        r#"count_over_time({service_name="cart"}[1s])"#,
        // Stages that look at lines or labels, values unwrapped, a range in microseconds.
        r#"sum(count_over_time({service_name="cart"} |= "xx" [1s]))"#,
        r#"sum by (severity) (count_over_time({service_name="cart"} | drop severity="info" [1s]))"#,
        r#"sum(count_over_time({service_name="cart"}[1500us]))"#,
    ];
    for query in queries {
        let steps = (0, 12_000, 250);
        assert!(evaluate(&VolumesOnly(volume.clone()), query, steps).is_err(), "{query} needs the lines");
        assert_eq!(
            evaluate(&WithVolumes(boundary_memory(), volume.clone()), query, steps).unwrap(),
            evaluate(&memory, query, steps).unwrap(),
            "{query}"
        );
    }
}

#[test]
fn label_discovery_and_series_come_from_log_volumes_when_the_range_is_in_milliseconds() {
    const MILLI: u64 = 1_000_000;
    let memory = boundary_memory();
    let volumes = VolumesOnly(volume_of(&memory));
    let cart = log_query(r#"{service_name="cart"}"#).unwrap().selector;
    for range in
        [(0, 20_000 * MILLI), (250 * MILLI, 1_250 * MILLI), (251 * MILLI, 750 * MILLI), (500 * MILLI, 501 * MILLI)]
    {
        for selector in [&[][..], &cart[..]] {
            assert_eq!(label_names(&volumes, selector, range).unwrap(), label_names(&memory, selector, range).unwrap());
            let values = label_values(&volumes, "severity", selector, range).unwrap();
            assert_eq!(values, label_values(&memory, "severity", selector, range).unwrap());
            assert_eq!(
                series(&volumes, selector, range).unwrap(),
                series(&memory, selector, range).unwrap(),
                "{range:?}"
            );
        }
    }
    let (_, stats) = series(&volumes, &cart, (250 * MILLI, 1_250 * MILLI)).unwrap();
    assert_eq!(stats.entries, 4, "the lines at 250 ms, 500 ms + 1 ns, 1 s - 1 ns and 1 s + 0.5 ms");
    // A range in nanoseconds reads the lines.
    assert!(series(&volumes, &cart, (MILLI + 1, 20_000 * MILLI)).is_err());
    let with = WithVolumes(boundary_memory(), volume_of(&memory));
    assert_eq!(
        series(&with, &cart, (MILLI + 1, 9 * MILLI)).unwrap(),
        series(&memory, &cart, (MILLI + 1, 9 * MILLI)).unwrap()
    );
}

#[test]
fn counts_from_log_volumes_hold_at_most_max_lines_counts() {
    // 48 cart lines in 48 slots read: one count over the limit is refused by name, at the limit it
    // answers (47: the window is open on the left, the line at 0 s is outside).
    let volumes = VolumesOnly(volume_of(&boundary_memory()));
    let query = metric_query(r#"sum(count_over_time({service_name="cart"}[20s]))"#).unwrap();
    let error = metric(&volumes, &query, (12_000, 12_000, 1000), true, Options::default(), 47).unwrap_err();
    assert!(error.to_string().contains("api.limits.max_lines"), "{error}");
    let promql::Value::Vector(samples) =
        metric(&volumes, &query, (12_000, 12_000, 1000), true, Options::default(), 48).unwrap()
    else {
        panic!()
    };
    assert_eq!(samples[0].value, 47.0);
}
