//! Duration strings as Go's `time.ParseDuration` reads them, the form used by
//! Collector configs, Jaeger and Loki parameters.

/// Which units a duration may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    /// Go's own: `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`.
    Go,
    /// Go's plus Prometheus' `d`, `w`, `y` (as Loki accepts them).
    WithDays,
}

/// Parses one or more `<number><unit>` runs (`1m30s`, `1.5h`, `250ms`) into
/// nanoseconds; a bare `0` is zero. Returns `None` for anything else,
/// including a number without a unit.
pub fn parse_nanos(s: &str, units: Units) -> Option<i128> {
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match (&rest[..unit_end], units) {
            ("ns", _) => 1.0,
            ("us" | "µs" | "μs", _) => 1e3,
            ("ms", _) => 1e6,
            ("s", _) => 1e9,
            ("m", _) => 60e9,
            ("h", _) => 3600e9,
            ("d", Units::WithDays) => 86_400e9,
            ("w", Units::WithDays) => 604_800e9,
            ("y", Units::WithDays) => 31_536_000e9,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Some(total.round() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_and_long_units() {
        assert_eq!(parse_nanos("1.5s", Units::Go), Some(1_500_000_000));
        assert_eq!(parse_nanos("100ms", Units::Go), Some(100_000_000));
        assert_eq!(parse_nanos("1m30s", Units::Go), Some(90_000_000_000));
        assert_eq!(parse_nanos("10us", Units::Go), Some(10_000));
        assert_eq!(parse_nanos("0", Units::Go), Some(0));
        assert_eq!(parse_nanos("10", Units::Go), None);
        assert_eq!(parse_nanos("", Units::Go), None);
        assert_eq!(parse_nanos("2d", Units::Go), None);
        assert_eq!(
            parse_nanos("2d", Units::WithDays),
            Some(172_800_000_000_000)
        );
        assert_eq!(
            parse_nanos("1h30m", Units::WithDays),
            Some(5_400_000_000_000)
        );
        assert_eq!(parse_nanos("soon", Units::WithDays), None);
    }
}
