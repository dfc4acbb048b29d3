//! [`DecisionCache`]: which traces were decided, in 8 bytes per trace id.
//!
//! A set-associative table of 64-bit fingerprints: a trace id hashes to a bucket of four slots; a full
//! bucket evicts its oldest entry (round robin). Each fingerprint keeps 56 bits of the hash and 8 bits of
//! payload (the index of the policy that kept the trace), so a false hit needs a 56-bit collision inside
//! one bucket. Memory is fixed at creation: 8 bytes per entry plus one byte per bucket.

const WAYS: usize = 4;
const PAYLOAD_BITS: u32 = 8;
const PAYLOAD_MASK: u64 = (1 << PAYLOAD_BITS) - 1;

/// A fixed-size cache of decided trace ids with one byte of payload each.
#[derive(Debug, Clone)]
pub struct DecisionCache {
    slots: Vec<u64>,
    hands: Vec<u8>,
}

/// The 64-bit hash of a trace id (both halves mixed, so non-random ids spread too).
pub fn trace_hash(trace_id: &[u8; 16]) -> u64 {
    let (high, low) = trace_id.split_at(8);
    let mut high_bytes = [0u8; 8];
    high_bytes.copy_from_slice(high);
    let mut low_bytes = [0u8; 8];
    low_bytes.copy_from_slice(low);
    mix(u64::from_le_bytes(high_bytes) ^ mix(u64::from_le_bytes(low_bytes)))
}

/// splitmix64's finalizer.
pub(crate) fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

impl DecisionCache {
    /// A cache holding up to about `entries` trace ids (rounded up to whole buckets; 0 disables it).
    pub fn new(entries: usize) -> Self {
        let buckets = entries.div_ceil(WAYS);
        DecisionCache { slots: vec![0; buckets * WAYS], hands: vec![0; buckets] }
    }

    /// Bytes the cache occupies.
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * 8 + self.hands.len()
    }

    /// Slots, i.e. the most entries it can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn locate(&self, hash: u64) -> Option<(usize, u64)> {
        if self.hands.is_empty() {
            return None;
        }
        let bucket = usize::try_from(hash % self.hands.len() as u64).unwrap_or(0);
        // The tag: the hash's high 56 bits, never 0 (0 marks an empty slot).
        let tag = (hash & !PAYLOAD_MASK).max(1 << PAYLOAD_BITS);
        Some((bucket, tag))
    }

    /// The payload stored for `trace_id`, if it is in the cache.
    pub fn get(&self, trace_id: &[u8; 16]) -> Option<u8> {
        let (bucket, tag) = self.locate(trace_hash(trace_id))?;
        self.slots[bucket * WAYS..(bucket + 1) * WAYS]
            .iter()
            .find(|slot| **slot & !PAYLOAD_MASK == tag)
            .map(|slot| (*slot & PAYLOAD_MASK) as u8)
    }

    /// Remembers `trace_id` with `payload`, evicting the bucket's oldest entry when it is full.
    pub fn insert(&mut self, trace_id: &[u8; 16], payload: u8) {
        let Some((bucket, tag)) = self.locate(trace_hash(trace_id)) else { return };
        self.insert_tag(bucket, tag | u64::from(payload));
    }

    fn insert_tag(&mut self, bucket: usize, entry: u64) {
        let ways = &mut self.slots[bucket * WAYS..(bucket + 1) * WAYS];
        if let Some(slot) = ways.iter_mut().find(|slot| **slot & !PAYLOAD_MASK == entry & !PAYLOAD_MASK) {
            *slot = entry;
            return;
        }
        if let Some(slot) = ways.iter_mut().find(|slot| **slot == 0) {
            *slot = entry;
            return;
        }
        let hand = &mut self.hands[bucket];
        ways[usize::from(*hand) % WAYS] = entry;
        *hand = (*hand + 1) % WAYS as u8;
    }

    /// The occupied slots, for a checkpoint.
    pub fn entries(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.slots.iter().copied().enumerate().filter(|(_, slot)| *slot != 0)
    }

    /// Restores entries written by [`DecisionCache::entries`] (ignored if the size changed in between).
    pub fn restore(&mut self, entries: impl IntoIterator<Item = (usize, u64)>) {
        for (index, entry) in entries {
            if let Some(slot) = self.slots.get_mut(index) {
                *slot = entry;
            }
        }
    }
}
