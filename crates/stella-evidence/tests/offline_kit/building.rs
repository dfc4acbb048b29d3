//! What `build` refuses, and a file source changing while the kit is written.
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use stella_evidence::file_set::PathProblem;
use stella_evidence::offline_kit::{self, KitFile, KitSource, SourceChange};
use stella_evidence::{Compression, WriteError};

use crate::fixtures::*;

fn refused(files: Vec<KitFile>) -> WriteError {
    let mut out = Vec::new();
    let error = offline_kit::build(files, &key(), Compression::Gzip, &mut out).unwrap_err();
    assert!(out.is_empty(), "nothing is written before {error}");
    error
}

#[test]
fn unsafe_reserved_repeated_nested_and_overlong_paths_are_refused_before_writing() {
    for (path, problem) in [
        ("../escape", PathProblem::Traversal),
        ("/etc/passwd", PathProblem::Absolute),
        ("a//b", PathProblem::NotNormalized),
        ("", PathProblem::Empty),
        ("manifest.json", PathProblem::Reserved),
        ("manifest.dsse.json", PathProblem::Reserved),
    ] {
        let error = refused(vec![bytes(path, b"x", false)]);
        assert!(matches!(&error, WriteError::InvalidPath { problem: found, .. } if *found == problem), "{error}");
    }
    let error = refused(vec![bytes("a", b"1", false), bytes("a", b"2", false)]);
    assert!(matches!(error, WriteError::DuplicatePath { .. }), "{error}");
    let error = refused(vec![bytes("bin/stella", b"1", false), bytes("bin", b"2", false)]);
    assert!(matches!(&error, WriteError::PathConflict { path, other } if path == "bin" && other == "bin/stella"));
    let error = refused(vec![bytes(&"a".repeat(101), b"1", false)]);
    assert_eq!(error.code(), "bundle.write.archive_name", "{error}");
}

#[test]
fn an_unreadable_file_source_is_named_with_its_kit_path() {
    let missing = PathBuf::from("/nonexistent/stella");
    let error =
        refused(vec![KitFile { path: "bin/stella".into(), source: KitSource::File(missing), executable: true }]);
    assert!(matches!(error, WriteError::ReadSource { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("bin/stella") && message.contains("/nonexistent/stella"), "{message}");
}

/// A change made to a file source.
type Change = Box<dyn FnOnce(&Path)>;

/// An output that changes `file` the first time anything is written to it: after every file was hashed,
/// while the first entries are being archived.
struct Meddling<'a> {
    out: Vec<u8>,
    file: &'a Path,
    change: Option<Change>,
}

impl Write for Meddling<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if let Some(change) = self.change.take() {
            change(self.file);
        }
        self.out.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn build_while(change: impl FnOnce(&Path) + 'static) -> WriteError {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("z.conf");
    std::fs::write(&file, b"0123456789").unwrap();
    // 16 MiB that do not compress come first (several zstd jobs), so compressed output reaches `out` before
    // z.conf is copied.
    let files = vec![
        bytes("a.bin", &noise(3, 16 << 20), false),
        KitFile { path: "z.conf".into(), source: KitSource::File(file.clone()), executable: false },
    ];
    let mut out = Meddling { out: Vec::new(), file: &file, change: Some(Box::new(change)) };
    let error = offline_kit::build(files, &key(), Compression::Zstd, &mut out).unwrap_err();
    assert!(out.change.is_none(), "the output was written to");
    assert_eq!(error.code(), "bundle.write.source_changed");
    let message = error.to_string();
    assert!(message.contains("z.conf") && message.contains(&file.display().to_string()), "{message}");
    error
}

#[test]
fn a_file_source_changing_after_it_was_hashed_fails_the_build() {
    let error = build_while(|file| std::fs::write(file, b"0123").unwrap());
    let shrank = SourceChange::Shrank { expected: 10, actual: 4 };
    assert!(matches!(&error, WriteError::SourceChanged { name, change, .. } if name == "z.conf" && *change == shrank));

    let error =
        build_while(|file| std::fs::OpenOptions::new().append(true).open(file).unwrap().write_all(b"!").unwrap());
    assert!(matches!(&error, WriteError::SourceChanged { change: SourceChange::Grew { expected: 10 }, .. }), "{error}");

    let error = build_while(|file| std::fs::write(file, b"9876543210").unwrap());
    assert!(matches!(&error, WriteError::SourceChanged { change: SourceChange::Content { .. }, .. }), "{error}");
}
