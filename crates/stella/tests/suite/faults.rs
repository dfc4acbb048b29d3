//! #16, the faults that need the operating system's help: a full disk (a small tmpfs), a failing
//! `fdatasync` (`strace` fault injection), a backend that stalls on `Retry-After`, running out of file
//! descriptors (`prlimit`), a clock stepped 400 days ahead (`faketime`), memory amplification, and an
//! offline capture of what the server had not sealed yet.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{self, Stella, span_names, traces};
use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, any_value};
use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use stella_otlp::{OtlpRequest, Signal};

async fn wait_for(what: &str, mut done: impl FnMut() -> bool, logs: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn counts(names: Vec<String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    counts
}

const FILE_ONLY: &str = "storage: {sync: always}\nexporters:\n  file: {path: \"export/{signal}.jsonl\"}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [file]}\n    metrics: null\n    logs: null\n";

/// Lines of the server's log at ERROR level.
fn error_lines(stella: &Stella) -> usize {
    stella.log().lines().filter(|line| line.contains("\"level\":\"ERROR\"")).count()
}

/// Items 11 and 13 (ENOSPC): a full disk answers 503 + Retry-After, writes a bounded number of log lines
/// however many requests it refuses, recovers once there is room, and loses nothing it acknowledged.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_briefly_logs_little_and_loses_nothing() {
    let mut stella = Stella::prepare(&common::Extra::default(), FILE_ONLY);
    let data_dir = stella.data_dir();
    std::fs::create_dir_all(&data_dir).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"]).arg(&data_dir).status();
    assert!(
        mounted.is_ok_and(|status| status.success()),
        "this test mounts a small tmpfs as the data directory and needs root (as CI runs it)"
    );
    let _unmount = Unmount(data_dir.clone());
    stella.spawn();
    // Fill the disk up to a little room.
    let filler = data_dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    drop(file);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(std::fs::metadata(&filler).unwrap().len() - 32 * 1024)
        .unwrap();
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for index in 0..300 {
        let (status, retry_after) = stella.post(&traces(&format!("req-{index}"), 1)).await;
        match status {
            200 => acknowledged.push(format!("req-{index}-0")),
            503 => {
                assert!(retry_after.is_some(), "503 carries Retry-After");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused >= 200, "the full disk refused requests ({refused} of 300)");
    assert!(error_lines(&stella) <= 10, "refusals are logged a few times, not per request:\n{}", stella.log());
    assert!(stella.log().contains("ENOSPC"), "the log names the cause:\n{}", stella.log());
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = false;
    for index in 300..400 {
        let (status, _) = stella.post(&traces(&format!("req-{index}"), 1)).await;
        if status == 200 {
            acknowledged.push(format!("req-{index}-0"));
            recovered = true;
        }
    }
    assert!(recovered, "requests are taken again once there is room:\n{}", stella.log());
    wait_for(
        "every acknowledged request in the export",
        || {
            let exported = counts(span_names(&stella.exported(Signal::Traces)));
            acknowledged.iter().all(|name| exported.contains_key(name))
        },
        || stella.log(),
    )
    .await;
    assert!(stella.terminate().success());
    let exported = counts(span_names(&stella.exported(Signal::Traces)));
    for name in &acknowledged {
        assert_eq!(exported.get(name), Some(&1), "{name}: {exported:?}");
    }
}

/// Unmounts a tmpfs when dropped.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Item 13: `fdatasync` of the segment fails with EIO once. The client of that group gets 503; its record is
/// cut (never exported, so a retry makes no duplicate), a new segment takes the next records, and
/// everything acknowledged is exported exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_fsync_refuses_its_record_for_good_and_the_log_goes_on() {
    let mut stella = Stella::prepare(&common::Extra::default(), FILE_ONLY);
    let segment = stella.data_dir().join("log/traces/default/00000000000000000000.seg");
    let segment = segment.to_str().unwrap().to_string();
    stella.spawn_wrapped(&[
        "strace",
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        "-P",
        &segment,
        "-e",
        "trace=fdatasync",
        "-e",
        "inject=fdatasync:error=EIO:when=3",
    ]);
    let mut statuses = Vec::new();
    for index in 0..8 {
        statuses.push(stella.post(&traces(&format!("sync-{index}"), 1)).await.0);
    }
    assert_eq!(statuses, [200, 200, 503, 200, 200, 200, 200, 200], "{}", stella.log());
    wait_for("the export", || span_names(&stella.exported(Signal::Traces)).len() == 7, || stella.log()).await;
    assert!(stella.terminate_wrapped().success());
    let exported = counts(span_names(&stella.exported(Signal::Traces)));
    assert!(!exported.contains_key("sync-2-0"), "the record whose sync failed is gone: {exported:?}");
    assert!(exported.values().all(|count| *count == 1), "{exported:?}");
    let log = stella.log();
    assert!(log.contains("\"errno\":\"EIO\""), "the refusal names the cause:\n{log}");
}

/// A backend that answers every request `503` with `Retry-After: 3600`; returns its port.
fn stalling_backend() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buffer = [0u8; 64 * 1024];
                while let Ok(read) = stream.read(&mut buffer) {
                    if read == 0 {
                        break;
                    }
                    let answer = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3600\r\nContent-Length: 0\r\n\r\n";
                    if stream.write_all(answer.as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// Item 14: while the exporter waits an hour on `Retry-After`, the backlog gauge counts every undelivered
/// record and the seconds since its last success keep growing.
#[tokio::test(flavor = "multi_thread")]
async fn the_backlog_and_the_stall_show_while_a_backend_says_retry_after_an_hour() {
    let port = stalling_backend();
    let body = format!(
        "exporters:\n  otlphttp: {{endpoint: \"http://127.0.0.1:{port}\", timeout: 2s}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [], exporters: [otlphttp]}}\n    metrics: null\n    logs: null\n"
    );
    let mut stella = Stella::start(&body);
    for index in 0..20 {
        assert_eq!(stella.post(&traces(&format!("stalled-{index}"), 1)).await.0, 200);
    }
    let backlog = "collector_exporter_backlog_records{exporter=\"otlphttp\",tenant=\"default\"}";
    let since = "collector_exporter_seconds_since_last_success{exporter=\"otlphttp\",tenant=\"default\"}";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (records, seconds) = (stella.metric(backlog).await, stella.metric(since).await);
        if records == Some(20.0) && seconds.is_some_and(|seconds| seconds >= 2.0) {
            break;
        }
        assert!(Instant::now() < deadline, "backlog {records:?}, seconds since success {seconds:?}\n{}", stella.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(stella.terminate().success());
}

/// Item 15: out of file descriptors (`prlimit`, with connections held open), new connections to a
/// receiver are closed at once instead of hanging, `/readyz` still answers, the log stays short, and
/// everything works again once the connections go.
#[tokio::test(flavor = "multi_thread")]
async fn out_of_descriptors_refuses_quickly_and_keeps_health_reachable() {
    let mut stella = Stella::prepare(&common::Extra::default(), FILE_ONLY);
    stella.spawn_wrapped(&["prlimit", "--nofile=64:64", "--"]);
    let held: Vec<std::net::TcpStream> =
        (0..80).filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", stella.http)).ok()).collect();
    assert!(held.len() >= 64, "connections held: {}", held.len());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let started = Instant::now();
    let refused = client
        .post(stella.url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(traces("no-descriptor", 1).encode_protobuf())
        .send()
        .await;
    assert!(
        refused.as_ref().is_err_and(|error| !error.is_timeout())
            || refused.as_ref().is_ok_and(|answer| answer.status() == 503),
        "refused, not left hanging: {refused:?} after {:?}",
        started.elapsed()
    );
    let ready = client.get(stella.api_url("/readyz")).send().await;
    assert!(ready.is_ok(), "health answers from the descriptor reserve: {ready:?}\n{}", stella.log());
    let warnings = stella.log().lines().filter(|line| line.contains("file descriptors")).count();
    assert!(warnings <= 5, "a few lines, not one per attempt ({warnings}):\n{}", stella.log());
    drop(held);
    let mut accepted = false;
    for _ in 0..100 {
        let sent = client
            .post(stella.url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(traces("after", 1).encode_protobuf())
            .send()
            .await;
        if sent.is_ok_and(|answer| answer.status() == 200) {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "{}", stella.log());
    assert!(stella.terminate().success());
}

/// Spans timestamped now (retention measures chunks by their newest item).
fn recent_traces(prefix: &str) -> OtlpRequest {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut request = traces(prefix, 1);
    if let OtlpRequest::Traces(ExportTraceServiceRequest { resource_spans }) = &mut request {
        for span in resource_spans.iter_mut().flat_map(|r| &mut r.scope_spans).flat_map(|s| &mut s.spans) {
            span.start_time_unix_nano = now - 1_000_000;
            span.end_time_unix_nano = now;
        }
    }
    request
}

fn chunk_files(store: &Path) -> usize {
    fn walk(dir: &Path, found: &mut usize) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|extension| extension == "chunk") {
                *found += 1;
            }
        }
    }
    let mut found = 0;
    walk(store, &mut found);
    found
}

/// Item 16: with the clock stepped 400 days ahead, retention deletes nothing newer than a day past the
/// newest record it has (it pauses, warns and counts) instead of deleting the whole store.
#[tokio::test(flavor = "multi_thread")]
async fn a_clock_stepped_400_days_ahead_does_not_delete_the_store() {
    let body = "exporters:\n  store: {max_chunk_records: 1, sweep_interval: 1s, retention: {default: 30d}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [store]}\n    metrics: null\n    logs: null\n";
    let mut stella = Stella::start(body);
    for index in 0..5 {
        assert_eq!(stella.post(&recent_traces(&format!("kept-{index}"))).await.0, 200);
    }
    let store = stella.data_dir().join("store");
    wait_for("five sealed chunks", || chunk_files(&store) == 5, || stella.log()).await;
    assert!(stella.terminate().success());
    let library = std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("faketime/libfaketime.so.1"))
        .find(|path| path.exists())
        .expect("libfaketime is not installed; run ./scripts/test.sh, which installs Debian's `faketime`");
    let preload = format!("LD_PRELOAD={}", library.display());
    stella.spawn_wrapped(&["env", &preload, "FAKETIME=+400d"]);
    let paused = "telemetry_retention_paused_total{tenant=\"default\",signal=\"traces\"}";
    let deadline = Instant::now() + Duration::from_secs(60);
    while stella.metric(paused).await.is_none_or(|count| count < 2.0) {
        assert!(Instant::now() < deadline, "retention did not run:\n{}", stella.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(chunk_files(&store), 5, "nothing deleted:\n{}", stella.log());
    assert!(stella.log().contains("retention.paused"), "{}", stella.log());
    assert!(stella.terminate().success());
}

/// A logs request of one record whose body is `bytes` of one repeated letter.
fn big_log(bytes: usize) -> OtlpRequest {
    let record = LogRecord {
        body: Some(AnyValue { value: Some(any_value::Value::StringValue("a".repeat(bytes))) }),
        ..Default::default()
    };
    OtlpRequest::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs { log_records: vec![record], ..Default::default() }],
            ..Default::default()
        }],
    })
}

/// The process's peak resident memory, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

/// What the process may hold beyond `max_inflight_mib` (runtime, buffers, the ingest log's group buffer);
/// the README states it.
const FIXED_OVERHEAD_MIB: u64 = 192;

/// Item 7: amplification probes against `max_inflight_mib: 64`: eight concurrent gzip bodies of a few
/// hundred KiB that each inflate to one 60 MiB record (half of them hiding that size from the gzip
/// trailer), and an 8 MiB protobuf of 4,194,304 empty log
/// records. All are refused (413 or 429 + Retry-After), the process lives on, and its peak memory stays
/// within the budget plus the fixed overhead.
#[tokio::test(flavor = "multi_thread")]
async fn amplified_requests_are_refused_within_the_memory_budget() {
    let extra =
        common::Extra { receiver: "max_inflight_mib: 64", caps: Some((20 * 1024 * 1024, 64)), ..Default::default() };
    let body = "exporters:\n  nop: {}\nservice:\n  pipelines:\n    logs: {receivers: [otlp], processors: [], exporters: [nop]}\n    traces: null\n    metrics: null\n";
    let mut stella = Stella::start_with_receiver(&extra, body);
    let inflating = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&big_log(60 * 1024 * 1024).encode_protobuf()).unwrap();
        encoder.finish().unwrap()
    };
    assert!(inflating.len() < 512 * 1024, "a few hundred KiB on the wire: {}", inflating.len());
    // The same with a last gzip member of no bytes, so that the trailer does not tell the size.
    let hiding = {
        let mut body = inflating.clone();
        body.extend_from_slice(
            &flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best()).finish().unwrap(),
        );
        body
    };
    let client = reqwest::Client::new();
    let mut probes = Vec::new();
    for probe in 0..8 {
        let request = client
            .post(stella.url("/v1/logs"))
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "gzip")
            .body(if probe % 2 == 0 { inflating.clone() } else { hiding.clone() })
            .send();
        probes.push(tokio::spawn(async move {
            let answer = request.await.unwrap();
            (answer.status().as_u16(), answer.headers().contains_key("retry-after"))
        }));
    }
    for probe in probes {
        let (status, retry_after) = probe.await.unwrap();
        assert!(status == 413 || (status == 429 && retry_after), "refused: {status}");
    }
    let empty_records = OtlpRequest::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs { log_records: vec![LogRecord::default(); 4_194_304], ..Default::default() }],
            ..Default::default()
        }],
    })
    .encode_protobuf();
    assert!(empty_records.len() < 9 * 1024 * 1024);
    let answer = client
        .post(stella.url("/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .body(empty_records)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413, "{}", answer.text().await.unwrap());
    assert_eq!(stella.post(&big_log(100)).await.0, 200, "the process lives on and takes normal requests");
    let peak = peak_rss_mib(stella.pid());
    assert!(peak <= 64 + FIXED_OVERHEAD_MIB, "peak RSS {peak} MiB over 64 + {FIXED_OVERHEAD_MIB} MiB");
    assert!(stella.terminate().success());
}

/// Item 9: an offline capture of a stopped server equals the capture the server made of the same window,
/// records of the open chunk (never sealed) included, signed with the config's `evidence.signing_key`.
#[tokio::test(flavor = "multi_thread")]
async fn an_offline_capture_equals_the_server_capture_open_chunk_and_key_included() {
    let keys = tempfile::tempdir().unwrap();
    let generated = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "keys", "generate", "--out"])
        .arg(keys.path())
        .status()
        .unwrap();
    assert!(generated.success());
    let key = keys.path().join("signing-key.pem");
    let body = format!(
        "evidence: {{signing_key: \"{}\"}}\nexporters:\n  store: {{max_chunk_records: 100000, max_chunk_bytes: 100000000}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [], exporters: [store]}}\n    metrics: null\n    logs: null\n",
        key.display()
    );
    let mut stella = Stella::start(&body);
    for index in 0..20 {
        assert_eq!(stella.post(&traces(&format!("open-{index}"), 3)).await.0, 200);
    }
    let window = "2023-11-14T00:00:00Z..2023-11-15T00:00:00Z";
    let online = stella.dir.path().join("online.tar.gz");
    let offline = stella.dir.path().join("offline.tar.gz");
    let server = format!("http://127.0.0.1:{}", stella.api);
    let captured = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "capture", "--window", window, "--server", &server, "--out"])
        .arg(&online)
        .output()
        .unwrap();
    assert!(captured.status.success(), "{}", String::from_utf8_lossy(&captured.stderr));
    assert!(stella.terminate().success());
    assert_eq!(
        chunk_files(&stella.data_dir().join("store")),
        0,
        "nothing was sealed: every record is in the open chunk"
    );
    let captured = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "capture", "--window", window, "--data-dir"])
        .arg(stella.data_dir())
        .arg("--config")
        .arg(&stella.config_path)
        .arg("--out")
        .arg(&offline)
        .output()
        .unwrap();
    assert!(captured.status.success(), "{}", String::from_utf8_lossy(&captured.stderr));
    assert_eq!(std::fs::read(&online).unwrap(), std::fs::read(&offline).unwrap(), "byte-identical bundles");
    let verified = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "verify"])
        .arg(&offline)
        .arg("--trusted-key")
        .arg(keys.path().join("signing-key.pub.pem"))
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
}
