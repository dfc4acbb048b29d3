//! `loadbalancing`: three real processes, one router and two samplers. Every span of a trace lands on
//! the same sampler, the one the consistent-hash ring names; a sampler that is down holds back only its
//! own share (its own cursor and backlog) and gets it once back; removing a backend moves only its share.
use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::common::{Stella, file_pipelines, string_attribute};
use stella_export::loadbalancing::Ring;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use stella_otlp::{OtlpRequest, Signal};

/// One span of each of `traces` traces of batch `batch`, span number `round`.
fn spans(batch: u8, round: u8, traces: u8) -> OtlpRequest {
    let spans = (0..traces)
        .map(|trace| Span {
            trace_id: [[batch, trace].as_slice(), &[7u8; 14]].concat(),
            span_id: vec![batch, trace, round, 1, 1, 1, 1, 1],
            name: format!("op-{round}"),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_100_000_000,
            ..Default::default()
        })
        .collect();
    OtlpRequest::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attribute("service.name", "router-test")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    })
}

/// Trace id -> spans received, for one sampler.
fn received(sampler: &Stella) -> BTreeMap<Vec<u8>, usize> {
    let mut traces = BTreeMap::new();
    for request in sampler.exported(Signal::Traces) {
        let OtlpRequest::Traces(request) = request else { continue };
        for span in request.resource_spans.iter().flat_map(|group| &group.scope_spans).flat_map(|scope| &scope.spans) {
            *traces.entry(span.trace_id.clone()).or_default() += 1;
        }
    }
    traces
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn router_config(backends: &[String]) -> String {
    let hostnames: Vec<String> = backends.iter().map(|backend| format!("\"{backend}\"")).collect();
    format!(
        "exporters:\n  loadbalancing:\n    protocol: {{otlp: {{timeout: 5s}}}}\n    resolver: {{static: {{hostnames: [{}]}}}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [], exporters: [loadbalancing]}}\n    metrics: null\n    logs: null\n",
        hostnames.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_a_trace_meet_on_one_sampler_and_a_down_or_removed_backend_moves_only_its_share() {
    let mut samplers = [Stella::start(&file_pipelines("")), Stella::start(&file_pipelines(""))];
    let names: Vec<String> = samplers.iter().map(|sampler| format!("127.0.0.1:{}", sampler.grpc)).collect();
    let mut router = Stella::start(&router_config(&names));
    let ring = Ring::new(names.clone());

    // Three rounds of one span for each of 40 traces, from three separate requests.
    for round in 0..3 {
        assert_eq!(router.post(&spans(1, round, 40)).await.0, 200);
    }
    wait_for("120 spans on the samplers", || {
        samplers.iter().map(|s| received(s).values().sum::<usize>()).sum::<usize>() == 120
    })
    .await;
    let mut owners = BTreeMap::new();
    for (index, sampler) in samplers.iter().enumerate() {
        for (trace, count) in received(sampler) {
            assert_eq!(count, 3, "all three spans of a trace on one sampler");
            assert_eq!(
                ring.owner(&trace),
                Some(names[index].as_str()),
                "the ring's choice, as any instance computes it"
            );
            assert!(owners.insert(trace, index).is_none(), "a trace on two samplers");
        }
    }
    let used: BTreeSet<usize> = owners.values().copied().collect();
    assert_eq!(used.len(), 2, "both samplers get a share");

    // Sampler 1 down: sampler 0 still gets its share at once; sampler 1 gets its own once it is back.
    samplers[1].terminate();
    let before: Vec<usize> = samplers.iter().map(|s| received(s).values().sum()).collect();
    assert_eq!(router.post(&spans(2, 0, 40)).await.0, 200);
    let share_of = |index: usize| {
        (0..40u8)
            .filter(|trace| ring.owner(&[[2u8, *trace].as_slice(), &[7u8; 14]].concat()) == Some(names[index].as_str()))
            .count()
    };
    wait_for("sampler 0's share while sampler 1 is down", || {
        received(&samplers[0]).values().sum::<usize>() == before[0] + share_of(0)
    })
    .await;
    samplers[1].spawn();
    assert_eq!(
        samplers[1].grpc,
        names[1].rsplit(':').next().and_then(|port| port.parse().ok()).unwrap_or(0),
        "same port"
    );
    wait_for("sampler 1's backlog after its restart", || {
        received(&samplers[1]).values().sum::<usize>() == before[1] + share_of(1)
    })
    .await;

    // Sampler 1 removed (a reload): its share moves to sampler 0; sampler 0's traces stay where they were.
    std::fs::write(
        &router.config_path,
        common::config_with_ports(router.grpc, router.http, router.api, &router_config(&names[..1])),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let reload = reqwest::Client::new().post(router.api_url("/telemetry/config/reload")).send().await;
    assert_eq!(reload.map(|response| response.status().as_u16()).unwrap_or(0), 200);
    let counts: Vec<usize> = samplers.iter().map(|s| received(s).values().sum()).collect();
    assert_eq!(router.post(&spans(3, 0, 40)).await.0, 200);
    wait_for("every new trace on sampler 0", || received(&samplers[0]).values().sum::<usize>() == counts[0] + 40).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received(&samplers[1]).values().sum::<usize>(), counts[1], "a removed backend gets nothing new");
    assert!(router.terminate().success());
    for sampler in &mut samplers {
        assert!(sampler.terminate().success());
    }
}
