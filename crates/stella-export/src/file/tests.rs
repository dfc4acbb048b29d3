use std::sync::Arc;

use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use stella_otlp::{Ack, Batch, OtlpRequest, Signal};

use super::*;
use crate::{Delivery, Exporter};

fn delivery() -> Delivery<'static> {
    Delivery { consumer: "traces|default", next_seq: 1 }
}

fn batch(name: &str) -> Batch {
    let span = Span { name: name.into(), trace_id: vec![1; 16], span_id: vec![2; 8], ..Default::default() };
    let request = OtlpRequest::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
            ..Default::default()
        }],
    });
    let (ack, _receiver) = Ack::new();
    Batch::new(Arc::from("default"), request, ack)
}

fn config(path: &str, format: Format, compression: Compression, rotation: Option<RotationConfig>) -> FileConfig {
    FileConfig { path: path.into(), format, compression, rotation }
}

#[tokio::test]
async fn json_lines_hold_one_request_per_line_under_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = FileExporter::open(
        "file".into(),
        config("out/{signal}.jsonl", Format::Json, Compression::None, None),
        dir.path(),
        None,
    )
    .unwrap();
    for name in ["a", "b"] {
        let batch = batch(name);
        exporter.export(&batch, delivery()).await.unwrap();
        batch.settle(Ok(()));
    }
    exporter.flush().await.unwrap();
    let text = std::fs::read_to_string(dir.path().join("out/traces.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let second = stella_otlp::json::decode(Signal::Traces, lines[1].as_bytes()).unwrap();
    assert_eq!(second, batch("b").request);
}

#[tokio::test]
async fn zstd_proto_files_decompress_to_the_length_prefixed_stream() {
    let dir = tempfile::tempdir().unwrap();
    let exporter =
        FileExporter::open("file".into(), config("t.pb.zst", Format::Proto, Compression::Zstd, None), dir.path(), None)
            .unwrap();
    for name in ["a", "b", "c"] {
        let batch = batch(name);
        exporter.export(&batch, delivery()).await.unwrap();
        batch.settle(Ok(()));
    }
    let compressed = std::fs::read(dir.path().join("t.pb.zst")).unwrap();
    let stream = zstd::stream::decode_all(compressed.as_slice()).unwrap();
    let requests = decode_proto_stream(Signal::Traces, &stream).unwrap();
    assert_eq!(requests, vec![batch("a").request, batch("b").request, batch("c").request]);
}

#[tokio::test]
async fn rotation_starts_a_new_file_and_keeps_max_backups() {
    let dir = tempfile::tempdir().unwrap();
    let rotation = RotationConfig { max_megabytes: 1, max_backups: 2, ..Default::default() };
    let signer = Arc::new(Recorder::default());
    let exporter = FileExporter::open(
        "file".into(),
        config("t.jsonl", Format::Json, Compression::None, Some(rotation)),
        dir.path(),
        Some(signer.clone()),
    )
    .unwrap();
    let big_name = "x".repeat(400 * 1024);
    for _ in 0..12 {
        let batch = batch(&big_name);
        exporter.export(&batch, delivery()).await.unwrap();
        batch.settle(Ok(()));
        // distinct rotation timestamps (millisecond resolution)
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let rotated = rotate::rotated_files(&dir.path().join("t.jsonl")).unwrap();
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    assert!(std::fs::metadata(dir.path().join("t.jsonl")).unwrap().len() <= 1024 * 1024);
    // Every rotation was signed; pruning took the manifests of pruned files along.
    let signed = signer.0.lock().unwrap().clone();
    assert!(signed.len() > 2, "{signed:?}");
    for path in &rotated {
        assert!(signed.contains(path) && crate::file::rotation_manifest_path(path).exists(), "{path:?}");
    }
    let manifests = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().ends_with(".dsse.json"))
        .count();
    assert_eq!(manifests, 2, "the manifests of pruned files are gone too");
}

/// Records the files it was asked to sign and writes a placeholder manifest beside each.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<std::path::PathBuf>>);

impl crate::file::RotationSigner for Recorder {
    fn sign_rotation(&self, rotated: &std::path::Path) -> Result<std::path::PathBuf, String> {
        self.0.lock().unwrap().push(rotated.to_path_buf());
        let manifest = crate::file::rotation_manifest_path(rotated);
        std::fs::write(&manifest, b"{}").map_err(|error| error.to_string())?;
        Ok(manifest)
    }
}

#[test]
fn truncated_proto_stream_is_reported_with_its_offset() {
    let record = encode_record(&batch("a").request, Format::Proto, Compression::None).unwrap();
    let error = decode_proto_stream(Signal::Traces, &record[..record.len() - 1]).unwrap_err();
    assert!(error.starts_with("record at byte 0 claims"), "{error}");
}

#[tokio::test]
async fn an_unrecorded_tail_is_cut_on_open_and_positions_survive() {
    let dir = tempfile::tempdir().unwrap();
    let config = config("t.jsonl", Format::Json, Compression::None, None);
    let exporter = FileExporter::open("file".into(), config.clone(), dir.path(), None).unwrap();
    let batch = batch("kept");
    exporter.export(&batch, Delivery { consumer: "traces|default", next_seq: 5 }).await.unwrap();
    batch.settle(Ok(()));
    drop(exporter);
    let path = dir.path().join("t.jsonl");
    let kept = std::fs::read(&path).unwrap();
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut file, b"{\"resourceSpans\":[{\"half written").unwrap();
    let reopened = FileExporter::open("file".into(), config, dir.path(), None).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), kept, "the torn write was cut off");
    assert_eq!(reopened.resume_point(Signal::Traces, "traces|default"), Some(5));
    assert_eq!(reopened.resume_point(Signal::Traces, "logs|default"), None);
}

/// #16 item 12: saving the positions fails (here: the sidecar's name is taken by a directory); every retry
/// of the batch must leave the record in the file once, never once per attempt.
#[tokio::test]
async fn a_write_whose_position_cannot_be_recorded_is_taken_back_so_retries_write_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = config("t.jsonl", Format::Json, Compression::None, None);
    let exporter = FileExporter::open("file".into(), config, dir.path(), None).unwrap();
    let first = batch("first");
    exporter.export(&first, Delivery { consumer: "traces|default", next_seq: 1 }).await.unwrap();
    let path = dir.path().join("t.jsonl");
    let before = std::fs::read(&path).unwrap();
    let sidecar = dir.path().join("t.jsonl.positions");
    std::fs::remove_file(&sidecar).unwrap();
    std::fs::create_dir_all(sidecar.join("blocked")).unwrap();
    let retried = batch("retried");
    for _ in 0..9 {
        assert!(exporter.export(&retried, Delivery { consumer: "traces|default", next_seq: 2 }).await.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before, "a failed attempt leaves nothing behind");
        assert_eq!(exporter.resume_point(Signal::Traces, "traces|default"), Some(1));
    }
    std::fs::remove_dir_all(&sidecar).unwrap();
    exporter.export(&retried, Delivery { consumer: "traces|default", next_seq: 2 }).await.unwrap();
    exporter.flush().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2, "first and retried, each once: {text}");
    assert_eq!(exporter.resume_point(Signal::Traces, "traces|default"), Some(2));
}

#[tokio::test]
async fn stored_bytes_are_written_as_one_merged_proto_record() {
    let dir = tempfile::tempdir().unwrap();
    let exporter =
        FileExporter::open("file".into(), config("t.pb", Format::Proto, Compression::None, None), dir.path(), None)
            .unwrap();
    assert!(exporter.takes_encoded());
    let (first, second) = (batch("a").request, batch("b").request);
    let mut bytes = first.encode_protobuf();
    bytes.extend(second.encode_protobuf());
    let encoded = crate::Encoded { signal: Signal::Traces, bytes, items: 2 };
    exporter.export_encoded(&encoded, delivery()).await.unwrap();
    let stream = std::fs::read(dir.path().join("t.pb")).unwrap();
    let mut merged = first;
    merged.append(second).unwrap();
    assert_eq!(decode_proto_stream(Signal::Traces, &stream).unwrap(), vec![merged]);
    let json =
        FileExporter::open("json".into(), config("t.jsonl", Format::Json, Compression::None, None), dir.path(), None)
            .unwrap();
    assert!(!json.takes_encoded(), "JSON lines need the decoded request");
}
