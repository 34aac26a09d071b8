//! OTLP/JSON edge cases over HTTP, read back through the query APIs: ids in
//! hex of either case or base64, 64-bit integers as strings or numbers,
//! enums as integers, unknown fields ignored, values the JSON decoder cannot
//! carry refused rather than stored wrong.

mod common;

use common::{Pharos, get_json, get_json_q, tempdir};

async fn post_json(url: &str, body: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_json_edge_cases() {
    let dir = tempdir();
    let p = Pharos::start(dir.path());
    let body = r#"{
      "resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}], "futureField": 1},
        "scopeSpans": [{
          "scope": {"name": "edge", "version": "1"},
          "spans": [
            {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174", "name": "upper-hex",
             "kind": 2, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": 1700000000500000000,
             "attributes": [
               {"key": "n_str", "value": {"intValue": "9007199254740993"}},
               {"key": "n_num", "value": {"intValue": 42}},
               {"key": "d", "value": {"doubleValue": 1.5}},
               {"key": "b", "value": {"boolValue": true}},
               {"key": "bytes", "value": {"bytesValue": "AQID"}},
               {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "x", "value": {"stringValue": "y"}}]}}}
             ],
             "status": {"code": 2, "message": "failed"}, "unknownSpanField": {"deep": [1, 2]}},
            {"traceId": "W47/95gDgQPSabYzgT/GDA==", "spanId": "AAAAAAAAAAE=", "parentSpanId": "7uGbfsPBsXQ=",
             "name": "base64-ids", "kind": 3, "startTimeUnixNano": "1700000000100000000", "endTimeUnixNano": "1700000000200000000"}
          ]
        }]
      }]
    }"#;
    let (status, text) = post_json(&p.h("/v1/traces"), body).await;
    assert_eq!((status, text.as_str()), (200, "{}"));

    let t = get_json(&p.q("/api/v2/traces/5b8efff798038103d269b633813fc60c")).await;
    let spans = t["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap();
    assert_eq!(spans.len(), 2, "both id encodings land in one trace: {t}");
    let upper = spans.iter().find(|s| s["name"] == "upper-hex").unwrap();
    assert_eq!(upper["spanId"], "eee19b7ec3c1b174");
    assert_eq!(upper["endTimeUnixNano"], "1700000000500000000");
    let attrs = upper["attributes"].as_array().unwrap();
    let get = |k: &str| attrs.iter().find(|a| a["key"] == k).unwrap()["value"].clone();
    assert_eq!(
        get("n_str")["intValue"],
        "9007199254740993",
        "no loss through f64"
    );
    assert_eq!(get("n_num")["intValue"], "42");
    assert_eq!(get("bytes")["bytesValue"], "AQID");
    assert_eq!(
        get("kv")["kvlistValue"]["values"][0]["value"]["stringValue"],
        "y"
    );
    assert_eq!(upper["status"]["code"], 2);
    let child = spans.iter().find(|s| s["name"] == "base64-ids").unwrap();
    assert_eq!(child["parentSpanId"], "eee19b7ec3c1b174");
    assert_eq!(child["spanId"], "0000000000000001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_logs_json_edge_cases() {
    let dir = tempdir();
    let p = Pharos::start(dir.path());
    let metrics = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-m"}}]},
      "scopeMetrics":[{"metrics":[
        {"name":"jobs.done","unit":"{job}","sum":{"aggregationTemporality":2,"isMonotonic":true,
          "dataPoints":[{"startTimeUnixNano":"1700000000000000000","timeUnixNano":"1700000010000000000","asInt":"12"}]}},
        {"name":"temp","unit":"Cel","gauge":{"dataPoints":[{"timeUnixNano":1700000010000000000,"asDouble":21.5}]}}
      ]}]}]}"#;
    let (status, text) = post_json(&p.h("/v1/metrics"), metrics).await;
    assert_eq!((status, text.as_str()), (200, "{}"));
    let q = |query: &'static str| {
        let url = p.q("/api/v1/query");
        async move { get_json_q(&url, &[("query", query), ("time", "1700000020")]).await }
    };
    assert_eq!(
        q(r#"jobs_done_total{job="json-m"}"#).await["data"]["result"][0]["value"][1],
        "12"
    );
    let temp = q(r#"{job="json-m",__name__=~"temp.*"}"#).await;
    assert_eq!(temp["data"]["result"][0]["value"][1], "21.5", "{temp}");

    // proto3 JSON's "NaN" string: the decoder would drop the value, so the request is refused.
    let nan = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"timeUnixNano":"1700000010000000000","asDouble":"NaN"}]}}]}]}]}"#;
    let (status, text) = post_json(&p.h("/v1/metrics"), nan).await;
    assert_eq!(status, 400, "{text}");
    let st: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(st["code"], 3);
    assert!(st["message"].as_str().unwrap().contains("asDouble"), "{st}");

    let logs = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-l"}}]},
      "scopeLogs":[{"logRecords":[
        {"timeUnixNano":"1700000000000000000","severityNumber":17,"severityText":"ERROR",
         "body":{"kvlistValue":{"values":[{"key":"msg","value":{"stringValue":"disk full"}}]}},
         "traceId":"4BF92F3577B34DA6A3CE929D0E0E4736","spanId":"00f067aa0ba902b7"},
        {"observedTimeUnixNano":1700000001000000000,"body":{"stringValue":"only observed"}}
      ]}]}]}"#;
    let (status, text) = post_json(&p.h("/v1/logs"), logs).await;
    assert_eq!((status, text.as_str()), (200, "{}"));
    let r = get_json_q(
        &p.q("/loki/api/v1/query_range"),
        &[
            ("query", r#"{service_name="json-l"}"#),
            ("start", "1699999999"),
            ("end", "1700000002"),
            ("direction", "forward"),
        ],
    )
    .await;
    let streams = r["data"]["result"].as_array().unwrap();
    let all: Vec<(&serde_json::Value, &serde_json::Value)> = streams
        .iter()
        .flat_map(|s| {
            s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |v| (&s["stream"], v))
        })
        .collect();
    assert_eq!(all.len(), 2, "{r}");
    let (labels, v) = all
        .iter()
        .find(|(_, v)| v[0] == "1700000000000000000")
        .unwrap();
    assert_eq!(
        v[1], r#"{"msg":"disk full"}"#,
        "a map body becomes its JSON text"
    );
    assert_eq!(labels["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(labels["detected_level"], "error");
    assert!(
        all.iter()
            .any(|(_, v)| v[0] == "1700000001000000000" && v[1] == "only observed"),
        "observed time stands in"
    );
}
