//! Index shards: for one run of a tenant's signal on a UTC day (see the day module), each stream (see the
//! streams module) with the chunks that hold it and, per chunk, the stream's time range and item count,
//! so a scan rules chunks out without reading them. Built from the run's chunks alone: the same chunks
//! at the same positions give the same bytes, whether the shard was merged from smaller runs' shards or
//! rebuilt by `store check --repair`.
//!
//! ```text
//! varint = unsigned LEB128 (at most 10 bytes); string = varint length, then UTF-8
//!
//! magic      8 bytes  "STLSHARD"
//! version    u8       SHARD_FORMAT_VERSION (1)
//! signal     u8       1 traces (services.bin), 2 metrics (series.bin), 3 logs (streams.bin)
//! chunks     varint   positions it covers: one past its run's last (see the day module)
//! streams    varint   count, then each stream, in (name, labels) order, each once:
//!   name       string
//!   labels     varint count, then (label name string, value string) each, in name order, each name once
//!   length     varint   bytes of the postings block that follows (a reader skips streams it does not want)
//!   postings   varint count (at least 1), then per chunk holding the stream, by position ascending:
//!     gap        varint   position - (previous posting's position + 1); the first: its position
//!     min        varint   zigzag of (min time - previous posting's min time) mod 2^64; the first: from 0
//!     span       varint   max time - min time
//!     items      varint   spans, log records or data points
//! ```
//! Nothing follows the last stream. Times are unix nanoseconds. The run manifest records the file's
//! SHA-256 (`shard_sha256`); a reader trusts a shard only when that digest and the positions covered
//! match.
use std::collections::{BTreeMap, BTreeSet};

use stella_otlp::Signal;

use super::streams::{ChunkStreams, ScanFilter, StreamKey, StreamStats};

/// The first bytes of every shard file.
const MAGIC: &[u8; 8] = b"STLSHARD";

/// The shard format version in every shard file.
pub const SHARD_FORMAT_VERSION: u8 = 1;

/// The shard file of `signal` in a day directory.
pub fn shard_file(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "services.bin",
        Signal::Metrics => "series.bin",
        Signal::Logs => "streams.bin",
    }
}

fn signal_code(signal: Signal) -> u8 {
    match signal {
        Signal::Traces => 1,
        Signal::Metrics => 2,
        Signal::Logs => 3,
    }
}

/// The index shard of one day, in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DayShard {
    signal: Signal,
    chunks: u32,
    streams: BTreeMap<StreamKey, BTreeMap<u32, StreamStats>>,
}

impl DayShard {
    /// The shard of a day without chunks.
    pub(crate) fn new(signal: Signal) -> Self {
        DayShard { signal, chunks: 0, streams: BTreeMap::new() }
    }

    /// The chunks it covers.
    pub(crate) fn chunks(&self) -> u32 {
        self.chunks
    }

    /// Lists the streams of the chunk at `position` (which it then covers, with every chunk before it).
    pub(crate) fn insert_chunk(&mut self, position: u32, streams: &ChunkStreams) {
        for (key, stats) in streams.iter() {
            self.streams.entry(key.clone()).or_default().insert(position, *stats);
        }
        self.chunks = self.chunks.max(position.saturating_add(1));
    }

    /// Keeps the postings of the chunks at the positions `kept` (positions never change; the positions
    /// it covers stay the same).
    pub(crate) fn retain_chunks(&mut self, kept: &BTreeSet<u32>) {
        for postings in self.streams.values_mut() {
            postings.retain(|position, _| kept.contains(position));
        }
        self.streams.retain(|_, postings| !postings.is_empty());
    }

    /// Adds the postings of `other` (the shard of a later run): the shard of both runs as one.
    pub(crate) fn merge(&mut self, other: DayShard) {
        for (key, postings) in other.streams {
            self.streams.entry(key).or_default().extend(postings);
        }
        self.chunks = self.chunks.max(other.chunks);
    }

    /// Makes it cover every position before `end` (a run's last chunks may have been deleted).
    pub(crate) fn cover(&mut self, end: u32) {
        self.chunks = self.chunks.max(end);
    }

    /// The shard file's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.streams.len() * 48);
        out.extend_from_slice(MAGIC);
        out.push(SHARD_FORMAT_VERSION);
        out.push(signal_code(self.signal));
        put_varint(&mut out, u64::from(self.chunks));
        put_varint(&mut out, self.streams.len() as u64);
        let mut block = Vec::new();
        for (key, postings) in &self.streams {
            put_string(&mut out, &key.name);
            put_varint(&mut out, key.labels.len() as u64);
            for (name, value) in &key.labels {
                put_string(&mut out, name);
                put_string(&mut out, value);
            }
            block.clear();
            put_varint(&mut block, postings.len() as u64);
            let (mut next_position, mut previous_min) = (0u64, 0u64);
            for (position, stats) in postings {
                let position = u64::from(*position);
                put_varint(&mut block, position - next_position);
                put_varint(&mut block, zigzag(stats.min_time.wrapping_sub(previous_min) as i64));
                put_varint(&mut block, stats.max_time.saturating_sub(stats.min_time));
                put_varint(&mut block, stats.items);
                next_position = position + 1;
                previous_min = stats.min_time;
            }
            put_varint(&mut out, block.len() as u64);
            out.extend_from_slice(&block);
        }
        out
    }

    /// Reads a shard file of `signal`; the message says what is wrong with a damaged one.
    pub(crate) fn decode(signal: Signal, bytes: &[u8]) -> Result<DayShard, String> {
        let mut streams = BTreeMap::new();
        let chunks = parse(signal, bytes, &|_| true, &mut |key, postings| {
            streams.insert(key, postings.iter().copied().collect());
        })?;
        Ok(DayShard { signal, chunks, streams })
    }
}

/// The chunks a shard file covers, and the positions of those that may hold an item `filter` wants in
/// `range`: one pass over the bytes that keeps only the postings of the streams `filter` admits.
pub(crate) fn matching_chunks(
    signal: Signal,
    bytes: &[u8],
    filter: &ScanFilter<'_>,
    range: (u64, u64),
) -> Result<(u32, BTreeSet<u32>), String> {
    let mut positions = BTreeSet::new();
    let chunks = parse(signal, bytes, &|key| filter.admits(signal, key), &mut |_, postings| {
        positions.extend(postings.iter().filter(|(_, stats)| stats.overlaps(range)).map(|(position, _)| *position));
    })?;
    Ok((chunks, positions))
}

/// Postings of one stream: chunk position and the stream's items in it.
type Postings = [(u32, StreamStats)];

/// Reads a shard file of `signal` and hands each stream that `wanted` admits to `each` with its
/// postings; the chunks the shard covers. Every invariant of the format is checked, except inside the
/// postings of streams `wanted` refuses, which are skipped unread.
fn parse(
    signal: Signal,
    bytes: &[u8],
    wanted: &dyn Fn(&StreamKey) -> bool,
    each: &mut dyn FnMut(StreamKey, &Postings),
) -> Result<u32, String> {
    let mut reader = Reader { rest: bytes, at: 0 };
    if reader.take(MAGIC.len())? != MAGIC {
        return Err("not an index shard (bad magic)".into());
    }
    let version = reader.byte()?;
    if version != SHARD_FORMAT_VERSION {
        return Err(format!("shard format version {version}; this build reads {SHARD_FORMAT_VERSION}"));
    }
    let code = reader.byte()?;
    if code != signal_code(signal) {
        return Err(format!("a shard of signal code {code}, not of {signal}"));
    }
    let chunks = reader.position()?;
    let stream_count = reader.varint()?;
    let mut previous: Option<StreamKey> = None;
    let mut postings = Vec::new();
    for _ in 0..stream_count {
        let key = reader.stream_key()?;
        if previous.as_ref().is_some_and(|previous| *previous >= key) {
            return reader.fail("streams out of order or repeated");
        }
        let length = reader.varint()?;
        let length = usize::try_from(length).or_else(|_| reader.fail("a postings block longer than memory"))?;
        let block_at = reader.at;
        let block = reader.take(length)?;
        if wanted(&key) {
            let mut block_reader = Reader { rest: block, at: block_at };
            postings.clear();
            block_reader.postings(chunks, &mut postings)?;
            if !block_reader.rest.is_empty() {
                return block_reader.fail("bytes after the postings");
            }
            each(key.clone(), &postings);
        }
        previous = Some(key);
    }
    if !reader.rest.is_empty() {
        return reader.fail("bytes after the last stream");
    }
    Ok(chunks)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// A cursor over a shard file; every error names the byte offset.
struct Reader<'a> {
    rest: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.at))
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], String> {
        let Some((taken, rest)) = self.rest.split_at_checked(length) else {
            return self.fail(&format!("{length} bytes past the end"));
        };
        self.rest = rest;
        self.at += length;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return self.fail("a varint past 64 bits");
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.fail("a varint past 64 bits")
    }

    fn position(&mut self) -> Result<u32, String> {
        let value = self.varint()?;
        u32::try_from(value).or_else(|_| self.fail(&format!("chunk position {value} past 2^32")))
    }

    fn string(&mut self) -> Result<String, String> {
        let length = self.varint()?;
        let length = usize::try_from(length).or_else(|_| self.fail("a string longer than memory"))?;
        let at = self.at;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("a string that is not UTF-8 at byte {at}"))
    }

    fn stream_key(&mut self) -> Result<StreamKey, String> {
        let name = self.string()?;
        let label_count = self.varint()?;
        let mut labels: Vec<(String, String)> = Vec::new();
        for _ in 0..label_count {
            let label = (self.string()?, self.string()?);
            if labels.last().is_some_and(|(previous, _)| *previous >= label.0) {
                return self.fail("labels out of order or repeated");
            }
            labels.push(label);
        }
        Ok(StreamKey { name, labels })
    }

    /// Reads a stream's postings into `into`.
    fn postings(&mut self, chunks: u32, into: &mut Vec<(u32, StreamStats)>) -> Result<(), String> {
        let count = self.varint()?;
        if count == 0 {
            return self.fail("a stream without chunks");
        }
        let (mut next_position, mut previous_min) = (0u64, 0u64);
        for _ in 0..count {
            let position = next_position.saturating_add(self.varint()?);
            if position >= u64::from(chunks) {
                return self.fail(&format!("chunk position {position} past the {chunks} chunks it covers"));
            }
            let min_time = previous_min.wrapping_add(unzigzag(self.varint()?) as u64);
            let Some(max_time) = min_time.checked_add(self.varint()?) else {
                return self.fail("a time range past 2^64 nanoseconds");
            };
            let items = self.varint()?;
            into.push((position as u32, StreamStats { min_time, max_time, items }));
            next_position = position + 1;
            previous_min = min_time;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard() -> DayShard {
        shard_of(&[0, 1, 2, 3])
    }

    /// The fixture's shard with the chunks at `positions` only.
    fn shard_of(positions: &[u32]) -> DayShard {
        let mut shard = DayShard::new(Signal::Logs);
        for (position, service, min, max) in [
            (0u32, "checkout", 50u64, 90u64),
            (0, "search", 40, 41),
            (2, "checkout", 10, u64::MAX),
            (3, "search", 7, 7),
        ] {
            if !positions.contains(&position) {
                continue;
            }
            let mut streams = ChunkStreams::default();
            let request =
                stella_otlp::OtlpRequest::Logs(stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest {
                    resource_logs: vec![stella_otlp::proto::logs::v1::ResourceLogs {
                        resource: Some(stella_otlp::proto::resource::v1::Resource {
                            attributes: vec![stella_otlp::attributes::string("service.name", service)],
                            ..Default::default()
                        }),
                        scope_logs: vec![stella_otlp::proto::logs::v1::ScopeLogs {
                            log_records: [min, max]
                                .into_iter()
                                .map(|at| stella_otlp::proto::logs::v1::LogRecord {
                                    time_unix_nano: at,
                                    severity_number: 9,
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                });
            streams.add_request(&request);
            shard.insert_chunk(position, &streams);
        }
        shard
    }

    #[test]
    fn a_shard_round_trips_through_its_bytes() {
        let shard = shard();
        let bytes = shard.encode();
        assert_eq!(&bytes[..8], b"STLSHARD");
        assert_eq!(DayShard::decode(Signal::Logs, &bytes), Ok(shard.clone()));
        assert_eq!(shard.chunks(), 4);
        let search = matching_chunks(Signal::Logs, &bytes, &ScanFilter::from(Some("search")), (0, u64::MAX));
        assert_eq!(search, Ok((4, BTreeSet::from([0, 3]))));
        let checkout = matching_chunks(Signal::Logs, &bytes, &ScanFilter::from(Some("checkout")), (0, 20));
        assert_eq!(checkout, Ok((4, BTreeSet::from([2]))));
    }

    #[test]
    fn retaining_chunks_keeps_their_positions_as_a_rebuild_from_them_would() {
        let mut retained = shard();
        retained.retain_chunks(&BTreeSet::from([2, 3]));
        let mut rebuilt = shard_of(&[2, 3]);
        rebuilt.cover(4);
        assert_eq!(retained, rebuilt);
        assert_eq!(retained.encode(), rebuilt.encode());
        assert_eq!(retained.chunks(), 4);
    }

    #[test]
    fn merged_run_shards_equal_the_shard_of_all_their_chunks() {
        let mut first = shard_of(&[0, 1]);
        first.cover(2);
        first.merge(shard_of(&[2, 3]));
        assert_eq!(first.encode(), shard().encode());
    }

    #[test]
    fn every_damaged_shard_is_an_error_never_a_panic() {
        let bytes = shard().encode();
        for length in 0..bytes.len() {
            assert!(DayShard::decode(Signal::Logs, &bytes[..length]).is_err(), "truncated to {length}");
            let everything = ScanFilter::default();
            assert!(matching_chunks(Signal::Logs, &bytes[..length], &everything, (0, u64::MAX)).is_err());
        }
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[at] ^= 1 << bit;
                // A flip may still parse (a different time, say): the digest in the day manifest catches it.
                let decoded = DayShard::decode(Signal::Logs, &flipped);
                let matched = matching_chunks(Signal::Logs, &flipped, &ScanFilter::from(Some("search")), (0, 99));
                assert!(decoded.is_err() || matched.is_ok(), "what decodes also matches");
            }
        }
        assert!(DayShard::decode(Signal::Traces, &bytes).unwrap_err().contains("signal"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(DayShard::decode(Signal::Logs, &longer).unwrap_err().contains("after the last stream"));
        let mut huge = b"STLSHARD\x01\x03\x01".to_vec();
        huge.extend_from_slice(&[0xff; 9]);
        huge.push(0x01);
        assert!(DayShard::decode(Signal::Logs, &huge).is_err(), "a stream count of 2^64-1 ends at the data's end");
        let mut overlong = b"STLSHARD\x01\x03".to_vec();
        overlong.extend_from_slice(&[0xff; 10]);
        overlong.push(0x01);
        assert!(DayShard::decode(Signal::Logs, &overlong).unwrap_err().contains("64 bits"));
    }

    /// A figure, not an assertion: what one write spends on the shard at the end of a day of 300 chunks
    /// of 400 series each (20 services x 10 metrics x 2 label values): verify, decode, add, encode, hash.
    /// `cargo test -p stella-store --release --lib shard_update_cost -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement; run it by hand"]
    fn shard_update_cost_at_the_end_of_a_series_heavy_day() {
        use sha2::{Digest, Sha256};
        use stella_otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
        use stella_otlp::proto::metrics::v1::{Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric};
        let chunk = |position: u64| {
            let mut streams = ChunkStreams::default();
            for service in 0..20 {
                let metrics = (0..20)
                    .map(|n| Metric {
                        name: format!("service-{service}.metric-{}", n % 10),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                attributes: vec![stella_otlp::attributes::string("queue", ["a", "b"][n % 2])],
                                time_unix_nano: 1_795_910_400_000_000_000 + position * 64_000_000_000 + n as u64,
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    })
                    .collect();
                streams.add_request(&stella_otlp::OtlpRequest::Metrics(ExportMetricsServiceRequest {
                    resource_metrics: vec![ResourceMetrics {
                        resource: Some(stella_otlp::proto::resource::v1::Resource {
                            attributes: vec![stella_otlp::attributes::string("service.name", &format!("s{service}"))],
                            ..Default::default()
                        }),
                        scope_metrics: vec![ScopeMetrics { metrics, ..Default::default() }],
                        ..Default::default()
                    }],
                }));
            }
            streams
        };
        let mut shard = DayShard::new(Signal::Metrics);
        for position in 0..299u32 {
            shard.insert_chunk(position, &chunk(u64::from(position)));
        }
        let bytes = shard.encode();
        let last = chunk(299);
        let started = std::time::Instant::now();
        let rounds = 20;
        for _ in 0..rounds {
            let _ = Sha256::digest(&bytes);
            let mut decoded = DayShard::decode(Signal::Metrics, &bytes).unwrap();
            decoded.insert_chunk(299, &last);
            let _ = Sha256::digest(decoded.encode());
        }
        let update = started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            let _ = Sha256::digest(&bytes);
            let _ = matching_chunks(Signal::Metrics, &bytes, &ScanFilter::from(Some("s7")), (0, u64::MAX)).unwrap();
        }
        let lookup = started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
        println!("shard of {} B: update {update:.2} ms per write, lookup {lookup:.2} ms per scan", bytes.len());
    }

    #[test]
    fn varints_and_zigzag_round_trip_at_the_edges() {
        for value in [0u64, 1, 127, 128, 1 << 35, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(Reader { rest: &out, at: 0 }.varint(), Ok(value));
        }
        for value in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(value)), value);
        }
    }
}
