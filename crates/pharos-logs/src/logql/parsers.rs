//! LogQL parser stages as Loki (v3) runs them: `| json`, `| json name="path", ...`,
//! `| logfmt [--strict] [--keep-empty] [name="key", key, ...]`, `| regexp "re"`,
//! `| pattern "<ip> - <_> ..."` and `| unpack`.
//!
//! The behaviour follows Loki's `pkg/logql/log/parser.go` and the code it relies on:
//! the `grafana/jsonparser` scanner (`ObjectEach`, `Get`, `Unescape`), Loki's fork of
//! go-logfmt's decoder (`pkg/logql/log/logfmt`), the pattern matcher and grammar
//! (`pkg/logql/log/pattern`) and the JSON path grammar (`pkg/logql/log/jsonexpr`).
//! In particular:
//!
//! - `| json` flattens nested objects with `_`, skips arrays and `null`s, keeps numbers
//!   as their raw text (`1.50` stays `1.50`), unescapes strings (a bad escape gives an
//!   empty value) and replaces U+FFFD with a space. It is as lenient as jsonparser
//!   (trailing commas, unvalidated numbers, text after the closing `}`); on malformed
//!   input the labels parsed before the error stay and the error carries jsonparser's
//!   message (`Value looks like object, but can't find closing '}' symbol`, ...).
//! - `| json name="path"` sets each name from its path (first match wins); objects come
//!   back as raw JSON text, `null` and missing paths as `""`. A line that does not
//!   start with `{`, `[` or `"` is a `JSONParserErr` without details.
//! - `| logfmt` skips malformed pairs; `--strict` stops at the first one and fails with
//!   `LogfmtParserErr` (`logfmt syntax error at pos N : ...`). Without `--keep-empty`,
//!   bare keys and empty values (`k=`, `k=""`) are dropped.
//! - `| regexp`: a named group that did not take part in the match is set to `""`;
//!   a line that does not match sets nothing. `| pattern`: a literal that is not found
//!   ends matching and the pending capture takes the rest of the line; a line whose
//!   leading literal differs sets nothing. Neither ever fails on a line.
//! - `| unpack` needs the line to start with `{`; it sets the top-level string fields
//!   and replaces the line only when there is an `_entry` string, else changes nothing.
//! - Collisions: a parsed name that the entry already has as a stream label or structured
//!   metadata ([`LabelSink::has`]) becomes `<name>_extracted`. The first value extracted
//!   for a name wins: a duplicate key later in the line, or a name an earlier stage
//!   already extracted ([`LabelSink::extracted`]), is skipped (Loki since 2.9.4, PR
//!   #11587; first-wins for json/logfmt duplicates restated in PR #19568). A label this
//!   stage set never counts as a collision for itself, whatever `has` answers.
//! - Parsers never set `__error__`/`__error_details__` themselves: a failure is returned
//!   as a [`ParserError`] and the caller records it. A key that *sanitizes to*
//!   `__error__` is set like any other label, as Loki does.
//!
//! Known deviations from Loki:
//!
//! - Loki caches the `_extracted` decision per parser instance, which all streams of a
//!   query share; here it is decided per line from the sink.
//! - A key that sanitizes to the empty string is skipped (Loki's `| json` and
//!   `| unpack` would set a label with an empty name).
//! - `| json name="path"` walks the JSON structurally: on malformed input it stops at
//!   the first syntax error, where jsonparser's `EachKey` byte scanner may still find
//!   keys further on. Well-formed JSON gives the same results.
//! - `| regexp` uses Rust's `regex` (RE2-like, leftmost-first like Go). The pattern is
//!   rewritten so that `\d`, `\w`, `\s`, `\b` are ASCII-only as in Go, `\Q...\E` works, and
//!   a `{` that starts no repetition is a literal. Compile errors are Rust's text in
//!   Go's shape: error parsing regexp: WHAT: `RE`.
//! - Grammar errors for json/logfmt expressions approximate goyacc's wording.

use std::fmt;

use regex::Regex;

/// The suffix Loki appends to a parsed label whose name is already present.
pub const EXTRACTED_SUFFIX: &str = "_extracted";
/// `__error__` value for `| json` (with or without parameters) and `| unpack` failures.
pub const JSON_PARSER_ERR: &str = "JSONParserErr";
/// `__error__` value for `| logfmt --strict` failures.
pub const LOGFMT_PARSER_ERR: &str = "LogfmtParserErr";
/// The key `| unpack` reads the original log line from (Promtail's `pack` stage).
pub const PACKED_ENTRY_KEY: &str = "_entry";

/// Where parsed labels go. The evaluator implements it over the entry's current labels
/// (stream labels, structured metadata, and labels earlier stages added).
pub trait LabelSink {
    /// Whether a label of this name is already present (stream label, structured
    /// metadata or an earlier stage's). Loki then names the parsed one `<name>_extracted`.
    ///
    /// To match Loki exactly, answer for stream labels and structured metadata only
    /// (`BaseHas` / `HasInCategory(StructuredMetadata)`), and report labels that earlier
    /// stages set through [`LabelSink::extracted`]: Loki does not suffix those, it keeps
    /// them and skips the new value.
    fn has(&self, name: &str) -> bool;
    /// Sets (adds or replaces) a label.
    fn set(&mut self, name: &str, value: &str);
    /// Whether an earlier stage of the pipeline already set this label on the entry
    /// (a parser, `label_format`, ...). Loki (since 2.9.4, PR #11587) keeps the first
    /// extracted value: a parser skips a key whose final name was already extracted.
    /// Defaults to `false` (a later parser then sets the label).
    fn extracted(&self, name: &str) -> bool {
        let _ = name;
        false
    }
    /// Whether the entry has a label of this name from any source. `| json name="path"`
    /// sets `name` to `""` when the path is missing unless this is true (Loki's
    /// `LabelsBuilder.Get`). Defaults to `has(name) || extracted(name)`.
    fn exists(&self, name: &str) -> bool {
        self.has(name) || self.extracted(name)
    }
}

/// A parse failure, as Loki records it in `__error__` and `__error_details__`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParserError {
    /// The `__error__` value: [`JSON_PARSER_ERR`] or [`LOGFMT_PARSER_ERR`] (`| regexp`
    /// and `| pattern` never fail on a line).
    pub kind: &'static str,
    /// The `__error_details__` value, Loki's wording. Empty when Loki sets no details
    /// (`| json name="path"` on a line that does not start like JSON).
    pub details: String,
}

impl fmt::Display for ParserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            f.write_str(self.kind)
        } else {
            write!(f, "{}: {}", self.kind, self.details)
        }
    }
}

impl std::error::Error for ParserError {}

/// A parser stage, built once per query.
#[derive(Debug, Clone)]
pub enum Parser {
    /// `| json`: every scalar field, nested objects flattened with `_`.
    Json,
    /// `| json name="path", ...`.
    JsonExpressions(JsonExpressions),
    /// `| logfmt [--strict] [--keep-empty] [params]`.
    Logfmt(Logfmt),
    /// `| regexp "re"`.
    Regexp(RegexpStage),
    /// `| pattern "..."`.
    Pattern(PatternStage),
    /// `| unpack`.
    Unpack,
}

/// The compiled form of `| json name="path", ...`.
#[derive(Debug, Clone)]
pub struct JsonExpressions {
    ids: Vec<String>,
    paths: Vec<Vec<PathElem>>,
}

/// The compiled form of `| logfmt ...`.
#[derive(Debug, Clone)]
pub struct Logfmt {
    strict: bool,
    keep_empty: bool,
    /// `(label name, logfmt key)`; empty for the parameterless form.
    exprs: Vec<(String, String)>,
}

/// The compiled form of `| regexp "re"`.
#[derive(Debug, Clone)]
pub struct RegexpStage {
    regex: Regex,
    /// `(capture group index, label name)`, in group order.
    groups: Vec<(usize, String)>,
}

/// The compiled form of `| pattern "..."`.
#[derive(Debug, Clone)]
pub struct PatternStage {
    nodes: Vec<PatternNode>,
    names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathElem {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternNode {
    Literal(String),
    /// `None` for `<_>`.
    Capture(Option<String>),
}

impl Parser {
    /// `| json` with no parameters: every field, nested objects flattened with `_`.
    #[must_use]
    pub fn json() -> Parser {
        Parser::Json
    }

    /// `| json name="expr", ...` : each name set from the JSON path expression
    /// (`a.b`, `a[0]`, `a["key with space"]`, `["a"]`). Error (message) for a bad expression.
    ///
    /// # Errors
    ///
    /// `cannot parse expression [EXPR]: ...` for a path outside the grammar, and
    /// `invalid extracted label name 'NAME'` for a name that is not a valid label name.
    pub fn json_expressions(exprs: &[(String, String)]) -> Result<Parser, String> {
        if exprs.is_empty() {
            return Ok(Parser::Json);
        }
        let mut ids = Vec::with_capacity(exprs.len());
        let mut paths = Vec::with_capacity(exprs.len());
        for (id, expr) in exprs {
            let path = parse_json_expr(expr)
                .map_err(|e| format!("cannot parse expression [{expr}]: {e}"))?;
            if !is_valid_label_name(id) {
                return Err(format!("invalid extracted label name '{id}'"));
            }
            ids.push(id.clone());
            paths.push(path);
        }
        Ok(Parser::JsonExpressions(JsonExpressions { ids, paths }))
    }

    /// `| logfmt [--strict] [--keep-empty]`, optionally with `name="key"` / bare `key` params.
    ///
    /// With parameters, `keep_empty` has no effect (Loki's `LogfmtExpressionParser` sets
    /// every named label, `""` when the key is missing or bare).
    ///
    /// Never fails: a key expression Loki would reject (`a.b`) is matched in its sanitized
    /// form (`a_b`), as the sanitized logfmt keys are. Use [`Parser::try_logfmt`] to get
    /// Loki's errors instead.
    #[must_use]
    pub fn logfmt(strict: bool, keep_empty: bool, exprs: &[(String, String)]) -> Parser {
        let exprs = exprs
            .iter()
            .map(|(id, expr)| {
                let key = parse_logfmt_expr(expr).unwrap_or_else(|_| sanitize_label_name(expr));
                (id.clone(), key)
            })
            .collect();
        Parser::Logfmt(Logfmt {
            strict,
            keep_empty,
            exprs,
        })
    }

    /// Like [`Parser::logfmt`], but rejects what Loki rejects: a key expression that is
    /// neither an identifier nor a quoted string (`cannot parse expression [..]: ..`), and
    /// a label name that is not a valid Prometheus name.
    ///
    /// # Errors
    ///
    /// `cannot parse expression [EXPR]: ...` or `invalid extracted label name 'NAME'`.
    pub fn try_logfmt(
        strict: bool,
        keep_empty: bool,
        exprs: &[(String, String)],
    ) -> Result<Parser, String> {
        let mut out = Vec::with_capacity(exprs.len());
        for (id, expr) in exprs {
            let key = parse_logfmt_expr(expr)
                .map_err(|e| format!("cannot parse expression [{expr}]: {e}"))?;
            if !is_valid_label_name(id) {
                return Err(format!("invalid extracted label name '{id}'"));
            }
            out.push((id.clone(), key));
        }
        Ok(Parser::Logfmt(Logfmt {
            strict,
            keep_empty,
            exprs: out,
        }))
    }

    /// `| regexp "re"`: named groups become labels. Error when the regex is invalid or has no
    /// named group (Loki's message).
    ///
    /// # Errors
    ///
    /// `error parsing regexp: ...` for a pattern that does not compile,
    /// `at least one named capture must be supplied`, and
    /// `invalid extracted label name 'NAME'` / `duplicate extracted label name 'NAME'`.
    /// Loki's LogQL parser prefixes these messages with `invalid regexp parser: `.
    pub fn regexp(re: &str) -> Result<Parser, String> {
        let translated = go_regex_to_rust(re);
        let regex = regex::RegexBuilder::new(&translated)
            .octal(true)
            .build()
            .map_err(|e| regex_error_message(&e, re))?;
        let mut groups = Vec::new();
        for (i, name) in regex.capture_names().enumerate() {
            let Some(name) = name else { continue };
            if !is_valid_label_name(name) {
                return Err(format!("invalid extracted label name '{name}'"));
            }
            if groups.iter().any(|(_, n)| n == name) {
                return Err(format!("duplicate extracted label name '{name}'"));
            }
            groups.push((i, name.to_string()));
        }
        if groups.is_empty() {
            return Err("at least one named capture must be supplied".to_string());
        }
        Ok(Parser::Regexp(RegexpStage { regex, groups }))
    }

    /// `| pattern "<ip> - <_> ..."`: Loki's pattern syntax. Error text as Loki's for a
    /// pattern with no named capture, consecutive captures, etc.
    ///
    /// # Errors
    ///
    /// `at least one capture is required`, `found consecutive capture '<a><b>': invalid
    /// expression`, `duplicate capture name (a): invalid expression`, and a syntax error
    /// for the empty pattern. Loki's LogQL parser prefixes these messages with
    /// `invalid pattern parser: `.
    pub fn pattern(p: &str) -> Result<Parser, String> {
        let nodes = parse_pattern(p);
        if nodes.is_empty() {
            return Err(
                "parse error at line 1, col 1: syntax error: unexpected $end, expecting IDENTIFIER or LITERAL"
                    .to_string(),
            );
        }
        let names: Vec<String> = nodes
            .iter()
            .filter_map(|n| match n {
                PatternNode::Capture(Some(name)) => Some(name.clone()),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            return Err("at least one capture is required".to_string());
        }
        for pair in nodes.windows(2) {
            if let [PatternNode::Capture(a), PatternNode::Capture(b)] = pair {
                let show = |c: &Option<String>| format!("<{}>", c.as_deref().unwrap_or("_"));
                return Err(format!(
                    "found consecutive capture '{}{}': invalid expression",
                    show(a),
                    show(b)
                ));
            }
        }
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(format!(
                    "duplicate capture name ({name}): invalid expression"
                ));
            }
        }
        Ok(Parser::Pattern(PatternStage { nodes, names }))
    }

    /// `| unpack`: a JSON object whose `_entry` becomes the line and other string fields labels.
    #[must_use]
    pub fn unpack() -> Parser {
        Parser::Unpack
    }

    /// Runs the parser on `line`, writing labels to `sink`. Returns `Ok(Some(new_line))`
    /// when the stage replaces the line (unpack with `_entry`), `Ok(None)` otherwise.
    ///
    /// # Errors
    ///
    /// A [`ParserError`] for the caller to record as `__error__`/`__error_details__`
    /// (`| json` on malformed JSON, `| unpack` on a non-object, `| logfmt --strict` on a
    /// syntax error). The labels the stage set before the failure stay set, as in Loki.
    pub fn process(
        &self,
        line: &str,
        sink: &mut dyn LabelSink,
    ) -> Result<Option<String>, ParserError> {
        match self {
            Parser::Json => process_json(line, sink).map(|()| None),
            Parser::JsonExpressions(j) => j.process(line, sink).map(|()| None),
            Parser::Logfmt(l) => l.process(line, sink).map(|()| None),
            Parser::Regexp(r) => {
                r.process(line, sink);
                Ok(None)
            }
            Parser::Pattern(p) => {
                p.process(line, sink);
                Ok(None)
            }
            Parser::Unpack => process_unpack(line, sink),
        }
    }
}

/// Turns any string into a valid Prometheus/Loki label name as Loki's parsers do
/// (invalid characters to `_`, a leading digit prefixed with `_`).
///
/// This is Loki's `sanitizeLabelKey(key, true)`: surrounding Unicode whitespace is
/// trimmed, a leading ASCII digit gets a `_` prefix, and every character other than
/// `[A-Za-z0-9_]` becomes one `_` (`a.b-c` → `a_b_c`, `1xx` → `_1xx`, `héllo` → `h_llo`).
/// An empty or all-whitespace input gives the empty string.
#[must_use]
pub fn sanitize_label_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    push_sanitized(&mut out, name, true);
    out
}

/// Appends the sanitized form of `key` (Loki's `sanitizeLabelKey` / `appendSanitized`).
fn push_sanitized(out: &mut String, key: &str, digit_prefix: bool) {
    let key = key.trim();
    if key.is_empty() {
        return;
    }
    if digit_prefix && key.as_bytes()[0].is_ascii_digit() {
        out.push('_');
    }
    if key.is_ascii() {
        out.extend(key.bytes().map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                b as char
            } else {
                '_'
            }
        }));
    } else {
        out.extend(key.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        }));
    }
}

/// Prometheus' legacy label name rule, `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Loki's rule for a parsed key, applied to `name` (which holds the sanitized key):
/// the key gets `_extracted` when the entry already has it ([`LabelSink::has`]), and a
/// final name already set — earlier in this line by this stage, or by an earlier stage
/// ([`LabelSink::extracted`]) — keeps its first value. Returns whether to set `name`
/// (then holding the final name); call [`Seen::mark`] once it is set.
fn admit(seen: &Seen, sink: &dyn LabelSink, name: &mut String) -> bool {
    if seen.contains(name) {
        return false;
    }
    if sink.has(name) {
        name.push_str(EXTRACTED_SUFFIX);
        if seen.contains(name) {
            return false;
        }
    }
    !sink.extracted(name)
}

/// The names one stage set (and the keys they came from) for the current line. A linear
/// list while small, then an open-addressing hash set over the same string arena;
/// nothing is allocated until the first insert.
#[derive(Default)]
struct Seen {
    arena: String,
    spans: Vec<(usize, usize)>,
    /// Index into `spans` plus one; 0 is an empty slot. Empty while the set is small,
    /// otherwise its length is a power of two at least twice `spans.len()`.
    table: Vec<u32>,
}

impl Seen {
    const LINEAR_MAX: usize = 16;

    fn hash(s: &str) -> usize {
        let mut h = s.len() as u64;
        for chunk in s.as_bytes().chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h ^= h >> 29;
        }
        h as usize
    }

    fn get(&self, idx: usize) -> &str {
        let (a, b) = self.spans[idx];
        &self.arena[a..b]
    }

    fn contains(&self, s: &str) -> bool {
        if self.table.is_empty() {
            return self
                .spans
                .iter()
                .any(|&(a, b)| b - a == s.len() && &self.arena[a..b] == s);
        }
        let mask = self.table.len() - 1;
        let mut i = Self::hash(s) & mask;
        loop {
            match self.table[i] {
                0 => return false,
                e if self.get(e as usize - 1) == s => return true,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn insert(&mut self, s: &str) {
        if !self.contains(s) {
            self.insert_new(s);
        }
    }

    /// Inserts `s`, which the caller knows is absent.
    fn insert_new(&mut self, s: &str) {
        if self.spans.capacity() == 0 {
            self.arena.reserve(256);
            self.spans.reserve(Self::LINEAR_MAX);
        }
        let start = self.arena.len();
        self.arena.push_str(s);
        self.spans.push((start, self.arena.len()));
        let n = self.spans.len();
        if self.table.is_empty() && n <= Self::LINEAR_MAX {
            return;
        }
        if n * 2 > self.table.len() {
            self.table = vec![0; (n * 4).next_power_of_two()];
            for idx in 0..n {
                self.place(idx);
            }
        } else {
            self.place(n - 1);
        }
    }

    fn place(&mut self, idx: usize) {
        let mask = self.table.len() - 1;
        let mut i = Self::hash(self.get(idx)) & mask;
        while self.table[i] != 0 {
            i = (i + 1) & mask;
        }
        self.table[i] = u32::try_from(idx + 1).unwrap_or(u32::MAX);
    }

    /// Records a label this stage set after [`admit`] accepted it: its final `name` and
    /// the key it came from (`name[..key_len]`), both known to be absent.
    fn mark(&mut self, name: &str, key_len: usize) {
        self.insert_new(&name[..key_len]);
        if name.len() > key_len {
            self.insert_new(name);
        }
    }
}

// ---------------------------------------------------------------------------------
// JSON scanning: a port of the grafana/jsonparser functions Loki uses.
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonErr {
    UnknownValueType,
    MalformedJson,
    MalformedString,
    MalformedArray,
    MalformedObject,
    MalformedStringEscape,
}

impl JsonErr {
    fn message(self) -> &'static str {
        match self {
            JsonErr::UnknownValueType => "Unknown value type",
            JsonErr::MalformedJson => "Malformed JSON error",
            JsonErr::MalformedString => "Value is string, but can't find closing '\"' symbol",
            JsonErr::MalformedArray => "Value is array, but can't find closing ']' symbol",
            JsonErr::MalformedObject => {
                "Value looks like object, but can't find closing '}' symbol"
            }
            JsonErr::MalformedStringEscape => "Encountered an invalid escape sequence in a string",
        }
    }

    fn into_parser_error(self) -> ParserError {
        ParserError {
            kind: JSON_PARSER_ERR,
            details: self.message().to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JType {
    String,
    Number,
    Object,
    Array,
    Boolean,
    Null,
}

/// A value as jsonparser's `Get` returns it: strings without their quotes, objects and
/// arrays as their raw text, scalars as their token.
#[derive(Debug, Clone, Copy)]
struct JVal<'a> {
    ty: JType,
    raw: &'a str,
    /// Offset just past the value in the scanned text.
    end: usize,
}

fn is_json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// First non-whitespace byte at or after `from`.
fn next_token(d: &[u8], from: usize) -> Option<usize> {
    d.get(from..)?
        .iter()
        .position(|&b| !is_json_ws(b))
        .map(|p| from + p)
}

/// End of a string whose content starts at `from`: the offset just past the closing
/// quote, and whether the string contains a backslash.
fn string_end(d: &[u8], from: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    let mut i = from;
    while let Some(p) = d[i..].iter().position(|&b| b == b'"' || b == b'\\') {
        i += p;
        if d[i] == b'\\' {
            escaped = true;
            i += 1;
            continue;
        }
        if !escaped {
            return Some((i + 1, false));
        }
        let backslashes = d[from..i].iter().rev().take_while(|&&b| b == b'\\').count();
        if backslashes % 2 == 0 {
            return Some((i + 1, true));
        }
        i += 1;
    }
    None
}

/// End (just past the closing symbol) of the block opening at `from`.
fn block_end(d: &[u8], from: usize, open: u8, close: u8) -> Option<usize> {
    let mut level = 0usize;
    let mut i = from;
    while i < d.len() {
        let c = d[i];
        if c == b'"' {
            i = string_end(d, i + 1)?.0;
            continue;
        }
        if c == open {
            level += 1;
        } else if c == close {
            level = level.saturating_sub(1);
            if level == 0 {
                return Some(i + 1);
            }
        }
        i += 1;
    }
    None
}

fn token_end(d: &[u8], from: usize) -> usize {
    d[from..]
        .iter()
        .position(|&b| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b',' | b'}' | b']'))
        .map_or(d.len(), |p| from + p)
}

/// jsonparser's `Get` without keys: the value starting at the first token at or after `from`.
fn get_value(s: &str, from: usize) -> Result<JVal<'_>, JsonErr> {
    let d = s.as_bytes();
    let off = next_token(d, from).ok_or(JsonErr::MalformedJson)?;
    match d[off] {
        b'"' => {
            let (end, _) = string_end(d, off + 1).ok_or(JsonErr::MalformedString)?;
            Ok(JVal {
                ty: JType::String,
                raw: &s[off + 1..end - 1],
                end,
            })
        }
        b'[' => {
            let end = block_end(d, off, b'[', b']').ok_or(JsonErr::MalformedArray)?;
            Ok(JVal {
                ty: JType::Array,
                raw: &s[off..end],
                end,
            })
        }
        b'{' => {
            let end = block_end(d, off, b'{', b'}').ok_or(JsonErr::MalformedObject)?;
            Ok(JVal {
                ty: JType::Object,
                raw: &s[off..end],
                end,
            })
        }
        c => {
            let end = token_end(d, off);
            let raw = &s[off..end];
            let ty = match c {
                b't' | b'f' if raw == "true" || raw == "false" => JType::Boolean,
                b'n' | b'u' if raw == "null" => JType::Null,
                b'0'..=b'9' | b'-' => JType::Number,
                _ => return Err(JsonErr::UnknownValueType),
            };
            Ok(JVal { ty, raw, end })
        }
    }
}

/// jsonparser's `Unescape`, appending to `out`. `Err` on an invalid escape sequence.
fn unescape_into(raw: &str, out: &mut String) -> Result<(), ()> {
    let b = raw.as_bytes();
    let mut last = 0;
    while let Some(p) = b[last..].iter().position(|&c| c == b'\\') {
        let at = last + p;
        out.push_str(&raw[last..at]);
        let rest = &b[at..];
        let consumed = match rest.get(1).ok_or(())? {
            b'"' => push_ret(out, '"', 2),
            b'\\' => push_ret(out, '\\', 2),
            b'/' => push_ret(out, '/', 2),
            b'b' => push_ret(out, '\u{8}', 2),
            b'f' => push_ret(out, '\u{c}', 2),
            b'n' => push_ret(out, '\n', 2),
            b'r' => push_ret(out, '\r', 2),
            b't' => push_ret(out, '\t', 2),
            b'u' => {
                let r = hex4(rest, 2).ok_or(())?;
                if !(0xD800..=0xDFFF).contains(&r) {
                    push_ret(out, char::from_u32(r).unwrap_or('\u{FFFD}'), 6)
                } else {
                    // jsonparser reads the low half at bytes 8..12 without checking `\u`.
                    let r2 = hex4(rest, 8).ok_or(())?;
                    if r2 < 0xDC00 {
                        return Err(());
                    }
                    let c = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00);
                    push_ret(out, char::from_u32(c).unwrap_or('\u{FFFD}'), 12)
                }
            }
            _ => return Err(()),
        };
        last = at + consumed;
        if !raw.is_char_boundary(last) {
            return Err(());
        }
    }
    out.push_str(&raw[last..]);
    Ok(())
}

fn push_ret(out: &mut String, c: char, n: usize) -> usize {
    out.push(c);
    n
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?
        .iter()
        .try_fold(0u32, |acc, &c| Some(acc * 16 + (c as char).to_digit(16)?))
}

/// Loki's `unescapeJSONString`: unescaped text, `""` on a bad escape, U+FFFD → space.
fn json_string<'b>(raw: &'b str, buf: &'b mut String) -> &'b str {
    if !raw.bytes().any(|b| b == b'\\' || b == 0xEF) {
        return raw;
    }
    buf.clear();
    if unescape_into(raw, buf).is_err() {
        return "";
    }
    if buf.contains('\u{FFFD}') {
        *buf = buf.replace('\u{FFFD}', " ");
    }
    buf
}

struct Member<'k, 'a> {
    key: &'k str,
    val: Result<JVal<'a>, JsonErr>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum IterState {
    Start,
    AfterValue,
    Done,
}

/// jsonparser's `ObjectEach` as an iterator over the members of the object at the start
/// of `s` (leading whitespace allowed, trailing text ignored).
struct ObjectIter<'a> {
    s: &'a str,
    pos: usize,
    state: IterState,
}

impl<'a> ObjectIter<'a> {
    fn new(s: &'a str) -> Self {
        ObjectIter {
            s,
            pos: 0,
            state: IterState::Start,
        }
    }

    /// The next member; an escaped key is unescaped into `scratch`. A value that fails
    /// to scan is returned with its key, and ends the iteration.
    fn next_member<'s>(
        &mut self,
        scratch: &'s mut String,
    ) -> Result<Option<Member<'s, 'a>>, JsonErr>
    where
        'a: 's,
    {
        let r = self.step(scratch);
        if !matches!(r, Ok(Some(Member { val: Ok(_), .. }))) {
            self.state = IterState::Done;
        }
        r
    }

    fn step<'s>(&mut self, scratch: &'s mut String) -> Result<Option<Member<'s, 'a>>, JsonErr>
    where
        'a: 's,
    {
        let s: &'a str = self.s;
        let d = s.as_bytes();
        match self.state {
            IterState::Done => return Ok(None),
            IterState::Start => {
                let off = next_token(d, 0).ok_or(JsonErr::MalformedObject)?;
                if d[off] != b'{' {
                    return Err(JsonErr::MalformedObject);
                }
                let off = next_token(d, off + 1).ok_or(JsonErr::MalformedJson)?;
                if d[off] == b'}' {
                    return Ok(None);
                }
                self.pos = off;
            }
            IterState::AfterValue => {
                let off = next_token(d, self.pos).ok_or(JsonErr::MalformedArray)?;
                match d[off] {
                    b'}' => return Ok(None),
                    b',' => {}
                    _ => return Err(JsonErr::MalformedObject),
                }
                self.pos = next_token(d, off + 1).ok_or(JsonErr::MalformedArray)?;
            }
        }
        let mut off = self.pos;
        match d[off] {
            b'"' => off += 1,
            b'}' => return Ok(None),
            _ => return Err(JsonErr::MalformedObject),
        }
        let (end, escaped) = string_end(d, off).ok_or(JsonErr::MalformedJson)?;
        let raw_key = &s[off..end - 1];
        let key: &'s str = if escaped {
            scratch.clear();
            unescape_into(raw_key, scratch).map_err(|()| JsonErr::MalformedStringEscape)?;
            scratch.as_str()
        } else {
            raw_key
        };
        let colon = next_token(d, end).ok_or(JsonErr::MalformedJson)?;
        if d[colon] != b':' {
            return Err(JsonErr::MalformedJson);
        }
        let val = get_value(s, colon + 1);
        if let Ok(v) = &val {
            self.pos = v.end;
            self.state = IterState::AfterValue;
        }
        Ok(Some(Member { key, val }))
    }
}

// ---------------------------------------------------------------------------------
// | json
// ---------------------------------------------------------------------------------

struct JsonCtx<'x> {
    sink: &'x mut dyn LabelSink,
    seen: Seen,
    val_buf: String,
}

fn process_json(line: &str, sink: &mut dyn LabelSink) -> Result<(), ParserError> {
    let mut ctx = JsonCtx {
        sink,
        seen: Seen::default(),
        val_buf: String::new(),
    };
    let mut prefix = String::with_capacity(64);
    json_object(line, &mut prefix, &mut ctx).map_err(JsonErr::into_parser_error)
}

/// Appends one key level to the flattened name, as Loki's `buildSanitizedPrefixFromBuffer`:
/// levels whose key is empty or blank are left out, the others joined with `_`.
fn push_key(prefix: &mut String, key: &str) {
    if key.trim().is_empty() {
        return;
    }
    if !prefix.is_empty() {
        prefix.push('_');
    }
    let digit_prefix = prefix.is_empty();
    push_sanitized(prefix, key, digit_prefix);
}

fn json_object(s: &str, prefix: &mut String, ctx: &mut JsonCtx<'_>) -> Result<(), JsonErr> {
    let mut it = ObjectIter::new(s);
    let mut scratch = String::new();
    while let Some(m) = it.next_member(&mut scratch)? {
        let v = m.val?;
        let len = prefix.len();
        match v.ty {
            JType::String | JType::Number | JType::Boolean => {
                push_key(prefix, m.key);
                let key_len = prefix.len();
                if key_len > 0 && admit(&ctx.seen, &*ctx.sink, prefix) {
                    let value = match v.ty {
                        JType::String => json_string(v.raw, &mut ctx.val_buf),
                        _ => v.raw,
                    };
                    ctx.sink.set(prefix, value);
                    ctx.seen.mark(prefix, key_len);
                }
                prefix.truncate(len);
            }
            JType::Object => {
                push_key(prefix, m.key);
                let r = json_object(v.raw, prefix, ctx);
                prefix.truncate(len);
                r?;
            }
            JType::Array | JType::Null => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// | json name="path"
// ---------------------------------------------------------------------------------

impl JsonExpressions {
    fn process(&self, line: &str, sink: &mut dyn LabelSink) -> Result<(), ParserError> {
        if line.is_empty() {
            return Ok(());
        }
        if !matches!(line.as_bytes()[0], b'"' | b'{' | b'[') {
            return Err(ParserError {
                kind: JSON_PARSER_ERR,
                details: String::new(),
            });
        }
        let mut seen = Seen::default();
        let mut matched = vec![false; self.ids.len()];
        let mut err = None;
        let mut val_buf = String::new();
        let mut name = String::new();
        for (i, (id, path)) in self.ids.iter().zip(&self.paths).enumerate() {
            let v = match lookup_path(line, path) {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(e) => {
                    err = Some(e);
                    continue;
                }
            };
            let value = match v.ty {
                JType::Null => "",
                JType::Object | JType::Number | JType::Boolean => v.raw,
                JType::String | JType::Array => json_string(v.raw, &mut val_buf),
            };
            matched[i] = true;
            name.clear();
            name.push_str(id);
            if admit(&seen, &*sink, &mut name) {
                sink.set(&name, value);
                seen.mark(&name, id.len());
            }
        }
        for id in &self.ids {
            let found = self.ids.iter().zip(&matched).any(|(o, &m)| m && o == id);
            if !found && !seen.contains(id) && !sink.exists(id) {
                sink.set(id, "");
                seen.insert(id);
            }
        }
        match err {
            Some(e) => Err(e.into_parser_error()),
            None => Ok(()),
        }
    }
}

/// Finds `path` in the JSON value at the start of `s`. `Err` only when the value at the
/// end of the path is found but cannot be scanned (Loki reports it); other syntax errors
/// end the search with `Ok(None)`.
fn lookup_path<'a>(s: &'a str, path: &[PathElem]) -> Result<Option<JVal<'a>>, JsonErr> {
    let Some((first, rest)) = path.split_first() else {
        return get_value(s, 0).map(Some);
    };
    let d = s.as_bytes();
    let Some(off) = next_token(d, 0) else {
        return Ok(None);
    };
    let descend = |v: JVal<'a>| -> Result<Option<JVal<'a>>, JsonErr> {
        if rest.is_empty() {
            Ok(Some(v))
        } else if matches!(v.ty, JType::Object | JType::Array) {
            lookup_path(v.raw, rest)
        } else {
            Ok(None)
        }
    };
    match first {
        PathElem::Key(k) => {
            if d[off] != b'{' {
                return Ok(None);
            }
            let mut it = ObjectIter::new(&s[off..]);
            let mut scratch = String::new();
            while let Ok(Some(m)) = it.next_member(&mut scratch) {
                if m.key != k.as_str() {
                    continue;
                }
                match m.val {
                    Err(e) if rest.is_empty() => return Err(e),
                    Err(_) => return Ok(None),
                    Ok(v) => {
                        // Keep looking at later duplicates of the key, as EachKey does.
                        if let Some(found) = descend(v)? {
                            return Ok(Some(found));
                        }
                    }
                }
            }
            Ok(None)
        }
        PathElem::Index(n) => {
            if d[off] != b'[' {
                return Ok(None);
            }
            let Some(mut pos) = next_token(d, off + 1) else {
                return Ok(None);
            };
            if d[pos] == b']' {
                return Ok(None);
            }
            let mut i = 0;
            loop {
                let Ok(v) = get_value(s, pos) else {
                    return Ok(None);
                };
                if i == *n {
                    return descend(v);
                }
                i += 1;
                match next_token(d, v.end) {
                    Some(p) if d[p] == b',' => pos = p + 1,
                    _ => return Ok(None),
                }
            }
        }
    }
}

/// Loki's `jsonexpr` grammar: `field | ["key"] | [index]`, then any of `.field`,
/// `["key"]`, `[index]`.
fn parse_json_expr(expr: &str) -> Result<Vec<PathElem>, String> {
    #[derive(Debug)]
    enum Tok {
        Field(String),
        Str(String),
        Index(usize),
        Lsb,
        Rsb,
        Dot,
        End,
    }
    fn tok_name(t: &Tok) -> &'static str {
        match t {
            Tok::Field(_) => "FIELD",
            Tok::Str(_) => "STRING",
            Tok::Index(_) => "INDEX",
            Tok::Lsb => "LSB",
            Tok::Rsb => "RSB",
            Tok::Dot => "DOT",
            Tok::End => "$end",
        }
    }
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    // Returns the next token, or the lexer's error (which Go reports as end of input).
    let mut lex = || -> Result<Tok, String> {
        while i < chars.len() && matches!(chars[i], ' ' | '\t' | '\n') {
            i += 1;
        }
        let Some(&c) = chars.get(i) else {
            return Ok(Tok::End);
        };
        if c == '\0' {
            return Ok(Tok::End);
        }
        i += 1;
        match c {
            '0'..='9' => {
                let mut num = String::from(c);
                loop {
                    match chars.get(i).copied() {
                        Some('.') => return Err("cannot use float as array index".to_string()),
                        Some(' ' | '\t' | '\n' | ']') => break,
                        Some(d) if d.is_ascii_digit() => {
                            num.push(d);
                            i += 1;
                        }
                        other => {
                            return Err(format!("non-integer value: {}", other.unwrap_or('\0')));
                        }
                    }
                }
                num.parse::<usize>()
                    .map(Tok::Index)
                    .map_err(|_| format!("strconv.Atoi: parsing \"{num}\": value out of range"))
            }
            '[' => Ok(Tok::Lsb),
            ']' => Ok(Tok::Rsb),
            '.' => Ok(Tok::Dot),
            '"' => {
                let mut s = String::new();
                while let Some(&c) = chars.get(i) {
                    i += 1;
                    if c == '"' || c == ']' || c == '\0' {
                        break;
                    }
                    s.push(c);
                }
                Ok(Tok::Str(s))
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut s = String::from(c);
                while let Some(&c) = chars.get(i) {
                    if !(c.is_ascii_alphanumeric() || c == '_') {
                        break;
                    }
                    s.push(c);
                    i += 1;
                }
                Ok(Tok::Field(s))
            }
            c => Err(format!("unexpected char {c}")),
        }
    };
    #[derive(Clone, Copy, PartialEq)]
    enum St {
        Start,
        Values,
        Bracket,
        Close(bool),
        AfterDot,
    }
    let mut st = St::Start;
    let mut path = Vec::new();
    let mut pending: Option<PathElem> = None;
    loop {
        let tok = match lex() {
            Ok(t) => t,
            Err(e) if st == St::Values => return Err(e),
            Err(_) => Tok::End,
        };
        let unexpected = |t: &Tok, expecting: &str| {
            if expecting.is_empty() {
                format!("syntax error: unexpected {}", tok_name(t))
            } else {
                format!(
                    "syntax error: unexpected {}, expecting {expecting}",
                    tok_name(t)
                )
            }
        };
        st = match (st, tok) {
            (St::Start, Tok::Field(f)) | (St::AfterDot, Tok::Field(f)) => {
                path.push(PathElem::Key(f));
                St::Values
            }
            (St::Start, Tok::Lsb) | (St::Values, Tok::Lsb) => St::Bracket,
            (St::Values, Tok::Dot) => St::AfterDot,
            (St::Values, Tok::End) => return Ok(path),
            (St::Bracket, Tok::Str(s)) => {
                pending = Some(PathElem::Key(s));
                St::Close(true)
            }
            (St::Bracket, Tok::Index(n)) => {
                pending = Some(PathElem::Index(n));
                St::Close(false)
            }
            (St::Close(_), Tok::Rsb) => {
                path.extend(pending.take());
                St::Values
            }
            (St::Start, t) => return Err(unexpected(&t, "LSB or FIELD")),
            (St::Bracket, t) => return Err(unexpected(&t, "STRING or INDEX")),
            (St::Close(_), t) => return Err(unexpected(&t, "RSB")),
            (St::AfterDot, t) => return Err(unexpected(&t, "FIELD")),
            (St::Values, t) => return Err(unexpected(&t, "")),
        };
    }
}

// ---------------------------------------------------------------------------------
// | unpack
// ---------------------------------------------------------------------------------

fn process_unpack(line: &str, sink: &mut dyn LabelSink) -> Result<Option<String>, ParserError> {
    if line.is_empty() {
        return Ok(None);
    }
    if line.as_bytes()[0] != b'{' {
        return Err(ParserError {
            kind: JSON_PARSER_ERR,
            details: "expecting json object(6), but it is not".to_string(),
        });
    }
    // First pass: validate the object and find the packed entry; labels are only
    // set when there is one.
    let mut scratch = String::new();
    let mut entry: Option<String> = None;
    let mut it = ObjectIter::new(line);
    while let Some(m) = it
        .next_member(&mut scratch)
        .map_err(JsonErr::into_parser_error)?
    {
        let v = m.val.map_err(JsonErr::into_parser_error)?;
        if v.ty == JType::String && m.key == PACKED_ENTRY_KEY {
            let mut e = String::with_capacity(v.raw.len());
            unescape_into(v.raw, &mut e)
                .map_err(|()| JsonErr::MalformedStringEscape.into_parser_error())?;
            entry = Some(e);
        }
    }
    let Some(entry) = entry else {
        return Ok(None);
    };
    let mut seen = Seen::default();
    let (mut raw_name, mut name, mut val_buf) = (String::new(), String::new(), String::new());
    let mut it = ObjectIter::new(line);
    while let Ok(Some(m)) = it.next_member(&mut scratch) {
        let Ok(v) = m.val else { break };
        if v.ty != JType::String || m.key == PACKED_ENTRY_KEY {
            continue;
        }
        // Loki checks the unsanitized key, then sanitizes key+suffix.
        name.clear();
        push_sanitized(&mut name, m.key, true);
        if name.is_empty() || seen.contains(&name) {
            continue;
        }
        if sink.has(m.key) {
            raw_name.clear();
            raw_name.push_str(m.key);
            raw_name.push_str(EXTRACTED_SUFFIX);
            name.clear();
            push_sanitized(&mut name, &raw_name, true);
        }
        if seen.contains(&name) || sink.extracted(&name) {
            continue;
        }
        let value = json_string(v.raw, &mut val_buf);
        sink.set(&name, value);
        seen.insert(&name);
    }
    Ok(Some(entry))
}

// ---------------------------------------------------------------------------------
// | logfmt: a port of Loki's fork of go-logfmt's decoder.
// ---------------------------------------------------------------------------------

enum LfValue<'a> {
    Absent,
    Slice(&'a str),
    /// The unquoted value is in the caller's buffer.
    Buf,
}

struct LogfmtDecoder<'a> {
    s: &'a str,
    pos: usize,
    err: Option<String>,
}

impl<'a> LogfmtDecoder<'a> {
    fn new(s: &'a str) -> Self {
        LogfmtDecoder {
            s,
            pos: 0,
            err: None,
        }
    }

    fn eol(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn syntax_error(&mut self, msg: &str) {
        self.err = Some(format!(
            "logfmt syntax error at pos {} : {msg}",
            self.pos + 1
        ));
    }

    /// `unexpected '='` / `unexpected '"'`, then skips to the next whitespace.
    fn unexpected_and_skip(&mut self, c: u8) -> Option<(&'a str, LfValue<'a>)> {
        self.syntax_error(&format!("unexpected '{}'", c as char));
        self.skip_value()
    }

    fn skip_value(&mut self) -> Option<(&'a str, LfValue<'a>)> {
        let d = self.s.as_bytes();
        self.pos = d[self.pos..]
            .iter()
            .position(|&c| c <= b' ')
            .map_or(d.len(), |p| self.pos + p);
        None
    }

    /// `ScanKeyval`: the next pair, or `None` when the decoder reports `false`
    /// (end of line or an error, see `err`).
    fn scan(&mut self, vbuf: &mut String) -> Option<(&'a str, LfValue<'a>)> {
        let s = self.s;
        let d = s.as_bytes();
        // garbage
        match d[self.pos..].iter().position(|&c| c > b' ') {
            Some(p) => self.pos += p,
            None => {
                self.pos = d.len();
                return None;
            }
        }
        // key
        let start = self.pos;
        let mut multibyte = false;
        let mut key_end = d.len();
        for (p, &c) in d[start..].iter().enumerate() {
            if c == b'=' || c == b'"' || c <= b' ' {
                key_end = start + p;
                break;
            }
            if c >= 0x80 {
                multibyte = true;
            }
        }
        self.pos = key_end;
        let key = &s[start..key_end];
        let invalid_key = multibyte && key.contains('\u{FFFD}');
        match d.get(key_end) {
            Some(b'=') => {
                if invalid_key {
                    self.syntax_error("invalid key");
                    return self.skip_value();
                }
                if key.is_empty() {
                    return self.unexpected_and_skip(b'=');
                }
            }
            Some(b'"') => return self.unexpected_and_skip(b'"'),
            _ => {
                if invalid_key {
                    self.syntax_error("invalid key");
                    return None;
                }
                return Some((key, LfValue::Absent));
            }
        }
        // equal
        self.pos += 1;
        let Some(&c) = d.get(self.pos) else {
            return Some((key, LfValue::Absent));
        };
        if c <= b' ' {
            return Some((key, LfValue::Absent));
        }
        if c == b'"' {
            return self.quoted_value(key, vbuf);
        }
        // value
        let vstart = self.pos;
        for (p, &c) in d[vstart..].iter().enumerate() {
            if c == b'=' || c == b'"' {
                self.pos = vstart + p;
                return self.unexpected_and_skip(c);
            }
            if c <= b' ' {
                self.pos = vstart + p;
                return Some((key, LfValue::Slice(&s[vstart..self.pos])));
            }
        }
        self.pos = d.len();
        Some((key, LfValue::Slice(&s[vstart..])))
    }

    fn quoted_value(&mut self, key: &'a str, vbuf: &mut String) -> Option<(&'a str, LfValue<'a>)> {
        let s = self.s;
        let d = s.as_bytes();
        let start = self.pos;
        let (mut has_esc, mut esc) = (false, false);
        for (p, &c) in d[start + 1..].iter().enumerate() {
            if esc {
                esc = false;
            } else if c == b'\\' {
                has_esc = true;
                esc = true;
            } else if c == b'"' {
                self.pos = start + p + 2;
                let inner = &s[start + 1..self.pos - 1];
                if has_esc {
                    vbuf.clear();
                    if !logfmt_unquote(inner, vbuf) {
                        self.syntax_error("invalid quoted value");
                        return None;
                    }
                    return Some((key, LfValue::Buf));
                }
                return Some((
                    key,
                    if inner.is_empty() {
                        LfValue::Absent
                    } else {
                        LfValue::Slice(inner)
                    },
                ));
            }
        }
        self.pos = d.len();
        self.syntax_error("unterminated quoted value");
        None
    }
}

/// Go's JSON-style unquoting as go-logfmt does it (`unquoteBytes`), into `out`.
fn logfmt_unquote(inner: &str, out: &mut String) -> bool {
    let b = inner.as_bytes();
    let mut last = 0;
    while let Some(p) = b[last..].iter().position(|&c| c == b'\\' || c == b'"') {
        let at = last + p;
        out.push_str(&inner[last..at]);
        if b[at] == b'"' {
            return false;
        }
        let Some(&e) = b.get(at + 1) else {
            return false;
        };
        last = at + 2;
        match e {
            b'"' | b'\\' | b'/' | b'\'' => out.push(e as char),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let Some(r) = hex4(b, at + 2) else {
                    return false;
                };
                last = at + 6;
                if (0xD800..0xE000).contains(&r) {
                    let r1 = if b.get(last..last + 2) == Some(b"\\u") {
                        hex4(b, last + 2)
                    } else {
                        None
                    };
                    match r1 {
                        Some(r1) if r < 0xDC00 && (0xDC00..0xE000).contains(&r1) => {
                            let c = 0x10000 + ((r - 0xD800) << 10) + (r1 - 0xDC00);
                            out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                            last += 6;
                        }
                        _ => out.push('\u{FFFD}'),
                    }
                } else {
                    out.push(char::from_u32(r).unwrap_or('\u{FFFD}'));
                }
            }
            _ => return false,
        }
    }
    out.push_str(&inner[last..]);
    true
}

/// Loki's logfmt expression grammar: an identifier, or one or more quoted strings.
fn parse_logfmt_expr(expr: &str) -> Result<String, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut parts: Vec<String> = Vec::new();
    loop {
        while i < chars.len() && matches!(chars[i], ' ' | '\t' | '\n') {
            i += 1;
        }
        let c = chars.get(i).copied().unwrap_or('\0');
        let (tok, text) = if c == '\0' {
            ("$end", None)
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            ("KEY", Some(chars[start..i].iter().collect::<String>()))
        } else if c == '"' {
            i += 1;
            let mut s = String::new();
            while let Some(&c) = chars.get(i) {
                i += 1;
                if c == '"' || c == ']' || c == '\0' {
                    break;
                }
                s.push(c);
            }
            ("STRING", Some(s))
        } else {
            // The lexer error ends the input; it stands when the input so far parses.
            if parts.is_empty() {
                return Err("syntax error: unexpected $end, expecting STRING or KEY".to_string());
            }
            return Err(format!("unexpected char {c}"));
        };
        match (tok, text) {
            ("$end", _) if parts.is_empty() => {
                return Err("syntax error: unexpected $end, expecting STRING or KEY".to_string());
            }
            ("$end", _) => break,
            ("KEY", Some(k)) if parts.is_empty() => parts.push(k),
            ("STRING", Some(s)) => parts.push(s),
            (t, _) => return Err(format!("syntax error: unexpected {t}")),
        }
    }
    // Loki formats the parsed path with fmt.Sprintf("%v", paths...).
    let mut key = parts[0].clone();
    if parts.len() > 1 {
        let extra: Vec<String> = parts[1..].iter().map(|p| format!("string={p}")).collect();
        key.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    Ok(key)
}

impl Logfmt {
    fn process(&self, line: &str, sink: &mut dyn LabelSink) -> Result<(), ParserError> {
        let mut dec = LogfmtDecoder::new(line);
        let (mut seen, mut preset) = (Seen::default(), Seen::default());
        let (mut vbuf, mut name, mut fixed) =
            (String::new(), String::with_capacity(64), String::new());
        // Loki sets every expression label to "" up front (unless the stream has it);
        // an earlier stage's label of that name is kept.
        for (id, _) in &self.exprs {
            if !preset.contains(id) && !sink.has(id) && !sink.extracted(id) {
                sink.set(id, "");
                preset.insert(id);
            }
        }
        while !dec.eol() {
            let Some((key, val)) = dec.scan(&mut vbuf) else {
                if self.strict {
                    break;
                }
                continue;
            };
            name.clear();
            push_sanitized(&mut name, key, true);
            if name.is_empty() {
                continue;
            }
            let mut value: &str = match val {
                LfValue::Absent => "",
                LfValue::Slice(v) => v,
                LfValue::Buf => &vbuf,
            };
            if self.exprs.is_empty() {
                if value.contains('\u{FFFD}') {
                    fixed.clear();
                    fixed.extend(value.chars().map(|c| if c == '\u{FFFD}' { ' ' } else { c }));
                    value = &fixed;
                }
                if !self.keep_empty && value.is_empty() {
                    continue;
                }
                let key_len = name.len();
                if admit(&seen, &*sink, &mut name) {
                    sink.set(&name, value);
                    seen.mark(&name, key_len);
                }
            } else {
                if value.contains('\u{FFFD}') {
                    value = "";
                }
                // Loki maps a key to the label whose expression names it; a key that
                // equals a label name is taken as that label too.
                let target = self
                    .exprs
                    .iter()
                    .find(|(_, k)| *k == name)
                    .or_else(|| self.exprs.iter().find(|(id, _)| *id == name))
                    .map(|(id, _)| id.as_str());
                let Some(id) = target else { continue };
                name.clear();
                name.push_str(id);
                let take = if preset.contains(id) {
                    !seen.contains(id)
                } else {
                    admit(&seen, &*sink, &mut name)
                };
                if take {
                    sink.set(&name, value);
                    seen.mark(&name, id.len());
                }
            }
        }
        if self.strict
            && let Some(details) = dec.err
        {
            return Err(ParserError {
                kind: LOGFMT_PARSER_ERR,
                details,
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// | regexp
// ---------------------------------------------------------------------------------

impl RegexpStage {
    fn process(&self, line: &str, sink: &mut dyn LabelSink) {
        let Some(caps) = self.regex.captures(line) else {
            return;
        };
        // Group names are unique, so nothing to track across them.
        let seen = Seen::default();
        let mut name = String::new();
        for (i, n) in &self.groups {
            // A group that did not participate is set to "" (Go's nil submatch).
            let value = caps.get(*i).map_or("", |m| m.as_str());
            name.clear();
            name.push_str(n);
            if admit(&seen, &*sink, &mut name) {
                sink.set(&name, value);
            }
        }
    }
}

/// Rewrites Go RE2 syntax into Rust `regex` syntax with the same meaning: Perl classes
/// and word boundaries are ASCII-only in Go, `\Q…\E` quotes, a `{` that does not start a
/// repetition is a literal, and `[`, `&&`, `~~` inside a class are literals.
fn go_regex_to_rust(re: &str) -> String {
    const DIGIT: &str = "0-9";
    const WORD: &str = "0-9A-Za-z_";
    const SPACE: &str = "\\t\\n\\x0C\\r\\x20";
    let chars: Vec<char> = re.chars().collect();
    let mut out = String::with_capacity(re.len() + 16);
    let mut i = 0;
    let mut in_class = false;
    let mut class_start = false;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c == '\\' {
            let Some(&n) = chars.get(i) else {
                out.push('\\');
                break;
            };
            i += 1;
            if n == 'Q' {
                let mut lit = String::new();
                while i < chars.len() {
                    if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
                        i += 2;
                        break;
                    }
                    lit.push(chars[i]);
                    i += 1;
                }
                if in_class {
                    for ch in lit.chars() {
                        out.push_str(&regex::escape(ch.encode_utf8(&mut [0; 4])));
                    }
                } else {
                    out.push_str(&regex::escape(&lit));
                }
                class_start = false;
                continue;
            }
            let replacement = match (in_class, n) {
                (true, 'd') => Some(DIGIT.to_string()),
                (true, 'w') => Some(WORD.to_string()),
                (true, 's') => Some(SPACE.to_string()),
                (_, 'd') => Some(format!("[{DIGIT}]")),
                (_, 'w') => Some(format!("[{WORD}]")),
                (_, 's') => Some(format!("[{SPACE}]")),
                (_, 'D') => Some(format!("[^{DIGIT}]")),
                (_, 'W') => Some(format!("[^{WORD}]")),
                (_, 'S') => Some(format!("[^{SPACE}]")),
                (false, 'b') => Some("(?-u:\\b)".to_string()),
                (false, 'B') => Some("(?-u:\\B)".to_string()),
                _ => None,
            };
            match replacement {
                Some(r) => out.push_str(&r),
                None => {
                    out.push('\\');
                    out.push(n);
                }
            }
            class_start = false;
            continue;
        }
        if in_class {
            match c {
                ']' if !class_start => in_class = false,
                '[' if chars.get(i) == Some(&':') => {
                    // A POSIX class `[:alpha:]` is copied through; otherwise `[` is literal.
                    let rest: String = chars[i..].iter().collect();
                    if let Some(end) = rest.find(":]") {
                        out.push('[');
                        out.push_str(&rest[..end + 2]);
                        i += rest[..end + 2].chars().count();
                        class_start = false;
                        continue;
                    }
                    out.push_str("\\[");
                    class_start = false;
                    continue;
                }
                '[' => {
                    out.push_str("\\[");
                    class_start = false;
                    continue;
                }
                '&' | '~' if chars.get(i) == Some(&c) => {
                    out.push(c);
                    out.push('\\');
                    out.push(c);
                    i += 1;
                    class_start = false;
                    continue;
                }
                _ => {}
            }
            out.push(c);
            class_start = false;
            continue;
        }
        match c {
            '[' => {
                out.push('[');
                in_class = true;
                class_start = true;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
            }
            '{' if !is_repeat(&chars[i..]) => out.push_str("\\{"),
            _ => out.push(c),
        }
    }
    out
}

/// Whether `rest` (after a `{`) is `n}`, `n,}` or `n,m}`.
fn is_repeat(rest: &[char]) -> bool {
    let digits = |s: &[char]| s.iter().take_while(|c| c.is_ascii_digit()).count();
    let n = digits(rest);
    if n == 0 {
        return false;
    }
    match rest.get(n) {
        Some('}') => true,
        Some(',') => {
            let m = digits(&rest[n + 1..]);
            rest.get(n + 1 + m) == Some(&'}')
        }
        _ => false,
    }
}

fn regex_error_message(e: &regex::Error, re: &str) -> String {
    let what = match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(s)
            .trim()
            .trim_start_matches("error: ")
            .to_string(),
        other => other.to_string(),
    };
    format!("error parsing regexp: {what}: `{re}`")
}

// ---------------------------------------------------------------------------------
// | pattern
// ---------------------------------------------------------------------------------

/// Splits a pattern into literals and `<name>` / `<_>` captures. Anything that is not a
/// well-formed `<identifier>` is literal text.
fn parse_pattern(p: &str) -> Vec<PatternNode> {
    let mut nodes: Vec<PatternNode> = Vec::new();
    let mut lit = String::new();
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<'
            && let Some(len) = capture_len(&b[i..])
        {
            if !lit.is_empty() {
                nodes.push(PatternNode::Literal(std::mem::take(&mut lit)));
            }
            let name = &p[i + 1..i + len - 1];
            nodes.push(PatternNode::Capture(
                (name != "_").then(|| name.to_string()),
            ));
            i += len;
            continue;
        }
        let ch = p[i..].chars().next().unwrap_or('\u{FFFD}');
        lit.push(ch);
        i += ch.len_utf8();
    }
    if !lit.is_empty() {
        nodes.push(PatternNode::Literal(lit));
    }
    nodes
}

/// Length of `<identifier>` at the start of `b`, if there is one.
fn capture_len(b: &[u8]) -> Option<usize> {
    let first = *b.get(1)?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let n = b[2..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (b.get(2 + n) == Some(&b'>')).then_some(n + 3)
}

impl PatternStage {
    fn process(&self, line: &str, sink: &mut dyn LabelSink) {
        // Capture names are unique, so nothing to track across them.
        let seen = Seen::default();
        let mut name = String::new();
        let mut names = self.names.iter();
        self.matches(line, |value| {
            let Some(n) = names.next() else { return };
            name.clear();
            name.push_str(n);
            if admit(&seen, &*sink, &mut name) {
                sink.set(&name, value);
            }
        });
    }

    /// Loki's `matcher.Matches`: calls `emit` for each named capture, in order. A literal
    /// that is not found ends matching, the pending capture taking the rest of the line.
    fn matches<'l>(&self, line: &'l str, mut emit: impl FnMut(&'l str)) {
        if line.is_empty() {
            return;
        }
        let mut nodes = self.nodes.as_slice();
        let mut rest = line;
        if let Some(PatternNode::Literal(l)) = nodes.first() {
            let Some(r) = rest.strip_prefix(l.as_str()) else {
                return;
            };
            rest = r;
            nodes = &nodes[1..];
        }
        while let Some(node) = nodes.first() {
            let PatternNode::Capture(cap) = node else {
                return;
            };
            let Some(PatternNode::Literal(lit)) = nodes.get(1) else {
                if cap.is_some() {
                    emit(rest);
                }
                return;
            };
            nodes = &nodes[2..];
            let Some(i) = rest.find(lit.as_str()) else {
                if cap.is_some() {
                    emit(rest);
                }
                return;
            };
            if cap.is_some() {
                emit(&rest[..i]);
            }
            rest = &rest[i + lit.len()..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A sink over stream labels / structured metadata (`base`), labels earlier stages
    /// extracted (`earlier`) and labels this stage set (`added`). With `current`, `has`
    /// and `extracted` also report labels set so far in the line (as an evaluator that
    /// answers over the entry's current labels would).
    #[derive(Default)]
    struct Sink {
        base: BTreeMap<String, String>,
        earlier: BTreeMap<String, String>,
        added: BTreeMap<String, String>,
        current: bool,
    }

    impl Sink {
        fn with_base(pairs: &[(&str, &str)]) -> Self {
            Sink {
                base: pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Sink::default()
            }
        }

        fn labels(&self) -> Vec<(String, String)> {
            let mut all = self.base.clone();
            all.extend(self.earlier.clone());
            all.extend(self.added.clone());
            all.into_iter().collect()
        }
    }

    impl LabelSink for Sink {
        fn has(&self, name: &str) -> bool {
            self.base.contains_key(name) || (self.current && self.added.contains_key(name))
        }
        fn set(&mut self, name: &str, value: &str) {
            self.added.insert(name.to_string(), value.to_string());
        }
        fn extracted(&self, name: &str) -> bool {
            self.earlier.contains_key(name) || (self.current && self.added.contains_key(name))
        }
    }

    type Labels = Vec<(String, String)>;
    type Outcome = Result<Option<String>, ParserError>;

    fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort();
        v
    }

    /// Runs `p` over `line` with stream labels `base`, checking both readings of `has`
    /// give the same result. Returns the labels and the outcome.
    fn run(p: &Parser, base: &[(&str, &str)], line: &str) -> (Labels, Outcome) {
        run_after(p, base, &[], line)
    }

    /// Like [`run`], with labels an earlier stage extracted.
    fn run_after(
        p: &Parser,
        base: &[(&str, &str)],
        earlier: &[(&str, &str)],
        line: &str,
    ) -> (Labels, Outcome) {
        let mk = |current| {
            let mut s = Sink::with_base(base);
            s.earlier = earlier
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            s.current = current;
            s
        };
        let mut a = mk(false);
        let ra = p.process(line, &mut a);
        let mut b = mk(true);
        let rb = p.process(line, &mut b);
        assert_eq!(
            a.labels(),
            b.labels(),
            "has() readings disagree on {line:?}"
        );
        assert_eq!(ra, rb);
        (a.labels(), ra)
    }

    fn ok_labels(p: &Parser, base: &[(&str, &str)], line: &str) -> Vec<(String, String)> {
        let (labels, r) = run(p, base, line);
        assert_eq!(r, Ok(None), "unexpected outcome for {line:?}");
        labels
    }

    fn json_err(details: &str) -> Result<Option<String>, ParserError> {
        Err(ParserError {
            kind: JSON_PARSER_ERR,
            details: details.to_string(),
        })
    }

    fn exprs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    // ----- sanitize -----

    #[test]
    fn sanitize_label_names() {
        assert_eq!(sanitize_label_name("a.b-c"), "a_b_c");
        assert_eq!(sanitize_label_name("1xx"), "_1xx");
        assert_eq!(sanitize_label_name("  pad  "), "pad");
        assert_eq!(sanitize_label_name("héllo wörld"), "h_llo_w_rld");
        assert_eq!(sanitize_label_name("ok_Name9"), "ok_Name9");
        assert_eq!(sanitize_label_name("   "), "");
        assert_eq!(sanitize_label_name("🤷"), "_");
    }

    // ----- | json -----

    #[test]
    fn json_flattens_nested_objects() {
        let line = r#"{"a":{"b":1,"c":{"d":"x"}},"e":"f"}"#;
        assert_eq!(
            ok_labels(&Parser::json(), &[], line),
            l(&[("a_b", "1"), ("a_c_d", "x"), ("e", "f")])
        );
    }

    #[test]
    fn json_value_types() {
        let line =
            r#"{"n":1.50,"neg":-2e10,"t":true,"f":false,"z":null,"arr":[1,{"x":2}],"s":"str"}"#;
        assert_eq!(
            ok_labels(&Parser::json(), &[], line),
            l(&[
                ("f", "false"),
                ("n", "1.50"),
                ("neg", "-2e10"),
                ("s", "str"),
                ("t", "true"),
            ])
        );
    }

    #[test]
    fn json_unescapes_strings() {
        let line = r#"{"msg":"a \"quoted\" \\ \/ \n\t tab","u":"\u00e9\ud83d\ude00","k\"ey":"v"}"#;
        assert_eq!(
            ok_labels(&Parser::json(), &[], line),
            l(&[
                ("k_ey", "v"),
                ("msg", "a \"quoted\" \\ / \n\t tab"),
                ("u", "é😀"),
            ])
        );
    }

    #[test]
    fn json_unicode_text_and_replacement_char() {
        let line = "{\"msg\":\"日本語 ok\",\"bad\":\"x\u{FFFD}y\",\"lone\":\"a\\ud800b\"}";
        // U+FFFD becomes a space; a bad escape makes the value empty.
        assert_eq!(
            ok_labels(&Parser::json(), &[], line),
            l(&[("bad", "x y"), ("lone", ""), ("msg", "日本語 ok")])
        );
    }

    #[test]
    fn json_sanitizes_names() {
        let line = r#"{"a.b":"1","1st":"2","n":{"2nd":"3","x-y":"4"},"9":{"k":"5"}," sp ":"6"}"#;
        assert_eq!(
            ok_labels(&Parser::json(), &[], line),
            l(&[
                ("_1st", "2"),
                ("_9_k", "5"),
                ("a_b", "1"),
                ("n_2nd", "3"),
                ("n_x_y", "4"),
                ("sp", "6"),
            ])
        );
    }

    #[test]
    fn json_blank_keys_are_left_out_of_names() {
        // Loki's "whitespace key value" case, and an empty nested key.
        assert_eq!(
            ok_labels(&Parser::json(), &[], r#"{" ": {"foo":"bar"}}"#),
            l(&[("foo", "bar")])
        );
        assert_eq!(
            ok_labels(&Parser::json(), &[], r#"{"a":{"":"x"," ":{"b":"y"}}}"#),
            l(&[("a", "x"), ("a_b", "y")])
        );
        // A name that sanitizes to nothing is not set.
        assert_eq!(
            ok_labels(&Parser::json(), &[], r#"{" ": {" ":"bar"}, "k":"v"}"#),
            l(&[("k", "v")])
        );
        let (_, r) = run(&Parser::json(), &[], "{n}");
        assert_eq!(
            r,
            json_err("Value looks like object, but can't find closing '}' symbol")
        );
    }

    #[test]
    fn json_duplicate_keys_first_wins() {
        // Loki 2.9.4+ keeps the first value (PR #11587; tests added in PR #19568).
        let line = r#"{"a":"1","a":"2","b":{"c":"3"},"b_c":"4","m":{"m":"inner"},"m_m":"x"}"#;
        assert_eq!(
            ok_labels(&Parser::json(), &[], line),
            l(&[("a", "1"), ("b_c", "3"), ("m_m", "inner")])
        );
    }

    #[test]
    fn earlier_stage_labels_keep_their_value() {
        // `| json | ... | json`: a key an earlier stage extracted is skipped, not suffixed.
        let (labels, r) = run_after(
            &Parser::json(),
            &[("app", "s")],
            &[("message", "outer")],
            r#"{"message":"inner","app":"a","level":"warn"}"#,
        );
        assert_eq!(r, Ok(None));
        assert_eq!(
            labels,
            l(&[
                ("app", "s"),
                ("app_extracted", "a"),
                ("level", "warn"),
                ("message", "outer"),
            ])
        );
        let p = Parser::pattern("<_> level=<level>").unwrap();
        let (labels, _) = run_after(&p, &[], &[("level", "info")], "x level=warn");
        assert_eq!(labels, l(&[("level", "info")]));
        let p = Parser::regexp("(?P<level>warn)").unwrap();
        let (labels, _) = run_after(&p, &[], &[("level", "info")], "warn");
        assert_eq!(labels, l(&[("level", "info")]));
        let (labels, _) = run_after(
            &Parser::logfmt(false, false, &[]),
            &[],
            &[("level", "info")],
            "level=warn msg=hi",
        );
        assert_eq!(labels, l(&[("level", "info"), ("msg", "hi")]));
        let p = Parser::logfmt(false, false, &exprs(&[("level", "level")]));
        let (labels, _) = run_after(&p, &[], &[("level", "info")], "level=warn");
        assert_eq!(labels, l(&[("level", "info")]));
        let p = Parser::json_expressions(&exprs(&[("level", "level"), ("gone", "nope")])).unwrap();
        let (labels, _) = run_after(
            &p,
            &[],
            &[("level", "info"), ("gone", "g")],
            r#"{"level":"warn"}"#,
        );
        assert_eq!(labels, l(&[("gone", "g"), ("level", "info")]));
        let (labels, r) = run_after(
            &Parser::unpack(),
            &[],
            &[("pod", "p0")],
            r#"{"pod":"p1","ns":"n","_entry":"msg"}"#,
        );
        assert_eq!(r, Ok(Some("msg".to_string())));
        assert_eq!(labels, l(&[("ns", "n"), ("pod", "p0")]));
    }

    #[test]
    fn json_extracted_suffix_for_existing_labels() {
        let line = r#"{"app":"foo","a":{"b":"x"},"level":"info","level":"warn","app":"dup"}"#;
        let base = [("app", "bar"), ("a_b", "y")];
        assert_eq!(
            ok_labels(&Parser::json(), &base, line),
            l(&[
                ("a_b", "y"),
                ("a_b_extracted", "x"),
                ("app", "bar"),
                ("app_extracted", "foo"),
                ("level", "info"),
            ])
        );
    }

    #[test]
    fn json_lenient_like_jsonparser() {
        // Trailing comma, whitespace, text after the object: accepted.
        assert_eq!(
            ok_labels(
                &Parser::json(),
                &[],
                " { \"a\" : 1 , \"b\":\"x\", } trailing"
            ),
            l(&[("a", "1"), ("b", "x")])
        );
        // An empty object sets nothing.
        assert_eq!(ok_labels(&Parser::json(), &[], "{}"), l(&[]));
    }

    #[test]
    fn json_errors_keep_earlier_labels() {
        let p = Parser::json();
        let (labels, r) = run(&p, &[], r#"{"a":"1","b":tru,"c":"3"}"#);
        assert_eq!(labels, l(&[("a", "1")]));
        assert_eq!(r, json_err("Unknown value type"));

        let (labels, r) = run(&p, &[], r#"{"a":1"#);
        assert_eq!(labels, l(&[("a", "1")]));
        assert_eq!(
            r,
            json_err("Value is array, but can't find closing ']' symbol")
        );

        let (labels, r) = run(&p, &[], "not json");
        assert_eq!(labels, l(&[]));
        assert_eq!(
            r,
            json_err("Value looks like object, but can't find closing '}' symbol")
        );

        let (_, r) = run(&p, &[], "");
        assert_eq!(
            r,
            json_err("Value looks like object, but can't find closing '}' symbol")
        );
        let (_, r) = run(&p, &[], r#"{"a" 1}"#);
        assert_eq!(r, json_err("Malformed JSON error"));
        let (_, r) = run(&p, &[], r#"{"a":"unterminated}"#);
        assert_eq!(
            r,
            json_err("Value is string, but can't find closing '\"' symbol")
        );
        let (_, r) = run(&p, &[], r#"{"a":{"b":1}"#);
        assert_eq!(
            r,
            json_err("Value is array, but can't find closing ']' symbol")
        );
        let (_, r) = run(&p, &[], r#"{"a":{"b":1"#);
        assert_eq!(
            r,
            json_err("Value looks like object, but can't find closing '}' symbol")
        );
        let (_, r) = run(&p, &[], r#"{"a\x":1}"#);
        assert_eq!(
            r,
            json_err("Encountered an invalid escape sequence in a string")
        );
        let (labels, r) = run(&p, &[], r#"{"a":{"x":"1","y" 2}}"#);
        assert_eq!(labels, l(&[("a_x", "1")]));
        assert_eq!(r, json_err("Malformed JSON error"));
    }

    #[test]
    fn json_string_scanning_handles_backslash_runs() {
        let line = r#"{"a":"x\\","b":"y\\\"z","c":{"d":"}\"{"}}"#;
        assert_eq!(
            ok_labels(&Parser::json(), &[], line),
            l(&[("a", "x\\"), ("b", "y\\\"z"), ("c_d", "}\"{")])
        );
    }

    // ----- | json name="path" -----

    #[test]
    fn json_expression_paths() {
        let p = Parser::json_expressions(&exprs(&[
            ("first", "a.b"),
            ("idx", "list[1]"),
            ("deep", "list[2].k"),
            ("spaced", r#"["key with space"]"#),
            ("bracket", r#"["a"]["b"]"#),
            ("obj", "a"),
            ("arr", "list"),
            ("num", "n"),
            ("nul", "z"),
            ("bool", "t"),
            ("missing", "nope.x"),
        ]))
        .unwrap();
        let line = r#"{"a":{"b":"B"},"list":["x","y\"",{"k":7}],"key with space":"S","n":1.50,"z":null,"t":true}"#;
        assert_eq!(
            ok_labels(&p, &[], line),
            l(&[
                ("arr", r#"["x","y"",{"k":7}]"#),
                ("bool", "true"),
                ("bracket", "B"),
                ("deep", "7"),
                ("first", "B"),
                ("idx", "y\""),
                ("missing", ""),
                ("nul", ""),
                ("num", "1.50"),
                ("obj", r#"{"b":"B"}"#),
                ("spaced", "S"),
            ])
        );
    }

    #[test]
    fn json_expression_duplicates_and_collisions() {
        let p = Parser::json_expressions(&exprs(&[("app", "app"), ("x", "a.b"), ("gone", "q")]))
            .unwrap();
        // First match wins; a later duplicate object is searched when the first lacks the path.
        let line = r#"{"app":"first","app":"second","a":{"c":1},"a":{"b":"found"}}"#;
        assert_eq!(
            ok_labels(&p, &[("app", "stream"), ("gone", "keep")], line),
            l(&[
                ("app", "stream"),
                ("app_extracted", "first"),
                ("gone", "keep"),
                ("x", "found"),
            ])
        );
    }

    #[test]
    fn json_expression_top_level_array_and_errors() {
        let p = Parser::json_expressions(&exprs(&[("v", "[1].k"), ("w", "k")])).unwrap();
        assert_eq!(
            ok_labels(&p, &[], r#"[{"k":1},{"k":"two"}]"#),
            l(&[("v", "two"), ("w", "")])
        );
        // Not a JSON start: error without details, no labels.
        let (labels, r) = run(&p, &[], "k=v");
        assert_eq!(labels, l(&[]));
        assert_eq!(r, json_err(""));
        // Empty line: nothing at all.
        assert_eq!(ok_labels(&p, &[], ""), l(&[]));
        // The value at the path cannot be read: error, label empty.
        let p = Parser::json_expressions(&exprs(&[("a", "a"), ("b", "b")])).unwrap();
        let (labels, r) = run(&p, &[], r#"{"b":"ok","a":nope}"#);
        assert_eq!(labels, l(&[("a", ""), ("b", "ok")]));
        assert_eq!(r, json_err("Unknown value type"));
    }

    #[test]
    fn json_expression_grammar_errors() {
        let bad = |e: &str| Parser::json_expressions(&exprs(&[("x", e)])).unwrap_err();
        assert_eq!(
            bad(""),
            "cannot parse expression []: syntax error: unexpected $end, expecting LSB or FIELD"
        );
        assert_eq!(
            bad("a."),
            "cannot parse expression [a.]: syntax error: unexpected $end, expecting FIELD"
        );
        assert_eq!(
            bad("a[1.5]"),
            "cannot parse expression [a[1.5]]: syntax error: unexpected $end, expecting STRING or INDEX"
        );
        assert_eq!(
            bad("a-b"),
            "cannot parse expression [a-b]: unexpected char -"
        );
        assert_eq!(
            bad("a b"),
            "cannot parse expression [a b]: syntax error: unexpected FIELD"
        );
        // Loki's own expectations (TestJSONExpressionParserFailures).
        assert_eq!(
            bad(r#""pod"]"#),
            r#"cannot parse expression ["pod"]]: syntax error: unexpected STRING, expecting LSB or FIELD"#
        );
        assert_eq!(
            bad(r#"["pod""#),
            r#"cannot parse expression [["pod"]: syntax error: unexpected $end, expecting RSB"#
        );
        assert_eq!(
            bad(r#"["pod""uuid"]"#),
            r#"cannot parse expression [["pod""uuid"]]: syntax error: unexpected STRING, expecting RSB"#
        );
        assert_eq!(
            bad("pod..uuid"),
            "cannot parse expression [pod..uuid]: syntax error: unexpected DOT, expecting FIELD"
        );
        assert!(Parser::json_expressions(&exprs(&[("x", " a . b [ 0 ] ")])).is_ok());
        assert_eq!(
            Parser::json_expressions(&exprs(&[("1x", "a")])).unwrap_err(),
            "invalid extracted label name '1x'"
        );
    }

    #[test]
    fn json_expression_path_shapes() {
        assert_eq!(
            parse_json_expr(r#"a.b[0]["c d"]"#).unwrap(),
            vec![
                PathElem::Key("a".into()),
                PathElem::Key("b".into()),
                PathElem::Index(0),
                PathElem::Key("c d".into()),
            ]
        );
        assert_eq!(
            parse_json_expr(r#"["a"]"#).unwrap(),
            vec![PathElem::Key("a".into())]
        );
    }

    // ----- | logfmt -----

    #[test]
    fn logfmt_basic_quotes_and_escapes() {
        let p = Parser::logfmt(false, false, &[]);
        let line = r#"level=info msg="hello \"world\"\n" path=/a/b dur=1.50ms unicode="日本\u00e9" empty="" bare"#;
        assert_eq!(
            ok_labels(&p, &[], line),
            l(&[
                ("dur", "1.50ms"),
                ("level", "info"),
                ("msg", "hello \"world\"\n"),
                ("path", "/a/b"),
                ("unicode", "日本é"),
            ])
        );
    }

    #[test]
    fn logfmt_keep_empty_keeps_standalone_and_empty_values() {
        let p = Parser::logfmt(false, true, &[]);
        assert_eq!(
            ok_labels(&p, &[], r#"a=1 bare b= c="""#),
            l(&[("a", "1"), ("b", ""), ("bare", ""), ("c", "")])
        );
    }

    #[test]
    fn logfmt_names_duplicates_and_collisions() {
        let p = Parser::logfmt(false, false, &[]);
        let line = r#"foo="foo bar" foo.bar=10ms test-dash=foo 1st=x a=1 a=2 b= b=3 foo=again"#;
        assert_eq!(
            ok_labels(&p, &[("foo", "bar")], line),
            l(&[
                ("_1st", "x"),
                ("a", "1"),
                ("b", "3"),
                ("foo", "bar"),
                ("foo_bar", "10ms"),
                ("foo_extracted", "foo bar"),
                ("test_dash", "foo"),
            ])
        );
    }

    #[test]
    fn logfmt_non_strict_skips_bad_pairs() {
        let p = Parser::logfmt(false, false, &[]);
        assert_eq!(
            ok_labels(&p, &[], r#"a=1 b==2 =c d"e=3 f=4 g="unterminated"#),
            l(&[("a", "1"), ("f", "4")])
        );
        assert_eq!(
            ok_labels(&p, &[], "x=1 \u{FFFD}=2 y=a\u{FFFD}b"),
            l(&[("x", "1"), ("y", "a b")])
        );
    }

    #[test]
    fn logfmt_strict_stops_at_first_error() {
        let p = Parser::logfmt(true, false, &[]);
        let (labels, r) = run(&p, &[], "a=1 b==2 c=3");
        assert_eq!(labels, l(&[("a", "1")]));
        assert_eq!(
            r,
            Err(ParserError {
                kind: LOGFMT_PARSER_ERR,
                details: "logfmt syntax error at pos 7 : unexpected '='".to_string(),
            })
        );
        let (_, r) = run(&p, &[], r#"a="x"#);
        assert_eq!(
            r.unwrap_err().details,
            "logfmt syntax error at pos 5 : unterminated quoted value"
        );
        let (_, r) = run(&p, &[], r#"a="\x" b=1"#);
        assert_eq!(
            r.unwrap_err().details,
            "logfmt syntax error at pos 7 : invalid quoted value"
        );
        let (_, r) = run(&p, &[], r#"k"ey=1"#);
        assert_eq!(
            r.unwrap_err().details,
            "logfmt syntax error at pos 2 : unexpected '\"'"
        );
        // Trailing whitespace is not an error.
        assert_eq!(
            ok_labels(&p, &[], "a=1 b=2   "),
            l(&[("a", "1"), ("b", "2")])
        );
    }

    #[test]
    fn logfmt_unquote_surrogates_and_escapes() {
        let p = Parser::logfmt(false, false, &[]);
        assert_eq!(
            ok_labels(&p, &[], r#"a="\ud83d\ude00" b="\ud800x" c="it\'s" d="\/""#),
            l(&[("a", "😀"), ("b", " x"), ("c", "it's"), ("d", "/")])
        );
    }

    #[test]
    fn logfmt_expressions() {
        let p = Parser::try_logfmt(
            false,
            false,
            &exprs(&[("lvl", "level"), ("host", "host"), ("missing", "nope")]),
        )
        .unwrap();
        let line = r#"level=info host=h1 other=x"#;
        assert_eq!(
            ok_labels(&p, &[], line),
            l(&[("host", "h1"), ("lvl", "info"), ("missing", "")])
        );
        // A stream label of the same name: the extracted label is suffixed, no preset.
        assert_eq!(
            ok_labels(&p, &[("host", "s"), ("missing", "m")], line),
            l(&[
                ("host", "s"),
                ("host_extracted", "h1"),
                ("lvl", "info"),
                ("missing", "m"),
            ])
        );
        // Strict expressions report the error.
        let p = Parser::logfmt(true, false, &exprs(&[("a", "a")]));
        let (labels, r) = run(&p, &[], "a=1 b=\"x");
        assert_eq!(labels, l(&[("a", "1")]));
        assert_eq!(r.unwrap_err().kind, LOGFMT_PARSER_ERR);
    }

    #[test]
    fn lenient_constructors() {
        let p = Parser::logfmt(false, false, &exprs(&[("x", "a.b")]));
        assert_eq!(ok_labels(&p, &[], "a.b=1 c=2"), l(&[("x", "1")]));
        assert!(matches!(Parser::json_expressions(&[]), Ok(Parser::Json)));
    }

    #[test]
    fn logfmt_expression_errors() {
        assert_eq!(
            Parser::try_logfmt(false, false, &exprs(&[("app", "field with space")])).unwrap_err(),
            "cannot parse expression [field with space]: syntax error: unexpected KEY"
        );
        assert_eq!(
            Parser::try_logfmt(false, false, &exprs(&[("1a", "b")])).unwrap_err(),
            "invalid extracted label name '1a'"
        );
        assert_eq!(parse_logfmt_expr("\"a.b\"").unwrap(), "a.b");
    }

    // ----- | regexp -----

    #[test]
    fn regexp_named_groups() {
        let p =
            Parser::regexp(r"(?P<method>\w+) (?P<path>\S+)(?: (?P<proto>HTTP/\d\.\d))?").unwrap();
        assert_eq!(
            ok_labels(&p, &[("path", "x")], "GET /index.html"),
            l(&[
                ("method", "GET"),
                ("path", "x"),
                ("path_extracted", "/index.html"),
                ("proto", ""),
            ])
        );
        assert_eq!(ok_labels(&p, &[], "!!!"), l(&[]));
    }

    #[test]
    fn regexp_perl_classes_are_ascii_like_go() {
        let p = Parser::regexp(r"(?P<w>\w+)(?P<rest>.*)").unwrap();
        assert_eq!(
            ok_labels(&p, &[], "josé!"),
            l(&[("rest", "é!"), ("w", "jos")])
        );
        let p = Parser::regexp(r"(?P<d>[\d]+)\b").unwrap();
        assert_eq!(ok_labels(&p, &[], "٣42 x"), l(&[("d", "42")]));
        let p = Parser::regexp(r"\{(?P<k>[^}]+)}\Q.*\E(?P<v>[[:alpha:]]+)").unwrap();
        assert_eq!(
            ok_labels(&p, &[], "{key}.*val"),
            l(&[("k", "key"), ("v", "val")])
        );
        let p = Parser::regexp(r"(?P<c>[[a]+)").unwrap();
        assert_eq!(ok_labels(&p, &[], "x[a["), l(&[("c", "[a[")]));
    }

    #[test]
    fn regexp_errors() {
        assert_eq!(
            Parser::regexp("(foo)").unwrap_err(),
            "at least one named capture must be supplied"
        );
        assert_eq!(
            Parser::regexp("foo").unwrap_err(),
            "at least one named capture must be supplied"
        );
        assert_eq!(
            Parser::regexp(r"(?P<a.b>x)").unwrap_err(),
            "invalid extracted label name 'a.b'"
        );
        let e = Parser::regexp("(?P<a>x").unwrap_err();
        assert!(e.starts_with("error parsing regexp: "), "{e}");
        assert!(e.ends_with(": `(?P<a>x`"), "{e}");
    }

    // ----- | pattern -----

    #[test]
    fn pattern_common_log_format() {
        let p =
            Parser::pattern(r#"<ip> <userid> <user> [<_>] "<method> <path> <_>" <status> <size>"#)
                .unwrap();
        let line = r#"127.0.0.1 user-identifier frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#;
        assert_eq!(
            ok_labels(&p, &[("user", "not_frank")], line),
            l(&[
                ("ip", "127.0.0.1"),
                ("method", "GET"),
                ("path", "/apache_pb.gif"),
                ("size", "2326"),
                ("status", "200"),
                ("user", "not_frank"),
                ("user_extracted", "frank"),
                ("userid", "user-identifier"),
            ])
        );
    }

    #[test]
    fn pattern_nginx_and_partial_matches() {
        let p = Parser::pattern(
            r#"<ip> - - [<_>] "<method> <uri> <_>" <status> <size> <_> "<agent>" <_>"#,
        )
        .unwrap();
        let line = r#"192.168.1.1 - - [23/Apr/2024:10:00:00 +0000] "GET /api/v1/x?y=1 HTTP/1.1" 404 153 "-" "curl/8.0" "-""#;
        assert_eq!(
            ok_labels(&p, &[], line),
            l(&[
                ("agent", "curl/8.0"),
                ("ip", "192.168.1.1"),
                ("method", "GET"),
                ("size", "153"),
                ("status", "404"),
                ("uri", "/api/v1/x?y=1"),
            ])
        );
        // Loki's fixtures: a missing literal ends matching, the capture takes the rest.
        let p = Parser::pattern("foo <foo> bar<fuzz>").unwrap();
        assert_eq!(
            ok_labels(&p, &[], "foo buzz bar"),
            l(&[("foo", "buzz"), ("fuzz", "")])
        );
        let p = Parser::pattern("<path>?<_>").unwrap();
        assert_eq!(
            ok_labels(&p, &[], "/api/plugins/status"),
            l(&[("path", "/api/plugins/status")])
        );
        // A leading literal that does not match: nothing, no error.
        let p = Parser::pattern("foo <f>\"").unwrap();
        assert_eq!(ok_labels(&p, &[], "bar"), l(&[]));
        let p = Parser::pattern("unicode ▶ <what>").unwrap();
        assert_eq!(
            ok_labels(&p, &[], "unicode ▶ character"),
            l(&[("what", "character")])
        );
        let p = Parser::pattern(r#"<_> msg="<method> <path> (<status>) <duration>""#).unwrap();
        let line = r#"level=debug ts=2021-05-19T07:54:26.864644382Z caller=logging.go:66 msg="POST /loki/api/v1/push (204) 1.238734ms""#;
        assert_eq!(
            ok_labels(&p, &[], line),
            l(&[
                ("duration", "1.238734ms"),
                ("method", "POST"),
                ("path", "/loki/api/v1/push"),
                ("status", "204"),
            ])
        );
    }

    #[test]
    fn pattern_errors() {
        assert_eq!(
            Parser::pattern("").unwrap_err(),
            "parse error at line 1, col 1: syntax error: unexpected $end, expecting IDENTIFIER or LITERAL"
        );
        assert_eq!(
            Parser::pattern("<_>").unwrap_err(),
            "at least one capture is required"
        );
        assert_eq!(
            Parser::pattern("foo bar buzz").unwrap_err(),
            "at least one capture is required"
        );
        assert_eq!(
            Parser::pattern("<f><f>").unwrap_err(),
            "found consecutive capture '<f><f>': invalid expression"
        );
        assert_eq!(
            Parser::pattern("<f>f<f><_>").unwrap_err(),
            "found consecutive capture '<f><_>': invalid expression"
        );
        assert_eq!(
            Parser::pattern("<f> f<f>").unwrap_err(),
            "duplicate capture name (f): invalid expression"
        );
        // Not identifiers: literal text.
        let p = Parser::pattern("<1a> <b>").unwrap();
        assert_eq!(ok_labels(&p, &[], "<1a> x"), l(&[("b", "x")]));
    }

    // ----- | unpack -----

    #[test]
    fn unpack_entry_and_labels() {
        let line =
            r#"{"bar":1,"app":"foo","namespace":"prod","_entry":"some message","pod":{"uid":"1"}}"#;
        let (labels, r) = run(&Parser::unpack(), &[("cluster", "us-central1")], line);
        assert_eq!(r, Ok(Some("some message".to_string())));
        assert_eq!(
            labels,
            l(&[
                ("app", "foo"),
                ("cluster", "us-central1"),
                ("namespace", "prod")
            ])
        );
        let (labels, _) = run(&Parser::unpack(), &[("app", "bar")], line);
        assert_eq!(
            labels,
            l(&[
                ("app", "bar"),
                ("app_extracted", "foo"),
                ("namespace", "prod")
            ])
        );
    }

    #[test]
    fn unpack_without_entry_changes_nothing() {
        let line = r#"{"bar":1,"app":"foo","namespace":"prod"}"#;
        let (labels, r) = run(&Parser::unpack(), &[("cluster", "c")], line);
        assert_eq!(r, Ok(None));
        assert_eq!(labels, l(&[("cluster", "c")]));
    }

    #[test]
    fn unpack_escapes_names_and_errors() {
        let line = r#"{"_entry":"I0303 \"Pod status updated\" pod=\"x\"","foo.bar":"10ms","test-dash":"a\u00e9"}"#;
        let (labels, r) = run(&Parser::unpack(), &[], line);
        assert_eq!(
            r,
            Ok(Some(r#"I0303 "Pod status updated" pod="x""#.to_string()))
        );
        assert_eq!(labels, l(&[("foo_bar", "10ms"), ("test_dash", "aé")]));

        let (labels, r) = run(&Parser::unpack(), &[], r#"["foo","bar"]"#);
        assert_eq!(labels, l(&[]));
        assert_eq!(r, json_err("expecting json object(6), but it is not"));
        let (_, r) = run(&Parser::unpack(), &[], r#" {"_entry":"x"}"#);
        assert_eq!(r, json_err("expecting json object(6), but it is not"));
        let (labels, r) = run(&Parser::unpack(), &[], r#"{"a":"b","_entry":"x""#);
        assert_eq!(labels, l(&[]));
        assert_eq!(
            r,
            json_err("Value is array, but can't find closing ']' symbol")
        );
        let (_, r) = run(&Parser::unpack(), &[], r#"{"_entry":"bad \q"}"#);
        assert_eq!(
            r,
            json_err("Encountered an invalid escape sequence in a string")
        );
        assert_eq!(ok_labels(&Parser::unpack(), &[], ""), l(&[]));
    }

    // ----- internals -----

    #[test]
    fn seen_set_grows_and_finds() {
        let mut seen = Seen::default();
        assert!(!seen.contains("a"));
        for i in 0..500 {
            seen.insert(&format!("k{i}"));
        }
        seen.mark("x_extracted", 1);
        assert!(seen.contains("x") && seen.contains("x_extracted"));
        assert!((0..500).all(|i| seen.contains(&format!("k{i}"))));
        assert!(!seen.contains("k500") && !seen.contains(""));
    }

    #[test]
    fn go_regex_translation() {
        assert_eq!(
            go_regex_to_rust(r"\d+\s\w"),
            "[0-9]+[\\t\\n\\x0C\\r\\x20][0-9A-Za-z_]"
        );
        assert_eq!(go_regex_to_rust(r"a{2}b{c}"), r"a{2}b\{c}");
        assert_eq!(go_regex_to_rust(r"[\d&&x]"), r"[0-9&\&x]");
        assert_eq!(go_regex_to_rust(r"[]a]"), r"[]a]");
    }
}
