//! The evaluator: walks the parsed expression at each step timestamp.
//!
//! Semantics follow Prometheus 3: an instant selector takes the newest sample in
//! `(t - lookback, t]` unless it is a stale marker; a matrix selector takes the samples in
//! `(t - range, t]` without stale markers; `offset` and `@` move the reference time.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, AtModifier, Expr, Offset, VectorSelector, value::ValueType};

use super::QueryError;
use super::value::{RangeSeries, Sample, Value};
use crate::store::{METRIC_NAME, Matcher, Querier, is_stale};

/// Knobs of one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct QueryOptions {
    /// How far back an instant selector looks for a sample, in milliseconds (default 5m).
    pub lookback_ms: i64,
    /// When to give up with [`QueryError::Timeout`].
    pub deadline: Option<Instant>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            lookback_ms: 5 * 60 * 1000,
            deadline: None,
        }
    }
}

/// Evaluates `query` at `t_ms`.
///
/// # Errors
///
/// Returns [`QueryError::Parse`] for invalid PromQL, [`QueryError::Unsupported`] for an
/// expression not evaluated yet, [`QueryError::Timeout`] past the deadline.
pub fn instant_query(
    q: &dyn Querier,
    query: &str,
    t_ms: i64,
    opts: &QueryOptions,
) -> Result<Value, QueryError> {
    let expr = parse(query)?;
    let ev = Evaluator {
        q,
        opts,
        start: t_ms,
        end: t_ms,
        step: 1,
    };
    match ev.eval(&expr)? {
        Out::Scalar(v) => Ok(Value::Scalar { t_ms, value: v[0] }),
        Out::String(s) => Ok(Value::String { t_ms, value: s }),
        Out::Steps(series) => Ok(Value::Vector(
            series
                .into_iter()
                .filter_map(|s| {
                    s.points.first().map(|&(t_ms, value)| Sample {
                        labels: s.labels,
                        t_ms,
                        value,
                    })
                })
                .collect(),
        )),
        Out::Matrix(m) => Ok(Value::Matrix(m)),
    }
}

/// Evaluates `query` at `start + k*step` for every `k` with `start + k*step <= end`; the
/// result is always a [`Value::Matrix`].
///
/// # Errors
///
/// As [`instant_query`], plus [`QueryError::InvalidRangeType`] when the expression is
/// neither a scalar nor an instant vector.
///
/// # Panics
///
/// Panics when `step_ms` is not positive (the API validates it first).
pub fn range_query(
    q: &dyn Querier,
    query: &str,
    start: i64,
    end: i64,
    step_ms: i64,
    opts: &QueryOptions,
) -> Result<Value, QueryError> {
    assert!(step_ms > 0, "BUG: range query step must be positive");
    let expr = parse(query)?;
    match expr.value_type() {
        ValueType::Matrix => return Err(QueryError::InvalidRangeType("range vector")),
        ValueType::String => return Err(QueryError::InvalidRangeType("string")),
        ValueType::Vector | ValueType::Scalar => {}
    }
    let ev = Evaluator {
        q,
        opts,
        start,
        end,
        step: step_ms,
    };
    match ev.eval(&expr)? {
        Out::Scalar(v) => Ok(Value::Matrix(vec![RangeSeries {
            labels: Default::default(),
            points: ev.steps().zip(v).collect(),
        }])),
        Out::Steps(series) => Ok(Value::Matrix(series)),
        Out::String(_) | Out::Matrix(_) => unreachable!("BUG: type checked above"),
    }
}

fn parse(query: &str) -> Result<Expr, QueryError> {
    if query.trim().is_empty() {
        return Err(QueryError::Parse(
            "1:1: parse error: no expression found in input".into(),
        ));
    }
    parser::parse(query).map_err(QueryError::Parse)
}

/// An intermediate result over all steps.
enum Out {
    /// One scalar per step.
    Scalar(Vec<f64>),
    String(String),
    /// Instant-vector series with a point per step where they have a value.
    Steps(Vec<RangeSeries>),
    /// A matrix selector's result (instant queries only).
    Matrix(Vec<RangeSeries>),
}

struct Evaluator<'a> {
    q: &'a dyn Querier,
    opts: &'a QueryOptions,
    start: i64,
    end: i64,
    step: i64,
}

impl Evaluator<'_> {
    fn steps(&self) -> impl Iterator<Item = i64> + use<> {
        let (start, end, step) = (self.start, self.end, self.step);
        (0..)
            .map(move |k| start + k * step)
            .take_while(move |&t| t <= end)
    }

    fn check_deadline(&self) -> Result<(), QueryError> {
        match self.opts.deadline {
            Some(d) if Instant::now() > d => Err(QueryError::Timeout("expression evaluation")),
            _ => Ok(()),
        }
    }

    fn eval(&self, expr: &Expr) -> Result<Out, QueryError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Out::Scalar(self.steps().map(|_| n.val).collect())),
            Expr::StringLiteral(s) => Ok(Out::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Out::Scalar(v) => Ok(Out::Scalar(v.into_iter().map(|x| -x).collect())),
                _ => Err(unsupported(expr)),
            },
            Expr::VectorSelector(vs) => self.vector_selector(vs).map(Out::Steps),
            Expr::MatrixSelector(ms) if self.start == self.end => {
                self.matrix_selector(&ms.vs, ms.range).map(Out::Matrix)
            }
            _ => Err(unsupported(expr)),
        }
    }

    /// Returns the reference time a selector reads at for evaluation time `t`.
    fn reference(&self, vs: &VectorSelector, t: i64) -> i64 {
        let base = match &vs.at {
            None => t,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            Some(AtModifier::At(st)) => system_time_ms(*st),
        };
        match &vs.offset {
            None => base,
            Some(Offset::Pos(d)) => base - duration_ms(*d),
            Some(Offset::Neg(d)) => base + duration_ms(*d),
        }
    }

    fn vector_selector(&self, vs: &VectorSelector) -> Result<Vec<RangeSeries>, QueryError> {
        let matchers = selector_matchers(vs)?;
        let refs: Vec<(i64, i64)> = self.steps().map(|t| (t, self.reference(vs, t))).collect();
        let (Some(min_ref), Some(max_ref)) = (
            refs.iter().map(|r| r.1).min(),
            refs.iter().map(|r| r.1).max(),
        ) else {
            return Ok(Vec::new());
        };
        let lookback = self.opts.lookback_ms;
        let selected = self.q.select(
            &matchers,
            min_ref.saturating_sub(lookback).saturating_add(1),
            max_ref,
        );
        let mut out = Vec::with_capacity(selected.len());
        for s in selected {
            self.check_deadline()?;
            let mut points = Vec::new();
            for &(t, r) in &refs {
                let i = s.samples.partition_point(|x| x.0 <= r);
                if i == 0 {
                    continue;
                }
                let (st, v) = s.samples[i - 1];
                if st > r - lookback && !is_stale(v) {
                    points.push((t, v));
                }
            }
            if !points.is_empty() {
                out.push(RangeSeries {
                    labels: s.labels,
                    points,
                });
            }
        }
        Ok(out)
    }

    fn matrix_selector(
        &self,
        vs: &VectorSelector,
        range: Duration,
    ) -> Result<Vec<RangeSeries>, QueryError> {
        let matchers = selector_matchers(vs)?;
        let r = self.reference(vs, self.start);
        let mint = r.saturating_sub(duration_ms(range)).saturating_add(1);
        let mut out = Vec::new();
        for s in self.q.select(&matchers, mint, r) {
            self.check_deadline()?;
            let points: Vec<(i64, f64)> = s
                .samples
                .into_iter()
                .filter(|&(_, v)| !is_stale(v))
                .collect();
            if !points.is_empty() {
                out.push(RangeSeries {
                    labels: s.labels,
                    points,
                });
            }
        }
        Ok(out)
    }
}

fn unsupported(expr: &Expr) -> QueryError {
    QueryError::Unsupported(expr.to_string())
}

/// Returns a parsed selector's matchers (its name included), recompiling regexes the way Prometheus anchors
/// them (`promql-parser` compiles `^(?:re)$`, which differs on newlines).
pub fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, QueryError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(QueryError::Unsupported(format!("{vs}")));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        out.push(match &m.op {
            MatchOp::Equal => Matcher::equal(m.name.clone(), m.value.clone()),
            MatchOp::NotEqual => Matcher {
                name: m.name.clone(),
                kind: crate::store::MatchKind::NotEqual(m.value.clone()),
            },
            MatchOp::Re(_) => {
                Matcher::regex(m.name.clone(), &m.value, false).map_err(QueryError::Parse)?
            }
            MatchOp::NotRe(_) => {
                Matcher::regex(m.name.clone(), &m.value, true).map_err(QueryError::Parse)?
            }
        });
    }
    Ok(out)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(d),
        Err(e) => -duration_ms(e.duration()),
    }
}

#[cfg(test)]
mod tests;
