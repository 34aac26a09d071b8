//! HTTP APIs over the trace store: Tempo's trace-by-id endpoints and the Jaeger
//! query API the Jaeger UI uses. The only module of this crate that knows JSON.
//!
//! Each API maps its errors to its own wire shape in one place: Tempo answers
//! with plain text ([`tempo`]), Jaeger with its `{"data":null,...,"errors":[...]}`
//! envelope ([`jaeger`]).

use std::sync::Arc;

use axum::Router;

use crate::store::{TraceId, TraceStore};

pub mod jaeger;
pub mod tempo;

/// Returns the router serving Tempo's `/api/traces/{traceid}`,
/// `/api/v2/traces/{traceid}`, tag endpoints (`/api/search/tags`,
/// `/api/v2/search/tags`, `/api/search/tag/{name}/values`,
/// `/api/v2/search/tag/{name}/values`), `/api/echo` and `/api/status/buildinfo`,
/// and the Jaeger query API under `/jaeger/api`.
pub fn router(store: Arc<TraceStore>) -> Router {
    tempo::router().merge(jaeger::router()).with_state(store)
}

/// Parses a trace id as Tempo and Jaeger accept it: up to 32 hex digits, either
/// case, left-padded with zeros to 128 bits.
///
/// # Errors
///
/// Returns Tempo's message when the id is empty, holds a non-hex character, or is
/// longer than 128 bits.
pub fn parse_trace_id(id: &str) -> Result<TraceId, String> {
    if id.is_empty() {
        return Err("trace IDs can't be empty".to_string());
    }
    if let Some((pos, c)) = id.chars().enumerate().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "trace IDs can only contain hex characters: invalid character '{c}' at position {}",
            pos + 1
        ));
    }
    if id.len() > 32 {
        return Err("trace IDs can't be larger than 128 bits".to_string());
    }
    let padded = format!("{id:0>32}");
    let mut out = [0u8; 16];
    hex::decode_to_slice(&padded, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests;
