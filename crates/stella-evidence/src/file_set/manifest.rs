use serde::{Deserialize, Serialize};

/// The format version of [`FileSetManifest`]; readers refuse others.
pub const FILE_SET_FORMAT_VERSION: u32 = 1;

/// The manifest's file name in a bundle, kit or rotation directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The envelope's file name: a DSSE envelope whose payload is the manifest.
pub const ENVELOPE_FILE: &str = "manifest.dsse.json";

/// What a signed file set holds: every file's path, digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSetManifest {
    /// [`FILE_SET_FORMAT_VERSION`].
    pub format_version: u32,
    /// The files, sorted by path.
    pub files: Vec<FileDigest>,
}

/// One file of a signed set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// Relative, `/`-separated path.
    pub path: String,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}
