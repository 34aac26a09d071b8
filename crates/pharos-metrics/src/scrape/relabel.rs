//! Prometheus' `relabel_configs` and `metric_relabel_configs`.
//!
//! A [`RelabelConfig`] is built (and its regex compiled, anchored as Prometheus anchors it:
//! `^(?s:...)$`) from a [`RelabelSpec`], the plain settings as they appear in
//! configuration. [`process`] runs a list of them over a label set and returns `None`
//! when a `keep`/`drop`-style step drops it. The semantics follow Prometheus'
//! `model/relabel/relabel.go`, including `replacement` expansion (`$1`, `${1}`, `$name`,
//! `$$`), which the `regex` crate's `Captures::expand` implements with Go's rules.

use std::collections::BTreeMap;

use regex::Regex;

use crate::store::Labels;

/// What a relabel step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Sets `target_label` to the expanded `replacement` when `regex` matches.
    #[default]
    Replace,
    /// Drops the set unless `regex` matches the joined source values.
    Keep,
    /// Drops the set when `regex` matches the joined source values.
    Drop,
    /// Drops the set unless the joined source values equal `target_label`'s value.
    KeepEqual,
    /// Drops the set when the joined source values equal `target_label`'s value.
    DropEqual,
    /// Sets `target_label` to the MD5 of the joined source values modulo `modulus`.
    HashMod,
    /// Copies every label whose name matches `regex` to the name `replacement` expands to.
    LabelMap,
    /// Removes the labels whose names match `regex`.
    LabelDrop,
    /// Removes the labels whose names do not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the joined source values, lowercased.
    Lowercase,
    /// Sets `target_label` to the joined source values, uppercased.
    Uppercase,
}

impl Action {
    /// Parses an action name as Prometheus does: case-insensitively.
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s.to_ascii_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            _ => return None,
        })
    }
}

/// One relabel step as configured; `None` means Prometheus' default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RelabelSpec {
    /// Labels whose values are joined with `separator` into the source value.
    pub source_labels: Vec<String>,
    /// Default `;`.
    pub separator: Option<String>,
    /// Default `(.*)`; anchored at both ends.
    pub regex: Option<String>,
    /// Required by `hashmod`.
    pub modulus: Option<u64>,
    /// Required by `replace`, `hashmod`, `lowercase`, `uppercase`, `keepequal`, `dropequal`.
    pub target_label: Option<String>,
    /// Default `$1`.
    pub replacement: Option<String>,
    /// Default [`Action::Replace`].
    pub action: Action,
}

/// A validated relabel step with its regex compiled.
#[derive(Debug, Clone)]
pub struct RelabelConfig {
    source_labels: Vec<String>,
    separator: String,
    regex: Regex,
    modulus: u64,
    target_label: String,
    replacement: String,
    action: Action,
}

/// Why a relabel step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelabelError {
    /// `regex` does not compile.
    #[error("invalid regex {regex:?}: {message}")]
    Regex {
        /// The regex as configured.
        regex: String,
        /// The compiler's message.
        message: String,
    },
    /// A setting is missing, superfluous or invalid for the action.
    #[error("{0}")]
    Invalid(String),
}

const DEFAULT_REGEX: &str = "(.*)";

impl RelabelConfig {
    /// Validates `spec` as Prometheus does and compiles its regex.
    ///
    /// # Errors
    /// [`RelabelError`] naming the bad regex or setting.
    pub fn new(spec: RelabelSpec) -> Result<RelabelConfig, RelabelError> {
        let invalid = |m: String| Err(RelabelError::Invalid(m));
        let action = spec.action;
        let regex_src = spec.regex.clone().unwrap_or_else(|| DEFAULT_REGEX.into());
        let regex =
            Regex::new(&format!("^(?s:{regex_src})$")).map_err(|e| RelabelError::Regex {
                regex: regex_src.clone(),
                message: e.to_string(),
            })?;
        let target = spec.target_label.clone().unwrap_or_default();
        let needs_target = matches!(
            action,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        let name = format!("{action:?}").to_ascii_lowercase();
        if needs_target && target.is_empty() {
            return invalid(format!(
                "relabel configuration for {name} action requires 'target_label' value"
            ));
        }
        if needs_target && action != Action::Replace && !is_label_name(&target) {
            return invalid(format!(
                "{target:?} is invalid 'target_label' for {name} action"
            ));
        }
        if action == Action::Replace && !target.contains('$') && !is_label_name(&target) {
            return invalid(format!(
                "{target:?} is invalid 'target_label' for replace action"
            ));
        }
        if action == Action::HashMod && spec.modulus.unwrap_or(0) == 0 {
            return invalid("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(action, Action::KeepEqual | Action::DropEqual)
            && (spec.regex.is_some()
                || spec.modulus.is_some()
                || spec.separator.is_some()
                || spec.replacement.is_some())
        {
            return invalid(format!(
                "{name} action requires only 'source_labels' and 'target_label', and no other fields"
            ));
        }
        if matches!(action, Action::LabelDrop | Action::LabelKeep)
            && (!spec.source_labels.is_empty()
                || spec.target_label.is_some()
                || spec.modulus.is_some()
                || spec.separator.is_some()
                || spec.replacement.is_some())
        {
            return invalid(format!(
                "{name} action requires only 'regex', and no other fields"
            ));
        }
        if let Some(bad) = spec.source_labels.iter().find(|l| !is_label_name(l)) {
            return invalid(format!(
                "{bad:?} is not a valid label name in 'source_labels'"
            ));
        }
        Ok(RelabelConfig {
            source_labels: spec.source_labels,
            separator: spec.separator.unwrap_or_else(|| ";".into()),
            regex,
            modulus: spec.modulus.unwrap_or(0),
            target_label: target,
            replacement: spec.replacement.unwrap_or_else(|| "$1".into()),
            action,
        })
    }
}

/// Returns whether `s` is a label name in the legacy character set; Prometheus 3 also
/// accepts any UTF-8, but relabeling targets stay with the safe set for now.
fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Runs `configs` in order over `labels`; `None` when a step drops the set.
pub fn process(labels: &Labels, configs: &[RelabelConfig]) -> Option<Labels> {
    if configs.is_empty() {
        return Some(labels.clone());
    }
    let mut map: BTreeMap<String, String> = labels.pairs().iter().cloned().collect();
    for cfg in configs {
        if !relabel(cfg, &mut map) {
            return None;
        }
    }
    Some(Labels::from_pairs(map))
}

/// Applies one step in place; returns false when the set is dropped.
fn relabel(cfg: &RelabelConfig, lb: &mut BTreeMap<String, String>) -> bool {
    let get = |lb: &BTreeMap<String, String>, k: &str| lb.get(k).cloned().unwrap_or_default();
    let val = cfg
        .source_labels
        .iter()
        .map(|l| get(lb, l))
        .collect::<Vec<_>>()
        .join(&cfg.separator);
    let set = |lb: &mut BTreeMap<String, String>, k: String, v: String| {
        if v.is_empty() {
            lb.remove(&k);
        } else {
            lb.insert(k, v);
        }
    };
    match cfg.action {
        Action::Drop => return !cfg.regex.is_match(&val),
        Action::Keep => return cfg.regex.is_match(&val),
        Action::DropEqual => return get(lb, &cfg.target_label) != val,
        Action::KeepEqual => return get(lb, &cfg.target_label) == val,
        Action::Replace => {
            let Some(caps) = cfg.regex.captures(&val) else {
                return true;
            };
            let mut target = String::new();
            caps.expand(&cfg.target_label, &mut target);
            if !is_label_name(&target) {
                return true;
            }
            let mut res = String::new();
            caps.expand(&cfg.replacement, &mut res);
            set(lb, target, res);
        }
        Action::Lowercase => set(lb, cfg.target_label.clone(), val.to_lowercase()),
        Action::Uppercase => set(lb, cfg.target_label.clone(), val.to_uppercase()),
        Action::HashMod => {
            let hash = md5(val.as_bytes());
            // Prometheus uses the last 8 bytes, big-endian.
            let tail = u64::from_be_bytes(hash[8..].try_into().expect("BUG: md5 is 16 bytes"));
            set(
                lb,
                cfg.target_label.clone(),
                (tail % cfg.modulus).to_string(),
            );
        }
        Action::LabelMap => {
            let snapshot: Vec<(String, String)> =
                lb.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            for (name, value) in snapshot {
                if let Some(caps) = cfg.regex.captures(&name) {
                    let mut res = String::new();
                    caps.expand(&cfg.replacement, &mut res);
                    set(lb, res, value);
                }
            }
        }
        Action::LabelDrop => lb.retain(|k, _| !cfg.regex.is_match(k)),
        Action::LabelKeep => lb.retain(|k, _| cfg.regex.is_match(k)),
    }
    true
}

/// MD5 (RFC 1321), for `hashmod` only: Prometheus' sharding depends on this exact hash.
fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: [u32; 64] =
        std::array::from_fn(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32);
    let mut msg = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    let mut h: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for chunk in msg.chunks_exact(64) {
        let m: [u32; 16] = std::array::from_fn(|i| {
            u32::from_le_bytes(chunk[i * 4..i * 4 + 4].try_into().expect("BUG: 4 bytes"))
        });
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        h = [
            h[0].wrapping_add(a),
            h[1].wrapping_add(b),
            h[2].wrapping_add(c),
            h[3].wrapping_add(d),
        ];
    }
    let mut out = [0u8; 16];
    for (i, w) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests;
