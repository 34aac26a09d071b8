//! Evaluates a [`Query`] over one [`Trace`], as Tempo does: the query runs on one trace
//! at a time, the first stage sees one spanset holding every span of the trace, and each
//! stage maps spansets to spansets. A trace matches when spansets remain at the end.
//!
//! Semantics worth knowing:
//! - a missing attribute is nil: every comparison with it is false, including `!=` and
//!   `!~`; only `= nil` is true and `!= nil` false;
//! - values of different types never compare (false, not an error), except ints with
//!   floats;
//! - `.x` reads the span attribute and falls back to the resource attribute;
//! - the root is the first span without a parent span id (`rootName`, `rootServiceName`
//!   are nil if there is none); `traceDuration` is the latest end minus the earliest start;
//! - `{a} && {b}` keeps the union of both sides only if both are non-empty; `||` is the
//!   union; structural operators return right-hand spans (plus the related left-hand
//!   ones for `&>`-style unions; for `!>`-style, the right-hand spans without the
//!   relation). Relations follow parent span ids over the whole trace, so a span whose
//!   parent is missing from the trace is a root of its own subtree;
//! - spanset operators in a later stage work on the spans of each incoming spanset.

use super::ast::*;
use super::model::{SpanId, Trace};
use super::value::{Value, arith, duration_from_f64};

#[cfg(test)]
mod tests;

/// Spans of one trace that a query selected, with how they were grouped.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanset {
    /// The matching spans, in trace order.
    pub spans: Vec<SpanMatch>,
    /// One `(field, value)` per `by(...)` field that formed this spanset, outermost first.
    pub group: Vec<(String, Value)>,
    /// The left-hand value of the last scalar filter that kept it (`count()` in
    /// `| count() > 2`).
    pub scalar: Option<Value>,
}

/// One span of a [`Spanset`].
#[derive(Clone, Debug, PartialEq)]
pub struct SpanMatch {
    /// The span's index in [`Trace::spans`].
    pub index: usize,
    pub span_id: SpanId,
    /// `(field, value)` for each `select(...)`ed field the span has a value for.
    pub selected: Vec<(String, Value)>,
}

impl Spanset {
    /// Returns the span ids, in order.
    pub fn span_ids(&self) -> Vec<SpanId> {
        self.spans.iter().map(|s| s.span_id).collect()
    }
}

/// Runs `query` over `trace`; an empty result means the trace does not match.
pub fn evaluate(query: &Query, trace: &Trace) -> Vec<Spanset> {
    if trace.spans.is_empty() {
        return Vec::new();
    }
    let ctx = Ctx::new(trace);
    let all = Set {
        spans: (0..trace.spans.len()).collect(),
        group: Vec::new(),
        scalar: None,
        selects: Vec::new(),
    };
    eval_pipeline(&query.pipeline, &ctx, vec![all])
        .into_iter()
        .map(|set| ctx.output(set))
        .collect()
}

/// A spanset during evaluation: span indices (sorted, unique) and what stages attached.
struct Set {
    spans: Vec<usize>,
    group: Vec<(String, Value)>,
    scalar: Option<Value>,
    selects: Vec<FieldExpr>,
}

/// Per-trace facts computed once.
struct Ctx<'a> {
    trace: &'a Trace,
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
    root: Option<usize>,
    trace_duration: i64,
}

impl<'a> Ctx<'a> {
    fn new(trace: &'a Trace) -> Ctx<'a> {
        let n = trace.spans.len();
        let mut by_id = std::collections::HashMap::with_capacity(n);
        for (i, s) in trace.spans.iter().enumerate() {
            by_id.entry(s.span_id).or_insert(i);
        }
        let mut parent = vec![None; n];
        let mut children = vec![Vec::new(); n];
        for (i, s) in trace.spans.iter().enumerate() {
            if let Some(p) = s.parent_span_id.and_then(|p| by_id.get(&p).copied())
                && p != i
            {
                parent[i] = Some(p);
                children[p].push(i);
            }
        }
        let root = trace.spans.iter().position(|s| s.parent_span_id.is_none());
        let start = trace.spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
        let end = trace.spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
        let trace_duration = i64::try_from(end.saturating_sub(start)).unwrap_or(i64::MAX);
        Ctx {
            trace,
            parent,
            children,
            root,
            trace_duration,
        }
    }

    fn output(&self, set: Set) -> Spanset {
        let mut labels: Vec<(String, &FieldExpr)> = Vec::new();
        for f in &set.selects {
            let label = f.to_string();
            if !labels.iter().any(|(l, _)| *l == label) {
                labels.push((label, f));
            }
        }
        let spans = set
            .spans
            .iter()
            .map(|&i| SpanMatch {
                index: i,
                span_id: self.trace.spans[i].span_id,
                selected: labels
                    .iter()
                    .filter_map(|(l, f)| {
                        let v = self.field(f, i);
                        (!v.is_nil()).then(|| (l.clone(), v))
                    })
                    .collect(),
            })
            .collect();
        Spanset {
            spans,
            group: set.group,
            scalar: set.scalar,
        }
    }

    // ---- field expressions -----------------------------------------------------------

    fn field(&self, e: &FieldExpr, i: usize) -> Value {
        match e {
            FieldExpr::Static(v) => v.clone(),
            FieldExpr::Intrinsic(x) => self.intrinsic(*x, i),
            FieldExpr::Attribute(a) => {
                let span = &self.trace.spans[i];
                let v = match a.scope {
                    Scope::Span => span.attr(&a.name),
                    Scope::Resource => span.resource_attr(&a.name),
                    Scope::Unscoped => span.attr(&a.name).or_else(|| span.resource_attr(&a.name)),
                };
                v.cloned().unwrap_or(Value::Nil)
            }
            FieldExpr::Compare { op, lhs, rhs } => {
                let l = self.field(lhs, i);
                if let FieldExpr::Static(Value::Nil) = **rhs {
                    return Value::Bool(match op {
                        CompareOp::Eq => l.is_nil(),
                        _ => !l.is_nil(),
                    });
                }
                let r = self.field(rhs, i);
                Value::Bool(compare(*op, &l, &r))
            }
            FieldExpr::Regex {
                negated,
                lhs,
                pattern,
            } => match self.field(lhs, i) {
                Value::String(s) => Value::Bool(pattern.regex.is_match(&s) != *negated),
                _ => Value::Bool(false),
            },
            FieldExpr::Arith { op, lhs, rhs } => {
                arith(*op, &self.field(lhs, i), &self.field(rhs, i))
            }
            FieldExpr::And(l, r) => {
                Value::Bool(self.field(l, i).is_true() && self.field(r, i).is_true())
            }
            FieldExpr::Or(l, r) => {
                Value::Bool(self.field(l, i).is_true() || self.field(r, i).is_true())
            }
            FieldExpr::Not(e) => match self.field(e, i) {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Nil,
            },
            FieldExpr::Neg(e) => match self.field(e, i) {
                Value::Int(v) => v.checked_neg().map_or(Value::Nil, Value::Int),
                Value::Float(v) => Value::Float(-v),
                Value::Duration(v) => v.checked_neg().map_or(Value::Nil, Value::Duration),
                _ => Value::Nil,
            },
        }
    }

    fn intrinsic(&self, x: Intrinsic, i: usize) -> Value {
        let span = &self.trace.spans[i];
        let root = self.root.map(|r| &self.trace.spans[r]);
        match x {
            Intrinsic::Name => Value::String(span.name.clone()),
            Intrinsic::Status => Value::Status(span.status),
            Intrinsic::StatusMessage => Value::String(span.status_message.clone()),
            Intrinsic::Kind => Value::Kind(span.kind),
            Intrinsic::Duration => Value::Duration(span.duration_ns()),
            Intrinsic::SpanId => Value::String(hex::encode(span.span_id)),
            Intrinsic::ParentId => span
                .parent_span_id
                .map_or(Value::Nil, |p| Value::String(hex::encode(p))),
            Intrinsic::RootName => root.map_or(Value::Nil, |r| Value::String(r.name.clone())),
            Intrinsic::RootServiceName => root
                .and_then(|r| r.resource_attr("service.name"))
                .cloned()
                .unwrap_or(Value::Nil),
            Intrinsic::TraceDuration => Value::Duration(self.trace_duration),
        }
    }

    // ---- spanset expressions ---------------------------------------------------------

    fn spanset(&self, e: &SpansetExpr, input: &[usize]) -> Vec<usize> {
        match e {
            SpansetExpr::Filter(f) => input
                .iter()
                .copied()
                .filter(|&i| self.field(f, i).is_true())
                .collect(),
            SpansetExpr::Binary { op, lhs, rhs } => {
                let l = self.spanset(lhs, input);
                let r = self.spanset(rhs, input);
                match op {
                    SpansetOp::And if l.is_empty() || r.is_empty() => Vec::new(),
                    SpansetOp::And | SpansetOp::Or => union(&l, &r),
                    SpansetOp::Structural(rel, mode) => self.structural(*rel, *mode, &l, &r),
                }
            }
            SpansetExpr::Pipeline(p) => {
                let set = Set {
                    spans: input.to_vec(),
                    group: Vec::new(),
                    scalar: None,
                    selects: Vec::new(),
                };
                eval_pipeline(p, self, vec![set])
                    .iter()
                    .fold(Vec::new(), |acc, s| union(&acc, &s.spans))
            }
        }
    }

    fn structural(
        &self,
        rel: Relation,
        mode: StructuralMode,
        lhs: &[usize],
        rhs: &[usize],
    ) -> Vec<usize> {
        let marks = self.related_to(rel, lhs);
        let (hit, miss): (Vec<usize>, Vec<usize>) = rhs.iter().partition(|&&b| marks[b]);
        match mode {
            StructuralMode::Plain => hit,
            StructuralMode::Not => miss,
            StructuralMode::Union => {
                if hit.is_empty() {
                    return hit;
                }
                let back = self.related_to(rel.inverse(), &hit);
                let left: Vec<usize> = lhs.iter().copied().filter(|&a| back[a]).collect();
                union(&hit, &left)
            }
        }
    }

    /// Marks every span `x` of the trace that has `rel` to some span of `set`
    /// (`Child`: x is a child of a member; `Ancestor`: x is an ancestor of a member; ...).
    fn related_to(&self, rel: Relation, set: &[usize]) -> Vec<bool> {
        let n = self.trace.spans.len();
        let mut marks = vec![false; n];
        match rel {
            Relation::Child => {
                for &s in set {
                    for &c in &self.children[s] {
                        marks[c] = true;
                    }
                }
            }
            Relation::Parent => {
                for &s in set {
                    if let Some(p) = self.parent[s] {
                        marks[p] = true;
                    }
                }
            }
            Relation::Descendant => {
                let mut stack: Vec<usize> = Vec::new();
                for &s in set {
                    stack.extend(&self.children[s]);
                    while let Some(x) = stack.pop() {
                        if !marks[x] {
                            marks[x] = true;
                            stack.extend(&self.children[x]);
                        }
                    }
                }
            }
            Relation::Ancestor => {
                for &s in set {
                    let mut cur = self.parent[s];
                    while let Some(p) = cur {
                        if marks[p] {
                            break;
                        }
                        marks[p] = true;
                        cur = self.parent[p];
                    }
                }
            }
            Relation::Sibling => {
                let mut member = vec![false; n];
                let mut per_parent = vec![0usize; n];
                for &s in set {
                    member[s] = true;
                    if let Some(p) = self.parent[s] {
                        per_parent[p] += 1;
                    }
                }
                for x in 0..n {
                    if let Some(p) = self.parent[x] {
                        marks[x] = per_parent[p] > usize::from(member[x]);
                    }
                }
            }
        }
        marks
    }

    // ---- scalar expressions ----------------------------------------------------------

    fn scalar(&self, e: &ScalarExpr, spans: &[usize]) -> Value {
        match e {
            ScalarExpr::Static(v) => v.clone(),
            ScalarExpr::Arith { op, lhs, rhs } => {
                arith(*op, &self.scalar(lhs, spans), &self.scalar(rhs, spans))
            }
            ScalarExpr::Aggregate(Aggregate::Count, _) => {
                Value::Int(i64::try_from(spans.len()).unwrap_or(i64::MAX))
            }
            ScalarExpr::Aggregate(agg, field) => {
                let Some(field) = field else {
                    return Value::Nil;
                };
                let values: Vec<Value> = spans.iter().map(|&i| self.field(field, i)).collect();
                aggregate(*agg, &values)
            }
        }
    }
}

/// Aggregates numeric values of one kind: durations stay durations, ints stay ints under
/// `sum`/`min`/`max`, averages of ints are floats; values of another kind than the first
/// numeric one (and non-numbers) are skipped. Nil when nothing is left.
fn aggregate(agg: Aggregate, values: &[Value]) -> Value {
    #[derive(PartialEq)]
    enum K {
        Dur,
        Num,
    }
    let kind = values.iter().find_map(|v| match v {
        Value::Duration(_) => Some(K::Dur),
        Value::Int(_) | Value::Float(_) => Some(K::Num),
        _ => None,
    });
    let Some(kind) = kind else {
        return Value::Nil;
    };
    let nums: Vec<&Value> = values
        .iter()
        .filter(|v| match kind {
            K::Dur => matches!(v, Value::Duration(_)),
            K::Num => matches!(v, Value::Int(_) | Value::Float(_)),
        })
        .collect();
    let all_int = nums
        .iter()
        .all(|v| matches!(v, Value::Int(_) | Value::Duration(_)));
    let wrap = |x: f64| match kind {
        K::Dur => duration_from_f64(x),
        K::Num => Value::Float(x),
    };
    let fs = nums.iter().filter_map(|v| v.as_f64());
    match agg {
        Aggregate::Count => Value::Int(i64::try_from(nums.len()).unwrap_or(i64::MAX)),
        Aggregate::Min | Aggregate::Max => {
            let mut best: Option<&Value> = None;
            for &v in &nums {
                let better = best.is_none_or(|b| {
                    let o = v.compare(b);
                    if agg == Aggregate::Min {
                        o == Some(std::cmp::Ordering::Less)
                    } else {
                        o == Some(std::cmp::Ordering::Greater)
                    }
                });
                if better {
                    best = Some(v);
                }
            }
            best.cloned().unwrap_or(Value::Nil)
        }
        Aggregate::Sum if all_int => {
            let mut total: i64 = 0;
            for v in &nums {
                if let Value::Int(x) | Value::Duration(x) = v {
                    match total.checked_add(*x) {
                        Some(t) => total = t,
                        None => return wrap(fs.sum()),
                    }
                }
            }
            if kind == K::Dur {
                Value::Duration(total)
            } else {
                Value::Int(total)
            }
        }
        Aggregate::Sum => wrap(fs.sum()),
        Aggregate::Avg => wrap(fs.sum::<f64>() / nums.len() as f64),
    }
}

fn compare(op: CompareOp, l: &Value, r: &Value) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CompareOp::Eq => l.equals(r) == Some(true),
        CompareOp::Neq => l.equals(r) == Some(false),
        CompareOp::Lt => l.compare(r) == Some(Less),
        CompareOp::Lte => matches!(l.compare(r), Some(Less | Equal)),
        CompareOp::Gt => l.compare(r) == Some(Greater),
        CompareOp::Gte => matches!(l.compare(r), Some(Greater | Equal)),
    }
}

fn eval_pipeline(p: &Pipeline, ctx: &Ctx<'_>, mut sets: Vec<Set>) -> Vec<Set> {
    for stage in &p.stages {
        sets = match stage {
            Stage::Spanset(e) => sets
                .into_iter()
                .filter_map(|mut set| {
                    set.spans = ctx.spanset(e, &set.spans);
                    (!set.spans.is_empty()).then_some(set)
                })
                .collect(),
            Stage::Scalar(f) => sets
                .into_iter()
                .filter_map(|mut set| {
                    let l = ctx.scalar(&f.lhs, &set.spans);
                    let r = ctx.scalar(&f.rhs, &set.spans);
                    compare(f.op, &l, &r).then(|| {
                        set.scalar = Some(l);
                        set
                    })
                })
                .collect(),
            Stage::By(fields) => sets
                .into_iter()
                .flat_map(|set| group_by(ctx, fields, set))
                .collect(),
            Stage::Select(fields) => sets
                .into_iter()
                .map(|mut set| {
                    set.selects.extend(fields.iter().cloned());
                    set
                })
                .collect(),
        };
        if sets.is_empty() {
            break;
        }
    }
    sets
}

/// Splits a spanset by the values of `fields`, groups in order of first appearance; spans
/// without a value form the nil group, as in Tempo.
fn group_by(ctx: &Ctx<'_>, fields: &[FieldExpr], set: Set) -> Vec<Set> {
    let mut groups: Vec<(Vec<Value>, Vec<usize>)> = Vec::new();
    for &i in &set.spans {
        let key: Vec<Value> = fields.iter().map(|f| ctx.field(f, i)).collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, spans)) => spans.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups
        .into_iter()
        .map(|(key, spans)| {
            let mut group = set.group.clone();
            group.extend(fields.iter().map(|f| f.to_string()).zip(key));
            Set {
                spans,
                group,
                scalar: None,
                selects: set.selects.clone(),
            }
        })
        .collect()
}

/// Merges two sorted index lists.
fn union(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}
