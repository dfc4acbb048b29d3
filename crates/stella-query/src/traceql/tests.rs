//! TraceQL on traces built in memory: a checkout trace (frontend server span, a client call, a
//! database span that fails) and a quiet one.
use stella_otlp::attributes::string;
use stella_otlp::proto::trace::v1::Status;

use super::*;

const MS: u64 = 1_000_000;

/// A span of trace `trace` with id `id` under `parent`.
fn span(
    (trace, id, parent): (u8, u8, Option<u8>),
    name: &str,
    (start, end): (u64, u64),
    kind: i32,
    error: bool,
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
        parent_span_id: parent.map(|parent| vec![0, 0, 0, 0, 0, 0, 0, parent]).unwrap_or_default(),
        name: name.into(),
        start_time_unix_nano: start * MS,
        end_time_unix_nano: end * MS,
        kind,
        status: error.then(|| Status { code: 2, message: "boom".into() }),
        attributes,
        ..Default::default()
    }
}

/// An integer attribute.
fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(stella_otlp::proto::common::v1::AnyValue { value: Some(any_value::Value::IntValue(value)) }),
        ..Default::default()
    }
}

fn traces() -> Vec<Trace> {
    let frontend = Arc::new(vec![string("service.name", "frontend"), string("deployment.environment", "prod")]);
    let db = Arc::new(vec![string("service.name", "orders-db")]);
    let row = |span: Span, resource: &Arc<Vec<KeyValue>>| {
        let service = stella_otlp::attributes::get_str(resource, "service.name").unwrap_or_default().to_string();
        Row { span, resource: Arc::clone(resource), service, parent: None }
    };
    let checkout = vec![
        row(
            span(
                (1, 1, None),
                "GET /checkout",
                (1000, 1300),
                2,
                false,
                vec![string("http.method", "GET"), int("http.status_code", 500)],
            ),
            &frontend,
        ),
        row(span((1, 2, Some(1)), "call orders", (1010, 1290), 3, false, vec![]), &frontend),
        row(span((1, 3, Some(2)), "SELECT orders", (1020, 1280), 3, true, vec![string("db.system", "postgres")]), &db),
        row(span((1, 4, Some(1)), "render", (1290, 1299), 1, false, vec![]), &frontend),
    ];
    let quiet = vec![row(
        span(
            (2, 1, None),
            "GET /health",
            (2000, 2001),
            2,
            false,
            vec![string("http.method", "GET"), int("http.status_code", 200)],
        ),
        &frontend,
    )];
    vec![Trace::new(vec![1; 16], checkout), Trace::new(vec![2; 16], quiet)]
}

fn find(query: &str) -> Vec<(String, usize)> {
    let search = Search {
        query: parse(query).unwrap(),
        range: (0, u64::MAX),
        limit: 20,
        spans_per_spanset: 3,
        min_duration: None,
        max_duration: None,
        max_spans: 100,
    };
    matching(&traces(), &search).into_iter().map(|trace| (trace.root_trace_name, trace.matched)).collect()
}

#[test]
fn spanset_filters_match_intrinsics_and_attributes_per_span() {
    assert_eq!(find("{}"), vec![("GET /health".to_string(), 1), ("GET /checkout".to_string(), 4)]);
    assert_eq!(find("{ status = error }"), vec![("GET /checkout".to_string(), 1)]);
    assert_eq!(find("{ resource.service.name = \"orders-db\" && span.db.system =~ \"post.*\" }").len(), 1);
    assert_eq!(find("{ .http.status_code >= 500 }"), vec![("GET /checkout".to_string(), 1)]);
    assert_eq!(find("{ span.http.method = \"GET\" && duration > 100ms }"), vec![("GET /checkout".to_string(), 1)]);
    assert_eq!(find("{ kind = client }"), vec![("GET /checkout".to_string(), 2)]);
    assert_eq!(
        find("{ rootServiceName = \"frontend\" && traceDuration < 10ms }"),
        vec![("GET /health".to_string(), 1)]
    );
    assert_eq!(
        find("{ .deployment.environment = \"prod\" && !(name =~ \"GET.*\") }"),
        vec![("GET /checkout".to_string(), 2)]
    );
    assert_eq!(find("{ span.db.system != nil }"), vec![("GET /checkout".to_string(), 1)]);
    assert_eq!(find("{ span.db.system = nil && status = error }"), vec![]);
    assert_eq!(find("{ .http.method = \"POST\" }"), vec![]);
}

#[test]
fn spansets_combine_and_relate_structurally() {
    // Both sides must have spans; the spans of both are returned.
    assert_eq!(find("{ status = error } && { name = \"render\" }"), vec![("GET /checkout".to_string(), 2)]);
    assert_eq!(find("{ status = error } && { name = \"missing\" }"), vec![]);
    assert_eq!(find("{ status = error } || { name = \"GET /health\" }").len(), 2);
    // The database span is a child of the client call and a descendant of the server span.
    assert_eq!(find("{ kind = client } > { status = error }"), vec![("GET /checkout".to_string(), 1)]);
    assert_eq!(find("{ kind = server } > { status = error }"), vec![]);
    assert_eq!(find("{ kind = server } >> { status = error }"), vec![("GET /checkout".to_string(), 1)]);
    assert_eq!(find("{ status = error } < { kind = client }"), vec![("GET /checkout".to_string(), 1)]);
    assert_eq!(find("{ status = error } << { kind = server }"), vec![("GET /checkout".to_string(), 1)]);
    assert_eq!(find("{ name = \"render\" } ~ { name = \"call orders\" }"), vec![("GET /checkout".to_string(), 1)]);
    assert_eq!(find("{ } | count() > 3"), vec![("GET /checkout".to_string(), 4)]);
}

#[test]
fn results_carry_what_tempo_shows() {
    let search = Search {
        query: parse("{ status = error } | select(span.db.system)").unwrap(),
        range: (0, u64::MAX),
        limit: 20,
        spans_per_spanset: 3,
        min_duration: Some(250 * MS),
        max_duration: None,
        max_spans: 100,
    };
    let found = matching(&traces(), &search);
    assert_eq!(found.len(), 1);
    let trace = &found[0];
    assert_eq!(trace.trace_id, hex::encode([1u8; 16]).trim_start_matches('0'));
    assert_eq!((trace.root_service_name.as_str(), trace.duration_ms, trace.start), ("frontend", 300, 1000 * MS));
    assert_eq!(
        trace.spans[0].attributes,
        vec![
            ("status".into(), TagValue::Keyword("error".into())),
            ("db.system".into(), TagValue::Str("postgres".into()))
        ]
    );
    assert_eq!(trace.spans[0].duration, 260 * MS);
    assert_eq!(go_duration(1_500_000_000), "1.5s");
    assert_eq!(go_duration(250 * MS), "250ms");
    assert_eq!(go_duration(3_723_000_000_000), "1h2m3s");
}

#[test]
fn a_search_narrows_to_a_service_only_when_every_match_needs_it() {
    let required = |query: &str| narrowing(&parse(query).unwrap().spansets).and_then(|narrowing| narrowing.service);
    assert_eq!(required(r#"{ resource.service.name = "cart" && status = error }"#).as_deref(), Some("cart"));
    assert_eq!(required(r#"{ rootServiceName = "web" } >> { kind = server }"#).as_deref(), Some("web"));
    assert_eq!(required(r#"{ kind = client } && { "db" = resource.service.name }"#).as_deref(), Some("db"));
    // Either side may match alone, a span attribute may name another service, or the test may fail.
    assert_eq!(required(r#"{ resource.service.name = "a" } || { status = error }"#), None);
    assert_eq!(required(r#"{ resource.service.name = "a" || status = error }"#), None);
    assert_eq!(required(r#"{ .service.name = "a" }"#), None);
    assert_eq!(required(r#"{ resource.service.name != "a" }"#), None);
}

#[test]
fn a_search_holds_no_more_spans_than_its_limit() {
    use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
    use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans};
    // One record of five distinct spans, the first of them sent twice (kept and counted once).
    let mut spans: Vec<Span> = (1..=5).map(|id| span((1, id, None), "work", (1, 2), 1, false, Vec::new())).collect();
    spans.push(spans[0].clone());
    let record = OtlpRequest::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    })
    .encode_protobuf();
    let held = |max_spans: usize| {
        let (mut by_id, mut count) = (SpansByTrace::default(), 0usize);
        let complete = collect(&record, &mut by_id, (&mut count, max_spans), None, None);
        (complete, count)
    };
    assert_eq!(held(5), (true, 5), "five distinct spans fit a limit of five");
    assert_eq!(held(4), (false, 5), "the fifth span passes a limit of four and stops the read");
}

#[test]
fn a_search_is_narrowed_by_the_terms_and_service_a_matching_span_must_carry() {
    let narrowed = |query: &str| {
        // Leaked so that the terms may borrow from it for the rest of the test.
        let query: &'static Query = Box::leak(Box::new(parse(query).unwrap()));
        narrowing(&query.spansets)
            .map(|narrowing| (narrowing.service.clone(), narrowing.clauses.clone(), narrowing.prefilter.is_some()))
    };
    let span = |key: &'static str, value: &'static str| Term::Span(key, value);
    let resource = |key: &'static str, value: &'static str| Term::Resource(key, value);
    assert_eq!(
        narrowed(r#"{ span.url.path = "/x" && status = error }"#),
        Some((None, vec![vec![span("url.path", "/x")], vec![Term::Status(2)]], true))
    );
    assert_eq!(
        narrowed(r#"{ .db = "pg" || name = "q" }"#),
        Some((None, vec![vec![span("db", "pg"), resource("db", "pg"), Term::Name("q")]], true))
    );
    assert_eq!(
        narrowed(r#"{ resource.service.name = "cart" && "/x" = span.url.path }"#),
        Some((Some("cart".into()), vec![vec![resource("service.name", "cart")], vec![span("url.path", "/x")]], true)),
        "the matching span is of the service and carries the terms"
    );
    // rootServiceName: some span of the trace is of the service, not necessarily the matching one.
    assert_eq!(narrowed(r#"{ rootServiceName = "cart" }"#), Some((Some("cart".into()), vec![], false)));
    assert_eq!(
        narrowed(r#"{ rootServiceName = "cart" && name = "q" }"#),
        Some((None, vec![vec![Term::Name("q")]], false))
    );
    // Under && and structural operators both sides must match: the side with more clauses narrows.
    assert_eq!(
        narrowed(r#"{ kind = server } >> { span.a = "1" && span.b = "2" }"#).map(|found| found.1.len()),
        Some(2)
    );
    assert_eq!(narrowed(r#"{ span.a = "1" } || { span.b = "2" }"#), None, "either side may match alone");
    assert_eq!(narrowed(r#"{ span.a =~ "1.*" && span.n = 1 && !(name = "x") }"#), None);
}

#[test]
fn a_span_carries_exactly_the_terms_its_chunk_filter_holds() {
    let rows: Vec<Row> = traces().into_iter().flat_map(|trace| trace.rows).collect();
    let db = rows.iter().find(|row| row.service == "orders-db").unwrap();
    let carried = |clauses: &[Vec<Term<'_>>]| carries(&db.span, &db.resource, clauses);
    assert!(carried(&[vec![Term::Resource("service.name", "orders-db")], vec![Term::Status(2)]]));
    assert!(carried(&[vec![Term::Span("db.system", "postgres")]]));
    assert!(!carried(&[vec![Term::Span("service.name", "orders-db")]]));
    assert!(!carried(&[vec![Term::Name("GET /health")]]));
    assert!(carried(&[]));
    // What the span carries is what the store's filter of its chunk holds.
    let mut terms = stella_store::chunks::ChunkTerms::default();
    terms.add_request(&OtlpRequest::Traces(stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![stella_otlp::proto::trace::v1::ResourceSpans {
            resource: Some(stella_otlp::proto::resource::v1::Resource {
                attributes: db.resource.as_ref().clone(),
                ..Default::default()
            }),
            scope_spans: vec![stella_otlp::proto::trace::v1::ScopeSpans {
                spans: vec![db.span.clone()],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }));
    let filter = stella_store::chunks::TermFilter::decode(&terms.encode()).unwrap();
    for term in [
        Term::Resource("service.name", "orders-db"),
        Term::Status(2),
        Term::Span("db.system", "postgres"),
        Term::Name("SELECT orders"),
    ] {
        assert!(carried(&[vec![term]]) && filter.may_contain(term.hash()), "{term:?}");
    }
}

/// A store read as the server reads it (sealed chunks only).
struct SealedView(stella_store::chunks::Store);

impl StoreView for SealedView {
    fn store(&self) -> &stella_store::chunks::Store {
        &self.0
    }

    fn cut(
        &self,
        tenant: &str,
        signal: Signal,
        range: (u64, u64),
        filter: ScanFilter<'_>,
    ) -> Result<stella_store::chunks::Cut, StoreError> {
        stella_store::chunks::Cut::sealed(&self.0, tenant, signal.as_str(), range, filter)
    }

    fn trace_records(&self, tenant: &str, trace_id: &[u8; 16]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.0.records_with_trace(tenant, trace_id)
    }
}

/// 80 traces, one every ten seconds from 2026-11-29T00:00:00Z, each a server root enclosing three children
/// (lasting 5 ms to 4 s, some failing, attribute `n`; in every tenth trace one child's clock is 1.5 s
/// behind, so it ends before the root starts), each span exported in a record of its own when it ends
/// (by its clock), the records of traces in flight interleaved; sealed three records to a chunk.
fn busy_store() -> (tempfile::TempDir, SealedView) {
    use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
    use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans};
    use stella_store::chunks::{SealLimits, Sealer, Store};
    const START: u64 = 1_795_910_400_000;
    let mut seed = 7u64;
    let mut next = |modulo: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % modulo
    };
    // (time the record is exported, ms; its spans)
    let mut exports: Vec<(u64, Vec<Span>)> = Vec::new();
    for trace in 0..80u8 {
        let start = START + u64::from(trace) * 10_000 + next(9_000);
        let end = start + 5 + next(4000);
        for child in 0..3u8 {
            let (from, to) = if trace % 10 == 3 && child == 0 {
                // A host whose clock runs 1.5 s behind: the span ends before its root starts.
                (start - 1_500 - next(400), start - 1_000)
            } else {
                let from = start + next(end - start);
                (from, from + next(end - from + 1))
            };
            let attributes = vec![int("n", i64::from((trace + child) % 7))];
            let child = span(
                (trace, child + 2, Some(1)),
                &format!("op-{child}"),
                (from, to),
                3,
                trace % 9 == child,
                attributes,
            );
            exports.push((to, vec![child]));
        }
        exports.push((end, vec![span((trace, 1, None), "root", (start, end), 2, false, Vec::new())]));
    }
    exports.sort_by_key(|(at, _)| *at);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    let mut sealer = Sealer::new("acme", Signal::Traces, SealLimits { max_records: 3, max_bytes: 1 << 20 });
    let records = exports.into_iter().map(|(_, spans)| {
        let resource = stella_otlp::proto::resource::v1::Resource {
            attributes: vec![string("service.name", "shop")],
            ..Default::default()
        };
        OtlpRequest::Traces(ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        })
        .encode_protobuf()
    });
    for (seq, record) in records.enumerate() {
        for chunk in sealer.add(seq as u64, record).unwrap() {
            store.write(&chunk).unwrap();
        }
    }
    (dir, SealedView(store))
}

#[test]
fn a_search_read_newest_first_finds_what_a_search_of_every_trace_finds_and_stops_early() {
    let (_dir, view) = busy_store();
    let chunks = view.0.scan_plan("acme", "traces", (0, u64::MAX), ScanFilter::default()).unwrap().len() as u64;
    assert!(chunks > 40, "{chunks} chunks");
    for query in [
        "{}",
        "{ span.n > 4 }",
        r#"{ name =~ "op-[12]" && duration > 500ms }"#,
        "{ traceDuration > 2s }",
        "{ kind = server } >> { status = error }",
        "{ span.n = 99 }",
    ] {
        for limit in [1, 3, 20, 1000] {
            let search = Search {
                query: parse(query).unwrap(),
                range: (0, u64::MAX),
                limit,
                spans_per_spanset: 3,
                min_duration: None,
                max_duration: None,
                max_spans: 1_000_000,
            };
            let (every, _) = super::traces(&view, "acme", search.range, search.max_spans).unwrap();
            let expected = matching(&every, &search);
            let before = view.0.chunks_read();
            let (found, inspected, _) = search_newest_first(&view, "acme", &search).unwrap();
            let read = view.0.chunks_read() - before;
            assert_eq!(found, expected, "{query} limit {limit}");
            assert!(inspected <= every.len());
            if query == "{}" && limit <= 3 {
                assert!(read < chunks / 2, "{query} limit {limit}: {read} of {chunks} chunks read");
            }
        }
    }
}

#[test]
fn a_search_read_newest_first_holds_the_traces_in_flight_not_the_range() {
    let (_dir, view) = busy_store();
    // 80 traces of 4 spans: 320 spans in the range; at most a few traces are in flight at once.
    let search = |max_spans: usize| Search {
        query: parse("{ span.n = 99 }").unwrap(),
        range: (0, u64::MAX),
        limit: 20,
        spans_per_spanset: 3,
        min_duration: None,
        max_duration: None,
        max_spans,
    };
    assert!(matches!(super::traces(&view, "acme", (0, u64::MAX), 100), Err(SearchError::TooManySpans { limit: 100 })));
    let (found, inspected, _) = search_newest_first(&view, "acme", &search(100)).unwrap();
    assert_eq!((found.len(), inspected), (0, 80), "every trace evaluated, none matching");
    assert!(matches!(search_newest_first(&view, "acme", &search(2)), Err(SearchError::TooManySpans { limit: 2 })));
}

#[test]
fn tag_discovery_reads_the_newest_spans_and_whole_traces_only_for_trace_intrinsics() {
    let (_dir, view) = busy_store();
    let range = (0, u64::MAX);
    // 320 spans in the range; the newest 10 name every attribute.
    let (resource, span) = tag_names(&view, "acme", range, 10, 10).unwrap();
    assert_eq!((resource, span), (BTreeSet::from(["service.name".to_string()]), BTreeSet::from(["n".to_string()])));
    let n = Attribute::Span("n".into());
    let texts = |values: Vec<TagValue>| values.iter().map(TagValue::text).collect::<Vec<_>>();
    let all = texts(tag_values(&view, "acme", range, &n, None, 100, 1_000).unwrap());
    assert_eq!(all, (0..7).map(|n| n.to_string()).collect::<Vec<_>>());
    assert_eq!(tag_values(&view, "acme", range, &n, None, 3, 1_000).unwrap().len(), 3, "limit");
    let few = tag_values(&view, "acme", range, &n, None, 100, 2).unwrap();
    assert!(!few.is_empty() && few.len() <= 2, "the newest two spans answer: {few:?}");
    let Query { spansets: SpansetExpr::Filter(failing), .. } = parse("{ status = error }").unwrap() else {
        panic!("a spanset filter")
    };
    // Children fail where trace % 9 == child: n = (trace + child) % 7 for those.
    let expected: BTreeSet<String> =
        (0..80u8).filter(|trace| trace % 9 < 3).map(|trace| ((trace + trace % 9) % 7).to_string()).collect();
    let found = texts(tag_values(&view, "acme", range, &n, Some(&failing), 100, 1_000).unwrap());
    assert_eq!(found, expected.into_iter().collect::<Vec<_>>());
    // rootServiceName needs whole traces: bounded by max_spans over the range.
    let root = Attribute::Intrinsic(Intrinsic::RootServiceName);
    assert_eq!(texts(tag_values(&view, "acme", range, &root, None, 10, 1_000).unwrap()), vec!["shop".to_string()]);
    assert!(matches!(
        tag_values(&view, "acme", range, &root, None, 10, 10),
        Err(SearchError::TooManySpans { limit: 10 })
    ));
}
