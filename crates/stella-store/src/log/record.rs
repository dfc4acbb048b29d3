//! One record's bytes: `length u32 LE | crc32 u32 LE | seq u64 LE | payload`, and the search for the next
//! valid record after damage.
use std::ops::RangeInclusive;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 16;

/// Largest payload accepted (a record larger than this is taken as a damaged length field).
pub const MAX_PAYLOAD: usize = 256 * 1024 * 1024;

/// Bytes examined per read while looking for the next valid record after damage.
const RESYNC_WINDOW: usize = 1024 * 1024;

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

/// The header fields at the start of `bytes`: (payload length, crc, seq), if 16 bytes are there.
fn header(bytes: &[u8]) -> Option<(usize, u32, u64)> {
    let header = bytes.get(..HEADER_LEN)?;
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&header[8..16]);
    Some((length, crc, u64::from_le_bytes(seq_bytes)))
}

/// The encoded length the header at the start of `bytes` claims (header included), if one is there.
pub(crate) fn claimed_len(bytes: &[u8]) -> Option<usize> {
    header(bytes).map(|(length, _, _)| HEADER_LEN + length)
}

/// What is at some offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A whole, valid record and its encoded length.
    Record(Record, usize),
    /// The bytes end inside a record.
    Short,
    /// A record is there but damaged.
    Damaged(&'static str),
}

/// Decodes the record at the start of `bytes`.
pub(crate) fn decode(bytes: &[u8]) -> Decoded {
    let Some((length, crc, seq)) = header(bytes) else { return Decoded::Short };
    if length > MAX_PAYLOAD {
        return Decoded::Damaged("length over the maximum record size");
    }
    let Some(payload) = bytes.get(HEADER_LEN..HEADER_LEN + length) else { return Decoded::Short };
    if checksum(seq, payload) != crc {
        return Decoded::Damaged("checksum mismatch");
    }
    Decoded::Record(Record { seq, payload: payload.to_vec() }, HEADER_LEN + length)
}

/// The first whole, valid record that starts in `[from, end)` and whose sequence number is in `seqs`:
/// its offset and sequence number. `read(offset, len)` returns the bytes of the segment at `offset` (fewer
/// at its end). Used after damage: records after a damaged one are found again and kept.
///
/// Candidates are screened by their header (sequence number in range, length within `end`) before their
/// checksum is computed, so a scan over garbage costs about one pass over its bytes.
pub(crate) fn find_next(
    read: &mut dyn FnMut(u64, usize) -> std::io::Result<Vec<u8>>,
    from: u64,
    end: u64,
    seqs: RangeInclusive<u64>,
) -> std::io::Result<Option<(u64, u64)>> {
    let mut window_start = from;
    while window_start < end {
        let window_len = (end - window_start).min(RESYNC_WINDOW as u64 + HEADER_LEN as u64) as usize;
        let window = read(window_start, window_len)?;
        let candidates = window.len().saturating_sub(HEADER_LEN - 1).min(RESYNC_WINDOW);
        for position in 0..candidates {
            let Some((length, crc, seq)) = header(&window[position..]) else { break };
            let offset = window_start + position as u64;
            if !seqs.contains(&seq) || length > MAX_PAYLOAD || offset + (HEADER_LEN + length) as u64 > end {
                continue;
            }
            let payload_start = position + HEADER_LEN;
            let valid = match window.get(payload_start..payload_start + length) {
                Some(payload) => checksum(seq, payload) == crc,
                None => {
                    let whole = read(offset, HEADER_LEN + length)?;
                    whole.len() == HEADER_LEN + length && checksum(seq, &whole[HEADER_LEN..]) == crc
                }
            };
            if valid {
                return Ok(Some((offset, seq)));
            }
        }
        if window.len() < HEADER_LEN {
            break;
        }
        window_start += candidates as u64;
    }
    Ok(None)
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
        assert_eq!(decode(&bytes), Decoded::Damaged("checksum mismatch"));
    }

    #[test]
    fn the_next_valid_record_is_found_after_garbage_and_only_in_the_seq_range() {
        let mut bytes = vec![0xAB; 37];
        let first_good = bytes.len() as u64;
        encode(12, b"after the damage", &mut bytes);
        encode(13, b"and one more", &mut bytes);
        let end = bytes.len() as u64;
        let mut read = |offset: u64, len: usize| {
            let start = (offset as usize).min(bytes.len());
            Ok(bytes[start..(start + len).min(bytes.len())].to_vec())
        };
        assert_eq!(find_next(&mut read, 1, end, 10..=20).unwrap(), Some((first_good, 12)));
        assert_eq!(find_next(&mut read, 1, end, 13..=20).unwrap().map(|(_, seq)| seq), Some(13));
        assert_eq!(find_next(&mut read, 1, end, 20..=30).unwrap(), None, "records outside the range are not taken");
        assert_eq!(find_next(&mut read, 1, end - 1, 10..=20).unwrap().map(|(_, seq)| seq), Some(12));
        assert_eq!(find_next(&mut read, first_good + 1, end - 1, 10..=20).unwrap(), None, "a cut record is not valid");
    }
}
