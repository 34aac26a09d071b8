//! The evaluator: walks the parsed expression once per step timestamp.
//!
//! Semantics follow Prometheus 3: an instant selector takes the newest sample in
//! `(t - lookback, t]` unless it is a stale marker; a matrix selector takes the samples in
//! `(t - range, t]` without stale markers; `offset` and `@` move the reference time.
//!
//! Design: correctness first. A range query evaluates the whole tree at every step
//! ([`Evaluator::eval`] takes the step's timestamp), and subqueries evaluate their inner
//! expression at each of their own steps. Selectors read through a per-query cache filled
//! once per selector over the span a pre-pass ([`Evaluator::plan`]) computed, as
//! Prometheus' `getTimeRangesForSelector` does, so the store is asked once per selector.
//! Operators live in [`super::binary`], aggregations in [`super::aggregate`], functions in
//! [`super::functions`] (instant vectors) and [`super::range_fns`] (range vectors).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use promql_parser::label::MatchOp;
use promql_parser::parser::{
    self, AtModifier, Expr, Offset, SubqueryExpr, VectorSelector, value::ValueType,
};

use super::QueryError;
use super::stats::{QueryStats, Timings};
use super::value::{RangeSeries, Sample, Value};
use crate::store::{Labels, METRIC_NAME, Matcher, Querier, SeriesSamples, is_stale};

/// Prometheus' default `--query.max-samples`.
pub const DEFAULT_MAX_SAMPLES: usize = 50_000_000;

/// The step of a subquery without one: Prometheus' default global evaluation interval.
const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// Knobs of one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct QueryOptions {
    /// How far back an instant selector looks for a sample, in milliseconds (default 5m).
    pub lookback_ms: i64,
    /// When to give up with [`QueryError::Timeout`].
    pub deadline: Option<Instant>,
    /// The most samples a query may hold in memory at once (default 50,000,000), counted
    /// as Prometheus counts them: samples selected for the current step plus the result
    /// points of a range query so far.
    pub max_samples: usize,
    /// Whether the `_with_stats` evaluations count the samples loaded at every step
    /// ([`QueryStats::per_step`]), as Prometheus does for `stats=all` with its
    /// `promql-per-step-stats` feature.
    pub per_step_stats: bool,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            lookback_ms: 5 * 60 * 1000,
            deadline: None,
            max_samples: DEFAULT_MAX_SAMPLES,
            per_step_stats: false,
        }
    }
}

/// Evaluates `query` at `t_ms`.
///
/// # Errors
///
/// Returns [`QueryError::Parse`] for invalid PromQL, [`QueryError::Unsupported`] for an
/// expression not evaluated yet or (until the api maps its own variant) one whose
/// evaluation fails as Prometheus' execution errors do, [`QueryError::Timeout`] past the
/// deadline.
pub fn instant_query(
    q: &dyn Querier,
    query: &str,
    t_ms: i64,
    opts: &QueryOptions,
) -> Result<Value, QueryError> {
    instant_query_with_stats(q, query, t_ms, opts).map(|(v, _)| v)
}

/// Evaluates `query` at `t_ms` as [`instant_query`] does, with what it cost.
///
/// # Errors
///
/// As [`instant_query`].
pub fn instant_query_with_stats(
    q: &dyn Querier,
    query: &str,
    t_ms: i64,
    opts: &QueryOptions,
) -> Result<(Value, QueryStats), QueryError> {
    let expr = parse(query)?;
    let clock = Clock::start();
    let ev = Evaluator::new(q, opts, &expr, t_ms, t_ms);
    ev.track_steps(1);
    let prepared = Instant::now();
    let val = ev.eval(&expr, t_ms)?;
    if let Val::Vector(v) = &val {
        check_duplicates(v)?;
    }
    let evaluated = Instant::now();
    let (value, sorted) = match val {
        Val::Scalar(v) => (Value::Scalar { t_ms, value: v }, evaluated),
        Val::String(s) => (Value::String { t_ms, value: s }, evaluated),
        Val::Vector(v) => (
            Value::Vector(
                v.into_iter()
                    .map(|s| Sample {
                        labels: s.labels,
                        t_ms,
                        value: s.value,
                    })
                    .collect(),
            ),
            evaluated,
        ),
        Val::Matrix(m) => (Value::Matrix(m), Instant::now()),
    };
    let stats = ev.stats(clock.finish(prepared, evaluated, sorted), t_ms, 1);
    Ok((value, stats))
}

/// Evaluates `query` at `start + k*step` for every `k` with `start + k*step <= end`; the
/// result is always a [`Value::Matrix`], sorted by labels.
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
    range_query_with_stats(q, query, start, end, step_ms, opts).map(|(v, _)| v)
}

/// Evaluates a range query as [`range_query`] does, with what it cost.
///
/// # Errors
///
/// As [`range_query`].
///
/// # Panics
///
/// As [`range_query`].
pub fn range_query_with_stats(
    q: &dyn Querier,
    query: &str,
    start: i64,
    end: i64,
    step_ms: i64,
    opts: &QueryOptions,
) -> Result<(Value, QueryStats), QueryError> {
    assert!(step_ms > 0, "BUG: range query step must be positive");
    let expr = parse(query)?;
    match expr.value_type() {
        ValueType::Matrix => return Err(QueryError::InvalidRangeType("range vector")),
        ValueType::String => return Err(QueryError::InvalidRangeType("string")),
        ValueType::Vector | ValueType::Scalar => {}
    }
    let clock = Clock::start();
    let mut ev = Evaluator::new(q, opts, &expr, start, end);
    let steps = if end < start {
        0
    } else {
        (i128::from(end) - i128::from(start)) / i128::from(step_ms) + 1
    };
    let steps = usize::try_from(steps).unwrap_or(usize::MAX);
    ev.grid = Some((start, step_ms, steps));
    ev.track_steps(steps);
    let prepared = Instant::now();
    let mut series: BTreeMap<crate::store::Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut points = 0usize;
    let mut t = start;
    let mut k = 0;
    while t <= end {
        ev.step.set(k);
        k += 1;
        ev.step_samples.set(points);
        match ev.eval(&expr, t)? {
            Val::Scalar(v) => {
                series.entry(Default::default()).or_default().push((t, v));
                points += 1;
            }
            Val::Vector(v) => {
                for s in v {
                    let pts = series.entry(s.labels).or_default();
                    if pts.last().is_some_and(|p| p.0 == t) {
                        return Err(duplicate_labelset());
                    }
                    pts.push((t, s.value));
                    points += 1;
                }
            }
            Val::String(_) | Val::Matrix(_) => unreachable!("BUG: type checked above"),
        }
        ev.add_samples(0)?;
        match t.checked_add(step_ms) {
            Some(next) => t = next,
            None => break,
        }
    }
    // The finished result is held at once too.
    ev.peak.set(ev.peak.get().max(points));
    let evaluated = Instant::now();
    let value = Value::Matrix(
        series
            .into_iter()
            .map(|(labels, points)| RangeSeries { labels, points })
            .collect(),
    );
    let timings = clock.finish(prepared, evaluated, Instant::now());
    Ok((value, ev.stats(timings, start, step_ms)))
}

/// The timers of one execution: started before preparation, read at its milestones.
struct Clock(Instant);

impl Clock {
    fn start() -> Clock {
        Clock(Instant::now())
    }

    /// Returns the timings of an execution prepared, evaluated and sorted at those times.
    fn finish(self, prepared: Instant, evaluated: Instant, sorted: Instant) -> Timings {
        let total = Instant::now() - self.0;
        Timings {
            eval_total: total,
            result_sort: sorted - evaluated,
            query_preparation: prepared - self.0,
            inner_eval: evaluated - prepared,
            exec_queue: Duration::ZERO,
            exec_total: total,
        }
    }
}

/// Parses a query as the query endpoints do: an empty one fails with Prometheus' wording.
///
/// # Errors
///
/// Returns [`QueryError::Parse`] for invalid PromQL.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    if query.trim().is_empty() {
        return Err(QueryError::Parse(
            "1:1: parse error: no expression found in input".into(),
        ));
    }
    parser::parse(query).map_err(QueryError::Parse)
}

/// One element of an instant vector during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Elem {
    pub labels: crate::store::Labels,
    pub value: f64,
    /// The sample's own timestamp for selector output (what `timestamp()` reports), the
    /// evaluation time otherwise.
    pub t_ms: i64,
}

/// A value at one evaluation timestamp.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val {
    Scalar(f64),
    String(String),
    Vector(Vec<Elem>),
    Matrix(Vec<RangeSeries>),
}

/// Returns Prometheus' error for two elements of a vector with equal labels.
pub(super) fn duplicate_labelset() -> QueryError {
    QueryError::execution("vector cannot contain metrics with the same labelset")
}

/// Fails with [`duplicate_labelset`] when two elements share their labels.
pub(super) fn check_duplicates(v: &[Elem]) -> Result<(), QueryError> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen: HashSet<&Labels, rustc_hash::FxBuildHasher> =
        HashSet::with_capacity_and_hasher(v.len(), Default::default());
    for e in v {
        if !seen.insert(&e.labels) {
            return Err(duplicate_labelset());
        }
    }
    Ok(())
}

/// A selector's samples, fetched once per query over `[mint, maxt]`.
pub(super) struct Fetched {
    mint: i64,
    maxt: i64,
    pub(super) series: Vec<SeriesSamples>,
    /// Per series, the index of the first sample after the last window's start and that
    /// start: steps move forward, so the next window's start is usually a few samples on,
    /// found by a short scan instead of a binary search over the whole series.
    cursors: RefCell<(i64, Vec<usize>)>,
}

pub(super) struct Evaluator<'a> {
    q: &'a dyn Querier,
    opts: &'a QueryOptions,
    /// The query's start and end, what `@ start()` and `@ end()` mean.
    start: i64,
    end: i64,
    /// Per selector node (by address), the span the pre-pass says it reads.
    bounds: HashMap<usize, (i64, i64)>,
    cache: RefCell<HashMap<usize, Rc<Fetched>>>,
    /// Samples held for the current step (plus result points of a range query so far).
    step_samples: Cell<usize>,
    /// The high-water mark of `step_samples` ([`QueryStats::peak_samples`]).
    peak: Cell<usize>,
    /// Samples loaded so far ([`QueryStats::total_queryable_samples`]).
    loaded: Cell<u64>,
    /// Samples loaded at each step, when asked for (empty otherwise), and the step now
    /// evaluated.
    per_step: RefCell<Vec<u64>>,
    step: Cell<usize>,
    /// Above zero while a subquery that feeds a function is evaluated: what it reads is
    /// not counted as loaded, the points it hands the function are (as Prometheus counts).
    muted: Cell<u32>,
    /// The subquery that is the whole query (parentheses aside), by address, or 0: what it
    /// reads is counted as loaded and its result is not.
    root_subquery: usize,
    /// Label sets derived from a series' labels (name dropped, grouping labels kept), by
    /// (source address, deriving node), with the source kept alive so its address stays
    /// unique: a range query derives them once per series, not once per step.
    derived: RefCell<LabelsMemo>,
    /// Every label set `derived` handed out, once each.
    interned: RefCell<std::collections::HashSet<Labels, rustc_hash::FxBuildHasher>>,
    /// In a range query, its first step, the step width and the number of steps; `None`
    /// for instant queries.
    grid: Option<(i64, i64, usize)>,
    /// Above zero while a subquery is evaluated (its steps are not the query's).
    in_subquery: Cell<u32>,
    /// Range-function calls evaluated for every step at once, by call address: the
    /// result of each step and the samples its window loaded.
    precomputed: RefCell<HashMap<usize, Precomputed>>,
}

/// A node's results for all steps of a range query, computed at once: a range-function
/// call's, or an aggregation's of one.
pub(super) struct Precomputed {
    /// Each step's result, until handed out.
    steps: Vec<Option<Vec<Elem>>>,
    /// The samples the range function's windows loaded at each step.
    loaded: Vec<usize>,
    /// Whether the result label sets differ across all series (no step can then hold
    /// two equal ones).
    unique: bool,
}

type LabelsMemo = HashMap<(usize, usize), (Labels, Labels), rustc_hash::FxBuildHasher>;

/// Decrements a counter when dropped.
struct Leave<'a>(&'a Cell<u32>);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Enclosing subqueries' accumulated offset and range, and their `@` time if any.
#[derive(Clone, Copy, Default)]
struct SubqueryPath {
    offset: i64,
    range: i64,
    at: Option<i64>,
}

impl<'a> Evaluator<'a> {
    fn new(
        q: &'a dyn Querier,
        opts: &'a QueryOptions,
        expr: &Expr,
        start: i64,
        end: i64,
    ) -> Evaluator<'a> {
        let mut ev = Evaluator {
            q,
            opts,
            start,
            end,
            bounds: HashMap::new(),
            cache: RefCell::new(HashMap::new()),
            step_samples: Cell::new(0),
            peak: Cell::new(0),
            loaded: Cell::new(0),
            per_step: RefCell::new(Vec::new()),
            step: Cell::new(0),
            muted: Cell::new(0),
            root_subquery: 0,
            derived: RefCell::new(HashMap::default()),
            interned: RefCell::new(Default::default()),
            grid: None,
            in_subquery: Cell::new(0),
            precomputed: RefCell::new(HashMap::new()),
        };
        let mut root = expr;
        while let Expr::Paren(p) = root {
            root = &p.expr;
        }
        if let Expr::Subquery(sq) = root {
            ev.root_subquery = std::ptr::from_ref(sq) as usize;
        }
        let mut bounds = HashMap::new();
        ev.plan(expr, SubqueryPath::default(), &mut bounds);
        ev.bounds = bounds;
        ev
    }

    /// Records for every selector the time span it will read, as Prometheus'
    /// `getTimeRangesForSelector`.
    fn plan(&self, expr: &Expr, path: SubqueryPath, out: &mut HashMap<usize, (i64, i64)>) {
        match expr {
            Expr::VectorSelector(vs) => {
                out.insert(addr(vs), self.selector_span(vs, 0, path));
            }
            Expr::MatrixSelector(ms) => {
                out.insert(
                    addr(&ms.vs),
                    self.selector_span(&ms.vs, duration_ms(ms.range), path),
                );
            }
            Expr::Subquery(sq) => {
                let mut p = path;
                p.offset += offset_ms(&sq.offset);
                p.range += duration_ms(sq.range);
                if let Some(at) = &sq.at {
                    p.offset = offset_ms(&sq.offset);
                    p.range = duration_ms(sq.range);
                    p.at = Some(self.at_ms(at));
                }
                self.plan(&sq.expr, p, out);
            }
            Expr::Aggregate(a) => {
                self.plan(&a.expr, path, out);
                if let Some(p) = &a.param {
                    self.plan(p, path, out);
                }
            }
            Expr::Unary(u) => self.plan(&u.expr, path, out),
            Expr::Binary(b) => {
                self.plan(&b.lhs, path, out);
                self.plan(&b.rhs, path, out);
            }
            Expr::Paren(p) => self.plan(&p.expr, path, out),
            Expr::Call(c) => {
                for a in &c.args.args {
                    self.plan(a, path, out);
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }

    fn selector_span(&self, vs: &VectorSelector, range: i64, path: SubqueryPath) -> (i64, i64) {
        let (mut start, mut end) = (self.start, self.end);
        if let Some(at) = path.at {
            (start, end) = (at, at);
        }
        if let Some(at) = &vs.at {
            let at = self.at_ms(at);
            (start, end) = (at, at);
        } else {
            start = start.saturating_sub(path.offset.saturating_add(path.range));
            end = end.saturating_sub(path.offset);
        }
        start = start.saturating_sub(if range == 0 {
            self.opts.lookback_ms
        } else {
            range
        });
        let off = offset_ms(&vs.offset);
        (start.saturating_sub(off), end.saturating_sub(off))
    }

    fn at_ms(&self, at: &AtModifier) -> i64 {
        match at {
            AtModifier::Start => self.start,
            AtModifier::End => self.end,
            AtModifier::At(st) => system_time_ms(*st),
        }
    }

    fn check_deadline(&self) -> Result<(), QueryError> {
        match self.opts.deadline {
            Some(d) if Instant::now() > d => Err(QueryError::Timeout("expression evaluation")),
            _ => Ok(()),
        }
    }

    /// Starts counting the samples loaded at each of `steps` steps, if the options ask.
    fn track_steps(&self, steps: usize) {
        if self.opts.per_step_stats {
            *self.per_step.borrow_mut() = vec![0; steps];
        }
    }

    /// Counts `n` samples loaded at the current step (unless a muted subquery loads them).
    pub(super) fn count_loaded(&self, n: usize) {
        if self.muted.get() > 0 {
            return;
        }
        self.loaded.set(self.loaded.get().saturating_add(n as u64));
        if let Some(c) = self.per_step.borrow_mut().get_mut(self.step.get()) {
            *c = c.saturating_add(n as u64);
        }
    }

    /// Returns the statistics of the evaluation so far, the steps being `step_ms` apart
    /// from `start`.
    fn stats(&self, timings: Timings, start: i64, step_ms: i64) -> QueryStats {
        let per_step = self.per_step.borrow();
        QueryStats {
            timings,
            total_queryable_samples: self.loaded.get(),
            peak_samples: self.peak.get(),
            per_step: self.opts.per_step_stats.then(|| {
                (0..)
                    .map(|k| start.saturating_add(step_ms.saturating_mul(k)))
                    .zip(per_step.iter().copied())
                    .collect()
            }),
        }
    }

    /// Counts `n` more samples held by the current step; fails past the limit.
    pub(super) fn add_samples(&self, n: usize) -> Result<(), QueryError> {
        let total = self.step_samples.get().saturating_add(n);
        self.step_samples.set(total);
        self.peak.set(self.peak.get().max(total));
        if total > self.opts.max_samples {
            return Err(QueryError::execution(
                "query processing would load too many samples into memory in query execution",
            ));
        }
        Ok(())
    }

    /// Evaluates `expr` at timestamp `t`.
    pub(super) fn eval(&self, expr: &Expr, t: i64) -> Result<Val, QueryError> {
        self.check_deadline()?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Val::Scalar(v) => Ok(Val::Scalar(-v)),
                Val::Vector(v) => {
                    let out: Vec<Elem> = v
                        .into_iter()
                        .map(|e| Elem {
                            labels: super::labels::drop_name(&e.labels),
                            value: -e.value,
                            t_ms: t,
                        })
                        .collect();
                    check_duplicates(&out)?;
                    Ok(Val::Vector(out))
                }
                _ => Err(unsupported(expr)),
            },
            Expr::VectorSelector(vs) => self.vector_selector(vs, t).map(Val::Vector),
            Expr::MatrixSelector(ms) => self
                .matrix_selector(&ms.vs, duration_ms(ms.range), t)
                .map(Val::Matrix),
            Expr::Subquery(sq) if std::ptr::from_ref(sq) as usize == self.root_subquery => {
                self.subquery(sq, t).map(Val::Matrix)
            }
            // A subquery feeding a function: Prometheus counts the points the function
            // sees, not what the subquery read to compute them.
            Expr::Subquery(sq) => {
                self.muted.set(self.muted.get() + 1);
                let out = self.subquery(sq, t);
                self.muted.set(self.muted.get() - 1);
                let out = out?;
                self.count_loaded(out.iter().map(|s| s.points.len()).sum());
                Ok(Val::Matrix(out))
            }
            Expr::Binary(b) => super::binary::eval(self, b, t),
            Expr::Aggregate(a) => super::aggregate::eval(self, a, t),
            Expr::Call(c) => super::functions::eval(self, c, t),
            Expr::Extension(_) => Err(unsupported(expr)),
        }
    }

    /// Returns `f(l)`, computed once per series for the deriving `node` (any address unique
    /// to the caller, such as its expression's).
    pub(super) fn derived(
        &self,
        node: usize,
        l: &Labels,
        f: impl FnOnce(&Labels) -> Labels,
    ) -> Labels {
        let key = (l.addr(), node);
        if let Some((_, out)) = self.derived.borrow().get(&key) {
            return out.clone();
        }
        // Equal results are one shared label set, so callers may compare by address.
        let made = f(l);
        let out = {
            let mut interned = self.interned.borrow_mut();
            match interned.get(&made) {
                Some(existing) => existing.clone(),
                None => {
                    interned.insert(made.clone());
                    made
                }
            }
        };
        self.derived
            .borrow_mut()
            .insert(key, (l.clone(), out.clone()));
        out
    }

    /// Returns the reference time a selector reads at for evaluation time `t`.
    fn reference(&self, at: &Option<AtModifier>, offset: &Option<Offset>, t: i64) -> i64 {
        let base = match at {
            None => t,
            Some(at) => self.at_ms(at),
        };
        base.saturating_sub(offset_ms(offset))
    }

    /// Returns the selector's series with samples covering `[mint, maxt]`, from the cache
    /// when the pre-pass span covers it.
    fn fetch(&self, vs: &VectorSelector, mint: i64, maxt: i64) -> Result<Rc<Fetched>, QueryError> {
        let key = addr(vs);
        if let Some(f) = self.cache.borrow().get(&key)
            && f.mint <= mint
            && maxt <= f.maxt
        {
            return Ok(f.clone());
        }
        let (pmin, pmax) = self.bounds.get(&key).copied().unwrap_or((mint, maxt));
        let (lo, hi) = (pmin.min(mint), pmax.max(maxt));
        let matchers = selector_matchers(vs)?;
        let f = Rc::new(Fetched {
            mint: lo,
            maxt: hi,
            series: self.q.select(&matchers, lo, hi),
            cursors: RefCell::new((i64::MIN, Vec::new())),
        });
        self.cache.borrow_mut().insert(key, f.clone());
        Ok(f)
    }

    fn vector_selector(&self, vs: &VectorSelector, t: i64) -> Result<Vec<Elem>, QueryError> {
        let r = self.reference(&vs.at, &vs.offset, t);
        let lookback = self.opts.lookback_ms;
        let f = self.fetch(vs, r.saturating_sub(lookback).saturating_add(1), r)?;
        let mut out = Vec::new();
        for s in &f.series {
            let i = s.samples.partition_point(|x| x.0 <= r);
            if i == 0 {
                continue;
            }
            let (st, v) = s.samples[i - 1];
            if st > r - lookback && !is_stale(v) {
                out.push(Elem {
                    labels: s.labels.clone(),
                    value: v,
                    t_ms: st,
                });
            }
        }
        self.count_loaded(out.len());
        self.add_samples(out.len())?;
        Ok(out)
    }

    fn matrix_selector(
        &self,
        vs: &VectorSelector,
        range: i64,
        t: i64,
    ) -> Result<Vec<RangeSeries>, QueryError> {
        let r = self.reference(&vs.at, &vs.offset, t);
        let mint = r.saturating_sub(range);
        let f = self.fetch(vs, mint.saturating_add(1), r)?;
        let mut out = Vec::new();
        let mut n = 0;
        let mut cursors = f.cursors.borrow_mut();
        let forward = mint >= cursors.0 && cursors.1.len() == f.series.len();
        if !forward {
            cursors.1 = vec![0; f.series.len()];
        }
        cursors.0 = mint;
        for (s, cursor) in f.series.iter().zip(cursors.1.iter_mut()) {
            let lo = if forward {
                let mut i = *cursor;
                while i < s.samples.len() && s.samples[i].0 <= mint {
                    i += 1;
                }
                i
            } else {
                s.samples.partition_point(|x| x.0 <= mint)
            };
            *cursor = lo;
            // The window holds a few samples: a forward scan beats a binary search here.
            let mut hi = lo;
            while hi < s.samples.len() && s.samples[hi].0 <= r {
                hi += 1;
            }
            let points: Vec<(i64, f64)> = s.samples[lo..hi]
                .iter()
                .copied()
                .filter(|&(_, v)| !is_stale(v))
                .collect();
            if !points.is_empty() {
                n += points.len();
                out.push(RangeSeries {
                    labels: s.labels.clone(),
                    points,
                });
            }
        }
        self.count_loaded(n);
        self.add_samples(n)?;
        Ok(out)
    }

    /// Evaluates a subquery at `t`: its expression at every multiple of the step in
    /// `(r - range, r]`, `r` being the reference time.
    fn subquery(&self, sq: &SubqueryExpr, t: i64) -> Result<Vec<RangeSeries>, QueryError> {
        let r = self.reference(&sq.at, &sq.offset, t);
        let range = duration_ms(sq.range);
        let step = sq
            .step
            .map(duration_ms)
            .filter(|&s| s > 0)
            .unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
        let lo = r.saturating_sub(range);
        let mut ts = step * lo.div_euclid(step);
        if ts <= lo {
            ts += step;
        }
        let mut series: BTreeMap<crate::store::Labels, Vec<(i64, f64)>> = BTreeMap::new();
        let mut n = 0;
        self.in_subquery.set(self.in_subquery.get() + 1);
        let _leave = Leave(&self.in_subquery);
        while ts <= r {
            match self.eval(&sq.expr, ts)? {
                Val::Scalar(v) => {
                    series.entry(Default::default()).or_default().push((ts, v));
                    n += 1;
                }
                Val::Vector(v) => {
                    for e in v {
                        let pts = series.entry(e.labels).or_default();
                        if pts.last().is_some_and(|p| p.0 == ts) {
                            return Err(duplicate_labelset());
                        }
                        pts.push((ts, e.value));
                        n += 1;
                    }
                }
                _ => return Err(unsupported(&sq.expr)),
            }
            ts += step;
        }
        self.add_samples(n)?;
        Ok(series
            .into_iter()
            .map(|(labels, points)| RangeSeries { labels, points })
            .collect())
    }

    /// Returns the index of the range query's step at `t` when `t` is evaluated as one of
    /// its steps (not inside a subquery), so a call may use or build step results.
    pub(super) fn query_step(&self, t: i64) -> Option<usize> {
        let (start, step, _) = self.grid?;
        let k = self.step.get();
        (self.in_subquery.get() == 0
            && i64::try_from(k)
                .ok()?
                .checked_mul(step)?
                .checked_add(start)?
                == t)
            .then_some(k)
    }

    /// Returns whether `node` has results for all steps ([`Evaluator::set_precomputed`]).
    pub(super) fn has_precomputed(&self, node: usize) -> bool {
        self.precomputed.borrow().contains_key(&node)
    }

    /// Keeps `node`'s results for every step of the range query, with the samples its
    /// range function loaded at each and whether their label sets are unique across
    /// series, for [`Evaluator::take_precomputed`].
    pub(super) fn set_precomputed(
        &self,
        node: usize,
        steps: Vec<Vec<Elem>>,
        loaded: Vec<usize>,
        unique: bool,
    ) {
        self.precomputed.borrow_mut().insert(
            node,
            Precomputed {
                steps: steps.into_iter().map(Some).collect(),
                loaded,
                unique,
            },
        );
    }

    /// Hands out step `k`'s precomputed result of `node`, counting the samples it loaded
    /// and checking for duplicate label sets as the step-by-step evaluation does; `None`
    /// when there is none (not computed, or already handed out).
    pub(super) fn take_precomputed(
        &self,
        node: usize,
        k: usize,
    ) -> Result<Option<Vec<Elem>>, QueryError> {
        let mut pre = self.precomputed.borrow_mut();
        let Some(entry) = pre.get_mut(&node) else {
            return Ok(None);
        };
        let (Some(out), Some(&n)) = (
            entry.steps.get_mut(k).and_then(Option::take),
            entry.loaded.get(k),
        ) else {
            return Ok(None);
        };
        // Label sets unique across all series are unique at every step.
        let unique = entry.unique;
        drop(pre);
        self.count_loaded(n);
        self.add_samples(n)?;
        if !unique && check_duplicates(&out).is_err() {
            return Err(duplicate_labelset());
        }
        Ok(Some(out))
    }

    /// Returns the query's steps: first time, width and count.
    pub(super) fn steps(&self) -> Option<(i64, i64, usize)> {
        self.grid
    }

    /// Returns the fetched series of a matrix selector covering the whole query, with its
    /// range, for a call that computes every step at once.
    pub(super) fn fetch_for_all_steps(
        &self,
        vs: &VectorSelector,
        range: i64,
    ) -> Result<Rc<Fetched>, QueryError> {
        let (start, _, _) = self.steps().expect("BUG: only called in range queries");
        let first = self.reference(&vs.at, &vs.offset, start);
        let last = self.reference(&vs.at, &vs.offset, self.end.max(start));
        self.fetch(vs, first.saturating_sub(range).saturating_add(1), last)
    }

    /// Returns the `(start, end]` window a range-vector argument covers at `t`: the
    /// reference time minus the range, and the reference time.
    pub(super) fn window(&self, expr: &Expr, t: i64) -> Option<(i64, i64)> {
        match expr {
            Expr::Paren(p) => self.window(&p.expr, t),
            Expr::MatrixSelector(ms) => {
                let r = self.reference(&ms.vs.at, &ms.vs.offset, t);
                Some((r - duration_ms(ms.range), r))
            }
            Expr::Subquery(sq) => {
                let r = self.reference(&sq.at, &sq.offset, t);
                Some((r - duration_ms(sq.range), r))
            }
            _ => None,
        }
    }
}

fn addr(vs: &VectorSelector) -> usize {
    std::ptr::from_ref(vs) as usize
}

pub(super) fn unsupported(expr: &Expr) -> QueryError {
    QueryError::Unsupported(format!("unsupported expression: {expr}"))
}

/// Returns a parsed selector's matchers (its name included), recompiling regexes the way Prometheus anchors
/// them (`promql-parser` compiles `^(?:re)$`, which differs on newlines).
pub fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, QueryError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(QueryError::Unsupported(format!(
            "unsupported expression: {vs}"
        )));
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

pub(super) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => -duration_ms(*d),
    }
}

fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(d),
        Err(e) => -duration_ms(e.duration()),
    }
}

#[cfg(test)]
pub(super) mod tests;
