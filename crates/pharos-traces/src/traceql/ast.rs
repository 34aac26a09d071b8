//! The TraceQL syntax tree: a [`Query`] is a [`Pipeline`] of [`Stage`]s; spanset stages
//! combine `{ ... }` filters ([`SpansetExpr`]) whose conditions are [`FieldExpr`]s.
//!
//! `Display` prints a tree back as TraceQL; it names `select`ed and `by` fields in results.

use std::fmt;

use regex::Regex;

use super::value::{ArithOp, Value};

/// A parsed TraceQL query.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub pipeline: Pipeline,
}

/// Stages separated by `|`, each applied to every spanset the previous one produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    pub stages: Vec<Stage>,
}

/// One pipeline stage.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// Filters and combines the spans of each spanset: `{ a } && { b }`.
    Spanset(SpansetExpr),
    /// Keeps spansets whose aggregate comparison holds: `count() > 2`.
    Scalar(ScalarFilter),
    /// Splits each spanset into one per distinct value: `by(resource.service.name)`.
    By(Vec<FieldExpr>),
    /// Adds the fields' values to every span of the spanset: `select(span.http.method)`.
    Select(Vec<FieldExpr>),
}

/// An expression over spansets.
#[derive(Clone, Debug, PartialEq)]
pub enum SpansetExpr {
    /// `{ condition }`: the spans for which the condition is true (`{ }` is `{ true }`).
    Filter(FieldExpr),
    /// `lhs op rhs`.
    Binary {
        op: SpansetOp,
        lhs: Box<SpansetExpr>,
        rhs: Box<SpansetExpr>,
    },
    /// A parenthesized pipeline used as an operand: `({ a } | count() > 1) && { b }`.
    Pipeline(Box<Pipeline>),
}

/// An operator between spansets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpansetOp {
    /// `&&`: both sides match in the trace; the result is their union.
    And,
    /// `||`: either side matches; the result is their union.
    Or,
    /// A structural operator: `>`, `!>`, `&>` and their kin.
    Structural(Relation, StructuralMode),
}

/// How a right-hand span relates to a left-hand span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// `>`: rhs span is a direct child of an lhs span.
    Child,
    /// `<`: rhs span is the direct parent of an lhs span.
    Parent,
    /// `>>`: rhs span is a descendant of an lhs span.
    Descendant,
    /// `<<`: rhs span is an ancestor of an lhs span.
    Ancestor,
    /// `~`: rhs span shares its parent with another span that matches lhs.
    Sibling,
}

/// Which spans a structural operator returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StructuralMode {
    /// `>`: rhs spans that have the relation.
    Plain,
    /// `!>`: rhs spans that do not have the relation.
    Not,
    /// `&>`: rhs spans that have the relation and the lhs spans they have it with.
    Union,
}

/// A condition or value over one span.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldExpr {
    Static(Value),
    Intrinsic(Intrinsic),
    Attribute(Attribute),
    Compare {
        op: CompareOp,
        lhs: Box<FieldExpr>,
        rhs: Box<FieldExpr>,
    },
    /// `lhs =~ "re"` or `lhs !~ "re"`; the pattern is compiled and fully anchored.
    Regex {
        negated: bool,
        lhs: Box<FieldExpr>,
        pattern: Pattern,
    },
    Arith {
        op: ArithOp,
        lhs: Box<FieldExpr>,
        rhs: Box<FieldExpr>,
    },
    And(Box<FieldExpr>, Box<FieldExpr>),
    Or(Box<FieldExpr>, Box<FieldExpr>),
    Not(Box<FieldExpr>),
    Neg(Box<FieldExpr>),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

/// A regular expression as written, and compiled anchored at both ends (`^(?:re)$`), as
/// Tempo treats every TraceQL regex.
#[derive(Clone, Debug)]
pub struct Pattern {
    pub source: String,
    pub regex: Regex,
}

/// A span or trace property that is not an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intrinsic {
    /// `name`, `span:name`.
    Name,
    /// `status`, `span:status`.
    Status,
    /// `statusMessage`, `span:statusMessage`.
    StatusMessage,
    /// `kind`, `span:kind`.
    Kind,
    /// `duration`, `span:duration`.
    Duration,
    /// `span:id`: the span id as 16 lowercase hex digits.
    SpanId,
    /// `span:parentID`: the parent span id as hex; nil for a root.
    ParentId,
    /// `rootName`, `trace:rootName`: the root span's name.
    RootName,
    /// `rootServiceName`, `trace:rootService`: the root span's `service.name`.
    RootServiceName,
    /// `traceDuration`, `trace:duration`: latest end minus earliest start in the trace.
    TraceDuration,
}

/// Where an attribute is looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `span.x`.
    Span,
    /// `resource.x`.
    Resource,
    /// `.x`: the span attribute if present, else the resource attribute.
    Unscoped,
}

/// An attribute reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub scope: Scope,
    pub name: String,
}

/// `lhs op rhs` between scalar expressions over a spanset: `avg(duration) > 1s`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalarFilter {
    pub op: CompareOp,
    pub lhs: ScalarExpr,
    pub rhs: ScalarExpr,
}

/// A value computed from a whole spanset.
#[derive(Clone, Debug, PartialEq)]
pub enum ScalarExpr {
    Static(Value),
    Aggregate(Aggregate, Option<FieldExpr>),
    Arith {
        op: ArithOp,
        lhs: Box<ScalarExpr>,
        rhs: Box<ScalarExpr>,
    },
}

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// `count()`: the number of spans.
    Count,
    Avg,
    Min,
    Max,
    Sum,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Pattern {
    /// Compiles `source` anchored at both ends.
    ///
    /// # Errors
    ///
    /// Returns the regex crate's error for an invalid pattern.
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        let regex = Regex::new(&format!("^(?:{source})$"))?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }
}

impl CompareOp {
    /// Returns the operator's symbol.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Neq => "!=",
            CompareOp::Lt => "<",
            CompareOp::Lte => "<=",
            CompareOp::Gt => ">",
            CompareOp::Gte => ">=",
        }
    }
}

impl Intrinsic {
    /// Returns the name the query language spells it with.
    pub fn as_str(self) -> &'static str {
        match self {
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::StatusMessage => "statusMessage",
            Intrinsic::Kind => "kind",
            Intrinsic::Duration => "duration",
            Intrinsic::SpanId => "span:id",
            Intrinsic::ParentId => "span:parentID",
            Intrinsic::RootName => "rootName",
            Intrinsic::RootServiceName => "rootServiceName",
            Intrinsic::TraceDuration => "traceDuration",
        }
    }
}

impl Aggregate {
    /// Returns the function name.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Avg => "avg",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Sum => "sum",
        }
    }
}

impl Relation {
    /// Returns the relation seen from the other side (child <-> parent, ...).
    pub fn inverse(self) -> Relation {
        match self {
            Relation::Child => Relation::Parent,
            Relation::Parent => Relation::Child,
            Relation::Descendant => Relation::Ancestor,
            Relation::Ancestor => Relation::Descendant,
            Relation::Sibling => Relation::Sibling,
        }
    }
}

impl SpansetOp {
    /// Returns the operator's symbol.
    pub fn as_str(self) -> &'static str {
        use Relation::*;
        use StructuralMode::*;
        match self {
            SpansetOp::And => "&&",
            SpansetOp::Or => "||",
            SpansetOp::Structural(rel, mode) => match (mode, rel) {
                (Plain, Child) => ">",
                (Plain, Parent) => "<",
                (Plain, Descendant) => ">>",
                (Plain, Ancestor) => "<<",
                (Plain, Sibling) => "~",
                (Not, Child) => "!>",
                (Not, Parent) => "!<",
                (Not, Descendant) => "!>>",
                (Not, Ancestor) => "!<<",
                (Not, Sibling) => "!~",
                (Union, Child) => "&>",
                (Union, Parent) => "&<",
                (Union, Descendant) => "&>>",
                (Union, Ancestor) => "&<<",
                (Union, Sibling) => "&~",
            },
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.scope {
            Scope::Span => "span.",
            Scope::Resource => "resource.",
            Scope::Unscoped => ".",
        };
        let plain = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| !c.is_whitespace() && !"{}()=~!<>&|^,\"".contains(c));
        if plain {
            write!(f, "{prefix}{}", self.name)
        } else {
            write!(f, "{prefix}{:?}", self.name)
        }
    }
}

impl fmt::Display for FieldExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldExpr::Static(v) => write!(f, "{v}"),
            FieldExpr::Intrinsic(i) => f.write_str(i.as_str()),
            FieldExpr::Attribute(a) => write!(f, "{a}"),
            FieldExpr::Compare { op, lhs, rhs } => write!(f, "({lhs} {} {rhs})", op.as_str()),
            FieldExpr::Regex {
                negated,
                lhs,
                pattern,
            } => {
                let op = if *negated { "!~" } else { "=~" };
                write!(f, "({lhs} {op} {:?})", pattern.source)
            }
            FieldExpr::Arith { op, lhs, rhs } => write!(f, "({lhs} {} {rhs})", op.as_str()),
            FieldExpr::And(l, r) => write!(f, "({l} && {r})"),
            FieldExpr::Or(l, r) => write!(f, "({l} || {r})"),
            FieldExpr::Not(e) => write!(f, "!{e}"),
            FieldExpr::Neg(e) => write!(f, "-{e}"),
        }
    }
}

impl fmt::Display for ScalarExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScalarExpr::Static(v) => write!(f, "{v}"),
            ScalarExpr::Aggregate(a, None) => write!(f, "{}()", a.as_str()),
            ScalarExpr::Aggregate(a, Some(e)) => write!(f, "{}({e})", a.as_str()),
            ScalarExpr::Arith { op, lhs, rhs } => write!(f, "({lhs} {} {rhs})", op.as_str()),
        }
    }
}

impl fmt::Display for SpansetExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpansetExpr::Filter(FieldExpr::Static(Value::Bool(true))) => f.write_str("{ }"),
            SpansetExpr::Filter(e) => write!(f, "{{ {e} }}"),
            SpansetExpr::Binary { op, lhs, rhs } => write!(f, "({lhs} {} {rhs})", op.as_str()),
            SpansetExpr::Pipeline(p) => write!(f, "({p})"),
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, name: &str, fields: &[FieldExpr]| {
            write!(f, "{name}(")?;
            for (i, e) in fields.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{e}")?;
            }
            f.write_str(")")
        };
        match self {
            Stage::Spanset(e) => write!(f, "{e}"),
            Stage::Scalar(s) => write!(f, "{} {} {}", s.lhs, s.op.as_str(), s.rhs),
            Stage::By(fields) => list(f, "by", fields),
            Stage::Select(fields) => list(f, "select", fields),
        }
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.stages.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.pipeline)
    }
}
