//! Writing a key pair into a directory, and the server's "generate once, then reuse" key.
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::{KeyError, io};
use super::pem::private_key_pem;
use super::signing_key::{KeyKind, SigningKey};

/// The private key file (or HMAC secret file) in a key directory; mode 0600.
pub const PRIVATE_KEY_FILE: &str = "signing-key.pem";
/// The Ed25519 public key file in a key directory; mode 0644.
pub const PUBLIC_KEY_FILE: &str = "signing-key.pub.pem";

const PRIVATE_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;
const DIRECTORY_MODE: u32 = 0o700;

/// The files [`SigningKey::write_files`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    /// The private key (Ed25519 PKCS#8) or HMAC secret, mode 0600.
    pub private_key: PathBuf,
    /// The public key (Ed25519 SPKI), mode 0644; `None` for HMAC keys.
    pub public_key: Option<PathBuf>,
}

impl SigningKey {
    /// Writes the key into `dir` (created with mode 0700 if missing) as [`PRIVATE_KEY_FILE`] and, for
    /// Ed25519, [`PUBLIC_KEY_FILE`]. Refuses to replace an existing file.
    pub fn write_files(&self, dir: &Path) -> Result<KeyFiles, KeyError> {
        create_key_dir(dir)?;
        let private_key = dir.join(PRIVATE_KEY_FILE);
        write_new_file(&private_key, private_key_pem(self).as_bytes(), PRIVATE_MODE)?;
        let public_key = match self.public_key_pem() {
            Some(pem) => {
                let path = dir.join(PUBLIC_KEY_FILE);
                write_new_file(&path, pem.as_bytes(), PUBLIC_MODE)?;
                Some(path)
            }
            None => None,
        };
        Ok(KeyFiles { private_key, public_key })
    }

    /// The server's key: loads `dir/signing-key.pem`, or generates an Ed25519 key and writes it there the
    /// first time. Two processes racing on an empty directory end up with the same key.
    pub fn load_or_generate(dir: &Path) -> Result<SigningKey, KeyError> {
        let private_key = dir.join(PRIVATE_KEY_FILE);
        if private_key.exists() {
            return SigningKey::load(&private_key);
        }
        let key = SigningKey::generate(KeyKind::Ed25519)?;
        match key.write_files(dir) {
            Ok(_) => Ok(key),
            // Another process wrote its key between our check and our write: use that one.
            Err(KeyError::Exists { .. }) => SigningKey::load(&private_key),
            Err(error) => Err(error),
        }
    }
}

fn create_key_dir(dir: &Path) -> Result<(), KeyError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIRECTORY_MODE);
    builder.create(dir).map_err(io("create directory", dir))
}

/// Writes `bytes` to a new file at `path` with `mode`: temporary file, mode, fsync, rename without replacing.
fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temporary =
        tempfile::Builder::new().prefix(".signing-key").tempfile_in(dir).map_err(io("create a file in", dir))?;
    temporary.write_all(bytes).map_err(io("write", temporary.path()))?;
    set_mode(temporary.as_file(), mode).map_err(io("set the mode of", temporary.path()))?;
    temporary.as_file().sync_all().map_err(io("sync", temporary.path()))?;
    temporary.persist_noclobber(path).map_err(|error| match error.error.kind() {
        io::ErrorKind::AlreadyExists => KeyError::Exists { path: path.to_path_buf() },
        _ => KeyError::Io { action: "create", path: path.to_path_buf(), source: error.error },
    })?;
    File::open(dir).and_then(|directory| directory.sync_all()).map_err(io("sync directory", dir))
}

/// Sets the exact mode, whatever the umask.
#[cfg(unix)]
fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}
