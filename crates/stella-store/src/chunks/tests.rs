use prost::Message;
use stella_otlp::Signal;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::*;

const DAY: u64 = 86_400 * 1_000_000_000;
/// 2026-11-29T00:00:00Z in unix nanoseconds.
const START: u64 = 1_795_910_400 * 1_000_000_000;

/// A traces request of `spans` spans of trace `trace`, at `at` unix nanos.
fn record(trace: u8, spans: u8, at: u64, service: &str) -> Vec<u8> {
    let spans = (0..spans)
        .map(|index| Span {
            trace_id: vec![trace; 16],
            span_id: vec![index + 1; 8],
            name: format!("op-{index}"),
            start_time_unix_nano: at,
            end_time_unix_nano: at + 1_000_000,
            ..Default::default()
        })
        .collect();
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
    .encode_to_vec()
}

fn records() -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for n in 0..30u8 {
        // Two days; a late record of the first day arrives during the second.
        let at = if n < 20 || n == 25 { START + u64::from(n) * 1_000_000_000 } else { START + DAY + u64::from(n) };
        all.push(record(n, 3, at, if n % 2 == 0 { "checkout" } else { "search" }));
    }
    all
}

fn seal_all(store: &Store, records: &[Vec<u8>], limits: SealLimits) -> Sealer {
    let mut sealer = Sealer::new("acme", Signal::Traces, limits);
    for (seq, payload) in records.iter().enumerate() {
        for chunk in sealer.add(seq as u64, payload.clone()).unwrap_or_default() {
            store.write(&chunk).unwrap_or_else(|error| panic!("{error}"));
        }
    }
    sealer
}

fn tree(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(root).map(|p| p.display().to_string()).unwrap_or_default();
                files.push((name, std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_same_records_give_the_same_chunks_manifests_and_indexes() {
    let limits = SealLimits { max_records: 8, max_bytes: 1 << 20 };
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = seal_all(&Store::new(first.path().to_path_buf()), &records(), limits);
    let b = seal_all(&Store::new(second.path().to_path_buf()), &records(), limits);
    let files = tree(first.path());
    assert!(files.len() > 6, "{:?}", files.iter().map(|(name, _)| name).collect::<Vec<_>>());
    assert_eq!(files, tree(second.path()), "byte-identical stores");
    assert_eq!(a.open_first_seq(), b.open_first_seq());
    // Day 1: records 0..20 in chunks of 8 (8, 8, then 4 sealed by the day change); day 2 starts at 20.
    let store = Store::new(first.path().to_path_buf());
    let day1 = store.day("acme", "traces", &utc_day(START)).unwrap().unwrap();
    assert_eq!(day1.chunks().map(|chunk| chunk.records).collect::<Vec<_>>(), vec![8, 8, 4]);
    let day2 = store.day("acme", "traces", &utc_day(START + DAY)).unwrap().unwrap();
    assert_eq!(day2.chunks().map(|chunk| chunk.records).collect::<Vec<_>>(), vec![8], "the late record joined");
    assert_eq!(a.open_first_seq(), Some(28), "records 28 and 29 wait for their chunk to seal");
    let first_chunk = day1.chunks().next().unwrap();
    let manifest_path = first.path().join(format!("acme/traces/{}/{}.json", day1.day, first_chunk.sha256));
    let manifest: ChunkManifest = serde_json::from_slice(&std::fs::read(manifest_path).unwrap()).unwrap();
    assert_eq!((manifest.records, manifest.items), (8, 24));
    assert_eq!(manifest.services, vec!["checkout".to_string(), "search".to_string()]);
    assert_eq!(manifest.min_time_unix_nano, START.to_string());
}

#[test]
fn traces_are_found_by_id_and_writing_a_chunk_again_lists_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    let limits = SealLimits { max_records: 4, max_bytes: 1 << 20 };
    let mut sealer = Sealer::new("acme", Signal::Traces, limits);
    let mut sealed = Vec::new();
    for (seq, payload) in records().into_iter().enumerate() {
        sealed.extend(sealer.add(seq as u64, payload).unwrap_or_default());
    }
    for chunk in &sealed {
        store.write(chunk).unwrap();
        store.write(chunk).unwrap();
    }
    let day = store.day("acme", "traces", &utc_day(START)).unwrap().unwrap();
    assert_eq!(day.chunks().count(), 5, "no chunk listed twice");
    for trace in [0u8, 7, 19, 25] {
        let found = store.records_with_trace("acme", &[trace; 16]).unwrap();
        assert!(
            found.iter().any(|payload| payload
                == &record(
                    trace,
                    3,
                    if trace < 20 || trace == 25 { START + u64::from(trace) * 1_000_000_000 } else { 0 },
                    if trace % 2 == 0 { "checkout" } else { "search" }
                )),
            "trace {trace}"
        );
    }
    assert!(store.records_with_trace("acme", &[99; 16]).unwrap().is_empty());
    assert!(store.records_with_trace("other", &[0; 16]).unwrap().is_empty(), "tenants do not see each other");
}

#[test]
fn check_finds_a_flipped_byte_and_repair_rebuilds_identical_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    seal_all(&store, &records(), SealLimits { max_records: 8, max_bytes: 1 << 20 });
    assert_eq!(store.check(false).unwrap(), CheckReport { chunks_ok: 4, ..CheckReport::default() });
    let day = store.day("acme", "traces", &utc_day(START)).unwrap().unwrap();
    let index_path = dir.path().join(format!("acme/traces/{}/run-0-1-1.traces.bin", day.day));
    let original = std::fs::read(&index_path).unwrap();
    std::fs::write(&index_path, &original[..original.len() - 6]).unwrap();
    let report = store.check(false).unwrap();
    assert_eq!(report.stale_indexes, vec![index_path.display().to_string()]);
    let repaired = store.check(true).unwrap();
    assert_eq!(repaired.repaired_indexes.len(), 1);
    assert_eq!(std::fs::read(&index_path).unwrap(), original, "the rebuilt index is the original");
    let second = day.chunks().nth(1).unwrap();
    let chunk_path = dir.path().join(format!("acme/traces/{}/{}.chunk", day.day, second.sha256));
    let mut bytes = std::fs::read(&chunk_path).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&chunk_path, bytes).unwrap();
    let report = store.check(false).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert!(report.damaged[0].contains(&second.sha256));
}

#[test]
fn a_damaged_shard_is_a_precise_error_naming_its_file() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    seal_all(&store, &records(), SealLimits { max_records: 8, max_bytes: 1 << 20 });
    let day_dir = dir.path().join(format!("acme/traces/{}", utc_day(START)));
    let run = store.day("acme", "traces", &utc_day(START)).unwrap().unwrap().runs[0].clone();
    let shard_path = day_dir.join("run-0-1-1.services.bin");
    let load = |run: &day::Run| super::store::load_shard(&day_dir, Signal::Traces, run);
    assert!(load(&run).unwrap().is_some(), "an intact shard loads");
    let damaged = |found: Result<Option<_>, StoreError>| match found {
        Err(StoreError::Damaged { path, message }) => {
            assert_eq!(path, shard_path);
            message
        }
        other => panic!("{other:?}"),
    };
    let with = |change: &dyn Fn(&mut RunManifest)| {
        let mut changed = run.clone();
        change(&mut changed.manifest);
        changed
    };

    // Bytes that are not a shard, though the run manifest records their digest.
    let garbage = b"STLSHARD\x01\x01\x03\x01\x05abc".to_vec();
    std::fs::write(&shard_path, &garbage).unwrap();
    let vouching = with(&|manifest| manifest.shard_sha256 = Some(hex::encode(Sha256::digest(&garbage))));
    assert!(damaged(load(&vouching)).contains("past the end at byte 13"));
    assert!(damaged(load(&run)).contains("its manifest says"), "a digest mismatch");
    store.check(true).unwrap();
    let longer = with(&|manifest| manifest.count = 2);
    std::fs::copy(&shard_path, longer.shard_path(&day_dir, Signal::Traces)).unwrap();
    match load(&longer) {
        Err(StoreError::Damaged { message, .. }) => {
            assert!(message.contains("it covers 1 positions, its run ends at 2"))
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(&shard_path).unwrap();
    assert!(damaged(load(&run)).contains("missing"));
    let older = with(&|manifest| manifest.shard_sha256 = None);
    assert!(load(&older).unwrap().is_none(), "a day sealed before shards has none, and that is no error");
}

/// Every file under `root` with the SHA-256 of its bytes.
fn digests(root: &std::path::Path) -> std::collections::BTreeMap<String, (u64, String)> {
    use sha2::{Digest, Sha256};
    tree(root)
        .into_iter()
        .map(|(name, bytes)| (name, (bytes.len() as u64, hex::encode(Sha256::digest(&bytes)))))
        .collect()
}

/// Seals `chunks` chunks of one record each on one day (a trace per record, `seq % 250`; a new service
/// every 7 records); the bytes of the files besides chunks that the writes created or changed.
fn one_day_of_chunks(store: &Store, chunks: u64) -> u64 {
    let mut written = 0;
    let mut sealer = Sealer::new("acme", Signal::Traces, SealLimits { max_records: 1, max_bytes: 1 << 20 });
    for seq in 0..chunks {
        let trace = (seq % 250) as u8;
        let payload = record(trace, 4, START + seq * 1_000_000_000, &format!("service-{}", seq / 7));
        for chunk in sealer.add(seq, payload).unwrap() {
            let before = digests(&store.root);
            store.write(&chunk).unwrap();
            for (name, (size, sha256)) in digests(&store.root) {
                if before.get(&name).is_some_and(|(_, was)| *was == sha256) {
                    continue;
                }
                if !name.ends_with(".chunk") {
                    written += size;
                }
            }
        }
    }
    written
}

#[test]
fn sealing_writes_each_index_entry_a_logarithmic_number_of_times_not_once_per_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    let chunks = 300;
    let written = one_day_of_chunks(&store, chunks);
    let day = store.day("acme", "traces", &utc_day(START)).unwrap().unwrap();
    // 300 = 4 x 64 + 5 x 8 + 4 x 1 (base 8: 454): one run per unit of each digit.
    let runs: Vec<u32> = day.runs.iter().map(|run| run.manifest.count).collect();
    assert_eq!(runs, vec![64, 64, 64, 64, 8, 8, 8, 8, 8, 1, 1, 1, 1]);
    assert_eq!(day.chunks().count() as u64, chunks);
    // What is on disk now besides the chunks: each byte of it was written at most once per level (3
    // levels for 300 chunks) plus once for the chunk manifests; rewriting the indexes and the day
    // manifest whole at every seal would write them about 150 times.
    let at_rest: u64 =
        digests(dir.path()).iter().filter(|(name, _)| !name.ends_with(".chunk")).map(|(_, (size, _))| size).sum();
    assert!(written <= 4 * at_rest, "{written} bytes written for {at_rest} at rest");
    // Every trace is found, and the merged indexes are what a rebuild from the chunks gives.
    for trace in [0u8, 49, 249] {
        let found = store.records_with_trace("acme", &[trace; 16]).unwrap();
        assert_eq!(found.len(), if trace < 50 { 2 } else { 1 }, "trace {trace}");
    }
    assert_eq!(store.check(false).unwrap().stale_indexes, Vec::<String>::new());
}

#[test]
fn retention_in_the_middle_of_a_day_keeps_positions_and_indexes_equal_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    one_day_of_chunks(&store, 40);
    let before = store.chunks_read();
    // Chunks 0..10 expire but for 3 (held); 40 chunks: five runs of 8.
    let held = START + 3 * 1_000_000_000;
    let deleted = store.sweep("acme", "traces", START + 10 * 1_000_000_000, &|min, _| min == held).unwrap();
    assert_eq!(deleted.len(), 9);
    assert_eq!(store.chunks_read(), before, "the indexes were kept, no chunk read");
    let day = store.day("acme", "traces", &utc_day(START)).unwrap().unwrap();
    let positions: Vec<u32> = day.chunks().map(|chunk| chunk.position).take(3).collect();
    assert_eq!(positions, vec![3, 10, 11], "positions never change");
    assert_eq!(store.check(false).unwrap().stale_indexes, Vec::<String>::new(), "as a rebuild gives");
    assert_eq!(store.records_with_trace("acme", &[5; 16]).unwrap().len(), 0, "deleted");
    assert_eq!(store.records_with_trace("acme", &[3; 16]).unwrap().len(), 1, "held");
    assert_eq!(store.records_with_trace("acme", &[12; 16]).unwrap().len(), 1);
    // Later seals go on from the last position, and merge across the rewritten run.
    let mut sealer = Sealer::new("acme", Signal::Traces, SealLimits { max_records: 1, max_bytes: 1 << 20 });
    for seq in 40..64u64 {
        for chunk in sealer.add(seq, record(seq as u8, 1, START + seq * 1_000_000_000, "late")).unwrap() {
            store.write(&chunk).unwrap();
        }
    }
    let day = store.day("acme", "traces", &utc_day(START)).unwrap().unwrap();
    assert_eq!(day.runs.iter().map(|run| run.manifest.count).collect::<Vec<_>>(), vec![64]);
    assert_eq!(day.chunks().count(), 64 - 9);
    assert_eq!(store.check(false).unwrap().stale_indexes, Vec::<String>::new());
    assert_eq!(store.records_with_trace("acme", &[60; 16]).unwrap().len(), 1);
}

#[test]
fn a_run_without_a_trace_index_is_searched_chunk_by_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    one_day_of_chunks(&store, 9);
    let expected = store.records_with_trace("acme", &[2; 16]).unwrap();
    assert_eq!(expected.len(), 1);
    let day_dir = dir.path().join(format!("acme/traces/{}", utc_day(START)));
    std::fs::remove_file(day_dir.join("run-0-8-8.traces.bin")).unwrap();
    assert_eq!(store.records_with_trace("acme", &[2; 16]).unwrap(), expected, "a missing index file");
    let before = store.chunks_read();
    assert_eq!(store.records_with_trace("acme", &[2; 16]).unwrap(), expected);
    assert_eq!(store.chunks_read() - before, 8, "every chunk of the run without its index is read");
    store.check(true).unwrap();
    let before = store.chunks_read();
    assert_eq!(store.records_with_trace("acme", &[2; 16]).unwrap(), expected);
    assert_eq!(store.chunks_read() - before, 1, "repaired: the index names the one chunk");
}

#[test]
fn a_day_of_format_1_reads_and_its_next_write_turns_it_into_runs() {
    use sha2::Digest;
    let (dir, fresh) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = Store::new(dir.path().to_path_buf());
    one_day_of_chunks(&store, 8);
    one_day_of_chunks(&Store::new(fresh.path().to_path_buf()), 9);
    // What a version before runs wrote for the same 8 chunks: day.json listing them (no positions), one
    // index.bin (24-byte entries) and one services.bin.
    let day_dir = dir.path().join(format!("acme/traces/{}", utc_day(START)));
    let day = store.day("acme", "traces", &utc_day(START)).unwrap().unwrap();
    let run = &day.runs[0];
    std::fs::rename(day_dir.join("run-0-8-8.services.bin"), day_dir.join("services.bin")).unwrap();
    std::fs::remove_file(day_dir.join("run-0-8-8.traces.bin")).unwrap();
    let index = wide_index(8);
    std::fs::write(day_dir.join("index.bin"), &index).unwrap();
    std::fs::remove_file(day_dir.join("run-0-8-8.json")).unwrap();
    let legacy = LegacyDayManifest {
        format_version: 1,
        tenant: "acme".into(),
        signal: "traces".into(),
        day: day.day.clone(),
        chunks: run.manifest.chunks.clone(),
        index_sha256: Some(hex::encode(sha2::Sha256::digest(&index))),
        shard_sha256: run.manifest.shard_sha256.clone(),
    };
    let mut json = serde_json::to_value(&legacy).unwrap();
    for chunk in json["chunks"].as_array_mut().unwrap() {
        chunk.as_object_mut().unwrap().remove("position");
    }
    std::fs::write(day_dir.join("day.json"), canonical(&json)).unwrap();

    assert_eq!(store.day("acme", "traces", &day.day).unwrap().unwrap().chunks().count(), 8);
    let before = store.chunks_read();
    assert_eq!(store.records_with_trace("acme", &[2; 16]).unwrap().len(), 1);
    assert_eq!(store.chunks_read() - before, 1, "its index names the one chunk");
    assert_eq!(store.scan_plan("acme", "traces", (0, u64::MAX), Some("service-0")).unwrap().len(), 7);
    assert_eq!(store.check(false).unwrap(), CheckReport { chunks_ok: 8, ..CheckReport::default() });
    let before = store.chunks_read();
    one_day_of_chunks(&store, 9);
    assert_eq!(store.chunks_read(), before, "its indexes were vouched for and kept, no chunk read");
    assert_eq!(tree(dir.path()), tree(fresh.path()), "the same files as a day that never was format 1");
}

/// The trace index a version before run format 3 wrote for `one_day_of_chunks(.., chunks)`: (trace id,
/// chunk position, record position) of 24 bytes, sorted.
fn wide_index(chunks: u8) -> Vec<u8> {
    let mut entries: Vec<Vec<u8>> =
        (0..chunks).map(|seq| [&[seq; 16][..], &u32::from(seq).to_be_bytes(), &0u32.to_be_bytes()].concat()).collect();
    entries.sort();
    entries.concat()
}

#[test]
fn a_run_of_format_2_is_read_checked_and_rewritten_in_format_3() {
    use sha2::Digest;
    let (dir, fresh) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = Store::new(dir.path().to_path_buf());
    one_day_of_chunks(&store, 8);
    one_day_of_chunks(&Store::new(fresh.path().to_path_buf()), 8);
    // What run format 2 wrote for the same 8 chunks: `.index.bin` of 24-byte entries.
    let day_dir = dir.path().join(format!("acme/traces/{}", utc_day(START)));
    std::fs::remove_file(day_dir.join("run-0-8-8.traces.bin")).unwrap();
    let index = wide_index(8);
    std::fs::write(day_dir.join("run-0-8-8.index.bin"), &index).unwrap();
    let mut run: RunManifest = serde_json::from_slice(&std::fs::read(day_dir.join("run-0-8-8.json")).unwrap()).unwrap();
    run.format_version = 2;
    run.index_sha256 = Some(hex::encode(sha2::Sha256::digest(&index)));
    let run_bytes = canonical(&run);
    std::fs::write(day_dir.join("run-0-8-8.json"), &run_bytes).unwrap();
    let mut day: serde_json::Value = serde_json::from_slice(&std::fs::read(day_dir.join("day.json")).unwrap()).unwrap();
    day["runs"][0]["sha256"] = hex::encode(sha2::Sha256::digest(&run_bytes)).into();
    std::fs::write(day_dir.join("day.json"), canonical(&day)).unwrap();

    let before = store.chunks_read();
    assert_eq!(store.records_with_trace("acme", &[5; 16]).unwrap().len(), 1);
    assert_eq!(store.chunks_read() - before, 1, "its index names the one chunk");
    assert_eq!(store.check(false).unwrap(), CheckReport { chunks_ok: 8, ..CheckReport::default() }, "as a rebuild");
    // A torn entry: stale, and the repair writes the run in format 3, its old index gone.
    std::fs::write(day_dir.join("run-0-8-8.index.bin"), &index[..index.len() - 5]).unwrap();
    let stale = day_dir.join("run-0-8-8.index.bin").display().to_string();
    assert_eq!(store.check(false).unwrap().stale_indexes, vec![stale.clone()]);
    assert!(store.check(true).unwrap().repaired_indexes.contains(&stale));
    assert_eq!(tree(dir.path()), tree(fresh.path()), "the same files as a run written in format 3");
    assert_eq!(store.records_with_trace("acme", &[5; 16]).unwrap().len(), 1);
}

#[test]
fn chunk_files_are_zstd_of_length_prefixed_records() {
    let mut sealer = Sealer::new("acme", Signal::Traces, SealLimits { max_records: 2, max_bytes: 1 << 20 });
    assert!(sealer.add(0, record(1, 1, START, "a")).unwrap().is_empty());
    let sealed = sealer.add(1, record(2, 1, START, "a")).unwrap();
    assert_eq!(sealed.len(), 1);
    assert_eq!(chunk_records(&sealed[0].bytes).unwrap(), vec![record(1, 1, START, "a"), record(2, 1, START, "a")]);
    assert!(chunk_records(b"not zstd").is_err());
    assert!(sealer.add(2, b"\xff\xff".to_vec()).is_err(), "an undecodable record is refused, not sealed");
}

mod retention {
    use proptest::prelude::*;

    use super::*;

    /// The model: a record (one per chunk) survives a sweep iff it is not past the cutoff or a hold covers it.
    fn survives(at: u64, cutoff: u64, holds: &[(u64, u64)]) -> bool {
        // Each record's spans last 1 ms from `at`.
        let (min, max) = (at, at + 1_000_000);
        max >= cutoff || holds.iter().any(|(from, to)| min <= *to && max >= *from)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn a_sweep_deletes_exactly_the_expired_unheld_chunks(
            days in prop::collection::vec(0u64..6, 1..14),
            cutoff_day in 0u64..7,
            holds in prop::collection::vec((0u64..6, 0u64..2), 0..3),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::new(dir.path().to_path_buf());
            let mut sealer = Sealer::new("acme", Signal::Traces, SealLimits { max_records: 1, max_bytes: 1 << 20 });
            let times: Vec<u64> = days.iter().enumerate().map(|(n, day)| START + day * DAY + n as u64 * 1_000_000_000).collect();
            for (n, at) in times.iter().enumerate() {
                for chunk in sealer.add(n as u64, record(n as u8, 1, *at, "svc")).unwrap() {
                    store.write(&chunk).unwrap();
                }
            }
            let cutoff = START + cutoff_day * DAY;
            let windows: Vec<(u64, u64)> = holds.iter().map(|(day, length)| (START + day * DAY, START + (day + length) * DAY)).collect();
            let held = |min: u64, max: u64| windows.iter().any(|(from, to)| min <= *to && max >= *from);
            let deleted = store.sweep("acme", "traces", cutoff, &held).unwrap();
            for (n, at) in times.iter().enumerate() {
                let found = !store.records_with_trace("acme", &[n as u8; 16]).unwrap().is_empty();
                prop_assert_eq!(found, survives(*at, cutoff, &windows), "record {} at day {}", n, days[n]);
            }
            prop_assert_eq!(deleted.len(), times.iter().filter(|at| !survives(**at, cutoff, &windows)).count());
            let report = store.check(false).unwrap();
            prop_assert!(report.damaged.is_empty() && report.stale_indexes.is_empty(), "{:?}", report);
        }
    }

    #[test]
    fn holds_are_placed_released_closed_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let book = HoldBook::open(dir.path()).unwrap();
        let at = |seconds: i64| jiff::Timestamp::from_second(seconds).unwrap();
        let legal = book.add("acme", HoldKind::Legal, at(100), Some(at(200)), "litigation", "token:a").unwrap();
        assert!(book.holds("acme", 150 * 1_000_000_000, 160 * 1_000_000_000));
        assert!(!book.holds("acme", 300 * 1_000_000_000, 310 * 1_000_000_000));
        assert!(!book.holds("globex", 150 * 1_000_000_000, 160 * 1_000_000_000), "holds are per tenant");
        book.add("acme", HoldKind::Incident, at(1000), None, "incident", "token:a").unwrap();
        assert!(
            book.holds("acme", 5_000 * 1_000_000_000, 5_001 * 1_000_000_000),
            "an open incident hold keeps everything after"
        );
        book.close_incident("acme", at(2000)).unwrap();
        assert!(!book.holds("acme", 5_000 * 1_000_000_000, 5_001 * 1_000_000_000));
        assert!(book.add("acme", HoldKind::Legal, at(5), Some(at(1)), "", "").is_err(), "reversed windows are refused");
        assert!(
            matches!(book.release("globex", &legal.id), Err(HoldError::NotFound(_))),
            "another tenant cannot release it"
        );
        book.release("acme", &legal.id).unwrap();
        assert!(!book.holds("acme", 150 * 1_000_000_000, 160 * 1_000_000_000));
        let again = HoldBook::open(dir.path()).unwrap();
        assert_eq!(again.list("acme").unwrap().len(), 2, "persisted");
        assert!(again.list("acme").unwrap()[0].released.is_some());
    }
}

#[test]
fn a_cut_of_a_window_includes_later_days_holding_late_records() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let store = Store::new(dir.path().to_path_buf());
    // Record 25 (first day) arrives during the second day and is sealed into a second-day chunk.
    seal_all(&store, &records(), SealLimits { max_records: 4, max_bytes: 1 << 20 });
    let late = START + 25 * 1_000_000_000;
    let found =
        Cut::sealed(&store, "acme", "traces", (late, late + 1_000_000), ScanFilter::default()).map(|cut| cut.chunks);
    let found = found.unwrap_or_default();
    let days: Vec<String> = found
        .iter()
        .filter_map(|stored| stored.path.parent()?.file_name().map(|day| day.to_string_lossy().into_owned()))
        .collect();
    assert!(days.iter().any(|day| day == "2026-11-30"), "the late record's chunk is on the second day: {days:?}");
    let holds_late = found.iter().any(|stored| {
        store
            .read_chunk(&stored.path)
            .unwrap_or_default()
            .iter()
            .any(|payload| payload == &record(25, 3, late, "search"))
    });
    assert!(holds_late, "the window's chunks hold the late record");
    let first_day_only =
        Cut::sealed(&store, "acme", "traces", (START, START + 19 * 1_000_000_000), ScanFilter::default());
    assert!(
        first_day_only
            .map(|cut| cut.chunks)
            .unwrap_or_default()
            .iter()
            .all(|stored| stored.path.to_string_lossy().contains("2026-11-29"))
    );
}

/// 40 records of one span each whose times are out of order (a fixed permutation), so chunks' time
/// ranges interleave.
fn shuffled() -> Vec<Vec<u8>> {
    (0..40u64).map(|n| (n * 17) % 40).map(|n| record(n as u8, 1, START + n * 1_000_000_000, "checkout")).collect()
}

/// `records` sealed into `store` `max_records` to a chunk, and the cut of them all: the sealed chunks
/// and the records of the chunk still open.
fn cut_of(store: &Store, records: &[Vec<u8>], max_records: usize) -> Cut {
    let sealer = seal_all(store, records, SealLimits { max_records, max_bytes: 1 << 20 });
    let mut cut = Cut::sealed(store, "acme", "traces", (0, u64::MAX), ScanFilter::default()).unwrap();
    cut.unsealed = sealer
        .open_records()
        .iter()
        .map(|record| UnsealedRecord { payload: record.payload.clone(), max_time: record.facts.max_time })
        .collect();
    cut
}

#[test]
fn a_newest_first_visit_never_shows_a_record_newer_than_the_last_bound() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let store = Store::new(dir.path().to_path_buf());
    let cut = cut_of(&store, &shuffled(), 3);
    assert!(!cut.unsealed.is_empty() && cut.chunks.len() > 5, "both parts are exercised");
    let (mut bound, mut bounds, mut seen) = (u64::MAX, Vec::new(), Vec::new());
    cut.visit_newest_first(&store, &mut |step| {
        match step {
            Visit::Bound(next) => {
                bounds.push(next);
                bound = next;
            }
            Visit::Record(payload) => {
                let facts = record_facts(Signal::Traces, payload).unwrap_or_else(|| panic!("a stored record decodes"));
                assert!(facts.max_time <= bound, "a record at {} after bound {bound}", facts.max_time);
                seen.push(facts.max_time);
            }
        }
        true
    })
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(bounds.windows(2).all(|pair| pair[0] >= pair[1]), "bounds only go down: {bounds:?}");
    seen.sort_unstable();
    let mut expected: Vec<u64> = (0..40).map(|n| START + n * 1_000_000_000 + 1_000_000).collect();
    expected.sort_unstable();
    assert_eq!(seen, expected, "every record exactly once");
}

#[test]
fn a_decoded_newest_first_visit_sees_what_the_plain_one_sees_and_stops_and_fails_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    let cut = cut_of(&store, &shuffled(), 3);
    // Steps as (bound, None) or (0, Some(record's latest time)).
    let mut plain = Vec::new();
    cut.visit_newest_first(&store, &mut |step| {
        plain.push(match step {
            Visit::Bound(bound) => (bound, None),
            Visit::Record(payload) => (0, record_facts(Signal::Traces, payload).map(|facts| facts.max_time)),
        });
        true
    })
    .unwrap();
    assert_eq!(plain.iter().filter(|(_, record)| record.is_some()).count(), 40);
    let decode = |payload: &[u8]| record_facts(Signal::Traces, payload).map(|facts| facts.max_time);
    let mut decoded = Vec::new();
    cut.visit_newest_first_decoded(&store, decode, &mut |step| {
        decoded.push(match step {
            Decoded::Bound(bound) => (bound, None),
            Decoded::Record(time) => (0, time),
        });
        true
    })
    .unwrap();
    assert_eq!(decoded, plain, "the same steps in the same order");
    // Stopping at the fifth step: nothing more is visited, and the reading thread ends.
    let mut steps = 0;
    cut.visit_newest_first_decoded(&store, decode, &mut |_| {
        steps += 1;
        steps < 5
    })
    .unwrap();
    assert_eq!(steps, 5);
    // Memory stays bounded whatever the visitor's pace: at every step the reading thread has decoded at
    // most the records visited, what the channel holds and the one it is sending. The visitor is slow
    // (it lets the reader run ahead until the channel must be full) and checks that at every step.
    let decoded_records = std::sync::atomic::AtomicUsize::new(0);
    let counting = |payload: &[u8]| {
        decoded_records.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        decode(payload)
    };
    let mut visited = 0;
    cut.visit_newest_first_decoded(&store, counting, &mut |step| {
        if let Decoded::Record(_) = step {
            visited += 1;
        }
        // At least 5 of the 8 slots hold records (a bound precedes each chunk of 3 records).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while decoded_records.load(std::sync::atomic::Ordering::SeqCst) < (visited + 5).min(40)
            && std::time::Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        let ahead = decoded_records.load(std::sync::atomic::Ordering::SeqCst) - visited;
        assert!(ahead <= super::store::READ_AHEAD + 1, "{ahead} records decoded ahead of the visitor");
        true
    })
    .unwrap();
    // A chunk that cannot be read ends the visit with its error, after the steps before it.
    let newest_chunk = cut.chunks.iter().max_by_key(|chunk| chunk.chunk.max_time()).unwrap();
    std::fs::remove_file(&newest_chunk.path).unwrap();
    let mut before_error = 0;
    let outcome = cut.visit_newest_first_decoded(&store, decode, &mut |_| {
        before_error += 1;
        true
    });
    assert!(outcome.is_err());
    assert!(before_error < plain.len(), "{before_error} steps");
}

#[test]
fn files_of_runs_merged_before_a_crash_are_harmless_leftovers_that_repair_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    // One record per chunk: the first day's 21 chunks merge into runs of 4 and 16.
    seal_all(&store, &records(), SealLimits { max_records: 1, max_bytes: 1 << 20 });
    let day = store.day("acme", "traces", &utc_day(START)).unwrap().unwrap();
    let merged = day.runs.iter().find(|run| run.manifest.count >= 4).expect("a merged run");
    let day_dir = dir.path().join(format!("acme/traces/{}", day.day));
    // A crash after the merge's commit, before its runs' files went: one of them is still there.
    let leftover = day_dir.join(format!("run-{}-1-1.json", merged.first()));
    std::fs::write(&leftover, b"{}").unwrap();
    // A run file nothing covers is another matter: stale.
    let stray = day_dir.join("run-999-1-1.json");
    std::fs::write(&stray, b"{}").unwrap();
    let report = store.check(false).unwrap();
    assert_eq!(report.leftovers, vec![leftover.display().to_string()]);
    assert_eq!(report.stale_indexes, vec![format!("{}: not listed by its day manifest", stray.display())]);
    store.check(true).unwrap();
    assert!(!leftover.exists() && !stray.exists());
    assert_eq!(store.check(false).unwrap(), CheckReport { chunks_ok: report.chunks_ok, ..CheckReport::default() });
    // The first seal of the day in the next process (after the crash) deletes such files too.
    std::fs::write(&leftover, b"{}").unwrap();
    let restarted = Store::new(dir.path().to_path_buf());
    seal_all(
        &restarted,
        &[record(40, 3, START + 40_000_000_000, "checkout")],
        SealLimits { max_records: 1, max_bytes: 1 << 20 },
    );
    assert!(!leftover.exists(), "deleted by the seal");
}

#[test]
fn term_filters_rule_out_chunks_without_a_value_and_a_missing_or_damaged_one_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    // One chunk per record; each record's service is its own.
    let records: Vec<Vec<u8>> =
        (0..30u8).map(|n| record(n, 2, START + u64::from(n) * 1_000_000_000, &format!("svc-{n}"))).collect();
    seal_all(&store, &records, SealLimits { max_records: 1, max_bytes: usize::MAX });
    let plan = |clauses: &[Vec<u128>]| {
        let filter = ScanFilter { terms: clauses, ..ScanFilter::default() };
        let plan = store.scan_plan("acme", "traces", (0, u64::MAX), filter).unwrap();
        plan.into_iter().map(|chunk| chunk.path).collect::<Vec<_>>()
    };
    let chunk_of =
        |service: &str| store.scan_plan("acme", "traces", (0, u64::MAX), Some(service)).unwrap()[0].path.clone();
    let service = |name: &str| vec![vec![Term::Resource("service.name", name).hash()]];
    assert_eq!(plan(&[]).len(), 30, "no clause: every chunk");
    let found = plan(&service("svc-7"));
    assert!(
        found.contains(&chunk_of("svc-7")) && found.len() <= 2,
        "svc-7's chunk and at most a false positive: {found:?}"
    );
    assert!(plan(&service("svc-nobody")).len() <= 1);
    assert_eq!(plan(&[vec![Term::Name("op-1").hash()]]).len(), 30, "every chunk has a span named op-1");
    assert!(plan(&[vec![Term::Status(2).hash()]]).len() <= 1, "no span failed");
    let either = [vec![Term::Resource("service.name", "svc-3").hash(), Term::Resource("service.name", "svc-4").hash()]];
    assert!(plan(&either).contains(&chunk_of("svc-3")) && plan(&either).contains(&chunk_of("svc-4")));
    let both = [service("svc-3").remove(0), vec![Term::Span("service.name", "svc-3").hash()]];
    assert!(plan(&both).len() <= 1, "a resource attribute is no span attribute");
    // Without its filter, or with a damaged one, a chunk is read: a lost filter costs time, never a match.
    let terms_of = |chunk: &std::path::Path| chunk.with_extension("terms");
    std::fs::remove_file(terms_of(&chunk_of("svc-7"))).unwrap();
    let flipped = terms_of(&chunk_of("svc-8"));
    let original = std::fs::read(&flipped).unwrap();
    let mut bytes = original.clone();
    bytes[20] ^= 0xff;
    std::fs::write(&flipped, bytes).unwrap();
    let found = plan(&service("svc-nobody"));
    assert!(found.contains(&chunk_of("svc-7")) && found.contains(&chunk_of("svc-8")), "{found:?}");
    // `check` finds both; `--repair` rebuilds them byte for byte.
    let report = store.check(false).unwrap();
    let stale = [terms_of(&chunk_of("svc-7")), flipped.clone()].map(|path| path.display().to_string());
    assert!(stale.iter().all(|path| report.stale_indexes.contains(path)), "{report:?}");
    assert_eq!(report.stale_indexes.len(), 2, "{report:?}");
    assert_eq!(store.check(true).unwrap().repaired_indexes.len(), 2);
    assert_eq!(std::fs::read(&flipped).unwrap(), original);
    assert!(store.check(false).unwrap().stale_indexes.is_empty());
    assert!(plan(&service("svc-nobody")).len() <= 1, "repaired filters rule chunks out again");
    // Retention deletes an expired chunk's filter with it.
    let cutoff = START + 10 * 1_000_000_000;
    let deleted = store.sweep("acme", "traces", cutoff, &|_, _| false).unwrap();
    assert_eq!(deleted.len(), 10);
    let day = chunk_of("svc-20").parent().unwrap().to_path_buf();
    assert_eq!((files_ending(&day, "chunk"), files_ending(&day, "terms")), (20, 20));
}

/// Files in `dir` with `extension`.
fn files_ending(dir: &std::path::Path, extension: &str) -> usize {
    let entries = std::fs::read_dir(dir).unwrap().flatten();
    entries.filter(|entry| entry.path().extension() == Some(extension.as_ref())).count()
}

/// Seals one chunk per log record into `store`: record `n` at `START + n` seconds with line `line(n)`.
fn seal_log_lines(store: &Store, count: u64, line: impl Fn(u64) -> String) {
    use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
    use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let mut sealer = Sealer::new("acme", Signal::Logs, SealLimits { max_records: 1, max_bytes: usize::MAX });
    for n in 0..count {
        let record = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        time_unix_nano: START + n * 1_000_000_000,
                        body: Some(AnyValue { value: Some(any_value::Value::StringValue(line(n))) }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        for chunk in sealer.add(n, record.encode_to_vec()).unwrap() {
            store.write(&chunk).unwrap();
        }
    }
}

#[test]
fn a_line_filter_reads_only_the_log_chunks_whose_trigrams_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    seal_log_lines(&store, 20, |n| {
        if n == 13 { "card declined: needle 13".to_string() } else { format!("request {n} served") }
    });
    let plan = |text: &str| {
        let terms: Vec<Vec<u128>> = trigram_terms(text.as_bytes()).map(|term| vec![term.hash()]).collect();
        let filter = ScanFilter { terms: &terms, ..ScanFilter::default() };
        store.scan_plan("acme", "logs", (0, u64::MAX), filter).unwrap()
    };
    assert_eq!(plan("").len(), 20, "no clause: every chunk");
    let found = plan("needle");
    assert_eq!(found.len(), 1, "{found:?}");
    let records = store.read_chunk(&found[0].path).unwrap();
    assert!(String::from_utf8_lossy(&records[0]).contains("needle 13"));
    assert!(plan("served").len() >= 19, "every other chunk has a served line");
    assert!(store.check(false).unwrap().stale_indexes.is_empty(), "check rebuilds the same log filters");
}

#[test]
fn each_log_chunk_keeps_its_volume_and_a_missing_or_damaged_one_is_counted_from_the_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    seal_log_lines(&store, 12, |n| "x".repeat(n as usize + 1));
    let volumes = || {
        let cut = Cut::sealed(&store, "acme", "logs", (0, u64::MAX), ScanFilter::default()).unwrap();
        let mut tallies = Vec::new();
        cut.visit_volumes(&store, &mut |volume| {
            tallies.push(volume.streams.values().map(|stream| stream.tally(0..u64::MAX)).collect::<Vec<_>>());
            true
        })
        .unwrap();
        tallies
    };
    let expected: Vec<Vec<Tally>> = (1..=12u64).rev().map(|bytes| vec![Tally { lines: 1, bytes }]).collect();
    assert_eq!(volumes(), expected, "newest chunk first, one line each");
    assert_eq!(store.chunks_read(), 0, "counted from the volume files alone");
    // Without its volume file, or with a damaged one, a chunk is read and counted: the same tallies.
    let plan = store.scan_plan("acme", "logs", (0, u64::MAX), ScanFilter::default()).unwrap();
    let (missing, flipped) = (plan[3].path.with_extension("volume"), plan[7].path.with_extension("volume"));
    std::fs::remove_file(&missing).unwrap();
    let original = std::fs::read(&flipped).unwrap();
    let mut bytes = original.clone();
    let last = bytes.len() - 6;
    bytes[last] ^= 0x01;
    std::fs::write(&flipped, bytes).unwrap();
    assert_eq!(volumes(), expected);
    assert_eq!(store.chunks_read(), 2, "the two chunks without a usable volume");
    // `check` finds both; `--repair` writes them byte for byte.
    let report = store.check(false).unwrap();
    assert_eq!(report.stale_indexes.len(), 2, "{report:?}");
    assert!(report.stale_indexes.contains(&missing.display().to_string()), "{report:?}");
    assert_eq!(store.check(true).unwrap().repaired_indexes.len(), 2);
    assert_eq!(std::fs::read(&flipped).unwrap(), original);
    assert!(store.check(false).unwrap().stale_indexes.is_empty());
    // Retention deletes an expired chunk's volume with it.
    let deleted = store.sweep("acme", "logs", START + 5 * 1_000_000_000, &|_, _| false).unwrap();
    assert_eq!(deleted.len(), 5);
    let day = missing.parent().unwrap();
    assert_eq!((files_ending(day, "chunk"), files_ending(day, "volume")), (7, 7));
}

#[test]
fn a_cut_read_in_parts_gives_every_record_once_in_its_order_and_a_stop_or_an_error_ends_one_part() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    let records: Vec<Vec<u8>> = (0..23u64).map(|n| record(n as u8, 1, START + n * 1_000_000_000, "checkout")).collect();
    let cut = cut_of(&store, &records, 2);
    let mut in_order = Vec::new();
    cut.visit(&store, &mut |record| {
        in_order.push(record.to_vec());
        true
    })
    .unwrap();
    assert_eq!(in_order.len(), 23);
    for parts in [1, 2, 3, 7, 40] {
        let mut seen: Vec<Vec<Vec<u8>>> = vec![Vec::new(); parts];
        let visitors: Vec<_> = seen
            .iter_mut()
            .map(|seen| {
                move |record: &[u8]| {
                    seen.push(record.to_vec());
                    true
                }
            })
            .collect();
        cut.visit_parts(&store, visitors).unwrap();
        assert_eq!(seen.concat(), in_order, "{parts} parts");
        if parts <= 12 {
            assert!(seen.iter().all(|part| !part.is_empty()), "{parts} parts each read some");
        }
    }
    // The first part stops at once; the second still reads all of its own.
    let mut counts = [0usize; 2];
    let visitors: Vec<_> = counts
        .iter_mut()
        .zip([false, true])
        .map(|(count, go_on)| {
            move |_: &[u8]| {
                *count += 1;
                go_on
            }
        })
        .collect();
    cut.visit_parts(&store, visitors).unwrap();
    assert_eq!(counts[0], 1);
    assert!(counts[1] >= 10, "{counts:?}");
    // A chunk that cannot be read is an error, whichever part holds it.
    std::fs::remove_file(&cut.chunks[0].path).unwrap();
    let visitors: Vec<_> = (0..2).map(|_| |_: &[u8]| true).collect();
    assert!(cut.visit_parts(&store, visitors).is_err());
}
