//! Chunks in object storage, against `object_store`'s in-memory store (the S3 client itself is tested
//! against a real S3-compatible server in `tests/interop/test_s3_backend.py`).
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use prost::Message;
use sha2::{Digest, Sha256};
use stella_otlp::Signal;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::*;

const DAY: u64 = 86_400 * 1_000_000_000;
/// 2026-11-29T00:00:00Z in unix nanoseconds.
const START: u64 = 1_795_910_400 * 1_000_000_000;

/// A traces request holding one span of trace `[trace; 16]` at `at`.
fn request(trace: u8, at: u64) -> Vec<u8> {
    let span = Span {
        trace_id: vec![trace; 16],
        span_id: vec![1; 8],
        name: format!("op-{trace}"),
        start_time_unix_nano: at,
        end_time_unix_nano: at + 1_000,
        ..Default::default()
    };
    let scope = ScopeSpans { spans: vec![span], ..Default::default() };
    let resource = ResourceSpans { scope_spans: vec![scope], ..Default::default() };
    ExportTraceServiceRequest { resource_spans: vec![resource] }.encode_to_vec()
}

/// An S3 bucket on a port nothing listens on.
fn unreachable_bucket(fixture: &Fixture) -> RemoteChunks {
    let options = stella_export::object_storage::S3Options {
        endpoint: "http://127.0.0.1:1".into(),
        bucket: "chunks".into(),
        prefix: "stella".into(),
        region: "us-east-1".into(),
        access_key_id: "key".into(),
        secret_access_key: "very-secret".into(),
        allow_http: true,
    };
    let objects = stella_export::object_storage::s3(&options).unwrap();
    let remote = RemoteChunks::new(objects, &options.bucket, &options.prefix, fixture.runtime.handle().clone());
    for printed in [format!("{options:?}"), format!("{remote:?}")] {
        assert!(!printed.contains("very-secret"), "the secret is never printed: {printed}");
    }
    remote
}

/// A temporary store root, an in-memory bucket and the runtime its requests run on.
struct Fixture {
    dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    bucket: Arc<InMemory>,
}

impl Fixture {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        Fixture { dir: tempfile::tempdir().unwrap(), runtime, bucket: Arc::new(InMemory::new()) }
    }

    fn store(&self) -> Store {
        let remote = RemoteChunks::new(self.bucket.clone(), "memory", "stella", self.runtime.handle().clone());
        Store::with_remote(self.dir.path().to_path_buf(), remote)
    }

    /// Seals six one-record chunks (traces 0..6), three on each of two days.
    fn seal(&self, store: &Store) {
        let mut sealer = Sealer::new("acme", Signal::Traces, SealLimits { max_records: 1, max_bytes: 1 << 20 });
        for trace in 0..6u8 {
            let at = START + u64::from(trace / 3) * DAY + u64::from(trace) * 1_000_000_000;
            for chunk in sealer.add(u64::from(trace), request(trace, at)).unwrap() {
                store.write(&chunk).unwrap();
            }
        }
    }

    /// Every object in the bucket, by key.
    fn objects(&self) -> Vec<(String, Vec<u8>)> {
        self.runtime.block_on(async {
            let mut objects = Vec::new();
            let listed: Vec<_> = self.bucket.list(None).collect().await;
            for meta in listed {
                let meta = meta.unwrap();
                let bytes = self.bucket.get(&meta.location).await.unwrap().bytes().await.unwrap();
                objects.push((meta.location.to_string(), bytes.to_vec()));
            }
            objects.sort();
            objects
        })
    }

    /// The local `.chunk` files.
    fn local_chunks(&self) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|extension| extension == "chunk") {
                    found.push(path);
                }
            }
        }
        found.sort();
        found
    }

    fn day_dir(&self, day: u64) -> std::path::PathBuf {
        self.dir.path().join("acme/traces").join(utc_day(START + day * DAY))
    }
}

#[test]
fn uploaded_chunks_are_evicted_and_read_back_through_object_storage() {
    let fixture = Fixture::new();
    let store = fixture.store();
    fixture.seal(&store);
    let before: Vec<Vec<Vec<u8>>> =
        (0..6u8).map(|trace| store.records_with_trace("acme", &[trace; 16]).unwrap()).collect();

    let round = store.upload_pending(LocalCache::UpTo(0));
    assert!(round.error.is_none(), "{:?}", round.error);
    assert_eq!((round.uploaded, round.evicted, round.waiting), (6, 6, 0));
    assert!(fixture.local_chunks().is_empty(), "every uploaded chunk file is evicted");

    let objects = fixture.objects();
    assert_eq!(objects.len(), 12, "a chunk and its manifest each");
    for (key, bytes) in &objects {
        assert!(key.starts_with("stella/acme/traces/2026-11-"), "{key}");
        let local = fixture.dir.path().join(key.trim_start_matches("stella/"));
        match key.strip_suffix(".chunk") {
            Some(stem) => assert!(stem.ends_with(&hex::encode(Sha256::digest(bytes))), "{key} is named by its digest"),
            None => assert_eq!(&std::fs::read(local).unwrap(), bytes, "{key}: the manifest stays local, byte for byte"),
        }
    }
    let after: Vec<Vec<Vec<u8>>> =
        (0..6u8).map(|trace| store.records_with_trace("acme", &[trace; 16]).unwrap()).collect();
    assert_eq!(before, after, "traces read back through object storage");
    let report = store.check(false).unwrap();
    assert_eq!((report.chunks_ok, report.remote_ok), (6, 6), "{report:?}");
    assert!(report.damaged.is_empty() && report.stale_indexes.is_empty(), "{report:?}");

    let again = store.upload_pending(LocalCache::UpTo(0));
    assert_eq!((again.uploaded, again.evicted), (0, 0), "nothing is uploaded twice");
}

#[test]
fn a_damaged_or_missing_object_is_a_precise_error() {
    let fixture = Fixture::new();
    let store = fixture.store();
    fixture.seal(&store);
    assert!(store.upload_pending(LocalCache::UpTo(0)).error.is_none());
    let day = store.day("acme", "traces", &utc_day(START)).unwrap().unwrap();
    let sha256 = &day.chunks().next().unwrap().sha256;
    let path = fixture.day_dir(0).join(format!("{sha256}.chunk"));
    let key = ObjectPath::from(format!("stella/acme/traces/{}/{sha256}.chunk", day.day));

    fixture.runtime.block_on(fixture.bucket.put(&key, b"not the chunk".to_vec().into())).unwrap();
    let damaged = store.read_chunk(&path).unwrap_err();
    assert_eq!(damaged.code(), "store.remote_damaged", "{damaged}");
    assert!(damaged.to_string().contains(&key.to_string()), "the message names the object: {damaged}");
    let report = store.check(false).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert!(report.damaged[0].contains("is damaged"), "{report:?}");

    fixture.runtime.block_on(fixture.bucket.delete(&key)).unwrap();
    let missing = store.read_chunk(&path).unwrap_err();
    assert_eq!(missing.code(), "store.remote_missing", "{missing}");
    assert!(missing.to_string().contains("restore it from a copy of the bucket"), "{missing}");
}

#[test]
fn without_object_storage_an_evicted_chunk_is_named_and_not_reported_damaged() {
    let fixture = Fixture::new();
    let store = fixture.store();
    fixture.seal(&store);
    assert!(store.upload_pending(LocalCache::UpTo(0)).error.is_none());
    let offline = Store::new(fixture.dir.path().to_path_buf());
    let day = offline.day("acme", "traces", &utc_day(START)).unwrap().unwrap();
    let path = fixture.day_dir(0).join(format!("{}.chunk", day.chunks().next().unwrap().sha256));
    assert_eq!(offline.read_chunk(&path).unwrap_err().code(), "store.evicted");
    let report = offline.check(false).unwrap();
    assert_eq!(report.remote_unchecked.len(), 6, "{report:?}");
    assert!(report.damaged.is_empty(), "{report:?}");
    assert_eq!(offline.upload_pending(LocalCache::UpTo(0)).uploaded, 0, "no object storage, no uploads");
}

#[test]
fn retention_deletes_the_copies_in_object_storage_too() {
    let fixture = Fixture::new();
    let store = fixture.store();
    fixture.seal(&store);
    assert!(store.upload_pending(LocalCache::KeepAll).error.is_none());
    assert_eq!(fixture.objects().len(), 12);
    // The first day expires, the second is kept.
    let deleted = store.sweep("acme", "traces", START + DAY, &|_, _| false).unwrap();
    assert_eq!(deleted.len(), 3);
    let left = fixture.objects();
    assert_eq!(left.len(), 6, "{left:?}");
    assert!(left.iter().all(|(key, _)| key.contains(&utc_day(START + DAY))), "{left:?}");
    let uploaded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture.day_dir(1).join("uploaded.json")).unwrap()).unwrap();
    assert_eq!(uploaded["chunks"].as_array().map(Vec::len), Some(3), "{uploaded}");
    assert!(!fixture.day_dir(0).exists(), "the expired day is gone, its bookkeeping with it");
    store.sweep("acme", "traces", START + 3 * DAY, &|_, _| false).unwrap();
    assert!(fixture.objects().is_empty());
    assert!(store.check(false).unwrap().damaged.is_empty());
}

#[test]
fn an_unreachable_bucket_keeps_every_chunk_local_until_an_upload_is_confirmed() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fixture = Fixture::new();
    let remote = unreachable_bucket(&fixture);
    assert_eq!(remote.location(), "chunks/stella");
    let unreachable = Store::with_remote(fixture.dir.path().to_path_buf(), remote);
    fixture.seal(&unreachable);
    let failed = unreachable.upload_pending(LocalCache::UpTo(0));
    let error = failed.error.expect("the upload fails");
    assert_eq!(error.code(), "store.remote", "{error}");
    assert!(error.to_string().contains("chunks/stella/acme/traces/2026-11-29/"), "{error}");
    assert_eq!((failed.uploaded, failed.evicted, failed.waiting), (0, 0, 6));
    assert_eq!(fixture.local_chunks().len(), 6, "nothing leaves local disk unconfirmed");

    let reachable = fixture.store();
    let round = reachable.upload_pending(LocalCache::UpTo(0));
    assert_eq!((round.uploaded, round.evicted), (6, 6), "{:?}", round.error);
}

#[test]
fn retention_keeps_chunks_whose_copies_it_cannot_delete_until_a_later_sweep() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fixture = Fixture::new();
    let store = fixture.store();
    fixture.seal(&store);
    assert!(store.upload_pending(LocalCache::UpTo(0)).error.is_none());
    let unreachable = Store::with_remote(fixture.dir.path().to_path_buf(), unreachable_bucket(&fixture));
    let everything = START + 3 * DAY;
    assert!(unreachable.sweep("acme", "traces", everything, &|_, _| false).unwrap().is_empty(), "all kept");
    assert_eq!(fixture.objects().len(), 12);
    assert_eq!(store.sweep("acme", "traces", everything, &|_, _| false).unwrap().len(), 6);
    assert!(fixture.objects().is_empty());
}

#[test]
fn a_long_catch_up_goes_in_rounds_of_bounded_size() {
    let fixture = Fixture::new();
    let store = fixture.store();
    let mut sealer = Sealer::new("acme", Signal::Traces, SealLimits { max_records: 1, max_bytes: 1 << 20 });
    let total = ROUND_CHUNKS + 6;
    for n in 0..total {
        for chunk in sealer.add(n, request(n as u8, START + n * 1_000)).unwrap() {
            store.write(&chunk).unwrap();
        }
    }
    let first = store.upload_pending(LocalCache::UpTo(0));
    assert!(first.error.is_none(), "{:?}", first.error);
    assert_eq!((first.uploaded, first.evicted, first.waiting), (ROUND_CHUNKS, ROUND_CHUNKS, 6));
    let second = store.upload_pending(LocalCache::UpTo(0));
    assert_eq!((second.uploaded, second.evicted, second.waiting), (6, 6, 0));
}

#[test]
fn a_damaged_upload_record_is_rebuilt_by_uploading_again() {
    let fixture = Fixture::new();
    let store = fixture.store();
    fixture.seal(&store);
    assert!(store.upload_pending(LocalCache::KeepAll).error.is_none());
    std::fs::write(fixture.day_dir(0).join("uploaded.json"), b"{not json").unwrap();
    let round = store.upload_pending(LocalCache::KeepAll);
    assert!(round.error.is_none(), "{:?}", round.error);
    assert_eq!(round.uploaded, 3, "the day's chunks on disk go again");
    assert!(store.check(false).unwrap().damaged.is_empty());
}

#[test]
fn the_local_cache_keeps_the_newest_uploaded_chunks_within_its_bytes() {
    let fixture = Fixture::new();
    let store = fixture.store();
    fixture.seal(&store);
    let newest_day: u64 = fixture
        .local_chunks()
        .iter()
        .filter(|path| path.starts_with(fixture.day_dir(1)))
        .map(|path| std::fs::metadata(path).unwrap().len())
        .sum();
    let round = store.upload_pending(LocalCache::UpTo(newest_day));
    assert_eq!((round.uploaded, round.evicted), (6, 3), "{:?}", round.error);
    let left = fixture.local_chunks();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|path| path.starts_with(fixture.day_dir(1))), "the oldest day goes first: {left:?}");
}

#[test]
fn check_streams_the_copies_of_cached_chunks_when_asked() {
    let fixture = Fixture::new();
    let store = fixture.store();
    fixture.seal(&store);
    assert!(store.upload_pending(LocalCache::KeepAll).error.is_none());
    assert_eq!(store.check(false).unwrap().remote_ok, 0, "cached chunks are read from disk");
    let options = CheckOptions { repair: false, remote_copies: true };
    assert_eq!(store.check_with(options).unwrap().remote_ok, 6);
    let (key, _) = fixture.objects().into_iter().find(|(key, _)| key.ends_with(".chunk")).unwrap();
    fixture.runtime.block_on(fixture.bucket.put(&ObjectPath::from(key.as_str()), b"flipped".to_vec().into())).unwrap();
    let report = store.check_with(options).unwrap();
    assert_eq!((report.chunks_ok, report.remote_ok, report.damaged.len()), (6, 5, 1), "{report:?}");
    assert!(report.damaged[0].contains(&key), "{report:?}");
}
