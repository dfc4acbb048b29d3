//! Whole-binary test harness: starts the real `stella` on free loopback ports with a config overlay,
//! talks to it over real sockets, and stops it with real signals.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use stella_otlp::{OtlpRequest, Signal};

/// A running `stella telemetry serve`.
pub struct Stella {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub grpc: u16,
    pub http: u16,
    pub api: u16,
    pub config_path: PathBuf,
    /// What the config was made from, to make it again on other ports.
    recipe: (String, String, String, String, Option<(usize, usize)>),
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Three distinct free ports for the gRPC receiver, the HTTP receiver and the API: each is held until
/// all three are picked, so the kernel cannot hand out one twice.
pub fn free_ports() -> (u16, u16, u16) {
    let held: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let port = |at: usize| held[at].local_addr().unwrap().port();
    (port(0), port(1), port(2))
}

/// The receiver and API part of a test config; `body` adds processors, exporters and pipelines.
pub fn config_with_ports(grpc: u16, http: u16, api: u16, body: &str) -> String {
    receiver_config(grpc, http, api, &Extra::default(), body)
}

/// Settings added to the test receiver: a `receiver` line under `receivers.otlp`, `protocol` entries
/// (`key: value`) in both protocols' flow maps.
#[derive(Default)]
pub struct Extra<'a> {
    pub receiver: &'a str,
    pub protocol: &'a str,
    /// Entries added to the `api` flow map.
    pub api: &'a str,
    /// (`max_request_body_size` bytes, `max_decompressed_size_mib`), when not the test defaults (1 MiB, 4).
    pub caps: Option<(usize, usize)>,
}

/// Like [`config_with_ports`], with `extra` settings on the receiver and its protocols.
pub fn receiver_config(grpc: u16, http: u16, api: u16, extra_settings: &Extra, body: &str) -> String {
    let extra =
        if extra_settings.protocol.is_empty() { String::new() } else { format!(", {}", extra_settings.protocol) };
    let api_extra = if extra_settings.api.is_empty() { String::new() } else { format!(", {}", extra_settings.api) };
    let top =
        if extra_settings.receiver.is_empty() { String::new() } else { format!("    {}\n", extra_settings.receiver) };
    let (body_bytes, decompressed_mib) = extra_settings.caps.unwrap_or((1048576, 4));
    format!(
        "receivers:\n  otlp:\n{top}    protocols:\n      grpc: {{endpoint: 127.0.0.1:{grpc}{extra}}}\n      http: {{endpoint: 127.0.0.1:{http}, max_request_body_size: {body_bytes}{extra}}}\n    max_decompressed_size_mib: {decompressed_mib}\napi: {{endpoint: 127.0.0.1:{api}{api_extra}}}\n{body}"
    )
}

/// Pipelines for every signal: otlp -> `processors` -> file exporter writing `export/{signal}.jsonl`.
pub fn file_pipelines(processors: &str) -> String {
    format!(
        "exporters:\n  file: {{path: \"export/{{signal}}.jsonl\"}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [{processors}], exporters: [file]}}\n    metrics: {{receivers: [otlp], processors: [{processors}], exporters: [file]}}\n    logs: {{receivers: [otlp], processors: [{processors}], exporters: [file]}}\n"
    )
}

impl Stella {
    /// Starts stella with the default profile overlaid by ports and `body`.
    pub fn start(body: &str) -> Stella {
        Stella::start_with_receiver(&Extra::default(), body)
    }

    /// Starts stella with `extra` settings on the receiver and its protocols (see [`receiver_config`]).
    pub fn start_with_receiver(extra: &Extra, body: &str) -> Stella {
        // Free ports are picked before stella binds them, so a parallel test can take one first: retry
        // with new ports when that happens.
        for _ in 0..4 {
            let mut stella = Stella::prepare(extra, body);
            match stella.try_spawn(&[]) {
                Ok(()) => return stella,
                Err(log) if log.contains("cannot listen") => continue,
                Err(log) => panic!("{log}"),
            }
        }
        let mut stella = Stella::prepare(extra, body);
        stella.spawn();
        stella
    }

    /// Picks ports and writes the config, without starting the process (so others can point at it).
    pub fn prepare(extra: &Extra, body: &str) -> Stella {
        // The tests' own HTTP clients (reqwest with rustls) need the process-wide crypto provider.
        stella_export::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let (grpc, http, api) = free_ports();
        let config_path = dir.path().join("stella.yaml");
        std::fs::write(&config_path, receiver_config(grpc, http, api, extra, body)).unwrap();
        let recipe = (
            extra.receiver.to_string(),
            extra.protocol.to_string(),
            extra.api.to_string(),
            body.to_string(),
            extra.caps,
        );
        Stella { child: None, dir, grpc, http, api, config_path, recipe }
    }

    /// Starts the process; if another test took one of its ports in the meantime, it moves to new ports
    /// (tests that gave its ports to another process must not rely on that).
    pub fn spawn(&mut self) {
        for _ in 0..3 {
            match self.try_spawn(&[]) {
                Ok(()) => return,
                Err(log) if log.contains("cannot listen") => {
                    (self.grpc, self.http, self.api) = free_ports();
                    let (receiver, protocol, api, body, caps) = &self.recipe;
                    let extra = Extra { receiver, protocol, api, caps: *caps };
                    std::fs::write(&self.config_path, receiver_config(self.grpc, self.http, self.api, &extra, body))
                        .unwrap();
                }
                Err(log) => panic!("{log}"),
            }
        }
        self.spawn_wrapped(&[]);
    }

    /// Starts the process under `wrapper` (e.g. `strace -f -o FILE`), or directly when it is empty.
    pub fn spawn_wrapped(&mut self, wrapper: &[&str]) {
        if let Err(log) = self.try_spawn(wrapper) {
            panic!("{log}");
        }
    }

    /// Starts the process and waits until its API port answers; the failure and log otherwise.
    pub fn try_spawn(&mut self, wrapper: &[&str]) -> Result<(), String> {
        let earlier_log = self.log().len();
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("stella.log")).unwrap();
        let stella = env!("CARGO_BIN_EXE_stella");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(stella);
                command
            }
            None => Command::new(stella),
        };
        let child = command
            .args(["telemetry", "serve", "--config"])
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready(earlier_log)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stella.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    pub fn api_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api)
    }

    /// Waits until this run (the log past `earlier_log` bytes) says it is running.
    fn wait_ready(&mut self, earlier_log: usize) -> Result<(), String> {
        // Generous: the whole suite starts dozens of servers at once on two cores.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("stella exited early with {status}:\n{}", self.log()));
            }
            if self.log().get(earlier_log..).is_some_and(|run| run.contains("stella telemetry is running")) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("stella did not start within 60s:\n{}", self.log()))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// The value of one sample of `/metrics` (`name{labels}` exactly as exposed), if present.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let text = reqwest::get(self.api_url("/metrics")).await.ok()?.text().await.ok()?;
        text.lines().find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// POSTs a protobuf request to `/v1/<signal>` and returns the status and Retry-After.
    pub async fn post(&self, request: &OtlpRequest) -> (u16, Option<String>) {
        let response = reqwest::Client::new()
            .post(self.url(&format!("/v1/{}", request.signal())))
            .header("content-type", "application/x-protobuf")
            .body(request.encode_protobuf())
            .send()
            .await
            .unwrap();
        let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_string());
        (response.status().as_u16(), retry_after)
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit()
    }

    /// SIGTERM to stella under a wrapper that forked it (`strace`), then waits for the wrapper's exit.
    pub fn terminate_wrapped(&mut self) -> ExitStatus {
        let children = Command::new("pgrep").args(["-P", &self.pid().to_string()]).output().unwrap().stdout;
        let child = String::from_utf8(children).unwrap();
        let child = child.lines().next().expect("the wrapper's child, stella");
        assert!(Command::new("kill").args(["-TERM", child]).status().unwrap().success());
        self.wait_exit()
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "stella did not exit within 60s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The decoded requests of an export file (`export/{signal}.jsonl` under the data dir).
    pub fn exported(&self, signal: Signal) -> Vec<OtlpRequest> {
        read_json_lines(&self.data_dir().join(format!("export/{signal}.jsonl")), signal)
    }
}

impl Drop for Stella {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // Under a wrapper (`strace -f`), stella is the wrapper's child: killing the wrapper alone would
            // leave it running after a failed test.
            let _ = Command::new("pkill").args(["-KILL", "-P", &child.id().to_string()]).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn read_json_lines(path: &Path, signal: Signal) -> Vec<OtlpRequest> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|line| stella_otlp::json::decode(signal, line.as_bytes()).unwrap()).collect()
}

/// A trace request of `spans` spans named `{prefix}-{i}` with distinct ids.
pub fn traces(prefix: &str, spans: usize) -> OtlpRequest {
    let spans = (0..spans)
        .map(|index| Span {
            trace_id: id_bytes(prefix, index, 16),
            span_id: id_bytes(prefix, index, 8),
            name: format!("{prefix}-{index}"),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_500_000_000,
            attributes: vec![string_attribute("test.prefix", prefix)],
            ..Default::default()
        })
        .collect();
    OtlpRequest::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attribute("service.name", "harness")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    })
}

pub fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

fn id_bytes(prefix: &str, index: usize, length: usize) -> Vec<u8> {
    let mut seed: u64 = 0xcbf29ce484222325;
    for byte in prefix.bytes().chain(index.to_le_bytes()) {
        seed = (seed ^ byte as u64).wrapping_mul(0x100000001b3);
    }
    (0..length).map(|i| (seed.rotate_left(i as u32 * 8) as u8) | 1).collect()
}

/// Every span name in a list of trace requests.
pub fn span_names(requests: &[OtlpRequest]) -> Vec<String> {
    let mut names = Vec::new();
    for request in requests {
        let OtlpRequest::Traces(traces) = request else { continue };
        for resource in &traces.resource_spans {
            for scope in &resource.scope_spans {
                names.extend(scope.spans.iter().map(|span| span.name.clone()));
            }
        }
    }
    names
}

/// `stella telemetry tokens ARGS --data-dir DIR --json`, offline; the JSON answer.
pub fn tokens(data_dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "tokens"])
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--json")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}
