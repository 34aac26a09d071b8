//! Recursive-descent parser for the LogQL subset.
//!
//! ```text
//! query    = selector { filter }
//! selector = "{" matcher { "," matcher } [ "," ] "}"
//! matcher  = IDENTIFIER ( "=" | "!=" | "=~" | "!~" ) STRING
//! filter   = ( "|=" | "!=" | "|~" | "!~" ) STRING
//! ```

use super::ast::{FilterOp, LabelMatcher, LineFilter, LogSelector, MatchOp};
use super::lexer::{Tok, Token, lex};

/// A query that does not parse, displayed as Loki displays its parse errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ParseError {
    /// What went wrong, e.g. `syntax error: unexpected IDENTIFIER, expecting STRING`.
    pub msg: String,
    /// 1-based line, or 0 for errors about the query as a whole.
    pub line: usize,
    /// 1-based column, or 0 for errors about the query as a whole.
    pub col: usize,
}

impl ParseError {
    /// Returns an error at column `col` of line 1.
    pub fn at(col: usize, msg: &str) -> Self {
        Self {
            msg: msg.into(),
            line: 1,
            col,
        }
    }

    /// Returns an error about the whole query, without a position.
    pub fn whole(msg: &str) -> Self {
        Self {
            msg: msg.into(),
            line: 0,
            col: 0,
        }
    }

    fn render(&self) -> String {
        if self.line == 0 && self.col == 0 {
            format!("parse error : {}", self.msg)
        } else {
            format!(
                "parse error at line {}, col {}: {}",
                self.line, self.col, self.msg
            )
        }
    }
}

/// Loki's message for selectors that every stream could match.
pub const EMPTY_COMPATIBLE: &str = "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

/// Parses a log query.
///
/// # Errors
///
/// Returns a [`ParseError`] for a syntax error, an invalid regex, or a selector
/// whose matchers all match the empty string.
pub fn parse(input: &str) -> Result<LogSelector, ParseError> {
    let tokens = lex(input)?;
    let mut p = Parser { tokens, pos: 0 };
    let matchers = p.selector()?;
    let mut filters = Vec::new();
    loop {
        let t = p.next();
        let op = match t.tok {
            Tok::Eof => break,
            Tok::PipeExact => FilterOp::Contains,
            Tok::Neq => FilterOp::NotContains,
            Tok::PipeMatch => FilterOp::Match,
            Tok::Nre => FilterOp::NotMatch,
            Tok::Pipe => {
                return Err(ParseError::at(
                    t.col,
                    "syntax error: pipeline stages are not supported yet",
                ));
            }
            _ => return Err(unexpected(&t, "!= or !~ or |~ or |=")),
        };
        let (value, col) = p.string()?;
        filters.push(LineFilter::new(op, &value).map_err(|m| ParseError::at(col, &m))?);
    }
    if !matchers.iter().any(|m| !m.matches("")) {
        return Err(ParseError::whole(EMPTY_COMPATIBLE));
    }
    Ok(LogSelector { matchers, filters })
}

/// Parses a bare stream selector (`{...}`), as `match[]` and label queries take.
///
/// # Errors
///
/// As [`parse`]; line filters are refused.
pub fn parse_selector(input: &str) -> Result<LogSelector, ParseError> {
    let sel = parse(input)?;
    if !sel.filters.is_empty() {
        return Err(ParseError::whole("only stream selectors are accepted here"));
    }
    Ok(sel)
}

/// Parses the labels of a pushed stream, `{a="b", c="d"}` (`=` matchers only), in the
/// order written; `{}` and the empty string are no labels.
///
/// # Errors
///
/// A [`ParseError`] for anything else.
pub fn parse_labels(input: &str) -> Result<Vec<(String, String)>, ParseError> {
    let trimmed = input.trim();
    if trimmed.is_empty() || trimmed.replace(char::is_whitespace, "") == "{}" {
        return Ok(Vec::new());
    }
    let tokens = lex(input)?;
    let mut p = Parser { tokens, pos: 0 };
    let matchers = p.selector()?;
    let t = p.next();
    if t.tok != Tok::Eof {
        return Err(unexpected(&t, "$end"));
    }
    matchers
        .into_iter()
        .map(|m| match m.op {
            MatchOp::Eq => Ok((m.name, m.value)),
            _ => Err(ParseError::whole("a stream's labels take = only")),
        })
        .collect()
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

fn unexpected(t: &Token, expecting: &str) -> ParseError {
    ParseError::at(
        t.col,
        &format!(
            "syntax error: unexpected {}, expecting {expecting}",
            t.tok.name()
        ),
    )
}

impl Parser {
    fn next(&mut self) -> Token {
        let t = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        self.pos += 1;
        t
    }

    fn string(&mut self) -> Result<(String, usize), ParseError> {
        let t = self.next();
        match t.tok {
            Tok::Str(s) => Ok((s, t.col)),
            _ => Err(unexpected(&t, "STRING")),
        }
    }

    fn selector(&mut self) -> Result<Vec<LabelMatcher>, ParseError> {
        let t = self.next();
        if t.tok != Tok::OpenBrace {
            return Err(unexpected(&t, "{"));
        }
        let mut matchers = Vec::new();
        loop {
            let t = self.next();
            let name = match t.tok {
                Tok::Ident(name) => name,
                Tok::CloseBrace if !matchers.is_empty() => return Ok(matchers),
                _ => return Err(unexpected(&t, "IDENTIFIER")),
            };
            let t = self.next();
            let op = match t.tok {
                Tok::Eq => MatchOp::Eq,
                Tok::Neq => MatchOp::Neq,
                Tok::Re => MatchOp::Re,
                Tok::Nre => MatchOp::Nre,
                _ => return Err(unexpected(&t, "= or != or =~ or !~")),
            };
            let (value, col) = self.string()?;
            matchers
                .push(LabelMatcher::new(&name, op, &value).map_err(|m| ParseError::at(col, &m))?);
            let t = self.next();
            match t.tok {
                Tok::Comma => {}
                Tok::CloseBrace => return Ok(matchers),
                _ => return Err(unexpected(&t, ", or }")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` and renders it back, or returns the error text.
    fn check(input: &str, expected: &str) {
        let got = match parse(input) {
            Ok(sel) => {
                let ms: Vec<String> = sel
                    .matchers
                    .iter()
                    .map(|m| format!("{}{:?}{:?}", m.name, m.op, m.value))
                    .collect();
                let fs: Vec<String> = sel
                    .filters
                    .iter()
                    .map(|f| format!("{:?}{:?}", f.op, f.value))
                    .collect();
                format!("{} {}", ms.join(","), fs.join(" "))
                    .trim_end()
                    .to_string()
            }
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expected, "input: {input}");
    }

    #[test]
    fn parses_selectors_and_filters() {
        check(r#"{app="api"}"#, r#"appEq"api""#);
        check(
            r#"{ app = "api" , env!="dev", x=~"a|b", y!~`c.*`, }"#,
            r#"appEq"api",envNeq"dev",xRe"a|b",yNre"c.*""#,
        );
        check(
            r#"{app="api"} |= "err" != `timeout` |~ "5\\d\\d" !~ "debug""#,
            r#"appEq"api" Contains"err" NotContains"timeout" Match"5\\d\\d" NotMatch"debug""#,
        );
        check(r#"{k8s.pod.name="p"}"#, r#"k8s.pod.nameEq"p""#);
    }

    #[test]
    fn reports_syntax_errors_like_loki() {
        check(
            r#"{foo="bar"} foo"#,
            "parse error at line 1, col 13: syntax error: unexpected IDENTIFIER, expecting != or !~ or |~ or |=",
        );
        check(
            r#"{foo="bar"} "x""#,
            "parse error at line 1, col 13: syntax error: unexpected STRING, expecting != or !~ or |~ or |=",
        );
        check(
            r#"{foo>"bar"}"#,
            "parse error at line 1, col 5: syntax error: unexpected character '>'",
        );
        check(
            r#"{foo=bar}"#,
            "parse error at line 1, col 6: syntax error: unexpected IDENTIFIER, expecting STRING",
        );
        check(
            r#"{foo "bar"}"#,
            "parse error at line 1, col 6: syntax error: unexpected STRING, expecting = or != or =~ or !~",
        );
        check(
            r#"{foo="bar""#,
            "parse error at line 1, col 11: syntax error: unexpected $end, expecting , or }",
        );
        check(
            "{}",
            "parse error at line 1, col 2: syntax error: unexpected }, expecting IDENTIFIER",
        );
        check(
            "foo",
            "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER, expecting {",
        );
        check(
            "",
            "parse error at line 1, col 1: syntax error: unexpected $end, expecting {",
        );
        check(
            r#"{a="b"} |= "x" |="#,
            "parse error at line 1, col 18: syntax error: unexpected $end, expecting STRING",
        );
        check(
            r#"{a=~"("}"#,
            "parse error at line 1, col 5: error parsing regexp: unclosed group",
        );
    }

    #[test]
    fn requires_a_matcher_that_rejects_empty() {
        let err = format!("parse error : {EMPTY_COMPATIBLE}");
        check(r#"{app=~".*"}"#, &err);
        check(r#"{app=""}"#, &err);
        check(r#"{app!="x"}"#, &err);
        check(r#"{app!~".+"}"#, &err);
        check(r#"{app=~".*", env="prod"}"#, r#"appRe".*",envEq"prod""#);
        check(r#"{app=~".+"}"#, r#"appRe".+""#);
        check(r#"{app!=""}"#, r#"appNeq"""#);
    }

    #[test]
    fn regex_matchers_are_anchored_and_filters_are_not() {
        let sel = parse(r#"{app=~"ap"} |~ "rr""#).unwrap();
        assert!(sel.matchers[0].matches("ap"));
        assert!(!sel.matchers[0].matches("api"));
        assert!(sel.matches_line("an error here"));
        let sel = parse(r#"{app=~"a.c"}"#).unwrap();
        assert!(sel.matchers[0].matches("a\nc"), "(?s) like Prometheus");
    }
}
