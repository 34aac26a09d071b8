//! Evaluator tests over hand-built traces whose answers are worked out by hand.
//!
//! The main trace (ids are the last byte of the span id):
//!
//! ```text
//! 1 frontend server   "GET /api/orders"  0-1000ms  http.method=GET http.status_code=500
//! ├─ 2 frontend client "HTTP POST"      10-900ms  http.method=POST
//! │  └─ 3 orders server "POST /orders"  20-880ms  status=error "boom", http.status_code=500
//! │     ├─ 4 orders client "SELECT"     30-130ms  db.system=postgresql, "a b"="spaced"
//! │     ├─ 5 orders internal "validate" 140-150ms retry=true count=3
//! │     └─ 6 orders producer "publish"  160-170ms status=error
//! │        └─ 7 billing consumer "consume" 200-500ms status=ok
//! └─ 8 frontend internal "render"       905-990ms span attr service.name="span-level"
//! ```

use super::super::model::{Span, Trace};
use super::super::parse;
use super::super::value::{Kind, Status, Value};
use super::*;

const MS: u64 = 1_000_000;

/// A `by` group's labels and span numbers.
type Group = (Vec<(String, Value)>, Vec<u8>);

fn id(n: u8) -> SpanId {
    [0, 0, 0, 0, 0, 0, 0, n]
}

#[allow(clippy::too_many_arguments)]
fn span(
    n: u8,
    parent: Option<u8>,
    service: &str,
    name: &str,
    kind: Kind,
    status: Status,
    start_ms: u64,
    end_ms: u64,
    attrs: &[(&str, Value)],
) -> Span {
    Span {
        span_id: id(n),
        parent_span_id: parent.map(id),
        name: name.to_string(),
        kind,
        status,
        status_message: String::new(),
        start_ns: start_ms * MS,
        end_ns: end_ms * MS,
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        resource_attrs: vec![
            ("service.name".to_string(), s(service)),
            ("deployment.environment".to_string(), s("production")),
        ],
    }
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn shop() -> Trace {
    use Kind::*;
    use Status::*;
    let mut spans = vec![
        span(
            1,
            None,
            "frontend",
            "GET /api/orders",
            Server,
            Unset,
            0,
            1000,
            &[
                ("http.method", s("GET")),
                ("http.status_code", Value::Int(500)),
            ],
        ),
        span(
            2,
            Some(1),
            "frontend",
            "HTTP POST",
            Client,
            Unset,
            10,
            900,
            &[("http.method", s("POST"))],
        ),
        span(
            3,
            Some(2),
            "orders",
            "POST /orders",
            Server,
            Error,
            20,
            880,
            &[("http.status_code", Value::Int(500))],
        ),
        span(
            4,
            Some(3),
            "orders",
            "SELECT",
            Client,
            Unset,
            30,
            130,
            &[("db.system", s("postgresql")), ("a b", s("spaced"))],
        ),
        span(
            5,
            Some(3),
            "orders",
            "validate",
            Internal,
            Unset,
            140,
            150,
            &[("retry", Value::Bool(true)), ("count", Value::Int(3))],
        ),
        span(
            6,
            Some(3),
            "orders",
            "publish",
            Producer,
            Error,
            160,
            170,
            &[],
        ),
        span(
            7,
            Some(6),
            "billing",
            "consume",
            Consumer,
            Ok,
            200,
            500,
            &[],
        ),
        span(
            8,
            Some(1),
            "frontend",
            "render",
            Internal,
            Unset,
            905,
            990,
            &[("service.name", s("span-level"))],
        ),
    ];
    spans[2].status_message = "boom".to_string();
    // Store order need not be tree order.
    spans.swap(0, 6);
    Trace { spans }
}

fn run(src: &str, trace: &Trace) -> Vec<Spanset> {
    let q = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    evaluate(&q, trace)
}

/// Returns the span numbers of a single-spanset result, sorted; empty if no match.
fn ids(src: &str) -> Vec<u8> {
    let sets = run(src, &shop());
    assert!(sets.len() <= 1, "{src}: {} spansets", sets.len());
    let mut out: Vec<u8> = sets
        .iter()
        .flat_map(|s| s.spans.iter().map(|m| m.span_id[7]))
        .collect();
    out.sort_unstable();
    out
}

fn group_ids(set: &Spanset) -> Vec<u8> {
    let mut v: Vec<u8> = set.spans.iter().map(|m| m.span_id[7]).collect();
    v.sort_unstable();
    v
}

#[test]
fn empty_filter_selects_every_span() {
    assert_eq!(ids("{ }"), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(ids("{ true }"), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(ids("{ false }"), Vec::<u8>::new());
    assert!(run("{ }", &Trace::default()).is_empty());
}

#[test]
fn span_matches_carry_index_and_id() {
    let trace = shop();
    let sets = run("{ name = \"SELECT\" }", &trace);
    assert_eq!(sets.len(), 1);
    let m = &sets[0].spans[0];
    assert_eq!(m.span_id, id(4));
    assert_eq!(trace.spans[m.index].span_id, id(4));
    assert_eq!(sets[0].span_ids(), vec![id(4)]);
}

#[test]
fn intrinsic_name_and_status_message() {
    assert_eq!(ids("{ name = \"SELECT\" }"), [4]);
    assert_eq!(ids("{ span:name = \"SELECT\" }"), [4]);
    assert_eq!(ids("{ name != \"SELECT\" }"), [1, 2, 3, 5, 6, 7, 8]);
    assert_eq!(ids("{ name =~ \"P.*\" }"), [3]);
    assert_eq!(ids("{ name =~ \"(?i)p.*\" }"), [3, 6]);
    assert_eq!(ids("{ statusMessage = \"boom\" }"), [3]);
    assert_eq!(ids("{ span:statusMessage != \"\" }"), [3]);
}

#[test]
fn intrinsic_status() {
    assert_eq!(ids("{ status = error }"), [3, 6]);
    assert_eq!(ids("{ status = ok }"), [7]);
    assert_eq!(ids("{ status = unset }"), [1, 2, 4, 5, 8]);
    assert_eq!(ids("{ span:status != unset }"), [3, 6, 7]);
    // An enum never equals a string.
    assert_eq!(ids("{ status = \"error\" }"), Vec::<u8>::new());
}

#[test]
fn intrinsic_kind() {
    assert_eq!(ids("{ kind = server }"), [1, 3]);
    assert_eq!(ids("{ kind = client }"), [2, 4]);
    assert_eq!(ids("{ kind = producer }"), [6]);
    assert_eq!(ids("{ span:kind = consumer }"), [7]);
    assert_eq!(ids("{ kind = internal }"), [5, 8]);
    assert_eq!(ids("{ kind = unspecified }"), Vec::<u8>::new());
}

#[test]
fn intrinsic_duration() {
    assert_eq!(ids("{ duration > 500ms }"), [1, 2, 3]);
    assert_eq!(ids("{ duration <= 10ms }"), [5, 6]);
    assert_eq!(ids("{ span:duration = 300ms }"), [7]);
    assert_eq!(ids("{ duration >= 1s }"), [1]);
    assert_eq!(ids("{ duration > 0.5s && duration < 0.88s }"), [3]);
    // A duration does not compare with a bare number.
    assert_eq!(ids("{ duration > 1 }"), Vec::<u8>::new());
    // Arithmetic on durations.
    assert_eq!(ids("{ duration > 2 * 400ms }"), [1, 2, 3]);
}

#[test]
fn intrinsic_ids() {
    assert_eq!(ids("{ span:id = \"0000000000000003\" }"), [3]);
    assert_eq!(ids("{ span:parentID = \"0000000000000003\" }"), [4, 5, 6]);
    assert_eq!(ids("{ span:parentID = nil }"), [1]);
}

#[test]
fn trace_level_intrinsics() {
    assert_eq!(
        ids("{ rootName = \"GET /api/orders\" }"),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    assert_eq!(ids("{ trace:rootName = \"SELECT\" }"), Vec::<u8>::new());
    assert_eq!(
        ids("{ rootServiceName = \"frontend\" && kind = internal }"),
        [5, 8]
    );
    assert_eq!(ids("{ trace:rootService = \"orders\" }"), Vec::<u8>::new());
    assert_eq!(ids("{ traceDuration = 1s && status = error }"), [3, 6]);
    assert_eq!(ids("{ trace:duration > 1s }"), Vec::<u8>::new());
}

#[test]
fn trace_without_root_has_nil_root_fields() {
    // Both spans point at a parent that is not in the trace.
    let trace = Trace {
        spans: vec![
            span(
                1,
                Some(9),
                "a",
                "orphan",
                Kind::Server,
                Status::Unset,
                50,
                60,
                &[],
            ),
            span(
                2,
                Some(1),
                "a",
                "child",
                Kind::Client,
                Status::Unset,
                10,
                70,
                &[],
            ),
        ],
    };
    let n = |src: &str| run(src, &trace).len();
    assert_eq!(n("{ rootName = \"orphan\" }"), 0);
    assert_eq!(n("{ rootName = nil }"), 1);
    assert_eq!(n("{ rootServiceName != nil }"), 0);
    assert_eq!(n("{ traceDuration = 60ms }"), 1);
    // The orphan still heads its subtree for structural operators.
    let sets = run("{ name = \"orphan\" } > { }", &trace);
    assert_eq!(sets[0].span_ids(), vec![id(2)]);
}

#[test]
fn span_and_resource_scopes() {
    assert_eq!(ids("{ span.http.status_code = 500 }"), [1, 3]);
    assert_eq!(
        ids("{ span.http.status_code >= 400 && span.http.status_code < 600 }"),
        [1, 3]
    );
    assert_eq!(ids("{ resource.service.name = \"orders\" }"), [3, 4, 5, 6]);
    assert_eq!(ids("{ span.service.name = \"orders\" }"), Vec::<u8>::new());
    assert_eq!(ids("{ resource.http.method = \"GET\" }"), Vec::<u8>::new());
    assert_eq!(ids("{ span.\"a b\" = \"spaced\" }"), [4]);
}

#[test]
fn unscoped_attributes_prefer_the_span() {
    assert_eq!(ids("{ .http.method = \"GET\" }"), [1]);
    assert_eq!(ids("{ .deployment.environment = \"production\" }").len(), 8);
    // Span 8's own service.name attribute hides its resource's.
    assert_eq!(ids("{ .service.name = \"frontend\" }"), [1, 2]);
    assert_eq!(ids("{ .service.name = \"span-level\" }"), [8]);
}

#[test]
fn missing_attributes_compare_false_except_nil_checks() {
    assert_eq!(ids("{ span.http.method != \"GET\" }"), [2]);
    assert_eq!(ids("{ span.http.method != nil }"), [1, 2]);
    assert_eq!(ids("{ span.http.method = nil }"), [3, 4, 5, 6, 7, 8]);
    assert_eq!(ids("{ span.db.system !~ \"mysql\" }"), [4]);
    assert_eq!(ids("{ span.nope < 1 || span.nope >= 1 }"), Vec::<u8>::new());
    // Negating a false comparison is true, also when the attribute is missing.
    assert_eq!(
        ids("{ !(span.http.method = \"GET\") && kind = server }"),
        [3]
    );
}

#[test]
fn type_mismatches_are_false_not_errors() {
    assert_eq!(ids("{ span.http.status_code = \"500\" }"), Vec::<u8>::new());
    assert_eq!(ids("{ span.http.status_code > \"400\" }"), Vec::<u8>::new());
    assert_eq!(ids("{ span.http.method > 1 }"), Vec::<u8>::new());
    assert_eq!(
        ids("{ span.http.status_code =~ \"5.*\" }"),
        Vec::<u8>::new()
    );
    assert_eq!(ids("{ span.retry > false }"), Vec::<u8>::new());
    // Ints and floats do compare.
    assert_eq!(ids("{ span.count = 3.0 }"), [5]);
    assert_eq!(ids("{ span.http.status_code > 499.5 }"), [1, 3]);
    // Strings order lexicographically.
    assert_eq!(ids("{ span.http.method > \"GET\" }"), [2]);
}

#[test]
fn booleans_and_logic() {
    assert_eq!(ids("{ span.retry = true }"), [5]);
    assert_eq!(ids("{ span.retry }"), [5]);
    assert_eq!(ids("{ !span.retry }"), Vec::<u8>::new());
    assert_eq!(ids("{ name = \"SELECT\" || name = \"validate\" }"), [4, 5]);
    assert_eq!(
        ids("{ !(status = error) && resource.service.name = \"orders\" }"),
        [4, 5]
    );
}

#[test]
fn regexes_are_fully_anchored() {
    assert_eq!(ids("{ span.db.system =~ \"postgres\" }"), Vec::<u8>::new());
    assert_eq!(ids("{ span.db.system =~ \"postgres.*\" }"), [4]);
    assert_eq!(ids("{ span.http.method =~ \"DELETE|GET\" }"), [1]);
    assert_eq!(ids("{ span.http.method !~ \"G.*\" }"), [2]);
    assert_eq!(
        ids("{ resource.service.name =~ \"(?i)ORDERS\" }"),
        [3, 4, 5, 6]
    );
}

#[test]
fn arithmetic() {
    assert_eq!(ids("{ span.http.status_code = 250 * 2 }"), [1, 3]);
    assert_eq!(ids("{ span.count * 2 = 6 }"), [5]);
    assert_eq!(ids("{ span.count / 2 = 1.5 }"), [5]);
    assert_eq!(ids("{ span.count + span.nope = 3 }"), Vec::<u8>::new());
    assert_eq!(ids("{ -span.count = -3 }"), [5]);
}

#[test]
fn and_requires_both_sides_and_returns_the_union() {
    assert_eq!(
        ids("{ span.db.system = \"postgresql\" } && { status = ok }"),
        [4, 7]
    );
    assert_eq!(
        ids("{ span.db.system = \"postgresql\" } && { name = \"nope\" }"),
        Vec::<u8>::new()
    );
    // Both conditions on one span vs. on any spans of the trace.
    assert_eq!(
        ids("{ resource.service.name = \"orders\" && resource.service.name = \"billing\" }"),
        Vec::<u8>::new()
    );
    assert_eq!(
        ids("{ resource.service.name = \"orders\" } && { resource.service.name = \"billing\" }"),
        [3, 4, 5, 6, 7]
    );
}

#[test]
fn or_returns_whichever_side_matched() {
    assert_eq!(ids("{ name = \"SELECT\" } || { name = \"nope\" }"), [4]);
    assert_eq!(ids("{ name = \"SELECT\" } || { status = ok }"), [4, 7]);
    assert_eq!(
        ids("{ name = \"a\" } || { name = \"b\" }"),
        Vec::<u8>::new()
    );
}

#[test]
fn child_and_parent() {
    assert_eq!(
        ids("{ resource.service.name = \"frontend\" } > { resource.service.name = \"orders\" }"),
        [3]
    );
    assert_eq!(ids("{ name = \"GET /api/orders\" } > { }"), [2, 8]);
    assert_eq!(ids("{ status = error } > { }"), [4, 5, 6, 7]);
    assert_eq!(ids("{ name = \"SELECT\" } < { }"), [3]);
    assert_eq!(ids("{ kind = internal } < { }"), [1, 3]);
    assert_eq!(ids("{ kind = server } < { }"), [2]);
}

#[test]
fn descendant_and_ancestor() {
    assert_eq!(
        ids("{ resource.service.name = \"frontend\" } >> { status = error }"),
        [3, 6]
    );
    assert_eq!(ids("{ name = \"publish\" } >> { }"), [7]);
    assert_eq!(ids("{ name = \"consume\" } >> { }"), Vec::<u8>::new());
    assert_eq!(ids("{ status = error } << { }"), [1, 2, 3]);
    assert_eq!(ids("{ status = ok } << { kind = server }"), [1, 3]);
}

#[test]
fn sibling() {
    assert_eq!(ids("{ name = \"SELECT\" } ~ { }"), [5, 6]);
    assert_eq!(
        ids("{ resource.service.name = \"orders\" } ~ { resource.service.name = \"orders\" }"),
        [4, 5, 6]
    );
    // A span is not its own sibling; the root has none.
    assert_eq!(ids("{ name = \"consume\" } ~ { }"), Vec::<u8>::new());
    assert_eq!(ids("{ name = \"render\" } ~ { }"), [2]);
}

#[test]
fn negated_structural_operators() {
    // Leaf spans.
    assert_eq!(ids("{ } !< { }"), [4, 5, 7, 8]);
    assert_eq!(ids("{ } !< { resource.service.name = \"orders\" }"), [4, 5]);
    assert_eq!(
        ids("{ resource.service.name = \"frontend\" } !> { }"),
        [1, 4, 5, 6, 7]
    );
    assert_eq!(ids("{ resource.service.name = \"frontend\" } !>> { }"), [1]);
    assert_eq!(ids("{ status = error } !<< { }"), [4, 5, 6, 7, 8]);
    assert_eq!(
        ids("{ name = \"SELECT\" } !~ { resource.service.name = \"orders\" }"),
        [3, 4]
    );
    // The last error of a cascade.
    assert_eq!(ids("{ status = error } !< { status = error }"), [6]);
}

#[test]
fn union_structural_operators_return_both_sides() {
    assert_eq!(ids("{ name = \"publish\" } &> { }"), [6, 7]);
    assert_eq!(ids("{ status = error } &>> { status = ok }"), [3, 6, 7]);
    assert_eq!(ids("{ name = \"SELECT\" } &< { }"), [3, 4]);
    assert_eq!(
        ids("{ name = \"consume\" } &<< { kind = server }"),
        [1, 3, 7]
    );
    assert_eq!(ids("{ name = \"SELECT\" } &~ { kind = producer }"), [4, 6]);
    assert_eq!(ids("{ name = \"consume\" } &> { }"), Vec::<u8>::new());
}

#[test]
fn structural_chains_and_precedence() {
    assert_eq!(
        ids("{ resource.service.name = \"frontend\" } > { } > { kind = client }"),
        [4]
    );
    // `>` binds tighter than `||`.
    assert_eq!(
        ids("{ name = \"render\" } || { name = \"publish\" } > { }"),
        [7, 8]
    );
    assert_eq!(
        ids("({ name = \"render\" } || { name = \"publish\" }) > { }"),
        [7]
    );
}

#[test]
fn count_filter() {
    let sets = run(
        "{ resource.service.name = \"orders\" } | count() > 3",
        &shop(),
    );
    assert_eq!(sets.len(), 1);
    assert_eq!(group_ids(&sets[0]), [3, 4, 5, 6]);
    assert_eq!(sets[0].scalar, Some(Value::Int(4)));
    assert_eq!(
        ids("{ resource.service.name = \"orders\" } | count() > 4"),
        Vec::<u8>::new()
    );
    assert_eq!(ids("{ } | count() = 2 * 4"), [1, 2, 3, 4, 5, 6, 7, 8]);
    // A query may start with the aggregate: it sees the whole trace.
    assert_eq!(ids("count() > 7").len(), 8);
    assert_eq!(ids("count() > 8"), Vec::<u8>::new());
}

#[test]
fn avg_min_max_sum() {
    // Durations (ms): 1000 890 860 100 10 10 300 85, sum 3255, avg 406.875.
    let sets = run("{ } | avg(duration) > 400ms", &shop());
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].scalar, Some(Value::Duration(406_875_000)));
    assert_eq!(ids("{ } | avg(duration) > 410ms"), Vec::<u8>::new());
    assert_eq!(ids("{ } | max(duration) = 1s").len(), 8);
    assert_eq!(ids("{ } | min(duration) = 10ms").len(), 8);
    assert_eq!(ids("{ } | sum(duration) = 3255ms").len(), 8);
    assert_eq!(ids("{ kind = client } | sum(duration) < 1s"), [2, 4]);
    assert_eq!(
        ids("{ kind = client } | sum(duration) > 1s"),
        Vec::<u8>::new()
    );
    // Over attributes: spans without the attribute are skipped.
    assert_eq!(ids("{ } | sum(span.http.status_code) = 1000").len(), 8);
    assert_eq!(ids("{ } | avg(span.http.status_code) = 500").len(), 8);
    assert_eq!(ids("{ } | min(span.count) = 3").len(), 8);
    // Nothing to aggregate: the comparison is false.
    assert_eq!(ids("{ } | max(span.nope) >= 0"), Vec::<u8>::new());
    assert_eq!(ids("{ } | avg(name) >= 0"), Vec::<u8>::new());
}

#[test]
fn by_groups_spans_per_value() {
    let sets = run("{ } | by(resource.service.name)", &shop());
    let got: Vec<Group> = sets
        .iter()
        .map(|s| (s.group.clone(), group_ids(s)))
        .collect();
    let key = |v: &str| vec![("resource.service.name".to_string(), s(v))];
    // Groups come in trace order of their first span (span 7 is stored first).
    assert_eq!(
        got,
        vec![
            (key("billing"), vec![7]),
            (key("frontend"), vec![1, 2, 8]),
            (key("orders"), vec![3, 4, 5, 6]),
        ]
    );
}

#[test]
fn by_then_count_keeps_qualifying_groups() {
    let sets = run(
        "{ status = error } | by(resource.service.name) | count() > 1",
        &shop(),
    );
    assert_eq!(sets.len(), 1);
    assert_eq!(group_ids(&sets[0]), [3, 6]);
    assert_eq!(
        sets[0].group,
        vec![("resource.service.name".to_string(), s("orders"))]
    );
    assert_eq!(sets[0].scalar, Some(Value::Int(2)));
}

#[test]
fn by_puts_missing_values_in_a_nil_group() {
    let sets = run(
        "{ kind = server || kind = client } | by(span.http.method)",
        &shop(),
    );
    let got: Vec<(Value, Vec<u8>)> = sets
        .iter()
        .map(|s| (s.group[0].1.clone(), group_ids(s)))
        .collect();
    assert_eq!(
        got,
        vec![
            (s("POST"), vec![2]),
            (Value::Nil, vec![3, 4]),
            (s("GET"), vec![1])
        ]
    );
}

#[test]
fn filters_after_by_apply_per_group() {
    let sets = run(
        "{ } | by(resource.service.name) | { status = error }",
        &shop(),
    );
    assert_eq!(sets.len(), 1);
    assert_eq!(group_ids(&sets[0]), [3, 6]);
    let sets = run(
        "{ } | by(resource.service.name) | { kind = internal }",
        &shop(),
    );
    let groups: Vec<Vec<u8>> = sets.iter().map(group_ids).collect();
    assert_eq!(groups, vec![vec![8], vec![5]]);
}

#[test]
fn select_adds_present_values() {
    let sets = run(
        "{ status = error } | select(span.http.status_code, resource.service.name, duration)",
        &shop(),
    );
    assert_eq!(sets.len(), 1);
    let by_span: Vec<(u8, Vec<(String, Value)>)> = sets[0]
        .spans
        .iter()
        .map(|m| (m.span_id[7], m.selected.clone()))
        .collect();
    assert_eq!(
        by_span,
        vec![
            (
                3,
                vec![
                    ("span.http.status_code".to_string(), Value::Int(500)),
                    ("resource.service.name".to_string(), s("orders")),
                    ("duration".to_string(), Value::Duration(860 * MS as i64)),
                ]
            ),
            (
                6,
                vec![
                    ("resource.service.name".to_string(), s("orders")),
                    ("duration".to_string(), Value::Duration(10 * MS as i64)),
                ]
            ),
        ]
    );
    // Without select nothing is attached.
    let sets = run("{ status = error }", &shop());
    assert!(sets[0].spans.iter().all(|m| m.selected.is_empty()));
}

#[test]
fn parenthesized_pipelines_combine_with_spansets() {
    assert_eq!(
        ids("({ } | by(resource.service.name) | count() > 3) && { name = \"consume\" }"),
        [3, 4, 5, 6, 7]
    );
    assert_eq!(
        ids("({ } | by(resource.service.name) | count() > 4) && { name = \"consume\" }"),
        Vec::<u8>::new()
    );
}

#[test]
fn malformed_parent_links_do_not_loop() {
    // 1 -> 2 -> 1 cycle, 3 is its own parent.
    let mut a = span(1, Some(2), "x", "a", Kind::Server, Status::Unset, 0, 1, &[]);
    let b = span(2, Some(1), "x", "b", Kind::Server, Status::Unset, 0, 1, &[]);
    let c = span(3, Some(3), "x", "c", Kind::Server, Status::Unset, 0, 1, &[]);
    a.name = "a".into();
    let trace = Trace {
        spans: vec![a, b, c],
    };
    assert_eq!(run("{ } >> { }", &trace)[0].spans.len(), 2);
    assert_eq!(run("{ } << { }", &trace)[0].spans.len(), 2);
    assert!(run("{ name = \"c\" } > { }", &trace).is_empty());
}
