//! The data directory's lock, `<data-dir>/stella.lock`: a running server holds it exclusively (and writes
//! its pid into it) for as long as it runs; offline commands that change the directory take it
//! exclusively too and so refuse while a server runs; read-only ones take it shared and, when they
//! cannot, know they read a live directory. The lock is the operating system's (`flock`), so it goes
//! away with the process that held it, `kill -9` included.
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name.
pub const LOCK_FILE: &str = "stella.lock";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The data directory does not exist.
    #[error("data directory {path} does not exist; give the one the server uses with --data-dir")]
    Missing {
        /// The directory.
        path: PathBuf,
    },
    /// Another process holds the lock.
    #[error(
        "data directory {path} is in use by a running server{holder}; stop it first, or use --server URL to act through it"
    )]
    Busy {
        /// The directory.
        path: PathBuf,
        /// ` (pid N)` when the holder wrote its pid.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock data directory {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl LockError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            LockError::Missing { .. } => "data_dir.missing",
            LockError::Busy { .. } => "data_dir.busy",
            LockError::Io { .. } => "data_dir.io",
        }
    }
}

/// A held lock of a data directory; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// How a reader holds the directory.
#[derive(Debug)]
pub enum ReadAccess {
    /// No server runs: the directory holds still while the lock is held.
    Quiet(DataDirLock),
    /// A server runs (its pid, if it wrote one): what is read may change while it is read.
    Live(Option<u32>),
}

fn open(dir: &Path, create: bool) -> Result<(File, PathBuf), LockError> {
    if !dir.is_dir() {
        if !create {
            return Err(LockError::Missing { path: dir.to_path_buf() });
        }
        std::fs::create_dir_all(dir).map_err(|source| LockError::Io { path: dir.to_path_buf(), source })?;
    }
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| LockError::Io { path: path.clone(), source })?;
    Ok((file, path))
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

impl DataDirLock {
    /// Takes `dir` for a server (creating it when missing) and writes this process's pid into the lock.
    pub fn for_server(dir: &Path) -> Result<DataDirLock, LockError> {
        let mut lock = DataDirLock::exclusive(dir, true)?;
        let path = dir.join(LOCK_FILE);
        let written = lock._file.set_len(0).and_then(|()| write!(lock._file, "{}", std::process::id()));
        written.map_err(|source| LockError::Io { path, source })?;
        Ok(lock)
    }

    /// Takes an existing `dir` for an offline command that changes it; refuses while a server runs.
    pub fn for_writer(dir: &Path) -> Result<DataDirLock, LockError> {
        DataDirLock::exclusive(dir, false)
    }

    fn exclusive(dir: &Path, create: bool) -> Result<DataDirLock, LockError> {
        let (mut file, path) = open(dir, create)?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(TryLockError::WouldBlock) => {
                let holder = holder_pid(&mut file).map(|pid| format!(" (pid {pid})")).unwrap_or_default();
                Err(LockError::Busy { path: dir.to_path_buf(), holder })
            }
            Err(TryLockError::Error(source)) => Err(LockError::Io { path, source }),
        }
    }

    /// Takes an existing `dir` for an offline command that only reads it.
    pub fn for_reader(dir: &Path) -> Result<ReadAccess, LockError> {
        let (mut file, path) = open(dir, false)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(ReadAccess::Quiet(DataDirLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(ReadAccess::Live(holder_pid(&mut file))),
            Err(TryLockError::Error(source)) => Err(LockError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_keeps_writers_out_and_readers_know_it_is_live() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(DataDirLock::for_writer(&dir.path().join("nope")), Err(LockError::Missing { .. })));
        let server = DataDirLock::for_server(dir.path()).unwrap();
        match DataDirLock::for_writer(dir.path()) {
            Err(LockError::Busy { holder, .. }) => assert_eq!(holder, format!(" (pid {})", std::process::id())),
            other => panic!("a writer got in beside a server: {other:?}"),
        }
        assert!(matches!(DataDirLock::for_reader(dir.path()).unwrap(), ReadAccess::Live(Some(_))));
        drop(server);
        let writer = DataDirLock::for_writer(dir.path()).unwrap();
        assert!(
            matches!(DataDirLock::for_server(dir.path()), Err(LockError::Busy { .. })),
            "nor a server beside a writer"
        );
        drop(writer);
        assert!(matches!(DataDirLock::for_reader(dir.path()).unwrap(), ReadAccess::Quiet(_)));
    }
}
