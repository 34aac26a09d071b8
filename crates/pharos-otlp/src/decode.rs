//! Turning OTLP/HTTP request bodies into requests.
//!
//! Bodies are protobuf (`application/x-protobuf`) or OTLP/JSON
//! (`application/json`), optionally gzip- or deflate-compressed. The size
//! limit applies to the body as sent and again as decompressed, so a small
//! gzip bomb is refused like a large body.
//!
//! OTLP/JSON writes trace and span ids as hex; a few exporters send base64
//! instead. The two are told apart by length (32/16 hex characters against
//! 24/12 base64 ones): a body that fails to decode is retried once with any
//! base64 id rewritten as hex.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use std::io::Read;

/// The body encodings OTLP/HTTP allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Binary protobuf, `application/x-protobuf`.
    Protobuf,
    /// OTLP/JSON, `application/json`.
    Json,
}

impl Encoding {
    /// Reads a `Content-Type` header value; `None` for anything OTLP does not allow.
    pub fn from_content_type(value: &str) -> Option<Encoding> {
        let mime = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    /// The `Content-Type` of responses in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body, or what it decompressed to, is larger than the limit.
    #[error("request body larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A `Content-Encoding` other than identity, gzip or deflate.
    #[error("unsupported content encoding {0:?}; supported: gzip, deflate, identity")]
    UnsupportedEncoding(String),
    /// The body is not valid compressed data.
    #[error("cannot decompress {encoding} body: {detail}")]
    Decompress {
        /// The declared content encoding.
        encoding: String,
        /// What the decompressor said.
        detail: String,
    },
    /// The body is not a valid message of the expected type.
    #[error("cannot decode {what} body: {detail}")]
    Malformed {
        /// `protobuf` or `JSON`.
        what: &'static str,
        /// What the decoder said.
        detail: String,
    },
}

/// Undoes `Content-Encoding`, enforcing `limit` on the decompressed size.
///
/// # Errors
/// [`DecodeError::UnsupportedEncoding`], [`DecodeError::Decompress`] or
/// [`DecodeError::TooLarge`].
pub fn decompress(
    content_encoding: Option<&str>,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, DecodeError> {
    if body.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    let encoding = content_encoding
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let reader: Box<dyn Read + '_> = match encoding.as_str() {
        "" | "identity" => return Ok(body),
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
        other => return Err(DecodeError::UnsupportedEncoding(other.to_string())),
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    // Read one byte past the limit to tell "exactly the limit" from "more".
    let read = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Decompress {
            encoding: encoding.clone(),
            detail: e.to_string(),
        })?;
    if read > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// Decodes an (already decompressed) body as a request of type `R`.
///
/// # Errors
/// [`DecodeError::Malformed`] with the decoder's message.
pub fn decode<R>(encoding: Encoding, body: &[u8]) -> Result<R, DecodeError>
where
    R: prost::Message + Default + DeserializeOwned,
{
    match encoding {
        Encoding::Protobuf => R::decode(body).map_err(|e| DecodeError::Malformed {
            what: "protobuf",
            detail: e.to_string(),
        }),
        Encoding::Json => decode_json(body),
    }
}

fn decode_json<R: DeserializeOwned>(body: &[u8]) -> Result<R, DecodeError> {
    // JSON text is UTF-8 (RFC 8259) everywhere, even in fields we would skip.
    if let Err(e) = std::str::from_utf8(body) {
        return Err(DecodeError::Malformed {
            what: "JSON",
            detail: format!("body is not valid UTF-8: {e}"),
        });
    }
    let malformed = |e: serde_json::Error| DecodeError::Malformed {
        what: "JSON",
        detail: e.to_string(),
    };
    // serde would read a JSON array as a struct's fields in order; OTLP/JSON is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(DecodeError::Malformed {
            what: "JSON",
            detail: "expected a JSON object".into(),
        });
    }
    match serde_json::from_slice::<R>(body) {
        Ok(r) => Ok(r),
        Err(first) => {
            // Retry once with base64 ids rewritten as hex; report the first error otherwise.
            let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else {
                return Err(malformed(first));
            };
            if !rewrite_base64_ids(&mut value) {
                return Err(malformed(first));
            }
            serde_json::from_value(value).map_err(|_| malformed(first))
        }
    }
}

/// Finds metric values that the OTLP/JSON decoder of `opentelemetry-proto`
/// drops silently: a number data point whose `asDouble`/`asInt` is not a
/// number (including the proto3 JSON strings `"NaN"`, `"Infinity"`) decodes
/// with no value, and a histogram whose `sum`/`min`/`max` is such a string
/// decodes with no data at all. Rather than store a wrong value, the request
/// is refused.
///
/// # Errors
/// A message naming the metric and the field.
pub fn check_metrics_json(
    req: &pharos_model::ExportMetricsServiceRequest,
    body: &[u8],
) -> Result<(), String> {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let suspicious = req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .any(|m| match &m.data {
            None => true,
            Some(Data::Gauge(g)) => g.data_points.iter().any(|p| p.value.is_none()),
            Some(Data::Sum(s)) => s.data_points.iter().any(|p| p.value.is_none()),
            Some(_) => false,
        });
    if !suspicious {
        return Ok(());
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(());
    };
    let metrics = json["resourceMetrics"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["scopeMetrics"].as_array().into_iter().flatten())
        .flat_map(|s| s["metrics"].as_array().into_iter().flatten());
    for m in metrics {
        let name = m["name"].as_str().unwrap_or("");
        for (kind, fields) in [
            ("gauge", &["asDouble", "asInt"][..]),
            ("sum", &["asDouble", "asInt"][..]),
            ("histogram", &["sum", "min", "max"][..]),
            ("exponentialHistogram", &["sum", "min", "max"][..]),
            ("summary", &["sum"][..]),
        ] {
            let points = m[kind]["dataPoints"].as_array().into_iter().flatten();
            for p in points {
                for field in fields {
                    let v = &p[*field];
                    let ok = v.is_null()
                        || v.is_number()
                        || (*field == "asInt"
                            && v.as_str().is_some_and(|s| s.parse::<i64>().is_ok()));
                    if !ok {
                        return Err(format!(
                            "metric {name:?}: {kind} data point field {field} is {v}; only JSON numbers are supported here \
                             (send NaN and Infinity over protobuf)"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Rewrites `traceId`/`spanId`/`parentSpanId` values that are base64 of
/// 16 or 8 bytes into hex. Returns whether anything changed.
fn rewrite_base64_ids(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    let mut changed = false;
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if matches!(k.as_str(), "traceId" | "spanId" | "parentSpanId") {
                    if let Value::String(s) = v
                        && let Some(hex) = base64_id_to_hex(s)
                    {
                        *s = hex;
                        changed = true;
                    }
                } else {
                    changed |= rewrite_base64_ids(v);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                changed |= rewrite_base64_ids(v);
            }
        }
        _ => {}
    }
    changed
}

fn base64_id_to_hex(s: &str) -> Option<String> {
    use base64::Engine;
    if s.len() != 24 && s.len() != 12 {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    matches!(bytes.len(), 16 | 8).then(|| bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_model::{ExportLogsServiceRequest, ExportTraceServiceRequest};
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::from_content_type("application/json; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(
            Encoding::from_content_type("application/x-protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
    }

    #[test]
    fn gzip_round_trip_and_bomb() {
        let data = vec![b'a'; 10_000];
        assert_eq!(
            &decompress(Some("gzip"), gzip(&data), 10_000).unwrap()[..],
            &data[..]
        );
        assert!(matches!(
            decompress(Some("gzip"), gzip(&data), 9_999),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            decompress(Some("gzip"), Bytes::from_static(b"not gzip"), 100),
            Err(DecodeError::Decompress { .. })
        ));
        assert!(matches!(
            decompress(Some("br"), Bytes::new(), 100),
            Err(DecodeError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            decompress(None, Bytes::from(vec![0; 101]), 100),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn json_hex_and_base64_ids_decode_alike() {
        let hex = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":1700000000000000001}]}]}]}"#;
        let b64 = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"W47/95gDgQPSabYzgT/GDA==","spanId":"7uGbfsPBsXQ=","name":"x","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":1700000000000000001,"unknownField":{"x":1}}]}]}]}"#;
        let a: ExportTraceServiceRequest = decode(Encoding::Json, hex.as_bytes()).unwrap();
        let b: ExportTraceServiceRequest = decode(Encoding::Json, b64.as_bytes()).unwrap();
        assert_eq!(a, b);
        let span = &a.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id[0], 0x5b);
        assert_eq!(span.kind, 2);
        assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_700_000_000_000_000_001);
    }

    #[test]
    fn metric_values_the_json_decoder_drops_are_refused() {
        use pharos_model::ExportMetricsServiceRequest;
        let check = |points: &str, kind: &str| {
            let body = format!(
                r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"m","{kind}":{{"dataPoints":[{points}]}}}}]}}]}}]}}"#
            );
            let req: ExportMetricsServiceRequest = decode(Encoding::Json, body.as_bytes()).unwrap();
            check_metrics_json(&req, body.as_bytes())
        };
        assert_eq!(
            check(
                r#"{"timeUnixNano":"1","asDouble":1.5},{"asInt":"7"}"#,
                "gauge"
            ),
            Ok(())
        );
        assert_eq!(
            check(r#"{"timeUnixNano":"1"}"#, "gauge"),
            Ok(()),
            "an absent value is legal"
        );
        let e = check(r#"{"timeUnixNano":"1","asDouble":"NaN"}"#, "gauge").unwrap_err();
        assert!(e.contains("asDouble is \"NaN\""), "{e}");
        assert!(check(r#"{"asDouble":"abc"}"#, "gauge").is_err());
        let e = check(
            r#"{"timeUnixNano":"1","count":"1","max":"NaN"}"#,
            "histogram",
        )
        .unwrap_err();
        assert!(e.contains("max"), "{e}");
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(decode::<ExportLogsServiceRequest>(Encoding::Json, b"{").is_err());
        assert!(decode::<ExportLogsServiceRequest>(Encoding::Json, b"\xff\xfe").is_err());
        assert!(decode::<ExportLogsServiceRequest>(Encoding::Json, b"{\"x\":\"\xff\"}").is_err());
        assert!(
            decode::<ExportLogsServiceRequest>(Encoding::Protobuf, b"\x0a\xff\xff\xff").is_err()
        );
        let empty: ExportLogsServiceRequest = decode(Encoding::Json, b"{}").unwrap();
        assert!(empty.resource_logs.is_empty());
    }
}
