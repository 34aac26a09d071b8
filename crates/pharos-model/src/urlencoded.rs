//! `application/x-www-form-urlencoded` text, as query strings and form bodies
//! carry the query APIs' parameters.

/// Parses `a=b&c=%20d+e` into pairs in order: `+` is a space, `%XX` a byte,
/// a malformed escape stays as it is, and the bytes are read as UTF-8 (lossily).
pub fn parse(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn decodes_pairs_in_order() {
        let pairs = |s| parse(s).into_iter().collect::<Vec<_>>();
        assert_eq!(
            pairs("query=%7Bapp%3D%22a%22%7D&x=a+b&bad=%zz&flag&&k=%2"),
            [
                ("query".into(), r#"{app="a"}"#.into()),
                ("x".into(), "a b".into()),
                ("bad".into(), "%zz".into()),
                ("flag".into(), String::new()),
                ("k".into(), "%2".into()),
            ]
        );
        assert_eq!(
            pairs("a=%+f"),
            [("a".into(), "% f".into())],
            "a sign is not a hex digit: the % stays and + is still a space"
        );
    }
}
