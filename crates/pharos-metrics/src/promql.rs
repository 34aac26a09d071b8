//! PromQL: parsing (by `promql-parser`) and evaluation over a [`crate::store::Querier`].
//!
//! Only the leaves of the language evaluate so far: vector and matrix selectors (all four
//! matchers, `offset`, `@`) and number and string literals, with Prometheus 3's semantics.
//! Everything else fails with [`QueryError::Unsupported`]; full PromQL is a later release.
//! Start at [`instant_query`] and [`range_query`].
//!
//! Architecture invariant: this module knows nothing of HTTP or JSON; results are
//! [`Value`]s and failures [`QueryError`]s, which the api maps to the wire.

mod eval;
mod value;

pub use eval::{QueryOptions, instant_query, range_query, selector_matchers};
pub use value::{RangeSeries, Sample, Value};

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse, or a matcher's regex does not compile.
    #[error("{0}")]
    Parse(String),
    /// A range query of something other than a scalar or an instant vector; holds the
    /// type's documented name ("range vector", "string").
    #[error("invalid expression type {0:?} for range query, must be Scalar or instant Vector")]
    InvalidRangeType(&'static str),
    /// A valid expression this engine does not evaluate yet.
    #[error("unsupported expression: {0} (full PromQL arrives in a later release)")]
    Unsupported(String),
    /// The query ran past its deadline; holds where.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
}
