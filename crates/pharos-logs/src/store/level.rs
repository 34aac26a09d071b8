//! `detected_level`, as Loki 3 discovers it (`discover_log_levels`, on by default) for
//! entries that carry none: from a level-like stream label or structured metadata
//! (`level`, `severity`, `lvl` in any of three casings), else from such a field of a JSON
//! or logfmt line, else from the first level word found in the line (`trace`, `debug`,
//! `fatal`, `critical`, `error`, `err`, `warning`, `warn`, `info`, in that order, as whole
//! words, case-insensitively); `unknown` when nothing says.

use super::Labels;

/// The structured-metadata name Loki writes the level under.
pub const DETECTED_LEVEL: &str = "detected_level";

const LEVEL_KEYS: &[&str] = &[
    "level", "LEVEL", "Level", "severity", "SEVERITY", "Severity", "lvl", "LVL", "Lvl",
];

/// Loki's level for a level field's value; `None` for a value it does not know.
fn normalize(v: &str) -> Option<&'static str> {
    let v = v.trim();
    let eq = |w: &str| v.eq_ignore_ascii_case(w);
    Some(if eq("trace") || eq("trc") {
        "trace"
    } else if eq("debug") || eq("dbg") {
        "debug"
    } else if eq("info") || eq("inf") || eq("information") || eq("notice") {
        "info"
    } else if eq("warn") || eq("warning") || eq("wrn") {
        "warn"
    } else if eq("error") || eq("err") || eq("eror") {
        "error"
    } else if eq("critical") || eq("crit") {
        "critical"
    } else if eq("fatal") || eq("ftl") || eq("panic") {
        "fatal"
    } else {
        return None;
    })
}

/// The level of an entry without `detected_level`.
pub fn detect(line: &str, labels: &Labels, metadata: &[(&str, &str)]) -> &'static str {
    for key in LEVEL_KEYS {
        let v = labels
            .get(*key)
            .map(String::as_str)
            .or_else(|| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| *v));
        if let Some(v) = v {
            return normalize(v).unwrap_or_else(|| from_words(line));
        }
    }
    if let Some(v) = field_value(line) {
        return normalize(v).unwrap_or_else(|| from_words(line));
    }
    from_words(line)
}

/// The value of the first level-like field of a JSON (`"level":"warn"`) or logfmt
/// (`level=warn`) line, in line order; one pass over the line's `:` or `=` signs.
fn field_value(line: &str) -> Option<&str> {
    let t = line.trim();
    let json = t.starts_with('{') && t.ends_with('}');
    let sep = if json { b':' } else { b'=' };
    let bytes = line.as_bytes();
    for (at, _) in bytes.iter().enumerate().filter(|(_, b)| **b == sep) {
        let head = line[..at].trim_end();
        let key = if json {
            let Some(k) = head.strip_suffix('"') else {
                continue;
            };
            let Some(open) = k.rfind('"') else { continue };
            &k[open + 1..]
        } else {
            let start = head
                .rfind(|c: char| c.is_whitespace() || c == '"' || c == ',')
                .map_or(0, |i| i + 1);
            &head[start..]
        };
        if !LEVEL_KEYS.contains(&key) {
            continue;
        }
        let rest = line[at + 1..].trim_start();
        return if json {
            rest.strip_prefix('"').and_then(|r| r.split('"').next())
        } else {
            let rest = rest.strip_prefix('"').unwrap_or(rest);
            rest.split(|c: char| c.is_whitespace() || c == '"').next()
        };
    }
    None
}

/// The first level word of the line, as a whole word, ignoring ASCII case: of the words
/// present, the one earliest in Loki's order (`trace` before `debug` before ... `info`).
/// One pass over the line's words.
fn from_words(line: &str) -> &'static str {
    const WORDS: &[(&[u8], &str)] = &[
        (b"trace", "trace"),
        (b"debug", "debug"),
        (b"fatal", "fatal"),
        (b"critical", "critical"),
        (b"error", "error"),
        (b"err", "error"),
        (b"warning", "warn"),
        (b"warn", "warn"),
        (b"info", "info"),
    ];
    let mut best = WORDS.len();
    for word in line
        .as_bytes()
        .split(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
    {
        if !(3..=8).contains(&word.len()) {
            continue;
        }
        if let Some(i) = WORDS[..best]
            .iter()
            .position(|(w, _)| w.eq_ignore_ascii_case(word))
        {
            best = i;
            if best == 0 {
                break;
            }
        }
    }
    WORDS.get(best).map_or("unknown", |(_, level)| level)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(line: &str) -> &'static str {
        detect(line, &Labels::new(), &[])
    }

    #[test]
    fn levels_come_from_fields_then_words() {
        assert_eq!(d(r#"{"level":"WARN","msg":"disk"}"#), "warn");
        assert_eq!(d(r#"{"msg":"x", "severity" : "error"}"#), "error");
        assert_eq!(d("ts=1 level=debug msg=\"an error word\""), "debug");
        assert_eq!(d("lvl=\"err\" msg=ok"), "error");
        assert_eq!(d("2024-01-01 ERROR payment declined"), "error");
        assert_eq!(d("[Info] started; no warnings"), "info");
        assert_eq!(
            d("Errors happened, information follows"),
            "unknown",
            "whole words only"
        );
        assert_eq!(d("GET /x 200"), "unknown");
        assert_eq!(
            d("level=verbose trace follows"),
            "trace",
            "an unknown value falls back to words"
        );
        let mut labels = Labels::new();
        labels.insert("level".into(), "Fatal".into());
        assert_eq!(detect("info", &labels, &[]), "fatal");
        assert_eq!(
            detect("info", &Labels::new(), &[("severity", "warning")]),
            "warn"
        );
    }
}
