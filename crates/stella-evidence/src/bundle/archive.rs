//! The deterministic tar writer with its compressors, and the compressed-stream sniffer of the reader.
use std::io::{self, BufRead, BufReader, Cursor, Read, Write};

use crate::BundleError;
use crate::file_set::{ContentDigest, DigestWriter};

/// gzip level: fixed, as the bytes of a bundle depend on it (1: fastest; OTLP still shrinks several times).
const GZIP_LEVEL: u32 = 1;
/// zstd level: fixed, as the bytes of a bundle depend on it.
const ZSTD_LEVEL: i32 = 1;
/// The largest zstd window the reader accepts (2^24 = 16 MiB; our writer uses far less), bounding its memory.
const ZSTD_MAX_WINDOW_LOG: u32 = 24;
/// Read buffer in front of the decompressors.
const READ_BUFFER_BYTES: usize = 256 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a bundle is compressed.
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

/// One file of the archive: its name, exact size and content.
pub(crate) struct ArchiveEntry<'a> {
    pub name: &'static str,
    pub size: u64,
    pub data: Box<dyn Read + 'a>,
}

/// Writes `entries` (already in their final order) as a compressed tar to `out`; returns the digest of the
/// compressed bytes.
pub(crate) fn write_archive(
    entries: Vec<ArchiveEntry<'_>>,
    compression: Compression,
    out: impl Write,
) -> io::Result<ContentDigest> {
    let mut tar = tar::Builder::new(Encoder::new(DigestWriter::new(out), compression)?);
    for entry in entries {
        tar.append(&header(entry.name, entry.size)?, entry.data.take(entry.size))?;
    }
    let (mut out, digest) = tar.into_inner()?.finish()?.finish();
    out.flush()?;
    Ok(digest)
}

/// A ustar header with every field that could vary fixed.
fn header(name: &str, size: u64) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
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
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?),
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

/// The decompressed stream of `reader`, gzip or zstd by its magic bytes.
pub(crate) fn decompress<'a>(reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>, BundleError> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let mut magic = [0u8; 4];
    let magic_len = read_up_to(&mut buffered, &mut magic).map_err(|source| BundleError::Archive { source })?;
    let whole: Box<dyn BufRead + 'a> = Box::new(Cursor::new(magic[..magic_len].to_vec()).chain(buffered));
    if magic[..magic_len].starts_with(&GZIP_MAGIC) {
        return Ok(Box::new(flate2::bufread::GzDecoder::new(whole)));
    }
    if magic[..magic_len] == ZSTD_MAGIC {
        let mut decoder =
            zstd::stream::read::Decoder::with_buffer(whole).map_err(|source| BundleError::Archive { source })?;
        decoder.window_log_max(ZSTD_MAX_WINDOW_LOG).map_err(|source| BundleError::Archive { source })?;
        return Ok(Box::new(decoder));
    }
    Err(BundleError::UnknownCompression)
}

/// Fills `buffer` unless the input ends first; returns how much was read.
fn read_up_to(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(compression: Compression) -> Vec<u8> {
        let entries = vec![ArchiveEntry { name: "a.txt", size: 3, data: Box::new(&b"abc"[..]) }];
        let mut out = Vec::new();
        write_archive(entries, compression, &mut out).unwrap();
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
    fn other_inputs_are_not_bundles() {
        for input in [&b""[..], b"\x1f", b"PK\x03\x04", b"ustar"] {
            assert!(matches!(decompress(input), Err(BundleError::UnknownCompression)));
        }
    }
}
