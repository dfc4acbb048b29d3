#![allow(clippy::unwrap_used)] // a benchmark: failing loudly is the point
//! Bundle generation and verification throughput, in MB/s of raw OTLP (issue targets on one core: generation
//! >= 150 MB/s gzip and >= 400 MB/s zstd, verification >= 300 MB/s).
//!
//! The records are real OTLP `ExportTraceServiceRequest`s of 200 spans (~500 bytes each: ids, times, a name
//! from a small set, HTTP attributes), so they compress like production telemetry.
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stella_evidence::{
    BundleHeader, BundleWriter, Compression, Limits, RecordFacts, Signal, SigningKey, TrustStore, Window, verify_bundle,
};
use stella_otlp::OtlpRequest;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

const RECORDS: usize = 160;
const SPANS_PER_RECORD: usize = 200;

/// A deterministic xorshift generator: the same data on every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices[(self.next() % choices.len() as u64) as usize]
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_string())) }),
        ..KeyValue::default()
    }
}

fn number(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(value)) }),
        ..KeyValue::default()
    }
}

fn span(random: &mut Random, start: u64) -> Span {
    let route =
        random.pick(&["/api/cart", "/api/checkout", "/api/products/{id}", "/api/users/{id}/orders", "/healthz"]);
    let method = random.pick(&["GET", "POST", "PUT"]);
    let duration = random.next() % 50_000_000;
    Span {
        trace_id: [random.next().to_le_bytes(), random.next().to_le_bytes()].concat(),
        span_id: random.next().to_le_bytes().to_vec(),
        parent_span_id: random.next().to_le_bytes().to_vec(),
        name: format!("{method} {route}"),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        attributes: vec![
            text("http.request.method", method),
            text("http.route", route),
            text("url.path", &route.replace("{id}", &(random.next() % 100_000).to_string())),
            number(
                "http.response.status_code",
                *[200, 200, 200, 201, 404, 500].get((random.next() % 6) as usize).unwrap(),
            ),
            text("server.address", "checkout.internal.example.com"),
            text(
                "user_agent.original",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0",
            ),
            text("network.peer.address", &format!("10.0.{}.{}", random.next() % 256, random.next() % 256)),
        ],
        status: Some(Status { code: 1, message: String::new() }),
        ..Span::default()
    }
}

/// `RECORDS` encoded requests and their facts.
fn records() -> Vec<(Vec<u8>, RecordFacts)> {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let start = 1_767_225_600_000_000_000;
    (0..RECORDS)
        .map(|index| {
            let first = start + index as u64 * 1_000_000_000;
            let spans = (0..SPANS_PER_RECORD).map(|offset| span(&mut random, first + offset as u64 * 1_000)).collect();
            let request = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![text("service.name", "checkout"), text("deployment.environment", "prod")],
                        ..Resource::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "io.opentelemetry.http".into(),
                            ..Default::default()
                        }),
                        spans,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }],
            };
            let facts = RecordFacts {
                items: SPANS_PER_RECORD as u64,
                min_time_unix_nano: first,
                max_time_unix_nano: first + 60_000_000_000,
            };
            (OtlpRequest::Traces(request).encode_protobuf(), facts)
        })
        .collect()
}

fn write(
    records: &[(Vec<u8>, RecordFacts)],
    key: &SigningKey,
    compression: Compression,
    spool: &std::path::Path,
) -> Vec<u8> {
    let header = BundleHeader {
        tenant: "acme".into(),
        window: Window { start: "2026-01-01T00:00:00Z".parse().unwrap(), end: "2026-01-02T00:00:00Z".parse().unwrap() },
        profile: "forensic".into(),
        redaction_profiles: Vec::new(),
        generator: "bench".into(),
    };
    let mut writer = BundleWriter::new(header, spool).unwrap();
    for (record, facts) in records {
        writer.add_record(Signal::Traces, record, *facts).unwrap();
    }
    let mut archive = Vec::with_capacity(8 << 20);
    writer.finish(key, compression, &mut archive).unwrap();
    archive
}

fn bundles(criterion: &mut Criterion) {
    let records = records();
    let raw_bytes: u64 = records.iter().map(|(record, _)| record.len() as u64).sum();
    let key = SigningKey::from_ed25519_seed(&[1; 32]);
    let trust = TrustStore::from_iter([key.trusted_key()]);
    let spool = tempfile::tempdir().unwrap();
    let mut group = criterion.benchmark_group("bundle");
    group.throughput(Throughput::Bytes(raw_bytes));
    group.sample_size(10);
    for compression in [Compression::Gzip, Compression::Zstd] {
        let archive = write(&records, &key, compression, spool.path());
        eprintln!(
            "{}: {raw_bytes} bytes of OTLP in {} records -> {} bytes ({:.1}x)",
            compression.extension(),
            records.len(),
            archive.len(),
            raw_bytes as f64 / archive.len() as f64
        );
        group.bench_function(format!("generate/{}", compression.extension()), |bench| {
            bench.iter(|| write(&records, &key, compression, spool.path()))
        });
        group.bench_function(format!("verify/{}", compression.extension()), |bench| {
            bench.iter(|| verify_bundle(archive.as_slice(), &trust, &Limits::default()).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bundles);
criterion_main!(benches);
