//! `parse_query`: the parsed expression as JSON, in the shape of Prometheus 3's
//! `translateAST` (`web/api/v1/translate_ast.go`), which its web UI draws as a tree.
//!
//! Prometheus builds Go maps, so every object's keys come out sorted; so do they here.
//! Nodes are `aggregation`, `binaryExpr`, `call`, `matrixSelector`, `subquery`,
//! `numberLiteral`, `stringLiteral`, `parenExpr`, `unaryExpr` and `vectorSelector`, with
//! offsets, ranges, steps and `@` timestamps in milliseconds and a selector's metric name
//! repeated as its last matcher, as Prometheus' parser adds it.
//!
//! The tree is `promql-parser`'s, which folds a unary `+` away where Prometheus keeps a
//! `unaryExpr` with `op` `+`. Syntax Prometheus does not have (`or` between matcher sets,
//! `fill` modifiers) is refused as the query endpoints refuse it.

use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AtModifier, BinaryExpr, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};

use super::ApiError;
use super::json;
use super::params::Form;
use crate::promql::{self, QueryError};
use crate::store::METRIC_NAME;

/// `parse_query`: the expression's tree, or the `bad_data` error `/api/v1/query` gives.
pub fn parse_query(form: &Form) -> Result<String, ApiError> {
    let expr = promql::parse(form.value("query")).map_err(ApiError::from_query)?;
    let mut out = String::new();
    node(&mut out, &expr).map_err(ApiError::from_query)?;
    Ok(out)
}

/// Appends `expr` as a `translateAST` node.
///
/// # Errors
///
/// [`QueryError::Unsupported`] for syntax Prometheus does not have.
pub fn node(out: &mut String, expr: &Expr) -> Result<(), QueryError> {
    match expr {
        Expr::Aggregate(a) => {
            out.push_str("{\"expr\":");
            node(out, &a.expr)?;
            let (grouping, without) = match &a.modifier {
                None => (&[][..], false),
                Some(LabelModifier::Include(l)) => (&l.labels[..], false),
                Some(LabelModifier::Exclude(l)) => (&l.labels[..], true),
            };
            out.push_str(",\"grouping\":");
            json::strings(out, grouping);
            out.push_str(",\"op\":");
            json::string(out, &a.op.to_string());
            out.push_str(",\"param\":");
            match &a.param {
                Some(p) => node(out, p)?,
                None => out.push_str("null"),
            }
            out.push_str(",\"type\":\"aggregation\",\"without\":");
            out.push_str(if without { "true" } else { "false" });
            out.push('}');
        }
        Expr::Binary(b) => binary(out, b)?,
        Expr::Call(c) => {
            out.push_str("{\"args\":[");
            for (i, a) in c.args.args.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                node(out, a)?;
            }
            out.push_str("],\"func\":{\"argTypes\":[");
            for (i, t) in c.func.arg_types.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::string(out, &t.to_string());
            }
            out.push_str("],\"name\":");
            json::string(out, c.func.name);
            out.push_str(",\"returnType\":");
            json::string(out, &c.func.return_type.to_string());
            out.push_str(&format!(
                ",\"variadic\":{}}},\"type\":\"call\"}}",
                c.func.variadic
            ));
        }
        Expr::MatrixSelector(ms) => {
            selector(out, &ms.vs, Some(promql_ms(ms.range)), "matrixSelector")?;
        }
        Expr::Subquery(sq) => {
            out.push_str("{\"expr\":");
            node(out, &sq.expr)?;
            out.push_str(&format!(
                ",\"offset\":{},\"range\":{},\"startOrEnd\":{},\"step\":{},\"timestamp\":{},\"type\":\"subquery\"}}",
                offset_ms(&sq.offset),
                promql_ms(sq.range),
                start_or_end(&sq.at),
                sq.step.map_or(0, promql_ms),
                timestamp(&sq.at),
            ));
        }
        Expr::NumberLiteral(n) => {
            out.push_str("{\"type\":\"numberLiteral\",\"val\":");
            json::string(out, &crate::store::translate::format_float(n.val));
            out.push('}');
        }
        Expr::StringLiteral(s) => {
            out.push_str("{\"type\":\"stringLiteral\",\"val\":");
            json::string(out, &s.val);
            out.push('}');
        }
        Expr::Paren(p) => {
            out.push_str("{\"expr\":");
            node(out, &p.expr)?;
            out.push_str(",\"type\":\"parenExpr\"}");
        }
        Expr::Unary(u) => {
            out.push_str("{\"expr\":");
            node(out, &u.expr)?;
            out.push_str(",\"op\":\"-\",\"type\":\"unaryExpr\"}");
        }
        Expr::VectorSelector(vs) => selector(out, vs, None, "vectorSelector")?,
        Expr::Extension(_) => return Err(unsupported(expr)),
    }
    Ok(())
}

fn unsupported(expr: &dyn std::fmt::Display) -> QueryError {
    QueryError::Unsupported(format!("unsupported expression: {expr}"))
}

fn binary(out: &mut String, b: &BinaryExpr) -> Result<(), QueryError> {
    let m = b.modifier.as_ref();
    if m.is_some_and(|m| m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some()) {
        return Err(unsupported(&Expr::Binary(b.clone())));
    }
    out.push_str("{\"bool\":");
    out.push_str(if m.is_some_and(|m| m.return_bool) {
        "true"
    } else {
        "false"
    });
    out.push_str(",\"lhs\":");
    node(out, &b.lhs)?;
    out.push_str(",\"matching\":");
    // Prometheus keeps vector matching only between two instant vectors.
    if b.lhs.value_type() == ValueType::Vector && b.rhs.value_type() == ValueType::Vector {
        let card = m.map_or(
            if b.op.is_set_operator() {
                &VectorMatchCardinality::ManyToMany
            } else {
                &VectorMatchCardinality::OneToOne
            },
            |m| &m.card,
        );
        let (name, include) = match card {
            VectorMatchCardinality::OneToOne => ("one-to-one", &[][..]),
            VectorMatchCardinality::ManyToOne(l) => ("many-to-one", &l.labels[..]),
            VectorMatchCardinality::OneToMany(l) => ("one-to-many", &l.labels[..]),
            VectorMatchCardinality::ManyToMany => ("many-to-many", &[][..]),
        };
        let (on, labels) = match m.and_then(|m| m.matching.as_ref()) {
            None => (false, &[][..]),
            Some(LabelModifier::Include(l)) => (true, &l.labels[..]),
            Some(LabelModifier::Exclude(l)) => (false, &l.labels[..]),
        };
        out.push_str(&format!("{{\"card\":\"{name}\",\"include\":"));
        json::strings(out, include);
        out.push_str(",\"labels\":");
        json::strings(out, labels);
        out.push_str(&format!(",\"on\":{on}}}"));
    } else {
        out.push_str("null");
    }
    out.push_str(",\"op\":");
    json::string(out, &b.op.to_string());
    out.push_str(",\"rhs\":");
    node(out, &b.rhs)?;
    out.push_str(",\"type\":\"binaryExpr\"}");
    Ok(())
}

/// Appends a vector selector (`range` None) or a matrix selector.
fn selector(
    out: &mut String,
    vs: &VectorSelector,
    range: Option<i64>,
    kind: &str,
) -> Result<(), QueryError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(unsupported(vs));
    }
    out.push_str("{\"matchers\":");
    matchers(out, &vs.matchers, vs.name.as_deref());
    out.push_str(",\"name\":");
    json::string(out, vs.name.as_deref().unwrap_or(""));
    out.push_str(&format!(",\"offset\":{},", offset_ms(&vs.offset)));
    if let Some(r) = range {
        out.push_str(&format!("\"range\":{r},"));
    }
    out.push_str(&format!(
        "\"startOrEnd\":{},\"timestamp\":{},\"type\":\"{kind}\"}}",
        start_or_end(&vs.at),
        timestamp(&vs.at)
    ));
    Ok(())
}

/// Appends the matchers as written, then the metric name's, as Prometheus' parser
/// orders them.
fn matchers(out: &mut String, m: &Matchers, name: Option<&str>) {
    out.push('[');
    let name_matcher = name.map(|n| Matcher::new(MatchOp::Equal, METRIC_NAME, n));
    for (i, m) in m.matchers.iter().chain(&name_matcher).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let op = match m.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Re(_) => "=~",
            MatchOp::NotRe(_) => "!~",
        };
        out.push_str("{\"name\":");
        json::string(out, &m.name);
        out.push_str(&format!(",\"type\":\"{op}\",\"value\":"));
        json::string(out, &m.value);
        out.push('}');
    }
    out.push(']');
}

/// Returns an `@` modifier's `startOrEnd`: `"start"`, `"end"` or `null`.
fn start_or_end(at: &Option<AtModifier>) -> &'static str {
    match at {
        Some(AtModifier::Start) => "\"start\"",
        Some(AtModifier::End) => "\"end\"",
        _ => "null",
    }
}

/// Returns an `@` modifier's `timestamp`: milliseconds, or `null` for none and for
/// `start()`/`end()`.
fn timestamp(at: &Option<AtModifier>) -> String {
    match at {
        Some(AtModifier::At(t)) => match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => promql_ms(d).to_string(),
            Err(e) => (-promql_ms(e.duration())).to_string(),
        },
        _ => "null".into(),
    }
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => promql_ms(*d),
        Some(Offset::Neg(d)) => -promql_ms(*d),
    }
}

/// A duration in milliseconds, as Go's `Duration.Milliseconds()`.
fn promql_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ast(q: &str) -> String {
        let mut out = String::new();
        node(&mut out, &promql::parse(q).unwrap()).unwrap();
        out
    }

    #[test]
    fn vector_selectors_list_the_name_matcher_last() {
        assert_eq!(
            ast("up"),
            r#"{"matchers":[{"name":"__name__","type":"=","value":"up"}],"name":"up","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}"#
        );
        assert_eq!(
            ast(r#"up{job="a<b", instance!~"i.*"} offset -5m"#),
            r#"{"matchers":[{"name":"job","type":"=","value":"a\u003cb"},{"name":"instance","type":"!~","value":"i.*"},{"name":"__name__","type":"=","value":"up"}],"name":"up","offset":-300000,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}"#
        );
        assert_eq!(
            ast(r#"{__name__=~"a|b", x!=""} @ 1609746000.5"#),
            r#"{"matchers":[{"name":"__name__","type":"=~","value":"a|b"},{"name":"x","type":"!=","value":""}],"name":"","offset":0,"startOrEnd":null,"timestamp":1609746000500,"type":"vectorSelector"}"#
        );
    }

    #[test]
    fn matrix_selectors_and_subqueries_in_milliseconds() {
        assert_eq!(
            ast("rate(http_total[5m] @ start() offset 1h)"),
            r#"{"args":[{"matchers":[{"name":"__name__","type":"=","value":"http_total"}],"name":"http_total","offset":3600000,"range":300000,"startOrEnd":"start","timestamp":null,"type":"matrixSelector"}],"func":{"argTypes":["matrix"],"name":"rate","returnType":"vector","variadic":0},"type":"call"}"#
        );
        assert_eq!(
            ast("max_over_time((x)[30m:1m] @ end() offset 2m)"),
            r#"{"args":[{"expr":{"expr":{"matchers":[{"name":"__name__","type":"=","value":"x"}],"name":"x","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"type":"parenExpr"},"offset":120000,"range":1800000,"startOrEnd":"end","step":60000,"timestamp":null,"type":"subquery"}],"func":{"argTypes":["matrix"],"name":"max_over_time","returnType":"vector","variadic":0},"type":"call"}"#
        );
        assert_eq!(
            ast("x[5m:]"),
            r#"{"expr":{"matchers":[{"name":"__name__","type":"=","value":"x"}],"name":"x","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"offset":0,"range":300000,"startOrEnd":null,"step":0,"timestamp":null,"type":"subquery"}"#
        );
    }

    #[test]
    fn binary_expressions_match_only_between_vectors() {
        let up = r#"{"matchers":[{"name":"__name__","type":"=","value":"up"}],"name":"up","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}"#;
        let down = up.replace("up", "down");
        assert_eq!(
            ast("up * on(job) group_left(instance) down"),
            format!(
                r#"{{"bool":false,"lhs":{up},"matching":{{"card":"many-to-one","include":["instance"],"labels":["job"],"on":true}},"op":"*","rhs":{down},"type":"binaryExpr"}}"#
            )
        );
        assert_eq!(
            ast("up and down"),
            format!(
                r#"{{"bool":false,"lhs":{up},"matching":{{"card":"many-to-many","include":[],"labels":[],"on":false}},"op":"and","rhs":{down},"type":"binaryExpr"}}"#
            )
        );
        assert_eq!(
            ast("up != ignoring(a, b) group_right down"),
            format!(
                r#"{{"bool":false,"lhs":{up},"matching":{{"card":"one-to-many","include":[],"labels":["a","b"],"on":false}},"op":"!=","rhs":{down},"type":"binaryExpr"}}"#
            )
        );
        assert_eq!(
            ast("up > bool 1.5"),
            format!(
                r#"{{"bool":true,"lhs":{up},"matching":null,"op":"\u003e","rhs":{{"type":"numberLiteral","val":"1.5"}},"type":"binaryExpr"}}"#
            )
        );
        assert_eq!(
            ast("1e21 atan2 -Inf"),
            r#"{"bool":false,"lhs":{"type":"numberLiteral","val":"1000000000000000000000"},"matching":null,"op":"atan2","rhs":{"type":"numberLiteral","val":"-Inf"},"type":"binaryExpr"}"#
        );
    }

    #[test]
    fn aggregations_calls_and_literals() {
        let x = r#"{"matchers":[{"name":"__name__","type":"=","value":"x"}],"name":"x","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}"#;
        assert_eq!(
            ast("sum(x)"),
            format!(
                r#"{{"expr":{x},"grouping":[],"op":"sum","param":null,"type":"aggregation","without":false}}"#
            )
        );
        assert_eq!(
            ast("topk without (b, a) (3, -x)"),
            format!(
                r#"{{"expr":{{"expr":{x},"op":"-","type":"unaryExpr"}},"grouping":["b","a"],"op":"topk","param":{{"type":"numberLiteral","val":"3"}},"type":"aggregation","without":true}}"#
            )
        );
        assert_eq!(
            ast(r#"count_values by (job) ("v", x)"#),
            format!(
                r#"{{"expr":{x},"grouping":["job"],"op":"count_values","param":{{"type":"stringLiteral","val":"v"}},"type":"aggregation","without":false}}"#
            )
        );
        assert_eq!(
            ast("time()"),
            r#"{"args":[],"func":{"argTypes":[],"name":"time","returnType":"scalar","variadic":0},"type":"call"}"#
        );
        assert_eq!(
            ast(r#"label_join(x, "d", ",", "a", "b")"#),
            format!(
                r#"{{"args":[{x},{{"type":"stringLiteral","val":"d"}},{{"type":"stringLiteral","val":","}},{{"type":"stringLiteral","val":"a"}},{{"type":"stringLiteral","val":"b"}}],"func":{{"argTypes":["vector","string","string","string"],"name":"label_join","returnType":"vector","variadic":-1}},"type":"call"}}"#
            )
        );
        assert_eq!(
            ast("round(x, 0.5)"),
            format!(
                r#"{{"args":[{x},{{"type":"numberLiteral","val":"0.5"}}],"func":{{"argTypes":["vector","scalar"],"name":"round","returnType":"vector","variadic":1}},"type":"call"}}"#
            )
        );
        assert_eq!(ast("-1"), r#"{"type":"numberLiteral","val":"-1"}"#);
        assert_eq!(ast("0x10"), r#"{"type":"numberLiteral","val":"16"}"#);
        assert_eq!(ast("1e-7"), r#"{"type":"numberLiteral","val":"0.0000001"}"#);
        assert_eq!(ast("NaN"), r#"{"type":"numberLiteral","val":"NaN"}"#);
        assert_eq!(
            ast("-(1)"),
            r#"{"expr":{"expr":{"type":"numberLiteral","val":"1"},"type":"parenExpr"},"op":"-","type":"unaryExpr"}"#
        );
        assert_eq!(
            ast(r#""a\"<b""#),
            r#"{"type":"stringLiteral","val":"a\"\u003cb"}"#
        );
    }

    #[test]
    fn syntax_prometheus_lacks_is_refused() {
        let refuse = |q: &str| node(&mut String::new(), &promql::parse(q).unwrap()).unwrap_err();
        assert!(matches!(
            refuse(r#"{a="1" or b="2"}"#),
            QueryError::Unsupported(_)
        ));
        assert!(matches!(
            refuse("x + fill(0) y"),
            QueryError::Unsupported(_)
        ));
    }
}
