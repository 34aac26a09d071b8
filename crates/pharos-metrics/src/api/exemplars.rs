//! `GET|POST /api/v1/query_exemplars`: the exemplars of the series a PromQL expression
//! selects, as Prometheus' `queryExemplars` (`web/api/v1/api.go`) answers it.
//!
//! Parameters, with Prometheus' order of checks and wording:
//! - `start`, `end`: optional times (unix seconds or RFC 3339), unbounded when absent;
//!   unparsable: 400 `invalid parameter "start": Invalid time value for 'start': ...`;
//!   `end` before `start`: 400 `end timestamp must not be before start timestamp`.
//! - `query`: any PromQL expression; every vector selector in it (those inside matrix
//!   selectors, subqueries, function arguments and aggregation parameters too, as
//!   `parser.ExtractSelectors` finds them) is one matcher set, and a series is returned
//!   when any set accepts it. Offsets and `@` play no part. Invalid: 400 `bad_data` with
//!   the parser's message (no `invalid parameter` prefix, as in Prometheus). An expression
//!   without selectors (`1+1`) gets 204 No Content and no body, as Prometheus answers a
//!   handler that returns no data.
//!
//! `data` is `[{"seriesLabels":{...},"exemplars":[{"labels":{...},"value":"6",
//! "timestamp":1600096945.479}]}]`, series sorted by labels, each series' exemplars oldest
//! first, values as Prometheus writes sample values and timestamps as unix seconds.

use promql_parser::parser::{Expr, VectorSelector};

use super::params::Form;
use super::{ApiError, json, time_param};
use crate::promql;
use crate::store::Querier;

/// Returns the `data` of a `query_exemplars` answer; `None` when the expression has no
/// selector (answered with 204 No Content).
pub fn query_exemplars(q: &dyn Querier, form: &Form) -> Result<Option<String>, ApiError> {
    let start = time_param(form, "start", i64::MIN)?;
    let end = time_param(form, "end", i64::MAX)?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start timestamp",
        ));
    }
    let expr = promql::parse(form.value("query")).map_err(|e| ApiError::bad_data(e.to_string()))?;
    let mut selectors = Vec::new();
    extract_selectors(&expr, &mut selectors);
    if selectors.is_empty() {
        return Ok(None);
    }
    let sets = selectors
        .into_iter()
        .map(promql::selector_matchers)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad_data(e.to_string()))?;
    let mut out = String::from("[");
    for (i, s) in q.exemplars(&sets, start, end).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"seriesLabels\":");
        json::labels(&mut out, &s.series);
        out.push_str(",\"exemplars\":[");
        for (j, e) in s.exemplars.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"labels\":");
            json::labels(&mut out, &e.labels);
            out.push_str(",\"value\":\"");
            out.push_str(&json::float(e.value));
            out.push_str("\",\"timestamp\":");
            json::timestamp(&mut out, e.t_ms);
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push(']');
    Ok(Some(out))
}

/// Collects every vector selector of `expr` in depth-first order, as Prometheus'
/// `parser.ExtractSelectors` (which walks `Inspect`, aggregation parameters included).
pub fn extract_selectors<'a>(expr: &'a Expr, out: &mut Vec<&'a VectorSelector>) {
    match expr {
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::Aggregate(a) => {
            extract_selectors(&a.expr, out);
            if let Some(p) = &a.param {
                extract_selectors(p, out);
            }
        }
        Expr::Unary(u) => extract_selectors(&u.expr, out),
        Expr::Binary(b) => {
            extract_selectors(&b.lhs, out);
            extract_selectors(&b.rhs, out);
        }
        Expr::Paren(p) => extract_selectors(&p.expr, out),
        Expr::Subquery(s) => extract_selectors(&s.expr, out),
        Expr::Call(c) => {
            for arg in &c.args.args {
                extract_selectors(arg, out);
            }
        }
        Expr::Extension(e) => {
            for child in e.expr.children() {
                extract_selectors(child, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use http::Request;
    use pharos_model::Store;
    use tower::ServiceExt;

    use crate::MetricsStore;
    use crate::remote_write::proto::{Exemplar, Label, Sample, TimeSeries};
    use crate::store::record::MetricsRecord;

    const T0: i64 = 1_600_096_945_479;

    fn series(
        labels: &[(&str, &str)],
        samples: &[(i64, f64)],
        exemplars: &[(&str, f64, i64)],
    ) -> TimeSeries {
        TimeSeries {
            labels: labels.iter().map(|(k, v)| Label::new(*k, *v)).collect(),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
            exemplars: exemplars
                .iter()
                .map(|&(trace, value, timestamp)| Exemplar {
                    labels: if trace.is_empty() {
                        vec![]
                    } else {
                        vec![Label::new("trace_id", trace)]
                    },
                    value,
                    timestamp,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn store() -> Arc<MetricsStore> {
        let store = MetricsStore::new();
        let mut rec = MetricsRecord::from_remote_write(vec![
            series(
                &[
                    ("__name__", "reqs_total"),
                    ("job", "api"),
                    ("service", "bar"),
                ],
                &[(T0, 6.0)],
                &[
                    ("EpTxMJ40fUus7aGY", 6.0, T0),
                    ("Olp9XHlq763ccsfa", 19.0, T0 + 15_000),
                ],
            ),
            series(
                &[("__name__", "reqs_total"), ("job", "db")],
                &[(T0, 1.0)],
                &[("a<b", 1e-7, T0 + 2_000), ("", 3.0, T0 + 30_000)],
            ),
            series(
                &[("__name__", "lat_bucket"), ("le", "0.5")],
                &[(T0, 2.0)],
                &[("tr", 0.3, T0 + 1)],
            ),
            series(&[("__name__", "quiet")], &[(T0, 2.0)], &[]),
        ]);
        assert_eq!(store.sanitize(&mut rec).count, 0);
        store.apply(&rec);
        Arc::new(store)
    }

    async fn call(req: Request<Body>) -> (u16, String) {
        let resp = crate::api::router(store()).oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        if status != 204 {
            assert_eq!(resp.headers()["content-type"], "application/json");
        }
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn get(params: &str) -> (u16, String) {
        call(
            Request::get(format!("/api/v1/query_exemplars?{params}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    fn ok(data: &str) -> (u16, String) {
        (200, format!(r#"{{"status":"success","data":{data}}}"#))
    }

    fn bad(message: &str) -> (u16, String) {
        (
            400,
            format!(
                r#"{{"status":"error","errorType":"bad_data","error":{}}}"#,
                serde_json::to_string(message).unwrap()
            ),
        )
    }

    const API: &str = r#"{"seriesLabels":{"__name__":"reqs_total","job":"api","service":"bar"},"exemplars":[{"labels":{"trace_id":"EpTxMJ40fUus7aGY"},"value":"6","timestamp":1600096945.479},{"labels":{"trace_id":"Olp9XHlq763ccsfa"},"value":"19","timestamp":1600096960.479}]}"#;
    const DB: &str = r#"{"seriesLabels":{"__name__":"reqs_total","job":"db"},"exemplars":[{"labels":{"trace_id":"a\u003cb"},"value":"1e-07","timestamp":1600096947.479},{"labels":{},"value":"3","timestamp":1600096975.479}]}"#;
    const LAT: &str = r#"{"seriesLabels":{"__name__":"lat_bucket","le":"0.5"},"exemplars":[{"labels":{"trace_id":"tr"},"value":"0.3","timestamp":1600096945.480}]}"#;

    #[tokio::test]
    async fn prometheus_shape_sorted_by_series() {
        assert_eq!(get("query=reqs_total").await, ok(&format!("[{API},{DB}]")));
        // The documented example's range: [start, end] inclusive, RFC 3339 or seconds.
        let api_first = r#"[{"seriesLabels":{"__name__":"reqs_total","job":"api","service":"bar"},"exemplars":[{"labels":{"trace_id":"EpTxMJ40fUus7aGY"},"value":"6","timestamp":1600096945.479}]}]"#;
        assert_eq!(
            get("query=reqs_total%7Bjob%3D%22api%22%7D&start=2020-09-14T15:22:25.479Z&end=1600096945.479")
                .await,
            ok(api_first)
        );
        // A form POST, as Grafana sends it.
        let req = Request::post("/api/v1/query_exemplars")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(
                "query=reqs_total&start=1600096946&end=1600096960.479",
            ))
            .unwrap();
        let one_each = format!(
            "[{},{}]",
            API.replace(
                r#"{"labels":{"trace_id":"EpTxMJ40fUus7aGY"},"value":"6","timestamp":1600096945.479},"#,
                ""
            ),
            DB.replace(r#",{"labels":{},"value":"3","timestamp":1600096975.479}"#, "")
        );
        assert_eq!(call(req).await, ok(&one_each));
        // Series without exemplars, or none in range: an empty list.
        assert_eq!(get("query=quiet").await, ok("[]"));
        assert_eq!(get("query=reqs_total&end=1000").await, ok("[]"));
    }

    #[tokio::test]
    async fn every_selector_of_the_expression_selects() {
        // Selectors inside functions, matrix selectors, binary operands, subqueries and
        // aggregation parameters all count; a series selected twice is listed once.
        for q in [
            "histogram_quantile(0.9, rate(lat_bucket[5m])) + on() group_left sum(reqs_total)",
            "topk(scalar(lat_bucket), reqs_total{job=~\"a.*|db\"})",
            "max_over_time((reqs_total or lat_bucket)[10m:1m] offset 1h)",
            "{__name__=~\"reqs_total|lat_bucket\"} and reqs_total",
        ] {
            assert_eq!(
                get(&format!("query={}", enc(q))).await,
                ok(&format!("[{LAT},{API},{DB}]")),
                "{q}"
            );
        }
        // No selector at all: no content, as Prometheus answers.
        assert_eq!(get("query=1%2B1").await, (204, String::new()));
        assert_eq!(
            get("query=%22s%22&start=1&end=2").await,
            (204, String::new())
        );
    }

    #[tokio::test]
    async fn parameter_errors() {
        assert_eq!(
            get("query=up&start=x").await,
            bad(
                r#"invalid parameter "start": Invalid time value for 'start': cannot parse "x" to a valid timestamp"#
            )
        );
        assert_eq!(
            get("query=up&end=y").await,
            bad(
                r#"invalid parameter "end": Invalid time value for 'end': cannot parse "y" to a valid timestamp"#
            )
        );
        assert_eq!(
            get("query=up&start=20&end=10").await,
            bad("end timestamp must not be before start timestamp")
        );
        assert_eq!(
            get("").await,
            bad("1:1: parse error: no expression found in input")
        );
        let (status, body) = get("query=up%7B").await;
        assert_eq!(status, 400);
        assert!(body.contains(r#""errorType":"bad_data""#), "{body}");
        assert!(!body.contains("invalid parameter"), "{body}");
    }

    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }
}
