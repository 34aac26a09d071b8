//! Functions over range vectors: `rate`, `increase`, `delta` (Prometheus 3's
//! `extrapolatedRate`), `irate`, `idelta`, `deriv`, `predict_linear`, `resets`,
//! `changes`, the `*_over_time` family and `double_exponential_smoothing`.
//!
//! Each takes one series' points in the window `(start, end]` and returns its value, or
//! `None` to drop the series at this step.

use super::QueryError;
use super::aggregate::{kahan_inc, kahan_sum, max, mean, min, quantile};

/// A window's points and bounds, in milliseconds.
pub(super) struct Window<'a> {
    pub points: &'a [(i64, f64)],
    pub start: i64,
    pub end: i64,
    /// The evaluation time (what `predict_linear` predicts from).
    pub t: i64,
}

/// Returns whether `name` is a function over a range vector this module evaluates.
pub(super) fn is_range_fn(name: &str) -> bool {
    matches!(
        name,
        "rate"
            | "increase"
            | "delta"
            | "irate"
            | "idelta"
            | "deriv"
            | "predict_linear"
            | "resets"
            | "changes"
            | "avg_over_time"
            | "min_over_time"
            | "max_over_time"
            | "sum_over_time"
            | "count_over_time"
            | "quantile_over_time"
            | "stddev_over_time"
            | "stdvar_over_time"
            | "last_over_time"
            | "first_over_time"
            | "present_over_time"
            | "mad_over_time"
            | "double_exponential_smoothing"
    )
}

/// Applies range function `name` to one window; `scalars` are the other arguments.
///
/// # Errors
///
/// Fails for `double_exponential_smoothing` factors outside `(0, 1)`.
pub(super) fn apply(
    name: &str,
    w: &Window<'_>,
    scalars: &[f64],
) -> Result<Option<f64>, QueryError> {
    apply_window(name, w, scalars, true)
}

/// Returns whether `name` looks for counter resets in its window (`rate`, `increase`):
/// those a caller may tell [`apply_window`] a window has none of.
pub(super) fn counts_resets(name: &str) -> bool {
    matches!(name, "rate" | "increase")
}

/// As [`apply`]; `may_reset` false promises that no value in the window is below the one
/// before it, so `rate` and `increase` skip looking for counter resets.
pub(super) fn apply_window(
    name: &str,
    w: &Window<'_>,
    scalars: &[f64],
    may_reset: bool,
) -> Result<Option<f64>, QueryError> {
    let p = w.points;
    let values = || p.iter().map(|x| x.1).collect::<Vec<f64>>();
    Ok(match name {
        "rate" => extrapolated_rate(w, true, may_reset, true),
        "increase" => extrapolated_rate(w, true, may_reset, false),
        "delta" => extrapolated_rate(w, false, false, false),
        "irate" => instant_value(p, true),
        "idelta" => instant_value(p, false),
        "deriv" => (p.len() >= 2).then(|| linear_regression(p, p[0].0).0),
        "predict_linear" => (p.len() >= 2).then(|| {
            let (slope, intercept) = linear_regression(p, w.t);
            slope * scalars[0] + intercept
        }),
        "resets" => Some(p.windows(2).filter(|x| x[1].1 < x[0].1).count() as f64),
        "changes" => Some(
            p.windows(2)
                .filter(|x| x[1].1 != x[0].1 && !(x[1].1.is_nan() && x[0].1.is_nan()))
                .count() as f64,
        ),
        "avg_over_time" => Some(mean(&values())),
        "min_over_time" => Some(min(&values())),
        "max_over_time" => Some(max(&values())),
        "sum_over_time" => Some(kahan_sum(&values())),
        "count_over_time" => Some(p.len() as f64),
        "quantile_over_time" => Some(quantile(scalars[0], values())),
        "stdvar_over_time" => Some(stdvar_over_time(&values())),
        "stddev_over_time" => Some(stdvar_over_time(&values()).sqrt()),
        "last_over_time" => p.last().map(|x| x.1),
        "first_over_time" => p.first().map(|x| x.1),
        "present_over_time" => Some(1.0),
        "mad_over_time" => {
            let v = values();
            let median = quantile(0.5, v.clone());
            Some(quantile(
                0.5,
                v.iter().map(|x| (x - median).abs()).collect(),
            ))
        }
        "double_exponential_smoothing" => double_exponential_smoothing(p, scalars[0], scalars[1])?,
        _ => unreachable!("BUG: {name} is not a range function"),
    })
}

/// Prometheus 3's `extrapolatedRate`: the increase between the first and last sample
/// (adding back counter resets), extrapolated towards the window's edges when the
/// samples come within 1.1 average intervals of them (half an interval otherwise), and
/// for counters not below the point where the counter would have been zero. `may_reset`
/// false skips the search for counter resets (the caller knows there are none).
fn extrapolated_rate(
    w: &Window<'_>,
    is_counter: bool,
    may_reset: bool,
    is_rate: bool,
) -> Option<f64> {
    let p = w.points;
    if p.len() < 2 {
        return None;
    }
    let (first_t, first_v) = p[0];
    let (last_t, last_v) = p[p.len() - 1];
    let mut result = last_v - first_v;
    if is_counter && may_reset {
        let mut prev = first_v;
        for &(_, v) in &p[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut to_start = (first_t - w.start) as f64 / 1000.0;
    let mut to_end = (w.end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / (p.len() - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if is_counter && result > 0.0 && first_v >= 0.0 {
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= (w.end - w.start) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate`/`idelta`: from the last two samples; a drop counts as a reset for `irate`.
fn instant_value(p: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (lt, lv) = p[p.len() - 1];
    let (pt, pv) = p[p.len() - 2];
    let mut v = if is_rate && lv < pv { lv } else { lv - pv };
    let interval = lt - pt;
    if interval == 0 {
        return None;
    }
    if is_rate {
        v /= interval as f64 / 1000.0;
    }
    Some(v)
}

/// Least-squares fit of the points with x in seconds relative to `intercept_t`; returns
/// `(slope, intercept)`, Kahan-compensated as Prometheus' `linearRegression`.
fn linear_regression(p: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = p[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in p.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// Population variance with Kahan-compensated incremental mean, as `stdvar_over_time`.
fn stdvar_over_time(values: &[f64]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &v in values {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// Holt's linear (double exponential) smoothing with smoothing factor `sf` and trend
/// factor `tf`, both in `(0, 1)`.
fn double_exponential_smoothing(
    p: &[(i64, f64)],
    sf: f64,
    tf: f64,
) -> Result<Option<f64>, QueryError> {
    if sf <= 0.0 || sf >= 1.0 {
        return Err(QueryError::execution(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        )));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(QueryError::execution(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        )));
    }
    if p.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, p[0].1);
    let mut b = p[1].1 - p[0].1;
    for (i, &(_, v)) in p.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Ok(Some(s1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(points: &[(i64, f64)], start: i64, end: i64) -> Window<'_> {
        Window {
            points,
            start,
            end,
            t: end,
        }
    }

    fn run(name: &str, points: &[(i64, f64)], start: i64, end: i64, s: &[f64]) -> Option<f64> {
        apply(name, &w(points, start, end), s).unwrap()
    }

    #[test]
    fn rate_extrapolates_to_window_edges() {
        // Samples every 10s at 5s..55s in (0, 60]: 5s to either edge is under 1.1 * 10s,
        // so the 50s increase of 50 extrapolates to the whole 60s.
        let p: Vec<(i64, f64)> = (0..6)
            .map(|k| (5_000 + k * 10_000, 100.0 + k as f64 * 10.0))
            .collect();
        assert_eq!(run("increase", &p, 0, 60_000, &[]), Some(60.0));
        assert_eq!(run("rate", &p, 0, 60_000, &[]), Some(1.0));
        assert_eq!(run("delta", &p, 0, 60_000, &[]), Some(60.0));
        // A gap of 30s at the end is past the threshold: extrapolate half an interval.
        assert_eq!(
            run("increase", &p, 0, 85_000, &[]),
            Some(50.0 * 60.0 / 50.0)
        );
        assert_eq!(run("rate", &p[..1], 0, 60_000, &[]), None);
    }

    #[test]
    fn counter_resets_and_zero_floor() {
        // 10, 20, reset to 5: increase 20 - 10 + 5 = 15 over 20s sampled.
        let p = [(10_000, 10.0), (20_000, 20.0), (30_000, 5.0)];
        // to_start 10s, to_end 10s, both under 11s; the zero point is 20*10/15 = 13.3s
        // away, further than to_start: factor 40/20.
        assert_eq!(run("increase", &p, 0, 40_000, &[]), Some(30.0));
        assert_eq!(run("resets", &p, 0, 40_000, &[]), Some(1.0));
        assert_eq!(run("changes", &p, 0, 40_000, &[]), Some(2.0));
        // Starting at 1 with increase 10 over 10s: zero is 1s before the first sample.
        let p = [(10_000, 1.0), (20_000, 11.0)];
        assert_eq!(
            run("increase", &p, 0, 20_000, &[]),
            Some(10.0 * 11.0 / 10.0)
        );
        // delta is not a counter: no reset handling and no zero floor.
        assert_eq!(
            run("delta", &[(10_000, 10.0), (20_000, 5.0)], 0, 20_000, &[]),
            Some(-10.0)
        );
    }

    #[test]
    fn instant_rates() {
        let p = [(0, 1.0), (10_000, 6.0), (20_000, 2.0)];
        assert_eq!(run("irate", &p, -1, 20_000, &[]), Some(0.2));
        assert_eq!(run("idelta", &p, -1, 20_000, &[]), Some(-4.0));
        assert_eq!(run("irate", &p[..2], -1, 20_000, &[]), Some(0.5));
    }

    #[test]
    fn regression() {
        let p = [(0, 1.0), (10_000, 3.0), (20_000, 5.0)];
        assert_eq!(run("deriv", &p, -1, 20_000, &[]), Some(0.2));
        // At t=20s the fit is 5; 10s later 7.
        assert_eq!(run("predict_linear", &p, -1, 20_000, &[10.0]), Some(7.0));
        assert_eq!(run("deriv", &[(0, 1.0), (5, 1.0)], -1, 5, &[]), Some(0.0));
    }

    #[test]
    fn over_time() {
        let p = [(1, 1.0), (2, 4.0), (3, 2.0), (4, 5.0)];
        assert_eq!(run("avg_over_time", &p, 0, 4, &[]), Some(3.0));
        assert_eq!(run("sum_over_time", &p, 0, 4, &[]), Some(12.0));
        assert_eq!(run("min_over_time", &p, 0, 4, &[]), Some(1.0));
        assert_eq!(run("max_over_time", &p, 0, 4, &[]), Some(5.0));
        assert_eq!(run("count_over_time", &p, 0, 4, &[]), Some(4.0));
        assert_eq!(run("last_over_time", &p, 0, 4, &[]), Some(5.0));
        assert_eq!(run("first_over_time", &p, 0, 4, &[]), Some(1.0));
        assert_eq!(run("present_over_time", &p, 0, 4, &[]), Some(1.0));
        assert_eq!(run("quantile_over_time", &p, 0, 4, &[0.5]), Some(3.0));
        assert_eq!(run("stdvar_over_time", &p, 0, 4, &[]), Some(2.5));
        assert_eq!(run("stddev_over_time", &p, 0, 4, &[]), Some(2.5f64.sqrt()));
        // Median 3; deviations 2, 1, 1, 2: median 1.5.
        assert_eq!(run("mad_over_time", &p, 0, 4, &[]), Some(1.5));
    }

    #[test]
    fn double_exponential_smoothing_follows_holt() {
        // s1=1, b=1; i=1: s1 = 0.5*2 + 0.5*(1+1) = 2; i=2: b = 0.5*(2-1)+0.5*1 = 1,
        // s1 = 0.5*3 + 0.5*(2+1) = 3.
        let p = [(0, 1.0), (1, 2.0), (2, 3.0)];
        assert_eq!(
            run("double_exponential_smoothing", &p, -1, 2, &[0.5, 0.5]),
            Some(3.0)
        );
        assert!(apply("double_exponential_smoothing", &w(&p, -1, 2), &[1.0, 0.5]).is_err());
    }
}
