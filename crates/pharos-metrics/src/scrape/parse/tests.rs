use super::*;

fn ok(text: &str, format: Format) -> Parsed {
    parse(text, format).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Renders samples as `labels value [ts]` lines for compact comparisons.
fn render(p: &Parsed) -> Vec<String> {
    p.samples
        .iter()
        .map(|s| match s.timestamp_ms {
            Some(t) => format!("{} {} @{t}", s.labels, s.value),
            None => format!("{} {}", s.labels, s.value),
        })
        .collect()
}

fn check(text: &str, format: Format, expected: &[&str]) {
    assert_eq!(render(&ok(text, format)), expected, "{text}");
}

fn bad(text: &str, format: Format, line: usize, needle: &str) {
    let e = parse(text, format).unwrap_err();
    assert_eq!(e.line, line, "{e}\n{text}");
    assert!(e.message.contains(needle), "{e} lacks {needle:?}");
}

#[test]
fn text_format_families_and_samples() {
    let text = "\
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000
http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem=\"division by zero\"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le=\"0.05\"} 24054
http_request_duration_seconds_bucket{le=\"1\"} 33444
http_request_duration_seconds_bucket{le=\"+Inf\"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile=\"0.5\"} 4773
rpc_duration_seconds{quantile=\"1\"} NaN
rpc_duration_seconds_created 1.5e9
";
    let p = ok(text, Format::PrometheusText);
    assert_eq!(
        render(&p),
        [
            r#"{__name__="http_requests_total", code="200", method="post"} 1027 @1395066363000"#,
            r#"{__name__="http_requests_total", code="400", method="post"} 3 @1395066363000"#,
            r#"{__name__="msdos_file_access_time_seconds", error="Cannot find file:\n\"FILE.TXT\"", path="C:\\DIR\\FILE.TXT"} 1458255915"#,
            r#"{__name__="metric_without_timestamp_and_labels"} 12.47"#,
            r#"{__name__="something_weird", problem="division by zero"} inf @-3982045"#,
            r#"{__name__="http_request_duration_seconds_bucket", le="0.05"} 24054"#,
            r#"{__name__="http_request_duration_seconds_bucket", le="1.0"} 33444"#,
            r#"{__name__="http_request_duration_seconds_bucket", le="+Inf"} 144320"#,
            r#"{__name__="http_request_duration_seconds_sum"} 53423"#,
            r#"{__name__="http_request_duration_seconds_count"} 144320"#,
            r#"{__name__="rpc_duration_seconds", quantile="0.5"} 4773"#,
            r#"{__name__="rpc_duration_seconds", quantile="1.0"} NaN"#,
            // 0.0.4 has no created-timestamp notion: an ordinary sample.
            r#"{__name__="rpc_duration_seconds_created"} 1500000000"#,
        ]
    );
    let names: Vec<(&str, MetricType)> = p
        .families
        .iter()
        .map(|f| (f.name.as_str(), f.kind))
        .collect();
    assert_eq!(
        names,
        [
            ("http_requests_total", MetricType::Counter),
            ("http_request_duration_seconds", MetricType::Histogram),
            ("rpc_duration_seconds", MetricType::Summary),
        ]
    );
    assert_eq!(
        p.families[0].help.as_deref(),
        Some("The total number of HTTP requests.")
    );
}

#[test]
fn text_format_leniencies() {
    check(
        "  # free comment\n\tm{a=\"1\",} 1\r\nm { b = \"2\" }\t2\t 7 \n",
        Format::PrometheusText,
        &[
            r#"{__name__="m", a="1"} 1"#,
            r#"{__name__="m", b="2"} 2 @7"#,
        ],
    );
    check("# HELP m a \\\\ b \\n c \\t\n", Format::PrometheusText, &[]);
    let p = ok("# HELP m a \\\\ b \\n c \\t\n", Format::PrometheusText);
    assert_eq!(p.families[0].help.as_deref(), Some("a \\ b \n c \\t"));
    // Special values in any case; empty label values drop the label.
    check(
        "a -inf\nb nan\nc{x=\"\"} 1e-3\n",
        Format::PrometheusText,
        &[
            r#"{__name__="a"} -inf"#,
            r#"{__name__="b"} NaN"#,
            r#"{__name__="c"} 0.001"#,
        ],
    );
    // UTF-8 metric names, quoted inside the braces.
    check(
        "{\"my.metric\", \"label.one\"=\"x\"} 1\n",
        Format::PrometheusText,
        &[r#"{__name__="my.metric", label.one="x"} 1"#],
    );
}

#[test]
fn openmetrics_body() {
    let text = "\
# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} 9036.32
acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} 807283.0
acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"} 1605281325.0
# TYPE go_goroutines gauge
go_goroutines 69 1605281325.5
# TYPE process_cpu_seconds counter
# UNIT process_cpu_seconds seconds
process_cpu_seconds_total 4.20072246e+06
process_cpu_seconds_created 1605281325.0
# TYPE foo histogram
foo_bucket{le=\"0.0\"} 0
foo_bucket{le=\"1e-05\"} 0
foo_bucket{le=\"1000000\"} 1 # {trace_id=\"KOO5S4vxi0o\"} 0.67
foo_bucket{le=\"+Inf\"} 1
foo_count 1
foo_sum 0.67
# TYPE build info
build_info{version=\"1.0\"} 1
# EOF
";
    let p = ok(text, Format::OpenMetrics);
    assert_eq!(
        render(&p),
        [
            r#"{__name__="acme_http_router_request_seconds_sum", method="GET", path="/api/v1"} 9036.32"#,
            r#"{__name__="acme_http_router_request_seconds_count", method="GET", path="/api/v1"} 807283"#,
            r#"{__name__="go_goroutines"} 69 @1605281325500"#,
            r#"{__name__="process_cpu_seconds_total"} 4200722.46"#,
            r#"{__name__="foo_bucket", le="0.0"} 0"#,
            r#"{__name__="foo_bucket", le="1e-05"} 0"#,
            r#"{__name__="foo_bucket", le="1e+06"} 1"#,
            r#"{__name__="foo_bucket", le="+Inf"} 1"#,
            r#"{__name__="foo_count"} 1"#,
            r#"{__name__="foo_sum"} 0.67"#,
            r#"{__name__="build_info", version="1.0"} 1"#,
        ]
    );
    let f = &p.families[0];
    assert_eq!(f.kind, MetricType::Summary);
    assert_eq!(f.unit.as_deref(), Some("seconds"));
    assert!(f.help.as_deref().unwrap().starts_with("Latency"));
}

#[test]
fn openmetrics_float_formatting_matches_go() {
    for (f, s) in [
        (1.0, "1.0"),
        (0.25, "0.25"),
        (100000.0, "100000.0"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5e-7, "-2.5e-07"),
        (1e100, "1e+100"),
    ] {
        assert_eq!(format_om_float(f), s, "{f}");
    }
}

#[test]
fn malformed_text_is_refused_with_line_numbers() {
    let t = Format::PrometheusText;
    bad("ok 1\nbad{a=\"1\" 2\n", t, 2, "expected , or }");
    bad("m{a=\"1\",a=\"2\"} 1\n", t, 1, "duplicate label name");
    bad("m 1 2 3\n", t, 1, "optional timestamp");
    bad("m abc\n", t, 1, "invalid value");
    bad("m 1 1.5\n", t, 1, "invalid timestamp");
    bad("m{a=\"\\x\"} 1\n", t, 1, "invalid escape");
    bad("m{a=\"unterminated} 1\n", t, 1, "unterminated");
    bad("m{a=1} 1\n", t, 1, "quoted value");
    bad("m{1a=\"x\"} 1\n", t, 1, "invalid label name");
    bad("9m 1\n", t, 1, "invalid metric name");
    bad("m\n", t, 1, "space before the value");
    bad("# TYPE m bogus\n", t, 1, "invalid metric type");
    bad("# TYPE m counter\n# TYPE m gauge\n", t, 2, "second # TYPE");
    bad("m{__name__=\"x\"} 1\n", t, 1, "__name__");
    bad("{} 1\n", t, 1, "expected a metric name");
}

#[test]
fn malformed_openmetrics_is_refused() {
    let om = Format::OpenMetrics;
    bad("m 1\n", om, 2, "missing # EOF");
    bad("m 1\n# EOF\nn 2\n", om, 3, "after # EOF");
    bad("m 1\n\nn 2\n# EOF\n", om, 2, "blank line");
    bad("# free comment\n# EOF\n", om, 1, "unexpected comment");
    bad("# TYPE c counter\nc 1\n# EOF\n", om, 2, "_total");
    bad(
        "# TYPE m gauge\n# UNIT m seconds\n# EOF\n",
        om,
        2,
        "not a suffix",
    );
    bad("m  1\n# EOF\n", om, 1, "invalid value");
    bad("# TYPE m untyped\n# EOF\n", om, 1, "invalid metric type");
    bad("m 1 abc\n# EOF\n", om, 1, "invalid timestamp");
    // `# EOF` without a trailing newline is fine.
    assert_eq!(render(&ok("m 1\n# EOF", om)), [r#"{__name__="m"} 1"#]);
}

#[test]
fn content_types() {
    assert_eq!(
        Format::from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::from_content_type("text/plain; version=0.0.4"),
        Format::PrometheusText
    );
    assert_eq!(Format::from_content_type(""), Format::PrometheusText);
}

#[test]
fn never_panics_on_garbage() {
    // Every prefix and a few byte mutations of a valid body either parse or fail cleanly.
    let body = "# HELP a_total x\\n\n# TYPE a counter\na_total{l=\"v\\\"\",m=\"é\"} 1 # {t=\"1\"} 2 3\n{\"q.x\"} +Inf 5\n# EOF\n";
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        for end in 0..=body.len() {
            if body.is_char_boundary(end) {
                let _ = parse(&body[..end], format);
            }
        }
        for i in 0..body.len() {
            if !(body.is_char_boundary(i) && body.is_char_boundary(i + 1)) {
                continue;
            }
            for c in ['{', '}', '"', '\\', ' ', '\n', '#', '=', ',', 'é'] {
                let mut s = body.to_owned();
                s.replace_range(i..i + 1, c.encode_utf8(&mut [0; 4]));
                let _ = parse(&s, format);
            }
        }
    }
}
