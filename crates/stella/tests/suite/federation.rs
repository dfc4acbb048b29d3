//! Federation across three real processes: two sites grant consents, record observations, build signed
//! bundles and push them to a hub (all `stella`); the hub's aggregate equals the sum of the sites'
//! unsuppressed buckets, with provenance; a revocation pushed to the hub drops that site's contribution.

use std::path::Path;
use std::process::Command;

use crate::common::Stella;
use serde_json::{Value, json};

fn stella(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stella")).args(args).output().unwrap_or_else(|error| panic!("{error}"))
}

fn ok(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn site(alias: &str) -> Stella {
    Stella::start(&format!(
        "exporters: {{nop: {{}}}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [], exporters: [nop]}}\nfederation: {{aliases: {{default: {alias}}}, k_anonymity: 3}}\n"
    ))
}

/// `artifacts` observations of `cve` on distinct artifacts (`noisy` of them noise), in November 2026.
fn observations(cve: &str, artifacts: usize, noisy: usize, site: &str) -> Vec<Value> {
    (0..artifacts)
        .map(|n| json!({"cve_id": cve, "artifact_digest": format!("sha256:{site}-{n}"), "noisy": n < noisy, "observed_at": "2026-11-10T12:00:00Z"}))
        .collect()
}

async fn post(stella: &Stella, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(stella.api_url(path))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap_or_default()
}

fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_push_signed_bundles_and_the_hub_aggregates_them_with_provenance() {
    let sites = [site("site-a"), site("site-b")];
    let keys: Vec<String> = sites.iter().map(|site| text(&site.data_dir().join("keys/signing-key.pub.pem"))).collect();
    let hub = Stella::start(&format!(
        "exporters: {{nop: {{}}}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [], exporters: [nop]}}\nfederation: {{trusted_keys: [\"{}\", \"{}\"]}}\n",
        keys[0], keys[1]
    ));
    let window = "2026-11-08T00:00:00Z..2026-11-15T00:00:00Z";
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let mut consents = Vec::new();
    let mut expected: std::collections::BTreeMap<String, (u64, u64, u64)> = std::collections::BTreeMap::new();
    for (index, site) in sites.iter().enumerate() {
        let name = ["a", "b"][index];
        // CVE-1 on 4 (a) and 3 (b) artifacts: kept (k = 3); CVE-2 on 2: suppressed at both sites.
        let mut batch = observations("CVE-2026-0001", 4 - index, 1 + index, name);
        batch.extend(observations("CVE-2026-0002", 2, 2, name));
        assert_eq!(
            post(site, "/telemetry/federation/observations", Value::Array(batch)).await["recorded"],
            4 - index as u64 + 2
        );
        let (noisy, artifacts) = ((1 + index) as u64, (4 - index) as u64);
        let total = expected.entry("CVE-2026-0001".into()).or_default();
        *total = (total.0 + noisy, total.1 + artifacts, total.2 + artifacts);
        let granted = ok(stella(&[
            "telemetry",
            "federation",
            "consent",
            "grant",
            "--federation",
            "fed-eu",
            "--purpose",
            "noise benchmarking",
            "--not-before",
            "2026-11-01T00:00:00Z",
            "--expires-at",
            "2026-12-31T00:00:00Z",
            "--server",
            &site.api_url(""),
            "--json",
        ]));
        let granted: Value = serde_json::from_str(&granted).unwrap_or_default();
        consents.push(granted["consentDigest"].as_str().unwrap_or_default().to_string());
        let file = dir.path().join(format!("bundle-{name}.json"));
        ok(stella(&[
            "telemetry",
            "federation",
            "bundle",
            "build",
            "--window",
            window,
            "--out",
            &text(&file),
            "--server",
            &site.api_url(""),
        ]));
        let again = dir.path().join(format!("bundle-{name}-again.json"));
        ok(stella(&[
            "telemetry",
            "federation",
            "bundle",
            "build",
            "--window",
            window,
            "--out",
            &text(&again),
            "--server",
            &site.api_url(""),
        ]));
        assert_eq!(std::fs::read(&file).ok(), std::fs::read(&again).ok(), "same inputs, same bundle bytes");
        let verified = ok(stella(&[
            "telemetry",
            "federation",
            "bundle",
            "verify",
            &text(&file),
            "--trusted-key",
            &keys[index],
            "--json",
        ]));
        let verified: Value = serde_json::from_str(&verified).unwrap_or_default();
        assert_eq!(verified["payload"]["privacy"]["suppressedBuckets"], 1, "{verified}");
        assert_eq!(verified["payload"]["siteAlias"], format!("site-{name}"));
        let stranger =
            stella(&["telemetry", "federation", "bundle", "verify", &text(&file), "--trusted-key", &keys[1 - index]]);
        assert!(
            !stranger.status.success() && String::from_utf8_lossy(&stranger.stderr).contains("federation.dsse."),
            "another site's key does not verify it"
        );
        let pushed =
            ok(stella(&["telemetry", "federation", "bundle", "push", &text(&file), "--hub", &hub.api_url("")]));
        assert!(pushed.contains("\"status\":\"imported\""), "{pushed}");
        let twice = ok(stella(&["telemetry", "federation", "bundle", "push", &text(&file), "--hub", &hub.api_url("")]));
        assert!(twice.contains("\"status\":\"duplicate\""), "idempotent by bundle id: {twice}");
    }
    let aggregate = |hub: &Stella| {
        let url = hub.api_url(&format!("/telemetry/federation/aggregate?window={}", window.replace(':', "%3A")));
        async move {
            reqwest::get(url).await.unwrap_or_else(|error| panic!("{error}")).json::<Value>().await.unwrap_or_default()
        }
    };
    let view = aggregate(&hub).await;
    let buckets: std::collections::BTreeMap<String, (u64, u64, u64)> = view["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|bucket| {
            let count = |key: &str| bucket[key].as_u64().unwrap_or(0);
            (
                bucket["cveId"].as_str().unwrap_or_default().to_string(),
                (count("noisyCount"), count("artifactCount"), count("observationCount")),
            )
        })
        .collect();
    assert_eq!(buckets, expected, "the hub's aggregate is the sum of the sites' unsuppressed buckets: {view}");
    assert_eq!(view["buckets"][0]["sources"].as_array().map(Vec::len), Some(2), "provenance per site: {view}");

    // Site a revokes; the hub, told, leaves a's bundle out.
    let statement = dir.path().join("revocation-a.json");
    ok(stella(&[
        "telemetry",
        "federation",
        "consent",
        "revoke",
        &consents[0],
        "--reason",
        "withdrawn",
        "--out",
        &text(&statement),
        "--server",
        &sites[0].api_url(""),
    ]));
    let shown = ok(stella(&["telemetry", "federation", "consent", "show", "--server", &sites[0].api_url("")]));
    assert!(shown.contains("revoked"), "{shown}");
    let refused = stella(&[
        "telemetry",
        "federation",
        "bundle",
        "build",
        "--window",
        window,
        "--out",
        &text(&dir.path().join("x.json")),
        "--server",
        &sites[0].api_url(""),
    ]);
    assert!(!refused.status.success(), "no bundle under a revoked consent");
    ok(stella(&["telemetry", "federation", "push-revocation", &text(&statement), "--hub", &hub.api_url("")]));
    let view = aggregate(&hub).await;
    assert_eq!(view["contributions"].as_array().map(Vec::len), Some(1), "{view}");
    assert_eq!(view["contributions"][0]["siteAlias"], "site-b");
    assert_eq!(view["dropped"][0]["code"], "federation.consent.revoked");
    let offline = stella(&[
        "telemetry",
        "federation",
        "bundle",
        "verify",
        &text(&dir.path().join("bundle-a.json")),
        "--trusted-key",
        &keys[0],
        "--revocation",
        &text(&statement),
    ]);
    assert!(String::from_utf8_lossy(&offline.stderr).contains("federation.consent.revoked"));
    // A hub outside the egress policy is refused before any connection.
    let far = stella(&[
        "telemetry",
        "federation",
        "bundle",
        "push",
        &text(&dir.path().join("bundle-b.json")),
        "--hub",
        "https://hub.example.com",
    ]);
    assert!(
        !far.status.success() && String::from_utf8_lossy(&far.stderr).contains("egress"),
        "{}",
        String::from_utf8_lossy(&far.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_signing_key_a_site_falls_back_to_unsigned_only_when_allowed_and_hubs_refuse_it_unless_told() {
    let pipelines = "exporters: {nop: {}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [nop]}\n";
    let strict =
        Stella::start(&format!("{pipelines}federation: {{aliases: {{default: site-s}}, signing_key: missing.pem}}\n"));
    let consent = json!({"federation_id": "fed", "scope": "s", "purpose": "p", "not_before": "2026-11-01T00:00:00Z", "expires_at": "2026-12-31T00:00:00Z"});
    let client = reqwest::Client::new();
    let answer = client
        .post(strict.api_url("/telemetry/federation/consents"))
        .json(&consent)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(answer.status().as_u16(), 500);
    assert_eq!(answer.json::<Value>().await.unwrap_or_default()["code"], "federation.dsse.signer_unavailable");

    let site = Stella::start(&format!(
        "{pipelines}federation: {{aliases: {{default: site-u}}, signing_key: missing.pem, allow_unsigned_fallback: true, k_anonymity: 1}}\n"
    ));
    let granted = client
        .post(site.api_url("/telemetry/federation/consents"))
        .json(&consent)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(granted.status().as_u16(), 201);
    post(&site, "/telemetry/federation/observations", Value::Array(observations("CVE-2026-0007", 1, 1, "u"))).await;
    let file = tempfile::NamedTempFile::new().unwrap_or_else(|error| panic!("{error}"));
    let window = "2026-11-08T00:00:00Z..2026-11-15T00:00:00Z";
    ok(stella(&[
        "telemetry",
        "federation",
        "bundle",
        "build",
        "--window",
        window,
        "--out",
        &text(file.path()),
        "--server",
        &site.api_url(""),
    ]));
    let metrics = reqwest::get(site.api_url("/metrics"))
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .text()
        .await
        .unwrap_or_default();
    assert!(
        metrics.contains("telemetry_federation_unsigned_total 2"),
        "the consent and the bundle went out unsigned, counted:\n{metrics}"
    );
    assert!(site.log().contains("federation.unsigned_fallback"), "and warned");
    let refuse = Stella::start(pipelines);
    let refused =
        stella(&["telemetry", "federation", "bundle", "push", &text(file.path()), "--hub", &refuse.api_url("")]);
    assert!(
        !refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("federation.dsse.verify_failed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let accept = Stella::start(&format!("{pipelines}federation: {{allow_unsigned_fallback: true}}\n"));
    let pushed =
        ok(stella(&["telemetry", "federation", "bundle", "push", &text(file.path()), "--hub", &accept.api_url("")]));
    assert!(pushed.contains("\"unsigned\":true"), "{pushed}");
}
