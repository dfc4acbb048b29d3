//! `stella telemetry query trace ID`, against a running server's store.
use serde_json::Value;

use super::client::call;
use crate::cli::QueryCommand;

/// Runs a query command.
pub async fn execute(command: QueryCommand) -> anyhow::Result<()> {
    let QueryCommand::Trace { id, tenant, json, client } = command;
    let mut path = format!("/api/traces/{id}");
    if let Some(tenant) = tenant {
        path.push_str(&format!("?tenant={tenant}"));
    }
    let answer = call(reqwest::Method::GET, &client.server, &path, client.token.as_deref(), None).await?;
    if json {
        println!("{answer}");
        return Ok(());
    }
    let mut rows = Vec::new();
    for batch in answer["batches"].as_array().into_iter().flatten() {
        let service = batch["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|attribute| attribute["key"] == "service.name")
            .and_then(|attribute| attribute["value"]["stringValue"].as_str())
            .unwrap_or("-")
            .to_string();
        for span in batch["scopeSpans"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|scope| scope["spans"].as_array().into_iter().flatten())
        {
            let number = |key: &str| span[key].as_str().and_then(|text| text.parse::<u64>().ok()).unwrap_or(0);
            let (start, end) = (number("startTimeUnixNano"), number("endTimeUnixNano"));
            let status = match span["status"]["code"].as_u64() {
                Some(2) => "ERROR",
                Some(1) => "OK",
                _ => "",
            };
            rows.push((
                start,
                service.clone(),
                text(span, "name"),
                end.saturating_sub(start),
                status,
                text(span, "spanId"),
            ));
        }
    }
    rows.sort();
    println!("{:<20} {:<40} {:>12} {:<6} SPAN", "SERVICE", "NAME", "DURATION", "STATUS");
    for (_, service, name, nanos, status, span_id) in &rows {
        println!("{service:<20} {name:<40} {:>10.3}ms {status:<6} {span_id}", *nanos as f64 / 1e6);
    }
    println!("{} spans", rows.len());
    Ok(())
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_string()
}
