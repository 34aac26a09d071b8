use super::*;

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml("pharos.yaml", yaml)
}

fn err(yaml: &str) -> String {
    parse(yaml).unwrap_err().to_string()
}

#[test]
fn empty_file_is_the_default() {
    assert_eq!(parse("").unwrap(), Config::default());
    assert_eq!(parse("# nothing\n").unwrap(), Config::default());
}

#[test]
fn collector_shaped_config_loads() {
    let c = parse(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
      http:
        endpoint: 127.0.0.1:14318
processors:
  batch:
    timeout: 200ms
  memory_limiter:
    check_interval: 1s
    limit_mib: 512
exporters:
  pharos: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [pharos]
    metrics/app:
      receivers: [otlp]
      exporters: [pharos]
storage:
  path: /var/lib/pharos
  wal:
    fsync: interval
    fsync_interval_ms: 50
retention:
  traces_hours: 24
query:
  endpoint: 0.0.0.0:4319
"#,
    )
    .unwrap();
    let otlp = c.receivers[&ComponentId::new("otlp")].as_otlp().unwrap();
    assert_eq!(
        otlp.protocols.grpc.as_ref().unwrap().endpoint,
        "127.0.0.1:4317"
    );
    assert_eq!(
        otlp.protocols.http.as_ref().unwrap().endpoint,
        "127.0.0.1:14318"
    );
    assert_eq!(c.memory_limiter().unwrap().limit_bytes(1 << 40), 512 << 20);
    assert!(c.has_pipeline("traces") && c.has_pipeline("metrics") && !c.has_pipeline("logs"));
    assert_eq!(c.storage.wal.fsync, FsyncMode::Interval);
    assert_eq!(c.retention.traces_hours, 24);
    assert_eq!(c.retention.logs_hours, 31 * 24);
}

#[test]
fn unknown_keys_name_file_line_and_key() {
    let e = err("storage:\n  path: x\n  wal:\n    fsink: always\n");
    assert!(e.starts_with("pharos.yaml:"), "{e}");
    assert!(e.contains("fsink"), "{e}");
    assert!(e.contains('4'), "line 4 should be named: {e}");
    let e = err("receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpont: x\n");
    assert!(e.contains("endpont"), "{e}");
}

#[test]
fn wrong_types_are_refused() {
    let e = err("storage:\n  wal:\n    segment_max_bytes: lots\n");
    assert!(
        e.contains("segment_max_bytes") || e.contains("line 3"),
        "{e}"
    );
    let e = err("storage:\n  wal:\n    fsync: sometimes\n");
    assert!(e.contains("sometimes"), "{e}");
}

#[test]
fn unknown_component_types_are_refused() {
    let e = err("processors:\n  tail_sampling: {}\n");
    assert!(
        e.contains("unknown processor type \"tail_sampling\""),
        "{e}"
    );
    let e = err("exporters:\n  jaeger: {}\n");
    assert!(e.contains("unknown exporter type"), "{e}");
}

#[test]
fn pipelines_must_reference_defined_components() {
    let e = err(
        "service:\n  pipelines:\n    traces:\n      receivers: [otlp/2]\n      exporters: [pharos]\n",
    );
    assert!(e.contains("otlp/2 is not defined"), "{e}");
    let e = err(
        "service:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n      exporters: [pharos]\n",
    );
    assert!(e.contains("unknown signal"), "{e}");
}

#[test]
fn env_references_expand() {
    // SAFETY: this test alone sets this variable.
    unsafe { std::env::set_var("PHAROS_TEST_QUERY_PORT", "14319") };
    let c = parse("query:\n  endpoint: 127.0.0.1:${env:PHAROS_TEST_QUERY_PORT}\n").unwrap();
    assert_eq!(c.query.endpoint, "127.0.0.1:14319");
    let e = err("query:\n  endpoint: ${env:PHAROS_TEST_UNSET_VAR_X}\n");
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn trace_limits_default_like_tempo_and_parse() {
    let d = Config::default().limits;
    assert_eq!(
        (d.max_spans_per_trace, d.max_bytes_per_trace),
        (50_000, 5_000_000)
    );
    let c = parse("limits:\n  max_spans_per_trace: 10\n  max_bytes_per_trace: 0\n").unwrap();
    assert_eq!(c.limits.max_spans_per_trace, 10);
    assert_eq!(c.limits.max_bytes_per_trace, 0);
    assert_eq!(c.limits.max_series_per_metric, 0);
    let e = err("limits:\n  max_spans_per_trace: many\n");
    assert!(
        e.contains("max_spans_per_trace") || e.contains("line 2"),
        "{e}"
    );
    let e = err("limits:\n  max_span_per_trace: 10\n");
    assert!(e.contains("max_span_per_trace"), "{e}");
}

#[test]
fn trace_storage_defaults_like_tempo_and_checks_durations() {
    let d = Config::default().storage.traces;
    assert_eq!(
        d.durations().unwrap(),
        (
            std::time::Duration::from_secs(300),
            std::time::Duration::from_secs(3600)
        )
    );
    assert_eq!(d.max_block_bytes, 128 << 20);
    let c = parse("storage:\n  traces:\n    max_block_duration: 30s\n    compaction_window: 2h\n    max_block_bytes: 1000\n").unwrap();
    assert_eq!(c.storage.traces.durations().unwrap().0.as_secs(), 30);
    assert_eq!(c.storage.traces.max_block_bytes, 1000);
    let e = err("storage:\n  traces:\n    max_block_duration: soon\n");
    assert!(e.contains("storage.traces.max_block_duration"), "{e}");
    let e = err("storage:\n  traces:\n    max_block_bytes: 0\n");
    assert!(e.contains("storage.traces.max_block_bytes"), "{e}");
}
