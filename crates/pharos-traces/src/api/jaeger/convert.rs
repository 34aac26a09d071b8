//! OTLP → Jaeger UI JSON, following the OpenTelemetry Collector's Jaeger translator.
//!
//! - Each distinct resource becomes a process (`p1`, `p2`, ... in order of first
//!   appearance): `serviceName` from `service.name`, the other attributes as tags.
//! - Span tags: the span's attributes, then `otel.scope.name`/`otel.scope.version`,
//!   `span.kind`, `otel.status_code` (+ `error=true` and `otel.status_description`
//!   on error) and `w3c.tracestate`.
//! - The parent becomes a `CHILD_OF` reference, links `FOLLOWS_FROM` references.
//! - Events become logs with an `event` field holding the event name.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, status::StatusCode};
use pharos_model::attrs;
use serde_json::{Value as Json, json};

use crate::store::{UNKNOWN_SERVICE, search::span_kind_name};

/// Returns a trace id as Jaeger prints it: 16 hex digits when the high half is
/// zero, else 32.
pub fn jaeger_trace_id(id: &[u8]) -> String {
    if id.len() == 16 && id[..8].iter().all(|b| *b == 0) {
        hex::encode(&id[8..])
    } else {
        hex::encode(id)
    }
}

/// Returns the Jaeger UI's JSON for one trace made of `batches`.
pub fn trace(trace_id: &[u8], batches: &[ResourceSpans]) -> Json {
    let mut spans = Vec::new();
    let mut processes = serde_json::Map::new();
    let mut seen: Vec<(&[KeyValue], String)> = Vec::new();
    for rs in batches {
        let rattrs = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let pid = match seen.iter().find(|(a, _)| *a == rattrs) {
            Some((_, pid)) => pid.clone(),
            None => {
                let pid = format!("p{}", seen.len() + 1);
                processes.insert(pid.clone(), process(rattrs));
                seen.push((rattrs, pid.clone()));
                pid
            }
        };
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref();
            let scope_name = scope.map(|s| s.name.as_str()).unwrap_or("");
            let scope_version = scope.map(|s| s.version.as_str()).unwrap_or("");
            for span in &ss.spans {
                spans.push(self::span(span, &pid, scope_name, scope_version));
            }
        }
    }
    json!({
        "traceID": jaeger_trace_id(trace_id),
        "spans": spans,
        "processes": processes,
        "warnings": null,
    })
}

fn process(rattrs: &[KeyValue]) -> Json {
    let service =
        attrs::get_str(rattrs, "service.name").unwrap_or_else(|| UNKNOWN_SERVICE.to_string());
    let tags: Vec<Json> = rattrs
        .iter()
        .filter(|kv| kv.key != "service.name")
        .map(tag)
        .collect();
    json!({ "serviceName": service, "tags": tags })
}

fn span(span: &Span, pid: &str, scope_name: &str, scope_version: &str) -> Json {
    let trace_id = jaeger_trace_id(&span.trace_id);
    let mut references = Vec::new();
    if !span.parent_span_id.is_empty() {
        references.push(json!({
            "refType": "CHILD_OF",
            "traceID": trace_id,
            "spanID": hex::encode(&span.parent_span_id),
        }));
    }
    for link in &span.links {
        references.push(json!({
            "refType": "FOLLOWS_FROM",
            "traceID": jaeger_trace_id(&link.trace_id),
            "spanID": hex::encode(&link.span_id),
        }));
    }
    let mut tags: Vec<Json> = span.attributes.iter().map(tag).collect();
    if !scope_name.is_empty() {
        tags.push(string_tag("otel.scope.name", scope_name));
    }
    if !scope_version.is_empty() {
        tags.push(string_tag("otel.scope.version", scope_version));
    }
    if let Some(kind) = span_kind_name(span.kind) {
        tags.push(string_tag("span.kind", kind));
    }
    if let Some(status) = &span.status {
        if status.code == StatusCode::Error as i32 {
            tags.push(json!({ "key": "error", "type": "bool", "value": true }));
            tags.push(string_tag("otel.status_code", "ERROR"));
            if !status.message.is_empty() {
                tags.push(string_tag("otel.status_description", &status.message));
            }
        } else if status.code == StatusCode::Ok as i32 {
            tags.push(string_tag("otel.status_code", "OK"));
        }
    }
    if !span.trace_state.is_empty() {
        tags.push(string_tag("w3c.tracestate", &span.trace_state));
    }
    let logs: Vec<Json> = span
        .events
        .iter()
        .map(|e| {
            let mut fields = Vec::with_capacity(e.attributes.len() + 1);
            if !e.name.is_empty() {
                fields.push(string_tag("event", &e.name));
            }
            fields.extend(e.attributes.iter().map(tag));
            json!({ "timestamp": e.time_unix_nano / 1_000, "fields": fields })
        })
        .collect();
    let flags = match span.flags & 0xff {
        0 => 1,
        f => f,
    };
    json!({
        "traceID": trace_id,
        "spanID": hex::encode(&span.span_id),
        "operationName": span.name,
        "references": references,
        "startTime": span.start_time_unix_nano / 1_000,
        "duration": span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) / 1_000,
        "tags": tags,
        "logs": logs,
        "processID": pid,
        "warnings": null,
        "flags": flags,
    })
}

fn string_tag(key: &str, value: &str) -> Json {
    json!({ "key": key, "type": "string", "value": value })
}

/// Converts an OTLP attribute to a Jaeger tag; arrays and maps become JSON strings,
/// bytes base64, as the collector's translator does.
fn tag(kv: &KeyValue) -> Json {
    let empty = AnyValue::default();
    let v = kv.value.as_ref().unwrap_or(&empty);
    match &v.value {
        Some(Value::BoolValue(b)) => json!({ "key": kv.key, "type": "bool", "value": b }),
        Some(Value::IntValue(i)) => json!({ "key": kv.key, "type": "int64", "value": i }),
        Some(Value::DoubleValue(d)) if d.is_finite() => {
            json!({ "key": kv.key, "type": "float64", "value": d })
        }
        Some(Value::BytesValue(b)) => {
            json!({ "key": kv.key, "type": "binary", "value": attrs::base64(b) })
        }
        _ => string_tag(&kv.key, &attrs::value_to_string(v)),
    }
}
