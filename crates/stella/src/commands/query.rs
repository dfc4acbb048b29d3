//! `stella telemetry query trace ID`, against a running server's store.
use serde_json::Value;

use super::client::{call, encode_query};
use crate::cli::QueryCommand;

/// Runs a query command.
pub async fn execute(command: QueryCommand) -> anyhow::Result<()> {
    let QueryCommand::Trace { id, tenant, json, client } = command else {
        return match command {
            QueryCommand::Logs { .. } => logs(command).await,
            QueryCommand::Metrics { .. } => metrics(command).await,
            _ => search(command).await,
        };
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

/// `query traces`: builds the query string, prints a table.
async fn search(command: QueryCommand) -> anyhow::Result<()> {
    let QueryCommand::Traces {
        service,
        name,
        min_duration,
        status,
        attributes,
        start,
        end,
        limit,
        tenant,
        json,
        client,
    } = command
    else {
        return Ok(());
    };
    let pairs: Vec<(String, String)> = [
        ("service", service),
        ("name", name),
        ("min_duration", min_duration),
        ("status", status),
        ("start", start),
        ("end", end),
        ("tenant", tenant),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key.to_string(), value?)))
    .collect();
    let path = query_path("/telemetry/query/traces", pairs, &attributes_of(&attributes)?, Some(limit));
    let answer = call(reqwest::Method::GET, &client.server, &path, client.token.as_deref(), None).await?;
    if json {
        println!("{answer}");
        return Ok(());
    }
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
    Ok(())
}

/// `--attr KEY=VALUE` options as `attr.KEY` query pairs.
fn attributes_of(attributes: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    prefixed("attr", attributes)
}

/// `--OPTION KEY=VALUE` options as `PREFIX.KEY` query pairs.
fn prefixed(prefix: &str, options: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    options
        .iter()
        .map(|option| {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--{prefix} {option:?}: write it as KEY=VALUE"))?;
            Ok((format!("{prefix}.{key}"), value.to_string()))
        })
        .collect()
}

/// `query metrics`: one line per series.
async fn metrics(command: QueryCommand) -> anyhow::Result<()> {
    let QueryCommand::Metrics { name, labels, start, end, step, tenant, json, client } = command else {
        return Ok(());
    };
    let mut pairs: Vec<(String, String)> =
        [("name", Some(name)), ("start", start), ("end", end), ("step", step), ("tenant", tenant)]
            .into_iter()
            .filter_map(|(key, value)| Some((key.to_string(), value?)))
            .collect();
    pairs.extend(prefixed("label", &labels)?);
    let path = query_path("/telemetry/query/metrics", pairs, &[], None);
    let answer = call(reqwest::Method::GET, &client.server, &path, client.token.as_deref(), None).await?;
    if json {
        println!("{answer}");
        return Ok(());
    }
    let series = answer["series"].as_array().cloned().unwrap_or_default();
    for entry in &series {
        let points = entry["points"].as_array().cloned().unwrap_or_default();
        let last = points.last().and_then(|point| point[1].as_f64()).unwrap_or(f64::NAN);
        println!("{} points={} last={last}", entry["labels"], points.len());
    }
    println!("{} series", series.len());
    Ok(())
}

/// `path?k=v&...` with every pair encoded, attributes and the limit (if any) last.
fn query_path(
    path: &str,
    pairs: Vec<(String, String)>,
    attributes: &[(String, String)],
    limit: Option<usize>,
) -> String {
    let limit = limit.map(|limit| ("limit".to_string(), limit.to_string()));
    let query: Vec<String> = pairs
        .iter()
        .chain(attributes)
        .chain(limit.as_ref())
        .map(|(key, value)| format!("{}={}", encode_query(key), encode_query(value)))
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// `query logs`: a table of time, service, severity and body.
async fn logs(command: QueryCommand) -> anyhow::Result<()> {
    let QueryCommand::Logs { service, severity_min, contains, attributes, start, end, limit, tenant, json, client } =
        command
    else {
        return Ok(());
    };
    let pairs: Vec<(String, String)> = [
        ("service", service),
        ("severity_min", severity_min),
        ("contains", contains),
        ("start", start),
        ("end", end),
        ("tenant", tenant),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key.to_string(), value?)))
    .collect();
    let path = query_path("/telemetry/query/logs", pairs, &attributes_of(&attributes)?, Some(limit));
    let answer = call(reqwest::Method::GET, &client.server, &path, client.token.as_deref(), None).await?;
    if json {
        println!("{answer}");
        return Ok(());
    }
    let records = answer["logs"].as_array().cloned().unwrap_or_default();
    for record in &records {
        let nanos = text(record, "timeUnixNano").parse::<i64>().unwrap_or(0);
        let time = jiff::Timestamp::from_nanosecond(i128::from(nanos)).map(|at| at.to_string()).unwrap_or_default();
        println!(
            "{time} {:<20} {:>2} {}",
            text(record, "service"),
            record["severityNumber"].as_i64().unwrap_or(0),
            text(record, "body")
        );
    }
    println!("{} records", records.len());
    Ok(())
}
