//! `decompress(content_encoding, body, limit)`: the first input byte picks the
//! `Content-Encoding` (identity, gzip, deflate or an unsupported one, in a few
//! spellings), the rest is the body. Must never panic and never return more
//! than the limit (1 MiB); identity returns the body as is, and an unsupported
//! encoding is refused.
//!
//! The same body is also decompressed against a small limit taken from the
//! first byte's upper bits, which reaches the "exactly the limit" boundary
//! with small inputs. The limit applies to the body as sent and as
//! decompressed, and both answers must agree.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pharos_otlp::decode::{DecodeError, decompress};

const LIMIT: usize = 1 << 20;

/// `Content-Encoding` values, indexed by the low three bits of the first byte.
const ENCODINGS: [Option<&str>; 8] = [
    None,
    Some("identity"),
    Some("gzip"),
    Some("x-gzip"),
    Some("deflate"),
    Some(" GZip "),
    Some(" Deflate"),
    Some("br"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let encoding = ENCODINGS[usize::from(selector & 7)];
    let small = usize::from(selector >> 3) * 64; // 0..=1984 bytes
    let input = Bytes::copy_from_slice(body);

    let big = decompress(encoding, input.clone(), LIMIT);
    match &big {
        Ok(out) => assert!(
            out.len() <= LIMIT,
            "{} bytes returned past the limit",
            out.len()
        ),
        Err(e) => assert!(
            body.len() <= LIMIT || matches!(e, DecodeError::TooLarge { .. }),
            "{}-byte body over the limit but: {e:?}",
            body.len()
        ),
    }
    match encoding {
        None | Some("identity") => match &big {
            Ok(out) => assert_eq!(&out[..], body, "identity changed the body"),
            Err(DecodeError::TooLarge { .. }) if body.len() > LIMIT => {}
            Err(e) => panic!("identity body of {} bytes refused: {e:?}", body.len()),
        },
        Some("br") if body.len() <= LIMIT => assert!(
            matches!(big, Err(DecodeError::UnsupportedEncoding(_))),
            "unsupported encoding accepted: {big:?}"
        ),
        _ => {}
    }

    let limited = decompress(encoding, input, small);
    if let Ok(out) = &limited {
        assert!(
            out.len() <= small,
            "{} bytes returned past the limit {small}",
            out.len()
        );
    }
    // The limit applies to the body as sent too. Past that, what fits under
    // the 1 MiB limit decompresses the same under a smaller one when it fits
    // there too, and is refused as too large otherwise.
    if body.len() > small {
        assert!(
            matches!(limited, Err(DecodeError::TooLarge { .. })),
            "{}-byte body over the limit {small} but: {limited:?}",
            body.len()
        );
    } else if let Ok(out) = &big {
        if out.len() <= small {
            match &limited {
                Ok(o) => assert_eq!(o, out, "output depends on the limit"),
                Err(e) => panic!("{} bytes fit the limit {small} but: {e:?}", out.len()),
            }
        } else {
            assert!(
                matches!(limited, Err(DecodeError::TooLarge { .. })),
                "{} bytes over the limit {small} but: {limited:?}",
                out.len()
            );
        }
    }
});
