//! Kits built to attack the verifier: each is refused with a coded error, without panicking and without
//! reading more than the signed manifest declares.
use std::io::{self, Read};

use stella_evidence::dsse::Envelope;
use stella_evidence::file_set::PathProblem;
use stella_evidence::payload_types::OFFLINE_KIT_MANIFEST;
use stella_evidence::{BundleError, Compression, ErrorClass, KitTrust, Limits, verify_kit};

use crate::fixtures::*;

fn malformed(kit: &[u8]) -> BundleError {
    let error = verify(kit).unwrap_err();
    assert_eq!(error.class(), ErrorClass::Malformed, "{error}");
    assert_eq!((error.code(), error.exit_code()), ("bundle.malformed", 14));
    error
}

/// The sample kit with `entry` inserted after the signed manifest.
fn with_file(entry: RawEntry) -> Vec<u8> {
    rebuilt(|entries| entries.insert(2, entry))
}

#[test]
fn traversal_and_absolute_paths_are_refused_anywhere() {
    for (name, problem) in [("../evil", PathProblem::Traversal), ("/etc/cron.d/evil", PathProblem::Absolute)] {
        let error = malformed(&with_file(RawEntry::file(name, b"owned")));
        assert!(matches!(&error, BundleError::UnsafePath { problem: found, .. } if *found == problem), "{error}");
        let first = rebuilt(|entries| entries.insert(0, RawEntry::file(name, b"owned")));
        assert!(matches!(malformed(&first), BundleError::UnsafePath { .. }));
    }
    let mut not_utf8 = RawEntry::file("x", b"");
    not_utf8.name = vec![b'o', 0xff];
    let error = malformed(&with_file(not_utf8));
    assert!(matches!(error, BundleError::UnsafePath { problem: PathProblem::NotUtf8, .. }), "{error}");
}

#[test]
fn links_directories_devices_and_extension_headers_are_refused() {
    for entry_type in [b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'L', b'K', b'x', b'g', b'S'] {
        let kit = rebuilt(|entries| {
            let stella = position(entries, "bin/stella");
            entries[stella].entry_type = entry_type;
        });
        let error = malformed(&kit);
        assert!(matches!(error, BundleError::NotRegularFile { .. }), "{}: {error}", char::from(entry_type));
    }
}

#[test]
fn only_0644_and_0755_files_are_accepted() {
    for mode in [0o4755, 0o777, 0o600, 0o666, 0o100644] {
        let kit = rebuilt(|entries| {
            let script = position(entries, "bootstrap/install.sh");
            entries[script].mode = mode;
        });
        let error = malformed(&kit);
        let refused = BundleError::UnexpectedMode { name: "bootstrap/install.sh".into(), mode: Some(mode) };
        assert_eq!(error.to_string(), refused.to_string());
        assert!(error.to_string().contains(&format!("{mode:04o}")), "{error}");
    }
    let made_executable = rebuilt(|entries| {
        let instructions = position(entries, "INSTRUCTIONS.md");
        entries[instructions].mode = 0o755;
    });
    let verified = verify(&made_executable).unwrap();
    assert!(verified.executables.contains("INSTRUCTIONS.md"), "the mode is reported as found: it is not signed");
}

#[test]
fn duplicate_unknown_missing_and_unsorted_entries_are_refused() {
    let duplicate = rebuilt(|entries| {
        let instructions = entries[position(entries, "INSTRUCTIONS.md")].clone();
        entries.insert(2, instructions);
    });
    assert!(matches!(malformed(&duplicate), BundleError::DuplicateEntry { name } if name == "INSTRUCTIONS.md"));
    let manifest_again = rebuilt(|entries| {
        let manifest = entries[1].clone();
        entries.push(manifest);
    });
    assert!(matches!(malformed(&manifest_again), BundleError::DuplicateEntry { name } if name == "manifest.json"));
    let envelope_twice = rebuilt(|entries| {
        let envelope = entries[0].clone();
        entries.insert(1, envelope);
    });
    assert!(matches!(malformed(&envelope_twice), BundleError::DuplicateEntry { .. }));

    let unknown = with_file(RawEntry::file("bin/other", b"extra"));
    assert!(matches!(malformed(&unknown), BundleError::UnexpectedEntry { name } if name == "bin/other"));

    let missing = rebuilt(|entries| {
        entries.remove(position(entries, "config/default.yaml.dsse.json"));
    });
    let error = malformed(&missing);
    assert!(matches!(&error, BundleError::MissingEntry { name } if name == "config/default.yaml.dsse.json"), "{error}");

    let unsorted = rebuilt(|entries| entries.swap(3, 4));
    assert!(matches!(malformed(&unsorted), BundleError::OutOfOrder { .. }));

    let no_envelope = rebuilt(|entries| {
        entries.remove(0);
    });
    assert!(matches!(malformed(&no_envelope), BundleError::MissingEntry { name } if name == "manifest.dsse.json"));
    let files_first = rebuilt(|entries| entries.rotate_left(2));
    assert!(matches!(malformed(&files_first), BundleError::MissingEntry { name } if name == "manifest.dsse.json"));
}

#[test]
fn huge_declared_sizes_are_refused_before_reading() {
    let huge_envelope = rebuilt(|entries| entries[0].declared_size = 1 << 40);
    assert!(matches!(malformed(&huge_envelope), BundleError::EntryTooLarge { size: 1099511627776, .. }));
    let larger_than_declared = rebuilt(|entries| {
        let stella = position(entries, "bin/stella");
        entries[stella].declared_size = 1 << 40;
    });
    let error = verify(&larger_than_declared).unwrap_err();
    assert!(matches!(error, BundleError::SizeMismatch { actual: 1099511627776, .. }), "{error}");
}

/// Counts the compressed bytes the verifier consumes.
struct Counting<'a> {
    inner: &'a [u8],
    read: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.read += read;
        Ok(read)
    }
}

#[test]
fn a_zstd_bomb_in_a_file_entry_is_refused_at_its_header() {
    // 100 GiB of zeros behind a header claiming them, in about 5 MB of zstd frames (the reader buffers 256 KiB).
    let entries = entries(&kit());
    let mut prefix = tar(&entries[..2]);
    prefix.truncate(prefix.len() - 1024);
    let mut bomb_header = entries[position(&entries, "bin/stella")].clone();
    bomb_header.declared_size = 100 << 30;
    bomb_header.data.clear();
    prefix.extend_from_slice(&tar(&[bomb_header])[..512]);
    let mut bomb = zstd::encode_all(prefix.as_slice(), 1).unwrap();
    let zeros = zstd::encode_all(io::repeat(0).take(1 << 20), 1).unwrap();
    for _ in 0..(100 * 1024) {
        bomb.extend_from_slice(&zeros);
    }
    let mut counting = Counting { inner: &bomb, read: 0 };
    let error = verify_kit(&mut counting, &KitTrust::kit_only(&trust()), &Limits::default()).unwrap_err();
    assert!(matches!(error, BundleError::SizeMismatch { .. }), "{error}");
    assert!(counting.read < bomb.len() / 4, "read {} of {} compressed bytes", counting.read, bomb.len());
}

#[test]
fn truncated_kits_are_malformed() {
    for compression in [Compression::Gzip, Compression::Zstd] {
        let (kit, _) = build_kit(compression);
        for cut in [0, 1, 10, kit.len() / 4, kit.len() / 2, kit.len() * 3 / 4] {
            let error = verify(&kit[..cut]).unwrap_err();
            assert_eq!(error.class(), ErrorClass::Malformed, "{compression:?} cut at {cut}: {error}");
        }
    }
    let tar = gunzip(&kit());
    for cut in [0, 100, 600, 1500, 4000, tar.len() / 2, tar.len() - 1100] {
        malformed(&gzip(&tar[..cut]));
    }
}

#[test]
fn garbage_is_not_a_kit() {
    assert!(matches!(malformed(b"PK\x03\x04 a zip file"), BundleError::UnknownCompression));
    assert!(matches!(malformed(&gzip(&[0x55; 4096])), BundleError::Archive { .. }));
    assert!(matches!(malformed(&gzip(&[])), BundleError::MissingEntry { .. }));
}

#[test]
fn a_trusted_manifest_declaring_unsafe_or_nested_paths_is_refused() {
    for (from, to) in [
        ("\"path\":\"empty.txt\"", "\"path\":\"../../etc/passwd\""),
        ("\"path\":\"empty.txt\"", "\"path\":\"bin\""),
        ("\"format_version\":1", "\"format_version\":2"),
    ] {
        let kit = rebuilt(|entries| {
            let text = String::from_utf8(entries[1].data.clone()).unwrap();
            assert!(text.contains(from), "{text}");
            let changed = text.replace(from, to);
            let envelope = Envelope::sign(OFFLINE_KIT_MANIFEST, changed.as_bytes(), &key());
            entries[0] = RawEntry::file("manifest.dsse.json", &envelope.to_json());
            entries[1] = RawEntry::file("manifest.json", changed.as_bytes());
        });
        let error = malformed(&kit);
        let expected = matches!(
            error,
            BundleError::UnsafePath { problem: PathProblem::Traversal, .. }
                | BundleError::InvalidManifest { .. }
                | BundleError::UnsupportedFormat { version: 2 }
        );
        assert!(expected, "{to}: {error}");
    }
}
