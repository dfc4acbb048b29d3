//! Model-based test: random appends, syncs, retention and crashes on a simulated disk that loses (or
//! tears) whatever was not synced, checked against a plain list of records. Every synced record must
//! survive every crash, in order, byte for byte; the log may keep a prefix of unsynced records but never
//! a damaged or reordered one.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::fs::LogFile;
use super::segments::read_segment;
use super::{LogFs, Record, SegmentLog};

#[derive(Default, Debug)]
struct MemFile {
    durable: Vec<u8>,
    pending: Vec<u8>,
}

/// A disk in memory: appended bytes stay `pending` until synced; a crash keeps only part of them.
#[derive(Default, Clone, Debug)]
struct MemFs(Arc<Mutex<BTreeMap<PathBuf, MemFile>>>);

struct MemHandle {
    fs: MemFs,
    path: PathBuf,
}

impl MemFs {
    fn with_file<T>(&self, path: &Path, action: impl FnOnce(&mut MemFile) -> T) -> std::io::Result<T> {
        let mut files = self.0.lock().unwrap();
        let file = files.get_mut(path).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        Ok(action(file))
    }

    /// A crash: every file keeps its synced bytes plus `torn % (pending + 1)` of the rest.
    fn crash(&self, torn: usize) {
        for file in self.0.lock().unwrap().values_mut() {
            let kept = torn % (file.pending.len() + 1);
            let pending = std::mem::take(&mut file.pending);
            file.durable.extend_from_slice(&pending[..kept]);
        }
    }
}

impl LogFile for MemHandle {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.fs.with_file(&self.path, |file| file.pending.extend_from_slice(bytes))
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.fs.with_file(&self.path, |file| {
            let pending = std::mem::take(&mut file.pending);
            file.durable.extend(pending);
        })
    }
}

impl LogFs for MemFs {
    type File = MemHandle;

    fn create_dir_all(&self, _: &Path) -> std::io::Result<()> {
        Ok(())
    }

    fn list(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        Ok(self.0.lock().unwrap().keys().filter(|path| path.parent() == Some(dir)).cloned().collect())
    }

    fn open_append(&self, path: &Path) -> std::io::Result<MemHandle> {
        self.0.lock().unwrap().entry(path.to_path_buf()).or_default();
        Ok(MemHandle { fs: self.clone(), path: path.to_path_buf() })
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.with_file(path, |file| {
            let all: Vec<u8> = file.durable.iter().chain(&file.pending).copied().collect();
            let start = (offset as usize).min(all.len());
            all[start..(start + len).min(all.len())].to_vec()
        })
    }

    fn len(&self, path: &Path) -> std::io::Result<u64> {
        self.with_file(path, |file| (file.durable.len() + file.pending.len()) as u64)
    }

    fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()> {
        self.with_file(path, |file| {
            let mut all: Vec<u8> = file.durable.iter().chain(&file.pending).copied().collect();
            all.truncate(len as usize);
            file.durable = all;
            file.pending.clear();
        })
    }

    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.0.lock().unwrap().remove(path);
        Ok(())
    }

    fn read_file(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.0.lock().unwrap().get(path).map(|file| file.durable.iter().chain(&file.pending).copied().collect()))
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        self.0.lock().unwrap().insert(path.to_path_buf(), MemFile { durable: bytes.to_vec(), pending: Vec::new() });
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Vec<u8>>),
    Sync,
    Crash(usize),
    RemoveBefore(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..4).prop_map(Op::Append),
        2 => Just(Op::Sync),
        1 => any::<usize>().prop_map(Op::Crash),
        1 => any::<u8>().prop_map(Op::RemoveBefore),
    ]
}

/// Every record the log holds, oldest first.
fn read_all(fs: &MemFs, log: &SegmentLog<MemFs>) -> Vec<Record> {
    let mut records = Vec::new();
    for segment in log.segments() {
        let (mut found, end) = read_segment(fs, segment, 0, segment.len, usize::MAX).unwrap();
        assert_eq!(end, segment.len, "a segment holds only whole records");
        records.append(&mut found);
    }
    records
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn synced_records_survive_every_crash(ops in prop::collection::vec(op(), 1..60)) {
        let fs = MemFs::default();
        let dir = PathBuf::from("/log");
        let (mut log, _) = SegmentLog::open(Arc::new(fs.clone()), dir.clone(), 120).unwrap();
        // The model: every appended record (seq = index) and how many of them are synced.
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut synced = 0usize;
        for op in ops {
            match op {
                Op::Append(payloads) => {
                    let range = log.append_batch(&payloads).unwrap();
                    prop_assert_eq!(range.start, model.len() as u64);
                    model.extend(payloads);
                }
                Op::Sync => {
                    log.sync().unwrap();
                    synced = model.len();
                }
                Op::Crash(torn) => {
                    drop(log);
                    fs.crash(torn);
                    let (reopened, report) = SegmentLog::open(Arc::new(fs.clone()), dir.clone(), 120).unwrap();
                    log = reopened;
                    let survived = report.next_seq as usize;
                    prop_assert!(survived >= synced, "lost synced records: {} of {}", survived, synced);
                    prop_assert!(survived <= model.len());
                    model.truncate(survived);
                    synced = survived;
                }
                Op::RemoveBefore(fraction) => {
                    let seq = model.len() as u64 * fraction as u64 / 255;
                    log.remove_before(seq).unwrap();
                    prop_assert!(log.first_seq() <= seq.max(log.first_seq()));
                }
            }
            let first = log.first_seq();
            let records = read_all(&fs, &log);
            let expected: Vec<Record> = model.iter().enumerate().skip(first as usize)
                .map(|(seq, payload)| Record { seq: seq as u64, payload: payload.clone() }).collect();
            prop_assert_eq!(records, expected);
        }
    }
}
