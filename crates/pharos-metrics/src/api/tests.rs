//! API tests through the router, comparing exact bodies.

use axum::body::Body;
use http::Request;
use tower::ServiceExt;

use super::*;
use crate::store::{Labels, STALE_NAN_BITS};

const T0: i64 = 1_700_000_000_000;

fn store() -> Arc<MetricsStore> {
    let s = MetricsStore::new();
    let up = |job: &str| Labels::from_pairs([("__name__", "up"), ("job", job)]);
    s.append_sample(up("a"), T0, 1.0);
    s.append_sample(up("a"), T0 + 15_000, 0.0);
    s.append_sample(up("b<"), T0 + 100, 0.5);
    s.append_sample(up("b<"), T0 + 200, f64::from_bits(STALE_NAN_BITS));
    s.append_sample(
        Labels::from_pairs([("__name__", "x"), ("zone", "eu")]),
        T0 + 60_000,
        1e21,
    );
    Arc::new(s)
}

async fn call(req: Request<Body>) -> (u16, String) {
    let resp = router(store()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn check_get(uri: &str, status: u16, body: &str) {
    let got = call(Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(got, (status, body.to_owned()), "GET {uri}");
}

async fn check_post(uri: &str, form: &str, status: u16, body: &str) {
    let req = Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap();
    assert_eq!(
        call(req).await,
        (status, body.to_owned()),
        "POST {uri} {form}"
    );
}

#[tokio::test]
async fn instant_vector_and_post_form() {
    let expected = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000000.150,"1"]},{"metric":{"__name__":"up","job":"b\u003c"},"value":[1700000000.150,"0.5"]}]}}"#;
    check_get("/api/v1/query?query=up&time=1700000000.15", 200, expected).await;
    check_post(
        "/api/v1/query",
        "query=up&time=2023-11-14T22%3A13%3A20.150Z",
        200,
        expected,
    )
    .await;
    // After the stale marker and past the lookback of a's last sample.
    check_get(
        "/api/v1/query?query=up&time=1700000001",
        200,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000001,"1"]}]}}"#,
    )
    .await;
    check_get(
        "/api/v1/query?query=up&time=1700000400",
        200,
        r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
    )
    .await;
}

#[tokio::test]
async fn scalars_strings_and_matrices() {
    check_get(
        "/api/v1/query?query=1.5&time=10",
        200,
        r#"{"status":"success","data":{"resultType":"scalar","result":[10,"1.5"]}}"#,
    )
    .await;
    check_get(
        "/api/v1/query?query=%22a%3Cb%22&time=10",
        200,
        r#"{"status":"success","data":{"resultType":"string","result":[10,"a\u003cb"]}}"#,
    )
    .await;
    check_get(
        "/api/v1/query?query=x%5B5m%5D&time=1700000100",
        200,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"x","zone":"eu"},"values":[[1700000060,"1e+21"]]}]}}"#,
    )
    .await;
    check_get(
        "/api/v1/query_range?query=up%7Bjob%3D%22a%22%7D&start=1700000000&end=1700000030&step=10s",
        200,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a"},"values":[[1700000000,"1"],[1700000010,"1"],[1700000020,"0"],[1700000030,"0"]]}]}}"#,
    )
    .await;
}

#[tokio::test]
async fn parameter_errors_are_worded_like_prometheus() {
    let bad = |msg: &str| {
        format!(
            r#"{{"status":"error","errorType":"bad_data","error":{}}}"#,
            serde_json::to_string(msg).unwrap()
        )
    };
    check_get("/api/v1/query?query=up&time=x", 400, &bad(r#"invalid parameter "time": Invalid time value for 'time': cannot parse "x" to a valid timestamp"#)).await;
    check_get(
        "/api/v1/query?query=up&timeout=zz",
        400,
        &bad(r#"invalid parameter "timeout": cannot parse "zz" to a valid duration"#),
    )
    .await;
    check_get(
        "/api/v1/query_range?query=up&start=x",
        400,
        &bad(r#"invalid parameter "start": cannot parse "x" to a valid timestamp"#),
    )
    .await;
    check_get(
        "/api/v1/query_range?query=up&start=1",
        400,
        &bad(r#"invalid parameter "end": cannot parse "" to a valid timestamp"#),
    )
    .await;
    check_get(
        "/api/v1/query_range?query=up&start=10&end=5&step=1",
        400,
        &bad(r#"invalid parameter "end": end timestamp must not be before start time"#),
    )
    .await;
    check_get("/api/v1/query_range?query=up&start=0&end=5&step=0", 400, &bad(r#"invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer"#)).await;
    check_get(
        "/api/v1/query_range?query=up&start=0&end=5&step=x",
        400,
        &bad(r#"invalid parameter "step": cannot parse "x" to a valid duration"#),
    )
    .await;
    check_get(
        "/api/v1/query_range?query=up&start=0&end=11001&step=1",
        400,
        &bad("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"),
    )
    .await;
    check_get(
        "/api/v1/query_range?query=up&start=0&end=11000&step=1",
        200,
        r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
    )
    .await;
    check_get(
        "/api/v1/query_range?query=up%5B1m%5D&start=0&end=1&step=1",
        400,
        &bad(r#"invalid expression type "range vector" for range query, must be Scalar or instant Vector"#),
    )
    .await;
    check_get(
        "/api/v1/query?query=",
        400,
        &bad(r#"invalid parameter "query": 1:1: parse error: no expression found in input"#),
    )
    .await;
    check_get("/api/v1/series", 400, &bad("no match[] parameter provided")).await;
    check_get(
        "/api/v1/label/1x/values",
        400,
        &bad(r#"invalid label name: "1x""#),
    )
    .await;
}

#[tokio::test]
async fn metadata_endpoints() {
    check_get(
        "/api/v1/series?match[]=up&match[]=%7Bzone%3D%22eu%22%7D",
        200,
        r#"{"status":"success","data":[{"__name__":"up","job":"a"},{"__name__":"up","job":"b\u003c"},{"__name__":"x","zone":"eu"}]}"#,
    )
    .await;
    check_post("/api/v1/series", "match[]=up&start=1700000000.2&end=1700000030", 200, r#"{"status":"success","data":[{"__name__":"up","job":"a"},{"__name__":"up","job":"b\u003c"}]}"#).await;
    check_get(
        "/api/v1/labels",
        200,
        r#"{"status":"success","data":["__name__","job","zone"]}"#,
    )
    .await;
    check_get(
        "/api/v1/labels?match[]=up",
        200,
        r#"{"status":"success","data":["__name__","job"]}"#,
    )
    .await;
    check_get(
        "/api/v1/label/__name__/values",
        200,
        r#"{"status":"success","data":["up","x"]}"#,
    )
    .await;
    check_get(
        "/api/v1/label/job/values?match[]=x",
        200,
        r#"{"status":"success","data":[]}"#,
    )
    .await;
    check_get("/api/v1/metadata", 200, r#"{"status":"success","data":{}}"#).await;
    let (status, body) = call(
        Request::get("/api/v1/status/buildinfo")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with(r#"{"status":"success","data":{"version":"3.0.0","revision":"pharos-"#),
        "{body}"
    );
}

#[test]
fn query_errors_map_to_wire_errors() {
    let e = ApiError::from_query(QueryError::Timeout("expression evaluation"));
    assert_eq!(
        (e.kind.status().as_u16(), e.kind.as_str()),
        (503, "timeout")
    );
    assert_eq!(e.message, "query timed out in expression evaluation");
    let e = ApiError::from_query(QueryError::InvalidRangeType("string"));
    assert_eq!(e.kind, ErrorType::BadData);
    let e = ApiError::from_query(QueryError::Parse("1:2: parse error: x".into()));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (
            ErrorType::BadData,
            r#"invalid parameter "query": 1:2: parse error: x"#
        )
    );
}

#[tokio::test]
async fn limit_cuts_and_warns() {
    let store = std::sync::Arc::new(crate::MetricsStore::new());
    for job in ["a", "b", "c"] {
        store.append_sample(
            crate::store::Labels::from_pairs([("__name__", "up"), ("job", job)]),
            1_700_000_000_000,
            1.0,
        );
    }
    let app = crate::api::router(store);
    let get = |uri: &'static str| {
        let app = app.clone();
        async move {
            let resp = tower::ServiceExt::oneshot(
                app,
                http::Request::get(uri)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
            let status = resp.status().as_u16();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    assert_eq!(
        get("/api/v1/label/job/values?limit=2").await,
        (
            200,
            r#"{"status":"success","data":["a","b"],"warnings":["results truncated due to limit"]}"#.into()
        )
    );
    assert_eq!(
        get("/api/v1/label/job/values?limit=3").await,
        (200, r#"{"status":"success","data":["a","b","c"]}"#.into())
    );
    assert_eq!(
        get("/api/v1/series?match[]=up&limit=1").await,
        (
            200,
            r#"{"status":"success","data":[{"__name__":"up","job":"a"}],"warnings":["results truncated due to limit"]}"#.into()
        )
    );
    assert_eq!(
        get("/api/v1/labels?limit=x").await,
        (
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"limit\": cannot parse \"x\" to a valid limit"}"#.into()
        )
    );
    let (status, body) = get("/api/v1/status/tsdb").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""headStats":{"numSeries":3,"numLabelPairs":4,"#),
        "{body}"
    );
    assert!(
        body.contains(r#""seriesCountByMetricName":[{"name":"up","value":3}]"#),
        "{body}"
    );
    assert!(body.contains(r#""seriesCountByLabelValuePair":[{"name":"__name__=up","value":3},{"name":"job=a","value":1}"#), "{body}");
    assert_eq!(
        get("/api/v1/format_query?query=sum(rate(x%5B5m%5D))%20by%20(job)").await,
        (
            200,
            r#"{"status":"success","data":"sum by (job) (rate(x[5m]))"}"#.into()
        )
    );
    assert_eq!(
        get("/api/v1/query_exemplars?query=up").await,
        (200, r#"{"status":"success","data":[]}"#.into())
    );
    assert_eq!(
        get("/api/v1/targets").await,
        (
            200,
            r#"{"status":"success","data":{"activeTargets":[],"droppedTargets":[]}}"#.into()
        )
    );
    let (status, body) = get("/api/v1/status/runtimeinfo").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""startTime":""#) && body.contains(r#""reloadConfigSuccess":true"#),
        "{body}"
    );
}

/// Replaces the six timings (which vary) with `T`, checking they are there, in
/// Prometheus' order, and non-negative numbers.
fn blank_timings(body: &str) -> String {
    let start = body.find(r#""timings":{"#).expect("timings") + r#""timings":{"#.len();
    let end = start + body[start..].find('}').unwrap();
    let names: Vec<&str> = body[start..end]
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once(':').unwrap();
            assert!(v.parse::<f64>().unwrap() >= 0.0, "{kv}");
            k.trim_matches('"')
        })
        .collect();
    assert_eq!(
        names,
        [
            "evalTotalTime",
            "resultSortTime",
            "queryPreparationTime",
            "innerEvalTime",
            "execQueueTime",
            "execTotalTime"
        ]
    );
    format!("{}T{}", &body[..start], &body[end..])
}

async fn get_blanked(uri: &str) -> (u16, String) {
    let (status, body) = call(Request::get(uri).body(Body::empty()).unwrap()).await;
    (status, blank_timings(&body))
}

#[tokio::test]
async fn stats_are_added_on_request() {
    // Any non-empty value: timings and sample counts.
    assert_eq!(
        get_blanked("/api/v1/query?query=up&time=1700000000.15&stats=1").await,
        (
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000000.150,"1"]},{"metric":{"__name__":"up","job":"b\u003c"},"value":[1700000000.150,"0.5"]}],"stats":{"timings":{T},"samples":{"totalQueryableSamples":2,"peakSamples":2}}}}"#.into()
        )
    );
    // `all`: per-step counts too, the step's time in seconds as a plain JSON number.
    assert_eq!(
        get_blanked("/api/v1/query?query=sum(up)&time=1700000000.15&stats=all").await,
        (
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.150,"1.5"]}],"stats":{"timings":{T},"samples":{"totalQueryableSamplesPerStep":[[1700000000.15,2]],"totalQueryableSamples":2,"peakSamples":2}}}}"#.into()
        )
    );
    // A range query: a's samples at every step; b's first sample comes after the first
    // step, and a stale marker hides it from the second on.
    let req = Request::post("/api/v1/query_range")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(
            "query=up&start=1700000000&end=1700000030&step=10s&stats=all",
        ))
        .unwrap();
    let (status, body) = call(req).await;
    assert_eq!(
        (status, blank_timings(&body)),
        (
            200,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a"},"values":[[1700000000,"1"],[1700000010,"1"],[1700000020,"0"],[1700000030,"0"]]}],"stats":{"timings":{T},"samples":{"totalQueryableSamplesPerStep":[[1700000000,1],[1700000010,1],[1700000020,1],[1700000030,1]],"totalQueryableSamples":4,"peakSamples":4}}}}"#.into()
        )
    );
    // A range selector counts the points in its window.
    assert_eq!(
        get_blanked("/api/v1/query?query=count_over_time(up%5B1m%5D)&time=1700000030&stats=all")
            .await,
        (
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1700000030,"2"]},{"metric":{"job":"b\u003c"},"value":[1700000030,"1"]}],"stats":{"timings":{T},"samples":{"totalQueryableSamplesPerStep":[[1700000030,3]],"totalQueryableSamples":3,"peakSamples":3}}}}"#.into()
        )
    );
    // Without the parameter, or with it empty, no stats.
    check_get(
        "/api/v1/query?query=1&time=10&stats=",
        200,
        r#"{"status":"success","data":{"resultType":"scalar","result":[10,"1"]}}"#,
    )
    .await;
}

#[tokio::test]
async fn parse_query_returns_the_tree() {
    let tree = r#"{"status":"success","data":{"bool":false,"lhs":{"expr":{"matchers":[{"name":"job","type":"=","value":"a"},{"name":"__name__","type":"=","value":"up"}],"name":"up","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"grouping":["job"],"op":"sum","param":null,"type":"aggregation","without":false},"matching":null,"op":"*","rhs":{"type":"numberLiteral","val":"2"},"type":"binaryExpr"}}"#;
    check_get(
        "/api/v1/parse_query?query=sum%20by%20(job)%20(up%7Bjob%3D%22a%22%7D)%20*%202",
        200,
        tree,
    )
    .await;
    check_post(
        "/api/v1/parse_query",
        "query=sum+by+(job)+(up%7Bjob%3D%22a%22%7D)+*+2",
        200,
        tree,
    )
    .await;
    let bad = |msg: &str| {
        format!(
            r#"{{"status":"error","errorType":"bad_data","error":{}}}"#,
            serde_json::to_string(msg).unwrap()
        )
    };
    check_get(
        "/api/v1/parse_query?query=",
        400,
        &bad(r#"invalid parameter "query": 1:1: parse error: no expression found in input"#),
    )
    .await;
    // The same error the query endpoint gives, whatever the parser's wording.
    for q in [
        "up%7B",
        "sum(",
        "rate(up)",
        "%7Ba%3D%221%22%20or%20b%3D%222%22%7D",
    ] {
        let (status, want) = call(
            Request::get(format!("/api/v1/query?query={q}&time=0"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "{q}: {want}");
        assert!(want.contains(r#""errorType":"bad_data""#), "{q}: {want}");
        check_get(&format!("/api/v1/parse_query?query={q}"), 400, &want).await;
    }
}

/// GETs `uri` from a router over a store holding only metadata.
async fn metadata_get(uri: &str) -> (u16, String) {
    use crate::remote_write::proto::{MetricMetadata, MetricType};
    let s = MetricsStore::new();
    let md = |name: &str, kind: MetricType, help: &str, unit: &str| MetricMetadata {
        r#type: kind as i32,
        metric_family_name: name.into(),
        help: help.into(),
        unit: unit.into(),
    };
    for m in [
        md("go_goroutines", MetricType::Gauge, "Goroutines.", ""),
        md("http_requests_total", MetricType::Counter, "Requests.", ""),
        md(
            "http_requests_total",
            MetricType::Counter,
            "All <requests>.",
            "",
        ),
        md("http_requests_total", MetricType::Unknown, "", ""),
        md("rpc_duration_seconds", MetricType::Summary, "", "seconds"),
        md("rpc_duration_seconds", MetricType::Histogram, "", "seconds"),
    ] {
        s.metadata().add(&m);
    }
    let resp = router(Arc::new(s))
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn metric_metadata_with_prometheus_parameters() {
    let ok = |data: &str| (200, format!(r#"{{"status":"success","data":{data}}}"#));
    let bad = |msg: &str| {
        (
            400,
            format!(r#"{{"status":"error","errorType":"bad_data","error":"{msg}"}}"#),
        )
    };
    let go = r#""go_goroutines":[{"type":"gauge","help":"Goroutines.","unit":""}]"#;
    let http = r#""http_requests_total":[{"type":"counter","help":"Requests.","unit":""},{"type":"counter","help":"All \u003crequests\u003e.","unit":""},{"type":"unknown","help":"","unit":""}]"#;
    let http1 = r#""http_requests_total":[{"type":"counter","help":"Requests.","unit":""}]"#;
    let rpc = r#""rpc_duration_seconds":[{"type":"summary","help":"","unit":"seconds"},{"type":"histogram","help":"","unit":"seconds"}]"#;
    let rpc1 = r#""rpc_duration_seconds":[{"type":"summary","help":"","unit":"seconds"}]"#;
    let all = format!("{{{go},{http},{rpc}}}");
    for (uri, want) in [
        ("/api/v1/metadata", ok(&all)),
        ("/api/v1/metadata?metric=", ok(&all)),
        ("/api/v1/metadata?limit=-1", ok(&all)),
        ("/api/v1/metadata?limit=3", ok(&all)),
        ("/api/v1/metadata?limit=", ok(&all)),
        // `limit` counts families; 0 returns none, as in Prometheus.
        ("/api/v1/metadata?limit=2", ok(&format!("{{{go},{http}}}"))),
        ("/api/v1/metadata?limit=%2B1", ok(&format!("{{{go}}}"))),
        // An unescaped `+` is a space, which Go's `strconv.Atoi` refuses too.
        ("/api/v1/metadata?limit=+1", bad("limit must be a number")),
        ("/api/v1/metadata?limit=0", ok("{}")),
        // `limit_per_metric` counts entries; 0 or negative means no limit.
        (
            "/api/v1/metadata?limit_per_metric=1",
            ok(&format!("{{{go},{http1},{rpc1}}}")),
        ),
        ("/api/v1/metadata?limit_per_metric=0", ok(&all)),
        ("/api/v1/metadata?limit_per_metric=-3", ok(&all)),
        (
            "/api/v1/metadata?metric=rpc_duration_seconds",
            ok(&format!("{{{rpc}}}")),
        ),
        (
            "/api/v1/metadata?metric=http_requests_total&limit_per_metric=1&limit=5",
            ok(&format!("{{{http1}}}")),
        ),
        (
            "/api/v1/metadata?metric=http_requests_total&limit=0",
            ok("{}"),
        ),
        // Only exact names: no matchers, no prefixes.
        ("/api/v1/metadata?metric=http_requests", ok("{}")),
        ("/api/v1/metadata?limit=x", bad("limit must be a number")),
        ("/api/v1/metadata?limit=1.5", bad("limit must be a number")),
        (
            "/api/v1/metadata?limit=99999999999999999999",
            bad("limit must be a number"),
        ),
        (
            "/api/v1/metadata?limit_per_metric=few",
            bad("limit_per_metric must be a number"),
        ),
        (
            "/api/v1/metadata?limit=x&limit_per_metric=few",
            bad("limit must be a number"),
        ),
    ] {
        assert_eq!(metadata_get(uri).await, want, "GET {uri}");
    }
}
