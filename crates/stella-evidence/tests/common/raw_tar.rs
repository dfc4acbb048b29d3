//! A raw tar writer and reader for the tests: writes what our writer never would (any name, type, mode or
//! declared size), and reads archives back entry by entry. Shared by the `bundles` and `offline_kit` tests.
use std::io::{Read, Write};

/// One tar entry as written, free of every rule a well-formed archive follows.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub entry_type: u8,
    pub mode: u32,
    pub declared_size: u64,
    pub data: Vec<u8>,
}

impl RawEntry {
    /// A regular 0644 file.
    pub fn file(name: &str, data: &[u8]) -> RawEntry {
        RawEntry {
            name: name.as_bytes().to_vec(),
            entry_type: b'0',
            mode: 0o644,
            declared_size: data.len() as u64,
            data: data.to_vec(),
        }
    }

    pub fn name(&self) -> &str {
        std::str::from_utf8(&self.name).unwrap()
    }
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut tar).unwrap();
    tar
}

pub fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(tar).unwrap();
    encoder.finish().unwrap()
}

/// The entries of a gzip archive.
pub fn entries(archive: &[u8]) -> Vec<RawEntry> {
    let tar = gunzip(archive);
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut entries = Vec::new();
    for entry in archive.entries().unwrap().raw(true) {
        let mut entry = entry.unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let name = entry.path_bytes().to_vec();
        let entry_type = entry.header().entry_type().as_byte();
        let mode = entry.header().mode().unwrap();
        entries.push(RawEntry { name, entry_type, mode, declared_size: data.len() as u64, data });
    }
    entries
}

/// A tar of `entries` exactly as given (names unchecked, sizes as declared, data as is).
pub fn tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..entry.name.len()].copy_from_slice(&entry.name);
        header.set_size(entry.declared_size);
        header.set_mode(entry.mode);
        header.set_entry_type(tar::EntryType::new(entry.entry_type));
        if entry.entry_type == b'2' {
            header.set_link_name("/etc/passwd").unwrap();
        }
        header.set_cksum();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&entry.data);
        bytes.resize(bytes.len().next_multiple_of(512), 0);
    }
    bytes.extend_from_slice(&[0; 1024]);
    bytes
}

pub fn position(entries: &[RawEntry], name: &str) -> usize {
    entries.iter().position(|entry| entry.name() == name).unwrap()
}
