//! A day's indexes, both rebuilt from its chunks alone: the trace index (`index.bin`, traces only) and
//! the index shard of the signal (see the shard module).
//!
//! ```text
//! index.bin   (trace id 16 B, chunk position u32 BE, record position u32 BE)*, sorted, distinct
//! ```
use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::Path;

use stella_otlp::{OtlpRequest, Signal};

use super::shard::DayShard;
use super::store::{StoreError, io};
use super::streams::ChunkStreams;

/// One entry of a day's trace index: trace id, the chunk's position in the day manifest, the record's
/// position in the chunk.
const INDEX_ENTRY: usize = 24;

fn entry(id: &[u8; 16], position: u32, record: u32) -> [u8; INDEX_ENTRY] {
    let mut entry = [0u8; INDEX_ENTRY];
    entry[..16].copy_from_slice(id);
    entry[16..20].copy_from_slice(&position.to_be_bytes());
    entry[20..].copy_from_slice(&record.to_be_bytes());
    entry
}

fn entries(index: &[u8]) -> impl Iterator<Item = [u8; INDEX_ENTRY]> + '_ {
    index.chunks_exact(INDEX_ENTRY).filter_map(|entry| entry.try_into().ok())
}

fn sorted(mut entries: Vec<[u8; INDEX_ENTRY]>) -> Vec<u8> {
    entries.sort_unstable();
    entries.dedup();
    entries.concat()
}

/// The trace index of one chunk at `position`: `(id, record)` for each of `ids`, sorted and distinct.
pub(crate) fn chunk_index(ids: &[([u8; 16], u32)], position: u32) -> Vec<u8> {
    sorted(ids.iter().map(|(id, record)| entry(id, position, *record)).collect())
}

/// The trace indexes of several runs as one (sorted and distinct).
pub(crate) fn merge_indexes(parts: &[Vec<u8>]) -> Vec<u8> {
    sorted(parts.iter().flat_map(|part| entries(part)).collect())
}

/// The entries of the chunks at the positions `kept` (positions never change).
pub(crate) fn retain_index(index: &[u8], kept: &BTreeSet<u32>) -> Vec<u8> {
    let mut out = Vec::with_capacity(index.len());
    for kept_entry in entries(index) {
        let position = u32::from_be_bytes([kept_entry[16], kept_entry[17], kept_entry[18], kept_entry[19]]);
        if kept.contains(&position) {
            out.extend_from_slice(&kept_entry);
        }
    }
    out
}

/// (chunk position, record position) listed for `trace_id` in an index file (binary search with
/// positioned reads); `None` when the file is missing.
pub(crate) fn lookup(path: &Path, trace_id: &[u8; 16]) -> Result<Option<Vec<(u32, u32)>>, StoreError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::Io { action: "open", path: path.to_path_buf(), source }),
    };
    let length = file.metadata().map_err(io("read", path))?.len();
    let count = length / INDEX_ENTRY as u64;
    let read = |at: u64| -> Result<[u8; INDEX_ENTRY], StoreError> {
        let mut entry = [0u8; INDEX_ENTRY];
        file.read_exact_at(&mut entry, at * INDEX_ENTRY as u64).map_err(io("read", path))?;
        Ok(entry)
    };
    // The first entry whose id is not below `trace_id`.
    let (mut low, mut high) = (0u64, count);
    while low < high {
        let middle = low + (high - low) / 2;
        if read(middle)?[..16] < trace_id[..] {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    let mut positions = Vec::new();
    while low < count {
        let entry = read(low)?;
        if entry[..16] != trace_id[..] {
            break;
        }
        let word = |at: usize| u32::from_be_bytes([entry[at], entry[at + 1], entry[at + 2], entry[at + 3]]);
        positions.push((word(16), word(20)));
        low += 1;
    }
    Ok(Some(positions))
}

/// A run's indexes, rebuilt from its chunks.
#[derive(Debug)]
pub(crate) struct DayIndexes {
    /// `index.bin` (empty but for traces).
    pub(crate) index: Vec<u8>,
    /// The index shard.
    pub(crate) shard: DayShard,
}

/// Builds a run's indexes from its chunks' records, decoding each record once for both.
#[derive(Debug)]
pub(crate) struct IndexBuilder {
    signal: Signal,
    entries: Vec<[u8; INDEX_ENTRY]>,
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
        for (record_position, record) in records.iter().enumerate() {
            let Ok(request) = OtlpRequest::decode_protobuf(self.signal, record) else { continue };
            if let OtlpRequest::Traces(traces) = &request {
                let record_position = u32::try_from(record_position).unwrap_or(u32::MAX);
                let spans = traces.resource_spans.iter().flat_map(|group| &group.scope_spans);
                for span in spans.flat_map(|scope| &scope.spans) {
                    if let Ok(id) = <[u8; 16]>::try_from(span.trace_id.as_slice()) {
                        self.entries.push(entry(&id, position, record_position));
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
        DayIndexes { index: sorted(self.entries), shard: self.shard }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retaining_index_entries_keeps_their_positions() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let index = sorted(vec![entry(&a, 0, 0), entry(&a, 2, 1), entry(&b, 1, 0), entry(&b, 3, 4)]);
        assert_eq!(retain_index(&index, &BTreeSet::from([2, 3])), sorted(vec![entry(&a, 2, 1), entry(&b, 3, 4)]));
        assert!(retain_index(&index, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn merged_run_indexes_equal_one_index_of_all_their_chunks() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let first = chunk_index(&[(b, 0), (a, 1), (b, 0)], 0);
        let second = chunk_index(&[(a, 0)], 1);
        assert_eq!(first.len(), 2 * INDEX_ENTRY, "one entry per trace and record");
        assert_eq!(merge_indexes(&[first, second]), sorted(vec![entry(&a, 0, 1), entry(&a, 1, 0), entry(&b, 0, 0)]));
    }
}
