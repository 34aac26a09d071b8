//! Loki's JSON push body:
//!
//! ```json
//! {"streams": [{"stream": {"app": "api"},
//!               "values": [["1700000000000000000", "a line", {"trace_id": "0af7"}]]}]}
//! ```
//!
//! Each value is the timestamp in Unix nanoseconds as a string, the line, and optionally
//! an object of structured metadata whose values are strings. The stream's labels are
//! turned into the selector form the protobuf body carries, so both bodies take the same
//! path from here on.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{self, SeqAccess, Visitor};

use super::proto::{Entry, LabelPair, PushRequest, Stream, Timestamp};
use crate::store::labels_string;

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<Value>,
}

/// One `[ts, line, {metadata}?]` array.
struct Value(Entry);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of a timestamp, a line and optional structured metadata")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let ts: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("a value needs a timestamp"))?;
                let ns: i64 = ts.parse().map_err(|_| {
                    de::Error::custom(format!("invalid timestamp {ts:?}: not an integer"))
                })?;
                let line: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("a value needs a line"))?;
                let meta: Option<BTreeMap<String, String>> = seq.next_element()?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(
                        "a value has at most three elements: timestamp, line, structured metadata",
                    ));
                }
                Ok(Value(Entry {
                    timestamp: Some(Timestamp::from_nanos(ns)),
                    line,
                    structured_metadata: meta
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| LabelPair::new(k, v))
                        .collect(),
                }))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Decodes a JSON push body.
///
/// # Errors
///
/// serde_json's message for a body that is not JSON of the shape above.
pub fn decode(body: &[u8]) -> Result<PushRequest, String> {
    let body: Body = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(PushRequest {
        streams: body
            .streams
            .into_iter()
            .map(|s| Stream {
                labels: labels_string(&s.stream),
                entries: s.values.into_iter().map(|v| v.0).collect(),
                hash: 0,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_values_with_and_without_metadata() {
        let req = decode(
            br#"{"streams":[{"stream":{"b":"2","a":"x\"y"},"values":[
                ["1700000000000000001","one"],
                ["-5","two",{"trace_id":"0af7","k":"v"}]]}]}"#,
        )
        .unwrap();
        let s = &req.streams[0];
        assert_eq!(s.labels, r#"{a="x\"y", b="2"}"#);
        assert_eq!(s.entries[0].ts_ns(), 1_700_000_000_000_000_001);
        assert_eq!(s.entries[0].line, "one");
        assert!(s.entries[0].structured_metadata.is_empty());
        assert_eq!(s.entries[1].ts_ns(), -5);
        assert_eq!(
            s.entries[1].structured_metadata,
            vec![LabelPair::new("k", "v"), LabelPair::new("trace_id", "0af7")]
        );
    }

    #[test]
    fn refuses_bad_shapes() {
        for (body, needle) in [
            (
                r#"{"streams":[{"stream":{},"values":[[1,"x"]]}]}"#,
                "string",
            ),
            (
                r#"{"streams":[{"values":[["x1","x"]]}]}"#,
                "invalid timestamp",
            ),
            (r#"{"streams":[{"values":[["1"]]}]}"#, "needs a line"),
            (
                r#"{"streams":[{"values":[["1","l",{},4]]}]}"#,
                "at most three",
            ),
            (r#"{"streams":[{"values":[["1","l",{"a":1}]]}]}"#, "string"),
            (r#"{"streams":"#, "EOF"),
        ] {
            let err = decode(body.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{body}: {err}");
        }
        assert_eq!(decode(b"{}").unwrap().streams.len(), 0);
    }
}
