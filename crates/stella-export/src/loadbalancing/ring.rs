//! A consistent-hash ring: each member owns the arcs before its points, so adding or removing a member
//! moves only the keys of the arcs it gains or loses.

/// Points per member: enough for an even share with a handful of members.
const POINTS_PER_MEMBER: u32 = 256;

/// The ring of a set of members (by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    points: Vec<(u64, usize)>,
    members: Vec<String>,
}

impl Ring {
    /// The ring of `members` (order and duplicates do not matter).
    pub fn new(members: impl IntoIterator<Item = String>) -> Ring {
        let mut members: Vec<String> = members.into_iter().collect();
        members.sort();
        members.dedup();
        let mut points: Vec<(u64, usize)> = members
            .iter()
            .enumerate()
            .flat_map(|(index, name)| {
                (0..POINTS_PER_MEMBER).map(move |point| (fnv1a(format!("{name}#{point}").as_bytes()), index))
            })
            .collect();
        points.sort_unstable();
        Ring { points, members }
    }

    /// The members, sorted.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// The member owning `key`: the first point at or after the key's hash, wrapping around.
    pub fn owner(&self, key: &[u8]) -> Option<&str> {
        let hash = fnv1a(key);
        let position = self.points.partition_point(|(point, _)| *point < hash);
        let (_, member) = self.points.get(position).or_else(|| self.points.first())?;
        self.members.get(*member).map(String::as_str)
    }
}

/// FNV-1a, 64 bits: fast, stable across versions and platforms (the ring must route identically on
/// every instance of a tier).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV mixes the last bytes weakly; a final avalanche (from MurmurHash3's fmix64) spreads them.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<[u8; 16]> {
        (0u64..20_000)
            .map(|n| {
                let mut key = [0u8; 16];
                key[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
                key[8..].copy_from_slice(&n.to_le_bytes());
                key
            })
            .collect()
    }

    #[test]
    fn shares_are_even_and_removing_a_member_moves_only_its_keys() {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect::<Vec<_>>();
        let three = Ring::new(names(&["sampler-a:4317", "sampler-b:4317", "sampler-c:4317"]));
        let two = Ring::new(names(&["sampler-a:4317", "sampler-c:4317"]));
        let keys = keys();
        let mut share = std::collections::BTreeMap::<&str, usize>::new();
        for key in &keys {
            let before = three.owner(key).unwrap_or_default();
            *share.entry(before).or_default() += 1;
            let after = two.owner(key).unwrap_or_default();
            if before != "sampler-b:4317" {
                assert_eq!(before, after, "a key of a remaining member stays put");
            }
        }
        for (member, count) in &share {
            let fraction = *count as f64 / keys.len() as f64;
            assert!((0.25..0.42).contains(&fraction), "{member} owns {fraction:.3} of the keys");
        }
        assert_eq!(Ring::new(names(&["sampler-c:4317", "sampler-a:4317"])), two, "order does not matter");
        assert_eq!(Ring::new(Vec::new()).owner(b"x"), None);
    }
}
