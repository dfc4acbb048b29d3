use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use super::{KitTrust, VerifiedKit};
use crate::BundleError;
use crate::archive::{EXECUTABLE_MODE, FILE_MODE, PayloadEntry, decompress, read_signed_tar};
use crate::bundle::Limits;
use crate::file_set::FileSetVerifier;
use crate::payload_types::OFFLINE_KIT_MANIFEST;
use crate::release::{self, KitRelease};

/// Buffer of each extracted file.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// The mode of the extracted kit directory.
const DIRECTORY_MODE: u32 = 0o755;

/// Verifies an offline kit read as a stream from `reader` (see the [module documentation](super) for what is
/// checked); nothing is written anywhere.
pub fn verify_kit(reader: impl Read, trust: &KitTrust<'_>, limits: &Limits) -> Result<VerifiedKit, BundleError> {
    read_kit(reader, trust, limits, None)
}

/// Verifies an offline kit read from `reader` (as [`verify_kit`] does) while extracting it into a new
/// directory `dest_dir`, which must not exist.
///
/// Files are written into a hidden staging directory beside `dest_dir` (same parent, so the final rename
/// cannot cross file systems), with mode 0755 for executables and 0644 otherwise; only once every check
/// passed is the staging directory (mode 0755) renamed to `dest_dir`. On any failure the staging directory
/// is removed and `dest_dir` is not created. The parent of `dest_dir` must exist.
pub fn extract_kit(
    reader: impl Read,
    trust: &KitTrust<'_>,
    limits: &Limits,
    dest_dir: &Path,
) -> Result<VerifiedKit, BundleError> {
    refuse_existing(dest_dir)?;
    let Some(name) = dest_dir.file_name() else {
        let source = io::Error::new(io::ErrorKind::InvalidInput, "the destination must end in a directory name");
        return Err(BundleError::Extract { path: dest_dir.to_path_buf(), source });
    };
    let parent = dest_dir.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{}.partial-", name.to_string_lossy()))
        .tempdir_in(parent)
        .map_err(extract_error(parent))?;
    // From here, dropping `staging` (on any error) removes it and everything extracted into it.
    let verified = read_kit(reader, trust, limits, Some(staging.path()))?;
    set_mode(staging.path(), DIRECTORY_MODE).map_err(extract_error(staging.path()))?;
    // Checked again: it may have appeared meanwhile. (rename(2) still replaces an *empty* directory created
    // in the instant between this check and the rename; a non-empty one makes the rename fail.)
    refuse_existing(dest_dir)?;
    fs::rename(staging.path(), dest_dir).map_err(extract_error(dest_dir))?;
    // The directory now lives at `dest_dir`: there is nothing left to remove.
    let _moved_to_dest = staging.keep();
    Ok(verified)
}

/// Verifies the kit, extracting each file under `staging` when given.
fn read_kit(
    reader: impl Read,
    trust: &KitTrust<'_>,
    limits: &Limits,
    staging: Option<&Path>,
) -> Result<VerifiedKit, BundleError> {
    let open = |envelope_json: &[u8], manifest_json: &[u8]| -> Result<Opened, BundleError> {
        let files = FileSetVerifier::open(envelope_json, Some(manifest_json), trust.kit, OFFLINE_KIT_MANIFEST)?;
        Ok(Opened { files, executables: BTreeSet::new(), release: KitRelease::default() })
    };
    let check = |opened: &mut Opened, entry: PayloadEntry<'_>| opened.check(entry, staging, limits);
    // Any name can be a kit file's: one found where the envelope or manifest belongs means that one is missing.
    let is_layout_name = |_: &str| true;
    let opened = read_signed_tar(decompress(reader)?, limits, is_layout_name, open, check)?;
    let verified = opened.files.finish()?;
    let carries_release = verified.manifest.files.iter().any(|file| file.path == release::KIT_ENVELOPE);
    let release = match (carries_release, trust.release) {
        (true, Some(release_trust)) => Some(release::check_in_kit(&verified.manifest, &opened.release, release_trust)?),
        (true, None) => return Err(BundleError::ReleaseNotChecked),
        (false, Some(_)) => return Err(BundleError::MissingEntry { name: release::KIT_ENVELOPE.to_string() }),
        (false, None) => None,
    };
    Ok(VerifiedKit { manifest: verified.manifest, signer: verified.signer, executables: opened.executables, release })
}

/// The verified manifest's files, the executables found so far and the release files kept.
struct Opened {
    files: FileSetVerifier,
    executables: BTreeSet<String>,
    release: KitRelease,
}

impl Opened {
    /// Checks one kit file: a kit mode, declared with this size (before reading), then its digest; keeps the
    /// bytes of the release's manifest, envelope and sums (capped as manifests are).
    fn check(&mut self, entry: PayloadEntry<'_>, staging: Option<&Path>, limits: &Limits) -> Result<(), BundleError> {
        let name = entry.name;
        let mode = match entry.mode {
            Some(mode @ (FILE_MODE | EXECUTABLE_MODE)) => mode,
            mode => return Err(BundleError::UnexpectedMode { name: name.to_string(), mode }),
        };
        self.files.claim_entry(name, entry.size)?;
        let kept = KitRelease::KEPT.contains(&name);
        if kept && entry.size > limits.max_manifest_bytes {
            let limit = limits.max_manifest_bytes;
            return Err(BundleError::EntryTooLarge { name: name.to_string(), size: entry.size, limit });
        }
        let release = &mut self.release;
        let mut keep = |chunk: &[u8]| {
            if kept {
                release.keep(name, chunk);
            }
        };
        match staging {
            None => self.files.read_entry(name, entry.data, |chunk| {
                keep(chunk);
                Ok(())
            })?,
            Some(root) => extract_entry(&self.files, root, entry, mode, keep)?,
        }
        if mode == EXECUTABLE_MODE {
            self.executables.insert(name.to_string());
        }
        Ok(())
    }
}

/// Writes the claimed `entry` under `root` with `mode` while its digest is checked.
fn extract_entry(
    files: &FileSetVerifier,
    root: &Path,
    entry: PayloadEntry<'_>,
    mode: u32,
    mut also: impl FnMut(&[u8]),
) -> Result<(), BundleError> {
    // Claimed, so declared by the signed manifest: a safe relative path. `root` is a fresh directory holding
    // only what this extraction created (directories and regular files, no links), so the path stays inside.
    let path = root.join(entry.name);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(extract_error(dir))?;
    }
    let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(extract_error(&path))?;
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
    files.read_entry(entry.name, entry.data, |chunk| {
        also(chunk);
        writer.write_all(chunk).map_err(extract_error(&path))
    })?;
    let file = writer.into_inner().map_err(|error| extract_error(&path)(error.into_error()))?;
    set_mode(&path, mode).map_err(extract_error(&path))?;
    file.sync_all().map_err(extract_error(&path))
}

/// Refuses a destination that exists (as anything, even a dangling link).
fn refuse_existing(dest_dir: &Path) -> Result<(), BundleError> {
    match fs::symlink_metadata(dest_dir) {
        Ok(_) => Err(BundleError::DestinationExists { path: dest_dir.to_path_buf() }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(BundleError::Extract { path: dest_dir.to_path_buf(), source }),
    }
}

fn extract_error(path: &Path) -> impl Fn(io::Error) -> BundleError + '_ {
    move |source| BundleError::Extract { path: path.to_path_buf(), source }
}

/// Sets the Unix permission bits of `path`.
#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Other systems have no Unix permission bits to set.
#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}
