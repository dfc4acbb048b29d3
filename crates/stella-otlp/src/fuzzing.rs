//! The bodies of the fuzz targets (`fuzz/`), shared with the corpus replay in `cargo test` so that every
//! input the fuzzer ever saved keeps being checked. Each asserts "no panic, and every failure is a coded
//! error", plus the round trips that must hold for any input the decoders accept.
use crate::{OtlpRequest, Signal};

/// Arbitrary bytes as a protobuf export request of every signal: decoding fails with an error or yields
/// a request that survives validation, the wire-format item count, and a JSON round trip.
pub fn otlp_protobuf(data: &[u8]) {
    for signal in Signal::ALL {
        let Ok(mut request) = OtlpRequest::decode_protobuf(signal, data) else { continue };
        check_request(signal, &mut request);
    }
}

/// Arbitrary bytes as an OTLP/JSON body of every signal: an error with a path, or a request that
/// encodes and decodes to the same protobuf.
pub fn otlp_json(data: &[u8]) {
    for signal in Signal::ALL {
        match crate::json::decode(signal, data) {
            Ok(mut request) => check_request(signal, &mut request),
            Err(error) => assert!(!error.path.is_empty(), "a JSON error without a path: {error}"),
        }
    }
}

fn check_request(signal: Signal, request: &mut OtlpRequest) {
    let encoded = request.encode_protobuf();
    assert_eq!(
        crate::wire::count_items(signal, &encoded),
        Ok(request.item_count()),
        "wire count differs from decoded count"
    );
    let json = crate::json::encode(request);
    let again =
        crate::json::decode(signal, &json).unwrap_or_else(|error| panic!("our own JSON does not decode: {error}"));
    assert_eq!(crate::json::encode(&again), json, "the JSON round trip changed the request");
    // JSON can only say "NaN", so a NaN's payload bits do not survive; everything else must, bit for bit.
    if !json.windows(5).any(|window| window == b"\"NaN\"") {
        assert_eq!(again.encode_protobuf(), encoded, "the JSON round trip changed the protobuf encoding");
    }
    let rejection = crate::validate::remove_invalid(request);
    assert!(rejection.count >= 0);
    assert_eq!(rejection.count == 0, rejection.message.is_empty(), "a rejection without a message or the reverse");
}
