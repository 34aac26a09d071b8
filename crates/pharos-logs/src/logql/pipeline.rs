//! Running a log query's pipeline over one entry: line filters, parsers, label filters,
//! formatting, `drop` and `keep`, as Loki's `log.Pipeline` does.
//!
//! An entry's labels start as its stream's labels and its structured metadata; parsers
//! add parsed labels. Each label keeps that category, which
//! `X-Loki-Response-Encoding-Flags: categorize-labels` answers report apart. Errors do
//! not drop a line: they set `__error__` (and `__error_details__`) as in Loki, and a
//! metric query refuses samples that still carry one.

use std::borrow::Cow;

use super::ast::{
    CmpOp, FilterOp, FilterValue, LabelFilter, LabelFmt, LabelSel, LineFilter, LogExpr, NumKind,
    Stage,
};
use super::parsers::LabelSink;
use super::template::Context;
use crate::store::{Entry, Labels};

/// The error label's name.
pub const ERROR_LABEL: &str = "__error__";
/// The error details label's name.
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";

/// Where a label of an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// A stream label.
    Stream,
    /// Structured metadata.
    Metadata,
    /// Added by a stage.
    Parsed,
}

/// One label of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
    /// Where it came from.
    pub category: Category,
}

/// An entry after the pipeline: its line and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    /// The line, as the pipeline left it.
    pub line: Cow<'a, str>,
    /// The labels, in no particular order; names unique.
    pub labels: Vec<Label>,
}

impl Row<'_> {
    /// The value of a label.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    /// Sets a label, keeping the category of one already there.
    pub fn set(&mut self, name: &str, value: &str, category: Category) {
        match self.labels.iter_mut().find(|l| l.name == name) {
            Some(l) => {
                if l.value != value {
                    l.value = value.to_string();
                }
            }
            None => self.labels.push(Label {
                name: name.to_string(),
                value: value.to_string(),
                category,
            }),
        }
    }

    /// Removes a label.
    pub fn del(&mut self, name: &str) {
        self.labels.retain(|l| l.name != name);
    }

    /// Whether the entry carries an error.
    pub fn has_error(&self) -> bool {
        self.get(ERROR_LABEL).is_some_and(|v| !v.is_empty())
    }

    fn set_error(&mut self, kind: &str, details: &str) {
        self.set(ERROR_LABEL, kind, Category::Parsed);
        if !details.is_empty() {
            self.set(ERROR_DETAILS_LABEL, details, Category::Parsed);
        }
    }

    /// All labels as a sorted map, categories merged.
    pub fn label_map(&self) -> Labels {
        self.labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect()
    }
}

/// A parser's view of a row: the `_extracted` rule looks at stream labels only.
struct Sink<'r, 'a> {
    row: &'r mut Row<'a>,
}

impl LabelSink for Sink<'_, '_> {
    fn has(&self, name: &str) -> bool {
        self.row
            .labels
            .iter()
            .any(|l| l.name == name && l.category != Category::Parsed)
    }

    fn extracted(&self, name: &str) -> bool {
        self.row
            .labels
            .iter()
            .any(|l| l.name == name && l.category == Category::Parsed)
    }

    fn set(&mut self, name: &str, value: &str) {
        self.row.set(name, value, Category::Parsed);
    }
}

/// A template's view of a row.
struct TemplateCtx<'r, 'a> {
    row: &'r Row<'a>,
    ts_ns: i64,
}

impl Context for TemplateCtx<'_, '_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.row.get(name)
    }
    fn line(&self) -> &str {
        &self.row.line
    }
    fn timestamp_ns(&self) -> i64 {
        self.ts_ns
    }
}

/// Whether `line` passes a line filter.
pub fn line_filter_matches(f: &LineFilter, line: &str) -> bool {
    let any = f.values.iter().any(|v| match v {
        FilterValue::Text(t) => line.contains(t.as_str()),
        FilterValue::Regex(_, re) => re.is_match(line),
        FilterValue::Ip(ip) => ip.matches_line(line),
    });
    if f.op.positive() { any } else { !any }
}

/// Runs `expr`'s pipeline over one entry of a stream; `None` when a stage drops it.
pub fn process<'a>(expr: &LogExpr, stream: &Labels, entry: &'a Entry) -> Option<Row<'a>> {
    // Line filters before any other stage run on the stored line, without labels.
    let mut first_other = expr.stages.len();
    for (i, stage) in expr.stages.iter().enumerate() {
        match stage {
            Stage::LineFilter(f) => {
                if !line_filter_matches(f, &entry.line) {
                    return None;
                }
            }
            _ => {
                first_other = i;
                break;
            }
        }
    }
    let mut row = Row {
        line: Cow::Borrowed(entry.line.as_str()),
        labels: Vec::with_capacity(stream.len() + entry.metadata.len()),
    };
    for (k, v) in stream {
        row.labels.push(Label {
            name: k.clone(),
            value: v.clone(),
            category: Category::Stream,
        });
    }
    for (k, v) in &entry.metadata {
        row.set(k, v, Category::Metadata);
    }
    for stage in &expr.stages[first_other..] {
        if !run_stage(stage, &mut row, entry.ts_ns) {
            return None;
        }
    }
    Some(row)
}

/// Applies label filters to a row (as after `unwrap`); `false` drops it.
pub fn label_filters_pass(filters: &[LabelFilter], row: &mut Row<'_>) -> bool {
    filters.iter().all(|f| label_filter(f, row))
}

fn run_stage(stage: &Stage, row: &mut Row<'_>, ts_ns: i64) -> bool {
    match stage {
        Stage::LineFilter(f) => line_filter_matches(f, &row.line),
        Stage::Parser(p) => {
            let line = row.line.to_string();
            let mut sink = Sink { row };
            match p.process(&line, &mut sink) {
                Ok(Some(new_line)) => row.line = Cow::Owned(new_line),
                Ok(None) => {}
                Err(e) => row.set_error(e.kind, &e.details),
            }
            true
        }
        Stage::LabelFilter(f) => label_filter(f, row),
        Stage::LineFormat(t) => {
            let rendered = t.render(&TemplateCtx { row, ts_ns });
            match rendered {
                Ok(line) => row.line = Cow::Owned(line),
                Err(e) => row.set_error("TemplateFormatErr", &e),
            }
            true
        }
        Stage::LabelFormat(fmts) => {
            // Every assignment sees the labels as they were before the stage.
            let before = row.clone();
            for f in fmts {
                match f {
                    LabelFmt::Rename { dst, src } => {
                        if let Some(v) = before.get(src) {
                            let v = v.to_string();
                            row.del(src);
                            row.set(dst, &v, Category::Parsed);
                        }
                    }
                    LabelFmt::Template { dst, tmpl } => {
                        match tmpl.render(&TemplateCtx {
                            row: &before,
                            ts_ns,
                        }) {
                            Ok(v) => row.set(dst, &v, Category::Parsed),
                            Err(e) => row.set_error("TemplateFormatErr", &e),
                        }
                    }
                }
            }
            true
        }
        Stage::Drop(sels) => {
            row.labels.retain(|l| !sels.iter().any(|s| selects(s, l)));
            true
        }
        Stage::Keep(sels) => {
            row.labels.retain(|l| sels.iter().any(|s| selects(s, l)));
            true
        }
        Stage::Decolorize => {
            if row.line.contains('\u{1b}') {
                row.line = Cow::Owned(decolorize(&row.line));
            }
            true
        }
    }
}

fn selects(sel: &LabelSel, l: &Label) -> bool {
    match sel {
        LabelSel::Name(n) => *n == l.name,
        LabelSel::Matcher(m) => m.name == l.name && m.matches(&l.value),
    }
}

/// Removes ANSI escape sequences (`ESC [ ... letter`).
fn decolorize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn label_filter(f: &LabelFilter, row: &mut Row<'_>) -> bool {
    match f {
        LabelFilter::And(a, b) => label_filter(a, row) && label_filter(b, row),
        LabelFilter::Or(a, b) => label_filter(a, row) || label_filter(b, row),
        LabelFilter::Str(m) => m.matches(row.get(&m.name).unwrap_or("")),
        LabelFilter::Ip { name, equal, ip } => {
            let hit = row.get(name).is_some_and(|v| ip.contains_text(v));
            hit == *equal
        }
        LabelFilter::Cmp {
            name,
            op,
            value,
            kind,
        } => {
            // Only string matchers filter lines that already failed.
            if row.has_error() {
                return true;
            }
            let Some(text) = row.get(name) else {
                return false;
            };
            match convert(text, *kind) {
                Ok(v) => op.apply(v, *value),
                Err(details) => {
                    row.set_error("LabelFilterErr", &details);
                    true
                }
            }
        }
    }
}

/// Reads a label value as a number of `kind`; the error is Loki's details text.
pub fn convert(text: &str, kind: NumKind) -> Result<f64, String> {
    match kind {
        NumKind::Number => text
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("strconv.ParseFloat: parsing {text:?}: invalid syntax")),
        NumKind::Duration => {
            pharos_model::duration::parse_nanos(text.trim(), pharos_model::duration::Units::Go)
                .map(|ns| ns as f64 / 1e9)
                .ok_or_else(|| format!("time: invalid duration {text:?}"))
        }
        NumKind::Bytes => super::lexer::parse_bytes(text)
            .ok_or_else(|| format!("strconv.ParseFloat: parsing {text:?}: invalid syntax")),
    }
}

impl CmpOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Neq => "!=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
        }
    }
}

impl FilterOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            FilterOp::Contains => "|=",
            FilterOp::NotContains => "!=",
            FilterOp::Match => "|~",
            FilterOp::NotMatch => "!~",
            FilterOp::Pattern => "|>",
            FilterOp::NotPattern => "!>",
        }
    }
}

impl super::parsers::Parser {
    /// Whether the stage replaces the line (`unpack` with an `_entry`).
    pub fn replaces_line(&self) -> bool {
        matches!(self, super::parsers::Parser::Unpack)
    }
}
