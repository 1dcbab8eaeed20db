//! W3C trace context (`traceparent`, `tracestate`) in and out of headers,
//! without building a map per call.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Header carrying the W3C trace parent.
pub const TRACEPARENT: &str = "traceparent";
/// Header carrying the W3C trace state.
pub const TRACESTATE: &str = "tracestate";

/// W3C trace context as header values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct W3cContext {
    /// `traceparent`.
    pub traceparent: String,
    /// `tracestate`, when not empty.
    pub tracestate: Option<String>,
}

struct Pair<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl Extractor for Pair<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(self.traceparent),
            TRACESTATE => self.tracestate,
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

#[derive(Default)]
struct Out {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Injector for Out {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

/// The remote OpenTelemetry context `traceparent` names, if it parses to a
/// valid span context.
pub fn extract(traceparent: &str, tracestate: Option<&str>) -> Option<opentelemetry::Context> {
    let cx = TraceContextPropagator::new().extract(&Pair {
        traceparent,
        tracestate,
    });
    cx.span().span_context().is_valid().then_some(cx)
}

/// The W3C headers naming the span of `cx`, if it has a valid one.
pub fn inject(cx: &opentelemetry::Context) -> Option<W3cContext> {
    let mut out = Out::default();
    TraceContextPropagator::new().inject_context(cx, &mut out);
    Some(W3cContext {
        traceparent: out.traceparent?,
        tracestate: out.tracestate,
    })
}

/// The W3C headers that make `span` the parent of a receiver's spans;
/// `None` when traces are off or `span` is not exported.
pub fn of_span(span: &tracing::Span) -> Option<W3cContext> {
    if !crate::traces_enabled() || span.is_none() {
        return None;
    }
    inject(&span.context())
}

/// Makes the remote context named by `traceparent` the parent of `span`
/// (no-op when it does not parse or `span` is not exported).
pub fn adopt(span: &tracing::Span, traceparent: &str, tracestate: Option<&str>) {
    if span.is_none() {
        return;
    }
    if let Some(cx) = extract(traceparent, tracestate) {
        let _ = span.set_parent(cx);
    }
}

/// Makes the span in `cx` (a [`crate::direct`] span, or a remote context)
/// the parent of `span` (no-op when `span` is not exported).
pub fn adopt_context(span: &tracing::Span, cx: &opentelemetry::Context) {
    if span.is_none() {
        return;
    }
    let _ = span.set_parent(cx.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_w3c_traceparent_round_trips() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = extract(tp, Some("vendor=x")).unwrap();
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled());
        let out = inject(&cx).unwrap();
        assert_eq!(out.traceparent, tp);
        assert_eq!(out.tracestate.as_deref(), Some("vendor=x"));
        assert!(extract("00-garbage", None).is_none());
    }

    #[test]
    fn nothing_is_injected_while_traces_are_off() {
        assert!(of_span(&tracing::Span::none()).is_none());
    }
}
