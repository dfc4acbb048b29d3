//! `stella telemetry query trace ID`, against a running server's store.
use serde_json::Value;

use super::client::{call, encode_query};
use crate::cli::{QueryCommand, SearchArgs};

/// Runs a query command.
pub async fn execute(command: QueryCommand) -> anyhow::Result<()> {
    let (id, tenant, json, client) = match command {
        QueryCommand::Trace { id, tenant, json, client } => (id, tenant, json, client),
        QueryCommand::Traces { service, name, min_duration, status, attributes, limit, search } => {
            let filters = [("service", service), ("name", name), ("min_duration", min_duration), ("status", status)];
            let answer = fetch("/telemetry/query/traces", &filters, "attr", &attributes, Some(limit), &search).await?;
            return print(answer, search.target.json, print_traces);
        }
        QueryCommand::Logs { service, severity_min, contains, attributes, limit, search } => {
            let filters = [("service", service), ("severity_min", severity_min), ("contains", contains)];
            let answer = fetch("/telemetry/query/logs", &filters, "attr", &attributes, Some(limit), &search).await?;
            return print(answer, search.target.json, print_logs);
        }
        QueryCommand::Metrics { name, labels, step, search } => {
            let filters = [("name", Some(name)), ("step", step)];
            let answer = fetch("/telemetry/query/metrics", &filters, "label", &labels, None, &search).await?;
            return print(answer, search.target.json, print_metrics);
        }
    };
    let mut path = format!("/api/traces/{id}");
    if let Some(tenant) = tenant {
        path.push_str(&format!("?tenant={}", encode_query(&tenant)));
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

/// Calls a search route with `filters`, `--<prefix> KEY=VALUE` options as `<prefix>.KEY`, the limit and the
/// common window and tenant.
async fn fetch(
    path: &str,
    filters: &[(&str, Option<String>)],
    prefix: &str,
    options: &[String],
    limit: Option<usize>,
    search: &SearchArgs,
) -> anyhow::Result<Value> {
    let mut pairs: Vec<(String, String)> = filters
        .iter()
        .chain(&[
            ("start", search.start.clone()),
            ("end", search.end.clone()),
            ("tenant", search.target.tenant.clone()),
        ])
        .filter_map(|(key, value)| Some((key.to_string(), value.clone()?)))
        .collect();
    for option in options {
        let (key, value) =
            option.split_once('=').ok_or_else(|| anyhow::anyhow!("--{prefix} {option:?}: write it as KEY=VALUE"))?;
        pairs.push((format!("{prefix}.{key}"), value.to_string()));
    }
    pairs.extend(limit.map(|limit| ("limit".to_string(), limit.to_string())));
    let query: Vec<String> =
        pairs.iter().map(|(key, value)| format!("{}={}", encode_query(key), encode_query(value))).collect();
    let path = format!("{path}?{}", query.join("&"));
    let client = &search.target.client;
    call(reqwest::Method::GET, &client.server, &path, client.token.as_deref(), None).await
}

/// Prints `answer`; a streamed answer the server cut short with an `error` member fails the command
/// after what arrived is printed.
fn print(answer: Value, json: bool, table: fn(&Value)) -> anyhow::Result<()> {
    if json {
        println!("{answer}");
    } else {
        table(&answer);
    }
    if let Some(error) = answer.get("error") {
        anyhow::bail!(
            "the answer is incomplete: the server failed part-way ({}): {}",
            error["code"].as_str().unwrap_or("unknown"),
            error["message"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn print_traces(answer: &Value) {
    println!("{:<32} {:<20} {:<32} {:>12} {:>6} ERROR", "TRACE", "SERVICE", "SPAN", "DURATION", "SPANS");
    let traces = answer["traces"].as_array().cloned().unwrap_or_default();
    for trace in &traces {
        println!(
            "{:<32} {:<20} {:<32} {:>10.3}ms {:>6} {}",
            text(trace, "traceId"),
            text(trace, "serviceName"),
            text(trace, "spanName"),
            trace["durationMs"].as_f64().unwrap_or(0.0),
            trace["matchedSpans"].as_u64().unwrap_or(0),
            if trace["error"].as_bool() == Some(true) { "yes" } else { "" }
        );
    }
    println!("{} traces", traces.len());
}

fn print_logs(answer: &Value) {
    let records = answer["logs"].as_array().cloned().unwrap_or_default();
    println!("{:<30} {:<20} {:<6} BODY", "TIME", "SERVICE", "LEVEL");
    for record in &records {
        let nanos = text(record, "timeUnixNano").parse::<i64>().unwrap_or(0);
        let time = jiff::Timestamp::from_nanosecond(i128::from(nanos)).map(|at| at.to_string()).unwrap_or_default();
        let severity = severity_name(record["severityNumber"].as_i64().unwrap_or(0), &text(record, "severityText"));
        println!("{time:<30} {:<20} {severity:<6} {}", text(record, "service"), text(record, "body"));
    }
    println!("{} records", records.len());
}

/// A severity by name: the record's own text, else the OTLP name of its number range (`-` when unset).
fn severity_name(number: i64, text: &str) -> String {
    if !text.is_empty() {
        return text.to_string();
    }
    match number {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "-",
    }
    .to_string()
}

fn print_metrics(answer: &Value) {
    let series = answer["series"].as_array().cloned().unwrap_or_default();
    println!("LABELS POINTS LAST");
    for entry in &series {
        let points = entry["points"].as_array().cloned().unwrap_or_default();
        let last = points.last().and_then(|point| point[1].as_f64()).unwrap_or(f64::NAN);
        println!("{} points={} last={last}", entry["labels"], points.len());
    }
    println!("{} series", series.len());
}
