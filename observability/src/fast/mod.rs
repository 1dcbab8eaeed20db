//! Hot-path spans recorded and exported without the SDK's span machinery.
//!
//! [`crate::direct`] spans (the host's one span per HTTP request) are
//! [`FastSpan`]s when traces go over OTLP/HTTP: an `opentelemetry` span of
//! our own, held in an [`opentelemetry::Context`] like any other, sampled by
//! the process's sampler, with ids from the SDK's generator. When it ends it
//! is encoded to OTLP protobuf on the thread that ends it and appended to
//! the [`pipeline::Pipeline`]'s batch, which one thread posts per batch.
//!
//! Through the SDK the same span costs a `SpanData` (a few hundred bytes,
//! attributes in a `Vec`) sent to the batch processor's thread, freed there
//! (a cross-thread free of each allocation), converted to
//! `opentelemetry-proto` structs (an owned `String` per key and value) and
//! encoded: `bench/observability.sh` measured that route at 1.5–2 µs of
//! export-thread CPU per span plus the recording on the request's thread.
//! `tracing` spans still go through the SDK; over gRPC or with compression
//! the direct spans do too (the SDK's exporter handles those).

mod config;
mod pipeline;
mod proto;

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::SystemTime;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    IdGenerator as _, RandomIdGenerator, SamplingDecision, ShouldSample,
};

use crate::ObservabilityError;
use crate::settings::{OtelProtocol, OtelSettings, Signal};
use pipeline::Limits;
use pipeline::Pipeline;
use proto::{Event, Link, SpanRecord};

/// The fast tracer of this process, when traces go over OTLP/HTTP.
static FAST: OnceLock<FastTracer> = OnceLock::new();

/// Sampler, ids and pipeline of the process's fast spans.
#[derive(Debug)]
pub(crate) struct FastTracer {
    sampler: Box<dyn ShouldSample>,
    ids: RandomIdGenerator,
    pipeline: Pipeline,
}

/// Starts the fast pipeline when `settings` send traces over OTLP/HTTP
/// without compression (the SDK's exporter keeps the other cases); the
/// guard's drop shuts it down through [`shutdown`]. Batches hold `max_batch`
/// spans, the queue `max_queue`; the delay is `OTEL_BSP_SCHEDULE_DELAY`.
pub(crate) fn install(
    settings: &OtelSettings,
    protocol: OtelProtocol,
    sampler: Box<dyn ShouldSample>,
    (max_batch, max_queue): (usize, usize),
    resource: &Resource,
    scope: &str,
) -> Result<bool, ObservabilityError> {
    if protocol != OtelProtocol::Http {
        return Ok(false);
    }
    let env = |var: &str| std::env::var(var).ok();
    let Some(target) = config::http_target(settings.endpoint(Signal::Traces, protocol), env) else {
        return Ok(false);
    };
    let failed = |message: String| ObservabilityError::Exporter {
        signal: "traces",
        message,
    };
    let sink = pipeline::http_sink(target).map_err(failed)?;
    let limits = Limits {
        max_batch,
        max_queue,
        delay: config::schedule_delay(env),
    };
    let frame = proto::Frame::new(resource.iter(), scope);
    let pipeline = Pipeline::start(limits, frame, sink)
        .map_err(|e| failed(format!("cannot start the span export thread: {e}")))?;
    let tracer = FastTracer {
        sampler,
        ids: RandomIdGenerator::default(),
        pipeline,
    };
    Ok(FAST.set(tracer).is_ok())
}

/// Exports what the pipeline holds and stops it (the guard's drop).
pub(crate) fn shutdown() {
    if let Some(fast) = FAST.get() {
        fast.pipeline.shutdown();
    }
}

/// The fast tracer, when the pipeline runs (else spans go to the SDK).
pub(crate) fn tracer() -> Option<&'static FastTracer> {
    FAST.get()
}

impl FastTracer {
    /// Starts span `name` of `kind` under `parent` (else a new trace), in
    /// a context of its own: see [`crate::direct::start`].
    pub(crate) fn start(
        &self,
        name: &'static str,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
        parent: Option<&Context>,
    ) -> Context {
        start(self, name, kind, attributes, parent)
    }
}

fn start(
    fast: &FastTracer,
    name: &'static str,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
    parent: Option<&Context>,
) -> Context {
    let parent_context = parent
        .map(|cx| cx.span().span_context().clone())
        .filter(SpanContext::is_valid);
    let trace_id = parent_context
        .as_ref()
        .map_or_else(|| fast.ids.new_trace_id(), |p| p.trace_id());
    let span_id = fast.ids.new_span_id();
    let result = fast
        .sampler
        .should_sample(parent, trace_id, name, &kind, &attributes, &[]);
    let context =
        |flags| SpanContext::new(trace_id, span_id, flags, false, result.trace_state.clone());
    let export = match result.decision {
        SamplingDecision::RecordAndSample => true,
        SamplingDecision::RecordOnly => false,
        // Not recorded: a context that carries the ids and the decision on,
        // as the SDK's non-recording span does.
        _ => return Context::new().with_remote_span_context(context(TraceFlags::default())),
    };
    let mut attributes = attributes;
    attributes.extend(result.attributes);
    let flags = if export {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let span = FastSpan {
        context: context(flags),
        parent: parent_context.map(|p| (p.span_id(), p.is_remote())),
        name: Cow::Borrowed(name),
        kind,
        start: SystemTime::now(),
        attributes,
        events: Vec::new(),
        links: Vec::new(),
        status: Status::Unset,
        ended: false,
        export,
    };
    Context::new().with_span(span)
}

/// A span of the fast pipeline; see the module docs.
#[derive(Debug)]
pub(crate) struct FastSpan {
    context: SpanContext,
    parent: Option<(SpanId, bool)>,
    name: Cow<'static, str>,
    kind: SpanKind,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    events: Vec<Event>,
    links: Vec<Link>,
    status: Status,
    ended: bool,
    /// Sampled (exported) rather than only recorded.
    export: bool,
}

thread_local! {
    /// Where a span is encoded before its bytes are appended to the batch.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl FastSpan {
    fn end_at(&mut self, end: SystemTime) {
        if std::mem::replace(&mut self.ended, true) || !self.export {
            return;
        }
        let Some(fast) = FAST.get() else {
            return;
        };
        let record = SpanRecord {
            context: &self.context,
            parent: self.parent,
            name: &self.name,
            kind: &self.kind,
            start: self.start,
            end,
            attributes: &self.attributes,
            events: &self.events,
            links: &self.links,
            status: &self.status,
        };
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.clear();
            proto::span_entry(&mut scratch, &record);
            fast.pipeline.push(&scratch);
        });
    }
}

impl opentelemetry::trace::Span for FastSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        if !self.ended {
            self.events.push(Event {
                name: name.into(),
                time: timestamp,
                attributes,
            });
        }
    }

    fn span_context(&self) -> &SpanContext {
        &self.context
    }

    fn is_recording(&self) -> bool {
        !self.ended
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        if !self.ended {
            self.attributes.push(attribute);
        }
    }

    /// As the SDK: a status replaces one it orders above (Ok > Error >
    /// Unset; among errors, by description).
    fn set_status(&mut self, status: Status) {
        if !self.ended && status > self.status {
            self.status = status;
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        if !self.ended {
            self.name = new_name.into();
        }
    }

    fn add_link(&mut self, span_context: SpanContext, attributes: Vec<KeyValue>) {
        if !self.ended && span_context.is_valid() {
            self.links.push(Link {
                context: span_context,
                attributes,
            });
        }
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        self.end_at(timestamp);
    }
}

impl Drop for FastSpan {
    fn drop(&mut self) {
        self.end_at(SystemTime::now());
    }
}

/// Installs a fast pipeline whose batches are dropped (for measurements).
#[cfg(test)]
pub(crate) fn install_discarding() {
    let limits = Limits {
        max_batch: crate::DEFAULT_MAX_EXPORT_BATCH_SIZE,
        max_queue: crate::DEFAULT_MAX_QUEUE_SIZE,
        delay: std::time::Duration::from_secs(5),
    };
    let frame = proto::Frame::new(std::iter::empty(), "test");
    let pipeline = Pipeline::start(limits, frame, Box::new(|_| Ok(()))).expect("a thread");
    let _ = FAST.set(FastTracer {
        sampler: Box::new(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
            opentelemetry_sdk::trace::Sampler::AlwaysOn,
        ))),
        ids: RandomIdGenerator::default(),
        pipeline,
    });
}

/// A fast span's context for a test, without a pipeline: what `start` would
/// build under `parent`, sampled.
#[cfg(test)]
fn test_span(parent: Option<(SpanId, bool)>) -> FastSpan {
    use opentelemetry::trace::{TraceId, TraceState};
    use std::time::Duration;
    FastSpan {
        context: SpanContext::new(
            TraceId::from(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10_u128),
            SpanId::from(0x1112_1314_1516_1718_u64),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_key_value([("vendor", "v1")]).expect("a valid trace state"),
        ),
        parent,
        name: Cow::Borrowed("http.server.request"),
        kind: SpanKind::Server,
        start: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_000),
        attributes: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
        status: Status::Unset,
        ended: false,
        export: true,
    }
}

#[cfg(test)]
mod tests;
