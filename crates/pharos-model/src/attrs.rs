//! Reading OTLP attribute values.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

/// Returns the attribute `key`'s value, if present.
pub fn get<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// Returns the attribute `key` as a string, if present and not empty.
pub fn get_str(attrs: &[KeyValue], key: &str) -> Option<String> {
    get(attrs, key)
        .map(value_to_string)
        .filter(|s| !s.is_empty())
}

/// Renders a value the way the OpenTelemetry-to-Prometheus mapping does:
/// strings as they are, booleans and numbers in their usual text, byte
/// arrays as base64, arrays and maps as JSON.
pub fn value_to_string(v: &AnyValue) -> String {
    match &v.value {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => format_double(*d),
        Some(Value::BytesValue(b)) => base64(b),
        // A string-table index only means something inside an OTLP profile.
        Some(Value::StringValueStrindex(i)) => i.to_string(),
        Some(_) => to_json(v),
    }
}

fn format_double(d: f64) -> String {
    if d.is_finite() && d == d.trunc() && d.abs() < 1e15 {
        format!("{d:.0}")
    } else {
        d.to_string()
    }
}

/// Renders a value as JSON: strings quoted, arrays and maps nested.
pub fn to_json(v: &AnyValue) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &AnyValue, out: &mut String) {
    match &v.value {
        None => out.push_str("null"),
        Some(Value::StringValue(s)) => push_json_str(s, out),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => out.push_str(&i.to_string()),
        Some(Value::DoubleValue(d)) if d.is_finite() => out.push_str(&format_double(*d)),
        Some(Value::DoubleValue(d)) => push_json_str(&d.to_string(), out),
        Some(Value::BytesValue(b)) => push_json_str(&base64(b), out),
        Some(Value::StringValueStrindex(i)) => out.push_str(&i.to_string()),
        Some(Value::ArrayValue(a)) => {
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Some(Value::KvlistValue(kv)) => {
            out.push('{');
            for (i, item) in kv.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_str(&item.key, out);
                out.push(':');
                match &item.value {
                    Some(v) => write_json(v, out),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
    }
}

fn push_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn s(v: &str) -> AnyValue {
        AnyValue {
            value: Some(Value::StringValue(v.into())),
        }
    }

    #[test]
    fn scalars_render_plainly() {
        assert_eq!(value_to_string(&s("a\"b")), "a\"b");
        assert_eq!(
            value_to_string(&AnyValue {
                value: Some(Value::IntValue(-3))
            }),
            "-3"
        );
        assert_eq!(
            value_to_string(&AnyValue {
                value: Some(Value::DoubleValue(2.0))
            }),
            "2"
        );
        assert_eq!(
            value_to_string(&AnyValue {
                value: Some(Value::DoubleValue(2.5))
            }),
            "2.5"
        );
        assert_eq!(
            value_to_string(&AnyValue {
                value: Some(Value::BoolValue(true))
            }),
            "true"
        );
    }

    #[test]
    fn composites_render_as_json() {
        let arr = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![s("x"), s("y\n")],
            })),
        };
        assert_eq!(value_to_string(&arr), r#"["x","y\n"]"#);
        let map = AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    value: Some(s("v")),
                    ..Default::default()
                }],
            })),
        };
        assert_eq!(value_to_string(&map), r#"{"k":"v"}"#);
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
