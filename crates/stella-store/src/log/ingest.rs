//! [`IngestLog`]: the async front of a [`SegmentLog`]. Appends from many tasks meet on one writer thread
//! that writes them as one group and syncs per [`SyncPolicy`] before answering (group commit). Readers
//! see only what the writer has published, so a half-written record is never read.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::damage::{Damage, quarantined};
use super::segments::{MAX_GROUP_RECORDS, SegmentInfo, read_segment};
use super::{LogError, LogFs, OpenReport, Record, SegmentLog};

/// When appended records are made durable (`storage.sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// fsync each group before answering; nothing answered is ever lost (`forensic`).
    Always,
    /// Group commit that, under load (the previous group held more than one append), waits until `window`
    /// after the last fsync to gather a larger group; a lone append is synced at once (the default).
    Batch {
        /// The shortest time between two fsyncs.
        window: Duration,
    },
    /// Answer once written; fsync every `every`. A crash of the machine (not just the process) may lose
    /// up to that window of answered data.
    Interval {
        /// How often to fsync.
        every: Duration,
    },
}

/// How a log is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Size at which a new segment is started.
    pub segment_bytes: u64,
    /// The sync policy.
    pub sync: SyncPolicy,
    /// Appends are refused with [`LogError::Full`] while the log holds this many bytes (0: no limit).
    pub max_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 * 1024 * 1024,
            sync: SyncPolicy::Batch { window: Duration::from_micros(500) },
            max_bytes: 0,
        }
    }
}

/// Bytes gathered into one group at most.
const MAX_GROUP_BYTES: usize = 32 * 1024 * 1024;

enum Command {
    Append { payload: Vec<u8>, done: oneshot::Sender<Result<u64, Arc<LogError>>> },
    RemoveBefore(u64),
}

/// What readers may see: the segments with their committed lengths and the next sequence number.
#[derive(Debug, Clone, Default)]
struct Published {
    segments: Vec<SegmentInfo>,
    next_seq: u64,
}

/// One ingest log, shared by the receivers (append) and its consumers (readers).
pub struct IngestLog<F: LogFs> {
    fs: Arc<F>,
    dir: PathBuf,
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    published: Arc<RwLock<Published>>,
    head: watch::Sender<u64>,
    bytes: Arc<AtomicU64>,
    max_bytes: u64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Records lost to damage found since the log was opened (each damaged range counted once).
    damaged_records: AtomicU64,
    /// Damaged ranges already reported by this process: (segment, first damaged byte).
    damage_seen: Mutex<std::collections::HashSet<(PathBuf, u64)>>,
}

impl<F: LogFs> IngestLog<F> {
    /// Opens the log in `dir` (recovering a torn tail) and starts its writer thread.
    pub fn open(fs: Arc<F>, dir: PathBuf, options: LogOptions) -> Result<(Arc<Self>, OpenReport), LogError> {
        let (log, report) = SegmentLog::open(Arc::clone(&fs), dir.clone(), options.segment_bytes)?;
        let published =
            Arc::new(RwLock::new(Published { segments: log.segments().to_vec(), next_seq: log.next_seq() }));
        let bytes = Arc::new(AtomicU64::new(log.total_bytes()));
        let (head, _) = watch::channel(log.next_seq());
        let (sender, receiver) = mpsc::channel();
        let writer = Writer {
            log,
            published: Arc::clone(&published),
            head: head.clone(),
            bytes: Arc::clone(&bytes),
            sync: options.sync,
            failed: None,
        };
        let thread =
            std::thread::Builder::new()
                .name("stella-log-writer".into())
                .spawn(move || writer.run(receiver))
                .map_err(|source| LogError::Io { action: "start the writer thread for", path: dir.clone(), source })?;
        let ingest = IngestLog {
            fs,
            dir,
            commands: Mutex::new(Some(sender)),
            published,
            head,
            bytes,
            max_bytes: options.max_bytes,
            writer: Mutex::new(Some(thread)),
            damaged_records: AtomicU64::new(0),
            damage_seen: Mutex::new(std::collections::HashSet::new()),
        };
        for damage in &report.damage {
            ingest.report_damage(damage.clone());
        }
        if report.skipped_seqs > 0 {
            tracing::warn!(dir = %ingest.dir.display(), next_seq = report.next_seq, skipped = report.skipped_seqs, "ingest log: sequence numbers skipped after recovery, so none is handed out twice");
        }
        Ok((Arc::new(ingest), report))
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The filesystem the log runs on.
    pub fn fs(&self) -> &Arc<F> {
        &self.fs
    }

    /// Appends one record; returns its sequence number once it is written and synced per the policy.
    pub async fn append(&self, payload: Vec<u8>) -> Result<u64, LogError> {
        let bytes = self.bytes();
        if self.max_bytes > 0 && bytes >= self.max_bytes {
            return Err(LogError::Full { bytes, limit: self.max_bytes });
        }
        let (done, answer) = oneshot::channel();
        self.send(Command::Append { payload, done })?;
        match answer.await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(error)) => Err(LogError::Group(error)),
            Err(_) => Err(LogError::Closed),
        }
    }

    /// Records lost to damage found since the log was opened (each damaged range counted once, and not
    /// again after a restart once quarantined).
    pub fn damaged_records(&self) -> u64 {
        self.damaged_records.load(Ordering::Relaxed)
    }

    /// The quarantined damaged ranges of this log (files under `<dir>/quarantine/`).
    pub fn quarantined(&self) -> Vec<PathBuf> {
        quarantined(self.fs.as_ref(), &self.dir)
    }

    /// Quarantines, counts and logs a damaged range once.
    fn report_damage(&self, damage: Damage) {
        let key = (damage.segment.clone(), damage.bytes.start);
        if !self.damage_seen.lock().unwrap_or_else(|poison| poison.into_inner()).insert(key) {
            return;
        }
        match damage.quarantine(self.fs.as_ref(), &self.dir) {
            Ok(false) => {
                tracing::debug!(segment = %damage.segment.display(), bytes = ?damage.bytes, "ingest log: damage already quarantined")
            }
            Ok(true) => {
                self.damaged_records.fetch_add(damage.records(), Ordering::Relaxed);
                tracing::error!(
                    event = "log.damaged",
                    segment = %damage.segment.display(),
                    bytes = ?damage.bytes,
                    lost_seqs = ?damage.lost,
                    lost_records = damage.records(),
                    reason = damage.reason,
                    quarantine = %self.dir.join("quarantine").display(),
                    "ingest log: damaged records quarantined and skipped; the records after them are delivered"
                );
            }
            Err(error) => {
                self.damaged_records.fetch_add(damage.records(), Ordering::Relaxed);
                tracing::error!(
                    event = "log.damaged",
                    segment = %damage.segment.display(),
                    bytes = ?damage.bytes,
                    lost_records = damage.records(),
                    reason = damage.reason,
                    %error,
                    "ingest log: damaged records skipped, but they could not be copied to quarantine"
                );
            }
        }
    }

    fn send(&self, command: Command) -> Result<(), LogError> {
        let commands = self.commands.lock().unwrap_or_else(|poison| poison.into_inner());
        let sender = commands.as_ref().ok_or(LogError::Closed)?;
        sender.send(command).map_err(|_| LogError::Closed)
    }

    /// Deletes the segments every consumer has passed (all records before `seq`), in the background.
    pub fn remove_before(&self, seq: u64) {
        let _ = self.send(Command::RemoveBefore(seq));
    }

    /// The sequence number the next record will get (= records committed so far).
    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    /// The oldest sequence number still kept.
    pub fn first_seq(&self) -> u64 {
        let published = self.published.read().unwrap_or_else(|poison| poison.into_inner());
        published.segments.first().map_or(published.next_seq, |segment| segment.first_seq)
    }

    /// When more than `limit` bytes lie between `next_seq` and the head: the first sequence number of the
    /// oldest segment that brings the backlog within `limit` (never past the last segment), and the backlog.
    pub fn seek_within(&self, next_seq: u64, limit: u64) -> Option<(u64, u64)> {
        let published = self.published.read().unwrap_or_else(|poison| poison.into_inner());
        let start = published.segments.iter().rposition(|segment| segment.first_seq <= next_seq).unwrap_or(0);
        let backlog: u64 = published.segments[start..].iter().map(|segment| segment.len).sum();
        if backlog <= limit {
            return None;
        }
        let mut remaining = backlog;
        for segment in &published.segments[start..] {
            if remaining <= limit {
                return Some((segment.first_seq.max(next_seq), backlog));
            }
            remaining -= segment.len;
        }
        published.segments.last().map(|last| (last.first_seq.max(next_seq), backlog))
    }

    /// Notified with the new head after every committed group.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Bytes in the log's segments.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// A reader starting at `next_seq`.
    pub fn reader(self: &Arc<Self>, next_seq: u64) -> LogReader<F> {
        LogReader { log: Arc::clone(self), next_seq, position: None, skipped: 0 }
    }

    /// Stops the writer after it has written and synced everything appended before.
    pub fn close(&self) {
        self.commands.lock().unwrap_or_else(|poison| poison.into_inner()).take();
        let writer = self.writer.lock().unwrap_or_else(|poison| poison.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

impl<F: LogFs> Drop for IngestLog<F> {
    fn drop(&mut self) {
        self.close();
    }
}

struct Writer<F: LogFs> {
    log: SegmentLog<F>,
    published: Arc<RwLock<Published>>,
    head: watch::Sender<u64>,
    bytes: Arc<AtomicU64>,
    sync: SyncPolicy,
    /// Set when a failed sync could not be undone: every later append is refused with it.
    failed: Option<Arc<LogError>>,
}

impl<F: LogFs> Writer<F> {
    fn run(mut self, commands: mpsc::Receiver<Command>) {
        let mut unsynced = false;
        let mut last_sync = Instant::now();
        let mut last_group = 0usize;
        loop {
            let received = match self.sync {
                SyncPolicy::Interval { every } => commands.recv_timeout(every),
                _ => commands.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            if let SyncPolicy::Interval { every } = self.sync
                && unsynced
                && last_sync.elapsed() >= every
            {
                if let Err(error) = self.log.sync() {
                    tracing::error!(code = error.code(), %error, "ingest log: periodic sync failed; the unsynced records are cut off and a new segment is started");
                    self.fail_if_lost(error);
                    self.publish();
                }
                unsynced = false;
                last_sync = Instant::now();
            }
            let first = match received {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut group = Group::default();
            group.add(first, &mut self);
            if let SyncPolicy::Batch { window } = self.sync
                && last_group > 1
            {
                // Group commit with a window, only under load (the previous group had company): gather
                // what arrives until `window` after the last fsync (fewer, larger fsyncs). A lone client
                // is synced at once, as with `always`.
                let deadline = last_sync + window;
                while !group.full() {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match commands.recv_timeout(left) {
                        Ok(command) => group.add(command, &mut self),
                        Err(_) => break,
                    }
                }
            }
            while !group.full() {
                match commands.try_recv() {
                    Ok(command) => group.add(command, &mut self),
                    Err(_) => break,
                }
            }
            last_group = group.payloads.len();
            let synced_now = !matches!(self.sync, SyncPolicy::Interval { .. }) && !group.payloads.is_empty();
            if self.commit(group) {
                unsynced = true;
            }
            if synced_now {
                last_sync = Instant::now();
            }
        }
        if self.failed.is_none()
            && let Err(error) = self.log.close()
        {
            tracing::error!(code = error.code(), %error, "ingest log: final sync failed");
        }
    }

    /// Writes a group, syncs per policy, publishes, answers. Returns whether unsynced data remains.
    fn commit(&mut self, group: Group) -> bool {
        if group.payloads.is_empty() {
            return false;
        }
        if let Some(failed) = &self.failed {
            for done in group.answers {
                let _ = done.send(Err(Arc::new(LogError::Stopped(Arc::clone(failed)))));
            }
            return false;
        }
        let written = self.log.append_batch(&group.payloads);
        let synced = written.and_then(|range| match self.sync {
            SyncPolicy::Interval { .. } => Ok(range),
            _ => self.log.sync().map(|()| range),
        });
        match synced {
            Ok(range) => {
                self.publish();
                for (seq, done) in range.zip(group.answers) {
                    let _ = done.send(Ok(seq));
                }
                matches!(self.sync, SyncPolicy::Interval { .. })
            }
            Err(error) => {
                // The appends' callers report the error (rate limited); the segment state may have changed.
                let error = self.fail_if_lost(error);
                self.publish();
                for done in group.answers {
                    let _ = done.send(Err(Arc::clone(&error)));
                }
                false
            }
        }
    }

    /// Keeps `error` as the writer's permanent failure when the segment's state is unknown.
    fn fail_if_lost(&mut self, error: LogError) -> Arc<LogError> {
        let error = Arc::new(error);
        if matches!(*error, LogError::SyncLost { .. }) {
            tracing::error!(code = error.code(), %error, "ingest log: refusing every append until a restart");
            self.failed = Some(Arc::clone(&error));
        }
        error
    }

    fn publish(&mut self) {
        let next_seq = self.log.next_seq();
        {
            let mut published = self.published.write().unwrap_or_else(|poison| poison.into_inner());
            published.segments = self.log.segments().to_vec();
            published.next_seq = next_seq;
        }
        self.bytes.store(self.log.total_bytes(), Ordering::Relaxed);
        self.head.send_replace(next_seq);
    }

    fn remove_before(&mut self, seq: u64) {
        match self.log.remove_before(seq) {
            Ok(0) => {}
            Ok(freed) => {
                tracing::debug!(dir = %self.log.dir().display(), freed, "ingest log: removed consumed segments");
                self.publish();
            }
            Err(error) => tracing::error!(%error, "ingest log: removing consumed segments failed"),
        }
    }
}

#[derive(Default)]
struct Group {
    payloads: Vec<Vec<u8>>,
    answers: Vec<oneshot::Sender<Result<u64, Arc<LogError>>>>,
    bytes: usize,
}

impl Group {
    fn add<F: LogFs>(&mut self, command: Command, writer: &mut Writer<F>) {
        match command {
            Command::Append { payload, done } => {
                self.bytes += payload.len();
                self.payloads.push(payload);
                self.answers.push(done);
            }
            Command::RemoveBefore(seq) => writer.remove_before(seq),
        }
    }

    fn full(&self) -> bool {
        self.payloads.len() >= MAX_GROUP_RECORDS || self.bytes >= MAX_GROUP_BYTES
    }
}

/// Reads a log in order from a sequence number, following the committed head. Damage is skipped: the
/// records after it are read, the damaged range is quarantined and counted once per log.
pub struct LogReader<F: LogFs> {
    log: Arc<IngestLog<F>>,
    next_seq: u64,
    /// Where reading goes on: (segment by first sequence number, byte offset, sequence number there).
    position: Option<(u64, u64, u64)>,
    skipped: u64,
}

impl<F: LogFs> LogReader<F> {
    /// The sequence number of the next record this reader returns.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Records that were gone (removed) when the reader reached them.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Jumps to `seq` (forward or back).
    pub fn seek(&mut self, seq: u64) {
        self.next_seq = seq;
        self.position = None;
    }

    /// The next committed records, about `max_bytes` of them (at least one if any is committed);
    /// empty when the reader is at the head (then [`LogReader::next_seq`] is the head). Blocking file
    /// I/O: call it off the async workers.
    pub fn read(&mut self, max_bytes: usize) -> Result<Vec<Record>, LogError> {
        let published = self.log.published.read().unwrap_or_else(|poison| poison.into_inner()).clone();
        loop {
            if self.next_seq >= published.next_seq {
                return Ok(Vec::new());
            }
            let Some(index) = published.segments.iter().rposition(|segment| segment.first_seq <= self.next_seq) else {
                let oldest = published.segments.first().map_or(published.next_seq, |segment| segment.first_seq);
                self.skipped += oldest.saturating_sub(self.next_seq);
                self.seek(oldest);
                continue;
            };
            let segment = &published.segments[index];
            let after = published.segments.get(index + 1).map_or(published.next_seq, |next| next.first_seq);
            let (offset, expected) = match self.position {
                Some((first_seq, offset, seq)) if first_seq == segment.first_seq => (offset, seq),
                _ => (0, segment.first_seq),
            };
            if offset >= segment.len {
                // This segment is read; whatever numbers lie between it and the next were never used.
                self.next_seq = self.next_seq.max(after);
                self.position = published.segments.get(index + 1).map(|next| (next.first_seq, 0, next.first_seq));
                continue;
            }
            let read = read_segment(self.log.fs.as_ref(), segment, (offset, expected), segment.len, max_bytes)?;
            let resume_seq = read.next_seq.unwrap_or(after);
            self.position = Some((segment.first_seq, read.end, resume_seq));
            let wanted: Vec<Record> = read.records.into_iter().filter(|record| record.seq >= self.next_seq).collect();
            if let Some(last) = wanted.last() {
                self.next_seq = last.seq + 1;
            }
            if let Some((bytes, reason, first_lost)) = read.damage {
                let lost = first_lost..resume_seq;
                self.log.report_damage(Damage { segment: segment.path.clone(), bytes, lost, reason });
                self.next_seq = self.next_seq.max(resume_seq);
            }
            if !wanted.is_empty() {
                return Ok(wanted);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Cursor, CursorStore, RealFs};

    fn options(sync: SyncPolicy) -> LogOptions {
        LogOptions { segment_bytes: 4096, sync, max_bytes: 0 }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_appends_get_contiguous_sequence_numbers_and_readers_see_them_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let policy = SyncPolicy::Batch { window: Duration::from_millis(1) };
        let (log, report) = IngestLog::open(Arc::new(RealFs), dir.path().join("log"), options(policy)).unwrap();
        assert_eq!(report.next_seq, 0);
        let mut seqs = Vec::new();
        for wave in 0..4u32 {
            let mut tasks = Vec::new();
            for index in 0..50u32 {
                let log = Arc::clone(&log);
                let payload = (wave * 50 + index).to_le_bytes().repeat(30);
                tasks.push(tokio::spawn(async move { log.append(payload).await.unwrap() }));
            }
            for task in tasks {
                seqs.push(task.await.unwrap());
            }
        }
        seqs.sort();
        assert_eq!(seqs, (0..200).collect::<Vec<u64>>());
        assert_eq!(log.head(), 200);
        let mut reader = log.reader(0);
        let mut read = Vec::new();
        loop {
            let records = reader.read(1000).unwrap();
            if records.is_empty() {
                break;
            }
            read.extend(records);
        }
        assert_eq!(
            read.iter().map(|record| record.seq).collect::<Vec<_>>(),
            seqs,
            "every record once, in order, across segments"
        );
        log.remove_before(150);
        log.close();
        let (reopened, report) =
            IngestLog::open(Arc::new(RealFs), dir.path().join("log"), options(SyncPolicy::Always)).unwrap();
        assert_eq!(report.next_seq, 200, "the head survives a restart");
        assert!(reopened.first_seq() > 0 && reopened.first_seq() <= 150, "consumed segments were removed");
        let mut late = reopened.reader(0);
        let first = late.read(100).unwrap();
        assert_eq!(first[0].seq, reopened.first_seq());
        assert_eq!(late.skipped(), reopened.first_seq(), "records removed before the reader got there are counted");
    }

    #[tokio::test]
    async fn a_full_log_refuses_appends() {
        let dir = tempfile::tempdir().unwrap();
        let options = LogOptions { segment_bytes: 1024, sync: SyncPolicy::Always, max_bytes: 100 };
        let (log, _) = IngestLog::open(Arc::new(RealFs), dir.path().to_path_buf(), options).unwrap();
        log.append(vec![0; 200]).await.unwrap();
        assert!(matches!(log.append(vec![0; 10]).await, Err(LogError::Full { limit: 100, .. })));
    }

    #[tokio::test]
    async fn damage_in_an_older_segment_is_quarantined_counted_once_and_read_past() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let options = LogOptions { segment_bytes: 2048, sync: SyncPolicy::Always, max_bytes: 0 };
        let (log, _) = IngestLog::open(Arc::new(RealFs), path.clone(), options).unwrap();
        for index in 0..60u32 {
            log.append(index.to_le_bytes().repeat(40)).await.unwrap();
        }
        log.close();
        drop(log);
        let first = path.join(format!("{:020}.seg", 0));
        let mut bytes = std::fs::read(&first).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xFF;
        std::fs::write(&first, bytes).unwrap();
        let (log, report) = IngestLog::open(Arc::new(RealFs), path.clone(), options).unwrap();
        assert_eq!(report.next_seq, 60, "a clean close continues right after the last record");
        let read_all = |log: &Arc<IngestLog<RealFs>>| {
            let mut reader = log.reader(0);
            let mut seqs = Vec::new();
            loop {
                let records = reader.read(1 << 20).unwrap();
                if records.is_empty() {
                    break;
                }
                seqs.extend(records.iter().map(|record| record.seq));
            }
            (seqs, reader.next_seq())
        };
        let (seqs, end) = read_all(&log);
        assert_eq!(end, 60, "the reader reaches the head");
        assert_eq!(seqs.len(), 59, "only the damaged record is lost: {seqs:?}");
        assert_eq!(log.damaged_records(), 1);
        assert_eq!(log.quarantined().len(), 1);
        let _ = read_all(&log);
        assert_eq!(log.damaged_records(), 1, "damage is counted once, however often it is read past");
        log.close();
        drop(log);
        let (again, _) = IngestLog::open(Arc::new(RealFs), path, options).unwrap();
        let _ = read_all(&again);
        assert_eq!(again.damaged_records(), 0, "quarantined damage is not counted again after a restart");
    }

    #[test]
    fn cursors_are_saved_and_loaded_per_consumer() {
        let dir = tempfile::tempdir().unwrap();
        let store = CursorStore::new(Arc::new(RealFs), dir.path().to_path_buf());
        assert_eq!(store.load("file/audit").unwrap(), None);
        let cursor = Cursor { next_seq: 42, checkpoint: Some(7) };
        store.save("file/audit", &cursor).unwrap();
        assert_eq!(store.load("file/audit").unwrap(), Some(cursor));
        std::fs::write(dir.path().join("cursors/bad.json"), "{").unwrap();
        assert!(matches!(store.load("bad"), Err(LogError::BadCursor { .. })));
    }
}
