//! [`SegmentLog`]: the synchronous core of one log directory (the writer side).
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::io;
use super::fs::LogFile;
use super::record::{self, Decoded};
use super::{LogError, LogFs};

const SUFFIX: &str = ".seg";

/// A segment file and what the writer knows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Sequence number of its first record.
    pub first_seq: u64,
    /// Its path.
    pub path: PathBuf,
    /// Bytes written to it (all whole records).
    pub len: u64,
}

/// What opening a log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Bytes of a torn last record that were cut off (0 when the log was clean).
    pub truncated_bytes: u64,
    /// The sequence number the next record gets.
    pub next_seq: u64,
    /// Segments found.
    pub segments: usize,
}

/// One log directory, from the writer's side.
pub struct SegmentLog<F: LogFs> {
    fs: Arc<F>,
    dir: PathBuf,
    segment_bytes: u64,
    segments: Vec<SegmentInfo>,
    active: Option<F::File>,
    next_seq: u64,
}

/// The path of the segment whose first record is `first_seq`.
pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SUFFIX}"))
}

impl<F: LogFs> SegmentLog<F> {
    /// Opens (or creates) the log in `dir`; a torn last record is cut off and reported.
    pub fn open(fs: Arc<F>, dir: PathBuf, segment_bytes: u64) -> Result<(Self, OpenReport), LogError> {
        fs.create_dir_all(&dir).map_err(io("create", &dir))?;
        let mut segments = Vec::new();
        for path in fs.list(&dir).map_err(io("list", &dir))? {
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            let Some(first_seq) = name.strip_suffix(SUFFIX).and_then(|digits| digits.parse::<u64>().ok()) else {
                continue;
            };
            let len = fs.len(&path).map_err(io("stat", &path))?;
            segments.push(SegmentInfo { first_seq, path, len });
        }
        segments.sort_by_key(|segment| segment.first_seq);
        let mut log = SegmentLog { fs, dir, segment_bytes: segment_bytes.max(1), segments, active: None, next_seq: 0 };
        let truncated_bytes = log.recover_last_segment()?;
        let report = OpenReport { truncated_bytes, next_seq: log.next_seq, segments: log.segments.len() };
        Ok((log, report))
    }

    /// Scans the last segment: finds the next sequence number and cuts off a torn tail.
    fn recover_last_segment(&mut self) -> Result<u64, LogError> {
        let Some(last) = self.segments.last_mut() else { return Ok(0) };
        let path = last.path.clone();
        let bytes = self.fs.read_at(&path, 0, last.len as usize).map_err(io("read", &path))?;
        let mut offset = 0usize;
        let mut expected = last.first_seq;
        while offset < bytes.len() {
            match record::decode(&bytes[offset..]) {
                Decoded::Record(record, length) if record.seq == expected => {
                    offset += length;
                    expected += 1;
                }
                Decoded::Record(record, _) => {
                    let reason = format!("sequence {} where {expected} was expected", record.seq);
                    tracing::warn!(path = %path.display(), offset, reason, "ingest log: cutting off the tail");
                    break;
                }
                Decoded::Short | Decoded::Damaged(_) => break,
            }
        }
        let truncated = bytes.len() - offset;
        if truncated > 0 {
            self.fs.truncate(&path, offset as u64).map_err(io("truncate", &path))?;
            tracing::warn!(path = %path.display(), offset, truncated_bytes = truncated, "ingest log: cut off a torn last record");
        }
        last.len = offset as u64;
        self.next_seq = expected;
        Ok(truncated as u64)
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    /// Bytes in all segments.
    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|segment| segment.len).sum()
    }

    /// The sequence number of the oldest record kept.
    pub fn first_seq(&self) -> u64 {
        self.segments.first().map_or(self.next_seq, |segment| segment.first_seq)
    }

    /// Writes `payloads` as consecutive records (one write) and returns their sequence numbers.
    /// Not durable until [`SegmentLog::sync`].
    pub fn append_batch(&mut self, payloads: &[Vec<u8>]) -> Result<Range<u64>, LogError> {
        self.roll_if_full()?;
        let first = self.next_seq;
        let mut buffer = Vec::with_capacity(payloads.iter().map(|payload| payload.len() + record::HEADER_LEN).sum());
        for (index, payload) in payloads.iter().enumerate() {
            record::encode(first + index as u64, payload, &mut buffer);
        }
        let active = self.active_file()?;
        let written = active.append(&buffer);
        let Some(segment) = self.segments.last_mut() else { return Err(LogError::Closed) };
        if let Err(source) = written {
            let path = segment.path.clone();
            // Cut any partial write so the next append starts on a record boundary.
            self.active = None;
            let _ = self.fs.truncate(&path, segment.len);
            return Err(LogError::Io { action: "append to", path, source });
        }
        segment.len += buffer.len() as u64;
        self.next_seq += payloads.len() as u64;
        Ok(first..self.next_seq)
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<(), LogError> {
        let Some(active) = self.active.as_mut() else { return Ok(()) };
        let path = self.segments.last().map(|segment| segment.path.clone()).unwrap_or_default();
        active.sync().map_err(io("sync", &path))
    }

    /// Deletes every segment whose records all come before `seq` (never the last segment).
    /// Returns the bytes freed.
    pub fn remove_before(&mut self, seq: u64) -> Result<u64, LogError> {
        let mut freed = 0;
        while self.segments.len() > 1 && self.segments[1].first_seq <= seq {
            let segment = self.segments.remove(0);
            self.fs.remove(&segment.path).map_err(io("remove", &segment.path))?;
            freed += segment.len;
        }
        Ok(freed)
    }

    fn roll_if_full(&mut self) -> Result<(), LogError> {
        let full = self.segments.last().is_none_or(|segment| segment.len >= self.segment_bytes);
        if !full {
            return Ok(());
        }
        if self.active.is_some() {
            self.sync()?;
        }
        let path = segment_path(&self.dir, self.next_seq);
        let file = self.fs.open_append(&path).map_err(io("create", &path))?;
        if self.segments.last().is_some_and(|segment| segment.first_seq == self.next_seq) {
            self.segments.pop();
        }
        self.segments.push(SegmentInfo { first_seq: self.next_seq, path, len: 0 });
        self.active = Some(file);
        Ok(())
    }

    fn active_file(&mut self) -> Result<&mut F::File, LogError> {
        if self.active.is_none() {
            let Some(segment) = self.segments.last() else { return Err(LogError::Closed) };
            let path = segment.path.clone();
            let file = self.fs.open_append(&path).map_err(io("open", &path))?;
            self.active = Some(file);
        }
        self.active.as_mut().ok_or(LogError::Closed)
    }
}

/// Reads whole records of one segment from `offset`, at most `max_bytes` of them (at least one record),
/// never past `visible_len`. Returns the records and the offset after the last.
pub(crate) fn read_segment<F: LogFs>(
    fs: &F,
    segment: &SegmentInfo,
    offset: u64,
    visible_len: u64,
    max_bytes: usize,
) -> Result<(Vec<record::Record>, u64), LogError> {
    let io = |source| LogError::Io { action: "read", path: segment.path.clone(), source };
    let available = visible_len.saturating_sub(offset) as usize;
    let mut bytes = fs.read_at(&segment.path, offset, available.min(max_bytes.max(record::HEADER_LEN))).map_err(io)?;
    let mut records = Vec::new();
    let mut position = 0usize;
    loop {
        match record::decode(&bytes[position..]) {
            Decoded::Record(record, length) => {
                records.push(record);
                position += length;
                if position >= bytes.len() {
                    break;
                }
            }
            Decoded::Short if records.is_empty() && bytes.len() < available => {
                // One record larger than max_bytes: read exactly it.
                let header = &bytes[..record::HEADER_LEN.min(bytes.len())];
                let length = header.get(..4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
                bytes = fs.read_at(&segment.path, offset, (record::HEADER_LEN + length).min(available)).map_err(io)?;
                if bytes.len() < record::HEADER_LEN + length {
                    return Err(LogError::Corrupt {
                        path: segment.path.clone(),
                        offset,
                        reason: "record runs past the segment end".into(),
                    });
                }
            }
            Decoded::Short => break,
            Decoded::Damaged(reason) => {
                return Err(LogError::Corrupt { path: segment.path.clone(), offset: offset + position as u64, reason });
            }
        }
    }
    Ok((records, offset + position as u64))
}
