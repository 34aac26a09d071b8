//! Evaluator tests: metric results are checked against a brute-force evaluation written
//! here (every window scanned entry by entry), log results against expected rows.

use super::*;
use crate::logql::{Expr, parse_expr};
use crate::store::Entry;

const S: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * S;

/// 3 streams over 10 minutes; every line is logfmt with a level, a latency and a path.
fn store() -> LogStore {
    let store = LogStore::new();
    let levels = ["info", "warn", "error"];
    for app in ["api", "web", "db"] {
        for i in 0..600i64 {
            if (i * 7 + app.len() as i64) % 5 == 0 {
                continue; // gaps
            }
            let level = levels[((i / 3) % 3) as usize];
            let latency_ms = (i * 37 + app.len() as i64 * 11) % 900;
            let line = format!(
                "level={level} latency={latency_ms}ms path=/p{} msg=\"req {i}\"",
                i % 4
            );
            let mut labels = Labels::new();
            labels.insert("app".into(), app.into());
            labels.insert("service_name".into(), app.into());
            store.push(
                labels,
                Entry {
                    ts_ns: T0 + i * S,
                    line,
                    metadata: vec![("trace_id".into(), format!("{:032x}", i % 10).into())],
                },
            );
        }
    }
    store
}

/// Every (app, ts, line, metadata) of the store.
fn all(store: &LogStore) -> Vec<(String, i64, String, String)> {
    let mut out = Vec::new();
    store.visit(
        |_| true,
        &[],
        i64::MIN,
        i64::MAX,
        Direction::Forward,
        |l, e| {
            out.push((
                l["app"].clone(),
                e.ts_ns,
                e.line.clone(),
                e.metadata[0].1.to_string(),
            ));
            Visit::Continue
        },
    );
    out
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or("")
}

fn matrix(store: &LogStore, q: &str, steps: &Steps) -> Vec<Series> {
    let Expr::Metric(m) = parse_expr(q).unwrap() else {
        panic!("{q} is not a metric query")
    };
    match eval_metric(store, &m, steps).unwrap() {
        Value::Matrix(m) => m,
        Value::Scalar(v) => panic!("{q}: scalar {v}"),
    }
}

fn steps() -> Steps {
    Steps {
        start_ns: T0 + 30 * S,
        end_ns: T0 + 620 * S,
        step_ns: 17 * S,
    }
}

/// The brute-force window: entries with t - range < ts <= t.
fn window(
    rows: &[(String, i64, String, String)],
    t: i64,
    range: i64,
) -> impl Iterator<Item = &(String, i64, String, String)> {
    rows.iter().filter(move |r| r.1 > t - range && r.1 <= t)
}

#[test]
fn counts_rates_and_bytes_match_a_brute_force_scan() {
    let store = store();
    let rows = all(&store);
    let st = steps();
    let got = matrix(
        &store,
        r#"sum by (app) (count_over_time({service_name=~".+"} |= "error" [1m]))"#,
        &st,
    );
    let got_rate = matrix(
        &store,
        r#"sum by (app) (rate({service_name=~".+"} |= "error" [1m]))"#,
        &st,
    );
    let got_bytes = matrix(
        &store,
        r#"sum by (app) (bytes_over_time({service_name=~".+"} |= "error" [1m]))"#,
        &st,
    );
    for app in ["api", "db", "web"] {
        let s = got.iter().find(|s| s.labels["app"] == app).unwrap();
        let r = got_rate.iter().find(|s| s.labels["app"] == app).unwrap();
        let b = got_bytes.iter().find(|s| s.labels["app"] == app).unwrap();
        assert_eq!(s.labels.len(), 1, "only the grouping label");
        for i in 0..st.count() {
            let t = st.at(i);
            let w: Vec<_> = window(&rows, t, 60 * S)
                .filter(|r| r.0 == app && r.2.contains("error"))
                .collect();
            let want = (!w.is_empty()).then_some(w.len() as f64);
            assert_eq!(s.values[i], want, "{app} step {i}");
            assert_eq!(r.values[i], want.map(|n| n / 60.0));
            let bytes: usize = w.iter().map(|r| r.2.len()).sum();
            assert_eq!(b.values[i], want.map(|_| bytes as f64));
        }
    }
    // Without the outer sum, each stream and metadata value is a series of its own.
    let unaggregated = matrix(
        &store,
        r#"count_over_time({app="api"} |= "error" [1m])"#,
        &st,
    );
    let traces: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.0 == "api" && r.2.contains("error"))
        .filter(|r| (0..st.count()).any(|i| r.1 > st.at(i) - 60 * S && r.1 <= st.at(i)))
        .map(|r| r.3.as_str())
        .collect();
    assert!(traces.len() > 1);
    assert_eq!(unaggregated.len(), traces.len(), "one series per trace_id");
    assert!(
        unaggregated
            .iter()
            .all(|s| s.labels.contains_key("trace_id"))
    );
    let total: f64 = unaggregated.iter().filter_map(|s| s.values[5]).sum();
    let s = got.iter().find(|s| s.labels["app"] == "api").unwrap();
    assert_eq!(Some(total), s.values[5], "the fold equals the plain sum");
}

#[test]
fn unwrapped_aggregations_match_a_brute_force_scan() {
    let store = store();
    let rows = all(&store);
    let st = steps();
    let latency = |r: &(String, i64, String, String)| -> f64 {
        field(&r.2, "latency")
            .trim_end_matches("ms")
            .parse::<f64>()
            .unwrap()
            / 1000.0
    };
    for (func, agg) in [
        ("avg_over_time", "avg"),
        ("max_over_time", "max"),
        ("min_over_time", "min"),
        ("sum_over_time", "sum"),
        ("first_over_time", "first"),
        ("last_over_time", "last"),
        ("stddev_over_time", "stddev"),
        ("quantile_over_time(0.9,", "q90"),
    ] {
        let open = if func.ends_with(',') { "" } else { "(" };
        let q = format!(
            r#"{func}{open}{{app="web"}} | logfmt | unwrap duration(latency) [2m]) by (path)"#
        );
        let got = matrix(&store, &q, &st);
        assert_eq!(got.len(), 4, "{q}: one series per path");
        for s in &got {
            assert_eq!(s.labels.keys().collect::<Vec<_>>(), ["path"], "{q}");
            for i in 0..st.count() {
                let mut xs: Vec<f64> = window(&rows, st.at(i), 120 * S)
                    .filter(|r| r.0 == "web" && field(&r.2, "path") == s.labels["path"])
                    .map(latency)
                    .collect();
                let want = if xs.is_empty() {
                    None
                } else {
                    let n = xs.len() as f64;
                    let mean = xs.iter().sum::<f64>() / n;
                    Some(match agg {
                        "avg" => mean,
                        "max" => xs.iter().copied().fold(f64::MIN, f64::max),
                        "min" => xs.iter().copied().fold(f64::MAX, f64::min),
                        "sum" => xs.iter().sum(),
                        "first" => xs[0],
                        "last" => xs[xs.len() - 1],
                        "stddev" => (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt(),
                        _ => {
                            xs.sort_by(f64::total_cmp);
                            let rank = 0.9 * (n - 1.0);
                            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
                            xs[lo] + (xs[hi] - xs[lo]) * (rank - rank.floor())
                        }
                    })
                };
                match (s.values[i], want) {
                    (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{q} step {i}: {a} vs {b}"),
                    (a, b) => assert_eq!(a, b, "{q} step {i}"),
                }
            }
        }
    }
    // Without grouping, the unwrapped label leaves the series labels.
    let got = matrix(
        &store,
        r#"max_over_time({app="web"} | logfmt | unwrap duration(latency) [1m])"#,
        &st,
    );
    assert!(
        got.iter()
            .all(|s| !s.labels.contains_key("latency") && s.labels.contains_key("level"))
    );
}

#[test]
fn errors_fail_metric_queries_unless_filtered() {
    let store = store();
    let st = steps();
    let Expr::Metric(m) = parse_expr(r#"sum(count_over_time({app="api"} | json [1m]))"#).unwrap()
    else {
        panic!()
    };
    let err = eval_metric(&store, &m, &st).unwrap_err().0;
    assert!(
        err.starts_with("pipeline error: 'JSONParserErr' for series: '{"),
        "{err}"
    );
    let ok = matrix(
        &store,
        r#"sum(count_over_time({app="api"} | json | __error__="" [1m]))"#,
        &st,
    );
    assert!(ok.is_empty(), "no line is JSON");
    let dropped = matrix(
        &store,
        r#"sum(count_over_time({app="api"} | json | drop __error__, __error_details__ [1m]))"#,
        &st,
    );
    assert_eq!(dropped.len(), 1);
    // A value that does not convert is a SampleExtractionErr.
    let Expr::Metric(m) =
        parse_expr(r#"sum_over_time({app="api"} | logfmt | unwrap path [1m])"#).unwrap()
    else {
        panic!()
    };
    assert!(
        eval_metric(&store, &m, &st)
            .unwrap_err()
            .0
            .contains("SampleExtractionErr")
    );
}

#[test]
fn binary_operations_topk_and_absent() {
    let store = store();
    let st = steps();
    let count = |app: &str| {
        matrix(
            &store,
            &format!(r#"sum(count_over_time({{app="{app}"}}[1m]))"#),
            &st,
        )
        .remove(0)
        .values
    };
    let (api, web) = (count("api"), count("web"));
    let ratio = matrix(
        &store,
        r#"sum(count_over_time({app="api"}[1m])) / sum(count_over_time({app="web"}[1m])) * 100"#,
        &st,
    );
    for i in 0..st.count() {
        let want = api[i].zip(web[i]).map(|(a, w)| a / w * 100.0);
        assert_eq!(ratio[0].values[i], want);
    }
    // by-app vectors matched on app; a comparison filters, with bool it answers 0/1.
    let by_app = r#"sum by (app) (count_over_time({service_name=~".+"}[1m]))"#;
    let gt = matrix(&store, &format!("{by_app} > 50"), &st);
    let gt_bool = matrix(&store, &format!("{by_app} > bool 50"), &st);
    let plain = matrix(&store, by_app, &st);
    for (p, b) in plain.iter().zip(&gt_bool) {
        assert_eq!(p.labels, b.labels);
        for i in 0..st.count() {
            assert_eq!(
                b.values[i],
                p.values[i].map(|v| f64::from(u8::from(v > 50.0)))
            );
            let filtered = gt
                .iter()
                .find(|s| s.labels == p.labels)
                .and_then(|s| s.values[i]);
            assert_eq!(filtered, p.values[i].filter(|v| *v > 50.0));
        }
    }
    let top = matrix(
        &store,
        &format!("topk(1, {by_app})"),
        &Steps::instant(T0 + 300 * S),
    );
    assert_eq!(top.len(), 1);
    let at = matrix(&store, by_app, &Steps::instant(T0 + 300 * S));
    let max = at
        .iter()
        .filter_map(|s| s.values[0])
        .fold(f64::MIN, f64::max);
    assert_eq!(top[0].values[0], Some(max));
    let unless = matrix(
        &store,
        &format!(r#"{by_app} unless {by_app} > 1000000"#),
        &st,
    );
    assert_eq!(unless, plain, "nothing is above a million");
    let and = matrix(&store, &format!(r#"{by_app} and {by_app} > 1000000"#), &st);
    assert!(and.is_empty());
    // absent_over_time answers 1 where nothing matched, labelled by the selector.
    let absent = matrix(
        &store,
        r#"absent_over_time({app="nope", env="x"}[1m])"#,
        &st,
    );
    assert_eq!(absent.len(), 1);
    assert_eq!(
        absent[0].labels.get("app").map(String::as_str),
        Some("nope")
    );
    assert!(absent[0].values.iter().all(|v| *v == Some(1.0)));
    assert!(matrix(&store, r#"absent_over_time({app="api"}[1m])"#, &st).is_empty());
    // Scalars.
    let Expr::Metric(m) = parse_expr("2 * 3 + 1").unwrap() else {
        panic!()
    };
    assert_eq!(eval_metric(&store, &m, &st).unwrap(), Value::Scalar(7.0));
}

#[test]
fn log_queries_run_the_pipeline() {
    let store = store();
    let Expr::Log(e) = parse_expr(
        r#"{app="db"} | logfmt | level="error" and latency > 800ms | line_format "{{.path}} {{.latency}}" | keep app, path, latency"#,
    )
    .unwrap() else {
        panic!()
    };
    let rows = select(
        &store,
        &e,
        &QueryParams {
            start_ns: T0,
            end_ns: T0 + 600 * S,
            direction: Direction::Forward,
            limit: 1000,
        },
    );
    let want: Vec<String> = all(&store)
        .into_iter()
        .filter(|r| r.0 == "db" && field(&r.2, "level") == "error")
        .filter(|r| {
            field(&r.2, "latency")
                .trim_end_matches("ms")
                .parse::<f64>()
                .unwrap()
                > 800.0
        })
        .map(|r| format!("{} {}", field(&r.2, "path"), field(&r.2, "latency")))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(
        rows.iter().map(|r| r.line.clone()).collect::<Vec<_>>(),
        want
    );
    let names: Vec<&str> = rows[0].labels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names.len(), 3);
    assert!(names.contains(&"app") && names.contains(&"path") && names.contains(&"latency"));
    // Backward with a limit gives the newest.
    let rows = select(
        &store,
        &e,
        &QueryParams {
            start_ns: T0,
            end_ns: T0 + 600 * S,
            direction: Direction::Backward,
            limit: 2,
        },
    );
    assert_eq!(
        rows.iter().map(|r| r.line.clone()).collect::<Vec<_>>(),
        want.iter().rev().take(2).cloned().collect::<Vec<_>>()
    );
    // A structured metadata filter finds a trace's lines without a stream label for it.
    let Expr::Log(e) =
        parse_expr(&format!(r#"{{app=~"api|web"}} | trace_id="{:032x}""#, 3)).unwrap()
    else {
        panic!()
    };
    let rows = select(
        &store,
        &e,
        &QueryParams {
            start_ns: T0,
            end_ns: T0 + 600 * S,
            direction: Direction::Forward,
            limit: 1000,
        },
    );
    let want = all(&store)
        .into_iter()
        .filter(|r| r.0 != "db" && r.3 == format!("{:032x}", 3))
        .count();
    assert_eq!(rows.len(), want);
}
