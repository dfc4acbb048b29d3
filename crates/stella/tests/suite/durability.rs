//! #16: nothing acknowledged is lost, nobody gets in. Each test reproduces one scenario of the issue with
//! real processes and real files (damaged segments, a corrupted cursor, a full disk, a failing fsync, a
//! backend stalling on `Retry-After`, a stepped clock, a concurrent admin) and asserts the invariant:
//! every acknowledged record delivered exactly once (or counted as a duplicate), never skipped.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{self, Stella, span_names, traces};
use stella_otlp::Signal;

/// Waits (at most 60 s) until `done`; the failure shows `logs`.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool, logs: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How often each span name occurs in `names`.
fn counts(names: Vec<String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    counts
}

/// The segments of the traces log of tenant `default`, oldest first.
fn segments(stella: &Stella, log: &str) -> Vec<PathBuf> {
    let dir = stella.data_dir().join("log").join(log).join("default");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "seg"))
        .collect();
    segments.sort();
    segments
}

fn flip_byte_in_the_middle(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(path, bytes).unwrap();
}

fn stella_command(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stella")).args(args).output().unwrap()
}

const FILE_ONLY: &str = "storage: {sync: always}\nexporters:\n  file: {path: \"export/{signal}.jsonl\"}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [file]}\n    metrics: null\n    logs: null\n";

/// Items 2: a flipped byte in the middle of the last segment is damage, not a torn tail: the records
/// after it are kept, the damage is quarantined, counted and reported by `store check`, and every request
/// acknowledged after the restart is delivered (sequence numbers never go back below the cursors).
#[tokio::test(flavor = "multi_thread")]
async fn damage_in_the_last_segment_keeps_what_follows_and_everything_acknowledged_later_arrives() {
    let mut stella = Stella::start(FILE_ONLY);
    for index in 0..40 {
        assert_eq!(stella.post(&traces(&format!("before-{index}"), 1)).await.0, 200);
    }
    assert!(stella.terminate().success());
    let last = segments(&stella, "traces").pop().unwrap();
    flip_byte_in_the_middle(&last);
    stella.spawn();
    for index in 0..20 {
        assert_eq!(stella.post(&traces(&format!("after-{index}"), 1)).await.0, 200);
    }
    let damaged = "telemetry_ingest_log_damaged_records_total{log=\"traces\",tenant=\"default\"}";
    assert_eq!(stella.metric(damaged).await, Some(1.0), "one record lost to the damage, counted");
    let ready: serde_json::Value = reqwest::get(stella.api_url("/readyz")).await.unwrap().json().await.unwrap();
    let file = ready["components"].as_array().unwrap().iter().find(|c| c["component"] == "exporters.file").unwrap();
    assert_eq!(file["state"], "degraded", "{ready}");
    assert!(file["detail"].as_str().unwrap().contains("quarantined"), "{ready}");
    wait_for(
        "the new requests in the export",
        || span_names(&stella.exported(Signal::Traces)).len() == 60,
        || stella.log(),
    )
    .await;
    assert!(stella.terminate().success());
    let log = stella.log();
    assert!(!log.contains("cut off a torn last record"), "damage is not a torn tail:\n{log}");
    assert!(log.contains("log.damaged"), "the damage is logged:\n{log}");
    let exported = counts(span_names(&stella.exported(Signal::Traces)));
    for index in 0..20 {
        assert_eq!(exported.get(&format!("after-{index}-0")), Some(&1), "after-{index}: {exported:?}");
    }
    assert!(exported.values().all(|count| *count == 1), "nothing twice: {exported:?}");
    let data_dir = stella.data_dir();
    let check = stella_command(&["telemetry", "store", "check", "--data-dir", data_dir.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success() && said.contains("QUARANTINED"), "store check reports it:\n{said}");
}

/// Item 2: `truncate -s -100` of the last segment: the acknowledged records cut off are gone, but their
/// numbers are never handed out again, so the first request acknowledged after the restart arrives.
#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_last_segment_never_hides_the_next_requests() {
    let mut stella = Stella::start(FILE_ONLY);
    for index in 0..10 {
        assert_eq!(stella.post(&traces(&format!("before-{index}"), 1)).await.0, 200);
    }
    wait_for("the first export", || span_names(&stella.exported(Signal::Traces)).len() == 10, || stella.log()).await;
    assert!(stella.terminate().success());
    let last = segments(&stella, "traces").pop().unwrap();
    let length = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&last).unwrap().set_len(length - 100).unwrap();
    stella.spawn();
    assert_eq!(stella.post(&traces("after-restart", 1)).await.0, 200);
    wait_for(
        "the request after the restart in the export",
        || span_names(&stella.exported(Signal::Traces)).contains(&"after-restart-0".to_string()),
        || stella.log(),
    )
    .await;
    assert!(stella.terminate().success());
}

/// A sender whose `otlphttp/sink` exporter delivers to `target` (down until started), with small
/// segments so a backlog spans several of them.
fn sender_to(target: &Stella) -> String {
    format!(
        "storage: {{sync: always, log: {{segment_bytes: 4096}}}}\nexporters:\n  otlphttp/sink: {{endpoint: \"http://127.0.0.1:{}\", timeout: 2s}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [], exporters: [otlphttp/sink]}}\n    metrics: null\n    logs: null\n",
        target.http
    )
}

/// Sends `count` requests (of 4 spans, about 600 bytes: 6 to a segment) to `sender` while its target is
/// down, then stops it with the backlog kept.
async fn backlog_of(sender: &mut Stella, count: usize) {
    for index in 0..count {
        assert_eq!(sender.post(&traces(&format!("backlog-{index}"), 4)).await.0, 200);
    }
    assert!(sender.terminate().success());
}

/// The requests (by their first span) a target received, and how often.
fn requests_received(target: &Stella) -> BTreeMap<String, usize> {
    let names = span_names(&target.exported(Signal::Traces));
    counts(names.into_iter().filter(|name| name.ends_with("-0")).collect())
}

/// Item 3: a damaged record in an older segment is skipped (quarantined, counted) and every intact
/// record, the later segments included, is delivered; readiness says the exporter is degraded.
#[tokio::test(flavor = "multi_thread")]
async fn damage_in_an_older_segment_never_stalls_delivery() {
    let mut target = Stella::prepare(&common::Extra::default(), FILE_ONLY);
    let mut sender = Stella::start(&sender_to(&target));
    backlog_of(&mut sender, 60).await;
    let segments = segments(&sender, "traces");
    assert!(segments.len() >= 3, "the backlog spans several segments: {segments:?}");
    flip_byte_in_the_middle(&segments[0]);
    target.spawn();
    sender.spawn();
    let logs = || format!("sender:\n{}\ntarget:\n{}", sender.log(), target.log());
    wait_for(
        "the later segments' records at the target",
        || {
            let received = requests_received(&target);
            received.contains_key("backlog-59-0") && received.len() >= 59
        },
        logs,
    )
    .await;
    let damaged = sender.metric("telemetry_ingest_log_damaged_records_total{log=\"traces\",tenant=\"default\"}").await;
    assert_eq!(damaged, Some(1.0), "{}", logs());
    let ready = reqwest::get(sender.api_url("/readyz")).await.unwrap().text().await.unwrap();
    assert!(ready.contains("degraded") && ready.contains("quarantined"), "{ready}");
    assert!(sender.terminate().success());
    assert!(target.terminate().success());
    let received = requests_received(&target);
    assert_eq!(received.len(), 59, "every intact record, only the damaged one lost: {received:?}");
    assert!(received.values().all(|count| *count == 1), "{received:?}");
}

/// Item 4: a corrupted cursor file makes its consumer start at the oldest retained record (said at ERROR,
/// counted as replayed), never at the head: the whole backlog is delivered.
#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_cursor_redelivers_from_the_oldest_record_never_skips() {
    let mut target = Stella::start(FILE_ONLY);
    let mut sender = Stella::start(&sender_to(&target));
    for index in 0..5 {
        assert_eq!(sender.post(&traces(&format!("delivered-{index}"), 1)).await.0, 200);
    }
    let cursor = sender.data_dir().join("log/traces/default/cursors/otlphttp~sink.json");
    wait_for(
        "the consumer's cursor past what it delivered",
        || std::fs::read_to_string(&cursor).is_ok_and(|text| text.contains("\"next_seq\":5")),
        || sender.log(),
    )
    .await;
    assert!(target.terminate().success());
    backlog_of(&mut sender, 25).await;
    std::fs::write(&cursor, "{\"next_seq\":").unwrap();
    target.spawn();
    sender.spawn();
    let logs = || format!("sender:\n{}\ntarget:\n{}", sender.log(), target.log());
    wait_for("the whole backlog at the target", || requests_received(&target).len() >= 30, logs).await;
    let replayed =
        "telemetry_ingest_log_replayed_records_total{log=\"traces\",tenant=\"default\",consumer=\"otlphttp/sink\"}";
    assert_eq!(sender.metric(replayed).await, Some(30.0), "{}", logs());
    assert!(sender.log().contains("cursor is unreadable"), "{}", logs());
    let backlog = "collector_exporter_backlog_records{exporter=\"otlphttp/sink\",tenant=\"default\"}";
    let mut drained = false;
    for _ in 0..100 {
        if sender.metric(backlog).await == Some(0.0) {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(drained, "the backlog gauge goes back to 0: {}", logs());
    assert!(sender.terminate().success());
    assert!(target.terminate().success());
    let received = requests_received(&target);
    for index in 0..25 {
        assert_eq!(received.get(&format!("backlog-{index}-0")), Some(&1), "backlog-{index}: {received:?}");
    }
    for index in 0..5 {
        assert_eq!(received.get(&format!("delivered-{index}-0")), Some(&2), "delivered again, counted: {received:?}");
    }
}

/// Item 1: with auth on, a token of a tenant the config does not declare is refused at the receiver
/// (nothing acknowledged that nobody delivers); `tokens create` says so; declared by a reload, it works.
#[tokio::test(flavor = "multi_thread")]
async fn an_undeclared_tenant_is_refused_until_declared() {
    let declared = "auth: {enabled: true}\n";
    let body = format!("{declared}{FILE_ONLY}");
    let mut stella = Stella::prepare(&common::Extra::default(), &body);
    let data_dir = stella.data_dir();
    let created = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "tokens", "create", "--tenant", "b", "--scopes", "ingest", "--json", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(created.status.success());
    assert!(String::from_utf8_lossy(&created.stderr).contains("must be declared under tenants:"));
    let token: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    stella.spawn();
    let send = |name: &str| {
        reqwest::Client::new()
            .post(stella.url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .bearer_auth(&token)
            .body(traces(name, 1).encode_protobuf())
            .send()
    };
    let refused = send("refused").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("not declared under tenants:"));
    assert!(!data_dir.join("log/traces/b").exists(), "nothing of it was kept");
    let config = std::fs::read_to_string(&stella.config_path).unwrap();
    std::fs::write(&stella.config_path, config.replace(declared, "auth: {enabled: true}\ntenants: [{id: b}]\n"))
        .unwrap();
    stella.signal("HUP");
    let mut accepted = false;
    for _ in 0..100 {
        if send("accepted").await.unwrap().status() == 200 {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "declared by a reload, the tenant's data is taken:\n{}", stella.log());
    wait_for("the export of tenant b", || data_dir.join("export/traces.jsonl").exists(), || stella.log()).await;
    assert!(stella.terminate().success());
    assert_eq!(span_names(&stella.exported(Signal::Traces)), ["accepted-0"]);
}

/// Item 5: 50 token changes in parallel through the API: every create answered 201 works at once, every
/// revoke answered 204 refuses at once, and none of them answers 500.
#[tokio::test(flavor = "multi_thread")]
async fn parallel_token_creates_and_revokes_each_take_effect_when_answered() {
    let body = format!("auth: {{enabled: true}}\n{FILE_ONLY}");
    let mut stella = Stella::prepare(&common::Extra::default(), &body);
    let operator = common::tokens(&stella.data_dir(), &["create", "--tenant", "default", "--scopes", "operator"]);
    let operator = operator["token"].as_str().unwrap().to_string();
    let doomed: Vec<serde_json::Value> = (0..25)
        .map(|_| common::tokens(&stella.data_dir(), &["create", "--tenant", "default", "--scopes", "ingest"]))
        .collect();
    stella.spawn();
    let client = reqwest::Client::new();
    let ingest = |token: String| {
        let request = client
            .post(stella.url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .bearer_auth(token)
            .body(traces("token-check", 1).encode_protobuf());
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let mut tasks = Vec::new();
    for victim in &doomed {
        let (id, token) = (victim["id"].as_str().unwrap().to_string(), victim["token"].as_str().unwrap().to_string());
        let revoke = client.delete(stella.api_url(&format!("/telemetry/tokens/{id}"))).bearer_auth(&operator).send();
        let check = ingest(token);
        tasks.push(tokio::spawn(async move {
            assert_eq!(revoke.await.unwrap().status(), 204);
            assert_eq!(check.await, 401, "a revoked token is refused as soon as the revoke is answered");
        }));
        let create = client
            .post(stella.api_url("/telemetry/tokens"))
            .bearer_auth(&operator)
            .json(&serde_json::json!({"tenant": "default", "scopes": ["ingest"]}))
            .send();
        let url = stella.url("/v1/traces");
        tasks.push(tokio::spawn(async move {
            let created = create.await.unwrap();
            assert_eq!(created.status(), 201);
            let token = created.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_string();
            let status = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-protobuf")
                .bearer_auth(token)
                .body(traces("new-token", 1).encode_protobuf())
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200, "a created token works as soon as the create is answered");
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let listed: serde_json::Value = client
        .get(stella.api_url("/telemetry/tokens"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 51);
    assert_eq!(tokens.iter().filter(|token| token["revoked"] == true).count(), 25);
    assert!(stella.terminate().success());
}

/// Item 6: the audit trail of a real server is anchored: `audit verify` with the server's key names the
/// checkpoint written at shutdown, and finds a cut end, a forged appended line and a replaced file.
#[tokio::test(flavor = "multi_thread")]
async fn audit_tampering_is_found_truncation_forged_append_and_replacement() {
    let body = format!("auth: {{enabled: true}}\n{FILE_ONLY}");
    let mut stella = Stella::prepare(&common::Extra::default(), &body);
    let operator = common::tokens(&stella.data_dir(), &["create", "--tenant", "default", "--scopes", "operator"]);
    stella.spawn();
    for _ in 0..3 {
        let created = reqwest::Client::new()
            .post(stella.api_url("/telemetry/tokens"))
            .bearer_auth(operator["token"].as_str().unwrap())
            .json(&serde_json::json!({"tenant": "default", "scopes": ["read"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    assert!(stella.terminate().success());
    let data_dir = stella.data_dir();
    let key = data_dir.join("keys/signing-key.pub.pem");
    let verify = || {
        stella_command(&[
            "telemetry",
            "audit",
            "verify",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--trusted-key",
            key.to_str().unwrap(),
        ])
    };
    let intact = verify();
    let said = String::from_utf8_lossy(&intact.stdout);
    assert!(intact.status.success(), "{said}{}", String::from_utf8_lossy(&intact.stderr));
    assert!(said.contains("last verified checkpoint: line 5"), "the shutdown checkpoint vouches for all: {said}");
    let trail = data_dir.join("audit/audit.jsonl");
    let text = std::fs::read_to_string(&trail).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let refused = |what: &str| {
        let outcome = verify();
        assert!(!outcome.status.success(), "{what} went unnoticed: {}", String::from_utf8_lossy(&outcome.stdout));
    };
    std::fs::write(&trail, format!("{}\n", lines[..lines.len() - 1].join("\n"))).unwrap();
    refused("cutting the last line off");
    let last_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(lines[lines.len() - 1].as_bytes()));
    let forged = serde_json::json!({"seq": lines.len() + 1, "time": "2026-12-01T00:00:00Z", "actor": "local", "tenant": "*", "action": "token.create", "parameters": {}, "result": "ok", "prev": last_hash});
    std::fs::write(&trail, format!("{text}{forged}\n")).unwrap();
    refused("a forged line appended");
    let other = tempfile::tempdir().unwrap();
    let replacement = stella_evidence::audit::AuditLog::new(other.path(), None);
    for _ in 0..lines.len() {
        replacement
            .append(&stella_evidence::audit::AuditEntry {
                actor: "local".into(),
                tenant: "*".into(),
                action: "token.create".into(),
                parameters: serde_json::json!({}),
                result: "ok".into(),
            })
            .unwrap();
    }
    std::fs::copy(other.path().join("audit/audit.jsonl"), &trail).unwrap();
    refused("a replaced file");
}

/// Item 8: a `read` token sees only its own tenant's series on `/metrics`; an operator sees all.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_a_tenant_only_its_own_series() {
    let body = format!("auth: {{enabled: true}}\ntenants: [{{id: acme}}, {{id: globex}}]\n{FILE_ONLY}");
    let mut stella = Stella::prepare(&common::Extra::default(), &body);
    let token = |tenant: &str, scopes: &str| {
        common::tokens(&stella.data_dir(), &["create", "--tenant", tenant, "--scopes", scopes])["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (acme_ingest, globex_ingest) = (token("acme", "ingest"), token("globex", "ingest"));
    let (acme_read, operator) = (token("acme", "read"), token("default", "operator"));
    stella.spawn();
    let client = reqwest::Client::new();
    for ingest in [&acme_ingest, &globex_ingest] {
        let status = client
            .post(stella.url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .bearer_auth(ingest)
            .body(traces("tenant", 1).encode_protobuf())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let metrics = |token: String| {
        let request = client.get(stella.api_url("/metrics")).bearer_auth(token).send();
        async move { request.await.unwrap().text().await.unwrap() }
    };
    let everything = metrics(operator).await;
    assert!(everything.contains("tenant=\"acme\"") && everything.contains("tenant=\"globex\""), "{everything}");
    let acme = metrics(acme_read).await;
    assert!(acme.contains("tenant=\"acme\""), "{acme}");
    assert!(!acme.contains("globex"), "acme's token sees no other tenant's series:\n{acme}");
    assert!(acme.contains("collector_receiver_requests_total"), "process-wide series stay visible");
    assert!(stella.terminate().success());
}

/// Item 17: offline commands that change the data directory refuse while a server holds it.
#[tokio::test(flavor = "multi_thread")]
async fn offline_writers_refuse_a_live_data_directory() {
    let mut stella = Stella::start(FILE_ONLY);
    let data_dir = stella.data_dir();
    let dir = data_dir.to_str().unwrap();
    let repair = stella_command(&["telemetry", "store", "check", "--repair", "--data-dir", dir]);
    assert!(!repair.status.success());
    assert!(String::from_utf8_lossy(&repair.stderr).contains("in use by a running server"), "{repair:?}");
    let token = stella_command(&[
        "telemetry",
        "tokens",
        "create",
        "--tenant",
        "default",
        "--scopes",
        "read",
        "--data-dir",
        dir,
    ]);
    assert!(!token.status.success());
    assert!(String::from_utf8_lossy(&token.stderr).contains("--server"), "{token:?}");
    let check = stella_command(&["telemetry", "store", "check", "--data-dir", dir]);
    assert!(String::from_utf8_lossy(&check.stderr).contains("reading it live"), "{check:?}");
    let missing = stella_command(&["telemetry", "audit", "verify", "--data-dir", "/nonexistent/stella-data"]);
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    assert!(stella.terminate().success());
}

/// Item 10: two listeners on one address are a validation error naming both keys (exit 3), as are control
/// characters; a port held by another process stops `serve` with exit 3 naming the holder, not a panic.
#[tokio::test(flavor = "multi_thread")]
async fn listener_clashes_and_control_characters_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let clash = dir.path().join("clash.yaml");
    std::fs::write(
        &clash,
        format!("receivers:\n  otlp:\n    protocols:\n      grpc: {{endpoint: 127.0.0.1:{port}}}\n      http: {{endpoint: 127.0.0.1:{port}}}\n"),
    )
    .unwrap();
    let validated = stella_command(&["telemetry", "config", "validate", clash.to_str().unwrap()]);
    let said = format!("{}{}", String::from_utf8_lossy(&validated.stdout), String::from_utf8_lossy(&validated.stderr));
    assert_eq!(validated.status.code(), Some(3), "{said}");
    assert!(
        said.contains("receivers.otlp.protocols.grpc.endpoint")
            && said.contains("receivers.otlp.protocols.http.endpoint"),
        "{said}"
    );
    let nul = dir.path().join("nul.yaml");
    std::fs::write(&nul, "environment: \"prod\\0uction\"\n").unwrap();
    let validated = stella_command(&["telemetry", "config", "validate", nul.to_str().unwrap()]);
    let said = format!("{}{}", String::from_utf8_lossy(&validated.stdout), String::from_utf8_lossy(&validated.stderr));
    assert_eq!(validated.status.code(), Some(3), "{said}");
    assert!(said.contains("environment") && said.contains("control character"), "{said}");

    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    let config = dir.path().join("held.yaml");
    std::fs::write(&config, common::config_with_ports(held, common::free_port(), common::free_port(), FILE_ONLY))
        .unwrap();
    let served = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&served.stderr);
    assert_eq!(served.status.code(), Some(3), "{said}");
    assert!(
        said.contains(&format!("127.0.0.1:{held}")) && said.contains(&format!("pid {}", std::process::id())),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
}

/// `/readyz` lists the store's sealing consumer like every exporter (seed §6: health for storage too).
#[tokio::test(flavor = "multi_thread")]
async fn readiness_lists_the_store() {
    let body = "exporters:\n  store: {}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [store]}\n    metrics: null\n    logs: null\n";
    let mut stella = Stella::start(body);
    let ready: serde_json::Value = reqwest::get(stella.api_url("/readyz")).await.unwrap().json().await.unwrap();
    let store =
        ready["components"].as_array().unwrap().iter().find(|component| component["component"] == "exporters.store");
    assert_eq!(store.map(|store| store["state"].clone()), Some("ready".into()), "{ready}");
    assert!(stella.terminate().success());
}
