//! Extraction writes nothing usable unless the whole kit verified, and sets the modes the kit declares.
use std::path::Path;

use stella_evidence::{BundleError, ErrorClass, KitTrust, Limits, TrustStore, extract_kit};

use crate::fixtures::*;

fn extract(kit: &[u8], dest: &Path) -> Result<stella_evidence::VerifiedKit, BundleError> {
    extract_kit(kit, &KitTrust::kit_only(&trust()), &Limits::default(), dest)
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_verified_kit_is_extracted_with_its_modes() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("kit");
    let kit = kit();
    let verified = extract(&kit, &dest).unwrap();
    assert_eq!(verified, verify(&kit).unwrap());
    assert_eq!(listing(parent.path()), ["kit"], "no staging directory is left beside it");
    assert_eq!(listing(&dest), ["INSTRUCTIONS.md", "bin", "bootstrap", "config", "empty.txt"]);
    assert_eq!(std::fs::read(dest.join("bin/stella")).unwrap(), binary());
    assert_eq!(std::fs::read(dest.join("bootstrap/install.sh")).unwrap(), b"#!/bin/sh\nset -eu\n");
    assert_eq!(std::fs::read(dest.join("empty.txt")).unwrap(), b"");
    #[cfg(unix)]
    {
        assert_eq!(mode(&dest.join("bin/stella")), 0o755);
        assert_eq!(mode(&dest.join("bootstrap/install.sh")), 0o755);
        assert_eq!(mode(&dest.join("INSTRUCTIONS.md")), 0o644);
        assert_eq!(mode(&dest.join("config/default.yaml.dsse.json")), 0o644);
        assert_eq!(mode(&dest), 0o755);
    }
}

#[test]
fn a_relative_destination_is_staged_in_its_parent() {
    let parent = tempfile::tempdir().unwrap();
    std::fs::create_dir(parent.path().join("opt")).unwrap();
    let dest = parent.path().join("opt/../opt/stella-kit");
    extract(&kit(), &dest).unwrap();
    assert_eq!(listing(&parent.path().join("opt")), ["stella-kit"]);
}

/// Extracts `kit` into `<tmp>/inside/kit` and checks it failed leaving `<tmp>` holding only the empty
/// `inside`.
fn refused(kit: &[u8], trust: &TrustStore) -> BundleError {
    let root = tempfile::tempdir().unwrap();
    let parent = root.path().join("inside");
    std::fs::create_dir(&parent).unwrap();
    let error = extract_kit(kit, &KitTrust::kit_only(trust), &Limits::default(), &parent.join("kit")).unwrap_err();
    assert_eq!(listing(root.path()), ["inside"], "{error}");
    assert!(listing(&parent).is_empty(), "left behind after {error}: {:?}", listing(&parent));
    error
}

#[test]
fn a_kit_failing_at_its_last_file_leaves_nothing_behind() {
    // Every file before config/... was already written into the staging directory when this fails.
    let tampered = rebuilt(|entries| {
        let config = position(entries, "config/default.yaml.dsse.json");
        entries[config].data[0] ^= 1;
    });
    let error = refused(&tampered, &trust());
    assert!(matches!(&error, BundleError::DigestMismatch { file, .. } if file == "config/default.yaml.dsse.json"));

    let missing_last = rebuilt(|entries| {
        entries.pop();
    });
    assert!(matches!(refused(&missing_last, &trust()), BundleError::MissingEntry { .. }));
}

#[test]
fn untrusted_truncated_and_hostile_kits_leave_nothing_behind() {
    assert_eq!(refused(&kit(), &TrustStore::default()).class(), ErrorClass::UntrustedKey);
    let kit = kit();
    for cut in [kit.len() / 3, kit.len() * 2 / 3] {
        assert_eq!(refused(&kit[..cut], &trust()).class(), ErrorClass::Malformed);
    }
    let traversal = rebuilt(|entries| entries.push(RawEntry::file("../escape", b"owned")));
    assert!(matches!(refused(&traversal, &trust()), BundleError::UnsafePath { .. }));
    let symlink = rebuilt(|entries| {
        let mut link = RawEntry::file("bin/stellb", b"");
        link.entry_type = b'2';
        entries.insert(position(entries, "bin/stella") + 1, link);
    });
    assert!(matches!(refused(&symlink, &trust()), BundleError::NotRegularFile { .. }));
}

#[test]
fn an_existing_destination_is_refused_and_left_alone() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("kit");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("mine"), b"keep me").unwrap();
    let error = extract(&kit(), &dest).unwrap_err();
    assert!(matches!(&error, BundleError::DestinationExists { path } if *path == dest), "{error}");
    assert_eq!(error.class(), ErrorClass::Io);
    assert!(error.to_string().contains("already exists"), "{error}");
    assert_eq!(listing(parent.path()), ["kit"]);
    assert_eq!(listing(&dest), ["mine"]);

    let empty_dir = parent.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    assert!(matches!(extract(&kit(), &empty_dir), Err(BundleError::DestinationExists { .. })));
}

#[test]
fn a_destination_whose_parent_is_missing_is_an_io_error() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("missing/kit");
    let error = extract(&kit(), &dest).unwrap_err();
    assert!(matches!(error, BundleError::Extract { .. }), "{error}");
    assert_eq!(error.class(), ErrorClass::Io);
    assert!(error.to_string().contains("missing"), "{error}");
    assert!(listing(parent.path()).is_empty());
}
