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
            println!("{}", if json { listed["tokens"].to_string() } else { listed.to_string() });
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
            if json {
                let listed: Vec<_> = records
                    .iter()
                    .map(|r| serde_json::json!({"id": r.id, "tenant": r.tenant, "scopes": r.scopes, "created": r.created, "expires": r.expires, "revoked": r.revoked}))
                    .collect();
                println!("{}", serde_json::Value::Array(listed));
            } else {
                for record in records {
                    let scopes: Vec<&str> = record.scopes.iter().map(|scope| scope.as_str()).collect();
                    let state = if record.revoked { "revoked" } else { "active" };
                    println!("{}  {}  {}  {}", record.id, record.tenant, scopes.join(","), state);
                }
            }
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
