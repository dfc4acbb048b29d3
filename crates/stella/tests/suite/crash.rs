//! `kill -9` while `stella telemetry loadgen` sends, with `storage.sync: always`: after a restart every
//! acknowledged request is in the file export exactly once. Loadgen never re-sends, and each request
//! carries a unique `stella.loadgen.request_id`, so any id seen twice would be a real duplicate.

use crate::common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::Stella;
use stella_otlp::proto::common::v1::any_value;
use stella_otlp::{OtlpRequest, Signal};

fn request_ids(requests: &[OtlpRequest]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for request in requests {
        let OtlpRequest::Traces(traces) = request else { continue };
        for group in &traces.resource_spans {
            let resource = group.resource.as_ref().unwrap();
            let id = resource.attributes.iter().find(|attribute| attribute.key == "stella.loadgen.request_id").unwrap();
            let Some(any_value::Value::StringValue(id)) = id.value.as_ref().unwrap().value.as_ref() else {
                panic!("id is not a string")
            };
            *seen.entry(id.clone()).or_default() += 1;
        }
    }
    seen
}

#[test]
fn kill_9_under_load_loses_nothing_acknowledged_and_duplicates_nothing() {
    let body = format!("storage: {{sync: always}}\n{}", common::file_pipelines(""));
    let mut stella = Stella::start(&body);
    let acks = stella.dir.path().join("acks.txt");
    let loadgen = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "loadgen", "--endpoint", &stella.url(""), "--duration", "4s", "--workers", "4"])
        .args(["--spans-per-trace", "5", "--traces-per-request", "4", "--json", "--ack-log"])
        .arg(&acks)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    stella.signal("KILL");
    let killed = stella.wait_exit();
    assert_eq!(killed.code(), None, "stella died from the signal");
    let report = loadgen.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert!(report["connection_errors"].as_u64().unwrap() > 0, "loadgen was still sending at the kill: {report}");

    stella.spawn();
    assert!(stella.terminate().success(), "{}", stella.log());
    let acknowledged: Vec<String> = std::fs::read_to_string(&acks).unwrap().lines().map(String::from).collect();
    assert!(acknowledged.len() > 20, "only {} requests were acknowledged before the kill", acknowledged.len());
    let stored = request_ids(&stella.exported(Signal::Traces));
    let missing: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged requests lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let duplicated: Vec<(&String, &usize)> = stored.iter().filter(|(_, count)| **count > 1).collect();
    assert!(duplicated.is_empty(), "requests stored more than once: {duplicated:?}");
    eprintln!(
        "acknowledged {}, stored {} (unacknowledged but stored: {})",
        acknowledged.len(),
        stored.len(),
        stored.len() - acknowledged.len()
    );
}
