//! The spans of one request and how their context crosses hosts.
//!
//! One HTTP request is one trace:
//!
//! ```text
//! http.server.request            (server; ingress of the built-in HTTP server)
//! └─ component.invoke            (the component handling it)
//!    └─ link.call                (client; one per call through a link)
//!       ├─ component.invoke      (in-process fast path: the target, same host)
//!       └─ lattice.serve         (server; on the host that serves the call,
//!          └─ component.invoke    parent taken from the NATS `traceparent`)
//! ```
//!
//! Every constructor returns [`Span::none`] while traces are off, so a span
//! point costs one relaxed load. Parents are passed explicitly (the span is
//! kept in the invocation's [`CallScope`](crate::runtime::CallScope)), never
//! taken from the thread's current span: a guest's host calls run on wasmtime
//! fibers, and `wasmcloud:bus` `set-link-name` only changes which link the
//! next call takes, never the span it is made under.

use tracing::Span;
use tracing::field::Empty;

use super::traces_enabled;
use crate::runtime::state::TraceContext;

/// Target of every span built here. The log layers ignore it: these spans
/// are for export, not for log lines.
pub const TARGET: &str = trellis_observability::SPAN_TARGET;

/// The W3C headers that make `span` the parent of the receiver's spans;
/// `None` when traces are off or `span` is not exported.
pub fn outgoing_trace(span: &Span) -> Option<TraceContext> {
    let w3c = trellis_observability::propagation::of_span(span)?;
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

/// The ingress span of one HTTP request: a child of the caller's trace when
/// the request carries `traceparent`, else the root of a new trace.
pub fn http_ingress(method: &http::Method, path: &str, trace: Option<&TraceContext>) -> Span {
    if !traces_enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "http.server.request",
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method.as_str(),
        url.path = path,
        http.response.status_code = Empty,
        component.id = Empty,
    );
    adopt(&span, trace);
    span
}

/// Records the response of an ingress span (and marks 5xx as errors).
pub fn http_response(span: &Span, component_id: Option<&str>, status: u16) {
    if span.is_none() {
        return;
    }
    span.record("http.response.status_code", status);
    if let Some(id) = component_id {
        span.record("component.id", id);
    }
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// One invocation of `component_id`'s `interface.function`, under `parent`
/// (a root span when `parent` is none).
pub fn invoke(parent: &Span, component_id: &str, interface: &str, function: &str) -> Span {
    if !traces_enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        parent: parent,
        "component.invoke",
        otel.kind = "internal",
        otel.status_code = Empty,
        otel.status_message = Empty,
        component.id = component_id,
        wit.interface = interface,
        wit.function = function,
    )
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
pub fn link_call(parent: &Span, call: LinkCall<'_>) -> Span {
    if !traces_enabled() {
        return Span::none();
    }
    let kind = match call.path {
        CallPath::Local => "internal",
        CallPath::Lattice => "client",
    };
    tracing::info_span!(
        target: TARGET,
        parent: parent,
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
    )
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
        let span = invoke(&Span::none(), "c", "i", "f");
        assert!(span.is_none());
        assert!(outgoing_trace(&span).is_none());
        assert!(http_ingress(&http::Method::GET, "/", None).is_none());
    }
}
