//! PromQL: parsing (by `promql-parser`) and evaluation over a [`crate::store::Querier`].
//!
//! The whole float language evaluates with Prometheus 3's semantics: selectors (`offset`,
//! `@`, lookback, staleness), subqueries, every binary operator with vector matching, the
//! aggregations, and the functions over floats and classic histograms. Native histograms
//! and experimental syntax (`fill`, `smoothed`, `anchored`, `info`) fail with
//! [`QueryError::Unsupported`]. Start at [`instant_query`] and [`range_query`] (or their
//! `_with_stats` forms, which also return [`QueryStats`]); the evaluator core is `eval`,
//! the operators `binary`, the aggregations `aggregate`, the functions `functions`
//! (instant vectors) and `range_fns` (range vectors).
//!
//! Architecture invariant: this module knows nothing of HTTP or JSON; results are
//! [`Value`]s and failures [`QueryError`]s, which the api maps to the wire.

mod aggregate;
mod binary;
mod eval;
mod functions;
mod histogram;
mod labels;
mod range_fns;
mod stats;
mod value;

pub use eval::{
    DEFAULT_MAX_SAMPLES, QueryOptions, instant_query, instant_query_with_stats, parse, range_query,
    range_query_with_stats, selector_matchers,
};
pub use stats::{QueryStats, Timings};
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
    /// A valid expression this engine does not evaluate (`unsupported expression: ...`);
    /// holds the whole message.
    #[error("{0}")]
    Unsupported(String),
    /// The query failed while executing (too many samples, duplicate label sets,
    /// many-to-many matching); Prometheus' `execution` error, worded as it words it.
    #[error("{0}")]
    Execution(String),
    /// The query ran past its deadline; holds where.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
}

impl QueryError {
    /// Returns the error for a query that failed while executing, worded as Prometheus
    /// words it (`errorType` `execution` there).
    pub fn execution(message: impl Into<String>) -> QueryError {
        QueryError::Execution(message.into())
    }
}
