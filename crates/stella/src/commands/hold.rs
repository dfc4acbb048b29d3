//! `stella telemetry hold add | list | release`, against a running server.
use serde_json::{Value, json};

use super::client::{call, encode_query};
use crate::cli::{HoldCommand, TargetArgs};

/// Runs a hold command.
pub async fn execute(command: HoldCommand) -> anyhow::Result<()> {
    let with_tenant = |path: &str, target: &TargetArgs| match &target.tenant {
        Some(tenant) => format!("{path}?tenant={}", encode_query(tenant)),
        None => path.to_string(),
    };
    let (answer, target) = match command {
        HoldCommand::Add { from, to, reason, target } => {
            let body = json!({"from": from, "to": to, "reason": reason, "tenant": target.tenant});
            (send(&target, reqwest::Method::POST, "/telemetry/holds".into(), Some(body)).await?, target)
        }
        HoldCommand::List { target } => {
            let path = with_tenant("/telemetry/holds", &target);
            (send(&target, reqwest::Method::GET, path, None).await?, target)
        }
        HoldCommand::Release { id, target } => {
            let path = with_tenant(&format!("/telemetry/holds/{id}"), &target);
            (send(&target, reqwest::Method::DELETE, path, None).await?, target)
        }
    };
    if target.json {
        println!("{answer}");
        return Ok(());
    }
    match answer.get("holds").and_then(Value::as_array) {
        Some(holds) => holds.iter().for_each(print_hold),
        None => print_hold(&answer),
    }
    Ok(())
}

async fn send(
    target: &TargetArgs,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    call(method, &target.client.server, &path, target.client.token.as_deref(), body).await
}

fn print_hold(hold: &Value) {
    let text = |key: &str| hold[key].as_str().unwrap_or("-").to_string();
    let state = if hold["released"].is_string() { format!("released {}", text("released")) } else { "active".into() };
    println!(
        "{} {} {}..{} {} ({}) by {}",
        text("id"),
        text("kind"),
        text("from"),
        text("to"),
        state,
        text("reason"),
        text("by")
    );
}
