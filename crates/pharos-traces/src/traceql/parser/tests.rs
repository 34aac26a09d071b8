use super::*;

fn q(src: &str) -> Query {
    parse(src).unwrap_or_else(|e| panic!("{src}: {e}"))
}

/// Parses and prints back in the canonical, fully parenthesized form.
fn show(src: &str) -> String {
    q(src).to_string()
}

fn err(src: &str) -> ParseError {
    match parse(src) {
        Ok(q) => panic!("{src} parsed as {q}"),
        Err(e) => e,
    }
}

fn only_filter(src: &str) -> FieldExpr {
    match q(src).pipeline.stages.as_slice() {
        [Stage::Spanset(SpansetExpr::Filter(f))] => f.clone(),
        other => panic!("{src}: not a single filter: {other:?}"),
    }
}

fn rhs_value(src: &str) -> Value {
    match only_filter(src) {
        FieldExpr::Compare { rhs, .. } => match *rhs {
            FieldExpr::Static(v) => v,
            other => panic!("{src}: rhs {other:?}"),
        },
        other => panic!("{src}: {other:?}"),
    }
}

fn spanset_op(src: &str) -> SpansetOp {
    match q(src).pipeline.stages.as_slice() {
        [Stage::Spanset(SpansetExpr::Binary { op, .. })] => *op,
        other => panic!("{src}: {other:?}"),
    }
}

#[test]
fn empty_filter_matches_everything() {
    assert_eq!(only_filter("{ }"), FieldExpr::Static(Value::Bool(true)));
    assert_eq!(only_filter("{}"), FieldExpr::Static(Value::Bool(true)));
}

#[test]
fn comparison_operators() {
    for (src, op) in [
        ("{ span.a = 1 }", CompareOp::Eq),
        ("{ span.a != 1 }", CompareOp::Neq),
        ("{ span.a < 1 }", CompareOp::Lt),
        ("{ span.a <= 1 }", CompareOp::Lte),
        ("{ span.a > 1 }", CompareOp::Gt),
        ("{ span.a >= 1 }", CompareOp::Gte),
    ] {
        match only_filter(src) {
            FieldExpr::Compare { op: got, .. } => assert_eq!(got, op, "{src}"),
            other => panic!("{src}: {other:?}"),
        }
    }
}

#[test]
fn regex_operators_compile_fully_anchored() {
    let FieldExpr::Regex {
        negated, pattern, ..
    } = only_filter(r#"{ span.db =~ "post.*|my" }"#)
    else {
        panic!("not a regex")
    };
    assert!(!negated);
    assert_eq!(pattern.source, "post.*|my");
    assert!(pattern.regex.is_match("postgres"));
    assert!(pattern.regex.is_match("my"));
    assert!(
        !pattern.regex.is_match("mysql"),
        "alternation is anchored too"
    );
    assert!(!pattern.regex.is_match("xpostgres"));
    let FieldExpr::Regex { negated, .. } = only_filter(r#"{ name !~ "x" }"#) else {
        panic!("not a regex")
    };
    assert!(negated);
}

#[test]
fn literals() {
    assert_eq!(
        rhs_value(r#"{ span.a = "x\"y\\z" }"#),
        Value::String("x\"y\\z".into())
    );
    assert_eq!(
        rhs_value("{ span.a = `raw\\n` }"),
        Value::String("raw\\n".into())
    );
    assert_eq!(rhs_value("{ span.a = 42 }"), Value::Int(42));
    assert_eq!(rhs_value("{ span.a = -42 }"), Value::Int(-42));
    assert_eq!(rhs_value("{ span.a = 4.5 }"), Value::Float(4.5));
    assert_eq!(rhs_value("{ span.a = 1e3 }"), Value::Float(1000.0));
    assert_eq!(rhs_value("{ span.a = true }"), Value::Bool(true));
    assert_eq!(rhs_value("{ span.a = false }"), Value::Bool(false));
    assert_eq!(rhs_value("{ span.a = nil }"), Value::Nil);
    assert_eq!(rhs_value("{ status = ok }"), Value::Status(Status::Ok));
    assert_eq!(
        rhs_value("{ status = error }"),
        Value::Status(Status::Error)
    );
    assert_eq!(
        rhs_value("{ status = unset }"),
        Value::Status(Status::Unset)
    );
    for (word, kind) in [
        ("server", Kind::Server),
        ("client", Kind::Client),
        ("producer", Kind::Producer),
        ("consumer", Kind::Consumer),
        ("internal", Kind::Internal),
        ("unspecified", Kind::Unspecified),
    ] {
        assert_eq!(
            rhs_value(&format!("{{ kind = {word} }}")),
            Value::Kind(kind)
        );
    }
}

#[test]
fn durations() {
    for (lit, ns) in [
        ("5ns", 5),
        ("10us", 10_000),
        ("10µs", 10_000),
        ("100ms", 100_000_000),
        ("1.5s", 1_500_000_000),
        ("2m", 120_000_000_000),
        ("1h", 3_600_000_000_000),
        ("1h30m", 5_400_000_000_000),
        ("1s500ms", 1_500_000_000),
    ] {
        assert_eq!(
            rhs_value(&format!("{{ duration > {lit} }}")),
            Value::Duration(ns),
            "{lit}"
        );
    }
    assert_eq!(
        rhs_value("{ duration > -1s }"),
        Value::Duration(-1_000_000_000)
    );
}

#[test]
fn intrinsics_plain_and_scoped() {
    for (src, i) in [
        ("name", Intrinsic::Name),
        ("span:name", Intrinsic::Name),
        ("status", Intrinsic::Status),
        ("span:status", Intrinsic::Status),
        ("statusMessage", Intrinsic::StatusMessage),
        ("span:statusMessage", Intrinsic::StatusMessage),
        ("kind", Intrinsic::Kind),
        ("span:kind", Intrinsic::Kind),
        ("duration", Intrinsic::Duration),
        ("span:duration", Intrinsic::Duration),
        ("span:id", Intrinsic::SpanId),
        ("span:parentID", Intrinsic::ParentId),
        ("rootName", Intrinsic::RootName),
        ("trace:rootName", Intrinsic::RootName),
        ("rootServiceName", Intrinsic::RootServiceName),
        ("trace:rootService", Intrinsic::RootServiceName),
        ("traceDuration", Intrinsic::TraceDuration),
        ("trace:duration", Intrinsic::TraceDuration),
    ] {
        let FieldExpr::Compare { lhs, .. } = only_filter(&format!("{{ {src} = 1 }}")) else {
            panic!("{src}")
        };
        assert_eq!(*lhs, FieldExpr::Intrinsic(i), "{src}");
    }
}

#[test]
fn attributes_and_scopes() {
    let attr = |src: &str| match only_filter(src) {
        FieldExpr::Compare { lhs, .. } => match *lhs {
            FieldExpr::Attribute(a) => a,
            other => panic!("{src}: {other:?}"),
        },
        other => panic!("{src}: {other:?}"),
    };
    let a = |scope, name: &str| Attribute {
        scope,
        name: name.to_string(),
    };
    assert_eq!(
        attr("{ span.http.status_code = 200 }"),
        a(Scope::Span, "http.status_code")
    );
    assert_eq!(
        attr("{ resource.service.name = \"x\" }"),
        a(Scope::Resource, "service.name")
    );
    assert_eq!(
        attr("{ .namespace = \"x\" }"),
        a(Scope::Unscoped, "namespace")
    );
    assert_eq!(attr("{ span.\"a b\" = 1 }"), a(Scope::Span, "a b"));
    assert_eq!(
        attr("{ span.attribute.\"with space\" = 1 }"),
        a(Scope::Span, "attribute.with space")
    );
    assert_eq!(attr("{ .\"x=y\" = 1 }"), a(Scope::Unscoped, "x=y"));
    assert_eq!(
        attr("{ span.foo-bar/baz = 1 }"),
        a(Scope::Span, "foo-bar/baz")
    );
    assert_eq!(attr("{span.a=1}"), a(Scope::Span, "a"));
    // A scope word that is not followed by a dot is a plain word.
    assert!(
        err("{ span = 1 }")
            .message
            .contains("unknown identifier span")
    );
}

#[test]
fn field_expression_precedence() {
    assert_eq!(
        show(r#"{ span.a = 1 && span.b > 2 || !(.c =~ "x") }"#),
        r#"{ (((span.a = 1) && (span.b > 2)) || !(.c =~ "x")) }"#
    );
    assert_eq!(
        show("{ span.a = 1 + 2 * 3 - 4 }"),
        "{ (span.a = ((1 + (2 * 3)) - 4)) }"
    );
    assert_eq!(
        show("{ span.a > 2 ^ 3 ^ 2 }"),
        "{ (span.a > (2 ^ (3 ^ 2))) }"
    );
    assert_eq!(show("{ span.a % 2 = 0 }"), "{ ((span.a % 2) = 0) }");
    assert_eq!(
        show("{ (span.a = 1 || span.b = 2) && span.c = 3 }"),
        "{ (((span.a = 1) || (span.b = 2)) && (span.c = 3)) }"
    );
    assert_eq!(show("{ -span.a < 0 }"), "{ (-span.a < 0) }");
    assert_eq!(show("{ span.flag }"), "{ span.flag }");
    assert_eq!(show("{ true }"), "{ }");
}

#[test]
fn spanset_operators() {
    use Relation::*;
    use StructuralMode::*;
    for (op, want) in [
        ("&&", SpansetOp::And),
        ("||", SpansetOp::Or),
        (">", SpansetOp::Structural(Child, Plain)),
        ("<", SpansetOp::Structural(Parent, Plain)),
        (">>", SpansetOp::Structural(Descendant, Plain)),
        ("<<", SpansetOp::Structural(Ancestor, Plain)),
        ("~", SpansetOp::Structural(Sibling, Plain)),
        ("!>", SpansetOp::Structural(Child, Not)),
        ("!<", SpansetOp::Structural(Parent, Not)),
        ("!>>", SpansetOp::Structural(Descendant, Not)),
        ("!<<", SpansetOp::Structural(Ancestor, Not)),
        ("!~", SpansetOp::Structural(Sibling, Not)),
        ("&>", SpansetOp::Structural(Child, Union)),
        ("&<", SpansetOp::Structural(Parent, Union)),
        ("&>>", SpansetOp::Structural(Descendant, Union)),
        ("&<<", SpansetOp::Structural(Ancestor, Union)),
        ("&~", SpansetOp::Structural(Sibling, Union)),
    ] {
        let src = format!("{{ name = \"a\" }} {op} {{ name = \"b\" }}");
        assert_eq!(spanset_op(&src), want, "{src}");
        // Also without spaces.
        let src = format!("{{}}{op}{{}}");
        assert_eq!(spanset_op(&src), want, "{src}");
    }
}

#[test]
fn spanset_precedence_structural_then_and_then_or() {
    assert_eq!(
        show("{ } || { } && { } > { }"),
        "({ } || ({ } && ({ } > { })))"
    );
    assert_eq!(show("{ } > { } >> { }"), "(({ } > { }) >> { })");
    assert_eq!(show("({ } || { }) > { }"), "(({ } || { }) > { })");
    assert_eq!(
        show("({ } | count() > 1) && { }"),
        "(({ } | count() > 1) && { })"
    );
}

#[test]
fn pipelines() {
    assert_eq!(
        show("{ status = error } | count() > 2"),
        "{ (status = error) } | count() > 2"
    );
    assert_eq!(
        show("{ } | avg(duration) > 1s"),
        "{ } | avg(duration) > 1000000000ns"
    );
    assert_eq!(show("{ } | min(span.x) <= 3"), "{ } | min(span.x) <= 3");
    assert_eq!(
        show("{ } | max(duration) >= 2ms"),
        "{ } | max(duration) >= 2000000ns"
    );
    assert_eq!(
        show("{ } | sum(span.bytes) != 5.5"),
        "{ } | sum(span.bytes) != 5.5"
    );
    assert_eq!(show("{ } | count() = 2 * 3"), "{ } | count() = (2 * 3)");
    assert_eq!(
        show("{ status = error } | by(resource.service.name) | count() > 1"),
        "{ (status = error) } | by(resource.service.name) | count() > 1"
    );
    assert_eq!(
        show("{ } | select(span.http.method, name, span.\"a b\")"),
        "{ } | select(span.http.method, name, span.\"a b\")"
    );
    assert_eq!(
        show("{ } | by(name) | { kind = server }"),
        "{ } | by(name) | { (kind = server) }"
    );
    assert_eq!(show("count() > 10"), "count() > 10");
    assert_eq!(show("{ } | 2 < count()"), "{ } | 2 < count()");
}

#[test]
fn errors_have_positions_and_messages() {
    let e = err("{ span.a = }");
    assert_eq!((e.offset, e.line, e.col), (11, 1, 12));
    assert!(e.message.contains("expected a field or a value"), "{e}");
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 12: expected a field or a value, found '}'"
    );

    let e = err("{ span.a = 1 }\n  && { foo = 2 }");
    assert_eq!((e.line, e.col), (2, 8));
    assert!(e.message.starts_with("unknown identifier foo"), "{e}");

    let e = err("{ span.a = \"abc }");
    assert_eq!(e.offset, 11);
    assert_eq!(e.message, "unterminated string");

    let e = err(r#"{ span.a =~ "(" }"#);
    assert_eq!(e.offset, 12);
    assert!(e.message.starts_with("invalid regular expression"), "{e}");

    assert_eq!(
        err("{ span.a = 1").message,
        "expected '}', found end of query"
    );
    assert!(err("{ span.a = 1 } }").message.starts_with("unexpected"));
    assert!(
        err("{ 1 + 2 }")
            .message
            .contains("must evaluate to a boolean")
    );
    assert!(
        err("{ name }")
            .message
            .contains("must evaluate to a boolean")
    );
    assert!(err("{ span.a < nil }").message.contains("nil"));
    assert!(err("{ span.a = 1x }").message.contains("invalid"));
    assert!(
        err("{ duration > 5parsecs }")
            .message
            .contains("invalid duration unit")
    );
    assert!(
        err("{ span.a = 99999999999999999999 }")
            .message
            .contains("out of range")
    );
    assert!(
        err("{ span.a = 1 } | count() >")
            .message
            .contains("expected an aggregate")
    );
    assert!(
        err("{ } | count(duration) > 1")
            .message
            .contains("no arguments")
    );
    assert!(err("{ } | avg() > 1").message.contains("needs a field"));
    assert!(err("{ } | by()").message.contains("at least one field"));
    assert!(
        err("{ } | count()")
            .message
            .contains("expected a comparison")
    );
    assert!(err("{ } >").message.contains("expected a spanset filter"));
    assert!(err("{ span.a = \"x\\q\" }").message.contains("escape"));
    assert!(
        err("{ span.a = 1 } $")
            .message
            .contains("unexpected character")
    );
    assert!(err("").message.contains("expected a spanset filter"));
}

#[test]
fn unsupported_constructs_say_so() {
    for src in [
        "{ } | rate()",
        "{ } | count_over_time() by (resource.service.name)",
        "{ } | quantile_over_time(duration, .9)",
        "rate()",
        "{ } | coalesce()",
        "{ event.exception.message = \"x\" }",
        "{ link.foo = \"x\" }",
        "{ instrumentation.name = \"x\" }",
        "{ parent.foo = \"x\" }",
        "{ trace:id = \"abc\" }",
        "{ event:name = \"abc\" }",
        "{ nestedSetLeft > 1 }",
        "{ } with (most_recent=true)",
        "{ span.a =~ span.b }",
    ] {
        let e = err(src);
        assert!(e.is_unsupported(), "{src}: {e}");
    }
    assert!(!err("{ span.a = }").is_unsupported());
    assert_eq!(
        err("{ } | rate()").message,
        "unsupported: TraceQL metrics function rate()"
    );
}

#[test]
fn tempo_documentation_examples_parse() {
    for src in [
        r#"{ span.http.status_code >= 200 && span.http.status_code < 300 } | count() > 2"#,
        "{\n  resource.service.namespace = \"ecommerce\" &&\n  resource.service.name = \"frontend\" &&\n  name = \"POST /api/orders\"\n}",
        r#"{span.service.name="frontend" && name = "GET /api/products/{id}"} && {span.db.system="postgresql"}"#,
        r#"{ resource.deployment.environment = "production" } && { resource.deployment.environment = "staging" }"#,
        r#"{span.http.request.header.Accept=~"application.*"}"#,
        r#"{ resource.service.name="frontend" } >> { status = error }"#,
        r#"{ } !< { resource.service.name = "productcatalogservice" }"#,
        r#"{ resource.service.name = "productcatalogservice" } ~ { resource.service.name="frontend" }"#,
        r#"{ span.http.status_code = 200 } | select(resource.service.name)"#,
        r#"{ span.http.method = "GET" && status = ok } && { span.http.method = "DELETE" && status != ok }"#,
        r#"{ resource.k8s.cluster.name="service-name" && trace:rootName !~ ".*perf.*"}"#,
        r#"{ span."attribute name with space" = "value" }"#,
        r#"{ span.attribute."attribute name with space" = "value" }"#,
        r#"{ span.http.status_code >= "400" }"#,
        r#"{ span.any_attribute != nil }"#,
        r#"{ span.http.url = "/path/of/api" && status = error } &>> { status = error }"#,
        r#"{ status = error } !< { status = error }"#,
        "count() > 10",
        "avg(duration) > 20ms",
        "{ } | sum(span.bytesProcessed) > 1000000000",
        "{ status = error } | by(resource.service.name) | count() > 1",
        "{ span.http.request_content_length > 10 * 1024 * 1024 }",
        "{ status = error } | select(span.http.status_code, span.http.url)",
        r#"{ .service.name="frontend" && name = "POST /api/orders" && .http.status_code >= 500}"#,
        "{ span:duration > 100ms } && { trace:duration > 1s } && { span:kind = server }",
    ] {
        q(src);
    }
}
