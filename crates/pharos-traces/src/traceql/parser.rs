//! Recursive descent from [`Token`]s to a [`Query`].
//!
//! Precedence, loosest first, as in Tempo's grammar: `|` between pipeline stages; between
//! spansets `||`, then `&&`, then the structural operators (all left-associative); inside
//! a filter `||`, `&&`, comparisons, `+ -`, `* / %`, `^` (right-associative), then unary
//! `!` and `-`. `>`, `<` and `!~` mean child, parent and not-sibling between spansets and
//! greater, less and not-match inside braces.
//!
//! What TraceQL has and this module does not implement is refused with an error whose
//! message starts with `unsupported:` (metrics functions such as `rate()`, `coalesce()`,
//! `with(...)` hints, `event`/`link`/`instrumentation`/`parent` scopes, `trace:id`).

use std::fmt;

use super::ast::*;
use super::lexer::{Spanned, Token, lex};
use super::value::{ArithOp, Kind, Status, Value};

#[cfg(test)]
mod tests;

/// A query that could not be parsed, with where and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("parse error at line {line}, col {col}: {message}")]
pub struct ParseError {
    /// Byte offset into the query.
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(src: &str, offset: usize, message: impl Into<String>) -> ParseError {
        let offset = offset.min(src.len());
        let before = &src[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        ParseError {
            offset,
            line,
            col,
            message: message.into(),
        }
    }

    /// Returns whether the query is valid TraceQL this implementation does not support.
    pub fn is_unsupported(&self) -> bool {
        self.message.starts_with("unsupported:")
    }
}

/// Parses a TraceQL query.
///
/// # Errors
///
/// Returns a [`ParseError`] for malformed queries, invalid regular expressions, and
/// constructs this implementation does not support (message `unsupported: ...`).
pub fn parse(src: &str) -> Result<Query, ParseError> {
    let tokens = lex(src)?;
    let mut p = Parser {
        src,
        tokens,
        pos: 0,
    };
    let pipeline = p.pipeline()?;
    match p.peek() {
        Token::Eof => Ok(Query { pipeline }),
        Token::Ident(w) if w == "with" => Err(p.err_here("unsupported: query hints (with)")),
        Token::RParen => Err(p.err_here("unexpected ')'")),
        t => Err(p.err_here(format!("unexpected {}", describe(t)))),
    }
}

const METRICS_FUNCTIONS: &[&str] = &[
    "rate",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "sum_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
    "topk",
    "bottomk",
];

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Spanned>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos].token
    }

    fn peek_at(&self, n: usize) -> &Token {
        let i = (self.pos + n).min(self.tokens.len() - 1);
        &self.tokens[i].token
    }

    fn offset(&self) -> usize {
        self.tokens[self.pos].offset
    }

    fn next(&mut self) -> Token {
        let t = self.tokens[self.pos].token.clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn eat(&mut self, t: &Token) -> bool {
        if self.peek() == t {
            self.next();
            true
        } else {
            false
        }
    }

    fn err_at(&self, offset: usize, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.src, offset, msg)
    }

    fn err_here(&self, msg: impl Into<String>) -> ParseError {
        self.err_at(self.offset(), msg)
    }

    fn expect(&mut self, t: &Token, what: &str) -> Result<(), ParseError> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(self.err_here(format!("expected {what}, found {}", describe(self.peek()))))
        }
    }

    // ---- pipelines -------------------------------------------------------------------

    fn pipeline(&mut self) -> Result<Pipeline, ParseError> {
        let mut stages = vec![self.stage()?];
        while self.eat(&Token::Pipe) {
            stages.push(self.stage()?);
        }
        Ok(Pipeline { stages })
    }

    fn stage(&mut self) -> Result<Stage, ParseError> {
        let offset = self.offset();
        if let Token::Ident(word) = self.peek().clone() {
            let call = *self.peek_at(1) == Token::LParen;
            if METRICS_FUNCTIONS.contains(&word.as_str()) && call {
                return Err(
                    self.err_here(format!("unsupported: TraceQL metrics function {word}()"))
                );
            }
            match word.as_str() {
                "by" if call => {
                    self.next();
                    return Ok(Stage::By(self.field_list("by")?));
                }
                "select" if call => {
                    self.next();
                    return Ok(Stage::Select(self.field_list("select")?));
                }
                "coalesce" if call => {
                    return Err(self.err_here("unsupported: coalesce()"));
                }
                _ if call && aggregate(&word).is_some() => return self.scalar_filter(),
                _ => {}
            }
        }
        if matches!(
            self.peek(),
            Token::Int(_) | Token::Float(_) | Token::Duration(_)
        ) {
            return self.scalar_filter();
        }
        let expr = self.spanset_or()?;
        if matches!(
            self.peek(),
            Token::Eq | Token::Neq | Token::Lte | Token::Gte | Token::Re
        ) {
            return Err(self.err_at(
                offset,
                "expected a spanset filter {...} or an aggregate such as count()",
            ));
        }
        Ok(Stage::Spanset(expr))
    }

    fn field_list(&mut self, name: &str) -> Result<Vec<FieldExpr>, ParseError> {
        self.expect(&Token::LParen, "'('")?;
        let mut fields = Vec::new();
        if *self.peek() == Token::RParen {
            return Err(self.err_here(format!("{name}() needs at least one field")));
        }
        loop {
            fields.push(self.field_or()?);
            if !self.eat(&Token::Comma) {
                break;
            }
        }
        self.expect(&Token::RParen, "')'")?;
        Ok(fields)
    }

    // ---- scalar filters --------------------------------------------------------------

    fn scalar_filter(&mut self) -> Result<Stage, ParseError> {
        let lhs = self.scalar_add()?;
        let op = match self.peek() {
            Token::Eq => CompareOp::Eq,
            Token::Neq => CompareOp::Neq,
            Token::Lt => CompareOp::Lt,
            Token::Lte => CompareOp::Lte,
            Token::Gt => CompareOp::Gt,
            Token::Gte => CompareOp::Gte,
            t => {
                return Err(self.err_here(format!(
                    "expected a comparison after {lhs}, found {}",
                    describe(t)
                )));
            }
        };
        self.next();
        let rhs = self.scalar_add()?;
        Ok(Stage::Scalar(ScalarFilter { op, lhs, rhs }))
    }

    fn scalar_add(&mut self) -> Result<ScalarExpr, ParseError> {
        let mut lhs = self.scalar_mul()?;
        while let Some(op) = match self.peek() {
            Token::Plus => Some(ArithOp::Add),
            Token::Minus => Some(ArithOp::Sub),
            _ => None,
        } {
            self.next();
            let rhs = self.scalar_mul()?;
            lhs = ScalarExpr::Arith {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    fn scalar_mul(&mut self) -> Result<ScalarExpr, ParseError> {
        let mut lhs = self.scalar_primary()?;
        while let Some(op) = match self.peek() {
            Token::Star => Some(ArithOp::Mul),
            Token::Slash => Some(ArithOp::Div),
            Token::Percent => Some(ArithOp::Mod),
            _ => None,
        } {
            self.next();
            let rhs = self.scalar_primary()?;
            lhs = ScalarExpr::Arith {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    fn scalar_primary(&mut self) -> Result<ScalarExpr, ParseError> {
        let offset = self.offset();
        match self.next() {
            Token::Int(i) => Ok(ScalarExpr::Static(Value::Int(i))),
            Token::Float(f) => Ok(ScalarExpr::Static(Value::Float(f))),
            Token::Duration(d) => Ok(ScalarExpr::Static(Value::Duration(d))),
            Token::Minus => match self.scalar_primary()? {
                ScalarExpr::Static(v) => negate(v)
                    .map(ScalarExpr::Static)
                    .ok_or_else(|| self.err_at(offset, "cannot negate this value")),
                e => Ok(ScalarExpr::Arith {
                    op: ArithOp::Sub,
                    lhs: Box::new(ScalarExpr::Static(Value::Int(0))),
                    rhs: Box::new(e),
                }),
            },
            Token::LParen => {
                let e = self.scalar_add()?;
                self.expect(&Token::RParen, "')'")?;
                Ok(e)
            }
            Token::Ident(w) => {
                let Some(agg) = aggregate(&w) else {
                    if METRICS_FUNCTIONS.contains(&w.as_str()) {
                        return Err(self.err_at(
                            offset,
                            format!("unsupported: TraceQL metrics function {w}()"),
                        ));
                    }
                    return Err(self.err_at(
                        offset,
                        format!("expected an aggregate (count, avg, min, max, sum), found {w}"),
                    ));
                };
                self.expect(&Token::LParen, "'('")?;
                if agg == Aggregate::Count {
                    if *self.peek() != Token::RParen {
                        return Err(self.err_here("count() takes no arguments"));
                    }
                    self.next();
                    return Ok(ScalarExpr::Aggregate(agg, None));
                }
                if *self.peek() == Token::RParen {
                    return Err(self.err_here(format!("{w}() needs a field, as in {w}(duration)")));
                }
                let field = self.field_or()?;
                self.expect(&Token::RParen, "')'")?;
                Ok(ScalarExpr::Aggregate(agg, Some(field)))
            }
            t => Err(self.err_at(
                offset,
                format!("expected an aggregate or a number, found {}", describe(&t)),
            )),
        }
    }

    // ---- spanset expressions ---------------------------------------------------------

    fn spanset_or(&mut self) -> Result<SpansetExpr, ParseError> {
        let mut lhs = self.spanset_and()?;
        while self.eat(&Token::OrOr) {
            let rhs = self.spanset_and()?;
            lhs = binary(SpansetOp::Or, lhs, rhs);
        }
        Ok(lhs)
    }

    fn spanset_and(&mut self) -> Result<SpansetExpr, ParseError> {
        let mut lhs = self.spanset_structural()?;
        while self.eat(&Token::AndAnd) {
            let rhs = self.spanset_structural()?;
            lhs = binary(SpansetOp::And, lhs, rhs);
        }
        Ok(lhs)
    }

    fn spanset_structural(&mut self) -> Result<SpansetExpr, ParseError> {
        use Relation::*;
        use StructuralMode::*;
        let mut lhs = self.spanset_primary()?;
        loop {
            let (rel, mode) = match self.peek() {
                Token::Gt => (Child, Plain),
                Token::Lt => (Parent, Plain),
                Token::Desc => (Descendant, Plain),
                Token::Anc => (Ancestor, Plain),
                Token::Tilde => (Sibling, Plain),
                Token::NotChild => (Child, Not),
                Token::NotParent => (Parent, Not),
                Token::NotDesc => (Descendant, Not),
                Token::NotAnc => (Ancestor, Not),
                Token::NotTilde => (Sibling, Not),
                Token::UnionChild => (Child, Union),
                Token::UnionParent => (Parent, Union),
                Token::UnionDesc => (Descendant, Union),
                Token::UnionAnc => (Ancestor, Union),
                Token::UnionSibling => (Sibling, Union),
                _ => return Ok(lhs),
            };
            self.next();
            let rhs = self.spanset_primary()?;
            lhs = binary(SpansetOp::Structural(rel, mode), lhs, rhs);
        }
    }

    fn spanset_primary(&mut self) -> Result<SpansetExpr, ParseError> {
        let offset = self.offset();
        match self.peek() {
            Token::LBrace => {
                self.next();
                if self.eat(&Token::RBrace) {
                    return Ok(SpansetExpr::Filter(FieldExpr::Static(Value::Bool(true))));
                }
                let start = self.offset();
                let e = self.field_or()?;
                if !may_be_boolean(&e) {
                    return Err(self.err_at(
                        start,
                        format!("filter expression {e} must evaluate to a boolean"),
                    ));
                }
                self.expect(&Token::RBrace, "'}'")?;
                Ok(SpansetExpr::Filter(e))
            }
            Token::LParen => {
                self.next();
                let mut p = self.pipeline()?;
                self.expect(&Token::RParen, "')'")?;
                if p.stages.len() == 1
                    && let Stage::Spanset(_) = &p.stages[0]
                    && let Some(Stage::Spanset(e)) = p.stages.pop()
                {
                    return Ok(e);
                }
                Ok(SpansetExpr::Pipeline(Box::new(p)))
            }
            Token::Ident(w) if METRICS_FUNCTIONS.contains(&w.as_str()) => Err(self.err_at(
                offset,
                format!("unsupported: TraceQL metrics function {w}()"),
            )),
            t => Err(self.err_at(
                offset,
                format!("expected a spanset filter {{...}}, found {}", describe(t)),
            )),
        }
    }

    // ---- field expressions -----------------------------------------------------------

    fn field_or(&mut self) -> Result<FieldExpr, ParseError> {
        let mut lhs = self.field_and()?;
        while self.eat(&Token::OrOr) {
            let rhs = self.field_and()?;
            lhs = FieldExpr::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn field_and(&mut self) -> Result<FieldExpr, ParseError> {
        let mut lhs = self.field_cmp()?;
        while self.eat(&Token::AndAnd) {
            let rhs = self.field_cmp()?;
            lhs = FieldExpr::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn field_cmp(&mut self) -> Result<FieldExpr, ParseError> {
        let mut lhs = self.field_add()?;
        loop {
            let op = match self.peek() {
                Token::Eq => CompareOp::Eq,
                Token::Neq => CompareOp::Neq,
                Token::Lt => CompareOp::Lt,
                Token::Lte => CompareOp::Lte,
                Token::Gt => CompareOp::Gt,
                Token::Gte => CompareOp::Gte,
                Token::Re | Token::NotTilde => {
                    let negated = *self.peek() == Token::NotTilde;
                    self.next();
                    let offset = self.offset();
                    let Token::String(src) = self.next() else {
                        return Err(self.err_at(
                            offset,
                            "unsupported: the right side of =~ and !~ must be a string literal",
                        ));
                    };
                    let pattern = Pattern::new(&src).map_err(|e| {
                        self.err_at(offset, format!("invalid regular expression: {e}"))
                    })?;
                    lhs = FieldExpr::Regex {
                        negated,
                        lhs: Box::new(lhs),
                        pattern,
                    };
                    continue;
                }
                _ => return Ok(lhs),
            };
            self.next();
            let offset = self.offset();
            let rhs = self.field_add()?;
            if matches!(lhs, FieldExpr::Static(Value::Nil)) {
                return Err(self.err_at(offset, "nil may only appear on the right of = or !="));
            }
            if matches!(rhs, FieldExpr::Static(Value::Nil))
                && !matches!(op, CompareOp::Eq | CompareOp::Neq)
            {
                return Err(self.err_at(offset, "nil can only be compared with = or !="));
            }
            lhs = FieldExpr::Compare {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
    }

    fn field_add(&mut self) -> Result<FieldExpr, ParseError> {
        let mut lhs = self.field_mul()?;
        while let Some(op) = match self.peek() {
            Token::Plus => Some(ArithOp::Add),
            Token::Minus => Some(ArithOp::Sub),
            _ => None,
        } {
            self.next();
            let rhs = self.field_mul()?;
            lhs = arith(op, lhs, rhs);
        }
        Ok(lhs)
    }

    fn field_mul(&mut self) -> Result<FieldExpr, ParseError> {
        let mut lhs = self.field_pow()?;
        while let Some(op) = match self.peek() {
            Token::Star => Some(ArithOp::Mul),
            Token::Slash => Some(ArithOp::Div),
            Token::Percent => Some(ArithOp::Mod),
            _ => None,
        } {
            self.next();
            let rhs = self.field_pow()?;
            lhs = arith(op, lhs, rhs);
        }
        Ok(lhs)
    }

    fn field_pow(&mut self) -> Result<FieldExpr, ParseError> {
        let lhs = self.field_unary()?;
        if self.eat(&Token::Caret) {
            let rhs = self.field_pow()?;
            return Ok(arith(ArithOp::Pow, lhs, rhs));
        }
        Ok(lhs)
    }

    fn field_unary(&mut self) -> Result<FieldExpr, ParseError> {
        let offset = self.offset();
        match self.peek() {
            Token::Not => {
                self.next();
                let e = self.field_unary()?;
                Ok(FieldExpr::Not(Box::new(e)))
            }
            Token::Minus => {
                self.next();
                match self.field_unary()? {
                    FieldExpr::Static(v) => negate(v)
                        .map(FieldExpr::Static)
                        .ok_or_else(|| self.err_at(offset, "cannot negate this value")),
                    e => Ok(FieldExpr::Neg(Box::new(e))),
                }
            }
            _ => self.field_primary(),
        }
    }

    fn field_primary(&mut self) -> Result<FieldExpr, ParseError> {
        let offset = self.offset();
        let t = self.next();
        Ok(match t {
            Token::String(s) => FieldExpr::Static(Value::String(s)),
            Token::Int(i) => FieldExpr::Static(Value::Int(i)),
            Token::Float(f) => FieldExpr::Static(Value::Float(f)),
            Token::Duration(d) => FieldExpr::Static(Value::Duration(d)),
            Token::LParen => {
                let e = self.field_or()?;
                self.expect(&Token::RParen, "')'")?;
                e
            }
            Token::Attribute { scope, name } => {
                let scope = match scope.as_str() {
                    "" => Scope::Unscoped,
                    "span" => Scope::Span,
                    "resource" => Scope::Resource,
                    other => {
                        return Err(
                            self.err_at(offset, format!("unsupported: attribute scope {other}"))
                        );
                    }
                };
                FieldExpr::Attribute(Attribute { scope, name })
            }
            Token::Ident(w) => self.word(&w, offset)?,
            t => {
                return Err(self.err_at(
                    offset,
                    format!("expected a field or a value, found {}", describe(&t)),
                ));
            }
        })
    }

    fn word(&self, w: &str, offset: usize) -> Result<FieldExpr, ParseError> {
        let v = |v| Ok(FieldExpr::Static(v));
        let i = |i| Ok(FieldExpr::Intrinsic(i));
        match w {
            "true" => v(Value::Bool(true)),
            "false" => v(Value::Bool(false)),
            "nil" => v(Value::Nil),
            "ok" => v(Value::Status(Status::Ok)),
            "error" => v(Value::Status(Status::Error)),
            "unset" => v(Value::Status(Status::Unset)),
            "server" => v(Value::Kind(Kind::Server)),
            "client" => v(Value::Kind(Kind::Client)),
            "producer" => v(Value::Kind(Kind::Producer)),
            "consumer" => v(Value::Kind(Kind::Consumer)),
            "internal" => v(Value::Kind(Kind::Internal)),
            "unspecified" => v(Value::Kind(Kind::Unspecified)),
            "name" | "span:name" => i(Intrinsic::Name),
            "status" | "span:status" => i(Intrinsic::Status),
            "statusMessage" | "span:statusMessage" => i(Intrinsic::StatusMessage),
            "kind" | "span:kind" => i(Intrinsic::Kind),
            "duration" | "span:duration" => i(Intrinsic::Duration),
            "span:id" => i(Intrinsic::SpanId),
            "span:parentID" => i(Intrinsic::ParentId),
            "rootName" | "trace:rootName" => i(Intrinsic::RootName),
            "rootServiceName" | "trace:rootService" => i(Intrinsic::RootServiceName),
            "traceDuration" | "trace:duration" => i(Intrinsic::TraceDuration),
            _ if w.contains(':') => Err(self.err_at(
                offset,
                format!("unsupported: intrinsic {w}"),
            )),
            "parent" | "childCount" | "nestedSetLeft" | "nestedSetRight" | "nestedSetParent" => {
                Err(self.err_at(offset, format!("unsupported: intrinsic {w}")))
            }
            _ => Err(self.err_at(
                offset,
                format!(
                    "unknown identifier {w}; attributes need a scope: span.{w}, resource.{w} or .{w}"
                ),
            )),
        }
    }
}

fn binary(op: SpansetOp, lhs: SpansetExpr, rhs: SpansetExpr) -> SpansetExpr {
    SpansetExpr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    }
}

fn arith(op: ArithOp, lhs: FieldExpr, rhs: FieldExpr) -> FieldExpr {
    FieldExpr::Arith {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    }
}

fn aggregate(word: &str) -> Option<Aggregate> {
    Some(match word {
        "count" => Aggregate::Count,
        "avg" => Aggregate::Avg,
        "min" => Aggregate::Min,
        "max" => Aggregate::Max,
        "sum" => Aggregate::Sum,
        _ => return None,
    })
}

fn negate(v: Value) -> Option<Value> {
    match v {
        Value::Int(i) => i.checked_neg().map(Value::Int),
        Value::Float(f) => Some(Value::Float(-f)),
        Value::Duration(d) => d.checked_neg().map(Value::Duration),
        _ => None,
    }
}

/// Returns false for filter expressions that can never be a boolean (`{ 1 + 2 }`,
/// `{ "a" }`, `{ name }`); attributes may hold booleans, so they pass.
fn may_be_boolean(e: &FieldExpr) -> bool {
    match e {
        FieldExpr::Static(v) => matches!(v, Value::Bool(_)),
        FieldExpr::Intrinsic(_) | FieldExpr::Arith { .. } | FieldExpr::Neg(_) => false,
        _ => true,
    }
}

/// Describes a token for error messages.
fn describe(t: &Token) -> String {
    match t {
        Token::Ident(w) => format!("{w:?}"),
        Token::Attribute { scope, name } => format!("attribute {scope}.{name}"),
        Token::String(s) => format!("string {s:?}"),
        Token::Int(i) => format!("number {i}"),
        Token::Float(f) => format!("number {f}"),
        Token::Duration(d) => format!("duration {d}ns"),
        Token::Eof => "end of query".to_string(),
        other => format!("'{}'", Sym(other)),
    }
}

struct Sym<'a>(&'a Token);

impl fmt::Display for Sym<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.0 {
            Token::LBrace => "{",
            Token::RBrace => "}",
            Token::LParen => "(",
            Token::RParen => ")",
            Token::Comma => ",",
            Token::Pipe => "|",
            Token::Eq => "=",
            Token::Neq => "!=",
            Token::Lt => "<",
            Token::Lte => "<=",
            Token::Gt => ">",
            Token::Gte => ">=",
            Token::Re => "=~",
            Token::NotTilde => "!~",
            Token::Tilde => "~",
            Token::AndAnd => "&&",
            Token::OrOr => "||",
            Token::Not => "!",
            Token::Desc => ">>",
            Token::Anc => "<<",
            Token::NotChild => "!>",
            Token::NotParent => "!<",
            Token::NotDesc => "!>>",
            Token::NotAnc => "!<<",
            Token::UnionChild => "&>",
            Token::UnionParent => "&<",
            Token::UnionDesc => "&>>",
            Token::UnionAnc => "&<<",
            Token::UnionSibling => "&~",
            Token::Plus => "+",
            Token::Minus => "-",
            Token::Star => "*",
            Token::Slash => "/",
            Token::Percent => "%",
            Token::Caret => "^",
            _ => "?",
        };
        f.write_str(s)
    }
}
