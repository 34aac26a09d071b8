use super::*;

fn tokens(src: &str) -> Vec<Token> {
    lex(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .into_iter()
        .map(|s| s.token)
        .filter(|t| *t != Token::Eof)
        .collect()
}

#[test]
fn operators_take_the_longest_match() {
    use Token::*;
    assert_eq!(
        tokens("= != < <= > >= =~ !~ ~ && || ! >> << !> !< !>> !<< &> &< &>> &<< &~ | + - * / % ^"),
        vec![
            Eq,
            Neq,
            Lt,
            Lte,
            Gt,
            Gte,
            Re,
            NotTilde,
            Tilde,
            AndAnd,
            OrOr,
            Not,
            Desc,
            Anc,
            NotChild,
            NotParent,
            NotDesc,
            NotAnc,
            UnionChild,
            UnionParent,
            UnionDesc,
            UnionAnc,
            UnionSibling,
            Pipe,
            Plus,
            Minus,
            Star,
            Slash,
            Percent,
            Caret,
        ]
    );
    assert_eq!(tokens("!(a)"), vec![Not, LParen, Ident("a".into()), RParen]);
}

#[test]
fn attributes_are_one_token() {
    let attr = |scope: &str, name: &str| Token::Attribute {
        scope: scope.into(),
        name: name.into(),
    };
    assert_eq!(
        tokens("span.http.status_code>=400"),
        vec![
            attr("span", "http.status_code"),
            Token::Gte,
            Token::Int(400)
        ]
    );
    assert_eq!(
        tokens("resource.k8s.pod-name=\"x\""),
        vec![
            attr("resource", "k8s.pod-name"),
            Token::Eq,
            Token::String("x".into())
        ]
    );
    assert_eq!(tokens(".a}"), vec![attr("", "a"), Token::RBrace]);
    assert_eq!(
        tokens("span.\"a \\\"b\\\"\".c"),
        vec![attr("span", "a \"b\".c")]
    );
    assert_eq!(tokens("event.x"), vec![attr("event", "x")]);
    // Words that are not scopes keep the dot out.
    assert_eq!(
        tokens("name.x"),
        vec![Token::Ident("name".into()), attr("", "x")]
    );
}

#[test]
fn scoped_intrinsics_are_one_identifier() {
    assert_eq!(tokens("span:name"), vec![Token::Ident("span:name".into())]);
    assert_eq!(
        tokens("trace:rootService"),
        vec![Token::Ident("trace:rootService".into())]
    );
}

#[test]
fn numbers_and_durations() {
    assert_eq!(
        tokens("1 2.5 3e2 10ms 1h30m 7us"),
        vec![
            Token::Int(1),
            Token::Float(2.5),
            Token::Float(300.0),
            Token::Duration(10_000_000),
            Token::Duration(5_400_000_000_000),
            Token::Duration(7_000),
        ]
    );
    assert!(lex("1h30").unwrap_err().message.contains("missing unit"));
    assert!(
        lex("3days")
            .unwrap_err()
            .message
            .contains("invalid duration unit")
    );
}

#[test]
fn offsets_point_at_token_starts() {
    let offsets: Vec<usize> = lex("{ name = \"é\" }")
        .unwrap()
        .iter()
        .map(|s| s.offset)
        .collect();
    // `é` is two bytes: `}` starts at byte 14.
    assert_eq!(offsets, vec![0, 2, 7, 9, 14, 15]);
    let e = lex("{ name = \"é\" } #").unwrap_err();
    assert_eq!((e.offset, e.col), (16, 16));
}
