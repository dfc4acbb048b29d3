use std::collections::{BTreeMap, BTreeSet};

use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use prost::Message;

use super::*;

fn config(yaml: &str) -> TailSamplingConfig {
    match serde_saphyr::from_str(yaml) {
        Ok(config) => config,
        Err(error) => panic!("{error}"),
    }
}

fn sampler(yaml: &str) -> TailSampler {
    match TailSampler::new(config(yaml), 0) {
        Ok(sampler) => sampler,
        Err(error) => panic!("{error}"),
    }
}

fn trace_id(n: u64) -> Vec<u8> {
    // Spread like random ids: the hash of n.
    let mut id = [0u8; 16];
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1234_5678;
    for chunk in id.chunks_mut(8) {
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9).rotate_left(17) ^ n;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    id.to_vec()
}

/// Span `index` of trace `trace` (index 0 is the root), `duration_ms` long, optionally an error.
fn span(trace: u64, index: u64, error: bool, duration_ms: u64) -> Span {
    Span {
        trace_id: trace_id(trace),
        span_id: (trace * 1000 + index + 1).to_le_bytes().to_vec(),
        parent_span_id: if index == 0 { Vec::new() } else { (trace * 1000 + 1).to_le_bytes().to_vec() },
        name: format!("op-{index}"),
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 1_000_000_000 + duration_ms * 1_000_000,
        status: Some(Status { code: if error { 2 } else { 0 }, message: String::new() }),
        ..Default::default()
    }
}

fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue { value: Some(any_value::Value::StringValue(service.into())) }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

/// Feeds `request` (encoded, as the log holds it) to `sampler`.
fn feed(sampler: &mut TailSampler, seq: u64, request: &ExportTraceServiceRequest, now_ms: u64, out: &mut Outcome) {
    if let Err(error) = sampler.ingest(seq, &request.encode_to_vec(), now_ms, out) {
        panic!("{error}");
    }
}

/// Kept spans as (trace id, span id, policy).
fn kept(outcome: &Outcome) -> BTreeSet<(Vec<u8>, Vec<u8>, String)> {
    let kept = match ExportTraceServiceRequest::decode(outcome.kept.as_slice()) {
        Ok(kept) => kept,
        Err(error) => panic!("the kept spans do not decode: {error}"),
    };
    kept.resource_spans
        .iter()
        .flat_map(|group| &group.scope_spans)
        .flat_map(|scope| &scope.spans)
        .map(|span| {
            let policy = span
                .attributes
                .iter()
                .find(|attribute| attribute.key == POLICY_ATTRIBUTE)
                .and_then(|attribute| match attribute.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(name) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            (span.trace_id.clone(), span.span_id.clone(), policy)
        })
        .collect()
}

const ERRORS_AND_TEN_PERCENT: &str = "
decision_wait: 10s
policies:
  - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
  - {name: ten-percent, type: probabilistic, probabilistic: {sampling_percentage: 10}}
";

#[test]
fn errors_are_always_kept_the_rest_at_the_rate_and_traces_whole() {
    let mut sampler = sampler(ERRORS_AND_TEN_PERCENT);
    let traces = 20_000u64;
    let mut out = Outcome::default();
    for trace in 0..traces {
        // 1% of traces have an error span, in their last span.
        let error = trace % 100 == 7;
        let spans = (0..4).map(|index| span(trace, index, error && index == 3, 5)).collect();
        feed(&mut sampler, trace, &request("checkout", spans), 0, &mut out);
    }
    sampler.decide_due(10_000, &mut out);
    assert_eq!(sampler.buffered_traces(), 0);
    let kept = kept(&out);
    let mut per_trace: BTreeMap<Vec<u8>, (usize, BTreeSet<String>)> = BTreeMap::new();
    for (trace, _, policy) in &kept {
        let entry = per_trace.entry(trace.clone()).or_default();
        entry.0 += 1;
        entry.1.insert(policy.clone());
    }
    assert!(per_trace.values().all(|(spans, policies)| *spans == 4 && policies.len() == 1), "traces are kept whole");
    for trace in (0..traces).filter(|trace| trace % 100 == 7) {
        assert_eq!(per_trace.get(&trace_id(trace)).map(|(_, p)| p.iter().next().cloned()), Some(Some("errors".into())));
    }
    let others = per_trace.values().filter(|(_, policies)| policies.contains("ten-percent")).count() as f64;
    let candidates = (traces - traces / 100) as f64;
    // 10% of 19 800 is 1 980 with a standard deviation of ~42; 5 sigma either way.
    assert!((others - candidates * 0.1).abs() < 5.0 * (candidates * 0.1 * 0.9).sqrt(), "kept {others} of {candidates}");
    let dropped = out.dropped_spans.get("not_sampled").copied().unwrap_or(0);
    assert_eq!(dropped + out.kept_spans, traces * 4, "every span is kept or counted as dropped");
}

#[test]
fn two_instances_decide_alike_whatever_the_order() {
    let mut first = sampler(ERRORS_AND_TEN_PERCENT);
    let mut second = sampler(ERRORS_AND_TEN_PERCENT);
    let (mut a, mut b) = (Outcome::default(), Outcome::default());
    for trace in 0..2000u64 {
        feed(&mut first, trace, &request("svc", vec![span(trace, 0, trace % 50 == 0, 1)]), 0, &mut a);
    }
    for trace in (0..2000u64).rev() {
        feed(&mut second, trace, &request("svc", vec![span(trace, 0, trace % 50 == 0, 1)]), 5, &mut b);
    }
    first.decide_due(20_000, &mut a);
    second.decide_due(20_000, &mut b);
    assert!(!kept(&a).is_empty());
    assert_eq!(kept(&a), kept(&b));
}

#[test]
fn traces_wait_for_their_decision_and_the_root_can_shorten_it() {
    let mut sampler = sampler(
        "decision_wait: 10s\ndecision_wait_after_root_received: 1s\npolicies: [{name: all, type: always_sample}]",
    );
    let mut out = Outcome::default();
    feed(&mut sampler, 0, &request("svc", vec![span(1, 1, false, 1)]), 0, &mut out);
    feed(&mut sampler, 1, &request("svc", vec![span(2, 1, false, 1)]), 0, &mut out);
    sampler.decide_due(9_999, &mut out);
    assert_eq!(out.kept_spans, 0, "nothing is due before decision_wait");
    feed(&mut sampler, 2, &request("svc", vec![span(2, 0, false, 1)]), 5_000, &mut out);
    sampler.decide_due(5_999, &mut out);
    assert_eq!(out.kept_spans, 0);
    sampler.decide_due(6_000, &mut out);
    assert_eq!(out.kept_spans, 2, "trace 2 is decided 1s after its root");
    sampler.decide_due(10_000, &mut out);
    assert_eq!(out.kept_spans, 3, "trace 1 at its decision_wait");
}

#[test]
fn late_spans_follow_the_cached_decision() {
    let mut sampler = sampler("policies: [{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}]");
    let mut out = Outcome::default();
    feed(&mut sampler, 0, &request("svc", vec![span(1, 0, true, 1), span(2, 0, false, 1)]), 0, &mut out);
    sampler.decide_due(10_000, &mut out);
    assert_eq!(out.kept_spans, 1);
    let mut late = Outcome::default();
    // A late error span of the dropped trace does not revive it; a late span of the kept trace follows.
    feed(&mut sampler, 1, &request("svc", vec![span(1, 5, false, 1), span(2, 5, true, 1)]), 20_000, &mut late);
    assert_eq!(
        kept(&late).into_iter().map(|(trace, _, policy)| (trace, policy)).collect::<Vec<_>>(),
        vec![(trace_id(1), "errors".to_string())]
    );
    assert_eq!(late.dropped_spans.get("late_span_of_dropped_trace"), Some(&1));
    assert_eq!(sampler.buffered_traces(), 0, "a trace never gets a second decision while cached");
}

#[test]
fn the_memory_budget_holds_under_never_ending_traces_and_stress_relief_comes_and_goes() {
    let mut sampler = sampler(
        "decision_wait: 30s\nmax_buffered_bytes: 200000\nstress_relief_percentage: 10\n\
         policies: [{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}]",
    );
    let mut out = Outcome::default();
    let mut max_seen = 0;
    let mut stressed_at = None;
    for seq in 0..5_000u64 {
        // Every request opens new traces that never end within the wait.
        let spans = (0..10).map(|index| span(seq * 10 + index, 1, false, 1)).collect();
        feed(&mut sampler, seq, &request("svc", spans), seq, &mut out);
        max_seen = max_seen.max(sampler.buffered_bytes());
        if out.stress_changed == Some(true) && stressed_at.is_none() {
            stressed_at = Some(seq);
        }
    }
    assert!(max_seen <= 200_000, "the budget holds: {max_seen}");
    assert!(out.early_decisions > 0);
    assert!(stressed_at.is_some() && sampler.stressed(), "sustained pressure turns stress relief on");
    let under_stress = out.dropped_spans.get("stress_relief").copied().unwrap_or(0);
    assert!(under_stress > 0, "{:?}", out.dropped_spans);
    let mut calm = Outcome::default();
    sampler.decide_due(60_000, &mut calm);
    assert_eq!(calm.stress_changed, Some(false), "stress relief ends once the buffer drained");
    assert!(!sampler.stressed());
}

#[test]
fn incident_mode_keeps_its_services_at_once_and_at_decision() {
    let mut sampler = sampler("policies: [{name: none, type: probabilistic, probabilistic: {sampling_percentage: 0}}]");
    let mut out = Outcome::default();
    feed(&mut sampler, 0, &request("checkout", vec![span(1, 0, false, 1)]), 0, &mut out);
    feed(&mut sampler, 1, &request("search", vec![span(2, 0, false, 1)]), 0, &mut out);
    sampler.set_incident(IncidentScope::Services(["checkout".to_string()].into()), 100, &mut out);
    assert_eq!(
        kept(&out).into_iter().map(|(trace, _, policy)| (trace, policy)).collect::<Vec<_>>(),
        vec![(trace_id(1), INCIDENT_POLICY.to_string())],
        "the buffered checkout trace is kept at once"
    );
    feed(&mut sampler, 2, &request("checkout", vec![span(3, 0, false, 1)]), 200, &mut out);
    sampler.decide_due(20_000, &mut out);
    assert_eq!(out.kept_traces.get(INCIDENT_POLICY), Some(&2));
    assert_eq!(out.dropped_spans.get("not_sampled"), Some(&1), "search is sampled as usual");
    sampler.set_incident(IncidentScope::Off, 20_000, &mut out);
    feed(&mut sampler, 3, &request("checkout", vec![span(4, 0, false, 1)]), 20_000, &mut out);
    sampler.decide_due(40_000, &mut out);
    assert_eq!(out.dropped_spans.get("not_sampled"), Some(&2), "back to the policies once off");
}

#[test]
fn every_policy_type_decides_as_documented() {
    let yaml = "
policies:
  - {name: slow, type: latency, latency: {threshold_ms: 500}}
  - {name: vip, type: string_attribute, string_attribute: {key: tier, values: ['gold|platinum'], enabled_regex_matching: true}}
  - {name: big-order, type: numeric_attribute, numeric_attribute: {key: amount, min_value: 1000}}
  - {name: wide, type: span_count, span_count: {min_spans: 5}}
  - name: no-health
    type: drop
    drop: {drop_sub_policy: [{name: health, type: string_attribute, string_attribute: {key: http.route, values: [/healthz]}}]}
  - name: slow-checkout
    type: and
    and: {and_sub_policy: [{name: s, type: latency, latency: {threshold_ms: 100}}, {name: c, type: service_rates, service_rates: {checkout: 100}}]}
";
    let mut sampler = sampler(yaml);
    let attribute = |key: &str, value: any_value::Value| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    };
    let with = |mut span: Span, attributes: Vec<KeyValue>| {
        span.attributes = attributes;
        span
    };
    let cases: Vec<(&str, Vec<Span>, Option<&str>)> = vec![
        ("svc", vec![span(1, 0, false, 600)], Some("slow")),
        (
            "svc",
            vec![with(span(2, 0, false, 1), vec![attribute("tier", any_value::Value::StringValue("gold".into()))])],
            Some("vip"),
        ),
        (
            "svc",
            vec![with(span(3, 0, false, 1), vec![attribute("tier", any_value::Value::StringValue("golden".into()))])],
            None,
        ),
        (
            "svc",
            vec![with(span(4, 0, false, 1), vec![attribute("amount", any_value::Value::IntValue(5000))])],
            Some("big-order"),
        ),
        ("svc", (0..5).map(|index| span(5, index, false, 1)).collect(), Some("wide")),
        (
            "svc",
            vec![with(
                span(6, 0, false, 900),
                vec![attribute("http.route", any_value::Value::StringValue("/healthz".into()))],
            )],
            None,
        ),
        ("checkout", vec![span(7, 0, false, 200)], Some("slow-checkout")),
        ("search", vec![span(8, 0, false, 200)], None),
    ];
    let mut out = Outcome::default();
    for (seq, (service, spans, _)) in cases.iter().enumerate() {
        feed(&mut sampler, seq as u64, &request(service, spans.clone()), 0, &mut out);
    }
    sampler.decide_due(10_000, &mut out);
    let decided: BTreeMap<Vec<u8>, String> = kept(&out).into_iter().map(|(trace, _, policy)| (trace, policy)).collect();
    for (trace, (_, _, expected)) in cases.iter().enumerate() {
        let trace = trace as u64 + 1;
        assert_eq!(decided.get(&trace_id(trace)).map(String::as_str), *expected, "trace {trace}");
    }
    assert_eq!(out.dropped_spans.get("drop_policy"), Some(&1), "the slow health check is dropped");
}

#[test]
fn rate_limits_and_composite_shares_cap_spans_per_second() {
    let mut limited = sampler("policies: [{name: cap, type: rate_limiting, rate_limiting: {spans_per_second: 10}}]");
    let mut out = Outcome::default();
    for trace in 0..10u64 {
        feed(
            &mut limited,
            trace,
            &request("svc", vec![span(trace, 0, false, 1), span(trace, 1, false, 1)]),
            0,
            &mut out,
        );
    }
    limited.decide_due(10_000, &mut out);
    assert_eq!(out.kept_spans, 10, "10 spans per second: five 2-span traces");
    let mut composite = sampler(
        "policies:\n  - name: mix\n    type: composite\n    composite:\n      max_total_spans_per_second: 10\n      policy_order: [errors, rest]\n      composite_sub_policy: [{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}, {name: rest, type: always_sample}]\n      rate_allocation: [{policy: errors, percent: 80}, {policy: rest, percent: 20}]",
    );
    let mut out = Outcome::default();
    for trace in 0..20u64 {
        feed(&mut composite, trace, &request("svc", vec![span(trace, 0, trace < 10, 1)]), 0, &mut out);
    }
    composite.decide_due(10_000, &mut out);
    assert_eq!(out.kept_spans, 10, "8 errors and 2 others");
}

#[test]
fn config_errors_name_the_policy_and_key() {
    for (yaml, wanted) in [
        ("policies: [{name: a, type: always_sample}, {name: a, type: always_sample}]", "policies[1].name"),
        (
            "policies: [{name: p, type: probabilistic, probabilistic: {sampling_percentage: 120}}]",
            "policies[0].probabilistic.sampling_percentage",
        ),
        (
            "policies: [{name: s, type: string_attribute, string_attribute: {key: k, values: ['('], enabled_regex_matching: true}}]",
            "policies[0].string_attribute.values",
        ),
        ("policies: [{name: d, type: drop, drop: {drop_sub_policy: []}}]", "policies[0].drop.drop_sub_policy"),
        (
            "policies: [{name: c, type: composite, composite: {max_total_spans_per_second: 1, policy_order: [x], composite_sub_policy: [{name: yy, type: always_sample}]}}]",
            "policies[0].composite.policy_order[0]",
        ),
    ] {
        let error = TailSampler::new(config(yaml), 0).err().map(|error| error.to_string()).unwrap_or_default();
        assert!(error.starts_with(wanted), "{yaml}: {error}");
    }
}

#[test]
fn the_decision_cache_costs_eight_bytes_per_trace_and_evicts_the_oldest() {
    let mut cache = DecisionCache::new(1000);
    assert!(cache.memory_bytes() <= 1000 * 8 + 1000 / 4 + 8, "{}", cache.memory_bytes());
    for n in 0..500u64 {
        cache.insert(&id16(n), (n % 200) as u8);
    }
    let found = (0..500u64).filter(|n| cache.get(&id16(*n)) == Some((n % 200) as u8)).count();
    assert!(found > 450, "a half-full cache keeps nearly everything: {found}");
    for n in 1000..3000u64 {
        cache.insert(&id16(n), 1);
    }
    let old = (0..1000u64).filter(|n| cache.get(&id16(*n)).is_some()).count();
    assert!(old < 100, "old entries are evicted: {old}");
    assert!(cache.get(&id16(99_999)).is_none());
}

fn id16(n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id.copy_from_slice(&trace_id(n));
    id
}

#[test]
fn checkpoints_round_trip_and_damage_is_an_error() {
    let checkpoint = Checkpoint {
        read_seq: 10,
        replay_seq: 4,
        output_seq: 3,
        keep: (8, vec![(1, 77), (5, 99)]),
        drop: (4, vec![(0, 1)]),
    };
    let bytes = checkpoint.encode();
    assert_eq!(Checkpoint::decode(&bytes).ok(), Some(checkpoint));
    let mut damaged = bytes.clone();
    damaged[12] ^= 1;
    assert!(Checkpoint::decode(&damaged).is_err());
    assert!(Checkpoint::decode(&bytes[..bytes.len() - 3]).is_err());
    assert!(Checkpoint::decode(b"nonsense").is_err());
}

/// Feeds `records` to a sampler one per second; returns the kept spans.
fn run(sampler: &mut TailSampler, records: &[ExportTraceServiceRequest], from: usize, to: usize, out: &mut Outcome) {
    for (seq, record) in records.iter().enumerate().take(to).skip(from) {
        let now = seq as u64 * 1000;
        feed(sampler, seq as u64, record, now, out);
        sampler.decide_due(now, out);
    }
}

#[test]
fn a_restart_replays_the_log_to_the_same_decisions_exactly_once() {
    let yaml = "decision_wait: 3s\npolicies: [{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}, {name: some, type: probabilistic, probabilistic: {sampling_percentage: 30}}]";
    // 40 records; each trace's spans spread over three consecutive records, some late spans after the decision.
    let records: Vec<ExportTraceServiceRequest> = (0..40u64)
        .map(|seq| {
            let spans = (0..3u64)
                .filter(|back| seq >= *back)
                .map(|back| span(seq - back, back, (seq - back) % 7 == 0 && back == 2, 1))
                .chain((seq >= 6).then(|| span(seq - 6, 9, false, 1)))
                .collect();
            request("svc", spans)
        })
        .collect();
    let mut reference = sampler(yaml);
    let mut expected = Outcome::default();
    run(&mut reference, &records, 0, 40, &mut expected);
    reference.decide_all(100_000, &mut expected);

    for crash_at in [5usize, 17, 23] {
        for checkpoint_at in [crash_at.saturating_sub(4), crash_at] {
            let mut first = sampler(yaml);
            let mut before = Outcome::default();
            run(&mut first, &records, 0, checkpoint_at, &mut before);
            let checkpoint = Checkpoint::decode(&first.checkpoint().encode()).ok();
            let mut after_checkpoint = Outcome::default();
            run(&mut first, &records, checkpoint_at, crash_at, &mut after_checkpoint);
            // Crash: the output log holds before + after_checkpoint; buffered traces are lost from memory.
            let mut second = sampler(yaml);
            let replay_from = second.recover(
                checkpoint.as_ref(),
                &ExportTraceServiceRequest::decode(after_checkpoint.kept.as_slice()).unwrap_or_default(),
                crash_at as u64,
            );
            let mut rest = Outcome::default();
            run(&mut second, &records, replay_from as usize, 40, &mut rest);
            second.decide_all(100_000, &mut rest);
            let mut all: Vec<(Vec<u8>, Vec<u8>, String)> = Vec::new();
            for outcome in [&before, &after_checkpoint, &rest] {
                all.extend(kept(outcome));
            }
            let unique: BTreeSet<_> = all.iter().cloned().collect();
            assert_eq!(
                all.len(),
                unique.len(),
                "crash at {crash_at}, checkpoint at {checkpoint_at}: a span was passed on twice"
            );
            assert_eq!(
                unique,
                kept(&expected),
                "crash at {crash_at}, checkpoint at {checkpoint_at}: different decisions"
            );
        }
    }
}

#[test]
fn reconfiguring_keeps_buffered_traces() {
    let mut sampler = sampler("policies: [{name: none, type: probabilistic, probabilistic: {sampling_percentage: 0}}]");
    let mut out = Outcome::default();
    feed(&mut sampler, 0, &request("svc", vec![span(1, 0, false, 1)]), 0, &mut out);
    let version = sampler.policy_version().to_string();
    assert!(sampler.reconfigure(config("policies: [{name: all, type: always_sample}]")).is_ok());
    assert_ne!(sampler.policy_version(), version);
    sampler.decide_due(10_000, &mut out);
    assert_eq!(out.kept_traces.get("all"), Some(&1), "the buffered trace is decided by the new policies");
}

#[test]
fn kept_spans_pass_on_as_logged_with_their_sampling_attributes_replaced() {
    let mut sampler = sampler(ERRORS_AND_TEN_PERCENT);
    let mut error_span = span(7, 0, true, 1);
    let forged = |value: &str| KeyValue {
        key: POLICY_ATTRIBUTE.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    };
    let route = KeyValue {
        key: "http.route".into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue("/pay".into())) }),
        ..Default::default()
    };
    error_span.attributes = vec![forged("forged"), route.clone(), forged("again")];
    let mut logged = request("checkout", vec![error_span.clone()]);
    logged.resource_spans[0].schema_url = "https://opentelemetry.io/schemas/1.30.0".into();
    logged.resource_spans[0].scope_spans[0].scope =
        Some(stella_otlp::proto::common::v1::InstrumentationScope { name: "lib".into(), ..Default::default() });
    logged.resource_spans[0].scope_spans[0].schema_url = "scope-schema".into();
    let mut out = Outcome::default();
    feed(&mut sampler, 0, &logged, 0, &mut out);
    sampler.decide_all(1, &mut out);
    let kept = ExportTraceServiceRequest::decode(out.kept.as_slice()).unwrap();
    let group = &kept.resource_spans[0];
    assert_eq!(group.resource, logged.resource_spans[0].resource);
    assert_eq!(group.schema_url, logged.resource_spans[0].schema_url);
    assert_eq!(group.scope_spans[0].scope, logged.resource_spans[0].scope_spans[0].scope);
    assert_eq!(group.scope_spans[0].schema_url, "scope-schema");
    let passed = &group.scope_spans[0].spans[0];
    let version = sampler.policy_version().to_string();
    let expected_attributes = vec![
        route,
        forged("errors"),
        KeyValue {
            key: POLICY_VERSION_ATTRIBUTE.into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(version)) }),
            ..Default::default()
        },
    ];
    assert_eq!(passed.attributes, expected_attributes, "the forged policies are gone, the route stays");
    assert_eq!(Span { attributes: Vec::new(), ..passed.clone() }, Span { attributes: Vec::new(), ..error_span });
}
