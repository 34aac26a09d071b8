//! Label-set edits the evaluator needs: dropping the metric name, keeping or removing
//! names, setting a value.

use crate::store::{Labels, METRIC_NAME};

/// Returns `l` without `__name__`.
pub(super) fn drop_name(l: &Labels) -> Labels {
    if l.get(METRIC_NAME).is_none() {
        return l.clone();
    }
    Labels::from_pairs(
        l.pairs()
            .iter()
            .filter(|(k, _)| k != METRIC_NAME)
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// Returns the labels of `l` named in `names`.
pub(super) fn keep(l: &Labels, names: &[String]) -> Labels {
    Labels::from_pairs(
        l.pairs()
            .iter()
            .filter(|(k, _)| names.contains(k))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// Returns the labels of `l` not named in `names`, `__name__` removed too.
pub(super) fn without(l: &Labels, names: &[String]) -> Labels {
    Labels::from_pairs(
        l.pairs()
            .iter()
            .filter(|(k, _)| k != METRIC_NAME && !names.contains(k))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// Returns `l` with label `name` set to `value`, or removed when `value` is empty.
pub(super) fn set(l: &Labels, name: &str, value: &str) -> Labels {
    Labels::from_pairs(
        l.pairs()
            .iter()
            .filter(|(k, _)| k != name)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(std::iter::once((name, value))),
    )
}

/// Returns whether `s` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub(super) fn is_valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits() {
        let l = Labels::from_pairs([("__name__", "m"), ("a", "1"), ("b", "2")]);
        assert_eq!(drop_name(&l).to_string(), r#"{a="1", b="2"}"#);
        assert_eq!(
            keep(&l, &["b".into(), "__name__".into()]).to_string(),
            r#"{__name__="m", b="2"}"#
        );
        assert_eq!(without(&l, &["a".into()]).to_string(), r#"{b="2"}"#);
        assert_eq!(set(&l, "a", "").to_string(), r#"{__name__="m", b="2"}"#);
        assert_eq!(
            set(&l, "c", "3").to_string(),
            r#"{__name__="m", a="1", b="2", c="3"}"#
        );
        assert!(is_valid_name("_a1") && !is_valid_name("1a") && !is_valid_name(""));
    }
}
