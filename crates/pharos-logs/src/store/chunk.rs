//! A chunk: one stream's entries over a stretch of time, compressed, with a filter of the
//! word n-grams its lines hold (format: `docs/format/logs.md`).
//!
//! The body is three zstd frames: the times frame (the entry count; timestamps as zigzag
//! varint deltas; line lengths), the lines frame (the lines, back to back) and the
//! metadata frame (the chunk's structured-metadata names; then each entry's metadata as
//! (name index, value) pairs), the first two preceded by their lengths. Columns of one
//! kind sit together so zstd sees similar bytes side by side: the near-random timestamp
//! deltas in a frame of their own leave the lines' frame pure text, about 2 bytes a line
//! smaller than one frame of both. The frames' sizes say what lines and metadata take.
//!
//! The filter answers "may a line of this chunk contain this string?" soundly for `|=`:
//! it holds the [`GRAM`]-byte windows at even offsets of every *word* (a maximal run of
//! ASCII letters, digits, `_` and non-ASCII bytes) that holds a digit, of every line. A
//! word of the needle holding a digit lies inside such a word of the line wherever the
//! needle's ends cut, at an offset known unless it opens the needle, so the line word's
//! indexed grams include all of the needle word's even-offset grams, or, for an opening
//! word, all of its even-offset or all of its odd-offset ones ([`NeedleGrams`]); a chunk
//! missing them cannot match. Needles without such a word (`|= "4711"`, `|= "timeout"`)
//! read every chunk; the words left out are the ones every chunk holds anyway. Every
//! other window is enough: long ids give many, and half the grams is half the filter.
//! Grams are hashed into a bloom filter of [`BLOOM_BITS_PER_GRAM`] bits per gram
//! occurrence (no deduplication: the grams of ids rarely repeat, 8% in the benchmark's
//! data, and counting distinct ones would cost more than the bits it saves). The filter is
//! blocked: a gram sets [`BLOOM_HASHES`] bits of one 64-bit word, the word chosen by a
//! multiply-shift of the hash's high half (no division), the bits by its low bits. A gram
//! passes a filter it is not in about 15% of the time, and a needle's 8-digit order id
//! (two grams at even offsets) about 2.2%.

use bytes::{Buf, BufMut};

use super::Entry;

/// The n-gram length of chunk filters.
pub const GRAM: usize = 6;
/// Bloom filter bits per indexed gram occurrence of a chunk.
pub const BLOOM_BITS_PER_GRAM: usize = 4;
/// Bits a gram sets in its filter word.
pub const BLOOM_HASHES: u32 = 3;
/// zstd level of the chunks a flush writes: fast, as a flush is part of ingest. On the
/// benchmark's per-stream chunks level 1 is both faster than level 3 (about 650 against
/// 400 MB/s) and smaller (3% fewer bytes), measured with `zstd -b` on the chunks' bodies.
pub const FLUSH_ZSTD_LEVEL: i32 = 1;
/// zstd level of the chunks a compaction writes: about 8% fewer bytes for the lines than
/// level 1, for about seven times the compression time, spent once, in the background.
pub const COMPACT_ZSTD_LEVEL: i32 = 9;

/// Why a chunk does not decode.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// zstd refused the body.
    #[error("chunk body does not decompress: {0}")]
    Zstd(std::io::Error),
    /// The body ends early or holds impossible values.
    #[error("chunk body is malformed: {0}")]
    Malformed(&'static str),
}

const fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Calls `f` with every other [`GRAM`]-byte window (those starting at an even offset of
/// the word) of each indexed word of `text`: a word of at least [`GRAM`] bytes holding a
/// digit (ids, numbers, hex). A needle's word with a digit lies only inside line words
/// with a digit, so indexing only those stays sound while leaving out the common words
/// every chunk holds anyway; [`NeedleGrams`] says which windows of a needle to look for.
pub fn for_each_gram(text: &[u8], mut f: impl FnMut(&[u8])) {
    for_each_indexed_word(text, |_, word| {
        word.windows(GRAM).step_by(2).for_each(&mut f)
    });
}

/// Calls `f` with the hash ([`gram_hash`]) of each gram [`for_each_gram`] finds, keeping
/// the window's integer as it slides instead of reading each gram anew.
pub fn for_each_gram_hash(text: &[u8], mut f: impl FnMut(u64)) {
    for_each_indexed_word(text, |_, word| {
        let mut x = 0u64;
        for (j, &c) in word.iter().enumerate() {
            // The last GRAM bytes read as a little-endian integer.
            x = (x >> 8) | (u64::from(c) << (8 * (GRAM - 1)));
            if j + 1 >= GRAM && (j + 1 - GRAM).is_multiple_of(2) {
                f(mix(x));
            }
        }
    });
}

/// Calls `f` with the offset and bytes of each word of `text` that holds a digit and is at
/// least [`GRAM`] bytes long.
fn for_each_indexed_word(text: &[u8], mut f: impl FnMut(usize, &[u8])) {
    let mut start = 0;
    let mut digit = false;
    for i in 0..=text.len() {
        let b = text.get(i).copied().unwrap_or(b' ');
        if WORD[b as usize] {
            digit |= b.is_ascii_digit();
            continue;
        }
        let word = &text[start..i];
        if digit && word.len() >= GRAM {
            f(start, word);
        }
        start = i + 1;
        digit = false;
    }
}

/// Which bytes are word bytes.
static WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = word_byte(i as u8);
        i += 1;
    }
    t
};

/// A gram's hash: its bytes as a little-endian integer, through splitmix64's finalizer
/// (a full-avalanche mix, and a few instructions for six bytes). The writer and readers
/// slide the integer along a word ([`for_each_gram_hash`]); this is the reference the
/// tests hold them to.
fn gram_hash(gram: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..gram.len().min(8)].copy_from_slice(&gram[..gram.len().min(8)]);
    mix(u64::from_le_bytes(b))
}

/// splitmix64's finalizer.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A blocked bloom filter of grams: 64-bit words, stored little-endian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    /// The bit array; its length is a multiple of 8 bytes.
    pub bits: Vec<u8>,
}

impl Bloom {
    /// Builds a filter of the gram hashes `hashes`.
    pub fn of(hashes: &[u64]) -> Self {
        let mut words = vec![0u64; (hashes.len() * BLOOM_BITS_PER_GRAM).div_ceil(64).max(1)];
        let n = words.len() as u64;
        for &h in hashes {
            let (w, mask) = place(h, n);
            words[w] |= mask;
        }
        Self {
            bits: words.iter().flat_map(|w| w.to_le_bytes()).collect(),
        }
    }
}

/// A gram hash's word among `words` (a multiply-shift of its high half) and the bits it
/// sets there (6 bits of its low half each).
fn place(h: u64, words: u64) -> (usize, u64) {
    let w = ((h >> 32) * words) >> 32;
    let mut mask = 0u64;
    for i in 0..BLOOM_HASHES {
        mask |= 1 << ((h >> (6 * i)) & 63);
    }
    (w as usize, mask)
}

/// What a chunk's filter must hold for one of its lines to contain every needle: for
/// each needle word with a digit, the grams of one of its alignments.
///
/// A line word holding a needle word has its even-offset grams indexed. Where the needle
/// word starts is known when a non-word byte precedes it in the needle (the line word
/// starts there too): its even-offset grams must all be there. A word that opens the
/// needle may start anywhere inside the line word, so either its even-offset grams or
/// its odd-offset ones must all be there; a 6-byte one has no odd-offset gram and rules
/// nothing out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NeedleGrams {
    /// Per needle word, its alignments' gram hashes; one alignment per word must match.
    words: Vec<Vec<Vec<u64>>>,
}

impl NeedleGrams {
    /// The conditions for `needles`.
    pub fn of(needles: &[&str]) -> Self {
        let mut words = Vec::new();
        for n in needles {
            for_each_indexed_word(n.as_bytes(), |start, word| {
                let mut hashes = [Vec::new(), Vec::new()];
                for (j, g) in word.windows(GRAM).enumerate() {
                    hashes[j % 2].push(gram_hash(g));
                }
                let [even, odd] = hashes;
                if start > 0 {
                    words.push(vec![even]);
                } else if !odd.is_empty() {
                    words.push(vec![even, odd]);
                }
            });
        }
        Self { words }
    }

    /// Whether no chunk can be ruled out.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether a filter (as stored) may hold a line containing the needles.
    pub fn may_match(&self, bits: &[u8]) -> bool {
        let n = (bits.len() / 8) as u64;
        if n == 0 {
            return true;
        }
        let has = |h: u64| {
            let (w, mask) = place(h, n);
            let word = u64::from_le_bytes(bits[w * 8..w * 8 + 8].try_into().expect("8 bytes"));
            word & mask == mask
        };
        self.words
            .iter()
            .all(|alignments| alignments.iter().any(|a| a.iter().all(|&h| has(h))))
    }
}

/// What a chunk's index entry records besides its place in the data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkSummary {
    /// The oldest entry's time.
    pub min_ts: i64,
    /// The newest entry's time.
    pub max_ts: i64,
    /// How many entries.
    pub entries: u32,
    /// The lines' bytes, uncompressed.
    pub line_bytes: u64,
}

/// Encodes entries (sorted by time) into a compressed body, its summary and filter.
pub fn encode(entries: &[Entry], zstd_level: i32) -> (Vec<u8>, ChunkSummary, Bloom) {
    let mut times = Vec::with_capacity(entries.len() * 6 + 5);
    put_varint(&mut times, entries.len() as u64);
    let mut prev = 0i64;
    for e in entries {
        put_varint(&mut times, zigzag(e.ts_ns.wrapping_sub(prev)));
        prev = e.ts_ns;
    }
    for e in entries {
        put_varint(&mut times, e.line.len() as u64);
    }
    let mut raw = Vec::with_capacity(entries.iter().map(|e| e.line.len()).sum());
    let mut hashes: Vec<u64> = Vec::with_capacity(entries.len() * 16);
    for e in entries {
        raw.extend_from_slice(e.line.as_bytes());
        for_each_gram_hash(e.line.as_bytes(), |h| hashes.push(h));
    }
    let bloom = Bloom::of(&hashes);
    let mut zstd = zstd::bulk::Compressor::new(zstd_level).expect("BUG: zstd refused a level");
    let times_frame = zstd
        .compress(&times)
        .expect("BUG: zstd refused to compress");
    let lines_frame = zstd.compress(&raw).expect("BUG: zstd refused to compress");
    let mut raw = Vec::new();
    // Metadata names, each once, in first-seen order; each entry's pairs by name index,
    // a value equal to the name's previous one as a 0 (an OTLP resource's attributes
    // repeat on every line of its stream).
    let mut names: Vec<&std::sync::Arc<str>> = Vec::new();
    let mut last: Vec<Option<&std::sync::Arc<str>>> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut pairs: Vec<u8> = Vec::new();
    for e in entries {
        put_varint(&mut pairs, e.metadata.len() as u64);
        // Entries of a chunk mostly carry the same names in the same order: try the
        // name after the previous one first.
        let mut hint = 0usize;
        for (k, v) in &e.metadata {
            let idx = match names.get(hint) {
                Some(n) if std::sync::Arc::ptr_eq(n, k) || ***n == **k => hint,
                _ => *index.entry(&**k).or_insert_with(|| {
                    names.push(k);
                    last.push(None);
                    names.len() - 1
                }),
            };
            hint = idx + 1;
            put_varint(&mut pairs, idx as u64);
            let prev = &mut last[idx];
            if prev.is_some_and(|p| std::sync::Arc::ptr_eq(p, v) || **p == **v) {
                put_varint(&mut pairs, 0);
            } else {
                put_varint(&mut pairs, v.len() as u64 + 1);
                pairs.extend_from_slice(v.as_bytes());
                *prev = Some(v);
            }
        }
    }
    put_varint(&mut raw, names.len() as u64);
    for n in &names {
        put_varint(&mut raw, n.len() as u64);
        raw.extend_from_slice(n.as_bytes());
    }
    raw.extend_from_slice(&pairs);
    let meta_frame = zstd.compress(&raw).expect("BUG: zstd refused to compress");
    let mut body =
        Vec::with_capacity(times_frame.len() + lines_frame.len() + meta_frame.len() + 10);
    put_varint(&mut body, times_frame.len() as u64);
    body.extend_from_slice(&times_frame);
    put_varint(&mut body, lines_frame.len() as u64);
    body.extend_from_slice(&lines_frame);
    body.extend_from_slice(&meta_frame);
    let summary = ChunkSummary {
        min_ts: entries.first().map_or(0, |e| e.ts_ns),
        max_ts: entries.iter().map(|e| e.ts_ns).max().unwrap_or(0),
        entries: entries.len() as u32,
        line_bytes: entries.iter().map(|e| e.line.len() as u64).sum(),
    };
    (body, summary, bloom)
}

/// Decodes a body into its entries; `line_bytes` and `entries` (from the summary) bound
/// the decompressed size.
///
/// # Errors
///
/// When the body does not decompress or is malformed.
pub fn decode(body: &[u8], summary: &ChunkSummary) -> Result<Vec<Entry>, ChunkError> {
    decode_with(body, summary, true)
}

/// [`decode`], leaving the metadata frame alone (entries without metadata) unless
/// `with_metadata`.
///
/// # Errors
///
/// As [`decode`].
pub fn decode_with(
    body: &[u8],
    summary: &ChunkSummary,
    with_metadata: bool,
) -> Result<Vec<Entry>, ChunkError> {
    let cap = summary.line_bytes as usize + summary.entries as usize * 64 + (64 << 20);
    let mut body = body;
    let times_frame = take_frame(&mut body, "the times frame runs past the end")?;
    let lines_frame = take_frame(&mut body, "the lines frame runs past the end")?;
    let times = unzstd(times_frame, cap)?;
    let raw = unzstd(lines_frame, cap)?;
    let meta_raw = if with_metadata {
        unzstd(body, cap)?
    } else {
        Vec::new()
    };
    let mut buf = times.as_slice();
    let n = get_varint(&mut buf)? as usize;
    if n != summary.entries as usize {
        return Err(ChunkError::Malformed("entry count differs from the index"));
    }
    let mut ts = Vec::with_capacity(n);
    let mut prev = 0i64;
    for _ in 0..n {
        prev = prev.wrapping_add(unzigzag(get_varint(&mut buf)?));
        ts.push(prev);
    }
    let mut lens = Vec::with_capacity(n);
    for _ in 0..n {
        lens.push(get_varint(&mut buf)? as usize);
    }
    if !buf.is_empty() {
        return Err(ChunkError::Malformed(
            "the times frame holds more than its entries",
        ));
    }
    let mut buf = raw.as_slice();
    let mut out = Vec::with_capacity(n);
    for (i, len) in lens.into_iter().enumerate() {
        let line = take_str(&mut buf, len)?;
        out.push(Entry {
            ts_ns: ts[i],
            line,
            metadata: Vec::new(),
        });
    }
    if !buf.is_empty() {
        return Err(ChunkError::Malformed(
            "the lines frame holds more than its entries",
        ));
    }
    if !with_metadata {
        return Ok(out);
    }
    let mut buf = meta_raw.as_slice();
    let n_names = get_varint(&mut buf)? as usize;
    let mut names: Vec<std::sync::Arc<str>> = Vec::with_capacity(n_names.min(4096));
    for _ in 0..n_names {
        let len = get_varint(&mut buf)? as usize;
        names.push(take_str(&mut buf, len)?.into());
    }
    // Each name's previous value, for the 0s that repeat it.
    let mut last: Vec<Option<std::sync::Arc<str>>> = vec![None; names.len()];
    for e in &mut out {
        let m = get_varint(&mut buf)? as usize;
        let mut meta = Vec::with_capacity(m.min(256));
        for _ in 0..m {
            let idx = get_varint(&mut buf)? as usize;
            let name = names
                .get(idx)
                .ok_or(ChunkError::Malformed("metadata name index out of range"))?
                .clone();
            let value = match get_varint(&mut buf)? as usize {
                0 => last[idx]
                    .clone()
                    .ok_or(ChunkError::Malformed("a repeated value has none before it"))?,
                len => {
                    let v: std::sync::Arc<str> = take_str(&mut buf, len - 1)?.into();
                    last[idx] = Some(v.clone());
                    v
                }
            };
            meta.push((name, value));
        }
        e.metadata = meta;
    }
    Ok(out)
}

/// Decompresses one frame of at most `cap` bytes, into a buffer of the size its header
/// states (the encoder always writes it) and with this thread's decompression context:
/// a query decodes thousands of frames, and a fresh context and a buffer of the bound's
/// size for each cost more than the decompression of a small one.
fn unzstd(frame: &[u8], cap: usize) -> Result<Vec<u8>, ChunkError> {
    thread_local! {
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) if n <= cap as u64 => n as usize,
        Ok(Some(_)) => return Err(ChunkError::Malformed("a frame is larger than its bound")),
        _ => cap,
    };
    DCTX.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new().map_err(ChunkError::Zstd)?);
        }
        d.as_mut()
            .expect("set above")
            .decompress(frame, size)
            .map_err(ChunkError::Zstd)
    })
}

/// A length-prefixed frame off the front of `body`.
fn take_frame<'a>(body: &mut &'a [u8], past_end: &'static str) -> Result<&'a [u8], ChunkError> {
    let len = get_varint(body)? as usize;
    if body.len() < len {
        return Err(ChunkError::Malformed(past_end));
    }
    let (frame, rest) = body.split_at(len);
    *body = rest;
    Ok(frame)
}

fn take_str(buf: &mut &[u8], len: usize) -> Result<String, ChunkError> {
    if buf.len() < len {
        return Err(ChunkError::Malformed("a string runs past the end"));
    }
    let s = String::from_utf8(buf[..len].to_vec())
        .map_err(|_| ChunkError::Malformed("a string is not UTF-8"))?;
    buf.advance(len);
    Ok(s)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

pub(crate) fn get_varint(buf: &mut &[u8]) -> Result<u64, ChunkError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some((&b, rest)) = buf.split_first() else {
            return Err(ChunkError::Malformed("a varint runs past the end"));
        };
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(ChunkError::Malformed("a varint is longer than 10 bytes"))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The size of a body's times and lines frames (with their length prefixes); the rest is
/// metadata.
pub fn lines_frame_size(body: &[u8]) -> usize {
    let mut b = body;
    let ok = take_frame(&mut b, "").and_then(|_| take_frame(&mut b, ""));
    match ok {
        Ok(_) => body.len() - b.len(),
        Err(_) => body.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts: i64, line: &str, meta: &[(&str, &str)]) -> Entry {
        Entry {
            ts_ns: ts,
            line: line.into(),
            metadata: meta
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    #[test]
    fn entries_round_trip() {
        let entries = vec![
            entry(-5, "", &[]),
            entry(
                10,
                "order-48213977 paid ünïcode",
                &[("trace_id", "ab"), ("level", "info")],
            ),
            entry(10, "same time", &[("level", "warn")]),
            entry(i64::MAX, "far", &[("x", "")]),
        ];
        let (body, summary, _) = encode(&entries, FLUSH_ZSTD_LEVEL);
        assert_eq!(summary.entries, 4);
        assert_eq!(summary.max_ts, i64::MAX);
        assert_eq!(decode(&body, &summary).unwrap(), entries);
        // Without metadata: the same lines and times, no pairs.
        let bare = decode_with(&body, &summary, false).unwrap();
        assert_eq!(bare.len(), entries.len());
        for (b, e) in bare.iter().zip(&entries) {
            assert_eq!((b.ts_ns, &b.line), (e.ts_ns, &e.line));
            assert!(b.metadata.is_empty());
        }
        let lines = lines_frame_size(&body);
        assert!(lines > 2 && lines < body.len(), "three frames");
        // A wrong count or a cut body is an error, never a panic.
        let mut bad = summary.clone();
        bad.entries = 3;
        assert!(decode(&body, &bad).is_err());
        for cut in [0, 1, body.len() / 2, body.len() - 1] {
            assert!(decode(&body[..cut], &summary).is_err());
        }
    }

    #[test]
    fn repeated_metadata_values_round_trip_shared() {
        let entries = vec![
            entry(1, "a", &[("host", "h1"), ("span_id", "01")]),
            entry(2, "b", &[("host", "h1"), ("span_id", "02")]),
            entry(3, "c", &[("host", "h2")]),
            entry(4, "d", &[("empty", ""), ("host", "h2"), ("span_id", "02")]),
            entry(5, "e", &[("empty", ""), ("host", "h1")]),
            entry(6, "f", &[]),
            entry(7, "g", &[("host", "h1")]),
        ];
        let (body, summary, _) = encode(&entries, FLUSH_ZSTD_LEVEL);
        let got = decode(&body, &summary).unwrap();
        assert_eq!(got, entries);
        // A value repeated from the name's previous one is the same allocation.
        assert!(std::sync::Arc::ptr_eq(
            &got[0].metadata[0].1,
            &got[1].metadata[0].1
        ));
        assert!(std::sync::Arc::ptr_eq(
            &got[1].metadata[1].1,
            &got[3].metadata[2].1
        ));
        assert!(!std::sync::Arc::ptr_eq(
            &got[1].metadata[0].1,
            &got[4].metadata[1].1
        ));
        // A thousand lines of the same dozen pairs cost little more than one.
        let pairs: Vec<(String, String)> = (0..12)
            .map(|i| (format!("resource_{i}"), format!("value-{i}-abcdefgh")))
            .collect();
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (&**k, &**v)).collect();
        let many: Vec<Entry> = (0..1000).map(|i| entry(i, "x", &pairs)).collect();
        let (body, summary, _) = encode(&many, FLUSH_ZSTD_LEVEL);
        let meta = body.len() - lines_frame_size(&body);
        assert!(meta < 200, "{meta} bytes of metadata");
        assert_eq!(decode(&body, &summary).unwrap(), many);
    }

    #[test]
    fn sliding_gram_hashes_equal_hashes_of_each_gram() {
        for text in [
            "order-48213977 x 1234567 abc_12ü3456 0af7651916cd43dd8448eb211c80319c",
            "short 12345 words",
            "",
        ] {
            let mut a = Vec::new();
            for_each_gram(text.as_bytes(), |g| a.push(gram_hash(g)));
            let mut b = Vec::new();
            for_each_gram_hash(text.as_bytes(), |h| b.push(h));
            assert_eq!(a, b, "{text}");
        }
    }

    #[test]
    fn the_filter_never_misses_a_substring_and_rules_out_most_others() {
        let lines: Vec<String> = (0..2000)
            .map(|i| {
                format!(
                    "level=info msg=\"paid\" order_id=order-{} user=u{}",
                    48_000_000 + i * 7,
                    i % 50
                )
            })
            .collect();
        let entries: Vec<Entry> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| entry(i as i64, l, &[]))
            .collect();
        let (_, _, bloom) = encode(&entries, FLUSH_ZSTD_LEVEL);
        // Every substring of every line that has a 6-byte word passes.
        for l in &lines {
            for (a, b) in [(0, l.len()), (10, 40), (l.len() - 20, l.len() - 2), (5, 30)] {
                let needle = &l[a..b];
                assert!(
                    NeedleGrams::of(&[needle]).may_match(&bloom.bits),
                    "{needle:?}"
                );
            }
        }
        // Ids that are not there are mostly ruled out.
        let absent = (0..1000)
            .filter(|i| {
                let needle = format!("order-{}", 58_000_000 + i * 13);
                NeedleGrams::of(&[&needle]).may_match(&bloom.bits)
            })
            .count();
        // About 22 of 1000 for two independent grams; 9 pass here. (The absent ids share
        // digits with the present ones, so a gram may really be there.)
        assert!(absent < 30, "{absent} of 1000 absent ids pass");
        // A needle without a long word holding a digit passes everything.
        assert!(NeedleGrams::of(&["4711"]).is_empty());
        assert!(NeedleGrams::of(&["checkout failed"]).is_empty());
        // A word whose start the needle shows: its even-offset grams.
        let g = |s: &str| gram_hash(s.as_bytes());
        assert_eq!(
            NeedleGrams::of(&["x order-48213977 y"]).words,
            [[vec![g("482139"), g("213977")]]]
        );
        // A word opening the needle: its even-offset grams or its odd-offset ones; one of
        // six bytes rules nothing out.
        assert_eq!(
            NeedleGrams::of(&["8213977 y"]).words,
            [[vec![g("821397")], vec![g("213977")]]]
        );
        assert!(NeedleGrams::of(&["213977-x"]).is_empty());
    }
}
