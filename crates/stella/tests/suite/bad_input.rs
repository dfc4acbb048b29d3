//! Hostile and malformed input over OTLP/HTTP: each gets a precise status and message, and the server
//! keeps serving afterwards.

use crate::common;

use std::io::Write;

use crate::common::{Stella, file_pipelines, traces};
use prost::Message;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceResponse;
use stella_otlp::{RpcStatus, Signal};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

async fn post(stella: &Stella, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> Answer {
    let mut call =
        reqwest::Client::new().post(stella.url("/v1/traces")).header("content-type", content_type).body(body);
    if let Some(encoding) = encoding {
        call = call.header("content-encoding", encoding);
    }
    let response = call.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    Answer { status, content_type, body: response.bytes().await.unwrap().to_vec() }
}

fn status_message(answer: &Answer) -> String {
    if answer.content_type == JSON {
        let value: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        value["message"].as_str().unwrap().to_string()
    } else {
        RpcStatus::decode(answer.body.as_slice()).unwrap().message
    }
}

/// Sends a POST with `headers` and `body` over a raw socket and returns what the server answered.
fn raw_exchange(port: u16, headers: &str, body: &[u8]) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!("POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: {PROTOBUF}\r\n{headers}\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 || answer.len() > 64 * 1024 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
        if String::from_utf8_lossy(&answer).contains("max_request_body_size") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_bad_input_gets_a_precise_answer_and_the_server_keeps_serving() {
    let mut stella = Stella::start(&file_pipelines(""));
    let good = traces("good", 2).encode_protobuf();

    let truncated = post(&stella, PROTOBUF, None, good[..good.len() - 5].to_vec()).await;
    assert_eq!(truncated.status, 400);
    assert!(
        status_message(&truncated).starts_with("invalid protobuf ExportTraceServiceRequest"),
        "{}",
        status_message(&truncated)
    );

    let wrong_type = post(&stella, "text/plain", None, good.clone()).await;
    assert_eq!(wrong_type.status, 415);
    assert!(status_message(&wrong_type).contains("send application/x-protobuf or application/json"));

    let unknown_encoding = post(&stella, PROTOBUF, Some("br"), good.clone()).await;
    assert_eq!(unknown_encoding.status, 415);
    assert!(status_message(&unknown_encoding).contains("unsupported Content-Encoding \"br\""));

    let declared = raw_exchange(stella.http, "Content-Length: 2097152\r\n", b"");
    assert!(declared.starts_with("HTTP/1.1 413"), "a declared oversized body is refused before it is read: {declared}");
    assert!(declared.contains("max_request_body_size"), "{declared}");
    let chunk = format!("{:x}\r\n{}\r\n", 256 * 1024, "a".repeat(256 * 1024));
    let streamed = raw_exchange(stella.http, "Transfer-Encoding: chunked\r\n", chunk.repeat(6).as_bytes());
    assert!(streamed.starts_with("HTTP/1.1 413"), "a streamed body is cut at the cap: {streamed}");

    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024, "the bomb fits under the wire cap");
    let exploded = post(&stella, PROTOBUF, Some("gzip"), bomb).await;
    assert_eq!(exploded.status, 413);
    assert!(status_message(&exploded).contains("max_decompressed_size_mib"), "{}", status_message(&exploded));

    let corrupt_gzip = post(&stella, PROTOBUF, Some("gzip"), b"\x1f\x8b\x08garbage".to_vec()).await;
    assert_eq!(corrupt_gzip.status, 400);

    let invalid_json = post(&stella, JSON, None, b"{\"resourceSpans\": [".to_vec()).await;
    assert_eq!(invalid_json.status, 400);
    assert_eq!(invalid_json.content_type, JSON, "a JSON request gets a JSON Status");
    assert!(
        status_message(&invalid_json).starts_with("invalid OTLP/JSON traces request at $:"),
        "{}",
        status_message(&invalid_json)
    );

    let wrong_field =
        post(&stella, JSON, None, br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}"#.to_vec()).await;
    assert_eq!(wrong_field.status, 400);
    assert!(
        status_message(&wrong_field).contains("resourceSpans[0].scopeSpans[0].spans[0].name"),
        "{}",
        status_message(&wrong_field)
    );

    let mut request = traces("ids", 3);
    if let stella_otlp::OtlpRequest::Traces(traces) = &mut request {
        traces.resource_spans[0].scope_spans[0].spans[1].trace_id.truncate(15);
    }
    let partial = post(&stella, PROTOBUF, None, request.encode_protobuf()).await;
    assert_eq!(partial.status, 200);
    let answer = ExportTraceServiceResponse::decode(partial.body.as_slice()).unwrap();
    let partial_success = answer.partial_success.unwrap();
    assert_eq!(partial_success.rejected_spans, 1);
    assert!(
        partial_success.error_message.contains("spans[1]: traceId must be 16 bytes"),
        "{}",
        partial_success.error_message
    );

    let method = reqwest::Client::new().get(stella.url("/v1/traces")).send().await.unwrap();
    assert_eq!(method.status(), 405);

    let still_good = post(&stella, PROTOBUF, None, good).await;
    assert_eq!(still_good.status, 200, "the server keeps serving after bad input");

    assert!(stella.terminate().success());
    let names = common::span_names(&stella.exported(Signal::Traces));
    assert_eq!(names, vec!["ids-0", "ids-2", "good-0", "good-1"], "only the valid spans were stored");
}

/// Slowloris: a client that sends its headers, or its body, too slowly is cut off after `read_timeout`
/// (the connection closed, or 408 with the setting named), and real clients are served meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_and_slow_bodies_are_cut_off_after_read_timeout() {
    use std::io::Read;
    let extra = common::Extra { receiver: "read_timeout: 1s", ..Default::default() };
    let stella = Stella::start_with_receiver(&extra, &file_pipelines("batch"));
    let read_all = |stream: &mut std::net::TcpStream| {
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(read) = stream.read(&mut buffer) {
            if read == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..read]);
        }
        (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
    };

    // Headers that never finish: the server closes the connection.
    let mut slow_headers = std::net::TcpStream::connect(("127.0.0.1", stella.http)).unwrap();
    slow_headers.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Ty").unwrap();
    // A body that stops after 10 of its 1000 bytes: 408, naming the setting.
    let mut slow_body = std::net::TcpStream::connect(("127.0.0.1", stella.http)).unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: {PROTOBUF}\r\nContent-Length: 1000\r\n\r\n"
    );
    slow_body.write_all(head.as_bytes()).unwrap();
    slow_body.write_all(&[0u8; 10]).unwrap();
    // Meanwhile a real client is served.
    let answer = post(&stella, PROTOBUF, None, traces("meanwhile", 1).encode_protobuf()).await;
    assert_eq!(answer.status, 200);

    let (body_answer, waited) = read_all(&mut slow_body);
    assert!(body_answer.starts_with("HTTP/1.1 408"), "{body_answer}");
    assert!(body_answer.contains("read_timeout"), "{body_answer}");
    assert!(waited < std::time::Duration::from_secs(5), "cut off after ~1s, not {waited:?}");
    let (header_answer, waited) = read_all(&mut slow_headers);
    assert!(!header_answer.contains("200 OK"), "{header_answer}");
    assert!(waited < std::time::Duration::from_secs(5), "closed after ~1s, not {waited:?}");
}
