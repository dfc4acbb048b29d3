//! The deterministic tar writer and its compressors.
use std::io::{self, Read, Write};
use std::path::PathBuf;

use super::read::read_up_to;
use crate::WriteError;
use crate::error::{SourceChange, write_io};
use crate::file_set::{ContentDigest, DigestWriter, Hasher};

/// gzip level: fixed, as the bytes of an archive depend on it (1: fastest; OTLP still shrinks several times).
const GZIP_LEVEL: u32 = 1;
/// zstd level: fixed, as the bytes of an archive depend on it.
const ZSTD_LEVEL: i32 = 1;
/// Bytes copied from an entry's source per read.
const COPY_BUFFER_BYTES: usize = 256 * 1024;
/// The tar block size: every header and every entry's padded content is a multiple of it.
const BLOCK_BYTES: u64 = 512;
/// A tar archive ends with two zero blocks.
const END_OF_ARCHIVE: [u8; 2 * BLOCK_BYTES as usize] = [0; 2 * BLOCK_BYTES as usize];

/// The mode of an ordinary entry (`rw-r--r--`).
pub(crate) const FILE_MODE: u32 = 0o644;
/// The mode of an executable entry (`rwxr-xr-x`): an offline kit's binary and scripts.
pub(crate) const EXECUTABLE_MODE: u32 = 0o755;

/// How a bundle or offline kit is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// gzip (`.tar.gz`), readable everywhere; the default.
    #[default]
    Gzip,
    /// zstd (`.tar.zst`), several times faster to write and read.
    Zstd,
}

impl Compression {
    /// The name used in options and URLs: `gzip` or `zstd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// The file name extension: `tar.gz` or `tar.zst`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => "tar.gz",
            Compression::Zstd => "tar.zst",
        }
    }
}

/// One file of the archive: its name, mode, exact size and content.
pub(crate) struct ArchiveEntry<'a> {
    /// The entry name: a relative, `/`-separated path.
    pub name: String,
    /// [`FILE_MODE`] or [`EXECUTABLE_MODE`].
    pub mode: u32,
    /// The exact number of bytes `data` yields; anything else fails the archive.
    pub size: u64,
    /// The SHA-256 `data` must have, when it was hashed before (checked while it is copied).
    pub sha256: Option<String>,
    /// The file `data` is read from, named in errors.
    pub origin: Option<PathBuf>,
    /// The content.
    pub data: Box<dyn Read + 'a>,
}

impl<'a> ArchiveEntry<'a> {
    /// A [`FILE_MODE`] entry of `size` bytes read from `data`, with no digest to check.
    pub(crate) fn new(name: &str, size: u64, data: impl Read + 'a) -> Self {
        ArchiveEntry { name: name.to_string(), mode: FILE_MODE, size, sha256: None, origin: None, data: Box::new(data) }
    }
}

/// Writes `entries` (already in their final order) as a compressed tar to `out` (flushed, not closed) and
/// returns the digest of the compressed bytes; `action` names the write in I/O errors (`write the bundle`).
///
/// Every header is built before the first byte is written, so a name ustar cannot hold fails early. An
/// entry whose source yields other bytes than its `size` (and `sha256`, when given) fails the archive with
/// [`WriteError::SourceChanged`]: what was written to `out` then is not a valid archive and must be discarded.
pub(crate) fn write_archive(
    entries: Vec<ArchiveEntry<'_>>,
    compression: Compression,
    out: impl Write,
    action: &'static str,
) -> Result<ContentDigest, WriteError> {
    let headers = entries.iter().map(header).collect::<Result<Vec<_>, _>>()?;
    let mut encoder = Encoder::new(DigestWriter::new(out), compression).map_err(write_io(action))?;
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    for (entry, header) in entries.into_iter().zip(&headers) {
        encoder.write_all(header.as_bytes()).map_err(write_io(action))?;
        copy_entry(entry, &mut encoder, &mut buffer, action)?;
    }
    encoder.write_all(&END_OF_ARCHIVE).map_err(write_io(action))?;
    let (mut out, digest) = encoder.finish().map_err(write_io(action))?.finish();
    out.flush().map_err(write_io(action))?;
    Ok(digest)
}

/// A ustar header with every field that could vary fixed.
fn header(entry: &ArchiveEntry<'_>) -> Result<tar::Header, WriteError> {
    let mut header = tar::Header::new_ustar();
    header.set_path(&entry.name).map_err(|source| WriteError::ArchiveName { name: entry.name.clone(), source })?;
    header.set_size(entry.size);
    header.set_mode(entry.mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
}

/// Copies exactly `entry.size` bytes of the entry's source, checks the source ends there (and has the
/// expected digest), and pads the content to a whole block.
fn copy_entry(
    entry: ArchiveEntry<'_>,
    out: &mut impl Write,
    buffer: &mut [u8],
    action: &'static str,
) -> Result<(), WriteError> {
    let ArchiveEntry { name, size, sha256, origin, mut data, .. } = entry;
    let read_error = |source| WriteError::ReadSource { name: name.clone(), origin: origin.clone(), source };
    let changed = |change| WriteError::SourceChanged { name: name.clone(), origin: origin.clone(), change };
    let mut hasher = sha256.as_ref().map(|_| Hasher::default());
    let mut copied = 0u64;
    while copied < size {
        let wanted = usize::try_from(size - copied).map_or(buffer.len(), |left| left.min(buffer.len()));
        let read = read_up_to(&mut data, &mut buffer[..wanted]).map_err(read_error)?;
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&buffer[..read]);
        }
        out.write_all(&buffer[..read]).map_err(write_io(action))?;
        copied += read as u64;
        if read < wanted {
            return Err(changed(SourceChange::Shrank { expected: size, actual: copied }));
        }
    }
    if read_up_to(&mut data, &mut buffer[..1]).map_err(read_error)? != 0 {
        return Err(changed(SourceChange::Grew { expected: size }));
    }
    if let (Some(expected), Some(hasher)) = (sha256, hasher) {
        let actual = hasher.finish().sha256;
        if actual != expected {
            return Err(changed(SourceChange::Content { expected, actual }));
        }
    }
    let padding = (BLOCK_BYTES - size % BLOCK_BYTES) % BLOCK_BYTES;
    out.write_all(&END_OF_ARCHIVE[..padding as usize]).map_err(write_io(action))
}

/// The zstd worker threads of a capture: the machine's cores, at most 4, at least 1.
fn zstd_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |cores| cores.get().clamp(1, 4) as u32)
}

/// A zstd stream compressing on `workers` threads. Streaming multi-threaded zstd writes the same bytes for
/// any number of workers from 1 up (zstd issues #2238, #2327), so an archive is the same on every machine;
/// only 0 workers (compressing in the caller's thread) would write other bytes, and it is never used.
fn zstd_encoder<W: Write>(out: W, workers: u32) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
    encoder.multithread(workers.max(1))?;
    Ok(encoder)
}

enum Encoder<W: Write> {
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(out: W, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            // GzBuilder writes mtime 0, no file name and OS "unknown": nothing depends on the machine or time.
            Compression::Gzip => {
                Encoder::Gzip(flate2::GzBuilder::new().write(out, flate2::Compression::new(GZIP_LEVEL)))
            }
            Compression::Zstd => Encoder::Zstd(zstd_encoder(out, zstd_workers())?),
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(encoder) => encoder.finish(),
            Encoder::Zstd(encoder) => encoder.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(encoder) => encoder.write(bytes),
            Encoder::Zstd(encoder) => encoder.write(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(encoder) => encoder.flush(),
            Encoder::Zstd(encoder) => encoder.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::decompress;

    fn archive(compression: Compression) -> Vec<u8> {
        let entries = vec![ArchiveEntry::new("a.txt", 3, &b"abc"[..])];
        let mut out = Vec::new();
        write_archive(entries, compression, &mut out, "write the test archive").unwrap();
        out
    }

    #[test]
    fn the_gzip_header_holds_no_time_and_no_name() {
        let bytes = archive(Compression::Gzip);
        assert_eq!(bytes[..4], [0x1f, 0x8b, 8, 0], "deflate, no flags (no name, no comment, no extra)");
        assert_eq!(bytes[4..8], [0, 0, 0, 0], "mtime 0");
        assert_eq!(bytes[9], 255, "OS unknown");
    }

    #[test]
    fn both_compressions_decompress_to_a_fixed_tar() {
        for compression in [Compression::Gzip, Compression::Zstd] {
            let mut tar = Vec::new();
            decompress(archive(compression).as_slice()).unwrap().read_to_end(&mut tar).unwrap();
            assert_eq!(tar.len(), 512 * 4, "header, one data block, two end blocks");
            let header = tar::Header::from_byte_slice(&tar[..512]);
            assert_eq!(header.path_bytes().as_ref(), b"a.txt");
            assert_eq!((header.mtime().unwrap(), header.uid().unwrap(), header.gid().unwrap()), (0, 0, 0));
            assert_eq!(header.mode().unwrap(), 0o644);
            assert_eq!(header.as_ustar().map(|ustar| ustar.username_bytes().len()), Some(0));
            assert_eq!(&tar[512..515], b"abc");
        }
    }

    #[test]
    fn zstd_writes_the_same_bytes_on_any_number_of_workers() {
        // Several zstd jobs' worth of OTLP-like text, so the workers do split the work.
        let data: Vec<u8> = (0..400_000u32)
            .flat_map(|n| format!("span {n} GET /api/cart/{} status {}\n", n % 977, 200 + n % 7).into_bytes())
            .collect();
        assert!(data.len() > 12 * 1024 * 1024, "{}", data.len());
        let compress = |workers| {
            let mut encoder = zstd_encoder(Vec::new(), workers).unwrap();
            for piece in data.chunks(COPY_BUFFER_BYTES) {
                encoder.write_all(piece).unwrap();
            }
            encoder.finish().unwrap()
        };
        let one = compress(1);
        assert_eq!(compress(2), one);
        assert_eq!(compress(4), one);
        assert_eq!(zstd::decode_all(one.as_slice()).unwrap(), data);
    }

    fn write_one(entry: ArchiveEntry<'_>) -> Result<ContentDigest, WriteError> {
        write_archive(vec![entry], Compression::Gzip, io::sink(), "write the test archive")
    }

    #[test]
    fn an_executable_entry_keeps_its_mode() {
        let mut entry = ArchiveEntry::new("bin/stella", 2, &b"#!"[..]);
        entry.mode = EXECUTABLE_MODE;
        let mut out = Vec::new();
        write_archive(vec![entry], Compression::Zstd, &mut out, "write the test archive").unwrap();
        let mut tar = Vec::new();
        decompress(out.as_slice()).unwrap().read_to_end(&mut tar).unwrap();
        assert_eq!(tar::Header::from_byte_slice(&tar[..512]).mode().unwrap(), 0o755);
    }

    #[test]
    fn a_source_that_is_shorter_longer_or_other_than_declared_fails_the_archive() {
        let origin = PathBuf::from("/tmp/source");
        let entry = |size, sha256: Option<String>, data: &'static [u8]| ArchiveEntry {
            sha256,
            origin: Some(origin.clone()),
            ..ArchiveEntry::new("bin/stella", size, data)
        };
        let error = write_one(entry(4, None, b"abc")).unwrap_err();
        assert!(matches!(
            &error,
            WriteError::SourceChanged { change: SourceChange::Shrank { expected: 4, actual: 3 }, .. }
        ));
        let message = error.to_string();
        assert!(message.contains("bin/stella") && message.contains("/tmp/source"), "{message}");
        let error = write_one(entry(2, None, b"abc")).unwrap_err();
        assert!(matches!(error, WriteError::SourceChanged { change: SourceChange::Grew { expected: 2 }, .. }));
        let error = write_one(entry(3, Some(Hasher::digest(b"abd").sha256), b"abc")).unwrap_err();
        assert!(matches!(error, WriteError::SourceChanged { change: SourceChange::Content { .. }, .. }), "{error}");
        assert_eq!(error.code(), "bundle.write.source_changed");
        write_one(entry(3, Some(Hasher::digest(b"abc").sha256), b"abc")).unwrap();
    }

    #[test]
    fn a_name_ustar_cannot_hold_is_refused_before_anything_is_written() {
        let name = "a".repeat(101);
        let mut out = Vec::new();
        let entries = vec![ArchiveEntry::new(&name, 0, io::empty())];
        let error = write_archive(entries, Compression::Gzip, &mut out, "write the test archive").unwrap_err();
        assert!(matches!(&error, WriteError::ArchiveName { name: refused, .. } if *refused == name), "{error}");
        assert!(out.is_empty());
    }
}
