//! The remote_write 1.0 wire types: `prometheus.WriteRequest` and what it holds, written
//! by hand from Prometheus' `prompb/remote.proto` and `prompb/types.proto`.
//!
//! Field numbers and types are the public proto's, so these structs decode what any
//! remote_write 1.0 sender (Prometheus, Grafana Agent/Alloy, vmagent, the Collector's
//! `prometheusremotewrite` exporter) sends. [`Histogram`] is declared only as far as
//! Pharos reads it: native histograms are refused, so their other fields are skipped
//! when decoding.

/// `prometheus.WriteRequest`: one remote_write 1.0 request body (after snappy).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series and their samples. A series may appear more than once in a request:
    /// Prometheus puts each sample in a `TimeSeries` of its own.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    // Field 2 is reserved in the proto.
    /// Metric metadata (type, help, unit), sent by Prometheus in requests of their own.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`: one series' labels and some of its samples.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// The labels, `__name__` included; senders sort them by name, receivers must not rely
    /// on it.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples in increasing time order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Exemplars of this series.
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Native histogram samples (remote_write 1.0 as extended by Prometheus 2.40).
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.Label`: one label pair.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: one float sample.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`: a sample of a trace that contributed to a series.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Optional labels, such as `trace_id`.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.Histogram`, reduced to its timestamp (field 15): Pharos refuses native
/// histograms and only needs to count them.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Histogram {
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`: what a metric family is.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// A [`MetricType`].
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `prometheus.MetricMetadata.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    Unknown = 0,
    Counter = 1,
    Gauge = 2,
    Histogram = 3,
    Gaugehistogram = 4,
    Summary = 5,
    Info = 6,
    Stateset = 7,
}

impl Label {
    /// Returns a label pair.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn request() -> WriteRequest {
        WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("__name__", "up"), Label::new("job", "node")],
                samples: vec![
                    Sample {
                        value: 1.0,
                        timestamp: 1_700_000_000_000,
                    },
                    Sample {
                        value: f64::from_bits(crate::store::STALE_NAN_BITS),
                        timestamp: 1_700_000_001_000,
                    },
                ],
                exemplars: vec![Exemplar {
                    labels: vec![Label::new("trace_id", "abc")],
                    value: 0.5,
                    timestamp: 1_700_000_000_500,
                }],
                histograms: vec![],
            }],
            metadata: vec![MetricMetadata {
                r#type: MetricType::Gauge as i32,
                metric_family_name: "up".into(),
                help: "Whether the target is up.".into(),
                unit: String::new(),
            }],
        }
    }

    #[test]
    fn round_trip_keeps_everything_stale_markers_included() {
        let req = request();
        let back = WriteRequest::decode(req.encode_to_vec().as_slice()).unwrap();
        // PartialEq on f64 fails for NaN; compare the bits of the stale marker.
        let bits = |r: &WriteRequest| r.timeseries[0].samples[1].value.to_bits();
        assert_eq!(bits(&back), crate::store::STALE_NAN_BITS);
        assert_eq!(back.encode_to_vec(), req.encode_to_vec());
        assert_eq!(back.timeseries[0].labels, req.timeseries[0].labels);
        assert_eq!(back.metadata, req.metadata);
    }

    #[test]
    fn field_numbers_are_the_public_protos() {
        // Hand-encoded: WriteRequest{timeseries: [{labels: [{name: "a", value: "b"}],
        // samples: [{value: 1.0, timestamp: 5}]}]}.
        let bytes = [
            0x0a, 0x15, // field 1, 21 bytes
            0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', // labels
            0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x05, // sample
        ];
        let req = WriteRequest::decode(&bytes[..]).unwrap();
        assert_eq!(req.timeseries[0].labels, vec![Label::new("a", "b")]);
        assert_eq!(
            req.timeseries[0].samples,
            vec![Sample {
                value: 1.0,
                timestamp: 5
            }]
        );
        assert_eq!(req.encode_to_vec(), bytes);
    }
}
