//! OpenTelemetry → Prometheus names, as Prometheus' `otlptranslator` builds them with
//! `UnderscoreEscapingWithSuffixes` (the default): invalid characters become `_`, runs of
//! `_` collapse, the UCUM unit becomes a suffix, counters end in `_total`, unit `1` gauges
//! in `_ratio`, and no suffix is added twice.

/// The Prometheus type an OTLP metric maps to, as far as naming cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// An OTLP gauge.
    Gauge,
    /// A monotonic sum: a counter, named `_total`.
    MonotonicCounter,
    /// A non-monotonic sum: stored as a gauge, but never given `_ratio`.
    NonMonotonicCounter,
    /// A histogram or summary: the base name of its `_bucket`/`_sum`/`_count` series.
    Distribution,
}

/// Returns the Prometheus metric name for an OTLP metric name, unit and kind.
pub fn metric_name(name: &str, unit: &str, kind: NameKind) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !is_metric_char(c))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();

    let (main, per) = unit_suffixes(unit);
    let main = clean_unit(&main);
    let per = clean_unit(&per);
    add_unit_tokens(&mut tokens, main, per);

    if kind == NameKind::MonotonicCounter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && kind == NameKind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }

    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Returns the Prometheus label name for an OTLP attribute key: characters outside
/// `[a-zA-Z0-9_]` become `_`, a leading digit gets a `key_` prefix and a leading single `_`
/// a `key` prefix (as Prometheus does). A leading `__` is reserved for Pharos' own labels
/// (`__name__`), so user keys starting with it also get the `key` prefix (Prometheus keeps
/// them). Returns `None` for an empty key.
pub fn label_name(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') {
        out.insert_str(0, "key");
    }
    Some(out)
}

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

fn add_unit_tokens(tokens: &mut Vec<String>, main: String, per: String) {
    let main = if tokens.contains(&main) {
        String::new()
    } else {
        main
    };
    let per = if per == "per_" {
        String::new()
    } else {
        let p = per.strip_suffix('_').unwrap_or(&per).to_owned();
        if tokens.contains(&p) {
            String::new()
        } else {
            p
        }
    };
    if !main.is_empty() {
        tokens.push(main.strip_suffix('_').unwrap_or(&main).to_owned());
    }
    if !per.is_empty() {
        tokens.push(per);
    }
}

/// Splits a UCUM unit into its Prometheus main and `per_` suffixes; annotated parts
/// (`{...}`) are dropped.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main_otel = parts.next().unwrap_or("").trim();
    let main = if !main_otel.is_empty() && !main_otel.contains(['{', '}']) {
        main_unit(main_otel).to_owned()
    } else {
        String::new()
    };
    let mut per = String::new();
    if let Some(p) = parts.next().filter(|p| !p.is_empty()) {
        let p = p.trim();
        if !p.is_empty() && !p.contains(['{', '}']) {
            per = per_unit(p).to_owned();
        }
        if !per.is_empty() {
            per.insert_str(0, "per_");
        }
    }
    (main, per)
}

/// Replaces characters outside `[a-zA-Z0-9:]` with `_`, collapses runs and trims a leading `_`.
fn clean_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out.strip_prefix('_').map(str::to_owned).unwrap_or(out)
}

fn main_unit(u: &str) -> &str {
    match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

fn per_unit(u: &str) -> &str {
    match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use NameKind::*;

    fn check(name: &str, unit: &str, kind: NameKind, expected: &str) {
        assert_eq!(
            metric_name(name, unit, kind),
            expected,
            "{name} [{unit}] {kind:?}"
        );
    }

    #[test]
    fn metric_names() {
        check(
            "http.server.duration",
            "s",
            Distribution,
            "http_server_duration_seconds",
        );
        check(
            "http.server.requests",
            "1",
            MonotonicCounter,
            "http_server_requests_total",
        );
        check("requests_total", "", MonotonicCounter, "requests_total");
        check("total.requests", "", MonotonicCounter, "requests_total");
        check("cpu.utilization", "1", Gauge, "cpu_utilization_ratio");
        check(
            "cpu.utilization",
            "1",
            NonMonotonicCounter,
            "cpu_utilization",
        );
        check("disk_ratio", "1", Gauge, "disk_ratio");
        check("mem.used", "By", Gauge, "mem_used_bytes");
        check("mem_used_bytes", "By", Gauge, "mem_used_bytes");
        check("queue", "{messages}", Gauge, "queue");
        check("throughput", "By/s", Gauge, "throughput_bytes_per_second");
        check("rate", "{req}/s", Gauge, "rate_per_second");
        check("weird", "foo/bar", Gauge, "weird_foo_per_bar");
        check("a..b__c", "", Gauge, "a_b_c");
        check("_leading_", "", Gauge, "leading");
        check("2xx", "", Gauge, "_2xx");
        check("ns:m", "ms", MonotonicCounter, "ns:m_milliseconds_total");
        check("temp", "Cel", Gauge, "temp_celsius");
        check("ünïcode", "", Gauge, "n_code");
    }

    #[test]
    fn label_names() {
        assert_eq!(label_name("http.method").as_deref(), Some("http_method"));
        assert_eq!(label_name("2xx").as_deref(), Some("key_2xx"));
        assert_eq!(label_name("_x").as_deref(), Some("key_x"));
        assert_eq!(label_name("__name__").as_deref(), Some("key__name__"));
        assert_eq!(label_name("a-b/c").as_deref(), Some("a_b_c"));
        assert_eq!(label_name(""), None);
    }
}
