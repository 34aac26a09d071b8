//! `${env:VAR}` expansion, as the Collector does it.
//!
//! `${env:VAR}` and `${VAR}` are replaced by the variable's value (empty when
//! unset, as in the Collector), `${env:VAR:-default}` by the default when the
//! variable is unset or empty, and `$$` by a literal `$`. Expansion happens on
//! the text before parsing, within a line, so error line numbers stay true.

/// Expands the references in `text`, looking variables up with `lookup`.
///
/// # Errors
/// An unterminated `${` or an invalid variable name, with its line.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let line = text[..text.len() - rest.len() + i].matches('\n').count() + 1;
            let end = tail
                .find(['}', '\n'])
                .filter(|&e| tail.as_bytes()[e] == b'}')
                .ok_or_else(|| format!("line {line}: unterminated ${{ in environment reference"))?;
            let inner = &tail[..end];
            let inner = inner.strip_prefix("env:").unwrap_or(inner);
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "line {line}: invalid environment variable name {name:?}"
                ));
            }
            let value = lookup(name).filter(|v| !(v.is_empty() && default.is_some()));
            out.push_str(&value.or(default.map(str::to_string)).unwrap_or_default());
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn check(input: &str, expected: &str) {
        let lookup = |n: &str| match n {
            "HOST" => Some("0.0.0.0".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(expand(input, lookup).unwrap(), expected);
    }

    #[test]
    fn forms() {
        check("endpoint: ${env:HOST}:4317", "endpoint: 0.0.0.0:4317");
        check("endpoint: ${HOST}:4317", "endpoint: 0.0.0.0:4317");
        check("a: ${env:MISSING}", "a: ");
        check("a: ${env:MISSING:-x:y}", "a: x:y");
        check("a: ${env:EMPTY:-d}", "a: d");
        check("a: $$HOST $5", "a: $HOST $5");
    }

    #[test]
    fn errors_name_the_line() {
        let e = expand("a: 1\nb: ${env:OOPS", |_| None).unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = expand("a: ${env:1BAD}", |_| None).unwrap_err();
        assert!(e.contains("invalid environment variable name"), "{e}");
    }
}
