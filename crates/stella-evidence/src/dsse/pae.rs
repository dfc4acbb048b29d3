/// The DSSE pre-authentication encoding of `payload_type` and `payload`: the bytes a signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_length = payload_type.len().to_string();
    let body_length = payload.len().to_string();
    let mut encoded = Vec::with_capacity(
        b"DSSEv1".len() + 4 + type_length.len() + payload_type.len() + body_length.len() + payload.len(),
    );
    encoded.extend_from_slice(b"DSSEv1 ");
    encoded.extend_from_slice(type_length.as_bytes());
    encoded.push(b' ');
    encoded.extend_from_slice(payload_type.as_bytes());
    encoded.push(b' ');
    encoded.extend_from_slice(body_length.as_bytes());
    encoded.push(b' ');
    encoded.extend_from_slice(payload);
    encoded
}

#[cfg(test)]
mod tests {
    use super::pae;

    #[test]
    fn the_protocol_example_encodes_as_published() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn lengths_count_bytes_not_characters() {
        assert_eq!(pae("é", b""), "DSSEv1 2 é 0 ".as_bytes());
    }
}
