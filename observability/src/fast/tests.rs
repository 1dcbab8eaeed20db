//! The encoding is checked by decoding it with the `opentelemetry-proto`
//! types the collectors' code is generated from.

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{KeyValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use prost::Message as _;

use super::proto::{Frame, SpanRecord, span_entry};
use super::test_span;

fn encode(span: &super::FastSpan, end: SystemTime) -> Vec<u8> {
    let mut out = Vec::new();
    span_entry(
        &mut out,
        &SpanRecord {
            context: &span.context,
            parent: span.parent,
            name: &span.name,
            kind: &span.kind,
            start: span.start,
            end,
            attributes: &span.attributes,
            events: &span.events,
            links: &span.links,
            status: &span.status,
        },
    );
    out
}

fn decode_one(entries: &[u8]) -> Span {
    let frame = Frame::new(
        [
            (&"service.name".into(), &Value::from("svc")),
            (&"host.id".into(), &Value::from(7_i64)),
        ],
        "scope-name",
    );
    let request =
        ExportTraceServiceRequest::decode(&frame.request(entries)[..]).expect("valid protobuf");
    assert_eq!(request.resource_spans.len(), 1);
    let rs = &request.resource_spans[0];
    let resource = rs.resource.as_ref().expect("a resource");
    assert_eq!(resource.attributes.len(), 2);
    assert_eq!(resource.attributes[0].key, "service.name");
    assert_eq!(
        resource.attributes[1]
            .value
            .as_ref()
            .and_then(|v| v.value.clone()),
        Some(Any::IntValue(7))
    );
    assert_eq!(rs.scope_spans.len(), 1);
    assert_eq!(
        rs.scope_spans[0].scope.as_ref().map(|s| s.name.as_str()),
        Some("scope-name")
    );
    let mut spans = rs.scope_spans[0].spans.clone();
    assert_eq!(spans.len(), 1, "one span entry");
    spans.remove(0)
}

fn attr(span: &Span, key: &str) -> Option<Any> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.clone())
}

#[test]
fn a_span_decodes_with_every_field() {
    let mut span = test_span(Some((SpanId::from(0x2122_2324_2526_2728_u64), true)));
    span.set_attribute(KeyValue::new("http.request.method", "GET"));
    span.set_attribute(KeyValue::new(
        "component.id",
        std::sync::Arc::<str>::from("hello"),
    ));
    span.set_attribute(KeyValue::new("http.response.status_code", 503_i64));
    span.set_attribute(KeyValue::new("neg", -5_i64));
    span.set_attribute(KeyValue::new("flag", true));
    span.set_attribute(KeyValue::new("ratio", 0.25_f64));
    span.set_attribute(KeyValue::new(
        "list",
        Value::Array(vec![opentelemetry::StringValue::from("a"), "b".into()].into()),
    ));
    span.add_event_with_timestamp(
        "retry",
        SystemTime::UNIX_EPOCH + Duration::from_nanos(1_500),
        vec![KeyValue::new("attempt", 2_i64)],
    );
    let linked = SpanContext::new(
        TraceId::from(9_u128),
        SpanId::from(8_u64),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    span.add_link(linked, vec![KeyValue::new("why", "batch")]);
    span.set_status(Status::error(""));
    span.set_status(Status::error("backend down"));
    span.set_status(Status::error(""));
    let bytes = encode(&span, SystemTime::UNIX_EPOCH + Duration::from_nanos(2_000));
    span.ended = true; // nothing to push to: no pipeline in this test

    let got = decode_one(&bytes);
    assert_eq!(
        got.trace_id,
        0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10_u128.to_be_bytes()
    );
    assert_eq!(got.span_id, 0x1112_1314_1516_1718_u64.to_be_bytes());
    assert_eq!(got.parent_span_id, 0x2122_2324_2526_2728_u64.to_be_bytes());
    assert_eq!(got.trace_state, "vendor=v1");
    assert_eq!(got.name, "http.server.request");
    assert_eq!(got.kind, SpanKind::Server as i32);
    assert_eq!(
        (got.start_time_unix_nano, got.end_time_unix_nano),
        (1_000, 2_000)
    );
    // Sampled, with a remote parent (the `traceparent` of the request).
    assert_eq!(got.flags, 0x01 | 0x100 | 0x200);
    assert_eq!(
        attr(&got, "http.request.method"),
        Some(Any::StringValue("GET".into()))
    );
    assert_eq!(
        attr(&got, "component.id"),
        Some(Any::StringValue("hello".into()))
    );
    assert_eq!(
        attr(&got, "http.response.status_code"),
        Some(Any::IntValue(503))
    );
    assert_eq!(attr(&got, "neg"), Some(Any::IntValue(-5)));
    assert_eq!(attr(&got, "flag"), Some(Any::BoolValue(true)));
    assert_eq!(attr(&got, "ratio"), Some(Any::DoubleValue(0.25)));
    let Some(Any::ArrayValue(list)) = attr(&got, "list") else {
        panic!("an array attribute");
    };
    let items: Vec<_> = list.values.iter().filter_map(|v| v.value.clone()).collect();
    assert_eq!(
        items,
        vec![Any::StringValue("a".into()), Any::StringValue("b".into())]
    );
    assert_eq!(got.events.len(), 1);
    assert_eq!(got.events[0].name, "retry");
    assert_eq!(got.events[0].time_unix_nano, 1_500);
    assert_eq!(got.events[0].attributes[0].key, "attempt");
    assert_eq!(got.links.len(), 1);
    assert_eq!(got.links[0].span_id, 8_u64.to_be_bytes());
    assert_eq!(got.links[0].flags, 0x01 | 0x100 | 0x200);
    assert_eq!(got.links[0].attributes[0].key, "why");
    let status = got.status.expect("a status");
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(
        status.message, "backend down",
        "a failure with a message is kept"
    );
}

#[test]
fn a_root_span_has_no_parent_and_an_unset_status() {
    let mut span = test_span(None);
    span.update_name("renamed");
    let bytes = encode(&span, SystemTime::UNIX_EPOCH + Duration::from_secs(1));
    span.ended = true;
    let got = decode_one(&bytes);
    assert!(got.parent_span_id.is_empty());
    assert_eq!(got.name, "renamed");
    assert_eq!(got.flags, 0x01 | 0x100, "sampled, parent not remote");
    assert_eq!(got.status.map(|s| s.code), Some(StatusCode::Unset as i32));
    assert_eq!(got.end_time_unix_nano, 1_000_000_000);
}

#[test]
fn entries_concatenate_into_one_batch() {
    let mut batch = Vec::new();
    for _ in 0..3 {
        let mut span = test_span(None);
        batch.extend(encode(&span, SystemTime::now()));
        span.ended = true;
    }
    let frame = Frame::new(std::iter::empty(), "s");
    let request =
        ExportTraceServiceRequest::decode(&frame.request(&batch)[..]).expect("valid protobuf");
    assert_eq!(request.resource_spans[0].scope_spans[0].spans.len(), 3);
}

#[test]
fn a_large_span_gets_a_multi_byte_length() {
    let mut span = test_span(None);
    span.set_attribute(KeyValue::new("url.path", "p".repeat(70_000)));
    let bytes = encode(&span, SystemTime::now());
    span.ended = true;
    let got = decode_one(&bytes);
    assert_eq!(
        attr(&got, "url.path"),
        Some(Any::StringValue("p".repeat(70_000)))
    );
}
