//! Field detection for `detected_fields`: which fields a sample of lines holds, found as
//! Loki finds them: a line that looks like a JSON object is read with the `json` parser,
//! any other with `logfmt`; structured metadata counts too (with no parser). Each field
//! gets the type all its values fit (`boolean`, `int`, `float`, `duration`, `bytes`, else
//! `string`) and its number of distinct values.

use std::collections::{BTreeMap, BTreeSet};

use super::eval::LogRow;
use super::parsers::{LabelSink, Parser};
use super::pipeline::Category;

/// One detected field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedField {
    /// The field's label name.
    pub label: String,
    /// `string`, `int`, `float`, `boolean`, `duration` or `bytes`.
    pub kind: &'static str,
    /// How many distinct values it took.
    pub cardinality: usize,
    /// The parsers that found it (`json`, `logfmt`); empty for structured metadata.
    pub parsers: Vec<&'static str>,
    /// For JSON fields, the path of keys to the field.
    pub json_path: Option<Vec<String>>,
}

#[derive(Default)]
struct Collect {
    fields: Vec<(String, String)>,
}

impl LabelSink for Collect {
    fn has(&self, _name: &str) -> bool {
        false
    }
    fn set(&mut self, name: &str, value: &str) {
        self.fields.push((name.to_string(), value.to_string()));
    }
}

/// The type a value fits best.
fn kind_of(v: &str) -> &'static str {
    if v == "true" || v == "false" {
        "boolean"
    } else if v.parse::<i64>().is_ok() {
        "int"
    } else if v.parse::<f64>().is_ok() {
        "float"
    } else if pharos_model::duration::parse_nanos(v, pharos_model::duration::Units::Go).is_some() {
        "duration"
    } else if v.ends_with(|c: char| c.is_ascii_alphabetic())
        && v.starts_with(|c: char| c.is_ascii_digit())
        && super::lexer::parse_bytes(v).is_some()
    {
        "bytes"
    } else {
        "string"
    }
}

/// The type of a field whose values have these types.
fn merge_kind(a: &'static str, b: &'static str) -> &'static str {
    match (a, b) {
        (a, b) if a == b => a,
        ("int", "float") | ("float", "int") => "float",
        _ => "string",
    }
}

/// Detects the fields of `rows`, sorted by name.
pub fn detect_fields(rows: &[LogRow]) -> Vec<DetectedField> {
    struct Acc {
        kind: &'static str,
        values: BTreeSet<String>,
        parsers: BTreeSet<&'static str>,
    }
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    let json = Parser::json();
    let logfmt = Parser::logfmt(false, false, &[]);
    let mut add = |name: &str, value: &str, parser: Option<&'static str>| {
        if name.starts_with("__") {
            return;
        }
        let k = kind_of(value);
        let a = acc.entry(name.to_string()).or_insert_with(|| Acc {
            kind: k,
            values: BTreeSet::new(),
            parsers: BTreeSet::new(),
        });
        a.kind = merge_kind(a.kind, k);
        a.values.insert(value.to_string());
        if let Some(p) = parser {
            a.parsers.insert(p);
        }
    };
    for r in rows {
        for l in &r.labels {
            if l.category == Category::Metadata {
                add(&l.name, &l.value, None);
            }
        }
        let trimmed = r.line.trim_start();
        let (parser, name) = if trimmed.starts_with('{') {
            (&json, "json")
        } else {
            (&logfmt, "logfmt")
        };
        let mut sink = Collect::default();
        if parser.process(&r.line, &mut sink).is_ok() {
            for (k, v) in sink.fields {
                add(&k, &v, Some(name));
            }
        }
    }
    acc.into_iter()
        .map(|(label, a)| DetectedField {
            json_path: a
                .parsers
                .contains("json")
                .then(|| label.split('_').map(str::to_string).collect()),
            label,
            kind: a.kind,
            cardinality: a.values.len(),
            parsers: a.parsers.into_iter().collect(),
        })
        .collect()
}
