//! Signed forensic bundles, whole binary: the API and `capture --data-dir` give the same bytes, `verify`
//! reports each failure class with its exit code, `replay` re-sends what a bundle holds, keys files have
//! their modes, and the export route is scoped and tenant-checked.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{Stella, traces};

/// The harness's spans are from 2023-11-14; this window holds them.
const WINDOW: &str = "2023-11-14T00:00:00Z..2023-11-16T00:00:00Z";

fn store_only(extra: &str) -> String {
    format!(
        "{extra}exporters:\n  store: {{max_chunk_records: 3, retention: {{default: 36500d}}}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [], exporters: [store]}}\n    metrics: null\n    logs: null\n"
    )
}

fn stella(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stella")).args(args).output().unwrap()
}

fn ok_json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn path_of(path: &Path) -> &str {
    path.to_str().unwrap()
}

async fn wait_for_chunks(store: &Path, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let chunks = walk(store).into_iter().filter(|name| name.ends_with(".chunk")).count();
        if chunks >= count {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {count} chunks");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn walk(root: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                stack.push(entry.path());
            } else {
                names.push(entry.path().display().to_string());
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_and_offline_captures_are_identical_and_verify_and_replay() {
    let mut server = Stella::start(&store_only(""));
    for index in 0..9 {
        assert_eq!(server.post(&traces(&format!("ev-{index}"), 4)).await.0, 200);
    }
    wait_for_chunks(&server.data_dir().join("store"), 3).await;
    let out = tempfile::tempdir().unwrap();
    let remote = out.path().join("remote.tar.zst");
    let answer = ok_json(&stella(&[
        "telemetry",
        "capture",
        "--window",
        WINDOW,
        "--out",
        path_of(&remote),
        "--compression",
        "zstd",
        "--json",
        "--server",
        &server.api_url(""),
    ]));
    let public_key = server.data_dir().join("keys/signing-key.pub.pem");
    assert!(public_key.is_file(), "the server generated its key under <data-dir>/keys");
    assert_eq!(server.metric("telemetry_bundle_generation_seconds_count{kind=\"on_demand\"}").await, Some(1.0));
    assert!(server.terminate().success());

    // Offline, from the same store with the same key: the same bytes.
    let local = out.path().join("local.tar.zst");
    let offline = ok_json(&stella(&[
        "telemetry",
        "capture",
        "--window",
        WINDOW,
        "--out",
        path_of(&local),
        "--compression",
        "zstd",
        "--json",
        "--data-dir",
        path_of(&server.data_dir()),
    ]));
    assert_eq!(std::fs::read(&remote).unwrap(), std::fs::read(&local).unwrap(), "byte-identical bundles");
    assert_eq!(answer["sha256"], offline["sha256"]);
    assert_eq!(offline["manifest"]["totals"]["records"], 9);
    assert_eq!(offline["manifest"]["totals"]["items"], 36);
    assert_eq!(offline["manifest"]["source_chunks"].as_array().unwrap().len(), 3);
    assert_eq!(offline["manifest"]["time_range"]["min_time_unix_nano"], "1700000000000000000");

    // A window that holds none of the records gives an empty, still signed bundle.
    let empty = out.path().join("empty.tar.gz");
    let nothing = ok_json(&stella(&[
        "telemetry",
        "capture",
        "--window",
        "2024-01-01T00:00:00Z..2024-01-02T00:00:00Z",
        "--out",
        path_of(&empty),
        "--json",
        "--data-dir",
        path_of(&server.data_dir()),
    ]));
    assert_eq!(nothing["manifest"]["totals"]["records"], 0);

    let verified =
        ok_json(&stella(&["telemetry", "verify", path_of(&local), "--trusted-key", path_of(&public_key), "--json"]));
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["manifest"]["tenant"], "default");
    assert_eq!(verified["signer"]["keyid"], answer["signer"]);

    // Someone else's key: untrusted (12). A flipped byte in the archive: refused, never a panic.
    let other = out.path().join("other");
    ok_json(&stella(&["telemetry", "keys", "generate", "--out", path_of(&other), "--json"]));
    let untrusted =
        stella(&["telemetry", "verify", path_of(&local), "--trusted-key", path_of(&other.join("signing-key.pub.pem"))]);
    assert_eq!(untrusted.status.code(), Some(12), "{}", String::from_utf8_lossy(&untrusted.stderr));
    assert!(String::from_utf8_lossy(&untrusted.stderr).contains("bundle.untrusted_key"));
    let mut bytes = std::fs::read(&local).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let damaged = out.path().join("damaged.tar.zst");
    std::fs::write(&damaged, bytes).unwrap();
    let refused = stella(&["telemetry", "verify", path_of(&damaged), "--trusted-key", path_of(&public_key)]);
    assert!(
        matches!(refused.status.code(), Some(10 | 14)),
        "{:?} {}",
        refused.status,
        String::from_utf8_lossy(&refused.stderr)
    );
    let missing = stella(&["telemetry", "verify", "/nonexistent.tar.gz", "--trusted-key", path_of(&public_key)]);
    assert_eq!(missing.status.code(), Some(15));

    // Replay into a fresh server, capture it there: the same records and items.
    let mut second = Stella::start(&store_only(""));
    let replayed = stella(&[
        "telemetry",
        "replay",
        path_of(&local),
        "--endpoint",
        &second.url(""),
        "--trusted-key",
        path_of(&public_key),
    ]);
    assert!(replayed.status.success(), "{}", String::from_utf8_lossy(&replayed.stderr));
    let again = out.path().join("again.tar.gz");
    let recaptured = ok_json(&stella(&[
        "telemetry",
        "capture",
        "--window",
        WINDOW,
        "--out",
        path_of(&again),
        "--json",
        "--server",
        &second.api_url(""),
    ]));
    assert!(second.terminate().success());
    let second_key = second.data_dir().join("keys/signing-key.pub.pem");
    let reverified =
        ok_json(&stella(&["telemetry", "verify", path_of(&again), "--trusted-key", path_of(&second_key), "--json"]));
    assert_eq!(reverified["manifest"]["totals"]["records"], 9);
    assert_eq!(reverified["manifest"]["totals"]["items"], 36);
    assert_eq!(
        reverified["manifest"]["files"][0]["sha256"], offline["manifest"]["files"][0]["sha256"],
        "same records, same order"
    );
    assert_ne!(recaptured["signer"], answer["signer"], "signed by the second server's own key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_route_needs_the_export_scope_and_the_tokens_tenant() {
    let body = format!("auth: {{enabled: true}}\ntenants: [{{id: acme}}, {{id: globex}}]\n{}", store_only(""));
    let mut server = Stella::prepare(&common::Extra::default(), &body);
    let token = |tenant: &str, scopes: &str| {
        common::tokens(&server.data_dir(), &["create", "--tenant", tenant, "--scopes", scopes])["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (reader, exporter, operator) = (token("acme", "read"), token("acme", "export"), token("acme", "operator"));
    server.spawn();
    let client = reqwest::Client::new();
    let get = |path: String, token: String| {
        let request = client.get(server.api_url(&path)).bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap().to_vec())
        }
    };
    let window = "/telemetry/exports/forensic/2023-11-14T00%3A00%3A00Z..2023-11-16T00%3A00%3A00Z";
    assert_eq!(get(window.to_string(), reader).await.0, 403, "read is not export");
    let (status, body) = get(format!("{window}?tenant=globex"), exporter.clone()).await;
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("auth.tenant_mismatch"));
    let (status, body) = get("/telemetry/exports/forensic/yesterday".into(), exporter.clone()).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("bundle.window_invalid"));
    let (status, bundle) = get(window.to_string(), exporter).await;
    assert_eq!(status, 200);
    assert_eq!(&bundle[..2], &[0x1f, 0x8b], "a gzip archive");
    assert_eq!(get(format!("{window}?tenant=globex"), operator).await.0, 200, "operators may name a tenant");
    let audit = std::fs::read_to_string(server.data_dir().join("audit/audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"action\":\"export.forensic\"").count(), 2, "{audit}");
    assert!(server.terminate().success());
}

/// The harness's trace request with its spans moved to now.
fn traces_now(prefix: &str, spans: usize) -> stella_otlp::OtlpRequest {
    let mut request = traces(prefix, spans);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    if let stella_otlp::OtlpRequest::Traces(traces) = &mut request {
        for span in
            traces.resource_spans.iter_mut().flat_map(|group| &mut group.scope_spans).flat_map(|scope| &mut scope.spans)
        {
            (span.start_time_unix_nano, span.end_time_unix_nano) = (now - 1_000_000, now);
        }
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_incident_mode_off_archives_the_incident_windows_bundle_and_audits_its_digest() {
    let (hook, calls) = webhook().await;
    let mut server = Stella::start(&store_only(&format!(
        "incident: {{lookback: 2h, notify: {{webhook: \"http://{hook}/incident\"}}}}\n"
    )));
    let client = reqwest::Client::new();
    let toggle = |state: &str| {
        let request = client
            .post(server.api_url("/telemetry/incidents/mode"))
            .json(&serde_json::json!({"state": state, "reason": "sev1 drill"}));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(server.post(&traces_now("before", 2)).await.0, 200, "within the lookback: in the bundle");
    assert_eq!(toggle("on").await, 200);
    for index in 0..4 {
        assert_eq!(server.post(&traces_now(&format!("during-{index}"), 3)).await.0, 200);
    }
    assert_eq!(server.post(&traces("long-ago", 5)).await.0, 200, "2023: outside the window");
    assert_eq!(toggle("off").await, 200);
    let audit = std::fs::read_to_string(server.data_dir().join("audit/audit.jsonl")).unwrap();
    let off: serde_json::Value = audit
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .rfind(|line| line["action"] == "incident.mode")
        .unwrap();
    let bundle = &off["parameters"]["bundle"];
    assert_eq!(bundle["records"], 5, "{bundle}");
    let path = bundle["path"].as_str().unwrap();
    let key = server.data_dir().join("keys/signing-key.pub.pem");
    let verified = ok_json(&stella(&["telemetry", "verify", path, "--trusted-key", path_of(&key), "--json"]));
    assert_eq!(verified["manifest"]["totals"]["items"], 14);
    use sha2::Digest;
    assert_eq!(bundle["sha256"].as_str().unwrap(), hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap())));
    let window = &bundle["window"];
    let seconds = |text: &serde_json::Value| text.as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_second();
    assert!(seconds(&window["end"]) - seconds(&window["start"]) >= 7200, "incident.lookback 2h: {window}");
    // The webhook heard both toggles, the second with the bundle's digest.
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "webhook calls: {:?}", calls.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = calls.lock().unwrap().clone();
    assert_eq!((calls[0]["change"]["state"].as_str(), calls[1]["change"]["state"].as_str()), (Some("on"), Some("off")));
    assert_eq!(calls[1]["change"]["bundle"]["sha256"], bundle["sha256"]);
    assert_eq!(calls[1]["tenant"], "default");
    assert!(server.terminate().success());
}

/// A webhook receiver on loopback: the JSON bodies POSTed to it, answered 200.
async fn webhook() -> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            let body = loop {
                let read = socket.read(&mut buffer).await.unwrap_or(0);
                if read == 0 {
                    break None;
                }
                request.extend_from_slice(&buffer[..read]);
                let text = String::from_utf8_lossy(&request).to_string();
                let Some(end) = text.find("\r\n\r\n") else { continue };
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|value| value.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    break Some(request[end + 4..end + 4 + length].to_vec());
                }
            };
            if let Some(body) = body {
                seen.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            }
        }
    });
    (address, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_bundles_cover_aligned_intervals_and_land_in_the_archive() {
    let mut server = Stella::start(&store_only("evidence: {schedule: {interval: 10s, compression: zstd}}\n"));
    let archive = server.data_dir().join("archive/default");
    let deadline = Instant::now() + Duration::from_secs(30);
    let bundles = loop {
        assert_eq!(server.post(&traces_now("scheduled", 2)).await.0, 200);
        let names: Vec<String> = std::fs::read_dir(&archive)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("scheduled-") && name.ends_with(".tar.zst"))
            .collect();
        if names.len() >= 2 {
            break names;
        }
        assert!(Instant::now() < deadline, "no two scheduled bundles within 30s: {names:?}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        server.metric("telemetry_bundle_generation_failures_total{kind=\"scheduled\",code=\"bundle.io\"}").await,
        None
    );
    let key = server.data_dir().join("keys/signing-key.pub.pem");
    for name in bundles {
        let path = archive.join(&name);
        let verified =
            ok_json(&stella(&["telemetry", "verify", path_of(&path), "--trusted-key", path_of(&key), "--json"]));
        let window = &verified["manifest"]["window"];
        let (start, end) = (window["start"].as_str().unwrap(), window["end"].as_str().unwrap());
        let seconds = |text: &str| text.parse::<jiff::Timestamp>().unwrap().as_second();
        assert_eq!(seconds(end) - seconds(start), 10, "{name}");
        assert_eq!(seconds(start) % 10, 0, "aligned: {name}");
    }
    assert!(server.terminate().success());
}

#[test]
fn keys_generate_writes_private_0600_and_public_0644_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let answer = ok_json(&stella(&["telemetry", "keys", "generate", "--out", path_of(&keys), "--json"]));
    assert_eq!(answer["kind"], "ed25519");
    assert_eq!(answer["keyid"].as_str().unwrap().len(), 64);
    let mode = |name: &str| std::fs::metadata(keys.join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("signing-key.pem"), mode("signing-key.pub.pem")), (0o600, 0o644));
    let again = stella(&["telemetry", "keys", "generate", "--out", path_of(&keys)]);
    assert!(!again.status.success(), "an existing key is never replaced");
    let hmac = dir.path().join("hmac");
    let answer =
        ok_json(&stella(&["telemetry", "keys", "generate", "--out", path_of(&hmac), "--kind", "hmac", "--json"]));
    assert_eq!((answer["integrity_only"].as_bool(), answer["public_key"].is_null()), (Some(true), true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_verifies_and_writes_the_signed_profile_and_serve_runs_only_a_verified_config() {
    let mut server = Stella::start(&store_only(""));
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("config");
    let server_key = server.data_dir().join("keys/signing-key.pub.pem");
    let answer = reqwest::get(server.api_url("/telemetry/config/profile/nightly")).await.unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    assert!(answer.text().await.unwrap().contains("default, forensic, airgap"));

    // Someone else's key: refused, nothing written.
    let stranger = dir.path().join("stranger");
    ok_json(&stella(&["telemetry", "keys", "generate", "--out", path_of(&stranger), "--json"]));
    let refused = stella(&[
        "telemetry",
        "deploy",
        "--profile",
        "forensic",
        "--config-dir",
        path_of(&config_dir),
        "--no-reload",
        "--trusted-key",
        path_of(&stranger.join("signing-key.pub.pem")),
        "--server",
        &server.api_url(""),
    ]);
    assert_eq!(refused.status.code(), Some(12), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(!config_dir.join("collector.yaml").exists());

    let deployed = ok_json(&stella(&[
        "telemetry",
        "deploy",
        "--profile",
        "forensic",
        "--config-dir",
        path_of(&config_dir),
        "--no-reload",
        "--json",
        "--trusted-key",
        path_of(&server_key),
        "--server",
        &server.api_url(""),
    ]));
    assert_eq!(deployed["profile"], "forensic");
    let yaml = std::fs::read_to_string(config_dir.join("collector.yaml")).unwrap();
    assert!(yaml.contains("interval: 1h"), "the forensic profile's YAML: {yaml}");
    assert!(server.terminate().success());

    // serve --config-dir runs it once verified (the profile listens on the default ports).
    let data = dir.path().join("data");
    let serve = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stella"));
        command.args(["telemetry", "serve", "--profile", "forensic", "--data-dir", path_of(&data), "--config-dir"]);
        command.arg(&config_dir).args(extra);
        command.stderr(std::process::Stdio::piped()).stdout(std::process::Stdio::null());
        command
    };
    let mut running = serve(&["--trusted-key", path_of(&server_key)]).spawn().unwrap();
    let mut log = String::new();
    {
        use std::io::Read;
        let mut stderr = running.stderr.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buffer = [0u8; 4096];
        while !log.contains("stella telemetry is running") && !log.contains("cannot listen") {
            assert!(Instant::now() < deadline, "{log}");
            let read = stderr.read(&mut buffer).unwrap();
            assert!(read > 0, "serve exited: {log}");
            log.push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
    }
    assert!(log.contains("signed config verified"), "{log}");
    running.kill().unwrap();
    running.wait().unwrap();

    // A changed config, or no trusted key for it: serve refuses to start (invalid config, exit 3).
    let untrusted = serve(&[]).output().unwrap();
    assert_eq!(untrusted.status.code(), Some(3), "{}", String::from_utf8_lossy(&untrusted.stderr));
    assert!(String::from_utf8_lossy(&untrusted.stderr).contains("bundle.untrusted_key"));
    std::fs::write(config_dir.join("collector.yaml"), yaml.replace("interval: 1h", "interval: 2h")).unwrap();
    let changed = serve(&["--trusted-key", path_of(&server_key)]).output().unwrap();
    assert_eq!(changed.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&changed.stderr).contains("bundle.digest_mismatch"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rotated_export_file_gets_a_signed_manifest_that_verify_checks() {
    let config = "exporters:\n  file: {path: \"staged/{signal}.pb\", format: proto, rotation: {max_megabytes: 1, max_backups: 0}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [file]}\n    metrics: null\n    logs: null\n";
    let mut server = Stella::start(config);
    let big = "x".repeat(400 * 1024);
    for index in 0..6 {
        let mut request = traces(&format!("rotate-{index}"), 1);
        if let stella_otlp::OtlpRequest::Traces(traces) = &mut request {
            traces.resource_spans[0].scope_spans[0].spans[0].name = big.clone();
        }
        assert_eq!(server.post(&request).await.0, 200);
    }
    let staged = server.data_dir().join("staged");
    let deadline = Instant::now() + Duration::from_secs(20);
    let manifests = loop {
        let manifests: Vec<std::path::PathBuf> = std::fs::read_dir(&staged)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.to_string_lossy().ends_with(".dsse.json"))
            .collect();
        if manifests.len() >= 2 {
            break manifests;
        }
        assert!(Instant::now() < deadline, "no signed rotations: {}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(server.terminate().success());
    let key = server.data_dir().join("keys/signing-key.pub.pem");
    for manifest in &manifests {
        let verified =
            ok_json(&stella(&["telemetry", "verify", path_of(manifest), "--trusted-key", path_of(&key), "--json"]));
        let file = manifest.to_string_lossy().trim_end_matches(".dsse.json").to_string();
        assert_eq!(verified["files"][0]["path"].as_str(), Path::new(&file).file_name().unwrap().to_str());
        assert_eq!(verified["files"][0]["size"].as_u64(), Some(std::fs::metadata(&file).unwrap().len()));
    }
    let file = manifests[0].to_string_lossy().trim_end_matches(".dsse.json").to_string();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let changed = stella(&["telemetry", "verify", path_of(&manifests[0]), "--trusted-key", path_of(&key)]);
    assert_eq!(changed.status.code(), Some(10), "{}", String::from_utf8_lossy(&changed.stderr));
}
