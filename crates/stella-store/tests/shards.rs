//! Index shards: one per run of a tenant's signal on a UTC day, digest in the run manifest, the same
//! bytes however they were built; scans skip the chunks they rule out and find exactly what a full scan
//! finds.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{DAY, SECOND, START, TENANT, files, gauge, log, scan_items, seal, span};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use stella_otlp::Signal;
use stella_store::chunks::{DayManifest, RunManifest, ScanFilter, Store, canonical, shard_file, utc_day};

const EVERYTHING: (u64, u64) = (0, u64::MAX);

fn day_dir(root: &Path, signal: Signal, day: u64) -> PathBuf {
    root.join(TENANT).join(signal.as_str()).join(utc_day(START + day * DAY))
}

fn day_manifest(root: &Path, signal: Signal, day: u64) -> DayManifest {
    serde_json::from_slice(&std::fs::read(day_dir(root, signal, day).join("day.json")).unwrap()).unwrap()
}

/// The name of the first run of a day (`run-<first>-<count>-<listed>`).
fn first_run(root: &Path, signal: Signal, day: u64) -> String {
    let run = &day_manifest(root, signal, day).runs[0];
    format!("run-{}-{}-{}", run.first, run.count, run.listed)
}

/// The index shard file of the first run of a day.
fn first_shard(root: &Path, signal: Signal, day: u64) -> PathBuf {
    day_dir(root, signal, day).join(format!("{}.{}", first_run(root, signal, day), shard_file(signal)))
}

/// Changes the first run's manifest of a day and makes the day manifest vouch for the change.
fn vouch(root: &Path, signal: Signal, day: u64, change: impl FnOnce(&mut RunManifest)) {
    let dir = day_dir(root, signal, day);
    let path = dir.join(format!("{}.json", first_run(root, signal, day)));
    let mut run: RunManifest = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    change(&mut run);
    let bytes = canonical(&run);
    std::fs::write(&path, &bytes).unwrap();
    let mut manifest = day_manifest(root, signal, day);
    manifest.runs[0].sha256 = hex::encode(Sha256::digest(&bytes));
    std::fs::write(dir.join("day.json"), canonical(&manifest)).unwrap();
}

/// Logs of four services over two days, errors only from `payments`, 5 records a chunk.
fn logs() -> Vec<Vec<u8>> {
    let services = ["checkout", "search", "payments", "auth"];
    (0..80u64)
        .map(|n| {
            // Each service logs in bursts of 10, so chunks hold one or two services.
            let service = services[(n / 10) as usize % 4];
            let severity = if service == "payments" { 17 } else { 9 };
            let at = START + (n / 40) * DAY + n * SECOND;
            log(service, if n % 3 == 0 { "prod" } else { "staging" }, severity, at, &format!("line {n}"))
        })
        .collect()
}

fn traces() -> Vec<Vec<u8>> {
    (0..60u32)
        .map(|n| span(n / 3, n, ["checkout", "search", "auth"][(n / 12) as usize % 3], START + u64::from(n) * SECOND))
        .collect()
}

fn metrics() -> Vec<Vec<u8>> {
    (0..60u64)
        .map(|n| {
            let name = ["queue.depth", "rpc.calls", "cpu.load"][(n / 15) as usize % 3];
            gauge(name, ["a", "b"][(n % 2) as usize], "worker", START + n * SECOND, n as i64)
        })
        .collect()
}

fn sealed(signal: Signal, records: &[Vec<u8>]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    seal(&store, signal, records, 5);
    (dir, store)
}

#[test]
fn every_run_of_every_signal_has_a_shard_whose_digest_its_run_manifest_records() {
    for (signal, records) in [(Signal::Traces, traces()), (Signal::Logs, logs()), (Signal::Metrics, metrics())] {
        let (dir, _store) = sealed(signal, &records);
        let manifest = day_manifest(dir.path(), signal, 0);
        assert!(!manifest.runs.is_empty(), "{signal}");
        for run in &manifest.runs {
            let name = format!("run-{}-{}-{}", run.first, run.count, run.listed);
            let run_bytes = std::fs::read(day_dir(dir.path(), signal, 0).join(format!("{name}.json"))).unwrap();
            assert_eq!(run.sha256, hex::encode(Sha256::digest(&run_bytes)));
            let run_manifest: RunManifest = serde_json::from_slice(&run_bytes).unwrap();
            let shard_path = day_dir(dir.path(), signal, 0).join(format!("{name}.{}", shard_file(signal)));
            let shard = std::fs::read(shard_path).unwrap();
            assert_eq!(&shard[..8], b"STLSHARD");
            assert_eq!(run_manifest.shard_sha256, Some(hex::encode(Sha256::digest(&shard))), "{signal}");
        }
    }
}

#[test]
fn a_scan_reads_only_the_chunks_the_shard_does_not_rule_out() {
    let (_dir, store) = sealed(Signal::Logs, &logs());
    let all = store.scan_plan(TENANT, "logs", EVERYTHING, None).unwrap();
    assert_eq!(all.len(), 16, "80 records in chunks of 5");

    let errors = ScanFilter { severity_min: Some(17), ..ScanFilter::default() };
    let planned = store.scan_plan(TENANT, "logs", EVERYTHING, errors).unwrap();
    assert_eq!(planned.len(), 4, "only the chunks of payments' bursts hold errors");
    let before = store.chunks_read();
    let found = scan_items(&store, Signal::Logs, EVERYTHING, errors);
    assert_eq!(store.chunks_read() - before, 4, "the other chunks are never read");
    assert_eq!(found.len(), 20);
    assert!(found.iter().all(|line| line.contains(" payments 17 ")), "{found:?}");

    let search = ScanFilter::from(Some("search"));
    assert_eq!(store.scan_plan(TENANT, "logs", EVERYTHING, search).unwrap().len(), 4);
    let morning = (START, START + 12 * SECOND);
    assert_eq!(store.scan_plan(TENANT, "logs", morning, search).unwrap().len(), 1, "service and time together");

    let (_dir, metrics_store) = sealed(Signal::Metrics, &metrics());
    let queue = ScanFilter { metric: Some("queue.depth"), ..ScanFilter::default() };
    assert_eq!(metrics_store.scan_plan(TENANT, "metrics", EVERYTHING, queue).unwrap().len(), 6);
    let labels = vec![("queue".to_string(), "c".to_string())];
    let no_such_queue = ScanFilter { metric: Some("queue.depth"), labels: &labels, ..ScanFilter::default() };
    assert!(metrics_store.scan_plan(TENANT, "metrics", EVERYTHING, no_such_queue).unwrap().is_empty());
    // By Prometheus name (a PromQL selector): only the chunks of metrics that can give it.
    let wanted = vec!["queue_depth".to_string()];
    let by_prometheus_name = ScanFilter { prometheus_names: &wanted, ..ScanFilter::default() };
    assert_eq!(metrics_store.scan_plan(TENANT, "metrics", EVERYTHING, by_prometheus_name).unwrap().len(), 6);
    let unknown = vec!["disk_usage_bytes".to_string()];
    let nothing = ScanFilter { prometheus_names: &unknown, ..ScanFilter::default() };
    assert!(metrics_store.scan_plan(TENANT, "metrics", EVERYTHING, nothing).unwrap().is_empty());

    let (_dir, traces_store) = sealed(Signal::Traces, &traces());
    assert_eq!(traces_store.scan_plan(TENANT, "traces", EVERYTHING, Some("auth")).unwrap().len(), 4);
}

#[test]
fn check_reports_a_missing_or_flipped_shard_and_repair_restores_the_same_bytes() {
    for (signal, records) in [(Signal::Traces, traces()), (Signal::Logs, logs()), (Signal::Metrics, metrics())] {
        let (dir, store) = sealed(signal, &records);
        let original = files(dir.path());
        let shard_path = first_shard(dir.path(), signal, 0);
        assert!(store.check(false).unwrap().stale_indexes.is_empty());

        std::fs::remove_file(&shard_path).unwrap();
        let report = store.check(false).unwrap();
        assert_eq!(report.stale_indexes, vec![shard_path.display().to_string()], "{signal}");
        let repaired = store.check(true).unwrap();
        assert_eq!(repaired.repaired_indexes, vec![shard_path.display().to_string()]);
        assert_eq!(files(dir.path()), original, "{signal}: the rebuilt shard and manifests are the originals");

        let mut flipped = std::fs::read(&shard_path).unwrap();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        std::fs::write(&shard_path, flipped).unwrap();
        assert_eq!(store.check(false).unwrap().stale_indexes.len(), 1);
        store.check(true).unwrap();
        assert_eq!(files(dir.path()), original, "{signal}");
        assert!(store.check(false).unwrap().stale_indexes.is_empty());
    }
}

#[test]
fn a_damaged_shard_is_not_trusted_and_the_scan_reads_every_chunk() {
    let (dir, store) = sealed(Signal::Logs, &logs());
    let errors = ScanFilter { severity_min: Some(17), ..ScanFilter::default() };
    let expected = scan_items(&store, Signal::Logs, EVERYTHING, errors);
    let shard_path = first_shard(dir.path(), Signal::Logs, 0);
    let original = std::fs::read(&shard_path).unwrap();
    let original_files = files(dir.path());

    // Hostile: garbage whose digest the run manifest is made to record. It does not parse.
    let garbage = b"STLSHARD\x01\x03\x05\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01".to_vec();
    std::fs::write(&shard_path, &garbage).unwrap();
    vouch(dir.path(), Signal::Logs, 0, |run| run.shard_sha256 = Some(hex::encode(Sha256::digest(&garbage))));
    let run_chunks = day_manifest(dir.path(), Signal::Logs, 0).runs[0].listed as usize;
    let planned = store.scan_plan(TENANT, "logs", EVERYTHING, errors).unwrap();
    assert!(planned.len() >= run_chunks, "the run falls back to every chunk");
    assert_eq!(scan_items(&store, Signal::Logs, EVERYTHING, errors), expected, "same results");
    assert_eq!(store.check(false).unwrap().stale_indexes, vec![shard_path.display().to_string()]);

    // A shard that parses but does not match its digest (a flipped time, say) is not trusted either.
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    std::fs::write(&shard_path, &flipped).unwrap();
    vouch(dir.path(), Signal::Logs, 0, |run| run.shard_sha256 = Some(hex::encode(Sha256::digest(&original))));
    assert_eq!(scan_items(&store, Signal::Logs, EVERYTHING, errors), expected);
    store.check(true).unwrap();
    assert_eq!(std::fs::read(&shard_path).unwrap(), original);
    assert_eq!(files(dir.path()), original_files, "repair restores every file");
}

#[test]
fn a_day_sealed_before_runs_and_shards_existed_still_reads_and_gains_its_shards() {
    let records = logs();
    let (dir, store) = sealed(Signal::Logs, &records[..40]);
    // What an older version wrote: a format 1 day.json listing the chunks, no shard, no digest.
    let day = day_dir(dir.path(), Signal::Logs, 0);
    let manifest = day_manifest(dir.path(), Signal::Logs, 0);
    let mut chunks = Vec::new();
    for run in &manifest.runs {
        let name = format!("run-{}-{}-{}", run.first, run.count, run.listed);
        let run_manifest: RunManifest =
            serde_json::from_slice(&std::fs::read(day.join(format!("{name}.json"))).unwrap()).unwrap();
        for chunk in run_manifest.chunks {
            let mut chunk = serde_json::to_value(chunk).unwrap();
            chunk.as_object_mut().unwrap().remove("position");
            chunks.push(chunk);
        }
        for file in [format!("{name}.json"), format!("{name}.{}", shard_file(Signal::Logs))] {
            std::fs::remove_file(day.join(file)).unwrap();
        }
    }
    let old = serde_json::json!({
        "format_version": 1, "tenant": manifest.tenant, "signal": "logs", "day": manifest.day, "chunks": chunks,
    });
    std::fs::write(day.join("day.json"), canonical(&old)).unwrap();

    let errors = ScanFilter { severity_min: Some(17), ..ScanFilter::default() };
    assert_eq!(store.scan_plan(TENANT, "logs", EVERYTHING, errors).unwrap().len(), 8, "every chunk");
    assert_eq!(scan_items(&store, Signal::Logs, EVERYTHING, errors).len(), 10);
    let shard_path = day.join(shard_file(Signal::Logs));
    assert_eq!(store.check(false).unwrap().stale_indexes, vec![shard_path.display().to_string()]);
    store.check(true).unwrap();
    assert!(store.check(false).unwrap().stale_indexes.is_empty());
    assert_eq!(day_manifest(dir.path(), Signal::Logs, 0).format_version, 2, "repair writes format 2");
    assert_eq!(store.scan_plan(TENANT, "logs", EVERYTHING, errors).unwrap().len(), 2, "the shard narrows again");
    assert_eq!(scan_items(&store, Signal::Logs, EVERYTHING, errors).len(), 10);
}

#[test]
fn a_crash_between_a_runs_files_and_its_day_manifest_is_healed_by_sealing_again() {
    let records = logs();
    let (reference, _) = sealed(Signal::Logs, &records);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    seal(&store, Signal::Logs, &records[..26], 5);
    // The run of the sixth chunk is written, the day manifest listing it is not.
    let day = day_dir(dir.path(), Signal::Logs, 0);
    let day_json = std::fs::read(day.join("day.json")).unwrap();
    seal(&store, Signal::Logs, &records[..31], 5);
    std::fs::write(day.join("day.json"), day_json).unwrap();
    let report = store.check(false).unwrap();
    assert_eq!(report.stale_indexes.len(), 2, "the unlisted run's manifest and shard: {report:?}");
    assert!(
        report
            .stale_indexes
            .iter()
            .all(|file| file.contains("run-5-1-1.") && file.ends_with("not listed by its day manifest"))
    );
    // Sealing again from the log (the sealer's cursor never passed the lost chunk) heals it.
    seal(&store, Signal::Logs, &records, 5);
    assert_eq!(files(dir.path()), files(reference.path()), "the same bytes as a store that never crashed");
}

#[test]
fn a_sweep_keeps_positions_and_its_shards_equal_a_rebuild_from_the_kept_chunks() {
    for (signal, records) in [(Signal::Traces, traces()), (Signal::Logs, logs()), (Signal::Metrics, metrics())] {
        let (dir, store) = sealed(signal, &records);
        let before = store.chunks_read();
        // Keep the chunks that hold second 20 onwards and those a hold keeps (seconds 5 to 6).
        let deleted = store
            .sweep(TENANT, signal.as_str(), START + 20 * SECOND, &|min, max| {
                min <= START + 6 * SECOND && max >= START + 5 * SECOND
            })
            .unwrap();
        assert!(!deleted.is_empty(), "{signal}");
        assert_eq!(store.chunks_read(), before, "{signal}: indexes kept, no chunk read");
        assert_eq!(store.check(false).unwrap().stale_indexes, Vec::<String>::new(), "{signal}");
        let swept = files(dir.path());
        store.check(true).unwrap();
        assert_eq!(files(dir.path()), swept, "{signal}: repair finds nothing to change");
    }
}

/// A record of `signal` from generated parts: a service, a severity or metric, a time.
fn record(signal: Signal, (service, kind, at): (usize, usize, u64), n: usize) -> Vec<u8> {
    let services = ["checkout", "search", "auth"];
    match signal {
        Signal::Traces => span(n as u32, n as u32, services[service], at),
        Signal::Logs => log(services[service], "prod", [1, 9, 13, 17, 21][kind % 5], at, &format!("line {n}")),
        Signal::Metrics => {
            gauge(["up", "rpc.calls"][kind % 2], ["a", "b"][service % 2], services[service], at, n as i64)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn a_scan_with_shards_finds_exactly_what_reading_every_chunk_finds(
        signal in prop::sample::select(vec![Signal::Traces, Signal::Logs, Signal::Metrics]),
        parts in prop::collection::vec((0usize..3, 0usize..5, 0u64..(2 * DAY / SECOND)), 1..60),
        max_records in 1usize..6,
        service in prop::option::of(prop::sample::select(vec!["checkout", "search", "auth", "nobody"])),
        severity_min in prop::option::of(0i32..24),
        metric in prop::option::of(prop::sample::select(vec!["up", "rpc.calls", "other"])),
        queue in prop::option::of(prop::sample::select(vec!["a", "b"])),
        window in (0u64..(2 * DAY / SECOND), 0u64..(DAY / SECOND)),
    ) {
        let records: Vec<Vec<u8>> = parts
            .iter()
            .enumerate()
            .map(|(n, (service, kind, at))| record(signal, (*service, *kind, START + at * SECOND), n))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf());
        seal(&store, signal, &records, max_records);
        let labels: Vec<(String, String)> = queue.map(|queue| ("queue".to_string(), queue.to_string())).into_iter().collect();
        let filter = ScanFilter { service, severity_min, metric, labels: &labels, ..ScanFilter::default() };
        let range = (START + window.0 * SECOND, START + (window.0 + window.1) * SECOND);
        let with_shards = scan_items(&store, signal, range, filter);
        let planned = store.scan_plan(TENANT, signal.as_str(), range, filter).unwrap().len();
        // Without shards: every day's shard gone, so scans read every chunk.
        for name in files(dir.path()).into_keys() {
            if name.ends_with(shard_file(signal)) {
                std::fs::remove_file(dir.path().join(name)).unwrap();
            }
        }
        let unfiltered = store.scan_plan(TENANT, signal.as_str(), range, None).unwrap().len();
        prop_assert!(planned <= unfiltered);
        let without_shards = scan_items(&store, signal, range, filter);
        prop_assert_eq!(&with_shards, &without_shards);
        let mut brute_force = Vec::new();
        store.scan(TENANT, signal.as_str(), EVERYTHING, None, &mut |record| {
            brute_force.extend(common::matching_items(signal, record, &filter, range));
            true
        }).unwrap();
        brute_force.sort();
        prop_assert_eq!(with_shards, brute_force);
    }
}
