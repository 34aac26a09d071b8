//! The remote_write 1.0 body: a protobuf `WriteRequest` compressed with snappy's block
//! format (not the framed/stream format), as the spec requires.

use prost::Message;

use super::proto::WriteRequest;

/// Why a body is not a remote_write request.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body, or what it decompresses to, is larger than the limit.
    #[error("request body of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge { size: u64, limit: usize },
    /// The body is not snappy block-compressed.
    #[error("snappy: {0}")]
    Snappy(#[from] snap::Error),
    /// The decompressed body is not a `prometheus.WriteRequest`.
    #[error("protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// Decodes a request body of at most `limit` bytes once decompressed.
///
/// # Errors
///
/// [`DecodeError::TooLarge`] when the decompressed length the snappy header declares is
/// above `limit` (checked before decompressing), [`DecodeError::Snappy`] for a body that is
/// not snappy block format, [`DecodeError::Protobuf`] for one that is not a `WriteRequest`.
pub fn decode(body: &[u8], limit: usize) -> Result<WriteRequest, DecodeError> {
    let size = snap::raw::decompress_len(body)?;
    if size > limit {
        return Err(DecodeError::TooLarge {
            size: size as u64,
            limit,
        });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    // From a `Bytes`, label texts are slices of `raw`, not copies.
    Ok(WriteRequest::decode(bytes::Bytes::from(raw))?)
}

/// Encodes a request as a remote_write body, for clients and tests.
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("BUG: snappy refused a protobuf body (only inputs above 4 GiB fail)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::proto::{Label, Sample, TimeSeries};

    fn request() -> WriteRequest {
        WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("__name__", "up")],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        }
    }

    #[test]
    fn round_trip() {
        let body = encode(&request());
        assert_eq!(decode(&body, 1 << 20).unwrap(), request());
    }

    #[test]
    fn framed_snappy_is_refused() {
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut framed, &request().encode_to_vec()).unwrap();
        let framed = framed.into_inner().unwrap();
        assert!(matches!(
            decode(&framed, 1 << 20),
            Err(DecodeError::Snappy(_))
        ));
    }

    #[test]
    fn bad_bodies_say_why() {
        let e = decode(b"", 1 << 20).unwrap_err();
        assert!(matches!(e, DecodeError::Snappy(_)), "{e}");
        // A length header of 5, then a literal tag promising more than there is.
        let e = decode(&[0x05, 0xf0, 0x01], 1 << 20).unwrap_err();
        assert!(matches!(e, DecodeError::Snappy(_)), "{e}");
        // Valid snappy around bytes that are not protobuf.
        let garbage = snap::raw::Encoder::new().compress_vec(&[0xff; 8]).unwrap();
        let e = decode(&garbage, 1 << 20).unwrap_err();
        assert!(matches!(e, DecodeError::Protobuf(_)), "{e}");
    }

    #[test]
    fn the_limit_applies_to_the_decompressed_size_before_decompressing() {
        let big = WriteRequest {
            timeseries: vec![request().timeseries[0].clone(); 1000],
            metadata: vec![],
        };
        let body = encode(&big);
        let size = big.encoded_len();
        assert!(body.len() < size / 4, "repetitive data compresses well");
        assert!(matches!(
            decode(&body, size - 1),
            Err(DecodeError::TooLarge { size: s, .. }) if s == size as u64
        ));
        assert_eq!(decode(&body, size).unwrap(), big);
        // A header claiming 4 GiB is refused without allocating it.
        let e = decode(&[0x80, 0x80, 0x80, 0x80, 0x0f], 1 << 20).unwrap_err();
        assert!(matches!(e, DecodeError::TooLarge { .. }), "{e}");
    }
}
