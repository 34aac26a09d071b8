use super::*;

fn parse(yaml: &str) -> Result<PrometheusReceiverConfig, String> {
    let c: PrometheusReceiverConfig = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
    c.validate()?;
    Ok(c)
}

fn bad(yaml: &str, needle: &str) {
    let e = parse(yaml).unwrap_err();
    assert!(e.contains(needle), "{e:?} lacks {needle:?}");
}

const GOOD: &str = r#"
config:
  global:
    scrape_interval: 30s
  scrape_configs:
    - job_name: node
      scrape_interval: 15s
      metrics_path: /probe
      honor_labels: true
      honor_timestamps: false
      params:
        module: [http_2xx]
      basic_auth:
        username: u
        password_file: /run/secrets/pw
      static_configs:
        - targets: ["127.0.0.1:9100", "[::1]:9100"]
          labels: { env: prod }
      file_sd_configs:
        - files: [targets/*.json, more.yml]
          refresh_interval: 1m
      relabel_configs:
        - source_labels: [__address__]
          regex: "(.*):.*"
          target_label: host
          replacement: "$1"
        - action: LabelMap
          regex: __meta_(.+)
      metric_relabel_configs:
        - source_labels: [__name__]
          regex: go_.*
          action: drop
    - job_name: app
      authorization:
        credentials: secret
"#;

#[test]
fn good_config_loads_with_defaults() {
    let c = parse(GOOD).unwrap();
    let global = &c.config.global;
    let [node, app] = &c.config.scrape_configs[..] else {
        panic!("two jobs expected")
    };
    assert_eq!(
        node.scrape_interval(global).unwrap(),
        Duration::from_secs(15)
    );
    assert_eq!(
        node.scrape_timeout(global).unwrap(),
        Duration::from_secs(10)
    );
    assert_eq!(node.metrics_path, "/probe");
    assert!(node.honor_labels && !node.honor_timestamps);
    assert_eq!(node.params["module"], ["http_2xx"]);
    assert_eq!(node.static_configs[0].labels["env"], "prod");
    assert_eq!(node.relabel_configs[1].action.as_deref(), Some("LabelMap"));
    assert_eq!(
        ScrapeConfig::refresh_interval(&node.file_sd_configs[0]).unwrap(),
        Duration::from_secs(60)
    );
    assert_eq!(
        app.scrape_interval(global).unwrap(),
        Duration::from_secs(30)
    );
    assert_eq!(app.metrics_path, "/metrics");
    assert_eq!(app.scheme, "http");
    assert!(!app.honor_labels && app.honor_timestamps);
    assert_eq!(
        app.authorization.as_ref().unwrap().credentials.as_deref(),
        Some("secret")
    );
}

#[test]
fn defaults_without_global() {
    let c = parse("config:\n  scrape_configs:\n    - job_name: a\n    - job_name: b\n      scrape_interval: 5s\n").unwrap();
    let g = &c.config.global;
    let [a, b] = &c.config.scrape_configs[..] else {
        panic!()
    };
    assert_eq!(a.scrape_interval(g).unwrap(), Duration::from_secs(60));
    assert_eq!(a.scrape_timeout(g).unwrap(), Duration::from_secs(10));
    // The global timeout is capped at a shorter job interval.
    assert_eq!(b.scrape_timeout(g).unwrap(), Duration::from_secs(5));
    assert_eq!(parse("{}").unwrap(), PrometheusReceiverConfig::default());
}

#[test]
fn bad_configs_are_refused() {
    let job = |extra: &str| format!("config:\n  scrape_configs:\n    - job_name: j\n{extra}");
    bad(
        &job("      scrape_interval: 10s\n      scrape_timeout: 20s\n"),
        "greater than scrape_interval",
    );
    bad(
        "config:\n  global:\n    scrape_interval: 5s\n",
        "global.scrape_timeout: greater",
    );
    bad(&job("      scheme: https\n"), "https is not supported yet");
    bad(&job("      scheme: ftp\n"), "is not http");
    bad(
        &job("      scrape_interval: often\n"),
        "not a positive duration",
    );
    bad(&job("      metrics_path: metrics\n"), "must start with /");
    bad(&job("      tls_config: {}\n"), "tls_config");
    bad(
        &job("      static_configs:\n        - targets: [a]\n          lables: {}\n"),
        "lables",
    );
    bad(
        &job("      static_configs:\n        - targets: [\"http://a:1\"]\n"),
        "is not host:port",
    );
    bad(
        &job("      relabel_configs:\n        - action: rename\n"),
        "unknown action \"rename\"",
    );
    bad(
        &job("      relabel_configs:\n        - regexp: x\n"),
        "regexp",
    );
    bad(
        &job("      basic_auth: {username: u, password: p, password_file: f}\n"),
        "at most one of password",
    );
    bad(
        &job("      bearer_token: t\n      basic_auth: {username: u}\n"),
        "at most one of basic_auth",
    );
    bad(
        &job("      authorization: {type: Bearer}\n"),
        "exactly one of credentials",
    );
    bad(
        &job("      file_sd_configs:\n        - files: [targets.txt]\n"),
        "must end in .json",
    );
    bad(
        &format!("{}    - job_name: j\n", job("")),
        "\"j\" is used twice",
    );
    bad(
        "config:\n  scrape_configs:\n    - scrape_interval: 1s\n",
        "job_name",
    );
    bad("config:\n  rule_files: []\n", "rule_files");
}

#[test]
fn target_files_in_json_and_yaml() {
    let json = r#"[{"targets": ["10.0.0.1:9100"], "labels": {"env": "dev"}}, {"targets": ["10.0.0.2:9100"]}]"#;
    let yaml =
        "- targets:\n    - 10.0.0.1:9100\n  labels:\n    env: dev\n- targets: ['10.0.0.2:9100']\n";
    let a = parse_target_file(json).unwrap();
    assert_eq!(a, parse_target_file(yaml).unwrap());
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].labels["env"], "dev");
    assert!(parse_target_file("").unwrap().is_empty());
    assert!(parse_target_file("[{\"targetz\": []}]").is_err());
}

#[test]
fn registered_as_a_receiver_type() {
    use crate::config::{ComponentId, Config, Receiver};
    let yaml = r#"
receivers:
  otlp:
  prometheus/node:
    config:
      scrape_configs:
        - job_name: node
          static_configs: [{ targets: ["127.0.0.1:9100"] }]
          relabel_configs:
            - { source_labels: [__address__], target_label: host, replacement: "$$1" }
service:
  pipelines:
    metrics:
      receivers: [otlp, prometheus/node]
      exporters: [pharos]
exporters:
  pharos:
"#;
    let c = Config::from_yaml("pharos.yaml", yaml).unwrap();
    let p = c.receivers[&ComponentId::new("prometheus/node")]
        .as_prometheus()
        .unwrap();
    assert_eq!(p.config.scrape_configs[0].job_name, "node");
    // `$$` is the Collector's escape for a literal `$`.
    assert_eq!(
        p.config.scrape_configs[0].relabel_configs[0]
            .replacement
            .as_deref(),
        Some("$1")
    );
    assert!(
        c.receivers[&ComponentId::new("otlp")]
            .as_prometheus()
            .is_none()
    );
    assert!(matches!(
        c.receivers[&ComponentId::new("otlp")],
        Receiver::Otlp(_)
    ));

    let e = Config::from_yaml(
        "pharos.yaml",
        &yaml.replace("    metrics:\n", "    traces:\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("prometheus/node receives metrics only"), "{e}");
    let e = Config::from_yaml(
        "pharos.yaml",
        &yaml.replace("job_name: node", "job_name: node\n          scheme: https"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("receivers.prometheus/node.config.scrape_configs[0] (node).scheme: https is not supported yet"),
        "{e}"
    );
}
