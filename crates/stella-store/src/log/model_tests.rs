//! Model-based test: random appends, syncs, retention and crashes on a simulated disk that loses (or
//! tears) whatever was not synced, checked against a plain list of records. Every synced record must
//! survive every crash, in order, byte for byte; the log may keep a prefix of unsynced records but never
//! a damaged or reordered one.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::fs::LogFile;
use super::segments::scan_segment;
use super::{HEADER_LEN, LogFs, Record, SegmentLog};

#[derive(Default, Debug)]
struct MemFile {
    durable: Vec<u8>,
    pending: Vec<u8>,
}

/// A disk in memory: appended bytes stay `pending` until synced; a crash keeps only part of them.
#[derive(Default, Clone, Debug)]
struct MemFs(Arc<Mutex<BTreeMap<PathBuf, MemFile>>>, Arc<std::sync::atomic::AtomicBool>);

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

    /// Makes the next sync fail with EIO.
    fn fail_next_sync(&self) {
        self.1.store(true, std::sync::atomic::Ordering::SeqCst);
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
        if self.fs.1.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(5));
        }
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

/// Every record the log holds, oldest first, and the damage met on the way.
fn read_all(fs: &MemFs, log: &SegmentLog<MemFs>) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut damaged = 0;
    for (index, segment) in log.segments().iter().enumerate() {
        let next = log.segments().get(index + 1).map(|next| next.first_seq);
        damaged += scan_segment(fs, segment, next, &mut |record| records.push(record)).unwrap().len();
    }
    (records, damaged)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn synced_records_survive_every_crash_and_no_number_is_handed_out_twice(ops in prop::collection::vec(op(), 1..60)) {
        let fs = MemFs::default();
        let dir = PathBuf::from("/log");
        let (mut log, _) = SegmentLog::open(Arc::new(fs.clone()), dir.clone(), 120).unwrap();
        // The model: every record the log holds (seq, payload), how many are synced, and the highest
        // number ever handed out.
        let mut model: Vec<Record> = Vec::new();
        let mut synced = 0usize;
        let mut highest: Option<u64> = None;
        for op in ops {
            match op {
                Op::Append(payloads) => {
                    let range = log.append_batch(&payloads).unwrap();
                    prop_assert!(highest.is_none_or(|highest| range.start > highest), "a number handed out twice");
                    highest = Some(range.end - 1);
                    model.extend(range.zip(payloads).map(|(seq, payload)| Record { seq, payload }));
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
                    prop_assert!(report.damage.is_empty(), "a torn tail is not damage");
                    prop_assert!(highest.is_none_or(|highest| report.next_seq > highest));
                    let (records, _) = read_all(&fs, &log);
                    // Records before the first segment were removed by retention, not lost.
                    let read: std::collections::BTreeSet<u64> = records.iter().map(|record| record.seq).collect();
                    let first = log.first_seq();
                    let survived = model.iter().take_while(|record| record.seq < first || read.contains(&record.seq)).count();
                    prop_assert!(survived >= synced, "lost synced records: {} of {}", survived, synced);
                    model.truncate(survived);
                    synced = survived;
                }
                Op::RemoveBefore(fraction) => {
                    let seq = highest.unwrap_or(0) * fraction as u64 / 255;
                    log.remove_before(seq).unwrap();
                }
            }
            let first = log.first_seq();
            let (records, damaged) = read_all(&fs, &log);
            prop_assert_eq!(damaged, 0);
            let expected: Vec<Record> = model.iter().filter(|record| record.seq >= first).cloned().collect();
            prop_assert_eq!(records, expected);
        }
    }

    /// Damage anywhere in a synced log: every record whose bytes are intact is still read (in order), the
    /// damaged ones are reported, and no number is handed out twice after a reopen.
    #[test]
    fn damage_loses_only_the_damaged_records_and_numbers_stay_unique(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 5..40),
        damage_at in any::<prop::sample::Index>(),
        damage_len in 1usize..90,
        truncate in any::<bool>(),
    ) {
        let fs = MemFs::default();
        let dir = PathBuf::from("/log");
        let (mut log, _) = SegmentLog::open(Arc::new(fs.clone()), dir.clone(), 400).unwrap();
        let mut layout = Vec::new();
        for payload in &payloads {
            let range = log.append_batch(std::slice::from_ref(payload)).unwrap();
            let segment = log.segments().last().unwrap().clone();
            let end = segment.len;
            let start = end - (HEADER_LEN + payload.len()) as u64;
            layout.push((range.start, segment.path.clone(), start..end));
        }
        log.sync().unwrap();
        let highest = layout.last().unwrap().0;
        drop(log);
        // Damage one file: flip bytes, or cut it short.
        let (_, target, _) = layout[damage_at.index(layout.len())].clone();
        let file_len = fs.len(&target).unwrap() as usize;
        let start = damage_at.index(file_len.max(1));
        let end = (start + damage_len).min(file_len);
        let mut bytes = fs.read_file(&target).unwrap().unwrap();
        if truncate {
            bytes.truncate(start);
        } else {
            for byte in &mut bytes[start..end] {
                *byte ^= 0x5A;
            }
        }
        fs.write_atomic(&target, &bytes).unwrap();
        let touched = |path: &PathBuf, range: &std::ops::Range<u64>| {
            *path == target && if truncate { range.end > start as u64 } else { range.start < end as u64 && range.end > start as u64 }
        };
        let (mut log, report) = SegmentLog::open(Arc::new(fs.clone()), dir.clone(), 400).unwrap();
        prop_assert!(report.next_seq > highest, "after recovery the next number is above every one handed out");
        let (records, _) = read_all(&fs, &log);
        let read: std::collections::BTreeMap<u64, Vec<u8>> = records.into_iter().map(|record| (record.seq, record.payload)).collect();
        for ((seq, path, range), payload) in layout.iter().zip(&payloads) {
            if touched(path, range) {
                continue;
            }
            prop_assert_eq!(read.get(seq), Some(payload), "intact record {} lost", seq);
        }
        let appended = log.append_batch(&[b"after".to_vec()]).unwrap();
        prop_assert!(appended.start > highest);
    }
}

#[test]
fn a_failed_sync_cuts_the_unsynced_records_and_starts_a_new_segment() {
    let fs = MemFs::default();
    let dir = PathBuf::from("/log");
    let (mut log, _) = SegmentLog::open(Arc::new(fs.clone()), dir.clone(), 1 << 20).unwrap();
    log.append_batch(&[b"kept".to_vec()]).unwrap();
    log.sync().unwrap();
    let refused = log.append_batch(&[b"never acknowledged".to_vec()]).unwrap();
    fs.fail_next_sync();
    assert!(matches!(log.sync(), Err(super::LogError::Io { action: "sync", .. })));
    let later = log.append_batch(&[b"later".to_vec()]).unwrap();
    log.sync().unwrap();
    assert!(later.start > refused.start, "the refused record's number is not reused");
    assert_eq!(log.segments().len(), 2, "a new segment after the failed sync");
    let (records, damaged) = read_all(&fs, &log);
    assert_eq!(damaged, 0);
    let payloads: Vec<&[u8]> = records.iter().map(|record| record.payload.as_slice()).collect();
    assert_eq!(payloads, [b"kept".as_slice(), b"later"], "the unsynced record is gone, the rest is intact");
}
