//! Authentication: ingest needs a token with the `ingest` scope and its tenant is the token's; tokens made
//! and revoked offline with `stella telemetry tokens` take effect on the running server; a non-loopback
//! listener without TLS and without auth refuses to start unless `--insecure`.

use crate::common;

use std::process::Command;

use crate::common::{Stella, file_pipelines, tokens, traces};

async fn post(stella: &Stella, token: Option<&str>) -> (u16, Option<String>) {
    let mut call = reqwest::Client::new()
        .post(stella.url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(traces("auth", 1).encode_protobuf());
    if let Some(token) = token {
        call = call.bearer_auth(token);
    }
    let response = call.send().await.unwrap();
    let challenge = response.headers().get("www-authenticate").map(|value| value.to_str().unwrap().to_string());
    (response.status().as_u16(), challenge)
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_needs_an_ingest_token_and_lands_in_the_tokens_tenant() {
    let body = format!("auth: {{enabled: true}}\ntenants: [{{id: acme}}]\n{}", file_pipelines(""));
    let mut stella = Stella::prepare(&common::Extra::default(), &body);
    let data_dir = stella.data_dir();
    let ingest = tokens(&data_dir, &["create", "--tenant", "acme", "--scopes", "ingest"]);
    let reader = tokens(&data_dir, &["create", "--tenant", "acme", "--scopes", "read"]);
    let operator = tokens(&data_dir, &["create", "--tenant", "default", "--scopes", "operator"]);
    stella.spawn();

    assert_eq!(post(&stella, None).await, (401, Some("Bearer".into())), "no token");
    assert_eq!(post(&stella, Some("stl_abc_def")).await.0, 401, "unknown token");
    assert_eq!(post(&stella, Some(reader["token"].as_str().unwrap())).await.0, 403, "read scope cannot ingest");
    let ingest_token = ingest["token"].as_str().unwrap();
    assert_eq!(post(&stella, Some(ingest_token)).await.0, 200);
    assert!(data_dir.join("log/traces/acme").is_dir(), "the record went to tenant acme's log");

    let offline = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "tokens", "list", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&offline.stderr);
    assert!(
        !offline.status.success() && said.contains("--server"),
        "offline changes wait for the server to stop: {said}"
    );
    let id = ingest["id"].as_str().unwrap();
    let server = format!("http://127.0.0.1:{}", stella.api);
    let revoked = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "tokens", "revoke", id, "--server", &server, "--token"])
        .arg(operator["token"].as_str().unwrap())
        .status()
        .unwrap();
    assert!(revoked.success());
    assert_eq!(
        post(&stella, Some(ingest_token)).await.0,
        401,
        "a revoked token stops working on the running server at once"
    );
    assert!(stella.terminate().success());
    assert_eq!(common::span_names(&stella.exported(stella_otlp::Signal::Traces)), vec!["auth-0"]);
}

#[test]
fn a_non_loopback_listener_without_tls_or_auth_needs_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = dir.path().join("open.yaml");
    std::fs::write(&config, format!("receivers: {{otlp: {{protocols: {{http: {{endpoint: \"0.0.0.0:{port}\"}}, grpc: null}}}}}}\napi: {{endpoint: \"127.0.0.1:{}\"}}\n", common::free_port())).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "serve", "--config", config.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("receivers.otlp.protocols.http.endpoint binds 0.0.0.0"), "{stderr}");
    assert!(stderr.contains("--insecure"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_over_its_quota_gets_429_with_retry_after_and_recovers() {
    let body = format!(
        "tenants: [{{id: default, quotas: {{items_per_second: 10, burst_seconds: 1}}}}]\n{}",
        file_pipelines("")
    );
    let mut stella = Stella::start(&body);
    assert_eq!(stella.post(&traces("first", 8)).await.0, 200);
    let (status, retry_after) = stella.post(&traces("second", 8)).await;
    assert_eq!(status, 429, "the burst of 10 items is spent");
    let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        stella.metric("collector_tenant_quota_refused_total{tenant=\"default\",kind=\"items\"}").await,
        Some(1.0)
    );
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    assert_eq!(stella.post(&traces("third", 8)).await.0, 200, "the quota refills");
    // Quotas reload live: a larger burst takes effect without a restart.
    let config = std::fs::read_to_string(&stella.config_path).unwrap();
    std::fs::write(&stella.config_path, config.replace("items_per_second: 10,", "items_per_second: 1000,")).unwrap();
    let reload = reqwest::Client::new().post(stella.api_url("/telemetry/config/reload")).send().await.unwrap();
    assert_eq!(reload.status(), 200);
    let report: serde_json::Value = reload.json().await.unwrap();
    assert_eq!(report["restart_required"], serde_json::json!([]), "quotas need no restart");
    for round in 0..3 {
        assert_eq!(stella.post(&traces(&format!("fourth{round}"), 8)).await.0, 200, "the new quota is in force");
    }
    assert!(stella.terminate().success());
    let mut names = common::span_names(&stella.exported(stella_otlp::Signal::Traces));
    names.retain(|name| name.starts_with("second"));
    assert!(names.is_empty(), "nothing of the refused request was stored");
}

#[test]
fn token_changes_are_on_the_audit_trail_and_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let created = tokens(dir.path(), &["create", "--tenant", "acme", "--scopes", "read"]);
    let id = created["id"].as_str().unwrap();
    let revoked = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "tokens", "revoke", id, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(revoked.status.success());
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_stella"))
            .args(["telemetry", "audit", "verify", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let intact = verify();
    assert!(intact.status.success(), "{}", String::from_utf8_lossy(&intact.stderr));
    assert!(String::from_utf8_lossy(&intact.stdout).contains("audit trail intact: 2 lines"));
    let trail = dir.path().join("audit/audit.jsonl");
    let text = std::fs::read_to_string(&trail).unwrap();
    assert!(text.contains("\"action\":\"token.create\"") && text.contains("\"action\":\"token.revoke\""), "{text}");
    assert!(!text.contains(created["token"].as_str().unwrap()), "the token itself is never audited");
    std::fs::write(&trail, text.replacen("\"tenant\":\"acme\"", "\"tenant\":\"evil\"", 1)).unwrap();
    let broken = verify();
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("line 2 is broken"),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_managed_on_a_running_server_with_an_operator_token() {
    let body = format!("auth: {{enabled: true}}\ntenants: [{{id: acme}}]\n{}", file_pipelines(""));
    let mut stella = Stella::prepare(&common::Extra::default(), &body);
    let operator = tokens(&stella.data_dir(), &["create", "--tenant", "default", "--scopes", "operator"]);
    stella.spawn();
    let server = stella.api_url("");
    let remote = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stella"))
            .args(["telemetry", "tokens"])
            .args(args)
            .args(["--server", &server, "--token", operator["token"].as_str().unwrap()])
            .output()
            .unwrap()
    };
    let created = remote(&["create", "--tenant", "acme", "--scopes", "ingest", "--json"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let ingest = created["token"].as_str().unwrap().to_string();
    assert_eq!(post(&stella, Some(&ingest)).await.0, 200, "a token made through the API works at once");
    let listed = remote(&["list", "--json"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(created["id"].as_str().unwrap()));
    let revoked = remote(&["revoke", created["id"].as_str().unwrap()]);
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    assert_eq!(post(&stella, Some(&ingest)).await.0, 401);
    let refused = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "tokens", "list", "--server", &server, "--token", &ingest])
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(4),
        "a non-operator token is refused: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(stella.terminate().success());
}
