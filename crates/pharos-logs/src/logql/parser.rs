//! Recursive-descent parser for LogQL, with Loki's error texts where they matter.
//!
//! ```text
//! query      = log | metric
//! log        = selector { stage }
//! selector   = "{" matcher { "," matcher } [ "," ] "}"
//! matcher    = IDENTIFIER ( "=" | "!=" | "=~" | "!~" ) STRING
//! stage      = line_filter | "|" ( parser | label_filter | "line_format" STRING
//!              | "label_format" fmt { "," fmt } | ( "drop" | "keep" ) sel { "," sel } | "decolorize" )
//! line_filter= ( "|=" | "!=" | "|~" | "!~" | "|>" | "!>" ) value { "or" value }
//! value      = STRING | "ip" "(" STRING ")"
//! parser     = "json" [ params ] | "logfmt" { "--strict" | "--keep-empty" } [ params ]
//!              | "regexp" STRING | "pattern" STRING | "unpack"
//! label_filter = and_filter { "or" and_filter };  and_filter = primary { ( "and" | "," | ) primary }
//! primary    = "(" label_filter ")" | IDENTIFIER op ( STRING | NUMBER | DURATION | BYTES | "ip" "(" STRING ")" )
//! metric     = operand { binop [ "bool" ] [ ( "on" | "ignoring" ) labels [ ( "group_left" | "group_right" ) [ labels ] ] ] operand }
//! operand    = NUMBER | "(" metric ")" | range_fn "(" [ NUMBER "," ] log_range ")" [ grouping ]
//!              | vector_op [ grouping ] "(" [ NUMBER "," ] metric ")" [ grouping ]
//!              | "vector" "(" NUMBER ")" | "label_replace" "(" metric "," STRING "," STRING "," STRING "," STRING ")"
//! log_range  = selector [ range ] { stage } [ "|" "unwrap" unwrapped { "|" label_filter } ] [ range ] [ "offset" DURATION ]
//!              | "(" log_range ")" range [ "offset" DURATION ]
//! ```
//!
//! Binary operators bind as in PromQL (`^` right-associative, then `* / %`, `+ -`,
//! comparisons, `and unless`, `or`).

use super::ast::{
    BinOp, BinaryExpr, CmpOp, Expr, FilterOp, FilterValue, Grouping, IpMatch, LabelFilter,
    LabelFmt, LabelMatcher, LabelReplace, LabelSel, LineFilter, LogExpr, MatchOp, MetricExpr,
    NumKind, RangeAgg, RangeOp, Stage, Unwrap, VectorAgg, VectorMatching, VectorOp, regex_error,
};
use super::lexer::{Tok, Token, lex};
use super::parsers::Parser as LineParser;
use super::template::Template;

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

/// Parses a query, log or metric.
///
/// # Errors
///
/// Returns a [`ParseError`] for a syntax error, an invalid regex or template, a
/// selector whose matchers all match the empty string, or a construct LogQL refuses.
pub fn parse_expr(input: &str) -> Result<Expr, ParseError> {
    let tokens = lex(input)?;
    let mut p = Parser { tokens, pos: 0 };
    let expr = if p.peek() == &Tok::OpenBrace {
        let log = p.log_expr(false)?.0;
        match p.peek() {
            Tok::Eof => return Ok(Expr::Log(log)),
            _ => return Err(unexpected(&p.next(), None)),
        }
    } else {
        p.metric(0)?
    };
    let t = p.next();
    if t.tok != Tok::Eof {
        return Err(unexpected(&t, None));
    }
    match expr {
        Operand::Metric(m) => Ok(Expr::Metric(m)),
        Operand::Log(log) => Ok(Expr::Log(log)),
    }
}

/// Parses a log query; a metric query is refused.
///
/// # Errors
///
/// As [`parse_expr`].
pub fn parse(input: &str) -> Result<LogExpr, ParseError> {
    match parse_expr(input)? {
        Expr::Log(l) => Ok(l),
        Expr::Metric(_) => Err(ParseError::whole("a log query is required here")),
    }
}

/// Parses a bare stream selector (`{...}`), as `match[]` and label queries take.
///
/// # Errors
///
/// As [`parse`]; pipeline stages are refused.
pub fn parse_selector(input: &str) -> Result<LogExpr, ParseError> {
    let sel = parse(input)?;
    if !sel.stages.is_empty() {
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
        return Err(unexpected(&t, Some("$end")));
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

/// A parsed operand: metric queries combine; a log query stands alone.
enum Operand {
    Metric(MetricExpr),
    Log(LogExpr),
}

fn unexpected(t: &Token, expecting: Option<&str>) -> ParseError {
    let msg = match expecting {
        Some(e) => format!("syntax error: unexpected {}, expecting {e}", t.tok.name()),
        None => format!("syntax error: unexpected {}", t.tok.name()),
    };
    ParseError::at(t.col, &msg)
}

fn bin_op(t: &Tok) -> Option<BinOp> {
    Some(match t {
        Tok::Add => BinOp::Add,
        Tok::Sub => BinOp::Sub,
        Tok::Mul => BinOp::Mul,
        Tok::Div => BinOp::Div,
        Tok::Mod => BinOp::Mod,
        Tok::Pow => BinOp::Pow,
        Tok::CmpEq => BinOp::Eq,
        Tok::Neq => BinOp::Neq,
        Tok::Gt => BinOp::Gt,
        Tok::Gte => BinOp::Gte,
        Tok::Lt => BinOp::Lt,
        Tok::Lte => BinOp::Lte,
        Tok::Ident(s) if s == "and" => BinOp::And,
        Tok::Ident(s) if s == "or" => BinOp::Or,
        Tok::Ident(s) if s == "unless" => BinOp::Unless,
        _ => return None,
    })
}

impl Parser {
    fn next(&mut self) -> Token {
        let t = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        self.pos += 1;
        t
    }

    fn peek(&self) -> &Tok {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].tok
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)].tok
    }

    fn peek_ident(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == word)
    }

    fn expect(&mut self, tok: &Tok) -> Result<Token, ParseError> {
        let t = self.next();
        if &t.tok == tok {
            Ok(t)
        } else {
            Err(unexpected(&t, Some(tok.name())))
        }
    }

    fn string(&mut self) -> Result<(String, usize), ParseError> {
        let t = self.next();
        match t.tok {
            Tok::Str(s) => Ok((s, t.col)),
            _ => Err(unexpected(&t, Some("STRING"))),
        }
    }

    fn ident(&mut self) -> Result<(String, usize), ParseError> {
        let t = self.next();
        match t.tok {
            Tok::Ident(s) => Ok((s, t.col)),
            _ => Err(unexpected(&t, Some("IDENTIFIER"))),
        }
    }

    fn number(&mut self) -> Result<f64, ParseError> {
        let neg = if self.peek() == &Tok::Sub {
            self.next();
            true
        } else {
            false
        };
        let t = self.next();
        match t.tok {
            Tok::Number(v) => Ok(if neg { -v } else { v }),
            _ => Err(unexpected(&t, Some("NUMBER"))),
        }
    }

    fn selector(&mut self) -> Result<Vec<LabelMatcher>, ParseError> {
        let t = self.next();
        if t.tok != Tok::OpenBrace {
            return Err(unexpected(&t, Some("{")));
        }
        let mut matchers = Vec::new();
        loop {
            let t = self.next();
            let name = match t.tok {
                Tok::Ident(name) => name,
                Tok::CloseBrace if !matchers.is_empty() => return Ok(matchers),
                _ => return Err(unexpected(&t, Some("IDENTIFIER"))),
            };
            let t = self.next();
            let op = match t.tok {
                Tok::Eq => MatchOp::Eq,
                Tok::Neq => MatchOp::Neq,
                Tok::Re => MatchOp::Re,
                Tok::Nre => MatchOp::Nre,
                _ => return Err(unexpected(&t, Some("= or != or =~ or !~"))),
            };
            let (value, col) = self.string()?;
            matchers
                .push(LabelMatcher::new(&name, op, &value).map_err(|m| ParseError::at(col, &m))?);
            let t = self.next();
            match t.tok {
                Tok::Comma => {}
                Tok::CloseBrace => return Ok(matchers),
                _ => return Err(unexpected(&t, Some(", or }"))),
            }
        }
    }

    /// A selector and its pipeline. In a range aggregation (`in_range`), `| unwrap` and a
    /// `[range]` may follow; they are returned too.
    fn log_expr(&mut self, in_range: bool) -> Result<(LogExpr, RangeParts), ParseError> {
        let matchers = self.selector()?;
        if !matchers.iter().any(|m| !m.matches("")) {
            return Err(ParseError::whole(EMPTY_COMPATIBLE));
        }
        let mut parts = RangeParts::default();
        if in_range && self.peek() == &Tok::OpenBracket {
            parts.range_ns = Some(self.range()?);
        }
        let mut stages = Vec::new();
        loop {
            let op = match self.peek() {
                Tok::PipeExact => FilterOp::Contains,
                Tok::Neq => FilterOp::NotContains,
                Tok::PipeMatch => FilterOp::Match,
                Tok::Nre => FilterOp::NotMatch,
                Tok::PipePattern => FilterOp::Pattern,
                Tok::NotPattern => FilterOp::NotPattern,
                Tok::Pipe => {
                    self.next();
                    if self.peek_ident("unwrap") {
                        if !in_range {
                            let t = self.next();
                            return Err(ParseError::at(
                                t.col,
                                "syntax error: unwrap is only allowed in a range aggregation",
                            ));
                        }
                        self.next();
                        parts.unwrap = Some(self.unwrap()?);
                        continue;
                    }
                    if parts.unwrap.is_some() {
                        // Only label filters may follow an unwrap.
                        let f = self.label_filter()?;
                        if let Some(u) = parts.unwrap.as_mut() {
                            u.post_filters.push(f);
                        }
                        continue;
                    }
                    stages.push(self.stage()?);
                    continue;
                }
                _ => break,
            };
            if parts.unwrap.is_some() {
                return Err(unexpected(&self.next(), Some("|")));
            }
            self.next();
            stages.push(Stage::LineFilter(self.line_filter(op)?));
        }
        if in_range && parts.range_ns.is_none() && self.peek() == &Tok::OpenBracket {
            parts.range_ns = Some(self.range()?);
        }
        if in_range && self.peek_ident("offset") {
            self.next();
            let t = self.next();
            parts.offset_ns = match t.tok {
                Tok::Duration(ns) => ns,
                _ => return Err(unexpected(&t, Some("DURATION"))),
            };
        }
        Ok((LogExpr { matchers, stages }, parts))
    }

    fn range(&mut self) -> Result<i64, ParseError> {
        self.expect(&Tok::OpenBracket)?;
        let t = self.next();
        let ns = match t.tok {
            Tok::Duration(ns) if ns > 0 => ns,
            Tok::Number(0.0) => 0,
            _ => return Err(unexpected(&t, Some("DURATION"))),
        };
        self.expect(&Tok::CloseBracket)?;
        Ok(ns)
    }

    fn line_filter(&mut self, op: FilterOp) -> Result<LineFilter, ParseError> {
        let mut values = vec![self.filter_value(op)?];
        while self.peek_ident("or") {
            self.next();
            values.push(self.filter_value(op)?);
        }
        Ok(LineFilter { op, values })
    }

    fn filter_value(&mut self, op: FilterOp) -> Result<FilterValue, ParseError> {
        if self.peek_ident("ip") && self.peek_at(1) == &Tok::OpenParen {
            self.next();
            self.next();
            let (text, col) = self.string()?;
            self.expect(&Tok::CloseParen)?;
            if !matches!(op, FilterOp::Contains | FilterOp::NotContains) {
                return Err(ParseError::at(col, "ip() takes |= or != only"));
            }
            return IpMatch::parse(&text)
                .map(FilterValue::Ip)
                .map_err(|m| ParseError::at(col, &m));
        }
        let (value, col) = self.string()?;
        match op {
            FilterOp::Contains | FilterOp::NotContains => Ok(FilterValue::Text(value)),
            FilterOp::Match | FilterOp::NotMatch => regex::Regex::new(&value)
                .map(|re| FilterValue::Regex(value, re))
                .map_err(|e| ParseError::at(col, &regex_error(&e))),
            FilterOp::Pattern | FilterOp::NotPattern => pattern_regex(&value)
                .map(|re| FilterValue::Regex(value, re))
                .map_err(|m| ParseError::at(col, &m)),
        }
    }

    /// A stage after `|` other than `unwrap`.
    fn stage(&mut self) -> Result<Stage, ParseError> {
        let word = match self.peek() {
            Tok::Ident(w) => w.clone(),
            _ => return Ok(Stage::LabelFilter(self.label_filter()?)),
        };
        // A label named like a stage keyword is filtered when an operator follows.
        let is_filter = matches!(
            self.peek_at(1),
            Tok::Eq
                | Tok::Neq
                | Tok::Re
                | Tok::Nre
                | Tok::CmpEq
                | Tok::Gt
                | Tok::Gte
                | Tok::Lt
                | Tok::Lte
        );
        if is_filter
            && !matches!(
                word.as_str(),
                "label_format" | "drop" | "keep" | "json" | "logfmt"
            )
        {
            return Ok(Stage::LabelFilter(self.label_filter()?));
        }
        let col = self.tokens[self.pos.min(self.tokens.len() - 1)].col;
        match word.as_str() {
            "json" => {
                self.next();
                let exprs = self.extraction_params()?;
                if exprs.is_empty() {
                    Ok(Stage::Parser(LineParser::json()))
                } else {
                    LineParser::json_expressions(&exprs)
                        .map(Stage::Parser)
                        .map_err(|m| ParseError::at(col, &m))
                }
            }
            "logfmt" => {
                self.next();
                let (mut strict, mut keep_empty) = (false, false);
                while self.peek() == &Tok::Sub && self.peek_at(1) == &Tok::Sub {
                    self.next();
                    self.next();
                    let (flag, fcol) = self.ident()?;
                    match flag.as_str() {
                        "strict" => strict = true,
                        "keep-empty" | "keep_empty" => keep_empty = true,
                        "keep" if self.peek() == &Tok::Sub => {
                            self.next();
                            let (rest, _) = self.ident()?;
                            if rest != "empty" {
                                return Err(ParseError::at(fcol, "invalid logfmt flag"));
                            }
                            keep_empty = true;
                        }
                        _ => {
                            return Err(ParseError::at(
                                fcol,
                                &format!("invalid logfmt flag --{flag}"),
                            ));
                        }
                    }
                }
                let exprs = self.extraction_params()?;
                Ok(Stage::Parser(LineParser::logfmt(
                    strict, keep_empty, &exprs,
                )))
            }
            "regexp" => {
                self.next();
                let (re, col) = self.string()?;
                LineParser::regexp(&re)
                    .map(Stage::Parser)
                    .map_err(|m| ParseError::at(col, &m))
            }
            "pattern" => {
                self.next();
                let (pat, col) = self.string()?;
                LineParser::pattern(&pat)
                    .map(Stage::Parser)
                    .map_err(|m| ParseError::at(col, &m))
            }
            "unpack" => {
                self.next();
                Ok(Stage::Parser(LineParser::unpack()))
            }
            "line_format" => {
                self.next();
                let (src, col) = self.string()?;
                Template::parse(&src)
                    .map(Stage::LineFormat)
                    .map_err(|m| ParseError::at(col, &m))
            }
            "label_format" => {
                self.next();
                let mut fmts = Vec::new();
                loop {
                    let (dst, _) = self.ident()?;
                    self.expect(&Tok::Eq)?;
                    let t = self.next();
                    fmts.push(match t.tok {
                        Tok::Ident(src) => LabelFmt::Rename { dst, src },
                        Tok::Str(src) => LabelFmt::Template {
                            dst,
                            tmpl: Template::parse(&src).map_err(|m| ParseError::at(t.col, &m))?,
                        },
                        _ => return Err(unexpected(&t, Some("IDENTIFIER or STRING"))),
                    });
                    if self.peek() != &Tok::Comma {
                        break;
                    }
                    self.next();
                }
                Ok(Stage::LabelFormat(fmts))
            }
            "drop" | "keep" => {
                self.next();
                let mut sels = Vec::new();
                loop {
                    let (name, _) = self.ident()?;
                    let op = match self.peek() {
                        Tok::Eq => Some(MatchOp::Eq),
                        Tok::Neq => Some(MatchOp::Neq),
                        Tok::Re => Some(MatchOp::Re),
                        Tok::Nre => Some(MatchOp::Nre),
                        _ => None,
                    };
                    sels.push(match op {
                        None => LabelSel::Name(name),
                        Some(op) => {
                            self.next();
                            let (v, col) = self.string()?;
                            LabelSel::Matcher(
                                LabelMatcher::new(&name, op, &v)
                                    .map_err(|m| ParseError::at(col, &m))?,
                            )
                        }
                    });
                    if self.peek() != &Tok::Comma {
                        break;
                    }
                    self.next();
                }
                Ok(if word == "drop" {
                    Stage::Drop(sels)
                } else {
                    Stage::Keep(sels)
                })
            }
            "decolorize" => {
                self.next();
                Ok(Stage::Decolorize)
            }
            _ => Ok(Stage::LabelFilter(self.label_filter()?)),
        }
    }

    /// `name="expression"` or `name` parameters of `json`/`logfmt`, comma-separated.
    fn extraction_params(&mut self) -> Result<Vec<(String, String)>, ParseError> {
        let mut out = Vec::new();
        while matches!(self.peek(), Tok::Ident(_))
            && !self.peek_ident("or")
            && !self.peek_ident("and")
        {
            let (name, _) = self.ident()?;
            if self.peek() == &Tok::Eq {
                self.next();
                let (expr, _) = self.string()?;
                out.push((name, expr));
            } else {
                out.push((name.clone(), name));
            }
            if self.peek() != &Tok::Comma {
                break;
            }
            self.next();
        }
        Ok(out)
    }

    fn unwrap(&mut self) -> Result<Unwrap, ParseError> {
        let (word, col) = self.ident()?;
        let kind = match word.as_str() {
            "bytes" | "duration" | "duration_seconds" if self.peek() == &Tok::OpenParen => {
                self.next();
                let kind = if word == "bytes" {
                    NumKind::Bytes
                } else {
                    NumKind::Duration
                };
                let (label, _) = self.ident()?;
                self.expect(&Tok::CloseParen)?;
                return Ok(Unwrap {
                    label,
                    kind,
                    post_filters: Vec::new(),
                });
            }
            _ => NumKind::Number,
        };
        let _ = col;
        Ok(Unwrap {
            label: word,
            kind,
            post_filters: Vec::new(),
        })
    }

    /// `a and b`, `a, b`, `a b`, `a or b`, parenthesised.
    fn label_filter(&mut self) -> Result<LabelFilter, ParseError> {
        let mut lhs = self.label_filter_and()?;
        while self.peek_ident("or") {
            self.next();
            let rhs = self.label_filter_and()?;
            lhs = LabelFilter::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn label_filter_and(&mut self) -> Result<LabelFilter, ParseError> {
        let mut lhs = self.label_filter_primary()?;
        loop {
            let joined = match self.peek() {
                Tok::Comma => {
                    self.next();
                    true
                }
                Tok::Ident(w) if w == "and" => {
                    self.next();
                    true
                }
                Tok::Ident(w) if w != "or" && w != "offset" => true,
                Tok::OpenParen => true,
                _ => false,
            };
            if !joined {
                return Ok(lhs);
            }
            let rhs = self.label_filter_primary()?;
            lhs = LabelFilter::And(Box::new(lhs), Box::new(rhs));
        }
    }

    fn label_filter_primary(&mut self) -> Result<LabelFilter, ParseError> {
        if self.peek() == &Tok::OpenParen {
            self.next();
            let f = self.label_filter()?;
            self.expect(&Tok::CloseParen)?;
            return Ok(f);
        }
        let (name, _) = self.ident()?;
        let t = self.next();
        let cmp = match t.tok {
            Tok::Eq => CmpOp::Eq,
            Tok::CmpEq => CmpOp::Eq,
            Tok::Neq => CmpOp::Neq,
            Tok::Gt => CmpOp::Gt,
            Tok::Gte => CmpOp::Gte,
            Tok::Lt => CmpOp::Lt,
            Tok::Lte => CmpOp::Lte,
            Tok::Re | Tok::Nre => {
                let op = if t.tok == Tok::Re {
                    MatchOp::Re
                } else {
                    MatchOp::Nre
                };
                let (v, col) = self.string()?;
                return LabelMatcher::new(&name, op, &v)
                    .map(LabelFilter::Str)
                    .map_err(|m| ParseError::at(col, &m));
            }
            _ => {
                return Err(unexpected(
                    &t,
                    Some("= or != or =~ or !~ or > or >= or < or <= or =="),
                ));
            }
        };
        if self.peek_ident("ip") && self.peek_at(1) == &Tok::OpenParen {
            self.next();
            self.next();
            let (text, col) = self.string()?;
            self.expect(&Tok::CloseParen)?;
            if !matches!(cmp, CmpOp::Eq | CmpOp::Neq) {
                return Err(ParseError::at(col, "ip() takes = or != only"));
            }
            let ip = IpMatch::parse(&text).map_err(|m| ParseError::at(col, &m))?;
            return Ok(LabelFilter::Ip {
                name,
                equal: cmp == CmpOp::Eq,
                ip,
            });
        }
        let neg = if self.peek() == &Tok::Sub {
            self.next();
            -1.0
        } else {
            1.0
        };
        let v = self.next();
        let (value, kind) = match v.tok {
            Tok::Str(ref s) if neg > 0.0 => {
                let op = match cmp {
                    CmpOp::Eq => MatchOp::Eq,
                    CmpOp::Neq => MatchOp::Neq,
                    _ => return Err(unexpected(&v, Some("NUMBER"))),
                };
                return LabelMatcher::new(&name, op, s)
                    .map(LabelFilter::Str)
                    .map_err(|m| ParseError::at(v.col, &m));
            }
            Tok::Number(n) => (n * neg, NumKind::Number),
            Tok::Duration(ns) => (neg * ns as f64 / 1e9, NumKind::Duration),
            Tok::Bytes(b) => (neg * b, NumKind::Bytes),
            _ => {
                return Err(unexpected(
                    &v,
                    Some("STRING or NUMBER or DURATION or BYTES"),
                ));
            }
        };
        Ok(LabelFilter::Cmp {
            name,
            op: cmp,
            value,
            kind,
        })
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, ParseError> {
        let without = match self.peek() {
            Tok::Ident(w) if w == "by" => false,
            Tok::Ident(w) if w == "without" => true,
            _ => return Ok(None),
        };
        self.next();
        let labels = self.label_list()?;
        Ok(Some(Grouping { without, labels }))
    }

    fn label_list(&mut self) -> Result<Vec<String>, ParseError> {
        self.expect(&Tok::OpenParen)?;
        let mut labels = Vec::new();
        loop {
            let t = self.next();
            match t.tok {
                Tok::CloseParen => return Ok(labels),
                Tok::Ident(name) => labels.push(name),
                _ => return Err(unexpected(&t, Some("IDENTIFIER or )"))),
            }
            let t = self.next();
            match t.tok {
                Tok::Comma => {}
                Tok::CloseParen => return Ok(labels),
                _ => return Err(unexpected(&t, Some(", or )"))),
            }
        }
    }

    /// A metric expression whose operators bind tighter than `min_prec`.
    fn metric(&mut self, min_prec: u8) -> Result<Operand, ParseError> {
        let mut lhs = self.operand()?;
        loop {
            let Some(op) = bin_op(self.peek()) else {
                return Ok(lhs);
            };
            let prec = op.precedence();
            if prec < min_prec {
                return Ok(lhs);
            }
            let op_tok = self.next();
            let return_bool = if self.peek_ident("bool") {
                self.next();
                if !op.is_comparison() {
                    return Err(ParseError::at(
                        op_tok.col,
                        "bool modifier can only be used on comparison operators",
                    ));
                }
                true
            } else {
                false
            };
            let mut matching = None;
            if self.peek_ident("on") || self.peek_ident("ignoring") {
                let on = self.peek_ident("on");
                self.next();
                let labels = self.label_list()?;
                let mut group = None;
                if self.peek_ident("group_left") || self.peek_ident("group_right") {
                    let left = self.peek_ident("group_left");
                    self.next();
                    let include = if self.peek() == &Tok::OpenParen {
                        self.label_list()?
                    } else {
                        Vec::new()
                    };
                    group = Some((left, include));
                }
                matching = Some(VectorMatching { on, labels, group });
            }
            // `^` is right-associative: its right side may hold another `^`.
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.metric(next_min)?;
            let (Operand::Metric(l), Operand::Metric(r)) = (lhs, rhs) else {
                return Err(ParseError::at(
                    op_tok.col,
                    "syntax error: unexpected binary operation on a log query",
                ));
            };
            lhs = Operand::Metric(MetricExpr::Binary(Box::new(BinaryExpr {
                op,
                lhs: l,
                rhs: r,
                return_bool,
                matching,
            })));
        }
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let t = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        match &t.tok {
            Tok::OpenParen => {
                self.next();
                let inner = self.metric(0)?;
                self.expect(&Tok::CloseParen)?;
                Ok(inner)
            }
            Tok::Number(_) | Tok::Sub => Ok(Operand::Metric(MetricExpr::Literal(self.number()?))),
            Tok::Add => {
                self.next();
                Ok(Operand::Metric(MetricExpr::Literal(self.number()?)))
            }
            Tok::OpenBrace => Ok(Operand::Log(self.log_expr(false)?.0)),
            Tok::Ident(name) => {
                let name = name.clone();
                if let Some(op) = RangeOp::from_name(&name) {
                    self.next();
                    return Ok(Operand::Metric(self.range_agg(op, &name, t.col)?));
                }
                if let Some(op) = VectorOp::from_name(&name) {
                    self.next();
                    return Ok(Operand::Metric(self.vector_agg(op, &name)?));
                }
                match name.as_str() {
                    "vector" => {
                        self.next();
                        self.expect(&Tok::OpenParen)?;
                        let v = self.number()?;
                        self.expect(&Tok::CloseParen)?;
                        Ok(Operand::Metric(MetricExpr::VectorFn(v)))
                    }
                    "label_replace" => {
                        self.next();
                        self.expect(&Tok::OpenParen)?;
                        let Operand::Metric(expr) = self.metric(0)? else {
                            return Err(ParseError::at(
                                t.col,
                                "label_replace needs a metric query",
                            ));
                        };
                        let mut args = Vec::new();
                        for _ in 0..4 {
                            self.expect(&Tok::Comma)?;
                            args.push(self.string()?);
                        }
                        self.expect(&Tok::CloseParen)?;
                        let (re_src, col) = &args[3];
                        let regex = regex::Regex::new(&format!("^(?s:{re_src})$"))
                            .map_err(|e| ParseError::at(*col, &regex_error(&e)))?;
                        Ok(Operand::Metric(MetricExpr::LabelReplace(Box::new(
                            LabelReplace {
                                expr,
                                dst: args[0].0.clone(),
                                replacement: args[1].0.clone(),
                                src: args[2].0.clone(),
                                regex,
                            },
                        ))))
                    }
                    // Loki's grammar expects too many tokens here to list them.
                    _ => Err(unexpected(&t, None)),
                }
            }
            _ => Err(unexpected(&self.next(), None)),
        }
    }

    fn range_agg(&mut self, op: RangeOp, name: &str, col: usize) -> Result<MetricExpr, ParseError> {
        self.expect(&Tok::OpenParen)?;
        let param = if op == RangeOp::Quantile {
            let v = self.number()?;
            self.expect(&Tok::Comma)?;
            Some(v)
        } else {
            None
        };
        // `(selector | pipeline)[5m]` or `selector | pipeline [5m]`.
        let (log, mut parts) = if self.peek() == &Tok::OpenParen {
            self.next();
            let (log, mut parts) = self.log_expr(true)?;
            self.expect(&Tok::CloseParen)?;
            if parts.range_ns.is_none() {
                parts.range_ns = Some(self.range()?);
            }
            if self.peek_ident("offset") {
                self.next();
                let t = self.next();
                parts.offset_ns = match t.tok {
                    Tok::Duration(ns) => ns,
                    _ => return Err(unexpected(&t, Some("DURATION"))),
                };
            }
            (log, parts)
        } else {
            self.log_expr(true)?
        };
        let Some(range_ns) = parts.range_ns.take() else {
            return Err(unexpected(&self.next(), Some("[")));
        };
        self.expect(&Tok::CloseParen)?;
        let grouping = self.grouping()?;
        match (&parts.unwrap, op.needs_unwrap()) {
            (None, true) => {
                return Err(ParseError::at(
                    col,
                    &format!("invalid aggregation {name} without unwrap"),
                ));
            }
            (Some(_), false) if op != RangeOp::Rate => {
                return Err(ParseError::at(
                    col,
                    &format!("invalid aggregation {name} with unwrap"),
                ));
            }
            _ => {}
        }
        if grouping.is_some() && parts.unwrap.is_none() {
            return Err(ParseError::at(
                col,
                &format!("grouping not allowed for {name} aggregation"),
            ));
        }
        Ok(MetricExpr::Range(Box::new(RangeAgg {
            op,
            param,
            log,
            range_ns,
            offset_ns: parts.offset_ns,
            unwrap: parts.unwrap,
            grouping,
        })))
    }

    fn vector_agg(&mut self, op: VectorOp, name: &str) -> Result<MetricExpr, ParseError> {
        let mut grouping = self.grouping()?;
        let open = self.expect(&Tok::OpenParen)?;
        let param = if matches!(op, VectorOp::Topk | VectorOp::Bottomk) {
            let v = self.number()?;
            if v < 1.0 || v.fract() != 0.0 {
                return Err(ParseError::at(
                    open.col,
                    &format!("invalid parameter for {name}: must be a positive integer"),
                ));
            }
            self.expect(&Tok::Comma)?;
            Some(v)
        } else {
            None
        };
        let Operand::Metric(expr) = self.metric(0)? else {
            return Err(ParseError::at(
                open.col,
                &format!("syntax error: {name} needs a metric query, not a log query"),
            ));
        };
        self.expect(&Tok::CloseParen)?;
        if grouping.is_none() {
            grouping = self.grouping()?;
        }
        if matches!(op, VectorOp::Sort | VectorOp::SortDesc) && grouping.is_some() {
            return Err(ParseError::at(
                open.col,
                &format!("{name} takes no grouping"),
            ));
        }
        Ok(MetricExpr::Vector(Box::new(VectorAgg {
            op,
            param,
            grouping,
            expr,
        })))
    }
}

/// What a log expression inside a range aggregation carries besides the log query.
#[derive(Default)]
struct RangeParts {
    range_ns: Option<i64>,
    offset_ns: i64,
    unwrap: Option<Unwrap>,
}

/// The anchored regex of a `|>` pattern: literals matched as written, `<_>` and `<name>`
/// matching anything.
fn pattern_regex(pattern: &str) -> Result<regex::Regex, String> {
    let mut re = String::from("^(?s:");
    let mut rest = pattern;
    let mut captures = 0;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        if name == "_"
            || (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            re.push_str(&regex::escape(&rest[..open]));
            re.push_str(".*?");
            captures += 1;
            rest = &rest[open + close + 1..];
        } else {
            re.push_str(&regex::escape(&rest[..open + 1]));
            rest = &rest[open + 1..];
        }
    }
    re.push_str(&regex::escape(rest));
    re.push_str(")$");
    if captures == 0 && !pattern.is_empty() {
        // A pattern without captures must equal the line; keep it anchored as written.
    }
    regex::Regex::new(&re).map_err(|e| regex_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` and renders its matchers and line filters, or returns the error text.
    fn check(input: &str, expected: &str) {
        let got = match parse(input) {
            Ok(sel) => {
                let ms: Vec<String> = sel
                    .matchers
                    .iter()
                    .map(|m| format!("{}{:?}{:?}", m.name, m.op, m.value))
                    .collect();
                let fs: Vec<String> = sel
                    .stages
                    .iter()
                    .filter_map(|s| match s {
                        Stage::LineFilter(f) => Some(
                            f.values
                                .iter()
                                .map(|v| match v {
                                    FilterValue::Text(t) | FilterValue::Regex(t, _) => {
                                        format!("{:?}{t:?}", f.op)
                                    }
                                    FilterValue::Ip(ip) => format!("{:?}ip({:?})", f.op, ip.text),
                                })
                                .collect::<Vec<_>>()
                                .join("|"),
                        ),
                        _ => None,
                    })
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
            "parse error at line 1, col 13: syntax error: unexpected IDENTIFIER",
        );
        check(
            r#"{foo="bar"} "x""#,
            "parse error at line 1, col 13: syntax error: unexpected STRING",
        );
        check(
            r#"{foo>"bar"}"#,
            "parse error at line 1, col 5: syntax error: unexpected >, expecting = or != or =~ or !~",
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
            "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER",
        );
        check(
            "",
            "parse error at line 1, col 1: syntax error: unexpected $end",
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
        let Stage::LineFilter(f) = &sel.stages[0] else {
            panic!("a line filter")
        };
        assert!(super::super::pipeline::line_filter_matches(
            f,
            "an error here"
        ));
        let sel = parse(r#"{app=~"a.c"}"#).unwrap();
        assert!(sel.matchers[0].matches("a\nc"), "(?s) like Prometheus");
    }

    fn metric(input: &str) -> MetricExpr {
        match parse_expr(input) {
            Ok(Expr::Metric(m)) => m,
            other => panic!("{input}: {other:?}"),
        }
    }

    fn error(input: &str) -> String {
        match parse_expr(input) {
            Ok(e) => panic!("{input} parsed: {e:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_every_stage() {
        let e = parse(
            r#"{app="a"} |= "x" or "y" != "z" |> "<_> ok <_>" | json | logfmt --strict --keep-empty
               | level="error" and status >= 500 or duration > 1.5s, size <= 20MB
               | line_format "{{.msg}}" | label_format a=b, c="{{.d}}" | drop x, y="z" | keep a
               | decolorize | regexp "(?P<m>\\w+)" | pattern "<ip> <_>" | unpack
               | addr = ip("10.0.0.0/8") | json f="a.b", g"#,
        )
        .unwrap();
        let kinds: Vec<&str> = e
            .stages
            .iter()
            .map(|s| match s {
                Stage::LineFilter(_) => "filter",
                Stage::Parser(_) => "parser",
                Stage::LabelFilter(_) => "label_filter",
                Stage::LineFormat(_) => "line_format",
                Stage::LabelFormat(_) => "label_format",
                Stage::Drop(_) => "drop",
                Stage::Keep(_) => "keep",
                Stage::Decolorize => "decolorize",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "filter",
                "filter",
                "filter",
                "parser",
                "parser",
                "label_filter",
                "line_format",
                "label_format",
                "drop",
                "keep",
                "decolorize",
                "parser",
                "parser",
                "parser",
                "label_filter",
                "parser"
            ]
        );
        let Stage::LineFilter(f) = &e.stages[0] else {
            unreachable!()
        };
        assert_eq!(f.values.len(), 2, "or joins alternatives");
        let Stage::LabelFilter(LabelFilter::Or(lhs, rhs)) = &e.stages[5] else {
            panic!("{:?}", e.stages[5])
        };
        assert!(
            matches!(**lhs, LabelFilter::And(..)),
            "and binds tighter than or"
        );
        let LabelFilter::And(d, sz) = &**rhs else {
            panic!("{rhs:?}")
        };
        assert!(matches!(
            **d,
            LabelFilter::Cmp {
                op: CmpOp::Gt,
                value: 1.5,
                kind: NumKind::Duration,
                ..
            }
        ));
        assert!(matches!(
            **sz,
            LabelFilter::Cmp {
                op: CmpOp::Lte,
                value: 20_000_000.0,
                kind: NumKind::Bytes,
                ..
            }
        ));
        let Stage::LabelFormat(fmts) = &e.stages[7] else {
            unreachable!()
        };
        assert!(matches!(&fmts[0], LabelFmt::Rename { dst, src } if dst == "a" && src == "b"));
        assert!(matches!(&fmts[1], LabelFmt::Template { dst, .. } if dst == "c"));
        assert_eq!(
            e.required_substrings(),
            Vec::<&str>::new(),
            "an or is not required"
        );
        let e = parse(r#"{a="b"} |= "one" |= "two" | json |= "three" | line_format "x" |= "four""#)
            .unwrap();
        assert_eq!(e.required_substrings(), ["one", "two", "three"]);
    }

    #[test]
    fn parses_metric_queries() {
        let MetricExpr::Vector(v) =
            metric(r#"sum by (level) (count_over_time({app="a"} |= "x" [5m]))"#)
        else {
            panic!()
        };
        assert_eq!(v.op, VectorOp::Sum);
        assert_eq!(
            v.grouping,
            Some(Grouping {
                without: false,
                labels: vec!["level".into()]
            })
        );
        let MetricExpr::Range(r) = &v.expr else {
            panic!()
        };
        assert_eq!((r.op, r.range_ns), (RangeOp::Count, 300_000_000_000));
        assert_eq!(r.log.stages.len(), 1);

        // The range may also follow the selector, and an offset the range.
        let MetricExpr::Range(r) = metric(r#"rate({app="a"}[1m] |= "x" offset 1h)"#) else {
            panic!()
        };
        assert_eq!(
            (r.range_ns, r.offset_ns),
            (60_000_000_000, 3_600_000_000_000)
        );

        let MetricExpr::Range(r) = metric(
            r#"quantile_over_time(0.99, {a="b"} | logfmt | unwrap duration(latency) | __error__="" [1m]) by (path)"#,
        ) else {
            panic!()
        };
        assert_eq!((r.op, r.param), (RangeOp::Quantile, Some(0.99)));
        let u = r.unwrap.as_ref().unwrap();
        assert_eq!(
            (u.label.as_str(), u.kind, u.post_filters.len()),
            ("latency", NumKind::Duration, 1)
        );
        assert!(r.grouping.is_some());

        // Precedence: 1 + 2 * 3 ^ 2 ^ 2 is 1 + (2 * (3 ^ (2 ^ 2))).
        let MetricExpr::Binary(b) = metric("1 + 2 * 3 ^ 2 ^ 2") else {
            panic!()
        };
        assert_eq!(b.op, BinOp::Add);
        let MetricExpr::Binary(mul) = &b.rhs else {
            panic!()
        };
        assert_eq!(mul.op, BinOp::Mul);
        let MetricExpr::Binary(pow) = &mul.rhs else {
            panic!()
        };
        assert!(matches!(pow.rhs, MetricExpr::Binary(ref p) if p.op == BinOp::Pow));
        // Left-associative: 8 - 4 - 2 is (8 - 4) - 2.
        let MetricExpr::Binary(b) = metric("8 - 4 - 2") else {
            panic!()
        };
        assert!(matches!(b.lhs, MetricExpr::Binary(_)));
        assert!(matches!(b.rhs, MetricExpr::Literal(v) if v == 2.0));

        let MetricExpr::Binary(b) = metric(
            r#"sum by (a) (rate({x="y"}[1m])) / on (a) group_left (b) sum by (a, b) (rate({x="y"}[1m])) > bool 0.5"#,
        ) else {
            panic!()
        };
        assert_eq!((b.op, b.return_bool), (BinOp::Gt, true));
        let MetricExpr::Binary(div) = &b.lhs else {
            panic!()
        };
        assert_eq!(
            div.matching,
            Some(VectorMatching {
                on: true,
                labels: vec!["a".into()],
                group: Some((true, vec!["b".into()]))
            })
        );
        assert!(matches!(
            metric(r#"topk(3, sum by (a) (count_over_time({x="y"}[1m])))"#),
            MetricExpr::Vector(ref v) if v.param == Some(3.0)
        ));
        assert!(matches!(
            metric("vector(1) or vector(2)"),
            MetricExpr::Binary(_)
        ));
        assert!(matches!(
            metric(r#"label_replace(rate({x="y"}[1m]), "d", "$1", "x", "(.*)")"#),
            MetricExpr::LabelReplace(_)
        ));
    }

    #[test]
    fn refuses_what_loki_refuses() {
        assert_eq!(
            error(r#"count_over_time({a="b"}[1m]) by (x)"#),
            "parse error at line 1, col 1: grouping not allowed for count_over_time aggregation"
        );
        assert_eq!(
            error(r#"sum_over_time({a="b"}[1m])"#),
            "parse error at line 1, col 1: invalid aggregation sum_over_time without unwrap"
        );
        assert_eq!(
            error(r#"count_over_time({a="b"} | unwrap x [1m])"#),
            "parse error at line 1, col 1: invalid aggregation count_over_time with unwrap"
        );
        assert!(error(r#"{a="b"} | unwrap x"#).contains("unwrap is only allowed"));
        assert!(error(r#"count_over_time({a="b"})"#).contains("unexpected )"));
        assert!(error(r#"{a="b"} + 1"#).contains("unexpected +"));
        assert!(error(r#"topk(0, rate({a="b"}[1m]))"#).contains("positive integer"));
        assert!(error(r#"1 + bool 2"#).contains("bool modifier"));
        assert!(
            error(r#"rate({a="b"} | line_format "{{.x" [1m])"#)
                .starts_with("parse error at line 1, col 28: template: ")
        );
        assert_eq!(
            error(r#"foo({a="b"})"#),
            "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER"
        );
    }
}
