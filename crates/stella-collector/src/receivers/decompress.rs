//! Request-body decompression with a hard cap, enforced while inflating: a gzip or zstd bomb is
//! stopped after `cap + 1` output bytes, never expanded in full.
use std::io::Read;

/// A `Content-Encoding` the HTTP receiver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    /// The encoding named by a `Content-Encoding` header value; `None` for one we do not support.
    pub(crate) fn from_header(value: Option<&str>) -> Option<Encoding> {
        match value.map(|text| text.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Some(Encoding::Identity),
            Some("gzip") | Some("x-gzip") => Some(Encoding::Gzip),
            Some("zstd") => Some(Encoding::Zstd),
            Some(_) => None,
        }
    }
}

/// Why a body could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecompressError {
    #[error("the body decompresses to more than {cap} bytes (max_decompressed_size_mib); send smaller requests")]
    TooLarge { cap: usize },
    #[error("the body is not valid {encoding:?} data: {source}")]
    Corrupt {
        encoding: Encoding,
        #[source]
        source: std::io::Error,
    },
    /// The memory budget refused the bytes the body inflates to.
    #[error(transparent)]
    Overloaded(#[from] super::Overloaded),
}

/// Output beyond the first buffer grows in buffers of this many bytes, each charged to the memory budget
/// before it is allocated.
const CHARGE_STEP: usize = 1024 * 1024;

/// The first output buffer when the body does not say how large it inflates.
const FIRST_BUFFER: usize = 64 * 1024;

/// Decompresses `body` per `encoding`, refusing to produce more than `cap` bytes. Every byte of memory the
/// output takes is charged to `charge` (the request's memory budget) before it is allocated, so a
/// compression bomb is stopped by the budget as well as by the cap, never expanded first. The size the
/// body declares (gzip's trailer, zstd's frame header), when within `cap`, sizes the first buffer: an
/// honest body is inflated into one allocation of its exact size. The declaration is trusted no further:
/// a body that inflates to more (or declares more than `cap`, or is corrupt) grows in charged steps,
/// joined (charged again) at the end, and is refused when it passes `cap` or its data turns out corrupt.
pub(crate) fn decompress(
    encoding: Encoding,
    body: bytes::Bytes,
    cap: usize,
    charge: &mut dyn FnMut(usize) -> Result<(), super::Overloaded>,
) -> Result<bytes::Bytes, DecompressError> {
    let corrupt = |source| DecompressError::Corrupt { encoding, source };
    let declared = match encoding {
        Encoding::Identity => {
            if body.len() > cap {
                return Err(DecompressError::TooLarge { cap });
            }
            return Ok(body);
        }
        Encoding::Gzip => gzip_declared_size(&body),
        Encoding::Zstd => zstd::zstd_safe::get_frame_content_size(&body).ok().flatten(),
    };
    let declared = declared.filter(|&size| size <= cap as u64);
    let mut reader: Box<dyn Read + '_> = match encoding {
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body.as_ref())),
        _ => Box::new(zstd::stream::read::Decoder::new(body.as_ref()).map_err(corrupt)?),
    };
    // One byte past the declaration (or the cap) so that the end of the stream is seen in this buffer.
    let first = declared.map_or(FIRST_BUFFER, |size| size as usize).min(cap) + 1;
    let mut buffers: Vec<Vec<u8>> = Vec::new();
    let mut total = 0usize;
    let mut capacity = first;
    loop {
        charge(capacity)?;
        let mut buffer = Vec::with_capacity(capacity);
        let full = read_into(&mut *reader, &mut buffer, capacity).map_err(corrupt)?;
        total += buffer.len();
        buffers.push(buffer);
        if total > cap {
            return Err(DecompressError::TooLarge { cap });
        }
        if !full {
            break;
        }
        capacity = CHARGE_STEP.min(cap + 1 - total);
    }
    if buffers.len() == 1 {
        return Ok(bytes::Bytes::from(buffers.swap_remove(0)));
    }
    charge(total)?;
    Ok(bytes::Bytes::from(buffers.concat()))
}

/// Reads into `buffer` until it holds `limit` bytes (true) or the stream ends (false).
fn read_into(reader: &mut dyn Read, buffer: &mut Vec<u8>, limit: usize) -> std::io::Result<bool> {
    let read = reader.take(limit as u64).read_to_end(buffer)?;
    Ok(read == limit)
}

/// The size a gzip body declares in its trailer (ISIZE of the last member, modulo 2^32); none for a body
/// shorter than a gzip header and trailer.
fn gzip_declared_size(body: &[u8]) -> Option<u64> {
    const HEADER_AND_TRAILER: usize = 18;
    if body.len() < HEADER_AND_TRAILER {
        return None;
    }
    let trailer: [u8; 4] = body.len().checked_sub(4).and_then(|start| body.get(start..))?.try_into().ok()?;
    Some(u64::from(u32::from_le_bytes(trailer)))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::Overloaded;
    use super::*;

    fn gzip(data: &[u8]) -> bytes::Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        bytes::Bytes::from(encoder.finish().unwrap())
    }

    #[test]
    fn a_gzip_bomb_is_stopped_at_the_cap() {
        // A last member of one byte hides the size from the trailer: the cap is met while inflating.
        let mut bomb = gzip(&vec![0u8; 50 * 1024 * 1024]).to_vec();
        bomb.extend_from_slice(&gzip(b"x"));
        assert!(bomb.len() < 100 * 1024, "the bomb should be small on the wire");
        let error = decompress(Encoding::Gzip, bytes::Bytes::from(bomb), 1024 * 1024, &mut |_| Ok(())).unwrap_err();
        assert!(matches!(error, DecompressError::TooLarge { cap: 1048576 }), "{error}");
    }

    #[test]
    fn gzip_and_zstd_round_trip_under_the_cap() {
        let data = b"hello otlp".repeat(100);
        assert_eq!(
            decompress(Encoding::Gzip, gzip(&data), data.len(), &mut |_| Ok(())).unwrap().as_ref(),
            data.as_slice()
        );
        let zstd = bytes::Bytes::from(zstd::bulk::compress(&data, 3).unwrap());
        assert_eq!(decompress(Encoding::Zstd, zstd, data.len(), &mut |_| Ok(())).unwrap().as_ref(), data.as_slice());
    }

    /// A budget that refuses once more than `limit` bytes were charged, and counts what it was asked.
    fn budget(limit: usize) -> (std::rc::Rc<std::cell::Cell<usize>>, impl FnMut(usize) -> Result<(), Overloaded>) {
        let charged = std::rc::Rc::new(std::cell::Cell::new(0));
        let counter = std::rc::Rc::clone(&charged);
        let charge = move |bytes: usize| {
            counter.set(counter.get() + bytes);
            if counter.get() > limit {
                return Err(Overloaded::Memory { budget_mib: limit / CHARGE_STEP });
            }
            Ok(())
        };
        (charged, charge)
    }

    #[test]
    fn a_bomb_that_declares_more_than_the_cap_is_inflated_in_charged_steps_up_to_the_cap() {
        let bomb = gzip(&vec![0u8; 50 * 1024 * 1024]);
        let zstd_bomb = bytes::Bytes::from(zstd::bulk::compress(&vec![0u8; 50 * 1024 * 1024], 3).unwrap());
        for (encoding, bomb) in [(Encoding::Gzip, bomb), (Encoding::Zstd, zstd_bomb)] {
            let (charged, mut charge) = budget(usize::MAX);
            let error = decompress(encoding, bomb, 8 * CHARGE_STEP, &mut charge).unwrap_err();
            assert!(matches!(error, DecompressError::TooLarge { .. }), "{error}");
            assert!(charged.get() <= 9 * CHARGE_STEP, "{encoding:?}: charged {}", charged.get());
        }
    }

    #[test]
    fn a_bomb_that_hides_its_size_is_stopped_by_the_memory_budget_before_it_expands() {
        // Two gzip members: the trailer seen is the tiny last member's.
        let mut bomb = gzip(&vec![0u8; 50 * 1024 * 1024]).to_vec();
        bomb.extend_from_slice(&gzip(b"x"));
        let (charged, mut charge) = budget(8 * CHARGE_STEP);
        let error = decompress(Encoding::Gzip, bytes::Bytes::from(bomb), 64 * 1024 * 1024, &mut charge).unwrap_err();
        assert!(matches!(error, DecompressError::Overloaded(_)), "{error}");
        assert!(charged.get() <= 9 * CHARGE_STEP + FIRST_BUFFER + 1, "charged {}", charged.get());
    }

    #[test]
    fn an_honest_body_is_inflated_into_one_charged_buffer_of_its_size() {
        let data: Vec<u8> = (0..3 * CHARGE_STEP as u32).map(|index| (index % 251) as u8).collect();
        let (charged, mut charge) = budget(usize::MAX);
        let inflated = decompress(Encoding::Gzip, gzip(&data), 4 * CHARGE_STEP, &mut charge).unwrap();
        assert_eq!(inflated.as_ref(), data.as_slice());
        assert_eq!(charged.get(), data.len() + 1);
    }

    #[test]
    fn a_body_larger_than_it_declares_grows_in_charged_steps_and_is_joined_whole() {
        let data: Vec<u8> = (0..3 * CHARGE_STEP as u32 + 17).map(|index| (index % 253) as u8).collect();
        let mut body = gzip(&data).to_vec();
        body.extend_from_slice(&gzip(b"tail"));
        let (charged, mut charge) = budget(usize::MAX);
        let body = bytes::Bytes::from(body);
        let inflated = decompress(Encoding::Gzip, body.clone(), 4 * CHARGE_STEP, &mut charge).unwrap();
        assert_eq!(&inflated[..data.len()], data.as_slice());
        assert_eq!(&inflated[data.len()..], b"tail");
        // The buffers (5 + 1 + 3 x 1 MiB, the last one partly filled) and the joined copy.
        assert!(charged.get() >= 2 * inflated.len(), "charged {} for {}", charged.get(), inflated.len());
        assert!(charged.get() <= 2 * inflated.len() + CHARGE_STEP, "charged {}", charged.get());
        let error = decompress(Encoding::Gzip, body, data.len(), &mut charge).unwrap_err();
        assert!(matches!(error, DecompressError::TooLarge { .. }), "{error}");
    }

    #[test]
    fn corrupt_gzip_is_reported_not_panicked() {
        // Short, and long enough to have a trailer that declares 4 GiB: both are corrupt, not too large.
        for body in [&b"\x1f\x8bnot gzip"[..], b"\x1f\x8b\x08\x00not gzip at all\xff\xff\xff\xff"] {
            let error =
                decompress(Encoding::Gzip, bytes::Bytes::copy_from_slice(body), 1024, &mut |_| Ok(())).unwrap_err();
            assert!(matches!(error, DecompressError::Corrupt { .. }), "{error}");
        }
    }

    #[test]
    fn content_encoding_names() {
        assert_eq!(Encoding::from_header(None), Some(Encoding::Identity));
        assert_eq!(Encoding::from_header(Some("GZIP")), Some(Encoding::Gzip));
        assert_eq!(Encoding::from_header(Some("br")), None);
    }
}
