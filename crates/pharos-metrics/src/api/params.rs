//! Request parameters: form decoding and Prometheus' time and duration formats, with its
//! error wording.

/// Decoded form values: the body's (for a form POST) first, then the URL query's, as Go's
/// `Request.Form` orders them.
#[derive(Debug, Default, Clone)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Parses a body (when `is_form_body`) and a raw URL query.
    pub fn parse(body: Option<&[u8]>, query: Option<&str>) -> Form {
        let mut pairs = Vec::new();
        if let Some(b) = body {
            pairs.extend(pharos_model::urlencoded::parse(&String::from_utf8_lossy(b)));
        }
        if let Some(q) = query {
            pairs.extend(pharos_model::urlencoded::parse(q));
        }
        Form(pairs)
    }

    /// Returns the first value of `key`, or `""` (Go's `FormValue`).
    pub fn value(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Returns every value of `key`, in order.
    pub fn values(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Prometheus' smallest and largest API timestamps, as its clients format them.
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_FORMATTED: &str = "292277025-08-17T07:12:55.807Z";

/// Parses a timestamp given as unix seconds (a float, rounded to milliseconds) or RFC3339,
/// into milliseconds.
///
/// # Errors
///
/// Returns `cannot parse "<s>" to a valid timestamp`.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Some(f) = s.parse::<f64>().ok().filter(|f| f.is_finite()) {
        let secs = f.trunc();
        let frac = ((f - secs) * 1000.0).round();
        return Ok((secs as i64)
            .saturating_mul(1000)
            .saturating_add(frac as i64));
    }
    if let Some(t) = parse_rfc3339(s) {
        return Ok(t);
    }
    match s {
        MIN_TIME_FORMATTED => Ok(i64::MIN),
        MAX_TIME_FORMATTED => Ok(i64::MAX),
        _ => Err(format!("cannot parse {s:?} to a valid timestamp")),
    }
}

/// Parses an optional time parameter: `""` yields `default`.
///
/// # Errors
///
/// As [`parse_time`].
pub fn parse_time_or(s: &str, default: i64) -> Result<i64, String> {
    if s.is_empty() {
        Ok(default)
    } else {
        parse_time(s)
    }
}

/// Parses a duration given as float seconds or a Prometheus duration (`5m`, `1h30m`) into
/// nanoseconds; zero and negative values are returned for the caller to judge.
///
/// # Errors
///
/// Returns `cannot parse "<s>" to a valid duration`.
pub fn parse_duration_ns(s: &str) -> Result<i128, String> {
    if let Ok(f) = s.parse::<f64>() {
        let ns = f * 1e9;
        if !ns.is_finite() || ns > i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(ns as i128);
    }
    match promql_parser::util::parse_duration(s) {
        Ok(d) => Ok(d.as_nanos() as i128),
        Err(e) if e.contains("greater than 0") => Ok(0),
        Err(_) => Err(format!("cannot parse {s:?} to a valid duration")),
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` into milliseconds (fractions truncated).
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 59
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..i.min(start + 3)];
        millis = digits.parse::<i64>().ok()? * 10_i64.pow(3 - digits.len() as u32);
    }
    let offset_s = match &s[i..] {
        "Z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if tz.starts_with('-') { -o } else { o }
        }
        _ => return None,
    };
    let days = pharos_model::civil::days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_s;
    Some(secs * 1000 + millis)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.1234"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("-1.5"), Ok(-1500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.5+01:00"),
            Ok(1_699_996_400_500)
        );
        assert_eq!(parse_time("1970-01-01T00:00:00.123456789Z"), Ok(123));
        assert_eq!(parse_time(MAX_TIME_FORMATTED), Ok(i64::MAX));
        assert_eq!(
            parse_time("x"),
            Err(r#"cannot parse "x" to a valid timestamp"#.into())
        );
        assert_eq!(
            parse_time(""),
            Err(r#"cannot parse "" to a valid timestamp"#.into())
        );
        assert!(parse_time("2023-02-30T00:00:00Z").is_err());
        assert_eq!(parse_time_or("", 7), Ok(7));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("15"), Ok(15_000_000_000));
        assert_eq!(parse_duration_ns("0.5"), Ok(500_000_000));
        assert_eq!(parse_duration_ns("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration_ns("0"), Ok(0));
        assert_eq!(parse_duration_ns("-3"), Ok(-3_000_000_000));
        assert_eq!(
            parse_duration_ns("abc"),
            Err(r#"cannot parse "abc" to a valid duration"#.into())
        );
    }

    #[test]
    fn forms() {
        let f = Form::parse(
            Some(b"query=up%7Bjob%3D%22a%22%7D&match[]=a"),
            Some("match%5B%5D=b&query=ignored&x=1+2"),
        );
        assert_eq!(f.value("query"), "up{job=\"a\"}");
        assert_eq!(f.values("match[]"), ["a", "b"]);
        assert_eq!(f.value("x"), "1 2");
        assert_eq!(f.value("missing"), "");
        assert_eq!(Form::parse(None, Some("a=%zz%")).value("a"), "%zz%");
    }
}
