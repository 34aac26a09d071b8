use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn spec(action: Action) -> RelabelSpec {
    RelabelSpec {
        action,
        ..RelabelSpec::default()
    }
}

fn src(mut s: RelabelSpec, sources: &[&str]) -> RelabelSpec {
    s.source_labels = sources.iter().map(|s| s.to_string()).collect();
    s
}

/// Runs `specs` over `input`; `expected` None means dropped.
fn check(input: &[(&str, &str)], specs: Vec<RelabelSpec>, expected: Option<&[(&str, &str)]>) {
    let configs: Vec<RelabelConfig> = specs
        .into_iter()
        .map(|s| RelabelConfig::new(s).unwrap())
        .collect();
    assert_eq!(
        process(&labels(input), &configs),
        expected.map(labels),
        "{input:?}"
    );
}

#[test]
fn md5_matches_rfc_1321() {
    for (input, hex_digest) in [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ] {
        assert_eq!(hex::encode(md5(input.as_bytes())), hex_digest);
    }
}

#[test]
fn replace_with_defaults_copies_the_joined_value() {
    let mut s = src(spec(Action::Replace), &["a", "b"]);
    s.target_label = Some("c".into());
    check(
        &[("a", "x"), ("b", "y")],
        vec![s],
        Some(&[("a", "x"), ("b", "y"), ("c", "x;y")]),
    );
}

#[test]
fn replace_expands_groups_like_go() {
    // Prometheus docs: `__address__` → `__param_target`, `instance` from a capture.
    let mut s = src(spec(Action::Replace), &["__address__"]);
    s.regex = Some("([^:]+):(?P<port>\\d+)".into());
    s.target_label = Some("host_${1}_x".into());
    s.replacement = Some("$1/${port}/$port_/$$/$2x".into());
    // `$port_` names a group that does not exist and `$2x` likewise: both expand to "".
    check(
        &[("__address__", "node:9100")],
        vec![s],
        Some(&[
            ("__address__", "node:9100"),
            ("host_node_x", "node/9100//$/"),
        ]),
    );
}

#[test]
fn replace_without_match_or_with_empty_result() {
    let mut no_match = src(spec(Action::Replace), &["a"]);
    no_match.regex = Some("y".into());
    no_match.target_label = Some("b".into());
    check(
        &[("a", "yy"), ("b", "keep")],
        vec![no_match],
        Some(&[("a", "yy"), ("b", "keep")]),
    );
    // An empty replacement deletes the target; the regex is anchored, so "y" matches only "y".
    let mut delete = src(spec(Action::Replace), &["a"]);
    delete.target_label = Some("b".into());
    delete.replacement = Some(String::new());
    check(&[("a", "1"), ("b", "2")], vec![delete], Some(&[("a", "1")]));
    // Setting a constant from no sources: `(.*)` matches "".
    let mut constant = spec(Action::Replace);
    constant.target_label = Some("env".into());
    constant.replacement = Some("prod".into());
    check(
        &[("a", "1")],
        vec![constant],
        Some(&[("a", "1"), ("env", "prod")]),
    );
    // A target that expands to an invalid name leaves the set alone.
    let mut bad_target = src(spec(Action::Replace), &["a"]);
    bad_target.target_label = Some("${1}".into());
    check(&[("a", "1x")], vec![bad_target], Some(&[("a", "1x")]));
}

#[test]
fn keep_and_drop() {
    let mut keep = src(
        spec(Action::Keep),
        &["__meta_kubernetes_service_annotation_prometheus_io_scrape"],
    );
    keep.regex = Some("true".into());
    check(
        &[(
            "__meta_kubernetes_service_annotation_prometheus_io_scrape",
            "true",
        )],
        vec![keep.clone()],
        Some(&[(
            "__meta_kubernetes_service_annotation_prometheus_io_scrape",
            "true",
        )]),
    );
    check(&[("a", "b")], vec![keep], None);
    let mut drop = src(spec(Action::Drop), &["__name__", "le"]);
    drop.regex = Some("http_.*_bucket;0\\.5".into());
    check(
        &[("__name__", "http_req_bucket"), ("le", "0.5")],
        vec![drop.clone()],
        None,
    );
    check(
        &[("__name__", "http_req_bucket"), ("le", "0.55")],
        vec![drop],
        Some(&[("__name__", "http_req_bucket"), ("le", "0.55")]),
    );
}

#[test]
fn keepequal_and_dropequal() {
    let mut keep = src(spec(Action::KeepEqual), &["__meta_port"]);
    keep.target_label = Some("port".into());
    check(
        &[("__meta_port", "80"), ("port", "80")],
        vec![keep.clone()],
        Some(&[("__meta_port", "80"), ("port", "80")]),
    );
    check(&[("__meta_port", "80"), ("port", "81")], vec![keep], None);
    let mut drop = src(spec(Action::DropEqual), &["a"]);
    drop.target_label = Some("b".into());
    check(&[("a", "1"), ("b", "1")], vec![drop.clone()], None);
    check(&[("a", "1")], vec![drop], Some(&[("a", "1")]));
}

#[test]
fn hashmod_matches_prometheus() {
    // Prometheus' relabel_test.go: "baz" with modulus 1000 → 976 (md5 tail, big-endian).
    let mut s = src(spec(Action::HashMod), &["a"]);
    s.target_label = Some("shard".into());
    s.modulus = Some(1000);
    check(
        &[("a", "baz")],
        vec![s],
        Some(&[("a", "baz"), ("shard", "976")]),
    );
}

#[test]
fn labelmap_labeldrop_labelkeep() {
    let mut map = spec(Action::LabelMap);
    map.regex = Some("__meta_kubernetes_pod_label_(.+)".into());
    check(
        &[("__meta_kubernetes_pod_label_app", "web"), ("job", "j")],
        vec![map],
        Some(&[
            ("__meta_kubernetes_pod_label_app", "web"),
            ("app", "web"),
            ("job", "j"),
        ]),
    );
    let mut drop = spec(Action::LabelDrop);
    drop.regex = Some("tmp_.*".into());
    check(
        &[("tmp_a", "1"), ("keep", "2")],
        vec![drop],
        Some(&[("keep", "2")]),
    );
    let mut keep = spec(Action::LabelKeep);
    keep.regex = Some("__name__|job".into());
    check(
        &[("__name__", "m"), ("job", "j"), ("x", "y")],
        vec![keep],
        Some(&[("__name__", "m"), ("job", "j")]),
    );
}

#[test]
fn lowercase_uppercase_and_chains() {
    let mut lower = src(spec(Action::Lowercase), &["a"]);
    lower.target_label = Some("a_lower".into());
    let mut upper = src(spec(Action::Uppercase), &["a"]);
    upper.target_label = Some("a_upper".into());
    check(
        &[("a", "MiXeD")],
        vec![lower, upper],
        Some(&[("a", "MiXeD"), ("a_lower", "mixed"), ("a_upper", "MIXED")]),
    );
}

#[test]
fn regex_is_anchored_and_dot_matches_newline() {
    let mut keep = src(spec(Action::Keep), &["a"]);
    keep.regex = Some("b.c".into());
    check(&[("a", "b\nc")], vec![keep.clone()], Some(&[("a", "b\nc")]));
    check(&[("a", "xb.c")], vec![keep], None);
}

#[test]
fn invalid_configs_are_refused() {
    let e = |s: RelabelSpec| RelabelConfig::new(s).unwrap_err().to_string();
    assert!(e(spec(Action::Replace)).contains("requires 'target_label'"));
    let mut h = src(spec(Action::HashMod), &["a"]);
    h.target_label = Some("t".into());
    assert!(e(h).contains("non-zero modulus"));
    let mut r = spec(Action::Keep);
    r.regex = Some("(".into());
    assert!(e(r).contains("invalid regex"));
    let mut l = spec(Action::LabelDrop);
    l.target_label = Some("x".into());
    assert!(e(l).contains("only 'regex'"));
    let mut k = src(spec(Action::KeepEqual), &["a"]);
    k.target_label = Some("b".into());
    k.regex = Some("x".into());
    assert!(e(k).contains("no other fields"));
    let mut t = src(spec(Action::Lowercase), &["a"]);
    t.target_label = Some("1bad".into());
    assert!(e(t).contains("invalid 'target_label'"));
    assert_eq!(Action::parse("LabelMap"), Some(Action::LabelMap));
    assert_eq!(Action::parse("nope"), None);
}
