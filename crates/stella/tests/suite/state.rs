//! The state database (`<data-dir>/state.redb`), whole binary: the import of the JSON files of before,
//! holds across a restart, and a second process on the same data directory.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Extra, Stella, config_with_ports, free_port};

const STORE_ONLY: &str = "exporters:\n  store: {retention: {default: 30d}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [store]}\n    metrics: null\n    logs: null\n";

/// A `holds.json` as stella wrote it before the state database.
const HOLDS_OF_BEFORE: &str = r#"[{"id":"hold-1","tenant":"default","kind":"legal","from":"2020-01-01T00:00:00Z","reason":"case of before","by":"token:a","created":"2020-01-01T00:00:00Z"}]"#;

async fn hold_ids(stella: &Stella) -> Vec<String> {
    let body: serde_json::Value = reqwest::get(stella.api_url("/telemetry/holds")).await.unwrap().json().await.unwrap();
    body["holds"].as_array().unwrap().iter().map(|hold| hold["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_holds_are_imported_holds_survive_a_restart_and_a_second_process_is_refused_at_once() {
    let mut stella = Stella::prepare(&Extra::default(), STORE_ONLY);
    std::fs::create_dir_all(stella.data_dir()).unwrap();
    std::fs::write(stella.data_dir().join("holds.json"), HOLDS_OF_BEFORE).unwrap();
    stella.spawn();
    assert_eq!(hold_ids(&stella).await, ["hold-1"], "imported: {}", stella.log());
    assert!(stella.data_dir().join("holds.json.migrated").exists() && !stella.data_dir().join("holds.json").exists());
    assert!(stella.log().contains("state.migrated"), "{}", stella.log());
    let placed = reqwest::Client::new()
        .post(stella.api_url("/telemetry/holds"))
        .json(&serde_json::json!({"from": "2021-01-01T00:00:00Z", "reason": "new case"}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);

    // A second process on the same data directory (its own ports) stops at once with a clear error.
    let second_config = stella.dir.path().join("second.yaml");
    std::fs::write(&second_config, config_with_ports(free_port(), free_port(), free_port(), STORE_ONLY)).unwrap();
    let mut second = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "serve", "--config"])
        .arg(&second_config)
        .arg("--data-dir")
        .arg(stella.data_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            second.kill().unwrap();
            panic!("a second process on the same data directory did not stop");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::io::read_to_string(second.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is in use by a running server"), "{stderr}");

    assert!(stella.terminate().success());
    stella.spawn();
    assert_eq!(hold_ids(&stella).await, ["hold-1", "hold-2"], "holds survive a restart");
    assert!(stella.terminate().success());
}
