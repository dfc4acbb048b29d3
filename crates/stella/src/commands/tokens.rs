//! `stella telemetry tokens create | list | revoke`, on the token store of a data directory.
use std::collections::BTreeSet;

use stella_api::audit::{AuditEntry, AuditLog};
use stella_collector::auth::TokenStore;

use super::client::call;
use crate::cli::{RemoteArgs, TokensCommand};

/// Runs a tokens command, on `--data-dir` or, with `--server`, against a running server.
pub async fn execute(command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create {
            tenant,
            scopes,
            expires,
            json,
            remote: RemoteArgs { server: Some(server), token },
            ..
        } => {
            let body = serde_json::json!({"tenant": tenant, "scopes": scopes, "expires_seconds": expires.map(|e| e.as_secs())});
            let created =
                call(reqwest::Method::POST, &server, "/telemetry/tokens", token.as_deref(), Some(body)).await?;
            if json {
                println!("{created}");
            } else {
                println!("{}", created["token"].as_str().unwrap_or_default());
            }
        }
        TokensCommand::List { json, remote: RemoteArgs { server: Some(server), token }, .. } => {
            let listed = call(reqwest::Method::GET, &server, "/telemetry/tokens", token.as_deref(), None).await?;
            let tokens = listed["tokens"].as_array().cloned().unwrap_or_default();
            print_tokens(&tokens, json);
        }
        TokensCommand::Revoke { id, remote: RemoteArgs { server: Some(server), token }, .. } => {
            call(reqwest::Method::DELETE, &server, &format!("/telemetry/tokens/{id}"), token.as_deref(), None).await?;
            println!("token {id} revoked");
        }
        TokensCommand::Create { tenant, scopes, expires, data_dir, json, .. } => {
            if tenant != "default" {
                eprintln!(
                    "note: tenant {tenant:?} must be declared under tenants: in the server's config, or requests with this token are refused (403, undeclared_tenant)"
                );
            }
            let scopes: BTreeSet<_> = scopes.into_iter().collect();
            let (record, token) = TokenStore::open(&data_dir)?.create(&tenant, scopes, expires)?;
            let parameters = serde_json::json!({"id": record.id, "scopes": record.scopes, "expires": record.expires});
            audit(&data_dir, &record.tenant, "token.create", parameters)?;
            if json {
                let answer = serde_json::json!({"id": record.id, "tenant": record.tenant, "scopes": record.scopes, "expires": record.expires, "token": token});
                println!("{answer}");
            } else {
                println!("{token}");
                eprintln!(
                    "token {} for tenant {}; it is shown only now: store it in a secret manager",
                    record.id, record.tenant
                );
            }
        }
        TokensCommand::List { data_dir, json, .. } => {
            let records = TokenStore::open(&data_dir)?.list()?;
            let listed: Vec<serde_json::Value> = records
                .iter()
                .map(|r| serde_json::json!({"id": r.id, "tenant": r.tenant, "scopes": r.scopes, "created": r.created, "expires": r.expires, "revoked": r.revoked}))
                .collect();
            print_tokens(&listed, json);
        }
        TokensCommand::Revoke { id, data_dir, .. } => {
            if !TokenStore::open(&data_dir)?.revoke(&id)? {
                anyhow::bail!("no token with id {id}; `stella telemetry tokens list` shows the ids");
            }
            audit(&data_dir, "*", "token.revoke", serde_json::json!({"id": id}))?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}

/// Prints token records (as the API lists them): a table with a header, or a JSON array with `--json`.
fn print_tokens(tokens: &[serde_json::Value], json: bool) {
    if json {
        println!("{}", serde_json::Value::Array(tokens.to_vec()));
        return;
    }
    if tokens.is_empty() {
        println!("no tokens; make one with `stella telemetry tokens create --tenant T --scopes ...`");
        return;
    }
    println!("{:<14} {:<16} {:<32} {:<8} {:<20} {:<20}", "ID", "TENANT", "SCOPES", "STATE", "CREATED", "EXPIRES");
    let time = |value: &serde_json::Value| {
        value
            .as_i64()
            .and_then(|seconds| jiff::Timestamp::from_second(seconds).ok())
            .map_or_else(|| "-".to_string(), |at| at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
    };
    for token in tokens {
        let scopes: Vec<&str> =
            token["scopes"].as_array().into_iter().flatten().filter_map(|scope| scope.as_str()).collect();
        let state = if token["revoked"] == true { "revoked" } else { "active" };
        println!(
            "{:<14} {:<16} {:<32} {:<8} {:<20} {:<20}",
            token["id"].as_str().unwrap_or_default(),
            token["tenant"].as_str().unwrap_or_default(),
            scopes.join(","),
            state,
            time(&token["created"]),
            time(&token["expires"])
        );
    }
}

/// Records a token change made on the data directory (actor `local`).
fn audit(data_dir: &std::path::Path, tenant: &str, action: &str, parameters: serde_json::Value) -> anyhow::Result<()> {
    let entry = AuditEntry {
        actor: "local".into(),
        tenant: tenant.into(),
        action: action.into(),
        parameters,
        result: "ok".into(),
    };
    let state = stella_store::tables::StateDb::open(data_dir)?;
    AuditLog::new(data_dir, Some(&state)).append(&entry)?;
    Ok(())
}
