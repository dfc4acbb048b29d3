//! The binary form of a [`Checkpoint`]: small, fixed-width, checksummed.
//!
//! ```text
//! "STSC" version:u8=1 | read_seq:u64 | replay_seq:u64 | output_seq:u64 | cache(keep) | cache(drop) | sha256[..8] of all before
//! cache := capacity:u64 | count:u64 | (slot:u64 | entry:u64)*count          (all little-endian)
//! ```
use sha2::{Digest, Sha256};

use super::engine::Checkpoint;

const MAGIC: &[u8; 4] = b"STSC";
const VERSION: u8 = 1;

/// A checkpoint file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("tail-sampling checkpoint: {0}")]
pub struct CheckpointError(String);

impl Checkpoint {
    /// The checkpoint's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 16 * (self.keep.1.len() + self.drop.1.len()));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.read_seq.to_le_bytes());
        out.extend_from_slice(&self.replay_seq.to_le_bytes());
        out.extend_from_slice(&self.output_seq.to_le_bytes());
        for (capacity, slots) in [&self.keep, &self.drop] {
            out.extend_from_slice(&capacity.to_le_bytes());
            out.extend_from_slice(&(slots.len() as u64).to_le_bytes());
            for (slot, entry) in slots {
                out.extend_from_slice(&slot.to_le_bytes());
                out.extend_from_slice(&entry.to_le_bytes());
            }
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest[..8]);
        out
    }

    /// Reads bytes written by [`Checkpoint::encode`]; any damage is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let fail = |what: &str| CheckpointError(what.to_string());
        if bytes.len() < 4 + 1 + 24 + 32 + 8 || &bytes[..4] != MAGIC {
            return Err(fail("not a checkpoint (wrong magic or too short)"));
        }
        if bytes[4] != VERSION {
            return Err(fail(&format!("unknown version {}", bytes[4])));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 8);
        if Sha256::digest(body)[..8] != *digest {
            return Err(fail("checksum mismatch (a torn or damaged file)"));
        }
        let mut at = 5;
        let mut next = || -> Result<u64, CheckpointError> {
            let chunk = body.get(at..at + 8).ok_or_else(|| fail("truncated"))?;
            at += 8;
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            Ok(u64::from_le_bytes(word))
        };
        let read_seq = next()?;
        let replay_seq = next()?;
        let output_seq = next()?;
        let mut caches = Vec::new();
        for _ in 0..2 {
            let capacity = next()?;
            let count = next()?;
            if count > capacity {
                return Err(fail("more entries than slots"));
            }
            let mut slots = Vec::with_capacity(usize::try_from(count.min(1 << 24)).unwrap_or(0));
            for _ in 0..count {
                slots.push((next()?, next()?));
            }
            caches.push((capacity, slots));
        }
        let drop = caches.pop().unwrap_or_default();
        let keep = caches.pop().unwrap_or_default();
        Ok(Checkpoint { read_seq, replay_seq, output_seq, keep, drop })
    }
}
