//! Built-in value detectors: secrets and personal data a policy switches on by name.
//!
//! Each detector is a regular expression that finds candidates plus, where the format has one, a checksum
//! that confirms them (Luhn for payment cards, ISO 7064 mod 97 for IBANs), so a random 16-digit order number
//! is not masked as a card. Every pattern uses ASCII word boundaries so the whole set runs on the regex
//! crate's DFA in one pass over a string.
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// A built-in detector, by the name a policy uses in `detectors:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// `Bearer <token>` and `Basic <credentials>` Authorization values (the credential is masked).
    Authorization,
    /// JSON Web Tokens (`eyJ...` header, payload and signature).
    Jwt,
    /// PEM private keys (`-----BEGIN ... PRIVATE KEY-----` to the matching end line, or the end of the text).
    PemPrivateKey,
    /// AWS-style access key ids (`AKIA...`, `ASIA...` and the other documented prefixes, 20 characters).
    AwsAccessKey,
    /// The password of a URL's user info (`scheme://user:password@host`); the user name stays.
    UrlPassword,
    /// E-mail addresses.
    Email,
    /// Payment card numbers: 13 to 19 digits, with or without spaces or dashes, a known issuer prefix and a
    /// valid Luhn checksum.
    PaymentCard,
    /// IBANs, with or without spaces, with a valid mod-97 checksum.
    Iban,
}

impl Detector {
    /// Every detector, in the order their names sort.
    pub const ALL: [Detector; 8] = [
        Detector::Authorization,
        Detector::AwsAccessKey,
        Detector::Email,
        Detector::Iban,
        Detector::Jwt,
        Detector::PaymentCard,
        Detector::PemPrivateKey,
        Detector::UrlPassword,
    ];

    /// The name used in policies and in the `rule` label of `telemetry_redactions_total`.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Authorization => "authorization",
            Detector::Jwt => "jwt",
            Detector::PemPrivateKey => "pem_private_key",
            Detector::AwsAccessKey => "aws_access_key",
            Detector::UrlPassword => "url_password",
            Detector::Email => "email",
            Detector::PaymentCard => "payment_card",
            Detector::Iban => "iban",
        }
    }

    /// The candidate pattern. Capture group 1, where present, is the part to mask.
    pub(crate) fn pattern(self) -> &'static str {
        match self {
            Detector::Authorization => r"(?i-u:\b(?:bearer|basic)[ \t]+([A-Za-z0-9\-._~+/]{8,}=*))",
            Detector::Jwt => r"(?-u:\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)",
            Detector::PemPrivateKey => {
                r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)"
            }
            Detector::AwsAccessKey => r"(?-u:\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}\b)",
            Detector::UrlPassword => r"(?-u:\b)[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:([^/\s@]+)@",
            Detector::Email => {
                r"(?-u:\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b)"
            }
            Detector::PaymentCard => r"(?-u:\b[0-9](?:[ \-]?[0-9]){12,18}\b)",
            Detector::Iban => r"(?-u:\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b)",
        }
    }

    /// Confirms a candidate found by [`Detector::pattern`] at the start of `candidate` in `text` and returns
    /// the range to mask, or `None` when no prefix of it passes the checksum (and issuer prefix). A rejected
    /// candidate is searched again from its next character, so a card behind an unrelated number is found.
    pub(crate) fn confirm(self, text: &str, candidate: Range<usize>) -> Option<Range<usize>> {
        let found = text.get(candidate.clone())?;
        let longest = match self {
            Detector::PaymentCard => longest_valid_prefix(
                found,
                |c| c.is_ascii_digit(),
                13..=19,
                |digits| {
                    let digits: Vec<u8> = digits.iter().map(|digit| digit - b'0').collect();
                    has_card_prefix(&digits) && luhn_valid(&digits)
                },
            ),
            Detector::Iban => longest_valid_prefix(found, |c| c.is_ascii_alphanumeric(), 15..=34, iban_valid),
            _ => return Some(candidate),
        }?;
        Some(candidate.start..candidate.start + longest)
    }
}

/// The byte length of the longest prefix of `found` whose `counted` characters (separators skipped) number
/// within `lengths`, pass `valid`, and are not followed directly by another counted character.
fn longest_valid_prefix(
    found: &str,
    counted: impl Fn(u8) -> bool,
    lengths: std::ops::RangeInclusive<usize>,
    valid: impl Fn(&[u8]) -> bool,
) -> Option<usize> {
    let bytes = found.as_bytes();
    // Byte offsets just after each counted character, so a prefix of n of them ends at ends[n - 1].
    let ends: Vec<usize> = (0..bytes.len()).filter(|&at| counted(bytes[at])).map(|at| at + 1).collect();
    let compact: Vec<u8> = bytes.iter().copied().filter(|&byte| counted(byte)).collect();
    let max = compact.len().min(*lengths.end());
    (*lengths.start()..=max).rev().find_map(|len| {
        let end = ends[len - 1];
        let glued = bytes.get(end).is_some_and(|&next| counted(next));
        (!glued && valid(&compact[..len])).then_some(end)
    })
}

/// The Luhn check over decimal digits.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| {
            let digit = u32::from(digit);
            if !position.is_multiple_of(2) {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// Issuer prefixes of the card networks (Visa, Mastercard, American Express, Discover, JCB, Diners Club,
/// UnionPay, Maestro), with their lengths; a number outside them is an id, not a card.
fn has_card_prefix(digits: &[u8]) -> bool {
    let prefix = |count: usize| digits.iter().take(count).fold(0u32, |acc, &digit| acc * 10 + u32::from(digit));
    let len = digits.len();
    match digits.first() {
        Some(4) => matches!(len, 13 | 16 | 19),
        Some(2) => (2221..=2720).contains(&prefix(4)) && len == 16,
        Some(5) => match prefix(2) {
            51..=55 => len == 16,
            50 | 56..=59 => (12..=19).contains(&len),
            _ => false,
        },
        Some(3) => match prefix(2) {
            34 | 37 => len == 15,
            35 => (16..=19).contains(&len),
            36 | 38 | 39 | 30 => (14..=19).contains(&len),
            _ => false,
        },
        Some(6) => (16..=19).contains(&len),
        _ => false,
    }
}

/// ISO 13616 check: the first four characters moved to the end, letters as 10..35, the number mod 97 is 1.
pub fn iban_valid(compact: &[u8]) -> bool {
    if compact.len() < 15 || compact.len() > 34 {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder = 0u32;
    for &c in tail.iter().chain(head) {
        let value = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 { (remainder * 100 + value) % 97 } else { (remainder * 10 + value) % 97 };
    }
    remainder == 1
}
