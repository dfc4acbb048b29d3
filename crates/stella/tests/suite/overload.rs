//! Overload: past the concurrency bound requests get 429 + Retry-After at once (never 500, never a
//! hang), and the receiver serves normally again once the burst is over.

use crate::common;

use crate::common::{Stella, file_pipelines, traces};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_concurrency_bound_gets_429_and_the_receiver_recovers() {
    let body = format!("storage: {{sync: always}}\n{}", file_pipelines(""));
    let mut stella = Stella::start_with_receiver(
        &common::Extra {
            receiver: "max_concurrent_requests: 2",
            protocol: "max_concurrent_requests: 2",
            api: "",
            caps: None,
        },
        &body,
    );
    let payload = traces("burst", 200).encode_protobuf();
    let mut calls = Vec::new();
    for _ in 0..64 {
        let url = stella.url("/v1/traces");
        let payload = payload.clone();
        calls.push(tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-protobuf")
                .body(payload)
                .send()
                .await
                .unwrap();
            let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_string());
            (response.status().as_u16(), retry_after)
        }));
    }
    let mut statuses = std::collections::BTreeMap::new();
    for call in calls {
        let (status, retry_after) = call.await.unwrap();
        if status == 429 {
            assert_eq!(retry_after.as_deref(), Some("1"), "a 429 says when to retry");
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert!(statuses.keys().all(|status| [200, 429].contains(status)), "only 200 and 429: {statuses:?}");
    assert!(statuses.get(&429).copied().unwrap_or(0) > 0, "the burst was not refused at all: {statuses:?}");
    assert!(statuses.get(&200).copied().unwrap_or(0) > 0, "nothing got through: {statuses:?}");

    let after = reqwest::Client::new()
        .post(stella.url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(traces("after", 1).encode_protobuf())
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200, "the receiver recovers after the burst");
    assert!(stella.terminate().success());
    let stored = common::span_names(&stella.exported(stella_otlp::Signal::Traces)).len();
    assert_eq!(stored, statuses[&200] * 200 + 1, "every accepted request was stored, no refused one was");
}
