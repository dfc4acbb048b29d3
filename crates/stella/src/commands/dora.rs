//! `stella telemetry dora record deployment|incident` and `dora report`, against a running server.
use anyhow::Context;
use serde_json::{Value, json};

use super::client::{call, encode_query, fetch};
use crate::cli::{DoraCommand, DoraEvent, DoraReportArgs, TargetArgs};

/// Runs a DORA command.
pub async fn execute(command: DoraCommand) -> anyhow::Result<()> {
    match command {
        DoraCommand::Record { event } => record(event).await,
        DoraCommand::Report(args) => report(args).await,
    }
}

async fn record(event: DoraEvent) -> anyhow::Result<()> {
    let (path, body, target) = match event {
        DoraEvent::Deployment {
            id,
            environment,
            service,
            pipeline,
            commits,
            started,
            finished,
            outcome,
            kind,
            incident_ids,
            target,
        } => {
            let commits = commits
                .iter()
                .map(|commit| {
                    let (sha, time) = commit.split_once('@').with_context(|| {
                        format!("--commit {commit:?}: write it as SHA@TIME, e.g. 4f2a9c1@2026-11-29T10:00:00Z")
                    })?;
                    Ok(json!({"id": sha, "time": time}))
                })
                .collect::<anyhow::Result<Vec<Value>>>()?;
            let body = json!({
                "id": id, "environment": environment, "service": service, "pipeline": pipeline, "commits": commits,
                "started": started, "finished": finished, "outcome": outcome, "kind": kind, "incident_ids": incident_ids,
                "tenant": target.tenant,
            });
            ("/telemetry/dora/deployments", body, target)
        }
        DoraEvent::Incident {
            id,
            environment,
            service,
            severity,
            started,
            acknowledged,
            resolved,
            deployment_id,
            target,
        } => {
            let body = json!({
                "id": id, "environment": environment, "service": service, "severity": severity, "started": started,
                "acknowledged": acknowledged, "resolved": resolved, "deployment_id": deployment_id, "tenant": target.tenant,
            });
            ("/telemetry/dora/incidents", body, target)
        }
    };
    let TargetArgs { json, client, .. } = target;
    let answer = call(reqwest::Method::POST, &client.server, path, client.token.as_deref(), Some(body)).await?;
    if json {
        println!("{answer}");
    } else {
        for result in answer["results"].as_array().into_iter().flatten() {
            println!("{} {}", result["status"].as_str().unwrap_or("?"), result["id"].as_str().unwrap_or("-"));
        }
    }
    Ok(())
}

async fn report(args: DoraReportArgs) -> anyhow::Result<()> {
    let mut query = vec![format!("format={}", encode_query(&args.format))];
    for (key, value) in [
        ("from", &args.from),
        ("to", &args.to),
        ("tz", &args.tz),
        ("as_of", &args.as_of),
        ("environment", &args.environment),
        ("tenant", &args.tenant),
    ] {
        if let Some(value) = value {
            query.push(format!("{key}={}", encode_query(value)));
        }
    }
    let path = format!("/telemetry/dora/report?{}", query.join("&"));
    let body = fetch(reqwest::Method::GET, &args.client.server, &path, args.client.token.as_deref(), None).await?;
    match &args.out {
        Some(out) => std::fs::write(out, &body).with_context(|| format!("cannot write {}", out.display()))?,
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&body).context("cannot write the report")?;
        }
    }
    Ok(())
}
