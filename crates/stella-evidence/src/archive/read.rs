//! Reading a signed archive as one stream: the compressed-stream sniffer, then the tar entries in the order a
//! signed archive must have them, each checked before it is read.
use std::io::{self, BufRead, BufReader, Cursor, Read};

use crate::BundleError;
use crate::bundle::Limits;
use crate::file_set::{ENVELOPE_FILE, ExpectedFiles, MANIFEST_FILE, PathProblem, check_relative_path};

/// The largest zstd window the reader accepts (2^24 = 16 MiB; our writer uses far less), bounding its memory.
const ZSTD_MAX_WINDOW_LOG: u32 = 24;
/// Read buffer in front of the decompressors.
const READ_BUFFER_BYTES: usize = 256 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The decompressed stream of `reader`, gzip or zstd by its magic bytes.
pub(crate) fn decompress<'a>(reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>, BundleError> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let mut magic = [0u8; 4];
    let magic_len = read_up_to(&mut buffered, &mut magic).map_err(archive_error)?;
    let whole: Box<dyn BufRead + 'a> = Box::new(Cursor::new(magic[..magic_len].to_vec()).chain(buffered));
    if magic[..magic_len].starts_with(&GZIP_MAGIC) {
        return Ok(Box::new(flate2::bufread::GzDecoder::new(whole)));
    }
    if magic[..magic_len] == ZSTD_MAGIC {
        let mut decoder = zstd::stream::read::Decoder::with_buffer(whole).map_err(archive_error)?;
        decoder.window_log_max(ZSTD_MAX_WINDOW_LOG).map_err(archive_error)?;
        return Ok(Box::new(decoder));
    }
    Err(BundleError::UnknownCompression)
}

/// Fills `buffer` unless the input ends first; returns how much was read.
pub(super) fn read_up_to(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
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

/// One entry after the signed manifest, handed to the archive kind's own checks.
pub(crate) struct PayloadEntry<'a> {
    /// The name: UTF-8, a safe relative path, neither manifest file, after the previous entry's in byte order.
    pub name: &'a str,
    /// The size its tar header declares.
    pub size: u64,
    /// Its tar mode, when the header's mode field parses.
    pub mode: Option<u32>,
    /// Its content: at most `size` bytes.
    pub data: &'a mut dyn Read,
}

/// Reads a signed archive from the decompressed tar stream `tar`, entry by entry, never buffering more than
/// one manifest:
/// 1. every entry must be a regular file with a UTF-8 name: links, directories, devices and tar extension
///    headers are refused (read raw, so no extension header is ever read into memory);
/// 2. `manifest.dsse.json`, then `manifest.json`, each refused by its header size above
///    [`Limits::max_manifest_bytes`] before it is read, are handed to `open`, which verifies them, before any
///    other entry is read;
/// 3. every other entry must have a safe relative name, sorted after the previous one, and is handed to
///    `check` with the state `open` returned.
///
/// `is_layout_name` says whether a name can belong to this kind of archive: found where the envelope or the
/// manifest should be, such a name means that one is missing rather than that the name is unexpected.
pub(crate) fn read_signed_tar<T>(
    tar: impl Read,
    limits: &Limits,
    is_layout_name: impl Fn(&str) -> bool,
    open: impl FnOnce(&[u8], &[u8]) -> Result<T, BundleError>,
    mut check: impl FnMut(&mut T, PayloadEntry<'_>) -> Result<(), BundleError>,
) -> Result<T, BundleError> {
    let mut archive = tar::Archive::new(tar);
    let mut entries = archive.entries().map_err(archive_error)?.raw(true);
    let envelope_json = read_metadata(&mut entries, ENVELOPE_FILE, limits, &is_layout_name)?;
    let manifest_json = read_metadata(&mut entries, MANIFEST_FILE, limits, &is_layout_name)?;
    let mut opened = open(&envelope_json, &manifest_json)?;
    let mut previous: Option<String> = None;
    for entry in entries {
        let mut entry = entry.map_err(archive_error)?;
        let name = regular_file_name(&entry)?;
        if name == ENVELOPE_FILE || name == MANIFEST_FILE {
            return Err(BundleError::DuplicateEntry { name });
        }
        check_relative_path(&name).map_err(|problem| BundleError::UnsafePath { name: name.clone(), problem })?;
        check_order(previous.as_deref(), &name)?;
        let (size, mode) = (entry.size(), entry.header().mode().ok());
        check(&mut opened, PayloadEntry { name: &name, size, mode, data: &mut entry })?;
        previous = Some(name);
    }
    Ok(opened)
}

/// Claims the declared file `name` and compares the `size` its header declares with the signed one, before
/// any of its bytes are read: a header claiming more (a bomb) is refused whatever follows it.
pub(crate) fn claim_declared(expected: &mut ExpectedFiles, name: &str, size: u64) -> Result<(), BundleError> {
    let declared = expected.claim(name)?;
    if size != declared {
        return Err(BundleError::SizeMismatch { file: name.to_string(), expected: declared, actual: size });
    }
    Ok(())
}

/// Reads the claimed file `name` from `data` (at most its declared size), passing every chunk to `on_bytes`,
/// and checks its digest; content ending before the size its header declared is a truncated archive.
pub(crate) fn read_declared(
    expected: &ExpectedFiles,
    name: &str,
    data: &mut dyn Read,
    on_bytes: impl FnMut(&[u8]) -> Result<(), BundleError>,
) -> Result<(), BundleError> {
    expected.check(name, data, on_bytes, archive_error).map_err(|error| match error {
        // claim_declared checked the header promised the declared size, so fewer bytes mean the archive ends.
        BundleError::SizeMismatch { file, .. } => truncated(&file),
        other => other,
    })
}

/// Reads the next entry, which must be the manifest file `expected`, refusing it by its header size before
/// reading if it is larger than the limit.
fn read_metadata<R: Read>(
    entries: &mut tar::Entries<'_, R>,
    expected: &str,
    limits: &Limits,
    is_layout_name: &impl Fn(&str) -> bool,
) -> Result<Vec<u8>, BundleError> {
    let Some(entry) = entries.next() else { return Err(BundleError::MissingEntry { name: expected.to_string() }) };
    let mut entry = entry.map_err(archive_error)?;
    let name = regular_file_name(&entry)?;
    expect_name(&name, expected, is_layout_name)?;
    let size = entry.size();
    if size > limits.max_manifest_bytes {
        return Err(BundleError::EntryTooLarge { name, size, limit: limits.max_manifest_bytes });
    }
    let mut bytes = Vec::new();
    (&mut entry).take(size).read_to_end(&mut bytes).map_err(archive_error)?;
    if bytes.len() as u64 != size {
        return Err(truncated(&name));
    }
    Ok(bytes)
}

/// The name of a regular-file entry; refuses links, directories, devices, extension headers and non-UTF-8.
fn regular_file_name(entry: &tar::Entry<'_, impl Read>) -> Result<String, BundleError> {
    let name_bytes = entry.path_bytes();
    let Ok(name) = std::str::from_utf8(&name_bytes) else {
        let name = String::from_utf8_lossy(&name_bytes).into_owned();
        return Err(BundleError::UnsafePath { name, problem: PathProblem::NotUtf8 });
    };
    let entry_type = entry.header().entry_type();
    if !entry_type.is_file() {
        return Err(BundleError::NotRegularFile { name: name.to_string(), entry_type: entry_type.as_byte() });
    }
    Ok(name.to_string())
}

/// Entries must be strictly sorted by name, which also refuses repeats.
fn check_order(previous: Option<&str>, name: &str) -> Result<(), BundleError> {
    match previous {
        Some(previous) if previous == name => Err(BundleError::DuplicateEntry { name: name.to_string() }),
        Some(previous) if previous > name => {
            Err(BundleError::OutOfOrder { name: name.to_string(), previous: previous.to_string() })
        }
        _ => Ok(()),
    }
}

/// `name` must be the manifest file `expected`: an unsafe name is refused as such, the envelope again is a
/// repeat, and another name of the layout means `expected` is missing.
fn expect_name(name: &str, expected: &str, is_layout_name: &impl Fn(&str) -> bool) -> Result<(), BundleError> {
    if name == expected {
        return Ok(());
    }
    check_relative_path(name).map_err(|problem| BundleError::UnsafePath { name: name.to_string(), problem })?;
    if expected == MANIFEST_FILE && name == ENVELOPE_FILE {
        return Err(BundleError::DuplicateEntry { name: name.to_string() });
    }
    if name == ENVELOPE_FILE || name == MANIFEST_FILE || is_layout_name(name) {
        return Err(BundleError::MissingEntry { name: expected.to_string() });
    }
    Err(BundleError::UnexpectedEntry { name: name.to_string() })
}

fn truncated(name: &str) -> BundleError {
    let message = format!("the archive ends inside {name}");
    BundleError::Archive { source: io::Error::new(io::ErrorKind::UnexpectedEof, message) }
}

fn archive_error(source: io::Error) -> BundleError {
    BundleError::Archive { source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_inputs_are_not_archives() {
        for input in [&b""[..], b"\x1f", b"PK\x03\x04", b"ustar"] {
            assert!(matches!(decompress(input), Err(BundleError::UnknownCompression)));
        }
    }
}
