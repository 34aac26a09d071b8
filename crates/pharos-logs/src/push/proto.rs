//! Loki's push protobuf (`logproto.PushRequest`), written by hand with prost's derive.
//!
//! Field numbers and types are those of Loki's `pkg/push/push.proto`; the labels of a
//! stream travel as one string in selector form, `{app="api", env="prod"}`.

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    /// The streams, each with its entries.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<Stream>,
}

/// `logproto.StreamAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Stream {
    /// The stream's labels in selector form.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// The entries.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<Entry>,
    /// A hash of the labels some clients send; ignored.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// When the line was logged.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The log line.
    #[prost(string, tag = "2")]
    pub line: String,
    /// Structured metadata.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPair>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second, 0..1e9.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LabelPair {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

impl Timestamp {
    /// The timestamp of `ns` Unix nanoseconds.
    pub fn from_nanos(ns: i64) -> Self {
        Self {
            seconds: ns.div_euclid(1_000_000_000),
            nanos: ns.rem_euclid(1_000_000_000) as i32,
        }
    }

    /// Unix nanoseconds, saturating at the ends of `i64`.
    pub fn to_nanos(self) -> i64 {
        self.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(self.nanos))
    }
}

impl Entry {
    /// Unix nanoseconds; 0 when the entry has no timestamp.
    pub fn ts_ns(&self) -> i64 {
        self.timestamp.map_or(0, Timestamp::to_nanos)
    }
}

impl LabelPair {
    /// A pair.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}
