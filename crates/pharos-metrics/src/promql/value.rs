//! Query results, in Prometheus' four value types.

use crate::store::Labels;

/// One instant-vector element.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (`__name__` included for selectors).
    pub labels: Labels,
    /// The evaluation timestamp, in milliseconds.
    pub t_ms: i64,
    /// The value.
    pub value: f64,
}

/// One range-vector (matrix) element.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// The series' labels.
    pub labels: Labels,
    /// `(t_ms, value)` points in increasing time order.
    pub points: Vec<(i64, f64)>,
}

/// A query result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at a timestamp (ms).
    Scalar {
        /// Milliseconds.
        t_ms: i64,
        /// The value.
        value: f64,
    },
    /// A string at a timestamp (ms).
    String {
        /// Milliseconds.
        t_ms: i64,
        /// The string.
        value: String,
    },
    /// An instant vector, sorted by labels.
    Vector(Vec<Sample>),
    /// A range vector, sorted by labels.
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// Returns Prometheus' `resultType` name: `scalar`, `string`, `vector` or `matrix`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}
