//! Borrowed views of encoded OTLP messages: the fields of a message as slices of its bytes, the few
//! fields of a span a sampler needs, attributes looked up by key, and the writing of length-delimited
//! fields. A consumer of stored records selects and forwards spans with these without decoding them into
//! owned structs and encoding them again.
use super::{WireError, varint};

/// One field's value as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WireValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: a string, bytes, a message or a packed list.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// A field of a message: its number, its value, and where the whole field (tag included) lies in the
/// message's bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field<'a> {
    /// The field number.
    pub number: u32,
    /// The value.
    pub value: WireValue<'a>,
    /// The field's bytes, tag included, as offsets into the message.
    pub span: (usize, usize),
}

/// The fields of an encoded message, in order (see [`fields`]).
pub struct Fields<'a> {
    bytes: &'a [u8],
    offset: usize,
}

/// Iterates the fields of `bytes`; a malformed field yields one error and ends the iteration.
pub fn fields(bytes: &[u8]) -> Fields<'_> {
    Fields { bytes, offset: 0 }
}

impl<'a> Fields<'a> {
    fn read(&mut self) -> Result<Field<'a>, WireError> {
        let bytes = self.bytes;
        let start = self.offset;
        let (key, key_len) = varint(bytes, start)?;
        let mut offset = start + key_len;
        let number =
            u32::try_from(key >> 3).map_err(|_| WireError { offset: start, reason: "field number too large" })?;
        let fixed = |offset: usize, len: usize| {
            bytes.get(offset..offset + len).ok_or(WireError { offset, reason: "a fixed field runs past the end" })
        };
        let value = match key & 7 {
            0 => {
                let (value, len) = varint(bytes, offset)?;
                offset += len;
                WireValue::Varint(value)
            }
            1 => {
                let raw = fixed(offset, 8)?;
                offset += 8;
                WireValue::Fixed64(u64::from_le_bytes(raw.try_into().unwrap_or_default()))
            }
            5 => {
                let raw = fixed(offset, 4)?;
                offset += 4;
                WireValue::Fixed32(u32::from_le_bytes(raw.try_into().unwrap_or_default()))
            }
            2 => {
                let (length, len) = varint(bytes, offset)?;
                offset += len;
                let end = usize::try_from(length)
                    .ok()
                    .and_then(|length| offset.checked_add(length))
                    .filter(|end| *end <= bytes.len())
                    .ok_or(WireError { offset, reason: "length runs past the end" })?;
                let value = WireValue::Bytes(&bytes[offset..end]);
                offset = end;
                value
            }
            _ => return Err(WireError { offset: start, reason: "unsupported wire type" }),
        };
        self.offset = offset;
        Ok(Field { number, value, span: (start, offset) })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset >= self.bytes.len() {
            return None;
        }
        let field = self.read();
        if field.is_err() {
            self.offset = self.bytes.len();
        }
        Some(field)
    }
}

/// An attribute value, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnyValueView<'a> {
    /// `string_value`.
    String(&'a str),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
    /// An array, a key-value list or bytes, encoded.
    Other(&'a [u8]),
    /// No value set.
    Empty,
}

impl<'a> AnyValueView<'a> {
    /// Reads an encoded `AnyValue` (the last value field wins, as in a decoder).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut value = AnyValueView::Empty;
        for field in fields(bytes) {
            let field = field?;
            value = match (field.number, field.value) {
                (1, WireValue::Bytes(text)) => AnyValueView::String(
                    std::str::from_utf8(text)
                        .map_err(|_| WireError { offset: field.span.0, reason: "a string is not UTF-8" })?,
                ),
                (2, WireValue::Varint(flag)) => AnyValueView::Bool(flag != 0),
                (3, WireValue::Varint(number)) => AnyValueView::Int(number as i64),
                (4, WireValue::Fixed64(bits)) => AnyValueView::Double(f64::from_bits(bits)),
                (5..=7, WireValue::Bytes(raw)) => AnyValueView::Other(raw),
                _ => value,
            };
        }
        Ok(value)
    }
}

/// The value of attribute `key` among the `KeyValue`s in field `field` of `message` (the first with that
/// key), or `None` (also for a malformed attribute).
pub fn attribute<'a>(message: &'a [u8], field: u32, key: &str) -> Option<AnyValueView<'a>> {
    for entry in fields(message) {
        let Ok(Field { number, value: WireValue::Bytes(pair), .. }) = entry else { continue };
        if number != field {
            continue;
        }
        let (mut found_key, mut found_value) = (None, None);
        for part in fields(pair).flatten() {
            match (part.number, part.value) {
                (1, WireValue::Bytes(name)) => found_key = Some(name),
                (2, WireValue::Bytes(value)) => found_value = Some(value),
                _ => {}
            }
        }
        if found_key == Some(key.as_bytes()) {
            return match found_value {
                Some(value) => AnyValueView::parse(value).ok(),
                None => Some(AnyValueView::Empty),
            };
        }
    }
    None
}

/// The fields of an encoded span a tail sampler reads, borrowed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpanView<'a> {
    /// The whole encoded span.
    pub bytes: &'a [u8],
    /// `trace_id`.
    pub trace_id: &'a [u8],
    /// `span_id`.
    pub span_id: &'a [u8],
    /// `parent_span_id` (empty for a root span).
    pub parent_span_id: &'a [u8],
    /// `start_time_unix_nano`.
    pub start_time_unix_nano: u64,
    /// `end_time_unix_nano`.
    pub end_time_unix_nano: u64,
    /// `status.code` (0: unset).
    pub status_code: i32,
}

impl<'a> SpanView<'a> {
    /// Reads an encoded `Span`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut view = SpanView {
            bytes,
            trace_id: &[],
            span_id: &[],
            parent_span_id: &[],
            start_time_unix_nano: 0,
            end_time_unix_nano: 0,
            status_code: 0,
        };
        for field in fields(bytes) {
            let field = field?;
            match (field.number, field.value) {
                (1, WireValue::Bytes(id)) => view.trace_id = id,
                (2, WireValue::Bytes(id)) => view.span_id = id,
                (4, WireValue::Bytes(id)) => view.parent_span_id = id,
                (7, WireValue::Fixed64(time)) => view.start_time_unix_nano = time,
                (8, WireValue::Fixed64(time)) => view.end_time_unix_nano = time,
                (15, WireValue::Bytes(status)) => {
                    for part in fields(status) {
                        let part = part?;
                        if let (3, WireValue::Varint(code)) = (part.number, part.value) {
                            view.status_code = code as i32;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(view)
    }

    /// The value of the span attribute `key`.
    pub fn attribute(&self, key: &str) -> Option<AnyValueView<'a>> {
        attribute(self.bytes, SPAN_ATTRIBUTES, key)
    }
}

/// The field of `Span` holding its attributes.
pub const SPAN_ATTRIBUTES: u32 = 9;
/// The field of `Resource` holding its attributes.
pub const RESOURCE_ATTRIBUTES: u32 = 1;

/// Bytes of `value` as a varint.
pub fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros()).div_ceil(7) as usize
}

/// Appends `value` as a varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Bytes of a length-delimited field `field` holding `len` bytes.
pub fn delimited_len(field: u32, len: usize) -> usize {
    varint_len(u64::from(field) << 3) + varint_len(len as u64) + len
}

/// Appends the tag and length of a length-delimited field `field` holding `len` bytes (its contents
/// follow).
pub fn put_delimited_header(out: &mut Vec<u8>, field: u32, len: usize) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, len as u64);
}

/// Appends the length-delimited field `field` holding `bytes`.
pub fn put_delimited(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_delimited_header(out, field, bytes.len());
    out.extend_from_slice(bytes);
}

/// Bytes of an encoded `KeyValue` with a string value.
pub fn string_attribute_len(key: &str, value: &str) -> usize {
    delimited_len(1, key.len()) + delimited_len(2, delimited_len(1, value.len()))
}

/// Appends an encoded `KeyValue {key, value: AnyValue {string_value}}` (without a field tag).
pub fn put_string_attribute(out: &mut Vec<u8>, key: &str, value: &str) {
    put_delimited(out, 1, key.as_bytes());
    put_delimited_header(out, 2, delimited_len(1, value.len()));
    put_delimited(out, 1, value.as_bytes());
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proto::common::v1::{AnyValue, KeyValue, any_value};
    use crate::proto::trace::v1::{Span, Status};

    fn attribute_of(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }

    #[test]
    fn a_span_view_reads_what_prost_wrote() {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            name: "checkout".into(),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_500_000_000,
            attributes: vec![
                attribute_of("http.route", any_value::Value::StringValue("/pay".into())),
                attribute_of("retries", any_value::Value::IntValue(-3)),
                attribute_of("ratio", any_value::Value::DoubleValue(0.5)),
                attribute_of("ok", any_value::Value::BoolValue(true)),
            ],
            status: Some(Status { code: 2, message: "boom".into() }),
            ..Default::default()
        };
        let bytes = span.encode_to_vec();
        let view = SpanView::parse(&bytes).unwrap();
        assert_eq!((view.trace_id, view.span_id, view.parent_span_id), (&[1; 16][..], &[2; 8][..], &[3; 8][..]));
        assert_eq!(
            (view.start_time_unix_nano, view.end_time_unix_nano, view.status_code),
            (span.start_time_unix_nano, span.end_time_unix_nano, 2)
        );
        assert_eq!(view.attribute("http.route"), Some(AnyValueView::String("/pay")));
        assert_eq!(view.attribute("retries"), Some(AnyValueView::Int(-3)));
        assert_eq!(view.attribute("ratio"), Some(AnyValueView::Double(0.5)));
        assert_eq!(view.attribute("ok"), Some(AnyValueView::Bool(true)));
        assert_eq!(view.attribute("absent"), None);
    }

    #[test]
    fn written_fields_decode_with_prost_and_lengths_are_exact() {
        for value in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
        }
        let mut span = Vec::new();
        put_delimited(&mut span, 1, &[7; 16]);
        let mut pair = Vec::new();
        put_string_attribute(&mut pair, "sampling.policy", "errors");
        assert_eq!(pair.len(), string_attribute_len("sampling.policy", "errors"));
        put_delimited(&mut span, SPAN_ATTRIBUTES, &pair);
        let decoded = Span::decode(span.as_slice()).unwrap();
        assert_eq!(decoded.trace_id, vec![7; 16]);
        assert_eq!(
            decoded.attributes,
            vec![attribute_of("sampling.policy", any_value::Value::StringValue("errors".into()))]
        );
    }

    #[test]
    fn malformed_bytes_are_errors_never_panics() {
        let bytes = Span { trace_id: vec![1; 16], name: "x".repeat(300), ..Default::default() }.encode_to_vec();
        for cut in 0..bytes.len() {
            let _ = SpanView::parse(&bytes[..cut]);
            let _ = attribute(&bytes[..cut], SPAN_ATTRIBUTES, "x");
        }
        assert!(SpanView::parse(&[0x0a, 0x05, 1]).is_err(), "a length past the end");
        assert!(fields(&[0x0b]).next().is_some_and(|field| field.is_err()), "wire type 3 (groups) is refused");
    }
}
