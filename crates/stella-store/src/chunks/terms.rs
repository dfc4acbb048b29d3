//! Term filters: for each sealed chunk of traces, a Bloom filter of the terms its spans carry (span
//! names, status codes, string values of span and resource attributes), and for each chunk of logs, of
//! the trigrams (three consecutive bytes) of its lines, so that a search for a value or a line filter
//! rules out, without reading them, the chunks that cannot hold a match. A filter never rules out a chunk
//! that holds a term (no false negatives); about 1% of the chunks without it are still read.
//!
//! Kept as `<sha256>.terms` next to the chunk, built from the chunk's records alone (the same records give
//! the same bytes). A reader that finds no file (a chunk sealed before filters existed, a crash between the
//! chunk and its filter) or one that fails its checksum reads the chunk: a damaged filter costs time,
//! never a result.
//!
//! ```text
//! magic     8 bytes  "STLTERMS"
//! version   u8       TERMS_FORMAT_VERSION (1)
//! hashes    u8       k, bits set per term (1-16)
//! bits      u32 BE   m, a multiple of 8, at least 64
//! bitmap    m/8 bytes; bit i is (byte i / 8) >> (i % 8) & 1
//! crc32     u32 BE   CRC-32 (IEEE) of every byte before it
//! ```
//! Term `t` sets bits `(h1 + i * h2) mod m` for `i` in `0..k`, where `h1` and `h2` are the low and high
//! 64 bits of XXH3-128 of the term's bytes: `n` + name (span name), `t` + code as one byte (status), `s` or
//! `r` + key + 0x00 + value (a span or resource attribute whose value is a string), `g` + three bytes (a
//! trigram of a log line as Loki shows it: the string body, else the body as JSON).
use std::collections::HashSet;

use stella_otlp::OtlpRequest;
use stella_otlp::proto::common::v1::{KeyValue, any_value};
use stella_otlp::proto::trace::v1::Span;
use twox_hash::XxHash3_128;

/// The first bytes of every term filter.
const MAGIC: &[u8; 8] = b"STLTERMS";

/// The term filter format version.
pub const TERMS_FORMAT_VERSION: u8 = 1;

/// Bits set per term: with [`BITS_PER_TERM`], about 1% false positives.
const HASHES: u8 = 7;

/// Bitmap bits per distinct term.
const BITS_PER_TERM: usize = 10;

/// Header bytes before the bitmap.
const HEADER: usize = MAGIC.len() + 2 + 4;

/// The file of a chunk's term filter in its day directory.
pub fn terms_file(sha256: &str) -> String {
    format!("{sha256}.terms")
}

/// A term a span can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term<'a> {
    /// The span's name.
    Name(&'a str),
    /// The span's status code (0 unset, 1 ok, 2 error).
    Status(i32),
    /// A span attribute with a string value.
    Span(&'a str, &'a str),
    /// A resource attribute with a string value.
    Resource(&'a str, &'a str),
    /// Three consecutive bytes of a log line.
    Trigram([u8; 3]),
}

/// The value of an attribute whose value is a string (only those are terms).
fn string_value(attribute: &KeyValue) -> Option<&str> {
    match attribute.value.as_ref().and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => Some(text),
        _ => None,
    }
}

/// The trigram terms of a text: each run of three consecutive bytes.
pub fn trigram_terms(text: &[u8]) -> impl Iterator<Item = Term<'static>> + '_ {
    text.windows(3).map(|window| Term::Trigram([window[0], window[1], window[2]]))
}

impl Term<'_> {
    /// Whether `span`, of a resource with `resource` attributes, carries this term (exactly what its
    /// chunk's filter was given for it; a trigram is no span's).
    pub fn carried_by(&self, span: &Span, resource: &[KeyValue]) -> bool {
        let has = |attributes: &[KeyValue], key: &str, value: &str| {
            attributes.iter().any(|attribute| attribute.key == key && string_value(attribute) == Some(value))
        };
        match self {
            Term::Name(name) => span.name == *name,
            Term::Status(code) => span.status.as_ref().map_or(0, |status| status.code) == *code,
            Term::Span(key, value) => has(&span.attributes, key, value),
            Term::Resource(key, value) => has(resource, key, value),
            Term::Trigram(_) => false,
        }
    }

    /// The term's hash, as filters store it (see the module's format).
    pub fn hash(&self) -> u128 {
        self.hash_with(&mut Vec::new())
    }

    /// [`Term::hash`], writing the term's bytes into `scratch` (cleared first) to spare an allocation.
    fn hash_with(&self, scratch: &mut Vec<u8>) -> u128 {
        scratch.clear();
        match self {
            Term::Name(name) => {
                scratch.push(b'n');
                scratch.extend_from_slice(name.as_bytes());
            }
            Term::Status(code) => scratch.extend_from_slice(&[b't', u8::try_from(*code).unwrap_or(u8::MAX)]),
            Term::Trigram(bytes) => {
                scratch.push(b'g');
                scratch.extend_from_slice(bytes);
            }
            Term::Span(key, value) | Term::Resource(key, value) => {
                scratch.push(if matches!(self, Term::Span(..)) { b's' } else { b'r' });
                scratch.extend_from_slice(key.as_bytes());
                scratch.push(0);
                scratch.extend_from_slice(value.as_bytes());
            }
        }
        XxHash3_128::oneshot(scratch)
    }
}

/// The distinct terms of the records added so far (traces and logs; metrics add none).
#[derive(Debug, Clone, Default)]
pub struct ChunkTerms {
    hashes: HashSet<u128>,
    /// The log line trigrams seen, one bit per possible trigram (2 MiB, made at the first line).
    trigrams: Vec<u64>,
    scratch: Vec<u8>,
}

/// Words of the trigram bitmap: one bit for each of the 2^24 trigrams.
const TRIGRAM_WORDS: usize = (1 << 24) / 64;

impl ChunkTerms {
    /// Adds the terms of one request's spans or log lines.
    pub fn add_request(&mut self, request: &OtlpRequest) {
        let request = match request {
            OtlpRequest::Traces(request) => request,
            OtlpRequest::Logs(request) => {
                for record in request
                    .resource_logs
                    .iter()
                    .flat_map(|group| &group.scope_logs)
                    .flat_map(|scope| &scope.log_records)
                {
                    match record.body.as_ref().and_then(|body| body.value.as_ref()) {
                        Some(any_value::Value::StringValue(text)) => self.add_line(text.as_bytes()),
                        _ => self.add_line(stella_otlp::loki::line(record.body.as_ref()).as_bytes()),
                    }
                }
                return;
            }
            OtlpRequest::Metrics(_) => return,
        };
        for group in &request.resource_spans {
            if let Some(resource) = &group.resource {
                self.add_attributes(&resource.attributes, Term::Resource);
            }
            for span in group.scope_spans.iter().flat_map(|scope| &scope.spans) {
                let status = span.status.as_ref().map_or(0, |status| status.code);
                for term in [Term::Name(&span.name), Term::Status(status)] {
                    self.hashes.insert(term.hash_with(&mut self.scratch));
                }
                self.add_attributes(&span.attributes, Term::Span);
            }
        }
    }

    fn add_attributes<'a>(&mut self, attributes: &'a [KeyValue], term: fn(&'a str, &'a str) -> Term<'a>) {
        for attribute in attributes {
            if let Some(value) = string_value(attribute) {
                self.hashes.insert(term(&attribute.key, value).hash_with(&mut self.scratch));
            }
        }
    }

    fn add_line(&mut self, line: &[u8]) {
        if line.len() < 3 {
            return;
        }
        if self.trigrams.is_empty() {
            self.trigrams = vec![0; TRIGRAM_WORDS];
        }
        for window in line.windows(3) {
            let index = usize::from(window[0]) << 16 | usize::from(window[1]) << 8 | usize::from(window[2]);
            self.trigrams[index / 64] |= 1 << (index % 64);
        }
    }

    /// Whether no term was added (a chunk of metrics).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty() && self.trigrams.iter().all(|word| *word == 0)
    }

    /// The filter file of these terms. Independent of the order terms were added in.
    pub fn encode(self) -> Vec<u8> {
        let mut hashes = self.hashes;
        for (word_at, word) in self.trigrams.iter().enumerate().filter(|(_, word)| **word != 0) {
            for bit in (0..64).filter(|bit| word & (1 << bit) != 0) {
                let index = word_at * 64 + bit;
                let trigram = [(index >> 16) as u8, (index >> 8) as u8, index as u8];
                hashes.insert(Term::Trigram(trigram).hash());
            }
        }
        let bits = (hashes.len() * BITS_PER_TERM).div_ceil(8).max(8) * 8;
        let mut bitmap = vec![0u8; bits / 8];
        for hash in &hashes {
            for bit in positions(*hash, bits as u64, HASHES) {
                bitmap[(bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        let mut out = Vec::with_capacity(HEADER + bitmap.len() + 4);
        out.extend_from_slice(MAGIC);
        out.push(TERMS_FORMAT_VERSION);
        out.push(HASHES);
        out.extend_from_slice(&u32::try_from(bits).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&bitmap);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }
}

/// The bits term `hash` sets in a bitmap of `bits` bits.
fn positions(hash: u128, bits: u64, hashes: u8) -> impl Iterator<Item = u64> {
    let (low, high) = (hash as u64, (hash >> 64) as u64);
    (0..u64::from(hashes)).map(move |i| low.wrapping_add(i.wrapping_mul(high)) % bits)
}

/// A chunk's term filter, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermFilter {
    hashes: u8,
    bitmap: Vec<u8>,
}

impl TermFilter {
    /// Reads a filter file; an error says what is wrong with it (the caller then reads the chunk).
    pub fn decode(bytes: &[u8]) -> Result<TermFilter, String> {
        let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
            return Err(format!("{} bytes is too short for a term filter", bytes.len()));
        };
        if crc32fast::hash(body) != u32::from_be_bytes(*crc) {
            return Err("its checksum does not match its bytes".into());
        }
        let Some((header, bitmap)) = body.split_at_checked(HEADER) else {
            return Err("its header is truncated".into());
        };
        if &header[..MAGIC.len()] != MAGIC {
            return Err("it is not a term filter (bad magic)".into());
        }
        let (version, hashes) = (header[MAGIC.len()], header[MAGIC.len() + 1]);
        if version != TERMS_FORMAT_VERSION {
            return Err(format!("format version {version} is not {TERMS_FORMAT_VERSION}"));
        }
        let bits = u32::from_be_bytes([header[10], header[11], header[12], header[13]]) as usize;
        if !(1..=16).contains(&hashes) || bits < 64 || !bits.is_multiple_of(8) || bitmap.len() != bits / 8 {
            return Err(format!("{hashes} hashes over {bits} bits in a bitmap of {} bytes", bitmap.len()));
        }
        Ok(TermFilter { hashes, bitmap: bitmap.to_vec() })
    }

    /// Whether a term of this hash may be in the chunk (false: it certainly is not).
    pub fn may_contain(&self, hash: u128) -> bool {
        let bits = self.bitmap.len() as u64 * 8;
        positions(hash, bits, self.hashes).all(|bit| self.bitmap[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
    }

    /// Whether the chunk may hold a span with every clause: each clause is a list of term hashes of
    /// which at least one must be present.
    pub fn admits(&self, clauses: &[Vec<u128>]) -> bool {
        clauses.iter().all(|clause| clause.iter().any(|hash| self.may_contain(*hash)))
    }
}

#[cfg(test)]
mod tests {
    use stella_otlp::attributes::string;
    use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
    use stella_otlp::proto::resource::v1::Resource;
    use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    use super::*;

    fn request(spans: usize) -> OtlpRequest {
        let spans = (0..spans)
            .map(|index| Span {
                name: format!("op-{index}"),
                attributes: vec![string("url.path", &format!("/item/{index}")), string("n", "x")],
                status: (index % 10 == 0).then(|| Status { code: 2, message: String::new() }),
                ..Default::default()
            })
            .collect();
        OtlpRequest::Traces(ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource { attributes: vec![string("service.name", "cart")], ..Default::default() }),
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        })
    }

    fn filter(spans: usize) -> (Vec<u8>, TermFilter) {
        let mut terms = ChunkTerms::default();
        terms.add_request(&request(spans));
        let bytes = terms.encode();
        let filter = TermFilter::decode(&bytes).unwrap();
        (bytes, filter)
    }

    #[test]
    fn every_term_of_the_chunk_is_found_and_few_others_are() {
        let (_, filter) = filter(2000);
        for index in 0..2000 {
            let path = format!("/item/{index}");
            assert!(filter.may_contain(Term::Span("url.path", &path).hash()), "{path}");
            assert!(filter.may_contain(Term::Name(&format!("op-{index}")).hash()));
        }
        assert!(filter.may_contain(Term::Resource("service.name", "cart").hash()));
        assert!(filter.may_contain(Term::Status(2).hash()) && filter.may_contain(Term::Status(0).hash()));
        let absent =
            (0..10_000).filter(|index| filter.may_contain(Term::Span("url.path", &format!("/gone/{index}")).hash()));
        assert!(absent.count() < 300, "false positives stay near 1%");
        let gone =
            (0..).map(|index| Term::Name(&format!("gone-{index}")).hash()).find(|hash| !filter.may_contain(*hash));
        let gone = gone.unwrap();
        let clauses = [vec![Term::Span("n", "x").hash()], vec![gone, Term::Name("op-7").hash()]];
        assert!(filter.admits(&clauses), "each clause has a present term");
        assert!(!filter.admits(&[vec![Term::Span("n", "x").hash()], vec![gone]]), "a clause of absent terms");
    }

    #[test]
    fn the_same_terms_give_the_same_bytes_in_any_order() {
        let mut forward = ChunkTerms::default();
        let mut backward = ChunkTerms::default();
        let requests: Vec<OtlpRequest> = (1..=3).map(request).collect();
        requests.iter().for_each(|request| forward.add_request(request));
        requests.iter().rev().for_each(|request| backward.add_request(request));
        assert!(ChunkTerms::default().is_empty());
        assert_eq!(forward.encode(), backward.encode());
    }

    #[test]
    fn log_lines_give_their_trigrams() {
        use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
        use stella_otlp::proto::common::v1::AnyValue;
        use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        let line = |text: &str| LogRecord {
            body: Some(AnyValue { value: Some(any_value::Value::StringValue(text.into())) }),
            ..Default::default()
        };
        let mut terms = ChunkTerms::default();
        terms.add_request(&OtlpRequest::Logs(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![line("payment declined"), line("ok"), line("\u{e9}t\u{e9}")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }));
        assert!(!terms.is_empty());
        let filter = TermFilter::decode(&terms.encode()).unwrap();
        for text in ["payment declined", "\u{e9}t\u{e9}"] {
            for window in text.as_bytes().windows(3) {
                assert!(filter.may_contain(Term::Trigram([window[0], window[1], window[2]]).hash()), "{text}");
            }
        }
        let absent = (0u8..=255).filter(|byte| filter.may_contain(Term::Trigram([b'z', b'q', *byte]).hash()));
        assert!(absent.count() < 10, "few of 256 absent trigrams pass");
        assert!(ChunkTerms::default().is_empty());
    }

    #[test]
    fn a_damaged_filter_is_refused_never_read() {
        let (bytes, _) = filter(50);
        for at in [0, 8, 9, 11, HEADER + 3, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert!(TermFilter::decode(&flipped).is_err(), "a flipped byte at {at} is detected");
        }
        for length in [0, 3, HEADER, bytes.len() - 1] {
            assert!(TermFilter::decode(&bytes[..length]).is_err(), "truncated to {length} bytes");
        }
    }
}
