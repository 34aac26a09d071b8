//! Evaluating a [`LogSelector`] against the [`LogStore`].

use crate::store::{Direction, LogStore, SelectedStream};

use super::ast::LogSelector;

/// The time range, order and size of a log query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryParams {
    /// Start, unix nanoseconds, inclusive.
    pub start_ns: i64,
    /// End, unix nanoseconds, exclusive.
    pub end_ns: i64,
    /// Order of the returned entries.
    pub direction: Direction,
    /// Most entries returned, across all streams.
    pub limit: usize,
}

/// Returns the streams and entries `sel` selects, at most `params.limit` entries.
pub fn select(store: &LogStore, sel: &LogSelector, params: &QueryParams) -> Vec<SelectedStream> {
    store.select(
        |labels| sel.matches_stream(labels),
        |entry| sel.matches_line(&entry.line),
        params.start_ns,
        params.end_ns,
        params.direction,
        params.limit,
    )
}
