//! A day's indexes, both rebuilt from its chunks alone: the trace index (traces only) and the index shard
//! of the signal (see the shard module).
//!
//! ```text
//! run format 3  run-….traces.bin  (fingerprint u32 BE, chunk position - run's first u16 BE)*, sorted, distinct
//! formats 1, 2  index.bin, run-….index.bin
//!                                 (trace id 16 B, chunk position u32 BE, record position u32 BE)*, sorted
//! ```
//! A trace index only names the chunks that may hold a trace: the reader reads those chunks and keeps
//! the records that hold the trace. A fingerprint is 32 bits of the 16-byte id's XXH3-128, so the
//! index costs 6 bytes per (trace, chunk) where format 2 cost 24 per (trace, record); a fingerprint two
//! traces share costs a chunk read, never a wrong answer. A run covers at most [`MAX_RUN_POSITIONS`]
//! positions, so a position fits 16 bits relative to the run's first.
use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::Path;

use stella_otlp::{OtlpRequest, Signal};
use twox_hash::XxHash3_128;

use super::shard::DayShard;
use super::store::{StoreError, io};
use super::streams::ChunkStreams;

/// The most positions one run covers (a position is stored as 16 bits relative to its run's first).
pub(crate) const MAX_RUN_POSITIONS: u32 = 1 << 16;

/// The layout of a run's trace index file, given by its run manifest's format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexFormat {
    /// Formats 1 and 2: (trace id, chunk position, record position), 24 bytes.
    Wide,
    /// Format 3: (fingerprint, relative chunk position), 6 bytes.
    Compact,
}

impl IndexFormat {
    fn entry_size(self) -> usize {
        match self {
            IndexFormat::Wide => 24,
            IndexFormat::Compact => 6,
        }
    }
}

/// The first 32 bits of the id's XXH3-128 (a fixed, specified hash): what a trace index keeps of a
/// trace id. Part of the on-disk format: never change it.
pub(crate) fn fingerprint(id: &[u8; 16]) -> u32 {
    (XxHash3_128::oneshot(id) >> 96) as u32
}

/// A run's trace index in memory: (fingerprint, chunk position) pairs, sorted and distinct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TraceIndex(Vec<(u32, u32)>);

impl TraceIndex {
    /// The index of one chunk at `position` holding spans of `ids`.
    pub(crate) fn of_chunk<'a>(ids: impl IntoIterator<Item = &'a [u8; 16]>, position: u32) -> TraceIndex {
        TraceIndex::from_pairs(ids.into_iter().map(|id| (fingerprint(id), position)).collect())
    }

    fn from_pairs(mut pairs: Vec<(u32, u32)>) -> TraceIndex {
        pairs.sort_unstable();
        pairs.dedup();
        TraceIndex(pairs)
    }

    /// Reads an index file of `format` for the run covering `count` positions from `first`; a length
    /// that is not whole entries is refused, and an entry naming a position outside the run is dropped.
    pub(crate) fn decode(bytes: &[u8], format: IndexFormat, first: u32, count: u32) -> Result<TraceIndex, String> {
        let size = format.entry_size();
        if !bytes.len().is_multiple_of(size) {
            return Err(format!("{} bytes are not whole entries of {size} bytes", bytes.len()));
        }
        let end = first.saturating_add(count);
        let pairs = bytes
            .chunks_exact(size)
            .filter_map(|entry| decode_entry(entry, format, first))
            .filter(|(_, position)| (first..end).contains(position))
            .collect();
        Ok(TraceIndex::from_pairs(pairs))
    }

    /// The compact file bytes for a run starting at `first`; `None` when a position does not fit 16 bits
    /// after it (a run of more than [`MAX_RUN_POSITIONS`], which only a format 1 day can be).
    pub(crate) fn encode(&self, first: u32) -> Option<Vec<u8>> {
        let mut bytes = Vec::with_capacity(self.0.len() * IndexFormat::Compact.entry_size());
        for (fingerprint, position) in &self.0 {
            let relative = u16::try_from(position.checked_sub(first)?).ok()?;
            bytes.extend_from_slice(&fingerprint.to_be_bytes());
            bytes.extend_from_slice(&relative.to_be_bytes());
        }
        Some(bytes)
    }

    /// The indexes of several runs as one.
    pub(crate) fn merge(parts: Vec<TraceIndex>) -> TraceIndex {
        TraceIndex::from_pairs(parts.into_iter().flat_map(|part| part.0).collect())
    }

    /// Keeps the entries of the chunks at the positions `kept` (positions never change).
    pub(crate) fn retain(&mut self, kept: &BTreeSet<u32>) {
        self.0.retain(|(_, position)| kept.contains(position));
    }
}

fn decode_entry(entry: &[u8], format: IndexFormat, first: u32) -> Option<(u32, u32)> {
    let word = |at: usize| entry.get(at..at + 4).and_then(|bytes| bytes.try_into().ok()).map(u32::from_be_bytes);
    match format {
        IndexFormat::Wide => Some((fingerprint(entry.get(..16)?.try_into().ok()?), word(16)?)),
        IndexFormat::Compact => {
            let relative = u16::from_be_bytes(entry.get(4..6)?.try_into().ok()?);
            Some((word(0)?, first.checked_add(u32::from(relative))?))
        }
    }
}

/// The chunk positions an index file of `format` names for `trace_id` (sorted, distinct; binary search
/// with positioned reads), for the run starting at `first`; `None` when the file is missing.
pub(crate) fn lookup(
    path: &Path,
    format: IndexFormat,
    first: u32,
    trace_id: &[u8; 16],
) -> Result<Option<Vec<u32>>, StoreError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::Io { action: "open", path: path.to_path_buf(), source }),
    };
    let size = format.entry_size();
    let length = file.metadata().map_err(io("read", path))?.len();
    let count = length / size as u64;
    let key: Vec<u8> = match format {
        IndexFormat::Wide => trace_id.to_vec(),
        IndexFormat::Compact => fingerprint(trace_id).to_be_bytes().to_vec(),
    };
    let mut entry = vec![0u8; size];
    let mut read = |at: u64| -> Result<Vec<u8>, StoreError> {
        file.read_exact_at(&mut entry, at * size as u64).map_err(io("read", path))?;
        Ok(entry.clone())
    };
    // The first entry whose key is not below the wanted one.
    let (mut low, mut high) = (0u64, count);
    while low < high {
        let middle = low + (high - low) / 2;
        if read(middle)?[..key.len()] < key[..] {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    let mut positions = BTreeSet::new();
    while low < count {
        let entry = read(low)?;
        if entry[..key.len()] != key[..] {
            break;
        }
        positions.extend(decode_entry(&entry, format, first).map(|(_, position)| position));
        low += 1;
    }
    Ok(Some(positions.into_iter().collect()))
}

/// A run's indexes, rebuilt from its chunks.
#[derive(Debug)]
pub(crate) struct DayIndexes {
    /// The trace index (empty but for traces).
    pub(crate) index: TraceIndex,
    /// The index shard.
    pub(crate) shard: DayShard,
}

/// Builds a run's indexes from its chunks' records, decoding each record once for both.
#[derive(Debug)]
pub(crate) struct IndexBuilder {
    signal: Signal,
    entries: Vec<(u32, u32)>,
    shard: DayShard,
}

impl IndexBuilder {
    /// An empty run of `signal`.
    pub(crate) fn new(signal: Signal) -> Self {
        IndexBuilder { signal, entries: Vec::new(), shard: DayShard::new(signal) }
    }

    /// Indexes the records of the chunk at `position` (a record that does not decode is left out, as the
    /// sealer never seals one).
    pub(crate) fn add_chunk(&mut self, position: u32, records: &[Vec<u8>]) {
        let mut streams = ChunkStreams::default();
        for record in records {
            let Ok(request) = OtlpRequest::decode_protobuf(self.signal, record) else { continue };
            if let OtlpRequest::Traces(traces) = &request {
                let spans = traces.resource_spans.iter().flat_map(|group| &group.scope_spans);
                for span in spans.flat_map(|scope| &scope.spans) {
                    if let Ok(id) = <&[u8; 16]>::try_from(span.trace_id.as_slice()) {
                        self.entries.push((fingerprint(id), position));
                    }
                }
            }
            streams.add_request(&request);
        }
        self.shard.insert_chunk(position, &streams);
    }

    /// The indexes of the chunks added, for a run ending before position `end`.
    pub(crate) fn finish(mut self, end: u32) -> DayIndexes {
        self.shard.cover(end);
        DayIndexes { index: TraceIndex::from_pairs(self.entries), shard: self.shard }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide(id: &[u8; 16], position: u32, record: u32) -> Vec<u8> {
        [&id[..], &position.to_be_bytes(), &record.to_be_bytes()].concat()
    }

    #[test]
    fn fingerprints_tell_apart_ids_of_repeated_bytes_and_are_fixed() {
        let prints: BTreeSet<u32> = (0..=255u8).map(|byte| fingerprint(&[byte; 16])).collect();
        assert_eq!(prints.len(), 256);
        // The on-disk format: these values never change.
        let id = *b"\x4b\xf9\x2f\x35\x77\xb3\x4d\xa6\xa3\xce\x92\x9d\x0e\x0e\x47\x36";
        assert_eq!((fingerprint(&[0; 16]), fingerprint(&id)), (0xe518_9a95, 0x5ccf_4e8c));
    }

    #[test]
    fn a_compact_index_round_trips_relative_to_its_run_and_refuses_what_does_not_fit() {
        let index = TraceIndex::of_chunk([&[1u8; 16], &[2; 16], &[1; 16]], 70_000);
        assert_eq!(index.0.len(), 2, "one entry per trace and chunk");
        let bytes = index.encode(70_000).unwrap();
        assert_eq!(bytes.len(), 12);
        assert_eq!(TraceIndex::decode(&bytes, IndexFormat::Compact, 70_000, 1).unwrap(), index);
        let shifted = index.encode(69_999).unwrap();
        let outside = TraceIndex::decode(&shifted, IndexFormat::Compact, 69_999, 1).unwrap();
        assert_eq!(outside, TraceIndex::default(), "entries past the run's positions are dropped");
        assert!(TraceIndex::decode(&bytes[..11], IndexFormat::Compact, 70_000, 1).is_err(), "a torn entry");
        assert_eq!(index.encode(70_001), None, "a position before the run");
        assert_eq!(index.encode(70_000 - MAX_RUN_POSITIONS), None, "a position past 16 bits");
    }

    #[test]
    fn a_wide_index_reads_as_the_compact_index_of_the_same_chunks() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let bytes = [wide(&a, 4, 0), wide(&a, 4, 3), wide(&b, 5, 1), wide(&b, 9, 0)].concat();
        let expected = TraceIndex::merge(vec![TraceIndex::of_chunk([&a], 4), TraceIndex::of_chunk([&b], 5)]);
        assert_eq!(
            TraceIndex::decode(&bytes, IndexFormat::Wide, 4, 2).unwrap(),
            expected,
            "position 9 is not the run's"
        );
    }

    #[test]
    fn merging_and_retaining_keep_positions() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let merged = TraceIndex::merge(vec![TraceIndex::of_chunk([&a, &b], 0), TraceIndex::of_chunk([&a], 3)]);
        assert_eq!(
            merged,
            TraceIndex::from_pairs(vec![(fingerprint(&a), 0), (fingerprint(&b), 0), (fingerprint(&a), 3)])
        );
        let mut kept = merged.clone();
        kept.retain(&BTreeSet::from([3]));
        assert_eq!(kept, TraceIndex::of_chunk([&a], 3));
    }

    #[test]
    fn lookups_find_every_chunk_of_a_trace_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<[u8; 16]> = (0..200u8).map(|n| [n; 16]).collect();
        let index = TraceIndex::merge(
            (0..10u32)
                .map(|chunk| TraceIndex::of_chunk(ids.iter().skip(chunk as usize * 7).take(40), 100 + chunk))
                .collect(),
        );
        let compact = dir.path().join("compact");
        std::fs::write(&compact, index.encode(100).unwrap()).unwrap();
        let mut wide_entries: Vec<Vec<u8>> = (0..10u32)
            .flat_map(|chunk| ids.iter().skip(chunk as usize * 7).take(40).map(move |id| wide(id, 100 + chunk, 0)))
            .collect();
        wide_entries.sort();
        let wide_path = dir.path().join("wide");
        std::fs::write(&wide_path, wide_entries.concat()).unwrap();
        for (n, id) in ids.iter().enumerate() {
            let expected: Vec<u32> = (0..10u32)
                .filter(|chunk| (chunk * 7..chunk * 7 + 40).contains(&(n as u32)))
                .map(|chunk| 100 + chunk)
                .collect();
            assert_eq!(lookup(&compact, IndexFormat::Compact, 100, id).unwrap(), Some(expected.clone()), "trace {n}");
            assert_eq!(lookup(&wide_path, IndexFormat::Wide, 100, id).unwrap(), Some(expected), "trace {n}");
        }
        assert_eq!(lookup(&dir.path().join("missing"), IndexFormat::Compact, 0, &ids[0]).unwrap(), None);
    }
}
