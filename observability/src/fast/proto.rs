//! OTLP trace protobuf, written straight from a span's fields.
//!
//! The SDK's exporter turns every `SpanData` into `opentelemetry-proto`
//! structs (an owned `String` per attribute key and value, a `Vec` per id)
//! and encodes those; here a span is encoded once, on the thread that ends
//! it, into the bytes of one `ScopeSpans.spans` entry. Entries of a repeated
//! field concatenate, so a batch is those bytes appended one after another,
//! framed by a resource and scope header encoded once per process
//! ([`Frame`]). Field numbers are those of `opentelemetry/proto/trace/v1/
//! trace.proto`, `common/v1/common.proto` and
//! `collector/trace/v1/trace_service.proto`; the tests decode the output
//! with the `opentelemetry-proto` types.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{Array, KeyValue, Value};

/// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// `SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK` and `…_IS_REMOTE_MASK`.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A string field, left out when empty (proto3 default).
fn str_field(out: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        bytes_field(out, field, s.as_bytes());
    }
}

fn fixed64_field(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

fn fixed32_field(out: &mut Vec<u8>, field: u32, v: u32) {
    key(out, field, FIXED32);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A varint field, left out when zero (proto3 default).
fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(out, field, VARINT);
        varint(out, v);
    }
}

/// Writes a length-delimited field whose body `body` writes after a
/// one-byte length; a body of 128 bytes or more moves right by the extra
/// bytes of its length (rare: a span's attributes are each a few bytes).
fn message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let at = out.len();
    out.push(0);
    body(out);
    let len = (out.len() - at - 1) as u64;
    if len < 0x80 {
        if let Some(slot) = out.get_mut(at) {
            *slot = len as u8;
        }
        return;
    }
    let mut prefix = [0u8; 10];
    let mut n = 0;
    let mut v = len;
    for byte in &mut prefix {
        n += 1;
        if v < 0x80 {
            *byte = v as u8;
            break;
        }
        *byte = (v as u8) | 0x80;
        v >>= 7;
    }
    out.splice(at..=at, prefix.into_iter().take(n));
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `AnyValue`.
fn any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => bytes_field(out, 1, s.as_str().as_bytes()),
        Value::Bool(b) => {
            key(out, 2, VARINT);
            varint(out, u64::from(*b));
        }
        // int64 is a varint of the two's complement.
        Value::I64(i) => {
            key(out, 3, VARINT);
            varint(out, *i as u64);
        }
        Value::F64(f) => fixed64_field(out, 4, f.to_bits()),
        Value::Array(array) => message(out, 5, |out| array_value(out, array)),
        // A kind of value this version does not know: its text.
        other => bytes_field(out, 1, other.to_string().as_bytes()),
    }
}

/// `ArrayValue { repeated AnyValue values = 1; }`.
fn array_value(out: &mut Vec<u8>, array: &Array) {
    match array {
        Array::Bool(v) => v
            .iter()
            .for_each(|b| message(out, 1, |o| any_value(o, &Value::Bool(*b)))),
        Array::I64(v) => v
            .iter()
            .for_each(|i| message(out, 1, |o| any_value(o, &Value::I64(*i)))),
        Array::F64(v) => v
            .iter()
            .for_each(|f| message(out, 1, |o| any_value(o, &Value::F64(*f)))),
        Array::String(v) => v
            .iter()
            .for_each(|s| message(out, 1, |o| bytes_field(o, 1, s.as_str().as_bytes()))),
        other => message(out, 1, |o| bytes_field(o, 1, other.to_string().as_bytes())),
    }
}

/// `KeyValue { string key = 1; AnyValue value = 2; }` as entry `field`.
fn attribute(out: &mut Vec<u8>, field: u32, kv: &KeyValue) {
    message(out, field, |out| {
        str_field(out, 1, kv.key.as_str());
        message(out, 2, |out| any_value(out, &kv.value));
    });
}

/// `Span.SpanKind`.
fn kind_number(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// The `flags` of a span or link: the W3C trace flags and whether the
/// parent (for a link, the linked span) is remote.
fn flags(context_flags: u8, remote: bool) -> u32 {
    u32::from(context_flags) | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 }
}

/// An event of a span.
#[derive(Debug)]
pub(crate) struct Event {
    pub name: std::borrow::Cow<'static, str>,
    pub time: SystemTime,
    pub attributes: Vec<KeyValue>,
}

/// A link of a span.
#[derive(Debug)]
pub(crate) struct Link {
    pub context: SpanContext,
    pub attributes: Vec<KeyValue>,
}

/// What one ended span is, for its encoding.
#[derive(Debug)]
pub(crate) struct SpanRecord<'a> {
    pub context: &'a SpanContext,
    /// The parent's span id and whether the parent is remote.
    pub parent: Option<(SpanId, bool)>,
    pub name: &'a str,
    pub kind: &'a SpanKind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: &'a [KeyValue],
    pub events: &'a [Event],
    pub links: &'a [Link],
    pub status: &'a Status,
}

/// Appends `span` as one `ScopeSpans.spans` entry (field 2) to `out`.
pub(crate) fn span_entry(out: &mut Vec<u8>, span: &SpanRecord<'_>) {
    message(out, 2, |out| {
        bytes_field(out, 1, &span.context.trace_id().to_bytes());
        bytes_field(out, 2, &span.context.span_id().to_bytes());
        str_field(out, 3, &span.context.trace_state().header());
        if let Some((parent, _)) = span.parent.filter(|(id, _)| *id != SpanId::INVALID) {
            bytes_field(out, 4, &parent.to_bytes());
        }
        str_field(out, 5, span.name);
        varint_field(out, 6, kind_number(span.kind));
        fixed64_field(out, 7, nanos(span.start));
        fixed64_field(out, 8, nanos(span.end));
        for kv in span.attributes {
            attribute(out, 9, kv);
        }
        for event in span.events {
            message(out, 11, |out| {
                fixed64_field(out, 1, nanos(event.time));
                str_field(out, 2, &event.name);
                for kv in &event.attributes {
                    attribute(out, 3, kv);
                }
            });
        }
        for link in span.links {
            message(out, 13, |out| {
                bytes_field(out, 1, &link.context.trace_id().to_bytes());
                bytes_field(out, 2, &link.context.span_id().to_bytes());
                str_field(out, 3, &link.context.trace_state().header());
                for kv in &link.attributes {
                    attribute(out, 4, kv);
                }
                fixed32_field(
                    out,
                    6,
                    flags(link.context.trace_flags().to_u8(), link.context.is_remote()),
                );
            });
        }
        // `Status { string message = 2; StatusCode code = 3; }`, always
        // present as the SDK's exporter writes it.
        message(out, 15, |out| match span.status {
            Status::Unset => {}
            Status::Ok => varint_field(out, 3, 1),
            Status::Error { description } => {
                str_field(out, 2, description);
                varint_field(out, 3, 2);
            }
        });
        let remote = span.parent.is_some_and(|(_, remote)| remote);
        fixed32_field(out, 16, flags(span.context.trace_flags().to_u8(), remote));
    });
}

/// The resource and scope around a batch of span entries, encoded once.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// `ResourceSpans.resource` (field 1), complete.
    resource: Vec<u8>,
    /// `ScopeSpans.scope` (field 1), complete.
    scope: Vec<u8>,
}

impl Frame {
    pub(crate) fn new<'a>(
        resource: impl IntoIterator<Item = (&'a opentelemetry::Key, &'a Value)>,
        scope_name: &str,
    ) -> Self {
        let mut encoded = Vec::new();
        message(&mut encoded, 1, |out| {
            for (k, v) in resource {
                attribute(out, 1, &KeyValue::new(k.clone(), v.clone()));
            }
        });
        let mut scope = Vec::new();
        message(&mut scope, 1, |out| str_field(out, 1, scope_name));
        Self {
            resource: encoded,
            scope,
        }
    }

    /// An `ExportTraceServiceRequest` with one resource and one scope
    /// holding the span entries `spans` (as [`span_entry`] wrote them).
    pub(crate) fn request(&self, spans: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(spans.len() + self.resource.len() + self.scope.len() + 32);
        message(&mut out, 1, |out| {
            out.extend_from_slice(&self.resource);
            message(out, 2, |out| {
                out.extend_from_slice(&self.scope);
                out.extend_from_slice(spans);
            });
        });
        out
    }
}
