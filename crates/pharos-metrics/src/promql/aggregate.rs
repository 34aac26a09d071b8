//! Aggregations (`sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar`, `topk`,
//! `bottomk`, `quantile`, `count_values`, `limitk`, `limit_ratio`) with `by`/`without`,
//! as Prometheus 3's `aggregation`: Kahan-compensated sums, a direct mean that falls back
//! to an incremental one on overflow, Welford's variance, and groups in first-seen order.

use std::collections::HashMap;

use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::QueryError;
use super::eval::{Elem, Evaluator, Val, unsupported};
use super::functions::{self, AllSteps};
use super::labels::{keep, set, without};
use crate::store::Labels;
use crate::store::translate::format_float;

/// Evaluates an aggregation at `t`.
pub(super) fn eval(ev: &Evaluator<'_>, a: &AggregateExpr, t: i64) -> Result<Val, QueryError> {
    let op = a.op.to_string();
    let param = match &a.param {
        Some(p) => Some(ev.eval(p, t)?),
        None => None,
    };
    let (is_by, names): (bool, Vec<String>) = match &a.modifier {
        Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
        Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
        None => (true, Vec::new()),
    };
    let scalar = |name: &str| match &param {
        Some(Val::Scalar(v)) => Ok(*v),
        _ => Err(QueryError::execution(format!(
            "expected scalar parameter for {name}"
        ))),
    };
    let node = std::ptr::from_ref(a) as usize;
    let group_labels = |l: &Labels, extra: Option<&str>| {
        let derive = |l: &Labels| {
            if is_by {
                let mut n = names.clone();
                n.extend(extra.map(str::to_owned));
                keep(l, &n)
            } else {
                without(l, &names)
            }
        };
        match extra {
            // count_values' extra label is per element; not worth remembering.
            Some(_) => derive(l),
            None => ev.derived(node, l, derive),
        }
    };
    // `by (__name__)` groups the range function's results, whose name is gone, by no name.
    let by_name = is_by && names.iter().any(|n| n == crate::store::METRIC_NAME);
    if let Some(k) = ev.query_step(t)
        && let Some(v) = all_steps(ev, a, &op, k, by_name, |l| group_labels(l, None))?
    {
        return Ok(v);
    }
    let Val::Vector(input) = ev.eval(&a.expr, t)? else {
        return Err(unsupported(&Expr::Aggregate(a.clone())));
    };
    let out = match op.as_str() {
        "count_values" => {
            let Some(Val::String(label)) = &param else {
                return Err(unsupported(&Expr::Aggregate(a.clone())));
            };
            if !super::labels::is_valid_name(label) {
                return Err(QueryError::execution(format!(
                    "invalid label name {label:?}"
                )));
            }
            let with_value: Vec<Elem> = input
                .into_iter()
                .map(|e| Elem {
                    labels: set(&e.labels, label, &format_float(e.value)),
                    ..e
                })
                .collect();
            groups(&with_value, |l| group_labels(l, Some(label)), false)
                .into_iter()
                .map(|(labels, members)| Elem {
                    labels,
                    value: members.len() as f64,
                    t_ms: t,
                })
                .collect()
        }
        "topk" | "bottomk" | "limitk" => {
            let k = scalar(&op)?;
            if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&k) {
                return Err(QueryError::execution(format!(
                    "Scalar value {} overflows int64",
                    format_float(k)
                )));
            }
            let k = k as i64;
            if k < 1 {
                return Ok(Val::Vector(Vec::new()));
            }
            let k = usize::try_from(k).unwrap_or(usize::MAX);
            let mut out = Vec::new();
            for (_, members) in groups(&input, |l| group_labels(l, None), true) {
                let chosen = match op.as_str() {
                    "topk" => top(&members, k, false),
                    "bottomk" => top(&members, k, true),
                    _ => members.into_iter().take(k).collect(),
                };
                out.extend(chosen.into_iter().map(|e| Elem {
                    t_ms: t,
                    ..e.clone()
                }));
            }
            out
        }
        "limit_ratio" => {
            let r = scalar(&op)?.clamp(-1.0, 1.0);
            input
                .into_iter()
                .filter(|e| ratio_keeps(r, &e.labels))
                .map(|e| Elem { t_ms: t, ..e })
                .collect()
        }
        _ => {
            let q = if op == "quantile" { scalar(&op)? } else { 0.0 };
            let mut out = Vec::new();
            for (labels, members) in groups(&input, |l| group_labels(l, None), true) {
                let values: Vec<f64> = members.iter().map(|e| e.value).collect();
                let value = match op.as_str() {
                    "sum" => kahan_sum(&values),
                    "avg" => mean(&values),
                    "count" => values.len() as f64,
                    "group" => 1.0,
                    "min" => min(&values),
                    "max" => max(&values),
                    "stdvar" => stdvar(&values),
                    "stddev" => stdvar(&values).sqrt(),
                    "quantile" => quantile(q, values),
                    _ => return Err(unsupported(&Expr::Aggregate(a.clone()))),
                };
                out.push(Elem {
                    labels,
                    value,
                    t_ms: t,
                });
            }
            out
        }
    };
    Ok(Val::Vector(out))
}

/// In a range query, evaluates an aggregation without parameter of a range-function call
/// over a plain matrix selector (`sum by (le) (rate(m[5m]))`) for every step at once on
/// the first step, and hands out step `k`'s result. The call's results are computed
/// series by series ([`functions::all_steps_of`]) and folded into each step's groups
/// without building each step's vector; groups come out in the order they are first seen
/// at each step and take their values in series order, as the step-by-step evaluation
/// does. `None` when the aggregation does not qualify (the call's results, if computed,
/// are then left for the call) or its results were already handed out.
fn all_steps(
    ev: &Evaluator<'_>,
    a: &AggregateExpr,
    op: &str,
    k: usize,
    by_name: bool,
    group: impl Fn(&Labels) -> Labels,
) -> Result<Option<Val>, QueryError> {
    let node = std::ptr::from_ref(a) as usize;
    if k == 0
        && a.param.is_none()
        && matches!(
            op,
            "sum" | "avg" | "count" | "group" | "min" | "max" | "stdvar" | "stddev"
        )
        && !ev.has_precomputed(node)
        && let Expr::Call(c) = functions::unwrap_parens(&a.expr)
        && let Some(all) = functions::all_steps_of(ev, c)?
    {
        match fold_steps(ev, op, &all, by_name, group) {
            Some(steps) => ev.set_precomputed(node, steps, all.loaded, true),
            None => {
                let (steps, loaded, unique) = all.into_steps(ev);
                ev.set_precomputed(std::ptr::from_ref(c) as usize, steps, loaded, unique);
            }
        }
    }
    Ok(ev.take_precomputed(node, k)?.map(Val::Vector))
}

/// Returns every step's groups of `all` aggregated by `op`, or `None` when the result
/// labels of `all` are not unique (the step-by-step duplicate check must then run) or its
/// steps times groups would be much larger than its results. Groups are derived from the
/// selector's labels when that gives the same groups (the aggregation drops the name
/// itself unless it groups `by (__name__)`), sparing the per-series label sets of the
/// call's results.
fn fold_steps(
    ev: &Evaluator<'_>,
    op: &str,
    all: &AllSteps,
    by_name: bool,
    group: impl Fn(&Labels) -> Labels,
) -> Option<Vec<Vec<Elem>>> {
    let (start, step, n) = ev.steps()?;
    let as_selected = all.unique_as_selected();
    if !as_selected && !all.drops_name {
        return None;
    }
    let derived;
    let sources: Vec<&Labels> = if all.drops_name && (by_name || !as_selected) {
        derived = all.result_labels(ev);
        if !functions::unique_interned(&derived) {
            return None;
        }
        derived.iter().collect()
    } else {
        all.series.iter().map(|(l, _)| l).collect()
    };
    let mut ids: HashMap<usize, u32, rustc_hash::FxBuildHasher> = HashMap::default();
    let mut labels: Vec<Labels> = Vec::new();
    let mut of_series: Vec<u32> = Vec::with_capacity(all.series.len());
    for l in sources {
        let g = group(l);
        let id = *ids.entry(g.addr()).or_insert_with(|| {
            labels.push(g);
            (labels.len() - 1) as u32
        });
        of_series.push(id);
    }
    let cells = n.checked_mul(labels.len())?;
    if cells > all.points.len().saturating_mul(4).saturating_add(1 << 16) {
        return None;
    }
    let folded = match op {
        "sum" => fold_groups::<Sum>(all, &of_series, labels.len(), n),
        "avg" => fold_groups::<Mean>(all, &of_series, labels.len(), n),
        "count" => fold_groups::<Count>(all, &of_series, labels.len(), n),
        "group" => fold_groups::<Group>(all, &of_series, labels.len(), n),
        "min" => fold_groups::<Min>(all, &of_series, labels.len(), n),
        "max" => fold_groups::<Max>(all, &of_series, labels.len(), n),
        "stdvar" => fold_groups::<Stdvar>(all, &of_series, labels.len(), n),
        "stddev" => fold_groups::<Stddev>(all, &of_series, labels.len(), n),
        _ => return None,
    };
    Some(
        folded
            .into_iter()
            .enumerate()
            .map(|(j, groups)| {
                let t = start + j as i64 * step;
                groups
                    .into_iter()
                    .map(|(g, value)| Elem {
                        labels: labels[g as usize].clone(),
                        value,
                        t_ms: t,
                    })
                    .collect()
            })
            .collect(),
    )
}

/// Folds the results of `all` into `groups` groups per step, series `i` into group
/// `of_series[i]`; returns per step its groups, in the order first seen, with values.
fn fold_groups<F: Fold>(
    all: &AllSteps,
    of_series: &[u32],
    groups: usize,
    steps: usize,
) -> Vec<Vec<(u32, f64)>> {
    let mut cells: Vec<Option<F>> = vec![None; steps * groups];
    let mut order: Vec<Vec<u32>> = vec![Vec::new(); steps];
    for ((_, range), &g) in all.series.iter().zip(of_series) {
        for &(j, v) in &all.points[range.clone()] {
            let j = j as usize;
            let cell = &mut cells[j * groups + g as usize];
            match cell {
                Some(f) => f.push(v),
                None => {
                    let mut f = F::EMPTY;
                    f.push(v);
                    *cell = Some(f);
                    order[j].push(g);
                }
            }
        }
    }
    order
        .into_iter()
        .enumerate()
        .map(|(j, gs)| {
            gs.into_iter()
                .map(|g| {
                    let f = cells[j * groups + g as usize].expect("BUG: group seen at step");
                    (g, f.value())
                })
                .collect()
        })
        .collect()
}

/// Splits `input` into groups keyed by `key`, in the order groups are first seen. With
/// `interned`, equal keys are one shared label set (as [`Evaluator::derived`] hands them
/// out), so groups are told apart by address instead of by hashing every label.
fn groups(
    input: &[Elem],
    key: impl Fn(&Labels) -> Labels,
    interned: bool,
) -> Vec<(Labels, Vec<&Elem>)> {
    let mut by_addr: HashMap<usize, usize, rustc_hash::FxBuildHasher> = HashMap::default();
    let mut index: HashMap<Labels, usize, rustc_hash::FxBuildHasher> = HashMap::default();
    let mut out: Vec<(Labels, Vec<&Elem>)> = Vec::new();
    for e in input {
        let k = key(&e.labels);
        let found = if interned {
            by_addr.get(&k.addr()).copied()
        } else {
            index.get(&k).copied()
        };
        match found {
            Some(i) => out[i].1.push(e),
            None => {
                if interned {
                    by_addr.insert(k.addr(), out.len());
                } else {
                    index.insert(k.clone(), out.len());
                }
                out.push((k, vec![e]));
            }
        }
    }
    out
}

/// Returns the `k` largest (or, `bottom`, smallest) members, best first; NaN ranks last
/// and earlier members win ties, as Prometheus' heap does for distinct values.
fn top<'e>(members: &[&'e Elem], k: usize, bottom: bool) -> Vec<&'e Elem> {
    let mut v: Vec<&Elem> = members.to_vec();
    v.sort_by(|a, b| {
        use std::cmp::Ordering;
        match (a.value.is_nan(), b.value.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ if bottom => a.value.total_cmp(&b.value),
            _ => b.value.total_cmp(&a.value),
        }
    });
    v.truncate(k);
    v
}

/// Returns whether `limit_ratio(r, ...)` keeps a series, from where its labels' hash
/// falls in `[0, 1)`.
fn ratio_keeps(r: f64, labels: &Labels) -> bool {
    let offset = labels_hash(labels) as f64 / u64::MAX as f64;
    (r >= 0.0 && offset < r) || (r < 0.0 && offset >= 1.0 + r)
}

/// Returns Prometheus' `labels.Hash`: XXH64 over `name 0xff value 0xff ...`.
fn labels_hash(labels: &Labels) -> u64 {
    let mut b = Vec::new();
    for (k, v) in labels.pairs() {
        b.extend_from_slice(k.as_bytes());
        b.push(0xff);
        b.extend_from_slice(v.as_bytes());
        b.push(0xff);
    }
    xxh64(&b)
}

/// XXH64 with seed 0 (Go's `cespare/xxhash.Sum64`).
fn xxh64(data: &[u8]) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const P3: u64 = 0x1656_67B1_9E37_79F9;
    const P4: u64 = 0x85EB_CA77_C2B2_AE63;
    const P5: u64 = 0x27D4_EB2F_1656_67C5;
    let round = |acc: u64, lane: u64| {
        acc.wrapping_add(lane.wrapping_mul(P2))
            .rotate_left(31)
            .wrapping_mul(P1)
    };
    let merge = |acc: u64, v: u64| (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4);
    let u64_at = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().expect("8 bytes"));
    let n = data.len();
    let mut i = 0;
    let mut h = if n >= 32 {
        let mut v = [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)];
        while i + 32 <= n {
            for (j, lane) in v.iter_mut().enumerate() {
                *lane = round(*lane, u64_at(i + 8 * j));
            }
            i += 32;
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for lane in v {
            h = merge(h, lane);
        }
        h
    } else {
        P5
    };
    h = h.wrapping_add(n as u64);
    while i + 8 <= n {
        h ^= round(0, u64_at(i));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        i += 8;
    }
    if i + 4 <= n {
        let w = u32::from_le_bytes(data[i..i + 4].try_into().expect("4 bytes"));
        h ^= u64::from(w).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        i += 4;
    }
    while i < n {
        h ^= u64::from(data[i]).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
        i += 1;
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// One step of Kahan-Babuška-Neumaier summation: returns the new sum and compensation.
pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// A running aggregate over values seen one at a time, in order: the one implementation
/// of each operator, for whole slices and for results folded series by series.
pub(super) trait Fold: Copy {
    /// The state before any value.
    const EMPTY: Self;
    /// Takes in the next value.
    fn push(&mut self, v: f64);
    /// Returns the aggregate of the values pushed so far.
    fn value(self) -> f64;
}

/// Returns the fold of `values` in order.
fn fold<F: Fold>(values: &[f64]) -> f64 {
    let mut f = F::EMPTY;
    for &v in values {
        f.push(v);
    }
    f.value()
}

/// Kahan-Babuška-Neumaier summation.
#[derive(Clone, Copy)]
pub(super) struct Sum {
    sum: f64,
    c: f64,
}

impl Fold for Sum {
    const EMPTY: Sum = Sum { sum: 0.0, c: 0.0 };
    #[inline]
    fn push(&mut self, v: f64) {
        (self.sum, self.c) = kahan_inc(v, self.sum, self.c);
    }
    fn value(self) -> f64 {
        self.sum + self.c
    }
}

/// Prometheus 3's mean: a compensated sum divided by the count, switching to an
/// incremental mean once the sum would overflow.
#[derive(Clone, Copy)]
pub(super) struct Mean {
    sum: f64,
    c: f64,
    count: f64,
    incremental: bool,
    mean: f64,
}

impl Fold for Mean {
    const EMPTY: Mean = Mean {
        sum: 0.0,
        c: 0.0,
        count: 0.0,
        incremental: false,
        mean: 0.0,
    };
    #[inline]
    fn push(&mut self, f: f64) {
        if self.count == 0.0 {
            self.sum = f;
            self.count = 1.0;
            return;
        }
        self.count += 1.0;
        let count = self.count;
        if !self.incremental {
            let (ns, nc) = kahan_inc(f, self.sum, self.c);
            if !ns.is_infinite() {
                (self.sum, self.c) = (ns, nc);
                return;
            }
            self.incremental = true;
            self.mean = self.sum / (count - 1.0);
            self.c /= count - 1.0;
        }
        if self.mean.is_infinite() {
            if f.is_infinite() && (self.mean > 0.0) == (f > 0.0) {
                return;
            }
            if !f.is_infinite() && !f.is_nan() {
                return;
            }
        }
        let current = self.mean + self.c;
        (self.mean, self.c) = kahan_inc(f / count - current / count, self.mean, self.c);
    }
    fn value(self) -> f64 {
        if self.count == 0.0 {
            f64::NAN
        } else if self.incremental {
            self.mean + self.c
        } else {
            (self.sum + self.c) / self.count
        }
    }
}

/// The smallest value; NaN only when all are NaN.
#[derive(Clone, Copy)]
pub(super) struct Min(f64);

impl Fold for Min {
    const EMPTY: Min = Min(f64::NAN);
    #[inline]
    fn push(&mut self, v: f64) {
        if v < self.0 || self.0.is_nan() {
            self.0 = v;
        }
    }
    fn value(self) -> f64 {
        self.0
    }
}

/// The largest value; NaN only when all are NaN.
#[derive(Clone, Copy)]
pub(super) struct Max(f64);

impl Fold for Max {
    const EMPTY: Max = Max(f64::NAN);
    #[inline]
    fn push(&mut self, v: f64) {
        if v > self.0 || self.0.is_nan() {
            self.0 = v;
        }
    }
    fn value(self) -> f64 {
        self.0
    }
}

/// How many values there are.
#[derive(Clone, Copy)]
struct Count(f64);

impl Fold for Count {
    const EMPTY: Count = Count(0.0);
    #[inline]
    fn push(&mut self, _: f64) {
        self.0 += 1.0;
    }
    fn value(self) -> f64 {
        self.0
    }
}

/// 1 for any group.
#[derive(Clone, Copy)]
struct Group;

impl Fold for Group {
    const EMPTY: Group = Group;
    #[inline]
    fn push(&mut self, _: f64) {}
    fn value(self) -> f64 {
        1.0
    }
}

/// The population variance by Welford's method, as the `stdvar` aggregation.
#[derive(Clone, Copy)]
struct Stdvar {
    count: f64,
    mean: f64,
    acc: f64,
}

impl Fold for Stdvar {
    const EMPTY: Stdvar = Stdvar {
        count: 0.0,
        mean: 0.0,
        acc: 0.0,
    };
    #[inline]
    fn push(&mut self, v: f64) {
        self.count += 1.0;
        let delta = v - self.mean;
        self.mean += delta / self.count;
        self.acc += delta * (v - self.mean);
    }
    fn value(self) -> f64 {
        self.acc / self.count
    }
}

/// The population standard deviation: the square root of [`Stdvar`].
#[derive(Clone, Copy)]
struct Stddev(Stdvar);

impl Fold for Stddev {
    const EMPTY: Stddev = Stddev(Stdvar::EMPTY);
    #[inline]
    fn push(&mut self, v: f64) {
        self.0.push(v);
    }
    fn value(self) -> f64 {
        self.0.value().sqrt()
    }
}

/// Returns the compensated sum of `values`.
pub(super) fn kahan_sum(values: &[f64]) -> f64 {
    fold::<Sum>(values)
}

/// Returns the mean as Prometheus 3 computes `avg`/`avg_over_time` ([`Mean`]).
pub(super) fn mean(values: &[f64]) -> f64 {
    fold::<Mean>(values)
}

/// Returns the smallest value; NaN only when all are NaN.
pub(super) fn min(values: &[f64]) -> f64 {
    fold::<Min>(values)
}

/// Returns the largest value; NaN only when all are NaN.
pub(super) fn max(values: &[f64]) -> f64 {
    fold::<Max>(values)
}

/// Returns the population variance by Welford's method, as the `stdvar` aggregation.
fn stdvar(values: &[f64]) -> f64 {
    fold::<Stdvar>(values)
}

/// Returns the φ-quantile of `values` by linear interpolation between closest ranks, as
/// Prometheus' `quantile`: NaN for no values or a NaN φ, ±Inf for φ outside `[0, 1]`.
pub(super) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

#[cfg(test)]
mod tests {
    use super::super::eval::tests::check;
    use super::*;

    #[test]
    fn sums_means_and_extremes() {
        assert_eq!(kahan_sum(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(mean(&[1.0, 2.0, 4.0]), 7.0 / 3.0);
        assert_eq!(mean(&[f64::MAX, f64::MAX]), f64::MAX);
        assert_eq!(min(&[f64::NAN, 3.0, 1.0]), 1.0);
        assert_eq!(max(&[f64::NAN, 3.0, 1.0]), 3.0);
        assert!(max(&[f64::NAN]).is_nan());
        assert_eq!(stdvar(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), 4.0);
    }

    /// The slice functions as they were before they became folds.
    mod before {
        use super::super::kahan_inc;

        pub fn mean(values: &[f64]) -> f64 {
            let Some((&first, rest)) = values.split_first() else {
                return f64::NAN;
            };
            let (mut sum, mut c, mut count) = (first, 0.0, 1.0);
            let mut incremental = false;
            let mut mean = 0.0;
            for &f in rest {
                count += 1.0;
                if !incremental {
                    let (ns, nc) = kahan_inc(f, sum, c);
                    if !ns.is_infinite() {
                        (sum, c) = (ns, nc);
                        continue;
                    }
                    incremental = true;
                    mean = sum / (count - 1.0);
                    c /= count - 1.0;
                }
                if mean.is_infinite() {
                    if f.is_infinite() && (mean > 0.0) == (f > 0.0) {
                        continue;
                    }
                    if !f.is_infinite() && !f.is_nan() {
                        continue;
                    }
                }
                let current = mean + c;
                (mean, c) = kahan_inc(f / count - current / count, mean, c);
            }
            if incremental {
                mean + c
            } else {
                (sum + c) / count
            }
        }

        pub fn min(values: &[f64]) -> f64 {
            let mut m = values.first().copied().unwrap_or(f64::NAN);
            for &v in values {
                if v < m || m.is_nan() {
                    m = v;
                }
            }
            m
        }

        pub fn max(values: &[f64]) -> f64 {
            let mut m = values.first().copied().unwrap_or(f64::NAN);
            for &v in values {
                if v > m || m.is_nan() {
                    m = v;
                }
            }
            m
        }
    }

    #[test]
    fn folds_match_the_slice_functions_they_replaced() {
        let special = [
            0.0,
            -0.0,
            1.5,
            -2.25,
            1e308,
            -1e308,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e-300,
        ];
        let mut x: u64 = 12345;
        for len in 0..40 {
            for _ in 0..200 {
                let values: Vec<f64> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if x.is_multiple_of(3) {
                            special[(x / 3 % special.len() as u64) as usize]
                        } else {
                            (x % 100_000) as f64 / 7.0 - 5000.0
                        }
                    })
                    .collect();
                let bits = |v: f64| if v.is_nan() { u64::MAX } else { v.to_bits() };
                assert_eq!(
                    bits(mean(&values)),
                    bits(before::mean(&values)),
                    "{values:?}"
                );
                assert_eq!(bits(min(&values)), bits(before::min(&values)), "{values:?}");
                assert_eq!(bits(max(&values)), bits(before::max(&values)), "{values:?}");
            }
        }
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(0.5, vec![1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(quantile(0.0, vec![3.0, 1.0]), 1.0);
        assert_eq!(quantile(1.0, vec![3.0, 1.0]), 3.0);
        assert_eq!(quantile(2.0, vec![1.0]), f64::INFINITY);
        assert_eq!(quantile(-1.0, vec![1.0]), f64::NEG_INFINITY);
        assert!(quantile(0.5, vec![]).is_nan());
    }

    #[test]
    fn xxh64_matches_reference_vectors() {
        assert_eq!(xxh64(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition"),
            0xFBCE_A83C_8A37_8BF1
        );
    }

    #[test]
    fn aggregations_group_by_and_without() {
        check("sum(m)", 120, "{} 120000=102");
        check(
            "sum by (job) (m)",
            120,
            "{job=\"a\"} 120000=2\n{job=\"b\"} 120000=100",
        );
        check("sum without (job) (m)", 120, "{} 120000=102");
        check("sum by (__name__) (m)", 120, "{__name__=\"m\"} 120000=102");
        check("avg(m)", 120, "{} 120000=51");
        check("count(m)", 120, "{} 120000=2");
        check("group(m)", 120, "{} 120000=1");
        check("min(m)", 120, "{} 120000=2");
        check("max(m)", 120, "{} 120000=100");
        check("stdvar(m)", 120, "{} 120000=2401");
        check("stddev(m)", 120, "{} 120000=49");
        check("quantile(0.5, m)", 120, "{} 120000=51");
        check("sum(nope)", 120, "");
    }

    #[test]
    fn topk_bottomk_limitk_keep_labels() {
        check("topk(1, m)", 120, "{__name__=\"m\", job=\"b\"} 120000=100");
        check("bottomk(1, m)", 120, "{__name__=\"m\", job=\"a\"} 120000=2");
        check(
            "topk(5, m)",
            120,
            "{__name__=\"m\", job=\"b\"} 120000=100\n{__name__=\"m\", job=\"a\"} 120000=2",
        );
        check("topk(0, m)", 120, "");
        check("limitk(1, m)", 120, "{__name__=\"m\", job=\"a\"} 120000=2");
        check(
            "limit_ratio(1, m)",
            120,
            "{__name__=\"m\", job=\"a\"} 120000=2\n{__name__=\"m\", job=\"b\"} 120000=100",
        );
        check("limit_ratio(0, m)", 120, "");
    }

    #[test]
    fn count_values_labels_by_value() {
        check(
            "count_values(\"v\", m)",
            120,
            "{v=\"2\"} 120000=1\n{v=\"100\"} 120000=1",
        );
        check(
            "count_values without (job) (\"v\", m)",
            120,
            "{v=\"2\"} 120000=1\n{v=\"100\"} 120000=1",
        );
        check(
            "count_values(\"1x\", m)",
            120,
            "error: invalid label name \"1x\"",
        );
    }
}
