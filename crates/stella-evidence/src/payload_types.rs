//! The DSSE payload types Stella signs. A verifier always names the one it expects, so an envelope signed for
//! one purpose (a config profile) is never accepted for another (a bundle manifest).

/// The payload of `manifest.dsse.json` in a forensic bundle: the bundle manifest, RFC 8785 JSON.
pub const BUNDLE_MANIFEST: &str = "application/vnd.stellaops.telemetry.bundle.manifest+json";

/// A collector config profile bundle: the YAML config itself.
pub const CONFIG_YAML: &str = "application/vnd.stellaops.telemetry.config+yaml";

/// The manifest of an offline kit: a [`FileSetManifest`](crate::file_set::FileSetManifest).
pub const OFFLINE_KIT_MANIFEST: &str = "application/vnd.stellaops.telemetry.offline-kit.manifest+json";

/// The manifest written beside each rotation of the air-gap file exporter: a
/// [`FileSetManifest`](crate::file_set::FileSetManifest).
pub const ROTATION_MANIFEST: &str = "application/vnd.stellaops.telemetry.rotation.manifest+json";

/// The manifest of a signed release (`scripts/release.sh`): a
/// [`FileSetManifest`](crate::file_set::FileSetManifest) of the binary, the Debian package, the SBOM and
/// `SHA256SUMS`, signed with the release key.
pub const RELEASE_MANIFEST: &str = "application/vnd.stellaops.telemetry.release.manifest+json";
