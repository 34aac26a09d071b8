//! Label matchers, the store's selection language.

use regex::Regex;

/// How a [`Matcher`] compares a label's value.
#[derive(Debug, Clone)]
pub enum MatchKind {
    /// `=`: the value equals the string.
    Equal(String),
    /// `!=`: the value differs from the string.
    NotEqual(String),
    /// `=~`: the value matches the regex, anchored at both ends.
    Re(Regex),
    /// `!~`: the value does not match the regex, anchored at both ends.
    NotRe(Regex),
}

/// One label matcher; an absent label matches as the empty string, as in Prometheus.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub kind: MatchKind,
}

impl Matcher {
    /// Returns an equality matcher.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            kind: MatchKind::Equal(value.into()),
        }
    }

    /// Returns a regex matcher (`=~` when `negate` is false, `!~` otherwise), anchored the
    /// way Prometheus anchors them: `^(?s:re)$`.
    ///
    /// # Errors
    ///
    /// Returns the regex crate's message when `re` does not compile.
    pub fn regex(name: impl Into<String>, re: &str, negate: bool) -> Result<Matcher, String> {
        let compiled = compile_anchored(re)?;
        let kind = if negate {
            MatchKind::NotRe(compiled)
        } else {
            MatchKind::Re(compiled)
        };
        Ok(Matcher {
            name: name.into(),
            kind,
        })
    }

    /// Returns whether `value` (empty for an absent label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match &self.kind {
            MatchKind::Equal(v) => v == value,
            MatchKind::NotEqual(v) => v != value,
            MatchKind::Re(re) => re.is_match(value),
            MatchKind::NotRe(re) => !re.is_match(value),
        }
    }
}

/// Compiles `re` as Prometheus does, fully anchored with `.` matching newlines.
///
/// Go's RE2 reads a `{` that does not start a repetition as a literal; Rust's `regex`
/// refuses it, so such braces are escaped before a second attempt.
fn compile_anchored(re: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?s:{re})$")).or_else(|first| {
        let escaped = escape_literal_braces(re);
        Regex::new(&format!("^(?s:{escaped})$")).map_err(|_| first.to_string())
    })
}

fn escape_literal_braces(re: &str) -> String {
    let chars: Vec<char> = re.chars().collect();
    let mut out = String::with_capacity(re.len() + 4);
    let mut in_repetition = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            out.push(c);
            out.push(chars[i + 1]);
            i += 2;
            continue;
        }
        match c {
            '{' if is_repetition(&chars[i + 1..]) => {
                in_repetition = true;
                out.push(c);
            }
            '{' => out.push_str("\\{"),
            '}' if in_repetition => {
                in_repetition = false;
                out.push(c);
            }
            '}' => out.push_str("\\}"),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

fn is_repetition(rest: &[char]) -> bool {
    let Some(end) = rest.iter().position(|&c| c == '}') else {
        return false;
    };
    let body: String = rest[..end].iter().collect();
    let mut parts = body.splitn(2, ',');
    let first = parts.next().unwrap_or("");
    let second = parts.next();
    !first.is_empty()
        && first.chars().all(|c| c.is_ascii_digit())
        && second.is_none_or(|s| s.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored_and_dot_matches_newline() {
        let m = Matcher::regex("a", "fo.", false).unwrap();
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"));
        assert!(!m.matches("foox"));
        assert!(m.matches("fo\n"));
        let m = Matcher::regex("a", "a|b", false).unwrap();
        assert!(m.matches("a") && m.matches("b") && !m.matches("ab"));
    }

    #[test]
    fn go_style_literal_braces_compile() {
        let m = Matcher::regex("a", "x{y}", false).unwrap();
        assert!(m.matches("x{y}"));
        let m = Matcher::regex("a", "x{2}", false).unwrap();
        assert!(m.matches("xx"));
    }

    #[test]
    fn absent_label_matches_as_empty() {
        assert!(
            Matcher {
                name: "a".into(),
                kind: MatchKind::NotEqual("x".into())
            }
            .matches("")
        );
        assert!(Matcher::regex("a", "x|", false).unwrap().matches(""));
    }
}
