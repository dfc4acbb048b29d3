//! One record's bytes: `length u32 LE | crc32 u32 LE | seq u64 LE | payload`.

/// Bytes before the payload.
pub const HEADER_LEN: usize = 16;

/// Largest payload accepted (a record larger than this is taken as a damaged length field).
pub const MAX_PAYLOAD: usize = 256 * 1024 * 1024;

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// The bytes appended.
    pub payload: Vec<u8>,
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Appends the encoding of one record to `out`.
pub(crate) fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// What is at some offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A whole, valid record and its encoded length.
    Record(Record, usize),
    /// The bytes end inside a record.
    Short,
    /// A record is there but damaged.
    Damaged(String),
}

/// Decodes the record at the start of `bytes`.
pub(crate) fn decode(bytes: &[u8]) -> Decoded {
    let Some(header) = bytes.get(..HEADER_LEN) else { return Decoded::Short };
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&header[8..16]);
    let seq = u64::from_le_bytes(seq_bytes);
    if length > MAX_PAYLOAD {
        return Decoded::Damaged(format!("length {length} is over the {MAX_PAYLOAD}-byte maximum"));
    }
    let Some(payload) = bytes.get(HEADER_LEN..HEADER_LEN + length) else { return Decoded::Short };
    if checksum(seq, payload) != crc {
        return Decoded::Damaged("checksum mismatch".into());
    }
    Decoded::Record(Record { seq, payload: payload.to_vec() }, HEADER_LEN + length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_a_flipped_bit_is_caught() {
        let mut bytes = Vec::new();
        encode(7, b"hello", &mut bytes);
        assert_eq!(decode(&bytes), Decoded::Record(Record { seq: 7, payload: b"hello".to_vec() }, 21));
        assert_eq!(decode(&bytes[..20]), Decoded::Short);
        bytes[18] ^= 1;
        assert_eq!(decode(&bytes), Decoded::Damaged("checksum mismatch".into()));
    }
}
