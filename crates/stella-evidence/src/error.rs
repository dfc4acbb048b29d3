//! The errors of signed file sets and bundles: [`BundleError`] when reading or verifying, [`WriteError`] when
//! writing.
use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::ErrorClass;
use crate::Signal;
use crate::bundle::FramingError;
use crate::canonical::CanonicalError;
use crate::dsse::DsseError;
use crate::file_set::PathProblem;

/// Why a bundle or signed file set was refused. [`BundleError::class`] gives its stable code and exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The input starts with neither the gzip nor the zstd magic bytes.
    #[error("not a bundle: the input is neither gzip nor zstd compressed")]
    UnknownCompression,
    /// Reading or decompressing the archive failed (truncated, corrupt, or the input could not be read).
    #[error("cannot read the archive: {source}")]
    Archive {
        /// The reader's, decompressor's or tar parser's error.
        #[source]
        source: io::Error,
    },
    /// An entry name or declared path that could leave the target directory or is not in normal form.
    #[error("unsafe path {name:?} refused: {problem}")]
    UnsafePath {
        /// The name as found (lossy UTF-8).
        name: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// An entry that is not a regular file: a link, directory, device or extension header.
    #[error("entry {name:?} refused: tar type {:?} is not a regular file", char::from(*entry_type))]
    NotRegularFile {
        /// The entry name.
        name: String,
        /// The tar type flag.
        entry_type: u8,
    },
    /// An entry that is not part of the layout, or not declared by the signed manifest.
    #[error("unexpected entry {name:?}: not part of the bundle layout or not declared by the signed manifest")]
    UnexpectedEntry {
        /// The entry name.
        name: String,
    },
    /// An entry that appears twice.
    #[error("entry {name:?} appears twice")]
    DuplicateEntry {
        /// The entry name.
        name: String,
    },
    /// Entries are not in the byte order of their names (which puts the signed manifest first).
    #[error("entry {name:?} comes after {previous:?}; entries must be sorted by name")]
    OutOfOrder {
        /// The entry name.
        name: String,
        /// The entry before it.
        previous: String,
    },
    /// A manifest or envelope entry larger than [`Limits::max_manifest_bytes`](crate::Limits).
    #[error("entry {name:?} is {size} bytes, more than the {limit} accepted before its signature is checked")]
    EntryTooLarge {
        /// The entry name.
        name: String,
        /// Its declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An offline kit entry whose mode is neither 0644 nor 0755 (setuid, world-writable, unparsable...).
    #[error("entry {name:?} has mode {}; an offline kit holds only 0644 and 0755 files", describe_mode(*mode))]
    UnexpectedMode {
        /// The entry name.
        name: String,
        /// Its mode, if the tar header's mode field parses.
        mode: Option<u32>,
    },
    /// An offline kit that carries a signed release, verified without a key to check the release with.
    #[error(
        "the kit carries a release signed by its publisher (release/manifest.dsse.json); pass --release-key with the release signer's public key, from a trusted channel, to check it"
    )]
    ReleaseNotChecked,
    /// A required or declared entry is absent.
    #[error("entry {name:?} is missing")]
    MissingEntry {
        /// The entry name.
        name: String,
    },
    /// The envelope failed to parse or verify; its class is the envelope error's class.
    #[error("manifest.dsse.json: {source}")]
    Envelope {
        /// The DSSE error.
        #[from]
        source: DsseError,
    },
    /// The signed payload is not a manifest of the expected shape.
    #[error("the signed manifest is not a valid manifest: {source}")]
    Manifest {
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The manifest's format version is not one this build reads.
    #[error("manifest format version {version} is not supported; use a newer stella")]
    UnsupportedFormat {
        /// The version found.
        version: u32,
    },
    /// The signed manifest contradicts itself or the layout.
    #[error("the signed manifest is inconsistent: {reason}")]
    InvalidManifest {
        /// What is wrong.
        reason: &'static str,
    },
    /// A release's `SHA256SUMS` that does not list its files as its signed manifest does.
    #[error("SHA256SUMS: {reason}; the release's checksums and its signed manifest disagree")]
    InconsistentSums {
        /// What disagrees, with the line.
        reason: String,
    },
    /// A file's SHA-256 differs from the signed manifest's.
    #[error("{file}: sha256 is {actual}, the signed manifest says {expected}; the file was changed after signing")]
    DigestMismatch {
        /// The file.
        file: String,
        /// The digest the manifest declares.
        expected: String,
        /// The digest of the bytes found.
        actual: String,
    },
    /// The signed envelope verifies but its bytes are not the form every envelope is written in (RFC 8785,
    /// standard padded base64): a field renamed or dropped that the signature does not cover (`keyid`),
    /// or the payload in another base64 alphabet.
    #[error(
        "{file}: its bytes are not the canonical form the envelope was written in; the file was changed after signing"
    )]
    EnvelopeNotCanonical {
        /// The envelope file.
        file: String,
    },
    /// A file's size differs from the signed manifest's (found before reading it).
    #[error("{file}: {actual} bytes, the signed manifest says {expected}; the file was changed after signing")]
    SizeMismatch {
        /// The file.
        file: String,
        /// The size the manifest declares.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// A payload file whose digest matches but whose length-prefixed framing is broken.
    #[error("{file}: {source}")]
    Framing {
        /// The file.
        file: String,
        /// What is wrong with the framing.
        #[source]
        source: FramingError,
    },
    /// Reading a file of a file set failed.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The directory an offline kit was to be extracted into already exists.
    #[error("{} already exists; extract into a new directory (it is created) or remove it first", path.display())]
    DestinationExists {
        /// The destination directory.
        path: PathBuf,
    },
    /// Creating, writing or renaming a file or directory while extracting an offline kit failed. Nothing
    /// extracted is left behind.
    #[error("cannot extract into {}: {source}; check the directory exists, is writable and has space", path.display())]
    Extract {
        /// The file or directory being written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Writing or reading the spool of verified records failed.
    #[error("cannot spool verified records: {source}; check the spool directory's free space")]
    Spool {
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl BundleError {
    /// The failure class, which gives the stable code and exit code.
    pub fn class(&self) -> ErrorClass {
        match self {
            BundleError::DigestMismatch { .. }
            | BundleError::SizeMismatch { .. }
            | BundleError::EnvelopeNotCanonical { .. } => ErrorClass::DigestMismatch,
            BundleError::Envelope { source } => source.class(),
            BundleError::ReleaseNotChecked => ErrorClass::UntrustedKey,
            BundleError::Archive { source } => archive_error_class(source),
            BundleError::Read { .. }
            | BundleError::Spool { .. }
            | BundleError::DestinationExists { .. }
            | BundleError::Extract { .. } => ErrorClass::Io,
            BundleError::UnknownCompression
            | BundleError::UnsafePath { .. }
            | BundleError::NotRegularFile { .. }
            | BundleError::UnexpectedEntry { .. }
            | BundleError::DuplicateEntry { .. }
            | BundleError::OutOfOrder { .. }
            | BundleError::EntryTooLarge { .. }
            | BundleError::UnexpectedMode { .. }
            | BundleError::MissingEntry { .. }
            | BundleError::Manifest { .. }
            | BundleError::UnsupportedFormat { .. }
            | BundleError::InvalidManifest { .. }
            | BundleError::InconsistentSums { .. }
            | BundleError::Framing { .. } => ErrorClass::Malformed,
        }
    }

    /// The stable code, e.g. `bundle.digest_mismatch`.
    pub fn code(&self) -> &'static str {
        self.class().code()
    }

    /// The CLI exit code (10 to 15, see [`ErrorClass`]).
    pub fn exit_code(&self) -> u8 {
        self.class().exit_code()
    }
}

/// A tar mode as octal, or why there is none.
fn describe_mode(mode: Option<u32>) -> String {
    mode.map_or_else(|| "unreadable".to_string(), |mode| format!("{mode:04o}"))
}

/// Corrupt or truncated data (what decompressors and the tar parser report) is malformed; anything else is
/// the input failing to be read.
fn archive_error_class(error: &io::Error) -> ErrorClass {
    match error.kind() {
        io::ErrorKind::InvalidData
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::Other => ErrorClass::Malformed,
        _ => ErrorClass::Io,
    }
}

/// Why a bundle or signed file set could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// Writing the spool or the output failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A spool file could not be created.
    #[error("cannot create a spool file in {}: {source}; check the directory exists, is writable and has space", dir.display())]
    Spool {
        /// The spool directory.
        dir: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The window does not start before it ends.
    #[error("window start {start} is not before its end {end}")]
    InvalidWindow {
        /// The start.
        start: jiff::Timestamp,
        /// The end.
        end: jiff::Timestamp,
    },
    /// A record larger than the framing allows.
    #[error("a {signal} record of {len} bytes is larger than the {limit} a bundle holds")]
    RecordTooLarge {
        /// Its signal.
        signal: Signal,
        /// Its size.
        len: usize,
        /// The limit.
        limit: u64,
    },
    /// A record whose earliest time is after its latest.
    #[error("a {signal} record's min time {min} is after its max time {max}")]
    InvalidRecordTimes {
        /// Its signal.
        signal: Signal,
        /// The earliest item time given.
        min: u64,
        /// The latest item time given.
        max: u64,
    },
    /// A source chunk digest that is not 64 lowercase hex digits.
    #[error("source chunk digest {digest:?} is not a hex SHA-256 (64 lowercase hex digits)")]
    InvalidDigest {
        /// The digest given.
        digest: String,
    },
    /// A file set path that is not a safe relative path.
    #[error("path {path:?} refused: {problem}")]
    InvalidPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// A file set path given twice.
    #[error("path {path:?} was added twice")]
    DuplicatePath {
        /// The path given.
        path: String,
    },
    /// Two file set paths of which one would be the directory of the other (`bin` and `bin/stella`).
    #[error("paths {path:?} and {other:?} cannot both be files: one would be the directory of the other")]
    PathConflict {
        /// The path given.
        path: String,
        /// The path added before it.
        other: String,
    },
    /// A name a ustar header cannot hold (at most 100 bytes, or 255 split at a `/`).
    #[error(
        "cannot store {name:?} in the archive: {source}; use a path of at most 100 bytes, or 255 with a `/` to split at"
    )]
    ArchiveName {
        /// The entry name.
        name: String,
        /// The tar writer's error.
        #[source]
        source: io::Error,
    },
    /// Reading the content of an archive entry failed.
    #[error("cannot read {name}{}: {source}; check the file exists and is readable", read_from(origin))]
    ReadSource {
        /// The entry name.
        name: String,
        /// The file it is read from, if any.
        origin: Option<PathBuf>,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// An entry's source changed between hashing it for the signed manifest and copying it into the archive.
    /// The output written so far is not a valid archive: discard it.
    #[error(
        "{name}{} changed while the archive was written: {change}; \
         discard the output and build again once nothing writes the file",
        read_from(origin)
    )]
    SourceChanged {
        /// The entry name.
        name: String,
        /// The file it is read from, if any.
        origin: Option<PathBuf>,
        /// How it changed.
        change: SourceChange,
    },
    /// A number too large for an RFC 8785 manifest (JSON numbers are exact up to 2^53).
    #[error("{field} is {value}, beyond the 2^53 a manifest number holds exactly")]
    NumberTooLarge {
        /// Which total.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A release directory whose files disagree with each other (a missing binary, a `SHA256SUMS` that
    /// does not match), refused before it is signed.
    #[error("the release is inconsistent: {reason}; rebuild it with scripts/release.sh")]
    InconsistentRelease {
        /// What disagrees.
        reason: String,
    },
    /// The manifest cannot be written as canonical JSON.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
}

impl WriteError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            WriteError::Io { .. } => "bundle.write.io",
            WriteError::InconsistentRelease { .. } => "bundle.write.inconsistent_release",
            WriteError::Spool { .. } => "bundle.write.spool",
            WriteError::InvalidWindow { .. } => "bundle.write.invalid_window",
            WriteError::RecordTooLarge { .. } => "bundle.write.record_too_large",
            WriteError::InvalidRecordTimes { .. } => "bundle.write.invalid_record_times",
            WriteError::InvalidDigest { .. } => "bundle.write.invalid_digest",
            WriteError::InvalidPath { .. } => "bundle.write.invalid_path",
            WriteError::DuplicatePath { .. } => "bundle.write.duplicate_path",
            WriteError::PathConflict { .. } => "bundle.write.path_conflict",
            WriteError::ArchiveName { .. } => "bundle.write.archive_name",
            WriteError::ReadSource { .. } => "bundle.write.read_source",
            WriteError::SourceChanged { .. } => "bundle.write.source_changed",
            WriteError::NumberTooLarge { .. } => "bundle.write.number_too_large",
            WriteError::Canonical(_) => "bundle.write.canonical_json",
        }
    }
}

/// How an archive entry's source differed, while it was copied, from what was hashed for the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceChange {
    /// It ended early.
    Shrank {
        /// Bytes hashed.
        expected: u64,
        /// Bytes found.
        actual: u64,
    },
    /// It held more bytes.
    Grew {
        /// Bytes hashed.
        expected: u64,
    },
    /// Same size, other content.
    Content {
        /// Hex SHA-256 hashed.
        expected: String,
        /// Hex SHA-256 found.
        actual: String,
    },
}

impl fmt::Display for SourceChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceChange::Shrank { expected, actual } => {
                write!(f, "it was {expected} bytes when hashed and ended after {actual}")
            }
            SourceChange::Grew { expected } => write!(f, "it was {expected} bytes when hashed and now holds more"),
            SourceChange::Content { expected, actual } => {
                write!(f, "its sha256 was {expected} when hashed and is now {actual}")
            }
        }
    }
}

/// ` (read from PATH)` when an entry is read from a file.
fn read_from(origin: &Option<PathBuf>) -> String {
    origin.as_ref().map_or_else(String::new, |path| format!(" (read from {})", path.display()))
}

/// Wraps an I/O error of `action`.
pub(crate) fn write_io(action: &'static str) -> impl FnOnce(io::Error) -> WriteError {
    move |source| WriteError::Io { action, source }
}
