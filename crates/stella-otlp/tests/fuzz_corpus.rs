#![allow(clippy::unwrap_used)]
//! Replays the fuzz corpora (`fuzz/corpus/otlp_*`) through the fuzz target bodies, so every saved input
//! (seeds and any crash the fuzzer ever found) keeps being checked by `cargo test`.
use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display())) {
        let path = entry.unwrap().path();
        body(&std::fs::read(&path).unwrap());
        count += 1;
    }
    count
}

#[test]
fn the_protobuf_corpus_holds_every_invariant() {
    assert!(replay("otlp_protobuf", stella_otlp::fuzzing::otlp_protobuf) >= 3);
}

#[test]
fn the_json_corpus_holds_every_invariant() {
    assert!(replay("otlp_json", stella_otlp::fuzzing::otlp_json) >= 3);
    for truncated in [&b"{\"resourceSpans\":[{"[..], b"[]", b"{\"resourceSpans\":\"x\"}", b"\xff\xfe"] {
        stella_otlp::fuzzing::otlp_json(truncated);
    }
}

/// Found by the corpus replay: without serde_json's `float_roundtrip`, a double such as a histogram sum
/// came back from OTLP/JSON one unit in the last place off.
#[test]
fn doubles_survive_json_exactly() {
    let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":[{"asDouble":91.61726632806925}]}}]}]}]}"#;
    let request = stella_otlp::json::decode(stella_otlp::Signal::Metrics, body).unwrap();
    let stella_otlp::OtlpRequest::Metrics(metrics) = &request else { panic!("not metrics") };
    let point = &metrics.resource_metrics[0].scope_metrics[0].metrics[0];
    let Some(stella_otlp::proto::metrics::v1::metric::Data::Gauge(gauge)) = &point.data else { panic!("not a gauge") };
    assert_eq!(
        gauge.data_points[0].value,
        Some(stella_otlp::proto::metrics::v1::number_data_point::Value::AsDouble(91.61726632806925))
    );
    let again = stella_otlp::json::decode(stella_otlp::Signal::Metrics, &stella_otlp::json::encode(&request)).unwrap();
    assert_eq!(again, request);
}
