//! LogQL tokens and the lexer producing them.

use super::parser::ParseError;

/// A token kind; the payload of identifiers and strings is unquoted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// `{`
    OpenBrace,
    /// `}`
    CloseBrace,
    /// `,`
    Comma,
    /// A label name.
    Ident(String),
    /// A quoted (`"..."`) or raw (`` `...` ``) string, unquoted.
    Str(String),
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`
    Re,
    /// `!~`
    Nre,
    /// `|=`
    PipeExact,
    /// `|~`
    PipeMatch,
    /// `|` (pipeline stages, not supported by this subset)
    Pipe,
    /// The end of the input.
    Eof,
}

impl Tok {
    /// Returns the name Loki's grammar prints for this token in syntax errors.
    pub fn name(&self) -> &'static str {
        match self {
            Tok::OpenBrace => "{",
            Tok::CloseBrace => "}",
            Tok::Comma => ",",
            Tok::Ident(_) => "IDENTIFIER",
            Tok::Str(_) => "STRING",
            Tok::Eq => "=",
            Tok::Neq => "!=",
            Tok::Re => "=~",
            Tok::Nre => "!~",
            Tok::PipeExact => "|=",
            Tok::PipeMatch => "|~",
            Tok::Pipe => "|",
            Tok::Eof => "$end",
        }
    }
}

/// A token and the 1-based column (in characters) where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Its 1-based column.
    pub col: usize,
}

/// Splits `input` into tokens, ending with [`Tok::Eof`].
///
/// # Errors
///
/// Returns a [`ParseError`] for an unterminated string, a bad escape or a
/// character LogQL does not use.
pub fn lex(input: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let next = chars.get(i + 1).copied();
        let two = |t: Tok| (t, 2);
        let (tok, len) = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('{', _) => (Tok::OpenBrace, 1),
            ('}', _) => (Tok::CloseBrace, 1),
            (',', _) => (Tok::Comma, 1),
            ('=', Some('~')) => two(Tok::Re),
            ('=', _) => (Tok::Eq, 1),
            ('!', Some('=')) => two(Tok::Neq),
            ('!', Some('~')) => two(Tok::Nre),
            ('|', Some('=')) => two(Tok::PipeExact),
            ('|', Some('~')) => two(Tok::PipeMatch),
            ('|', _) => (Tok::Pipe, 1),
            ('"', _) => {
                let (s, len) = quoted(&chars[i..], col)?;
                (Tok::Str(s), len)
            }
            ('`', _) => match chars[i + 1..].iter().position(|c| *c == '`') {
                Some(end) => (
                    Tok::Str(chars[i + 1..i + 1 + end].iter().collect()),
                    end + 2,
                ),
                None => return Err(ParseError::at(col, "literal not terminated")),
            },
            (c, _) if c.is_ascii_alphabetic() || c == '_' => {
                let len = chars[i..]
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.'))
                    .unwrap_or(chars.len() - i);
                (Tok::Ident(chars[i..i + len].iter().collect()), len)
            }
            (c, _) => {
                return Err(ParseError::at(
                    col,
                    &format!("syntax error: unexpected character {c:?}"),
                ));
            }
        };
        out.push(Token { tok, col });
        i += len;
    }
    out.push(Token {
        tok: Tok::Eof,
        col: chars.len() + 1,
    });
    Ok(out)
}

/// Unquotes a Go double-quoted string starting at `chars[0] == '"'`; returns the
/// text and how many characters the literal spans.
fn quoted(chars: &[char], col: usize) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut i = 1;
    loop {
        match chars.get(i) {
            None | Some('\n') => return Err(ParseError::at(col, "literal not terminated")),
            Some('"') => return Ok((out, i + 1)),
            Some('\\') => {
                let esc = chars.get(i + 1).copied();
                let simple = match esc {
                    Some('n') => Some('\n'),
                    Some('t') => Some('\t'),
                    Some('r') => Some('\r'),
                    Some('a') => Some('\x07'),
                    Some('b') => Some('\x08'),
                    Some('f') => Some('\x0c'),
                    Some('v') => Some('\x0b'),
                    Some('\\') => Some('\\'),
                    Some('"') => Some('"'),
                    Some('\'') => Some('\''),
                    _ => None,
                };
                if let Some(c) = simple {
                    out.push(c);
                    i += 2;
                    continue;
                }
                let digits = match esc {
                    Some('x') => 2,
                    Some('u') => 4,
                    Some('U') => 8,
                    _ => return Err(ParseError::at(col, "invalid char escape")),
                };
                let hex: String = chars.iter().skip(i + 2).take(digits).collect();
                let c = (hex.len() == digits)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| ParseError::at(col, "invalid char escape"))?;
                out.push(c);
                i += 2 + digits;
            }
            Some(c) => {
                out.push(*c);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn lexes_operators_strings_and_idents() {
        assert_eq!(
            toks(r#"{a="b\"c",x!~`r\d`} |= "e" != "f" |~ "g" !~ "h""#),
            vec![
                Tok::OpenBrace,
                Tok::Ident("a".into()),
                Tok::Eq,
                Tok::Str("b\"c".into()),
                Tok::Comma,
                Tok::Ident("x".into()),
                Tok::Nre,
                Tok::Str(r"r\d".into()),
                Tok::CloseBrace,
                Tok::PipeExact,
                Tok::Str("e".into()),
                Tok::Neq,
                Tok::Str("f".into()),
                Tok::PipeMatch,
                Tok::Str("g".into()),
                Tok::Nre,
                Tok::Str("h".into()),
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn reports_unterminated_and_bad_escapes() {
        assert_eq!(
            lex(r#"{a="b}"#).unwrap_err().to_string(),
            "parse error at line 1, col 4: literal not terminated"
        );
        assert_eq!(
            lex(r#"{a="\d"}"#).unwrap_err().to_string(),
            "parse error at line 1, col 4: invalid char escape"
        );
        assert_eq!(
            toks(r#""\u00e9\x41""#),
            vec![Tok::Str("éA".into()), Tok::Eof]
        );
    }
}
