//! Signed rotations of file exporters: each rotated file gets `<file>.dsse.json`, a DSSE envelope
//! (payload type `application/vnd.stellaops.telemetry.rotation.manifest+json`) of the file-set manifest
//! naming the file (relative to its directory) with its SHA-256 and size. `stella telemetry verify
//! <file>.dsse.json` checks it.
use std::path::{Path, PathBuf};

use crate::SigningKey;
use crate::file_set::FileSetBuilder;
use crate::payload_types::ROTATION_MANIFEST;

/// Signs the rotations of file exporters with the server key.
pub struct RotationSigning {
    key: SigningKey,
}

impl RotationSigning {
    /// Signs with `key`.
    pub fn new(key: SigningKey) -> Self {
        RotationSigning { key }
    }
}

impl stella_export::file::RotationSigner for RotationSigning {
    fn sign_rotation(&self, rotated: &Path) -> Result<PathBuf, String> {
        let name = rotated.file_name().and_then(|name| name.to_str()).ok_or("the rotated file has no UTF-8 name")?;
        let file =
            std::fs::File::open(rotated).map_err(|error| format!("cannot read {}: {error}", rotated.display()))?;
        let mut files = FileSetBuilder::default();
        files.add_reader(name, std::io::BufReader::new(file)).map_err(|error| error.to_string())?;
        let signed = files.sign(ROTATION_MANIFEST, &self.key).map_err(|error| error.to_string())?;
        let manifest = stella_export::file::rotation_manifest_path(rotated);
        let temporary = manifest.with_extension("json.tmp");
        std::fs::write(&temporary, &signed.envelope_json)
            .and_then(|()| std::fs::rename(&temporary, &manifest))
            .map_err(|error| format!("cannot write {}: {error}", manifest.display()))?;
        Ok(manifest)
    }
}
