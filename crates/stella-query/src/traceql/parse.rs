//! The TraceQL parser: spanset filters `{ ... }` with intrinsics and scoped or unscoped attributes,
//! comparisons and regexes, `&&`, `||`, `!` and parentheses inside a spanset; `&&`, `||` and the
//! structural operators `>`, `>>`, `<`, `<<`, `~` between spansets; and the pipeline stages
//! `| select(...)` and `| count() <op> <n>`. Anything else is refused with its column and what is
//! supported.

use crate::quoted::{Escapes, quoted};

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The spanset expression.
    pub spansets: SpansetExpr,
    /// `| select(...)`: attributes returned with every matching span.
    pub select: Vec<Attribute>,
    /// `| count() <op> <n>`: how many spans a trace's spanset must have.
    pub count: Option<(Comparison, f64)>,
}

/// Spansets and the operators between them.
#[derive(Debug, Clone, PartialEq)]
pub enum SpansetExpr {
    /// `{ condition }`: the spans of a trace for which the condition holds.
    Filter(Condition),
    /// `a op b`.
    Binary(Box<SpansetExpr>, SpansetOp, Box<SpansetExpr>),
}

/// An operator between spansets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpansetOp {
    /// `&&`: both have spans (the spans of both).
    And,
    /// `||`: the spans of either.
    Or,
    /// `>`: spans of the right whose parent is in the left.
    Child,
    /// `<`: spans of the right that are the parent of a span in the left.
    Parent,
    /// `>>`: spans of the right with an ancestor in the left.
    Descendant,
    /// `<<`: spans of the right that are an ancestor of a span in the left.
    Ancestor,
    /// `~`: spans of the right with a sibling in the left.
    Sibling,
}

/// A condition on one span.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `{}`: every span.
    True,
    /// `a && b`.
    And(Box<Condition>, Box<Condition>),
    /// `a || b`.
    Or(Box<Condition>, Box<Condition>),
    /// `!a`.
    Not(Box<Condition>),
    /// `a <op> b`.
    Compare(Operand, Comparison, Operand),
    /// A field alone: true when it is the boolean `true`.
    Truthy(Operand),
    /// The field's value as text equals this (Tempo's older `tags=` search, which compares text).
    TextEquals(Attribute, String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `=`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `=~`.
    Match,
    /// `!~`.
    NotMatch,
}

/// A side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A field of the span or its trace.
    Attribute(Attribute),
    /// A literal.
    Static(Static),
}

/// A field of a span.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attribute {
    /// An intrinsic.
    Intrinsic(Intrinsic),
    /// `span.x`.
    Span(String),
    /// `resource.x`.
    Resource(String),
    /// `.x`: the span's attribute, else its resource's.
    Any(String),
}

/// What every span has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Intrinsic {
    /// `name`, `span:name`.
    Name,
    /// `status`, `span:status`.
    Status,
    /// `statusMessage`, `span:statusMessage`.
    StatusMessage,
    /// `duration`, `span:duration`.
    Duration,
    /// `kind`, `span:kind`.
    Kind,
    /// `rootName`, `trace:rootName`.
    RootName,
    /// `rootServiceName`, `trace:rootService`.
    RootServiceName,
    /// `traceDuration`, `trace:duration`.
    TraceDuration,
    /// `span:id`.
    SpanId,
    /// `trace:id`.
    TraceId,
    /// `span:parentID`.
    ParentId,
}

impl Intrinsic {
    /// Its unscoped name.
    pub fn name(self) -> &'static str {
        match self {
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::StatusMessage => "statusMessage",
            Intrinsic::Duration => "duration",
            Intrinsic::Kind => "kind",
            Intrinsic::RootName => "rootName",
            Intrinsic::RootServiceName => "rootServiceName",
            Intrinsic::TraceDuration => "traceDuration",
            Intrinsic::SpanId => "span:id",
            Intrinsic::TraceId => "trace:id",
            Intrinsic::ParentId => "span:parentID",
        }
    }
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Static {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// `true`, `false`.
    Bool(bool),
    /// A duration, nanoseconds.
    Duration(u64),
    /// `unset`, `ok`, `error` as OTLP status codes 0, 1, 2.
    Status(i32),
    /// `unspecified` .. `consumer` as OTLP span kinds 0 .. 5.
    Kind(i32),
    /// `nil`.
    Nil,
}

/// A query that cannot be run, with the column it goes wrong at (1-based).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid TraceQL query: col {column}: {message}")]
pub struct ParseError {
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what is supported.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    OpenParen,
    CloseParen,
    Comma,
    Pipe,
    AndAnd,
    OrOr,
    Not,
    Op(Comparison),
    Descendant,
    Ancestor,
    Tilde,
    Word(String),
    Str(String),
    Number(String),
}

const SUPPORTED: &str = "supported: spanset filters { ... } with intrinsics (name, status, statusMessage, duration, kind, rootName, rootServiceName, traceDuration, span:id, trace:id, span:parentID), span./resource./. attributes, = != < <= > >= =~ !~, && || ! inside a spanset; && || > >> < << ~ between spansets; | select(...) and | count() <op> <n>";

fn lex(text: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    let fail = |column: usize, message: String| ParseError { column: column + 1, message };
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        let start = at;
        let token = match c {
            c if c.is_whitespace() => {
                at += 1;
                continue;
            }
            '{' => Token::Open,
            '}' => Token::Close,
            '(' => Token::OpenParen,
            ')' => Token::CloseParen,
            ',' => Token::Comma,
            '&' if next == Some('&') => {
                at += 1;
                Token::AndAnd
            }
            '|' if next == Some('|') => {
                at += 1;
                Token::OrOr
            }
            '|' => Token::Pipe,
            '=' if next == Some('~') => {
                at += 1;
                Token::Op(Comparison::Match)
            }
            '=' => Token::Op(Comparison::Eq),
            '!' if next == Some('=') => {
                at += 1;
                Token::Op(Comparison::Ne)
            }
            '!' if next == Some('~') => {
                at += 1;
                Token::Op(Comparison::NotMatch)
            }
            '!' => Token::Not,
            '<' if next == Some('=') => {
                at += 1;
                Token::Op(Comparison::Le)
            }
            '<' if next == Some('<') => {
                at += 1;
                Token::Ancestor
            }
            '<' => Token::Op(Comparison::Lt),
            '>' if next == Some('=') => {
                at += 1;
                Token::Op(Comparison::Ge)
            }
            '>' if next == Some('>') => {
                at += 1;
                Token::Descendant
            }
            '>' => Token::Op(Comparison::Gt),
            '~' => Token::Tilde,
            '"' | '`' => {
                let (value, end) = quoted(&chars, at, Escapes::Lenient).map_err(|(at, message)| fail(at, message))?;
                at = end;
                Token::Str(value)
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let mut end = at + 1;
                while end < chars.len()
                    && (chars[end].is_ascii_alphanumeric() || chars[end] == '.' || chars[end] == 'µ')
                {
                    end += 1;
                }
                let word: String = chars[at..end].iter().collect();
                at = end - 1;
                Token::Number(word)
            }
            c if c.is_alphabetic() || c == '.' || c == '_' => {
                let mut end = at + 1;
                while end < chars.len() && !chars[end].is_whitespace() && !"{}()=~!<>&|^,\"`".contains(chars[end]) {
                    end += 1;
                }
                let word: String = chars[at..end].iter().collect();
                at = end - 1;
                Token::Word(word)
            }
            other => return Err(fail(start, format!("unexpected {other:?}; {SUPPORTED}"))),
        };
        tokens.push((token, start + 1));
        at += 1;
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(token, _)| token)
    }

    fn column(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(_, column)| *column)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError { column: self.column(), message: message.into() })
    }

    fn expect(&mut self, wanted: &Token, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(wanted) {
            self.at += 1;
            Ok(())
        } else {
            self.error(format!("expected {what}"))
        }
    }

    /// spansets := term (op term)*, all operators at one level, left to right (as TraceQL's grammar).
    fn spansets(&mut self) -> Result<SpansetExpr, ParseError> {
        let mut left = self.spanset_term()?;
        loop {
            let op = match self.peek() {
                Some(Token::AndAnd) => SpansetOp::And,
                Some(Token::OrOr) => SpansetOp::Or,
                Some(Token::Op(Comparison::Gt)) => SpansetOp::Child,
                Some(Token::Op(Comparison::Lt)) => SpansetOp::Parent,
                Some(Token::Descendant) => SpansetOp::Descendant,
                Some(Token::Ancestor) => SpansetOp::Ancestor,
                Some(Token::Tilde) => SpansetOp::Sibling,
                Some(Token::Op(Comparison::NotMatch)) | Some(Token::Not) => {
                    return self.error(format!("negated structural operators are not supported; {SUPPORTED}"));
                }
                _ => return Ok(left),
            };
            self.at += 1;
            let right = self.spanset_term()?;
            left = SpansetExpr::Binary(Box::new(left), op, Box::new(right));
        }
    }

    fn spanset_term(&mut self) -> Result<SpansetExpr, ParseError> {
        match self.peek() {
            Some(Token::Open) => {
                self.at += 1;
                if self.peek() == Some(&Token::Close) {
                    self.at += 1;
                    return Ok(SpansetExpr::Filter(Condition::True));
                }
                let condition = self.condition()?;
                self.expect(&Token::Close, "} to close the spanset")?;
                Ok(SpansetExpr::Filter(condition))
            }
            Some(Token::OpenParen) => {
                self.at += 1;
                let inner = self.spansets()?;
                self.expect(&Token::CloseParen, ")")?;
                Ok(inner)
            }
            _ => self.error(format!("expected a spanset {{ ... }}; {SUPPORTED}")),
        }
    }

    fn condition(&mut self) -> Result<Condition, ParseError> {
        let mut left = self.condition_and()?;
        while self.peek() == Some(&Token::OrOr) {
            self.at += 1;
            let right = self.condition_and()?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn condition_and(&mut self) -> Result<Condition, ParseError> {
        let mut left = self.condition_unary()?;
        while self.peek() == Some(&Token::AndAnd) {
            self.at += 1;
            let right = self.condition_unary()?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn condition_unary(&mut self) -> Result<Condition, ParseError> {
        match self.peek() {
            Some(Token::Not) => {
                self.at += 1;
                Ok(Condition::Not(Box::new(self.condition_unary()?)))
            }
            Some(Token::OpenParen) => {
                self.at += 1;
                let inner = self.condition()?;
                self.expect(&Token::CloseParen, ")")?;
                Ok(inner)
            }
            _ => {
                let left = self.operand()?;
                match self.peek() {
                    Some(Token::Op(op)) => {
                        let op = *op;
                        self.at += 1;
                        let right = self.operand()?;
                        Ok(Condition::Compare(left, op, right))
                    }
                    _ => Ok(Condition::Truthy(left)),
                }
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let column = self.column();
        let Some((token, _)) = self.tokens.get(self.at).cloned() else {
            return self.error("expected a field or a value");
        };
        self.at += 1;
        let fail = |message: String| Err(ParseError { column, message });
        match token {
            Token::Str(text) => Ok(Operand::Static(Static::Str(text))),
            Token::Number(text) => match number(&text) {
                Some(value) => Ok(Operand::Static(value)),
                None => fail(format!("{text:?} is not a number or a duration such as 100ms or 1.5s")),
            },
            Token::Word(word) => word_operand(&word).map_or_else(
                || {
                    fail(format!(
                        "{word:?} is not a known field; attributes are span.<name>, resource.<name> or .<name>; {SUPPORTED}"
                    ))
                },
                Ok,
            ),
            _ => fail(format!("expected a field or a value; {SUPPORTED}")),
        }
    }

    fn pipeline(&mut self, query: &mut Query) -> Result<(), ParseError> {
        while self.peek() == Some(&Token::Pipe) {
            self.at += 1;
            match self.peek().cloned() {
                Some(Token::Word(word)) if word == "select" => {
                    self.at += 1;
                    self.expect(&Token::OpenParen, "( after select")?;
                    loop {
                        let column = self.column();
                        match self.operand()? {
                            Operand::Attribute(attribute) => query.select.push(attribute),
                            Operand::Static(_) => {
                                return Err(ParseError { column, message: "select() takes fields".into() });
                            }
                        }
                        match self.peek() {
                            Some(Token::Comma) => self.at += 1,
                            _ => break,
                        }
                    }
                    self.expect(&Token::CloseParen, ") to close select(")?;
                }
                Some(Token::Word(word)) if word == "count" => {
                    self.at += 1;
                    self.expect(&Token::OpenParen, "( after count")?;
                    self.expect(&Token::CloseParen, ") after count(")?;
                    let op = match self.peek() {
                        Some(Token::Op(op)) if !matches!(op, Comparison::Match | Comparison::NotMatch) => *op,
                        _ => return self.error("expected a comparison after count()"),
                    };
                    self.at += 1;
                    let column = self.column();
                    let value = match self.operand()? {
                        Operand::Static(Static::Int(value)) => value as f64,
                        Operand::Static(Static::Float(value)) => value,
                        _ => return Err(ParseError { column, message: "count() compares with a number".into() }),
                    };
                    query.count = Some((op, value));
                }
                _ => return self.error(format!("this pipeline stage is not supported; {SUPPORTED}")),
            }
        }
        Ok(())
    }
}

/// A number, or a duration (`100ms`, `1.5s`, `1h30m`).
fn number(text: &str) -> Option<Static> {
    if let Ok(value) = text.parse::<i64>() {
        return Some(Static::Int(value));
    }
    if let Ok(value) = text.parse::<f64>() {
        return Some(Static::Float(value));
    }
    duration_nanos(text).map(Static::Duration)
}

/// A duration in nanoseconds: Prometheus's form (`1h30m`, `5m`) or with `ns`, `us`, `µs`, `ms`, fractions.
pub fn duration_nanos(text: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..digits].parse().ok()?;
        let unit_end = rest[digits..].find(|c: char| c.is_ascii_digit()).map_or(rest.len(), |at| digits + at);
        let unit = match &rest[digits..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            "w" => 604_800e9,
            "y" => 31_536_000e9,
            _ => return None,
        };
        total += value * unit;
        rest = &rest[unit_end..];
    }
    (total.is_finite() && total >= 0.0).then_some(total as u64)
}

fn word_operand(word: &str) -> Option<Operand> {
    let statik = |value| Some(Operand::Static(value));
    let intrinsic = |value| Some(Operand::Attribute(Attribute::Intrinsic(value)));
    match word {
        "true" => return statik(Static::Bool(true)),
        "false" => return statik(Static::Bool(false)),
        "nil" => return statik(Static::Nil),
        "unset" => return statik(Static::Status(0)),
        "ok" => return statik(Static::Status(1)),
        "error" => return statik(Static::Status(2)),
        "unspecified" => return statik(Static::Kind(0)),
        "internal" => return statik(Static::Kind(1)),
        "server" => return statik(Static::Kind(2)),
        "client" => return statik(Static::Kind(3)),
        "producer" => return statik(Static::Kind(4)),
        "consumer" => return statik(Static::Kind(5)),
        "name" | "span:name" => return intrinsic(Intrinsic::Name),
        "status" | "span:status" => return intrinsic(Intrinsic::Status),
        "statusMessage" | "span:statusMessage" => return intrinsic(Intrinsic::StatusMessage),
        "duration" | "span:duration" => return intrinsic(Intrinsic::Duration),
        "kind" | "span:kind" => return intrinsic(Intrinsic::Kind),
        "rootName" | "trace:rootName" => return intrinsic(Intrinsic::RootName),
        "rootServiceName" | "trace:rootService" => return intrinsic(Intrinsic::RootServiceName),
        "traceDuration" | "trace:duration" => return intrinsic(Intrinsic::TraceDuration),
        "span:id" => return intrinsic(Intrinsic::SpanId),
        "trace:id" => return intrinsic(Intrinsic::TraceId),
        "span:parentID" => return intrinsic(Intrinsic::ParentId),
        _ => {}
    }
    let attribute = if let Some(name) = word.strip_prefix("span.") {
        Attribute::Span(name.to_string())
    } else if let Some(name) = word.strip_prefix("resource.") {
        Attribute::Resource(name.to_string())
    } else if let Some(name) = word.strip_prefix('.') {
        Attribute::Any(name.to_string())
    } else {
        return None;
    };
    let name = match &attribute {
        Attribute::Span(name) | Attribute::Resource(name) | Attribute::Any(name) => name,
        Attribute::Intrinsic(_) => return None,
    };
    (!name.is_empty()).then_some(Operand::Attribute(attribute))
}

/// An attribute named as the tag APIs name them (`resource.service.name`, `span.http.method`, `.x`,
/// `status`, `name`).
pub fn attribute(text: &str) -> Option<Attribute> {
    match word_operand(text)? {
        Operand::Attribute(attribute) => Some(attribute),
        Operand::Static(_) => None,
    }
}

/// Parses a TraceQL query.
pub fn parse(text: &str) -> Result<Query, ParseError> {
    let tokens = lex(text)?;
    let end = text.chars().count() + 1;
    let mut parser = Parser { tokens, at: 0, end };
    let spansets = parser.spansets()?;
    let mut query = Query { spansets, select: Vec::new(), count: None };
    parser.pipeline(&mut query)?;
    if parser.at < parser.tokens.len() {
        return parser.error(format!("unexpected input; {SUPPORTED}"));
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grafanas_builder_queries_parse() {
        let query = parse(r#"{resource.service.name="frontend" && name="GET /api" && status=error && duration>100ms}"#)
            .unwrap();
        let SpansetExpr::Filter(Condition::And(_, last)) = &query.spansets else { panic!("{query:?}") };
        assert_eq!(
            **last,
            Condition::Compare(
                Operand::Attribute(Attribute::Intrinsic(Intrinsic::Duration)),
                Comparison::Gt,
                Operand::Static(Static::Duration(100_000_000))
            )
        );
        assert_eq!(parse("{}").unwrap().spansets, SpansetExpr::Filter(Condition::True));
        parse(r#"{ (span.http.method="GET" || span.http.method="POST") && .http.status_code >= 500 }"#).unwrap();
        parse(r#"{ kind = server } >> { span.db.system =~ "postgres|mysql" } | select(span.db.statement)"#).unwrap();
        parse(r#"{ resource.env = "prod" } && { status = error } | count() > 2"#).unwrap();
        parse("{ traceDuration > 1h30m && span:duration < 1.5s && .flag && span.x != nil }").unwrap();
    }

    #[test]
    fn what_is_not_supported_is_refused_with_its_column() {
        for (text, column, expected) in [
            ("{ span.a = 1 } | rate()", 18, "this pipeline stage is not supported"),
            ("{ foo = 1 }", 3, "\"foo\" is not a known field"),
            ("{ .a = \"x }", 8, "unterminated string"),
            ("{ .a = 1 ", 10, "expected } to close the spanset"),
            ("{ .a = 1 } !> { .b = 2 }", 12, "negated structural operators"),
            ("{ .a = 12zz }", 8, "is not a number or a duration"),
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error.column, column, "{text}: {error}");
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
    }
}
