//! Tag names and tag values for Tempo's `/api/search/tags` and
//! `/api/search/tag/{name}/values` (v1 and v2), computed from the head.
//!
//! Names are grouped by TraceQL scope (`resource`, `span`, `event`, `link`,
//! `instrumentation`, and the fixed `intrinsic` list); values carry TraceQL's type
//! names (`string`, `int`, `float`, `bool`, `keyword` for status and kind), as
//! Tempo's `SearchTagValuesV2` answers them.

use std::collections::{BTreeMap, BTreeSet};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;

use std::ops::ControlFlow;

use super::block::BlockMeta;
use super::scan::Visitor;
use super::{StoredSpan, Trace, TraceId, TraceStore};

/// A TraceQL attribute scope, as Tempo's tag endpoints group names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TagScope {
    /// Resource attributes.
    Resource,
    /// Span attributes.
    Span,
    /// Span event attributes.
    Event,
    /// Span link attributes.
    Link,
    /// Instrumentation scope attributes.
    Instrumentation,
    /// TraceQL's intrinsics (`name`, `status`, `duration`, ...): a fixed list.
    Intrinsic,
}

impl TagScope {
    /// Every scope, in the order Tempo's v2 answer lists them here.
    pub const ALL: [TagScope; 6] = [
        TagScope::Resource,
        TagScope::Span,
        TagScope::Intrinsic,
        TagScope::Event,
        TagScope::Link,
        TagScope::Instrumentation,
    ];

    /// Parses Tempo's `scope` parameter value.
    pub fn parse(s: &str) -> Option<TagScope> {
        Some(match s {
            "resource" => TagScope::Resource,
            "span" => TagScope::Span,
            "event" => TagScope::Event,
            "link" => TagScope::Link,
            "instrumentation" => TagScope::Instrumentation,
            "intrinsic" => TagScope::Intrinsic,
            _ => return None,
        })
    }

    /// Returns the scope's TraceQL name.
    pub fn as_str(self) -> &'static str {
        match self {
            TagScope::Resource => "resource",
            TagScope::Span => "span",
            TagScope::Event => "event",
            TagScope::Link => "link",
            TagScope::Instrumentation => "instrumentation",
            TagScope::Intrinsic => "intrinsic",
        }
    }
}

/// The intrinsic names Tempo lists under `scope=intrinsic`, sorted.
pub const INTRINSIC_TAGS: &[&str] = &[
    "duration",
    "event:name",
    "event:timeSinceStart",
    "instrumentation:name",
    "instrumentation:version",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "span:duration",
    "span:kind",
    "span:name",
    "span:status",
    "span:statusMessage",
    "status",
    "statusMessage",
    "trace:duration",
    "trace:rootName",
    "trace:rootService",
    "traceDuration",
];

/// One distinct tag value with its TraceQL type name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TagValue {
    /// `string`, `int`, `float`, `bool` or `keyword`.
    pub kind: &'static str,
    /// The value as TraceQL prints it (strings unquoted).
    pub value: String,
}

/// An intrinsic whose values can be listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intrinsic {
    Name,
    Status,
    Kind,
    StatusMessage,
    RootName,
    RootService,
    ScopeName,
    ScopeVersion,
    EventName,
    /// Durations: a value per span, which Tempo does not list either.
    Duration,
}

/// What `/api/v2/search/tag/{name}/values` asks for: an attribute or an intrinsic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagRef {
    /// An attribute; `scope` `None` is TraceQL's unscoped `.name` (span or resource).
    Attribute {
        scope: Option<TagScope>,
        name: String,
    },
    /// An intrinsic.
    Intrinsic(Intrinsic),
}

impl TagRef {
    /// Parses a TraceQL identifier: `resource.x`, `span.x`, `event.x`, `link.x`,
    /// `instrumentation.x`, `.x`, or an intrinsic (`name`, `span:name`, `status`, ...).
    pub fn parse(s: &str) -> Option<TagRef> {
        let intrinsic = match s {
            "name" | "span:name" => Some(Intrinsic::Name),
            "status" | "span:status" => Some(Intrinsic::Status),
            "kind" | "span:kind" => Some(Intrinsic::Kind),
            "statusMessage" | "span:statusMessage" => Some(Intrinsic::StatusMessage),
            "rootName" | "trace:rootName" => Some(Intrinsic::RootName),
            "rootServiceName" | "trace:rootService" => Some(Intrinsic::RootService),
            "instrumentation:name" => Some(Intrinsic::ScopeName),
            "instrumentation:version" => Some(Intrinsic::ScopeVersion),
            "event:name" => Some(Intrinsic::EventName),
            "duration" | "span:duration" | "traceDuration" | "trace:duration" => {
                Some(Intrinsic::Duration)
            }
            _ => None,
        };
        if let Some(i) = intrinsic {
            return Some(TagRef::Intrinsic(i));
        }
        let (scope, name) = match s.strip_prefix('.') {
            Some(name) => (None, name),
            None => {
                let (scope, name) = s.split_once('.')?;
                let scope = TagScope::parse(scope).filter(|s| *s != TagScope::Intrinsic)?;
                (Some(scope), name)
            }
        };
        let name = name.trim_matches('"');
        (!name.is_empty()).then(|| TagRef::Attribute {
            scope,
            name: name.to_string(),
        })
    }
}

fn status_keyword(span: &Span) -> &'static str {
    match span.status.as_ref().map_or(0, |s| s.code) {
        1 => "ok",
        2 => "error",
        _ => "unset",
    }
}

fn kind_keyword(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

fn typed(v: &AnyValue) -> Option<TagValue> {
    let (kind, value) = match v.value.as_ref()? {
        Value::StringValue(s) => ("string", s.clone()),
        Value::IntValue(i) => ("int", i.to_string()),
        Value::DoubleValue(d) => ("float", d.to_string()),
        Value::BoolValue(b) => ("bool", b.to_string()),
        _ => return None,
    };
    Some(TagValue { kind, value })
}

fn string(s: &str) -> Option<TagValue> {
    (!s.is_empty()).then(|| TagValue {
        kind: "string",
        value: s.to_string(),
    })
}

fn keys(out: &mut BTreeSet<String>, attrs: &[KeyValue]) {
    for kv in attrs {
        if !out.contains(&kv.key) {
            out.insert(kv.key.clone());
        }
    }
}

fn values_of(out: &mut BTreeSet<TagValue>, attrs: &[KeyValue], name: &str) {
    out.extend(
        attrs
            .iter()
            .filter(|kv| kv.key == name)
            .filter_map(|kv| kv.value.as_ref().and_then(typed)),
    );
}

fn resource_attrs(s: &StoredSpan) -> &[KeyValue] {
    s.resource
        .resource
        .as_ref()
        .map_or(&[], |r| r.attributes.as_slice())
}

fn scope_attrs(s: &StoredSpan) -> &[KeyValue] {
    s.scope
        .scope
        .as_ref()
        .map_or(&[], |sc| sc.attributes.as_slice())
}

/// Span bytes of blocks a tag query reads at most (Tempo bounds its tag queries by bytes
/// too); the head and frozen parts are always read whole.
const MAX_BLOCK_BYTES_PER_TAG_QUERY: u64 = 64 << 20;

/// Visits every fragment, and stops at the first block once the blocks' bytes read pass
/// [`MAX_BLOCK_BYTES_PER_TAG_QUERY`].
struct Capped<'a, F> {
    inspected: &'a mut u64,
    block_bytes: u64,
    in_blocks: bool,
    f: F,
}

impl<'a, F: FnMut(&Trace)> Capped<'a, F> {
    fn new(inspected: &'a mut u64, f: F) -> Self {
        Capped {
            inspected,
            block_bytes: 0,
            in_blocks: false,
            f,
        }
    }
}

impl<F: FnMut(&Trace)> Visitor for Capped<'_, F> {
    fn enter_block(&mut self, _meta: &BlockMeta) -> ControlFlow<()> {
        self.in_blocks = true;
        if self.block_bytes >= MAX_BLOCK_BYTES_PER_TAG_QUERY {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn visit(&mut self, _id: &TraceId, trace: &Trace) -> ControlFlow<()> {
        *self.inspected += trace.bytes;
        if self.in_blocks {
            self.block_bytes += trace.bytes;
        }
        (self.f)(trace);
        ControlFlow::Continue(())
    }
}

impl TraceStore {
    /// Returns the attribute names of `scopes` seen on the traces overlapping `window`
    /// (unix nanoseconds, inclusive), and how many span bytes were inspected. The
    /// intrinsic scope is always the fixed [`INTRINSIC_TAGS`] list.
    pub fn tag_names(
        &self,
        scopes: &[TagScope],
        window: Option<(u64, u64)>,
    ) -> (BTreeMap<TagScope, BTreeSet<String>>, u64) {
        let mut out: BTreeMap<TagScope, BTreeSet<String>> = BTreeMap::new();
        let mut inspected = 0;
        let wants = |s: TagScope| scopes.contains(&s);
        if wants(TagScope::Intrinsic) {
            out.insert(
                TagScope::Intrinsic,
                INTRINSIC_TAGS.iter().map(|s| s.to_string()).collect(),
            );
        }
        if scopes.iter().all(|s| *s == TagScope::Intrinsic) {
            return (out, inspected);
        }
        self.scan(
            window,
            &mut Capped::new(&mut inspected, |trace: &Trace| {
                let mut last_resource = None;
                for s in &trace.spans {
                    if wants(TagScope::Resource)
                        && last_resource.is_none_or(|r| !std::ptr::eq(r, &*s.resource))
                    {
                        keys(
                            out.entry(TagScope::Resource).or_default(),
                            resource_attrs(s),
                        );
                        last_resource = Some(&*s.resource);
                    }
                    if wants(TagScope::Instrumentation) {
                        keys(
                            out.entry(TagScope::Instrumentation).or_default(),
                            scope_attrs(s),
                        );
                    }
                    if wants(TagScope::Span) {
                        keys(out.entry(TagScope::Span).or_default(), &s.span.attributes);
                    }
                    if wants(TagScope::Event) {
                        for e in &s.span.events {
                            keys(out.entry(TagScope::Event).or_default(), &e.attributes);
                        }
                    }
                    if wants(TagScope::Link) {
                        for l in &s.span.links {
                            keys(out.entry(TagScope::Link).or_default(), &l.attributes);
                        }
                    }
                }
            }),
        );
        out.retain(|_, names| !names.is_empty());
        (out, inspected)
    }

    /// Returns the distinct values of `tag` on the traces overlapping `window`, sorted
    /// by type then value, and how many span bytes were inspected.
    pub fn tag_values(&self, tag: &TagRef, window: Option<(u64, u64)>) -> (Vec<TagValue>, u64) {
        let mut out = BTreeSet::new();
        let mut inspected = 0;
        if matches!(tag, TagRef::Intrinsic(Intrinsic::Duration)) {
            return (Vec::new(), 0);
        }
        self.scan(
            window,
            &mut Capped::new(&mut inspected, |trace: &Trace| {
                for s in &trace.spans {
                    let span = &s.span;
                    match tag {
                        TagRef::Attribute { scope, name } => {
                            let wants = |sc: TagScope| scope.is_none_or(|x| x == sc);
                            if wants(TagScope::Resource) {
                                values_of(&mut out, resource_attrs(s), name);
                            }
                            if wants(TagScope::Span) {
                                values_of(&mut out, &span.attributes, name);
                            }
                            if scope == &Some(TagScope::Event) {
                                for e in &span.events {
                                    values_of(&mut out, &e.attributes, name);
                                }
                            }
                            if scope == &Some(TagScope::Link) {
                                for l in &span.links {
                                    values_of(&mut out, &l.attributes, name);
                                }
                            }
                            if scope == &Some(TagScope::Instrumentation) {
                                values_of(&mut out, scope_attrs(s), name);
                            }
                        }
                        TagRef::Intrinsic(i) => {
                            let root = span.parent_span_id.is_empty();
                            let v = match i {
                                Intrinsic::Name => string(&span.name),
                                Intrinsic::Status => Some(TagValue {
                                    kind: "keyword",
                                    value: status_keyword(span).into(),
                                }),
                                Intrinsic::Kind => Some(TagValue {
                                    kind: "keyword",
                                    value: kind_keyword(span.kind).into(),
                                }),
                                Intrinsic::StatusMessage => {
                                    span.status.as_ref().and_then(|st| string(&st.message))
                                }
                                Intrinsic::RootName if root => string(&span.name),
                                Intrinsic::RootService if root => string(&s.resource.service),
                                Intrinsic::ScopeName => {
                                    s.scope.scope.as_ref().and_then(|sc| string(&sc.name))
                                }
                                Intrinsic::ScopeVersion => {
                                    s.scope.scope.as_ref().and_then(|sc| string(&sc.version))
                                }
                                Intrinsic::EventName => {
                                    out.extend(span.events.iter().filter_map(|e| string(&e.name)));
                                    None
                                }
                                _ => None,
                            };
                            out.extend(v);
                        }
                    }
                }
            }),
        );
        (out.into_iter().collect(), inspected)
    }
}
