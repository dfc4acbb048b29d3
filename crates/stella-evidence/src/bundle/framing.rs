//! The payload files' framing: each record is a 4-byte big-endian length, then that many bytes.
use std::io::{self, Read};

/// Records larger than this (64 MiB) are refused by the writer and, by default, by the verifier.
pub const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;

/// Bytes of the length prefix.
const PREFIX_BYTES: usize = 4;

/// What is wrong with a payload file's framing (its digest matched, so the signer wrote it so).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// A record declares more bytes than the limit.
    #[error("record {record} declares {len} bytes, more than the {limit} accepted")]
    RecordTooLarge {
        /// Its index in the file.
        record: u64,
        /// Its declared length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The file ends inside a length prefix or a record.
    #[error("the file ends inside record {record}")]
    Truncated {
        /// The index of the incomplete record.
        record: u64,
    },
    /// The file holds another number of records than the manifest declares.
    #[error("holds {found} records, the signed manifest says {declared}")]
    CountMismatch {
        /// Records the manifest declares.
        declared: u64,
        /// Records found.
        found: u64,
    },
}

/// The length prefix of a record of `len` bytes.
pub(crate) fn prefix(len: u32) -> [u8; PREFIX_BYTES] {
    len.to_be_bytes()
}

/// Walks the framing of a file fed in arbitrary pieces, counting records. The first problem sticks and is
/// reported by [`finish`](Self::finish), so the caller can check the file's digest first.
pub(crate) struct FrameCounter {
    max_record_bytes: u64,
    prefix: [u8; PREFIX_BYTES],
    prefix_filled: usize,
    body_remaining: u64,
    records: u64,
    problem: Option<FramingError>,
}

impl FrameCounter {
    pub(crate) fn new(max_record_bytes: u64) -> Self {
        FrameCounter {
            max_record_bytes,
            prefix: [0; PREFIX_BYTES],
            prefix_filled: 0,
            body_remaining: 0,
            records: 0,
            problem: None,
        }
    }

    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.problem.is_none() {
            if self.body_remaining > 0 {
                let skipped = usize::try_from(self.body_remaining).unwrap_or(usize::MAX).min(bytes.len());
                self.body_remaining -= skipped as u64;
                bytes = &bytes[skipped..];
                continue;
            }
            let taken = (PREFIX_BYTES - self.prefix_filled).min(bytes.len());
            self.prefix[self.prefix_filled..self.prefix_filled + taken].copy_from_slice(&bytes[..taken]);
            self.prefix_filled += taken;
            bytes = &bytes[taken..];
            if self.prefix_filled == PREFIX_BYTES {
                let len = u64::from(u32::from_be_bytes(self.prefix));
                if len > self.max_record_bytes {
                    self.problem =
                        Some(FramingError::RecordTooLarge { record: self.records, len, limit: self.max_record_bytes });
                }
                self.prefix_filled = 0;
                self.body_remaining = len;
                self.records += 1;
            }
        }
    }

    /// The number of records, if the framing was sound and ended on a record boundary.
    pub(crate) fn finish(self) -> Result<u64, FramingError> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        if self.prefix_filled > 0 {
            return Err(FramingError::Truncated { record: self.records });
        }
        if self.body_remaining > 0 {
            return Err(FramingError::Truncated { record: self.records - 1 });
        }
        Ok(self.records)
    }
}

/// Reads the next record of a file whose framing was already verified.
pub(crate) fn read_record(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut prefix = [0u8; PREFIX_BYTES];
    reader.read_exact(&mut prefix)?;
    let mut record = vec![0u8; u32::from_be_bytes(prefix) as usize];
    reader.read_exact(&mut record)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(records: &[&[u8]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for record in records {
            bytes.extend_from_slice(&prefix(record.len() as u32));
            bytes.extend_from_slice(record);
        }
        bytes
    }

    #[test]
    fn records_are_counted_whatever_the_piece_sizes() {
        let bytes = framed(&[b"one", b"", b"three33"]);
        for piece in 1..bytes.len() {
            let mut counter = FrameCounter::new(MAX_RECORD_BYTES);
            bytes.chunks(piece).for_each(|chunk| counter.feed(chunk));
            assert_eq!(counter.finish(), Ok(3), "pieces of {piece}");
        }
        let mut reader = bytes.as_slice();
        assert_eq!(read_record(&mut reader).unwrap(), b"one");
        assert_eq!(read_record(&mut reader).unwrap(), b"");
        assert_eq!(read_record(&mut reader).unwrap(), b"three33");
    }

    #[test]
    fn truncated_and_oversized_framing_is_reported() {
        let bytes = framed(&[b"one", b"two"]);
        for cut in [bytes.len() - 1, bytes.len() - 4, 2] {
            let mut counter = FrameCounter::new(MAX_RECORD_BYTES);
            counter.feed(&bytes[..cut]);
            assert!(matches!(counter.finish(), Err(FramingError::Truncated { .. })), "cut at {cut}");
        }
        let mut counter = FrameCounter::new(2);
        counter.feed(&bytes);
        assert_eq!(counter.finish(), Err(FramingError::RecordTooLarge { record: 0, len: 3, limit: 2 }));
    }
}
