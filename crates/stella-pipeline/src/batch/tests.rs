use std::sync::Arc;
use std::time::Duration;

use stella_metrics::Registry;
use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use stella_otlp::{Ack, AckReceiver, Batch, OtlpRequest};
use tokio::sync::mpsc;

use super::{BatchConfig, BatchMetrics, spawn};

fn logs(tenant: &str, records: usize) -> (Batch, AckReceiver) {
    let request = OtlpRequest::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs { log_records: vec![LogRecord::default(); records], ..Default::default() }],
            ..Default::default()
        }],
    });
    let (ack, receiver) = Ack::new();
    (Batch::new(Arc::from(tenant), request, ack), receiver)
}

fn start(config: BatchConfig) -> (mpsc::Sender<Batch>, mpsc::Receiver<Batch>) {
    let (input, input_rx) = mpsc::channel(16);
    let (output_tx, output) = mpsc::channel(16);
    spawn(config, "logs".into(), BatchMetrics::new(&Registry::default()), input_rx, output_tx);
    (input, output)
}

#[tokio::test]
async fn merges_until_send_batch_size_and_carries_every_ack() {
    let (input, mut output) =
        start(BatchConfig { send_batch_size: 5, timeout: Duration::from_secs(60), ..Default::default() });
    let (first, first_ack) = logs("default", 2);
    let (second, second_ack) = logs("default", 3);
    input.send(first).await.unwrap();
    input.send(second).await.unwrap();
    let batch = output.recv().await.unwrap();
    assert_eq!(batch.item_count(), 5);
    assert_eq!(batch.acks.len(), 2);
    batch.settle(Ok(()));
    assert_eq!(first_ack.wait().await, Ok(()));
    assert_eq!(second_ack.wait().await, Ok(()));
}

#[tokio::test]
async fn never_mixes_tenants() {
    let (input, mut output) =
        start(BatchConfig { send_batch_size: 4, timeout: Duration::from_millis(20), ..Default::default() });
    let (a, _a_ack) = logs("alpha", 2);
    let (b, _b_ack) = logs("beta", 2);
    input.send(a).await.unwrap();
    input.send(b).await.unwrap();
    let mut tenants = vec![output.recv().await.unwrap(), output.recv().await.unwrap()]
        .into_iter()
        .map(|batch| (batch.tenant.to_string(), batch.item_count()))
        .collect::<Vec<_>>();
    tenants.sort();
    assert_eq!(tenants, vec![("alpha".into(), 2), ("beta".into(), 2)]);
}

#[tokio::test]
async fn splits_at_send_batch_max_size_and_acks_only_when_every_part_is_settled() {
    let (input, mut output) =
        start(BatchConfig { send_batch_size: 3, send_batch_max_size: 3, timeout: Duration::from_millis(20) });
    let (big, big_ack) = logs("default", 7);
    input.send(big).await.unwrap();
    let mut sizes = Vec::new();
    let mut parts = Vec::new();
    while sizes.iter().sum::<usize>() < 7 {
        let part = output.recv().await.unwrap();
        sizes.push(part.item_count());
        parts.push(part);
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    let last = parts.pop().unwrap();
    for part in parts {
        part.settle(Ok(()));
    }
    drop(last);
    assert_eq!(big_ack.wait().await, Err(stella_otlp::AckError::NotDelivered));
}

#[tokio::test]
async fn closing_the_input_flushes_what_is_pending() {
    let (input, mut output) =
        start(BatchConfig { send_batch_size: 100, timeout: Duration::from_secs(3600), ..Default::default() });
    let (small, _ack) = logs("default", 1);
    input.send(small).await.unwrap();
    drop(input);
    let batch = output.recv().await.unwrap();
    assert_eq!(batch.item_count(), 1);
    assert!(output.recv().await.is_none());
}
