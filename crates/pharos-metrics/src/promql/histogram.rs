//! `histogram_quantile` over classic histograms: series of cumulative `_bucket` counts
//! labelled with their upper bound `le`, as Prometheus 3's `BucketQuantile` (buckets
//! sorted and coalesced, counts forced monotonic, tiny float deltas ignored).

use std::collections::HashMap;

use super::eval::Elem;
use crate::store::Labels;

/// Relative difference under which two bucket counts count as equal.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// Returns `histogram_quantile(q, buckets)`: one element per group of series that differ
/// only in `le` (and name), in first-seen order; series without a parsable `le` are
/// ignored.
pub(super) fn histogram_quantile(q: f64, input: &[Elem], t: i64) -> Vec<Elem> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    for e in input {
        let Some(le) = e.labels.get("le").and_then(parse_le) else {
            continue;
        };
        let key = Labels::from_pairs(
            e.labels
                .pairs()
                .iter()
                .filter(|(k, _)| k != "le" && k != crate::store::METRIC_NAME)
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((le, e.value));
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| Elem {
            labels,
            value: bucket_quantile(q, buckets),
            t_ms: t,
        })
        .collect()
}

/// Parses an `le` value as Go's `strconv.ParseFloat` would.
fn parse_le(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

/// Returns the `q`-quantile of `(upper bound, cumulative count)` buckets.
fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce buckets with the same upper bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == b.0 => last.1 += b.1,
            _ => merged.push(b),
        }
    }
    let mut buckets = merged;
    ensure_monotonic(&mut buckets);
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|x| x.1 < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Makes counts non-decreasing, and equalises counts that differ by float noise only.
fn ensure_monotonic(buckets: &mut [(f64, f64)]) {
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) || curr < prev {
            b.1 = prev;
            continue;
        }
        prev = curr;
    }
}

/// Prometheus' `almost.Equal`.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_within_the_bucket() {
        let b = vec![(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (f64::INFINITY, 40.0)];
        // rank 20 falls in (0.1, 0.5]: 0.1 + 0.4 * (10 / 20).
        assert_eq!(bucket_quantile(0.5, b.clone()), 0.30000000000000004);
        // rank 4 in the first bucket, starting at 0.
        assert_eq!(bucket_quantile(0.1, b.clone()), 0.04000000000000001);
        // rank 40 reaches the +Inf bucket's count first at le=1.
        assert_eq!(bucket_quantile(1.0, b.clone()), 1.0);
        assert_eq!(bucket_quantile(2.0, b.clone()), f64::INFINITY);
        assert!(bucket_quantile(f64::NAN, b).is_nan());
    }

    #[test]
    fn edge_cases() {
        assert!(
            bucket_quantile(0.5, vec![(1.0, 1.0)]).is_nan(),
            "no +Inf bucket"
        );
        assert!(
            bucket_quantile(0.5, vec![(f64::INFINITY, 1.0)]).is_nan(),
            "one bucket"
        );
        assert!(bucket_quantile(0.5, vec![(1.0, 0.0), (f64::INFINITY, 0.0)]).is_nan());
        // Everything above the last finite bound: that bound.
        assert_eq!(
            bucket_quantile(0.5, vec![(1.0, 0.0), (f64::INFINITY, 5.0)]),
            1.0
        );
        // A negative first bound is returned as is.
        assert_eq!(
            bucket_quantile(0.1, vec![(-1.0, 5.0), (f64::INFINITY, 10.0)]),
            -1.0
        );
    }

    #[test]
    fn non_monotonic_counts_are_fixed() {
        // The 0.5 bucket dips below the 0.1 bucket: treated as 10.
        let b = vec![(0.1, 10.0), (0.5, 8.0), (1.0, 20.0), (f64::INFINITY, 20.0)];
        // rank 15 in (0.5, 1]: 0.5 + 0.5 * (5 / 10).
        assert_eq!(bucket_quantile(0.75, b), 0.75);
        // Duplicate bounds are added up.
        let b = vec![(1.0, 1.0), (1.0, 1.0), (f64::INFINITY, 4.0)];
        assert_eq!(bucket_quantile(0.25, b), 0.5);
        assert!(almost_equal(1.0, 1.0 + 1e-15, SMALL_DELTA_TOLERANCE));
    }

    #[test]
    fn groups_by_labels_without_le() {
        let e = |le: &str, job: &str, v: f64| Elem {
            labels: Labels::from_pairs([("__name__", "h_bucket"), ("le", le), ("job", job)]),
            value: v,
            t_ms: 0,
        };
        let input = [
            e("1", "a", 5.0),
            e("+Inf", "a", 10.0),
            e("1", "b", 10.0),
            e("+Inf", "b", 10.0),
            e("x", "b", 3.0),
        ];
        let out = histogram_quantile(0.5, &input, 7);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].labels.to_string(), r#"{job="a"}"#);
        assert_eq!(out[0].value, 1.0);
        assert_eq!(out[1].value, 0.5);
        assert_eq!(out[1].t_ms, 7);
    }
}
