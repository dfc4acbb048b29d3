//! Whatever the bytes, verification ends in a verified kit or a coded error, never a panic; extraction of a
//! kit that does not verify leaves nothing behind.
use proptest::prelude::*;
use stella_evidence::{ErrorClass, KitTrust, Limits, extract_kit};

use crate::fixtures::*;

fn check(bytes: &[u8]) -> bool {
    match verify(bytes) {
        Ok(_) => true,
        Err(error) => {
            assert!(ErrorClass::ALL.contains(&error.class()));
            assert!((10..=15).contains(&error.exit_code()));
            assert!(!error.to_string().is_empty());
            false
        }
    }
}

fn mutate(mut bytes: Vec<u8>, mutations: Vec<(prop::sample::Index, u8)>) -> Vec<u8> {
    for (index, byte) in mutations {
        let position = index.index(bytes.len());
        bytes[position] = byte;
    }
    bytes
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check(&bytes);
        check(&gzip(&bytes));
    }

    #[test]
    fn mutations_of_a_compressed_kit_never_panic(
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        check(&mutate(kit(), mutations));
    }

    #[test]
    fn mutations_of_the_tar_inside_never_panic_and_never_pass_a_changed_file(
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let original = gunzip(&kit());
        let tar = mutate(original.clone(), mutations);
        if check(&gzip(&tar)) {
            // Only bytes no check covers may differ (owner, mtime, padding, end blocks): never a file's content.
            let contents = |tar: &[u8]| {
                entries(&gzip(tar)).into_iter().map(|entry| (entry.name, entry.data)).collect::<Vec<_>>()
            };
            prop_assert_eq!(contents(&original), contents(&tar));
        }
        check(&gzip(&tar[..cut.index(tar.len())]));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn extracting_a_mutated_kit_leaves_a_verified_kit_or_nothing(
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let tar = mutate(gunzip(&kit()), mutations);
        let parent = tempfile::tempdir().unwrap();
        let dest = parent.path().join("kit");
        match extract_kit(gzip(&tar).as_slice(), &KitTrust::kit_only(&trust()), &Limits::default(), &dest) {
            Ok(_) => prop_assert_eq!(std::fs::read(dest.join("bin/stella")).unwrap(), binary()),
            Err(_) => prop_assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0),
        }
    }
}
