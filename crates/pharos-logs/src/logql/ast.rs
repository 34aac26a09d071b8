//! The parsed form of a log query.

use regex::Regex;

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
}

/// A line filter, such as `|= "error"`.
#[derive(Debug, Clone)]
pub struct LineFilter {
    /// The operator.
    pub op: FilterOp,
    /// The string or regular expression, unquoted.
    pub value: String,
    re: Option<Regex>,
}

/// A log query: a stream selector and the line filters applied in order.
#[derive(Debug, Clone)]
pub struct LogSelector {
    /// The stream selector's matchers, all of which must hold.
    pub matchers: Vec<LabelMatcher>,
    /// The line filters, all of which must hold.
    pub filters: Vec<LineFilter>,
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

impl LineFilter {
    /// Returns a line filter, compiling its regex for `|~` and `!~`.
    ///
    /// # Errors
    ///
    /// Returns the regex compiler's message when `value` is not a valid regex.
    pub fn new(op: FilterOp, value: &str) -> Result<Self, String> {
        let re = match op {
            FilterOp::Match | FilterOp::NotMatch => {
                Some(Regex::new(value).map_err(|e| regex_error(&e))?)
            }
            _ => None,
        };
        Ok(Self {
            op,
            value: value.into(),
            re,
        })
    }

    /// Returns whether `line` passes the filter.
    pub fn matches(&self, line: &str) -> bool {
        match (self.op, &self.re) {
            (FilterOp::Contains, _) => line.contains(&self.value),
            (FilterOp::NotContains, _) => !line.contains(&self.value),
            (FilterOp::Match, Some(re)) => re.is_match(line),
            (FilterOp::NotMatch, Some(re)) => !re.is_match(line),
            _ => unreachable!("BUG: regex filter without a compiled regex"),
        }
    }
}

impl LogSelector {
    /// Returns whether a stream with these labels is selected.
    pub fn matches_stream(&self, labels: &crate::store::Labels) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.name).map_or("", String::as_str)))
    }

    /// Returns whether a line passes every line filter.
    pub fn matches_line(&self, line: &str) -> bool {
        self.filters.iter().all(|f| f.matches(line))
    }
}

fn regex_error(e: &regex::Error) -> String {
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
