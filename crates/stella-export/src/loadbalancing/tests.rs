use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::*;

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(service.into())) }),
            ..Default::default()
        }],
        ..Default::default()
    })
}

fn traces() -> OtlpRequest {
    let spans = |service: u8| -> Vec<Span> {
        (0..200u8)
            .map(|n| Span {
                trace_id: vec![n / 4; 16],
                span_id: vec![service, n, 1, 1, 1, 1, 1, 1],
                name: format!("op-{n}"),
                ..Default::default()
            })
            .collect()
    };
    OtlpRequest::Traces(ExportTraceServiceRequest {
        resource_spans: (0..2u8)
            .map(|service| ResourceSpans {
                resource: resource(&format!("svc-{service}")),
                scope_spans: vec![ScopeSpans { spans: spans(service), ..Default::default() }],
                ..Default::default()
            })
            .collect(),
    })
}

fn ring() -> Ring {
    Ring::new(["a:4317", "b:4317", "c:4317"].map(String::from))
}

#[test]
fn every_span_of_a_trace_goes_to_one_member_and_the_shares_add_up_to_the_whole() {
    let ring = ring();
    let mut owner_of_trace = std::collections::BTreeMap::new();
    let mut total = 0;
    for member in ring.members() {
        let Some(OtlpRequest::Traces(mine)) = share(&traces(), &ring, member, RoutingKey::TraceId) else {
            continue;
        };
        for span in mine.resource_spans.iter().flat_map(|group| &group.scope_spans).flat_map(|scope| &scope.spans) {
            total += 1;
            let previous = owner_of_trace.insert(span.trace_id.clone(), member.clone());
            assert!(previous.is_none_or(|previous| &previous == member), "a trace split across members");
        }
    }
    assert_eq!(total, 400, "every span exactly once");
    let used: std::collections::BTreeSet<&String> = owner_of_trace.values().collect();
    assert_eq!(used.len(), 3, "50 traces spread over the three members");
}

#[test]
fn logs_without_a_trace_id_route_by_service() {
    let logs = OtlpRequest::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("checkout"),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(), LogRecord::default()],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    let ring = ring();
    let owner = ring.owner(b"checkout").unwrap_or_default().to_string();
    for member in ring.members() {
        let got = share(&logs, &ring, member, RoutingKey::TraceId).map(|request| request.item_count());
        assert_eq!(got, (member == &owner).then_some(2), "{member}");
    }
}

#[test]
fn config_needs_one_resolver_and_no_endpoint_and_builds_each_backend() {
    let parse = |yaml: serde_json::Value| -> LoadBalancingConfig {
        serde_json::from_value(yaml).unwrap_or_else(|error| panic!("{error}"))
    };
    let both = parse(serde_json::json!({
        "protocol": {"otlp": {"endpoint": "http://x:4317"}},
        "resolver": {"static": {"hostnames": ["a:4317", "a:4317"]}, "dns": {"hostname": "samplers"}}
    }));
    let keys: Vec<String> = both.problems().into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys, vec!["resolver", "protocol.otlp.endpoint"]);
    let fixed = parse(serde_json::json!({
        "protocol": {"otlp": {"timeout": "2s", "compression": "none"}},
        "resolver": {"static": {"hostnames": ["a:4317", "a:4317"]}}
    }));
    assert_eq!(fixed.problems(), vec![("resolver.static.hostnames[1]".into(), "a:4317 is listed twice".into())]);
    let backend = fixed.backend("a:4317").unwrap_or_else(|error| panic!("{error}"));
    assert_eq!((backend.endpoint.as_str(), backend.timeout), ("http://a:4317", std::time::Duration::from_secs(2)));
    let localhost =
        parse(serde_json::json!({"protocol": {}, "resolver": {"dns": {"hostname": "localhost", "port": 5317}}}));
    let members = localhost.members().unwrap_or_else(|error| panic!("{error}"));
    assert!(members.contains(&"127.0.0.1:5317".to_string()), "{members:?}");
    let typo = parse(
        serde_json::json!({"protocol": {"otlp": {"timeuot": "2s"}}, "resolver": {"static": {"hostnames": ["a:1"]}}}),
    );
    assert!(typo.problems()[0].1.contains("unknown field `timeuot`"), "{:?}", typo.problems());
}
