//! The filesystem seam: everything the log does to disk goes through [`LogFs`], so tests can run the log
//! on a simulated disk that loses unsynced bytes at a "crash".
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A file opened for appending.
pub trait LogFile: Send {
    /// Appends all of `bytes`.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes everything appended so far durable (fdatasync).
    fn sync(&mut self) -> std::io::Result<()>;
}

/// The file operations the log needs.
pub trait LogFs: Send + Sync + 'static {
    /// The append handle type.
    type File: LogFile;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()>;
    /// The files (not directories) directly in `dir`.
    fn list(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>>;
    /// Opens `path` for appending, creating it if missing.
    fn open_append(&self, path: &Path) -> std::io::Result<Self::File>;
    /// Reads up to `len` bytes at `offset` (fewer at the end of the file).
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>>;
    /// The file's length.
    fn len(&self, path: &Path) -> std::io::Result<u64>;
    /// Cuts the file to `len` bytes, durably.
    fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()>;
    /// Deletes a file.
    fn remove(&self, path: &Path) -> std::io::Result<()>;
    /// The whole file, or `None` when it does not exist.
    fn read_file(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>>;
    /// Replaces `path` with `bytes` atomically and durably (temporary file, sync, rename, sync directory).
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl LogFile for File {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

fn sync_directory(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => File::open(parent)?.sync_all(),
        _ => Ok(()),
    }
}

impl LogFs for RealFs {
    type File = File;

    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn list(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.push(entry.path());
            }
        }
        Ok(files)
    }

    fn open_append(&self, path: &Path) -> std::io::Result<File> {
        let existed = path.exists();
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        if !existed {
            sync_directory(path)?;
        }
        Ok(file)
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut buffer = Vec::with_capacity(len);
        file.take(len as u64).read_to_end(&mut buffer)?;
        Ok(buffer)
    }

    fn len(&self, path: &Path) -> std::io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn remove(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)?;
        sync_directory(path)
    }

    fn read_file(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let temporary = path.with_extension("tmp");
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        sync_directory(path)
    }
}
