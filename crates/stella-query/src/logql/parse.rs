//! The LogQL parser for log queries (`{selector} | stages`) and for the log range aggregations inside a
//! metric query (`count_over_time({...} |= "x" [5m])`); what is around those aggregations is PromQL and
//! goes to the PromQL parser. Errors read as Loki's: `parse error at line 1, col N: syntax error: ...`.

use regex::Regex;

use crate::quoted::{Escapes, quoted};

/// A parse error: where (1-based column) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error at line 1, col {column}: syntax error: {message}")]
pub struct ParseError {
    /// The column of the offending token.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// What is supported, told with every refusal of unsupported syntax.
pub const SUPPORTED: &str = "supported: stream selectors {l=\"v\", l!=\"v\", l=~\"re\", l!~\"re\"}; line filters |= != |~ !~ (with or); \
| json, | logfmt, | line_format \"{{.label}}\", label filters (= != =~ !~ on strings; == != > >= < <= on numbers, durations and bytes; and, or, parentheses), \
| drop, | keep, | unwrap [duration|duration_seconds|bytes]; range aggregations count_over_time, rate, bytes_over_time, bytes_rate, \
absent_over_time, sum/avg/min/max/first/last/stdvar/stddev_over_time, quantile_over_time over [range] with offset; around them PromQL";

/// A label matcher of a stream selector or a label filter.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label.
    pub name: String,
    /// The operator.
    pub op: MatchOp,
    /// The value or the pattern.
    pub value: String,
    /// The pattern, fully anchored, for `=~` and `!~`.
    pub regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        (&self.name, self.op, &self.value) == (&other.name, other.op, &other.value)
    }
}

impl Matcher {
    /// Whether `value` (empty when the label is absent) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Eq, _) => value == self.value,
            (MatchOp::Ne, _) => value != self.value,
            (MatchOp::Re, Some(regex)) => regex.is_match(value),
            (MatchOp::NotRe, Some(regex)) => !regex.is_match(value),
            (_, None) => false,
        }
    }
}

/// A string matcher's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    NotRe,
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// `==` or `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl Compare {
    /// `left op right`.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Compare::Eq => left == right,
            Compare::Ne => left != right,
            Compare::Gt => left > right,
            Compare::Ge => left >= right,
            Compare::Lt => left < right,
            Compare::Le => left <= right,
        }
    }
}

/// How a label value is read as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// A plain number.
    Number,
    /// A duration (`1.5s`), in seconds.
    Duration,
    /// A size (`20MB`, `1.5KiB`), in bytes.
    Bytes,
}

/// A label filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelFilter {
    /// Both.
    And(Box<LabelFilter>, Box<LabelFilter>),
    /// Either.
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// A string matcher.
    Text(Matcher),
    /// A comparison of the label, read as `conversion`, with a number.
    Number {
        /// The label.
        name: String,
        /// The comparison.
        op: Compare,
        /// The number compared with (seconds for durations, bytes for sizes).
        value: f64,
        /// How the label's value is read.
        conversion: Conversion,
    },
}

/// One stage of a log pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// A line filter: `|=`/`|~` keep lines matching any pattern, `!=`/`!~` drop lines matching any.
    Line {
        /// `|=`/`|~` (true) or `!=`/`!~`.
        keep: bool,
        /// `|~`/`!~`: the patterns are regular expressions.
        regex: bool,
        /// The patterns (`or` chains them).
        patterns: Vec<String>,
        /// The patterns compiled, for regular expressions.
        compiled: Vec<RegexEq>,
    },
    /// `| json`: the line's JSON fields become labels.
    Json,
    /// `| logfmt`: the line's `key=value` pairs become labels.
    Logfmt,
    /// A label filter.
    Filter(LabelFilter),
    /// `| line_format "..."`: the line rewritten from text and `{{.label}}` substitutions.
    LineFormat(Vec<Piece>),
    /// `| drop a, b="v"`.
    Drop(Vec<(String, Option<Matcher>)>),
    /// `| keep a, b="v"`.
    Keep(Vec<(String, Option<Matcher>)>),
}

/// A part of a `line_format` template.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Text as it is.
    Text(String),
    /// A label's value.
    Label(String),
}

/// A `line_format` template: text and `{{.label}}` (or `{{ .label }}`) substitutions; anything else in
/// `{{ }}` (functions, pipelines, conditions) is refused.
fn template(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        let close = rest[open..].find("}}").ok_or("line_format: {{ without }}")? + open;
        let inner = rest[open + 2..close].trim();
        match inner.strip_prefix('.') {
            Some(name) if is_label_name(name) => pieces.push(Piece::Label(name.to_string())),
            _ => {
                return Err(format!(
                    "line_format: only {{{{.label}}}} substitutions are supported, not {{{{{inner}}}}}; {SUPPORTED}"
                ));
            }
        }
        rest = &rest[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
}

/// A compiled regex compared by its pattern.
#[derive(Debug, Clone)]
pub struct RegexEq(pub Regex);

impl PartialEq for RegexEq {
    fn eq(&self, other: &RegexEq) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// A log query: the streams a selector picks, through a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct LogQuery {
    /// The stream selector.
    pub selector: Vec<Matcher>,
    /// The pipeline.
    pub stages: Vec<Stage>,
}

/// A range aggregation over a log query.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeAggregation {
    /// The function (`count_over_time`, ...).
    pub function: String,
    /// `quantile_over_time`'s quantile.
    pub parameter: Option<f64>,
    /// The log query.
    pub query: LogQuery,
    /// `| unwrap label` and how it is read.
    pub unwrap: Option<(String, Conversion)>,
    /// The range, nanoseconds.
    pub range: u64,
    /// The offset, nanoseconds.
    pub offset: u64,
}

/// The range aggregations over log lines.
pub const LOG_RANGE_FUNCTIONS: &[&str] =
    &["count_over_time", "rate", "bytes_over_time", "bytes_rate", "absent_over_time"];
/// The range aggregations over unwrapped values.
pub const UNWRAPPED_RANGE_FUNCTIONS: &[&str] = &[
    "rate",
    "sum_over_time",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "first_over_time",
    "last_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "quantile_over_time",
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open(char),
    Close(char),
    Comma,
    Pipe,
    /// An operator: `|=`, `!=`, `|~`, `!~`, `=`, `=~`, `==`, `>`, `>=`, `<`, `<=`.
    Op(&'static str),
    Str(String),
    /// An identifier or a literal made of letters, digits, `_`, `.` (`count_over_time`, `5m`, `1.5KB`).
    Word(String),
    /// Any other character PromQL uses around log aggregations (`+`, `-`, `*`, `/`, `%`, `^`, `@`, `:`).
    Other(char),
}

/// The word (letters, digits, `_`, `.`) from `chars[at]`, and the index after it.
fn word_at(chars: &[char], mut at: usize) -> (String, usize) {
    let mut word = String::new();
    while let Some(&c) = chars.get(at).filter(|c| c.is_alphanumeric() || **c == '_' || **c == '.') {
        word.push(c);
        at += 1;
    }
    (word, at)
}

fn lex(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    let fail = |at: usize, message: String| ParseError { column: at + 1, message };
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        let start = at;
        let token = match c {
            c if c.is_whitespace() => {
                at += 1;
                continue;
            }
            '{' | '(' | '[' => Token::Open(c),
            '}' | ')' | ']' => Token::Close(c),
            ',' => Token::Comma,
            '|' => match next {
                Some('=') => {
                    at += 1;
                    Token::Op("|=")
                }
                Some('~') => {
                    at += 1;
                    Token::Op("|~")
                }
                Some('>') => return Err(fail(at, format!("pattern filters |> are not supported; {SUPPORTED}"))),
                _ => Token::Pipe,
            },
            '!' => match next {
                Some('=') => {
                    at += 1;
                    Token::Op("!=")
                }
                Some('~') => {
                    at += 1;
                    Token::Op("!~")
                }
                _ => return Err(fail(at, "unexpected !".into())),
            },
            '=' => match next {
                Some('~') => {
                    at += 1;
                    Token::Op("=~")
                }
                Some('=') => {
                    at += 1;
                    Token::Op("==")
                }
                _ => Token::Op("="),
            },
            '>' | '<' => {
                if next == Some('=') {
                    at += 1;
                    Token::Op(if c == '>' { ">=" } else { "<=" })
                } else {
                    Token::Op(if c == '>' { ">" } else { "<" })
                }
            }
            '-' if next.is_some_and(|c| c.is_ascii_digit()) && matches!(tokens.last(), Some((_, Token::Op(_)))) => {
                let (word, end) = word_at(&chars, at + 1);
                at = end;
                tokens.push((start + 1, Token::Word(format!("-{word}"))));
                continue;
            }
            '+' | '-' | '*' | '/' | '%' | '^' | '@' | ':' => Token::Other(c),
            '"' | '\'' | '`' => {
                let (value, end) = quoted(&chars, at, Escapes::Strict).map_err(|(at, message)| fail(at, message))?;
                at = end;
                Token::Str(value)
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let (word, end) = word_at(&chars, at);
                at = end;
                tokens.push((start + 1, Token::Word(word)));
                continue;
            }
            other => return Err(fail(at, format!("unexpected character {other:?}"))),
        };
        tokens.push((start + 1, token));
        at += 1;
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn column(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(column, _)| *column)
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, token)| token)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError { column: self.column(), message: message.into() })
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).map(|(_, token)| token.clone());
        self.at += 1;
        token
    }

    fn expect(&mut self, wanted: &Token, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(wanted) {
            self.at += 1;
            Ok(())
        } else {
            self.error(format!("expected {what}"))
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(Token::Str(value)) => {
                let value = value.clone();
                self.at += 1;
                Ok(value)
            }
            _ => self.error("expected a string"),
        }
    }

    fn name(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(Token::Word(word)) if is_label_name(word) => {
                let word = word.clone();
                self.at += 1;
                Ok(word)
            }
            _ => self.error("expected a label name"),
        }
    }

    fn matcher(&mut self, name: String, op: &str) -> Result<Matcher, ParseError> {
        let column = self.column();
        let value = self.string()?;
        let op = match op {
            "=" => MatchOp::Eq,
            "!=" => MatchOp::Ne,
            "=~" => MatchOp::Re,
            "!~" => MatchOp::NotRe,
            _ => return self.error(format!("unexpected operator {op} in a matcher")),
        };
        let regex = match op {
            MatchOp::Re | MatchOp::NotRe => Some(Regex::new(&format!("^(?:{value})$")).map_err(|error| {
                ParseError { column, message: format!("invalid regular expression {value:?}: {error}") }
            })?),
            _ => None,
        };
        Ok(Matcher { name, op, value, regex })
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, ParseError> {
        let column = self.column();
        self.expect(&Token::Open('{'), "{ to open a stream selector")?;
        let mut matchers = Vec::new();
        loop {
            if self.peek() == Some(&Token::Close('}')) {
                self.at += 1;
                break;
            }
            let name = self.name()?;
            let op = match self.next() {
                Some(Token::Op(op @ ("=" | "!=" | "=~" | "!~"))) => op,
                _ => {
                    self.at -= 1;
                    return self.error("expected =, !=, =~ or !~ after the label name");
                }
            };
            matchers.push(self.matcher(name, op)?);
            match self.peek() {
                Some(Token::Comma) => self.at += 1,
                Some(Token::Close('}')) => {}
                _ => return self.error("expected , or } in the stream selector"),
            }
        }
        if !matchers.iter().any(|matcher| !matcher.matches("")) {
            return Err(ParseError { column, message:
                "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will".into() });
        }
        Ok(matchers)
    }

    fn label_list(&mut self) -> Result<Vec<(String, Option<Matcher>)>, ParseError> {
        let mut labels = Vec::new();
        loop {
            let name = self.name()?;
            let matcher = match self.peek() {
                Some(Token::Op(op @ ("=" | "!=" | "=~" | "!~"))) => {
                    let op = *op;
                    self.at += 1;
                    Some(self.matcher(name.clone(), op)?)
                }
                _ => None,
            };
            labels.push((name, matcher));
            if self.peek() == Some(&Token::Comma) {
                self.at += 1;
            } else {
                return Ok(labels);
            }
        }
    }

    fn filter_or(&mut self) -> Result<LabelFilter, ParseError> {
        let mut left = self.filter_and()?;
        while matches!(self.peek(), Some(Token::Word(word)) if word == "or") {
            self.at += 1;
            let right = self.filter_and()?;
            left = LabelFilter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn filter_and(&mut self) -> Result<LabelFilter, ParseError> {
        let mut left = self.filter_term()?;
        loop {
            match self.peek() {
                Some(Token::Word(word)) if word == "and" => self.at += 1,
                Some(Token::Comma) => self.at += 1,
                Some(Token::Word(word)) if is_label_name(word) && word != "or" && word != "offset" => {}
                Some(Token::Open('(')) => {}
                _ => return Ok(left),
            }
            let right = self.filter_term()?;
            left = LabelFilter::And(Box::new(left), Box::new(right));
        }
    }

    fn filter_term(&mut self) -> Result<LabelFilter, ParseError> {
        if self.peek() == Some(&Token::Open('(')) {
            self.at += 1;
            let inner = self.filter_or()?;
            self.expect(&Token::Close(')'), ") to close the label filter")?;
            return Ok(inner);
        }
        let name = self.name()?;
        let op = match self.next() {
            Some(Token::Op(op)) if !matches!(op, "|=" | "|~") => op,
            _ => {
                self.at -= 1;
                return self.error(format!("expected a comparison after {name}"));
            }
        };
        match self.peek() {
            Some(Token::Str(_)) => Ok(LabelFilter::Text(self.matcher(name, op)?)),
            Some(Token::Word(word)) => {
                let (value, conversion) = match literal(word) {
                    Some(literal) => literal,
                    None => return self.error(format!("{word:?} is not a number, a duration or a size")),
                };
                let op = match op {
                    "=" | "==" => Compare::Eq,
                    "!=" => Compare::Ne,
                    ">" => Compare::Gt,
                    ">=" => Compare::Ge,
                    "<" => Compare::Lt,
                    "<=" => Compare::Le,
                    _ => return self.error(format!("{op} takes a string")),
                };
                self.at += 1;
                Ok(LabelFilter::Number { name, op, value, conversion })
            }
            _ => self.error("expected a value"),
        }
    }

    /// A stage after `|`, or a line filter; `None` at the end of the pipeline.
    fn stage(&mut self) -> Result<Option<Stage>, ParseError> {
        match self.peek() {
            Some(Token::Op(op @ ("|=" | "!=" | "|~" | "!~"))) => {
                let op = *op;
                self.at += 1;
                let mut patterns = vec![self.string()?];
                while matches!(self.peek(), Some(Token::Word(word)) if word == "or") {
                    self.at += 1;
                    patterns.push(self.string()?);
                }
                let regex = op.ends_with('~');
                let mut compiled = Vec::new();
                if regex {
                    for pattern in &patterns {
                        compiled.push(RegexEq(Regex::new(pattern).map_err(|error| ParseError {
                            column: self.column(),
                            message: format!("invalid regular expression {pattern:?}: {error}"),
                        })?));
                    }
                }
                Ok(Some(Stage::Line { keep: op.starts_with('|'), regex, patterns, compiled }))
            }
            Some(Token::Pipe) => {
                self.at += 1;
                let stage = match self.peek() {
                    Some(Token::Word(word)) => word.clone(),
                    _ => return self.error("expected a stage after |"),
                };
                // `| name op value` is a label filter, unless `op` is a line filter's: stage names are
                // keywords to Loki, so `| json |= "x"` and `| json != "x"` parse JSON, then filter lines.
                let follows_op = matches!(
                    self.tokens.get(self.at + 1),
                    Some((_, Token::Op(op))) if !matches!(*op, "|=" | "|~" | "!=" | "!~")
                );
                match stage.as_str() {
                    "json" | "logfmt" if !follows_op => {
                        self.at += 1;
                        if let Some(Token::Word(_) | Token::Str(_)) = self.peek() {
                            return self.error(format!("parameters of | {stage} are not supported; {SUPPORTED}"));
                        }
                        Ok(Some(if stage == "json" { Stage::Json } else { Stage::Logfmt }))
                    }
                    "drop" | "keep" if !follows_op => {
                        self.at += 1;
                        let labels = self.label_list()?;
                        Ok(Some(if stage == "drop" { Stage::Drop(labels) } else { Stage::Keep(labels) }))
                    }
                    "unwrap" if !follows_op => {
                        // Handled by the range aggregation: step back to the pipe.
                        self.at -= 1;
                        Ok(None)
                    }
                    "line_format" if !follows_op => {
                        self.at += 1;
                        let column = self.column();
                        let text = self.string()?;
                        let pieces = template(&text).map_err(|message| ParseError { column, message })?;
                        Ok(Some(Stage::LineFormat(pieces)))
                    }
                    "label_format" | "regexp" | "pattern" | "unpack" | "decolorize" | "ip" if !follows_op => {
                        self.error(format!("| {stage} is not supported; {SUPPORTED}"))
                    }
                    _ => Ok(Some(Stage::Filter(self.filter_or()?))),
                }
            }
            _ => Ok(None),
        }
    }

    fn log_query(&mut self) -> Result<LogQuery, ParseError> {
        let selector = self.selector()?;
        let mut stages = Vec::new();
        while let Some(stage) = self.stage()? {
            stages.push(stage);
        }
        Ok(LogQuery { selector, stages })
    }

    fn duration(&mut self, what: &str) -> Result<u64, ParseError> {
        match self.peek() {
            Some(Token::Word(word)) => match crate::traceql::duration_nanos(word) {
                Some(nanos) if word.chars().any(char::is_alphabetic) => {
                    self.at += 1;
                    Ok(nanos)
                }
                _ => self.error(format!("{what}: {word:?} is not a duration such as 5m")),
            },
            _ => self.error(format!("expected {what}")),
        }
    }

    fn range(&mut self) -> Result<Option<u64>, ParseError> {
        if self.peek() != Some(&Token::Open('[')) {
            return Ok(None);
        }
        self.at += 1;
        let range = self.duration("a range")?;
        self.expect(&Token::Close(']'), "] to close the range")?;
        Ok(Some(range))
    }

    /// `function ( [parameter ,] log-query [range] [| unwrap ...] [range] [offset d] )`, from the function name.
    fn range_aggregation(&mut self) -> Result<RangeAggregation, ParseError> {
        let function_column = self.column();
        let Some(Token::Word(function)) = self.next() else { return self.error("expected a function") };
        self.expect(&Token::Open('('), "( after the function")?;
        let parameter = if function == "quantile_over_time" {
            let value = match self.next() {
                Some(Token::Word(word)) => word.parse::<f64>().ok(),
                _ => None,
            };
            let Some(value) = value else {
                self.at -= 1;
                return self.error("quantile_over_time takes a quantile first");
            };
            self.expect(&Token::Comma, ", after the quantile")?;
            Some(value)
        } else {
            None
        };
        let mut query = LogQuery { selector: self.selector()?, stages: Vec::new() };
        let mut range = self.range()?;
        while let Some(stage) = self.stage()? {
            query.stages.push(stage);
        }
        let mut unwrap = None;
        if self.peek() == Some(&Token::Pipe) {
            self.at += 1;
            self.at += 1; // `unwrap`
            let conversion = match self.peek() {
                Some(Token::Word(word)) if matches!(self.tokens.get(self.at + 1), Some((_, Token::Open('(')))) => {
                    let conversion = match word.as_str() {
                        "duration" | "duration_seconds" => Conversion::Duration,
                        "bytes" => Conversion::Bytes,
                        other => return self.error(format!("unknown unwrap conversion {other}")),
                    };
                    self.at += 2;
                    Some(conversion)
                }
                _ => None,
            };
            let label = self.name()?;
            if conversion.is_some() {
                self.expect(&Token::Close(')'), ") after the unwrapped label")?;
            }
            unwrap = Some((label, conversion.unwrap_or(Conversion::Number)));
            while let Some(stage) = self.stage()? {
                match stage {
                    Stage::Filter(_) => query.stages.push(stage),
                    _ => return self.error("after unwrap only label filters may follow"),
                }
            }
        }
        if range.is_none() {
            range = self.range()?;
        }
        let Some(range) = range else { return self.error(format!("{function} needs a range such as [5m]")) };
        let offset = if matches!(self.peek(), Some(Token::Word(word)) if word == "offset") {
            self.at += 1;
            self.duration("an offset")?
        } else {
            0
        };
        self.expect(&Token::Close(')'), ") to close the range aggregation")?;
        let known = if unwrap.is_some() { UNWRAPPED_RANGE_FUNCTIONS } else { LOG_RANGE_FUNCTIONS };
        if !known.contains(&function.as_str()) {
            let needs = if unwrap.is_some() { "does not take unwrapped values" } else { "needs | unwrap <label>" };
            return Err(ParseError { column: function_column, message: format!("{function} {needs}; {SUPPORTED}") });
        }
        Ok(RangeAggregation { function, parameter, query, unwrap, range, offset })
    }
}

fn is_label_name(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A literal of a label filter: a number, a duration (in seconds) or a size (in bytes).
fn literal(word: &str) -> Option<(f64, Conversion)> {
    if let Ok(number) = word.parse::<f64>() {
        return Some((number, Conversion::Number));
    }
    if let Some(bytes) = bytes(word) {
        return Some((bytes, Conversion::Bytes));
    }
    let (negative, unsigned) = word.strip_prefix('-').map_or((false, word), |rest| (true, rest));
    let seconds = crate::traceql::duration_nanos(unsigned)? as f64 / 1e9;
    Some((if negative { -seconds } else { seconds }, Conversion::Duration))
}

/// A size such as `20MB`, `1.5KiB`, `512B` in bytes (decimal and binary units, as Loki reads them).
pub fn bytes(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let value: f64 = text[..split].parse().ok()?;
    let unit = match text[split..].to_ascii_lowercase().as_str() {
        "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "pb" => 1e15,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        "pib" => 1024f64.powi(5),
        _ => return None,
    };
    Some(value * unit)
}

/// Parses a log query (`{selector} | stages`).
pub fn log_query(text: &str) -> Result<LogQuery, ParseError> {
    let mut parser = Parser { tokens: lex(text)?, at: 0, end: text.chars().count() + 1 };
    let query = parser.log_query()?;
    if parser.at < parser.tokens.len() {
        if parser.peek() == Some(&Token::Pipe) {
            return parser.error(format!("unwrap needs a range aggregation around it; {SUPPORTED}"));
        }
        return parser.error("unexpected input after the log query");
    }
    Ok(query)
}

/// A metric query split in two: PromQL text in which every log range aggregation is replaced by a
/// selector `__logql_<n>__`, and those aggregations in order.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    /// The PromQL text.
    pub promql: String,
    /// The log range aggregations, `__logql_0__` first.
    pub aggregations: Vec<RangeAggregation>,
}

/// The name a log range aggregation takes in the PromQL text.
pub fn placeholder(index: usize) -> String {
    format!("__logql_{index}__")
}

/// Splits a metric query: finds each range aggregation over a log query outside string literals.
pub fn metric_query(text: &str) -> Result<MetricQuery, ParseError> {
    let tokens = lex(text)?;
    let chars: Vec<char> = text.chars().collect();
    let mut promql = String::new();
    let mut aggregations = Vec::new();
    let mut copied = 0; // chars of `text` copied so far
    let mut at = 0;
    while at < tokens.len() {
        let is_aggregation = match (&tokens[at].1, tokens.get(at + 1).map(|(_, token)| token)) {
            (Token::Word(word), Some(Token::Open('('))) => {
                let log_function =
                    LOG_RANGE_FUNCTIONS.contains(&word.as_str()) || UNWRAPPED_RANGE_FUNCTIONS.contains(&word.as_str());
                // `rate` and `*_over_time` take a log query when a selector `{` comes (after the quantile).
                let selector_at = if word == "quantile_over_time" { at + 4 } else { at + 2 };
                log_function && matches!(tokens.get(selector_at), Some((_, Token::Open('{'))))
            }
            _ => false,
        };
        if !is_aggregation {
            at += 1;
            continue;
        }
        let start_column = tokens[at].0;
        let mut parser = Parser { tokens: tokens.clone(), at, end: chars.len() + 1 };
        let aggregation = parser.range_aggregation()?;
        let end_column = tokens.get(parser.at - 1).map_or(chars.len(), |(column, _)| *column); // the `)`
        promql.extend(&chars[copied..start_column - 1]);
        promql.push_str(&placeholder(aggregations.len()));
        copied = end_column;
        aggregations.push(aggregation);
        at = parser.at;
    }
    promql.extend(&chars[copied..]);
    if let Some((column, _)) =
        tokens.iter().find(|(_, token)| *token == Token::Open('{')).filter(|_| aggregations.is_empty())
    {
        return Err(ParseError {
            column: *column,
            message: format!("a log query must stand alone or inside a range aggregation; {SUPPORTED}"),
        });
    }
    Ok(MetricQuery { promql, aggregations })
}

/// Whether the query is a log query (a stream selector first) rather than a metric query.
pub fn is_log_query(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_filter_may_follow_a_parser() {
        for (text, filter_keeps) in [(r#"{app="a"} | json |= "x""#, true), (r#"{app="a"} | logfmt != "x""#, false)] {
            let query = log_query(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            assert!(matches!(query.stages[0], Stage::Json | Stage::Logfmt), "{text}: {query:?}");
            assert!(matches!(&query.stages[1], Stage::Line { keep, .. } if *keep == filter_keeps), "{text}: {query:?}");
        }
        // Any other operator after a word is a label filter on it.
        let query = log_query(r#"{app="a"} | json = "x""#).unwrap();
        assert!(matches!(query.stages[0], Stage::Filter(_)), "{query:?}");
    }

    #[test]
    fn log_queries_parse_with_their_stages() {
        let query = log_query(
            r#"{service_name="cart", severity=~"warn|error"} |= "timeout" or "refused" != "debug" | json | status >= 500 and latency > 250ms, size > 1KB | drop __error__, trace_id"#,
        )
        .unwrap();
        assert_eq!(query.selector.len(), 2);
        assert_eq!(query.stages.len(), 5, "{query:?}");
        assert!(matches!(&query.stages[0], Stage::Line { keep: true, patterns, .. } if patterns.len() == 2));
        assert!(matches!(&query.stages[3], Stage::Filter(LabelFilter::And(..))));
        let Stage::Filter(LabelFilter::And(left, size)) = &query.stages[3] else { panic!() };
        assert!(matches!(**size, LabelFilter::Number { conversion: Conversion::Bytes, value, .. } if value == 1000.0));
        let LabelFilter::And(_, latency) = &**left else { panic!() };
        assert!(
            matches!(**latency, LabelFilter::Number { conversion: Conversion::Duration, value, .. } if value == 0.25)
        );
        log_query(r#"{app="a"} | logfmt | level="error" or (code!="200" and method=~"P.*")"#).unwrap();
        log_query("{app=`a\\b`} |~ `\\d+ms`").unwrap();
    }

    #[test]
    fn metric_queries_keep_promql_around_log_aggregations() {
        let query = metric_query(
            r#"sum by (level, detected_level) (count_over_time({service_name="cart"} | drop __error__[1m])) / 2"#,
        )
        .unwrap();
        assert_eq!(query.promql, "sum by (level, detected_level) (__logql_0__) / 2");
        assert_eq!(query.aggregations[0].range, 60_000_000_000);
        let query = metric_query(
            r#"quantile_over_time(0.99, {app="a"} | json | unwrap duration(latency) | __error__="" [5m] offset 1m) + rate({app="b"}[30s])"#,
        )
        .unwrap();
        assert_eq!(query.promql, "__logql_0__ + __logql_1__");
        assert_eq!(query.aggregations[0].unwrap, Some(("latency".into(), Conversion::Duration)));
        assert_eq!((query.aggregations[0].parameter, query.aggregations[0].offset), (Some(0.99), 60_000_000_000));
        assert_eq!(metric_query("vector(1)+vector(1)").unwrap().promql, "vector(1)+vector(1)");
    }

    #[test]
    fn mistakes_and_unsupported_syntax_are_refused_with_their_column() {
        for (text, column, expected) in [
            (r#"{app="a"} | label_format x=y"#, 13, "is not supported"),
            (r#"{app="a"} | line_format "{{ .x | upper }}""#, 25, "only {{.label}} substitutions"),
            (r#"{app=~".*"}"#, 1, "at least one regexp or equality matcher"),
            (r#"{app="a" |= "x""#, 10, "expected , or }"),
            (r#"{app="a"} |= "x"#, 14, "unterminated string"),
            (r#"count_over_time({app="a"})"#, 26, "needs a range"),
            (r#"sum_over_time({app="a"}[1m])"#, 1, "needs | unwrap"),
            (r#"{app="a"} | n > 5zz"#, 17, "is not a number"),
        ] {
            let error = if is_log_query(text) {
                log_query(text)
            } else {
                metric_query(text).map(|_| log_query("{a=\"b\"}").unwrap())
            }
            .unwrap_err();
            assert!(error.message.contains(expected), "{text}: {error}");
            assert_eq!(error.column, column, "{text}: {error}");
        }
    }
}
