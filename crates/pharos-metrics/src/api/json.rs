//! Writing Prometheus' JSON byte for byte: Go's string escaping (HTML characters as
//! `\u003c`...), timestamps as seconds with up to three decimals, values as quoted strings
//! in Prometheus' `marshalFloat` format (see [`float`]).

use std::fmt::Write;

use crate::promql::{QueryStats, RangeSeries, Value};
use crate::store::Labels;
use crate::store::translate::format_float;

/// Formats a sample value as Prometheus' `marshalFloat` does: Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)`, except `'e'` (`5.551115123125783e-17`,
/// `1e+21`) when `|v| < 1e-6` or `|v| >= 1e21`; `NaN`, `+Inf`, `-Inf` for the specials.
pub fn float(v: f64) -> String {
    let abs = v.abs();
    if !v.is_finite() || abs == 0.0 || (1e-6..1e21).contains(&abs) {
        return format_float(v);
    }
    // Rust's `{:e}` is the shortest round-tripping mantissa; Go writes the exponent with a
    // sign and at least two digits.
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').expect("BUG: {:e} always has an exponent");
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// Appends `s` as a JSON string, escaped as Go's `encoding/json` does.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a millisecond timestamp as Prometheus' `MarshalTimestamp` does: `1700000000`,
/// `1700000000.5` is written `1700000000.500`.
pub fn timestamp(out: &mut String, t_ms: i64) {
    let t = i128::from(t_ms);
    if t < 0 {
        out.push('-');
    }
    let t = t.abs();
    let _ = write!(out, "{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

/// Appends `[t, "v"]`.
pub fn point(out: &mut String, t_ms: i64, v: f64) {
    out.push('[');
    timestamp(out, t_ms);
    out.push_str(",\"");
    out.push_str(&float(v));
    out.push_str("\"]");
}

/// Appends a label set as an object, keys sorted.
pub fn labels(out: &mut String, l: &Labels) {
    out.push('{');
    for (i, (k, v)) in l.pairs().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, k);
        out.push(':');
        string(out, v);
    }
    out.push('}');
}

/// Appends a list of strings as an array.
pub fn strings(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, s);
    }
    out.push(']');
}

/// Appends a query result as `{"resultType":...,"result":...}`.
pub fn query_data(out: &mut String, v: &Value) {
    query_data_with_stats(out, v, None);
}

/// Appends a query result with Prometheus' `"stats"` beside it when there are any:
/// `{"resultType":...,"result":...,"stats":{"timings":{...},"samples":{...}}}`.
pub fn query_data_with_stats(out: &mut String, v: &Value, stats: Option<&QueryStats>) {
    query_result(out, v);
    if let Some(s) = stats {
        out.push_str(",\"stats\":");
        query_stats(out, s);
    }
    out.push('}');
}

/// Appends query statistics as Prometheus' `stats.BuiltinStats`: timings in seconds
/// (written as its JSON codec writes floats: `0.000012`, `5.51e-07`);
/// `totalQueryableSamplesPerStep` (`[[seconds, samples], ...]`) only when counted.
pub fn query_stats(out: &mut String, s: &QueryStats) {
    let t = &s.timings;
    out.push_str("{\"timings\":{");
    for (i, (name, d)) in [
        ("evalTotalTime", t.eval_total),
        ("resultSortTime", t.result_sort),
        ("queryPreparationTime", t.query_preparation),
        ("innerEvalTime", t.inner_eval),
        ("execQueueTime", t.exec_queue),
        ("execTotalTime", t.exec_total),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{name}\":{}", float(d.as_secs_f64()));
    }
    out.push_str("},\"samples\":{");
    if let Some(steps) = s.per_step.as_ref().filter(|s| !s.is_empty()) {
        out.push_str("\"totalQueryableSamplesPerStep\":[");
        for (i, (t_ms, n)) in steps.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "[{},{n}]", float(*t_ms as f64 / 1000.0));
        }
        out.push_str("],");
    }
    let _ = write!(
        out,
        "\"totalQueryableSamples\":{},\"peakSamples\":{}}}}}",
        s.total_queryable_samples, s.peak_samples
    );
}

/// Appends `{"resultType":...,"result":...` (unclosed).
fn query_result(out: &mut String, v: &Value) {
    out.push_str("{\"resultType\":\"");
    out.push_str(v.type_name());
    out.push_str("\",\"result\":");
    match v {
        Value::Scalar { t_ms, value } => point(out, *t_ms, *value),
        Value::String { t_ms, value } => {
            out.push('[');
            timestamp(out, *t_ms);
            out.push(',');
            string(out, value);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                labels(out, &s.labels);
                out.push_str(",\"value\":");
                point(out, s.t_ms, s.value);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => matrix(out, series),
    }
}

fn matrix(out: &mut String, series: &[RangeSeries]) {
    out.push('[');
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        labels(out, &s.labels);
        out.push_str(",\"values\":[");
        for (j, &(t, v)) in s.points.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            point(out, t, v);
        }
        out.push_str("]}");
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(t: i64) -> String {
        let mut s = String::new();
        timestamp(&mut s, t);
        s
    }

    #[test]
    fn timestamps_like_marshal_timestamp() {
        assert_eq!(ts(1_700_000_000_000), "1700000000");
        assert_eq!(ts(1_700_000_000_123), "1700000000.123");
        assert_eq!(ts(1_700_000_000_100), "1700000000.100");
        assert_eq!(ts(1_700_000_000_005), "1700000000.005");
        assert_eq!(ts(-1500), "-1.500");
        assert_eq!(ts(0), "0");
    }

    #[test]
    fn stats_like_prometheus() {
        use crate::promql::{QueryStats, Timings};
        use std::time::Duration;
        let mut stats = QueryStats {
            timings: Timings {
                eval_total: Duration::from_nanos(79_199),
                result_sort: Duration::from_nanos(551),
                inner_eval: Duration::from_secs(2),
                ..Default::default()
            },
            total_queryable_samples: 7,
            peak_samples: 4,
            per_step: Some(vec![(100_500, 3), (101_000, 4)]),
        };
        let mut s = String::new();
        query_stats(&mut s, &stats);
        assert_eq!(
            s,
            r#"{"timings":{"evalTotalTime":0.000079199,"resultSortTime":5.51e-07,"queryPreparationTime":0,"innerEvalTime":2,"execQueueTime":0,"execTotalTime":0},"samples":{"totalQueryableSamplesPerStep":[[100.5,3],[101,4]],"totalQueryableSamples":7,"peakSamples":4}}"#
        );
        stats.per_step = None;
        let mut s = String::new();
        query_stats(&mut s, &stats);
        assert!(
            s.ends_with(r#""samples":{"totalQueryableSamples":7,"peakSamples":4}}"#),
            "{s}"
        );
    }

    #[test]
    fn values_and_strings_like_go() {
        let mut s = String::new();
        for v in [
            1.0,
            0.1,
            1e21,
            1e-7,
            5.551115123125783e-17,
            1.5e300,
            -1e-6,
            123456.75,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
        ] {
            point(&mut s, 0, v);
        }
        assert_eq!(
            s,
            r#"[0,"1"][0,"0.1"][0,"1e+21"][0,"1e-07"][0,"5.551115123125783e-17"][0,"1.5e+300"][0,"-0.000001"][0,"123456.75"][0,"NaN"][0,"+Inf"][0,"-Inf"][0,"-0"]"#
        );
        let mut s = String::new();
        string(&mut s, "a<b>&\"\\\n\u{1}é");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\u0001é""#);
    }
}
