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
pub fn detect<'a>(
    line: &str,
    labels: &Labels,
    metadata: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> &'static str {
    // The value of the first of LEVEL_KEYS present: a label before metadata for the same
    // key, the first pair of metadata with it. One pass over each.
    let mut best: Option<(usize, &str)> = None;
    for (k, v) in labels {
        if let Some(i) = level_key(k)
            && best.is_none_or(|(b, _)| i < b)
        {
            best = Some((i, v));
        }
    }
    for (k, v) in metadata {
        if let Some(i) = level_key(k)
            && best.is_none_or(|(b, _)| i < b)
        {
            best = Some((i, v));
        }
    }
    if let Some((_, v)) = best {
        return normalize(v).unwrap_or_else(|| from_words(line));
    }
    if let Some(v) = field_value(line) {
        return normalize(v).unwrap_or_else(|| from_words(line));
    }
    from_words(line)
}

/// The place of `key` in [`LEVEL_KEYS`].
fn level_key(key: &str) -> Option<usize> {
    if !matches!(key.len(), 3 | 5 | 8) || !matches!(key.as_bytes()[0], b'l' | b'L' | b's' | b'S') {
        return None;
    }
    LEVEL_KEYS.iter().position(|k| *k == key)
}

/// The value of the first level-like field of a JSON (`"level":"warn"`) or logfmt
/// (`level=warn`) line, in line order; one pass over the line's `:` or `=` signs.
fn field_value(line: &str) -> Option<&str> {
    let t = line.trim();
    let json = t.starts_with('{') && t.ends_with('}');
    let sep = if json { b':' } else { b'=' };
    let bytes = line.as_bytes();
    for at in memchr::memchr_iter(sep, bytes) {
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

/// Loki's level words, in the order it prefers them, and the level each means.
const WORDS: &[(&str, &str)] = &[
    ("trace", "trace"),
    ("debug", "debug"),
    ("fatal", "fatal"),
    ("critical", "critical"),
    ("error", "error"),
    ("err", "error"),
    ("warning", "warn"),
    ("warn", "warn"),
    ("info", "info"),
];

/// The first level word of the line, as a whole word, ignoring ASCII case: of the words
/// present, the one earliest in Loki's order (`trace` before `debug` before ... `info`).
fn from_words(line: &str) -> &'static str {
    // The level words anywhere in the line, ignoring ASCII case, longest first where two
    // start together; a SIMD prefilter skips the bytes between candidates. A match lies
    // inside one word of the line (the words are letters only), so one rejected for not
    // being the whole word hides no whole-word match.
    static FINDER: std::sync::LazyLock<aho_corasick::AhoCorasick> =
        std::sync::LazyLock::new(|| {
            aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(WORDS.iter().map(|(w, _)| w))
                .expect("BUG: the level words build an automaton")
        });
    let word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = line.as_bytes();
    let mut best = WORDS.len();
    for m in FINDER.find_iter(bytes) {
        let whole = (m.start() == 0 || !word_byte(bytes[m.start() - 1]))
            && bytes.get(m.end()).is_none_or(|b| !word_byte(*b));
        if whole && m.pattern().as_usize() < best {
            best = m.pattern().as_usize();
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

    /// `from_words` against the plain definition: split into words, first in Loki's order.
    #[test]
    fn words_match_a_split_into_words() {
        let reference = |line: &str| -> &'static str {
            let words: Vec<&str> = line
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .collect();
            WORDS
                .iter()
                .find(|(w, _)| words.iter().any(|x| x.eq_ignore_ascii_case(w)))
                .map_or("unknown", |(_, l)| l)
        };
        let pieces = [
            "ERR", "error", "errors", "xinfo", "Info", "warning", "_warn", "warn_", "fatal",
            "crit", "critical", "trace9", "debug", " ", "-", "=", "é", "\"", "12", "terror",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            let mut line = String::new();
            for _ in 0..(seed % 7) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                line.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            assert_eq!(from_words(&line), reference(&line), "{line:?}");
        }
    }

    fn d(line: &str) -> &'static str {
        detect(line, &Labels::new(), [])
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
        assert_eq!(detect("info", &labels, []), "fatal");
        assert_eq!(
            detect("info", &Labels::new(), [("severity", "warning")]),
            "warn"
        );
        // Loki's key order decides, then a label before metadata, then the first pair.
        let mut labels = Labels::new();
        labels.insert("severity".into(), "error".into());
        labels.insert("app".into(), "x".into());
        assert_eq!(detect("", &labels, [("level", "debug")]), "debug");
        assert_eq!(detect("", &labels, [("severity", "debug")]), "error");
        assert_eq!(
            detect(
                "",
                &Labels::new(),
                [("lvl", "warn"), ("Level", "info"), ("Level", "debug")]
            ),
            "info"
        );
        assert_eq!(
            d("x  _debug_ DEBUG"),
            "debug",
            "words split at non-word bytes"
        );
        assert_eq!(d("warn"), "warn");
    }
}
