//! Router tests through `oneshot` against a small in-memory store.

use axum::body::{Body, to_bytes};
use http::Request;
use pharos_model::Store;
use tower::ServiceExt;

use super::*;
use crate::store::tests::{T0, kv, record, request};

fn store() -> Arc<LogStore> {
    let store = LogStore::new();
    let mut err = record(2, "GET /x failed", 17);
    err.trace_id = vec![1; 16];
    store.apply(&request(
        vec![
            kv("service.name", "api"),
            kv("deployment.environment", "prod"),
        ],
        vec![record(1, "GET /x ok", 9), err, record(3, "GET /y ok", 9)],
    ));
    store.apply(&request(
        vec![kv("service.name", "db")],
        vec![record(2, "select 1", 0)],
    ));
    Arc::new(store)
}

async fn send(req: Request<Body>) -> (StatusCode, String) {
    let resp = router(store()).oneshot(req).await.unwrap();
    let status = resp.status();
    (
        status,
        String::from_utf8(
            to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec(),
        )
        .unwrap(),
    )
}

async fn get(uri: &str) -> (StatusCode, String) {
    send(Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn get_json(uri: &str) -> Value {
    let (status, body) = get(uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn q(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const START: u64 = T0 / 1_000_000_000;

fn range_uri(query: &str, extra: &str) -> String {
    format!(
        "/loki/api/v1/query_range?query={}&start={}&end={}{extra}",
        q(query),
        START,
        START + 10
    )
}

#[tokio::test]
async fn query_range_merges_metadata_into_stream_labels() {
    let body = get_json(&range_uri(r#"{service_name="api"}"#, "")).await;
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "streams");
    let result = body["data"]["result"].as_array().unwrap();
    // The error entry carries trace_id and other metadata, so it is a stream of its own.
    assert_eq!(result.len(), 2);
    let info = result
        .iter()
        .find(|s| s["stream"]["detected_level"] == "info")
        .unwrap();
    assert_eq!(info["stream"]["service_name"], "api");
    assert_eq!(info["stream"]["deployment_environment"], "prod");
    assert_eq!(info["stream"]["severity_number"], "9");
    assert_eq!(
        info["values"],
        json!([
            [(T0 + 3_000_000_000).to_string(), "GET /y ok"],
            [(T0 + 1_000_000_000).to_string(), "GET /x ok"]
        ])
    );
    let error = result
        .iter()
        .find(|s| s["stream"]["detected_level"] == "error")
        .unwrap();
    assert_eq!(error["stream"]["trace_id"], "01".repeat(16));
    assert!(body["data"]["stats"]["summary"]["totalEntriesReturned"] == 3);
    assert!(body["data"].get("encodingFlags").is_none());
}

#[tokio::test]
async fn categorize_labels_puts_metadata_beside_values() {
    let req = Request::get(range_uri(
        r#"{service_name=~"api|db"} != "failed""#,
        "&direction=forward",
    ))
    .header(ENCODING_FLAGS_HEADER, "categorize-labels")
    .body(Body::empty())
    .unwrap();
    let (status, body) = send(req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["data"]["encodingFlags"], json!(["categorize-labels"]));
    let result = &body["data"]["result"];
    assert_eq!(
        result[0]["stream"],
        json!({"deployment_environment": "prod", "service_name": "api"})
    );
    let v = &result[0]["values"][0];
    assert_eq!(v[0], (T0 + 1_000_000_000).to_string());
    assert_eq!(v[1], "GET /x ok");
    assert_eq!(
        v[2],
        json!({"structuredMetadata": {"detected_level": "info", "scope_name": "lib", "severity_number": "9"}})
    );
    assert_eq!(result[1]["stream"], json!({"service_name": "db"}));
    assert_eq!(result[1]["values"][0][1], "select 1");
}

#[tokio::test]
async fn line_filters_limit_and_direction() {
    let lines = |body: &Value| -> Vec<String> {
        let mut out = Vec::new();
        for s in body["data"]["result"].as_array().unwrap() {
            for v in s["values"].as_array().unwrap() {
                out.push(v[1].as_str().unwrap().to_string());
            }
        }
        out.sort();
        out
    };
    let body = get_json(&range_uri(
        r#"{service_name="api"} |= "GET" != "failed" |~ "/[xy]""#,
        "",
    ))
    .await;
    assert_eq!(lines(&body), ["GET /x ok", "GET /y ok"]);
    let body = get_json(&range_uri(r#"{service_name="api"} !~ "ok$""#, "")).await;
    assert_eq!(lines(&body), ["GET /x failed"]);
    let body = get_json(&range_uri(r#"{service_name="api"}"#, "&limit=1")).await;
    assert_eq!(lines(&body), ["GET /y ok"]);
    let body = get_json(&range_uri(
        r#"{service_name="api"}"#,
        "&limit=1&direction=FORWARD",
    ))
    .await;
    assert_eq!(lines(&body), ["GET /x ok"]);
}

#[tokio::test]
async fn post_form_and_time_formats() {
    let form = format!(
        "query={}&start=2023-11-14T22:13:20Z&end={}&limit=10",
        q(r#"{service_name="db"}"#),
        T0 + 10_000_000_000
    );
    let req = Request::post("/loki/api/v1/query_range")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let (status, body) = send(req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["data"]["result"][0]["values"][0][1], "select 1");
    let uri = format!(
        "/loki/api/v1/query?query={}&time={}.5",
        q(r#"{service_name="db"}"#),
        START + 2
    );
    let body = get_json(&uri).await;
    assert_eq!(body["data"]["result"][0]["values"][0][1], "select 1");
}

#[tokio::test]
async fn errors_are_plain_text_400() {
    for (uri, msg) in [
        (
            range_uri("{foo}", ""),
            "parse error at line 1, col 5: syntax error: unexpected }, expecting = or != or =~ or !~\n",
        ),
        (
            range_uri(r#"{a=~".*"}"#, ""),
            "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will\n",
        ),
        (
            range_uri(r#"{a="b"}"#, "&limit=0"),
            "limit must be a positive value\n",
        ),
        (
            range_uri(r#"{a="b"}"#, "&limit=6000"),
            "max entries limit per query exceeded, limit > max_entries_limit_per_query (6000 > 5000)\n",
        ),
        (
            range_uri(r#"{a="b"}"#, "&direction=up"),
            "invalid direction 'up'\n",
        ),
        (
            format!(
                "/loki/api/v1/query_range?query={}&start=soon",
                q(r#"{a="b"}"#)
            ),
            "cannot parse \"soon\" to a valid timestamp\n",
        ),
        (
            format!(
                "/loki/api/v1/query_range?query={}&start=20&end=10",
                q(r#"{a="b"}"#)
            ),
            "end timestamp must not be before or equal to start time\n",
        ),
    ] {
        assert_eq!(
            get(&uri).await,
            (StatusCode::BAD_REQUEST, msg.to_string()),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn labels_values_and_series() {
    let window = format!("start={}&end={}", START, START + 10);
    let body = get_json(&format!("/loki/api/v1/labels?{window}")).await;
    assert_eq!(
        body,
        json!({"status": "success", "data": ["deployment_environment", "service_name"]})
    );
    let body = get_json(&format!("/loki/api/v1/label/service_name/values?{window}")).await;
    assert_eq!(body["data"], json!(["api", "db"]));
    let sel = q(r#"{deployment_environment="prod"}"#);
    let body = get_json(&format!(
        "/loki/api/v1/label/service_name/values?{window}&query={sel}"
    ))
    .await;
    assert_eq!(body["data"], json!(["api"]));
    let body = get_json(&format!(
        "/loki/api/v1/series?{window}&match[]={}",
        q(r#"{service_name="db"}"#)
    ))
    .await;
    assert_eq!(
        body,
        json!({"status": "success", "data": [{"service_name": "db"}]})
    );
    let body = get_json(&format!(
        "/loki/api/v1/labels?start={}&end={}",
        START + 100,
        START + 200
    ))
    .await;
    assert_eq!(body["data"], json!([]));
}

#[tokio::test]
async fn grafanas_health_check_and_volume_query_answer() {
    // Grafana's Loki data source checks itself with this instant query.
    let got = get_json(&format!(
        "/loki/api/v1/query?query={}&time={}",
        q("vector(1)+vector(1)"),
        T0 / 1_000_000_000 + 3
    ))
    .await;
    assert_eq!(got["data"]["resultType"], "vector");
    assert_eq!(got["data"]["result"][0]["value"][1], "2");
    assert_eq!(got["data"]["result"][0]["metric"], json!({}));
    // Its log volume histogram.
    let uri = format!(
        "/loki/api/v1/query_range?query={}&start={}&end={}&step=1",
        q(
            r#"sum by (level, detected_level) (count_over_time({service_name="api"} | drop __error__[1s]))"#
        ),
        T0,
        T0 + 4_000_000_000
    );
    let got = get_json(&uri).await;
    assert_eq!(got["data"]["resultType"], "matrix", "{got}");
    let levels: Vec<&str> = got["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["detected_level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["error", "info"]);
}
