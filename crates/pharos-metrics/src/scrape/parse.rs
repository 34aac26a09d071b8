//! The scrape body parsers: Prometheus text exposition format 0.0.4 and OpenMetrics 1.0
//! text.
//!
//! [`parse`] turns a whole body into [`Parsed`]: the families' metadata (`# HELP`,
//! `# TYPE`, `# UNIT`) and the samples, each with its full label set (`__name__`
//! included), value and optional timestamp in milliseconds. Like Prometheus, one bad line
//! fails the whole scrape; the error names the line.
//!
//! Differences between the formats that matter here: OpenMetrics timestamps are seconds
//! (floats), 0.0.4 timestamps are integer milliseconds; OpenMetrics must end with `# EOF`
//! and allows no blank lines or free comments; OpenMetrics `_created` samples of
//! counters, histograms and summaries are skipped, as Prometheus does by default
//! (a 0.0.4 body has no such notion, so there they are ordinary samples). Exemplars are
//! parsed past and dropped. As in Prometheus 3, the `le` of histogram buckets and the
//! `quantile` of summaries are normalised to their float form (`le="1"` → `le="1.0"`).

use std::collections::HashMap;

use crate::store::{Labels, METRIC_NAME};

/// Which exposition format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`, also what an unknown content type means.
    PrometheusText,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// Returns the format a `Content-Type` header names; anything but OpenMetrics is read
    /// as the Prometheus text format, as Prometheus does.
    pub fn from_content_type(content_type: &str) -> Format {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

/// A metric family's type, as declared by `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram` (OpenMetrics).
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info` (OpenMetrics).
    Info,
    /// `stateset` (OpenMetrics).
    StateSet,
    /// `untyped` (0.0.4), `unknown` (OpenMetrics), or no `# TYPE` line.
    Unknown,
}

impl MetricType {
    fn parse(s: &str, format: Format) -> Option<MetricType> {
        Some(match (s, format) {
            ("counter", _) => MetricType::Counter,
            ("gauge", _) => MetricType::Gauge,
            ("histogram", _) => MetricType::Histogram,
            ("summary", _) => MetricType::Summary,
            ("untyped", Format::PrometheusText) | ("unknown", Format::OpenMetrics) => {
                MetricType::Unknown
            }
            ("gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
            ("info", Format::OpenMetrics) => MetricType::Info,
            ("stateset", Format::OpenMetrics) => MetricType::StateSet,
            _ => return None,
        })
    }

    /// Returns the name Prometheus' metadata API uses for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

/// One family's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family name as written in the metadata lines.
    pub name: String,
    /// The declared type.
    pub kind: MetricType,
    /// The `# HELP` text, unescaped.
    pub help: Option<String>,
    /// The `# UNIT` (OpenMetrics only).
    pub unit: Option<String>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The labels, `__name__` included.
    pub labels: Labels,
    /// The value.
    pub value: f64,
    /// The sample's own timestamp in milliseconds, if it has one.
    pub timestamp_ms: Option<i64>,
}

/// A parsed body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Families in order of first mention in a metadata line.
    pub families: Vec<Family>,
    /// Samples in body order.
    pub samples: Vec<Sample>,
}

/// Why a body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses a whole exposition body.
///
/// # Errors
/// The first malformed line, by number. An OpenMetrics body without `# EOF`, or with
/// anything after it, is an error too.
pub fn parse(text: &str, format: Format) -> Result<Parsed, ParseError> {
    let mut p = Parser {
        format,
        out: Parsed::default(),
        by_name: HashMap::new(),
    };
    let mut eof = false;
    let mut last_line = 0;
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        last_line = line_no;
        let err = |message: String| ParseError {
            line: line_no,
            message,
        };
        if eof {
            // Only the newline ending `# EOF` may follow it.
            if raw.is_empty() && i + 1 == text.split('\n').count() {
                continue;
            }
            return Err(err("content after # EOF".into()));
        }
        let line = match format {
            Format::PrometheusText => raw.strip_suffix('\r').unwrap_or(raw),
            Format::OpenMetrics => raw,
        };
        if format == Format::PrometheusText && line.trim().is_empty() {
            continue;
        }
        if format == Format::OpenMetrics && line.is_empty() {
            if i + 1 == text.split('\n').count() {
                break;
            }
            return Err(err("blank line".into()));
        }
        if format == Format::OpenMetrics && line == "# EOF" {
            eof = true;
            continue;
        }
        let trimmed = match format {
            Format::PrometheusText => line.trim_start_matches([' ', '\t']),
            Format::OpenMetrics => line,
        };
        if let Some(comment) = trimmed.strip_prefix('#') {
            p.comment(comment).map_err(err)?;
        } else {
            p.sample(trimmed).map_err(err)?;
        }
    }
    if format == Format::OpenMetrics && !eof {
        return Err(ParseError {
            line: last_line,
            message: "missing # EOF".into(),
        });
    }
    Ok(p.out)
}

struct Parser {
    format: Format,
    out: Parsed,
    by_name: HashMap<String, usize>,
}

/// Sample-name suffixes that belong to a family, by family type.
fn suffixes(kind: MetricType) -> &'static [&'static str] {
    match kind {
        MetricType::Counter => &["_total", "_created"],
        MetricType::Histogram => &["_bucket", "_sum", "_count", "_created"],
        MetricType::GaugeHistogram => &["_bucket", "_gsum", "_gcount"],
        MetricType::Summary => &["_sum", "_count", "_created"],
        MetricType::Info => &["_info"],
        _ => &[],
    }
}

impl Parser {
    fn family_mut(&mut self, name: &str) -> &mut Family {
        let i = match self.by_name.get(name) {
            Some(&i) => i,
            None => {
                self.out.families.push(Family {
                    name: name.to_owned(),
                    kind: MetricType::Unknown,
                    help: None,
                    unit: None,
                });
                self.by_name
                    .insert(name.to_owned(), self.out.families.len() - 1);
                self.out.families.len() - 1
            }
        };
        &mut self.out.families[i]
    }

    /// Returns the family a sample name belongs to, and the suffix it carries.
    fn family_of(&self, name: &str) -> Option<(&Family, &'static str)> {
        if let Some(&i) = self.by_name.get(name) {
            let f = &self.out.families[i];
            // A 0.0.4 counter's samples carry the family name itself.
            return Some((f, ""));
        }
        let (stem, suffix) = [
            "_total", "_created", "_bucket", "_sum", "_count", "_gsum", "_gcount", "_info",
        ]
        .iter()
        .find_map(|s| name.strip_suffix(s).map(|stem| (stem, *s)))?;
        let f = &self.out.families[*self.by_name.get(stem)?];
        suffixes(f.kind).contains(&suffix).then_some((f, suffix))
    }

    fn comment(&mut self, comment: &str) -> Result<(), String> {
        let om = self.format == Format::OpenMetrics;
        let rest = match comment.strip_prefix(' ') {
            Some(r) => r,
            None if om => return Err("comments must start with \"# \"".into()),
            None => comment.trim_start_matches([' ', '\t']),
        };
        let (keyword, rest) = split_word(rest);
        if !matches!(keyword, "HELP" | "TYPE" | "UNIT") || (keyword == "UNIT" && !om) {
            return if om {
                Err(format!(
                    "unexpected comment {keyword:?}; expected HELP, TYPE, UNIT or EOF"
                ))
            } else {
                Ok(()) // 0.0.4 allows free comments
            };
        }
        let (name, text) = if om {
            let rest = rest
                .strip_prefix(' ')
                .ok_or_else(|| format!("expected a metric name after # {keyword}"))?;
            let (name, text) = parse_metric_name(rest)?;
            let text = match text.strip_prefix(' ') {
                Some(t) => t,
                None if text.is_empty() => "",
                None => {
                    return Err(format!(
                        "expected a space after the metric name in # {keyword}"
                    ));
                }
            };
            (name, text)
        } else {
            let (name, text) = parse_metric_name(rest.trim_start_matches([' ', '\t']))?;
            (name, text.trim_start_matches([' ', '\t']))
        };
        if name.is_empty() {
            return Err(format!("# {keyword} without a metric name"));
        }
        let format = self.format;
        match keyword {
            "HELP" => {
                let help = unescape_help(text)?;
                let f = self.family_mut(&name);
                if f.help.is_some() && om {
                    return Err(format!("second # HELP for {name}"));
                }
                f.help = Some(help);
            }
            "TYPE" => {
                let t = text.trim_end();
                let kind = MetricType::parse(t, format)
                    .ok_or_else(|| format!("invalid metric type {t:?}"))?;
                let seen = self
                    .by_name
                    .get(&name)
                    .is_some_and(|&i| self.out.families[i].kind != MetricType::Unknown);
                if seen {
                    return Err(format!("second # TYPE for {name}"));
                }
                self.family_mut(&name).kind = kind;
            }
            _ => {
                if !text.is_empty() && !name.ends_with(&format!("_{text}")) {
                    return Err(format!("unit {text:?} is not a suffix of {name}"));
                }
                self.family_mut(&name).unit = Some(text.to_owned());
            }
        }
        Ok(())
    }

    fn sample(&mut self, line: &str) -> Result<(), String> {
        let om = self.format == Format::OpenMetrics;
        let (mut name, rest) = parse_metric_name(line)?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        // 0.0.4 allows blanks between the name and the label list.
        let blank_then_brace = !om && rest.trim_start_matches([' ', '\t']).starts_with('{');
        let rest = if blank_then_brace {
            rest.trim_start_matches([' ', '\t'])
        } else {
            rest
        };
        let rest = if let Some(inner) = rest.strip_prefix('{') {
            let (quoted_name, rest) = parse_labels(inner, &mut pairs)?;
            if let Some(q) = quoted_name {
                if !name.is_empty() {
                    return Err("metric name given twice".into());
                }
                name = q;
            }
            rest
        } else {
            rest
        };
        if name.is_empty() {
            return Err("expected a metric name".into());
        }
        let family = self.family_of(&name).map(|(f, s)| (f.kind, s));
        if om {
            match family {
                Some((MetricType::Counter, "")) => {
                    return Err(format!(
                        "counter sample {name} must end in _total or _created"
                    ));
                }
                Some((_, "_created")) => return Ok(()),
                _ => {}
            }
        }
        let kind = family.map_or(MetricType::Unknown, |(k, _)| k);
        for (k, v) in &mut pairs {
            let normalise = (k == "le"
                && matches!(kind, MetricType::Histogram | MetricType::GaugeHistogram))
                || (k == "quantile" && kind == MetricType::Summary);
            if normalise && let Ok(f) = parse_float(v) {
                *v = format_om_float(f);
            }
        }
        // The value and optional timestamp, separated by one space in OpenMetrics and any
        // run of blanks in 0.0.4.
        let rest = match rest.strip_prefix([' ', '\t']) {
            Some(r) if !om => r.trim_start_matches([' ', '\t']),
            Some(r) if rest.starts_with(' ') => r,
            _ => return Err(format!("expected a space before the value of {name}")),
        };
        let (rest, _exemplar) = match rest.split_once(" # ") {
            Some((r, e)) if om => (r, Some(e)),
            _ => (rest, None),
        };
        let mut fields = if om {
            rest.split(' ').collect::<Vec<_>>()
        } else {
            rest.split([' ', '\t']).filter(|s| !s.is_empty()).collect()
        };
        if fields.last() == Some(&"") && !om {
            fields.pop();
        }
        let (value, ts) = match fields.as_slice() {
            [v] => (*v, None),
            [v, t] => (*v, Some(*t)),
            _ => {
                return Err(format!(
                    "expected a value and an optional timestamp for {name}"
                ));
            }
        };
        let value = parse_float(value).map_err(|_| format!("invalid value {value:?}"))?;
        let timestamp_ms = match ts {
            None => None,
            Some(t) if om => {
                let secs = parse_float(t).map_err(|_| format!("invalid timestamp {t:?}"))?;
                if !secs.is_finite() {
                    return Err(format!("invalid timestamp {t:?}"));
                }
                Some((secs * 1000.0).round() as i64)
            }
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| format!("invalid timestamp {t:?}"))?,
            ),
        };
        let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("duplicate label name {:?}", w[0]));
        }
        if names.binary_search(&METRIC_NAME).is_ok() {
            return Err("label __name__ given besides the metric name".into());
        }
        pairs.push((METRIC_NAME.to_owned(), name));
        self.out.samples.push(Sample {
            labels: Labels::from_pairs(pairs),
            value,
            timestamp_ms,
        });
        Ok(())
    }
}

fn split_word(s: &str) -> (&str, &str) {
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Reads a metric name, bare or quoted (Prometheus 3's UTF-8 names); an empty name when
/// the line starts with `{`.
fn parse_metric_name(s: &str) -> Result<(String, &str), String> {
    if s.starts_with('"') {
        let (name, rest) = parse_quoted(s)?;
        return Ok((name, rest));
    }
    let end = s
        .char_indices()
        .find(|&(i, c)| {
            !(if i == 0 {
                is_name_start(c)
            } else {
                is_name_char(c)
            })
        })
        .map_or(s.len(), |(i, _)| i);
    if end == 0 && !s.starts_with('{') {
        return Err(format!(
            "invalid metric name at {:?}",
            s.chars().take(20).collect::<String>()
        ));
    }
    Ok((s[..end].to_owned(), &s[end..]))
}

/// Reads a double-quoted string with `\\`, `\"` and `\n` escapes; returns it and the rest.
fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, other)) => return Err(format!("invalid escape \\{other}")),
                None => break,
            },
            '\n' => break,
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

/// Reads the inside of `{...}` (after the brace) into `pairs`; returns a quoted metric
/// name if one stands alone in the list, and the text after `}`.
fn parse_labels<'a>(
    mut s: &'a str,
    pairs: &mut Vec<(String, String)>,
) -> Result<(Option<String>, &'a str), String> {
    let mut quoted_name = None;
    let mut first = true;
    loop {
        s = s.trim_start_matches([' ', '\t']);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((quoted_name, rest));
        }
        let name = if s.starts_with('"') {
            let (n, rest) = parse_quoted(s)?;
            s = rest.trim_start_matches([' ', '\t']);
            if first && (s.starts_with(',') || s.starts_with('}')) {
                quoted_name = Some(n);
                first = false;
                if let Some(rest) = s.strip_prefix(',') {
                    s = rest;
                }
                continue;
            }
            n
        } else {
            let end = s
                .char_indices()
                .find(|&(i, c)| {
                    !(if i == 0 {
                        c.is_ascii_alphabetic() || c == '_'
                    } else {
                        c.is_ascii_alphanumeric() || c == '_'
                    })
                })
                .map_or(s.len(), |(i, _)| i);
            if end == 0 {
                return Err(format!(
                    "invalid label name at {:?}",
                    s.chars().take(20).collect::<String>()
                ));
            }
            let n = s[..end].to_owned();
            s = s[end..].trim_start_matches([' ', '\t']);
            n
        };
        first = false;
        s = s
            .strip_prefix('=')
            .ok_or_else(|| format!("expected = after label {name:?}"))?
            .trim_start_matches([' ', '\t']);
        if !s.starts_with('"') {
            return Err(format!("expected a quoted value for label {name:?}"));
        }
        let (value, rest) = parse_quoted(s)?;
        pairs.push((name, value));
        s = rest.trim_start_matches([' ', '\t']);
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("expected , or } in label list".into());
        }
    }
}

fn unescape_help(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') => out.push('"'),
            // 0.0.4 leaves unknown escapes as they are.
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Ok(out)
}

/// Parses a float the way Go's `strconv.ParseFloat` does for exposition values: decimal
/// and exponent forms, `NaN`, `Inf`, `+Inf`, `-Inf` in any case.
pub(crate) fn parse_float(s: &str) -> Result<f64, std::num::ParseFloatError> {
    // Rust accepts "inf", "infinity" and "nan" with a sign in any case, like Go; it
    // does not accept Go's hex floats or underscores, which exposition never uses.
    s.parse::<f64>()
}

/// Formats a float as OpenMetrics and Prometheus 3 write `le` and `quantile`: Go's
/// shortest `%g`, with `.0` added to integers.
pub(crate) fn format_om_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    // Shortest round-trip digits and exponent, as Go's 'g' with precision -1.
    let e = format!("{f:e}"); // e.g. "-1.25e-5", "1e0"
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go switches to the exponent form below 1e-4 and from 1e6 (precision 6 when shortest).
    let s = if !(-4..6).contains(&exp) {
        go_exponent_form(mantissa, exp)
    } else {
        format!("{f}")
    };
    if s.contains(['.', 'e', 'E']) {
        s
    } else {
        s + ".0"
    }
}

/// Go's `%e` layout for shortest digits: a two-digit exponent at least, with a sign.
fn go_exponent_form(mantissa: &str, exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

#[cfg(test)]
mod tests;
