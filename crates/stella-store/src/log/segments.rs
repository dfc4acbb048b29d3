//! [`SegmentLog`]: the synchronous core of one log directory (the writer side), and [`read_segment`], how
//! every reader reads a segment (damage included).
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::damage::Damage;
use super::error::io;
use super::fs::LogFile;
use super::record::{self, Decoded, HEADER_LEN};
use super::{CursorStore, LogError, LogFs};

const SUFFIX: &str = ".seg";

/// Records one append adds at most (the writer's group size).
pub(crate) const MAX_GROUP_RECORDS: usize = 4096;

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
    /// Sequence numbers left unused so that none is ever handed out twice: after a stop that was not a
    /// clean close, up to the reservation in `head.json` (and past the furthest saved cursor).
    pub skipped_seqs: u64,
    /// Segments found.
    pub segments: usize,
    /// Damaged ranges in the last segment; the records after each were kept.
    pub damage: Vec<Damage>,
}

/// One log directory, from the writer's side.
pub struct SegmentLog<F: LogFs> {
    fs: Arc<F>,
    dir: PathBuf,
    segment_bytes: u64,
    segments: Vec<SegmentInfo>,
    active: Option<F::File>,
    /// Bytes of the last segment known to be on disk (its length at the last successful sync).
    synced_len: u64,
    /// The next append starts a new segment (after a gap in sequence numbers or a failed sync).
    roll_pending: bool,
    next_seq: u64,
    /// Sequence numbers below this may be handed out without writing `head.json` again.
    reserved: u64,
}

/// The segments in `dir`, oldest first, with their lengths on disk.
pub(crate) fn list_segments<F: LogFs>(fs: &F, dir: &Path) -> Result<Vec<SegmentInfo>, LogError> {
    let mut segments = Vec::new();
    for path in fs.list(dir).map_err(io("list", dir))? {
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let Some(first_seq) = name.strip_suffix(SUFFIX).and_then(|digits| digits.parse::<u64>().ok()) else {
            continue;
        };
        let len = fs.len(&path).map_err(io("stat", &path))?;
        segments.push(SegmentInfo { first_seq, path, len });
    }
    segments.sort_by_key(|segment| segment.first_seq);
    Ok(segments)
}

/// Reads every record of `segment` in order (damage skipped), handing each to `visit`; returns the damage met.
pub(crate) fn scan_segment<F: LogFs>(
    fs: &F,
    segment: &SegmentInfo,
    next_segment_seq: Option<u64>,
    visit: &mut dyn FnMut(record::Record),
) -> Result<Vec<Damage>, LogError> {
    let (mut offset, mut expected) = (0, segment.first_seq);
    let mut damage = Vec::new();
    while offset < segment.len {
        let read = read_segment(fs, segment, (offset, expected), segment.len, 1 << 20)?;
        read.records.into_iter().for_each(&mut *visit);
        let resume = read.next_seq.or(next_segment_seq);
        if let Some((bytes, reason, first_lost)) = read.damage {
            let lost = first_lost..resume.unwrap_or(first_lost);
            damage.push(Damage { segment: segment.path.clone(), bytes, lost, reason });
        }
        offset = read.end;
        match read.next_seq {
            Some(next) => expected = next,
            None => break,
        }
    }
    Ok(damage)
}

/// The path of the segment whose first record is `first_seq`.
pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SUFFIX}"))
}

/// The most sequence numbers one segment could have held: its bytes (at least the configured size, and
/// never less than 1 GiB, in case an earlier run used larger segments) at 16 bytes a record at least,
/// plus one append that started just below the size. Used only for a log without a `head.json`.
fn seq_capacity(segment_bytes: u64, len: u64) -> u64 {
    segment_bytes.max(len).max(1 << 30) / HEADER_LEN as u64 + MAX_GROUP_RECORDS as u64
}

/// The file that makes sequence numbers unique for ever: before the writer hands out a number at or
/// past `reserved`, it durably raises `reserved` by [`RESERVATION`]; a clean close writes the head as
/// `clean`. After any other stop, recovery starts at `reserved`, above every number handed out, whatever
/// was lost from the segments (a torn tail, a truncated or deleted file).
const HEAD_FILE: &str = "head.json";
/// Sequence numbers reserved at a time.
const RESERVATION: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct HeadFile {
    reserved: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clean: Option<u64>,
}

impl<F: LogFs> SegmentLog<F> {
    /// Opens (or creates) the log in `dir`. The last segment is scanned: a torn last record is cut off,
    /// damage with valid records after it is reported (and those records kept). The next sequence number
    /// is above every number ever handed out (see `head.json`) and past every saved cursor.
    pub fn open(fs: Arc<F>, dir: PathBuf, segment_bytes: u64) -> Result<(Self, OpenReport), LogError> {
        fs.create_dir_all(&dir).map_err(io("create", &dir))?;
        let segments = list_segments(fs.as_ref(), &dir)?;
        let head_path = dir.join(HEAD_FILE);
        let head = match fs.read_file(&head_path) {
            Ok(Some(bytes)) => match serde_json::from_slice::<HeadFile>(&bytes) {
                Ok(head) => Some(head),
                Err(error) => {
                    tracing::error!(path = %head_path.display(), %error, "ingest log: head.json is damaged; sequence numbers continue past what the segments and cursors show");
                    None
                }
            },
            Ok(None) => None,
            Err(error) => return Err(io("read", &head_path)(error)),
        };
        let mut log = SegmentLog {
            fs: Arc::clone(&fs),
            dir: dir.clone(),
            segment_bytes: segment_bytes.max(1),
            segments,
            active: None,
            synced_len: 0,
            roll_pending: false,
            next_seq: 0,
            reserved: 0,
        };
        let (truncated_bytes, damage) = log.recover_last_segment()?;
        let recovered = log.next_seq;
        match head {
            Some(HeadFile { clean: Some(clean), .. }) if clean == recovered && truncated_bytes == 0 => {}
            Some(head) => log.next_seq = log.next_seq.max(head.reserved),
            None if truncated_bytes > 0 => {
                if let Some(last) = log.segments.last() {
                    let capacity = seq_capacity(log.segment_bytes, last.len + truncated_bytes);
                    log.next_seq = log.next_seq.max(last.first_seq + capacity);
                }
            }
            None => {}
        }
        let floor = CursorStore::new(fs, dir).furthest();
        log.next_seq = log.next_seq.max(floor);
        let skipped_seqs = log.next_seq - recovered;
        log.roll_pending = skipped_seqs > 0;
        log.reserve(log.next_seq)?;
        let report =
            OpenReport { truncated_bytes, next_seq: log.next_seq, skipped_seqs, segments: log.segments.len(), damage };
        Ok((log, report))
    }

    /// Durably reserves sequence numbers up to `seq` + [`RESERVATION`] (marking the log as not closed cleanly).
    fn reserve(&mut self, seq: u64) -> Result<(), LogError> {
        let reserved = seq.saturating_add(RESERVATION);
        self.write_head(HeadFile { reserved, clean: None })?;
        self.reserved = reserved;
        Ok(())
    }

    fn write_head(&self, head: HeadFile) -> Result<(), LogError> {
        let path = self.dir.join(HEAD_FILE);
        let bytes = serde_json::to_vec(&head).unwrap_or_default();
        self.fs.write_atomic(&path, &bytes).map_err(io("write", &path))
    }

    /// Syncs and records the head as cleanly closed, so the next open continues right after it.
    pub fn close(&mut self) -> Result<(), LogError> {
        self.sync()?;
        self.active = None;
        self.write_head(HeadFile { reserved: self.reserved, clean: Some(self.next_seq) })
    }

    /// Scans the last segment: finds the next sequence number and damage, and cuts off a torn tail.
    /// Returns the bytes cut and the damage found.
    fn recover_last_segment(&mut self) -> Result<(u64, Vec<Damage>), LogError> {
        let Some(last) = self.segments.last_mut() else { return Ok((0, Vec::new())) };
        let path = last.path.clone();
        let bytes = self.fs.read_at(&path, 0, last.len as usize).map_err(io("read", &path))?;
        let mut offset = 0usize;
        let mut expected = last.first_seq;
        let mut damage = Vec::new();
        while offset < bytes.len() {
            let reason = match record::decode(&bytes[offset..]) {
                Decoded::Record(record, length) if record.seq == expected => {
                    offset += length;
                    expected += 1;
                    continue;
                }
                Decoded::Record(..) => "sequence number out of order",
                Decoded::Short => "record runs past the end of the segment",
                Decoded::Damaged(reason) => reason,
            };
            let mut read = |at: u64, len: usize| {
                let start = (at as usize).min(bytes.len());
                Ok(bytes[start..(start + len).min(bytes.len())].to_vec())
            };
            let len = bytes.len() as u64;
            let most = expected + (len - offset as u64) / HEADER_LEN as u64 + 1;
            let found = record::find_next(&mut read, offset as u64, len, expected..=most).map_err(io("read", &path))?;
            // Nothing valid after it: an incomplete last write (a torn tail), cut off below.
            let Some((resume, seq)) = found else { break };
            damage.push(Damage { segment: path.clone(), bytes: offset as u64..resume, lost: expected..seq, reason });
            offset = resume as usize;
            expected = seq;
        }
        let truncated = bytes.len() - offset;
        if truncated > 0 {
            self.fs.truncate(&path, offset as u64).map_err(io("truncate", &path))?;
            tracing::warn!(path = %path.display(), offset, truncated_bytes = truncated, "ingest log: cut off a torn last record");
        }
        last.len = offset as u64;
        self.synced_len = last.len;
        self.next_seq = expected;
        Ok((truncated as u64, damage))
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
        if first + payloads.len() as u64 > self.reserved {
            self.reserve(first + payloads.len() as u64)?;
        }
        let mut buffer = Vec::with_capacity(payloads.iter().map(|payload| payload.len() + HEADER_LEN).sum());
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
    ///
    /// A failed sync is fatal to the segment (after a failed fsync the kernel may have dropped the dirty
    /// pages, and a later successful fsync would prove nothing about them): the bytes written since the
    /// last successful sync are cut off, the file handle is dropped and the next append starts a new
    /// segment. Those records were never answered as durable (their clients get the error); their
    /// sequence numbers are not reused. When even the cut fails, the error says so and the caller must
    /// stop accepting appends.
    pub fn sync(&mut self) -> Result<(), LogError> {
        let Some(active) = self.active.as_mut() else { return Ok(()) };
        let Some(segment) = self.segments.last() else { return Ok(()) };
        let path = segment.path.clone();
        match active.sync() {
            Ok(()) => {
                self.synced_len = segment.len;
                Ok(())
            }
            Err(source) => {
                self.active = None;
                self.roll_pending = true;
                let synced_len = self.synced_len;
                let cut = self.fs.truncate(&path, synced_len);
                if let Some(segment) = self.segments.last_mut() {
                    segment.len = synced_len;
                }
                match cut {
                    Ok(()) => Err(LogError::Io { action: "sync", path, source }),
                    Err(cut) => Err(LogError::SyncLost { path, source, cut }),
                }
            }
        }
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
        if !full && !self.roll_pending {
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
        self.synced_len = 0;
        self.roll_pending = false;
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

/// What one read of a segment found.
#[derive(Debug)]
pub(crate) struct SegmentRead {
    /// Whole, valid records in order.
    pub records: Vec<record::Record>,
    /// The offset after the last record read (or after the damage).
    pub end: u64,
    /// The sequence number of the record at `end`, when known (`None` after damage that runs to the
    /// end of the visible bytes: the next record is the next segment's first, or the log's head).
    pub next_seq: Option<u64>,
    /// Damage met after `records`: its bytes, the reason, and the first sequence number lost.
    pub damage: Option<(Range<u64>, &'static str, u64)>,
}

/// Reads whole records of one segment from `offset`, where the record numbered `expected` starts: at most
/// `max_bytes` of them (at least one record), never past `visible_len` (the bytes the writer has
/// published, all whole records). Damage (a record that fails its checksum, runs past the visible bytes
/// or is out of sequence) ends the read: the next valid record after it is looked for, and the read
/// returns the records before it, the damage, and where to go on.
pub(crate) fn read_segment<F: LogFs>(
    fs: &F,
    segment: &SegmentInfo,
    (offset, expected): (u64, u64),
    visible_len: u64,
    max_bytes: usize,
) -> Result<SegmentRead, LogError> {
    let io_error = |source| LogError::Io { action: "read", path: segment.path.clone(), source };
    let available = visible_len.saturating_sub(offset) as usize;
    let mut requested = available.min(max_bytes.max(HEADER_LEN));
    let mut bytes = fs.read_at(&segment.path, offset, requested).map_err(io_error)?;
    let mut records = Vec::new();
    let mut position = 0usize;
    let mut next = expected;
    let reason = loop {
        if position >= bytes.len() {
            if bytes.len() < requested {
                break "the segment file is shorter than its written length";
            }
            return Ok(SegmentRead { records, end: offset + position as u64, next_seq: Some(next), damage: None });
        }
        match record::decode(&bytes[position..]) {
            Decoded::Record(record, length) if record.seq == next => {
                records.push(record);
                position += length;
                next += 1;
            }
            Decoded::Record(..) => break "sequence number out of order",
            Decoded::Damaged(reason) => break reason,
            Decoded::Short => {
                let claimed = record::claimed_len(&bytes[position..]).unwrap_or(HEADER_LEN);
                if position + claimed > available {
                    break "record runs past the end of the written bytes";
                }
                if !records.is_empty() {
                    // The rest is for the next read.
                    return Ok(SegmentRead {
                        records,
                        end: offset + position as u64,
                        next_seq: Some(next),
                        damage: None,
                    });
                }
                // One record larger than max_bytes: read exactly it.
                requested = claimed;
                bytes = fs.read_at(&segment.path, offset, claimed).map_err(io_error)?;
            }
        }
    };
    let start = offset + position as u64;
    let mut read = |at: u64, len: usize| fs.read_at(&segment.path, at, len);
    let most = next + (visible_len - start) / HEADER_LEN as u64 + 1;
    let found = record::find_next(&mut read, start, visible_len, next..=most).map_err(io_error)?;
    let (end, next_seq) = match found {
        Some((resume, seq)) => (resume, Some(seq)),
        None => (visible_len, None),
    };
    Ok(SegmentRead { records, end, next_seq, damage: Some((start..end, reason, next)) })
}
