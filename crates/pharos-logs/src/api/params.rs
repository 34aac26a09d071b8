//! Reading Loki's request parameters: form/query pairs, times, durations.

/// Request parameters from the query string and, for POST, a form body, in order.
#[derive(Debug, Default)]
pub(crate) struct Params(pub Vec<(String, String)>);

impl Params {
    /// Returns the first non-empty value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Returns every non-empty value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Parses `application/x-www-form-urlencoded` text (`a=b&c=%20d+e`).
pub(crate) fn parse_form(s: &str) -> Vec<(String, String)> {
    pharos_model::urlencoded::parse(s)
}

/// Parses a time as Loki does: float unix seconds when it has a `.`, integer unix
/// seconds when it has at most 10 digits, else integer unix nanoseconds, else RFC3339.
pub(crate) fn parse_time(v: &str) -> Result<i64, String> {
    if v.contains('.')
        && let Ok(f) = v.parse::<f64>()
    {
        let secs = f.trunc();
        let frac = ((f - secs) * 1000.0).round() / 1000.0;
        return Ok(secs as i64 * 1_000_000_000 + (frac * 1e9) as i64);
    }
    match v.parse::<i64>() {
        Ok(n) if v.trim_start_matches('-').len() <= 10 => Ok(n.saturating_mul(1_000_000_000)),
        Ok(n) => Ok(n),
        Err(_) => {
            parse_rfc3339(v).ok_or_else(|| format!("cannot parse {v:?} to a valid timestamp"))
        }
    }
}

/// Parses RFC3339 (`2024-01-02T03:04:05.123Z`, `...+02:00`) into unix nanoseconds.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = frac[..n].parse::<i64>().ok()? * 10i64.pow(9 - n as u32);
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":" =>
        {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest[1..3].parse::<i64>().ok()? * 3600 + rest[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let days = pharos_model::civil::days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(secs * 1_000_000_000 + nanos)
}

/// Parses a duration such as `1h30m`, `90s`, `1.5h`, `7d` or `500ms` into nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    pharos_model::duration::parse_nanos(s, pharos_model::duration::Units::WithDays)
        .and_then(|n| i64::try_from(n).ok())
        .ok_or_else(|| format!("time: invalid duration \"{s}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_like_loki() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000_000_000));
        assert_eq!(parse_time("1700000000.5"), Ok(1_700_000_000_500_000_000));
        assert_eq!(
            parse_time("1700000000123456789"),
            Ok(1_700_000_000_123_456_789)
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z"),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_time("2023-11-15T00:13:20.25+02:00"),
            Ok(1_700_000_000_250_000_000)
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn durations_and_forms() {
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("2d"), Ok(172_800_000_000_000));
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_form("query=%7Bapp%3D%22a%22%7D&limit=5&x=a+b&bad=%zz"),
            vec![
                ("query".into(), "{app=\"a\"}".into()),
                ("limit".into(), "5".into()),
                ("x".into(), "a b".into()),
                ("bad".into(), "%zz".into()),
            ]
        );
    }
}
