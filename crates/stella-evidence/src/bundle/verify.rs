use std::io::Read;

use super::archive::decompress;
use super::framing::{FrameCounter, FramingError, MAX_RECORD_BYTES};
use super::layout::signal_of_path;
use super::manifest::BundleManifest;
use crate::dsse::Signer;
use crate::file_set::{
    ENVELOPE_FILE, ExpectedFiles, Hasher, MANIFEST_FILE, PathProblem, check_relative_path, open_manifest,
};
use crate::keys::TrustStore;
use crate::payload_types::BUNDLE_MANIFEST;
use crate::{BundleError, Signal};

/// Bounds on what verification reads before and beyond what the signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest `manifest.dsse.json` or `manifest.json` read (they are read before the signature is
    /// checked). Default 16 MiB.
    pub max_manifest_bytes: u64,
    /// The largest record a payload file may frame. Default [`MAX_RECORD_BYTES`] (64 MiB).
    pub max_record_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_manifest_bytes: 16 * 1024 * 1024, max_record_bytes: MAX_RECORD_BYTES }
    }
}

/// A bundle whose signature, payload type, key trust and every file verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBundle {
    /// The verified manifest: tenant, window, per-signal files and counts, times, sources.
    pub manifest: BundleManifest,
    /// Who signed it (and whether the signature is integrity-only).
    pub signer: Signer,
    /// Hex SHA-256 of `manifest.json`.
    pub manifest_sha256: String,
}

/// Verifies a bundle read as a stream from `reader` (see the [module documentation](super) for each step).
pub fn verify_bundle(reader: impl Read, trust: &TrustStore, limits: &Limits) -> Result<VerifiedBundle, BundleError> {
    verify_with(reader, trust, limits, |_, _| Ok(()))
}

/// Where verification stands: what the next entry must be.
enum Stage {
    Envelope,
    Manifest { envelope_json: Vec<u8> },
    Payload(Box<Opened>),
}

/// The verified manifest and the files it declares.
struct Opened {
    manifest: BundleManifest,
    signer: Signer,
    manifest_sha256: String,
    expected: ExpectedFiles,
}

/// Verifies the bundle, passing every chunk of payload file bytes to `on_payload` as it is read (before the
/// file's digest is known: a caller keeps them only once this returned `Ok`).
pub(crate) fn verify_with(
    reader: impl Read,
    trust: &TrustStore,
    limits: &Limits,
    on_payload: impl FnMut(Signal, &[u8]) -> Result<(), BundleError>,
) -> Result<VerifiedBundle, BundleError> {
    verify_tar(decompress(reader)?, trust, limits, on_payload)
}

/// Verifies the decompressed tar stream.
fn verify_tar(
    tar: impl Read,
    trust: &TrustStore,
    limits: &Limits,
    mut on_payload: impl FnMut(Signal, &[u8]) -> Result<(), BundleError>,
) -> Result<VerifiedBundle, BundleError> {
    let mut archive = tar::Archive::new(tar);
    // Raw entries: GNU long names and PAX headers come back as entries of their own (and are refused as not
    // regular files) instead of being read into memory whatever their size.
    let entries = archive.entries().map_err(archive_error)?.raw(true);
    let mut stage = Stage::Envelope;
    let mut previous: Option<String> = None;
    for entry in entries {
        let mut entry = entry.map_err(archive_error)?;
        let name = regular_file_name(&entry)?;
        check_order(previous.as_deref(), &name)?;
        stage = match stage {
            Stage::Envelope => {
                expect_name(&name, ENVELOPE_FILE)?;
                Stage::Manifest { envelope_json: read_metadata(&mut entry, &name, limits)? }
            }
            Stage::Manifest { envelope_json } => {
                expect_name(&name, MANIFEST_FILE)?;
                let manifest_json = read_metadata(&mut entry, &name, limits)?;
                Stage::Payload(Box::new(Opened::new(&envelope_json, &manifest_json, trust)?))
            }
            Stage::Payload(mut opened) => {
                opened.check_payload(&name, &mut entry, limits, &mut on_payload)?;
                Stage::Payload(opened)
            }
        };
        previous = Some(name);
    }
    match stage {
        Stage::Envelope => Err(BundleError::MissingEntry { name: ENVELOPE_FILE.to_string() }),
        Stage::Manifest { .. } => Err(BundleError::MissingEntry { name: MANIFEST_FILE.to_string() }),
        Stage::Payload(opened) => opened.finish(),
    }
}

impl Opened {
    fn new(envelope_json: &[u8], manifest_json: &[u8], trust: &TrustStore) -> Result<Opened, BundleError> {
        let (manifest, signer): (BundleManifest, Signer) =
            open_manifest(envelope_json, Some(manifest_json), trust, BUNDLE_MANIFEST)?;
        manifest.validate()?;
        let declared = manifest.files.iter().map(|file| (file.path.as_str(), file.sha256.as_str(), file.size));
        let expected = ExpectedFiles::new(declared)?;
        Ok(Opened { manifest, signer, manifest_sha256: Hasher::digest(manifest_json).sha256, expected })
    }

    /// Checks one payload file: declared, same size before reading, same digest, sound framing.
    fn check_payload<R: Read>(
        &mut self,
        name: &str,
        entry: &mut tar::Entry<'_, R>,
        limits: &Limits,
        on_payload: &mut impl FnMut(Signal, &[u8]) -> Result<(), BundleError>,
    ) -> Result<(), BundleError> {
        let Some(signal) = signal_of_path(name) else { return Err(unknown_entry(name)) };
        let declared_size = self.expected.claim(name)?;
        if entry.size() != declared_size {
            return Err(BundleError::SizeMismatch {
                file: name.to_string(),
                expected: declared_size,
                actual: entry.size(),
            });
        }
        let mut frames = FrameCounter::new(limits.max_record_bytes);
        let on_bytes = |chunk: &[u8]| {
            frames.feed(chunk);
            on_payload(signal, chunk)
        };
        self.expected.check(name, &mut *entry, on_bytes, archive_error).map_err(|error| match error {
            // The header promised the declared size, so fewer bytes mean the archive ends early.
            BundleError::SizeMismatch { file, .. } => truncated(&file),
            other => other,
        })?;
        let framing = |source| BundleError::Framing { file: name.to_string(), source };
        let found = frames.finish().map_err(framing)?;
        let declared = self.manifest.file(signal).map_or(0, |file| file.records);
        if found != declared {
            return Err(framing(FramingError::CountMismatch { declared, found }));
        }
        Ok(())
    }

    fn finish(self) -> Result<VerifiedBundle, BundleError> {
        self.expected.finish()?;
        Ok(VerifiedBundle { manifest: self.manifest, signer: self.signer, manifest_sha256: self.manifest_sha256 })
    }
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

/// `name` must be `expected`; a known layout name in its place means `expected` is missing.
fn expect_name(name: &str, expected: &str) -> Result<(), BundleError> {
    if name == expected {
        return Ok(());
    }
    let is_layout_name = name == ENVELOPE_FILE || name == MANIFEST_FILE || signal_of_path(name).is_some();
    if is_layout_name {
        return Err(BundleError::MissingEntry { name: expected.to_string() });
    }
    Err(unknown_entry(name))
}

/// Why a name outside the layout is refused: unsafe, or merely unexpected.
fn unknown_entry(name: &str) -> BundleError {
    match check_relative_path(name) {
        Err(problem) => BundleError::UnsafePath { name: name.to_string(), problem },
        Ok(()) => BundleError::UnexpectedEntry { name: name.to_string() },
    }
}

/// Reads a manifest or envelope entry, refusing it by its header size before reading if it is too large.
fn read_metadata<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str, limits: &Limits) -> Result<Vec<u8>, BundleError> {
    let size = entry.size();
    if size > limits.max_manifest_bytes {
        return Err(BundleError::EntryTooLarge { name: name.to_string(), size, limit: limits.max_manifest_bytes });
    }
    let mut bytes = Vec::new();
    entry.take(size).read_to_end(&mut bytes).map_err(archive_error)?;
    if bytes.len() as u64 != size {
        return Err(truncated(name));
    }
    Ok(bytes)
}

fn truncated(name: &str) -> BundleError {
    let message = format!("the archive ends inside {name}");
    BundleError::Archive { source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, message) }
}

fn archive_error(source: std::io::Error) -> BundleError {
    BundleError::Archive { source }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::io::{self, Cursor};
    use std::rc::Rc;

    use super::*;
    use crate::bundle::{BundleHeader, BundleWriter, Compression, RecordFacts, Window};
    use crate::keys::SigningKey;

    /// Counts the bytes the verifier pulls from the tar stream.
    struct Counting<R> {
        inner: R,
        read: Rc<Cell<u64>>,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            let read = self.inner.read(buffer)?;
            self.read.set(self.read.get() + read as u64);
            Ok(read)
        }
    }

    /// A one-record bundle, uncompressed.
    struct Sample {
        tar: Vec<u8>,
        /// Name and content of each entry.
        entries: Vec<(String, Vec<u8>)>,
        trust: TrustStore,
    }

    fn bundle() -> Sample {
        let key = SigningKey::from_ed25519_seed(&[4; 32]);
        let header = BundleHeader {
            tenant: "t".into(),
            window: Window { start: jiff::Timestamp::UNIX_EPOCH, end: jiff::Timestamp::MAX },
            profile: "forensic".into(),
            redaction_profiles: Vec::new(),
            generator: "test".into(),
        };
        let mut writer = BundleWriter::new(header, std::env::temp_dir()).unwrap();
        writer.add_record(Signal::Traces, &[7; 100], RecordFacts::default()).unwrap();
        let mut compressed = Vec::new();
        writer.finish(&key, Compression::Gzip, &mut compressed).unwrap();
        let mut tar = Vec::new();
        decompress(compressed.as_slice()).unwrap().read_to_end(&mut tar).unwrap();
        let mut entries = Vec::new();
        for entry in tar::Archive::new(tar.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            entries.push((String::from_utf8(entry.path_bytes().to_vec()).unwrap(), data));
        }
        Sample { tar, entries, trust: TrustStore::from_iter([key.trusted_key()]) }
    }

    /// A ustar header for `name` claiming `size` bytes.
    fn header(name: &str, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_size(size);
        header.set_cksum();
        header
    }

    /// The signed envelope and manifest, then a header for `otlp/traces.pb` claiming `size` bytes.
    fn metadata_then_payload_header(entries: &[(String, Vec<u8>)], size: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (name, data) in &entries[..2] {
            bytes.extend_from_slice(header(name, data.len() as u64).as_bytes());
            bytes.extend_from_slice(data);
            bytes.resize(bytes.len().next_multiple_of(512), 0);
        }
        bytes.extend_from_slice(header("otlp/traces.pb", size).as_bytes());
        bytes
    }

    #[test]
    fn an_endless_payload_is_refused_at_its_header() {
        let Sample { entries, trust, .. } = bundle();
        let prefix = metadata_then_payload_header(&entries, 1 << 40);
        let read = Rc::new(Cell::new(0));
        let endless = Counting { inner: Cursor::new(prefix.clone()).chain(io::repeat(0)), read: read.clone() };
        let error = verify_tar(endless, &trust, &Limits::default(), |_, _| Ok(())).unwrap_err();
        assert!(matches!(error, BundleError::SizeMismatch { actual: 1099511627776, .. }), "{error}");
        assert!(read.get() <= prefix.len() as u64, "read {} bytes past the header", read.get() - prefix.len() as u64);
    }

    #[test]
    fn nothing_after_the_end_of_the_archive_is_read() {
        let Sample { tar, trust, .. } = bundle();
        let read = Rc::new(Cell::new(0));
        let endless = Counting { inner: Cursor::new(tar.clone()).chain(io::repeat(0)), read: read.clone() };
        verify_tar(endless, &trust, &Limits::default(), |_, _| Ok(())).unwrap();
        assert!(read.get() <= tar.len() as u64);
    }

    #[test]
    fn a_payload_cut_short_is_a_truncated_archive() {
        let Sample { tar, entries, trust } = bundle();
        let mut cut = metadata_then_payload_header(&entries, entries[2].1.len() as u64);
        cut.extend_from_slice(&entries[2].1[..50]);
        for truncated in [cut.as_slice(), &tar[..700]] {
            let error = verify_tar(truncated, &trust, &Limits::default(), |_, _| Ok(())).unwrap_err();
            let is_end_of_file =
                matches!(&error, BundleError::Archive { source } if source.kind() == io::ErrorKind::UnexpectedEof);
            assert!(is_end_of_file, "{error}");
            assert_eq!(error.class(), crate::ErrorClass::Malformed);
        }
    }
}
