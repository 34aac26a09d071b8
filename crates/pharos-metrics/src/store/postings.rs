//! The inverted index shared by the head and the blocks: label name → label value → the
//! series (by ordinal) that carry the pair, as roaring bitmaps.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use super::matcher::Matcher;

/// label name → label value → series ordinals.
pub(crate) type Index = BTreeMap<String, BTreeMap<String, RoaringBitmap>>;

/// Returns the ordinals of the series every matcher accepts; `all` holds every ordinal.
///
/// Matchers that reject the empty string narrow fastest, so they run first; a matcher that
/// accepts it also accepts the series without the label, so it subtracts the values it
/// rejects instead of adding the ones it accepts.
pub(crate) fn select(index: &Index, all: &RoaringBitmap, matchers: &[Matcher]) -> RoaringBitmap {
    let mut ordered: Vec<&Matcher> = matchers.iter().collect();
    ordered.sort_by_key(|m| m.matches(""));
    let mut result: Option<RoaringBitmap> = None;
    for m in ordered {
        let values = index.get(&m.name);
        let pick = |accept: bool| {
            let mut out = RoaringBitmap::new();
            for (v, ids) in values.into_iter().flatten() {
                if m.matches(v) == accept {
                    out |= ids;
                }
            }
            out
        };
        let ids = if m.matches("") {
            let excluded = pick(false);
            match result {
                Some(r) => r - excluded,
                None => all - &excluded,
            }
        } else {
            let included = pick(true);
            match result {
                Some(r) => r & included,
                None => included,
            }
        };
        if ids.is_empty() {
            return ids;
        }
        result = Some(ids);
    }
    result.unwrap_or_else(|| all.clone())
}
