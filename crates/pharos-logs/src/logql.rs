//! A LogQL subset: stream selectors with line filters.
//!
//! `{app="api", env=~"prod|staging"} |= "error" != "timeout" |~ "5\\d\\d"`
//!
//! [`lexer`] turns text into tokens, [`parser`] is recursive descent over them into
//! the [`ast`], and [`eval`] runs a [`ast::LogSelector`] against the
//! [`LogStore`](crate::store::LogStore). Errors read like Loki's
//! (`parse error at line 1, col N: syntax error: ...`) so clients show the same text.

pub mod ast;
pub mod detect;
pub mod eval;
pub mod lexer;
pub mod parser;
pub mod parsers;
pub mod pipeline;
pub mod template;

pub use ast::{Expr, FilterOp, LabelMatcher, LineFilter, LogExpr, MatchOp, MetricExpr};
pub use parser::{ParseError, parse, parse_expr};
