//! TraceQL, Tempo's query language for traces: parse a query once, evaluate it per trace.
//!
//! ```text
//! { resource.service.name = "frontend" } >> { status = error } | by(resource.service.name) | count() > 1
//! ```
//!
//! [`lexer`] turns text into tokens, [`parser`] is recursive descent into the [`ast`], and
//! [`eval`] runs a [`Query`] over one [`Trace`] of the plain [`model`], returning the
//! [`Spanset`]s that survive the pipeline (none: the trace does not match). The model is
//! deliberately not the store's: the store adapts its spans to [`Span`], so this module
//! knows nothing of OTLP, storage or HTTP.
//!
//! Semantics follow Grafana Tempo's documentation: regular expressions are RE2-like (the
//! `regex` crate) and fully anchored; missing attributes and type mismatches make a
//! comparison false rather than an error; structural operators return right-hand spans.
//! See [`eval`] for the details and [`parser`] for what is refused as `unsupported:`.
//!
//! Start reading at [`parse`] and [`evaluate`].

pub mod ast;
pub mod eval;
pub mod lexer;
pub mod model;
pub mod parser;
pub mod prune;
pub mod value;

pub use ast::Query;
pub use eval::{SpanMatch, Spanset, evaluate};
pub use model::{Span, SpanId, Trace};
pub use parser::{ParseError, parse};
pub use value::{Kind, Status, Value};
