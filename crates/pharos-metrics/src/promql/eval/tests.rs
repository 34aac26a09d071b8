//! Evaluator tests over a small store: lookback, staleness, offset, `@`, matchers.

use super::*;
use crate::store::{Labels, MetricsStore, STALE_NAN_BITS};

pub(in crate::promql) fn store() -> MetricsStore {
    let s = MetricsStore::new();
    let a = || Labels::from_pairs([("__name__", "m"), ("job", "a")]);
    let b = || Labels::from_pairs([("__name__", "m"), ("job", "b")]);
    // a: samples every 60s from 0 to 600s, then a stale marker at 660s.
    for k in 0..=10 {
        s.append_sample(a(), k * 60_000, k as f64);
    }
    s.append_sample(a(), 660_000, f64::from_bits(STALE_NAN_BITS));
    // b: one sample at 30s, one at 1000s.
    s.append_sample(b(), 30_000, 100.0);
    s.append_sample(b(), 1_000_000, 200.0);
    for k in 0..=10 {
        s.append_sample(
            Labels::from_pairs([("__name__", "n"), ("job", "a")]),
            k * 60_000,
            7.0,
        );
    }
    s.append_sample(
        Labels::from_pairs([("__name__", "other"), ("x", "y\nz")]),
        0,
        1.0,
    );
    s
}

pub(in crate::promql) fn render(v: Value) -> String {
    match v {
        Value::Scalar { t_ms, value } => format!("scalar {t_ms}={value}"),
        Value::String { t_ms, value } => format!("string {t_ms}={value}"),
        Value::Vector(v) => v
            .iter()
            .map(|s| format!("{} {}={}", s.labels, s.t_ms, s.value))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Matrix(m) => m
            .iter()
            .map(|s| {
                let pts: Vec<String> = s.points.iter().map(|(t, v)| format!("{t}={v}")).collect();
                format!("{} {}", s.labels, pts.join(" "))
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Checks an instant query at `t_s` seconds over [`store`]; errors render as `error: ...`.
pub(in crate::promql) fn check(query: &str, t_s: i64, expected: &str) {
    let got = match instant_query(&store(), query, t_s * 1000, &QueryOptions::default()) {
        Ok(v) => render(v),
        Err(e) => format!("error: {e}"),
    };
    assert_eq!(got, expected, "{query} @ {t_s}");
}

#[test]
fn lookback_takes_newest_sample_within_five_minutes() {
    check(
        "m",
        90,
        "{__name__=\"m\", job=\"a\"} 90000=1\n{__name__=\"m\", job=\"b\"} 90000=100",
    );
    // b's sample at 30s is exactly 5m before 330s: the window is left-open, so it is gone.
    check(
        "m{job=\"b\"}",
        329,
        "{__name__=\"m\", job=\"b\"} 329000=100",
    );
    check("m{job=\"b\"}", 330, "");
    check(
        "m{job=\"b\"}",
        1000,
        "{__name__=\"m\", job=\"b\"} 1000000=200",
    );
}

#[test]
fn stale_marker_ends_the_series() {
    check("m{job=\"a\"}", 659, "{__name__=\"m\", job=\"a\"} 659000=10");
    check("m{job=\"a\"}", 660, "");
    check("m{job=\"a\"}", 800, "");
}

#[test]
fn offset_and_at_move_the_reference_time() {
    check(
        "m{job=\"a\"} offset 2m",
        300,
        "{__name__=\"m\", job=\"a\"} 300000=3",
    );
    check(
        "m{job=\"a\"} @ 120",
        5000,
        "{__name__=\"m\", job=\"a\"} 5000000=2",
    );
    check(
        "m{job=\"a\"} @ 180 offset -1m",
        0,
        "{__name__=\"m\", job=\"a\"} 0=4",
    );
}

#[test]
fn matchers_of_all_four_kinds() {
    check("m{job!=\"a\"}", 60, "{__name__=\"m\", job=\"b\"} 60000=100");
    check("m{job=~\"a|c\"}", 60, "{__name__=\"m\", job=\"a\"} 60000=1");
    check(
        "{__name__=~\"m|other\", job!~\"a\"}",
        60,
        "{__name__=\"m\", job=\"b\"} 60000=100\n{__name__=\"other\", x=\"y\\nz\"} 60000=1",
    );
    check(
        "other{x=~\"y.z\"}",
        0,
        "{__name__=\"other\", x=\"y\\nz\"} 0=1",
    );
}

#[test]
fn matrix_selector_is_left_open_and_drops_stale_markers() {
    check(
        "m{job=\"a\"}[2m]",
        240,
        "{__name__=\"m\", job=\"a\"} 180000=3 240000=4",
    );
    check("m{job=\"a\"}[2m]", 720, "");
}

#[test]
fn literals() {
    check("1.5", 10, "scalar 10000=1.5");
    check("-(2)", 10, "scalar 10000=-2");
    check("\"hi\"", 10, "string 10000=hi");
}

#[test]
fn range_query_steps_and_types() {
    let s = store();
    let got = range_query(
        &s,
        "m{job=\"a\"}",
        600_000,
        720_000,
        30_000,
        &QueryOptions::default(),
    )
    .map(render);
    assert_eq!(
        got.as_deref(),
        Ok("{__name__=\"m\", job=\"a\"} 600000=10 630000=10")
    );
    let got = range_query(&s, "2", 0, 50_000, 20_000, &QueryOptions::default()).map(render);
    assert_eq!(got.as_deref(), Ok("{} 0=2 20000=2 40000=2"));
    assert_eq!(
        range_query(&s, "m[5m]", 0, 1, 1, &QueryOptions::default()),
        Err(QueryError::InvalidRangeType("range vector"))
    );
    assert_eq!(
        range_query(&s, "\"x\"", 0, 1, 1, &QueryOptions::default()),
        Err(QueryError::InvalidRangeType("string"))
    );
}

#[test]
fn unsupported_and_invalid_queries() {
    let s = store();
    let err = instant_query(&s, "histogram_count(m)", 0, &QueryOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported expression: histogram_count(m)"
    );
    assert!(matches!(
        instant_query(&s, "m{", 0, &QueryOptions::default()),
        Err(QueryError::Parse(_))
    ));
    assert!(matches!(
        instant_query(&s, "", 0, &QueryOptions::default()),
        Err(QueryError::Parse(_))
    ));
    let past = QueryOptions {
        deadline: Some(Instant::now() - Duration::from_secs(1)),
        ..Default::default()
    };
    assert_eq!(
        instant_query(&s, "m", 0, &past),
        Err(QueryError::Timeout("expression evaluation"))
    );
}

#[test]
fn max_samples_limit() {
    let s = store();
    let small = QueryOptions {
        max_samples: 3,
        ..Default::default()
    };
    assert!(instant_query(&s, "m", 120_000, &small).is_ok());
    let err = instant_query(&s, "m[5m]", 300_000, &small).unwrap_err();
    assert_eq!(
        err.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
    // A range query also counts the points it has produced so far.
    assert!(range_query(&s, "m{job=\"a\"}", 0, 120_000, 60_000, &small).is_ok());
    assert!(range_query(&s, "m{job=\"a\"}", 0, 180_000, 60_000, &small).is_err());
}

#[test]
fn range_queries_evaluate_every_construct_per_step() {
    let s = store();
    let got = range_query(
        &s,
        "sum(rate(m{job=\"a\"}[2m])) * 60",
        120_000,
        240_000,
        60_000,
        &QueryOptions::default(),
    )
    .map(render);
    assert_eq!(got.as_deref(), Ok("{} 120000=1 180000=1 240000=1"));
    let got = range_query(&s, "time() - 1", 0, 2_000, 1_000, &QueryOptions::default()).map(render);
    assert_eq!(got.as_deref(), Ok("{} 0=-1 1000=0 2000=1"));
    let got = range_query(
        &s,
        "m{job=\"a\"} @ start()",
        60_000,
        120_000,
        60_000,
        &QueryOptions::default(),
    )
    .map(render);
    assert_eq!(
        got.as_deref(),
        Ok("{__name__=\"m\", job=\"a\"} 60000=1 120000=1")
    );
}

fn stats_of(query: &str, t: i64) -> QueryStats {
    let opts = QueryOptions {
        per_step_stats: true,
        ..Default::default()
    };
    instant_query_with_stats(&store(), query, t, &opts)
        .unwrap()
        .1
}

#[test]
fn stats_count_the_samples_selectors_load() {
    // a's sample at 120s, b's at 30s (within the lookback); n's at 120s.
    let s = stats_of("m", 120_000);
    assert_eq!(
        (s.total_queryable_samples, s.peak_samples, s.per_step),
        (2, 2, Some(vec![(120_000, 2)]))
    );
    assert_eq!(
        stats_of("sum(m) + sum(n)", 120_000).total_queryable_samples,
        3
    );
    // Windows count their points: a has 5 in (0, 300s], b 1.
    assert_eq!(stats_of("rate(m[5m])", 300_000).total_queryable_samples, 6);
    assert_eq!(stats_of("m[2m]", 300_000).total_queryable_samples, 2);
    // A stale marker is no point: a's 600s sample only in (580s, 700s].
    assert_eq!(
        stats_of("count_over_time(m{job=\"a\"}[2m])", 700_000).total_queryable_samples,
        1
    );
    assert_eq!(stats_of("vector(1) + time()", 0).total_queryable_samples, 0);
    // A subquery feeding a function counts the 3 points the function sees (180s, 240s,
    // 300s), not the 6 its rate read; as the whole query it counts what it read.
    let inner = "rate(m{job=\"a\"}[2m])";
    assert_eq!(
        stats_of(&format!("sum_over_time({inner}[3m:1m])"), 300_000).total_queryable_samples,
        3
    );
    assert_eq!(
        stats_of(&format!("({inner})[3m:1m]"), 300_000).total_queryable_samples,
        6
    );
    let s = stats_of(&format!("({inner}[3m:1m])"), 300_000);
    assert_eq!(s.total_queryable_samples, 6);
    assert!(s.timings.exec_total >= s.timings.eval_total);
    assert!(s.timings.eval_total >= s.timings.inner_eval + s.timings.query_preparation);
    assert_eq!(s.timings.exec_queue, Duration::ZERO);
    // Without asking, no per-step counts.
    let (_, s) = instant_query_with_stats(&store(), "m", 0, &QueryOptions::default()).unwrap();
    assert_eq!((s.total_queryable_samples, s.per_step), (1, None));
}

#[test]
fn range_stats_count_every_step() {
    let opts = QueryOptions {
        per_step_stats: true,
        ..Default::default()
    };
    // b's first sample (30s) is seen from the second step on.
    let (_, s) = range_query_with_stats(&store(), "m", 0, 180_000, 60_000, &opts).unwrap();
    assert_eq!(
        (s.total_queryable_samples, s.per_step),
        (
            7,
            Some(vec![(0, 1), (60_000, 2), (120_000, 2), (180_000, 2)])
        )
    );
    // The result's 7 points are held at once at the end.
    assert_eq!(s.peak_samples, 7);
    // `@` pins the selector: the same 2 samples at every step.
    let (_, s) = range_query_with_stats(&store(), "m @ 120", 0, 120_000, 60_000, &opts).unwrap();
    assert_eq!(s.per_step, Some(vec![(0, 2), (60_000, 2), (120_000, 2)]));
    // One aggregated point per step; the peak is the step's selection plus the result so
    // far: 2 + 2 at the last step.
    let (_, s) =
        range_query_with_stats(&store(), "sum(m)", 60_000, 180_000, 60_000, &opts).unwrap();
    assert_eq!((s.total_queryable_samples, s.peak_samples), (6, 4));
}

/// A store of counters that reset, go stale, hold NaN, ±Inf and huge values, in groups
/// that come and go: what the all-steps paths of range functions and aggregations must
/// treat exactly as the step-by-step evaluation does.
fn awkward_store() -> MetricsStore {
    let s = MetricsStore::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Series 24-29 are named `d`, 30 is `dup` with the labels of `c` series 0 otherwise.
    for series in 0..31u64 {
        let g = ["a", "b", "c"][(series % 3) as usize];
        let le = ["0.1", "1", "+Inf"][(series / 3 % 3) as usize];
        let (name, i) = match series {
            0..24 => ("c", series),
            24..30 => ("d", series),
            _ => ("dup", 0),
        };
        let labels = Labels::from_pairs([
            ("__name__", name),
            ("g", g),
            ("le", le),
            ("i", &i.to_string()),
        ]);
        // Some series start late or stop early, so groups come and go.
        let (first, last) = (next() % 40, 120 - next() % 40);
        let mut v = 0.0;
        for k in first..last {
            let r = next();
            v = match r % 50 {
                0 => 0.0,
                1 => f64::NAN,
                2 => f64::INFINITY,
                3 => 1e308,
                4 => f64::from_bits(STALE_NAN_BITS),
                _ if v.is_finite() => v + (r % 1000) as f64 / 7.0,
                _ => 1.0,
            };
            s.append_sample(labels.clone(), k as i64 * 15_000 + (r % 5) as i64, v);
        }
    }
    s
}

#[test]
fn all_steps_paths_match_step_by_step_evaluation() {
    let s = awkward_store();
    let opts = QueryOptions::default();
    let (start, end, step) = (300_000, 1_800_000, 60_000);
    for q in [
        "rate(c[5m])",
        "increase(c[3m])",
        "delta(c[5m] offset 1m)",
        "last_over_time(c[2m])",
        "sum by (le) (rate(c[5m]))",
        "sum by (g, le) (increase(c[5m]))",
        "sum(rate(c[5m]))",
        "avg without (i) (rate(c[5m]))",
        "count by (g) (rate(c[5m]))",
        "group by (g) (rate(c[5m]))",
        "min by (le) (rate(c[5m]))",
        "max by (le) (delta(c[5m]))",
        "stdvar by (g) (rate(c[5m]))",
        "stddev by (g) ((rate(c[5m])))",
        "sum by (__name__) (last_over_time(c[2m]))",
        "histogram_quantile(0.9, sum by (le) (rate(c[5m])))",
        "histogram_quantile(0.5, sum by (g, le) (rate(c[5m])))",
        "sum by (g) (rate({__name__=~\"c|d\"}[5m]))",
        "sum by (__name__, g) (rate({__name__=~\"c|d\"}[5m]))",
        "sum by (__name__, g) (last_over_time({__name__=~\"c|d\"}[5m]))",
        "max without (g) (last_over_time({__name__=~\"c|dup\"}[5m]))",
        "sum by (g) (rate({__name__=~\"c|dup\"}[5m]))",
        "rate({__name__=~\"c|dup\"}[5m])",
    ] {
        let got = match range_query(&s, q, start, end, step, &opts) {
            Ok(Value::Matrix(m)) => m,
            Ok(_) => panic!("{q}: not a matrix"),
            Err(e) => {
                // The same error as at the first step that fails.
                let mut t = start;
                let first = loop {
                    assert!(t <= end, "{q}: {e} in a range query only");
                    if let Err(e) = instant_query(&s, q, t, &opts) {
                        break e;
                    }
                    t += step;
                };
                assert_eq!(e, first, "{q}");
                continue;
            }
        };
        let mut want: BTreeMap<Labels, Vec<(i64, u64)>> = BTreeMap::new();
        let mut t = start;
        while t <= end {
            let Value::Vector(v) = instant_query(&s, q, t, &opts).unwrap() else {
                panic!("{q}: not a vector");
            };
            for e in v {
                want.entry(e.labels)
                    .or_default()
                    .push((t, e.value.to_bits()));
            }
            t += step;
        }
        let got: BTreeMap<Labels, Vec<(i64, u64)>> = got
            .into_iter()
            .map(|s| {
                let pts = s.points.iter().map(|&(t, v)| (t, v.to_bits())).collect();
                (s.labels, pts)
            })
            .collect();
        assert!(!want.is_empty(), "{q}: no data");
        assert_eq!(got, want, "{q}");
    }
    // The aggregation loads what its range function loads, step by step.
    let stats = |q: &str| {
        let opts = QueryOptions {
            per_step_stats: true,
            ..Default::default()
        };
        range_query_with_stats(&s, q, start, end, step, &opts)
            .unwrap()
            .1
    };
    let (plain, summed) = (stats("rate(c[5m])"), stats("sum by (le) (rate(c[5m]))"));
    assert_eq!(
        plain.total_queryable_samples,
        summed.total_queryable_samples
    );
    assert_eq!(plain.per_step, summed.per_step);
    // And the limit applies at the same step.
    let limit = |q: &str, max_samples: usize| {
        let opts = QueryOptions {
            max_samples,
            ..Default::default()
        };
        range_query(&s, q, start, end, step, &opts).is_ok()
    };
    for max in [10, 100, 150, 300, 1000] {
        assert_eq!(
            limit("count(rate(c[5m]))", max),
            limit("count(rate(c[5m]) * 1)", max),
            "max_samples {max}"
        );
    }
}
