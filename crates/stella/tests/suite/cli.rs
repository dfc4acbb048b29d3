//! The CLI's config commands: exit codes and output scripts can rely on.

use std::process::Command;

fn stella(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stella")).args(args).output().unwrap()
}

#[test]
fn config_validate_reports_every_problem_with_exit_code_3() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "exporters: {file: {path: x, colour: red}}\nservice: {pipelines: {traces: {receivers: [otlp], exporters: [nope]}}}\n").unwrap();
    let output = stella(&["telemetry", "config", "validate", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the config has 2 problems"), "{stderr}");
    assert!(stderr.contains("exporters.file.colour: unknown field `colour`"), "{stderr}");
    assert!(stderr.contains("service.pipelines.traces.exporters[0]: `nope` is not defined"), "{stderr}");

    let json = stella(&["telemetry", "config", "validate", "--json", file.to_str().unwrap()]);
    assert_eq!(json.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"].as_array().unwrap().len(), 2);
}

#[test]
fn config_validate_accepts_a_good_overlay() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("good.yaml");
    std::fs::write(
        &file,
        "exporters: {nop: {}}\nservice: {pipelines: {traces: {receivers: [otlp], exporters: [nop]}}}\n",
    )
    .unwrap();
    let output = stella(&["telemetry", "config", "validate", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("valid (3 pipelines: logs, metrics, traces)"));
}

#[test]
fn config_show_prints_the_effective_yaml_of_a_profile() {
    let output = stella(&["telemetry", "config", "show", "--profile", "airgap"]);
    assert!(output.status.success());
    let yaml = String::from_utf8_lossy(&output.stdout);
    assert!(yaml.contains("compression: zstd"), "{yaml}");
    assert!(yaml.contains("endpoint: 127.0.0.1:4317"), "{yaml}");
}

#[test]
fn reload_against_no_server_exits_4() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = stella(&["telemetry", "config", "reload", "--server", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(output.status.code(), Some(4), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is `stella telemetry serve` running there?"));
}

#[test]
fn serve_with_an_invalid_config_exits_3_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "receivers: {otlp: {protocols: {grpc: {endpoint: nowhere}}}}\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "serve", "--config", file.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("receivers.otlp.protocols.grpc.endpoint"));
}
