//! Per-series compressed chunks (work in progress).
