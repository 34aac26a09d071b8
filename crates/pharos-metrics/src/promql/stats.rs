//! What one evaluation cost, counted as Prometheus' `util/stats` counts it: where the time
//! went, how many samples the query loaded, and the most it held at once.
//!
//! `total_queryable_samples` follows Prometheus' definition: per step, every sample an
//! instant selector returns, every point a range selector's window holds (stale markers
//! excluded), summed over the steps. A subquery that feeds a function counts as the points
//! of its result inside the function's window, not what its own selectors read (Prometheus
//! counts the inner reads of a subquery only when the subquery is the whole query).
//!
//! `peak_samples` is the evaluator's own high-water mark of the count the max-samples
//! limit is checked against ([`super::QueryOptions::max_samples`]). This evaluator works a
//! step at a time where Prometheus works an expression at a time, so for range queries and
//! nested expressions the peak differs from Prometheus' (it is usually lower).

use std::time::Duration;

/// Where a query's time went, as Prometheus' query timers name it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Preparation, evaluation and result assembly (`evalTotalTime`).
    pub eval_total: Duration,
    /// Putting a matrix result in order (`resultSortTime`); zero for other results.
    pub result_sort: Duration,
    /// Planning which spans the selectors read (`queryPreparationTime`).
    pub query_preparation: Duration,
    /// Evaluating the expression (`innerEvalTime`).
    pub inner_eval: Duration,
    /// Waiting for a query slot (`execQueueTime`): always zero, Pharos has no queue.
    pub exec_queue: Duration,
    /// The whole execution, queue included (`execTotalTime`).
    pub exec_total: Duration,
}

/// The statistics of one successful evaluation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Where the time went.
    pub timings: Timings,
    /// Samples loaded, summed over the steps (see the module docs).
    pub total_queryable_samples: u64,
    /// The most samples held at once (see the module docs).
    pub peak_samples: usize,
    /// `(step timestamp in ms, samples loaded at that step)` for every step, when
    /// [`super::QueryOptions::per_step_stats`] asked for them.
    pub per_step: Option<Vec<(i64, u64)>>,
}
