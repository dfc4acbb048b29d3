use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use super::digest::Hasher;
use super::path::{check_relative_path, nesting_conflict};
use crate::BundleError;

/// Bytes read per call when checking a file.
const READ_CHUNK_BYTES: usize = 256 * 1024;

struct Expected {
    sha256: String,
    size: u64,
}

/// The files a verified manifest declares, and which of them were checked so far.
pub(crate) struct ExpectedFiles {
    files: BTreeMap<String, Expected>,
    seen: BTreeSet<String>,
}

impl ExpectedFiles {
    /// The declared `(path, sha256, size)` files; refuses unsafe or repeated paths.
    pub(crate) fn new<'a>(declared: impl IntoIterator<Item = (&'a str, &'a str, u64)>) -> Result<Self, BundleError> {
        let mut files = BTreeMap::new();
        for (path, sha256, size) in declared {
            check_relative_path(path).map_err(|problem| BundleError::UnsafePath { name: path.to_string(), problem })?;
            if nesting_conflict(&files, path).is_some() {
                return Err(BundleError::InvalidManifest {
                    reason: "a declared path is also the directory of another declared path",
                });
            }
            let expected = Expected { sha256: sha256.to_string(), size };
            if files.insert(path.to_string(), expected).is_some() {
                return Err(BundleError::InvalidManifest { reason: "a path is declared twice" });
            }
        }
        Ok(ExpectedFiles { files, seen: BTreeSet::new() })
    }

    /// The declared paths, sorted.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Marks `name` as being checked and returns its declared size; refuses undeclared and repeated names.
    pub(crate) fn claim(&mut self, name: &str) -> Result<u64, BundleError> {
        let Some(expected) = self.files.get(name) else {
            return Err(BundleError::UnexpectedEntry { name: name.to_string() });
        };
        if !self.seen.insert(name.to_string()) {
            return Err(BundleError::DuplicateEntry { name: name.to_string() });
        }
        Ok(expected.size)
    }

    /// Reads the claimed file `name` from `reader` (at most one byte past its declared size), passing every
    /// chunk to `on_bytes`, and checks its size and SHA-256. `read_error` says what a failed read means.
    pub(crate) fn check(
        &self,
        name: &str,
        reader: impl Read,
        mut on_bytes: impl FnMut(&[u8]) -> Result<(), BundleError>,
        read_error: impl Fn(io::Error) -> BundleError,
    ) -> Result<(), BundleError> {
        let Some(expected) = self.files.get(name) else {
            return Err(BundleError::UnexpectedEntry { name: name.to_string() });
        };
        debug_assert!(self.seen.contains(name), "check before claim");
        let mut bounded = reader.take(expected.size.saturating_add(1));
        let mut buffer = vec![0u8; READ_CHUNK_BYTES];
        let mut hasher = Hasher::default();
        loop {
            let read = match bounded.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(read_error(error)),
            };
            hasher.update(&buffer[..read]);
            on_bytes(&buffer[..read])?;
        }
        let actual = hasher.finish();
        if actual.size != expected.size {
            return Err(BundleError::SizeMismatch {
                file: name.to_string(),
                expected: expected.size,
                actual: actual.size,
            });
        }
        if actual.sha256 != expected.sha256 {
            return Err(BundleError::DigestMismatch {
                file: name.to_string(),
                expected: expected.sha256.clone(),
                actual: actual.sha256,
            });
        }
        Ok(())
    }

    /// Refuses the set if a declared file was never checked.
    pub(crate) fn finish(&self) -> Result<(), BundleError> {
        match self.files.keys().find(|path| !self.seen.contains(*path)) {
            Some(missing) => Err(BundleError::MissingEntry { name: missing.clone() }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> ExpectedFiles {
        let digest = Hasher::digest(b"abc");
        ExpectedFiles::new([("a.txt", digest.sha256.as_str(), 3)]).unwrap()
    }

    fn check(files: &mut ExpectedFiles, content: &[u8]) -> Result<(), BundleError> {
        files.claim("a.txt")?;
        files.check("a.txt", content, |_| Ok(()), |source| BundleError::Archive { source })
    }

    #[test]
    fn a_matching_file_passes_and_completes_the_set() {
        let mut files = expected();
        assert!(matches!(files.finish(), Err(BundleError::MissingEntry { .. })));
        check(&mut files, b"abc").unwrap();
        files.finish().unwrap();
        assert!(matches!(files.claim("a.txt"), Err(BundleError::DuplicateEntry { .. })));
        assert!(matches!(files.claim("b.txt"), Err(BundleError::UnexpectedEntry { .. })));
    }

    #[test]
    fn changed_longer_and_shorter_files_are_refused() {
        assert!(matches!(check(&mut expected(), b"abd"), Err(BundleError::DigestMismatch { .. })));
        assert!(matches!(check(&mut expected(), b"abcdef"), Err(BundleError::SizeMismatch { actual: 4, .. })));
        assert!(matches!(check(&mut expected(), b"ab"), Err(BundleError::SizeMismatch { actual: 2, .. })));
    }

    #[test]
    fn unsafe_or_repeated_declarations_are_refused() {
        assert!(matches!(ExpectedFiles::new([("../a", "", 0)]), Err(BundleError::UnsafePath { .. })));
        assert!(matches!(ExpectedFiles::new([("a", "", 0), ("a", "", 0)]), Err(BundleError::InvalidManifest { .. })));
        assert!(matches!(ExpectedFiles::new([("a", "", 0), ("a/b", "", 0)]), Err(BundleError::InvalidManifest { .. })));
    }
}
