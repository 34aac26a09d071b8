//! `GET /api/v1/metadata`: metric metadata by family name, as Prometheus' `metricMetadata`
//! (`web/api/v1/api.go`) answers it.
//!
//! `{"<family>":[{"type":"counter","help":"...","unit":""}, ...], ...}`: each family with
//! every distinct (type, help, unit) the store has seen for it.
//!
//! Parameters, with Prometheus' semantics and wording:
//! - `metric`: only this family (exact name); empty or absent means all.
//! - `limit`: at most this many families; absent or negative means no limit, `0` returns
//!   none. Not an integer: 400 `limit must be a number`.
//! - `limit_per_metric`: at most this many entries per family; absent, `0` or negative
//!   means no limit. Not an integer: 400 `limit_per_metric must be a number`.
//!
//! No `warnings` when a limit cuts the answer, as in Prometheus. Where Prometheus keeps
//! whichever families and entries its maps hand it first, Pharos keeps the first families
//! by name and each family's entries in the order they were first seen.

use super::params::Form;
use super::{ApiError, json};
use crate::store::Querier;

/// Parses an optional integer parameter as Go's `strconv.Atoi`; absent or empty is `-1`.
fn number(form: &Form, name: &str) -> Result<i64, ApiError> {
    match form.value(name) {
        "" => Ok(-1),
        s => s
            .parse::<i64>()
            .map_err(|_| ApiError::bad_data(format!("{name} must be a number"))),
    }
}

/// Returns the `data` of a metadata answer.
pub fn metadata(q: &dyn Querier, form: &Form) -> Result<String, ApiError> {
    let limit = number(form, "limit")?;
    let per_metric = number(form, "limit_per_metric")?;
    let metric = form.value("metric");
    let families = q.metric_metadata((!metric.is_empty()).then_some(metric));
    let families = match usize::try_from(limit) {
        Ok(n) => &families[..n.min(families.len())],
        Err(_) => &families[..],
    };
    let per_metric = usize::try_from(per_metric)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(usize::MAX);
    let mut out = String::from("{");
    for (i, (name, entries)) in families.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::string(&mut out, name);
        out.push_str(":[");
        for (j, e) in entries.iter().take(per_metric).enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"type\":\"");
            out.push_str(e.type_name());
            out.push_str("\",\"help\":");
            json::string(&mut out, &e.help);
            out.push_str(",\"unit\":");
            json::string(&mut out, &e.unit);
            out.push('}');
        }
        out.push(']');
    }
    out.push('}');
    Ok(out)
}
