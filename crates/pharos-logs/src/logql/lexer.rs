//! LogQL tokens and the lexer producing them.

use super::parser::ParseError;

/// A token kind; the payload of identifiers and strings is unquoted text.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// `{`
    OpenBrace,
    /// `}`
    CloseBrace,
    /// `(`
    OpenParen,
    /// `)`
    CloseParen,
    /// `[`
    OpenBracket,
    /// `]`
    CloseBracket,
    /// `,`
    Comma,
    /// A label name, keyword or function name.
    Ident(String),
    /// A quoted (`"..."`) or raw (`` `...` ``) string, unquoted.
    Str(String),
    /// A number.
    Number(f64),
    /// A duration such as `5m` or `1h30m`, in nanoseconds.
    Duration(i64),
    /// A byte size such as `20MB` or `1KiB`, in bytes.
    Bytes(f64),
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
    /// `|>`
    PipePattern,
    /// `!>`
    NotPattern,
    /// `|`
    Pipe,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `==`
    CmpEq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// The end of the input.
    Eof,
}

impl Tok {
    /// Returns the name Loki's grammar prints for this token in syntax errors.
    pub fn name(&self) -> &'static str {
        match self {
            Tok::OpenBrace => "{",
            Tok::CloseBrace => "}",
            Tok::OpenParen => "(",
            Tok::CloseParen => ")",
            Tok::OpenBracket => "[",
            Tok::CloseBracket => "]",
            Tok::Comma => ",",
            Tok::Ident(_) => "IDENTIFIER",
            Tok::Str(_) => "STRING",
            Tok::Number(_) => "NUMBER",
            Tok::Duration(_) => "DURATION",
            Tok::Bytes(_) => "BYTES",
            Tok::Eq => "=",
            Tok::Neq => "!=",
            Tok::Re => "=~",
            Tok::Nre => "!~",
            Tok::PipeExact => "|=",
            Tok::PipeMatch => "|~",
            Tok::PipePattern => "|>",
            Tok::NotPattern => "!>",
            Tok::Pipe => "|",
            Tok::Add => "+",
            Tok::Sub => "-",
            Tok::Mul => "*",
            Tok::Div => "/",
            Tok::Mod => "%",
            Tok::Pow => "^",
            Tok::CmpEq => "==",
            Tok::Gt => ">",
            Tok::Gte => ">=",
            Tok::Lt => "<",
            Tok::Lte => "<=",
            Tok::Eof => "$end",
        }
    }
}

/// A token and the 1-based column (in characters) where it starts.
#[derive(Debug, Clone, PartialEq)]
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
/// Returns a [`ParseError`] for an unterminated string, a bad escape, a malformed
/// number, duration or byte size, or a character LogQL does not use.
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
            ('#', _) => {
                // A comment runs to the end of the line.
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            ('{', _) => (Tok::OpenBrace, 1),
            ('}', _) => (Tok::CloseBrace, 1),
            ('(', _) => (Tok::OpenParen, 1),
            (')', _) => (Tok::CloseParen, 1),
            ('[', _) => (Tok::OpenBracket, 1),
            (']', _) => (Tok::CloseBracket, 1),
            (',', _) => (Tok::Comma, 1),
            ('=', Some('~')) => two(Tok::Re),
            ('=', Some('=')) => two(Tok::CmpEq),
            ('=', _) => (Tok::Eq, 1),
            ('!', Some('=')) => two(Tok::Neq),
            ('!', Some('~')) => two(Tok::Nre),
            ('!', Some('>')) => two(Tok::NotPattern),
            ('|', Some('=')) => two(Tok::PipeExact),
            ('|', Some('~')) => two(Tok::PipeMatch),
            ('|', Some('>')) => two(Tok::PipePattern),
            ('|', _) => (Tok::Pipe, 1),
            ('>', Some('=')) => two(Tok::Gte),
            ('>', _) => (Tok::Gt, 1),
            ('<', Some('=')) => two(Tok::Lte),
            ('<', _) => (Tok::Lt, 1),
            ('+', _) => (Tok::Add, 1),
            ('-', _) => (Tok::Sub, 1),
            ('*', _) => (Tok::Mul, 1),
            ('/', _) => (Tok::Div, 1),
            ('%', _) => (Tok::Mod, 1),
            ('^', _) => (Tok::Pow, 1),
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
            (c, _)
                if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) =>
            {
                number(&chars[i..], col)?
            }
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

/// Lexes a number, or a duration (`5m`, `1h30m`, `1.5s`) or byte size (`20MB`) when
/// letters follow the digits.
fn number(chars: &[char], col: usize) -> Result<(Tok, usize), ParseError> {
    let hex = chars.len() > 2 && chars[0] == '0' && matches!(chars[1], 'x' | 'X');
    if hex {
        let len = 2 + chars[2..]
            .iter()
            .position(|c| !c.is_ascii_hexdigit())
            .unwrap_or(chars.len() - 2);
        let text: String = chars[2..len].iter().collect();
        let v = u64::from_str_radix(&text, 16)
            .map_err(|_| ParseError::at(col, "syntax error: invalid number"))?;
        return Ok((Tok::Number(v as f64), len));
    }
    // The whole word: digits, letters, dots, and an exponent's sign.
    let mut len = 0;
    while len < chars.len() {
        let c = chars[len];
        let exp_sign = matches!(c, '+' | '-')
            && len > 0
            && matches!(chars[len - 1], 'e' | 'E')
            && chars[..len - 1]
                .iter()
                .all(|c| c.is_ascii_digit() || *c == '.');
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == 'µ' || exp_sign {
            len += 1;
        } else {
            break;
        }
    }
    let text: String = chars[..len].iter().collect();
    if let Ok(v) = text.parse::<f64>()
        && !text
            .chars()
            .any(|c| c.is_ascii_alphabetic() && !matches!(c, 'e' | 'E'))
    {
        return Ok((Tok::Number(v), len));
    }
    if let Some(ns) =
        pharos_model::duration::parse_nanos(&text, pharos_model::duration::Units::WithDays)
    {
        return Ok((Tok::Duration(i64::try_from(ns).unwrap_or(i64::MAX)), len));
    }
    if let Some(b) = parse_bytes(&text) {
        return Ok((Tok::Bytes(b), len));
    }
    Err(ParseError::at(
        col,
        &format!("syntax error: invalid number, duration or byte size {text:?}"),
    ))
}

/// Parses a byte size as go-humanize's `ParseBytes` does: `42`, `42B`, `1.5kB`, `20MB`,
/// `1KiB`, `3 MiB` (SI units are powers of 1000, IEC ones of 1024; case-insensitive).
pub fn parse_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024f64.powi(6),
        _ => return None,
    };
    Some(v * mult)
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
