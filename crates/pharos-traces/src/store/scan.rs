//! Scans over every trace fragment the store holds: the head, the frozen parts, then the
//! blocks, newest first, skipping the pages a [`Visitor`] rules out by their summaries.
//! Searches keep the newest hits in [`Newest`], which also tells when no older block can
//! add one, so a search stops without reading the rest.

use std::collections::HashMap;
use std::ops::ControlFlow;

use super::block::{BlockMeta, PageRows, PageSummary};
use super::head::{HeadRows, HeadTrace};
use super::{FastMap, Trace, TraceId, TraceStore};

/// What a scan tests of a trace before it rebuilds it: the columns of a block's page
/// ([`PageRows`], trace `t` of the page) or a head trace read in place ([`HeadRows`],
/// `t` = 0). Spans are numbered as [`Columns::spans`] gives them.
pub(crate) trait Columns {
    fn spans(&self, t: usize) -> std::ops::Range<usize>;
    fn service(&self, k: usize) -> &str;
    fn name(&self, k: usize) -> &str;
    fn kind(&self, k: usize) -> i32;
    fn status(&self, k: usize) -> i32;
    /// The span's duration; 0 for a span that ends before it starts.
    fn duration(&self, k: usize) -> u64;
    fn start(&self, t: usize, k: usize) -> u64;
    /// The value of the first string span attribute `key` (given by a string key).
    fn attr(&self, k: usize, key: &str) -> Option<&str>;
}

impl Columns for PageRows {
    fn spans(&self, t: usize) -> std::ops::Range<usize> {
        PageRows::spans(self, t)
    }
    fn service(&self, k: usize) -> &str {
        PageRows::service(self, k)
    }
    fn name(&self, k: usize) -> &str {
        PageRows::name(self, k)
    }
    fn kind(&self, k: usize) -> i32 {
        PageRows::kind(self, k)
    }
    fn status(&self, k: usize) -> i32 {
        PageRows::status(self, k)
    }
    fn duration(&self, k: usize) -> u64 {
        PageRows::duration(self, k)
    }
    fn start(&self, t: usize, k: usize) -> u64 {
        PageRows::start(self, t, k)
    }
    fn attr(&self, k: usize, key: &str) -> Option<&str> {
        PageRows::attr(self, k, key)
    }
}

/// What a scan calls back.
pub(crate) trait Visitor {
    /// Returns whether a page may hold a trace the visitor wants.
    fn page_ok(&mut self, _page: &PageSummary) -> bool {
        true
    }

    /// Returns whether trace `t` of a block page (or a head trace) may be wanted, by its
    /// columns; only those are rebuilt and visited.
    fn row_ok(&mut self, _rows: &dyn Columns, _t: usize) -> bool {
        true
    }

    /// Called before a block's pages are read; `Break` ends the scan.
    fn enter_block(&mut self, _meta: &BlockMeta) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    /// Called with each trace fragment overlapping the window; `Break` ends the scan.
    fn visit(&mut self, id: &TraceId, trace: &Trace) -> ControlFlow<()>;
}

/// Visits every fragment with a closure.
pub(crate) struct Each<F>(pub F);

impl<F: FnMut(&TraceId, &Trace)> Visitor for Each<F> {
    fn visit(&mut self, id: &TraceId, trace: &Trace) -> ControlFlow<()> {
        (self.0)(id, trace);
        ControlFlow::Continue(())
    }
}

/// The `limit` hits with the latest start (ties by trace id), each with a payload.
pub(crate) struct Newest<T> {
    limit: usize,
    hits: HashMap<TraceId, (u64, T)>,
}

impl<T> Newest<T> {
    pub(crate) fn new(limit: usize) -> Self {
        Newest {
            limit,
            hits: HashMap::new(),
        }
    }

    /// Adds a hit; a trace found twice (fragments, duplicates) keeps its first payload and
    /// its latest start.
    pub(crate) fn add(&mut self, id: TraceId, start_ns: u64, payload: T) {
        self.hits
            .entry(id)
            .and_modify(|h| h.0 = h.0.max(start_ns))
            .or_insert((start_ns, payload));
        if self.hits.len() > 2 * self.limit.max(16) {
            self.trim();
        }
    }

    fn trim(&mut self) {
        let mut all: Vec<(TraceId, (u64, T))> = self.hits.drain().collect();
        all.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
        all.truncate(self.limit);
        self.hits = all.into_iter().collect();
    }

    /// Returns whether `limit` hits all started after `t`: a fragment that ended by `t`
    /// (so started by then) cannot enter.
    pub(crate) fn full_after(&self, t: u64) -> bool {
        if self.limit == 0 {
            return true;
        }
        if self.hits.len() < self.limit {
            return false;
        }
        let mut starts: Vec<u64> = self.hits.values().map(|h| h.0).collect();
        let k = self.limit - 1;
        let (_, kth, _) = starts.select_nth_unstable_by(k, |a, b| b.cmp(a));
        *kth > t
    }

    /// Returns the hits, latest start first, at most `limit`.
    pub(crate) fn into_sorted(mut self) -> Vec<(TraceId, u64, T)> {
        self.trim();
        let mut all: Vec<(TraceId, u64, T)> = self
            .hits
            .into_iter()
            .map(|(id, (s, p))| (id, s, p))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all
    }
}

/// A search: pages pruned by `page_ok`, each fragment tested by `visit` (a payload for a
/// hit), the newest hits kept, blocks that cannot add one skipped.
pub(crate) struct Filtered<'a, P, R, V, T> {
    pub(crate) page_ok: P,
    pub(crate) row_ok: R,
    pub(crate) newest: &'a mut Newest<T>,
    pub(crate) visit: V,
}

impl<P, R, V, T> Visitor for Filtered<'_, P, R, V, T>
where
    P: FnMut(&PageSummary) -> bool,
    R: FnMut(&dyn Columns, usize) -> bool,
    V: FnMut(&TraceId, &Trace) -> Option<T>,
{
    fn page_ok(&mut self, page: &PageSummary) -> bool {
        (self.page_ok)(page)
    }

    fn row_ok(&mut self, rows: &dyn Columns, t: usize) -> bool {
        (self.row_ok)(rows, t)
    }

    fn enter_block(&mut self, meta: &BlockMeta) -> ControlFlow<()> {
        // Blocks come newest (latest end) first: once this one cannot add a hit, no
        // later one can.
        if self.newest.full_after(meta.max_time_ns) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn visit(&mut self, id: &TraceId, trace: &Trace) -> ControlFlow<()> {
        if let Some(payload) = (self.visit)(id, trace) {
            self.newest.add(*id, trace.start_ns, payload);
        }
        ControlFlow::Continue(())
    }
}

fn overlaps(trace: &Trace, window: Option<(u64, u64)>) -> bool {
    in_window(trace.start_ns, trace.end_ns, window)
}

fn in_window(start_ns: u64, end_ns: u64, window: Option<(u64, u64)>) -> bool {
    window.is_none_or(|(start, end)| end_ns >= start && start_ns <= end)
}

impl TraceStore {
    /// Visits the trace fragments overlapping `window` (unix nanoseconds, inclusive): the
    /// head's, the frozen parts' (newest first), then the blocks' (newest first, pages in
    /// trace id order). A page that fails to read is logged and skipped.
    pub(crate) fn scan(&self, window: Option<(u64, u64)>, v: &mut dyn Visitor) {
        // A head trace's spans are tested in place, and the trace decoded only if it
        // passes. Returns whether the visitor ended the scan.
        let head = |traces: &FastMap<TraceId, HeadTrace>, v: &mut dyn Visitor| {
            traces.iter().any(|(id, t)| {
                in_window(t.start_ns, t.end_ns, window)
                    && v.row_ok(&HeadRows(t), 0)
                    && v.visit(id, &t.materialize()).is_break()
            })
        };
        // The head's lock is held while it is read, as it was when it kept decoded spans.
        if head(&self.inner.read().traces, v) {
            return;
        }
        let frozen = self.frozen.read().clone();
        for f in frozen.iter().rev() {
            if head(&f.traces, v) {
                return;
            }
        }
        let blocks = self.blocks.read().clone();
        for b in &blocks {
            if window.is_some_and(|(s, e)| !b.overlaps(s, e)) {
                continue;
            }
            if v.enter_block(b.meta()).is_break() {
                return;
            }
            for (i, p) in b.pages().iter().enumerate() {
                if window.is_some_and(|(s, e)| p.max_end_ns < s || p.min_start_ns > e)
                    || !v.page_ok(p)
                {
                    continue;
                }
                match b.read_page_where(i, &mut |rows, t| v.row_ok(rows, t)) {
                    Ok(traces) => {
                        for (id, t) in &traces {
                            if overlaps(t, window) && v.visit(id, t).is_break() {
                                return;
                            }
                        }
                    }
                    Err(error) => tracing::error!(%error, "reading a trace block page failed"),
                }
            }
        }
    }
}
