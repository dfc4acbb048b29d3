//! The tail-sampling buffer's real heap use against the OTLP bytes it holds (target: at most 1.3x).
//!
//! A counting allocator sees every heap byte the sampler keeps once the requests it read are gone, so
//! this measures memory (not the sampler's own accounting) and does not depend on timing.
use std::alloc::System;

use cap::Cap;
use prost::Message;
use stella_otlp::attributes;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use stella_pipeline::tail_sampling::{Outcome, TailSampler, TailSamplingConfig};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// A deterministic stand-in for random ids and values.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A request shaped like `stella telemetry loadgen`'s: 10 traces of 10 spans, `extra` attributes each.
fn request(number: u64, extra: usize, random: &mut Random) -> ExportTraceServiceRequest {
    let mut spans = Vec::new();
    for _ in 0..10 {
        let trace_id = random.bytes(16);
        let mut parent = Vec::new();
        for index in 0..10 {
            let span_id = random.bytes(8);
            let mut span_attributes = vec![
                attributes::string("http.route", "/checkout"),
                attributes::string("loadgen.index", &index.to_string()),
            ];
            span_attributes.extend((0..extra).map(|n| {
                attributes::string(&format!("attribute.{n}"), &format!("value-{:08x}", random.next() as u32))
            }));
            spans.push(Span {
                trace_id: trace_id.clone(),
                span_id: span_id.clone(),
                parent_span_id: std::mem::replace(&mut parent, span_id),
                name: format!("operation-{index}"),
                kind: 2,
                start_time_unix_nano: 1_700_000_000_000_000_000,
                end_time_unix_nano: 1_700_000_000_001_000_000,
                attributes: span_attributes,
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    attributes::string("service.name", "checkout"),
                    attributes::string("request.id", &number.to_string()),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

/// Heap bytes held per OTLP byte buffered, after `requests` requests that are all still undecided.
fn heap_per_otlp_byte(extra: usize, requests: u64) -> f64 {
    let config: TailSamplingConfig = match serde_saphyr::from_str(
        "decision_wait: 1h\nmax_buffered_bytes: 1000000000\n\
         policies: [{name: all, type: always_sample}]",
    ) {
        Ok(config) => config,
        Err(error) => panic!("{error}"),
    };
    let mut sampler = match TailSampler::new(config, 0) {
        Ok(sampler) => sampler,
        Err(error) => panic!("{error}"),
    };
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut out = Outcome::default();
    let before = ALLOCATOR.allocated();
    let mut otlp_bytes = 0;
    for number in 0..requests {
        let request = request(number, extra, &mut random).encode_to_vec();
        otlp_bytes += request.len();
        if let Err(error) = sampler.ingest(number, &request, 0, &mut out) {
            panic!("{error}");
        }
    }
    drop(out);
    assert_eq!(sampler.buffered_traces() as u64, requests * 10, "nothing was decided yet");
    let held = ALLOCATOR.allocated() - before;
    let ratio = held as f64 / otlp_bytes as f64;
    println!("{extra} extra attributes: {held} heap bytes for {otlp_bytes} OTLP bytes = {ratio:.3}x");
    drop(sampler);
    ratio
}

#[test]
fn buffered_traces_cost_at_most_1_3x_their_otlp_bytes() {
    for (extra, requests) in [(0, 3_000), (8, 2_000), (8, 3_000)] {
        let ratio = heap_per_otlp_byte(extra, requests);
        assert!(ratio <= 1.3, "{extra} extra attributes, {requests} requests: {ratio:.3}x");
    }
}
