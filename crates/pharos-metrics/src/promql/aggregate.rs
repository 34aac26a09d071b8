//! Aggregations (`sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar`, `topk`,
//! `bottomk`, `quantile`, `count_values`, `limitk`, `limit_ratio`) with `by`/`without`,
//! as Prometheus 3's `aggregation`: Kahan-compensated sums, a direct mean that falls back
//! to an incremental one on overflow, Welford's variance, and groups in first-seen order.

use std::collections::HashMap;

use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::QueryError;
use super::eval::{Elem, Evaluator, Val, unsupported};
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
    let Val::Vector(input) = ev.eval(&a.expr, t)? else {
        return Err(unsupported(&Expr::Aggregate(a.clone())));
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

/// Returns the compensated sum of `values`.
pub(super) fn kahan_sum(values: &[f64]) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for &v in values {
        (s, c) = kahan_inc(v, s, c);
    }
    s + c
}

/// Returns the mean as Prometheus 3 computes `avg`/`avg_over_time`: a compensated sum
/// divided by the count, switching to an incremental mean once the sum would overflow.
pub(super) fn mean(values: &[f64]) -> f64 {
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

/// Returns the smallest value; NaN only when all are NaN.
pub(super) fn min(values: &[f64]) -> f64 {
    let mut m = values.first().copied().unwrap_or(f64::NAN);
    for &v in values {
        if v < m || m.is_nan() {
            m = v;
        }
    }
    m
}

/// Returns the largest value; NaN only when all are NaN.
pub(super) fn max(values: &[f64]) -> f64 {
    let mut m = values.first().copied().unwrap_or(f64::NAN);
    for &v in values {
        if v > m || m.is_nan() {
            m = v;
        }
    }
    m
}

/// Returns the population variance by Welford's method, as the `stdvar` aggregation.
fn stdvar(values: &[f64]) -> f64 {
    let (mut count, mut mean, mut acc) = (0.0, 0.0, 0.0);
    for &v in values {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        acc += delta * (v - mean);
    }
    acc / count
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
