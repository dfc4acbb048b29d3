use std::io::Read;

use super::framing::{FrameCounter, FramingError, MAX_RECORD_BYTES};
use super::layout::signal_of_path;
use super::manifest::BundleManifest;
use crate::archive::{PayloadEntry, claim_declared, decompress, read_declared, read_signed_tar};
use crate::dsse::Signer;
use crate::file_set::{ExpectedFiles, Hasher, open_manifest};
use crate::keys::TrustStore;
use crate::payload_types::BUNDLE_MANIFEST;
use crate::{BundleError, Signal};

/// Bounds on what verification reads before and beyond what the signature covers (bundles and offline kits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest `manifest.dsse.json` or `manifest.json` read (they are read before the signature is
    /// checked). Default 16 MiB.
    pub max_manifest_bytes: u64,
    /// The largest record a bundle's payload file may frame (offline kits have no records). Default
    /// [`MAX_RECORD_BYTES`] (64 MiB).
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
    let is_layout_name = |name: &str| signal_of_path(name).is_some();
    let open = |envelope_json: &[u8], manifest_json: &[u8]| Opened::new(envelope_json, manifest_json, trust);
    let check = |opened: &mut Opened, entry: PayloadEntry<'_>| opened.check_payload(entry, limits, &mut on_payload);
    read_signed_tar(tar, limits, is_layout_name, open, check)?.finish()
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
    fn check_payload(
        &mut self,
        entry: PayloadEntry<'_>,
        limits: &Limits,
        on_payload: &mut impl FnMut(Signal, &[u8]) -> Result<(), BundleError>,
    ) -> Result<(), BundleError> {
        let name = entry.name;
        let Some(signal) = signal_of_path(name) else {
            return Err(BundleError::UnexpectedEntry { name: name.to_string() });
        };
        claim_declared(&mut self.expected, name, entry.size)?;
        let mut frames = FrameCounter::new(limits.max_record_bytes);
        let on_bytes = |chunk: &[u8]| {
            frames.feed(chunk);
            on_payload(signal, chunk)
        };
        read_declared(&self.expected, name, entry.data, on_bytes)?;
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
