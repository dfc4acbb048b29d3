use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

/// The SHA-256 and size of some bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentDigest {
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Bytes hashed.
    pub size: u64,
}

/// SHA-256 and byte count, fed in pieces.
#[derive(Default)]
pub(crate) struct Hasher {
    sha256: Sha256,
    size: u64,
}

impl Hasher {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.size += bytes.len() as u64;
    }

    pub(crate) fn finish(self) -> ContentDigest {
        ContentDigest { sha256: hex::encode(self.sha256.finalize()), size: self.size }
    }

    /// The digest of `bytes` in one go.
    pub(crate) fn digest(bytes: &[u8]) -> ContentDigest {
        let mut hasher = Hasher::default();
        hasher.update(bytes);
        hasher.finish()
    }
}

/// The digest of everything `reader` yields, read to its end in pieces.
pub(crate) fn digest_reader(mut reader: impl Read) -> io::Result<ContentDigest> {
    let mut writer = DigestWriter::new(io::sink());
    io::copy(&mut reader, &mut writer)?;
    Ok(writer.finish().1)
}

/// A writer that hashes what it passes on.
pub(crate) struct DigestWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> DigestWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        DigestWriter { inner, hasher: Hasher::default() }
    }

    /// The inner writer (not flushed) and the digest of everything written.
    pub(crate) fn finish(self) -> (W, ContentDigest) {
        (self.inner, self.hasher.finish())
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::{DigestWriter, Hasher};

    #[test]
    fn the_writer_hashes_exactly_what_it_passes_on() {
        let mut writer = DigestWriter::new(Vec::new());
        writer.write_all(b"hello ").unwrap();
        writer.write_all(b"world").unwrap();
        let (bytes, digest) = writer.finish();
        assert_eq!(bytes, b"hello world");
        assert_eq!(digest, Hasher::digest(b"hello world"));
        assert_eq!(digest.sha256, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        assert_eq!(digest.size, 11);
    }
}
