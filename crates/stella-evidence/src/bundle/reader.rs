use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;

use super::framing::read_record;
use super::verify::{Limits, VerifiedBundle, verify_with};
use crate::keys::TrustStore;
use crate::{BundleError, Signal};

/// Buffer of the spool files.
const SPOOL_BUFFER_BYTES: usize = 256 * 1024;

/// A verified bundle whose records can be read back (for `replay`): [`open`](Self::open) verifies the whole
/// bundle in one pass while copying its payload files to unnamed spool files, so no record is handed out
/// before every digest and the signature checked, and the records read are the bytes that were verified.
///
/// ```no_run
/// # use stella_evidence::{BundleReader, Limits, Signal, TrustStore};
/// # fn replay(trust: &TrustStore, send: impl Fn(&[u8])) -> Result<(), stella_evidence::BundleError> {
/// let bundle = std::fs::File::open("bundle.tar.gz").expect("bundle file");
/// let mut reader = BundleReader::open(bundle, trust, &Limits::default(), &std::env::temp_dir())?;
/// for signal in Signal::ALL {
///     for record in reader.records(signal)? {
///         send(&record?);
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct BundleReader {
    verified: VerifiedBundle,
    spools: BTreeMap<Signal, File>,
}

impl BundleReader {
    /// Verifies the bundle from `reader` (as [`verify_bundle`](super::verify_bundle) does), keeping its
    /// payload files in unnamed temporary files under `spool_dir`.
    pub fn open(
        reader: impl Read,
        trust: &TrustStore,
        limits: &Limits,
        spool_dir: &Path,
    ) -> Result<BundleReader, BundleError> {
        let mut writers: BTreeMap<Signal, BufWriter<File>> = BTreeMap::new();
        let verified = verify_with(reader, trust, limits, |signal, chunk| {
            let writer = match writers.entry(signal) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    let file = tempfile::tempfile_in(spool_dir).map_err(|source| BundleError::Spool { source })?;
                    entry.insert(BufWriter::with_capacity(SPOOL_BUFFER_BYTES, file))
                }
            };
            writer.write_all(chunk).map_err(|source| BundleError::Spool { source })
        })?;
        let mut spools = BTreeMap::new();
        for (signal, writer) in writers {
            let file = writer.into_inner().map_err(|error| BundleError::Spool { source: error.into_error() })?;
            spools.insert(signal, file);
        }
        Ok(BundleReader { verified, spools })
    }

    /// What was verified.
    pub fn verified(&self) -> &VerifiedBundle {
        &self.verified
    }

    /// The records of `signal`, in bundle order (none if the bundle has no records of it). Each call starts
    /// from the first record.
    pub fn records(&mut self, signal: Signal) -> Result<Records<'_>, BundleError> {
        let remaining = self.verified.manifest.file(signal).map_or(0, |file| file.records);
        let reader = match self.spools.get_mut(&signal) {
            Some(file) => {
                file.rewind().map_err(|source| BundleError::Spool { source })?;
                Some(BufReader::with_capacity(SPOOL_BUFFER_BYTES, file))
            }
            None => None,
        };
        Ok(Records { reader, remaining })
    }
}

/// The verified records of one signal: each item is one raw OTLP export request.
pub struct Records<'a> {
    reader: Option<BufReader<&'a mut File>>,
    remaining: u64,
}

impl Iterator for Records<'_> {
    type Item = Result<Vec<u8>, BundleError>;

    fn next(&mut self) -> Option<Self::Item> {
        let reader = self.reader.as_mut()?;
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        Some(read_record(reader).map_err(|source| BundleError::Spool { source }))
    }
}
