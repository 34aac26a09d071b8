//! Binary operators: arithmetic, comparison (filtering or `bool`) and set operators over
//! scalars and instant vectors, with `on`/`ignoring` and `group_left`/`group_right`
//! matching, as Prometheus' `VectorBinop`, `VectorscalarBinop` and `vectorElemBinop`.
//!
//! Arithmetic drops the metric name; comparisons keep it unless `bool` is given. Errors
//! are worded as Prometheus words them.

use std::collections::{HashMap, HashSet};

use promql_parser::label::Labels as NameList;
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::QueryError;
use super::eval::{Elem, Evaluator, Val, check_duplicates, unsupported};
use super::labels::{drop_name, keep, set, without};
use crate::store::Labels;

/// Evaluates a binary expression at `t`.
pub(super) fn eval(ev: &Evaluator<'_>, b: &BinaryExpr, t: i64) -> Result<Val, QueryError> {
    let op = b.op.to_string();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ev.eval(&b.lhs, t)?;
    let rhs = ev.eval(&b.rhs, t)?;
    let out = match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => {
            let (v, keep) = scalar_op(&op, l, r);
            return Ok(Val::Scalar(if is_comparison(&op) {
                f64::from(u8::from(keep))
            } else {
                v
            }));
        }
        (Val::Vector(l), Val::Scalar(r)) => vector_scalar(&op, l, r, false, return_bool, t),
        (Val::Scalar(l), Val::Vector(r)) => vector_scalar(&op, r, l, true, return_bool, t),
        (Val::Vector(l), Val::Vector(r)) => {
            let m = Matching::of(b);
            match op.as_str() {
                "and" => and(l, r, &m),
                "or" => or(l, r, &m),
                "unless" => unless(l, r, &m),
                _ => vector_vector(&op, l, r, &m, return_bool, t)?,
            }
        }
        _ => return Err(unsupported(&promql_parser::parser::Expr::Binary(b.clone()))),
    };
    check_duplicates(&out)?;
    Ok(Val::Vector(out))
}

/// How two vectors match: on or ignoring which labels, and the cardinality.
struct Matching {
    on: bool,
    names: Vec<String>,
    card: VectorMatchCardinality,
}

impl Matching {
    fn of(b: &BinaryExpr) -> Matching {
        let (on, names) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
            None => (false, Vec::new()),
        };
        let card = b
            .modifier
            .as_ref()
            .map_or(VectorMatchCardinality::OneToOne, |m| m.card.clone());
        Matching { on, names, card }
    }

    /// Returns the labels two elements must agree on.
    fn signature(&self, l: &Labels) -> Labels {
        if self.on {
            keep(l, &self.names)
        } else {
            without(l, &self.names)
        }
    }

    fn include(&self) -> &[String] {
        match &self.card {
            VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => names(l),
            _ => &[],
        }
    }
}

fn names(l: &NameList) -> &[String] {
    &l.labels
}

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

fn drops_name(op: &str) -> bool {
    matches!(op, "+" | "-" | "*" | "/" | "%" | "^" | "atan2")
}

/// Returns `(value, keep)` for `l op r`, as Prometheus' `vectorElemBinop`: arithmetic
/// keeps every result; a comparison keeps the left value when it holds.
fn scalar_op(op: &str, l: f64, r: f64) -> (f64, bool) {
    match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "%" => (l % r, true),
        "^" => (l.powf(r), true),
        "atan2" => (l.atan2(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        _ => unreachable!("BUG: operator {op} is not arithmetic or comparison"),
    }
}

fn vector_scalar(
    op: &str,
    v: Vec<Elem>,
    s: f64,
    swap: bool,
    return_bool: bool,
    t: i64,
) -> Vec<Elem> {
    let mut out = Vec::with_capacity(v.len());
    for e in v {
        let (l, r) = if swap { (s, e.value) } else { (e.value, s) };
        let (mut value, mut keep) = scalar_op(op, l, r);
        // The vector element's value is the output of a comparison, on either side.
        if is_comparison(op) && swap {
            value = r;
        }
        if return_bool {
            value = f64::from(u8::from(keep));
            keep = true;
        }
        if keep {
            let labels = if drops_name(op) || return_bool {
                drop_name(&e.labels)
            } else {
                e.labels
            };
            out.push(Elem {
                labels,
                value,
                t_ms: t,
            });
        }
    }
    out
}

fn vector_vector(
    op: &str,
    lhs: Vec<Elem>,
    rhs: Vec<Elem>,
    m: &Matching,
    return_bool: bool,
    t: i64,
) -> Result<Vec<Elem>, QueryError> {
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_sigs: HashMap<Labels, &Elem> = HashMap::with_capacity(one.len());
    for e in &one {
        let sig = m.signature(&e.labels);
        if let Some(dup) = one_sigs.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            let matched = if m.on {
                keep(&e.labels, &m.names)
            } else {
                without(&e.labels, &m.names)
            };
            return Err(QueryError::execution(format!(
                "found duplicate series for the match group {matched} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                e.labels, dup.labels
            )));
        }
        one_sigs.insert(sig, e);
    }
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    let mut matched: HashMap<Labels, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for e in &many {
        let sig = m.signature(&e.labels);
        let Some(o) = one_sigs.get(&sig) else {
            continue;
        };
        let (l, r) = if one_to_many {
            (o.value, e.value)
        } else {
            (e.value, o.value)
        };
        let (mut value, keep_it) = scalar_op(op, l, r);
        if return_bool {
            value = f64::from(u8::from(keep_it));
        } else if !keep_it {
            continue;
        }
        let mut labels = result_labels(&e.labels, &o.labels, op, m);
        if return_bool {
            labels = drop_name(&labels);
        }
        let inserted = matched.get_mut(&sig);
        if one_to_one {
            if inserted.is_some() {
                return Err(QueryError::execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
            matched.insert(sig, HashSet::new());
        } else {
            let set = match inserted {
                Some(s) => s,
                None => matched.entry(sig).or_default(),
            };
            if !set.insert(labels.clone()) {
                return Err(QueryError::execution(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
        }
        out.push(Elem {
            labels,
            value,
            t_ms: t,
        });
    }
    Ok(out)
}

/// Returns the labels of a vector-vector result, as Prometheus' `resultMetric`: the
/// "many" side's labels, restricted to the matching labels for one-to-one matching, plus
/// the `group_x` labels taken from the "one" side.
fn result_labels(many: &Labels, one: &Labels, op: &str, m: &Matching) -> Labels {
    let mut l = if drops_name(op) {
        drop_name(many)
    } else {
        many.clone()
    };
    if matches!(m.card, VectorMatchCardinality::OneToOne) {
        l = if m.on {
            keep(&l, &m.names)
        } else {
            Labels::from_pairs(
                l.pairs()
                    .iter()
                    .filter(|(k, _)| !m.names.contains(k))
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
        };
    }
    for name in m.include() {
        l = set(&l, name, one.get(name).unwrap_or(""));
    }
    l
}

fn and(lhs: Vec<Elem>, rhs: Vec<Elem>, m: &Matching) -> Vec<Elem> {
    if lhs.is_empty() || rhs.is_empty() {
        return Vec::new();
    }
    let sigs: HashSet<Labels> = rhs.iter().map(|e| m.signature(&e.labels)).collect();
    lhs.into_iter()
        .filter(|e| sigs.contains(&m.signature(&e.labels)))
        .collect()
}

fn or(lhs: Vec<Elem>, rhs: Vec<Elem>, m: &Matching) -> Vec<Elem> {
    if lhs.is_empty() {
        return rhs;
    }
    if rhs.is_empty() {
        return lhs;
    }
    let sigs: HashSet<Labels> = lhs.iter().map(|e| m.signature(&e.labels)).collect();
    let mut out = lhs;
    out.extend(
        rhs.into_iter()
            .filter(|e| !sigs.contains(&m.signature(&e.labels))),
    );
    out
}

fn unless(lhs: Vec<Elem>, rhs: Vec<Elem>, m: &Matching) -> Vec<Elem> {
    if lhs.is_empty() || rhs.is_empty() {
        return lhs;
    }
    let sigs: HashSet<Labels> = rhs.iter().map(|e| m.signature(&e.labels)).collect();
    lhs.into_iter()
        .filter(|e| !sigs.contains(&m.signature(&e.labels)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::eval::tests::check;

    #[test]
    fn arithmetic_between_scalars_and_vectors() {
        check("1 + 2 * 3", 0, "scalar 0=7");
        check("2 ^ 3 ^ 2", 0, "scalar 0=512");
        check("7 % 3", 0, "scalar 0=1");
        check("-7 % 3", 0, "scalar 0=-1");
        check("1 atan2 1", 0, "scalar 0=0.7853981633974483");
        check("2 > bool 1", 0, "scalar 0=1");
        check("2 < bool 1", 0, "scalar 0=0");
        check("m{job=\"a\"} * 2", 120, "{job=\"a\"} 120000=4");
        check("10 - m{job=\"a\"}", 120, "{job=\"a\"} 120000=8");
        check("m{job=\"a\"} / 0", 120, "{job=\"a\"} 120000=inf");
    }

    #[test]
    fn comparisons_filter_or_return_bool() {
        check("m > 5", 120, "{__name__=\"m\", job=\"b\"} 120000=100");
        check("5 < m", 120, "{__name__=\"m\", job=\"b\"} 120000=100");
        check(
            "m > bool 5",
            120,
            "{job=\"a\"} 120000=0\n{job=\"b\"} 120000=1",
        );
        check("m == 2", 120, "{__name__=\"m\", job=\"a\"} 120000=2");
    }

    #[test]
    fn one_to_one_matching_drops_name_and_matches_on_all_other_labels() {
        check("m - m", 120, "{job=\"a\"} 120000=0\n{job=\"b\"} 120000=0");
        check("m{job=\"a\"} + on() m{job=\"b\"}", 120, "{} 120000=102");
        check(
            "m{job=\"a\"} + ignoring(job) m{job=\"b\"}",
            120,
            "{} 120000=102",
        );
        // Comparisons keep the left side's name and value.
        check(
            "m >= m",
            120,
            "{__name__=\"m\", job=\"a\"} 120000=2\n{__name__=\"m\", job=\"b\"} 120000=100",
        );
        check("m{job=\"a\"} + m{job=\"b\"}", 120, "");
    }

    #[test]
    fn many_to_one_needs_group_modifiers() {
        check(
            "m + on() group_left m{job=\"b\"}",
            120,
            "{job=\"a\"} 120000=102\n{job=\"b\"} 120000=200",
        );
        check(
            "m{job=\"b\"} + on() group_right m",
            120,
            "{job=\"a\"} 120000=102\n{job=\"b\"} 120000=200",
        );
        check(
            "m{job=\"a\"} * on() group_left(job) m{job=\"b\"}",
            120,
            "{job=\"b\"} 120000=200",
        );
        check(
            "m + on() m{job=\"b\"}",
            120,
            "error: multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
        );
        check(
            "m{job=\"b\"} + on() m",
            120,
            "error: found duplicate series for the match group {} on the right hand-side of the operation: [{__name__=\"m\", job=\"b\"}, {__name__=\"m\", job=\"a\"}];many-to-many matching not allowed: matching labels must be unique on one side",
        );
    }

    #[test]
    fn set_operators() {
        check(
            "m and m{job=\"a\"}",
            120,
            "{__name__=\"m\", job=\"a\"} 120000=2",
        );
        check(
            "m unless m{job=\"a\"}",
            120,
            "{__name__=\"m\", job=\"b\"} 120000=100",
        );
        check(
            "m{job=\"a\"} or m",
            120,
            "{__name__=\"m\", job=\"a\"} 120000=2\n{__name__=\"m\", job=\"b\"} 120000=100",
        );
        check(
            "m{job=\"a\"} and on() m{job=\"b\"}",
            120,
            "{__name__=\"m\", job=\"a\"} 120000=2",
        );
        check("m and nope", 120, "");
        check(
            "nope or m{job=\"a\"}",
            120,
            "{__name__=\"m\", job=\"a\"} 120000=2",
        );
    }

    #[test]
    fn dropping_names_can_collide() {
        check(
            "{__name__=~\"m|n\"} * 1",
            120,
            "error: vector cannot contain metrics with the same labelset",
        );
    }
}
