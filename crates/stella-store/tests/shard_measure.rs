//! Figures, not assertions: shard sizes and how much faster a narrowed scan is with shards, on one day
//! of a few hundred chunks per signal. Run with
//! `cargo test -p stella-store --release --test shard_measure -- --ignored --nocapture`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::{SECOND, START, TENANT, files, gauge, log, span};
use stella_otlp::{OtlpRequest, Signal};
use stella_store::chunks::{ChunkStreams, ChunkTerms, ScanFilter, SealLimits, Sealer, Store, shard_file};

const CHUNKS: usize = 300;
const RECORDS_PER_CHUNK: usize = 64;
/// Spans, log records or points per record (one service's export).
const ITEMS_PER_RECORD: usize = 20;
const SERVICES: usize = 20;

/// A small deterministic generator (xorshift), so runs compare.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

/// Records of `signal`: `bursty` services send in runs of 200 records, otherwise each record is from a
/// random service. One log record in 8,000 is an error.
fn records(signal: Signal, bursty: bool) -> Vec<Vec<u8>> {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    (0..CHUNKS * RECORDS_PER_CHUNK)
        .map(|n| {
            let service = if bursty { (n / 200) % SERVICES } else { random.below(SERVICES) };
            let name = format!("service-{service}");
            let mut record: Option<OtlpRequest> = None;
            for item in 0..ITEMS_PER_RECORD {
                let at = START + n as u64 * SECOND + item as u64 * 1_000;
                let id = (n * ITEMS_PER_RECORD + item) as u32;
                let bytes = match signal {
                    Signal::Traces => span(id / 4, id, &name, at),
                    Signal::Logs => {
                        let severity = if random.below(8_000) == 0 { 17 } else { 9 };
                        log(&name, ["prod", "staging"][n % 2], severity, at, &format!("request {id} served"))
                    }
                    Signal::Metrics => {
                        let metric = format!("{name}.metric-{}", item % 10);
                        gauge(&metric, ["a", "b"][item % 2], &name, at, id as i64)
                    }
                };
                let request = OtlpRequest::decode_protobuf(signal, &bytes).unwrap();
                match &mut record {
                    Some(record) => record.append(request).unwrap(),
                    None => record = Some(request),
                }
            }
            record.unwrap().encode_protobuf()
        })
        .collect()
}

fn timed(store: &Store, signal: Signal, filter: ScanFilter<'_>) -> (f64, u64, usize) {
    let reads = store.chunks_read();
    let started = Instant::now();
    let mut records = 0usize;
    for _ in 0..5 {
        store
            .scan(TENANT, signal.as_str(), (0, u64::MAX), filter, &mut |_| {
                records += 1;
                true
            })
            .unwrap();
    }
    (started.elapsed().as_secs_f64() * 1000.0 / 5.0, (store.chunks_read() - reads) / 5, records / 5)
}

#[test]
#[ignore = "a measurement; run it by hand"]
fn shard_sizes_and_scan_speed_up() {
    let errors = ScanFilter { severity_min: Some(17), ..ScanFilter::default() };
    let service = ScanFilter::from(Some("service-7"));
    let metric = ScanFilter { metric: Some("service-7.metric-3"), ..ScanFilter::default() };
    let cases: [(Signal, bool, &str, ScanFilter<'_>); 6] = [
        (Signal::Traces, true, "traces service=service-7 (bursty)", service),
        (Signal::Traces, false, "traces service=service-7 (interleaved)", service),
        (Signal::Logs, false, "logs severity_min=ERROR (interleaved)", errors),
        (Signal::Logs, true, "logs service=service-7 (bursty)", service),
        (Signal::Metrics, true, "metrics name=service-7.metric-3 (bursty)", metric),
        (Signal::Metrics, false, "metrics name=service-7.metric-3 (interleaved)", metric),
    ];
    for (signal, bursty, label, filter) in cases {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf());
        let records = records(signal, bursty);
        let mut sealer = Sealer::new(TENANT, signal, SealLimits { max_records: RECORDS_PER_CHUNK, max_bytes: 1 << 24 });
        let mut sealed = Vec::new();
        for (seq, payload) in records.iter().enumerate() {
            sealed.extend(sealer.add(seq as u64, payload.clone()).unwrap());
        }
        let mut writes = Vec::new();
        for chunk in &sealed {
            let started = Instant::now();
            store.write(chunk).unwrap();
            writes.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let mean = |times: &[f64]| times.iter().sum::<f64>() / times.len() as f64;
        let (first, last) = (mean(&writes[..30]), mean(&writes[writes.len() - 30..]));
        let on_disk = files(dir.path());
        let shard_bytes: usize =
            on_disk.iter().filter(|(name, _)| name.ends_with(shard_file(signal))).map(|(_, bytes)| bytes.len()).sum();
        let chunk_bytes: usize =
            on_disk.iter().filter(|(name, _)| name.ends_with(".chunk")).map(|(_, bytes)| bytes.len()).sum();
        let chunks = on_disk.keys().filter(|name| name.ends_with(".chunk")).count();
        let (with_ms, with_reads, with_records) = timed(&store, signal, filter);
        for name in on_disk.keys() {
            if name.ends_with(shard_file(signal)) {
                std::fs::remove_file(dir.path().join(name)).unwrap();
            }
        }
        let (without_ms, without_reads, without_records) = timed(&store, signal, filter);
        println!(
            "{label}: {chunks} chunks, shard {shard_bytes} B ({:.0} B/chunk, {:.2}% of chunk bytes); write {first:.2} ms/chunk (first 30), {last:.2} ms/chunk (last 30); scan with shard {with_ms:.1} ms ({with_reads} chunks, {with_records} records), without {without_ms:.1} ms ({without_reads} chunks, {without_records} records): x{:.1}",
            shard_bytes as f64 / chunks as f64,
            100.0 * shard_bytes as f64 / chunk_bytes as f64,
            without_ms / with_ms,
        );
    }
}

#[test]
#[ignore = "a measurement; run it by hand"]
fn what_reading_streams_adds_to_sealing() {
    for signal in [Signal::Traces, Signal::Logs, Signal::Metrics] {
        let records = records(signal, false);
        let started = Instant::now();
        let requests: Vec<OtlpRequest> =
            records.iter().map(|record| OtlpRequest::decode_protobuf(signal, record).unwrap()).collect();
        let decode = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut streams = ChunkStreams::default();
        for request in &requests {
            streams.add_request(request);
        }
        let read = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut terms = ChunkTerms::default();
        for request in &requests {
            terms.add_request(request);
        }
        let filter = terms.encode();
        let termed = started.elapsed().as_secs_f64();
        let items = (records.len() * ITEMS_PER_RECORD) as f64;
        println!(
            "{signal}: decode {:.0} items/ms, streams {:.0} items/ms (+{:.0}% over the decode the sealer does anyway), term filter {:.0} items/ms (+{:.0}%, {} bytes for {} record bytes)",
            items / decode / 1000.0,
            items / read / 1000.0,
            100.0 * read / decode,
            items / termed / 1000.0,
            100.0 * termed / decode,
            filter.len(),
            records.iter().map(Vec::len).sum::<usize>()
        );
    }
}
