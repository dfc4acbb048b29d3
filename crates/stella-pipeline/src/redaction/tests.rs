use proptest::prelude::*;
use stella_metrics::Registry;
use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use stella_otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value};
use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use stella_otlp::proto::metrics::v1::{
    Exemplar, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use stella_otlp::{OtlpRequest, Signal};

use super::*;

const CARD: &str = "4111 1111 1111 1111";
const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl";
const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";

fn string(text: &str) -> Option<AnyValue> {
    Some(AnyValue { value: Some(any_value::Value::StringValue(text.to_string())) })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue { key: key.to_string(), value, ..Default::default() }
}

fn policy(yaml: &str) -> RedactionPolicy {
    match RedactionPolicy::from_yaml("test", yaml) {
        Ok(policy) => policy,
        Err(error) => panic!("{error}"),
    }
}

fn redactor(yaml: &str) -> Redactor {
    match Redactor::new("test", &policy(yaml), Some(b"k3y")) {
        Ok(redactor) => redactor,
        Err(error) => panic!("{error}"),
    }
}

fn detector_policy(detector: Detector) -> Redactor {
    redactor(&format!("allow_all_keys: true\ndetectors: [{}]\nsummary: silent", detector.name()))
}

fn scrub(redactor: &Redactor, text: &str) -> String {
    let mut text = text.to_string();
    redactor.scrub_string(&mut text, "test", &mut Tally::default());
    text
}

#[test]
fn every_detector_masks_what_it_should_and_nothing_else() {
    /// A detector, inputs with what they become, and inputs it must leave alone.
    type Case<'a> = (Detector, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            Detector::Authorization,
            &[
                ("Authorization: Bearer abc.DEF-123_x~", "Authorization: Bearer ****"),
                ("basic dXNlcjpwYXNz", "basic ****"),
            ],
            &["the bearer of bad news", "basically fine"],
        ),
        (Detector::Jwt, &[(JWT, "****"), (&format!("token={JWT};"), "token=****;")], &["eyJ alone", "a.b.c"]),
        (
            Detector::PemPrivateKey,
            &[(PEM, "****"), ("x -----BEGIN RSA PRIVATE KEY-----\nMIIE truncated", "x ****")],
            &["-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", "-----BEGIN CERTIFICATE-----"],
        ),
        (
            Detector::AwsAccessKey,
            &[("key AKIAIOSFODNN7EXAMPLE here", "key **** here"), ("ASIAY34FZKBOKMUTVV7A", "****")],
            &["AKIAIOSFODNN7EXAMPL", "XAKIAIOSFODNN7EXAMPLE1", "akiaiosfodnn7example"],
        ),
        (
            Detector::UrlPassword,
            &[
                ("postgres://app:s3cr3t@db:5432/x", "postgres://app:****@db:5432/x"),
                ("https://:tok@example.com", "https://:****@example.com"),
            ],
            &["https://example.com/a:b@c", "mailto:someone", "https://user@example.com/"],
        ),
        (
            Detector::Email,
            &[
                ("login for jane.doe@example.com failed", "login for **** failed"),
                ("<a+b@sub.example.co.uk>", "<****>"),
            ],
            &["no at sign", "user@localhost", "@handle", "a@b"],
        ),
        (
            Detector::PaymentCard,
            &[
                (CARD, "****"),
                ("card 4111-1111-1111-1111 declined", "card **** declined"),
                ("4111111111111111", "****"),
                ("amex 378282246310005", "amex ****"),
                ("mc 5555555555554444.", "mc ****."),
                ("order 12 4111111111111111", "order 12 ****"),
                ("4111111111111111 4012888888881881", "**** ****"),
            ],
            &[
                "4111111111111112",
                "1700000000000000000",
                "41111111111111111111",
                "order 1234567812345678",
                "9111111111111111",
            ],
        ),
        (
            Detector::Iban,
            &[
                ("pay to DE89 3704 0044 0532 0130 00 today", "pay to **** today"),
                ("GB82WEST12345698765432", "****"),
                ("FR1420041010050500013M02606", "****"),
            ],
            &["DE89 3704 0044 0532 0130 01", "GB82WEST12345698765433", "ABCD EFGH IJKL MNOP"],
        ),
    ];
    for (detector, positives, negatives) in cases {
        let redactor = detector_policy(*detector);
        for (input, expected) in *positives {
            assert_eq!(scrub(&redactor, input), *expected, "{} should mask {input:?}", detector.name());
        }
        for input in *negatives {
            assert_eq!(scrub(&redactor, input), *input, "{} should leave {input:?}", detector.name());
        }
    }
}

#[test]
fn checksums_match_their_definitions() {
    assert!(luhn_valid(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]));
    assert!(!luhn_valid(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]));
    assert!(!luhn_valid(&[]));
    assert!(iban_valid(b"DE89370400440532013000"));
    assert!(!iban_valid(b"DE89370400440532013001"));
    assert!(!iban_valid(b"de89370400440532013000"));
}

#[test]
fn keys_are_allowed_ignored_blocked_or_removed() {
    let redactor = redactor(
        "allowed_keys: [http.route, app.*, api.token]\nblocked_key_patterns: ['(?i)token']\n\
         detectors: [email]\nsummary: debug",
    );
    let mut attributes = vec![
        kv("service.name", string("jane@example.com")),
        kv("http.route", string("/users/{id}")),
        kv("app.owner", string("owner jane@example.com")),
        kv("api.token", string("abc123")),
        kv("user.email", string("jane@example.com")),
        kv("client.address", string("203.0.113.9")),
    ];
    let mut tally = Tally::default();
    let mut record = RecordSummary::default();
    redactor.scrub_attributes(&mut attributes, "span", &mut tally, &mut record);
    redactor.summarize(record, &mut attributes);
    let got: Vec<(String, String)> = attributes
        .iter()
        .map(|attribute| {
            let value = match attribute.value.as_ref().and_then(|value| value.value.as_ref()) {
                Some(any_value::Value::StringValue(text)) => text.clone(),
                Some(any_value::Value::IntValue(number)) => number.to_string(),
                other => format!("{other:?}"),
            };
            (attribute.key.clone(), value)
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("service.name", "jane@example.com"),
        ("http.route", "/users/{id}"),
        ("app.owner", "owner ****"),
        ("api.token", "****"),
        ("redaction.redacted.keys", "client.address,user.email"),
        ("redaction.redacted.count", "2"),
        ("redaction.masked.keys", "api.token,app.owner"),
        ("redaction.masked.count", "2"),
    ]
    .iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect();
    assert_eq!(got, expected);
    let mut counts = tally.counts().to_vec();
    counts.sort();
    assert_eq!(counts, vec![(("span", "blocked_key"), 1), (("span", "email"), 1), (("span", "key_not_allowed"), 2)]);
}

#[test]
fn allowed_values_win_and_blocked_values_mask_only_their_match() {
    let redactor = redactor(
        "allow_all_keys: true\ndetectors: [email]\nblocked_values: ['order-[0-9]+']\n\
         allowed_values: ['[a-z.]+@stella\\.example']\nsummary: silent",
    );
    assert_eq!(scrub(&redactor, "ops@stella.example and jane@example.com"), "ops@stella.example and ****");
    assert_eq!(scrub(&redactor, "see order-1234 now"), "see **** now");
}

#[test]
fn hmac_hashing_keeps_equal_values_joinable_and_needs_a_key() {
    let yaml = "allow_all_keys: true\ndetectors: [email]\nhash_function: hmac-sha256\nsummary: silent";
    let redactor = redactor(yaml);
    let first = scrub(&redactor, "a jane@example.com");
    let second = scrub(&redactor, "b jane@example.com");
    let other = scrub(&redactor, "a joe@example.com");
    assert!(first.starts_with("a hmac-sha256:") && !first.contains("jane"), "{first}");
    assert_eq!(first[2..], second[2..]);
    assert_ne!(first, other);
    let error = Redactor::new("p", &policy(yaml), None).err().map(|error| error.to_string()).unwrap_or_default();
    assert!(error.contains("hash_key_env"), "{error}");
}

#[test]
fn redact_all_types_checks_numbers_as_strings() {
    let value = || Some(AnyValue { value: Some(any_value::Value::IntValue(4_111_111_111_111_111)) });
    for (all_types, expected) in [(false, value()), (true, string("****"))] {
        let redactor =
            redactor(&format!("allow_all_keys: true\ndetectors: [payment_card]\nredact_all_types: {all_types}"));
        let mut attributes = vec![kv("payment.card", value())];
        redactor.scrub_attributes(&mut attributes, "span", &mut Tally::default(), &mut RecordSummary::default());
        assert_eq!(attributes[0].value, expected, "redact_all_types: {all_types}");
    }
}

#[test]
fn invalid_patterns_and_unknown_fields_are_named() {
    let error = Redactor::new("p", &policy("blocked_values: ['(unclosed']"), None).err().map(|e| e.to_string());
    assert!(error.as_deref().is_some_and(|e| e.contains("blocked_values") && e.contains("(unclosed")), "{error:?}");
    let error = RedactionPolicy::from_yaml("p", "allowed_kyes: [a]").err().map(|e| e.to_string());
    assert!(error.as_deref().is_some_and(|e| e.contains("allowed_kyes")), "{error:?}");
    let error = RedactionPolicy::from_yaml("p", "detectors: [ssn]").err().map(|e| e.to_string());
    assert!(error.as_deref().is_some_and(|e| e.contains("ssn")), "{error:?}");
}

#[test]
fn built_in_profiles_parse_compile_and_have_stable_digests() {
    for (name, _) in BUILT_IN_PROFILES {
        let policy = match RedactionPolicy::built_in(name) {
            Some(Ok(policy)) => policy,
            other => panic!("{name}: {other:?}"),
        };
        assert!(Redactor::new(name, &policy, None).is_ok(), "{name} compiles");
        assert_eq!(policy.detectors.len(), Detector::ALL.len(), "{name} switches every detector on");
        let digest = policy.digest();
        assert!(digest.starts_with("sha256:") && digest.len() == 7 + 64, "{digest}");
        assert_eq!(digest, policy.clone().digest());
    }
    let mut changed = policy("allowed_keys: [a]");
    let before = changed.digest();
    changed.allowed_keys.push("b".into());
    assert_ne!(before, changed.digest());
    assert!(RedactionPolicy::built_in("nope").is_none());
}

/// A traces request with a secret in every place a string can hide.
fn traces_with_secrets(secret: &str) -> OtlpRequest {
    let span = Span {
        name: format!("GET {secret}"),
        trace_state: format!("v={secret}"),
        attributes: vec![kv("exception.message", string(secret)), kv("user.email", string(secret))],
        events: vec![span::Event {
            name: format!("exception {secret}"),
            attributes: vec![kv("exception.message", string(&format!("card {secret} declined")))],
            ..Default::default()
        }],
        links: vec![span::Link { attributes: vec![kv("code.function", string(secret))], ..Default::default() }],
        status: Some(Status { message: format!("failed for {secret}"), code: 2 }),
        ..Default::default()
    };
    OtlpRequest::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", string("checkout")), kv("host.name", string(secret))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: secret.to_string(),
                    attributes: vec![kv("otel.scope", string(secret))],
                    ..Default::default()
                }),
                spans: vec![span],
                schema_url: secret.to_string(),
            }],
            schema_url: String::new(),
        }],
    })
}

fn logs_with_secrets(secret: &str) -> OtlpRequest {
    let body = AnyValue {
        value: Some(any_value::Value::KvlistValue(KeyValueList {
            values: vec![
                kv("message", string(&format!("payment failed for {secret}"))),
                kv(
                    "nested",
                    Some(AnyValue {
                        value: Some(any_value::Value::ArrayValue(ArrayValue {
                            values: vec![string(secret).unwrap_or_default()],
                        })),
                    }),
                ),
            ],
        })),
    };
    OtlpRequest::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource::default()),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(body),
                    event_name: secret.to_string(),
                    attributes: vec![kv("exception.message", string(secret))],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

fn metrics_with_secrets(secret: &str) -> OtlpRequest {
    let point = NumberDataPoint {
        attributes: vec![kv("http.route", string(secret))],
        exemplars: vec![Exemplar { filtered_attributes: vec![kv("http.route", string(secret))], ..Default::default() }],
        value: Some(number_data_point::Value::AsInt(1)),
        ..Default::default()
    };
    OtlpRequest::Metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource::default()),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "orders".into(),
                    description: secret.to_string(),
                    data: Some(metric::Data::Gauge(Gauge { data_points: vec![point] })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

fn default_stage(registry: &Registry) -> Redaction {
    let policy = match RedactionPolicy::built_in("default") {
        Some(Ok(policy)) => policy,
        other => panic!("{other:?}"),
    };
    let counter = registry.counter(stella_metrics::names::REDACTIONS, "Redactions.", &["signal", "field", "rule"]);
    match Redaction::new("redaction".into(), "default", &policy, None, counter) {
        Ok(stage) => stage,
        Err(error) => panic!("{error}"),
    }
}

/// The request after the stage processed it as a batch.
fn through(stage: &Redaction, request: OtlpRequest) -> OtlpRequest {
    let (ack, _receiver) = stella_otlp::Ack::new();
    let mut batch = stella_otlp::Batch::new("default".into(), request, ack);
    assert!(Stage::process(stage, &mut batch).is_empty(), "redaction drops nothing");
    std::mem::replace(&mut batch.request, OtlpRequest::empty(Signal::Logs))
}

/// Every string of a request, as its protobuf-debug form would show it.
fn debug_text(request: &OtlpRequest) -> String {
    format!("{request:?}")
}

#[test]
fn the_default_profile_reaches_every_string_of_every_signal() {
    let registry = Registry::default();
    let stage = default_stage(&registry);
    let secrets = ["jane.doe@example.com", CARD, JWT, "AKIAIOSFODNN7EXAMPLE", "DE89 3704 0044 0532 0130 00"];
    for secret in secrets {
        for request in [traces_with_secrets(secret), logs_with_secrets(secret), metrics_with_secrets(secret)] {
            let signal = request.signal();
            let request = through(&stage, request);
            let text = debug_text(&request);
            assert!(!text.contains(secret), "{secret} survived in {signal:?}: {text}");
            assert!(text.contains(stage.profile()), "{signal:?} records the profile");
        }
    }
    let mut request = traces_with_secrets(CARD);
    stage.redact(&mut request);
    let text = debug_text(&request);
    assert!(text.contains("checkout"), "service.name survives");
    assert!(!text.contains("user.email"), "a key outside the allow-list is removed");
    let exposition = registry.encode();
    for needle in [
        "telemetry_redactions_total{signal=\"traces\",field=\"span_link\",rule=\"payment_card\"}",
        "telemetry_redactions_total{signal=\"traces\",field=\"status_message\",rule=\"payment_card\"}",
        "telemetry_redactions_total{signal=\"traces\",field=\"span\",rule=\"key_not_allowed\"}",
        "telemetry_redactions_total{signal=\"logs\",field=\"log_body\",rule=\"email\"}",
        "telemetry_redactions_total{signal=\"metrics\",field=\"exemplar\",rule=\"iban\"}",
    ] {
        assert!(exposition.contains(needle), "missing {needle} in {exposition}");
    }
}

/// Strings the detectors must find, built from random parts.
fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        ("[a-z]{1,8}", "[a-z]{1,8}", "[a-z]{2,4}").prop_map(|(user, host, tld)| format!("{user}@{host}.{tld}")),
        "[A-Za-z0-9_-]{4,20}".prop_map(|payload| format!("eyJhbGciOiJub25lIn0.{payload}.sig")),
        "[A-Z0-9]{16}".prop_map(|rest| format!("AKIA{rest}")),
        prop::sample::select(vec![CARD, "5555 5555 5555 4444", "378282246310005", "6011111111111117"])
            .prop_map(str::to_string),
        "[A-Za-z0-9]{8,24}".prop_map(|token| format!("Bearer {token}")),
        ("[a-z]{1,6}", "[A-Za-z0-9]{1,12}").prop_map(|(user, pass)| format!("https://{user}:{pass}@example.net/")),
    ]
}

/// Random strings that may or may not hold a secret, with noise around it.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,24}",
        ("[ -~]{0,12}", secret(), "[ -~]{0,12}")
            .prop_map(|(before, secret, after)| format!("{before} {secret} {after}")),
    ]
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        text().prop_map(|text| AnyValue { value: Some(any_value::Value::StringValue(text)) }),
        any::<i64>().prop_map(|number| AnyValue { value: Some(any_value::Value::IntValue(number)) }),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|values| AnyValue { value: Some(any_value::Value::ArrayValue(ArrayValue { values })) }),
            prop::collection::vec(("[a-z.]{1,10}", inner), 0..4).prop_map(|entries| AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: entries.into_iter().map(|(key, value)| kv(&key, Some(value))).collect(),
                })),
            }),
        ]
    })
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    let key = prop_oneof![
        prop::sample::select(vec!["exception.message", "http.route", "service.version", "stella.note", "user.email"])
            .prop_map(str::to_string),
        "[a-z]{1,6}\\.[a-z]{1,6}",
    ];
    prop::collection::vec((key, any_value()), 0..5)
        .prop_map(|entries| entries.into_iter().map(|(key, value)| kv(&key, Some(value))).collect())
}

fn random_policy() -> impl Strategy<Value = RedactionPolicy> {
    (any::<bool>(), any::<bool>(), prop::sample::subsequence(Detector::ALL.to_vec(), 1..=Detector::ALL.len())).prop_map(
        |(allow_all_keys, redact_all_types, detectors)| RedactionPolicy {
            allow_all_keys,
            allowed_keys: vec!["exception.*".into(), "http.route".into(), "stella.*".into()],
            detectors,
            redact_all_types,
            ..policy("{}")
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For random data and random policies, no string a switched-on detector matches survives anywhere
    /// (except in the ignored keys, which pass untouched by definition).
    #[test]
    fn no_detected_string_survives(
        policy in random_policy(),
        span_attributes in attributes(),
        event_attributes in attributes(),
        link_attributes in attributes(),
        names in prop::collection::vec(text(), 3),
        body in any_value(),
    ) {
        let redactor = Redactor::new("random", &policy, None).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let span = Span {
            name: names[0].clone(),
            attributes: span_attributes,
            events: vec![span::Event { name: names[1].clone(), attributes: event_attributes, ..Default::default() }],
            links: vec![span::Link { attributes: link_attributes, ..Default::default() }],
            status: Some(Status { message: names[2].clone(), code: 2 }),
            ..Default::default()
        };
        let mut traces = vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
            ..Default::default()
        }];
        redactor.redact_traces(&mut traces, &mut Tally::default());
        let mut logs = vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord { body: Some(body), ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        }];
        redactor.redact_logs(&mut logs, &mut Tally::default());
        let output = format!("{traces:?} {logs:?}");
        let checker = redactor_for_check(&policy);
        // Re-running the detectors over the output finds nothing left to mask.
        let mut strings = Vec::new();
        collect_strings(&traces, &logs, &mut strings);
        for mut text in strings {
            let before = text.clone();
            let changed = checker.scrub_string(&mut text, "check", &mut Tally::default());
            prop_assert!(!changed, "{before:?} still holds a secret; output {output}");
        }
    }
}

fn redactor_for_check(policy: &RedactionPolicy) -> Redactor {
    let checker = RedactionPolicy { allow_all_keys: true, redact_all_types: policy.redact_all_types, ..policy.clone() };
    match Redactor::new("check", &checker, None) {
        Ok(redactor) => redactor,
        Err(error) => panic!("{error}"),
    }
}

fn collect_strings(traces: &[ResourceSpans], logs: &[ResourceLogs], out: &mut Vec<String>) {
    fn value(value: &AnyValue, out: &mut Vec<String>) {
        match &value.value {
            Some(any_value::Value::StringValue(text)) => out.push(text.clone()),
            Some(any_value::Value::ArrayValue(array)) => array.values.iter().for_each(|item| value_of(item, out)),
            Some(any_value::Value::KvlistValue(list)) => attributes(&list.values, out),
            _ => {}
        }
    }
    fn value_of(item: &AnyValue, out: &mut Vec<String>) {
        value(item, out);
    }
    fn attributes(list: &[KeyValue], out: &mut Vec<String>) {
        for attribute in list {
            if let Some(item) = &attribute.value {
                value(item, out);
            }
        }
    }
    for span in traces.iter().flat_map(|group| &group.scope_spans).flat_map(|scope| &scope.spans) {
        out.push(span.name.clone());
        out.extend(span.status.iter().map(|status| status.message.clone()));
        attributes(&span.attributes, out);
        for event in &span.events {
            out.push(event.name.clone());
            attributes(&event.attributes, out);
        }
        for link in &span.links {
            attributes(&link.attributes, out);
        }
    }
    for log in logs.iter().flat_map(|group| &group.scope_logs).flat_map(|scope| &scope.log_records) {
        if let Some(body) = &log.body {
            value(body, out);
        }
        attributes(&log.attributes, out);
    }
}

#[test]
fn the_stage_counts_by_signal_field_and_rule() {
    let registry = Registry::default();
    let stage = default_stage(&registry);
    let (ack, _receiver) = stella_otlp::Ack::new();
    let mut batch = stella_otlp::Batch::new("default".into(), logs_with_secrets("jane@example.com"), ack);
    assert!(Stage::process(&stage, &mut batch).is_empty());
    assert_eq!(batch.request.signal(), Signal::Logs);
    assert!(registry.encode().contains("telemetry_redactions_total{signal=\"logs\",field=\"log\",rule=\"email\"} 1"));
}
