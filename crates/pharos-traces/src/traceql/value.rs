//! TraceQL values: what literals, attributes, intrinsics and aggregates evaluate to, and how
//! they compare and combine.
//!
//! Comparisons follow Tempo: values of different types never compare (the comparison is
//! false, not an error), except integers and floats, which compare numerically. A missing
//! attribute is [`Value::Nil`], which compares false with everything; only `= nil` and
//! `!= nil` look at it.

use std::cmp::Ordering;
use std::fmt;

/// A span status, as the `status` intrinsic and the `ok`/`error`/`unset` literals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Unset,
    Ok,
    Error,
}

/// A span kind, as the `kind` intrinsic and the `server`/`client`/... literals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

/// A TraceQL value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Absent: a missing attribute, the `nil` literal, or an undefined result.
    Nil,
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    Status(Status),
    Kind(Kind),
}

impl Status {
    /// Returns the TraceQL spelling (`ok`, `error`, `unset`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unset => "unset",
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }
}

impl Kind {
    /// Returns the TraceQL spelling (`server`, `client`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Unspecified => "unspecified",
            Kind::Internal => "internal",
            Kind::Server => "server",
            Kind::Client => "client",
            Kind::Producer => "producer",
            Kind::Consumer => "consumer",
        }
    }
}

impl Value {
    /// Returns true for [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// Returns the value as a truth value: only `Bool(true)` is true.
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    /// Orders two values of comparable types; `None` when the types differ (other than
    /// int/float), when either is nil, or for NaN.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (String(a), String(b)) => Some(a.cmp(b)),
            (Int(a), Int(b)) => Some(a.cmp(b)),
            (Float(a), Float(b)) => a.partial_cmp(b),
            (Int(a), Float(b)) => (*a as f64).partial_cmp(b),
            (Float(a), Int(b)) => a.partial_cmp(&(*b as f64)),
            (Duration(a), Duration(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// Returns whether two values are equal under TraceQL rules: same type (or int/float),
    /// never nil.
    pub fn equals(&self, other: &Value) -> Option<bool> {
        use Value::*;
        match (self, other) {
            (Bool(a), Bool(b)) => Some(a == b),
            (Status(a), Status(b)) => Some(a == b),
            (Kind(a), Kind(b)) => Some(a == b),
            _ => self.compare(other).map(|o| o == Ordering::Equal),
        }
    }

    /// Returns the value as an f64 for aggregation (ints, floats and durations in ns).
    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) | Value::Duration(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Duration(ns) => write!(f, "{ns}ns"),
            Value::Status(s) => f.write_str(s.as_str()),
            Value::Kind(k) => f.write_str(k.as_str()),
        }
    }
}

/// An arithmetic operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl ArithOp {
    /// Returns the operator's symbol.
    pub fn as_str(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
            ArithOp::Pow => "^",
        }
    }
}

/// Applies an arithmetic operator; [`Value::Nil`] for unsupported types, division by zero
/// and overflow.
///
/// Integers stay integers except under `/` and `^` (floats, as in Tempo); durations add to
/// and subtract from durations, scale by numbers, and divide into a float ratio.
pub fn arith(op: ArithOp, lhs: &Value, rhs: &Value) -> Value {
    use Value::*;
    match (lhs, rhs) {
        (Int(a), Int(b)) => match op {
            ArithOp::Add => a.checked_add(*b).map_or(Nil, Int),
            ArithOp::Sub => a.checked_sub(*b).map_or(Nil, Int),
            ArithOp::Mul => a.checked_mul(*b).map_or(Nil, Int),
            ArithOp::Mod => a.checked_rem(*b).map_or(Nil, Int),
            ArithOp::Div | ArithOp::Pow => float_arith(op, *a as f64, *b as f64),
        },
        (Int(_) | Float(_), Int(_) | Float(_)) => {
            float_arith(op, lhs.as_f64().unwrap_or(0.0), rhs.as_f64().unwrap_or(0.0))
        }
        (Duration(a), Duration(b)) => match op {
            ArithOp::Add => a.checked_add(*b).map_or(Nil, Duration),
            ArithOp::Sub => a.checked_sub(*b).map_or(Nil, Duration),
            ArithOp::Div if *b != 0 => Float(*a as f64 / *b as f64),
            _ => Nil,
        },
        (Duration(a), Int(_) | Float(_)) => {
            let n = rhs.as_f64().unwrap_or(0.0);
            match op {
                ArithOp::Mul => duration_from_f64(*a as f64 * n),
                ArithOp::Div if n != 0.0 => duration_from_f64(*a as f64 / n),
                _ => Nil,
            }
        }
        (Int(_) | Float(_), Duration(b)) if op == ArithOp::Mul => {
            duration_from_f64(lhs.as_f64().unwrap_or(0.0) * *b as f64)
        }
        _ => Nil,
    }
}

fn float_arith(op: ArithOp, a: f64, b: f64) -> Value {
    let r = match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div if b != 0.0 => a / b,
        ArithOp::Mod if b != 0.0 => a % b,
        ArithOp::Pow => a.powf(b),
        ArithOp::Div | ArithOp::Mod => return Value::Nil,
    };
    if r.is_finite() {
        Value::Float(r)
    } else {
        Value::Nil
    }
}

pub(crate) fn duration_from_f64(ns: f64) -> Value {
    if ns.is_finite() && ns.abs() < i64::MAX as f64 {
        Value::Duration(ns.round() as i64)
    } else {
        Value::Nil
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_numbers_compare_and_other_types_do_not() {
        assert_eq!(
            Value::Int(2).compare(&Value::Float(1.5)),
            Some(Ordering::Greater)
        );
        assert_eq!(Value::Int(2).equals(&Value::String("2".into())), None);
        assert_eq!(Value::Duration(5).compare(&Value::Int(5)), None);
        assert_eq!(Value::Nil.equals(&Value::Nil), None);
        assert_eq!(Value::Bool(true).compare(&Value::Bool(false)), None);
        assert_eq!(Value::Bool(true).equals(&Value::Bool(true)), Some(true));
        assert_eq!(
            Value::String("400".into()).compare(&Value::String("5".into())),
            Some(Ordering::Less)
        );
    }

    #[test]
    fn arithmetic_keeps_types_tempo_keeps() {
        assert_eq!(
            arith(ArithOp::Mul, &Value::Int(10), &Value::Int(1024)),
            Value::Int(10240)
        );
        assert_eq!(
            arith(ArithOp::Div, &Value::Int(3), &Value::Int(2)),
            Value::Float(1.5)
        );
        assert_eq!(
            arith(ArithOp::Div, &Value::Int(3), &Value::Int(0)),
            Value::Nil
        );
        assert_eq!(
            arith(ArithOp::Mod, &Value::Int(7), &Value::Int(4)),
            Value::Int(3)
        );
        assert_eq!(
            arith(ArithOp::Pow, &Value::Int(2), &Value::Int(10)),
            Value::Float(1024.0)
        );
        assert_eq!(
            arith(ArithOp::Mul, &Value::Duration(100), &Value::Int(3)),
            Value::Duration(300)
        );
        assert_eq!(
            arith(ArithOp::Add, &Value::Duration(1), &Value::Int(3)),
            Value::Nil
        );
        assert_eq!(
            arith(
                ArithOp::Add,
                &Value::String("a".into()),
                &Value::String("b".into())
            ),
            Value::Nil
        );
        assert_eq!(
            arith(ArithOp::Add, &Value::Int(i64::MAX), &Value::Int(1)),
            Value::Nil
        );
    }
}
