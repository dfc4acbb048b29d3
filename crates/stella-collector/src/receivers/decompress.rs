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

/// Output is charged to the memory budget in steps of this many bytes, before it is produced.
const CHARGE_STEP: usize = 1024 * 1024;

/// Decompresses `body` per `encoding`, refusing to produce more than `cap` bytes. Output is charged to
/// `charge` (the request's memory budget) a step ahead of being produced, so a compression bomb is
/// stopped by the budget as well as by the cap, never expanded first.
pub(crate) fn decompress(
    encoding: Encoding,
    body: bytes::Bytes,
    cap: usize,
    charge: &mut dyn FnMut(usize) -> Result<(), super::Overloaded>,
) -> Result<bytes::Bytes, DecompressError> {
    let corrupt = |source| DecompressError::Corrupt { encoding, source };
    let mut reader: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => {
            if body.len() > cap {
                return Err(DecompressError::TooLarge { cap });
            }
            return Ok(body);
        }
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body.as_ref())),
        Encoding::Zstd => Box::new(zstd::stream::read::Decoder::new(body.as_ref()).map_err(corrupt)?),
    };
    let mut out = Vec::new();
    let mut charged = 0usize;
    loop {
        if out.len() > cap {
            return Err(DecompressError::TooLarge { cap });
        }
        if out.len() + CHARGE_STEP / 16 > charged {
            // Twice the step: a growing buffer is copied into one twice its size.
            charge(2 * CHARGE_STEP)?;
            charged += CHARGE_STEP;
        }
        let start = out.len();
        out.resize(start + CHARGE_STEP / 16, 0);
        let read = reader.read(&mut out[start..]).map_err(corrupt)?;
        out.truncate(start + read);
        if read == 0 {
            break;
        }
    }
    Ok(bytes::Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> bytes::Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        bytes::Bytes::from(encoder.finish().unwrap())
    }

    #[test]
    fn a_gzip_bomb_is_stopped_at_the_cap() {
        let bomb = gzip(&vec![0u8; 50 * 1024 * 1024]);
        assert!(bomb.len() < 100 * 1024, "the bomb should be small on the wire");
        let error = decompress(Encoding::Gzip, bomb, 1024 * 1024, &mut |_| Ok(())).unwrap_err();
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

    #[test]
    fn a_bomb_is_stopped_by_the_memory_budget_before_it_expands() {
        let bomb = gzip(&vec![0u8; 50 * 1024 * 1024]);
        let mut charged = 0;
        let mut budget = |bytes: usize| {
            charged += bytes;
            if charged > 8 * CHARGE_STEP {
                return Err(super::super::Overloaded::Memory { budget_mib: 4 });
            }
            Ok(())
        };
        let error = decompress(Encoding::Gzip, bomb, 64 * 1024 * 1024, &mut budget).unwrap_err();
        assert!(matches!(error, DecompressError::Overloaded(_)), "{error}");
        assert!(charged <= 10 * CHARGE_STEP);
    }

    #[test]
    fn corrupt_gzip_is_reported_not_panicked() {
        let error = decompress(Encoding::Gzip, bytes::Bytes::from_static(b"\x1f\x8bnot gzip"), 1024, &mut |_| Ok(()))
            .unwrap_err();
        assert!(matches!(error, DecompressError::Corrupt { .. }), "{error}");
    }

    #[test]
    fn content_encoding_names() {
        assert_eq!(Encoding::from_header(None), Some(Encoding::Identity));
        assert_eq!(Encoding::from_header(Some("GZIP")), Some(Encoding::Gzip));
        assert_eq!(Encoding::from_header(Some("br")), None);
    }
}
