//! The parsed form of a LogQL query: log queries (a stream selector and a pipeline) and
//! metric queries over them.

use regex::Regex;

use super::parsers::Parser as LineParser;
use super::template::Template;

/// A label matcher's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`, anchored at both ends.
    Re,
    /// `!~`, anchored at both ends.
    Nre,
}

/// One matcher of a stream selector, such as `app=~"api|web"`.
#[derive(Debug, Clone)]
pub struct LabelMatcher {
    /// The label name.
    pub name: String,
    /// The operator.
    pub op: MatchOp,
    /// The value or regular expression, unquoted.
    pub value: String,
    /// The compiled, anchored regex for `=~` and `!~`.
    re: Option<Regex>,
}

impl LabelMatcher {
    /// Returns a matcher, compiling regexes as Prometheus does (`^(?s:re)$`).
    ///
    /// # Errors
    ///
    /// Returns the regex compiler's message when `value` is not a valid regex.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, String> {
        let re = match op {
            MatchOp::Re | MatchOp::Nre => {
                Some(Regex::new(&format!("^(?s:{value})$")).map_err(|e| regex_error(&e))?)
            }
            _ => None,
        };
        Ok(Self {
            name: name.into(),
            op,
            value: value.into(),
            re,
        })
    }

    /// Returns whether the label value `v` (empty when the label is absent) matches.
    pub fn matches(&self, v: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::Neq, _) => v != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(v),
            (MatchOp::Nre, Some(re)) => !re.is_match(v),
            _ => unreachable!("BUG: regex matcher without a compiled regex"),
        }
    }
}

pub(crate) fn regex_error(e: &regex::Error) -> String {
    format!(
        "error parsing regexp: {}",
        e.to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .trim_start_matches("error: ")
    )
}

/// A whole query.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A log query: entries.
    Log(LogExpr),
    /// A metric query: samples.
    Metric(MetricExpr),
}

/// A stream selector and the pipeline applied to each of its entries.
#[derive(Debug, Clone)]
pub struct LogExpr {
    /// The stream selector's matchers, all of which must hold.
    pub matchers: Vec<LabelMatcher>,
    /// The pipeline's stages, in order.
    pub stages: Vec<Stage>,
}

/// One pipeline stage.
#[derive(Debug, Clone)]
pub enum Stage {
    /// `|= "a" or "b"`, `!~ "re"`, ...
    LineFilter(LineFilter),
    /// `| json`, `| logfmt`, `| regexp`, `| pattern`, `| unpack`.
    Parser(LineParser),
    /// `| status >= 500 and level="error"`.
    LabelFilter(LabelFilter),
    /// `| line_format "{{.msg}}"`.
    LineFormat(Template),
    /// `| label_format dst=src, dst2="{{.x}}"`.
    LabelFormat(Vec<LabelFmt>),
    /// `| drop a, b="v"`.
    Drop(Vec<LabelSel>),
    /// `| keep a, b="v"`.
    Keep(Vec<LabelSel>),
    /// `| decolorize`: ANSI color sequences removed from the line.
    Decolorize,
}

/// A line filter's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// `|=`: the line contains the string.
    Contains,
    /// `!=`: the line does not contain the string.
    NotContains,
    /// `|~`: the (unanchored) regex matches somewhere in the line.
    Match,
    /// `!~`: the regex matches nowhere in the line.
    NotMatch,
    /// `|>`: the line matches the pattern (`<_>` matches anything).
    Pattern,
    /// `!>`: the line does not match the pattern.
    NotPattern,
}

impl FilterOp {
    /// Whether the operator keeps lines that match (`|=`, `|~`, `|>`).
    pub fn positive(self) -> bool {
        matches!(
            self,
            FilterOp::Contains | FilterOp::Match | FilterOp::Pattern
        )
    }
}

/// A line filter: the operator and its alternatives (`or`).
#[derive(Debug, Clone)]
pub struct LineFilter {
    /// The operator.
    pub op: FilterOp,
    /// The alternatives: for a positive operator a line must match one, for a negative
    /// one it must match none.
    pub values: Vec<FilterValue>,
}

/// One alternative of a line filter.
#[derive(Debug, Clone)]
pub enum FilterValue {
    /// A substring (for `|=`/`!=`).
    Text(String),
    /// A compiled regex (for `|~`/`!~` and patterns).
    Regex(String, Regex),
    /// `ip("192.168.0.0/16")`: an IP address in the line within the range.
    Ip(IpMatch),
}

/// A label filter expression.
#[derive(Debug, Clone)]
pub enum LabelFilter {
    /// Both hold (`and`, `,` or a space).
    And(Box<LabelFilter>, Box<LabelFilter>),
    /// Either holds.
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// `name op "string"`.
    Str(LabelMatcher),
    /// `name op number`, `name op 1s`, `name op 20MB`: the value converted as `kind`.
    Cmp {
        /// The label.
        name: String,
        /// The comparison.
        op: CmpOp,
        /// The right-hand side (seconds for durations, bytes for sizes).
        value: f64,
        /// How the label's value is read.
        kind: NumKind,
    },
    /// `name = ip("...")` / `name != ip("...")`.
    Ip {
        /// The label.
        name: String,
        /// `false` for `!=`.
        equal: bool,
        /// The range.
        ip: IpMatch,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==` or `=`.
    Eq,
    /// `!=`.
    Neq,
    /// `>`.
    Gt,
    /// `>=`.
    Gte,
    /// `<`.
    Lt,
    /// `<=`.
    Lte,
}

impl CmpOp {
    /// Applies the comparison.
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Neq => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Gte => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Lte => a <= b,
        }
    }
}

/// How a label value is read as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumKind {
    /// A float (`strconv.ParseFloat`).
    Number,
    /// A Go duration, in seconds.
    Duration,
    /// A byte size (go-humanize), in bytes.
    Bytes,
}

/// An IP address or range, as Loki's `ip()` takes: one address, `a-b`, or a CIDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpMatch {
    /// The text as written.
    pub text: String,
    /// Lowest and highest address of the range, as 128-bit numbers (IPv4 mapped).
    pub lo: u128,
    /// See `lo`.
    pub hi: u128,
}

/// One `label_format` assignment.
#[derive(Debug, Clone)]
pub enum LabelFmt {
    /// `dst=src`: the label `src` renamed to `dst`.
    Rename {
        /// The new name.
        dst: String,
        /// The label renamed.
        src: String,
    },
    /// `dst="{{...}}"`: `dst` set to the rendered template.
    Template {
        /// The label set.
        dst: String,
        /// The template.
        tmpl: Template,
    },
}

/// A `drop`/`keep` operand: a name, or a name with a matcher.
#[derive(Debug, Clone)]
pub enum LabelSel {
    /// Every label of this name.
    Name(String),
    /// The label when its value matches.
    Matcher(LabelMatcher),
}

/// A metric query.
#[derive(Debug, Clone)]
pub enum MetricExpr {
    /// `count_over_time({...}[5m])` and friends.
    Range(Box<RangeAgg>),
    /// `sum by (x) (...)` and friends.
    Vector(Box<VectorAgg>),
    /// `a + on(x) b` and friends.
    Binary(Box<BinaryExpr>),
    /// A number.
    Literal(f64),
    /// `vector(1)`.
    VectorFn(f64),
    /// `label_replace(v, "dst", "replacement", "src", "regex")`.
    LabelReplace(Box<LabelReplace>),
}

/// A range aggregation over a log query.
#[derive(Debug, Clone)]
pub struct RangeAgg {
    /// The function.
    pub op: RangeOp,
    /// `quantile_over_time`'s φ.
    pub param: Option<f64>,
    /// The log query.
    pub log: LogExpr,
    /// `[range]`, nanoseconds.
    pub range_ns: i64,
    /// `offset`, nanoseconds.
    pub offset_ns: i64,
    /// `| unwrap label` and its post-filters.
    pub unwrap: Option<Unwrap>,
    /// `by`/`without` (unwrapped aggregations only).
    pub grouping: Option<Grouping>,
}

/// A range aggregation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    /// `count_over_time`.
    Count,
    /// `rate`.
    Rate,
    /// `rate_counter`.
    RateCounter,
    /// `bytes_over_time`.
    Bytes,
    /// `bytes_rate`.
    BytesRate,
    /// `absent_over_time`.
    Absent,
    /// `sum_over_time`.
    Sum,
    /// `avg_over_time`.
    Avg,
    /// `min_over_time`.
    Min,
    /// `max_over_time`.
    Max,
    /// `stddev_over_time`.
    Stddev,
    /// `stdvar_over_time`.
    Stdvar,
    /// `quantile_over_time`.
    Quantile,
    /// `first_over_time`.
    First,
    /// `last_over_time`.
    Last,
}

impl RangeOp {
    /// The function of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "count_over_time" => RangeOp::Count,
            "rate" => RangeOp::Rate,
            "rate_counter" => RangeOp::RateCounter,
            "bytes_over_time" => RangeOp::Bytes,
            "bytes_rate" => RangeOp::BytesRate,
            "absent_over_time" => RangeOp::Absent,
            "sum_over_time" => RangeOp::Sum,
            "avg_over_time" => RangeOp::Avg,
            "min_over_time" => RangeOp::Min,
            "max_over_time" => RangeOp::Max,
            "stddev_over_time" => RangeOp::Stddev,
            "stdvar_over_time" => RangeOp::Stdvar,
            "quantile_over_time" => RangeOp::Quantile,
            "first_over_time" => RangeOp::First,
            "last_over_time" => RangeOp::Last,
            _ => return None,
        })
    }

    /// Whether the function reads unwrapped values (and so needs `| unwrap`).
    pub fn needs_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::Count | RangeOp::Rate | RangeOp::Bytes | RangeOp::BytesRate | RangeOp::Absent
        )
    }
}

/// `| unwrap [conversion(]label[)]` and the label filters after it.
#[derive(Debug, Clone)]
pub struct Unwrap {
    /// The label whose value becomes the sample.
    pub label: String,
    /// How the value is read.
    pub kind: NumKind,
    /// Label filters applied after the conversion (e.g. `| __error__=""`).
    pub post_filters: Vec<LabelFilter>,
}

/// `by (a, b)` or `without (a, b)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// `true` for `without`.
    pub without: bool,
    /// The labels.
    pub labels: Vec<String>,
}

/// A vector aggregation.
#[derive(Debug, Clone)]
pub struct VectorAgg {
    /// The operator.
    pub op: VectorOp,
    /// `topk`/`bottomk`'s k.
    pub param: Option<f64>,
    /// `by`/`without`.
    pub grouping: Option<Grouping>,
    /// The aggregated expression.
    pub expr: MetricExpr,
}

/// A vector aggregation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorOp {
    /// `sum`.
    Sum,
    /// `avg`.
    Avg,
    /// `count`.
    Count,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `stddev`.
    Stddev,
    /// `stdvar`.
    Stdvar,
    /// `topk`.
    Topk,
    /// `bottomk`.
    Bottomk,
    /// `sort`.
    Sort,
    /// `sort_desc`.
    SortDesc,
}

impl VectorOp {
    /// The operator of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sum" => VectorOp::Sum,
            "avg" => VectorOp::Avg,
            "count" => VectorOp::Count,
            "min" => VectorOp::Min,
            "max" => VectorOp::Max,
            "stddev" => VectorOp::Stddev,
            "stdvar" => VectorOp::Stdvar,
            "topk" => VectorOp::Topk,
            "bottomk" => VectorOp::Bottomk,
            "sort" => VectorOp::Sort,
            "sort_desc" => VectorOp::SortDesc,
            _ => return None,
        })
    }
}

/// A binary operation.
#[derive(Debug, Clone)]
pub struct BinaryExpr {
    /// The operator.
    pub op: BinOp,
    /// The left operand.
    pub lhs: MetricExpr,
    /// The right operand.
    pub rhs: MetricExpr,
    /// `bool` on a comparison.
    pub return_bool: bool,
    /// `on`/`ignoring` and `group_left`/`group_right`.
    pub matching: Option<VectorMatching>,
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `==`
    Eq,
    /// `!=`
    Neq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `and`
    And,
    /// `or`
    Or,
    /// `unless`
    Unless,
}

impl BinOp {
    /// Whether the operator is a comparison.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Neq | BinOp::Gt | BinOp::Gte | BinOp::Lt | BinOp::Lte
        )
    }

    /// Whether the operator is a set operator.
    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// Precedence, higher binds tighter, as PromQL's.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eq | BinOp::Neq | BinOp::Gt | BinOp::Gte | BinOp::Lt | BinOp::Lte => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 5,
            BinOp::Pow => 6,
        }
    }
}

/// `on (a)`/`ignoring (a)` with an optional `group_left (b)`/`group_right (b)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorMatching {
    /// `true` for `on`, `false` for `ignoring`.
    pub on: bool,
    /// The labels.
    pub labels: Vec<String>,
    /// `Some((true, include))` for `group_left`, `Some((false, include))` for `group_right`.
    pub group: Option<(bool, Vec<String>)>,
}

/// `label_replace(...)`'s arguments.
#[derive(Debug, Clone)]
pub struct LabelReplace {
    /// The vector.
    pub expr: MetricExpr,
    /// The label written.
    pub dst: String,
    /// The replacement, with `$1` references.
    pub replacement: String,
    /// The label read.
    pub src: String,
    /// The anchored regex.
    pub regex: Regex,
}

impl IpMatch {
    /// Parses `192.168.0.1`, `192.168.0.1-192.168.0.20`, `192.168.0.0/16` or their IPv6
    /// forms.
    ///
    /// # Errors
    ///
    /// A message naming the text when it is none of these.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("invalid ip address or range {text:?}");
        let t = text.trim();
        let (lo, hi) = if let Some((a, b)) = t.split_once('-') {
            (
                ip_number(a.trim()).ok_or_else(bad)?,
                ip_number(b.trim()).ok_or_else(bad)?,
            )
        } else if let Some((a, bits)) = t.split_once('/') {
            let addr: std::net::IpAddr = a.trim().parse().map_err(|_| bad())?;
            let bits: u32 = bits.trim().parse().map_err(|_| bad())?;
            let (n, width) = match addr {
                std::net::IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), 32),
                std::net::IpAddr::V6(v6) => (u128::from(v6), 128),
            };
            if bits > width {
                return Err(bad());
            }
            let host_bits = width - bits;
            let mask = if host_bits == 0 {
                0
            } else {
                (1u128 << host_bits) - 1
            };
            (n & !mask, n | mask)
        } else {
            let n = ip_number(t).ok_or_else(bad)?;
            (n, n)
        };
        if lo > hi {
            return Err(bad());
        }
        Ok(Self {
            text: text.to_string(),
            lo,
            hi,
        })
    }

    /// Whether `addr` (an address as text) is in the range.
    pub fn contains_text(&self, addr: &str) -> bool {
        ip_number(addr).is_some_and(|n| self.lo <= n && n <= self.hi)
    }

    /// Whether some address written in `line` is in the range.
    pub fn matches_line(&self, line: &str) -> bool {
        line.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
            .filter(|w| w.len() >= 2)
            .any(|w| self.contains_text(w.trim_matches(':')) || self.contains_text(w))
    }
}

/// An address as a 128-bit number, IPv4 mapped into IPv6.
fn ip_number(s: &str) -> Option<u128> {
    match s.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => Some(u128::from(v4.to_ipv6_mapped())),
        std::net::IpAddr::V6(v6) => Some(u128::from(v6)),
    }
}

impl LogExpr {
    /// Returns whether a stream with these labels is selected.
    pub fn matches_stream(&self, labels: &crate::store::Labels) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.name).map_or("", String::as_str)))
    }

    /// Substrings every selected line must contain (from `|=` filters without `or`), for
    /// skipping chunks whose token filters rule them out.
    pub fn required_substrings(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for s in &self.stages {
            match s {
                Stage::LineFilter(f) if f.op == FilterOp::Contains && f.values.len() == 1 => {
                    if let FilterValue::Text(t) = &f.values[0] {
                        out.push(t.as_str());
                    }
                }
                // Stages that change the line end what the stored line is known to hold.
                Stage::LineFormat(_) | Stage::Decolorize => break,
                Stage::Parser(p) if p.replaces_line() => break,
                _ => {}
            }
        }
        out
    }
}
