//! Log volume: for each sealed chunk of logs, how many lines and bytes of lines each Loki stream has in
//! each millisecond, so that LogQL counts (`count_over_time`, `rate`, `bytes_over_time`, `bytes_rate`
//! of a bare stream selector, summed by stream labels: the log volume Grafana draws above every logs
//! query), stream label names and values, series and index statistics are answered without reading and
//! decoding the chunk's lines.
//!
//! Streams are the label sets [`stella_otlp::loki::streams`] makes with the default stream labels (those
//! the LogQL reader shows). Each stream also keeps the names its structured metadata gives a line's
//! labels (a name a stream label has becomes `<name>_extracted`), so a reader knows whether summing by a
//! label may need values the volume does not hold.
//!
//! A line at `t` unix nanoseconds counts in slot `2 * (t / 1_000_000) + (t % 1_000_000 != 0)`: the
//! millisecond it falls in and whether it falls exactly on its start. Any range with millisecond
//! boundaries is then a range of slots, both half-open ways: `[s ms, e ms)` is slots `2s..2e`, and the
//! window `(f ms, t ms]` a range aggregation counts is slots `2f + 1..=2t`.
//!
//! Kept as `<sha256>.volume` next to the chunk, built from the chunk's records alone (the same records
//! give the same bytes). A reader that finds no file or a damaged one builds the volume from the chunk.
//!
//! ```text
//! magic    8 bytes  "STLVOLUM"
//! version  u8       VOLUME_FORMAT_VERSION (1)
//! body     zstd of: varint streams, then per stream (sorted by labels):
//!            varint labels, (string name, string value)*  sorted by name
//!            varint metadata names, string*               sorted
//!            varint slots, (varint slot delta, varint lines, varint bytes)*  ascending slots
//!          a string is a varint length and its UTF-8 bytes
//! crc32    u32 BE   CRC-32 (IEEE) of every byte before it
//! ```
use std::collections::{BTreeMap, BTreeSet};

use prost::encoding::{decode_varint, encode_varint};
use stella_otlp::OtlpRequest;
use stella_otlp::loki::{StreamLabels, streams};

/// The first bytes of every volume file.
const MAGIC: &[u8; 8] = b"STLVOLUM";

/// The volume file format version.
pub const VOLUME_FORMAT_VERSION: u8 = 1;

/// The zstd level of the body.
const ZSTD_LEVEL: i32 = 3;

/// The largest body a volume file may unpack to.
const MAX_BODY: usize = 256 << 20;

/// Nanoseconds per millisecond.
const MILLI: u64 = 1_000_000;

/// The file of a chunk's log volume in its day directory.
pub fn volume_file(sha256: &str) -> String {
    format!("{sha256}.volume")
}

/// The slot of a line at `at` unix nanoseconds (see the module documentation).
pub fn slot(at: u64) -> u64 {
    2 * (at / MILLI) + u64::from(!at.is_multiple_of(MILLI))
}

/// The slots of the lines with `start <= at < end` (unix nanoseconds, both whole milliseconds):
/// `None` when a bound is not a whole millisecond.
pub fn slots_from_to(start: u64, end: u64) -> Option<std::ops::Range<u64>> {
    (start.is_multiple_of(MILLI) && end.is_multiple_of(MILLI)).then(|| 2 * (start / MILLI)..2 * (end / MILLI))
}

/// The lines and bytes of one stream in one slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Lines.
    pub lines: u64,
    /// Bytes of the lines.
    pub bytes: u64,
}

impl Tally {
    /// Adds `other`'s lines and bytes.
    pub fn add(&mut self, other: Tally) {
        self.lines = self.lines.saturating_add(other.lines);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// One stream's volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamVolume {
    /// The label names its lines' structured metadata adds, as a line's labels name them.
    pub metadata: BTreeSet<String>,
    /// Lines and bytes by slot.
    pub slots: BTreeMap<u64, Tally>,
}

impl StreamVolume {
    /// The lines and bytes in `slots`.
    pub fn tally(&self, slots: std::ops::Range<u64>) -> Tally {
        let mut total = Tally::default();
        for tally in self.slots.range(slots).map(|(_, tally)| *tally) {
            total.add(tally);
        }
        total
    }
}

/// The volume of a chunk (or of the records added so far), by stream label set (sorted pairs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogVolume {
    /// Streams by label set.
    pub streams: BTreeMap<Vec<(String, String)>, StreamVolume>,
}

impl LogVolume {
    /// Adds the lines of one request (a request of another signal adds nothing).
    pub fn add_request(&mut self, request: &OtlpRequest) {
        let OtlpRequest::Logs(request) = request else { return };
        for (stream, entries) in streams(request, &StreamLabels::default(), 0) {
            for entry in entries {
                self.add_line(&stream, entry.at, entry.line.len() as u64, &entry.metadata);
            }
        }
    }

    /// Adds one line of `stream` at `at` (unix nanoseconds), `bytes` long, with `metadata`.
    pub fn add_line(&mut self, stream: &[(String, String)], at: u64, bytes: u64, metadata: &[(String, String)]) {
        let volume = match self.streams.get_mut(stream) {
            Some(volume) => volume,
            None => self.streams.entry(stream.to_vec()).or_default(),
        };
        for (name, _) in metadata {
            if stream.iter().any(|(label, _)| label == name) {
                volume.metadata.insert(format!("{name}_extracted"));
            } else if !volume.metadata.contains(name) {
                volume.metadata.insert(name.clone());
            }
        }
        volume.slots.entry(slot(at)).or_default().add(Tally { lines: 1, bytes });
    }

    /// The volume file. Independent of the order lines were added in.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let put_text = |body: &mut Vec<u8>, text: &str| {
            encode_varint(text.len() as u64, body);
            body.extend_from_slice(text.as_bytes());
        };
        encode_varint(self.streams.len() as u64, &mut body);
        for (labels, volume) in &self.streams {
            encode_varint(labels.len() as u64, &mut body);
            for (name, value) in labels {
                put_text(&mut body, name);
                put_text(&mut body, value);
            }
            encode_varint(volume.metadata.len() as u64, &mut body);
            for name in &volume.metadata {
                put_text(&mut body, name);
            }
            encode_varint(volume.slots.len() as u64, &mut body);
            let mut previous = 0;
            for (slot, tally) in &volume.slots {
                encode_varint(slot - previous, &mut body);
                encode_varint(tally.lines, &mut body);
                encode_varint(tally.bytes, &mut body);
                previous = *slot;
            }
        }
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + body.len() / 4 + 4);
        out.extend_from_slice(MAGIC);
        out.push(VOLUME_FORMAT_VERSION);
        out.extend_from_slice(&zstd::bulk::compress(&body, ZSTD_LEVEL).unwrap_or_default());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a volume file; an error says what is wrong with it (the caller then reads the chunk).
    pub fn decode(bytes: &[u8]) -> Result<LogVolume, String> {
        let Some((framed, crc)) = bytes.split_last_chunk::<4>() else {
            return Err(format!("{} bytes is too short for a log volume", bytes.len()));
        };
        if crc32fast::hash(framed) != u32::from_be_bytes(*crc) {
            return Err("its checksum does not match its bytes".into());
        }
        let Some((header, compressed)) = framed.split_at_checked(MAGIC.len() + 1) else {
            return Err("its header is truncated".into());
        };
        if &header[..MAGIC.len()] != MAGIC {
            return Err("it is not a log volume (bad magic)".into());
        }
        if header[MAGIC.len()] != VOLUME_FORMAT_VERSION {
            return Err(format!("format version {} is not {VOLUME_FORMAT_VERSION}", header[MAGIC.len()]));
        }
        let body = zstd::bulk::decompress(compressed, MAX_BODY).map_err(|error| format!("its body: {error}"))?;
        let mut reader = &body[..];
        let volume = read_volume(&mut reader)
            .map_err(|problem| format!("its body at byte {}: {problem}", body.len() - reader.len()))?;
        if !reader.is_empty() {
            return Err(format!("{} bytes follow its last stream", reader.len()));
        }
        Ok(volume)
    }
}

fn read_count(reader: &mut &[u8]) -> Result<usize, String> {
    let count = decode_varint(reader).map_err(|error| error.to_string())?;
    // Every counted item takes at least one byte: a larger count is a lie, not a reason to allocate.
    usize::try_from(count).ok().filter(|count| *count <= reader.len()).ok_or_else(|| format!("a count of {count}"))
}

fn read_text(reader: &mut &[u8]) -> Result<String, String> {
    let length = decode_varint(reader).map_err(|error| error.to_string())?;
    let length = usize::try_from(length).ok().filter(|length| *length <= reader.len());
    let (text, rest) = reader.split_at(length.ok_or("a string longer than what follows")?);
    *reader = rest;
    String::from_utf8(text.to_vec()).map_err(|_| "a string that is not UTF-8".into())
}

fn read_volume(reader: &mut &[u8]) -> Result<LogVolume, String> {
    let mut volume = LogVolume::default();
    for _ in 0..read_count(reader)? {
        let mut labels = Vec::new();
        for _ in 0..read_count(reader)? {
            labels.push((read_text(reader)?, read_text(reader)?));
        }
        let mut stream = StreamVolume::default();
        for _ in 0..read_count(reader)? {
            stream.metadata.insert(read_text(reader)?);
        }
        let mut slot = 0u64;
        for _ in 0..read_count(reader)? {
            let delta = decode_varint(reader).map_err(|error| error.to_string())?;
            slot = slot.checked_add(delta).ok_or("a slot past the end of time")?;
            let lines = decode_varint(reader).map_err(|error| error.to_string())?;
            let bytes = decode_varint(reader).map_err(|error| error.to_string())?;
            stream.slots.insert(slot, Tally { lines, bytes });
        }
        volume.streams.insert(labels, stream);
    }
    Ok(volume)
}

#[cfg(test)]
mod tests {
    use stella_otlp::attributes::string;
    use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
    use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
    use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use stella_otlp::proto::resource::v1::Resource;

    use super::*;

    fn record(at: u64, severity: i32, body: &str, attributes: Vec<KeyValue>) -> LogRecord {
        LogRecord {
            time_unix_nano: at,
            severity_number: severity,
            body: Some(AnyValue { value: Some(any_value::Value::StringValue(body.into())) }),
            attributes,
            ..Default::default()
        }
    }

    fn request(service: &str, records: Vec<LogRecord>) -> OtlpRequest {
        OtlpRequest::Logs(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource { attributes: vec![string("service.name", service)], ..Default::default() }),
                scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
                ..Default::default()
            }],
        })
    }

    #[test]
    fn slots_split_each_millisecond_at_its_start() {
        assert_eq!(slot(0), 0);
        assert_eq!(slot(MILLI), 2, "exactly on a millisecond");
        assert_eq!(slot(MILLI + 1), 3);
        assert_eq!(slot(2 * MILLI - 1), 3);
        assert_eq!(slots_from_to(MILLI, 3 * MILLI), Some(2..6));
        assert_eq!(slots_from_to(MILLI + 1, 3 * MILLI), None);
        // [1 ms, 3 ms) holds lines at 1 ms and up to 3 ms - 1 ns, not at 3 ms.
        let range = slots_from_to(MILLI, 3 * MILLI).unwrap();
        assert!(range.contains(&slot(MILLI)) && range.contains(&slot(3 * MILLI - 1)));
        assert!(!range.contains(&slot(MILLI - 1)) && !range.contains(&slot(3 * MILLI)));
    }

    #[test]
    fn lines_are_tallied_per_stream_and_slot_with_their_metadata_names() {
        let mut volume = LogVolume::default();
        volume.add_request(&request(
            "cart",
            vec![
                record(5 * MILLI, 9, "one", vec![string("user", "a")]),
                record(5 * MILLI + 7, 9, "three", vec![string("severity", "x")]),
                record(5 * MILLI + 9, 9, "four", Vec::new()),
                record(6 * MILLI, 17, "boom", Vec::new()),
            ],
        ));
        let info = [("service_name", "cart"), ("severity", "info")].map(|(n, v)| (n.to_string(), v.to_string()));
        let stream = &volume.streams[&info.to_vec()];
        assert_eq!(stream.metadata, BTreeSet::from(["severity_extracted".to_string(), "user".to_string()]));
        assert_eq!(stream.slots[&10], Tally { lines: 1, bytes: 3 });
        assert_eq!(stream.slots[&11], Tally { lines: 2, bytes: 9 });
        assert_eq!(stream.tally(0..u64::MAX), Tally { lines: 3, bytes: 12 });
        assert_eq!(volume.streams.len(), 2, "the error line is a stream of its own");
    }

    #[test]
    fn the_file_round_trips_and_does_not_depend_on_the_order_of_lines() {
        let lines: Vec<LogRecord> =
            (0..200u64).map(|at| record(at * 333_333, 9 + (at % 3) as i32 * 4, "line", Vec::new())).collect();
        let mut forward = LogVolume::default();
        forward.add_request(&request("cart", lines.clone()));
        let mut backward = LogVolume::default();
        backward.add_request(&request("cart", lines.into_iter().rev().collect()));
        let bytes = forward.encode();
        assert_eq!(bytes, backward.encode());
        assert_eq!(LogVolume::decode(&bytes).unwrap(), forward);
        assert_eq!(LogVolume::decode(&LogVolume::default().encode()).unwrap(), LogVolume::default());
    }

    #[test]
    fn flipped_truncated_and_foreign_files_are_refused() {
        let mut volume = LogVolume::default();
        volume.add_request(&request("cart", vec![record(MILLI, 9, "line", Vec::new())]));
        let bytes = volume.encode();
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert!(LogVolume::decode(&flipped).is_err(), "byte {at} flipped");
        }
        for length in 0..bytes.len() {
            assert!(LogVolume::decode(&bytes[..length]).is_err(), "truncated to {length}");
        }
        // A well-framed body that lies about its counts is refused without allocating for them.
        let mut lying = MAGIC.to_vec();
        lying.push(VOLUME_FORMAT_VERSION);
        let mut body = Vec::new();
        encode_varint(u64::MAX, &mut body);
        lying.extend_from_slice(&zstd::bulk::compress(&body, 3).unwrap());
        let crc = crc32fast::hash(&lying);
        lying.extend_from_slice(&crc.to_be_bytes());
        assert!(LogVolume::decode(&lying).unwrap_err().contains("a count of"));
    }
}
