//! A log line through a LogQL pipeline: line filters, `json` and `logfmt` (failures set `__error__`, as
//! Loki does, instead of dropping the line), label filters, `drop` and `keep`.
use std::collections::BTreeMap;

use super::parse::{Conversion, LabelFilter, Piece, Stage};

/// Where a label comes from, as Loki's categorized answers tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    /// A stream label (indexed).
    Stream,
    /// Structured metadata of the entry.
    Metadata,
    /// Extracted by a parser stage.
    Parsed,
}

/// A line and its labels, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// The line.
    pub line: String,
    /// Every label with its value and category.
    pub labels: BTreeMap<String, (String, Category)>,
}

impl Labelled {
    /// A stream's entry: its stream labels, then its structured metadata (a name a stream label has
    /// already becomes `<name>_extracted`).
    pub fn new(line: String, stream: &[(String, String)], metadata: &[(String, String)]) -> Labelled {
        let mut labelled = Labelled { line, labels: BTreeMap::new() };
        for (name, value) in stream {
            labelled.labels.insert(name.clone(), (value.clone(), Category::Stream));
        }
        for (name, value) in metadata {
            labelled.add(name, value.clone(), Category::Metadata);
        }
        labelled
    }

    fn add(&mut self, name: &str, value: String, category: Category) {
        let name = match self.labels.get(name) {
            Some((_, Category::Stream)) => format!("{name}_extracted"),
            Some((_, Category::Metadata)) if category == Category::Parsed => format!("{name}_extracted"),
            _ => name.to_string(),
        };
        self.labels.insert(name, (value, category));
    }

    /// A label's value, empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", |(value, _)| value.as_str())
    }

    fn set_error(&mut self, kind: &str, details: String) {
        if !self.labels.contains_key("__error__") {
            self.labels.insert("__error__".into(), (kind.into(), Category::Parsed));
            self.labels.insert("__error_details__".into(), (details, Category::Parsed));
        }
    }
}

/// Runs `stages` over a line; `None` when a stage drops it.
pub fn run(stages: &[Stage], mut labelled: Labelled) -> Option<Labelled> {
    for stage in stages {
        match stage {
            Stage::Line { keep, regex, patterns, compiled } => {
                let any = if *regex {
                    compiled.iter().any(|pattern| pattern.0.is_match(&labelled.line))
                } else {
                    patterns.iter().any(|pattern| labelled.line.contains(pattern.as_str()))
                };
                if any != *keep {
                    return None;
                }
            }
            Stage::Json => json(&mut labelled),
            Stage::Logfmt => logfmt(&mut labelled),
            Stage::Filter(filter) => {
                if !holds(filter, &mut labelled) {
                    return None;
                }
            }
            Stage::LineFormat(pieces) => {
                let mut line = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => line.push_str(text),
                        Piece::Label(name) => line.push_str(labelled.get(name)),
                    }
                }
                labelled.line = line;
            }
            Stage::Drop(names) => labelled.labels.retain(|name, (value, _)| {
                !names.iter().any(|(dropped, matcher)| {
                    dropped == name && matcher.as_ref().is_none_or(|matcher| matcher.matches(value))
                })
            }),
            Stage::Keep(names) => labelled.labels.retain(|name, (value, _)| {
                name == "__error__"
                    || name == "__error_details__"
                    || names.iter().any(|(kept, matcher)| {
                        kept == name && matcher.as_ref().is_none_or(|matcher| matcher.matches(value))
                    })
            }),
        }
    }
    Some(labelled)
}

/// Reads a label value as `conversion` asks (durations in seconds, sizes in bytes).
pub fn convert(value: &str, conversion: Conversion) -> Option<f64> {
    match conversion {
        Conversion::Number => value.trim().parse::<f64>().ok(),
        Conversion::Duration => {
            let (negative, unsigned) =
                value.trim().strip_prefix('-').map_or((false, value.trim()), |rest| (true, rest));
            let seconds = crate::traceql::duration_nanos(unsigned)? as f64 / 1e9;
            Some(if negative { -seconds } else { seconds })
        }
        Conversion::Bytes => super::parse::bytes(value),
    }
}

fn holds(filter: &LabelFilter, labelled: &mut Labelled) -> bool {
    match filter {
        LabelFilter::And(left, right) => holds(left, labelled) && holds(right, labelled),
        LabelFilter::Or(left, right) => holds(left, labelled) || holds(right, labelled),
        LabelFilter::Text(matcher) => matcher.matches(labelled.get(&matcher.name)),
        LabelFilter::Number { name, op, value, conversion } => {
            if name == "__error__" {
                return false;
            }
            let text = labelled.get(name).to_string();
            match convert(&text, *conversion) {
                Some(number) => op.holds(number, *value),
                None => {
                    // As Loki: the line stays, marked, for `__error__` filters to decide.
                    labelled.set_error("LabelFilterErr", format!("cannot read {name}={text:?} as a {conversion:?}"));
                    true
                }
            }
        }
    }
}

/// A label name as Loki's parsers make it: characters outside `[a-zA-Z0-9_]` become `_`, and a leading
/// digit gets a `_` before it.
fn sanitize(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn json(labelled: &mut Labelled) {
    match serde_json::from_str::<serde_json::Value>(&labelled.line) {
        Ok(serde_json::Value::Object(fields)) => {
            let mut found = Vec::new();
            flatten("", &fields, &mut found);
            for (name, value) in found {
                labelled.add(&name, value, Category::Parsed);
            }
        }
        Ok(_) => labelled.set_error("JSONParserErr", "the line is not a JSON object".into()),
        Err(error) => labelled.set_error("JSONParserErr", error.to_string()),
    }
}

fn flatten(prefix: &str, fields: &serde_json::Map<String, serde_json::Value>, out: &mut Vec<(String, String)>) {
    for (key, value) in fields {
        let name = if prefix.is_empty() { sanitize(key) } else { format!("{prefix}_{}", sanitize(key)) };
        match value {
            serde_json::Value::Object(inner) => flatten(&name, inner, out),
            serde_json::Value::Array(_) => {}
            serde_json::Value::String(text) => out.push((name, text.clone())),
            serde_json::Value::Null => out.push((name, String::new())),
            other => out.push((name, other.to_string())),
        }
    }
}

fn logfmt(labelled: &mut Labelled) {
    match logfmt_pairs(&labelled.line) {
        Ok(pairs) => {
            for (name, value) in pairs {
                labelled.add(&sanitize(&name), value, Category::Parsed);
            }
        }
        Err(message) => labelled.set_error("LogfmtParserErr", message),
    }
}

/// The `key=value` pairs of a logfmt line (values bare or double-quoted; a key alone has an empty value).
fn logfmt_pairs(line: &str) -> Result<Vec<(String, String)>, String> {
    let chars: Vec<char> = line.chars().collect();
    let mut pairs = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        if chars[at].is_whitespace() {
            at += 1;
            continue;
        }
        let start = at;
        while at < chars.len() && !chars[at].is_whitespace() && chars[at] != '=' {
            if chars[at] == '"' {
                return Err(format!("logfmt syntax error at pos {}: unexpected '\"'", at + 1));
            }
            at += 1;
        }
        let key: String = chars[start..at].iter().collect();
        if key.is_empty() {
            return Err(format!("logfmt syntax error at pos {}: unexpected '='", at + 1));
        }
        if chars.get(at) != Some(&'=') {
            pairs.push((key, String::new()));
            continue;
        }
        at += 1;
        let mut value = String::new();
        if chars.get(at) == Some(&'"') {
            at += 1;
            loop {
                match chars.get(at) {
                    None => return Err(format!("logfmt syntax error at pos {}: unterminated quoted value", at + 1)),
                    Some('"') => {
                        at += 1;
                        break;
                    }
                    Some('\\') => {
                        match chars.get(at + 1) {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some(other) => value.push(*other),
                            None => return Err("logfmt syntax error: a trailing backslash".into()),
                        }
                        at += 2;
                    }
                    Some(other) => {
                        value.push(*other);
                        at += 1;
                    }
                }
            }
        } else {
            while at < chars.len() && !chars[at].is_whitespace() {
                value.push(chars[at]);
                at += 1;
            }
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::parse::log_query;

    fn through(query: &str, line: &str) -> Option<Labelled> {
        let query = log_query(query).unwrap();
        let stream = [("service_name".to_string(), "cart".to_string())];
        let metadata = [("trace_id".to_string(), "abc".to_string()), ("service_name".to_string(), "other".to_string())];
        run(&query.stages, Labelled::new(line.into(), &stream, &metadata))
    }

    #[test]
    fn parsers_extract_labels_and_mark_failures_without_dropping() {
        let parsed = through(
            r#"{a="b"} | json"#,
            r#"{"level":"error","http":{"status":503,"ok":false},"tags":[1],"service_name":"x"}"#,
        )
        .unwrap();
        assert_eq!(parsed.get("level"), "error");
        assert_eq!(parsed.get("http_status"), "503");
        assert_eq!(parsed.get("http_ok"), "false");
        assert_eq!(parsed.get("service_name"), "cart");
        assert_eq!(parsed.get("service_name_extracted"), "x");
        assert_eq!(parsed.get("trace_id"), "abc");
        assert!(!parsed.labels.contains_key("tags"));
        let broken = through(r#"{a="b"} | json"#, "not json").unwrap();
        assert_eq!(broken.get("__error__"), "JSONParserErr");
        assert!(through(r#"{a="b"} | json | __error__="""#, "not json").is_none());
        let fields = through(r#"{a="b"} | logfmt"#, r#"level=warn msg="took \"long\"" took=1.5s flag"#).unwrap();
        assert_eq!(
            (fields.get("level"), fields.get("msg"), fields.get("took"), fields.get("flag")),
            ("warn", "took \"long\"", "1.5s", "")
        );
        assert_eq!(through(r#"{a="b"} | logfmt"#, r#"msg="open"#).unwrap().get("__error__"), "LogfmtParserErr");
    }

    #[test]
    fn filters_compare_strings_numbers_durations_and_sizes() {
        let line = "status=503 took=250ms size=2KB method=POST";
        assert!(through(r#"{a="b"} | logfmt | status >= 500 and took > 100ms and size > 1KiB"#, line).is_some());
        assert!(through(r#"{a="b"} | logfmt | status < 500 or method="GET""#, line).is_none());
        assert!(through(r#"{a="b"} | logfmt | method=~"P.*", status == 503"#, line).is_some());
        assert!(through(r#"{a="b"} |= "took" != "GET" |~ "status=5\\d\\d""#, line).is_some());
        assert!(through(r#"{a="b"} |= "absent" or "POST""#, line).is_some());
        let formatted = through(
            r#"{a="b"} | logfmt | line_format "{{.method}} took {{ .took }} ({{.missing}})" |= "POST took""#,
            line,
        );
        assert_eq!(formatted.unwrap().line, "POST took 250ms ()");
        assert!(through(r#"{a="b"} != "absent" or "POST""#, line).is_none());
        let marked = through(r#"{a="b"} | logfmt | method > 5"#, line).unwrap();
        assert_eq!(marked.get("__error__"), "LabelFilterErr");
        let dropped =
            through(r#"{a="b"} | logfmt | drop status, method="GET" | keep status, method, took"#, line).unwrap();
        assert_eq!(dropped.labels.keys().collect::<Vec<_>>(), ["method", "took"]);
    }
}
