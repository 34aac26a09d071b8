//! Prometheus remote_write 1.0: wire types, decoding and the write handler (work in progress).
