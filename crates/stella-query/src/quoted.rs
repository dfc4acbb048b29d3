//! String literals as the query languages write them: `"..."` (or `'...'`) with escapes, and
//! `` `...` `` taken as it is.

/// How unknown escapes (`\d`) are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escapes {
    /// As Go reads them (LogQL): an unknown escape is an error.
    Strict,
    /// The escaped character as it is (TraceQL).
    Lenient,
}

/// Reads the literal whose opening quote is `chars[start]`: its value and the index of its closing quote;
/// an error is the index to report and what is wrong.
pub(crate) fn quoted(chars: &[char], start: usize, escapes: Escapes) -> Result<(String, usize), (usize, String)> {
    let quote = chars[start];
    let unterminated = || (start, "unterminated string".to_string());
    let mut value = String::new();
    let mut at = start + 1;
    loop {
        match chars.get(at) {
            None => return Err(unterminated()),
            Some(&end) if end == quote => return Ok((value, at)),
            Some('\\') if quote != '`' => {
                at += 1;
                match chars.get(at) {
                    None => return Err(unterminated()),
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some('r') => value.push('\r'),
                    Some(&other @ ('\\' | '"' | '\'')) => value.push(other),
                    Some(&other) if escapes == Escapes::Lenient => value.push(other),
                    Some(other) => {
                        // Go refuses unknown escapes; regex escapes (\d, \.) must be doubled.
                        return Err((
                            at - 1,
                            format!("invalid escape \\{other} in a string; write \\\\{other} or use `backquotes`"),
                        ));
                    }
                }
            }
            Some(&other) => value.push(other),
        }
        at += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, escapes: Escapes) -> Result<(String, usize), (usize, String)> {
        quoted(&text.chars().collect::<Vec<_>>(), 0, escapes)
    }

    #[test]
    fn literals_read_with_their_escapes() {
        assert_eq!(read(r#""a\"b\n" rest"#, Escapes::Strict), Ok(("a\"b\n".into(), 7)));
        assert_eq!(read(r"`\d+`", Escapes::Strict), Ok((r"\d+".into(), 4)));
        assert_eq!(read(r#""\d""#, Escapes::Lenient), Ok(("d".into(), 3)));
        assert!(read(r#""\d""#, Escapes::Strict).unwrap_err().1.contains("invalid escape \\d"));
        assert_eq!(read(r#""open"#, Escapes::Strict).unwrap_err(), (0, "unterminated string".into()));
    }
}
