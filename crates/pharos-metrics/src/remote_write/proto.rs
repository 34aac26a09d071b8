//! The remote_write 1.0 wire types: `prometheus.WriteRequest` and what it holds, written
//! by hand from Prometheus' `prompb/remote.proto` and `prompb/types.proto`.
//!
//! Field numbers and types are the public proto's, so these structs decode what any
//! remote_write 1.0 sender (Prometheus, Grafana Agent/Alloy, vmagent, the Collector's
//! `prometheusremotewrite` exporter) sends. [`Histogram`] is declared only as far as
//! Pharos reads it: native histograms are refused, so their other fields are skipped
//! when decoding.
//!
//! Label names and values are [`LabelText`]: UTF-8 checked when decoded, as a protobuf
//! `string` is, but held as a slice of the request's buffer rather than a `String` of its
//! own. Decoding a request from a [`Bytes`] (as [`super::codec::decode`] does) then costs a
//! reference count per label instead of an allocation and a copy, and dropping it as much.
//! The wire format is the same: `string` and `bytes` share the length-delimited encoding.

use std::fmt;
use std::ops::Deref;

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType};

/// `prometheus.WriteRequest`: one remote_write 1.0 request body (after snappy).
///
/// Its `prost::Message` implementation is written by hand (below) only to size the series
/// vectors before decoding into them; the bytes and errors are the derived ones.
#[derive(Clone, PartialEq, Default)]
pub struct WriteRequest {
    /// The series and their samples. A series may appear more than once in a request:
    /// Prometheus puts each sample in a `TimeSeries` of its own. Field 1.
    pub timeseries: Vec<TimeSeries>,
    // Field 2 is reserved in the proto.
    /// Metric metadata (type, help, unit), sent by Prometheus in requests of their own.
    /// Field 3.
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
///
/// Its `prost::Message` implementation is written by hand (below) because the fields are
/// [`LabelText`]; the bytes are those of the derived `string` fields.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Label {
    pub name: LabelText,
    pub value: LabelText,
}

/// A label name or value: UTF-8 text, shared. A clone, and a value decoded from a
/// [`Bytes`] buffer, is a reference count on that buffer, not a copy.
///
/// Compares, orders, prints and derefs as the `str` it holds.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelText(
    /// Always UTF-8: every constructor checks it or starts from a `str`.
    Bytes,
);

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
    pub fn new(name: impl Into<LabelText>, value: impl Into<LabelText>) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

const TIMESERIES_TAG: u32 = 1;
const METADATA_TAG: u32 = 3;

impl prost::Message for WriteRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        prost::encoding::message::encode_repeated(TIMESERIES_TAG, &self.timeseries, buf);
        prost::encoding::message::encode_repeated(METADATA_TAG, &self.metadata, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        let (merged, field) = match tag {
            TIMESERIES_TAG => (
                merge_series(wire_type, &mut self.timeseries, buf, ctx),
                "timeseries",
            ),
            METADATA_TAG => (
                prost::encoding::message::merge_repeated(wire_type, &mut self.metadata, buf, ctx),
                "metadata",
            ),
            _ => return prost::encoding::skip_field(wire_type, tag, buf, ctx),
        };
        merged.map_err(|mut e| {
            e.push("WriteRequest", field);
            e
        })
    }

    fn encoded_len(&self) -> usize {
        prost::encoding::message::encoded_len_repeated(TIMESERIES_TAG, &self.timeseries)
            + prost::encoding::message::encoded_len_repeated(METADATA_TAG, &self.metadata)
    }

    fn clear(&mut self) {
        self.timeseries.clear();
        self.metadata.clear();
    }
}

impl fmt::Debug for WriteRequest {
    /// As the derived `Debug` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteRequest")
            .field("timeseries", &self.timeseries)
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// Decodes one `TimeSeries` onto `series`, as prost's `message::merge_repeated` does, but
/// with its vectors (and, at the first series, `series`) sized from a scan of the bytes
/// ahead: a request holds thousands of series of about ten labels each, and growing every
/// vector step by step cost more than the scan.
fn merge_series(
    wire_type: WireType,
    series: &mut Vec<TimeSeries>,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), prost::DecodeError> {
    let mut ts = TimeSeries::default();
    if wire_type == WireType::LengthDelimited {
        let mut ahead = buf.chunk();
        if let Ok(len) = prost::encoding::decode_varint(&mut ahead)
            && let Ok(len) = usize::try_from(len)
            && len <= ahead.len()
        {
            let (body, rest) = ahead.split_at(len);
            let mut counts = [0; 5];
            count_fields(body, &mut counts);
            ts.labels.reserve_exact(counts[1]);
            ts.samples.reserve_exact(counts[2]);
            ts.exemplars.reserve_exact(counts[3]);
            if series.capacity() == 0 {
                let mut counts = [0; 5];
                count_fields(rest, &mut counts);
                series.reserve_exact(counts[TIMESERIES_TAG as usize] + 1);
            }
        }
    }
    prost::encoding::message::merge(wire_type, &mut ts, buf, ctx)?;
    series.push(ts);
    Ok(())
}

/// Counts the fields numbered 1 to 4 of the protobuf message `msg` into `counts[1..=4]`,
/// as far as `msg` is well-formed. Never more fields than decoding `msg` yields, so the
/// counts can size vectors.
fn count_fields(mut msg: &[u8], counts: &mut [usize; 5]) {
    while !msg.is_empty() {
        let Ok(key) = prost::encoding::decode_varint(&mut msg) else {
            return;
        };
        let skip = match key & 7 {
            0 => match prost::encoding::decode_varint(&mut msg) {
                Ok(_) => 0,
                Err(_) => return,
            },
            1 => 8,
            2 => match prost::encoding::decode_varint(&mut msg) {
                Ok(len) => len,
                Err(_) => return,
            },
            5 => 4,
            _ => return,
        };
        if skip > msg.len() as u64 {
            return;
        }
        msg = &msg[skip as usize..];
        if let Some(count) = usize::try_from(key >> 3)
            .ok()
            .and_then(|n| counts.get_mut(n))
        {
            *count += 1;
        }
    }
}

const LABEL_NAME_TAG: u32 = 1;
const LABEL_VALUE_TAG: u32 = 2;

/// The encoding of the derived `#[prost(string)]` fields: a field is left out when empty,
/// and a decoded value that is not UTF-8 fails the decode with prost's own error, at the
/// same place.
impl prost::Message for Label {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for (tag, text) in [(LABEL_NAME_TAG, &self.name), (LABEL_VALUE_TAG, &self.value)] {
            if !text.is_empty() {
                prost::encoding::encode_key(tag, WireType::LengthDelimited, buf);
                prost::encoding::encode_varint(text.len() as u64, buf);
                buf.put_slice(text.as_bytes());
            }
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        let (text, field) = match tag {
            LABEL_NAME_TAG => (&mut self.name, "name"),
            LABEL_VALUE_TAG => (&mut self.value, "value"),
            _ => return prost::encoding::skip_field(wire_type, tag, buf, ctx),
        };
        text.merge(wire_type, buf, ctx).map_err(|mut e| {
            e.push("Label", field);
            e
        })
    }

    fn encoded_len(&self) -> usize {
        let len = |tag, text: &LabelText| {
            if text.is_empty() {
                0
            } else {
                prost::encoding::key_len(tag)
                    + prost::encoding::encoded_len_varint(text.len() as u64)
                    + text.len()
            }
        };
        len(LABEL_NAME_TAG, &self.name) + len(LABEL_VALUE_TAG, &self.value)
    }

    fn clear(&mut self) {
        *self = Label::default();
    }
}

impl fmt::Debug for Label {
    /// As the derived `Debug` of a struct of two `String`s prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Label")
            .field("name", &self.name)
            .field("value", &self.value)
            .finish()
    }
}

impl LabelText {
    /// Returns the text.
    pub fn as_str(&self) -> &str {
        // SAFETY: the bytes are UTF-8, see the field.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// Returns the text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Replaces the text with a length-delimited value read from `buf`, as prost's
    /// `string::merge` does: on any error, including bytes that are not UTF-8, the text is
    /// left empty. From a [`Bytes`] buffer, nothing is copied.
    fn merge(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        let mut bytes = Bytes::new();
        let merged = prost::encoding::bytes::merge(wire_type, &mut bytes, buf, ctx);
        self.0 = Bytes::new();
        merged?;
        // Label texts are nearly always ASCII, which is UTF-8 and quicker to check.
        if !bytes.is_ascii() && std::str::from_utf8(&bytes).is_err() {
            return Err(invalid_utf8());
        }
        self.0 = bytes;
        Ok(())
    }
}

/// Returns prost's error for a `string` field that is not UTF-8 (its kind is private to
/// prost, so prost is asked to refuse such a string).
#[cold]
fn invalid_utf8() -> prost::DecodeError {
    let mut s = String::new();
    prost::encoding::string::merge(
        WireType::LengthDelimited,
        &mut s,
        &mut &[1u8, 0xff][..],
        DecodeContext::default(),
    )
    .expect_err("BUG: 0xff is not UTF-8")
}

impl Deref for LabelText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for LabelText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for LabelText {
    /// Copies `s`.
    fn from(s: &str) -> LabelText {
        LabelText(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<&String> for LabelText {
    /// Copies `s`.
    fn from(s: &String) -> LabelText {
        LabelText::from(s.as_str())
    }
}

impl From<String> for LabelText {
    /// Takes `s` over without copying it.
    fn from(s: String) -> LabelText {
        LabelText(Bytes::from(s))
    }
}

impl PartialEq<str> for LabelText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for LabelText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for LabelText {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for LabelText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for LabelText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
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

    /// The same message with the label fields as `String`s, as prost derives them.
    #[derive(Clone, PartialEq, prost::Message)]
    struct StringLabel {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(string, tag = "2")]
        value: String,
    }

    #[test]
    fn labels_encode_and_decode_as_derived_strings_do() {
        for (name, value) in [
            ("", ""),
            ("a", ""),
            ("", "b"),
            ("__name__", "é"),
            ("k", &"v".repeat(300)),
        ] {
            let ours = Label::new(name, value);
            let derived = StringLabel {
                name: name.into(),
                value: value.into(),
            };
            assert_eq!(ours.encode_to_vec(), derived.encode_to_vec());
            assert_eq!(ours.encoded_len(), derived.encoded_len());
            assert_eq!(
                Label::decode(derived.encode_to_vec().as_slice()).unwrap(),
                ours
            );
            assert_eq!(
                format!("{ours:?}"),
                format!("{derived:?}").replace("StringLabel", "Label")
            );
        }
        // Not UTF-8: the same error, in the same place, as for a `string` field.
        for bad in [
            vec![0x0a, 0x02, b'a', 0xff],
            vec![0x0a, 0x01, b'a', 0x12, 0x01, 0xc3],
        ] {
            let ours = Label::decode(bad.as_slice()).unwrap_err();
            let derived = StringLabel::decode(bad.as_slice()).unwrap_err();
            assert_eq!(
                ours.to_string(),
                derived.to_string().replace("StringLabel", "Label")
            );
        }
        let e = WriteRequest::decode(&[0x0a, 0x05, 0x0a, 0x03, 0x12, 0x01, 0xff][..]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to decode Protobuf message: Label.value: TimeSeries.labels: \
             WriteRequest.timeseries: invalid string value: data is not UTF-8 encoded"
        );
    }

    /// The same messages as prost derives them.
    mod derived {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct WriteRequest {
            #[prost(message, repeated, tag = "1")]
            pub timeseries: Vec<super::TimeSeries>,
            #[prost(message, repeated, tag = "3")]
            pub metadata: Vec<super::MetricMetadata>,
        }
    }

    #[test]
    fn write_requests_encode_and_decode_as_derived_ones_do() {
        let mut req = request();
        req.timeseries.push(TimeSeries {
            labels: vec![Label::new("", ""), Label::new("a", "b")],
            ..Default::default()
        });
        req.timeseries.push(TimeSeries::default());
        req.metadata.push(MetricMetadata::default());
        let derived = derived::WriteRequest {
            timeseries: req.timeseries.clone(),
            metadata: req.metadata.clone(),
        };
        let bytes = derived.encode_to_vec();
        assert_eq!(req.encode_to_vec(), bytes);
        assert_eq!(req.encoded_len(), bytes.len());
        assert_eq!(
            format!("{req:?}"),
            format!("{derived:?}").replace("derived::", "")
        );
        let back = WriteRequest::decode(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(back.encode_to_vec(), bytes);
        assert_eq!(back.timeseries.len(), 3);
        assert_eq!(back.timeseries.capacity(), 3, "sized before decoding");
        assert_eq!(back.timeseries[0].labels.capacity(), 2);
        // Every truncation fails (or not) as the derived decoder does, with its error.
        for n in 0..bytes.len() {
            let ours = WriteRequest::decode(&bytes[..n]).map(|r| r.encode_to_vec());
            let theirs = derived::WriteRequest::decode(&bytes[..n]).map(|r| r.encode_to_vec());
            assert_eq!(
                ours.map_err(|e| e.to_string()),
                theirs.map_err(|e| e.to_string()),
                "{n} bytes"
            );
        }
        // Damaged bytes too.
        for i in 0..bytes.len() {
            for x in [0x00, 0x07, 0x0a, 0x7f, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[i] = x;
                let ours = WriteRequest::decode(bad.as_slice()).map(|r| r.encode_to_vec());
                let theirs =
                    derived::WriteRequest::decode(bad.as_slice()).map(|r| r.encode_to_vec());
                assert_eq!(
                    ours.map_err(|e| e.to_string()),
                    theirs.map_err(|e| e.to_string()),
                    "byte {i} set to {x:#x}"
                );
            }
        }
    }

    #[test]
    fn field_counts_stop_at_the_first_malformed_field() {
        let mut counts = [0; 5];
        // 1: two bytes; 2: a double; 3: a varint; 4: a fixed32; 9: skipped; then a truncated 1.
        let msg = [
            0x0a, 0x02, 1, 2, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0x18, 0x96, 0x01, 0x25, 0, 0, 0, 0,
            0x48, 0x01, 0x0a, 0x05, 1,
        ];
        count_fields(&msg, &mut counts);
        assert_eq!(counts, [0, 1, 1, 1, 1]);
    }

    #[test]
    fn labels_decoded_from_bytes_share_the_buffer() {
        let buf = Bytes::from(request().encode_to_vec());
        let req = WriteRequest::decode(buf.clone()).unwrap();
        let name = req.timeseries[0].labels[1].value.as_bytes();
        let range = buf.as_ptr_range();
        assert!(range.contains(&name.as_ptr()), "no copy");
        assert_eq!(req.timeseries[0].labels[1].value, "node");
    }
}
