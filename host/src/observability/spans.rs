//! The spans of one request and how their context crosses hosts.
//!
//! One HTTP request is one trace:
//!
//! ```text
//! http.server.request            (server; ingress of the built-in HTTP server,
//! │                               also the invocation of the routed component)
//! └─ link.call                   (client; one per call through a link)
//!    ├─ component.invoke         (in-process fast path: the target, same host)
//!    └─ lattice.serve            (server; on the host that serves the call,
//!       └─ component.invoke       parent taken from the NATS `traceparent`)
//! ```
//!
//! The ingress span is started directly on the SDK tracer
//! ([`trellis_observability::direct`]): it is the one span of a plain HTTP
//! request, the hot path whose cost issue 8 bounds. The others are `tracing`
//! spans. [`InvocationSpan`] holds either kind.
//!
//! Every constructor returns a span that records nothing while traces are
//! off, so a span point costs one relaxed load. Parents are passed
//! explicitly (the span is kept in the invocation's
//! [`CallScope`](crate::runtime::CallScope)), never taken from the thread's
//! current span: a guest's host calls run on wasmtime fibers, and
//! `wasmcloud:bus` `set-link-name` only changes which link the next call
//! takes, never the span it is made under.

use std::future::Future;
use std::sync::Arc;

use futures::future::Either;
use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue, Value};
use tracing::Instrument as _;
use tracing::Span;
use tracing::field::Empty;
use trellis_observability::direct;

use super::traces_enabled;
use crate::runtime::state::TraceContext;

/// Target of every span built here. The log layers ignore it: these spans
/// are for export, not for log lines.
pub const TARGET: &str = trellis_observability::SPAN_TARGET;

/// The span an invocation's work is recorded under; the calls it makes are
/// its children.
#[derive(Clone, Debug, Default)]
pub enum InvocationSpan {
    /// Nothing is recorded (traces off).
    #[default]
    None,
    /// A `tracing` span (`component.invoke`, `link.call`, …).
    Tracing(Span),
    /// A span started on the SDK tracer (`http.server.request`), in its
    /// context; it ends when the last clone is dropped.
    Direct(Context),
}

impl From<Span> for InvocationSpan {
    fn from(span: Span) -> Self {
        if span.is_none() {
            Self::None
        } else {
            Self::Tracing(span)
        }
    }
}

impl InvocationSpan {
    /// The `tracing` parent of a child span (none for a direct span: the
    /// child is a root for `tracing` and [`adopt_child`](Self::adopt_child)s it).
    fn tracing_parent(&self) -> Option<tracing::Id> {
        match self {
            Self::Tracing(span) => span.id(),
            Self::None | Self::Direct(_) => None,
        }
    }

    /// Makes this span the OpenTelemetry parent of `child` when it is a
    /// direct span (a `tracing` parent was already given at creation).
    fn adopt_child(&self, child: Span) -> Span {
        if let Self::Direct(cx) = self {
            trellis_observability::propagation::adopt_context(&child, cx);
        }
        child
    }

    /// Marks the span failed with `message`.
    pub fn fail(&self, message: &dyn std::fmt::Display) {
        match self {
            Self::None => {}
            Self::Tracing(span) => fail(span, message),
            Self::Direct(cx) => direct::fail(cx, message.to_string()),
        }
    }

    /// Runs `work` in this span: entered (a `tracing` span), or with its
    /// context attached while logs are exported (a direct span: the log
    /// records of the work then carry its trace and span id; without log
    /// export nothing reads the attached context, so none is attached).
    pub fn instrument<F: Future>(
        &self,
        work: F,
    ) -> Either<tracing::instrument::Instrumented<F>, opentelemetry::context::WithContext<F>> {
        use opentelemetry::context::FutureExt as _;
        match self {
            Self::Tracing(span) => Either::Left(work.instrument(span.clone())),
            Self::Direct(cx) if trellis_observability::logs_exported() => {
                Either::Right(work.with_context(cx.clone()))
            }
            Self::None | Self::Direct(_) => Either::Left(work.instrument(Span::none())),
        }
    }
}

/// The W3C headers that make `span` the parent of the receiver's spans;
/// `None` when traces are off or `span` is not exported.
pub fn outgoing_trace(span: &InvocationSpan) -> Option<TraceContext> {
    let w3c = match span {
        InvocationSpan::None => None,
        InvocationSpan::Tracing(span) => trellis_observability::propagation::of_span(span),
        InvocationSpan::Direct(cx) => trellis_observability::propagation::inject(cx),
    }?;
    Some(TraceContext {
        traceparent: w3c.traceparent,
        tracestate: w3c.tracestate,
    })
}

fn adopt(span: &Span, trace: Option<&TraceContext>) {
    if let Some(trace) = trace {
        trellis_observability::propagation::adopt(
            span,
            &trace.traceparent,
            trace.tracestate.as_deref(),
        );
    }
}

/// The ingress span of one HTTP request, also the invocation span of the
/// component it is routed to (`component_id`): a child of the caller's
/// trace when the request carries `traceparent`, else the root of a new
/// trace.
pub fn http_ingress(
    method: &http::Method,
    path: &str,
    component_id: Option<Arc<str>>,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> InvocationSpan {
    if !traces_enabled() {
        return InvocationSpan::None;
    }
    // Room for `http.response.status_code`, set when the response is known.
    let mut attributes = Vec::with_capacity(4);
    attributes.push(KeyValue::new("http.request.method", method_value(method)));
    attributes.push(KeyValue::new("url.path", path.to_string()));
    if let Some(id) = component_id {
        attributes.push(KeyValue::new("component.id", id));
    }
    let parent =
        traceparent.and_then(|tp| trellis_observability::propagation::extract(tp, tracestate));
    direct::start(
        "http.server.request",
        SpanKind::Server,
        attributes,
        parent.as_ref(),
    )
    .map_or(InvocationSpan::None, InvocationSpan::Direct)
}

/// The method as an attribute value, without an allocation for the
/// standard ones.
fn method_value(method: &http::Method) -> Value {
    let name: &'static str = match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PATCH => "PATCH",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => return Value::from(Arc::<str>::from(method.as_str())),
    };
    Value::from(name)
}

/// Records the response status of an ingress span (and marks 5xx as
/// errors, keeping the message of a failure recorded before).
pub fn http_response(span: &InvocationSpan, status: u16) {
    let InvocationSpan::Direct(cx) = span else {
        return;
    };
    direct::set_attribute(
        cx,
        KeyValue::new("http.response.status_code", i64::from(status)),
    );
    if status >= 500 {
        direct::fail(cx, "");
    }
}

/// One invocation of `component_id`'s `interface.function`, under `parent`
/// (a root span when `parent` is none).
pub fn invoke(
    parent: &InvocationSpan,
    component_id: &str,
    interface: &str,
    function: &str,
) -> Span {
    if !traces_enabled() {
        return Span::none();
    }
    parent.adopt_child(tracing::info_span!(
        target: TARGET,
        parent: parent.tracing_parent(),
        "component.invoke",
        otel.kind = "internal",
        otel.status_code = Empty,
        otel.status_message = Empty,
        component.id = component_id,
        wit.interface = interface,
        wit.function = function,
    ))
}

/// Which way a link call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPath {
    /// In-process fast path (target on this host).
    Local,
    /// wRPC over NATS.
    Lattice,
}

impl CallPath {
    fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Lattice => "lattice",
        }
    }
}

/// What a link call is: who calls whom, through which link and function.
#[derive(Debug, Clone, Copy)]
pub struct LinkCall<'a> {
    /// Calling component.
    pub source_id: &'a str,
    /// Resolved target.
    pub target_id: &'a str,
    /// Link name used.
    pub link_name: &'a str,
    /// `namespace:package/interface@version`.
    pub interface: &'a str,
    /// Function name.
    pub function: &'a str,
    /// In-process or lattice.
    pub path: CallPath,
}

/// One outgoing call through a link, under the caller's invocation span.
pub fn link_call(parent: &InvocationSpan, call: LinkCall<'_>) -> Span {
    if !traces_enabled() {
        return Span::none();
    }
    let kind = match call.path {
        CallPath::Local => "internal",
        CallPath::Lattice => "client",
    };
    parent.adopt_child(tracing::info_span!(
        target: TARGET,
        parent: parent.tracing_parent(),
        "link.call",
        otel.kind = kind,
        otel.status_code = Empty,
        otel.status_message = Empty,
        component.id = call.source_id,
        link.target = call.target_id,
        link.name = call.link_name,
        wit.interface = call.interface,
        wit.function = call.function,
        call.path = call.path.as_str(),
    ))
}

/// What arrived over the lattice.
#[derive(Debug, Clone, Copy)]
pub struct ServedCall<'a> {
    /// Component that serves it.
    pub component_id: &'a str,
    /// Caller (`source-id` header), if given.
    pub source_id: Option<&'a str>,
    /// Link name (`link-name` header).
    pub link_name: &'a str,
    /// Interface called.
    pub interface: &'a str,
    /// Function called.
    pub function: &'a str,
}

/// One control-interface request (`wasmbus.ctl.…`), a child of the
/// requester's span when the request carries `traceparent` (wadm's commands
/// do), else the root of a new trace.
pub fn ctl_request(subject: &str, trace: Option<&TraceContext>) -> Span {
    if !traces_enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "ctl.request",
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_message = Empty,
        messaging.destination.name = subject,
    );
    adopt(&span, trace);
    span
}

/// A call served from the lattice, a child of the caller's `link.call`
/// span when the message carries `traceparent`.
pub fn lattice_serve(call: ServedCall<'_>, trace: Option<&TraceContext>) -> Span {
    if !traces_enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "lattice.serve",
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_message = Empty,
        component.id = call.component_id,
        source.id = call.source_id.unwrap_or_default(),
        link.name = call.link_name,
        wit.interface = call.interface,
        wit.function = call.function,
    );
    adopt(&span, trace);
    span
}

/// Marks `span` failed with `message` (no-op when it is not exported).
pub fn fail(span: &Span, message: &dyn std::fmt::Display) {
    if span.is_none() {
        return;
    }
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_message", tracing::field::display(message));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_none_and_nothing_is_injected_while_traces_are_off() {
        assert!(!traces_enabled());
        let span = invoke(&InvocationSpan::None, "c", "i", "f");
        assert!(span.is_none());
        assert!(outgoing_trace(&span.into()).is_none());
        assert!(matches!(
            http_ingress(&http::Method::GET, "/", Some(Arc::from("c")), None, None),
            InvocationSpan::None
        ));
    }
}
