//! `stella telemetry federation consent grant|revoke|show`, `bundle build|verify|push` and
//! `push-revocation`.
use std::collections::BTreeSet;

use anyhow::Context;
use serde_json::{Value, json};
use stella_collector::config::{EnvVars, Profile};
use stella_evidence::TrustStore;
use stella_evidence::dsse::Envelope;

use super::client::{call, encode_query, fetch, refused};
use crate::cli::{BundleCommand, ConsentCommand, FederationCommand, HubArgs};

/// Runs a federation command.
pub async fn execute(command: FederationCommand) -> anyhow::Result<()> {
    match command {
        FederationCommand::Consent { command } => consent(command).await,
        FederationCommand::Bundle { command } => bundle(command).await,
        FederationCommand::PushRevocation { file, hub } => push(&file, &hub, "/telemetry/federation/revocations").await,
    }
}

async fn consent(command: ConsentCommand) -> anyhow::Result<()> {
    match command {
        ConsentCommand::Grant { federation, scope, purpose, expires_at, not_before, alias, target } => {
            let body = json!({"federation_id": federation, "scope": scope, "purpose": purpose, "expires_at": expires_at,
                "not_before": not_before, "site_alias": alias, "tenant": target.tenant});
            let answer = call(
                reqwest::Method::POST,
                &target.client.server,
                "/telemetry/federation/consents",
                target.client.token.as_deref(),
                Some(body),
            )
            .await?;
            if target.json {
                println!("{answer}");
            } else {
                println!("granted {}", answer["consentDigest"].as_str().unwrap_or("-"));
            }
            Ok(())
        }
        ConsentCommand::Revoke { digest, reason, out, target } => {
            let path = format!("/telemetry/federation/consents/{}/revoke", encode_query(&digest));
            let body = json!({"reason": reason, "tenant": target.tenant});
            let statement =
                fetch(reqwest::Method::POST, &target.client.server, &path, target.client.token.as_deref(), Some(body))
                    .await?;
            match out {
                Some(out) => {
                    std::fs::write(&out, &statement).with_context(|| format!("cannot write {}", out.display()))?;
                    println!("revoked {digest}; push {} to the hubs", out.display());
                }
                None => println!("{}", String::from_utf8_lossy(&statement)),
            }
            Ok(())
        }
        ConsentCommand::Show { target } => {
            let path = match &target.tenant {
                Some(tenant) => format!("/telemetry/federation/consents?tenant={}", encode_query(tenant)),
                None => "/telemetry/federation/consents".to_string(),
            };
            let answer =
                call(reqwest::Method::GET, &target.client.server, &path, target.client.token.as_deref(), None).await?;
            if target.json {
                println!("{answer}");
                return Ok(());
            }
            let consents = answer["consents"].as_array().cloned().unwrap_or_default();
            if consents.is_empty() {
                println!("no consents; grant one with `stella telemetry federation consent grant`");
            }
            for consent in &consents {
                let text = |key: &str| consent["consent"][key].as_str().unwrap_or("-").to_string();
                println!(
                    "{} {:<8} {} as {} until {} ({})",
                    consent["consentDigest"].as_str().unwrap_or("-"),
                    consent["status"].as_str().unwrap_or("-"),
                    text("federationId"),
                    text("siteAlias"),
                    text("expiresAt"),
                    text("purpose")
                );
            }
            Ok(())
        }
    }
}

async fn bundle(command: BundleCommand) -> anyhow::Result<()> {
    match command {
        BundleCommand::Build { window, out, consent, tenant, client } => {
            let mut path = format!("/telemetry/federation/bundle?window={}", encode_query(&window));
            for (key, value) in [("consent", &consent), ("tenant", &tenant)] {
                if let Some(value) = value {
                    path.push_str(&format!("&{key}={}", encode_query(value)));
                }
            }
            let file = fetch(reqwest::Method::GET, &client.server, &path, client.token.as_deref(), None).await?;
            std::fs::write(&out, &file).with_context(|| format!("cannot write {}", out.display()))?;
            let parsed: Value = serde_json::from_slice(&file).unwrap_or(Value::Null);
            println!("wrote {} (bundle {})", out.display(), parsed["bundleId"].as_str().unwrap_or("-"));
            Ok(())
        }
        BundleCommand::Verify { file, trusted_keys, revocations, allow_unsigned, json } => {
            let trust = TrustStore::from_files(&trusted_keys)?;
            let mut revoked = BTreeSet::new();
            for path in &revocations {
                let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
                let envelope = Envelope::from_json(&bytes)
                    .with_context(|| format!("{} is not a revocation statement", path.display()))?;
                let digest = stella_federation::revoked_digest(&envelope, &trust, allow_unsigned)
                    .map_err(|error| anyhow::anyhow!("{} ({}): {error}", path.display(), error.code()))?;
                revoked.insert(digest);
            }
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            match stella_federation::verify_bundle(&bytes, &trust, &revoked, allow_unsigned) {
                Ok(verified) => {
                    if json {
                        let answer = json!({"verified": true, "bundleId": verified.bundle_id, "bundleDigest": verified.bundle_digest,
                            "consentDigest": verified.consent_digest, "unsigned": verified.unsigned, "payload": verified.payload});
                        println!("{answer}");
                    } else {
                        println!(
                            "verified bundle {} of {} ({} buckets, {} suppressed), consent {}",
                            verified.bundle_id,
                            verified.payload.site_alias,
                            verified.payload.buckets.len(),
                            verified.payload.privacy.suppressed_buckets,
                            verified.consent_digest
                        );
                    }
                    Ok(())
                }
                Err(error) => {
                    if json {
                        println!("{}", json!({"verified": false, "code": error.code(), "message": error.to_string()}));
                    }
                    let message = format!("{} does not verify ({})", file.display(), error.code());
                    Err(anyhow::Error::new(error).context(message))
                }
            }
        }
        BundleCommand::Push { file, hub } => push(&file, &hub, "/telemetry/federation/bundles").await,
    }
}

/// Sends a file to a hub, after the egress policy of `--config` (default: loopback only) allowed it.
async fn push(file: &std::path::Path, hub: &HubArgs, path: &str) -> anyhow::Result<()> {
    let config = stella_collector::config::load(Profile::Default, hub.config.as_deref(), &EnvVars::of_this_process())
        .map_err(|errors| anyhow::anyhow!("{errors}"))?;
    if let Err(denied) = config.egress.check(&hub.hub) {
        anyhow::bail!(
            "{} is not allowed by the egress policy ({}): {}",
            hub.hub,
            denied.reason(),
            denied.remediation()
        );
    }
    let body = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let url = format!("{}{path}", hub.hub.trim_end_matches('/'));
    let mut request = super::client::http()?.post(&url).header("content-type", "application/json").body(body);
    if let Some(token) = &hub.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| format!("{url} is unreachable"))?;
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    if !status.is_success() {
        return Err(refused(&url, status, &bytes));
    }
    println!("{}", String::from_utf8_lossy(&bytes));
    Ok(())
}
