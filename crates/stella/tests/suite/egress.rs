//! Sealed mode: an exporter to a non-loopback host starts inert. The process starts, warns once per
//! endpoint with the structured fields operators grep for, counts it, opens no connection and makes no
//! DNS lookup (checked with strace), while the rest of the pipeline keeps working.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Stella, span_names, traces};
use stella_otlp::Signal;

fn strace() -> &'static str {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("strace").is_file()));
    assert!(found, "strace is not installed; run ./scripts/test.sh, which installs Debian's `strace` package");
    "strace"
}

#[tokio::test(flavor = "multi_thread")]
async fn sealed_mode_starts_warns_and_never_resolves_or_connects() {
    let body = "egress: {sealed: true}\nexporters:\n  file: {path: \"export/{signal}.jsonl\"}\n  otlphttp: {endpoint: \"http://collector.invalid:4318\"}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [file, otlphttp]}\n";
    let mut stella = Stella::prepare(&common::Extra::default(), body);
    let trace_file = stella.dir.path().join("strace.txt");
    let trace_path = trace_file.to_str().unwrap().to_string();
    stella.spawn_wrapped(&[strace(), "-f", "-qq", "-e", "trace=connect,sendto,openat", "-o", &trace_path]);

    let warning = stella
        .log()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|line| line["event"] == "egress.sealed_blocked")
        .unwrap_or_else(|| panic!("no egress.sealed_blocked warning:\n{}", stella.log()));
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["component"], "exporters.otlphttp");
    assert_eq!(warning["endpoint"], "http://collector.invalid:4318");
    assert_eq!(warning["reason"], "sealed");
    assert!(warning["remediation"].as_str().unwrap().contains("egress.sealed: false"), "{warning}");
    assert_eq!(stella.metric("telemetry_egress_blocked_total{component=\"exporters.otlphttp\"}").await, Some(1.0));

    assert_eq!(stella.post(&traces("sealed", 2)).await.0, 200);
    let dropped = "collector_export_failures_total{exporter=\"otlphttp\",reason=\"egress_sealed\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    while stella.metric(dropped).await.unwrap_or(0.0) < 1.0 {
        assert!(Instant::now() < deadline, "the inert exporter did not count the batch:\n{}", stella.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // strace's child is stella: stop stella itself, then strace ends with it.
    let pid = String::from_utf8(Command::new("pgrep").args(["-P", &stella.pid().to_string()]).output().unwrap().stdout)
        .unwrap();
    assert!(Command::new("kill").args(["-TERM", pid.trim()]).status().unwrap().success());
    assert!(stella.wait_exit().success());
    assert_eq!(
        span_names(&stella.exported(Signal::Traces)),
        vec!["sealed-0", "sealed-1"],
        "the file exporter kept working"
    );
    let calls = std::fs::read_to_string(&trace_file).unwrap();
    for forbidden in ["resolv.conf", "nsswitch.conf", "/etc/hosts", "htons(53)", "collector.invalid"] {
        assert!(
            !calls.contains(forbidden),
            "sealed mode touched {forbidden}:\n{}",
            calls.lines().filter(|l| l.contains(forbidden)).collect::<Vec<_>>().join("\n")
        );
    }
    let connects: Vec<&str> =
        calls.lines().filter(|line| line.contains("connect(") && line.contains("AF_INET")).collect();
    assert!(
        connects.iter().all(|line| line.contains("127.0.0.1")),
        "a non-loopback connection was attempted: {connects:?}"
    );
}
