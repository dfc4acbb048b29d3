//! Index shards: one per tenant, signal and UTC day, digest in the day manifest, the same bytes however
//! they were built; scans skip the chunks they rule out and find exactly what a full scan finds.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{DAY, SECOND, START, TENANT, files, gauge, log, scan_items, seal, span};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use stella_otlp::Signal;
use stella_store::chunks::{DayManifest, ScanFilter, Store, shard_file, utc_day};

const EVERYTHING: (u64, u64) = (0, u64::MAX);

fn day_dir(root: &Path, signal: Signal, day: u64) -> PathBuf {
    root.join(TENANT).join(signal.as_str()).join(utc_day(START + day * DAY))
}

fn day_manifest(root: &Path, signal: Signal, day: u64) -> DayManifest {
    serde_json::from_slice(&std::fs::read(day_dir(root, signal, day).join("day.json")).unwrap()).unwrap()
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
fn every_day_of_every_signal_has_a_shard_whose_digest_its_day_manifest_records() {
    for (signal, records) in [(Signal::Traces, traces()), (Signal::Logs, logs()), (Signal::Metrics, metrics())] {
        let (dir, _store) = sealed(signal, &records);
        let manifest = day_manifest(dir.path(), signal, 0);
        let shard = std::fs::read(day_dir(dir.path(), signal, 0).join(shard_file(signal))).unwrap();
        assert_eq!(&shard[..8], b"STLSHARD");
        assert_eq!(manifest.shard_sha256, Some(hex::encode(Sha256::digest(&shard))), "{signal}");
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

    let (_dir, traces_store) = sealed(Signal::Traces, &traces());
    assert_eq!(traces_store.scan_plan(TENANT, "traces", EVERYTHING, Some("auth")).unwrap().len(), 4);
}

#[test]
fn check_reports_a_missing_or_flipped_shard_and_repair_restores_the_same_bytes() {
    for (signal, records) in [(Signal::Traces, traces()), (Signal::Logs, logs()), (Signal::Metrics, metrics())] {
        let (dir, store) = sealed(signal, &records);
        let original = files(dir.path());
        let shard_path = day_dir(dir.path(), signal, 0).join(shard_file(signal));
        assert!(store.check(false).unwrap().stale_indexes.is_empty());

        std::fs::remove_file(&shard_path).unwrap();
        let report = store.check(false).unwrap();
        assert_eq!(report.stale_indexes, vec![shard_path.display().to_string()], "{signal}");
        let repaired = store.check(true).unwrap();
        assert_eq!(repaired.repaired_indexes, vec![shard_path.display().to_string()]);
        assert_eq!(files(dir.path()), original, "{signal}: the rebuilt shard and day manifest are the originals");

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
    let day = day_dir(dir.path(), Signal::Logs, 0);
    let shard_path = day.join(shard_file(Signal::Logs));
    let original = std::fs::read(&shard_path).unwrap();

    // Hostile: garbage whose digest the day manifest is made to record. It does not parse.
    let garbage = b"STLSHARD\x01\x03\x05\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01".to_vec();
    std::fs::write(&shard_path, &garbage).unwrap();
    let mut manifest = day_manifest(dir.path(), Signal::Logs, 0);
    manifest.shard_sha256 = Some(hex::encode(Sha256::digest(&garbage)));
    std::fs::write(day.join("day.json"), stella_store::chunks::canonical(&manifest)).unwrap();
    let all_chunks_of_day = manifest.chunks.len();
    let planned = store.scan_plan(TENANT, "logs", EVERYTHING, errors).unwrap();
    assert!(planned.len() >= all_chunks_of_day, "the day falls back to every chunk");
    assert_eq!(scan_items(&store, Signal::Logs, EVERYTHING, errors), expected, "same results");
    assert_eq!(store.check(false).unwrap().stale_indexes, vec![shard_path.display().to_string()]);

    // A shard that parses but does not match its digest (a flipped time, say) is not trusted either.
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    std::fs::write(&shard_path, &flipped).unwrap();
    manifest.shard_sha256 = Some(hex::encode(Sha256::digest(&original)));
    std::fs::write(day.join("day.json"), stella_store::chunks::canonical(&manifest)).unwrap();
    assert_eq!(scan_items(&store, Signal::Logs, EVERYTHING, errors), expected);
    store.check(true).unwrap();
    assert_eq!(std::fs::read(&shard_path).unwrap(), original);
}

#[test]
fn a_store_sealed_before_shards_existed_still_reads_and_gains_its_shards() {
    let records = logs();
    let (dir, store) = sealed(Signal::Logs, &records[..40]);
    let fresh = files(dir.path());
    // What an older version wrote: no shard, no digest.
    let day = day_dir(dir.path(), Signal::Logs, 0);
    std::fs::remove_file(day.join(shard_file(Signal::Logs))).unwrap();
    let mut manifest = day_manifest(dir.path(), Signal::Logs, 0);
    manifest.shard_sha256 = None;
    std::fs::write(day.join("day.json"), stella_store::chunks::canonical(&manifest)).unwrap();
    let old_day_json = std::fs::read_to_string(day.join("day.json")).unwrap();
    assert!(!old_day_json.contains("shard_sha256"), "{old_day_json}");

    let errors = ScanFilter { severity_min: Some(17), ..ScanFilter::default() };
    assert_eq!(store.scan_plan(TENANT, "logs", EVERYTHING, errors).unwrap().len(), 8, "every chunk");
    assert_eq!(scan_items(&store, Signal::Logs, EVERYTHING, errors).len(), 10);
    assert_eq!(store.check(false).unwrap().stale_indexes.len(), 1, "the missing shard is reported");
    store.check(true).unwrap();
    assert_eq!(files(dir.path()), fresh, "repair writes the shard a fresh store has");
}

#[test]
fn the_next_write_rebuilds_a_shard_the_day_manifest_does_not_vouch_for() {
    let records = logs();
    let (reference, _) = sealed(Signal::Logs, &records);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    seal(&store, Signal::Logs, &records[..26], 5);
    // A crash between the shard and the day manifest: the shard lists a chunk the day does not.
    let day = day_dir(dir.path(), Signal::Logs, 0);
    let day_json = std::fs::read(day.join("day.json")).unwrap();
    seal(&store, Signal::Logs, &records[..31], 5);
    std::fs::write(day.join("day.json"), day_json).unwrap();
    assert_eq!(store.check(false).unwrap().stale_indexes.len(), 1);
    // Sealing again from the log (the sealer's cursor never passed the lost chunk) heals it.
    seal(&store, Signal::Logs, &records, 5);
    assert_eq!(files(dir.path()), files(reference.path()), "the same bytes as a store that never crashed");
}

#[test]
fn a_sweep_renumbers_shards_as_a_rebuild_from_the_kept_chunks_would() {
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
        assert_eq!(store.chunks_read(), before, "{signal}: renumbered, no chunk read");
        assert_eq!(store.check(false).unwrap().stale_indexes, Vec::<String>::new(), "{signal}");
        let shard = std::fs::read(day_dir(dir.path(), signal, 0).join(shard_file(signal))).unwrap();
        store.check(true).unwrap();
        assert_eq!(std::fs::read(day_dir(dir.path(), signal, 0).join(shard_file(signal))).unwrap(), shard);
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
        let filter = ScanFilter { service, severity_min, metric, labels: &labels };
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
