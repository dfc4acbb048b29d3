use stella_otlp::{OtlpRequest, Signal};

use super::{Compression, Format};

/// The bytes one request takes in a file of this format and compression.
pub fn encode_record(request: &OtlpRequest, format: Format, compression: Compression) -> std::io::Result<Vec<u8>> {
    match format {
        Format::Json => {
            let mut line = stella_otlp::json::encode(request);
            line.push(b'\n');
            compress(line, compression)
        }
        Format::Proto => encode_protobuf_record(&request.encode_protobuf(), compression),
    }
}

/// The `format: proto` record of an already encoded request.
pub fn encode_protobuf_record(message: &[u8], compression: Compression) -> std::io::Result<Vec<u8>> {
    let length = u32::try_from(message.len())
        .map_err(|_| std::io::Error::other("a single request over 4 GiB cannot be length-prefixed"))?;
    let mut framed = Vec::with_capacity(message.len() + 4);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    compress(framed, compression)
}

fn compress(framed: Vec<u8>, compression: Compression) -> std::io::Result<Vec<u8>> {
    match compression {
        Compression::None => Ok(framed),
        Compression::Zstd => zstd::bulk::compress(&framed, 3),
    }
}

/// Reads back a `format: proto` stream (already decompressed): every length-prefixed request in order.
/// A truncated last record is an error naming its offset.
pub fn decode_proto_stream(signal: Signal, mut bytes: &[u8]) -> Result<Vec<OtlpRequest>, String> {
    let mut requests = Vec::new();
    let mut offset = 0usize;
    while !bytes.is_empty() {
        let Some((prefix, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(format!("truncated length prefix at byte {offset}"));
        };
        let length = u32::from_be_bytes(*prefix) as usize;
        let Some(message) = rest.get(..length) else {
            return Err(format!("record at byte {offset} claims {length} bytes, only {} remain", rest.len()));
        };
        requests.push(
            OtlpRequest::decode_protobuf(signal, message)
                .map_err(|error| format!("record at byte {offset}: {error}"))?,
        );
        bytes = &rest[length..];
        offset += 4 + length;
    }
    Ok(requests)
}
