//! What every trace a query matches must contain, so a search can skip block pages whose
//! summaries rule it out.
//!
//! [`needs`] reads a parsed [`Query`] and returns [`Need`]s, each a fact about *some* span
//! of the trace (a service name, a span name, a kind, a status, a string value of an
//! `http.`/`db.`/`rpc.` span attribute, a bound on a span duration) or an [`Need::Any`] of
//! such facts. The contract:
//!
//! > For every trace `t` with `evaluate(query, t)` non-empty, every returned `Need` holds
//! > on `t`.
//!
//! Nothing is promised the other way: a trace satisfying every need may still not match,
//! and an empty list means "no pruning possible". Soundness beats precision throughout;
//! where a construct is not understood exactly, it contributes nothing. The derivation
//! follows [`eval`](super::eval)'s semantics, not Tempo's documentation, because pages
//! pruned here are never evaluated.
//!
//! What is derived, in terms of the evaluator's semantics:
//! - in a filter, `&&` contributes both sides; `||` contributes an `Any` only when each
//!   side reduces to exactly one need (an `Any` of conjunctions is not a need), else
//!   nothing; `!` is pushed inward (`!(status != error)` needs an error span), which is
//!   exact only for fields that are never nil and always of the literal's type (`name`,
//!   `status`, `kind`, `duration`, `traceDuration`); attributes may be missing, which
//!   makes both `= x` and `!= x` false, so a negated attribute comparison gives nothing;
//! - `name = "x"` and `rootName = "x"` give [`Need::Name`]; `resource.service.name = "x"`
//!   and `rootServiceName = "x"` give [`Need::Service`]; `span.<k> = "x"` for a `k` under
//!   [`SUMMARIZED_SPAN_ATTR_PREFIXES`] gives [`Need::SpanAttr`]. Unscoped attributes
//!   (`.service.name`, `.http.method`) give nothing: they fall back from the span to the
//!   resource, and only resource `service.name` and span `http.`-like keys are summarized;
//! - `status`/`kind` `=` give the value, `!=` an `Any` of the other values;
//! - `duration` against a duration literal gives bounds (`> d` is `>= d + 1ns`, `= d` is
//!   both bounds, `!= d` an `Any` of the two sides); against an int or float literal the
//!   comparison is always false in the evaluator, and nothing is derived;
//!   `traceDuration <= d` bounds every span's duration, so it gives [`Need::MaxDuration`];
//!   a lower bound on `traceDuration` gives nothing;
//! - regexes, `nil` checks, arithmetic, `statusMessage`, ids and bare boolean attributes
//!   give nothing;
//! - between spansets, `&&` and every structural relation whose result needs both sides
//!   (`>`, `&>` and their kin) contribute both sides; the negated forms (`!>`, `!<<`, ...)
//!   return right-hand spans *lacking* the relation, which an empty left-hand side
//!   satisfies, so only the right-hand side contributes; `||` is handled as in filters;
//! - every stage of a pipeline (parenthesized ones too) must leave a spanset, so each
//!   spanset stage contributes; `min(duration)` and `max(duration)` against a duration
//!   literal are the duration of a span of the spanset and contribute bounds; `count()`,
//!   `avg`, `sum`, `by` and `select` contribute nothing.
//!
//! The result is tidied: duplicates are removed, only the largest `MinDuration` and the
//! smallest `MaxDuration` are kept, and an `Any` already implied by another need is dropped.

use super::ast::{
    Aggregate, Attribute, CompareOp, FieldExpr, Intrinsic, Pipeline, Query, ScalarExpr,
    ScalarFilter, Scope, SpansetExpr, SpansetOp, Stage, StructuralMode,
};
use super::value::{Kind, Status, Value};

/// Span attribute key prefixes whose string values page summaries keep, and for which
/// [`Need::SpanAttr`] is derived.
pub const SUMMARIZED_SPAN_ATTR_PREFIXES: [&str; 3] = ["http.", "db.", "rpc."];

/// Something some span of every matching trace has.
///
/// Each variant but [`Need::Any`] holds on a trace when at least one of its spans has the
/// property; the spans need not be the same for two needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Need {
    /// The resource attribute `service.name` is the string `.0`.
    Service(String),
    /// The span name is `.0`.
    Name(String),
    /// The span attribute `.0` (any key; page summaries hold those under
    /// [`SUMMARIZED_SPAN_ATTR_PREFIXES`], attribute columns all) is the
    /// string `.1`.
    SpanAttr(String, String),
    /// The span duration is at least `ns` nanoseconds.
    MinDuration { ns: u64 },
    /// The span duration is at most `ns` nanoseconds.
    MaxDuration { ns: u64 },
    /// The span status is this one.
    Status(Status),
    /// The span kind is this one.
    Kind(Kind),
    /// At least one of these holds (each on the whole trace); never nested, never fewer
    /// than two.
    Any(Vec<Need>),
}

/// Returns what every trace `query` matches must contain; empty when nothing is known.
///
/// Every need in the result holds on every trace for which
/// [`evaluate`](super::eval::evaluate) returns a non-empty result.
pub fn needs(query: &Query) -> Vec<Need> {
    tidy(pipeline_needs(&query.pipeline))
}

// ---- spansets and pipelines ------------------------------------------------------------

/// Needs that hold when the pipeline leaves at least one spanset. Every spanset reaching a
/// stage is non-empty (the first holds the whole, non-empty trace; spanset stages drop
/// empty results; `by` groups are non-empty), and a stage emits nothing for no input, so
/// every stage must have produced something.
fn pipeline_needs(p: &Pipeline) -> Vec<Need> {
    let mut out = Vec::new();
    for stage in &p.stages {
        match stage {
            Stage::Spanset(e) => out.extend(spanset_needs(e)),
            Stage::Scalar(f) => out.extend(scalar_needs(f)),
            Stage::By(_) | Stage::Select(_) => {}
        }
    }
    out
}

/// Needs that hold when `e` selects at least one span.
fn spanset_needs(e: &SpansetExpr) -> Vec<Need> {
    match e {
        SpansetExpr::Filter(f) => when_true(f),
        SpansetExpr::Pipeline(p) => pipeline_needs(p),
        SpansetExpr::Binary { op, lhs, rhs } => match op {
            // `&&` is empty unless both sides are not. A plain structural result is
            // right-hand spans related to some left-hand span; a union one is empty
            // unless that set is non-empty.
            SpansetOp::And
            | SpansetOp::Structural(_, StructuralMode::Plain | StructuralMode::Union) => {
                let mut out = spanset_needs(lhs);
                out.extend(spanset_needs(rhs));
                out
            }
            SpansetOp::Or => either(spanset_needs(lhs), spanset_needs(rhs)),
            // Right-hand spans without the relation: all of them when the left is empty.
            SpansetOp::Structural(_, StructuralMode::Not) => spanset_needs(rhs),
        },
    }
}

/// Needs that hold when a scalar filter keeps a (non-empty) spanset.
fn scalar_needs(f: &ScalarFilter) -> Vec<Need> {
    let is_extreme_duration = |e: &ScalarExpr| {
        matches!(
            e,
            ScalarExpr::Aggregate(
                Aggregate::Min | Aggregate::Max,
                Some(FieldExpr::Intrinsic(Intrinsic::Duration))
            )
        )
    };
    // min/max of durations pick one span's duration, so the bound holds for that span.
    match (&f.lhs, &f.rhs) {
        (agg, ScalarExpr::Static(Value::Duration(d))) if is_extreme_duration(agg) => {
            duration_needs(f.op, *d)
        }
        (ScalarExpr::Static(Value::Duration(d)), agg) if is_extreme_duration(agg) => {
            duration_needs(flip(f.op), *d)
        }
        _ => Vec::new(),
    }
}

// ---- field expressions -----------------------------------------------------------------

/// Needs that hold on a trace having a span for which `e` is `true`.
fn when_true(e: &FieldExpr) -> Vec<Need> {
    match e {
        FieldExpr::Compare { op, lhs, rhs } => match oriented(*op, lhs, rhs) {
            Some((field, op, lit)) => comparison_needs(field, op, lit),
            None => Vec::new(),
        },
        FieldExpr::And(l, r) => {
            let mut out = when_true(l);
            out.extend(when_true(r));
            out
        }
        FieldExpr::Or(l, r) => either(when_true(l), when_true(r)),
        // `!x` is true only when `x` is `false`, so certainly not `true`.
        FieldExpr::Not(x) => when_not_true(x),
        FieldExpr::Static(_)
        | FieldExpr::Intrinsic(_)
        | FieldExpr::Attribute(_)
        | FieldExpr::Regex { .. }
        | FieldExpr::Arith { .. }
        | FieldExpr::Neg(_) => Vec::new(),
    }
}

/// Needs that hold on a trace having a span for which `e` is anything but `true` (`false`,
/// nil, or a non-boolean).
fn when_not_true(e: &FieldExpr) -> Vec<Need> {
    match e {
        // A comparison is always a boolean; it is false exactly when the complementary
        // one is true only if both sides always compare (the field is never nil and has
        // the literal's type).
        FieldExpr::Compare { op, lhs, rhs } => match oriented(*op, lhs, rhs) {
            Some((field, op, lit)) if always_comparable(field, op, lit) => {
                comparison_needs(field, complement(op), lit)
            }
            _ => Vec::new(),
        },
        FieldExpr::And(l, r) => either(when_not_true(l), when_not_true(r)),
        FieldExpr::Or(l, r) => {
            let mut out = when_not_true(l);
            out.extend(when_not_true(r));
            out
        }
        // `!x` is not true when `x` is true or not a boolean; the latter cannot happen for
        // an `x` that is always a boolean.
        FieldExpr::Not(x) if always_bool(x) => when_true(x),
        _ => Vec::new(),
    }
}

/// Returns whether `e` evaluates to a boolean on every span.
fn always_bool(e: &FieldExpr) -> bool {
    match e {
        FieldExpr::Static(v) => matches!(v, Value::Bool(_)),
        FieldExpr::Compare { .. }
        | FieldExpr::Regex { .. }
        | FieldExpr::And(..)
        | FieldExpr::Or(..) => true,
        FieldExpr::Not(x) => always_bool(x),
        FieldExpr::Intrinsic(_)
        | FieldExpr::Attribute(_)
        | FieldExpr::Arith { .. }
        | FieldExpr::Neg(_) => false,
    }
}

/// Puts a comparison between a field and a non-nil literal as `field op literal`. `None`
/// for anything else, including `x = nil` / `x != nil`, which the evaluator treats apart.
fn oriented<'a>(
    op: CompareOp,
    lhs: &'a FieldExpr,
    rhs: &'a FieldExpr,
) -> Option<(&'a FieldExpr, CompareOp, &'a Value)> {
    let is_field = |e: &FieldExpr| matches!(e, FieldExpr::Intrinsic(_) | FieldExpr::Attribute(_));
    match (lhs, rhs) {
        (_, FieldExpr::Static(Value::Nil)) | (FieldExpr::Static(Value::Nil), _) => None,
        (f, FieldExpr::Static(v)) if is_field(f) => Some((f, op, v)),
        (FieldExpr::Static(v), f) if is_field(f) => Some((f, flip(op), v)),
        _ => None,
    }
}

/// Returns whether `field op lit` is decided (never a type mismatch or nil) on every span,
/// so that it being false means `field complement(op) lit` is true.
fn always_comparable(field: &FieldExpr, op: CompareOp, lit: &Value) -> bool {
    let equality = matches!(op, CompareOp::Eq | CompareOp::Neq);
    match (field, lit) {
        (FieldExpr::Intrinsic(Intrinsic::Name | Intrinsic::StatusMessage), Value::String(_))
        | (
            FieldExpr::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration),
            Value::Duration(_),
        ) => true,
        // Statuses and kinds are equal or not, but have no order.
        (FieldExpr::Intrinsic(Intrinsic::Status), Value::Status(_))
        | (FieldExpr::Intrinsic(Intrinsic::Kind), Value::Kind(_)) => equality,
        _ => false,
    }
}

/// Needs that hold on a trace having a span for which `field op lit` is true.
fn comparison_needs(field: &FieldExpr, op: CompareOp, lit: &Value) -> Vec<Need> {
    use CompareOp::{Eq, Neq};
    match (field, op, lit) {
        // The root span's name or service is that of a span of the trace.
        (FieldExpr::Intrinsic(Intrinsic::Name | Intrinsic::RootName), Eq, Value::String(s)) => {
            vec![Need::Name(s.clone())]
        }
        (FieldExpr::Intrinsic(Intrinsic::RootServiceName), Eq, Value::String(s)) => {
            vec![Need::Service(s.clone())]
        }
        (FieldExpr::Attribute(Attribute { scope, name }), Eq, Value::String(s)) => match scope {
            Scope::Resource if name == "service.name" => vec![Need::Service(s.clone())],
            Scope::Span if is_summarized_span_attr(name) => {
                vec![Need::SpanAttr(name.clone(), s.clone())]
            }
            _ => Vec::new(),
        },
        (FieldExpr::Intrinsic(Intrinsic::Status), Eq, Value::Status(s)) => {
            vec![Need::Status(*s)]
        }
        (FieldExpr::Intrinsic(Intrinsic::Status), Neq, Value::Status(s)) => any_of(
            ALL_STATUSES
                .iter()
                .filter(|x| *x != s)
                .map(|x| Need::Status(*x))
                .collect(),
        ),
        (FieldExpr::Intrinsic(Intrinsic::Kind), Eq, Value::Kind(k)) => vec![Need::Kind(*k)],
        (FieldExpr::Intrinsic(Intrinsic::Kind), Neq, Value::Kind(k)) => any_of(
            ALL_KINDS
                .iter()
                .filter(|x| *x != k)
                .map(|x| Need::Kind(*x))
                .collect(),
        ),
        (FieldExpr::Intrinsic(Intrinsic::Duration), op, Value::Duration(d)) => {
            duration_needs(op, *d)
        }
        // Every span lasts at most as long as its trace: only upper bounds carry over.
        (FieldExpr::Intrinsic(Intrinsic::TraceDuration), op, Value::Duration(d)) => {
            duration_needs(op, *d)
                .into_iter()
                .filter(|n| matches!(n, Need::MaxDuration { .. }))
                .collect()
        }
        _ => Vec::new(),
    }
}

const ALL_STATUSES: [Status; 3] = [Status::Unset, Status::Ok, Status::Error];

const ALL_KINDS: [Kind; 6] = [
    Kind::Unspecified,
    Kind::Internal,
    Kind::Server,
    Kind::Client,
    Kind::Producer,
    Kind::Consumer,
];

/// Every span attribute with a string value is in a block's attribute columns, which a
/// search checks row by row; page summaries list only the keys under
/// [`SUMMARIZED_SPAN_ATTR_PREFIXES`] (a page check passes for the others).
fn is_summarized_span_attr(_key: &str) -> bool {
    true
}

/// Needs of a span whose duration (`0..=i64::MAX` ns) satisfies `duration op d`; nothing
/// when no duration does (the query cannot match) or every one does.
fn duration_needs(op: CompareOp, d: i64) -> Vec<Need> {
    let ns = |x: i64| u64::try_from(x).ok();
    let min = |lo: Option<i64>| match lo.and_then(ns) {
        Some(lo) if lo > 0 => vec![Need::MinDuration { ns: lo }],
        _ => Vec::new(),
    };
    let max = |hi: Option<i64>| match hi.and_then(ns) {
        Some(hi) => vec![Need::MaxDuration { ns: hi }],
        None => Vec::new(),
    };
    match op {
        CompareOp::Gt => min(d.checked_add(1)),
        CompareOp::Gte => min(Some(d)),
        CompareOp::Lt => max(d.checked_sub(1)),
        CompareOp::Lte => max(Some(d)),
        CompareOp::Eq if d >= 0 => {
            let mut out = min(Some(d));
            out.extend(max(Some(d)));
            out
        }
        CompareOp::Eq => Vec::new(),
        // Above or below `d`; nothing lies below 0 or above `i64::MAX`.
        CompareOp::Neq if d > 0 => match (d.checked_add(1).and_then(ns), ns(d - 1)) {
            (Some(up), Some(down)) => any_of(vec![
                Need::MinDuration { ns: up },
                Need::MaxDuration { ns: down },
            ]),
            _ => max(Some(d - 1)),
        },
        CompareOp::Neq if d == 0 => min(Some(1)),
        CompareOp::Neq => Vec::new(),
    }
}

/// The operator with its sides swapped: `a op b` is `b flip(op) a`.
fn flip(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::Lte => CompareOp::Gte,
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::Gte => CompareOp::Lte,
        CompareOp::Eq | CompareOp::Neq => op,
    }
}

/// The operator true exactly when `op` is false, for operands that compare.
fn complement(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Eq => CompareOp::Neq,
        CompareOp::Neq => CompareOp::Eq,
        CompareOp::Lt => CompareOp::Gte,
        CompareOp::Lte => CompareOp::Gt,
        CompareOp::Gt => CompareOp::Lte,
        CompareOp::Gte => CompareOp::Lt,
    }
}

// ---- combining needs -------------------------------------------------------------------

/// Needs that hold when either side's needs hold: an `Any` when each side comes down to a
/// single need, else nothing.
fn either(lhs: Vec<Need>, rhs: Vec<Need>) -> Vec<Need> {
    let (mut lhs, mut rhs) = (tidy(lhs), tidy(rhs));
    if lhs.len() != 1 || rhs.len() != 1 {
        return Vec::new();
    }
    let (Some(l), Some(r)) = (lhs.pop(), rhs.pop()) else {
        return Vec::new();
    };
    any_of(vec![l, r])
}

/// One need that holds when any of `alts` does, flattened and without members implied by
/// other members; a lone member stands for itself. Empty input gives nothing.
fn any_of(alts: Vec<Need>) -> Vec<Need> {
    let mut flat: Vec<Need> = Vec::new();
    for n in alts {
        let members = match n {
            Need::Any(inner) => inner,
            n => vec![n],
        };
        for m in members {
            if !flat.contains(&m) {
                flat.push(m);
            }
        }
    }
    // A member implying another adds nothing to the disjunction.
    let keep: Vec<bool> = flat
        .iter()
        .enumerate()
        .map(|(i, a)| {
            !flat
                .iter()
                .enumerate()
                .any(|(j, b)| i != j && implies(a, b))
        })
        .collect();
    let mut kept: Vec<Need> = flat
        .into_iter()
        .zip(keep)
        .filter_map(|(n, k)| k.then_some(n))
        .collect();
    match kept.len() {
        0 => Vec::new(),
        1 => kept.pop().into_iter().collect(),
        _ => vec![Need::Any(kept)],
    }
}

/// Returns whether `a` holding on a trace means `b` does, for distinct simple needs (used
/// on deduplicated lists, so equal needs are not treated as implying each other).
fn implies(a: &Need, b: &Need) -> bool {
    match (a, b) {
        (Need::MinDuration { ns: x }, Need::MinDuration { ns: y }) => x > y,
        (Need::MaxDuration { ns: x }, Need::MaxDuration { ns: y }) => x < y,
        (a, Need::Any(members)) if !matches!(a, Need::Any(_)) => members.contains(a),
        _ => false,
    }
}

/// Deduplicates a conjunction of needs, keeps the strongest duration bounds and drops
/// alternatives already implied by another need.
fn tidy(needs: Vec<Need>) -> Vec<Need> {
    let mut flat: Vec<Need> = Vec::new();
    for n in needs {
        if !flat.contains(&n) {
            flat.push(n);
        }
    }
    let implied_by_other = |b: &Need| {
        flat.iter().any(|a| {
            a != b
                && (implies(a, b) || matches!(b, Need::Any(ms) if ms.iter().any(|m| implies(a, m))))
        })
    };
    let keep: Vec<bool> = flat.iter().map(|b| !implied_by_other(b)).collect();
    flat.into_iter()
        .zip(keep)
        .filter_map(|(n, k)| k.then_some(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traceql::model::{Span, Trace};
    use crate::traceql::{evaluate, parse};

    const MS: u64 = 1_000_000;

    fn q(src: &str) -> Query {
        parse(src).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    fn of(src: &str) -> Vec<Need> {
        needs(&q(src))
    }

    fn name(s: &str) -> Need {
        Need::Name(s.to_string())
    }

    fn service(s: &str) -> Need {
        Need::Service(s.to_string())
    }

    fn span_attr(k: &str, v: &str) -> Need {
        Need::SpanAttr(k.to_string(), v.to_string())
    }

    fn min_ms(ms: u64, plus_ns: u64) -> Need {
        Need::MinDuration {
            ns: ms * MS + plus_ns,
        }
    }

    fn max_ns(ns: u64) -> Need {
        Need::MaxDuration { ns }
    }

    fn kinds_but(k: Kind) -> Need {
        Need::Any(
            ALL_KINDS
                .iter()
                .filter(|x| **x != k)
                .map(|x| Need::Kind(*x))
                .collect(),
        )
    }

    // ---- expected needs --------------------------------------------------------------

    #[test]
    fn empty_and_trivial_filters_need_nothing() {
        for src in [
            "{ }",
            "{ true }",
            "{ false }",
            "{ } | count() > 0",
            "{ } | by(resource.service.name) | select(span.http.url)",
            "{ statusMessage = \"boom\" }",
            "{ span:id = \"0000000000000001\" }",
            "{ span.retry }",
            "{ !span.retry }",
            "{ !(!span.retry) }",
            "{ span.http.status_code = 500 }",
            "{ span.http.status_code + 1 = 501 }",
        ] {
            assert_eq!(of(src), [], "{src}");
        }
    }

    #[test]
    fn scoped_equalities_give_needs() {
        assert_eq!(
            of("{ resource.service.name = \"frontend\" }"),
            [service("frontend")]
        );
        assert_eq!(
            of("{ span.http.method = \"GET\" }"),
            [span_attr("http.method", "GET")]
        );
        assert_eq!(
            of("{ span.db.system = \"postgresql\" && span.rpc.method = \"Get\" }"),
            [
                span_attr("db.system", "postgresql"),
                span_attr("rpc.method", "Get")
            ]
        );
        assert_eq!(of("{ name = \"SELECT\" }"), [name("SELECT")]);
        assert_eq!(of("{ \"SELECT\" = name }"), [name("SELECT")]);
        assert_eq!(
            of("{ \"GET\" = span.http.method }"),
            [span_attr("http.method", "GET")]
        );
        assert_eq!(of("{ status = error }"), [Need::Status(Status::Error)]);
        assert_eq!(of("{ kind = client }"), [Need::Kind(Kind::Client)]);
        assert_eq!(
            of(
                "{ resource.service.name = \"a\" && span.http.method = \"GET\" && status = error && kind = server }"
            ),
            [
                service("a"),
                span_attr("http.method", "GET"),
                Need::Status(Status::Error),
                Need::Kind(Kind::Server)
            ]
        );
    }

    #[test]
    fn any_span_scoped_string_equality_is_a_need() {
        for (src, key, value) in [
            (
                "{ span.service.name = \"frontend\" }",
                "service.name",
                "frontend",
            ),
            ("{ span.peer.service = \"x\" }", "peer.service", "x"),
            ("{ span.httpx = \"x\" }", "httpx", "x"),
        ] {
            assert_eq!(of(src), [Need::SpanAttr(key.into(), value.into())], "{src}");
        }
    }

    #[test]
    fn unsummarized_or_ambiguous_attributes_give_nothing() {
        for src in [
            // Unscoped: the span attribute first, then the resource's.
            "{ .service.name = \"frontend\" }",
            "{ .http.method = \"GET\" }",
            // Resource attributes other than service.name are not summarized.
            "{ resource.http.method = \"GET\" }",
            "{ resource.deployment.environment = \"production\" }",
            // nil checks.
            "{ span.http.method = nil }",
            "{ span.http.method != nil }",
            "{ resource.service.name != nil }",
        ] {
            assert_eq!(of(src), [], "{src}");
        }
    }

    #[test]
    fn inequalities_regexes_and_negations() {
        for src in [
            "{ span.http.method != \"GET\" }",
            "{ resource.service.name != \"a\" }",
            "{ name != \"a\" }",
            "{ name > \"a\" }",
            "{ name =~ \"SELECT\" }",
            "{ name !~ \"SELECT\" }",
            "{ resource.service.name =~ \"front.*\" }",
            "{ !(name = \"a\") }",
            "{ !(name =~ \"a\") }",
            // Missing attributes make both `=` and `!=` false.
            "{ !(span.http.method != \"GET\") }",
            "{ !(resource.service.name != \"a\") }",
            "{ !(name = \"a\" && kind = server) }",
            "{ status < error }",
            "{ !(status < error) }",
        ] {
            assert_eq!(of(src), [], "{src}");
        }
        // `name`, `status`, `kind` and `duration` are never nil, so negations are exact.
        assert_eq!(of("{ !(name != \"a\") }"), [name("a")]);
        assert_eq!(of("{ !!(name = \"a\") }"), [name("a")]);
        assert_eq!(of("{ !(status != error) }"), [Need::Status(Status::Error)]);
        assert_eq!(
            of("{ status != error }"),
            [Need::Any(vec![
                Need::Status(Status::Unset),
                Need::Status(Status::Ok)
            ])]
        );
        assert_eq!(of("{ kind != server }"), [kinds_but(Kind::Server)]);
        assert_eq!(
            of("{ !(status = error || kind = server) }"),
            [
                Need::Any(vec![Need::Status(Status::Unset), Need::Status(Status::Ok)]),
                kinds_but(Kind::Server)
            ]
        );
        assert_eq!(
            of("{ !(name != \"a\" && duration <= 1s) }"),
            [Need::Any(vec![name("a"), min_ms(1000, 1)])]
        );
        assert_eq!(of("{ !(duration > 1s) }"), [max_ns(1000 * MS)]);
    }

    #[test]
    fn durations() {
        assert_eq!(of("{ duration > 100ms }"), [min_ms(100, 1)]);
        assert_eq!(of("{ duration >= 100ms }"), [min_ms(100, 0)]);
        assert_eq!(of("{ duration < 100ms }"), [max_ns(100 * MS - 1)]);
        assert_eq!(of("{ duration <= 100ms }"), [max_ns(100 * MS)]);
        assert_eq!(of("{ 100ms < duration }"), [min_ms(100, 1)]);
        assert_eq!(of("{ 100ms >= duration }"), [max_ns(100 * MS)]);
        assert_eq!(of("{ duration = 5ms }"), [min_ms(5, 0), max_ns(5 * MS)]);
        assert_eq!(
            of("{ duration != 5ms }"),
            [Need::Any(vec![min_ms(5, 1), max_ns(5 * MS - 1)])]
        );
        assert_eq!(of("{ duration != 0ms }"), [min_ms(0, 1)]);
        assert_eq!(
            of("{ duration >= 100ms && duration < 2s }"),
            [min_ms(100, 0), max_ns(2000 * MS - 1)]
        );
        // The strongest bounds stand for the weaker ones.
        assert_eq!(
            of("{ duration > 1s } && { duration > 2s } && { duration < 5s } && { duration < 3s }"),
            [min_ms(2000, 1), max_ns(3000 * MS - 1)]
        );
        // Ints and floats never compare with durations; bounds below zero say nothing.
        for src in [
            "{ duration > 100 }",
            "{ duration < 1.5 }",
            "{ duration = 100000000 }",
            "{ duration >= 0ms }",
            "{ duration > -1ms }",
            "{ duration < 0ms }",
            "{ duration != -1ms }",
            "{ duration != nil }",
            "{ duration * 2 > 1s }",
        ] {
            assert_eq!(of(src), [], "{src}");
        }
    }

    #[test]
    fn trace_level_intrinsics() {
        assert_eq!(of("{ rootName = \"GET /\" }"), [name("GET /")]);
        assert_eq!(of("{ rootServiceName = \"api\" }"), [service("api")]);
        assert_eq!(of("{ traceDuration < 1s }"), [max_ns(1000 * MS - 1)]);
        assert_eq!(of("{ traceDuration = 1s }"), [max_ns(1000 * MS)]);
        assert_eq!(of("{ traceDuration > 1s }"), []);
        assert_eq!(of("{ traceDuration != 1s }"), []);
        assert_eq!(of("{ rootName != \"GET /\" }"), []);
        assert_eq!(of("{ !(rootName != \"GET /\") }"), []);
    }

    #[test]
    fn disjunctions_need_single_needs_on_both_sides() {
        assert_eq!(
            of("{ name = \"a\" || name = \"b\" }"),
            [Need::Any(vec![name("a"), name("b")])]
        );
        assert_eq!(
            of("{ name = \"a\" } || { name = \"b\" } || { kind = client }"),
            [Need::Any(vec![
                name("a"),
                name("b"),
                Need::Kind(Kind::Client)
            ])]
        );
        assert_eq!(
            of("{ status = error || kind = server }"),
            [Need::Any(vec![
                Need::Status(Status::Error),
                Need::Kind(Kind::Server)
            ])]
        );
        assert_eq!(of("{ name = \"a\" || name = \"a\" }"), [name("a")]);
        assert_eq!(of("{ duration > 1s || duration > 2s }"), [min_ms(1000, 1)]);
        for src in [
            "{ (name = \"a\" && kind = server) || name = \"b\" }",
            "{ name = \"a\" && kind = server } || { name = \"b\" }",
            "{ name = \"a\" } || { }",
            "{ name = \"a\" || .service.name = \"x\" }",
            "{ name = \"a\" || span.http.method != \"GET\" }",
            "{ name = \"a\" } || ({ name = \"b\" } > { kind = client })",
        ] {
            assert_eq!(of(src), [], "{src}");
        }
        // A disjunction implied by a conjunct is dropped.
        assert_eq!(
            of("{ name = \"a\" } && { name = \"a\" || name = \"b\" }"),
            [name("a")]
        );
    }

    #[test]
    fn spanset_operators() {
        let both = [name("a"), Need::Kind(Kind::Client)];
        for op in [
            "&&", ">", "<", ">>", "<<", "~", "&>", "&<", "&>>", "&<<", "&~",
        ] {
            let src = format!("{{ name = \"a\" }} {op} {{ kind = client }}");
            assert_eq!(of(&src), both, "{src}");
        }
        // Negated relations: the right-hand spans without the relation, which an empty
        // left-hand side leaves all of.
        for op in ["!>", "!<", "!>>", "!<<", "!~"] {
            let src = format!("{{ name = \"a\" }} {op} {{ kind = client }}");
            assert_eq!(of(&src), [Need::Kind(Kind::Client)], "{src}");
            let src = format!("{{ kind = client }} {op} {{ }}");
            assert_eq!(of(&src), [], "{src}");
        }
        assert_eq!(
            of("{ resource.service.name = \"a\" } > { } > { status = error }"),
            [service("a"), Need::Status(Status::Error)]
        );
        assert_eq!(
            of("({ name = \"a\" } || { name = \"b\" }) >> { kind = server }"),
            [
                Need::Any(vec![name("a"), name("b")]),
                Need::Kind(Kind::Server)
            ]
        );
    }

    #[test]
    fn pipelines() {
        assert_eq!(
            of(
                "{ resource.service.name = \"a\" } | { status = error } | count() > 0 | by(name) | select(span.http.url)"
            ),
            [service("a"), Need::Status(Status::Error)]
        );
        assert_eq!(
            of("({ name = \"a\" } | count() > 1) && { kind = server }"),
            [name("a"), Need::Kind(Kind::Server)]
        );
        assert_eq!(
            of("({ name = \"a\" } | count() > 1) !> { kind = server }"),
            [Need::Kind(Kind::Server)]
        );
        assert_eq!(of("{ } | max(duration) > 1s"), [min_ms(1000, 1)]);
        assert_eq!(of("{ } | min(duration) <= 5ms"), [max_ns(5 * MS)]);
        assert_eq!(of("{ } | 1s < max(duration)"), [min_ms(1000, 1)]);
        for src in [
            "{ } | avg(duration) > 1s",
            "{ } | sum(duration) < 1s",
            "{ } | count() < 1",
            "{ } | max(duration) > 100",
            "{ } | by(resource.service.name) | count() > 2",
        ] {
            assert_eq!(of(src), [], "{src}");
        }
    }

    // ---- soundness against the evaluator ---------------------------------------------

    fn id(n: u8) -> [u8; 8] {
        [0, 0, 0, 0, 0, 0, 0, n]
    }

    fn s(v: &str) -> Value {
        Value::String(v.to_string())
    }

    /// A span; `service` None leaves the resource without `service.name`.
    #[allow(clippy::too_many_arguments)]
    fn sp(
        n: u8,
        parent: Option<u8>,
        service: Option<&str>,
        name: &str,
        kind: Kind,
        status: Status,
        start_ms: u64,
        end_ms: u64,
    ) -> Span {
        Span {
            span_id: id(n),
            parent_span_id: parent.map(id),
            name: name.to_string(),
            kind,
            status,
            status_message: String::new(),
            start_ns: start_ms * MS,
            end_ns: end_ms * MS,
            attrs: Vec::new(),
            resource_attrs: service
                .map(|v| ("service.name".to_string(), s(v)))
                .into_iter()
                .collect(),
        }
    }

    fn attrs(mut span: Span, a: &[(&str, Value)]) -> Span {
        span.attrs
            .extend(a.iter().map(|(k, v)| (k.to_string(), v.clone())));
        span
    }

    fn res(mut span: Span, a: &[(&str, Value)]) -> Span {
        span.resource_attrs
            .extend(a.iter().map(|(k, v)| (k.to_string(), v.clone())));
        span
    }

    fn traces() -> Vec<(&'static str, Trace)> {
        use Kind::*;
        use Status::*;
        let shop = {
            let mut spans = vec![
                attrs(
                    sp(
                        1,
                        None,
                        Some("frontend"),
                        "GET /api/orders",
                        Server,
                        Unset,
                        0,
                        1000,
                    ),
                    &[
                        ("http.method", s("GET")),
                        ("http.status_code", Value::Int(500)),
                    ],
                ),
                attrs(
                    sp(
                        2,
                        Some(1),
                        Some("frontend"),
                        "HTTP POST",
                        Client,
                        Unset,
                        10,
                        900,
                    ),
                    &[("http.method", s("POST"))],
                ),
                attrs(
                    sp(
                        3,
                        Some(2),
                        Some("orders"),
                        "POST /orders",
                        Server,
                        Error,
                        20,
                        880,
                    ),
                    &[("http.status_code", Value::Int(500))],
                ),
                attrs(
                    sp(4, Some(3), Some("orders"), "SELECT", Client, Unset, 30, 130),
                    &[
                        ("db.system", s("postgresql")),
                        ("db.statement", s("select 1")),
                    ],
                ),
                attrs(
                    sp(
                        5,
                        Some(3),
                        Some("orders"),
                        "validate",
                        Internal,
                        Unset,
                        140,
                        150,
                    ),
                    &[("retry", Value::Bool(true))],
                ),
                attrs(
                    sp(
                        6,
                        Some(3),
                        Some("orders"),
                        "publish",
                        Producer,
                        Error,
                        160,
                        170,
                    ),
                    &[("rpc.method", s("Publish"))],
                ),
                sp(
                    7,
                    Some(6),
                    Some("billing"),
                    "consume",
                    Consumer,
                    Ok,
                    200,
                    500,
                ),
                attrs(
                    sp(
                        8,
                        Some(1),
                        Some("frontend"),
                        "render",
                        Internal,
                        Unset,
                        905,
                        990,
                    ),
                    &[("service.name", s("span-level"))],
                ),
            ];
            spans[2].status_message = "boom".to_string();
            spans.swap(0, 6);
            Trace { spans }
        };
        let single = Trace {
            spans: vec![res(
                attrs(
                    sp(1, None, Some("auth"), "login", Server, Ok, 0, 5),
                    &[("http.method", s("PUT")), ("rpc.service", s("Auth"))],
                ),
                &[("deployment.environment", s("production"))],
            )],
        };
        // http.* on the resource and service.name on a span: unscoped lookups find values
        // no summarized field holds.
        let gateway_res: &[(&str, Value)] = &[("http.method", s("GET")), ("http.route", s("/x"))];
        let gateway = Trace {
            spans: vec![
                res(
                    attrs(
                        sp(1, None, Some("gateway"), "GET /x", Server, Unset, 0, 100),
                        &[("service.name", s("spoof"))],
                    ),
                    gateway_res,
                ),
                res(
                    attrs(
                        sp(2, Some(1), Some("gateway"), "call", Client, Unset, 10, 90),
                        &[("http.method", s("DELETE"))],
                    ),
                    gateway_res,
                ),
                attrs(
                    sp(3, Some(2), None, "anon", Internal, Unset, 20, 30),
                    &[("db.system", s("redis"))],
                ),
                {
                    let mut w = sp(4, Some(1), Some("worker"), "job", Consumer, Error, 40, 60);
                    w.status_message = "timeout".to_string();
                    w
                },
            ],
        };
        // No root: every subtree hangs off a span missing from the trace.
        let orphans = Trace {
            spans: vec![
                sp(
                    1,
                    Some(99),
                    Some("orders"),
                    "POST /orders",
                    Server,
                    Unset,
                    0,
                    200,
                ),
                attrs(
                    sp(2, Some(1), Some("orders"), "SELECT", Client, Ok, 10, 60),
                    &[("db.system", s("mysql"))],
                ),
                sp(
                    3,
                    Some(98),
                    Some("billing"),
                    "consume",
                    Consumer,
                    Error,
                    300,
                    1300,
                ),
                sp(
                    4,
                    Some(3),
                    Some("billing"),
                    "charge",
                    Internal,
                    Unset,
                    310,
                    320,
                ),
                attrs(
                    sp(
                        5,
                        Some(3),
                        Some("frontend"),
                        "HTTP POST",
                        Client,
                        Unset,
                        330,
                        340,
                    ),
                    &[("http.method", s("POST"))],
                ),
            ],
        };
        // Spans far apart: the trace lasts far longer than any span; a span ending before
        // it starts lasts 0.
        let gaps = Trace {
            spans: vec![
                sp(1, None, Some("cron"), "tick", Internal, Unset, 0, 1),
                sp(2, None, Some("cron"), "tick", Internal, Ok, 5000, 5001),
                sp(3, Some(2), Some("mail"), "send", Client, Unset, 5000, 5000),
                sp(
                    4,
                    Some(2),
                    Some("mail"),
                    "weird",
                    Unspecified,
                    Error,
                    5001,
                    5000,
                ),
            ],
        };
        let siblings = Trace {
            spans: vec![
                sp(1, None, Some("api"), "GET /items", Server, Unset, 0, 300),
                attrs(
                    sp(2, Some(1), Some("api"), "SELECT", Client, Ok, 10, 20),
                    &[("db.system", s("postgresql"))],
                ),
                attrs(
                    sp(3, Some(1), Some("api"), "SELECT", Client, Error, 20, 30),
                    &[
                        ("db.system", s("postgresql")),
                        ("http.method", Value::Int(1)),
                    ],
                ),
                attrs(
                    sp(4, Some(1), Some("cache"), "cache", Client, Unset, 30, 40),
                    &[("rpc.method", s("Get"))],
                ),
                sp(5, Some(1), Some("api"), "render", Internal, Unset, 40, 300),
                sp(
                    6,
                    Some(5),
                    Some("api"),
                    "template",
                    Unspecified,
                    Unset,
                    50,
                    150,
                ),
            ],
        };
        // Bounds met exactly: the shortest span lasts exactly 100ms.
        let exact = Trace {
            spans: vec![
                sp(1, None, Some("batch"), "run", Server, Unset, 0, 100),
                sp(2, Some(1), Some("batch"), "step", Internal, Unset, 50, 250),
            ],
        };
        vec![
            ("shop", shop),
            ("exact", exact),
            ("single", single),
            ("gateway", gateway),
            ("orphans", orphans),
            ("gaps", gaps),
            ("siblings", siblings),
        ]
    }

    /// Whether some span of `trace` has `need` (any alternative, for `Any`), read straight
    /// off the model, as a page summary would record it.
    fn holds(need: &Need, trace: &Trace) -> bool {
        let dur = |sp: &Span| u64::try_from(sp.duration_ns()).unwrap_or(0);
        let string =
            |v: Option<&Value>, want: &str| matches!(v, Some(Value::String(x)) if x == want);
        match need {
            Need::Any(alts) => alts.iter().any(|n| holds(n, trace)),
            _ => trace.spans.iter().any(|sp| match need {
                Need::Service(v) => string(sp.resource_attr("service.name"), v),
                Need::Name(v) => sp.name == *v,
                Need::SpanAttr(k, v) => string(sp.attr(k), v),
                Need::MinDuration { ns } => dur(sp) >= *ns,
                Need::MaxDuration { ns } => dur(sp) <= *ns,
                Need::Status(x) => sp.status == *x,
                Need::Kind(x) => sp.kind == *x,
                Need::Any(_) => unreachable!(),
            }),
        }
    }

    fn well_formed(need: &Need) -> bool {
        match need {
            Need::Any(alts) => alts.len() >= 2 && !alts.iter().any(|a| matches!(a, Need::Any(_))),
            Need::SpanAttr(k, _) => is_summarized_span_attr(k),
            _ => true,
        }
    }

    /// `(trace, need)` pairs where `src` matches `trace` but the need does not hold.
    fn violations(src: &str, derived: &[Need], traces: &[(&str, Trace)]) -> Vec<String> {
        let query = q(src);
        let mut out = Vec::new();
        for (label, trace) in traces {
            if evaluate(&query, trace).is_empty() {
                continue;
            }
            for n in derived.iter().filter(|n| !holds(n, trace)) {
                out.push(format!("{src}: matches {label} but {n:?} does not hold"));
            }
        }
        out
    }

    const ATOMS: &[&str] = &[
        "name = \"SELECT\"",
        "name != \"SELECT\"",
        "\"consume\" = name",
        "resource.service.name = \"orders\"",
        "resource.service.name != \"api\"",
        ".service.name = \"frontend\"",
        ".service.name = \"spoof\"",
        "span.service.name = \"span-level\"",
        "span.http.method = \"GET\"",
        "span.http.method != \"GET\"",
        ".http.method = \"GET\"",
        "span.db.system = \"postgresql\"",
        "span.db.system =~ \"post.*\"",
        "span.rpc.method !~ \"G.*\"",
        "span.http.method = nil",
        "span.http.method = 1",
        "status = error",
        "status != ok",
        "error = status",
        "kind = client",
        "kind != server",
        "duration > 100ms",
        "duration >= 100ms",
        "duration < 10ms",
        "duration < 100ms",
        "duration <= 100ms",
        "duration <= 1ms",
        "duration = 100ms",
        "duration != 1ms",
        "duration > 100",
        "500ms < duration",
        "traceDuration < 2s",
        "traceDuration >= 5s",
        "rootName = \"GET /items\"",
        "rootName != \"tick\"",
        "rootServiceName = \"orders\"",
        "statusMessage = \"boom\"",
        "span.retry",
        "true",
    ];

    const SPANSET_OPS: &[&str] = &[
        "&&", "||", ">", "<", ">>", "<<", "~", "!>", "!<", "!>>", "!<<", "!~", "&>", "&<", "&>>",
        "&<<", "&~",
    ];

    /// Hand-picked queries covering every construct, then generated combinations of
    /// [`ATOMS`] under every field and spanset operator.
    fn queries() -> Vec<String> {
        let mut out: Vec<String> = [
            "{ }",
            "{ false }",
            "{ resource.service.name = \"frontend\" }",
            "{ span.http.method = \"GET\" && status = error }",
            "{ span.http.method = \"GET\" || span.http.method = \"POST\" }",
            "{ .service.name = \"spoof\" }",
            "{ .http.method = \"GET\" }",
            "{ !(span.http.method != \"GET\") }",
            "{ !(name != \"SELECT\") }",
            "{ !(status != error) && kind = client }",
            "{ !(status = error || kind = server) }",
            "{ !!(name = \"tick\") }",
            "{ !(name != \"SELECT\" && duration <= 50ms) }",
            "{ !(duration > 10ms) }",
            "{ !(traceDuration > 2s) }",
            "{ duration > 100ms && duration < 900ms }",
            "{ duration = 0ms }",
            "{ duration != 0ms }",
            "{ duration > 0ms }",
            "{ duration >= 1s }",
            "{ 1ms >= duration }",
            "{ duration > 1.5 }",
            "{ traceDuration < 1001ms }",
            "{ traceDuration <= 1s }",
            "{ traceDuration = 5001ms }",
            "{ rootServiceName = \"frontend\" }",
            "{ rootName = \"tick\" } && { name = \"send\" }",
            "{ (name = \"SELECT\" && kind = client) || name = \"render\" }",
            "{ name = \"SELECT\" && kind = client } || { name = \"render\" }",
            "{ name = \"SELECT\" } || { name = \"render\" } || { kind = consumer }",
            "{ resource.service.name = \"frontend\" } > { } > { kind = client }",
            "{ status = error } !< { status = error }",
            "{ } !< { resource.service.name = \"orders\" }",
            "{ name = \"nope\" } !> { kind = client }",
            "{ name = \"nope\" } !~ { name = \"SELECT\" }",
            "{ status = error } &>> { status = ok }",
            "{ name = \"SELECT\" } &~ { kind = client }",
            "{ name = \"consume\" } &<< { kind = server }",
            "{ resource.service.name = \"orders\" } | { status = error } | count() > 0",
            "{ } | by(resource.service.name) | count() > 2",
            "{ } | by(resource.service.name) | { duration > 100ms } | select(span.http.method)",
            "({ name = \"SELECT\" } | count() > 1) && { kind = server }",
            "({ kind = client } | count() > 1) !> { }",
            "({ name = \"SELECT\" } | count() > 1) || { name = \"login\" }",
            "{ } | max(duration) > 900ms",
            "{ } | min(duration) <= 10ms",
            "{ } | 1s <= max(duration)",
            "{ kind = client } | min(duration) >= 10ms",
            "{ } | avg(duration) > 100ms",
            "{ } | sum(duration) > 1s",
            "{ } | sum(duration) < 1s",
            "{ !(duration < 100ms) }",
            "{ } | count() < 1",
            "{ \"GET\" = span.http.method }",
            "{ span.http.method = nil && kind = client }",
            "{ span.http.status_code = 500 }",
            "{ span.db.statement =~ \"select.*\" }",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for a in ATOMS {
            out.push(format!("{{ !({a}) }}"));
            out.push(format!("{{ !!({a}) }}"));
            for b in ATOMS {
                for template in [
                    "{ @1 && @2 }",
                    "{ @1 || @2 }",
                    "{ !(@1 && @2) }",
                    "{ !(@1 || @2) }",
                    "{ !(@1) && @2 }",
                    "{ @1 } | { @2 }",
                    "({ @1 } | count() > 1) && { @2 }",
                ] {
                    out.push(template.replace("@1", a).replace("@2", b));
                }
                for op in SPANSET_OPS {
                    out.push(format!("{{ {a} }} {op} {{ {b} }}"));
                }
            }
        }
        out
    }

    #[test]
    fn needs_hold_on_every_trace_a_query_matches() {
        let traces = traces();
        let queries = queries();
        assert!(queries.len() > 40 * 40);
        let mut problems = Vec::new();
        let (mut checked, mut pruned) = (0usize, 0usize);
        for src in &queries {
            let query = q(src);
            let derived = needs(&query);
            for n in &derived {
                assert!(well_formed(n), "{src}: {n:?}");
            }
            for (label, trace) in &traces {
                if !evaluate(&query, trace).is_empty() {
                    checked += derived.len();
                    for n in derived.iter().filter(|n| !holds(n, trace)) {
                        problems.push(format!("{src}: matches {label} but {n:?} does not hold"));
                    }
                } else if derived.iter().any(|n| !holds(n, trace)) {
                    pruned += 1;
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        // The check is not vacuous, and the needs do rule traces out.
        assert!(checked > 5000, "only {checked} needs checked");
        assert!(pruned > 5000, "only {pruned} traces pruned");
    }

    #[test]
    fn the_soundness_check_catches_unsound_needs() {
        let traces = traces();
        let wrong: &[(&str, Need)] = &[
            (
                "{ span.http.method != \"GET\" }",
                span_attr("http.method", "GET"),
            ),
            (
                "{ !(span.http.method != \"GET\") }",
                span_attr("http.method", "GET"),
            ),
            ("{ .service.name = \"spoof\" }", service("spoof")),
            (".http.method = \"GET\"", span_attr("http.method", "GET")),
            ("{ resource.service.name != \"api\" }", service("api")),
            ("{ name !~ \"SELECT\" }", name("SELECT")),
            ("{ duration >= 100ms }", min_ms(100, 1)),
            ("{ duration <= 100ms }", max_ns(100 * MS - 1)),
            ("{ traceDuration > 2s }", min_ms(2000, 1)),
            ("{ name = \"nope\" } !> { kind = client }", name("nope")),
            (
                "{ name = \"render\" } || { kind = consumer }",
                name("render"),
            ),
            ("{ status != error }", Need::Status(Status::Unset)),
            ("{ } | count() > 3", Need::Kind(Kind::Server)),
        ];
        for (src, need) in wrong {
            let src = if src.starts_with('{') || src.starts_with('(') {
                src.to_string()
            } else {
                format!("{{ {src} }}")
            };
            assert!(
                !violations(&src, std::slice::from_ref(need), &traces).is_empty(),
                "{src}: {need:?} should be refuted"
            );
            assert!(
                !of(&src).contains(need),
                "{src}: derived the unsound {need:?}"
            );
        }
    }
}
