use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, Write};
use std::path::PathBuf;

use super::{KitFile, KitSource, KitSummary};
use crate::WriteError;
use crate::archive::{ArchiveEntry, Compression, EXECUTABLE_MODE, FILE_MODE, write_archive};
use crate::file_set::{
    ContentDigest, ENVELOPE_FILE, FileSetBuilder, Hasher, MANIFEST_FILE, PathProblem, digest_reader, sign_manifest,
};
use crate::keys::SigningKey;
use crate::payload_types::OFFLINE_KIT_MANIFEST;

/// Read buffer when hashing a file source.
const HASH_BUFFER_BYTES: usize = 256 * 1024;

/// A kit file, hashed and ready to be copied into the archive.
struct Hashed {
    data: Box<dyn Read>,
    origin: Option<PathBuf>,
    digest: ContentDigest,
    executable: bool,
}

/// Writes the offline kit of `files` to `out` (flushed, not closed): hashes every file (streaming file
/// sources), signs their manifest with `key` as
/// [`OFFLINE_KIT_MANIFEST`](crate::payload_types::OFFLINE_KIT_MANIFEST), then writes the deterministic
/// archive (layout in the [module documentation](super)). The order of `files` does not matter.
///
/// Refused before anything is written: an unsafe, reserved, repeated or nested path, a path ustar cannot
/// hold, an unreadable file. A file source that changes between hashing and copying fails the build with
/// [`WriteError::SourceChanged`] after part of the archive was written: write to a temporary file and
/// keep it only when this returns `Ok`. File sources stay open until the archive is written.
pub fn build(
    files: Vec<KitFile>,
    key: &SigningKey,
    compression: Compression,
    out: impl Write,
) -> Result<KitSummary, WriteError> {
    let mut set = FileSetBuilder::default();
    let mut hashed = BTreeMap::new();
    for KitFile { path, source, executable } in files {
        if path == ENVELOPE_FILE || path == MANIFEST_FILE {
            return Err(WriteError::InvalidPath { path, problem: PathProblem::Reserved });
        }
        let file = Hashed::new(source, &path, executable)?;
        set.add_digest(&path, file.digest.clone())?;
        hashed.insert(path, file);
    }
    let manifest = set.into_manifest();
    let signed = sign_manifest(&manifest, OFFLINE_KIT_MANIFEST, key)?;

    let mut entries = vec![
        ArchiveEntry::new(ENVELOPE_FILE, signed.envelope_json.len() as u64, signed.envelope_json.as_slice()),
        ArchiveEntry::new(MANIFEST_FILE, signed.manifest_json.len() as u64, signed.manifest_json.as_slice()),
    ];
    // Sorted by path, as the manifest is.
    for (name, file) in hashed {
        entries.push(ArchiveEntry {
            name,
            mode: if file.executable { EXECUTABLE_MODE } else { FILE_MODE },
            size: file.digest.size,
            sha256: Some(file.digest.sha256),
            origin: file.origin,
            data: file.data,
        });
    }
    let archive = write_archive(entries, compression, out, "write the offline kit")?;
    Ok(KitSummary { manifest, signer: signed.signer, archive_sha256: archive.sha256, archive_bytes: archive.size })
}

impl Hashed {
    /// Hashes the source of the kit file `path`: the bytes, or the file read to its end and rewound.
    fn new(source: KitSource, path: &str, executable: bool) -> Result<Hashed, WriteError> {
        match source {
            KitSource::Bytes(bytes) => {
                let digest = Hasher::digest(&bytes);
                Ok(Hashed { data: Box::new(Cursor::new(bytes)), origin: None, digest, executable })
            }
            KitSource::File(origin) => {
                let read_error =
                    |source| WriteError::ReadSource { name: path.to_string(), origin: Some(origin.clone()), source };
                let mut file = File::open(&origin).map_err(read_error)?;
                let digest =
                    digest_reader(BufReader::with_capacity(HASH_BUFFER_BYTES, &mut file)).map_err(read_error)?;
                file.rewind().map_err(read_error)?;
                Ok(Hashed { data: Box::new(file), origin: Some(origin), digest, executable })
            }
        }
    }
}
