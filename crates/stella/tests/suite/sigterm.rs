//! SIGTERM under load: every request that was answered 200 is in the export once the process exits;
//! nothing acknowledged is lost while receivers stop, the batch processor drains and the file syncs.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::{Stella, file_pipelines, span_names, traces};
use stella_otlp::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_nothing_that_was_acknowledged() {
    let body = format!("processors:\n  batch: {{send_batch_size: 20, timeout: 100ms}}\n{}", file_pipelines("batch"));
    let mut stella = Stella::start(&body);
    let url = stella.url("/v1/traces");
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..8 {
        let url = url.clone();
        let stop = Arc::clone(&stop);
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acked = Vec::new();
            let mut sequence = 0;
            while !stop.load(Ordering::Relaxed) && sequence < 5000 {
                let prefix = format!("w{worker}-r{sequence}");
                sequence += 1;
                let body = traces(&prefix, 5).encode_protobuf();
                let sent = client.post(&url).header("content-type", "application/x-protobuf").body(body).send().await;
                match sent {
                    Ok(response) if response.status() == 200 => acked.push(prefix),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = stella.terminate();
        (stella, status)
    })
    .await
    .unwrap();
    let (stella, exit) = status;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for worker in workers {
        acked.extend(worker.await.unwrap());
    }
    assert!(exit.success(), "exit status {exit}:\n{}", stella.log());
    assert!(acked.len() > 50, "the load generator got only {} answers", acked.len());
    let written: Vec<String> = span_names(&stella.exported(Signal::Traces));
    let written_set: HashSet<&String> = written.iter().collect();
    assert_eq!(written.len(), written_set.len(), "no span was written twice");
    let mut missing = Vec::new();
    for prefix in &acked {
        for index in 0..5 {
            let name = format!("{prefix}-{index}");
            if !written_set.contains(&name) {
                missing.push(name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged spans missing, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        stella.log().lines().filter(|line| !line.contains("\"listening\"")).collect::<Vec<_>>().join("\n")
    );
    eprintln!("acknowledged requests: {}, spans written: {}", acked.len(), written.len());
}
