//! Logs and OpenTelemetry export for every Trellis process: the host, wadm
//! and providers built on the provider SDK use this one implementation.
//!
//! [`init`] installs the process's `tracing` subscriber: the stderr log
//! layer (text or JSON lines, `RUST_LOG` else [`LogSettings::level`]) and,
//! as [`OtelSettings`] ask, OTLP export of
//! - **traces**: `tracing` spans through `tracing-opentelemetry`, and
//!   [`direct`] spans started on the SDK tracer for a hot path;
//! - **metrics**: the [`SdkMeterProvider`] the guard hands out
//!   ([`ObservabilityGuard::meter_provider`]);
//! - **logs**: every `tracing` event that passes the log level becomes an
//!   OTLP log record stamped with the trace and span id of the span it was
//!   emitted in, so logs and traces correlate;
//!
//! over OTLP/HTTP (protobuf) or OTLP/gRPC, per signal. [`propagation`]
//! carries W3C trace context through headers. Spans meant for export use
//! the target [`SPAN_TARGET`] and never reach the log output. See
//! `docs/observability.md`.

#![warn(missing_docs)]

pub mod direct;
mod export;
mod fast;
pub mod propagation;
mod settings;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub use export::{DEFAULT_MAX_EXPORT_BATCH_SIZE, DEFAULT_MAX_QUEUE_SIZE};
pub use settings::{LogSettings, OtelProtocol, OtelSettings, Signal};

/// Target of the spans built for export (host request spans, provider call
/// spans). The log layers ignore it: these spans are for traces, not lines.
pub const SPAN_TARGET: &str = "trellis::span";

/// Crates whose own logs are never exported over OTLP: the exporter's
/// stack. Exporting them would feed the exporter its own traffic.
const EXPORTER_CRATES: [&str; 10] = [
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
    "tonic",
    "h2",
    "hyper",
    "hyper_util",
    "reqwest",
    "tower",
];

/// Whether spans are built and exported (set once by [`init`]).
static TRACES_ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are being built and exported in this process. Span points
/// check this first, so with traces off they cost one relaxed load.
#[inline]
pub fn traces_enabled() -> bool {
    TRACES_ON.load(Ordering::Relaxed)
}

/// Whether `tracing` events are exported as OTLP log records (set once by
/// [`init`]).
static LOGS_ON: AtomicBool = AtomicBool::new(false);

/// Whether `tracing` events are exported as log records stamped with the
/// active OpenTelemetry context: work under a [`direct`] span then runs
/// with that span's context attached, so its records carry its ids.
#[inline]
pub fn logs_exported() -> bool {
    LOGS_ON.load(Ordering::Relaxed)
}

/// Who exports: the resource of every span, metric point and log record.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// `service.name` (`trellis-host`, `wadm`, the provider's name).
    pub service_name: String,
    /// `service.version`.
    pub service_version: String,
    /// `service.instance.id` (host id, provider instance id, wadm's id).
    pub instance_id: String,
    /// More resource attributes (`host`, `lattice`, `provider.id`, …).
    pub attributes: Vec<(&'static str, String)>,
}

impl Identity {
    fn resource(&self) -> Resource {
        let mut attributes = vec![
            KeyValue::new("service.instance.id", self.instance_id.clone()),
            KeyValue::new("service.version", self.service_version.clone()),
        ];
        attributes.extend(
            self.attributes
                .iter()
                .map(|(k, v)| KeyValue::new(*k, v.clone())),
        );
        Resource::builder()
            .with_service_name(self.service_name.clone())
            .with_attributes(attributes)
            .build()
    }
}

/// Why observability could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObservabilityError {
    /// The OTLP exporter of a signal could not be built (bad endpoint).
    #[error("cannot build the OTLP {signal} exporter: {message}")]
    Exporter {
        /// `traces`, `metrics` or `logs`.
        signal: &'static str,
        /// What failed.
        message: String,
    },
    /// A setting (protocol, sampler) is invalid.
    #[error("invalid observability setting: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// A subscriber was already installed in this process.
    #[error("cannot install the tracing subscriber: {0}")]
    Subscriber(String),
}

/// Flushes and stops the exporters when dropped (at process exit).
#[must_use = "dropping the guard stops exporting"]
pub struct ObservabilityGuard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    logger: Option<SdkLoggerProvider>,
}

impl std::fmt::Debug for ObservabilityGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservabilityGuard")
            .field("traces", &self.tracer.is_some())
            .field("metrics", &self.meter.is_some())
            .field("logs", &self.logger.is_some())
            .finish()
    }
}

impl ObservabilityGuard {
    /// The meter provider, when metrics are exported: create instruments on
    /// it (`provider.meter(name)`).
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.meter.as_ref()
    }

    /// Whether each signal is exported: `(traces, metrics, logs)`.
    pub fn exporting(&self) -> (bool, bool, bool) {
        (
            self.tracer.is_some(),
            self.meter.is_some(),
            self.logger.is_some(),
        )
    }
}

impl Drop for ObservabilityGuard {
    fn drop(&mut self) {
        TRACES_ON.store(false, Ordering::Relaxed);
        LOGS_ON.store(false, Ordering::Relaxed);
        let name = std::env::args().next().unwrap_or_default();
        // Direct spans first: their children may still be in the SDK's queue.
        fast::shutdown();
        if let Some(t) = self.tracer.take()
            && let Err(e) = t.shutdown()
        {
            eprintln!("{name}: flushing traces failed: {e}");
        }
        if let Some(m) = self.meter.take()
            && let Err(e) = m.shutdown()
        {
            eprintln!("{name}: flushing metrics failed: {e}");
        }
        if let Some(l) = self.logger.take()
            && let Err(e) = l.shutdown()
        {
            eprintln!("{name}: flushing logs failed: {e}");
        }
    }
}

/// The stderr and OTLP-logs filter: `RUST_LOG`, else the settings' level;
/// our export spans are always left out.
fn log_filter(logs: &LogSettings) -> tracing_subscriber::EnvFilter {
    let mut filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| {
            tracing_subscriber::EnvFilter::try_new(format!(
                "{},cranelift=warn,wasmtime=warn",
                logs.directive()
            ))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        });
    if let Ok(exclusion) = format!("{SPAN_TARGET}=off").parse() {
        filter = filter.add_directive(exclusion);
    }
    filter
}

/// Installs logging and, as `otel` asks, OTLP export of traces, metrics and
/// logs for this process. Call once, inside the tokio runtime (the gRPC
/// exporters spawn their connection tasks on it), before the process does
/// its work; keep the guard until exit.
pub fn init(
    logs: &LogSettings,
    otel: &OtelSettings,
    identity: &Identity,
) -> Result<ObservabilityGuard, ObservabilityError> {
    let resource = identity.resource();
    // The tracer's name is the instrumentation scope, cloned into every
    // span the SDK ends: a `&'static str` makes that clone free (an owned
    // name costs an allocation per span). One name per process, leaked once.
    let scope: &'static str = Box::leak(identity.service_name.clone().into_boxed_str());
    let tracer = otel
        .enabled(Signal::Traces)
        .then(|| export::tracer_provider(otel, resource.clone(), scope))
        .transpose()?;
    let meter = otel
        .enabled(Signal::Metrics)
        .then(|| export::meter_provider(otel, resource.clone()))
        .transpose()?;
    let logger = otel
        .enabled(Signal::Logs)
        .then(|| export::logger_provider(otel, resource))
        .transpose()?;

    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let stderr_layer = if logs.structured {
        fmt.json().with_filter(log_filter(logs)).boxed()
    } else {
        fmt.with_filter(log_filter(logs)).boxed()
    };
    let logs_exported = logger.is_some();
    let tracer_of = |provider: &SdkTracerProvider| provider.tracer(scope);
    let span_layer = tracer.as_ref().map(|provider| {
        let level = otel
            .trace_level
            .as_deref()
            .unwrap_or("info")
            .parse::<tracing::level_filters::LevelFilter>()
            .unwrap_or(tracing::level_filters::LevelFilter::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(tracer_of(provider))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            // Parents are explicit (passed with each call), so contexts are
            // activated on span entry only when log records need them: the
            // SDK stamps a record with the active context's trace and span id.
            .with_context_activation(logs_exported)
            .with_filter(level)
    });
    let log_layer = logger.as_ref().map(|provider| {
        let mut filter = log_filter(logs);
        for krate in EXPORTER_CRATES {
            if let Ok(d) = format!("{krate}=off").parse() {
                filter = filter.add_directive(d);
            }
        }
        opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(provider)
            .with_filter(filter)
    });
    tracing_subscriber::registry()
        .with(stderr_layer)
        .with(span_layer)
        .with(log_layer)
        .try_init()
        .map_err(|e| ObservabilityError::Subscriber(e.to_string()))?;

    if let Some(provider) = &tracer {
        direct::install(tracer_of(provider));
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        TRACES_ON.store(true, Ordering::Relaxed);
    }
    LOGS_ON.store(logs_exported, Ordering::Relaxed);
    let guard = ObservabilityGuard {
        tracer,
        meter,
        logger,
    };
    let (traces, metrics, logs) = guard.exporting();
    tracing::info!(traces, metrics, logs, "observability configured");
    Ok(guard)
}
