//! The body of the `bundle_reader` fuzz target (`fuzz/`), shared with the corpus replay in `cargo test` so
//! that every input the fuzzer ever saved keeps being checked. It asserts "no panic, and every refusal is a
//! coded error", plus what must hold of any bundle that verifies.
use std::io::Write;

use crate::{ErrorClass, Limits, SigningKey, TrustStore, verify_bundle};

/// The seed of the key the fuzz corpus bundles are signed with (a public test key: never trust it).
pub const FUZZ_KEY_SEED: [u8; 32] = [0x5e; 32];

/// The key the fuzz corpus bundles are signed with.
pub fn fuzz_signing_key() -> SigningKey {
    SigningKey::from_ed25519_seed(&FUZZ_KEY_SEED)
}

/// Arbitrary bytes as a bundle, as given and as the content of a stored (level 0) gzip stream, so the fuzzer
/// reaches the tar and manifest checks without having to produce valid deflate data.
pub fn bundle_reader(data: &[u8]) {
    let trust = TrustStore::from_iter([fuzz_signing_key().trusted_key()]);
    check_bundle(data, &trust);
    let mut stored = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::none());
    if stored.write_all(data).is_ok()
        && let Ok(gzip) = stored.finish()
    {
        check_bundle(&gzip, &trust);
    }
}

fn check_bundle(data: &[u8], trust: &TrustStore) {
    match verify_bundle(data, trust, &Limits::default()) {
        Ok(verified) => {
            let manifest = &verified.manifest;
            assert_eq!(manifest.files.len(), manifest.signals.len(), "a verified bundle lists each file's signal");
            let records: u64 = manifest.files.iter().map(|file| file.records).sum();
            assert_eq!(records, manifest.totals.records, "verified totals differ from the files");
            assert_eq!(verified.signer.keyid, fuzz_signing_key().keyid());
        }
        Err(error) => {
            assert!(ErrorClass::ALL.contains(&error.class()));
            assert!(error.code().starts_with("bundle."), "{}", error.code());
            assert!((10..=15).contains(&error.exit_code()));
            assert!(!error.to_string().is_empty());
        }
    }
}
