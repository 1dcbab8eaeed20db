//! Spans started directly on the SDK tracer, for a process's hot path.
//!
//! Most spans are `tracing` spans exported through `tracing-opentelemetry`.
//! That route costs, per span, a slot in the `tracing` registry, a
//! `SpanBuilder` kept in the span's extensions and moved again when the span
//! closes, every string attribute copied into an owned `String`, and a lock
//! and a clock read each time the span is exited (every poll of a future it
//! instruments). On a request that does little else (an HTTP "hello") that
//! is most of what tracing costs besides the export itself.
//!
//! A span started here is, over OTLP/HTTP, a "fast" span (encoded
//! to protobuf when it ends and posted in batches, without the SDK's span
//! and export machinery), else an SDK span from its first instant; either
//! way it is held in an [`opentelemetry::Context`]: its attributes are given up front
//! (`&'static str` keys, values that can be `&'static str` or `Arc<str>`),
//! and it ends, and goes to the batch exporter, when the last clone of the
//! context is dropped, as a `tracing` span closes when its last handle goes.
//! It has the same trace semantics: the same sampler, parent and ids, and
//! `tracing` spans made under it become its children with
//! [`crate::propagation::adopt_context`].

use std::sync::OnceLock;

use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

/// The tracer of this process, set by [`crate::init`] when traces are on.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

pub(crate) fn install(tracer: SdkTracer) {
    let _ = TRACER.set(tracer);
}

/// Starts span `name` of `kind` with `attributes`, a child of the span in
/// `parent` (a remote context read from `traceparent`, or a local span), else
/// the root of a new trace. `None` while traces are off.
pub fn start(
    name: &'static str,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
    parent: Option<&Context>,
) -> Option<Context> {
    if !crate::traces_enabled() {
        return None;
    }
    if let Some(fast) = crate::fast::tracer() {
        return Some(fast.start(name, kind, attributes, parent));
    }
    let tracer = TRACER.get()?;
    let builder = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes);
    let span = match parent {
        Some(parent) => tracer.build_with_context(builder, parent),
        None => tracer.build_with_context(builder, &Context::new()),
    };
    Some(Context::new().with_span(span))
}

/// Sets `attribute` on the span of `cx`.
pub fn set_attribute(cx: &Context, attribute: KeyValue) {
    cx.span().set_attribute(attribute);
}

/// Marks the span of `cx` failed with `message` (an empty message when the
/// failure says it all, like a 5xx status code). A failure recorded with a
/// message is kept over a later one without.
pub fn fail(cx: &Context, message: impl Into<std::borrow::Cow<'static, str>>) {
    cx.span().set_status(Status::error(message));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_starts_while_traces_are_off() {
        assert!(start("x", SpanKind::Server, Vec::new(), None).is_none());
    }

    /// Drops what it is given: the export side is not measured here.
    #[derive(Debug)]
    struct Discard;

    impl opentelemetry_sdk::trace::SpanExporter for Discard {
        async fn export(
            &self,
            _batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
    }

    /// What a direct span costs on the request's thread: the host's ingress
    /// span (three attributes, the status code set later, ended on drop).
    /// Prints the figure; `docs/PERFORMANCE.md` quotes it.
    #[test]
    #[ignore = "a measurement: cargo test --release -p trellis-observability direct_span_cost -- --ignored --nocapture"]
    fn direct_span_cost() {
        use opentelemetry::trace::TracerProvider as _;
        use std::sync::Arc;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(Discard)
            .build();
        install(provider.tracer("trellis-host"));
        crate::TRACES_ON.store(true, std::sync::atomic::Ordering::Relaxed);
        let id: Arc<str> = Arc::from("http-hello");
        let rounds = 200_000u32;
        let measure = |label: &str| {
            // Three passes: the first one fills the queue and warms up.
            for pass in 0..3 {
                let started = std::time::Instant::now();
                for _ in 0..rounds {
                    let attributes = vec![
                        KeyValue::new("http.request.method", "GET"),
                        KeyValue::new("url.path", "/".to_string()),
                        KeyValue::new("component.id", id.clone()),
                    ];
                    let cx = start("http.server.request", SpanKind::Server, attributes, None)
                        .expect("traces are on");
                    set_attribute(&cx, KeyValue::new("http.response.status_code", 200_i64));
                    drop(cx);
                }
                let per_span = started.elapsed() / rounds;
                println!("{label}, started and ended: {per_span:?} per span (pass {pass})");
            }
        };
        measure("direct span on the SDK tracer (batch processor)");

        // The same span through `tracing` and `tracing-opentelemetry`, as
        // the host made it before (entered once, as an instrumented future
        // is on each poll).
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry().with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("trellis-host"))
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_tracked_inactivity(false)
                .with_context_activation(false),
        );
        tracing::subscriber::with_default(subscriber, || {
            let started = std::time::Instant::now();
            for _ in 0..rounds {
                let span = tracing::info_span!(
                    target: crate::SPAN_TARGET,
                    parent: None,
                    "http.server.request",
                    otel.kind = "server",
                    http.request.method = "GET",
                    url.path = "/",
                    component.id = &*id,
                    http.response.status_code = tracing::field::Empty,
                );
                drop(span.enter());
                span.record("http.response.status_code", 200);
                drop(span);
            }
            let per_span = started.elapsed() / rounds;
            println!("tracing-opentelemetry span, same attributes: {per_span:?} per span");
        });
        // The fast pipeline (OTLP/HTTP), batches encoded and dropped.
        crate::fast::install_discarding();
        measure("direct span on the fast pipeline (encoded on this thread)");
        crate::TRACES_ON.store(false, std::sync::atomic::Ordering::Relaxed);
        let _ = provider.shutdown();
    }
}
