//! Whatever the bytes, verification ends in a verified bundle or a coded error, never a panic.
use proptest::prelude::*;
use stella_evidence::{ErrorClass, Limits, verify_bundle};

use crate::fixtures::*;

fn check(bytes: &[u8]) -> bool {
    match verify_bundle(bytes, &trust(), &Limits::default()) {
        Ok(_) => true,
        Err(error) => {
            assert!(ErrorClass::ALL.contains(&error.class()));
            assert!((10..=15).contains(&error.exit_code()));
            false
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check(&bytes);
        check(&gzip(&bytes));
    }

    #[test]
    fn mutations_of_a_compressed_bundle_never_panic(
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut bundle = bundle();
        for (index, byte) in mutations {
            let position = index.index(bundle.len());
            bundle[position] = byte;
        }
        check(&bundle);
    }

    #[test]
    fn mutations_of_the_tar_inside_never_panic_and_never_pass_a_changed_file(
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let original = gunzip(&bundle());
        let mut tar = original.clone();
        for (index, byte) in mutations {
            let position = index.index(tar.len());
            tar[position] = byte;
        }
        if check(&gzip(&tar)) {
            // Only bytes no check covers may differ: tar metadata we ignore (mode, owner, mtime), padding
            // and the end blocks. Every file's content must be unchanged.
            let entries_before = entries(&gzip(&original));
            let entries_after = entries(&gzip(&tar));
            let contents = |entries: &[RawEntry]| entries.iter().map(|entry| (entry.name.clone(), entry.data.clone())).collect::<Vec<_>>();
            prop_assert_eq!(contents(&entries_before), contents(&entries_after));
        }
        check(&gzip(&tar[..cut.index(tar.len())]));
    }
}
