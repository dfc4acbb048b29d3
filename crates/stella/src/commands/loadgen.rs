//! `stella telemetry loadgen`: OTLP/HTTP protobuf load with unique trace ids and current timestamps per
//! request (unlike fixed benchmark payloads), reporting accepted and refused counts and latencies.
//! Every request carries the resource attribute `stella.loadgen.request_id` (`w<worker>-<n>`); with
//! `--ack-log` the ids of acknowledged requests are written out, so a test can check that each one was
//! stored exactly once. Requests are never re-sent, so a duplicate in storage is a real duplicate.
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use stella_otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, any_value};
use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use stella_otlp::proto::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use stella_otlp::{OtlpRequest, attributes};

use crate::cli::{LoadSignal, LoadgenArgs};

/// What the workers saw.
#[derive(Debug, Default, serde::Serialize)]
struct Report {
    sent: u64,
    accepted: u64,
    accepted_items: u64,
    refused: std::collections::BTreeMap<u16, u64>,
    connection_errors: u64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    seconds: f64,
    #[serde(skip)]
    latencies: Vec<Duration>,
}

/// Runs the load and prints the report.
pub async fn execute(args: LoadgenArgs) -> anyhow::Result<()> {
    let signal = match args.signal {
        LoadSignal::Traces => "traces",
        LoadSignal::Metrics => "metrics",
        LoadSignal::Logs => "logs",
    };
    let url = format!("{}/v1/{signal}", args.endpoint.trim_end_matches('/'));
    let ack_log = match &args.ack_log {
        Some(path) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?,
        ))),
        None => None,
    };
    let report = Arc::new(Mutex::new(Report::default()));
    let started = Instant::now();
    let progress = ProgressBar::new(args.duration.as_secs().max(1));
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let workers = args.workers.max(1);
    // One pace for all workers: `--rate` is over all of them.
    let pace = (args.rate > 0).then(|| {
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Arc::new(tokio::sync::Mutex::new(interval))
    });
    let remaining = args.requests.map(|requests| Arc::new(std::sync::atomic::AtomicU64::new(requests)));
    let deadline = match args.requests {
        Some(_) => None,
        None => Some(started + args.duration),
    };
    let mut tasks = Vec::new();
    let client = super::client::http()?;
    for worker in 0..workers {
        let job = Job {
            client: client.clone(),
            url: url.clone(),
            worker,
            signal: args.signal,
            shape: (args.traces_per_request.max(1), args.spans_per_trace.max(1)),
            traffic: Arc::new(Traffic {
                error_percent: args.error_percent,
                services: args.services.clone(),
                attributes: args.attributes,
            }),
            deadline,
            remaining: remaining.clone(),
            pace: pace.clone(),
            token: args.token.clone(),
            report: Arc::clone(&report),
            ack_log: ack_log.clone(),
        };
        tasks.push(tokio::spawn(job.run()));
    }
    while !tasks.iter().all(|task| task.is_finished()) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let accepted = report.lock().unwrap_or_else(|poison| poison.into_inner()).accepted;
        progress.set_position(started.elapsed().as_secs());
        progress.set_message(format!("{accepted} accepted"));
    }
    for task in tasks {
        task.await.context("a loadgen worker failed")?;
    }
    progress.finish_and_clear();
    let mut report = std::mem::take(&mut *report.lock().unwrap_or_else(|poison| poison.into_inner()));
    report.seconds = started.elapsed().as_secs_f64();
    report.latencies.sort();
    let percentile = |p: f64| {
        let index = ((report.latencies.len() as f64 * p) as usize).min(report.latencies.len().saturating_sub(1));
        report.latencies.get(index).map_or(0.0, |latency| latency.as_secs_f64() * 1000.0)
    };
    report.latency_p50_ms = percentile(0.50);
    report.latency_p99_ms = percentile(0.99);
    let all_refused = report.sent > 0 && report.accepted == 0;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "sent {} requests in {:.1}s: {} accepted ({} items, {:.0} items/s), refused {:?}, {} connection errors; latency p50 {:.2} ms, p99 {:.2} ms",
            report.sent,
            report.seconds,
            report.accepted,
            report.accepted_items,
            report.accepted_items as f64 / report.seconds.max(0.001),
            report.refused,
            report.connection_errors,
            report.latency_p50_ms,
            report.latency_p99_ms
        );
    }
    if all_refused {
        anyhow::bail!(
            "every request was refused or could not reach {url} ({} refused, {} connection errors)",
            report.refused.values().sum::<u64>(),
            report.connection_errors
        );
    }
    Ok(())
}

struct Job {
    client: reqwest::Client,
    url: String,
    worker: usize,
    signal: LoadSignal,
    shape: (usize, usize),
    traffic: Arc<Traffic>,
    /// Stop at this time (`None`: when `remaining` runs out).
    deadline: Option<Instant>,
    /// Requests still to send over all workers, with `--requests`.
    remaining: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// The pace all workers share, with `--rate`.
    pace: Option<Arc<tokio::sync::Mutex<tokio::time::Interval>>>,
    token: Option<String>,
    report: Arc<Mutex<Report>>,
    ack_log: Option<Arc<Mutex<std::fs::File>>>,
}

impl Job {
    async fn run(self) {
        let client = &self.client;
        let mut random = XorShift::seeded(self.worker as u64);
        let mut sequence = 0u64;
        while self.deadline.is_none_or(|deadline| Instant::now() < deadline) {
            if let Some(remaining) = &self.remaining {
                let taken = remaining.fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |left| left.checked_sub(1),
                );
                if taken.is_err() {
                    break;
                }
            }
            if let Some(pace) = &self.pace {
                pace.lock().await.tick().await;
            }
            let id = format!("w{}-{sequence}", self.worker);
            sequence += 1;
            let request = generate(self.signal, &id, self.shape, &self.traffic, &mut random);
            let items = request.item_count() as u64;
            let begun = Instant::now();
            let mut post = client.post(&self.url).header("content-type", "application/x-protobuf");
            if let Some(token) = &self.token {
                post = post.bearer_auth(token);
            }
            let sent = post.body(request.encode_protobuf()).send().await;
            let latency = begun.elapsed();
            let status = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let _ = response.bytes().await;
                    Some(status)
                }
                Err(_) => None,
            };
            self.record(&id, status, items, latency);
            if status.is_none() {
                // The server is gone: pause a little instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    fn record(&self, id: &str, status: Option<u16>, items: u64, latency: Duration) {
        let mut report = self.report.lock().unwrap_or_else(|poison| poison.into_inner());
        report.sent += 1;
        match status {
            Some(200..=299) => {
                report.accepted += 1;
                report.accepted_items += items;
                report.latencies.push(latency);
                if let Some(log) = &self.ack_log {
                    let mut file = log.lock().unwrap_or_else(|poison| poison.into_inner());
                    let _ = writeln!(file, "{id}");
                }
            }
            Some(code) => *report.refused.entry(code).or_default() += 1,
            None => report.connection_errors += 1,
        }
    }
}

/// A small, fast generator for ids (not for secrets).
struct XorShift(u64);

impl XorShift {
    fn seeded(worker: u64) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |now| now.as_nanos() as u64);
        XorShift((nanos ^ (worker + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, length: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(length);
        while out.len() < length {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(length);
        out
    }
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |now| now.as_nanos() as u64)
}

/// The mix of the generated traces.
struct Traffic {
    /// Percent of traces with an error span.
    error_percent: f64,
    /// Services traces are spread over.
    services: Vec<String>,
    /// Extra attributes per span.
    attributes: usize,
}

/// Keys for `--attributes`: semantic-convention keys the `default` redaction profile keeps.
const EXTRA_KEYS: [&str; 12] = [
    "http.request.method",
    "http.response.status_code",
    "url.path",
    "url.scheme",
    "server.address",
    "server.port",
    "network.protocol.version",
    "network.peer.address",
    "rpc.system",
    "db.system",
    "code.function",
    "thread.name",
];

/// One request of `signal`: `groups` traces (or groups) of `per_group` items, tagged with `id`. Each
/// trace belongs to a service picked at random (one resource per service); a share ends in an error span.
fn generate(
    signal: LoadSignal,
    id: &str,
    (groups, per_group): (usize, usize),
    traffic: &Traffic,
    random: &mut XorShift,
) -> OtlpRequest {
    let resource = Some(Resource {
        attributes: vec![
            attributes::string("service.name", "loadgen"),
            attributes::string("stella.loadgen.request_id", id),
        ],
        ..Default::default()
    });
    let now = now_nanos();
    match signal {
        LoadSignal::Traces => {
            // One resource per service in the request, as an SDK batch from one process would send.
            let mut by_service: Vec<(&str, Vec<Span>)> = Vec::new();
            for _ in 0..groups {
                let trace_id = random.bytes(16);
                let error = (random.next() % 1_000_000) as f64 / 10_000.0 < traffic.error_percent;
                let service = match traffic.services.len() {
                    0 => "loadgen",
                    count => traffic.services[(random.next() % count as u64) as usize].as_str(),
                };
                let spans = match by_service.iter_mut().find(|(name, _)| *name == service) {
                    Some((_, spans)) => spans,
                    None => {
                        by_service.push((service, Vec::new()));
                        let Some((_, spans)) = by_service.last_mut() else { continue };
                        spans
                    }
                };
                let mut parent = Vec::new();
                for index in 0..per_group {
                    let span_id = random.bytes(8);
                    let failed = error && index + 1 == per_group;
                    spans.push(Span {
                        trace_id: trace_id.clone(),
                        span_id: span_id.clone(),
                        parent_span_id: parent.clone(),
                        name: format!("operation-{index}"),
                        kind: 2,
                        start_time_unix_nano: now - 1_000_000,
                        end_time_unix_nano: now,
                        attributes: [
                            attributes::string("http.route", "/checkout"),
                            attributes::string("loadgen.index", &index.to_string()),
                        ]
                        .into_iter()
                        .chain((0..traffic.attributes).map(|extra| {
                            let key = EXTRA_KEYS[extra % EXTRA_KEYS.len()];
                            attributes::string(key, &format!("{key}-value-{:08x}", random.next() as u32))
                        }))
                        .collect(),
                        status: failed.then(|| Status { code: 2, message: "loadgen error".into() }),
                        ..Default::default()
                    });
                    parent = span_id;
                }
            }
            let resource_spans = by_service
                .into_iter()
                .map(|(service, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            attributes::string("service.name", service),
                            attributes::string("stella.loadgen.request_id", id),
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                    ..Default::default()
                })
                .collect();
            OtlpRequest::Traces(ExportTraceServiceRequest { resource_spans })
        }
        LoadSignal::Metrics => {
            let data_points = (0..groups * per_group)
                .map(|index| NumberDataPoint {
                    time_unix_nano: now,
                    attributes: vec![attributes::string("series", &index.to_string())],
                    value: Some(number_data_point::Value::AsDouble((random.next() % 1000) as f64)),
                    ..Default::default()
                })
                .collect();
            let metric = Metric {
                name: "loadgen.value".into(),
                data: Some(metric::Data::Gauge(Gauge { data_points })),
                ..Default::default()
            };
            OtlpRequest::Metrics(ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource,
                    scope_metrics: vec![ScopeMetrics { metrics: vec![metric], ..Default::default() }],
                    ..Default::default()
                }],
            })
        }
        LoadSignal::Logs => {
            let log_records = (0..groups * per_group)
                .map(|index| LogRecord {
                    time_unix_nano: now,
                    observed_time_unix_nano: now,
                    severity_number: 9,
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(format!("loadgen record {index}"))),
                    }),
                    trace_id: random.bytes(16),
                    span_id: random.bytes(8),
                    ..Default::default()
                })
                .collect();
            OtlpRequest::Logs(ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource,
                    scope_logs: vec![ScopeLogs { log_records, ..Default::default() }],
                    ..Default::default()
                }],
            })
        }
    }
}
