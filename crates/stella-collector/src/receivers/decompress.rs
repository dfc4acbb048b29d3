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
}

/// Decompresses `body` per `encoding`, refusing to produce more than `cap` bytes.
pub(crate) fn decompress(encoding: Encoding, body: bytes::Bytes, cap: usize) -> Result<bytes::Bytes, DecompressError> {
    let corrupt = |source| DecompressError::Corrupt { encoding, source };
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    match encoding {
        Encoding::Identity => {
            if body.len() > cap {
                return Err(DecompressError::TooLarge { cap });
            }
            return Ok(body);
        }
        Encoding::Gzip => {
            flate2::read::MultiGzDecoder::new(body.as_ref()).take(limit).read_to_end(&mut out).map_err(corrupt)?;
        }
        Encoding::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(body.as_ref()).map_err(corrupt)?;
            decoder.take(limit).read_to_end(&mut out).map_err(corrupt)?;
        }
    }
    if out.len() > cap {
        return Err(DecompressError::TooLarge { cap });
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
        let error = decompress(Encoding::Gzip, bomb, 1024 * 1024).unwrap_err();
        assert!(matches!(error, DecompressError::TooLarge { cap: 1048576 }), "{error}");
    }

    #[test]
    fn gzip_and_zstd_round_trip_under_the_cap() {
        let data = b"hello otlp".repeat(100);
        assert_eq!(decompress(Encoding::Gzip, gzip(&data), data.len()).unwrap().as_ref(), data.as_slice());
        let zstd = bytes::Bytes::from(zstd::bulk::compress(&data, 3).unwrap());
        assert_eq!(decompress(Encoding::Zstd, zstd, data.len()).unwrap().as_ref(), data.as_slice());
    }

    #[test]
    fn corrupt_gzip_is_reported_not_panicked() {
        let error = decompress(Encoding::Gzip, bytes::Bytes::from_static(b"\x1f\x8bnot gzip"), 1024).unwrap_err();
        assert!(matches!(error, DecompressError::Corrupt { .. }), "{error}");
    }

    #[test]
    fn content_encoding_names() {
        assert_eq!(Encoding::from_header(None), Some(Encoding::Identity));
        assert_eq!(Encoding::from_header(Some("GZIP")), Some(Encoding::Gzip));
        assert_eq!(Encoding::from_header(Some("br")), None);
    }
}
