//! Turns TraceQL text into [`Token`]s with their byte offsets.
//!
//! Attribute references are lexed whole, as Tempo's lexer does: after `span.`,
//! `resource.` or a leading `.`, the name runs until whitespace or one of
//! `{ } ( ) = ~ ! < > & | ^ , "`, so `span.http.status_code` and `span.foo-bar` are one
//! token; `"..."` segments quote names with other characters (`span."a b"`). Scoped
//! intrinsics (`span:name`, `trace:rootService`) are lexed as one identifier.

use super::parser::ParseError;

#[cfg(test)]
mod tests;

/// A lexical token.
#[derive(Clone, Debug, PartialEq)]
pub enum Token {
    /// A bare word: keyword, intrinsic, enum literal or function name; scoped intrinsics
    /// keep their colon (`span:name`).
    Ident(String),
    /// `scope.name`, with the scope as written (`span`, `resource`, `""` for `.name`).
    Attribute {
        scope: String,
        name: String,
    },
    String(String),
    Int(i64),
    Float(f64),
    /// Nanoseconds.
    Duration(i64),
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Pipe,
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    /// `=~`.
    Re,
    /// `!~`: negated regex inside a filter, not-sibling between spansets.
    NotTilde,
    /// `~`.
    Tilde,
    AndAnd,
    OrOr,
    Not,
    /// `>>`.
    Desc,
    /// `<<`.
    Anc,
    /// `!>`, `!<`, `!>>`, `!<<`.
    NotChild,
    NotParent,
    NotDesc,
    NotAnc,
    /// `&>`, `&<`, `&>>`, `&<<`, `&~`.
    UnionChild,
    UnionParent,
    UnionDesc,
    UnionAnc,
    UnionSibling,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Caret,
    Eof,
}

/// A token and the byte offset where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned {
    pub token: Token,
    pub offset: usize,
}

/// Splits `src` into tokens, ending with [`Token::Eof`].
///
/// # Errors
///
/// Returns a [`ParseError`] for unterminated strings, malformed numbers and durations, and
/// characters TraceQL does not use.
pub fn lex(src: &str) -> Result<Vec<Spanned>, ParseError> {
    let mut lx = Lexer { src, pos: 0 };
    let mut out = Vec::new();
    loop {
        lx.skip_space();
        let offset = lx.pos;
        let Some(c) = lx.peek() else {
            out.push(Spanned {
                token: Token::Eof,
                offset,
            });
            return Ok(out);
        };
        let token = lx.token(c, offset)?;
        out.push(Spanned { token, offset });
    }
}

/// Returns whether `c` may appear unquoted in an attribute name.
pub fn is_attribute_char(c: char) -> bool {
    !c.is_whitespace() && !"{}()=~!<>&|^,\"".contains(c)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

const SCOPES: &[&str] = &[
    "span",
    "resource",
    "event",
    "link",
    "instrumentation",
    "parent",
];
const INTRINSIC_SCOPES: &[&str] = &["span", "trace", "event", "link", "instrumentation"];

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn err(&self, offset: usize, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.src, offset, msg)
    }

    fn token(&mut self, c: char, offset: usize) -> Result<Token, ParseError> {
        if c.is_ascii_digit() {
            return self.number(offset);
        }
        if c.is_alphabetic() || c == '_' {
            return self.word();
        }
        if c == '"' || c == '`' {
            return self.string().map(Token::String);
        }
        if c == '.'
            && self
                .peek_at(1)
                .is_some_and(|n| n == '"' || is_attribute_char(n))
        {
            self.bump();
            let name = self.attribute_name()?;
            return Ok(Token::Attribute {
                scope: String::new(),
                name,
            });
        }
        self.bump();
        let t = match c {
            '{' => Token::LBrace,
            '}' => Token::RBrace,
            '(' => Token::LParen,
            ')' => Token::RParen,
            ',' => Token::Comma,
            '+' => Token::Plus,
            '-' => Token::Minus,
            '*' => Token::Star,
            '/' => Token::Slash,
            '%' => Token::Percent,
            '^' => Token::Caret,
            '~' => Token::Tilde,
            '=' if self.eat('~') => Token::Re,
            '=' => {
                self.eat('=');
                Token::Eq
            }
            '|' if self.eat('|') => Token::OrOr,
            '|' => Token::Pipe,
            '&' if self.eat('&') => Token::AndAnd,
            '&' if self.eat('~') => Token::UnionSibling,
            '&' if self.eat('>') => {
                if self.eat('>') {
                    Token::UnionDesc
                } else {
                    Token::UnionChild
                }
            }
            '&' if self.eat('<') => {
                if self.eat('<') {
                    Token::UnionAnc
                } else {
                    Token::UnionParent
                }
            }
            '!' if self.eat('=') => Token::Neq,
            '!' if self.eat('~') => Token::NotTilde,
            '!' if self.eat('>') => {
                if self.eat('>') {
                    Token::NotDesc
                } else {
                    Token::NotChild
                }
            }
            '!' if self.eat('<') => {
                if self.eat('<') {
                    Token::NotAnc
                } else {
                    Token::NotParent
                }
            }
            '!' => Token::Not,
            '>' if self.eat('=') => Token::Gte,
            '>' if self.eat('>') => Token::Desc,
            '>' => Token::Gt,
            '<' if self.eat('=') => Token::Lte,
            '<' if self.eat('<') => Token::Anc,
            '<' => Token::Lt,
            other => return Err(self.err(offset, format!("unexpected character {other:?}"))),
        };
        Ok(t)
    }

    fn word(&mut self) -> Result<Token, ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.bump();
        }
        let word = &self.src[start..self.pos];
        if SCOPES.contains(&word)
            && self.peek() == Some('.')
            && self
                .peek_at(1)
                .is_some_and(|n| n == '"' || is_attribute_char(n))
        {
            self.bump();
            let name = self.attribute_name()?;
            return Ok(Token::Attribute {
                scope: word.to_string(),
                name,
            });
        }
        if INTRINSIC_SCOPES.contains(&word)
            && self.peek() == Some(':')
            && self.peek_at(1).is_some_and(|c| c.is_alphabetic())
        {
            self.bump();
            while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                self.bump();
            }
        }
        Ok(Token::Ident(self.src[start..self.pos].to_string()))
    }

    /// Reads an attribute name after its scope's dot: unquoted runs and quoted segments.
    fn attribute_name(&mut self) -> Result<String, ParseError> {
        let mut name = String::new();
        loop {
            match self.peek() {
                Some('"') => name.push_str(&self.string()?),
                Some(c) if is_attribute_char(c) => {
                    while let Some(c) = self.peek().filter(|c| is_attribute_char(*c)) {
                        name.push(c);
                        self.bump();
                    }
                }
                _ => break,
            }
        }
        if name.is_empty() {
            return Err(self.err(self.pos, "empty attribute name"));
        }
        Ok(name)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let quote = self.bump().unwrap_or('"');
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(self.err(start, "unterminated string")),
                Some(c) if c == quote => return Ok(s),
                Some('\\') if quote == '"' => {
                    let at = self.pos - 1;
                    match self.bump() {
                        Some('"') => s.push('"'),
                        Some('\\') => s.push('\\'),
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('r') => s.push('\r'),
                        Some(c) => {
                            return Err(self.err(at, format!("unsupported escape sequence \\{c}")));
                        }
                        None => return Err(self.err(start, "unterminated string")),
                    }
                }
                Some(c) => s.push(c),
            }
        }
    }

    /// Reads an int, a float, or a duration (Go syntax: `1.5s`, `1h30m`, `100ms`).
    fn number(&mut self, offset: usize) -> Result<Token, ParseError> {
        let mut total_ns: f64 = 0.0;
        let mut is_duration = false;
        loop {
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
            let mut is_float = false;
            if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
                is_float = true;
                self.bump();
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
            }
            if !is_duration && matches!(self.peek(), Some('e' | 'E')) && self.exponent_follows() {
                is_float = true;
                self.bump();
                if matches!(self.peek(), Some('+' | '-')) {
                    self.bump();
                }
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
            }
            let digits = &self.src[start..self.pos];
            let unit_start = self.pos;
            while self.peek().is_some_and(|c| c.is_alphabetic() || c == 'µ') {
                self.bump();
            }
            let unit = &self.src[unit_start..self.pos];
            if unit.is_empty() {
                if is_duration {
                    return Err(self.err(offset, "invalid duration: missing unit"));
                }
                if self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    return Err(self.err(offset, "invalid number"));
                }
                return if is_float {
                    digits
                        .parse::<f64>()
                        .map(Token::Float)
                        .map_err(|_| self.err(offset, format!("invalid float {digits}")))
                } else {
                    digits
                        .parse::<i64>()
                        .map(Token::Int)
                        .map_err(|_| self.err(offset, format!("integer {digits} out of range")))
                };
            }
            let scale = match unit {
                "ns" => 1.0,
                "us" | "µs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => {
                    return Err(self.err(
                        unit_start,
                        format!("invalid duration unit {unit:?} (use ns, us, ms, s, m or h)"),
                    ));
                }
            };
            let n: f64 = digits
                .parse()
                .map_err(|_| self.err(offset, "invalid duration"))?;
            total_ns += n * scale;
            is_duration = true;
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                break;
            }
        }
        if !total_ns.is_finite() || total_ns >= i64::MAX as f64 {
            return Err(self.err(offset, "duration out of range"));
        }
        Ok(Token::Duration(total_ns.round() as i64))
    }

    fn exponent_follows(&self) -> bool {
        match self.peek_at(1) {
            Some(c) if c.is_ascii_digit() => true,
            Some('+' | '-') => self.peek_at(2).is_some_and(|c| c.is_ascii_digit()),
            _ => false,
        }
    }
}
