//! Trace context through a provider: every call served gets a
//! `provider.serve` span (child of the caller's `traceparent`), every call
//! made through a [`ProviderClient`](crate::ProviderClient) a `provider.call`
//! span whose context goes out in the request's `traceparent`.
//!
//! Spans are [`Span::none`] while traces are off (host data's
//! `otel_config`), and then an incoming `traceparent` is passed on unchanged
//! to calls made [`in_context`](crate::ProviderClient::in_context), so a
//! tracing host further down still joins the caller's trace.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use async_nats::HeaderMap;
use futures::{Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::Span;
use tracing::field::Empty;
use trellis_observability::propagation::{self, TRACEPARENT, TRACESTATE, W3cContext};
use trellis_observability::{SPAN_TARGET, traces_enabled};
use trellis_wrpc::{ParamReader, ResultWriter, ServeContext, Server};

/// A wRPC stream that keeps the span of its call open until it is dropped
/// (the result written, or the reply read).
pub struct Traced<T> {
    inner: T,
    span: Span,
}

impl<T> Traced<T> {
    pub(crate) fn new(inner: T, span: Span) -> Self {
        Self { inner, span }
    }
}

impl<T: wrpc_transport::Index<T>> wrpc_transport::Index<Traced<T>> for Traced<T> {
    fn index(&self, path: &[usize]) -> anyhow::Result<Traced<T>> {
        Ok(Traced {
            inner: self.inner.index(path)?,
            span: self.span.clone(),
        })
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Traced<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Traced<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// The wRPC server of a provider's exports: [`trellis_wrpc::Server`] plus a
/// `provider.serve` span per call. The request's `traceparent` is replaced
/// by the span's own, so [`Context::trace`](crate::Context::trace) names it
/// and calls made [`in_context`](crate::ProviderClient::in_context) are its
/// children.
#[derive(Clone)]
pub struct ProviderServer {
    inner: Server,
    provider_id: Arc<str>,
}

impl ProviderServer {
    pub(crate) fn new(inner: Server, provider_id: &str) -> Self {
        Self {
            inner,
            provider_id: provider_id.into(),
        }
    }

    /// The transport's server, without spans.
    pub fn transport_server(&self) -> &Server {
        &self.inner
    }
}

impl std::fmt::Debug for ProviderServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderServer")
            .field("provider_id", &self.provider_id)
            .finish_non_exhaustive()
    }
}

impl wrpc_transport::Serve for ProviderServer {
    type Context = ServeContext;
    type Outgoing = Traced<ResultWriter>;
    type Incoming = ParamReader;

    async fn serve(
        &self,
        instance: &str,
        func: &str,
        paths: impl Into<Arc<[Box<[Option<usize>]>]>> + Send,
    ) -> anyhow::Result<
        impl Stream<Item = anyhow::Result<(Self::Context, Self::Outgoing, Self::Incoming)>>
        + Send
        + 'static,
    > {
        let calls = wrpc_transport::Serve::serve(&self.inner, instance, func, paths).await?;
        let names: Arc<(Arc<str>, String, String)> = Arc::new((
            Arc::clone(&self.provider_id),
            instance.to_string(),
            func.to_string(),
        ));
        Ok(calls.map(move |call| {
            call.map(|(mut cx, outgoing, incoming)| {
                let (provider_id, instance, func) = &*names;
                let span = serve_span(&mut cx, provider_id, instance, func);
                (cx, Traced::new(outgoing, span), incoming)
            })
        }))
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.as_str().to_string())
}

/// The trace context a request carries.
pub(crate) fn incoming(headers: &HeaderMap) -> Option<W3cContext> {
    Some(W3cContext {
        traceparent: header(headers, TRACEPARENT)?,
        tracestate: header(headers, TRACESTATE).filter(|s| !s.is_empty()),
    })
}

fn set(headers: &mut HeaderMap, w3c: &W3cContext) {
    headers.insert(TRACEPARENT, w3c.traceparent.as_str());
    if let Some(state) = &w3c.tracestate {
        headers.insert(TRACESTATE, state.as_str());
    }
}

fn serve_span(cx: &mut ServeContext, provider_id: &str, instance: &str, func: &str) -> Span {
    if !traces_enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        parent: None,
        "provider.serve",
        otel.kind = "server",
        otel.status_code = Empty,
        provider.id = provider_id,
        source.id = cx.source_id().unwrap_or_default(),
        link.name = cx.link_name(),
        wit.interface = instance,
        wit.function = func,
    );
    if let Some(parent) = incoming(&cx.headers) {
        propagation::adopt(&span, &parent.traceparent, parent.tracestate.as_deref());
    }
    if let Some(own) = propagation::of_span(&span) {
        set(&mut cx.headers, &own);
    }
    span
}

/// The `provider.call` span of one outgoing call; sets the request's trace
/// headers. The parent is, in order: the `traceparent` the caller's headers
/// already carry, `parent` (the context of a call being served), the
/// current `tracing` span; else the call starts a trace.
pub(crate) fn call_span(
    headers: &mut HeaderMap,
    parent: Option<&W3cContext>,
    source_id: &str,
    target_id: &str,
    instance: &str,
    func: &str,
) -> Span {
    let given = incoming(headers);
    let parent = given.as_ref().or(parent);
    if !traces_enabled() {
        if let Some(parent) = parent.filter(|_| given.is_none()) {
            set(headers, parent);
        }
        return Span::none();
    }
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        parent: None,
        "provider.call",
        otel.kind = "client",
        otel.status_code = Empty,
        provider.id = source_id,
        link.target = target_id,
        wit.interface = instance,
        wit.function = func,
    );
    match parent {
        Some(p) => propagation::adopt(&span, &p.traceparent, p.tracestate.as_deref()),
        None => {
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            let current = Span::current();
            if !current.is_none() {
                let _ = span.set_parent(current.context());
            }
        }
    }
    if let Some(own) = propagation::of_span(&span) {
        set(headers, &own);
    }
    span
}

/// Marks a call span failed.
pub(crate) fn fail(span: &Span) {
    if !span.is_none() {
        span.record("otel.status_code", "ERROR");
    }
}
