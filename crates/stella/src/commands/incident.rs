//! `stella telemetry incident on | off | status`, against a running server.
use serde_json::{Value, json};

use super::client::{call, encode_query};
use crate::cli::{IncidentCommand, TargetArgs};

/// Runs an incident command.
pub async fn execute(command: IncidentCommand) -> anyhow::Result<()> {
    let path = "/telemetry/incidents/mode";
    let (answer, target) = match command {
        IncidentCommand::On { services, ttl, reason, target } => {
            let body =
                json!({"state": "on", "services": services, "ttl": ttl, "reason": reason, "tenant": target.tenant});
            (send(&target, reqwest::Method::POST, path, Some(body)).await?, target)
        }
        IncidentCommand::Off { reason, target } => {
            let body = json!({"state": "off", "reason": reason, "tenant": target.tenant});
            (send(&target, reqwest::Method::POST, path, Some(body)).await?, target)
        }
        IncidentCommand::Status { target } => {
            let path = match &target.tenant {
                Some(tenant) => format!("{path}?tenant={}", encode_query(tenant)),
                None => path.to_string(),
            };
            (send(&target, reqwest::Method::GET, &path, None).await?, target)
        }
    };
    if target.json {
        println!("{answer}");
        return Ok(());
    }
    match answer.get("tenants").and_then(Value::as_array) {
        Some(tenants) => tenants.iter().for_each(print_mode),
        None => print_mode(&answer),
    }
    Ok(())
}

async fn send(target: &TargetArgs, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    call(method, &target.client.server, path, target.client.token.as_deref(), body).await
}

fn print_mode(mode: &Value) {
    let text = |key: &str| mode[key].as_str().unwrap_or("-").to_string();
    let services = match mode["services"].as_array() {
        Some(list) if !list.is_empty() => list.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
        _ => "all services".to_string(),
    };
    match mode["state"].as_str() {
        Some("on") => println!(
            "tenant {}: incident mode ON for {services} since {} by {} until {} ({})",
            text("tenant"),
            text("since"),
            text("by"),
            text("until"),
            text("reason")
        ),
        _ => match (
            mode["since"].as_str().filter(|since| !since.is_empty()),
            mode["by"].as_str().filter(|by| !by.is_empty()),
        ) {
            (Some(since), Some(by)) => {
                println!("tenant {}: incident mode off (since {since}, by {by})", text("tenant"))
            }
            (Some(since), None) => println!("tenant {}: incident mode off (since {since})", text("tenant")),
            _ => println!("tenant {}: incident mode off (never turned on)", text("tenant")),
        },
    }
}
