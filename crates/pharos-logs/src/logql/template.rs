//! The template language of LogQL's `line_format` and `label_format` stages.
//!
//! Loki runs these templates through Go's `text/template` with its own function
//! map (`Option("missingkey=zero")`, the labels passed as a `map[string]string`).
//! This module re-implements that: the lexer and parser follow Go's (same
//! grammar, same trim markers, same parse-error texts such as
//! `template: line:1: function "foo" not defined`), and execution follows Go's
//! rules for pipelines, truthiness, `and`/`or` short-circuiting, comparisons,
//! argument types and `fmt` printing (`%v` of floats is Go's shortest `%g`, a
//! time prints like Go's `time.Time.String`).
//!
//! Supported: text, actions, comments, `{{-`/`-}}`, fields (`.name` reads a
//! label; a missing label is the empty string, as in Loki), `.`, `$`, variables
//! (`$x := …`, `$x = …`), parenthesized pipelines, field chains on their
//! results, string/raw/char/number/bool/nil literals, `if`/`else if`/`else`,
//! `with`/`else with`/`else`, `range` (over `fromJson` lists and maps and over
//! integers) with `break`/`continue`; Go's builtins `and or not len index slice
//! eq ne lt le gt ge print printf println html js urlquery`; and every function
//! of Loki's map: `__line__ __timestamp__ ToLower ToUpper Replace Trim TrimLeft
//! TrimRight TrimPrefix TrimSuffix TrimSpace regexReplaceAll
//! regexReplaceAllLiteral count urlencode urldecode bytes duration
//! duration_seconds unixEpochMillis unixEpochNanos toDateInZone unixToTime
//! alignLeft alignRight` plus the sprig ones Loki imports: `b64enc b64dec lower
//! upper title trunc substr contains hasPrefix hasSuffix indent nindent replace
//! repeat trim trimAll trimSuffix trimPrefix int float64 add sub mul div mod
//! addf subf mulf divf max min maxf minf ceil floor round fromJson date toDate
//! now unixEpoch default`. Time values also answer the methods `Unix`,
//! `UnixMilli`, `UnixMicro`, `UnixNano`, `Year`, `YearDay`, `Day`, `Hour`,
//! `Minute`, `Second`, `Nanosecond`, `UTC`, `Local`, `String` and `Format`.
//!
//! Left out or different from Loki:
//! - `{{define}}`, `{{template}}`, `{{block}}` and Go's `call` are parse errors
//!   (a LogQL template is a single template and has no function values).
//! - There is no time-zone database: the server's local zone is UTC, so
//!   `__timestamp__`, `now`, `toDate` and `date` work in UTC, and `toDateInZone`
//!   knows only UTC/GMT aliases and `Etc/GMT±N` (other zones fall back to UTC,
//!   which Loki does only for unknown names). `now` prints no monotonic reading.
//! - `{{ . }}` at the top level (the whole label map) cannot be printed, ranged
//!   over or measured, since a [`Context`] does not list its labels; it is a
//!   run-time error. `index . "name"` works.
//! - Integers are one type (`int64`); Go tells `int` from `int64` and rejects an
//!   `int64` where a function wants an `int`, this module accepts it.
//! - `printf` lacks explicit argument indexes (`%[1]d`) and the `%b`/`%x` float
//!   verbs; regular expressions use Rust's `regex` syntax (RE2-like, but `\d`
//!   and `\w` are Unicode-aware).
//! - Run-time error texts follow Go's shape
//!   (`template: line:1:3: executing "line" at <div>: error calling div: …`)
//!   but their column and context are approximate.
//! - Resource limits Go does not have: a render fails after a million `range`
//!   iterations, or when its output or any string a function returns would
//!   exceed 64 MiB (checked before `repeat`, `indent`, `replace`, padding and
//!   regex replacement allocate).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::rc::Rc;

use base64::Engine as _;
use regex::Regex;

/// The template name Go's messages show (Loki names its line templates `line`).
const NAME: &str = "line";
/// Deepest nesting of parentheses or control structures accepted.
const MAX_DEPTH: usize = 100;
/// Most `range` iterations one render may run.
const MAX_RANGE_ITERATIONS: u64 = 1_000_000;
/// Largest string a function may return, and largest rendered output.
const MAX_STRING: usize = 64 << 20;
/// Go's zero `time.Time` (0001-01-01 00:00:00 UTC) in unix seconds.
const ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// What a template reads: the entry's labels, line and timestamp.
pub trait Context {
    /// The value of label `name`, or None when the entry has no such label.
    fn label(&self, name: &str) -> Option<&str>;
    /// The log line (`__line__`).
    fn line(&self) -> &str;
    /// The entry's timestamp, unix nanoseconds (`__timestamp__`).
    fn timestamp_ns(&self) -> i64;
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    src: String,
    root: Vec<Node>,
    labels: Vec<String>,
    regexes: HashMap<String, Regex>,
}

impl Template {
    /// Parses `src`. Errors are messages such as Go's template parser would give
    /// (e.g. `template: line:1: function "foo" not defined`), one line.
    pub fn parse(src: &str) -> Result<Template, String> {
        let toks = lex(src);
        let mut p = Parser {
            toks,
            i: 0,
            hi: 0,
            vars: vec!["$".to_string()],
            range_depth: 0,
            depth: 0,
            action_line: 0,
        };
        let root = p.parse().map_err(one_line)?;
        let mut labels = Vec::new();
        collect_labels(&root, &mut labels);
        let mut regexes = HashMap::new();
        collect_regexes(&root, &mut regexes);
        Ok(Template {
            src: src.to_string(),
            root,
            labels,
            regexes,
        })
    }

    /// Renders against `ctx`. Errors (a function failing at run time) are messages;
    /// the caller turns them into Loki's `__error__="TemplateFormatErr"`.
    pub fn render(&self, ctx: &dyn Context) -> Result<String, String> {
        let mut ex = Exec {
            tpl: self,
            ctx,
            vars: vec![("$", Value::Labels)],
            out: String::new(),
            iterations: 0,
        };
        ex.walk(&Value::Labels, &self.root).map_err(one_line)?;
        Ok(ex.out)
    }

    /// The label names the template reads through `.name` (for dependency analysis).
    pub fn referenced_labels(&self) -> Vec<String> {
        self.labels.clone()
    }
}

/// Fails when a string of `n` bytes would be over [`MAX_STRING`].
fn check_size(n: usize) -> Result<(), String> {
    if n > MAX_STRING {
        Err(format!("result exceeds {} MiB", MAX_STRING >> 20))
    } else {
        Ok(())
    }
}

/// Makes an error message a single line.
fn one_line(s: String) -> String {
    if s.contains(['\n', '\r']) {
        s.replace('\n', "\\n").replace('\r', "\\r")
    } else {
        s
    }
}

// ───────────────────────────── lexer ─────────────────────────────

/// Token kinds, as Go's `itemType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T {
    Error,
    Bool,
    Char,
    CharConst,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Ident,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    Str,
    Text,
    Variable,
    // Keywords.
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    TemplateKw,
    With,
}

impl T {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            T::Block
                | T::Break
                | T::Continue
                | T::Dot
                | T::Define
                | T::Else
                | T::End
                | T::If
                | T::Nil
                | T::Range
                | T::TemplateKw
                | T::With
        )
    }
}

#[derive(Debug, Clone)]
struct Tok {
    t: T,
    pos: usize,
    line: usize,
    val: String,
}

#[derive(Clone, Copy)]
enum St {
    Text,
    LeftDelim,
    Comment,
    RightDelim,
    Inside,
    Done,
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    start: usize,
    paren: i32,
    toks: Vec<Tok>,
    lc_pos: usize,
    lc_line: usize,
}

fn lex(src: &str) -> Vec<Tok> {
    let mut l = Lexer {
        src,
        pos: 0,
        start: 0,
        paren: 0,
        toks: Vec::new(),
        lc_pos: 0,
        lc_line: 1,
    };
    let mut st = St::Text;
    loop {
        st = match st {
            St::Text => l.text(),
            St::LeftDelim => l.left_delim(),
            St::Comment => l.comment(),
            St::RightDelim => l.right_delim(),
            St::Inside => l.inside(),
            St::Done => break,
        };
    }
    l.toks
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_space_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1])
}

fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0]) && b[1] == b'-'
}

fn left_trim_len(s: &str) -> usize {
    s.len() - s.trim_start_matches(is_space_char).len()
}

impl Lexer<'_> {
    fn line_at(&mut self, pos: usize) -> usize {
        if pos < self.lc_pos {
            self.lc_pos = 0;
            self.lc_line = 1;
        }
        self.lc_line += self.src.as_bytes()[self.lc_pos..pos]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.lc_pos = pos;
        self.lc_line
    }

    fn emit(&mut self, t: T) {
        let line = self.line_at(self.start);
        self.toks.push(Tok {
            t,
            pos: self.start,
            line,
            val: self.src[self.start..self.pos].to_string(),
        });
        self.start = self.pos;
    }

    fn error(&mut self, msg: String) -> St {
        let line = self.line_at(self.pos);
        self.toks.push(Tok {
            t: T::Error,
            pos: self.start,
            line,
            val: msg,
        });
        St::Done
    }

    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn text(&mut self) -> St {
        if let Some(x) = self.rest().find(LEFT) {
            if x > 0 {
                self.pos += x;
                let mut trim = 0;
                if has_left_trim(&self.src[self.pos + LEFT.len()..]) {
                    let t = &self.src[self.start..self.pos];
                    trim = t.len() - t.trim_end_matches(is_space_char).len();
                }
                self.pos -= trim;
                if self.pos > self.start {
                    self.emit(T::Text);
                }
                self.pos += trim;
                self.start = self.pos;
            }
            return St::LeftDelim;
        }
        self.pos = self.src.len();
        if self.pos > self.start {
            self.emit(T::Text);
        }
        self.emit(T::Eof);
        St::Done
    }

    fn left_delim(&mut self) -> St {
        self.pos += LEFT.len();
        let after = if has_left_trim(self.rest()) { 2 } else { 0 };
        if self.src[self.pos + after..].starts_with("/*") {
            self.pos += after;
            self.start = self.pos;
            return St::Comment;
        }
        self.emit(T::LeftDelim);
        self.pos += after;
        self.start = self.pos;
        self.paren = 0;
        St::Inside
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let r = self.rest();
        if r.starts_with(RIGHT) {
            return (true, false);
        }
        if has_right_trim(r) && r[2..].starts_with(RIGHT) {
            return (true, true);
        }
        (false, false)
    }

    fn comment(&mut self) -> St {
        self.pos += 2;
        match self.rest().find("*/") {
            None => return self.error("unclosed comment".into()),
            Some(i) => self.pos += i + 2,
        }
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter".into());
        }
        if trim {
            self.pos += 2;
        }
        self.pos += RIGHT.len();
        if trim {
            self.pos += left_trim_len(self.rest());
        }
        self.start = self.pos;
        St::Text
    }

    fn right_delim(&mut self) -> St {
        let trim = has_right_trim(self.rest());
        if trim {
            self.pos += 2;
            self.start = self.pos;
        }
        self.pos += RIGHT.len();
        self.emit(T::RightDelim);
        if trim {
            self.pos += left_trim_len(self.rest());
            self.start = self.pos;
        }
        St::Text
    }

    fn inside(&mut self) -> St {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren == 0 {
                return St::RightDelim;
            }
            return self.error("unclosed left paren".into());
        }
        let Some(c) = self.next_char() else {
            return self.error("unclosed action".into());
        };
        match c {
            c if is_space_char(c) => {
                self.pos -= 1;
                return self.space();
            }
            '=' => self.emit(T::Assign),
            ':' => {
                if self.next_char() != Some('=') {
                    return self.error("expected :=".into());
                }
                self.emit(T::Declare);
            }
            '|' => self.emit(T::Pipe),
            '"' => return self.quote('"', T::Str, "unterminated quoted string"),
            '`' => return self.raw_quote(),
            '$' => return self.field_or_variable(T::Variable),
            '\'' => return self.quote('\'', T::CharConst, "unterminated character constant"),
            '.' => {
                if let Some(n) = self.peek_char()
                    && !n.is_ascii_digit()
                {
                    return self.field_or_variable(T::Field);
                }
                self.pos -= 1;
                return self.number();
            }
            '+' | '-' | '0'..='9' => {
                self.pos -= 1;
                return self.number();
            }
            c if is_alnum(c) => {
                self.pos -= c.len_utf8();
                return self.identifier();
            }
            '(' => {
                self.emit(T::LeftParen);
                self.paren += 1;
            }
            ')' => {
                self.emit(T::RightParen);
                self.paren -= 1;
                if self.paren < 0 {
                    return self.error("unexpected right paren".into());
                }
            }
            c if c.is_ascii() && !c.is_ascii_control() => self.emit(T::Char),
            c => {
                return self.error(format!(
                    "unrecognized character in action: {}",
                    rune_desc(c)
                ));
            }
        }
        St::Inside
    }

    fn space(&mut self) -> St {
        let mut n = 0;
        while let Some(&b) = self.src.as_bytes().get(self.pos) {
            if !is_space(b) {
                break;
            }
            self.pos += 1;
            n += 1;
        }
        if has_right_trim(&self.src[self.pos - 1..]) && self.src[self.pos + 1..].starts_with(RIGHT)
        {
            self.pos -= 1;
            if n == 1 {
                return St::RightDelim;
            }
        }
        self.emit(T::Space);
        St::Inside
    }

    fn at_terminator(&self) -> bool {
        match self.peek_char() {
            None => true,
            Some(c) if is_space_char(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with(RIGHT),
        }
    }

    fn bad_char(&mut self) -> St {
        let c = self.peek_char().unwrap_or('\u{FFFD}');
        self.error(format!("bad character {}", rune_desc(c)))
    }

    fn identifier(&mut self) -> St {
        while let Some(c) = self.peek_char() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        if !self.at_terminator() {
            return self.bad_char();
        }
        let t = match &self.src[self.start..self.pos] {
            "block" => T::Block,
            "break" => T::Break,
            "continue" => T::Continue,
            "define" => T::Define,
            "else" => T::Else,
            "end" => T::End,
            "if" => T::If,
            "range" => T::Range,
            "nil" => T::Nil,
            "template" => T::TemplateKw,
            "with" => T::With,
            "true" | "false" => T::Bool,
            _ => T::Ident,
        };
        self.emit(t);
        St::Inside
    }

    /// `.name` or `$name`; the `.` or `$` is consumed.
    fn field_or_variable(&mut self, kind: T) -> St {
        if self.at_terminator() {
            self.emit(if kind == T::Variable {
                T::Variable
            } else {
                T::Dot
            });
            return St::Inside;
        }
        while let Some(c) = self.peek_char() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        if !self.at_terminator() {
            return self.bad_char();
        }
        self.emit(kind);
        St::Inside
    }

    fn quote(&mut self, q: char, kind: T, msg: &str) -> St {
        loop {
            match self.next_char() {
                Some('\\') => {
                    if matches!(self.next_char(), None | Some('\n')) {
                        return self.error(msg.into());
                    }
                }
                None | Some('\n') => return self.error(msg.into()),
                Some(c) if c == q => break,
                _ => {}
            }
        }
        self.emit(kind);
        St::Inside
    }

    fn raw_quote(&mut self) -> St {
        loop {
            match self.next_char() {
                None => return self.error("unterminated raw quoted string".into()),
                Some('`') => break,
                _ => {}
            }
        }
        self.emit(T::RawString);
        St::Inside
    }

    fn number(&mut self) -> St {
        if !self.scan_number() {
            let msg = format!(
                "bad number syntax: {}",
                go_quote(&self.src[self.start..self.pos])
            );
            return self.error(msg);
        }
        if matches!(self.peek_char(), Some('+' | '-')) {
            if !self.scan_number() || !self.src[..self.pos].ends_with('i') {
                let msg = format!(
                    "bad number syntax: {}",
                    go_quote(&self.src[self.start..self.pos])
                );
                return self.error(msg);
            }
            self.emit(T::Complex);
        } else {
            self.emit(T::Number);
        }
        St::Inside
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek_char() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if let Some(c) = self.peek_char()
            && is_alnum(c)
        {
            self.pos += c.len_utf8();
            return false;
        }
        true
    }
}

// ───────────────────────────── syntax tree ─────────────────────────────

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Box<Branch>),
    With(Box<Branch>),
    Range(Box<Branch>),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
struct Branch {
    pipe: Pipe,
    list: Vec<Node>,
    else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
struct Pipe {
    pos: usize,
    decl: Vec<String>,
    is_assign: bool,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
struct Cmd {
    pos: usize,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Arg {
    Dot,
    Nil,
    Bool(bool),
    Number(Number),
    Str(String),
    /// `.a.b`: the names.
    Field(Vec<String>),
    /// `$x.a.b`: the variable and the field names.
    Var(String, Vec<String>),
    /// A function: index into [`FUNCS`], byte position.
    Func(usize, usize),
    Pipe(Box<Pipe>),
    /// `(pipeline).a.b`.
    Chain(Box<Arg>, Vec<String>),
}

#[derive(Debug, Clone)]
struct Number {
    text: String,
    int: Option<i64>,
    float: Option<f64>,
    is_float: bool,
}

impl Arg {
    /// The node as Go's `Node.String` would show it.
    fn go_string(&self) -> String {
        match self {
            Arg::Dot => ".".into(),
            Arg::Nil => "nil".into(),
            Arg::Bool(b) => b.to_string(),
            Arg::Number(n) => n.text.clone(),
            Arg::Str(s) => go_quote(s),
            Arg::Field(f) => f.iter().map(|n| format!(".{n}")).collect(),
            Arg::Var(v, f) => {
                let mut s = v.clone();
                for n in f {
                    s.push('.');
                    s.push_str(n);
                }
                s
            }
            Arg::Func(i, _) => FUNCS[*i].0.to_string(),
            Arg::Pipe(p) => format!("({})", p.go_string()),
            Arg::Chain(a, f) => {
                let mut s = a.go_string();
                for n in f {
                    s.push('.');
                    s.push_str(n);
                }
                s
            }
        }
    }
}

impl Pipe {
    fn go_string(&self) -> String {
        let mut s = String::new();
        if !self.decl.is_empty() {
            s.push_str(&self.decl.join(", "));
            s.push_str(if self.is_assign { " = " } else { " := " });
        }
        let cmds: Vec<String> = self
            .cmds
            .iter()
            .map(|c| {
                c.args
                    .iter()
                    .map(Arg::go_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        s.push_str(&cmds.join(" | "));
        s
    }
}

fn collect_labels(nodes: &[Node], out: &mut Vec<String>) {
    for n in nodes {
        match n {
            Node::Action(p) => collect_labels_pipe(p, out),
            Node::If(b) | Node::With(b) | Node::Range(b) => {
                collect_labels_pipe(&b.pipe, out);
                collect_labels(&b.list, out);
                if let Some(e) = &b.else_list {
                    collect_labels(e, out);
                }
            }
            _ => {}
        }
    }
}

fn collect_labels_pipe(p: &Pipe, out: &mut Vec<String>) {
    for c in &p.cmds {
        for a in &c.args {
            match a {
                Arg::Field(names) => {
                    for n in names {
                        if !out.contains(n) {
                            out.push(n.clone());
                        }
                    }
                }
                Arg::Pipe(p) => collect_labels_pipe(p, out),
                _ => {}
            }
        }
    }
}

fn collect_regexes(nodes: &[Node], out: &mut HashMap<String, Regex>) {
    for n in nodes {
        match n {
            Node::Action(p) => collect_regexes_pipe(p, out),
            Node::If(b) | Node::With(b) | Node::Range(b) => {
                collect_regexes_pipe(&b.pipe, out);
                collect_regexes(&b.list, out);
                if let Some(e) = &b.else_list {
                    collect_regexes(e, out);
                }
            }
            _ => {}
        }
    }
}

fn collect_regexes_pipe(p: &Pipe, out: &mut HashMap<String, Regex>) {
    for c in &p.cmds {
        if let (Some(Arg::Func(i, _)), Some(Arg::Str(pat))) = (c.args.first(), c.args.get(1))
            && matches!(
                FUNCS[*i].1,
                Func::RegexReplaceAll | Func::RegexReplaceAllLiteral | Func::Count
            )
            && !out.contains_key(pat)
            && let Ok(re) = Regex::new(pat)
        {
            out.insert(pat.clone(), re);
        }
        for a in &c.args {
            if let Arg::Pipe(p) = a {
                collect_regexes_pipe(p, out);
            }
        }
    }
}

// ───────────────────────────── parser ─────────────────────────────

struct Parser {
    toks: Vec<Tok>,
    i: usize,
    hi: usize,
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
    action_line: usize,
}

/// What ends an item list.
enum Term {
    End,
    Else,
}

enum Item {
    Node(Node),
    End,
    Else,
}

fn tok_string(t: &Tok) -> String {
    match t.t {
        T::Eof => "EOF".into(),
        T::Error => t.val.clone(),
        k if k.is_keyword() => format!("<{}>", t.val),
        _ => {
            if t.val.chars().count() > 10 {
                let s: String = t.val.chars().take(10).collect();
                format!("{}...", go_quote(&s))
            } else {
                go_quote(&t.val)
            }
        }
    }
}

impl Parser {
    fn advance(&mut self) -> usize {
        let k = self.i.min(self.toks.len() - 1);
        self.i = k + 1;
        self.hi = self.hi.max(k);
        k
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    fn peek(&mut self) -> usize {
        let k = self.advance();
        self.backup();
        k
    }

    fn next_non_space(&mut self) -> usize {
        loop {
            let k = self.advance();
            if self.toks[k].t != T::Space {
                return k;
            }
        }
    }

    fn peek_non_space(&mut self) -> usize {
        let k = self.next_non_space();
        self.backup();
        k
    }

    fn kind(&self, k: usize) -> T {
        self.toks[k].t
    }

    fn errorf(&self, msg: impl std::fmt::Display) -> String {
        format!("template: {NAME}:{}: {msg}", self.toks[self.hi].line)
    }

    fn unexpected(&self, k: usize, context: &str) -> String {
        let tok = &self.toks[k];
        if tok.t == T::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != tok.line {
                extra = format!(" in action started at {NAME}:{}", self.action_line);
                if tok.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{}{}", tok.val, extra));
        }
        self.errorf(format!("unexpected {} in {}", tok_string(tok), context))
    }

    fn expect(&mut self, t: T, context: &str) -> Result<usize, String> {
        let k = self.next_non_space();
        if self.kind(k) != t {
            return Err(self.unexpected(k, context));
        }
        Ok(k)
    }

    fn parse(&mut self) -> Result<Vec<Node>, String> {
        let mut root = Vec::new();
        loop {
            let k = self.peek();
            if self.kind(k) == T::Eof {
                return Ok(root);
            }
            match self.text_or_action()? {
                Item::Node(n) => root.push(n),
                Item::End => return Err(self.errorf("unexpected {{end}}")),
                Item::Else => return Err(self.errorf("unexpected {{else}}")),
            }
        }
    }

    fn item_list(&mut self) -> Result<(Vec<Node>, Term), String> {
        let mut list = Vec::new();
        loop {
            let k = self.peek_non_space();
            if self.kind(k) == T::Eof {
                return Err(self.errorf("unexpected EOF"));
            }
            match self.text_or_action()? {
                Item::Node(n) => list.push(n),
                Item::End => return Ok((list, Term::End)),
                Item::Else => return Ok((list, Term::Else)),
            }
        }
    }

    fn text_or_action(&mut self) -> Result<Item, String> {
        let k = self.next_non_space();
        match self.kind(k) {
            T::Text => Ok(Item::Node(Node::Text(self.toks[k].val.clone()))),
            T::LeftDelim => {
                self.action_line = self.toks[k].line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => Err(self.unexpected(k, "input")),
        }
    }

    fn action(&mut self) -> Result<Item, String> {
        let k = self.next_non_space();
        match self.kind(k) {
            T::Block | T::Define | T::TemplateKw => Err(self.errorf(format!(
                "{{{{{}}}}} is not supported in LogQL templates",
                self.toks[k].val
            ))),
            t @ (T::Break | T::Continue) => {
                let name = self.toks[k].val.clone();
                let k2 = self.next_non_space();
                if self.kind(k2) != T::RightDelim {
                    return Err(self.unexpected(k2, &format!("{{{{{name}}}}}")));
                }
                if self.range_depth == 0 {
                    return Err(self.errorf(format!("{{{{{name}}}}} outside {{{{range}}}}")));
                }
                Ok(Item::Node(if t == T::Break {
                    Node::Break
                } else {
                    Node::Continue
                }))
            }
            T::Else => {
                let p = self.peek_non_space();
                if !matches!(self.kind(p), T::If | T::With) {
                    self.expect(T::RightDelim, "else")?;
                }
                Ok(Item::Else)
            }
            T::End => {
                self.expect(T::RightDelim, "end")?;
                Ok(Item::End)
            }
            T::If => Ok(Item::Node(Node::If(Box::new(self.control("if")?)))),
            T::Range => Ok(Item::Node(Node::Range(Box::new(self.control("range")?)))),
            T::With => Ok(Item::Node(Node::With(Box::new(self.control("with")?)))),
            _ => {
                self.backup();
                let pipe = self.pipeline("command", T::RightDelim)?;
                Ok(Item::Node(Node::Action(pipe)))
            }
        }
    }

    fn control(&mut self, context: &str) -> Result<Branch, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.errorf("max expression depth exceeded"));
        }
        let mark = self.vars.len();
        let r = self.control_inner(context);
        self.vars.truncate(mark);
        self.depth -= 1;
        r
    }

    fn control_inner(&mut self, context: &str) -> Result<Branch, String> {
        let pipe = self.pipeline(context, T::RightDelim)?;
        let is_range = context == "range";
        if is_range {
            self.range_depth += 1;
        }
        let r = self.item_list();
        if is_range {
            self.range_depth -= 1;
        }
        let (list, term) = r?;
        let mut else_list = None;
        if let Term::Else = term {
            let k = self.peek();
            let t = self.kind(k);
            if context == "if" && t == T::If {
                self.advance();
                else_list = Some(vec![Node::If(Box::new(self.control("if")?))]);
            } else if context == "with" && t == T::With {
                self.advance();
                else_list = Some(vec![Node::With(Box::new(self.control("with")?))]);
            } else {
                let (l, term) = self.item_list()?;
                if let Term::Else = term {
                    return Err(self.errorf("expected end; found {{else}}"));
                }
                else_list = Some(l);
            }
        }
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn pipeline(&mut self, context: &str, end: T) -> Result<Pipe, String> {
        let start = self.peek_non_space();
        let mut pipe = Pipe {
            pos: self.toks[start].pos,
            decl: Vec::new(),
            is_assign: false,
            cmds: Vec::new(),
        };
        loop {
            let v = self.peek_non_space();
            if self.kind(v) != T::Variable {
                break;
            }
            let save = self.i;
            self.advance();
            let nk = self.peek_non_space();
            let nt = self.kind(nk);
            let name = self.toks[v].val.clone();
            if nt == T::Assign || nt == T::Declare {
                pipe.is_assign = nt == T::Assign;
                self.next_non_space();
                pipe.decl.push(name.clone());
                self.vars.push(name);
                break;
            } else if nt == T::Char && self.toks[nk].val == "," {
                self.next_non_space();
                pipe.decl.push(name.clone());
                self.vars.push(name);
                if context == "range" && pipe.decl.len() < 2 {
                    let p = self.peek_non_space();
                    if matches!(self.kind(p), T::Variable | T::RightDelim | T::RightParen) {
                        continue;
                    }
                    return Err(self.errorf("range can only initialize variables"));
                }
                return Err(self.errorf(format!("too many declarations in {context}")));
            }
            self.i = save;
            break;
        }
        loop {
            let k = self.next_non_space();
            let t = self.kind(k);
            if t == end {
                self.check_pipeline(&pipe, context)?;
                return Ok(pipe);
            }
            match t {
                T::Bool
                | T::CharConst
                | T::Complex
                | T::Dot
                | T::Field
                | T::Ident
                | T::Number
                | T::Nil
                | T::RawString
                | T::Str
                | T::Variable
                | T::LeftParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                _ => return Err(self.unexpected(k, context)),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> Result<(), String> {
        if pipe.cmds.is_empty() {
            return Err(self.errorf(format!("missing value for {context}")));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0],
                Arg::Bool(_) | Arg::Dot | Arg::Nil | Arg::Number(_) | Arg::Str(_)
            ) {
                return Err(self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> Result<Cmd, String> {
        let first = self.peek_non_space();
        let pos = self.toks[first].pos;
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                args.push(op);
            }
            let k = self.advance();
            match self.kind(k) {
                T::Space => continue,
                T::RightDelim | T::RightParen => self.backup(),
                T::Pipe => {}
                _ => return Err(self.unexpected(k, "operand")),
            }
            break;
        }
        if args.is_empty() {
            return Err(self.errorf("empty command"));
        }
        Ok(Cmd { pos, args })
    }

    fn operand(&mut self) -> Result<Option<Arg>, String> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        let k = self.peek();
        if self.kind(k) != T::Field {
            return Ok(Some(node));
        }
        let mut fields = Vec::new();
        loop {
            let k = self.peek();
            if self.kind(k) != T::Field {
                break;
            }
            self.advance();
            fields.push(self.toks[k].val[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field(mut f) => {
                f.extend(fields);
                Arg::Field(f)
            }
            Arg::Var(v, mut f) => {
                f.extend(fields);
                Arg::Var(v, f)
            }
            Arg::Bool(_) | Arg::Str(_) | Arg::Number(_) | Arg::Nil | Arg::Dot => {
                return Err(self.errorf(format!(
                    "unexpected . after term {}",
                    go_quote(&node.go_string())
                )));
            }
            other => Arg::Chain(Box::new(other), fields),
        }))
    }

    fn term(&mut self) -> Result<Option<Arg>, String> {
        let k = self.next_non_space();
        let t = self.kind(k);
        let pos = self.toks[k].pos;
        let val = self.toks[k].val.clone();
        let arg = match t {
            T::Ident => match FUNCS.iter().position(|f| f.0 == val) {
                Some(i) => Arg::Func(i, pos),
                None => {
                    return Err(self.errorf(format!("function {} not defined", go_quote(&val))));
                }
            },
            T::Dot => Arg::Dot,
            T::Nil => Arg::Nil,
            T::Variable => {
                if !self.vars.contains(&val) {
                    return Err(self.errorf(format!("undefined variable {}", go_quote(&val))));
                }
                Arg::Var(val, Vec::new())
            }
            T::Field => Arg::Field(vec![val[1..].to_string()]),
            T::Bool => Arg::Bool(val == "true"),
            T::CharConst | T::Complex | T::Number => {
                Arg::Number(parse_number(&val, t).map_err(|e| self.errorf(e))?)
            }
            T::LeftParen => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.errorf("max expression depth exceeded"));
                }
                let p = self.pipeline("parenthesized pipeline", T::RightParen);
                self.depth -= 1;
                Arg::Pipe(Box::new(p?))
            }
            T::Str | T::RawString => Arg::Str(unquote(&val).map_err(|e| self.errorf(e))?),
            _ => {
                self.backup();
                return Ok(None);
            }
        };
        Ok(Some(arg))
    }
}

/// Go's `parse.NumberNode` construction.
fn parse_number(text: &str, t: T) -> Result<Number, String> {
    if t == T::CharConst {
        let c =
            unquote_char(text).ok_or_else(|| format!("malformed character constant: {text}"))?;
        return Ok(Number {
            text: text.to_string(),
            int: Some(i64::from(c)),
            float: Some(f64::from(c)),
            is_float: false,
        });
    }
    if t == T::Complex || text.ends_with('i') {
        return Err(format!(
            "complex constant {} is not supported",
            go_quote(text)
        ));
    }
    let int = parse_go_int(text);
    let mut n = Number {
        text: text.to_string(),
        int,
        float: int.map(|i| i as f64),
        is_float: false,
    };
    if int.is_none() {
        let f = text
            .parse::<f64>()
            .map_err(|_| format!("illegal number syntax: {}", go_quote(text)))?;
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!("integer overflow: {}", go_quote(text)));
        }
        n.float = Some(f);
        if f == f.trunc() && f.abs() < 9.2e18 {
            n.int = Some(f as i64);
        }
    }
    let body = text.trim_start_matches(['+', '-']);
    let hex = body.len() > 1 && body.starts_with('0') && matches!(body.as_bytes()[1], b'x' | b'X');
    n.is_float = n.float.is_some() && !hex && text.contains(['.', 'e', 'E', 'p', 'P']);
    Ok(n)
}

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, `0x`/`0o`/`0b`/leading-`0` prefixes,
/// underscores between digits.
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let b = body.as_bytes();
    let (radix, digits) = if b[0] == b'0' && b.len() > 1 {
        match b[1] {
            b'x' | b'X' if b.len() >= 3 => (16, &body[2..]),
            b'o' | b'O' if b.len() >= 3 => (8, &body[2..]),
            b'b' | b'B' if b.len() >= 3 => (2, &body[2..]),
            _ => (8, &body[1..]),
        }
    } else {
        (10, body)
    };
    let cleaned;
    let digits = if digits.contains('_') {
        if !underscore_ok(s) {
            return None;
        }
        cleaned = digits.replace('_', "");
        cleaned.as_str()
    } else {
        digits
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let u = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if u > i64::MAX as u64 + 1 {
            None
        } else {
            Some((u as i64).wrapping_neg())
        }
    } else {
        i64::try_from(u).ok()
    }
}

/// Go's `underscoreOK`: underscores only between digits (or after a base prefix).
fn underscore_ok(s: &str) -> bool {
    let b = s.trim_start_matches(['+', '-']).as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// One decoded escape or character of a quoted literal.
enum Piece {
    Byte(u8),
    Char(char),
}

/// Decodes the next character or escape of a Go quoted literal (`quote` is `"` or `'`).
fn next_piece(it: &mut std::str::Chars<'_>, quote: char) -> Option<Result<Piece, ()>> {
    let c = it.next()?;
    if c != '\\' {
        if c == quote {
            return Some(Err(()));
        }
        return Some(Ok(Piece::Char(c)));
    }
    let hex = |it: &mut std::str::Chars<'_>, n: usize| -> Result<u32, ()> {
        let mut v = 0u32;
        for _ in 0..n {
            v = v * 16 + it.next().and_then(|c| c.to_digit(16)).ok_or(())?;
        }
        Ok(v)
    };
    let r = match it.next() {
        None => Err(()),
        Some('a') => Ok(Piece::Byte(7)),
        Some('b') => Ok(Piece::Byte(8)),
        Some('f') => Ok(Piece::Byte(12)),
        Some('n') => Ok(Piece::Byte(b'\n')),
        Some('r') => Ok(Piece::Byte(b'\r')),
        Some('t') => Ok(Piece::Byte(b'\t')),
        Some('v') => Ok(Piece::Byte(11)),
        Some('\\') => Ok(Piece::Byte(b'\\')),
        Some(q @ ('\'' | '"')) if q == quote => Ok(Piece::Char(q)),
        Some('x') => hex(it, 2).map(|v| Piece::Byte(v as u8)),
        Some(d @ '0'..='7') => {
            let mut v = d as u32 - '0' as u32;
            let mut r = Ok(());
            for _ in 0..2 {
                match it.next().and_then(|c| c.to_digit(8)) {
                    Some(x) => v = v * 8 + x,
                    None => r = Err(()),
                }
            }
            if v > 255 {
                r = Err(());
            }
            r.map(|()| Piece::Byte(v as u8))
        }
        Some('u') => hex(it, 4).and_then(|v| char::from_u32(v).map(Piece::Char).ok_or(())),
        Some('U') => hex(it, 8).and_then(|v| char::from_u32(v).map(Piece::Char).ok_or(())),
        Some(_) => Err(()),
    };
    Some(r)
}

/// Go's `strconv.Unquote` for `"…"` and `` `…` `` literals.
fn unquote(s: &str) -> Result<String, String> {
    if s.len() < 2 {
        return Err("invalid syntax".into());
    }
    let inner = &s[1..s.len() - 1];
    if s.starts_with('`') {
        return Ok(inner.replace('\r', ""));
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut it = inner.chars();
    while let Some(p) = next_piece(&mut it, '"') {
        match p.map_err(|()| "invalid syntax".to_string())? {
            Piece::Byte(b) => out.push(b),
            Piece::Char(c) => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    Ok(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// The value of a character constant such as `'a'` or `'\n'`.
fn unquote_char(s: &str) -> Option<u32> {
    let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut it = inner.chars();
    let v = match next_piece(&mut it, '\'')?.ok()? {
        Piece::Byte(b) => u32::from(b),
        Piece::Char(c) => c as u32,
    };
    if it.next().is_some() {
        return None;
    }
    Some(v)
}

// ───────────────────────────── functions ─────────────────────────────

/// The type a function parameter wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    /// `string`
    S,
    /// `int`
    I,
    /// `float64`
    F,
    /// `time.Time`
    T,
    /// `interface{}`
    A,
}

impl P {
    fn go_type(self) -> &'static str {
        match self {
            P::S => "string",
            P::I => "int",
            P::F => "float64",
            P::T => "time.Time",
            P::A => "interface {}",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    And,
    Or,
    Not,
    Len,
    Index,
    Slice,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Print,
    Printf,
    Println,
    Html,
    Js,
    Urlquery,
    Line,
    Timestamp,
    GoToLower,
    GoToUpper,
    GoReplace,
    GoTrim,
    GoTrimLeft,
    GoTrimRight,
    GoTrimPrefix,
    GoTrimSuffix,
    GoTrimSpace,
    RegexReplaceAll,
    RegexReplaceAllLiteral,
    Count,
    UrlDecode,
    UrlEncode,
    Bytes,
    Duration,
    UnixEpochMillis,
    UnixEpochNanos,
    ToDateInZone,
    UnixToTime,
    AlignLeft,
    AlignRight,
    B64Enc,
    B64Dec,
    Lower,
    Upper,
    Title,
    Trunc,
    Substr,
    Contains,
    HasPrefix,
    HasSuffix,
    Indent,
    Nindent,
    Replace,
    Repeat,
    Trim,
    TrimAll,
    TrimSuffix,
    TrimPrefix,
    Int,
    Float64,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Addf,
    Subf,
    Mulf,
    Divf,
    Max,
    Min,
    Maxf,
    Minf,
    Ceil,
    Floor,
    Round,
    FromJson,
    Date,
    ToDate,
    Now,
    UnixEpoch,
    Default,
}

type FuncEntry = (&'static str, Func, &'static [P], Option<P>);

/// Every function a template may call: name, id, fixed parameters, variadic parameter.
const FUNCS: &[FuncEntry] = &[
    // Go's builtins.
    ("and", Func::And, &[P::A], Some(P::A)),
    ("or", Func::Or, &[P::A], Some(P::A)),
    ("not", Func::Not, &[P::A], None),
    ("len", Func::Len, &[P::A], None),
    ("index", Func::Index, &[P::A], Some(P::A)),
    ("slice", Func::Slice, &[P::A], Some(P::A)),
    ("eq", Func::Eq, &[P::A], Some(P::A)),
    ("ne", Func::Ne, &[P::A, P::A], None),
    ("lt", Func::Lt, &[P::A, P::A], None),
    ("le", Func::Le, &[P::A, P::A], None),
    ("gt", Func::Gt, &[P::A, P::A], None),
    ("ge", Func::Ge, &[P::A, P::A], None),
    ("print", Func::Print, &[], Some(P::A)),
    ("printf", Func::Printf, &[P::S], Some(P::A)),
    ("println", Func::Println, &[], Some(P::A)),
    ("html", Func::Html, &[], Some(P::A)),
    ("js", Func::Js, &[], Some(P::A)),
    ("urlquery", Func::Urlquery, &[], Some(P::A)),
    // Loki's own.
    ("__line__", Func::Line, &[], None),
    ("__timestamp__", Func::Timestamp, &[], None),
    ("ToLower", Func::GoToLower, &[P::S], None),
    ("ToUpper", Func::GoToUpper, &[P::S], None),
    ("Replace", Func::GoReplace, &[P::S, P::S, P::S, P::I], None),
    ("Trim", Func::GoTrim, &[P::S, P::S], None),
    ("TrimLeft", Func::GoTrimLeft, &[P::S, P::S], None),
    ("TrimRight", Func::GoTrimRight, &[P::S, P::S], None),
    ("TrimPrefix", Func::GoTrimPrefix, &[P::S, P::S], None),
    ("TrimSuffix", Func::GoTrimSuffix, &[P::S, P::S], None),
    ("TrimSpace", Func::GoTrimSpace, &[P::S], None),
    (
        "regexReplaceAll",
        Func::RegexReplaceAll,
        &[P::S, P::S, P::S],
        None,
    ),
    (
        "regexReplaceAllLiteral",
        Func::RegexReplaceAllLiteral,
        &[P::S, P::S, P::S],
        None,
    ),
    ("count", Func::Count, &[P::S, P::S], None),
    ("urldecode", Func::UrlDecode, &[P::S], None),
    ("urlencode", Func::UrlEncode, &[P::S], None),
    ("bytes", Func::Bytes, &[P::S], None),
    ("duration", Func::Duration, &[P::S], None),
    ("duration_seconds", Func::Duration, &[P::S], None),
    ("unixEpochMillis", Func::UnixEpochMillis, &[P::T], None),
    ("unixEpochNanos", Func::UnixEpochNanos, &[P::T], None),
    (
        "toDateInZone",
        Func::ToDateInZone,
        &[P::S, P::S, P::S],
        None,
    ),
    ("unixToTime", Func::UnixToTime, &[P::S], None),
    ("alignLeft", Func::AlignLeft, &[P::I, P::S], None),
    ("alignRight", Func::AlignRight, &[P::I, P::S], None),
    // Sprig's, as Loki imports them.
    ("b64enc", Func::B64Enc, &[P::S], None),
    ("b64dec", Func::B64Dec, &[P::S], None),
    ("lower", Func::Lower, &[P::S], None),
    ("upper", Func::Upper, &[P::S], None),
    ("title", Func::Title, &[P::S], None),
    ("trunc", Func::Trunc, &[P::I, P::S], None),
    ("substr", Func::Substr, &[P::I, P::I, P::S], None),
    ("contains", Func::Contains, &[P::S, P::S], None),
    ("hasPrefix", Func::HasPrefix, &[P::S, P::S], None),
    ("hasSuffix", Func::HasSuffix, &[P::S, P::S], None),
    ("indent", Func::Indent, &[P::I, P::S], None),
    ("nindent", Func::Nindent, &[P::I, P::S], None),
    ("replace", Func::Replace, &[P::S, P::S, P::S], None),
    ("repeat", Func::Repeat, &[P::I, P::S], None),
    ("trim", Func::Trim, &[P::S], None),
    ("trimAll", Func::TrimAll, &[P::S, P::S], None),
    ("trimSuffix", Func::TrimSuffix, &[P::S, P::S], None),
    ("trimPrefix", Func::TrimPrefix, &[P::S, P::S], None),
    ("int", Func::Int, &[P::A], None),
    ("float64", Func::Float64, &[P::A], None),
    ("add", Func::Add, &[], Some(P::A)),
    ("sub", Func::Sub, &[P::A, P::A], None),
    ("mul", Func::Mul, &[P::A], Some(P::A)),
    ("div", Func::Div, &[P::A, P::A], None),
    ("mod", Func::Mod, &[P::A, P::A], None),
    ("addf", Func::Addf, &[], Some(P::A)),
    ("subf", Func::Subf, &[P::A], Some(P::A)),
    ("mulf", Func::Mulf, &[P::A], Some(P::A)),
    ("divf", Func::Divf, &[P::A], Some(P::A)),
    ("max", Func::Max, &[P::A], Some(P::A)),
    ("min", Func::Min, &[P::A], Some(P::A)),
    ("maxf", Func::Maxf, &[P::A], Some(P::A)),
    ("minf", Func::Minf, &[P::A], Some(P::A)),
    ("ceil", Func::Ceil, &[P::A], None),
    ("floor", Func::Floor, &[P::A], None),
    ("round", Func::Round, &[P::A, P::I], Some(P::F)),
    ("fromJson", Func::FromJson, &[P::S], None),
    ("date", Func::Date, &[P::S, P::A], None),
    ("toDate", Func::ToDate, &[P::S, P::S], None),
    ("now", Func::Now, &[], None),
    ("unixEpoch", Func::UnixEpoch, &[P::T], None),
    ("default", Func::Default, &[P::A], Some(P::A)),
];

// ───────────────────────────── values ─────────────────────────────

/// A run-time value.
#[derive(Debug, Clone)]
enum Value<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Time(Time),
    List(Rc<Vec<Value<'static>>>),
    Map(Rc<BTreeMap<String, Value<'static>>>),
    /// The top-level data: the entry's labels.
    Labels,
}

impl Value<'_> {
    fn go_type(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Time(_) => "time.Time",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Labels => "map[string]string",
        }
    }
}

fn owned(s: String) -> Value<'static> {
    Value::Str(Cow::Owned(s))
}

/// Go's `isTrue`.
fn truth(v: &Value) -> bool {
    match v {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::List(l) => !l.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Time(_) | Value::Labels => true,
    }
}

/// Sprig's `empty`.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Time(_) | Value::Labels => false,
        other => !truth(other),
    }
}

fn ideal(n: &Number) -> Value<'static> {
    if n.is_float {
        Value::Float(n.float.unwrap_or(0.0))
    } else {
        Value::Int(n.int.unwrap_or(0))
    }
}

/// Go's `strconv` trimming used by `cast.ToInt64`: `"2.00"` reads as `"2"`.
fn trim_zero_decimal(s: &str) -> &str {
    let b = s.as_bytes();
    let mut found_zero = false;
    for i in (1..=b.len()).rev() {
        match b[i - 1] {
            b'.' => {
                if found_zero {
                    return &s[..i - 1];
                }
            }
            b'0' => found_zero = true,
            _ => return s,
        }
    }
    s
}

/// Sprig's `toInt64` (spf13/cast): anything not convertible is 0.
fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => parse_go_int(trim_zero_decimal(s)).unwrap_or(0),
        _ => 0,
    }
}

/// Sprig's `toFloat64` (spf13/cast): anything not convertible is 0.
fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.parse::<f64>().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn json_to_value(j: serde_json::Value) -> Value<'static> {
    match j {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => owned(s),
        serde_json::Value::Array(a) => {
            Value::List(Rc::new(a.into_iter().map(json_to_value).collect()))
        }
        serde_json::Value::Object(o) => Value::Map(Rc::new(
            o.into_iter().map(|(k, v)| (k, json_to_value(v))).collect(),
        )),
    }
}

/// Go's `fmt` `%v`.
fn fmt_v(v: &Value, out: &mut String) {
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&float_v(*f)),
        Value::Str(s) => out.push_str(s),
        Value::Time(t) => out.push_str(&t.go_string()),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_v(e, out);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                fmt_v(e, out);
            }
            out.push(']');
        }
        Value::Labels => out.push_str("map[]"),
    }
}

fn to_v(v: &Value) -> String {
    let mut s = String::new();
    fmt_v(v, &mut s);
    s
}

// ───────────────────────────── execution ─────────────────────────────

enum Flow {
    Normal,
    Break,
    Continue,
}

struct Exec<'a> {
    tpl: &'a Template,
    ctx: &'a dyn Context,
    vars: Vec<(&'a str, Value<'a>)>,
    out: String,
    iterations: u64,
}

impl<'a> Exec<'a> {
    /// A run-time error, located like Go's (`template: line:L:C: executing …`).
    fn fail(&self, pos: usize, context: &str, msg: impl std::fmt::Display) -> String {
        let before = &self.tpl.src[..pos.min(self.tpl.src.len())];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(nl) => pos - nl - 1,
            None => pos,
        };
        format!("template: {NAME}:{line}:{col}: executing \"{NAME}\" at <{context}>: {msg}")
    }

    fn walk(&mut self, dot: &Value<'a>, nodes: &'a [Node]) -> Result<Flow, String> {
        for n in nodes {
            let flow = match n {
                Node::Text(t) => {
                    self.out.push_str(t);
                    self.check_output(0)?;
                    Flow::Normal
                }
                Node::Action(p) => {
                    let v = self.eval_pipeline(dot, p)?;
                    if p.decl.is_empty() {
                        self.print_value(&v, p)?;
                        self.check_output(p.pos)?;
                    }
                    Flow::Normal
                }
                Node::If(b) | Node::With(b) => {
                    let mark = self.vars.len();
                    let r = self.walk_if(dot, b, matches!(n, Node::With(_)));
                    self.vars.truncate(mark);
                    r?
                }
                Node::Range(b) => {
                    let mark = self.vars.len();
                    let r = self.walk_range(dot, b);
                    self.vars.truncate(mark);
                    r?
                }
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if !matches!(flow, Flow::Normal) {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn check_output(&self, pos: usize) -> Result<(), String> {
        if self.out.len() > MAX_STRING {
            return Err(self.fail(
                pos,
                "output",
                format!("template output exceeds {} MiB", MAX_STRING >> 20),
            ));
        }
        Ok(())
    }

    fn print_value(&mut self, v: &Value<'a>, p: &Pipe) -> Result<(), String> {
        match v {
            Value::Str(s) => self.out.push_str(s),
            Value::Labels => {
                return Err(self.fail(p.pos, &p.go_string(), "can't print the label map"));
            }
            other => fmt_v(other, &mut self.out),
        }
        Ok(())
    }

    fn walk_if(&mut self, dot: &Value<'a>, b: &'a Branch, with: bool) -> Result<Flow, String> {
        let v = self.eval_pipeline(dot, &b.pipe)?;
        if truth(&v) {
            if with {
                self.walk(&v, &b.list)
            } else {
                self.walk(dot, &b.list)
            }
        } else if let Some(e) = &b.else_list {
            self.walk(dot, e)
        } else {
            Ok(Flow::Normal)
        }
    }

    fn walk_range(&mut self, dot: &Value<'a>, b: &'a Branch) -> Result<Flow, String> {
        let pos = b.pipe.pos;
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let mark = self.vars.len();
        let ndecl = b.pipe.decl.len();
        let keys: Vec<String> = match &val {
            Value::Map(m) => m.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let len: i64 = match &val {
            Value::List(l) => l.len() as i64,
            Value::Map(_) => keys.len() as i64,
            Value::Int(n) => {
                if ndecl > 1 {
                    return Err(self.fail(
                        pos,
                        "range",
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                (*n).max(0)
            }
            Value::Nil => 0,
            Value::Labels => {
                return Err(self.fail(pos, "range", "range over the label map is not supported"));
            }
            other => {
                return Err(self.fail(
                    pos,
                    "range",
                    format!("range can't iterate over {}", to_v(other)),
                ));
            }
        };
        if len == 0 {
            return match &b.else_list {
                Some(e) => self.walk(dot, e),
                None => Ok(Flow::Normal),
            };
        }
        for idx in 0..len {
            self.iterations += 1;
            if self.iterations > MAX_RANGE_ITERATIONS {
                return Err(self.fail(pos, "range", "range iteration limit exceeded"));
            }
            let (key, elem): (Value<'a>, Value<'a>) = match &val {
                Value::List(l) => (Value::Int(idx), l[idx as usize].clone()),
                Value::Map(m) => {
                    let k = &keys[idx as usize];
                    (owned(k.clone()), m.get(k).cloned().unwrap_or(Value::Nil))
                }
                _ => (Value::Int(idx), Value::Int(idx)),
            };
            if ndecl > 0 {
                if b.pipe.is_assign {
                    let first = if ndecl > 1 { key.clone() } else { elem.clone() };
                    self.set_var(&b.pipe.decl[0], first, pos)?;
                } else {
                    self.vars[mark - 1].1 = elem.clone();
                }
            }
            if ndecl > 1 {
                if b.pipe.is_assign {
                    self.set_var(&b.pipe.decl[1], elem.clone(), pos)?;
                } else {
                    self.vars[mark - 2].1 = key;
                }
            }
            let flow = self.walk(&elem, &b.list);
            self.vars.truncate(mark);
            if let Flow::Break = flow? {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    fn var_value(&self, name: &str) -> Value<'a> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map_or(Value::Nil, |(_, v)| v.clone())
    }

    fn set_var(&mut self, name: &str, v: Value<'a>, pos: usize) -> Result<(), String> {
        match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => Err(self.fail(pos, name, format!("undefined variable: {name}"))),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value<'a>, pipe: &'a Pipe) -> Result<Value<'a>, String> {
        let mut v: Option<Value<'a>> = None;
        for c in &pipe.cmds {
            v = Some(self.eval_command(dot, c, v.take())?);
        }
        let v = v.unwrap_or(Value::Nil);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, v.clone(), pipe.pos)?;
            } else {
                self.vars.push((name, v.clone()));
            }
        }
        Ok(v)
    }

    fn eval_command(
        &mut self,
        dot: &Value<'a>,
        cmd: &'a Cmd,
        fin: Option<Value<'a>>,
    ) -> Result<Value<'a>, String> {
        let pos = cmd.pos;
        let first = &cmd.args[0];
        match first {
            Arg::Field(names) => {
                return self.eval_field_chain(dot, dot.clone(), names, &cmd.args, fin, pos);
            }
            Arg::Chain(inner, names) => {
                let recv = self.eval_arg(dot, inner, P::A, pos)?;
                return self.eval_field_chain(dot, recv, names, &cmd.args, fin, pos);
            }
            Arg::Func(i, fpos) => return self.call(dot, *i, *fpos, &cmd.args[1..], fin),
            Arg::Var(name, fields) if !fields.is_empty() => {
                let v = self.var_value(name);
                return self.eval_field_chain(dot, v, fields, &cmd.args, fin, pos);
            }
            _ => {}
        }
        if cmd.args.len() > 1 || fin.is_some() {
            let s = first.go_string();
            return Err(self.fail(pos, &s, format!("can't give argument to non-function {s}")));
        }
        Ok(match first {
            Arg::Pipe(p) => self.eval_pipeline(dot, p)?,
            Arg::Var(name, _) => self.var_value(name),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Number(n) => ideal(n),
            Arg::Str(s) => Value::Str(Cow::Borrowed(s)),
            Arg::Nil => return Err(self.fail(pos, "nil", "nil is not a command")),
            _ => dot.clone(),
        })
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value<'a>,
        recv: Value<'a>,
        names: &'a [String],
        args: &'a [Arg],
        fin: Option<Value<'a>>,
        pos: usize,
    ) -> Result<Value<'a>, String> {
        let Some((last, init)) = names.split_last() else {
            return Ok(recv);
        };
        let mut r = recv;
        for n in init {
            r = self.eval_field(dot, n, &[], None, r, pos)?;
        }
        self.eval_field(dot, last, args, fin, r, pos)
    }

    fn eval_field(
        &mut self,
        dot: &Value<'a>,
        name: &str,
        args: &'a [Arg],
        fin: Option<Value<'a>>,
        recv: Value<'a>,
        pos: usize,
    ) -> Result<Value<'a>, String> {
        let has_args = args.len() > 1 || fin.is_some();
        let ctx: &'a dyn Context = self.ctx;
        match recv {
            Value::Labels | Value::Map(_) if has_args => Err(self.fail(
                pos,
                name,
                format!("{name} is not a method but has arguments"),
            )),
            Value::Labels => Ok(Value::Str(Cow::Borrowed(ctx.label(name).unwrap_or("")))),
            Value::Map(m) => Ok(m.get(name).cloned().unwrap_or(Value::Nil)),
            Value::Time(t) => self.time_method(dot, &t, name, args, fin, pos),
            Value::Nil => Err(self.fail(
                pos,
                name,
                format!("nil pointer evaluating interface {{}}.{name}"),
            )),
            other => Err(self.fail(
                pos,
                name,
                format!("can't evaluate field {name} in type {}", other.go_type()),
            )),
        }
    }

    fn time_method(
        &mut self,
        dot: &Value<'a>,
        t: &Time,
        name: &str,
        args: &'a [Arg],
        fin: Option<Value<'a>>,
        pos: usize,
    ) -> Result<Value<'a>, String> {
        let mut margs = Vec::new();
        for a in args.iter().skip(1) {
            margs.push(self.eval_arg(dot, a, P::A, pos)?);
        }
        if let Some(f) = fin {
            margs.push(f);
        }
        let want = usize::from(name == "Format");
        let known = matches!(
            name,
            "Unix"
                | "UnixMilli"
                | "UnixMicro"
                | "UnixNano"
                | "Year"
                | "YearDay"
                | "Day"
                | "Hour"
                | "Minute"
                | "Second"
                | "Nanosecond"
                | "String"
                | "UTC"
                | "Local"
                | "Format"
        );
        if !known {
            return Err(self.fail(
                pos,
                name,
                format!("can't evaluate field {name} in type time.Time"),
            ));
        }
        if margs.len() != want {
            return Err(self.fail(
                pos,
                name,
                format!(
                    "wrong number of args for {name}: want {want} got {}",
                    margs.len()
                ),
            ));
        }
        let c = t.civil();
        Ok(match name {
            "Unix" => Value::Int(t.sec),
            "UnixMilli" => Value::Int(t.unix_milli()),
            "UnixMicro" => Value::Int(
                t.sec
                    .wrapping_mul(1_000_000)
                    .wrapping_add(i64::from(t.nsec / 1000)),
            ),
            "UnixNano" => Value::Int(t.unix_nano()),
            "Year" => Value::Int(c.year),
            "YearDay" => Value::Int(c.yday),
            "Day" => Value::Int(i64::from(c.day)),
            "Hour" => Value::Int(c.hour),
            "Minute" => Value::Int(c.min),
            "Second" => Value::Int(c.sec),
            "Nanosecond" => Value::Int(i64::from(t.nsec)),
            "String" => owned(t.go_string()),
            "UTC" | "Local" => Value::Time(t.to_utc()),
            _ => match &margs[0] {
                Value::Str(layout) => owned(t.format(layout)),
                other => {
                    return Err(self.fail(
                        pos,
                        name,
                        format!(
                            "wrong type for value; expected string; got {}",
                            other.go_type()
                        ),
                    ));
                }
            },
        })
    }

    /// Evaluates an argument for a parameter of type `kind` (Go's `evalArg`).
    fn eval_arg(
        &mut self,
        dot: &Value<'a>,
        arg: &'a Arg,
        kind: P,
        pos: usize,
    ) -> Result<Value<'a>, String> {
        let mismatch = |s: &Self, what: &str| -> String {
            let found = arg.go_string();
            let msg = match kind {
                P::I => format!("expected integer; found {found}"),
                P::F => format!("expected float; found {found}"),
                P::S => format!("expected string; found {found}"),
                _ => format!("can't handle {found} for arg of type {what}"),
            };
            s.fail(pos, &found, msg)
        };
        let v = match arg {
            Arg::Dot => dot.clone(),
            Arg::Nil => {
                if kind == P::A {
                    return Ok(Value::Nil);
                }
                return Err(self.fail(
                    pos,
                    "nil",
                    format!("cannot assign nil to {}", kind.go_type()),
                ));
            }
            Arg::Bool(b) => {
                if kind == P::A {
                    return Ok(Value::Bool(*b));
                }
                return Err(mismatch(self, kind.go_type()));
            }
            Arg::Number(n) => {
                return match kind {
                    P::A => Ok(ideal(n)),
                    P::I if n.int.is_some() => Ok(Value::Int(n.int.unwrap_or(0))),
                    P::F if n.float.is_some() => Ok(Value::Float(n.float.unwrap_or(0.0))),
                    _ => Err(mismatch(self, kind.go_type())),
                };
            }
            Arg::Str(s) => {
                if matches!(kind, P::A | P::S) {
                    return Ok(Value::Str(Cow::Borrowed(s)));
                }
                return Err(mismatch(self, kind.go_type()));
            }
            Arg::Field(names) => self.eval_field_chain(dot, dot.clone(), names, &[], None, pos)?,
            Arg::Var(name, fields) => {
                let v = self.var_value(name);
                self.eval_field_chain(dot, v, fields, &[], None, pos)?
            }
            Arg::Chain(inner, fields) => {
                let v = self.eval_arg(dot, inner, P::A, pos)?;
                self.eval_field_chain(dot, v, fields, &[], None, pos)?
            }
            Arg::Pipe(p) => self.eval_pipeline(dot, p)?,
            Arg::Func(i, fpos) => self.call(dot, *i, *fpos, &[], None)?,
        };
        self.validate(v, kind, pos, &arg.go_string())
    }

    /// Go's `validateType`.
    fn validate(&self, v: Value<'a>, kind: P, pos: usize, ctx: &str) -> Result<Value<'a>, String> {
        let ok = matches!(
            (&v, kind),
            (_, P::A)
                | (Value::Str(_), P::S)
                | (Value::Int(_), P::I)
                | (Value::Float(_), P::F)
                | (Value::Time(_), P::T)
        );
        if ok {
            return Ok(v);
        }
        if let Value::Nil = v {
            return Err(self.fail(
                pos,
                ctx,
                format!("invalid value; expected {}", kind.go_type()),
            ));
        }
        Err(self.fail(
            pos,
            ctx,
            format!(
                "wrong type for value; expected {}; got {}",
                kind.go_type(),
                v.go_type()
            ),
        ))
    }

    fn call(
        &mut self,
        dot: &Value<'a>,
        fi: usize,
        pos: usize,
        args: &'a [Arg],
        fin: Option<Value<'a>>,
    ) -> Result<Value<'a>, String> {
        let (name, func, fixed, variadic) = FUNCS[fi];
        let num_in = args.len() + usize::from(fin.is_some());
        if variadic.is_some() {
            if num_in < fixed.len() {
                return Err(self.fail(
                    pos,
                    name,
                    format!(
                        "wrong number of args for {name}: want at least {} got {}",
                        fixed.len(),
                        args.len()
                    ),
                ));
            }
        } else if num_in != fixed.len() {
            return Err(self.fail(
                pos,
                name,
                format!(
                    "wrong number of args for {name}: want {} got {num_in}",
                    fixed.len()
                ),
            ));
        }
        if matches!(func, Func::And | Func::Or) {
            let want = func == Func::Or;
            let mut v = Value::Nil;
            for a in args {
                v = self.eval_arg(dot, a, P::A, pos)?;
                if truth(&v) == want {
                    return Ok(v);
                }
            }
            if let Some(f) = fin {
                v = f;
            }
            return Ok(v);
        }
        let kind_at = |i: usize| fixed.get(i).copied().or(variadic).unwrap_or(P::A);
        let mut vals = Vec::with_capacity(num_in);
        for (i, a) in args.iter().enumerate() {
            vals.push(self.eval_arg(dot, a, kind_at(i), pos)?);
        }
        if let Some(f) = fin {
            vals.push(self.validate(f, kind_at(args.len()), pos, name)?);
        }
        let out = self.dispatch(func, vals).and_then(|v| match &v {
            Value::Str(s) => check_size(s.len()).map(|()| v),
            _ => Ok(v),
        });
        out.map_err(|e| self.fail(pos, name, format!("error calling {name}: {e}")))
    }

    fn regex(&self, pat: &str) -> Result<Cow<'a, Regex>, String> {
        let tpl: &'a Template = self.tpl;
        if let Some(re) = tpl.regexes.get(pat) {
            return Ok(Cow::Borrowed(re));
        }
        Regex::new(pat).map(Cow::Owned).map_err(|e| {
            let e = e.to_string();
            let detail = e
                .lines()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or(&e)
                .to_string();
            format!("error parsing regexp: {detail}: `{pat}`")
        })
    }

    /// Runs a function on already type-checked arguments.
    fn dispatch(&self, func: Func, mut v: Vec<Value<'a>>) -> Result<Value<'a>, String> {
        fn s<'b>(v: &'b [Value], i: usize) -> &'b str {
            match v.get(i) {
                Some(Value::Str(s)) => s,
                _ => "",
            }
        }
        fn n(v: &[Value], i: usize) -> i64 {
            match v.get(i) {
                Some(Value::Int(n)) => *n,
                _ => 0,
            }
        }
        fn t(v: &[Value], i: usize) -> Time {
            match v.get(i) {
                Some(Value::Time(t)) => t.clone(),
                _ => Time::zero(),
            }
        }
        fn string(s: String) -> Result<Value<'static>, String> {
            Ok(owned(s))
        }
        if matches!(
            func,
            Func::Print | Func::Printf | Func::Println | Func::Html | Func::Js | Func::Urlquery
        ) && v.iter().any(|x| matches!(x, Value::Labels))
        {
            return Err("can't format the label map".into());
        }
        if matches!(
            func,
            Func::Print | Func::Printf | Func::Println | Func::Html | Func::Js | Func::Urlquery
        ) {
            check_size(
                v.iter()
                    .map(|x| match x {
                        Value::Str(s) => s.len(),
                        _ => 32,
                    })
                    .sum(),
            )?;
        }
        let ctx: &'a dyn Context = self.ctx;
        match func {
            Func::And | Func::Or => Ok(v.pop().unwrap_or(Value::Nil)),
            Func::Not => Ok(Value::Bool(!truth(&v[0]))),
            Func::Len => match &v[0] {
                Value::Str(s) => Ok(Value::Int(s.len() as i64)),
                Value::List(l) => Ok(Value::Int(l.len() as i64)),
                Value::Map(m) => Ok(Value::Int(m.len() as i64)),
                Value::Nil => Err("len of nil pointer".into()),
                Value::Labels => Err("len of the label map is not supported".into()),
                other => Err(format!("len of type {}", other.go_type())),
            },
            Func::Index => index(ctx, v),
            Func::Slice => slice(v),
            Func::Eq => {
                if v.len() < 2 {
                    return Err("missing argument for comparison".into());
                }
                let mut any = false;
                for b in &v[1..] {
                    if eq(&v[0], b)? {
                        any = true;
                        break;
                    }
                }
                Ok(Value::Bool(any))
            }
            Func::Ne => Ok(Value::Bool(!eq(&v[0], &v[1])?)),
            Func::Lt => Ok(Value::Bool(lt(&v[0], &v[1])?)),
            Func::Le => Ok(Value::Bool(lt(&v[0], &v[1])? || eq(&v[0], &v[1])?)),
            Func::Gt => Ok(Value::Bool(!(lt(&v[0], &v[1])? || eq(&v[0], &v[1])?))),
            Func::Ge => Ok(Value::Bool(!lt(&v[0], &v[1])?)),
            Func::Print => string(sprint(&v)),
            Func::Println => string(sprintln(&v)),
            Func::Printf => string(sprintf(s(&v, 0), &v[1..])),
            Func::Html => string(html_escape(&eval_args(&v))),
            Func::Js => string(js_escape(&eval_args(&v))),
            Func::Urlquery => string(query_escape(&eval_args(&v))),
            Func::Line => Ok(Value::Str(Cow::Borrowed(ctx.line()))),
            Func::Timestamp => Ok(Value::Time(Time::from_unix_nanos(ctx.timestamp_ns()))),
            Func::GoToLower | Func::Lower => string(s(&v, 0).to_lowercase()),
            Func::GoToUpper | Func::Upper => string(s(&v, 0).to_uppercase()),
            Func::GoReplace => {
                let limit = usize::try_from(n(&v, 3)).ok();
                string(replace_checked(s(&v, 0), s(&v, 1), s(&v, 2), limit)?)
            }
            Func::GoTrim => {
                let cut = s(&v, 1);
                string(s(&v, 0).trim_matches(|c| cut.contains(c)).to_string())
            }
            Func::GoTrimLeft => {
                let cut = s(&v, 1);
                string(s(&v, 0).trim_start_matches(|c| cut.contains(c)).to_string())
            }
            Func::GoTrimRight => {
                let cut = s(&v, 1);
                string(s(&v, 0).trim_end_matches(|c| cut.contains(c)).to_string())
            }
            Func::GoTrimPrefix => string(strip_prefix(s(&v, 0), s(&v, 1)).to_string()),
            Func::GoTrimSuffix => string(strip_suffix(s(&v, 0), s(&v, 1)).to_string()),
            Func::GoTrimSpace | Func::Trim => string(s(&v, 0).trim().to_string()),
            Func::RegexReplaceAll | Func::RegexReplaceAllLiteral => {
                let re = self.regex(s(&v, 0))?;
                let repl = s(&v, 2);
                let mut r = BoundedReplacer {
                    repl,
                    literal: func == Func::RegexReplaceAllLiteral,
                    dollars: repl.matches('$').count(),
                    over: false,
                };
                let out = re
                    .replace_all(s(&v, 1), regex::Replacer::by_ref(&mut r))
                    .into_owned();
                if r.over {
                    check_size(usize::MAX)?;
                }
                string(out)
            }
            Func::Count => {
                let re = self.regex(s(&v, 0))?;
                Ok(Value::Int(re.find_iter(s(&v, 1)).count() as i64))
            }
            Func::UrlDecode => string(query_unescape(s(&v, 0))?),
            Func::UrlEncode => string(query_escape(s(&v, 0))),
            Func::Bytes => parse_bytes(s(&v, 0)).map(|b| Value::Float(b as f64)),
            Func::Duration => parse_duration(s(&v, 0)).map(|d| Value::Float(duration_seconds(d))),
            Func::UnixEpochMillis => string(t(&v, 0).unix_milli().to_string()),
            Func::UnixEpochNanos => string(t(&v, 0).unix_nano().to_string()),
            Func::ToDateInZone => {
                let (off, zone) = load_location(s(&v, 1));
                Ok(Value::Time(
                    parse_time(s(&v, 0), s(&v, 2), off, &zone).unwrap_or_else(Time::zero),
                ))
            }
            Func::UnixToTime => unix_to_time(s(&v, 0)).map(Value::Time),
            Func::AlignLeft | Func::AlignRight => {
                check_size(usize::try_from(n(&v, 0)).unwrap_or(0))?;
                string(align(n(&v, 0), s(&v, 1), func == Func::AlignLeft))
            }
            Func::B64Enc => string(base64::engine::general_purpose::STANDARD.encode(s(&v, 0))),
            Func::B64Dec => string(b64_decode(s(&v, 0))),
            Func::Title => string(title(s(&v, 0))),
            Func::Trunc => string(trunc(n(&v, 0), s(&v, 1))),
            Func::Substr => string(substring(n(&v, 0), n(&v, 1), s(&v, 2))),
            Func::Contains => Ok(Value::Bool(s(&v, 1).contains(s(&v, 0)))),
            Func::HasPrefix => Ok(Value::Bool(s(&v, 1).starts_with(s(&v, 0)))),
            Func::HasSuffix => Ok(Value::Bool(s(&v, 1).ends_with(s(&v, 0)))),
            Func::Indent | Func::Nindent => {
                let width =
                    usize::try_from(n(&v, 0)).map_err(|_| "strings: negative Repeat count")?;
                let src = s(&v, 1);
                let lines = src.matches('\n').count() + 1;
                check_size(src.len().saturating_add(width.saturating_mul(lines)))?;
                let pad = " ".repeat(width);
                let body = format!("{pad}{}", s(&v, 1).replace('\n', &format!("\n{pad}")));
                string(if func == Func::Nindent {
                    format!("\n{body}")
                } else {
                    body
                })
            }
            Func::Replace => string(replace_checked(s(&v, 2), s(&v, 0), s(&v, 1), None)?),
            Func::Repeat => {
                let c = usize::try_from(n(&v, 0)).map_err(|_| "strings: negative Repeat count")?;
                let src = s(&v, 1);
                check_size(c.saturating_mul(src.len()))?;
                string(src.repeat(c))
            }
            Func::TrimAll => {
                let cut = s(&v, 0);
                string(s(&v, 1).trim_matches(|c| cut.contains(c)).to_string())
            }
            Func::TrimSuffix => string(strip_suffix(s(&v, 1), s(&v, 0)).to_string()),
            Func::TrimPrefix => string(strip_prefix(s(&v, 1), s(&v, 0)).to_string()),
            Func::Int => Ok(Value::Int(to_i64(&v[0]))),
            Func::Float64 => Ok(Value::Float(to_f64(&v[0]))),
            Func::Add => Ok(Value::Int(
                v.iter().fold(0i64, |a, x| a.wrapping_add(to_i64(x))),
            )),
            Func::Sub => Ok(Value::Int(to_i64(&v[0]).wrapping_sub(to_i64(&v[1])))),
            Func::Mul => Ok(Value::Int(
                v.iter().fold(1i64, |a, x| a.wrapping_mul(to_i64(x))),
            )),
            Func::Div | Func::Mod => {
                let (a, b) = (to_i64(&v[0]), to_i64(&v[1]));
                if b == 0 {
                    return Err("runtime error: integer divide by zero".into());
                }
                Ok(Value::Int(if func == Func::Div {
                    a.wrapping_div(b)
                } else {
                    a.wrapping_rem(b)
                }))
            }
            Func::Addf => decimal_op(0.0, &v, DecOp::Add),
            Func::Subf => decimal_op(to_f64(&v[0]), &v[1..], DecOp::Sub),
            Func::Mulf => decimal_op(to_f64(&v[0]), &v[1..], DecOp::Mul),
            Func::Divf => decimal_op(to_f64(&v[0]), &v[1..], DecOp::Div),
            Func::Max => Ok(Value::Int(v.iter().map(to_i64).max().unwrap_or(0))),
            Func::Min => Ok(Value::Int(v.iter().map(to_i64).min().unwrap_or(0))),
            Func::Maxf | Func::Minf => {
                let mut acc = to_f64(&v[0]);
                for x in &v[1..] {
                    let y = to_f64(x);
                    acc = if acc.is_nan() || y.is_nan() {
                        f64::NAN
                    } else if func == Func::Maxf {
                        acc.max(y)
                    } else {
                        acc.min(y)
                    };
                }
                Ok(Value::Float(acc))
            }
            Func::Ceil => Ok(Value::Float(to_f64(&v[0]).ceil())),
            Func::Floor => Ok(Value::Float(to_f64(&v[0]).floor())),
            Func::Round => {
                let round_on = match v.get(2) {
                    Some(Value::Float(f)) => *f,
                    _ => 0.5,
                };
                let pow = 10f64.powf(n(&v, 1) as f64);
                let digit = pow * to_f64(&v[0]);
                let frac = digit - digit.trunc();
                let r = if frac >= round_on {
                    digit.ceil()
                } else {
                    digit.floor()
                };
                Ok(Value::Float(r / pow))
            }
            Func::FromJson => Ok(serde_json::from_str::<serde_json::Value>(s(&v, 0))
                .map(json_to_value)
                .unwrap_or(Value::Nil)),
            Func::Date => {
                let tm = match &v[1] {
                    Value::Time(t) => t.clone(),
                    Value::Int(i) => Time::from_unix(*i, 0),
                    _ => Time::now(),
                };
                string(tm.to_utc().format(s(&v, 0)))
            }
            Func::ToDate => Ok(Value::Time(
                parse_time(s(&v, 0), s(&v, 1), 0, "UTC").unwrap_or_else(Time::zero),
            )),
            Func::Now => Ok(Value::Time(Time::now())),
            Func::UnixEpoch => string(t(&v, 0).sec.to_string()),
            Func::Default => {
                let pick = usize::from(v.len() > 1 && !is_empty(&v[1]));
                Ok(v.swap_remove(pick))
            }
        }
    }
}

fn strip_prefix<'s>(s: &'s str, p: &str) -> &'s str {
    s.strip_prefix(p).unwrap_or(s)
}

fn strip_suffix<'s>(s: &'s str, p: &str) -> &'s str {
    s.strip_suffix(p).unwrap_or(s)
}

/// `strings.Replace` (`limit` None: all), refusing results over [`MAX_STRING`].
fn replace_checked(
    src: &str,
    old: &str,
    new: &str,
    limit: Option<usize>,
) -> Result<String, String> {
    if limit == Some(0) {
        return Ok(src.to_string());
    }
    if new.len() > old.len() {
        let mut count = if old.is_empty() {
            src.chars().count() + 1
        } else {
            src.matches(old).count()
        };
        if let Some(l) = limit {
            count = count.min(l);
        }
        check_size(
            src.len()
                .saturating_add(count.saturating_mul(new.len() - old.len())),
        )?;
    }
    Ok(match limit {
        None => src.replace(old, new),
        Some(l) => src.replacen(old, new, l),
    })
}

/// Regex replacement that stops growing the output past [`MAX_STRING`].
struct BoundedReplacer<'r> {
    repl: &'r str,
    literal: bool,
    dollars: usize,
    over: bool,
}

impl regex::Replacer for BoundedReplacer<'_> {
    fn replace_append(&mut self, caps: &regex::Captures<'_>, dst: &mut String) {
        if self.over {
            return;
        }
        // Every `$group` expands to at most the whole match.
        let whole = caps.get(0).map_or(0, |m| m.len());
        let worst = self
            .repl
            .len()
            .saturating_add(self.dollars.saturating_mul(whole));
        if dst.len().saturating_add(worst) > MAX_STRING {
            self.over = true;
        } else if self.literal {
            dst.push_str(self.repl);
        } else {
            caps.expand(self.repl, dst);
        }
    }
}

/// Loki's rune-based `trunc`.
fn trunc(c: i64, s: &str) -> String {
    let runes: Vec<char> = s.chars().collect();
    let l = runes.len() as i64;
    if c < 0 && l + c > 0 {
        return runes[(l + c) as usize..].iter().collect();
    }
    if c >= 0 && l > c {
        return runes[..c as usize].iter().collect();
    }
    s.to_string()
}

/// Loki's rune-based `substr`.
fn substring(start: i64, end: i64, s: &str) -> String {
    let runes: Vec<char> = s.chars().collect();
    let l = runes.len() as i64;
    let end = end.min(l);
    let start = start.min(l);
    if start < 0 {
        if end < 0 {
            return String::new();
        }
        return runes[..end as usize].iter().collect();
    }
    if end < 0 {
        return runes[start as usize..].iter().collect();
    }
    if start > end {
        return String::new();
    }
    runes[start as usize..end as usize].iter().collect()
}

/// Loki's `alignLeft` / `alignRight`.
fn align(count: i64, src: &str, left: bool) -> String {
    let runes: Vec<char> = src.chars().collect();
    let l = runes.len() as i64;
    if count < 0 || count == l {
        return src.to_string();
    }
    let pad = count - l;
    if pad > 0 {
        let p = " ".repeat(pad as usize);
        return if left {
            format!("{src}{p}")
        } else {
            format!("{p}{src}")
        };
    }
    if left {
        runes[..count as usize].iter().collect()
    } else {
        runes[(l - count) as usize..].iter().collect()
    }
}

/// Go's `strings.Title`.
fn title(s: &str) -> String {
    fn is_separator(c: char) -> bool {
        if c.is_ascii() {
            return !(c.is_ascii_alphanumeric() || c == '_');
        }
        if c.is_alphanumeric() {
            return false;
        }
        c.is_whitespace()
    }
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars() {
        if is_separator(prev) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

fn b64_decode(s: &str) -> String {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let cleaned: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    match engine.decode(cleaned.as_bytes()) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            let at = match e {
                base64::DecodeError::InvalidByte(o, _)
                | base64::DecodeError::InvalidLastSymbol(o, _) => o,
                base64::DecodeError::InvalidLength(l) => l,
                base64::DecodeError::InvalidPadding => cleaned.len(),
            };
            format!("illegal base64 data at input byte {at}")
        }
    }
}

/// Go's `index` builtin.
fn index<'a>(ctx: &'a dyn Context, mut v: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    let idx = v.split_off(1);
    let mut item = v.pop().unwrap_or(Value::Nil);
    if let Value::Nil = item {
        return Err("index of untyped nil".into());
    }
    for i in idx {
        item = match (&item, &i) {
            (Value::Labels, Value::Str(k)) => Value::Str(Cow::Borrowed(ctx.label(k).unwrap_or(""))),
            (Value::Map(m), Value::Str(k)) => m.get(k.as_ref()).cloned().unwrap_or(Value::Nil),
            (Value::Map(_) | Value::Labels, other) => {
                return Err(format!(
                    "value has type {}; should be string",
                    other.go_type()
                ));
            }
            (Value::List(l), _) => {
                let x = index_arg(&i, l.len())?;
                if x >= l.len() {
                    return Err(format!("index out of range: {x}"));
                }
                l[x].clone()
            }
            (Value::Str(s), _) => {
                let x = index_arg(&i, s.len())?;
                if x >= s.len() {
                    return Err(format!("index out of range: {x}"));
                }
                Value::Int(i64::from(s.as_bytes()[x]))
            }
            (Value::Nil, _) => return Err("index of nil pointer".into()),
            (other, _) => return Err(format!("can't index item of type {}", other.go_type())),
        };
    }
    Ok(item)
}

fn index_arg(i: &Value, cap: usize) -> Result<usize, String> {
    match i {
        Value::Int(x) => {
            if *x < 0 || *x as u64 > cap as u64 {
                Err(format!("index out of range: {x}"))
            } else {
                Ok(*x as usize)
            }
        }
        Value::Nil => Err("cannot index slice/array with nil".into()),
        other => Err(format!(
            "cannot index slice/array with type {}",
            other.go_type()
        )),
    }
}

/// Go's `slice` builtin.
fn slice(mut v: Vec<Value<'_>>) -> Result<Value<'_>, String> {
    let idx = v.split_off(1);
    let item = v.pop().unwrap_or(Value::Nil);
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let len = match &item {
        Value::Nil => return Err("slice of untyped nil".into()),
        Value::Str(s) => {
            if idx.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::List(l) => l.len(),
        other => return Err(format!("can't slice item of type {}", other.go_type())),
    };
    let mut bounds = [0, len, len];
    for (k, i) in idx.iter().enumerate() {
        bounds[k] = index_arg(i, len)?;
    }
    if bounds[0] > bounds[1] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[0], bounds[1]
        ));
    }
    if idx.len() == 3 && bounds[1] > bounds[2] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[1], bounds[2]
        ));
    }
    Ok(match item {
        Value::Str(s) => {
            let b = &s.as_bytes()[bounds[0]..bounds[1]];
            owned(String::from_utf8_lossy(b).into_owned())
        }
        Value::List(l) => Value::List(Rc::new(l[bounds[0]..bounds[1]].to_vec())),
        _ => Value::Nil,
    })
}

#[derive(PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

/// Go's `eq` for one pair.
fn eq(a: &Value, b: &Value) -> Result<bool, String> {
    let (ka, kb) = (basic_kind(a), basic_kind(b));
    if ka != kb {
        if matches!(a, Value::Nil) || matches!(b, Value::Nil) {
            return Ok(false);
        }
        return Err("incompatible types for comparison".into());
    }
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Nil, Value::Nil) => true,
        (Value::Time(x), Value::Time(y)) => x == y,
        (Value::List(_) | Value::Map(_) | Value::Labels, _) => {
            return Err(format!("non-comparable type {}", a.go_type()));
        }
        _ => false,
    })
}

/// Go's `lt`.
fn lt(a: &Value, b: &Value) -> Result<bool, String> {
    let (ka, kb) = (basic_kind(a), basic_kind(b));
    if ka == Kind::Other || kb == Kind::Other {
        return Err("invalid type for comparison".into());
    }
    if ka != kb {
        return Err("incompatible types for comparison".into());
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        _ => Err("invalid type for comparison".into()),
    }
}

fn eval_args(v: &[Value]) -> String {
    if let [Value::Str(s)] = v {
        return s.to_string();
    }
    sprint(v)
}

/// Go's `fmt.Sprint`.
fn sprint(v: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in v.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        fmt_v(a, &mut out);
        prev_string = is_string;
    }
    out
}

/// Go's `fmt.Sprintln`.
fn sprintln(v: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in v.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        fmt_v(a, &mut out);
    }
    out.push('\n');
    out
}

/// Go's `template.HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c if c.is_ascii() || is_print(c) => out.push(c),
            c => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Go's `url.QueryUnescape`.
fn query_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        let end = (i + 3).min(b.len());
                        let bad = String::from_utf8_lossy(&b[i..end]);
                        return Err(format!("invalid URL escape {}", go_quote(&bad)));
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// go-humanize's `ParseBytes` (`"1.2 kB"` → 1200, `"1 KiB"` → 1024).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let last = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == ','))
        .map_or(s.len(), |(i, _)| i);
    let num = s[..last].replace(',', "");
    let f: f64 = num.parse().map_err(|_| {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(&num)
        )
    })?;
    let extra = s[last..].trim().to_lowercase();
    let m: u64 = match extra.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "ti" | "tib" => 1 << 40,
        "p" | "pb" => 1_000_000_000_000_000,
        "pi" | "pib" => 1 << 50,
        "e" | "eb" => 1_000_000_000_000_000_000,
        "ei" | "eib" => 1 << 60,
        _ => return Err(format!("unhandled size name: {extra}")),
    };
    let f = f * m as f64;
    if f >= u64::MAX as f64 {
        return Err(format!("too large: {s}"));
    }
    Ok(f as u64)
}

/// Go's `time.ParseDuration`, in nanoseconds.
fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next()
        && (c == '-' || c == '+')
    {
        neg = c == '-';
        s = &s[1..];
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &b[..int_len] {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(invalid)?;
        }
        s = &s[int_len..];
        let pre = int_len > 0;
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if s.starts_with('.') {
            s = &s[1..];
            let flen = s.bytes().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for c in s[..flen].bytes() {
                if overflow {
                    continue;
                }
                match f
                    .checked_mul(10)
                    .and_then(|y| y.checked_add(u64::from(c - b'0')))
                {
                    Some(y) if y <= 1 << 63 => {
                        f = y;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            post = flen > 0;
            s = &s[flen..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        let ulen = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if ulen == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let u = &s[..ulen];
        s = &s[ulen..];
        let unit: u64 = match u {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(u),
                    go_quote(orig)
                ));
            }
        };
        if v > (1 << 63) / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > 1 << 63 {
                return Err(invalid());
            }
        }
        d += v;
        if d > 1 << 63 {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((d as i64).wrapping_neg());
    }
    i64::try_from(d).map_err(|_| invalid())
}

/// Go's `Duration.Seconds`.
fn duration_seconds(d: i64) -> f64 {
    let sec = d / 1_000_000_000;
    let nsec = d % 1_000_000_000;
    sec as f64 + nsec as f64 / 1e9
}

/// Loki's `unixToTime`: days, seconds, milliseconds, microseconds or nanoseconds by length.
fn unix_to_time(epoch: &str) -> Result<Time, String> {
    let i = parse_go_int_base10(epoch).ok_or_else(|| {
        format!(
            "unable to parse time '{epoch}': strconv.ParseInt: parsing {}: invalid syntax",
            go_quote(epoch)
        )
    })?;
    Ok(match epoch.len() {
        5 => Time::from_unix(i.wrapping_mul(86_400), 0),
        10 => Time::from_unix(i, 0),
        13 => Time::from_unix_nanos(i.wrapping_mul(1_000_000)),
        16 => Time::from_unix_nanos(i.wrapping_mul(1_000)),
        19 => Time::from_unix_nanos(i),
        _ => return Err(format!("unable to parse time '{epoch}': %!w(<nil>)")),
    })
}

fn parse_go_int_base10(s: &str) -> Option<i64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

// ───────────────────────────── decimal arithmetic ─────────────────────────────

/// `addf`, `subf`, `mulf`, `divf` run on shopspring/decimal in sprig: each operand is
/// the shortest decimal of its float, so `addf 0.1 0.2` is exactly 0.3.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DecOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Copy)]
struct Dec {
    m: i128,
    e: i32,
}

fn pow10(n: i32) -> Option<i128> {
    if (0..=38).contains(&n) {
        10i128.checked_pow(n as u32)
    } else {
        None
    }
}

impl Dec {
    fn from_f64(f: f64) -> Option<Dec> {
        if !f.is_finite() {
            return None;
        }
        if f == 0.0 {
            return Some(Dec { m: 0, e: 0 });
        }
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let frac = mant.split_once('.').map_or(0, |(_, f)| f.len()) as i32;
        let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
        let m: i128 = digits.parse().ok()?;
        Some(Dec {
            m: if f < 0.0 { -m } else { m },
            e: exp - frac,
        })
    }

    fn to_f64(self) -> f64 {
        format!("{}e{}", self.m, self.e).parse().unwrap_or(f64::NAN)
    }

    fn apply(self, o: Dec, op: DecOp) -> Option<Dec> {
        match op {
            DecOp::Add | DecOp::Sub => {
                let e = self.e.min(o.e);
                let x = self.m.checked_mul(pow10(self.e - e)?)?;
                let y = o.m.checked_mul(pow10(o.e - e)?)?;
                let m = if op == DecOp::Add {
                    x.checked_add(y)?
                } else {
                    x.checked_sub(y)?
                };
                Some(Dec { m, e })
            }
            DecOp::Mul => Some(Dec {
                m: self.m.checked_mul(o.m)?,
                e: self.e.checked_add(o.e)?,
            }),
            DecOp::Div => {
                // Rounded half away from zero to 16 decimal places.
                let k = self.e - o.e + 16;
                let (num, den) = if k >= 0 {
                    (self.m.checked_mul(pow10(k)?)?, o.m)
                } else {
                    (self.m, o.m.checked_mul(pow10(-k)?)?)
                };
                let (q, r) = (num / den, num % den);
                let q = if r.unsigned_abs() * 2 >= den.unsigned_abs() {
                    if (num < 0) != (den < 0) { q - 1 } else { q + 1 }
                } else {
                    q
                };
                Some(Dec { m: q, e: -16 })
            }
        }
    }
}

fn decimal_op(first: f64, rest: &[Value], op: DecOp) -> Result<Value<'static>, String> {
    let nums: Vec<f64> = rest.iter().map(to_f64).collect();
    if op == DecOp::Div && nums.contains(&0.0) {
        return Err("decimal division by zero".into());
    }
    let exact = (|| {
        let mut acc = Dec::from_f64(first)?;
        for &x in &nums {
            acc = acc.apply(Dec::from_f64(x)?, op)?;
        }
        Some(acc.to_f64())
    })();
    let r = exact.unwrap_or_else(|| {
        nums.iter().fold(first, |a, &x| match op {
            DecOp::Add => a + x,
            DecOp::Sub => a - x,
            DecOp::Mul => a * x,
            DecOp::Div => a / x,
        })
    });
    Ok(Value::Float(r))
}

// ───────────────────────────── fmt ─────────────────────────────

/// Go's `unicode.IsPrint`, approximately.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c,
        '\u{AD}'
        | '\u{600}'..='\u{605}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E000}'..='\u{F8FF}')
}

/// Go's `%#U` of a rune, as in lexer messages: `U+0041 'A'`.
fn rune_desc(c: char) -> String {
    if is_print(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

fn push_escaped(out: &mut String, c: char, quote: char) {
    match c {
        c if c == quote || c == '\\' => {
            out.push('\\');
            out.push(c);
        }
        c if is_print(c) => out.push(c),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Decimal digits of `|f|` (trailing zeros removed, none for zero) and the
/// position of the decimal point; `sig` rounds to that many significant digits.
fn float_digits(f: f64, sig: Option<usize>) -> (Vec<u8>, i32) {
    if f == 0.0 {
        return (Vec::new(), 0);
    }
    let s = match sig {
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", p.max(1) - 1, f.abs()),
    };
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = e.parse().unwrap_or(0);
    let mut digits: Vec<u8> = m.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    (digits, exp + 1)
}

fn digits_e(digits: &[u8], dp: i32, prec: usize, upper: bool) -> String {
    let mut out = String::new();
    out.push(digits.first().map_or('0', |&d| d as char));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(digits.get(i).map_or('0', |&d| d as char));
        }
    }
    let exp = if digits.is_empty() { 0 } else { dp - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.abs());
    out
}

fn digits_f(digits: &[u8], dp: i32, prec: usize) -> String {
    let mut out = String::new();
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(digits.get(i).map_or('0', |&d| d as char));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 0..prec as i32 {
            let j = dp + i;
            let d = if j >= 0 {
                digits.get(j as usize).copied()
            } else {
                None
            };
            out.push(d.map_or('0', |d| d as char));
        }
    }
    out
}

/// Go's `%g` of `|f|` (`prec` None: shortest, as `%v`).
fn fmt_g(f: f64, prec: Option<usize>, upper: bool) -> String {
    let (digits, dp) = float_digits(f, prec.map(|p| p.max(1)));
    let nd = digits.len() as i32;
    let shortest = prec.is_none();
    let mut p = prec.map_or(nd, |p| p.max(1) as i32);
    let mut eprec = p;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        if p > nd {
            p = nd;
        }
        return digits_e(&digits, dp, (p - 1).max(0) as usize, upper);
    }
    if p > dp {
        p = nd;
    }
    digits_f(&digits, dp, (p - dp).max(0) as usize)
}

/// Go's `%e` of `|f|`.
fn fmt_e(f: f64, prec: usize, upper: bool) -> String {
    let s = format!("{:.*e}", prec, f.abs());
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = e.parse().unwrap_or(0);
    format!(
        "{m}{}{}{:02}",
        if upper { 'E' } else { 'e' },
        if exp < 0 { '-' } else { '+' },
        exp.abs()
    )
}

/// Go's `%v` of a float64.
fn float_v(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let body = fmt_g(f, None, false);
    if f.is_sign_negative() {
        format!("-{body}")
    } else {
        body
    }
}

#[derive(Default, Clone, Copy)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Pads `s` to the width, as Go's `fmt.pad`.
fn pad(out: &mut String, s: &str, fl: &Flags, zero: bool) {
    let n = s.chars().count();
    let w = fl.width.unwrap_or(0);
    if w <= n {
        out.push_str(s);
        return;
    }
    let fill = if zero && !fl.minus { '0' } else { ' ' };
    if fl.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', w - n));
    } else {
        out.extend(std::iter::repeat_n(fill, w - n));
        out.push_str(s);
    }
}

fn bad_verb(out: &mut String, verb: char, v: &Value) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    if let Value::Nil = v {
        out.push_str("<nil>");
    } else {
        out.push_str(v.go_type());
        out.push('=');
        fmt_v(v, out);
    }
    out.push(')');
}

fn fmt_int(out: &mut String, i: i64, verb: char, fl: &Flags, v: &Value) {
    let (base, upper) = match verb {
        'd' | 'v' => (10, false),
        'b' => (2, false),
        'o' | 'O' => (8, false),
        'x' => (16, false),
        'X' => (16, true),
        'c' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            pad(out, c.encode_utf8(&mut [0; 4]), fl, false);
            return;
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            let mut s = String::from('\'');
            push_escaped(&mut s, c, '\'');
            s.push('\'');
            pad(out, &s, fl, false);
            return;
        }
        'U' => {
            let mut s = format!("U+{:04X}", i);
            if fl.sharp
                && let Some(c) = u32::try_from(i).ok().and_then(char::from_u32)
                && is_print(c)
            {
                let _ = write!(s, " '{c}'");
            }
            pad(out, &s, fl, false);
            return;
        }
        _ => {
            bad_verb(out, verb, v);
            return;
        }
    };
    let neg = i < 0;
    let u = i.unsigned_abs();
    let mut digits = match base {
        2 => format!("{u:b}"),
        8 => format!("{u:o}"),
        16 if upper => format!("{u:X}"),
        16 => format!("{u:x}"),
        _ => u.to_string(),
    };
    let mut prec = 0usize;
    if let Some(p) = fl.prec {
        prec = p;
        if p == 0 && u == 0 {
            pad(out, "", fl, false);
            return;
        }
    } else if fl.zero && !fl.minus && fl.width.is_some() {
        prec = fl.width.unwrap_or(0);
        if neg || fl.plus || fl.space {
            prec = prec.saturating_sub(1);
        }
    }
    if digits.len() < prec {
        digits = format!("{}{digits}", "0".repeat(prec - digits.len()));
    }
    let mut s = String::new();
    if neg {
        s.push('-');
    } else if fl.plus {
        s.push('+');
    } else if fl.space {
        s.push(' ');
    }
    if fl.sharp {
        match base {
            2 => s.push_str("0b"),
            8 if !digits.starts_with('0') => s.push('0'),
            16 => s.push_str(if upper { "0X" } else { "0x" }),
            _ => {}
        }
    }
    if verb == 'O' {
        s.push_str("0o");
    }
    s.push_str(&digits);
    pad(out, &s, fl, false);
}

fn fmt_float(out: &mut String, f: f64, verb: char, fl: &Flags, v: &Value) {
    let body = match verb {
        'v' | 'g' | 'G' => fmt_g(f, fl.prec, verb == 'G'),
        'e' | 'E' => fmt_e(f, fl.prec.unwrap_or(6), verb == 'E'),
        'f' | 'F' => format!("{:.*}", fl.prec.unwrap_or(6), f.abs()),
        _ => {
            bad_verb(out, verb, v);
            return;
        }
    };
    if f.is_nan() || f.is_infinite() {
        let s = if f.is_nan() {
            if fl.plus {
                "+NaN"
            } else if fl.space {
                " NaN"
            } else {
                "NaN"
            }
        } else if f > 0.0 {
            if fl.space && !fl.plus { " Inf" } else { "+Inf" }
        } else {
            "-Inf"
        };
        pad(out, s, fl, false);
        return;
    }
    let sign = if f.is_sign_negative() {
        "-"
    } else if fl.plus {
        "+"
    } else if fl.space {
        " "
    } else {
        ""
    };
    let w = fl.width.unwrap_or(0);
    let len = sign.len() + body.len();
    if fl.zero && !fl.minus && w > len {
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', w - len));
        out.push_str(&body);
    } else {
        pad(out, &format!("{sign}{body}"), fl, false);
    }
}

fn fmt_str(out: &mut String, s: &str, verb: char, fl: &Flags, v: &Value) {
    match verb {
        'v' | 's' => {
            let s: Cow<str> = match fl.prec {
                Some(p) => Cow::Owned(s.chars().take(p).collect()),
                None => Cow::Borrowed(s),
            };
            pad(out, &s, fl, fl.zero);
        }
        'q' => {
            let s: String = match fl.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            let q = if fl.sharp && !s.contains('`') && s.chars().all(|c| c == '\t' || is_print(c)) {
                format!("`{s}`")
            } else {
                go_quote(&s)
            };
            pad(out, &q, fl, fl.zero);
        }
        'x' | 'X' => {
            let b = s.as_bytes();
            let b = &b[..fl.prec.unwrap_or(b.len()).min(b.len())];
            let mut h = String::new();
            for (i, byte) in b.iter().enumerate() {
                if fl.space && i > 0 {
                    h.push(' ');
                }
                if fl.sharp && (fl.space || i == 0) {
                    h.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                let _ = if verb == 'x' {
                    write!(h, "{byte:02x}")
                } else {
                    write!(h, "{byte:02X}")
                };
            }
            pad(out, &h, fl, fl.zero);
        }
        _ => bad_verb(out, verb, v),
    }
}

fn fmt_arg(out: &mut String, v: &Value, verb: char, fl: &Flags) {
    match v {
        Value::Nil => {
            if verb == 'v' {
                pad(out, "<nil>", fl, false);
            } else {
                bad_verb(out, verb, v);
            }
        }
        Value::Bool(b) => {
            if verb == 't' || verb == 'v' {
                pad(out, if *b { "true" } else { "false" }, fl, false);
            } else {
                bad_verb(out, verb, v);
            }
        }
        Value::Int(i) => fmt_int(out, *i, verb, fl, v),
        Value::Float(f) => fmt_float(out, *f, verb, fl, v),
        Value::Str(s) => fmt_str(out, s, verb, fl, v),
        Value::Time(t) => fmt_str(out, &t.go_string(), verb, fl, v),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_arg(out, e, verb, fl);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_str(out, k, verb, fl, &Value::Str(Cow::Borrowed(k)));
                out.push(':');
                fmt_arg(out, e, verb, fl);
            }
            out.push(']');
        }
        Value::Labels => out.push_str("map[]"),
    }
}

/// Go's `fmt` rejects widths and precisions above a million.
const MAX_WIDTH: usize = 1_000_000;

/// Go's `fmt.Sprintf` for the common verbs.
fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argi = 0;
    let b = format.as_bytes();
    let mut i = 0;
    while i < b.len() && out.len() <= MAX_STRING {
        match format[i..].find('%') {
            None => {
                out.push_str(&format[i..]);
                break;
            }
            Some(k) => {
                out.push_str(&format[i..i + k]);
                i += k + 1;
            }
        }
        let mut fl = Flags::default();
        while let Some(&c) = b.get(i) {
            match c {
                b'+' => fl.plus = true,
                b'-' => {
                    fl.minus = true;
                    fl.zero = false;
                }
                b'#' => fl.sharp = true,
                b' ' => fl.space = true,
                b'0' => fl.zero = !fl.minus,
                _ => break,
            }
            i += 1;
        }
        let star = |i: &mut usize, argi: &mut usize, out: &mut String, what: &str| {
            *i += 1;
            let n = match args.get(*argi) {
                Some(Value::Int(n)) if n.unsigned_abs() <= MAX_WIDTH as u64 => Some(*n),
                _ => None,
            };
            *argi += 1;
            if n.is_none() {
                let _ = write!(out, "%!(BAD{what})");
            }
            n
        };
        if b.get(i) == Some(&b'*') {
            if let Some(n) = star(&mut i, &mut argi, &mut out, "WIDTH") {
                if n < 0 {
                    fl.minus = true;
                    fl.zero = false;
                }
                fl.width = usize::try_from(n.unsigned_abs()).ok();
            }
        } else {
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i > start {
                fl.width = format[start..i].parse().ok().filter(|w| *w <= MAX_WIDTH);
                if fl.width.is_none() {
                    out.push_str("%!(BADWIDTH)");
                }
            }
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if b.get(i) == Some(&b'*') {
                if let Some(n) = star(&mut i, &mut argi, &mut out, "PREC") {
                    fl.prec = usize::try_from(n).ok();
                }
            } else {
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                fl.prec = Some(format[start..i].parse().unwrap_or(usize::MAX));
                if start == i {
                    fl.prec = Some(0);
                }
                if fl.prec.is_some_and(|p| p > MAX_WIDTH) {
                    fl.prec = None;
                    out.push_str("%!(BADPREC)");
                }
            }
        }
        let Some(verb) = format[i..].chars().next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        if verb == 'v' {
            fl.plus = false;
            fl.sharp = false;
        }
        fmt_arg(&mut out, arg, verb, &fl);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (k, a) in args[argi..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            if let Value::Nil = a {
                out.push_str("<nil>");
            } else {
                out.push_str(a.go_type());
                out.push('=');
                fmt_v(a, &mut out);
            }
        }
        out.push(')');
    }
    out
}

// ───────────────────────────── time ─────────────────────────────

/// An instant with the zone it is shown in (Go's `time.Time`, fixed zones only).
#[derive(Debug, Clone, PartialEq)]
struct Time {
    /// Unix seconds.
    sec: i64,
    /// Nanoseconds within the second.
    nsec: u32,
    /// Seconds east of UTC.
    offset: i32,
    /// Zone abbreviation (`UTC`; empty for an unnamed fixed offset).
    zone: String,
}

/// Wall-clock fields of a [`Time`] in its zone.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    min: i64,
    sec: i64,
    weekday: usize,
    yday: i64,
}

const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let (y, m, d) = pharos_model::civil::civil_from_days(days);
    (y, m as u32, d as u32)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    pharos_model::civil::days_from_civil(y, i64::from(m), i64::from(d))
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Time {
    fn from_unix(sec: i64, nsec: i64) -> Time {
        Time {
            sec: sec.wrapping_add(nsec.div_euclid(1_000_000_000)),
            nsec: nsec.rem_euclid(1_000_000_000) as u32,
            offset: 0,
            zone: "UTC".into(),
        }
    }

    fn from_unix_nanos(ns: i64) -> Time {
        Time::from_unix(0, ns)
    }

    fn zero() -> Time {
        Time::from_unix(ZERO_TIME_UNIX, 0)
    }

    fn now() -> Time {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Time::from_unix(d.as_secs() as i64, i64::from(d.subsec_nanos())),
            Err(e) => {
                let d = e.duration();
                Time::from_unix(-(d.as_secs() as i64), -i64::from(d.subsec_nanos()))
            }
        }
    }

    fn to_utc(&self) -> Time {
        Time::from_unix(self.sec, i64::from(self.nsec))
    }

    fn unix_nano(&self) -> i64 {
        self.sec
            .wrapping_mul(1_000_000_000)
            .wrapping_add(i64::from(self.nsec))
    }

    fn unix_milli(&self) -> i64 {
        self.sec
            .wrapping_mul(1000)
            .wrapping_add(i64::from(self.nsec / 1_000_000))
    }

    fn civil(&self) -> Civil {
        let wall = self.sec.wrapping_add(i64::from(self.offset));
        let days = wall.div_euclid(86_400);
        let sod = wall.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: sod / 3600,
            min: sod % 3600 / 60,
            sec: sod % 60,
            weekday: (days + 4).rem_euclid(7) as usize,
            yday: days - days_from_civil(year, 1, 1) + 1,
        }
    }

    /// Go's `Time.String`.
    fn go_string(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }

    /// Go's `Time.Format`.
    fn format(&self, layout: &str) -> String {
        let c = self.civil();
        let mut out = String::with_capacity(layout.len() + 10);
        let mut rest = layout;
        loop {
            let (pe, std, ss) = next_std_chunk(rest);
            out.push_str(&rest[..pe]);
            let Some(std) = std else { break };
            rest = &rest[ss..];
            self.format_std(&mut out, std, &c);
        }
        out
    }

    fn format_std(&self, out: &mut String, std: Std, c: &Civil) {
        let num = |out: &mut String, x: i64, w: usize| {
            if x < 0 {
                out.push('-');
            }
            let _ = write!(out, "{:0w$}", x.unsigned_abs());
        };
        match std {
            Std::Year => num(out, c.year % 100, 2),
            Std::LongYear => num(out, c.year, 4),
            Std::Month => out.push_str(&LONG_MONTHS[c.month as usize - 1][..3]),
            Std::LongMonth => out.push_str(LONG_MONTHS[c.month as usize - 1]),
            Std::NumMonth => num(out, i64::from(c.month), 0),
            Std::ZeroMonth => num(out, i64::from(c.month), 2),
            Std::WeekDay => out.push_str(&LONG_DAYS[c.weekday][..3]),
            Std::LongWeekDay => out.push_str(LONG_DAYS[c.weekday]),
            Std::Day => num(out, i64::from(c.day), 0),
            Std::UnderDay => {
                if c.day < 10 {
                    out.push(' ');
                }
                num(out, i64::from(c.day), 0);
            }
            Std::ZeroDay => num(out, i64::from(c.day), 2),
            Std::UnderYearDay => {
                let _ = write!(out, "{:>3}", c.yday);
            }
            Std::ZeroYearDay => num(out, c.yday, 3),
            Std::Hour => num(out, c.hour, 2),
            Std::Hour12 | Std::ZeroHour12 => {
                let h = match c.hour % 12 {
                    0 => 12,
                    h => h,
                };
                num(out, h, if std == Std::ZeroHour12 { 2 } else { 0 });
            }
            Std::Minute => num(out, c.min, 0),
            Std::ZeroMinute => num(out, c.min, 2),
            Std::Second => num(out, c.sec, 0),
            Std::ZeroSecond => num(out, c.sec, 2),
            Std::AmPmUpper => out.push_str(if c.hour >= 12 { "PM" } else { "AM" }),
            Std::AmPmLower => out.push_str(if c.hour >= 12 { "pm" } else { "am" }),
            Std::ZoneName => {
                if self.zone.is_empty() {
                    let z = self.offset / 60;
                    out.push(if z < 0 { '-' } else { '+' });
                    let z = z.abs();
                    let _ = write!(out, "{:02}{:02}", z / 60, z % 60);
                } else {
                    out.push_str(&self.zone);
                }
            }
            Std::Zone {
                iso,
                colon,
                secs,
                short,
            } => {
                if iso && self.offset == 0 {
                    out.push('Z');
                    return;
                }
                let z = self.offset.abs();
                out.push(if self.offset < 0 { '-' } else { '+' });
                let _ = write!(out, "{:02}", z / 3600);
                if !short {
                    if colon {
                        out.push(':');
                    }
                    let _ = write!(out, "{:02}", z / 60 % 60);
                }
                if secs {
                    if colon {
                        out.push(':');
                    }
                    let _ = write!(out, "{:02}", z % 60);
                }
            }
            Std::Frac { digits, sep, trim } => {
                if trim && (digits == 0 || self.nsec == 0) {
                    return;
                }
                let all = format!("{:09}", self.nsec);
                let mut s = &all[..digits.min(9)];
                if trim {
                    s = s.trim_end_matches('0');
                    if s.is_empty() {
                        return;
                    }
                }
                out.push(sep as char);
                out.push_str(s);
            }
        }
    }
}

/// Go's layout elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    AmPmUpper,
    AmPmLower,
    ZoneName,
    Zone {
        iso: bool,
        colon: bool,
        secs: bool,
        short: bool,
    },
    Frac {
        digits: usize,
        sep: u8,
        trim: bool,
    },
}

/// Go's `nextStdChunk`: (end of the literal prefix, element, start of the rest).
fn next_std_chunk(layout: &str) -> (usize, Option<Std>, usize) {
    let b = layout.as_bytes();
    let zone = |iso, colon, secs, short| Std::Zone {
        iso,
        colon,
        secs,
        short,
    };
    for i in 0..b.len() {
        let rest = &layout[i..];
        let lower_after = |n: usize| b.get(i + n).is_some_and(u8::is_ascii_lowercase);
        match b[i] {
            b'J' if rest.starts_with("Jan") => {
                if rest.starts_with("January") {
                    return (i, Some(Std::LongMonth), i + 7);
                }
                if !lower_after(3) {
                    return (i, Some(Std::Month), i + 3);
                }
            }
            b'M' => {
                if rest.starts_with("Mon") {
                    if rest.starts_with("Monday") {
                        return (i, Some(Std::LongWeekDay), i + 6);
                    }
                    if !lower_after(3) {
                        return (i, Some(Std::WeekDay), i + 3);
                    }
                }
                if rest.starts_with("MST") {
                    return (i, Some(Std::ZoneName), i + 3);
                }
            }
            b'0' => {
                if let Some(&d) = b.get(i + 1)
                    && (b'1'..=b'6').contains(&d)
                {
                    let std = [
                        Std::ZeroMonth,
                        Std::ZeroDay,
                        Std::ZeroHour12,
                        Std::ZeroMinute,
                        Std::ZeroSecond,
                        Std::Year,
                    ][(d - b'1') as usize];
                    return (i, Some(std), i + 2);
                }
                if rest.starts_with("002") {
                    return (i, Some(Std::ZeroYearDay), i + 3);
                }
            }
            b'1' => {
                if b.get(i + 1) == Some(&b'5') {
                    return (i, Some(Std::Hour), i + 2);
                }
                return (i, Some(Std::NumMonth), i + 1);
            }
            b'2' => {
                if rest.starts_with("2006") {
                    return (i, Some(Std::LongYear), i + 4);
                }
                return (i, Some(Std::Day), i + 1);
            }
            b'_' => {
                if b.get(i + 1) == Some(&b'2') {
                    if rest[1..].starts_with("2006") {
                        return (i + 1, Some(Std::LongYear), i + 5);
                    }
                    return (i, Some(Std::UnderDay), i + 2);
                }
                if rest.starts_with("__2") {
                    return (i, Some(Std::UnderYearDay), i + 3);
                }
            }
            b'3' => return (i, Some(Std::Hour12), i + 1),
            b'4' => return (i, Some(Std::Minute), i + 1),
            b'5' => return (i, Some(Std::Second), i + 1),
            b'P' if b.get(i + 1) == Some(&b'M') => return (i, Some(Std::AmPmUpper), i + 2),
            b'p' if b.get(i + 1) == Some(&b'm') => return (i, Some(Std::AmPmLower), i + 2),
            b'-' | b'Z' => {
                let iso = b[i] == b'Z';
                let tail = &rest[1..];
                for (pat, colon, secs, short) in [
                    ("070000", false, true, false),
                    ("07:00:00", true, true, false),
                    ("0700", false, false, false),
                    ("07:00", true, false, false),
                    ("07", false, false, true),
                ] {
                    if tail.starts_with(pat) {
                        return (i, Some(zone(iso, colon, secs, short)), i + 1 + pat.len());
                    }
                }
            }
            c @ (b'.' | b',') => {
                if let Some(&ch) = b.get(i + 1)
                    && (ch == b'0' || ch == b'9')
                {
                    let mut j = i + 1;
                    while j < b.len() && b[j] == ch {
                        j += 1;
                    }
                    if !b.get(j).is_some_and(u8::is_ascii_digit) {
                        let std = Std::Frac {
                            digits: j - (i + 1),
                            sep: c,
                            trim: ch == b'9',
                        };
                        return (i, Some(std), j);
                    }
                }
            }
            _ => {}
        }
    }
    (b.len(), None, b.len())
}

/// Go's `skip`: matches a layout literal, a run of spaces matching any run.
fn skip<'v>(mut value: &'v str, mut prefix: &str) -> Option<&'v str> {
    while let Some(p) = prefix.chars().next() {
        if p == ' ' {
            if !value.is_empty() && !value.starts_with(' ') {
                return None;
            }
            prefix = prefix.trim_start_matches(' ');
            value = value.trim_start_matches(' ');
            continue;
        }
        value = value.strip_prefix(p)?;
        prefix = &prefix[p.len_utf8()..];
    }
    Some(value)
}

fn getnum(s: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    if !b.get(1).is_some_and(u8::is_ascii_digit) {
        if fixed {
            return None;
        }
        return Some((i64::from(b[0] - b'0'), &s[1..]));
    }
    Some((
        i64::from(b[0] - b'0') * 10 + i64::from(b[1] - b'0'),
        &s[2..],
    ))
}

fn getnum3(s: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    let mut n = 0i64;
    let mut i = 0;
    while i < 3 && b.get(i).is_some_and(u8::is_ascii_digit) {
        n = n * 10 + i64::from(b[i] - b'0');
        i += 1;
    }
    if i == 0 || (fixed && i != 3) {
        return None;
    }
    Some((n, &s[i..]))
}

fn digits_value(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn lookup_name<'v>(names: &[&str], value: &'v str, short: bool) -> Option<(usize, &'v str)> {
    for (i, name) in names.iter().enumerate() {
        let name = if short { &name[..3] } else { name };
        if let Some(head) = value.get(..name.len())
            && head.eq_ignore_ascii_case(name)
        {
            return Some((i, &value[name.len()..]));
        }
    }
    None
}

fn parse_nanos(value: &str, nbytes: usize) -> Option<i64> {
    if !matches!(value.as_bytes().first(), Some(b'.' | b',')) {
        return None;
    }
    let nbytes = nbytes.min(10);
    let mut ns = digits_value(value.get(1..nbytes)?)?;
    for _ in nbytes..10 {
        ns *= 10;
    }
    Some(ns)
}

/// Length of a zone abbreviation at the start of `value` (Go's `parseTimeZone`).
fn zone_abbrev_len(value: &str) -> Option<usize> {
    let b = value.as_bytes();
    if b.len() < 3 {
        return None;
    }
    if value.starts_with("ChST") || value.starts_with("MeST") {
        return Some(4);
    }
    if let Some(rest) = value.strip_prefix("GMT") {
        let sign = rest.as_bytes().first();
        if !matches!(sign, Some(b'+' | b'-')) {
            return Some(3);
        }
        let n = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
        let ok = n > 0 && rest[1..1 + n].parse::<i64>().is_ok_and(|x| x <= 23);
        return Some(if ok { 4 + n } else { 3 });
    }
    let upper = b
        .iter()
        .take(6)
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    match upper {
        3 => Some(3),
        4 if b[3] == b'T' || value.starts_with("WITA") => Some(4),
        5 if b[4] == b'T' => Some(5),
        _ => None,
    }
}

/// Go's `time.ParseInLocation` in a fixed zone (`loc_offset`, `loc_name`).
fn parse_time(layout: &str, value: &str, loc_offset: i32, loc_name: &str) -> Option<Time> {
    let (mut year, mut month, mut day, mut yday) = (0i64, -1i64, -1i64, -1i64);
    let (mut hour, mut min, mut sec, mut nsec) = (0i64, 0i64, 0i64, 0i64);
    let mut utc = false;
    let mut zone_offset: Option<i32> = None;
    let mut zone_name: Option<String> = None;
    let (mut pm, mut am) = (false, false);
    let mut layout = layout;
    let mut value = value;
    loop {
        let (pe, std, ss) = next_std_chunk(layout);
        value = skip(value, &layout[..pe])?;
        let Some(std) = std else {
            if !value.is_empty() {
                return None;
            }
            break;
        };
        layout = &layout[ss..];
        match std {
            Std::Year => {
                year = digits_value(value.get(..2)?)?;
                value = &value[2..];
                year += if year >= 69 { 1900 } else { 2000 };
            }
            Std::LongYear => {
                year = digits_value(value.get(..4)?)?;
                value = &value[4..];
            }
            Std::Month | Std::LongMonth => {
                let (m, v) = lookup_name(&LONG_MONTHS, value, std == Std::Month)?;
                month = m as i64 + 1;
                value = v;
            }
            Std::NumMonth | Std::ZeroMonth => {
                let (m, v) = getnum(value, std == Std::ZeroMonth)?;
                if !(1..=12).contains(&m) {
                    return None;
                }
                month = m;
                value = v;
            }
            Std::WeekDay | Std::LongWeekDay => {
                value = lookup_name(&LONG_DAYS, value, std == Std::WeekDay)?.1;
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if std == Std::UnderDay && value.starts_with(' ') {
                    value = &value[1..];
                }
                let (d, v) = getnum(value, std == Std::ZeroDay)?;
                day = d;
                value = v;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                for _ in 0..2 {
                    if std == Std::UnderYearDay && value.starts_with(' ') {
                        value = &value[1..];
                    }
                }
                let (d, v) = getnum3(value, std == Std::ZeroYearDay)?;
                if !(1..=366).contains(&d) {
                    return None;
                }
                yday = d;
                value = v;
            }
            Std::Hour => {
                let (h, v) = getnum(value, false)?;
                if h >= 24 {
                    return None;
                }
                hour = h;
                value = v;
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let (h, v) = getnum(value, std == Std::ZeroHour12)?;
                if h > 12 {
                    return None;
                }
                hour = h;
                value = v;
            }
            Std::Minute | Std::ZeroMinute => {
                let (m, v) = getnum(value, std == Std::ZeroMinute)?;
                if m >= 60 {
                    return None;
                }
                min = m;
                value = v;
            }
            Std::Second | Std::ZeroSecond => {
                let (s, v) = getnum(value, std == Std::ZeroSecond)?;
                if s >= 60 {
                    return None;
                }
                sec = s;
                value = v;
                // A fraction the layout does not mention is still accepted.
                let vb = value.as_bytes();
                if vb.len() >= 2
                    && matches!(vb[0], b'.' | b',')
                    && vb[1].is_ascii_digit()
                    && !matches!(next_std_chunk(layout).1, Some(Std::Frac { .. }))
                {
                    let n = 1 + vb[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    nsec = parse_nanos(value, n)?;
                    value = &value[n..];
                }
            }
            Std::AmPmUpper | Std::AmPmLower => {
                let p = value.get(..2)?;
                let (pm_s, am_s) = if std == Std::AmPmUpper {
                    ("PM", "AM")
                } else {
                    ("pm", "am")
                };
                if p == pm_s {
                    pm = true;
                } else if p == am_s {
                    am = true;
                } else {
                    return None;
                }
                value = &value[2..];
            }
            Std::Zone {
                iso,
                colon,
                secs,
                short,
            } => {
                if iso && value.starts_with('Z') {
                    value = &value[1..];
                    utc = true;
                    continue;
                }
                let vb = value.as_bytes();
                let sign = *vb.first()?;
                if sign != b'+' && sign != b'-' {
                    return None;
                }
                let (hh, mm, ss, used) = match (colon, secs, short) {
                    (_, _, true) => (value.get(1..3)?, "00", "00", 3),
                    (false, false, _) => (value.get(1..3)?, value.get(3..5)?, "00", 5),
                    (true, false, _) => {
                        if vb.get(3) != Some(&b':') {
                            return None;
                        }
                        (value.get(1..3)?, value.get(4..6)?, "00", 6)
                    }
                    (false, true, _) => (value.get(1..3)?, value.get(3..5)?, value.get(5..7)?, 7),
                    (true, true, _) => {
                        if vb.get(3) != Some(&b':') || vb.get(6) != Some(&b':') {
                            return None;
                        }
                        (value.get(1..3)?, value.get(4..6)?, value.get(7..9)?, 9)
                    }
                };
                let (h, m, s) = (
                    getnum(hh, true)?.0,
                    getnum(mm, true)?.0,
                    getnum(ss, true)?.0,
                );
                if h > 24 || m > 60 || s > 60 {
                    return None;
                }
                let off = ((h * 60 + m) * 60 + s) as i32;
                zone_offset = Some(if sign == b'-' { -off } else { off });
                value = &value[used..];
            }
            Std::ZoneName => {
                if value.starts_with("UTC") {
                    utc = true;
                    value = &value[3..];
                    continue;
                }
                let n = zone_abbrev_len(value)?;
                zone_name = Some(value[..n].to_string());
                value = &value[n..];
            }
            Std::Frac { digits, trim, .. } => {
                if trim {
                    let vb = value.as_bytes();
                    if vb.len() < 2 || !matches!(vb[0], b'.' | b',') || !vb[1].is_ascii_digit() {
                        continue;
                    }
                    let n = 1 + vb[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    nsec = parse_nanos(value, n)?;
                    value = &value[n..];
                } else {
                    let n = 1 + digits;
                    if value.len() < n {
                        return None;
                    }
                    nsec = parse_nanos(value, n)?;
                    value = value.get(n..)?;
                }
            }
        }
    }
    if pm && hour < 12 {
        hour += 12;
    } else if am && hour == 12 {
        hour = 0;
    }
    if yday >= 0 {
        let (mut m, mut d) = (0i64, 0i64);
        if is_leap(year) {
            if yday == 31 + 29 {
                m = 2;
                d = 29;
            } else if yday > 31 + 29 {
                yday -= 1;
            }
        }
        if !(1..=365).contains(&yday) {
            return None;
        }
        if m == 0 {
            const BEFORE: [i64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
            m = (yday - 1) / 31 + 1;
            if BEFORE[m as usize] < yday {
                m += 1;
            }
            d = yday - BEFORE[m as usize - 1];
        }
        if (month >= 0 && month != m) || (day >= 0 && day != d) {
            return None;
        }
        month = m;
        day = d;
    } else {
        if month < 0 {
            month = 1;
        }
        if day < 0 {
            day = 1;
        }
    }
    if day < 1 || day > days_in(month, year) {
        return None;
    }
    let local =
        days_from_civil(year, month as u32, day as u32) * 86_400 + hour * 3600 + min * 60 + sec;
    let make = |offset: i32, zone: &str| Time {
        sec: local - i64::from(offset),
        nsec: nsec as u32,
        offset,
        zone: zone.to_string(),
    };
    if utc {
        return Some(make(0, "UTC"));
    }
    if let Some(off) = zone_offset {
        if off == loc_offset && zone_name.as_deref().is_none_or(|n| n == loc_name) {
            return Some(make(loc_offset, loc_name));
        }
        return Some(make(off, zone_name.as_deref().unwrap_or("")));
    }
    if let Some(name) = zone_name {
        if name == loc_name {
            return Some(make(loc_offset, loc_name));
        }
        let off = match name.strip_prefix("GMT") {
            Some(h) if !h.is_empty() => h.parse::<i32>().unwrap_or(0) * 3600,
            _ => 0,
        };
        return Some(make(off, &name));
    }
    Some(make(loc_offset, loc_name))
}

/// The fixed zones `toDateInZone` knows (no zone database): offset and abbreviation.
fn load_location(zone: &str) -> (i32, String) {
    match zone {
        "GMT" | "Etc/GMT" | "Etc/GMT0" | "Etc/GMT+0" | "Etc/GMT-0" | "GMT0" | "Greenwich"
        | "Etc/Greenwich" => (0, "GMT".into()),
        _ => {
            if let Some(n) = zone.strip_prefix("Etc/GMT")
                && let Ok(h) = n.parse::<i32>()
                && (1..=14).contains(&h.abs())
                && n.starts_with(['+', '-'])
            {
                // POSIX sign: Etc/GMT+5 is five hours west of UTC.
                let off = -h * 3600;
                return (
                    off,
                    format!("{}{:02}", if off < 0 { '-' } else { '+' }, h.abs()),
                );
            }
            (0, "UTC".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Entry {
        labels: Vec<(String, String)>,
        line: String,
        ts: i64,
    }

    impl Context for Entry {
        fn label(&self, name: &str) -> Option<&str> {
            self.labels
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
        fn line(&self) -> &str {
            &self.line
        }
        fn timestamp_ns(&self) -> i64 {
            self.ts
        }
    }

    /// 2022-06-27T18:05:24.12Z, the timestamp of Loki's own tests.
    const TS: i64 = 1_656_353_124_120_000_000;

    fn entry(labels: &[(&str, &str)]) -> Entry {
        Entry {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            line: "the Line".into(),
            ts: TS,
        }
    }

    fn render_entry(src: &str, e: &Entry) -> String {
        let t = Template::parse(src).unwrap_or_else(|err| panic!("parse {src:?}: {err}"));
        t.render(e)
            .unwrap_or_else(|err| panic!("render {src:?}: {err}"))
    }

    fn render(src: &str, labels: &[(&str, &str)]) -> String {
        render_entry(src, &entry(labels))
    }

    fn r(src: &str) -> String {
        render(src, &[])
    }

    fn render_err(src: &str, labels: &[(&str, &str)]) -> String {
        let t = Template::parse(src).unwrap_or_else(|err| panic!("parse {src:?}: {err}"));
        match t.render(&entry(labels)) {
            Ok(out) => panic!("render {src:?} should fail, gave {out:?}"),
            Err(e) => e,
        }
    }

    fn parse_err(src: &str) -> String {
        match Template::parse(src) {
            Ok(_) => panic!("parse {src:?} should fail"),
            Err(e) => e,
        }
    }

    #[test]
    fn fields_and_text() {
        assert_eq!(
            render(
                "{{.query}} {{.duration}}",
                &[("query", "up"), ("duration", "5ms")]
            ),
            "up 5ms"
        );
        assert_eq!(
            render(
                "foo{{.foo}}buzz{{  .bar  }}",
                &[("foo", "blip"), ("bar", "blop")]
            ),
            "fooblipbuzzblop"
        );
        assert_eq!(r("plain text only"), "plain text only");
        assert_eq!(r(""), "");
    }

    #[test]
    fn missing_label_is_empty_not_no_value() {
        assert_eq!(
            render("foo {{.foo}}buzz{{  .bar  }}", &[("bar", "blop")]),
            "foo buzzblop"
        );
        assert_eq!(
            render(r#"{{ if eq .missing "" }}empty{{ end }}"#, &[]),
            "empty"
        );
        assert_eq!(render("[{{ .missing | upper }}]", &[]), "[]");
    }

    #[test]
    fn loki_doc_examples() {
        assert_eq!(
            render("{{ .status_code | ToUpper }}", &[("status_code", "ok")]),
            "OK"
        );
        let lvl = r#"{{ if eq .level "error" }}E{{ else }}I{{ end }}"#;
        assert_eq!(render(lvl, &[("level", "error")]), "E");
        assert_eq!(render(lvl, &[("level", "info")]), "I");
        assert_eq!(r("{{ __line__ | lower }}"), "the line");
        assert_eq!(r("{{ __line__ }}"), "the Line");
        assert_eq!(render(r#"{{ printf "%s-%d" .a 5 }}"#, &[("a", "x")]), "x-5");
        assert_eq!(
            render(
                r#"{{ regexReplaceAll "(\\d+)ms" .duration "${1}" }}"#,
                &[("duration", "250ms")]
            ),
            "250"
        );
        assert_eq!(
            render(
                r#"{{ .path | replace " " "_" | trunc 5 | upper }}"#,
                &[("path", "a b c d e f")]
            ),
            "A_B_C"
        );
        assert_eq!(
            r(r#"{{ if and (contains "he" "hello") (contains "llo" "hello") }} yes {{end}}"#),
            " yes "
        );
        assert_eq!(
            render(
                r#"{{ if contains "ErrTimeout" .err }} timeout {{else if contains "he" "hello"}} yes {{else}} no {{end}}"#,
                &[("err", "x")]
            ),
            " yes "
        );
        assert_eq!(
            render(
                r#"{{.http_request_headers_x_forwarded_for | default "-"}}"#,
                &[]
            ),
            "-"
        );
        assert_eq!(
            r(r#"{{ default "-" "" }}|{{ default "-" "foo" }}"#),
            "-|foo"
        );
        assert_eq!(
            r(r#"{{ alignLeft 5 "hello world"}}|{{ alignLeft 5 "hi"}}|"#),
            "hello|hi   |"
        );
        assert_eq!(
            r(r#"{{ alignRight 5 "hello world"}}|{{ alignRight 5 "hi"}}"#),
            "world|   hi"
        );
        assert_eq!(r(r#"{{ repeat 3 "hello" }}"#), "hellohellohello");
        assert_eq!(
            r(r#"{{ replace "hello" "world" "hello world" }}"#),
            "world world"
        );
        assert_eq!(
            r(r#"{{ substr 0 5 "hello world"}}|{{ substr 6 11 "hello world"}}"#),
            "hello|world"
        );
        assert_eq!(r(r#"{{ title "hello world"}}"#), "Hello World");
        assert_eq!(r(r#"{{ trim "   hello    " }}"#), "hello");
        assert_eq!(r(r#"{{ trimAll "$" "$5.00" }}"#), "5.00");
        assert_eq!(
            r(r#"{{ trimPrefix "-" "-hello" }}|{{ trimSuffix "-" "hello-" }}"#),
            "hello|hello"
        );
        assert_eq!(
            r(r#"{{ trunc 5 "hello world"}}|{{ trunc -5 "hello world"}}"#),
            "hello|world"
        );
        assert_eq!(r(r#"{{ upper "hello"}}|{{ lower "HELLO"}}"#), "HELLO|hello");
        assert_eq!(
            r(r#"{{ count "a|b" "abab" }}|{{ count "o" "foo" }}"#),
            "4|2"
        );
        assert_eq!(r("{{ __line__ | count \"e\" }}"), "2");
        assert_eq!(r(r#"{{ if eq "hello" "hello" }} yes {{end}}"#), " yes ");
        assert_eq!(r(r#"{{ if hasPrefix "he" "hello" }} yes {{end}}"#), " yes ");
    }

    #[test]
    fn loki_doc_math() {
        assert_eq!(r("{{ add 3 2 5 }}"), "10");
        assert_eq!(r("{{ addf 3.5 2 5 }}"), "10.5");
        assert_eq!(r("{{ ceil 123.001 }}"), "124");
        assert_eq!(r("{{ div 10 2}}"), "5");
        assert_eq!(r("{{ divf 10 2 4}}"), "1.25");
        assert_eq!(r(r#"{{ "3.5" | float64 }}"#), "3.5");
        assert_eq!(r("{{ floor 123.9999 }}"), "123");
        assert_eq!(r(r#"{{ "3" | int }}"#), "3");
        assert_eq!(r("{{ max 1 2 3 }}|{{ min 1 2 3 }}"), "3|1");
        assert_eq!(r("{{ maxf 1 2.5 3 }}|{{ minf 1 2.5 3 }}"), "3|1");
        assert_eq!(r("{{ mul 5 2 3}}"), "30");
        assert_eq!(r("{{ mulf 5.5 2 2.5 }}"), "27.5");
        assert_eq!(r("{{ mod 10 3}}"), "1");
        assert_eq!(r("{{ round 123.555555 3 }}"), "123.556");
        assert_eq!(r("{{ round 123.88571428571 5 .2 }}"), "123.88572");
        assert_eq!(r("{{ round 123.88571428571 5 }}"), "123.88571");
        assert_eq!(r("{{ sub 5 2 }}"), "3");
        assert_eq!(r("{{ subf  5.5 2 1.5 }}"), "2");
    }

    #[test]
    fn loki_formatter_tests() {
        let fb = [("foo", "blip"), ("bar", "blop")];
        assert_eq!(
            render(r#"foo{{.foo}}buzz{{ Replace .bar "blop" "bar" -1 }}"#, &fb),
            "fooblipbuzzbar"
        );
        assert_eq!(
            render(r#"foo{{.foo}}buzz{{ .bar | replace "blop" "bar" }}"#, &fb),
            "fooblipbuzzbar"
        );
        assert_eq!(render("{{.foo | title }}", &fb), "Blip");
        assert_eq!(
            render(
                "{{.foo | substr 1 3 }} {{ .bar  | trunc 1 }} {{ .bar  | trunc 3 }}",
                &fb
            ),
            "li b blo"
        );
        assert_eq!(
            render(
                r#"{{.foo | trim }} {{ .bar  | trimAll "op" }} {{ .bar  | trimPrefix "b" }} {{ .bar  | trimSuffix "p" }}"#,
                &[("foo", "  blip "), ("bar", "blop")]
            ),
            "blip bl lop blo"
        );
        let up = [("foo", "BLIp"), ("bar", "blop")];
        assert_eq!(
            render("{{.foo | lower }} {{ .bar  | upper }}", &up),
            "blip BLOP"
        );
        assert_eq!(r(r#"{{ "foo" | repeat 3 }}"#), "foofoofoo");
        assert_eq!(r(r#"{{ "foo\n bar" | indent 4 }}"#), "    foo\n     bar");
        assert_eq!(r(r#"{{ "foo" | nindent 2 }}"#), "\n  foo");
        assert_eq!(
            render(
                r#"{{ if  .foo | contains "p"}}yes{{end}}-{{ if  .foo | contains "z"}}no{{end}}"#,
                &up
            ),
            "yes-"
        );
        assert_eq!(
            render(
                r#"{{ if  .foo | hasPrefix "BL" }}yes{{end}}-{{ if  .foo | hasPrefix "p"}}no{{end}}"#,
                &up
            ),
            "yes-"
        );
        assert_eq!(
            render(
                r#"{{ if  .foo | hasSuffix "Ip" }}yes{{end}}-{{ if  .foo | hasSuffix "pw"}}no{{end}}"#,
                &up
            ),
            "yes-"
        );
        assert_eq!(
            render(r#"{{ regexReplaceAll "(p)" .foo "t" }}"#, &up),
            "BLIt"
        );
        assert_eq!(
            render(r#"{{ regexReplaceAllLiteral "(p)" .foo "${1}" }}"#, &up),
            "BLI${1}"
        );
        assert_eq!(
            render("foo {{.foo | ToUpper }} buzz{{  .bar  }}", &fb),
            "foo BLIP buzzblop"
        );
        assert_eq!(
            render(
                "{{ add .foo 1 | sub .bar | mul .baz | div .bazz}}",
                &[("foo", "1"), ("bar", "3"), ("baz", "10"), ("bazz", "20")]
            ),
            "2"
        );
        assert_eq!(
            render(
                "{{ addf .foo 1.5 | subf .bar 1.5 | mulf .baz | divf .bazz }}",
                &[
                    ("foo", "1.5"),
                    ("bar", "5"),
                    ("baz", "10.5"),
                    ("bazz", "20.2")
                ]
            ),
            "3.8476190476190477"
        );
        assert_eq!(
            render(
                "{{ round (addf .foo 1.5 | subf .bar | mulf .baz | divf .bazz) 5 .2}}",
                &[
                    ("foo", "1.5"),
                    ("bar", "3.5"),
                    ("baz", "10.5"),
                    ("bazz", "20.4")
                ]
            ),
            "3.88572"
        );
        assert_eq!(
            render(
                "min is {{ min .foo .bar .baz }} and max is {{ max .foo .bar .baz }}",
                &[("foo", "5"), ("bar", "10"), ("baz", "15")]
            ),
            "min is 5 and max is 15"
        );
        assert_eq!(
            render(
                "minf is {{ minf .foo .bar .baz }} and maxf is {{maxf .foo .bar .baz}}",
                &[("foo", "5.3"), ("bar", "10.5"), ("baz", "15.2")]
            ),
            "minf is 5.3 and maxf is 15.2"
        );
        assert_eq!(
            render(
                "ceil is {{ ceil .foo }} and floor is {{floor .foo }}",
                &[("foo", "5.3")]
            ),
            "ceil is 6 and floor is 5"
        );
        assert_eq!(
            render("mod is {{ mod .foo 3 }}", &[("foo", "20")]),
            "mod is 2"
        );
        assert_eq!(r(r#"{{ "2.5" | float64 | int | add 10}}"#), "12");
        assert_eq!(
            r(
                r#"{{ sub (unixEpoch (toDate "2006-01-02" "2021-11-02")) (unixEpoch (toDate "2006-01-02" "2021-11-01")) }}"#
            ),
            "86400"
        );
        assert_eq!(
            r(r#"{{ date "2006-01-02" (toDate "2006-01-02" "2021-11-02") }}"#),
            "2021-11-02"
        );
        assert_eq!(r("{{ div (unixEpoch now) (unixEpoch now) }}"), "1");
        let mut e = entry(&[("bar", "2")]);
        e.line = "1".into();
        assert_eq!(render_entry("{{ __line__ }} bar {{ .bar }}", &e), "1 bar 2");
        assert_eq!(
            render(
                r#"{{.foo | default "-" }}{{.bar | default "-"}}{{.unknown | default "-"}}"#,
                &[("foo", "blip"), ("bar", "")]
            ),
            "blip--"
        );
        assert_eq!(
            render(
                r#"{{ __timestamp__ | date "2006-01-02T15:04:05.00Z00:00" }} bar {{ .bar }}"#,
                &[("bar", "2")]
            ),
            "2022-06-27T18:05:24.12Z00:00 bar 2"
        );
        assert_eq!(
            render(
                "{{ __timestamp__ | unixEpoch }} bar {{ .bar }}",
                &[("bar", "2")]
            ),
            "1656353124 bar 2"
        );
        assert_eq!(render("{{div .status 100 }}", &[("status", "200")]), "2");
        assert_eq!(
            render(
                r#"{{.foo | default "-" }} and {{.bar}}"#,
                &[("bar", "blop")]
            ),
            "- and blop"
        );
    }

    #[test]
    fn rune_based_trunc_and_substr() {
        let s = "Hello, 世界";
        for (c, want) in [(-1, "界"), (1, "H"), (0, ""), (20, s), (-20, s)] {
            assert_eq!(trunc(c, s), want, "trunc {c}");
        }
        for (a, b, want) in [
            (1, 8, "ello, 世"),
            (-10, 8, "Hello, 世"),
            (1, 10, "ello, 世界"),
            (-1, 10, "Hello, 世界"),
            (-1, 1, "H"),
            (-1, -1, ""),
            (20, -1, ""),
            (1, 1, ""),
            (5, 1, ""),
            (3, -1, "lo, 世界"),
        ] {
            assert_eq!(substring(a, b, s), want, "substr {a} {b}");
        }
        assert_eq!(render("{{ .a | trunc 8 }}", &[("a", s)]), "Hello, 世");
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(render("a  {{- .x -}}  b", &[("x", "X")]), "aXb");
        assert_eq!(render("a  {{- .x }}  b", &[("x", "X")]), "aX  b");
        assert_eq!(render("a  {{ .x -}}  b", &[("x", "X")]), "a  Xb");
        assert_eq!(render("line1\n  {{- .a }}\n", &[("a", "A")]), "line1A\n");
        assert_eq!(r("a{{/* a comment */}}b"), "ab");
        assert_eq!(r("a {{- /* a comment */ -}} b"), "ab");
        assert_eq!(r("x {{-3}}"), "x -3");
        assert_eq!(r("x {{- 3}}"), "x3");
        assert_eq!(r("{{ 3 -}} \n\t y"), "3y");
        assert_eq!(r("{{ 3 \n -}} y"), "3y");
    }

    #[test]
    fn literals() {
        assert_eq!(r(r#"{{ "a\tb\u00e9\x41\101" }}"#), "a\tbéAA");
        assert_eq!(r(r"{{ `raw\n` }}"), r"raw\n");
        assert_eq!(
            r("{{ 0x1F }} {{ 1e3 }} {{ 1_000 }} {{ -7 }} {{ 0o17 }} {{ 017 }}"),
            "31 1000 1000 -7 15 15"
        );
        assert_eq!(
            r("{{ 1.5 }} {{ .25 }} {{ true }} {{ false }}"),
            "1.5 0.25 true false"
        );
        assert_eq!(
            r("{{ 'a' }} {{ printf \"%c\" 'x' }} {{ '\\n' }}"),
            "97 x 10"
        );
        assert_eq!(r("{{ print nil }}"), "<nil>");
    }

    #[test]
    fn pipelines_and_parens() {
        assert_eq!(r(r#"{{ "x" | printf "%s-%s" "y" }}"#), "y-x");
        assert_eq!(r(r#"{{ (print "a" "b") | upper }}"#), "AB");
        assert_eq!(
            render(
                r#"{{ printf "%s/%s" (.a | upper) (lower (print .b "C")) }}"#,
                &[("a", "x"), ("b", "y")]
            ),
            "X/yc"
        );
        assert_eq!(r(r#"{{ (fromJson "{\"foo\": 55}").foo }}"#), "55");
        assert_eq!(r(r#"{{ len (print "abc" "de") }}"#), "5");
    }

    #[test]
    fn variables_and_scopes() {
        assert_eq!(
            render(
                r#"{{ $x := .a }}{{ $x }}-{{ $x = "z" }}{{ $x }}"#,
                &[("a", "a")]
            ),
            "a-z"
        );
        assert_eq!(render("{{ $.a }}", &[("a", "A")]), "A");
        assert_eq!(
            render(
                "{{ with .a }}{{ . }}{{ $.b }}{{ end }}",
                &[("a", "A"), ("b", "B")]
            ),
            "AB"
        );
        assert_eq!(
            render("{{ with $v := .a }}<{{ $v }}>{{ end }}", &[("a", "A")]),
            "<A>"
        );
        assert_eq!(
            render(
                r#"{{ $n := 0 }}{{ if .a }}{{ $n = 1 }}{{ end }}{{ $n }}"#,
                &[("a", "x")]
            ),
            "1"
        );
        assert_eq!(
            parse_err("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}"),
            r#"template: line:1: undefined variable "$y""#
        );
    }

    #[test]
    fn control_structures() {
        let chain = r#"{{ if eq .a "1" }}one{{ else if eq .a "2" }}two{{ else }}many{{ end }}"#;
        assert_eq!(render(chain, &[("a", "1")]), "one");
        assert_eq!(render(chain, &[("a", "2")]), "two");
        assert_eq!(render(chain, &[("a", "3")]), "many");
        let with = "{{ with .a }}[{{ . }}]{{ else }}none{{ end }}";
        assert_eq!(render(with, &[("a", "v")]), "[v]");
        assert_eq!(render(with, &[("a", "")]), "none");
        let else_with = "{{ with .a }}A{{ . }}{{ else with .b }}B{{ . }}{{ else }}C{{ end }}";
        assert_eq!(render(else_with, &[("b", "x")]), "Bx");
        assert_eq!(render(else_with, &[]), "C");
        assert_eq!(
            r("{{ if 0 }}a{{ else if 0.0 }}b{{ else if \"\" }}c{{ else }}d{{ end }}"),
            "d"
        );
        assert_eq!(r("{{ if\n  eq 1 1 }}multi-line{{ end }}"), "multi-line");
    }

    #[test]
    fn range_loops() {
        assert_eq!(
            render(
                "{{ range $q := fromJson .queries }}{{ $q.query }};{{ end }}",
                &[("queries", r#"[{"query":"a"},{"query":"b"}]"#)]
            ),
            "a;b;"
        );
        assert_eq!(
            r(r#"{{ range $k, $v := fromJson "{\"b\":2,\"a\":1}" }}{{ $k }}={{ $v }} {{ end }}"#),
            "a=1 b=2 "
        );
        assert_eq!(
            r(r#"{{ range $i, $e := fromJson "[\"x\",\"y\"]" }}{{ $i }}{{ . }}{{ end }}"#),
            "0x1y"
        );
        assert_eq!(r("{{ range 3 }}{{ . }}{{ end }}"), "012");
        assert_eq!(
            r(
                "{{ range $i := 5 }}{{ if eq $i 3 }}{{ break }}{{ end }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $i }}{{ end }}"
            ),
            "02"
        );
        assert_eq!(
            r(r#"{{ range fromJson "[]" }}x{{ else }}empty{{ end }}"#),
            "empty"
        );
        assert!(
            render_err("{{ range .a }}x{{ end }}", &[("a", "v")])
                .contains("range can't iterate over v")
        );
        assert_eq!(
            parse_err("{{ break }}"),
            "template: line:1: {{break}} outside {{range}}"
        );
    }

    #[test]
    fn go_builtins() {
        assert_eq!(
            r(r#"{{ and "a" "b" }}|{{ and "" "b" }}|{{ or "" "x" }}|{{ or 0 "" }}"#),
            "b||x|"
        );
        assert_eq!(r(r#"{{ not "" }} {{ not 1 }}"#), "true false");
        assert_eq!(r("{{ and 0 (div 1 0) }}"), "0");
        assert_eq!(r(r#"{{ or 1 (div 1 0) }}"#), "1");
        assert_eq!(render("{{ len .a }}", &[("a", "héllo")]), "6");
        assert_eq!(r(r#"{{ index "abc" 1 }}"#), "98");
        assert_eq!(
            render(r#"{{ index . "a" }}|{{ index . "zz" }}"#, &[("a", "A")]),
            "A|"
        );
        assert_eq!(r(r#"{{ index (fromJson "[1,2,3]") 1 }}"#), "2");
        assert_eq!(r(r#"{{ index (fromJson "{\"k\":[\"v\"]}") "k" 0 }}"#), "v");
        assert_eq!(
            r(
                r#"{{ slice "abcdef" 1 3 }}|{{ slice "abcdef" 2 }}|{{ slice (fromJson "[1,2,3]") 1 }}"#
            ),
            "bc|cdef|[2 3]"
        );
        assert_eq!(render(r#"{{ eq .a "x" "y" "z" }}"#, &[("a", "y")]), "true");
        assert_eq!(r(r#"{{ ne "a" "b" }} {{ eq 2 2 }}"#), "true true");
        assert_eq!(
            r(r#"{{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2.5 }}"#),
            "true true true false"
        );
        assert_eq!(r(r#"{{ print 1 2 "a" "b" 3 }}"#), "1 2ab3");
        assert_eq!(r(r#"{{ println "a" 1 }}"#), "a 1\n");
        assert_eq!(
            r(r#"{{ html "<a href='x'>&\"</a>" }}"#),
            "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;"
        );
        assert_eq!(
            r(r#"{{ js "it's <b>=\n" }}"#),
            r"it\'s \u003Cb\u003E\u003D\u000A"
        );
        assert_eq!(r(r#"{{ urlquery "a b&c" }}"#), "a+b%26c");
        assert_eq!(r(r#"{{ "<x>" | html }}"#), "&lt;x&gt;");
    }

    #[test]
    fn printf_verbs() {
        assert_eq!(
            r(
                r#"{{ printf "%5s|%-5s|%05d|%.2f|%q|%x|%v|%t" "ab" "cd" 42 3.14159 "hi" 255 1.5 true }}"#
            ),
            r#"   ab|cd   |00042|3.14|"hi"|ff|1.5|true"#
        );
        assert_eq!(
            r(r#"{{ printf "%d|%d|%s" "x" 1 }}"#),
            "%!d(string=x)|1|%!s(MISSING)"
        );
        assert_eq!(r(r#"{{ printf "%d" 1 5 }}"#), "1%!(EXTRA int=5)");
        assert_eq!(
            r(r#"{{ printf "%e|%g|%v|%g" 1234.5678 1e21 1e6 0.00001 }}"#),
            "1.234568e+03|1e+21|1e+06|1e-05"
        );
        assert_eq!(
            r(r#"{{ printf "%x|%X|%+d|%8.3f|%c|%%|%o|%#x|%b" "hi" 255 5 3.14159 65 8 255 5 }}"#),
            "6869|FF|+5|   3.142|A|%|10|0xff|101"
        );
        assert_eq!(
            r(r#"{{ printf "%-6.3s|%6.2f|%-8v|%3d" "abcdef" -1.005 true -4 }}"#),
            "abc   | -1.00|true    | -4"
        );
        assert_eq!(
            r(r#"{{ printf "%.3g|%10.4v|%G" 3.14159 2.0 1e-7 }}"#),
            "3.14|         2|1E-07"
        );
        assert_eq!(r(r#"{{ printf "%s" 5 }}"#), "%!s(int=5)");
        assert_eq!(r(r#"{{ printf "%v %s" nil nil }}"#), "<nil> %!s(<nil>)");
        assert_eq!(r(r#"{{ printf "%*d|%-*d|" 4 7 3 1 }}"#), "   7|1  |");
        assert_eq!(
            render(
                r#"{{ printf "%-40.40s" .request_uri}} {{printf "%-5.5s" .request_method}}"#,
                &[
                    ("request_uri", "/id/609259548/hpr.html"),
                    ("request_method", "GET")
                ]
            ),
            "/id/609259548/hpr.html                   GET  "
        );
        assert_eq!(r(r#"{{ printf "%q" "a\"b\n" }}"#), r#""a\"b\n""#);
        assert_eq!(
            r(r#"{{ printf "%s" __timestamp__ }}"#),
            "2022-06-27 18:05:24.12 +0000 UTC"
        );
    }

    #[test]
    fn float_printing() {
        assert_eq!(r("{{ divf 1 3 }}"), "0.3333333333333333");
        assert_eq!(r("{{ addf 0.1 0.2 }}"), "0.3");
        assert_eq!(r("{{ mulf 1000000 10 }}"), "1e+07");
        assert_eq!(
            r("{{ 123456.0 }} {{ 1234567.0 }} {{ 0.0001 }} {{ 0.00001 }}"),
            "123456 1.234567e+06 0.0001 1e-05"
        );
        assert_eq!(r("{{ float64 \"-0.5\" }} {{ subf 0 0 }}"), "-0.5 0");
    }

    #[test]
    fn time_functions() {
        assert_eq!(r("{{ __timestamp__ }}"), "2022-06-27 18:05:24.12 +0000 UTC");
        assert_eq!(
            r(r#"{{ __timestamp__ | date "2006-01-02T15:04:05.00Z07:00" }}"#),
            "2022-06-27T18:05:24.12Z"
        );
        assert_eq!(
            r(
                r#"{{ __timestamp__ | date "Jan 2 03:04:05.000000 PM Mon Monday 002 __2 _2 06 MST -07:00 Z0700 .999 pm" }}"#
            ),
            "Jun 27 06:05:24.120000 PM Mon Monday 178 178 27 22 UTC +00:00 Z .12 pm"
        );
        assert_eq!(r("{{ __timestamp__ | unixEpochMillis }}"), "1656353124120");
        assert_eq!(
            r("{{ __timestamp__ | unixEpochNanos }}"),
            "1656353124120000000"
        );
        assert_eq!(
            r(
                "{{ __timestamp__.Unix }} {{ __timestamp__.Format \"15:04\" }} {{ __timestamp__.YearDay }}"
            ),
            "1656353124 18:05 178"
        );
        assert_eq!(
            render(
                r#"from="{{date "2006-01-02" (unixToTime .from)}}""#,
                &[("from", "1679577215")]
            ),
            r#"from="2023-03-23""#
        );
        assert_eq!(
            r(
                r#"{{ date "Monday 15:04:05" (unixToTime "1679577215") }}|{{ unixToTime "19373" }}|{{ date "2006-01-02T15:04:05.000" (unixToTime "1673798889902") }}"#
            ),
            "Thursday 13:13:35|2023-01-16 00:00:00 +0000 UTC|2023-01-15T16:08:09.902"
        );
        assert_eq!(
            r(
                r#"{{ unixToTime "1673798889902000" | unixEpochMillis }}|{{ unixToTime "1673798889902000123" | unixEpochNanos }}"#
            ),
            "1673798889902|1673798889902000123"
        );
        assert!(
            render_err(r#"{{ unixToTime "123" }}"#, &[]).contains("unable to parse time '123'")
        );
        assert_eq!(
            r(r#"{{ toDate "2006-01-02" "bad" }}"#),
            "0001-01-01 00:00:00 +0000 UTC"
        );
        assert_eq!(
            r(r#"{{ toDate "2006-01-02" "2021-02-30" | unixEpoch }}"#),
            "-62135596800"
        );
        assert_eq!(
            r(
                r#"{{ toDateInZone "2006-01-02T15:04:05Z07:00" "UTC" "2021-11-02T10:00:00+02:00" | unixEpoch }}"#
            ),
            "1635840000"
        );
        assert_eq!(
            r(r#"{{ toDateInZone "2006-01-02 15:04 -0700" "UTC" "2021-11-02 10:00 +0200" }}"#),
            "2021-11-02 10:00:00 +0200 +0200"
        );
        assert_eq!(
            r(r#"{{ toDateInZone "2006-01-02 15:04" "Etc/GMT+5" "2021-11-02 10:00" }}"#),
            "2021-11-02 10:00:00 -0500 -05"
        );
        assert_eq!(
            r(r#"{{ toDate "Jan 2, 2006 at 3:04pm (MST)" "Feb 3, 2013 at 7:54pm (PST)" }}"#),
            "2013-02-03 19:54:00 +0000 PST"
        );
        assert_eq!(
            r(
                r#"{{ toDate "2006-01-02T15:04:05.999999999Z" "2021-11-02T10:11:12.5Z" | date "15:04:05.000" }}"#
            ),
            "10:11:12.500"
        );
        assert_eq!(
            r(
                r#"{{ toDate "2006-01-02 15:04:05" "2021-11-02 10:11:12.123456" | unixEpochNanos }}"#
            ),
            "1635847872123456000"
        );
        assert_eq!(
            r(
                r#"{{ toDate "02 Jan 06 15:04 MST" "05 Mar 99 07:08 UTC" | date "2006-01-02 15:04 Monday" }}"#
            ),
            "1999-03-05 07:08 Friday"
        );
        assert_eq!(r(r#"{{ date "2006" 0 }}"#), "1970");
    }

    #[test]
    fn conversions_and_encodings() {
        assert_eq!(render("{{ .d | duration }}", &[("d", "1m30s")]), "90");
        assert_eq!(
            render("{{ duration_seconds .d }}", &[("d", "1.5h")]),
            "5400"
        );
        assert_eq!(render("{{ .d | duration }}", &[("d", "-250ms")]), "-0.25");
        assert!(
            render_err("{{ .d | duration }}", &[("d", "abc")])
                .contains(r#"time: invalid duration "abc""#)
        );
        assert_eq!(
            render("{{ .bytes | bytes }}", &[("bytes", "1.2 kB")]),
            "1200"
        );
        assert_eq!(
            render("{{ .bytes | bytes }}", &[("bytes", "1 KiB")]),
            "1024"
        );
        assert_eq!(
            render("{{ .bytes | bytes }}", &[("bytes", "10MB")]),
            "1e+07"
        );
        assert_eq!(
            render("{{ .bytes | bytes }}", &[("bytes", "1,024")]),
            "1024"
        );
        assert!(
            render_err("{{ .b | bytes }}", &[("b", "3 parsecs")])
                .contains("unhandled size name: parsecs")
        );
        assert_eq!(r(r#"{{ urlencode "a b/c?d=é" }}"#), "a+b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(r(r#"{{ urldecode "a+b%2Fc%C3%A9" }}"#), "a b/cé");
        assert!(
            render_err(r#"{{ urldecode "%zz" }}"#, &[]).contains(r#"invalid URL escape "%zz""#)
        );
        assert_eq!(
            r(r#"{{ b64enc "hello" }}|{{ b64dec "aGVsbG8=" }}"#),
            "aGVsbG8=|hello"
        );
        assert_eq!(
            r(r#"{{ b64dec "a!" }}"#),
            "illegal base64 data at input byte 1"
        );
        assert_eq!(
            r(
                r#"{{ add "08" 1 }} {{ add "2.0" 1 }} {{ add "abc" 1 }} {{ int "0x10" }} {{ int 2.9 }} {{ add true 1 }}"#
            ),
            "1 3 1 16 2 2"
        );
        assert_eq!(r(r#"{{ float64 "1e3" }} {{ float64 "x" }}"#), "1000 0");
        assert_eq!(
            r(r#"{{ fromJson "{\"foo\": 55, \"bar\": [true, null]}" }}|{{ fromJson "bad" }}"#),
            "map[bar:[true <nil>] foo:55]|<nil>"
        );
        assert_eq!(
            r(r#"{{ default "d" 0 }}|{{ default "d" }}|{{ default "d" 7 }}"#),
            "d|d|7"
        );
    }

    #[test]
    fn go_string_functions() {
        let a = [("a", "xyhixy")];
        assert_eq!(
            render(
                r#"{{ Trim .a "xy" }}|{{ TrimLeft .a "xy" }}|{{ TrimRight .a "xy" }}"#,
                &a
            ),
            "hi|hixy|xyhi"
        );
        assert_eq!(
            render(
                r#"{{ TrimPrefix .a "xy" }}|{{ TrimSuffix .a "xy" }}|{{ TrimSpace "  s \n" }}"#,
                &a
            ),
            "hixy|xyhi|s"
        );
        assert_eq!(
            r(r#"{{ Replace "aaaa" "a" "b" 2 }}|{{ ToLower "AbC" }}"#),
            "bbaa|abc"
        );
        assert_eq!(
            r(r#"{{ title "hello_world foo-bar élan" }}"#),
            "Hello_world Foo-Bar Élan"
        );
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            parse_err("{{ foo }}"),
            r#"template: line:1: function "foo" not defined"#
        );
        assert_eq!(
            parse_err("a\n\n{{ .x | foo }}"),
            r#"template: line:3: function "foo" not defined"#
        );
        assert_eq!(parse_err("{{ .foo"), "template: line:1: unclosed action");
        assert_eq!(
            parse_err("{{ .foo\n"),
            "template: line:2: unclosed action started at line:1"
        );
        assert_eq!(
            parse_err("{{ end }}"),
            "template: line:1: unexpected {{end}}"
        );
        assert_eq!(
            parse_err("{{ else }}"),
            "template: line:1: unexpected {{else}}"
        );
        assert_eq!(
            parse_err("a\n{{ if .x }}\nb"),
            "template: line:3: unexpected EOF"
        );
        assert_eq!(
            parse_err(r#"{{ "abc }}"#),
            "template: line:1: unterminated quoted string"
        );
        assert_eq!(
            parse_err("{{ $x }}"),
            r#"template: line:1: undefined variable "$x""#
        );
        assert_eq!(
            parse_err("{{ }}"),
            "template: line:1: missing value for command"
        );
        assert_eq!(
            parse_err(r#"{{ .a | "x" }}"#),
            "template: line:1: non executable command in pipeline stage 2"
        );
        assert_eq!(
            parse_err("{{ (.a }}"),
            "template: line:1: unclosed left paren"
        );
        assert_eq!(
            parse_err("{{ .a) }}"),
            r#"template: line:1: unexpected ")" in command"#
        );
        assert_eq!(
            parse_err("{{ .a , }}"),
            r#"template: line:1: unexpected "," in operand"#
        );
        assert_eq!(
            parse_err("{{ if .a }}x{{ else }}y{{ else }}z{{ end }}"),
            "template: line:1: expected end; found {{else}}"
        );
        assert_eq!(
            parse_err("{{ 3.x }}"),
            r#"template: line:1: bad number syntax: "3.x""#
        );
        assert_eq!(
            parse_err("{{ .a# }}"),
            "template: line:1: bad character U+0023 '#'"
        );
        assert_eq!(parse_err("{{/* x"), "template: line:1: unclosed comment");
        assert_eq!(
            parse_err(r#"{{ "\q" }}"#),
            "template: line:1: invalid syntax"
        );
        assert_eq!(
            parse_err(r#"{{ define "x" }}{{ end }}"#),
            "template: line:1: {{define}} is not supported in LogQL templates"
        );
        assert_eq!(
            parse_err(r#"{{ "a".b }}"#),
            r#"template: line:1: unexpected . after term "\"a\"""#
        );
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(150), ")".repeat(150));
        assert_eq!(
            parse_err(&deep),
            "template: line:1: max expression depth exceeded"
        );
        assert!(!parse_err("{{ .a\n\n").contains('\n'));
    }

    #[test]
    fn runtime_errors() {
        assert_eq!(
            render_err("{{ div 1 0 }}", &[]),
            r#"template: line:1:3: executing "line" at <div>: error calling div: runtime error: integer divide by zero"#
        );
        assert_eq!(
            render_err("x\n  {{ .a | divf 1 }}", &[("a", "0")]),
            r#"template: line:2:10: executing "line" at <divf>: error calling divf: decimal division by zero"#
        );
        assert!(render_err("{{ upper 5 }}", &[]).ends_with("expected string; found 5"));
        assert!(
            render_err("{{ add 1 2 | upper }}", &[])
                .ends_with("wrong type for value; expected string; got int")
        );
        assert!(
            render_err(r#"{{ trunc "5" .a }}"#, &[]).ends_with(r#"expected integer; found "5""#)
        );
        assert!(
            render_err("{{ eq .a 1 }}", &[("a", "1")])
                .ends_with("error calling eq: incompatible types for comparison")
        );
        assert!(render_err("{{ lt true false }}", &[]).ends_with("invalid type for comparison"));
        assert!(
            render_err(r#"{{.foo Replace "foo"}}"#, &[("foo", "blip")])
                .ends_with("foo is not a method but has arguments")
        );
        assert!(render_err("{{ nil }}", &[]).ends_with("nil is not a command"));
        assert!(
            render_err("{{ .a.b }}", &[("a", "x")])
                .ends_with("can't evaluate field b in type string")
        );
        assert!(render_err("{{ . }}", &[]).contains("can't print the label map"));
        assert!(
            render_err("{{ upper }}", &[])
                .ends_with("wrong number of args for upper: want 1 got 0")
        );
        assert!(
            render_err(r#"{{ "a" | upper "b" }}"#, &[])
                .ends_with("wrong number of args for upper: want 1 got 2")
        );
        assert!(
            render_err(r#"{{ repeat -1 "a" }}"#, &[]).ends_with("strings: negative Repeat count")
        );
        let re = render_err(r#"{{ regexReplaceAll "(" .a "x" }}"#, &[]);
        assert!(re.contains("error parsing regexp"), "{re}");
        assert!(!re.contains('\n'));
        assert!(
            render_err("{{ index (fromJson \"[1]\") 3 }}", &[]).ends_with("index out of range: 3")
        );
    }

    #[test]
    fn referenced_labels() {
        let cases: &[(&str, &[&str])] = &[
            ("{{.foo}} and {{.bar}}", &["foo", "bar"]),
            (
                "{{ .foo | ToUpper | .buzz }} and {{.bar}}",
                &["foo", "buzz", "bar"],
            ),
            (
                r#"{{ regexReplaceAllLiteral "(p)" .foo "${1}" }}"#,
                &["foo"],
            ),
            (
                r#"{{ if  .foo | hasSuffix "Ip" }} {{.bar}} {{end}}-{{ if  .foo | hasSuffix "pw"}}no{{end}}"#,
                &["foo", "bar"],
            ),
            (r#"{{with .foo}}{{printf "%q" .}} {{end}}"#, &["foo"]),
            (
                r#"{{with .foo}}{{printf "%q" .}} {{else}} {{ .buzz | lower }} {{end}}"#,
                &["foo", "buzz"],
            ),
            ("{{ __line__ }}{{ $x := 1 }}{{ $x }}", &[]),
            (
                "{{ printf \"%s\" (lower .a) }}{{ .a }}{{ .b.c }}",
                &["a", "b", "c"],
            ),
        ];
        for (src, want) in cases {
            let got = Template::parse(src).unwrap().referenced_labels();
            assert_eq!(got, *want, "{src}");
        }
    }

    #[test]
    fn rendered_with_quoted_and_with_dot() {
        assert_eq!(
            render(
                r#"{{with .foo}}{{printf "%q" .}} {{end}}"#,
                &[("foo", "a\"b")]
            ),
            r#""a\"b" "#
        );
    }

    #[test]
    fn resource_limits() {
        assert!(
            render_err(r#"{{ repeat 100000000 "ab" }}"#, &[]).ends_with("result exceeds 64 MiB")
        );
        assert!(
            render_err(r#"{{ indent 9223372036854775807 "a" }}"#, &[])
                .ends_with("result exceeds 64 MiB")
        );
        assert!(
            render_err(r#"{{ alignLeft 9223372036854775807 "a" }}"#, &[])
                .ends_with("result exceeds 64 MiB")
        );
        assert!(
            render_err(
                r#"{{ $x := repeat 1000000 "ab" }}{{ range 100 }}{{ $x = print $x $x }}{{ end }}"#,
                &[]
            )
            .ends_with("result exceeds 64 MiB")
        );
        assert!(
            render_err(
                r#"{{ replace "" (repeat 100000 "y") (repeat 10000 "x") }}"#,
                &[]
            )
            .ends_with("result exceeds 64 MiB")
        );
        assert!(
            render_err(
                r#"{{ regexReplaceAll "" (repeat 100000 "y") (repeat 10000 "x") }}"#,
                &[]
            )
            .ends_with("result exceeds 64 MiB")
        );
        assert!(
            render_err(r#"{{ range 2000 }}{{ repeat 50000 "x" }}{{ end }}"#, &[])
                .ends_with("template output exceeds 64 MiB")
        );
        assert!(
            render_err("{{ range 2000000 }}{{ end }}", &[])
                .ends_with("range iteration limit exceeded")
        );
        assert_eq!(
            r(r#"{{ printf "%2000000d|%.2000000f" 1 1.0 }}"#),
            "%!(BADWIDTH)1|%!(BADPREC)1.000000"
        );
        assert_eq!(
            r(r#"{{ regexReplaceAll "a" "banana" "<${0}>" }}"#),
            "b<a>n<a>n<a>"
        );
        assert_eq!(
            r(r#"{{ replace "" "-" "abc" }}|{{ Replace "abc" "" "-" 2 }}"#),
            "-a-b-c-|-a-bc"
        );
    }

    #[test]
    fn template_is_shareable_and_reusable() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Template>();
        let t = Template::parse("{{ .a }}-{{ $x := .a }}{{ $x }}").unwrap();
        assert_eq!(t.render(&entry(&[("a", "1")])).unwrap(), "1-1");
        assert_eq!(t.clone().render(&entry(&[("a", "2")])).unwrap(), "2-2");
    }

    #[test]
    fn go_layout_chunks() {
        let t = Time::from_unix(0, 5_000_000);
        assert_eq!(
            t.format("2006-01-02T15:04:05.000000000Z07:00"),
            "1970-01-01T00:00:00.005000000Z"
        );
        assert_eq!(t.format("_2006 Jan January Jant"), "_1970 Jan January Jant");
        assert_eq!(t.format("3:4:5 pm ,999"), "12:0:0 am ,005");
        let z = Time {
            sec: 0,
            nsec: 0,
            offset: -(3 * 3600 + 30 * 60),
            zone: String::new(),
        };
        assert_eq!(
            z.format("-0700|-07:00|-07|Z07:00|MST|-07:00:00"),
            "-0330|-03:30|-03|-03:30|-0330|-03:30:00"
        );
        assert_eq!(z.go_string(), "1969-12-31 20:30:00 -0330 -0330");
        assert_eq!(Time::zero().go_string(), "0001-01-01 00:00:00 +0000 UTC");
    }
}
